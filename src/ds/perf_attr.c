// SPDX-License-Identifier: BSD-3-Clause
/*
 * perf_event_attr for each facility, built from what the PMU's sysfs
 * directory says: its type, its format/ files (where each term's bits
 * go) and its caps/ files (which values the hardware takes). Nothing here
 * opens an event, so tests check every bit against fake sysfs trees.
 */
#include "ds/perf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/opts.h"

/* ---- sysfs ---------------------------------------------------------------- */

int bt_perf_sysfs__path(const char *sysfs, const char *pmu, const char *file,
			char *buf, size_t len)
{
	int n;

	n = snprintf(buf, len, "%s/bus/event_source/devices/%s%s%s",
		     sysfs ? sysfs : "/sys", pmu, file ? "/" : "",
		     file ? file : "");
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

bool bt_perf_sysfs__has_pmu(const char *sysfs, const char *pmu)
{
	char path[PATH_MAX];
	struct stat st;

	if (bt_perf_sysfs__path(sysfs, pmu, NULL, path, sizeof(path)))
		return false;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int bt_perf_sysfs__read(const char *sysfs, const char *pmu, const char *file,
			char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	char *nl;
	int fd, err;

	if (len < 2)
		return -EINVAL;
	err = bt_perf_sysfs__path(sysfs, pmu, file, path, sizeof(path));
	if (err)
		return err;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	err = n < 0 ? -errno : 0;
	close(fd);
	if (err)
		return err;
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	else if ((size_t)n == len - 1)
		return -EOVERFLOW;	/* a line longer than @buf */
	return (int)strlen(buf);
}

int bt_perf_sysfs__u64(const char *sysfs, const char *pmu, const char *file,
		       int base, uint64_t *out)
{
	char buf[64], *end;
	unsigned long long v;
	int n;

	n = bt_perf_sysfs__read(sysfs, pmu, file, buf, sizeof(buf));
	if (n < 0)
		return n;
	if (n == 0 || buf[0] == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(buf, &end, base);
	if (errno || *end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

const char *bt_perf_sysfs__core_pmu(const char *sysfs)
{
	/* Hybrid Intel parts name the big cores' PMU cpu_core. */
	if (bt_perf_sysfs__has_pmu(sysfs, "cpu"))
		return "cpu";
	if (bt_perf_sysfs__has_pmu(sysfs, "cpu_core"))
		return "cpu_core";
	return NULL;
}

/* ---- format/ files -------------------------------------------------------- */

static int format_number(const char **p, unsigned *out)
{
	unsigned v = 0;
	int digits = 0;

	while (**p >= '0' && **p <= '9' && digits < 3) {
		v = v * 10 + (unsigned)(**p - '0');
		(*p)++;
		digits++;
	}
	if (!digits || v > 63 || (**p >= '0' && **p <= '9'))
		return -EINVAL;
	*out = v;
	return 0;
}

int bt_perf_format__parse(const char *text, struct bt_perf_format *f)
{
	static const char *const words[] = { "config:", "config1:", "config2:" };
	const char *p = text;
	uint64_t mask = 0;
	size_t wl;
	int word = -1;

	if (!text || !f)
		return -EINVAL;
	for (int i = 2; i >= 0; i--) {
		wl = strlen(words[i]);
		if (!strncmp(p, words[i], wl)) {
			word = i;
			p += wl;
			break;
		}
	}
	if (word < 0)
		return -EINVAL;
	for (;;) {
		unsigned lo, hi;

		if (format_number(&p, &lo))
			return -EINVAL;
		hi = lo;
		if (*p == '-') {
			p++;
			if (format_number(&p, &hi) || hi < lo)
				return -EINVAL;
		}
		for (unsigned b = lo; b <= hi; b++)
			mask |= 1ull << b;
		if (*p != ',')
			break;
		p++;
	}
	if (*p == '\n')
		p++;
	if (*p != '\0')
		return -EINVAL;
	f->word = (uint8_t)word;
	f->mask = mask;
	return 0;
}

unsigned bt_perf_format__width(const struct bt_perf_format *f)
{
	return (unsigned)__builtin_popcountll(f->mask);
}

static __u64 *format_word(struct perf_event_attr *attr, unsigned word)
{
	switch (word) {
	case 0:
		return &attr->config;
	case 1:
		return &attr->config1;
	default:
		return &attr->config2;
	}
}

int bt_perf_format__set(const struct bt_perf_format *f,
			struct perf_event_attr *attr, uint64_t val)
{
	__u64 *w = format_word(attr, f->word);
	uint64_t bits = 0, v = val;

	for (unsigned b = 0; b < 64; b++) {
		if (!(f->mask & (1ull << b)))
			continue;
		if (v & 1)
			bits |= 1ull << b;
		v >>= 1;
	}
	if (v)
		return -ERANGE;		/* bits left over: the term is too narrow */
	*w = (*w & ~f->mask) | bits;
	return 0;
}

uint64_t bt_perf_format__get(const struct bt_perf_format *f,
			     const struct perf_event_attr *attr)
{
	uint64_t w = *format_word((struct perf_event_attr *)attr, f->word);
	uint64_t val = 0;
	unsigned n = 0;

	for (unsigned b = 0; b < 64; b++) {
		if (!(f->mask & (1ull << b)))
			continue;
		if (w & (1ull << b))
			val |= 1ull << n;
		n++;
	}
	return val;
}

int bt_perf_sysfs__format(const char *sysfs, const char *pmu,
			  const char *name, struct bt_perf_format *f)
{
	char file[64], buf[128];
	int n;

	n = snprintf(file, sizeof(file), "format/%s", name);
	if (n < 0 || (size_t)n >= sizeof(file))
		return -ENAMETOOLONG;
	n = bt_perf_sysfs__read(sysfs, pmu, file, buf, sizeof(buf));
	if (n < 0)
		return n;
	if (bt_perf_format__parse(buf, f)) {
		pr_warn("perf: %s: format/%s is not a format: '%s'", pmu, name,
			buf);
		return -EINVAL;
	}
	return 0;
}

/* ---- Configs ---------------------------------------------------------------- */

int bt_perf_config__copy(struct bt_trace_config *out,
			 const struct bt_trace_config *cfg)
{
	int err;

	err = bt_opts_copy(out, sizeof(*out), cfg);
	out->sz = sizeof(*out);
	return err;
}

/* What every event of ours has: disabled until enabled, ID fields. */
static void attr_common(struct perf_event_attr *attr, uint32_t type,
			uint64_t config, const struct bt_trace_config *cfg)
{
	bool user = cfg->user || !cfg->kernel;	/* neither: user space */

	memset(attr, 0, sizeof(*attr));
	attr->size = sizeof(*attr);
	attr->type = type;
	attr->config = config;
	attr->disabled = 1;
	attr->exclude_user = !user;
	attr->exclude_kernel = !cfg->kernel;
	attr->exclude_hv = 1;
	attr->sample_id_all = 1;
	attr->sample_type = BT_PERF_SAMPLE_ID;
}

/* ---- intel_pt ---------------------------------------------------------------- */

#define PT	"intel_pt"

/*
 * The value of @bits nearest @target from below, else the lowest one
 * above it (perf's choice of mtc_period and psb_period); -1 if none.
 */
static int pick_bit(uint64_t bits, int target)
{
	int pick = -1;

	for (int b = 0; b < 64; b++) {
		if (!(bits & (1ull << b)))
			continue;
		if (b <= target || pick < 0)
			pick = b;
		if (b >= target)
			break;
	}
	return pick;
}

/* caps/<name> (hex, as the kernel prints it), or @dflt when missing. */
static uint64_t pt_cap(const char *sysfs, const char *name, uint64_t dflt)
{
	char file[64];
	uint64_t v;

	snprintf(file, sizeof(file), "caps/%s", name);
	if (bt_perf_sysfs__u64(sysfs, PT, file, 16, &v))
		return dflt;
	return v;
}

/*
 * Set term @name to @val. Returns 1 when set, 0 when the PMU has no such
 * term (left out), or -EINVAL for a value it cannot hold.
 */
static int pt_term(const char *sysfs, struct perf_event_attr *attr,
		   const char *name, uint64_t val)
{
	struct bt_perf_format f;
	int err;

	err = bt_perf_sysfs__format(sysfs, PT, name, &f);
	if (err == -ENOENT) {
		pr_info("perf: intel_pt has no '%s' term (no format/%s): left out",
			name, name);
		return 0;
	}
	if (err)
		return err;
	if (bt_perf_format__set(&f, attr, val)) {
		pr_warn("perf: intel_pt: %s=%llu does not fit its %u bits",
			name, (unsigned long long)val, bt_perf_format__width(&f));
		return -EINVAL;
	}
	return 1;
}

/* Is @val one of the values caps/@cap allows (a bitmask of values)? */
static int pt_allowed(uint64_t allowed, uint64_t val, const char *what,
		      const char *cap)
{
	if (val < 64 && (allowed & (1ull << val)))
		return 0;
	pr_warn("perf: intel_pt: %s=%llu is not allowed by caps/%s (%#llx)",
		what, (unsigned long long)val, cap,
		(unsigned long long)allowed);
	return -EINVAL;
}

int bt_perf_attr__pt(const char *sysfs, const struct bt_trace_config *user_cfg,
		     struct perf_event_attr *attr)
{
	struct bt_trace_config cfg;
	struct bt_perf_format f, fb;
	uint64_t type, cap_mtc, mtc_periods, psb_cyc, psb_periods, thresholds;
	int err;

	err = bt_perf_config__copy(&cfg, user_cfg);
	if (err)
		return err;
	err = bt_perf_sysfs__u64(sysfs, PT, "type", 10, &type);
	if (err)
		return err == -EINVAL ? -ENOENT : err;

	/* As perf: a kernel without these files predates the caps. */
	cap_mtc = pt_cap(sysfs, "mtc", 1);
	mtc_periods = pt_cap(sysfs, "mtc_periods", 0);
	psb_cyc = pt_cap(sysfs, "psb_cyc", 1);
	psb_periods = pt_cap(sysfs, "psb_periods", 0);
	thresholds = pt_cap(sysfs, "cycle_thresholds", 0);

	attr_common(attr, (uint32_t)type, 0, &cfg);
	attr->sample_period = 1;	/* as perf: AUX events take every period */

	if (!user_cfg) {
		/* perf's default: tsc,mtc,mtc_period=~3,psb_period=~3,pt,branch */
		cfg.tsc = true;
		if (cap_mtc && mtc_periods) {
			cfg.mtc = true;
			cfg.mtc_period = (uint32_t)pick_bit(mtc_periods, 3);
			if (psb_cyc && psb_periods)
				cfg.psb_period = (uint32_t)pick_bit(psb_periods, 3);
		}
	}

	/*
	 * pt=1 (config bit 0) asks the kernel to take branch from the
	 * config instead of forcing BranchEn on; a kernel without the term
	 * always traces branches and refuses branch without pt.
	 */
	err = bt_perf_sysfs__format(sysfs, PT, "pt", &f);
	if (err == 0)
		err = bt_perf_sysfs__format(sysfs, PT, "branch", &fb);
	if (err == 0) {
		bt_perf_format__set(&f, attr, 1);
		bt_perf_format__set(&fb, attr, !cfg.no_branch);
	} else if (err == -ENOENT) {
		if (cfg.no_branch) {
			pr_warn("perf: intel_pt: this kernel cannot turn branch "
				"tracing off (no format/pt or format/branch)");
			return -EOPNOTSUPP;
		}
	} else {
		return err;
	}

	if (cfg.tsc && (err = pt_term(sysfs, attr, "tsc", 1)) < 0)
		return err;
	if (cfg.noretcomp && (err = pt_term(sysfs, attr, "noretcomp", 1)) < 0)
		return err;

	if (cfg.mtc) {
		if (!cap_mtc || !mtc_periods) {
			pr_info("perf: intel_pt has no MTC (caps/mtc %llu, "
				"caps/mtc_periods %#llx): left out",
				(unsigned long long)cap_mtc,
				(unsigned long long)mtc_periods);
		} else {
			err = pt_allowed(mtc_periods, cfg.mtc_period,
					 "mtc_period", "mtc_periods");
			if (!err && (err = pt_term(sysfs, attr, "mtc", 1)) > 0)
				err = pt_term(sysfs, attr, "mtc_period",
					      cfg.mtc_period);
			if (err < 0)
				return err;
		}
	}

	/* CYC packets, their threshold and the PSB period need psb_cyc. */
	if ((cfg.cyc || cfg.cyc_thresh || cfg.psb_period) && !psb_cyc) {
		pr_info("perf: intel_pt has no CYC or PSB period (caps/psb_cyc "
			"0): left out");
	} else {
		if (cfg.cyc && (err = pt_term(sysfs, attr, "cyc", 1)) < 0)
			return err;
		if (cfg.cyc && cfg.cyc_thresh) {
			err = pt_allowed(thresholds, cfg.cyc_thresh,
					 "cyc_thresh", "cycle_thresholds");
			if (!err)
				err = pt_term(sysfs, attr, "cyc_thresh",
					      cfg.cyc_thresh);
			if (err < 0)
				return err;
		}
		if (cfg.psb_period) {
			err = pt_allowed(psb_periods, cfg.psb_period,
					 "psb_period", "psb_periods");
			if (!err)
				err = pt_term(sysfs, attr, "psb_period",
					      cfg.psb_period);
			if (err < 0)
				return err;
		}
	}
	return 0;
}

/* ---- intel_bts and its fallback ----------------------------------------------- */

int bt_perf_attr__bts(const char *sysfs, const struct bt_trace_config *user_cfg,
		      struct perf_event_attr *attr, bool *fallback)
{
	struct bt_trace_config cfg;
	uint64_t type;
	int err;

	err = bt_perf_config__copy(&cfg, user_cfg);
	if (err)
		return err;
	if (bt_perf_sysfs__u64(sysfs, "intel_bts", "type", 10, &type) == 0) {
		attr_common(attr, (uint32_t)type, 0, &cfg);
		attr->sample_period = 1;
		*fallback = false;
		return 0;
	}
	/*
	 * The x86 driver turns branch-instructions with a fixed period of 1
	 * into BTS of its own and delivers each branch as a sample: IP is
	 * the source, ADDR the destination.
	 */
	attr_common(attr, PERF_TYPE_HARDWARE, PERF_COUNT_HW_BRANCH_INSTRUCTIONS,
		    &cfg);
	attr->sample_period = 1;
	attr->sample_type |= PERF_SAMPLE_IP | PERF_SAMPLE_ADDR;
	*fallback = true;
	return 0;
}

/* ---- PEBS ------------------------------------------------------------------------ */

int bt_perf_max_precise(const char *sysfs)
{
	const char *core = bt_perf_sysfs__core_pmu(sysfs);
	uint64_t v;

	if (core && bt_perf_sysfs__u64(sysfs, core, "caps/max_precise", 10,
				       &v) == 0)
		return v > 3 ? 3 : (int)v;
	return 3;
}

int bt_perf_attr__pebs(const char *sysfs, const struct bt_trace_config *user_cfg,
		       int precise, struct perf_event_attr *attr)
{
	struct bt_trace_config cfg;
	uint64_t type = PERF_TYPE_HARDWARE;
	uint64_t config = PERF_COUNT_HW_BRANCH_INSTRUCTIONS;
	int err;

	if (precise < 1 || precise > 3)
		return -EINVAL;
	err = bt_perf_config__copy(&cfg, user_cfg);
	if (err)
		return err;
	if (cfg.pebs_config) {
		const char *core = bt_perf_sysfs__core_pmu(sysfs);

		if (!core)
			return -ENOENT;
		err = bt_perf_sysfs__u64(sysfs, core, "type", 10, &type);
		if (err)
			return err == -EINVAL ? -ENOENT : err;
		config = cfg.pebs_config;
	}
	attr_common(attr, (uint32_t)type, config, &cfg);
	attr->sample_period = cfg.period ? cfg.period : BT_PERF_DEFAULT_PERIOD;
	attr->precise_ip = (unsigned)precise & 3;
	/*
	 * ADDR is the data address for events that have one (loads, stores)
	 * and 0 for the others; the kernel takes the request either way.
	 */
	attr->sample_type |= PERF_SAMPLE_IP | PERF_SAMPLE_ADDR |
			     PERF_SAMPLE_PERIOD;
	return 0;
}

/* ---- LBR --------------------------------------------------------------------------- */

int bt_perf_attr__lbr(const struct bt_trace_config *user_cfg,
		      struct perf_event_attr *attr)
{
	const uint64_t plm = PERF_SAMPLE_BRANCH_USER | PERF_SAMPLE_BRANCH_KERNEL |
			     PERF_SAMPLE_BRANCH_HV;
	struct bt_trace_config cfg;
	uint64_t bst;
	int err;

	err = bt_perf_config__copy(&cfg, user_cfg);
	if (err)
		return err;
	attr_common(attr, PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES, &cfg);
	attr->sample_period = cfg.period ? cfg.period : BT_PERF_DEFAULT_PERIOD;
	attr->sample_type |= PERF_SAMPLE_IP | PERF_SAMPLE_BRANCH_STACK;
	bst = cfg.branch_sample_type ? cfg.branch_sample_type :
				       PERF_SAMPLE_BRANCH_ANY;
	if (!(bst & plm)) {
		if (!attr->exclude_user)
			bst |= PERF_SAMPLE_BRANCH_USER;
		if (!attr->exclude_kernel)
			bst |= PERF_SAMPLE_BRANCH_KERNEL;
	}
	attr->branch_sample_type = bst;
	return 0;
}

/* ---- Sideband ------------------------------------------------------------------------ */

void bt_perf_attr__sideband(struct perf_event_attr *attr)
{
	struct bt_trace_config cfg = { .sz = sizeof(cfg) };

	/*
	 * A software event that never counts: it exists for the records
	 * the kernel writes about the task or CPU (sample_id_all gives them
	 * the ID fields). exclude_kernel keeps it openable at
	 * perf_event_paranoid 2; the records are written either way.
	 */
	attr_common(attr, PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY, &cfg);
	attr->mmap = 1;
	attr->mmap2 = 1;
	attr->comm = 1;
	attr->comm_exec = 1;
	attr->task = 1;
	attr->context_switch = 1;
}
