/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Trace sources and the DS-area allocator.
 *
 * Facilities are the kinds of branch trace btrail can take (Intel PT, BTS,
 * PEBS, LBR, and the software facilities step and pt-emu). Backends play
 * the kernel's part behind one seam, struct bt_pmu_ops: "perf" is the real
 * perf_event_open(2) interface, "sim" a faithful model of it (the
 * perf_event_mmap_page, data and AUX rings, the records the kernel writes,
 * its exclusivity rules and mlock accounting, DS management areas and
 * ToPA output tables) that the software facilities write into as the
 * hardware would. A consumer cannot tell sim from perf except through
 * caps.
 *
 * The allocator (struct bt_ds) owns the hardware sessions the kernel
 * allows and multiplexes tracers over them, with exact byte accounting
 * against each tracer's budget; docs/allocator.md states the policy.
 *
 * Errors: negative errno or enum bt_errno (<btrail/errno.h>); pointer
 * constructors return NULL with errno set.
 */
#ifndef BTRAIL_DS_H
#define BTRAIL_DS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/perf_event.h>

#include <btrail/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Facilities ---------------------------------------------------------- */

enum bt_facility {
	BT_FAC_PT = 0,		/* intel_pt PMU: packets in the AUX area */
	BT_FAC_BTS,		/* intel_bts PMU: 24-byte records in AUX */
	BT_FAC_PEBS,		/* precise_ip samples of a chosen event */
	BT_FAC_LBR,		/* PERF_SAMPLE_BRANCH_STACK samples */
	BT_FAC_STEP,		/* ptrace single-step -> BTS records (sim) */
	BT_FAC_PTEMU,		/* ptrace single-step -> PT packets (sim) */
	BT_FAC__COUNT,
};

/* "pt", "bts", "pebs", "lbr", "step", "pt-emu"; NULL when out of range. */
BT_API const char *bt_facility_name(uint32_t facility);
/* The facility called @name, or -EINVAL. */
BT_API int bt_facility_parse(const char *name);
/* True for facilities the kernel allows once per context (PT, BTS, LBR). */
BT_API bool bt_facility_exclusive(uint32_t facility);

/* ---- Capabilities ------------------------------------------------------ */

struct bt_cap {
	bool present;		/* usable by this process now */
	char reason[240];	/* why not (or what it is), one line, no period */
	char holder[64];	/* "pid 1234 (perf)" when EBUSY names one */
};

struct bt_caps_opts {
	size_t sz;
	const char *sysfs;	/* default "/sys"; tests pass a fake tree */
	const char *procfs;	/* default "/proc" */
	bool no_open;		/* do not try perf_event_open to confirm */
};
#define bt_caps_opts__last_field no_open

/*
 * bt_caps_probe() - what this machine offers, per facility, and why not:
 * no such PMU (and the CPU vendor/model), running in a VM (the hypervisor
 * CPUID bit), page-table isolation for intel_bts, perf_event_paranoid,
 * a missing hardware PMU, or the PMU held by another process (EBUSY,
 * naming it where /proc shows who). step and pt-emu are present wherever
 * ptrace works. @caps has BT_FAC__COUNT entries. Returns 0 or -EINVAL.
 */
BT_API int bt_caps_probe(struct bt_cap *caps, const struct bt_caps_opts *opts);

/* ---- Targets and configuration ---------------------------------------- */

enum bt_target_kind {
	BT_TARGET_TASK = 0,	/* id: a thread id */
	BT_TARGET_CPU = 1,	/* id: a CPU */
	BT_TARGET_ALL = 2,	/* every CPU (the allocator opens one per CPU) */
};

struct bt_target {
	uint32_t kind;
	int32_t id;
};

enum bt_trace_mode {
	BT_MODE_STREAM = 0,	/* full trace: the consumer frees AUX space */
	BT_MODE_SNAPSHOT = 1,	/* flight recorder: AUX read-only, overwrite */
};

/* Facility configuration; starts with its size (STYLE rule 16). */
struct bt_trace_config {
	size_t sz;
	bool user;		/* trace user space (default when both false) */
	bool kernel;		/* trace the kernel */
	/* PT (where the PMU's caps allow; ignored elsewhere) */
	bool tsc;
	bool mtc;
	uint32_t mtc_period;	/* 0..15, encoded as the PMU's format */
	bool cyc;
	uint32_t cyc_thresh;
	bool noretcomp;
	bool no_branch;		/* branch=0: only timing packets */
	uint32_t psb_period;
	/* Address filter in perf's syntax ("filter main @ /bin/prog"). */
	const char *filter;
	/* PEBS: the event (PERF_TYPE_RAW config) and its sample period */
	uint64_t pebs_config;
	uint64_t period;
	/* LBR: PERF_SAMPLE_BRANCH_* filter; 0 = any user branch */
	uint64_t branch_sample_type;
};
#define bt_trace_config__last_field branch_sample_type

/* ---- The PMU backend seam --------------------------------------------- */

struct bt_pmu;		/* a backend instance ("perf" or "sim") */
struct bt_pmu_event;	/* one opened event */

struct bt_pmu_open_args {
	size_t sz;
	uint32_t facility;	/* enum bt_facility; ignored with sideband */
	struct bt_target target; /* TASK or CPU (not ALL) */
	const struct bt_trace_config *config; /* may be NULL: defaults */
	bool sideband;		/* a software dummy event: MMAP2, COMM, FORK,
				   EXIT, SWITCH, ITRACE_START records only */
	uid_t uid;		/* whose mlock budget the mapping counts in */
	bool enable_on_exec;	/* TASK: also start at the task's next exec
				   (perf's enable_on_exec), as for a forked
				   workload; enable() still starts it */
};
#define bt_pmu_open_args__last_field enable_on_exec

/* What bt_pmu_ops.map gives back; valid until unmap or close. */
struct bt_pmu_buffers {
	struct perf_event_mmap_page *page;
	unsigned char *data;	/* data ring (records), data_size bytes */
	uint64_t data_size;
	unsigned char *aux;	/* AUX area, aux_size bytes, or NULL */
	uint64_t aux_size;
	bool aux_overwrite;	/* snapshot mode: mapped read-only */
	uint64_t mapped;	/* bytes of pages mapped (what is charged) */
};

/*
 * The kernel's side, as a table of functions (STYLE rule 24). Both
 * backends implement every member; all return 0 or a negative errno with
 * the kernel's meaning (EBUSY for an exclusive facility already in use in
 * that context, ENOENT/EOPNOTSUPP for a missing PMU, EACCES/EPERM for
 * paranoia or mlock limits, EINVAL for a bad size).
 */
struct bt_pmu_ops {
	const char *name;	/* "perf" or "sim" */
	int (*open)(struct bt_pmu *pmu, const struct bt_pmu_open_args *args,
		    struct bt_pmu_event **ev);
	/*
	 * Map 1 + data_pages of data ring and, for AUX facilities, an AUX
	 * area of @aux_bytes (both powers of two in pages), read-only and
	 * overwriting when @overwrite (snapshot mode).
	 */
	int (*map)(struct bt_pmu *pmu, struct bt_pmu_event *ev,
		   uint64_t data_bytes, uint64_t aux_bytes, bool overwrite,
		   struct bt_pmu_buffers *out);
	int (*unmap)(struct bt_pmu *pmu, struct bt_pmu_event *ev);
	int (*enable)(struct bt_pmu *pmu, struct bt_pmu_event *ev, bool on);
	int (*set_filter)(struct bt_pmu *pmu, struct bt_pmu_event *ev,
			  const char *filter);
	/* A pollable fd that becomes readable on wakeups; -1 if none. */
	int (*fd)(struct bt_pmu *pmu, struct bt_pmu_event *ev);
	void (*close)(struct bt_pmu *pmu, struct bt_pmu_event *ev);
};

/* The table of @pmu; borrowed, static. */
BT_API const struct bt_pmu_ops *bt_pmu__ops(const struct bt_pmu *pmu);

struct bt_perf_opts {
	size_t sz;
	const char *sysfs;	/* default "/sys" */
};
#define bt_perf_opts__last_field sysfs

/* The real kernel interface. NULL with errno EINVAL (@opts) or ENOMEM. */
BT_API struct bt_pmu *bt_pmu__new_perf(const struct bt_perf_opts *opts);

struct bt_sim_opts {
	size_t sz;
	uint64_t mlock_kb;	/* perf_event_mlock_kb per user; 0: 516 */
	uint64_t rlimit_memlock;/* RLIMIT_MEMLOCK past it; 0: this process's */
	uint32_t nr_cpus;	/* CPUs of the model; 0: this machine's */
	bool cap_ipc_lock;	/* as if CAP_IPC_LOCK: no mlock limit */
	uint64_t tsc_hz;	/* the model's TSC frequency; 0: 2 GHz */
};
#define bt_sim_opts__last_field tsc_hz

/* The model of the kernel's side. NULL with errno. */
BT_API struct bt_pmu *bt_pmu__new_sim(const struct bt_sim_opts *opts);

/* NULL is a no-op; every event must be closed first. */
BT_API void bt_pmu__free(struct bt_pmu *pmu);

/* ---- The allocator ------------------------------------------------------ */

struct bt_ds;		/* the allocator over one backend */
struct bt_tracer;	/* a client: uid, pid, name, budget */
struct bt_ds_view;	/* a tracer's handle on a hardware session */

enum bt_ds_notice_kind {
	BT_DS_NOTICE_OWNER = 1,	/* ownership (and charge) passed to @tracer */
	BT_DS_NOTICE_RESIZE,	/* buffer shrunk to @bytes for the new owner */
	BT_DS_NOTICE_REVOKE,	/* nobody could pay the minimum: session ended */
};

struct bt_ds_notice {
	uint32_t kind;
	const struct bt_ds_view *view;	/* the view told */
	uint64_t bytes;			/* RESIZE: the new AUX size */
	pid_t owner_pid;		/* OWNER: the new owner */
};

typedef void (*bt_ds_notice_fn)(void *ctx, const struct bt_ds_notice *n);

struct bt_ds_opts {
	size_t sz;
	bt_ds_notice_fn notice;	/* called for every view concerned */
	void *notice_ctx;
	uint64_t min_aux_bytes;	/* below this a session ends; 0: 4 pages */
	uint32_t nr_cpus;	/* CPUs 0..nr_cpus-1 that BT_TARGET_ALL
				   expands to; 0: this machine's online CPUs
				   (give a sim backend's opts.nr_cpus) */
};
#define bt_ds_opts__last_field nr_cpus

/* Over @pmu (borrowed; must outlive the allocator). NULL with errno. */
BT_API struct bt_ds *bt_ds__new(struct bt_pmu *pmu,
				const struct bt_ds_opts *opts);
/* Releases every view of every tracer; NULL is a no-op. */
BT_API void bt_ds__free(struct bt_ds *ds);

struct bt_tracer_opts {
	size_t sz;
	uid_t uid;
	pid_t pid;
	const char *name;	/* copied */
	uint64_t budget;	/* bytes; 0: its RLIMIT_MEMLOCK */
	bool unlimited;		/* RLIM_INFINITY or CAP_IPC_LOCK */
};
#define bt_tracer_opts__last_field unlimited

/* A new client of @ds. NULL with errno (EINVAL, ENOMEM). */
BT_API struct bt_tracer *bt_ds__join(struct bt_ds *ds,
				     const struct bt_tracer_opts *opts);
/* Release everything @t holds (ownership passes on) and free it. */
BT_API void bt_tracer__leave(struct bt_tracer *t);
/* Bytes charged to @t now (pages actually mapped that it pays for). */
BT_API uint64_t bt_tracer__charged(const struct bt_tracer *t);
BT_API uint64_t bt_tracer__budget(const struct bt_tracer *t);

struct bt_ds_request {
	size_t sz;
	struct bt_target target;
	uint32_t facility;
	const struct bt_trace_config *config;	/* copied; NULL: defaults */
	uint64_t aux_bytes;	/* AUX (or sample data) size, power of 2 */
	uint64_t data_bytes;	/* data ring; 0: 64 KiB */
	uint32_t mode;		/* enum bt_trace_mode */
	/* Out, on -EBUSY: who holds the incompatible session. */
	pid_t busy_pid;
	char busy_name[64];
};
#define bt_ds_request__last_field busy_name

/*
 * bt_tracer__request() - a view on a hardware session for @req: a new
 * session (@t owns it and is charged), or an existing compatible one
 * (shared; @t pays only for its view), or, for a task on a CPU that has a
 * per-CPU session, that session filtered by the task's context switches.
 *
 * Returns 0 with *@view, or:
 *   -EINVAL  bad request (size not a power of two, unknown facility, ...)
 *   -EBUSY   an incompatible session holds the hardware; @req->busy_pid
 *            and busy_name name its owner
 *   -ENOMEM  @t's budget cannot pay (nothing was changed)
 *   or what the backend answered (-EACCES, -EPERM, -ENOENT, ...)
 */
BT_API int bt_tracer__request(struct bt_tracer *t, struct bt_ds_request *req,
			      struct bt_ds_view **view);

/* Release @v; ownership of its session may pass on. NULL is a no-op. */
BT_API void bt_ds_view__release(struct bt_ds_view *v);

/*
 * bt_ds_view__resize() - ask for a new AUX size for @v's session (its
 * owner only). Keeps the newest data that fits. -EPERM for a sharer,
 * -ENOMEM over budget, -EINVAL for a bad size or a view made of parts
 * (resize a part), -ENODEV when the session was revoked.
 */
BT_API int bt_ds_view__resize(struct bt_ds_view *v, uint64_t aux_bytes);

/* The session's buffers; borrowed, valid until the next notice. */
BT_API const struct bt_pmu_buffers *bt_ds_view__buffers(const struct bt_ds_view *v);
/* True when @v reads a per-CPU session filtered to its task. */
BT_API bool bt_ds_view__filtered(const struct bt_ds_view *v);
/* True when the session has ended (REVOKE): the view reads nothing more. */
BT_API bool bt_ds_view__revoked(const struct bt_ds_view *v);

/*
 * Views made of parts: a BT_TARGET_ALL view has one part per CPU (part i
 * is CPU i), a filtered task view one per per-CPU session it reads. Each
 * part is a view on one session (buffers, notices, resize by its owner);
 * the whole has no buffers of its own. bt_ds_view__nr_parts() is 0 for a
 * view on one session. A part is borrowed: valid until its whole is
 * released, and bt_ds_view__release() on a part does nothing.
 */
BT_API uint32_t bt_ds_view__nr_parts(const struct bt_ds_view *v);
/* Part @i of @v, or NULL (errno EINVAL) when @v has no part @i. */
BT_API struct bt_ds_view *bt_ds_view__part(const struct bt_ds_view *v,
					   uint32_t i);
/*
 * What @v reads: its session's target (TASK or CPU) for a view on one
 * session, the requested target for a whole; {0, -1} for NULL.
 */
BT_API struct bt_target bt_ds_view__target(const struct bt_ds_view *v);
/*
 * The backend's event behind @v's session, for the backend's own calls
 * (bt_pmu_ops.fd to poll for wakeups; a sim event's hardware side);
 * borrowed, valid until the next notice to @v. NULL for a whole or a
 * revoked view. Enabling, mapping or closing it is the allocator's.
 */
BT_API struct bt_pmu_event *bt_ds_view__event(const struct bt_ds_view *v);

/* Bytes mapped by every session of @ds, for the accounting invariant. */
BT_API uint64_t bt_ds__mapped(const struct bt_ds *ds);

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_DS_H */
