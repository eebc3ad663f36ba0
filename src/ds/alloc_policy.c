// SPDX-License-Identifier: BSD-3-Clause
/*
 * The allocator's policy: what a request is, what it costs, whom it may
 * share with, and what the kernel would refuse. Everything here decides
 * from the allocator's own sessions; nothing here asks the backend, so a
 * refusal (-EBUSY, -ENOMEM, -EINVAL) never reaches the kernel.
 * docs/allocator.md states the same rules in prose with worked examples.
 */
#include "ds/alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <linux/capability.h>

#include "common/opts.h"
#include "ds/pmu.h"

#define DS_DEFAULT_DATA	(64 * 1024ull)

bool bt_ds_facility_aux(uint32_t facility)
{
	/* step writes BTS records and pt-emu PT packets, as the hardware. */
	return facility == BT_FAC_PT || facility == BT_FAC_BTS ||
	       facility == BT_FAC_STEP || facility == BT_FAC_PTEMU;
}

int bt_ds_req__parse(const struct bt_ds *ds, const struct bt_ds_request *user,
		 struct ds_req *out)
{
	struct bt_ds_request req;
	int err;

	memset(out, 0, sizeof(*out));
	if (!user)
		return -EINVAL;
	err = bt_opts_copy(&req, sizeof(req), user);
	if (err)
		return err;

	switch (req.target.kind) {
	case BT_TARGET_TASK:
		if (req.target.id <= 0)
			return -EINVAL;
		break;
	case BT_TARGET_CPU:
		if (req.target.id < 0 || (uint32_t)req.target.id >= ds->nr_cpus)
			return -EINVAL;
		break;
	case BT_TARGET_ALL:
		req.target.id = -1;	/* the id means nothing here */
		break;
	default:
		return -EINVAL;
	}
	if (req.facility >= BT_FAC__COUNT)
		return -EINVAL;
	/* ptrace steps a task: the stepping facilities have no CPU form. */
	if ((req.facility == BT_FAC_STEP || req.facility == BT_FAC_PTEMU) &&
	    req.target.kind != BT_TARGET_TASK)
		return -EINVAL;
	if (req.mode != BT_MODE_STREAM && req.mode != BT_MODE_SNAPSHOT)
		return -EINVAL;

	err = bt_opts_copy(&out->config, sizeof(out->config), req.config);
	if (err)
		return err;
	if (!out->config.user && !out->config.kernel)
		out->config.user = true;
	if (out->config.mtc_period > 15)
		return -EINVAL;
	if (out->config.filter && !out->config.filter[0])
		out->config.filter = NULL;	/* "" is no filter */

	if (!bt_pmu_pages_pow2(req.aux_bytes) || req.aux_bytes < ds->min_buf)
		return -EINVAL;
	if (!req.data_bytes)
		req.data_bytes = DS_DEFAULT_DATA;
	if (!bt_pmu_pages_pow2(req.data_bytes))
		return -EINVAL;

	out->target = req.target;
	out->facility = req.facility;
	out->mode = req.mode;
	out->buf_bytes = req.aux_bytes;
	/* A sample facility's buffer is its data ring: aux_bytes sizes it. */
	out->data_bytes = bt_ds_facility_aux(req.facility) ? req.data_bytes : 0;
	return 0;
}

uint64_t bt_ds_cost(uint32_t facility, uint64_t data_bytes, uint64_t buf_bytes)
{
	if (bt_ds_facility_aux(facility))
		return BT_PMU_PAGE + data_bytes + buf_bytes;
	return BT_PMU_PAGE + buf_bytes;
}

uint64_t bt_tracer__avail(const struct bt_tracer *t)
{
	if (t->unlimited)
		return UINT64_MAX;
	return t->charged >= t->budget ? 0 : t->budget - t->charged;
}

uint64_t bt_ds_session__fit(const struct ds_session *s, uint64_t avail)
{
	for (uint64_t b = s->buf_bytes; b >= s->ds->min_buf; b /= 2) {
		if (bt_ds_cost(s->facility, s->data_bytes, b) <= avail)
			return b;
	}
	return 0;
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return !strcmp(a, b);
}

/*
 * Compatibility (docs/allocator.md, "Sharing"): the same facility and
 * mode; the live session traces at least the privilege levels asked for
 * (the view drops the others in software, as seed 004 proposes); and the
 * settings that change what the hardware writes are equal. Sizes never
 * make a request incompatible: it shares at the live sizes.
 */
bool bt_ds_session__compatible(const struct ds_session *s, const struct ds_req *r)
{
	const struct bt_trace_config *a = &s->config, *b = &r->config;

	if (s->facility != r->facility || s->mode != r->mode)
		return false;
	if ((b->user && !a->user) || (b->kernel && !a->kernel))
		return false;

	switch (s->facility) {
	case BT_FAC_PT:
	case BT_FAC_PTEMU:
		if (a->tsc != b->tsc || a->mtc != b->mtc || a->cyc != b->cyc ||
		    a->noretcomp != b->noretcomp ||
		    a->no_branch != b->no_branch ||
		    a->psb_period != b->psb_period)
			return false;
		if (a->mtc && a->mtc_period != b->mtc_period)
			return false;
		if (a->cyc && a->cyc_thresh != b->cyc_thresh)
			return false;
		/* An unfiltered session holds everything a filter selects. */
		return !a->filter || str_eq(a->filter, b->filter);
	case BT_FAC_PEBS:
		return a->pebs_config == b->pebs_config &&
		       a->period == b->period;
	case BT_FAC_LBR:
		return a->branch_sample_type == b->branch_sample_type;
	default:		/* BTS, step: only the privilege levels */
		return true;
	}
}

static bool same_target(struct bt_target a, struct bt_target b)
{
	return a.kind == b.kind && a.id == b.id;
}

/*
 * The kernel's rules, as the allocator keeps them (docs/allocator.md,
 * "What the kernel refuses"): an exclusive facility has one event per
 * context (a task, or a CPU), and PT, BTS, LBR and the stepping
 * facilities exclude each other there; per-task events and per-CPU
 * events of exclusive facilities never coexist (the kernel's
 * exclusive_cnt for one PMU; across facilities the task would run on the
 * CPU the other one holds).
 */
enum ds_verdict bt_ds__decide(const struct bt_ds *ds, const struct ds_req *r,
			  struct ds_session **with)
{
	const struct ds_list *n;
	struct ds_session *s, *cpu_wide = NULL, *task_wide = NULL;

	*with = NULL;
	if (!bt_facility_exclusive(r->facility)) {
		for (n = ds->sessions.next; n != &ds->sessions; n = n->next) {
			s = ds_entry(n, struct ds_session, node);
			if (same_target(s->target, r->target) &&
			    bt_ds_session__compatible(s, r)) {
				*with = s;
				return DS_SHARE;
			}
		}
		return DS_NEW;
	}

	for (n = ds->sessions.next; n != &ds->sessions; n = n->next) {
		s = ds_entry(n, struct ds_session, node);
		if (!bt_facility_exclusive(s->facility))
			continue;
		if (s->target.kind == BT_TARGET_CPU) {
			if (!cpu_wide)
				cpu_wide = s;
		} else if (!task_wide) {
			task_wide = s;
		}
	}

	if (r->target.kind == BT_TARGET_TASK && cpu_wide) {
		/* Served from every per-CPU session, or refused. */
		for (n = ds->sessions.next; n != &ds->sessions; n = n->next) {
			s = ds_entry(n, struct ds_session, node);
			if (!bt_facility_exclusive(s->facility) ||
			    s->target.kind != BT_TARGET_CPU)
				continue;
			if (!bt_ds_session__compatible(s, r)) {
				*with = s;
				return DS_BUSY;
			}
		}
		return DS_FILTER;
	}
	if (r->target.kind == BT_TARGET_CPU && task_wide) {
		*with = task_wide;
		return DS_BUSY;
	}

	for (n = ds->sessions.next; n != &ds->sessions; n = n->next) {
		s = ds_entry(n, struct ds_session, node);
		if (!bt_facility_exclusive(s->facility) ||
		    !same_target(s->target, r->target))
			continue;
		*with = s;
		return bt_ds_session__compatible(s, r) ? DS_SHARE : DS_BUSY;
	}
	return DS_NEW;
}

/* CAP_IPC_LOCK in @pid's effective set, from /proc (false if unknown). */
static bool has_ipc_lock(pid_t pid)
{
	char path[64], line[256];
	unsigned long long eff;
	bool cap = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "CapEff: %llx", &eff) == 1) {
			cap = eff & (1ull << CAP_IPC_LOCK);
			break;
		}
	}
	fclose(f);
	return cap;
}

int bt_ds_budget_read(pid_t pid, uint64_t *budget, bool *unlimited)
{
	struct rlimit rl;

	if (prlimit(pid, RLIMIT_MEMLOCK, NULL, &rl))
		return -errno;
	*budget = rl.rlim_cur;
	*unlimited = rl.rlim_cur == RLIM_INFINITY || has_ipc_lock(pid);
	if (*unlimited)
		*budget = UINT64_MAX;
	return 0;
}
