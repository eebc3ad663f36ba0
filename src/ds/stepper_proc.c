// SPDX-License-Identifier: BSD-3-Clause
/*
 * The stepping engine's tracee as ptrace and /proc show it: spawning it
 * (fork, PTRACE_TRACEME, exec) or attaching to it (PTRACE_SEIZE of every
 * thread in /proc/<pid>/task), its threads, its memory, the disposition
 * of its signals (/proc/<pid>/task/<tid>/status), its executable
 * mappings, and the sideband the kernel would write about it.
 */
#include "ds/stepper_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <btrail/errno.h>

#include "common/log.h"
#include "ds/elfsym.h"

/* ---- Threads --------------------------------------------------------- */

struct bt_step_thread *bt_stepper__find(struct bt_stepper *st, pid_t tid)
{
	if (st->last && st->last->tid == tid && st->last->state != TS_GONE)
		return st->last;
	for (size_t i = 0; i < st->nth; i++) {
		if (st->th[i]->tid == tid && st->th[i]->state != TS_GONE)
			return st->last = st->th[i];
	}
	return NULL;
}

struct bt_step_thread *bt_stepper__add(struct bt_stepper *st, pid_t tid,
				       enum bt_step_tstate state)
{
	struct bt_step_thread *t;

	if (st->nth == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 8;
		struct bt_step_thread **v = realloc(st->th, cap * sizeof(*v));

		if (!v)
			return NULL;
		st->th = v;
		st->cap = cap;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->tid = tid;
	t->state = state;
	t->step_regs = true;
	st->th[st->nth++] = t;
	return t;
}

size_t bt_stepper__live(const struct bt_stepper *st)
{
	size_t n = 0;

	for (size_t i = 0; i < st->nth; i++)
		n += st->th[i]->state != TS_GONE;
	return n;
}

bool bt_stepper__any(const struct bt_stepper *st, enum bt_step_tstate s)
{
	for (size_t i = 0; i < st->nth; i++) {
		if (st->th[i]->state == s)
			return true;
	}
	return false;
}

/* ---- ptrace and /proc ------------------------------------------------- */

int bt_stepper_get_regs(pid_t tid, struct user_regs_struct *r)
{
	return ptrace(PTRACE_GETREGS, tid, NULL, r) < 0 ? -errno : 0;
}

int bt_stepper_get_siginfo(pid_t tid, siginfo_t *si)
{
	memset(si, 0, sizeof(*si));
	return ptrace(PTRACE_GETSIGINFO, tid, NULL, si) < 0 ? -errno : 0;
}

int bt_stepper_cont(pid_t tid, int sig)
{
	if (ptrace(PTRACE_CONT, tid, NULL, (void *)(long)sig) < 0 &&
	    errno != ESRCH)
		return -errno;
	return 0;
}

size_t bt_stepper_read_mem(pid_t pid, uint64_t addr, uint8_t *buf,
			   size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)addr, len };
	ssize_t n;
	size_t got = 0;

	n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return len;
	if (n > 0)
		got = (size_t)n;
	/*
	 * Unreadable to process_vm_readv (execute-only memory, or the rest
	 * past a page boundary): ptrace reads with FOLL_FORCE.
	 */
	while (got < len) {
		uint64_t a = (addr + got) & ~7ull;
		unsigned skip = (unsigned)(addr + got - a);
		long w;

		errno = 0;
		w = ptrace(PTRACE_PEEKTEXT, pid, (void *)a, NULL);
		if (errno)
			break;
		for (unsigned i = skip; i < 8 && got < len; i++)
			buf[got++] = (uint8_t)((unsigned long)w >> (8 * i));
	}
	return got;
}

enum bt_step_disposition bt_stepper_disposition(pid_t pid, pid_t tid,
						int sig)
{
	unsigned long long ign = 0, cgt = 0;
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid,
		 (int)tid);
	f = fopen(path, "re");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			if (!strncmp(line, "SigIgn:", 7))
				ign = strtoull(line + 7, NULL, 16);
			else if (!strncmp(line, "SigCgt:", 7))
				cgt = strtoull(line + 7, NULL, 16);
		}
		fclose(f);
	}
	if (sig >= 1 && sig <= 64) {
		if (cgt & (1ull << (sig - 1)))
			return DISP_CAUGHT;
		if (ign & (1ull << (sig - 1)))
			return DISP_IGNORED;
	}
	switch (sig) {
	case SIGCHLD: case SIGCONT: case SIGURG: case SIGWINCH:
		return DISP_IGNORED;
	case SIGSTOP: case SIGTSTP: case SIGTTIN: case SIGTTOU:
		return DISP_STOP;
	}
	return DISP_FATAL;
}

bool bt_stepper_group_stop(pid_t tid, int sig)
{
	siginfo_t si;

	if (sig != SIGSTOP && sig != SIGTSTP && sig != SIGTTIN &&
	    sig != SIGTTOU)
		return false;
	/* GETSIGINFO fails with EINVAL for a group-stop. */
	return bt_stepper_get_siginfo(tid, &si) == -EINVAL;
}

/* The CPU @tid last ran on (field 39 of its stat), 0 if unknown. */
static int proc_cpu(pid_t pid, pid_t tid)
{
	char path[64], buf[1024], *p;
	int fd, cpu = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid,
		 (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* counted from the ")" that ends comm (field 2) */
	p = strrchr(buf, ')');
	for (int field = 2; p && field < 39; field++)
		p = strchr(p + 1, ' ');
	if (p)
		cpu = atoi(p + 1);
	return cpu;
}

/* ---- Sideband ---------------------------------------------------------- */

void bt_stepper__sb_comm(struct bt_stepper *st, pid_t tid, bool exec)
{
	char path[64], comm[32] = "";
	ssize_t n;
	int fd, err;

	if (!st->sb || !st->sb->comm)
		return;
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)st->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		if (n > 0) {
			comm[n] = '\0';
			comm[strcspn(comm, "\n")] = '\0';
		}
	}
	err = st->sb->comm(st->sb->ctx, st->pid, tid, comm, exec);
	if (err < 0)
		pr_debug("step: sideband comm: %s\n", bt_strerror(err));
}

static bool seen_has(const struct bt_stepper *st, const struct bt_map *m)
{
	for (size_t i = 0; i < st->nseen; i++) {
		const struct bt_step_seen_map *s = &st->seen[i];

		if (s->start == m->start && s->end == m->end &&
		    s->offset == m->offset && s->inode == m->inode)
			return true;
	}
	return false;
}

static int seen_add(struct bt_stepper *st, const struct bt_map *m)
{
	if (st->nseen == st->capseen) {
		size_t cap = st->capseen ? st->capseen * 2 : 16;
		struct bt_step_seen_map *v = realloc(st->seen,
						     cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		st->seen = v;
		st->capseen = cap;
	}
	st->seen[st->nseen++] = (struct bt_step_seen_map){
		m->start, m->end, m->offset, m->inode,
	};
	return 0;
}

/*
 * Read the mappings again: tell the sideband of new executable ones, and
 * forget cached instructions when the executable mappings changed (code
 * unmapped, remapped or made executable).
 */
int bt_stepper__maps_rescan(struct bt_stepper *st)
{
	struct bt_map *maps;
	uint64_t sig = 0;
	size_t n;
	int err;

	err = bt_maps_read(st->pid, &maps, &n);
	if (err < 0)
		return err == -ENOMEM ? err : 0;	/* gone: nothing to tell */
	for (size_t i = 0; i < n; i++) {
		const struct bt_map *m = &maps[i];

		if (!(m->prot & PROT_EXEC))
			continue;
		sig = sig * 31 + m->start;
		sig = sig * 31 + m->end;
		sig = sig * 31 + m->offset + m->inode;
		if (seen_has(st, m))
			continue;
		err = seen_add(st, m);
		if (err < 0)
			break;
		if (st->sb && st->sb->mmap2) {
			int e = st->sb->mmap2(st->sb->ctx, st->pid, st->pid,
					      m->start, m->end - m->start,
					      m->offset, m->prot,
					      m->shared ? MAP_SHARED :
							  MAP_PRIVATE,
					      m->path);

			if (e < 0)
				pr_debug("step: sideband mmap2: %s\n",
					 bt_strerror(e));
		}
	}
	free(maps);
	if (sig != st->exec_sig) {
		if (st->exec_sig)
			bt_insn_cache__clear(st->cache);
		st->exec_sig = sig;
	}
	return err;
}

void bt_stepper__sb_task(struct bt_stepper *st, const struct bt_step_thread *t,
			 bool fork)
{
	const struct bt_step_sideband *sb = st->sb;
	int err = 0;

	if (!sb)
		return;
	if (fork && sb->fork)
		err = sb->fork(sb->ctx, st->pid, st->pid, t->tid, t->ptid);
	else if (!fork && sb->exit)
		err = sb->exit(sb->ctx, st->pid, st->pid, t->tid, t->ptid);
	if (err < 0)
		pr_debug("step: sideband %s: %s\n", fork ? "fork" : "exit",
			 bt_strerror(err));
}

void bt_stepper__sb_switch(struct bt_stepper *st, pid_t prev, pid_t next)
{
	int err;

	if (!st->sb || !st->sb->switch_cpu)
		return;
	err = st->sb->switch_cpu(st->sb->ctx, proc_cpu(st->pid, next),
				 st->pid, prev, st->pid, next);
	if (err < 0)
		pr_debug("step: sideband switch: %s\n", bt_strerror(err));
}

/* ---- Waiting ------------------------------------------------------- */

static bool waitable(const struct bt_stepper *st,
		     const struct bt_step_thread *t)
{
	if (t->state == TS_GONE)
		return false;
	return st->dying || t->state != TS_READY;
}

int bt_stepper__wait_one(struct bt_stepper *st, pid_t *tid, int *status)
{
	struct bt_step_thread *only = NULL, *excl = NULL;
	long backoff_ns = 10000;
	size_t n = 0;
	pid_t r;

	for (size_t i = 0; i < st->nth; i++) {
		if (waitable(st, st->th[i])) {
			n++;
			only = st->th[i];
		}
	}
	if (!n)
		return -BT_ERRNO_INTERNAL;
	/* A thread stepping an instruction that is not a system call
	 * comes back at once: block on it. */
	if (st->cur && st->cur->state == TS_FLIGHT &&
	    !(st->cur->insn.flags & BT_INSN_F_SYSCALL) && !st->dying)
		excl = st->cur;
	if (excl)
		only = excl;
	else if (n > 1)
		only = NULL;

	for (;;) {
		/* The others first, without blocking. */
		for (size_t i = 0; i < st->nth && n > 1; i++) {
			struct bt_step_thread *t = st->th[i];

			if (t == only || !waitable(st, t))
				continue;
			r = waitpid(t->tid, status, __WALL | WNOHANG);
			if (r > 0) {
				*tid = r;
				return 1;
			}
			if (r < 0 && errno == ECHILD) {
				t->state = TS_GONE;
				return 0;
			}
		}
		if (only) {
			r = waitpid(only->tid, status, __WALL);
			if (r > 0) {
				*tid = r;
				return 1;
			}
			if (errno == EINTR)
				continue;
			if (errno == ECHILD) {
				only->state = TS_GONE;
				return 0;
			}
			return -errno;
		}
		{
			struct timespec ts = { 0, backoff_ns };

			nanosleep(&ts, NULL);
			if (backoff_ns < 1000000)
				backoff_ns *= 2;
		}
	}
}

void bt_stepper__kill_all(struct bt_stepper *st)
{
	if (!bt_stepper__live(st))
		return;
	kill(st->pid, SIGKILL);
	st->dying = true;
	while (bt_stepper__live(st)) {
		struct bt_step_thread *t;
		pid_t tid;
		int status, r;

		r = bt_stepper__wait_one(st, &tid, &status);
		if (r < 0)
			break;
		t = r ? bt_stepper__find(st, tid) : NULL;
		if (!t)
			continue;
		if (WIFEXITED(status) || WIFSIGNALED(status))
			bt_stepper__handle(st, tid, status);
		else
			bt_stepper_cont(t->tid, 0);	/* its exit event */
	}
}

/* ---- Construction ------------------------------------------------------- */

static struct bt_stepper *stepper_new(const struct bt_stepper_opts *opts)
{
	struct bt_stepper *st;
	int err;

	st = calloc(1, sizeof(*st));
	if (!st)
		return errno = ENOMEM, NULL;
	if (opts)
		st->opts = *opts;
	st->opts.start_at = NULL;
	if (opts && opts->start_at) {
		const char *c = strchr(opts->start_at, ':');

		/* "symbol" or "lib:symbol", neither part empty */
		if (!*opts->start_at || c == opts->start_at ||
		    (c && !c[1])) {
			errno = EINVAL;
			goto err_out;
		}
		st->opts.start_at = strdup(opts->start_at);
		if (!st->opts.start_at)
			goto err_out;
	}
	st->cache = bt_insn_cache__new();
	if (!st->cache)
		goto err_out;
	return st;
err_out:
	err = errno;
	bt_stepper__free(st);
	return errno = err, NULL;
}

/* Find @name as execvp(3) would; @out gets the path. 0 or -errno. */
static int find_program(const char *name, char *out, size_t len)
{
	const char *path, *p;
	int err = -ENOENT;

	if (!*name)
		return -ENOENT;
	if (strchr(name, '/')) {
		struct stat sb;

		if (stat(name, &sb) < 0)
			return -errno;
		if (!S_ISREG(sb.st_mode) || access(name, X_OK) < 0)
			return -EACCES;
		snprintf(out, len, "%s", name);
		return 0;
	}
	path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/bin:/usr/bin";
	for (p = path; p; p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL) {
		size_t dlen = strcspn(p, ":");
		struct stat sb;

		if ((size_t)snprintf(out, len, "%.*s%s%s", (int)dlen, p,
				     dlen ? "/" : "", name) >= len)
			continue;
		if (stat(out, &sb) < 0 || !S_ISREG(sb.st_mode))
			continue;
		if (access(out, X_OK) == 0)
			return 0;
		err = -EACCES;
	}
	return err;
}

struct bt_stepper *bt_stepper__spawn(const struct bt_stepper_opts *opts,
				     char *const argv[])
{
	struct bt_stepper *st = NULL;
	char path[PATH_MAX];
	int pfd[2], status, child_err = 0, err;
	pid_t pid;
	ssize_t n;

	if (!argv || !argv[0])
		return errno = EINVAL, NULL;
	st = stepper_new(opts);
	if (!st)
		return NULL;
	err = find_program(argv[0], path, sizeof(path));
	if (err < 0)
		goto err_free;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		goto err_errno;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		goto err_errno;
	}
	if (pid == 0) {
		/* The child: async-signal-safe calls only. */
		close(pfd[0]);
		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0)
			execv(path, argv);
		child_err = errno;
		if (write(pfd[1], &child_err, sizeof(child_err)) < 0)
			_exit(126);
		_exit(127);
	}
	close(pfd[1]);
	do
		n = read(pfd[0], &child_err, sizeof(child_err));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == (ssize_t)sizeof(child_err)) {
		/* ptrace or exec failed: the child tells why, and exits. */
		waitpid(pid, &status, 0);
		err = -child_err;
		goto err_free;
	}
	/* It stopped with SIGTRAP after exec. */
	if (waitpid(pid, &status, __WALL) != pid || !WIFSTOPPED(status)) {
		err = -ECHILD;
		goto err_free;
	}
	st->pid = pid;
	if (!bt_stepper__add(st, pid, TS_READY)) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, __WALL);
		err = -ENOMEM;
		goto err_free;
	}
	st->counts.threads = 1;
	st->phase = PH_STEP;
	if (ptrace(PTRACE_SETOPTIONS, pid, NULL,
		   (void *)(long)(PTRACE_OPTS_BASE |
				  (st->opts.no_threads ? 0 :
				   PTRACE_O_TRACECLONE))) < 0)
		goto err_errno;
	/* A symbol of the executable can be checked now. */
	if (st->opts.start_at && !strchr(st->opts.start_at, ':')) {
		uint64_t addr;

		err = bt_elfsym_resolve(pid, st->opts.start_at, &addr);
		if (err == -BT_ERRNO_FORMAT)
			err = -ENOEXEC;
		if (err < 0)
			goto err_free;
	}
	return st;

err_errno:
	err = -errno;
err_free:
	bt_stepper__free(st);	/* kills the child, if any */
	return errno = -err, NULL;
}

/* Seize the threads of /proc/<pid>/task not seized yet; count them. */
static int attach_tasks(struct bt_stepper *st, unsigned long opts, int *added)
{
	char path[64];
	struct dirent *de;
	DIR *dir;
	int err = 0;

	*added = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)st->pid);
	dir = opendir(path);
	if (!dir)
		return errno == ENOENT ? -ESRCH : -errno;
	while ((de = readdir(dir))) {
		pid_t tid = (pid_t)atoi(de->d_name);

		if (tid <= 0 || bt_stepper__find(st, tid))
			continue;
		if (ptrace(PTRACE_SEIZE, tid, NULL, (void *)opts) < 0) {
			if (errno == ESRCH && tid != st->pid)
				continue;	/* it exited meanwhile */
			err = -errno;
			break;
		}
		if (!bt_stepper__add(st, tid, TS_STOPPING)) {
			err = -ENOMEM;
			break;
		}
		if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0 &&
		    errno != ESRCH) {
			err = -errno;
			break;
		}
		(*added)++;
	}
	closedir(dir);
	return err;
}

struct bt_stepper *bt_stepper__attach(const struct bt_stepper_opts *opts,
				      pid_t pid)
{
	struct bt_stepper *st;
	unsigned long popts;
	int err, added;

	if (pid <= 0)
		return errno = EINVAL, NULL;
	st = stepper_new(opts);
	if (!st)
		return NULL;
	if (kill(pid, 0) < 0 && errno == ESRCH) {
		bt_stepper__free(st);
		return errno = ESRCH, NULL;
	}
	st->pid = pid;
	st->seized = true;
	st->phase = PH_INIT;
	popts = PTRACE_OPTS_BASE |
		(st->opts.no_threads ? 0 : PTRACE_O_TRACECLONE);
	/* Again until no thread is new: threads may start meanwhile. */
	do {
		err = attach_tasks(st, popts, &added);
	} while (!err && added);
	if (!err)
		st->counts.threads = bt_stepper__live(st);
	while (!err && bt_stepper__any(st, TS_STOPPING)) {
		pid_t tid;
		int status, r = bt_stepper__wait_one(st, &tid, &status);

		if (r < 0)
			err = r;
		else if (r)
			err = bt_stepper__handle(st, tid, status);
	}
	if (!err && !bt_stepper__find(st, pid))
		err = -ESRCH;
	if (err < 0) {
		/* Let go of what we seized; the process goes on. */
		for (size_t i = 0; i < st->nth; i++) {
			if (st->th[i]->state != TS_GONE)
				ptrace(PTRACE_DETACH, st->th[i]->tid, NULL,
				       NULL);
			st->th[i]->state = TS_GONE;
		}
		bt_stepper__free(st);
		return errno = -err, NULL;
	}
	st->phase = PH_STEP;
	return st;
}

pid_t bt_stepper__pid(const struct bt_stepper *st)
{
	return st ? st->pid : -1;
}

int bt_stepper__status(const struct bt_stepper *st)
{
	return st && st->have_status ? st->status : 0;
}

const struct bt_step_fault *bt_stepper__fault(const struct bt_stepper *st)
{
	return st && st->faulted ? &st->fault : NULL;
}

void bt_stepper__counts(const struct bt_stepper *st,
			struct bt_stepper_counts *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (!st)
		return;
	*out = st->counts;
	out->decoded = st->cache ? bt_insn_cache__decoded(st->cache) : 0;
}

void bt_stepper__free(struct bt_stepper *st)
{
	if (!st)
		return;
	bt_stepper__kill_all(st);
	for (size_t i = 0; i < st->nth; i++)
		free(st->th[i]);
	free(st->th);
	free(st->seen);
	bt_insn_cache__free(st->cache);
	free((char *)st->opts.start_at);
	free(st);
}
