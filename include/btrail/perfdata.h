/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * perf.data reader: the files `perf record -e intel_pt//` writes, in
 * either of perf's two layouts.
 *
 * A seekable file starts with a 104-byte header naming its attr, data and
 * feature sections; a pipe-mode file starts with a 16-byte header and
 * carries everything (attrs, features, build-ids) as records in the one
 * stream. bt_perfdata__open() reads and validates the whole file once, so
 * that every later call works on input already known to be well formed:
 * a malformed file is refused there with BT_ERRNO_FORMAT and a message
 * naming the file, the byte offset and the problem.
 *
 * What comes out: the attrs and their ids, the features (build-ids per
 * path, hostname, OS release, CPU id, CPU counts), the AUXTRACE_INFO of
 * the trace (for intel_pt its private fields decoded), the time
 * conversion, typed records through an iterator, and the AUX trace of
 * each CPU (or, in per-thread mode, each mmap index) concatenated in file
 * order. See docs/perfdata.md for what is read and what is skipped.
 */
#ifndef BTRAIL_PERFDATA_H
#define BTRAIL_PERFDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <btrail/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Record types: the kernel's (1..) and perf's own (64..). */
enum bt_perf_rec_type {
	BT_PERF_REC_MMAP		= 1,
	BT_PERF_REC_LOST		= 2,
	BT_PERF_REC_COMM		= 3,
	BT_PERF_REC_EXIT		= 4,
	BT_PERF_REC_THROTTLE		= 5,
	BT_PERF_REC_UNTHROTTLE		= 6,
	BT_PERF_REC_FORK		= 7,
	BT_PERF_REC_READ		= 8,
	BT_PERF_REC_SAMPLE		= 9,
	BT_PERF_REC_MMAP2		= 10,
	BT_PERF_REC_AUX			= 11,
	BT_PERF_REC_ITRACE_START	= 12,
	BT_PERF_REC_LOST_SAMPLES	= 13,
	BT_PERF_REC_SWITCH		= 14,
	BT_PERF_REC_SWITCH_CPU_WIDE	= 15,
	BT_PERF_REC_HEADER_ATTR		= 64,
	BT_PERF_REC_HEADER_EVENT_TYPE	= 65,
	BT_PERF_REC_HEADER_TRACING_DATA	= 66,
	BT_PERF_REC_HEADER_BUILD_ID	= 67,
	BT_PERF_REC_FINISHED_ROUND	= 68,
	BT_PERF_REC_ID_INDEX		= 69,
	BT_PERF_REC_AUXTRACE_INFO	= 70,
	BT_PERF_REC_AUXTRACE		= 71,
	BT_PERF_REC_AUXTRACE_ERROR	= 72,
	BT_PERF_REC_THREAD_MAP		= 73,
	BT_PERF_REC_CPU_MAP		= 74,
	BT_PERF_REC_STAT_CONFIG		= 75,
	BT_PERF_REC_STAT		= 76,
	BT_PERF_REC_STAT_ROUND		= 77,
	BT_PERF_REC_EVENT_UPDATE	= 78,
	BT_PERF_REC_TIME_CONV		= 79,
	BT_PERF_REC_HEADER_FEATURE	= 80,
	BT_PERF_REC_COMPRESSED		= 81,
	BT_PERF_REC_FINISHED_INIT	= 82,
};

/* Feature bits of a seekable file (and feat_id of HEADER_FEATURE). */
enum bt_perf_feature {
	BT_PERF_FEAT_TRACING_DATA	= 1,
	BT_PERF_FEAT_BUILD_ID		= 2,
	BT_PERF_FEAT_HOSTNAME		= 3,
	BT_PERF_FEAT_OSRELEASE		= 4,
	BT_PERF_FEAT_VERSION		= 5,
	BT_PERF_FEAT_ARCH		= 6,
	BT_PERF_FEAT_NRCPUS		= 7,
	BT_PERF_FEAT_CPUDESC		= 8,
	BT_PERF_FEAT_CPUID		= 9,
	BT_PERF_FEAT_AUXTRACE		= 18,
	BT_PERF_FEAT_MAX		= 256,
};

/* AUXTRACE_INFO types (perf's enum auxtrace_type). */
enum bt_perf_auxtrace_type {
	BT_PERF_AUXTRACE_UNKNOWN	= 0,
	BT_PERF_AUXTRACE_INTEL_PT	= 1,
	BT_PERF_AUXTRACE_INTEL_BTS	= 2,
};

/* Record misc bits we interpret. */
#define BT_PERF_MISC_CPUMODE_MASK	0x7u
#define BT_PERF_MISC_KERNEL		1u
#define BT_PERF_MISC_USER		2u
#define BT_PERF_MISC_COMM_EXEC		(1u << 13)
#define BT_PERF_MISC_SWITCH_OUT		(1u << 13)
#define BT_PERF_MISC_SWITCH_PREEMPT	(1u << 14)
#define BT_PERF_MISC_MMAP_BUILD_ID	(1u << 14)

/* The sample_id_all trailer, the fields the attr's sample_type asks for. */
struct bt_perf_sample_id {
	uint32_t present;	/* BT_PERF_SID_* bits of the fields read */
	uint32_t pid, tid;
	uint64_t time;
	uint64_t id;
	uint64_t stream_id;
	uint32_t cpu;
};
#define BT_PERF_SID_TID		(1u << 0)
#define BT_PERF_SID_TIME	(1u << 1)
#define BT_PERF_SID_ID		(1u << 2)
#define BT_PERF_SID_STREAM_ID	(1u << 3)
#define BT_PERF_SID_CPU		(1u << 4)

/* One event of the file: its perf_event_attr and the ids that map to it. */
struct bt_perf_attr {
	uint32_t type;
	uint32_t size;			/* attr.size as written */
	uint64_t config;
	uint64_t sample_type;
	uint64_t read_format;
	uint64_t flags;			/* the bitfield word (disabled, ...) */
	bool sample_id_all;
	const void *raw;		/* the attr bytes as in the file */
	size_t raw_size;
	const uint64_t *ids;		/* nr_ids ids (host byte order) */
	size_t nr_ids;
};

/* One build-id (HEADER_BUILD_ID feature or pipe-mode record). */
struct bt_perf_build_id {
	uint32_t pid;
	uint16_t misc;			/* cpumode: kernel, user, guest */
	uint8_t size;			/* bytes of id[] used, at most 20 */
	uint8_t id[20];
	const char *path;		/* NUL-terminated, in the reader */
};

/*
 * AUXTRACE_INFO. For intel_pt the private words are decoded into the
 * named fields below (0 where the file has fewer words); nr_priv and
 * priv give them raw for other types.
 */
struct bt_perf_auxtrace_info {
	bool present;
	uint32_t type;			/* enum bt_perf_auxtrace_type */
	uint32_t nr_priv;
	const uint64_t *priv;		/* nr_priv words, host byte order */
	/* intel_pt */
	uint64_t pmu_type;
	uint64_t time_shift, time_mult, time_zero;
	uint64_t cap_user_time_zero;
	uint64_t tsc_bit, noretcomp_bit;
	uint64_t have_sched_switch;
	uint64_t snapshot_mode;
	uint64_t per_cpu_mmaps;
	uint64_t mtc_bit, mtc_freq_bits;
	uint64_t tsc_ctc_ratio_n, tsc_ctc_ratio_d;
	uint64_t cyc_bit;
	uint64_t max_nonturbo_ratio;
	uint64_t filter_str_len;
	const char *filter;		/* NULL, or the address filter string */
};

/* TIME_CONV: perf time to TSC and back. */
struct bt_perf_time_conv {
	bool present;
	uint64_t time_shift, time_mult, time_zero;
	uint64_t time_cycles, time_mask;	/* 0 in older files */
	bool cap_user_time_zero, cap_user_time_short;
};

/* Header features the reader keeps (NULL/0 where the file has none). */
struct bt_perf_features {
	const char *hostname;
	const char *osrelease;
	const char *version;
	const char *arch;
	const char *cpudesc;
	const char *cpuid;
	uint32_t nr_cpus_avail, nr_cpus_online;
	uint64_t present[4];		/* feature bits seen */
};

/* A record as the iterator gives it. Pointers point into the reader. */
struct bt_perf_record {
	uint32_t type;			/* enum bt_perf_rec_type, or unknown */
	uint16_t misc;
	uint16_t size;			/* header.size */
	uint64_t offset;		/* its byte offset in the file */
	const void *raw;		/* the header.size bytes */
	/* bytes that follow the record (AUXTRACE data, TRACING_DATA) */
	const void *payload;
	uint64_t payload_size;
	bool has_sample_id;
	struct bt_perf_sample_id sid;
	union {
		struct {	/* MMAP, MMAP2 */
			uint32_t pid, tid;
			uint64_t addr, len, pgoff;
			uint32_t maj, min;	/* MMAP2 without build-id */
			uint64_t ino, ino_generation;
			uint8_t build_id_size;	/* MMAP2 with build-id */
			uint8_t build_id[20];
			uint32_t prot, flags;	/* MMAP2 */
			const char *filename;	/* NUL-terminated */
		} mmap;
		struct {	/* COMM */
			uint32_t pid, tid;
			const char *comm;	/* NUL-terminated */
			bool exec;
		} comm;
		struct {	/* FORK, EXIT */
			uint32_t pid, ppid, tid, ptid;
			uint64_t time;
		} fork;
		struct {	/* LOST */
			uint64_t id, lost;
		} lost;
		struct {	/* LOST_SAMPLES */
			uint64_t lost;
		} lost_samples;
		struct {	/* AUX */
			uint64_t aux_offset, aux_size, flags;
		} aux;
		struct {	/* ITRACE_START */
			uint32_t pid, tid;
		} itrace_start;
		struct {	/* SWITCH, SWITCH_CPU_WIDE */
			bool out, preempt;
			uint32_t next_prev_pid, next_prev_tid;	/* CPU_WIDE */
		} sw;
		struct {	/* AUXTRACE */
			uint64_t size, offset, reference;
			uint32_t idx, tid, cpu;
		} auxtrace;
		struct {	/* HEADER_FEATURE */
			uint64_t feat_id;
		} feature;
		struct bt_perf_build_id build_id;	/* HEADER_BUILD_ID */
		struct {	/* HEADER_ATTR */
			uint32_t index;	/* into bt_perfdata__attr() */
		} attr;
	} u;
};

struct bt_perfdata;	/* opaque */

/* Options for bt_perfdata__open*(). Set .sz = sizeof; may be NULL. */
struct bt_perfdata_opts {
	size_t sz;
	/* __open_mem: the name its messages give the input (default
	 * "<memory>"); __open uses the path. */
	const char *name;
};
#define bt_perfdata_opts__last_field name

/*
 * bt_perfdata__open() - read and validate perf.data file @path ("-" is
 * standard input; a pipe works, as perf's pipe mode is a format, not a
 * transport).
 *
 * The whole file is read into memory and checked: header, sections,
 * attrs, features, every record's size and fields. The caller frees the
 * result with bt_perfdata__close().
 *
 * Returns the reader, or NULL with errno:
 *   BT_ERRNO_FORMAT  not a perf.data file, or malformed (the log names the
 *                    file, the byte offset and the problem)
 *   EINVAL           bad @opts
 *   ENOENT, EACCES, ENOMEM, ...  as open(2), read(2), malloc(3)
 */
BT_API struct bt_perfdata *
bt_perfdata__open(const char *path, const struct bt_perfdata_opts *opts);

/*
 * bt_perfdata__open_mem() - the same on @size bytes at @buf, which are
 * copied. Errors as for bt_perfdata__open().
 */
BT_API struct bt_perfdata *
bt_perfdata__open_mem(const void *buf, size_t size,
		      const struct bt_perfdata_opts *opts);

/* bt_perfdata__close() - free @pd. NULL is a no-op. */
BT_API void bt_perfdata__close(struct bt_perfdata *pd);

/* bt_perfdata__is_pipe() - whether @pd is in pipe mode. */
BT_API bool bt_perfdata__is_pipe(const struct bt_perfdata *pd);

/* bt_perfdata__nr_attrs() / __attr() - the attrs, in file order. */
BT_API size_t bt_perfdata__nr_attrs(const struct bt_perfdata *pd);
BT_API const struct bt_perf_attr *
bt_perfdata__attr(const struct bt_perfdata *pd, size_t i);

/* bt_perfdata__nr_build_ids() / __build_id() - in file order. */
BT_API size_t bt_perfdata__nr_build_ids(const struct bt_perfdata *pd);
BT_API const struct bt_perf_build_id *
bt_perfdata__build_id(const struct bt_perfdata *pd, size_t i);

BT_API const struct bt_perf_features *
bt_perfdata__features(const struct bt_perfdata *pd);
BT_API const struct bt_perf_auxtrace_info *
bt_perfdata__auxtrace_info(const struct bt_perfdata *pd);
BT_API const struct bt_perf_time_conv *
bt_perfdata__time_conv(const struct bt_perfdata *pd);

/*
 * bt_perfdata__next() - the next record of the data stream into @rec.
 *
 * Starts at the first record; bt_perfdata__rewind() starts over. Records
 * of types the reader does not know are given with only the common fields
 * (type, misc, size, offset, raw) set.
 *
 * Returns 1 with @rec filled, 0 at the end, -EINVAL for NULL arguments.
 * (The stream was validated at open; should a record fail now, the
 * error is logged and returned, and the iteration ends.)
 */
BT_API int bt_perfdata__next(struct bt_perfdata *pd,
			     struct bt_perf_record *rec);
BT_API void bt_perfdata__rewind(struct bt_perfdata *pd);

/*
 * One AUX trace stream: the AUXTRACE records of one (cpu, idx) pair.
 * With per-CPU mmaps that is one CPU; in per-thread mode, cpu is
 * UINT32_MAX and idx tells the streams apart.
 */
struct bt_perf_aux_stream {
	uint32_t cpu;
	uint32_t idx;
	uint32_t tid;		/* of the first record */
	uint32_t nr_records;
	uint64_t size;		/* total bytes */
};

/*
 * bt_perfdata__nr_aux_streams() / __aux_stream() - the streams, in order
 * of their first AUXTRACE record.
 */
BT_API size_t bt_perfdata__nr_aux_streams(const struct bt_perfdata *pd);
BT_API const struct bt_perf_aux_stream *
bt_perfdata__aux_stream(const struct bt_perfdata *pd, size_t i);

/*
 * bt_perfdata__aux_read() - the bytes of stream @i, every AUXTRACE
 * record's data concatenated in file order, into a malloc'd buffer the
 * caller frees. *@size gets its length.
 *
 * Returns 0, -EINVAL for a bad argument or index, -ENOMEM.
 */
BT_API int bt_perfdata__aux_read(const struct bt_perfdata *pd, size_t i,
				 void **buf, size_t *size);

/*
 * bt_perfdata__aux_cpu() - the index of the stream of @cpu, or -ENOENT.
 */
BT_API int bt_perfdata__aux_cpu(const struct bt_perfdata *pd, uint32_t cpu);

/* ---- Import: perf.data -> bundle (src/decoder/import.c) ---------------- */

/* What bt_perfdata_import() did. */
struct bt_perfdata_import_stats {
	uint64_t records;	/* records of the file read */
	uint64_t events;	/* bt.* events written (bt.schema not counted) */
	uint64_t pt_bytes;	/* bytes of trace, in bt.pt chunks */
	uint64_t pt_chunks;
	uint64_t mmaps;		/* bt.mmap events */
	uint64_t build_ids;	/* of which with a build-id */
	uint32_t slots;		/* rings: one per CPU id up to the highest */
	uint32_t cpus;		/* CPUs the file has records or trace of */
};

/* Options for bt_perfdata_import(). Set .sz = sizeof; may be NULL. */
struct bt_perfdata_import_opts {
	size_t sz;
	bool big_endian;	/* as struct bt_bundle_write_opts */
	bool with_binaries;
	const char *sysroot;
	bool progress;
	/* the temporary KMES session's name; NULL: btrail-import-<pid>-<n> */
	const char *session;
	struct bt_perfdata_import_stats *stats;	/* filled when not NULL */
};
#define bt_perfdata_import_opts__last_field stats

/*
 * bt_perfdata_import() - turn perf.data file @path into bundle directory
 * @bundle_out (which must not exist).
 *
 * Every record becomes the bt.* event that says the same (MMAP/MMAP2 ->
 * bt.mmap, with the build-id of the file's build-id table when the record
 * has none; COMM -> bt.comm; FORK/EXIT/ITRACE_START -> bt.task; SWITCH
 * -> bt.switch; LOST -> bt.lost; AUX -> bt.aux; the AUXTRACE data ->
 * bt.pt chunks at their AUX offsets; TIME_CONV or AUXTRACE_INFO ->
 * bt.clock), emitted into a temporary per-CPU KMES session (slot = the
 * record's CPU), which bt_bundle_write() turns into the bundle with the
 * machine of the file's CPUID feature; the session is then removed.
 * See docs/btrail-import.1.
 *
 * Returns 0, or -BT_ERRNO_FORMAT (malformed perf.data: the log names the
 * file, the offset and the problem), -EEXIST (@bundle_out exists),
 * -EFBIG (over about 64 MiB of events on one CPU), -EINVAL,
 * -ENOMEM, or the errors of the session and of bt_bundle_write().
 */
BT_API int bt_perfdata_import(const char *path, const char *bundle_out,
			      const struct bt_perfdata_import_opts *opts);

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_PERFDATA_H */
