/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The threshold notifier's insides, shared by notify.c (objects, watches,
 * evaluation) and notify_deliver.c (signals, eventfd, the SIGEV_THREAD
 * delivery thread, the background poller).
 */
#ifndef BT_COLLECTOR_NOTIFY_INT_H
#define BT_COLLECTOR_NOTIFY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <btrail/notify.h>

/* One queued SIGEV_THREAD call. */
struct nt_call {
	struct nt_call *next;
	void (*fn)(union sigval);
	union sigval value;
};

/*
 * The SIGEV_THREAD delivery thread: started with the first SIGEV_THREAD
 * watch, calls in firing order, outside the notifier's lock (a function
 * may call back into the notifier, except __free and __flush).
 */
struct nt_dispatch {
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* work queued, or stop */
	pthread_cond_t idle;		/* a call returned */
	struct nt_call *head, *tail;
	uint64_t queued, done;
	bool started, stop;
	pthread_t thread;
};

/* The background poller of bt_notify__start(). */
struct nt_poller {
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* CLOCK_MONOTONIC; stop */
	bool running, stop;
	uint32_t period_ms;
	pthread_t thread;
};

/* Deliver one firing of @w (a struct bt_notify_watch) with @value. */
int bt_nt_deliver(struct nt_dispatch *d, const struct bt_notify_watch *w,
		  union sigval value);
int bt_nt_dispatch_start(struct nt_dispatch *d);
void bt_nt_dispatch_init(struct nt_dispatch *d);
/* Runs what is queued, then stops the thread. */
void bt_nt_dispatch_fini(struct nt_dispatch *d);
void bt_nt_dispatch_flush(struct nt_dispatch *d);

void bt_nt_poller_init(struct nt_poller *p);
int bt_nt_poller_start(struct nt_poller *p, struct bt_notify *n,
		       uint32_t period_ms);
int bt_nt_poller_stop(struct nt_poller *p);
void bt_nt_poller_fini(struct nt_poller *p);

#endif /* BT_COLLECTOR_NOTIFY_INT_H */
