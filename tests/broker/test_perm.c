// SPDX-License-Identifier: BSD-3-Clause
/*
 * Broker permissions (src/broker/perm.c): who a client is, and whether the
 * kernel's rules let it trace a task, a CPU, or lock memory.
 *
 * First against fake procfs trees (each credential rule, dumpability, each
 * Yama scope, perf_event_paranoid, malformed files), then against this
 * machine: a child connecting over a Unix socket, and, as root, a child
 * that drops to nobody, whose verdicts are checked against the kernel's
 * own (process_vm_readv() makes the same PTRACE_MODE_ATTACH_REALCREDS
 * check a tracer meets).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/perm.h"
#include "helpers/fakefs.h"

#define BIT(n)		(1ull << (n))
#define NOBODY		65534

/* ---- Fake procfs ---------------------------------------------------------- */

struct ftask {
	int pid, tgid, ppid;
	unsigned uid[3], gid[3];	/* real, effective, saved */
	uint64_t cap;
	const char *comm;
	const char *memlock;		/* "65536" or "unlimited" */
};

static void fake_status(const char *root, const struct ftask *t)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "%d/status", t->pid);
	tu_fake_printf(root, rel,
		"Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%d\n"
		"Ngid:\t0\nPid:\t%d\nPPid:\t%d\nTracerPid:\t0\n"
		"Uid:\t%u\t%u\t%u\t%u\nGid:\t%u\t%u\t%u\t%u\nFDSize:\t64\n"
		"Groups:\t%u \nNStgid:\t%d\nNSpid:\t%d\nVmPeak:\t    8108 kB\n"
		"Threads:\t1\nSigQ:\t0/63432\nSigPnd:\t0000000000000000\n"
		"CapInh:\t0000000000000000\nCapPrm:\t%016llx\n"
		"CapEff:\t%016llx\nCapBnd:\t000001ffffffffff\n"
		"CapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t0\n"
		"Cpus_allowed_list:\t0-1\nvoluntary_ctxt_switches:\t3\n",
		t->comm, t->tgid, t->pid, t->ppid, t->uid[0], t->uid[1],
		t->uid[2], t->uid[1], t->gid[0], t->gid[1], t->gid[2],
		t->gid[1], t->gid[0], t->tgid, t->pid,
		(unsigned long long)t->cap, (unsigned long long)t->cap);
}

/*
 * A task under @root as the kernel shows it: status, comm, limits, and
 * its directory and files owned by its euid/egid (task_dump_owner() of a
 * dumpable task).
 */
static void fake_task(const char *root, const struct ftask *t)
{
	char rel[64], path[4096];

	fake_status(root, t);
	snprintf(rel, sizeof(rel), "%d/comm", t->pid);
	tu_fake_printf(root, rel, "%s\n", t->comm);
	snprintf(rel, sizeof(rel), "%d/limits", t->pid);
	tu_fake_printf(root, rel,
		"Limit                     Soft Limit           Hard Limit           Units     \n"
		"Max cpu time              unlimited            unlimited            seconds   \n"
		"Max open files            1024                 524288               files     \n"
		"Max locked memory         %-20s %-20s bytes     \n"
		"Max address space         unlimited            unlimited            bytes     \n",
		t->memlock ? t->memlock : "8388608",
		t->memlock ? t->memlock : "8388608");
	snprintf(path, sizeof(path), "%s/%d", root, t->pid);
	cr_assert(eq(int, chown(path, t->uid[1], t->gid[1]), 0),
		  "chown %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%d/status", root, t->pid);
	cr_assert(eq(int, chown(path, t->uid[1], t->gid[1]), 0),
		  "chown %s: %s", path, strerror(errno));
}

/* A plain task of @uid (its gid the same), child of @ppid. */
static struct ftask task_of(int pid, int ppid, unsigned uid, const char *comm)
{
	return (struct ftask){
		.pid = pid, .tgid = pid, .ppid = ppid,
		.uid = { uid, uid, uid }, .gid = { uid, uid, uid },
		.comm = comm,
	};
}

static void need_root_for_chown(void)
{
	if (geteuid() != 0)
		cr_skip_test("fake /proc trees need chown (directory owners "
			     "carry dumpability): run as root");
}

/* A fake machine: init (1), a shell of uid 1000 (100) and its child. */
static char *fake_machine(const char *yama, const char *paranoid)
{
	char *root;
	struct ftask t;

	need_root_for_chown();
	root = tu_fake_root("perm");
	t = task_of(1, 0, 0, "systemd");
	t.cap = 0x1ffffffffffull;
	fake_task(root, &t);
	t = task_of(100, 1, 1000, "bash");
	fake_task(root, &t);
	t = task_of(200, 100, 1000, "sleep");
	fake_task(root, &t);
	if (yama)
		tu_fake_write(root, "sys/kernel/yama/ptrace_scope", yama);
	if (paranoid)
		tu_fake_write(root, "sys/kernel/perf_event_paranoid", paranoid);
	return root;
}

static struct bt_peer peer_of(const char *root, int pid, unsigned uid)
{
	struct bt_peer p;
	char err[256];
	int ret;

	memset(&p, 0xcd, sizeof(p));
	ret = bt_peer__from_pid(pid, uid, uid, root, &p, err, sizeof(err));
	cr_assert(eq(int, ret, 0), "%s", err);
	return p;
}

static void expect_err(int got, int want, const char *err, const char *part)
{
	cr_assert(eq(int, got, want), "returned %d (%s)", got, err);
	cr_assert(ne(ptr, strstr(err, part), NULL), "\"%s\" not in \"%s\"",
		  part, err);
	cr_assert(eq(ptr, strchr(err, '\n'), NULL), "not one line: %s", err);
}

/* ---- Peers from a fake procfs ------------------------------------------- */

Test(perm, peer_from_pid_reads_comm_capabilities_and_memlock)
{
	char *root = fake_machine(NULL, NULL);
	struct ftask t = task_of(300, 100, 1000, "tracer");
	struct bt_peer p;

	t.cap = BIT(BT_CAP_SYS_PTRACE) | BIT(BT_CAP_PERFMON);
	t.memlock = "65536";
	fake_task(root, &t);
	p = peer_of(root, 300, 1000);
	cr_assert(eq(int, p.pid, 300));
	cr_assert(eq(u32, p.uid, 1000));
	cr_assert(eq(u32, p.gid, 1000));
	cr_assert(eq(str, p.comm, "tracer"));
	cr_assert(eq(u64, p.cap_eff, t.cap));
	cr_assert(eq(u64, p.memlock, 65536));
	cr_assert(not(p.unlimited));
	cr_assert(bt_peer__has_cap(&p, BT_CAP_PERFMON));
	cr_assert(not(bt_peer__has_cap(&p, BT_CAP_SYS_ADMIN)));
}

Test(perm, unlimited_memlock_or_cap_ipc_lock_lifts_the_limit)
{
	char *root = fake_machine(NULL, NULL);
	struct ftask t = task_of(300, 100, 1000, "a");
	struct bt_peer p;

	t.memlock = "unlimited";
	fake_task(root, &t);
	p = peer_of(root, 300, 1000);
	cr_assert(eq(u64, p.memlock, UINT64_MAX));
	cr_assert(p.unlimited);

	t = task_of(301, 100, 1000, "b");
	t.memlock = "4096";
	t.cap = BIT(BT_CAP_IPC_LOCK);
	fake_task(root, &t);
	p = peer_of(root, 301, 1000);
	cr_assert(eq(u64, p.memlock, 4096));
	cr_assert(p.unlimited);
}

Test(perm, a_comm_with_control_bytes_is_made_printable)
{
	char *root = fake_machine(NULL, NULL);
	struct bt_peer p;

	tu_fake_write(root, "100/comm", "ev\x1b[2Jil\x7f\xc3\xa9\n");
	p = peer_of(root, 100, 1000);
	cr_assert(eq(str, p.comm, "ev?[2Jil???"));
}

Test(perm, capabilities_from_another_user_namespace_do_not_count)
{
	char *root = fake_machine(NULL, NULL);
	struct ftask t = task_of(300, 100, 1000, "unshared");
	struct bt_peer p;

	t.cap = 0x1ffffffffffull;	/* what "unshare -U -r" shows */
	fake_task(root, &t);
	tu_fake_symlink(root, "self/ns/user", "user:[4026531837]");
	tu_fake_symlink(root, "300/ns/user", "user:[4026532561]");
	p = peer_of(root, 300, 1000);
	cr_assert(eq(u64, p.cap_eff, 0));
	cr_assert(not(p.unlimited));

	tu_fake_symlink(root, "100/ns/user", "user:[4026531837]");
	t = task_of(100, 1, 1000, "bash");
	t.cap = BIT(BT_CAP_IPC_LOCK);
	fake_status(root, &t);
	p = peer_of(root, 100, 1000);
	cr_assert(eq(u64, p.cap_eff, BIT(BT_CAP_IPC_LOCK)));
	cr_assert(p.unlimited);
}

Test(perm, a_gone_pid_is_esrch)
{
	char *root = fake_machine(NULL, NULL);
	struct bt_peer p;
	char err[256];

	expect_err(bt_peer__from_pid(777, 1000, 1000, root, &p, err,
				     sizeof(err)), -ESRCH, err, "no process 777");
	expect_err(bt_perm__may_trace_task(&p, 777, root, err, sizeof(err)),
		   -ESRCH, err, "777/status");
}

Test(perm, malformed_status_files_are_eio_naming_the_file)
{
	static const struct {
		const char *status, *why;
	} bad[] = {
		{ "", "no Uid: line" },
		{ "Uid:\t1\t1\t1\n", "malformed Uid: line" },
		{ "Uid:\t-1\t1\t1\t1\n", "malformed Uid: line" },
		{ "Uid:\t4294967296\t1\t1\t1\n", "malformed Uid: line" },
		{ "Uid:\t1\t1\t1\t1 x\n", "malformed Uid: line" },
		{ "Uid:\t1\t1\t1\t1\nUid:\t0\t0\t0\t0\n", "line 2: malformed Uid:" },
		{ "Uid:\t1\t1\t1\t1\nGid:\t1\t1\t1\t1\nCapEff:\t00000000000000001\n",
		  "line 3: malformed CapEff:" },
		{ "Uid:\t1\t1\t1\t1\nGid:\t1\t1\t1\t1\nCapEff:\tzz\n",
		  "malformed CapEff:" },
		{ "Uid:\t1\t1\t1\t1\nGid:\t1\t1\t1\t1\nCapEff:\t0\nPPid:\t99999999999\n",
		  "malformed PPid:" },
		{ "Uid:\t1\t1\t1\t1\nGid:\t1\t1\t1\t1\nCapEff:\t0\nPPid:\t1\n",
		  "no Tgid: line" },
		{ "Uid:\t1\t1\t1\t1\nGid:\t1\t1\t1\t1\nCapEff:\t0\nPPid:\t1\nTgid:",
		  "malformed Tgid:" },
		{ "Uid:\t1\x01\n", "not a text file" },
	};
	char *root = fake_machine(NULL, NULL);
	struct bt_peer p = peer_of(root, 100, 1000);
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tu_fake_write(root, "300/status", bad[i].status);
		expect_err(bt_peer__from_pid(300, 1, 1, root, &p, err,
					     sizeof(err)), -EIO, err,
			   bad[i].why);
		cr_assert(ne(ptr, strstr(err, "/300/status"), NULL), "%s", err);
		expect_err(bt_perm__may_trace_task(&p, 300, root, err,
						   sizeof(err)),
			   -EIO, err, bad[i].why);
	}
	/* Embedded NUL: still an error, not a short read. */
	{
		char path[4096];
		int fd;

		snprintf(path, sizeof(path), "%s/300/status", root);
		fd = open(path, O_WRONLY | O_TRUNC);
		cr_assert(ge(int, fd, 0));
		cr_assert(eq(sz, (size_t)write(fd, "Uid:\0\n", 6), 6));
		close(fd);
		expect_err(bt_perm__may_trace_task(&p, 300, root, err,
						   sizeof(err)),
			   -EIO, err, "not a text file");

		/* A FIFO must not hang the reader, a directory not be read. */
		cr_assert(eq(int, unlink(path), 0));
		cr_assert(eq(int, mkfifo(path, 0600), 0));
		expect_err(bt_perm__may_trace_task(&p, 300, root, err,
						   sizeof(err)),
			   -EIO, err, "/300/status");
		cr_assert(eq(int, unlink(path), 0));
		cr_assert(eq(int, mkdir(path, 0700), 0));
		expect_err(bt_peer__from_pid(300, 1, 1, root, &p, err,
					     sizeof(err)), -EIO, err,
			   "/300/status");
	}
}

Test(perm, malformed_or_missing_limits_are_eio_naming_the_file)
{
	char *root = fake_machine(NULL, NULL);
	struct bt_peer p;
	char err[256];

	tu_fake_write(root, "100/limits", "Max locked memory   lots   lots  bytes\n");
	expect_err(bt_peer__from_pid(100, 1000, 1000, root, &p, err,
				     sizeof(err)), -EIO, err,
		   "100/limits line 1: malformed \"Max locked memory\"");
	tu_fake_write(root, "100/limits", "Max locked memory   99999999999999999999999 1 bytes\n");
	expect_err(bt_peer__from_pid(100, 1000, 1000, root, &p, err,
				     sizeof(err)), -EIO, err, "malformed");
	tu_fake_write(root, "100/limits", "Max open files 1 1 files\n");
	expect_err(bt_peer__from_pid(100, 1000, 1000, root, &p, err,
				     sizeof(err)), -EIO, err,
		   "100/limits: no \"Max locked memory\" line");
	tu_fake_remove(root, "100/limits");
	expect_err(bt_peer__from_pid(100, 1000, 1000, root, &p, err,
				     sizeof(err)), -ESRCH, err, "100/limits");
}

Test(perm, every_function_checks_its_arguments)
{
	struct bt_peer p = { .pid = 1 };
	char err[256];

	expect_err(bt_peer__from_pid(0, 0, 0, NULL, &p, err, sizeof(err)),
		   -EINVAL, err, "pid must be positive");
	expect_err(bt_peer__from_pid(-5, 0, 0, NULL, &p, err, sizeof(err)),
		   -EINVAL, err, "pid must be positive");
	expect_err(bt_peer__from_pid(1, 0, 0, NULL, NULL, err, sizeof(err)),
		   -EINVAL, err, "no peer");
	expect_err(bt_peer__from_socket(-1, NULL, &p, err, sizeof(err)),
		   -EINVAL, err, "bad socket");
	expect_err(bt_peer__from_socket(0, NULL, NULL, err, sizeof(err)),
		   -EINVAL, err, "no peer");
	expect_err(bt_perm__may_trace_task(NULL, 1, NULL, err, sizeof(err)),
		   -EINVAL, err, "no peer");
	expect_err(bt_perm__may_trace_task(&p, 0, NULL, err, sizeof(err)),
		   -EINVAL, err, "task id");
	expect_err(bt_perm__may_trace_cpu(NULL, NULL, err, sizeof(err)),
		   -EINVAL, err, "no peer");
	/* No room for a message is allowed. */
	cr_assert(eq(int, bt_perm__may_trace_task(&p, 0, NULL, NULL, 0),
		     -EINVAL));
}

/* ---- Per-task rules on a fake procfs ------------------------------------ */

Test(perm, a_process_of_ones_own_uid_may_be_traced)
{
	char *root = fake_machine(NULL, NULL);
	struct bt_peer p = peer_of(root, 100, 1000);
	char err[256] = "x";

	cr_assert(eq(int, bt_perm__may_trace_task(&p, 200, root, err,
						  sizeof(err)), 0), "%s", err);
	cr_assert(eq(str, err, ""));
}

Test(perm, another_users_process_needs_cap_sys_ptrace)
{
	char *root = fake_machine(NULL, NULL);
	struct ftask t = task_of(300, 1, 1001, "other");
	struct bt_peer p;
	char err[256];

	fake_task(root, &t);
	p = peer_of(root, 100, 1000);
	expect_err(bt_perm__may_trace_task(&p, 300, root, err, sizeof(err)),
		   -EPERM, err,
		   "pid 300 (other) belongs to uid 1001; you are uid 1000: "
		   "tracing another user's process needs CAP_SYS_PTRACE");
	expect_err(bt_perm__may_trace_task(&p, 1, root, err, sizeof(err)),
		   -EPERM, err, "pid 1 (systemd) belongs to uid 0");

	p.cap_eff = BIT(BT_CAP_SYS_PTRACE);
	cr_assert(eq(int, bt_perm__may_trace_task(&p, 300, root, err,
						  sizeof(err)), 0), "%s", err);
	/* Other capabilities (even CAP_SYS_ADMIN) are not CAP_SYS_PTRACE. */
	p.cap_eff = ~BIT(BT_CAP_SYS_PTRACE);
	cr_assert(eq(int, bt_perm__may_trace_task(&p, 300, root, err,
						  sizeof(err)), -EPERM));
}

Test(perm, uid_zero_without_cap_sys_ptrace_is_refused_others)
{
	char *root = fake_machine(NULL, NULL);
	struct bt_peer p = peer_of(root, 1, 0);
	char err[256];

	p.cap_eff = 0;		/* root that dropped its capabilities */
	expect_err(bt_perm__may_trace_task(&p, 100, root, err, sizeof(err)),
		   -EPERM, err, "belongs to uid 1000; you are uid 0");
}

Test(perm, a_set_uid_process_is_refused_even_to_its_real_user)
{
	char *root = fake_machine(NULL, NULL);
	struct ftask t = task_of(300, 100, 1000, "passwd");
	struct bt_peer p;
	char err[256];

	t.uid[1] = t.uid[2] = 0;	/* ruid 1000, euid and suid root */
	fake_task(root, &t);
	p = peer_of(root, 100, 1000);
	expect_err(bt_perm__may_trace_task(&p, 300, root, err, sizeof(err)),
		   -EPERM, err,
		   "pid 300 (passwd) belongs to uids 1000/0/0 "
		   "(real/effective/saved); you are uid 1000");

	t = task_of(301, 100, 1000, "saved");
	t.uid[2] = 0;			/* only the saved uid differs */
	fake_task(root, &t);
	expect_err(bt_perm__may_trace_task(&p, 301, root, err, sizeof(err)),
		   -EPERM, err, "uids 1000/1000/0");
}

Test(perm, another_groups_process_needs_cap_sys_ptrace)
{
	char *root = fake_machine(NULL, NULL);
	struct ftask t = task_of(300, 100, 1000, "wall");
	struct bt_peer p;
	char err[256];

	t.gid[1] = t.gid[2] = 5;	/* setgid tty */
	fake_task(root, &t);
	p = peer_of(root, 100, 1000);
	expect_err(bt_perm__may_trace_task(&p, 300, root, err, sizeof(err)),
		   -EPERM, err,
		   "pid 300 (wall) runs as gids 1000/5/5 (real/effective/saved); "
		   "you are gid 1000: tracing a process of another group needs "
		   "CAP_SYS_PTRACE");

	t = task_of(301, 100, 1000, "sgid-saved");
	t.gid[2] = 5;			/* only the saved gid differs */
	fake_task(root, &t);
	expect_err(bt_perm__may_trace_task(&p, 301, root, err, sizeof(err)),
		   -EPERM, err, "gids 1000/1000/5");

	p.cap_eff = BIT(BT_CAP_SYS_PTRACE);
	cr_assert(eq(int, bt_perm__may_trace_task(&p, 300, root, err,
						  sizeof(err)), 0), "%s", err);
}

Test(perm, a_process_that_is_not_dumpable_needs_cap_sys_ptrace)
{
	char *root = fake_machine(NULL, NULL);
	struct bt_peer p = peer_of(root, 100, 1000);
	char path[4096], err[256];

	/*
	 * task_dump_owner(): not dumpable -> the files in /proc/PID belong
	 * to root (the directory keeps the euid).
	 */
	snprintf(path, sizeof(path), "%s/200/status", root);
	cr_assert(eq(int, chown(path, 0, 0), 0));
	expect_err(bt_perm__may_trace_task(&p, 200, root, err, sizeof(err)),
		   -EPERM, err,
		   "pid 200 (sleep) is not dumpable");
	cr_assert(ne(ptr, strstr(err, "tracing it needs CAP_SYS_PTRACE"),
		     NULL), "%s", err);
	p.cap_eff = BIT(BT_CAP_SYS_PTRACE);
	cr_assert(eq(int, bt_perm__may_trace_task(&p, 200, root, err,
						  sizeof(err)), 0), "%s", err);
}

Test(perm, a_process_holding_capabilities_the_client_lacks_is_refused)
{
	char *root = fake_machine(NULL, NULL);
	struct ftask t = task_of(300, 100, 1000, "ping");
	struct bt_peer p;
	char err[256];

	t.cap = BIT(13);		/* a file capability: cap_net_raw */
	fake_task(root, &t);
	p = peer_of(root, 100, 1000);
	expect_err(bt_perm__may_trace_task(&p, 300, root, err, sizeof(err)),
		   -EPERM, err,
		   "pid 300 (ping) holds capabilities you do not (CapPrm "
		   "0000000000002000 beyond yours): tracing it needs "
		   "CAP_SYS_PTRACE");
	/* Holding the same permitted capability is enough. */
	p.cap_prm = BIT(13) | BIT(1);
	cr_assert(eq(int, bt_perm__may_trace_task(&p, 300, root, err,
						  sizeof(err)), 0), "%s", err);
}

Test(perm, a_thread_of_ones_own_process_is_always_allowed)
{
	char *root = fake_machine("3\n", NULL);
	struct ftask t = task_of(101, 1, 0, "bash-worker");
	struct bt_peer p = peer_of(root, 100, 1000);
	char err[256];

	/* Even odd credentials and Yama 3 do not stop a thread of 100. */
	t.tgid = 100;
	fake_task(root, &t);
	cr_assert(eq(int, bt_perm__may_trace_task(&p, 101, root, err,
						  sizeof(err)), 0), "%s", err);
	cr_assert(eq(int, bt_perm__may_trace_task(&p, 100, root, err,
						  sizeof(err)), 0), "%s", err);
}

Test(perm, yama_absent_or_0_is_the_classic_rule)
{
	char *root = fake_machine("0\n", NULL);
	struct ftask t = task_of(300, 1, 1000, "unrelated");
	struct bt_peer p = peer_of(root, 100, 1000);
	char err[256];

	fake_task(root, &t);
	cr_assert(eq(int, bt_perm__may_trace_task(&p, 300, root, err,
						  sizeof(err)), 0), "%s", err);
	tu_fake_remove(root, "sys/kernel/yama/ptrace_scope");
	cr_assert(eq(int, bt_perm__may_trace_task(&p, 300, root, err,
						  sizeof(err)), 0), "%s", err);
}

Test(perm, yama_1_allows_only_descendants_without_cap_sys_ptrace)
{
	char *root = fake_machine("1\n", NULL);
	struct ftask t;
	struct bt_peer p = peer_of(root, 100, 1000);
	char err[256];

	/* 400 is a grandchild of 100 (through 200); 300 is not related. */
	t = task_of(400, 200, 1000, "grandchild");
	fake_task(root, &t);
	t = task_of(300, 1, 1000, "unrelated");
	fake_task(root, &t);
	/* a thread (tid 401) of the grandchild, found through its tgid */
	t = task_of(401, 200, 1000, "grandchild");
	t.tgid = 400;
	fake_task(root, &t);

	cr_assert(eq(int, bt_perm__may_trace_task(&p, 200, root, err,
						  sizeof(err)), 0), "%s", err);
	cr_assert(eq(int, bt_perm__may_trace_task(&p, 400, root, err,
						  sizeof(err)), 0), "%s", err);
	cr_assert(eq(int, bt_perm__may_trace_task(&p, 401, root, err,
						  sizeof(err)), 0), "%s", err);
	expect_err(bt_perm__may_trace_task(&p, 300, root, err, sizeof(err)),
		   -EPERM, err,
		   "kernel.yama.ptrace_scope is 1: only descendants can be "
		   "traced without CAP_SYS_PTRACE; pid 300 (unrelated) is not "
		   "a descendant of pid 100");
	/* The parent of the client is not its descendant either. */
	p = peer_of(root, 200, 1000);
	expect_err(bt_perm__may_trace_task(&p, 100, root, err, sizeof(err)),
		   -EPERM, err, "ptrace_scope is 1");

	p.cap_eff = BIT(BT_CAP_SYS_PTRACE);
	cr_assert(eq(int, bt_perm__may_trace_task(&p, 300, root, err,
						  sizeof(err)), 0), "%s", err);
}

Test(perm, yama_1_survives_gone_ancestors_and_rejects_a_loop)
{
	char *root = fake_machine("1\n", NULL);
	struct ftask t;
	struct bt_peer p = peer_of(root, 100, 1000);
	char err[256];

	/* 500's parent 600 is gone: not a descendant, no error. */
	t = task_of(500, 600, 1000, "orphan");
	fake_task(root, &t);
	expect_err(bt_perm__may_trace_task(&p, 500, root, err, sizeof(err)),
		   -EPERM, err, "not a descendant");

	/* A PPid: cycle 700 -> 701 -> 700 (only a fake tree has one). */
	t = task_of(700, 701, 1000, "a");
	fake_task(root, &t);
	t = task_of(701, 700, 1000, "b");
	fake_task(root, &t);
	expect_err(bt_perm__may_trace_task(&p, 700, root, err, sizeof(err)),
		   -EIO, err, "longer than 4096");
}

Test(perm, yama_2_needs_cap_sys_ptrace_even_for_children)
{
	char *root = fake_machine("2\n", NULL);
	struct bt_peer p = peer_of(root, 100, 1000);
	char err[256];

	expect_err(bt_perm__may_trace_task(&p, 200, root, err, sizeof(err)),
		   -EPERM, err,
		   "kernel.yama.ptrace_scope is 2: tracing pid 200 (sleep) "
		   "needs CAP_SYS_PTRACE");
	p.cap_eff = BIT(BT_CAP_SYS_PTRACE);
	cr_assert(eq(int, bt_perm__may_trace_task(&p, 200, root, err,
						  sizeof(err)), 0), "%s", err);
}

Test(perm, yama_3_refuses_everyone)
{
	char *root = fake_machine("3\n", NULL);
	struct bt_peer p = peer_of(root, 1, 0);
	char err[256];

	cr_assert(bt_peer__has_cap(&p, BT_CAP_SYS_PTRACE));
	expect_err(bt_perm__may_trace_task(&p, 200, root, err, sizeof(err)),
		   -EPERM, err,
		   "kernel.yama.ptrace_scope is 3: no process may attach");
}

Test(perm, a_malformed_ptrace_scope_is_eio)
{
	static const char *const bad[] = { "", "one\n", "-1\n", "1 2\n",
					   "99999999999\n" };
	char *root = fake_machine(NULL, NULL);
	struct bt_peer p = peer_of(root, 100, 1000);
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tu_fake_write(root, "sys/kernel/yama/ptrace_scope", bad[i]);
		expect_err(bt_perm__may_trace_task(&p, 200, root, err,
						   sizeof(err)),
			   -EIO, err, "yama/ptrace_scope");
	}
}

/* ---- Per-CPU on a fake procfs ------------------------------------------- */

Test(perm, per_cpu_needs_cap_perfmon_or_cap_sys_admin_or_paranoid_0)
{
	static const struct {
		const char *paranoid;
		int ret;
	} cases[] = {
		{ "-1\n", 0 }, { "0\n", 0 }, { "1\n", -EACCES },
		{ "2\n", -EACCES }, { "4\n", -EACCES },
	};
	char *root = fake_machine(NULL, NULL);
	struct bt_peer p = peer_of(root, 100, 1000);
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tu_fake_write(root, "sys/kernel/perf_event_paranoid",
			      cases[i].paranoid);
		cr_assert(eq(int, bt_perm__may_trace_cpu(&p, root, err,
							 sizeof(err)),
			     cases[i].ret), "paranoid %s: %s",
			  cases[i].paranoid, err);
	}
	expect_err(bt_perm__may_trace_cpu(&p, root, err, sizeof(err)), -EACCES,
		   err, "per-CPU tracing needs CAP_PERFMON (or CAP_SYS_ADMIN) "
		   "or kernel.perf_event_paranoid <= 0 (it is 4)");

	p.cap_eff = BIT(BT_CAP_PERFMON);
	cr_assert(eq(int, bt_perm__may_trace_cpu(&p, root, err, sizeof(err)),
		     0));
	p.cap_eff = BIT(BT_CAP_SYS_ADMIN);
	cr_assert(eq(int, bt_perm__may_trace_cpu(&p, root, err, sizeof(err)),
		     0));
	p.cap_eff = BIT(BT_CAP_SYS_PTRACE) | BIT(BT_CAP_IPC_LOCK);
	cr_assert(eq(int, bt_perm__may_trace_cpu(&p, root, err, sizeof(err)),
		     -EACCES));
}

Test(perm, an_unreadable_paranoid_refuses_per_cpu)
{
	char *root = fake_machine(NULL, NULL);
	struct bt_peer p = peer_of(root, 100, 1000);
	char err[256];

	expect_err(bt_perm__may_trace_cpu(&p, root, err, sizeof(err)), -EACCES,
		   err, "perf_event_paranoid is No such file or directory");
	tu_fake_write(root, "sys/kernel/perf_event_paranoid", "0x0\n");
	expect_err(bt_perm__may_trace_cpu(&p, root, err, sizeof(err)), -EACCES,
		   err, "perf_event_paranoid is not a number");
}

/* ---- This machine --------------------------------------------------------- */

/* A listening abstract Unix socket with a name unique to this process. */
static int listen_here(struct sockaddr_un *sa, socklen_t *salen)
{
	static int n;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(ge(int, fd, 0));
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	/* sun_path[0] stays NUL: abstract, nothing to clean up. */
	*salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
		 (size_t)snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1,
				  "bt-perm-%d-%d", (int)getpid(), n++));
	cr_assert(eq(int, bind(fd, (struct sockaddr *)sa, *salen), 0),
		  "bind: %s", strerror(errno));
	cr_assert(eq(int, listen(fd, 4), 0));
	return fd;
}

static int connect_to(const struct sockaddr_un *sa, socklen_t salen)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (const struct sockaddr *)sa, salen))
		return -1;
	return fd;
}

static bool read_full(int fd, void *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

static bool write_full(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len) == (ssize_t)len;
}

static void reap(pid_t pid)
{
	int st;

	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

/* Wait for @pid and expect exit status 0. */
static void expect_exit_0(pid_t pid)
{
	int st;

	bool ok;

	cr_assert(eq(int, waitpid(pid, &st, 0), pid));
	ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	cr_assert(ok, "child status %#x", st);
}

/*
 * In a child: die with the parent, even if a failed assertion ends the
 * test before it reaps us. Set after any uid change, which clears it.
 */
static void die_with(pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) || getppid() != parent)
		_exit(9);
}

static int drop_to_nobody(void)
{
	pid_t parent = getppid();

	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
		return -1;
	die_with(parent);
	/* setuid() made us non-dumpable (suid_dumpable 0): undo that */
	return prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}

Test(perm, peer_from_socket_names_the_connected_child, .timeout = 30)
{
	const rlim_t lock = 3 * 1024 * 1024 + 4096;
	struct sockaddr_un sa;
	struct bt_peer p;
	socklen_t salen;
	char err[256], c;
	int lfd, fd, ret;
	pid_t kid;

	lfd = listen_here(&sa, &salen);
	kid = fork();
	cr_assert(ge(int, kid, 0));
	if (kid == 0) {
		struct rlimit rl = { lock, lock };

		/*
		 * SO_PEERCRED names whoever made the socket: a socketpair()
		 * made before fork() would name the parent, so connect().
		 */
		if (setrlimit(RLIMIT_MEMLOCK, &rl) ||
		    prctl(PR_SET_NAME, "bt-perm-kid", 0, 0, 0))
			_exit(2);
		fd = connect_to(&sa, salen);
		if (fd < 0 || !write_full(fd, "r", 1))
			_exit(3);
		/* Stay until the parent has looked. */
		_exit(read_full(fd, &c, 1) ? 0 : 4);
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert(ge(int, fd, 0));
	cr_assert(read_full(fd, &c, 1));

	memset(&p, 0xcd, sizeof(p));
	ret = bt_peer__from_socket(fd, NULL, &p, err, sizeof(err));
	cr_assert(eq(int, ret, 0), "%s", err);
	cr_assert(eq(int, p.pid, kid));
	cr_assert(eq(u32, p.uid, geteuid()));
	cr_assert(eq(u32, p.gid, getegid()));
	cr_assert(eq(str, p.comm, "bt-perm-kid"));
	cr_assert(eq(u64, p.memlock, (uint64_t)lock));
	cr_assert(eq(int, p.unlimited, bt_peer__has_cap(&p, BT_CAP_IPC_LOCK)));

	cr_assert(write_full(fd, "q", 1));
	close(fd);
	close(lfd);
	expect_exit_0(kid);

	/* Now it is gone. */
	ret = bt_peer__from_pid(kid, 0, 0, NULL, &p, err, sizeof(err));
	expect_err(ret, -ESRCH, err, "no process");
}

Test(perm, peer_from_socket_refuses_what_is_not_a_unix_socket)
{
	struct bt_peer p;
	char err[256];
	int fds[2];

	cr_assert(eq(int, pipe(fds), 0));
	expect_err(bt_peer__from_socket(fds[0], NULL, &p, err, sizeof(err)),
		   -ENOTSOCK, err, "SO_PEERCRED");
	close(fds[0]);
	close(fds[1]);
}

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root: it forks children that drop to "
			     "nobody (uid %d)", NOBODY);
}

/*
 * A daemon that may not prlimit() its client falls back to the limits
 * file: a nobody child reading its root parent's limit gets EPERM from
 * prlimit and must still find the number.
 */
Test(perm, memlock_falls_back_to_the_limits_file_when_prlimit_is_refused,
     .timeout = 30)
{
	struct rlimit rl;
	pid_t kid;

	need_root();
	cr_assert(eq(int, getrlimit(RLIMIT_MEMLOCK, &rl), 0));
	rl.rlim_cur = 5 * 1024 * 1024;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur)
		rl.rlim_max = rl.rlim_cur;
	cr_assert(eq(int, setrlimit(RLIMIT_MEMLOCK, &rl), 0));
	kid = fork();
	cr_assert(ge(int, kid, 0));
	if (kid == 0) {
		struct rlimit old;
		struct bt_peer p;
		char err[256];

		if (drop_to_nobody())
			_exit(2);
		if (prlimit(getppid(), RLIMIT_MEMLOCK, NULL, &old) == 0 ||
		    errno != EPERM)
			_exit(3);	/* the point of the test is gone */
		if (bt_peer__from_pid(getppid(), 0, 0, NULL, &p, err,
				      sizeof(err)))
			_exit(4);
		_exit(p.memlock == 5 * 1024 * 1024 ? 0 : 5);
	}
	expect_exit_0(kid);
}

/* The real Yama scope (-1: not built in) and perf_event_paranoid. */
static int real_sysctl(const char *path, int absent)
{
	FILE *f = fopen(path, "r");
	int v;

	if (!f)
		return absent;
	cr_assert(eq(int, fscanf(f, "%d", &v), 1), "%s", path);
	fclose(f);
	return v;
}

/*
 * A child that sleeps until killed: as root (@uid 0) or nobody, dumpable
 * unless @nodump, keeping its permitted capabilities if @keepcaps.
 */
static pid_t sleeper(uid_t uid, bool nodump, bool keepcaps)
{
	int pfd[2];
	pid_t pid;
	char c;

	cr_assert(eq(int, pipe(pfd), 0));
	pid = fork();
	cr_assert(ge(int, pid, 0));
	if (pid == 0) {
		die_with(getppid());
		close(pfd[0]);
		if (keepcaps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0))
			_exit(2);
		if (uid && drop_to_nobody())
			_exit(2);
		if (nodump && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
			_exit(2);
		prctl(PR_SET_NAME, uid ? "bt-nobody-nap" : "bt-root-nap", 0, 0,
		      0);
		(void)!write(pfd[1], "k", 1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	cr_assert(read_full(pfd[0], &c, 1), "sleeper did not start");
	close(pfd[0]);
	return pid;
}

/*
 * The kernel's own verdict on whether the calling process may attach to
 * @pid: process_vm_readv() makes the PTRACE_MODE_ATTACH_REALCREDS check
 * (Yama included) before it touches memory, so a refusal is EPERM and a
 * permitted read of address 0 is EFAULT.
 */
static int kernel_verdict(pid_t pid)
{
	char b;
	struct iovec local = { &b, 1 }, remote = { NULL, 1 };

	if (process_vm_readv(pid, &local, 1, &remote, 1, 0) >= 0)
		return 0;
	return errno == EFAULT ? 0 : -errno;
}

#define NTARGETS 6

/*
 * As nobody, connect to the parent, fork a dumpable grandchild, then
 * answer the parent's list of target pids with the kernel's verdicts.
 */
static void nobody_client(const struct sockaddr_un *sa, socklen_t salen)
{
	int32_t targets[NTARGETS], verdicts[NTARGETS];
	pid_t grandchild;
	int fd, ok;

	if (drop_to_nobody())
		_exit(2);
	grandchild = fork();
	if (grandchild < 0)
		_exit(3);
	if (grandchild == 0) {
		die_with(getppid());
		for (;;)
			pause();
	}
	fd = connect_to(sa, salen);
	ok = fd >= 0 && write_full(fd, &(int32_t){ grandchild },
				   sizeof(int32_t)) &&
	     read_full(fd, targets, sizeof(targets));
	if (ok) {
		for (int i = 0; i < NTARGETS; i++)
			verdicts[i] = kernel_verdict(targets[i]);
		ok = write_full(fd, verdicts, sizeof(verdicts));
	}
	/* wait for the parent to finish before the grandchild goes */
	if (ok)
		ok = read_full(fd, targets, 1);
	kill(grandchild, SIGKILL);
	waitpid(grandchild, NULL, 0);
	_exit(ok ? 0 : 4);
}

Test(perm, a_nobody_client_gets_the_kernels_verdicts, .timeout = 60)
{
	int scope = real_sysctl("/proc/sys/kernel/yama/ptrace_scope", -1);
	struct sockaddr_un sa;
	struct bt_peer p;
	socklen_t salen;
	int32_t targets[NTARGETS], kernel[NTARGETS], grandchild;
	int lfd, fd, want[NTARGETS];
	pid_t client, root_nap, nobody_nap, nodump_nap, caps_nap;
	char err[256];

	need_root();
	root_nap = sleeper(0, false, false);
	nobody_nap = sleeper(NOBODY, false, false);
	nodump_nap = sleeper(NOBODY, true, false);
	caps_nap = sleeper(NOBODY, false, true);

	lfd = listen_here(&sa, &salen);
	client = fork();
	cr_assert(ge(int, client, 0));
	if (client == 0)
		nobody_client(&sa, salen);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert(ge(int, fd, 0));
	cr_assert(read_full(fd, &grandchild, sizeof(grandchild)));

	memset(&p, 0xcd, sizeof(p));
	cr_assert(eq(int, bt_peer__from_socket(fd, NULL, &p, err, sizeof(err)),
		     0), "%s", err);
	cr_assert(eq(int, p.pid, client));
	cr_assert(eq(u32, p.uid, NOBODY));
	cr_assert(eq(u32, p.gid, NOBODY));
	cr_assert(eq(u64, p.cap_eff, 0), "setuid() drops capabilities");

	/* Our verdicts, and what each should be on this machine. */
	targets[0] = getpid();
	want[0] = -EPERM;
	targets[1] = root_nap;
	want[1] = -EPERM;
	targets[2] = nodump_nap;
	want[2] = -EPERM;
	targets[3] = nobody_nap;	/* nobody's, not the client's child */
	want[3] = scope >= 1 ? -EPERM : 0;
	targets[4] = grandchild;	/* the client's own child */
	want[4] = scope >= 2 ? -EPERM : 0;
	targets[5] = caps_nap;		/* nobody with permitted caps */
	want[5] = -EPERM;

	for (int i = 0; i < NTARGETS; i++) {
		int ret = bt_perm__may_trace_task(&p, targets[i], NULL, err,
						  sizeof(err));

		cr_assert(eq(int, ret, want[i]), "target %d (pid %d): %s", i,
			  (int)targets[i], err);
	}
	bt_perm__may_trace_task(&p, getpid(), NULL, err, sizeof(err));
	cr_assert(ne(ptr, strstr(err, "belongs to uid 0; you are uid 65534"),
		     NULL), "%s", err);
	bt_perm__may_trace_task(&p, nodump_nap, NULL, err, sizeof(err));
	cr_assert(ne(ptr, strstr(err, "is not dumpable"), NULL), "%s", err);
	bt_perm__may_trace_task(&p, caps_nap, NULL, err, sizeof(err));
	cr_assert(ne(ptr, strstr(err, "holds capabilities you do not"), NULL),
		  "%s", err);
	if (scope == 1) {
		bt_perm__may_trace_task(&p, nobody_nap, NULL, err, sizeof(err));
		cr_assert(ne(ptr, strstr(err, "ptrace_scope is 1"), NULL),
			  "%s", err);
	}

	/* ... and the kernel's, as the client itself meets them. */
	cr_assert(write_full(fd, targets, sizeof(targets)));
	cr_assert(read_full(fd, kernel, sizeof(kernel)));
	for (int i = 0; i < NTARGETS; i++)
		cr_assert(eq(int, kernel[i], want[i]),
			  "kernel on target %d (pid %d): %s", i,
			  (int)targets[i], strerror(-kernel[i]));

	cr_assert(write_full(fd, "q", 1));
	close(fd);
	close(lfd);
	expect_exit_0(client);
	reap(root_nap);
	reap(nobody_nap);
	reap(nodump_nap);
	reap(caps_nap);
}

Test(perm, a_nobody_client_may_not_trace_cpus_unless_paranoid_allows,
     .timeout = 30)
{
	int paranoid = real_sysctl("/proc/sys/kernel/perf_event_paranoid", 2);
	struct sockaddr_un sa;
	struct bt_peer p;
	socklen_t salen;
	char err[256], c;
	int lfd, fd, ret;
	pid_t client;

	need_root();
	if (paranoid <= 0)
		cr_skip_test("kernel.perf_event_paranoid is %d here: anyone "
			     "may trace CPUs, nothing to refuse", paranoid);
	lfd = listen_here(&sa, &salen);
	client = fork();
	cr_assert(ge(int, client, 0));
	if (client == 0) {
		if (drop_to_nobody())
			_exit(2);
		fd = connect_to(&sa, salen);
		_exit(fd >= 0 && write_full(fd, "r", 1) &&
		      read_full(fd, &c, 1) ? 0 : 3);
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert(ge(int, fd, 0));
	cr_assert(read_full(fd, &c, 1));
	ret = bt_peer__from_socket(fd, NULL, &p, err, sizeof(err));
	cr_assert(eq(int, ret, 0), "%s", err);
	ret = bt_perm__may_trace_cpu(&p, NULL, err, sizeof(err));
	cr_assert(write_full(fd, "q", 1));
	close(fd);
	close(lfd);
	expect_exit_0(client);

	cr_assert(eq(int, ret, -EACCES), "%s", err);
	cr_assert(ne(ptr, strstr(err, "perf_event_paranoid <= 0 (it is"),
		     NULL), "%s", err);
}

/*
 * "unshare -U" hands a nobody process every capability inside its new
 * user namespace; the broker must not believe them.
 */
Test(perm, a_client_in_its_own_user_namespace_has_no_capabilities,
     .timeout = 30)
{
	struct sockaddr_un sa;
	struct bt_peer p;
	socklen_t salen;
	char err[256], c;
	int lfd, fd, ret;
	pid_t client;

	need_root();
	lfd = listen_here(&sa, &salen);
	client = fork();
	cr_assert(ge(int, client, 0));
	if (client == 0) {
		if (drop_to_nobody())
			_exit(2);
		if (unshare(CLONE_NEWUSER)) {
			fd = connect_to(&sa, salen);
			_exit(fd >= 0 && write_full(fd, "u", 1) ? 0 : 3);
		}
		fd = connect_to(&sa, salen);
		_exit(fd >= 0 && write_full(fd, "r", 1) &&
		      read_full(fd, &c, 1) ? 0 : 3);
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert(ge(int, fd, 0));
	cr_assert(read_full(fd, &c, 1));
	if (c == 'u') {
		close(fd);
		close(lfd);
		expect_exit_0(client);
		cr_skip_test("unprivileged user namespaces are disabled here");
	}
	ret = bt_peer__from_socket(fd, NULL, &p, err, sizeof(err));
	if (ret == 0) {
		char path[64];
		FILE *f;
		char line[256];
		unsigned long long shown = 0;

		/* The kernel really shows a full set there. */
		snprintf(path, sizeof(path), "/proc/%d/status", (int)client);
		f = fopen(path, "r");
		cr_assert(ne(ptr, f, NULL));
		while (fgets(line, sizeof(line), f))
			sscanf(line, "CapEff: %llx", &shown);
		fclose(f);
		cr_assert(ne(u64, shown & BIT(BT_CAP_SYS_PTRACE), 0),
			  "CapEff %llx", shown);
	}
	cr_assert(write_full(fd, "q", 1));
	close(fd);
	close(lfd);
	expect_exit_0(client);

	cr_assert(eq(int, ret, 0), "%s", err);
	cr_assert(eq(u32, p.uid, NOBODY));
	cr_assert(eq(u64, p.cap_eff, 0));
	cr_assert(not(p.unlimited));
}
