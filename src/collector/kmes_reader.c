// SPDX-License-Identifier: BSD-3-Clause
/*
 * The KMES consumer: drain loop (KMES.md §4.3), notification wait (§4.4
 * with the fixes of §10 items 6, 7 and 10), generation re-attach by
 * sequence (§4.5) and topology changes (App. C §10.1.1).
 *
 * Everything read from a ring is hostile until checked (§10 item 9):
 * positions are checked against each other and the capacity, an event's
 * size is checked against what is written before a byte of it is copied,
 * and the copy (never the mapping) is what gets decoded and returned.
 *
 * Ordering with the producer (see the diagram in kmes_emit.c): C is the
 * acquire load of write_pos that makes the bytes below it visible; E is
 * the acquire fence between copying an event and reloading tail_pos for
 * the torn-read check; F/G are the seq_cst store of need_wake and reload
 * of write_pos of the wait, the consumer half of the Dekker handshake.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <btrail/errno.h>
#include <btrail/kmes.h>

#include "collector/kmes_layout.h"
#include "common/log.h"
#include "common/opts.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449	/* Linux 5.16, every architecture */
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
struct futex_waitv {
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t __reserved;
};
#endif
#define WAITV_MAX	128	/* FUTEX_WAITV_MAX */

/* Events taken from one slot before the next slot gets a turn. */
#define READ_BURST	64
/* Bytes copied out of a ring at once (events are parsed from the copy). */
#define READ_BURST_BYTES	(64u * 1024u)

struct rslot {
	uint32_t index;
	int fd;				/* -1 for a borrowed mapping */
	unsigned char *base;
	struct kmes_producer_page *pp;
	const unsigned char *data;
	uint64_t cap;
	uint64_t mask;
	uint64_t rp;			/* read_pos */
	uint64_t gen;			/* generation when mapped */
	uint64_t last_seq;		/* of the last event returned; 0 none */
	bool stuck;			/* corrupt bytes at stuck_at */
	uint64_t stuck_at;
	bool bad_positions;		/* reported already */
	bool dead;			/* the session is gone */
	struct bt_kmes_slot_stats st;
	unsigned char *buf;		/* the burst copied out of the ring */
	size_t buflen;
	uint64_t bstart, bend;		/* positions of buf[0] and its end */
	uint64_t bwp;			/* write_pos when the burst was copied */
};

struct bt_kmes_reader {
	char *session;			/* NULL: a borrowed mapping, or */
	bt_kmes_attach_fn attach;	/* attached through this */
	void *attach_ctx;
	bool all;
	bool from_now;
	uint32_t spin_us;
	uint32_t linger_us;
	struct rslot *slots;
	uint32_t n;
	uint32_t alloc;
	uint32_t cursor;
	uint32_t burst;
	uint64_t topology;
};

/* ---- Attaching ---------------------------------------------------------- */

static void rslot_unmap(struct rslot *s)
{
	if (s->fd >= 0) {
		kmes_unmap(s->base, s->cap);
		close(s->fd);
	}
	s->fd = -1;
	s->base = NULL;
	s->pp = NULL;
	s->data = NULL;
}

static void rslot_use(struct rslot *s, int fd, void *base, uint64_t cap)
{
	s->fd = fd;
	s->base = base;
	s->pp = kmes_page(base);
	s->data = s->base + KMES_DATA_OFFSET;
	s->cap = cap;
	s->mask = cap - 1;
	/* Never cached across cycles (§10 item 3); this is the baseline. */
	s->gen = atomic_load_explicit(&s->pp->generation, memory_order_acquire);
	s->st.generation = s->gen;
	s->st.capacity = cap;
	s->bstart = s->bend = s->bwp = 0;	/* no burst of this ring yet */
}

static int rslot_map(const struct bt_kmes_reader *r, uint32_t index,
		     int *fd_out, void **base_out, uint64_t *cap_out)
{
	uint64_t cap;
	void *base;
	int fd, err;

	if (r->attach) {
		int wfd = -1;

		fd = -1;
		err = r->attach(r->attach_ctx, index, &fd, &wfd, &cap);
		if (err)
			return err < 0 ? err : -EINVAL;
		base = bt_kmes_map_fds(fd, wfd, cap);
		err = errno;
		close(wfd);		/* the mapping keeps the page */
		errno = err;
	} else {
		fd = kmes_attach(r->session, index, &cap);
		if (fd < 0)
			return -errno;
		base = kmes_map(fd, cap);
	}
	if (!base) {
		err = -errno;
		close(fd);
		return err;
	}
	*fd_out = fd;
	*base_out = base;
	*cap_out = cap;
	return 0;
}

static int reader_grow(struct bt_kmes_reader *r, uint32_t want)
{
	struct rslot *n;

	if (want <= r->alloc)
		return 0;
	n = realloc(r->slots, want * sizeof(*n));
	if (!n)
		return -ENOMEM;
	memset(n + r->alloc, 0, (want - r->alloc) * sizeof(*n));
	r->slots = n;
	r->alloc = want;
	return 0;
}

static int reader_add(struct bt_kmes_reader *r, uint32_t index)
{
	struct rslot *s;
	uint64_t cap;
	void *base;
	int fd, err;

	err = reader_grow(r, r->n + 1);
	if (err)
		return err;
	err = rslot_map(r, index, &fd, &base, &cap);
	if (err)
		return err;
	s = &r->slots[r->n++];
	memset(s, 0, sizeof(*s));
	s->index = index;
	rslot_use(s, fd, base, cap);
	s->rp = atomic_load_explicit(r->from_now ? &s->pp->write_pos :
				     &s->pp->tail_pos, memory_order_acquire);
	return 0;
}

static void reader_topology_seen(struct bt_kmes_reader *r)
{
	if (r->n)
		r->topology = atomic_load_explicit(&r->slots[0].pp->x_topology,
						   memory_order_acquire);
}

/* A reader with @opts applied (copied into *@o) and no slot yet. */
static struct bt_kmes_reader *reader_alloc(const struct bt_kmes_reader_opts *opts,
					   struct bt_kmes_reader_opts *o)
{
	struct bt_kmes_reader *r;
	int err = bt_opts_copy(o, sizeof(*o), opts);

	if (err)
		return errno = -err, NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->all = !o->one_slot;
	r->from_now = o->from_now;
	r->spin_us = o->spin_us;
	r->linger_us = o->linger_us;
	return r;
}

/* Attach @o->slot, or slots 0..@nslots-1. */
static int reader_add_first(struct bt_kmes_reader *r,
			    const struct bt_kmes_reader_opts *o, uint64_t nslots)
{
	int err = 0;

	if (o->one_slot)
		return reader_add(r, o->slot);
	for (uint64_t i = 0; i < nslots && !err; i++)
		err = reader_add(r, (uint32_t)i);
	return err;
}

struct bt_kmes_reader *bt_kmes_reader__new(const char *session,
					   const struct bt_kmes_reader_opts *opts)
{
	struct bt_kmes_reader_opts o;
	struct bt_kmes_reader *r;
	uint64_t nr = 0;
	int err;

	if (!session)
		return errno = EINVAL, NULL;
	r = reader_alloc(opts, &o);
	if (!r)
		return NULL;
	r->session = strdup(session);
	if (!r->session) {
		err = -ENOMEM;
		goto out_free;
	}
	if (!o.one_slot &&
	    kmes_attach(session, KMES_ATTACH_QUERY_SLOTS, &nr) < 0) {
		err = -errno;
		goto out_free;
	}
	err = reader_add_first(r, &o, nr);
	if (err)
		goto out_free;
	reader_topology_seen(r);
	/*
	 * A slot added while we attached bumped the counter after its file
	 * appeared: having read the counter, count the slots once more.
	 */
	if (r->all && kmes_attach(session, KMES_ATTACH_QUERY_SLOTS, &nr) == 0) {
		while (r->n < nr && !err)
			err = reader_add(r, r->n);
		if (err)
			goto out_free;
	}
	return r;

out_free:
	bt_kmes_reader__free(r);
	errno = -err;
	return NULL;
}

struct bt_kmes_reader *
bt_kmes_reader__new_attach(uint32_t nslots, bt_kmes_attach_fn fn, void *ctx,
			   const struct bt_kmes_reader_opts *opts)
{
	struct bt_kmes_reader_opts o;
	struct bt_kmes_reader *r;
	int err;

	if (!fn)
		return errno = EINVAL, NULL;
	r = reader_alloc(opts, &o);
	if (!r)
		return NULL;
	r->attach = fn;
	r->attach_ctx = ctx;
	r->all = false;		/* its slots are fixed: no topology to follow */
	err = reader_add_first(r, &o, nslots);
	if (err) {
		bt_kmes_reader__free(r);
		errno = -err;
		return NULL;
	}
	return r;
}

struct bt_kmes_reader *bt_kmes_reader__new_mapped(void *base, uint64_t capacity,
						  uint32_t slot)
{
	struct bt_kmes_reader *r;

	if (!base || !kmes_capacity_valid(capacity))
		return errno = EINVAL, NULL;
	r = calloc(1, sizeof(*r));
	if (!r || reader_grow(r, 1) < 0) {
		free(r);
		return errno = ENOMEM, NULL;
	}
	r->n = 1;
	r->slots[0].index = slot;
	rslot_use(&r->slots[0], -1, base, capacity);
	r->slots[0].rp = atomic_load_explicit(&r->slots[0].pp->tail_pos,
					      memory_order_acquire);
	return r;
}

void bt_kmes_reader__free(struct bt_kmes_reader *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; i < r->n; i++) {
		rslot_unmap(&r->slots[i]);
		free(r->slots[i].buf);
	}
	free(r->slots);
	free(r->session);
	free(r);
}

uint32_t bt_kmes_reader__slots(const struct bt_kmes_reader *r)
{
	return r ? r->n : 0;
}

/* ---- The drain loop ----------------------------------------------------- */

static int buf_reserve(struct rslot *s, size_t len)
{
	unsigned char *b;
	size_t want = s->buflen ? s->buflen : 4096;

	if (len <= s->buflen)
		return 0;
	while (want < len)
		want *= 2;
	b = realloc(s->buf, want);
	if (!b)
		return -ENOMEM;
	s->buf = b;
	s->buflen = want;
	return 0;
}

/*
 * Bytes at read_pos failed validation: count it, remember where, and let
 * the slot rest until the producer's tail_pos passes that point; then
 * reading resumes at tail_pos (§4.3 step 6). Positions are absolute, so
 * the file offset of the bad bytes is 4096 + (pos & (capacity - 1)).
 */
static int rslot_corrupt(struct rslot *s, const char *why,
			 struct bt_kmes_event *ev)
{
	s->st.corrupt++;
	s->stuck = true;
	s->stuck_at = s->rp;
	pr_warn("kmes: slot %u: corrupt event at position %" PRIu64
		" (file offset %" PRIu64 "): %s; resuming at tail_pos once the "
		"producer passes it", s->index, s->rp,
		(uint64_t)KMES_FILE_DATA_OFFSET + (s->rp & s->mask), why);
	ev->slot = s->index;
	return -BT_ERRNO_CORRUPT;
}

/*
 * tail_pos after a copy out of the ring (E). The producer moves tail_pos
 * past a position before it writes over it, so every byte copied from a
 * position at or above the value returned was intact when copied.
 */
static uint64_t rslot_tail_after_copy(const struct rslot *s)
{
	/* E: pairs with A' in kmes_emit.c. */
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&s->pp->tail_pos, memory_order_relaxed);
}

static void fill_event(struct rslot *s, const unsigned char *b,
		       const struct kmes_hdr *h, struct bt_kmes_event *ev)
{
	ev->slot = s->index;
	ev->event_size = h->event_size;
	ev->header_size = h->header_size;
	ev->timestamp = h->timestamp;
	ev->sequence = h->sequence;
	ev->cpu_id = h->cpu_id;
	ev->origin_class = h->origin_class;
	memcpy(ev->effective_token_guid, b + KMES_EV_EFFECTIVE_GUID, 16);
	memcpy(ev->true_token_guid, b + KMES_EV_TRUE_GUID, 16);
	memcpy(ev->process_guid, b + KMES_EV_PROCESS_GUID, 16);
	ev->type_len = h->type_len;
	ev->type = (const char *)b + KMES_EV_TYPE;
	ev->payload = b + h->header_size;
	ev->payload_len = h->event_size - h->header_size;
	ev->raw = b;
	ev->gap = s->last_seq && h->sequence > s->last_seq + 1 ?
		  h->sequence - s->last_seq - 1 : 0;
	ev->generation = s->gen;
}

static void burst_drop(struct rslot *s)
{
	s->bstart = s->bend = s->bwp = 0;
}

/*
 * Copy [read_pos, read_pos + len) out of the ring, @len at least @need
 * and at most what is written, then check nothing in it was overwritten
 * meanwhile. Returns 1 with the burst in s->buf, 0 when there is nothing
 * to read, or -BT_ERRNO_CORRUPT.
 *
 * Copying a burst (§4.3 steps 1-5 for many events at once) makes one
 * torn-read check, and two loads of the producer's busiest cache line,
 * cover up to READ_BURST_BYTES of events instead of one event; the
 * events are then checked and returned from the private copy.
 */
static int rslot_fill(struct rslot *s, uint64_t need, struct bt_kmes_event *ev)
{
	unsigned reloads = 0;

	burst_drop(s);
	for (;;) {
		uint64_t wp, tp, tp2, len;

		if (!s->pp)
			return 0;
		/* C: pairs with B; the bytes below wp are visible. */
		wp = atomic_load_explicit(&s->pp->write_pos,
					  memory_order_acquire);
		if (wp == s->rp)
			return 0;
		tp = atomic_load_explicit(&s->pp->tail_pos,
					  memory_order_acquire);
		/*
		 * write_pos is loaded before tail_pos, so wp - tp can only
		 * look smaller than it is: over capacity, the page is bad.
		 * tail_pos never passes the published write_pos, but the
		 * write_pos we loaded may be older than tail_pos: load both
		 * again, in the same order, before calling them inconsistent
		 * (loading only write_pos again could show wp - tp over
		 * capacity for a moment).
		 */
		if (tp > wp && reloads++ < 8)
			continue;
		if (tp > wp || wp - tp > s->cap) {
			if (!s->bad_positions) {
				s->bad_positions = true;
				s->st.corrupt++;
				pr_warn("kmes: slot %u: tail_pos %" PRIu64
					" and write_pos %" PRIu64 " are "
					"inconsistent (capacity %" PRIu64 ")",
					s->index, tp, wp, s->cap);
				ev->slot = s->index;
				return -BT_ERRNO_CORRUPT;
			}
			return 0;
		}
		s->bad_positions = false;
		if (s->stuck) {
			if (tp <= s->stuck_at)
				return 0;
			s->stuck = false;
			s->rp = tp;
			continue;	/* tail_pos may equal write_pos */
		}
		if (s->rp < tp) {		/* lapped (§4.3 step 2) */
			s->st.lapped++;
			s->rp = tp;
			need = 0;
			continue;
		}
		if (s->rp > wp) {
			/* Positions went backwards: not the ring we read. */
			s->rp = tp;
			return rslot_corrupt(s, "read_pos is past write_pos",
					     ev);
		}
		len = wp - s->rp;
		if (len > READ_BURST_BYTES)
			len = READ_BURST_BYTES > need ? READ_BURST_BYTES : need;
		if (len > wp - s->rp)
			len = wp - s->rp;
		if (buf_reserve(s, len) < 0)
			return -ENOMEM;
		/* One contiguous copy: the data region is mapped twice. */
		memcpy(s->buf, s->data + (s->rp & s->mask), len);
		s->bstart = s->rp;
		s->bend = s->rp + len;
		s->bwp = wp;
		tp2 = rslot_tail_after_copy(s);
		if (tp2 <= s->rp)
			return 1;
		/*
		 * Torn (§4.3 step 5): the producer overtook the start of the
		 * copy. The spec goes back to step 2 and resumes at tail_pos;
		 * a new tail_pos is an event boundary, and what was copied
		 * from it on is intact, so resume there from the copy. Copying
		 * again from tail_pos would be torn again whenever the
		 * producer fills a copy's length faster than it is copied: a
		 * reader lapped once would then stay at the tail.
		 */
		s->st.torn++;
		s->st.lapped++;
		s->rp = tp2;
		if (tp2 < s->bend)
			return 1;
		burst_drop(s);
	}
}

/* One event from @s: 1, 0 when drained, or -BT_ERRNO_CORRUPT. */
static int rslot_read(struct rslot *s, struct bt_kmes_event *ev)
{
	for (;;) {
		const unsigned char *b;
		struct kmes_hdr h;
		const char *why;
		uint64_t in_buf, avail;
		int ret;

		if (s->rp < s->bstart || s->rp >= s->bend) {
			ret = rslot_fill(s, 0, ev);
			if (ret <= 0)
				return ret;
		}
		b = s->buf + (s->rp - s->bstart);
		in_buf = s->bend - s->rp;
		avail = s->bwp - s->rp;		/* written when copied */
		if (avail < KMES_HDR_FIXED) {
			burst_drop(s);
			return rslot_corrupt(s, "fewer bytes than a header", ev);
		}
		if (in_buf < KMES_HDR_FIXED) {	/* the burst cut the header */
			ret = rslot_fill(s, KMES_HDR_FIXED, ev);
			if (ret <= 0)
				return ret;
			continue;
		}
		kmes_hdr_decode(b, &h);
		why = kmes_hdr_check(&h, avail, s->cap);
		if (!why && h.event_size > in_buf) {	/* cut the body */
			ret = rslot_fill(s, h.event_size, ev);
			if (ret <= 0)
				return ret;
			continue;
		}
		if (!why && s->pp->x_kind == BT_KMES_RING_CPU &&
		    h.cpu_id != s->pp->cpu_id)
			why = "cpu_id differs from the ring's";
		if (why) {
			burst_drop(s);
			return rslot_corrupt(s, why, ev);
		}
		if (h.sequence <= s->last_seq) {
			/* Seen before a resynchronisation or a re-attach. */
			s->rp += h.event_size;
			continue;
		}

		fill_event(s, b, &h, ev);
		if (ev->gap) {
			s->st.missed += ev->gap;
			s->st.gaps++;
		}
		if (!s->st.first_sequence)
			s->st.first_sequence = h.sequence;
		s->st.last_sequence = h.sequence;
		s->st.events++;
		s->st.bytes += h.event_size;
		s->last_seq = h.sequence;
		s->rp += h.event_size;		/* the copy is done */
		return 1;
	}
}

/*
 * The generation of @s changed and its ring is drained to the frozen
 * write_pos: attach the new ring and resume after the last sequence read
 * (§4.5). The old ring is released only once the new one is mapped.
 */
static int rslot_reattach(struct bt_kmes_reader *r, struct rslot *s)
{
	uint64_t cap, pos, wp, tp;
	void *base;
	int fd, err;

	err = rslot_map(r, s->index, &fd, &base, &cap);
	if (err == -ENOENT || err == -EINVAL || err == -ESTALE) {
		s->dead = true;		/* the session was destroyed */
		s->st.alive = false;
		return 0;
	}
	if (err)
		return err;
	rslot_unmap(s);
	rslot_use(s, fd, base, cap);
	s->stuck = false;
	s->bad_positions = false;
	s->st.reattached++;

	/* Scan headers from tail_pos to the first unseen sequence. */
	wp = atomic_load_explicit(&s->pp->write_pos, memory_order_acquire);
	tp = atomic_load_explicit(&s->pp->tail_pos, memory_order_acquire);
	pos = tp;
	if (tp <= wp && wp - tp <= cap) {
		while (pos < wp) {
			struct kmes_hdr h;

			if (wp - pos < KMES_HDR_FIXED)
				break;
			kmes_hdr_decode(s->data + (pos & s->mask), &h);
			if (kmes_hdr_check(&h, wp - pos, cap) ||
			    h.sequence > s->last_seq)
				break;
			pos += h.event_size;
		}
	}
	/* A stale scan is harmless: rslot_read() skips seen sequences. */
	s->rp = pos;
	return 0;
}

/* Called when @s is drained: follow a generation change. 1: read again. */
static int rslot_idle(struct bt_kmes_reader *r, struct rslot *s)
{
	uint64_t gen, wp;

	if (s->dead || !s->pp)
		return 0;
	gen = atomic_load_explicit(&s->pp->generation, memory_order_acquire);
	if (gen == s->gen)
		return 0;
	/* The bump was released after the last write: this wp is final. */
	wp = atomic_load_explicit(&s->pp->write_pos, memory_order_acquire);
	/* Not while the positions are inconsistent: reading gets nowhere. */
	if (wp != s->rp && !s->stuck && !s->bad_positions)
		return 1;
	if (!r->session && !r->attach) {	/* borrowed: cannot follow */
		s->gen = gen;
		return 0;
	}
	return rslot_reattach(r, s) < 0 ? 0 : 1;
}

/* New slots of the session, if its topology counter moved. */
static int reader_follow_topology(struct bt_kmes_reader *r)
{
	uint64_t topo, nr;
	uint32_t had;
	int err = 0;

	if (!r->all || !r->session)
		return 0;
	if (r->n) {
		topo = atomic_load_explicit(&r->slots[0].pp->x_topology,
					    memory_order_acquire);
		if (topo == r->topology)
			return 0;
		r->topology = topo;
	}
	if (kmes_attach(r->session, KMES_ATTACH_QUERY_SLOTS, &nr) < 0)
		return 0;
	had = r->n;
	while (r->n < nr && !err) {
		err = reader_add(r, r->n);
		/* A new slot is read from its first event, even from_now. */
		if (!err)
			r->slots[r->n - 1].rp =
				atomic_load_explicit(&r->slots[r->n - 1].pp->tail_pos,
						     memory_order_acquire);
	}
	if (had == 0)
		reader_topology_seen(r);
	return r->n > had;
}

int bt_kmes_reader__next(struct bt_kmes_reader *r, struct bt_kmes_event *ev)
{
	if (!r || !ev)
		return -EINVAL;
	for (int pass = 0; pass < 3; pass++) {
		/* n + 1 turns: a slot passed over for its burst gets another. */
		for (uint32_t k = 0; r->n && k <= r->n; k++) {
			struct rslot *s = &r->slots[r->cursor];
			int ret;

			if (r->burst < READ_BURST) {
				ret = rslot_read(s, ev);
				while (ret == 0 && rslot_idle(r, s) == 1)
					ret = rslot_read(s, ev);
				if (ret != 0) {
					r->burst = ret > 0 ? r->burst + 1 : 0;
					return ret;
				}
			}
			r->burst = 0;
			r->cursor = (r->cursor + 1) % r->n;
		}
		if (!reader_follow_topology(r))
			break;
	}
	return 0;
}

int bt_kmes_reader__stats(const struct bt_kmes_reader *r, uint32_t slot,
			  struct bt_kmes_slot_stats *st)
{
	const struct rslot *s;
	const struct kmes_producer_page *pp;

	if (!r || !st || slot >= r->n)
		return -EINVAL;
	s = &r->slots[slot];
	*st = s->st;
	st->slot = s->index;
	st->read_pos = s->rp;
	st->alive = !s->dead;
	pp = s->pp;
	if (!pp)
		return 0;
	st->write_pos = atomic_load_explicit(&pp->write_pos, memory_order_acquire);
	st->tail_pos = atomic_load_explicit(&pp->tail_pos, memory_order_acquire);
	st->produced = atomic_load_explicit(&pp->x_last_seq,
					    memory_order_relaxed);
	st->dropped = atomic_load_explicit(&pp->x_dropped, memory_order_relaxed);
	st->lost = atomic_load_explicit(&pp->x_lost, memory_order_relaxed);
	st->status = atomic_load_explicit(&pp->x_status, memory_order_relaxed);
	st->producer_pid = atomic_load_explicit(&pp->x_producer,
						memory_order_relaxed);
	st->kind = pp->x_kind;
	st->tid = pp->x_tid;
	st->numa_node = pp->x_numa_node;
	return 0;
}

/* ---- The notification wait ---------------------------------------------- */

/* Anything to do on @s without sleeping? */
static bool rslot_ready(const struct bt_kmes_reader *r, const struct rslot *s)
{
	/* G: seq_cst, ordered after F (the store of need_wake). */
	if (atomic_load_explicit(&s->pp->write_pos, memory_order_seq_cst) !=
	    s->rp && !s->stuck)
		return true;
	if (atomic_load_explicit(&s->pp->generation, memory_order_acquire) !=
	    s->gen)
		return true;
	return r->all && s == &r->slots[0] &&
	       atomic_load_explicit(&s->pp->x_topology, memory_order_acquire) !=
	       r->topology;
}

static bool reader_any_ready(const struct bt_kmes_reader *r)
{
	for (uint32_t i = 0; i < r->n; i++) {
		if (r->slots[i].pp && !r->slots[i].dead &&
		    rslot_ready(r, &r->slots[i]))
			return true;
	}
	return false;
}

static void set_need_wake(struct rslot *s, uint8_t v)
{
	/*
	 * F when setting: seq_cst, so the reloads of write_pos that follow
	 * cannot be satisfied before it is visible. Clearing is relaxed
	 * (§4.7): a stale 1 only costs the producer a spurious wake.
	 */
	atomic_store_explicit(KMES_NEED_WAKE(s->base), v,
			      v ? memory_order_seq_cst : memory_order_relaxed);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Before Linux 5.16 there is no futex_waitv: wait on the first ring only,
 * for at most 10 ms at a time, so the others are not neglected for long.
 */
static long wait_one(const struct futex_waitv *w, uint64_t deadline,
		     int timeout_ms)
{
	uint64_t now = mono_ns(), left = 10000000ull;
	struct timespec rel;

	if (timeout_ms >= 0 && deadline - now < left)
		left = deadline > now ? deadline - now : 0;
	rel.tv_sec = 0;
	rel.tv_nsec = (long)left;
	return syscall(SYS_futex, (void *)(uintptr_t)w->uaddr, FUTEX_WAIT,
		       (uint32_t)w->val, &rel, NULL, 0);
}

int bt_kmes_reader__wait(struct bt_kmes_reader *r, int timeout_ms)
{
	struct futex_waitv fw[WAITV_MAX];
	struct timespec abs, *tsp = NULL;
	uint64_t deadline = 0;
	uint32_t nw = 0;
	bool ready = false;
	long ret;

	if (!r)
		return -EINVAL;
	if (timeout_ms >= 0)
		deadline = mono_ns() + (uint64_t)timeout_ms * 1000000ull;

	/*
	 * Linger: nap once with need_wake still clear, so that the events
	 * written meanwhile cost the producer nothing (§2: one byte read),
	 * then look again before arming the wake.
	 */
	if (r->linger_us) {
		uint64_t nap = (uint64_t)r->linger_us * 1000, now = mono_ns();
		struct timespec ts;

		if (timeout_ms >= 0 && deadline <= now)
			nap = 0;
		else if (timeout_ms >= 0 && deadline - now < nap)
			nap = deadline - now;
		ts.tv_sec = (time_t)(nap / 1000000000ull);
		ts.tv_nsec = (long)(nap % 1000000000ull);
		if (nap && nanosleep(&ts, NULL) < 0 && errno == EINTR)
			return -EINTR;
		if (reader_any_ready(r))
			return 1;
	}
	/* §4.4 step 4: optionally spin before paying for a sleep. */
	if (r->spin_us) {
		uint64_t until = mono_ns() + (uint64_t)r->spin_us * 1000;

		do {
			if (reader_any_ready(r))
				return 1;
		} while (mono_ns() < until);
	}

	for (uint32_t i = 0; i < r->n && nw < WAITV_MAX; i++) {
		struct rslot *s = &r->slots[i];

		if (!s->pp || s->dead)
			continue;
		/* Step 1, fixed: F, a full fence. */
		set_need_wake(s, 1);
		/* Fixed order (§10 item 6): the counter before write_pos. */
		fw[nw].val = atomic_load_explicit(&s->pp->futex_counter,
						  memory_order_acquire);
		fw[nw].uaddr = (uint64_t)(uintptr_t)&s->pp->futex_counter;
		fw[nw].flags = FUTEX_32;	/* shared: no FUTEX_PRIVATE_FLAG */
		fw[nw].__reserved = 0;
		nw++;
		/* Step 2: re-check (G) after need_wake is visible. */
		if (rslot_ready(r, s))
			ready = true;
	}
	if (!ready && r->all && r->session && r->n == 0) {
		uint64_t nr;

		/* No ring to wait on yet (a per-task session): poll. */
		if (kmes_attach(r->session, KMES_ATTACH_QUERY_SLOTS, &nr) == 0 &&
		    nr > 0)
			ready = true;
	}
	if (!ready) {
		uint64_t until = deadline;
		bool partial = false;

		/* Rings past the 128 futex_waitv takes: poll every 10 ms. */
		for (uint32_t i = nw; i < r->n && !partial; i++)
			partial = r->slots[i].pp && !r->slots[i].dead;
		if (partial && (timeout_ms < 0 ||
				deadline - mono_ns() > 10000000ull))
			until = mono_ns() + 10000000ull;
		else
			partial = false;
		if (timeout_ms >= 0 || partial) {
			abs.tv_sec = (time_t)(until / 1000000000ull);
			abs.tv_nsec = (long)(until % 1000000000ull);
			tsp = &abs;
		}
		if (nw == 0) {
			struct timespec nap = { 0, 100 * 1000000L };

			if (tsp && (uint64_t)timeout_ms < 100)
				nap.tv_nsec = (long)timeout_ms * 1000000L;
			ret = nanosleep(&nap, NULL);
			ret = ret < 0 && errno == EINTR ? -EINTR : 1;
		} else {
			/* Step 5: sleeps only while every counter is unchanged. */
			ret = syscall(SYS_futex_waitv, fw, nw, 0, tsp,
				      CLOCK_MONOTONIC);
			if (ret < 0 && errno == ENOSYS) {
				ret = wait_one(&fw[0], deadline, timeout_ms);
				/* Its 10 ms nap ended, not the caller's timeout. */
				if (ret < 0 && errno == ETIMEDOUT &&
				    (timeout_ms < 0 || mono_ns() < deadline))
					ret = 1;
			}
			if (ret >= 0 || errno == EAGAIN)
				ret = 1;
			else if (errno == ETIMEDOUT)
				ret = partial ? 1 : 0;
			else if (errno == EINTR)
				ret = -EINTR;
			else
				ret = -errno;
		}
	} else {
		ret = 1;
	}
	/* Step 6: clear need_wake. */
	for (uint32_t i = 0; i < r->n; i++) {
		if (r->slots[i].pp && !r->slots[i].dead)
			set_need_wake(&r->slots[i], 0);
	}
	return (int)ret;
}
