/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The collector's insides (include/btrail/collector.h), shared by
 *
 *   collect.c        lifecycle, sources, drain threads, freeze, stats
 *   collect_emit.c   emitting into a slot: schemas first, clocks, losses
 *   collect_rec.c    data-ring records -> bt.* events
 *   collect_aux.c    AUX bytes -> bt.branch batches and bt.pt chunks
 *
 * Locking: everything a slot owns (its sources' rings, its schema and
 * clock state, its scratch buffer) is touched only with the slot's
 * @lock held, by its drain thread or by bt_collector__drain/__freeze.
 * The collector's @lock guards the slot table. Statistics are relaxed
 * atomics, summed when read.
 */
#ifndef BT_COLLECTOR_COLLECT_H
#define BT_COLLECTOR_COLLECT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <linux/perf_event.h>

#include <btrail/collector.h>
#include <btrail/events.h>

#include "ds/perf_ring.h"

/* CLOCK_REALTIME moving this far against CLOCK_MONOTONIC is a jump. */
#define COLLECT_JUMP_NS		10000000ll	/* 10 ms */
/* Room kept for the msgpack keys and headers of a bt.branch/bt.pt event. */
#define COLLECT_HDR_ROOM	96u

/* A data ring being read, and how its records are laid out. */
struct collect_ring {
	struct bt_perf_ring r;
	bool ok;			/* initialised */
	int fd;				/* bt_pmu_ops.fd, -1 none */
	uint64_t sample_type;
	uint64_t regs_intr;		/* sample_regs_intr mask */
	uint64_t regs_user;		/* sample_regs_user mask */
	uint64_t branch_sample_type;
	bool sample_id_all;
	bool trace;			/* the trace event's ring */
};

struct collect_slot;

struct collect_source {
	struct bt_collector_source src;
	struct collect_slot *slot;
	struct collect_ring trace_ring, sb_ring;
	bool sim;
	bool aux_bts;			/* AUX holds 24-byte BTS records */
	bool aux_pt;			/* AUX holds PT packets */
	bool reenable;			/* TRUNCATED: enable, room freed */
	bool snapped;			/* snapshot copied at freeze */
	int32_t pid, tid, cpu;		/* who the AUX bytes are from */
	/* Samples turned into branch records (intel_bts fallback). */
	unsigned char *pend;
	uint32_t npend, cap_pend;
	int32_t pend_pid, pend_tid, pend_cpu;
	uint64_t pend_time;
};

struct collect_slot {
	struct bt_collector *c;
	uint32_t index;			/* KMES slot */
	pthread_mutex_t lock;
	struct collect_source **src;
	unsigned nsrc, cap_src;
	/* the drain thread */
	pthread_t thread;
	bool running;
	int epfd, stopfd;
	/* under @lock */
	uint32_t schema_done;		/* bit per enum bt_event_id */
	bool clock_started;
	uint64_t last_clock_mono;
	int64_t real_off;		/* CLOCK_REALTIME - CLOCK_MONOTONIC */
	uint64_t kmes_lost_seen;
	unsigned char *buf;		/* payload scratch, max_payload */
	long emitted;			/* events of the current drain */
};

struct bt_collector {
	struct bt_collector_opts o;
	pthread_mutex_t lock;		/* the slot table */
	struct collect_slot **slots;
	unsigned nslots, cap_slots;
	bool started;
	bool frozen;
	uint32_t max_event;		/* MaxEventSize, <= capacity / 2 */
	uint32_t max_payload;		/* for the longest bt.* type */
	/* statistics: relaxed atomics */
	uint64_t st_events, st_branches, st_pt_bytes, st_sideband;
	uint64_t st_lost_records, st_aux_flagged, st_kmes_dropped;
	uint64_t st_wakeups;
};

static inline void collect_count(uint64_t *ctr, uint64_t n)
{
	__atomic_fetch_add(ctr, n, __ATOMIC_RELAXED);
}

/* ---- collect_emit.c --------------------------------------------------- */

/*
 * Emit a bt.* event of @id with payload @p (@len bytes) on @sl, after its
 * bt.schema when the slot has not had one. @cpu: the CPU it was captured
 * on (per-task rings stamp it), -1 unknown. Returns 1 written, 0 dropped
 * (counted, and told by a bt.lost "drop"), or a negative errno.
 */
int collect_emit(struct collect_slot *sl, uint32_t id, const void *p,
		 size_t len, int cpu);
/* As collect_emit() with a gathered payload. */
int collect_emit_iov(struct collect_slot *sl, uint32_t id,
		     const struct bt_kmes_iov *iov, uint32_t n, int cpu);
/* bt_event_encode() of @v into the slot's scratch buffer, then emit. */
int collect_emit_values(struct collect_slot *sl, uint32_t id,
			const struct bt_event_value *v, int cpu);
/* A bt.lost of @what/@count. */
int collect_lost(struct collect_slot *sl, int cpu, int tid, uint64_t time,
		 const char *what, uint64_t count);
/* A bt.clock of @reason with the slot's first source's conversion. */
int collect_clock(struct collect_slot *sl, const char *reason);
/*
 * The periodic work of a slot: the start clock, the heartbeat, a wall
 * clock jump, and events the KMES ring overwrote since the last look.
 */
void collect_tick(struct collect_slot *sl, bool force_lost_check);
/* The perf clock now, as the slot's first source's page converts. */
uint64_t collect_perf_now(struct collect_slot *sl);
uint64_t collect_mono_ns(void);
uint64_t collect_real_ns(void);
/*
 * Test-only injection point: when set, collect_mono_ns() and
 * collect_real_ns() (and so the heartbeat, the jump detection and the
 * clocks of bt.clock) read it with CLOCK_MONOTONIC or CLOCK_REALTIME
 * instead of clock_gettime(), so a test can move time, or jump the wall
 * clock, deterministically. Not for the library's users (not exported by
 * libbtrail.map); set it before the collector runs, with no drain
 * threads, and clear it after.
 */
extern uint64_t (*collect_clock_hook)(clockid_t id);

/* ---- msgpack writing (collect_emit.c) --------------------------------- */

size_t collect_mp_str(unsigned char *p, const char *s, size_t len);
size_t collect_mp_uint(unsigned char *p, uint64_t v);
size_t collect_mp_int(unsigned char *p, int64_t v);
size_t collect_mp_bin_hdr(unsigned char *p, uint32_t len);

/* ---- collect_rec.c ---------------------------------------------------- */

/* Set up @cr over @buf for @ev; 0 or a negative errno. */
int collect_ring_init(struct collect_ring *cr, struct bt_pmu *pmu,
		      struct bt_pmu_event *ev,
		      const struct bt_pmu_buffers *buf, bool trace);
void collect_ring_fini(struct collect_ring *cr);
/* Translate every record of @cr; the events emitted, or -errno. */
long collect_drain_ring(struct collect_source *so, struct collect_ring *cr);
/* Emit the branch records gathered from samples. */
void collect_flush_pending(struct collect_source *so);

/* ---- collect_aux.c ---------------------------------------------------- */

/* Stream mode: copy [aux_tail, aux_head) out and free it. Events or -errno. */
long collect_drain_aux(struct collect_source *so);
/* Snapshot mode: copy the newest aux_size bytes ending at aux_head. */
long collect_snapshot_aux(struct collect_source *so);

#endif /* BT_COLLECTOR_COLLECT_H */
