// SPDX-License-Identifier: BSD-3-Clause
/*
 * What this machine offers, per facility, and in one plain line why not.
 *
 * The evidence, in the order it is weighed: the PMU's sysfs directory
 * (missing: say what the CPU is, from /proc/cpuinfo, whether this is a VM,
 * and for intel_bts whether page-table isolation made the kernel drop it),
 * perf_event_paranoid against CAP_PERFMON/CAP_SYS_ADMIN, and then an
 * actual perf_event_open of the facility's event on this process, which
 * settles it (EBUSY: another tracer holds the PMU; /proc is searched for
 * it). step and pt-emu need ptrace: Yama's ptrace_scope and a forked
 * child's PTRACE_TRACEME decide.
 *
 * Every file is read under opts->sysfs and opts->procfs, so tests build
 * fake trees for each reason.
 */
#include "ds/caps.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/opts.h"

#define CAP_BIT_SYS_PTRACE	19
#define CAP_BIT_SYS_ADMIN	21
#define CAP_BIT_PERFMON		38

#define PARANOID_UNKNOWN	INT_MIN

/* What /proc says about the machine and this process. */
struct machine {
	const char *sysfs;
	const char *procfs;
	bool cpuinfo;			/* /proc/cpuinfo was read */
	char vendor[32];
	int family, model;
	char model_name[64];
	bool hypervisor, flag_intel_pt, flag_pti, flag_amd_lbr_v2;
	bool meltdown_pti;		/* vulnerabilities/meltdown says PTI */
	int paranoid;			/* PARANOID_UNKNOWN when unreadable */
	bool status;			/* self/status was read */
	bool perfmon;			/* CAP_PERFMON or CAP_SYS_ADMIN */
	bool sys_ptrace;
	int ptrace_scope;		/* -1: no Yama */
	const char *core;		/* the core PMU ("cpu"), or NULL */
};

/* snprintf that truncates on purpose: reasons are one bounded line. */
__attribute__((format(printf, 3, 4)))
static void fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vsnprintf(buf, len, f, ap);
	va_end(ap);
}

/* ---- Reading files ---------------------------------------------------------------- */

/* The whole of @dir/@file (NUL-terminated, truncated to @len) or -errno. */
static int read_file(const char *dir, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX];
	size_t got = 0;
	ssize_t n;
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (got < len - 1) {
		n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (int)got;
}

static int read_int(const char *dir, const char *file, int *out)
{
	char buf[32], *end;
	long v;

	if (read_file(dir, file, buf, sizeof(buf)) <= 0)
		return -ENOENT;
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n') || v < INT_MIN ||
	    v > INT_MAX)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n) {
		if ((p == list || isspace((unsigned char)p[-1])) &&
		    (p[n] == '\0' || isspace((unsigned char)p[n])))
			return true;
	}
	return false;
}

/* The first processor's block of /proc/cpuinfo. */
static void machine_cpuinfo(struct machine *m)
{
	char *buf, *line, *save = NULL;
	const size_t len = 64 * 1024;

	buf = malloc(len);
	if (!buf || read_file(m->procfs, "cpuinfo", buf, len) <= 0) {
		free(buf);
		return;
	}
	m->cpuinfo = true;
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':'), *key = line, *val, *e;

		if (!colon)
			continue;
		*colon = '\0';
		val = colon + 1;
		while (isspace((unsigned char)*val))
			val++;
		e = colon;
		while (e > key && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (!strcmp(key, "processor") && atoi(val) != 0)
			break;		/* the first CPU tells us enough */
		if (!strcmp(key, "vendor_id"))
			snprintf(m->vendor, sizeof(m->vendor), "%s", val);
		else if (!strcmp(key, "cpu family"))
			m->family = atoi(val);
		else if (!strcmp(key, "model"))
			m->model = atoi(val);
		else if (!strcmp(key, "model name"))
			snprintf(m->model_name, sizeof(m->model_name), "%s", val);
		else if (!strcmp(key, "flags")) {
			m->hypervisor = has_word(val, "hypervisor");
			m->flag_intel_pt = has_word(val, "intel_pt");
			m->flag_pti = has_word(val, "pti");
			m->flag_amd_lbr_v2 = has_word(val, "amd_lbr_v2");
		}
	}
	free(buf);
}

static void machine_status(struct machine *m)
{
	char buf[4096], *p;
	unsigned long long eff;

	if (read_file(m->procfs, "self/status", buf, sizeof(buf)) <= 0)
		return;
	p = strstr(buf, "\nCapEff:");
	if (!p)
		return;
	eff = strtoull(p + 8, NULL, 16);
	m->status = true;
	m->perfmon = (eff >> CAP_BIT_PERFMON & 1) || (eff >> CAP_BIT_SYS_ADMIN & 1);
	m->sys_ptrace = eff >> CAP_BIT_SYS_PTRACE & 1;
}

static void machine_probe(struct machine *m, const char *sysfs,
			  const char *procfs)
{
	char buf[128], dir[PATH_MAX];

	memset(m, 0, sizeof(*m));
	m->sysfs = sysfs;
	m->procfs = procfs;
	m->paranoid = PARANOID_UNKNOWN;
	m->ptrace_scope = -1;
	machine_cpuinfo(m);
	machine_status(m);
	if (read_int(procfs, "sys/kernel/perf_event_paranoid", &m->paranoid))
		m->paranoid = PARANOID_UNKNOWN;
	if (read_int(procfs, "sys/kernel/yama/ptrace_scope", &m->ptrace_scope))
		m->ptrace_scope = -1;
	snprintf(dir, sizeof(dir), "%s/devices/system/cpu/vulnerabilities",
		 sysfs);
	if (read_file(dir, "meltdown", buf, sizeof(buf)) > 0)
		m->meltdown_pti = strstr(buf, "PTI") != NULL;
	m->core = bt_perf_sysfs__core_pmu(sysfs);
}

static bool is_intel(const struct machine *m)
{
	return !strcmp(m->vendor, "GenuineIntel");
}

static bool is_amd(const struct machine *m)
{
	return !strcmp(m->vendor, "AuthenticAMD") ||
	       !strcmp(m->vendor, "HygonGenuine");
}

/* ---- Reasons -------------------------------------------------------------------- */

__attribute__((format(printf, 2, 3)))
static void say(struct bt_cap *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 2, 3)))
static void say_more(struct bt_cap *c, const char *fmt, ...)
{
	size_t n = strlen(c->reason);
	va_list ap;

	if (n >= sizeof(c->reason) - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(c->reason + n, sizeof(c->reason) - n, fmt, ap);
	va_end(ap);
}

/* "GenuineIntel family 6 model 85 (Intel(R) Xeon(R) ...)" */
static void cpu_desc(const struct machine *m, char *buf, size_t len)
{
	if (!m->cpuinfo || !m->vendor[0]) {
		snprintf(buf, len, "unknown (no %s/cpuinfo)", m->procfs);
		return;
	}
	snprintf(buf, len, "%s family %d model %d%s%.48s%s", m->vendor,
		 m->family, m->model, m->model_name[0] ? " (" : "",
		 m->model_name, m->model_name[0] ? ")" : "");
}

static const char *vm_words = "running in a VM (hypervisor flag in cpuinfo)";

static const char *err_name(int err)
{
	const char *n = strerrorname_np(err < 0 ? -err : err);

	return n ? n : "unknown error";
}

/* A note on what perf_event_paranoid still forbids, for a present facility. */
static void say_paranoia(struct bt_cap *c, const struct machine *m)
{
	if (m->perfmon || m->paranoid == PARANOID_UNKNOWN)
		return;
	if (m->paranoid >= 2)
		say_more(c, "; user space only (perf_event_paranoid %d, no "
			 "CAP_PERFMON)", m->paranoid);
	else if (m->paranoid == 1)
		say_more(c, "; per-CPU needs perf_event_paranoid 0 or "
			 "CAP_PERFMON");
}

/*
 * Does perf_event_paranoid refuse every open by this process? Mainline
 * treats values above 2 as 2; Debian and Ubuntu kernels refuse
 * unprivileged perf_event_open at 3 and above.
 */
static bool paranoia_refuses(struct bt_cap *c, const struct machine *m,
			     const char *what)
{
	if (m->paranoid == PARANOID_UNKNOWN || m->paranoid < 3 || m->perfmon)
		return false;
	say(c, "%s: perf_event_paranoid is %d and this process has neither "
	    "CAP_PERFMON nor CAP_SYS_ADMIN, so perf_event_open is refused "
	    "(sysctl kernel.perf_event_paranoid=2 allows user space)",
	    what, m->paranoid);
	return true;
}

/* The reason for a failed confirming open of @what. */
static void say_open_failed(struct bt_cap *c, const struct machine *m,
			    const char *what, int err, uint64_t pmu_type,
			    bool exclusive)
{
	char why[160];

	switch (-err) {
	case EBUSY:
		say(c, "%s is busy (EBUSY): another tracer holds it", what);
		if (exclusive && bt_caps__find_holder(m->procfs, pmu_type,
						      c->holder,
						      sizeof(c->holder), why,
						      sizeof(why)) == 1)
			say_more(c, ": %s", c->holder);
		else
			say_more(c, "; %s", exclusive ? why :
				 "no free counter");
		break;
	case EACCES:
	case EPERM:
		say(c, "the kernel refused %s (%s): perf_event_paranoid %d, "
		    "this process %s CAP_PERFMON", what, err_name(err),
		    m->paranoid, m->perfmon ? "has" : "lacks");
		break;
	case ENOENT:
	case EOPNOTSUPP:
	case ENODEV:
		say(c, "the kernel does not support %s here (%s)", what,
		    err_name(err));
		if (m->hypervisor)
			say_more(c, "; %s", vm_words);
		break;
	default:
		say(c, "cannot open %s: %s (%s)", what, strerror(-err),
		    err_name(err));
		break;
	}
}

/* Open @attr on this process and close it again: 0 or -errno. */
static int try_open(const struct bt_perf_sys *sys, struct perf_event_attr *attr)
{
	int fd = sys->open(attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);

	if (fd < 0)
		return fd;
	sys->close(fd);
	return 0;
}

/*
 * "no hardware PMU: ..." into @c, after @prefix; for a missing core PMU.
 * The VM is named unless @prefix already did.
 */
static void say_no_hw_pmu(struct bt_cap *c, const struct machine *m,
			  const char *prefix)
{
	say(c, "%sno hardware PMU: no cpu PMU in %s/bus/event_source/devices",
	    prefix, m->sysfs);
	if (m->hypervisor && !strstr(prefix, vm_words))
		say_more(c, "; %s that exposes none", vm_words);
}

/* ---- intel_pt --------------------------------------------------------------------- */

static void probe_pt(struct bt_cap *c, const struct machine *m,
		     const struct bt_caps_opts *o, const struct bt_perf_sys *sys)
{
	struct perf_event_attr attr;
	char desc[128];
	uint64_t type, v;
	int err;

	cpu_desc(m, desc, sizeof(desc));
	if (!bt_perf_sysfs__has_pmu(m->sysfs, "intel_pt")) {
		say(c, "no intel_pt PMU: CPU is %s", desc);
		if (m->cpuinfo && !is_intel(m))
			say_more(c, ", Intel PT is Intel-only");
		else if (!m->hypervisor && m->flag_intel_pt)
			say_more(c, ", which has Intel PT: this kernel has no "
				 "intel_pt driver (CONFIG_PERF_EVENTS_INTEL_PT)");
		else if (!m->hypervisor && m->cpuinfo)
			say_more(c, ", which has no Intel PT (no intel_pt flag "
				 "in cpuinfo)");
		if (m->hypervisor)
			say_more(c, "; %s%s", vm_words, is_intel(m) ?
				 " that does not pass Intel PT through" : "");
		return;
	}
	if (bt_perf_sysfs__u64(m->sysfs, "intel_pt", "type", 10, &type)) {
		say(c, "the intel_pt PMU has no readable type file");
		return;
	}
	if (paranoia_refuses(c, m, "intel_pt"))
		return;
	err = bt_perf_attr__pt(m->sysfs, NULL, &attr);
	if (err) {
		say(c, "cannot build an intel_pt config from sysfs: %s",
		    err_name(err));
		return;
	}
	if (!o->no_open && (err = try_open(sys, &attr))) {
		say_open_failed(c, m, "intel_pt", err, type, true);
		return;
	}
	c->present = true;
	say(c, "intel_pt PMU type %llu", (unsigned long long)type);
	if (bt_perf_sysfs__u64(m->sysfs, "intel_pt", "caps/mtc", 16, &v) == 0 && v &&
	    bt_perf_sysfs__u64(m->sysfs, "intel_pt", "caps/mtc_periods", 16, &v) == 0)
		say_more(c, ": mtc periods %#llx", (unsigned long long)v);
	if (bt_perf_sysfs__u64(m->sysfs, "intel_pt", "caps/psb_cyc", 16, &v) == 0 && v)
		say_more(c, ", cyc");
	if (bt_perf_sysfs__u64(m->sysfs, "intel_pt", "caps/psb_periods", 16, &v) == 0)
		say_more(c, ", psb periods %#llx", (unsigned long long)v);
	if (bt_perf_sysfs__u64(m->sysfs, "intel_pt", "caps/num_address_ranges",
			       16, &v) == 0)
		say_more(c, ", %llu address filters", (unsigned long long)v);
	if (o->no_open)
		say_more(c, " (not opened)");
	say_paranoia(c, m);
}

/* ---- intel_bts and its fallback ---------------------------------------------------- */

static void bts_missing(char *buf, size_t len, const struct machine *m)
{
	char desc[128];

	cpu_desc(m, desc, sizeof(desc));
	if (m->cpuinfo && !is_intel(m))
		fmt(buf, len, "no intel_bts PMU: CPU is %s, BTS is "
			 "Intel-only%s%s", desc, m->hypervisor ? "; " : "",
			 m->hypervisor ? vm_words : "");
	else if (m->meltdown_pti || m->flag_pti)
		snprintf(buf, len, "no intel_bts PMU: the kernel disables it "
			 "under page-table isolation (meltdown: Mitigation: PTI)");
	else if (m->hypervisor)
		snprintf(buf, len, "no intel_bts PMU: %s", vm_words);
	else
		snprintf(buf, len, "no intel_bts PMU: this kernel has none "
			 "(CONFIG_CPU_SUP_INTEL) for CPU %s", desc);
}

static void probe_bts(struct bt_cap *c, const struct machine *m,
		      const struct bt_caps_opts *o, const struct bt_perf_sys *sys)
{
	struct perf_event_attr attr;
	char missing[200];
	bool fallback;
	uint64_t type = 0;
	int err;

	if (bt_perf_sysfs__has_pmu(m->sysfs, "intel_bts")) {
		if (bt_perf_sysfs__u64(m->sysfs, "intel_bts", "type", 10, &type)) {
			say(c, "the intel_bts PMU has no readable type file");
			return;
		}
		if (paranoia_refuses(c, m, "intel_bts"))
			return;
		bt_perf_attr__bts(m->sysfs, NULL, &attr, &fallback);
		if (!o->no_open && (err = try_open(sys, &attr))) {
			say_open_failed(c, m, "intel_bts", err, type, true);
			return;
		}
		c->present = true;
		say(c, "intel_bts PMU type %llu: raw 24-byte branch records in "
		    "AUX%s", (unsigned long long)type,
		    o->no_open ? " (not opened)" : "");
		say_paranoia(c, m);
		return;
	}

	bts_missing(missing, sizeof(missing), m);
	if (!m->core) {
		char prefix[220];

		snprintf(prefix, sizeof(prefix), "%.160s; fallback: ", missing);
		say_no_hw_pmu(c, m, prefix);
		return;
	}
	if (paranoia_refuses(c, m, "branch-instructions (intel_bts fallback)"))
		return;
	bt_perf_attr__bts(m->sysfs, NULL, &attr, &fallback);
	if (!o->no_open && (err = try_open(sys, &attr))) {
		if (err == -ENOENT || err == -EOPNOTSUPP)
			say(c, "%.140s; fallback: no hardware PMU: "
			    "branch-instructions cannot be opened (%s)",
			    missing, err_name(err));
		else
			say_open_failed(c, m, "branch-instructions at period 1",
					err, 0, false);
		return;
	}
	c->present = true;
	say(c, "branch-instructions at period 1 as samples (from = IP, "
	    "to = ADDR)%s; %.150s", o->no_open ? " (not opened)" : "",
	    missing);
	say_paranoia(c, m);
}

/* ---- PEBS ---------------------------------------------------------------------------- */

static void probe_pebs(struct bt_cap *c, const struct machine *m,
		       const struct bt_caps_opts *o, const struct bt_perf_sys *sys)
{
	struct perf_event_attr attr;
	char desc[128];
	int precise, err = 0;
	uint64_t v;

	if (!m->core) {
		say_no_hw_pmu(c, m, "");
		return;
	}
	if (m->cpuinfo && !is_intel(m)) {
		cpu_desc(m, desc, sizeof(desc));
		say(c, "PEBS is Intel-only: CPU is %s", desc);
		return;
	}
	if (bt_perf_sysfs__u64(m->sysfs, m->core, "caps/max_precise", 10, &v) == 0 &&
	    v == 0) {
		say(c, "the %s PMU has no precise sampling (caps/max_precise 0)%s%s",
		    m->core, m->hypervisor ? "; " : "",
		    m->hypervisor ? vm_words : "");
		return;
	}
	if (paranoia_refuses(c, m, "PEBS"))
		return;
	precise = bt_perf_max_precise(m->sysfs);
	if (!o->no_open) {
		for (; precise >= 1; precise--) {
			bt_perf_attr__pebs(m->sysfs, NULL, precise, &attr);
			err = try_open(sys, &attr);
			if (err != -EOPNOTSUPP && err != -EINVAL)
				break;
		}
		if (err == -ENOENT) {
			say(c, "no hardware PMU: branch-instructions cannot be "
			    "opened (ENOENT)%s%s", m->hypervisor ? "; " : "",
			    m->hypervisor ? vm_words : "");
			return;
		}
		if (err) {
			say_open_failed(c, m, "precise branch-instructions "
					"samples", err, 0, false);
			return;
		}
	}
	c->present = true;
	say(c, "precise_ip %s%d samples on the %s PMU%s",
	    o->no_open ? "up to " : "", precise, m->core,
	    o->no_open ? " (not opened)" : "");
	say_paranoia(c, m);
}

/* ---- LBR ------------------------------------------------------------------------------- */

static void probe_lbr(struct bt_cap *c, const struct machine *m,
		      const struct bt_caps_opts *o, const struct bt_perf_sys *sys)
{
	struct perf_event_attr attr;
	char desc[128];
	uint64_t depth = 0;
	bool have_depth;
	int err;

	if (!m->core) {
		say_no_hw_pmu(c, m, "");
		return;
	}
	if (m->cpuinfo && !is_intel(m) && !(is_amd(m) && m->flag_amd_lbr_v2)) {
		cpu_desc(m, desc, sizeof(desc));
		say(c, "no LBR: CPU is %s; LBR needs Intel, or AMD Zen 4 and "
		    "later (amd_lbr_v2 flag)%s%s", desc,
		    m->hypervisor ? "; " : "", m->hypervisor ? vm_words : "");
		return;
	}
	have_depth = bt_perf_sysfs__u64(m->sysfs, m->core, "caps/branches", 10,
					&depth) == 0;
	if (have_depth && depth == 0) {
		say(c, "the %s PMU has no LBR (caps/branches 0)%s%s", m->core,
		    m->hypervisor ? "; " : "", m->hypervisor ? vm_words : "");
		return;
	}
	if (paranoia_refuses(c, m, "LBR"))
		return;
	bt_perf_attr__lbr(NULL, &attr);
	if (!o->no_open && (err = try_open(sys, &attr))) {
		if (err == -ENOENT)
			say(c, "no hardware PMU: cycles cannot be opened "
			    "(ENOENT)%s%s", m->hypervisor ? "; " : "",
			    m->hypervisor ? vm_words : "");
		else
			say_open_failed(c, m, "branch-stack samples", err, 0,
					false);
		return;
	}
	c->present = true;
	if (have_depth)
		say(c, "%llu-entry LBR: branch-stack samples of cycles",
		    (unsigned long long)depth);
	else
		say(c, "branch-stack samples of cycles");
	if (o->no_open)
		say_more(c, " (not opened)");
	say_paranoia(c, m);
}

/* ---- step and pt-emu -------------------------------------------------------------------- */

/* 0 when a forked child can PTRACE_TRACEME, else the errno it got. */
static int traceme_works(void)
{
	pid_t pid;
	int status;

	pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0) {
		/* Only async-signal-safe calls: the parent may have threads. */
		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0)
			_exit(errno > 0 && errno < 126 ? errno : 125);
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return errno;
	}
	if (!WIFEXITED(status))
		return ECHILD;
	return WEXITSTATUS(status);
}

static void probe_ptrace(struct bt_cap *step, struct bt_cap *ptemu,
			 const struct machine *m)
{
	struct bt_cap c = { 0 };
	int err;

	if (m->ptrace_scope >= 3) {
		say(&c, "ptrace is off: kernel.yama.ptrace_scope is %d (no "
		    "process may ptrace until reboot)", m->ptrace_scope);
	} else if (m->ptrace_scope == 2 && !m->sys_ptrace) {
		say(&c, "ptrace needs CAP_SYS_PTRACE: kernel.yama.ptrace_scope "
		    "is 2 and this process lacks it");
	} else if ((err = traceme_works())) {
		say(&c, "PTRACE_TRACEME fails in a child (%s): ptrace is "
		    "blocked here (seccomp, a container or an LSM)",
		    err_name(err));
	} else {
		c.present = true;
	}
	*step = c;
	*ptemu = c;
	if (!c.present)
		return;
	say(step, "software facility: ptrace single-step (slow: the tracee "
	    "stops at every instruction); taken branches as BTS records");
	say(ptemu, "software facility: ptrace single-step encoded as Intel PT "
	    "packets by libipt (slow: the tracee stops at every instruction)");
	if (m->ptrace_scope == 1 && !m->sys_ptrace) {
		say_more(step, "; -p needs CAP_SYS_PTRACE (ptrace_scope 1)");
		say_more(ptemu, "; -p needs CAP_SYS_PTRACE (ptrace_scope 1)");
	}
}

/* ---- The probe ------------------------------------------------------------------------------ */

int bt_caps__probe_sys(struct bt_cap *caps, const struct bt_caps_opts *opts,
		       const struct bt_perf_sys *sys)
{
	struct bt_caps_opts o;
	struct machine m;

	if (!caps || !sys || bt_opts_copy(&o, sizeof(o), opts))
		return -EINVAL;
	memset(caps, 0, sizeof(*caps) * BT_FAC__COUNT);
	machine_probe(&m, o.sysfs ? o.sysfs : "/sys",
		      o.procfs ? o.procfs : "/proc");
	probe_pt(&caps[BT_FAC_PT], &m, &o, sys);
	probe_bts(&caps[BT_FAC_BTS], &m, &o, sys);
	probe_pebs(&caps[BT_FAC_PEBS], &m, &o, sys);
	probe_lbr(&caps[BT_FAC_LBR], &m, &o, sys);
	probe_ptrace(&caps[BT_FAC_STEP], &caps[BT_FAC_PTEMU], &m);
	for (int i = 0; i < BT_FAC__COUNT; i++)
		pr_debug("caps: %s %s: %s", bt_facility_name((uint32_t)i),
			 caps[i].present ? "present" : "absent",
			 caps[i].reason);
	return 0;
}

int bt_caps_probe(struct bt_cap *caps, const struct bt_caps_opts *opts)
{
	return bt_caps__probe_sys(caps, opts, &bt_perf_sys_real);
}
