// SPDX-License-Identifier: BSD-3-Clause
/*
 * Captures: one hardware session of the allocator as the daemon serves
 * it. The rings are a KMES session of one ring ("btraild-<epoch>-<id>",
 * per-task or per-CPU kind), filled by a collector from the session's
 * buffers and a sideband event of the same target. For step and pt-emu a
 * thread of ours steps the task with ptrace and writes what the hardware
 * would into the sim backend's event; when the task ends, the rings are
 * frozen with a bt.trigger as `btrail record` writes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "collector/record_int.h"
#include "common/log.h"

#include "btraild.h"

#define BD_SIDEBAND_BYTES	(64 * 1024ull)
#define BD_ATTACH_WAIT_MS	10000

struct bd_capture *bd_capture_find(struct bd_daemon *d,
				   const struct bt_pmu_event *ev)
{
	for (struct bd_capture *c = d->caps_list; c; c = c->next)
		if (c->event == ev)
			return c;
	return NULL;
}

static int open_sideband(struct bd_capture *c)
{
	const struct bt_pmu_ops *ops = bt_pmu__ops(c->d->pmu);
	struct bt_pmu_open_args a = {
		.sz = sizeof(a), .target = c->target, .sideband = true,
	};
	int err = ops->open(c->d->pmu, &a, &c->sb);

	if (err) {
		c->sb = NULL;
		return err;
	}
	err = ops->map(c->d->pmu, c->sb, BD_SIDEBAND_BYTES, 0, false, &c->sbb);
	if (!err)
		err = ops->enable(c->d->pmu, c->sb, true);
	return err;
}

static void close_sideband(struct bd_capture *c)
{
	const struct bt_pmu_ops *ops = bt_pmu__ops(c->d->pmu);

	if (!c->sb)
		return;
	ops->enable(c->d->pmu, c->sb, false);
	ops->unmap(c->d->pmu, c->sb);
	ops->close(c->d->pmu, c->sb);
	c->sb = NULL;
}

void bd_capture_pause(struct bd_capture *c)
{
	if (!c->col)
		return;
	bt_collector__drain(c->col);
	bt_collector__free(c->col);
	c->col = NULL;
	c->wired = NULL;
}

int bd_capture_wire(struct bd_capture *c, struct bt_ds_view *part)
{
	struct bt_collector_opts co = {
		.sz = sizeof(co), .session = c->ks, .mode = c->mode,
	};
	struct bt_collector_source src = {
		.sz = sizeof(src), .pmu = c->d->pmu,
		.trace = bt_ds_view__event(part),
		.trace_buf = bt_ds_view__buffers(part),
		.sideband = c->sb, .sideband_buf = c->sb ? &c->sbb : NULL,
		.facility = c->facility, .target = bt_ds_view__target(part),
		.slot = c->slot,
	};
	int err;

	if (c->frozen)
		return 0;	/* capture ended; the rings keep what it had */
	bd_capture_pause(c);
	if (!src.trace || !src.trace_buf)
		return -ENODEV;	/* revoked */
	c->col = bt_collector__new(&co);
	if (!c->col)
		return -errno;
	err = bt_collector__add(c->col, &src);
	if (err >= 0)
		err = bt_collector__start(c->col);
	if (err < 0) {
		bt_collector__free(c->col);
		c->col = NULL;
		return err;
	}
	c->event = src.trace;
	c->wired = src.trace_buf;
	return 0;
}

static void ready_signal(struct bd_capture *c)
{
	uint64_t one = 1;

	(void)!write(c->ready_fd, &one, sizeof(one));
}

static void *step_main(void *arg)
{
	struct bd_capture *c = arg;
	struct bt_step_opts so = {
		.sz = sizeof(so), .facility = c->facility, .sim = c->d->pmu,
	};
	int err;

	c->step = bt_step__attach(&so, c->target.id);
	if (!c->step) {
		c->th_err = -errno;
		__atomic_store_n(&c->th_done, true, __ATOMIC_RELEASE);
		ready_signal(c);
		return NULL;
	}
	err = bt_step__bind(c->step, c->event, c->sb);
	c->th_err = err;
	ready_signal(c);		/* attached: the request is answered */
	if (!err)
		err = bt_step__run(c->step);
	c->th_err = err;
	__atomic_store_n(&c->th_done, true, __ATOMIC_RELEASE);
	ready_signal(c);
	return NULL;
}

/* Wait for the stepping thread's first word: attached, or why not. */
static int step_start(struct bd_capture *c)
{
	struct pollfd p = { .events = POLLIN };
	uint64_t v;
	int err;

	c->ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->ready_fd < 0)
		return -errno;
	p.fd = c->ready_fd;
	err = pthread_create(&c->th, NULL, step_main, c);
	if (err)
		return -err;
	c->th_started = true;
	if (poll(&p, 1, BD_ATTACH_WAIT_MS) <= 0)
		return -ETIMEDOUT;
	(void)!read(c->ready_fd, &v, sizeof(v));
	if (__atomic_load_n(&c->th_done, __ATOMIC_ACQUIRE) || c->th_err)
		return c->th_err ? c->th_err : -ESRCH;
	return 0;
}

void bd_capture_step_done(struct bd_capture *c)
{
	struct bt_trigger t;

	if (c->frozen || !c->th_started)
		return;
	if (!c->th_joined) {
		pthread_join(c->th, NULL);
		c->th_joined = true;
	}
	/* The daemon attached: a task it let go is still running. */
	bt_step_trigger(&t, c->step, c->target.id, true);
	if (c->col)
		bt_collector__freeze(c->col, &t);
	c->frozen = true;
	if (!c->d->o.quiet)
		pr_info("btraild: capture %llu: task %d ended (%s)",
			(unsigned long long)c->id, (int)c->target.id, t.reason);
}

long bd_capture_sync(struct bd_capture *c)
{
	return c->col ? bt_collector__drain(c->col) : 0;
}

int bd_capture_ring_fds(struct bd_capture *c, int *ring_fd, int *wake_fd,
			uint64_t *capacity)
{
	char path[4096];
	int fd, wfd;

	fd = kmes_attach(c->ring, c->slot, capacity);
	if (fd < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/wake.%u",
		 bt_kmes_session__path(c->ks), c->slot);
	wfd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (wfd < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	*ring_fd = fd;
	*wake_fd = wfd;
	return 0;
}

void bd_capture_end(struct bd_capture *c)
{
	struct bd_daemon *d = c->d;
	struct bd_capture **pp;

	if (c->th_started && !c->th_joined) {
		/* An attached task is let go and runs on. */
		bt_step__stop(c->step);
		pthread_join(c->th, NULL);
		c->th_joined = true;
	}
	bd_capture_pause(c);
	bt_step__free(c->step);
	close_sideband(c);
	if (c->ready_fd >= 0)
		close(c->ready_fd);
	if (c->ks) {
		bt_kmes_session__close(c->ks);
		bt_kmes_session__destroy(c->ring, true);
	}
	for (pp = &d->caps_list; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	free(c);
	bd_state_save(d);
}

int bd_capture_for(struct bd_daemon *d, struct bt_ds_view *part,
		   uint32_t facility, uint32_t mode, uint64_t ring_bytes,
		   pid_t owner, struct bd_capture **out, bool *created,
		   char *err, size_t errlen)
{
	struct bt_pmu_event *ev = bt_ds_view__event(part);
	struct bt_kmes_session_opts ko = { .sz = sizeof(ko) };
	struct bd_orphan *orphan;
	struct bd_capture *c;
	bool adopted = false;
	int ret;

	*created = false;
	c = bd_capture_find(d, ev);
	if (c) {
		*out = c;
		return 0;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->kind = BD_W_CAPTURE;
	c->d = d;
	c->ready_fd = -1;
	c->id = ++d->next_capture;
	c->event = ev;
	c->facility = facility;
	c->mode = mode;
	c->target = bt_ds_view__target(part);
	c->owner_pid = owner;
	snprintf(c->ring, sizeof(c->ring), "btraild-%llu-%llu",
		 (unsigned long long)d->epoch, (unsigned long long)c->id);
	c->next = d->caps_list;
	d->caps_list = c;

	ko.capacity = ring_bytes ? ring_bytes : d->o.ring_bytes;
	if (c->target.kind == BT_TARGET_TASK) {
		ko.kind = BT_KMES_RING_TASK;
	} else {
		ko.kind = BT_KMES_RING_CPU;
		ko.slots = 1;
	}
	orphan = bd_orphan_take(d, facility, mode, c->target);
	if (orphan) {
		/* An earlier daemon's rings: write on into them. */
		c->ks = bt_kmes_session__open(orphan->ring, NULL);
		if (c->ks) {
			snprintf(c->ring, sizeof(c->ring), "%s", orphan->ring);
			adopted = bt_kmes_session__slots(c->ks) == 1;
			if (!adopted) {
				bt_kmes_session__close(c->ks);
				c->ks = NULL;
			} else if (!d->o.quiet) {
				pr_info("btraild: capture %llu goes on in ring "
					"session %s", (unsigned long long)c->id,
					c->ring);
			}
		}
		free(orphan);
	}
	if (!c->ks)
		c->ks = bt_kmes_session__create(c->ring, &ko);
	if (!c->ks) {
		ret = -errno;
		snprintf(err, errlen, "creating ring session %s: %s", c->ring,
			 strerror(errno));
		goto fail;
	}
	if (c->target.kind == BT_TARGET_TASK && !adopted) {
		ret = bt_kmes_session__add_slot(c->ks, (uint32_t)c->target.id);
		if (ret < 0) {
			snprintf(err, errlen, "adding the ring of task %d: %s",
				 (int)c->target.id, strerror(-ret));
			goto fail;
		}
		c->slot = (uint32_t)ret;
	}
	ret = open_sideband(c);
	if (ret) {
		snprintf(err, errlen, "sideband event for %s %d: %s",
			 c->target.kind == BT_TARGET_TASK ? "task" : "cpu",
			 (int)c->target.id, strerror(-ret));
		goto fail;
	}
	ret = bd_capture_wire(c, part);
	if (ret) {
		snprintf(err, errlen, "starting the collector: %s",
			 strerror(-ret));
		goto fail;
	}
	if (facility == BT_FAC_STEP || facility == BT_FAC_PTEMU) {
		/* The daemon's loop hears when the task ends. */
		struct epoll_event pev = { .events = EPOLLIN, .data.ptr = c };

		ret = step_start(c);
		if (!ret && epoll_ctl(d->efd, EPOLL_CTL_ADD, c->ready_fd,
				      &pev) < 0)
			ret = -errno;
		if (ret) {
			snprintf(err, errlen, "stepping task %d: %s",
				 (int)c->target.id, strerror(-ret));
			goto fail;
		}
	}
	*out = c;
	*created = true;
	bd_state_save(d);
	return 0;
fail:
	bd_capture_end(c);
	return ret;
}
