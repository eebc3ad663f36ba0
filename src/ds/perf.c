// SPDX-License-Identifier: BSD-3-Clause
/*
 * The perf backend: struct bt_pmu_ops over perf_event_open(2).
 *
 * open builds the facility's perf_event_attr from sysfs (perf_attr.c)
 * and opens it on a task (pid, cpu -1) or a CPU (pid -1, cpu); PEBS
 * retries lower precise_ip levels as perf does, intel_bts falls back to
 * branch-instructions samples when the PMU is missing. map maps the data
 * ring and, for AUX events, the AUX area: aux_offset and aux_size are
 * written into the first page before the AUX mmap, which the kernel reads
 * them in; the AUX area is writable in stream mode (the kernel then
 * honours aux_tail and never overwrites unread trace) and read-only in
 * snapshot mode (the kernel overwrites, flight-recorder style).
 *
 * Events without an AUX area (PEBS, LBR, the intel_bts fallback, sideband)
 * deliver records in the data ring, which map sizes by the larger of
 * data_bytes and aux_bytes. open_args.uid is not ours to choose here: the
 * kernel charges the mapping to the user who maps it.
 *
 * All system calls go through struct bt_perf_sys so tests can stand in for
 * the kernel; bt_pmu__new_perf() uses the real ones.
 */
#include "ds/perf.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/opts.h"
#include "ds/pmu.h"

struct perf_backend {
	struct bt_pmu base;		/* first: bt_pmu__ops/free use it */
	const struct bt_perf_sys *sys;
	char sysfs[PATH_MAX];
	unsigned nr_events;
};

struct bt_pmu_event {
	struct perf_backend *pb;
	int fd;
	uint32_t facility;
	bool sideband;
	bool aux;			/* has an AUX area (PT, intel_bts) */
	bool fallback;			/* intel_bts's branch-instructions */
	struct perf_event_attr attr;
	struct perf_event_mmap_page *page;	/* MAP_FAILED when unmapped */
	size_t base_len;
	void *aux_base;			/* MAP_FAILED when unmapped */
	size_t aux_len;
};

/* ---- The real system calls ------------------------------------------------- */

static int sys_open(struct perf_event_attr *attr, pid_t pid, int cpu,
		    int group_fd, unsigned long flags)
{
	long fd = syscall(SYS_perf_event_open, attr, pid, cpu, group_fd, flags);

	return fd < 0 ? -errno : (int)fd;
}

static int sys_ioctl(int fd, unsigned long request, unsigned long arg)
{
	return ioctl(fd, request, arg) < 0 ? -errno : 0;
}

static int sys_munmap(void *addr, size_t len)
{
	return munmap(addr, len) < 0 ? -errno : 0;
}

static int sys_close(int fd)
{
	return close(fd) < 0 ? -errno : 0;
}

const struct bt_perf_sys bt_perf_sys_real = {
	.open = sys_open,
	.ioctl = sys_ioctl,
	.mmap = mmap,
	.munmap = sys_munmap,
	.close = sys_close,
};

static struct perf_backend *backend(struct bt_pmu *pmu)
{
	return (struct perf_backend *)pmu;
}

/* ---- open ------------------------------------------------------------------------ */

static int perf_open_fd(struct perf_backend *pb, struct perf_event_attr *attr,
			const struct bt_target *t)
{
	pid_t pid = t->kind == BT_TARGET_TASK ? t->id : -1;
	int cpu = t->kind == BT_TARGET_CPU ? t->id : -1;

	return pb->sys->open(attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

/*
 * PEBS: the highest precise_ip the event takes. As perf, step down on
 * EOPNOTSUPP or EINVAL (a level the PMU or event lacks); any other error
 * is the answer.
 */
static int perf_open_pebs(struct perf_backend *pb, struct bt_pmu_event *ev,
			  const struct bt_pmu_open_args *a)
{
	int precise = bt_perf_max_precise(pb->sysfs);
	int fd = -EOPNOTSUPP, err;

	for (; precise >= 1; precise--) {
		err = bt_perf_attr__pebs(pb->sysfs, a->config, precise,
					 &ev->attr);
		if (err)
			return err;
		ev->attr.enable_on_exec = a->enable_on_exec &&
					  a->target.kind == BT_TARGET_TASK;
		fd = perf_open_fd(pb, &ev->attr, &a->target);
		if (fd >= 0 || (fd != -EOPNOTSUPP && fd != -EINVAL))
			break;
		pr_debug("perf: pebs: precise_ip %d refused (%s), trying lower",
			 precise, strerror(-fd));
	}
	return fd;
}

static int perf_open(struct bt_pmu *pmu, const struct bt_pmu_open_args *args,
		     struct bt_pmu_event **evp)
{
	struct perf_backend *pb = backend(pmu);
	struct bt_pmu_open_args a;
	struct bt_pmu_event *ev;
	int err, fd;

	if (!evp)
		return -EINVAL;
	*evp = NULL;
	err = bt_opts_copy(&a, sizeof(a), args);
	if (err || !args)
		return -EINVAL;
	if (a.target.kind != BT_TARGET_TASK && a.target.kind != BT_TARGET_CPU)
		return -EINVAL;
	if (a.target.id < 0 || (!a.sideband && a.facility >= BT_FAC__COUNT))
		return -EINVAL;
	if (!a.sideband && (a.facility == BT_FAC_STEP ||
			    a.facility == BT_FAC_PTEMU))
		return -EOPNOTSUPP;	/* software facilities live in sim */

	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	ev->pb = pb;
	ev->fd = -1;
	ev->page = MAP_FAILED;
	ev->aux_base = MAP_FAILED;
	ev->sideband = a.sideband;
	ev->facility = a.facility;

	if (a.sideband) {
		bt_perf_attr__sideband(&ev->attr);
	} else {
		switch (a.facility) {
		case BT_FAC_PT:
			err = bt_perf_attr__pt(pb->sysfs, a.config, &ev->attr);
			ev->aux = true;
			break;
		case BT_FAC_BTS:
			err = bt_perf_attr__bts(pb->sysfs, a.config, &ev->attr,
						&ev->fallback);
			ev->aux = !ev->fallback;
			break;
		case BT_FAC_PEBS:
			err = 0;	/* built per precise level below */
			break;
		default:
			err = bt_perf_attr__lbr(a.config, &ev->attr);
			break;
		}
		if (err)
			goto err_free;
	}

	if (!a.sideband && a.facility == BT_FAC_PEBS) {
		fd = perf_open_pebs(pb, ev, &a);
	} else {
		/* A task's event may start at its exec, as perf record's workload. */
		ev->attr.enable_on_exec = a.enable_on_exec &&
					  a.target.kind == BT_TARGET_TASK;
		fd = perf_open_fd(pb, &ev->attr, &a.target);
	}
	if (fd < 0) {
		err = fd;
		pr_debug("perf: cannot open %s on %s %d: %s",
			 a.sideband ? "sideband" : bt_facility_name(a.facility),
			 a.target.kind == BT_TARGET_TASK ? "task" : "cpu",
			 a.target.id, strerror(-err));
		goto err_free;
	}
	ev->fd = fd;

	if (!a.sideband && a.config) {
		struct bt_trace_config cfg;

		err = bt_perf_config__copy(&cfg, a.config);
		if (!err && cfg.filter && cfg.filter[0])
			err = pmu->ops->set_filter(pmu, ev, cfg.filter);
		if (err)
			goto err_close;
	}
	pb->nr_events++;
	*evp = ev;
	return 0;

err_close:
	pb->sys->close(ev->fd);
err_free:
	free(ev);
	return err;
}

/* ---- map / unmap ----------------------------------------------------------------- */

static int perf_unmap(struct bt_pmu *pmu, struct bt_pmu_event *ev)
{
	struct perf_backend *pb = backend(pmu);

	if (!ev)
		return -EINVAL;
	/* The AUX area first: it hangs off the data ring's buffer. */
	if (ev->aux_base != MAP_FAILED)
		pb->sys->munmap(ev->aux_base, ev->aux_len);
	if (ev->page != MAP_FAILED)
		pb->sys->munmap(ev->page, ev->base_len);
	ev->aux_base = MAP_FAILED;
	ev->page = MAP_FAILED;
	ev->aux_len = 0;
	ev->base_len = 0;
	return 0;
}

static int perf_map(struct bt_pmu *pmu, struct bt_pmu_event *ev,
		    uint64_t data_bytes, uint64_t aux_bytes, bool overwrite,
		    struct bt_pmu_buffers *out)
{
	struct perf_backend *pb = backend(pmu);
	struct perf_event_mmap_page *pc;
	uint64_t ring = data_bytes;
	void *p;
	int err;

	if (!ev || !out || ev->page != MAP_FAILED)
		return -EINVAL;
	if (!bt_pmu_pages_pow2(data_bytes) ||
	    (aux_bytes && !bt_pmu_pages_pow2(aux_bytes)))
		return -EINVAL;
	/*
	 * Events without an AUX area (sample facilities, sideband) get their
	 * records in the data ring, so @aux_bytes, the size asked for the
	 * trace, sizes that ring when it is the larger.
	 */
	if (!ev->aux && aux_bytes > ring)
		ring = aux_bytes;
	if (ring > SIZE_MAX / 2)
		return -EINVAL;

	ev->base_len = (size_t)(BT_PMU_PAGE + ring);
	/* Writable: the kernel honours data_tail only then. */
	p = pb->sys->mmap(NULL, ev->base_len, PROT_READ | PROT_WRITE,
			  MAP_SHARED, ev->fd, 0);
	if (p == MAP_FAILED) {
		err = -errno;
		ev->base_len = 0;
		pr_debug("perf: cannot map %zu bytes of data ring: %s",
			 (size_t)(BT_PMU_PAGE + ring), strerror(-err));
		return err;
	}
	ev->page = pc = p;

	if (ev->aux && aux_bytes) {
		/*
		 * Relaxed: the kernel reads these two in perf_mmap() during
		 * the mmap below, on this thread; the system call orders them.
		 */
		__atomic_store_n(&pc->aux_offset, ev->base_len, __ATOMIC_RELAXED);
		__atomic_store_n(&pc->aux_size, aux_bytes, __ATOMIC_RELAXED);
		ev->aux_len = (size_t)aux_bytes;
		p = pb->sys->mmap(NULL, ev->aux_len,
				  overwrite ? PROT_READ : PROT_READ | PROT_WRITE,
				  MAP_SHARED, ev->fd, (off_t)ev->base_len);
		if (p == MAP_FAILED) {
			err = -errno;
			pr_debug("perf: cannot map %zu bytes of AUX area: %s",
				 ev->aux_len, strerror(-err));
			ev->aux_len = 0;
			perf_unmap(pmu, ev);
			return err;
		}
		ev->aux_base = p;
	}

	memset(out, 0, sizeof(*out));
	out->page = pc;
	out->data = (unsigned char *)pc + BT_PMU_PAGE;
	out->data_size = ring;
	if (ev->aux_base != MAP_FAILED) {
		out->aux = ev->aux_base;
		out->aux_size = aux_bytes;
		out->aux_overwrite = overwrite;
	}
	out->mapped = ev->base_len + ev->aux_len;
	return 0;
}

/* ---- control ------------------------------------------------------------------------ */

static int perf_enable(struct bt_pmu *pmu, struct bt_pmu_event *ev, bool on)
{
	if (!ev)
		return -EINVAL;
	return backend(pmu)->sys->ioctl(ev->fd, on ? PERF_EVENT_IOC_ENABLE :
					 PERF_EVENT_IOC_DISABLE, 0);
}

static int perf_set_filter(struct bt_pmu *pmu, struct bt_pmu_event *ev,
			   const char *filter)
{
	struct perf_backend *pb = backend(pmu);
	char kfilter[4096];
	uint64_t ranges;
	int err;

	if (!ev || !filter)
		return -EINVAL;
	/* Of ours, only intel_pt has address filters (nr_addr_filters). */
	if (ev->sideband || ev->facility != BT_FAC_PT)
		return -EOPNOTSUPP;
	if (bt_perf_sysfs__u64(pb->sysfs, "intel_pt", "caps/num_address_ranges",
			       16, &ranges) == 0 && ranges == 0) {
		pr_warn("perf: intel_pt has no address ranges "
			"(caps/num_address_ranges 0): cannot filter");
		return -EOPNOTSUPP;
	}
	err = bt_perf_filter__resolve(filter, kfilter, sizeof(kfilter));
	if (err) {
		pr_warn("perf: bad address filter '%s': %s", filter,
			strerror(-err));
		return err;
	}
	err = pb->sys->ioctl(ev->fd, PERF_EVENT_IOC_SET_FILTER,
			     (unsigned long)kfilter);
	if (err)
		pr_warn("perf: the kernel refused filter '%s': %s", kfilter,
			strerror(-err));
	return err;
}

static int perf_fd(struct bt_pmu *pmu, struct bt_pmu_event *ev)
{
	(void)pmu;
	return ev ? ev->fd : -1;
}

static void perf_close(struct bt_pmu *pmu, struct bt_pmu_event *ev)
{
	struct perf_backend *pb = backend(pmu);

	if (!ev)
		return;
	perf_unmap(pmu, ev);
	if (ev->fd >= 0)
		pb->sys->close(ev->fd);
	ev->fd = -1;
	pb->nr_events--;
	free(ev);
}

static const struct bt_pmu_ops perf_ops = {
	.name = "perf",
	.open = perf_open,
	.map = perf_map,
	.unmap = perf_unmap,
	.enable = perf_enable,
	.set_filter = perf_set_filter,
	.fd = perf_fd,
	.close = perf_close,
};

/* ---- the backend ------------------------------------------------------------------------ */

static void perf_destroy(struct bt_pmu *pmu)
{
	struct perf_backend *pb = backend(pmu);

	if (pb->nr_events)
		pr_warn("perf: backend freed with %u events open",
			pb->nr_events);
	free(pb);
}

struct bt_pmu *bt_pmu__new_perf_sys(const struct bt_perf_opts *opts,
				    const struct bt_perf_sys *sys)
{
	struct bt_perf_opts o;
	struct perf_backend *pb;
	const char *sysfs;
	size_t n;

	if (bt_opts_copy(&o, sizeof(o), opts) || !sys)
		return errno = EINVAL, NULL;
	sysfs = o.sysfs ? o.sysfs : "/sys";
	n = strlen(sysfs);
	if (n >= PATH_MAX)
		return errno = EINVAL, NULL;
	pb = calloc(1, sizeof(*pb));
	if (!pb)
		return errno = ENOMEM, NULL;
	pb->base.ops = &perf_ops;
	pb->base.destroy = perf_destroy;
	pb->sys = sys;
	memcpy(pb->sysfs, sysfs, n + 1);
	return &pb->base;
}

struct bt_pmu *bt_pmu__new_perf(const struct bt_perf_opts *opts)
{
	return bt_pmu__new_perf_sys(opts, &bt_perf_sys_real);
}

const struct perf_event_attr *bt_perf_event__attr(const struct bt_pmu_event *ev)
{
	return ev ? &ev->attr : NULL;
}

bool bt_perf_event__fallback(const struct bt_pmu_event *ev)
{
	return ev && ev->fallback;
}
