// SPDX-License-Identifier: BSD-3-Clause
/*
 * The broker's client side (include/btrail/broker.h): one blocking
 * connection, one request in flight at a time, replies matched by id.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include <btrail/broker.h>

#include "broker/proto.h"
#include "common/opts.h"

#define BR_TIMEOUT_MS	10000

/* What a reader needs to attach a grant's slots again. */
struct br_attach {
	struct bt_broker *b;
	uint64_t grant;
	uint32_t nslots;
	int *fds;		/* 2 per slot from the last attach; -1 taken */
	uint64_t *caps;
	struct br_attach *next;
};

struct bt_broker {
	int fd;
	int timeout_ms;
	uint64_t next_id;
	pid_t daemon_pid;
	char error[512];
	bool snap_ended;
	struct br_attach *attaches;
};

int bt_broker_socket_path(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (xdg && xdg[0] == '/')
		n = snprintf(buf, len, "%s/btrail/btraild.sock", xdg);
	else
		n = snprintf(buf, len, "/run/btrail/btraild.sock");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

const char *bt_broker__error(const struct bt_broker *b)
{
	return b ? b->error : "";
}

bool bt_broker__snapshot_ended(const struct bt_broker *b)
{
	return b && b->snap_ended;
}

pid_t bt_broker__daemon_pid(const struct bt_broker *b)
{
	return b ? b->daemon_pid : -1;
}

/* ---- One round trip ------------------------------------------------------ */

struct br_reply {
	msgpack_zone zone;
	msgpack_object obj;
	void *body;
	int fds[BT_PROTO_MAX_FDS];
	unsigned nfds;
};

static void reply_fini(struct br_reply *r)
{
	for (unsigned i = 0; i < r->nfds; i++)
		if (r->fds[i] >= 0)
			close(r->fds[i]);
	msgpack_zone_destroy(&r->zone);
	free(r->body);
}

/*
 * Send @req (its id is set here) and read its reply into @rep. Returns 0
 * for an ok reply, the daemon's -errno (b->error has its line), or a
 * transport error. @holder_pid/@holder get an EBUSY reply's holder.
 */
static int call(struct bt_broker *b, struct bt_proto_req *req,
		struct br_reply *rep, pid_t *holder_pid, char *holder,
		size_t holder_len)
{
	struct bt_proto_buf out;
	struct pollfd p = { .fd = b->fd, .events = POLLIN };
	uint64_t id;
	size_t len;
	bool ok;
	int errnum = 0, err;

	memset(rep, 0, sizeof(*rep));
	msgpack_zone_init(&rep->zone, 2048);
	b->error[0] = '\0';
	req->id = ++b->next_id;
	bt_proto_buf__init(&out);
	err = bt_proto_req__encode(req, &out);
	if (!err)
		err = out.oom ? -ENOMEM :
		      bt_proto_send(b->fd, out.data, out.len, NULL, 0);
	bt_proto_buf__fini(&out);
	if (err)
		return err;
	if (b->timeout_ms >= 0) {
		int n;

		do {
			n = poll(&p, 1, b->timeout_ms);
		} while (n < 0 && errno == EINTR);
		if (n == 0) {
			snprintf(b->error, sizeof(b->error),
				 "no reply from btraild in %d ms",
				 b->timeout_ms);
			return -ETIMEDOUT;
		}
	}
	err = bt_proto_recv(b->fd, &rep->body, &len, rep->fds,
			    BT_PROTO_MAX_FDS, &rep->nfds);
	if (err) {
		snprintf(b->error, sizeof(b->error), "reading btraild's reply: "
			 "%s", strerror(-err));
		return err;
	}
	err = bt_proto_reply__decode(rep->body, len, &rep->zone, &rep->obj,
				     &id, &ok, &errnum, b->error,
				     sizeof(b->error));
	if (err)
		return err;
	if (id != req->id) {
		snprintf(b->error, sizeof(b->error), "reply to request %llu "
			 "while waiting for %llu", (unsigned long long)id,
			 (unsigned long long)req->id);
		return -EPROTO;
	}
	if (ok)
		return 0;
	if (holder_pid) {
		int64_t v = 0;

		*holder_pid = bt_proto_get_i64(&rep->obj, "holder_pid", &v) ?
			      (pid_t)v : 0;
		if (!bt_proto_get_str(&rep->obj, "holder", holder, holder_len))
			holder[0] = '\0';
	}
	return -errnum;
}

/* ---- Connection ---------------------------------------------------------- */

struct bt_broker *bt_broker__connect(const struct bt_broker_opts *opts)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct bt_broker_opts o;
	struct bt_proto_req req = { .op = BT_OP_HELLO };
	struct br_reply rep;
	struct bt_broker *b;
	int64_t pid = 0;
	int err;

	err = bt_opts_copy(&o, sizeof(o), opts);
	if (err)
		return errno = -err, NULL;
	if (o.socket) {
		if (strlen(o.socket) >= sizeof(a.sun_path))
			return errno = ENAMETOOLONG, NULL;
		strcpy(a.sun_path, o.socket);
	} else if (bt_broker_socket_path(a.sun_path, sizeof(a.sun_path))) {
		return errno = ENAMETOOLONG, NULL;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->timeout_ms = o.timeout_ms ? o.timeout_ms : BR_TIMEOUT_MS;
	b->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (b->fd < 0 ||
	    connect(b->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		err = -errno;
		goto fail;
	}
	req.version = BT_PROTO_VERSION;
	snprintf(req.name, sizeof(req.name), "%s", o.name ? o.name : "");
	err = call(b, &req, &rep, NULL, NULL, 0);
	if (!err && bt_proto_get_i64(&rep.obj, "pid", &pid))
		b->daemon_pid = (pid_t)pid;
	reply_fini(&rep);
	if (err)
		goto fail;
	return b;
fail:
	if (b->fd >= 0)
		close(b->fd);
	free(b);
	errno = -err;
	return NULL;
}

void bt_broker__close(struct bt_broker *b)
{
	if (!b)
		return;
	while (b->attaches) {
		struct br_attach *a = b->attaches;

		b->attaches = a->next;
		for (uint32_t i = 0; i < 2 * a->nslots; i++)
			if (a->fds[i] >= 0)
				close(a->fds[i]);
		free(a->fds);
		free(a->caps);
		free(a);
	}
	close(b->fd);
	free(b);
}

/* ---- Requests ------------------------------------------------------------ */

int bt_broker__request(struct bt_broker *b, const struct bt_ds_request *req,
		       uint64_t ring_bytes, struct bt_broker_grant *out)
{
	struct bt_proto_req r = { .op = BT_OP_REQUEST };
	struct br_reply rep;
	uint64_t u;
	int err;

	if (!b || !req || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	r.facility = req->facility;
	r.target = req->target;
	r.aux_bytes = req->aux_bytes;
	r.data_bytes = req->data_bytes;
	r.ring_bytes = ring_bytes;
	r.mode = req->mode;
	r.config.sz = sizeof(r.config);
	if (req->config) {
		err = bt_opts_copy(&r.config, sizeof(r.config), req->config);
		if (err)
			return err;
		if (r.config.filter) {
			if (strlen(r.config.filter) >= sizeof(r.filter))
				return -ENAMETOOLONG;
			strcpy(r.filter, r.config.filter);
			r.config.filter = r.filter;
		}
	}
	err = call(b, &r, &rep, &out->holder_pid, out->holder,
		   sizeof(out->holder));
	if (!err) {
		if (!bt_proto_get_u64(&rep.obj, "grant", &out->grant) ||
		    !bt_proto_get_u64(&rep.obj, "session", &out->session)) {
			snprintf(b->error, sizeof(b->error),
				 "request reply without grant or session");
			err = -EPROTO;
		}
		bt_proto_get_bool(&rep.obj, "owner", &out->owner);
		bt_proto_get_bool(&rep.obj, "shared", &out->shared);
		if (bt_proto_get_u64(&rep.obj, "charged", &u))
			out->charged = u;
		bt_proto_get_str(&rep.obj, "ring", out->ring,
				 sizeof(out->ring));
	}
	reply_fini(&rep);
	return err;
}

int bt_broker__release(struct bt_broker *b, uint64_t grant)
{
	struct bt_proto_req r = { .op = BT_OP_RELEASE, .grant = grant };
	struct br_reply rep;
	int err;

	if (!b)
		return -EINVAL;
	err = call(b, &r, &rep, NULL, NULL, 0);
	reply_fini(&rep);
	return err;
}

int bt_broker__snapshot(struct bt_broker *b, uint64_t grant, uint64_t *seqs,
			uint32_t n)
{
	struct bt_proto_req r = { .op = BT_OP_SNAPSHOT, .grant = grant };
	const msgpack_object *arr;
	struct br_reply rep;
	int err;

	if (!b)
		return -EINVAL;
	err = call(b, &r, &rep, NULL, NULL, 0);
	if (!err) {
		arr = bt_proto_get(&rep.obj, "sequences");
		if (!arr || arr->type != MSGPACK_OBJECT_ARRAY) {
			err = -EPROTO;
		} else {
			for (uint32_t i = 0; i < arr->via.array.size && i < n;
			     i++) {
				const msgpack_object *o = &arr->via.array.ptr[i];

				seqs[i] = o->type ==
					  MSGPACK_OBJECT_POSITIVE_INTEGER ?
					  o->via.u64 : 0;
			}
			err = (int)arr->via.array.size;
		}
		if (!bt_proto_get_bool(&rep.obj, "ended", &b->snap_ended))
			b->snap_ended = false;
	}
	reply_fini(&rep);
	return err;
}

/* ---- Attach ------------------------------------------------------------- */

/* Attach @a's grant now: fresh fds and capacities for every slot. */
static int attach_fetch(struct br_attach *a)
{
	struct bt_proto_req r = { .op = BT_OP_ATTACH, .grant = a->grant };
	const msgpack_object *arr;
	struct br_reply rep;
	uint32_t n;
	int err;

	err = call(a->b, &r, &rep, NULL, NULL, 0);
	if (err)
		goto out;
	arr = bt_proto_get(&rep.obj, "slots");
	if (!arr || arr->type != MSGPACK_OBJECT_ARRAY || !arr->via.array.size ||
	    rep.nfds != 2 * arr->via.array.size) {
		snprintf(a->b->error, sizeof(a->b->error), "attach reply with "
			 "%u descriptors for its slots", rep.nfds);
		err = -EPROTO;
		goto out;
	}
	n = arr->via.array.size;
	if (a->nslots && n != a->nslots) {
		err = -ESTALE;
		goto out;
	}
	if (!a->nslots) {
		a->fds = malloc(2 * n * sizeof(*a->fds));
		a->caps = calloc(n, sizeof(*a->caps));
		if (!a->fds || !a->caps) {
			err = -ENOMEM;
			goto out;
		}
		a->nslots = n;
	} else {
		for (uint32_t i = 0; i < 2 * n; i++)
			if (a->fds[i] >= 0)
				close(a->fds[i]);
	}
	for (uint32_t i = 0; i < n; i++) {
		if (!bt_proto_get_u64(&arr->via.array.ptr[i], "capacity",
				      &a->caps[i]))
			a->caps[i] = 0;
		a->fds[2 * i] = rep.fds[2 * i];
		a->fds[2 * i + 1] = rep.fds[2 * i + 1];
		rep.fds[2 * i] = rep.fds[2 * i + 1] = -1;
	}
out:
	reply_fini(&rep);
	return err;
}

static int attach_fn(void *ctx, uint32_t slot, int *ring_fd, int *wake_fd,
		     uint64_t *capacity)
{
	struct br_attach *a = ctx;
	int err;

	if (slot >= a->nslots)
		return -ENOENT;
	/* A second attach of a slot (a generation change) asks again. */
	if (a->fds[2 * slot] < 0) {
		err = attach_fetch(a);
		if (err)
			return err == -ENOENT ? -ESTALE : err;
	}
	*ring_fd = a->fds[2 * slot];
	*wake_fd = a->fds[2 * slot + 1];
	*capacity = a->caps[slot];
	a->fds[2 * slot] = a->fds[2 * slot + 1] = -1;
	return 0;
}

struct bt_kmes_reader *bt_broker__attach(struct bt_broker *b, uint64_t grant,
					 const struct bt_kmes_reader_opts *opts)
{
	struct bt_kmes_reader *r;
	struct br_attach *a;
	int err;

	if (!b)
		return errno = EINVAL, NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->b = b;
	a->grant = grant;
	err = attach_fetch(a);
	if (err) {
		free(a->fds);
		free(a->caps);
		free(a);
		return errno = -err, NULL;
	}
	a->next = b->attaches;
	b->attaches = a;
	r = bt_kmes_reader__new_attach(a->nslots, attach_fn, a, opts);
	return r;
}

/* ---- Status as JSON ------------------------------------------------------ */

static json_object *to_json(const msgpack_object *o, int depth)
{
	json_object *j;

	if (depth > 16)
		return NULL;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return NULL;
	case MSGPACK_OBJECT_BOOLEAN:
		return json_object_new_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return json_object_new_uint64(o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_object_new_int64(o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_object_new_double(o->via.f64);
	case MSGPACK_OBJECT_STR:
		return json_object_new_string_len(o->via.str.ptr,
						  (int)o->via.str.size);
	case MSGPACK_OBJECT_ARRAY:
		j = json_object_new_array();
		for (uint32_t i = 0; i < o->via.array.size; i++)
			json_object_array_add(j, to_json(&o->via.array.ptr[i],
							 depth + 1));
		return j;
	case MSGPACK_OBJECT_MAP:
		j = json_object_new_object();
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			char key[128];

			if (kv->key.type != MSGPACK_OBJECT_STR ||
			    kv->key.via.str.size >= sizeof(key))
				continue;
			memcpy(key, kv->key.via.str.ptr, kv->key.via.str.size);
			key[kv->key.via.str.size] = '\0';
			if (!strcmp(key, "id") && depth == 0)
				continue;
			if (!strcmp(key, "ok") && depth == 0)
				continue;
			json_object_object_add(j, key,
					       to_json(&kv->val, depth + 1));
		}
		return j;
	default:
		return NULL;
	}
}

static int json_call(struct bt_broker *b, uint32_t op, const char *key,
		     char **json)
{
	struct bt_proto_req r = { .op = op };
	struct br_reply rep;
	json_object *j;
	int err;

	if (!b || !json)
		return -EINVAL;
	err = call(b, &r, &rep, NULL, NULL, 0);
	if (!err) {
		const msgpack_object *o = key ? bt_proto_get(&rep.obj, key) :
					  &rep.obj;

		j = o ? to_json(o, 0) : NULL;
		*json = j ? strdup(json_object_to_json_string_ext(j,
				JSON_C_TO_STRING_PRETTY |
				JSON_C_TO_STRING_SPACED)) : NULL;
		json_object_put(j);
		if (!*json)
			err = -EPROTO;
	}
	reply_fini(&rep);
	return err;
}

int bt_broker__status_json(struct bt_broker *b, char **json)
{
	return json_call(b, BT_OP_STATUS, NULL, json);
}

int bt_broker__caps_json(struct bt_broker *b, char **json)
{
	return json_call(b, BT_OP_CAPS, "caps", json);
}
