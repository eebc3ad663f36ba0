// SPDX-License-Identifier: BSD-3-Clause
/*
 * The sim backend: the kernel's side of perf as a consumer sees it, read
 * through the perf_event_mmap_page's head and tail only, plus the
 * model's hardware side (DS areas, ToPA) and its rules (exclusivity,
 * mlock accounting).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <btrail/ds.h>

#include "ds/sim.h"
#include "ds/sim_model.h"
#include "helpers/testutil.h"

#define TID	4242
#define TID2	4343
#define PG	4096ull

/* ---- helpers ------------------------------------------------------------ */

static struct bt_pmu *new_sim_opts(uint64_t mlock_kb, uint64_t rlimit,
				   bool cap)
{
	struct bt_sim_opts o = {
		.sz = sizeof(o), .mlock_kb = mlock_kb, .rlimit_memlock = rlimit,
		.nr_cpus = 2, .cap_ipc_lock = cap,
	};
	struct bt_pmu *p = bt_pmu__new_sim(&o);

	cr_assert(ne(ptr, p, NULL));
	return p;
}

static struct bt_pmu *new_sim(void)
{
	return new_sim_opts(0, 0, true);
}

static int try_open(struct bt_pmu *p, uint32_t fac, uint32_t kind, int id,
		    bool sb, const struct bt_trace_config *c,
		    struct bt_pmu_event **ev)
{
	struct bt_pmu_open_args a = {
		.sz = sizeof(a), .facility = fac, .target = { kind, id },
		.config = c, .sideband = sb, .uid = 1000,
	};

	return bt_pmu__ops(p)->open(p, &a, ev);
}

static struct bt_pmu_event *open_ev(struct bt_pmu *p, uint32_t fac,
				    uint32_t kind, int id)
{
	struct bt_pmu_event *ev = NULL;

	cr_assert(eq(int, try_open(p, fac, kind, id, false, NULL, &ev), 0));
	return ev;
}

static struct bt_pmu_event *open_sb(struct bt_pmu *p, uint32_t kind, int id)
{
	struct bt_pmu_event *ev = NULL;

	cr_assert(eq(int, try_open(p, 0, kind, id, true, NULL, &ev), 0));
	return ev;
}

static void map_on(struct bt_pmu *p, struct bt_pmu_event *ev, uint64_t data,
		   uint64_t aux, bool ow, struct bt_pmu_buffers *b)
{
	cr_assert(eq(int, bt_pmu__ops(p)->map(p, ev, data, aux, ow, b), 0));
	cr_assert(eq(int, bt_pmu__ops(p)->enable(p, ev, true), 0));
}

static void close_ev(struct bt_pmu *p, struct bt_pmu_event *ev)
{
	bt_pmu__ops(p)->close(p, ev);
}

/* A record as the consumer copied it out of the ring. */
struct trec {
	unsigned char raw[1024];
};

static uint32_t rtype(const struct trec *r)
{
	struct perf_event_header h;

	memcpy(&h, r->raw, sizeof(h));
	return h.type;
}

static uint16_t rmisc(const struct trec *r)
{
	struct perf_event_header h;

	memcpy(&h, r->raw, sizeof(h));
	return h.misc;
}

static uint16_t rsize(const struct trec *r)
{
	struct perf_event_header h;

	memcpy(&h, r->raw, sizeof(h));
	return h.size;
}

static uint64_t r64(const struct trec *r, size_t off)
{
	uint64_t v;

	memcpy(&v, r->raw + off, sizeof(v));
	return v;
}

static uint32_t r32(const struct trec *r, size_t off)
{
	uint32_t v;

	memcpy(&v, r->raw + off, sizeof(v));
	return v;
}

/* The sample_id trailer: pid tid time cpu res id. */
struct sid {
	uint32_t pid, tid;
	uint64_t time;
	uint32_t cpu, res;
	uint64_t id;
};

static struct sid sid_of(const struct trec *r)
{
	struct sid s;

	memcpy(&s, r->raw + rsize(r) - sizeof(s), sizeof(s));
	return s;
}

static void ring_copy(const struct bt_pmu_buffers *b, uint64_t pos, void *dst,
		      size_t len)
{
	uint64_t off = pos & (b->data_size - 1);
	size_t first = len < b->data_size - off ? len : b->data_size - off;

	memcpy(dst, b->data + off, first);
	memcpy((unsigned char *)dst + first, b->data, len - first);
}

/* Everything in the data ring, as a perf consumer reads it. */
static int drain(const struct bt_pmu_buffers *b, struct trec *out, int max)
{
	struct perf_event_mmap_page *pc = b->page;
	/* relaxed: only this consumer stores data_tail */
	uint64_t tail = __atomic_load_n(&pc->data_tail, __ATOMIC_RELAXED);
	/* C: pairs with B, the kernel's release store of data_head */
	uint64_t head = __atomic_load_n(&pc->data_head, __ATOMIC_ACQUIRE);
	int n = 0;

	cr_assert(le(u64, head - tail, b->data_size));
	while (tail != head) {
		struct perf_event_header h;

		cr_assert(lt(int, n, max));
		ring_copy(b, tail, &h, sizeof(h));
		cr_assert(le(u64, h.size, sizeof(out->raw)));
		cr_assert(ge(u64, h.size, sizeof(h)));
		ring_copy(b, tail, out[n++].raw, h.size);
		tail += h.size;
	}
	/* D: pairs with A, the kernel's acquire load of data_tail */
	__atomic_store_n(&pc->data_tail, tail, __ATOMIC_RELEASE);
	return n;
}

static void aux_copy(const struct bt_pmu_buffers *b, uint64_t pos, void *dst,
		     size_t len)
{
	uint64_t off = pos & (b->aux_size - 1);
	size_t first = len < b->aux_size - off ? len : b->aux_size - off;

	memcpy(dst, b->aux + off, first);
	memcpy((unsigned char *)dst + first, b->aux, len - first);
}

static struct trec recs[512];

static int count_type(const struct trec *r, int n, uint32_t type)
{
	int c = 0;

	for (int i = 0; i < n; i++)
		c += rtype(&r[i]) == type;
	return c;
}

static const struct trec *find_type(const struct trec *r, int n,
				    uint32_t type, int nth)
{
	for (int i = 0; i < n; i++) {
		if (rtype(&r[i]) == type && nth-- == 0)
			return &r[i];
	}
	return NULL;
}

/* ---- construction and arguments ----------------------------------------- */

Test(sim, new_sim_rejects_unknown_nonzero_option_bytes)
{
	struct {
		struct bt_sim_opts o;
		uint64_t extra;
	} big = { .o = { .sz = sizeof(big) }, .extra = 1 };

	errno = 0;
	cr_assert(eq(ptr, bt_pmu__new_sim(&big.o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	big.o.sz = 4;
	cr_assert(eq(ptr, bt_pmu__new_sim(&big.o), NULL));
	cr_assert(eq(int, errno, EINVAL));
}

Test(sim, new_sim_with_defaults_is_a_sim_named_sim)
{
	struct bt_pmu *p = bt_pmu__new_sim(NULL);

	cr_assert(ne(ptr, p, NULL));
	cr_assert(bt_sim_is(p));
	cr_assert(not(bt_sim_is(NULL)));
	cr_assert(eq(str, (char *)bt_pmu__ops(p)->name, "sim"));
	bt_pmu__free(p);
}

Test(sim, open_rejects_invalid_arguments_with_exact_codes)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = (void *)1;
	struct bt_trace_config bad = { .sz = 2 };
	struct bt_trace_config mtc = { .sz = sizeof(mtc), .mtc_period = 16 };
	struct bt_pmu_open_args a = { .sz = sizeof(a) };

	cr_assert(eq(int, bt_pmu__ops(p)->open(p, NULL, &ev), -EINVAL));
	cr_assert(eq(int, bt_pmu__ops(p)->open(p, &a, NULL), -EINVAL));
	cr_assert(eq(int, try_open(p, BT_FAC__COUNT, BT_TARGET_TASK, TID, false,
				   NULL, &ev), -EINVAL));
	cr_assert(eq(ptr, ev, NULL));
	cr_assert(eq(int, try_open(p, BT_FAC_PT, BT_TARGET_ALL, 0, false, NULL,
				   &ev), -EINVAL));
	cr_assert(eq(int, try_open(p, BT_FAC_PT, BT_TARGET_CPU, 2, false, NULL,
				   &ev), -EINVAL));
	cr_assert(eq(int, try_open(p, BT_FAC_PT, BT_TARGET_CPU, -1, false, NULL,
				   &ev), -EINVAL));
	cr_assert(eq(int, try_open(p, BT_FAC_PT, BT_TARGET_TASK, 0, false, NULL,
				   &ev), -EINVAL));
	cr_assert(eq(int, try_open(p, BT_FAC_STEP, BT_TARGET_CPU, 0, false,
				   NULL, &ev), -EINVAL));
	cr_assert(eq(int, try_open(p, BT_FAC_PT, BT_TARGET_TASK, TID, false,
				   &bad, &ev), -EINVAL));
	cr_assert(eq(int, try_open(p, BT_FAC_PT, BT_TARGET_TASK, TID, false,
				   &mtc, &ev), -EINVAL));
	bt_pmu__free(p);
}

Test(sim, enable_fd_and_close_tolerate_a_null_event)
{
	struct bt_pmu *p = new_sim();

	cr_assert(eq(int, bt_pmu__ops(p)->enable(p, NULL, true), -EINVAL));
	cr_assert(eq(int, bt_pmu__ops(p)->fd(p, NULL), -1));
	cr_assert(eq(int, bt_pmu__ops(p)->unmap(p, NULL), -EINVAL));
	cr_assert(eq(int, bt_pmu__ops(p)->set_filter(p, NULL, "x"), -EINVAL));
	bt_pmu__ops(p)->close(p, NULL);
	bt_pmu__free(p);
	bt_pmu__free(NULL);
}

Test(sim, map_rejects_bad_sizes_and_aux_for_facilities_without_it)
{
	struct bt_pmu *p = new_sim();
	const struct bt_pmu_ops *o = bt_pmu__ops(p);
	struct bt_pmu_event *pt = open_ev(p, BT_FAC_PT, BT_TARGET_TASK, TID);
	struct bt_pmu_event *pebs = open_ev(p, BT_FAC_PEBS, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers b;

	cr_assert(eq(int, o->map(p, pt, 3 * PG, 0, false, &b), -EINVAL));
	cr_assert(eq(int, o->map(p, pt, 0, 0, false, &b), -EINVAL));
	cr_assert(eq(int, o->map(p, pt, 100, 0, false, &b), -EINVAL));
	cr_assert(eq(int, o->map(p, pt, PG, 3 * PG, false, &b), -EINVAL));
	cr_assert(eq(int, o->map(p, pt, PG, 0, true, &b), -EINVAL));
	cr_assert(eq(int, o->map(p, pt, PG, PG, false, NULL), -EINVAL));
	cr_assert(eq(int, o->map(p, pebs, PG, PG, false, &b), -EOPNOTSUPP));
	cr_assert(eq(int, o->unmap(p, pt), -EINVAL));
	cr_assert(eq(int, o->map(p, pt, PG, PG, false, &b), 0));
	cr_assert(eq(int, o->map(p, pt, PG, PG, false, &b), -EINVAL));
	cr_assert(eq(int, o->unmap(p, pt), 0));
	close_ev(p, pt);
	close_ev(p, pebs);
	bt_pmu__free(p);
}

Test(sim, the_page_carries_the_kernel_s_fields)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_ev(p, BT_FAC_PT, BT_TARGET_TASK, TID);
	struct perf_event_mmap_page *pc;
	struct bt_pmu_buffers b;
	uint64_t tsc, t, quot, rem;

	cr_assert(eq(int, bt_pmu__ops(p)->map(p, ev, 4 * PG, 8 * PG, false, &b),
		     0));
	pc = b.page;
	cr_assert(eq(u64, pc->data_offset, PG));
	cr_assert(eq(u64, pc->data_size, 4 * PG));
	cr_assert(eq(u64, pc->aux_offset, 5 * PG));
	cr_assert(eq(u64, pc->aux_size, 8 * PG));
	cr_assert(eq(u32, pc->size,
		     offsetof(struct perf_event_mmap_page, __reserved)));
	cr_assert(eq(u64, b.mapped, 13 * PG));
	cr_assert(eq(ptr, b.data, (unsigned char *)pc + PG));
	cr_assert(eq(int, (int)pc->cap_user_time_zero, 1));
	cr_assert(eq(u64, pc->data_head, 0));
	/* the documented TSC -> perf time conversion gives our timestamps */
	tsc = bt_sim_tsc(p);
	quot = tsc >> pc->time_shift;
	rem = tsc & ((1ull << pc->time_shift) - 1);
	t = pc->time_zero + quot * pc->time_mult +
	    ((rem * pc->time_mult) >> pc->time_shift);
	cr_assert(eq(u64, t, bt_sim__tsc_to_time(sim_of(p), tsc)));
	close_ev(p, ev);
	bt_pmu__free(p);
}

Test(sim, tsc_is_monotonic_at_the_configured_rate)
{
	struct bt_sim_opts o = { .sz = sizeof(o), .tsc_hz = 1000000000ull };
	struct bt_pmu *p = bt_pmu__new_sim(&o);
	uint64_t a, b;

	a = bt_sim_tsc(p);
	usleep(20000);
	b = bt_sim_tsc(p);
	cr_assert(ge(u64, b - a, 20000000ull));
	cr_assert(lt(u64, b - a, 2000000000ull));
	cr_assert(eq(u64, bt_sim_tsc(NULL), 0));
	bt_pmu__free(p);
}

/* ---- sideband ----------------------------------------------------------- */

Test(sim, sideband_records_have_the_kernel_s_types_sizes_and_sample_id)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_sb(p, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers b;
	const struct trec *r;
	struct stat st;
	struct sid s;
	int n;

	map_on(p, ev, 4 * PG, 0, false, &b);
	cr_assert(eq(int, bt_sim_comm(p, TID, TID, "prog", true), 0));
	cr_assert(eq(int, bt_sim_mmap2(p, TID, TID, 0x400000, 0x2000, 0,
				       PROT_READ | PROT_EXEC, MAP_PRIVATE,
				       "/bin/sh"), 0));
	cr_assert(eq(int, bt_sim_fork(p, TID2, TID, TID2, TID), 0));
	cr_assert(eq(int, bt_sim_exit(p, TID2, TID, TID2, TID), 0));
	n = drain(&b, recs, 512);
	cr_assert(eq(int, n, 4));

	r = &recs[0];
	cr_assert(eq(u32, rtype(r), PERF_RECORD_COMM));
	cr_assert(eq(u16, rmisc(r), PERF_RECORD_MISC_COMM_EXEC));
	cr_assert(eq(u16, rsize(r), 8 + 8 + 8 + 32));
	cr_assert(eq(str, (char *)r->raw + 16, "prog"));
	s = sid_of(r);
	cr_assert(eq(u32, s.pid, TID));
	cr_assert(eq(u32, s.tid, TID));
	cr_assert(eq(u64, s.id, ev->id));

	r = &recs[1];
	cr_assert(eq(u32, rtype(r), PERF_RECORD_MMAP2));
	cr_assert(eq(u16, rmisc(r), PERF_RECORD_MISC_USER));
	cr_assert(eq(u16, rsize(r), 8 + 64 + 8 + 32));	/* "/bin/sh\0" */
	cr_assert(eq(u64, r64(r, 8 + 8), 0x400000));
	cr_assert(eq(u64, r64(r, 8 + 16), 0x2000));
	cr_assert(eq(int, stat("/bin/sh", &st), 0));
	cr_assert(eq(u32, r32(r, 8 + 32), major(st.st_dev)));
	cr_assert(eq(u32, r32(r, 8 + 36), minor(st.st_dev)));
	cr_assert(eq(u64, r64(r, 8 + 40), st.st_ino));
	cr_assert(eq(u32, r32(r, 8 + 56), PROT_READ | PROT_EXEC));
	cr_assert(eq(str, (char *)r->raw + 8 + 64, "/bin/sh"));

	r = &recs[2];
	cr_assert(eq(u32, rtype(r), PERF_RECORD_FORK));
	cr_assert(eq(u16, rsize(r), 8 + 24 + 32));
	cr_assert(eq(u32, r32(r, 8), TID2));
	cr_assert(eq(u32, r32(r, 12), TID));
	s = sid_of(r);
	cr_assert(eq(u32, s.tid, TID));		/* current: the parent */

	r = &recs[3];
	cr_assert(eq(u32, rtype(r), PERF_RECORD_EXIT));
	s = sid_of(r);
	cr_assert(eq(u32, s.tid, TID2));	/* the child, followed */
	cr_assert(ge(u64, s.time, sid_of(&recs[0]).time));
	close_ev(p, ev);
	bt_pmu__free(p);
}

Test(sim, sideband_goes_only_to_events_of_its_context)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *a = open_sb(p, BT_TARGET_TASK, TID);
	struct bt_pmu_event *c1 = open_sb(p, BT_TARGET_CPU, 1);
	struct bt_pmu_buffers ba, bc;
	int n;

	map_on(p, a, 4 * PG, 0, false, &ba);
	map_on(p, c1, 4 * PG, 0, false, &bc);
	cr_assert(eq(int, bt_sim_comm(p, 777, 777, "other", false), 0));
	cr_assert(eq(int, drain(&ba, recs, 512), 0));
	cr_assert(eq(int, drain(&bc, recs, 512), 0));	/* 777 is on CPU 0 */
	/* a thread of TID (same pid) is TID's context */
	cr_assert(eq(int, bt_sim_comm(p, TID, TID + 1, "thr", false), 0));
	n = drain(&ba, recs, 512);
	cr_assert(eq(int, n, 1));
	cr_assert(eq(u32, sid_of(&recs[0]).tid, TID + 1));
	/* 777 runs on CPU 1 now: the CPU's event sees it */
	cr_assert(eq(int, bt_sim_switch(p, 1, 0, 0, 777, 777), 0));
	cr_assert(eq(int, drain(&bc, recs, 512), 2));
	cr_assert(eq(int, bt_sim_comm(p, 777, 777, "other2", false), 0));
	n = drain(&bc, recs, 512);
	cr_assert(eq(int, n, 1));
	cr_assert(eq(u32, sid_of(&recs[0]).cpu, 1));
	cr_assert(eq(int, drain(&ba, recs, 512), 0));
	close_ev(p, a);
	close_ev(p, c1);
	bt_pmu__free(p);
}

Test(sim, data_mappings_are_not_reported_with_mmap_data_off)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_sb(p, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers b;

	map_on(p, ev, 4 * PG, 0, false, &b);
	cr_assert(eq(int, bt_sim_mmap2(p, TID, TID, 0x1000, 0x1000, 0,
				       PROT_READ | PROT_WRITE, MAP_PRIVATE,
				       "//anon"), 0));
	cr_assert(eq(int, drain(&b, recs, 512), 0));
	close_ev(p, ev);
	bt_pmu__free(p);
}

Test(sim, switches_give_switch_per_task_and_switch_cpu_wide_per_cpu)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *t = open_sb(p, BT_TARGET_TASK, TID);
	struct bt_pmu_event *c = open_sb(p, BT_TARGET_CPU, 0);
	struct bt_pmu_buffers bt, bc;
	const struct trec *r;

	map_on(p, t, 4 * PG, 0, false, &bt);
	map_on(p, c, 4 * PG, 0, false, &bc);
	cr_assert(eq(int, bt_sim_switch(p, 0, TID, TID, 900, 901), 0));
	cr_assert(eq(int, drain(&bt, recs, 512), 1));
	r = &recs[0];
	cr_assert(eq(u32, rtype(r), PERF_RECORD_SWITCH));
	cr_assert(eq(u16, rmisc(r), PERF_RECORD_MISC_SWITCH_OUT));
	cr_assert(eq(u16, rsize(r), 8 + 32));
	cr_assert(eq(int, drain(&bc, recs, 512), 2));
	r = &recs[0];
	cr_assert(eq(u32, rtype(r), PERF_RECORD_SWITCH_CPU_WIDE));
	cr_assert(eq(u16, rmisc(r), PERF_RECORD_MISC_SWITCH_OUT));
	cr_assert(eq(u32, r32(r, 8), 900));		/* next pid */
	cr_assert(eq(u32, r32(r, 12), 901));		/* next tid */
	cr_assert(eq(u32, sid_of(r).tid, TID));
	r = &recs[1];
	cr_assert(eq(u16, rmisc(r), 0));
	cr_assert(eq(u32, r32(r, 12), TID));		/* prev tid */
	cr_assert(eq(u32, sid_of(r).tid, 901));
	cr_assert(eq(int, bt_sim_switch(p, 0, 900, 901, TID, TID), 0));
	cr_assert(eq(int, drain(&bt, recs, 512), 1));
	cr_assert(eq(u16, rmisc(&recs[0]), 0));		/* switched in */
	close_ev(p, t);
	close_ev(p, c);
	bt_pmu__free(p);
}

Test(sim, a_disabled_or_unmapped_event_receives_nothing)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_sb(p, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers b;

	cr_assert(eq(int, bt_sim_comm(p, TID, TID, "x", false), 0));
	cr_assert(eq(int, bt_pmu__ops(p)->map(p, ev, PG, 0, false, &b), 0));
	cr_assert(eq(int, bt_sim_comm(p, TID, TID, "y", false), 0));
	cr_assert(eq(u64, b.page->data_head, 0));
	cr_assert(eq(int, bt_pmu__ops(p)->enable(p, ev, true), 0));
	cr_assert(eq(int, bt_sim_comm(p, TID, TID, "z", false), 0));
	cr_assert(eq(int, drain(&b, recs, 512), 1));
	cr_assert(eq(str, (char *)recs[0].raw + 16, "z"));
	close_ev(p, ev);
	bt_pmu__free(p);
}

Test(sim, sideband_writers_reject_invalid_arguments)
{
	struct bt_pmu *p = new_sim();

	cr_assert(eq(int, bt_sim_comm(p, TID, TID, NULL, false), -EINVAL));
	cr_assert(eq(int, bt_sim_comm(NULL, TID, TID, "x", false), -EINVAL));
	cr_assert(eq(int, bt_sim_comm(p, 0, TID, "x", false), -EINVAL));
	cr_assert(eq(int, bt_sim_mmap2(p, TID, TID, 0, 0, 0, 0, 0, "/x"),
		     -EINVAL));
	cr_assert(eq(int, bt_sim_mmap2(p, TID, TID, 0, 1, 0, 0, 0, NULL),
		     -EINVAL));
	cr_assert(eq(int, bt_sim_fork(p, 0, TID, 0, TID), -EINVAL));
	cr_assert(eq(int, bt_sim_exit(NULL, TID, 1, TID, 1), -EINVAL));
	cr_assert(eq(int, bt_sim_switch(p, 2, 1, 1, 2, 2), -EINVAL));
	cr_assert(eq(int, bt_sim_switch(p, 0, -1, 1, 2, 2), -EINVAL));
	bt_pmu__free(p);
}

/* ---- the data ring ------------------------------------------------------ */

Test(sim, data_ring_wraps_and_records_read_back_intact)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_sb(p, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers b;
	char name[16];
	int seen = 0;

	map_on(p, ev, PG, 0, false, &b);
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert(eq(int, bt_sim_comm(p, TID, TID, name, false), 0));
		if (i % 7 == 6) {
			int n = drain(&b, recs, 512);

			for (int k = 0; k < n; k++, seen++) {
				snprintf(name, sizeof(name), "n%d", seen);
				cr_assert(eq(str, (char *)recs[k].raw + 16,
					     name));
			}
		}
	}
	seen += drain(&b, recs, 512);
	cr_assert(eq(int, seen, 1000));
	cr_assert(gt(u64, b.page->data_head, 10 * PG));	/* it wrapped */
	close_ev(p, ev);
	bt_pmu__free(p);
}

Test(sim, a_full_data_ring_drops_and_reports_lost_when_room_returns)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_sb(p, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers b;
	const struct trec *r;
	int n, fit;

	map_on(p, ev, PG, 0, false, &b);
	/* COMM of "c" is 56 bytes: 73 fit in 4095 bytes, 27 are lost */
	for (int i = 0; i < 100; i++)
		cr_assert(eq(int, bt_sim_comm(p, TID, TID, "c", false), 0));
	fit = (int)((PG - 1) / 56);
	cr_assert(eq(int, fit, 73));
	cr_assert(eq(u64, b.page->data_head, (uint64_t)fit * 56));
	n = drain(&b, recs, 512);
	cr_assert(eq(int, n, fit));
	cr_assert(eq(int, count_type(recs, n, PERF_RECORD_LOST), 0));
	cr_assert(eq(int, bt_sim_comm(p, TID, TID, "d", false), 0));
	n = drain(&b, recs, 512);
	cr_assert(eq(int, n, 2));
	r = &recs[0];
	cr_assert(eq(u32, rtype(r), PERF_RECORD_LOST));
	cr_assert(eq(u16, rsize(r), 8 + 16 + 32));
	cr_assert(eq(u64, r64(r, 8), ev->id));
	cr_assert(eq(u64, r64(r, 16), 100 - fit));
	cr_assert(eq(str, (char *)recs[1].raw + 16, "d"));
	close_ev(p, ev);
	bt_pmu__free(p);
}

Test(sim, the_event_fd_becomes_readable_past_the_watermark)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_sb(p, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers b;
	struct pollfd pfd;
	int i;

	map_on(p, ev, 2 * PG, 0, false, &b);
	pfd.fd = bt_pmu__ops(p)->fd(p, ev);
	pfd.events = POLLIN;
	cr_assert(ge(int, pfd.fd, 0));
	/* half of 8 KiB is 4096 bytes: 73 records of 56 stay below */
	for (i = 0; i < 73; i++)
		bt_sim_comm(p, TID, TID, "w", false);
	cr_assert(eq(int, poll(&pfd, 1, 0), 0));
	bt_sim_comm(p, TID, TID, "w", false);
	cr_assert(eq(int, poll(&pfd, 1, 0), 1));
	close_ev(p, ev);
	bt_pmu__free(p);
}

/* ---- BTS ---------------------------------------------------------------- */

/* Collect the BTS records the PERF_RECORD_AUX records cover. */
static int aux_records(const struct bt_pmu_buffers *b, const struct trec *r,
		       int n, struct bt_sim_bts_record *out, int max,
		       uint64_t *flags)
{
	int k = 0;

	*flags = 0;
	for (int i = 0; i < n; i++) {
		uint64_t off, size;

		if (rtype(&r[i]) != PERF_RECORD_AUX)
			continue;
		off = r64(&r[i], 8);
		size = r64(&r[i], 16);
		*flags |= r64(&r[i], 24);
		cr_assert(eq(u64, size % 24, 0));
		for (uint64_t at = 0; at < size; at += 24) {
			struct bt_sim_bts_record rec;

			aux_copy(b, off + at, &rec, sizeof(rec));
			if (!rec.from && !rec.to)
				continue;	/* padding */
			cr_assert(lt(int, k, max));
			out[k++] = rec;
		}
	}
	return k;
}

static struct bt_sim_bts_record got[8192];

Test(sim, bts_threshold_raises_the_pmi_and_aux_holds_the_records)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_ev(p, BT_FAC_BTS, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers b;
	struct bt_sim_ds_area ds;
	uint64_t flags;
	int n, k;

	map_on(p, ev, 4 * PG, 8 * PG, false, &b);
	/* two phys buffers of 16 KiB: 16368 bytes of records each */
	cr_assert(eq(int, bt_sim_ds_area(p, ev, &ds), 0));
	cr_assert(eq(u64, ds.bts_base, 0));
	cr_assert(eq(u64, ds.bts_index, 0));
	cr_assert(eq(u64, ds.bts_abs_max, 16368));
	cr_assert(eq(u64, ds.bts_int_thresh, 16368 - 4080));
	n = drain(&b, recs, 512);
	cr_assert(eq(int, n, 1));
	cr_assert(eq(u32, rtype(&recs[0]), PERF_RECORD_ITRACE_START));
	cr_assert(eq(u32, r32(&recs[0], 12), TID));
	for (uint64_t i = 1; i <= 512; i++)
		cr_assert(eq(int, bt_sim_bts_record(p, ev, i, i + 1), 0));
	/*
	 * The 512th record reached the threshold (12288): the PMI published
	 * it, padded the rest of the first buffer and skipped to the second
	 * (4080 + 24 bytes), which now has its own threshold.
	 */
	cr_assert(eq(u64, b.page->aux_head, 12288 + 4104));
	cr_assert(eq(int, bt_sim_ds_area(p, ev, &ds), 0));
	cr_assert(eq(u64, ds.bts_base, 16392));
	cr_assert(eq(u64, ds.bts_index, 16392));
	cr_assert(eq(u64, ds.bts_abs_max, 16392 + 16368));
	cr_assert(eq(u64, ds.bts_int_thresh, 16392 + 12288));
	n = drain(&b, recs, 512);
	cr_assert(eq(int, n, 1));
	cr_assert(eq(u32, rtype(&recs[0]), PERF_RECORD_AUX));
	cr_assert(eq(u16, rsize(&recs[0]), 8 + 24 + 32));
	cr_assert(eq(u64, r64(&recs[0], 8), 0));
	cr_assert(eq(u64, r64(&recs[0], 16), 12288));
	cr_assert(eq(u64, r64(&recs[0], 24), 0));
	cr_assert(eq(u64, sid_of(&recs[0]).id, ev->id));
	k = aux_records(&b, recs, n, got, 8192, &flags);
	for (uint64_t i = 513; i <= 612; i++)
		cr_assert(eq(int, bt_sim_bts_record(p, ev, i, i + 1), 0));
	cr_assert(eq(int, bt_sim_flush(p, ev), 0));
	n = drain(&b, recs, 512);
	cr_assert(eq(int, n, 1));
	cr_assert(eq(u64, r64(&recs[0], 8), 16392));
	cr_assert(eq(u64, r64(&recs[0], 16), 2400));
	k += aux_records(&b, recs, n, got + k, 8192 - k, &flags);
	cr_assert(eq(int, k, 612));
	for (int i = 0; i < k; i++) {
		cr_assert(eq(u64, got[i].from, (uint64_t)i + 1));
		cr_assert(eq(u64, got[i].to, (uint64_t)i + 2));
	}
	close_ev(p, ev);
	bt_pmu__free(p);
}

Test(sim, bts_stream_truncates_and_stops_when_the_consumer_frees_nothing)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_ev(p, BT_FAC_BTS, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers b;
	uint64_t flags, i;
	int n, k, err = 0;

	map_on(p, ev, 4 * PG, 2 * PG, false, &b);
	for (i = 1; i < 1000; i++) {
		err = bt_sim_bts_record(p, ev, i, i + 1);
		if (err)
			break;
	}
	cr_assert(eq(int, err, -ENOSPC));
	/* 169 + 169 records, then one that hit the absolute maximum */
	cr_assert(eq(u64, i - 1, 339));
	cr_assert(not(ev->enabled));
	n = drain(&b, recs, 512);
	cr_assert(eq(int, count_type(recs, n, PERF_RECORD_AUX), 3));
	k = aux_records(&b, recs, n, got, 8192, &flags);
	cr_assert(eq(int, k, 339));
	cr_assert(eq(u64, flags, PERF_AUX_FLAG_TRUNCATED));
	cr_assert(eq(u64, r64(find_type(recs, n, PERF_RECORD_AUX, 2), 24),
		     PERF_AUX_FLAG_TRUNCATED));
	/* the consumer frees the area and enables again: tracing goes on */
	__atomic_store_n(&b.page->aux_tail, b.page->aux_head, __ATOMIC_RELEASE);
	cr_assert(eq(int, bt_pmu__ops(p)->enable(p, ev, true), 0));
	cr_assert(eq(int, bt_sim_bts_record(p, ev, 5000, 5001), 0));
	close_ev(p, ev);
	bt_pmu__free(p);
}

/* The permissions of the mapping at @addr in /proc/self/maps ("r--s"). */
static void map_perms(const void *addr, char perms[5])
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long lo, hi;

	cr_assert(ne(ptr, f, NULL));
	perms[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 &&
		    lo == (unsigned long)addr)
			break;
		perms[0] = '\0';
	}
	fclose(f);
}

Test(sim, bts_snapshot_wraps_and_reports_its_position_with_overwrite)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_ev(p, BT_FAC_BTS, BT_TARGET_CPU, 1);
	struct bt_pmu_buffers b;
	struct bt_sim_bts_record r;
	struct bt_sim_ds_area ds;
	const struct trec *a;
	char perms[5];
	int n;

	map_on(p, ev, 4 * PG, PG, true, &b);
	cr_assert(b.aux_overwrite);
	cr_assert(eq(int, bt_sim_ds_area(p, ev, &ds), 0));
	cr_assert(eq(u64, ds.bts_abs_max, 4080));
	cr_assert(eq(u64, ds.bts_int_thresh, 4080 + 24));	/* no PMI */
	/* aux_tail means nothing here: 200 records in room for 170 */
	for (uint64_t i = 1; i <= 200; i++)
		cr_assert(eq(int, bt_sim_bts_record(p, ev, i, i + 1), 0));
	cr_assert(eq(u64, b.page->aux_head, 0));
	cr_assert(eq(int, bt_pmu__ops(p)->enable(p, ev, false), 0));
	n = drain(&b, recs, 512);
	a = find_type(recs, n, PERF_RECORD_AUX, 0);
	cr_assert(ne(ptr, (void *)a, NULL));
	cr_assert(eq(u64, r64(a, 8), 720));		/* 30 records past wrap */
	cr_assert(eq(u64, r64(a, 16), PG));
	cr_assert(eq(u64, r64(a, 24), PERF_AUX_FLAG_OVERWRITE));
	cr_assert(eq(u64, b.page->aux_head, 720));
	for (uint64_t off = 0; off < 4080; off += 24) {
		memcpy(&r, b.aux + off, sizeof(r));
		cr_assert(eq(u64, r.from, off < 720 ? 171 + off / 24 :
						       1 + off / 24));
	}
	/* read-only to the consumer, shared */
	map_perms(b.aux, perms);
	cr_assert(eq(str, perms, "r--s"));
	map_perms(b.page, perms);
	cr_assert(eq(str, perms, "rw-s"));
	close_ev(p, ev);
	bt_pmu__free(p);
}

Test(sim, itrace_start_is_written_once_when_tracing_first_starts)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_ev(p, BT_FAC_PT, BT_TARGET_CPU, 0);
	struct bt_pmu_buffers b;
	const struct trec *r;
	int n;

	cr_assert(eq(int, bt_sim_switch(p, 0, 0, 0, 55, 56), 0));
	map_on(p, ev, 4 * PG, 4 * PG, false, &b);
	cr_assert(eq(int, bt_pmu__ops(p)->enable(p, ev, false), 0));
	cr_assert(eq(int, bt_pmu__ops(p)->enable(p, ev, true), 0));
	n = drain(&b, recs, 512);
	cr_assert(eq(int, count_type(recs, n, PERF_RECORD_ITRACE_START), 1));
	r = find_type(recs, n, PERF_RECORD_ITRACE_START, 0);
	cr_assert(eq(u16, rsize(r), 8 + 8 + 32));
	cr_assert(eq(u32, r32(r, 8), 55));
	cr_assert(eq(u32, r32(r, 12), 56));
	cr_assert(eq(u32, sid_of(r).cpu, 0));
	close_ev(p, ev);
	bt_pmu__free(p);
}

/* ---- PT ----------------------------------------------------------------- */

static unsigned char pat(uint64_t i)
{
	return (unsigned char)(i * 7 + (i >> 8));
}

static void pt_bytes(struct bt_pmu *p, struct bt_pmu_event *ev, uint64_t from,
		     uint64_t len, int expect)
{
	unsigned char buf[20000];

	cr_assert(le(u64, len, sizeof(buf)));
	for (uint64_t i = 0; i < len; i++)
		buf[i] = pat(from + i);
	cr_assert(eq(int, bt_sim_pt_write(p, ev, buf, len), expect));
}

static void check_aux(const struct bt_pmu_buffers *b, uint64_t off,
		      uint64_t len, uint64_t first)
{
	unsigned char c;

	for (uint64_t i = 0; i < len; i++) {
		aux_copy(b, off + i, &c, 1);
		cr_assert(eq(u8, c, pat(first + i)));
	}
}

Test(sim, pt_int_region_raises_the_pmi_and_stop_region_truncates)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_ev(p, BT_FAC_PT, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers b;
	struct pollfd pfd;
	const struct trec *a;
	int n;

	map_on(p, ev, 4 * PG, 4 * PG, false, &b);
	/* two 8 KiB regions: INT on the first, STOP (and INT) on the last */
	cr_assert(eq(u32, ev->pt.nr, 2));
	cr_assert(ev->pt.topa[0].intr);
	cr_assert(not(ev->pt.topa[0].stop));
	cr_assert(ev->pt.topa[1].stop);
	cr_assert(ev->pt.topa[1].end);
	drain(&b, recs, 512);
	pfd.fd = bt_pmu__ops(p)->fd(p, ev);
	pfd.events = POLLIN;
	pt_bytes(p, ev, 0, 5000, 0);
	cr_assert(eq(u64, b.page->aux_head, 0));
	cr_assert(eq(int, poll(&pfd, 1, 0), 0));
	pt_bytes(p, ev, 5000, 4000, 0);
	/* region 0 filled: the PMI published it and woke the consumer */
	cr_assert(eq(u64, b.page->aux_head, 8192));
	cr_assert(eq(int, poll(&pfd, 1, 0), 1));
	n = drain(&b, recs, 512);
	cr_assert(eq(int, n, 1));
	cr_assert(eq(u64, r64(&recs[0], 8), 0));
	cr_assert(eq(u64, r64(&recs[0], 16), 8192));
	cr_assert(eq(u64, r64(&recs[0], 24), 0));
	check_aux(&b, 0, 8192, 0);
	/* the consumer reads nothing: region 1 fills and STOP hits */
	pt_bytes(p, ev, 9000, 8000, -ENOSPC);
	cr_assert(not(ev->enabled));
	n = drain(&b, recs, 512);
	a = find_type(recs, n, PERF_RECORD_AUX, 0);
	cr_assert(ne(ptr, (void *)a, NULL));
	cr_assert(eq(u64, r64(a, 8), 8192));
	cr_assert(eq(u64, r64(a, 16), 8192));
	cr_assert(eq(u64, r64(a, 24), PERF_AUX_FLAG_TRUNCATED));
	check_aux(&b, 8192, 8192, 8192);
	pt_bytes(p, ev, 0, 10, -ENOSPC);
	/* room again, enabled again */
	__atomic_store_n(&b.page->aux_tail, 16384, __ATOMIC_RELEASE);
	cr_assert(eq(int, bt_pmu__ops(p)->enable(p, ev, true), 0));
	pt_bytes(p, ev, 16384, 100, 0);
	cr_assert(eq(int, bt_sim_flush(p, ev), 0));
	n = drain(&b, recs, 512);
	a = find_type(recs, n, PERF_RECORD_AUX, 0);
	cr_assert(eq(u64, r64(a, 8), 16384));
	cr_assert(eq(u64, r64(a, 16), 100));
	check_aux(&b, 16384, 100, 16384);
	close_ev(p, ev);
	bt_pmu__free(p);
}

Test(sim, pt_truncates_when_the_free_space_ends_inside_a_region)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_ev(p, BT_FAC_PTEMU, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers b;
	int n;

	map_on(p, ev, 4 * PG, 4 * PG, false, &b);
	drain(&b, recs, 512);
	pt_bytes(p, ev, 0, 8192, 0);
	/* the consumer read 5000 bytes of the first region */
	__atomic_store_n(&b.page->aux_tail, 5000, __ATOMIC_RELEASE);
	pt_bytes(p, ev, 8192, 8192, 0);
	/*
	 * The second region hit STOP; the PMI published it with TRUNCATED
	 * and then found 4999 free bytes, which end inside the next region:
	 * it cannot stop there, so it flags TRUNCATED again and stays off.
	 */
	n = drain(&b, recs, 512);
	cr_assert(eq(int, n, 3));
	cr_assert(eq(u64, r64(&recs[1], 8), 8192));
	cr_assert(eq(u64, r64(&recs[1], 16), 8192));
	cr_assert(eq(u64, r64(&recs[1], 24), PERF_AUX_FLAG_TRUNCATED));
	cr_assert(eq(u64, r64(&recs[2], 8), 16384));
	cr_assert(eq(u64, r64(&recs[2], 16), 0));
	cr_assert(eq(u64, r64(&recs[2], 24), PERF_AUX_FLAG_TRUNCATED));
	cr_assert(not(ev->enabled));
	pt_bytes(p, ev, 16384, 1, -ENOSPC);
	close_ev(p, ev);
	bt_pmu__free(p);
}

Test(sim, pt_snapshot_table_wraps_and_overwrites)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_ev(p, BT_FAC_PT, BT_TARGET_CPU, 1);
	struct bt_pmu_buffers b;
	const struct trec *a;
	int n;

	map_on(p, ev, 4 * PG, 2 * PG, true, &b);
	cr_assert(eq(u32, ev->pt.nr, 1));
	cr_assert(not(ev->pt.topa[0].intr));
	cr_assert(not(ev->pt.topa[0].stop));
	pt_bytes(p, ev, 0, 10000, 0);
	cr_assert(eq(u64, b.page->aux_head, 0));
	cr_assert(eq(int, bt_pmu__ops(p)->enable(p, ev, false), 0));
	n = drain(&b, recs, 512);
	a = find_type(recs, n, PERF_RECORD_AUX, 0);
	cr_assert(eq(u64, r64(a, 8), 1808));
	cr_assert(eq(u64, r64(a, 16), 8192));
	cr_assert(eq(u64, r64(a, 24), PERF_AUX_FLAG_OVERWRITE));
	cr_assert(eq(u64, b.page->aux_head, 1808));
	/* the newest 8192 bytes end at the reported position */
	check_aux(&b, 1808, 8192, 10000 - 8192);
	/* a restart goes on from there */
	cr_assert(eq(int, bt_pmu__ops(p)->enable(p, ev, true), 0));
	pt_bytes(p, ev, 10000, 100, 0);
	cr_assert(eq(int, bt_sim_flush(p, ev), 0));
	cr_assert(eq(u64, b.page->aux_head, 1908));
	check_aux(&b, 1908, 8192, 10100 - 8192);
	close_ev(p, ev);
	bt_pmu__free(p);
}

Test(sim, pt_gap_in_vmx_root_marks_the_record_partial)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_ev(p, BT_FAC_PT, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers b;
	const struct trec *a;
	int n;

	map_on(p, ev, 4 * PG, 4 * PG, false, &b);
	pt_bytes(p, ev, 0, 100, 0);
	cr_assert(eq(int, bt_sim_pt_vmx(p, ev, true), 0));
	pt_bytes(p, ev, 100, 50, -ENOSPC);
	cr_assert(eq(int, bt_sim_pt_vmx(p, ev, false), 0));
	pt_bytes(p, ev, 100, 100, 0);
	cr_assert(eq(int, bt_sim_flush(p, ev), 0));
	n = drain(&b, recs, 512);
	a = find_type(recs, n, PERF_RECORD_AUX, 0);
	cr_assert(eq(u64, r64(a, 16), 200));
	cr_assert(eq(u64, r64(a, 24), PERF_AUX_FLAG_PARTIAL));
	check_aux(&b, 0, 200, 0);
	close_ev(p, ev);
	bt_pmu__free(p);
}

/* ---- PEBS and LBR ------------------------------------------------------- */

Test(sim, pebs_records_become_samples_at_the_threshold_and_on_flush)
{
	struct bt_trace_config c = { .sz = sizeof(c), .period = 1000 };
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = NULL;
	struct bt_sim_pebs_record pr = { .ip = 0x401000, .addr = 0x7fff0000 };
	struct bt_pmu_buffers b;
	struct bt_sim_ds_area ds;
	const struct trec *r;
	int n;

	cr_assert(eq(int, try_open(p, BT_FAC_PEBS, BT_TARGET_TASK, TID, false,
				   &c, &ev), 0));
	map_on(p, ev, 32 * PG, 0, false, &b);
	cr_assert(eq(int, bt_sim_ds_area(p, ev, &ds), 0));
	cr_assert(eq(u64, ds.pebs_base, 0));
	cr_assert(eq(u64, ds.pebs_abs_max, 390 * 168));
	cr_assert(eq(u64, ds.pebs_int_thresh, 386 * 168));
	cr_assert(eq(u64, ds.pebs_counter_reset, 0xfffffffffc18ull));
	for (int i = 0; i < 18; i++)
		pr.regs[i] = 100 + (uint64_t)i;
	pr.tsc = 123456789;
	for (int i = 0; i < 3; i++)
		cr_assert(eq(int, bt_sim_pebs_record(p, ev, &pr), 0));
	cr_assert(eq(u64, b.page->data_head, 0));
	cr_assert(eq(int, bt_sim_ds_area(p, ev, &ds), 0));
	cr_assert(eq(u64, ds.pebs_index, 3 * 168));
	cr_assert(eq(int, bt_sim_flush(p, ev), 0));
	n = drain(&b, recs, 512);
	cr_assert(eq(int, n, 3));
	r = &recs[0];
	cr_assert(eq(u32, rtype(r), PERF_RECORD_SAMPLE));
	cr_assert(eq(u16, rmisc(r), PERF_RECORD_MISC_EXACT_IP |
		     PERF_RECORD_MISC_USER));
	cr_assert(eq(u16, rsize(r), 216));
	cr_assert(eq(u64, r64(r, 8), ev->id));
	cr_assert(eq(u64, r64(r, 16), 0x401000));
	cr_assert(eq(u32, r32(r, 24), TID));
	cr_assert(eq(u64, r64(r, 32), bt_sim__tsc_to_time(sim_of(p), 123456789)));
	cr_assert(eq(u64, r64(r, 40), 0x7fff0000));
	cr_assert(eq(u64, r64(r, 56), 1000));
	cr_assert(eq(u64, r64(r, 64), PERF_SAMPLE_REGS_ABI_64));
	cr_assert(eq(u64, r64(r, 72), 100));		/* AX */
	cr_assert(eq(u64, r64(r, 72 + 8 * 7), 107));	/* SP */
	cr_assert(eq(u64, r64(r, 72 + 8 * 8), 117));	/* IP: rip */
	cr_assert(eq(u64, r64(r, 72 + 8 * 9), 116));	/* FLAGS */
	cr_assert(eq(u64, r64(r, 72 + 8 * 10), 108));	/* R8 */
	/* the PMI at the threshold drains without a flush */
	for (int i = 0; i < 386; i++)
		cr_assert(eq(int, bt_sim_pebs_record(p, ev, &pr), 0));
	n = drain(&b, recs, 512);
	cr_assert(eq(int, n, 386));
	cr_assert(eq(int, bt_sim_ds_area(p, ev, &ds), 0));
	cr_assert(eq(u64, ds.pebs_index, 0));
	close_ev(p, ev);
	bt_pmu__free(p);
}

Test(sim, lbr_samples_carry_the_branch_stack)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *ev = open_ev(p, BT_FAC_LBR, BT_TARGET_CPU, 1);
	struct perf_branch_entry e[3] = {
		{ .from = 0x10, .to = 0x20 }, { .from = 0x30, .to = 0x40 },
		{ .from = 0x50, .to = 0x60 },
	};
	struct perf_branch_entry big[33];
	struct bt_pmu_buffers b;
	const struct trec *r;

	cr_assert(eq(int, bt_sim_lbr_sample(p, ev, 7, 8, 0x400, e, 3),
		     -ENOSPC));
	map_on(p, ev, 4 * PG, 0, false, &b);
	cr_assert(eq(int, bt_sim_lbr_sample(p, ev, 7, 8, 0x400, e, 3), 0));
	cr_assert(eq(int, drain(&b, recs, 512), 1));
	r = &recs[0];
	cr_assert(eq(u32, rtype(r), PERF_RECORD_SAMPLE));
	cr_assert(eq(u16, rsize(r), 8 + 48 + 3 * 24));
	cr_assert(eq(u64, r64(r, 8), ev->id));
	cr_assert(eq(u64, r64(r, 16), 0x400));
	cr_assert(eq(u32, r32(r, 24), 7));
	cr_assert(eq(u32, r32(r, 28), 8));
	cr_assert(eq(u32, r32(r, 40), 1));		/* cpu */
	cr_assert(eq(u64, r64(r, 48), 3));
	cr_assert(eq(u64, r64(r, 56), 0x10));
	cr_assert(eq(u64, r64(r, 56 + 48 + 8), 0x60));
	memset(big, 0, sizeof(big));
	cr_assert(eq(int, bt_sim_lbr_sample(p, ev, 7, 8, 0x400, big, 33),
		     -EINVAL));
	cr_assert(eq(int, bt_sim_lbr_sample(p, ev, 7, 8, 0x400, NULL, 1),
		     -EINVAL));
	close_ev(p, ev);
	bt_pmu__free(p);
}

Test(sim, hardware_side_functions_reject_invalid_arguments)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *pt = open_ev(p, BT_FAC_PT, BT_TARGET_TASK, TID);
	struct bt_pmu_event *bts = open_ev(p, BT_FAC_BTS, BT_TARGET_TASK, TID2);
	struct bt_pmu_event *sb = open_sb(p, BT_TARGET_TASK, TID);
	struct bt_sim_pebs_record pr = { 0 };
	struct bt_sim_ds_area ds;
	struct bt_sim_mlock ml;

	cr_assert(eq(int, bt_sim_bts_record(p, pt, 1, 2), -EINVAL));
	cr_assert(eq(int, bt_sim_bts_record(NULL, bts, 1, 2), -EINVAL));
	cr_assert(eq(int, bt_sim_bts_record(p, (void *)&ds, 1, 2), -EINVAL));
	cr_assert(eq(int, bt_sim_bts_record(p, bts, 1, 2), -ENOSPC));
	cr_assert(eq(int, bt_sim_pt_write(p, bts, "x", 1), -EINVAL));
	cr_assert(eq(int, bt_sim_pt_write(p, pt, NULL, 1), -EINVAL));
	cr_assert(eq(int, bt_sim_pt_write(p, pt, "x", 1), -ENOSPC));
	cr_assert(eq(int, bt_sim_pt_vmx(p, bts, true), -EINVAL));
	cr_assert(eq(int, bt_sim_pebs_record(p, pt, &pr), -EINVAL));
	cr_assert(eq(int, bt_sim_pebs_record(p, pt, NULL), -EINVAL));
	cr_assert(eq(int, bt_sim_lbr_sample(p, pt, 1, 1, 0, NULL, 0), -EINVAL));
	cr_assert(eq(int, bt_sim_ds_area(p, pt, &ds), -EINVAL));
	cr_assert(eq(int, bt_sim_ds_area(p, bts, NULL), -EINVAL));
	cr_assert(eq(int, bt_sim_flush(p, sb), -EINVAL));
	cr_assert(eq(int, bt_sim_flush(NULL, pt), -EINVAL));
	cr_assert(eq(int, bt_sim_flush(p, pt), 0));	/* disabled: nothing */
	cr_assert(eq(int, bt_sim_mlock(p, 0, NULL), -EINVAL));
	cr_assert(eq(int, bt_sim_mlock(NULL, 0, &ml), -EINVAL));
	close_ev(p, pt);
	close_ev(p, bts);
	close_ev(p, sb);
	bt_pmu__free(p);
}

/* ---- exclusivity -------------------------------------------------------- */

static int open_rc(struct bt_pmu *p, uint32_t fac, uint32_t kind, int id,
		   struct bt_pmu_event **ev)
{
	*ev = NULL;
	return try_open(p, fac, kind, id, false, NULL, ev);
}

Test(sim, pt_and_bts_allow_one_event_per_context)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *a, *b, *c;

	cr_assert(eq(int, open_rc(p, BT_FAC_PT, BT_TARGET_TASK, TID, &a), 0));
	cr_assert(eq(int, open_rc(p, BT_FAC_PT, BT_TARGET_TASK, TID, &b),
		     -EBUSY));
	cr_assert(eq(ptr, b, NULL));
	cr_assert(eq(int, open_rc(p, BT_FAC_PT, BT_TARGET_TASK, TID2, &c), 0));
	close_ev(p, a);
	cr_assert(eq(int, open_rc(p, BT_FAC_PT, BT_TARGET_TASK, TID, &a), 0));
	close_ev(p, a);
	close_ev(p, c);
	cr_assert(eq(int, open_rc(p, BT_FAC_BTS, BT_TARGET_CPU, 0, &a), 0));
	cr_assert(eq(int, open_rc(p, BT_FAC_BTS, BT_TARGET_CPU, 0, &b),
		     -EBUSY));
	cr_assert(eq(int, open_rc(p, BT_FAC_BTS, BT_TARGET_CPU, 1, &c), 0));
	close_ev(p, a);
	close_ev(p, c);
	bt_pmu__free(p);
}

Test(sim, pt_bts_and_lbr_exclude_each_other_in_one_context)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *a, *b, *c;

	cr_assert(eq(int, open_rc(p, BT_FAC_PT, BT_TARGET_TASK, TID, &a), 0));
	cr_assert(eq(int, open_rc(p, BT_FAC_BTS, BT_TARGET_TASK, TID, &b),
		     -EBUSY));
	cr_assert(eq(int, open_rc(p, BT_FAC_LBR, BT_TARGET_TASK, TID, &b),
		     -EBUSY));
	cr_assert(eq(int, open_rc(p, BT_FAC_BTS, BT_TARGET_TASK, TID2, &b), 0));
	close_ev(p, a);
	cr_assert(eq(int, open_rc(p, BT_FAC_LBR, BT_TARGET_TASK, TID, &a), 0));
	/* LBR users share */
	cr_assert(eq(int, open_rc(p, BT_FAC_LBR, BT_TARGET_TASK, TID, &c), 0));
	cr_assert(eq(int, open_rc(p, BT_FAC_PT, BT_TARGET_TASK, TID, &b),
		     -EBUSY));
	close_ev(p, a);
	close_ev(p, c);
	cr_assert(eq(int, open_rc(p, BT_FAC_PT, BT_TARGET_TASK, TID, &a), 0));
	close_ev(p, a);
	bt_pmu__free(p);
}

Test(sim, per_task_and_per_cpu_events_of_one_exclusive_pmu_never_coexist)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *a, *b;

	cr_assert(eq(int, open_rc(p, BT_FAC_PT, BT_TARGET_CPU, 1, &a), 0));
	cr_assert(eq(int, open_rc(p, BT_FAC_PT, BT_TARGET_TASK, TID, &b),
		     -EBUSY));
	/* another PMU is another count */
	cr_assert(eq(int, open_rc(p, BT_FAC_BTS, BT_TARGET_TASK, TID, &b), 0));
	cr_assert(eq(int, open_rc(p, BT_FAC_BTS, BT_TARGET_CPU, 0, &a), -EBUSY));
	close_ev(p, b);
	cr_assert(eq(int, open_rc(p, BT_FAC_BTS, BT_TARGET_CPU, 0, &b), 0));
	close_ev(p, b);
	bt_pmu__free(p);
	p = new_sim();
	cr_assert(eq(int, open_rc(p, BT_FAC_PT, BT_TARGET_TASK, TID, &a), 0));
	cr_assert(eq(int, open_rc(p, BT_FAC_PT, BT_TARGET_CPU, 0, &b), -EBUSY));
	close_ev(p, a);
	cr_assert(eq(int, open_rc(p, BT_FAC_PT, BT_TARGET_CPU, 0, &b), 0));
	close_ev(p, b);
	bt_pmu__free(p);
}

Test(sim, pebs_and_sideband_are_not_exclusive)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *e[4], *pt;

	cr_assert(eq(int, open_rc(p, BT_FAC_PT, BT_TARGET_TASK, TID, &pt), 0));
	for (int i = 0; i < 3; i++)
		cr_assert(eq(int, open_rc(p, BT_FAC_PEBS, BT_TARGET_TASK, TID,
					  &e[i]), 0));
	e[3] = open_sb(p, BT_TARGET_TASK, TID);
	for (int i = 0; i < 4; i++)
		close_ev(p, e[i]);
	close_ev(p, pt);
	bt_pmu__free(p);
}

Test(sim, step_and_pt_emu_allow_one_tracer_per_task)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *a, *b;

	cr_assert(eq(int, open_rc(p, BT_FAC_STEP, BT_TARGET_TASK, TID, &a), 0));
	cr_assert(eq(int, open_rc(p, BT_FAC_STEP, BT_TARGET_TASK, TID, &b),
		     -EBUSY));
	cr_assert(eq(int, open_rc(p, BT_FAC_PTEMU, BT_TARGET_TASK, TID, &b),
		     -EBUSY));
	/* the hardware facilities are another matter */
	cr_assert(eq(int, open_rc(p, BT_FAC_PT, BT_TARGET_TASK, TID, &b), 0));
	close_ev(p, b);
	close_ev(p, a);
	cr_assert(eq(int, open_rc(p, BT_FAC_PTEMU, BT_TARGET_TASK, TID, &a), 0));
	close_ev(p, a);
	bt_pmu__free(p);
}

/* ---- address filters ---------------------------------------------------- */

Test(sim, address_filters_follow_the_kernel_s_syntax_and_limits)
{
	struct bt_pmu *p = new_sim();
	const struct bt_pmu_ops *o = bt_pmu__ops(p);
	struct bt_trace_config k = { .sz = sizeof(k), .user = true,
				     .kernel = true };
	struct bt_trace_config f = { .sz = sizeof(f),
				     .filter = "filter 0x1000/0x200@/nonexistent" };
	struct bt_pmu_event *pt = open_ev(p, BT_FAC_PT, BT_TARGET_TASK, TID);
	struct bt_pmu_event *bts = open_ev(p, BT_FAC_BTS, BT_TARGET_TASK, TID2);
	struct bt_pmu_event *cpu = open_ev(p, BT_FAC_PT, BT_TARGET_TASK, 999);
	struct bt_pmu_event *kev = NULL, *x = NULL;

	cr_assert(eq(int, o->set_filter(p, pt, "filter 0x1000/0x200@/bin/sh"),
		     0));
	cr_assert(eq(u32, pt->nr_filters, 1));
	cr_assert(eq(u64, pt->filters[0].offset, 0x1000));
	cr_assert(eq(u64, pt->filters[0].size, 0x200));
	cr_assert(eq(int, o->set_filter(p, pt,
		"start 0x10@/bin/sh,stop 0x20@/bin/sh"), 0));
	cr_assert(eq(u32, pt->nr_filters, 2));
	cr_assert(eq(int, o->set_filter(p, pt,
		"filter 1/2@/bin/sh,filter 3/4@/bin/sh,filter 5/6@/bin/sh"),
		-EOPNOTSUPP));
	cr_assert(eq(u32, pt->nr_filters, 2));	/* unchanged */
	cr_assert(eq(int, o->set_filter(p, pt, "filter 0x1000@/bin/sh"),
		     -EINVAL));
	cr_assert(eq(int, o->set_filter(p, pt, "jump 0x1000/8@/bin/sh"),
		     -EINVAL));
	cr_assert(eq(int, o->set_filter(p, pt, "filter zz/8@/bin/sh"),
		     -EINVAL));
	cr_assert(eq(int, o->set_filter(p, pt, ""), -EINVAL));
	cr_assert(eq(int, o->set_filter(p, pt, "filter 1/8@/nonexistent"),
		     -ENOENT));
	cr_assert(eq(int, o->set_filter(p, pt, "filter 1/8@/tmp"), -EINVAL));
	/* a kernel range needs kernel tracing and a kernel address */
	cr_assert(eq(int, o->set_filter(p, pt, "filter 0xffffffff81000000/64"),
		     -EINVAL));
	cr_assert(eq(int, try_open(p, BT_FAC_PT, BT_TARGET_CPU, 0, false, &k,
				   &kev), -EBUSY));	/* per-task PT exists */
	close_ev(p, cpu);
	close_ev(p, pt);
	cr_assert(eq(int, try_open(p, BT_FAC_PT, BT_TARGET_CPU, 0, false, &k,
				   &kev), 0));
	cr_assert(eq(int, o->set_filter(p, kev, "filter 0xffffffff81000000/64"),
		     0));
	cr_assert(eq(int, o->set_filter(p, kev, "filter 0x1000/64"), -EINVAL));
	/* file filters need a task */
	cr_assert(eq(int, o->set_filter(p, kev, "filter 0x1000/64@/bin/sh"),
		     -EOPNOTSUPP));
	/* BTS has no address filters: the ioctl says EINVAL */
	cr_assert(eq(int, o->set_filter(p, bts, "filter 1/8@/bin/sh"),
		     -EINVAL));
	cr_assert(eq(int, o->set_filter(p, kev, NULL), -EINVAL));
	/* a config's filter is set at open, its error is open's */
	close_ev(p, kev);
	cr_assert(eq(int, try_open(p, BT_FAC_PT, BT_TARGET_TASK, TID, false, &f,
				   &x), -ENOENT));
	cr_assert(eq(ptr, x, NULL));
	close_ev(p, bts);
	bt_pmu__free(p);
}

/* ---- mlock accounting --------------------------------------------------- */

Test(sim, mlock_charges_the_user_then_the_rlimit_in_exact_bytes)
{
	struct bt_pmu *p = new_sim_opts(0, 64 * 1024, false);
	const struct bt_pmu_ops *o = bt_pmu__ops(p);
	struct bt_pmu_event *a = open_ev(p, BT_FAC_PT, BT_TARGET_TASK, TID);
	struct bt_pmu_event *c = open_sb(p, BT_TARGET_TASK, TID);
	struct bt_pmu_event *d = NULL;
	struct bt_pmu_open_args args = {
		.sz = sizeof(args), .target = { BT_TARGET_TASK, TID },
		.sideband = true, .uid = 2000,
	};
	struct bt_pmu_buffers b;
	struct bt_sim_mlock m;

	cr_assert(eq(int, bt_sim_mlock(p, 1000, &m), 0));
	cr_assert(eq(u64, m.user_locked, 0));
	cr_assert(eq(u64, m.pinned, 0));
	/* 516 KiB = 129 pages per CPU, two CPUs */
	cr_assert(eq(u64, m.user_limit, 258 * PG));
	cr_assert(eq(u64, m.rlimit, 65536));
	/* 1 + 16 data pages and 256 AUX pages: 15 pages past the user's */
	cr_assert(eq(int, o->map(p, a, 16 * PG, 256 * PG, false, &b), 0));
	cr_assert(eq(u64, b.mapped, 273 * PG));
	cr_assert(eq(int, bt_sim_mlock(p, 1000, &m), 0));
	cr_assert(eq(u64, m.user_locked, 258 * PG));
	cr_assert(eq(u64, m.pinned, 15 * PG));
	/* 3 more pages: pinned would be 18 pages > 16: EPERM */
	cr_assert(eq(int, o->map(p, c, 2 * PG, 0, false, &b), -EPERM));
	cr_assert(eq(int, bt_sim_mlock(p, 1000, &m), 0));
	cr_assert(eq(u64, m.user_locked, 258 * PG));
	cr_assert(eq(u64, m.pinned, 15 * PG));
	cr_assert(eq(int, o->map(p, c, PG, 0, false, &b), -EPERM));
	cr_assert(eq(int, bt_sim_mlock(p, 1000, &m), 0));
	cr_assert(eq(u64, m.pinned, 15 * PG));
	/* another user has its own allowance */
	cr_assert(eq(int, o->open(p, &args, &d), 0));
	cr_assert(eq(int, o->map(p, d, 64 * PG, 0, false, &b), 0));
	cr_assert(eq(int, bt_sim_mlock(p, 2000, &m), 0));
	cr_assert(eq(u64, m.user_locked, 65 * PG));
	cr_assert(eq(u64, m.pinned, 15 * PG));
	close_ev(p, d);
	/* unmap gives back exactly what was charged */
	cr_assert(eq(int, o->unmap(p, a), 0));
	cr_assert(eq(int, bt_sim_mlock(p, 1000, &m), 0));
	cr_assert(eq(u64, m.user_locked, 0));
	cr_assert(eq(u64, m.pinned, 0));
	cr_assert(eq(int, bt_sim_mlock(p, 2000, &m), 0));
	cr_assert(eq(u64, m.user_locked, 0));
	close_ev(p, a);
	close_ev(p, c);
	bt_pmu__free(p);
}

Test(sim, a_refused_aux_mapping_charges_nothing)
{
	struct bt_pmu *p = new_sim_opts(4, 4096, false);
	struct bt_pmu_event *a = open_ev(p, BT_FAC_BTS, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers b;
	struct bt_sim_mlock m;

	/* 1 page per CPU: 2 for the user, 1 over the rlimit */
	cr_assert(eq(int, bt_pmu__ops(p)->map(p, a, PG, 2 * PG, false, &b),
		     -EPERM));
	cr_assert(eq(int, bt_sim_mlock(p, 1000, &m), 0));
	cr_assert(eq(u64, m.user_locked, 0));
	cr_assert(eq(u64, m.pinned, 0));
	cr_assert(eq(int, bt_pmu__ops(p)->map(p, a, PG, PG, false, &b), 0));
	cr_assert(eq(int, bt_sim_mlock(p, 1000, &m), 0));
	cr_assert(eq(u64, m.user_locked, 2 * PG));
	cr_assert(eq(u64, m.pinned, PG));
	close_ev(p, a);
	cr_assert(eq(int, bt_sim_mlock(p, 1000, &m), 0));
	cr_assert(eq(u64, m.user_locked + m.pinned, 0));
	bt_pmu__free(p);
}

Test(sim, cap_ipc_lock_lifts_the_limit)
{
	struct bt_pmu *p = new_sim_opts(4, 4096, true);
	struct bt_pmu_event *a = open_ev(p, BT_FAC_PT, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers b;
	struct bt_sim_mlock m;

	cr_assert(eq(int, bt_pmu__ops(p)->map(p, a, 64 * PG, 64 * PG, false,
					      &b), 0));
	cr_assert(eq(int, bt_sim_mlock(p, 1000, &m), 0));
	cr_assert(eq(u64, m.rlimit, UINT64_MAX));
	cr_assert(eq(u64, m.user_locked, 2 * PG));
	cr_assert(eq(u64, m.pinned, 127 * PG));
	close_ev(p, a);
	bt_pmu__free(p);
}

/* ---- a consumer in another process -------------------------------------- */

#define FK_RECORDS	6000
#define FK_EVERY	10

/* The child: only the pages' heads and tails, as a perf consumer. */
static int fork_consumer(const struct bt_pmu_buffers *sb,
			 const struct bt_pmu_buffers *tr)
{
	uint64_t expect = 1, comms = 0, aux_tail = 0;
	bool end = false;
	char name[16];

	for (;;) {
		struct perf_event_mmap_page *pc = sb->page;
		uint64_t tail = __atomic_load_n(&pc->data_tail, __ATOMIC_RELAXED);
		/* C: pairs with the kernel's release of data_head */
		uint64_t head = __atomic_load_n(&pc->data_head, __ATOMIC_ACQUIRE);
		uint64_t ahead;

		while (tail != head) {
			unsigned char rec[64];
			struct perf_event_header h;

			ring_copy(sb, tail, &h, sizeof(h));
			if (h.type != PERF_RECORD_COMM || h.size > sizeof(rec))
				return 10;
			ring_copy(sb, tail, rec, h.size);
			if (!strcmp((char *)rec + 16, "end")) {
				end = true;
			} else {
				snprintf(name, sizeof(name), "c%llu",
					 (unsigned long long)comms++);
				if (strcmp((char *)rec + 16, name))
					return 11;
			}
			tail += h.size;
		}
		/* D: pairs with the kernel's acquire of data_tail */
		__atomic_store_n(&pc->data_tail, tail, __ATOMIC_RELEASE);

		/* the trace event's own ring: AUX records, never LOST */
		pc = tr->page;
		tail = __atomic_load_n(&pc->data_tail, __ATOMIC_RELAXED);
		head = __atomic_load_n(&pc->data_head, __ATOMIC_ACQUIRE);
		while (tail != head) {
			unsigned char rec[64];
			struct perf_event_header h;
			uint64_t fl;

			ring_copy(tr, tail, &h, sizeof(h));
			if (h.size > sizeof(rec))
				return 12;
			ring_copy(tr, tail, rec, h.size);
			if (h.type == PERF_RECORD_LOST)
				return 13;
			memcpy(&fl, rec + 24, sizeof(fl));
			if (h.type == PERF_RECORD_AUX && fl)
				return 14;
			tail += h.size;
		}
		__atomic_store_n(&pc->data_tail, tail, __ATOMIC_RELEASE);

		/* C: the AUX bytes below aux_head are there */
		ahead = __atomic_load_n(&pc->aux_head, __ATOMIC_ACQUIRE);
		while (aux_tail < ahead) {
			uint64_t off = aux_tail & (tr->aux_size - 1);
			struct bt_sim_bts_record r;

			if (tr->aux_size - off < 24 || off % 24) {
				/* the gap before the wrap */
				aux_tail += tr->aux_size - off < 24 ?
					    tr->aux_size - off : 24 - off % 24;
				continue;
			}
			memcpy(&r, tr->aux + off, sizeof(r));
			aux_tail += 24;
			if (!r.from && !r.to)
				continue;	/* padding */
			if (r.from != expect || r.to != expect + 1000000)
				return 15;
			expect++;
		}
		/* D: we are done with them */
		__atomic_store_n(&pc->aux_tail, aux_tail, __ATOMIC_RELEASE);
		if (end)
			break;
		sched_yield();
	}
	if (comms != FK_RECORDS / FK_EVERY)
		return 16;
	return expect == FK_RECORDS + 1 ? 0 : 17;
}

static void wait_consumed(const struct bt_pmu_buffers *b, bool aux)
{
	struct perf_event_mmap_page *pc = b->page;

	for (;;) {
		uint64_t h = __atomic_load_n(aux ? &pc->aux_head : &pc->data_head,
					     __ATOMIC_ACQUIRE);
		uint64_t t = __atomic_load_n(aux ? &pc->aux_tail : &pc->data_tail,
					     __ATOMIC_ACQUIRE);

		if (h == t)
			return;
		sched_yield();
	}
}

Test(sim, a_forked_consumer_drains_everything_with_head_and_tail_only,
     .timeout = 60)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *tr = open_ev(p, BT_FAC_STEP, BT_TARGET_TASK, TID);
	struct bt_pmu_event *sb = open_sb(p, BT_TARGET_TASK, TID);
	struct bt_pmu_buffers bt, bs;
	char name[16];
	pid_t pid;

	map_on(p, tr, 2 * PG, 4 * PG, false, &bt);
	map_on(p, sb, PG, 0, false, &bs);
	/* the consumer has seen ITRACE_START: pace nothing on it */
	drain(&bt, recs, 512);
	pid = fork();
	cr_assert(ge(int, pid, 0));
	if (pid == 0)
		_exit(fork_consumer(&bs, &bt));
	for (uint64_t i = 1; i <= FK_RECORDS; i++) {
		/* pacing only: the kernel itself would drop, not wait */
		wait_consumed(&bt, true);
		cr_assert(eq(int, bt_sim_bts_record(p, tr, i, i + 1000000), 0));
		if (i % FK_EVERY == 0) {
			wait_consumed(&bs, false);
			snprintf(name, sizeof(name), "c%llu",
				 (unsigned long long)(i / FK_EVERY - 1));
			cr_assert(eq(int, bt_sim_comm(p, TID, TID, name, false),
				     0));
		}
	}
	cr_assert(eq(int, bt_sim_flush(p, tr), 0));
	wait_consumed(&bs, false);
	cr_assert(eq(int, bt_sim_comm(p, TID, TID, "end", false), 0));
	cr_assert(eq(int, tu_child_status(pid), 0));
	close_ev(p, tr);
	close_ev(p, sb);
	bt_pmu__free(p);
}

Test(sim, freeing_the_backend_closes_events_left_open)
{
	struct bt_pmu *p = new_sim();
	struct bt_pmu_event *a = open_ev(p, BT_FAC_PT, BT_TARGET_TASK, TID);
	struct bt_pmu_event *c = open_ev(p, BT_FAC_PEBS, BT_TARGET_CPU, 0);
	struct bt_pmu_buffers b;

	map_on(p, a, 4 * PG, 4 * PG, false, &b);
	map_on(p, c, 4 * PG, 0, false, &b);
	pt_bytes(p, a, 0, 100, 0);
	/* no leak, no fd left: the sanitized run checks */
	bt_pmu__free(p);
}

Test(sim, closing_a_mapped_enabled_event_frees_its_context_and_charge)
{
	struct bt_pmu *p = new_sim_opts(0, 64 * 1024, false);
	struct bt_pmu_event *a = open_ev(p, BT_FAC_BTS, BT_TARGET_TASK, TID);
	struct bt_pmu_event *b2 = NULL;
	struct bt_pmu_buffers b;
	struct bt_sim_mlock m;

	map_on(p, a, 4 * PG, 4 * PG, false, &b);
	cr_assert(eq(int, bt_sim_bts_record(p, a, 1, 2), 0));
	cr_assert(eq(int, open_rc(p, BT_FAC_BTS, BT_TARGET_TASK, TID, &b2),
		     -EBUSY));
	close_ev(p, a);
	cr_assert(eq(int, bt_sim_mlock(p, 1000, &m), 0));
	cr_assert(eq(u64, m.user_locked + m.pinned, 0));
	cr_assert(eq(int, open_rc(p, BT_FAC_BTS, BT_TARGET_TASK, TID, &b2), 0));
	close_ev(p, b2);
	bt_pmu__free(p);
}
