// SPDX-License-Identifier: BSD-3-Clause
/*
 * The threshold notifier (seed 001): objects that have levels, watches
 * that compare them with thresholds, and the evaluation that decides when
 * a watch fires. The rules are in docs/notifier.md; in short, "above" is
 * level >= threshold and "below" is level < threshold, edges are changes
 * of side seen after a watch was added, and a level watch fires on every
 * change (and its first evaluation) while on its side.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <btrail/ds.h>
#include <btrail/kmes.h>
#include <btrail/notify.h>

#include "collector/kmes_layout.h"
#include "collector/notify_int.h"
#include "common/log.h"
#include "common/opts.h"

__extension__ typedef unsigned __int128 u128;

enum nt_obj_type {
	NT_OBJ_GENERIC,
	NT_OBJ_TRACER,
	NT_OBJ_RING,
	NT_OBJ_TASKS,
};

struct nt_ring {
	char *session;
	uint32_t slot;
	const struct bt_kmes_reader *reader;
	unsigned char *base;		/* our consumer mapping */
	uint64_t cap;
	uint64_t gen;			/* generation when mapped */
	/* The rate window: the sequence and time it started at. */
	bool rate_started;
	uint64_t rate_seq, rate_t;
	int64_t rate;			/* of the last complete window */
};

struct nt_obj {
	int id;
	uint32_t type;			/* enum nt_obj_type */
	int64_t level;			/* GENERIC; TASKS: the count */
	pid_t last_pid;			/* TASKS */
	const struct bt_tracer *tracer;
	struct nt_ring ring;
	int64_t cur[BT_NOTIFY__KIND_COUNT];	/* the last sample */
};

/* What a watch remembers of one level it follows. */
struct nt_state {
	int64_t prev;
	bool have_prev;		/* prev is a sample */
	bool fresh;		/* not evaluated since added or re-armed */
};

struct nt_watch {
	int id;
	struct bt_notify_watch w;
	bool armed;
	struct nt_state one;		/* ONE and SUM */
	struct nt_state *each;		/* EACH: by object id - 1 */
	size_t neach;
	struct bt_notify_watch_info info;
};

struct bt_notify {
	pthread_mutex_t lock;
	struct bt_notify_opts opts;
	struct nt_obj **objs;		/* by id - 1; NULL once removed */
	size_t nobjs;
	struct nt_watch **watches;	/* by id - 1; NULL once removed */
	size_t nwatches;
	pid_t last_pid;			/* of any TASKS object (SUM) */
	struct nt_dispatch dispatch;
	struct nt_poller poller;
};

/* ---- Levels ------------------------------------------------------------- */

static bool obj_has(const struct nt_obj *o, uint32_t kind)
{
	switch (o->type) {
	case NT_OBJ_GENERIC:
		return kind == BT_NOTIFY_GENERIC;
	case NT_OBJ_TRACER:
		return kind == BT_NOTIFY_TRACER_CHARGE;
	case NT_OBJ_RING:
		return kind >= BT_NOTIFY_RING_UNREAD &&
		       kind <= BT_NOTIFY_RING_RATE;
	case NT_OBJ_TASKS:
		return kind == BT_NOTIFY_TASKS;
	}
	return false;
}

static int64_t clamp64(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

static uint64_t now_ns(const struct bt_notify *n)
{
	struct timespec ts;

	if (n->opts.now_ns)
		return n->opts.now_ns(n->opts.now_ctx);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int ring_map(struct nt_ring *r)
{
	uint64_t cap;
	void *base;
	int fd, err;

	fd = kmes_attach(r->session, r->slot, &cap);
	if (fd < 0)
		return -errno;
	base = kmes_map(fd, cap);
	err = errno;
	close(fd);
	if (!base)
		return -err;
	if (r->base)
		kmes_unmap(r->base, r->cap);
	r->base = base;
	r->cap = cap;
	r->gen = atomic_load_explicit(
		&((struct kmes_producer_page *)base)->generation,
		memory_order_acquire);
	return 0;
}

/*
 * A resize swaps the ring file and bumps the old ring's generation
 * (KMES.md §4.6): follow it, or keep reading the frozen old ring until
 * the new one can be attached.
 */
static void ring_follow(struct nt_ring *r)
{
	struct kmes_producer_page *pp = (void *)r->base;
	int err;

	if (atomic_load_explicit(&pp->generation, memory_order_acquire) ==
	    r->gen)
		return;
	err = ring_map(r);
	if (err)
		pr_debug("notify: %s slot %u: re-attach after a generation "
			 "change failed: %s\n", r->session, r->slot,
			 strerror(-err));
}

/* Where the reader (if any) is, clamped into [tail, write]. */
static uint64_t ring_consumed(const struct nt_ring *r, uint64_t wp,
			      uint64_t tp)
{
	struct bt_kmes_slot_stats st;
	uint32_t i, nr;

	if (!r->reader)
		return tp;
	nr = bt_kmes_reader__slots(r->reader);
	for (i = 0; i < nr; i++) {
		if (bt_kmes_reader__stats(r->reader, i, &st) ||
		    st.slot != r->slot)
			continue;
		if (st.read_pos < tp)
			return tp;	/* lapped: those bytes are lost */
		return st.read_pos > wp ? wp : st.read_pos;
	}
	return tp;
}

static void sample_ring(struct bt_notify *n, struct nt_obj *o)
{
	struct nt_ring *r = &o->ring;
	struct kmes_producer_page *pp;
	uint64_t wp, tp, seq, t;

	ring_follow(r);
	pp = (void *)r->base;
	/* write_pos before tail_pos: then tp <= wp (tail never passes it). */
	wp = atomic_load_explicit(&pp->write_pos, memory_order_acquire);
	tp = atomic_load_explicit(&pp->tail_pos, memory_order_acquire);
	if (tp > wp)
		tp = wp;
	o->cur[BT_NOTIFY_RING_UNREAD] = clamp64(wp - ring_consumed(r, wp, tp));
	o->cur[BT_NOTIFY_RING_LOST_BYTES] = clamp64(tp);
	o->cur[BT_NOTIFY_RING_LOST_EVENTS] = clamp64(
		atomic_load_explicit(&pp->x_lost, memory_order_relaxed) +
		atomic_load_explicit(&pp->x_dropped, memory_order_relaxed));

	seq = atomic_load_explicit(&pp->x_last_seq, memory_order_relaxed);
	t = now_ns(n);
	if (!r->rate_started) {
		r->rate_started = true;
		r->rate_seq = seq;
		r->rate_t = t;
	} else if (t - r->rate_t >=
		   (uint64_t)n->opts.rate_window_ms * 1000000u) {
		/* events * 1e9 / ns, in 128 bits: no overflow, no float */
		u128 ev = seq >= r->rate_seq ? seq - r->rate_seq : 0;

		r->rate = clamp64((uint64_t)(ev * 1000000000u /
					     (t - r->rate_t)));
		r->rate_seq = seq;
		r->rate_t = t;
	}
	o->cur[BT_NOTIFY_RING_RATE] = r->rate;
}

/* Take a sample of every level of @o into o->cur. */
static void sample(struct bt_notify *n, struct nt_obj *o)
{
	switch (o->type) {
	case NT_OBJ_GENERIC:
		o->cur[BT_NOTIFY_GENERIC] = o->level;
		break;
	case NT_OBJ_TASKS:
		o->cur[BT_NOTIFY_TASKS] = o->level;
		break;
	case NT_OBJ_TRACER:
		o->cur[BT_NOTIFY_TRACER_CHARGE] =
			clamp64(bt_tracer__charged(o->tracer));
		break;
	case NT_OBJ_RING:
		sample_ring(n, o);
		break;
	}
}

/* The sum of the last samples of @kind; saturating. */
static int64_t sum_of(const struct bt_notify *n, uint32_t kind)
{
	int64_t sum = 0;

	for (size_t i = 0; i < n->nobjs; i++) {
		const struct nt_obj *o = n->objs[i];
		int64_t s;

		if (!o || !obj_has(o, kind))
			continue;
		if (__builtin_add_overflow(sum, o->cur[kind], &s))
			s = o->cur[kind] > 0 ? INT64_MAX : INT64_MIN;
		sum = s;
	}
	return sum;
}

static struct nt_obj *obj_get(const struct bt_notify *n, int id)
{
	if (id < 1 || (size_t)id > n->nobjs)
		return NULL;
	return n->objs[id - 1];
}

/* Sample every object with a level of @kind, but rates: poll moves them. */
static void sample_kind(struct bt_notify *n, uint32_t kind)
{
	if (kind == BT_NOTIFY_RING_RATE)
		return;
	for (size_t i = 0; i < n->nobjs; i++) {
		struct nt_obj *o = n->objs[i];

		if (o && obj_has(o, kind))
			sample(n, o);
	}
}

static struct nt_obj *obj_new(uint32_t type)
{
	struct nt_obj *o = calloc(1, sizeof(*o));

	if (o)
		o->type = type;
	return o;
}

/* Accepts NULL and an object whose ring was never mapped. */
static void obj_free(struct nt_obj *o)
{
	if (!o)
		return;
	if (o->ring.base)
		kmes_unmap(o->ring.base, o->ring.cap);
	free(o->ring.session);
	free(o);
}

/* ---- Evaluation ---------------------------------------------------------- */

/* A state that starts from @level, as a new or re-armed watch does. */
static struct nt_state state_from(int64_t level)
{
	return (struct nt_state){ .prev = level, .have_prev = true,
				  .fresh = true };
}

/*
 * The rule of docs/notifier.md: does @level, after @st->prev, fire @w?
 * Updates @st.
 */
static bool crosses(const struct nt_watch *nw, struct nt_state *st,
		    int64_t level)
{
	uint32_t f = nw->w.th.flags;
	int64_t th = nw->w.th.threshold_level;
	bool above = level >= th, fire;

	if (f & BT_THRESHOLD_LEVEL) {
		bool changed = st->fresh || !st->have_prev ||
			       level != st->prev;

		fire = changed && (((f & BT_THRESHOLD_UP) && above) ||
				   ((f & BT_THRESHOLD_DOWN) && !above));
	} else if (!st->have_prev) {
		fire = false;
	} else {
		bool was = st->prev >= th;

		fire = ((f & BT_THRESHOLD_UP) && !was && above) ||
		       ((f & BT_THRESHOLD_DOWN) && was && !above);
	}
	st->prev = level;
	st->have_prev = true;
	st->fresh = false;
	return fire;
}

static int fire(struct bt_notify *n, struct nt_watch *nw, int64_t level,
		int obj, pid_t pid)
{
	union sigval v = nw->w.th.sigev.sigev_value;
	int err;

	if (nw->w.kind == BT_NOTIFY_TASKS)
		v.sival_int = pid;	/* the seed's "deliver the new pid" */
	nw->info.fired++;
	nw->info.last_level = level;
	nw->info.last_object = obj;
	if (nw->w.th.flags & BT_THRESHOLD_ONESHOT)
		nw->armed = false;
	err = bt_nt_deliver(&n->dispatch, &nw->w, v);
	if (err) {
		nw->info.failed++;
		pr_debug("notify: watch %d: delivery failed: %s\n", nw->id,
			 strerror(-err));
	}
	return 1;
}

static struct nt_state *each_state(struct nt_watch *nw, int id)
{
	if ((size_t)id > nw->neach) {
		size_t nn = (size_t)id + 8;
		struct nt_state *p = realloc(nw->each, nn * sizeof(*p));

		if (!p)
			return NULL;
		memset(p + nw->neach, 0, (nn - nw->neach) * sizeof(*p));
		nw->each = p;
		nw->neach = nn;
	}
	return &nw->each[id - 1];
}

/*
 * Evaluate @nw against the current samples; with @only > 0, only what
 * object @only changes (its ONE/EACH state and the SUM). @pid: the task
 * created just now, for TASKS.
 */
static int eval_watch(struct bt_notify *n, struct nt_watch *nw, int only,
		      pid_t pid)
{
	uint32_t kind = nw->w.kind;
	int fired = 0;

	switch (nw->w.scope) {
	case BT_NOTIFY_ONE: {
		struct nt_obj *o = obj_get(n, nw->w.object);

		if (!o || (only && only != o->id))
			return 0;
		if (crosses(nw, &nw->one, o->cur[kind]) && nw->armed)
			fired += fire(n, nw, o->cur[kind], o->id,
				      pid ? pid : o->last_pid);
		return fired;
	}
	case BT_NOTIFY_SUM: {
		int64_t s = sum_of(n, kind);

		if (crosses(nw, &nw->one, s) && nw->armed)
			fired += fire(n, nw, s, 0, pid ? pid : n->last_pid);
		return fired;
	}
	}
	for (size_t i = 0; i < n->nobjs; i++) {
		struct nt_obj *o = n->objs[i];
		struct nt_state *st;

		if (!o || !obj_has(o, kind) || (only && only != o->id))
			continue;
		st = each_state(nw, o->id);
		if (!st)
			continue;	/* no memory: this object waits */
		if (crosses(nw, st, o->cur[kind]) && nw->armed)
			fired += fire(n, nw, o->cur[kind], o->id,
				      pid ? pid : o->last_pid);
	}
	return fired;
}

/* Evaluate the watches of @kind that object @o changed (a fed level). */
static int eval_fed(struct bt_notify *n, struct nt_obj *o, uint32_t kind,
		    pid_t pid)
{
	int fired = 0;

	sample(n, o);
	for (size_t i = 0; i < n->nwatches; i++) {
		struct nt_watch *nw = n->watches[i];

		if (nw && nw->w.kind == kind)
			fired += eval_watch(n, nw, o->id, pid);
	}
	return fired;
}

/*
 * Start @nw (new or re-armed) from the levels of now: edges compare with
 * these, a level watch fires at its first evaluation if on its side.
 */
static void watch_baseline(struct bt_notify *n, struct nt_watch *nw)
{
	uint32_t kind = nw->w.kind;

	nw->armed = true;
	switch (nw->w.scope) {
	case BT_NOTIFY_ONE: {
		struct nt_obj *o = obj_get(n, nw->w.object);

		nw->one = state_from(o ? o->cur[kind] : 0);
		return;
	}
	case BT_NOTIFY_SUM:
		nw->one = state_from(sum_of(n, kind));
		return;
	}
	for (size_t i = 0; i < n->nobjs; i++) {
		struct nt_obj *o = n->objs[i];
		struct nt_state *st;

		if (!o || !obj_has(o, kind))
			continue;
		st = each_state(nw, o->id);
		if (st)
			*st = state_from(o->cur[kind]);
	}
}

int bt_notify__poll(struct bt_notify *n)
{
	int fired = 0;

	if (!n)
		return -EINVAL;
	pthread_mutex_lock(&n->lock);
	for (size_t i = 0; i < n->nobjs; i++) {
		if (n->objs[i])
			sample(n, n->objs[i]);
	}
	for (size_t i = 0; i < n->nwatches; i++) {
		if (n->watches[i])
			fired += eval_watch(n, n->watches[i], 0, 0);
	}
	pthread_mutex_unlock(&n->lock);
	return fired;
}

/* ---- Objects ------------------------------------------------------------- */

/*
 * Add @o (its levels sampled) and give every EACH watch of its kinds a
 * starting point for it: an object added later is covered (EACH means
 * every object, present and future; docs/notifier.md).
 */
static int obj_add(struct bt_notify *n, struct nt_obj *o)
{
	struct nt_obj **p;

	if (n->nobjs >= INT_MAX - 1)
		return -ENOSPC;
	p = realloc(n->objs, (n->nobjs + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	n->objs = p;
	o->id = (int)n->nobjs + 1;
	n->objs[n->nobjs++] = o;
	sample(n, o);
	for (size_t i = 0; i < n->nwatches; i++) {
		struct nt_watch *nw = n->watches[i];
		struct nt_state *st;

		if (!nw || nw->w.scope != BT_NOTIFY_EACH ||
		    !obj_has(o, nw->w.kind))
			continue;
		st = each_state(nw, o->id);
		if (st)
			*st = state_from(o->cur[nw->w.kind]);
	}
	return o->id;
}

static int add_locked(struct bt_notify *n, struct nt_obj *o)
{
	int id;

	pthread_mutex_lock(&n->lock);
	id = obj_add(n, o);
	pthread_mutex_unlock(&n->lock);
	if (id < 0)
		obj_free(o);
	return id;
}

int bt_notify__add_level(struct bt_notify *n, int64_t initial)
{
	struct nt_obj *o;

	if (!n)
		return -EINVAL;
	o = obj_new(NT_OBJ_GENERIC);
	if (!o)
		return -ENOMEM;
	o->level = initial;
	return add_locked(n, o);
}

int bt_notify__add_tasks(struct bt_notify *n)
{
	struct nt_obj *o;

	if (!n)
		return -EINVAL;
	o = obj_new(NT_OBJ_TASKS);
	if (!o)
		return -ENOMEM;
	return add_locked(n, o);
}

int bt_notify__add_tracer(struct bt_notify *n, const struct bt_tracer *t)
{
	struct nt_obj *o;

	if (!n || !t)
		return -EINVAL;
	o = obj_new(NT_OBJ_TRACER);
	if (!o)
		return -ENOMEM;
	o->tracer = t;
	return add_locked(n, o);
}

int bt_notify__add_ring(struct bt_notify *n, const struct bt_notify_ring *r)
{
	struct bt_notify_ring ro;
	struct nt_obj *o;
	int err;

	if (!n || !r)
		return -EINVAL;
	err = bt_opts_copy(&ro, sizeof(ro), r);
	if (err)
		return err;
	if (!ro.session)
		return -EINVAL;
	o = obj_new(NT_OBJ_RING);
	if (!o)
		return -ENOMEM;
	o->ring.slot = ro.slot;
	o->ring.reader = ro.reader;
	o->ring.session = strdup(ro.session);
	err = o->ring.session ? ring_map(&o->ring) : -ENOMEM;
	if (err) {
		obj_free(o);
		return err;
	}
	return add_locked(n, o);
}

static int feed(struct bt_notify *n, int obj, uint32_t type, int64_t level,
		pid_t pid)
{
	struct nt_obj *o;
	int fired;

	pthread_mutex_lock(&n->lock);
	o = obj_get(n, obj);
	if (!o) {
		pthread_mutex_unlock(&n->lock);
		return -EINVAL;
	}
	if (o->type != type) {
		pthread_mutex_unlock(&n->lock);
		return -ENOENT;
	}
	if (type == NT_OBJ_TASKS) {
		if (o->level < INT64_MAX)
			o->level++;
		o->last_pid = pid;
		n->last_pid = pid;
		fired = eval_fed(n, o, BT_NOTIFY_TASKS, pid);
	} else {
		o->level = level;
		fired = eval_fed(n, o, BT_NOTIFY_GENERIC, 0);
	}
	pthread_mutex_unlock(&n->lock);
	return fired;
}

int bt_notify__set_level(struct bt_notify *n, int obj, int64_t level)
{
	if (!n)
		return -EINVAL;
	return feed(n, obj, NT_OBJ_GENERIC, level, 0);
}

int bt_notify__task_created(struct bt_notify *n, int obj, pid_t pid)
{
	if (!n || pid <= 0)
		return -EINVAL;
	return feed(n, obj, NT_OBJ_TASKS, 0, pid);
}

static void watch_free(struct nt_watch *nw)
{
	if (!nw)
		return;
	free(nw->each);
	free(nw);
}

int bt_notify__remove(struct bt_notify *n, int obj)
{
	struct nt_obj *o;

	if (!n)
		return -EINVAL;
	pthread_mutex_lock(&n->lock);
	o = obj_get(n, obj);
	if (!o) {
		pthread_mutex_unlock(&n->lock);
		return -EINVAL;
	}
	for (size_t i = 0; i < n->nwatches; i++) {
		struct nt_watch *nw = n->watches[i];

		if (nw && nw->w.scope == BT_NOTIFY_ONE && nw->w.object == obj) {
			watch_free(nw);
			n->watches[i] = NULL;
		}
	}
	n->objs[obj - 1] = NULL;
	pthread_mutex_unlock(&n->lock);
	obj_free(o);
	return 0;
}

int bt_notify__level(struct bt_notify *n, int obj, uint32_t kind,
		     int64_t *out)
{
	struct nt_obj *o;
	int err = 0;

	if (!n || !out || kind >= BT_NOTIFY__KIND_COUNT)
		return -EINVAL;
	pthread_mutex_lock(&n->lock);
	o = obj_get(n, obj);
	if (!o)
		err = -EINVAL;
	else if (!obj_has(o, kind))
		err = -ENOENT;
	else {
		/* A rate is only ever advanced by poll: do not sample it. */
		if (kind != BT_NOTIFY_RING_RATE)
			sample(n, o);
		*out = o->cur[kind];
	}
	pthread_mutex_unlock(&n->lock);
	return err;
}

/* ---- Watches ------------------------------------------------------------- */

static int check_sigev(const struct bt_notify_watch *w)
{
	const struct sigevent *se = &w->th.sigev;

	if (w->pid < 0)
		return -EINVAL;
	switch (se->sigev_notify) {
	case SIGEV_NONE:
		return 0;
	case SIGEV_THREAD_ID:
		if (se->sigev_notify_thread_id <= 0)
			return -EINVAL;
		/* fall through */
	case SIGEV_SIGNAL:
		return se->sigev_signo >= 1 && se->sigev_signo <= SIGRTMAX ?
		       0 : -EINVAL;
	case SIGEV_THREAD:
		return se->sigev_notify_function ? 0 : -EINVAL;
	case BT_SIGEV_EVENTFD:
		if (w->eventfd < 0)
			return -EINVAL;
		return fcntl(w->eventfd, F_GETFD) < 0 ? -EBADF : 0;
	}
	return -EINVAL;
}

int bt_notify__watch(struct bt_notify *n, const struct bt_notify_watch *w)
{
	struct bt_notify_watch wc;
	struct nt_watch *nw, **p;
	struct nt_obj *o;
	int err;

	if (!n || !w)
		return -EINVAL;
	err = bt_opts_copy(&wc, sizeof(wc), w);
	if (err)
		return err;
	if (wc.kind >= BT_NOTIFY__KIND_COUNT || wc.scope > BT_NOTIFY_SUM ||
	    (wc.th.flags & ~BT_THRESHOLD_ALL) ||
	    !(wc.th.flags & (BT_THRESHOLD_UP | BT_THRESHOLD_DOWN)))
		return -EINVAL;
	err = check_sigev(&wc);
	if (err)
		return err;
	if (wc.th.sigev.sigev_notify == SIGEV_THREAD) {
		err = bt_nt_dispatch_start(&n->dispatch);
		if (err)
			return err;
	}
	nw = calloc(1, sizeof(*nw));
	if (!nw)
		return -ENOMEM;
	nw->w = wc;
	nw->info.armed = 1;

	pthread_mutex_lock(&n->lock);
	if (wc.scope == BT_NOTIFY_ONE) {
		o = obj_get(n, wc.object);
		err = !o ? -EINVAL : !obj_has(o, wc.kind) ? -ENOENT : 0;
	} else {
		nw->w.object = 0;
	}
	if (!err && n->nwatches >= INT_MAX - 1)
		err = -ENOSPC;
	if (!err) {
		p = realloc(n->watches, (n->nwatches + 1) * sizeof(*p));
		err = p ? 0 : -ENOMEM;
		if (p)
			n->watches = p;
	}
	if (err) {
		pthread_mutex_unlock(&n->lock);
		free(nw);
		return err;
	}
	nw->id = (int)n->nwatches + 1;
	n->watches[n->nwatches++] = nw;
	/* Fed levels are current; sampled ones are taken now. */
	sample_kind(n, wc.kind);
	watch_baseline(n, nw);
	pthread_mutex_unlock(&n->lock);
	return nw->id;
}

static struct nt_watch *watch_get(const struct bt_notify *n, int id)
{
	if (id < 1 || (size_t)id > n->nwatches)
		return NULL;
	return n->watches[id - 1];
}

int bt_notify__unwatch(struct bt_notify *n, int id)
{
	struct nt_watch *nw;

	if (!n)
		return -EINVAL;
	pthread_mutex_lock(&n->lock);
	nw = watch_get(n, id);
	if (nw)
		n->watches[id - 1] = NULL;
	pthread_mutex_unlock(&n->lock);
	if (!nw)
		return -EINVAL;
	watch_free(nw);
	return 0;
}

int bt_notify__rearm(struct bt_notify *n, int id)
{
	struct nt_watch *nw;

	if (!n)
		return -EINVAL;
	pthread_mutex_lock(&n->lock);
	nw = watch_get(n, id);
	if (nw && !nw->armed) {
		sample_kind(n, nw->w.kind);
		watch_baseline(n, nw);
	}
	pthread_mutex_unlock(&n->lock);
	return nw ? 0 : -EINVAL;
}

int bt_notify__watch_info(struct bt_notify *n, int id,
			  struct bt_notify_watch_info *out)
{
	struct nt_watch *nw;

	if (!n || !out)
		return -EINVAL;
	pthread_mutex_lock(&n->lock);
	nw = watch_get(n, id);
	if (nw) {
		*out = nw->info;
		out->armed = nw->armed;
	}
	pthread_mutex_unlock(&n->lock);
	return nw ? 0 : -EINVAL;
}

/* ---- The notifier -------------------------------------------------------- */

struct bt_notify *bt_notify__new(const struct bt_notify_opts *opts)
{
	struct bt_notify *n = calloc(1, sizeof(*n));
	int err;

	if (!n)
		return errno = ENOMEM, NULL;
	err = bt_opts_copy(&n->opts, sizeof(n->opts), opts);
	if (err) {
		free(n);
		return errno = -err, NULL;
	}
	if (!n->opts.rate_window_ms)
		n->opts.rate_window_ms = 1000;
	pthread_mutex_init(&n->lock, NULL);
	bt_nt_dispatch_init(&n->dispatch);
	bt_nt_poller_init(&n->poller);
	return n;
}

void bt_notify__free(struct bt_notify *n)
{
	if (!n)
		return;
	bt_nt_poller_fini(&n->poller);
	bt_nt_dispatch_fini(&n->dispatch);
	for (size_t i = 0; i < n->nwatches; i++)
		watch_free(n->watches[i]);
	for (size_t i = 0; i < n->nobjs; i++)
		obj_free(n->objs[i]);
	free(n->watches);
	free(n->objs);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

int bt_notify__start(struct bt_notify *n, uint32_t period_ms)
{
	if (!n || !period_ms)
		return -EINVAL;
	return bt_nt_poller_start(&n->poller, n, period_ms);
}

int bt_notify__stop(struct bt_notify *n)
{
	if (!n)
		return -EINVAL;
	return bt_nt_poller_stop(&n->poller);
}

int bt_notify__flush(struct bt_notify *n)
{
	if (!n)
		return -EINVAL;
	bt_nt_dispatch_flush(&n->dispatch);
	return 0;
}
