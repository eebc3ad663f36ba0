// SPDX-License-Identifier: BSD-3-Clause
/*
 * The daemon's loop: the listening socket, the clients, the requests.
 *
 * One thread calls the allocator; clients are non-blocking sockets read
 * into a frame reader (bt_proto_rx). A framing error or a client that
 * cannot take its reply closes that connection only; a malformed request
 * gets an error reply and the connection goes on. A connection that
 * closes releases its grants: ownership of a shared session passes to
 * the oldest sharer (the allocator's rule) and its capture goes on.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <btrail/broker.h>
#include <btrail/errno.h>

#include "common/log.h"
#include "btraild.h"

#define BD_DEFAULT_RING		(4ull << 20)
#define BD_MAX_RING		(64ull << 20)
#define BD_MAX_CLIENTS		1024u
#define BD_MAX_ATTACH		(BT_PROTO_MAX_FDS / 2)

static int bd_quit_fd = -1;
static const int bd_listen_tag = BD_W_LISTEN, bd_quit_tag = BD_W_QUIT;

void bd_stop(void)
{
	uint64_t one = 1;

	if (bd_quit_fd >= 0)
		(void)!write(bd_quit_fd, &one, sizeof(one));
}

/* ---- Replies ------------------------------------------------------------- */

static int send_buf(struct bd_client *cl, struct bt_proto_buf *b,
		    const int *fds, unsigned nfds)
{
	int err = b->oom ? -ENOMEM : bt_proto_send(cl->fd, b->data, b->len,
						   fds, nfds);

	bt_proto_buf__fini(b);
	return err;
}

static int reply_error(struct bd_client *cl, uint64_t id, int errnum,
		       const char *msg, int holder_pid, const char *holder)
{
	struct bt_proto_buf b;
	msgpack_packer pk;

	bt_proto_buf__init(&b);
	bt_proto_buf__packer(&b, &pk);
	bt_proto_reply__error(&pk, id, errnum, msg, holder_pid, holder);
	return send_buf(cl, &b, NULL, 0);
}

static int reply_ok(struct bd_client *cl, uint64_t id)
{
	struct bt_proto_buf b;
	msgpack_packer pk;

	bt_proto_buf__init(&b);
	bt_proto_buf__packer(&b, &pk);
	bt_proto_reply__begin(&pk, id, 0);
	return send_buf(cl, &b, NULL, 0);
}

static void kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
	bt_proto_pack_key(pk, k);
	msgpack_pack_uint64(pk, v);
}

static void kv_i64(msgpack_packer *pk, const char *k, int64_t v)
{
	bt_proto_pack_key(pk, k);
	msgpack_pack_int64(pk, v);
}

static void kv_bool(msgpack_packer *pk, const char *k, bool v)
{
	bt_proto_pack_key(pk, k);
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

static void kv_str(msgpack_packer *pk, const char *k, const char *v)
{
	bt_proto_pack_key(pk, k);
	bt_proto_pack_str(pk, v);
}

/* ---- Grants and captures --------------------------------------------- */

static struct bd_grant *grant_find(struct bd_client *cl, uint64_t id)
{
	for (struct bd_grant *g = cl->grants; g; g = g->next)
		if (g->id == id)
			return g;
	return NULL;
}

/* Part @i of @g's view (the view itself when it has no parts). */
static struct bt_ds_view *grant_part(const struct bd_grant *g, uint32_t i)
{
	return bt_ds_view__nr_parts(g->view) ?
	       bt_ds_view__part(g->view, i) : g->view;
}

/* One part of one grant: the walk over everything clients read. */
struct use {
	struct bd_client *cl;
	struct bd_grant *g;
	uint32_t i;
};

/* The next (client, grant, part) after @u; start from a zeroed @u. */
static bool use_next(struct bd_daemon *d, struct use *u)
{
	if (!u->cl) {
		u->cl = d->clients;
		u->g = u->cl ? u->cl->grants : NULL;
		u->i = 0;
	} else {
		u->i++;
	}
	while (u->cl) {
		if (u->g && u->i < u->g->ncap)
			return true;
		if (u->g) {
			u->g = u->g->next;
		} else {
			u->cl = u->cl->next;
			u->g = u->cl ? u->cl->grants : NULL;
		}
		u->i = 0;
	}
	return false;
}

/* How many grant parts other than @except's read @c. */
static unsigned capture_users(struct bd_daemon *d, const struct bd_capture *c,
			      const struct bd_grant *except)
{
	struct use u = { 0 };
	unsigned n = 0;

	while (use_next(d, &u))
		n += u.g != except && u.g->cap[u.i] == c;
	return n;
}

/* End @c and forget it in every grant (they read nothing more). */
static void capture_drop(struct bd_daemon *d, struct bd_capture *c)
{
	struct use u = { 0 };

	while (use_next(d, &u))
		if (u.g->cap[u.i] == c)
			u.g->cap[u.i] = NULL;
	bd_capture_end(c);
}

/* A view on @c's session that still reads it, or NULL. */
static struct bt_ds_view *capture_live_view(struct bd_daemon *d,
					    const struct bd_capture *c)
{
	struct use u = { 0 };

	while (use_next(d, &u)) {
		struct bt_ds_view *p = grant_part(u.g, u.i);

		if (u.g->cap[u.i] == c && p && !bt_ds_view__revoked(p) &&
		    bt_ds_view__event(p))
			return p;
	}
	return NULL;
}

/*
 * After an allocator call that may have changed sessions: every capture
 * is wired to the buffers of a live view on its session, or ended.
 */
static void reconcile(struct bd_daemon *d)
{
	struct bd_capture *c, *next;

	for (c = d->caps_list; c; c = next) {
		struct bt_ds_view *live = capture_live_view(d, c);

		next = c->next;
		if (!live) {
			capture_drop(d, c);
			continue;
		}
		if (c->frozen)
			continue;
		if (c->col && c->wired == bt_ds_view__buffers(live) &&
		    c->event == bt_ds_view__event(live))
			continue;
		if (bd_capture_wire(c, live)) {
			pr_warn("btraild: capture %llu: re-wiring failed",
				(unsigned long long)c->id);
			capture_drop(d, c);
		}
	}
}

static void grant_release(struct bd_daemon *d, struct bd_client *cl,
			  struct bd_grant *g)
{
	struct bd_grant **pp;

	/* Captures only @g reads end first (a stepper writes into them). */
	for (uint32_t i = 0; i < g->ncap; i++) {
		struct bd_capture *c = g->cap[i];

		if (!c)
			continue;
		if (!capture_users(d, c, g))
			capture_drop(d, c);
		else
			bd_capture_pause(c);
	}
	for (pp = &cl->grants; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	bt_ds_view__release(g->view);
	free(g->cap);
	free(g);
	reconcile(d);
}

static void on_notice(void *ctx, const struct bt_ds_notice *n)
{
	struct bd_daemon *d = ctx;
	struct bd_capture *c;

	if (n->kind != BT_DS_NOTICE_OWNER || !n->view)
		return;
	c = bd_capture_find(d, bt_ds_view__event(n->view));
	if (c)
		c->owner_pid = n->owner_pid;
}

/* ---- Requests ------------------------------------------------------------ */

static int op_hello(struct bd_daemon *d, struct bd_client *cl,
		    const struct bt_proto_req *r)
{
	struct bt_proto_buf b;
	msgpack_packer pk;

	(void)d;
	if (r->version != BT_PROTO_VERSION) {
		char msg[128];

		snprintf(msg, sizeof(msg),
			 "protocol version %u is not spoken here (btraild "
			 "speaks %u)", r->version, BT_PROTO_VERSION);
		reply_error(cl, r->id, EPROTONOSUPPORT, msg, 0, NULL);
		return -EPROTONOSUPPORT;
	}
	cl->hello = true;
	if (r->name[0])
		snprintf(cl->name, sizeof(cl->name), "%s", r->name);
	bt_proto_buf__init(&b);
	bt_proto_buf__packer(&b, &pk);
	bt_proto_reply__begin(&pk, r->id, 3);
	kv_u64(&pk, "version", BT_PROTO_VERSION);
	kv_str(&pk, "server", "btraild " BTRAIL_VERSION_STRING);
	kv_i64(&pk, "pid", getpid());
	return send_buf(cl, &b, NULL, 0);
}

static int op_caps(struct bd_daemon *d, struct bd_client *cl,
		   const struct bt_proto_req *r)
{
	struct bt_proto_buf b;
	msgpack_packer pk;

	bt_proto_buf__init(&b);
	bt_proto_buf__packer(&b, &pk);
	bt_proto_reply__begin(&pk, r->id, 2);
	kv_str(&pk, "backend", d->sim ? "sim" : "perf");
	bt_proto_pack_key(&pk, "caps");
	msgpack_pack_array(&pk, BT_FAC__COUNT);
	for (uint32_t f = 0; f < BT_FAC__COUNT; f++) {
		msgpack_pack_map(&pk, 3);
		kv_str(&pk, "facility", bt_facility_name(f));
		kv_bool(&pk, "present", d->caps[f].present);
		kv_str(&pk, "reason", d->caps[f].reason);
	}
	return send_buf(cl, &b, NULL, 0);
}

static int refuse_budget(struct bd_daemon *d, struct bd_client *cl,
			 const struct bt_proto_req *r)
{
	char msg[256];

	(void)d;
	snprintf(msg, sizeof(msg),
		 "%llu bytes of trace buffer do not fit pid %d's locked-memory "
		 "budget: RLIMIT_MEMLOCK %llu bytes, %llu already charged; "
		 "ask for less, raise the limit (ulimit -l) or grant "
		 "CAP_IPC_LOCK", (unsigned long long)r->aux_bytes,
		 (int)cl->peer.pid,
		 (unsigned long long)bt_tracer__budget(cl->tr),
		 (unsigned long long)bt_tracer__charged(cl->tr));
	return reply_error(cl, r->id, ENOMEM, msg, 0, NULL);
}

static int op_request(struct bd_daemon *d, struct bd_client *cl,
		      const struct bt_proto_req *r)
{
	struct bt_ds_request req = {
		.sz = sizeof(req), .target = r->target,
		.facility = r->facility, .config = &r->config,
		.aux_bytes = r->aux_bytes, .data_bytes = r->data_bytes,
		.mode = r->mode,
	};
	const char *fname = bt_facility_name(r->facility);
	struct bt_proto_buf b;
	msgpack_packer pk;
	struct bd_grant *g;
	char msg[512];
	bool stepped = r->facility == BT_FAC_STEP ||
		       r->facility == BT_FAC_PTEMU;
	bool shared = true;
	uint32_t n;
	int err;

	msg[0] = '\0';
	err = r->target.kind == BT_TARGET_TASK ?
	      bt_perm__may_trace_task(&cl->peer, r->target.id, d->o.procfs,
				      msg, sizeof(msg)) :
	      bt_perm__may_trace_cpu(&cl->peer, d->o.procfs, msg, sizeof(msg));
	if (err)
		return reply_error(cl, r->id, -err, msg, 0, NULL);
	/* Rings are the daemon's memory, not charged to anyone: bounded. */
	if (r->ring_bytes > BD_MAX_RING) {
		snprintf(msg, sizeof(msg), "ring_bytes %llu is over this "
			 "daemon's limit of %llu", (unsigned long long)
			 r->ring_bytes, (unsigned long long)BD_MAX_RING);
		return reply_error(cl, r->id, EINVAL, msg, 0, NULL);
	}
	if (stepped && !d->sim) {
		snprintf(msg, sizeof(msg), "%s needs the sim backend; this "
			 "daemon runs the perf backend (btrail daemon "
			 "--backend sim)", fname);
		return reply_error(cl, r->id, ENODEV, msg, 0, NULL);
	}
	if (!d->sim && !d->caps[r->facility].present) {
		snprintf(msg, sizeof(msg), "%s is not available here: %s",
			 fname, d->caps[r->facility].reason);
		return reply_error(cl, r->id, ENODEV, msg, 0, NULL);
	}

	g = calloc(1, sizeof(*g));
	if (!g)
		return reply_error(cl, r->id, ENOMEM, "out of memory", 0, NULL);
	err = bt_tracer__request(cl->tr, &req, &g->view);
	if (err) {
		free(g);
		if (err == -EBUSY) {
			snprintf(msg, sizeof(msg), "%s on %s %d is held by pid "
				 "%d (%s) with an incompatible configuration",
				 fname, bd_kind_name(r->target.kind),
				 (int)r->target.id, (int)req.busy_pid,
				 req.busy_name);
			return reply_error(cl, r->id, EBUSY, msg,
					   req.busy_pid, req.busy_name);
		}
		if (err == -ENOMEM)
			return refuse_budget(d, cl, r);
		snprintf(msg, sizeof(msg), "opening %s: %s", fname,
			 bt_strerror(err));
		return reply_error(cl, r->id, -err, msg, 0, NULL);
	}
	g->id = ++d->next_grant;
	n = bt_ds_view__nr_parts(g->view);
	g->ncap = n ? n : 1;
	g->cap = calloc(g->ncap, sizeof(*g->cap));
	err = g->cap ? 0 : -ENOMEM;
	if (!g->cap)
		g->ncap = 0;	/* grant_release() walks cap[] */
	g->next = cl->grants;
	cl->grants = g;
	for (uint32_t i = 0; !err && i < g->ncap; i++) {
		struct bt_ds_view *p = grant_part(g, i);
		bool created = false;

		if (!p) {
			err = -ENODEV;
			break;
		}
		err = bd_capture_for(d, p, r->facility, r->mode,
				     r->ring_bytes, cl->peer.pid, &g->cap[i],
				     &created, msg, sizeof(msg));
		shared &= !created;
	}
	if (err) {
		grant_release(d, cl, g);
		if (!msg[0])
			snprintf(msg, sizeof(msg), "%s", bt_strerror(err));
		return reply_error(cl, r->id, -err, msg, 0, NULL);
	}
	if (!d->o.quiet)
		pr_info("btraild: grant %llu: pid %d %s %s on %s %d (%s)",
			(unsigned long long)g->id, (int)cl->peer.pid,
			shared ? "shares" : "owns", fname,
			bd_kind_name(r->target.kind), (int)r->target.id,
			g->cap[0]->ring);

	bt_proto_buf__init(&b);
	bt_proto_buf__packer(&b, &pk);
	bt_proto_reply__begin(&pk, r->id, 6);
	kv_u64(&pk, "grant", g->id);
	kv_u64(&pk, "session", g->cap[0]->id);
	kv_bool(&pk, "owner", !shared);
	kv_bool(&pk, "shared", shared);
	kv_u64(&pk, "charged", bt_tracer__charged(cl->tr));
	kv_str(&pk, "ring", g->cap[0]->ring);
	return send_buf(cl, &b, NULL, 0);
}

static int no_grant(struct bd_client *cl, const struct bt_proto_req *r)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "no grant %llu on this connection",
		 (unsigned long long)r->grant);
	return reply_error(cl, r->id, ENOENT, msg, 0, NULL);
}

static int op_release(struct bd_daemon *d, struct bd_client *cl,
		      const struct bt_proto_req *r)
{
	struct bd_grant *g = grant_find(cl, r->grant);

	if (!g)
		return no_grant(cl, r);
	grant_release(d, cl, g);
	return reply_ok(cl, r->id);
}

static int op_attach(struct bd_daemon *d, struct bd_client *cl,
		     const struct bt_proto_req *r)
{
	struct bd_grant *g = grant_find(cl, r->grant);
	int fds[BT_PROTO_MAX_FDS];
	uint64_t cap[BD_MAX_ATTACH];
	struct bt_proto_buf b;
	msgpack_packer pk;
	unsigned nfd = 0;
	int err = 0;

	(void)d;
	if (!g)
		return no_grant(cl, r);
	if (g->ncap > BD_MAX_ATTACH)
		return reply_error(cl, r->id, E2BIG, "the grant has more rings "
				   "than one reply can carry (32)", 0, NULL);
	for (uint32_t i = 0; i < g->ncap && !err; i++) {
		if (!g->cap[i]) {
			err = -ENODEV;
			break;
		}
		err = bd_capture_ring_fds(g->cap[i], &fds[nfd], &fds[nfd + 1],
					  &cap[i]);
		if (!err)
			nfd += 2;
	}
	if (err) {
		for (unsigned i = 0; i < nfd; i++)
			close(fds[i]);
		return reply_error(cl, r->id, -err, err == -ENODEV ?
				   "the session was revoked: nobody could pay "
				   "for its buffer" : bt_strerror(err), 0, NULL);
	}
	bt_proto_buf__init(&b);
	bt_proto_buf__packer(&b, &pk);
	bt_proto_reply__begin(&pk, r->id, 1);
	bt_proto_pack_key(&pk, "slots");
	msgpack_pack_array(&pk, g->ncap);
	for (uint32_t i = 0; i < g->ncap; i++) {
		const struct bd_capture *c = g->cap[i];

		msgpack_pack_map(&pk, 5);
		kv_u64(&pk, "slot", i);
		kv_u64(&pk, "capacity", cap[i]);
		kv_i64(&pk, "cpu", c->target.kind == BT_TARGET_CPU ?
				   c->target.id : -1);
		kv_i64(&pk, "tid", c->target.kind == BT_TARGET_TASK ?
				   c->target.id : -1);
		kv_str(&pk, "ring", c->ring);
	}
	err = send_buf(cl, &b, fds, nfd);
	for (unsigned i = 0; i < nfd; i++)
		close(fds[i]);
	return err;
}

static int op_snapshot(struct bd_daemon *d, struct bd_client *cl,
		       const struct bt_proto_req *r)
{
	struct bd_grant *g = grant_find(cl, r->grant);
	struct bt_proto_buf b;
	msgpack_packer pk;
	bool ended = true;

	(void)d;
	if (!g)
		return no_grant(cl, r);
	for (uint32_t i = 0; i < g->ncap; i++) {
		struct bd_capture *c = g->cap[i];

		if (!c || c->frozen)
			continue;
		if (c->mode == BT_MODE_SNAPSHOT && c->col) {
			struct bt_trigger t = {
				.sz = sizeof(t), .reason = "request",
				.pid = cl->peer.pid,
			};

			/* The hardware buffer is copied once, now. */
			bt_collector__freeze(c->col, &t);
			c->frozen = true;
		} else {
			bd_capture_sync(c);
		}
	}
	for (uint32_t i = 0; i < g->ncap; i++)
		ended &= !g->cap[i] || g->cap[i]->frozen;
	bt_proto_buf__init(&b);
	bt_proto_buf__packer(&b, &pk);
	bt_proto_reply__begin(&pk, r->id, 2);
	kv_bool(&pk, "ended", ended);
	bt_proto_pack_key(&pk, "sequences");
	msgpack_pack_array(&pk, g->ncap);
	for (uint32_t i = 0; i < g->ncap; i++) {
		struct bd_capture *c = g->cap[i];

		msgpack_pack_uint64(&pk, c ? bt_kmes_session__last_sequence(
					      c->ks, c->slot) : 0);
	}
	return send_buf(cl, &b, NULL, 0);
}

/* Whether @u reads @c as a sharer (not its owner). */
static bool is_sharer(const struct use *u, const struct bd_capture *c)
{
	return u->g->cap[u->i] == c && u->cl->peer.pid != c->owner_pid;
}

static void pack_status(struct bd_daemon *d, msgpack_packer *pk)
{
	uint32_t ncap = 0;

	bt_proto_pack_key(pk, "daemon");
	msgpack_pack_map(pk, 7);
	kv_i64(pk, "pid", getpid());
	kv_i64(pk, "uid", getuid());
	kv_u64(pk, "version", BT_PROTO_VERSION);
	kv_str(pk, "backend", d->sim ? "sim" : "perf");
	kv_i64(pk, "started", (int64_t)d->started);
	kv_str(pk, "socket", d->sock_path);
	kv_u64(pk, "mapped", bt_ds__mapped(d->ds));

	bt_proto_pack_key(pk, "tracers");
	msgpack_pack_array(pk, d->nclients);
	for (struct bd_client *cl = d->clients; cl; cl = cl->next) {
		uint32_t ng = 0;

		for (struct bd_grant *g = cl->grants; g; g = g->next)
			ng++;
		msgpack_pack_map(pk, 7);
		kv_i64(pk, "pid", cl->peer.pid);
		kv_i64(pk, "uid", cl->peer.uid);
		kv_str(pk, "name", cl->name[0] ? cl->name : cl->peer.comm);
		kv_u64(pk, "budget", cl->tr ? bt_tracer__budget(cl->tr) : 0);
		kv_bool(pk, "unlimited", cl->peer.unlimited);
		kv_u64(pk, "charged", cl->tr ? bt_tracer__charged(cl->tr) : 0);
		bt_proto_pack_key(pk, "grants");
		msgpack_pack_array(pk, ng);
		for (struct bd_grant *g = cl->grants; g; g = g->next)
			msgpack_pack_uint64(pk, g->id);
	}

	for (struct bd_capture *c = d->caps_list; c; c = c->next)
		ncap++;
	bt_proto_pack_key(pk, "sessions");
	msgpack_pack_array(pk, ncap);
	for (struct bd_capture *c = d->caps_list; c; c = c->next) {
		struct use u = { 0 };
		uint32_t ns = 0;

		while (use_next(d, &u))
			ns += is_sharer(&u, c);
		msgpack_pack_map(pk, 10);
		kv_u64(pk, "id", c->id);
		kv_str(pk, "facility", bt_facility_name(c->facility));
		bt_proto_pack_key(pk, "target");
		msgpack_pack_map(pk, 2);
		kv_str(pk, "kind", bd_kind_name(c->target.kind));
		kv_i64(pk, "id", c->target.id);
		kv_str(pk, "mode", bd_mode_name(c->mode));
		kv_u64(pk, "aux_bytes", c->wired ? c->wired->aux_size : 0);
		kv_i64(pk, "owner_pid", c->owner_pid);
		bt_proto_pack_key(pk, "sharers");
		msgpack_pack_array(pk, ns);
		while (use_next(d, &u))
			if (is_sharer(&u, c))
				msgpack_pack_int64(pk, u.cl->peer.pid);
		kv_str(pk, "ring", c->ring);
		kv_u64(pk, "slots", 1);
		kv_bool(pk, "ended", c->frozen);
	}

	ncap = 0;
	for (struct bd_orphan *o = d->orphans; o; o = o->next)
		ncap++;
	bt_proto_pack_key(pk, "orphans");
	msgpack_pack_array(pk, ncap);
	for (struct bd_orphan *o = d->orphans; o; o = o->next) {
		msgpack_pack_map(pk, 4);
		kv_str(pk, "ring", o->ring);
		kv_str(pk, "facility", bt_facility_name(o->facility));
		kv_str(pk, "mode", bd_mode_name(o->mode));
		bt_proto_pack_key(pk, "target");
		msgpack_pack_map(pk, 2);
		kv_str(pk, "kind", bd_kind_name(o->target.kind));
		kv_i64(pk, "id", o->target.id);
	}
}

static int op_status(struct bd_daemon *d, struct bd_client *cl,
		     const struct bt_proto_req *r)
{
	struct bt_proto_buf b;
	msgpack_packer pk;

	bt_proto_buf__init(&b);
	bt_proto_buf__packer(&b, &pk);
	bt_proto_reply__begin(&pk, r->id, 4);
	pack_status(d, &pk);
	return send_buf(cl, &b, NULL, 0);
}

/* One frame from @cl. A negative return closes the connection. */
static int handle(struct bd_daemon *d, struct bd_client *cl, const void *body,
		  size_t len)
{
	struct bt_proto_req r;
	char err[256];
	int ret;

	ret = bt_proto_req__decode(body, len, &r, err, sizeof(err));
	if (ret) {
		reply_error(cl, r.id, -ret, err, 0, NULL);
		/* Garbage before hello: not a client of ours. */
		return cl->hello ? 0 : -EPROTO;
	}
	if (!cl->hello && r.op != BT_OP_HELLO) {
		reply_error(cl, r.id, EPROTO, "the first request must be "
			    "\"hello\"", 0, NULL);
		return -EPROTO;
	}
	switch (r.op) {
	case BT_OP_HELLO:
		return op_hello(d, cl, &r);
	case BT_OP_CAPS:
		return op_caps(d, cl, &r);
	case BT_OP_REQUEST:
		return op_request(d, cl, &r);
	case BT_OP_RELEASE:
		return op_release(d, cl, &r);
	case BT_OP_ATTACH:
		return op_attach(d, cl, &r);
	case BT_OP_SNAPSHOT:
		return op_snapshot(d, cl, &r);
	case BT_OP_STATUS:
		return op_status(d, cl, &r);
	}
	return reply_error(cl, r.id, EINVAL, "unknown op", 0, NULL);
}

/* ---- Connections --------------------------------------------------------- */

static void client_close(struct bd_daemon *d, struct bd_client *cl)
{
	struct bd_client **pp;

	while (cl->grants)
		grant_release(d, cl, cl->grants);
	for (pp = &d->clients; *pp; pp = &(*pp)->next) {
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	}
	d->nclients--;
	bt_tracer__leave(cl->tr);
	reconcile(d);
	if (!d->o.quiet)
		pr_debug("btraild: pid %d (%s) left", (int)cl->peer.pid,
			 cl->peer.comm);
	close(cl->fd);
	bt_proto_rx__fini(&cl->rx);
	free(cl);
}

static void client_accept(struct bd_daemon *d)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	struct bt_tracer_opts to = { .sz = sizeof(to) };
	struct bd_client *cl;
	char err[256];
	int fd;

	fd = accept4(d->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (d->nclients >= d->o.max_clients) {
		close(fd);
		return;
	}
	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		close(fd);
		return;
	}
	cl->kind = BD_W_CLIENT;
	cl->fd = fd;
	bt_proto_rx__init(&cl->rx, BT_PROTO_MAX);
	if (bt_peer__from_socket(fd, d->o.procfs, &cl->peer, err,
				 sizeof(err)) < 0) {
		pr_warn("btraild: refusing a connection: %s", err);
		goto fail;
	}
	to.uid = cl->peer.uid;
	to.pid = cl->peer.pid;
	to.name = cl->peer.comm;
	to.unlimited = cl->peer.unlimited;
	to.budget = to.unlimited ? 0 : cl->peer.memlock;
	/* A budget of 0 means "its RLIMIT_MEMLOCK" to the allocator. */
	if (!to.unlimited && !to.budget)
		to.budget = 1;
	cl->tr = bt_ds__join(d->ds, &to);
	if (!cl->tr) {
		pr_warn("btraild: pid %d: joining the allocator: %s",
			(int)cl->peer.pid, strerror(errno));
		goto fail;
	}
	ev.data.ptr = cl;
	if (epoll_ctl(d->efd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		bt_tracer__leave(cl->tr);
		goto fail;
	}
	cl->next = d->clients;
	d->clients = cl;
	d->nclients++;
	return;
fail:
	bt_proto_rx__fini(&cl->rx);
	close(fd);
	free(cl);
}

static void client_input(struct bd_daemon *d, struct bd_client *cl)
{
	unsigned char buf[16384];
	const void *body;
	size_t len;
	ssize_t n;
	int ret;

	for (;;) {
		n = recv(cl->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0 || bt_proto_rx__feed(&cl->rx, buf, (size_t)n) < 0)
			break;
		while ((ret = bt_proto_rx__next(&cl->rx, &body, &len)) == 1)
			if (handle(d, cl, body, len) < 0)
				goto close;
		if (ret < 0)
			break;
	}
close:
	client_close(d, cl);
}

static void capture_event(struct bd_daemon *d, struct bd_capture *c)
{
	uint64_t v;

	(void)d;
	(void)!read(c->ready_fd, &v, sizeof(v));
	if (__atomic_load_n(&c->th_done, __ATOMIC_ACQUIRE))
		bd_capture_step_done(c);
}

/* ---- Set-up -------------------------------------------------------------- */

static int make_parent(const char *path)
{
	char dir[108], *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		if (errno == ENOENT && make_parent(dir) == 0 &&
		    mkdir(dir, 0755) == 0)
			return 0;
		return -errno;
	}
	return 0;
}

static int listen_on(struct bd_daemon *d)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(d->sock_path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, d->sock_path);
	err = make_parent(d->sock_path);
	if (err) {
		pr_warn("btraild: creating the directory of %s: %s",
			d->sock_path, strerror(-err));
		return err;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A socket file nobody listens on is a dead daemon's: take it. */
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		pr_warn("btraild: another daemon listens on %s", d->sock_path);
		close(fd);
		return -EADDRINUSE;
	}
	close(fd);
	unlink(d->sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    chmod(d->sock_path, 0666) < 0 || listen(fd, 128) < 0) {
		err = -errno;
		pr_warn("btraild: listening on %s: %s", d->sock_path,
			strerror(errno));
		close(fd);
		return err;
	}
	d->lfd = fd;
	return 0;
}

static int setup_backend(struct bd_daemon *d)
{
	struct bt_caps_opts co = { .sz = sizeof(co) };
	struct bt_ds_opts dso = {
		.sz = sizeof(dso), .notice = on_notice, .notice_ctx = d,
	};
	const char *be = d->o.backend ? d->o.backend : "auto";
	bool hw = false;

	bt_caps_probe(d->caps, &co);
	for (uint32_t f = 0; f < BT_FAC__COUNT; f++)
		hw |= f != BT_FAC_STEP && f != BT_FAC_PTEMU && d->caps[f].present;
	if (!strcmp(be, "sim") || (!strcmp(be, "auto") && !hw)) {
		struct bt_sim_opts so = {
			.sz = sizeof(so), .cap_ipc_lock = true,
		};

		d->sim = true;
		d->pmu = bt_pmu__new_sim(&so);
		for (uint32_t f = 0; f < BT_FAC__COUNT; f++) {
			char why[sizeof(d->caps[f].reason)];

			if (f == BT_FAC_STEP || f == BT_FAC_PTEMU)
				continue;
			snprintf(why, sizeof(why), "%s", d->caps[f].reason);
			d->caps[f].present = true;
			snprintf(d->caps[f].reason, sizeof(d->caps[f].reason),
				 "sim backend (the hardware here: %.190s)",
				 why);
		}
	} else if (!strcmp(be, "perf") || !strcmp(be, "auto")) {
		struct bt_perf_opts po = { .sz = sizeof(po) };

		d->pmu = bt_pmu__new_perf(&po);
	} else {
		pr_warn("btraild: unknown backend '%s' (auto, perf, sim)", be);
		return -EINVAL;
	}
	if (!d->pmu)
		return -errno;
	d->ds = bt_ds__new(d->pmu, &dso);
	return d->ds ? 0 : -errno;
}

static void teardown(struct bd_daemon *d)
{
	while (d->clients)
		client_close(d, d->clients);
	while (d->caps_list)
		bd_capture_end(d->caps_list);
	bd_state_save(d);
	bd_orphans_free(d);
	bt_ds__free(d->ds);
	bt_pmu__free(d->pmu);
	if (d->lfd >= 0) {
		close(d->lfd);
		unlink(d->sock_path);
	}
	if (d->efd >= 0)
		close(d->efd);
	if (d->quit_fd >= 0)
		close(d->quit_fd);
	bd_quit_fd = -1;
}

int bd_run(const struct bd_opts *opts)
{
	struct bd_daemon d = { .lfd = -1, .efd = -1, .quit_fd = -1 };
	struct epoll_event ev = { .events = EPOLLIN };
	struct timespec ts;
	int err;

	d.o = *opts;
	if (!d.o.ring_bytes)
		d.o.ring_bytes = BD_DEFAULT_RING;
	if (!d.o.max_clients)
		d.o.max_clients = BD_MAX_CLIENTS;
	if (d.o.socket)
		snprintf(d.sock_path, sizeof(d.sock_path), "%s", d.o.socket);
	else if (bt_broker_socket_path(d.sock_path, sizeof(d.sock_path)))
		return -ENAMETOOLONG;
	clock_gettime(CLOCK_REALTIME, &ts);
	d.started = ts.tv_sec;
	d.epoch = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	signal(SIGPIPE, SIG_IGN);

	err = setup_backend(&d);
	if (!err)
		err = listen_on(&d);
	if (err)
		goto out;
	snprintf(d.state_path, sizeof(d.state_path), "%s.state", d.sock_path);
	bd_state_load(&d);
	bd_state_save(&d);
	d.efd = epoll_create1(EPOLL_CLOEXEC);
	d.quit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d.efd < 0 || d.quit_fd < 0) {
		err = -errno;
		goto out;
	}
	bd_quit_fd = d.quit_fd;
	ev.data.ptr = (void *)&bd_listen_tag;
	epoll_ctl(d.efd, EPOLL_CTL_ADD, d.lfd, &ev);
	ev.data.ptr = (void *)&bd_quit_tag;
	epoll_ctl(d.efd, EPOLL_CTL_ADD, d.quit_fd, &ev);
	if (!d.o.quiet)
		pr_info("btraild: pid %d listening on %s (backend %s)",
			(int)getpid(), d.sock_path, d.sim ? "sim" : "perf");
	if (d.o.ready_fd >= 0) {
		(void)!write(d.o.ready_fd, "", 1);
		close(d.o.ready_fd);
	}

	for (;;) {
		struct epoll_event evs[32];
		int n = epoll_wait(d.efd, evs, 32, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		for (int i = 0; i < n; i++) {
			const int *kind = evs[i].data.ptr;

			switch (*kind) {
			case BD_W_LISTEN:
				client_accept(&d);
				break;
			case BD_W_QUIT:
				goto out;
			case BD_W_CLIENT:
				client_input(&d, evs[i].data.ptr);
				/*
				 * A closed client may have ended captures
				 * other events of this batch point to.
				 */
				if (i + 1 < n)
					goto next_batch;
				break;
			case BD_W_CAPTURE:
				capture_event(&d, evs[i].data.ptr);
				break;
			}
		}
next_batch:
		;
	}
out:
	teardown(&d);
	return err;
}
