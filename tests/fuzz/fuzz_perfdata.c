// SPDX-License-Identifier: BSD-3-Clause
/*
 * The perf.data reader on hostile files: bt_perfdata__open_mem(), then
 * every record, every accessor and every AUX stream, as the importer and
 * `btrail perf` use them.
 */
#include <stdint.h>
#include <stdlib.h>

#include <btrail/perfdata.h>

#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bt_perfdata_opts o = { .sz = sizeof(o), .name = "fuzz.data" };
	struct bt_perfdata *pd = bt_perfdata__open_mem(data, size, &o);
	struct bt_perf_record rec;
	volatile uint64_t sink = 0;

	if (!pd)
		return 0;
	for (size_t i = 0; i < bt_perfdata__nr_attrs(pd); i++)
		sink += bt_perfdata__attr(pd, i) != NULL;
	for (size_t i = 0; i < bt_perfdata__nr_build_ids(pd); i++)
		sink += bt_perfdata__build_id(pd, i) != NULL;
	sink += bt_perfdata__features(pd) != NULL;
	sink += bt_perfdata__auxtrace_info(pd) != NULL;
	sink += bt_perfdata__time_conv(pd) != NULL;
	for (int pass = 0; pass < 2; pass++) {
		int r;

		while ((r = bt_perfdata__next(pd, &rec)) == 1)
			sink += rec.size;
		if (r < 0) {
			/* Validated at open: a record failing now is a bug. */
			fprintf(stderr, "record failed after open: %d\n", r);
			abort();
		}
		bt_perfdata__rewind(pd);
	}
	for (size_t i = 0; i < bt_perfdata__nr_aux_streams(pd); i++) {
		const struct bt_perf_aux_stream *s =
			bt_perfdata__aux_stream(pd, i);
		void *buf;
		size_t n;

		if (!s || bt_perfdata__aux_read(pd, i, &buf, &n))
			abort();
		if (n != s->size)
			abort();
		sink += bt_perfdata__aux_cpu(pd, s->cpu) >= 0;
		free(buf);
	}
	(void)sink;
	bt_perfdata__close(pd);
	return 0;
}
