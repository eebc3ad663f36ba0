// SPDX-License-Identifier: BSD-3-Clause
/*
 * perf.data -> bundle (btrail import). The records of the file become the
 * bt.* events the collector would have written for the same happenings,
 * emitted into a temporary per-CPU KMES session, and the bundle writer
 * makes the bundle of that session: one writer for every bundle, so an
 * imported trace reads (and decodes) exactly like a recorded one.
 *
 * Two passes over the records: the first finds the CPUs and sizes the
 * rings so that nothing is overwritten (an import must not lose data),
 * the second emits. Every ring gets bt.schema of a type before the first
 * event of it, as the collector's rings do.
 *
 * Times: every event carries the perf clock of its record (the
 * sample_id trailer's time; FORK/EXIT their own). The KMES timestamps are
 * those of the import, as for any ring: the recording's time is in the
 * events, and bt.clock gives the TSC conversion of the recording.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <btrail/bundle.h>
#include <btrail/errno.h>
#include <btrail/events.h>
#include <btrail/kmes.h>
#include <btrail/perfdata.h>

#include "common/log.h"
#include "common/opts.h"

/* The most CPU ids we give rings to; a record naming more is refused. */
#define IMP_MAX_CPUS		1024u
/* Bytes of trace per bt.pt event (a bundle packet holds several). */
#define IMP_PT_CHUNK		32768u
/* What one event costs in a ring beyond its variable part: the KMES
 * header with the type, the msgpack keys, the integers. */
#define IMP_EV_OVERHEAD		512u
/* The largest ring; an event may take half of one. */
#define IMP_CAP_MAX		(128u << 20)

struct imp {
	const char *path;
	struct bt_perfdata *pd;
	struct bt_kmes_session *s;
	struct bt_perfdata_import_opts o;
	struct bt_perfdata_import_stats st;
	uint32_t slots;
	uint32_t *schema_done;		/* per slot: bit per enum bt_event_id */
	uint64_t *last_time;		/* per slot: last perf time seen */
	unsigned char *buf;
	size_t cap;
	char *fix;			/* a STR made valid UTF-8 */
};

static const struct bt_event_type *evt(uint32_t id)
{
	return &bt_event_types(NULL)[id];
}

static int put(struct imp *im, uint32_t slot, uint32_t id, const void *p,
	       size_t len)
{
	const struct bt_event_type *t = evt(id);
	struct kmes_emit_entry e = {
		.event_type = t->name,
		.event_type_len = (uint16_t)strlen(t->name),
		.payload = p,
		.payload_len = (uint32_t)len,
	};
	int w = bt_kmes_session__emit_trusted(im->s, slot, NULL, &e, 1);

	if (w < 0)
		return w;
	if (w == 0) {
		/* Cannot happen with rings sized by the first pass. */
		pr_warn("import: %s: ring %u refused a %s event of %zu bytes",
			im->path, slot, t->name, len);
		return -EFBIG;
	}
	return 0;
}

static int put_schema(struct imp *im, uint32_t slot, uint32_t id)
{
	unsigned char b[1024];
	long n;
	int err;

	if (im->schema_done[slot] & (1u << id))
		return 0;
	n = bt_event_schema_encode(evt(id), b, sizeof(b));
	if (n < 0)
		return (int)n;
	err = put(im, slot, BT_EVID_SCHEMA, b, (size_t)n);
	if (!err)
		im->schema_done[slot] |= 1u << id;
	return err;
}

/* Replace what is not ASCII in STR fields: paths and names are bytes. */
static int fix_strs(struct imp *im, const struct bt_event_type *t,
		    struct bt_event_value *v)
{
	size_t total = 0, at = 0;

	for (uint32_t f = 0; f < t->nfields; f++)
		if (t->fields[f].kind == BT_FK_STR)
			total += v[f].len + 1;
	free(im->fix);
	im->fix = malloc(total + 1);
	if (!im->fix)
		return -ENOMEM;
	for (uint32_t f = 0; f < t->nfields; f++) {
		const unsigned char *s = v[f].p;
		char *d = im->fix + at;

		if (t->fields[f].kind != BT_FK_STR)
			continue;
		for (size_t i = 0; i < v[f].len; i++)
			d[i] = s[i] < 0x80 ? (char)s[i] : '?';
		v[f].p = d;
		at += v[f].len + 1;
	}
	return 0;
}

static int emit(struct imp *im, uint32_t slot, uint32_t id,
		struct bt_event_value *v)
{
	const struct bt_event_type *t = evt(id);
	size_t need = bt_event_encoded_size(t, v);
	long n;
	int err;

	if (need > im->cap) {
		unsigned char *b = realloc(im->buf, need);

		if (!b)
			return -ENOMEM;
		im->buf = b;
		im->cap = need;
	}
	n = bt_event_encode(t, v, im->buf, im->cap);
	if (n == -EINVAL) {
		err = fix_strs(im, t, v);
		if (err)
			return err;
		n = bt_event_encode(t, v, im->buf, im->cap);
	}
	if (n < 0) {
		pr_warn("import: %s: cannot encode %s: %s", im->path, t->name,
			strerror((int)-n));
		return (int)n;
	}
	err = put_schema(im, slot, BT_EVID_SCHEMA);
	if (!err)
		err = put_schema(im, slot, id);
	if (!err)
		err = put(im, slot, id, im->buf, (size_t)n);
	if (!err && id != BT_EVID_SCHEMA)
		im->st.events++;
	return err;
}

static void str(struct bt_event_value *v, const char *s)
{
	v->p = s;
	v->len = strlen(s);
}

/* ---- Which ring a record goes to ---------------------------------------- */

/*
 * The CPU of @r, or -1 where the record does not say (perf's own records,
 * kernel records without the CPU in their trailer, per-thread AUX).
 */
static int64_t rec_cpu(const struct bt_perf_record *r)
{
	if (r->type == BT_PERF_REC_AUXTRACE)
		return r->u.auxtrace.cpu == UINT32_MAX ? -1 :
		       (int64_t)r->u.auxtrace.cpu;
	if (r->has_sample_id && (r->sid.present & BT_PERF_SID_CPU))
		return r->sid.cpu;
	return -1;
}

static bool rec_wanted(uint32_t type)
{
	switch (type) {
	case BT_PERF_REC_MMAP:
	case BT_PERF_REC_MMAP2:
	case BT_PERF_REC_COMM:
	case BT_PERF_REC_FORK:
	case BT_PERF_REC_EXIT:
	case BT_PERF_REC_ITRACE_START:
	case BT_PERF_REC_SWITCH:
	case BT_PERF_REC_SWITCH_CPU_WIDE:
	case BT_PERF_REC_LOST:
	case BT_PERF_REC_LOST_SAMPLES:
	case BT_PERF_REC_AUX:
	case BT_PERF_REC_AUXTRACE:
		return true;
	default:
		return false;
	}
}

static uint64_t rec_time(const struct bt_perf_record *r)
{
	if (r->type == BT_PERF_REC_FORK || r->type == BT_PERF_REC_EXIT)
		return r->u.fork.time;
	if (r->has_sample_id && (r->sid.present & BT_PERF_SID_TIME))
		return r->sid.time;
	return 0;
}

static int32_t rec_tid(const struct bt_perf_record *r)
{
	if (r->has_sample_id && (r->sid.present & BT_PERF_SID_TID))
		return (int32_t)r->sid.tid;
	return -1;
}

/*
 * First pass: the highest CPU and the bytes each ring must hold. Ring
 * capacity is one for the session, so the largest need decides it.
 */
static int size_rings(struct imp *im, uint64_t *capacity)
{
	struct bt_perf_record r;
	uint64_t *need;
	int64_t max_cpu = 0;
	uint64_t most = 0;
	bool seen[IMP_MAX_CPUS] = { false };
	int ret;

	need = calloc(IMP_MAX_CPUS, sizeof(*need));
	if (!need)
		return -ENOMEM;
	bt_perfdata__rewind(im->pd);
	while ((ret = bt_perfdata__next(im->pd, &r)) == 1) {
		int64_t cpu = rec_cpu(&r);
		uint64_t n;

		if (!rec_wanted(r.type))
			continue;
		if (cpu >= (int64_t)IMP_MAX_CPUS) {
			pr_warn("perf.data: %s: offset %" PRIu64 ": record "
				"of CPU %" PRId64 " (at most %u CPUs are "
				"imported)", im->path, r.offset, cpu,
				IMP_MAX_CPUS);
			free(need);
			return -BT_ERRNO_FORMAT;
		}
		if (cpu < 0)
			cpu = 0;
		seen[cpu] = true;
		if (cpu > max_cpu)
			max_cpu = cpu;
		n = IMP_EV_OVERHEAD + r.size;
		if (r.type == BT_PERF_REC_AUXTRACE)
			n += r.payload_size + IMP_EV_OVERHEAD *
			     (r.payload_size / IMP_PT_CHUNK + 1);
		need[cpu] += n;
	}
	if (ret < 0) {
		free(need);
		return ret;
	}
	for (uint32_t c = 0; c <= max_cpu; c++) {
		if (seen[c])
			im->st.cpus++;
		if (need[c] > most)
			most = need[c];
	}
	free(need);
	/* schemas, the clock, and room so no ring ever laps */
	most = 2 * (most + 16 * 1024) + 64 * 1024;
	if (most > IMP_CAP_MAX) {
		pr_warn("import: %s: %" PRIu64 " bytes of events on one CPU: "
			"more than one ring holds (%u MiB)", im->path,
			most / 2, IMP_CAP_MAX >> 20);
		return -EFBIG;
	}
	*capacity = KMES_CAPACITY_MIN;
	while (*capacity < most)
		*capacity *= 2;
	im->slots = (uint32_t)max_cpu + 1;
	return 0;
}

/* ---- Records to events ---------------------------------------------------- */

/* The build-id of @file in the file's build-id table: by path, the
 * kernel's "[kernel.kallsyms]_text" map as "[kernel.kallsyms]". */
static const struct bt_perf_build_id *table_build_id(struct imp *im,
						     const char *file)
{
	static const char kernel[] = "[kernel.kallsyms]";
	size_t n = bt_perfdata__nr_build_ids(im->pd);
	bool is_kernel = !strncmp(file, kernel, sizeof(kernel) - 1);

	for (size_t i = 0; i < n; i++) {
		const struct bt_perf_build_id *b =
			bt_perfdata__build_id(im->pd, i);

		if (!strcmp(b->path, file) ||
		    (is_kernel && !strcmp(b->path, kernel)))
			return b;
	}
	return NULL;
}

static int ev_mmap(struct imp *im, uint32_t slot,
		   const struct bt_perf_record *r)
{
	struct bt_event_value v[BT_MMAP__N] = { 0 };
	const struct bt_perf_build_id *b;
	int err;

	v[BT_MMAP_PID].i = (int32_t)r->u.mmap.pid;
	v[BT_MMAP_TID].i = (int32_t)r->u.mmap.tid;
	v[BT_MMAP_TIME].u = rec_time(r);
	v[BT_MMAP_ADDR].u = r->u.mmap.addr;
	v[BT_MMAP_LEN].u = r->u.mmap.len;
	v[BT_MMAP_PGOFF].u = r->u.mmap.pgoff;
	if (r->type == BT_PERF_REC_MMAP2) {
		v[BT_MMAP_PROT].u = r->u.mmap.prot;
		v[BT_MMAP_FLAGS].u = r->u.mmap.flags;
		v[BT_MMAP_MAJ].u = r->u.mmap.maj;
		v[BT_MMAP_MIN].u = r->u.mmap.min;
		v[BT_MMAP_INO].u = r->u.mmap.ino;
	} else {
		/* MMAP is sent for executable maps (data maps: misc bit 13) */
		v[BT_MMAP_PROT].u = (r->misc & (1u << 13)) ? PROT_READ :
				    PROT_READ | PROT_EXEC;
	}
	if (r->u.mmap.build_id_size) {
		v[BT_MMAP_BUILD_ID].p = r->u.mmap.build_id;
		v[BT_MMAP_BUILD_ID].len = r->u.mmap.build_id_size;
	} else if ((b = table_build_id(im, r->u.mmap.filename))) {
		v[BT_MMAP_BUILD_ID].p = b->id;
		v[BT_MMAP_BUILD_ID].len = b->size;
	}
	str(&v[BT_MMAP_FILE], r->u.mmap.filename);
	err = emit(im, slot, BT_EVID_MMAP, v);
	if (!err) {
		im->st.mmaps++;
		if (v[BT_MMAP_BUILD_ID].len)
			im->st.build_ids++;
	}
	return err;
}

static int ev_task(struct imp *im, uint32_t slot,
		   const struct bt_perf_record *r)
{
	struct bt_event_value v[BT_TASK__N] = { 0 };

	v[BT_TASK_TIME].u = rec_time(r);
	if (r->type == BT_PERF_REC_ITRACE_START) {
		str(&v[BT_TASK_KIND], "itrace_start");
		v[BT_TASK_PID].i = (int32_t)r->u.itrace_start.pid;
		v[BT_TASK_TID].i = (int32_t)r->u.itrace_start.tid;
		v[BT_TASK_PPID].i = -1;
		v[BT_TASK_PTID].i = -1;
	} else {
		str(&v[BT_TASK_KIND], r->type == BT_PERF_REC_FORK ? "fork" :
							    "exit");
		v[BT_TASK_PID].i = (int32_t)r->u.fork.pid;
		v[BT_TASK_PPID].i = (int32_t)r->u.fork.ppid;
		v[BT_TASK_TID].i = (int32_t)r->u.fork.tid;
		v[BT_TASK_PTID].i = (int32_t)r->u.fork.ptid;
	}
	return emit(im, slot, BT_EVID_TASK, v);
}

static int ev_pt(struct imp *im, uint32_t slot, int64_t cpu,
		 const struct bt_perf_record *r)
{
	const unsigned char *p = r->payload;

	for (uint64_t at = 0; at < r->payload_size; at += IMP_PT_CHUNK) {
		struct bt_event_value v[BT_PT__N] = { 0 };
		uint64_t n = r->payload_size - at;
		int err;

		if (n > IMP_PT_CHUNK)
			n = IMP_PT_CHUNK;
		v[BT_PT_CPU].i = cpu;
		v[BT_PT_PID].i = -1;
		v[BT_PT_TID].i = (int32_t)r->u.auxtrace.tid;
		/* AUXTRACE has no time: when perf read it, after the AUX
		 * records of this CPU that announced the data. */
		v[BT_PT_TIME].u = im->last_time[slot];
		v[BT_PT_OFF].u = r->u.auxtrace.offset + at;
		v[BT_PT_DATA].p = p + at;
		v[BT_PT_DATA].len = (size_t)n;
		err = emit(im, slot, BT_EVID_PT, v);
		if (err)
			return err;
		im->st.pt_bytes += n;
		im->st.pt_chunks++;
	}
	return 0;
}

static int ev_record(struct imp *im, const struct bt_perf_record *r)
{
	struct bt_event_value v[BT_BUNDLE_MAX_FIELDS] = { { 0 } };
	int64_t cpu = rec_cpu(r);
	uint32_t slot = cpu < 0 ? 0 : (uint32_t)cpu;
	uint64_t time = rec_time(r);

	if (time && r->type != BT_PERF_REC_AUXTRACE)
		im->last_time[slot] = time;
	switch (r->type) {
	case BT_PERF_REC_MMAP:
	case BT_PERF_REC_MMAP2:
		return ev_mmap(im, slot, r);
	case BT_PERF_REC_COMM:
		v[BT_COMM_PID].i = (int32_t)r->u.comm.pid;
		v[BT_COMM_TID].i = (int32_t)r->u.comm.tid;
		v[BT_COMM_TIME].u = time;
		str(&v[BT_COMM_COMM], r->u.comm.comm);
		v[BT_COMM_EXEC].u = r->u.comm.exec;
		return emit(im, slot, BT_EVID_COMM, v);
	case BT_PERF_REC_FORK:
	case BT_PERF_REC_EXIT:
	case BT_PERF_REC_ITRACE_START:
		return ev_task(im, slot, r);
	case BT_PERF_REC_SWITCH:
	case BT_PERF_REC_SWITCH_CPU_WIDE:
		v[BT_SWITCH_CPU].i = cpu;
		v[BT_SWITCH_TIME].u = time;
		v[BT_SWITCH_OUT].u = r->u.sw.out;
		v[BT_SWITCH_PID].i = r->has_sample_id &&
				     (r->sid.present & BT_PERF_SID_TID) ?
				     (int32_t)r->sid.pid : -1;
		v[BT_SWITCH_TID].i = rec_tid(r);
		/* CPU-wide: the next task (switch out) or the previous one
		 * (switch in), as the kernel gives it */
		v[BT_SWITCH_NEXT_PID].i = r->type == BT_PERF_REC_SWITCH ? -1 :
			(int32_t)r->u.sw.next_prev_pid;
		v[BT_SWITCH_NEXT_TID].i = r->type == BT_PERF_REC_SWITCH ? -1 :
			(int32_t)r->u.sw.next_prev_tid;
		return emit(im, slot, BT_EVID_SWITCH, v);
	case BT_PERF_REC_LOST:
	case BT_PERF_REC_LOST_SAMPLES:
		v[BT_LOST_CPU].i = cpu;
		v[BT_LOST_TID].i = rec_tid(r);
		v[BT_LOST_TIME].u = time;
		str(&v[BT_LOST_WHAT], "data");
		v[BT_LOST_COUNT].u = r->type == BT_PERF_REC_LOST ?
				     r->u.lost.lost : r->u.lost_samples.lost;
		return emit(im, slot, BT_EVID_LOST, v);
	case BT_PERF_REC_AUX:
		v[BT_AUX_CPU].i = cpu;
		v[BT_AUX_TID].i = rec_tid(r);
		v[BT_AUX_TIME].u = time;
		v[BT_AUX_OFF].u = r->u.aux.aux_offset;
		v[BT_AUX_SIZE].u = r->u.aux.aux_size;
		v[BT_AUX_FLAGS].u = r->u.aux.flags;
		return emit(im, slot, BT_EVID_AUX, v);
	case BT_PERF_REC_AUXTRACE:
		return ev_pt(im, slot, cpu, r);
	default:
		return 0;
	}
}

/*
 * bt.clock of the recording: TIME_CONV (perf 4.x and later) or else the
 * intel_pt AUXTRACE_INFO, which carry the same conversion. The other
 * clocks of the event were not sampled by the recording: 0.
 */
static int ev_clock(struct imp *im)
{
	const struct bt_perf_time_conv *tc = bt_perfdata__time_conv(im->pd);
	const struct bt_perf_auxtrace_info *ai =
		bt_perfdata__auxtrace_info(im->pd);
	struct bt_event_value v[BT_CLOCK__N] = { 0 };
	uint64_t shift, mult;

	if (tc->present) {
		shift = tc->time_shift;
		mult = tc->time_mult;
		v[BT_CLOCK_TIME_ZERO].u = tc->time_zero;
		v[BT_CLOCK_TSC].u = tc->time_cycles;
	} else if (ai->present && ai->type == BT_PERF_AUXTRACE_INTEL_PT) {
		shift = ai->time_shift;
		mult = ai->time_mult;
		v[BT_CLOCK_TIME_ZERO].u = ai->time_zero;
	} else {
		return 0;
	}
	if (shift > 63 || mult > UINT32_MAX || !mult) {
		pr_warn("import: %s: time conversion mult %" PRIu64 " shift %"
			PRIu64 " is not usable; no bt.clock", im->path, mult,
			shift);
		return 0;
	}
	str(&v[BT_CLOCK_REASON], "start");
	/* perf_ns = (tsc * mult) >> shift: the TSC runs at 1e9 << shift
	 * / mult Hz. */
	v[BT_CLOCK_TSC_HZ].u = (uint64_t)((1e9 * (double)(1ull << shift)) /
					  (double)mult + 0.5);
	v[BT_CLOCK_TIME_MULT].u = mult;
	v[BT_CLOCK_TIME_SHIFT].u = shift;
	return emit(im, 0, BT_EVID_CLOCK, v);
}

static atomic_uint imp_seq;

int bt_perfdata_import(const char *path, const char *bundle_out,
		       const struct bt_perfdata_import_opts *opts)
{
	struct bt_kmes_session_opts so = { .sz = sizeof(so) };
	struct bt_bundle_write_opts bo = { .sz = sizeof(bo) };
	struct bt_perfdata_opts po = { .sz = sizeof(po) };
	struct imp im = { .path = path };
	struct bt_perf_record r;
	char name[96];
	const char *session;
	int err, ret = 0;

	if (!path || !bundle_out)
		return -EINVAL;
	err = bt_opts_copy(&im.o, sizeof(im.o), opts);
	if (err)
		return err;
	if (!access(bundle_out, F_OK)) {
		pr_warn("import: %s exists; give a new directory", bundle_out);
		return -EEXIST;
	}
	im.pd = bt_perfdata__open(path, &po);
	if (!im.pd)
		return errno ? -errno : -BT_ERRNO_FORMAT;

	err = size_rings(&im, &so.capacity);
	if (err)
		goto out;
	im.schema_done = calloc(im.slots, sizeof(*im.schema_done));
	im.last_time = calloc(im.slots, sizeof(*im.last_time));
	if (!im.schema_done || !im.last_time) {
		err = -ENOMEM;
		goto out;
	}
	if (im.o.session) {
		session = im.o.session;
	} else {
		snprintf(name, sizeof(name), "btrail-import-%ld-%u",
			 (long)getpid(), atomic_fetch_add(&imp_seq, 1));
		session = name;
	}
	so.slots = im.slots;
	so.kind = BT_KMES_RING_CPU;
	so.no_numa = true;	/* a staging area, read once right away */
	so.max_event_size = KMES_MAX_EVENT_SIZE_MAX;
	im.s = bt_kmes_session__create(session, &so);
	if (!im.s) {
		err = errno ? -errno : -EIO;
		pr_warn("import: cannot create the staging ring session %s: "
			"%s", session, bt_strerror(err));
		goto out;
	}

	err = ev_clock(&im);
	bt_perfdata__rewind(im.pd);
	while (!err && (ret = bt_perfdata__next(im.pd, &r)) == 1) {
		im.st.records++;
		err = ev_record(&im, &r);
	}
	if (!err && ret < 0)
		err = ret;
	bt_kmes_session__close(im.s);
	im.s = NULL;
	if (!err) {
		bo.big_endian = im.o.big_endian;
		bo.with_binaries = im.o.with_binaries;
		bo.progress = im.o.progress;
		bo.sysroot = im.o.sysroot;
		bo.machine_cpuid = bt_perfdata__features(im.pd)->cpuid;
		err = bt_bundle_write(session, bundle_out, &bo);
	}
	ret = bt_kmes_session__destroy(session, true);
	if (ret)
		pr_warn("import: cannot remove the staging ring session %s: "
			"%s", session, bt_strerror(ret));
	im.st.slots = im.slots;
	if (!err && im.o.stats)
		*im.o.stats = im.st;
out:
	free(im.fix);
	free(im.buf);
	free(im.schema_done);
	free(im.last_time);
	bt_perfdata__close(im.pd);
	return err;
}
