// SPDX-License-Identifier: BSD-3-Clause
/*
 * The allocator's hardware sessions: opening, mapping and closing them
 * through the backend's ops with the byte accounting, remapping them at
 * another size (keeping the newest data where the backend allows),
 * passing ownership on, revoking them; and the queue of notices.
 * alloc.c holds tracers and views, alloc_policy.c the decisions.
 */
#include "ds/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <btrail/errno.h>

#include "common/log.h"
#include "ds/pmu.h"
#include "ds/sim.h"

/* ---- Notices ------------------------------------------------------------ */

static void notice_deliver(struct bt_ds *ds, const struct bt_ds_notice *n)
{
	ds->opts.notice(ds->opts.notice_ctx, n);
}

static void ds_notify(struct bt_ds *ds, uint32_t kind,
		      const struct bt_ds_view *v, uint64_t bytes, pid_t owner)
{
	struct bt_ds_notice n = {
		.kind = kind, .view = v, .bytes = bytes, .owner_pid = owner,
	};
	struct ds_notice_q *q = &ds->q;

	if (!ds->opts.notice || ds->quiet)
		return;
	if (q->n == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 16;
		struct bt_ds_notice *nv = realloc(q->v, cap * sizeof(*nv));

		if (!nv) {
			/* No room to wait: tell now rather than not at all. */
			notice_deliver(ds, &n);
			return;
		}
		q->v = nv;
		q->cap = cap;
	}
	q->v[q->n++] = n;
}

/* Deliver what the call queued; the callback may use the accessors. */
void bt_ds__flush(struct bt_ds *ds)
{
	struct ds_notice_q *q = &ds->q;

	for (size_t i = 0; i < q->n; i++)
		notice_deliver(ds, &q->v[i]);
	q->n = 0;
}

/* Drop queued notices for @v, which is being freed. */
void bt_ds__purge(struct bt_ds *ds, const struct bt_ds_view *v)
{
	struct ds_notice_q *q = &ds->q;
	size_t j = 0;

	for (size_t i = 0; i < q->n; i++) {
		if (q->v[i].view != v)
			q->v[j++] = q->v[i];
	}
	q->n = j;
}

/* Tell every view of @s. */
void bt_ds_session__notify(struct ds_session *s, uint32_t kind,
			   uint64_t bytes, pid_t owner)
{
	for (struct ds_list *n = s->views.next; n != &s->views; n = n->next)
		ds_notify(s->ds, kind, ds_entry(n, struct bt_ds_view, snode),
			  bytes, owner);
}

/* ---- Sessions ----------------------------------------------------------- */

/* Count @s's mapping in the totals and against its owner (if any). */
static void session_account(struct ds_session *s, bool add)
{
	uint64_t b = s->buf.mapped;

	if (add) {
		s->ds->mapped += b;
		if (s->owner)
			s->owner->tracer->charged += b;
	} else {
		s->ds->mapped -= b;
		if (s->owner)
			s->owner->tracer->charged -= b;
	}
}

static int session_map(struct ds_session *s, uint64_t buf_bytes)
{
	struct bt_ds *ds = s->ds;
	bool aux = bt_ds_facility_aux(s->facility);
	int err;

	/*
	 * Overwrite is the AUX area's: a sample facility's data ring is a
	 * stream ring in either mode (docs/allocator.md, "Sizes").
	 */
	memset(&s->buf, 0, sizeof(s->buf));
	err = ds->ops->map(ds->pmu, s->ev, aux ? s->data_bytes : buf_bytes,
			   aux ? buf_bytes : 0,
			   aux && s->mode == BT_MODE_SNAPSHOT, &s->buf);
	if (err) {
		memset(&s->buf, 0, sizeof(s->buf));
		return err;
	}
	if (s->buf.mapped > bt_ds_cost(s->facility, s->data_bytes, buf_bytes)) {
		/* More than was paid for: refuse rather than overcharge. */
		pr_warn("ds: backend %s mapped %llu bytes for a %llu-byte session",
			ds->ops->name, (unsigned long long)s->buf.mapped,
			(unsigned long long)bt_ds_cost(s->facility, s->data_bytes,
						    buf_bytes));
		ds->ops->unmap(ds->pmu, s->ev);
		memset(&s->buf, 0, sizeof(s->buf));
		return -BT_ERRNO_INTERNAL;
	}
	s->buf_bytes = buf_bytes;
	s->mapped = true;
	session_account(s, true);
	return 0;
}

static void session_unmap(struct ds_session *s)
{
	struct bt_ds *ds = s->ds;

	if (s->enabled)
		ds->ops->enable(ds->pmu, s->ev, false);
	s->enabled = false;
	if (!s->mapped)
		return;
	session_account(s, false);
	ds->ops->unmap(ds->pmu, s->ev);
	memset(&s->buf, 0, sizeof(s->buf));
	s->mapped = false;
}

/* Tolerant: a half-built session, or one whose views are gone. */
void bt_ds_session__close(struct ds_session *s)
{
	if (!s)
		return;
	if (s->ev) {
		session_unmap(s);
		s->ds->ops->close(s->ds->pmu, s->ev);
		s->ev = NULL;
	}
	ds_list_del(&s->node);
	free((char *)s->config.filter);
	free(s);
}

static int session_enable(struct ds_session *s)
{
	int err = s->ds->ops->enable(s->ds->pmu, s->ev, true);

	s->enabled = !err;
	return err;
}

/* See alloc.h. The backend sets the config's address filter itself. */
int bt_ds_session__new(struct bt_ds *ds, struct bt_tracer *t,
		       const struct ds_req *r, struct ds_session **out)
{
	struct bt_pmu_open_args args = { .sz = sizeof(args) };
	struct ds_session *s;
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ds = ds;
	ds_list_init(&s->node);
	ds_list_init(&s->views);
	s->target = r->target;
	s->facility = r->facility;
	s->mode = r->mode;
	s->config = r->config;
	s->config.sz = sizeof(s->config);
	s->config.filter = NULL;
	s->data_bytes = r->data_bytes;
	s->buf_bytes = r->buf_bytes;
	s->seq = ++ds->seq;
	if (r->config.filter) {
		s->config.filter = strdup(r->config.filter);
		if (!s->config.filter) {
			err = -ENOMEM;
			goto err_out;
		}
	}

	args.facility = s->facility;
	args.target = s->target;
	args.config = &s->config;
	args.uid = t->uid;
	err = ds->ops->open(ds->pmu, &args, &s->ev);
	if (err) {
		s->ev = NULL;
		goto err_out;
	}
	err = session_map(s, r->buf_bytes);
	if (err)
		goto err_out;
	err = session_enable(s);
	if (err)
		goto err_out;
	ds_list_add_tail(&s->node, &ds->sessions);
	*out = s;
	return 0;

err_out:
	bt_ds_session__close(s);
	return err;
}

/*
 * Keeping the newest data across a remap (docs/allocator.md, "What a
 * shrink keeps"). Only the sim backend lets it be written again, through
 * its hardware side, as the CPU would have written it; the kernel frees
 * the pages of a perf mapping, so a perf session (and a sample facility's
 * data ring anywhere) starts its new buffer empty.
 *
 * What is kept: in stream mode the bytes nobody has read yet (what was
 * read is the consumer's already), at most half the new buffer, which is
 * what the driver lets the CPU write before the consumer frees space; in
 * snapshot mode the newest bytes of the ring, at most the new buffer. PT
 * is kept as bytes (a decoder syncs at the next PSB), BTS and step as
 * whole 24-byte records on the driver's record lattice, padding dropped.
 */
struct ds_keep {
	unsigned char *bytes;
	uint64_t len;
};

#define DS_BTS_REC	sizeof(struct bt_sim_bts_record)

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i])
			return false;
	}
	return true;
}

/*
 * The newest whole records before @head_off, walking the 24-byte lattice
 * of the AUX offsets backwards (it wraps at the last whole record), at
 * most @have bytes back and @room bytes of records; oldest first in @k.
 */
static void keep_records(const unsigned char *aux, uint64_t size,
			 uint64_t head_off, uint64_t have, uint64_t room,
			 struct ds_keep *k)
{
	uint64_t last = (size / DS_BTS_REC - 1) * DS_BTS_REC;
	uint64_t off = head_off, n = 0, max = room / DS_BTS_REC;
	unsigned char *out;

	if (!max || size < DS_BTS_REC)
		return;
	out = malloc(max * DS_BTS_REC);
	if (!out)
		return;
	for (uint64_t back = DS_BTS_REC; back <= have && n < max;
	     back += DS_BTS_REC) {
		off = off >= DS_BTS_REC ? off - DS_BTS_REC : last;
		if (all_zero(aux + off, DS_BTS_REC))
			continue;	/* the driver's padding */
		memcpy(out + (max - 1 - n) * DS_BTS_REC, aux + off,
		       DS_BTS_REC);
		n++;
	}
	memmove(out, out + (max - n) * DS_BTS_REC, n * DS_BTS_REC);
	k->bytes = out;
	k->len = n * DS_BTS_REC;
}

/* Copy what @s should keep into @k; @s is disabled (its head published). */
static void keep_save(struct ds_session *s, uint64_t new_buf,
		      struct ds_keep *k)
{
	const struct bt_pmu_buffers *b = &s->buf;
	bool snap = s->mode == BT_MODE_SNAPSHOT;
	uint64_t head, tail, have, size, room, skip = 0;

	k->bytes = NULL;
	k->len = 0;
	if (!s->ds->sim || !bt_ds_facility_aux(s->facility) || !b->aux ||
	    !b->page || !bt_pmu_pages_pow2(b->aux_size))
		return;
	size = b->aux_size;
	/* C: pairs with the backend's release store of aux_head */
	head = __atomic_load_n(&b->page->aux_head, __ATOMIC_ACQUIRE);
	tail = __atomic_load_n(&b->page->aux_tail, __ATOMIC_RELAXED);
	/* Snapshot: a wrapped position, and the ring may be full. */
	have = snap ? size : head - tail;
	if (have > size)
		have = size;
	room = snap ? new_buf : new_buf / 2;
	if (s->facility == BT_FAC_BTS || s->facility == BT_FAC_STEP) {
		keep_records(b->aux, size, head & (size - 1), have, room, k);
		return;
	}
	if (have > room)
		have = room;
	/* Never-written bytes of a snapshot ring read as PAD packets. */
	while (skip < have && !b->aux[(head - have + skip) & (size - 1)])
		skip++;
	have -= skip;
	if (!have)
		return;
	k->bytes = malloc(have);
	if (!k->bytes)
		return;		/* keeping is best effort: start empty */
	for (uint64_t i = 0; i < have; i++)
		k->bytes[i] = b->aux[(head - have + i) & (size - 1)];
	k->len = have;
}

/* Write @k into @s's new buffer as the CPU would; @s is enabled. */
static void keep_restore(struct ds_session *s, struct ds_keep *k)
{
	struct bt_pmu *pmu = s->ds->pmu;
	struct bt_sim_bts_record rec;
	int err = 0;

	if (!k->bytes)
		return;
	if (s->facility == BT_FAC_PT || s->facility == BT_FAC_PTEMU) {
		err = bt_sim_pt_write(pmu, s->ev, k->bytes, k->len);
	} else {
		for (uint64_t off = 0; !err && off < k->len;
		     off += DS_BTS_REC) {
			memcpy(&rec, k->bytes + off, sizeof(rec));
			err = bt_sim_bts_record(pmu, s->ev, rec.from, rec.to);
		}
	}
	if (!err)
		err = bt_sim_flush(pmu, s->ev);
	if (err)
		pr_debug("ds: keeping %llu bytes across a resize: %s",
			 (unsigned long long)k->len, bt_strerror(err));
	free(k->bytes);
	k->bytes = NULL;
}

/*
 * Unmap @s and map it again with a @buf_bytes buffer, keeping the newest
 * data where the backend allows. When the new size cannot be mapped the
 * old one is mapped again and the error returned; when neither can, @s
 * is left unmapped (the caller revokes it).
 */
int bt_ds_session__remap(struct ds_session *s, uint64_t buf_bytes)
{
	uint64_t old = s->buf_bytes;
	struct ds_keep k;
	int err, err2;

	/* Stopping publishes what the hardware wrote (aux_head). */
	if (s->enabled)
		s->ds->ops->enable(s->ds->pmu, s->ev, false);
	s->enabled = false;
	keep_save(s, buf_bytes, &k);
	session_unmap(s);
	err = session_map(s, buf_bytes);
	if (err) {
		err2 = session_map(s, old);
		if (err2) {
			free(k.bytes);
			return err;
		}
	}
	err2 = session_enable(s);
	if (err2) {
		free(k.bytes);
		session_unmap(s);
		return err2;
	}
	keep_restore(s, &k);
	return err;
}

/* Nobody can pay: end @s, tell every view, and make them read nothing. */
void bt_ds_session__revoke(struct ds_session *s)
{
	struct bt_ds_view *v;

	pr_info("ds: session of %s on %s %d ends: nobody can pay for it",
		bt_facility_name(s->facility),
		s->target.kind == BT_TARGET_CPU ? "cpu" : "task",
		(int)s->target.id);
	while (!ds_list_empty(&s->views)) {
		v = ds_entry(s->views.next, struct bt_ds_view, snode);
		ds_list_del(&v->snode);
		v->s = NULL;
		v->revoked = true;
		ds_notify(s->ds, BT_DS_NOTICE_REVOKE, v, 0, 0);
	}
	bt_ds_session__close(s);	/* uncharges the owner, if any */
}

/*
 * @old, the owner, has left @s (its views remain): ownership and the
 * charge pass to the oldest view whose tracer stays; if that tracer
 * cannot pay, the buffer shrinks to what it can; if it cannot pay the
 * minimum, the session ends.
 */
void bt_ds_session__pass_on(struct ds_session *s, struct bt_ds_view *old)
{
	struct bt_ds_view *heir = NULL, *v;
	uint64_t avail, nb;
	int err;

	for (struct ds_list *n = s->views.next; n != &s->views; n = n->next) {
		v = ds_entry(n, struct bt_ds_view, snode);
		if (!v->tracer->leaving) {
			heir = v;
			break;
		}
	}
	if (!heir) {
		/*
		 * Only views of tracers on their way out (the one leaving, or
		 * all of them in bt_ds__free()): the oldest holds it until
		 * they are gone, with no shrinking and no notices.
		 */
		heir = ds_entry(s->views.next, struct bt_ds_view, snode);
		old->tracer->charged -= s->buf.mapped;
		heir->tracer->charged += s->buf.mapped;
		s->owner = heir;
		return;
	}
	if (heir->tracer == old->tracer) {
		s->owner = heir;
		return;
	}

	old->tracer->charged -= s->buf.mapped;
	s->owner = NULL;
	avail = bt_tracer__avail(heir->tracer);
	if (s->buf.mapped <= avail) {
		s->owner = heir;
		heir->tracer->charged += s->buf.mapped;
		bt_ds_session__notify(s, BT_DS_NOTICE_OWNER, 0, heir->tracer->pid);
		return;
	}
	nb = bt_ds_session__fit(s, avail);
	if (!nb) {
		bt_ds_session__revoke(s);
		return;
	}
	err = bt_ds_session__remap(s, nb);
	if (err || s->buf.mapped > avail) {
		pr_info("ds: cannot shrink for the new owner: %s",
			bt_strerror(err ? err : -ENOMEM));
		bt_ds_session__revoke(s);
		return;
	}
	s->owner = heir;
	heir->tracer->charged += s->buf.mapped;
	bt_ds_session__notify(s, BT_DS_NOTICE_OWNER, 0, heir->tracer->pid);
	bt_ds_session__notify(s, BT_DS_NOTICE_RESIZE, s->buf_bytes, 0);
}
