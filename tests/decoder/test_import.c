// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail import and btrail script on the two real Intel PT recordings of
 * ../shared/testdata/perfdata: the bundle reads back with our reader and
 * with babeltrace2; the bt.pt chunks of each CPU, concatenated, are the
 * perf.data's AUX stream byte for byte (and so the extracted .pt files);
 * bt.mmap carries the build-ids `perf buildid-list` printed; the machine
 * is the recording's CPU. `btrail script` names the missing binaries by
 * build-id and path and decodes both CPUs; its --packets listing is
 * libipt ptdump's (the .ptdump.txt files). A cut file is refused with
 * its name and offset.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <btrail/bundle.h>
#include <btrail/errno.h>
#include <btrail/events.h>
#include <btrail/perfdata.h>

#include "helpers/testutil.h"

#define SEEKABLE	"perf.data.intel_pt-4.14"
#define PIPED		"perf.data.piped.intel_pt-4.14"
#define BABELTRACE	"/usr/bin/babeltrace2"

static const char *testdata(const char *file)
{
	static char path[4][PATH_MAX];
	static int n;
	const char *src = getenv("BTRAIL_SRCDIR");
	char *p = path[n++ % 4];

	if (!src)
		cr_skip_test("BTRAIL_SRCDIR is not set (make check sets it)");
	snprintf(p, PATH_MAX, "%s/../shared/testdata/perfdata/%s", src, file);
	if (access(p, R_OK))
		cr_skip_test("%s is absent: the shared test data is not beside "
			     "the repository", p);
	return p;
}

static unsigned char *slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	cr_assert(ne(ptr, f, NULL), "fopen %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n ? (size_t)n : 1);
	cr_assert(ne(ptr, buf, NULL));
	cr_assert(eq(sz, fread(buf, 1, (size_t)n, f), (size_t)n));
	fclose(f);
	*size = (size_t)n;
	return buf;
}

static char tmpdir[256];

static int rm_cb(const char *p, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void cleanup(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *tmp(const char *name)
{
	static char p[4][PATH_MAX];
	static int n;
	char *s = p[n++ % 4];

	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/bt-import-test-XXXXXX");
		cr_assert(ne(ptr, mkdtemp(tmpdir), NULL));
		atexit(cleanup);
	}
	snprintf(s, PATH_MAX, "%s/%s", tmpdir, name);
	return s;
}

/* ---- What a bundle holds ---------------------------------------------- */

struct cpu_pt {
	unsigned char *buf;
	size_t len;
	uint64_t next_off;	/* AUX offset the next chunk must have */
	bool seen;
};

struct got {
	struct cpu_pt pt[8];
	char *mmaps;		/* "hexid path\n" per bt.mmap */
	size_t mmaps_len;
	unsigned nclock;
};

static void got_free(struct got *g)
{
	for (int i = 0; i < 8; i++)
		free(g->pt[i].buf);
	free(g->mmaps);
}

static void read_bundle(const char *dir, struct got *g)
{
	struct bt_bundle *b;
	struct bt_bundle_event *ev = malloc(sizeof(*ev));
	int ret;

	cr_assert(ne(ptr, ev, NULL));
	memset(g, 0, sizeof(*g));
	cr_assert(eq(int, bt_bundle__open(dir, &b), 0), "open %s", dir);
	for (uint32_t s = 0; s < bt_bundle__streams(b); s++) {
		while ((ret = bt_bundle__next(b, s, ev)) == 1) {
			if (ev->id == BT_EVID_PT) {
				int64_t cpu = ev->v[BT_PT_CPU].i;
				struct cpu_pt *p;

				cr_assert(ge(i64, cpu, 0));
				cr_assert(lt(i64, cpu, 8));
				p = &g->pt[cpu];
				/* chunks in AUX order, nothing left out */
				if (p->seen)
					cr_assert(eq(u64, ev->v[BT_PT_OFF].u,
						     p->next_off));
				p->seen = true;
				p->next_off = ev->v[BT_PT_OFF].u +
					      ev->v[BT_PT_DATA].len;
				p->buf = realloc(p->buf, p->len +
						 ev->v[BT_PT_DATA].len);
				cr_assert(ne(ptr, p->buf, NULL));
				memcpy(p->buf + p->len, ev->v[BT_PT_DATA].p,
				       ev->v[BT_PT_DATA].len);
				p->len += ev->v[BT_PT_DATA].len;
			} else if (ev->id == BT_EVID_MMAP) {
				const unsigned char *id =
					ev->v[BT_MMAP_BUILD_ID].p;
				size_t n = ev->v[BT_MMAP_BUILD_ID].len;
				size_t fl = ev->v[BT_MMAP_FILE].len;
				size_t need = g->mmaps_len + 2 * n + fl + 3;

				g->mmaps = realloc(g->mmaps, need);
				cr_assert(ne(ptr, g->mmaps, NULL));
				for (size_t i = 0; i < n; i++)
					g->mmaps_len += (size_t)sprintf(
						g->mmaps + g->mmaps_len,
						"%02x", id[i]);
				g->mmaps[g->mmaps_len++] = ' ';
				memcpy(g->mmaps + g->mmaps_len,
				       ev->v[BT_MMAP_FILE].p, fl);
				g->mmaps_len += fl;
				g->mmaps[g->mmaps_len++] = '\n';
				g->mmaps[g->mmaps_len] = 0;
			} else if (ev->id == BT_EVID_CLOCK) {
				g->nclock++;
			}
		}
		cr_assert(eq(int, ret, 0), "stream %u of %s", s, dir);
	}
	bt_bundle__close(b);
	free(ev);
}

static void import(const char *file, const char *out,
		   struct bt_perfdata_import_stats *st)
{
	struct bt_perfdata_import_opts o = { .sz = sizeof(o), .stats = st };
	int err = bt_perfdata_import(testdata(file), out, &o);

	cr_assert(eq(int, err, 0), "import %s: %s", file, bt_strerror(err));
}

static void babeltrace_reads(const char *dir)
{
	char *argv[] = { (char *)BABELTRACE, (char *)dir, NULL };
	char *out = NULL, *err = NULL;
	int st;

	if (access(BABELTRACE, X_OK))
		return;
	st = tu_run(argv, &out, &err);
	cr_assert(eq(int, st, 0), "babeltrace2 %s: %s", dir, err);
	cr_assert(ne(ptr, strstr(out, "bt.pt:"), NULL));
	cr_assert(ne(ptr, strstr(out, "file = \"/usr/bin/coreutils\""),
		     NULL));
	free(out);
	free(err);
}

/* Our own extraction of @cpu's stream from the perf.data. */
static unsigned char *extract(const char *file, uint32_t cpu, size_t *len)
{
	struct bt_perfdata *pd = bt_perfdata__open(testdata(file), NULL);
	void *buf;
	int i;

	cr_assert(ne(ptr, pd, NULL));
	i = bt_perfdata__aux_cpu(pd, cpu);
	cr_assert(ge(int, i, 0), "no stream of cpu %u", cpu);
	cr_assert(eq(int, bt_perfdata__aux_read(pd, (size_t)i, &buf, len),
		     0));
	bt_perfdata__close(pd);
	return buf;
}

Test(import, seekable_bundle)
{
	struct bt_perfdata_import_stats st = { 0 };
	const char *out = tmp("seekable");
	struct got g;
	char *ids, *line, *save;
	size_t n, idlen;
	unsigned checked = 0;
	struct bt_bundle *b;

	import(SEEKABLE, out, &st);
	cr_assert(eq(u64, st.pt_bytes, 12240 + 137728));
	cr_assert(eq(u32, st.slots, 4));
	read_bundle(out, &g);
	cr_assert(eq(u32, g.nclock, 1));

	for (uint32_t cpu = 0; cpu < 8; cpu++) {
		char name[64];
		unsigned char *ref, *own;
		size_t rlen, olen;

		if (cpu != 0 && cpu != 3) {
			cr_assert(eq(sz, g.pt[cpu].len, 0));
			continue;
		}
		snprintf(name, sizeof(name), "intel_pt-4.14-cpu%u.pt", cpu);
		ref = slurp(testdata(name), &rlen);
		own = extract(SEEKABLE, cpu, &olen);
		cr_assert(eq(sz, g.pt[cpu].len, rlen), "cpu %u", cpu);
		cr_assert(eq(int, memcmp(g.pt[cpu].buf, ref, rlen), 0));
		cr_assert(eq(sz, olen, rlen));
		cr_assert(eq(int, memcmp(own, ref, rlen), 0));
		free(ref);
		free(own);
	}

	/* every build-id perf buildid-list printed is on its bt.mmap */
	ids = (char *)slurp(testdata(SEEKABLE ".buildids"), &idlen);
	ids = realloc(ids, idlen + 1);
	ids[idlen] = 0;
	for (line = strtok_r(ids, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char want[PATH_MAX + 64];

		if (!strcmp(line + 41, "[kernel.kallsyms]"))
			snprintf(want, sizeof(want), "%.40s "
				 "[kernel.kallsyms]_text\n", line);
		else
			snprintf(want, sizeof(want), "%s\n", line);
		cr_assert(ne(ptr, strstr(g.mmaps, want), NULL),
			  "no bt.mmap with %s", want);
		checked++;
	}
	cr_assert(eq(u32, checked, 66));
	cr_assert(eq(u64, st.build_ids, 66));

	/* the machine is the recording's, not this one */
	cr_assert(eq(int, bt_bundle__open(out, &b), 0));
	n = strlen(bt_bundle__json(b));
	cr_assert(gt(sz, n, 0));
	cr_assert(ne(ptr, strstr(bt_bundle__json(b),
				 "\"cpuid\":\"GenuineIntel,6,78,3\""), NULL),
		  "%s", bt_bundle__json(b));
	cr_assert(ne(ptr, strstr(bt_bundle__json(b), "\"model\":78"), NULL));
	bt_bundle__close(b);

	babeltrace_reads(out);
	free(ids);
	got_free(&g);
}

Test(import, piped_bundle)
{
	struct bt_perfdata_import_stats st = { 0 };
	const char *out = tmp("piped");
	unsigned char *ref, *own;
	size_t rlen, olen;
	struct got g;

	import(PIPED, out, &st);
	read_bundle(out, &g);
	for (uint32_t cpu = 0; cpu < 8; cpu++) {
		if (cpu != 0 && cpu != 3) {
			cr_assert(eq(sz, g.pt[cpu].len, 0));
			continue;
		}
		own = extract(PIPED, cpu, &olen);
		cr_assert(eq(sz, g.pt[cpu].len, olen), "cpu %u", cpu);
		cr_assert(eq(int, memcmp(g.pt[cpu].buf, own, olen), 0));
		free(own);
	}
	cr_assert(eq(u64, st.pt_bytes, g.pt[0].len + g.pt[3].len));
	/* the reference file was cut 16 bytes early (docs/perfdata.md) */
	ref = slurp(testdata("piped.intel_pt-4.14-cpu0.pt"), &rlen);
	cr_assert(eq(sz, rlen, g.pt[0].len));
	cr_assert(eq(int, memcmp(ref + 16, g.pt[0].buf, rlen - 16), 0));
	cr_assert(ne(ptr, strstr(g.mmaps, " /usr/bin/coreutils\n"), NULL));
	free(ref);
	babeltrace_reads(out);
	got_free(&g);
}

/* ---- btrail import / script --------------------------------------------- */

static int run_btrail(char **argv, char **out, char **err)
{
	const char *bin = tu_btrail_bin();

	if (!bin)
		cr_skip_test("BTRAIL_BIN is not set (make check sets it)");
	argv[0] = (char *)bin;
	return tu_run(argv, out, err);
}

static void script_names_missing(const char *file, const char *want)
{
	char *argv[] = { NULL, "script", (char *)testdata(file), NULL };
	char *out = NULL, *err = NULL;
	int st = run_btrail(argv, &out, &err);

	cr_assert(eq(int, st, 0), "script %s: %s", file, err);
	cr_assert(ne(ptr, strstr(err, want), NULL), "%s", err);
	/* once each */
	cr_assert(eq(ptr, strstr(strstr(err, want) + 1, want), NULL));
	cr_assert(ne(ptr, strstr(out, "# cpu 0: "), NULL), "%s", out);
	cr_assert(ne(ptr, strstr(out, "# cpu 3: "), NULL), "%s", out);
	/* what the decoder can say without code: events with their IPs,
	 * errors with offset and IP, resynchronisation */
	cr_assert(ne(ptr, strstr(out, "[enabled, ip: ffffffffb960d302]"),
		     NULL), "%s", out);
	cr_assert(ne(ptr, strstr(out, "error: no memory mapped"), NULL));
	free(out);
	free(err);
}

Test(import, script_seekable)
{
	script_names_missing(SEEKABLE, "missing binary: build-id "
			     "c0a88cf4408ddef75343a69e41602f4d3de34e68 "
			     "/usr/bin/coreutils");
}

Test(import, script_piped)
{
	/* the pipe-mode recording has no build-id table */
	script_names_missing(PIPED, "missing binary: build-id "
			     "(none recorded) /usr/bin/coreutils");
}

/* Collapse runs of blanks and drop '#' lines, as diff -b would see it. */
static char *squeeze(const char *s)
{
	char *o = malloc(strlen(s) + 1), *d = o;
	bool bol = true, skip = false;

	cr_assert(ne(ptr, o, NULL));
	for (; *s; s++) {
		if (bol)
			skip = *s == '#';
		bol = *s == '\n';
		if (skip)
			continue;
		if (*s == ' ' || *s == '\t') {
			while (s[1] == ' ' || s[1] == '\t')
				s++;
			if (s[1] == '\n')
				continue;
			*d++ = ' ';
			continue;
		}
		*d++ = *s;
	}
	*d = 0;
	return o;
}

Test(import, packets_match_ptdump)
{
	for (unsigned cpu = 0; cpu <= 3; cpu += 3) {
		char cpus[8], name[64];
		char *argv[] = { NULL, "script", "--packets", "--cpu", cpus,
				 (char *)testdata(SEEKABLE), NULL };
		char *out = NULL, *err = NULL, *a, *b;
		unsigned char *ref;
		size_t rlen;
		int st;

		snprintf(cpus, sizeof(cpus), "%u", cpu);
		st = run_btrail(argv, &out, &err);
		cr_assert(eq(int, st, 0), "%s", err);
		snprintf(name, sizeof(name), "intel_pt-4.14-cpu%u.ptdump.txt",
			 cpu);
		ref = slurp(testdata(name), &rlen);
		ref = realloc(ref, rlen + 1);
		ref[rlen] = 0;
		a = squeeze(out);
		b = squeeze((char *)ref);
		cr_assert(gt(sz, strlen(b), 1000));
		cr_assert(eq(int, strcmp(a, b), 0), "cpu %u differs", cpu);
		free(a);
		free(b);
		free(ref);
		free(out);
		free(err);
	}
}

Test(import, cli_import)
{
	const char *out = tmp("cli");
	char *argv[] = { NULL, "import", (char *)testdata(SEEKABLE), "-o",
			 (char *)out, NULL };
	char *o = NULL, *e = NULL;
	struct got g;
	int st = run_btrail(argv, &o, &e);

	cr_assert(eq(int, st, 0), "%s", e);
	cr_assert(ne(ptr, strstr(e, "149968 bytes of trace"), NULL), "%s", e);
	read_bundle(out, &g);
	cr_assert(eq(sz, g.pt[3].len, 137728));
	got_free(&g);
	free(o);
	free(e);
	/* a second time: the bundle exists */
	st = run_btrail(argv, &o, &e);
	cr_assert(eq(int, st, 1));
	cr_assert(ne(ptr, strstr(e, "exists"), NULL), "%s", e);
	free(o);
	free(e);
}

/* ---- Hostile: a cut file ----------------------------------------------- */

Test(import, truncated)
{
	static const size_t cuts[] = { 9, 104, 5000, 20000, 100000, 181000 };
	size_t len;
	unsigned char *all = slurp(testdata(SEEKABLE), &len);

	tu_log_capture();
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		char name[64], bname[64];
		const char *path, *bundle;
		char *argv[] = { NULL, "import", NULL, "-o", NULL, NULL };
		char *sargv[] = { NULL, "script", NULL, NULL };
		char *o = NULL, *e = NULL;
		FILE *f;
		int err, st;

		snprintf(name, sizeof(name), "cut-%zu.data", cuts[i]);
		snprintf(bname, sizeof(bname), "cut-%zu.bundle", cuts[i]);
		path = tmp(name);
		bundle = tmp(bname);
		f = fopen(path, "wb");
		cr_assert(ne(ptr, f, NULL));
		cr_assert(eq(sz, fwrite(all, 1, cuts[i], f), cuts[i]));
		fclose(f);

		tu_log_clear();
		err = bt_perfdata_import(path, bundle, NULL);
		cr_assert(eq(int, err, -BT_ERRNO_FORMAT), "cut %zu", cuts[i]);
		cr_assert(ne(ptr, strstr(tu_log_text(), path), NULL), "%s",
			  tu_log_text());
		cr_assert(ne(ptr, strstr(tu_log_text(), "offset"), NULL));
		cr_assert(ne(int, access(bundle, F_OK), 0));

		argv[2] = (char *)path;
		argv[4] = (char *)bundle;
		st = run_btrail(argv, &o, &e);
		cr_assert(eq(int, st, 3), "cut %zu: %s", cuts[i], e);
		cr_assert(ne(ptr, strstr(e, path), NULL), "%s", e);
		cr_assert(ne(ptr, strstr(e, "offset"), NULL), "%s", e);
		free(o);
		free(e);

		sargv[2] = (char *)path;
		st = run_btrail(sargv, &o, &e);
		if (cuts[i] >= 8) {
			cr_assert(eq(int, st, 3), "script cut %zu: %s",
				  cuts[i], e);
			cr_assert(ne(ptr, strstr(e, "offset"), NULL), "%s",
				  e);
		}
		free(o);
		free(e);
	}
	free(all);
}
