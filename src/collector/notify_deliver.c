// SPDX-License-Identifier: BSD-3-Clause
/*
 * Delivery of threshold firings (docs/notifier.md §Delivery): queued
 * signals, eventfd writes, and SIGEV_THREAD calls on one delivery thread;
 * and the background poller of bt_notify__start().
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "collector/notify_int.h"
#include "common/log.h"

/*
 * sigqueue(2) for a process, rt_tgsigqueueinfo(2) for one of its threads:
 * both carry si_value (SI_QUEUE), which kill(2) and tgkill(2) cannot.
 */
static int deliver_signal(const struct bt_notify_watch *w, union sigval v)
{
	pid_t pid = w->pid ? w->pid : getpid();
	siginfo_t si;

	if (w->th.sigev.sigev_notify == SIGEV_SIGNAL)
		return sigqueue(pid, w->th.sigev.sigev_signo, v) ? -errno : 0;

	memset(&si, 0, sizeof(si));
	si.si_signo = w->th.sigev.sigev_signo;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value = v;
	if (syscall(SYS_rt_tgsigqueueinfo, pid,
		    w->th.sigev.sigev_notify_thread_id,
		    w->th.sigev.sigev_signo, &si))
		return -errno;
	return 0;
}

static int deliver_eventfd(int fd)
{
	uint64_t one = 1;
	ssize_t r;

	do {
		r = write(fd, &one, sizeof(one));
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == sizeof(one) ? 0 : -EIO;
}

static int deliver_thread(struct nt_dispatch *d,
			  void (*fn)(union sigval), union sigval v)
{
	struct nt_call *c = malloc(sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->next = NULL;
	c->fn = fn;
	c->value = v;
	pthread_mutex_lock(&d->lock);
	if (d->tail)
		d->tail->next = c;
	else
		d->head = c;
	d->tail = c;
	d->queued++;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int bt_nt_deliver(struct nt_dispatch *d, const struct bt_notify_watch *w,
		  union sigval value)
{
	switch (w->th.sigev.sigev_notify) {
	case SIGEV_NONE:
		return 0;
	case SIGEV_SIGNAL:
	case SIGEV_THREAD_ID:
		return deliver_signal(w, value);
	case SIGEV_THREAD:
		return deliver_thread(d, w->th.sigev.sigev_notify_function,
				      value);
	case BT_SIGEV_EVENTFD:
		return deliver_eventfd(w->eventfd);
	}
	return -EINVAL;
}

/* ---- The SIGEV_THREAD delivery thread ----------------------------------- */

static void *dispatch_main(void *arg)
{
	struct nt_dispatch *d = arg;

	pthread_mutex_lock(&d->lock);
	for (;;) {
		struct nt_call *c = d->head;

		if (!c) {
			if (d->stop)
				break;
			pthread_cond_wait(&d->cond, &d->lock);
			continue;
		}
		d->head = c->next;
		if (!d->head)
			d->tail = NULL;
		pthread_mutex_unlock(&d->lock);
		c->fn(c->value);
		free(c);
		pthread_mutex_lock(&d->lock);
		d->done++;
		pthread_cond_broadcast(&d->idle);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

void bt_nt_dispatch_init(struct nt_dispatch *d)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	pthread_cond_init(&d->idle, NULL);
}

int bt_nt_dispatch_start(struct nt_dispatch *d)
{
	int err = 0;

	pthread_mutex_lock(&d->lock);
	if (!d->started) {
		err = -pthread_create(&d->thread, NULL, dispatch_main, d);
		d->started = !err;
	}
	pthread_mutex_unlock(&d->lock);
	return err;
}

void bt_nt_dispatch_flush(struct nt_dispatch *d)
{
	pthread_mutex_lock(&d->lock);
	while (d->started && d->done != d->queued)
		pthread_cond_wait(&d->idle, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

void bt_nt_dispatch_fini(struct nt_dispatch *d)
{
	bool started;

	pthread_mutex_lock(&d->lock);
	d->stop = true;
	started = d->started;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (started)
		pthread_join(d->thread, NULL);
	while (d->head) {	/* never started: nothing can be queued */
		struct nt_call *c = d->head;

		d->head = c->next;
		free(c);
	}
	pthread_cond_destroy(&d->idle);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
}

/* ---- The background poller ---------------------------------------------- */

struct poller_arg {
	struct nt_poller *p;
	struct bt_notify *n;
};

static void *poller_main(void *arg)
{
	struct nt_poller *p = ((struct poller_arg *)arg)->p;
	struct bt_notify *n = ((struct poller_arg *)arg)->n;
	struct timespec next;

	free(arg);
	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		pthread_mutex_unlock(&p->lock);
		bt_notify__poll(n);
		/* A fixed cadence: the period does not drift by poll's cost. */
		next.tv_nsec += (long)(p->period_ms % 1000) * 1000000L;
		next.tv_sec += p->period_ms / 1000 + next.tv_nsec / 1000000000L;
		next.tv_nsec %= 1000000000L;
		pthread_mutex_lock(&p->lock);
		while (!p->stop &&
		       pthread_cond_timedwait(&p->cond, &p->lock, &next) !=
		       ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

void bt_nt_poller_init(struct nt_poller *p)
{
	pthread_condattr_t ca;

	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
}

int bt_nt_poller_start(struct nt_poller *p, struct bt_notify *n,
		       uint32_t period_ms)
{
	struct poller_arg *a;
	int err;

	pthread_mutex_lock(&p->lock);
	if (p->running) {
		pthread_mutex_unlock(&p->lock);
		return -EALREADY;
	}
	a = malloc(sizeof(*a));
	if (!a) {
		pthread_mutex_unlock(&p->lock);
		return -ENOMEM;
	}
	a->p = p;
	a->n = n;
	p->period_ms = period_ms;
	p->stop = false;
	err = -pthread_create(&p->thread, NULL, poller_main, a);
	if (err)
		free(a);
	p->running = !err;
	pthread_mutex_unlock(&p->lock);
	return err;
}

int bt_nt_poller_stop(struct nt_poller *p)
{
	pthread_mutex_lock(&p->lock);
	if (!p->running) {
		pthread_mutex_unlock(&p->lock);
		return -EINVAL;
	}
	p->stop = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_mutex_lock(&p->lock);
	p->running = false;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

void bt_nt_poller_fini(struct nt_poller *p)
{
	bt_nt_poller_stop(p);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
}
