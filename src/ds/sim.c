// SPDX-License-Identifier: BSD-3-Clause
/*
 * The sim backend: the kernel's side of perf_event_open(2), modelled.
 *
 * This file is perf_event_open() and the ioctls (open, enable,
 * set_filter, close) with the kernel's exclusivity rules. perf_mmap()
 * and its mlock accounting are in sim_mmap.c; the records, the rings and
 * the drivers in sim_ring.c, sim_ds.c and sim_topa.c. docs/sim.md
 * describes the model and where it departs from the kernel.
 *
 * Exclusivity (kernel/events/core.c exclusive_event_init() and
 * exclusive_event_installable(); arch/x86/events/core.c
 * x86_add_exclusive()):
 *   - intel_pt and intel_bts are PERF_PMU_CAP_EXCLUSIVE: one event of
 *     each per context (a task, or a CPU), and per-task and per-CPU
 *     events of the same PMU never coexist (pmu->exclusive_cnt); EBUSY;
 *   - PT, BTS and LBR exclude each other in one context; EBUSY (the
 *     kernel's x86_add_exclusive() makes this system-wide; the model
 *     keeps it to one context, as ARCHITECTURE.md states the rule);
 *   - PEBS is a counter like any other: no rule;
 *   - step and pt-emu need ptrace, which allows one tracer per task: one
 *     of them per task, and no per-CPU form (EINVAL).
 */
#include "ds/sim_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/opts.h"

static const struct bt_pmu_ops sim_ops;

/* ---- time --------------------------------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bt_sim__tsc_locked(const struct bt_sim *s)
{
	uint64_t ns = mono_ns() - s->t0_ns;

	/* ns * hz / 1e9 without overflow for hz below 18 GHz */
	return ns / 1000000000u * s->tsc_hz +
	       ns % 1000000000u * s->tsc_hz / 1000000000u;
}

/*
 * The conversion perf_event_mmap_page documents for cap_user_time_zero,
 * so a consumer turning TSC into perf time with the page's fields gets
 * exactly the timestamps in our records.
 */
uint64_t bt_sim__tsc_to_time(const struct bt_sim *s, uint64_t tsc)
{
	uint64_t quot = tsc >> s->time_shift;
	uint64_t rem = tsc & ((1ull << s->time_shift) - 1);

	return s->t0_ns + quot * s->time_mult +
	       ((rem * s->time_mult) >> s->time_shift);
}

/* clocks_calc_mult_shift(from = tsc_hz, to = NSEC_PER_SEC, maxsec = 0). */
static void calc_mult_shift(uint64_t hz, uint32_t *mult, uint16_t *shift)
{
	uint64_t tmp = 0;
	int sft;

	for (sft = 32; sft > 0; sft--) {
		tmp = ((uint64_t)1000000000u << sft) + hz / 2;
		tmp /= hz;
		if ((tmp >> 32) == 0)
			break;
	}
	*mult = (uint32_t)tmp;
	*shift = (uint16_t)sft;
}

/* ---- tasks -------------------------------------------------------------- */

struct sim_task *bt_sim__task(struct bt_sim *s, pid_t tid)
{
	struct sim_task *t;

	for (unsigned i = 0; i < s->nr_tasks; i++) {
		if (s->tasks[i].tid == tid)
			return &s->tasks[i];
	}
	if (s->nr_tasks == s->cap_tasks) {
		unsigned cap = s->cap_tasks ? s->cap_tasks * 2 : 16;

		t = realloc(s->tasks, cap * sizeof(*t));
		if (!t)
			return NULL;
		s->tasks = t;
		s->cap_tasks = cap;
	}
	t = &s->tasks[s->nr_tasks++];
	t->pid = tid;
	t->tid = tid;
	t->cpu = 0;
	return t;
}

void bt_sim__current(struct bt_sim *s, const struct bt_pmu_event *ev,
		     pid_t *pid, pid_t *tid, int *cpu)
{
	if (ev->target.kind == BT_TARGET_TASK) {
		struct sim_task *t = bt_sim__task(s, ev->target.id);

		*pid = t ? t->pid : ev->target.id;
		*tid = ev->target.id;
		*cpu = t ? t->cpu : 0;
		return;
	}
	*pid = s->cpu_curr[ev->target.id].pid;
	*tid = s->cpu_curr[ev->target.id].tid;
	*cpu = ev->target.id;
}

bool bt_sim__owns(struct bt_sim *s, const struct bt_pmu_event *ev)
{
	for (const struct bt_pmu_event *e = s->events; e; e = e->next) {
		if (e == ev)
			return true;
	}
	return false;
}

bool bt_sim_is(const struct bt_pmu *pmu)
{
	return pmu && pmu->ops == &sim_ops;
}

uint64_t bt_sim_tsc(struct bt_pmu *pmu)
{
	struct bt_sim *s;
	uint64_t tsc;

	if (!bt_sim_is(pmu))
		return 0;
	s = sim_of(pmu);
	pthread_mutex_lock(&s->lock);
	tsc = bt_sim__tsc_locked(s);
	pthread_mutex_unlock(&s->lock);
	return tsc;
}

/* ---- exclusivity -------------------------------------------------------- */

static bool same_context(const struct bt_pmu_event *a,
			 const struct bt_target *t)
{
	return a->target.kind == t->kind && a->target.id == t->id;
}

/* Is one of PT, BTS, LBR (the x86 LBR-exclusive group)? */
static bool lbr_group(uint32_t f)
{
	return f == BT_FAC_PT || f == BT_FAC_BTS || f == BT_FAC_LBR;
}

static int check_exclusive(struct bt_sim *s, uint32_t fac,
			   const struct bt_target *t)
{
	for (const struct bt_pmu_event *e = s->events; e; e = e->next) {
		if (e->sideband)
			continue;
		if (fac == BT_FAC_STEP || fac == BT_FAC_PTEMU) {
			/* ptrace: one tracer per task */
			if ((e->facility == BT_FAC_STEP ||
			     e->facility == BT_FAC_PTEMU) && same_context(e, t))
				return -EBUSY;
			continue;
		}
		if (!lbr_group(fac) || !lbr_group(e->facility))
			continue;
		if (same_context(e, t)) {
			/* one intel_pt/intel_bts per context, and PT, BTS and
			 * LBR exclude each other there; LBR users share */
			if (e->facility != fac || fac != BT_FAC_LBR)
				return -EBUSY;
			continue;
		}
		/* pmu->exclusive_cnt: per-task and per-CPU never together */
		if (e->facility == fac && fac != BT_FAC_LBR &&
		    e->target.kind != t->kind)
			return -EBUSY;
	}
	return 0;
}

/* ---- open / close ----------------------------------------------------- */

/* The attr perf would have opened, for the record layouts we write. */
static void init_attr(struct bt_pmu_event *ev, const struct bt_trace_config *c)
{
	struct perf_event_attr *a = &ev->attr;
	bool user = c->user || !c->kernel;

	memset(a, 0, sizeof(*a));
	a->size = sizeof(*a);
	a->disabled = 1;
	a->sample_id_all = 1;
	a->exclude_user = !user;
	a->exclude_kernel = !c->kernel;
	a->sample_type = SIM_SAMPLE_ID_TYPE;
	if (ev->sideband) {
		a->type = PERF_TYPE_SOFTWARE;
		a->config = PERF_COUNT_SW_DUMMY;
		a->comm = a->comm_exec = a->mmap = a->mmap2 = a->task = 1;
		a->context_switch = 1;
		a->inherit = ev->target.kind == BT_TARGET_TASK;
		return;
	}
	switch (ev->facility) {
	case BT_FAC_PEBS:
		a->type = PERF_TYPE_RAW;
		a->config = c->pebs_config ? c->pebs_config : 0x00c4;
		a->sample_period = c->period ? c->period : 10000;
		a->precise_ip = 3;
		a->sample_type |= PERF_SAMPLE_IP | PERF_SAMPLE_ADDR |
				  PERF_SAMPLE_PERIOD | PERF_SAMPLE_REGS_INTR;
		/* AX..SP, IP, FLAGS, R8..R15 (asm/perf_regs.h) */
		a->sample_regs_intr = 0x3ffull | (0xffull << 16);
		break;
	case BT_FAC_LBR:
		a->type = PERF_TYPE_HARDWARE;
		a->config = PERF_COUNT_HW_CPU_CYCLES;
		a->sample_period = c->period ? c->period : 100000;
		a->sample_type |= PERF_SAMPLE_IP | PERF_SAMPLE_BRANCH_STACK;
		a->branch_sample_type = c->branch_sample_type ?
			c->branch_sample_type :
			PERF_SAMPLE_BRANCH_ANY | PERF_SAMPLE_BRANCH_USER;
		break;
	default:		/* intel_pt, intel_bts and their emulations */
		a->type = PERF_TYPE_MAX + ev->facility;	/* a dynamic PMU */
		break;
	}
}

static int sim_open(struct bt_pmu *pmu, const struct bt_pmu_open_args *uargs,
		    struct bt_pmu_event **out)
{
	struct bt_sim *s = sim_of(pmu);
	struct bt_pmu_open_args args;
	struct bt_trace_config cfg;
	struct bt_pmu_event *ev;
	int err;

	if (!out || !uargs)
		return -EINVAL;
	*out = NULL;
	err = bt_opts_copy(&args, sizeof(args), uargs);
	if (err)
		return err;
	err = bt_opts_copy(&cfg, sizeof(cfg), args.config);
	if (err)
		return err;
	if (!args.sideband && args.facility >= BT_FAC__COUNT)
		return -EINVAL;
	if (args.target.kind == BT_TARGET_TASK) {
		if (args.target.id <= 0)
			return -EINVAL;
	} else if (args.target.kind == BT_TARGET_CPU) {
		if (args.target.id < 0 || (uint32_t)args.target.id >= s->nr_cpus)
			return -EINVAL;
		if (!args.sideband && (args.facility == BT_FAC_STEP ||
				       args.facility == BT_FAC_PTEMU))
			return -EINVAL;	/* ptrace follows tasks only */
	} else {
		return -EINVAL;
	}
	if (!args.sideband && args.facility == BT_FAC_PT &&
	    cfg.mtc_period > 15)
		return -EINVAL;

	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	ev->sim = s;
	ev->memfd = -1;
	ev->facility = args.sideband ? BT_FAC__COUNT : args.facility;
	ev->sideband = args.sideband;
	ev->target = args.target;
	ev->uid = args.uid;
	ev->pt.stop_idx = ev->pt.intr_idx = -1;
	init_attr(ev, &cfg);
	ev->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ev->efd < 0) {
		err = -errno;
		goto err_free;
	}

	pthread_mutex_lock(&s->lock);
	err = args.sideband ? 0 : check_exclusive(s, ev->facility, &ev->target);
	if (!err && ev->facility == BT_FAC_PEBS)
		err = bt_sim_pebs__setup(ev);
	if (!err && args.sideband && ev->target.kind == BT_TARGET_TASK) {
		ev->follow = malloc(8 * sizeof(*ev->follow));
		if (ev->follow) {
			ev->cap_follow = 8;
			ev->follow[ev->nr_follow++] = ev->target.id;
		} else {
			err = -ENOMEM;
		}
	}
	if (!err) {
		ev->id = ++s->next_id;
		ev->next = s->events;
		s->events = ev;
	}
	pthread_mutex_unlock(&s->lock);
	if (err)
		goto err_close;
	if (sim_is_pt(ev) && cfg.filter) {
		err = sim_ops.set_filter(pmu, ev, cfg.filter);
		if (err) {
			sim_ops.close(pmu, ev);
			return err;
		}
	}
	*out = ev;
	return 0;

err_close:
	bt_sim_pebs__free(ev);
	free(ev->follow);
	close(ev->efd);
err_free:
	free(ev);
	return err;
}

static void sim_close(struct bt_pmu *pmu, struct bt_pmu_event *ev)
{
	struct bt_sim *s = sim_of(pmu);
	struct bt_pmu_event **pp;

	if (!ev)
		return;
	pthread_mutex_lock(&s->lock);
	for (pp = &s->events; *pp; pp = &(*pp)->next) {
		if (*pp == ev) {
			*pp = ev->next;
			break;
		}
	}
	bt_sim__unmap_locked(s, ev);
	pthread_mutex_unlock(&s->lock);
	bt_sim_pebs__free(ev);
	free(ev->follow);
	close(ev->efd);
	free(ev);
}

/* ---- enable ------------------------------------------------------------- */

/* pmu->start() at sched-in: the driver takes the AUX handle. */
void bt_sim__driver_start(struct bt_pmu_event *ev)
{
	if (!ev->pc)
		return;
	if (sim_is_aux(ev))
		bt_sim_rb__itrace_start(ev);
	if (sim_is_bts(ev))
		bt_sim_bts__start(ev);
	else if (sim_is_pt(ev))
		bt_sim_pt__start(ev);
}

/* pmu->stop(PERF_EF_UPDATE) at sched-out. */
void bt_sim__driver_stop(struct bt_pmu_event *ev)
{
	if (sim_is_bts(ev))
		bt_sim_bts__stop(ev);
	else if (sim_is_pt(ev))
		bt_sim_pt__stop(ev);
	else if (ev->facility == BT_FAC_PEBS)
		bt_sim_pebs__drain(ev);
}

void bt_sim__pending_disable(struct bt_pmu_event *ev)
{
	if (!ev->pending_disable)
		return;
	ev->pending_disable = false;
	if (!ev->enabled)
		return;
	bt_sim__driver_stop(ev);
	ev->enabled = false;
}

static int sim_enable(struct bt_pmu *pmu, struct bt_pmu_event *ev, bool on)
{
	struct bt_sim *s = sim_of(pmu);

	if (!ev)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (on && !ev->enabled) {
		ev->enabled = true;
		bt_sim__driver_start(ev);
		bt_sim__pending_disable(ev);
	} else if (!on && ev->enabled) {
		bt_sim__driver_stop(ev);
		ev->enabled = false;
		ev->pending_disable = false;
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int bt_sim_flush(struct bt_pmu *pmu, struct bt_pmu_event *ev)
{
	struct bt_sim *s;
	int err = 0;

	if (!bt_sim_is(pmu))
		return -EINVAL;
	s = sim_of(pmu);
	pthread_mutex_lock(&s->lock);
	if (!bt_sim__owns(s, ev) || ev->sideband) {
		err = -EINVAL;
	} else if (ev->enabled) {
		/* a sched-out and sched-in: stop(PERF_EF_UPDATE), start */
		bt_sim__driver_stop(ev);
		bt_sim__driver_start(ev);
		bt_sim__pending_disable(ev);
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}

static int sim_fd(struct bt_pmu *pmu, struct bt_pmu_event *ev)
{
	(void)pmu;
	return ev ? ev->efd : -1;
}

/* ---- address filters ---------------------------------------------------- */

/* x86-64 valid_kernel_ip(): the upper canonical half. */
static bool kernel_ip(uint64_t ip)
{
	return ip >= 0xffff800000000000ull;
}

/*
 * One filter of perf_event_parse_addr_filter(): ACTION ADDR[/SIZE][@FILE]
 * with ACTION filter, start, stop or tracestop. Returns 0 or -EINVAL,
 * -EOPNOTSUPP (a file filter on a CPU), -ENOENT (no such file).
 */
static int parse_filter(const struct bt_pmu_event *ev, char *tok,
			struct sim_filter *f)
{
	static const char *const actions[] = {
		"filter", "start", "stop", "tracestop",
	};
	char *arg, *at, *slash, *end;
	struct stat st;
	unsigned i;

	memset(f, 0, sizeof(*f));
	arg = strchr(tok, ' ');
	if (!arg)
		return -EINVAL;
	*arg++ = '\0';
	for (i = 0; i < 4; i++) {
		if (!strcmp(tok, actions[i]))
			break;
	}
	if (i == 4)
		return -EINVAL;
	f->action = i;
	at = strchr(arg, '@');
	if (at)
		*at++ = '\0';
	slash = strchr(arg, '/');
	if (slash)
		*slash++ = '\0';
	if (!*arg)
		return -EINVAL;
	errno = 0;
	f->offset = strtoull(arg, &end, 0);
	if (errno || *end)
		return -EINVAL;
	if (slash) {
		f->size = strtoull(slash, &end, 0);
		if (errno || *end || !*slash)
			return -EINVAL;
	}
	/* "filter" needs a range */
	if (f->action == 0 && !f->size)
		return -EINVAL;
	f->kernel = !at;
	if (f->kernel) {
		if (ev->attr.exclude_kernel)
			return -EINVAL;
		if (!kernel_ip(f->offset) || !kernel_ip(f->offset + f->size))
			return -EINVAL;
		return 0;
	}
	if (!*at || strlen(at) >= sizeof(f->path))
		return -EINVAL;
	/* file filters need a task: one binary, one address space */
	if (ev->target.kind != BT_TARGET_TASK)
		return -EOPNOTSUPP;
	if (stat(at, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	snprintf(f->path, sizeof(f->path), "%s", at);
	return 0;
}

static int sim_set_filter(struct bt_pmu *pmu, struct bt_pmu_event *ev,
			  const char *filter)
{
	struct sim_filter parsed[SIM_MAX_FILTERS];
	struct bt_sim *s = sim_of(pmu);
	char *copy, *tok, *save;
	unsigned n = 0;
	int err = 0;

	if (!ev || !filter)
		return -EINVAL;
	/* perf_event_set_filter(): only PMUs with address filters */
	if (!sim_is_pt(ev))
		return -EINVAL;
	copy = strdup(filter);
	if (!copy)
		return -ENOMEM;
	/* tokens are separated by ',' or newlines; ' ' binds ACTION ADDR */
	for (tok = strtok_r(copy, ",\n", &save); tok;
	     tok = strtok_r(NULL, ",\n", &save)) {
		while (*tok == ' ')
			tok++;
		if (!*tok)
			continue;
		/* pt_event_addr_filters_validate(): the PMU's ranges */
		if (n == SIM_PT_ADDR_RANGES) {
			err = -EOPNOTSUPP;
			break;
		}
		err = parse_filter(ev, tok, &parsed[n]);
		if (err)
			break;
		n++;
	}
	free(copy);
	if (!err && n == 0)
		err = -EINVAL;
	if (err)
		return err;
	pthread_mutex_lock(&s->lock);
	memcpy(ev->filters, parsed, n * sizeof(parsed[0]));
	ev->nr_filters = n;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* ---- the backend -------------------------------------------------------- */

static const struct bt_pmu_ops sim_ops = {
	.name = "sim",
	.open = sim_open,
	.map = bt_sim__map,
	.unmap = bt_sim__unmap,
	.enable = sim_enable,
	.set_filter = sim_set_filter,
	.fd = sim_fd,
	.close = sim_close,
};

static void sim_destroy(struct bt_pmu *pmu)
{
	struct bt_sim *s = sim_of(pmu);

	/* events left open are closed, as the kernel does at exit */
	while (s->events)
		sim_close(pmu, s->events);
	pthread_mutex_destroy(&s->lock);
	free(s->users);
	free(s->tasks);
	free(s->cpu_curr);
	free(s);
}

struct bt_pmu *bt_pmu__new_sim(const struct bt_sim_opts *uopts)
{
	struct bt_sim_opts o;
	struct bt_sim *s;
	struct rlimit rl;
	long cpus;
	int err;

	err = bt_opts_copy(&o, sizeof(o), uopts);
	if (err)
		return errno = -err, NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return errno = ENOMEM, NULL;
	s->base.ops = &sim_ops;
	s->base.destroy = sim_destroy;
	/* sysctl_perf_event_mlock: 512 + PAGE_SIZE / 1024 */
	s->mlock_kb = o.mlock_kb ? o.mlock_kb : 512 + BT_PMU_PAGE / 1024;
	if (o.rlimit_memlock) {
		s->rlimit = o.rlimit_memlock;
	} else if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 &&
		   rl.rlim_cur != RLIM_INFINITY) {
		s->rlimit = rl.rlim_cur;
	} else {
		s->rlimit = UINT64_MAX;
	}
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	s->nr_cpus = o.nr_cpus ? o.nr_cpus : (uint32_t)(cpus > 0 ? cpus : 1);
	s->cap_ipc_lock = o.cap_ipc_lock;
	s->tsc_hz = o.tsc_hz ? o.tsc_hz : 2000000000ull;
	s->t0_ns = mono_ns();
	calc_mult_shift(s->tsc_hz, &s->time_mult, &s->time_shift);
	s->cpu_curr = calloc(s->nr_cpus, sizeof(*s->cpu_curr));
	if (!s->cpu_curr || pthread_mutex_init(&s->lock, NULL)) {
		free(s->cpu_curr);
		free(s);
		return errno = ENOMEM, NULL;
	}
	for (uint32_t i = 0; i < s->nr_cpus; i++)
		s->cpu_curr[i].cpu = (int)i;
	return &s->base;
}
