// SPDX-License-Identifier: BSD-3-Clause
/*
 * The intel_pt driver over a ToPA table, modelled on
 * arch/x86/events/intel/pt.c.
 *
 * The AUX area is cut into output regions as rb_alloc_aux() would
 * allocate it with no memory pressure: in stream mode, chunks of the
 * wakeup watermark (half the area: two regions), in snapshot mode one
 * chunk for the whole area. Each region is a ToPA entry; the last has
 * END and leads back to the first. The CPU (bt_sim_pt_write()) fills the
 * current region and moves to the next. An entry with INT raises the PMI
 * when its region is full; one with STOP stops the output there (and has
 * INT too).
 *
 * In stream mode the driver places the markers in
 * pt_buffer_reset_markers(): STOP on the region before the page where
 * the consumer's free space ends (the hardware cannot overwrite unread
 * trace), INT on the region before the page of the wakeup watermark.
 * The PMI (intel_pt_interrupt()) publishes aux_head with
 * PERF_RECORD_AUX, flagging TRUNCATED when the hardware hit STOP
 * (pt_handle_status()); then, with a new handle, it moves the markers,
 * or, when the free space ends inside the current region, flags
 * TRUNCATED and leaves tracing stopped; the event is then disabled.
 *
 * In snapshot mode there are no markers: the table wraps and overwrites.
 * On stop the driver reports its wrapped position as aux_head with
 * OVERWRITE and the whole area as the size (pt_event_stop()).
 *
 * VMX root operation (bt_sim_pt_vmx(), intel_pt_handle_vmx()) leaves a
 * gap: the records that cover it carry PARTIAL.
 */
#include "ds/sim_model.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_SHIFT	12

int bt_sim_pt__setup(struct bt_pmu_event *ev)
{
	struct sim_pt *pt = &ev->pt;
	uint64_t pages = ev->aux_size / BT_PMU_PAGE;

	bt_sim_pt__free(ev);
	pt->region = !ev->aux_overwrite && pages >= 2 ? ev->aux_size / 2 :
							 ev->aux_size;
	pt->nr = (unsigned)(ev->aux_size / pt->region);
	pt->topa = calloc(pt->nr, sizeof(*pt->topa));
	if (!pt->topa)
		return -ENOMEM;
	for (unsigned i = 0; i < pt->nr; i++) {
		pt->topa[i].offset = i * pt->region;
		pt->topa[i].size = pt->region;
	}
	pt->topa[pt->nr - 1].end = true;
	pt->cur_idx = 0;
	pt->output_off = 0;
	pt->head = 0;
	pt->data_size = 0;
	pt->active = false;
	pt->stopped = false;
	pt->stop_idx = pt->intr_idx = -1;
	pt->stop_pos = pt->intr_pos = UINT64_MAX;
	return 0;
}

void bt_sim_pt__free(struct bt_pmu_event *ev)
{
	free(ev->pt.topa);
	ev->pt.topa = NULL;
	ev->pt.nr = 0;
	ev->pt.active = false;
}

/* pt_topa_entry_for_page() then pt_topa_prev_entry() */
static int entry_before_page(const struct sim_pt *pt, uint64_t pg)
{
	unsigned idx = (unsigned)((pg << PAGE_SHIFT) / pt->region);

	return (int)((idx + pt->nr - 1) % pt->nr);
}

/* pt_buffer_reset_offsets() */
static void pt_reset_offsets(struct bt_pmu_event *ev, uint64_t head)
{
	struct sim_pt *pt = &ev->pt;
	uint64_t pg;

	if (ev->aux_overwrite)
		head &= ev->aux_size - 1;
	pg = (head >> PAGE_SHIFT) & (ev->aux_size / BT_PMU_PAGE - 1);
	pt->cur_idx = (unsigned)((pg << PAGE_SHIFT) / pt->region);
	pt->output_off = head & (pt->region - 1);
	pt->head = head;
	pt->data_size = 0;
}

/* pt_buffer_reset_markers(): 0, or -EINVAL with TRUNCATED flagged. */
static int pt_reset_markers(struct bt_pmu_event *ev)
{
	struct sim_pt *pt = &ev->pt;
	struct sim_aux_handle *h = &ev->h;
	uint64_t head = pt->head, npages, idx, wakeup;
	uint64_t mask = ev->aux_size / BT_PMU_PAGE - 1;

	/* cannot stop in the middle of an output region */
	if (pt->output_off + h->size + 1 < pt->region) {
		h->flags |= PERF_AUX_FLAG_TRUNCATED;
		return -EINVAL;
	}
	if (pt->stop_idx >= 0) {
		pt->topa[pt->stop_idx].stop = false;
		pt->topa[pt->stop_idx].intr = false;
	}
	if (pt->intr_idx >= 0)
		pt->topa[pt->intr_idx].intr = false;
	/* pages up to the STOP marker; on a page boundary, one more */
	npages = h->size >> PAGE_SHIFT;
	if (((head + h->size + 1) & (BT_PMU_PAGE - 1)) == 0)
		npages++;
	idx = ((head >> PAGE_SHIFT) + npages) & mask;
	pt->stop_pos = idx;
	pt->stop_idx = entry_before_page(pt, idx);
	/* at worst, wake the consumer one page before the hard stop */
	wakeup = h->wakeup >> PAGE_SHIFT;
	idx = (head >> PAGE_SHIFT) + npages - 1;
	if (idx > wakeup)
		idx = wakeup;
	idx &= mask;
	pt->intr_pos = idx;
	pt->intr_idx = entry_before_page(pt, idx);
	pt->topa[pt->stop_idx].stop = true;
	pt->topa[pt->stop_idx].intr = true;
	pt->topa[pt->intr_idx].intr = true;
	return 0;
}

/* pt_handle_status(): the hardware stopped at a full STOP region. */
static void pt_handle_status(struct bt_pmu_event *ev)
{
	struct sim_pt *pt = &ev->pt;

	if (!pt->stopped)
		return;
	pt->stopped = false;
	if (pt->output_off == pt->region) {
		ev->h.flags |= PERF_AUX_FLAG_TRUNCATED;
		/* pt_buffer_advance() */
		pt->output_off = 0;
		pt->cur_idx = pt->topa[pt->cur_idx].end ? 0 : pt->cur_idx + 1;
	}
}

/* pt_update_head() */
static void pt_update_head(struct bt_pmu_event *ev)
{
	struct sim_pt *pt = &ev->pt;
	uint64_t base = pt->topa[pt->cur_idx].offset + pt->output_off;
	uint64_t old;

	if (ev->aux_overwrite) {
		pt->data_size = base;
		return;
	}
	old = pt->head & (ev->aux_size - 1);
	pt->head = base;
	if (base < old)
		base += ev->aux_size;
	pt->data_size += base - old;
}

void bt_sim_pt__start(struct bt_pmu_event *ev)
{
	struct sim_pt *pt = &ev->pt;

	if (pt->active || !pt->topa)
		return;
	if (bt_sim_aux__begin(ev))
		return;			/* hw.state = PERF_HES_STOPPED */
	pt_reset_offsets(ev, ev->h.head);
	if (!ev->aux_overwrite && pt_reset_markers(ev)) {
		bt_sim_aux__end(ev, 0);
		return;
	}
	/* pt_config_start(): no TraceEn in VMX root, a gap */
	if (pt->vmx)
		ev->h.flags |= PERF_AUX_FLAG_PARTIAL;
	pt->stopped = false;
	pt->active = true;
}

void bt_sim_pt__stop(struct bt_pmu_event *ev)
{
	struct sim_pt *pt = &ev->pt;
	uint64_t size;

	pt->active = false;
	if (!ev->h.active || !pt->topa)
		return;
	pt_handle_status(ev);
	pt_update_head(ev);
	if (ev->aux_overwrite) {
		ev->h.head = pt->data_size;
		pt->data_size = ev->aux_size;
	}
	size = pt->data_size;
	pt->data_size = 0;
	bt_sim_aux__end(ev, size);
}

/* intel_pt_interrupt() */
static void pt_pmi(struct bt_pmu_event *ev)
{
	struct sim_pt *pt = &ev->pt;
	uint64_t size;

	if (!ev->h.active)
		return;
	pt_handle_status(ev);
	pt_update_head(ev);
	size = pt->data_size;
	pt->data_size = 0;
	bt_sim_aux__end(ev, size);
	pt->active = false;		/* pt_config_stop() */
	if (bt_sim_aux__begin(ev))
		return;
	pt_reset_offsets(ev, ev->h.head);
	if (pt_reset_markers(ev)) {
		bt_sim_aux__end(ev, 0);
		return;
	}
	pt->active = true;		/* pt_config_start() */
}

int bt_sim_pt_write(struct bt_pmu *pmu, struct bt_pmu_event *ev,
		    const void *buf, size_t len)
{
	const unsigned char *p = buf;
	struct sim_pt *pt;
	struct bt_sim *s;
	int err = 0;

	if (!bt_sim_is(pmu) || (!buf && len))
		return -EINVAL;
	s = sim_of(pmu);
	pthread_mutex_lock(&s->lock);
	if (!bt_sim__owns(s, ev) || !sim_is_pt(ev)) {
		err = -EINVAL;
		goto out;
	}
	pt = &ev->pt;
	while (len) {
		struct sim_topa_entry *e;
		size_t n;

		if (!ev->enabled || !pt->active || pt->vmx) {
			err = -ENOSPC;	/* tracing is off: bytes dropped */
			break;
		}
		e = &pt->topa[pt->cur_idx];
		n = e->size - pt->output_off;
		if (n > len)
			n = len;
		memcpy(ev->kaux + e->offset + pt->output_off, p, n);
		pt->output_off += n;
		p += n;
		len -= n;
		if (pt->output_off < e->size)
			break;
		if (e->stop) {
			/* the output stops here; STOP regions have INT */
			pt->stopped = true;
			pt->active = false;
			pt_pmi(ev);
			if (len)
				err = -ENOSPC;
			break;
		}
		pt->output_off = 0;
		pt->cur_idx = e->end ? 0 : pt->cur_idx + 1;
		if (e->intr)
			pt_pmi(ev);
	}
	bt_sim__pending_disable(ev);
out:
	pthread_mutex_unlock(&s->lock);
	return err;
}

int bt_sim_pt_vmx(struct bt_pmu *pmu, struct bt_pmu_event *ev, bool on)
{
	struct bt_sim *s;
	int err = 0;

	if (!bt_sim_is(pmu))
		return -EINVAL;
	s = sim_of(pmu);
	pthread_mutex_lock(&s->lock);
	if (!bt_sim__owns(s, ev) || !sim_is_pt(ev)) {
		err = -EINVAL;
	} else {
		ev->pt.vmx = on;
		if (ev->h.active)
			ev->h.flags |= PERF_AUX_FLAG_PARTIAL;
	}
	pthread_mutex_unlock(&s->lock);
	return err;
}
