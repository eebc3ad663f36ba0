// SPDX-License-Identifier: BSD-3-Clause
/*
 * pt-emu: real programs (tests/progs: loops with a jump table, indirect
 * calls through a table, recursion deeper than the return stack, signal
 * handlers, two threads, a restarted system call, a crash, the loader
 * from exec) stepped, their control flow encoded as Intel PT with
 * libipt's encoder, and the stream decoded again with libipt's
 * instruction flow decoder over the same binaries (their files, libc,
 * ld.so and a copy of the vdso): it must give back exactly the stepped
 * instructions, in order. Into memory through the engine, and into a sim
 * PT event through the public API, read back from AUX as a consumer.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <intel-pt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <btrail/ds.h>
#include <btrail/errno.h>
#include <btrail/step.h>

#include "ds/insn.h"
#include "ds/ptemu.h"
#include "ds/sim.h"
#include "ds/step.h"
#include "ds/stepper.h"
#include "helpers/steputil.h"

#define PG	4096ull

/* ---- Packets into memory ---------------------------------------------- */

struct mem {
	uint8_t *buf;
	size_t len, cap;
	int fail_after;		/* fail the nth write (1-based); 0: never */
	int writes;
};

static int mem_write(void *ctx, const void *b, size_t n)
{
	struct mem *m = ctx;

	if (m->fail_after && ++m->writes >= m->fail_after)
		return -ENOSPC;
	if (m->len + n > m->cap) {
		m->cap = (m->len + n) * 2;
		m->buf = realloc(m->buf, m->cap);
		cr_assert(m->buf != NULL);
	}
	memcpy(m->buf + m->len, b, n);
	m->len += n;
	return 0;
}

static uint64_t fake_tsc(void *ctx)
{
	static uint64_t t = 1000000;

	(void)ctx;
	return t += 4321;
}

/* ---- Decoding with libipt ------------------------------------------- */

struct decoded {
	uint64_t *ip;
	size_t n, cap;
	int err;		/* libipt's error, 0 at the end of the trace */
	uint64_t err_off;
	size_t enabled, disabled, async_disabled, async_branch;
};

static void add_image(struct pt_image *img, const struct su_rec *r)
{
	for (size_t i = 0; i < r->nmaps; i++) {
		const struct bt_map *m = &r->maps[i];
		const char *file = m->path;
		uint64_t off = m->offset;

		if (!(m->prot & PROT_EXEC))
			continue;
		if (!strcmp(m->path, "[vdso]")) {
			file = r->vdso_file;
			off = 0;
		} else if (m->path[0] != '/') {
			continue;
		}
		cr_assert(pt_image_add_file(img, file, off, m->end - m->start,
					    NULL, m->start) >= 0,
			  "pt_image_add_file %s", file);
	}
}

static void decode(const uint8_t *buf, size_t len, const struct su_rec *r,
		   struct decoded *d)
{
	struct pt_insn_decoder *dec;
	struct pt_config cfg;
	int status;

	memset(d, 0, sizeof(*d));
	cr_assert(eq(int, bt_ptemu_config(&cfg), 0));
	cfg.begin = (uint8_t *)buf;
	cfg.end = (uint8_t *)buf + len;
	dec = pt_insn_alloc_decoder(&cfg);
	cr_assert(dec != NULL);
	add_image(pt_insn_get_image(dec), r);

	status = pt_insn_sync_forward(dec);
	while (status >= 0) {
		struct pt_insn insn;

		while (status & pts_event_pending) {
			struct pt_event ev;

			status = pt_insn_event(dec, &ev, sizeof(ev));
			if (status < 0)
				break;
			d->enabled += ev.type == ptev_enabled;
			d->disabled += ev.type == ptev_disabled;
			d->async_disabled += ev.type == ptev_async_disabled;
			d->async_branch += ev.type == ptev_async_branch;
		}
		if (status < 0 || (status & pts_eos))
			break;
		memset(&insn, 0, sizeof(insn));
		status = pt_insn_next(dec, &insn, sizeof(insn));
		if (insn.iclass != ptic_error) {
			if (d->n == d->cap) {
				d->cap = d->cap ? d->cap * 2 : 4096;
				d->ip = realloc(d->ip, d->cap * sizeof(*d->ip));
				cr_assert(d->ip != NULL);
			}
			d->ip[d->n++] = insn.ip;
		}
	}
	if (status < 0 && status != -pte_eos) {
		d->err = status;
		pt_insn_get_offset(dec, &d->err_off);
	}
	pt_insn_free_decoder(dec);
}

/* The decoded instructions are the stepped ones, in order. */
static void assert_same(const struct decoded *d, const struct su_rec *r)
{
	size_t i;

	cr_assert(eq(int, d->err, 0), "libipt: %s at offset %" PRIu64
		  " after %zu of %zu instructions",
		  pt_errstr(pt_errcode(d->err)), d->err_off, d->n, r->ninsn);
	for (i = 0; i < d->n && i < r->ninsn; i++) {
		if (d->ip[i] != r->insn[i].ip)
			break;
	}
	cr_assert(eq(sz, i, r->ninsn), "first difference at %zu of %zu "
		  "(decoded %#" PRIx64 ", stepped %#" PRIx64 ")", i, r->ninsn,
		  i < d->n ? d->ip[i] : 0, i < r->ninsn ? r->insn[i].ip : 0);
	cr_assert(eq(sz, d->n, r->ninsn));
}

/* The packets of a stream, by type and by IP compression. */
struct census {
	size_t type[ppt_ptw + 1];
	size_t ipc[8];
	size_t tnt_bits_max;
};

static void census(const uint8_t *buf, size_t len, struct census *c)
{
	struct pt_packet_decoder *dec;
	struct pt_packet pkt;
	struct pt_config cfg;
	int status;

	memset(c, 0, sizeof(*c));
	cr_assert(eq(int, bt_ptemu_config(&cfg), 0));
	cfg.begin = (uint8_t *)buf;
	cfg.end = (uint8_t *)buf + len;
	dec = pt_pkt_alloc_decoder(&cfg);
	cr_assert(dec != NULL);
	cr_assert(ge(int, pt_pkt_sync_forward(dec), 0));
	while ((status = pt_pkt_next(dec, &pkt, sizeof(pkt))) > 0) {
		if ((unsigned)pkt.type <= ppt_ptw)
			c->type[pkt.type]++;
		switch (pkt.type) {
		case ppt_tip: case ppt_tip_pge: case ppt_tip_pgd: case ppt_fup:
			c->ipc[pkt.payload.ip.ipc & 7]++;
			break;
		case ppt_tnt_8: case ppt_tnt_64:
			if (pkt.payload.tnt.bit_size > c->tnt_bits_max)
				c->tnt_bits_max = pkt.payload.tnt.bit_size;
			break;
		default:
			break;
		}
	}
	cr_assert(eq(int, status, -pte_eos), "packet decoder: %s",
		  pt_errstr(pt_errcode(status)));
	pt_pkt_free_decoder(dec);
}

/* ---- Running a program ---------------------------------------------- */

struct run {
	struct su_rec rec;
	struct mem mem;
	struct bt_ptemu *pe;
	struct bt_stepper *st;
	int status;
	uint64_t psbs;
};

static void run_prog(struct run *run, const char *prog, const char *arg,
		     const char *start_at, uint32_t psb_period)
{
	struct bt_stepper_opts o = { .start_at = start_at };
	char *argv[] = { (char *)su_prog(prog), (char *)arg, NULL };
	struct bt_ptemu_opts po = {
		.sz = sizeof(po), .write = mem_write, .tsc = fake_tsc,
		.ctx = &run->mem, .psb_period = psb_period,
	};
	struct bt_step_sink pts, rs;

	memset(run, 0, sizeof(*run));
	run->st = bt_stepper__spawn(&o, argv);
	cr_assert(run->st != NULL, "spawn %s: %s", prog, strerror(errno));
	run->pe = bt_ptemu__new(&po);
	cr_assert(run->pe != NULL);
	bt_ptemu__sink(run->pe, &pts);
	su_rec_init(&run->rec, bt_stepper__pid(run->st), &pts);
	su_rec_sink(&run->rec, &rs);
	cr_assert(eq(int, bt_stepper__run(run->st, &rs, NULL), 0));
	run->status = bt_stepper__status(run->st);
	run->psbs = bt_ptemu__psbs(run->pe);
	cr_assert(eq(u64, bt_ptemu__bytes(run->pe), run->mem.len));
	cr_assert(gt(sz, run->rec.ninsn, 0));
}

static void run_free(struct run *run)
{
	bt_stepper__free(run->st);
	bt_ptemu__free(run->pe);
	su_rec_fini(&run->rec);
	free(run->mem.buf);
}

static void roundtrip(const char *prog, const char *arg, uint32_t psb_period,
		      struct decoded *d, struct run *run)
{
	int ok;

	run_prog(run, prog, arg, "work", psb_period);
	ok = WIFEXITED(run->status) && WEXITSTATUS(run->status) == 0;
	cr_assert(ok, "%s ended with status %#x", prog, run->status);
	decode(run->mem.buf, run->mem.len, &run->rec, d);
	assert_same(d, &run->rec);
}

/* ---- The round trips ---------------------------------------------- */

Test(ptemu, loops_decode_to_the_stepped_instructions)
{
	struct decoded d;
	struct run run;

	roundtrip("loops", NULL, 0, &d, &run);
	cr_assert(eq(u64, d.ip[0], su_sym(&run.rec, "work")));
	cr_assert(eq(u64, run.psbs, 1));	/* under 4 KiB: the first only */
	free(d.ip);
	run_free(&run);
}

Test(ptemu, indirect_calls_through_a_table_decode_exactly)
{
	struct decoded d;
	struct run run;
	size_t ind = 0;

	roundtrip("calltable", NULL, 0, &d, &run);
	for (size_t i = 0; i < run.rec.ninsn; i++)
		ind += run.rec.insn[i].cls == BT_INSN_CALL_IND;
	cr_assert(ge(sz, ind, 40), "indirect calls stepped: %zu", ind);
	free(d.ip);
	run_free(&run);
}

Test(ptemu, recursion_deeper_than_the_return_stack_decodes_exactly)
{
	struct decoded d;
	struct run run;
	size_t rets = 0;

	roundtrip("recurse", NULL, 0, &d, &run);
	for (size_t i = 0; i < run.rec.ninsn; i++)
		rets += run.rec.insn[i].cls == BT_INSN_RET;
	cr_assert(ge(sz, rets, 150), "returns stepped: %zu", rets);
	free(d.ip);
	run_free(&run);
}

Test(ptemu, signal_handlers_decode_exactly)
{
	struct decoded d;
	struct run run;

	roundtrip("sigs", NULL, 0, &d, &run);
	cr_assert(eq(sz, run.rec.nasync, 4));
	/* The SIGSEGV interrupts a store: FUP + TIP, an async branch. */
	cr_assert(ge(sz, d.async_branch, 1));
	free(d.ip);
	run_free(&run);
}

Test(ptemu, a_restarted_system_call_decodes_exactly)
{
	struct decoded d;
	struct run run;

	roundtrip("restart", NULL, 0, &d, &run);
	free(d.ip);
	run_free(&run);
}

Test(ptemu, frequent_psbs_keep_the_round_trip_exact)
{
	struct decoded d;
	struct run run;

	roundtrip("threads", "300", 256, &d, &run);
	cr_assert(ge(u64, run.psbs, run.mem.len / 300), "PSB+: %" PRIu64
		  " in %zu bytes", run.psbs, run.mem.len);
	free(d.ip);
	run_free(&run);
}
Test(ptemu, two_threads_decode_exactly_across_switches)
{
	struct decoded d;
	struct run run;
	pid_t other = 0;

	roundtrip("threads", "400", 0, &d, &run);
	cr_assert(ge(sz, run.rec.nsw, 2));
	for (size_t i = 0; i < run.rec.ninsn && !other; i++) {
		if (run.rec.insn[i].tid != run.rec.pid)
			other = run.rec.insn[i].tid;
	}
	cr_assert(gt(int, other, 0), "the second thread was stepped");
	/*
	 * A switch disables tracing (FUP + TIP.PGD, unless a system call
	 * did) and the next thread starts with TIP.PGE.
	 */
	cr_assert(ge(sz, d.enabled, run.rec.nsw + 1));
	cr_assert(ge(sz, d.async_disabled, 1));
	free(d.ip);
	run_free(&run);
}

Test(ptemu, the_stream_has_the_packets_of_a_user_only_trace)
{
	struct census c;
	struct run run;

	run_prog(&run, "loops", "40", "work", 0);
	census(run.mem.buf, run.mem.len, &c);
	cr_assert(eq(sz, c.type[ppt_psb], 1));
	cr_assert(eq(sz, c.type[ppt_psbend], 1));
	cr_assert(eq(sz, c.type[ppt_tsc], 1));
	cr_assert(eq(sz, c.type[ppt_cbr], 1));
	cr_assert(ge(sz, c.type[ppt_mode], 2));	/* PSB+ and TIP.PGE */
	cr_assert(ge(sz, c.type[ppt_tip_pge], 1));
	cr_assert(ge(sz, c.type[ppt_tip_pgd], 1));	/* exit_group */
	cr_assert(ge(sz, c.type[ppt_tnt_8], 1));
	cr_assert(ge(sz, c.type[ppt_tnt_64], 1));
	cr_assert(ge(sz, c.type[ppt_tip], 10));	/* the jump table */
	cr_assert(le(sz, c.tnt_bits_max, 47));
	cr_assert(ge(sz, c.ipc[pt_ipc_update_16], 10));
	cr_assert(ge(sz, c.ipc[pt_ipc_sext_48], 1));	/* after PSB */
	cr_assert(ge(sz, c.ipc[pt_ipc_suppressed], 1));	/* TIP.PGD */
	run_free(&run);
}

/* ---- Through the public API, into a sim PT event ---------------------- */

/* pt-emu as the collector drives it; the trace read back from AUX. */
static void sim_roundtrip(const char *prog, const char *arg,
			  const char *start_at, uint64_t max,
			  struct su_rec *rec, struct decoded *d,
			  struct bt_step_stats *st, int *status)
{
	struct bt_sim_opts so = { .sz = sizeof(so), .nr_cpus = 2,
				  .cap_ipc_lock = true };
	struct bt_pmu *sim = bt_pmu__new_sim(&so);
	char *argv[] = { (char *)su_prog(prog), (char *)arg, NULL };
	struct bt_step_opts o = {
		.sz = sizeof(o), .facility = BT_FAC_PTEMU, .sim = sim,
		.start_at = start_at, .max_insns = max, .psb_period = 1024,
	};
	struct bt_pmu_buffers tb, sbb;
	struct bt_pmu_event *trace, *sb;
	struct bt_step_sink tap;
	struct bt_step *s;
	uint64_t head;

	cr_assert(ne(ptr, sim, NULL));
	s = bt_step__spawn(&o, argv);
	cr_assert(ne(ptr, s, NULL), "spawn %s: %s", prog, strerror(errno));
	trace = su_open_map(sim, BT_FAC_PTEMU, bt_step__pid(s), false, 256 * PG,
			 &tb);
	sb = su_open_map(sim, 0, bt_step__pid(s), true, 0, &sbb);
	cr_assert(eq(int, bt_step__bind(s, trace, sb), 0));
	su_rec_init(rec, bt_step__pid(s), NULL);
	su_rec_sink(rec, &tap);
	cr_assert(eq(int, bt_step__set_tap(s, &tap), 0));
	cr_assert(eq(int, bt_step__run(s), 0));
	*status = bt_step__status(s);
	bt_step__stats(s, st);

	head = __atomic_load_n(&tb.page->aux_head, __ATOMIC_ACQUIRE);
	cr_assert(le(u64, head, tb.aux_size));
	cr_assert(eq(u64, head, st->bytes), "everything written is published");
	decode(tb.aux, head, rec, d);

	bt_step__free(s);
	bt_pmu__ops(sim)->close(sim, trace);
	bt_pmu__ops(sim)->close(sim, sb);
	bt_pmu__free(sim);
}

Test(ptemu, through_sim_the_aux_area_decodes_to_the_stepped_instructions)
{
	struct bt_step_stats st;
	struct su_rec rec;
	struct decoded d;
	int status, ok;

	sim_roundtrip("recurse", NULL, "work", 0, &rec, &d, &st, &status);
	ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	cr_assert(ok, "status %#x", status);
	assert_same(&d, &rec);
	cr_assert(eq(u64, st.insns, rec.ninsn));
	free(d.ip);
	su_rec_fini(&rec);
}

Test(ptemu, a_crash_ends_the_trace_at_the_faulting_instruction)
{
	struct bt_step_stats st;
	struct su_rec rec;
	struct decoded d;
	int status, died;

	sim_roundtrip("crash", NULL, "work", 0, &rec, &d, &st, &status);
	died = WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
	cr_assert(died, "status %#x", status);
	assert_same(&d, &rec);
	/* FUP + TIP.PGD at the store that faulted */
	cr_assert(eq(sz, d.async_disabled, 1));
	cr_assert(eq(u64, rec.end_ip, rec.insn[rec.ninsn - 1].next));
	free(d.ip);
	su_rec_fini(&rec);
}

Test(ptemu, the_loader_and_libc_decode_exactly_from_exec)
{
	struct bt_step_stats st;
	struct su_rec rec;
	struct decoded d;
	int status, ok;

	sim_roundtrip("hello", NULL, NULL, 30000, &rec, &d, &st, &status);
	ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	cr_assert(ok, "status %#x", status);
	cr_assert(eq(sz, rec.ninsn, 30000));
	assert_same(&d, &rec);
	free(d.ip);
	su_rec_fini(&rec);
}
