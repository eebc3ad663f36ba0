// SPDX-License-Identifier: BSD-3-Clause
/*
 * Raw PT decoding against libipt's own test corpus
 * (../shared/testdata/libipt-corpus): every (test, cpu) case with a ptxed
 * expectation, with the block and the instruction decoder, in-process
 * and through `btrail script`, compared as the reference harness
 * compares (diff -b). Cases Debian's
 * libipt 2.0.5 ptxed passes must pass; the others are counted. A few
 * cases go through `btrail script` too, and hostile input (garbage or
 * truncated traces, missing files) must give clear errors.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <btrail/decoder.h>

#include "decoder/pt_args.h"
#include "helpers/corpus.h"
#include "helpers/testutil.h"

/* diff -b: runs of blanks are one, blanks at a line's end are none. */
static char *norm(const char *s)
{
	char *o = malloc(strlen(s) + 2), *q = o;
	bool blank = false;

	cr_assert(ne(ptr, o, NULL));
	for (; *s; s++) {
		if (*s == ' ' || *s == '\t' || *s == '\r') {
			blank = true;
			continue;
		}
		if (*s != '\n' && blank && q > o && q[-1] != '\n')
			*q++ = ' ';
		blank = false;
		*q++ = *s;
	}
	if (q > o && q[-1] != '\n')
		*q++ = '\n';
	*q = 0;
	return o;
}

/* Split @s on blanks into @argv (at most @max words); @s is modified. */
static int words(char *s, char **argv, int n, int max)
{
	for (char *w = strtok(s, " "); w && n < max; w = strtok(NULL, " "))
		argv[n++] = w;
	return n;
}

/*
 * Run one case in its directory with @dec ("--insn-decoder" or
 * "--block-decoder") and compare. Returns 1 on a match, 0 on a
 * mismatch, -1 when it could not run (the reason in @why).
 */
static int run_case(const char *dir, char **f, const char *dec, bool cli,
		    char *why, size_t whylen)
{
	char cwd[PATH_MAX], path[PATH_MAX], opts[1024], sb[2048];
	char raw[512], cpu[64], pt[512];
	char *argv[96], *out = NULL, *exp, *a, *b;
	struct ptd_args args;
	size_t outlen = 0;
	FILE *mem;
	int argc = 0, err, ok;

	snprintf(raw, sizeof(raw), "%s", f[5]);
	snprintf(cpu, sizeof(cpu), "%s", f[3]);
	snprintf(pt, sizeof(pt), "%s", f[4]);
	snprintf(opts, sizeof(opts), "%s", f[6]);
	snprintf(sb, sizeof(sb), "%s", f[7]);
	argv[argc++] = (char *)dec;
	argv[argc++] = "--raw";
	argv[argc++] = raw;
	if (strcmp(cpu, "-")) {
		argv[argc++] = "--cpu";
		argv[argc++] = cpu;
	}
	if (strcmp(opts, "-"))
		argc = words(opts, argv, argc, 80);
	argv[argc++] = "--no-inst";
	argv[argc++] = "--pt";
	argv[argc++] = pt;
	if (strcmp(sb, "-"))
		argc = words(sb, argv, argc, 95);

	cr_assert(ne(ptr, getcwd(cwd, sizeof(cwd)), NULL));
	snprintf(path, sizeof(path), "%s/cases/%s", dir, f[2]);
	cr_assert(eq(int, chdir(path), 0), "chdir %s", path);
	if (cli) {
		/* The same command line through `btrail script`. */
		char *cargv[100], *cerr = NULL;

		cargv[0] = (char *)tu_btrail_bin();
		cargv[1] = "script";
		memcpy(cargv + 2, argv, (size_t)argc * sizeof(*argv));
		cargv[argc + 2] = NULL;
		err = tu_run(cargv, &out, &cerr);
		if (err) {
			snprintf(why, whylen, "exit %d: %.300s", err,
				 cerr ? cerr : "");
			err = -EIO;
		}
		free(cerr);
		exp = pc_slurp(f[8], NULL);
		cr_assert(eq(int, chdir(cwd), 0));
		if (err) {
			free(out);
			free(exp);
			return -1;
		}
		goto compare;
	}
	memset(&args, 0, sizeof(args));
	err = ptd_args_parse(&args, argc, argv);
	if (err) {
		/* options of later libipt versions */
		snprintf(why, whylen, "%s", args.err);
		ptd_args_free(&args);
		cr_assert(eq(int, chdir(cwd), 0));
		return -1;
	}
	mem = open_memstream(&out, &outlen);
	cr_assert(ne(ptr, mem, NULL));
	err = ptd_args_run(&args, mem, NULL);
	fclose(mem);
	ptd_args_free(&args);
	exp = pc_slurp(f[8], NULL);
	cr_assert(eq(int, chdir(cwd), 0));
	if (err) {
		snprintf(why, whylen, "%s", strerror(-err));
		free(out);
		free(exp);
		return -1;
	}
compare:
	cr_assert(ne(ptr, exp, NULL), "%s/%s", path, f[8]);
	a = norm(out);
	b = norm(exp);
	ok = !strcmp(a, b);
	if (!ok)
		snprintf(why, whylen, "got:\n%.600s\nexpected:\n%.600s", a, b);
	free(a);
	free(b);
	free(out);
	free(exp);
	return ok;
}

Test(ptraw, corpus)
{
	const char *dir = pc_corpus();
	unsigned must = 0, must_fail = 0, extra = 0, others = 0, cases = 0;
	unsigned unsupported = 0;
	struct pc_manifest m;
	char why[1400];
	char *f[20];
	int nf;

	pc_manifest__open(&m, dir);
	while ((nf = pc_manifest__next(&m, f, 20))) {
		if (nf < 17 || !strcmp(f[8], "-"))
			continue;
		cases++;
		for (int k = 0; k < 2; k++) {
			const char *dec = k ? "--block-decoder" :
					      "--insn-decoder";
			bool deb = pc_deb_passes(f[15 + k]);
			int r = run_case(dir, f, dec, false, why,
					 sizeof(why));

			if (r == -1 && strcmp(f[7], "-") &&
			    !strcmp(why, strerror(ENOSYS))) {
				/* perf sideband refused: must not happen */
				unsupported++;
				must += deb;
				continue;
			}
			if (deb) {
				must++;
				if (r != 1) {
					must_fail++;
					cr_log_error("%s %s: %s", f[0], dec,
						     why);
				}
			} else {
				others++;
				extra += r == 1;
			}
		}
	}
	pc_manifest__close(&m);
	cr_log_info("ptraw: %u cases; of the %u runs Debian's libipt 2.0.5 "
		    "passes we fail %u; of the other %u we pass %u",
		    cases, must, must_fail, others, extra);
	printf("ptraw: %u (test,cpu) cases x 2 decoders: %u/%u runs that "
	       "Debian's 2.0.5 passes pass, %u failed, %u unsupported "
	       "(perf sideband); %u of the other %u pass "
	       "too\n", cases, must - must_fail - unsupported, must,
	       must_fail, unsupported, extra, others);
	cr_assert(eq(int, cases, 440));
	cr_assert(eq(int, must, 622));
	cr_assert(eq(int, must_fail, 0));
	/* The 9 pevent cases (x 2 decoders) run with perf sideband too. */
	cr_assert(eq(int, unsupported, 0));
}

/*
 * The form of the corpus test: every run Debian's libipt 2.0.5
 * ptxed passes, through the `btrail script` binary in raw mode.
 */
Test(ptraw, corpus_through_the_cli, .timeout = 600)
{
	const char *dir = pc_corpus();
	unsigned runs = 0, failed = 0;
	struct pc_manifest m;
	char why[1400];
	char *f[20];
	int nf;

	if (!tu_btrail_bin())
		cr_skip_test("BTRAIL_BIN is not set");
	pc_manifest__open(&m, dir);
	while ((nf = pc_manifest__next(&m, f, 20))) {
		if (nf < 17 || !strcmp(f[8], "-"))
			continue;
		for (int k = 0; k < 2; k++) {
			const char *dec = k ? "--block-decoder" :
					      "--insn-decoder";

			if (!pc_deb_passes(f[15 + k]))
				continue;
			runs++;
			if (run_case(dir, f, dec, true, why, sizeof(why)) != 1) {
				failed++;
				cr_log_error("%s %s: %s", f[0], dec, why);
			}
		}
	}
	pc_manifest__close(&m);
	printf("ptraw: btrail script: %u of %u runs Debian's 2.0.5 passes "
	       "pass\n", runs - failed, runs);
	cr_assert(eq(int, runs, 622));
	cr_assert(eq(int, failed, 0));
}

/* ---- the CLI --------------------------------------------------------- */

static const char *bin(void)
{
	const char *b = tu_btrail_bin();

	if (!b)
		cr_skip_test("BTRAIL_BIN is not set");
	return b;
}

static int script(char **out, char **err, const char *dir,
		  const char *const *args)
{
	char *argv[32], cwd[PATH_MAX];
	int n = 0, st;

	argv[n++] = (char *)bin();
	argv[n++] = "script";
	while (*args)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	cr_assert(ne(ptr, getcwd(cwd, sizeof(cwd)), NULL));
	if (dir)
		cr_assert(eq(int, chdir(dir), 0), "chdir %s", dir);
	st = tu_run(argv, out, err);
	cr_assert(eq(int, chdir(cwd), 0));
	return st;
}

static void cli_case(const char *test, const char *raw, const char *dec,
		     const char *exp)
{
	const char *args[] = { dec, "--raw", raw, "--no-inst", "--pt", NULL,
			       NULL };
	char dir[PATH_MAX], pt[256], *out = NULL, *err = NULL, *e, *a, *b;

	snprintf(dir, sizeof(dir), "%s/cases/%s", pc_corpus(), test);
	snprintf(pt, sizeof(pt), "%s.pt", test);
	args[5] = pt;
	cr_assert(eq(int, script(&out, &err, dir, args), 0), "%s", err);
	snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/%s", exp);
	e = pc_slurp(dir, NULL);
	cr_assert(ne(ptr, e, NULL));
	a = norm(out);
	b = norm(e);
	cr_assert(eq(str, a, b));
	free(a);
	free(b);
	free(e);
	free(out);
	free(err);
}

Test(ptraw, cli_listing)
{
	cli_case("ovf-fup", "ovf-fup.bin:0x1000", "--block-decoder",
		 "ovf-fup-ptxed.exp");
	cli_case("ovf-fup", "ovf-fup.bin:0x1000", "--insn-decoder",
		 "ovf-fup-ptxed.exp");
	cli_case("tip_pge-ptw-tip_pgd", "tip_pge-ptw-tip_pgd.bin:0x100000",
		 "--block-decoder", "tip_pge-ptw-tip_pgd-ptxed.exp");
}

Test(ptraw, cli_disasm)
{
	char dir[PATH_MAX], *out = NULL, *err = NULL;
	const char *args[] = { "--raw", "loop-tnt.bin:0x100000", "--pt",
			       "loop-tnt.pt", NULL };

	snprintf(dir, sizeof(dir), "%s/cases/loop-tnt", pc_corpus());
	cr_assert(eq(int, script(&out, &err, dir, args), 0), "%s", err);
	/* Without --no-inst each line has its disassembly. */
	cr_assert(ne(ptr, strstr(out, "0000000000100000  "), NULL), "%s", out);
	cr_assert(ne(ptr, strstr(out, "jle "), NULL), "%s", out);
	free(out);
	free(err);
}

Test(ptraw, cli_usage)
{
	const char *help[] = { "--help", NULL };
	const char *badopt[] = { "--pt", "x.pt", "--frobnicate", NULL };
	const char *nopt[] = { "--raw", "a.bin:0x1000", NULL };
	const char *badraw[] = { "--pt", "x.pt", "--raw", "a.bin", NULL };
	const char *badcpu[] = { "--cpu", "six", "--pt", "x.pt", NULL };
	char *out = NULL, *err = NULL;

	cr_assert(eq(int, script(&out, &err, NULL, help), 0));
	cr_assert(ne(ptr, strstr(out, "--raw"), NULL));
	free(out);
	free(err);
	cr_assert(eq(int, script(&out, &err, NULL, badopt), 2));
	cr_assert(ne(ptr, strstr(err, "--frobnicate"), NULL), "%s", err);
	free(out);
	free(err);
	cr_assert(eq(int, script(&out, &err, NULL, nopt), 2));
	cr_assert(ne(ptr, strstr(err, "--pt"), NULL), "%s", err);
	free(out);
	free(err);
	cr_assert(eq(int, script(&out, &err, NULL, badcpu), 2));
	cr_assert(ne(ptr, strstr(err, "--cpu"), NULL), "%s", err);
	free(out);
	free(err);
	cr_assert(eq(int, script(&out, &err, NULL, badraw), 1));
	cr_assert(ne(ptr, strstr(err, "a.bin"), NULL), "%s", err);
	free(out);
	free(err);
}

/* ---- hostile input --------------------------------------------------- */

static char *tmpfile_with(const void *buf, size_t n)
{
	char *path = strdup("/tmp/bt-ptraw-XXXXXX");
	int fd = mkstemp(path);

	cr_assert(ge(int, fd, 0));
	tu_write_full(fd, buf, n);
	close(fd);
	return path;
}

Test(ptraw, missing_files)
{
	struct bt_ptdec *d = bt_ptdec__new(NULL);
	char *out = NULL, *err = NULL;
	const char *args[] = { "--raw", "/nonexistent/code.bin:0x1000", "--pt",
			       "/nonexistent/trace.pt", NULL };

	cr_assert(ne(ptr, d, NULL));
	cr_assert(eq(int, bt_ptdec__add_raw(d, "/nonexistent/x.bin:0x1000"),
		     -ENOENT));
	cr_assert(eq(int, bt_ptdec__add_raw(d, "nobase.bin"), -EINVAL));
	cr_assert(eq(int, bt_ptdec__add_raw(d, "x.bin:0x10-0x8:0x1000"),
		     -EINVAL));
	cr_assert(eq(int, bt_ptdec__set_trace_file(d, "/nonexistent/t.pt"),
		     -ENOENT));
	/* No trace: nothing to print. */
	cr_assert(eq(int, bt_ptdec__print(d, stdout, NULL, NULL), -EINVAL));
	bt_ptdec__free(d);

	cr_assert(eq(int, script(&out, &err, NULL, args), 1));
	cr_assert(ne(ptr, strstr(err, "/nonexistent/code.bin"), NULL), "%s",
		  err);
	free(out);
	free(err);
}

/* Decode @n bytes of @buf over @code; the listing into *@out. */
static int decode_mem(const void *buf, size_t n, const char *code,
		      char **out, struct bt_ptdec_stats *st)
{
	struct bt_ptdec_print_opts po = { .sz = sizeof(po), .no_inst = true };
	struct bt_ptdec_opts o = { .sz = sizeof(o), .kind = BT_PTDEC_BLOCK };
	size_t len = 0;
	struct bt_ptdec *d;
	FILE *mem;
	int err;

	d = bt_ptdec__new(&o);
	cr_assert(ne(ptr, d, NULL));
	if (code)
		cr_assert(eq(int, bt_ptdec__add_raw(d, code), 0));
	cr_assert(eq(int, bt_ptdec__set_trace_mem(d, buf, n), 0));
	mem = open_memstream(out, &len);
	err = bt_ptdec__print(d, mem, &po, st);
	fclose(mem);
	bt_ptdec__free(d);
	return err;
}

Test(ptraw, garbage_and_truncated)
{
	char path[PATH_MAX], code[PATH_MAX + 16], *trace, *out = NULL;
	struct bt_ptdec_stats st;
	unsigned char junk[4096];
	uint64_t seed = 42;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cases/loop-tnt/loop-tnt.pt",
		 pc_corpus());
	snprintf(code, sizeof(code), "%s/cases/loop-tnt/loop-tnt.bin:0x100000",
		 pc_corpus());
	f = fopen(path, "rb");
	cr_assert(ne(ptr, f, NULL));
	trace = malloc(1 << 16);
	n = fread(trace, 1, 1 << 16, f);
	fclose(f);
	cr_assert(gt(sz, n, 16));

	/* Every truncation decodes to an end, never a crash. */
	for (size_t cut = 0; cut < n; cut++) {
		cr_assert(eq(int, decode_mem(trace, cut, code, &out, &st), 0));
		free(out);
	}
	/* Pure garbage: no PSB, nothing to decode (ptxed prints nothing;
	 * the stats say so and the CLI warns). */
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)tu_xorshift(&seed);
	cr_assert(eq(int, decode_mem(junk, sizeof(junk), code, &out, &st), 0));
	cr_assert(eq(sz, (size_t)st.insn, 0));
	cr_assert(eq(sz, (size_t)st.syncs, 0));
	free(out);
	{
		char *p = tmpfile_with(junk, sizeof(junk)), *o = NULL, *e = NULL;
		const char *args[] = { "--raw", code, "--pt", p, NULL };

		cr_assert(eq(int, script(&o, &e, NULL, args), 0), "%s", e);
		cr_assert(ne(ptr, strstr(e, "no PSB"), NULL), "%s", e);
		cr_assert(ne(ptr, strstr(e, p), NULL), "%s", e);
		unlink(p);
		free(p);
		free(o);
		free(e);
	}
	/* Garbage after a good PSB: errors, then the decode goes on. */
	memcpy(junk, trace, n < 64 ? n : 64);
	cr_assert(eq(int, decode_mem(junk, sizeof(junk), code, &out, &st), 0));
	cr_assert(ne(ptr, strstr(out, "error"), NULL), "%s", out);
	free(out);
	/* No code mapped: errors name the missing memory. */
	cr_assert(eq(int, decode_mem(trace, n, NULL, &out, &st), 0));
	cr_assert(ne(ptr, strstr(out, "no memory mapped"), NULL), "%s", out);
	free(out);

	/* The same through a file and the CLI. */
	{
		char *p = tmpfile_with(junk, sizeof(junk)), *o = NULL, *e = NULL;
		const char *args[] = { "--raw", code, "--no-inst", "--pt", p,
				       NULL };

		cr_assert(eq(int, script(&o, &e, NULL, args), 0), "%s", e);
		cr_assert(ne(ptr, strstr(o, "error"), NULL), "%s", o);
		unlink(p);
		free(p);
		free(o);
		free(e);
	}
	free(trace);
}

/*
 * A loop of direct branches needs no trace, so libipt follows it for
 * ever: the fuzzer's input tests/fuzz/regress/pt-directloop (u16 code
 * length, code at 0x100000, trace). The decode must end, with an error
 * line that says why, with both decoders.
 */
Test(ptraw, a_loop_of_direct_branches_ends_with_an_error, .timeout = 60)
{
	char path[PATH_MAX], *code_path;
	size_t len = 0, clen;
	uint8_t *in;
	const char *src = getenv("BTRAIL_SRCDIR");

	snprintf(path, sizeof(path), "%s/tests/fuzz/regress/pt-directloop",
		 src ? src : ".");
	in = (uint8_t *)pc_slurp(path, &len);
	cr_assert(ne(ptr, in, NULL), "%s", path);
	clen = in[0] | (size_t)in[1] << 8;
	cr_assert(lt(sz, 2 + clen, len));
	code_path = tmpfile_with(in + 2, clen);
	for (int k = 0; k < 2; k++) {
		struct bt_ptdec_opts o = { .sz = sizeof(o),
			.kind = k ? BT_PTDEC_INSN : BT_PTDEC_BLOCK };
		struct bt_ptdec_print_opts po = { .sz = sizeof(po),
						  .no_inst = true };
		struct bt_ptdec_stats st;
		struct bt_ptdec *d = bt_ptdec__new(&o);
		char *out = NULL;
		size_t outlen = 0;
		FILE *mem = open_memstream(&out, &outlen);

		cr_assert(ne(ptr, d, NULL));
		cr_assert(eq(int, bt_ptdec__add_file(d, code_path, 0, 0,
						     0x100000), 0));
		cr_assert(eq(int, bt_ptdec__set_trace_mem(d, in + 2 + clen,
							  len - 2 - clen), 0));
		cr_assert(eq(int, bt_ptdec__print(d, mem, &po, &st), 0));
		fclose(mem);
		cr_assert(ge(u64, st.errors, 1));
		cr_assert(ne(ptr, strstr(out, "a loop of direct branches"),
			     NULL));
		free(out);
		bt_ptdec__free(d);
	}
	unlink(code_path);
	free(code_path);
	free(in);
}
