// SPDX-License-Identifier: BSD-3-Clause
#include "helpers/fakefs.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ROOTS	16

static char *roots[MAX_ROOTS];
static int nroots;
static pid_t roots_pid;

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void remove_roots(void)
{
	if (getpid() != roots_pid)
		return;		/* a forked child: its parent cleans up */
	for (int i = 0; i < nroots; i++) {
		nftw(roots[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
		free(roots[i]);
	}
	nroots = 0;
}

char *tu_fake_root(const char *tag)
{
	char *root;

	cr_assert(nroots < MAX_ROOTS, "too many fake trees");
	cr_assert(asprintf(&root, "/tmp/bt-fake-%s-XXXXXX", tag) > 0);
	cr_assert(mkdtemp(root) != NULL, "mkdtemp: %s", strerror(errno));
	if (nroots == 0) {
		roots_pid = getpid();
		atexit(remove_roots);
	}
	roots[nroots++] = root;
	return root;
}

/* mkdir -p of the directory part of @path. */
static void make_parents(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST,
			  "mkdir %s: %s", path, strerror(errno));
		*p = '/';
	}
}

void tu_fake_write(const char *root, const char *rel, const char *content)
{
	char path[4096];
	size_t len = strlen(content);
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	make_parents(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0, "create %s: %s", path, strerror(errno));
	cr_assert(write(fd, content, len) == (ssize_t)len);
	close(fd);
}

void tu_fake_printf(const char *root, const char *rel, const char *fmt, ...)
{
	char *s;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	cr_assert(n >= 0);
	tu_fake_write(root, rel, s);
	free(s);
}

void tu_fake_symlink(const char *root, const char *rel, const char *target)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	make_parents(path);
	cr_assert(symlink(target, path) == 0, "symlink %s: %s", path,
		  strerror(errno));
}

void tu_fake_remove(const char *root, const char *rel)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	cr_assert(unlink(path) == 0, "unlink %s: %s", path, strerror(errno));
}

#define DEV	"bus/event_source/devices/"

void tu_fake_bare_sysfs(const char *sysfs)
{
	tu_fake_write(sysfs, DEV "software/type", "1\n");
	tu_fake_write(sysfs, DEV "tracepoint/type", "2\n");
	tu_fake_write(sysfs, DEV "breakpoint/type", "5\n");
	tu_fake_write(sysfs, "devices/system/cpu/vulnerabilities/meltdown",
		      "Not affected\n");
}

void tu_fake_skylake_sysfs(const char *sysfs, unsigned pt_type)
{
	/*
	 * arch/x86/events/intel/pt.c prints each cap with "%x\n"; these are
	 * a Skylake client's CPUID leaf 0x14 values.
	 */
	static const char *const caps[][2] = {
		{ "cr3_filtering", "1" },
		{ "cycle_thresholds", "3fff" },
		{ "ip_filtering", "1" },
		{ "max_subleaf", "1" },
		{ "mtc", "1" },
		{ "mtc_periods", "249" },
		{ "num_address_ranges", "2" },
		{ "output_subsys", "0" },
		{ "payloads_lip", "0" },
		{ "power_event_trace", "0" },
		{ "psb_cyc", "1" },
		{ "psb_periods", "3f" },
		{ "ptwrite", "0" },
		{ "single_range_output", "1" },
		{ "topa_multiple_entries", "1" },
		{ "topa_output", "1" },
	};
	/* PMU_FORMAT_ATTR()s of the same driver. */
	static const char *const formats[][2] = {
		{ "pt", "config:0" },
		{ "cyc", "config:1" },
		{ "pwr_evt", "config:4" },
		{ "fup_on_ptw", "config:5" },
		{ "mtc", "config:9" },
		{ "tsc", "config:10" },
		{ "noretcomp", "config:11" },
		{ "ptw", "config:12" },
		{ "branch", "config:13" },
		{ "mtc_period", "config:14-17" },
		{ "cyc_thresh", "config:19-22" },
		{ "psb_period", "config:24-27" },
		{ "event", "config:31" },
		{ "notnt", "config:55" },
	};
	char rel[256];

	tu_fake_bare_sysfs(sysfs);
	tu_fake_printf(sysfs, DEV "intel_pt/type", "%u\n", pt_type);
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		snprintf(rel, sizeof(rel), DEV "intel_pt/caps/%s", caps[i][0]);
		tu_fake_printf(sysfs, rel, "%s\n", caps[i][1]);
	}
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		snprintf(rel, sizeof(rel), DEV "intel_pt/format/%s", formats[i][0]);
		tu_fake_printf(sysfs, rel, "%s\n", formats[i][1]);
	}
	tu_fake_write(sysfs, DEV "intel_pt/max_nonturbo_ratio", "34\n");
	tu_fake_write(sysfs, DEV "intel_pt/tsc_art_ratio", "2:216\n");
	tu_fake_write(sysfs, DEV "intel_pt/perf_event_mux_interval_ms", "0\n");

	tu_fake_printf(sysfs, DEV "intel_bts/type", "%u\n", pt_type + 1);
	tu_fake_write(sysfs, DEV "intel_bts/perf_event_mux_interval_ms", "0\n");

	tu_fake_write(sysfs, DEV "cpu/type", "4\n");
	tu_fake_write(sysfs, DEV "cpu/caps/max_precise", "3\n");
	tu_fake_write(sysfs, DEV "cpu/caps/branches", "32\n");
	tu_fake_write(sysfs, DEV "cpu/caps/pmu_name", "skylake\n");
	tu_fake_write(sysfs, DEV "cpu/format/event", "config:0-7\n");
	tu_fake_write(sysfs, DEV "cpu/format/umask", "config:8-15\n");
	tu_fake_write(sysfs, "devices/system/cpu/vulnerabilities/meltdown",
		      "Not affected\n");
}

const char tu_flags_skylake[] =
	"fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat "
	"pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx "
	"pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good "
	"nopl xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 "
	"monitor ds_cpl vmx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid sse4_1 "
	"sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c "
	"rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb invpcid_single "
	"ssbd ibrs ibpb stibp tpr_shadow flexpriority ept vpid ept_ad "
	"fsgsbase tsc_adjust bmi1 hle avx2 smep bmi2 erms invpcid rtm mpx "
	"rdseed adx smap clflushopt intel_pt xsaveopt xsavec xgetbv1 xsaves "
	"dtherm ida arat pln pts hwp hwp_notify hwp_act_window hwp_epp "
	"md_clear flush_l1d arch_capabilities";

const char tu_flags_epyc_vm[] =
	"fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat "
	"pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt "
	"pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc "
	"cpuid extd_apicid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid "
	"sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx "
	"f16c rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a "
	"misalignsse 3dnowprefetch osvw topoext vmmcall fsgsbase tsc_adjust "
	"bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb "
	"sha_ni xsaveopt xsavec xgetbv1 xsaves clzero xsaveerptr arat umip "
	"vaes vpclmulqdq rdpid fsrm";

void tu_fake_procfs(const char *procfs, const char *vendor, int family,
		    int model, const char *name, const char *flags,
		    uint64_t cap_eff, int paranoid)
{
	char *info = NULL, *one;

	for (int cpu = 0; cpu < 2; cpu++) {
		cr_assert(asprintf(&one,
			"processor\t: %d\n"
			"vendor_id\t: %s\n"
			"cpu family\t: %d\n"
			"model\t\t: %d\n"
			"model name\t: %s\n"
			"stepping\t: 3\n"
			"microcode\t: 0xf0\n"
			"cpu MHz\t\t: 3400.000\n"
			"flags\t\t: %s\n"
			"bugs\t\t: spectre_v1 spectre_v2\n"
			"\n", cpu, vendor, family, model, name, flags) > 0);
		if (info) {
			char *both;

			cr_assert(asprintf(&both, "%s%s", info, one) > 0);
			free(info);
			free(one);
			info = both;
		} else {
			info = one;
		}
	}
	tu_fake_write(procfs, "cpuinfo", info);
	free(info);
	tu_fake_printf(procfs, "self/status",
		       "Name:\tbtrail\nUmask:\t0022\nState:\tR (running)\n"
		       "CapInh:\t0000000000000000\nCapPrm:\t%016llx\n"
		       "CapEff:\t%016llx\nCapBnd:\t000001ffffffffff\n",
		       (unsigned long long)cap_eff,
		       (unsigned long long)cap_eff);
	tu_fake_printf(procfs, "sys/kernel/perf_event_paranoid", "%d\n",
		       paranoid);
}
