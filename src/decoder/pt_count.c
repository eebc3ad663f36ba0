// SPDX-License-Identifier: BSD-3-Clause
/*
 * Count-only raw PT decode: what bt_ptdec__print() decodes, with nothing
 * written. It runs the printing path itself (quiet, into a stream that
 * discards what it is given) rather than a copy of its loop, so that the
 * count, the events handled (sideband included), the error handling and
 * the resynchronisation at the next PSB are the listing's by
 * construction, and bench/decode_bench times the code `btrail script`
 * really runs. With quiet set, the only writes left are error lines,
 * rare enough that the stream costs nothing measurable.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "decoder/pt_int.h"

static ssize_t discard_write(void *cookie, const char *buf, size_t size)
{
	(void)cookie;
	(void)buf;
	return (ssize_t)size;
}

int bt_ptdec__count(struct bt_ptdec *d, struct bt_ptdec_stats *stats)
{
	static const cookie_io_functions_t discard = {
		.write = discard_write,
	};
	struct bt_ptdec_print_opts po = { .sz = sizeof(po), .quiet = true };
	FILE *null;
	int err;

	if (!d || !stats)
		return -EINVAL;
	memset(stats, 0, sizeof(*stats));
	null = fopencookie(NULL, "w", discard);
	if (!null)
		return -ENOMEM;
	err = bt_ptdec__print(d, null, &po, stats);
	fclose(null);
	return err;
}
