// SPDX-License-Identifier: BSD-3-Clause
/*
 * bt_caps_probe(): each reason a facility can be missing, from fake sysfs
 * and procfs trees (no PMU and which CPU, a VM, PTI for intel_bts,
 * perf_event_paranoid, no hardware PMU, EBUSY and its holder, ptrace
 * limits), with a stand-in kernel answering the confirming opens; then
 * this machine as it is, and `btrail caps` run as a program.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <btrail/ds.h>

#include "ds/caps.h"
#include "ds/perf.h"
#include "helpers/fakefs.h"
#include "helpers/testutil.h"

#define CAP_PERFMON_BIT		(1ull << 38)
#define CAP_SYS_ADMIN_BIT	(1ull << 21)
#define CAP_SYS_PTRACE_BIT	(1ull << 19)

/* ---- A stand-in kernel for the confirming opens ------------------------- */

static struct {
	int opens;
	struct perf_event_attr attr[32];
	int (*answer)(const struct perf_event_attr *a);
	int closes;
} fk;

static int fake_open(struct perf_event_attr *attr, pid_t pid, int cpu,
		     int group_fd, unsigned long flags)
{
	int i = fk.opens++;

	cr_assert(eq(int, pid, 0));		/* this process */
	cr_assert(eq(int, cpu, -1));
	cr_assert(eq(int, group_fd, -1));
	cr_assert(eq(u64, flags, PERF_FLAG_FD_CLOEXEC));
	if (i < 32)
		fk.attr[i] = *attr;
	return fk.answer ? fk.answer(attr) : 100 + i;
}

static int fake_close(int fd)
{
	cr_assert(ge(int, fd, 100));
	fk.closes++;
	return 0;
}

static const struct bt_perf_sys fake_sys = {
	.open = fake_open,
	.close = fake_close,
};

/* ---- Fake machines ---------------------------------------------------------- */

struct machine {
	char *sysfs;
	char *procfs;
};

/* This project's machines: an AMD EPYC guest without a PMU. */
static struct machine amd_vm(void)
{
	struct machine m = { tu_fake_root("sys"), tu_fake_root("proc") };

	tu_fake_bare_sysfs(m.sysfs);
	tu_fake_procfs(m.procfs, "AuthenticAMD", 25, 1, "AMD EPYC 7713 64-Core Processor",
		       tu_flags_epyc_vm, TU_CAP_ALL, 2);
	return m;
}

/* A Skylake desktop, bare metal, with every PMU. */
static struct machine skylake(uint64_t cap_eff, int paranoid)
{
	struct machine m = { tu_fake_root("sys"), tu_fake_root("proc") };

	tu_fake_skylake_sysfs(m.sysfs, 8);
	tu_fake_procfs(m.procfs, "GenuineIntel", 6, 94,
		       "Intel(R) Core(TM) i7-6700 CPU @ 3.40GHz",
		       tu_flags_skylake, cap_eff, paranoid);
	return m;
}

/* The kernel shows no intel_bts PMU (PTI, or no driver). */
static void drop_intel_bts(const struct machine *m)
{
	char dir[4096];

	tu_fake_remove(m->sysfs, "bus/event_source/devices/intel_bts/type");
	tu_fake_remove(m->sysfs, "bus/event_source/devices/intel_bts/"
		       "perf_event_mux_interval_ms");
	snprintf(dir, sizeof(dir), "%s/bus/event_source/devices/intel_bts",
		 m->sysfs);
	cr_assert(eq(int, rmdir(dir), 0));
}

static void probe(const struct machine *m, bool no_open, struct bt_cap *caps)
{
	struct bt_caps_opts o = {
		.sz = sizeof(o), .sysfs = m->sysfs, .procfs = m->procfs,
		.no_open = no_open,
	};

	cr_assert(eq(int, bt_caps__probe_sys(caps, &o, &fake_sys), 0));
	for (int i = 0; i < BT_FAC__COUNT; i++) {
		cr_assert(ne(u8, caps[i].reason[0], 0), "%s: no reason",
			  bt_facility_name((uint32_t)i));
		cr_assert(eq(ptr, strchr(caps[i].reason, '\n'), NULL));
	}
}

#define expect_in(cap, needle)						\
	cr_assert(strstr((cap).reason, (needle)) != NULL,		\
		  "'%s' not in: %s", (needle), (cap).reason)

/* ---- Reasons, one by one ------------------------------------------------------ */

Test(caps, amd_guest_without_pmu_names_the_cpu_and_the_vm)
{
	struct machine m = amd_vm();
	struct bt_cap caps[BT_FAC__COUNT];

	memset(&fk, 0, sizeof(fk));
	probe(&m, false, caps);
	cr_assert(not(caps[BT_FAC_PT].present));
	expect_in(caps[BT_FAC_PT], "no intel_pt PMU");
	expect_in(caps[BT_FAC_PT], "AuthenticAMD family 25 model 1");
	expect_in(caps[BT_FAC_PT], "Intel PT is Intel-only");
	expect_in(caps[BT_FAC_PT], "running in a VM");

	cr_assert(not(caps[BT_FAC_BTS].present));
	expect_in(caps[BT_FAC_BTS], "no intel_bts PMU");
	expect_in(caps[BT_FAC_BTS], "BTS is Intel-only");
	expect_in(caps[BT_FAC_BTS], "no hardware PMU");
	cr_assert(not(caps[BT_FAC_PEBS].present));
	expect_in(caps[BT_FAC_PEBS], "no hardware PMU: no cpu PMU");
	cr_assert(not(caps[BT_FAC_LBR].present));
	expect_in(caps[BT_FAC_LBR], "no hardware PMU");
	/* Nothing was worth opening. */
	cr_assert(eq(int, fk.opens, 0));

	cr_assert(caps[BT_FAC_STEP].present);
	expect_in(caps[BT_FAC_STEP], "software facility: ptrace single-step (slow");
	cr_assert(caps[BT_FAC_PTEMU].present);
	expect_in(caps[BT_FAC_PTEMU], "Intel PT packets");
}

Test(caps, skylake_offers_every_facility)
{
	struct machine m = skylake(TU_CAP_ALL, 2);
	struct bt_cap caps[BT_FAC__COUNT];

	memset(&fk, 0, sizeof(fk));
	probe(&m, false, caps);
	for (int i = 0; i < BT_FAC__COUNT; i++)
		cr_assert(caps[i].present, "%s: %s",
			  bt_facility_name((uint32_t)i), caps[i].reason);
	expect_in(caps[BT_FAC_PT], "intel_pt PMU type 8");
	expect_in(caps[BT_FAC_PT], "mtc periods 0x249");
	expect_in(caps[BT_FAC_PT], "2 address filters");
	expect_in(caps[BT_FAC_BTS], "intel_bts PMU type 9");
	expect_in(caps[BT_FAC_PEBS], "precise_ip 3");
	expect_in(caps[BT_FAC_LBR], "32-entry LBR");
	cr_assert(eq(ptr, strstr(caps[BT_FAC_PT].reason, "not opened"), NULL));

	/* Each was confirmed by opening its event, then closed. */
	cr_assert(eq(int, fk.opens, 4));
	cr_assert(eq(int, fk.closes, 4));
	cr_assert(eq(u32, fk.attr[0].type, 8));
	cr_assert(eq(u64, fk.attr[0].config, 0x300e601));
	cr_assert(eq(u32, fk.attr[1].type, 9));
	cr_assert(eq(u32, fk.attr[2].precise_ip, 3));
	cr_assert(eq(u64, fk.attr[3].sample_type & PERF_SAMPLE_BRANCH_STACK,
		     PERF_SAMPLE_BRANCH_STACK));
	for (int i = 0; i < 4; i++)
		cr_assert(eq(int, fk.attr[i].exclude_kernel, 1));
}

Test(caps, no_open_judges_from_sysfs_alone)
{
	struct machine m = skylake(TU_CAP_ALL, 2);
	struct bt_cap caps[BT_FAC__COUNT];

	memset(&fk, 0, sizeof(fk));
	probe(&m, true, caps);
	cr_assert(eq(int, fk.opens, 0));
	cr_assert(caps[BT_FAC_PT].present);
	expect_in(caps[BT_FAC_PT], "not opened");
	expect_in(caps[BT_FAC_PEBS], "precise_ip up to 3");
}

Test(caps, pti_takes_intel_bts_away_and_the_fallback_steps_in)
{
	struct machine m = skylake(TU_CAP_ALL, 2);
	struct bt_cap caps[BT_FAC__COUNT];

	drop_intel_bts(&m);
	tu_fake_write(m.sysfs, "devices/system/cpu/vulnerabilities/meltdown",
		      "Mitigation: PTI\n");
	memset(&fk, 0, sizeof(fk));
	probe(&m, false, caps);
	cr_assert(caps[BT_FAC_BTS].present, "%s", caps[BT_FAC_BTS].reason);
	expect_in(caps[BT_FAC_BTS], "branch-instructions at period 1 as samples");
	expect_in(caps[BT_FAC_BTS], "page-table isolation");
	expect_in(caps[BT_FAC_BTS], "PTI");
	cr_assert(eq(u32, fk.attr[1].type, PERF_TYPE_HARDWARE));
	cr_assert(eq(u64, fk.attr[1].config, PERF_COUNT_HW_BRANCH_INSTRUCTIONS));
	cr_assert(eq(u64, fk.attr[1].sample_period, 1));
}

static int enoent_for_hardware(const struct perf_event_attr *a)
{
	return a->type == PERF_TYPE_HARDWARE ? -ENOENT : 100;
}

Test(caps, branch_instructions_refused_means_no_hardware_pmu)
{
	struct machine m = skylake(TU_CAP_ALL, 2);
	struct bt_cap caps[BT_FAC__COUNT];

	drop_intel_bts(&m);
	memset(&fk, 0, sizeof(fk));
	fk.answer = enoent_for_hardware;
	probe(&m, false, caps);
	cr_assert(not(caps[BT_FAC_BTS].present));
	expect_in(caps[BT_FAC_BTS], "no intel_bts PMU");
	expect_in(caps[BT_FAC_BTS], "no hardware PMU: branch-instructions cannot "
		  "be opened (ENOENT)");
	cr_assert(not(caps[BT_FAC_PEBS].present));
	expect_in(caps[BT_FAC_PEBS], "no hardware PMU: branch-instructions "
		  "cannot be opened (ENOENT)");
	cr_assert(not(caps[BT_FAC_LBR].present));
	expect_in(caps[BT_FAC_LBR], "no hardware PMU: cycles cannot be opened "
		  "(ENOENT)");
	cr_assert(caps[BT_FAC_PT].present);	/* intel_pt is not a HARDWARE event */
}

Test(caps, intel_guest_without_pt_blames_the_hypervisor)
{
	struct machine m = { tu_fake_root("sys"), tu_fake_root("proc") };
	struct bt_cap caps[BT_FAC__COUNT];
	char flags[2048];

	snprintf(flags, sizeof(flags), "%s hypervisor", tu_flags_skylake);
	tu_fake_bare_sysfs(m.sysfs);
	tu_fake_procfs(m.procfs, "GenuineIntel", 6, 85,
		       "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz", flags,
		       TU_CAP_ALL, 2);
	probe(&m, true, caps);
	cr_assert(not(caps[BT_FAC_PT].present));
	expect_in(caps[BT_FAC_PT], "GenuineIntel family 6 model 85");
	expect_in(caps[BT_FAC_PT], "running in a VM");
	expect_in(caps[BT_FAC_PT], "does not pass Intel PT through");
	expect_in(caps[BT_FAC_BTS], "no intel_bts PMU: running in a VM");
}

Test(caps, intel_without_pt_says_whether_the_cpu_or_the_kernel_lacks_it)
{
	struct machine m = { tu_fake_root("sys"), tu_fake_root("proc") };
	struct bt_cap caps[BT_FAC__COUNT];

	/* An Ivy Bridge: no intel_pt flag, the CPU predates Intel PT. */
	tu_fake_bare_sysfs(m.sysfs);
	tu_fake_procfs(m.procfs, "GenuineIntel", 6, 58,
		       "Intel(R) Core(TM) i5-3570 CPU @ 3.40GHz",
		       "fpu vme de pse tsc msr pae sse sse2 ht pebs bts",
		       TU_CAP_ALL, 2);
	probe(&m, true, caps);
	expect_in(caps[BT_FAC_PT], "which has no Intel PT (no intel_pt flag");

	/* The flag is there but the kernel shows no PMU: its driver is missing. */
	m.procfs = tu_fake_root("proc");
	tu_fake_procfs(m.procfs, "GenuineIntel", 6, 94, "Intel(R) Core(TM) i7-6700",
		       tu_flags_skylake, TU_CAP_ALL, 2);
	probe(&m, true, caps);
	expect_in(caps[BT_FAC_PT], "this kernel has no intel_pt driver");
}

Test(caps, paranoid_3_without_cap_perfmon_refuses_everything_but_ptrace)
{
	struct machine m = skylake(CAP_SYS_PTRACE_BIT, 3);
	struct bt_cap caps[BT_FAC__COUNT];

	memset(&fk, 0, sizeof(fk));
	probe(&m, false, caps);
	for (int i = BT_FAC_PT; i <= BT_FAC_LBR; i++) {
		cr_assert(not(caps[i].present));
		expect_in(caps[i], "perf_event_paranoid is 3");
		expect_in(caps[i], "CAP_PERFMON");
	}
	cr_assert(eq(int, fk.opens, 0));
	cr_assert(caps[BT_FAC_STEP].present);

	/* CAP_PERFMON (or CAP_SYS_ADMIN) lifts it. */
	m = skylake(CAP_PERFMON_BIT, 3);
	probe(&m, false, caps);
	cr_assert(caps[BT_FAC_PT].present, "%s", caps[BT_FAC_PT].reason);
	m = skylake(CAP_SYS_ADMIN_BIT, 3);
	probe(&m, false, caps);
	cr_assert(caps[BT_FAC_PT].present, "%s", caps[BT_FAC_PT].reason);
	cr_assert(eq(ptr, strstr(caps[BT_FAC_PT].reason, "paranoid"), NULL));
}

Test(caps, paranoid_2_without_cap_perfmon_is_user_space_only)
{
	struct machine m = skylake(0, 2);
	struct bt_cap caps[BT_FAC__COUNT];

	probe(&m, false, caps);
	cr_assert(caps[BT_FAC_PT].present);
	expect_in(caps[BT_FAC_PT], "user space only (perf_event_paranoid 2, no "
		  "CAP_PERFMON)");
	m = skylake(0, 1);
	probe(&m, false, caps);
	expect_in(caps[BT_FAC_PT], "per-CPU needs perf_event_paranoid 0");
}

static int eacces_for_all(const struct perf_event_attr *a)
{
	(void)a;
	return -EACCES;
}

Test(caps, eacces_from_the_kernel_names_paranoia)
{
	struct machine m = skylake(0, 2);
	struct bt_cap caps[BT_FAC__COUNT];

	memset(&fk, 0, sizeof(fk));
	fk.answer = eacces_for_all;
	probe(&m, false, caps);
	cr_assert(not(caps[BT_FAC_PT].present));
	expect_in(caps[BT_FAC_PT], "the kernel refused intel_pt (EACCES)");
	expect_in(caps[BT_FAC_PT], "perf_event_paranoid 2");
	expect_in(caps[BT_FAC_PT], "lacks CAP_PERFMON");
}

static int ebusy_for_pt(const struct perf_event_attr *a)
{
	return a->type == 8 ? -EBUSY : 100;
}

/* A process @pid (@comm) holding a perf event fd; @type -1: fdinfo without it. */
static void fake_holder(const char *procfs, int pid, const char *comm, int fd,
			long type)
{
	char rel[128];

	snprintf(rel, sizeof(rel), "%d/comm", pid);
	tu_fake_printf(procfs, rel, "%s\n", comm);
	snprintf(rel, sizeof(rel), "%d/fd/%d", pid, fd);
	tu_fake_symlink(procfs, rel, "anon_inode:[perf_event]");
	snprintf(rel, sizeof(rel), "%d/fd/%d", pid, fd + 1);
	tu_fake_symlink(procfs, rel, "/dev/null");
	snprintf(rel, sizeof(rel), "%d/fdinfo/%d", pid, fd);
	if (type >= 0)
		tu_fake_printf(procfs, rel, "pos:\t0\nflags:\t02000002\n"
			       "mnt_id:\t15\nino:\t1057\n"
			       "perf_event_attr.type:\t%ld\n", type);
	else
		tu_fake_write(procfs, rel, "pos:\t0\nflags:\t02000002\n"
			      "mnt_id:\t15\nino:\t1057\n");
}

Test(caps, ebusy_names_the_holder_when_fdinfo_says_the_type)
{
	struct machine m = skylake(TU_CAP_ALL, 2);
	struct bt_cap caps[BT_FAC__COUNT];

	fake_holder(m.procfs, 5000, "bpftrace", 7, 1);	/* a software event */
	fake_holder(m.procfs, 4242, "perf", 5, 8);	/* intel_pt */
	memset(&fk, 0, sizeof(fk));
	fk.answer = ebusy_for_pt;
	probe(&m, false, caps);
	cr_assert(not(caps[BT_FAC_PT].present));
	expect_in(caps[BT_FAC_PT], "intel_pt is busy (EBUSY)");
	expect_in(caps[BT_FAC_PT], "pid 4242 (perf)");
	cr_assert(eq(str, caps[BT_FAC_PT].holder, "pid 4242 (perf)"));
	cr_assert(caps[BT_FAC_BTS].present);
	cr_assert(eq(str, caps[BT_FAC_BTS].holder, ""));
}

Test(caps, ebusy_without_types_in_fdinfo_lists_who_holds_perf_events)
{
	struct machine m = skylake(TU_CAP_ALL, 2);
	struct bt_cap caps[BT_FAC__COUNT];

	fake_holder(m.procfs, 4242, "perf", 5, -1);
	memset(&fk, 0, sizeof(fk));
	fk.answer = ebusy_for_pt;
	probe(&m, false, caps);
	cr_assert(not(caps[BT_FAC_PT].present));
	expect_in(caps[BT_FAC_PT], "EBUSY");
	expect_in(caps[BT_FAC_PT], "perf events are held by pid 4242 (perf)");
	expect_in(caps[BT_FAC_PT], "fdinfo does not say which PMU");
	cr_assert(eq(str, caps[BT_FAC_PT].holder, ""));

	/* Nobody at all: it says so. */
	m = skylake(TU_CAP_ALL, 2);
	probe(&m, false, caps);
	expect_in(caps[BT_FAC_PT], "holder not found: no process");
}

Test(caps, find_holder_skips_this_process_and_other_fds)
{
	char *procfs = tu_fake_root("proc");
	char holder[64], why[160], rel[64];

	snprintf(rel, sizeof(rel), "%d/fd/3", (int)getpid());
	tu_fake_symlink(procfs, rel, "anon_inode:[perf_event]");
	snprintf(rel, sizeof(rel), "%d/fdinfo/3", (int)getpid());
	tu_fake_write(procfs, rel, "perf_event_attr.type:\t8\n");
	tu_fake_symlink(procfs, "77/fd/0", "anon_inode:[eventfd]");
	tu_fake_write(procfs, "77/comm", "other\n");
	cr_assert(eq(int, bt_caps__find_holder(procfs, 8, holder, sizeof(holder),
					       why, sizeof(why)), 0));
	cr_assert(eq(str, holder, ""));
	cr_assert(ne(ptr, strstr(why, "no process"), NULL), "%s", why);
	fake_holder(procfs, 99, "gdb", 4, 8);
	cr_assert(eq(int, bt_caps__find_holder(procfs, 8, holder, sizeof(holder),
					       why, sizeof(why)), 1));
	cr_assert(eq(str, holder, "pid 99 (gdb)"));
	cr_assert(eq(int, bt_caps__find_holder("/nonexistent/proc", 8, holder,
					       sizeof(holder), why, sizeof(why)), 0));
	cr_assert(ne(ptr, strstr(why, "cannot read"), NULL), "%s", why);
}

Test(caps, find_holder_finds_a_real_process_holding_perf_events)
{
	char holder[64], why[160], want[64];
	int ready[2], r;
	pid_t pid;
	char c;

	cr_assert(eq(int, pipe(ready), 0));
	pid = fork();
	cr_assert(ge(int, pid, 0));
	if (pid == 0) {
		struct perf_event_attr a;
		int fd;

		bt_perf_attr__sideband(&a);	/* a software event: any kernel */
		prctl(PR_SET_NAME, "bt-holder");
		fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
		c = fd >= 0 ? 'y' : 'n';
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	tu_read_full(ready[0], &c, 1);
	close(ready[0]);
	if (c != 'y') {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		cr_skip_test("perf_event_open of a dummy event is refused here");
	}
	r = bt_caps__find_holder("/proc", PERF_TYPE_SOFTWARE, holder,
				 sizeof(holder), why, sizeof(why));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	snprintf(want, sizeof(want), "pid %d (bt-holder)", (int)pid);
	cr_log_info("holder '%s', why '%s'", holder, why);
	/* Named outright where fdinfo has the type; listed where it has not. */
	if (r == 1)
		cr_assert(eq(str, holder, want));
	else
		cr_assert(strstr(why, want) || strstr(why, " more"), "%s", why);
}

Test(caps, yama_ptrace_scope_gates_step_and_pt_emu)
{
	struct machine m = amd_vm();
	struct bt_cap caps[BT_FAC__COUNT];

	tu_fake_write(m.procfs, "sys/kernel/yama/ptrace_scope", "3\n");
	probe(&m, true, caps);
	for (int i = BT_FAC_STEP; i <= BT_FAC_PTEMU; i++) {
		cr_assert(not(caps[i].present));
		expect_in(caps[i], "ptrace is off: kernel.yama.ptrace_scope is 3");
	}

	m = skylake(0, 2);
	tu_fake_write(m.procfs, "sys/kernel/yama/ptrace_scope", "2\n");
	probe(&m, true, caps);
	cr_assert(not(caps[BT_FAC_STEP].present));
	expect_in(caps[BT_FAC_STEP], "needs CAP_SYS_PTRACE");

	m = skylake(CAP_SYS_PTRACE_BIT, 2);
	tu_fake_write(m.procfs, "sys/kernel/yama/ptrace_scope", "2\n");
	probe(&m, true, caps);
	cr_assert(caps[BT_FAC_STEP].present, "%s", caps[BT_FAC_STEP].reason);

	m = skylake(0, 2);
	tu_fake_write(m.procfs, "sys/kernel/yama/ptrace_scope", "1\n");
	probe(&m, true, caps);
	cr_assert(caps[BT_FAC_PTEMU].present);
	expect_in(caps[BT_FAC_PTEMU], "-p needs CAP_SYS_PTRACE (ptrace_scope 1)");
}

Test(caps, probe_checks_its_arguments)
{
	struct bt_cap caps[BT_FAC__COUNT];
	struct bt_caps_opts o = { .sz = 1 };

	cr_assert(eq(int, bt_caps_probe(NULL, NULL), -EINVAL));
	cr_assert(eq(int, bt_caps_probe(caps, &o), -EINVAL));
	cr_assert(eq(int, bt_caps__probe_sys(caps, NULL, NULL), -EINVAL));
}

Test(caps, missing_files_still_give_a_reason)
{
	struct machine m = { tu_fake_root("sys"), tu_fake_root("proc") };
	struct bt_cap caps[BT_FAC__COUNT];

	probe(&m, true, caps);		/* empty trees: nothing to go on */
	cr_assert(not(caps[BT_FAC_PT].present));
	expect_in(caps[BT_FAC_PT], "no intel_pt PMU: CPU is unknown");
	expect_in(caps[BT_FAC_PEBS], "no hardware PMU");
}

/* ---- This machine --------------------------------------------------------------- */

/* The value of @key in the first block of /proc/cpuinfo. */
static bool cpuinfo_value(const char *key, char *out, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (!colon || strncmp(line, key, strlen(key)) ||
		    (line[strlen(key)] != ' ' && line[strlen(key)] != '\t'))
			continue;
		snprintf(out, len, "%s", colon + 2);
		out[strcspn(out, "\n")] = '\0';
		found = true;
	}
	fclose(f);
	return found;
}

Test(caps, this_machine_says_plainly_whether_it_has_intel_pt)
{
	struct bt_cap caps[BT_FAC__COUNT];
	struct bt_caps_opts o = { .sz = sizeof(o) };
	char vendor[64] = "", flags[8192] = "";
	struct stat st;

	cr_assert(eq(int, bt_caps_probe(caps, &o), 0));
	cr_assert(cpuinfo_value("vendor_id", vendor, sizeof(vendor)));
	cpuinfo_value("flags", flags, sizeof(flags));
	if (stat("/sys/bus/event_source/devices/intel_pt", &st) != 0) {
		cr_assert(not(caps[BT_FAC_PT].present));
		expect_in(caps[BT_FAC_PT], "no intel_pt PMU");
		expect_in(caps[BT_FAC_PT], vendor);
		if (strstr(flags, "hypervisor"))
			expect_in(caps[BT_FAC_PT], "running in a VM");
	} else {
		/* Where the PMU exists: usable, or a reason the open gave. */
		cr_assert(caps[BT_FAC_PT].present ||
			  strstr(caps[BT_FAC_PT].reason, "paranoid") ||
			  strstr(caps[BT_FAC_PT].reason, "EBUSY") ||
			  strstr(caps[BT_FAC_PT].reason, "refused"),
			  "%s", caps[BT_FAC_PT].reason);
	}
	cr_log_info("pt: %s", caps[BT_FAC_PT].reason);
}

/* ---- btrail caps ------------------------------------------------------------------ */

struct res {
	int rc;
	char *out, *err;
};

static struct res run_caps(const char *arg, ...)
{
	const char *bin = tu_btrail_bin();
	char *argv[16];
	struct res r = { 0 };
	va_list ap;
	int n = 0;

	if (!bin)
		cr_skip_test("BTRAIL_BIN is not set (make check sets it)");
	argv[n++] = (char *)bin;
	argv[n++] = "caps";
	va_start(ap, arg);
	for (const char *a = arg; a; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	r.rc = tu_run(argv, &r.out, &r.err);
	cr_assert(ne(ptr, r.out, NULL));
	cr_assert(ne(ptr, r.err, NULL));
	return r;
}

Test(caps, cli_prints_every_facility_and_why)
{
	struct res r = run_caps(NULL);
	struct stat st;
	const char *line;

	cr_assert(eq(int, r.rc, 0), "%s%s", r.out, r.err);
	for (uint32_t i = 0; i < BT_FAC__COUNT; i++) {
		char want[32];

		snprintf(want, sizeof(want), "\n%-7s ", bt_facility_name(i));
		cr_assert(i == 0 ? !strncmp(r.out, want + 1, strlen(want) - 1) :
			  strstr(r.out, want) != NULL, "no %s line:\n%s",
			  bt_facility_name(i), r.out);
	}
	if (stat("/sys/bus/event_source/devices/intel_pt", &st) != 0) {
		line = r.out;
		cr_assert(eq(int, strncmp(line, "pt      absent   no intel_pt PMU: CPU is ",
					  41), 0), "%s", r.out);
	}
	free(r.out);
	free(r.err);
}

Test(caps, cli_json_has_one_object_per_facility)
{
	struct res r = run_caps("--json", NULL);
	struct stat st;
	int names = 0;

	cr_assert(eq(int, r.rc, 0), "%s%s", r.out, r.err);
	cr_assert(eq(u8, r.out[0], '{'));
	for (const char *p = r.out; (p = strstr(p, "\"name\": ")); p++)
		names++;
	cr_assert(eq(int, names, BT_FAC__COUNT));
	cr_assert(ne(ptr, strstr(r.out, "{ \"name\": \"pt-emu\", \"present\": "), NULL));
	if (stat("/sys/bus/event_source/devices/intel_pt", &st) != 0)
		cr_assert(ne(ptr, strstr(r.out, "{ \"name\": \"pt\", \"present\": false, "
					 "\"reason\": \"no intel_pt PMU: "), NULL), "%s", r.out);
	free(r.out);
	free(r.err);
}

Test(caps, cli_reads_another_machines_trees)
{
	struct machine m = skylake(TU_CAP_ALL, 2);
	struct res r;

	r = run_caps("--no-open", "--sysfs", m.sysfs, "--procfs", m.procfs, NULL);
	cr_assert(eq(int, r.rc, 0), "%s%s", r.out, r.err);
	cr_assert(ne(ptr, strstr(r.out, "pt      present  intel_pt PMU type 8"), NULL),
		  "%s", r.out);
	cr_assert(ne(ptr, strstr(r.out, "lbr     present  32-entry LBR"), NULL), "%s", r.out);
	free(r.out);
	free(r.err);

	m = amd_vm();
	r = run_caps("--json", "--no-open", "--sysfs", m.sysfs, "--procfs",
		     m.procfs, NULL);
	cr_assert(eq(int, r.rc, 0));
	cr_assert(ne(ptr, strstr(r.out, "\"reason\": \"no intel_pt PMU: CPU is "
				 "AuthenticAMD family 25 model 1 (AMD EPYC 7713 "
				 "64-Core Processor), Intel PT is Intel-only; "
				 "running in a VM"), NULL), "%s", r.out);
	free(r.out);
	free(r.err);
}

Test(caps, cli_json_escapes_what_the_machine_says)
{
	struct machine m = { tu_fake_root("sys"), tu_fake_root("proc") };
	struct res r;

	tu_fake_bare_sysfs(m.sysfs);
	tu_fake_procfs(m.procfs, "AuthenticAMD", 23, 49, "Odd \"Quoted\" \\ CPU",
		       tu_flags_epyc_vm, TU_CAP_ALL, 2);
	r = run_caps("--json", "--no-open", "--sysfs", m.sysfs, "--procfs",
		     m.procfs, NULL);
	cr_assert(eq(int, r.rc, 0));
	cr_assert(ne(ptr, strstr(r.out, "(Odd \\\"Quoted\\\" \\\\ CPU)"), NULL),
		  "%s", r.out);
	free(r.out);
	free(r.err);
}

Test(caps, cli_usage_errors_exit_2)
{
	struct res r = run_caps("extra", NULL);

	cr_assert(eq(int, r.rc, 2));
	cr_assert(ne(ptr, strstr(r.err, "unexpected argument 'extra'"), NULL), "%s", r.err);
	free(r.out);
	free(r.err);
	r = run_caps("--bogus", NULL);
	cr_assert(eq(int, r.rc, 2));
	cr_assert(ne(ptr, strstr(r.err, "Usage:"), NULL));
	free(r.out);
	free(r.err);
	r = run_caps("--help", NULL);
	cr_assert(eq(int, r.rc, 0));
	cr_assert(ne(ptr, strstr(r.out, "--no-open"), NULL));
	free(r.out);
	free(r.err);
}
