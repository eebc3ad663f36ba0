// SPDX-License-Identifier: BSD-3-Clause
/*
 * Broker permission checks: the kernel's rules for perf_mmap() locking,
 * ptrace access and per-CPU perf events, applied from outside to a client
 * the daemon knows by SO_PEERCRED.
 *
 * Everything is read from @procfs. The real /proc is trusted, but tests
 * (and a procfs of another mount) may hand us anything, so every file is
 * opened non-blocking, must be a regular file, is read up to a fixed size
 * and parsed strictly: a malformed file is -EIO and a line naming it, never
 * a guess. Refusals are -EPERM (what ptrace(2) gives) or -EACCES (what
 * perf_event_open(2) gives), each with one line naming the rule.
 *
 * Capabilities in CapEff count only when the client lives in the daemon's
 * own user namespace: "unshare -U -r" gives any user a full CapEff that
 * means nothing to the kernel outside that namespace.
 */
#include "broker/perm.h"

#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATUS_MAX	(16 * 1024)	/* /proc/PID/status is ~1.5 KiB */
#define SMALL_MAX	256		/* comm, sysctl values, ns links */
#define ANCESTRY_MAX	4096		/* PPid: links walked for Yama */

__attribute__((format(printf, 3, 4)))
static void say(char *err, size_t errlen, const char *f, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, f);
	vsnprintf(err, errlen, f, ap);
	va_end(ap);
}

static const char *procfs_or_default(const char *procfs)
{
	return procfs ? procfs : "/proc";
}

/* @path = @procfs/@rel, or -ENAMETOOLONG. */
__attribute__((format(printf, 4, 5)))
static int make_path(char *path, size_t len, const char *procfs,
		     const char *f, ...)
{
	size_t n = (size_t)snprintf(path, len, "%s/", procfs);
	va_list ap;
	int m;

	if (n >= len)
		return -ENAMETOOLONG;
	va_start(ap, f);
	m = vsnprintf(path + n, len - n, f, ap);
	va_end(ap);
	if (m < 0 || (size_t)m >= len - n)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Read @path into @buf (NUL-terminated, at most @len - 1 bytes); sets
 * *@full when the file had more than fits, and *@owner (if not NULL) to
 * the file's owner. Returns the byte count or -errno. Non-blocking and
 * regular files only: a FIFO in a fake tree must not hang the daemon.
 */
static int read_file_owned(const char *path, char *buf, size_t len,
			   bool *full, uid_t *owner)
{
	struct stat st;
	size_t got = 0;
	ssize_t n;
	int fd, ret;
	char extra;

	*full = false;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		ret = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		goto out_close;
	}
	if (owner)
		*owner = st.st_uid;
	while (got < len - 1) {
		n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out_close;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got == len - 1) {
		do
			n = read(fd, &extra, 1);
		while (n < 0 && errno == EINTR);
		*full = n > 0;
	}
	buf[got] = '\0';
	ret = (int)got;
out_close:
	close(fd);
	return ret;
}

static int read_small(const char *path, char *buf, size_t len, bool *full)
{
	return read_file_owned(path, buf, len, full, NULL);
}

/* A NUL or control byte in a file that should be text: reject it. */
static bool has_binary(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == '\0' || (c < 0x20 && c != '\n' && c != '\t'))
			return true;
	}
	return false;
}

/*
 * Unsigned decimal at *@s after blanks, at most @max; advances *@s.
 * No sign, no base prefix, at least one digit.
 */
static bool parse_dec(const char **s, uint64_t max, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*s = p;
	*out = v;
	return true;
}

/* Only blanks (and a final newline) left? */
static bool at_end(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	return *p == '\0';
}

/* A signed decimal sysctl value ("2\n", "-1\n"). */
static bool parse_sysctl_int(const char *s, int *out)
{
	bool neg = false;
	uint64_t v;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '-') {
		neg = true;
		s++;
	}
	if (*s < '0' || *s > '9' || !parse_dec(&s, (uint64_t)INT_MAX, &v) ||
	    !at_end(s))
		return false;
	*out = neg ? -(int)v : (int)v;
	return true;
}

/* ---- /proc/PID/status --------------------------------------------------- */

struct proc_status {
	uint64_t uid[4];	/* real, effective, saved, fs */
	uint64_t gid[4];
	uint64_t cap_eff;
	uint64_t cap_prm;
	uint64_t ppid;
	uint64_t tgid;
	uid_t owner;		/* of the status file: see task_dump_owner() */
};

enum {
	HAVE_UID = 1 << 0,
	HAVE_GID = 1 << 1,
	HAVE_CAPEFF = 1 << 2,
	HAVE_PPID = 1 << 3,
	HAVE_TGID = 1 << 4,
	HAVE_CAPPRM = 1 << 5,
	HAVE_ALL = (1 << 6) - 1,
};

static bool parse_ids(const char *v, uint64_t ids[4])
{
	for (int i = 0; i < 4; i++)
		if (!parse_dec(&v, UINT32_MAX, &ids[i]))
			return false;
	return at_end(v);
}

static bool parse_hex64(const char *v, uint64_t *out)
{
	uint64_t x = 0;
	int n = 0;

	while (*v == ' ' || *v == '\t')
		v++;
	for (;; v++, n++) {
		unsigned d;

		if (*v >= '0' && *v <= '9')
			d = (unsigned)(*v - '0');
		else if (*v >= 'a' && *v <= 'f')
			d = (unsigned)(*v - 'a' + 10);
		else if (*v >= 'A' && *v <= 'F')
			d = (unsigned)(*v - 'A' + 10);
		else
			break;
		if (n == 16)
			return false;
		x = x << 4 | d;
	}
	if (!n || !at_end(v))
		return false;
	*out = x;
	return true;
}

/* One "Key:\tvalue" line of status; 0, or 1 when malformed. */
static int status_line(char *line, struct proc_status *st, unsigned *have,
		       const char **bad)
{
	static const struct {
		const char *key;
		unsigned bit;
	} keys[] = {
		{ "Uid:", HAVE_UID }, { "Gid:", HAVE_GID },
		{ "CapEff:", HAVE_CAPEFF }, { "PPid:", HAVE_PPID },
		{ "Tgid:", HAVE_TGID }, { "CapPrm:", HAVE_CAPPRM },
	};
	const char *v;
	bool ok;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t kl = strlen(keys[i].key);

		if (strncmp(line, keys[i].key, kl))
			continue;
		*bad = keys[i].key;
		if (*have & keys[i].bit)
			return 1;	/* a second one: which to believe? */
		v = line + kl;
		switch (keys[i].bit) {
		case HAVE_UID:
			ok = parse_ids(v, st->uid);
			break;
		case HAVE_GID:
			ok = parse_ids(v, st->gid);
			break;
		case HAVE_CAPEFF:
			ok = parse_hex64(v, &st->cap_eff);
			break;
		case HAVE_CAPPRM:
			ok = parse_hex64(v, &st->cap_prm);
			break;
		case HAVE_PPID:
			ok = parse_dec(&v, INT_MAX, &st->ppid) && at_end(v);
			break;
		default:
			ok = parse_dec(&v, INT_MAX, &st->tgid) && at_end(v);
			break;
		}
		if (!ok)
			return 1;
		*have |= keys[i].bit;
		return 0;
	}
	return 0;
}

/*
 * @procfs/@pid/@name, a text file, into a malloc'd *@buf (STATUS_MAX
 * bytes at most; *@full when there was more) with its owner in *@owner
 * (may be NULL). Returns 0, or -ESRCH (no such process), -EIO (unreadable
 * or not text), -ENAMETOOLONG, -ENOMEM with @err saying which file.
 * @path (PATH_MAX bytes) gets the file's path for later messages.
 */
static int proc_text(const char *procfs, pid_t pid, const char *name,
		     char *path, char **buf, bool *full, uid_t *owner,
		     char *err, size_t errlen)
{
	int n;

	*buf = NULL;
	if (make_path(path, PATH_MAX, procfs, "%d/%s", (int)pid, name)) {
		say(err, errlen, "procfs path %s is too long", procfs);
		return -ENAMETOOLONG;
	}
	*buf = malloc(STATUS_MAX);
	if (!*buf) {
		say(err, errlen, "out of memory reading %s", path);
		return -ENOMEM;
	}
	n = read_file_owned(path, *buf, STATUS_MAX, full, owner);
	if (n == -ENOENT || n == -ESRCH) {
		say(err, errlen, "no process %d (%s: %s)", (int)pid, path,
		    strerror(-n));
		return -ESRCH;
	}
	if (n < 0) {
		say(err, errlen, "cannot read %s: %s", path, strerror(-n));
		return -EIO;
	}
	if (has_binary(*buf, (size_t)n)) {
		say(err, errlen, "%s: not a text file", path);
		return -EIO;
	}
	return 0;
}

/*
 * Read and parse @procfs/@pid/status. -ESRCH when there is no such
 * process, -EIO (with @err naming the file and line) when it is malformed.
 */
static int status_read(const char *procfs, pid_t pid, struct proc_status *st,
		       char *err, size_t errlen)
{
	char path[PATH_MAX], *buf, *line, *nl;
	const char *bad = NULL;
	unsigned have = 0, lineno = 0;
	bool full;
	int ret;

	memset(st, 0, sizeof(*st));
	ret = proc_text(procfs, pid, "status", path, &buf, &full, &st->owner,
			err, errlen);
	if (ret)
		goto out_free;
	for (line = buf; *line; line = nl + 1) {
		lineno++;
		nl = strchr(line, '\n');
		if (!nl) {
			if (full)
				break;	/* cut off by the size limit */
			nl = line + strlen(line) - 1;
		} else {
			*nl = '\0';
		}
		if (status_line(line, st, &have, &bad)) {
			say(err, errlen, "%s line %u: malformed %s line", path,
			    lineno, bad);
			ret = -EIO;
			goto out_free;
		}
	}
	if (have != HAVE_ALL) {
		bad = !(have & HAVE_UID) ? "Uid:" : !(have & HAVE_GID) ? "Gid:" :
		      !(have & HAVE_CAPEFF) ? "CapEff:" :
		      !(have & HAVE_PPID) ? "PPid:" :
		      !(have & HAVE_TGID) ? "Tgid:" : "CapPrm:";
		say(err, errlen, "%s: no %s line%s", path, bad,
		    full ? " in its first 16 KiB" : "");
		ret = -EIO;
	}
out_free:
	free(buf);
	return ret;
}

/*
 * @procfs/@pid/comm, with bytes outside printable ASCII replaced by '?'
 * (the process names itself: it must not put escapes in our log lines).
 * "" when unreadable: the name is only for messages.
 */
static void comm_read(const char *procfs, pid_t pid, char *comm, size_t len)
{
	char path[PATH_MAX], buf[SMALL_MAX];
	size_t i;
	bool full;
	int n;

	comm[0] = '\0';
	if (make_path(path, sizeof(path), procfs, "%d/comm", (int)pid))
		return;
	n = read_small(path, buf, sizeof(buf), &full);
	if (n < 0)
		return;
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	for (i = 0; i < (size_t)n && i < len - 1; i++) {
		unsigned char c = (unsigned char)buf[i];

		comm[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	comm[i] = '\0';
}

/* ---- Peers --------------------------------------------------------------- */

/*
 * Does @pid share our user namespace? 1 yes, 0 no (or unknown: a link we
 * may not read counts as foreign, so capabilities are not believed), and
 * 1 when neither link exists (a kernel without CONFIG_USER_NS).
 */
static int same_userns(const char *procfs, pid_t pid)
{
	char path[PATH_MAX], mine[SMALL_MAX], theirs[SMALL_MAX];
	ssize_t a, b;

	if (make_path(path, sizeof(path), procfs, "self/ns/user"))
		return 0;
	a = readlink(path, mine, sizeof(mine) - 1);
	if (a < 0 && errno != ENOENT)
		return 0;
	if (make_path(path, sizeof(path), procfs, "%d/ns/user", (int)pid))
		return 0;
	b = readlink(path, theirs, sizeof(theirs) - 1);
	if (a < 0 && b < 0 && errno == ENOENT)
		return 1;
	if (a < 0 || b < 0)
		return 0;
	return a == b && !memcmp(mine, theirs, (size_t)a);
}

/* Soft RLIMIT_MEMLOCK from @procfs/@pid/limits, or -errno. */
static int limits_read(const char *procfs, pid_t pid, uint64_t *soft,
		       char *err, size_t errlen)
{
	static const char key[] = "Max locked memory";
	char path[PATH_MAX], *buf, *line, *nl;
	const char *v;
	unsigned lineno = 0;
	bool full;
	int ret;

	ret = proc_text(procfs, pid, "limits", path, &buf, &full, NULL, err,
			errlen);
	if (ret)
		goto out_free;
	ret = -EIO;
	say(err, errlen, "%s: no \"%s\" line", path, key);
	for (line = buf; *line; line = nl + 1) {
		lineno++;
		nl = strchr(line, '\n');
		if (!nl && full)
			break;
		if (!nl)
			nl = line + strlen(line) - 1;
		else
			*nl = '\0';
		if (strncmp(line, key, sizeof(key) - 1))
			continue;
		v = line + sizeof(key) - 1;
		while (*v == ' ' || *v == '\t')
			v++;
		if (!strncmp(v, "unlimited", 9) &&
		    (v[9] == ' ' || v[9] == '\t' || !v[9])) {
			*soft = UINT64_MAX;
			ret = 0;
		} else if (parse_dec(&v, UINT64_MAX, soft) &&
			   (*v == ' ' || *v == '\t' || !*v)) {
			ret = 0;
		} else {
			say(err, errlen, "%s line %u: malformed \"%s\" line",
			    path, lineno, key);
		}
		break;
	}
out_free:
	free(buf);
	return ret;
}

static int memlock_read(const char *procfs, bool real_proc, pid_t pid,
			uint64_t *soft, char *err, size_t errlen)
{
	struct rlimit old;

	/*
	 * prlimit(2) asks the kernel itself, but only about our own pid
	 * namespace: another procfs (a fake one, a host's /proc mounted
	 * elsewhere) is read from its limits file. prlimit needs the
	 * target's uids (or CAP_SYS_RESOURCE) even to read: a daemon that
	 * is neither root nor the client's user falls back to limits, which
	 * anyone may read.
	 */
	if (real_proc) {
		if (!prlimit(pid, RLIMIT_MEMLOCK, NULL, &old)) {
			*soft = old.rlim_cur == RLIM_INFINITY ? UINT64_MAX :
				(uint64_t)old.rlim_cur;
			return 0;
		}
		if (errno == ESRCH) {
			say(err, errlen, "no process %d (prlimit: %s)",
			    (int)pid, strerror(errno));
			return -ESRCH;
		}
		pr_debug("broker: prlimit of pid %d: %s; reading its limits file",
			 (int)pid, strerror(errno));
	}
	return limits_read(procfs, pid, soft, err, errlen);
}

int bt_peer__from_pid(pid_t pid, uid_t uid, gid_t gid, const char *procfs,
		      struct bt_peer *p, char *err, size_t errlen)
{
	struct proc_status st;
	bool real_proc = !procfs || !strcmp(procfs, "/proc");
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (!p || pid <= 0) {
		say(err, errlen, "bt_peer__from_pid: %s",
		    !p ? "no peer to fill" : "pid must be positive");
		return -EINVAL;
	}
	memset(p, 0, sizeof(*p));
	procfs = procfs_or_default(procfs);
	p->pid = pid;
	p->uid = uid;
	p->gid = gid;

	ret = status_read(procfs, pid, &st, err, errlen);
	if (ret)
		return ret;
	p->cap_eff = st.cap_eff;
	p->cap_prm = st.cap_prm;
	if ((p->cap_eff || p->cap_prm) && !same_userns(procfs, pid)) {
		pr_debug("broker: pid %d is in another user namespace: its "
			 "capabilities %#llx do not count", (int)pid,
			 (unsigned long long)p->cap_eff);
		p->cap_eff = 0;
		p->cap_prm = 0;
	}
	comm_read(procfs, pid, p->comm, sizeof(p->comm));

	ret = memlock_read(procfs, real_proc, pid, &p->memlock, err, errlen);
	if (ret)
		return ret;
	p->unlimited = p->memlock == UINT64_MAX ||
		       bt_peer__has_cap(p, BT_CAP_IPC_LOCK);
	return 0;
}

int bt_peer__from_socket(int fd, const char *procfs, struct bt_peer *p,
			 char *err, size_t errlen)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (err && errlen)
		err[0] = '\0';
	if (!p || fd < 0) {
		say(err, errlen, "bt_peer__from_socket: %s",
		    !p ? "no peer to fill" : "bad socket");
		return -EINVAL;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		int e = errno;

		say(err, errlen, "SO_PEERCRED on fd %d: %s", fd, strerror(e));
		return -e;
	}
	/* pid 0: the peer is in a pid namespace we cannot see into. */
	if (len != sizeof(cred) || cred.pid <= 0) {
		say(err, errlen, "SO_PEERCRED on fd %d names no process we "
		    "can see (pid %d)", fd, (int)cred.pid);
		return -ESRCH;
	}
	return bt_peer__from_pid(cred.pid, cred.uid, cred.gid, procfs, p, err,
				 errlen);
}

/* ---- Per-task targets ---------------------------------------------------- */

/* "uid 1000" or "uids 1000/0/0 (real/effective/saved)". */
static void fmt_ids(char *buf, size_t len, const char *what,
		    const uint64_t ids[4])
{
	if (ids[0] == ids[1] && ids[1] == ids[2])
		snprintf(buf, len, "%s %llu", what,
			 (unsigned long long)ids[0]);
	else
		snprintf(buf, len, "%ss %llu/%llu/%llu (real/effective/saved)",
			 what, (unsigned long long)ids[0],
			 (unsigned long long)ids[1],
			 (unsigned long long)ids[2]);
}

/*
 * Yama's task_is_descendant(): is @tgid, or an ancestor by PPid:, the
 * client's process? 1 yes, 0 no, -EIO (with @err) on a malformed or
 * looping ancestry.
 */
static int is_descendant(const char *procfs, pid_t client, pid_t tgid,
			 pid_t ppid, char *err, size_t errlen)
{
	struct proc_status st;
	pid_t cur = ppid;
	int ret;

	if (tgid == client)
		return 1;
	for (int depth = 0; depth < ANCESTRY_MAX; depth++) {
		if (cur <= 0)
			return 0;
		if (cur == client)
			return 1;
		ret = status_read(procfs, cur, &st, err, errlen);
		if (ret == -ESRCH)
			return 0;	/* exited: its children were reparented */
		if (ret)
			return ret;
		cur = (pid_t)st.ppid;
	}
	say(err, errlen, "%s: the PPid: chain above pid %d is longer than %d "
	    "(a loop?)", procfs, (int)tgid, ANCESTRY_MAX);
	return -EIO;
}

/* The ptrace_scope file: -1 when Yama is not built in, or -EIO. */
static int yama_scope(const char *procfs, int *scope, char *err, size_t errlen)
{
	char path[PATH_MAX], buf[SMALL_MAX];
	bool full;
	int n;

	*scope = -1;
	if (make_path(path, sizeof(path), procfs,
		      "sys/kernel/yama/ptrace_scope")) {
		say(err, errlen, "procfs path %s is too long", procfs);
		return -ENAMETOOLONG;
	}
	n = read_small(path, buf, sizeof(buf), &full);
	if (n == -ENOENT)
		return 0;
	if (n < 0 || full || !parse_sysctl_int(buf, scope) || *scope < 0) {
		say(err, errlen, "%s: %s", path,
		    n < 0 ? strerror(-n) : "not a ptrace_scope value");
		*scope = -1;
		return -EIO;
	}
	return 0;
}

int bt_perm__may_trace_task(const struct bt_peer *p, pid_t tid,
			    const char *procfs, char *err, size_t errlen)
{
	char comm[32], ids[96];
	bool ptrace_cap, uid_ok, gid_ok;
	struct proc_status st;
	int ret, scope;

	if (err && errlen)
		err[0] = '\0';
	if (!p || tid <= 0) {
		say(err, errlen, "bt_perm__may_trace_task: %s",
		    !p ? "no peer" : "task id must be positive");
		return -EINVAL;
	}
	procfs = procfs_or_default(procfs);
	ret = status_read(procfs, tid, &st, err, errlen);
	if (ret)
		return ret;
	comm_read(procfs, tid, comm, sizeof(comm));

	/* ptrace_may_access(): a thread of one's own process, always. */
	if ((pid_t)st.tgid == p->pid)
		return 0;

	/*
	 * __ptrace_may_access(): SO_PEERCRED gives us the client's ids as
	 * of connect(); the kernel compares the real ones, which differ only
	 * in a set-id client, and those run with capabilities anyway.
	 */
	ptrace_cap = bt_peer__has_cap(p, BT_CAP_SYS_PTRACE);
	uid_ok = st.uid[0] == p->uid && st.uid[1] == p->uid &&
		 st.uid[2] == p->uid;
	gid_ok = st.gid[0] == p->gid && st.gid[1] == p->gid &&
		 st.gid[2] == p->gid;
	if (!uid_ok && !ptrace_cap) {
		fmt_ids(ids, sizeof(ids), "uid", st.uid);
		say(err, errlen, "pid %d (%s) belongs to %s; you are uid %u: "
		    "tracing another user's process needs CAP_SYS_PTRACE",
		    (int)tid, comm, ids, (unsigned)p->uid);
		return -EPERM;
	}
	if (!gid_ok && !ptrace_cap) {
		fmt_ids(ids, sizeof(ids), "gid", st.gid);
		say(err, errlen, "pid %d (%s) runs as %s; you are gid %u: "
		    "tracing a process of another group needs CAP_SYS_PTRACE",
		    (int)tid, comm, ids, (unsigned)p->gid);
		return -EPERM;
	}

	/*
	 * Dumpability is not in status, but task_dump_owner() gives the
	 * files under /proc/PID (not the directory itself, kept for ps) to
	 * root when the task is not dumpable (a set-id exec, a uid change,
	 * PR_SET_DUMPABLE 0): a root-owned status of a task running as
	 * another euid. A root target's dumpability cannot be seen this way.
	 */
	if (st.owner == 0 && st.uid[1] != 0 && !ptrace_cap) {
		say(err, errlen, "pid %d (%s) is not dumpable (%s/%d/status "
		    "is owned by root while it runs as uid %llu: a set-id "
		    "program or PR_SET_DUMPABLE 0): tracing it needs "
		    "CAP_SYS_PTRACE", (int)tid, comm, procfs, (int)tid,
		    (unsigned long long)st.uid[1]);
		return -EPERM;
	}

	/*
	 * cap_ptrace_access_check(): the target may hold no permitted
	 * capability the client lacks (REALCREDS: the client's permitted
	 * set). The kernel skips this for a target in another user namespace
	 * the client owns; we do not see namespaces' owners, so we refuse.
	 */
	if ((st.cap_prm & ~p->cap_prm) && !ptrace_cap) {
		say(err, errlen, "pid %d (%s) holds capabilities you do not "
		    "(CapPrm %016llx beyond yours): tracing it needs "
		    "CAP_SYS_PTRACE", (int)tid, comm,
		    (unsigned long long)(st.cap_prm & ~p->cap_prm));
		return -EPERM;
	}

	/* yama_ptrace_access_check() for PTRACE_MODE_ATTACH. */
	ret = yama_scope(procfs, &scope, err, errlen);
	if (ret)
		return ret;
	if (scope <= 0)
		return 0;
	if (scope == 1) {
		if (ptrace_cap)
			return 0;
		ret = is_descendant(procfs, p->pid, (pid_t)st.tgid,
				    (pid_t)st.ppid, err, errlen);
		if (ret < 0)
			return ret;
		if (ret)
			return 0;
		say(err, errlen, "kernel.yama.ptrace_scope is 1: only "
		    "descendants can be traced without CAP_SYS_PTRACE; pid %d "
		    "(%s) is not a descendant of pid %d (you)", (int)tid, comm,
		    (int)p->pid);
		return -EPERM;
	}
	if (scope == 2) {
		if (ptrace_cap)
			return 0;
		say(err, errlen, "kernel.yama.ptrace_scope is 2: tracing pid %d "
		    "(%s) needs CAP_SYS_PTRACE", (int)tid, comm);
		return -EPERM;
	}
	say(err, errlen, "kernel.yama.ptrace_scope is %d: no process may "
	    "attach to another, not even with CAP_SYS_PTRACE (it stays so "
	    "until reboot)", scope);
	return -EPERM;
}

/* ---- Per-CPU targets ----------------------------------------------------- */

int bt_perm__may_trace_cpu(const struct bt_peer *p, const char *procfs,
			   char *err, size_t errlen)
{
	char path[PATH_MAX], buf[SMALL_MAX];
	bool full;
	int n, paranoid;

	if (err && errlen)
		err[0] = '\0';
	if (!p) {
		say(err, errlen, "bt_perm__may_trace_cpu: no peer");
		return -EINVAL;
	}
	/* perf_allow_cpu(): perfmon_capable() is CAP_PERFMON or SYS_ADMIN. */
	if (bt_peer__has_cap(p, BT_CAP_PERFMON) ||
	    bt_peer__has_cap(p, BT_CAP_SYS_ADMIN))
		return 0;
	procfs = procfs_or_default(procfs);
	if (make_path(path, sizeof(path), procfs,
		      "sys/kernel/perf_event_paranoid")) {
		say(err, errlen, "procfs path %s is too long", procfs);
		return -EACCES;
	}
	/* Fail closed: a paranoid value we cannot read allows nothing. */
	n = read_small(path, buf, sizeof(buf), &full);
	if (n < 0 || full || !parse_sysctl_int(buf, &paranoid)) {
		say(err, errlen, "per-CPU tracing needs CAP_PERFMON (or "
		    "CAP_SYS_ADMIN) or kernel.perf_event_paranoid <= 0, and "
		    "%s is %s", path,
		    n < 0 ? strerror(-n) : "not a number");
		return -EACCES;
	}
	if (paranoid <= 0)
		return 0;
	say(err, errlen, "per-CPU tracing needs CAP_PERFMON (or CAP_SYS_ADMIN) "
	    "or kernel.perf_event_paranoid <= 0 (it is %d)", paranoid);
	return -EACCES;
}
