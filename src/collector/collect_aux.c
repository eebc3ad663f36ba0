// SPDX-License-Identifier: BSD-3-Clause
/*
 * AUX bytes -> bt.branch batches (BTS: 24-byte records) and bt.pt chunks
 * (PT packets), each built without assembling the payload first: the
 * msgpack keys and the bin header are written into a small buffer and
 * the records or packets are copied once, from the AUX area straight
 * into the KMES ring (bt_kmes_session__emit_trusted_iov()).
 *
 * Ordering with the kernel (or the sim's driver), as for the data ring:
 * aux_head is loaded with acquire (pairs with the driver's release store
 * in perf_aux_output_end()), and in stream mode aux_tail is stored with
 * release once the bytes are copied (pairs with the driver's read of it
 * in perf_aux_output_begin()). In snapshot mode the area is read-only
 * and aux_tail is never written: the hardware overwrites it in a circle,
 * and the newest aux_size bytes ending at aux_head are copied on freeze,
 * with tracing stopped.
 *
 * BTS framing (intel-bts.c, docs/sim.md): records lie on a 24-byte
 * lattice of offsets in the area; the bytes at the end of the area that
 * are not a whole record, and zero records (padding the driver wrote
 * where it skipped), are not branches.
 */
#include "collector/collect.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"

struct aux_out {
	struct collect_source *so;
	uint64_t time;
	int32_t cpu, pid, tid;
	long events;
};

/* The map of bt.branch or bt.pt up to its bin header. */
static size_t aux_hdr(unsigned char *p, const struct aux_out *o, bool pt,
		      uint64_t off, uint32_t binlen)
{
	size_t n = 0;

	p[n++] = pt ? 0x86 : 0x85;		/* fixmap of 6 or 5 */
	n += collect_mp_str(p + n, "cpu", 3);
	n += collect_mp_int(p + n, o->cpu);
	n += collect_mp_str(p + n, "pid", 3);
	n += collect_mp_int(p + n, o->pid);
	n += collect_mp_str(p + n, "tid", 3);
	n += collect_mp_int(p + n, o->tid);
	n += collect_mp_str(p + n, "time", 4);
	n += collect_mp_uint(p + n, o->time);
	if (pt) {
		n += collect_mp_str(p + n, "off", 3);
		n += collect_mp_uint(p + n, off);
		n += collect_mp_str(p + n, "data", 4);
	} else {
		n += collect_mp_str(p + n, "recs", 4);
	}
	n += collect_mp_bin_hdr(p + n, binlen);
	return n;
}

static void aux_who(struct collect_source *so, struct aux_out *o)
{
	o->so = so;
	o->time = collect_perf_now(so->slot);
	o->events = 0;
	if (so->src.target.kind == BT_TARGET_CPU) {
		o->cpu = so->src.target.id;
		o->pid = o->tid = -1;
	} else {
		o->cpu = so->cpu;
		o->tid = so->src.target.id;
		o->pid = so->pid;
	}
}

static uint32_t aux_chunk(const struct collect_source *so)
{
	return so->slot->c->max_payload - COLLECT_HDR_ROOM;
}

/* ---- BTS -------------------------------------------------------------- */

static inline bool zero_rec(const unsigned char *p)
{
	uint64_t w[2];

	memcpy(w, p, 16);
	return !(w[0] | w[1]);
}

static void bts_emit(struct aux_out *o, const unsigned char *recs, uint32_t n)
{
	unsigned char hdr[COLLECT_HDR_ROOM];
	struct bt_kmes_iov iov[2];

	iov[0].base = hdr;
	iov[0].len = aux_hdr(hdr, o, false, 0, n * BT_BREC_SIZE);
	iov[1].base = recs;
	iov[1].len = (size_t)n * BT_BREC_SIZE;
	if (collect_emit_iov(o->so->slot, BT_EVID_BRANCH, iov, 2, o->cpu) > 0)
		o->events++;
	collect_count(&o->so->slot->c->st_branches, n);
}

/* The records in area offsets [@a, @b). */
static void bts_range(struct aux_out *o, uint64_t a, uint64_t b)
{
	const unsigned char *aux = o->so->src.trace_buf->aux;
	uint32_t max = aux_chunk(o->so) / BT_BREC_SIZE;
	uint64_t at = a;

	if (at % BT_BREC_SIZE)
		at += BT_BREC_SIZE - at % BT_BREC_SIZE;
	while (at + BT_BREC_SIZE <= b) {
		uint32_t n = 0;

		if (zero_rec(aux + at)) {
			at += BT_BREC_SIZE;
			continue;
		}
		do {
			n++;
		} while (n < max &&
			 at + (uint64_t)(n + 1) * BT_BREC_SIZE <= b &&
			 !zero_rec(aux + at + (uint64_t)n * BT_BREC_SIZE));
		bts_emit(o, aux + at, n);
		at += (uint64_t)n * BT_BREC_SIZE;
	}
}

/* ---- PT --------------------------------------------------------------- */

/* Area offsets [@a, @a + @len) (wrapping once), at stream offset @off. */
static void pt_range(struct aux_out *o, uint64_t a, uint64_t len, uint64_t off)
{
	const struct bt_pmu_buffers *b = o->so->src.trace_buf;
	uint32_t max = aux_chunk(o->so);

	while (len) {
		unsigned char hdr[COLLECT_HDR_ROOM];
		struct bt_kmes_iov iov[3];
		uint64_t n = len < max ? len : max;
		uint64_t at = a & (b->aux_size - 1);
		uint64_t first = n < b->aux_size - at ? n : b->aux_size - at;
		uint32_t k = 0;

		iov[k].base = hdr;
		iov[k++].len = aux_hdr(hdr, o, true, off, (uint32_t)n);
		iov[k].base = b->aux + at;
		iov[k++].len = (size_t)first;
		if (n > first) {
			iov[k].base = b->aux;
			iov[k++].len = (size_t)(n - first);
		}
		if (collect_emit_iov(o->so->slot, BT_EVID_PT, iov, k,
				     o->cpu) > 0)
			o->events++;
		collect_count(&o->so->slot->c->st_pt_bytes, n);
		a += n;
		off += n;
		len -= n;
	}
}

/* ---- stream and snapshot ---------------------------------------------- */

long collect_drain_aux(struct collect_source *so)
{
	const struct bt_pmu_buffers *b = so->src.trace_buf;
	struct perf_event_mmap_page *pc;
	uint64_t head, tail, size;
	struct aux_out o;

	if (!b || !b->aux || !b->aux_size || b->aux_overwrite ||
	    (!so->aux_bts && !so->aux_pt))
		return 0;
	pc = b->page;
	size = b->aux_size;
	/* Relaxed: only we store aux_tail. */
	tail = __atomic_load_n(&pc->aux_tail, __ATOMIC_RELAXED);
	/* Pairs with the driver's release store of aux_head. */
	head = __atomic_load_n(&pc->aux_head, __ATOMIC_ACQUIRE);
	if (head == tail)
		return 0;
	aux_who(so, &o);
	if (head - tail > size) {
		/* Cannot be, in stream mode: the bytes before are gone. */
		pr_warn("collector: slot %u: aux_head %llu is %llu bytes past "
			"aux_tail %llu in an area of %llu", so->slot->index,
			(unsigned long long)head,
			(unsigned long long)(head - tail),
			(unsigned long long)tail, (unsigned long long)size);
		collect_lost(so->slot, o.cpu, o.tid, o.time, "aux",
			     head - tail - size);
		tail = head - size;
	}
	if (so->aux_pt) {
		pt_range(&o, tail, head - tail, tail);
	} else {
		for (uint64_t pos = tail; pos < head;) {
			uint64_t off = pos & (size - 1);
			uint64_t end = head - pos < size - off ? head :
				       pos + (size - off);

			bts_range(&o, off, off + (end - pos));
			pos = end;
		}
	}
	/* Our reads are done: the driver may write there again. */
	__atomic_store_n(&pc->aux_tail, head, __ATOMIC_RELEASE);
	return o.events;
}

static bool all_zero(const unsigned char *p, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++) {
		if (p[i])
			return false;
	}
	return true;
}

long collect_snapshot_aux(struct collect_source *so)
{
	const struct bt_pmu_buffers *b = so->src.trace_buf;
	uint64_t head, h, size;
	struct aux_out o;

	if (!b || !b->aux || !b->aux_size || (!so->aux_bts && !so->aux_pt))
		return 0;
	size = b->aux_size;
	head = __atomic_load_n(&b->page->aux_head, __ATOMIC_ACQUIRE);
	/* the driver's wrapped position (perf: free-running; same here) */
	h = head & (size - 1);
	aux_who(so, &o);
	if (so->aux_bts) {
		/* oldest first: past the head (if it wrapped), then up to it */
		bts_range(&o, h, size);
		bts_range(&o, 0, h);
	} else if (!all_zero(b->aux + h, size - h)) {
		/*
		 * It wrapped (the area starts zeroed, as perf's snapshot
		 * code also assumes): the whole area, oldest byte at h.
		 * Offsets count on from h, so off % aux_size is where a
		 * byte lies in the area.
		 */
		pt_range(&o, h, size, h);
	} else {
		pt_range(&o, 0, h, 0);
	}
	so->snapped = true;
	return o.events;
}
