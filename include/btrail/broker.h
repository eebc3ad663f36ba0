/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The btraild broker: one daemon owns the hardware trace sessions the
 * kernel allows and serves every tracer on the machine from them, over a
 * Unix socket speaking the protocol of docs/protocol.md.
 *
 * A client connects (bt_broker__connect), asks for a trace with an
 * allocator request (bt_broker__request: a grant, sharing a compatible
 * session when one exists), reads it through KMES rings whose descriptors
 * the daemon passes over the socket (bt_broker__attach), and releases it.
 * The daemon knows the client by SO_PEERCRED, charges it against its own
 * RLIMIT_MEMLOCK, and lets it trace only what the kernel would let it
 * trace itself (docs/btrail-daemon.1).
 *
 * Errors: negative errno; the daemon's one-line reason is kept
 * (bt_broker__error). Constructors return NULL with errno.
 */
#ifndef BTRAIL_BROKER_H
#define BTRAIL_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <btrail/common.h>
#include <btrail/ds.h>
#include <btrail/kmes.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * bt_broker_socket_path() - where the daemon listens:
 * $XDG_RUNTIME_DIR/btrail/btraild.sock when XDG_RUNTIME_DIR is set, else
 * /run/btrail/btraild.sock (the system daemon). Returns 0 or
 * -ENAMETOOLONG.
 */
BT_API int bt_broker_socket_path(char *buf, size_t len);

struct bt_broker;	/* a connection to the daemon */

struct bt_broker_opts {
	size_t sz;
	const char *socket;	/* NULL: bt_broker_socket_path() */
	const char *name;	/* how status shows this client */
	int timeout_ms;		/* per reply; 0: 10 s, < 0: none */
};
#define bt_broker_opts__last_field timeout_ms

/*
 * bt_broker__connect() - connect and say hello. NULL with errno:
 * ENOENT/ECONNREFUSED (no daemon there), EPROTONOSUPPORT (it speaks
 * another protocol version), ETIMEDOUT, EPROTO (a malformed reply).
 */
BT_API struct bt_broker *bt_broker__connect(const struct bt_broker_opts *opts);
/* Close; grants the daemon gave are released. NULL is a no-op. */
BT_API void bt_broker__close(struct bt_broker *b);
/* The daemon's reason for the last failure, or ""; borrowed. */
BT_API const char *bt_broker__error(const struct bt_broker *b);
/* The daemon's pid (from hello). */
BT_API pid_t bt_broker__daemon_pid(const struct bt_broker *b);

struct bt_broker_grant {
	uint64_t grant;		/* the handle for release/attach/snapshot */
	uint64_t session;	/* the daemon's capture it reads */
	bool owner;		/* this client owns (and pays for) it */
	bool shared;		/* an existing session was shared */
	uint64_t charged;	/* bytes charged to this client now */
	char ring[64];		/* the KMES ring session's name */
	/* On -EBUSY: who holds the hardware. */
	pid_t holder_pid;
	char holder[64];
};

/*
 * bt_broker__request() - ask for @req (aux_bytes, target, facility,
 * mode, config as for bt_tracer__request(); the busy_* fields are not
 * used) with rings of @ring_bytes (0: the daemon's default). Returns 0
 * with @out filled, or the daemon's answer: -EBUSY (@out->holder*),
 * -ENOMEM (over this client's RLIMIT_MEMLOCK), -EPERM/-EACCES (may not
 * trace that target), -ENODEV (no such facility here), -EINVAL.
 */
BT_API int bt_broker__request(struct bt_broker *b,
			      const struct bt_ds_request *req,
			      uint64_t ring_bytes,
			      struct bt_broker_grant *out);

/* Release @grant. 0, -ENOENT (no such grant), or a transport error. */
BT_API int bt_broker__release(struct bt_broker *b, uint64_t grant);

/*
 * bt_broker__attach() - a reader over @grant's rings, mapped from the
 * descriptors the daemon passes (kmes_attach over the socket); it follows
 * a generation change by attaching again through @b. @opts as for
 * bt_kmes_reader__new(). Free the reader before closing @b. NULL with
 * errno (ENOENT for no such grant).
 */
BT_API struct bt_kmes_reader *
bt_broker__attach(struct bt_broker *b, uint64_t grant,
		  const struct bt_kmes_reader_opts *opts);

/*
 * bt_broker__snapshot() - make the daemon copy everything captured so far
 * into @grant's rings now; @seqs (room for @n) gets each ring's last
 * committed sequence. Returns the number of rings, or a negative errno.
 */
BT_API int bt_broker__snapshot(struct bt_broker *b, uint64_t grant,
			       uint64_t *seqs, uint32_t n);
/*
 * Whether the last snapshot found every ring of its grant frozen: the
 * capture ended (a stepped task exited or crashed, a snapshot-mode copy
 * was taken) and its bt.trigger is in the rings.
 */
BT_API bool bt_broker__snapshot_ended(const struct bt_broker *b);

/*
 * bt_broker__status_json() - who holds what, as the daemon's status
 * reply turned into one JSON object (docs/protocol.md "status"), in a
 * malloc'd string. 0 or a negative errno.
 */
BT_API int bt_broker__status_json(struct bt_broker *b, char **json);

/*
 * bt_broker__caps_json() - the daemon's view of the facilities
 * (bt_caps_probe() there), as a JSON array in a malloc'd string.
 */
BT_API int bt_broker__caps_json(struct bt_broker *b, char **json);

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_BROKER_H */
