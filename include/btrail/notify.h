/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The threshold notifier (seed 001; docs/notifier.md).
 *
 * A consumer asks to be told when a level crosses a threshold instead of
 * polling for it: { threshold_level, sigevent, flags }, with the seed's
 * flags LEVEL (level vs edge detection), UP, DOWN and ONESHOT.
 *
 * A notifier owns objects (the things measured: a tracer's memory charge,
 * a KMES ring, a task counter, a level the caller feeds) and watches. A
 * watch names a level kind, a scope (one object, each object of the kind
 * individually, or the sum over all of them) and a threshold. Levels are
 * sampled by bt_notify__poll() (or the background thread of
 * bt_notify__start()); the levels the caller feeds (bt_notify__set_level,
 * bt_notify__task_created) are evaluated at once, so no value of an exact
 * sequence is missed.
 *
 * The semantics, in short (docs/notifier.md has the reasons and worked
 * examples): a level is "above" when level >= threshold_level and "below"
 * when level < threshold_level, so every level is exactly one of the two;
 * an edge watch fires on a transition between them seen after it was
 * added; a level watch fires at every change of the level (and at the
 * first evaluation) while the level is on its side; a ONESHOT watch
 * disarms itself after firing until bt_notify__rearm(); EACH covers
 * objects added later.
 *
 * All functions are thread-safe. Return conventions as <btrail/errno.h>.
 */
#ifndef BTRAIL_NOTIFY_H
#define BTRAIL_NOTIFY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <btrail/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The seed's flags, with its values. */
#define BT_THRESHOLD_LEVEL	0x00000001u	/* on: level, off: edge */
#define BT_THRESHOLD_UP		0x00000002u	/* up edge, or above */
#define BT_THRESHOLD_DOWN	0x00000004u	/* down edge, or below */
#define BT_THRESHOLD_ONESHOT	0x00000008u	/* disarm once fired */
#define BT_THRESHOLD_ALL	0x0000000fu

/* The seed's user-visible struct; the level is signed (docs/notifier.md). */
struct bt_threshold {
	int64_t threshold_level;
	struct sigevent sigev;
	uint32_t flags;
};

/*
 * sigev.sigev_notify values: SIGEV_NONE (count only), SIGEV_SIGNAL
 * (sigqueue to bt_notify_watch.pid, the value travels in si_value),
 * SIGEV_THREAD_ID (to thread sigev_notify_thread_id of that process),
 * SIGEV_THREAD (sigev_notify_function(sigev_value), called on the
 * notifier's delivery thread, in firing order; sigev_notify_attributes
 * is ignored), or this: write 1 to bt_notify_watch.eventfd per firing.
 */
#define BT_SIGEV_EVENTFD	0x100

/* Some glibc versions name the SIGEV_THREAD_ID target only _sigev_un._tid. */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id	_sigev_un._tid
#endif

enum bt_notify_kind {
	BT_NOTIFY_GENERIC = 0,	/* fed by bt_notify__set_level() */
	BT_NOTIFY_TRACER_CHARGE,/* bytes charged to a tracer */
	BT_NOTIFY_RING_UNREAD,	/* bytes of a ring not yet read */
	BT_NOTIFY_RING_LOST_BYTES, /* bytes overwritten in the ring */
	BT_NOTIFY_RING_LOST_EVENTS, /* events overwritten or dropped */
	BT_NOTIFY_RING_RATE,	/* events per second into the ring */
	BT_NOTIFY_TASKS,	/* tasks created (bt_notify__task_created) */
	BT_NOTIFY__KIND_COUNT,
};

enum bt_notify_scope {
	BT_NOTIFY_ONE = 0,	/* one object: /proc/<pid> */
	BT_NOTIFY_EACH,		/* each object individually: eachpid */
	BT_NOTIFY_SUM,		/* the sum over all objects: sumpids */
};

struct bt_notify;		/* opaque */
struct bt_tracer;
struct bt_kmes_reader;

struct bt_notify_opts {
	size_t sz;
	uint32_t rate_window_ms;	/* RING_RATE window; 0: 1000 */
	/* The clock for rates (tests); NULL: CLOCK_MONOTONIC. */
	uint64_t (*now_ns)(void *ctx);
	void *now_ctx;
};
#define bt_notify_opts__last_field now_ctx

/*
 * bt_notify__new() - an empty notifier. @opts may be NULL.
 * NULL with errno EINVAL (@opts) or ENOMEM.
 */
BT_API struct bt_notify *bt_notify__new(const struct bt_notify_opts *opts);

/*
 * bt_notify__free() - stop the background thread, deliver the SIGEV_THREAD
 * calls already queued, unmap every ring and free @n. NULL is a no-op.
 * Must not be called from a SIGEV_THREAD function of @n.
 */
BT_API void bt_notify__free(struct bt_notify *n);

/* ---- Objects (ids >= 1, never reused within a notifier) ---------------- */

/*
 * bt_notify__add_level() - a GENERIC object with level @initial.
 * Returns its id, or -EINVAL, -ENOMEM.
 */
BT_API int bt_notify__add_level(struct bt_notify *n, int64_t initial);

/*
 * bt_notify__set_level() - set GENERIC object @obj's level and evaluate
 * the watches on it now. Returns the number of firings, or -EINVAL (no
 * such object), -ENOENT (@obj is not GENERIC).
 */
BT_API int bt_notify__set_level(struct bt_notify *n, int obj, int64_t level);

/*
 * bt_notify__add_tracer() - a TRACER_CHARGE object reading
 * bt_tracer__charged(@t) at each poll. @t is borrowed: remove the object
 * before the tracer leaves, and poll from the allocator's thread (the
 * allocator has no lock of its own). Returns its id, or -EINVAL, -ENOMEM.
 */
BT_API int bt_notify__add_tracer(struct bt_notify *n,
				 const struct bt_tracer *t);

/* Options for bt_notify__add_ring(). Set .sz = sizeof. */
struct bt_notify_ring {
	size_t sz;
	const char *session;	/* the KMES session (name or directory) */
	uint32_t slot;
	/*
	 * Optional: the consumer whose reading position defines "unread".
	 * Borrowed; poll from its thread. NULL: unread is the live span
	 * write_pos - tail_pos.
	 */
	const struct bt_kmes_reader *reader;
};
#define bt_notify_ring__last_field reader

/*
 * bt_notify__add_ring() - an object giving the RING_* levels of @r->slot
 * of @r->session, read through the notifier's own consumer mapping
 * (kmes_attach + kmes_map), re-attached when the ring's generation
 * changes. Returns its id, or -EINVAL, -ENOMEM, or kmes_attach/kmes_map's
 * error (-ENOENT, -EACCES, -EPROTO, ...).
 */
BT_API int bt_notify__add_ring(struct bt_notify *n,
			       const struct bt_notify_ring *r);

/*
 * bt_notify__add_tasks() - a TASKS object: its level is the number of
 * tasks reported created in it. Returns its id, or -EINVAL, -ENOMEM.
 */
BT_API int bt_notify__add_tasks(struct bt_notify *n);

/*
 * bt_notify__task_created() - task @pid was created in TASKS object @obj:
 * the level grows by one and the watches on it are evaluated now; every
 * firing carries @pid in sigev_value.sival_int (in place of the value the
 * watch gave). Returns the number of firings, or -EINVAL (no such object,
 * @pid <= 0), -ENOENT (@obj is not TASKS).
 */
BT_API int bt_notify__task_created(struct bt_notify *n, int obj, pid_t pid);

/*
 * bt_notify__remove() - remove object @obj: it leaves EACH and SUM
 * watches (a sum changes at the next evaluation) and the ONE-scope
 * watches on it are removed. Returns 0 or -EINVAL.
 */
BT_API int bt_notify__remove(struct bt_notify *n, int obj);

/*
 * bt_notify__level() - the current level of @obj for @kind (sampled now)
 * into *@out. Returns 0, -EINVAL, or -ENOENT (@obj has no @kind level).
 */
BT_API int bt_notify__level(struct bt_notify *n, int obj, uint32_t kind,
			    int64_t *out);

/* ---- Watches ------------------------------------------------------------ */

struct bt_notify_watch {
	size_t sz;
	uint32_t kind;		/* enum bt_notify_kind */
	uint32_t scope;		/* enum bt_notify_scope */
	int object;		/* BT_NOTIFY_ONE: the object's id */
	struct bt_threshold th;
	pid_t pid;		/* SIGEV_SIGNAL/_THREAD_ID target; 0: us */
	int eventfd;		/* BT_SIGEV_EVENTFD: where to write */
};
#define bt_notify_watch__last_field eventfd

/*
 * bt_notify__watch() - add a watch; its levels are sampled now as the
 * starting point (edges need a later transition; a level watch that holds
 * now fires at its first evaluation). The eventfd is borrowed.
 *
 * Returns the watch id (>= 1), or:
 *   -EINVAL  NULL, bad sz, unknown kind/scope, flags outside
 *            BT_THRESHOLD_ALL, neither UP nor DOWN, a ONE watch whose
 *            object does not exist, unknown sigev_notify, a signal number
 *            out of range, SIGEV_THREAD without a function, a negative
 *            eventfd, a negative pid
 *   -ENOENT  the ONE watch's object has no level of that kind
 *   -ENOMEM
 */
BT_API int bt_notify__watch(struct bt_notify *n,
			    const struct bt_notify_watch *w);

/* Remove watch @id. Returns 0 or -EINVAL. */
BT_API int bt_notify__unwatch(struct bt_notify *n, int id);

/*
 * bt_notify__rearm() - re-arm ONESHOT watch @id after it fired: it takes
 * the levels of now as its new starting point, as if just added.
 * Returns 0 (also when it was armed), -EINVAL.
 */
BT_API int bt_notify__rearm(struct bt_notify *n, int id);

struct bt_notify_watch_info {
	uint64_t fired;		/* firings so far, SIGEV_NONE too */
	uint64_t failed;	/* deliveries that failed (sigqueue, write) */
	int64_t last_level;	/* level of the last firing */
	int last_object;	/* its object (0 for SUM) */
	int armed;		/* 0 once a ONESHOT watch fired */
};

/* Counters of watch @id into *@out. Returns 0 or -EINVAL. */
BT_API int bt_notify__watch_info(struct bt_notify *n, int id,
				 struct bt_notify_watch_info *out);

/* ---- Evaluation ---------------------------------------------------------- */

/*
 * bt_notify__poll() - sample every level and evaluate every watch now.
 * Returns the number of firings, or -EINVAL.
 */
BT_API int bt_notify__poll(struct bt_notify *n);

/*
 * bt_notify__start() - poll every @period_ms on a background thread until
 * bt_notify__stop() or __free(). Returns 0, -EINVAL (@period_ms 0),
 * -EALREADY, or pthread_create's error.
 */
BT_API int bt_notify__start(struct bt_notify *n, uint32_t period_ms);
/* Stop the background thread (0, or -EINVAL when none runs). */
BT_API int bt_notify__stop(struct bt_notify *n);

/*
 * bt_notify__flush() - wait until every SIGEV_THREAD call queued so far
 * has returned. Returns 0 or -EINVAL. Not from a SIGEV_THREAD function.
 */
BT_API int bt_notify__flush(struct bt_notify *n);

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_NOTIFY_H */
