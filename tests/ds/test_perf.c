// SPDX-License-Identifier: BSD-3-Clause
/*
 * The perf backend: format/ files parsed and applied bit by bit, the
 * perf_event_attr of every facility built from fake sysfs trees (a
 * Skylake's intel_pt checked against the attr perf itself recorded on
 * one), the open/map/enable/filter paths against a stand-in kernel, perf's
 * filter syntax resolved against a real binary, the data ring reader
 * against hostile rings, and, for real on this machine, the sideband of a
 * child process that execs a program. The hardware facilities are opened
 * for real only where caps says they exist.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <btrail/ds.h>

#include "ds/caps.h"
#include "ds/perf.h"
#include "ds/perf_ring.h"
#include "ds/pmu.h"
#include "helpers/fakefs.h"
#include "helpers/testutil.h"

#define PAGE	4096ull

/* The intel_pt config perf 4.14 chose on a Skylake: tsc,mtc,mtc_period=3,
 * psb_period=3,pt,branch (bits 10, 9, 14-17, 24-27, 0, 13). */
#define SKYLAKE_PERF_CONFIG	0x300e601ull

/* ---- A stand-in kernel -------------------------------------------------- */

#define FAKE_MAX	16

static struct fake {
	int opens;
	struct perf_event_attr attr[FAKE_MAX];
	pid_t pid[FAKE_MAX];
	int cpu[FAKE_MAX];
	unsigned long flags[FAKE_MAX];
	/* The answer to open number i (0: a new fd). */
	int answer[FAKE_MAX];
	int ioctls;
	unsigned long req[FAKE_MAX];
	char filter[1024];
	int mmaps;
	size_t mmap_len[FAKE_MAX];
	int mmap_prot[FAKE_MAX];
	off_t mmap_off[FAKE_MAX];
	uint64_t aux_offset_seen, aux_size_seen;
	int fail_mmap_at;		/* mmap number (1-based) that fails */
	int munmaps, closes;
} fk;

static int fake_open(struct perf_event_attr *attr, pid_t pid, int cpu,
		     int group_fd, unsigned long flags)
{
	int i = fk.opens++;

	(void)group_fd;
	cr_assert(lt(int, i, FAKE_MAX));
	fk.attr[i] = *attr;
	fk.pid[i] = pid;
	fk.cpu[i] = cpu;
	fk.flags[i] = flags;
	return fk.answer[i] ? fk.answer[i] : 100 + i;
}

static int fake_ioctl(int fd, unsigned long req, unsigned long arg)
{
	int i = fk.ioctls++;

	cr_assert(ge(int, fd, 100));
	cr_assert(lt(int, i, FAKE_MAX));
	fk.req[i] = req;
	if (req == PERF_EVENT_IOC_SET_FILTER)
		snprintf(fk.filter, sizeof(fk.filter), "%s", (const char *)arg);
	return 0;
}

static void *fake_mmap(void *addr, size_t len, int prot, int flags, int fd,
		       off_t off)
{
	int i = fk.mmaps++;

	(void)addr;
	(void)flags;
	cr_assert(ge(int, fd, 100));
	cr_assert(lt(int, i, FAKE_MAX));
	fk.mmap_len[i] = len;
	fk.mmap_prot[i] = prot;
	fk.mmap_off[i] = off;
	if (fk.fail_mmap_at == i + 1) {
		errno = EPERM;		/* as the kernel over the mlock limit */
		return MAP_FAILED;
	}
	return mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

/* The AUX mmap: what the first page said when it was made. */
static void *fake_mmap_aux(void *addr, size_t len, int prot, int flags, int fd,
			   off_t off)
{
	return fake_mmap(addr, len, prot, flags, fd, off);
}

static int fake_munmap(void *addr, size_t len)
{
	fk.munmaps++;
	return munmap(addr, len) ? -errno : 0;
}

static int fake_close(int fd)
{
	cr_assert(ge(int, fd, 100));
	fk.closes++;
	return 0;
}

static const struct bt_perf_sys fake_sys = {
	.open = fake_open,
	.ioctl = fake_ioctl,
	.mmap = fake_mmap_aux,
	.munmap = fake_munmap,
	.close = fake_close,
};

/* Record aux_offset/aux_size as the page holds them at the AUX mmap. */
static struct perf_event_mmap_page *fake_page;

static void *fake_mmap_watch(void *addr, size_t len, int prot, int flags,
			     int fd, off_t off)
{
	void *p;

	if (off != 0 && fake_page) {
		fk.aux_offset_seen = fake_page->aux_offset;
		fk.aux_size_seen = fake_page->aux_size;
	}
	p = fake_mmap(addr, len, prot, flags, fd, off);
	if (off == 0 && p != MAP_FAILED)
		fake_page = p;
	return p;
}

static const struct bt_perf_sys watch_sys = {
	.open = fake_open,
	.ioctl = fake_ioctl,
	.mmap = fake_mmap_watch,
	.munmap = fake_munmap,
	.close = fake_close,
};

/* ---- Helpers -------------------------------------------------------------- */

static char *skylake(void)
{
	char *root = tu_fake_root("sysfs");

	tu_fake_skylake_sysfs(root, 6);
	return root;
}

static struct bt_pmu *fake_pmu(const char *sysfs, const struct bt_perf_sys *sys)
{
	struct bt_perf_opts o = { .sz = sizeof(o), .sysfs = sysfs };
	struct bt_pmu *pmu = bt_pmu__new_perf_sys(&o, sys);

	cr_assert(ne(ptr, pmu, NULL));
	return pmu;
}

static struct bt_pmu_event *open_fac(struct bt_pmu *pmu, uint32_t fac,
				     const struct bt_trace_config *cfg, int *err)
{
	struct bt_pmu_open_args a = {
		.sz = sizeof(a),
		.facility = fac,
		.target = { BT_TARGET_TASK, 1234 },
		.config = cfg,
	};
	struct bt_pmu_event *ev = NULL;

	*err = bt_pmu__ops(pmu)->open(pmu, &a, &ev);
	return ev;
}

/* The config word bits of term @name as Skylake's format files place it. */
#define BIT(n)	(1ull << (n))

/* ---- format/ files ------------------------------------------------------- */

Test(perf, format_files_parse_into_word_and_bits)
{
	struct bt_perf_format f;

	cr_assert(eq(int, bt_perf_format__parse("config:0", &f), 0));
	cr_assert(eq(u8, f.word, 0));
	cr_assert(eq(u64, f.mask, 1));
	cr_assert(eq(int, bt_perf_format__parse("config:14-17\n", &f), 0));
	cr_assert(eq(u64, f.mask, 0x3c000));
	cr_assert(eq(u32, bt_perf_format__width(&f), 4));
	cr_assert(eq(int, bt_perf_format__parse("config1:0-7,32-35", &f), 0));
	cr_assert(eq(u8, f.word, 1));
	cr_assert(eq(u64, f.mask, 0xf000000ffull));
	cr_assert(eq(int, bt_perf_format__parse("config2:63", &f), 0));
	cr_assert(eq(u8, f.word, 2));
	cr_assert(eq(u64, f.mask, BIT(63)));
	cr_assert(eq(int, bt_perf_format__parse("config:0-63", &f), 0));
	cr_assert(eq(u64, f.mask, ~0ull));
}

Test(perf, malformed_format_files_are_rejected)
{
	static const char *const bad[] = {
		"", "config", "config:", "config:x", "config:17-14",
		"config:64", "config:1-", "conf:1", "config:1 ", "config:1,",
		"config3:1", "config:0001", "config:-1", "config:1-2-3",
		"Config:1", "config:1\nconfig:2", "config1:", "config:1,,2",
	};
	struct bt_perf_format f = { .word = 7, .mask = 0xabc };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert(eq(int, bt_perf_format__parse(bad[i], &f), -EINVAL),
			  "'%s' was accepted", bad[i]);
	cr_assert(eq(u8, f.word, 7));	/* untouched on error */
	cr_assert(eq(int, bt_perf_format__parse(NULL, &f), -EINVAL));
}

Test(perf, values_fill_the_lowest_format_bits_first)
{
	struct perf_event_attr a;
	struct bt_perf_format f;

	memset(&a, 0, sizeof(a));
	cr_assert(eq(int, bt_perf_format__parse("config1:32-35,0-7", &f), 0));
	a.config1 = 0xffffffff00000000ull;	/* other terms' bits stay */
	cr_assert(eq(int, bt_perf_format__set(&f, &a, 0x5ab), 0));
	/* 0xab into bits 0-7, the rest (0x5) into 32-35 */
	cr_assert(eq(u64, a.config1, 0xfffffff5000000abull));
	cr_assert(eq(u64, bt_perf_format__get(&f, &a), 0x5ab));
	cr_assert(eq(u64, a.config, 0));
	cr_assert(eq(int, bt_perf_format__set(&f, &a, 0x1000), -ERANGE));
	cr_assert(eq(u64, a.config1, 0xfffffff5000000abull));
	cr_assert(eq(int, bt_perf_format__set(&f, &a, 0), 0));
	cr_assert(eq(u64, a.config1, 0xfffffff000000000ull));
}

/* ---- intel_pt ------------------------------------------------------------- */

/* The intel_pt attr in perf.data (the first attr of the file's attr section). */
static int recorded_pt_attr(struct perf_event_attr *out)
{
	const char *src = getenv("BTRAIL_SRCDIR");
	char path[PATH_MAX];
	unsigned char hdr[104];
	uint64_t attr_size, off;
	FILE *f;
	int ok = 0;

	snprintf(path, sizeof(path), "%s/../shared/testdata/perfdata/"
		 "perf.data.intel_pt-4.14", src ? src : ".");
	f = fopen(path, "rb");
	if (!f)
		return -ENOENT;
	if (fread(hdr, 1, sizeof(hdr), f) == sizeof(hdr) &&
	    !memcmp(hdr, "PERFILE2", 8)) {
		memcpy(&attr_size, hdr + 16, 8);
		memcpy(&off, hdr + 24, 8);
		memset(out, 0, sizeof(*out));
		if (attr_size >= 64 && fseek(f, (long)off, SEEK_SET) == 0 &&
		    fread(out, 1, 64, f) == 64)
			ok = 1;
	}
	fclose(f);
	return ok ? 0 : -EINVAL;
}

Test(perf, default_pt_config_is_what_perf_chose_on_skylake)
{
	struct perf_event_attr a, rec;
	char *sysfs = skylake();

	cr_assert(eq(int, bt_perf_attr__pt(sysfs, NULL, &a), 0));
	cr_assert(eq(u32, a.type, 6));
	cr_assert(eq(u64, a.config, SKYLAKE_PERF_CONFIG),
		  "config %#llx", (unsigned long long)a.config);
	cr_assert(eq(u64, a.config1, 0));
	cr_assert(eq(u64, a.config2, 0));
	cr_assert(eq(u32, a.size, sizeof(a)));
	cr_assert(eq(int, a.disabled, 1));
	cr_assert(eq(int, a.exclude_user, 0));
	cr_assert(eq(int, a.exclude_kernel, 1));
	cr_assert(eq(int, a.exclude_hv, 1));
	cr_assert(eq(int, a.freq, 0));
	cr_assert(eq(u64, a.sample_period, 1));
	cr_assert(eq(int, a.sample_id_all, 1));
	cr_assert(eq(u64, a.sample_type, BT_PERF_SAMPLE_ID));

	/* The same machine kind, as perf record -e intel_pt// wrote it down. */
	if (recorded_pt_attr(&rec) == 0) {
		cr_assert(eq(u32, rec.type, 6));
		cr_assert(eq(u64, a.config, rec.config));
		cr_assert(eq(u64, a.sample_period, rec.sample_period));
	}
}

Test(perf, pt_terms_land_where_the_format_files_say)
{
	char *sysfs = tu_fake_root("sysfs");
	struct bt_trace_config cfg = {
		.sz = sizeof(cfg), .tsc = true, .mtc = true, .mtc_period = 6,
		.noretcomp = true,
	};
	struct perf_event_attr a;

	/* A made-up layout: only the format files can tell where terms go. */
	tu_fake_write(sysfs, "bus/event_source/devices/intel_pt/type", "42\n");
	tu_fake_write(sysfs, "bus/event_source/devices/intel_pt/caps/mtc", "1\n");
	tu_fake_write(sysfs, "bus/event_source/devices/intel_pt/caps/mtc_periods", "ffff\n");
	tu_fake_write(sysfs, "bus/event_source/devices/intel_pt/format/pt", "config:0\n");
	tu_fake_write(sysfs, "bus/event_source/devices/intel_pt/format/branch", "config:40\n");
	tu_fake_write(sysfs, "bus/event_source/devices/intel_pt/format/tsc", "config:20\n");
	tu_fake_write(sysfs, "bus/event_source/devices/intel_pt/format/mtc", "config1:3\n");
	tu_fake_write(sysfs, "bus/event_source/devices/intel_pt/format/mtc_period", "config2:4-5,60-61\n");
	tu_fake_write(sysfs, "bus/event_source/devices/intel_pt/format/noretcomp", "config:33\n");

	cr_assert(eq(int, bt_perf_attr__pt(sysfs, &cfg, &a), 0));
	cr_assert(eq(u32, a.type, 42));
	cr_assert(eq(u64, a.config, BIT(0) | BIT(40) | BIT(20) | BIT(33)));
	cr_assert(eq(u64, a.config1, BIT(3)));
	/* 6 = 0b110: bit 1 of the value to bit 5, bit 2 to bit 60 */
	cr_assert(eq(u64, a.config2, BIT(5) | BIT(60)));
}

Test(perf, pt_user_config_sets_each_term_bit_by_bit)
{
	char *sysfs = skylake();
	struct bt_trace_config cfg = {
		.sz = sizeof(cfg), .kernel = true, .tsc = true, .mtc = true,
		.mtc_period = 6, .cyc = true, .cyc_thresh = 2,
		.noretcomp = true, .no_branch = true, .psb_period = 5,
	};
	struct perf_event_attr a;

	cr_assert(eq(int, bt_perf_attr__pt(sysfs, &cfg, &a), 0));
	cr_assert(eq(u64, a.config,
		     BIT(0) | BIT(1) | BIT(9) | BIT(10) | BIT(11) |
		     (6ull << 14) | (2ull << 19) | (5ull << 24)),
		  "config %#llx", (unsigned long long)a.config);
	cr_assert(eq(int, a.exclude_user, 1));
	cr_assert(eq(int, a.exclude_kernel, 0));

	cfg.user = true;
	cfg.no_branch = false;
	cfg.tsc = cfg.mtc = cfg.cyc = cfg.noretcomp = false;
	cfg.cyc_thresh = cfg.psb_period = 0;
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, &cfg, &a), 0));
	cr_assert(eq(u64, a.config, BIT(0) | BIT(13)));
	cr_assert(eq(int, a.exclude_user, 0));
	cr_assert(eq(int, a.exclude_kernel, 0));
}

Test(perf, pt_values_the_caps_forbid_are_refused)
{
	char *sysfs = skylake();
	struct bt_trace_config cfg = { .sz = sizeof(cfg) };
	struct perf_event_attr a;

	tu_log_capture();
	cfg.mtc = true;
	cfg.mtc_period = 5;		/* mtc_periods 0x249: 0, 3, 6, 9 */
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, &cfg, &a), -EINVAL));
	cr_assert(strstr(tu_log_text(), "mtc_period=5") != NULL, "%s", tu_log_text());
	cfg.mtc_period = 16;
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, &cfg, &a), -EINVAL));
	cfg.mtc_period = 9;
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, &cfg, &a), 0));
	cr_assert(eq(u64, a.config & (0xfull << 14), 9ull << 14));

	cfg.cyc = true;
	cfg.cyc_thresh = 14;		/* cycle_thresholds 0x3fff: 0..13 */
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, &cfg, &a), -EINVAL));
	cfg.cyc_thresh = 13;
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, &cfg, &a), 0));
	cfg.psb_period = 6;		/* psb_periods 0x3f: 0..5 */
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, &cfg, &a), -EINVAL));
}

Test(perf, pt_features_the_caps_lack_are_left_out_and_logged)
{
	char *sysfs = skylake();
	struct bt_trace_config cfg = {
		.sz = sizeof(cfg), .tsc = true, .mtc = true, .mtc_period = 3,
		.cyc = true, .psb_period = 3,
	};
	struct perf_event_attr a;

	tu_fake_write(sysfs, "bus/event_source/devices/intel_pt/caps/mtc", "0\n");
	tu_fake_write(sysfs, "bus/event_source/devices/intel_pt/caps/psb_cyc", "0\n");
	tu_log_capture();
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, &cfg, &a), 0));
	cr_assert(eq(u64, a.config, BIT(0) | BIT(10) | BIT(13)));
	cr_assert(strstr(tu_log_text(), "no MTC") != NULL, "%s", tu_log_text());
	cr_assert(strstr(tu_log_text(), "psb_cyc") != NULL, "%s", tu_log_text());

	/* perf's default leaves them out too, and says nothing of it. */
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, NULL, &a), 0));
	cr_assert(eq(u64, a.config, BIT(0) | BIT(10) | BIT(13)));
}

Test(perf, pt_without_the_pt_term_keeps_branches_on)
{
	char *sysfs = skylake();
	struct bt_trace_config cfg = { .sz = sizeof(cfg), .no_branch = true };
	struct perf_event_attr a;

	/* Kernels before 4.9 had no pt term: branch only with pt=1. */
	tu_fake_remove(sysfs, "bus/event_source/devices/intel_pt/format/pt");
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, &cfg, &a), -EOPNOTSUPP));
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, NULL, &a), 0));
	cr_assert(eq(u64, a.config & (BIT(0) | BIT(13)), 0));
	cr_assert(eq(u64, a.config, SKYLAKE_PERF_CONFIG & ~(BIT(0) | BIT(13))));
}

Test(perf, pt_without_pmu_or_with_bad_config_size_fails)
{
	char *sysfs = tu_fake_root("sysfs");
	struct bt_trace_config cfg = { .sz = 3 };
	struct {
		struct bt_trace_config c;
		uint64_t future;
	} big = { .c = { .sz = sizeof(big) }, .future = 1 };
	struct perf_event_attr a;

	tu_fake_bare_sysfs(sysfs);
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, NULL, &a), -ENOENT));
	sysfs = skylake();
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, &cfg, &a), -EINVAL));
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, &big.c, &a), -EINVAL));
	big.future = 0;			/* a newer caller's zero tail is fine */
	cr_assert(eq(int, bt_perf_attr__pt(sysfs, &big.c, &a), 0));
}

/* ---- intel_bts, PEBS, LBR, sideband --------------------------------------- */

Test(perf, bts_uses_the_intel_bts_pmu)
{
	char *sysfs = skylake();
	struct perf_event_attr a;
	bool fallback = true;

	cr_assert(eq(int, bt_perf_attr__bts(sysfs, NULL, &a, &fallback), 0));
	cr_assert(not(fallback));
	cr_assert(eq(u32, a.type, 7));
	cr_assert(eq(u64, a.config, 0));
	cr_assert(eq(u64, a.sample_period, 1));
	cr_assert(eq(int, a.exclude_kernel, 1));
	cr_assert(eq(u64, a.sample_type, BT_PERF_SAMPLE_ID));
}

Test(perf, bts_falls_back_to_branch_instruction_samples)
{
	char *sysfs = skylake();
	struct bt_trace_config cfg = { .sz = sizeof(cfg), .kernel = true };
	struct perf_event_attr a;
	bool fallback = false;

	tu_fake_remove(sysfs, "bus/event_source/devices/intel_bts/type");
	cr_assert(eq(int, bt_perf_attr__bts(sysfs, &cfg, &a, &fallback), 0));
	cr_assert(fallback);
	cr_assert(eq(u32, a.type, PERF_TYPE_HARDWARE));
	cr_assert(eq(u64, a.config, PERF_COUNT_HW_BRANCH_INSTRUCTIONS));
	cr_assert(eq(u64, a.sample_period, 1));
	cr_assert(eq(int, a.freq, 0));
	cr_assert(eq(u64, a.sample_type,
		     PERF_SAMPLE_IP | PERF_SAMPLE_ADDR | BT_PERF_SAMPLE_ID));
	cr_assert(eq(int, a.exclude_kernel, 0));
	cr_assert(eq(int, a.exclude_user, 1));
}

Test(perf, pebs_samples_a_raw_event_of_the_core_pmu)
{
	char *sysfs = skylake();
	struct bt_trace_config cfg = {
		.sz = sizeof(cfg), .pebs_config = 0x1c4, .period = 1000,
	};
	struct perf_event_attr a;

	cr_assert(eq(int, bt_perf_attr__pebs(sysfs, &cfg, 2, &a), 0));
	cr_assert(eq(u32, a.type, 4));		/* cpu/type */
	cr_assert(eq(u64, a.config, 0x1c4));
	cr_assert(eq(u64, a.sample_period, 1000));
	cr_assert(eq(u32, a.precise_ip, 2));
	cr_assert(eq(u64, a.sample_type, PERF_SAMPLE_IP | PERF_SAMPLE_ADDR |
		     PERF_SAMPLE_PERIOD | BT_PERF_SAMPLE_ID));

	cr_assert(eq(int, bt_perf_attr__pebs(sysfs, NULL, 3, &a), 0));
	cr_assert(eq(u32, a.type, PERF_TYPE_HARDWARE));
	cr_assert(eq(u64, a.config, PERF_COUNT_HW_BRANCH_INSTRUCTIONS));
	cr_assert(eq(u64, a.sample_period, BT_PERF_DEFAULT_PERIOD));
	cr_assert(eq(u32, a.precise_ip, 3));

	cr_assert(eq(int, bt_perf_attr__pebs(sysfs, NULL, 0, &a), -EINVAL));
	cr_assert(eq(int, bt_perf_attr__pebs(sysfs, NULL, 4, &a), -EINVAL));
	sysfs = tu_fake_root("sysfs");
	tu_fake_bare_sysfs(sysfs);
	cr_assert(eq(int, bt_perf_attr__pebs(sysfs, &cfg, 1, &a), -ENOENT));
}

Test(perf, pebs_open_steps_precise_ip_down_as_perf_does)
{
	char *sysfs = skylake();
	struct bt_pmu *pmu = fake_pmu(sysfs, &fake_sys);
	struct bt_pmu_event *ev;
	int err;

	memset(&fk, 0, sizeof(fk));
	fk.answer[0] = -EOPNOTSUPP;	/* precise_ip 3 */
	fk.answer[1] = -EINVAL;		/* precise_ip 2 */
	ev = open_fac(pmu, BT_FAC_PEBS, NULL, &err);
	cr_assert(eq(int, err, 0));
	cr_assert(eq(int, fk.opens, 3));
	cr_assert(eq(u32, fk.attr[0].precise_ip, 3));
	cr_assert(eq(u32, fk.attr[1].precise_ip, 2));
	cr_assert(eq(u32, fk.attr[2].precise_ip, 1));
	cr_assert(eq(u32, bt_perf_event__attr(ev)->precise_ip, 1));
	bt_pmu__ops(pmu)->close(pmu, ev);

	/* Another error is the answer; max_precise caps the first try. */
	memset(&fk, 0, sizeof(fk));
	tu_fake_write(sysfs, "bus/event_source/devices/cpu/caps/max_precise", "2\n");
	fk.answer[0] = -EACCES;
	ev = open_fac(pmu, BT_FAC_PEBS, NULL, &err);
	cr_assert(eq(int, err, -EACCES));
	cr_assert(eq(ptr, ev, NULL));
	cr_assert(eq(int, fk.opens, 1));
	cr_assert(eq(u32, fk.attr[0].precise_ip, 2));

	memset(&fk, 0, sizeof(fk));
	fk.answer[0] = fk.answer[1] = -EOPNOTSUPP;
	ev = open_fac(pmu, BT_FAC_PEBS, NULL, &err);
	cr_assert(eq(int, err, -EOPNOTSUPP));
	cr_assert(eq(int, fk.opens, 2));
	bt_pmu__free(pmu);
}

Test(perf, lbr_samples_carry_the_branch_stack)
{
	struct bt_trace_config cfg = { .sz = sizeof(cfg) };
	struct perf_event_attr a;

	cr_assert(eq(int, bt_perf_attr__lbr(NULL, &a), 0));
	cr_assert(eq(u32, a.type, PERF_TYPE_HARDWARE));
	cr_assert(eq(u64, a.config, PERF_COUNT_HW_CPU_CYCLES));
	cr_assert(eq(u64, a.sample_type & PERF_SAMPLE_BRANCH_STACK,
		     PERF_SAMPLE_BRANCH_STACK));
	cr_assert(eq(u64, a.branch_sample_type,
		     PERF_SAMPLE_BRANCH_ANY | PERF_SAMPLE_BRANCH_USER));
	cfg.kernel = true;
	cr_assert(eq(int, bt_perf_attr__lbr(&cfg, &a), 0));
	cr_assert(eq(u64, a.branch_sample_type,
		     PERF_SAMPLE_BRANCH_ANY | PERF_SAMPLE_BRANCH_KERNEL));
	cfg.user = true;
	cfg.branch_sample_type = PERF_SAMPLE_BRANCH_ANY_CALL;
	cr_assert(eq(int, bt_perf_attr__lbr(&cfg, &a), 0));
	cr_assert(eq(u64, a.branch_sample_type, PERF_SAMPLE_BRANCH_ANY_CALL |
		     PERF_SAMPLE_BRANCH_USER | PERF_SAMPLE_BRANCH_KERNEL));
	cfg.branch_sample_type = PERF_SAMPLE_BRANCH_ANY_RETURN |
				 PERF_SAMPLE_BRANCH_USER;
	cr_assert(eq(int, bt_perf_attr__lbr(&cfg, &a), 0));
	cr_assert(eq(u64, a.branch_sample_type, PERF_SAMPLE_BRANCH_ANY_RETURN |
		     PERF_SAMPLE_BRANCH_USER));
	cfg.period = 5000;
	cr_assert(eq(int, bt_perf_attr__lbr(&cfg, &a), 0));
	cr_assert(eq(u64, a.sample_period, 5000));
}

Test(perf, sideband_attr_asks_for_every_task_record)
{
	struct perf_event_attr a;

	bt_perf_attr__sideband(&a);
	cr_assert(eq(u32, a.type, PERF_TYPE_SOFTWARE));
	cr_assert(eq(u64, a.config, PERF_COUNT_SW_DUMMY));
	cr_assert(eq(int, a.mmap, 1));
	cr_assert(eq(int, a.mmap2, 1));
	cr_assert(eq(int, a.comm, 1));
	cr_assert(eq(int, a.comm_exec, 1));
	cr_assert(eq(int, a.task, 1));
	cr_assert(eq(int, a.context_switch, 1));
	cr_assert(eq(int, a.sample_id_all, 1));
	cr_assert(eq(u64, a.sample_type, PERF_SAMPLE_TID | PERF_SAMPLE_TIME |
		     PERF_SAMPLE_CPU | PERF_SAMPLE_IDENTIFIER));
	cr_assert(eq(int, a.disabled, 1));
}

/* ---- open, map, control against the stand-in kernel ----------------------- */

Test(perf, open_passes_targets_as_pid_and_cpu)
{
	char *sysfs = skylake();
	struct bt_pmu *pmu = fake_pmu(sysfs, &fake_sys);
	struct bt_pmu_open_args a = {
		.sz = sizeof(a), .facility = BT_FAC_PT,
		.target = { BT_TARGET_TASK, 4321 }, .enable_on_exec = true,
	};
	struct bt_pmu_event *ev1, *ev2;

	memset(&fk, 0, sizeof(fk));
	cr_assert(eq(str, (char *)bt_pmu__ops(pmu)->name, "perf"));
	cr_assert(eq(int, bt_pmu__ops(pmu)->open(pmu, &a, &ev1), 0));
	cr_assert(eq(int, fk.pid[0], 4321));
	cr_assert(eq(int, fk.cpu[0], -1));
	cr_assert(eq(u64, fk.flags[0], PERF_FLAG_FD_CLOEXEC));
	cr_assert(eq(int, fk.attr[0].enable_on_exec, 1));
	cr_assert(eq(u64, fk.attr[0].config, SKYLAKE_PERF_CONFIG));
	cr_assert(eq(int, bt_pmu__ops(pmu)->fd(pmu, ev1), 100));

	a.target = (struct bt_target){ BT_TARGET_CPU, 1 };
	a.sideband = true;		/* enable_on_exec means nothing for a CPU */
	cr_assert(eq(int, bt_pmu__ops(pmu)->open(pmu, &a, &ev2), 0));
	cr_assert(eq(int, fk.pid[1], -1));
	cr_assert(eq(int, fk.cpu[1], 1));
	cr_assert(eq(int, fk.attr[1].enable_on_exec, 0));
	cr_assert(eq(u64, fk.attr[1].config, PERF_COUNT_SW_DUMMY));

	bt_pmu__ops(pmu)->close(pmu, ev1);
	bt_pmu__ops(pmu)->close(pmu, ev2);
	cr_assert(eq(int, fk.closes, 2));
	bt_pmu__free(pmu);
}

Test(perf, open_rejects_bad_requests_before_the_kernel)
{
	char *sysfs = skylake();
	struct bt_pmu *pmu = fake_pmu(sysfs, &fake_sys);
	const struct bt_pmu_ops *ops = bt_pmu__ops(pmu);
	struct bt_pmu_open_args a = {
		.sz = sizeof(a), .facility = BT_FAC_PT,
		.target = { BT_TARGET_ALL, 0 },
	};
	struct bt_pmu_event *ev = (void *)1;

	memset(&fk, 0, sizeof(fk));
	cr_assert(eq(int, ops->open(pmu, NULL, &ev), -EINVAL));
	cr_assert(eq(ptr, ev, NULL));
	cr_assert(eq(int, ops->open(pmu, &a, NULL), -EINVAL));
	cr_assert(eq(int, ops->open(pmu, &a, &ev), -EINVAL));
	a.target = (struct bt_target){ BT_TARGET_TASK, -5 };
	cr_assert(eq(int, ops->open(pmu, &a, &ev), -EINVAL));
	a.target.id = 1;
	a.facility = BT_FAC__COUNT;
	cr_assert(eq(int, ops->open(pmu, &a, &ev), -EINVAL));
	a.facility = BT_FAC_STEP;
	cr_assert(eq(int, ops->open(pmu, &a, &ev), -EOPNOTSUPP));
	a.facility = BT_FAC_PTEMU;
	cr_assert(eq(int, ops->open(pmu, &a, &ev), -EOPNOTSUPP));
	a.facility = BT_FAC_PT;
	a.sz = 2;
	cr_assert(eq(int, ops->open(pmu, &a, &ev), -EINVAL));
	cr_assert(eq(int, fk.opens, 0));

	/* No PMU: refused without asking the kernel. */
	bt_pmu__free(pmu);
	sysfs = tu_fake_root("sysfs");
	tu_fake_bare_sysfs(sysfs);
	pmu = fake_pmu(sysfs, &fake_sys);
	a.sz = sizeof(a);
	cr_assert(eq(int, bt_pmu__ops(pmu)->open(pmu, &a, &ev), -ENOENT));
	cr_assert(eq(int, fk.opens, 0));
	bt_pmu__free(pmu);
}

Test(perf, open_returns_the_kernels_error)
{
	char *sysfs = skylake();
	struct bt_pmu *pmu = fake_pmu(sysfs, &fake_sys);
	struct bt_pmu_event *ev;
	int err;

	memset(&fk, 0, sizeof(fk));
	fk.answer[0] = -EBUSY;
	ev = open_fac(pmu, BT_FAC_PT, NULL, &err);
	cr_assert(eq(int, err, -EBUSY));
	cr_assert(eq(ptr, ev, NULL));
	cr_assert(eq(int, fk.closes, 0));
	bt_pmu__free(pmu);
}

Test(perf, bts_open_falls_back_without_intel_bts)
{
	char *sysfs = skylake();
	struct bt_pmu *pmu;
	struct bt_pmu_event *ev;
	struct bt_pmu_buffers b;
	int err;

	tu_fake_remove(sysfs, "bus/event_source/devices/intel_bts/type");
	pmu = fake_pmu(sysfs, &fake_sys);
	memset(&fk, 0, sizeof(fk));
	ev = open_fac(pmu, BT_FAC_BTS, NULL, &err);
	cr_assert(eq(int, err, 0));
	cr_assert(bt_perf_event__fallback(ev));
	cr_assert(eq(u64, fk.attr[0].config, PERF_COUNT_HW_BRANCH_INSTRUCTIONS));
	/* Samples go to the data ring: no AUX area, whatever was asked. */
	cr_assert(eq(int, bt_pmu__ops(pmu)->map(pmu, ev, 4 * PAGE, 64 * PAGE,
						false, &b), 0));
	cr_assert(eq(int, fk.mmaps, 1));
	cr_assert(eq(ptr, b.aux, NULL));
	cr_assert(eq(u64, b.data_size, 64 * PAGE));
	cr_assert(eq(u64, b.mapped, 65 * PAGE));
	bt_pmu__ops(pmu)->close(pmu, ev);
	bt_pmu__free(pmu);
}

static void check_aux_map(bool overwrite)
{
	char *sysfs = skylake();
	struct bt_pmu *pmu = fake_pmu(sysfs, &watch_sys);
	const struct bt_pmu_ops *ops = bt_pmu__ops(pmu);
	struct bt_pmu_event *ev;
	struct bt_pmu_buffers b;
	int err;

	memset(&fk, 0, sizeof(fk));
	fake_page = NULL;
	ev = open_fac(pmu, BT_FAC_PT, NULL, &err);
	cr_assert(eq(int, err, 0));
	cr_assert(eq(int, ops->map(pmu, ev, 8 * PAGE, 16 * PAGE, overwrite, &b), 0));
	cr_assert(eq(int, fk.mmaps, 2));
	cr_assert(eq(u64, fk.mmap_len[0], 9 * PAGE));
	cr_assert(eq(int, fk.mmap_prot[0], PROT_READ | PROT_WRITE));
	cr_assert(eq(i64, (int64_t)fk.mmap_off[0], 0));
	/* The kernel finds the AUX geometry in the page at the AUX mmap. */
	cr_assert(eq(u64, fk.aux_offset_seen, 9 * PAGE));
	cr_assert(eq(u64, fk.aux_size_seen, 16 * PAGE));
	cr_assert(eq(u64, fk.mmap_len[1], 16 * PAGE));
	cr_assert(eq(i64, (int64_t)fk.mmap_off[1], (int64_t)(9 * PAGE)));
	cr_assert(eq(int, fk.mmap_prot[1],
		     overwrite ? PROT_READ : PROT_READ | PROT_WRITE));
	cr_assert(eq(ptr, (void *)b.page, (void *)fake_page));
	cr_assert(eq(ptr, b.data, (unsigned char *)fake_page + PAGE));
	cr_assert(eq(u64, b.data_size, 8 * PAGE));
	cr_assert(ne(ptr, b.aux, NULL));
	cr_assert(eq(u64, b.aux_size, 16 * PAGE));
	cr_assert(eq(int, b.aux_overwrite, overwrite));
	cr_assert(eq(u64, b.mapped, 25 * PAGE));

	cr_assert(eq(int, ops->map(pmu, ev, 8 * PAGE, 16 * PAGE, overwrite, &b),
		     -EINVAL));		/* mapped already */
	cr_assert(eq(int, ops->unmap(pmu, ev), 0));
	cr_assert(eq(int, fk.munmaps, 2));
	ops->close(pmu, ev);
	cr_assert(eq(int, fk.munmaps, 2));
	bt_pmu__free(pmu);
}

Test(perf, stream_mode_maps_aux_writable_after_setting_its_geometry)
{
	check_aux_map(false);
}

Test(perf, snapshot_mode_maps_aux_read_only)
{
	check_aux_map(true);
}

Test(perf, map_rejects_sizes_that_are_not_powers_of_two)
{
	char *sysfs = skylake();
	struct bt_pmu *pmu = fake_pmu(sysfs, &fake_sys);
	const struct bt_pmu_ops *ops = bt_pmu__ops(pmu);
	struct bt_pmu_event *ev;
	struct bt_pmu_buffers b;
	int err;

	memset(&fk, 0, sizeof(fk));
	ev = open_fac(pmu, BT_FAC_PT, NULL, &err);
	cr_assert(eq(int, err, 0));
	cr_assert(eq(int, ops->map(pmu, ev, 0, 4 * PAGE, false, &b), -EINVAL));
	cr_assert(eq(int, ops->map(pmu, ev, 3 * PAGE, 4 * PAGE, false, &b), -EINVAL));
	cr_assert(eq(int, ops->map(pmu, ev, 4 * PAGE + 1, 4 * PAGE, false, &b), -EINVAL));
	cr_assert(eq(int, ops->map(pmu, ev, 4 * PAGE, 12 * PAGE, false, &b), -EINVAL));
	cr_assert(eq(int, ops->map(pmu, ev, 4 * PAGE, 100, false, &b), -EINVAL));
	cr_assert(eq(int, ops->map(pmu, ev, 4 * PAGE, 4 * PAGE, false, NULL), -EINVAL));
	cr_assert(eq(int, fk.mmaps, 0));
	ops->close(pmu, ev);
	bt_pmu__free(pmu);
}

Test(perf, failed_aux_map_undoes_the_data_map)
{
	char *sysfs = skylake();
	struct bt_pmu *pmu = fake_pmu(sysfs, &fake_sys);
	const struct bt_pmu_ops *ops = bt_pmu__ops(pmu);
	struct bt_pmu_event *ev;
	struct bt_pmu_buffers b;
	int err;

	memset(&fk, 0, sizeof(fk));
	fk.fail_mmap_at = 2;
	ev = open_fac(pmu, BT_FAC_PT, NULL, &err);
	cr_assert(eq(int, ops->map(pmu, ev, 4 * PAGE, 4 * PAGE, false, &b), -EPERM));
	cr_assert(eq(int, fk.munmaps, 1));
	fk.fail_mmap_at = 0;		/* and it can be mapped again */
	cr_assert(eq(int, ops->map(pmu, ev, 4 * PAGE, 4 * PAGE, false, &b), 0));
	ops->close(pmu, ev);
	cr_assert(eq(int, fk.munmaps, 3));
	bt_pmu__free(pmu);
}

Test(perf, enable_and_disable_are_ioctls)
{
	char *sysfs = skylake();
	struct bt_pmu *pmu = fake_pmu(sysfs, &fake_sys);
	const struct bt_pmu_ops *ops = bt_pmu__ops(pmu);
	struct bt_pmu_event *ev;
	int err;

	memset(&fk, 0, sizeof(fk));
	ev = open_fac(pmu, BT_FAC_LBR, NULL, &err);
	cr_assert(eq(int, ops->enable(pmu, ev, true), 0));
	cr_assert(eq(int, ops->enable(pmu, ev, false), 0));
	cr_assert(eq(int, fk.ioctls, 2));
	cr_assert(eq(u64, fk.req[0], PERF_EVENT_IOC_ENABLE));
	cr_assert(eq(u64, fk.req[1], PERF_EVENT_IOC_DISABLE));
	cr_assert(eq(int, ops->enable(pmu, NULL, true), -EINVAL));
	ops->close(pmu, ev);
	bt_pmu__free(pmu);
}

Test(perf, address_filters_reach_the_kernel_in_its_syntax)
{
	char *sysfs = skylake();
	struct bt_pmu *pmu = fake_pmu(sysfs, &fake_sys);
	const struct bt_pmu_ops *ops = bt_pmu__ops(pmu);
	struct bt_trace_config cfg = {
		.sz = sizeof(cfg), .filter = "filter 0x1000 / 0x200 @ /bin/sh",
	};
	char want[PATH_MAX + 64], real[PATH_MAX];
	struct bt_pmu_event *ev;
	int err;

	cr_assert(ne(ptr, realpath("/bin/sh", real), NULL));
	snprintf(want, sizeof(want), "filter 0x1000/0x200@%s", real);
	memset(&fk, 0, sizeof(fk));
	ev = open_fac(pmu, BT_FAC_PT, &cfg, &err);
	cr_assert(eq(int, err, 0));
	cr_assert(eq(int, fk.ioctls, 1));
	cr_assert(eq(u64, fk.req[0], PERF_EVENT_IOC_SET_FILTER));
	cr_assert(eq(str, fk.filter, want));

	cr_assert(eq(int, ops->set_filter(pmu, ev, "stop 0xffffffff81000000"), 0));
	cr_assert(eq(str, fk.filter, "stop 0xffffffff81000000"));
	cr_assert(eq(int, ops->set_filter(pmu, ev, "filter main"), -EINVAL));
	cr_assert(eq(int, ops->set_filter(pmu, ev, NULL), -EINVAL));
	cr_assert(eq(int, fk.ioctls, 2));
	ops->close(pmu, ev);

	/* A bad filter fails the open and closes the event. */
	cfg.filter = "bogus 1/2";
	ev = open_fac(pmu, BT_FAC_PT, &cfg, &err);
	cr_assert(eq(int, err, -EINVAL));
	cr_assert(eq(ptr, ev, NULL));
	cr_assert(eq(int, fk.closes, 2));

	/* Filters are intel_pt's; a PMU without ranges has none. */
	ev = open_fac(pmu, BT_FAC_LBR, NULL, &err);
	cr_assert(eq(int, ops->set_filter(pmu, ev, "stop 0x1000"), -EOPNOTSUPP));
	ops->close(pmu, ev);
	tu_fake_write(sysfs, "bus/event_source/devices/intel_pt/caps/num_address_ranges", "0\n");
	ev = open_fac(pmu, BT_FAC_PT, NULL, &err);
	cr_assert(eq(int, ops->set_filter(pmu, ev, "stop 0x1000"), -EOPNOTSUPP));
	cr_assert(eq(int, fk.ioctls, 2));
	ops->close(pmu, ev);
	bt_pmu__free(pmu);
}

/* ---- Filter syntax against a real binary ----------------------------------- */

static const char *hello_path(void)
{
	static char path[PATH_MAX];
	const char *progs = getenv("BTRAIL_PROGS");

	if (progs) {
		snprintf(path, sizeof(path), "%s/hello", progs);
		if (access(path, X_OK) == 0)
			return path;
	}
	return NULL;
}

/* Run @cmd, return its first output line (static). */
static const char *first_line(const char *cmd)
{
	static char line[512];
	FILE *p = popen(cmd, "r");

	cr_assert(ne(ptr, p, NULL));
	line[0] = '\0';
	if (!fgets(line, sizeof(line), p))
		line[0] = '\0';
	pclose(p);
	return line;
}

Test(perf, filter_symbols_become_file_offsets)
{
	const char *prog = hello_path();
	unsigned long long value, size, vaddr = 0, foff = 0, memsz = 0;
	char cmd[PATH_MAX + 128], in[2 * PATH_MAX + 64], want[2 * PATH_MAX + 64];
	char out[2 * PATH_MAX + 128], real[PATH_MAX];
	FILE *p;
	char line[512];
	bool found = false;

	if (!prog)
		cr_skip_test("BTRAIL_PROGS/hello is not built (make BUILD=... "
			     "BUILD/tests/progs/hello)");
	cr_assert(ne(ptr, realpath(prog, real), NULL));
	/* binutils' view of the symbol and of the segment holding it */
	snprintf(cmd, sizeof(cmd), "nm -S '%s' | awk '$4 == \"square\" "
		 "{ print $1, $2 }'", prog);
	cr_assert(eq(int, sscanf(first_line(cmd), "%llx %llx", &value, &size), 2),
		  "nm found no square in %s", prog);
	snprintf(cmd, sizeof(cmd), "readelf -lW '%s'", prog);
	p = popen(cmd, "r");
	cr_assert(ne(ptr, p, NULL));
	while (fgets(line, sizeof(line), p)) {
		unsigned long long o, v, ph, fs, ms;

		if (sscanf(line, " LOAD 0x%llx 0x%llx 0x%llx 0x%llx 0x%llx",
			   &o, &v, &ph, &fs, &ms) == 5 && value >= v &&
		    value < v + ms) {
			foff = o;
			vaddr = v;
			memsz = ms;
			found = true;
		}
	}
	pclose(p);
	cr_assert(found, "no LOAD segment of %s holds square", prog);
	cr_assert(gt(u64, memsz, 0));

	snprintf(in, sizeof(in), "filter square @ %s", prog);
	snprintf(want, sizeof(want), "filter %#llx/%#llx@%s",
		 value - vaddr + foff, size, real);
	cr_assert(eq(int, bt_perf_filter__resolve(in, out, sizeof(out)), 0));
	cr_assert(eq(str, out, want));

	/* start/stop take a single address; tracestop is the kernel's stop range */
	snprintf(in, sizeof(in), "start square@%s, tracestop main/16 @ %s",
		 prog, prog);
	cr_assert(eq(int, bt_perf_filter__resolve(in, out, sizeof(out)), 0));
	snprintf(want, sizeof(want), "start %#llx@%s,stop ",
		 value - vaddr + foff, real);
	cr_assert(eq(int, strncmp(out, want, strlen(want)), 0), "%s", out);
	cr_assert(ne(ptr, strstr(out, "/0x10@"), NULL), "%s", out);
}

Test(perf, filter_syntax_errors_are_refused)
{
	const char *prog = hello_path() ? hello_path() : "/bin/sh";
	char in[PATH_MAX + 64], out[256], tiny[8];

	cr_assert(eq(int, bt_perf_filter__resolve("", out, sizeof(out)), -EINVAL));
	cr_assert(eq(int, bt_perf_filter__resolve(" , ", out, sizeof(out)), -EINVAL));
	cr_assert(eq(int, bt_perf_filter__resolve("bogus 1/2", out, sizeof(out)), -EINVAL));
	cr_assert(eq(int, bt_perf_filter__resolve("filter", out, sizeof(out)), -EINVAL));
	cr_assert(eq(int, bt_perf_filter__resolve("filter main", out, sizeof(out)), -EINVAL));
	cr_assert(eq(int, bt_perf_filter__resolve("filter 0x10", out, sizeof(out)), -EINVAL));
	cr_assert(eq(int, bt_perf_filter__resolve("filter 0x10/0", out, sizeof(out)), -EINVAL));
	cr_assert(eq(int, bt_perf_filter__resolve("filter 0x10/x", out, sizeof(out)), -EINVAL));
	cr_assert(eq(int, bt_perf_filter__resolve("filter 1/2 @ /no/such/file", out, sizeof(out)), -ENOENT));
	snprintf(in, sizeof(in), "filter no_such_symbol_here @ %s", prog);
	cr_assert(eq(int, bt_perf_filter__resolve(in, out, sizeof(out)), -ENOENT));
	cr_assert(eq(int, bt_perf_filter__resolve("filter 1/2", tiny, sizeof(tiny)), -ENAMETOOLONG));
	cr_assert(eq(int, bt_perf_filter__resolve(NULL, out, sizeof(out)), -EINVAL));
	cr_assert(eq(int, bt_perf_filter__resolve("filter 0x10/0x20,stop 0x40", out, sizeof(out)), 0));
	cr_assert(eq(str, out, "filter 0x10/0x20,stop 0x40"));
}

/* ---- The data ring reader against hostile rings ---------------------------- */

struct fake_ring {
	unsigned char *map;		/* page + data */
	struct bt_pmu_buffers b;
	struct bt_perf_ring r;
};

static void fake_ring_init(struct fake_ring *f, uint64_t data_size)
{
	f->map = aligned_alloc(PAGE, PAGE + data_size);
	cr_assert(ne(ptr, f->map, NULL));
	memset(f->map, 0, PAGE + data_size);
	memset(&f->b, 0, sizeof(f->b));
	f->b.page = (void *)f->map;
	f->b.data = f->map + PAGE;
	f->b.data_size = data_size;
	f->b.page->data_offset = PAGE;
	f->b.page->data_size = data_size;
	cr_assert(eq(int, bt_perf_ring__init(&f->r, &f->b), 0));
}

static void fake_ring_fini(struct fake_ring *f)
{
	bt_perf_ring__fini(&f->r);
	free(f->map);
}

/* Write a record of @size bytes (type @type, bytes after the header = seq) at @pos. */
static void ring_put(struct fake_ring *f, uint64_t pos, uint32_t type,
		     uint16_t size, unsigned char fill)
{
	unsigned char rec[65536];
	struct perf_event_header h = { .type = type, .misc = 0, .size = size };

	memset(rec, fill, size);
	memcpy(rec, &h, sizeof(h));
	for (uint32_t i = 0; i < size; i++)
		f->b.data[(pos + i) & (f->b.data_size - 1)] = rec[i];
}

struct seen {
	int n;
	uint16_t size[64];
	uint32_t type[64];
	bool intact[64];
	int stop_at;			/* return -EAGAIN at this record (1-based) */
};

static int record_cb(void *ctx, const struct perf_event_header *rec)
{
	struct seen *s = ctx;
	const unsigned char *p = (const void *)rec;
	bool intact = true;

	if (s->stop_at && s->n + 1 == s->stop_at)
		return -EAGAIN;
	for (uint32_t i = sizeof(*rec); i < rec->size; i++)
		intact &= p[i] == (unsigned char)(rec->type + 0x40);
	if (s->n < 64) {
		s->size[s->n] = rec->size;
		s->type[s->n] = rec->type;
		s->intact[s->n] = intact;
	}
	s->n++;
	return 0;
}

Test(perf, ring_hands_out_records_in_order_and_frees_their_space)
{
	struct fake_ring f;
	struct seen s = { 0 };

	fake_ring_init(&f, PAGE);
	ring_put(&f, 0, 1, 32, 0x41);
	ring_put(&f, 32, 2, 16, 0x42);
	ring_put(&f, 48, 3, 64, 0x43);
	f.b.page->data_head = 112;
	cr_assert(eq(int, bt_perf_ring__drain(&f.r, record_cb, &s), 3));
	cr_assert(eq(int, s.n, 3));
	cr_assert(eq(u32, s.type[2], 3));
	cr_assert(eq(u16, s.size[2], 64));
	cr_assert(s.intact[0] && s.intact[1] && s.intact[2]);
	cr_assert(eq(u64, f.b.page->data_tail, 112));
	cr_assert(eq(int, bt_perf_ring__drain(&f.r, record_cb, &s), 0));
	fake_ring_fini(&f);
}

Test(perf, ring_record_straddling_the_end_reads_back_intact)
{
	struct fake_ring f;
	struct seen s = { 0 };
	uint64_t base = 5 * PAGE - 24;	/* free-running, 24 bytes before a wrap */

	fake_ring_init(&f, PAGE);
	f.b.page->data_tail = base;
	ring_put(&f, base, 5, 200, 0x45);
	ring_put(&f, base + 200, 6, 8, 0);
	f.b.page->data_head = base + 208;
	cr_assert(eq(int, bt_perf_ring__drain(&f.r, record_cb, &s), 2));
	cr_assert(eq(u16, s.size[0], 200));
	cr_assert(s.intact[0], "the straddling record came back torn");
	cr_assert(eq(u64, f.b.page->data_tail, base + 208));
	fake_ring_fini(&f);
}

Test(perf, ring_corruption_is_eproto_and_never_a_crash)
{
	struct fake_ring f;
	struct seen s = { 0 };

	fake_ring_init(&f, PAGE);
	tu_log_capture();
	/* head too far past tail */
	f.b.page->data_head = PAGE + 8;
	cr_assert(eq(int, bt_perf_ring__drain(&f.r, record_cb, &s), -EPROTO));
	cr_assert(eq(u64, f.b.page->data_tail, 0));
	/* a good record, then a header of size 0 (a reader that trusted it would spin) */
	ring_put(&f, 0, 1, 16, 0x41);
	ring_put(&f, 16, 2, 8, 0);
	f.b.data[20] = 0;
	f.b.data[21] = 0;
	f.b.data[22] = 0;
	f.b.data[23] = 0;
	f.b.page->data_head = 64;
	cr_assert(eq(int, bt_perf_ring__drain(&f.r, record_cb, &s), -EPROTO));
	cr_assert(eq(int, s.n, 1));
	cr_assert(eq(u64, f.b.page->data_tail, 16));	/* the good one is consumed */
	/* larger than what is there */
	ring_put(&f, 16, 2, 64, 0x42);
	f.b.page->data_head = 48;
	cr_assert(eq(int, bt_perf_ring__drain(&f.r, record_cb, &s), -EPROTO));
	/* not a multiple of 8 */
	ring_put(&f, 16, 2, 12, 0x42);
	f.b.page->data_head = 64;
	cr_assert(eq(int, bt_perf_ring__drain(&f.r, record_cb, &s), -EPROTO));
	/* positions that no sequence of 8-byte-multiple records reaches */
	f.b.page->data_head = 36;
	cr_assert(eq(int, bt_perf_ring__drain(&f.r, record_cb, &s), -EPROTO));
	/* fewer bytes than a header: also a misaligned head */
	f.b.page->data_head = 20;
	cr_assert(eq(int, bt_perf_ring__drain(&f.r, record_cb, &s), -EPROTO));
	cr_assert(eq(int, s.n, 1));
	cr_assert(ne(ptr, strstr(tu_log_text(), "bad record"), NULL));
	fake_ring_fini(&f);
}

Test(perf, ring_callback_error_leaves_the_record)
{
	struct fake_ring f;
	struct seen s = { .stop_at = 2 };

	fake_ring_init(&f, PAGE);
	ring_put(&f, 0, 1, 16, 0x41);
	ring_put(&f, 16, 2, 16, 0x42);
	f.b.page->data_head = 32;
	cr_assert(eq(int, bt_perf_ring__drain(&f.r, record_cb, &s), -EAGAIN));
	cr_assert(eq(u64, f.b.page->data_tail, 16));
	s.stop_at = 0;
	cr_assert(eq(int, bt_perf_ring__drain(&f.r, record_cb, &s), 1));
	cr_assert(eq(u32, s.type[1], 2));
	fake_ring_fini(&f);
}

Test(perf, ring_survives_random_garbage)
{
	struct fake_ring f;
	uint64_t rng = 0x243f6a8885a308d3ull;
	int good = 0, bad = 0;

	fake_ring_init(&f, 2 * PAGE);
	for (int i = 0; i < 20000; i++) {
		struct seen s = { 0 };
		int n;

		for (uint64_t j = 0; j < f.b.data_size; j += 8) {
			uint64_t v = tu_xorshift(&rng);

			/* mostly small sizes, so that many records parse */
			if (tu_xorshift(&rng) % 4)
				v = (v & ~0xffff000000000000ull) |
				    ((tu_xorshift(&rng) % 64) << 51);
			memcpy(f.b.data + j, &v, 8);
		}
		f.b.page->data_tail = tu_xorshift(&rng);
		if (tu_xorshift(&rng) % 8)	/* mostly aligned, as the kernel's */
			f.b.page->data_tail &= ~7ull;
		f.b.page->data_head = f.b.page->data_tail +
				      tu_xorshift(&rng) % (f.b.data_size + 64);
		n = bt_perf_ring__drain(&f.r, record_cb, &s);
		cr_assert(n >= 0 || n == -EPROTO, "drain returned %d", n);
		for (int k = 0; k < s.n && k < 64; k++) {
			cr_assert(ge(u16, s.size[k], 8));
			cr_assert(eq(u16, s.size[k] % 8, 0));
		}
		if (n >= 0)
			good++;
		else
			bad++;
	}
	cr_assert(gt(int, good, 0));
	cr_assert(gt(int, bad, 0));
	fake_ring_fini(&f);
}

Test(perf, ring_init_checks_the_geometry)
{
	struct fake_ring f;
	struct bt_perf_ring r;

	fake_ring_init(&f, PAGE);
	f.b.page->data_size = 2 * PAGE;		/* the page disagrees */
	cr_assert(eq(int, bt_perf_ring__init(&r, &f.b), -EINVAL));
	f.b.page->data_size = PAGE;
	f.b.data_size = 3 * PAGE;
	cr_assert(eq(int, bt_perf_ring__init(&r, &f.b), -EINVAL));
	cr_assert(eq(int, bt_perf_ring__init(&r, NULL), -EINVAL));
	cr_assert(eq(int, bt_perf_ring__drain(&r, record_cb, NULL), -EINVAL));
	fake_ring_fini(&f);
}

/* ---- The sideband of a real child, for real --------------------------------- */

struct sb_seen {
	pid_t pid;
	const char *comm;		/* expected COMM name */
	const char *binary;		/* its realpath */
	int records;
	bool comm_exec, mmap_binary, mmap_libc, exit_seen;
	int forks, lost, straddled;
	uint64_t last_time;
	bool trailer_ok;
	const struct bt_perf_ring *ring;
};

/* The sample_id trailer (TID, TIME, CPU, IDENTIFIER): the last 32 bytes. */
struct sample_id {
	uint32_t pid, tid;
	uint64_t time;
	uint32_t cpu, res;
	uint64_t id;
};

static int sideband_cb(void *ctx, const struct perf_event_header *h)
{
	struct sb_seen *s = ctx;
	const unsigned char *p = (const void *)h;
	struct sample_id sid;

	s->records++;
	if (p == s->ring->bounce)
		s->straddled++;
	cr_assert(ge(u16, h->size, sizeof(*h) + sizeof(sid)),
		  "record type %u of %u bytes", h->type, h->size);
	memcpy(&sid, p + h->size - sizeof(sid), sizeof(sid));
	if (h->type != PERF_RECORD_LOST)
		s->last_time = sid.time;
	switch (h->type) {
	case PERF_RECORD_COMM: {
		uint32_t pid, tid;
		const char *comm = (const char *)p + 16;

		memcpy(&pid, p + 8, 4);
		memcpy(&tid, p + 12, 4);
		if ((pid_t)pid == s->pid && !strcmp(comm, s->comm) &&
		    (h->misc & PERF_RECORD_MISC_COMM_EXEC)) {
			s->comm_exec = true;
			s->trailer_ok = sid.pid == pid && sid.tid == tid &&
					sid.time != 0;
		}
		break;
	}
	case PERF_RECORD_MMAP2: {
		/* pid, tid, addr, len, pgoff, maj/min or build id, ino,
		 * ino_generation, prot, flags, filename */
		const char *name = (const char *)p + 8 + 4 + 4 + 8 * 3 + 4 + 4 +
				   8 + 8 + 4 + 4;
		uint32_t prot;

		memcpy(&prot, p + 8 + 4 + 4 + 8 * 3 + 4 + 4 + 8 + 8, 4);
		if (!strcmp(name, s->binary) && (prot & PROT_EXEC))
			s->mmap_binary = true;
		if ((strstr(name, "/libc.so") || strstr(name, "/libc-")) &&
		    (prot & PROT_EXEC))
			s->mmap_libc = true;
		break;
	}
	case PERF_RECORD_EXIT: {
		uint32_t pid;

		memcpy(&pid, p + 8, 4);
		if ((pid_t)pid == s->pid)
			s->exit_seen = true;
		break;
	}
	case PERF_RECORD_FORK:
		s->forks++;
		break;
	case PERF_RECORD_LOST: {
		uint64_t lost;

		memcpy(&lost, p + 16, 8);
		s->lost += (int)lost;
		break;
	}
	default:
		cr_assert(h->type == PERF_RECORD_SWITCH ||
			  h->type == PERF_RECORD_MMAP,
			  "unexpected record type %u", h->type);
		break;
	}
	return 0;
}

/* Fork a child that waits on a pipe, then runs @argv. */
static pid_t spawn_stopped(char *const argv[], int *go)
{
	int fds[2];
	pid_t pid;

	cr_assert(eq(int, pipe(fds), 0));
	pid = fork();
	cr_assert(ge(int, pid, 0));
	if (pid == 0) {
		char c;

		close(fds[1]);
		if (read(fds[0], &c, 1) != 1)
			_exit(98);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[0]);
	*go = fds[1];
	return pid;
}

static struct bt_pmu_event *open_sideband(struct bt_pmu *pmu, pid_t pid,
					  uint64_t data_bytes,
					  struct bt_pmu_buffers *b)
{
	struct bt_pmu_open_args a = {
		.sz = sizeof(a),
		.sideband = true,
		.target = { BT_TARGET_TASK, pid },
		.enable_on_exec = true,
		.uid = getuid(),
	};
	const struct bt_pmu_ops *ops = bt_pmu__ops(pmu);
	struct bt_pmu_event *ev;
	int err;

	err = ops->open(pmu, &a, &ev);
	if (err == -EACCES || err == -EPERM)
		cr_skip_test("perf_event_open of a dummy event refused: %s "
			     "(perf_event_paranoid)", strerror(-err));
	cr_assert(eq(int, err, 0), "sideband open: %s", strerror(-err));
	cr_assert(eq(int, ops->map(pmu, ev, data_bytes, 0, false, b), 0));
	cr_assert(eq(u64, b->data_size, data_bytes));
	cr_assert(eq(u64, b->mapped, PAGE + data_bytes));
	cr_assert(eq(ptr, b->aux, NULL));
	cr_assert(ge(int, ops->fd(pmu, ev), 0));
	return ev;
}

Test(perf, sideband_of_a_real_exec_names_the_program_and_libc)
{
	const char *prog = hello_path() ? hello_path() : "/bin/true";
	char real[PATH_MAX];
	char *argv[] = { (char *)prog, NULL };
	struct bt_pmu *pmu = bt_pmu__new_perf(NULL);
	struct bt_pmu_buffers b;
	struct bt_pmu_event *ev;
	struct sb_seen s = { 0 };
	struct bt_perf_ring r;
	const char *base;
	pid_t pid;
	int go, status, n, ok;

	cr_assert(ne(ptr, pmu, NULL));
	cr_assert(ne(ptr, realpath(prog, real), NULL));
	base = strrchr(real, '/') + 1;
	pid = spawn_stopped(argv, &go);
	ev = open_sideband(pmu, pid, 16 * PAGE, &b);
	cr_assert(eq(int, bt_perf_ring__init(&r, &b), 0));

	cr_assert(eq(int, write(go, "x", 1), 1));	/* exec now */
	close(go);
	cr_assert(eq(int, waitpid(pid, &status, 0), pid));
	ok = WIFEXITED(status) && WEXITSTATUS(status) != 127 &&
	     WEXITSTATUS(status) != 98;
	cr_assert(ok, "child status %#x", status);

	s.pid = pid;
	s.comm = base;
	s.binary = real;
	s.ring = &r;
	n = bt_perf_ring__drain(&r, sideband_cb, &s);
	cr_assert(gt(int, n, 0), "drain: %d", n);
	cr_assert(s.comm_exec, "no COMM (exec) record for %s", base);
	cr_assert(s.trailer_ok, "the COMM's sample_id names another task");
	cr_assert(s.mmap_binary, "no MMAP2 of %s", real);
	cr_assert(s.mmap_libc, "no MMAP2 of libc");
	cr_assert(s.exit_seen, "no EXIT record for pid %d", (int)pid);
	cr_assert(eq(u64, b.page->data_tail, b.page->data_head));

	bt_perf_ring__fini(&r);
	bt_pmu__ops(pmu)->close(pmu, ev);
	bt_pmu__free(pmu);
}

Test(perf, sideband_ring_wraps_while_a_shell_forks, .timeout = 60)
{
	char *argv[] = { "/bin/sh", "-c",
			 "i=0; while [ $i -lt 150 ]; do /bin/true; i=$((i+1)); done",
			 NULL };
	struct bt_pmu *pmu = bt_pmu__new_perf(NULL);
	const struct bt_pmu_ops *ops = bt_pmu__ops(pmu);
	struct bt_pmu_buffers b;
	struct bt_pmu_event *ev;
	struct sb_seen s = { 0 };
	struct bt_perf_ring r;
	struct pollfd pfd;
	pid_t pid;
	int go, status, n, ok, drained = 0;

	pid = spawn_stopped(argv, &go);
	ev = open_sideband(pmu, pid, PAGE, &b);	/* one page: it must wrap */
	cr_assert(eq(int, bt_perf_ring__init(&r, &b), 0));
	s.pid = pid;
	s.comm = "sh";
	s.binary = "";
	s.ring = &r;
	pfd.fd = ops->fd(pmu, ev);
	pfd.events = POLLIN;

	cr_assert(eq(int, write(go, "x", 1), 1));
	close(go);
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		cr_assert(ge(int, w, 0));
		poll(&pfd, 1, 5);
		n = bt_perf_ring__drain(&r, sideband_cb, &s);
		cr_assert(ge(int, n, 0), "drain: %d", n);
		drained += n;
		if (w == pid)
			break;
	}
	ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	cr_assert(ok, "shell status %#x", status);
	n = bt_perf_ring__drain(&r, sideband_cb, &s);
	cr_assert(ge(int, n, 0));
	drained += n;

	cr_log_info("%d records, %d forks, %d lost, %d straddled, head %llu",
		    s.records, s.forks, s.lost, s.straddled,
		    (unsigned long long)b.page->data_head);
	cr_assert(s.comm_exec, "no COMM (exec) record for sh");
	/* Every fork is a record unless the kernel said it lost some. */
	cr_assert(s.forks >= 150 || s.lost > 0, "%d forks, %d lost",
		  s.forks, s.lost);
	cr_assert(gt(u64, b.page->data_head, 2 * PAGE), "the ring never wrapped");
	cr_assert(gt(int, s.straddled, 0), "no record straddled the end");
	cr_assert(eq(int, drained, s.records));

	bt_perf_ring__fini(&r);
	ops->close(pmu, ev);
	bt_pmu__free(pmu);
}

/* ---- The hardware facilities, where caps says they exist -------------------- */

static struct bt_pmu *hw_or_skip(uint32_t fac)
{
	struct bt_cap caps[BT_FAC__COUNT];
	struct bt_caps_opts o = { .sz = sizeof(o) };

	cr_assert(eq(int, bt_caps_probe(caps, &o), 0));
	if (!caps[fac].present)
		cr_skip_test("%s", caps[fac].reason);
	return bt_pmu__new_perf(NULL);
}

/* A little code to trace: enough branches to fill some buffer. */
static __attribute__((noinline)) unsigned busy(unsigned n)
{
	volatile unsigned x = 0;

	for (unsigned i = 0; i < n; i++)
		x += i % 3 ? i : x >> 1;
	return x;
}

struct count {
	int samples, aux, itrace_start, with_branches;
	const struct bt_perf_ring *ring;
};

static int count_cb(void *ctx, const struct perf_event_header *h)
{
	struct count *c = ctx;

	if (h->type == PERF_RECORD_SAMPLE)
		c->samples++;
	if (h->type == PERF_RECORD_AUX)
		c->aux++;
	if (h->type == PERF_RECORD_ITRACE_START)
		c->itrace_start++;
	return 0;
}

/* Open @fac on this thread, map, run busy code, and read what came back. */
static void trace_self(uint32_t fac, struct count *c, struct bt_pmu_buffers *b)
{
	struct bt_pmu *pmu = hw_or_skip(fac);
	const struct bt_pmu_ops *ops = bt_pmu__ops(pmu);
	struct bt_pmu_open_args a = {
		.sz = sizeof(a), .facility = fac,
		.target = { BT_TARGET_TASK, (int32_t)getpid() },
	};
	struct bt_pmu_event *ev;
	struct bt_perf_ring r;
	int err;

	err = ops->open(pmu, &a, &ev);
	cr_assert(eq(int, err, 0), "open %s: %s", bt_facility_name(fac),
		  strerror(-err));
	cr_assert(eq(int, ops->map(pmu, ev, 16 * PAGE, 64 * PAGE, false, b), 0));
	cr_assert(eq(int, ops->enable(pmu, ev, true), 0));
	busy(2000000);
	cr_assert(eq(int, ops->enable(pmu, ev, false), 0));
	cr_assert(eq(int, bt_perf_ring__init(&r, b), 0));
	c->ring = &r;
	cr_assert(ge(int, bt_perf_ring__drain(&r, count_cb, c), 0));
	if (b->aux)
		c->aux += __atomic_load_n(&b->page->aux_head, __ATOMIC_ACQUIRE) > 0;
	bt_perf_ring__fini(&r);
	ops->close(pmu, ev);
	bt_pmu__free(pmu);
}

Test(perf, intel_pt_traces_this_thread_on_real_hardware)
{
	struct bt_pmu_buffers b;
	struct count c = { 0 };

	trace_self(BT_FAC_PT, &c, &b);
	cr_assert(gt(int, c.aux, 0), "no PT bytes in the AUX area");
	cr_assert(gt(int, c.itrace_start, 0), "no ITRACE_START record");
}

Test(perf, bts_traces_this_thread_on_real_hardware)
{
	struct bt_pmu_buffers b;
	struct count c = { 0 };

	trace_self(BT_FAC_BTS, &c, &b);
	cr_assert(c.aux > 0 || c.samples > 0, "no BTS records or samples");
}

Test(perf, pebs_samples_this_thread_on_real_hardware)
{
	struct bt_pmu_buffers b;
	struct count c = { 0 };

	trace_self(BT_FAC_PEBS, &c, &b);
	cr_assert(gt(int, c.samples, 0), "no PEBS samples");
}

Test(perf, lbr_samples_this_thread_on_real_hardware)
{
	struct bt_pmu_buffers b;
	struct count c = { 0 };

	trace_self(BT_FAC_LBR, &c, &b);
	cr_assert(gt(int, c.samples, 0), "no branch-stack samples");
}

Test(perf, new_perf_checks_its_options)
{
	struct bt_perf_opts o = { .sz = 1 };

	errno = 0;
	cr_assert(eq(ptr, bt_pmu__new_perf(&o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	bt_pmu__free(NULL);
	cr_assert(eq(ptr, (void *)bt_pmu__ops(NULL), NULL));
}
