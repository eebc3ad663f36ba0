/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The recorder: record a command, a running process, or CPUs into a KMES
 * ring session and write a bundle when capture ends, what `btrail record`
 * (and later the broker) runs.
 *
 * It chooses the facility (auto: pt > bts > lbr > step, with the reason),
 * creates the ring session (per-task for a command or a pid, per-CPU for
 * all CPUs or a CPU list), opens the trace through the DS-area allocator
 * (backend perf for the hardware facilities, sim for step and pt-emu),
 * drains it with the collector, and freezes it on a trigger:
 *
 *   - the traced task dies of a signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
 *     SIGABRT, SIGTRAP, or any other that kills): bt.trigger "signal"
 *     with the signal, si_code, fault address and registers, and the
 *     bundle is written at once;
 *   - it exits: bt.trigger "exit";
 *   - bt_record__request() (SIGUSR2 to `btrail record`, or `btrail
 *     snapshot SESSION`): a snapshot bundle of what the rings hold now;
 *     capture goes on in stream mode (in snapshot mode capture ends);
 *   - a threshold-notifier condition (bt_record_opts.snapshot_when)
 *     becomes true: a snapshot bundle as for a request, with
 *     bt.trigger "notifier";
 *   - bt_record__stop() (SIGINT/SIGTERM for -a, -C and -p): capture ends.
 *
 * Errors: negative errno; constructors return NULL with errno. The
 * reason of a failure is logged (pr_warn) naming what failed and why.
 */
#ifndef BTRAIL_RECORD_H
#define BTRAIL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <btrail/common.h>
#include <btrail/ds.h>

#ifdef __cplusplus
extern "C" {
#endif

/* bt_record_opts.facility: let the recorder choose. */
#define BT_RECORD_AUTO	(-1)

struct bt_record;

struct bt_record_opts {
	size_t sz;
	int facility;		/* enum bt_facility or BT_RECORD_AUTO */
	/* The target: exactly one of argv, pid, all_cpus, cpus. */
	char *const *argv;	/* a command to start (argv[0] in PATH) */
	pid_t pid;		/* a running process */
	bool all_cpus;		/* every CPU (a command may run too) */
	const char *cpus;	/* a CPU list, "0-3,6" (ditto) */
	uint64_t aux_bytes;	/* trace buffer per session; 0: 1 MiB */
	uint64_t ring_bytes;	/* KMES ring capacity; 0: 4 MiB */
	uint32_t mode;		/* enum bt_trace_mode */
	const char *start_at;	/* step/pt-emu: step from this symbol */
	uint64_t max_insns;	/* step/pt-emu: 0 no limit */
	bool with_binaries;	/* copy the mapped binaries into the bundle */
	const char *output;	/* bundle directory; NULL: "btrail.bundle" */
	const char *session;	/* ring session name; NULL: "record-<pid>" */
	bool keep_session;	/* leave the ring session after the run */
	bool progress;		/* progress lines on stderr while writing */
	/*
	 * A threshold-notifier condition that takes a snapshot bundle each
	 * time it becomes true (an UP edge, docs/notifier.md), summed over
	 * the session's rings: "unread>=N" (bytes held), "lost>=N" (bytes
	 * overwritten), "lost-events>=N", "rate>=N" (events/s); N may end
	 * in K, M or G. NULL: none. Not kept: parsed by bt_record__new().
	 */
	const char *snapshot_when;
};
#define bt_record_opts__last_field snapshot_when

/*
 * bt_record_choose() - the facility to use: @requested itself (an enum
 * bt_facility, checked against @caps) or, for BT_RECORD_AUTO, the first
 * present of pt, bts, lbr, step. @why gets one line saying which and why
 * (or why not). @caps: BT_FAC__COUNT entries from bt_caps_probe(); NULL
 * probes. Returns the facility, or -ENODEV (not available here: @why
 * says why) or -EINVAL.
 */
BT_API int bt_record_choose(int requested, const struct bt_cap *caps,
			    char *why, size_t why_len);

/*
 * bt_record__new() - check @opts, choose the facility and prepare (the
 * command is not started until bt_record__run()). NULL with errno:
 *   EINVAL   bad options (no target or two, a bad CPU list, a size that
 *            is not a power of two, step/pt-emu with -a/-C, --start-at
 *            with a hardware facility)
 *   ENODEV   the facility is not available here (the log says why)
 *   EEXIST   the output bundle or the ring session exists
 */
BT_API struct bt_record *bt_record__new(const struct bt_record_opts *opts);

/* The facility chosen, and why (one line); borrowed. */
BT_API int bt_record__facility(const struct bt_record *r);
BT_API const char *bt_record__why(const struct bt_record *r);
/* The ring session's name; borrowed. */
BT_API const char *bt_record__session(const struct bt_record *r);
/* The bundle path; borrowed. */
BT_API const char *bt_record__output(const struct bt_record *r);

/*
 * bt_record__run() - start the command (or attach), capture until the
 * target ends or bt_record__stop(), freeze and write the bundle. Returns
 * 0 or a negative errno; the bundle exists when it returns 0.
 */
BT_API int bt_record__run(struct bt_record *r);

/*
 * Ask for a snapshot bundle (<output>.snapshot-N), or to stop. Both are
 * async-signal-safe: call them from a signal handler.
 */
BT_API void bt_record__request(struct bt_record *r);
BT_API void bt_record__stop(struct bt_record *r);

/*
 * The wait(2) status the command or process ended with; -1 when unknown
 * or when it did not end (a process detached after --max-insns).
 */
BT_API int bt_record__status(const struct bt_record *r);
/* The snapshot bundles written so far. */
BT_API unsigned bt_record__snapshots(const struct bt_record *r);

/* Free; removes the ring session unless keep_session. NULL: no-op. */
BT_API void bt_record__free(struct bt_record *r);

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_RECORD_H */
