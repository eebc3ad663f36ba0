// SPDX-License-Identifier: BSD-3-Clause
/*
 * The btraild protocol parser on hostile bytes, as the daemon meets them:
 * the input is a client's byte stream, fed to struct bt_proto_rx in
 * pieces (1 to 13 bytes, from the input's length) as a non-blocking
 * server's recv() would hand it over; every whole frame goes to
 * bt_proto_req__decode() and to the client's bt_proto_reply__decode().
 * A request that decodes must encode again, and that encoding must be a
 * fixed point (decode + encode gives the same bytes). The whole input is
 * also decoded as one frame body, so that mutations which break the
 * framing still reach the decoder.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/proto.h"

#include "fuzz_util.h"

/* @body as a frame (length header first) into @f; returns its size. */
static size_t frame(unsigned char *f, size_t cap, const struct bt_proto_buf *b)
{
	if (b->len + 4 > cap)
		abort();
	f[0] = (unsigned char)(b->len >> 24);
	f[1] = (unsigned char)(b->len >> 16);
	f[2] = (unsigned char)(b->len >> 8);
	f[3] = (unsigned char)b->len;
	memcpy(f + 4, b->data, b->len);
	return b->len + 4;
}

/* Every request seed, one after another: a whole session's stream. */
static unsigned char session[16384];
static size_t session_len;

static void seed_req(const char *name, struct bt_proto_req *r)
{
	static unsigned char f[8192];
	struct bt_proto_buf b;
	size_t n;

	r->config.sz = sizeof(r->config);
	bt_proto_buf__init(&b);
	if (bt_proto_req__encode(r, &b)) {
		fprintf(stderr, "fuzz_broker: seed %s does not encode\n", name);
		abort();
	}
	n = frame(f, sizeof(f), &b);
	fz_seed(name, f, n);
	if (n <= sizeof(session) - session_len) {
		memcpy(session + session_len, f, n);
		session_len += n;
	}
	bt_proto_buf__fini(&b);
}

static void seeds(void)
{
	static unsigned char f[8192];
	struct bt_proto_req r;
	struct bt_proto_buf b;
	msgpack_packer pk;
	size_t n;

	memset(&r, 0, sizeof(r));
	r.op = BT_OP_HELLO, r.id = 1, r.version = BT_PROTO_VERSION;
	strcpy(r.name, "gdb");
	seed_req("hello", &r);
	memset(&r, 0, sizeof(r));
	r.op = BT_OP_CAPS, r.id = 2;
	seed_req("caps", &r);
	memset(&r, 0, sizeof(r));
	r.op = BT_OP_REQUEST, r.id = 3, r.facility = BT_FAC_PT;
	r.target.kind = BT_TARGET_TASK, r.target.id = 1234;
	r.aux_bytes = 1 << 20, r.data_bytes = 1 << 16, r.ring_bytes = 1 << 22;
	r.mode = BT_MODE_SNAPSHOT;
	r.config.user = r.config.tsc = r.config.mtc = r.config.cyc = true;
	r.config.mtc_period = 3, r.config.psb_period = 2;
	r.config.pebs_config = 0x1cd, r.config.period = 1000;
	r.config.branch_sample_type = 1;
	r.config.filter = "filter main @ /bin/true";
	seed_req("request-task", &r);
	memset(&r, 0, sizeof(r));
	r.op = BT_OP_REQUEST, r.id = 4, r.facility = BT_FAC_PTEMU;
	r.target.kind = BT_TARGET_CPU, r.target.id = 1, r.aux_bytes = 4096;
	seed_req("request-cpu", &r);
	memset(&r, 0, sizeof(r));
	r.op = BT_OP_REQUEST, r.id = 5, r.facility = BT_FAC_PEBS;
	r.target.kind = BT_TARGET_ALL, r.aux_bytes = 8192;
	seed_req("request-all", &r);
	memset(&r, 0, sizeof(r));
	r.op = BT_OP_RELEASE, r.id = 6, r.grant = 1;
	seed_req("release", &r);
	r.op = BT_OP_ATTACH, r.id = 7;
	seed_req("attach", &r);
	r.op = BT_OP_SNAPSHOT, r.id = 8;
	seed_req("snapshot", &r);
	memset(&r, 0, sizeof(r));
	r.op = BT_OP_STATUS, r.id = 9;
	seed_req("status", &r);
	fz_seed("session", session, session_len);

	/* Replies: an error naming a holder, and an attach answer. */
	bt_proto_buf__init(&b);
	bt_proto_buf__packer(&b, &pk);
	bt_proto_reply__error(&pk, 3, EBUSY, "pt on task 1234 is held", 77,
			      "pid 77 (gdb)");
	fz_seed("reply-ebusy", f, frame(f, sizeof(f), &b));
	b.len = 0;
	bt_proto_reply__begin(&pk, 7, 1);
	bt_proto_pack_key(&pk, "slots");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 4);
	bt_proto_pack_key(&pk, "slot");
	msgpack_pack_uint32(&pk, 0);
	bt_proto_pack_key(&pk, "capacity");
	msgpack_pack_uint64(&pk, 1 << 20);
	bt_proto_pack_key(&pk, "cpu");
	msgpack_pack_int32(&pk, -1);
	bt_proto_pack_key(&pk, "tid");
	msgpack_pack_int32(&pk, 1234);
	n = frame(f, sizeof(f), &b);
	fz_seed("reply-attach", f, n);
	bt_proto_buf__fini(&b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	seeds();
	return 0;
}

/* A request that decoded: encode, decode, encode gives the same bytes. */
static void check_fixed_point(const struct bt_proto_req *r)
{
	struct bt_proto_req r2;
	struct bt_proto_buf a, b;
	char err[256];
	int ret;

	bt_proto_buf__init(&a);
	bt_proto_buf__init(&b);
	ret = bt_proto_req__encode(r, &a);
	if (ret) {
		fprintf(stderr, "decoded request (op %u) does not encode: %d\n",
			r->op, ret);
		abort();
	}
	ret = bt_proto_req__decode(a.data, a.len, &r2, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "encoded request refused: %s\n", err);
		abort();
	}
	if (bt_proto_req__encode(&r2, &b) || a.len != b.len ||
	    memcmp(a.data, b.data, a.len)) {
		fprintf(stderr, "request (op %u) changed in a round trip\n",
			r->op);
		abort();
	}
	bt_proto_buf__fini(&a);
	bt_proto_buf__fini(&b);
}

static void one_body(const void *body, size_t len)
{
	struct bt_proto_req r;
	msgpack_object obj;
	msgpack_zone zone;
	char err[256];
	uint64_t id;
	bool ok;
	int ret, e;

	ret = bt_proto_req__decode(body, len, &r, err, sizeof(err));
	if (!ret)
		check_fixed_point(&r);
	else if ((ret != -EINVAL && ret != -EPROTO) || !err[0] ||
		 strchr(err, '\n'))
		abort();
	if (!msgpack_zone_init(&zone, 1024))
		abort();
	ret = bt_proto_reply__decode(body, len, &zone, &obj, &id, &ok, &e, err,
				     sizeof(err));
	if (ret && ret != -EPROTO)
		abort();
	if (!ret && !ok && e <= 0)
		abort();
	msgpack_zone_destroy(&zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t chunk = 1 + size % 13;
	struct bt_proto_rx rx;
	const void *body;
	size_t len;

	bt_proto_rx__init(&rx, BT_PROTO_MAX);
	for (size_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		int ret = bt_proto_rx__feed(&rx, data + off, n);

		if (ret == -EPROTO)
			break;		/* the server closes the connection */
		if (ret)
			abort();
		while ((ret = bt_proto_rx__next(&rx, &body, &len)) == 1) {
			if (!len || len > BT_PROTO_MAX)
				abort();
			one_body(body, len);
		}
		if (ret < 0)
			break;
	}
	bt_proto_rx__fini(&rx);
	one_body(data, size);
	return 0;
}
