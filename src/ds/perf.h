/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The perf backend's insides: the system calls it makes (a table, so that
 * tests can stand in for the kernel), the perf_event_attr builders that
 * read a PMU's sysfs directory (type, caps/ and format/ files), perf's
 * address-filter syntax, and what caps.c shares with perf.c.
 *
 * Every builder takes the sysfs root ("/sys" or a test's fake tree) and
 * reads <sysfs>/bus/event_source/devices/<pmu>/...; none of them opens an
 * event.
 */
#ifndef BT_DS_PERF_H
#define BT_DS_PERF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/perf_event.h>

#include <btrail/ds.h>

/* ---- The kernel, as a table ------------------------------------------- */

/*
 * What the perf backend asks of the kernel. Every member returns what the
 * system call returns, with errors as a negative errno (mmap: MAP_FAILED
 * and errno set, as mmap(2)).
 */
struct bt_perf_sys {
	int (*open)(struct perf_event_attr *attr, pid_t pid, int cpu,
		    int group_fd, unsigned long flags);
	int (*ioctl)(int fd, unsigned long request, unsigned long arg);
	void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd,
		      off_t off);
	int (*munmap)(void *addr, size_t len);
	int (*close)(int fd);
};

/* The real system calls. */
extern const struct bt_perf_sys bt_perf_sys_real;

/*
 * bt_pmu__new_perf_sys() - the perf backend over @sys (borrowed; must
 * outlive the backend). bt_pmu__new_perf() is this with bt_perf_sys_real.
 * NULL with errno EINVAL (@opts) or ENOMEM.
 */
struct bt_pmu *bt_pmu__new_perf_sys(const struct bt_perf_opts *opts,
				    const struct bt_perf_sys *sys);

/* The attr @ev was opened with (tests); borrowed, valid until close. */
const struct perf_event_attr *bt_perf_event__attr(const struct bt_pmu_event *ev);
/* True when @ev is intel_bts's fallback (branch-instructions samples). */
bool bt_perf_event__fallback(const struct bt_pmu_event *ev);

/* ---- sysfs ---------------------------------------------------------------- */

/* "<sysfs>/bus/event_source/devices/<pmu>[/<file>]" into @buf. -ENAMETOOLONG */
int bt_perf_sysfs__path(const char *sysfs, const char *pmu, const char *file,
			char *buf, size_t len);
/* True when the PMU's directory exists. */
bool bt_perf_sysfs__has_pmu(const char *sysfs, const char *pmu);
/*
 * The first line of a PMU's file (no newline) into @buf. Returns its
 * length, -ENOENT (and other open/read errors) or -EOVERFLOW.
 */
int bt_perf_sysfs__read(const char *sysfs, const char *pmu, const char *file,
			char *buf, size_t len);
/*
 * A PMU's file as a number in @base (10 for type, 16 for the caps/ files
 * the kernel prints with "%x"). -ENOENT, -EINVAL when it is no number.
 */
int bt_perf_sysfs__u64(const char *sysfs, const char *pmu, const char *file,
		       int base, uint64_t *out);
/* The first of "cpu", "cpu_core" that exists, or NULL: the core PMU. */
const char *bt_perf_sysfs__core_pmu(const char *sysfs);

/* ---- format/ files -------------------------------------------------------- */

/*
 * Where a PMU term lives in perf_event_attr: the word (config, config1,
 * config2) and the bits, from one or more ranges ("config:0",
 * "config:14-17", "config1:0-7,32-35"). As perf does, a value's bits go
 * into the mask's bits from the lowest up.
 */
struct bt_perf_format {
	uint8_t word;		/* 0 config, 1 config1, 2 config2 */
	uint64_t mask;		/* never 0 once parsed */
};

/* Parse a format file's text. 0, or -EINVAL for anything else. */
int bt_perf_format__parse(const char *text, struct bt_perf_format *f);
/* Bits the term can hold. */
unsigned bt_perf_format__width(const struct bt_perf_format *f);
/*
 * Store @val into @attr's word as the ranges say (clearing the term's
 * old bits). -ERANGE when @val needs more bits than the term has.
 */
int bt_perf_format__set(const struct bt_perf_format *f,
			struct perf_event_attr *attr, uint64_t val);
/* The term's value in @attr. */
uint64_t bt_perf_format__get(const struct bt_perf_format *f,
			     const struct perf_event_attr *attr);
/* Read format/<name> of @pmu. -ENOENT when the PMU has no such term. */
int bt_perf_sysfs__format(const char *sysfs, const char *pmu,
			  const char *name, struct bt_perf_format *f);

/* ---- perf_event_attr builders -------------------------------------------- */

/*
 * The sample fields every event of ours carries on its non-sample records
 * (sample_id_all): who, when, where, and which event.
 */
#define BT_PERF_SAMPLE_ID	(PERF_SAMPLE_TID | PERF_SAMPLE_TIME | \
				 PERF_SAMPLE_CPU | PERF_SAMPLE_IDENTIFIER)

/* Default PEBS/LBR sample period when the config has none. */
#define BT_PERF_DEFAULT_PERIOD	10007ull

/*
 * bt_perf_attr__pt() - the intel_pt event for @cfg (NULL: perf's default,
 * tsc,mtc,mtc_period~3,psb_period~3,pt,branch where the PMU has them).
 *
 * Each term is placed where format/<term> says. Features the PMU lacks
 * (no format file, caps/mtc or caps/psb_cyc 0) are left out and logged;
 * a value the caps bitmasks forbid (caps/mtc_periods, cycle_thresholds,
 * psb_periods) is an error, as the kernel would refuse it.
 *
 * Returns 0, or:
 *   -ENOENT      no intel_pt PMU (or no type file)
 *   -EINVAL      a value the caps forbid
 *   -EOPNOTSUPP  no_branch on a kernel without the pt pass-through term
 */
int bt_perf_attr__pt(const char *sysfs, const struct bt_trace_config *cfg,
		     struct perf_event_attr *attr);

/*
 * bt_perf_attr__bts() - the intel_bts event (AUX, raw 24-byte records),
 * or, without that PMU, its fallback: branch-instructions at period 1 as
 * samples of IP (from) and ADDR (to); *@fallback says which. Returns 0.
 */
int bt_perf_attr__bts(const char *sysfs, const struct bt_trace_config *cfg,
		      struct perf_event_attr *attr, bool *fallback);

/*
 * bt_perf_attr__pebs() - precise samples at @precise (1..3) of
 * cfg->pebs_config as a raw event of the core PMU (0: branch-instructions
 * retired) every cfg->period events (0: BT_PERF_DEFAULT_PERIOD), with
 * IP, ADDR (filled by events that have a data address), PERIOD and the
 * ID fields. -ENOENT without a core PMU for a raw config, -EINVAL for a
 * @precise outside 1..3.
 */
int bt_perf_attr__pebs(const char *sysfs, const struct bt_trace_config *cfg,
		       int precise, struct perf_event_attr *attr);
/* The highest precise_ip worth trying: cpu/caps/max_precise, else 3. */
int bt_perf_max_precise(const char *sysfs);

/*
 * bt_perf_attr__lbr() - cycles samples with PERF_SAMPLE_BRANCH_STACK;
 * branch_sample_type is cfg->branch_sample_type (0: ANY) with the
 * privilege bits of cfg->user/kernel added when it names none. Returns 0.
 */
int bt_perf_attr__lbr(const struct bt_trace_config *cfg,
		      struct perf_event_attr *attr);

/*
 * bt_perf_attr__sideband() - the software dummy event: MMAP2, COMM (with
 * exec), FORK/EXIT, context switches, all with TID, TIME, CPU, IDENTIFIER.
 */
void bt_perf_attr__sideband(struct perf_event_attr *attr);

/* ---- Address filters ----------------------------------------------------- */

/*
 * bt_perf_filter__resolve() - turn perf's filter syntax into the kernel's.
 *
 * @in is one or more comma-separated terms "ACTION WHERE[/SIZE] [@ FILE]"
 * with ACTION filter, start, stop or tracestop and WHERE a number or a
 * symbol of FILE (looked up in .symtab, then .dynsym; SIZE defaults to
 * the symbol's size). @out gets "ACTION ADDR/SIZE@PATH" terms separated
 * by commas, PATH made absolute, as PERF_EVENT_IOC_SET_FILTER reads them.
 *
 * Returns 0, or:
 *   -EINVAL        bad syntax, a symbol without FILE, size 0 for a range
 *   -ENOENT        FILE missing, or no such symbol in it
 *   -ENAMETOOLONG  @out too small
 */
int bt_perf_filter__resolve(const char *in, char *out, size_t len);

/* ---- Shared with caps.c ---------------------------------------------------- */

/* Copy a user trace config (sz-prefixed) into @out; NULL gives defaults. */
int bt_perf_config__copy(struct bt_trace_config *out,
			 const struct bt_trace_config *cfg);

#endif /* BT_DS_PERF_H */
