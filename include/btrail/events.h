/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The bt.* events: what the collector writes into KMES rings, what a
 * bundle's CTF streams hold, and what the decoder reads back.
 *
 * Every event's payload is one msgpack map whose keys are the field names
 * of its type, in the order of the type's table below. Writers write
 * every field, in that order; readers look fields up by name, ignore keys
 * they do not know (a newer writer) and treat a missing field as an
 * error. Dense records (branches, LBR entries, registers) are packed as
 * a msgpack bin of fixed-size little-endian records whose layout is a
 * record table, so that a batch of a thousand branches costs one header
 * and one copy; CTF sees them as a sequence of structures with typed
 * integer fields.
 *
 * bt.schema describes one type (its fields and their kinds) and is
 * emitted on a ring before the first event of that type, so a ring is
 * self-describing (seed 002); the table here is the reference the schema
 * events are made from.
 *
 * Kinds of fields:
 *   U64/I64/U32/I32  msgpack integers (a reader accepts any integer
 *                    encoding whose value fits)
 *   BOOL             msgpack bool
 *   STR              msgpack str (UTF-8)
 *   BYTES            msgpack bin (raw bytes, e.g. PT packets)
 *   RECS             msgpack bin of N records of rec_size bytes each,
 *                    every record's fields U64 little-endian, in the order
 *                    of the field's record table (N = len / rec_size; a
 *                    length that is not a multiple is an error)
 * Addresses are U64 marked BT_EF_ADDR (shown in hex).
 */
#ifndef BTRAIL_EVENTS_H
#define BTRAIL_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <btrail/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Type strings. */
#define BT_EV_SCHEMA	"bt.schema"
#define BT_EV_CLOCK	"bt.clock"
#define BT_EV_BRANCH	"bt.branch"
#define BT_EV_PT	"bt.pt"
#define BT_EV_PEBS	"bt.pebs"
#define BT_EV_LBR	"bt.lbr"
#define BT_EV_MMAP	"bt.mmap"
#define BT_EV_COMM	"bt.comm"
#define BT_EV_TASK	"bt.task"
#define BT_EV_SWITCH	"bt.switch"
#define BT_EV_LOST	"bt.lost"
#define BT_EV_AUX	"bt.aux"
#define BT_EV_TRIGGER	"bt.trigger"
#define BT_EV_NOTICE	"bt.notice"

/* Event type ids: indexes into bt_event_types(); stable, never reused. */
enum bt_event_id {
	BT_EVID_SCHEMA = 0,
	BT_EVID_CLOCK,
	BT_EVID_BRANCH,
	BT_EVID_PT,
	BT_EVID_PEBS,
	BT_EVID_LBR,
	BT_EVID_MMAP,
	BT_EVID_COMM,
	BT_EVID_TASK,
	BT_EVID_SWITCH,
	BT_EVID_LOST,
	BT_EVID_AUX,
	BT_EVID_TRIGGER,
	BT_EVID_NOTICE,
	BT_EVID__COUNT,
};

enum bt_field_kind {
	BT_FK_U64 = 0,
	BT_FK_I64,
	BT_FK_U32,
	BT_FK_I32,
	BT_FK_BOOL,
	BT_FK_STR,
	BT_FK_BYTES,
	BT_FK_RECS,
};

#define BT_EF_ADDR	0x1u	/* an address: show in hex */

struct bt_event_field {
	const char *name;
	uint32_t kind;			/* enum bt_field_kind */
	uint32_t flags;			/* BT_EF_* */
	/* RECS: the record's fields (all U64) and its size in bytes */
	const struct bt_event_field *rec;
	uint32_t rec_nfields;
	uint32_t rec_size;		/* 8 * rec_nfields */
};

struct bt_event_type {
	const char *name;		/* "bt.branch" */
	uint32_t id;			/* enum bt_event_id */
	const struct bt_event_field *fields;
	uint32_t nfields;
	const char *doc;		/* one line */
};

/* The table of every type, indexed by enum bt_event_id; static. */
BT_API const struct bt_event_type *bt_event_types(size_t *count);
/* The type called @name (@len bytes, not NUL-terminated), or NULL. */
BT_API const struct bt_event_type *bt_event_type_find(const char *name,
						      size_t len);
/* The index of field @name in @t, or -1. */
BT_API int bt_event_field_index(const struct bt_event_type *t,
				const char *name);

/* ---- Values of the fields ---------------------------------------------- */

/*
 * One field's value: .u for U64/U32/BOOL, .i for I64/I32, .p/.len for
 * STR/BYTES/RECS (bytes; for RECS len is a multiple of rec_size). Decoded
 * values point into the payload (no copy): valid while it is.
 */
struct bt_event_value {
	uint64_t u;
	int64_t i;
	const void *p;
	size_t len;
};

/*
 * bt_event_encode() - the msgpack payload of an event of type @t from
 * @v (one value per field of @t, in order) into @buf (@cap bytes).
 * Returns the payload's length, or -ENOSPC when @cap is too small (the
 * length it needs is then what bt_event_encoded_size() says), -EINVAL for
 * a value that does not fit its kind (a U32 over 2^32, RECS whose length
 * is not a multiple of the record size, a STR that is not UTF-8).
 */
BT_API long bt_event_encode(const struct bt_event_type *t,
			    const struct bt_event_value *v, void *buf,
			    size_t cap);
/* The bytes bt_event_encode() writes for @v. */
BT_API size_t bt_event_encoded_size(const struct bt_event_type *t,
				    const struct bt_event_value *v);

/*
 * bt_event_decode() - the values of payload @buf (@len bytes, hostile) of
 * an event of type @t into @v (t->nfields entries). Unknown keys are
 * skipped. Returns 0, or -BT_ERRNO_FORMAT with a one-line reason in @why
 * (@why_len bytes; may be NULL) naming the type, the field and the
 * problem: not one msgpack map, bytes after it, a field missing or twice,
 * a field of the wrong kind or out of range, a STR not UTF-8, a RECS
 * length not a multiple of its record size. The caller adds the file and
 * offset of the event. -EINVAL for NULL arguments.
 */
BT_API int bt_event_decode(const struct bt_event_type *t, const void *buf,
			   size_t len, struct bt_event_value *v, char *why,
			   size_t why_len);

/* Record @i of a RECS value, field @f, little-endian. No bounds check. */
static inline uint64_t bt_event_rec_u64(const struct bt_event_value *v,
					uint32_t rec_size, size_t i,
					uint32_t f)
{
	const unsigned char *p = (const unsigned char *)v->p +
				 i * rec_size + (size_t)f * 8;
	uint64_t x = 0;

	for (int b = 7; b >= 0; b--)
		x = (x << 8) | p[b];
	return x;
}

/*
 * bt_event_schema_fields() - @t's fields as text into @s (@cap bytes):
 * "name:kind[:addr]" separated by spaces, a RECS field followed by its
 * record's fields in braces, e.g. "cpu:i32 time:u64 recs:recs{from:u64:addr
 * to:u64:addr flags:u64}". Returns the length, or -ENOSPC, -EINVAL.
 */
BT_API long bt_event_schema_fields(const struct bt_event_type *t, char *s,
				   size_t cap);

/*
 * bt_event_schema_encode() - the payload of the bt.schema event that
 * describes @t: {"type": name, "id": id, "v": 1, "fields": text of
 * bt_event_schema_fields()}. As bt_event_encode().
 */
BT_API long bt_event_schema_encode(const struct bt_event_type *t, void *buf,
				   size_t cap);

/* ---- Field indexes of each type (positions in its table) --------------- */

/* bt.schema */
enum { BT_SCHEMA_TYPE, BT_SCHEMA_ID, BT_SCHEMA_V, BT_SCHEMA_FIELDS,
       BT_SCHEMA__N };
/*
 * bt.clock: the conversions of the moment (perf's time_zero/time_mult/
 * time_shift from the mmap page: perf_ns = time_zero + (tsc * mult) >>
 * shift, done in two parts as perf does), and one sample of every clock
 * taken together. reason: "start", "periodic", "jump" (CLOCK_REALTIME
 * moved against CLOCK_MONOTONIC), "end".
 */
enum { BT_CLOCK_REASON, BT_CLOCK_TSC_HZ, BT_CLOCK_TIME_ZERO,
       BT_CLOCK_TIME_MULT, BT_CLOCK_TIME_SHIFT, BT_CLOCK_TSC,
       BT_CLOCK_PERF_NS, BT_CLOCK_MONO_NS, BT_CLOCK_REAL_NS, BT_CLOCK__N };
/*
 * bt.branch: a batch of branch records of one CPU (and task where known;
 * -1 otherwise) as BTS writes them: from, to, flags (BTS's third word;
 * bit 4 "predicted" on hardware, 0 from step). time: the perf clock of
 * the batch (the sample time, or when the drain read it).
 */
enum { BT_BRANCH_CPU, BT_BRANCH_PID, BT_BRANCH_TID, BT_BRANCH_TIME,
       BT_BRANCH_RECS, BT_BRANCH__N };
/* bt.pt: raw PT bytes at AUX offset off (aux_head space, monotonic). */
enum { BT_PT_CPU, BT_PT_PID, BT_PT_TID, BT_PT_TIME, BT_PT_OFF, BT_PT_DATA,
       BT_PT__N };
/* bt.pebs: one precise sample. */
enum { BT_PEBS_CPU, BT_PEBS_PID, BT_PEBS_TID, BT_PEBS_TIME, BT_PEBS_IP,
       BT_PEBS_ADDR, BT_PEBS_PERIOD, BT_PEBS_WEIGHT, BT_PEBS_DATA_SRC,
       BT_PEBS__N };
/* bt.lbr: one sample with its branch stack (newest first). */
enum { BT_LBR_CPU, BT_LBR_PID, BT_LBR_TID, BT_LBR_TIME, BT_LBR_IP,
       BT_LBR_RECS, BT_LBR__N };
/* bt.mmap: an executable mapping (MMAP2). build_id: bytes, may be empty. */
enum { BT_MMAP_PID, BT_MMAP_TID, BT_MMAP_TIME, BT_MMAP_ADDR, BT_MMAP_LEN,
       BT_MMAP_PGOFF, BT_MMAP_PROT, BT_MMAP_FLAGS, BT_MMAP_MAJ, BT_MMAP_MIN,
       BT_MMAP_INO, BT_MMAP_BUILD_ID, BT_MMAP_FILE, BT_MMAP__N };
/* bt.comm: a task's name; exec when it comes from exec(2). */
enum { BT_COMM_PID, BT_COMM_TID, BT_COMM_TIME, BT_COMM_COMM, BT_COMM_EXEC,
       BT_COMM__N };
/* bt.task: kind "fork", "exit" or "itrace_start". */
enum { BT_TASK_KIND, BT_TASK_PID, BT_TASK_PPID, BT_TASK_TID, BT_TASK_PTID,
       BT_TASK_TIME, BT_TASK__N };
/* bt.switch: out is true for a switch away from (pid, tid). */
enum { BT_SWITCH_CPU, BT_SWITCH_TIME, BT_SWITCH_OUT, BT_SWITCH_PID,
       BT_SWITCH_TID, BT_SWITCH_NEXT_PID, BT_SWITCH_NEXT_TID,
       BT_SWITCH__N };
/*
 * bt.lost: what was lost where. what: "data" (PERF_RECORD_LOST: records),
 * "aux" (bytes of trace), "kmes" (events a ring overwrote before a reader
 * copied them), "drop" (events the ring refused). count in those units.
 */
enum { BT_LOST_CPU, BT_LOST_TID, BT_LOST_TIME, BT_LOST_WHAT, BT_LOST_COUNT,
       BT_LOST__N };
/* bt.aux: a PERF_RECORD_AUX: offset, size, flags (PERF_AUX_FLAG_*). */
enum { BT_AUX_CPU, BT_AUX_TID, BT_AUX_TIME, BT_AUX_OFF, BT_AUX_SIZE,
       BT_AUX_FLAGS, BT_AUX__N };
/*
 * bt.trigger: why capture was frozen. reason: "signal", "request"
 * (SIGUSR2, btrail snapshot), "notifier", "exit", "stop" (the tracer
 * ended capture; the process goes on). regs: 0 or 1 record of
 * the x86-64 user registers, in struct user_regs_struct order.
 */
enum { BT_TRIGGER_REASON, BT_TRIGGER_TIME, BT_TRIGGER_PID, BT_TRIGGER_TID,
       BT_TRIGGER_SIGNO, BT_TRIGGER_CODE, BT_TRIGGER_ADDR, BT_TRIGGER_IP,
       BT_TRIGGER_REGS, BT_TRIGGER__N };
/* bt.notice: kind "owner", "resize", "revoke"; text says more. */
enum { BT_NOTICE_KIND, BT_NOTICE_TIME, BT_NOTICE_PID, BT_NOTICE_BYTES,
       BT_NOTICE_TEXT, BT_NOTICE__N };

/* Record fields of bt.branch and bt.lbr RECS (24 bytes). */
enum { BT_BREC_FROM, BT_BREC_TO, BT_BREC_FLAGS, BT_BREC__N };
#define BT_BREC_SIZE	24u
/* Record of bt.trigger regs: struct user_regs_struct, 27 u64. */
#define BT_REGS_N	27u
#define BT_REGS_SIZE	(8u * BT_REGS_N)

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_EVENTS_H */
