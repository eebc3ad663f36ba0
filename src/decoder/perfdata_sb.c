// SPDX-License-Identifier: BSD-3-Clause
/*
 * Records of a raw perf_event sideband buffer. The record parser of the
 * perf.data reader (perfdata_rec.c) does the work; here it is handed a
 * reader of one attr (the given sample_type, sample_id_all set) whose
 * data section is the buffer, so that both read records the same way
 * and with the same bounds checks.
 */
#include <string.h>

#include "decoder/perfdata_int.h"
#include "decoder/perfdata_sb.h"

int pd_sb_record(const void *buf, size_t size, uint64_t off,
		 uint64_t sample_type, const char *name,
		 struct bt_perf_record *rec, uint64_t *next)
{
	struct bt_perf_attr attr;
	struct bt_perfdata pd;

	memset(&attr, 0, sizeof(attr));
	attr.sample_type = sample_type;
	attr.sample_id_all = true;
	memset(&pd, 0, sizeof(pd));
	pd.name = (char *)(name ? name : "<sideband>");
	pd.buf = (unsigned char *)buf;	/* only read */
	pd.size = size;
	pd.data_off = 0;
	pd.data_end = size;
	pd.attrs = &attr;
	pd.nr_attrs = 1;
	pd.nr_attrs_now = 1;
	pd.first_diff = 1;	/* one attr: no IDENTIFIER look-up */
	/* Without collect nothing is added to (or freed from) @pd. */
	return pd_record(&pd, off, rec, next, false);
}
