/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Who a broker client is, what it may trace, and what it may lock.
 *
 * The daemon learns a client's identity from the socket (SO_PEERCRED),
 * never from what the client says. It then applies the kernel's own rules
 * as the client would meet them if it opened the perf event itself:
 *
 *   - memory: the client's RLIMIT_MEMLOCK, read from its pid with
 *     prlimit(2); RLIM_INFINITY or CAP_IPC_LOCK in its effective set lifts
 *     the limit (as perf_mmap() does);
 *   - a per-task target: the kernel's ptrace access check
 *     (PTRACE_MODE_ATTACH_REALCREDS): the client's uid equals the
 *     target's real, effective and saved uid and its gid the target's
 *     gids, and the target is dumpable, and the target's permitted
 *     capabilities are a subset of the client's (commoncap); or the
 *     client has CAP_SYS_PTRACE.
 *     Then Yama's ptrace_scope: 0 classic, 1 only descendants (or a
 *     process that named the client with PR_SET_PTRACER: not visible
 *     from outside, so refused), 2 only with CAP_SYS_PTRACE, 3 never;
 *   - a per-CPU target: CAP_PERFMON or CAP_SYS_ADMIN, or
 *     kernel.perf_event_paranoid <= 0.
 *
 * Every refusal comes with one line saying which rule refused and how to
 * get past it. The /proc paths come from @procfs so tests can fake them.
 */
#ifndef BT_BROKER_PERM_H
#define BT_BROKER_PERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Capability bits we look at (linux/capability.h numbering). */
#define BT_CAP_SYS_PTRACE	19
#define BT_CAP_SYS_ADMIN	21
#define BT_CAP_IPC_LOCK		14
#define BT_CAP_PERFMON		38

struct bt_peer {
	pid_t pid;
	uid_t uid;		/* SO_PEERCRED: effective ids at connect() */
	gid_t gid;
	char comm[32];		/* /proc/PID/comm, "" if gone */
	uint64_t cap_eff;	/* /proc/PID/status CapEff */
	uint64_t memlock;	/* RLIMIT_MEMLOCK soft limit, bytes */
	bool unlimited;		/* RLIM_INFINITY or CAP_IPC_LOCK */
	uint64_t cap_prm;	/* CapPrm: commoncap's ptrace rule wants it */
};

/*
 * bt_peer__from_socket() - identify the client on connected Unix socket
 * @fd: SO_PEERCRED, then its comm, CapEff and RLIMIT_MEMLOCK from
 * @procfs (NULL: "/proc") and prlimit(2). Returns 0 or a negative errno
 * (-ESRCH when the client is already gone); @err gets one line.
 *
 * EINVAL @p is NULL or @fd negative
 * ESRCH  the client is gone, or in a pid namespace we cannot see
 * EIO    its status or limits file is unreadable or malformed
 * CapEff counts only when the client shares the daemon's user namespace
 * (<@procfs>/self/ns/user): inside "unshare -U" every capability shows.
 * comm is made printable ('?' for other bytes): the client chose it.
 */
int bt_peer__from_socket(int fd, const char *procfs, struct bt_peer *p,
			 char *err, size_t errlen);

/*
 * bt_peer__from_pid() - the same for a pid and the ids given (tests, and
 * re-reading a client's limit later). 0 or negative errno.
 * With @procfs NULL or "/proc" the limit comes from prlimit(2) (its
 * limits file when prlimit says EPERM); any other @procfs is another pid
 * namespace (or a test's fake) and only its <pid>/limits file is read.
 */
int bt_peer__from_pid(pid_t pid, uid_t uid, gid_t gid, const char *procfs,
		      struct bt_peer *p, char *err, size_t errlen);

static inline bool bt_peer__has_cap(const struct bt_peer *p, int cap)
{
	return (p->cap_eff >> cap) & 1;
}

/*
 * bt_perm__may_trace_task() - may @p trace task @tid (the rules above)?
 * Returns 0, -EPERM/-EACCES with @err saying which rule and what would
 * allow it, -ESRCH for no such task.
 *
 * EINVAL @p is NULL or @tid not positive
 * EPERM  a credential, dumpability or Yama rule refuses
 * ESRCH  no such task
 * EIO    a status or ptrace_scope file is malformed (@err names it)
 * A thread of the client's own process is always allowed, as in the
 * kernel. Yama is applied as for PTRACE_ATTACH (stricter than the
 * PTRACE_MODE_READ check perf_event_open() itself makes).
 */
int bt_perm__may_trace_task(const struct bt_peer *p, pid_t tid,
			    const char *procfs, char *err, size_t errlen);

/*
 * bt_perm__may_trace_cpu() - may @p open a per-CPU (or all-CPU) trace?
 * Returns 0 or -EACCES with @err naming the capability or the paranoid
 * value and what would allow it. An unreadable or malformed
 * perf_event_paranoid refuses (-EACCES, @err naming the file); -EINVAL
 * when @p is NULL.
 */
int bt_perm__may_trace_cpu(const struct bt_peer *p, const char *procfs,
			   char *err, size_t errlen);

#endif /* BT_BROKER_PERM_H */
