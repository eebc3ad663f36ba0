// SPDX-License-Identifier: BSD-3-Clause
/*
 * The sim backend's perf_mmap(): memfd-backed mappings of the user page,
 * the data ring and the AUX area, and the kernel's mlock accounting
 * (kernel/events/core.c perf_mmap(), perf_mmap_aux(),
 * perf_mmap_calc_limits(), perf_mmap_account(), perf_mmap_close()).
 *
 * A mapping of n pages charges the mapping user's locked_vm up to
 * perf_event_mlock_kb * online CPUs (sysctl_perf_event_mlock >>
 * (PAGE_SHIFT - 10) pages per CPU), the excess to this process's
 * pinned_vm, which must stay within RLIMIT_MEMLOCK unless CAP_IPC_LOCK
 * (perf_event_paranoid is taken as > -1); otherwise EPERM. The data
 * mapping counts 1 + data pages, the AUX mapping its pages, each checked
 * on its own as two mmap() calls are. unmap gives back exactly what was
 * charged, split as it was.
 *
 * One memfd holds page + data + AUX, as the event's file would: the
 * consumer's mappings are MAP_SHARED, so a forked consumer sees what the
 * "kernel" writes. The kernel writes AUX through a view of its own; the
 * consumer's view of AUX is read-only in overwrite (snapshot) mode.
 */
#include "ds/sim_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SIM_PAGE_SHIFT	12

/* ---- mlock accounting ------------------------------------------------- */

static struct sim_user *sim_user(struct bt_sim *s, uid_t uid, bool add)
{
	struct sim_user *u;

	for (unsigned i = 0; i < s->nr_users; i++) {
		if (s->users[i].uid == uid)
			return &s->users[i];
	}
	if (!add)
		return NULL;
	if (s->nr_users == s->cap_users) {
		unsigned cap = s->cap_users ? s->cap_users * 2 : 8;

		u = realloc(s->users, cap * sizeof(*u));
		if (!u)
			return NULL;
		s->users = u;
		s->cap_users = cap;
	}
	u = &s->users[s->nr_users++];
	u->uid = uid;
	u->locked_vm = 0;
	return u;
}

static uint64_t user_lock_limit(const struct bt_sim *s)
{
	/* sysctl_perf_event_mlock >> (PAGE_SHIFT - 10), times the CPUs */
	return (s->mlock_kb >> (SIM_PAGE_SHIFT - 10)) * s->nr_cpus;
}

/*
 * perf_mmap_calc_limits(): split @pages into *@user_extra (locked_vm)
 * and *@extra (pinned_vm). Returns 0 or -EPERM.
 */
static int calc_limits(struct bt_sim *s, const struct sim_user *u,
		       uint64_t pages, uint64_t *user_extra, uint64_t *extra)
{
	uint64_t limit = user_lock_limit(s);
	uint64_t locked = u->locked_vm;
	uint64_t lock_limit;

	*user_extra = pages;
	*extra = 0;
	/* perf_event_mlock_kb may have been lowered below what is locked */
	if (locked > limit)
		locked = limit;
	locked += pages;
	if (locked > limit) {
		*extra = locked - limit;
		*user_extra -= *extra;
	}
	if (s->cap_ipc_lock || s->rlimit == UINT64_MAX)
		return 0;
	lock_limit = s->rlimit >> SIM_PAGE_SHIFT;
	return s->pinned_vm + *extra <= lock_limit ? 0 : -EPERM;
}

int bt_sim_mlock(struct bt_pmu *pmu, uid_t uid, struct bt_sim_mlock *out)
{
	struct sim_user *u;
	struct bt_sim *s;

	if (!bt_sim_is(pmu) || !out)
		return -EINVAL;
	s = sim_of(pmu);
	pthread_mutex_lock(&s->lock);
	u = sim_user(s, uid, false);
	out->user_locked = (u ? u->locked_vm : 0) << SIM_PAGE_SHIFT;
	out->pinned = s->pinned_vm << SIM_PAGE_SHIFT;
	out->user_limit = user_lock_limit(s) << SIM_PAGE_SHIFT;
	out->rlimit = s->cap_ipc_lock ? UINT64_MAX : s->rlimit;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* ---- map / unmap -------------------------------------------------------- */

void bt_sim__unmap_locked(struct bt_sim *s, struct bt_pmu_event *ev)
{
	struct sim_user *u;

	if (!ev->base)
		return;
	if (ev->enabled)
		bt_sim__driver_stop(ev);
	ev->pending_disable = false;
	bt_sim_pt__free(ev);
	u = sim_user(s, ev->uid, false);
	/* perf_mmap_close(): give back exactly what perf_mmap() charged */
	if (u)
		u->locked_vm -= ev->data_user_extra + ev->aux_user_extra;
	s->pinned_vm -= ev->data_extra + ev->aux_extra;
	ev->data_user_extra = ev->data_extra = 0;
	ev->aux_user_extra = ev->aux_extra = 0;
	if (ev->aux_user)
		munmap(ev->aux_user, ev->aux_size);
	if (ev->kaux)
		munmap(ev->kaux, ev->aux_size);
	munmap(ev->base, ev->base_len);
	close(ev->memfd);
	ev->memfd = -1;
	ev->base = NULL;
	ev->pc = NULL;
	ev->data = NULL;
	ev->aux_user = ev->kaux = NULL;
	ev->data_size = ev->aux_size = 0;
	memset(&ev->h, 0, sizeof(ev->h));
	memset(&ev->bts, 0, sizeof(ev->bts));
	ev->pt.active = false;
}

static int map_aux(struct bt_pmu_event *ev, uint64_t aux_bytes, bool overwrite)
{
	uint64_t off = ev->base_len;
	int prot = overwrite ? PROT_READ : PROT_READ | PROT_WRITE;

	/* perf_mmap_aux(): above the data, page aligned, a power of two */
	ev->pc->aux_offset = off;
	ev->pc->aux_size = aux_bytes;
	ev->aux_user = mmap(NULL, aux_bytes, prot, MAP_SHARED, ev->memfd,
			    (off_t)off);
	if (ev->aux_user == MAP_FAILED) {
		ev->aux_user = NULL;
		return -errno;
	}
	ev->kaux = mmap(NULL, aux_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
			ev->memfd, (off_t)off);
	if (ev->kaux == MAP_FAILED) {
		ev->kaux = NULL;
		return -errno;
	}
	ev->aux_size = aux_bytes;
	ev->aux_overwrite = overwrite;
	/* rb_alloc_aux(): the wakeup watermark defaults to half; none in
	 * overwrite mode */
	ev->aux_watermark = overwrite ? 0 : aux_bytes / 2;
	return 0;
}

int bt_sim__map(struct bt_pmu *pmu, struct bt_pmu_event *ev,
		uint64_t data_bytes, uint64_t aux_bytes, bool overwrite,
		   struct bt_pmu_buffers *out)
{
	uint64_t d_user = 0, d_extra = 0, a_user = 0, a_extra = 0;
	struct bt_sim *s = sim_of(pmu);
	struct sim_user *u;
	char name[32];
	int err;

	if (!ev || !out || !bt_pmu_pages_pow2(data_bytes))
		return -EINVAL;
	if (aux_bytes && !bt_pmu_pages_pow2(aux_bytes))
		return -EINVAL;
	if (aux_bytes && !sim_is_aux(ev))
		return -EOPNOTSUPP;	/* rb_alloc_aux(): !has_aux(event) */
	if (!aux_bytes && overwrite)
		return -EINVAL;

	pthread_mutex_lock(&s->lock);
	err = -EINVAL;			/* one mapping per event */
	if (ev->base)
		goto out_unlock;
	err = -ENOMEM;
	u = sim_user(s, ev->uid, true);
	if (!u)
		goto out_unlock;
	err = calc_limits(s, u, data_bytes / BT_PMU_PAGE + 1, &d_user, &d_extra);
	if (err)
		goto out_unlock;
	/* the AUX mapping is a second mmap(): charged on top of the first */
	u->locked_vm += d_user;
	s->pinned_vm += d_extra;
	if (aux_bytes) {
		err = calc_limits(s, u, aux_bytes / BT_PMU_PAGE, &a_user,
				  &a_extra);
		if (err) {
			u->locked_vm -= d_user;
			s->pinned_vm -= d_extra;
			goto out_unlock;
		}
		u->locked_vm += a_user;
		s->pinned_vm += a_extra;
	}
	ev->data_user_extra = d_user;
	ev->data_extra = d_extra;
	ev->aux_user_extra = a_user;
	ev->aux_extra = a_extra;

	snprintf(name, sizeof(name), "bt-sim-%llu", (unsigned long long)ev->id);
	ev->memfd = memfd_create(name, MFD_CLOEXEC);
	if (ev->memfd < 0) {
		err = -errno;
		goto err_unaccount;
	}
	ev->base_len = BT_PMU_PAGE + data_bytes;
	if (ftruncate(ev->memfd, (off_t)(ev->base_len + aux_bytes))) {
		err = -errno;
		goto err_unaccount;
	}
	ev->base = mmap(NULL, ev->base_len, PROT_READ | PROT_WRITE, MAP_SHARED,
			ev->memfd, 0);
	if (ev->base == MAP_FAILED) {
		ev->base = NULL;
		err = -errno;
		goto err_unaccount;
	}
	ev->pc = (struct perf_event_mmap_page *)ev->base;
	ev->data = ev->base + BT_PMU_PAGE;
	ev->data_size = data_bytes;
	bt_sim_rb__init(ev);
	if (aux_bytes) {
		err = map_aux(ev, aux_bytes, overwrite);
		if (!err && sim_is_pt(ev))
			err = bt_sim_pt__setup(ev);
		if (err)
			goto err_unmap;
		if (sim_is_bts(ev))
			bt_sim_bts__setup(ev);
	}
	if (ev->enabled) {
		bt_sim__driver_start(ev);
		bt_sim__pending_disable(ev);
	}

	memset(out, 0, sizeof(*out));
	out->page = ev->pc;
	out->data = ev->data;
	out->data_size = ev->data_size;
	out->aux = ev->aux_user;
	out->aux_size = ev->aux_size;
	out->aux_overwrite = ev->aux_overwrite;
	out->mapped = ev->base_len + ev->aux_size;
	pthread_mutex_unlock(&s->lock);
	return 0;

err_unmap:
	bt_sim__unmap_locked(s, ev);	/* gives the charge back too */
	goto out_unlock;
err_unaccount:
	u->locked_vm -= d_user + a_user;
	s->pinned_vm -= d_extra + a_extra;
	ev->data_user_extra = ev->data_extra = 0;
	ev->aux_user_extra = ev->aux_extra = 0;
	if (ev->memfd >= 0)
		close(ev->memfd);
	ev->memfd = -1;
out_unlock:
	pthread_mutex_unlock(&s->lock);
	return err;
}

int bt_sim__unmap(struct bt_pmu *pmu, struct bt_pmu_event *ev)
{
	struct bt_sim *s = sim_of(pmu);
	int err = 0;

	if (!ev)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (ev->base)
		bt_sim__unmap_locked(s, ev);
	else
		err = -EINVAL;
	pthread_mutex_unlock(&s->lock);
	return err;
}

