/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The stepping engine's internals, shared by its two files:
 *
 *   stepper.c       the state machine: phases, stepping, the sink, the
 *                   stops ptrace reports
 *   stepper_proc.c  the tracee as ptrace and /proc show it: spawning and
 *                   attaching, its threads and waiting for them, memory,
 *                   signal dispositions, mappings, and the sideband the
 *                   kernel would write
 */
#ifndef BT_DS_STEPPER_INT_H
#define BT_DS_STEPPER_INT_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include <btrail/step.h>

#include "ds/insn.h"
#include "ds/stepper.h"

#define PTRACE_OPTS_BASE (PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC | \
			  PTRACE_O_EXITKILL)

enum bt_step_phase {
	PH_INIT,	/* attach: waiting for every thread to stop */
	PH_PRE,		/* full speed to the --start-at breakpoint */
	PH_STEP,	/* single-stepping */
	PH_POST,	/* tracing over: full speed to the end (or detached) */
};

enum bt_step_tstate {
	TS_NEW,		/* cloned: waiting for its first stop and the event */
	TS_READY,	/* stopped, to be stepped */
	TS_FLIGHT,	/* single-stepped, its stop not yet collected */
	TS_RUN,		/* running at full speed (PRE, POST) */
	TS_STOPPING,	/* asked to stop (SIGSTOP or PTRACE_INTERRUPT) */
	TS_EXITING,	/* past its exit event, to be reaped */
	TS_GONE,
};

struct bt_step_thread {
	pid_t tid;
	pid_t ptid;
	enum bt_step_tstate state;
	bool initial_stop;	/* TS_NEW: its first stop was seen */
	bool clone_seen;	/* TS_NEW: the parent's clone event was seen */
	bool ip_known;
	bool step_regs;		/* read the registers after the next stop */
	bool to_handler;	/* the next stop is a signal handler's entry */
	bool sigstop_pending;	/* a SIGSTOP we sent is still to be seen */
	bool exit_reported;
	int inject;		/* signal for the next resume */
	int sig_no;
	uint64_t sig_from;
	uint64_t ip;
	struct bt_insn_desc insn;	/* TS_FLIGHT: what it steps */
};

/* An executable mapping already told to the sideband. */
struct bt_step_seen_map {
	uint64_t start, end, offset, inode;
};

struct bt_stepper {
	pid_t pid;
	bool seized;		/* attached (PTRACE_SEIZE), not spawned */
	bool ran;
	bool dying;		/* exit_group or a fatal signal: all will exit */
	atomic_bool stop;	/* bt_stepper__stop(): end as at max_insns */
	enum bt_step_phase phase;
	struct bt_stepper_opts opts;

	struct bt_step_thread **th;
	size_t nth, cap;
	struct bt_step_thread *cur;	/* the thread being stepped */
	struct bt_step_thread *last;	/* last found, for a quick lookup */
	uint32_t quantum;

	const struct bt_step_sink *sink;
	const struct bt_step_sideband *sb;
	bool begun, ended;
	pid_t sink_tid;
	uint64_t sink_ip;	/* where the sink's thread is now */

	struct bt_insn_cache *cache;

	uint64_t bp;		/* breakpoint address, 0: none */
	uint64_t bp_word;	/* the original word there */
	bool bp_planted;
	bool bp_at_entry;	/* at AT_ENTRY, to resolve "lib:sym" later */

	bool have_status;
	int status;
	bool faulted;
	struct bt_step_fault fault;
	struct bt_stepper_counts counts;

	struct bt_step_seen_map *seen;
	size_t nseen, capseen;
	uint64_t exec_sig;	/* a digest of the executable mappings */
};

/* ---- stepper_proc.c ----------------------------------------------------- */

/*
 * Collect one stop or exit of one of our threads. Returns 1 with *@tid
 * and *@status, 0 when a thread vanished (try again), or -errno.
 */
int bt_stepper__wait_one(struct bt_stepper *st, pid_t *tid, int *status);
/* SIGKILL the process (when it has live threads) and reap every thread. */
void bt_stepper__kill_all(struct bt_stepper *st);

/* Threads by id (not TS_GONE); add one; count or look for a state. */
struct bt_step_thread *bt_stepper__find(struct bt_stepper *st, pid_t tid);
struct bt_step_thread *bt_stepper__add(struct bt_stepper *st, pid_t tid,
				       enum bt_step_tstate state);
size_t bt_stepper__live(const struct bt_stepper *st);
bool bt_stepper__any(const struct bt_stepper *st, enum bt_step_tstate s);

int bt_stepper_get_regs(pid_t tid, struct user_regs_struct *r);
int bt_stepper_get_siginfo(pid_t tid, siginfo_t *si);
/* PTRACE_CONT with @sig; a thread already gone is not an error. */
int bt_stepper_cont(pid_t tid, int sig);
/* Read @len bytes of the tracee at @addr; returns the count read. */
size_t bt_stepper_read_mem(pid_t pid, uint64_t addr, uint8_t *buf,
			   size_t len);

enum bt_step_disposition {
	DISP_NONE,	/* nothing to deliver (a group-stop, our SIGSTOP) */
	DISP_CAUGHT,	/* a handler runs */
	DISP_IGNORED,	/* SIG_IGN or ignored by default: dropped */
	DISP_STOP,	/* stops the process by default */
	DISP_FATAL,	/* kills it */
};

enum bt_step_disposition bt_stepper_disposition(pid_t pid, pid_t tid,
						int sig);
/* A group-stop rather than a signal to deliver. */
bool bt_stepper_group_stop(pid_t tid, int sig);

/* Sideband: COMM, new executable mappings (and the cache), FORK/EXIT,
 * SWITCH. Failures are logged only. maps_rescan returns 0 or -ENOMEM. */
void bt_stepper__sb_comm(struct bt_stepper *st, pid_t tid, bool exec);
int bt_stepper__maps_rescan(struct bt_stepper *st);
void bt_stepper__sb_task(struct bt_stepper *st, const struct bt_step_thread *t,
			 bool fork);
void bt_stepper__sb_switch(struct bt_stepper *st, pid_t prev, pid_t next);

/* ---- stepper.c ---------------------------------------------------------- */

/* Act on what wait said about @tid. 0 or -errno. */
int bt_stepper__handle(struct bt_stepper *st, pid_t tid, int status);

#endif /* BT_DS_STEPPER_INT_H */
