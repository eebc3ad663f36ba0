// SPDX-License-Identifier: BSD-3-Clause
/*
 * The collector: sources grouped by KMES slot, one drain thread per slot
 * sleeping in epoll_wait() on the backends' fds (and on an eventfd that
 * tells it to stop) with a timeout of the clock heartbeat, so an idle
 * slot costs one wakeup per clock_period_ms and nothing more.
 *
 * A drain of a slot, under its lock: for each source, the sideband
 * ring's records, the trace event's ring's records (AUX, LOST,
 * ITRACE_START, samples), then in stream mode the AUX bytes, freeing
 * their room, and enabling again an event the driver stopped for lack of
 * room (TRUNCATED); then the slot's clock work (collect_tick()).
 */
#include "collector/collect.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "collector/kmes_session.h"
#include "common/log.h"
#include "common/opts.h"
#include "ds/sim.h"

/* The longest bt.* type string, for the payload limit. */
#define COLLECT_TYPE_MAX	16u

struct bt_collector *bt_collector__new(const struct bt_collector_opts *opts)
{
	struct bt_collector *c;
	uint64_t cap;

	c = calloc(1, sizeof(*c));
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	if (bt_opts_copy(&c->o, sizeof(c->o), opts) < 0 || !opts ||
	    !c->o.session || c->o.mode > BT_MODE_SNAPSHOT) {
		free(c);
		errno = EINVAL;
		return NULL;
	}
	c->o.sz = sizeof(c->o);
	/* MaxEventSize, and the ring's own limit: half its capacity */
	c->max_event = c->o.session->max_event_size ?
		       c->o.session->max_event_size :
		       KMES_MAX_EVENT_SIZE_DEFAULT;
	cap = bt_kmes_session__capacity(c->o.session);
	if (cap / 2 < c->max_event)
		c->max_event = (uint32_t)(cap / 2);
	c->max_payload = c->max_event - KMES_HDR_FIXED - COLLECT_TYPE_MAX;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

static struct collect_slot *slot_get(struct bt_collector *c, uint32_t index)
{
	struct collect_slot *sl;

	for (unsigned i = 0; i < c->nslots; i++) {
		if (c->slots[i]->index == index)
			return c->slots[i];
	}
	if (c->nslots == c->cap_slots) {
		unsigned cap = c->cap_slots ? 2 * c->cap_slots : 8;
		void *p = realloc(c->slots, cap * sizeof(*c->slots));

		if (!p)
			return NULL;
		c->slots = p;
		c->cap_slots = cap;
	}
	sl = calloc(1, sizeof(*sl));
	if (!sl)
		return NULL;
	sl->buf = malloc(c->max_payload);
	if (!sl->buf) {
		free(sl);
		return NULL;
	}
	sl->c = c;
	sl->index = index;
	sl->epfd = sl->stopfd = -1;
	pthread_mutex_init(&sl->lock, NULL);
	c->slots[c->nslots++] = sl;
	return sl;
}

static void source_free(struct collect_source *so)
{
	if (!so)
		return;
	collect_ring_fini(&so->trace_ring);
	collect_ring_fini(&so->sb_ring);
	free(so->pend);
	free(so);
}

static int watch(struct collect_slot *sl, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	if (fd < 0 || sl->epfd < 0)
		return 0;
	if (epoll_ctl(sl->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static void *drain_thread(void *arg);

static int slot_start(struct collect_slot *sl)
{
	int err;

	sl->epfd = epoll_create1(EPOLL_CLOEXEC);
	sl->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sl->epfd < 0 || sl->stopfd < 0) {
		err = -errno;
		goto fail;
	}
	err = watch(sl, sl->stopfd);
	for (unsigned i = 0; !err && i < sl->nsrc; i++) {
		err = watch(sl, sl->src[i]->trace_ring.fd);
		if (!err)
			err = watch(sl, sl->src[i]->sb_ring.fd);
	}
	if (err)
		goto fail;
	err = -pthread_create(&sl->thread, NULL, drain_thread, sl);
	if (err)
		goto fail;
	sl->running = true;
	return 0;
fail:
	if (sl->epfd >= 0)
		close(sl->epfd);
	if (sl->stopfd >= 0)
		close(sl->stopfd);
	sl->epfd = sl->stopfd = -1;
	return err;
}

int bt_collector__add(struct bt_collector *c,
		      const struct bt_collector_source *usrc)
{
	struct collect_source *so;
	struct collect_slot *sl;
	int err, idx = 0;

	if (!c || !usrc)
		return -EINVAL;
	so = calloc(1, sizeof(*so));
	if (!so)
		return -ENOMEM;
	so->trace_ring.fd = so->sb_ring.fd = -1;
	if (bt_opts_copy(&so->src, sizeof(so->src), usrc) < 0 ||
	    !so->src.pmu || (!so->src.trace && !so->src.sideband) ||
	    (so->src.trace && !so->src.trace_buf) ||
	    (so->src.sideband && !so->src.sideband_buf) ||
	    so->src.slot >= bt_kmes_session__slots(c->o.session) ||
	    so->src.facility >= BT_FAC__COUNT) {
		free(so);
		return -EINVAL;
	}
	so->src.sz = sizeof(so->src);
	so->sim = bt_sim_is(so->src.pmu);
	so->pid = so->tid = -1;
	so->cpu = so->src.target.kind == BT_TARGET_CPU ? so->src.target.id : -1;
	if (so->src.trace && so->src.trace_buf->aux) {
		so->aux_pt = so->src.facility == BT_FAC_PT ||
			     so->src.facility == BT_FAC_PTEMU;
		so->aux_bts = so->src.facility == BT_FAC_BTS ||
			      so->src.facility == BT_FAC_STEP;
	}
	if (so->src.target.kind == BT_TARGET_TASK)
		so->tid = so->src.target.id;
	err = 0;
	if (so->src.trace)
		err = collect_ring_init(&so->trace_ring, so->src.pmu,
					so->src.trace, so->src.trace_buf, true);
	if (!err && so->src.sideband)
		err = collect_ring_init(&so->sb_ring, so->src.pmu,
					so->src.sideband, so->src.sideband_buf,
					false);
	if (err) {
		source_free(so);
		return err;
	}

	pthread_mutex_lock(&c->lock);
	if (c->frozen) {
		err = -EINVAL;
		goto out;
	}
	sl = slot_get(c, so->src.slot);
	if (!sl) {
		err = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&sl->lock);
	if (sl->nsrc == sl->cap_src) {
		unsigned cap = sl->cap_src ? 2 * sl->cap_src : 4;
		void *p = realloc(sl->src, cap * sizeof(*sl->src));

		if (!p) {
			pthread_mutex_unlock(&sl->lock);
			err = -ENOMEM;
			goto out;
		}
		sl->src = p;
		sl->cap_src = cap;
	}
	so->slot = sl;
	sl->src[sl->nsrc++] = so;
	if (sl->running) {
		err = watch(sl, so->trace_ring.fd);
		if (!err)
			err = watch(sl, so->sb_ring.fd);
	}
	pthread_mutex_unlock(&sl->lock);
	if (!err && c->started && !sl->running)
		err = slot_start(sl);
	/* index over the whole collector: slots before, and this one */
	for (unsigned i = 0; i < c->nslots; i++) {
		if (c->slots[i] == sl) {
			idx += (int)sl->nsrc - 1;
			break;
		}
		idx += (int)c->slots[i]->nsrc;
	}
	so = NULL;
out:
	pthread_mutex_unlock(&c->lock);
	source_free(so);
	return err ? err : idx;
}

/* ---- draining --------------------------------------------------------- */

/* Drain @sl now. Called with @sl->lock held. */
static long slot_drain(struct collect_slot *sl)
{
	struct bt_collector *c = sl->c;

	sl->emitted = 0;
	if (!sl->clock_started)
		collect_tick(sl, false);
	for (unsigned i = 0; i < sl->nsrc; i++) {
		struct collect_source *so = sl->src[i];
		long n;

		n = collect_drain_ring(so, &so->sb_ring);
		if (n < 0)
			pr_debug("collector: slot %u: sideband: %s", sl->index,
				 strerror((int)-n));
		n = collect_drain_ring(so, &so->trace_ring);
		if (n < 0)
			pr_debug("collector: slot %u: trace: %s", sl->index,
				 strerror((int)-n));
		if (c->o.mode == BT_MODE_STREAM)
			collect_drain_aux(so);
		if (so->reenable && !c->frozen) {
			/* room freed: the driver may write again */
			bt_pmu__ops(so->src.pmu)->enable(so->src.pmu,
							 so->src.trace, true);
		}
		so->reenable = false;
	}
	collect_tick(sl, false);
	return sl->emitted;
}

long bt_collector__drain(struct bt_collector *c)
{
	long total = 0;

	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < c->nslots; i++) {
		struct collect_slot *sl = c->slots[i];

		pthread_mutex_lock(&sl->lock);
		total += slot_drain(sl);
		pthread_mutex_unlock(&sl->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return total;
}

static void *drain_thread(void *arg)
{
	struct collect_slot *sl = arg;
	struct bt_collector *c = sl->c;
	uint64_t period = c->o.clock_period_ms ? c->o.clock_period_ms : 1000;

	for (;;) {
		struct epoll_event evs[16];
		uint64_t now, due, v;
		int n, timeout;
		bool stop = false;

		/* sleep until the next heartbeat is due, at most */
		pthread_mutex_lock(&sl->lock);
		now = collect_mono_ns();
		due = sl->last_clock_mono + period * 1000000ull;
		timeout = !sl->clock_started ? 0 :
			  due <= now ? 0 : (int)((due - now) / 1000000u) + 1;
		pthread_mutex_unlock(&sl->lock);
		n = epoll_wait(sl->epfd, evs, 16, timeout);
		collect_count(&c->st_wakeups, 1);
		pthread_mutex_lock(&sl->lock);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == sl->stopfd) {
				stop = true;
				continue;
			}
			/*
			 * sim: an eventfd, readable until read. perf: poll
			 * resets its wakeup state itself; a read there would
			 * read the count, so leave it.
			 */
			for (unsigned k = 0; k < sl->nsrc; k++) {
				if (!sl->src[k]->sim)
					continue;
				int fd = evs[i].data.fd;

				if (sl->src[k]->trace_ring.fd == fd ||
				    sl->src[k]->sb_ring.fd == fd) {
					if (read(evs[i].data.fd, &v, 8) < 0) {
						/* EAGAIN: already read */
					}
					break;
				}
			}
		}
		if (!stop)
			slot_drain(sl);
		pthread_mutex_unlock(&sl->lock);
		if (stop)
			break;
	}
	return NULL;
}

int bt_collector__start(struct bt_collector *c)
{
	int err = 0;

	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	if (c->o.no_threads || c->started || c->frozen) {
		pthread_mutex_unlock(&c->lock);
		return -EINVAL;
	}
	c->started = true;
	for (unsigned i = 0; !err && i < c->nslots; i++)
		err = slot_start(c->slots[i]);
	pthread_mutex_unlock(&c->lock);
	return err;
}

static void slot_stop(struct collect_slot *sl)
{
	uint64_t one = 1;

	if (!sl->running)
		return;
	if (write(sl->stopfd, &one, sizeof(one)) < 0)
		pr_warn("collector: slot %u: cannot stop its thread: %s",
			sl->index, strerror(errno));
	pthread_join(sl->thread, NULL);
	sl->running = false;
	close(sl->epfd);
	close(sl->stopfd);
	sl->epfd = sl->stopfd = -1;
}

/* ---- freeze ----------------------------------------------------------- */

static int emit_trigger(struct collect_slot *sl, const struct bt_trigger *t)
{
	struct bt_event_value v[BT_TRIGGER__N] = { 0 };
	const char *reason = t->reason ? t->reason : "request";
	uint64_t regs[BT_REGS_N];

	_Static_assert(sizeof(struct user_regs_struct) == BT_REGS_SIZE,
		       "user_regs_struct is 27 u64 on x86-64");
	v[BT_TRIGGER_REASON].p = reason;
	v[BT_TRIGGER_REASON].len = strlen(reason);
	v[BT_TRIGGER_TIME].u = collect_perf_now(sl);
	v[BT_TRIGGER_PID].i = t->pid;
	v[BT_TRIGGER_TID].i = t->tid;
	v[BT_TRIGGER_SIGNO].i = t->signo;
	v[BT_TRIGGER_CODE].i = t->code;
	v[BT_TRIGGER_ADDR].u = t->addr;
	v[BT_TRIGGER_IP].u = t->ip;
	/* never NULL, even empty: the encoder hands it to memcpy */
	v[BT_TRIGGER_REGS].p = regs;
	if (t->has_regs) {
		/* little-endian u64s, in struct order (LE hosts: as is) */
		memcpy(regs, &t->regs, sizeof(regs));
		v[BT_TRIGGER_REGS].p = regs;
		v[BT_TRIGGER_REGS].len = sizeof(regs);
	}
	return collect_emit_values(sl, BT_EVID_TRIGGER, v, -1);
}

int bt_collector__freeze(struct bt_collector *c, const struct bt_trigger *utrig)
{
	struct bt_trigger trig;
	int err = 0;

	if (!c)
		return -EINVAL;
	if (bt_opts_copy(&trig, sizeof(trig), utrig) < 0)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	if (c->frozen) {
		pthread_mutex_unlock(&c->lock);
		return -EALREADY;
	}
	c->frozen = true;
	for (unsigned i = 0; i < c->nslots; i++)
		slot_stop(c->slots[i]);
	/* Stop the trace first: the driver publishes what it holds. */
	for (unsigned i = 0; i < c->nslots; i++) {
		struct collect_slot *sl = c->slots[i];

		for (unsigned k = 0; k < sl->nsrc; k++) {
			struct collect_source *so = sl->src[k];
			int e;

			if (!so->src.trace)
				continue;
			e = bt_pmu__ops(so->src.pmu)->enable(so->src.pmu,
							     so->src.trace,
							     false);
			if (e && !err)
				err = e;
		}
	}
	for (unsigned i = 0; i < c->nslots; i++) {
		struct collect_slot *sl = c->slots[i];

		pthread_mutex_lock(&sl->lock);
		slot_drain(sl);
		if (c->o.mode == BT_MODE_SNAPSHOT) {
			for (unsigned k = 0; k < sl->nsrc; k++)
				collect_snapshot_aux(sl->src[k]);
		}
		if (utrig)
			emit_trigger(sl, &trig);
		collect_tick(sl, true);
		collect_clock(sl, "end");
		pthread_mutex_unlock(&sl->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return err;
}

void bt_collector__stats(const struct bt_collector *c,
			 struct bt_collector_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof(*st));
	if (!c)
		return;
#define LD(x)	__atomic_load_n(&c->x, __ATOMIC_RELAXED)
	st->events = LD(st_events);
	st->branches = LD(st_branches);
	st->pt_bytes = LD(st_pt_bytes);
	st->sideband = LD(st_sideband);
	st->lost_records = LD(st_lost_records);
	st->aux_flagged = LD(st_aux_flagged);
	st->kmes_dropped = LD(st_kmes_dropped);
	st->wakeups = LD(st_wakeups);
#undef LD
}

void bt_collector__free(struct bt_collector *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->nslots; i++)
		slot_stop(c->slots[i]);
	for (unsigned i = 0; i < c->nslots; i++) {
		struct collect_slot *sl = c->slots[i];

		for (unsigned k = 0; k < sl->nsrc; k++)
			source_free(sl->src[k]);
		free(sl->src);
		free(sl->buf);
		pthread_mutex_destroy(&sl->lock);
		free(sl);
	}
	free(c->slots);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
