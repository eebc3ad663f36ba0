// SPDX-License-Identifier: BSD-3-Clause
/*
 * The views of `btrail script BUNDLE` and `btrail export`, on bundles of
 * real programs (tests/progs loops, calltable, recurse) recorded with
 * `btrail record -e step|pt-emu --start-at main`:
 *
 *   - --insn: the instruction addresses, as (binary, file offset) so that
 *     address-space randomisation does not matter, equal those gdb visits
 *     single-stepping the same program from main (`stepi`, `x/i $pc`), in
 *     order, for the first 2000 instructions;
 *   - --calls: the nesting is consistent (a call goes one deeper, a
 *     return one shallower and back into the function that made the
 *     call, the depth is never negative) and names what the program
 *     calls (calltable's four handlers, recurse's 100 levels of depth());
 *     two threads of one stream (crash_thread) get a call stack each;
 *   - --branches: one line per bt.branch record of a step bundle;
 *   - JSON lines parse (json-c) and follow docs/script-json.md;
 *   - export: chrome is JSON by the Trace Event Format's rules (complete
 *     events with name, ph, ts, dur >= 0, pid, tid; spans of a thread
 *     nest), ctf is read by babeltrace2, json is JSON Lines;
 *   - a missing bundle fails with status 1, a malformed one with 3.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <btrail/bundle.h>
#include <btrail/events.h>

#include "helpers/recordutil.h"
#include "helpers/testutil.h"

#define GDB_STEPS	2000

/* Record @p with facility @fac from main into a fresh bundle. */
static void record(struct ru_rec *r, const char *fac, const char *p)
{
	ru_record(r, "views", fac, p, true);
}

/* Run btrail with @args (NULL-terminated); stdout and status. */
static int btrail(char **out, char **err, const char *const *args)
{
	char *argv[16];
	size_t n = 0;

	argv[n++] = (char *)ru_bin();
	while (*args && n < 15)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	return tu_run(argv, out, err);
}

/* Parse every line of @text; calls @fn per object. */
static size_t each_line(const char *text,
			void (*fn)(json_object *o, void *ctx), void *ctx)
{
	const char *p = text;
	size_t n = 0;

	while (*p) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char *line = strndup(p, len);
		json_object *o;

		cr_assert(ne(ptr, line, NULL));
		if (len) {
			o = json_tokener_parse(line);
			cr_assert(ne(ptr, o, NULL), "line %zu is not JSON: %s",
				  n + 1, line);
			cr_assert(json_object_is_type(o, json_type_object),
				  "line %zu: %s", n + 1, line);
			fn(o, ctx);
			json_object_put(o);
			n++;
		}
		free(line);
		p += len + (e ? 1 : 0);
	}
	return n;
}

static json_object *member(json_object *o, const char *k, json_type t)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, k, &v), "no \"%s\" in %s", k,
		  json_object_to_json_string(o));
	cr_assert(json_object_is_type(v, t), "\"%s\" has the wrong type in %s",
		  k, json_object_to_json_string(o));
	return v;
}

static const char *mstr(json_object *o, const char *k)
{
	return json_object_get_string(member(o, k, json_type_string));
}

static int64_t mint(json_object *o, const char *k)
{
	return json_object_get_int64(member(o, k, json_type_int));
}

static uint64_t hexstr(json_object *o, const char *k)
{
	const char *s = mstr(o, k);

	cr_assert(eq(int, strncmp(s, "0x", 2), 0), "%s: %s", k, s);
	return strtoull(s, NULL, 16);
}

/* ---- Addresses as (binary, file offset) --------------------------------- */

struct map {
	uint64_t start, end, pgoff;
	char name[64];
};

struct maps {
	struct map m[64];
	size_t n;
};

static const char *base(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static void set_name(struct map *m, const char *path)
{
	const char *b = base(path);
	size_t n = strnlen(b, sizeof(m->name) - 1);

	memcpy(m->name, b, n);
	m->name[n] = '\0';
}

/* "name+0xoffset", or "?+0xaddr" outside every mapping. */
static void place(const struct maps *ms, uint64_t addr, char *buf, size_t len)
{
	for (size_t i = 0; i < ms->n; i++) {
		const struct map *m = &ms->m[i];

		if (addr >= m->start && addr < m->end) {
			snprintf(buf, len, "%s+0x%" PRIx64, m->name,
				 addr - m->start + m->pgoff);
			return;
		}
	}
	snprintf(buf, len, "?+0x%" PRIx64, addr);
}

/* The executable mappings btrail.json's images name. */
static void bundle_maps(const char *bundle, struct maps *ms)
{
	char path[PATH_MAX];
	json_object *j, *images;

	memset(ms, 0, sizeof(*ms));
	snprintf(path, sizeof(path), "%s/btrail.json", bundle);
	j = json_object_from_file(path);
	cr_assert(ne(ptr, j, NULL), "%s", path);
	images = member(j, "images", json_type_array);
	for (size_t i = 0; i < json_object_array_length(images); i++) {
		json_object *im = json_object_array_get_idx(images, i);
		json_object *rg = member(im, "ranges", json_type_array);

		for (size_t k = 0; k < json_object_array_length(rg) &&
				   ms->n < 64; k++) {
			json_object *r = json_object_array_get_idx(rg, k);
			struct map *m = &ms->m[ms->n++];

			m->start = hexstr(r, "start");
			m->end = hexstr(r, "end");
			m->pgoff = hexstr(r, "pgoff");
			set_name(m, mstr(im, "path"));
		}
	}
	json_object_put(j);
}

struct seq {
	char (*v)[96];
	size_t n, cap;
};

/* Append, dropping repeats: gdb stops at each iteration of `rep movsb`. */
static void seq_add(struct seq *s, const char *p)
{
	if (s->n && !strcmp(s->v[s->n - 1], p))
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 4096;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		cr_assert(ne(ptr, s->v, NULL));
	}
	snprintf(s->v[s->n++], sizeof(s->v[0]), "%s", p);
}

/* gdb single-steps @p from main: the places of GDB_STEPS instructions. */
static void gdb_steps(const char *p, const char *dir, struct seq *s)
{
	char cmd[PATH_MAX], path[PATH_MAX], line[512];
	struct maps ms = { .n = 0 };
	char *argv[] = { "/usr/bin/gdb", "-batch", "-nx", "-x", cmd,
			 (char *)p, NULL };
	char *out = NULL, *err = NULL, *save = NULL;
	FILE *f;

	if (access(argv[0], X_OK))
		cr_skip_test("gdb is not installed");
	snprintf(cmd, sizeof(cmd), "%s/steps.gdb", dir);
	f = fopen(cmd, "w");
	cr_assert(ne(ptr, f, NULL));
	fprintf(f, "set pagination off\nset confirm off\nset width 0\n"
		"break *main\nrun\ninfo proc mappings\nset $i = 0\n"
		"while $i < %d\nx/i $pc\nstepi\nset $i = $i + 1\nend\n",
		GDB_STEPS);
	fclose(f);
	cr_assert(eq(int, tu_run(argv, &out, &err), 0), "gdb: %s", err);
	for (char *l = strtok_r(out, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		unsigned long long a, e, sz, off;
		char perms[8];

		if (sscanf(l, " 0x%llx 0x%llx 0x%llx 0x%llx %7s %255s", &a,
			   &e, &sz, &off, perms, path) == 6 &&
		    strchr(perms, 'x') && ms.n < 64) {
			ms.m[ms.n] = (struct map){ a, e, off, "" };
			set_name(&ms.m[ms.n], path);
			ms.n++;
		} else if (strstr(l, "=> 0x")) {
			/* after "0x... <tab>" when the source line's
			 * message went to stderr */
			place(&ms, strtoull(strstr(l, "=> 0x") + 3, NULL, 16),
			      line, sizeof(line));
			seq_add(s, line);
		}
	}
	cr_assert(ms.n >= 2, "no mappings in gdb's output:\n%s", out);
	free(out);
	free(err);
}

struct insn_ctx {
	struct maps ms;
	struct seq s;
	size_t insns, events;
};

static const char *const kinds[] = {
	"insn", "branch", "event", "gap", "error", "trigger",
};
static const char *const iclasses[] = {
	"other", "jcc", "jmp", "jmp_ind", "call", "call_ind", "ret", "far",
};

static bool one_of(const char *s, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(s, set[i]))
			return true;
	}
	return false;
}

/* The fields docs/script-json.md promises for an item line. */
static void check_item(json_object *o)
{
	const char *k = mstr(o, "kind");
	json_object *v = NULL;

	cr_assert(one_of(k, kinds, 6), "kind %s", k);
	mint(o, "stream");
	mint(o, "cpu");
	mint(o, "pid");
	mint(o, "tid");
	cr_assert(mint(o, "time") >= 0);
	if (!strcmp(k, "insn")) {
		int64_t len = mint(o, "len");

		hexstr(o, "ip");
		cr_assert(len >= 1 && len <= 15, "len %" PRId64, len);
		cr_assert(eq(sz, strlen(mstr(o, "bytes")), (size_t)len * 2));
		cr_assert(one_of(mstr(o, "iclass"), iclasses, 8));
		cr_assert(mint(o, "sym_off") >= 0);
		cr_assert(json_object_object_get_ex(o, "sym", &v));
		cr_assert(v == NULL ||
			  json_object_is_type(v, json_type_string));
		cr_assert(strlen(mstr(o, "asm")) > 0);
	} else if (!strcmp(k, "branch")) {
		hexstr(o, "from");
		hexstr(o, "to");
		cr_assert(one_of(mstr(o, "iclass"), iclasses, 8));
		cr_assert(mint(o, "from_sym_off") >= 0);
		cr_assert(mint(o, "to_sym_off") >= 0);
	} else {
		mstr(o, "text");
	}
}

static void insn_line(json_object *o, void *vctx)
{
	struct insn_ctx *c = vctx;
	char p[96];

	check_item(o);
	if (strcmp(mstr(o, "kind"), "insn")) {
		c->events++;
		/* the flow is broken here: resynchronise after it */
		if (!strcmp(mstr(o, "kind"), "gap") ||
		    !strcmp(mstr(o, "kind"), "error"))
			seq_add(&c->s, "GAP");
		return;
	}
	c->insns++;
	place(&c->ms, hexstr(o, "ip"), p, sizeof(p));
	seq_add(&c->s, p);
}

static void insn_vs_gdb(const char *fac, const char *p)
{
	const char *args[] = { "script", NULL, "--insn", "--format", "json",
			       NULL };
	struct insn_ctx c;
	struct seq g = { 0 };
	char *out = NULL, *err = NULL;
	size_t n = 0, j, gaps = 0;
	bool resync = false;
	struct ru_rec r;

	memset(&c, 0, sizeof(c));
	record(&r, fac, p);
	args[1] = r.bundle;
	cr_assert(eq(int, btrail(&out, &err, args), 0), "%s", err);
	bundle_maps(r.bundle, &c.ms);
	each_line(out, insn_line, &c);
	gdb_steps(ru_prog(p), r.dir, &g);
	/*
	 * gdb starts at main's first instruction; a pt-emu trace too, a
	 * step trace at its first branch record, a few instructions on.
	 * Runs of instructions between gaps (code the reconstruction could
	 * not walk: AVX-512 in glibc that capstone 4 cannot decode) must
	 * be gdb's, in order; after a gap the run resumes further on in
	 * gdb's sequence.
	 */
	cr_assert(c.s.n > 100, "%zu instructions", c.s.n);
	for (j = 0; j < 32 && j < g.n; j++) {
		if (!strcmp(g.v[j], c.s.v[0]))
			break;
	}
	cr_assert(lt(sz, j, 32), "the trace starts at %s, not near main",
		  c.s.v[0]);
	for (size_t i = 0; i < c.s.n && j < g.n; i++) {
		if (!strcmp(c.s.v[i], "GAP")) {
			resync = true;
			gaps++;
			continue;
		}
		if (resync) {
			size_t k = j;

			while (k < g.n && strcmp(g.v[k], c.s.v[i]))
				k++;
			if (k == g.n)
				break;	/* past gdb's window */
			j = k;
			resync = false;
		}
		cr_assert(eq(str, c.s.v[i], g.v[j]),
			  "%s -e %s: instruction %zu (gdb's %zu) differs", p,
			  fac, i, j);
		j++;
		n++;
	}
	cr_assert(n >= 1000 || j == g.n, "only %zu compared", n);
	cr_assert(lt(sz, gaps, 4), "%zu gaps", gaps);
	free(c.s.v);
	free(g.v);
	free(out);
	free(err);
	ru_rec_free(&r);
}

Test(views, insn_gdb_loops_step, .timeout = 120)
{
	insn_vs_gdb("step", "loops");
}

Test(views, insn_gdb_loops_ptemu, .timeout = 120)
{
	insn_vs_gdb("pt-emu", "loops");
}

Test(views, insn_gdb_calltable_step, .timeout = 120)
{
	insn_vs_gdb("step", "calltable");
}

Test(views, insn_gdb_calltable_ptemu, .timeout = 120)
{
	insn_vs_gdb("pt-emu", "calltable");
}

Test(views, insn_gdb_recurse_step, .timeout = 120)
{
	insn_vs_gdb("step", "recurse");
}

Test(views, insn_gdb_recurse_ptemu, .timeout = 120)
{
	insn_vs_gdb("pt-emu", "recurse");
}

/* ---- --calls ------------------------------------------------------------ */

struct calls_ctx {
	int64_t tid;		/* threads come one after the other */
	size_t threads;
	bool saw_worker;
	char stack[512][64];	/* the caller of each open call */
	size_t sp;
	int64_t depth;
	bool started;
	size_t lines, calls, returns;
	int handlers;		/* op_add..op_xor seen called, bit mask */
	int64_t max_depth_fn;	/* deepest "depth" */
	bool saw_fib;
	char cur[64];
};

static void calls_line(json_object *o, void *vctx)
{
	struct calls_ctx *c = vctx;
	const char *k = mstr(o, "kind");
	int64_t d = mint(o, "depth");
	const char *how, *fn;
	json_object *f = NULL;

	c->lines++;
	cr_assert(d >= 0, "negative depth: %s", json_object_to_json_string(o));
	if (!c->threads || mint(o, "tid") != c->tid) {
		/* a new thread: its own call stack */
		c->threads++;
		c->tid = mint(o, "tid");
		c->sp = 0;
		c->started = false;
	}
	if (strcmp(k, "call")) {
		mstr(o, "text");
		return;
	}
	how = mstr(o, "how");
	/* "func": a string, or null where no symbol is known */
	cr_assert(json_object_object_get_ex(o, "func", &f));
	fn = f ? json_object_get_string(f) : "??";
	hexstr(o, "ip");
	cr_assert(mint(o, "first") >= 1);
	cr_assert(mint(o, "last") >= mint(o, "first"));
	if (!c->started || !strcmp(how, "start")) {
		c->started = true;
	} else if (!strcmp(how, "call")) {
		cr_assert(eq(i64, d, c->depth + 1), "call: %s",
			  json_object_to_json_string(o));
		cr_assert(c->sp < 512);
		snprintf(c->stack[c->sp++], 64, "%s", c->cur);
		c->calls++;
	} else if (!strcmp(how, "return")) {
		cr_assert(eq(i64, d, c->depth - 1), "return: %s",
			  json_object_to_json_string(o));
		/* back into the function that made the innermost call
		 * (where both have names: libc code without a symbol
		 * is "??", and its cold parts lie outside their symbol) */
		if (c->sp && strcmp(c->stack[--c->sp], "??") &&
		    strcmp(fn, "??"))
			cr_assert(eq(str, c->stack[c->sp], (char *)fn),
				  "return: %s", json_object_to_json_string(o));
		c->returns++;
	} else if (!strcmp(how, "resume") && d < c->depth) {
		/* after a gap that hid returns: back into a caller */
		for (int64_t up = d; up < c->depth; up++) {
			cr_assert(c->sp > 0);
			c->sp--;
		}
		cr_assert(eq(str, c->stack[c->sp], (char *)fn), "resume: %s",
			  json_object_to_json_string(o));
	} else {
		cr_assert(eq(i64, d, c->depth), "%s: %s", how,
			  json_object_to_json_string(o));
	}
	if (!strcmp(how, "call")) {
		static const char *const h[] = { "op_add", "op_sub", "op_mul",
						 "op_xor" };

		for (int i = 0; i < 4; i++) {
			if (!strcmp(fn, h[i]))
				c->handlers |= 1 << i;
		}
		if (!strcmp(fn, "fib"))
			c->saw_fib = true;
		if (!strcmp(fn, "fill"))
			c->saw_worker = true;
	}
	if (!strcmp(fn, "depth") && (int64_t)c->sp > c->max_depth_fn)
		c->max_depth_fn = (int64_t)c->sp;
	c->depth = d;
	snprintf(c->cur, sizeof(c->cur), "%s", fn);
}

static void chrome_check(const char *file, const char *must);

static void calls_check(const char *fac, const char *p, struct calls_ctx *c,
			const char *fn)
{
	char want[64];

	const char *args[] = { "script", NULL, "--calls", "--format", "json",
			       NULL };
	const char *targs[] = { "script", NULL, "--calls", NULL };
	char *out = NULL, *err = NULL;
	struct ru_rec r;

	memset(c, 0, sizeof(*c));
	record(&r, fac, p);
	args[1] = targs[1] = r.bundle;
	cr_assert(eq(int, btrail(&out, &err, args), 0), "%s", err);
	each_line(out, calls_line, c);
	cr_assert(c->calls > 0 && c->returns > 0);
	free(out);
	free(err);
	/* the text form: a numbered line per segment, "inst A,B" */
	cr_assert(eq(int, btrail(&out, &err, targs), 0), "%s", err);
	cr_assert(ne(ptr, strstr(out, "\tinst 1,"), NULL), "%s", out);
	snprintf(want, sizeof(want), "  %s\tinst ", fn);
	cr_assert(ne(ptr, strstr(out, want), NULL), "%s", out);
	free(out);
	free(err);
	ru_rec_free(&r);
}

Test(views, calls_calltable, .timeout = 120)
{
	struct calls_ctx c;

	calls_check("step", "calltable", &c, "work");
	cr_assert(eq(int, c.handlers, 0xf), "handlers seen: %#x", c.handlers);
	calls_check("pt-emu", "calltable", &c, "work");
	cr_assert(eq(int, c.handlers, 0xf), "handlers seen: %#x", c.handlers);
}

Test(views, calls_recurse, .timeout = 120)
{
	struct calls_ctx c;

	calls_check("step", "recurse", &c, "work");
	cr_assert(c.saw_fib);
	/* work -> depth(100) -> ... -> depth(0): 101 levels below work */
	cr_assert(c.max_depth_fn >= 101, "depth() nested %" PRId64 " deep",
		  c.max_depth_fn);
	calls_check("pt-emu", "recurse", &c, "work");
	cr_assert(c.saw_fib);
	cr_assert(c.max_depth_fn >= 101, "depth() nested %" PRId64 " deep",
		  c.max_depth_fn);
}

Test(views, calls_threads, .timeout = 120)
{
	char out[PATH_MAX], *so = NULL, *se = NULL;
	const char *args[] = { "export", NULL, "--format", "chrome", "-o",
			       out, NULL };
	struct calls_ctx c;
	struct ru_rec r;

	/* two threads in one stream; the second dies in store() */
	calls_check("pt-emu", "crash_thread", &c, "fill");
	cr_assert(ge(sz, c.threads, 2), "%zu threads", c.threads);
	cr_assert(c.saw_worker);
	record(&r, "pt-emu", "crash_thread");
	args[1] = r.bundle;
	snprintf(out, sizeof(out), "%s/trace.json", r.dir);
	cr_assert(eq(int, btrail(&so, &se, args), 0), "%s", se);
	chrome_check(out, "fill");
	free(so);
	free(se);
	ru_rec_free(&r);
}

/* ---- --branches --------------------------------------------------------- */

static size_t bundle_branch_records(const char *dir)
{
	struct bt_bundle_event ev;
	struct bt_bundle *b;
	size_t n = 0;
	int r;

	cr_assert(eq(int, bt_bundle__open(dir, &b), 0));
	for (uint32_t i = 0; i < bt_bundle__streams(b); i++) {
		while ((r = bt_bundle__next(b, i, &ev)) == 1) {
			if (ev.id == BT_EVID_BRANCH)
				n += ev.v[BT_BRANCH_RECS].len / BT_BREC_SIZE;
		}
		cr_assert(eq(int, r, 0));
	}
	bt_bundle__close(b);
	return n;
}

struct br_ctx {
	size_t branches, calls;
};

static void br_line(json_object *o, void *vctx)
{
	struct br_ctx *c = vctx;

	check_item(o);
	cr_assert(ne(int, strcmp(mstr(o, "kind"), "insn"), 0));
	if (!strcmp(mstr(o, "kind"), "branch")) {
		c->branches++;
		if (!strcmp(mstr(o, "iclass"), "call"))
			c->calls++;
	}
}

Test(views, branches_step, .timeout = 120)
{
	const char *args[] = { "script", NULL, "--branches", "--format",
			       "json", NULL };
	const char *targs[] = { "script", NULL, "--branches", NULL };
	struct br_ctx c = { 0 };
	char *out = NULL, *err = NULL;
	size_t recs, arrows = 0;
	struct ru_rec r;

	record(&r, "step", "calltable");
	recs = bundle_branch_records(r.bundle);
	cr_assert(recs > 100);
	args[1] = targs[1] = r.bundle;
	cr_assert(eq(int, btrail(&out, &err, args), 0), "%s", err);
	each_line(out, br_line, &c);
	cr_assert(eq(sz, c.branches, recs));
	cr_assert(c.calls > 0);
	free(out);
	free(err);
	cr_assert(eq(int, btrail(&out, &err, targs), 0), "%s", err);
	for (const char *p = out; (p = strstr(p, ") -> 0x")); p++)
		arrows++;
	cr_assert(eq(sz, arrows, recs));
	cr_assert(ne(ptr, strstr(out, "(work"), NULL), "%s", out);
	free(out);
	free(err);
	ru_rec_free(&r);
}

/* ---- export ------------------------------------------------------------- */

struct span {
	double ts, dur;
	int64_t pid, tid;
	const char *name;
};

static int by_start(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	if (x->tid != y->tid)
		return x->tid < y->tid ? -1 : 1;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	/* the same start: the longer one is the parent */
	return x->dur > y->dur ? -1 : x->dur < y->dur;
}

static double num(json_object *o, const char *k)
{
	json_object *v = NULL;

	cr_assert(json_object_object_get_ex(o, k, &v), "no %s", k);
	cr_assert(json_object_is_type(v, json_type_int) ||
		  json_object_is_type(v, json_type_double), "%s", k);
	return json_object_get_double(v);
}

static void chrome_check(const char *file, const char *must)
{
	json_object *j = json_object_from_file(file), *evs;
	struct span *sp, *stack[4096];
	size_t n = 0, len, depth = 0, names = 0;
	bool found = false;

	cr_assert(ne(ptr, j, NULL), "%s is not JSON", file);
	evs = member(j, "traceEvents", json_type_array);
	len = json_object_array_length(evs);
	sp = calloc(len + 1, sizeof(*sp));
	cr_assert(ne(ptr, sp, NULL));
	for (size_t i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(evs, i);
		const char *ph = mstr(e, "ph");

		mint(e, "pid");
		mint(e, "tid");
		mstr(e, "name");
		if (!strcmp(ph, "M")) {
			member(member(e, "args", json_type_object), "name",
			       json_type_string);
			names++;
			continue;
		}
		if (strcmp(ph, "X"))
			continue;
		sp[n].ts = num(e, "ts");
		sp[n].dur = num(e, "dur");
		cr_assert(sp[n].dur >= 0, "dur < 0");
		sp[n].pid = mint(e, "pid");
		sp[n].tid = mint(e, "tid");
		sp[n].name = mstr(e, "name");
		if (!strcmp(sp[n].name, must))
			found = true;
		n++;
	}
	cr_assert(n > 10, "%zu spans", n);
	cr_assert(names >= 1, "no thread_name metadata");
	cr_assert(found, "no span of %s", must);
	qsort(sp, n, sizeof(*sp), by_start);
	for (size_t i = 0; i < n; i++) {
		struct span *s = &sp[i];

		while (depth && (stack[depth - 1]->pid != s->pid ||
				 stack[depth - 1]->tid != s->tid ||
				 stack[depth - 1]->ts + stack[depth - 1]->dur <=
				 s->ts))
			depth--;
		/* a child lies within its parent */
		if (depth) {
			struct span *p = stack[depth - 1];

			cr_assert(s->ts + s->dur <= p->ts + p->dur,
				  "%s [%g,+%g] crosses its parent %s [%g,+%g]",
				  s->name, s->ts, s->dur, p->name, p->ts,
				  p->dur);
		}
		cr_assert(depth < 4096);
		stack[depth++] = s;
	}
	free(sp);
	json_object_put(j);
}

static void nop_line(json_object *o, void *vctx)
{
	size_t *n = vctx;

	check_item(o);
	(*n)++;
}

Test(views, export_all, .timeout = 120)
{
	char out[PATH_MAX], *so = NULL, *se = NULL, *text;
	const char *args[] = { "export", NULL, "--format", NULL, "-o", out,
			       NULL };
	struct ru_rec r;
	size_t n = 0;

	record(&r, "pt-emu", "recurse");
	args[1] = r.bundle;

	args[3] = "chrome";
	snprintf(out, sizeof(out), "%s/trace.json", r.dir);
	cr_assert(eq(int, btrail(&so, &se, args), 0), "%s", se);
	chrome_check(out, "fib");
	free(so);
	free(se);
	/* an existing OUT is not overwritten */
	cr_assert(eq(int, btrail(&so, &se, args), 1));
	cr_assert(ne(ptr, strstr(se, "exists"), NULL), "%s", se);
	free(so);
	free(se);

	args[3] = "json";
	snprintf(out, sizeof(out), "%s/items.jsonl", r.dir);
	cr_assert(eq(int, btrail(&so, &se, args), 0), "%s", se);
	free(so);
	free(se);
	{
		FILE *f = fopen(out, "r");
		long sz;

		cr_assert(ne(ptr, f, NULL));
		fseek(f, 0, SEEK_END);
		sz = ftell(f);
		rewind(f);
		text = calloc(1, (size_t)sz + 1);
		cr_assert(eq(sz, fread(text, 1, (size_t)sz, f), (size_t)sz));
		fclose(f);
	}
	each_line(text, nop_line, &n);
	cr_assert(n > 1000, "%zu lines", n);
	cr_assert(ne(ptr, strstr(text, "\"kind\":\"insn\""), NULL));
	cr_assert(ne(ptr, strstr(text, "\"kind\":\"branch\""), NULL));
	free(text);

	args[3] = "ctf";
	snprintf(out, sizeof(out), "%s/ctf-out", r.dir);
	cr_assert(eq(int, btrail(&so, &se, args), 0), "%s", se);
	free(so);
	free(se);
	if (!access("/usr/bin/babeltrace2", X_OK)) {
		char *bargv[] = { "/usr/bin/babeltrace2", out, NULL };

		cr_assert(eq(int, tu_run(bargv, &so, &se), 0),
			  "babeltrace2: %s", se);
		cr_assert(ne(ptr, strstr(so, "bt.trigger"), NULL));
		cr_assert(ne(ptr, strstr(so, "bt.pt"), NULL));
		free(so);
		free(se);
	}
	ru_rec_free(&r);
}

Test(views, export_chrome_calltable, .timeout = 120)
{
	char out[PATH_MAX], *so = NULL, *se = NULL;
	const char *args[] = { "export", NULL, "--format", "chrome", "-o",
			       out, NULL };
	struct ru_rec r;

	record(&r, "step", "calltable");
	args[1] = r.bundle;
	snprintf(out, sizeof(out), "%s/trace.json", r.dir);
	cr_assert(eq(int, btrail(&so, &se, args), 0), "%s", se);
	chrome_check(out, "op_mul");
	free(so);
	free(se);
	ru_rec_free(&r);
}

/* ---- Bad input ---------------------------------------------------------- */

Test(views, bad_input, .timeout = 120)
{
	char out[PATH_MAX], json[PATH_MAX], *so = NULL, *se = NULL;
	const char *missing[] = { "script", "/nonexistent/bundle", NULL };
	const char *xmissing[] = { "export", "/nonexistent/bundle",
				   "--format", "json", "-o", out, NULL };
	const char *script[] = { "script", NULL, "--calls", NULL };
	const char *exp[] = { "export", NULL, "--format", "chrome", "-o", out,
			      NULL };
	const char *xctf[] = { "export", NULL, "--format", "ctf", "-o", out,
			       NULL };
	const char *twoviews[] = { "script", "x", "--insn", "--calls", NULL };
	const char *badfmt[] = { "script", "x", "--format", "xml", NULL };
	const char *xbadfmt[] = { "export", "x", "--format", "xml", "-o", out,
				  NULL };
	struct ru_rec r;

	record(&r, "step", "loops");
	snprintf(out, sizeof(out), "%s/out", r.dir);

	cr_assert(eq(int, btrail(&so, &se, missing), 1));
	cr_assert(ne(ptr, strstr(se, "/nonexistent/bundle"), NULL), "%s", se);
	free(so);
	free(se);
	cr_assert(eq(int, btrail(&so, &se, xmissing), 1));
	cr_assert(ne(ptr, strstr(se, "/nonexistent/bundle"), NULL), "%s", se);
	cr_assert(eq(int, access(out, F_OK), -1));
	free(so);
	free(se);
	cr_assert(eq(int, btrail(&so, &se, twoviews), 2));
	free(so);
	free(se);
	cr_assert(eq(int, btrail(&so, &se, badfmt), 2));
	cr_assert(ne(ptr, strstr(se, "xml"), NULL), "%s", se);
	free(so);
	free(se);
	cr_assert(eq(int, btrail(&so, &se, xbadfmt), 2));
	free(so);
	free(se);

	/* malformed: btrail.json cut in the middle */
	snprintf(json, sizeof(json), "%s/btrail.json", r.bundle);
	cr_assert(eq(int, truncate(json, 20), 0));
	script[1] = exp[1] = xctf[1] = r.bundle;
	cr_assert(eq(int, btrail(&so, &se, script), 3), "%s", se);
	cr_assert(ne(ptr, strstr(se, "btrail.json"), NULL), "%s", se);
	free(so);
	free(se);
	cr_assert(eq(int, btrail(&so, &se, exp), 3), "%s", se);
	cr_assert(eq(int, access(out, F_OK), -1));
	free(so);
	free(se);
	cr_assert(eq(int, btrail(&so, &se, xctf), 3), "%s", se);
	cr_assert(eq(int, access(out, F_OK), -1));
	free(so);
	free(se);
	ru_rec_free(&r);
}
