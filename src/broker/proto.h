/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The btraild wire protocol, version 1 (docs/protocol.md): frames over a
 * Unix stream socket, each a 4-byte big-endian length L (1..BT_PROTO_MAX)
 * followed by L bytes holding exactly one msgpack map with string keys.
 *
 * A client sends requests; the daemon answers each with one reply frame
 * carrying the request's "id". The first request of a connection must be
 * "hello" with the client's protocol version. File descriptors (the KMES
 * ring fds of "attach") travel as SCM_RIGHTS ancillary data on the
 * sendmsg() that carries the first byte of the reply frame.
 *
 * Requests are decoded strictly into struct bt_proto_req: unknown ops,
 * missing or mistyped fields, out-of-range values, duplicate keys and
 * trailing bytes are errors, with a message saying which field and why.
 * Unknown keys are ignored (a newer client may send more). Replies are
 * built with msgpack-c's packer (bt_proto_reply__*) and read by clients
 * as msgpack objects with the bt_proto_get_* accessors.
 *
 * Everything here treats its input as hostile: lengths are checked before
 * msgpack-c allocates (bt_mp_claims_fit()), nothing reads past a frame.
 */
#ifndef BT_BROKER_PROTO_H
#define BT_BROKER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include <btrail/ds.h>

#define BT_PROTO_VERSION	1u
#define BT_PROTO_MAX		(1u << 20)	/* largest frame body */
#define BT_PROTO_MAX_FDS	64u		/* fds in one reply */
#define BT_PROTO_NAME_MAX	64u		/* client name, with NUL */
/* Longest wait for a non-blocking socket that would block, in the middle
 * of a frame: then -ETIMEDOUT. */
#define BT_PROTO_IO_WAIT_MS	5000
#define BT_PROTO_FILTER_MAX	1024u		/* address filter, with NUL */

enum bt_proto_op {
	BT_OP_HELLO = 1,	/* "hello": version, name */
	BT_OP_CAPS,		/* "caps" */
	BT_OP_REQUEST,		/* "request": an allocator request */
	BT_OP_RELEASE,		/* "release": grant */
	BT_OP_ATTACH,		/* "attach": grant -> ring fds */
	BT_OP_SNAPSHOT,		/* "snapshot": grant -> rings filled now */
	BT_OP_STATUS,		/* "status": who holds what */
	BT_OP__COUNT,
};

/* "hello", ...; NULL when out of range. */
const char *bt_proto_op_name(uint32_t op);

/* One decoded request. Fields not used by its op are zero. */
struct bt_proto_req {
	uint32_t op;			/* enum bt_proto_op */
	uint64_t id;			/* echoed in the reply */
	/* hello */
	uint32_t version;
	char name[BT_PROTO_NAME_MAX];	/* optional; "" when absent */
	/* request */
	uint32_t facility;		/* enum bt_facility */
	struct bt_target target;	/* kind "task"|"cpu"|"all", id */
	uint64_t aux_bytes;		/* required */
	uint64_t data_bytes;		/* optional, 0 */
	uint64_t ring_bytes;		/* optional, 0: the daemon's default */
	uint32_t mode;			/* "stream" (default) | "snapshot" */
	struct bt_trace_config config;	/* optional map "config"; .sz set */
	char filter[BT_PROTO_FILTER_MAX]; /* config.filter points here */
	/* release, attach, snapshot */
	uint64_t grant;
};

/*
 * bt_proto_req__decode() - decode the frame body @buf (@len bytes) into
 * @out. Returns 0, or -EINVAL (malformed: @err says what, naming the
 * field), -EPROTO (not a msgpack map, or bytes after it), -ENOMEM. @err
 * (@errlen bytes) gets one line without a trailing period. On an error
 * @out->id holds the request's id when it could be read (so the reply
 * can carry it), else 0.
 */
int bt_proto_req__decode(const void *buf, size_t len, struct bt_proto_req *out,
			 char *err, size_t errlen);

/* A growing output buffer; msgpack-c's packer writes into it. */
struct bt_proto_buf {
	char *data;
	size_t len, cap;
	bool oom;		/* an allocation failed: the content is short */
};

void bt_proto_buf__init(struct bt_proto_buf *b);
void bt_proto_buf__fini(struct bt_proto_buf *b);
/* A packer writing into @b (msgpack_packer_init with a callback). */
void bt_proto_buf__packer(struct bt_proto_buf *b, msgpack_packer *pk);

/*
 * bt_proto_req__encode() - the frame body for @r (the client's side):
 * only the fields @r->op uses. Returns 0, -EINVAL (bad op), -ENOMEM.
 */
int bt_proto_req__encode(const struct bt_proto_req *r, struct bt_proto_buf *b);

/*
 * Replies. A reply is a map: "id", "ok", and either "errno" (positive,
 * Linux numbering) + "error" (one line) + optional "holder_pid"/"holder",
 * or the op's own fields. bt_proto_reply__begin() packs the map header
 * with @nfields op fields to follow (the caller packs them as key, value
 * pairs); bt_proto_reply__error() packs a whole error reply.
 */
void bt_proto_reply__begin(msgpack_packer *pk, uint64_t id, uint32_t nfields);
void bt_proto_reply__error(msgpack_packer *pk, uint64_t id, int errnum,
			   const char *msg, int holder_pid, const char *holder);
/* Pack a string key (msgpack_pack_str_with_body of strlen). */
void bt_proto_pack_key(msgpack_packer *pk, const char *key);
/* Pack a string value; NULL packs nil. */
void bt_proto_pack_str(msgpack_packer *pk, const char *s);

/*
 * A decoded reply (client side), kept in @zone. bt_proto_reply__decode()
 * checks the envelope: a map with "id" (uint) and "ok" (bool), and for
 * ok=false "errno" (positive int) and "error" (str). Returns 0 with
 * *@obj the map, *@id, *@ok, and for an error reply *@errnum and @err
 * filled; -EPROTO for a malformed reply (@err says why), -ENOMEM.
 */
int bt_proto_reply__decode(const void *buf, size_t len, msgpack_zone *zone,
			   msgpack_object *obj, uint64_t *id, bool *ok,
			   int *errnum, char *err, size_t errlen);

/* Map lookups on decoded objects: NULL / false when absent or mistyped. */
const msgpack_object *bt_proto_get(const msgpack_object *map, const char *key);
bool bt_proto_get_u64(const msgpack_object *map, const char *key, uint64_t *v);
bool bt_proto_get_i64(const msgpack_object *map, const char *key, int64_t *v);
bool bt_proto_get_bool(const msgpack_object *map, const char *key, bool *v);
/* Copies a str value with a NUL into @buf (truncated to @len - 1). */
bool bt_proto_get_str(const msgpack_object *map, const char *key, char *buf,
		      size_t len);

/* ---- Frames over a socket ------------------------------------------------ */

/*
 * bt_proto_send() - write one frame (@body, @len bytes) to stream socket
 * @fd, with @nfds file descriptors as SCM_RIGHTS on its first sendmsg().
 * Blocks until all is written (EINTR retried; MSG_NOSIGNAL). Returns 0 or
 * a negative errno (-EPIPE when the peer is gone, -EMSGSIZE for @len over
 * BT_PROTO_MAX or @nfds over BT_PROTO_MAX_FDS).
 */
int bt_proto_send(int fd, const void *body, size_t len, const int *fds,
		  unsigned nfds);

/*
 * bt_proto_recv() - read one whole frame from blocking socket @fd into a
 * malloc'd *@body (*@len bytes), and up to @maxfds received descriptors
 * into @fds (*@nfds; O_CLOEXEC; any beyond @maxfds are closed). Returns
 * 0, -ECONNRESET (peer closed; 0 bytes of a frame read), -EPROTO (a
 * length of 0 or over BT_PROTO_MAX, or the peer closed mid-frame),
 * -ENOMEM, or what recvmsg() said. On error nothing is returned and any
 * received fds are closed.
 */
int bt_proto_recv(int fd, void **body, size_t *len, int *fds, unsigned maxfds,
		  unsigned *nfds);

/*
 * Incremental frame reader for a non-blocking server: feed it what
 * recv() gave, take whole frames out. A length of 0 or over @max makes it
 * fail for good (-EPROTO): the server closes that connection.
 */
struct bt_proto_rx {
	unsigned char *buf;
	size_t len, cap;
	size_t max;		/* largest frame body accepted */
	bool failed;
	size_t off;		/* bytes of @buf taken by __next() */
};

void bt_proto_rx__init(struct bt_proto_rx *rx, size_t max);
void bt_proto_rx__fini(struct bt_proto_rx *rx);
/* Append @n bytes. 0, -ENOMEM, or -EPROTO once failed. */
int bt_proto_rx__feed(struct bt_proto_rx *rx, const void *p, size_t n);
/*
 * The next whole frame: 1 with *@body and *@len pointing into @rx (valid
 * until the next feed/next call), 0 when none is complete yet, -EPROTO.
 */
int bt_proto_rx__next(struct bt_proto_rx *rx, const void **body, size_t *len);

#endif /* BT_BROKER_PROTO_H */
