// SPDX-License-Identifier: BSD-3-Clause
/*
 * The stepping engine: a process under ptrace, run at full speed to a
 * breakpoint (--start-at), then single-stepped thread by thread, every
 * instruction classified with capstone from the tracee's real bytes and
 * told to a sink (step: BTS records; pt-emu: PT packets). This file is
 * the state machine; stepper_proc.c knows the tracee (spawn, attach,
 * waiting, /proc, sideband).
 *
 * Phases: INIT (attach: waiting for every thread to stop), PRE (full
 * speed to the breakpoint), STEP, POST (tracing over: full speed to the
 * end, signals passed on; a process we attached to is detached instead).
 * Threads are stepped one at a time for a quantum of instructions, so the
 * trace switches threads rarely; a thread that enters a system call may
 * block in it (a futex wait on another thread), so while it is in flight
 * another ready thread is stepped, and the first is collected when its
 * call returns.
 *
 * The wait(2)s name our threads (never waitpid(-1)): the library must not
 * reap its caller's other children. With one thread in flight that is a
 * blocking wait on it; with several, a poll with a short backoff.
 *
 * A single-step stop needs no registers when the instruction's next IP
 * is known from its bytes (not a branch, or a direct jmp/call): that is
 * what keeps the engine close to a bare PTRACE_SINGLESTEP loop.
 *
 * Signals (the kernel dequeues a single-step trap before any other
 * signal, so a signal stop comes before the next instruction runs, or,
 * for a system call, after it returned):
 *   - caught: delivered with the next PTRACE_SINGLESTEP; the kernel stops
 *     again at the handler's first instruction (signal_setup_done()), and
 *     the sink gets async(interrupted IP -> handler). sigreturn is the
 *     rt_sigreturn system call: an instruction whose next IP is the
 *     interrupted one.
 *   - ignored (SIG_IGN or ignored by default): delivered, and dropped.
 *   - fatal: siginfo and registers recorded, tracing ends, the process is
 *     continued with the signal and dies of it.
 * When no handler runs, a system call the signal interrupted with an
 * -ERESTART* code is restarted: the thread goes back to its syscall
 * instruction.
 */
#include "ds/stepper_int.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <btrail/errno.h>

#include "common/log.h"
#include "ds/elfsym.h"

/* Instructions a thread is stepped before the next ready one is. */
#define STEP_QUANTUM	1000

/* The kernel's restart codes (include/linux/errno.h, not exported). */
#define K_ERESTARTSYS		512
#define K_ERESTARTNOINTR	513
#define K_ERESTARTNOHAND	514
#define K_ERESTART_RESTARTBLOCK	516

/* ---- The sink ------------------------------------------------------ */

/* Make @t the sink's thread: begin, or a switch. */
static int sink_to(struct bt_stepper *st, const struct bt_step_thread *t,
		   uint64_t ip)
{
	const struct bt_step_sink *k = st->sink;
	pid_t prev = st->sink_tid;

	if (!st->begun) {
		st->begun = true;
		st->sink_tid = t->tid;
		st->sink_ip = ip;
		return k->begin ? k->begin(k->ctx, t->tid, ip) : 0;
	}
	if (prev == t->tid)
		return 0;
	st->sink_tid = t->tid;
	st->counts.switches++;
	bt_stepper__sb_switch(st, prev, t->tid);
	return k->thread_switch ? k->thread_switch(k->ctx, prev, t->tid) : 0;
}

static int emit_insn(struct bt_stepper *st, const struct bt_step_thread *t,
		     const struct bt_insn_desc *d, uint64_t next)
{
	struct bt_step_insn in;
	int err;

	if (st->ended)
		return 0;
	err = sink_to(st, t, d->ip);
	if (err < 0)
		return err;
	in.tid = t->tid;
	in.ip = d->ip;
	in.next_ip = next;
	in.len = d->len;
	memcpy(in.bytes, d->bytes, sizeof(in.bytes));
	in.cls = d->cls;
	in.taken = next != d->ip + d->len;
	st->counts.insns++;
	if (in.taken && (next || d->cls != BT_INSN_FAR))
		st->counts.taken++;	/* not the exit call; a call to 0 is */
	st->sink_ip = next;
	return st->sink->insn(st->sink->ctx, &in);
}

static int emit_async(struct bt_stepper *st, const struct bt_step_thread *t,
		      uint64_t from, uint64_t to, int signo)
{
	const struct bt_step_sink *k = st->sink;
	struct bt_step_async a = { t->tid, from, to, signo };
	int err;

	if (st->ended)
		return 0;
	err = sink_to(st, t, from);
	if (err < 0)
		return err;
	st->counts.asyncs++;
	st->sink_ip = to;
	return k->async ? k->async(k->ctx, &a) : 0;
}

static int emit_end(struct bt_stepper *st, pid_t tid, uint64_t ip)
{
	const struct bt_step_sink *k = st->sink;

	if (!st->begun || st->ended)
		return 0;
	st->ended = true;
	return k->end ? k->end(k->ctx, tid, ip) : 0;
}

/* ---- Phases ------------------------------------------------------- */

/*
 * Let the stopped @t run free with @sig: continued (PRE, and POST of a
 * process we started, which we wait for), or detached (POST of a process
 * we attached to: it is not ours to wait for).
 */
static int release(struct bt_stepper *st, struct bt_step_thread *t, int sig)
{
	t->inject = 0;
	if (st->phase == PH_POST && st->seized) {
		t->state = TS_GONE;
		if (ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(long)sig) < 0 &&
		    errno != ESRCH)
			return -errno;
		return 0;
	}
	t->state = TS_RUN;
	return bt_stepper_cont(t->tid, sig);
}

/* Tracing is over: everything runs at full speed to the end. */
static int enter_post(struct bt_stepper *st)
{
	int err;

	st->phase = PH_POST;
	st->cur = NULL;
	for (size_t i = 0; i < st->nth; i++) {
		struct bt_step_thread *t = st->th[i];

		if (t->state != TS_READY)
			continue;	/* in flight: its stop is swallowed */
		err = release(st, t, t->inject);
		if (err < 0)
			return err;
	}
	return 0;
}

static int plant_bp(struct bt_stepper *st, uint64_t addr)
{
	long w;

	errno = 0;
	w = ptrace(PTRACE_PEEKTEXT, st->pid, (void *)addr, NULL);
	if (errno)
		return -errno;
	st->bp = addr;
	st->bp_word = (uint64_t)w;
	if (ptrace(PTRACE_POKETEXT, st->pid, (void *)addr,
		   (void *)(((uint64_t)w & ~0xffull) | 0xcc)) < 0)
		return -errno;
	st->bp_planted = true;
	return 0;
}

static int unplant_bp(struct bt_stepper *st)
{
	if (!st->bp_planted)
		return 0;
	st->bp_planted = false;
	if (ptrace(PTRACE_POKETEXT, st->pid, (void *)st->bp,
		   (void *)st->bp_word) < 0)
		return -errno;
	return 0;
}

/*
 * Plant the --start-at breakpoint: at the symbol, or, when it is in a
 * shared object not mapped yet, at the entry point first (the dynamic
 * loader has mapped every needed object by then).
 */
static int plant_start(struct bt_stepper *st, bool allow_entry)
{
	uint64_t addr;
	int err;

	err = bt_elfsym_resolve(st->pid, st->opts.start_at, &addr);
	if (err == -ENOENT && allow_entry && strchr(st->opts.start_at, ':')) {
		err = bt_proc_entry(st->pid, &addr);
		if (err < 0)
			return err;
		st->bp_at_entry = true;
		return plant_bp(st, addr);
	}
	if (err < 0) {
		pr_debug("step: cannot resolve %s: %s\n", st->opts.start_at,
			 bt_strerror(err));
		return err;
	}
	st->bp_at_entry = false;
	return plant_bp(st, addr);
}

/* Ask every running thread but @except to stop, for stepping. */
static int stop_others(struct bt_stepper *st,
		       const struct bt_step_thread *except)
{
	for (size_t i = 0; i < st->nth; i++) {
		struct bt_step_thread *t = st->th[i];

		if (t == except || t->state != TS_RUN)
			continue;
		if (st->seized) {
			if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) < 0 &&
			    errno != ESRCH)
				return -errno;
		} else {
			if (syscall(SYS_tgkill, st->pid, t->tid, SIGSTOP) < 0 &&
			    errno != ESRCH)
				return -errno;
			t->sigstop_pending = true;
		}
		t->state = TS_STOPPING;
	}
	return 0;
}

/* A thread stopped on our int3: rewind it; 1 if so, 0 if not ours. */
static int bp_rewind(struct bt_stepper *st, struct bt_step_thread *t,
		     struct user_regs_struct *r)
{
	siginfo_t si;
	int err;

	if (!st->bp || r->rip != st->bp + 1)
		return 0;
	if (bt_stepper_get_siginfo(t->tid, &si) < 0 || si.si_code != SI_KERNEL)
		return 0;
	err = unplant_bp(st);
	if (err < 0)
		return err;
	r->rip = st->bp;
	if (ptrace(PTRACE_SETREGS, t->tid, NULL, r) < 0)
		return -errno;
	return 1;
}

static int on_pre_trap(struct bt_stepper *st, struct bt_step_thread *t)
{
	struct user_regs_struct r;
	int err;

	err = bt_stepper_get_regs(t->tid, &r);
	if (err < 0)
		return err;
	err = bp_rewind(st, t, &r);
	if (err <= 0)	/* not ours: the program's own SIGTRAP */
		return err ? err : bt_stepper_cont(t->tid, SIGTRAP);
	if (st->bp_at_entry) {
		/* At the entry point: the shared objects are mapped now. */
		err = plant_start(st, false);
		if (err < 0)
			return err;
		return bt_stepper_cont(t->tid, 0);
	}
	st->bp = 0;
	st->phase = PH_STEP;
	t->state = TS_READY;
	t->ip = r.rip;
	t->ip_known = true;
	t->step_regs = true;
	st->cur = t;
	st->quantum = STEP_QUANTUM;
	err = bt_stepper__maps_rescan(st);
	if (err < 0)
		return err;
	return stop_others(st, t);
}

/* ---- Signals -------------------------------------------------------- */

/* Will the kernel restart the system call @r stopped in if no handler runs? */
static bool syscall_restarts(const struct user_regs_struct *r)
{
	long rax = (long)r->rax;

	return (long)r->orig_rax >= 0 &&
	       (rax == -K_ERESTARTSYS || rax == -K_ERESTARTNOINTR ||
		rax == -K_ERESTARTNOHAND || rax == -K_ERESTART_RESTARTBLOCK);
}

/*
 * @t stopped at @r with @sig (not yet delivered): arrange its next resume
 * and say what the signal will do.
 */
static enum bt_step_disposition take_signal(struct bt_stepper *st,
					    struct bt_step_thread *t, int sig,
					    const struct user_regs_struct *r)
{
	enum bt_step_disposition d;

	t->to_handler = false;
	t->step_regs = true;
	if (sig == SIGSTOP && t->sigstop_pending) {
		t->sigstop_pending = false;	/* ours, for stepping */
		return DISP_NONE;
	}
	if (bt_stepper_group_stop(t->tid, sig))
		return DISP_NONE;
	d = bt_stepper_disposition(st->pid, t->tid, sig);
	switch (d) {
	case DISP_CAUGHT:
		t->inject = sig;
		t->to_handler = true;
		t->sig_from = r->rip;
		t->sig_no = sig;
		break;
	case DISP_IGNORED:
	case DISP_STOP:
		t->inject = sig;
		break;
	default:
		break;
	}
	return d;
}

static int on_fatal(struct bt_stepper *st, struct bt_step_thread *t, int sig,
		    const struct user_regs_struct *r)
{
	siginfo_t si;
	int err;

	memset(&st->fault, 0, sizeof(st->fault));
	st->fault.signo = sig;
	if (bt_stepper_get_siginfo(t->tid, &si) == 0) {
		st->fault.signo = si.si_signo ? si.si_signo : sig;
		st->fault.code = si.si_code;
		st->fault.addr = (uint64_t)(uintptr_t)si.si_addr;
	}
	st->fault.tid = t->tid;
	st->fault.ip = r->rip;
	st->fault.regs = *r;
	st->faulted = true;
	st->dying = true;
	err = emit_end(st, t->tid, r->rip);
	if (err < 0)
		return err;
	t->state = TS_RUN;	/* not resumed by enter_post: */
	err = enter_post(st);
	if (err < 0)
		return err;
	return release(st, t, sig);	/* it dies of it */
}

/*
 * A signal stop of a stepped thread (or a trap that is a real signal).
 * @emitted: the instruction in flight was already told to the sink.
 */
static int on_step_signal(struct bt_stepper *st, struct bt_step_thread *t,
			  int sig, struct user_regs_struct *r, bool have_regs,
			  bool emitted)
{
	const struct bt_insn_desc *d = &t->insn;
	enum bt_step_disposition disp;
	uint64_t resume;
	int err;

	if (!have_regs) {
		err = bt_stepper_get_regs(t->tid, r);
		if (err < 0)
			return err;
	}
	disp = take_signal(st, t, sig, r);
	pr_debug("step: thread %d: signal %d at %#llx, disposition %d\n",
		 (int)t->tid, sig, (unsigned long long)r->rip, (int)disp);
	if (!emitted && d->len && r->rip != d->ip) {
		/* A system call returned, or was interrupted, first. */
		err = emit_insn(st, t, d, r->rip);
		if (err < 0)
			return err;
	}
	/*
	 * Stopped at the end of a system call this signal interrupted (its
	 * trap was seen before, or just now): unless a handler runs, the
	 * kernel restarts it, back at its instruction.
	 */
	resume = r->rip;
	if (disp != DISP_CAUGHT && disp != DISP_FATAL && syscall_restarts(r))
		resume = r->rip - 2;
	t->ip = resume;
	t->ip_known = true;
	t->state = TS_READY;
	return disp == DISP_FATAL ? on_fatal(st, t, sig, r) : 0;
}

/* ---- Stepping ----------------------------------------------------- */

static int step_thread(struct bt_stepper *st, struct bt_step_thread *t)
{
	const struct bt_insn_desc *d;
	int err;

	if (!t->ip_known) {
		struct user_regs_struct r;

		err = bt_stepper_get_regs(t->tid, &r);
		if (err < 0)
			return err;
		t->ip = r.rip;
		t->ip_known = true;
	}
	d = bt_insn_cache__find(st->cache, t->ip);
	if (!d) {
		uint8_t buf[16];
		size_t n = bt_stepper_read_mem(t->tid, t->ip, buf, sizeof(buf));

		err = n ? bt_insn_cache__add(st->cache, t->ip, buf, n, &d)
			: -EFAULT;
		if (err == -ENOMEM)
			return err;
		if (err < 0) {
			/*
			 * Unreadable (it will fault) or unknown to capstone
			 * (newer than it): its length is learnt by running it.
			 */
			memset(&t->insn, 0, sizeof(t->insn));
			t->insn.ip = t->ip;
			t->insn.flags = BT_INSN_F_NEEDS_REGS;
			memcpy(t->insn.bytes, buf, n);
			d = NULL;
		}
	}
	if (d)
		t->insn = *d;
	if (ptrace(PTRACE_SINGLESTEP, t->tid, NULL, (void *)(long)t->inject) < 0 &&
	    errno != ESRCH)
		return -errno;
	t->inject = 0;
	t->state = TS_FLIGHT;
	return 0;
}

/* Single-step @t again: the instruction in flight has not completed. */
static int restep(struct bt_step_thread *t)
{
	if (ptrace(PTRACE_SINGLESTEP, t->tid, NULL, (void *)(long)t->inject) < 0 &&
	    errno != ESRCH)
		return -errno;
	t->inject = 0;
	t->state = TS_FLIGHT;
	return 0;
}

static bool syscall_maps_code(unsigned long long nr)
{
	switch (nr) {
	case SYS_mmap: case SYS_mprotect: case SYS_munmap: case SYS_mremap:
	case SYS_remap_file_pages: case SYS_pkey_mprotect:
	case SYS_shmat: case SYS_shmdt:
		return true;
	}
	return false;
}

static int check_limit(struct bt_stepper *st, const struct bt_step_thread *t)
{
	int err;

	if (st->phase != PH_STEP)
		return 0;
	if ((!st->opts.max_insns || st->counts.insns < st->opts.max_insns) &&
	    !atomic_load_explicit(&st->stop, memory_order_relaxed))
		return 0;
	err = emit_end(st, t->tid, st->sink_ip);
	return err < 0 ? err : enter_post(st);
}

static int on_step_stop(struct bt_stepper *st, struct bt_step_thread *t,
			int sig)
{
	const struct bt_insn_desc *d = &t->insn;
	struct user_regs_struct r;
	uint64_t next;
	siginfo_t si;
	int err;

	if (t->state != TS_FLIGHT) {
		/* Not stepped by us (a late stop): keep the signal. */
		if (sig != SIGTRAP && !(sig == SIGSTOP && t->sigstop_pending))
			t->inject = sig;
		t->sigstop_pending = false;
		return 0;
	}
	if (sig != SIGTRAP)
		return on_step_signal(st, t, sig, &r, false, false);

	if (t->to_handler) {
		/* The kernel stopped at the handler after setting it up. */
		err = bt_stepper_get_regs(t->tid, &r);
		if (err < 0)
			return err;
		t->to_handler = false;
		err = emit_async(st, t, t->sig_from, r.rip, t->sig_no);
		t->ip = r.rip;
		t->ip_known = true;
		t->step_regs = false;
		t->state = TS_READY;
		return err;
	}

	if ((d->flags & BT_INSN_F_NEEDS_REGS) || t->step_regs) {
		err = bt_stepper_get_regs(t->tid, &r);
		if (err < 0)
			return err;
		next = r.rip;
	} else {
		r.orig_rax = 0;
		next = d->cls == BT_INSN_JMP || d->cls == BT_INSN_CALL ?
		       d->target : d->ip + d->len;
	}

	if (next == d->ip) {
		bool self = (d->cls == BT_INSN_JMP || d->cls == BT_INSN_JCC) &&
			    d->target == d->ip;

		if (d->flags & BT_INSN_F_REP)
			return restep(t);	/* one more iteration */
		if (!self) {
			/* Nothing ran: a SIGTRAP someone sent, or a late
			 * trap (after exec or attach). */
			if (bt_stepper_get_siginfo(t->tid, &si) == 0 &&
			    si.si_code <= 0)
				return on_step_signal(st, t, SIGTRAP, &r, true,
						      false);
			return restep(t);
		}
	}
	if (!d->len) {
		/* Not a branch capstone knows: it fell through. */
		if (next <= d->ip || next - d->ip > 15) {
			pr_warn("step: an undecodable instruction at %#" PRIx64
				" went to %#" PRIx64 "\n", d->ip, next);
			return -EILSEQ;
		}
		t->insn.len = (uint8_t)(next - d->ip);
		err = bt_insn_cache__put(st->cache, &t->insn);
		if (err < 0)
			return err;
	}
	err = emit_insn(st, t, d, next);
	if (err < 0)
		return err;
	if ((d->flags & BT_INSN_F_INT) &&
	    bt_stepper_get_siginfo(t->tid, &si) == 0 &&
	    si.si_code == SI_KERNEL) {
		/* int3 and the like: the tracee gets its SIGTRAP. */
		return on_step_signal(st, t, SIGTRAP, &r, true, true);
	}
	t->ip = next;
	t->ip_known = true;
	t->step_regs = false;
	t->state = TS_READY;
	if ((d->flags & BT_INSN_F_SYSCALL) && syscall_maps_code(r.orig_rax)) {
		err = bt_stepper__maps_rescan(st);
		if (err < 0)
			return err;
	}
	return check_limit(st, t);
}

/* The next ready thread after @after, round robin (@after itself last). */
static struct bt_step_thread *next_ready(struct bt_stepper *st,
					 const struct bt_step_thread *after)
{
	size_t start = 0;

	for (size_t i = 0; after && i < st->nth; i++) {
		if (st->th[i] == after) {
			start = i + 1;
			break;
		}
	}
	for (size_t k = 0; k < st->nth; k++) {
		struct bt_step_thread *t = st->th[(start + k) % st->nth];

		if (t->state == TS_READY)
			return t;
	}
	return NULL;
}

/* Step the current thread, or the next when it is done or blocked. */
static int schedule(struct bt_stepper *st)
{
	int err;

	if (st->dying || bt_stepper__any(st, TS_STOPPING))
		return 0;
	for (;;) {
		struct bt_step_thread *c = st->cur, *n;

		if (c && c->state == TS_FLIGHT &&
		    !(c->insn.flags & BT_INSN_F_SYSCALL))
			return 0;	/* exclusive: wait for it */
		/* One in flight in a system call lets the next go meanwhile. */
		if (!c || c->state != TS_READY || !st->quantum) {
			n = next_ready(st, c);
			if (!n)
				return 0;
			st->cur = c = n;
			st->quantum = STEP_QUANTUM;
		}
		err = step_thread(st, c);
		if (err < 0)
			return err;
		st->quantum--;
		if (!(c->insn.flags & BT_INSN_F_SYSCALL))
			return 0;
	}
}

/* ---- Events common to every phase ------------------------------------ */

/* @t exits or is gone: say so once, and stop stepping it. */
static void thread_leaves(struct bt_stepper *st, struct bt_step_thread *t)
{
	if (!t->exit_reported) {
		t->exit_reported = true;
		bt_stepper__sb_task(st, t, false);
	}
	if (st->cur == t)
		st->cur = NULL;
}

/* Let @t go on after an event stop inside an instruction (a clone). */
static int go_on(struct bt_step_thread *t)
{
	switch (t->state) {
	case TS_FLIGHT:
		return restep(t);
	case TS_RUN:
	case TS_STOPPING:
		return bt_stepper_cont(t->tid, 0);
	default:
		return 0;
	}
}

/* A new thread, once both its first stop and its clone event were seen. */
static int new_thread_ready(struct bt_stepper *st, struct bt_step_thread *n)
{
	if (!n->initial_stop || !n->clone_seen)
		return 0;
	n->step_regs = true;
	if (st->phase == PH_STEP || st->phase == PH_INIT) {
		n->state = TS_READY;
		return 0;
	}
	return release(st, n, n->inject);
}

static int on_new_stop(struct bt_stepper *st, struct bt_step_thread *n,
		       int sig, unsigned ev)
{
	struct user_regs_struct r;
	int err;

	err = bt_stepper_get_regs(n->tid, &r);
	if (err < 0)
		return err;
	n->ip = r.rip;
	n->ip_known = true;
	if (ev != PTRACE_EVENT_STOP && sig != SIGSTOP) {
		/* A signal came first; the attach SIGSTOP is still due. */
		if (take_signal(st, n, sig, &r) == DISP_FATAL)
			n->inject = sig;
		n->sigstop_pending = !st->seized;
	}
	n->initial_stop = true;
	return new_thread_ready(st, n);
}

static int on_clone(struct bt_stepper *st, struct bt_step_thread *t)
{
	struct bt_step_thread *n;
	unsigned long msg = 0;
	int err;

	if (ptrace(PTRACE_GETEVENTMSG, t->tid, NULL, &msg) < 0)
		return -errno;
	n = bt_stepper__find(st, (pid_t)msg);
	if (!n) {
		n = bt_stepper__add(st, (pid_t)msg, TS_NEW);
		if (!n)
			return -ENOMEM;
	}
	n->clone_seen = true;
	n->ptid = t->tid;
	st->counts.threads++;
	bt_stepper__sb_task(st, n, true);
	err = new_thread_ready(st, n);
	if (err < 0)
		return err;
	return go_on(t);
}

static int on_exit_event(struct bt_stepper *st, struct bt_step_thread *t)
{
	struct user_regs_struct r;
	int err;

	if (bt_stepper_get_regs(t->tid, &r) < 0 || r.orig_rax != SYS_exit)
		st->dying = true;	/* exit_group or a signal: all go */
	if (st->phase == PH_STEP && t->state == TS_FLIGHT &&
	    (t->insn.flags & BT_INSN_F_SYSCALL)) {
		/* The exit call: it never comes back. */
		err = emit_insn(st, t, &t->insn, 0);
		if (err < 0)
			return err;
	}
	thread_leaves(st, t);
	t->state = TS_EXITING;
	return bt_stepper_cont(t->tid, 0);
}

static int on_exec(struct bt_stepper *st, struct bt_step_thread *t)
{
	struct bt_step_thread *f = t;
	struct user_regs_struct r;
	unsigned long former = 0;
	int err;

	err = bt_stepper_get_regs(t->tid, &r);
	if (err < 0)
		return err;
	if (ptrace(PTRACE_GETEVENTMSG, t->tid, NULL, &former) == 0 &&
	    (pid_t)former != t->tid)
		f = bt_stepper__find(st, (pid_t)former);	/* took our id */
	if (st->phase == PH_STEP && f && f->state == TS_FLIGHT &&
	    f->insn.len) {
		err = emit_insn(st, t, &f->insn, r.rip);
		if (err < 0)
			return err;
	}
	/* The other threads are gone with the old image. */
	for (size_t i = 0; i < st->nth; i++) {
		if (st->th[i] != t)
			st->th[i]->state = TS_GONE;
	}
	if (st->cur != t)
		st->cur = NULL;
	bt_insn_cache__clear(st->cache);
	st->nseen = 0;
	st->exec_sig = 0;
	bt_stepper__sb_comm(st, t->tid, true);
	err = bt_stepper__maps_rescan(st);
	if (err < 0)
		return err;
	t->ip = r.rip;
	t->ip_known = true;
	t->step_regs = true;
	if (st->phase == PH_PRE) {
		st->bp_planted = false;	/* the old image is gone */
		if (plant_start(st, true) < 0)
			st->bp = 0;	/* not in this program: never */
	}
	if (st->phase == PH_STEP) {
		t->state = TS_READY;
		return 0;
	}
	return release(st, t, 0);
}

static int on_gone(struct bt_stepper *st, struct bt_step_thread *t,
		   int status)
{
	if (t->tid == st->pid) {
		st->status = status;
		st->have_status = true;
	}
	thread_leaves(st, t);
	t->state = TS_GONE;
	return 0;
}

/* A stop of a thread we asked to stop (SIGSTOP sent, or interrupted). */
static int on_stopping(struct bt_stepper *st, struct bt_step_thread *t,
		       int sig, unsigned ev)
{
	struct user_regs_struct r;
	int err;

	err = bt_stepper_get_regs(t->tid, &r);
	if (err < 0)
		return err;
	t->step_regs = true;
	if (ev == PTRACE_EVENT_STOP || (sig == SIGSTOP && t->sigstop_pending)) {
		t->sigstop_pending = false;	/* the stop we asked for */
	} else if (sig == SIGTRAP && (err = bp_rewind(st, t, &r)) != 0) {
		if (err < 0)
			return err;	/* else: it hit our breakpoint too */
	} else if (take_signal(st, t, sig, &r) == DISP_FATAL) {
		t->inject = sig;	/* delivered at once: it dies */
	}
	/* Stopped in a system call that no handler interrupts: restarted. */
	t->ip = !t->to_handler && syscall_restarts(&r) ? r.rip - 2 : r.rip;
	t->ip_known = true;
	if (st->phase == PH_POST)
		return release(st, t, t->inject);
	t->state = TS_READY;
	return 0;
}

/* A stop while running at full speed (PRE, POST). */
static int on_run_stop(struct bt_stepper *st, struct bt_step_thread *t,
		       int sig)
{
	if (t->state == TS_FLIGHT) {
		/* A step that was in flight when tracing ended. */
		t->state = TS_RUN;
		if (sig == SIGTRAP)
			return release(st, t, 0);
	}
	t->state = TS_RUN;
	if (sig == SIGTRAP && st->phase == PH_PRE)
		return on_pre_trap(st, t);
	if (sig == SIGSTOP && t->sigstop_pending) {
		t->sigstop_pending = false;
		return release(st, t, 0);
	}
	if (bt_stepper_group_stop(t->tid, sig))
		return release(st, t, 0);
	return release(st, t, sig);
}

int bt_stepper__handle(struct bt_stepper *st, pid_t tid, int status)
{
	struct bt_step_thread *t = bt_stepper__find(st, tid);
	unsigned ev;
	int sig;

	if (!t)
		return 0;
	if (WIFEXITED(status) || WIFSIGNALED(status))
		return on_gone(st, t, status);
	if (!WIFSTOPPED(status))
		return 0;
	sig = WSTOPSIG(status);
	ev = (unsigned)status >> 16;
	if (t->state == TS_NEW)
		return on_new_stop(st, t, sig, ev);
	switch (ev) {
	case 0:
		break;
	case PTRACE_EVENT_CLONE:
		return on_clone(st, t);
	case PTRACE_EVENT_EXIT:
		return on_exit_event(st, t);
	case PTRACE_EVENT_EXEC:
		return on_exec(st, t);
	case PTRACE_EVENT_STOP:
		if (t->state == TS_STOPPING)
			return on_stopping(st, t, sig, ev);
		return go_on(t);	/* a group-stop: carry on */
	default:
		return go_on(t);
	}
	if (t->state == TS_STOPPING)
		return on_stopping(st, t, sig, ev);
	if (t->state == TS_EXITING)
		return bt_stepper_cont(t->tid, 0);
	if (st->phase == PH_STEP)
		return on_step_stop(st, t, sig);
	return on_run_stop(st, t, sig);
}

/* ---- Running ------------------------------------------------------- */

/* Start: to the breakpoint at full speed, or stepping at once. */
static int run_start(struct bt_stepper *st)
{
	int err;

	bt_stepper__sb_comm(st, st->pid, !st->seized);
	err = bt_stepper__maps_rescan(st);
	if (err < 0 || !st->opts.start_at)
		return err;
	err = plant_start(st, true);
	if (err < 0)
		return err;
	st->phase = PH_PRE;
	for (size_t i = 0; i < st->nth && !err; i++) {
		struct bt_step_thread *t = st->th[i];

		if (t->state == TS_READY)
			err = release(st, t, t->inject);
	}
	return err;
}

int bt_stepper__run(struct bt_stepper *st, const struct bt_step_sink *sink,
		    const struct bt_step_sideband *sb)
{
	int err;

	if (!st || !sink || !sink->insn)
		return -EINVAL;
	if (st->ran)
		return -EALREADY;
	st->ran = true;
	st->sink = sink;
	st->sb = sb;

	err = run_start(st);
	while (!err && bt_stepper__live(st)) {
		pid_t tid;
		int status, r;

		if (st->phase == PH_STEP) {
			err = schedule(st);
			if (err < 0)
				break;
		}
		r = bt_stepper__wait_one(st, &tid, &status);
		if (r < 0)
			err = r;
		else if (r)
			err = bt_stepper__handle(st, tid, status);
	}
	if (err < 0) {
		pr_warn("step: tracing pid %d failed: %s\n", (int)st->pid,
			bt_strerror(err));
		bt_stepper__kill_all(st);
		return err;
	}
	return emit_end(st, st->sink_tid, st->sink_ip);
}

void bt_stepper__stop(struct bt_stepper *st)
{
	if (st)
		atomic_store_explicit(&st->stop, true, memory_order_relaxed);
}
