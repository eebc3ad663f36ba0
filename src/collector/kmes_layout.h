/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The KMES producer page as a C struct: an ABI shared between processes,
 * pinned by the asserts below (STYLE rule 17). Offsets are those of
 * <btrail/kmes.h>; both must agree.
 */
#ifndef BT_COLLECTOR_KMES_LAYOUT_H
#define BT_COLLECTOR_KMES_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <btrail/kmes.h>

#include "common/bytes.h"

/*
 * Cache line 0 is written once, before the ring is visible, except
 * generation (bumped in the old ring at a swap). Cache line 1 belongs to
 * the producer, line 2 to the notification handshake. Lines 3-5 are the
 * btrail extension: static fields, topology, and the producer's counters.
 */
struct kmes_producer_page {
	uint8_t magic[8];			/* 0 */
	uint32_t version;			/* 8 */
	uint16_t cpu_id;			/* 12 */
	uint16_t reserved0;			/* 14 */
	uint64_t capacity;			/* 16 */
	uint64_t data_offset;			/* 24 */
	_Atomic uint64_t generation;		/* 32 */
	uint8_t reserved1[24];			/* 40 */

	alignas(64) _Atomic uint64_t write_pos;	/* 64 */
	_Atomic uint64_t tail_pos;		/* 72 */
	uint8_t reserved2[48];			/* 80 */

	alignas(64) _Atomic uint32_t futex_counter; /* 128 */
	uint8_t reserved3[60];			/* 132 */

	/* btrail extension (bytes 192..383) */
	alignas(64) uint8_t x_magic[8];		/* 192 */
	uint32_t x_version;			/* 200 */
	uint32_t x_size;			/* 204 */
	uint32_t x_kind;			/* 208 */
	uint32_t x_tid;				/* 212 */
	int32_t x_numa_node;			/* 216 */
	uint32_t x_flags;			/* 220 */
	uint64_t x_wake_ino;			/* 224 */
	uint64_t x_created;			/* 232 */
	uint8_t x_session_id[16];		/* 240 */

	alignas(64) _Atomic uint32_t x_status;	/* 256 */
	_Atomic uint32_t x_nr_slots;		/* 260 */
	_Atomic uint64_t x_topology;		/* 264 */
	_Atomic uint32_t x_producer;		/* 272 */
	uint32_t x_max_event_size;		/* 276 */
	uint32_t x_max_depth;			/* 280 */
	uint32_t x_max_emit_rate;		/* 284 */
	uint32_t x_config;			/* 288 */
	uint8_t x_reserved4[28];		/* 292 */

	alignas(64) _Atomic uint64_t x_last_seq; /* 320 */
	_Atomic uint64_t x_dropped;		/* 328 */
	_Atomic uint64_t x_lost;		/* 336 */
	uint8_t x_reserved5[40];		/* 344 */

	uint8_t x_unused[KMES_PAGE_SIZE - 384];	/* 384..4095: zero */
};

#define KMES_ASSERT_OFF(field, off) \
	_Static_assert(offsetof(struct kmes_producer_page, field) == (off), \
		       "KMES ABI: " #field)
KMES_ASSERT_OFF(magic, KMES_OFF_MAGIC);
KMES_ASSERT_OFF(version, KMES_OFF_VERSION);
KMES_ASSERT_OFF(cpu_id, KMES_OFF_CPU_ID);
KMES_ASSERT_OFF(reserved0, KMES_OFF_RESERVED0);
KMES_ASSERT_OFF(capacity, KMES_OFF_CAPACITY);
KMES_ASSERT_OFF(data_offset, KMES_OFF_DATA_OFFSET);
KMES_ASSERT_OFF(generation, KMES_OFF_GENERATION);
KMES_ASSERT_OFF(reserved1, KMES_OFF_RESERVED1);
KMES_ASSERT_OFF(write_pos, KMES_OFF_WRITE_POS);
KMES_ASSERT_OFF(tail_pos, KMES_OFF_TAIL_POS);
KMES_ASSERT_OFF(reserved2, KMES_OFF_RESERVED2);
KMES_ASSERT_OFF(futex_counter, KMES_OFF_FUTEX);
KMES_ASSERT_OFF(reserved3, KMES_OFF_RESERVED3);
KMES_ASSERT_OFF(x_magic, BT_KMES_XOFF_MAGIC);
KMES_ASSERT_OFF(x_version, BT_KMES_XOFF_VERSION);
KMES_ASSERT_OFF(x_size, BT_KMES_XOFF_SIZE);
KMES_ASSERT_OFF(x_kind, BT_KMES_XOFF_KIND);
KMES_ASSERT_OFF(x_tid, BT_KMES_XOFF_TID);
KMES_ASSERT_OFF(x_numa_node, BT_KMES_XOFF_NUMA_NODE);
KMES_ASSERT_OFF(x_flags, BT_KMES_XOFF_FLAGS);
KMES_ASSERT_OFF(x_wake_ino, BT_KMES_XOFF_WAKE_INO);
KMES_ASSERT_OFF(x_created, BT_KMES_XOFF_CREATED);
KMES_ASSERT_OFF(x_session_id, BT_KMES_XOFF_SESSION_ID);
KMES_ASSERT_OFF(x_status, BT_KMES_XOFF_STATUS);
KMES_ASSERT_OFF(x_nr_slots, BT_KMES_XOFF_NR_SLOTS);
KMES_ASSERT_OFF(x_topology, BT_KMES_XOFF_TOPOLOGY);
KMES_ASSERT_OFF(x_producer, BT_KMES_XOFF_PRODUCER);
KMES_ASSERT_OFF(x_max_event_size, BT_KMES_XOFF_MAX_EVENT);
KMES_ASSERT_OFF(x_max_depth, BT_KMES_XOFF_MAX_DEPTH);
KMES_ASSERT_OFF(x_max_emit_rate, BT_KMES_XOFF_MAX_RATE);
KMES_ASSERT_OFF(x_config, BT_KMES_XOFF_CONFIG);
KMES_ASSERT_OFF(x_last_seq, BT_KMES_XOFF_LAST_SEQ);
KMES_ASSERT_OFF(x_dropped, BT_KMES_XOFF_DROPPED);
KMES_ASSERT_OFF(x_lost, BT_KMES_XOFF_LOST);
_Static_assert(sizeof(struct kmes_producer_page) == KMES_PAGE_SIZE,
	       "KMES ABI: producer page size");
_Static_assert(BT_KMES_XOFF_MAGIC + BT_KMES_EXT_SIZE == 384,
	       "KMES ABI: extension size");
/* Lock-free atomics are address-free, so they work across processes. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2 &&
	       ATOMIC_CHAR_LOCK_FREE == 2,
	       "KMES ABI: needs lock-free 8-, 32- and 64-bit atomics");
/* The spec's integers are little-endian; so is every host we target. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "KMES ABI: little-endian host required");

/* Byte 0 of the consumer page (mapping offset 4096). */
#define KMES_NEED_WAKE(base) \
	((_Atomic uint8_t *)((unsigned char *)(base) + KMES_OFF_NEED_WAKE))

static inline struct kmes_producer_page *kmes_page(void *base)
{
	return (struct kmes_producer_page *)base;
}

static inline int kmes_capacity_valid(uint64_t cap)
{
	return cap >= KMES_CAPACITY_MIN && cap <= KMES_CAPACITY_MAX &&
	       (cap & (cap - 1)) == 0;
}

/* A ring file is the producer page followed by the data region. */
#define KMES_FILE_SIZE(cap)	((uint64_t)KMES_PAGE_SIZE + (uint64_t)(cap))
#define KMES_FILE_DATA_OFFSET	KMES_PAGE_SIZE

/* The decoded fixed header of one event (KMES.md §3). */
struct kmes_hdr {
	uint32_t event_size;
	uint32_t header_size;
	uint64_t timestamp;
	uint64_t sequence;
	uint16_t cpu_id;
	uint8_t origin_class;
	uint16_t type_len;
};

static inline void kmes_hdr_decode(const unsigned char *p, struct kmes_hdr *h)
{
	h->event_size = bt_le32(p + KMES_EV_EVENT_SIZE);
	h->header_size = bt_le32(p + KMES_EV_HEADER_SIZE);
	h->timestamp = bt_le64(p + KMES_EV_TIMESTAMP);
	h->sequence = bt_le64(p + KMES_EV_SEQUENCE);
	h->cpu_id = bt_le16(p + KMES_EV_CPU_ID);
	h->origin_class = p[KMES_EV_ORIGIN];
	h->type_len = bt_le16(p + KMES_EV_TYPE_LEN);
}

/*
 * The structural checks of KMES.md §10 item 9, on a decoded header of an
 * event that claims to start at a position with @avail bytes written
 * after it. Returns NULL when the header is sound, else what is wrong.
 */
static inline const char *kmes_hdr_check(const struct kmes_hdr *h,
					 uint64_t avail, uint64_t capacity)
{
	if (h->event_size < KMES_HDR_FIXED)
		return "event_size below the 77-byte header";
	if (h->event_size > avail)
		return "event_size runs past write_pos";
	if (h->event_size > capacity / 2)
		return "event_size over half the capacity";
	if (h->header_size != KMES_HDR_FIXED + (uint32_t)h->type_len)
		return "header_size is not 77 + type_len";
	if (h->header_size > h->event_size)
		return "header_size exceeds event_size";
	if (h->sequence == 0)
		return "sequence 0";
	return NULL;
}

#endif /* BT_COLLECTOR_KMES_LAYOUT_H */
