// SPDX-License-Identifier: BSD-3-Clause
/*
 * Emitting into a slot: every bt.* event is preceded on its ring by the
 * bt.schema of its type (once per slot; again after the ring overwrote
 * events, so a reader of a lapped flight recorder still finds them), and
 * every event the ring refuses is counted and told with a bt.lost
 * "drop". Clocks: bt.clock samples the TSC, the perf clock (as the
 * event's perf_event_mmap_page converts the TSC), CLOCK_MONOTONIC and
 * CLOCK_REALTIME together, at start, every clock_period_ms, when
 * CLOCK_REALTIME jumps against CLOCK_MONOTONIC, and at the end.
 */
#include "collector/collect.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include <btrail/kmes.h>

#include "collector/kmes_session.h"
#include "common/bytes.h"
#include "common/log.h"
#include "ds/pmu_attr.h"
#include "ds/sim.h"

/* ---- msgpack, by hand for the hot events ------------------------------ */

size_t collect_mp_str(unsigned char *p, const char *s, size_t len)
{
	size_t n;

	if (len < 32) {
		p[0] = (unsigned char)(0xa0 | len);
		n = 1;
	} else if (len < 256) {
		p[0] = 0xd9;
		p[1] = (unsigned char)len;
		n = 2;
	} else {
		p[0] = 0xda;
		p[1] = (unsigned char)(len >> 8);
		p[2] = (unsigned char)len;
		n = 3;
	}
	memcpy(p + n, s, len);
	return n + len;
}

static size_t put_be(unsigned char *p, unsigned char tag, uint64_t v,
		     unsigned bytes)
{
	p[0] = tag;
	for (unsigned i = 0; i < bytes; i++)
		p[1 + i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
	return 1 + bytes;
}

size_t collect_mp_uint(unsigned char *p, uint64_t v)
{
	if (v < 128) {
		p[0] = (unsigned char)v;
		return 1;
	}
	if (v <= UINT8_MAX)
		return put_be(p, 0xcc, v, 1);
	if (v <= UINT16_MAX)
		return put_be(p, 0xcd, v, 2);
	if (v <= UINT32_MAX)
		return put_be(p, 0xce, v, 4);
	return put_be(p, 0xcf, v, 8);
}

size_t collect_mp_int(unsigned char *p, int64_t v)
{
	if (v >= 0)
		return collect_mp_uint(p, (uint64_t)v);
	if (v >= -32) {
		p[0] = (unsigned char)(int8_t)v;
		return 1;
	}
	if (v >= INT8_MIN)
		return put_be(p, 0xd0, (uint64_t)v, 1);
	if (v >= INT16_MIN)
		return put_be(p, 0xd1, (uint64_t)v, 2);
	if (v >= INT32_MIN)
		return put_be(p, 0xd2, (uint64_t)v, 4);
	return put_be(p, 0xd3, (uint64_t)v, 8);
}

size_t collect_mp_bin_hdr(unsigned char *p, uint32_t len)
{
	if (len <= UINT8_MAX)
		return put_be(p, 0xc4, len, 1);
	if (len <= UINT16_MAX)
		return put_be(p, 0xc5, len, 2);
	return put_be(p, 0xc6, len, 4);
}

/* ---- emitting --------------------------------------------------------- */

static int emit_raw(struct collect_slot *sl, uint32_t id,
		    const struct bt_kmes_iov *iov, uint32_t n, int cpu)
{
	struct bt_collector *c = sl->c;
	const char *type = bt_event_types(NULL)[id].name;
	struct bt_kmes_stamp st = { .sz = sizeof(st) };
	int w;

	if (cpu >= 0 && cpu <= UINT16_MAX &&
	    bt_kmes_session__kind(c->o.session) == BT_KMES_RING_TASK) {
		st.has_cpu = true;
		st.cpu_id = (uint16_t)cpu;
	}
	w = bt_kmes_session__emit_trusted_iov(c->o.session, sl->index, &st,
					      type, (uint16_t)strlen(type),
					      iov, n);
	if (w > 0) {
		collect_count(&c->st_events, 1);
		sl->emitted++;
	} else if (w == 0) {
		collect_count(&c->st_kmes_dropped, 1);
	}
	return w;
}

static int emit_schema(struct collect_slot *sl, uint32_t id, int cpu)
{
	unsigned char buf[1024];
	struct bt_kmes_iov iov;
	long len;
	int w;

	len = bt_event_schema_encode(&bt_event_types(NULL)[id], buf,
				     sizeof(buf));
	if (len < 0)
		return (int)len;
	iov.base = buf;
	iov.len = (size_t)len;
	w = emit_raw(sl, BT_EVID_SCHEMA, &iov, 1, cpu);
	if (w > 0)
		sl->schema_done |= 1u << id;
	return w;
}

int collect_emit_iov(struct collect_slot *sl, uint32_t id,
		     const struct bt_kmes_iov *iov, uint32_t n, int cpu)
{
	int w;

	if (id >= BT_EVID__COUNT)
		return -EINVAL;
	if (!(sl->schema_done & (1u << BT_EVID_SCHEMA)))
		emit_schema(sl, BT_EVID_SCHEMA, cpu);
	if (!(sl->schema_done & (1u << id)))
		emit_schema(sl, id, cpu);
	w = emit_raw(sl, id, iov, n, cpu);
	if (w == 0 && id != BT_EVID_LOST) {
		/* The ring refused it (too large for it): say so in it. */
		collect_lost(sl, cpu, -1, collect_perf_now(sl), "drop", 1);
	}
	return w;
}

int collect_emit(struct collect_slot *sl, uint32_t id, const void *p,
		 size_t len, int cpu)
{
	struct bt_kmes_iov iov = { .base = p, .len = len };

	return collect_emit_iov(sl, id, &iov, 1, cpu);
}

int collect_emit_values(struct collect_slot *sl, uint32_t id,
			const struct bt_event_value *v, int cpu)
{
	long len = bt_event_encode(&bt_event_types(NULL)[id], v, sl->buf,
				   sl->c->max_payload);

	if (len < 0) {
		pr_warn("collector: slot %u: cannot encode %s: %s", sl->index,
			bt_event_types(NULL)[id].name, strerror((int)-len));
		return (int)len;
	}
	return collect_emit(sl, id, sl->buf, (size_t)len, cpu);
}

int collect_lost(struct collect_slot *sl, int cpu, int tid, uint64_t time,
		 const char *what, uint64_t count)
{
	struct bt_event_value v[BT_LOST__N] = { 0 };
	unsigned char buf[128];
	long len;

	v[BT_LOST_CPU].i = cpu;
	v[BT_LOST_TID].i = tid;
	v[BT_LOST_TIME].u = time;
	v[BT_LOST_WHAT].p = what;
	v[BT_LOST_WHAT].len = strlen(what);
	v[BT_LOST_COUNT].u = count;
	/* its own buffer: a bt.lost may be told in the middle of another */
	len = bt_event_encode(&bt_event_types(NULL)[BT_EVID_LOST], v, buf,
			      sizeof(buf));
	if (len < 0)
		return (int)len;
	return collect_emit(sl, BT_EVID_LOST, buf, (size_t)len, cpu);
}

/* ---- clocks ----------------------------------------------------------- */

uint64_t (*collect_clock_hook)(clockid_t id);

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	if (collect_clock_hook)
		return collect_clock_hook(id);
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t collect_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t collect_real_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

/* The conversion of one page, read under its seqlock (pc->lock). */
struct conv {
	bool ok;		/* cap_user_time_zero */
	uint64_t time_zero;
	uint32_t time_mult;
	uint16_t time_shift;
};

static void read_conv(const struct perf_event_mmap_page *pc, struct conv *cv)
{
	uint32_t seq;
	int tries = 0;

	memset(cv, 0, sizeof(*cv));
	if (!pc)
		return;
	do {
		seq = __atomic_load_n(&pc->lock, __ATOMIC_ACQUIRE);
		cv->ok = pc->cap_user_time_zero;
		cv->time_zero = pc->time_zero;
		cv->time_mult = pc->time_mult;
		cv->time_shift = pc->time_shift;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while (__atomic_load_n(&pc->lock, __ATOMIC_RELAXED) != seq &&
		 ++tries < 1000);
	if (cv->time_shift > 63)
		cv->ok = false;
}

static uint64_t conv_tsc(const struct conv *cv, uint64_t tsc)
{
	uint64_t quot = tsc >> cv->time_shift;
	uint64_t rem = tsc & ((1ull << cv->time_shift) - 1);

	return cv->time_zero + quot * cv->time_mult +
	       ((rem * cv->time_mult) >> cv->time_shift);
}

/* The first source of @sl with a page: its pmu and page. */
static struct collect_source *
clock_source(struct collect_slot *sl, const struct perf_event_mmap_page **pc)
{
	for (unsigned i = 0; i < sl->nsrc; i++) {
		struct collect_source *so = sl->src[i];

		if (so->src.trace_buf && so->src.trace_buf->page) {
			*pc = so->src.trace_buf->page;
			return so;
		}
		if (so->src.sideband_buf && so->src.sideband_buf->page) {
			*pc = so->src.sideband_buf->page;
			return so;
		}
	}
	*pc = NULL;
	return NULL;
}

static uint64_t read_tsc(struct collect_source *so)
{
	if (so->sim)
		return bt_sim_tsc(so->src.pmu);
#if defined(__x86_64__) || defined(__i386__)
	return __rdtsc();
#else
	return 0;
#endif
}

uint64_t collect_perf_now(struct collect_slot *sl)
{
	const struct perf_event_mmap_page *pc;
	struct collect_source *so = clock_source(sl, &pc);
	struct conv cv;

	read_conv(pc, &cv);
	if (!so || !cv.ok)
		return collect_mono_ns();
	return conv_tsc(&cv, read_tsc(so));
}

int collect_clock(struct collect_slot *sl, const char *reason)
{
	struct bt_event_value v[BT_CLOCK__N] = { 0 };
	const struct perf_event_mmap_page *pc;
	struct collect_source *so = clock_source(sl, &pc);
	uint64_t tsc = 0, hz = 0, mono, real;
	struct conv cv;

	read_conv(pc, &cv);
	if (so && cv.ok) {
		hz = bt_pmu__tsc_hz(so->src.pmu);
		if (!hz && cv.time_mult)
			hz = (uint64_t)(1e9 * (double)(1ull << cv.time_shift) /
					cv.time_mult);
		tsc = read_tsc(so);
	}
	mono = collect_mono_ns();
	real = collect_real_ns();
	v[BT_CLOCK_REASON].p = reason;
	v[BT_CLOCK_REASON].len = strlen(reason);
	v[BT_CLOCK_TSC_HZ].u = hz;
	v[BT_CLOCK_TIME_ZERO].u = cv.ok ? cv.time_zero : 0;
	v[BT_CLOCK_TIME_MULT].u = cv.ok ? cv.time_mult : 0;
	v[BT_CLOCK_TIME_SHIFT].u = cv.ok ? cv.time_shift : 0;
	v[BT_CLOCK_TSC].u = tsc;
	v[BT_CLOCK_PERF_NS].u = cv.ok ? conv_tsc(&cv, tsc) : mono;
	v[BT_CLOCK_MONO_NS].u = mono;
	v[BT_CLOCK_REAL_NS].u = real;
	sl->last_clock_mono = mono;
	sl->real_off = (int64_t)(real - mono);
	sl->clock_started = true;
	return collect_emit_values(sl, BT_EVID_CLOCK, v, -1);
}

/* Events the slot's ring overwrote since we last looked. */
static void check_kmes_lost(struct collect_slot *sl)
{
	struct kmes_slot *ks = kmes_session_slot(sl->c->o.session, sl->index);
	uint64_t lost;

	if (!ks)
		return;
	pthread_mutex_lock(&ks->lock);
	lost = ks->lost;
	pthread_mutex_unlock(&ks->lock);
	if (lost == sl->kmes_lost_seen)
		return;
	/* Schemas may be among them: make the ring self-describing again. */
	sl->schema_done = 0;
	collect_lost(sl, -1, -1, collect_perf_now(sl), "kmes",
		     lost - sl->kmes_lost_seen);
	sl->kmes_lost_seen = lost;
}

void collect_tick(struct collect_slot *sl, bool force_lost_check)
{
	uint64_t period = sl->c->o.clock_period_ms ?
			  sl->c->o.clock_period_ms : 1000;
	uint64_t mono, real;
	int64_t off, d;

	if (!sl->clock_started) {
		collect_clock(sl, "start");
		return;
	}
	mono = collect_mono_ns();
	real = collect_real_ns();
	off = (int64_t)(real - mono);
	d = off - sl->real_off;
	if (d > COLLECT_JUMP_NS || d < -COLLECT_JUMP_NS) {
		collect_clock(sl, "jump");
	} else if (mono - sl->last_clock_mono >= period * 1000000ull) {
		check_kmes_lost(sl);
		collect_clock(sl, "periodic");
		return;
	}
	if (force_lost_check)
		check_kmes_lost(sl);
}
