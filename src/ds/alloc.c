// SPDX-License-Identifier: BSD-3-Clause
/*
 * The DS-area allocator: tracers, their requests, and the views they hold
 * on hardware sessions (docs/allocator.md). The rules that decide whether
 * a request shares, is filtered or is refused live in alloc_policy.c;
 * sessions, ownership, shrink and revoke in alloc_session.c. Together
 * they keep the accounting:
 *
 *   ds->mapped == sum of s->buf.mapped == sum of t->charged
 *
 * Single-threaded: the caller serialises calls on one allocator. Notices
 * are queued while a call changes things and delivered when it returns,
 * so the callback sees a consistent allocator.
 */
#include "ds/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/opts.h"
#include "ds/pmu.h"
#include "ds/sim.h"

/* ---- Views -------------------------------------------------------------- */

static struct bt_ds_view *view_new(struct bt_tracer *t, struct bt_target tg)
{
	struct bt_ds_view *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->tracer = t;
	v->target = tg;
	v->seq = ++t->ds->seq;
	ds_list_init(&v->tnode);
	ds_list_init(&v->snode);
	return v;
}

/* @v reads @s; the first view of a session owns it and pays. */
static void view_attach(struct bt_ds_view *v, struct ds_session *s)
{
	v->s = s;
	v->target = s->target;
	ds_list_add_tail(&v->snode, &s->views);
	if (!s->owner) {
		s->owner = v;
		v->tracer->charged += s->buf.mapped;
	}
}

static void view_detach(struct bt_ds_view *v)
{
	struct ds_session *s = v->s;

	if (!s)
		return;
	ds_list_del(&v->snode);
	v->s = NULL;
	if (ds_list_empty(&s->views))
		bt_ds_session__close(s);
	else if (s->owner == v)
		bt_ds_session__pass_on(s, v);
}

/* Tolerant: a half-built whole, a part, a revoked view. */
static void view_free(struct bt_ds_view *v)
{
	struct bt_ds *ds;

	if (!v)
		return;
	ds = v->tracer->ds;
	for (uint32_t i = 0; v->parts && i < v->nr_parts; i++)
		view_free(v->parts[i]);
	free(v->parts);
	view_detach(v);
	ds_list_del(&v->tnode);
	bt_ds__purge(ds, v);
	free(v);
}

/* A whole of @n parts, each filled in by the caller. */
static struct bt_ds_view *view_new_whole(struct bt_tracer *t,
					 struct bt_target tg, uint32_t n)
{
	struct bt_ds_view *v = view_new(t, tg);

	if (!v)
		return NULL;
	v->parts = calloc(n, sizeof(*v->parts));
	if (!v->parts) {
		free(v);
		return NULL;
	}
	v->nr_parts = n;
	return v;
}

/* ---- The allocator ------------------------------------------------------ */

struct bt_ds *bt_ds__new(struct bt_pmu *pmu, const struct bt_ds_opts *opts)
{
	const struct bt_pmu_ops *ops = bt_pmu__ops(pmu);
	struct bt_ds *ds;
	long ncpu;
	int err;

	if (!ops || !ops->open || !ops->map || !ops->unmap || !ops->enable ||
	    !ops->set_filter || !ops->fd || !ops->close)
		return errno = EINVAL, NULL;
	ds = calloc(1, sizeof(*ds));
	if (!ds)
		return errno = ENOMEM, NULL;
	err = bt_opts_copy(&ds->opts, sizeof(ds->opts), opts);
	if (err)
		goto err_out;
	ds->pmu = pmu;
	ds->ops = ops;
	ds->min_buf = ds->opts.min_aux_bytes ? ds->opts.min_aux_bytes
					     : 4 * BT_PMU_PAGE;
	err = -EINVAL;
	if (!bt_pmu_pages_pow2(ds->min_buf))
		goto err_out;
	ds->nr_cpus = ds->opts.nr_cpus;
	if (!ds->nr_cpus) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		ds->nr_cpus = ncpu > 0 ? (uint32_t)ncpu : 1;
	}
	ds->sim = bt_sim_is(pmu);
	ds_list_init(&ds->tracers);
	ds_list_init(&ds->sessions);
	return ds;

err_out:
	free(ds);
	return errno = -err, NULL;
}

void bt_ds__free(struct bt_ds *ds)
{
	if (!ds)
		return;
	ds->quiet = true;
	for (struct ds_list *n = ds->tracers.next; n != &ds->tracers;
	     n = n->next)
		ds_entry(n, struct bt_tracer, node)->leaving = true;
	while (!ds_list_empty(&ds->tracers))
		bt_tracer__leave(ds_entry(ds->tracers.next, struct bt_tracer,
					  node));
	free(ds->q.v);
	free(ds);
}

uint64_t bt_ds__mapped(const struct bt_ds *ds)
{
	return ds ? ds->mapped : 0;
}

/* ---- Tracers ------------------------------------------------------------ */

/* The comm of @pid, or "pid N" when /proc does not say. */
static char *default_name(pid_t pid)
{
	char path[64], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "re");
	if (f) {
		if (fgets(buf, sizeof(buf), f))
			buf[strcspn(buf, "\n")] = '\0';
		fclose(f);
	}
	if (!buf[0])
		snprintf(buf, sizeof(buf), "pid %d", (int)pid);
	return strdup(buf);
}

static void tracer_free(struct bt_tracer *t)
{
	if (!t)
		return;
	ds_list_del(&t->node);
	free(t->name);
	free(t);
}

struct bt_tracer *bt_ds__join(struct bt_ds *ds,
			      const struct bt_tracer_opts *opts)
{
	struct bt_tracer_opts o;
	struct bt_tracer *t;
	int err;

	if (!ds)
		return errno = EINVAL, NULL;
	err = bt_opts_copy(&o, sizeof(o), opts);
	if (err)
		return errno = -err, NULL;
	if (!opts) {
		o.uid = getuid();
		o.pid = getpid();
	}
	if (o.pid < 0 || (o.unlimited && o.budget))
		return errno = EINVAL, NULL;
	if (!o.pid)
		o.pid = getpid();

	t = calloc(1, sizeof(*t));
	if (!t)
		return errno = ENOMEM, NULL;
	t->ds = ds;
	ds_list_init(&t->node);
	ds_list_init(&t->views);
	t->uid = o.uid;
	t->pid = o.pid;
	t->name = o.name ? strdup(o.name) : default_name(o.pid);
	err = -ENOMEM;
	if (!t->name)
		goto err_out;
	if (o.unlimited) {
		t->unlimited = true;
		t->budget = UINT64_MAX;
	} else if (o.budget) {
		t->budget = o.budget;
	} else {
		err = bt_ds_budget_read(o.pid, &t->budget, &t->unlimited);
		if (err)
			goto err_out;
	}
	ds_list_add_tail(&t->node, &ds->tracers);
	return t;

err_out:
	tracer_free(t);
	return errno = -err, NULL;
}

void bt_tracer__leave(struct bt_tracer *t)
{
	struct bt_ds *ds;

	if (!t)
		return;
	ds = t->ds;
	t->leaving = true;
	while (!ds_list_empty(&t->views))
		view_free(ds_entry(t->views.next, struct bt_ds_view, tnode));
	tracer_free(t);
	bt_ds__flush(ds);
}

uint64_t bt_tracer__charged(const struct bt_tracer *t)
{
	return t ? t->charged : 0;
}

uint64_t bt_tracer__budget(const struct bt_tracer *t)
{
	return t ? t->budget : 0;
}

/* ---- Requests ----------------------------------------------------------- */

/* The owner of @s, for -EBUSY. */
static void busy_fill(struct bt_ds_request *req, const struct ds_session *s)
{
	const struct bt_tracer *o = s->owner->tracer;
	size_t sz = req->sz;

	if (sz >= offsetof(struct bt_ds_request, busy_pid) + sizeof(pid_t))
		req->busy_pid = o->pid;
	if (sz >= offsetof(struct bt_ds_request, busy_name) +
		  sizeof(req->busy_name))
		snprintf(req->busy_name, sizeof(req->busy_name), "%s",
			 o->name);
}

static void busy_clear(struct bt_ds_request *req)
{
	size_t sz = req->sz;

	if (sz >= offsetof(struct bt_ds_request, busy_pid) + sizeof(pid_t))
		req->busy_pid = 0;
	if (sz >= offsetof(struct bt_ds_request, busy_name) +
		  sizeof(req->busy_name))
		req->busy_name[0] = '\0';
}

/* A task view filtered out of every per-CPU session of @r's facility. */
static int request_filtered(struct bt_tracer *t, const struct ds_req *r,
			    struct bt_ds_view **out)
{
	struct bt_ds *ds = t->ds;
	struct ds_session *s;
	struct bt_ds_view *v;
	struct ds_list *n;
	uint32_t nr = 0, i = 0;

	for (n = ds->sessions.next; n != &ds->sessions; n = n->next) {
		s = ds_entry(n, struct ds_session, node);
		nr += s->facility == r->facility &&
		      s->target.kind == BT_TARGET_CPU;
	}
	v = view_new_whole(t, r->target, nr);
	if (!v)
		return -ENOMEM;
	v->filtered = true;
	for (n = ds->sessions.next; n != &ds->sessions; n = n->next) {
		s = ds_entry(n, struct ds_session, node);
		if (s->facility != r->facility ||
		    s->target.kind != BT_TARGET_CPU)
			continue;
		v->parts[i] = view_new(t, s->target);
		if (!v->parts[i]) {
			view_free(v);
			return -ENOMEM;
		}
		v->parts[i]->whole = v;
		v->parts[i]->filtered = true;
		view_attach(v->parts[i], s);
		/* Parts in CPU order, whatever order the sessions opened in. */
		for (uint32_t j = i; j > 0 && v->parts[j - 1]->target.id >
					      v->parts[j]->target.id; j--) {
			struct bt_ds_view *tmp = v->parts[j];

			v->parts[j] = v->parts[j - 1];
			v->parts[j - 1] = tmp;
		}
		i++;
	}
	*out = v;
	return 0;
}

/* One target (TASK or CPU): share, filter, or a new session. */
static int request_one(struct bt_tracer *t, const struct ds_req *r,
		       struct bt_ds_request *req, struct bt_ds_view **out)
{
	struct ds_session *s = NULL;
	struct bt_ds_view *v;
	int err;

	switch (bt_ds__decide(t->ds, r, &s)) {
	case DS_BUSY:
		busy_fill(req, s);
		return -EBUSY;
	case DS_FILTER:
		return request_filtered(t, r, out);
	case DS_SHARE:
		v = view_new(t, r->target);
		if (!v)
			return -ENOMEM;
		view_attach(v, s);
		*out = v;
		return 0;
	case DS_NEW:
		break;
	}
	if (bt_ds_cost(r->facility, r->data_bytes, r->buf_bytes) >
	    bt_tracer__avail(t))
		return -ENOMEM;
	v = view_new(t, r->target);
	if (!v)
		return -ENOMEM;
	err = bt_ds_session__new(t->ds, t, r, &s);
	if (err) {
		free(v);
		return err;
	}
	view_attach(v, s);
	*out = v;
	return 0;
}

/*
 * Every CPU: decided for all CPUs first (refusals and the budget), then
 * carried out; a backend error undoes the CPUs done so far.
 */
static int request_all(struct bt_tracer *t, const struct ds_req *r,
		       struct bt_ds_request *req, struct bt_ds_view **out)
{
	struct bt_ds *ds = t->ds;
	struct ds_req rc = *r;
	struct ds_session **with;
	enum ds_verdict *verdict;
	struct bt_ds_view *v = NULL, *p;
	uint64_t cost = 0;
	uint32_t c;
	int err = -ENOMEM;

	with = calloc(ds->nr_cpus, sizeof(*with));
	verdict = calloc(ds->nr_cpus, sizeof(*verdict));
	if (!with || !verdict)
		goto out;
	rc.target.kind = BT_TARGET_CPU;
	for (c = 0; c < ds->nr_cpus; c++) {
		rc.target.id = (int32_t)c;
		verdict[c] = bt_ds__decide(ds, &rc, &with[c]);
		if (verdict[c] == DS_BUSY) {
			busy_fill(req, with[c]);
			err = -EBUSY;
			goto out;
		}
		if (verdict[c] == DS_NEW)
			cost += bt_ds_cost(r->facility, r->data_bytes,
					r->buf_bytes);
	}
	if (cost > bt_tracer__avail(t))
		goto out;	/* -ENOMEM */

	v = view_new_whole(t, r->target, ds->nr_cpus);
	if (!v)
		goto out;
	for (c = 0; c < ds->nr_cpus; c++) {
		rc.target.id = (int32_t)c;
		p = view_new(t, rc.target);
		if (!p) {
			err = -ENOMEM;
			goto out_undo;
		}
		p->whole = v;
		v->parts[c] = p;
		if (verdict[c] == DS_NEW) {
			err = bt_ds_session__new(ds, t, &rc, &with[c]);
			if (err)
				goto out_undo;
		}
		view_attach(p, with[c]);
	}
	*out = v;
	v = NULL;
	err = 0;
	goto out;

out_undo:
	view_free(v);
out:
	free(with);
	free(verdict);
	return err;
}

int bt_tracer__request(struct bt_tracer *t, struct bt_ds_request *req,
		       struct bt_ds_view **view)
{
	struct bt_ds_view *v = NULL;
	struct ds_req r;
	int err;

	if (!t || !req || !view)
		return -EINVAL;
	err = bt_ds_req__parse(t->ds, req, &r);
	if (err)
		return err;
	busy_clear(req);
	if (r.target.kind == BT_TARGET_ALL)
		err = request_all(t, &r, req, &v);
	else
		err = request_one(t, &r, req, &v);
	if (err)
		return err;
	ds_list_add_tail(&v->tnode, &t->views);
	*view = v;
	return 0;
}

/* ---- Views: the public side --------------------------------------------- */

void bt_ds_view__release(struct bt_ds_view *v)
{
	struct bt_ds *ds;

	if (!v || v->whole)
		return;
	ds = v->tracer->ds;
	view_free(v);
	bt_ds__flush(ds);
}

int bt_ds_view__resize(struct bt_ds_view *v, uint64_t aux_bytes)
{
	struct ds_session *s;
	struct bt_tracer *t;
	uint64_t cost;
	int err;

	if (!v || v->nr_parts || !bt_pmu_pages_pow2(aux_bytes) ||
	    aux_bytes < v->tracer->ds->min_buf)
		return -EINVAL;
	s = v->s;
	if (!s)
		return -ENODEV;		/* revoked */
	t = v->tracer;
	if (s->owner->tracer != t)
		return -EPERM;
	if (aux_bytes == s->buf_bytes)
		return 0;
	cost = bt_ds_cost(s->facility, s->data_bytes, aux_bytes);
	if (cost > s->buf.mapped && cost - s->buf.mapped > bt_tracer__avail(t))
		return -ENOMEM;

	err = bt_ds_session__remap(s, aux_bytes);
	if (s->mapped)
		bt_ds_session__notify(s, BT_DS_NOTICE_RESIZE, s->buf_bytes, 0);
	else
		bt_ds_session__revoke(s);
	bt_ds__flush(t->ds);
	return err;
}

const struct bt_pmu_buffers *bt_ds_view__buffers(const struct bt_ds_view *v)
{
	return v && v->s ? &v->s->buf : NULL;
}

bool bt_ds_view__filtered(const struct bt_ds_view *v)
{
	return v && v->filtered;
}

bool bt_ds_view__revoked(const struct bt_ds_view *v)
{
	if (!v)
		return false;
	for (uint32_t i = 0; i < v->nr_parts; i++) {
		if (!v->parts[i]->revoked)
			return false;
	}
	return v->nr_parts ? true : v->revoked;
}

uint32_t bt_ds_view__nr_parts(const struct bt_ds_view *v)
{
	return v ? v->nr_parts : 0;
}

struct bt_ds_view *bt_ds_view__part(const struct bt_ds_view *v, uint32_t i)
{
	if (!v || i >= v->nr_parts)
		return errno = EINVAL, NULL;
	return v->parts[i];
}

struct bt_target bt_ds_view__target(const struct bt_ds_view *v)
{
	struct bt_target none = { .kind = 0, .id = -1 };

	return v ? v->target : none;
}

struct bt_pmu_event *bt_ds_view__event(const struct bt_ds_view *v)
{
	return v && v->s ? v->s->ev : NULL;
}
