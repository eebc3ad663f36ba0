/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internals of the perf.data reader, shared by perfdata.c (file, header,
 * sections, features, the public calls) and perfdata_rec.c (records).
 */
#ifndef BT_DECODER_PERFDATA_INT_H
#define BT_DECODER_PERFDATA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <btrail/perfdata.h>

/* perf_event_attr.sample_type bits the sample_id trailer follows. */
#define PD_SAMPLE_TID		(1ull << 1)
#define PD_SAMPLE_TIME		(1ull << 2)
#define PD_SAMPLE_ID		(1ull << 6)
#define PD_SAMPLE_CPU		(1ull << 7)
#define PD_SAMPLE_STREAM_ID	(1ull << 9)
#define PD_SAMPLE_IDENTIFIER	(1ull << 16)

#define PD_ATTR_SIZE_VER0	64u	/* the smallest perf_event_attr */
#define PD_SAMPLE_ID_ALL_BIT	18	/* in the attr's flag word */
#define PD_MISC_BUILD_ID_SIZE	(1u << 15)
#define PD_MAX_ATTRS		1024u	/* bounds the id look-ups */

/* Where one AUXTRACE record's data lies in the buffer. */
struct pd_aux_seg {
	uint64_t off;
	uint64_t size;
};

struct pd_aux_stream {
	struct bt_perf_aux_stream pub;
	struct pd_aux_seg *segs;
	size_t nr_segs, cap_segs;
};

struct bt_perfdata {
	char *name;			/* for messages */
	unsigned char *buf;
	uint64_t size;
	bool pipe;
	uint64_t data_off, data_end;	/* the record stream */
	uint64_t pos;			/* iterator */

	struct bt_perf_attr *attrs;
	size_t nr_attrs, cap_attrs;
	size_t nr_file_attrs;		/* from the attr section */
	/*
	 * The attrs a record at the current position may refer to: in pipe
	 * mode only those whose HEADER_ATTR came before it, so that the
	 * iterator reads each record as the open pass did.
	 */
	size_t nr_attrs_now;
	size_t first_diff;		/* first attr whose sample_type or
					   sample_id_all differs from attr 0 */

	struct bt_perf_build_id *build_ids;
	size_t nr_build_ids, cap_build_ids;

	struct bt_perf_features feat;
	struct bt_perf_auxtrace_info info;
	uint64_t *info_priv;
	char *info_filter;
	struct bt_perf_time_conv tconv;

	struct pd_aux_stream *streams;
	size_t nr_streams, cap_streams;
};

/* Log "perf.data: NAME: offset OFF: WHY" and return -BT_ERRNO_FORMAT. */
int pd_bad(const struct bt_perfdata *pd, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Grow *@arr (of *@cap elements of @elem bytes) to hold @need. */
int pd_grow(void *arr, size_t *cap, size_t need, size_t elem);

/* Whether @len bytes at @off lie inside [@off, @end). */
static inline bool pd_fits(uint64_t off, uint64_t len, uint64_t end)
{
	return off <= end && len <= end - off;
}

/*
 * Parse the attr at @p (@avail bytes, at file offset @off) with @nr_ids
 * ids at @ids (little-endian, unaligned) and append it.
 */
int pd_attr_add(struct bt_perfdata *pd, const unsigned char *p,
		uint64_t avail, uint64_t off, const unsigned char *ids,
		uint64_t nr_ids);

/* Parse feature @feat's data, @size bytes at file offset @off. */
int pd_feature(struct bt_perfdata *pd, uint64_t feat, uint64_t off,
	       uint64_t size);

/* Parse the build_id_event of @size bytes at file offset @off into @b. */
int pd_build_id(struct bt_perfdata *pd, uint64_t off, uint64_t size,
		struct bt_perf_build_id *b);
int pd_build_id_add(struct bt_perfdata *pd, const struct bt_perf_build_id *b);

/*
 * Parse the record at @off into @rec and put the offset of the next one
 * into *@next. With @collect, the records that describe the file
 * (attrs, build-ids, features, AUXTRACE_INFO, TIME_CONV, AUXTRACE) are
 * added to @pd: the validation pass of open does that, the iterator not.
 */
int pd_record(struct bt_perfdata *pd, uint64_t off, struct bt_perf_record *rec,
	      uint64_t *next, bool collect);

#endif /* BT_DECODER_PERFDATA_INT_H */
