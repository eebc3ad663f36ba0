// SPDX-License-Identifier: BSD-3-Clause
/*
 * The collector, end to end through the sim backend into real KMES ring
 * sessions, read back as a consumer does (bt_kmes_reader) and decoded
 * with bt_event_decode(): BTS and PT in stream and snapshot mode,
 * sideband field by field, losses of every kind, the drain threads, the
 * freeze, and a real program stepped by the step facility.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <btrail/collector.h>
#include <btrail/events.h>
#include <btrail/kmes.h>
#include <btrail/step.h>

#include "collector/collect.h"
#include "ds/sim.h"
#include "helpers/steputil.h"
#include "helpers/testutil.h"

#define PG	4096ull
#define TID	4242

/* ---- set-up ----------------------------------------------------------- */

static struct bt_pmu *new_sim(void)
{
	struct bt_sim_opts o = { .sz = sizeof(o), .nr_cpus = 2,
				 .cap_ipc_lock = true };
	struct bt_pmu *p = bt_pmu__new_sim(&o);

	cr_assert(ne(ptr, p, NULL));
	return p;
}

static struct bt_pmu_event *open_map(struct bt_pmu *p, uint32_t fac,
				     uint32_t kind, int id, bool sb,
				     uint64_t data, uint64_t aux, bool ovw,
				     struct bt_pmu_buffers *b)
{
	struct bt_pmu_open_args a = {
		.sz = sizeof(a), .facility = fac, .target = { kind, id },
		.sideband = sb, .uid = getuid(),
	};
	const struct bt_pmu_ops *o = bt_pmu__ops(p);
	struct bt_pmu_event *ev = NULL;

	cr_assert(eq(int, o->open(p, &a, &ev), 0));
	cr_assert(eq(int, o->map(p, ev, data, aux, ovw, b), 0));
	cr_assert(eq(int, o->enable(p, ev, true), 0));
	return ev;
}

static void close_ev(struct bt_pmu *p, struct bt_pmu_event *ev)
{
	if (!ev)
		return;
	bt_pmu__ops(p)->unmap(p, ev);
	bt_pmu__ops(p)->close(p, ev);
}

static struct bt_collector *new_coll(struct bt_kmes_session *s, uint32_t mode,
				     bool threads)
{
	struct bt_collector_opts o = { .sz = sizeof(o), .session = s,
				       .mode = mode, .no_threads = !threads };
	struct bt_collector *c = bt_collector__new(&o);

	cr_assert(ne(ptr, c, NULL), "collector: %s", strerror(errno));
	return c;
}

static void add_src(struct bt_collector *c, struct bt_pmu *p,
		    struct bt_pmu_event *tr, const struct bt_pmu_buffers *tb,
		    struct bt_pmu_event *sb, const struct bt_pmu_buffers *sbb,
		    uint32_t fac, uint32_t kind, int id, uint32_t slot)
{
	struct bt_collector_source s = {
		.sz = sizeof(s), .pmu = p, .trace = tr, .trace_buf = tb,
		.sideband = sb, .sideband_buf = sbb, .facility = fac,
		.target = { kind, id }, .slot = slot,
	};

	cr_assert(ge(int, bt_collector__add(c, &s), 0));
}

/* ---- reading back ----------------------------------------------------- */

struct lost {
	char what[8];
	uint64_t count;
};

struct got {
	uint64_t *br;		/* from, to, flags triples */
	size_t nbr, capbr;
	unsigned char *pt;
	size_t npt, cappt;
	uint64_t pt_first_off, pt_next_off;
	bool pt_contig;
	size_t ntype[BT_EVID__COUNT];
	bool schema_first;	/* each type's schema before its first */
	struct lost lost[64];
	size_t nlost;
	uint64_t aux_flags_or;
	size_t aux_truncated;
	char last_type[16];
	char last_clock[16];
	/* last values of some types, copied */
	struct bt_event_value v[BT_EVID__COUNT][16];
	unsigned char trig_regs[BT_REGS_SIZE];
	size_t trig_regs_len;
	char strs[BT_EVID__COUNT][4][256];
	struct bt_kmes_slot_stats st;
	uint64_t events, missed;
	/* called with every decoded event but schemas, in ring order */
	void (*each)(struct got *g, uint32_t id,
		     const struct bt_event_value *v);
	void *arg;
};

static void keep_strs(struct got *g, uint32_t id,
		      const struct bt_event_type *t)
{
	unsigned k = 0;

	for (uint32_t f = 0; f < t->nfields && k < 4; f++) {
		if (t->fields[f].kind != BT_FK_STR)
			continue;
		snprintf(g->strs[id][k], sizeof(g->strs[id][k]), "%.*s",
			 (int)g->v[id][f].len, (const char *)g->v[id][f].p);
		g->v[id][f].p = g->strs[id][k++];
	}
}

static void got_event(struct got *g, const struct bt_kmes_event *ev)
{
	const struct bt_event_type *t = bt_event_type_find(ev->type,
							   ev->type_len);
	struct bt_event_value v[16];
	char why[256];
	uint32_t id;

	cr_assert(ne(ptr, (void *)t, NULL), "unknown type %.*s",
		  (int)ev->type_len, ev->type);
	id = t->id;
	cr_assert(eq(int, bt_event_decode(t, ev->payload, ev->payload_len, v,
					  why, sizeof(why)), 0),
		  "%s: %s", t->name, why);
	g->events++;
	snprintf(g->last_type, sizeof(g->last_type), "%s", t->name);
	if (id == BT_EVID_SCHEMA) {
		const struct bt_event_type *d = bt_event_type_find(
			v[BT_SCHEMA_TYPE].p, v[BT_SCHEMA_TYPE].len);

		cr_assert(ne(ptr, (void *)d, NULL));
		g->ntype[id]++;
		/* mark: the schema of d was seen */
		g->v[BT_EVID_SCHEMA][d->id].u = 1;
		return;
	}
	if (!g->v[BT_EVID_SCHEMA][id].u)
		g->schema_first = false;
	g->ntype[id]++;
	if (g->each)
		g->each(g, id, v);
	memcpy(g->v[id], v, sizeof(v[0]) * t->nfields);
	keep_strs(g, id, t);
	switch (id) {
	case BT_EVID_BRANCH: {
		size_t n = v[BT_BRANCH_RECS].len / BT_BREC_SIZE;

		if (g->nbr + n > g->capbr) {
			g->capbr = (g->nbr + n) * 2;
			g->br = realloc(g->br, g->capbr * 24);
			cr_assert(ne(ptr, g->br, NULL));
		}
		memcpy(g->br + 3 * g->nbr, v[BT_BRANCH_RECS].p, n * 24);
		g->nbr += n;
		break;
	}
	case BT_EVID_PT: {
		size_t n = v[BT_PT_DATA].len;

		if (g->ntype[id] == 1) {
			g->pt_first_off = v[BT_PT_OFF].u;
			g->pt_contig = true;
		} else if (v[BT_PT_OFF].u != g->pt_next_off) {
			g->pt_contig = false;
		}
		g->pt_next_off = v[BT_PT_OFF].u + n;
		if (g->npt + n > g->cappt) {
			g->cappt = (g->npt + n) * 2;
			g->pt = realloc(g->pt, g->cappt);
			cr_assert(ne(ptr, g->pt, NULL));
		}
		memcpy(g->pt + g->npt, v[BT_PT_DATA].p, n);
		g->npt += n;
		break;
	}
	case BT_EVID_LOST:
		if (g->nlost < 64) {
			snprintf(g->lost[g->nlost].what, 8, "%.*s",
				 (int)v[BT_LOST_WHAT].len,
				 (const char *)v[BT_LOST_WHAT].p);
			g->lost[g->nlost++].count = v[BT_LOST_COUNT].u;
		}
		break;
	case BT_EVID_AUX:
		g->aux_flags_or |= v[BT_AUX_FLAGS].u;
		if (v[BT_AUX_FLAGS].u & PERF_AUX_FLAG_TRUNCATED)
			g->aux_truncated++;
		break;
	case BT_EVID_CLOCK:
		snprintf(g->last_clock, sizeof(g->last_clock), "%.*s",
			 (int)v[BT_CLOCK_REASON].len,
			 (const char *)v[BT_CLOCK_REASON].p);
		break;
	case BT_EVID_TRIGGER:
		g->trig_regs_len = v[BT_TRIGGER_REGS].len;
		if (g->trig_regs_len == BT_REGS_SIZE)
			memcpy(g->trig_regs, v[BT_TRIGGER_REGS].p,
			       BT_REGS_SIZE);
		break;
	default:
		break;
	}
}

/*
 * Read slot @slot of @name from its oldest event, into @g; @each (may be
 * NULL) sees every event but schemas, with @arg in g->arg.
 */
static void read_slot_each(const char *name, uint32_t slot, struct got *g,
			   void (*each)(struct got *, uint32_t,
					const struct bt_event_value *),
			   void *arg)
{
	struct bt_kmes_reader_opts o = { .sz = sizeof(o), .one_slot = true,
					 .slot = slot };
	struct bt_kmes_reader *r;
	struct bt_kmes_event ev;
	int rc;

	memset(g, 0, sizeof(*g));
	g->schema_first = true;
	g->each = each;
	g->arg = arg;
	r = bt_kmes_reader__new(name, &o);
	cr_assert(ne(ptr, r, NULL), "reader: %s", strerror(errno));
	while ((rc = bt_kmes_reader__next(r, &ev)) == 1) {
		g->missed += ev.gap;
		got_event(g, &ev);
	}
	cr_assert(eq(int, rc, 0));
	cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &g->st), 0));
	bt_kmes_reader__free(r);
}

static void read_slot(const char *name, uint32_t slot, struct got *g)
{
	read_slot_each(name, slot, g, NULL, NULL);
}

static void got_free(struct got *g)
{
	free(g->br);
	free(g->pt);
}

static uint64_t lost_sum(const struct got *g, const char *what, size_t *n)
{
	uint64_t sum = 0;

	if (n)
		*n = 0;
	for (size_t i = 0; i < g->nlost; i++) {
		if (strcmp(g->lost[i].what, what))
			continue;
		sum += g->lost[i].count;
		if (n)
			(*n)++;
	}
	return sum;
}

static void end_session(struct bt_kmes_session *s, const char *name)
{
	bt_kmes_session__close(s);
	cr_assert(eq(int, bt_kmes_session__destroy(name, false), 0));
}

/* A branch record the test can recognise: from and to of record @i. */
static uint64_t rec_from(uint64_t i)
{
	return 0x400000 + 16 * i;
}

static uint64_t rec_to(uint64_t i)
{
	return 0x7f0000000000ull + 8 * i + 1;
}

static void check_records(const struct got *g, uint64_t n)
{
	cr_assert(eq(u64, (uint64_t)g->nbr, n));
	for (uint64_t i = 0; i < n; i++) {
		cr_assert(eq(u64, g->br[3 * i], rec_from(i)), "record %llu",
			  (unsigned long long)i);
		cr_assert(eq(u64, g->br[3 * i + 1], rec_to(i)));
	}
}

/* ---- BTS -------------------------------------------------------------- */

/* @n records through a 32 KiB AUX area, drained every @every. */
static void bts_stream(uint32_t kind, int id)
{
	const char *name = tu_name("cbts");
	struct bt_kmes_session *s = tu_create(name, 16 << 20, 1);
	struct bt_pmu *p = new_sim();
	struct bt_pmu_buffers tb;
	struct bt_pmu_event *tr = open_map(p, BT_FAC_BTS, kind, id, false,
					   4 * PG, 8 * PG, false, &tb);
	struct bt_collector *c = new_coll(s, BT_MODE_STREAM, false);
	struct bt_collector_stats st;
	const uint64_t n = 40000;	/* ~29 wraps of the area */
	struct got g;

	add_src(c, p, tr, &tb, NULL, NULL, BT_FAC_BTS, kind, id, 0);
	for (uint64_t i = 0; i < n; i++) {
		cr_assert(eq(int, bt_sim_bts_record(p, tr, rec_from(i),
						     rec_to(i)), 0),
			  "record %llu", (unsigned long long)i);
		if (i % 300 == 299)
			cr_assert(ge(long, bt_collector__drain(c), 0));
	}
	cr_assert(eq(int, bt_collector__freeze(c, NULL), 0));
	bt_collector__stats(c, &st);
	cr_assert(eq(u64, st.branches, n));
	cr_assert(eq(u64, st.aux_flagged, 0));
	cr_assert(eq(u64, st.kmes_dropped, 0));

	read_slot(name, 0, &g);
	check_records(&g, n);
	cr_assert(g.schema_first);
	cr_assert(eq(u64, g.missed, 0));
	cr_assert(eq(sz, g.nlost, 0));
	cr_assert(gt(sz, g.ntype[BT_EVID_AUX], 20));
	cr_assert(eq(str, g.last_clock, "end"));
	cr_assert(eq(u64, g.events, st.events));
	got_free(&g);

	bt_collector__free(c);
	close_ev(p, tr);
	bt_pmu__free(p);
	end_session(s, name);
}

Test(collect, bts_per_task_stream_every_record_once_in_order)
{
	bts_stream(BT_TARGET_TASK, TID);
}

Test(collect, bts_per_cpu_stream_every_record_once_in_order)
{
	bts_stream(BT_TARGET_CPU, 1);
}

/* ---- PT --------------------------------------------------------------- */

static void fill_random(unsigned char *b, size_t n, uint64_t *rng)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(tu_xorshift(rng) | 1);	/* not 0 */
}

Test(collect, pt_stream_chunks_concatenate_to_what_was_written)
{
	const char *name = tu_name("cpt");
	struct bt_kmes_session *s = tu_create(name, 8 << 20, 1);
	struct bt_pmu *p = new_sim();
	struct bt_pmu_buffers tb;
	struct bt_pmu_event *tr = open_map(p, BT_FAC_PT, BT_TARGET_CPU, 0,
					   false, 4 * PG, 16 * PG, false, &tb);
	struct bt_collector *c = new_coll(s, BT_MODE_STREAM, false);
	const size_t total = 1 << 20;
	unsigned char *w = malloc(total);
	uint64_t rng = 12345;
	const size_t region = 8 * PG;
	size_t at = 0, since = 0, nl;
	struct got g;

	cr_assert(ne(ptr, w, NULL));
	fill_random(w, total, &rng);
	add_src(c, p, tr, &tb, NULL, NULL, BT_FAC_PT, BT_TARGET_CPU, 0, 0);
	/*
	 * The sim's ToPA has two regions (the watermark halves): when one
	 * fills, STOP is on the other, since the consumer cannot have freed
	 * the one just published. So each second region ends with STOP,
	 * TRUNCATED and the event disabled, as the kernel does with such a
	 * table. The "CPU" here writes nothing while it is off: it ends
	 * each write at a region's end and lets the collector drain (and
	 * enable the event again) there, so no byte is refused.
	 */
	while (at < total) {
		size_t n = 1 + tu_xorshift(&rng) % 3000;

		if (n > total - at)
			n = total - at;
		if (n > region - at % region)
			n = region - at % region;
		cr_assert(eq(int, bt_sim_pt_write(p, tr, w + at, n), 0),
			  "at %zu", at);
		at += n;
		since += n;
		if (at % region == 0 || since > 8192) {
			bt_collector__drain(c);
			since = 0;
		}
	}
	cr_assert(eq(int, bt_collector__freeze(c, NULL), 0));
	read_slot(name, 0, &g);
	/* each STOP is told, as an AUX record and a loss of unknown size */
	cr_assert(gt(sz, g.aux_truncated, 0));
	lost_sum(&g, "aux", &nl);
	cr_assert(eq(sz, nl, g.aux_truncated));
	cr_assert(eq(u64, lost_sum(&g, "aux", NULL), 0));
	cr_assert(eq(sz, g.npt, total));
	cr_assert(eq(int, memcmp(g.pt, w, total), 0));
	cr_assert(g.pt_contig);
	cr_assert(eq(u64, g.pt_first_off, 0));
	/* chunks of up to MaxEventSize: more than one per 64 KiB area */
	cr_assert(ge(sz, g.ntype[BT_EVID_PT], total / 65536));
	cr_assert(g.schema_first);
	got_free(&g);
	free(w);
	bt_collector__free(c);
	close_ev(p, tr);
	bt_pmu__free(p);
	end_session(s, name);
}

static void pt_snapshot(size_t total)
{
	const char *name = tu_name("cpts");
	struct bt_kmes_session *s = tu_create(name, 8 << 20, 1);
	struct bt_pmu *p = new_sim();
	struct bt_pmu_buffers tb;
	const uint64_t aux = 16 * PG;
	struct bt_pmu_event *tr = open_map(p, BT_FAC_PT, BT_TARGET_TASK, TID,
					   false, 4 * PG, aux, true, &tb);
	struct bt_collector *c = new_coll(s, BT_MODE_SNAPSHOT, false);
	unsigned char *w = malloc(total);
	uint64_t rng = 777;
	size_t want = total < aux ? total : aux;
	struct got g;

	cr_assert(ne(ptr, w, NULL));
	fill_random(w, total, &rng);
	add_src(c, p, tr, &tb, NULL, NULL, BT_FAC_PT, BT_TARGET_TASK, TID, 0);
	for (size_t at = 0; at < total; at += 1000) {
		size_t n = total - at < 1000 ? total - at : 1000;

		cr_assert(eq(int, bt_sim_pt_write(p, tr, w + at, n), 0));
		if (at % 20000 == 0)
			bt_collector__drain(c);	/* the data ring only */
	}
	cr_assert(eq(int, bt_collector__freeze(c, NULL), 0));
	read_slot(name, 0, &g);
	cr_assert(eq(sz, g.npt, want));
	cr_assert(eq(int, memcmp(g.pt, w + total - want, want), 0));
	cr_assert(g.pt_contig);
	got_free(&g);
	free(w);
	bt_collector__free(c);
	close_ev(p, tr);
	bt_pmu__free(p);
	end_session(s, name);
}

Test(collect, pt_snapshot_after_wraps_copies_the_newest_aux_size_bytes)
{
	pt_snapshot(200000);
}

Test(collect, pt_snapshot_before_a_wrap_copies_what_was_written)
{
	pt_snapshot(30000);
}

Test(collect, bts_snapshot_copies_the_newest_records)
{
	const char *name = tu_name("cbtss");
	struct bt_kmes_session *s = tu_create(name, 8 << 20, 1);
	struct bt_pmu *p = new_sim();
	struct bt_pmu_buffers tb;
	struct bt_pmu_event *tr = open_map(p, BT_FAC_BTS, BT_TARGET_TASK, TID,
					   false, 4 * PG, 8 * PG, true, &tb);
	struct bt_collector *c = new_coll(s, BT_MODE_SNAPSHOT, false);
	const uint64_t n = 10000, fit = (8 * PG) / 24;
	struct got g;

	add_src(c, p, tr, &tb, NULL, NULL, BT_FAC_BTS, BT_TARGET_TASK, TID, 0);
	for (uint64_t i = 0; i < n; i++)
		cr_assert(eq(int, bt_sim_bts_record(p, tr, rec_from(i),
						     rec_to(i)), 0));
	cr_assert(eq(int, bt_collector__freeze(c, NULL), 0));
	read_slot(name, 0, &g);
	cr_assert(eq(u64, (uint64_t)g.nbr, fit));
	for (uint64_t i = 0; i < fit; i++)
		cr_assert(eq(u64, g.br[3 * i], rec_from(n - fit + i)));
	got_free(&g);
	bt_collector__free(c);
	close_ev(p, tr);
	bt_pmu__free(p);
	end_session(s, name);
}

/* ---- sideband --------------------------------------------------------- */

Test(collect, sideband_translated_field_by_field)
{
	const char *name = tu_name("csb");
	struct bt_kmes_session *s = tu_create(name, 1 << 20, 2);
	struct bt_pmu *p = new_sim();
	struct bt_pmu_buffers tb, cb;
	struct bt_pmu_event *sb = open_map(p, 0, BT_TARGET_TASK, TID, true,
					   8 * PG, 0, false, &tb);
	struct bt_pmu_event *csb = open_map(p, 0, BT_TARGET_CPU, 1, true,
					    8 * PG, 0, false, &cb);
	struct bt_collector *c = new_coll(s, BT_MODE_STREAM, false);
	const char *file = "/bin/sh";
	struct bt_collector_stats cst;
	struct stat st;
	struct got g;
	struct bt_event_value *v;

	cr_assert(eq(int, stat(file, &st), 0));
	add_src(c, p, NULL, NULL, sb, &tb, BT_FAC_BTS, BT_TARGET_TASK, TID, 0);
	add_src(c, p, NULL, NULL, csb, &cb, BT_FAC_BTS, BT_TARGET_CPU, 1, 1);

	cr_assert(eq(int, bt_sim_comm(p, TID, TID, "loops", true), 0));
	v = NULL;
	bt_collector__drain(c);
	read_slot(name, 0, &g);
	cr_assert(eq(sz, g.ntype[BT_EVID_COMM], 1));
	v = g.v[BT_EVID_COMM];
	cr_assert(eq(i64, v[BT_COMM_PID].i, TID));
	cr_assert(eq(i64, v[BT_COMM_TID].i, TID));
	cr_assert(eq(str, (char *)v[BT_COMM_COMM].p, "loops"));
	cr_assert(eq(u64, v[BT_COMM_EXEC].u, 1));
	cr_assert(gt(u64, v[BT_COMM_TIME].u, 0));
	got_free(&g);

	cr_assert(eq(int, bt_sim_mmap2(p, TID, TID, 0x555555554000ull, 0x3000,
				       2, 5, 2, file), 0));
	cr_assert(eq(int, bt_sim_fork(p, TID + 1, TID, TID + 1, TID), 0));
	cr_assert(eq(int, bt_sim_switch(p, 1, TID, TID, TID + 1, TID + 1), 0));
	bt_collector__drain(c);
	read_slot(name, 0, &g);
	v = g.v[BT_EVID_MMAP];
	cr_assert(eq(sz, g.ntype[BT_EVID_MMAP], 1));
	cr_assert(eq(i64, v[BT_MMAP_PID].i, TID));
	cr_assert(eq(u64, v[BT_MMAP_ADDR].u, 0x555555554000ull));
	cr_assert(eq(u64, v[BT_MMAP_LEN].u, 0x3000));
	cr_assert(eq(u64, v[BT_MMAP_PGOFF].u, 2));
	cr_assert(eq(u64, v[BT_MMAP_PROT].u, 5));
	cr_assert(eq(u64, v[BT_MMAP_FLAGS].u, 2));
	cr_assert(eq(u64, v[BT_MMAP_MAJ].u, major(st.st_dev)));
	cr_assert(eq(u64, v[BT_MMAP_MIN].u, minor(st.st_dev)));
	cr_assert(eq(u64, v[BT_MMAP_INO].u, st.st_ino));
	cr_assert(eq(sz, v[BT_MMAP_BUILD_ID].len, 0));
	cr_assert(eq(str, (char *)v[BT_MMAP_FILE].p, (char *)file));
	v = g.v[BT_EVID_TASK];
	cr_assert(eq(str, (char *)v[BT_TASK_KIND].p, "fork"));
	cr_assert(eq(i64, v[BT_TASK_PID].i, TID + 1));
	cr_assert(eq(i64, v[BT_TASK_PPID].i, TID));
	cr_assert(eq(i64, v[BT_TASK_TID].i, TID + 1));
	cr_assert(eq(i64, v[BT_TASK_PTID].i, TID));
	/* per-task: the switch out of TID and into the child it follows */
	cr_assert(eq(sz, g.ntype[BT_EVID_SWITCH], 2));
	v = g.v[BT_EVID_SWITCH];
	cr_assert(eq(u64, v[BT_SWITCH_OUT].u, 0));
	cr_assert(eq(i64, v[BT_SWITCH_TID].i, TID + 1));
	cr_assert(eq(i64, v[BT_SWITCH_CPU].i, 1));
	got_free(&g);

	/* per-CPU: SWITCH_CPU_WIDE with the other task */
	read_slot(name, 1, &g);
	cr_assert(eq(sz, g.ntype[BT_EVID_SWITCH], 2));
	v = g.v[BT_EVID_SWITCH];
	cr_assert(eq(u64, v[BT_SWITCH_OUT].u, 0));
	cr_assert(eq(i64, v[BT_SWITCH_PID].i, TID + 1));
	cr_assert(eq(i64, v[BT_SWITCH_NEXT_PID].i, TID));
	cr_assert(eq(i64, v[BT_SWITCH_NEXT_TID].i, TID));
	got_free(&g);

	cr_assert(eq(int, bt_sim_exit(p, TID + 1, TID, TID + 1, TID), 0));
	cr_assert(eq(int, bt_collector__freeze(c, NULL), 0));
	read_slot(name, 0, &g);
	v = g.v[BT_EVID_TASK];
	cr_assert(eq(str, (char *)v[BT_TASK_KIND].p, "exit"));
	cr_assert(eq(i64, v[BT_TASK_PID].i, TID + 1));
	cr_assert(g.schema_first);
	got_free(&g);
	bt_collector__stats(c, &cst);
	/*
	 * comm, mmap, fork, two switches per event, and the exit twice:
	 * TID + 1 runs on CPU 1 by then, so CPU 1's event has it too.
	 */
	cr_assert(eq(u64, cst.sideband, 1 + 1 + 1 + 2 + 2 + 2));

	bt_collector__free(c);
	close_ev(p, sb);
	close_ev(p, csb);
	bt_pmu__free(p);
	end_session(s, name);
}

/* ---- loss ------------------------------------------------------------- */

Test(collect, aux_truncation_in_stream_mode_is_told_and_tracing_resumes)
{
	const char *name = tu_name("ctr");
	struct bt_kmes_session *s = tu_create(name, 8 << 20, 1);
	struct bt_pmu *p = new_sim();
	struct bt_pmu_buffers tb;
	struct bt_pmu_event *tr = open_map(p, BT_FAC_BTS, BT_TARGET_TASK, TID,
					   false, 4 * PG, 4 * PG, false, &tb);
	struct bt_collector *c = new_coll(s, BT_MODE_STREAM, false);
	struct bt_collector_stats st;
	uint64_t i = 0, stored = 0, refused = 0;
	size_t nl;
	struct got g;
	int err;

	add_src(c, p, tr, &tb, NULL, NULL, BT_FAC_BTS, BT_TARGET_TASK, TID, 0);
	/* a stalled consumer: the driver runs out of room */
	for (; i < 2000; i++) {
		err = bt_sim_bts_record(p, tr, rec_from(i), rec_to(i));
		cr_assert(err == 0 || err == -ENOSPC);
		if (err)
			refused++;
		else
			stored++;
	}
	cr_assert(gt(u64, refused, 0));
	bt_collector__drain(c);
	/* room freed, the event enabled again: records are stored again */
	cr_assert(eq(int, bt_sim_bts_record(p, tr, rec_from(i), rec_to(i)), 0));
	stored++;
	cr_assert(eq(int, bt_collector__freeze(c, NULL), 0));
	bt_collector__stats(c, &st);
	read_slot(name, 0, &g);
	cr_assert(ge(sz, g.aux_truncated, 1));
	cr_assert(eq(u64, st.aux_flagged, g.aux_truncated));
	lost_sum(&g, "aux", &nl);
	cr_assert(eq(sz, nl, g.aux_truncated));
	cr_assert(eq(u64, (uint64_t)g.nbr, stored));
	cr_assert(eq(u64, g.br[3 * (g.nbr - 1)], rec_from(i)));
	got_free(&g);
	bt_collector__free(c);
	close_ev(p, tr);
	bt_pmu__free(p);
	end_session(s, name);
}

Test(collect, data_ring_loss_is_told_with_its_count)
{
	const char *name = tu_name("clost");
	struct bt_kmes_session *s = tu_create(name, 8 << 20, 1);
	struct bt_pmu *p = new_sim();
	struct bt_pmu_buffers tb;
	struct bt_pmu_event *sb = open_map(p, 0, BT_TARGET_TASK, TID, true,
					   PG, 0, false, &tb);
	struct bt_collector *c = new_coll(s, BT_MODE_STREAM, false);
	struct bt_collector_stats st;
	const int sent = 300;
	struct got g;
	char comm[16];

	add_src(c, p, NULL, NULL, sb, &tb, BT_FAC_BTS, BT_TARGET_TASK, TID, 0);
	for (int i = 0; i < sent; i++) {
		snprintf(comm, sizeof(comm), "c%d", i);
		cr_assert(eq(int, bt_sim_comm(p, TID, TID, comm, false), 0));
	}
	bt_collector__drain(c);
	/* the LOST record comes before the next record that fits */
	cr_assert(eq(int, bt_sim_comm(p, TID, TID, "last", false), 0));
	cr_assert(eq(int, bt_collector__freeze(c, NULL), 0));
	bt_collector__stats(c, &st);
	read_slot(name, 0, &g);
	cr_assert(gt(u64, lost_sum(&g, "data", NULL), 0));
	cr_assert(eq(u64, lost_sum(&g, "data", NULL) + g.ntype[BT_EVID_COMM],
		     (uint64_t)sent + 1));
	cr_assert(eq(u64, st.lost_records, lost_sum(&g, "data", NULL)));
	cr_assert(eq(str, g.strs[BT_EVID_COMM][0], "last"));
	got_free(&g);
	bt_collector__free(c);
	close_ev(p, sb);
	bt_pmu__free(p);
	end_session(s, name);
}

Test(collect, a_ring_too_small_to_keep_everything_tells_what_it_overwrote)
{
	const char *name = tu_name("csmall");
	struct bt_kmes_session *s = tu_create(name, KMES_CAPACITY_MIN, 1);
	struct bt_pmu *p = new_sim();
	struct bt_pmu_buffers tb;
	struct bt_pmu_event *tr = open_map(p, BT_FAC_BTS, BT_TARGET_TASK, TID,
					   false, 4 * PG, 8 * PG, false, &tb);
	struct bt_collector *c = new_coll(s, BT_MODE_STREAM, false);
	const uint64_t n = 20000;
	size_t nl;
	struct got g;

	add_src(c, p, tr, &tb, NULL, NULL, BT_FAC_BTS, BT_TARGET_TASK, TID, 0);
	for (uint64_t i = 0; i < n; i++) {
		cr_assert(eq(int, bt_sim_bts_record(p, tr, rec_from(i),
						     rec_to(i)), 0));
		if (i % 300 == 299)
			bt_collector__drain(c);
	}
	cr_assert(eq(int, bt_collector__freeze(c, NULL), 0));
	read_slot(name, 0, &g);
	/* the ring kept the newest: the last record written is there */
	cr_assert(gt(u64, g.st.lost, 0));
	cr_assert(eq(u64, g.br[3 * (g.nbr - 1)], rec_from(n - 1)));
	/* the freeze told how many it overwrote, inside the ring */
	cr_assert(gt(u64, lost_sum(&g, "kmes", &nl), 0));
	cr_assert(ge(sz, nl, 1));
	cr_assert(le(u64, lost_sum(&g, "kmes", NULL), g.st.lost));
	cr_assert(eq(str, g.last_clock, "end"));
	got_free(&g);
	bt_collector__free(c);
	close_ev(p, tr);
	bt_pmu__free(p);
	end_session(s, name);
}

/* ---- threads ---------------------------------------------------------- */

static void wait_aux_drained(const struct bt_pmu_buffers *b)
{
	const struct perf_event_mmap_page *pc = b->page;
	uint64_t t0 = tu_mono_ms();

	while (__atomic_load_n(&pc->aux_tail, __ATOMIC_ACQUIRE) !=
	       __atomic_load_n(&pc->aux_head, __ATOMIC_ACQUIRE)) {
		cr_assert(lt(u64, tu_mono_ms() - t0, 10000),
			  "the drain thread never freed the AUX area");
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
}

Test(collect, drain_threads_drain_and_do_not_spin_when_idle)
{
	const char *name = tu_name("cthr");
	struct bt_kmes_session *s = tu_create(name, 8 << 20, 1);
	struct bt_pmu *p = new_sim();
	struct bt_pmu_buffers tb, sbb;
	struct bt_pmu_event *tr = open_map(p, BT_FAC_BTS, BT_TARGET_TASK, TID,
					   false, 4 * PG, 8 * PG, false, &tb);
	struct bt_pmu_event *sb = open_map(p, 0, BT_TARGET_TASK, TID, true,
					   4 * PG, 0, false, &sbb);
	struct bt_collector *c = new_coll(s, BT_MODE_STREAM, true);
	struct bt_collector_stats st0, st1;
	struct timespec ts = { 0, 300 * 1000000 };
	const uint64_t n = 20000;
	struct got g;

	add_src(c, p, tr, &tb, sb, &sbb, BT_FAC_BTS, BT_TARGET_TASK, TID, 0);
	cr_assert(eq(int, bt_collector__start(c), 0));
	nanosleep(&(struct timespec){ 0, 50 * 1000000 }, NULL);
	bt_collector__stats(c, &st0);
	nanosleep(&ts, NULL);
	bt_collector__stats(c, &st1);
	/* idle for 300 ms with a 1 s heartbeat: at most a heartbeat or so */
	cr_assert(le(u64, st1.wakeups - st0.wakeups, 2));

	/*
	 * The thread drains as the AUX area fills: every 256 records wait
	 * (10 s at most: a hang, not a speed) until it has freed what the
	 * driver published, so the driver never runs out of room.
	 */
	for (uint64_t i = 0; i < n; i++) {
		cr_assert(eq(int, bt_sim_bts_record(p, tr, rec_from(i),
						     rec_to(i)), 0),
			  "record %llu", (unsigned long long)i);
		if (i % 256 == 255)
			wait_aux_drained(&tb);
	}
	cr_assert(eq(int, bt_collector__freeze(c, NULL), 0));
	bt_collector__stats(c, &st1);
	cr_assert(gt(u64, st1.wakeups, st0.wakeups));
	read_slot(name, 0, &g);
	check_records(&g, n);
	got_free(&g);
	bt_collector__free(c);
	close_ev(p, tr);
	close_ev(p, sb);
	bt_pmu__free(p);
	end_session(s, name);
}

/* ---- freeze ----------------------------------------------------------- */

static void freeze_with(bool regs)
{
	const char *name = tu_name("cfrz");
	struct bt_kmes_session *s = tu_create(name, 1 << 20, 2);
	struct bt_pmu *p = new_sim();
	struct bt_pmu_buffers tb;
	struct bt_pmu_event *tr = open_map(p, BT_FAC_BTS, BT_TARGET_TASK, TID,
					   false, 4 * PG, 8 * PG, false, &tb);
	struct bt_collector *c = new_coll(s, BT_MODE_STREAM, false);
	struct bt_trigger t = {
		.sz = sizeof(t), .reason = "signal", .pid = TID, .tid = TID,
		.signo = 11, .code = 1, .addr = 0xdeadbeef, .ip = 0x401136,
		.has_regs = regs,
	};
	struct bt_event_value *v;
	struct got g;

	t.regs.rip = 0x401136;
	t.regs.rsp = 0x7ffc0000;
	t.regs.r15 = 15;
	t.regs.gs = 0x2b;
	add_src(c, p, tr, &tb, NULL, NULL, BT_FAC_BTS, BT_TARGET_TASK, TID, 1);
	cr_assert(eq(int, bt_sim_bts_record(p, tr, rec_from(0), rec_to(0)), 0));
	cr_assert(eq(int, bt_collector__freeze(c, &t), 0));
	cr_assert(eq(int, bt_collector__freeze(c, &t), -EALREADY));
	/* the record below the threshold was published by the disable */
	read_slot(name, 1, &g);
	check_records(&g, 1);
	cr_assert(eq(sz, g.ntype[BT_EVID_TRIGGER], 1));
	v = g.v[BT_EVID_TRIGGER];
	cr_assert(eq(str, (char *)v[BT_TRIGGER_REASON].p, "signal"));
	cr_assert(eq(i64, v[BT_TRIGGER_SIGNO].i, 11));
	cr_assert(eq(i64, v[BT_TRIGGER_CODE].i, 1));
	cr_assert(eq(i64, v[BT_TRIGGER_TID].i, TID));
	cr_assert(eq(u64, v[BT_TRIGGER_ADDR].u, 0xdeadbeef));
	cr_assert(eq(u64, v[BT_TRIGGER_IP].u, 0x401136));
	if (regs) {
		struct bt_event_value rv = { .p = g.trig_regs,
					     .len = BT_REGS_SIZE };

		cr_assert(eq(sz, g.trig_regs_len, BT_REGS_SIZE));
		cr_assert(eq(u64, bt_event_rec_u64(&rv, BT_REGS_SIZE, 0, 16),
			     0x401136));		/* rip */
		cr_assert(eq(u64, bt_event_rec_u64(&rv, BT_REGS_SIZE, 0, 19),
			     0x7ffc0000));		/* rsp */
		cr_assert(eq(u64, bt_event_rec_u64(&rv, BT_REGS_SIZE, 0, 0),
			     15));			/* r15 */
		cr_assert(eq(u64, bt_event_rec_u64(&rv, BT_REGS_SIZE, 0, 26),
			     0x2b));			/* gs */
	} else {
		cr_assert(eq(sz, g.trig_regs_len, 0));
	}
	cr_assert(eq(str, g.last_type, "bt.clock"));
	cr_assert(eq(str, g.last_clock, "end"));
	cr_assert(eq(u64, g.v[BT_EVID_CLOCK][BT_CLOCK_TSC_HZ].u,
		     2000000000ull));
	got_free(&g);
	/* a slot with no source gets nothing */
	read_slot(name, 0, &g);
	cr_assert(eq(u64, g.events, 0));
	got_free(&g);
	bt_collector__free(c);
	close_ev(p, tr);
	bt_pmu__free(p);
	end_session(s, name);
}

Test(collect, freeze_emits_a_decodable_trigger_with_registers_and_an_end_clock)
{
	freeze_with(true);
}

Test(collect, freeze_without_registers_emits_no_register_record)
{
	freeze_with(false);
}

/* ---- a real program, stepped ------------------------------------------ */

Test(collect, step_run_drained_by_the_threads_gives_every_branch)
{
	const char *name = tu_name("cstep");
	struct bt_kmes_session *s = tu_create(name, 64 << 20, 1);
	struct bt_pmu *p = new_sim();
	char *argv[] = { (char *)su_prog("loops"), NULL };
	struct bt_step_opts so = { .sz = sizeof(so), .facility = BT_FAC_STEP,
				   .sim = p, .start_at = "main" };
	struct bt_pmu_buffers tb, sbb;
	struct bt_pmu_event *tr, *sb;
	struct bt_collector *c;
	struct bt_collector_stats st;
	struct bt_step_stats ss;
	struct bt_step *stp;
	struct got g;
	pid_t pid;

	stp = bt_step__spawn(&so, argv);
	cr_assert(ne(ptr, stp, NULL), "spawn: %s", strerror(errno));
	pid = bt_step__pid(stp);
	tr = open_map(p, BT_FAC_STEP, BT_TARGET_TASK, pid, false, 16 * PG,
		      64 * PG, false, &tb);
	sb = open_map(p, 0, BT_TARGET_TASK, pid, true, 16 * PG, 0, false, &sbb);
	cr_assert(eq(int, bt_step__bind(stp, tr, sb), 0));
	c = new_coll(s, BT_MODE_STREAM, true);
	add_src(c, p, tr, &tb, sb, &sbb, BT_FAC_STEP, BT_TARGET_TASK, pid, 0);
	cr_assert(eq(int, bt_collector__start(c), 0));
	cr_assert(eq(int, bt_step__run(stp), 0));
	cr_assert(eq(int, bt_collector__freeze(c, NULL), 0));
	bt_step__stats(stp, &ss);
	bt_collector__stats(c, &st);
	read_slot(name, 0, &g);
	cr_assert(gt(u64, ss.branches, 100));
	cr_assert(eq(u64, (uint64_t)g.nbr, ss.branches));
	cr_assert(eq(u64, st.branches, ss.branches));
	cr_assert(eq(sz, g.nlost, 0));
	cr_assert(eq(u64, g.aux_flags_or & PERF_AUX_FLAG_TRUNCATED, 0));
	for (size_t i = 0; i < g.nbr; i++) {
		cr_assert(ne(u64, g.br[3 * i], 0));
		cr_assert(ne(u64, g.br[3 * i + 1], 0));
	}
	/* the sideband came too: the program's name and mappings */
	cr_assert(ge(sz, g.ntype[BT_EVID_COMM] + g.ntype[BT_EVID_MMAP], 1));
	cr_assert(g.schema_first);
	got_free(&g);
	bt_collector__free(c);
	bt_step__free(stp);
	close_ev(p, tr);
	close_ev(p, sb);
	bt_pmu__free(p);
	end_session(s, name);
}

/* ---- the gathered emission the collector uses ------------------------- */

Test(collect, emit_trusted_iov_writes_the_pieces_as_one_payload)
{
	const char *name = tu_name("ciov");
	struct bt_kmes_session *s = tu_create(name, KMES_CAPACITY_MIN, 1);
	/* a msgpack bin of 10 bytes: header, then two pieces */
	const unsigned char hdr[2] = { 0xc4, 10 };
	struct bt_kmes_iov iov[3] = {
		{ hdr, 2 }, { "01234", 5 }, { "56789", 5 },
	};
	struct bt_kmes_iov big = { NULL, KMES_CAPACITY_MIN };
	struct bt_kmes_reader *r;
	struct bt_kmes_slot_stats st;
	struct bt_kmes_event ev;

	cr_assert(eq(int, bt_kmes_session__emit_trusted_iov(s, 0, NULL, "t.x",
							    3, iov, 3), 1));
	/* too large for the ring: dropped, counted, its sequence spent */
	big.base = calloc(1, big.len);
	cr_assert(eq(int, bt_kmes_session__emit_trusted_iov(s, 0, NULL, "t.x",
							    3, &big, 1), 0));
	free((void *)big.base);
	cr_assert(eq(int, bt_kmes_session__emit_trusted_iov(s, 0, NULL, "t.x",
							    3, iov, 0),
		     -EINVAL));
	cr_assert(eq(int, bt_kmes_session__emit_trusted_iov(s, 1, NULL, "t.x",
							    3, iov, 1),
		     -EINVAL));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 2));
	r = bt_kmes_reader__new(name, NULL);
	cr_assert(ne(ptr, r, NULL));
	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
	cr_assert(eq(u32, ev.payload_len, 12));
	cr_assert(eq(int, memcmp(ev.payload, "\xc4\x0a" "0123456789", 12), 0));
	cr_assert(eq(int, memcmp(ev.type, "t.x", 3), 0));
	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 0));
	cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &st), 0));
	cr_assert(eq(u64, st.dropped, 1));
	bt_kmes_reader__free(r);
	end_session(s, name);
}

/* ---- samples: PEBS and LBR -------------------------------------------- */

/* A TSC value as perf time, as the page documents (cap_user_time_zero). */
static uint64_t page_time(const struct perf_event_mmap_page *pc, uint64_t tsc)
{
	uint64_t quot = tsc >> pc->time_shift;
	uint64_t rem = tsc & ((1ull << pc->time_shift) - 1);

	cr_assert(pc->cap_user_time_zero);
	return pc->time_zero + quot * pc->time_mult +
	       ((rem * pc->time_mult) >> pc->time_shift);
}

static struct bt_pmu_event *open_cfg(struct bt_pmu *p, uint32_t fac,
				     uint32_t kind, int id,
				     const struct bt_trace_config *cfg,
				     uint64_t data, struct bt_pmu_buffers *b)
{
	struct bt_pmu_open_args a = {
		.sz = sizeof(a), .facility = fac, .target = { kind, id },
		.config = cfg, .uid = getuid(),
	};
	const struct bt_pmu_ops *o = bt_pmu__ops(p);
	struct bt_pmu_event *ev = NULL;

	cr_assert(eq(int, o->open(p, &a, &ev), 0));
	cr_assert(eq(int, o->map(p, ev, data, 0, false, b), 0));
	cr_assert(eq(int, o->enable(p, ev, true), 0));
	return ev;
}

#define PEBS_N		1000
#define PEBS_SEG	450	/* a context switch every PEBS_SEG records */
#define PEBS_PERIOD	5000
#define PEBS_CPU	1

static uint64_t pebs_ip(uint64_t i)
{
	return 0x401000 + 4 * i;
}

static uint64_t pebs_addr(uint64_t i)
{
	return 0x7ffd00000000ull + 64 * i + 8;
}

static uint64_t pebs_tsc(uint64_t i)
{
	return 1000000 + 997 * i;
}

/*
 * Who took record @i. Per-CPU (on PEBS_CPU): a new task every PEBS_SEG
 * records. Per-task (TID, a thread of process TID - 1): the task moves
 * between CPUs 0 and 1 every PEBS_SEG records.
 */
static void pebs_who(bool task, uint64_t i, int32_t *pid, int32_t *tid,
		     int32_t *cpu)
{
	int32_t seg = (int32_t)(i / PEBS_SEG);

	if (task) {
		*pid = TID - 1;
		*tid = TID;
		*cpu = seg % 2;
	} else {
		*pid = 500 + seg;
		*tid = 600 + seg;
		*cpu = PEBS_CPU;
	}
}

struct pebs_check {
	const struct perf_event_mmap_page *pc;
	bool task;
	uint64_t n;
};

static void pebs_each(struct got *g, uint32_t id,
		      const struct bt_event_value *v)
{
	struct pebs_check *pk = g->arg;
	uint64_t i = pk->n;
	int32_t pid, tid, cpu;

	if (id != BT_EVID_PEBS)
		return;
	cr_assert(lt(u64, i, PEBS_N));
	pebs_who(pk->task, i, &pid, &tid, &cpu);
	cr_assert(eq(i64, v[BT_PEBS_CPU].i, cpu), "sample %llu",
		  (unsigned long long)i);
	cr_assert(eq(i64, v[BT_PEBS_PID].i, pid), "sample %llu",
		  (unsigned long long)i);
	cr_assert(eq(i64, v[BT_PEBS_TID].i, tid));
	cr_assert(eq(u64, v[BT_PEBS_TIME].u, page_time(pk->pc, pebs_tsc(i))));
	cr_assert(eq(u64, v[BT_PEBS_IP].u, pebs_ip(i)));
	cr_assert(eq(u64, v[BT_PEBS_ADDR].u, pebs_addr(i)));
	cr_assert(eq(u64, v[BT_PEBS_PERIOD].u, PEBS_PERIOD));
	/* not in the sim's sample_type (no WEIGHT, DATA_SRC): 0 */
	cr_assert(eq(u64, v[BT_PEBS_WEIGHT].u, 0));
	cr_assert(eq(u64, v[BT_PEBS_DATA_SRC].u, 0));
	pk->n++;
}

static void pebs_run(bool task)
{
	const char *name = tu_name("cpebs");
	struct bt_kmes_session *s = tu_create(name, 8 << 20, 1);
	struct bt_pmu *p = new_sim();
	struct bt_trace_config cfg = { .sz = sizeof(cfg),
				       .period = PEBS_PERIOD };
	uint32_t kind = task ? BT_TARGET_TASK : BT_TARGET_CPU;
	int id = task ? TID : PEBS_CPU;
	struct bt_pmu_buffers tb;
	struct bt_pmu_event *tr = open_cfg(p, BT_FAC_PEBS, kind, id, &cfg,
					   32 * PG, &tb);
	struct bt_collector *c = new_coll(s, BT_MODE_STREAM, false);
	struct pebs_check pk = { .pc = tb.page, .task = task };
	struct bt_collector_stats st;
	struct bt_sim_ds_area ds;
	unsigned pmis = 0;
	struct got g;

	add_src(c, p, tr, &tb, NULL, NULL, BT_FAC_PEBS, kind, id, 0);
	cr_assert(eq(int, bt_sim_ds_area(p, tr, &ds), 0));
	cr_assert(eq(u64, ds.pebs_counter_reset,
		     (uint64_t)-PEBS_PERIOD & 0xffffffffffffull));
	for (uint64_t i = 0; i < PEBS_N; i++) {
		struct bt_sim_pebs_record r = {
			.ip = pebs_ip(i), .addr = pebs_addr(i),
			.tsc = pebs_tsc(i),
		};
		int32_t pid, tid, cpu, ppid = 0, ptid = 0, pcpu;

		for (unsigned k = 0; k < 18; k++)
			r.regs[k] = i * 100 + k;
		if (i % PEBS_SEG == 0) {
			/*
			 * The kernel drains large PEBS at a context switch
			 * (intel_pmu_pebs_sched_task()); the sim leaves that
			 * to its hardware side, as to step's: flush, then
			 * switch.
			 */
			pebs_who(task, i, &pid, &tid, &cpu);
			if (i && !task)
				pebs_who(task, i - 1, &ppid, &ptid, &pcpu);
			cr_assert(eq(int, bt_sim_flush(p, tr), 0));
			cr_assert(eq(int, bt_sim_switch(p, cpu, ppid, ptid,
							pid, tid), 0));
		}
		cr_assert(eq(int, bt_sim_pebs_record(p, tr, &r), 0));
		cr_assert(eq(int, bt_sim_ds_area(p, tr, &ds), 0));
		if (ds.pebs_index == ds.pebs_base)
			pmis++;		/* the threshold's PMI drained it */
		else
			cr_assert(lt(u64, ds.pebs_index, ds.pebs_int_thresh));
		if (i % 100 == 99)
			cr_assert(ge(long, bt_collector__drain(c), 0));
	}
	/* 386 records to the threshold: one PMI in each long segment */
	cr_assert(eq(u32, pmis, 2));
	/* the freeze's disable drains the DS buffer's rest */
	cr_assert(eq(int, bt_collector__freeze(c, NULL), 0));
	bt_collector__stats(c, &st);
	cr_assert(eq(u64, st.lost_records, 0));
	cr_assert(eq(u64, st.kmes_dropped, 0));
	read_slot_each(name, 0, &g, pebs_each, &pk);
	cr_assert(eq(u64, pk.n, PEBS_N));
	cr_assert(eq(sz, g.ntype[BT_EVID_PEBS], PEBS_N));
	cr_assert(eq(sz, g.nlost, 0));
	cr_assert(g.schema_first);
	cr_assert(eq(u64, g.events, st.events));
	got_free(&g);
	bt_collector__free(c);
	close_ev(p, tr);
	bt_pmu__free(p);
	end_session(s, name);
}

Test(collect, pebs_per_cpu_samples_across_ds_interrupts_keep_every_field)
{
	pebs_run(false);
}

Test(collect, pebs_per_task_samples_follow_the_task_across_cpus)
{
	pebs_run(true);
}
#define LBR_N		330	/* ten rounds of every depth, 0..32 */
#define LBR_MAX		32	/* the sim's (and Intel's deepest) LBR */
#define LBR_PID		900
#define LBR_TID		901

/* Sample @k's branch stack, newest first, as perf gives it. */
static unsigned lbr_stack(unsigned k, struct perf_branch_entry *e)
{
	unsigned n = k % (LBR_MAX + 1);

	memset(e, 0, LBR_MAX * sizeof(*e));
	for (unsigned j = 0; j < n; j++) {
		e[j].from = 0x500000 + (uint64_t)k * 0x1000 + 16 * j;
		e[j].to = e[j].from + 0x800 + j;
		e[j].mispred = (k + j) & 1;
		e[j].predicted = !e[j].mispred;
		e[j].in_tx = j == 3;
		e[j].cycles = (k * 7 + j) & 0xffff;
		e[j].type = j & 15;
	}
	return n;
}

struct lbr_check {
	uint64_t t0[LBR_N], t1[LBR_N];	/* perf time around sample k */
	int32_t cpu;
	unsigned n;
	uint64_t records;
};

static void lbr_each(struct got *g, uint32_t id,
		     const struct bt_event_value *v)
{
	struct lbr_check *lk = g->arg;
	struct perf_branch_entry e[LBR_MAX];
	unsigned k = lk->n, n;

	if (id != BT_EVID_LBR)
		return;
	cr_assert(lt(u32, k, LBR_N));
	n = lbr_stack(k, e);
	cr_assert(eq(i64, v[BT_LBR_CPU].i, lk->cpu), "sample %u", k);
	cr_assert(eq(i64, v[BT_LBR_PID].i, LBR_PID));
	cr_assert(eq(i64, v[BT_LBR_TID].i, LBR_TID));
	cr_assert(eq(u64, v[BT_LBR_IP].u, 0x600000 + (uint64_t)k));
	cr_assert(ge(u64, v[BT_LBR_TIME].u, lk->t0[k]), "sample %u", k);
	cr_assert(le(u64, v[BT_LBR_TIME].u, lk->t1[k]), "sample %u", k);
	/* from, to, flags of each entry, byte for byte, newest first */
	cr_assert(eq(sz, v[BT_LBR_RECS].len, (size_t)n * BT_BREC_SIZE),
		  "sample %u", k);
	if (n)
		cr_assert(eq(int, memcmp(v[BT_LBR_RECS].p, e, n * sizeof(*e)),
			     0), "sample %u", k);
	for (unsigned j = 0; j < n; j++) {
		cr_assert(eq(u64, bt_event_rec_u64(&v[BT_LBR_RECS],
						   BT_BREC_SIZE, j, 0),
			     e[j].from));
		cr_assert(eq(u64, bt_event_rec_u64(&v[BT_LBR_RECS],
						   BT_BREC_SIZE, j, 1),
			     e[j].to));
	}
	lk->records += n;
	lk->n++;
}

static void lbr_run(uint32_t kind, int id, int32_t want_cpu)
{
	const char *name = tu_name("clbr");
	struct bt_kmes_session *s = tu_create(name, 8 << 20, 1);
	struct bt_pmu *p = new_sim();
	struct bt_pmu_buffers tb;
	struct bt_pmu_event *tr = open_cfg(p, BT_FAC_LBR, kind, id, NULL,
					   8 * PG, &tb);
	struct bt_collector *c = new_coll(s, BT_MODE_STREAM, false);
	struct lbr_check *lk = calloc(1, sizeof(*lk));
	struct perf_branch_entry e[LBR_MAX + 1];
	struct bt_collector_stats st;
	uint64_t depths = 0;
	struct got g;

	cr_assert(ne(ptr, lk, NULL));
	lk->cpu = want_cpu;
	add_src(c, p, tr, &tb, NULL, NULL, BT_FAC_LBR, kind, id, 0);
	/* the task runs on CPU 1 (per-task events report its CPU) */
	cr_assert(eq(int, bt_sim_switch(p, 1, 0, 0, LBR_PID, LBR_TID), 0));
	for (unsigned k = 0; k < LBR_N; k++) {
		unsigned n = lbr_stack(k, e);

		lk->t0[k] = page_time(tb.page, bt_sim_tsc(p));
		cr_assert(eq(int, bt_sim_lbr_sample(p, tr, LBR_PID, LBR_TID,
						    0x600000 + k, e, n), 0),
			  "sample %u", k);
		lk->t1[k] = page_time(tb.page, bt_sim_tsc(p));
		depths += n;
		if (k % 16 == 15)
			cr_assert(ge(long, bt_collector__drain(c), 0));
	}
	/* deeper than the LBR: refused, nothing written */
	memset(e, 0, sizeof(e));
	cr_assert(eq(int, bt_sim_lbr_sample(p, tr, LBR_PID, LBR_TID, 1, e,
					    LBR_MAX + 1), -EINVAL));
	cr_assert(eq(int, bt_collector__freeze(c, NULL), 0));
	bt_collector__stats(c, &st);
	cr_assert(eq(u64, st.branches, depths));
	cr_assert(eq(u64, st.lost_records, 0));
	read_slot_each(name, 0, &g, lbr_each, lk);
	cr_assert(eq(u32, lk->n, LBR_N));
	cr_assert(eq(u64, lk->records, depths));
	cr_assert(eq(sz, g.ntype[BT_EVID_LBR], LBR_N));
	cr_assert(eq(sz, g.nlost, 0));
	cr_assert(g.schema_first);
	got_free(&g);
	free(lk);
	bt_collector__free(c);
	close_ev(p, tr);
	bt_pmu__free(p);
	end_session(s, name);
}

Test(collect, lbr_per_cpu_stacks_of_every_depth_exactly)
{
	lbr_run(BT_TARGET_CPU, 0, 0);
}

Test(collect, lbr_per_task_stacks_carry_the_tasks_cpu)
{
	lbr_run(BT_TARGET_TASK, LBR_TID, 1);
}

/* ---- the clock -------------------------------------------------------- */

static uint64_t fake_mono, fake_real;

static uint64_t fake_clock(clockid_t id)
{
	return id == CLOCK_REALTIME ? fake_real : fake_mono;
}

struct clock_seen {
	char reason[16];
	uint64_t hz, zero, mult, shift, tsc, perf, mono, real;
};

struct clock_check {
	struct clock_seen c[32];
	unsigned n;
};

static void clock_each(struct got *g, uint32_t id,
		       const struct bt_event_value *v)
{
	struct clock_check *ck = g->arg;
	struct clock_seen *c;

	if (id != BT_EVID_CLOCK)
		return;
	cr_assert(lt(u32, ck->n, 32));
	c = &ck->c[ck->n++];
	snprintf(c->reason, sizeof(c->reason), "%.*s",
		 (int)v[BT_CLOCK_REASON].len,
		 (const char *)v[BT_CLOCK_REASON].p);
	c->hz = v[BT_CLOCK_TSC_HZ].u;
	c->zero = v[BT_CLOCK_TIME_ZERO].u;
	c->mult = v[BT_CLOCK_TIME_MULT].u;
	c->shift = v[BT_CLOCK_TIME_SHIFT].u;
	c->tsc = v[BT_CLOCK_TSC].u;
	c->perf = v[BT_CLOCK_PERF_NS].u;
	c->mono = v[BT_CLOCK_MONO_NS].u;
	c->real = v[BT_CLOCK_REAL_NS].u;
}

/* Move the fake clocks and drain; the clocks the drain emitted. */
static long clock_step(struct bt_collector *c, int64_t dmono, int64_t dreal)
{
	struct bt_collector_stats a, b;

	fake_mono += (uint64_t)dmono;
	fake_real += (uint64_t)dreal;
	bt_collector__stats(c, &a);
	cr_assert(ge(long, bt_collector__drain(c), 0));
	bt_collector__stats(c, &b);
	return (long)(b.events - a.events);
}

Test(collect, clock_start_heartbeat_and_wall_clock_jumps)
{
	const char *name = tu_name("cclk");
	struct bt_kmes_session *s = tu_create(name, 1 << 20, 1);
	struct bt_pmu *p = new_sim();
	struct bt_pmu_buffers tb;
	struct bt_pmu_event *tr = open_map(p, BT_FAC_BTS, BT_TARGET_TASK, TID,
					   false, 4 * PG, 8 * PG, false, &tb);
	struct bt_collector_opts o = { .sz = sizeof(o), .session = s,
				       .mode = BT_MODE_STREAM,
				       .clock_period_ms = 1000,
				       .no_threads = true };
	const struct perf_event_mmap_page *pc = tb.page;
	static const char *const want[] = {
		"start", "periodic", "jump", "jump", "periodic", "end",
	};
	const int64_t ms = 1000000;
	uint64_t reals[6], monos[6], tsc0, tsc1;
	struct clock_check ck = { .n = 0 };
	struct bt_collector *c;
	struct got g;

	fake_mono = 1000ull * 1000000000ull;
	fake_real = 1700000000ull * 1000000000ull;
	collect_clock_hook = fake_clock;
	c = bt_collector__new(&o);
	cr_assert(ne(ptr, c, NULL));
	add_src(c, p, tr, &tb, NULL, NULL, BT_FAC_BTS, BT_TARGET_TASK, TID, 0);

	tsc0 = bt_sim_tsc(p);
	cr_assert(gt(long, clock_step(c, 0, 0), 0));	/* start */
	tsc1 = bt_sim_tsc(p);
	monos[0] = fake_mono, reals[0] = fake_real;
	/* 999 ms: no heartbeat yet; the 1000th: one */
	cr_assert(eq(long, clock_step(c, 999 * ms, 999 * ms), 0));
	cr_assert(gt(long, clock_step(c, ms, ms), 0));
	monos[1] = fake_mono, reals[1] = fake_real;
	/* the wall clock set an hour ahead */
	cr_assert(gt(long, clock_step(c, ms, 3600000 * ms), 0));
	monos[2] = fake_mono, reals[2] = fake_real;
	/* 10 ms of drift is not a jump (more is) */
	cr_assert(eq(long, clock_step(c, ms, 11 * ms), 0));
	/* set back: 11 ms behind the last clock */
	cr_assert(gt(long, clock_step(c, ms, -20 * ms), 0));
	monos[3] = fake_mono, reals[3] = fake_real;
	cr_assert(eq(long, clock_step(c, 999 * ms, 999 * ms), 0));
	cr_assert(gt(long, clock_step(c, ms, ms), 0));
	monos[4] = fake_mono, reals[4] = fake_real;
	cr_assert(eq(int, bt_collector__freeze(c, NULL), 0));
	monos[5] = fake_mono, reals[5] = fake_real;
	collect_clock_hook = NULL;

	read_slot_each(name, 0, &g, clock_each, &ck);
	cr_assert(eq(u32, ck.n, 6));
	for (unsigned i = 0; i < 6; i++) {
		struct clock_seen *x = &ck.c[i];

		cr_assert(eq(str, x->reason, (char *)want[i]), "clock %u", i);
		cr_assert(eq(u64, x->mono, monos[i]), "clock %u", i);
		cr_assert(eq(u64, x->real, reals[i]), "clock %u", i);
		/* the sim event's page, as the collector found it */
		cr_assert(eq(u64, x->zero, pc->time_zero));
		cr_assert(eq(u64, x->mult, pc->time_mult));
		cr_assert(eq(u64, x->shift, pc->time_shift));
		cr_assert(eq(u64, x->hz, 2000000000ull));
		cr_assert(eq(u64, x->perf, page_time(pc, x->tsc)),
			  "clock %u", i);
		if (i)
			cr_assert(ge(u64, x->tsc, ck.c[i - 1].tsc));
	}
	cr_assert(ge(u64, ck.c[0].tsc, tsc0));
	cr_assert(le(u64, ck.c[0].tsc, tsc1));
	cr_assert(eq(sz, g.ntype[BT_EVID_CLOCK], 6));
	got_free(&g);
	bt_collector__free(c);
	close_ev(p, tr);
	bt_pmu__free(p);
	end_session(s, name);
}
