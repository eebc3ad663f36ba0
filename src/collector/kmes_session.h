/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The producer side of a ring session: the bodies behind
 * struct bt_kmes_session. Shared by kmes_session.c (lifecycle, resize,
 * topology) and kmes_emit.c (the write protocol).
 */
#ifndef BT_COLLECTOR_KMES_SESSION_H
#define BT_COLLECTOR_KMES_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <btrail/kmes.h>

#include "collector/kmes_identity.h"
#include "collector/kmes_ring.h"
#include "common/mpcheck.h"

/* cpu_id is a u16, so slot indexes are too. */
#define KMES_MAX_SLOTS	65536u

struct kmes_slot {
	/*
	 * Every write to this slot's ring, and the swap of the ring at a
	 * resize, happens under @lock: it is the "preemption off" of the
	 * spec, and what makes this process the ring's only writer.
	 */
	pthread_mutex_t lock;
	uint32_t index;
	struct kmes_ring ring;		/* current generation */
	int wake_fd;			/* consumer page, kept across swaps */
	uint64_t wake_ino;
	uint64_t seq;			/* last sequence number spent */
	uint64_t dropped;		/* mirrors of the extension counters */
	uint64_t lost;
	struct bt_mpcheck mp;		/* payload validator (under @lock) */
	/* Fixed header bytes 24..76 minus type_len: cpu, origin, GUIDs. */
	unsigned char tmpl[KMES_HDR_FIXED];
};

/* Token bucket of the optional MaxEmitRatePerProcess. */
struct kmes_rate {
	pthread_mutex_t lock;
	uint32_t rate;			/* tokens per second; 0: unlimited */
	uint64_t tokens;		/* in 1e-9 tokens, to refill exactly */
	uint64_t last_ns;		/* CLOCK_MONOTONIC of the last refill */
};

struct bt_kmes_session {
	char *path;
	int dirfd;
	int lockfd;
	/* Structural changes (resize, add, status) take @lock first. */
	pthread_mutex_t lock;
	/*
	 * Acquire/release: __add_slot() fills slots[n] and then stores
	 * n + 1; an emitter that loads nr_slots (acquire) sees the slot.
	 * The array itself never moves.
	 */
	_Atomic uint32_t nr_slots;
	struct kmes_slot **slots;	/* KMES_MAX_SLOTS entries */
	uint32_t kind;
	uint64_t capacity;
	uint64_t topology;
	mode_t ring_mode;
	mode_t wake_mode;
	gid_t gid;
	uint32_t max_event_size;
	uint32_t max_depth;
	bool numa;
	uint8_t session_id[16];
	struct kmes_identity id;
	struct kmes_rate rate;
};

/* Build @sl->tmpl from the session's identity. */
void kmes_slot_fill_template(const struct bt_kmes_session *s,
			     struct kmes_slot *sl);

/* The slot for @slot (KMES_SLOT_CURRENT allowed), or NULL. */
struct kmes_slot *kmes_session_slot(struct bt_kmes_session *s, uint32_t slot);

/* One key of a notice: a string value when @str is set, else @u. */
struct kmes_kv {
	const char *key;
	const char *str;
	uint64_t u;
};

/*
 * A notice from the ring library itself (origin class 1): @type with a
 * msgpack map of the @n pairs of @kv, on every ring. Called with the
 * session lock held.
 */
void kmes_session_notice(struct bt_kmes_session *s, const char *type,
			 const struct kmes_kv *kv, unsigned n);

#endif /* BT_COLLECTOR_KMES_SESSION_H */
