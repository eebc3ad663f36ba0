// SPDX-License-Identifier: BSD-3-Clause
/*
 * The consumer side of a perf data ring.
 *
 * Ordering with the kernel (kernel/events/ring_buffer.c):
 *
 *   kernel (perf_output_*)               us (bt_perf_ring__drain)
 *   tail = READ_ONCE(data_tail)    (A)   head = LOAD_ACQUIRE(data_head) (C)
 *   write the records                    read the records
 *   smp_wmb(); data_head = head    (B)   STORE_RELEASE(data_tail)       (D)
 *
 *   B pairs with C: a record's bytes are visible before the head that
 *   covers them. D pairs with A: we are done reading before the kernel
 *   may write over the space (A is the kernel's control dependency plus
 *   smp_mb() in perf_output_begin()).
 *
 * data_head and data_tail are free-running 64-bit byte counts; only the
 * copy masks them. Everything read from the ring is checked: the writer
 * is another party, and a sim ring is ordinary memory.
 */
#include "ds/perf_ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ds/pmu.h"

#define BOUNCE_SIZE	65536u		/* perf_event_header.size is a u16 */

int bt_perf_ring__init(struct bt_perf_ring *r, const struct bt_pmu_buffers *b)
{
	struct perf_event_mmap_page *pc;
	uint64_t off, size;

	memset(r, 0, sizeof(*r));
	if (!b || !b->page || !b->data || !bt_pmu_pages_pow2(b->data_size))
		return -EINVAL;
	pc = b->page;
	/*
	 * Relaxed: the kernel sets data_offset and data_size once, before
	 * the mapping exists; 0 means a kernel older than the fields.
	 */
	off = __atomic_load_n(&pc->data_offset, __ATOMIC_RELAXED);
	size = __atomic_load_n(&pc->data_size, __ATOMIC_RELAXED);
	if ((off && (unsigned char *)pc + off != b->data) ||
	    (size && size != b->data_size)) {
		pr_warn("perf: data ring: the page says offset %llu size %llu, "
			"the mapping %llu bytes at %td",
			(unsigned long long)off, (unsigned long long)size,
			(unsigned long long)b->data_size,
			b->data - (unsigned char *)pc);
		return -EINVAL;
	}
	r->bounce = malloc(BOUNCE_SIZE);
	if (!r->bounce)
		return -ENOMEM;
	r->page = pc;
	r->data = b->data;
	r->size = b->data_size;
	return 0;
}

void bt_perf_ring__fini(struct bt_perf_ring *r)
{
	free(r->bounce);
	r->bounce = NULL;
	r->page = NULL;
	r->data = NULL;
}

/* Copy @len bytes at ring position @pos (masked here) into @dst. */
static void ring_copy_out(const struct bt_perf_ring *r, uint64_t pos,
			  void *dst, size_t len)
{
	uint64_t off = pos & (r->size - 1);
	size_t first = len < r->size - off ? len : (size_t)(r->size - off);

	memcpy(dst, r->data + off, first);
	if (len > first)
		memcpy((unsigned char *)dst + first, r->data, len - first);
}

int bt_perf_ring__drain(struct bt_perf_ring *r, bt_perf_record_fn fn,
			void *ctx)
{
	struct perf_event_mmap_page *pc = r->page;
	uint64_t head, tail, used;
	int n = 0, err = 0;

	if (!pc || !fn)
		return -EINVAL;
	/* Relaxed: only this reader stores data_tail. */
	tail = __atomic_load_n(&pc->data_tail, __ATOMIC_RELAXED);
	/* C: pairs with B, the kernel's store of data_head. */
	head = __atomic_load_n(&pc->data_head, __ATOMIC_ACQUIRE);

	used = head - tail;
	/* Records are multiples of 8 bytes from 0: so are both positions. */
	if (used > r->size || head % 8 || tail % 8) {
		pr_warn("perf: data ring: head %llu is %llu bytes past tail "
			"%llu in a ring of %llu", (unsigned long long)head,
			(unsigned long long)used, (unsigned long long)tail,
			(unsigned long long)r->size);
		return -EPROTO;
	}
	while (tail != head) {
		struct perf_event_header hdr;
		const struct perf_event_header *rec;
		uint64_t off = tail & (r->size - 1);

		used = head - tail;
		if (used < sizeof(hdr)) {
			err = -EPROTO;
			break;
		}
		ring_copy_out(r, tail, &hdr, sizeof(hdr));
		if (hdr.size < sizeof(hdr) || hdr.size % 8 || hdr.size > used) {
			pr_warn("perf: data ring: bad record at %llu: type %u "
				"size %u with %llu bytes left",
				(unsigned long long)tail, hdr.type, hdr.size,
				(unsigned long long)used);
			err = -EPROTO;
			break;
		}
		if (off + hdr.size <= r->size) {
			rec = (const void *)(r->data + off);
		} else {
			/* Straddles the end: one piece at a time, into the bounce buffer. */
			ring_copy_out(r, tail, r->bounce, hdr.size);
			rec = (const void *)r->bounce;
		}
		err = fn(ctx, rec);
		if (err < 0)
			break;
		tail += hdr.size;
		n++;
	}
	/* D: pairs with A, the kernel's read of data_tail; our reads are done. */
	__atomic_store_n(&pc->data_tail, tail, __ATOMIC_RELEASE);
	return err < 0 ? err : n;
}
