/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The collector: drains trace sources (a backend event's data ring and
 * AUX area, and its sideband event) into a KMES ring session as bt.*
 * events (<btrail/events.h>).
 *
 * One drain thread per KMES slot (per CPU for per-CPU capture, per task
 * for per-task capture), woken by epoll on the backends' fds (data and
 * AUX watermarks), never spinning when idle. perf and sim are drained by
 * the same code: through the perf_event_mmap_page's data_head/data_tail
 * and aux_head/aux_tail.
 *
 * Modes (enum bt_trace_mode): stream (the collector frees AUX space as it
 * copies; the KMES rings overwrite their oldest events) and snapshot (the
 * hardware buffer overwrites itself, read-only; its content is copied
 * into the rings on a trigger).
 *
 * Nothing is lost silently: PERF_RECORD_LOST, AUX records with the
 * TRUNCATED/OVERWRITE/PARTIAL flags, and events a KMES ring could not
 * keep each become a bt.lost or bt.aux event.
 *
 * Errors: negative errno; constructors return NULL with errno.
 */
#ifndef BTRAIL_COLLECTOR_H
#define BTRAIL_COLLECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include <btrail/common.h>
#include <btrail/ds.h>
#include <btrail/kmes.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bt_collector;

struct bt_collector_opts {
	size_t sz;
	struct bt_kmes_session *session;	/* producer; borrowed */
	uint32_t mode;			/* enum bt_trace_mode */
	uint32_t clock_period_ms;	/* bt.clock heartbeat; 0: 1000 */
	bool no_threads;		/* no drain threads: the caller drains
					   with bt_collector__drain() (tests,
					   benchmarks, single-threaded tools) */
};
#define bt_collector_opts__last_field no_threads

/* NULL with errno (EINVAL, ENOMEM). */
BT_API struct bt_collector *bt_collector__new(const struct bt_collector_opts *opts);

/*
 * One source: a trace event (with its mapped buffers) and/or a sideband
 * event of a backend, drained into one KMES slot. All borrowed: they
 * must stay mapped until the collector is freed (or the source removed).
 */
struct bt_collector_source {
	size_t sz;
	struct bt_pmu *pmu;
	struct bt_pmu_event *trace;		/* may be NULL */
	const struct bt_pmu_buffers *trace_buf;
	struct bt_pmu_event *sideband;		/* may be NULL */
	const struct bt_pmu_buffers *sideband_buf;
	uint32_t facility;			/* enum bt_facility of trace */
	struct bt_target target;		/* TASK tid or CPU */
	uint32_t slot;				/* KMES slot it goes to */
};
#define bt_collector_source__last_field slot

/* Add a source; returns its index (>= 0) or a negative errno. */
BT_API int bt_collector__add(struct bt_collector *c,
			     const struct bt_collector_source *src);

/* Start the drain threads (not with no_threads). 0 or negative errno. */
BT_API int bt_collector__start(struct bt_collector *c);

/*
 * Drain everything available now, in the caller's thread (with or without
 * drain threads; serialised with them). Returns the number of bt.*
 * events emitted, or a negative errno.
 */
BT_API long bt_collector__drain(struct bt_collector *c);

/* Why capture was frozen (a bt.trigger event). */
struct bt_trigger {
	size_t sz;
	const char *reason;	/* "signal", "request", "notifier", "exit",
				   "stop" (see <btrail/events.h>) */
	pid_t pid, tid;
	int signo, code;	/* signal, si_code (0 when not a signal) */
	uint64_t addr;		/* si_addr */
	uint64_t ip;
	bool has_regs;
	struct user_regs_struct regs;
};
#define bt_trigger__last_field regs

/*
 * bt_collector__freeze() - stop capture and make it durable: disable the
 * trace events, drain what is left (snapshot mode: copy the hardware
 * buffers' content now), emit @trig as bt.trigger (NULL: none) on every
 * slot, and a last bt.clock. After it the rings hold everything up to the
 * trigger and the drain threads have stopped. 0 or negative errno.
 */
BT_API int bt_collector__freeze(struct bt_collector *c,
				const struct bt_trigger *trig);

struct bt_collector_stats {
	uint64_t events;	/* bt.* events emitted */
	uint64_t branches;	/* branch records */
	uint64_t pt_bytes;	/* PT bytes copied */
	uint64_t sideband;	/* sideband records translated */
	uint64_t lost_records;	/* PERF_RECORD_LOST counts */
	uint64_t aux_flagged;	/* AUX records with truncated/overwrite/partial */
	uint64_t kmes_dropped;	/* events the rings refused */
	uint64_t wakeups;	/* drain thread wakeups */
};

BT_API void bt_collector__stats(const struct bt_collector *c,
				struct bt_collector_stats *st);

/* Stop the drain threads (no final drain) and free. NULL is a no-op. */
BT_API void bt_collector__free(struct bt_collector *c);

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_COLLECTOR_H */
