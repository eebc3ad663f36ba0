// SPDX-License-Identifier: BSD-3-Clause
/*
 * The btraild wire protocol (docs/protocol.md): strict request decoding,
 * reply envelopes, and frames over a Unix stream socket.
 *
 * Requests come from any local user, so the decoder trusts nothing: it
 * checks the encoding's claims before msgpack-c allocates, parses into a
 * zone on the stack, and walks the map once, refusing every value it
 * cannot store exactly. Its error text goes back to the client, so a
 * hostile string is quoted with its unprintable bytes replaced.
 *
 * Over 1,000 lines, as the one implementation of the one contract
 * proto.h: requests, replies and frames are its three sections, and
 * they share the helpers at the top (error text, key lookup, parsing).
 */
#include "broker/proto.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mpcheck.h"

/* Zone chunk: a request is a few dozen objects. */
#define PROTO_ZONE_CHUNK	2048
/* Longest piece of a hostile string quoted in an error message. */
#define PROTO_QUOTE_MAX		32

static const char *const op_names[BT_OP__COUNT] = {
	[BT_OP_HELLO] = "hello",
	[BT_OP_CAPS] = "caps",
	[BT_OP_REQUEST] = "request",
	[BT_OP_RELEASE] = "release",
	[BT_OP_ATTACH] = "attach",
	[BT_OP_SNAPSHOT] = "snapshot",
	[BT_OP_STATUS] = "status",
};

static const char *const kind_names[] = {
	[BT_TARGET_TASK] = "task",
	[BT_TARGET_CPU] = "cpu",
	[BT_TARGET_ALL] = "all",
};

static const char *const mode_names[] = {
	[BT_MODE_STREAM] = "stream",
	[BT_MODE_SNAPSHOT] = "snapshot",
};

const char *bt_proto_op_name(uint32_t op)
{
	return op > 0 && op < BT_OP__COUNT ? op_names[op] : NULL;
}

/* Format @fmt into @err (if any) and return @ret. */
__attribute__((format(printf, 4, 5)))
static int say_ret(int ret, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* A malformed request: -EINVAL. */
#define proto_err(err, errlen, ...) say_ret(-EINVAL, err, errlen, __VA_ARGS__)

/* @s (@n bytes, hostile) as printable ASCII, cut short, for a message. */
static const char *proto_quote(const char *s, size_t n, char *buf,
			       size_t size)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k + 4 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == PROTO_QUOTE_MAX) {
			memcpy(buf + k, "...", 3);
			k += 3;
			break;
		}
		buf[k++] = c >= 0x20 && c < 0x7f && c != '"' ? (char)c : '?';
	}
	buf[k] = '\0';
	return buf;
}

static bool str_is(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);

	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
	       !memcmp(o->via.str.ptr, s, n);
}

/* Index of the string @o in @names (@n entries, NULLs skipped), or -1. */
static int str_lookup(const msgpack_object *o, const char *const *names,
		      size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (names[i] && str_is(o, names[i]))
			return (int)i;
	}
	return -1;
}

/* ---- Request decoding ---------------------------------------------------- */

/*
 * The keys a map may hold, found in one pass over it: @vals[i] is the
 * value of @keys[i] or NULL. Non-string keys and a known key given twice
 * are errors; unknown keys are skipped (a newer peer may send them).
 */
static int map_fields(const msgpack_object *map, const char *prefix,
		      const char *const *keys, size_t nkeys,
		      const msgpack_object **vals, uint32_t *twice,
		      char *err, size_t errlen)
{
	int ret = 0;

	*twice = 0;
	for (size_t k = 0; k < nkeys; k++)
		vals[k] = NULL;
	/* On to the end after an error: @twice tells which to distrust. */
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		int k;

		if (kv->key.type != MSGPACK_OBJECT_STR) {
			if (!ret)
				ret = proto_err(err, errlen, "request: key %"
						PRIu32 " of %s%.*s%s is not a "
						"string", i,
						*prefix ? "field \"" :
							  "the map",
						*prefix ? (int)strlen(prefix) -
							  1 : 0,
						prefix, *prefix ? "\"" : "");
			continue;
		}
		k = str_lookup(&kv->key, keys, nkeys);
		if (k < 0)
			continue;
		if (vals[k]) {
			if (!ret)
				ret = proto_err(err, errlen, "request: field "
						"\"%s%s\" given twice", prefix,
						keys[k]);
			*twice |= 1u << k;
			continue;
		}
		vals[k] = &kv->val;
	}
	return ret;
}

/*
 * Field-reading helpers: @name is the field's full name for messages
 * ("aux_bytes", "config.mtc_period"). A NULL @o is an absent field.
 */
static int get_uint(const msgpack_object *o, const char *name, uint64_t max,
		    uint64_t *v, char *err, size_t errlen)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			return proto_err(err, errlen, "request: field \"%s\": "
					 "%" PRId64 " is negative", name,
					 o->via.i64);
		return proto_err(err, errlen, "request: field \"%s\": "
				 "expected an unsigned integer", name);
	}
	if (o->via.u64 > max)
		return proto_err(err, errlen, "request: field \"%s\": %" PRIu64
				 " is over %" PRIu64, name, o->via.u64, max);
	*v = o->via.u64;
	return 0;
}

static int get_u32(const msgpack_object *o, const char *name, uint32_t *v,
		   char *err, size_t errlen)
{
	uint64_t u;
	int ret = get_uint(o, name, UINT32_MAX, &u, err, errlen);

	if (!ret)
		*v = (uint32_t)u;
	return ret;
}

static int get_bool(const msgpack_object *o, const char *name, bool *v,
		    char *err, size_t errlen)
{
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return proto_err(err, errlen, "request: field \"%s\": "
				 "expected true or false", name);
	*v = o->via.boolean;
	return 0;
}

/* A string copied with its NUL into @buf (@size bytes, max len size-1). */
static int get_text(const msgpack_object *o, const char *name, char *buf,
		    size_t size, char *err, size_t errlen)
{
	if (o->type != MSGPACK_OBJECT_STR)
		return proto_err(err, errlen, "request: field \"%s\": "
				 "expected a string", name);
	if (o->via.str.size >= size)
		return proto_err(err, errlen, "request: field \"%s\": %" PRIu32
				 " bytes, at most %zu allowed", name,
				 o->via.str.size, size - 1);
	/* The daemon would see a shorter string than the client meant. */
	if (memchr(o->via.str.ptr, '\0', o->via.str.size))
		return proto_err(err, errlen, "request: field \"%s\": "
				 "holds a NUL byte", name);
	memcpy(buf, o->via.str.ptr, o->via.str.size);
	buf[o->via.str.size] = '\0';
	return 0;
}

/* One of @names, by name; the message lists them. */
static int get_enum(const msgpack_object *o, const char *name,
		    const char *const *names, size_t n, uint32_t *v, char *err,
		    size_t errlen)
{
	char list[128] = "", q[PROTO_QUOTE_MAX + 8];
	size_t k = 0;
	int i;

	if (o->type == MSGPACK_OBJECT_STR) {
		i = str_lookup(o, names, n);
		if (i >= 0) {
			*v = (uint32_t)i;
			return 0;
		}
	}
	for (size_t j = 0; j < n; j++) {
		if (names[j])
			k += (size_t)snprintf(list + k, sizeof(list) - k,
					      "%s\"%s\"", k ? ", " : "",
					      names[j]);
		if (k >= sizeof(list))
			break;
	}
	if (o->type != MSGPACK_OBJECT_STR)
		return proto_err(err, errlen, "request: field \"%s\": "
				 "expected a string (one of %s)", name, list);
	return proto_err(err, errlen, "request: field \"%s\": unknown value "
			 "\"%s\" (expected one of %s)", name,
			 proto_quote(o->via.str.ptr, o->via.str.size, q,
				     sizeof(q)), list);
}

enum { TK_KIND, TK_ID, TK__COUNT };
static const char *const target_keys[TK__COUNT] = { "kind", "id" };

static int get_target(const msgpack_object *o, struct bt_target *t,
		      char *err, size_t errlen)
{
	const msgpack_object *v[TK__COUNT];
	uint32_t twice;
	int ret;

	if (o->type != MSGPACK_OBJECT_MAP)
		return proto_err(err, errlen, "request: field \"target\": "
				 "expected a map {\"kind\", \"id\"}");
	ret = map_fields(o, "target.", target_keys, TK__COUNT, v, &twice, err,
			 errlen);
	if (ret)
		return ret;
	if (!v[TK_KIND])
		return proto_err(err, errlen,
				 "request: field \"target.kind\" missing");
	ret = get_enum(v[TK_KIND], "target.kind", kind_names,
		       sizeof(kind_names) / sizeof(kind_names[0]), &t->kind,
		       err, errlen);
	if (ret)
		return ret;
	t->id = 0;
	if (t->kind == BT_TARGET_ALL)
		return 0;		/* every CPU: an id means nothing */
	if (!v[TK_ID])
		return proto_err(err, errlen, "request: field \"target.id\" "
				 "missing (required for kind \"%s\")",
				 kind_names[t->kind]);
	/*
	 * A thread id is positive (0 would be the daemon itself to perf);
	 * a CPU number is not negative (-1 would be "any CPU").
	 */
	if (v[TK_ID]->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    v[TK_ID]->via.u64 <= INT32_MAX &&
	    (v[TK_ID]->via.u64 > 0 || t->kind == BT_TARGET_CPU)) {
		t->id = (int32_t)v[TK_ID]->via.u64;
		return 0;
	}
	if (t->kind == BT_TARGET_TASK)
		return proto_err(err, errlen, "request: field \"target.id\": "
				 "expected a thread id 1..%d", INT32_MAX);
	return proto_err(err, errlen, "request: field \"target.id\": "
			 "expected a CPU number 0..%d", INT32_MAX);
}

enum {
	CK_USER, CK_KERNEL, CK_TSC, CK_MTC, CK_CYC, CK_NORETCOMP, CK_NO_BRANCH,
	CK_MTC_PERIOD, CK_CYC_THRESH, CK_PSB_PERIOD,
	CK_FILTER,
	CK_PEBS_CONFIG, CK_PERIOD, CK_BRANCH_SAMPLE_TYPE,
	CK__COUNT,
};
static const char *const config_keys[CK__COUNT] = {
	"user", "kernel", "tsc", "mtc", "cyc", "noretcomp", "no_branch",
	"mtc_period", "cyc_thresh", "psb_period",
	"filter",
	"pebs_config", "period", "branch_sample_type",
};

static int get_config(const msgpack_object *o, struct bt_proto_req *r,
		      char *err, size_t errlen)
{
	struct bt_trace_config *c = &r->config;
	const msgpack_object *v[CK__COUNT];
	bool *bools[CK_MTC_PERIOD] = {
		&c->user, &c->kernel, &c->tsc, &c->mtc, &c->cyc,
		&c->noretcomp, &c->no_branch,
	};
	uint32_t *u32s[] = { &c->mtc_period, &c->cyc_thresh, &c->psb_period };
	uint64_t *u64s[] = { &c->pebs_config, &c->period,
			     &c->branch_sample_type };
	char name[48];
	uint32_t twice;
	int ret;

	if (o->type != MSGPACK_OBJECT_MAP)
		return proto_err(err, errlen, "request: field \"config\": "
				 "expected a map");
	ret = map_fields(o, "config.", config_keys, CK__COUNT, v, &twice, err,
			 errlen);
	if (ret)
		return ret;
	for (int k = 0; k < CK__COUNT && !ret; k++) {
		if (!v[k])
			continue;
		snprintf(name, sizeof(name), "config.%s", config_keys[k]);
		if (k < CK_MTC_PERIOD)
			ret = get_bool(v[k], name, bools[k], err, errlen);
		else if (k < CK_FILTER)
			ret = get_u32(v[k], name, u32s[k - CK_MTC_PERIOD], err,
				      errlen);
		else if (k == CK_FILTER)
			ret = get_text(v[k], name, r->filter,
				       sizeof(r->filter), err, errlen);
		else
			ret = get_uint(v[k], name, UINT64_MAX,
				       u64s[k - CK_PEBS_CONFIG], err, errlen);
	}
	if (!ret && v[CK_FILTER])
		c->filter = r->filter;
	return ret;
}

/* The facility, by bt_facility_parse()'s names (NUL-terminated there). */
static int get_facility(const msgpack_object *o, uint32_t *v, char *err,
			size_t errlen)
{
	char name[16], q[PROTO_QUOTE_MAX + 8];
	int f = -EINVAL;

	if (o->type != MSGPACK_OBJECT_STR)
		return proto_err(err, errlen, "request: field \"facility\": "
				 "expected a string");
	if (o->via.str.size < sizeof(name)) {
		memcpy(name, o->via.str.ptr, o->via.str.size);
		name[o->via.str.size] = '\0';
		if (!memchr(name, '\0', o->via.str.size))
			f = bt_facility_parse(name);
	}
	if (f < 0)
		return proto_err(err, errlen, "request: field \"facility\": "
				 "unknown facility \"%s\" (expected pt, bts, "
				 "pebs, lbr, step or pt-emu)",
				 proto_quote(o->via.str.ptr, o->via.str.size,
					     q, sizeof(q)));
	*v = (uint32_t)f;
	return 0;
}

enum {
	RK_OP, RK_ID, RK_VERSION, RK_NAME, RK_FACILITY, RK_TARGET,
	RK_AUX_BYTES, RK_DATA_BYTES, RK_RING_BYTES, RK_MODE, RK_CONFIG,
	RK_GRANT,
	RK__COUNT,
};
static const char *const req_keys[RK__COUNT] = {
	"op", "id", "version", "name", "facility", "target",
	"aux_bytes", "data_bytes", "ring_bytes", "mode", "config",
	"grant",
};

/* A field the op requires. */
static const msgpack_object *need(const msgpack_object **v, int k,
				  uint32_t op, int *ret, char *err,
				  size_t errlen)
{
	if (!v[k])
		*ret = proto_err(err, errlen, "request: field \"%s\" missing "
				 "(required for op \"%s\")", req_keys[k],
				 op_names[op]);
	return v[k];
}

static int decode_fields(const msgpack_object **v, struct bt_proto_req *r,
			 char *err, size_t errlen)
{
	const msgpack_object *o;
	int ret = 0;

	switch (r->op) {
	case BT_OP_HELLO:
		o = need(v, RK_VERSION, r->op, &ret, err, errlen);
		if (!o || (ret = get_u32(o, "version", &r->version, err,
					 errlen)))
			return ret;
		if (v[RK_NAME])
			ret = get_text(v[RK_NAME], "name", r->name,
				       sizeof(r->name), err, errlen);
		return ret;
	case BT_OP_REQUEST:
		o = need(v, RK_FACILITY, r->op, &ret, err, errlen);
		if (!o || (ret = get_facility(o, &r->facility, err, errlen)))
			return ret;
		o = need(v, RK_TARGET, r->op, &ret, err, errlen);
		if (!o || (ret = get_target(o, &r->target, err, errlen)))
			return ret;
		o = need(v, RK_AUX_BYTES, r->op, &ret, err, errlen);
		if (!o)
			return ret;
		if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    !o->via.u64)
			return proto_err(err, errlen, "request: field "
					 "\"aux_bytes\": expected a positive "
					 "integer");
		r->aux_bytes = o->via.u64;
		if (v[RK_DATA_BYTES] &&
		    (ret = get_uint(v[RK_DATA_BYTES], "data_bytes",
				    UINT64_MAX, &r->data_bytes, err, errlen)))
			return ret;
		if (v[RK_RING_BYTES] &&
		    (ret = get_uint(v[RK_RING_BYTES], "ring_bytes",
				    UINT64_MAX, &r->ring_bytes, err, errlen)))
			return ret;
		if (v[RK_MODE] &&
		    (ret = get_enum(v[RK_MODE], "mode", mode_names,
				    sizeof(mode_names) / sizeof(mode_names[0]),
				    &r->mode, err, errlen)))
			return ret;
		if (v[RK_CONFIG])
			ret = get_config(v[RK_CONFIG], r, err, errlen);
		return ret;
	case BT_OP_RELEASE:
	case BT_OP_ATTACH:
	case BT_OP_SNAPSHOT:
		o = need(v, RK_GRANT, r->op, &ret, err, errlen);
		if (o)
			ret = get_uint(o, "grant", UINT64_MAX, &r->grant, err,
				       errlen);
		return ret;
	default:		/* caps, status: nothing more */
		return 0;
	}
}

/* The parse: 0, or -EPROTO with @err set when it is not one msgpack map. */
static int proto_parse(const void *buf, size_t len, msgpack_zone *zone,
		       msgpack_object *obj, const char *what, char *err,
		       size_t errlen)
{
	msgpack_unpack_return ret;
	size_t off = 0;

	if (!len || !bt_mp_claims_fit(buf, len)) {
		proto_err(err, errlen, "%s: not one msgpack value, or one "
			  "claiming more than its %zu bytes", what, len);
		return -EPROTO;
	}
	/*
	 * msgpack_unpack() is obsolete in msgpack-c but is the one entry
	 * point that parses into a caller's zone (mpcheck.c does the same).
	 */
	ret = msgpack_unpack(buf, len, &off, zone, obj);
	switch (ret) {
	case MSGPACK_UNPACK_SUCCESS:
		break;
	case MSGPACK_UNPACK_EXTRA_BYTES:
		proto_err(err, errlen, "%s: %zu bytes after the map (at "
			  "offset %zu)", what, len - off, off);
		return -EPROTO;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		/*
		 * Also msgpack-c's answer to nesting deeper than its 32-level
		 * stack: bt_mp_claims_fit() bounds what it allocates, so
		 * this is input, not memory.
		 */
		proto_err(err, errlen, "%s: msgpack nested too deep", what);
		return -EPROTO;
	default:
		proto_err(err, errlen, "%s: not one msgpack value (%zu bytes)",
			  what, len);
		return -EPROTO;
	}
	if (obj->type != MSGPACK_OBJECT_MAP) {
		proto_err(err, errlen, "%s: not a msgpack map", what);
		return -EPROTO;
	}
	return 0;
}

int bt_proto_req__decode(const void *buf, size_t len, struct bt_proto_req *out,
			 char *err, size_t errlen)
{
	const msgpack_object *v[RK__COUNT];
	msgpack_object obj;
	msgpack_zone zone;
	char q[PROTO_QUOTE_MAX + 8];
	uint32_t twice;
	int op, ret;

	if (err && errlen)
		err[0] = '\0';
	if (!out || (!buf && len))
		return proto_err(err, errlen, "request: bad arguments");
	memset(out, 0, sizeof(*out));
	out->config.sz = sizeof(out->config);
	if (!msgpack_zone_init(&zone, PROTO_ZONE_CHUNK))
		return -ENOMEM;
	ret = proto_parse(buf, len, &zone, &obj, "request", err, errlen);
	if (ret)
		goto out;
	ret = map_fields(&obj, "", req_keys, RK__COUNT, v, &twice, err,
			 errlen);
	/* The id first, so that even a refused request's reply carries it. */
	if (v[RK_ID] && !(twice & 1u << RK_ID) &&
	    v[RK_ID]->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		out->id = v[RK_ID]->via.u64;
	if (ret)
		goto out;
	if (!v[RK_ID]) {
		ret = proto_err(err, errlen, "request: field \"id\" missing");
		goto out;
	}
	ret = get_uint(v[RK_ID], "id", UINT64_MAX, &out->id, err, errlen);
	if (ret)
		goto out;
	if (!v[RK_OP]) {
		ret = proto_err(err, errlen, "request: field \"op\" missing");
		goto out;
	}
	if (v[RK_OP]->type != MSGPACK_OBJECT_STR) {
		ret = proto_err(err, errlen, "request: field \"op\": expected "
				"a string");
		goto out;
	}
	op = str_lookup(v[RK_OP], op_names, BT_OP__COUNT);
	if (op <= 0) {
		ret = proto_err(err, errlen, "request: field \"op\": unknown "
				"op \"%s\"",
				proto_quote(v[RK_OP]->via.str.ptr,
					    v[RK_OP]->via.str.size, q,
					    sizeof(q)));
		goto out;
	}
	out->op = (uint32_t)op;
	ret = decode_fields(v, out, err, errlen);
out:
	msgpack_zone_destroy(&zone);
	if (ret) {
		uint64_t id = out->id;

		/* "Fields not used by its op are zero": none on an error. */
		memset(out, 0, sizeof(*out));
		out->config.sz = sizeof(out->config);
		out->id = id;
	}
	return ret;
}

/* ---- Output buffer and request encoding -------------------------------- */

void bt_proto_buf__init(struct bt_proto_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->oom = false;
}

void bt_proto_buf__fini(struct bt_proto_buf *b)
{
	if (!b)
		return;
	free(b->data);
	bt_proto_buf__init(b);
}

static int buf_write(void *data, const char *p, size_t n)
{
	struct bt_proto_buf *b = data;

	if (b->oom)
		return -1;
	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 256;
		char *nd;

		while (cap - b->len < n) {
			if (cap > SIZE_MAX / 2) {
				b->oom = true;
				return -1;
			}
			cap *= 2;
		}
		nd = realloc(b->data, cap);
		if (!nd) {
			b->oom = true;
			return -1;
		}
		b->data = nd;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void bt_proto_buf__packer(struct bt_proto_buf *b, msgpack_packer *pk)
{
	msgpack_packer_init(pk, b, buf_write);
}

void bt_proto_pack_key(msgpack_packer *pk, const char *key)
{
	msgpack_pack_str_with_body(pk, key, strlen(key));
}

void bt_proto_pack_str(msgpack_packer *pk, const char *s)
{
	if (s)
		msgpack_pack_str_with_body(pk, s, strlen(s));
	else
		msgpack_pack_nil(pk);
}

static void pack_u64(msgpack_packer *pk, const char *key, uint64_t v)
{
	bt_proto_pack_key(pk, key);
	msgpack_pack_uint64(pk, v);
}

static void pack_kstr(msgpack_packer *pk, const char *key, const char *s)
{
	bt_proto_pack_key(pk, key);
	bt_proto_pack_str(pk, s);
}

/* The filter a request carries: config.filter, else filter[] if set. */
static const char *req_filter(const struct bt_proto_req *r)
{
	if (r->config.filter)
		return r->config.filter;
	return r->filter[0] ? r->filter : NULL;
}

/* What the decoder would refuse, refused before anything is written. */
static int encode_check(const struct bt_proto_req *r)
{
	const char *filter = req_filter(r);

	if (!bt_proto_op_name(r->op))
		return -EINVAL;
	if (r->op == BT_OP_HELLO &&
	    strnlen(r->name, sizeof(r->name)) == sizeof(r->name))
		return -EINVAL;
	if (r->op != BT_OP_REQUEST)
		return 0;
	if (!bt_facility_name(r->facility) || !r->aux_bytes ||
	    r->mode > BT_MODE_SNAPSHOT || r->target.kind > BT_TARGET_ALL)
		return -EINVAL;
	if ((r->target.kind == BT_TARGET_TASK && r->target.id <= 0) ||
	    (r->target.kind == BT_TARGET_CPU && r->target.id < 0))
		return -EINVAL;
	if (filter && strnlen(filter, BT_PROTO_FILTER_MAX) ==
		      BT_PROTO_FILTER_MAX)
		return -EINVAL;
	return 0;
}

static void encode_config(msgpack_packer *pk, const struct bt_proto_req *r)
{
	const struct bt_trace_config *c = &r->config;
	const bool bools[] = {
		c->user, c->kernel, c->tsc, c->mtc, c->cyc, c->noretcomp,
		c->no_branch,
	};
	const uint64_t nums[] = {
		c->mtc_period, c->cyc_thresh, c->psb_period, 0,
		c->pebs_config, c->period, c->branch_sample_type,
	};
	const char *filter = req_filter(r);
	uint32_t n = filter ? 1 : 0;

	_Static_assert(CK_MTC_PERIOD == 7 && CK__COUNT == 14,
		       "config keys: bools, then numbers, filter at 10");
	/* Only what is set: the decoder reads an absent field as zero. */
	for (int k = 0; k < CK_MTC_PERIOD; k++)
		n += bools[k];
	for (int k = CK_MTC_PERIOD; k < CK__COUNT; k++)
		n += k != CK_FILTER && nums[k - CK_MTC_PERIOD];
	if (!n)
		return;
	bt_proto_pack_key(pk, "config");
	msgpack_pack_map(pk, n);
	for (int k = 0; k < CK_MTC_PERIOD; k++) {
		if (bools[k]) {
			bt_proto_pack_key(pk, config_keys[k]);
			msgpack_pack_true(pk);
		}
	}
	for (int k = CK_MTC_PERIOD; k < CK__COUNT; k++) {
		if (k == CK_FILTER && filter)
			pack_kstr(pk, config_keys[k], filter);
		else if (k != CK_FILTER && nums[k - CK_MTC_PERIOD])
			pack_u64(pk, config_keys[k], nums[k - CK_MTC_PERIOD]);
	}
}

/* Map entries of a "request" request (beside op and id). */
static uint32_t request_nfields(const struct bt_proto_req *r)
{
	const struct bt_trace_config *c = &r->config;
	bool config = req_filter(r) || c->user || c->kernel || c->tsc ||
		      c->mtc || c->cyc || c->noretcomp || c->no_branch ||
		      c->mtc_period || c->cyc_thresh || c->psb_period ||
		      c->pebs_config || c->period || c->branch_sample_type;

	return 4 + !!r->data_bytes + !!r->ring_bytes + config;
}

int bt_proto_req__encode(const struct bt_proto_req *r, struct bt_proto_buf *b)
{
	msgpack_packer pk;
	uint32_t n;
	int ret;

	if (!r || !b)
		return -EINVAL;
	ret = encode_check(r);
	if (ret)
		return ret;
	b->len = 0;
	b->oom = false;
	bt_proto_buf__packer(b, &pk);
	switch (r->op) {
	case BT_OP_HELLO:
		n = 1 + !!r->name[0];
		break;
	case BT_OP_REQUEST:
		n = request_nfields(r);
		break;
	case BT_OP_RELEASE:
	case BT_OP_ATTACH:
	case BT_OP_SNAPSHOT:
		n = 1;
		break;
	default:
		n = 0;
		break;
	}
	msgpack_pack_map(&pk, 2 + n);
	pack_kstr(&pk, "op", bt_proto_op_name(r->op));
	pack_u64(&pk, "id", r->id);
	switch (r->op) {
	case BT_OP_HELLO:
		pack_u64(&pk, "version", r->version);
		if (r->name[0])
			pack_kstr(&pk, "name", r->name);
		break;
	case BT_OP_REQUEST:
		pack_kstr(&pk, "facility", bt_facility_name(r->facility));
		bt_proto_pack_key(&pk, "target");
		msgpack_pack_map(&pk, r->target.kind == BT_TARGET_ALL ? 1 : 2);
		pack_kstr(&pk, "kind", kind_names[r->target.kind]);
		if (r->target.kind != BT_TARGET_ALL) {
			bt_proto_pack_key(&pk, "id");
			msgpack_pack_int32(&pk, r->target.id);
		}
		pack_u64(&pk, "aux_bytes", r->aux_bytes);
		if (r->data_bytes)
			pack_u64(&pk, "data_bytes", r->data_bytes);
		if (r->ring_bytes)
			pack_u64(&pk, "ring_bytes", r->ring_bytes);
		pack_kstr(&pk, "mode", mode_names[r->mode]);
		encode_config(&pk, r);
		break;
	case BT_OP_RELEASE:
	case BT_OP_ATTACH:
	case BT_OP_SNAPSHOT:
		pack_u64(&pk, "grant", r->grant);
		break;
	default:
		break;
	}
	return b->oom ? -ENOMEM : 0;
}

/* ---- Replies ------------------------------------------------------------- */

void bt_proto_reply__begin(msgpack_packer *pk, uint64_t id, uint32_t nfields)
{
	msgpack_pack_map(pk, 2 + nfields);
	pack_u64(pk, "id", id);
	bt_proto_pack_key(pk, "ok");
	msgpack_pack_true(pk);
}

void bt_proto_reply__error(msgpack_packer *pk, uint64_t id, int errnum,
			   const char *msg, int holder_pid, const char *holder)
{
	/* Either sign is taken; 0 is no error code: a bug, told as EIO. */
	int e = errnum < 0 ? -errnum : errnum;

	if (e <= 0)
		e = EIO;
	msgpack_pack_map(pk, holder_pid > 0 ? 6 : 4);
	pack_u64(pk, "id", id);
	bt_proto_pack_key(pk, "ok");
	msgpack_pack_false(pk);
	pack_u64(pk, "errno", (uint64_t)e);
	pack_kstr(pk, "error", msg ? msg : "");
	if (holder_pid > 0) {
		pack_u64(pk, "holder_pid", (uint64_t)holder_pid);
		pack_kstr(pk, "holder", holder ? holder : "");
	}
}

/* A malformed reply: -EPROTO. */
#define reply_err(err, errlen, ...) say_ret(-EPROTO, err, errlen, __VA_ARGS__)

enum { EK_ID, EK_OK, EK_ERRNO, EK_ERROR, EK__COUNT };
static const char *const env_keys[EK__COUNT] = {
	"id", "ok", "errno", "error",
};

int bt_proto_reply__decode(const void *buf, size_t len, msgpack_zone *zone,
			   msgpack_object *obj, uint64_t *id, bool *ok,
			   int *errnum, char *err, size_t errlen)
{
	const msgpack_object *v[EK__COUNT] = { NULL };
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (errnum)
		*errnum = 0;
	if (!zone || !obj || (!buf && len))
		return -EINVAL;
	/*
	 * msgpack-c's strings point into the buffer it parsed: parse a copy
	 * kept in @zone, so that the object lives as long as the zone says.
	 */
	if (len) {
		void *copy = msgpack_zone_malloc(zone, len);

		if (!copy)
			return -ENOMEM;
		buf = memcpy(copy, buf, len);
	}
	ret = proto_parse(buf, len, zone, obj, "reply", err, errlen);
	if (ret)
		return ret;
	for (uint32_t i = 0; i < obj->via.map.size; i++) {
		const msgpack_object_kv *kv = &obj->via.map.ptr[i];
		int k;

		if (kv->key.type != MSGPACK_OBJECT_STR)
			return reply_err(err, errlen, "reply: key %" PRIu32
					 " is not a string", i);
		k = str_lookup(&kv->key, env_keys, EK__COUNT);
		if (k < 0)
			continue;
		if (v[k])
			return reply_err(err, errlen, "reply: field \"%s\" "
					 "given twice", env_keys[k]);
		v[k] = &kv->val;
	}
	if (!v[EK_ID] || v[EK_ID]->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return reply_err(err, errlen, "reply: field \"id\" missing or "
				 "not an unsigned integer");
	if (!v[EK_OK] || v[EK_OK]->type != MSGPACK_OBJECT_BOOLEAN)
		return reply_err(err, errlen, "reply: field \"ok\" missing or "
				 "not a boolean");
	if (!v[EK_OK]->via.boolean) {
		const msgpack_object *s = v[EK_ERROR];

		if (!v[EK_ERRNO] ||
		    v[EK_ERRNO]->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    !v[EK_ERRNO]->via.u64 || v[EK_ERRNO]->via.u64 > INT_MAX)
			return reply_err(err, errlen, "reply: field \"errno\" "
					 "missing or not a positive integer");
		if (!s || s->type != MSGPACK_OBJECT_STR)
			return reply_err(err, errlen, "reply: field \"error\" "
					 "missing or not a string");
		if (errnum)
			*errnum = (int)v[EK_ERRNO]->via.u64;
		if (err && errlen) {
			size_t n = s->via.str.size < errlen - 1 ?
				   s->via.str.size : errlen - 1;

			memcpy(err, s->via.str.ptr, n);
			err[n] = '\0';
		}
	}
	if (id)
		*id = v[EK_ID]->via.u64;
	if (ok)
		*ok = v[EK_OK]->via.boolean;
	return 0;
}

const msgpack_object *bt_proto_get(const msgpack_object *map, const char *key)
{
	if (!map || !key || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		if (str_is(&map->via.map.ptr[i].key, key))
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

bool bt_proto_get_u64(const msgpack_object *map, const char *key, uint64_t *v)
{
	const msgpack_object *o = bt_proto_get(map, key);

	if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return false;
	*v = o->via.u64;
	return true;
}

bool bt_proto_get_i64(const msgpack_object *map, const char *key, int64_t *v)
{
	const msgpack_object *o = bt_proto_get(map, key);

	if (!o)
		return false;
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		*v = o->via.i64;
	else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		 o->via.u64 <= INT64_MAX)
		*v = (int64_t)o->via.u64;
	else
		return false;
	return true;
}

bool bt_proto_get_bool(const msgpack_object *map, const char *key, bool *v)
{
	const msgpack_object *o = bt_proto_get(map, key);

	if (!o || o->type != MSGPACK_OBJECT_BOOLEAN)
		return false;
	*v = o->via.boolean;
	return true;
}

bool bt_proto_get_str(const msgpack_object *map, const char *key, char *buf,
		      size_t len)
{
	const msgpack_object *o = bt_proto_get(map, key);
	size_t n;

	if (!o || o->type != MSGPACK_OBJECT_STR || !buf || !len)
		return false;
	n = o->via.str.size < len - 1 ? o->via.str.size : len - 1;
	memcpy(buf, o->via.str.ptr, n);
	buf[n] = '\0';
	return true;
}

/* ---- Frames over a socket ------------------------------------------------ */

/*
 * Wait for @events on @fd: the socket said EAGAIN but we must block. Not
 * for ever: a peer that stops reading (or stops mid-frame) must not hold
 * a daemon's only thread.
 */
static int proto_wait(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	while ((n = poll(&p, 1, BT_PROTO_IO_WAIT_MS)) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return n ? 0 : -ETIMEDOUT;
}

int bt_proto_send(int fd, const void *body, size_t len, const int *fds,
		  unsigned nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * BT_PROTO_MAX_FDS)];
	} ctl;
	unsigned char hdr[4];
	struct iovec iov[2], *v = iov;
	struct msghdr msg = { 0 };
	int ret;

	if (len > BT_PROTO_MAX || nfds > BT_PROTO_MAX_FDS)
		return -EMSGSIZE;
	if (!len || !body || (nfds && !fds))
		return -EINVAL;
	hdr[0] = (unsigned char)(len >> 24);
	hdr[1] = (unsigned char)(len >> 16);
	hdr[2] = (unsigned char)(len >> 8);
	hdr[3] = (unsigned char)len;
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)body;
	iov[1].iov_len = len;
	msg.msg_iov = v;
	msg.msg_iovlen = 2;
	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	while (msg.msg_iovlen) {
		ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
		size_t left;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ret = proto_wait(fd, POLLOUT);
				if (ret)
					return ret;
				continue;
			}
			return -errno;
		}
		if (!n)
			return -EPIPE;
		/* The fds went with the first byte; never send them twice. */
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
		left = (size_t)n;
		while (left && msg.msg_iovlen) {
			if (left >= v->iov_len) {
				left -= v->iov_len;
				v++;
				msg.msg_iovlen--;
			} else {
				v->iov_base = (char *)v->iov_base + left;
				v->iov_len -= left;
				left = 0;
			}
		}
		msg.msg_iov = v;
	}
	return 0;
}

struct recv_state {
	int *fds;
	unsigned maxfds;
	unsigned nfds;
	size_t done;		/* bytes of this frame read so far */
};

/* Keep the fds of one control message; close those beyond maxfds. */
static void recv_take_fds(struct recv_state *st, struct msghdr *msg)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c;
	     c = CMSG_NXTHDR(msg, c)) {
		size_t n;
		int fd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (st->nfds < st->maxfds)
				st->fds[st->nfds++] = fd;
			else
				close(fd);
		}
	}
}

/* Read exactly @n bytes into @p, gathering fds from every chunk. */
static int recv_exact(int fd, void *p, size_t n, struct recv_state *st)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * BT_PROTO_MAX_FDS)];
	} ctl;
	size_t got = 0;
	int ret;

	while (got < n) {
		struct iovec iov = {
			.iov_base = (char *)p + got,
			.iov_len = n - got,
		};
		struct msghdr msg = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = ctl.buf,
			.msg_controllen = sizeof(ctl.buf),
		};
		ssize_t r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ret = proto_wait(fd, POLLIN);
				if (ret)
					return ret;
				continue;
			}
			return -errno;
		}
		recv_take_fds(st, &msg);
		if (msg.msg_flags & MSG_CTRUNC) {
			/* More fds than a frame may carry: some were lost. */
			pr_debug("proto: a frame came with more than %u fds",
				 BT_PROTO_MAX_FDS);
			return -EPROTO;
		}
		if (!r)
			return st->done ? -EPROTO : -ECONNRESET;
		got += (size_t)r;
		st->done += (size_t)r;
	}
	return 0;
}

int bt_proto_recv(int fd, void **body, size_t *len, int *fds, unsigned maxfds,
		  unsigned *nfds)
{
	struct recv_state st = {
		.fds = fds, .maxfds = fds ? maxfds : 0,
	};
	unsigned char hdr[4];
	void *p = NULL;
	uint32_t n;
	int ret;

	if (nfds)
		*nfds = 0;
	if (!body || !len)
		return -EINVAL;
	*body = NULL;
	*len = 0;
	ret = recv_exact(fd, hdr, sizeof(hdr), &st);
	if (ret)
		goto err_close;
	n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	if (!n || n > BT_PROTO_MAX) {
		pr_debug("proto: frame length %" PRIu32 " not in 1..%u", n,
			 BT_PROTO_MAX);
		ret = -EPROTO;
		goto err_close;
	}
	p = malloc(n);
	if (!p) {
		ret = -ENOMEM;
		goto err_close;
	}
	ret = recv_exact(fd, p, n, &st);
	if (ret)
		goto err_close;
	*body = p;
	*len = n;
	if (nfds)
		*nfds = st.nfds;
	else
		for (unsigned i = 0; i < st.nfds; i++)
			close(st.fds[i]);
	return 0;

err_close:
	free(p);
	for (unsigned i = 0; i < st.nfds; i++)
		close(st.fds[i]);
	return ret;
}

/* ---- Incremental reader -------------------------------------------------- */

void bt_proto_rx__init(struct bt_proto_rx *rx, size_t max)
{
	memset(rx, 0, sizeof(*rx));
	/* Lengths are 32 bits: a larger @max would accept anything. */
	rx->max = max && max <= UINT32_MAX ? max : BT_PROTO_MAX;
}

void bt_proto_rx__fini(struct bt_proto_rx *rx)
{
	if (!rx)
		return;
	free(rx->buf);
	rx->buf = NULL;
	rx->len = rx->cap = rx->off = 0;
}

/* The length at @rx->off, if its header is all here: 1, 0, or -EPROTO. */
static int rx_header(struct bt_proto_rx *rx, size_t *n)
{
	const unsigned char *h = rx->buf + rx->off;

	if (rx->len - rx->off < 4)
		return 0;
	*n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 |
	     h[3];
	if (!*n || *n > rx->max) {
		rx->failed = true;
		return -EPROTO;
	}
	return 1;
}

int bt_proto_rx__feed(struct bt_proto_rx *rx, const void *p, size_t n)
{
	size_t n_hdr;

	if (rx->failed)
		return -EPROTO;
	if (!n)
		return 0;
	if (!p)
		return -EINVAL;
	/* Frames taken are gone now: their pointers end with this call. */
	if (rx->off) {
		memmove(rx->buf, rx->buf + rx->off, rx->len - rx->off);
		rx->len -= rx->off;
		rx->off = 0;
	}
	if (n > rx->cap - rx->len) {
		size_t cap = rx->cap ? rx->cap : 4096;
		unsigned char *nb;

		while (cap - rx->len < n) {
			if (cap > SIZE_MAX / 2)
				return -ENOMEM;
			cap *= 2;
		}
		nb = realloc(rx->buf, cap);
		if (!nb)
			return -ENOMEM;
		rx->buf = nb;
		rx->cap = cap;
	}
	memcpy(rx->buf + rx->len, p, n);
	rx->len += n;
	/* A bad length fails now, before more of its "body" piles up. */
	return rx_header(rx, &n_hdr) < 0 ? -EPROTO : 0;
}

int bt_proto_rx__next(struct bt_proto_rx *rx, const void **body, size_t *len)
{
	size_t n;
	int ret;

	if (rx->failed)
		return -EPROTO;
	ret = rx_header(rx, &n);
	if (ret <= 0)
		return ret;
	if (rx->len - rx->off - 4 < n)
		return 0;
	*body = rx->buf + rx->off + 4;
	*len = n;
	rx->off += 4 + n;
	return 1;
}
