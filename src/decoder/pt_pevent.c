// SPDX-License-Identifier: BSD-3-Clause
/*
 * perf_event sideband (ptxed's --pevent:*): not implemented yet. The
 * options are parsed and checked; adding a stream says so and fails with
 * -ENOSYS, so that nothing is decoded with a wrong image.
 */
#include <errno.h>

#include "common/log.h"

#include "decoder/pt_int.h"

void ptd_sb_free(struct ptd_sb *sb)
{
	(void)sb;
}

int ptd_sb_init(struct bt_ptdec *d, FILE *out, const struct ptd_sb_print *p)
{
	(void)d; (void)out; (void)p;
	return 0;
}

int ptd_sb_event(struct bt_ptdec *d, const struct pt_event *ev,
		 struct pt_image **image)
{
	(void)d; (void)ev; (void)image;
	return 0;
}

void ptd_sb_fini(struct bt_ptdec *d)
{
	(void)d;
}

int bt_ptdec__add_pevent(struct bt_ptdec *d, const char *spec,
			 const struct bt_pevent_opts *opts)
{
	(void)opts;
	if (!d || !spec)
		return -EINVAL;
	pr_warn("%s: perf_event sideband (--pevent:primary/secondary) is not "
		"supported yet", spec);
	return -ENOSYS;
}
