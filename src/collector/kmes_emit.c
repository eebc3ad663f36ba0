// SPDX-License-Identifier: BSD-3-Clause
/*
 * The KMES write protocol (KMES.md §4.1) and the two emission APIs: the
 * validated one of the spec's syscalls (kmes_emit, kmes_emit_batch) and
 * the trusted one of its kernel emitters (bt_kmes_session__emit_trusted).
 *
 * One writer per ring: every write happens under the slot's mutex (the
 * spec's "preemption off"), and the session's flock keeps other processes
 * out. write_pos and tail_pos are free-running byte positions; the data
 * region is mapped twice, so an event is always written and read with one
 * contiguous copy at data + (pos & (capacity - 1)).
 *
 * Ordering with the consumers (kmes_reader.c):
 *
 *   producer (ring_write)                 consumer (slot_read / __wait)
 *   STORE_RELEASE(tail_pos)       (A)     wp = LOAD_ACQUIRE(write_pos)  (C)
 *   FENCE_RELEASE                 (A')    tp = LOAD_ACQUIRE(tail_pos)
 *   STORE event bytes                     COPY event bytes
 *   STORE_SEQ_CST(write_pos)      (B)     FENCE_ACQUIRE                 (E)
 *   LOAD_SEQ_CST(need_wake)       (D)     tp2 = LOAD_RELAXED(tail_pos)
 *   if set: XCHG_SEQ_CST(need_wake, 0), futex_counter++ (release),
 *           FUTEX_WAKE
 *
 *   wait: STORE_SEQ_CST(need_wake = 1) (F); c = LOAD_ACQUIRE(futex_counter);
 *         LOAD_SEQ_CST(write_pos) (G); FUTEX_WAIT(c)
 *
 * B pairs with C: the bytes are visible before the write_pos covering
 * them. A' pairs with E: a copy that saw bytes written after tail_pos
 * moved also sees the moved tail_pos on its reload, so it is discarded
 * (the seqlock of KMES.md §10 item 8; on x86 both fences cost nothing).
 * B/D pair with F/G, a Dekker handshake that needs full ordering (§10
 * item 7): either the consumer's reload sees the new write_pos, or the
 * producer's load sees need_wake set and wakes it; and futex_counter is
 * read before write_pos (§10 item 6), so a wake in between is not lost.
 */
#include "collector/kmes_session.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "common/bytes.h"
#include "common/log.h"
#include "common/opts.h"
#include "common/utf8.h"

/* ---- Rate limit (MaxEmitRatePerProcess, optional) ---------------------- */

#define NS_PER_S	1000000000ull

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/*
 * Take @n tokens, all or none. Tokens are kept in billionths so a refill
 * of elapsed_ns * rate is exact; the bucket holds at most one second's
 * worth (burst == rate).
 */
static int rate_take(struct kmes_rate *rt, uint32_t n)
{
	uint64_t now, cap, want;
	int err = 0;

	if (!rt->rate)
		return 0;
	pthread_mutex_lock(&rt->lock);
	now = mono_ns();
	cap = (uint64_t)rt->rate * NS_PER_S;
	if (now > rt->last_ns) {
		/* More than a second refills the bucket: cap before multiplying. */
		uint64_t dt = now - rt->last_ns < NS_PER_S ? now - rt->last_ns :
			      NS_PER_S;
		uint64_t add = dt * rt->rate;

		rt->tokens = cap - rt->tokens < add ? cap : rt->tokens + add;
		rt->last_ns = now;
	}
	want = (uint64_t)n * NS_PER_S;
	if (rt->tokens < want)
		err = -EAGAIN;
	else
		rt->tokens -= want;
	pthread_mutex_unlock(&rt->lock);
	return err;
}

static void rate_refund(struct kmes_rate *rt, uint32_t n)
{
	uint64_t cap;

	if (!rt->rate || !n)
		return;
	pthread_mutex_lock(&rt->lock);
	cap = (uint64_t)rt->rate * NS_PER_S;
	rt->tokens += (uint64_t)n * NS_PER_S;
	if (rt->tokens > cap)
		rt->tokens = cap;
	pthread_mutex_unlock(&rt->lock);
}

/* ---- The write protocol ------------------------------------------------- */

/*
 * Advance tail_pos over the oldest events until [tail, @end) fits in the
 * ring. The producer wrote every event it walks, so a size that does not
 * fit means someone else wrote to the file; then, like the later PKM
 * writer, it gives up on the old events and jumps tail_pos to write_pos.
 */
static void ring_make_room(struct kmes_slot *sl, uint64_t end)
{
	struct kmes_ring *r = &sl->ring;
	uint64_t tail = r->tail, walked = 0;

	while (end - tail > r->capacity) {
		uint32_t esz = bt_le32(r->data + (tail & r->mask));

		if (esz < KMES_HDR_FIXED || esz > r->wp - tail) {
			pr_warn("kmes: slot %u: event at position %llu has size "
				"%u; the ring was written by someone else; "
				"dropping its old events", sl->index,
				(unsigned long long)tail, esz);
			tail = r->wp;
			break;
		}
		tail += esz;
		walked++;
	}
	if (tail == r->tail)
		return;
	r->tail = tail;
	sl->lost += walked;
	atomic_store_explicit(&r->pp->x_lost, sl->lost, memory_order_relaxed);
	/* A: pairs with the consumer's acquire load of tail_pos. */
	atomic_store_explicit(&r->pp->tail_pos, tail, memory_order_release);
	/* A': the new tail_pos is visible before any byte written below. */
	atomic_thread_fence(memory_order_release);
}

/*
 * Write events [0, @n) of @e with sizes @size (0: drop it). All share one
 * timestamp, each spends a sequence number, one publish of write_pos at
 * the end. Returns the number written. Called with @sl->lock held.
 */
static uint32_t ring_write(struct kmes_slot *sl, const struct kmes_emit_entry *e,
			   const uint32_t *size, uint32_t n, uint8_t origin,
			   int cpu, const struct bt_kmes_iov *iov,
			   uint32_t iovcnt)
{
	struct kmes_ring *r = &sl->ring;
	uint64_t total = 0, pos, ts;
	uint32_t first = 0, written = 0, dropped = 0, lost = 0;

	for (uint32_t i = 0; i < n; i++)
		total += size[i];
	/*
	 * A batch larger than the ring would overwrite its own head before
	 * anyone could see it: those events are lost on arrival, and the
	 * rest still becomes visible at once.
	 */
	while (total > r->capacity)
		total -= size[first++];
	ring_make_room(sl, r->wp + total);

	/* Timestamp first, then sequence numbers (§2.1.3). */
	ts = kmes_now_ns();
	pos = r->wp;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t seq = ++sl->seq;
		unsigned char *p;

		if (!size[i]) {
			dropped++;
			continue;
		}
		if (i < first) {
			lost++;
			continue;
		}
		p = r->data + (pos & r->mask);
		memcpy(p, sl->tmpl, KMES_HDR_FIXED);
		bt_put_le32(p + KMES_EV_EVENT_SIZE, size[i]);
		bt_put_le32(p + KMES_EV_HEADER_SIZE,
			    KMES_HDR_FIXED + e[i].event_type_len);
		bt_put_le64(p + KMES_EV_TIMESTAMP, ts);
		bt_put_le64(p + KMES_EV_SEQUENCE, seq);
		if (cpu >= 0)
			bt_put_le16(p + KMES_EV_CPU_ID, (uint16_t)cpu);
		p[KMES_EV_ORIGIN] = origin;
		bt_put_le16(p + KMES_EV_TYPE_LEN, e[i].event_type_len);
		memcpy(p + KMES_EV_TYPE, e[i].event_type, e[i].event_type_len);
		if (iov) {
			/* gathered: entry 0's payload is the pieces */
			unsigned char *q = p + KMES_EV_TYPE +
					   e[i].event_type_len;

			for (uint32_t k = 0; k < iovcnt; k++) {
				if (iov[k].len)
					memcpy(q, iov[k].base, iov[k].len);
				q += iov[k].len;
			}
		} else if (e[i].payload_len) {
			memcpy(p + KMES_EV_TYPE + e[i].event_type_len,
			       e[i].payload, e[i].payload_len);
		}
		pos += size[i];
		written++;
	}

	/* Relaxed: these counters are published by B below. */
	atomic_store_explicit(&r->pp->x_last_seq, sl->seq, memory_order_relaxed);
	if (dropped) {
		sl->dropped += dropped;
		atomic_store_explicit(&r->pp->x_dropped, sl->dropped,
				      memory_order_relaxed);
	}
	if (lost) {
		sl->lost += lost;
		atomic_store_explicit(&r->pp->x_lost, sl->lost,
				      memory_order_relaxed);
	}
	if (!written)
		return 0;
	r->wp = pos;
	/* B: pairs with C; seq_cst also orders it before D (Dekker). */
	atomic_store_explicit(&r->pp->write_pos, pos, memory_order_seq_cst);
	/* D */
	kmes_ring_notify(r->pp, KMES_NEED_WAKE(r->base));
	return written;
}

/* The CPU to stamp into the header: -1 keeps the template's (the ring's). */
static int stamp_cpu(const struct bt_kmes_session *s)
{
	int cpu;

	if (s->kind != BT_KMES_RING_TASK)
		return -1;
	cpu = sched_getcpu();
	return cpu < 0 ? 0 : cpu;
}

/* ---- Validated emission (the syscall semantics) ------------------------- */

/*
 * The per-entry checks of §5.1 in the spec's order, after the rate limit.
 * Called with @sl->lock held (the msgpack zone and the capacity).
 */
static int entry_check(const struct bt_kmes_session *s, struct kmes_slot *sl,
		       const struct kmes_emit_entry *e, uint32_t *size)
{
	uint64_t total;

	if (e->event_type_len == 0)
		return EINVAL;
	/* From the lengths alone, before touching a pointer. */
	total = (uint64_t)KMES_HDR_FIXED + e->event_type_len + e->payload_len;
	if (total > UINT32_MAX)
		return EINVAL;
	if (total > s->max_event_size)
		return ENOSPC;
	if (total > sl->ring.capacity / 2)
		return ENOSPC;
	if (!e->event_type || (!e->payload && e->payload_len))
		return EFAULT;
	if (!bt_utf8_valid((const unsigned char *)e->event_type,
			   e->event_type_len))
		return EINVAL;
	if (bt_mpcheck__run(&sl->mp, e->payload, e->payload_len) < 0)
		return EINVAL;
	*size = (uint32_t)total;
	return 0;
}

int kmes_emit_batch(struct bt_kmes_session *s, uint32_t slot,
		    const struct kmes_emit_entry *entries, uint32_t count,
		    uint32_t *emitted_out)
{
	uint32_t size[KMES_BATCH_MAX];
	struct kmes_slot *sl;
	uint32_t n = 0;
	int err = 0;

	sl = s ? kmes_session_slot(s, slot) : NULL;
	if (!sl || count == 0 || count > KMES_BATCH_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (rate_take(&s->rate, count) < 0) {
		errno = EAGAIN;
		return -1;
	}
	if (!emitted_out) {
		rate_refund(&s->rate, count);
		errno = EFAULT;
		return -1;
	}
	*emitted_out = 0;
	if (!entries) {
		rate_refund(&s->rate, count);
		errno = EFAULT;
		return -1;
	}

	pthread_mutex_lock(&sl->lock);
	for (; n < count; n++) {
		err = entry_check(s, sl, &entries[n], &size[n]);
		if (err)
			break;
	}
	if (n)
		ring_write(sl, entries, size, n, KMES_ORIGIN_USER, stamp_cpu(s),
			   NULL, 0);
	pthread_mutex_unlock(&sl->lock);

	/* Tokens are charged only for events actually emitted. */
	rate_refund(&s->rate, count - n);
	*emitted_out = n;
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

int kmes_emit(struct bt_kmes_session *s, uint32_t slot, const char *event_type,
	      uint16_t event_type_len, const void *payload,
	      uint32_t payload_len)
{
	struct kmes_emit_entry e = {
		.event_type = event_type,
		.event_type_len = event_type_len,
		.payload = payload,
		.payload_len = payload_len,
	};
	uint32_t done;

	return kmes_emit_batch(s, slot, &e, 1, &done);
}

/* ---- Trusted emission (the kernel-emitter semantics) -------------------- */

int bt_kmes_session__emit_trusted(struct bt_kmes_session *s, uint32_t slot,
				  const struct bt_kmes_stamp *stamp,
				  const struct kmes_emit_entry *entries,
				  uint32_t count)
{
	uint32_t size[KMES_BATCH_MAX];
	struct bt_kmes_stamp st;
	struct kmes_slot *sl;
	uint32_t written;
	int cpu;

	sl = s ? kmes_session_slot(s, slot) : NULL;
	if (!sl || !entries || count == 0 || count > KMES_BATCH_MAX)
		return -EINVAL;
	if (bt_opts_copy(&st, sizeof(st), stamp) < 0)
		return -EINVAL;
	cpu = st.has_cpu ? st.cpu_id : stamp_cpu(s);

	pthread_mutex_lock(&sl->lock);
	for (uint32_t i = 0; i < count; i++) {
		const struct kmes_emit_entry *e = &entries[i];
		uint64_t total = (uint64_t)KMES_HDR_FIXED + e->event_type_len +
				 e->payload_len;

		/* The structural checks of §5.2; a failure drops the event. */
		if (e->event_type_len == 0 || total > UINT32_MAX ||
		    total > sl->ring.capacity / 2 || !e->event_type ||
		    (!e->payload && e->payload_len))
			size[i] = 0;
		else
			size[i] = (uint32_t)total;
	}
	written = ring_write(sl, entries, size, count, st.origin_class, cpu,
			     NULL, 0);
	pthread_mutex_unlock(&sl->lock);
	return (int)written;
}

int bt_kmes_session__emit_trusted_iov(struct bt_kmes_session *s,
				      uint32_t slot,
				      const struct bt_kmes_stamp *stamp,
				      const char *type, uint16_t type_len,
				      const struct bt_kmes_iov *iov,
				      uint32_t iovcnt)
{
	struct kmes_emit_entry e = {
		.event_type = type, .event_type_len = type_len,
	};
	struct bt_kmes_stamp st;
	struct kmes_slot *sl;
	uint64_t plen = 0, total;
	uint32_t size, written;
	int cpu;

	sl = s ? kmes_session_slot(s, slot) : NULL;
	if (!sl || !iov || iovcnt == 0 || iovcnt > BT_KMES_IOV_MAX)
		return -EINVAL;
	if (bt_opts_copy(&st, sizeof(st), stamp) < 0)
		return -EINVAL;
	for (uint32_t k = 0; k < iovcnt; k++) {
		if (iov[k].len && !iov[k].base)
			return -EINVAL;
		plen += iov[k].len;
	}
	cpu = st.has_cpu ? st.cpu_id : stamp_cpu(s);
	total = (uint64_t)KMES_HDR_FIXED + type_len + plen;

	pthread_mutex_lock(&sl->lock);
	/* The structural checks of §5.2, as __emit_trusted makes them. */
	if (type_len == 0 || !type || total > UINT32_MAX ||
	    total > sl->ring.capacity / 2)
		size = 0;
	else
		size = (uint32_t)total;
	e.payload_len = (uint32_t)(plen > UINT32_MAX ? 0 : plen);
	written = ring_write(sl, &e, &size, 1, st.origin_class, cpu, iov,
			     iovcnt);
	pthread_mutex_unlock(&sl->lock);
	return (int)written;
}

uint64_t bt_kmes_session__last_sequence(struct bt_kmes_session *s,
					uint32_t slot)
{
	struct kmes_slot *sl = s ? kmes_session_slot(s, slot) : NULL;
	uint64_t seq;

	if (!sl)
		return 0;
	pthread_mutex_lock(&sl->lock);
	seq = sl->seq;
	pthread_mutex_unlock(&sl->lock);
	return seq;
}
