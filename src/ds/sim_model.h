/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The sim backend's internals, shared by its files:
 *
 *   sim.c       the backend, open/close/enable/filters, exclusivity
 *   sim_mmap.c  map/unmap of the memfd-backed buffers, mlock accounting
 *   sim_ring.c  the data ring (perf_output_begin/end), the AUX handle
 *               (perf_aux_output_begin/end/skip), the records the kernel
 *               writes, sideband, LBR samples
 *   sim_ds.c    DS management areas: the intel_bts driver and PEBS
 *   sim_topa.c  the intel_pt driver over a ToPA table of output regions
 *
 * Everything below the backend's mutex (struct bt_sim.lock) is the
 * "kernel" and the "CPU"; only the perf_event_mmap_page positions are
 * shared with the consumer, through the named atomics in sim_ring.c.
 */
#ifndef BT_DS_SIM_MODEL_H
#define BT_DS_SIM_MODEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/perf_event.h>

#include "ds/pmu.h"
#include "ds/sim.h"

/* BTS: 24-byte records; bts.c keeps this much room below the threshold. */
#define SIM_BTS_RECORD		24u
#define SIM_BTS_SAFETY_MARGIN	4080u
/* PEBS: the kernel's DS buffer (ds.c PEBS_BUFFER_SIZE) and counters. */
#define SIM_PEBS_BUFFER		(BT_PMU_PAGE << 4)
#define SIM_PEBS_MAX_EVENTS	4u
#define SIM_PEBS_CNTVAL_MASK	((1ull << 48) - 1)
/* PT: address ranges (CPUID.(EAX=14H,ECX=1):EAX[2:0]) of the model. */
#define SIM_PT_ADDR_RANGES	2u
#define SIM_LBR_DEPTH		32u
#define SIM_MAX_FILTERS		8u

/* The sample_id trailer of every non-sample record (sample_id_all). */
#define SIM_SAMPLE_ID_TYPE	(PERF_SAMPLE_TID | PERF_SAMPLE_TIME | \
				 PERF_SAMPLE_CPU | PERF_SAMPLE_IDENTIFIER)
#define SIM_SAMPLE_ID_SIZE	32u

/* A task the model has heard of (sideband, switches, samples). */
struct sim_task {
	pid_t pid;
	pid_t tid;
	int cpu;
};

/* One per uid: its user_struct's locked_vm, in pages. */
struct sim_user {
	uid_t uid;
	uint64_t locked_vm;
};

/* One parsed address filter (perf_addr_filter). */
struct sim_filter {
	uint32_t action;	/* 0 filter, 1 start, 2 stop, 3 tracestop */
	uint64_t offset;
	uint64_t size;
	bool kernel;		/* no @FILE: a kernel address */
	char path[256];
};

/* The kernel's perf_output_handle for AUX (ring_buffer.c). */
struct sim_aux_handle {
	bool active;
	uint64_t head;		/* rb->aux_head when it began, or set by the driver */
	uint64_t size;		/* room the driver may fill (CIRC_SPACE) */
	uint64_t wakeup;	/* aux_wakeup + aux_watermark */
	uint64_t flags;		/* PERF_AUX_FLAG_* */
};

/* intel_bts: the AUX area as high-order "phys" buffers (bts.c). */
struct sim_bts_phys {
	uint64_t offset;	/* in the AUX area */
	uint64_t displacement;	/* so records never straddle two buffers */
	uint64_t size;		/* a multiple of 24 */
	uint64_t buf_size;	/* bytes of pages of this buffer */
};

struct sim_bts {
	struct sim_bts_phys phys[2];
	unsigned nr_bufs;
	unsigned cur_buf;
	bool active;		/* BTS_STATE_ACTIVE: the CPU writes records */
	uint64_t head;		/* buf->head: offset in AUX */
	uint64_t end;		/* buf->end */
	uint64_t data_size;	/* bytes since the last perf_aux_output_end */
	/* The DS management area, offsets into the AUX area. */
	uint64_t base, index, abs_max, thresh;
};

/* PEBS: a DS buffer of the kernel's own, drained into samples. */
struct sim_pebs {
	unsigned char *buf;	/* SIM_PEBS_BUFFER bytes */
	uint64_t base, index, abs_max, thresh, counter_reset;
};

/* One ToPA entry: an output region of the AUX area (pt.c). */
struct sim_topa_entry {
	uint64_t offset;
	uint64_t size;		/* a power of two >= one page */
	bool end;		/* the last entry: back to the table's start */
	bool intr;		/* PMI when this region fills */
	bool stop;		/* stop tracing when this region fills */
};

struct sim_pt {
	struct sim_topa_entry *topa;
	unsigned nr;
	unsigned cur_idx;
	uint64_t output_off;	/* within the current region */
	uint64_t region;	/* size of every region (uniform here) */
	bool active;		/* hw.state == 0: TraceEn */
	bool stopped;		/* RTIT_STATUS.Stopped */
	bool vmx;		/* intel_pt_handle_vmx(1) */
	uint64_t head;		/* buf->head: offset in AUX, wrapped */
	uint64_t data_size;
	int stop_idx, intr_idx;	/* -1 when no marker */
	uint64_t stop_pos, intr_pos;
};

struct bt_sim;

/* struct bt_pmu_event, as the sim backend defines it. */
struct bt_pmu_event {
	struct bt_sim *sim;
	struct bt_pmu_event *next;	/* in sim->events */
	uint32_t facility;
	bool sideband;
	struct bt_target target;
	uid_t uid;
	uint64_t id;			/* PERF_SAMPLE_IDENTIFIER */
	struct perf_event_attr attr;	/* what perf would have opened */
	bool enabled;
	bool itrace_logged;		/* PERF_ATTACH_ITRACE */
	bool pending_disable;		/* perf_event_disable_inatomic() */
	int efd;			/* eventfd: readable on wakeups */
	/* Sideband of an inherited per-task event: tids and pids followed. */
	pid_t *follow;
	unsigned nr_follow, cap_follow;
	struct sim_filter filters[SIM_MAX_FILTERS];
	unsigned nr_filters;

	/* The mapping: a memfd of page + data + AUX. */
	int memfd;
	unsigned char *base;		/* page + data, RW */
	uint64_t base_len;
	unsigned char *aux_user;	/* what the consumer gets */
	unsigned char *kaux;		/* the kernel's RW view of AUX */
	struct perf_event_mmap_page *pc;
	unsigned char *data;
	uint64_t data_size;
	uint64_t aux_size;
	bool aux_overwrite;
	uint64_t data_user_extra, data_extra;	/* pages charged */
	uint64_t aux_user_extra, aux_extra;

	/* struct perf_buffer, the kernel's private side. */
	uint64_t rb_head;
	uint64_t rb_lost;		/* records not written since the last LOST */
	uint64_t rb_wakeup;
	uint64_t rb_watermark;
	uint64_t lost_samples;		/* event->lost_samples */
	uint64_t aux_head;		/* rb->aux_head */
	uint64_t aux_wakeup;
	uint64_t aux_watermark;
	struct sim_aux_handle h;

	struct sim_bts bts;
	struct sim_pebs pebs;
	struct sim_pt pt;
};

struct bt_sim {
	struct bt_pmu base;		/* first: struct bt_pmu is this */
	pthread_mutex_t lock;
	uint64_t mlock_kb;
	uint64_t rlimit;		/* bytes; UINT64_MAX: unlimited */
	uint32_t nr_cpus;
	bool cap_ipc_lock;
	uint64_t tsc_hz;
	uint64_t t0_ns;			/* CLOCK_MONOTONIC at creation */
	uint32_t time_mult;
	uint16_t time_shift;
	uint64_t pinned_vm;		/* this process's mm->pinned_vm, pages */
	struct sim_user *users;
	unsigned nr_users, cap_users;
	struct sim_task *tasks;
	unsigned nr_tasks, cap_tasks;
	struct sim_task *cpu_curr;	/* nr_cpus: who runs there */
	struct bt_pmu_event *events;
	uint64_t next_id;
};

static inline struct bt_sim *sim_of(struct bt_pmu *pmu)
{
	return (struct bt_sim *)pmu;
}

/* True for the facilities whose trace goes to the AUX area. */
static inline bool sim_is_aux(const struct bt_pmu_event *ev)
{
	return !ev->sideband &&
	       (ev->facility == BT_FAC_PT || ev->facility == BT_FAC_BTS ||
		ev->facility == BT_FAC_STEP || ev->facility == BT_FAC_PTEMU);
}

static inline bool sim_is_bts(const struct bt_pmu_event *ev)
{
	return !ev->sideband &&
	       (ev->facility == BT_FAC_BTS || ev->facility == BT_FAC_STEP);
}

static inline bool sim_is_pt(const struct bt_pmu_event *ev)
{
	return !ev->sideband &&
	       (ev->facility == BT_FAC_PT || ev->facility == BT_FAC_PTEMU);
}

/* ---- sim.c ---------------------------------------------------------- */

/* The model's TSC now, and a TSC value as a perf timestamp (ns). */
uint64_t bt_sim__tsc_locked(const struct bt_sim *s);
uint64_t bt_sim__tsc_to_time(const struct bt_sim *s, uint64_t tsc);
/* The task @tid (added with pid = tid, cpu 0 when unknown); NULL: ENOMEM. */
struct sim_task *bt_sim__task(struct bt_sim *s, pid_t tid);
/* Who is "current" for @ev: its task, or what runs on its CPU. */
void bt_sim__current(struct bt_sim *s, const struct bt_pmu_event *ev,
		     pid_t *pid, pid_t *tid, int *cpu);
/* True when @ev is a live event of @s (the hardware side's check). */
bool bt_sim__owns(struct bt_sim *s, const struct bt_pmu_event *ev);
/* Disable @ev as perf_event_disable_inatomic() does once the PMI ends. */
void bt_sim__pending_disable(struct bt_pmu_event *ev);
/* pmu->start() at sched-in and pmu->stop(PERF_EF_UPDATE) at sched-out. */
void bt_sim__driver_start(struct bt_pmu_event *ev);
void bt_sim__driver_stop(struct bt_pmu_event *ev);

/* ---- sim_mmap.c ----------------------------------------------------- */

/* bt_pmu_ops.map and .unmap of the sim backend. */
int bt_sim__map(struct bt_pmu *pmu, struct bt_pmu_event *ev,
		uint64_t data_bytes, uint64_t aux_bytes, bool overwrite,
		struct bt_pmu_buffers *out);
int bt_sim__unmap(struct bt_pmu *pmu, struct bt_pmu_event *ev);
/* Stop the drivers, unmap, give the charge back; under the lock. */
void bt_sim__unmap_locked(struct bt_sim *s, struct bt_pmu_event *ev);

/* ---- sim_ring.c ----------------------------------------------------- */

/*
 * Write one record of @len bytes (a multiple of 8, header included) into
 * @ev's data ring, preceded by PERF_RECORD_LOST when records were lost.
 * The sample_id trailer, if any, is part of @rec. Returns 0, or -ENOSPC
 * (counted as lost) or -ENODEV (no ring mapped; not counted).
 */
int bt_sim_rb__output(struct bt_pmu_event *ev, const void *rec, size_t len);
/* Fill the 32-byte sample_id trailer at @p for @ev. */
void bt_sim_rb__sample_id(struct bt_pmu_event *ev, unsigned char *p,
			  pid_t pid, pid_t tid, int cpu, uint64_t time);
/* Tell @ev's waiters (eventfd). */
void bt_sim_rb__wakeup(struct bt_pmu_event *ev);
/* Set up the kernel side of a freshly mapped ring; the page's fields. */
void bt_sim_rb__init(struct bt_pmu_event *ev);

/* perf_aux_output_begin(): 0, or -ENOSPC (disabled, woken) / -ENODEV. */
int bt_sim_aux__begin(struct bt_pmu_event *ev);
/* perf_aux_output_end(): @size bytes new (stream) or the whole (snapshot). */
void bt_sim_aux__end(struct bt_pmu_event *ev, uint64_t size);
/* perf_aux_output_skip(): 0 or -ENOSPC. */
int bt_sim_aux__skip(struct bt_pmu_event *ev, uint64_t size);

/* PERF_RECORD_ITRACE_START, once per event (perf_log_itrace_start()). */
void bt_sim_rb__itrace_start(struct bt_pmu_event *ev);

/* ---- sim_ds.c ------------------------------------------------------- */

/* intel_bts: set up the phys buffers of a freshly mapped AUX area. */
void bt_sim_bts__setup(struct bt_pmu_event *ev);
/* bts_event_start()/bts_event_stop(PERF_EF_UPDATE). */
void bt_sim_bts__start(struct bt_pmu_event *ev);
void bt_sim_bts__stop(struct bt_pmu_event *ev);
/* PEBS: allocate the DS buffer (-ENOMEM), drain it, free it. */
int bt_sim_pebs__setup(struct bt_pmu_event *ev);
void bt_sim_pebs__drain(struct bt_pmu_event *ev);
void bt_sim_pebs__free(struct bt_pmu_event *ev);

/* ---- sim_topa.c ----------------------------------------------------- */

/* intel_pt: build the ToPA of a freshly mapped AUX area (-ENOMEM). */
int bt_sim_pt__setup(struct bt_pmu_event *ev);
void bt_sim_pt__free(struct bt_pmu_event *ev);
/* pt_event_start()/pt_event_stop(PERF_EF_UPDATE). */
void bt_sim_pt__start(struct bt_pmu_event *ev);
void bt_sim_pt__stop(struct bt_pmu_event *ev);

#endif /* BT_DS_SIM_MODEL_H */
