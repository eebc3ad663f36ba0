/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The software facilities: step and pt-emu.
 *
 * A process runs under ptrace single-step. step turns every taken branch
 * into a BTS record that it writes, as the CPU would, through the DS area
 * of a sim event; pt-emu encodes the same control flow into real Intel PT
 * packets with libipt's encoder and writes them through the ToPA of a sim
 * PT event. Sideband (COMM, MMAP2 from /proc/<pid>/maps, FORK, EXIT,
 * SWITCH between threads) goes to the sim backend as the kernel would
 * write it. They exist for machines without the hardware (like gdb's
 * `record full` beside `record btrace`): slow, but real.
 */
#ifndef BTRAIL_STEP_H
#define BTRAIL_STEP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include <btrail/common.h>
#include <btrail/ds.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bt_step;

struct bt_step_opts {
	size_t sz;
	uint32_t facility;	/* BT_FAC_STEP or BT_FAC_PTEMU */
	struct bt_pmu *sim;	/* a sim backend (borrowed) */
	/*
	 * Stop at full speed at this function (ELF symbol of the main
	 * executable, or "lib:symbol" of a shared object), then step: the
	 * dynamic loader need not be stepped. NULL: step from the first
	 * instruction after exec.
	 */
	const char *start_at;
	uint64_t max_insns;	/* stop stepping after this many; 0: no limit */
	bool no_threads;	/* do not follow threads (PTRACE_O_TRACECLONE) */
	uint32_t psb_period;	/* pt-emu: bytes between PSB+; 0: 4 KiB */
};
#define bt_step_opts__last_field psb_period

/*
 * bt_step__spawn() - start @argv[0] (searched in PATH) with @argv, stopped
 * after exec. Returns the stepper, or NULL with errno (ENOENT, EPERM when
 * ptrace is refused, EINVAL for a bad facility or a backend that is not
 * sim). Nothing is traced until bt_step__bind() and bt_step__run().
 *   EINVAL  bad @opts (size, facility, backend, psb_period under 256 for
 *           pt-emu, an empty part in start_at) or no @argv[0]
 *   ENOENT  no such program, or no such start_at symbol in it
 *   EACCES  not executable; ENOEXEC: not a program exec(2) can run
 */
BT_API struct bt_step *bt_step__spawn(const struct bt_step_opts *opts,
				      char *const argv[]);

/*
 * Attach to a running @pid (all its threads, PTRACE_SEIZE); NULL with
 * errno: EINVAL (@opts, @pid <= 0), ESRCH (no such process), EPERM
 * (ptrace refused: this process itself, or not permitted). When tracing
 * ends (max_insns) the process is detached and goes on.
 */
BT_API struct bt_step *bt_step__attach(const struct bt_step_opts *opts,
				       pid_t pid);

/* The traced process id. */
BT_API pid_t bt_step__pid(const struct bt_step *s);

/*
 * bt_step__bind() - write trace into @trace (a sim event of the matching
 * facility: BTS for step, PT for pt-emu, opened for task bt_step__pid()
 * and mapped) and sideband into @sideband (a sim sideband event, or
 * NULL). Both borrowed; they must outlive the run. 0 or -EINVAL (also
 * for an event of another sim or task, or of the wrong kind, or after
 * bt_step__run()). As on the hardware, nothing is stored while @trace is
 * disabled: enable it (bt_pmu_ops.enable) before the run.
 */
BT_API int bt_step__bind(struct bt_step *s, struct bt_pmu_event *trace,
			 struct bt_pmu_event *sideband);

/*
 * bt_step__run() - run to the end: to --start-at at full speed, then step
 * every thread, until the process exits or is killed. A fatal signal is
 * recorded (bt_step__fault()) and then delivered, so the process dies of
 * it as it would have. Returns 0 or a negative errno (the process is then
 * killed): -EINVAL when not bound, -EALREADY when it ran before.
 * Single-threaded: call from one thread.
 */
BT_API int bt_step__run(struct bt_step *s);

/* The wait(2) status the process ended with (after __run). */
BT_API int bt_step__status(const struct bt_step *s);

struct bt_step_fault {
	int signo;
	int code;		/* si_code */
	uint64_t addr;		/* si_addr */
	pid_t tid;
	uint64_t ip;		/* where it happened */
	struct user_regs_struct regs;
};

/* The fatal signal, or NULL when the process exited normally. */
BT_API const struct bt_step_fault *bt_step__fault(const struct bt_step *s);

struct bt_step_stats {
	uint64_t insns;		/* instructions stepped */
	uint64_t branches;	/* taken branches (step: BTS records) */
	uint64_t threads;	/* threads seen */
	uint64_t bytes;		/* trace bytes written (records or packets) */
};

BT_API void bt_step__stats(const struct bt_step *s, struct bt_step_stats *st);

/*
 * bt_step__stop() - from another thread: make bt_step__run() end soon as
 * it does at max_insns (an attached process is detached and runs on; a
 * spawned one runs to its end untraced). Async-signal-safe.
 */
BT_API void bt_step__stop(struct bt_step *s);

/* Kill the process if still alive, detach, free. NULL is a no-op. */
BT_API void bt_step__free(struct bt_step *s);

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_STEP_H */
