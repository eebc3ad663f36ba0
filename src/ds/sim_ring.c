// SPDX-License-Identifier: BSD-3-Clause
/*
 * The sim backend's rings and records: the data ring as
 * kernel/events/ring_buffer.c writes it (__perf_output_begin(),
 * perf_output_put_handle()), the AUX handle (perf_aux_output_begin(),
 * perf_aux_output_end(), perf_aux_output_skip()), and the records of
 * kernel/events/core.c: LOST, AUX, ITRACE_START, COMM, MMAP2, FORK,
 * EXIT, SWITCH, SWITCH_CPU_WIDE and LBR samples.
 *
 * Ordering with the consumer, who may be another thread or another
 * process mapping the same memfd (the kernel's A-D diagram):
 *
 *   kernel (this file)                        consumer
 *   tail = LOAD_ACQUIRE(data_tail)   (A)      head = LOAD_ACQUIRE(data_head) (C)
 *   STORE records                             LOAD records
 *   STORE_RELEASE(data_head)         (B)      STORE_RELEASE(data_tail)       (D)
 *
 *   A pairs with D: the ring's bytes below data_tail were read, so they
 *   may be written again. B pairs with C: records are visible before the
 *   head that covers them. The AUX area works the same with aux_tail and
 *   aux_head, where the "hardware" stores the bytes and the driver
 *   publishes aux_head (B) in perf_aux_output_end(); in overwrite mode
 *   aux_tail is never read, so there is no A.
 *
 * Every position is a free-running 64-bit count over a power-of-two size.
 * The free space is the kernel's CIRC_SPACE(head, tail, size): one byte
 * is always left, so records (multiples of 8) never fill the ring to the
 * last byte. A record that does not fit is dropped and counted; the next
 * record that fits is preceded by PERF_RECORD_LOST with that count, and
 * must leave room for it, as in __perf_output_begin().
 */
#include "ds/sim_model.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define SIM_HDR		sizeof(struct perf_event_header)
#define SIM_LOST_SIZE	(SIM_HDR + 16 + SIM_SAMPLE_ID_SIZE)
#define SIM_COMM_LEN	16u	/* TASK_COMM_LEN */
#define SIM_PATH_MAX	4096u

static inline uint64_t circ_space(uint64_t head, uint64_t tail, uint64_t size)
{
	return (tail - head - 1) & (size - 1);
}

static void put_hdr(unsigned char *p, uint32_t type, uint16_t misc,
		    size_t size)
{
	struct perf_event_header h = {
		.type = type, .misc = misc, .size = (uint16_t)size,
	};

	memcpy(p, &h, sizeof(h));
}

static void put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void put64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static uint16_t cpumode(uint64_t ip)
{
	return ip >= 0xffff800000000000ull ? PERF_RECORD_MISC_KERNEL :
					     PERF_RECORD_MISC_USER;
}

void bt_sim_rb__wakeup(struct bt_pmu_event *ev)
{
	uint64_t one = 1;

	/* perf_output_wakeup(): poll() on the event fd returns */
	if (write(ev->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated; still readable */
	}
}

void bt_sim_rb__init(struct bt_pmu_event *ev)
{
	struct perf_event_mmap_page *pc = ev->pc;
	const struct bt_sim *s = ev->sim;

	/*
	 * perf_event_init_userpage() and arch_perf_update_userpage(). Plain
	 * stores: the page is not handed out before map returns.
	 */
	pc->version = 0;
	pc->compat_version = 0;
	pc->cap_bit0_is_deprecated = 1;
	pc->cap_user_time = 1;
	pc->cap_user_time_zero = 1;
	pc->time_shift = s->time_shift;
	pc->time_mult = s->time_mult;
	pc->time_zero = s->t0_ns;
	pc->size = offsetof(struct perf_event_mmap_page, __reserved);
	pc->data_offset = BT_PMU_PAGE;
	pc->data_size = ev->data_size;
	ev->rb_head = 0;
	ev->rb_lost = 0;
	ev->rb_wakeup = 0;
	/* ring_buffer_init(): watermark 0 means half the ring */
	ev->rb_watermark = ev->data_size / 2;
	ev->aux_head = 0;
	ev->aux_wakeup = 0;
	memset(&ev->h, 0, sizeof(ev->h));
}

void bt_sim_rb__sample_id(struct bt_pmu_event *ev, unsigned char *p,
			  pid_t pid, pid_t tid, int cpu, uint64_t time)
{
	/* PERF_SAMPLE_TID | TIME | CPU | IDENTIFIER, in that order */
	put32(p, (uint32_t)pid);
	put32(p + 4, (uint32_t)tid);
	put64(p + 8, time);
	put32(p + 16, (uint32_t)cpu);
	put32(p + 20, 0);
	put64(p + 24, ev->id);
}

static uint64_t now(struct bt_pmu_event *ev)
{
	return bt_sim__tsc_to_time(ev->sim, bt_sim__tsc_locked(ev->sim));
}

/* Copy @len bytes into the data ring at free-running position @pos. */
static void rb_copy(struct bt_pmu_event *ev, uint64_t pos, const void *src,
		    size_t len)
{
	uint64_t off = pos & (ev->data_size - 1);
	size_t first = len < ev->data_size - off ? len : ev->data_size - off;

	memcpy(ev->data + off, src, first);
	memcpy(ev->data, (const unsigned char *)src + first, len - first);
}

int bt_sim_rb__output(struct bt_pmu_event *ev, const void *rec, size_t len)
{
	unsigned char lost[SIM_LOST_SIZE];
	uint64_t head, tail, size = len;
	pid_t pid, tid;
	int cpu;

	if (!ev->pc)
		return -ENODEV;		/* no rb: nothing counted */
	if (ev->rb_lost)
		size += SIM_LOST_SIZE;
	/* A: pairs with D, the consumer's store of data_tail */
	tail = __atomic_load_n(&ev->pc->data_tail, __ATOMIC_ACQUIRE);
	head = ev->rb_head;
	if (circ_space(head, tail, ev->data_size) < size) {
		ev->rb_lost++;
		ev->lost_samples++;
		return -ENOSPC;
	}
	if (ev->rb_lost) {
		put_hdr(lost, PERF_RECORD_LOST, 0, SIM_LOST_SIZE);
		put64(lost + SIM_HDR, ev->id);
		put64(lost + SIM_HDR + 8, ev->rb_lost);
		bt_sim__current(ev->sim, ev, &pid, &tid, &cpu);
		bt_sim_rb__sample_id(ev, lost + SIM_HDR + 16, pid, tid, cpu,
				     now(ev));
		rb_copy(ev, head, lost, SIM_LOST_SIZE);
		head += SIM_LOST_SIZE;
		ev->rb_lost = 0;
	}
	rb_copy(ev, head, rec, len);
	head += len;
	ev->rb_head = head;
	/* B: pairs with C, the consumer's load of data_head */
	__atomic_store_n(&ev->pc->data_head, head, __ATOMIC_RELEASE);
	if (head - ev->rb_wakeup > ev->rb_watermark) {
		ev->rb_wakeup += ev->rb_watermark;
		bt_sim_rb__wakeup(ev);
	}
	return 0;
}

/* ---- AUX ---------------------------------------------------------------- */

int bt_sim_aux__begin(struct bt_pmu_event *ev)
{
	struct sim_aux_handle *h = &ev->h;
	uint64_t tail;

	if (!ev->kaux)
		return -ENODEV;
	h->head = ev->aux_head;
	h->size = 0;
	h->flags = 0;
	h->wakeup = 0;
	if (!ev->aux_overwrite) {
		/* A: pairs with D, the consumer's store of aux_tail */
		tail = __atomic_load_n(&ev->pc->aux_tail, __ATOMIC_ACQUIRE);
		h->wakeup = ev->aux_wakeup + ev->aux_watermark;
		if (ev->aux_head - tail < ev->aux_size)
			h->size = circ_space(ev->aux_head, tail, ev->aux_size);
		if (!h->size) {
			/* no room: the event is disabled, the consumer woken */
			ev->pending_disable = true;
			bt_sim_rb__wakeup(ev);
			return -ENOSPC;
		}
	}
	h->active = true;
	return 0;
}

static void aux_record(struct bt_pmu_event *ev, uint64_t off, uint64_t size,
		       uint64_t flags)
{
	unsigned char rec[SIM_HDR + 24 + SIM_SAMPLE_ID_SIZE];
	pid_t pid, tid;
	int cpu;

	put_hdr(rec, PERF_RECORD_AUX, 0, sizeof(rec));
	put64(rec + SIM_HDR, off);
	put64(rec + SIM_HDR + 8, size);
	put64(rec + SIM_HDR + 16, flags);
	bt_sim__current(ev->sim, ev, &pid, &tid, &cpu);
	bt_sim_rb__sample_id(ev, rec + SIM_HDR + 24, pid, tid, cpu, now(ev));
	bt_sim_rb__output(ev, rec, sizeof(rec));
}

/* rb_need_aux_wakeup() */
static bool need_aux_wakeup(struct bt_pmu_event *ev)
{
	if (ev->aux_overwrite || !ev->aux_watermark)
		return false;
	if (ev->aux_head - ev->aux_wakeup >= ev->aux_watermark) {
		ev->aux_wakeup = ev->aux_head - ev->aux_head % ev->aux_watermark;
		return true;
	}
	return false;
}

void bt_sim_aux__end(struct bt_pmu_event *ev, uint64_t size)
{
	struct sim_aux_handle *h = &ev->h;
	bool wakeup = h->flags & PERF_AUX_FLAG_TRUNCATED;
	uint64_t off;

	if (!h->active)
		return;
	if (ev->aux_overwrite) {
		/* the driver left its position (wrapped) in the handle */
		h->flags |= PERF_AUX_FLAG_OVERWRITE;
		off = h->head;
		ev->aux_head = off;
	} else {
		h->flags &= ~(uint64_t)PERF_AUX_FLAG_OVERWRITE;
		off = ev->aux_head;
		ev->aux_head += size;
	}
	/* only records that tell something new */
	if (size || (h->flags & ~(uint64_t)PERF_AUX_FLAG_OVERWRITE))
		aux_record(ev, off, size, h->flags);
	/* B: pairs with C, the consumer's load of aux_head */
	__atomic_store_n(&ev->pc->aux_head, ev->aux_head, __ATOMIC_RELEASE);
	if (need_aux_wakeup(ev))
		wakeup = true;
	if (wakeup) {
		if (h->flags & PERF_AUX_FLAG_TRUNCATED)
			ev->pending_disable = true;
		bt_sim_rb__wakeup(ev);
	}
	h->active = false;
}

int bt_sim_aux__skip(struct bt_pmu_event *ev, uint64_t size)
{
	struct sim_aux_handle *h = &ev->h;

	if (size > h->size)
		return -ENOSPC;
	ev->aux_head += size;
	/* B: pairs with C; the skipped bytes were padded before */
	__atomic_store_n(&ev->pc->aux_head, ev->aux_head, __ATOMIC_RELEASE);
	if (need_aux_wakeup(ev)) {
		bt_sim_rb__wakeup(ev);
		h->wakeup = ev->aux_wakeup + ev->aux_watermark;
	}
	h->head = ev->aux_head;
	h->size -= size;
	return 0;
}

void bt_sim_rb__itrace_start(struct bt_pmu_event *ev)
{
	unsigned char rec[SIM_HDR + 8 + SIM_SAMPLE_ID_SIZE];
	pid_t pid, tid;
	int cpu;

	if (ev->itrace_logged)
		return;
	ev->itrace_logged = true;
	bt_sim__current(ev->sim, ev, &pid, &tid, &cpu);
	put_hdr(rec, PERF_RECORD_ITRACE_START, 0, sizeof(rec));
	put32(rec + SIM_HDR, (uint32_t)pid);
	put32(rec + SIM_HDR + 4, (uint32_t)tid);
	bt_sim_rb__sample_id(ev, rec + SIM_HDR + 8, pid, tid, cpu, now(ev));
	bt_sim_rb__output(ev, rec, sizeof(rec));
}

/* ---- sideband ----------------------------------------------------------- */

static bool follows(const struct bt_pmu_event *ev, pid_t pid, pid_t tid)
{
	for (unsigned i = 0; i < ev->nr_follow; i++) {
		if (ev->follow[i] == pid || ev->follow[i] == tid)
			return true;
	}
	return false;
}

/*
 * Does sideband of task (@pid, @tid) running on @cpu go to @ev? Per-CPU
 * events see their CPU; per-task events are inherit=1 (as perf record
 * opens them): the task, its threads and its children.
 */
static bool sb_match(const struct bt_pmu_event *ev, pid_t pid, pid_t tid,
		     int cpu)
{
	if (!ev->sideband || !ev->enabled || !ev->pc)
		return false;
	if (ev->target.kind == BT_TARGET_CPU)
		return ev->target.id == cpu;
	return follows(ev, pid, tid);
}

static int sb_follow(struct bt_pmu_event *ev, pid_t pid)
{
	pid_t *p;

	if (follows(ev, pid, pid))
		return 0;
	if (ev->nr_follow == ev->cap_follow) {
		p = realloc(ev->follow, 2 * ev->cap_follow * sizeof(*p));
		if (!p)
			return -ENOMEM;
		ev->follow = p;
		ev->cap_follow *= 2;
	}
	ev->follow[ev->nr_follow++] = pid;
	return 0;
}

/* Lock @pmu if it is a sim; NULL otherwise. */
static struct bt_sim *sim_lock(struct bt_pmu *pmu)
{
	struct bt_sim *s;

	if (!bt_sim_is(pmu))
		return NULL;
	s = sim_of(pmu);
	pthread_mutex_lock(&s->lock);
	return s;
}

/* Write @rec (its sample_id at @len - 32 filled per event) to matches. */
static void sb_emit(struct bt_sim *s, unsigned char *rec, size_t len,
		    pid_t pid, pid_t tid, int cpu, pid_t mpid, pid_t mtid)
{
	uint64_t t = bt_sim__tsc_to_time(s, bt_sim__tsc_locked(s));

	for (struct bt_pmu_event *ev = s->events; ev; ev = ev->next) {
		if (!sb_match(ev, mpid, mtid, cpu))
			continue;
		bt_sim_rb__sample_id(ev, rec + len - SIM_SAMPLE_ID_SIZE, pid,
				     tid, cpu, t);
		bt_sim_rb__output(ev, rec, len);
	}
}

int bt_sim_comm(struct bt_pmu *pmu, pid_t pid, pid_t tid, const char *comm,
		bool exec)
{
	unsigned char rec[SIM_HDR + 8 + SIM_COMM_LEN + SIM_SAMPLE_ID_SIZE];
	struct sim_task *t;
	struct bt_sim *s;
	size_t n, size;

	if (pid <= 0 || tid <= 0 || !comm)
		return -EINVAL;
	s = sim_lock(pmu);
	if (!s)
		return -EINVAL;
	t = bt_sim__task(s, tid);
	if (!t) {
		pthread_mutex_unlock(&s->lock);
		return -ENOMEM;
	}
	t->pid = pid;
	/* perf_event_comm_event(): the name, NUL-padded to 8 bytes */
	n = strnlen(comm, SIM_COMM_LEN - 1);
	size = SIM_HDR + 8 + ((n + 1 + 7) & ~(size_t)7) + SIM_SAMPLE_ID_SIZE;
	memset(rec, 0, sizeof(rec));
	put_hdr(rec, PERF_RECORD_COMM, exec ? PERF_RECORD_MISC_COMM_EXEC : 0,
		size);
	put32(rec + SIM_HDR, (uint32_t)pid);
	put32(rec + SIM_HDR + 4, (uint32_t)tid);
	memcpy(rec + SIM_HDR + 8, comm, n);
	sb_emit(s, rec, size, pid, tid, t->cpu, pid, tid);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int bt_sim_mmap2(struct bt_pmu *pmu, pid_t pid, pid_t tid, uint64_t addr,
		 uint64_t len, uint64_t pgoff, uint32_t prot, uint32_t flags,
		 const char *filename)
{
	unsigned char *rec;
	struct sim_task *t;
	struct bt_sim *s;
	struct stat st;
	size_t n, size;
	int err = 0;

	if (pid <= 0 || tid <= 0 || !filename || !len)
		return -EINVAL;
	n = strnlen(filename, SIM_PATH_MAX - 1);
	size = SIM_HDR + 64 + ((n + 1 + 7) & ~(size_t)7) + SIM_SAMPLE_ID_SIZE;
	rec = calloc(1, size);
	if (!rec)
		return -ENOMEM;
	if (stat(filename, &st))
		memset(&st, 0, sizeof(st));	/* [vdso], //anon, gone */
	/* PERF_RECORD_MMAP2: pid tid addr len pgoff maj min ino gen prot flags */
	put_hdr(rec, PERF_RECORD_MMAP2, PERF_RECORD_MISC_USER, size);
	put32(rec + SIM_HDR, (uint32_t)pid);
	put32(rec + SIM_HDR + 4, (uint32_t)tid);
	put64(rec + SIM_HDR + 8, addr);
	put64(rec + SIM_HDR + 16, len);
	put64(rec + SIM_HDR + 24, pgoff);
	put32(rec + SIM_HDR + 32, major(st.st_dev));
	put32(rec + SIM_HDR + 36, minor(st.st_dev));
	put64(rec + SIM_HDR + 40, st.st_ino);
	put64(rec + SIM_HDR + 48, 0);
	put32(rec + SIM_HDR + 56, prot);
	put32(rec + SIM_HDR + 60, flags);
	memcpy(rec + SIM_HDR + 64, filename, n);

	s = sim_lock(pmu);
	if (!s) {
		free(rec);
		return -EINVAL;
	}
	t = bt_sim__task(s, tid);
	if (!t) {
		err = -ENOMEM;
	} else {
		t->pid = pid;
		/* attr.mmap_data is 0: only executable mappings are told */
		if (prot & 4 /* PROT_EXEC */)
			sb_emit(s, rec, size, pid, tid, t->cpu, pid, tid);
	}
	pthread_mutex_unlock(&s->lock);
	free(rec);
	return err;
}

/* FORK and EXIT share perf_event_task()'s layout. */
static int task_event(struct bt_pmu *pmu, uint32_t type, pid_t pid,
		      pid_t ppid, pid_t tid, pid_t ptid)
{
	unsigned char rec[SIM_HDR + 24 + SIM_SAMPLE_ID_SIZE];
	struct sim_task *t, *cur;
	struct bt_sim *s;
	pid_t cpid, ctid;
	int err = 0;

	if (pid <= 0 || tid <= 0 || ppid < 0 || ptid < 0)
		return -EINVAL;
	s = sim_lock(pmu);
	if (!s)
		return -EINVAL;
	/* current: the parent at fork, the task itself at exit */
	cpid = type == PERF_RECORD_FORK ? ppid : pid;
	ctid = type == PERF_RECORD_FORK ? ptid : tid;
	cur = ctid > 0 ? bt_sim__task(s, ctid) : NULL;
	t = bt_sim__task(s, tid);
	if ((ctid > 0 && !cur) || !t) {
		err = -ENOMEM;
		goto out;
	}
	cur = ctid > 0 ? bt_sim__task(s, ctid) : NULL;	/* may have moved */
	t->pid = pid;
	if (type == PERF_RECORD_FORK && cur)
		t->cpu = cur->cpu;
	put_hdr(rec, type, 0, sizeof(rec));
	put32(rec + SIM_HDR, (uint32_t)pid);
	put32(rec + SIM_HDR + 4, (uint32_t)ppid);
	put32(rec + SIM_HDR + 8, (uint32_t)tid);
	put32(rec + SIM_HDR + 12, (uint32_t)ptid);
	put64(rec + SIM_HDR + 16, bt_sim__tsc_to_time(s, bt_sim__tsc_locked(s)));
	if (type == PERF_RECORD_FORK) {
		/* inherit: children of followed tasks are followed */
		for (struct bt_pmu_event *ev = s->events; ev; ev = ev->next) {
			if (ev->sideband && ev->target.kind == BT_TARGET_TASK &&
			    follows(ev, ppid, ptid) && sb_follow(ev, pid))
				err = -ENOMEM;
		}
	}
	sb_emit(s, rec, sizeof(rec), cpid, ctid, t->cpu, cpid, ctid);
out:
	pthread_mutex_unlock(&s->lock);
	return err;
}

int bt_sim_fork(struct bt_pmu *pmu, pid_t pid, pid_t ppid, pid_t tid,
		pid_t ptid)
{
	return task_event(pmu, PERF_RECORD_FORK, pid, ppid, tid, ptid);
}

int bt_sim_exit(struct bt_pmu *pmu, pid_t pid, pid_t ppid, pid_t tid,
		pid_t ptid)
{
	return task_event(pmu, PERF_RECORD_EXIT, pid, ppid, tid, ptid);
}

/* perf_event_switch(): @out of (@pid, @tid), with the other task @o. */
static void switch_emit(struct bt_sim *s, int cpu, bool out, pid_t pid,
			pid_t tid, pid_t opid, pid_t otid)
{
	unsigned char rec[SIM_HDR + 8 + SIM_SAMPLE_ID_SIZE];
	uint16_t misc = out ? PERF_RECORD_MISC_SWITCH_OUT : 0;
	uint64_t t = bt_sim__tsc_to_time(s, bt_sim__tsc_locked(s));

	for (struct bt_pmu_event *ev = s->events; ev; ev = ev->next) {
		size_t len;

		if (!ev->sideband || !ev->enabled || !ev->pc)
			continue;
		if (ev->target.kind == BT_TARGET_CPU) {
			if (ev->target.id != cpu)
				continue;
			put_hdr(rec, PERF_RECORD_SWITCH_CPU_WIDE, misc,
				sizeof(rec));
			put32(rec + SIM_HDR, (uint32_t)opid);
			put32(rec + SIM_HDR + 4, (uint32_t)otid);
			len = sizeof(rec);
		} else {
			if (tid <= 0 || !follows(ev, pid, tid))
				continue;
			len = SIM_HDR + SIM_SAMPLE_ID_SIZE;
			put_hdr(rec, PERF_RECORD_SWITCH, misc, len);
		}
		bt_sim_rb__sample_id(ev, rec + len - SIM_SAMPLE_ID_SIZE, pid,
				     tid, cpu, t);
		bt_sim_rb__output(ev, rec, len);
	}
}

int bt_sim_switch(struct bt_pmu *pmu, int cpu, pid_t prev_pid,
		  pid_t prev_tid, pid_t next_pid, pid_t next_tid)
{
	struct sim_task *t;
	struct bt_sim *s;
	int err = 0;

	if (prev_pid < 0 || prev_tid < 0 || next_pid < 0 || next_tid < 0)
		return -EINVAL;
	s = sim_lock(pmu);
	if (!s)
		return -EINVAL;
	if (cpu < 0 || (uint32_t)cpu >= s->nr_cpus) {
		err = -EINVAL;
		goto out;
	}
	/* the idle task is tid 0: known to the model as nobody */
	if (prev_tid > 0) {
		t = bt_sim__task(s, prev_tid);
		if (!t) {
			err = -ENOMEM;
			goto out;
		}
		t->pid = prev_pid;
		t->cpu = cpu;
	}
	if (next_tid > 0) {
		t = bt_sim__task(s, next_tid);
		if (!t) {
			err = -ENOMEM;
			goto out;
		}
		t->pid = next_pid;
		t->cpu = cpu;
	}
	switch_emit(s, cpu, true, prev_pid, prev_tid, next_pid, next_tid);
	s->cpu_curr[cpu].pid = next_pid;
	s->cpu_curr[cpu].tid = next_tid;
	switch_emit(s, cpu, false, next_pid, next_tid, prev_pid, prev_tid);
out:
	pthread_mutex_unlock(&s->lock);
	return err;
}

/* ---- LBR ---------------------------------------------------------------- */

int bt_sim_lbr_sample(struct bt_pmu *pmu, struct bt_pmu_event *ev,
		      pid_t pid, pid_t tid, uint64_t ip,
		      const struct perf_branch_entry *e, unsigned n)
{
	unsigned char rec[SIM_HDR + 48 + SIM_LBR_DEPTH *
			  sizeof(struct perf_branch_entry)];
	struct sim_task *t;
	struct bt_sim *s;
	size_t size;
	int err = 0;

	if (n > SIM_LBR_DEPTH || (n && !e) || pid < 0 || tid < 0)
		return -EINVAL;
	s = sim_lock(pmu);
	if (!s)
		return -EINVAL;
	if (!bt_sim__owns(s, ev) || ev->sideband ||
	    ev->facility != BT_FAC_LBR) {
		err = -EINVAL;
		goto out;
	}
	if (!ev->enabled || !ev->pc) {
		err = -ENOSPC;
		goto out;
	}
	t = tid > 0 ? bt_sim__task(s, tid) : NULL;
	if (tid > 0 && !t) {
		err = -ENOMEM;
		goto out;
	}
	if (t)
		t->pid = pid;
	/* IDENTIFIER IP TID TIME CPU BRANCH_STACK(nr, entries) */
	size = SIM_HDR + 48 + n * sizeof(*e);
	put_hdr(rec, PERF_RECORD_SAMPLE, cpumode(ip), size);
	put64(rec + SIM_HDR, ev->id);
	put64(rec + SIM_HDR + 8, ip);
	put32(rec + SIM_HDR + 16, (uint32_t)pid);
	put32(rec + SIM_HDR + 20, (uint32_t)tid);
	put64(rec + SIM_HDR + 24, now(ev));
	put32(rec + SIM_HDR + 32, (uint32_t)(ev->target.kind == BT_TARGET_CPU ?
					     ev->target.id : t ? t->cpu : 0));
	put32(rec + SIM_HDR + 36, 0);
	put64(rec + SIM_HDR + 40, n);
	if (n)
		memcpy(rec + SIM_HDR + 48, e, n * sizeof(*e));
	bt_sim_rb__output(ev, rec, size);
out:
	pthread_mutex_unlock(&s->lock);
	return err;
}
