// SPDX-License-Identifier: BSD-3-Clause
/*
 * perf.data records: the kernel's (MMAP, COMM, FORK, AUX, ...) with their
 * sample_id_all trailers, and perf's own (HEADER_ATTR, AUXTRACE_INFO,
 * AUXTRACE, TIME_CONV, HEADER_FEATURE, ...). Each is checked against its
 * header.size, and header.size against the data section, before a field
 * is read. Two records carry bytes after header.size: AUXTRACE (the trace)
 * and HEADER_TRACING_DATA; their lengths are checked the same way.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <btrail/errno.h>

#include "common/bytes.h"
#include "common/log.h"
#include "decoder/perfdata_int.h"

#define PD_REC_HDR		8u
#define PD_AUXTRACE_SIZE	48u	/* header, size, offset, ref, idx... */
#define PD_AUXTRACE_INFO_MIN	16u	/* header, type, reserved */
#define PD_TIME_CONV_MIN	32u	/* header, shift, mult, zero */
#define PD_TIME_CONV_EXT	56u	/* + cycles, mask, cap bits */

/* intel_pt's AUXTRACE_INFO private words (perf's intel-pt.h order). */
enum {
	PT_PMU_TYPE, PT_TIME_SHIFT, PT_TIME_MULT, PT_TIME_ZERO,
	PT_CAP_USER_TIME_ZERO, PT_TSC_BIT, PT_NORETCOMP_BIT,
	PT_HAVE_SCHED_SWITCH, PT_SNAPSHOT_MODE, PT_PER_CPU_MMAPS,
	PT_MTC_BIT, PT_MTC_FREQ_BITS, PT_TSC_CTC_N, PT_TSC_CTC_D,
	PT_CYC_BIT, PT_MAX_NONTURBO_RATIO, PT_FILTER_STR_LEN,
	PT_PRIV_MAX,
};

/* The attr whose sample_type applies to the record at @p of @size. */
static const struct bt_perf_attr *rec_attr(const struct bt_perfdata *pd,
					   const unsigned char *id_at)
{
	size_t n = pd->nr_attrs_now;
	uint64_t id;

	if (!n)
		return NULL;
	if (pd->first_diff >= n || !id_at ||
	    !(pd->attrs[0].sample_type & PD_SAMPLE_IDENTIFIER))
		return &pd->attrs[0];
	/* Mixed sample_types: perf then sets IDENTIFIER, which says which. */
	id = bt_le64(id_at);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < pd->attrs[i].nr_ids; k++) {
			if (pd->attrs[i].ids[k] == id)
				return &pd->attrs[i];
		}
	}
	return &pd->attrs[0];
}

static unsigned sid_fields(uint64_t st)
{
	return !!(st & PD_SAMPLE_TID) + !!(st & PD_SAMPLE_TIME) +
	       !!(st & PD_SAMPLE_ID) + !!(st & PD_SAMPLE_STREAM_ID) +
	       !!(st & PD_SAMPLE_CPU) + !!(st & PD_SAMPLE_IDENTIFIER);
}

/*
 * The sample_id_all trailer of a non-sample kernel record whose fixed
 * part is @fixed bytes. Puts the trailer's size into *@tsize.
 */
static int rec_sample_id(const struct bt_perfdata *pd,
			 const unsigned char *p, uint64_t off, uint32_t size,
			 uint32_t fixed, struct bt_perf_record *rec,
			 uint32_t *tsize)
{
	const struct bt_perf_attr *a;
	struct bt_perf_sample_id *s = &rec->sid;
	uint64_t st;
	uint32_t n, q;

	*tsize = 0;
	if (size < fixed)
		return pd_bad(pd, off, "record type %u of %u bytes, less than "
			      "its %u fixed bytes", rec->type, size, fixed);
	a = rec_attr(pd, size >= fixed + 8 ? p + size - 8 : NULL);
	if (!a || !a->sample_id_all)
		return 0;
	st = a->sample_type;
	n = 8 * sid_fields(st);
	if (n > size - fixed)
		return pd_bad(pd, off, "record type %u of %u bytes has no room "
			      "for its %u-byte sample_id after %u fixed bytes",
			      rec->type, size, n, fixed);
	q = size - n;
	if (st & PD_SAMPLE_TID) {
		s->pid = bt_le32(p + q);
		s->tid = bt_le32(p + q + 4);
		s->present |= BT_PERF_SID_TID;
		q += 8;
	}
	if (st & PD_SAMPLE_TIME) {
		s->time = bt_le64(p + q);
		s->present |= BT_PERF_SID_TIME;
		q += 8;
	}
	if (st & PD_SAMPLE_ID) {
		s->id = bt_le64(p + q);
		s->present |= BT_PERF_SID_ID;
		q += 8;
	}
	if (st & PD_SAMPLE_STREAM_ID) {
		s->stream_id = bt_le64(p + q);
		s->present |= BT_PERF_SID_STREAM_ID;
		q += 8;
	}
	if (st & PD_SAMPLE_CPU) {
		s->cpu = bt_le32(p + q);
		s->present |= BT_PERF_SID_CPU;
		q += 8;
	}
	if (st & PD_SAMPLE_IDENTIFIER) {
		s->id = bt_le64(p + q);
		s->present |= BT_PERF_SID_ID;
	}
	rec->has_sample_id = true;
	*tsize = n;
	return 0;
}

/* The leading fields of a SAMPLE, the ones sample_id also has. */
static void rec_sample(const struct bt_perfdata *pd, const unsigned char *p,
		       uint32_t size, struct bt_perf_record *rec)
{
	const struct bt_perf_attr *a;
	struct bt_perf_sample_id *s = &rec->sid;
	uint32_t q = PD_REC_HDR;
	uint64_t st;

	a = rec_attr(pd, size >= q + 8 ? p + q : NULL);
	if (!a)
		return;
	st = a->sample_type;
	/* identifier, ip, tid, time, addr, id, stream_id, cpu: in order */
#define TAKE(bit, stmt) do {						\
		if (st & (bit)) {					\
			if (size - q < 8)				\
				return;					\
			stmt;						\
			q += 8;						\
		}							\
	} while (0)
	TAKE(PD_SAMPLE_IDENTIFIER, (s->id = bt_le64(p + q),
				    s->present |= BT_PERF_SID_ID));
	TAKE(1ull << 0, (void)0);
	TAKE(PD_SAMPLE_TID, (s->pid = bt_le32(p + q),
			     s->tid = bt_le32(p + q + 4),
			     s->present |= BT_PERF_SID_TID));
	TAKE(PD_SAMPLE_TIME, (s->time = bt_le64(p + q),
			      s->present |= BT_PERF_SID_TIME));
	TAKE(1ull << 3, (void)0);
	TAKE(PD_SAMPLE_ID, (s->id = bt_le64(p + q),
			    s->present |= BT_PERF_SID_ID));
	TAKE(PD_SAMPLE_STREAM_ID, (s->stream_id = bt_le64(p + q),
				   s->present |= BT_PERF_SID_STREAM_ID));
	TAKE(PD_SAMPLE_CPU, (s->cpu = bt_le32(p + q),
			     s->present |= BT_PERF_SID_CPU));
#undef TAKE
	rec->has_sample_id = s->present != 0;
}

/* A NUL-terminated string in [@from, @to) of the record at @p. */
static int rec_string(const struct bt_perfdata *pd, const unsigned char *p,
		      uint64_t off, uint32_t from, uint32_t to,
		      const char **out)
{
	if (to <= from || !memchr(p + from, 0, to - from))
		return pd_bad(pd, off + from, "string of the record at %"
			      PRIu64 " not NUL-terminated inside it", off);
	*out = (const char *)p + from;
	return 0;
}

static int aux_add(struct bt_perfdata *pd, const struct bt_perf_record *rec)
{
	struct pd_aux_stream *s = NULL;
	uint32_t cpu = rec->u.auxtrace.cpu, idx = rec->u.auxtrace.idx;

	for (size_t i = 0; i < pd->nr_streams; i++) {
		if (pd->streams[i].pub.cpu == cpu &&
		    pd->streams[i].pub.idx == idx) {
			s = &pd->streams[i];
			break;
		}
	}
	if (!s) {
		if (pd_grow(&pd->streams, &pd->cap_streams,
			    pd->nr_streams + 1, sizeof(*pd->streams)))
			return -ENOMEM;
		s = &pd->streams[pd->nr_streams++];
		memset(s, 0, sizeof(*s));
		s->pub.cpu = cpu;
		s->pub.idx = idx;
		s->pub.tid = rec->u.auxtrace.tid;
	}
	if (pd_grow(&s->segs, &s->cap_segs, s->nr_segs + 1, sizeof(*s->segs)))
		return -ENOMEM;
	s->segs[s->nr_segs].off = rec->offset + rec->size;
	s->segs[s->nr_segs].size = rec->payload_size;
	s->nr_segs++;
	s->pub.nr_records++;
	s->pub.size += rec->payload_size;
	return 0;
}

static int auxtrace_info(struct bt_perfdata *pd, const unsigned char *p,
			 uint64_t off, uint32_t size)
{
	struct bt_perf_auxtrace_info *in = &pd->info;
	uint32_t nr = (size - PD_AUXTRACE_INFO_MIN) / 8;
	uint64_t *v, *f[PT_PRIV_MAX] = {
		&in->pmu_type, &in->time_shift, &in->time_mult,
		&in->time_zero, &in->cap_user_time_zero, &in->tsc_bit,
		&in->noretcomp_bit, &in->have_sched_switch,
		&in->snapshot_mode, &in->per_cpu_mmaps, &in->mtc_bit,
		&in->mtc_freq_bits, &in->tsc_ctc_ratio_n,
		&in->tsc_ctc_ratio_d, &in->cyc_bit,
		&in->max_nonturbo_ratio, &in->filter_str_len,
	};

	if (in->present) {
		pr_debug("perf.data: %s: offset %" PRIu64 ": second "
			 "AUXTRACE_INFO ignored", pd->name, off);
		return 0;
	}
	v = calloc(nr ? nr : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < nr; i++)
		v[i] = bt_le64(p + PD_AUXTRACE_INFO_MIN + 8 * i);
	in->present = true;
	in->type = bt_le32(p + 8);
	in->nr_priv = nr;
	in->priv = v;
	pd->info_priv = v;
	if (in->type != BT_PERF_AUXTRACE_INTEL_PT)
		return 0;
	for (uint32_t i = 0; i < nr && i < PT_PRIV_MAX; i++)
		*f[i] = v[i];
	/* The filter string follows the fixed words, NUL-padded to 8. */
	if (in->filter_str_len && nr > PT_PRIV_MAX) {
		uint32_t at = PD_AUXTRACE_INFO_MIN + 8 * PT_PRIV_MAX;

		if (in->filter_str_len >= size - at ||
		    p[at + in->filter_str_len])
			return pd_bad(pd, off + at, "intel_pt filter string of "
				      "%" PRIu64 " bytes does not fit its "
				      "record", in->filter_str_len);
		in->filter = (const char *)p + at;
	}
	return 0;
}

static void time_conv(struct bt_perfdata *pd, const unsigned char *p,
		      uint32_t size)
{
	struct bt_perf_time_conv *t = &pd->tconv;

	t->present = true;
	t->time_shift = bt_le64(p + 8);
	t->time_mult = bt_le64(p + 16);
	t->time_zero = bt_le64(p + 24);
	if (size >= PD_TIME_CONV_EXT) {
		t->time_cycles = bt_le64(p + 32);
		t->time_mask = bt_le64(p + 40);
		t->cap_user_time_zero = p[48];
		t->cap_user_time_short = p[49];
	}
}

/* HEADER_ATTR: the attr, then its ids up to the end of the record. */
static int header_attr(struct bt_perfdata *pd, const unsigned char *p,
		       uint64_t off, uint32_t size, struct bt_perf_record *rec,
		       bool collect)
{
	uint32_t asz;

	if (size < PD_REC_HDR + PD_ATTR_SIZE_VER0)
		return pd_bad(pd, off, "HEADER_ATTR of %u bytes, too short for "
			      "an attr", size);
	asz = bt_le32(p + PD_REC_HDR + 4);
	if (!asz)
		asz = PD_ATTR_SIZE_VER0;
	if (asz < PD_ATTR_SIZE_VER0 || asz > size - PD_REC_HDR)
		return pd_bad(pd, off + PD_REC_HDR + 4, "attr.size %u does "
			      "not fit HEADER_ATTR of %u bytes", asz, size);
	if (collect) {
		int err = pd_attr_add(pd, p + PD_REC_HDR, asz,
				      off + PD_REC_HDR, p + PD_REC_HDR + asz,
				      (size - PD_REC_HDR - asz) / 8);
		if (err)
			return err;
	}
	for (size_t i = 0; i < pd->nr_attrs; i++) {
		if (pd->attrs[i].raw == p + PD_REC_HDR) {
			rec->u.attr.index = (uint32_t)i;
			pd->nr_attrs_now = i + 1;
		}
	}
	return 0;
}

static int rec_kernel(struct bt_perfdata *pd, const unsigned char *p,
		      uint64_t off, uint32_t size, struct bt_perf_record *rec)
{
	uint32_t ts;
	int err;

	switch (rec->type) {
	case BT_PERF_REC_MMAP:
	case BT_PERF_REC_MMAP2: {
		uint32_t fixed = rec->type == BT_PERF_REC_MMAP ? 40 : 72;

		err = rec_sample_id(pd, p, off, size, fixed, rec, &ts);
		if (err)
			return err;
		rec->u.mmap.pid = bt_le32(p + 8);
		rec->u.mmap.tid = bt_le32(p + 12);
		rec->u.mmap.addr = bt_le64(p + 16);
		rec->u.mmap.len = bt_le64(p + 24);
		rec->u.mmap.pgoff = bt_le64(p + 32);
		if (rec->type == BT_PERF_REC_MMAP2) {
			if (rec->misc & BT_PERF_MISC_MMAP_BUILD_ID) {
				uint8_t n = p[40];

				if (n > 20)
					return pd_bad(pd, off + 40, "MMAP2 "
						      "build-id size %u over "
						      "20", n);
				rec->u.mmap.build_id_size = n;
				memcpy(rec->u.mmap.build_id, p + 44, n);
			} else {
				rec->u.mmap.maj = bt_le32(p + 40);
				rec->u.mmap.min = bt_le32(p + 44);
				rec->u.mmap.ino = bt_le64(p + 48);
				rec->u.mmap.ino_generation = bt_le64(p + 56);
			}
			rec->u.mmap.prot = bt_le32(p + 64);
			rec->u.mmap.flags = bt_le32(p + 68);
		}
		return rec_string(pd, p, off, fixed, size - ts,
				  &rec->u.mmap.filename);
	}
	case BT_PERF_REC_COMM:
		err = rec_sample_id(pd, p, off, size, 16, rec, &ts);
		if (err)
			return err;
		rec->u.comm.pid = bt_le32(p + 8);
		rec->u.comm.tid = bt_le32(p + 12);
		rec->u.comm.exec = rec->misc & BT_PERF_MISC_COMM_EXEC;
		return rec_string(pd, p, off, 16, size - ts,
				  &rec->u.comm.comm);
	case BT_PERF_REC_FORK:
	case BT_PERF_REC_EXIT:
		err = rec_sample_id(pd, p, off, size, 32, rec, &ts);
		if (err)
			return err;
		rec->u.fork.pid = bt_le32(p + 8);
		rec->u.fork.ppid = bt_le32(p + 12);
		rec->u.fork.tid = bt_le32(p + 16);
		rec->u.fork.ptid = bt_le32(p + 20);
		rec->u.fork.time = bt_le64(p + 24);
		return 0;
	case BT_PERF_REC_LOST:
		err = rec_sample_id(pd, p, off, size, 24, rec, &ts);
		if (err)
			return err;
		rec->u.lost.id = bt_le64(p + 8);
		rec->u.lost.lost = bt_le64(p + 16);
		return 0;
	case BT_PERF_REC_LOST_SAMPLES:
		err = rec_sample_id(pd, p, off, size, 16, rec, &ts);
		if (err)
			return err;
		rec->u.lost_samples.lost = bt_le64(p + 8);
		return 0;
	case BT_PERF_REC_THROTTLE:
	case BT_PERF_REC_UNTHROTTLE:
		return rec_sample_id(pd, p, off, size, 32, rec, &ts);
	case BT_PERF_REC_AUX:
		err = rec_sample_id(pd, p, off, size, 32, rec, &ts);
		if (err)
			return err;
		rec->u.aux.aux_offset = bt_le64(p + 8);
		rec->u.aux.aux_size = bt_le64(p + 16);
		rec->u.aux.flags = bt_le64(p + 24);
		return 0;
	case BT_PERF_REC_ITRACE_START:
		err = rec_sample_id(pd, p, off, size, 16, rec, &ts);
		if (err)
			return err;
		rec->u.itrace_start.pid = bt_le32(p + 8);
		rec->u.itrace_start.tid = bt_le32(p + 12);
		return 0;
	case BT_PERF_REC_SWITCH:
	case BT_PERF_REC_SWITCH_CPU_WIDE: {
		bool wide = rec->type == BT_PERF_REC_SWITCH_CPU_WIDE;

		err = rec_sample_id(pd, p, off, size, wide ? 16 : 8, rec, &ts);
		if (err)
			return err;
		rec->u.sw.out = rec->misc & BT_PERF_MISC_SWITCH_OUT;
		rec->u.sw.preempt = rec->misc & BT_PERF_MISC_SWITCH_PREEMPT;
		if (wide) {
			rec->u.sw.next_prev_pid = bt_le32(p + 8);
			rec->u.sw.next_prev_tid = bt_le32(p + 12);
		}
		return 0;
	}
	case BT_PERF_REC_SAMPLE:
		rec_sample(pd, p, size, rec);
		return 0;
	default:
		/* READ, NAMESPACES, KSYMBOL, ...: not needed for a trace. */
		return 0;
	}
}

static int rec_perf(struct bt_perfdata *pd, const unsigned char *p,
		    uint64_t off, uint32_t size, struct bt_perf_record *rec,
		    bool collect)
{
	uint64_t after = off + size;
	int err;

	switch (rec->type) {
	case BT_PERF_REC_HEADER_ATTR:
		return header_attr(pd, p, off, size, rec, collect);
	case BT_PERF_REC_HEADER_TRACING_DATA:
		if (size < 16)
			return pd_bad(pd, off, "TRACING_DATA of %u bytes",
				      size);
		rec->payload_size = bt_le32(p + 8);
		if (!pd_fits(after, rec->payload_size, pd->data_end))
			return pd_bad(pd, off, "TRACING_DATA of %" PRIu64
				      " bytes past the end of the data (%"
				      PRIu64 ")", rec->payload_size,
				      pd->data_end);
		rec->payload = pd->buf + after;
		return 0;
	case BT_PERF_REC_HEADER_BUILD_ID:
		err = pd_build_id(pd, off, size, &rec->u.build_id);
		if (!err && collect)
			err = pd_build_id_add(pd, &rec->u.build_id);
		return err;
	case BT_PERF_REC_AUXTRACE_INFO:
		if (size < PD_AUXTRACE_INFO_MIN)
			return pd_bad(pd, off, "AUXTRACE_INFO of %u bytes, "
				      "less than %u", size,
				      PD_AUXTRACE_INFO_MIN);
		return collect ? auxtrace_info(pd, p, off, size) : 0;
	case BT_PERF_REC_AUXTRACE:
		if (size < PD_AUXTRACE_SIZE)
			return pd_bad(pd, off, "AUXTRACE of %u bytes, less "
				      "than %u", size, PD_AUXTRACE_SIZE);
		rec->payload_size = bt_le64(p + 8);
		rec->u.auxtrace.size = rec->payload_size;
		rec->u.auxtrace.offset = bt_le64(p + 16);
		rec->u.auxtrace.reference = bt_le64(p + 24);
		rec->u.auxtrace.idx = bt_le32(p + 32);
		rec->u.auxtrace.tid = bt_le32(p + 36);
		rec->u.auxtrace.cpu = bt_le32(p + 40);
		if (!pd_fits(after, rec->payload_size, pd->data_end))
			return pd_bad(pd, off + 8, "AUXTRACE trace of %" PRIu64
				      " bytes at %" PRIu64 " past the end of "
				      "the data (%" PRIu64 ")",
				      rec->payload_size, after, pd->data_end);
		rec->payload = pd->buf + after;
		return collect ? aux_add(pd, rec) : 0;
	case BT_PERF_REC_TIME_CONV:
		if (size < PD_TIME_CONV_MIN)
			return pd_bad(pd, off, "TIME_CONV of %u bytes, less "
				      "than %u", size, PD_TIME_CONV_MIN);
		if (collect)
			time_conv(pd, p, size);
		return 0;
	case BT_PERF_REC_HEADER_FEATURE:
		if (size < 16)
			return pd_bad(pd, off, "HEADER_FEATURE of %u bytes",
				      size);
		rec->u.feature.feat_id = bt_le64(p + 8);
		return collect ? pd_feature(pd, rec->u.feature.feat_id,
					    off + 16, size - 16) : 0;
	case BT_PERF_REC_COMPRESSED:
		if (collect)
			pr_warn("perf.data: %s: offset %" PRIu64 ": compressed "
				"records are not supported; their contents are "
				"skipped", pd->name, off);
		return 0;
	default:
		/* FINISHED_ROUND, ID_INDEX, THREAD_MAP, ...: nothing to do. */
		return 0;
	}
}

int pd_record(struct bt_perfdata *pd, uint64_t off, struct bt_perf_record *rec,
	      uint64_t *next, bool collect)
{
	const unsigned char *p = pd->buf + off;
	uint32_t size;
	int err;

	memset(rec, 0, sizeof(*rec));
	if (!pd_fits(off, PD_REC_HDR, pd->data_end))
		return pd_bad(pd, off, "truncated record header (%" PRIu64
			      " bytes left of the data)", pd->data_end - off);
	rec->type = bt_le32(p);
	rec->misc = bt_le16(p + 4);
	rec->size = size = bt_le16(p + 6);
	rec->offset = off;
	rec->raw = p;
	if (size < PD_REC_HDR)
		return pd_bad(pd, off, "record type %u of size %u, less than "
			      "its %u-byte header", rec->type, size,
			      PD_REC_HDR);
	if (!pd_fits(off, size, pd->data_end))
		return pd_bad(pd, off, "record type %u of %u bytes past the "
			      "end of the data (%" PRIu64 ")", rec->type, size,
			      pd->data_end);
	if (rec->type < BT_PERF_REC_HEADER_ATTR)
		err = rec_kernel(pd, p, off, size, rec);
	else
		err = rec_perf(pd, p, off, size, rec, collect);
	if (err)
		return err;
	*next = off + size + rec->payload_size;
	return 0;
}
