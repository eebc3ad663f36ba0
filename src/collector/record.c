// SPDX-License-Identifier: BSD-3-Clause
/*
 * The recorder (include/btrail/record.h): facility choice, the ring
 * session, the allocator's view(s), the collector, the traced command,
 * triggers, and the bundle at the end.
 *
 * Threads: the caller's thread runs the target (bt_step__run() for step
 * and pt-emu: ptrace requests must come from the thread that attached;
 * the waitpid loop for the hardware facilities); the collector drains in
 * its own threads; a control thread waits for on-demand snapshot
 * requests (an eventfd a signal handler may write) and writes the
 * snapshot bundles, so a request never waits for the tracee.
 */
#include <btrail/record.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <btrail/bundle.h>
#include <btrail/collector.h>
#include <btrail/events.h>
#include <btrail/kmes.h>
#include <btrail/notify.h>
#include <btrail/step.h>

#include "collector/record_int.h"
#include "common/log.h"
#include "common/opts.h"

#define REC_AUX_DEFAULT		(1ull << 20)
#define REC_SIDEBAND_BYTES	(64ull << 10)
#define REC_MAX_CPUS		1024u

struct rec_src {
	struct bt_pmu_event *sb;	/* our sideband event, or NULL */
	struct bt_pmu_buffers sbb;
	struct bt_ds_view *view;	/* a whole or a single view */
};

struct bt_record {
	struct bt_record_opts o;
	int facility;
	char why[320];
	char session[64];
	char *output;
	char **argv;			/* copy of o.argv */
	int status;
	unsigned snapshots;

	int req_fd;			/* eventfd: snapshot requests */
	int note_fd;			/* eventfd: the notifier's firings */
	uint32_t when_kind;		/* enum bt_notify_kind; 0: none */
	int64_t when_level;
	struct bt_notify *notify;	/* the control thread's */
	int quit_fd;			/* eventfd: the control thread ends */
	volatile sig_atomic_t stop;	/* bt_record__stop() */

	/* The capture, while bt_record__run() runs. */
	struct bt_pmu *pmu;
	struct bt_ds *ds;
	struct bt_tracer *tracer;
	struct rec_src *src;
	uint32_t nsrc;
	struct bt_kmes_session *ks;
	struct bt_collector *col;
	pthread_t ctl;
	bool ctl_started;
	pthread_mutex_t lock;		/* freeze and bundle writes */
	bool frozen;
	pid_t pid;			/* the traced process, 0 none */
};

/* ---- The facility ------------------------------------------------------ */

int bt_record_choose(int requested, const struct bt_cap *ucaps, char *why,
		     size_t why_len)
{
	static const int order[] = { BT_FAC_PT, BT_FAC_BTS, BT_FAC_LBR,
				     BT_FAC_STEP };
	struct bt_cap probed[BT_FAC__COUNT];
	const struct bt_cap *caps = ucaps;
	char missing[BT_FAC__COUNT * 16] = "";
	int err;

	if (!why || !why_len)
		return -EINVAL;
	why[0] = '\0';
	if (requested != BT_RECORD_AUTO &&
	    (requested < 0 || requested >= BT_FAC__COUNT))
		return -EINVAL;
	if (!caps) {
		struct bt_caps_opts co = { .sz = sizeof(co) };

		err = bt_caps_probe(probed, &co);
		if (err)
			return err;
		caps = probed;
	}
	if (requested != BT_RECORD_AUTO) {
		if (!caps[requested].present) {
			snprintf(why, why_len, "%s is not available: %s",
				 bt_facility_name(requested),
				 caps[requested].reason);
			return -ENODEV;
		}
		snprintf(why, why_len, "%s (asked for): %s",
			 bt_facility_name(requested), caps[requested].reason);
		return requested;
	}
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		int f = order[i];

		if (caps[f].present) {
			if (missing[0])
				snprintf(why, why_len,
					 "auto chose %s (%s): %s",
					 bt_facility_name(f), missing,
					 caps[f].reason);
			else
				snprintf(why, why_len, "auto chose %s: %s",
					 bt_facility_name(f), caps[f].reason);
			return f;
		}
		/* Name what was passed over and the first reason for it. */
		size_t n = strlen(missing);

		snprintf(missing + n, sizeof(missing) - n, "%sno %s",
			 n ? ", " : "", bt_facility_name(f));
	}
	snprintf(why, why_len, "auto found no facility: %s (step: %s)",
		 missing, caps[BT_FAC_STEP].reason);
	return -ENODEV;
}

/* ---- Options ----------------------------------------------------------- */

static bool pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* "0-3,6" -> a bitmap of @max CPUs. Returns the count or -EINVAL. */
static int parse_cpus(const char *s, bool *set, uint32_t max)
{
	int count = 0;

	if (!s || !*s)
		return -EINVAL;
	while (*s) {
		char *end;
		unsigned long a, b;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		a = strtoul(s, &end, 10);
		b = a;
		if (*end == '-') {
			s = end + 1;
			if (*s < '0' || *s > '9')
				return -EINVAL;
			b = strtoul(s, &end, 10);
		}
		if (a > b || b >= max)
			return -EINVAL;
		for (unsigned long c = a; c <= b; c++) {
			count += !set[c];
			set[c] = true;
		}
		if (*end == ',' && end[1])
			end++;
		else if (*end)
			return -EINVAL;
		s = end;
	}
	return count;
}

static bool software(int f)
{
	return f == BT_FAC_STEP || f == BT_FAC_PTEMU;
}

/* "KIND>=N[KMG]" of bt_record_opts.snapshot_when. 0 or -EINVAL. */
static int parse_when(const char *spec, uint32_t *kind, int64_t *level)
{
	static const struct {
		const char *name;
		uint32_t kind;
	} kinds[] = {
		{ "unread", BT_NOTIFY_RING_UNREAD },
		{ "lost", BT_NOTIFY_RING_LOST_BYTES },
		{ "lost-events", BT_NOTIFY_RING_LOST_EVENTS },
		{ "rate", BT_NOTIFY_RING_RATE },
	};
	const char *op = strstr(spec, ">=");
	unsigned long long v;
	char *end;

	if (!op)
		return -EINVAL;
	*kind = 0;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strlen(kinds[i].name) == (size_t)(op - spec) &&
		    !strncmp(spec, kinds[i].name, (size_t)(op - spec)))
			*kind = kinds[i].kind;
	}
	if (!*kind || !isdigit((unsigned char)op[2]))
		return -EINVAL;
	errno = 0;
	v = strtoull(op + 2, &end, 10);
	switch (*end) {
	case 'K': v <<= 10; end++; break;
	case 'M': v <<= 20; end++; break;
	case 'G': v <<= 30; end++; break;
	}
	if (errno || *end || !v || v > (unsigned long long)INT64_MAX >> 30)
		return -EINVAL;
	*level = (int64_t)v;
	return 0;
}

struct bt_record *bt_record__new(const struct bt_record_opts *uopts)
{
	struct bt_record *r;
	bool cpus[REC_MAX_CPUS] = { false };
	const char *start_at, *cpus_arg;
	int targets, err;

	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->req_fd = r->quit_fd = r->note_fd = -1;
	r->status = -1;
	pthread_mutex_init(&r->lock, NULL);
	err = bt_opts_copy(&r->o, sizeof(r->o), uopts);
	if (err || !uopts)
		goto inval;
	/* Strings are copied below; until then free() must not see them. */
	start_at = r->o.start_at;
	cpus_arg = r->o.cpus;
	r->o.start_at = NULL;
	r->o.cpus = NULL;
	targets = !!r->o.argv + (r->o.pid > 0) + !!r->o.all_cpus + !!cpus_arg;
	/* A command may run beside per-CPU capture; otherwise one target. */
	if (r->o.argv && (r->o.all_cpus || cpus_arg))
		targets--;
	if (targets != 1 || r->o.pid < 0 || (r->o.argv && !r->o.argv[0])) {
		pr_warn("record: give one target: a command, a pid, all CPUs "
			"or a CPU list");
		goto inval;
	}
	if (cpus_arg && parse_cpus(cpus_arg, cpus, REC_MAX_CPUS) < 0) {
		pr_warn("record: bad CPU list '%s' (e.g. 0-3,6)", cpus_arg);
		goto inval;
	}
	if (!r->o.aux_bytes)
		r->o.aux_bytes = REC_AUX_DEFAULT;
	if (!pow2(r->o.aux_bytes) || r->o.aux_bytes < 4096) {
		pr_warn("record: buffer size %llu is not a power of two of at "
			"least 4 KiB", (unsigned long long)r->o.aux_bytes);
		goto inval;
	}
	if (r->o.mode > BT_MODE_SNAPSHOT)
		goto inval;
	if (r->o.snapshot_when &&
	    parse_when(r->o.snapshot_when, &r->when_kind, &r->when_level)) {
		pr_warn("record: bad --snapshot-when '%s' (e.g. unread>=1M, "
			"lost>=1, lost-events>=1, rate>=100000)",
			r->o.snapshot_when);
		goto inval;
	}
	r->o.snapshot_when = NULL;	/* parsed; the string is not ours */

	if (start_at && r->o.facility != BT_RECORD_AUTO &&
	    !software(r->o.facility)) {
		pr_warn("record: --start-at is for step and pt-emu; %s traces "
			"from the start", bt_facility_name(r->o.facility));
		goto inval;
	}
	r->facility = bt_record_choose(r->o.facility, NULL, r->why,
				       sizeof(r->why));
	if (r->facility < 0) {
		errno = -r->facility;
		pr_warn("record: %s", r->why);
		goto fail;
	}
	if (software(r->facility) && (r->o.all_cpus || cpus_arg)) {
		pr_warn("record: %s traces a process, not CPUs: give a command "
			"or -p PID", bt_facility_name(r->facility));
		goto inval;
	}
	if (start_at && !software(r->facility)) {
		pr_warn("record: --start-at is for step and pt-emu; %s traces "
			"from the start", bt_facility_name(r->facility));
		goto inval;
	}
	if (r->o.session)
		snprintf(r->session, sizeof(r->session), "%s", r->o.session);
	else
		snprintf(r->session, sizeof(r->session), "record-%d",
			 (int)getpid());
	r->output = strdup(r->o.output ? r->o.output : "btrail.bundle");
	if (!r->output)
		goto fail;
	if (access(r->output, F_OK) == 0) {
		pr_warn("record: %s exists; remove it or give another -o",
			r->output);
		errno = EEXIST;
		goto fail;
	}
	r->o.output = r->output;
	if (r->o.argv) {
		size_t n = 0;

		while (r->o.argv[n])
			n++;
		r->argv = calloc(n + 1, sizeof(*r->argv));
		if (!r->argv)
			goto fail;
		for (size_t i = 0; i < n; i++) {
			r->argv[i] = strdup(r->o.argv[i]);
			if (!r->argv[i])
				goto fail;
		}
		r->o.argv = r->argv;
	}
	r->o.session = r->session;
	r->o.start_at = start_at ? strdup(start_at) : NULL;
	r->o.cpus = cpus_arg ? strdup(cpus_arg) : NULL;
	if ((start_at && !r->o.start_at) || (cpus_arg && !r->o.cpus))
		goto fail;
	r->req_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->quit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->note_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->req_fd < 0 || r->quit_fd < 0 || r->note_fd < 0)
		goto fail;
	return r;
inval:
	errno = EINVAL;
fail:
	err = errno;
	bt_record__free(r);
	errno = err;
	return NULL;
}

int bt_record__facility(const struct bt_record *r)
{
	return r ? r->facility : -EINVAL;
}

const char *bt_record__why(const struct bt_record *r)
{
	return r ? r->why : NULL;
}

const char *bt_record__session(const struct bt_record *r)
{
	return r ? r->session : NULL;
}

const char *bt_record__output(const struct bt_record *r)
{
	return r ? r->output : NULL;
}

int bt_record__status(const struct bt_record *r)
{
	return r ? r->status : -1;
}

unsigned bt_record__snapshots(const struct bt_record *r)
{
	return r ? r->snapshots : 0;
}

void bt_record__request(struct bt_record *r)
{
	uint64_t one = 1;
	int saved = errno;

	/* A full counter fails: a request is pending anyway. */
	if (r && r->req_fd >= 0)
		(void)!write(r->req_fd, &one, sizeof(one));
	errno = saved;
}

void bt_record__stop(struct bt_record *r)
{
	uint64_t one = 1;
	int saved = errno;

	if (!r)
		return;
	r->stop = 1;
	if (r->quit_fd >= 0)
		(void)!write(r->quit_fd, &one, sizeof(one));
	errno = saved;
}

/* ---- Triggers and bundles ---------------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Emit @trig as bt.trigger on every slot ourselves (with its bt.schema
 * first, so the ring stays self-describing): for a snapshot taken while
 * capture goes on, and for a trigger after capture was frozen.
 */
static int emit_trigger(struct bt_record *r, const struct bt_trigger *t)
{
	const struct bt_event_type *types = bt_event_types(NULL);
	const struct bt_event_type *tt = &types[BT_EVID_TRIGGER];
	struct bt_event_value v[BT_TRIGGER__N];
	unsigned char schema[512], buf[512];
	long ns, nt;
	int cpu = sched_getcpu();

	memset(v, 0, sizeof(v));
	v[BT_TRIGGER_REASON].p = t->reason;
	v[BT_TRIGGER_REASON].len = strlen(t->reason);
	v[BT_TRIGGER_TIME].u = mono_ns();
	v[BT_TRIGGER_PID].i = t->pid;
	v[BT_TRIGGER_TID].i = t->tid;
	v[BT_TRIGGER_SIGNO].i = t->signo;
	v[BT_TRIGGER_CODE].i = t->code;
	v[BT_TRIGGER_ADDR].u = t->addr;
	v[BT_TRIGGER_IP].u = t->ip;
	if (t->has_regs) {
		v[BT_TRIGGER_REGS].p = &t->regs;
		v[BT_TRIGGER_REGS].len = BT_REGS_SIZE;
	} else {
		v[BT_TRIGGER_REGS].p = "";
	}
	ns = bt_event_schema_encode(tt, schema, sizeof(schema));
	nt = bt_event_encode(tt, v, buf, sizeof(buf));
	if (ns < 0 || nt < 0)
		return ns < 0 ? (int)ns : (int)nt;
	for (uint32_t s = 0; s < bt_kmes_session__slots(r->ks); s++) {
		struct bt_kmes_stamp st = {
			.sz = sizeof(st), .has_cpu = cpu >= 0,
			.cpu_id = (uint16_t)(cpu >= 0 ? cpu : 0),
		};
		struct kmes_emit_entry e[2] = {
			{ BT_EV_SCHEMA, sizeof(BT_EV_SCHEMA) - 1, schema,
			  (uint32_t)ns },
			{ BT_EV_TRIGGER, sizeof(BT_EV_TRIGGER) - 1, buf,
			  (uint32_t)nt },
		};
		int n = bt_kmes_session__emit_trusted(r->ks, s, &st, e, 2);

		if (n < 0)
			return n;
	}
	return 0;
}

static int write_bundle(struct bt_record *r, const char *path)
{
	struct bt_bundle_write_opts bo = {
		.sz = sizeof(bo), .with_binaries = r->o.with_binaries,
		.progress = r->o.progress,
	};
	int err = bt_bundle_write(r->session, path, &bo);

	if (err)
		pr_warn("record: writing bundle %s from session %s: %s", path,
			r->session, strerror(-err));
	return err;
}

/* Freeze with @t (once) and write the final bundle. */
static int finish(struct bt_record *r, const struct bt_trigger *t)
{
	int err = 0;

	pthread_mutex_lock(&r->lock);
	if (r->col && !r->frozen) {
		err = bt_collector__freeze(r->col, t);
		if (err)
			pr_warn("record: freezing the capture: %s",
				strerror(-err));
		r->frozen = true;
	} else if (r->ks && t) {
		err = emit_trigger(r, t);
	}
	if (r->ks) {
		int e2 = write_bundle(r, r->output);

		err = err ? err : e2;
	}
	pthread_mutex_unlock(&r->lock);
	return err;
}

/* An on-demand snapshot: <output>.snapshot-N; @reason for bt.trigger. */
static void snapshot(struct bt_record *r, const char *reason)
{
	struct bt_trigger t = {
		.sz = sizeof(t), .reason = reason, .pid = r->pid,
		.tid = r->pid,
	};
	char path[PATH_MAX];
	int err;

	pthread_mutex_lock(&r->lock);
	snprintf(path, sizeof(path), "%s.snapshot-%u", r->output,
		 r->snapshots + 1);
	if (r->frozen) {
		err = emit_trigger(r, &t);
	} else if (r->o.mode == BT_MODE_SNAPSHOT) {
		/* The hardware buffer is copied only by a freeze. */
		err = bt_collector__freeze(r->col, &t);
		r->frozen = true;
	} else {
		long n = bt_collector__drain(r->col);

		err = n < 0 ? (int)n : emit_trigger(r, &t);
	}
	if (!err)
		err = write_bundle(r, path);
	if (!err) {
		r->snapshots++;
		pr_info("record: snapshot bundle %s", path);
	} else {
		pr_warn("record: snapshot %s failed: %s", path,
			strerror(-err));
	}
	pthread_mutex_unlock(&r->lock);
}

/* How often the control thread samples the notifier's ring levels. */
#define REC_NOTIFY_PERIOD_MS	100

static void *ctl_main(void *arg)
{
	struct bt_record *r = arg;
	sigset_t all;

	/* Signals are for the thread that runs the target. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = r->req_fd, .events = POLLIN },
			{ .fd = r->quit_fd, .events = POLLIN },
			{ .fd = r->note_fd, .events = POLLIN },
		};
		uint64_t v;
		int n;

		n = poll(p, 3, r->notify ? REC_NOTIFY_PERIOD_MS : -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (p[0].revents && read(r->req_fd, &v, sizeof(v)) > 0)
			snapshot(r, "request");
		if (r->notify && bt_notify__poll(r->notify) < 0)
			pr_debug("record: notifier poll failed\n");
		if (read(r->note_fd, &v, sizeof(v)) > 0)
			snapshot(r, "notifier");
	}
	return NULL;
}

/*
 * The --snapshot-when watch: an UP edge of the level summed over the
 * session's rings (those there now), delivered to note_fd.
 */
static int setup_notify(struct bt_record *r)
{
	struct bt_notify_watch w = {
		.sz = sizeof(w), .kind = r->when_kind, .scope = BT_NOTIFY_SUM,
		.eventfd = r->note_fd,
	};
	uint32_t slots = bt_kmes_session__slots(r->ks);
	int err;

	r->notify = bt_notify__new(NULL);
	if (!r->notify)
		return -errno;
	for (uint32_t i = 0; i < slots; i++) {
		struct bt_notify_ring nr = {
			.sz = sizeof(nr), .session = r->session, .slot = i,
		};

		err = bt_notify__add_ring(r->notify, &nr);
		if (err < 0)
			return err;
	}
	w.th.threshold_level = r->when_level;
	w.th.flags = BT_THRESHOLD_UP;
	w.th.sigev.sigev_notify = BT_SIGEV_EVENTFD;
	err = bt_notify__watch(r->notify, &w);
	return err < 0 ? err : 0;
}

/* ---- Common set-up ----------------------------------------------------- */

static int setup_ds(struct bt_record *r)
{
	struct bt_ds_opts dso = { .sz = sizeof(dso) };
	struct bt_tracer_opts to = {
		.sz = sizeof(to), .uid = getuid(), .pid = getpid(),
		.name = "btrail record",
	};

	r->ds = bt_ds__new(r->pmu, &dso);
	if (!r->ds)
		return -errno;
	r->tracer = bt_ds__join(r->ds, &to);
	return r->tracer ? 0 : -errno;
}

static int request(struct bt_record *r, struct bt_target target,
		   struct bt_ds_view **view)
{
	struct bt_ds_request req = {
		.sz = sizeof(req), .target = target, .facility = r->facility,
		.aux_bytes = r->o.aux_bytes, .mode = r->o.mode,
	};
	int err = bt_tracer__request(r->tracer, &req, view);

	if (err == -EBUSY)
		pr_warn("record: %s is held by pid %d (%s)",
			bt_facility_name(r->facility), (int)req.busy_pid,
			req.busy_name);
	else if (err == -ENOMEM)
		pr_warn("record: %llu bytes of trace buffer are over the "
			"locked-memory budget (%llu bytes, RLIMIT_MEMLOCK); "
			"use a smaller -m", (unsigned long long)r->o.aux_bytes,
			(unsigned long long)bt_tracer__budget(r->tracer));
	else if (err)
		pr_warn("record: opening %s: %s",
			bt_facility_name(r->facility), strerror(-err));
	return err;
}

/* A sideband event for @target, mapped and enabled, into @s. */
static int open_sideband(struct bt_record *r, struct bt_target target,
			 struct rec_src *s)
{
	const struct bt_pmu_ops *ops = bt_pmu__ops(r->pmu);
	struct bt_pmu_open_args a = {
		.sz = sizeof(a), .target = target, .sideband = true,
		.uid = getuid(),
	};
	int err = ops->open(r->pmu, &a, &s->sb);

	if (!err)
		err = ops->map(r->pmu, s->sb, REC_SIDEBAND_BYTES, 0, false,
			       &s->sbb);
	if (!err)
		err = ops->enable(r->pmu, s->sb, true);
	if (err)
		pr_warn("record: sideband event: %s", strerror(-err));
	return err;
}

static int add_source(struct bt_record *r, struct bt_ds_view *v,
		      struct rec_src *s, uint32_t slot)
{
	struct bt_collector_source cs = {
		.sz = sizeof(cs), .pmu = r->pmu,
		.trace = bt_ds_view__event(v),
		.trace_buf = bt_ds_view__buffers(v),
		.sideband = s ? s->sb : NULL,
		.sideband_buf = s && s->sb ? &s->sbb : NULL,
		.facility = (uint32_t)r->facility,
		.target = bt_ds_view__target(v), .slot = slot,
	};
	int err = bt_collector__add(r->col, &cs);

	return err < 0 ? err : 0;
}

static int create_session(struct bt_record *r, uint32_t kind)
{
	struct bt_kmes_session_opts ko = {
		.sz = sizeof(ko), .capacity = r->o.ring_bytes, .kind = kind,
	};

	r->ks = bt_kmes_session__create(r->session, &ko);
	if (!r->ks) {
		int err = -errno;

		pr_warn("record: creating ring session %s: %s%s", r->session,
			strerror(errno), errno == EEXIST ?
			" (another recorder? give --session NAME)" : "");
		return err;
	}
	return 0;
}

static int start_collector(struct bt_record *r)
{
	struct bt_collector_opts co = {
		.sz = sizeof(co), .session = r->ks, .mode = r->o.mode,
	};

	r->col = bt_collector__new(&co);
	return r->col ? 0 : -errno;
}

static int start_ctl(struct bt_record *r)
{
	int err = r->when_kind ? setup_notify(r) : 0;

	if (err < 0) {
		pr_warn("record: --snapshot-when: %s", strerror(-err));
		return err;
	}
	err = pthread_create(&r->ctl, NULL, ctl_main, r);

	r->ctl_started = !err;
	return -err;
}

static void teardown(struct bt_record *r)
{
	const struct bt_pmu_ops *ops = r->pmu ? bt_pmu__ops(r->pmu) : NULL;

	if (r->ctl_started) {
		uint64_t one = 1;

		(void)!write(r->quit_fd, &one, sizeof(one));
		pthread_join(r->ctl, NULL);
		r->ctl_started = false;
	}
	bt_notify__free(r->notify);
	r->notify = NULL;
	bt_collector__free(r->col);
	r->col = NULL;
	for (uint32_t i = 0; i < r->nsrc; i++) {
		if (r->src[i].sb) {
			ops->enable(r->pmu, r->src[i].sb, false);
			ops->close(r->pmu, r->src[i].sb);
		}
		bt_ds_view__release(r->src[i].view);
	}
	free(r->src);
	r->src = NULL;
	r->nsrc = 0;
	if (r->tracer)
		bt_tracer__leave(r->tracer);
	r->tracer = NULL;
	bt_ds__free(r->ds);
	r->ds = NULL;
	if (r->ks) {
		bt_kmes_session__close(r->ks);
		r->ks = NULL;
		if (!r->o.keep_session)
			bt_kmes_session__destroy(r->session, true);
	}
	bt_pmu__free(r->pmu);
	r->pmu = NULL;
}

static void fill_exit_trigger(struct bt_trigger *t, pid_t pid, int status)
{
	memset(t, 0, sizeof(*t));
	t->sz = sizeof(*t);
	t->reason = "exit";
	t->pid = t->tid = pid;
	if (WIFSIGNALED(status)) {
		t->reason = "signal";
		t->signo = WTERMSIG(status);
	}
}

/* True when @pid exists and is not a zombie (/proc/PID/stat). */
static bool still_running(pid_t pid)
{
	char path[64], buf[512], *rp;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	rp = strrchr(buf, ')');		/* comm may hold anything */
	return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

bool bt_step_trigger(struct bt_trigger *t, const struct bt_step *s, pid_t pid,
		     bool attached)
{
	const struct bt_step_fault *f = s ? bt_step__fault(s) : NULL;

	fill_exit_trigger(t, pid, s ? bt_step__status(s) : 0);
	if (f) {
		t->reason = "signal";
		t->tid = f->tid;
		t->signo = f->signo;
		t->code = f->code;
		t->addr = f->addr;
		t->ip = f->ip;
		t->has_regs = true;
		t->regs = f->regs;
		return false;
	}
	if (attached && still_running(pid)) {
		t->reason = "stop";
		return true;
	}
	return false;
}

/* ---- step and pt-emu: the sim backend ------------------------------- */

static int run_step(struct bt_record *r)
{
	struct bt_sim_opts so = { .sz = sizeof(so) };
	struct bt_step_opts sto = {
		.sz = sizeof(sto), .facility = (uint32_t)r->facility,
		.start_at = r->o.start_at, .max_insns = r->o.max_insns,
	};
	struct bt_step *s = NULL;
	struct bt_target tgt;
	struct bt_trigger t;
	int err, err2;

	err = create_session(r, BT_KMES_RING_TASK);
	if (err)
		return err;
	r->pmu = bt_pmu__new_sim(&so);
	if (!r->pmu)
		return -errno;
	sto.sim = r->pmu;
	if (r->argv)
		s = bt_step__spawn(&sto, r->argv);
	else
		s = bt_step__attach(&sto, r->o.pid);
	if (!s) {
		err = -errno;
		if (r->argv)
			pr_warn("record: starting %s%s%s: %s", r->argv[0],
				r->o.start_at ? " to " : "",
				r->o.start_at ? r->o.start_at : "",
				strerror(errno));
		else
			pr_warn("record: attaching to pid %d: %s",
				(int)r->o.pid, strerror(errno));
		return err;
	}
	r->pid = bt_step__pid(s);
	tgt = (struct bt_target){ BT_TARGET_TASK, r->pid };
	r->src = calloc(1, sizeof(*r->src));
	err = r->src ? setup_ds(r) : -ENOMEM;
	if (!err) {
		r->nsrc = 1;
		err = request(r, tgt, &r->src[0].view);
	}
	if (!err)
		err = open_sideband(r, tgt, &r->src[0]);
	if (!err)
		err = bt_step__bind(s, bt_ds_view__event(r->src[0].view),
				    r->src[0].sb);
	if (!err) {
		int slot = bt_kmes_session__add_slot(r->ks, (uint32_t)r->pid);

		err = slot < 0 ? slot : start_collector(r);
		if (!err)
			err = add_source(r, r->src[0].view, &r->src[0],
					 (uint32_t)slot);
	}
	if (!err)
		err = bt_collector__start(r->col);
	if (!err)
		err = start_ctl(r);
	if (err) {
		bt_step__free(s);
		return err;
	}

	err = bt_step__run(s);
	if (err)
		pr_warn("record: stepping pid %d: %s", (int)r->pid,
			strerror(-err));
	r->status = bt_step__status(s);
	/* --max-insns: detached, it goes on; it did not exit. */
	if (bt_step_trigger(&t, s, r->pid, r->o.pid > 0))
		r->status = -1;
	err2 = finish(r, &t);
	bt_step__free(s);
	return err2 ? err2 : err;
}

/* ---- Hardware facilities: the perf backend ---------------------------- */

static bool fatal_signal(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL ||
	       sig == SIGFPE || sig == SIGABRT || sig == SIGTRAP;
}

/* True when @pid has a handler for @sig (/proc/PID/status SigCgt). */
static bool caught(pid_t pid, int sig)
{
	char path[64], line[256];
	unsigned long long mask = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "SigCgt: %llx", &mask) == 1)
			break;
	}
	fclose(f);
	return mask & (1ull << (sig - 1));
}

/*
 * The command, forked and held until the trace is open: it execs when
 * @go's write end is written to (and exits 127 when it is closed).
 */
static pid_t fork_held(char **argv, int *go)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid == 0) {
		char c;

		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "btrail: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[0]);
	*go = p[1];
	return pid;
}

/*
 * Follow the traced process with ptrace (seized: it sees no difference)
 * until it ends: a fatal signal's siginfo and registers are taken at its
 * signal-delivery stop, before the process dies.
 */
static int follow(struct bt_record *r, struct bt_trigger *t)
{
	/* EXITKILL only for our own command: -p targets outlive us. */
	long o = PTRACE_O_TRACEEXIT | (r->argv ? PTRACE_O_EXITKILL : 0);
	bool seized = ptrace(PTRACE_SEIZE, r->pid, 0, o) == 0;
	bool fault = false;
	int st;

	fill_exit_trigger(t, r->pid, 0);
	if (!seized)
		pr_debug("record: no ptrace of pid %d (%s): the wait status "
			 "alone names the signal", (int)r->pid,
			 strerror(errno));
	for (;;) {
		pid_t w = waitpid(r->pid, &st, __WALL);
		int sig, deliver;

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			/* Not our child (-p without ptrace): poll it. */
			while (kill(r->pid, 0) == 0 && !r->stop)
				usleep(100000);
			return 0;
		}
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			r->status = st;
			/* Keep what the signal-delivery stop told. */
			if (!fault || !WIFSIGNALED(st) ||
			    WTERMSIG(st) != t->signo)
				fill_exit_trigger(t, r->pid, st);
			return 0;
		}
		if (!WIFSTOPPED(st))
			continue;
		sig = WSTOPSIG(st);
		deliver = sig;
		if (st >> 16 == PTRACE_EVENT_EXIT ||
		    st >> 16 == PTRACE_EVENT_STOP) {
			deliver = 0;
		} else if (fatal_signal(sig) && !caught(w, sig)) {
			struct user_regs_struct regs;
			siginfo_t si;

			if (ptrace(PTRACE_GETSIGINFO, w, 0, &si) == 0) {
				fault = true;
				t->reason = "signal";
				t->tid = w;
				t->signo = sig;
				t->code = si.si_code;
				t->addr = (uint64_t)(uintptr_t)si.si_addr;
			}
			if (fault && ptrace(PTRACE_GETREGS, w, 0, &regs) == 0) {
				t->regs = regs;
				t->has_regs = true;
				t->ip = regs.rip;
			}
		}
		ptrace(PTRACE_CONT, w, 0, deliver);
	}
}

static int run_hw(struct bt_record *r)
{
	struct bt_perf_opts po = { .sz = sizeof(po) };
	bool cpus[REC_MAX_CPUS] = { false };
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	struct bt_trigger t;
	int go = -1, err, err2;
	bool percpu = r->o.all_cpus || r->o.cpus;

	if (ncpu < 1 || ncpu > REC_MAX_CPUS)
		ncpu = REC_MAX_CPUS;
	if (r->o.cpus)
		parse_cpus(r->o.cpus, cpus, REC_MAX_CPUS);
	else
		for (long c = 0; c < ncpu; c++)
			cpus[c] = r->o.all_cpus;
	err = create_session(r, percpu ? BT_KMES_RING_CPU : BT_KMES_RING_TASK);
	if (err)
		return err;
	r->pmu = bt_pmu__new_perf(&po);
	if (!r->pmu)
		return -errno;
	err = setup_ds(r);
	if (err)
		return err;
	if (r->argv) {
		r->pid = fork_held(r->argv, &go);
		if (r->pid < 0)
			return (int)r->pid;
	} else if (r->o.pid) {
		r->pid = r->o.pid;
	}
	err = start_collector(r);
	r->src = calloc(REC_MAX_CPUS, sizeof(*r->src));
	if (!err && !r->src)
		err = -ENOMEM;
	if (!err && !percpu) {
		struct bt_target tgt = { BT_TARGET_TASK, r->pid };
		int slot = bt_kmes_session__add_slot(r->ks, (uint32_t)r->pid);

		r->nsrc = 1;
		err = slot < 0 ? slot : request(r, tgt, &r->src[0].view);
		if (!err)
			err = open_sideband(r, tgt, &r->src[0]);
		if (!err)
			err = add_source(r, r->src[0].view, &r->src[0],
					 (uint32_t)slot);
	}
	for (uint32_t c = 0; !err && percpu && c < REC_MAX_CPUS; c++) {
		struct bt_target tgt = { BT_TARGET_CPU, (int32_t)c };
		struct rec_src *s = &r->src[r->nsrc];

		if (!cpus[c])
			continue;
		r->nsrc++;
		err = request(r, tgt, &s->view);
		if (!err)
			err = open_sideband(r, tgt, s);
		if (!err && c >= bt_kmes_session__slots(r->ks))
			err = -ERANGE;
		if (!err)
			err = add_source(r, s->view, s, c);
	}
	if (!err)
		err = bt_collector__start(r->col);
	if (!err)
		err = start_ctl(r);
	if (go >= 0) {
		if (!err && write(go, "g", 1) != 1)
			err = -errno;
		close(go);
	}
	if (err) {
		if (r->argv && r->pid > 0)
			waitpid(r->pid, &r->status, 0);
		return err;
	}
	if (r->pid > 0) {
		err = follow(r, &t);
	} else {
		/* Per-CPU without a command: until bt_record__stop(). */
		struct pollfd p = { .fd = r->quit_fd, .events = POLLIN };

		while (!r->stop && poll(&p, 1, -1) < 0 && errno == EINTR)
			;
		fill_exit_trigger(&t, 0, 0);
		t.reason = "request";
	}
	err2 = finish(r, &t);
	return err2 ? err2 : err;
}

int bt_record__run(struct bt_record *r)
{
	int err;

	if (!r)
		return -EINVAL;
	if (r->ks)
		return -EALREADY;
	err = software(r->facility) ? run_step(r) : run_hw(r);
	teardown(r);
	return err;
}

void bt_record__free(struct bt_record *r)
{
	if (!r)
		return;
	teardown(r);
	if (r->argv) {
		for (size_t i = 0; r->argv[i]; i++)
			free(r->argv[i]);
		free(r->argv);
	}
	free((char *)r->o.start_at);
	free((char *)r->o.cpus);
	free(r->output);
	if (r->req_fd >= 0)
		close(r->req_fd);
	if (r->quit_fd >= 0)
		close(r->quit_fd);
	if (r->note_fd >= 0)
		close(r->note_fd);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
