// SPDX-License-Identifier: BSD-3-Clause
/*
 * perf_event sideband of the raw PT decode (ptxed's --pevent:*, --sb:*)
 * beyond the corpus runs of suite ptraw: every record type printed as
 * ptxed prints it (checked against libipt's pevent-dump expectations),
 * --pevent:sysroot, and hostile sideband files (truncated at every
 * byte, garbage), which must be refused naming file and offset.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <btrail/decoder.h>
#include <btrail/errno.h>

#include "decoder/pt_args.h"
#include "helpers/corpus.h"
#include "helpers/testutil.h"

/* snprintf for paths; a path that does not fit fails the test. */
__attribute__((format(printf, 3, 4)))
static void pathf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	cr_assert(lt(sz, (size_t)n, size));
}

/* pc_slurp() of a file that must be there. */
static char *slurp(const char *path, size_t *len)
{
	char *buf = pc_slurp(path, len);

	cr_assert(ne(ptr, buf, NULL), "%s", path);
	return buf;
}

/*
 * The sideband lines of a listing, the way diff -b sees them: lines with
 * a PERF_RECORD, and the indented lines of verbose records; blanks
 * collapsed, leading blanks dropped.
 */
static char *sb_lines(const char *s)
{
	char *o = malloc(strlen(s) + 1), *q = o;

	cr_assert(ne(ptr, o, NULL));
	while (*s) {
		const char *e = strchr(s, '\n');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		bool keep = (n && (*s == ' ' || *s == '\t')) ||
			    (memmem(s, n, "PERF_RECORD", 11) != NULL);

		if (keep) {
			bool blank = false;

			for (size_t i = 0; i < n; i++) {
				if (s[i] == ' ' || s[i] == '\t') {
					blank = true;
					continue;
				}
				if (blank && q > o && q[-1] != '\n')
					*q++ = ' ';
				blank = false;
				*q++ = s[i];
			}
			*q++ = '\n';
		}
		s += n + (e ? 1 : 0);
	}
	*q = 0;
	return o;
}

/* Run ptxed-style @argv in case directory @test; the listing. */
static char *run_in(const char *test, int argc, char **argv, int *err)
{
	char cwd[PATH_MAX], dir[PATH_MAX], *out = NULL;
	struct ptd_args a;
	size_t len = 0;
	FILE *mem;

	pathf(dir, sizeof(dir), "%s/cases/%s", pc_corpus(), test);
	cr_assert(ne(ptr, getcwd(cwd, sizeof(cwd)), NULL));
	cr_assert(eq(int, chdir(dir), 0), "%s", dir);
	memset(&a, 0, sizeof(a));
	cr_assert(eq(int, ptd_args_parse(&a, argc, argv), 0), "%s", a.err);
	mem = open_memstream(&out, &len);
	cr_assert(ne(ptr, mem, NULL));
	*err = ptd_args_run(&a, mem, NULL);
	fclose(mem);
	ptd_args_free(&a);
	cr_assert(eq(int, chdir(cwd), 0));
	return out;
}

/*
 * pevent-dump holds one record of every type ptxed knows, with all six
 * sample_id fields (sample-type 0x102c6); its ptdump expectation lists
 * them all. Its own trace has no events, so it is read as the secondary
 * stream of pevent-split's trace: the records due by that trace's last
 * time (2) are printed, and they are the ptdump lines, in order.
 */
static void dump_case(const char *test, const char *form)
{
	char sb[PATH_MAX], exp[PATH_MAX];
	char *argv[] = {
		"--raw", "pevent-split.bin:0x1000", "--event:tick",
		"--no-inst", "--pt", "pevent-split.pt", (char *)form,
		"--sb:offset", "--sb:time", "--pevent:sample-type", "0x102c6",
		"--pevent:secondary", sb,
	};
	char *out, *want, *got, *all;
	int err;

	pathf(sb, sizeof(sb), "%s/cases/%s/%s-pevent-primary,"
	      "sample-type=0x102c6,time-zero=0x0,time-shift=0x0,"
	      "time-mult=0x1.sb", pc_corpus(), test, test);
	pathf(exp, sizeof(exp), "%s/cases/%s/%s-ptdump.exp", pc_corpus(),
	      test, test);
	out = run_in("pevent-split", 13, argv, &err);
	cr_assert(eq(int, err, 0));
	all = slurp(exp, NULL);
	want = sb_lines(all);
	got = sb_lines(out);
	/* MMAP to ITRACE_START, the records up to time 2 ... */
	cr_assert(ne(ptr, strstr(got, "PERF_RECORD_ITRACE_START"), NULL),
		  "%s", out);
	cr_assert(eq(ptr, strstr(got, "PERF_RECORD_LOST_SAMPLES"), NULL),
		  "%s", out);
	/* ... as ptdump prints them. */
	cr_assert(eq(int, strncmp(want, got, strlen(got)), 0),
		  "got:\n%s\nwant:\n%s", got, want);
	free(all);
	free(want);
	free(got);
	free(out);
}

Test(ptsb, dump_compact)
{
	dump_case("pevent-dump", "--sb:compact");
}

Test(ptsb, dump_verbose)
{
	dump_case("pevent-dump_verbose", "--sb:verbose");
}

/* The image files of the sideband found under --pevent:sysroot. */
Test(ptsb, sysroot)
{
	const char *t = "pevent-mmap-tip_cached";
	char dir[PATH_MAX], raw[PATH_MAX + 16], pt[PATH_MAX], sb[PATH_MAX];
	char root[PATH_MAX + 1], exp[PATH_MAX], *out = NULL, *want, *a, *b;
	char *argv[] = {
		"--raw", raw, "--sb:compact", "--sb:offset", "--no-inst",
		"--pt", pt, "--pevent:sample-type", "0x4",
		"--pevent:sysroot", root, "--pevent:primary", sb,
	};
	struct ptd_args args;
	size_t len = 0;
	FILE *mem;

	pathf(dir, sizeof(dir), "%s/cases/%s", pc_corpus(), t);
	pathf(raw, sizeof(raw), "%s/%s.bin:0x1000", dir, t);
	pathf(pt, sizeof(pt), "%s/%s.pt", dir, t);
	pathf(sb, sizeof(sb), "%s/%s-pevent-primary,sample-type=0x4,"
		 "time-zero=0x0,time-shift=0x0,time-mult=0x1.sb", dir, t);
	pathf(root, sizeof(root), "%s/", dir);
	pathf(exp, sizeof(exp), "%s/%s-ptxed.exp", dir, t);

	/* From elsewhere (the test's cwd), the sysroot finds the .bin. */
	memset(&args, 0, sizeof(args));
	cr_assert(eq(int, ptd_args_parse(&args, 13, argv), 0), "%s",
		  args.err);
	mem = open_memstream(&out, &len);
	cr_assert(eq(int, ptd_args_run(&args, mem, NULL), 0));
	fclose(mem);
	want = slurp(exp, NULL);
	a = sb_lines(out);
	b = sb_lines(want);
	cr_assert(eq(str, a, b));
	/* 0xa000 comes from the sideband's second MMAP only. */
	cr_assert(ne(ptr, strstr(out, "000000000000a000\n"), NULL), "%s",
		  out);
	cr_assert(eq(ptr, strstr(out, "error"), NULL), "%s", out);
	free(a);
	free(b);
	free(out);
	free(want);

	/* A wrong sysroot: the section is not there, and that is said. */
	pathf(root, sizeof(root), "/nonexistent/");
	out = NULL;
	mem = open_memstream(&out, &len);
	cr_assert(eq(int, ptd_args_run(&args, mem, NULL), 0));
	fclose(mem);
	cr_assert(ne(ptr, strstr(out, "sideband error"), NULL), "%s", out);
	cr_assert(eq(ptr, strstr(out, "000000000000a000\n"), NULL), "%s",
		  out);
	free(out);
	ptd_args_free(&args);
}

static char *tmpfile_with(const void *buf, size_t n)
{
	char *path = strdup("/tmp/bt-ptsb-XXXXXX");
	int fd = mkstemp(path);

	cr_assert(ge(int, fd, 0));
	tu_write_full(fd, buf, n);
	close(fd);
	return path;
}

/* Add @n bytes of @buf as a sideband stream; decode; the add's result. */
static int add_and_decode(const char *pt, const char *raw, const void *buf,
			  size_t n, uint64_t sample_type)
{
	struct bt_pevent_opts po = { .sz = sizeof(po),
				     .sample_type = sample_type,
				     .primary = true };
	struct bt_ptdec_print_opts pr = { .sz = sizeof(pr), .no_inst = true,
					  .sb_compact = true,
					  .sb_offset = true, .sb_warn = true };
	char *path = tmpfile_with(buf, n), *out = NULL;
	struct bt_ptdec *d = bt_ptdec__new(NULL);
	size_t len = 0;
	FILE *mem;
	int err;

	cr_assert(ne(ptr, d, NULL));
	cr_assert(eq(int, bt_ptdec__add_raw(d, raw), 0));
	cr_assert(eq(int, bt_ptdec__set_trace_file(d, pt), 0));
	err = bt_ptdec__add_pevent(d, path, &po);
	mem = open_memstream(&out, &len);
	cr_assert(eq(int, bt_ptdec__print(d, mem, &pr, NULL), 0));
	fclose(mem);
	free(out);
	bt_ptdec__free(d);
	unlink(path);
	free(path);
	return err;
}

Test(ptsb, truncated_and_garbage)
{
	const char *t = "pevent-tip_pgd-switch-tsc-tip_pge";
	char dir[PATH_MAX], sb[PATH_MAX], pt[PATH_MAX], raw[PATH_MAX + 16];
	/* record starts of that file (see its ptxed expectation) */
	static const size_t starts[] = { 0x0, 0x60, 0xc0, 0xe0, 0xf8, 0x110,
					 0x128, 0x140 };
	unsigned char junk[512];
	uint64_t seed = 7;
	size_t n, good = 0;
	char *buf;

	pathf(dir, sizeof(dir), "%s/cases/%s", pc_corpus(), t);
	pathf(sb, sizeof(sb), "%s/%s-pevent-primary,sample-type=0x6,"
		 "time-zero=0x0,time-shift=0x0,time-mult=0x1.sb", dir, t);
	pathf(pt, sizeof(pt), "%s/%s.pt", dir, t);
	pathf(raw, sizeof(raw), "%s/%s.bin:0x1000", dir, t);
	buf = slurp(sb, &n);
	cr_assert(eq(sz, n, 0x140));

	/* Cut anywhere: whole records are taken, a partial one refused. */
	for (size_t cut = 1; cut <= n; cut++) {
		bool whole = false;
		int err;

		for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++)
			whole |= starts[i] == cut;
		err = add_and_decode(pt, raw, buf, cut, 0x6);
		cr_assert(eq(int, err, whole ? 0 : -BT_ERRNO_FORMAT),
			  "cut at %zu", cut);
		good += whole;
	}
	cr_assert(eq(sz, good, 7));
	/* The wrong sample_type does not fit these records' trailers. */
	cr_assert(eq(int, add_and_decode(pt, raw, buf, n, 0x102c6),
		     -BT_ERRNO_FORMAT));
	/* Garbage. */
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)tu_xorshift(&seed);
	cr_assert(eq(int, add_and_decode(pt, raw, junk, sizeof(junk), 0x6),
		     -BT_ERRNO_FORMAT));
	/* A missing file. */
	{
		struct bt_ptdec *d = bt_ptdec__new(NULL);

		cr_assert(eq(int, bt_ptdec__add_pevent(d, "/nonexistent/x.sb",
						       NULL), -ENOENT));
		cr_assert(eq(int, bt_ptdec__add_pevent(d, "x.sb:0x10-0x8",
						       NULL), -EINVAL));
		bt_ptdec__free(d);
	}
	free(buf);
}

/* The CLI names the file and the offset of a malformed record. */
Test(ptsb, cli_bad_sideband)
{
	const char *t = "pevent-fork";
	char dir[PATH_MAX], sb[PATH_MAX], pt[PATH_MAX], raw[PATH_MAX + 16];
	const char *bin = tu_btrail_bin();
	char *buf, *p, *out = NULL, *err = NULL;
	size_t n;
	int st;

	if (!bin)
		cr_skip_test("BTRAIL_BIN is not set");
	pathf(dir, sizeof(dir), "%s/cases/%s", pc_corpus(), t);
	pathf(sb, sizeof(sb), "%s/%s-pevent-primary,sample-type=0x4,"
		 "time-zero=0x0,time-shift=0x0,time-mult=0x1.sb", dir, t);
	pathf(pt, sizeof(pt), "%s/%s.pt", dir, t);
	pathf(raw, sizeof(raw), "%s/%s.bin:0x1000", dir, t);
	buf = slurp(sb, &n);
	/* The second record (at 0x40) says it is 4 bytes long. */
	cr_assert(gt(sz, n, 0x48));
	buf[0x46] = 4;
	buf[0x47] = 0;
	p = tmpfile_with(buf, n);
	{
		const char *argv[] = { bin, "script", "--raw", raw, "--pt", pt,
				       "--pevent:sample-type", "0x4",
				       "--pevent:primary", p, NULL };

		st = tu_run((char *const *)argv, &out, &err);
	}
	cr_assert(eq(int, st, 1), "%s", err);
	cr_assert(ne(ptr, strstr(err, p), NULL), "%s", err);
	cr_assert(ne(ptr, strstr(err, "0x40"), NULL), "%s", err);
	unlink(p);
	free(p);
	free(out);
	free(err);
	free(buf);
}

/*
 * When a record applies: pevent-mmap_secondary-tsc maps 0xa000 from its
 * secondary stream at perf time 2, and the trace runs 0xa000 after its
 * TSC reached 3 (a tick event says so). @opt (one option and its value)
 * goes before the secondary stream only.
 */
static char *secondary_with(const char *opt, const char *val)
{
	const char *t = "pevent-mmap_secondary-tsc";
	char sec[PATH_MAX], pri[PATH_MAX];
	char *argv[] = {
		"--raw", "pevent-mmap_secondary-tsc.bin:0x1000", "--no-inst",
		"--event:tick", "--sb:compact", "--sb:time", "--pt",
		"pevent-mmap_secondary-tsc.pt", "--pevent:sample-type", "4",
		(char *)opt, (char *)val, "--pevent:secondary", sec,
		"--pevent:tsc-offset", "0", "--pevent:time-shift", "0",
		"--pevent:primary", pri,
	};
	int err;
	char *out;

	pathf(sec, sizeof(sec), "%s-pevent-secondary,sample-type=0x4,"
	      "time-zero=0x0,time-shift=0x0,time-mult=0x1.sb", t);
	pathf(pri, sizeof(pri), "%s-pevent-primary,sample-type=0x4,"
	      "time-zero=0x0,time-shift=0x0,time-mult=0x1.sb", t);
	out = run_in(t, 20, argv, &err);
	cr_assert(eq(int, err, 0));
	return out;
}

Test(ptsb, time)
{
	const char *a000 = "PERF_RECORD_MMAP  1/1, a000";
	char *out, *rec, *first;

	/* tsc-offset 2: due at once, before the first instruction. */
	out = secondary_with("--pevent:tsc-offset", "2");
	rec = strstr(out, a000);
	first = strstr(out, "0000000000001000\n");
	cr_assert(ne(ptr, rec, NULL), "%s", out);
	cr_assert(ne(ptr, first, NULL), "%s", out);
	cr_assert(lt(ptr, rec, first), "%s", out);
	cr_assert(ne(ptr, strstr(out, "000000000000a000\n"), NULL), "%s", out);
	free(out);

	/* time-shift 1: perf time 2 is TSC 4, which the trace never
	 * reaches: 0xa000 is not mapped when it runs. */
	out = secondary_with("--pevent:time-shift", "1");
	cr_assert(eq(ptr, strstr(out, a000), NULL), "%s", out);
	cr_assert(ne(ptr, strstr(out, "no memory mapped"), NULL), "%s", out);
	free(out);

	/* tsc-offset -1: one tick later (3), just in time. */
	out = secondary_with("--pevent:tsc-offset", "0xffffffffffffffff");
	rec = strstr(out, "0000000000000003  PERF_RECORD_MMAP  1/1, a000");
	cr_assert(ne(ptr, rec, NULL), "%s", out);
	cr_assert(ne(ptr, strstr(rec, "000000000000a000\n"), NULL), "%s", out);
	free(out);
}
