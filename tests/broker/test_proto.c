// SPDX-License-Identifier: BSD-3-Clause
/*
 * The btraild wire protocol (src/broker/proto.c, docs/protocol.md):
 * every request written and read back; a table of malformed requests,
 * each refused with its exact errno and a message naming the field;
 * reply envelopes; frames over a socketpair with fds riding along; the
 * incremental reader fed a byte at a time; and seeded random mutations.
 *
 * Malformed requests are written in a small msgpack notation (mp()
 * below) so that a row says what it sends: {op:"caps",id:1,id:2}. Inputs
 * are malloc'd at their exact length so that a sanitizer build catches a
 * read past the end.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>

#include "broker/proto.h"

TestSuite(proto);

/* ---- A msgpack notation for test input ---------------------------------- */

/*
 * {k:v,...} map, [v,...] array, "text" with \xNN escapes ("a"*64 repeats
 * it), 123 / -5 integers (i8:5, i16:, i32:, i64: force a signed
 * encoding), f1.5 a double, true false nil, bare words are strings.
 */
static const char *mp_value(msgpack_packer *pk, const char *s);

static const char *mp_ws(const char *s)
{
	while (*s == ' ')
		s++;
	return s;
}

static const char *mp_seq(msgpack_packer *pk, const char *s, char close,
			  bool map)
{
	/* Count the elements first: a dry run into a throwaway buffer. */
	msgpack_sbuffer sb;
	msgpack_packer dry;
	const char *p = mp_ws(s);
	uint32_t n = 0;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&dry, &sb, msgpack_sbuffer_write);
	while (*p != close) {
		p = mp_value(&dry, p);
		if (map) {
			cr_assert(eq(chr, *p, ':'), "mp: ':' expected at %s", p);
			p = mp_value(&dry, p + 1);
		}
		n++;
		if (*p == ',')
			p = mp_ws(p + 1);
	}
	msgpack_sbuffer_destroy(&sb);
	if (map)
		msgpack_pack_map(pk, n);
	else
		msgpack_pack_array(pk, n);
	p = mp_ws(s);
	while (*p != close) {
		p = mp_value(pk, p);
		if (map)
			p = mp_value(pk, p + 1);
		if (*p == ',')
			p = mp_ws(p + 1);
	}
	return mp_ws(p + 1);
}

static const char *mp_value(msgpack_packer *pk, const char *s)
{
	char text[4096], *end;
	size_t n = 0;

	s = mp_ws(s);
	if (*s == '{')
		return mp_seq(pk, s + 1, '}', true);
	if (*s == '[')
		return mp_seq(pk, s + 1, ']', false);
	if (*s == '"') {
		size_t one, reps = 1;

		for (s++; *s != '"'; s++) {
			cr_assert(ne(chr, *s, '\0'));
			if (s[0] == '\\' && s[1] == 'x') {
				text[n++] = (char)strtoul((char[]){ s[2], s[3],
								    0 },
							  NULL, 16);
				s += 3;
			} else {
				text[n++] = *s;
			}
		}
		s++;
		if (*s == '*')
			reps = strtoul(s + 1, &end, 10), s = end;
		one = n;
		cr_assert(le(sz, one * reps, sizeof(text)));
		for (size_t r = 1; r < reps; r++)
			memcpy(text + r * one, text, one);
		msgpack_pack_str_with_body(pk, text, one * reps);
		return mp_ws(s);
	}
	if (*s == 'i' && isdigit((unsigned char)s[1])) {
		long bits = strtol(s + 1, &end, 10);
		long long v = strtoll(end + 1, &end, 10);

		if (bits == 8)
			msgpack_pack_int8(pk, (int8_t)v);
		else if (bits == 16)
			msgpack_pack_int16(pk, (int16_t)v);
		else if (bits == 32)
			msgpack_pack_int32(pk, (int32_t)v);
		else
			msgpack_pack_int64(pk, v);
		return mp_ws(end);
	}
	if (*s == 'f' && (isdigit((unsigned char)s[1]) || s[1] == '-')) {
		msgpack_pack_double(pk, strtod(s + 1, &end));
		return mp_ws(end);
	}
	if (*s == '-') {
		msgpack_pack_int64(pk, strtoll(s, &end, 10));
		return mp_ws(end);
	}
	if (isdigit((unsigned char)*s)) {
		msgpack_pack_uint64(pk, strtoull(s, &end, 10));
		return mp_ws(end);
	}
	while (isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == '-' ||
	       s[n] == '.')
		n++;
	cr_assert(gt(sz, n, 0), "mp: cannot read %s", s);
	if (n == 4 && !strncmp(s, "true", 4))
		msgpack_pack_true(pk);
	else if (n == 5 && !strncmp(s, "false", 5))
		msgpack_pack_false(pk);
	else if (n == 3 && !strncmp(s, "nil", 3))
		msgpack_pack_nil(pk);
	else
		msgpack_pack_str_with_body(pk, s, n);
	return mp_ws(s + n);
}

/* @spec packed into @b; the whole spec must be one value. */
static void mp(struct bt_proto_buf *b, const char *spec)
{
	msgpack_packer pk;
	const char *rest;

	bt_proto_buf__init(b);
	bt_proto_buf__packer(b, &pk);
	rest = mp_value(&pk, spec);
	cr_assert(eq(str, (char *)rest, ""), "mp: left over: %s", rest);
	cr_assert(not(b->oom));
}

/* ---- Helpers ------------------------------------------------------------- */

/* bt_proto_req__decode() on an exact-size heap copy. */
static int decode(const void *buf, size_t len, struct bt_proto_req *r,
		  char *err, size_t errlen)
{
	unsigned char *p = malloc(len ? len : 1);
	int ret;

	cr_assert(ne(ptr, p, NULL));
	if (len)
		memcpy(p, buf, len);
	ret = bt_proto_req__decode(p, len, r, err, errlen);
	free(p);
	return ret;
}

static void req_assert_eq(const struct bt_proto_req *a,
			  const struct bt_proto_req *b)
{
	const struct bt_trace_config *x = &a->config, *y = &b->config;

	cr_assert(eq(u32, a->op, b->op));
	cr_assert(eq(u64, a->id, b->id));
	cr_assert(eq(u32, a->version, b->version));
	cr_assert(eq(str, (char *)a->name, (char *)b->name));
	cr_assert(eq(u32, a->facility, b->facility));
	cr_assert(eq(u32, a->target.kind, b->target.kind));
	cr_assert(eq(i32, a->target.id, b->target.id));
	cr_assert(eq(u64, a->aux_bytes, b->aux_bytes));
	cr_assert(eq(u64, a->data_bytes, b->data_bytes));
	cr_assert(eq(u64, a->ring_bytes, b->ring_bytes));
	cr_assert(eq(u32, a->mode, b->mode));
	cr_assert(eq(u64, a->grant, b->grant));
	cr_assert(eq(sz, x->sz, sizeof(*x)));
	cr_assert(eq(sz, y->sz, sizeof(*y)));
	cr_assert(eq(int, x->user, y->user));
	cr_assert(eq(int, x->kernel, y->kernel));
	cr_assert(eq(int, x->tsc, y->tsc));
	cr_assert(eq(int, x->mtc, y->mtc));
	cr_assert(eq(int, x->cyc, y->cyc));
	cr_assert(eq(int, x->noretcomp, y->noretcomp));
	cr_assert(eq(int, x->no_branch, y->no_branch));
	cr_assert(eq(u32, x->mtc_period, y->mtc_period));
	cr_assert(eq(u32, x->cyc_thresh, y->cyc_thresh));
	cr_assert(eq(u32, x->psb_period, y->psb_period));
	cr_assert(eq(u64, x->pebs_config, y->pebs_config));
	cr_assert(eq(u64, x->period, y->period));
	cr_assert(eq(u64, x->branch_sample_type, y->branch_sample_type));
	cr_assert(eq(int, x->filter == NULL, y->filter == NULL));
	if (x->filter)
		cr_assert(eq(str, (char *)x->filter, (char *)y->filter));
}

static struct bt_proto_req *add(struct bt_proto_req *r, size_t *n,
				size_t max)
{
	cr_assert(lt(sz, *n, max));
	memset(&r[*n], 0, sizeof(r[*n]));
	r[*n].config.sz = sizeof(r[*n].config);
	return &r[(*n)++];
}

/* Every op, and every optional field set and unset. */
static size_t sample_reqs(struct bt_proto_req *r, size_t max)
{
	struct bt_proto_req *q;
	size_t n = 0;

	q = add(r, &n, max);
	q->op = BT_OP_HELLO, q->id = 1, q->version = BT_PROTO_VERSION;
	q = add(r, &n, max);
	q->op = BT_OP_HELLO, q->id = 2, q->version = 4294967295u;
	memset(q->name, 'n', BT_PROTO_NAME_MAX - 1);
	q = add(r, &n, max);
	q->op = BT_OP_CAPS, q->id = 0;
	q = add(r, &n, max);
	q->op = BT_OP_STATUS, q->id = UINT64_MAX;
	for (uint32_t f = 0; f < BT_FAC__COUNT; f++) {
		q = add(r, &n, max);
		q->op = BT_OP_REQUEST, q->id = 10 + f, q->facility = f;
		q->target.kind = f % 3;
		q->target.id = f % 3 == BT_TARGET_TASK ? 4242 :
			       f % 3 == BT_TARGET_CPU ? (int32_t)f : 0;
		q->aux_bytes = 1ull << (12 + f);
		q->mode = f & 1;
	}
	q = add(r, &n, max);		/* everything set */
	q->op = BT_OP_REQUEST, q->id = 99, q->facility = BT_FAC_PT;
	q->target.kind = BT_TARGET_TASK, q->target.id = INT32_MAX;
	q->aux_bytes = UINT64_MAX, q->data_bytes = 1 << 20;
	q->ring_bytes = 3ull << 32, q->mode = BT_MODE_SNAPSHOT;
	q->config = (struct bt_trace_config){
		.sz = sizeof(q->config), .user = true, .kernel = true,
		.tsc = true, .mtc = true, .cyc = true, .noretcomp = true,
		.no_branch = true, .mtc_period = 15, .cyc_thresh = 0xffffffff,
		.psb_period = 3, .pebs_config = 0x1cd, .period = 10007,
		.branch_sample_type = UINT64_MAX,
	};
	memset(q->filter, 'f', BT_PROTO_FILTER_MAX - 1);
	q->config.filter = q->filter;
	q = add(r, &n, max);		/* an empty filter is still a filter */
	q->op = BT_OP_REQUEST, q->id = 100, q->facility = BT_FAC_BTS;
	q->target.kind = BT_TARGET_CPU, q->target.id = 0, q->aux_bytes = 1;
	q->config.filter = q->filter;
	q = add(r, &n, max);
	q->op = BT_OP_RELEASE, q->id = 7, q->grant = 0;
	q = add(r, &n, max);
	q->op = BT_OP_ATTACH, q->id = 8, q->grant = UINT64_MAX;
	q = add(r, &n, max);
	q->op = BT_OP_SNAPSHOT, q->id = 9, q->grant = 12345;
	return n;
}

static void encode_ok(const struct bt_proto_req *r, struct bt_proto_buf *b)
{
	bt_proto_buf__init(b);
	cr_assert(eq(int, bt_proto_req__encode(r, b), 0), "op %u", r->op);
	cr_assert(gt(sz, b->len, 0));
}

/* ---- Round trips --------------------------------------------------------- */

Test(proto, op_names)
{
	cr_assert(eq(str, (char *)bt_proto_op_name(BT_OP_HELLO), "hello"));
	cr_assert(eq(str, (char *)bt_proto_op_name(BT_OP_STATUS), "status"));
	cr_assert(eq(ptr, (void *)bt_proto_op_name(0), NULL));
	cr_assert(eq(ptr, (void *)bt_proto_op_name(BT_OP__COUNT), NULL));
}

Test(proto, roundtrip_every_op)
{
	struct bt_proto_req reqs[32], back;
	bool seen[BT_OP__COUNT] = { false };
	size_t n = sample_reqs(reqs, 32);
	char err[256];

	for (size_t i = 0; i < n; i++) {
		struct bt_proto_buf b;

		encode_ok(&reqs[i], &b);
		memset(&back, 0xa5, sizeof(back));
		cr_assert(eq(int, decode(b.data, b.len, &back, err,
					 sizeof(err)), 0),
			  "request %zu: %s", i, err);
		cr_assert(eq(str, err, ""));
		req_assert_eq(&back, &reqs[i]);
		if (back.config.filter)
			cr_assert(eq(ptr, (void *)back.config.filter,
				     back.filter));
		seen[back.op] = true;
		bt_proto_buf__fini(&b);
	}
	for (uint32_t op = 1; op < BT_OP__COUNT; op++)
		cr_assert(seen[op], "op %s not tried", bt_proto_op_name(op));
}

Test(proto, encode_refuses_what_decode_would)
{
	struct bt_proto_req r;
	struct bt_proto_buf b;

	bt_proto_buf__init(&b);
	memset(&r, 0, sizeof(r));
	cr_assert(eq(int, bt_proto_req__encode(&r, &b), -EINVAL));  /* op 0 */
	r.op = BT_OP__COUNT;
	cr_assert(eq(int, bt_proto_req__encode(&r, &b), -EINVAL));
	r.op = BT_OP_HELLO;
	memset(r.name, 'x', sizeof(r.name));		/* no NUL */
	cr_assert(eq(int, bt_proto_req__encode(&r, &b), -EINVAL));
	memset(&r, 0, sizeof(r));
	r.op = BT_OP_REQUEST, r.facility = BT_FAC_PT;
	r.target.kind = BT_TARGET_TASK, r.target.id = 1;
	cr_assert(eq(int, bt_proto_req__encode(&r, &b), -EINVAL)); /* aux 0 */
	r.aux_bytes = 4096;
	cr_assert(eq(int, bt_proto_req__encode(&r, &b), 0));
	r.target.id = 0;
	cr_assert(eq(int, bt_proto_req__encode(&r, &b), -EINVAL));
	r.target.kind = BT_TARGET_CPU, r.target.id = -1;
	cr_assert(eq(int, bt_proto_req__encode(&r, &b), -EINVAL));
	r.target.kind = 3, r.target.id = 0;
	cr_assert(eq(int, bt_proto_req__encode(&r, &b), -EINVAL));
	r.target.kind = BT_TARGET_ALL, r.facility = BT_FAC__COUNT;
	cr_assert(eq(int, bt_proto_req__encode(&r, &b), -EINVAL));
	r.facility = BT_FAC_PEBS, r.mode = 2;
	cr_assert(eq(int, bt_proto_req__encode(&r, &b), -EINVAL));
	bt_proto_buf__fini(&b);
}

/* ---- Malformed requests -------------------------------------------------- */

struct bad_row {
	const char *spec;	/* mp() notation */
	int err;		/* the errno decode returns */
	const char *says;	/* in the message (names the field) */
	uint64_t id;		/* the id decode still reports */
};

#define REQ	"op:\"request\",id:5,facility:\"pt\""
#define TGT	"target:{kind:\"task\",id:100}"

static const struct bad_row bad_rows[] = {
	/* the envelope */
	{ "{id:1}", EINVAL, "\"op\" missing", 1 },
	{ "{op:\"caps\"}", EINVAL, "\"id\" missing", 0 },
	{ "{op:1,id:2}", EINVAL, "\"op\": expected a string", 2 },
	{ "{op:\"frob\",id:3}", EINVAL, "\"op\": unknown op \"frob\"", 3 },
	{ "{op:\"\",id:3}", EINVAL, "\"op\": unknown op", 3 },
	{ "{op:\"caps\\x00\",id:3}", EINVAL, "unknown op \"caps?\"", 3 },
	{ "{op:\"caps\",id:-1}", EINVAL, "\"id\": -1 is negative", 0 },
	{ "{op:\"caps\",id:\"1\"}", EINVAL, "\"id\": expected an unsigned", 0 },
	{ "{op:\"caps\",id:f1.0}", EINVAL, "\"id\"", 0 },
	{ "{op:\"caps\",id:1,id:2}", EINVAL, "\"id\" given twice", 0 },
	{ "{op:\"caps\",id:1,op:\"caps\"}", EINVAL, "\"op\" given twice", 1 },
	{ "{op:\"caps\",id:1,7:1}", EINVAL, "key 2 of the map is not a string",
	  1 },
	{ "{nil:1,op:\"caps\",id:1}", EINVAL, "key 0 of the map", 1 },
	/* hello */
	{ "{op:\"hello\",id:1}", EINVAL, "\"version\" missing", 1 },
	{ "{op:\"hello\",id:1,version:\"1\"}", EINVAL, "\"version\"", 1 },
	{ "{op:\"hello\",id:1,version:true}", EINVAL, "\"version\"", 1 },
	{ "{op:\"hello\",id:1,version:4294967296}", EINVAL,
	  "\"version\": 4294967296 is over 4294967295", 1 },
	{ "{op:\"hello\",id:1,version:1,name:\"a\"*64}", EINVAL,
	  "\"name\": 64 bytes, at most 63", 1 },
	{ "{op:\"hello\",id:1,version:1,name:5}", EINVAL,
	  "\"name\": expected a string", 1 },
	{ "{op:\"hello\",id:1,version:1,name:\"a\\x00b\"}", EINVAL,
	  "\"name\": holds a NUL", 1 },
	/* request */
	{ "{op:\"request\",id:5," TGT ",aux_bytes:1}", EINVAL,
	  "\"facility\" missing", 5 },
	{ "{" REQ ",aux_bytes:1}", EINVAL, "\"target\" missing", 5 },
	{ "{" REQ "," TGT "}", EINVAL, "\"aux_bytes\" missing", 5 },
	{ "{op:\"request\",id:5,facility:\"ipt\"," TGT ",aux_bytes:1}",
	  EINVAL, "\"facility\": unknown facility \"ipt\"", 5 },
	{ "{op:\"request\",id:5,facility:\"pt\"*40," TGT ",aux_bytes:1}",
	  EINVAL, "\"facility\": unknown facility", 5 },
	{ "{op:\"request\",id:5,facility:1," TGT ",aux_bytes:1}", EINVAL,
	  "\"facility\": expected a string", 5 },
	{ "{op:\"request\",id:5,facility:\"pt\\x00\"," TGT ",aux_bytes:1}",
	  EINVAL, "\"facility\"", 5 },
	{ "{" REQ ",target:5,aux_bytes:1}", EINVAL, "\"target\": expected a map",
	  5 },
	{ "{" REQ ",target:{kind:\"proc\",id:1},aux_bytes:1}", EINVAL,
	  "\"target.kind\": unknown value \"proc\"", 5 },
	{ "{" REQ ",target:{kind:2,id:1},aux_bytes:1}", EINVAL,
	  "\"target.kind\": expected a string", 5 },
	{ "{" REQ ",target:{id:1},aux_bytes:1}", EINVAL,
	  "\"target.kind\" missing", 5 },
	{ "{" REQ ",target:{kind:\"task\"},aux_bytes:1}", EINVAL,
	  "\"target.id\" missing", 5 },
	{ "{" REQ ",target:{kind:\"task\",id:0},aux_bytes:1}", EINVAL,
	  "\"target.id\": expected a thread id", 5 },
	{ "{" REQ ",target:{kind:\"task\",id:2147483648},aux_bytes:1}", EINVAL,
	  "\"target.id\"", 5 },
	{ "{" REQ ",target:{kind:\"cpu\",id:-1},aux_bytes:1}", EINVAL,
	  "\"target.id\": expected a CPU number", 5 },
	{ "{" REQ ",target:{kind:\"cpu\",id:\"0\"},aux_bytes:1}", EINVAL,
	  "\"target.id\"", 5 },
	{ "{" REQ ",target:{kind:\"cpu\",kind:\"cpu\",id:0},aux_bytes:1}",
	  EINVAL, "\"target.kind\" given twice", 5 },
	{ "{" REQ ",target:{kind:\"cpu\",id:0,1:2},aux_bytes:1}", EINVAL,
	  "key 2 of field \"target\" is not a string", 5 },
	{ "{" REQ "," TGT ",aux_bytes:0}", EINVAL,
	  "request: field \"aux_bytes\": expected a positive integer", 5 },
	{ "{" REQ "," TGT ",aux_bytes:-4096}", EINVAL,
	  "\"aux_bytes\": expected a positive integer", 5 },
	{ "{" REQ "," TGT ",aux_bytes:\"4096\"}", EINVAL,
	  "\"aux_bytes\": expected a positive integer", 5 },
	{ "{" REQ "," TGT ",aux_bytes:true}", EINVAL, "\"aux_bytes\"", 5 },
	{ "{" REQ "," TGT ",aux_bytes:1,data_bytes:-1}", EINVAL,
	  "\"data_bytes\": -1 is negative", 5 },
	{ "{" REQ "," TGT ",aux_bytes:1,ring_bytes:\"big\"}", EINVAL,
	  "\"ring_bytes\": expected an unsigned integer", 5 },
	{ "{" REQ "," TGT ",aux_bytes:1,mode:\"flight\"}", EINVAL,
	  "\"mode\": unknown value \"flight\" (expected one of \"stream\", "
	  "\"snapshot\")", 5 },
	{ "{" REQ "," TGT ",aux_bytes:1,mode:1}", EINVAL,
	  "\"mode\": expected a string", 5 },
	{ "{" REQ "," TGT ",aux_bytes:1,config:[]}", EINVAL,
	  "\"config\": expected a map", 5 },
	{ "{" REQ "," TGT ",aux_bytes:1,config:{user:1}}", EINVAL,
	  "\"config.user\": expected true or false", 5 },
	{ "{" REQ "," TGT ",aux_bytes:1,config:{no_branch:nil}}", EINVAL,
	  "\"config.no_branch\"", 5 },
	{ "{" REQ "," TGT ",aux_bytes:1,config:{mtc_period:4294967296}}",
	  EINVAL, "\"config.mtc_period\": 4294967296 is over", 5 },
	{ "{" REQ "," TGT ",aux_bytes:1,config:{psb_period:-2}}", EINVAL,
	  "\"config.psb_period\": -2 is negative", 5 },
	{ "{" REQ "," TGT ",aux_bytes:1,config:{period:f2.5}}", EINVAL,
	  "\"config.period\": expected an unsigned", 5 },
	{ "{" REQ "," TGT ",aux_bytes:1,config:{filter:\"a\"*1024}}", EINVAL,
	  "\"config.filter\": 1024 bytes, at most 1023", 5 },
	{ "{" REQ "," TGT ",aux_bytes:1,config:{filter:[]}}", EINVAL,
	  "\"config.filter\": expected a string", 5 },
	{ "{" REQ "," TGT ",aux_bytes:1,config:{user:true,user:false}}", EINVAL,
	  "\"config.user\" given twice", 5 },
	{ "{" REQ "," TGT ",aux_bytes:1,config:{true:true}}", EINVAL,
	  "key 0 of field \"config\" is not a string", 5 },
	/* grants */
	{ "{op:\"release\",id:6}", EINVAL,
	  "\"grant\" missing (required for op \"release\")", 6 },
	{ "{op:\"attach\",id:6}", EINVAL, "\"grant\" missing", 6 },
	{ "{op:\"snapshot\",id:6}", EINVAL, "\"grant\" missing", 6 },
	{ "{op:\"attach\",id:6,grant:-1}", EINVAL, "\"grant\": -1 is negative",
	  6 },
	{ "{op:\"snapshot\",id:6,grant:f1.5}", EINVAL,
	  "\"grant\": expected an unsigned integer", 6 },
	{ "{op:\"release\",id:6,grant:1,grant:2}", EINVAL,
	  "\"grant\" given twice", 6 },
	/* not a map */
	{ "[1,2]", EPROTO, "not a msgpack map", 0 },
	{ "\"op\"", EPROTO, "not a msgpack map", 0 },
	{ "nil", EPROTO, "not a msgpack map", 0 },
};

Test(proto, malformed_requests)
{
	for (size_t i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
		const struct bad_row *row = &bad_rows[i];
		struct bt_proto_req r;
		struct bt_proto_buf b;
		char err[256];

		mp(&b, row->spec);
		memset(&r, 0xa5, sizeof(r));
		cr_assert(eq(int, decode(b.data, b.len, &r, err, sizeof(err)),
			     -row->err), "%s: %s", row->spec, err);
		cr_assert(ne(ptr, strstr(err, row->says), NULL),
			  "%s: said \"%s\", not \"%s\"", row->spec, err,
			  row->says);
		cr_assert(eq(ptr, strchr(err, '\n'), NULL));
		cr_assert(eq(u64, r.id, row->id), "%s", row->spec);
		/* Nothing else of a refused request is left behind. */
		cr_assert(eq(u32, r.op, 0), "%s", row->spec);
		cr_assert(eq(u64, r.aux_bytes, 0));
		cr_assert(eq(ptr, (void *)r.config.filter, NULL));
		bt_proto_buf__fini(&b);
	}
}

/* Accepted although unusual: unknown keys, signed encodings, kind "all". */
Test(proto, lenient_where_documented)
{
	static const struct {
		const char *spec;
		uint32_t op;
		uint64_t check;		/* aux_bytes, grant or version */
	} rows[] = {
		{ "{op:\"caps\",id:1,future:[1,{a:2}],grant:\"x\"}", BT_OP_CAPS,
		  0 },
		{ "{id:i8:3,op:\"release\",grant:i64:7}", BT_OP_RELEASE, 7 },
		{ "{op:\"hello\",id:i16:300,version:i32:1,name:\"a\"*63}",
		  BT_OP_HELLO, 1 },
		{ "{op:\"request\",id:1,facility:\"pt-emu\",target:{kind:\"all\","
		  "id:\"ignored\",x:1},aux_bytes:i32:65536,config:{z:1}}",
		  BT_OP_REQUEST, 65536 },
		{ "{op:\"request\",id:1,facility:\"lbr\",target:{kind:\"cpu\","
		  "id:0},aux_bytes:1,grant:-1,version:\"v\"}", BT_OP_REQUEST,
		  1 },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct bt_proto_req r;
		struct bt_proto_buf b;
		char err[256];
		uint64_t got;

		mp(&b, rows[i].spec);
		cr_assert(eq(int, decode(b.data, b.len, &r, err, sizeof(err)),
			     0), "%s: %s", rows[i].spec, err);
		cr_assert(eq(u32, r.op, rows[i].op));
		got = r.op == BT_OP_REQUEST ? r.aux_bytes :
		      r.op == BT_OP_RELEASE ? r.grant :
		      r.op == BT_OP_HELLO ? r.version : 0;
		cr_assert(eq(u64, got, rows[i].check), "%s", rows[i].spec);
		/* Fields of other ops stay zero. */
		if (r.op != BT_OP_RELEASE)
			cr_assert(eq(u64, r.grant, 0));
		if (r.op != BT_OP_HELLO)
			cr_assert(eq(u32, r.version, 0));
		cr_assert(eq(sz, r.config.sz, sizeof(r.config)));
		bt_proto_buf__fini(&b);
	}
}

/* Bytes that are no msgpack map: refused with EPROTO before parsing. */
Test(proto, malformed_encoding)
{
	static const unsigned char map32[] = { 0xdf, 0xff, 0xff, 0xff, 0xff };
	static const unsigned char arr32[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
	static const unsigned char str32[] = { 0xdb, 0xff, 0xff, 0xff, 0xf0,
					       'a' };
	static const unsigned char c1[] = { 0x81, 0xc1, 0x01 };
	struct bt_proto_req caps = { .op = BT_OP_CAPS, .id = 42 }, r;
	struct bt_proto_buf b, deep;
	msgpack_packer pk;
	char err[256];

	encode_ok(&caps, &b);
	/* trailing bytes */
	cr_assert(gt(sz, b.cap, b.len));
	b.data[b.len] = 0;
	cr_assert(eq(int, decode(b.data, b.len + 1, &r, err, sizeof(err)),
		     -EPROTO));
	cr_assert(ne(ptr, strstr(err, "1 bytes after the map"), NULL), "%s",
		  err);
	/* truncated, at every length */
	for (size_t n = 0; n < b.len; n++) {
		cr_assert(eq(int, decode(b.data, n, &r, err, sizeof(err)),
			     -EPROTO), "cut at %zu", n);
		cr_assert(ne(ptr, strstr(err, "not one msgpack value"), NULL));
		cr_assert(eq(u64, r.id, 0));
	}
	/* containers claiming 2^32 - 1 elements, a string 4 GiB long */
	cr_assert(eq(int, decode(map32, sizeof(map32), &r, err, sizeof(err)),
		     -EPROTO));
	cr_assert(ne(ptr, strstr(err, "claiming more than its 5 bytes"), NULL));
	cr_assert(eq(int, decode(arr32, sizeof(arr32), &r, err, sizeof(err)),
		     -EPROTO));
	cr_assert(eq(int, decode(str32, sizeof(str32), &r, err, sizeof(err)),
		     -EPROTO));
	cr_assert(eq(int, decode(c1, sizeof(c1), &r, err, sizeof(err)),
		     -EPROTO));
	/* nested deeper than msgpack-c's stack, under an unknown key */
	bt_proto_buf__init(&deep);
	bt_proto_buf__packer(&deep, &pk);
	msgpack_pack_map(&pk, 3);
	bt_proto_pack_key(&pk, "op");
	bt_proto_pack_str(&pk, "caps");
	bt_proto_pack_key(&pk, "id");
	msgpack_pack_uint64(&pk, 1);
	bt_proto_pack_key(&pk, "x");
	for (int i = 0; i < 40; i++)
		msgpack_pack_array(&pk, 1);
	msgpack_pack_nil(&pk);
	cr_assert(eq(int, decode(deep.data, deep.len, &r, err, sizeof(err)),
		     -EPROTO));
	cr_assert(ne(ptr, strstr(err, "nested too deep"), NULL), "%s", err);
	/* no room for a message: still the errno */
	cr_assert(eq(int, decode(map32, sizeof(map32), &r, NULL, 0), -EPROTO));
	cr_assert(eq(int, bt_proto_req__decode(NULL, 3, &r, err, sizeof(err)),
		     -EINVAL));
	bt_proto_buf__fini(&deep);
	bt_proto_buf__fini(&b);
}

/* ---- Replies ------------------------------------------------------------- */

static int reply_decode(const struct bt_proto_buf *b, msgpack_zone *z,
			msgpack_object *o, uint64_t *id, bool *ok, int *e,
			char *err, size_t errlen)
{
	unsigned char *p = malloc(b->len ? b->len : 1);
	int ret;

	cr_assert(ne(ptr, p, NULL));
	memcpy(p, b->data, b->len);
	ret = bt_proto_reply__decode(p, b->len, z, o, id, ok, e, err, errlen);
	/* The object lives in the zone: the frame can go now. */
	memset(p, 0xee, b->len);
	free(p);
	return ret;
}

Test(proto, reply_ok)
{
	struct bt_proto_buf b;
	msgpack_packer pk;
	msgpack_zone z;
	msgpack_object o, copy;
	char err[64], s[8];
	uint64_t id = 0, u;
	int64_t i;
	bool ok = false, v;
	int e = -1;
	unsigned char *p;

	bt_proto_buf__init(&b);
	bt_proto_buf__packer(&b, &pk);
	bt_proto_reply__begin(&pk, 77, 5);
	bt_proto_pack_key(&pk, "grant");
	msgpack_pack_uint64(&pk, 1ull << 40);
	bt_proto_pack_key(&pk, "owner");
	msgpack_pack_true(&pk);
	bt_proto_pack_key(&pk, "cpu");
	msgpack_pack_int32(&pk, -1);
	bt_proto_pack_key(&pk, "ring");
	bt_proto_pack_str(&pk, "btrail-kmes-1234");
	bt_proto_pack_key(&pk, "none");
	bt_proto_pack_str(&pk, NULL);
	cr_assert(msgpack_zone_init(&z, 1024));
	p = malloc(b.len);
	memcpy(p, b.data, b.len);
	cr_assert(eq(int, bt_proto_reply__decode(p, b.len, &z, &o, &id, &ok, &e,
						 err, sizeof(err)), 0));
	cr_assert(eq(u64, id, 77));
	cr_assert(ok);
	cr_assert(eq(int, e, 0));
	cr_assert(eq(str, err, ""));
	cr_assert(eq(u32, o.via.map.size, 7));
	copy = o;
	cr_assert(bt_proto_get_u64(&copy, "grant", &u));
	cr_assert(eq(u64, u, 1ull << 40));
	cr_assert(bt_proto_get_bool(&copy, "owner", &v));
	cr_assert(v);
	cr_assert(bt_proto_get_i64(&copy, "cpu", &i));
	cr_assert(eq(i64, i, -1));
	cr_assert(bt_proto_get_i64(&copy, "grant", &i));
	cr_assert(eq(i64, i, 1ll << 40));
	cr_assert(bt_proto_get_str(&copy, "ring", s, sizeof(s)));
	cr_assert(eq(str, s, "btrail-"));		/* truncated */
	cr_assert(not(bt_proto_get_str(&copy, "none", s, sizeof(s))));
	cr_assert(eq(int, bt_proto_get(&copy, "none")->type,
		     MSGPACK_OBJECT_NIL));
	cr_assert(not(bt_proto_get_u64(&copy, "cpu", &u)));   /* negative */
	cr_assert(not(bt_proto_get_u64(&copy, "ring", &u)));  /* mistyped */
	cr_assert(not(bt_proto_get_bool(&copy, "grant", &v)));
	cr_assert(not(bt_proto_get_u64(&copy, "absent", &u)));
	cr_assert(eq(ptr, (void *)bt_proto_get(NULL, "grant"), NULL));
	cr_assert(eq(ptr, (void *)bt_proto_get(bt_proto_get(&copy, "grant"),
					       "x"), NULL));
	free(p);
	msgpack_zone_destroy(&z);
	bt_proto_buf__fini(&b);
}

Test(proto, reply_error_with_and_without_holder)
{
	static const struct {
		int errnum, pid;
		const char *msg, *holder;
	} rows[] = {
		{ EBUSY, 4321, "intel_pt on task 100 is held", "pid 4321 (gdb)" },
		{ -ENOMEM, 0, "over RLIMIT_MEMLOCK (64 KiB)", "ignored" },
		{ EPROTONOSUPPORT, -5, "protocol version 9 not spoken", NULL },
		{ EPERM, 1, NULL, NULL },
	};

	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		struct bt_proto_buf b;
		msgpack_packer pk;
		msgpack_zone z;
		msgpack_object o;
		char err[128], holder[64];
		uint64_t id, u;
		bool ok = true;
		int e;

		bt_proto_buf__init(&b);
		bt_proto_buf__packer(&b, &pk);
		bt_proto_reply__error(&pk, 1000 + r, rows[r].errnum,
				      rows[r].msg, rows[r].pid, rows[r].holder);
		cr_assert(msgpack_zone_init(&z, 1024));
		cr_assert(eq(int, reply_decode(&b, &z, &o, &id, &ok, &e, err,
					       sizeof(err)), 0));
		cr_assert(eq(u64, id, 1000 + r));
		cr_assert(not(ok));
		cr_assert(eq(int, e, abs(rows[r].errnum)));
		cr_assert(eq(str, err, (char *)(rows[r].msg ? rows[r].msg :
						 "")));
		if (rows[r].pid > 0) {
			cr_assert(eq(u32, o.via.map.size, 6));
			cr_assert(bt_proto_get_u64(&o, "holder_pid", &u));
			cr_assert(eq(u64, u, (uint64_t)rows[r].pid));
			cr_assert(bt_proto_get_str(&o, "holder", holder,
						   sizeof(holder)));
			cr_assert(eq(str, holder, (char *)(rows[r].holder ?
							   rows[r].holder :
							   "")));
		} else {
			cr_assert(eq(u32, o.via.map.size, 4));
			cr_assert(eq(ptr, (void *)bt_proto_get(&o,
							       "holder_pid"),
				     NULL));
		}
		msgpack_zone_destroy(&z);
		bt_proto_buf__fini(&b);
	}
}

Test(proto, malformed_replies)
{
	static const struct {
		const char *spec, *says;
	} rows[] = {
		{ "{ok:true}", "\"id\" missing" },
		{ "{id:-1,ok:true}", "\"id\"" },
		{ "{id:1}", "\"ok\" missing" },
		{ "{id:1,ok:1}", "\"ok\"" },
		{ "{id:1,ok:false,error:\"x\"}", "\"errno\"" },
		{ "{id:1,ok:false,errno:0,error:\"x\"}", "\"errno\"" },
		{ "{id:1,ok:false,errno:-16,error:\"x\"}", "\"errno\"" },
		{ "{id:1,ok:false,errno:4294967296,error:\"x\"}", "\"errno\"" },
		{ "{id:1,ok:false,errno:16}", "\"error\"" },
		{ "{id:1,ok:false,errno:16,error:nil}", "\"error\"" },
		{ "{id:1,ok:true,id:2}", "\"id\" given twice" },
		{ "{id:1,ok:true,1:2}", "key 2 is not a string" },
		{ "[1,true]", "not a msgpack map" },
	};

	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		struct bt_proto_buf b;
		msgpack_zone z;
		msgpack_object o;
		char err[128];
		uint64_t id;
		bool ok;
		int e;

		mp(&b, rows[r].spec);
		cr_assert(msgpack_zone_init(&z, 1024));
		cr_assert(eq(int, reply_decode(&b, &z, &o, &id, &ok, &e, err,
					       sizeof(err)), -EPROTO),
			  "%s", rows[r].spec);
		cr_assert(ne(ptr, strstr(err, rows[r].says), NULL),
			  "%s: said \"%s\"", rows[r].spec, err);
		msgpack_zone_destroy(&z);
		bt_proto_buf__fini(&b);
	}
}

/* ---- Frames over a socket ------------------------------------------------ */

static void pair(int sv[2])
{
	cr_assert(eq(int, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				     sv), 0));
}

/* Open descriptors of this process (a leak shows as a difference). */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	cr_assert(ne(ptr, d, NULL));
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;		/* the directory's own */
}

static void write_all(int fd, const void *p, size_t n)
{
	cr_assert(eq(sz, (size_t)write(fd, p, n), n));
}

Test(proto, frame_roundtrip)
{
	static const char body[] = "\x81\xa2op\xa4" "caps";
	void *got;
	size_t len;
	unsigned nfds = 9;
	int sv[2];

	pair(sv);
	cr_assert(eq(int, bt_proto_send(sv[0], body, sizeof(body) - 1, NULL,
					0), 0));
	cr_assert(eq(int, bt_proto_send(sv[0], "x", 1, NULL, 0), 0));
	cr_assert(eq(int, bt_proto_recv(sv[1], &got, &len, NULL, 0, &nfds),
		     0));
	cr_assert(eq(sz, len, sizeof(body) - 1));
	cr_assert(eq(int, memcmp(got, body, len), 0));
	cr_assert(eq(u32, nfds, 0));
	free(got);
	/* The next frame is whole: the first read took no byte of it. */
	cr_assert(eq(int, bt_proto_recv(sv[1], &got, &len, NULL, 0, NULL), 0));
	cr_assert(eq(sz, len, 1));
	cr_assert(eq(chr, *(char *)got, 'x'));
	free(got);
	close(sv[0]);
	/* Closed before a frame: a clean end. */
	cr_assert(eq(int, bt_proto_recv(sv[1], &got, &len, NULL, 0, NULL),
		     -ECONNRESET));
	cr_assert(eq(ptr, got, NULL));
	close(sv[1]);
}

Test(proto, frame_send_limits)
{
	static char big[BT_PROTO_MAX + 1];
	int fds[BT_PROTO_MAX_FDS + 1] = { 0 };
	int sv[2];

	pair(sv);
	cr_assert(eq(int, bt_proto_send(sv[0], big, sizeof(big), NULL, 0),
		     -EMSGSIZE));
	cr_assert(eq(int, bt_proto_send(sv[0], "x", 1, fds,
					BT_PROTO_MAX_FDS + 1), -EMSGSIZE));
	cr_assert(eq(int, bt_proto_send(sv[0], "x", 0, NULL, 0), -EINVAL));
	close(sv[1]);
	/* A gone peer: EPIPE, and no SIGPIPE killing the test. */
	cr_assert(eq(int, bt_proto_send(sv[0], "x", 1, NULL, 0), -EPIPE));
	close(sv[0]);
}

struct big_send {
	int fd;
	const char *body;
	size_t len;
	int ret;
};

static void *big_sender(void *arg)
{
	struct big_send *s = arg;

	s->ret = bt_proto_send(s->fd, s->body, s->len, NULL, 0);
	return NULL;
}

/* A largest frame, more than the socket buffer holds: short writes. */
Test(proto, frame_largest)
{
	char *body = malloc(BT_PROTO_MAX);
	struct big_send s;
	pthread_t t;
	void *got;
	size_t len;
	int sv[2];

	cr_assert(ne(ptr, body, NULL));
	for (size_t i = 0; i < BT_PROTO_MAX; i++)
		body[i] = (char)(i * 31 + (i >> 11));
	pair(sv);
	s = (struct big_send){ .fd = sv[0], .body = body,
			       .len = BT_PROTO_MAX };
	cr_assert(eq(int, pthread_create(&t, NULL, big_sender, &s), 0));
	cr_assert(eq(int, bt_proto_recv(sv[1], &got, &len, NULL, 0, NULL), 0));
	pthread_join(t, NULL);
	cr_assert(eq(int, s.ret, 0));
	cr_assert(eq(sz, len, BT_PROTO_MAX));
	cr_assert(eq(int, memcmp(got, body, len), 0));
	free(got);
	free(body);
	close(sv[0]);
	close(sv[1]);
}

Test(proto, frame_passes_fds)
{
	static const char *const paths[3] = { "/proc/self/exe", "/dev/null",
					      "/proc/self/status" };
	int fds[3], got_fds[4] = { -1, -1, -1, -1 };
	struct stat a, b;
	unsigned nfds = 0;
	void *body;
	size_t len;
	int sv[2], base;

	pair(sv);
	for (int i = 0; i < 3; i++) {
		fds[i] = open(paths[i], O_RDONLY | O_CLOEXEC);
		cr_assert(ge(int, fds[i], 0), "%s", paths[i]);
	}
	base = count_fds();
	cr_assert(eq(int, bt_proto_send(sv[0], "abc", 3, fds, 3), 0));
	cr_assert(eq(int, bt_proto_recv(sv[1], &body, &len, got_fds, 4, &nfds),
		     0));
	cr_assert(eq(u32, nfds, 3));
	cr_assert(eq(sz, len, 3));
	free(body);
	for (int i = 0; i < 3; i++) {
		cr_assert(ne(int, got_fds[i], fds[i]));
		cr_assert(eq(int, fstat(fds[i], &a), 0));
		cr_assert(eq(int, fstat(got_fds[i], &b), 0));
		cr_assert(eq(u64, (uint64_t)a.st_ino, (uint64_t)b.st_ino),
			  "%s", paths[i]);
		cr_assert(eq(u64, (uint64_t)a.st_dev, (uint64_t)b.st_dev));
		cr_assert(eq(int, fcntl(got_fds[i], F_GETFD) & FD_CLOEXEC,
			     FD_CLOEXEC));
		close(got_fds[i]);
	}
	cr_assert(eq(int, count_fds(), base));
	/* Room for one: the others are closed, not leaked. */
	cr_assert(eq(int, bt_proto_send(sv[0], "abc", 3, fds, 3), 0));
	cr_assert(eq(int, bt_proto_recv(sv[1], &body, &len, got_fds, 1, &nfds),
		     0));
	cr_assert(eq(u32, nfds, 1));
	free(body);
	cr_assert(eq(int, fstat(got_fds[0], &b), 0));
	cr_assert(eq(int, fstat(fds[0], &a), 0));
	cr_assert(eq(u64, (uint64_t)a.st_ino, (uint64_t)b.st_ino));
	close(got_fds[0]);
	cr_assert(eq(int, count_fds(), base));
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	close(sv[0]);
	close(sv[1]);
}

Test(proto, frame_peer_dies_mid_frame)
{
	/* Says 10 bytes, sends 3 (with an fd), then closes. */
	static const unsigned char part[] = { 0, 0, 0, 10, 'a', 'b', 'c' };
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)part, .iov_len = sizeof(part) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC), got[4];
	unsigned nfds = 7;
	void *body = (void *)1;
	size_t len = 5;
	int sv[2], base;

	pair(sv);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(fd));
	base = count_fds();
	cr_assert(eq(sz, (size_t)sendmsg(sv[0], &msg, 0), sizeof(part)));
	close(sv[0]);
	cr_assert(eq(int, bt_proto_recv(sv[1], &body, &len, got, 4, &nfds),
		     -EPROTO));
	cr_assert(eq(ptr, body, NULL));
	cr_assert(eq(u32, nfds, 0));
	cr_assert(eq(int, count_fds(), base - 1));	/* sv[0] closed */
	close(fd);
	close(sv[1]);

	/* Closed inside the length header. */
	pair(sv);
	write_all(sv[0], part, 2);
	close(sv[0]);
	cr_assert(eq(int, bt_proto_recv(sv[1], &body, &len, NULL, 0, NULL),
		     -EPROTO));
	close(sv[1]);
}

Test(proto, frame_bad_length)
{
	static const unsigned char zero[] = { 0, 0, 0, 0, 'x' };
	static const unsigned char over[] = { 0x00, 0x10, 0x00, 0x01, 'x' };
	static const unsigned char huge[] = { 0xff, 0xff, 0xff, 0xff, 'x' };
	const unsigned char *rows[] = { zero, over, huge };
	void *body;
	size_t len;
	int sv[2];

	for (int i = 0; i < 3; i++) {
		pair(sv);
		write_all(sv[0], rows[i], 5);
		cr_assert(eq(int, bt_proto_recv(sv[1], &body, &len, NULL, 0,
						NULL), -EPROTO), "row %d", i);
		close(sv[0]);
		close(sv[1]);
	}
}

/* More fds than a frame may carry: the kernel truncates; all are closed. */
Test(proto, frame_too_many_fds)
{
	enum { N = 100 };
	char cbuf[CMSG_SPACE(sizeof(int) * N)];
	struct iovec iov = { .iov_base = "\0\0\0\1x", .iov_len = 5 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c;
	int fds[N], got[BT_PROTO_MAX_FDS];
	unsigned nfds;
	void *body;
	size_t len;
	int sv[2], base;

	pair(sv);
	memset(cbuf, 0, sizeof(cbuf));
	c = CMSG_FIRSTHDR(&msg);
	for (int i = 0; i < N; i++)
		cr_assert(ge(int, fds[i] = dup(sv[0]), 0));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * N);
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	cr_assert(eq(sz, (size_t)sendmsg(sv[0], &msg, 0), 5));
	for (int i = 0; i < N; i++)
		close(fds[i]);
	base = count_fds();
	cr_assert(eq(int, bt_proto_recv(sv[1], &body, &len, got,
					BT_PROTO_MAX_FDS, &nfds), -EPROTO));
	cr_assert(eq(int, count_fds(), base));
	close(sv[0]);
	close(sv[1]);
}

/* ---- The incremental reader ---------------------------------------------- */

/* A stream of frames: every sample request, each with its header. */
static unsigned char *sample_stream(size_t *len, size_t *nframes)
{
	struct bt_proto_req reqs[32];
	size_t n = sample_reqs(reqs, 32), off = 0;
	unsigned char *s = NULL;

	for (size_t i = 0; i < n; i++) {
		struct bt_proto_buf b;

		encode_ok(&reqs[i], &b);
		s = realloc(s, off + 4 + b.len);
		cr_assert(ne(ptr, s, NULL));
		s[off] = (unsigned char)(b.len >> 24);
		s[off + 1] = (unsigned char)(b.len >> 16);
		s[off + 2] = (unsigned char)(b.len >> 8);
		s[off + 3] = (unsigned char)b.len;
		memcpy(s + off + 4, b.data, b.len);
		off += 4 + b.len;
		bt_proto_buf__fini(&b);
	}
	*len = off;
	*nframes = n;
	return s;
}

Test(proto, rx_byte_at_a_time)
{
	size_t len, nframes, k = 0, whole_n = 0;
	unsigned char *s = sample_stream(&len, &nframes);
	struct bt_proto_rx whole, byte;
	size_t *offs = calloc(nframes, sizeof(*offs));
	const void *body;
	size_t blen;
	int ret;

	/* All at once: the frames and their offsets in the stream. */
	bt_proto_rx__init(&whole, 0);
	cr_assert(eq(int, bt_proto_rx__feed(&whole, s, len), 0));
	while ((ret = bt_proto_rx__next(&whole, &body, &blen)) == 1) {
		cr_assert(lt(sz, whole_n, nframes));
		offs[whole_n++] = (size_t)((const unsigned char *)body -
					   whole.buf);
		cr_assert(eq(int, decode(body, blen, &(struct bt_proto_req){ 0 },
					 NULL, 0), 0));
	}
	cr_assert(eq(int, ret, 0));
	cr_assert(eq(sz, whole_n, nframes));
	/* One byte at a time: the same bodies, in order. */
	bt_proto_rx__init(&byte, BT_PROTO_MAX);
	for (size_t i = 0; i < len; i++) {
		cr_assert(eq(int, bt_proto_rx__feed(&byte, s + i, 1), 0));
		while ((ret = bt_proto_rx__next(&byte, &body, &blen)) == 1) {
			cr_assert(lt(sz, k, nframes));
			cr_assert(eq(int, memcmp(body, s + offs[k], blen), 0));
			cr_assert(eq(int, memcmp(body, whole.buf + offs[k],
						 blen), 0));
			/* It ends at the byte just fed. */
			cr_assert(eq(ptr, (void *)(s + offs[k] + blen),
				     (void *)(s + i + 1)));
			k++;
		}
		cr_assert(eq(int, ret, 0));
	}
	cr_assert(eq(sz, k, nframes));
	cr_assert(eq(int, bt_proto_rx__next(&byte, &body, &blen), 0));
	bt_proto_rx__fini(&byte);
	bt_proto_rx__fini(&whole);
	free(offs);
	free(s);
}

Test(proto, rx_bad_length_fails_for_good)
{
	static const unsigned char zero[] = { 0, 0, 0, 0 };
	static const unsigned char seventeen[] = { 0, 0, 0, 17 };
	static const unsigned char sixteen[] = { 0, 0, 0, 16 };
	static const unsigned char body[16] = { 0x80 };
	struct bt_proto_rx rx;
	const void *p;
	size_t n;

	bt_proto_rx__init(&rx, 0);
	cr_assert(eq(int, bt_proto_rx__feed(&rx, zero, 3), 0));
	cr_assert(eq(int, bt_proto_rx__next(&rx, &p, &n), 0));
	cr_assert(eq(int, bt_proto_rx__feed(&rx, zero + 3, 1), -EPROTO));
	cr_assert(eq(int, bt_proto_rx__next(&rx, &p, &n), -EPROTO));
	cr_assert(eq(int, bt_proto_rx__feed(&rx, sixteen, 4), -EPROTO));
	bt_proto_rx__fini(&rx);

	bt_proto_rx__init(&rx, 16);
	cr_assert(eq(int, bt_proto_rx__feed(&rx, sixteen, 4), 0));
	cr_assert(eq(int, bt_proto_rx__feed(&rx, body, 16), 0));
	cr_assert(eq(int, bt_proto_rx__next(&rx, &p, &n), 1));
	cr_assert(eq(sz, n, 16));
	cr_assert(eq(int, bt_proto_rx__feed(&rx, seventeen, 4), -EPROTO));
	cr_assert(eq(int, bt_proto_rx__next(&rx, &p, &n), -EPROTO));
	bt_proto_rx__fini(&rx);
}

/* ---- Random mutations ---------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64*: deterministic, the same run on every machine */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* Mutate @p (*@n bytes, room for @cap) in place, one to four times. */
static void mutate(unsigned char *p, size_t *n, size_t cap)
{
	int times = 1 + (int)(rng() % 4);

	for (int t = 0; t < times; t++) {
		size_t at = *n ? rng() % *n : 0;
		static const unsigned char magic[] = {
			0x00, 0x7f, 0x80, 0x8f, 0x90, 0xa0, 0xbf, 0xc0, 0xc1,
			0xc2, 0xc3, 0xcc, 0xcf, 0xd0, 0xd3, 0xd9, 0xdb, 0xdc,
			0xdd, 0xde, 0xdf, 0xe0, 0xff,
		};

		switch (rng() % 6) {
		case 0:		/* flip a bit */
			if (*n)
				p[at] ^= (unsigned char)(1u << (rng() % 8));
			break;
		case 1:		/* a msgpack type byte */
			if (*n)
				p[at] = magic[rng() % sizeof(magic)];
			break;
		case 2:		/* truncate */
			*n = at;
			break;
		case 3:		/* insert a byte */
			if (*n < cap) {
				memmove(p + at + 1, p + at, *n - at);
				p[at] = (unsigned char)rng();
				(*n)++;
			}
			break;
		case 4:		/* delete a byte */
			if (*n) {
				memmove(p + at, p + at + 1, *n - at - 1);
				(*n)--;
			}
			break;
		default:	/* a random byte */
			if (*n)
				p[at] = (unsigned char)rng();
			break;
		}
	}
}

Test(proto, random_mutations)
{
	struct bt_proto_req reqs[32];
	size_t nreq = sample_reqs(reqs, 32);
	struct bt_proto_buf bases[34];
	size_t nbase = 0, decoded = 0, refused = 0, replies = 0;
	msgpack_packer pk;

	rng_state = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < nreq; i++)
		encode_ok(&reqs[i], &bases[nbase++]);
	bt_proto_buf__init(&bases[nbase]);
	bt_proto_buf__packer(&bases[nbase], &pk);
	bt_proto_reply__error(&pk, 3, EBUSY, "held", 99, "pid 99 (gdb)");
	nbase++;
	bt_proto_buf__init(&bases[nbase]);
	bt_proto_buf__packer(&bases[nbase], &pk);
	bt_proto_reply__begin(&pk, 4, 1);
	bt_proto_pack_key(&pk, "sequences");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_uint64(&pk, 5);
	msgpack_pack_uint64(&pk, 6);
	nbase++;

	for (int iter = 0; iter < 10000; iter++) {
		const struct bt_proto_buf *base = &bases[rng() % nbase];
		size_t cap = base->len + 8, n = base->len;
		unsigned char *p = malloc(cap);
		struct bt_proto_req r, back;
		struct bt_proto_buf again;
		msgpack_zone z;
		msgpack_object o;
		char err[256];
		uint64_t id;
		bool ok;
		int ret, e;

		cr_assert(ne(ptr, p, NULL));
		memcpy(p, base->data, n);
		mutate(p, &n, cap);
		ret = decode(p, n, &r, err, sizeof(err));
		if (ret) {
			cr_assert(ret == -EINVAL || ret == -EPROTO,
				  "iteration %d: %d", iter, ret);
			cr_assert(gt(sz, strlen(err), 0));
			refused++;
		} else {
			/* Accepted: it encodes again, to the same request. */
			encode_ok(&r, &again);
			cr_assert(eq(int, decode(again.data, again.len, &back,
						 err, sizeof(err)), 0),
				  "iteration %d: %s", iter, err);
			req_assert_eq(&back, &r);
			bt_proto_buf__fini(&again);
			decoded++;
		}
		cr_assert(msgpack_zone_init(&z, 1024));
		ret = bt_proto_reply__decode(p, n, &z, &o, &id, &ok, &e, err,
					     sizeof(err));
		cr_assert(ret == 0 || ret == -EPROTO, "iteration %d", iter);
		replies += !ret;
		msgpack_zone_destroy(&z);
		free(p);
	}
	/* The mutations reach both sides of the decoder. */
	cr_assert(gt(sz, decoded, 100));
	cr_assert(gt(sz, refused, 1000));
	cr_assert(gt(sz, replies, 10));
	for (size_t i = 0; i < nbase; i++)
		bt_proto_buf__fini(&bases[i]);
}
