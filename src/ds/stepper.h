/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The stepping engine shared by step and pt-emu: ptrace single-step of
 * every thread, instructions classified with capstone from the tracee's
 * real bytes, and a sink that turns the instruction stream into trace.
 */
#ifndef BT_DS_STEPPER_H
#define BT_DS_STEPPER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

enum bt_insn_class {
	BT_INSN_OTHER = 0,	/* falls through */
	BT_INSN_JCC,		/* conditional direct jump (jcc, loop, jrcxz) */
	BT_INSN_JMP,		/* unconditional direct jump */
	BT_INSN_JMP_IND,	/* indirect jump */
	BT_INSN_CALL,		/* direct call */
	BT_INSN_CALL_IND,	/* indirect call */
	BT_INSN_RET,		/* near return */
	BT_INSN_FAR,		/* syscall, sysenter, int, iret, far transfers */
};

/* One instruction the tracee executed. */
struct bt_step_insn {
	pid_t tid;
	uint64_t ip;		/* its address */
	uint64_t next_ip;	/* where the thread went next */
	uint8_t len;
	uint8_t bytes[16];
	uint32_t cls;		/* enum bt_insn_class */
	bool taken;		/* next_ip != ip + len */
};

/* Asynchronous transfer: a signal handler entered, or a sigreturn. */
struct bt_step_async {
	pid_t tid;
	uint64_t from;		/* the ip that was interrupted */
	uint64_t to;		/* where execution resumes */
	int signo;		/* 0 for sigreturn and the like */
};

/* What the engine tells its sink; each returns 0 or a negative errno. */
struct bt_step_sink {
	void *ctx;
	int (*begin)(void *ctx, pid_t tid, uint64_t ip);   /* tracing starts */
	int (*insn)(void *ctx, const struct bt_step_insn *in);
	int (*async)(void *ctx, const struct bt_step_async *a);
	int (*thread_switch)(void *ctx, pid_t from_tid, pid_t to_tid);
	int (*end)(void *ctx, pid_t tid, uint64_t ip);	    /* tracing stops */
};

/* ---- The engine (stepper.c) ------------------------------------------- */

/*
 * Sideband as the kernel writes it (perf's MMAP2, COMM, FORK, EXIT,
 * SWITCH); any member may be NULL. Failures are logged, not fatal.
 */
struct bt_step_sideband {
	void *ctx;
	int (*comm)(void *ctx, pid_t pid, pid_t tid, const char *comm,
		    bool exec);
	int (*mmap2)(void *ctx, pid_t pid, pid_t tid, uint64_t addr,
		     uint64_t len, uint64_t pgoff, uint32_t prot,
		     uint32_t flags, const char *filename);
	int (*fork)(void *ctx, pid_t pid, pid_t ppid, pid_t tid, pid_t ptid);
	int (*exit)(void *ctx, pid_t pid, pid_t ppid, pid_t tid, pid_t ptid);
	int (*switch_cpu)(void *ctx, int cpu, pid_t prev_pid, pid_t prev_tid,
			  pid_t next_pid, pid_t next_tid);
};

struct bt_stepper_opts {
	const char *start_at;	/* as bt_step_opts.start_at (copied) */
	uint64_t max_insns;	/* 0: no limit */
	bool no_threads;	/* no PTRACE_O_TRACECLONE */
};

struct bt_stepper;
struct bt_step_fault;

/*
 * bt_stepper__spawn() - fork, PTRACE_TRACEME and exec @argv[0] (searched
 * in PATH) with @argv; the process waits, stopped after exec, for
 * bt_stepper__run(). NULL with errno: EINVAL, ENOENT (no such program, or
 * no such --start-at symbol in it), EACCES, EPERM (ptrace refused), or
 * what fork/exec said.
 */
struct bt_stepper *bt_stepper__spawn(const struct bt_stepper_opts *opts,
				     char *const argv[]);

/* PTRACE_SEIZE every thread of @pid and stop them. NULL with errno. */
struct bt_stepper *bt_stepper__attach(const struct bt_stepper_opts *opts,
				      pid_t pid);

pid_t bt_stepper__pid(const struct bt_stepper *st);

/*
 * bt_stepper__run() - run to the end, telling @sink (borrowed) every
 * instruction stepped and @sb (borrowed, may be NULL) the sideband. Once
 * only. Returns 0 or a negative errno (a sink's error, or ptrace's); the
 * process is killed on error.
 */
int bt_stepper__run(struct bt_stepper *st, const struct bt_step_sink *sink,
		    const struct bt_step_sideband *sb);

/* The leader's wait(2) status (after __run); 0 before. */
int bt_stepper__status(const struct bt_stepper *st);

/* The fatal signal that ended tracing, or NULL. */
const struct bt_step_fault *bt_stepper__fault(const struct bt_stepper *st);

struct bt_stepper_counts {
	uint64_t insns;		/* instructions given to the sink */
	uint64_t taken;		/* of which taken branches */
	uint64_t asyncs;	/* signal handlers entered */
	uint64_t threads;	/* threads seen */
	uint64_t switches;	/* thread switches told to the sink */
	uint64_t decoded;	/* instructions decoded with capstone */
};

void bt_stepper__counts(const struct bt_stepper *st,
			struct bt_stepper_counts *out);

/* Kill the process if alive, reap it, free. NULL is a no-op. */
/*
 * Ask a running bt_stepper__run() (from another thread; async-signal-safe)
 * to end as at max_insns: a process we attached to is detached and goes
 * on, one we started runs to its end untraced.
 */
void bt_stepper__stop(struct bt_stepper *st);
void bt_stepper__free(struct bt_stepper *st);

#endif /* BT_DS_STEPPER_H */
