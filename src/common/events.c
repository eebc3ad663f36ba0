// SPDX-License-Identifier: BSD-3-Clause
/*
 * The bt.* event types (include/btrail/events.h): the table, and their
 * msgpack payloads written and read with msgpack-c.
 */
#include <btrail/events.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include <btrail/errno.h>

#include "common/mpcheck.h"
#include "common/utf8.h"

#define N(a)	((uint32_t)(sizeof(a) / sizeof((a)[0])))

#define U64(n)		{ .name = n, .kind = BT_FK_U64 }
#define ADDR(n)		{ .name = n, .kind = BT_FK_U64, .flags = BT_EF_ADDR }
#define I64(n)		{ .name = n, .kind = BT_FK_I64 }
#define U32(n)		{ .name = n, .kind = BT_FK_U32 }
#define I32(n)		{ .name = n, .kind = BT_FK_I32 }
#define BOOL(n)		{ .name = n, .kind = BT_FK_BOOL }
#define STR(n)		{ .name = n, .kind = BT_FK_STR }
#define BYTES(n)	{ .name = n, .kind = BT_FK_BYTES }
#define RECS(n, r)	{ .name = n, .kind = BT_FK_RECS, .rec = r, \
			  .rec_nfields = N(r), .rec_size = 8 * N(r) }

static const struct bt_event_field brec[] = {
	ADDR("from"), ADDR("to"), U64("flags"),
};

/* struct user_regs_struct, in its order (sys/user.h, x86-64). */
static const struct bt_event_field regs[] = {
	U64("r15"), U64("r14"), U64("r13"), U64("r12"), U64("rbp"),
	U64("rbx"), U64("r11"), U64("r10"), U64("r9"), U64("r8"),
	U64("rax"), U64("rcx"), U64("rdx"), U64("rsi"), U64("rdi"),
	U64("orig_rax"), ADDR("rip"), U64("cs"), U64("eflags"), ADDR("rsp"),
	U64("ss"), U64("fs_base"), U64("gs_base"), U64("ds"), U64("es"),
	U64("fs"), U64("gs"),
};

static const struct bt_event_field f_schema[] = {
	STR("type"), U32("id"), U32("v"), STR("fields"),
};
static const struct bt_event_field f_clock[] = {
	STR("reason"), U64("tsc_hz"), U64("time_zero"), U32("time_mult"),
	U32("time_shift"), U64("tsc"), U64("perf_ns"), U64("mono_ns"),
	U64("real_ns"),
};
static const struct bt_event_field f_branch[] = {
	I32("cpu"), I32("pid"), I32("tid"), U64("time"), RECS("recs", brec),
};
static const struct bt_event_field f_pt[] = {
	I32("cpu"), I32("pid"), I32("tid"), U64("time"), U64("off"),
	BYTES("data"),
};
static const struct bt_event_field f_pebs[] = {
	I32("cpu"), I32("pid"), I32("tid"), U64("time"), ADDR("ip"),
	ADDR("addr"), U64("period"), U64("weight"), U64("data_src"),
};
static const struct bt_event_field f_lbr[] = {
	I32("cpu"), I32("pid"), I32("tid"), U64("time"), ADDR("ip"),
	RECS("recs", brec),
};
static const struct bt_event_field f_mmap[] = {
	I32("pid"), I32("tid"), U64("time"), ADDR("addr"), U64("len"),
	U64("pgoff"), U32("prot"), U32("flags"), U32("maj"), U32("min"),
	U64("ino"), BYTES("build_id"), STR("file"),
};
static const struct bt_event_field f_comm[] = {
	I32("pid"), I32("tid"), U64("time"), STR("comm"), BOOL("exec"),
};
static const struct bt_event_field f_task[] = {
	STR("kind"), I32("pid"), I32("ppid"), I32("tid"), I32("ptid"),
	U64("time"),
};
static const struct bt_event_field f_switch[] = {
	I32("cpu"), U64("time"), BOOL("out"), I32("pid"), I32("tid"),
	I32("next_pid"), I32("next_tid"),
};
static const struct bt_event_field f_lost[] = {
	I32("cpu"), I32("tid"), U64("time"), STR("what"), U64("count"),
};
static const struct bt_event_field f_aux[] = {
	I32("cpu"), I32("tid"), U64("time"), U64("off"), U64("size"),
	U64("flags"),
};
static const struct bt_event_field f_trigger[] = {
	STR("reason"), U64("time"), I32("pid"), I32("tid"), I32("signo"),
	I32("code"), ADDR("addr"), ADDR("ip"), RECS("regs", regs),
};
static const struct bt_event_field f_notice[] = {
	STR("kind"), U64("time"), I32("pid"), U64("bytes"), STR("text"),
};

#define TYPE(n, id, f, d)	[id] = { n, id, f, N(f), d }

static const struct bt_event_type types[BT_EVID__COUNT] = {
	TYPE(BT_EV_SCHEMA, BT_EVID_SCHEMA, f_schema,
	     "describes one event type: its fields and their kinds"),
	TYPE(BT_EV_CLOCK, BT_EVID_CLOCK, f_clock,
	     "TSC, perf clock, CLOCK_MONOTONIC and CLOCK_REALTIME together"),
	TYPE(BT_EV_BRANCH, BT_EVID_BRANCH, f_branch,
	     "a batch of branch records (from, to, flags)"),
	TYPE(BT_EV_PT, BT_EVID_PT, f_pt,
	     "a chunk of Intel PT packets and its AUX offset"),
	TYPE(BT_EV_PEBS, BT_EVID_PEBS, f_pebs, "a precise (PEBS) sample"),
	TYPE(BT_EV_LBR, BT_EVID_LBR, f_lbr, "a sample with its branch stack"),
	TYPE(BT_EV_MMAP, BT_EVID_MMAP, f_mmap, "an executable mapping"),
	TYPE(BT_EV_COMM, BT_EVID_COMM, f_comm, "a task's name"),
	TYPE(BT_EV_TASK, BT_EVID_TASK, f_task,
	     "a task forked, exited, or started being traced"),
	TYPE(BT_EV_SWITCH, BT_EVID_SWITCH, f_switch, "a context switch"),
	TYPE(BT_EV_LOST, BT_EVID_LOST, f_lost, "trace or events lost"),
	TYPE(BT_EV_AUX, BT_EVID_AUX, f_aux,
	     "an AUX record: truncated, overwritten or partial trace"),
	TYPE(BT_EV_TRIGGER, BT_EVID_TRIGGER, f_trigger,
	     "why capture was frozen: a signal, a request, a notifier"),
	TYPE(BT_EV_NOTICE, BT_EVID_NOTICE, f_notice,
	     "the hardware session changed: owner, size, revoked"),
};

const struct bt_event_type *bt_event_types(size_t *count)
{
	if (count)
		*count = BT_EVID__COUNT;
	return types;
}

const struct bt_event_type *bt_event_type_find(const char *name, size_t len)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < BT_EVID__COUNT; i++) {
		if (strlen(types[i].name) == len &&
		    !memcmp(types[i].name, name, len))
			return &types[i];
	}
	return NULL;
}

int bt_event_field_index(const struct bt_event_type *t, const char *name)
{
	if (!t || !name)
		return -1;
	for (uint32_t i = 0; i < t->nfields; i++) {
		if (!strcmp(t->fields[i].name, name))
			return (int)i;
	}
	return -1;
}

/* ---- Writing ------------------------------------------------------------ */

/* A msgpack-c write callback into a fixed buffer; counts what overflows. */
struct fixbuf {
	unsigned char *p;
	size_t cap, len;
};

static int fixbuf_write(void *data, const char *buf, size_t len)
{
	struct fixbuf *b = data;

	if (len && b->len <= b->cap && len <= b->cap - b->len)
		memcpy(b->p + b->len, buf, len);	/* buf may be NULL at 0 */
	b->len += len;
	return 0;
}

static int check_value(const struct bt_event_field *f,
		       const struct bt_event_value *v)
{
	switch (f->kind) {
	case BT_FK_U32:
		return v->u > UINT32_MAX ? -EINVAL : 0;
	case BT_FK_I32:
		return v->i < INT32_MIN || v->i > INT32_MAX ? -EINVAL : 0;
	case BT_FK_BOOL:
		return v->u > 1 ? -EINVAL : 0;
	case BT_FK_STR:
		if (v->len && !v->p)
			return -EINVAL;
		return v->len > UINT32_MAX ||
		       !bt_utf8_valid(v->p, v->len) ? -EINVAL : 0;
	case BT_FK_BYTES:
		return (v->len && !v->p) || v->len > UINT32_MAX ? -EINVAL : 0;
	case BT_FK_RECS:
		return (v->len && !v->p) || v->len > UINT32_MAX ||
		       v->len % f->rec_size ? -EINVAL : 0;
	default:
		return 0;
	}
}

static void pack_value(msgpack_packer *pk, const struct bt_event_field *f,
		       const struct bt_event_value *v)
{
	switch (f->kind) {
	case BT_FK_U64:
	case BT_FK_U32:
		msgpack_pack_uint64(pk, v->u);
		break;
	case BT_FK_I64:
	case BT_FK_I32:
		msgpack_pack_int64(pk, v->i);
		break;
	case BT_FK_BOOL:
		if (v->u)
			msgpack_pack_true(pk);
		else
			msgpack_pack_false(pk);
		break;
	case BT_FK_STR:
		msgpack_pack_str_with_body(pk, v->p, v->len);
		break;
	default:
		msgpack_pack_bin_with_body(pk, v->p, v->len);
		break;
	}
}

static long pack_event(const struct bt_event_type *t,
		       const struct bt_event_value *v, struct fixbuf *b)
{
	msgpack_packer pk;

	if (!t || !v)
		return -EINVAL;
	for (uint32_t i = 0; i < t->nfields; i++) {
		if (check_value(&t->fields[i], &v[i]))
			return -EINVAL;
	}
	msgpack_packer_init(&pk, b, fixbuf_write);
	msgpack_pack_map(&pk, t->nfields);
	for (uint32_t i = 0; i < t->nfields; i++) {
		const char *k = t->fields[i].name;

		msgpack_pack_str_with_body(&pk, k, strlen(k));
		pack_value(&pk, &t->fields[i], &v[i]);
	}
	return 0;
}

long bt_event_encode(const struct bt_event_type *t,
		     const struct bt_event_value *v, void *buf, size_t cap)
{
	struct fixbuf b = { .p = buf, .cap = buf ? cap : 0 };
	long err = pack_event(t, v, &b);

	if (err)
		return err;
	if (b.len > b.cap)
		return -ENOSPC;
	return (long)b.len;
}

size_t bt_event_encoded_size(const struct bt_event_type *t,
			     const struct bt_event_value *v)
{
	struct fixbuf b = { 0 };

	return pack_event(t, v, &b) ? 0 : b.len;
}

/* Append to @s (@cap) at *@n; false when it does not fit. */
static bool sappend(char *s, size_t cap, size_t *n, const char *fmt, ...)
{
	va_list ap;
	int w;

	va_start(ap, fmt);
	w = vsnprintf(s + *n, cap - *n, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= cap - *n)
		return false;
	*n += (size_t)w;
	return true;
}

static const char *const kind_names[] = {
	[BT_FK_U64] = "u64", [BT_FK_I64] = "i64", [BT_FK_U32] = "u32",
	[BT_FK_I32] = "i32", [BT_FK_BOOL] = "bool", [BT_FK_STR] = "str",
	[BT_FK_BYTES] = "bytes", [BT_FK_RECS] = "recs",
};

long bt_event_schema_fields(const struct bt_event_type *t, char *s,
			    size_t cap)
{
	size_t n = 0;

	if (!t || !s || !cap)
		return -EINVAL;
	s[0] = '\0';
	for (uint32_t i = 0; i < t->nfields; i++) {
		const struct bt_event_field *f = &t->fields[i];

		if (!sappend(s, cap, &n, "%s%s:%s%s", i ? " " : "", f->name,
			     kind_names[f->kind],
			     f->flags & BT_EF_ADDR ? ":addr" : ""))
			return -ENOSPC;
		if (f->kind != BT_FK_RECS)
			continue;
		for (uint32_t j = 0; j < f->rec_nfields; j++) {
			const struct bt_event_field *r = &f->rec[j];

			if (!sappend(s, cap, &n, "%s%s:%s%s", j ? " " : "{",
				     r->name, kind_names[r->kind],
				     r->flags & BT_EF_ADDR ? ":addr" : ""))
				return -ENOSPC;
		}
		if (!sappend(s, cap, &n, "}"))
			return -ENOSPC;
	}
	return (long)n;
}

long bt_event_schema_encode(const struct bt_event_type *t, void *buf,
			    size_t cap)
{
	const struct bt_event_type *st = &types[BT_EVID_SCHEMA];
	struct bt_event_value v[BT_SCHEMA__N] = { 0 };
	char fields[1024];
	long n;

	if (!t)
		return -EINVAL;
	n = bt_event_schema_fields(t, fields, sizeof(fields));
	if (n < 0)
		return n;
	v[BT_SCHEMA_TYPE].p = t->name;
	v[BT_SCHEMA_TYPE].len = strlen(t->name);
	v[BT_SCHEMA_ID].u = t->id;
	v[BT_SCHEMA_V].u = 1;
	v[BT_SCHEMA_FIELDS].p = fields;
	v[BT_SCHEMA_FIELDS].len = (size_t)n;
	return bt_event_encode(st, v, buf, cap);
}

/* ---- Reading ------------------------------------------------------------ */

static int why_set(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (why && why_len) {
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
	return -BT_ERRNO_FORMAT;
}

/* @o as the value of field @f into @v; 0 or a reason. */
static const char *take_value(const struct bt_event_field *f,
			      const msgpack_object *o,
			      struct bt_event_value *v)
{
	bool is_uint = o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
	bool is_nint = o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;

	memset(v, 0, sizeof(*v));
	switch (f->kind) {
	case BT_FK_U64:
	case BT_FK_U32:
		if (!is_uint)
			return "not an unsigned integer";
		if (f->kind == BT_FK_U32 && o->via.u64 > UINT32_MAX)
			return "over 2^32-1";
		v->u = o->via.u64;
		return NULL;
	case BT_FK_I64:
	case BT_FK_I32:
		if (is_uint) {
			if (o->via.u64 > (uint64_t)INT64_MAX)
				return "over 2^63-1";
			v->i = (int64_t)o->via.u64;
		} else if (is_nint) {
			v->i = o->via.i64;
		} else {
			return "not an integer";
		}
		if (f->kind == BT_FK_I32 && (v->i < INT32_MIN || v->i > INT32_MAX))
			return "out of the 32-bit range";
		return NULL;
	case BT_FK_BOOL:
		if (o->type != MSGPACK_OBJECT_BOOLEAN)
			return "not a boolean";
		v->u = o->via.boolean;
		return NULL;
	case BT_FK_STR:
		if (o->type != MSGPACK_OBJECT_STR)
			return "not a string";
		if (!bt_utf8_valid((const unsigned char *)o->via.str.ptr,
				   o->via.str.size))
			return "not UTF-8";
		v->p = o->via.str.ptr;
		v->len = o->via.str.size;
		return NULL;
	default:
		if (o->type != MSGPACK_OBJECT_BIN)
			return "not bytes (msgpack bin)";
		v->p = o->via.bin.ptr;
		v->len = o->via.bin.size;
		if (f->kind == BT_FK_RECS && v->len % f->rec_size)
			return "length not a multiple of its record size";
		return NULL;
	}
}

int bt_event_decode(const struct bt_event_type *t, const void *buf,
		    size_t len, struct bt_event_value *v, char *why,
		    size_t why_len)
{
	/* Bit i: field i seen. Types have at most 64 fields. */
	uint64_t seen = 0, want;
	msgpack_unpacked up;
	size_t off = 0;
	int ret, err = 0;

	if (!t || !v || (!buf && len) || t->nfields > 64)
		return -EINVAL;
	want = t->nfields == 64 ? ~0ull : (1ull << t->nfields) - 1;
	msgpack_unpacked_init(&up);
	/* Before msgpack-c allocates what a hostile header claims. */
	if (!len || !bt_mp_claims_fit(buf, len)) {
		err = why_set(why, why_len, "%s: payload is not one msgpack "
			      "value, or claims more than its %zu bytes",
			      t->name, len);
		goto out;
	}
	ret = msgpack_unpack_next(&up, buf, len, &off);
	if (ret != MSGPACK_UNPACK_SUCCESS) {
		err = why_set(why, why_len, "%s: payload is not one msgpack "
			      "value (%zu bytes)", t->name, len);
		goto out;
	}
	if (off != len) {
		err = why_set(why, why_len, "%s: %zu bytes after the payload's "
			      "map (at payload offset %zu)", t->name,
			      len - off, off);
		goto out;
	}
	if (up.data.type != MSGPACK_OBJECT_MAP) {
		err = why_set(why, why_len, "%s: payload is not a msgpack map",
			      t->name);
		goto out;
	}
	for (uint32_t i = 0; i < up.data.via.map.size; i++) {
		const msgpack_object_kv *kv = &up.data.via.map.ptr[i];
		const char *reason;
		uint32_t f;

		if (kv->key.type != MSGPACK_OBJECT_STR)
			continue;
		for (f = 0; f < t->nfields; f++) {
			const char *n = t->fields[f].name;

			if (strlen(n) == kv->key.via.str.size &&
			    !memcmp(n, kv->key.via.str.ptr, kv->key.via.str.size))
				break;
		}
		if (f == t->nfields)
			continue;	/* a field of a newer writer */
		if (seen & (1ull << f)) {
			err = why_set(why, why_len, "%s: field '%s' twice",
				      t->name, t->fields[f].name);
			goto out;
		}
		reason = take_value(&t->fields[f], &kv->val, &v[f]);
		if (reason) {
			err = why_set(why, why_len, "%s: field '%s': %s",
				      t->name, t->fields[f].name, reason);
			goto out;
		}
		seen |= 1ull << f;
	}
	if (seen != want) {
		for (uint32_t f = 0; f < t->nfields; f++) {
			if (!(seen & (1ull << f))) {
				err = why_set(why, why_len, "%s: field '%s' "
					      "missing", t->name,
					      t->fields[f].name);
				break;
			}
		}
	}
out:
	msgpack_unpacked_destroy(&up);
	return err;
}
