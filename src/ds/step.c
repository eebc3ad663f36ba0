// SPDX-License-Identifier: BSD-3-Clause
/*
 * The software facilities step and pt-emu as a caller sees them
 * (<btrail/step.h>): a process under the stepping engine, its trace
 * written into a sim event as the hardware writes it, its sideband into
 * the sim backend as the kernel writes it.
 *
 * step's sink is the CPU's BTS logic: every taken branch (and every
 * asynchronous transfer, as BTS records interrupts; see bts_records_it()
 * for what is taken) is one 24-byte
 * record stored through the DS area of the event (bt_sim_bts_record());
 * a record the hardware cannot store because tracing is off (the event
 * disabled or unmapped, or stopped by a full buffer) is dropped, as the
 * CPU drops it. A thread switch or the end flushes, as the driver does
 * when a task is scheduled out. pt-emu's sink is in ptemu.c; its bytes go
 * out through the event's ToPA (bt_sim_pt_write()).
 */
#include "ds/step.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <btrail/errno.h>

#include "common/log.h"
#include "common/opts.h"
#include "ds/ptemu.h"
#include "ds/sim.h"
#include "ds/sim_model.h"
#include "ds/stepper.h"

#define BTS_RECORD_SIZE	24u

struct bt_step {
	struct bt_step_opts o;
	struct bt_stepper *eng;
	struct bt_pmu *sim;
	struct bt_pmu_event *trace;
	struct bt_pmu_event *sideband;
	struct bt_ptemu *pe;
	const struct bt_step_sink *tap;
	struct bt_step_sink fac;	/* the facility's sink */
	struct bt_step_sink pts;	/* pt-emu: the encoder's sink */
	struct bt_step_sink tee;	/* the tap, then the facility */
	struct bt_step_sideband sb;
	uint64_t records;		/* BTS records the CPU produced */
	uint64_t stored;		/* of which the DS area took */
	uint64_t dropped_bytes;		/* PT bytes dropped (tracing off) */
	bool bound;
	bool ran;
};

/* ---- step: the BTS sink ----------------------------------------------- */

static int bts_put(struct bt_step *s, uint64_t from, uint64_t to)
{
	int err;

	s->records++;
	err = bt_sim_bts_record(s->sim, s->trace, from, to);
	if (err == -ENOSPC)
		return 0;	/* tracing is off: the CPU drops it */
	if (err < 0)
		return err;
	s->stored++;
	return 0;
}

/*
 * The branches the CPU records: conditional ones that were taken (the
 * next IP is not the fall-through); near jumps, calls and returns always
 * (a jump or call to the next instruction, as a lazy PLT entry does, is
 * still a taken branch to the CPU); far transfers when they did not come
 * back to the next instruction (a system call that returns is not seen by
 * a user-only trace; sigreturn or exec is).
 */
static bool bts_records_it(const struct bt_step_insn *in)
{
	if (!in->next_ip && in->cls == BT_INSN_FAR)
		return false;	/* the exit call: the thread left for good */
	switch (in->cls) {
	case BT_INSN_JMP:
	case BT_INSN_JMP_IND:
	case BT_INSN_CALL:
	case BT_INSN_CALL_IND:
	case BT_INSN_RET:
		return true;
	default:
		return in->taken;
	}
}

static int bts_insn(void *ctx, const struct bt_step_insn *in)
{
	struct bt_step *s = ctx;

	if (!bts_records_it(in))
		return 0;
	return bts_put(s, in->ip, in->next_ip);
}

static int bts_async(void *ctx, const struct bt_step_async *a)
{
	return bts_put(ctx, a->from, a->to);
}

static int sim_flush(struct bt_step *s)
{
	int err = bt_sim_flush(s->sim, s->trace);

	return err == -ENOSPC ? 0 : err;
}

static int bts_switch(void *ctx, pid_t from, pid_t to)
{
	(void)from;
	(void)to;
	return sim_flush(ctx);
}

static int bts_end(void *ctx, pid_t tid, uint64_t ip)
{
	(void)tid;
	(void)ip;
	return sim_flush(ctx);
}

/* ---- pt-emu: the PT sink's output -------------------------------------- */

static int pt_out(void *ctx, const void *buf, size_t len)
{
	struct bt_step *s = ctx;
	int err = bt_sim_pt_write(s->sim, s->trace, buf, len);

	if (err == -ENOSPC) {
		s->dropped_bytes += len;
		return 0;
	}
	return err;
}

static uint64_t pt_tsc(void *ctx)
{
	struct bt_step *s = ctx;

	return bt_sim_tsc(s->sim);
}

static int pt_begin(void *ctx, pid_t tid, uint64_t ip)
{
	struct bt_step *s = ctx;

	return s->pts.begin(s->pts.ctx, tid, ip);
}

static int pt_insn(void *ctx, const struct bt_step_insn *in)
{
	struct bt_step *s = ctx;

	return s->pts.insn(s->pts.ctx, in);
}

static int pt_async(void *ctx, const struct bt_step_async *a)
{
	struct bt_step *s = ctx;

	return s->pts.async(s->pts.ctx, a);
}

/* A switch or the end: the encoder's bytes out, then the driver's flush. */
static int pt_switch(void *ctx, pid_t from, pid_t to)
{
	struct bt_step *s = ctx;
	int err;

	err = s->pts.thread_switch(s->pts.ctx, from, to);
	if (!err)
		err = bt_ptemu__flush(s->pe);
	return err ? err : sim_flush(s);
}

static int pt_end(void *ctx, pid_t tid, uint64_t ip)
{
	struct bt_step *s = ctx;
	int err;

	err = s->pts.end(s->pts.ctx, tid, ip);
	return err ? err : sim_flush(s);
}

/* ---- The tap --------------------------------------------------------- */

static int tee_begin(void *ctx, pid_t tid, uint64_t ip)
{
	struct bt_step *s = ctx;
	int err = s->tap->begin ? s->tap->begin(s->tap->ctx, tid, ip) : 0;

	return err ? err : s->fac.begin ? s->fac.begin(s->fac.ctx, tid, ip) : 0;
}

static int tee_insn(void *ctx, const struct bt_step_insn *in)
{
	struct bt_step *s = ctx;
	int err = s->tap->insn ? s->tap->insn(s->tap->ctx, in) : 0;

	return err ? err : s->fac.insn(s->fac.ctx, in);
}

static int tee_async(void *ctx, const struct bt_step_async *a)
{
	struct bt_step *s = ctx;
	int err = s->tap->async ? s->tap->async(s->tap->ctx, a) : 0;

	return err ? err : s->fac.async ? s->fac.async(s->fac.ctx, a) : 0;
}

static int tee_switch(void *ctx, pid_t from, pid_t to)
{
	struct bt_step *s = ctx;
	int err = s->tap->thread_switch ?
		  s->tap->thread_switch(s->tap->ctx, from, to) : 0;

	if (err)
		return err;
	return s->fac.thread_switch ? s->fac.thread_switch(s->fac.ctx, from, to)
				    : 0;
}

static int tee_end(void *ctx, pid_t tid, uint64_t ip)
{
	struct bt_step *s = ctx;
	int err = s->tap->end ? s->tap->end(s->tap->ctx, tid, ip) : 0;

	return err ? err : s->fac.end ? s->fac.end(s->fac.ctx, tid, ip) : 0;
}

/* ---- Sideband, as the kernel writes it --------------------------------- */

static int sb_comm(void *ctx, pid_t pid, pid_t tid, const char *comm,
		   bool exec)
{
	struct bt_step *s = ctx;

	return bt_sim_comm(s->sim, pid, tid, comm, exec);
}

static int sb_mmap2(void *ctx, pid_t pid, pid_t tid, uint64_t addr,
		    uint64_t len, uint64_t pgoff, uint32_t prot, uint32_t flags,
		    const char *filename)
{
	struct bt_step *s = ctx;

	return bt_sim_mmap2(s->sim, pid, tid, addr, len, pgoff, prot, flags,
			    filename);
}

static int sb_fork(void *ctx, pid_t pid, pid_t ppid, pid_t tid, pid_t ptid)
{
	struct bt_step *s = ctx;

	return bt_sim_fork(s->sim, pid, ppid, tid, ptid);
}

static int sb_exit(void *ctx, pid_t pid, pid_t ppid, pid_t tid, pid_t ptid)
{
	struct bt_step *s = ctx;

	return bt_sim_exit(s->sim, pid, ppid, tid, ptid);
}

static int sb_switch(void *ctx, int cpu, pid_t prev_pid, pid_t prev_tid,
		     pid_t next_pid, pid_t next_tid)
{
	struct bt_step *s = ctx;
	int err;

	err = bt_sim_switch(s->sim, cpu, prev_pid, prev_tid, next_pid,
			    next_tid);
	if (err == -EINVAL && cpu > 0)	/* a CPU the model does not have */
		err = bt_sim_switch(s->sim, 0, prev_pid, prev_tid, next_pid,
				    next_tid);
	return err;
}

/* ---- The public API ------------------------------------------------- */

/* Check and copy @opts into a new bt_step; NULL with errno. */
static struct bt_step *step_new(const struct bt_step_opts *opts)
{
	struct bt_step *s;
	int err;

	if (!opts)
		return errno = EINVAL, NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return errno = ENOMEM, NULL;
	err = bt_opts_copy(&s->o, sizeof(s->o), opts);
	if (!err && s->o.facility != BT_FAC_STEP &&
	    s->o.facility != BT_FAC_PTEMU)
		err = -EINVAL;
	if (!err && !bt_sim_is(s->o.sim))
		err = -EINVAL;	/* the software facilities write into sim */
	if (!err && s->o.facility == BT_FAC_PTEMU && s->o.psb_period &&
	    s->o.psb_period < 256)
		err = -EINVAL;
	if (err < 0) {
		free(s);
		return errno = -err, NULL;
	}
	s->sim = s->o.sim;
	return s;
}

/*
 * A facility over an engine: spawned (@argv) or attached (@pid). NULL
 * with errno, from the options' checks or from the engine.
 */
static struct bt_step *step_start(const struct bt_step_opts *opts,
				  char *const argv[], pid_t pid)
{
	struct bt_stepper_opts eo;
	struct bt_step *s;

	s = step_new(opts);
	if (!s)
		return NULL;
	eo = (struct bt_stepper_opts){
		.start_at = s->o.start_at,
		.max_insns = s->o.max_insns,
		.no_threads = s->o.no_threads,
	};
	s->eng = argv ? bt_stepper__spawn(&eo, argv)
		      : bt_stepper__attach(&eo, pid);
	if (!s->eng) {
		int err = errno;

		free(s);
		return errno = err, NULL;
	}
	s->o.start_at = NULL;	/* the engine keeps its own copy */
	return s;
}

struct bt_step *bt_step__spawn(const struct bt_step_opts *opts,
			       char *const argv[])
{
	if (!argv)
		return errno = EINVAL, NULL;
	return step_start(opts, argv, 0);
}

struct bt_step *bt_step__attach(const struct bt_step_opts *opts, pid_t pid)
{
	return step_start(opts, NULL, pid);
}

pid_t bt_step__pid(const struct bt_step *s)
{
	return s ? bt_stepper__pid(s->eng) : -1;
}

int bt_step__bind(struct bt_step *s, struct bt_pmu_event *trace,
		  struct bt_pmu_event *sideband)
{
	struct bt_sim *sim;
	pid_t pid;

	if (!s || !trace || s->ran)
		return -EINVAL;
	sim = sim_of(s->sim);
	pid = bt_stepper__pid(s->eng);
	if (!bt_sim__owns(sim, trace) || trace->target.kind != BT_TARGET_TASK ||
	    trace->target.id != pid)
		return -EINVAL;
	if (s->o.facility == BT_FAC_STEP ? !sim_is_bts(trace)
					 : !sim_is_pt(trace))
		return -EINVAL;
	if (sideband && (!bt_sim__owns(sim, sideband) || !sideband->sideband))
		return -EINVAL;
	s->trace = trace;
	s->sideband = sideband;
	s->bound = true;
	return 0;
}

int bt_step__set_tap(struct bt_step *s, const struct bt_step_sink *tap)
{
	if (!s || s->ran || (tap && !tap->insn))
		return -EINVAL;
	s->tap = tap;
	return 0;
}

int bt_step__run(struct bt_step *s)
{
	const struct bt_step_sink *sink;
	int err, ferr;

	if (!s || !s->bound)
		return -EINVAL;
	if (s->ran)
		return -EALREADY;
	s->ran = true;

	if (s->o.facility == BT_FAC_STEP) {
		s->fac = (struct bt_step_sink){
			.ctx = s, .insn = bts_insn, .async = bts_async,
			.thread_switch = bts_switch, .end = bts_end,
		};
	} else {
		struct bt_ptemu_opts po = {
			.sz = sizeof(po), .write = pt_out, .tsc = pt_tsc,
			.ctx = s, .psb_period = s->o.psb_period,
		};

		s->pe = bt_ptemu__new(&po);
		if (!s->pe)
			return -errno;
		bt_ptemu__sink(s->pe, &s->pts);
		s->fac = (struct bt_step_sink){
			.ctx = s, .begin = pt_begin, .insn = pt_insn,
			.async = pt_async, .thread_switch = pt_switch,
			.end = pt_end,
		};
	}
	sink = &s->fac;
	if (s->tap) {
		s->tee = (struct bt_step_sink){
			.ctx = s, .begin = tee_begin, .insn = tee_insn,
			.async = tee_async, .thread_switch = tee_switch,
			.end = tee_end,
		};
		sink = &s->tee;
	}
	if (s->sideband) {
		s->sb = (struct bt_step_sideband){
			.ctx = s, .comm = sb_comm, .mmap2 = sb_mmap2,
			.fork = sb_fork, .exit = sb_exit, .switch_cpu = sb_switch,
		};
	}
	err = bt_stepper__run(s->eng, sink, s->sideband ? &s->sb : NULL);
	/* Whatever was written is published, even when tracing never began. */
	ferr = s->pe ? bt_ptemu__flush(s->pe) : 0;
	if (!ferr)
		ferr = sim_flush(s);
	return err ? err : ferr;
}

int bt_step__status(const struct bt_step *s)
{
	return s ? bt_stepper__status(s->eng) : 0;
}

const struct bt_step_fault *bt_step__fault(const struct bt_step *s)
{
	return s ? bt_stepper__fault(s->eng) : NULL;
}

void bt_step__stats(const struct bt_step *s, struct bt_step_stats *st)
{
	struct bt_stepper_counts c;

	if (!st)
		return;
	memset(st, 0, sizeof(*st));
	if (!s)
		return;
	bt_stepper__counts(s->eng, &c);
	st->insns = c.insns;
	st->threads = c.threads;
	if (s->o.facility == BT_FAC_STEP) {
		st->branches = s->records;
		st->bytes = s->stored * BTS_RECORD_SIZE;
	} else {
		st->branches = c.taken + c.asyncs;
		st->bytes = bt_ptemu__bytes(s->pe) - s->dropped_bytes;
	}
}

void bt_step__free(struct bt_step *s)
{
	if (!s)
		return;
	bt_stepper__free(s->eng);
	bt_ptemu__free(s->pe);
	free(s);
}

void bt_step__stop(struct bt_step *s)
{
	if (s)
		bt_stepper__stop(s->eng);
}
