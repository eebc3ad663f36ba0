// SPDX-License-Identifier: BSD-3-Clause
/*
 * DS management areas: the intel_bts driver and PEBS, modelled on
 * arch/x86/events/intel/bts.c and arch/x86/events/intel/ds.c.
 *
 * BTS. As in bts.c, the CPU's BTS buffer *is* the AUX area: the DS
 * area's base, index, absolute maximum and interrupt threshold point
 * into one of its high-order "phys" buffers (two halves in stream mode,
 * where PERF_PMU_CAP_AUX_NO_SG asks rb_alloc_aux() for software double
 * buffering; one in snapshot mode). Each phys buffer holds a whole number
 * of 24-byte records; a displacement at its start keeps the records of
 * the whole area on one 24-byte lattice. The CPU appends records at the
 * index; reaching the threshold raises the PMI, whose handler
 * (intel_bts_interrupt()) publishes what was written (bts_update(),
 * perf_aux_output_end() -> PERF_RECORD_AUX), takes a new handle and
 * programs the next stretch (bts_buffer_reset(), bts_config_buffer()):
 * at most up to the consumer's aux_tail, and no further than the wakeup
 * watermark. When the remainder of a phys buffer is too small, it is
 * zero-padded and skipped (perf_aux_output_skip(), no record). If the
 * index reached the absolute maximum, the record carries TRUNCATED; if
 * no room is left, the event stops and is disabled. In snapshot mode the
 * threshold lies past the maximum: the buffer is circular (BTINT clear),
 * and on stop the driver reports its wrapped position with OVERWRITE.
 *
 * PEBS. The kernel's own DS buffer (64 KiB, not mapped to the consumer);
 * the sample type qualifies for large PEBS, so the threshold leaves room
 * for one record per PEBS counter below the maximum and the PMI drains
 * all records into PERF_RECORD_SAMPLE records in the data ring, as does
 * a stop (intel_pmu_drain_pebs_buffer()). The counter reset is -period
 * in the counter's 48 bits (auto-reload).
 */
#include "ds/sim_model.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HDR	sizeof(struct perf_event_header)

/* ---- BTS ---------------------------------------------------------------- */

void bt_sim_bts__setup(struct bt_pmu_event *ev)
{
	struct sim_bts *b = &ev->bts;
	uint64_t pages = ev->aux_size / BT_PMU_PAGE;
	uint64_t bsz, pad = 0, off = 0;

	memset(b, 0, sizeof(*b));
	b->nr_bufs = !ev->aux_overwrite && pages >= 2 ? 2 : 1;
	bsz = ev->aux_size / b->nr_bufs;
	/* bts_buffer_setup_aux() */
	for (unsigned i = 0; i < b->nr_bufs; i++) {
		struct sim_bts_phys *p = &b->phys[i];

		p->offset = off;
		p->buf_size = bsz;
		p->displacement = pad ? SIM_BTS_RECORD - pad : 0;
		p->size = bsz - p->displacement;
		pad = p->size % SIM_BTS_RECORD;
		p->size -= pad;
		off += bsz;
	}
}

static uint64_t phys_start(const struct sim_bts *b, unsigned i)
{
	return b->phys[i].offset + b->phys[i].displacement;
}

/* bts_update(): how far the CPU got, since the last publication. */
static void bts_update(struct bt_pmu_event *ev)
{
	struct sim_bts *b = &ev->bts;
	uint64_t head, old;

	head = b->index - b->base + phys_start(b, b->cur_buf);
	old = b->head;
	b->head = head;
	if (!ev->aux_overwrite) {
		if (old == head)
			return;
		if (b->index >= b->abs_max)
			ev->h.flags |= PERF_AUX_FLAG_TRUNCATED;
		/* old and head are in the same phys buffer */
		b->data_size += head - old;
	} else {
		b->data_size = head;
	}
}

/* bts_buffer_pad_out(): zero what is left of the phys buffer. */
static void bts_pad_out(struct bt_pmu_event *ev, const struct sim_bts_phys *p,
			uint64_t head)
{
	uint64_t end = p->offset + p->displacement + p->size;

	memset(ev->kaux + head, 0, end - head);
}

/* bts_buffer_reset(): where the CPU may write until the next PMI. */
static int bts_reset(struct bt_pmu_event *ev)
{
	struct sim_bts *b = &ev->bts;
	struct sim_aux_handle *h = &ev->h;
	uint64_t head, space, next_space, pad, gap, skip, wakeup;
	const struct sim_bts_phys *p, *np;
	unsigned next;
	int err;

	if (ev->aux_overwrite)
		return 0;
	head = h->head & (ev->aux_size - 1);
	p = &b->phys[b->cur_buf];
	space = p->offset + p->displacement + p->size - head;
	pad = space;
	if (space > h->size) {
		space = h->size;
		space -= space % SIM_BTS_RECORD;
	}
	if (space <= SIM_BTS_SAFETY_MARGIN) {
		/* see if the next phys buffer has more room */
		next = b->cur_buf + 1 < b->nr_bufs ? b->cur_buf + 1 : 0;
		np = &b->phys[next];
		gap = p->buf_size - p->displacement - p->size + np->displacement;
		skip = pad + gap;
		if (h->size >= skip) {
			next_space = np->size;
			if (next_space + skip > h->size) {
				next_space = h->size - skip;
				next_space -= next_space % SIM_BTS_RECORD;
			}
			if (next_space > space || !space) {
				if (pad)
					bts_pad_out(ev, p, head);
				err = bt_sim_aux__skip(ev, skip);
				if (err)
					return err;
				p = np;
				space = next_space;
				head = p->offset + p->displacement;
				b->cur_buf = next;
				b->head = head;
			}
		}
	}
	/* do not go far beyond the wakeup watermark */
	wakeup = SIM_BTS_SAFETY_MARGIN + SIM_BTS_RECORD + h->wakeup - h->head;
	if (space > wakeup) {
		space = wakeup;
		space -= space % SIM_BTS_RECORD;
	}
	b->end = head + space;
	return space ? 0 : -ENOSPC;
}

/* bts_config_buffer(): program the DS area. */
static void bts_config(struct bt_pmu_event *ev)
{
	struct sim_bts *b = &ev->bts;
	const struct sim_bts_phys *p = &b->phys[b->cur_buf];
	uint64_t index = b->head, thresh = 0, end = p->size;

	if (!ev->aux_overwrite) {
		if (b->end < p->offset + p->buf_size)
			end = b->end - p->offset - p->displacement;
		index -= p->offset + p->displacement;
		if (end - index > SIM_BTS_SAFETY_MARGIN)
			thresh = end - SIM_BTS_SAFETY_MARGIN;
		else if (end - index > SIM_BTS_RECORD)
			thresh = end - SIM_BTS_RECORD;
		else
			thresh = end;
	} else {
		index -= p->offset + p->displacement;
	}
	b->base = p->offset + p->displacement;
	b->index = b->base + index;
	b->abs_max = b->base + end;
	b->thresh = !ev->aux_overwrite ? b->base + thresh :
					 b->abs_max + SIM_BTS_RECORD;
}

void bt_sim_bts__start(struct bt_pmu_event *ev)
{
	struct sim_bts *b = &ev->bts;

	if (b->active || !ev->kaux)
		return;
	if (bt_sim_aux__begin(ev))
		return;			/* hw.state = PERF_HES_STOPPED */
	if (bts_reset(ev)) {
		bt_sim_aux__end(ev, 0);
		return;
	}
	bts_config(ev);
	b->active = true;
}

void bt_sim_bts__stop(struct bt_pmu_event *ev)
{
	struct sim_bts *b = &ev->bts;
	uint64_t size;

	b->active = false;
	if (!ev->h.active)
		return;			/* BTS_STATE_STOPPED: handle ended */
	bts_update(ev);
	if (ev->aux_overwrite) {
		ev->h.head = b->data_size;
		b->data_size = ev->aux_size;
	}
	size = b->data_size;
	b->data_size = 0;
	bt_sim_aux__end(ev, size);
}

/* intel_bts_interrupt() */
static void bts_pmi(struct bt_pmu_event *ev)
{
	struct sim_bts *b = &ev->bts;
	uint64_t old = b->head, size;
	int err;

	if (ev->aux_overwrite)
		return;			/* snapshot counters use no PMI */
	bts_update(ev);
	if (old == b->head)
		return;
	size = b->data_size;
	b->data_size = 0;
	bt_sim_aux__end(ev, size);
	err = bt_sim_aux__begin(ev);
	if (!err)
		err = bts_reset(ev);
	if (err) {
		b->active = false;
		if (ev->h.active)
			bt_sim_aux__end(ev, 0);
		return;
	}
	bts_config(ev);
}

int bt_sim_bts_record(struct bt_pmu *pmu, struct bt_pmu_event *ev,
		      uint64_t from, uint64_t to)
{
	struct bt_sim_bts_record rec = { .from = from, .to = to, .flags = 0 };
	struct sim_bts *b;
	struct bt_sim *s;
	int err = 0;

	if (!bt_sim_is(pmu))
		return -EINVAL;
	s = sim_of(pmu);
	pthread_mutex_lock(&s->lock);
	if (!bt_sim__owns(s, ev) || !sim_is_bts(ev)) {
		err = -EINVAL;
		goto out;
	}
	b = &ev->bts;
	if (!ev->enabled || !b->active) {
		err = -ENOSPC;
		goto out;
	}
	if (b->index >= b->abs_max) {
		if (!ev->aux_overwrite) {
			err = -ENOSPC;	/* BTINT: full until the PMI resets */
			goto out;
		}
		b->index = b->base;	/* circular buffer */
	}
	memcpy(ev->kaux + b->index, &rec, sizeof(rec));
	b->index += SIM_BTS_RECORD;
	if (ev->aux_overwrite && b->index >= b->abs_max)
		b->index = b->base;
	if (b->index >= b->thresh)
		bts_pmi(ev);
	bt_sim__pending_disable(ev);
out:
	pthread_mutex_unlock(&s->lock);
	return err;
}

/* ---- PEBS --------------------------------------------------------------- */

int bt_sim_pebs__setup(struct bt_pmu_event *ev)
{
	struct sim_pebs *p = &ev->pebs;
	const uint64_t rec = sizeof(struct bt_sim_pebs_record);

	p->buf = calloc(1, SIM_PEBS_BUFFER);
	if (!p->buf)
		return -ENOMEM;
	/* alloc_pebs_buffer(), intel_pmu_pebs_enable() for large PEBS */
	p->base = 0;
	p->index = 0;
	p->abs_max = SIM_PEBS_BUFFER / rec * rec;
	p->thresh = p->abs_max - SIM_PEBS_MAX_EVENTS * rec;
	p->counter_reset = (uint64_t)-(int64_t)ev->attr.sample_period &
			   SIM_PEBS_CNTVAL_MASK;
	return 0;
}

void bt_sim_pebs__free(struct bt_pmu_event *ev)
{
	free(ev->pebs.buf);
	ev->pebs.buf = NULL;
}

/* One PEBS record as PERF_RECORD_SAMPLE (setup_pebs_fixed_sample_data()). */
static void pebs_sample(struct bt_pmu_event *ev,
			const struct bt_sim_pebs_record *r)
{
	/* perf_regs order: AX BX CX DX SI DI BP SP IP FLAGS R8..R15 */
	static const unsigned order[18] = {
		0, 1, 2, 3, 4, 5, 6, 7, 17, 16, 8, 9, 10, 11, 12, 13, 14, 15,
	};
	uint64_t rec[(HDR + 8 * 8 + 18 * 8) / 8];
	uint16_t misc = PERF_RECORD_MISC_EXACT_IP |
			(r->ip >= 0xffff800000000000ull ?
			 PERF_RECORD_MISC_KERNEL : PERF_RECORD_MISC_USER);
	struct perf_event_header h = {
		.type = PERF_RECORD_SAMPLE, .misc = misc, .size = sizeof(rec),
	};
	uint64_t tsc = r->tsc ? r->tsc : bt_sim__tsc_locked(ev->sim);
	pid_t pid, tid;
	unsigned n = 1;
	int cpu;

	bt_sim__current(ev->sim, ev, &pid, &tid, &cpu);
	memcpy(&rec[0], &h, sizeof(h));
	rec[n++] = ev->id;
	rec[n++] = r->ip;
	rec[n++] = (uint64_t)(uint32_t)pid | (uint64_t)(uint32_t)tid << 32;
	rec[n++] = bt_sim__tsc_to_time(ev->sim, tsc);
	rec[n++] = r->addr;
	rec[n++] = (uint64_t)(uint32_t)cpu;
	rec[n++] = ev->attr.sample_period;
	rec[n++] = PERF_SAMPLE_REGS_ABI_64;
	for (unsigned i = 0; i < 18; i++)
		rec[n++] = r->regs[order[i]];
	bt_sim_rb__output(ev, rec, sizeof(rec));
}

void bt_sim_pebs__drain(struct bt_pmu_event *ev)
{
	struct sim_pebs *p = &ev->pebs;
	const uint64_t sz = sizeof(struct bt_sim_pebs_record);
	struct bt_sim_pebs_record r;

	for (uint64_t at = p->base; at < p->index; at += sz) {
		memcpy(&r, p->buf + at, sz);
		pebs_sample(ev, &r);
	}
	p->index = p->base;
}

int bt_sim_pebs_record(struct bt_pmu *pmu, struct bt_pmu_event *ev,
		       const struct bt_sim_pebs_record *rec)
{
	struct sim_pebs *p;
	struct bt_sim *s;
	int err = 0;

	if (!bt_sim_is(pmu) || !rec)
		return -EINVAL;
	s = sim_of(pmu);
	pthread_mutex_lock(&s->lock);
	if (!bt_sim__owns(s, ev) || ev->sideband ||
	    ev->facility != BT_FAC_PEBS) {
		err = -EINVAL;
		goto out;
	}
	if (!ev->enabled || !ev->pc) {
		err = -ENOSPC;
		goto out;
	}
	p = &ev->pebs;
	memcpy(p->buf + p->index, rec, sizeof(*rec));
	p->index += sizeof(*rec);
	if (p->index >= p->thresh)
		bt_sim_pebs__drain(ev);	/* the PMI */
out:
	pthread_mutex_unlock(&s->lock);
	return err;
}

int bt_sim_ds_area(struct bt_pmu *pmu, struct bt_pmu_event *ev,
		   struct bt_sim_ds_area *out)
{
	struct bt_sim *s;
	int err = 0;

	if (!bt_sim_is(pmu) || !out)
		return -EINVAL;
	s = sim_of(pmu);
	pthread_mutex_lock(&s->lock);
	if (!bt_sim__owns(s, ev) ||
	    (!sim_is_bts(ev) && (ev->sideband || ev->facility != BT_FAC_PEBS))) {
		err = -EINVAL;
		goto out;
	}
	memset(out, 0, sizeof(*out));
	if (sim_is_bts(ev)) {
		out->bts_base = ev->bts.base;
		out->bts_index = ev->bts.index;
		out->bts_abs_max = ev->bts.abs_max;
		out->bts_int_thresh = ev->bts.thresh;
	} else {
		out->pebs_base = ev->pebs.base;
		out->pebs_index = ev->pebs.index;
		out->pebs_abs_max = ev->pebs.abs_max;
		out->pebs_int_thresh = ev->pebs.thresh;
		out->pebs_counter_reset = ev->pebs.counter_reset;
	}
out:
	pthread_mutex_unlock(&s->lock);
	return err;
}
