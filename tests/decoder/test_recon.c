// SPDX-License-Identifier: BSD-3-Clause
/*
 * Reconstruction of bundles and `btrail report`, on the crash programs of
 * tests/progs recorded by the CLI with step (branch records) and pt-emu
 * (PT packets):
 *
 *   - the report's call stack, the frames in the program's own code,
 *     equals gdb's backtrace of a core dump of the same crash,
 *     and an unknown innermost frame (a call through NULL) is "??" in
 *     both;
 *   - the faulting instruction's line names the trigger's IP;
 *   - the flow of the faulting thread ends at the fault: after the last
 *     branch, straight-line instructions reach the trigger's IP;
 *   - PT and BTS reconstructions of the same program give the same
 *     instructions up to the fault (the BTS flow, which starts at its
 *     first record, is the end of the PT flow; compared as symbol+offset
 *     since each run has its own address layout);
 *   - a bundle whose binary is missing gives a warning naming build-id
 *     and path, and still a report (with ??);
 *   - a damaged bundle is refused naming file and offset.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <btrail/decoder.h>

#include "helpers/recordutil.h"
#include "helpers/testutil.h"

/* Record @p with facility @fac from main into a fresh bundle. */
static void record(struct ru_rec *r, const char *fac, const char *p)
{
	ru_record(r, "recon", fac, p, false);
}

/* ---- Frames ------------------------------------------------------------ */

struct frames {
	char name[32][128];
	bool own[32];	/* in the program's own source */
	size_t n;
};

/*
 * Run @p with core dumps on, in a fresh directory, and return the path
 * of the core it left in @core; false when the kernel wrote none (a
 * core_pattern that pipes elsewhere, or no dump for this signal).
 */
static bool dump_core(const char *p, char *dir, size_t dlen, char *core,
		      size_t clen)
{
	struct dirent *de;
	pid_t pid;
	DIR *d;
	int st;

	ru_tmpdir(dir, dlen, "core");
	pid = fork();
	cr_assert(ge(int, pid, 0));
	if (pid == 0) {
		struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };

		if (chdir(dir) < 0 || setrlimit(RLIMIT_CORE, &rl) < 0)
			_exit(126);
		execl(p, p, (char *)NULL);
		_exit(127);
	}
	cr_assert(eq(int, waitpid(pid, &st, 0), pid));
	if (!WIFSIGNALED(st) || !WCOREDUMP(st))
		return false;
	d = opendir(dir);
	cr_assert(ne(ptr, d, NULL));
	core[0] = '\0';
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "core", 4))
			snprintf(core, clen, "%s/%s", dir, de->d_name);
	closedir(d);
	return core[0] != '\0';
}

/*
 * gdb's backtrace of a core dump of @p ("#N  0x... in NAME (args) at
 * FILE:LINE" or "#0  NAME (...)"). Without a core (see dump_core()) gdb
 * runs the program to its crash instead, and the test says so.
 */
static void gdb_frames(const char *p, struct frames *f)
{
	char dir[PATH_MAX], core[PATH_MAX + 300];
	char *live[] = { "/usr/bin/gdb", "-nx", "-batch", "-ex", "set width 0",
			 "-ex", "run", "-ex", "bt", "--args", (char *)p,
			 NULL };
	char *post[] = { "/usr/bin/gdb", "-nx", "-batch", "-ex", "set width 0",
			 "-ex", "bt", (char *)p, core, NULL };
	char *out = NULL, *err = NULL;
	char *line, *save = NULL;
	bool have_core;

	memset(f, 0, sizeof(*f));
	if (access("/usr/bin/gdb", X_OK) < 0)
		cr_skip_test("gdb is not installed");
	have_core = dump_core(p, dir, sizeof(dir), core, sizeof(core));
	if (!have_core)
		cr_log_warn("%s left no core (core_pattern?): gdb runs it "
			    "to the crash instead", p);
	tu_run(have_core ? post : live, &out, &err);
	ru_rmrf(dir);
	cr_assert(ne(ptr, out, NULL));
	for (line = strtok_r(out, "\n", &save); line && f->n < 32;
	     line = strtok_r(NULL, "\n", &save)) {
		char *s = line, *e;

		if (line[0] != '#')
			continue;
		/* Loading a core prints frame #0 before bt does: start over. */
		if (!strncmp(line, "#0 ", 3))
			f->n = 0;
		s = strchr(s, ' ');
		while (s && *s == ' ')
			s++;
		if (s && !strncmp(s, "0x", 2)) {
			s = strstr(s, " in ");
			s = s ? s + 4 : NULL;
		}
		if (!s)
			continue;
		e = strchr(s, ' ');
		snprintf(f->name[f->n], sizeof(f->name[0]), "%.*s",
			 e ? (int)(e - s) : (int)strlen(s), s);
		f->own[f->n++] = strstr(line, "tests/progs/") != NULL;
	}
	free(out);
	free(err);
	cr_assert(f->n > 0, "gdb printed no backtrace");
}

/* The report's "#N  NAME+0xOFF (...)" lines. */
static void report_frames(const char *rep, struct frames *f)
{
	const char *s = strstr(rep, "call stack");

	memset(f, 0, sizeof(*f));
	cr_assert(ne(ptr, (void *)s, NULL), "%s", rep);
	while ((s = strstr(s, "\n#")) && f->n < 32) {
		const char *nm = strstr(s, "  ");
		const char *e = nm ? nm + 2 + strcspn(nm + 2, "+ \n") : NULL;
		const char *eol = strchr(s + 1, '\n');

		if (!nm || !e)
			break;
		snprintf(f->name[f->n], sizeof(f->name[0]), "%.*s",
			 (int)(e - nm - 2), nm + 2);
		f->own[f->n] = eol && memmem(s, eol - s, "tests/progs/", 12);
		f->n++;
		s++;
	}
}

/*
 * noinline: inlined into its callers, GCC 12 takes the report it returns
 * for a pointer to its local @out (-Wdangling-pointer, a false alarm).
 */
static __attribute__((noinline)) char *
report(const char *bundle, const char *extra, char **err, int *status)
{
	char *out = NULL;
	char *argv[] = { (char *)ru_bin(), "report", "--color", "never",
			 (char *)bundle, NULL, NULL, NULL };

	if (extra) {
		argv[4] = "--sysroot";
		argv[5] = (char *)extra;
		argv[6] = (char *)bundle;
	}
	*status = tu_run(argv, &out, err);
	return out;
}

/* ---- The flow, through the API ----------------------------------------- */

struct flow {
	struct bt_recon *r;
	int32_t tid;
	char (*insn)[96];	/* symbolized */
	size_t n, cap;
	uint64_t last_ip, last_len, last_to, trig_ip;
	bool after_branch_ok;	/* straight line since the last branch */
	size_t branches;
};

static int on_item(void *ctx, const struct bt_recon_item *it)
{
	struct flow *f = ctx;
	struct bt_sym s;

	if (it->kind == BT_RI_TRIGGER) {
		f->trig_ip = it->ip;
		f->tid = it->tid;
		return 0;
	}
	if (it->tid != f->tid)
		return 0;
	if (it->kind == BT_RI_BRANCH) {
		f->branches++;
		f->last_to = it->to;
		f->after_branch_ok = true;
		f->last_ip = 0;
		return 0;
	}
	if (it->kind != BT_RI_INSN)
		return 0;
	if (f->last_ip && f->last_ip + f->last_len != it->ip)
		f->after_branch_ok = false;
	if (!f->last_ip && f->branches && it->ip != f->last_to)
		f->after_branch_ok = false;
	f->last_ip = it->ip;
	f->last_len = it->len;
	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 1024;
		f->insn = realloc(f->insn, f->cap * sizeof(*f->insn));
		cr_assert(ne(ptr, f->insn, NULL));
	}
	if (bt_recon__symbolize(f->r, -1, it->ip, &s) == 0 && s.name)
		snprintf(f->insn[f->n++], 96, "%s+%" PRIx64, s.name,
			 s.offset);
	else
		snprintf(f->insn[f->n++], 96, "?? %s",
			 s.image ? s.image : "-");
	return 0;
}

static void flow_of(const char *bundle, int32_t tid, struct flow *f)
{
	struct bt_recon_opts o = { .sz = sizeof(o) };

	memset(f, 0, sizeof(*f));
	f->tid = tid;
	f->r = bt_recon__open(bundle, &o);
	cr_assert(ne(ptr, f->r, NULL), "%s: %s", bundle, strerror(errno));
	cr_assert(eq(int, bt_recon__run(f->r, BT_RECON_INSNS |
					BT_RECON_BRANCHES, on_item, f), 0));
}

/* The trigger's tid: a first pass learns it from the TRIGGER item. */
static void flow_trig(const char *bundle, struct flow *f)
{
	flow_of(bundle, INT32_MIN, f);
	cr_assert(ne(i32, f->tid, INT32_MIN), "no trigger");
	bt_recon__free(f->r);
	free(f->insn);
	flow_of(bundle, f->tid, f);
}

/* ---- The crashes --------------------------------------------------------- */

static void check_crash(const char *name, const char *fac)
{
	struct ru_rec r;
	struct frames g, m;
	struct flow f;
	char *err = NULL, *rep, want[64];
	size_t gi = 0, mi = 0;
	int status;

	gdb_frames(ru_prog(name), &g);
	record(&r, fac, name);
	rep = report(r.bundle, NULL, &err, &status);
	cr_assert(eq(int, status, 0), "%s", err);
	report_frames(rep, &m);
	cr_assert(gt(sz, m.n, 0), "%s", rep);
	/* an unknown innermost frame is unknown in both */
	if (!strcmp(g.name[0], "??"))
		cr_assert(eq(str, m.name[0], "??"), "%s", rep);
	/* the program's own frames, in order, from the fault to main */
	for (;;) {
		while (gi < g.n && !g.own[gi])
			gi++;
		while (mi < m.n && !m.own[mi])
			mi++;
		if (gi == g.n || mi == m.n)
			break;
		cr_assert(eq(str, m.name[mi], g.name[gi]),
			  "%s/%s: frame %zu: %s, gdb says %s\n%s", name, fac,
			  mi, m.name[mi], g.name[gi], rep);
		gi++;
		mi++;
	}
	cr_assert(eq(sz, gi, g.n), "%s/%s: gdb has more own frames\n%s",
		  name, fac, rep);
	cr_assert(gt(sz, gi, 1), "%s/%s: gdb: %zu frames, first %s", name,
		  fac, g.n, g.name[0]);
	cr_assert(eq(sz, mi, m.n), "%s/%s: the report has more own frames"
		  "\n%s", name, fac, rep);

	/* the fault line names the trigger's IP; the flow ends there */
	flow_trig(r.bundle, &f);
	snprintf(want, sizeof(want), "faulting instruction\n  0x%" PRIx64
		 "  ", f.trig_ip);
	cr_assert(ne(ptr, strstr(rep, want), NULL), "want '%s' in\n%s",
		  want, rep);
	cr_assert(gt(sz, f.branches, 0));
	cr_assert(f.after_branch_ok, "%s/%s: not straight after the last "
		  "branch", name, fac);
	cr_assert(f.last_ip ? f.last_ip + f.last_len == f.trig_ip :
			      f.last_to == f.trig_ip,
		  "%s/%s: the flow ends at 0x%" PRIx64 "+%" PRIu64
		  " (to 0x%" PRIx64 "), the fault is at 0x%" PRIx64, name,
		  fac, f.last_ip, f.last_len, f.last_to, f.trig_ip);
	bt_recon__free(f.r);
	free(f.insn);
	free(rep);
	free(err);
	ru_rec_free(&r);
}

#define CRASH(prog_)							\
	Test(recon, prog_##_step, .timeout = 120)			\
	{								\
		check_crash(#prog_, "step");				\
	}								\
	Test(recon, prog_##_ptemu, .timeout = 120)			\
	{								\
		check_crash(#prog_, "pt-emu");				\
	}

CRASH(crash_nullfn)
CRASH(crash_wild)
CRASH(crash_abort)
CRASH(crash_strlen)
CRASH(crash_thread)

/* PT and BTS give the same instructions from main to the fault. */
static void same_flow(const char *name)
{
	struct ru_rec a, b;
	struct flow pt, bts;
	size_t off;

	record(&a, "pt-emu", name);
	record(&b, "step", name);
	flow_trig(a.bundle, &pt);
	flow_trig(b.bundle, &bts);
	cr_assert(gt(sz, bts.n, 10));
	cr_assert(ge(sz, pt.n, bts.n));
	off = pt.n - bts.n;
	/* BTS starts at its first record's from: main before it is PT's */
	cr_assert(lt(sz, off, 64), "%s: PT %zu insns, BTS %zu", name, pt.n,
		  bts.n);
	for (size_t i = 0; i < bts.n; i++)
		cr_assert(eq(str, pt.insn[off + i], bts.insn[i]),
			  "%s: instruction %zu of %zu: PT %s, BTS %s", name,
			  i, bts.n, pt.insn[off + i], bts.insn[i]);
	bt_recon__free(pt.r);
	bt_recon__free(bts.r);
	free(pt.insn);
	free(bts.insn);
	ru_rec_free(&a);
	ru_rec_free(&b);
}

Test(recon, pt_equals_bts_nullfn, .timeout = 120)
{
	same_flow("crash_nullfn");
}

Test(recon, pt_equals_bts_abort, .timeout = 120)
{
	same_flow("crash_abort");
}

/* A missing binary: a warning with build-id and path, still a report. */
Test(recon, missing_binary, .timeout = 120)
{
	struct ru_rec r;
	char empty[96], *err = NULL, *rep;
	int status;

	record(&r, "step", "crash_wild");
	snprintf(empty, sizeof(empty), "%s/empty", r.dir);
	cr_assert(eq(int, mkdir(empty, 0700), 0));
	rep = report(r.bundle, empty, &err, &status);
	cr_assert(eq(int, status, 0), "%s", err);
	cr_assert(ne(ptr, strstr(err, "crash_wild"), NULL), "%s", err);
	cr_assert(ne(ptr, strstr(err, "build-id "), NULL), "%s", err);
	cr_assert(eq(ptr, strstr(err, "build-id unknown"), NULL), "%s", err);
	cr_assert(ne(ptr, strstr(rep, "#0  ??"), NULL), "%s", rep);
	cr_assert(eq(ptr, strstr(rep, "walk+"), NULL), "%s", rep);
	free(rep);
	free(err);
	ru_rec_free(&r);
}

/* A damaged stream: the report names the file and the offset. */
Test(recon, malformed_bundle, .timeout = 120)
{
	struct ru_rec r;
	char path[160], *err = NULL, *rep;
	struct stat st;
	FILE *f;
	int status;

	record(&r, "step", "crash_nullfn");
	snprintf(path, sizeof(path), "%s/ctf/stream_0", r.bundle);
	cr_assert(eq(int, stat(path, &st), 0));
	cr_assert(eq(int, truncate(path, st.st_size / 2), 0));
	rep = report(r.bundle, NULL, &err, &status);
	cr_assert(ne(int, status, 0));
	cr_assert(ne(ptr, strstr(err, "stream_0"), NULL), "%s", err);
	cr_assert(ne(ptr, strstr(err, "offset"), NULL), "%s", err);
	free(rep);
	free(err);
	/* and garbage in btrail.json */
	snprintf(path, sizeof(path), "%s/btrail.json", r.bundle);
	f = fopen(path, "w");
	cr_assert(ne(ptr, f, NULL));
	fputs("{\"format\": \"btrail-bundle\", \"format_version\": ", f);
	fclose(f);
	rep = report(r.bundle, NULL, &err, &status);
	cr_assert(ne(int, status, 0));
	cr_assert(ne(ptr, strstr(err, "btrail.json"), NULL), "%s", err);
	free(rep);
	free(err);
	ru_rec_free(&r);
}

/* ---- Symbols and code the report used to miss ---------------------------- */

struct syms {
	struct bt_recon *r;
	const char *want;	/* a symbol name part */
	const char *image;	/* and its image, NULL: any */
	size_t insns, branches;	/* items on @want */
	char errs[4][256];	/* the first error items */
	size_t nerrs;
	bool init_past;		/* something named _init+ */
};

static int on_sym(void *ctx, const struct bt_recon_item *it)
{
	struct syms *s = ctx;
	struct bt_sym y;
	uint64_t a = it->kind == BT_RI_BRANCH ? it->to : it->ip;

	if (it->kind == BT_RI_ERROR && s->nerrs < 4 && it->text)
		snprintf(s->errs[s->nerrs++], 256, "%s", it->text);
	if ((it->kind != BT_RI_INSN && it->kind != BT_RI_BRANCH) ||
	    bt_recon__symbolize(s->r, -1, a, &y) || !y.name)
		return 0;
	if (!strcmp(y.name, "_init") && y.offset)
		s->init_past = true;
	if (!strstr(y.name, s->want) ||
	    (s->image && (!y.image || strcmp(y.image, s->image))))
		return 0;
	if (it->kind == BT_RI_INSN)
		s->insns++;
	else
		s->branches++;
	return 0;
}

static void syms_of(const char *bundle, const struct bt_recon_opts *o,
		    struct syms *s)
{
	struct bt_recon_opts d = { .sz = sizeof(d) };

	s->r = bt_recon__open(bundle, o ? o : &d);
	cr_assert(ne(ptr, s->r, NULL), "%s: %s", bundle, strerror(errno));
	cr_assert(eq(int, bt_recon__run(s->r, BT_RECON_INSNS |
					BT_RECON_BRANCHES, on_sym, s), 0));
	bt_recon__free(s->r);
}

/* The vdso is in every bundle: no warning, and its code has names. */
Test(recon, vdso_copy, .timeout = 120)
{
	struct ru_rec r;
	struct syms s = { .want = "gettim", .image = "[vdso]" };
	char *out = NULL, *err = NULL;
	int status;

	record(&r, "step", "vdso");
	{
		char *argv[] = { (char *)ru_bin(), "script", r.bundle, NULL };

		status = tu_run(argv, &out, &err);
	}
	cr_assert(eq(int, status, 0), "%s", err);
	cr_assert(eq(ptr, strstr(err, "vdso"), NULL), "%s", err);
	cr_assert(ne(ptr, strstr(out, "clock_gettime"), NULL));
	syms_of(r.bundle, NULL, &s);
	/* clock_gettime and gettimeofday both run vdso code */
	cr_assert(gt(sz, s.insns, 10), "%zu vdso instructions", s.insns);
	free(out);
	free(err);
	ru_rec_free(&r);
}

/* A call through the PLT is name@plt, never _init+off. */
Test(recon, plt_stubs, .timeout = 120)
{
	struct ru_rec r;
	struct syms s = { .want = "strlen@plt" };

	record(&r, "step", "crash_strlen");
	syms_of(r.bundle, NULL, &s);
	cr_assert(gt(sz, s.branches, 0), "no branch into strlen@plt");
	cr_assert(gt(sz, s.insns, 0));
	cr_assert(not(s.init_past), "an address past _init named after it");
	ru_rec_free(&r);
}

static void sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert(eq(int, system(cmd), 0), "%s", cmd);
}

/*
 * A binary stripped of .symtab, its debug info kept apart by build-id
 * (as Debian's -dbg packages keep libc's): under the sysroot's
 * /usr/lib/debug/.build-id, and under a --buildid-dir.
 */
Test(recon, separate_debug, .timeout = 120)
{
	struct ru_rec r;
	const char *p = ru_prog("crash_nullfn");
	char sys[160], bid[160], id[64] = "", *err = NULL, *rep;
	struct bt_recon_opts o = { .sz = sizeof(o) };
	struct syms s = { .want = "dispatch" };
	FILE *f;
	int status;

	record(&r, "step", "crash_nullfn");
	snprintf(sys, sizeof(sys), "%s/sys", r.dir);
	snprintf(bid, sizeof(bid), "%s/bid", r.dir);
	sh("readelf -n '%s' | awk '/Build ID/ {print $3}' > %s/id", p, r.dir);
	{
		char path[128];

		snprintf(path, sizeof(path), "%s/id", r.dir);
		f = fopen(path, "r");
		cr_assert(ne(ptr, f, NULL));
		cr_assert(eq(int, fscanf(f, "%63s", id), 1));
		fclose(f);
	}
	sh("mkdir -p '%s%s' '%s/usr/lib/debug/.build-id/%.2s' '%s/%.2s'",
	   sys, p, sys, id, bid, id);
	sh("rmdir '%s%s' && objcopy --strip-all '%s' '%s%s'", sys, p, p,
	   sys, p);
	sh("objcopy --only-keep-debug '%s' '%s/usr/lib/debug/.build-id/"
	   "%.2s/%s.debug'", p, sys, id, id + 2);
	sh("cp '%s/usr/lib/debug/.build-id/%.2s/%s.debug' '%s/%.2s/'", sys,
	   id, id + 2, bid, id);
	/* stripped indeed: no name of its own without the debug file */
	sh("! nm '%s%s' 2>/dev/null | grep -q dispatch", sys, p);

	rep = report(r.bundle, sys, &err, &status);
	cr_assert(eq(int, status, 0), "%s", err);
	cr_assert(ne(ptr, strstr(rep, "#1  dispatch+"), NULL), "%s", rep);
	cr_assert(ne(ptr, strstr(rep, "crash_nullfn.c:"), NULL), "%s", rep);
	free(rep);
	free(err);

	/* the same from a build-id directory, the sysroot's one gone */
	sh("rm -r '%s/usr/lib/debug'", sys);
	o.sysroot = sys;
	syms_of(r.bundle, &o, &s);
	cr_assert(eq(sz, s.insns, 0), "debug info found without a path");
	o.buildid_dir = bid;
	syms_of(r.bundle, &o, &s);
	cr_assert(gt(sz, s.insns, 0), "no dispatch from %s", bid);
	ru_rec_free(&r);
}

/*
 * Code capstone 4 cannot decode: the report shows its bytes, not "no
 * code", and the walk ends with an error naming address and bytes.
 */
Test(recon, undecodable, .timeout = 120)
{
	struct ru_rec r;
	struct syms s = { .want = "hint" };
	char *err = NULL, *rep;
	int status;

	record(&r, "step", "crash_evex");
	rep = report(r.bundle, NULL, &err, &status);
	cr_assert(eq(int, status, 0), "%s", err);
	cr_assert(eq(ptr, strstr(rep, "no code at this address"), NULL),
		  "%s", rep);
	/* capstone 5 may know vpcmpub; then it is disassembled */
	cr_assert(strstr(rep, "(capstone cannot decode: 62 f3 7d 20 3f 07 00")
		  || strstr(rep, "vpcmp"), "%s", rep);
	syms_of(r.bundle, NULL, &s);
	cr_assert(gt(sz, s.nerrs, 0), "no error item for 0f 1e c0");
	cr_assert(ne(ptr, strstr(s.errs[0], "(0f 1e c0"), NULL), "%s",
		  s.errs[0]);
	cr_assert(eq(ptr, strstr(s.errs[0], "missing"), NULL), "%s",
		  s.errs[0]);
	free(rep);
	free(err);
	ru_rec_free(&r);
}
