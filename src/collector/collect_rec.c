// SPDX-License-Identifier: BSD-3-Clause
/*
 * Data-ring records -> bt.* events. Records come from
 * bt_perf_ring__drain() (which checks every header against the ring);
 * here every field is checked against its record's size before it is
 * read, since the ring is memory another party writes. A record that
 * does not parse is skipped with a warning naming the ring, its type and
 * size; translation goes on with the next.
 *
 * Layouts (include/uapi/linux/perf_event.h): the sample_id trailer of a
 * non-sample record holds, in order, TID, TIME, ID, STREAM_ID, CPU and
 * IDENTIFIER as sample_type selects them; PERF_RECORD_SAMPLE holds
 * IDENTIFIER, IP, TID, TIME, ADDR, ID, STREAM_ID, CPU, PERIOD, READ,
 * CALLCHAIN, RAW, BRANCH_STACK, REGS_USER, STACK_USER, WEIGHT, DATA_SRC,
 * TRANSACTION, REGS_INTR, ... in that order.
 */
#include "collector/collect.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/utf8.h"
#include "ds/pmu_attr.h"
#include "ds/sim.h"

int collect_ring_init(struct collect_ring *cr, struct bt_pmu *pmu,
		      struct bt_pmu_event *ev,
		      const struct bt_pmu_buffers *buf, bool trace)
{
	const struct perf_event_attr *a = bt_pmu_event__attr(pmu, ev);
	int err;

	memset(cr, 0, sizeof(*cr));
	cr->fd = -1;
	err = bt_perf_ring__init(&cr->r, buf);
	if (err)
		return err;
	cr->ok = true;
	cr->trace = trace;
	cr->fd = bt_pmu__ops(pmu)->fd(pmu, ev);
	if (a) {
		cr->sample_type = a->sample_type;
		cr->regs_intr = a->sample_regs_intr;
		cr->regs_user = a->sample_regs_user;
		cr->branch_sample_type = a->branch_sample_type;
		cr->sample_id_all = a->sample_id_all;
	} else {
		/* ours always have these (perf_attr.c, sim.c) */
		cr->sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_TIME |
				  PERF_SAMPLE_CPU | PERF_SAMPLE_IDENTIFIER;
		cr->sample_id_all = true;
	}
	return 0;
}

void collect_ring_fini(struct collect_ring *cr)
{
	if (cr->ok)
		bt_perf_ring__fini(&cr->r);
	cr->ok = false;
}

/* ---- reading fields --------------------------------------------------- */

struct rd {
	const unsigned char *p;
	size_t len, at;
	bool bad;
};

static uint64_t rd64(struct rd *r)
{
	uint64_t v = 0;

	if (r->bad || r->len - r->at < 8) {
		r->bad = true;
		return 0;
	}
	memcpy(&v, r->p + r->at, 8);
	r->at += 8;
	return v;
}

static void rd_pair(struct rd *r, uint32_t *a, uint32_t *b)
{
	uint64_t v = rd64(r);

	*a = (uint32_t)v;
	*b = (uint32_t)(v >> 32);
}

static void rd_skip(struct rd *r, uint64_t n)
{
	if (r->bad || r->len - r->at < n) {
		r->bad = true;
		return;
	}
	r->at += (size_t)n;
}

/* The sample_id trailer (or a sample's leading id fields). */
struct sid {
	int32_t pid, tid, cpu;
	uint64_t time;
	bool has_time;
};

static unsigned sid_words(uint64_t st)
{
	return !!(st & PERF_SAMPLE_TID) + !!(st & PERF_SAMPLE_TIME) +
	       !!(st & PERF_SAMPLE_ID) + !!(st & PERF_SAMPLE_STREAM_ID) +
	       !!(st & PERF_SAMPLE_CPU) + !!(st & PERF_SAMPLE_IDENTIFIER);
}

/*
 * Split a non-sample record: @body (after the header) less the trailer;
 * fill @sid from the trailer. Returns the body's length, or -1.
 */
static long split_trailer(const struct collect_ring *cr,
			  const struct perf_event_header *h,
			  const unsigned char **body, struct sid *sid)
{
	size_t len = h->size - sizeof(*h);
	size_t tl = cr->sample_id_all ? 8u * sid_words(cr->sample_type) : 0;
	struct rd r;
	uint32_t a, b;

	sid->pid = sid->tid = sid->cpu = -1;
	sid->time = 0;
	sid->has_time = false;
	*body = (const unsigned char *)(h + 1);
	if (tl > len)
		return -1;
	r = (struct rd){ .p = *body + len - tl, .len = tl };
	if (cr->sample_id_all) {
		uint64_t st = cr->sample_type;

		if (st & PERF_SAMPLE_TID) {
			rd_pair(&r, &a, &b);
			sid->pid = (int32_t)a;
			sid->tid = (int32_t)b;
		}
		if (st & PERF_SAMPLE_TIME) {
			sid->time = rd64(&r);
			sid->has_time = true;
		}
		if (st & PERF_SAMPLE_ID)
			rd64(&r);
		if (st & PERF_SAMPLE_STREAM_ID)
			rd64(&r);
		if (st & PERF_SAMPLE_CPU) {
			rd_pair(&r, &a, &b);
			sid->cpu = (int32_t)a;
		}
	}
	return (long)(len - tl);
}

static void bad_record(const struct collect_source *so,
		       const struct collect_ring *cr,
		       const struct perf_event_header *h, const char *why)
{
	pr_warn("collector: slot %u: %s ring: record type %u size %u at "
		"data_tail %llu: %s; skipped", so->slot->index,
		cr->trace ? "trace" : "sideband", h->type, h->size,
		(unsigned long long)cr->r.page->data_tail, why);
}

/*
 * A string field of @avail bytes, up to its NUL and at most @cap - 1
 * bytes, into @dst[@cap], made valid UTF-8.
 */
static size_t clean_str(char *dst, size_t cap, const unsigned char *src,
			size_t avail)
{
	size_t n = strnlen((const char *)src,
			   avail < cap - 1 ? avail : cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
	if (!bt_utf8_valid((const unsigned char *)dst, n)) {
		/* not UTF-8 (a path is bytes): keep ASCII, mark the rest */
		for (size_t i = 0; i < n; i++) {
			if ((unsigned char)dst[i] >= 0x80)
				dst[i] = '?';
		}
	}
	return n;
}

static int32_t sid_cpu(const struct collect_source *so, const struct sid *s)
{
	if (s->cpu >= 0)
		return s->cpu;
	return so->src.target.kind == BT_TARGET_CPU ? so->src.target.id : -1;
}

/* A sideband record's event, counted as sideband. */
static int emit_sideband(struct collect_source *so, uint32_t id,
			 const struct bt_event_value *v, const struct sid *s)
{
	collect_count(&so->slot->c->st_sideband, 1);
	return collect_emit_values(so->slot, id, v, sid_cpu(so, s));
}

/* ---- the records ------------------------------------------------------ */

static int rec_mmap2(struct collect_source *so, const struct collect_ring *cr,
		     const struct perf_event_header *h)
{
	struct bt_event_value v[BT_MMAP__N] = { 0 };
	const unsigned char *b;
	struct sid s;
	long len = split_trailer(cr, h, &b, &s);
	char file[4097];
	uint32_t u32[2];
	uint64_t u64[3];

	if (len < 64 + 8) {
		bad_record(so, cr, h, "MMAP2 too short");
		return 0;
	}
	memcpy(u32, b, 8);
	memcpy(u64, b + 8, 24);
	v[BT_MMAP_PID].i = (int32_t)u32[0];
	v[BT_MMAP_TID].i = (int32_t)u32[1];
	v[BT_MMAP_TIME].u = s.time;
	v[BT_MMAP_ADDR].u = u64[0];
	v[BT_MMAP_LEN].u = u64[1];
	v[BT_MMAP_PGOFF].u = u64[2];
	/* never NULL, even empty: the encoder hands it to memcpy */
	v[BT_MMAP_BUILD_ID].p = "";
	if (h->misc & PERF_RECORD_MISC_MMAP_BUILD_ID) {
		uint8_t n = b[32];

		v[BT_MMAP_BUILD_ID].p = b + 36;
		v[BT_MMAP_BUILD_ID].len = n > 20 ? 20 : n;
	} else {
		memcpy(u32, b + 32, 8);
		v[BT_MMAP_MAJ].u = u32[0];
		v[BT_MMAP_MIN].u = u32[1];
		memcpy(&v[BT_MMAP_INO].u, b + 40, 8);
	}
	memcpy(u32, b + 56, 8);
	v[BT_MMAP_PROT].u = u32[0];
	v[BT_MMAP_FLAGS].u = u32[1];
	v[BT_MMAP_FILE].len = clean_str(file, sizeof(file), b + 64,
					(size_t)len - 64);
	v[BT_MMAP_FILE].p = file;
	return emit_sideband(so, BT_EVID_MMAP, v, &s);
}

static int rec_comm(struct collect_source *so, const struct collect_ring *cr,
		    const struct perf_event_header *h)
{
	struct bt_event_value v[BT_COMM__N] = { 0 };
	const unsigned char *b;
	struct sid s;
	long len = split_trailer(cr, h, &b, &s);
	char comm[64];
	uint32_t u32[2];

	if (len < 8 + 8) {
		bad_record(so, cr, h, "COMM too short");
		return 0;
	}
	memcpy(u32, b, 8);
	v[BT_COMM_PID].i = (int32_t)u32[0];
	v[BT_COMM_TID].i = (int32_t)u32[1];
	v[BT_COMM_TIME].u = s.time;
	v[BT_COMM_COMM].len = clean_str(comm, sizeof(comm), b + 8,
					(size_t)len - 8);
	v[BT_COMM_COMM].p = comm;
	v[BT_COMM_EXEC].u = !!(h->misc & PERF_RECORD_MISC_COMM_EXEC);
	return emit_sideband(so, BT_EVID_COMM, v, &s);
}

static int rec_task(struct collect_source *so, const struct collect_ring *cr,
		    const struct perf_event_header *h)
{
	struct bt_event_value v[BT_TASK__N] = { 0 };
	const char *kind;
	const unsigned char *b;
	struct sid s;
	long len = split_trailer(cr, h, &b, &s);
	int32_t f[4];
	uint64_t t;

	if (h->type == PERF_RECORD_ITRACE_START) {
		if (len < 8) {
			bad_record(so, cr, h, "ITRACE_START too short");
			return 0;
		}
		memcpy(f, b, 8);
		kind = "itrace_start";
		f[2] = f[1];		/* pid, tid: no parent ids */
		f[1] = -1;
		f[3] = -1;
		t = s.time;
		/* who the AUX bytes that follow are from */
		so->pid = f[0];
		so->tid = f[2];
		if (s.cpu >= 0)
			so->cpu = s.cpu;
	} else {
		if (len < 24) {
			bad_record(so, cr, h, "FORK/EXIT too short");
			return 0;
		}
		memcpy(f, b, 16);
		memcpy(&t, b + 16, 8);
		kind = h->type == PERF_RECORD_FORK ? "fork" : "exit";
	}
	v[BT_TASK_KIND].p = kind;
	v[BT_TASK_KIND].len = strlen(kind);
	v[BT_TASK_PID].i = f[0];
	v[BT_TASK_PPID].i = f[1];
	v[BT_TASK_TID].i = f[2];
	v[BT_TASK_PTID].i = f[3];
	v[BT_TASK_TIME].u = t;
	return emit_sideband(so, BT_EVID_TASK, v, &s);
}

static int rec_switch(struct collect_source *so, const struct collect_ring *cr,
		      const struct perf_event_header *h)
{
	struct bt_event_value v[BT_SWITCH__N] = { 0 };
	const unsigned char *b;
	struct sid s;
	long len = split_trailer(cr, h, &b, &s);
	int32_t o[2] = { -1, -1 };

	if (len < 0 || (h->type == PERF_RECORD_SWITCH_CPU_WIDE && len < 8)) {
		bad_record(so, cr, h, "SWITCH too short");
		return 0;
	}
	if (h->type == PERF_RECORD_SWITCH_CPU_WIDE)
		memcpy(o, b, 8);
	v[BT_SWITCH_CPU].i = sid_cpu(so, &s);
	v[BT_SWITCH_TIME].u = s.time;
	v[BT_SWITCH_OUT].u = !!(h->misc & PERF_RECORD_MISC_SWITCH_OUT);
	v[BT_SWITCH_PID].i = s.pid;
	v[BT_SWITCH_TID].i = s.tid;
	/* out: the task switched to; in: the task switched from */
	v[BT_SWITCH_NEXT_PID].i = o[0];
	v[BT_SWITCH_NEXT_TID].i = o[1];
	return emit_sideband(so, BT_EVID_SWITCH, v, &s);
}

static int rec_lost(struct collect_source *so, const struct collect_ring *cr,
		    const struct perf_event_header *h)
{
	const unsigned char *b;
	struct sid s;
	long len = split_trailer(cr, h, &b, &s);
	uint64_t n;

	if (h->type == PERF_RECORD_LOST) {
		if (len < 16) {
			bad_record(so, cr, h, "LOST too short");
			return 0;
		}
		memcpy(&n, b + 8, 8);
	} else {
		if (len < 8) {
			bad_record(so, cr, h, "LOST_SAMPLES too short");
			return 0;
		}
		memcpy(&n, b, 8);
	}
	collect_count(&so->slot->c->st_lost_records, n);
	return collect_lost(so->slot, sid_cpu(so, &s), s.tid,
			    s.has_time ? s.time : collect_perf_now(so->slot),
			    "data", n);
}

static int rec_aux(struct collect_source *so, const struct collect_ring *cr,
		   const struct perf_event_header *h)
{
	struct bt_event_value v[BT_AUX__N] = { 0 };
	const unsigned char *b;
	struct sid s;
	long len = split_trailer(cr, h, &b, &s);
	const uint64_t bad = PERF_AUX_FLAG_TRUNCATED | PERF_AUX_FLAG_OVERWRITE |
			     PERF_AUX_FLAG_PARTIAL;
	uint64_t f[3];
	int w;

	if (len < 24) {
		bad_record(so, cr, h, "AUX too short");
		return 0;
	}
	memcpy(f, b, 24);
	if (s.cpu >= 0)
		so->cpu = s.cpu;
	v[BT_AUX_CPU].i = sid_cpu(so, &s);
	v[BT_AUX_TID].i = s.tid;
	v[BT_AUX_TIME].u = s.time;
	v[BT_AUX_OFF].u = f[0];
	v[BT_AUX_SIZE].u = f[1];
	v[BT_AUX_FLAGS].u = f[2];
	w = collect_emit_values(so->slot, BT_EVID_AUX, v, sid_cpu(so, &s));
	if (f[2] & bad)
		collect_count(&so->slot->c->st_aux_flagged, 1);
	if ((f[2] & PERF_AUX_FLAG_TRUNCATED) &&
	    so->slot->c->o.mode == BT_MODE_STREAM) {
		/*
		 * The hardware had no room and stopped: trace is missing
		 * from here until the event runs again, an amount nobody
		 * counted (0: unknown). The event was disabled; it is
		 * enabled again once this drain has freed room.
		 */
		collect_lost(so->slot, sid_cpu(so, &s), s.tid, s.time, "aux",
			     0);
		so->reenable = true;
	}
	return w;
}

/* ---- samples ---------------------------------------------------------- */

struct sample {
	int32_t pid, tid, cpu;
	uint64_t ip, addr, time, period, weight, data_src;
	const unsigned char *br;	/* branch entries */
	uint64_t nbr;
};

static int parse_sample(const struct collect_ring *cr,
			const struct perf_event_header *h, struct sample *sm)
{
	uint64_t st = cr->sample_type;
	struct rd r = { .p = (const unsigned char *)(h + 1),
			.len = h->size - sizeof(*h) };
	uint32_t a, b;

	memset(sm, 0, sizeof(*sm));
	sm->pid = sm->tid = sm->cpu = -1;
	if (st & PERF_SAMPLE_IDENTIFIER)
		rd64(&r);
	if (st & PERF_SAMPLE_IP)
		sm->ip = rd64(&r);
	if (st & PERF_SAMPLE_TID) {
		rd_pair(&r, &a, &b);
		sm->pid = (int32_t)a;
		sm->tid = (int32_t)b;
	}
	if (st & PERF_SAMPLE_TIME)
		sm->time = rd64(&r);
	if (st & PERF_SAMPLE_ADDR)
		sm->addr = rd64(&r);
	if (st & PERF_SAMPLE_ID)
		rd64(&r);
	if (st & PERF_SAMPLE_STREAM_ID)
		rd64(&r);
	if (st & PERF_SAMPLE_CPU) {
		rd_pair(&r, &a, &b);
		sm->cpu = (int32_t)a;
	}
	if (st & PERF_SAMPLE_PERIOD)
		sm->period = rd64(&r);
	if (st & PERF_SAMPLE_READ)
		return -1;	/* read_format not followed: never ours */
	if (st & PERF_SAMPLE_CALLCHAIN) {
		uint64_t n = rd64(&r);

		if (n > 65536)
			return -1;
		rd_skip(&r, n * 8);
	}
	if (st & PERF_SAMPLE_RAW) {
		/* u32 size, then the data, 8-aligned with it */
		uint64_t w = rd64(&r);
		uint32_t sz = (uint32_t)w;

		r.at -= 4;
		rd_skip(&r, sz);
		if (!r.bad && r.at % 8)
			rd_skip(&r, 8 - r.at % 8);
	}
	if (st & PERF_SAMPLE_BRANCH_STACK) {
		sm->nbr = rd64(&r);
		if (cr->branch_sample_type & PERF_SAMPLE_BRANCH_HW_INDEX)
			rd64(&r);
		if (sm->nbr > 4096)
			return -1;
		sm->br = r.p + r.at;
		rd_skip(&r, sm->nbr * 24);
	}
	if (st & PERF_SAMPLE_REGS_USER) {
		if (rd64(&r))
			rd_skip(&r, 8ull * __builtin_popcountll(cr->regs_user));
	}
	if (st & PERF_SAMPLE_STACK_USER) {
		uint64_t sz = rd64(&r);

		if (sz) {
			rd_skip(&r, sz);
			rd64(&r);
		}
	}
	if (st & (PERF_SAMPLE_WEIGHT | PERF_SAMPLE_WEIGHT_STRUCT))
		sm->weight = rd64(&r);
	if (st & PERF_SAMPLE_DATA_SRC)
		sm->data_src = rd64(&r);
	if (st & PERF_SAMPLE_TRANSACTION)
		rd64(&r);
	if (st & PERF_SAMPLE_REGS_INTR) {
		if (rd64(&r))
			rd_skip(&r, 8ull * __builtin_popcountll(cr->regs_intr));
	}
	return r.bad ? -1 : 0;
}

void collect_flush_pending(struct collect_source *so)
{
	struct collect_slot *sl = so->slot;
	struct bt_event_value v[BT_BRANCH__N] = { 0 };

	if (!so->npend)
		return;
	v[BT_BRANCH_CPU].i = so->pend_cpu;
	v[BT_BRANCH_PID].i = so->pend_pid;
	v[BT_BRANCH_TID].i = so->pend_tid;
	v[BT_BRANCH_TIME].u = so->pend_time;
	v[BT_BRANCH_RECS].p = so->pend;
	v[BT_BRANCH_RECS].len = (size_t)so->npend * BT_BREC_SIZE;
	collect_count(&sl->c->st_branches, so->npend);
	collect_emit_values(sl, BT_EVID_BRANCH, v, so->pend_cpu);
	so->npend = 0;
}

/* The intel_bts fallback: one branch per sample, ip = from, addr = to. */
static int sample_branch(struct collect_source *so, const struct sample *sm)
{
	unsigned char *p;
	uint64_t rec[3] = { sm->ip, sm->addr, 0 };

	if (so->npend && (sm->tid != so->pend_tid || sm->cpu != so->pend_cpu))
		collect_flush_pending(so);
	if (!so->pend) {
		uint32_t cap = (so->slot->c->max_payload - COLLECT_HDR_ROOM) /
			       BT_BREC_SIZE;

		so->pend = malloc((size_t)cap * BT_BREC_SIZE);
		if (!so->pend)
			return -ENOMEM;
		so->cap_pend = cap;
	}
	if (!so->npend) {
		so->pend_pid = sm->pid;
		so->pend_tid = sm->tid;
		so->pend_cpu = sm->cpu >= 0 ? sm->cpu : so->cpu;
		so->pend_time = sm->time;
	}
	p = so->pend + (size_t)so->npend * BT_BREC_SIZE;
	memcpy(p, rec, sizeof(rec));
	if (++so->npend == so->cap_pend)
		collect_flush_pending(so);
	return 0;
}

static int rec_sample(struct collect_source *so, const struct collect_ring *cr,
		      const struct perf_event_header *h)
{
	struct collect_slot *sl = so->slot;
	struct sample sm;
	int cpu;

	if (parse_sample(cr, h, &sm) < 0) {
		bad_record(so, cr, h, "sample does not match its sample_type");
		return 0;
	}
	cpu = sm.cpu >= 0 ? sm.cpu : so->cpu;
	if (sm.br) {
		struct bt_event_value v[BT_LBR__N] = { 0 };

		v[BT_LBR_CPU].i = cpu;
		v[BT_LBR_PID].i = sm.pid;
		v[BT_LBR_TID].i = sm.tid;
		v[BT_LBR_TIME].u = sm.time;
		v[BT_LBR_IP].u = sm.ip;
		/* perf_branch_entry is from, to, flags: our record, as is */
		v[BT_LBR_RECS].p = sm.br;
		v[BT_LBR_RECS].len = (size_t)sm.nbr * BT_BREC_SIZE;
		collect_count(&sl->c->st_branches, sm.nbr);
		return collect_emit_values(sl, BT_EVID_LBR, v, cpu);
	}
	if (so->src.facility == BT_FAC_BTS || so->src.facility == BT_FAC_STEP)
		return sample_branch(so, &sm);
	{
		struct bt_event_value v[BT_PEBS__N] = { 0 };

		v[BT_PEBS_CPU].i = cpu;
		v[BT_PEBS_PID].i = sm.pid;
		v[BT_PEBS_TID].i = sm.tid;
		v[BT_PEBS_TIME].u = sm.time;
		v[BT_PEBS_IP].u = sm.ip;
		v[BT_PEBS_ADDR].u = sm.addr;
		v[BT_PEBS_PERIOD].u = sm.period;
		v[BT_PEBS_WEIGHT].u = sm.weight;
		v[BT_PEBS_DATA_SRC].u = sm.data_src;
		return collect_emit_values(sl, BT_EVID_PEBS, v, cpu);
	}
}

/* ---- the drain -------------------------------------------------------- */

struct drain_ctx {
	struct collect_source *so;
	struct collect_ring *cr;
};

static int on_record(void *ctx, const struct perf_event_header *h)
{
	struct drain_ctx *d = ctx;
	struct collect_source *so = d->so;
	const struct collect_ring *cr = d->cr;
	int err = 0;

	switch (h->type) {
	case PERF_RECORD_MMAP2:
		err = rec_mmap2(so, cr, h);
		break;
	case PERF_RECORD_COMM:
		err = rec_comm(so, cr, h);
		break;
	case PERF_RECORD_FORK:
	case PERF_RECORD_EXIT:
	case PERF_RECORD_ITRACE_START:
		err = rec_task(so, cr, h);
		break;
	case PERF_RECORD_SWITCH:
	case PERF_RECORD_SWITCH_CPU_WIDE:
		err = rec_switch(so, cr, h);
		break;
	case PERF_RECORD_LOST:
	case PERF_RECORD_LOST_SAMPLES:
		err = rec_lost(so, cr, h);
		break;
	case PERF_RECORD_AUX:
		err = rec_aux(so, cr, h);
		break;
	case PERF_RECORD_SAMPLE:
		err = rec_sample(so, cr, h);
		break;
	default:
		/* MMAP (mmap2 is asked for), THROTTLE, ...: not ours to keep */
		pr_debug("collector: slot %u: record type %u ignored",
			 so->slot->index, h->type);
		break;
	}
	/* A refused or unencodable event is counted; go on. */
	return err == -ENOMEM ? err : 0;
}

long collect_drain_ring(struct collect_source *so, struct collect_ring *cr)
{
	struct drain_ctx d = { .so = so, .cr = cr };
	int n;

	if (!cr->ok)
		return 0;
	n = bt_perf_ring__drain(&cr->r, on_record, &d);
	collect_flush_pending(so);
	if (n == -EPROTO) {
		/*
		 * Garbage in the ring (the warning said where): nothing in
		 * it can be framed any more. Skip to the head, say so.
		 */
		uint64_t head = __atomic_load_n(&cr->r.page->data_head,
						__ATOMIC_ACQUIRE);

		__atomic_store_n(&cr->r.page->data_tail, head,
				 __ATOMIC_RELEASE);
		collect_lost(so->slot, so->cpu, so->tid,
			     collect_perf_now(so->slot), "data", 0);
		return 0;
	}
	return n;
}
