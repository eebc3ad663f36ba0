/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The DS-area allocator's insides, shared by alloc.c (tracers, views,
 * requests), alloc_session.c (sessions through the backend's ops,
 * ownership, shrink and revoke, notices) and alloc_policy.c (validation,
 * budgets, compatibility and the exclusivity decision). docs/allocator.md states
 * the policy these structures carry out.
 *
 * Invariants (checked by tests/ds/test_alloc.c after every step):
 *   - ds->mapped == sum over sessions of s->buf.mapped
 *                == sum over tracers of t->charged;
 *   - a session's charge is paid by the tracer of its owner view, and a
 *     tracer's charge never exceeds its budget (unless unlimited);
 *   - every session has at least one view; views are listed oldest first.
 */
#ifndef BT_DS_ALLOC_H
#define BT_DS_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <btrail/ds.h>

/* A circular doubly linked list node; a list head is a node too. */
struct ds_list {
	struct ds_list *prev, *next;
};

#define ds_entry(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void ds_list_init(struct ds_list *h)
{
	h->prev = h;
	h->next = h;
}

static inline bool ds_list_empty(const struct ds_list *h)
{
	return h->next == h;
}

/* Append @n at the tail of @h (the youngest end). */
static inline void ds_list_add_tail(struct ds_list *n, struct ds_list *h)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

/* Unlink @n (safe on a node that was initialised and is not linked). */
static inline void ds_list_del(struct ds_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n;
	n->next = n;
}

/* A hardware session: one opened event, its mapping, owner and views. */
struct ds_session {
	struct bt_ds *ds;
	struct ds_list node;		/* in ds->sessions */
	struct ds_list views;		/* struct bt_ds_view.snode, oldest first */
	struct bt_target target;	/* TASK or CPU */
	uint32_t facility;
	uint32_t mode;
	struct bt_trace_config config;	/* the hardware's, filter owned */
	struct bt_pmu_event *ev;
	bool mapped;
	bool enabled;
	uint64_t data_bytes;		/* data ring, without its header page */
	uint64_t buf_bytes;		/* AUX area, or the sample data ring */
	struct bt_pmu_buffers buf;	/* what the backend mapped */
	struct bt_ds_view *owner;	/* pays buf.mapped */
	uint64_t seq;			/* creation order */
};

struct bt_ds_view {
	struct bt_tracer *tracer;
	struct bt_ds_view *whole;	/* the view this is a part of, or NULL */
	struct ds_list tnode;		/* in tracer->views (wholes and singles) */
	struct ds_list snode;		/* in s->views (singles and parts) */
	struct ds_session *s;		/* NULL for wholes and revoked views */
	struct bt_target target;	/* requested (whole) or the session's */
	uint64_t seq;			/* age: lower is older */
	bool filtered;			/* a task view of a per-CPU session */
	bool revoked;
	uint32_t nr_parts;		/* > 0: a whole */
	struct bt_ds_view **parts;
};

struct bt_tracer {
	struct bt_ds *ds;
	struct ds_list node;		/* in ds->tracers */
	struct ds_list views;		/* struct bt_ds_view.tnode */
	uid_t uid;
	pid_t pid;
	char *name;
	uint64_t budget;		/* UINT64_MAX when unlimited */
	bool unlimited;
	bool leaving;			/* inside bt_tracer__leave() */
	uint64_t charged;
};

/* Notices wait in a queue until the public call that made them returns. */
struct ds_notice_q {
	struct bt_ds_notice *v;
	size_t n, cap;
};

struct bt_ds {
	struct bt_pmu *pmu;
	const struct bt_pmu_ops *ops;
	struct bt_ds_opts opts;
	uint64_t min_buf;		/* opts.min_aux_bytes or 4 pages */
	uint32_t nr_cpus;
	bool sim;			/* bt_sim_is(pmu): data can be kept */
	bool quiet;			/* bt_ds__free(): no notices */
	uint64_t mapped;
	uint64_t seq;
	struct ds_list tracers;
	struct ds_list sessions;
	struct ds_notice_q q;
};

struct ds_req;

/* ---- alloc_session.c -------------------------------------------------- */

/* Deliver the notices the public call queued (the callback may use the
 * accessors); drop the queued ones of @v, which is being freed. */
void bt_ds__flush(struct bt_ds *ds);
void bt_ds__purge(struct bt_ds *ds, const struct bt_ds_view *v);
/* Queue a notice of @kind for every view of @s. */
void bt_ds_session__notify(struct ds_session *s, uint32_t kind,
			   uint64_t bytes, pid_t owner);

/*
 * Open, map and enable a session for @r on its (single) target; @t's uid
 * is whose mlock the kernel counts. No owner yet: the first view attached
 * gets it. Returns 0 or what the backend answered, with nothing left open.
 */
int bt_ds_session__new(struct bt_ds *ds, struct bt_tracer *t,
		       const struct ds_req *r, struct ds_session **out);
/* Disable, unmap and close @s and free it (uncharging its owner). */
void bt_ds_session__close(struct ds_session *s);
/*
 * Map @s again with a @buf_bytes buffer, keeping the newest data where the
 * backend allows. On failure the old size is mapped again and the error
 * returned; if that fails too @s is left unmapped (revoke it).
 */
int bt_ds_session__remap(struct ds_session *s, uint64_t buf_bytes);
/* End @s: every view is told REVOKE and reads nothing more. */
void bt_ds_session__revoke(struct ds_session *s);
/*
 * @old, the owner's view, has left @s (other views remain): ownership and
 * the charge pass to the oldest view of a tracer that stays, shrinking
 * the buffer to what it can pay, or ending @s when it cannot pay the
 * minimum.
 */
void bt_ds_session__pass_on(struct ds_session *s, struct bt_ds_view *old);

/* ---- alloc_policy.c --------------------------------------------------- */

/* A request, validated and normalised (sizes defaulted, config copied). */
struct ds_req {
	struct bt_target target;
	uint32_t facility;
	uint32_t mode;
	struct bt_trace_config config;	/* filter borrowed from the caller */
	uint64_t data_bytes;		/* 0 for sample facilities */
	uint64_t buf_bytes;
};

/* True for facilities whose trace goes to an AUX area (PT, BTS, step...). */
bool bt_ds_facility_aux(uint32_t facility);

/*
 * Validate @user (size-prefixed) into @out. Returns 0 or -EINVAL. The
 * config's filter string is borrowed from the caller's config.
 */
int bt_ds_req__parse(const struct bt_ds *ds, const struct bt_ds_request *user,
		 struct ds_req *out);

/* Bytes a session of @data_bytes + @buf_bytes maps (header page included). */
uint64_t bt_ds_cost(uint32_t facility, uint64_t data_bytes, uint64_t buf_bytes);

/* What @t can still pay; UINT64_MAX when unlimited. */
uint64_t bt_tracer__avail(const struct bt_tracer *t);

/*
 * The largest power-of-two buffer of at least ds->min_buf that a session
 * like @s costs no more than @avail with, or 0 when even the minimum
 * cannot be paid.
 */
uint64_t bt_ds_session__fit(const struct ds_session *s, uint64_t avail);

/* True when a request for @r may read session @s (same facility, ...). */
bool bt_ds_session__compatible(const struct ds_session *s, const struct ds_req *r);

enum ds_verdict {
	DS_NEW = 0,	/* open a new session */
	DS_SHARE,	/* share *@with */
	DS_FILTER,	/* task view of every per-CPU session of the facility */
	DS_BUSY,	/* *@with holds the hardware */
};

/*
 * What the kernel's rules and the sharing policy make of @r on one
 * target (TASK or CPU, never ALL), decided from the allocator's own
 * sessions before the kernel is asked.
 */
enum ds_verdict bt_ds__decide(const struct bt_ds *ds, const struct ds_req *r,
			  struct ds_session **with);

/*
 * The budget of a tracer from its opts: explicit, unlimited, or its
 * RLIMIT_MEMLOCK (prlimit on @pid) where CAP_IPC_LOCK or RLIM_INFINITY
 * make it unlimited. Returns 0 or a negative errno.
 */
int bt_ds_budget_read(pid_t pid, uint64_t *budget, bool *unlimited);

#endif /* BT_DS_ALLOC_H */
