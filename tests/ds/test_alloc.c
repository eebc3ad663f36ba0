// SPDX-License-Identifier: BSD-3-Clause
/*
 * The DS-area allocator (suite "alloc"): who owns and pays, sharing,
 * filtering, -EBUSY before the kernel is asked, shrink and revoke, exact
 * byte figures, every public function's invalid arguments, and a seeded
 * property test of random operations over a fake kernel and over sim.
 *
 * The fake kernel below is a struct bt_pmu of our own: it maps anonymous
 * memory, counts bytes per uid (an mlock limit), enforces the kernel's
 * exclusivity rules, and can be told to fail. The spy wraps any backend
 * (the fake or sim), forwards every call, and records what the kernel
 * answered and what is mapped, so that a test sees the backend's side of
 * every decision the allocator made.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#include <btrail/ds.h>
#include <btrail/errno.h>

#include "ds/pmu.h"
#include "ds/sim.h"
#include "helpers/testutil.h"

#define PAGE	BT_PMU_PAGE
#define KiB	1024ull
#define MiB	(1024ull * 1024)

static bool fac_aux(uint32_t f)
{
	return f == BT_FAC_PT || f == BT_FAC_BTS || f == BT_FAC_STEP ||
	       f == BT_FAC_PTEMU;
}

/*
 * The kernel's exclusivity rules, as both the fake enforces them and the
 * spy checks them: an exclusive facility has one event per context, and
 * per-task and per-CPU events of exclusive facilities never coexist.
 */
static bool kernel_conflict(uint32_t fa, struct bt_target a, uint32_t fb,
			    struct bt_target b)
{
	if (!bt_facility_exclusive(fa) || !bt_facility_exclusive(fb))
		return false;
	if (a.kind != b.kind)
		return true;
	return a.id == b.id;
}

/* ---- The fake kernel ---------------------------------------------------- */

struct fake_ev {
	struct fake_ev *next;
	uint32_t facility;
	struct bt_target target;
	uid_t uid;
	bool enabled;
	unsigned char *base;	/* header page + data ring */
	size_t base_len;
	unsigned char *aux;
	size_t aux_len;
	uint64_t mapped;
	char filter[128];
};

struct fake_pmu {
	struct bt_pmu base;
	struct fake_ev *evs;
	uint64_t mapped;
	uint64_t mlock_limit;	/* bytes per uid; 0: none */
	unsigned live;
	unsigned bugs;		/* close while mapped, map twice, ... */
	int fail_open;		/* next open answers this (once) */
	int fail_map;		/* next map answers this (once) */
	unsigned fail_map_after;/* ... after this many more maps succeed */
	uint64_t rng;		/* random failures: 1 in fail_rate calls */
	unsigned fail_rate;
};

static struct fake_pmu *fake_of(struct bt_pmu *p)
{
	return (struct fake_pmu *)p;
}

static int fake_random_fail(struct fake_pmu *f)
{
	if (!f->fail_rate)
		return 0;
	return tu_xorshift(&f->rng) % f->fail_rate == 0 ? -EPERM : 0;
}

static int fake_open(struct bt_pmu *p, const struct bt_pmu_open_args *a,
		     struct bt_pmu_event **out)
{
	struct fake_pmu *f = fake_of(p);
	struct fake_ev *e;
	int err;

	if (!a || a->sz < sizeof(size_t) || !out || a->facility >= BT_FAC__COUNT ||
	    (a->target.kind != BT_TARGET_TASK &&
	     a->target.kind != BT_TARGET_CPU))
		return -EINVAL;
	for (e = f->evs; e; e = e->next) {
		if (kernel_conflict(e->facility, e->target, a->facility,
				    a->target))
			return -EBUSY;
	}
	if (f->fail_open) {
		err = f->fail_open;
		f->fail_open = 0;
		return err;
	}
	err = fake_random_fail(f);
	if (err)
		return err;
	/* The config's filter is set at open, as perf's ioctl after it. */
	if (a->config && a->config->filter && a->config->filter[0] &&
	    (a->facility == BT_FAC_PT || a->facility == BT_FAC_PTEMU) &&
	    !strcmp(a->config->filter, "bad"))
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	if (a->config && a->config->filter &&
	    (a->facility == BT_FAC_PT || a->facility == BT_FAC_PTEMU))
		snprintf(e->filter, sizeof(e->filter), "%s", a->config->filter);
	e->facility = a->facility;
	e->target = a->target;
	e->uid = a->uid;
	e->next = f->evs;
	f->evs = e;
	f->live++;
	*out = (struct bt_pmu_event *)e;
	return 0;
}

static uint64_t fake_uid_mapped(struct fake_pmu *f, uid_t uid)
{
	uint64_t sum = 0;

	for (struct fake_ev *e = f->evs; e; e = e->next)
		sum += e->uid == uid ? e->mapped : 0;
	return sum;
}

static int fake_map(struct bt_pmu *p, struct bt_pmu_event *ev,
		    uint64_t data_bytes, uint64_t aux_bytes, bool overwrite,
		    struct bt_pmu_buffers *out)
{
	struct fake_pmu *f = fake_of(p);
	struct fake_ev *e = (struct fake_ev *)ev;
	uint64_t total;
	int err;

	if (e->base) {
		f->bugs++;
		return -EINVAL;
	}
	if (!bt_pmu_pages_pow2(data_bytes))
		return -EINVAL;
	if (fac_aux(e->facility) ? !bt_pmu_pages_pow2(aux_bytes) : aux_bytes)
		return -EINVAL;
	if (overwrite && !aux_bytes)	/* overwrite is the AUX area's */
		return -EINVAL;
	if (f->fail_map) {
		if (f->fail_map_after) {
			f->fail_map_after--;
		} else {
			err = f->fail_map;
			f->fail_map = 0;
			return err;
		}
	}
	err = fake_random_fail(f);
	if (err)
		return err;
	total = PAGE + data_bytes + aux_bytes;
	if (f->mlock_limit && fake_uid_mapped(f, e->uid) + total >
			      f->mlock_limit)
		return -EPERM;
	e->base_len = PAGE + data_bytes;
	e->base = mmap(NULL, e->base_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (e->base == MAP_FAILED) {
		e->base = NULL;
		return -ENOMEM;
	}
	if (aux_bytes) {
		e->aux_len = aux_bytes;
		e->aux = mmap(NULL, aux_bytes, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (e->aux == MAP_FAILED) {
			munmap(e->base, e->base_len);
			e->base = NULL;
			e->aux = NULL;
			return -ENOMEM;
		}
		if (overwrite)
			mprotect(e->aux, aux_bytes, PROT_READ);
	}
	out->page = (struct perf_event_mmap_page *)e->base;
	out->page->data_offset = PAGE;
	out->page->data_size = data_bytes;
	out->page->aux_offset = PAGE + data_bytes;
	out->page->aux_size = aux_bytes;
	out->data = e->base + PAGE;
	out->data_size = data_bytes;
	out->aux = e->aux;
	out->aux_size = aux_bytes;
	out->aux_overwrite = overwrite;
	out->mapped = total;
	e->mapped = total;
	f->mapped += total;
	return 0;
}

static int fake_unmap(struct bt_pmu *p, struct bt_pmu_event *ev)
{
	struct fake_pmu *f = fake_of(p);
	struct fake_ev *e = (struct fake_ev *)ev;

	if (!e->base)
		return -EINVAL;
	munmap(e->base, e->base_len);
	if (e->aux)
		munmap(e->aux, e->aux_len);
	e->base = NULL;
	e->aux = NULL;
	f->mapped -= e->mapped;
	e->mapped = 0;
	return 0;
}

static int fake_enable(struct bt_pmu *p, struct bt_pmu_event *ev, bool on)
{
	(void)p;
	((struct fake_ev *)ev)->enabled = on;
	return 0;
}

static int fake_set_filter(struct bt_pmu *p, struct bt_pmu_event *ev,
			   const char *filter)
{
	struct fake_ev *e = (struct fake_ev *)ev;

	(void)p;
	if (e->facility != BT_FAC_PT && e->facility != BT_FAC_PTEMU)
		return -EOPNOTSUPP;
	if (!strcmp(filter, "bad"))
		return -EINVAL;
	snprintf(e->filter, sizeof(e->filter), "%s", filter);
	return 0;
}

static int fake_fd(struct bt_pmu *p, struct bt_pmu_event *ev)
{
	(void)p;
	(void)ev;
	return -1;
}

static void fake_close(struct bt_pmu *p, struct bt_pmu_event *ev)
{
	struct fake_pmu *f = fake_of(p);
	struct fake_ev *e = (struct fake_ev *)ev, **pp;

	if (e->base) {
		f->bugs++;
		fake_unmap(p, ev);
	}
	for (pp = &f->evs; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	f->live--;
	free(e);
}

static const struct bt_pmu_ops fake_ops = {
	.name = "fake",
	.open = fake_open,
	.map = fake_map,
	.unmap = fake_unmap,
	.enable = fake_enable,
	.set_filter = fake_set_filter,
	.fd = fake_fd,
	.close = fake_close,
};

static void fake_destroy(struct bt_pmu *p)
{
	free(p);
}

static struct fake_pmu *fake_new(void)
{
	struct fake_pmu *f = calloc(1, sizeof(*f));

	cr_assert(not(eq(ptr, f, NULL)));
	f->base.ops = &fake_ops;
	f->base.destroy = fake_destroy;
	return f;
}

/* ---- The spy ------------------------------------------------------------ */

struct spy_ev {
	struct spy_ev *next;
	struct bt_pmu_event *ev;
	uint32_t facility;
	struct bt_target target;
	uint64_t mapped;
};

struct spy {
	struct bt_pmu base;
	struct bt_pmu *inner;
	struct spy_ev *evs;
	uint64_t mapped;	/* what the backend says it mapped, now */
	unsigned live;
	unsigned opens;		/* open calls, whatever the answer */
	unsigned maps;
	unsigned ebusy;		/* EBUSY answers: the allocator asked late */
	unsigned conflicts;	/* live events breaking the kernel's rules */
	unsigned errors;	/* other failures the backend answered */
};

static struct spy *spy_of(struct bt_pmu *p)
{
	return (struct spy *)p;
}

static struct spy_ev *spy_find(struct spy *s, struct bt_pmu_event *ev)
{
	for (struct spy_ev *e = s->evs; e; e = e->next) {
		if (e->ev == ev)
			return e;
	}
	return NULL;
}

static int spy_open(struct bt_pmu *p, const struct bt_pmu_open_args *a,
		    struct bt_pmu_event **out)
{
	struct spy *s = spy_of(p);
	struct spy_ev *e;
	int err;

	s->opens++;
	err = s->inner->ops->open(s->inner, a, out);
	if (err == -EBUSY)
		s->ebusy++;
	if (err) {
		s->errors++;
		return err;
	}
	e = calloc(1, sizeof(*e));
	cr_assert(not(eq(ptr, e, NULL)));
	e->ev = *out;
	e->facility = a->facility;
	e->target = a->target;
	for (struct spy_ev *o = s->evs; o; o = o->next) {
		if (kernel_conflict(o->facility, o->target, e->facility,
				    e->target))
			s->conflicts++;
	}
	e->next = s->evs;
	s->evs = e;
	s->live++;
	return 0;
}

static int spy_map(struct bt_pmu *p, struct bt_pmu_event *ev,
		   uint64_t data_bytes, uint64_t aux_bytes, bool overwrite,
		   struct bt_pmu_buffers *out)
{
	struct spy *s = spy_of(p);
	struct spy_ev *e = spy_find(s, ev);
	int err;

	s->maps++;
	err = s->inner->ops->map(s->inner, ev, data_bytes, aux_bytes,
				 overwrite, out);
	if (err == -EBUSY)
		s->ebusy++;
	if (err) {
		s->errors++;
		return err;
	}
	e->mapped = out->mapped;
	s->mapped += out->mapped;
	return 0;
}

static int spy_unmap(struct bt_pmu *p, struct bt_pmu_event *ev)
{
	struct spy *s = spy_of(p);
	struct spy_ev *e = spy_find(s, ev);

	s->mapped -= e->mapped;
	e->mapped = 0;
	return s->inner->ops->unmap(s->inner, ev);
}

static int spy_enable(struct bt_pmu *p, struct bt_pmu_event *ev, bool on)
{
	struct spy *s = spy_of(p);

	return s->inner->ops->enable(s->inner, ev, on);
}

static int spy_set_filter(struct bt_pmu *p, struct bt_pmu_event *ev,
			  const char *filter)
{
	struct spy *s = spy_of(p);

	return s->inner->ops->set_filter(s->inner, ev, filter);
}

static int spy_fd(struct bt_pmu *p, struct bt_pmu_event *ev)
{
	struct spy *s = spy_of(p);

	return s->inner->ops->fd(s->inner, ev);
}

static void spy_close(struct bt_pmu *p, struct bt_pmu_event *ev)
{
	struct spy *s = spy_of(p);
	struct spy_ev **pp, *e;

	for (pp = &s->evs; *pp; pp = &(*pp)->next) {
		if ((*pp)->ev == ev) {
			e = *pp;
			*pp = e->next;
			s->mapped -= e->mapped;
			free(e);
			s->live--;
			break;
		}
	}
	s->inner->ops->close(s->inner, ev);
}

static const struct bt_pmu_ops spy_ops = {
	.name = "spy",
	.open = spy_open,
	.map = spy_map,
	.unmap = spy_unmap,
	.enable = spy_enable,
	.set_filter = spy_set_filter,
	.fd = spy_fd,
	.close = spy_close,
};

static void spy_destroy(struct bt_pmu *p)
{
	struct spy *s = spy_of(p);

	bt_pmu__free(s->inner);
	free(s);
}

/* A spy over @inner (takes ownership of it). */
static struct spy *spy_new(struct bt_pmu *inner)
{
	struct spy *s = calloc(1, sizeof(*s));

	cr_assert(not(eq(ptr, s, NULL)));
	cr_assert(not(eq(ptr, inner, NULL)));
	s->base.ops = &spy_ops;
	s->base.destroy = spy_destroy;
	s->inner = inner;
	return s;
}

/* ---- Notices ------------------------------------------------------------ */

struct rec {
	unsigned n;
	struct bt_ds_notice v[512];
};

static void rec_fn(void *ctx, const struct bt_ds_notice *n)
{
	struct rec *r = ctx;

	if (r->n < sizeof(r->v) / sizeof(r->v[0]))
		r->v[r->n] = *n;
	r->n++;
}

/* How many notices of @kind went to @v. */
static unsigned rec_count(const struct rec *r, uint32_t kind,
			  const struct bt_ds_view *v)
{
	unsigned c = 0;

	for (unsigned i = 0; i < r->n && i < 512; i++)
		c += r->v[i].kind == kind && r->v[i].view == v;
	return c;
}

static const struct bt_ds_notice *rec_find(const struct rec *r, uint32_t kind,
					   const struct bt_ds_view *v)
{
	for (unsigned i = 0; i < r->n && i < 512; i++) {
		if (r->v[i].kind == kind && r->v[i].view == v)
			return &r->v[i];
	}
	return NULL;
}

/* ---- Fixture ------------------------------------------------------------ */

static struct fake_pmu *fk;
static struct spy *sp;
static struct bt_ds *ds;
static struct rec notes;

/* An allocator over spy(fake) with @nr_cpus CPUs, notices into `notes`. */
static void setup_cpus(uint32_t nr_cpus)
{
	struct bt_ds_opts o = {
		.sz = sizeof(o), .notice = rec_fn, .notice_ctx = &notes,
		.nr_cpus = nr_cpus,
	};

	fk = fake_new();
	sp = spy_new(&fk->base);
	ds = bt_ds__new(&sp->base, &o);
	cr_assert(not(eq(ptr, ds, NULL)));
	memset(&notes, 0, sizeof(notes));
}

static void alloc_setup(void)
{
	setup_cpus(4);
}

static void alloc_teardown(void)
{
	bt_ds__free(ds);
	ds = NULL;
	if (sp) {
		cr_expect(eq(u64, sp->mapped, 0));
		cr_expect(eq(u32, sp->live, 0));
		cr_expect(eq(u32, fk->bugs, 0));
		bt_pmu__free(&sp->base);
	}
	sp = NULL;
	fk = NULL;
}

TestSuite(alloc, .init = alloc_setup, .fini = alloc_teardown);

static struct bt_tracer *join(const char *name, pid_t pid, uint64_t budget)
{
	struct bt_tracer_opts o = {
		.sz = sizeof(o), .uid = 1000, .pid = pid, .name = name,
		.budget = budget, .unlimited = budget == UINT64_MAX,
	};
	struct bt_tracer *t;

	if (o.unlimited)
		o.budget = 0;
	t = bt_ds__join(ds, &o);
	cr_assert(not(eq(ptr, t, NULL)), "join %s: %s", name, strerror(errno));
	return t;
}

static struct bt_ds_request req_of(uint32_t kind, int32_t id, uint32_t fac,
				   uint64_t aux, uint64_t data, uint32_t mode,
				   const struct bt_trace_config *cfg)
{
	struct bt_ds_request r = {
		.sz = sizeof(r), .target = { .kind = kind, .id = id },
		.facility = fac, .config = cfg, .aux_bytes = aux,
		.data_bytes = data, .mode = mode,
	};
	return r;
}

/* Request PT on CPU @cpu with @aux bytes of AUX and the default data ring. */
static int req_pt_cpu(struct bt_tracer *t, int cpu, uint64_t aux,
		      struct bt_ds_view **v)
{
	struct bt_ds_request r = req_of(BT_TARGET_CPU, cpu, BT_FAC_PT, aux, 0,
					BT_MODE_SNAPSHOT, NULL);

	return bt_tracer__request(t, &r, v);
}

/* sum of charges == bytes mapped (allocator and backend) */
static void check_accounting(struct bt_tracer *const *t, unsigned n)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < n; i++) {
		if (t[i])
			sum += bt_tracer__charged(t[i]);
	}
	cr_assert(eq(u64, sum, bt_ds__mapped(ds)));
	cr_assert(eq(u64, sp->mapped, bt_ds__mapped(ds)));
}

/* ---- Who pays ----------------------------------------------------------- */

/* The worked example of docs/allocator.md. */
#define EX_COST	(512 * KiB + 64 * KiB + 4 * KiB)	/* 593,920 */

Test(alloc, owner_pays_header_data_and_aux_and_a_sharer_pays_nothing)
{
	struct bt_tracer *a = join("A", 101, 1 * MiB), *b = join("B", 102,
								256 * KiB);
	struct bt_ds_view *va, *vb;

	cr_assert(eq(int, req_pt_cpu(a, 0, 512 * KiB, &va), 0));
	cr_assert(eq(u64, bt_tracer__charged(a), 593920));
	cr_assert(eq(u64, bt_tracer__charged(a), EX_COST));
	cr_assert(eq(u64, bt_ds__mapped(ds), 593920));

	cr_assert(eq(int, req_pt_cpu(b, 0, 512 * KiB, &vb), 0));
	cr_assert(eq(u64, bt_tracer__charged(b), 0));
	cr_assert(eq(u64, bt_ds__mapped(ds), 593920));
	cr_assert(eq(u32, sp->opens, 1));	/* one hardware session */
	cr_assert(eq(ptr, (void *)bt_ds_view__buffers(vb),
		     (void *)bt_ds_view__buffers(va)));
	cr_assert(eq(u64, bt_ds_view__buffers(va)->aux_size, 512 * KiB));
	cr_assert(eq(u64, bt_ds_view__buffers(va)->data_size, 64 * KiB));
	cr_assert(eq(u64, bt_ds_view__buffers(va)->mapped, 593920));
	cr_assert(bt_ds_view__buffers(va)->aux_overwrite);
	cr_assert(not(bt_ds_view__filtered(vb)));

	bt_ds_view__release(vb);
	bt_ds_view__release(va);
	cr_assert(eq(u64, bt_ds__mapped(ds), 0));
	cr_assert(eq(u64, bt_tracer__charged(a), 0));
	cr_assert(eq(u32, sp->live, 0));
	cr_assert(eq(u32, notes.n, 0));	/* A owned it to the end */
}

Test(alloc, a_smaller_or_larger_request_shares_at_the_live_size)
{
	struct bt_tracer *a = join("A", 101, 1 * MiB), *b = join("B", 102,
								 4 * MiB);
	struct bt_ds_view *va, *vb, *vc;

	cr_assert(eq(int, req_pt_cpu(a, 1, 128 * KiB, &va), 0));
	cr_assert(eq(int, req_pt_cpu(b, 1, 16 * KiB, &vb), 0));
	cr_assert(eq(int, req_pt_cpu(b, 1, 2 * MiB, &vc), 0));
	cr_assert(eq(u64, bt_ds_view__buffers(vc)->aux_size, 128 * KiB));
	cr_assert(eq(u64, bt_ds_view__buffers(vb)->aux_size, 128 * KiB));
	cr_assert(eq(u64, bt_tracer__charged(b), 0));
	cr_assert(eq(u64, bt_tracer__charged(a), 4096 + 65536 + 131072));
	cr_assert(eq(u32, sp->opens, 1));
}

Test(alloc, ownership_passes_to_the_oldest_sharer_with_the_charge)
{
	struct bt_tracer *a = join("A", 101, 1 * MiB);
	struct bt_tracer *b = join("B", 102, 1 * MiB);
	struct bt_tracer *c = join("C", 103, 1 * MiB);
	struct bt_ds_view *va, *vb, *vc;
	const struct bt_pmu_buffers *before;

	cr_assert(eq(int, req_pt_cpu(a, 0, 512 * KiB, &va), 0));
	cr_assert(eq(int, req_pt_cpu(b, 0, 512 * KiB, &vb), 0));
	cr_assert(eq(int, req_pt_cpu(c, 0, 512 * KiB, &vc), 0));
	before = bt_ds_view__buffers(vb);

	bt_tracer__leave(a);
	cr_assert(eq(u64, bt_tracer__charged(b), 593920));
	cr_assert(eq(u64, bt_tracer__charged(c), 0));
	cr_assert(eq(u64, bt_ds__mapped(ds), 593920));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_OWNER, vb), 1));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_OWNER, vc), 1));
	cr_assert(eq(int, rec_find(&notes, BT_DS_NOTICE_OWNER, vc)->owner_pid,
		     102));
	cr_assert(eq(u32, notes.n, 2));		/* no resize: B can pay */
	check_accounting((struct bt_tracer *const[]){ b, c }, 2);
	cr_assert(eq(ptr, (void *)bt_ds_view__buffers(vb), (void *)before));
	cr_assert(eq(u64, bt_ds_view__buffers(vc)->aux_size, 512 * KiB));
	cr_assert(eq(u32, sp->opens, 1));

	/* B goes too: C, the oldest left, pays. */
	bt_ds_view__release(vb);
	cr_assert(eq(u64, bt_tracer__charged(b), 0));
	cr_assert(eq(u64, bt_tracer__charged(c), 593920));
	cr_assert(eq(int, rec_find(&notes, BT_DS_NOTICE_OWNER, vc)->owner_pid, 102));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_OWNER, vc), 2));
	cr_assert(eq(int, notes.v[2].owner_pid, 103));
	bt_tracer__leave(c);
	cr_assert(eq(u64, bt_ds__mapped(ds), 0));
	bt_tracer__leave(b);
}

Test(alloc, the_heir_is_the_oldest_view_not_the_oldest_tracer)
{
	struct bt_tracer *a = join("A", 101, 1 * MiB);
	struct bt_tracer *b = join("B", 102, 1 * MiB);
	struct bt_ds_view *va1, *vb, *va2;

	cr_assert(eq(int, req_pt_cpu(a, 0, 64 * KiB, &va1), 0));
	cr_assert(eq(int, req_pt_cpu(b, 0, 64 * KiB, &vb), 0));
	cr_assert(eq(int, req_pt_cpu(a, 0, 64 * KiB, &va2), 0));
	bt_ds_view__release(va1);	/* B's view is older than A's second */
	cr_assert(eq(u64, bt_tracer__charged(a), 0));
	cr_assert(eq(u64, bt_tracer__charged(b), 4096 + 65536 + 65536));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_OWNER, va2), 1));
	bt_ds_view__release(vb);	/* back to A, through its second view */
	cr_assert(eq(u64, bt_tracer__charged(a), 135168));
	cr_assert(eq(u64, bt_tracer__charged(b), 0));
	bt_ds_view__release(va2);
	cr_assert(eq(u64, bt_ds__mapped(ds), 0));
}

Test(alloc, an_owner_with_a_second_view_keeps_paying_without_a_notice)
{
	struct bt_tracer *a = join("A", 101, 1 * MiB);
	struct bt_tracer *b = join("B", 102, 1 * MiB);
	struct bt_ds_view *va1, *va2, *vb;

	cr_assert(eq(int, req_pt_cpu(a, 0, 64 * KiB, &va1), 0));
	cr_assert(eq(int, req_pt_cpu(a, 0, 64 * KiB, &va2), 0));
	cr_assert(eq(int, req_pt_cpu(b, 0, 64 * KiB, &vb), 0));
	bt_ds_view__release(va1);
	cr_assert(eq(u64, bt_tracer__charged(a), 135168));
	cr_assert(eq(u64, bt_tracer__charged(b), 0));
	cr_assert(eq(u32, notes.n, 0));
	/* Leaving: A's own second view is never the heir. */
	bt_tracer__leave(a);
	cr_assert(eq(u64, bt_tracer__charged(b), 135168));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_OWNER, vb), 1));
	cr_assert(eq(u32, notes.n, 1));
}

/* ---- Shrink and revoke -------------------------------------------------- */

Test(alloc, an_heir_that_cannot_pay_gets_the_largest_buffer_it_can)
{
	struct bt_tracer *a = join("A", 101, 1 * MiB);
	struct bt_tracer *b = join("B", 102, 256 * KiB);
	struct bt_tracer *c = join("C", 103, 1 * MiB);
	struct bt_ds_view *va, *vb, *vc;
	const struct bt_ds_notice *n;

	cr_assert(eq(int, req_pt_cpu(a, 0, 512 * KiB, &va), 0));
	cr_assert(eq(int, req_pt_cpu(b, 0, 512 * KiB, &vb), 0));
	cr_assert(eq(int, req_pt_cpu(c, 0, 512 * KiB, &vc), 0));
	bt_tracer__leave(a);
	/* 262,144 - 4,096 - 65,536 = 192,512: the AUX becomes 128 KiB. */
	cr_assert(eq(u64, bt_tracer__charged(b), 200704));
	cr_assert(eq(u64, bt_tracer__charged(c), 0));
	cr_assert(eq(u64, bt_ds__mapped(ds), 200704));
	cr_assert(eq(u64, bt_ds_view__buffers(vb)->aux_size, 128 * KiB));
	cr_assert(eq(u64, bt_ds_view__buffers(vc)->aux_size, 128 * KiB));
	cr_assert(eq(u64, bt_ds_view__buffers(vc)->data_size, 64 * KiB));
	n = rec_find(&notes, BT_DS_NOTICE_RESIZE, vc);
	cr_assert(not(eq(ptr, (void *)n, NULL)));
	cr_assert(eq(u64, n->bytes, 131072));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_RESIZE, vb), 1));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_OWNER, vb), 1));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_OWNER, vc), 1));
	cr_assert(eq(u32, sp->opens, 1));	/* remapped, not reopened */
	cr_assert(eq(u32, sp->maps, 2));
	check_accounting((struct bt_tracer *const[]){ b, c }, 2);
}

Test(alloc, the_minimum_is_the_boundary_between_shrink_and_revoke)
{
	struct bt_tracer *a = join("A", 101, 1 * MiB);
	/* header + data + 16 KiB minimum = 86,016 bytes */
	struct bt_tracer *b = join("B", 102, 86016);
	struct bt_tracer *c = join("C", 103, 86015);
	struct bt_ds_view *va, *vb, *va2, *vc;

	cr_assert(eq(int, req_pt_cpu(a, 0, 512 * KiB, &va), 0));
	cr_assert(eq(int, req_pt_cpu(b, 0, 512 * KiB, &vb), 0));
	bt_ds_view__release(va);
	cr_assert(eq(u64, bt_tracer__charged(b), 86016));
	cr_assert(eq(u64, bt_ds_view__buffers(vb)->aux_size, 16 * KiB));
	cr_assert(not(bt_ds_view__revoked(vb)));

	cr_assert(eq(int, req_pt_cpu(a, 1, 512 * KiB, &va2), 0));
	cr_assert(eq(int, req_pt_cpu(c, 1, 512 * KiB, &vc), 0));
	bt_ds_view__release(va2);
	cr_assert(bt_ds_view__revoked(vc));
	cr_assert(eq(u64, bt_tracer__charged(c), 0));
	cr_assert(eq(u64, bt_ds__mapped(ds), 86016));
}

Test(alloc, an_heir_that_cannot_pay_the_minimum_ends_the_session_for_all)
{
	struct bt_tracer *a = join("A", 101, 1 * MiB);
	struct bt_tracer *b = join("B", 102, 64 * KiB);
	struct bt_tracer *c = join("C", 103, 4 * MiB);
	struct bt_ds_view *va, *vb, *vc;

	cr_assert(eq(int, req_pt_cpu(a, 0, 512 * KiB, &va), 0));
	cr_assert(eq(int, req_pt_cpu(b, 0, 512 * KiB, &vb), 0));
	cr_assert(eq(int, req_pt_cpu(c, 0, 512 * KiB, &vc), 0));
	bt_tracer__leave(a);
	cr_assert(bt_ds_view__revoked(vb));
	cr_assert(bt_ds_view__revoked(vc));
	cr_assert(eq(ptr, (void *)bt_ds_view__buffers(vb), NULL));
	cr_assert(eq(ptr, (void *)bt_ds_view__buffers(vc), NULL));
	cr_assert(eq(ptr, bt_ds_view__event(vc), NULL));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_REVOKE, vb), 1));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_REVOKE, vc), 1));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_OWNER, vc), 0));
	cr_assert(eq(u32, notes.n, 2));
	cr_assert(eq(u64, bt_ds__mapped(ds), 0));
	cr_assert(eq(u64, bt_tracer__charged(b), 0));
	cr_assert(eq(u64, bt_tracer__charged(c), 0));
	cr_assert(eq(u32, sp->live, 0));
	cr_assert(eq(int, bt_ds_view__resize(vc, 64 * KiB), -ENODEV));

	/* The hardware is free again: C opens its own session and owns it. */
	cr_assert(eq(int, req_pt_cpu(c, 0, 1 * MiB, &va), 0));
	cr_assert(eq(u64, bt_tracer__charged(c), 4096 + 65536 + 1048576));
	bt_ds_view__release(vb);
	bt_ds_view__release(vc);
	bt_ds_view__release(va);
	cr_assert(eq(u64, bt_ds__mapped(ds), 0));
}

Test(alloc, a_sample_facility_shrinks_its_data_ring)
{
	struct bt_tracer *a = join("A", 101, 1 * MiB);
	struct bt_tracer *b = join("B", 102, 40 * KiB);
	struct bt_trace_config cfg = { .sz = sizeof(cfg), .branch_sample_type = 0 };
	struct bt_ds_request r = req_of(BT_TARGET_CPU, 2, BT_FAC_LBR, 256 * KiB,
					64 * KiB, BT_MODE_STREAM, &cfg);
	struct bt_ds_view *va, *vb;

	cr_assert(eq(int, bt_tracer__request(a, &r, &va), 0));
	/* LBR samples go to the data ring: aux_bytes sizes it. */
	cr_assert(eq(u64, bt_tracer__charged(a), 4096 + 262144));
	cr_assert(eq(ptr, bt_ds_view__buffers(va)->aux, NULL));
	cr_assert(eq(u64, bt_ds_view__buffers(va)->data_size, 256 * KiB));
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), 0));
	bt_ds_view__release(va);
	/* 40,960 - 4,096 = 36,864: the ring becomes 32 KiB. */
	cr_assert(eq(u64, bt_tracer__charged(b), 4096 + 32768));
	cr_assert(eq(u64, bt_ds_view__buffers(vb)->data_size, 32 * KiB));
	cr_assert(eq(u64, rec_find(&notes, BT_DS_NOTICE_RESIZE, vb)->bytes,
		     32768));
}

/* ---- Resize by the owner ------------------------------------------------ */

Test(alloc, the_owner_resizes_and_every_view_is_told)
{
	struct bt_tracer *a = join("A", 101, 1 * MiB);
	struct bt_tracer *b = join("B", 102, 8 * MiB);
	struct bt_ds_view *va, *vb;

	cr_assert(eq(int, req_pt_cpu(a, 3, 256 * KiB, &va), 0));
	cr_assert(eq(int, req_pt_cpu(b, 3, 256 * KiB, &vb), 0));
	cr_assert(eq(int, bt_ds_view__resize(vb, 512 * KiB), -EPERM));
	/* 4,096 + 65,536 + 1 MiB > 1 MiB */
	cr_assert(eq(int, bt_ds_view__resize(va, 1 * MiB), -ENOMEM));
	cr_assert(eq(u64, bt_tracer__charged(a), 4096 + 65536 + 262144));
	cr_assert(eq(u32, notes.n, 0));
	cr_assert(eq(int, bt_ds_view__resize(va, 512 * KiB), 0));
	cr_assert(eq(u64, bt_tracer__charged(a), 593920));
	cr_assert(eq(u64, bt_ds_view__buffers(vb)->aux_size, 512 * KiB));
	cr_assert(eq(u64, rec_find(&notes, BT_DS_NOTICE_RESIZE, vb)->bytes,
		     524288));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_RESIZE, va), 1));
	cr_assert(eq(int, bt_ds_view__resize(va, 32 * KiB), 0));
	cr_assert(eq(u64, bt_tracer__charged(a), 4096 + 65536 + 32768));
	cr_assert(eq(u64, bt_ds__mapped(ds), 102400));
	cr_assert(eq(int, bt_ds_view__resize(va, 32 * KiB), 0));	/* same */
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_RESIZE, va), 2));
	cr_assert(eq(u32, sp->opens, 1));
}

Test(alloc, a_resize_the_backend_refuses_keeps_the_old_size)
{
	struct bt_tracer *a = join("A", 101, 4 * MiB);
	struct bt_ds_view *va;

	cr_assert(eq(int, req_pt_cpu(a, 0, 64 * KiB, &va), 0));
	fk->fail_map = -EPERM;		/* mlock said no */
	cr_assert(eq(int, bt_ds_view__resize(va, 1 * MiB), -EPERM));
	cr_assert(not(bt_ds_view__revoked(va)));
	cr_assert(eq(u64, bt_ds_view__buffers(va)->aux_size, 64 * KiB));
	cr_assert(eq(u64, bt_tracer__charged(a), 135168));
	cr_assert(eq(u64, sp->mapped, 135168));

	/* Neither size can be mapped again: the session ends. */
	fk->fail_map = -EPERM;
	fk->fail_map_after = 0;
	fk->rng = 1;
	fk->fail_rate = 1;		/* every call fails from now on */
	cr_assert(eq(int, bt_ds_view__resize(va, 1 * MiB), -EPERM));
	fk->fail_rate = 0;
	cr_assert(bt_ds_view__revoked(va));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_REVOKE, va), 1));
	cr_assert(eq(u64, bt_tracer__charged(a), 0));
	cr_assert(eq(u64, bt_ds__mapped(ds), 0));
	cr_assert(eq(u32, sp->live, 0));
}

/* ---- Exclusivity: decided before the kernel is asked -------------------- */

Test(alloc, an_incompatible_request_is_busy_and_names_the_holder)
{
	struct bt_tracer *a = join("gdb", 4242, 4 * MiB);
	struct bt_tracer *b = join("perf", 4343, 4 * MiB);
	struct bt_trace_config tsc = { .sz = sizeof(tsc), .tsc = true };
	struct bt_trace_config kern = { .sz = sizeof(kern), .user = true,
					.kernel = true };
	struct bt_ds_view *va, *vb;
	struct bt_ds_request r;
	unsigned opens;

	cr_assert(eq(int, req_pt_cpu(a, 0, 64 * KiB, &va), 0));
	opens = sp->opens;

	r = req_of(BT_TARGET_CPU, 0, BT_FAC_PT, 64 * KiB, 0, BT_MODE_STREAM,
		   NULL);		/* another mode */
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), -EBUSY));
	cr_assert(eq(int, r.busy_pid, 4242));
	cr_assert(eq(str, r.busy_name, "gdb"));

	r = req_of(BT_TARGET_CPU, 0, BT_FAC_BTS, 64 * KiB, 0, BT_MODE_SNAPSHOT,
		   NULL);		/* another exclusive facility */
	r.busy_pid = -7;
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), -EBUSY));
	cr_assert(eq(int, r.busy_pid, 4242));

	r = req_of(BT_TARGET_CPU, 0, BT_FAC_LBR, 64 * KiB, 0, BT_MODE_SNAPSHOT,
		   NULL);
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), -EBUSY));

	r = req_of(BT_TARGET_CPU, 0, BT_FAC_PT, 64 * KiB, 0, BT_MODE_SNAPSHOT,
		   &tsc);		/* other timing packets */
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), -EBUSY));

	r = req_of(BT_TARGET_CPU, 0, BT_FAC_PT, 64 * KiB, 0, BT_MODE_SNAPSHOT,
		   &kern);		/* the session traces user space only */
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), -EBUSY));
	cr_assert(eq(u32, sp->opens, opens));	/* the kernel never saw them */
	cr_assert(eq(u32, sp->ebusy, 0));
	cr_assert(eq(u64, bt_tracer__charged(b), 0));

	/* Another CPU is another context. */
	r = req_of(BT_TARGET_CPU, 1, BT_FAC_BTS, 64 * KiB, 0, BT_MODE_SNAPSHOT,
		   NULL);
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), 0));
	cr_assert(eq(int, r.busy_pid, 0));
	cr_assert(eq(str, r.busy_name, ""));
}

Test(alloc, a_session_tracing_more_serves_a_request_for_less)
{
	struct bt_tracer *a = join("A", 101, 4 * MiB);
	struct bt_tracer *b = join("B", 102, 4 * MiB);
	struct bt_trace_config both = { .sz = sizeof(both), .user = true,
					.kernel = true };
	struct bt_trace_config kern = { .sz = sizeof(kern), .kernel = true };
	struct bt_trace_config flt = { .sz = sizeof(flt),
				       .filter = "filter main @ /bin/true" };
	struct bt_trace_config flt2 = { .sz = sizeof(flt2),
					.filter = "filter f @ /bin/true" };
	struct bt_ds_request r;
	struct bt_ds_view *v1, *v2, *v3, *v4;

	r = req_of(BT_TARGET_CPU, 0, BT_FAC_PT, 64 * KiB, 0, BT_MODE_STREAM,
		   &both);
	cr_assert(eq(int, bt_tracer__request(a, &r, &v1), 0));
	r.config = &kern;
	cr_assert(eq(int, bt_tracer__request(b, &r, &v2), 0));
	r.config = NULL;		/* user only */
	cr_assert(eq(int, bt_tracer__request(b, &r, &v3), 0));
	r.config = &flt;		/* a filter, of an unfiltered session */
	cr_assert(eq(int, bt_tracer__request(b, &r, &v4), 0));
	cr_assert(eq(u32, sp->opens, 1));

	/* A filtered session shares only with the same filter. */
	r = req_of(BT_TARGET_CPU, 1, BT_FAC_PT, 64 * KiB, 0, BT_MODE_STREAM,
		   &flt);
	cr_assert(eq(int, bt_tracer__request(a, &r, &v1), 0));
	cr_assert(eq(str, ((struct fake_ev *)fk->evs)->filter,
		     "filter main @ /bin/true"));
	cr_assert(eq(int, bt_tracer__request(b, &r, &v2), 0));
	r.config = &flt2;
	cr_assert(eq(int, bt_tracer__request(b, &r, &v3), -EBUSY));
	r.config = NULL;
	cr_assert(eq(int, bt_tracer__request(b, &r, &v3), -EBUSY));
	cr_assert(eq(u32, sp->opens, 2));
}

Test(alloc, a_cpu_request_while_a_task_session_exists_is_busy)
{
	struct bt_tracer *a = join("A", 101, 4 * MiB);
	struct bt_tracer *b = join("B", 102, 4 * MiB);
	struct bt_ds_request r;
	struct bt_ds_view *va, *vb;

	r = req_of(BT_TARGET_TASK, 777, BT_FAC_PT, 64 * KiB, 0,
		   BT_MODE_SNAPSHOT, NULL);
	cr_assert(eq(int, bt_tracer__request(a, &r, &va), 0));
	r = req_of(BT_TARGET_CPU, 3, BT_FAC_PT, 64 * KiB, 0, BT_MODE_SNAPSHOT,
		   NULL);
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), -EBUSY));
	cr_assert(eq(int, r.busy_pid, 101));
	cr_assert(eq(str, r.busy_name, "A"));
	r.target.kind = BT_TARGET_ALL;
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), -EBUSY));
	/* Another task is another context, even for another facility. */
	r = req_of(BT_TARGET_TASK, 778, BT_FAC_BTS, 64 * KiB, 0,
		   BT_MODE_SNAPSHOT, NULL);
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), 0));
	r = req_of(BT_TARGET_TASK, 777, BT_FAC_LBR, 64 * KiB, 0,
		   BT_MODE_SNAPSHOT, NULL);
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), -EBUSY));
	cr_assert(eq(u32, sp->opens, 2));
	cr_assert(eq(u32, sp->ebusy, 0));
}

Test(alloc, a_task_request_on_cpu_sessions_is_filtered_from_them)
{
	struct bt_tracer *a = join("A", 101, 4 * MiB);
	struct bt_tracer *b = join("B", 102, 64 * KiB);
	struct bt_ds_view *v0, *v2, *vt, *p;
	struct bt_ds_request r;
	unsigned opens, maps;

	cr_assert(eq(int, req_pt_cpu(a, 2, 256 * KiB, &v2), 0));
	cr_assert(eq(int, req_pt_cpu(a, 0, 256 * KiB, &v0), 0));
	cr_assert(eq(u64, bt_tracer__charged(a), 2 * 331776));
	opens = sp->opens;
	maps = sp->maps;

	r = req_of(BT_TARGET_TASK, 4321, BT_FAC_PT, 1 * MiB, 0,
		   BT_MODE_SNAPSHOT, NULL);
	cr_assert(eq(int, bt_tracer__request(b, &r, &vt), 0));
	cr_assert(bt_ds_view__filtered(vt));
	cr_assert(eq(u32, sp->opens, opens));	/* no new event */
	cr_assert(eq(u32, sp->maps, maps));	/* no new mapping */
	cr_assert(eq(u64, bt_tracer__charged(b), 0));
	cr_assert(eq(u64, bt_ds__mapped(ds), 663552));
	cr_assert(eq(u32, bt_ds_view__nr_parts(vt), 2));
	cr_assert(eq(ptr, (void *)bt_ds_view__buffers(vt), NULL));
	cr_assert(eq(ptr, bt_ds_view__event(vt), NULL));
	cr_assert(eq(int, bt_ds_view__target(vt).kind, BT_TARGET_TASK));
	cr_assert(eq(int, bt_ds_view__target(vt).id, 4321));
	p = bt_ds_view__part(vt, 0);
	cr_assert(bt_ds_view__filtered(p));
	cr_assert(eq(int, bt_ds_view__target(p).kind, BT_TARGET_CPU));
	cr_assert(eq(int, bt_ds_view__target(p).id, 0));
	cr_assert(eq(ptr, (void *)bt_ds_view__buffers(p),
		     (void *)bt_ds_view__buffers(v0)));
	p = bt_ds_view__part(vt, 1);
	cr_assert(eq(int, bt_ds_view__target(p).id, 2));
	cr_assert(eq(ptr, (void *)bt_ds_view__buffers(p),
		     (void *)bt_ds_view__buffers(v2)));
	cr_assert(eq(ptr, bt_ds_view__part(vt, 2), NULL));
	cr_assert(eq(int, errno, EINVAL));
	cr_assert(eq(int, bt_ds_view__resize(vt, 64 * KiB), -EINVAL));
	bt_ds_view__release(p);		/* a part: nothing happens */
	cr_assert(eq(u32, bt_ds_view__nr_parts(vt), 2));

	/* A task of another exclusive facility cannot run on those CPUs. */
	r = req_of(BT_TARGET_TASK, 4321, BT_FAC_BTS, 64 * KiB, 0,
		   BT_MODE_SNAPSHOT, NULL);
	cr_assert(eq(int, bt_tracer__request(b, &r, &vt), -EBUSY));
	cr_assert(eq(int, r.busy_pid, 101));
	/* Nor a task view the CPU sessions do not match. */
	r = req_of(BT_TARGET_TASK, 4321, BT_FAC_PT, 64 * KiB, 0,
		   BT_MODE_STREAM, NULL);
	cr_assert(eq(int, bt_tracer__request(b, &r, &vt), -EBUSY));
	cr_assert(eq(u32, sp->opens, opens));

	/* A leaves: B's parts inherit both sessions it cannot pay for. */
	bt_tracer__leave(a);
	cr_assert(bt_ds_view__revoked(bt_ds_view__part(vt, 0)));
	cr_assert(eq(u64, bt_tracer__charged(b), 0));
	cr_assert(eq(u64, bt_ds__mapped(ds), 0));
}

Test(alloc, per_task_views_and_a_catch_all_cpu_buffer_together)
{
	struct bt_tracer *a = join("A", 101, 4 * MiB);
	struct bt_ds_view *all, *t1, *t2;
	struct bt_ds_request r;

	r = req_of(BT_TARGET_ALL, 0, BT_FAC_PT, 64 * KiB, 0, BT_MODE_SNAPSHOT,
		   NULL);
	cr_assert(eq(int, bt_tracer__request(a, &r, &all), 0));
	cr_assert(eq(u64, bt_tracer__charged(a), 4 * 135168));
	r = req_of(BT_TARGET_TASK, 11, BT_FAC_PT, 64 * KiB, 0,
		   BT_MODE_SNAPSHOT, NULL);
	cr_assert(eq(int, bt_tracer__request(a, &r, &t1), 0));
	r.target.id = 12;
	cr_assert(eq(int, bt_tracer__request(a, &r, &t2), 0));
	cr_assert(eq(u32, bt_ds_view__nr_parts(t1), 4));
	cr_assert(eq(u64, bt_tracer__charged(a), 540672));
	cr_assert(eq(u32, sp->opens, 4));
	/* The catch-all goes; the task views keep its sessions, still A's. */
	bt_ds_view__release(all);
	cr_assert(eq(u64, bt_tracer__charged(a), 540672));
	cr_assert(eq(u32, notes.n, 0));
	bt_ds_view__release(t1);
	bt_ds_view__release(t2);
	cr_assert(eq(u64, bt_tracer__charged(a), 0));
	cr_assert(eq(u64, bt_ds__mapped(ds), 0));
}

/* ---- PEBS and ALL ------------------------------------------------------- */

Test(alloc, pebs_configs_coexist_each_charged_to_its_requester)
{
	struct bt_tracer *a = join("A", 101, 1 * MiB);
	struct bt_tracer *b = join("B", 102, 1 * MiB);
	struct bt_tracer *c = join("C", 103, 1 * MiB);
	struct bt_trace_config x = { .sz = sizeof(x), .pebs_config = 0x1c0,
				     .period = 10007 };
	struct bt_trace_config y = { .sz = sizeof(y), .pebs_config = 0x81d0,
				     .period = 2003 };
	struct bt_ds_request r;
	struct bt_ds_view *va, *vb, *vc, *vp;

	r = req_of(BT_TARGET_CPU, 0, BT_FAC_PEBS, 64 * KiB, 0, BT_MODE_STREAM,
		   &x);
	cr_assert(eq(int, bt_tracer__request(a, &r, &va), 0));
	r.config = &y;
	r.aux_bytes = 32 * KiB;
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), 0));
	cr_assert(eq(u64, bt_tracer__charged(a), 4096 + 65536));
	cr_assert(eq(u64, bt_tracer__charged(b), 4096 + 32768));
	r.config = &x;			/* the same config shares */
	cr_assert(eq(int, bt_tracer__request(c, &r, &vc), 0));
	cr_assert(eq(u64, bt_tracer__charged(c), 0));
	cr_assert(eq(u32, sp->opens, 2));
	/* PEBS next to PT on the same CPU. */
	cr_assert(eq(int, req_pt_cpu(c, 0, 64 * KiB, &vp), 0));
	cr_assert(eq(u64, bt_tracer__charged(c), 135168));
	cr_assert(eq(u64, bt_ds__mapped(ds), 69632 + 36864 + 135168));
	/* PEBS per task next to the per-CPU PEBS and PT sessions. */
	r = req_of(BT_TARGET_TASK, 55, BT_FAC_PEBS, 16 * KiB, 0,
		   BT_MODE_STREAM, &x);
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), 0));
	cr_assert(not(bt_ds_view__filtered(vb)));
	cr_assert(eq(u64, bt_tracer__charged(b), 36864 + 20480));
	cr_assert(eq(u32, sp->conflicts, 0));
}

Test(alloc, all_opens_one_session_per_cpu)
{
	struct bt_tracer *a = join("A", 101, 1 * MiB);
	struct bt_tracer *b = join("B", 102, 1 * MiB);
	struct bt_ds_view *va, *vb, *v2;
	struct bt_ds_request r;

	r = req_of(BT_TARGET_ALL, 0, BT_FAC_PT, 64 * KiB, 0, BT_MODE_SNAPSHOT,
		   NULL);
	cr_assert(eq(int, bt_tracer__request(a, &r, &va), 0));
	cr_assert(eq(u32, bt_ds_view__nr_parts(va), 4));
	cr_assert(eq(u32, sp->opens, 4));
	cr_assert(eq(u64, bt_tracer__charged(a), 540672));
	cr_assert(eq(u64, bt_ds__mapped(ds), 540672));
	cr_assert(eq(int, bt_ds_view__target(va).kind, BT_TARGET_ALL));
	for (uint32_t i = 0; i < 4; i++) {
		struct bt_ds_view *p = bt_ds_view__part(va, i);

		cr_assert(eq(int, bt_ds_view__target(p).kind, BT_TARGET_CPU));
		cr_assert(eq(int, bt_ds_view__target(p).id, (int)i));
		cr_assert(eq(u64, bt_ds_view__buffers(p)->aux_size, 64 * KiB));
	}
	cr_assert(eq(int, req_pt_cpu(b, 2, 64 * KiB, &v2), 0));
	cr_assert(eq(ptr, (void *)bt_ds_view__buffers(v2),
		     (void *)bt_ds_view__buffers(bt_ds_view__part(va, 2))));
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), 0));
	cr_assert(eq(u32, sp->opens, 4));
	cr_assert(eq(u64, bt_tracer__charged(b), 0));

	/* The owner resizes one CPU's part. */
	cr_assert(eq(int, bt_ds_view__resize(bt_ds_view__part(va, 1),
					     128 * KiB), 0));
	cr_assert(eq(int, bt_ds_view__resize(bt_ds_view__part(vb, 1),
					     16 * KiB), -EPERM));
	cr_assert(eq(u64, bt_tracer__charged(a), 540672 + 65536));

	/* A leaves; B pays for all four. */
	bt_tracer__leave(a);
	cr_assert(eq(u64, bt_tracer__charged(b), 540672 + 65536));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_OWNER,
				    bt_ds_view__part(vb, 3)), 1));
	cr_assert(eq(u32, rec_count(&notes, BT_DS_NOTICE_OWNER, v2), 1));
	cr_assert(not(bt_ds_view__revoked(vb)));
	bt_ds_view__release(vb);
	cr_assert(eq(u64, bt_tracer__charged(b), 135168));
	bt_ds_view__release(v2);
	cr_assert(eq(u64, bt_ds__mapped(ds), 0));
}

Test(alloc, all_is_decided_for_every_cpu_before_any_is_opened)
{
	struct bt_tracer *a = join("A", 101, 1 * MiB);
	struct bt_tracer *b = join("B", 102, 300 * KiB);
	struct bt_ds_view *v, *vb;
	struct bt_ds_request r;

	cr_assert(eq(int, req_pt_cpu(a, 1, 64 * KiB, &v), 0));
	r = req_of(BT_TARGET_ALL, 0, BT_FAC_BTS, 64 * KiB, 0,
		   BT_MODE_SNAPSHOT, NULL);
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), -EBUSY));
	cr_assert(eq(int, r.busy_pid, 101));
	cr_assert(eq(u32, sp->opens, 1));
	/* Three new sessions of 135,168 bytes do not fit in 300 KiB ... */
	r.facility = BT_FAC_PT;
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), -ENOMEM));
	cr_assert(eq(u32, sp->opens, 1));
	cr_assert(eq(u64, bt_tracer__charged(b), 0));
	/* ... two do: CPU 1 is shared. */
	bt_ds_view__release(v);
	cr_assert(eq(int, req_pt_cpu(a, 1, 64 * KiB, &v), 0));
	cr_assert(eq(int, req_pt_cpu(a, 3, 64 * KiB, &v), 0));
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), 0));
	cr_assert(eq(u64, bt_tracer__charged(b), 2 * 135168));
	cr_assert(eq(u32, sp->opens, 5));
}

Test(alloc, a_backend_failure_part_way_through_all_changes_nothing)
{
	struct bt_tracer *a = join("A", 101, 8 * MiB);
	struct bt_ds_view *v;
	struct bt_ds_request r;

	r = req_of(BT_TARGET_ALL, 0, BT_FAC_PT, 64 * KiB, 0, BT_MODE_SNAPSHOT,
		   NULL);
	fk->fail_map = -EPERM;
	fk->fail_map_after = 2;		/* CPUs 0 and 1 map, CPU 2 fails */
	cr_assert(eq(int, bt_tracer__request(a, &r, &v), -EPERM));
	cr_assert(eq(u32, sp->opens, 3));
	cr_assert(eq(u32, sp->live, 0));
	cr_assert(eq(u64, sp->mapped, 0));
	cr_assert(eq(u64, bt_tracer__charged(a), 0));
	cr_assert(eq(u64, bt_ds__mapped(ds), 0));

	fk->fail_open = -ENOENT;	/* no such PMU */
	r.target.kind = BT_TARGET_CPU;
	cr_assert(eq(int, bt_tracer__request(a, &r, &v), -ENOENT));
	cr_assert(eq(u64, bt_tracer__charged(a), 0));
	cr_assert(eq(u32, sp->live, 0));
	/* A filter the backend refuses: the event is closed again. */
	{
		struct bt_trace_config f = { .sz = sizeof(f), .filter = "bad" };

		unsigned maps = sp->maps;

		r.config = &f;
		cr_assert(eq(int, bt_tracer__request(a, &r, &v), -EINVAL));
		cr_assert(eq(u32, sp->live, 0));
		cr_assert(eq(u32, sp->maps, maps));	/* never mapped */
		cr_assert(eq(u64, bt_tracer__charged(a), 0));
		/* BTS has no address filters: the filter is not set. */
		r.facility = BT_FAC_BTS;
		cr_assert(eq(int, bt_tracer__request(a, &r, &v), 0));
		cr_assert(eq(str, ((struct fake_ev *)fk->evs)->filter, ""));
		bt_ds_view__release(v);
	}
}

/* ---- Budgets ------------------------------------------------------------ */

Test(alloc, a_request_over_budget_is_enomem_and_changes_nothing)
{
	struct bt_tracer *a = join("A", 101, 200 * KiB);
	struct bt_tracer *u = join("U", 102, UINT64_MAX);
	struct bt_ds_view *v;

	cr_assert(eq(u64, bt_tracer__budget(u), UINT64_MAX));
	cr_assert(eq(int, req_pt_cpu(a, 0, 128 * KiB, &v), 0));
	cr_assert(eq(u64, bt_tracer__charged(a), 200704));
	cr_assert(eq(int, req_pt_cpu(a, 1, 16 * KiB, &v), -ENOMEM));
	cr_assert(eq(u32, sp->opens, 1));
	cr_assert(eq(int, req_pt_cpu(u, 1, 64 * MiB, &v), 0));
	cr_assert(eq(u64, bt_tracer__charged(u), 4096 + 65536 + 64 * MiB));
	cr_assert(eq(u64, bt_tracer__budget(a), 200 * KiB));
}

/* Set or clear CAP_IPC_LOCK in this process's effective set. */
static int set_ipc_lock(bool on)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0,
	};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -errno;
	if (on)
		d[0].effective |= 1u << CAP_IPC_LOCK;
	else
		d[0].effective &= ~(1u << CAP_IPC_LOCK);
	return syscall(SYS_capset, &h, d) ? -errno : 0;
}

Test(alloc, the_default_budget_is_the_tracers_rlimit_memlock)
{
	struct bt_tracer_opts o = { .sz = sizeof(o), .pid = getpid() };
	struct rlimit rl, old;
	struct bt_tracer *t;

	cr_assert(eq(int, getrlimit(RLIMIT_MEMLOCK, &old), 0));
	cr_assert(eq(int, set_ipc_lock(false), 0));
	rl.rlim_cur = 256 * KiB;
	rl.rlim_max = old.rlim_max;
	cr_assert(eq(int, setrlimit(RLIMIT_MEMLOCK, &rl), 0));
	t = bt_ds__join(ds, &o);
	cr_assert(not(eq(ptr, t, NULL)));
	cr_assert(eq(u64, bt_tracer__budget(t), 262144));
	bt_tracer__leave(t);

	o.pid = 0;			/* 0: this process */
	t = bt_ds__join(ds, &o);
	cr_assert(eq(u64, bt_tracer__budget(t), 262144));
	bt_tracer__leave(t);

	/* CAP_IPC_LOCK (where this process may raise it) lifts the limit. */
	if (set_ipc_lock(true) == 0) {
		t = bt_ds__join(ds, &o);
		cr_assert(eq(u64, bt_tracer__budget(t), UINT64_MAX));
		bt_tracer__leave(t);
		cr_assert(eq(int, set_ipc_lock(false), 0));
	}
	/* So does RLIM_INFINITY (where the hard limit allows it). */
	rl.rlim_cur = RLIM_INFINITY;
	rl.rlim_max = RLIM_INFINITY;
	if (setrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
		t = bt_ds__join(ds, &o);
		cr_assert(eq(u64, bt_tracer__budget(t), UINT64_MAX));
		bt_tracer__leave(t);
	}

	/* An explicit budget is used as given. */
	o.budget = 12345;
	t = bt_ds__join(ds, &o);
	cr_assert(eq(u64, bt_tracer__budget(t), 12345));
	bt_tracer__leave(t);
}

Test(alloc, a_tracer_whose_process_is_gone_cannot_join_by_default)
{
	struct bt_tracer_opts o = { .sz = sizeof(o), .pid = 0x3ffffff0 };

	cr_assert(eq(ptr, bt_ds__join(ds, &o), NULL));
	cr_assert(eq(int, errno, ESRCH));
	o.budget = 1 * MiB;		/* explicit: no lookup */
	struct bt_tracer *t = bt_ds__join(ds, &o);

	cr_assert(not(eq(ptr, t, NULL)));
	bt_tracer__leave(t);
}

Test(alloc, a_tracer_without_a_name_is_named_by_its_process)
{
	struct bt_tracer_opts o = { .sz = sizeof(o), .pid = getpid(),
				    .budget = 1 * MiB };
	struct bt_tracer *t = bt_ds__join(ds, &o), *u;
	struct bt_ds_request r = req_of(BT_TARGET_CPU, 0, BT_FAC_PT, 64 * KiB,
					0, BT_MODE_STREAM, NULL);
	struct bt_ds_view *v;
	char comm[64] = "";
	FILE *f = fopen("/proc/self/comm", "r");

	cr_assert(not(eq(ptr, f, NULL)));
	cr_assert(not(eq(ptr, fgets(comm, sizeof(comm), f), NULL)));
	fclose(f);
	comm[strcspn(comm, "\n")] = '\0';
	u = join("U", 9, 1 * MiB);
	cr_assert(eq(int, bt_tracer__request(t, &r, &v), 0));
	r.mode = BT_MODE_SNAPSHOT;
	cr_assert(eq(int, bt_tracer__request(u, &r, &v), -EBUSY));
	cr_assert(eq(str, r.busy_name, comm));
	cr_assert(eq(int, r.busy_pid, getpid()));
}

/* ---- Notices see a consistent allocator --------------------------------- */

struct consistent {
	struct bt_tracer *heir;
	uint64_t charged_seen;
	uint64_t aux_seen;
	unsigned n;
};

static void consistent_fn(void *ctx, const struct bt_ds_notice *n)
{
	struct consistent *c = ctx;

	c->n++;
	if (n->kind == BT_DS_NOTICE_OWNER)
		c->charged_seen = bt_tracer__charged(c->heir);
	if (n->kind == BT_DS_NOTICE_RESIZE)
		c->aux_seen = bt_ds_view__buffers(n->view)->aux_size;
}

Test(alloc, a_notice_comes_after_the_change_is_complete)
{
	struct consistent c = { 0 };
	struct bt_ds_opts o = { .sz = sizeof(o), .notice = consistent_fn,
				.notice_ctx = &c, .nr_cpus = 1 };
	struct bt_ds *d = bt_ds__new(&sp->base, &o);
	struct bt_tracer_opts to = { .sz = sizeof(to), .pid = 1,
				     .name = "a", .budget = 1 * MiB };
	struct bt_tracer *a, *b;
	struct bt_ds_view *va, *vb;
	struct bt_ds_request r = req_of(BT_TARGET_CPU, 0, BT_FAC_PT, 512 * KiB,
					0, BT_MODE_STREAM, NULL);

	cr_assert(not(eq(ptr, d, NULL)));
	a = bt_ds__join(d, &to);
	to.name = "b";
	to.pid = 2;
	to.budget = 256 * KiB;
	b = bt_ds__join(d, &to);
	c.heir = b;
	cr_assert(eq(int, bt_tracer__request(a, &r, &va), 0));
	cr_assert(eq(int, bt_tracer__request(b, &r, &vb), 0));
	bt_tracer__leave(a);
	cr_assert(eq(u32, c.n, 2));
	cr_assert(eq(u64, c.charged_seen, 200704));
	cr_assert(eq(u64, c.aux_seen, 128 * KiB));
	bt_ds__free(d);			/* releases b's view, no notices */
	cr_assert(eq(u32, c.n, 2));
	cr_assert(eq(u32, sp->live, 0));
}

Test(alloc, freeing_the_allocator_releases_everything_without_a_shrink)
{
	struct bt_tracer *a = join("A", 101, 1 * MiB);
	struct bt_tracer *b = join("B", 102, 100 * KiB);
	struct bt_ds_view *va, *vb, *vall;
	struct bt_ds_request r = req_of(BT_TARGET_ALL, 0, BT_FAC_PT, 128 * KiB,
					0, BT_MODE_SNAPSHOT, NULL);
	unsigned maps;

	cr_assert(eq(int, bt_tracer__request(a, &r, &vall), 0));
	cr_assert(eq(int, req_pt_cpu(b, 0, 16 * KiB, &vb), 0));
	cr_assert(eq(int, req_pt_cpu(a, 0, 16 * KiB, &va), 0));
	maps = sp->maps;
	bt_ds__free(ds);	/* A first: B would have to shrink CPU 0 */
	ds = NULL;
	cr_assert(eq(u32, sp->maps, maps));
	cr_assert(eq(u32, notes.n, 0));
	cr_assert(eq(u32, sp->live, 0));
	cr_assert(eq(u64, sp->mapped, 0));
}

/* ---- Invalid arguments -------------------------------------------------- */

static int bad_op_open(struct bt_pmu *p, const struct bt_pmu_open_args *a,
		       struct bt_pmu_event **ev)
{
	(void)p;
	(void)a;
	(void)ev;
	return -ENOSYS;
}

Test(alloc, bt_ds__new_rejects_bad_arguments)
{
	struct bt_ds_opts o = { .sz = sizeof(o) };
	struct {
		struct bt_ds_opts o;
		uint64_t more;
	} big = { .o = { .sz = sizeof(big) }, .more = 1 };
	struct bt_pmu_ops partial = { .name = "partial", .open = bad_op_open };
	struct bt_pmu half = { .ops = &partial };
	struct bt_ds *d;

	errno = 0;
	cr_assert(eq(ptr, bt_ds__new(NULL, &o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	cr_assert(eq(ptr, bt_ds__new(&half, &o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	o.sz = 3;
	cr_assert(eq(ptr, bt_ds__new(&sp->base, &o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	cr_assert(eq(ptr, bt_ds__new(&sp->base, &big.o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	big.more = 0;			/* a newer caller's zeros are fine */
	d = bt_ds__new(&sp->base, &big.o);
	cr_assert(not(eq(ptr, d, NULL)));
	bt_ds__free(d);
	o.sz = sizeof(o);
	o.min_aux_bytes = 3 * PAGE;
	cr_assert(eq(ptr, bt_ds__new(&sp->base, &o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	o.min_aux_bytes = 100;
	cr_assert(eq(ptr, bt_ds__new(&sp->base, &o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	/* NULL opts: the defaults. */
	d = bt_ds__new(&sp->base, NULL);
	cr_assert(not(eq(ptr, d, NULL)));
	bt_ds__free(d);
	bt_ds__free(NULL);
	cr_assert(eq(u64, bt_ds__mapped(NULL), 0));
}

Test(alloc, bt_ds__join_rejects_bad_arguments)
{
	struct bt_tracer_opts o = { .sz = sizeof(o), .pid = 1, .budget = 1 };
	struct bt_tracer *t;

	cr_assert(eq(ptr, bt_ds__join(NULL, &o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	o.sz = 0;
	cr_assert(eq(ptr, bt_ds__join(ds, &o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	o.sz = sizeof(o);
	o.pid = -5;
	cr_assert(eq(ptr, bt_ds__join(ds, &o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	o.pid = 1;
	o.unlimited = true;		/* and a budget: which one? */
	cr_assert(eq(ptr, bt_ds__join(ds, &o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	/* NULL opts: this process, its uid and its limit. */
	t = bt_ds__join(ds, NULL);
	cr_assert(not(eq(ptr, t, NULL)));
	bt_tracer__leave(t);
	bt_tracer__leave(NULL);
	cr_assert(eq(u64, bt_tracer__charged(NULL), 0));
	cr_assert(eq(u64, bt_tracer__budget(NULL), 0));
}

Test(alloc, bt_tracer__request_rejects_bad_requests_before_the_kernel)
{
	struct bt_tracer *a = join("A", 101, 8 * MiB);
	struct bt_trace_config cfg = { .sz = sizeof(cfg) };
	struct bt_ds_request ok = req_of(BT_TARGET_CPU, 0, BT_FAC_PT, 64 * KiB,
					 0, BT_MODE_STREAM, NULL), r;
	struct bt_ds_view *v = (void *)0x1;

	cr_assert(eq(int, bt_tracer__request(NULL, &ok, &v), -EINVAL));
	cr_assert(eq(int, bt_tracer__request(a, NULL, &v), -EINVAL));
	cr_assert(eq(int, bt_tracer__request(a, &ok, NULL), -EINVAL));
#define BAD(field, value) do {						\
		r = ok;							\
		r.field = value;					\
		cr_assert(eq(int, bt_tracer__request(a, &r, &v), -EINVAL), \
			  #field " = " #value);				\
	} while (0)
	BAD(sz, 0);
	BAD(sz, 5);
	BAD(facility, BT_FAC__COUNT);
	BAD(facility, 99);
	BAD(target.kind, 3);
	BAD(target.id, -1);		/* CPU -1 */
	BAD(target.id, 4);		/* nr_cpus is 4 */
	BAD(aux_bytes, 0);
	BAD(aux_bytes, 3 * PAGE);	/* not a power of two */
	BAD(aux_bytes, 8 * KiB);	/* under the 16 KiB minimum */
	BAD(aux_bytes, 65537);
	BAD(data_bytes, 3 * PAGE);
	BAD(data_bytes, 100);
	BAD(mode, 2);
	BAD(facility, BT_FAC_STEP);	/* on a CPU: ptrace steps tasks */
	BAD(facility, BT_FAC_PTEMU);
	r = ok;
	r.target.kind = BT_TARGET_TASK;
	r.target.id = 0;
	cr_assert(eq(int, bt_tracer__request(a, &r, &v), -EINVAL));
	r.target.id = -3;
	cr_assert(eq(int, bt_tracer__request(a, &r, &v), -EINVAL));
	r = ok;
	r.config = &cfg;
	cfg.sz = 0;
	cr_assert(eq(int, bt_tracer__request(a, &r, &v), -EINVAL));
	cfg.sz = sizeof(cfg);
	cfg.mtc_period = 16;
	cr_assert(eq(int, bt_tracer__request(a, &r, &v), -EINVAL));
#undef BAD
	cr_assert(eq(ptr, v, (void *)0x1));
	cr_assert(eq(u32, sp->opens, 0));

	/* An older, shorter request struct: the busy fields stay untouched. */
	r = ok;
	r.sz = offsetof(struct bt_ds_request, busy_pid);
	r.busy_pid = -9;
	cr_assert(eq(int, bt_tracer__request(a, &r, &v), 0));
	r.mode = BT_MODE_SNAPSHOT;
	cr_assert(eq(int, bt_tracer__request(a, &r, &v), -EBUSY));
	cr_assert(eq(int, r.busy_pid, -9));
	/* ALL ignores the id. */
	r = ok;
	r.target.kind = BT_TARGET_ALL;
	r.target.id = 12345;
	cr_assert(eq(int, bt_tracer__request(a, &r, &v), 0));
}

Test(alloc, view_functions_reject_bad_arguments)
{
	struct bt_tracer *a = join("A", 101, 8 * MiB);
	struct bt_tracer *b = join("B", 102, 8 * MiB);
	struct bt_ds_view *va, *vb;
	struct bt_target none;

	cr_assert(eq(int, req_pt_cpu(a, 0, 64 * KiB, &va), 0));
	cr_assert(eq(int, req_pt_cpu(b, 0, 64 * KiB, &vb), 0));
	cr_assert(eq(int, bt_ds_view__resize(NULL, 64 * KiB), -EINVAL));
	cr_assert(eq(int, bt_ds_view__resize(va, 0), -EINVAL));
	cr_assert(eq(int, bt_ds_view__resize(va, 5 * PAGE), -EINVAL));
	cr_assert(eq(int, bt_ds_view__resize(va, 2 * PAGE), -EINVAL));
	cr_assert(eq(int, bt_ds_view__resize(vb, 64 * KiB), -EPERM));
	cr_assert(eq(int, bt_ds_view__resize(vb, 5 * PAGE), -EINVAL));
	cr_assert(eq(u32, notes.n, 0));
	bt_ds_view__release(NULL);
	cr_assert(eq(ptr, (void *)bt_ds_view__buffers(NULL), NULL));
	cr_assert(not(bt_ds_view__filtered(NULL)));
	cr_assert(not(bt_ds_view__revoked(NULL)));
	cr_assert(not(bt_ds_view__revoked(va)));
	cr_assert(eq(u32, bt_ds_view__nr_parts(NULL), 0));
	cr_assert(eq(u32, bt_ds_view__nr_parts(va), 0));
	errno = 0;
	cr_assert(eq(ptr, bt_ds_view__part(NULL, 0), NULL));
	cr_assert(eq(int, errno, EINVAL));
	cr_assert(eq(ptr, bt_ds_view__part(va, 0), NULL));
	cr_assert(eq(ptr, bt_ds_view__event(NULL), NULL));
	cr_assert(not(eq(ptr, bt_ds_view__event(va), NULL)));
	cr_assert(eq(ptr, bt_ds_view__event(va), bt_ds_view__event(vb)));
	none = bt_ds_view__target(NULL);
	cr_assert(eq(int, none.kind, 0));
	cr_assert(eq(int, none.id, -1));
}

/* ---- The property test -------------------------------------------------- */

#define P_TRACERS	8
#define P_VIEWS		64

struct prop {
	uint64_t seed;
	uint64_t rng;
	int step;
	struct bt_ds *ds;
	struct spy *spy;	/* NULL over bare sim */
	struct bt_pmu *sim;	/* the sim under it, or NULL */
	unsigned written;	/* trace written through the sim's CPU */
	uint32_t nr_cpus;
	struct bt_tracer *t[P_TRACERS];
	pid_t pid[P_TRACERS];
	struct bt_ds_view *v[P_TRACERS][P_VIEWS];
	unsigned nv[P_TRACERS];
	unsigned ops[8];	/* per kind */
	unsigned codes[8];	/* 0, EBUSY, ENOMEM, EINVAL, EPERM, other */
	unsigned notices[4];
	unsigned bad_notices;
	pid_t next_pid;
};

static uint64_t p_rand(struct prop *p, uint64_t n)
{
	return tu_xorshift(&p->rng) % n;
}

static void p_notice(void *ctx, const struct bt_ds_notice *n)
{
	struct prop *p = ctx;
	const struct bt_pmu_buffers *b;

	if (n->kind < 1 || n->kind > 3 || !n->view) {
		p->bad_notices++;
		return;
	}
	p->notices[n->kind]++;
	if (n->kind == BT_DS_NOTICE_REVOKE && !bt_ds_view__revoked(n->view))
		p->bad_notices++;
	if (n->kind == BT_DS_NOTICE_RESIZE) {
		b = bt_ds_view__buffers(n->view);
		if (b && n->bytes != (b->aux ? b->aux_size : b->data_size))
			p->bad_notices++;
		if (!bt_pmu_pages_pow2(n->bytes) || n->bytes < 16 * KiB)
			p->bad_notices++;
	}
}

static void p_code(struct prop *p, int err)
{
	switch (err) {
	case 0: p->codes[0]++; break;
	case -EBUSY: p->codes[1]++; break;
	case -ENOMEM: p->codes[2]++; break;
	case -EINVAL: p->codes[3]++; break;
	case -EPERM: p->codes[4]++; break;
	default: p->codes[5]++; break;
	}
}

static uint64_t sim_locked(struct bt_pmu *sim);

static void p_check(struct prop *p)
{
	uint64_t sum = 0;

	for (int i = 0; i < P_TRACERS; i++) {
		if (!p->t[i])
			continue;
		sum += bt_tracer__charged(p->t[i]);
		cr_assert(le(u64, bt_tracer__charged(p->t[i]),
			     bt_tracer__budget(p->t[i])),
			  "seed %" PRIu64 " step %d: tracer %d over budget",
			  p->seed, p->step, i);
		for (unsigned j = 0; j < p->nv[i]; j++) {
			struct bt_ds_view *v = p->v[i][j];
			const struct bt_pmu_buffers *b;

			if (bt_ds_view__nr_parts(v))
				v = bt_ds_view__part(v, 0);
			b = bt_ds_view__buffers(v);
			cr_assert(eq(int, !b, bt_ds_view__revoked(v)),
				  "seed %" PRIu64 " step %d: buffers of a %s view",
				  p->seed, p->step,
				  b ? "revoked" : "live");
		}
	}
	cr_assert(eq(u64, sum, bt_ds__mapped(p->ds)),
		  "seed %" PRIu64 " step %d: charges %" PRIu64 " != mapped %" PRIu64,
		  p->seed, p->step, sum, bt_ds__mapped(p->ds));
	cr_assert(eq(u32, p->bad_notices, 0), "seed %" PRIu64 " step %d",
		  p->seed, p->step);
	if (p->sim)
		cr_assert(eq(u64, sim_locked(p->sim), bt_ds__mapped(p->ds)),
			  "seed %" PRIu64 " step %d: the sim locked otherwise",
			  p->seed, p->step);
	if (!p->spy)
		return;
	cr_assert(eq(u64, p->spy->mapped, bt_ds__mapped(p->ds)),
		  "seed %" PRIu64 " step %d: backend maps %" PRIu64,
		  p->seed, p->step, p->spy->mapped);
	cr_assert(eq(u32, p->spy->ebusy, 0),
		  "seed %" PRIu64 " step %d: the backend said EBUSY",
		  p->seed, p->step);
	cr_assert(eq(u32, p->spy->conflicts, 0),
		  "seed %" PRIu64 " step %d: two exclusive events share a context",
		  p->seed, p->step);
}

static const uint64_t p_budgets[] = {
	64 * KiB, 100 * KiB, 160 * KiB, 256 * KiB, 600 * KiB, 1 * MiB,
	4 * MiB, UINT64_MAX,
};

static void p_join(struct prop *p, int i)
{
	struct bt_tracer_opts o = { .sz = sizeof(o) };
	char name[16];

	snprintf(name, sizeof(name), "t%d", p->next_pid);
	o.uid = 1000 + (uid_t)p_rand(p, 3);
	o.pid = p->next_pid++;
	o.name = name;
	o.budget = p_budgets[p_rand(p, 8)];
	if (o.budget == UINT64_MAX) {
		o.budget = 0;
		o.unlimited = true;
	}
	p->t[i] = bt_ds__join(p->ds, &o);
	cr_assert(not(eq(ptr, p->t[i], NULL)), "seed %" PRIu64, p->seed);
	p->pid[i] = o.pid;
	p->nv[i] = 0;
}

static void p_leave(struct prop *p, int i)
{
	bt_tracer__leave(p->t[i]);
	p->t[i] = NULL;
	p->nv[i] = 0;
}

static const struct bt_trace_config p_cfgs[] = {
	{ .sz = sizeof(struct bt_trace_config) },
	{ .sz = sizeof(struct bt_trace_config), .user = true, .kernel = true },
	{ .sz = sizeof(struct bt_trace_config), .tsc = true, .mtc = true,
	  .mtc_period = 3 },
	{ .sz = sizeof(struct bt_trace_config), .pebs_config = 0x1c0,
	  .period = 1000 },
};

static void p_request(struct prop *p, int i)
{
	static const uint32_t facs[] = {
		BT_FAC_PT, BT_FAC_PT, BT_FAC_PT, BT_FAC_BTS, BT_FAC_LBR,
		BT_FAC_PEBS, BT_FAC_PEBS, BT_FAC_PTEMU,
	};
	struct bt_ds_request r = { .sz = sizeof(r) };
	struct bt_ds_view *v = NULL;
	uint64_t charged = bt_tracer__charged(p->t[i]);
	uint64_t mapped = bt_ds__mapped(p->ds);
	unsigned opens = p->spy ? p->spy->opens : 0;
	bool invalid = false;
	uint32_t k = (uint32_t)p_rand(p, 10);
	int err, j;

	if (k < 4) {
		r.target.kind = BT_TARGET_TASK;
		r.target.id = 100 + (int32_t)p_rand(p, 4);
	} else if (k < 9) {
		r.target.kind = BT_TARGET_CPU;
		r.target.id = (int32_t)p_rand(p, p->nr_cpus);
	} else {
		r.target.kind = BT_TARGET_ALL;
	}
	r.facility = facs[p_rand(p, 8)];
	r.mode = (uint32_t)p_rand(p, 2);
	r.config = &p_cfgs[p_rand(p, 4)];
	r.aux_bytes = (8 * KiB) << p_rand(p, 8);	/* 8 KiB .. 1 MiB */
	r.data_bytes = p_rand(p, 3) ? 0 : (4 * KiB) << p_rand(p, 5);
	if (p_rand(p, 50) == 0) {
		r.aux_bytes += PAGE;	/* not a power of two */
	}
	invalid = !bt_pmu_pages_pow2(r.aux_bytes) || r.aux_bytes < 16 * KiB ||
		  (r.facility == BT_FAC_PTEMU &&
		   r.target.kind != BT_TARGET_TASK);

	err = bt_tracer__request(p->t[i], &r, &v);
	p_code(p, err);
	if (invalid)
		cr_assert(eq(int, err, -EINVAL), "seed %" PRIu64 " step %d",
			  p->seed, p->step);
	if (err == -EBUSY) {
		/* The allocator decided: it names a live tracer. */
		for (j = 0; j < P_TRACERS; j++) {
			if (p->t[j] && p->pid[j] == r.busy_pid)
				break;
		}
		cr_assert(lt(int, j, P_TRACERS),
			  "seed %" PRIu64 " step %d: EBUSY names pid %d",
			  p->seed, p->step, (int)r.busy_pid);
		cr_assert(eq(int, r.busy_name[0], 't'), "seed %" PRIu64 " step %d",
			  p->seed, p->step);
	}
	if (err == -EBUSY || err == -ENOMEM || invalid) {
		cr_assert(eq(u64, bt_tracer__charged(p->t[i]), charged),
			  "seed %" PRIu64 " step %d", p->seed, p->step);
		cr_assert(eq(u64, bt_ds__mapped(p->ds), mapped));
		if (p->spy)
			cr_assert(eq(u32, p->spy->opens, opens),
				  "seed %" PRIu64 " step %d: asked the kernel",
				  p->seed, p->step);
	}
	if (err) {
		cr_assert(eq(u64, bt_ds__mapped(p->ds), mapped),
			  "seed %" PRIu64 " step %d: a failed request mapped",
			  p->seed, p->step);
		return;
	}
	if (p->nv[i] == P_VIEWS) {
		bt_ds_view__release(v);
		return;
	}
	p->v[i][p->nv[i]++] = v;
}

static struct bt_ds_view *p_pick(struct prop *p, int i, unsigned *idx)
{
	if (!p->nv[i])
		return NULL;
	*idx = (unsigned)p_rand(p, p->nv[i]);
	return p->v[i][*idx];
}

static void p_release(struct prop *p, int i)
{
	unsigned idx;
	struct bt_ds_view *v = p_pick(p, i, &idx);

	if (!v)
		return;
	bt_ds_view__release(v);
	p->v[i][idx] = p->v[i][--p->nv[i]];
}

static void p_resize(struct prop *p, int i)
{
	unsigned idx;
	struct bt_ds_view *v = p_pick(p, i, &idx);
	uint64_t bytes = (8 * KiB) << p_rand(p, 8);
	int err;

	if (!v)
		return;
	if (bt_ds_view__nr_parts(v) && p_rand(p, 4))
		v = bt_ds_view__part(v, (uint32_t)p_rand(p,
						bt_ds_view__nr_parts(v)));
	err = bt_ds_view__resize(v, bytes);
	p_code(p, err);
	if (bytes < 16 * KiB || bt_ds_view__nr_parts(v))
		cr_assert(eq(int, err, -EINVAL), "seed %" PRIu64 " step %d",
			  p->seed, p->step);
}

/* The sim's CPU writes trace into a random view's session. */
static void p_write(struct prop *p, int i)
{
	static unsigned char buf[24576];
	struct bt_pmu_event *ev;
	struct bt_ds_view *v;
	unsigned idx, n;

	v = p_pick(p, i, &idx);
	if (!v)
		return;
	if (bt_ds_view__nr_parts(v))
		v = bt_ds_view__part(v, (uint32_t)p_rand(p,
						bt_ds_view__nr_parts(v)));
	ev = bt_ds_view__event(v);
	if (!ev)
		return;
	n = (unsigned)p_rand(p, sizeof(buf)) + 1;
	for (unsigned k = 0; k < n; k++)
		buf[k] = (unsigned char)tu_xorshift(&p->rng);
	/* Refused (-EINVAL) by events of other facilities; -ENOSPC is full. */
	if (bt_sim_pt_write(p->sim, ev, buf, n) == 0)
		p->written++;
	for (unsigned k = 0; k < n / 24; k++) {
		if (bt_sim_bts_record(p->sim, ev, k + 1, k + 2) == 0)
			p->written++;
	}
}

static void p_run(struct bt_pmu *pmu, struct spy *spy, struct bt_pmu *sim,
		  uint32_t nr_cpus, uint64_t seed, int steps)
{
	static struct prop p;
	struct bt_ds_opts o = { .sz = sizeof(o), .notice = p_notice,
				.notice_ctx = &p, .nr_cpus = nr_cpus };
	int i;

	memset(&p, 0, sizeof(p));
	p.seed = seed;
	p.rng = seed;
	p.spy = spy;
	p.sim = sim;
	p.nr_cpus = nr_cpus;
	p.next_pid = 1000;
	p.ds = bt_ds__new(pmu, &o);
	cr_assert(not(eq(ptr, p.ds, NULL)), "%s", strerror(errno));
	for (p.step = 0; p.step < steps; p.step++) {
		uint64_t k = p_rand(&p, 100);

		i = (int)p_rand(&p, P_TRACERS);
		if (!p.t[i]) {
			p_join(&p, i);
			p.ops[0]++;
		} else if (k < 4) {
			p_leave(&p, i);
			p.ops[1]++;
		} else if (k < 55) {
			p_request(&p, i);
			p.ops[2]++;
		} else if (k < 85) {
			p_release(&p, i);
			p.ops[3]++;
		} else if (sim && k < 92) {
			p_write(&p, i);
			p.ops[5]++;
		} else {
			p_resize(&p, i);
			p.ops[4]++;
		}
		p_check(&p);
	}
	for (i = 0; i < P_TRACERS; i++) {
		if (p.t[i])
			p_leave(&p, i);
		p_check(&p);
	}
	cr_assert(eq(u64, bt_ds__mapped(p.ds), 0), "seed %" PRIu64, seed);
	if (spy) {
		cr_assert(eq(u64, spy->mapped, 0), "seed %" PRIu64, seed);
		cr_assert(eq(u32, spy->live, 0), "seed %" PRIu64, seed);
	}
	bt_ds__free(p.ds);
	cr_log_info("alloc property over %s, seed %" PRIu64 ": %d steps (join %u "
		    "leave %u request %u release %u resize %u write %u); ok %u "
		    "ebusy %u enomem %u einval %u eperm %u other %u; notices "
		    "owner %u resize %u revoke %u; backend errors %u",
		    bt_pmu__ops(spy ? spy->inner : pmu)->name, seed, steps,
		    p.ops[0], p.ops[1], p.ops[2], p.ops[3], p.ops[4], p.ops[5],
		    p.codes[0], p.codes[1], p.codes[2], p.codes[3], p.codes[4],
		    p.codes[5], p.notices[1], p.notices[2], p.notices[3],
		    spy ? spy->errors : 0);
	/* The run exercised what it is meant to. */
	cr_assert(gt(u32, p.codes[1], 0), "seed %" PRIu64 ": no EBUSY", seed);
	cr_assert(gt(u32, p.notices[BT_DS_NOTICE_OWNER], 0));
	cr_assert(gt(u32, p.notices[BT_DS_NOTICE_RESIZE], 0));
	cr_assert(gt(u32, p.notices[BT_DS_NOTICE_REVOKE], 0));
	if (sim)
		cr_assert(gt(u32, p.written, 0));
}

/*
 * The seeds of a property test: $BTRAIL_ALLOC_SEED alone (to replay the
 * one a failure printed), else P_SEEDS seeds from @dflt.
 */
#define P_SEEDS	3

static unsigned p_seeds(uint64_t dflt, uint64_t *seeds)
{
	const char *s = getenv("BTRAIL_ALLOC_SEED");

	if (s && *s) {
		seeds[0] = strtoull(s, NULL, 0);
		return 1;
	}
	for (unsigned i = 0; i < P_SEEDS; i++)
		seeds[i] = dflt + 0x100 * i;
	return P_SEEDS;
}

Test(alloc, property_random_operations_over_the_fake_kernel, .timeout = 120)
{
	uint64_t seeds[P_SEEDS];
	unsigned n = p_seeds(0x5eed0001, seeds);

	for (unsigned i = 0; i < n; i++)
		p_run(&sp->base, sp, NULL, 4, seeds[i], 12000);
}

Test(alloc, property_random_operations_with_mlock_limits_and_failures,
     .timeout = 120)
{
	uint64_t seeds[P_SEEDS];
	unsigned n = p_seeds(0x5eed0002, seeds);

	fk->mlock_limit = 3 * MiB;	/* per uid: EPERM from the kernel */
	fk->fail_rate = 97;		/* and now and then any call fails */
	for (unsigned i = 0; i < n; i++) {
		fk->rng = seeds[i] ^ 0x9e3779b97f4a7c15ull;
		p_run(&sp->base, sp, NULL, 3, seeds[i], 12000);
	}
	cr_assert(gt(u32, sp->errors, 0));
}

/* ---- Over sim ----------------------------------------------------------- */

/* A sim backend of 4 CPUs; @cap: no mlock limit. */
static struct bt_pmu *sim_new(bool cap, uint64_t mlock_kb, uint64_t rlimit)
{
	struct bt_sim_opts so = {
		.sz = sizeof(so), .nr_cpus = 4, .cap_ipc_lock = cap,
		.mlock_kb = mlock_kb, .rlimit_memlock = rlimit,
	};
	struct bt_pmu *sim = bt_pmu__new_sim(&so);

	cr_assert(not(eq(ptr, sim, NULL)), "sim: %s", strerror(errno));
	return sim;
}

/* An allocator straight over @sim (no spy: it can keep data). */
static struct bt_ds *ds_over(struct bt_pmu *sim, struct rec *r)
{
	struct bt_ds_opts o = { .sz = sizeof(o), .notice = rec_fn,
				.notice_ctx = r, .nr_cpus = 4 };
	struct bt_ds *d = bt_ds__new(sim, &o);

	cr_assert(not(eq(ptr, d, NULL)));
	return d;
}

static struct bt_tracer *join_in(struct bt_ds *d, const char *name,
				 pid_t pid, uint64_t budget)
{
	struct bt_tracer_opts o = { .sz = sizeof(o), .uid = 1000, .pid = pid,
				    .name = name, .budget = budget };
	struct bt_tracer *t = bt_ds__join(d, &o);

	cr_assert(not(eq(ptr, t, NULL)));
	return t;
}

static unsigned char pat[65536];

static void pat_init(void)
{
	for (size_t i = 0; i < sizeof(pat); i++)
		pat[i] = (unsigned char)(i % 251 + 1);	/* never 0 (PAD) */
}

/* Owner A, heir B who can pay a 16 KiB AUX only, C to receive notices. */
static void shrink_setup(struct bt_ds *d, uint32_t fac, uint32_t mode,
			 int32_t tgt, struct bt_tracer **a,
			 struct bt_ds_view **va, struct bt_ds_view **vb)
{
	struct bt_ds_request r = req_of(fac == BT_FAC_PTEMU ? BT_TARGET_TASK :
					BT_TARGET_CPU, tgt, fac, 64 * KiB, 0,
					mode, NULL);
	struct bt_tracer *b;

	*a = join_in(d, "A", 101, 1 * MiB);
	b = join_in(d, "B", 102, 86016);
	cr_assert(eq(int, bt_tracer__request(*a, &r, va), 0));
	cr_assert(eq(int, bt_tracer__request(b, &r, vb), 0));
	cr_assert(eq(u64, bt_ds_view__buffers(*va)->aux_size, 64 * KiB));
}

Test(alloc, a_snapshot_shrink_on_sim_keeps_the_newest_pt_bytes)
{
	struct bt_pmu *sim = sim_new(true, 0, 0);
	struct rec r = { 0 };
	struct bt_ds *d = ds_over(sim, &r);
	struct bt_ds_view *va, *vb;
	const struct bt_pmu_buffers *b;
	struct bt_tracer *a;

	pat_init();
	shrink_setup(d, BT_FAC_PT, BT_MODE_SNAPSHOT, 0, &a, &va, &vb);
	cr_assert(eq(int, bt_sim_pt_write(sim, bt_ds_view__event(va), pat,
					  40000), 0));
	bt_tracer__leave(a);
	b = bt_ds_view__buffers(vb);
	cr_assert(eq(u64, b->aux_size, 16 * KiB));
	cr_assert(eq(u64, b->mapped, 86016));
	/* The ring is full: it starts at aux_head (0) with byte 23,616. */
	cr_assert(eq(u64, __atomic_load_n(&b->page->aux_head, __ATOMIC_ACQUIRE),
		     0));
	cr_assert(eq(int, memcmp(b->aux, pat + 40000 - 16384, 16384), 0));
	cr_assert(eq(u64, rec_find(&r, BT_DS_NOTICE_RESIZE, vb)->bytes, 16384));
	bt_ds__free(d);
	bt_pmu__free(sim);
}

Test(alloc, a_snapshot_shrink_on_sim_keeps_less_than_the_ring_as_it_was)
{
	struct bt_pmu *sim = sim_new(true, 0, 0);
	struct rec r = { 0 };
	struct bt_ds *d = ds_over(sim, &r);
	struct bt_ds_view *va, *vb;
	const struct bt_pmu_buffers *b;
	struct bt_tracer *a;

	pat_init();
	shrink_setup(d, BT_FAC_PTEMU, BT_MODE_SNAPSHOT, 77, &a, &va, &vb);
	cr_assert(eq(int, bt_sim_pt_write(sim, bt_ds_view__event(va), pat,
					  10000), 0));
	bt_ds_view__release(va);
	b = bt_ds_view__buffers(vb);
	cr_assert(eq(u64, b->aux_size, 16 * KiB));
	cr_assert(eq(u64, __atomic_load_n(&b->page->aux_head, __ATOMIC_ACQUIRE),
		     10000));
	cr_assert(eq(int, memcmp(b->aux, pat, 10000), 0));
	cr_assert(tu_all_zero(b->aux + 10000, 16384 - 10000));
	bt_ds__free(d);
	bt_pmu__free(sim);
}

Test(alloc, a_stream_shrink_on_sim_keeps_the_newest_unread_bytes)
{
	struct bt_pmu *sim = sim_new(true, 0, 0);
	struct rec r = { 0 };
	struct bt_ds *d = ds_over(sim, &r);
	struct bt_ds_view *va, *vb;
	const struct bt_pmu_buffers *b;
	struct bt_tracer *a;

	pat_init();
	shrink_setup(d, BT_FAC_PT, BT_MODE_STREAM, 1, &a, &va, &vb);
	b = bt_ds_view__buffers(va);
	cr_assert(eq(int, bt_sim_pt_write(sim, bt_ds_view__event(va), pat,
					  40000), 0));
	/* The consumer read the first 30,000 bytes. */
	__atomic_store_n(&b->page->aux_tail, 30000, __ATOMIC_RELEASE);
	bt_tracer__leave(a);
	b = bt_ds_view__buffers(vb);
	cr_assert(eq(u64, b->aux_size, 16 * KiB));
	/* Unread 10,000; half the new buffer (8 KiB) is what can be kept. */
	cr_assert(eq(u64, __atomic_load_n(&b->page->aux_head, __ATOMIC_ACQUIRE),
		     8192));
	cr_assert(eq(u64, b->page->aux_tail, 0));
	cr_assert(eq(int, memcmp(b->aux, pat + 40000 - 8192, 8192), 0));
	bt_ds__free(d);
	bt_pmu__free(sim);
}

/* The records of @b between 0 and aux_head, padding skipped. */
static unsigned bts_read(const struct bt_pmu_buffers *b,
			 struct bt_sim_bts_record *out, unsigned max)
{
	uint64_t head = __atomic_load_n(&b->page->aux_head, __ATOMIC_ACQUIRE);
	unsigned n = 0;

	for (uint64_t off = 0; off + 24 <= head && n < max; off += 24) {
		memcpy(&out[n], b->aux + off, 24);
		if (out[n].from || out[n].to)
			n++;
	}
	return n;
}

/* A snapshot ring's records, oldest first: from aux_head round the ring. */
static unsigned bts_read_ring(const struct bt_pmu_buffers *b,
			      struct bt_sim_bts_record *out, unsigned max)
{
	uint64_t head = __atomic_load_n(&b->page->aux_head, __ATOMIC_ACQUIRE);
	uint64_t end = b->aux_size - b->aux_size % 24, off = head;
	unsigned n = 0;

	for (uint64_t k = 0; k < end / 24 && n < max; k++) {
		memcpy(&out[n], b->aux + off, 24);
		if (out[n].from || out[n].to)
			n++;
		off = off + 24 < end ? off + 24 : 0;
	}
	return n;
}

Test(alloc, a_stream_shrink_on_sim_keeps_the_newest_bts_records)
{
	struct bt_pmu *sim = sim_new(true, 0, 0);
	struct rec r = { 0 };
	struct bt_ds *d = ds_over(sim, &r);
	struct bt_ds_view *va, *vb;
	static struct bt_sim_bts_record got[1024];
	struct bt_tracer *a;
	unsigned n;

	shrink_setup(d, BT_FAC_BTS, BT_MODE_STREAM, 2, &a, &va, &vb);
	for (unsigned i = 0; i < 1000; i++)
		cr_assert(eq(int, bt_sim_bts_record(sim, bt_ds_view__event(va),
						    i + 1, 0x1000 + i), 0));
	bt_tracer__leave(a);
	cr_assert(eq(u64, bt_ds_view__buffers(vb)->aux_size, 16 * KiB));
	n = bts_read(bt_ds_view__buffers(vb), got, 1024);
	/* 8 KiB of room: the newest 341 records, in order. */
	cr_assert(eq(u32, n, 341));
	for (unsigned k = 0; k < n; k++) {
		cr_assert(eq(u64, got[k].from, 1000 - n + 1 + k));
		cr_assert(eq(u64, got[k].to, 0x1000 + 1000 - n + k));
	}
	bt_ds__free(d);
	bt_pmu__free(sim);
}

Test(alloc, a_snapshot_shrink_on_sim_keeps_the_newest_bts_records)
{
	struct bt_pmu *sim = sim_new(true, 0, 0);
	struct rec r = { 0 };
	struct bt_ds *d = ds_over(sim, &r);
	struct bt_ds_view *va, *vb;
	static struct bt_sim_bts_record got[1024];
	struct bt_tracer *a;
	unsigned n;

	shrink_setup(d, BT_FAC_BTS, BT_MODE_SNAPSHOT, 3, &a, &va, &vb);
	/* 5,000 records wrap the 64 KiB ring (2,730 records) once. */
	for (unsigned i = 0; i < 5000; i++)
		cr_assert(eq(int, bt_sim_bts_record(sim, bt_ds_view__event(va),
						    i + 1, 0x1000 + i), 0));
	bt_tracer__leave(a);
	cr_assert(eq(u64, bt_ds_view__buffers(vb)->aux_size, 16 * KiB));
	n = bts_read_ring(bt_ds_view__buffers(vb), got, 1024);
	/* 16 KiB holds 682 whole records; the ring is full. */
	cr_assert(eq(u32, n, 682));
	for (unsigned k = 0; k < n; k++)
		cr_assert(eq(u64, got[k].from, 5000 - n + 1 + k));
	bt_ds__free(d);
	bt_pmu__free(sim);
}

Test(alloc, the_charges_are_what_the_sim_kernel_locked)
{
	struct bt_pmu *sim = sim_new(false, 516, 64 * MiB);
	struct rec r = { 0 };
	struct bt_ds *d = ds_over(sim, &r);
	struct bt_tracer *a = join_in(d, "A", 101, 16 * MiB);
	struct bt_ds_request q = req_of(BT_TARGET_ALL, 0, BT_FAC_PT, 512 * KiB,
					0, BT_MODE_SNAPSHOT, NULL);
	struct bt_sim_mlock m;
	struct bt_ds_view *v, *w;

	cr_assert(eq(int, bt_tracer__request(a, &q, &v), 0));
	q = req_of(BT_TARGET_CPU, 1, BT_FAC_PEBS, 64 * KiB, 0, BT_MODE_STREAM,
		   NULL);
	cr_assert(eq(int, bt_tracer__request(a, &q, &w), 0));
	cr_assert(eq(u64, bt_tracer__charged(a), 4 * 593920 + 69632));
	cr_assert(eq(int, bt_sim_mlock(sim, 1000, &m), 0));
	cr_assert(eq(u64, m.user_locked + m.pinned, bt_ds__mapped(d)));
	cr_assert(eq(int, bt_ds_view__resize(bt_ds_view__part(v, 2), 64 * KiB),
		     0));
	cr_assert(eq(int, bt_sim_mlock(sim, 1000, &m), 0));
	cr_assert(eq(u64, m.user_locked + m.pinned, bt_ds__mapped(d)));
	cr_assert(eq(u64, bt_ds__mapped(d), 3 * 593920 + 135168 + 69632));
	bt_tracer__leave(a);
	cr_assert(eq(int, bt_sim_mlock(sim, 1000, &m), 0));
	cr_assert(eq(u64, m.user_locked + m.pinned, 0));
	bt_ds__free(d);
	bt_pmu__free(sim);
}

/* Sum of what the sim locked for the uids the property test uses. */
static uint64_t sim_locked(struct bt_pmu *sim)
{
	struct bt_sim_mlock m;
	uint64_t sum = 0;

	for (uid_t u = 1000; u < 1003; u++) {
		cr_assert(eq(int, bt_sim_mlock(sim, u, &m), 0));
		sum += m.user_locked;
	}
	return sum + m.pinned;
}

Test(alloc, property_random_operations_over_sim, .timeout = 300)
{
	uint64_t seeds[P_SEEDS];
	unsigned n = p_seeds(0x5eed0003, seeds);

	for (unsigned i = 0; i < n; i++) {
		struct spy *s = spy_new(sim_new(true, 0, 0));

		p_run(&s->base, s, s->inner, 4, seeds[i], 12000);
		cr_assert(eq(u64, sim_locked(s->inner), 0));
		bt_pmu__free(&s->base);
	}
}

Test(alloc, property_random_operations_over_sim_with_its_mlock_limits,
     .timeout = 300)
{
	uint64_t seeds[P_SEEDS];
	unsigned n = p_seeds(0x5eed0004, seeds), errors = 0;

	for (unsigned i = 0; i < n; i++) {
		/* 64 KiB per CPU and uid, then 2 MiB for this process: EPERM */
		struct spy *s = spy_new(sim_new(false, 64, 2 * MiB));

		p_run(&s->base, s, s->inner, 4, seeds[i], 12000);
		errors += s->errors;
		cr_assert(eq(u64, sim_locked(s->inner), 0));
		bt_pmu__free(&s->base);
	}
	cr_assert(gt(u32, errors, 0));
}

Test(alloc, property_random_operations_over_sim_keeping_data, .timeout = 300)
{
	uint64_t seeds[P_SEEDS];
	unsigned n = p_seeds(0x5eed0005, seeds);

	for (unsigned i = 0; i < n; i++) {
		struct bt_pmu *sim = sim_new(true, 0, 0);

		p_run(sim, NULL, sim, 4, seeds[i], 12000);
		cr_assert(eq(u64, sim_locked(sim), 0));
		bt_pmu__free(sim);
	}
}
