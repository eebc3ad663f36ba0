/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The sim backend's hardware side: what a CPU (here, the software
 * facilities step and pt-emu, or a test) does to a sim event. The kernel
 * side (struct bt_pmu_ops) is in sim.c; a consumer sees only that.
 *
 * BTS and PEBS records go, as on the hardware, into buffers described by
 * a DS management area (buffer base, index, absolute maximum, interrupt
 * threshold, PEBS counter reset); when the index reaches the threshold the
 * model raises its PMI, and its "driver" moves the records to the AUX area
 * (BTS, as intel_bts does: raw 24-byte records, then PERF_RECORD_AUX in
 * the data ring) or to the data ring as samples (PEBS). PT bytes go
 * through a ToPA-like table of output regions; a region marked INT raises
 * the PMI, which publishes aux_head and writes PERF_RECORD_AUX. The
 * records and flags follow the kernel (TRUNCATED when the consumer left no
 * room, OVERWRITE in snapshot mode, PARTIAL, LOST when the data ring is
 * full, ITRACE_START when tracing starts for a task).
 */
#ifndef BT_DS_SIM_H
#define BT_DS_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <btrail/ds.h>

/* True when @pmu is a sim backend. */
bool bt_sim_is(const struct bt_pmu *pmu);

/* The model's time-stamp counter (monotonic, at opts.tsc_hz). */
uint64_t bt_sim_tsc(struct bt_pmu *pmu);

/*
 * The model's mlock accounting (kernel/events/core.c perf_mmap()), in
 * bytes: what @uid has charged to its user->locked_vm, what this process
 * has charged to mm->pinned_vm past the per-user allowance, and the two
 * limits (user_limit = perf_event_mlock_kb * CPUs; rlimit = RLIMIT_MEMLOCK,
 * UINT64_MAX when unlimited or with CAP_IPC_LOCK).
 */
struct bt_sim_mlock {
	uint64_t user_locked;
	uint64_t pinned;
	uint64_t user_limit;
	uint64_t rlimit;
};

/* Fill @out for @uid. Returns 0 or -EINVAL. */
int bt_sim_mlock(struct bt_pmu *pmu, uid_t uid, struct bt_sim_mlock *out);

/*
 * The DS management area of a BTS or PEBS event, as the hardware reads
 * it (Intel SDM vol. 3 §18.6.3.4), offsets into the event's DS buffer:
 * for BTS the AUX area itself (as intel_bts programs it), for PEBS the
 * kernel's own 64 KiB buffer.
 */
struct bt_sim_ds_area {
	uint64_t bts_base;
	uint64_t bts_index;
	uint64_t bts_abs_max;
	uint64_t bts_int_thresh;
	uint64_t pebs_base;
	uint64_t pebs_index;
	uint64_t pebs_abs_max;
	uint64_t pebs_int_thresh;
	uint64_t pebs_counter_reset;
};

/* The BTS record format: 24 bytes, as the CPU writes it. */
struct bt_sim_bts_record {
	uint64_t from;
	uint64_t to;
	uint64_t flags;		/* bit 4: predicted (unused here) */
};

/* Snapshot of @ev's DS area (tests); -EINVAL if it has none. */
int bt_sim_ds_area(struct bt_pmu *pmu, struct bt_pmu_event *ev,
		   struct bt_sim_ds_area *out);

/*
 * The CPU stores one branch record for @ev (a BTS or step event). Reaching
 * the interrupt threshold runs the PMI. Returns 0, or -ENOSPC when the
 * event is disabled or unmapped (the record is dropped, as the hardware
 * drops it with tracing off), -EINVAL for an event that is not BTS.
 */
int bt_sim_bts_record(struct bt_pmu *pmu, struct bt_pmu_event *ev,
		      uint64_t from, uint64_t to);

/* One PEBS record; the fields the chosen event offers. */
struct bt_sim_pebs_record {
	uint64_t ip;
	uint64_t addr;		/* data linear address, when the event has one */
	uint64_t tsc;
	uint64_t regs[18];	/* rax..r15, rflags, rip: the SDM's basic group */
};

int bt_sim_pebs_record(struct bt_pmu *pmu, struct bt_pmu_event *ev,
		       const struct bt_sim_pebs_record *rec);

/*
 * One LBR sample: PERF_RECORD_SAMPLE with PERF_SAMPLE_IDENTIFIER | IP |
 * TID | TIME | CPU | BRANCH_STACK, @n (at most 32) entries newest first.
 */
int bt_sim_lbr_sample(struct bt_pmu *pmu, struct bt_pmu_event *ev,
		      pid_t pid, pid_t tid, uint64_t ip,
		      const struct perf_branch_entry *e, unsigned n);

/*
 * The CPU writes @len bytes of PT packets for @ev (a PT or pt-emu event)
 * through its ToPA output regions.
 */
int bt_sim_pt_write(struct bt_pmu *pmu, struct bt_pmu_event *ev,
		    const void *buf, size_t len);

/*
 * VMX root operation begins (@on) or ends on @ev's CPU, as
 * intel_pt_handle_vmx(): while on, PT cannot trace (bt_sim_pt_write()
 * returns -ENOSPC) and the AUX record that covers the gap carries
 * PERF_AUX_FLAG_PARTIAL. -EINVAL for an event that is not PT.
 */
int bt_sim_pt_vmx(struct bt_pmu *pmu, struct bt_pmu_event *ev, bool on);

/*
 * Tracing stops for now (disable, a context switch out, the end of the
 * task): a BTS or PT event's pending bytes are moved or published as the
 * driver does on a PMI, so a consumer sees everything written.
 */
int bt_sim_flush(struct bt_pmu *pmu, struct bt_pmu_event *ev);

/* Sideband the kernel writes: into every sideband event of @pid's context. */
int bt_sim_comm(struct bt_pmu *pmu, pid_t pid, pid_t tid, const char *comm,
		bool exec);
int bt_sim_mmap2(struct bt_pmu *pmu, pid_t pid, pid_t tid, uint64_t addr,
		 uint64_t len, uint64_t pgoff, uint32_t prot, uint32_t flags,
		 const char *filename);
int bt_sim_fork(struct bt_pmu *pmu, pid_t pid, pid_t ppid, pid_t tid,
		pid_t ptid);
int bt_sim_exit(struct bt_pmu *pmu, pid_t pid, pid_t ppid, pid_t tid,
		pid_t ptid);
/* A context switch on @cpu: out of @prev_tid into @next_tid. */
int bt_sim_switch(struct bt_pmu *pmu, int cpu, pid_t prev_pid,
		  pid_t prev_tid, pid_t next_pid, pid_t next_tid);

#endif /* BT_DS_SIM_H */
