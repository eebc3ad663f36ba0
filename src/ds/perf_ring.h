/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Reading the data ring of a perf event (or of a sim event: the same
 * perf_event_mmap_page): records are handed out one at a time, a record
 * that straddles the end of the ring is copied whole into a bounce
 * buffer, and every header is checked before it is used, since the ring
 * is memory another party writes.
 */
#ifndef BT_DS_PERF_RING_H
#define BT_DS_PERF_RING_H

#include <stdint.h>

#include <linux/perf_event.h>

#include <btrail/ds.h>

/*
 * Called with each record; @rec is valid only during the call. A
 * negative return stops the drain with that value; the record stays in
 * the ring and is offered again next time.
 */
typedef int (*bt_perf_record_fn)(void *ctx, const struct perf_event_header *rec);

struct bt_perf_ring {
	struct perf_event_mmap_page *page;
	const unsigned char *data;
	uint64_t size;			/* a power of two */
	unsigned char *bounce;		/* 64 KiB: the largest record */
};

/*
 * bt_perf_ring__init() - read the data ring of @b (borrowed; must stay
 * mapped while @r is used). Checks that the page agrees with @b where it
 * states the ring's geometry (data_offset, data_size).
 *
 * Returns 0, or -EINVAL (no page, size no power of two, disagreeing
 * page), -ENOMEM.
 */
int bt_perf_ring__init(struct bt_perf_ring *r, const struct bt_pmu_buffers *b);
/* Free the bounce buffer; safe on a zeroed or finished ring. */
void bt_perf_ring__fini(struct bt_perf_ring *r);

/*
 * bt_perf_ring__drain() - hand every record in [data_tail, data_head) to
 * @fn, then free the space.
 *
 * Returns the number of records handed out, or:
 *   -EPROTO  the ring is corrupt: data_head - data_tail above the size,
 *            either not a multiple of 8, a
 *            header smaller than itself, not a multiple of 8, or longer
 *            than what is there. The records before it are consumed.
 *   what @fn returned, when negative
 */
int bt_perf_ring__drain(struct bt_perf_ring *r, bt_perf_record_fn fn,
			void *ctx);

#endif /* BT_DS_PERF_RING_H */
