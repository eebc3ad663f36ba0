// SPDX-License-Identifier: BSD-3-Clause
/*
 * The parallel raw PT decode (bt_ptdec__print_parallel, `btrail script
 * --pt ... -j N`) must print the single-threaded listing byte for byte:
 * on libipt's corpus, on a large trace made here with libipt's encoder
 * (many PSBs, so many segments), and on that trace with garbage written
 * over it in places (error lines and resynchronisation included).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <intel-pt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <btrail/decoder.h>

#include "decoder/pt_args.h"
#include "decoder/pt_par.h"
#include "helpers/corpus.h"
#include "helpers/testutil.h"

/* The listing of @a run on @jobs threads (1: the single-threaded path). */
static char *listing(const struct ptd_args *a, unsigned int jobs, int *err)
{
	char *out = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&out, &len);

	cr_assert(ne(ptr, mem, NULL));
	*err = ptd_args_run_jobs(a, mem, NULL, jobs);
	fclose(mem);
	return out;
}

/*
 * Every corpus case Debian's libipt 2.0.5 passes, both decoders: -j 2,
 * 3 and 4 print what -j 1 prints. The traces are small, but the cut is
 * by size: a trace with two PSBs is cut at the second.
 */
Test(ptpar, corpus)
{
	const char *dir = pc_corpus();
	unsigned int cases = 0, cut = 0;
	struct pc_manifest m;
	char cwd[PATH_MAX], path[PATH_MAX];
	char *f[20];
	int nf;

	cr_assert(ne(ptr, getcwd(cwd, sizeof(cwd)), NULL));
	pc_manifest__open(&m, dir);
	while ((nf = pc_manifest__next(&m, f, 20))) {
		char opts[1024], *argv[96];
		int argc = 0;

		if (nf < 17 || strcmp(f[7], "-") || !pc_deb_passes(f[15]) ||
		    !pc_deb_passes(f[16]))
			continue;
		argv[argc++] = "--raw";
		argv[argc++] = f[5];
		if (strcmp(f[3], "-")) {
			argv[argc++] = "--cpu";
			argv[argc++] = f[3];
		}
		snprintf(opts, sizeof(opts), "%s", f[6]);
		if (strcmp(opts, "-")) {
			for (char *w = strtok(opts, " "); w && argc < 80;
			     w = strtok(NULL, " "))
				argv[argc++] = w;
		}
		argv[argc++] = "--no-inst";
		argv[argc++] = "--pt";
		argv[argc++] = f[4];
		snprintf(path, sizeof(path), "%s/cases/%s", dir, f[2]);
		cr_assert(eq(int, chdir(path), 0), "chdir %s", path);
		for (int k = 0; k < 2; k++) {
			struct ptd_args a;
			char *one, *many;
			int err1, err;

			memset(&a, 0, sizeof(a));
			argv[argc] = k ? "--insn-decoder" : "--block-decoder";
			if (ptd_args_parse(&a, argc + 1, argv)) {
				ptd_args_free(&a);	/* later libipt */
				continue;
			}
			one = listing(&a, 1, &err1);
			for (unsigned int j = 2; j <= 4; j++) {
				many = listing(&a, j, &err);
				cr_assert(eq(int, err, err1), "%s -j %u", f[0],
					  j);
				cr_assert(eq(str, many, one), "%s (%s) -j %u",
					  f[0], argv[argc], j);
				free(many);
			}
			if (!k) {
				cases++;
				cut += strstr(f[2], "psb") != NULL;
			}
			free(one);
			ptd_args_free(&a);
		}
	}
	pc_manifest__close(&m);
	cr_assert(eq(int, chdir(cwd), 0));
	cr_log_info("ptpar: %u corpus cases print the same with -j 1..4\n",
		    cases);
	cr_assert(ge(u32, cases, 200));
	cr_assert(ge(u32, cut, 5));
}

/* ---- A large trace made with libipt's encoder ----------------------- */

#define BASE	0x100000ull

/*
 * The code: a loop of a nop and a conditional jump back, left by an
 * indirect jump to its start:
 *   100000: nop; 100001: jne 100000; 100003: jmp *%rax
 */
static const uint8_t code[] = { 0x90, 0x75, 0xfd, 0xff, 0xe0 };

struct gen {
	struct pt_encoder *enc;
	uint8_t *buf;
	size_t cap;
	uint8_t bits;
	uint8_t nbits;
	uint64_t insns;
};

static void put(struct gen *g, struct pt_packet *p)
{
	cr_assert(ge(int, pt_enc_next(g->enc, p), 0));
}

static void tnt_flush(struct gen *g)
{
	struct pt_packet p = { .type = ppt_tnt_8 };

	if (!g->nbits)
		return;
	p.payload.tnt.bit_size = g->nbits;
	p.payload.tnt.payload = g->bits;
	put(g, &p);
	g->nbits = 0;
	g->bits = 0;
}

static void tnt(struct gen *g, bool taken)
{
	g->bits = (uint8_t)(g->bits << 1 | taken);
	if (++g->nbits == 6)
		tnt_flush(g);
}

static void psb(struct gen *g)
{
	struct pt_packet p = { .type = ppt_psb };

	put(g, &p);
	memset(&p, 0, sizeof(p));
	p.type = ppt_mode;
	p.payload.mode.leaf = pt_mol_exec;
	p.payload.mode.bits.exec.csl = 1;
	put(g, &p);
	memset(&p, 0, sizeof(p));
	p.type = ppt_fup;
	p.payload.ip.ipc = pt_ipc_sext_48;
	p.payload.ip.ip = BASE;
	put(g, &p);
	memset(&p, 0, sizeof(p));
	p.type = ppt_psbend;
	put(g, &p);
}

/* @n loop turns, a PSB+ about every @period bytes. */
static size_t generate(uint8_t *buf, size_t cap, unsigned int n,
		       size_t period, uint64_t seed, uint64_t *insns)
{
	struct pt_config conf;
	struct gen g = { 0 };
	uint64_t last = 0, off = 0;

	pt_config_init(&conf);
	conf.begin = buf;
	conf.end = buf + cap;
	g.enc = pt_alloc_encoder(&conf);
	cr_assert(ne(ptr, g.enc, NULL));
	psb(&g);
	for (unsigned int i = 0; i < n; i++) {
		unsigned int loops = (unsigned int)(tu_xorshift(&seed) % 9);
		struct pt_packet p = { .type = ppt_tip };

		for (unsigned int k = 0; k < loops; k++) {
			tnt(&g, true);
			g.insns += 2;
		}
		tnt(&g, false);
		tnt_flush(&g);
		g.insns += 3;
		p.payload.ip.ipc = pt_ipc_sext_48;
		p.payload.ip.ip = BASE;
		put(&g, &p);
		cr_assert(ge(int, pt_enc_get_offset(g.enc, &off), 0));
		cr_assert(lt(u64, off + 64, cap));
		if (off - last >= period) {
			psb(&g);
			last = off;
		}
	}
	cr_assert(ge(int, pt_enc_get_offset(g.enc, &off), 0));
	pt_free_encoder(g.enc);
	*insns = g.insns;
	return (size_t)off;
}

static char *code_file(void)
{
	char *path = strdup("/tmp/bt-ptpar-XXXXXX");
	int fd = mkstemp(path);

	cr_assert(ge(int, fd, 0));
	tu_write_full(fd, code, sizeof(code));
	close(fd);
	return path;
}

static struct bt_ptdec *session(const char *file, const uint8_t *trace,
				size_t len, enum bt_ptdec_kind kind)
{
	struct bt_ptdec_opts o = { .sz = sizeof(o), .kind = kind };
	struct bt_ptdec *d = bt_ptdec__new(&o);

	cr_assert(ne(ptr, d, NULL));
	cr_assert(eq(int, bt_ptdec__set_trace_mem(d, trace, len), 0));
	cr_assert(eq(int, bt_ptdec__add_file(d, file, 0, 0, BASE), 0));
	return d;
}

static char *print_j(struct bt_ptdec *d, unsigned int jobs,
		     struct bt_ptdec_stats *st)
{
	struct bt_ptdec_print_opts po = { .sz = sizeof(po), .no_inst = true };
	char *out = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&out, &len);
	int err;

	cr_assert(ne(ptr, mem, NULL));
	err = jobs == 1 ? bt_ptdec__print(d, mem, &po, st) :
			  bt_ptdec__print_parallel(d, mem, &po, st, jobs);
	fclose(mem);
	cr_assert(eq(int, err, 0), "-j %u", jobs);
	return out;
}

/*
 * Lines of @s starting with @prefix. memchr over a known length: strchr
 * on a listing of megabytes is quadratic under ASan's
 * strict_string_checks (each call measures the rest of the string).
 */
static size_t lines(const char *s, const char *prefix)
{
	size_t n = 0, k = strlen(prefix), left = strlen(s);
	const char *l = s;

	while (left) {
		const char *nl = memchr(l, '\n', left);
		size_t len = nl ? (size_t)(nl - l) : left;

		n += len >= k && !memcmp(l, prefix, k);
		if (!nl)
			break;
		left -= len + 1;
		l = nl + 1;
	}
	return n;
}

/* Decode @trace with both decoders on 1..4 threads: the same listing. */
static void same_listing(const uint8_t *trace, size_t len, uint64_t insns,
			 size_t *errors)
{
	char *file = code_file();

	*errors = 0;
	for (int k = 0; k < 2; k++) {
		struct bt_ptdec *d = session(file, trace, len, k ?
					     BT_PTDEC_INSN : BT_PTDEC_BLOCK);
		struct bt_ptdec_stats st1, st;
		char *one = print_j(d, 1, &st1);

		if (insns) {
			cr_assert(eq(u64, st1.insn, insns));
			cr_assert(eq(u64, st1.errors, 0));
		}
		*errors += lines(one, "[") - lines(one, "[disabled") -
			   lines(one, "[end of trace");
		for (unsigned int j = 2; j <= 4; j++) {
			char *many = print_j(d, j, &st);

			cr_assert(eq(str, many, one), "%s -j %u",
				  k ? "insn" : "block", j);
			cr_assert(eq(u64, st.insn, st1.insn));
			cr_assert(eq(u64, st.errors, st1.errors));
			free(many);
		}
		/* and the count-only decode */
		cr_assert(eq(int, bt_ptdec__count_parallel(d, &st, 2), 0));
		cr_assert(eq(u64, st.insn, st1.insn));
		cr_assert(eq(u64, st.errors, st1.errors));
		free(one);
		bt_ptdec__free(d);
	}
	unlink(file);
	free(file);
}

/* ~300 KiB of trace, a PSB+ every KiB: hundreds of PSBs, dozens of cuts */
Test(ptpar, generated)
{
	size_t cap = 1 << 20, len, errors;
	uint8_t *buf = malloc(cap);
	uint64_t insns;

	cr_assert(ne(ptr, buf, NULL));
	len = generate(buf, cap, 60000, 1024, 42, &insns);
	cr_assert(gt(u64, len, 200000));
	same_listing(buf, len, insns, &errors);
	cr_assert(eq(sz, errors, 0));
	free(buf);
}

/*
 * Garbage written over the trace in places, some of them at PSBs (where
 * the cuts are): decode errors, resynchronisation at the next PSB, and
 * an error in the PSB+ a segment ends at, all as one thread has them.
 */
Test(ptpar, garbage)
{
	size_t cap = 1 << 20, len, errors, total = 0;
	uint8_t *buf = malloc(cap);
	uint64_t insns, seed = 7;

	cr_assert(ne(ptr, buf, NULL));
	len = generate(buf, cap, 30000, 512, 9, &insns);
	for (int round = 0; round < 4; round++) {
		uint8_t *t = malloc(len);

		cr_assert(ne(ptr, t, NULL));
		memcpy(t, buf, len);
		for (int i = 0; i < 40; i++) {
			size_t at = (size_t)(tu_xorshift(&seed) % (len - 32));
			size_t n = 1 + (size_t)(tu_xorshift(&seed) % 24);

			/* every other one into a PSB+ */
			if (i & 1) {
				const uint8_t *p = memmem(t + at, len - at,
					"\x02\x82\x02\x82\x02\x82\x02\x82"
					"\x02\x82\x02\x82\x02\x82\x02\x82",
					16);

				if (!p)
					continue;
				at = (size_t)(p - t) + 16 +
				     (size_t)(tu_xorshift(&seed) % 8);
				n = 1 + n % 4;
				if (at + n > len)
					continue;
			}
			for (size_t k = 0; k < n; k++)
				t[at + k] = (uint8_t)tu_xorshift(&seed);
		}
		same_listing(t, len, 0, &errors);
		total += errors;
		free(t);
	}
	cr_log_info("ptpar: %zu error lines in the garbage traces\n", total);
	cr_assert(ge(sz, total, 20));
	free(buf);
}

/* `btrail script --pt ... -j N`: the same output as -j 1. */
Test(ptpar, cli)
{
	size_t cap = 4 << 20, len;
	uint8_t *buf = malloc(cap);
	char *file = code_file(), *pt = strdup("/tmp/bt-ptpar-pt-XXXXXX");
	char raw[256], *o1 = NULL, *e1 = NULL, *o2 = NULL, *e2 = NULL;
	uint64_t insns;
	int fd;

	cr_assert(ne(ptr, buf, NULL));
	/* over 1 MiB: the default is one job per CPU */
	len = generate(buf, cap, 350000, 4096, 3, &insns);
	cr_assert(gt(u64, len, 1 << 20));
	fd = mkstemp(pt);
	cr_assert(ge(int, fd, 0));
	tu_write_full(fd, buf, len);
	close(fd);
	snprintf(raw, sizeof(raw), "%s:0x%llx", file, BASE);
	{
		char *a1[] = { (char *)tu_btrail_bin(), "script", "--pt", pt,
			       "--raw", raw, "--no-inst", "-j", "1", NULL };
		char *a2[] = { (char *)tu_btrail_bin(), "script", "--pt", pt,
			       "--raw", raw, "--no-inst", "--jobs", "3",
			       NULL };
		char *a3[] = { (char *)tu_btrail_bin(), "script", "--pt", pt,
			       "--raw", raw, "--no-inst", NULL };
		char *a4[] = { (char *)tu_btrail_bin(), "script", "--pt", pt,
			       "-j", "0", NULL };

		cr_assert(eq(int, tu_run(a1, &o1, &e1), 0), "%s", e1);
		cr_assert(eq(sz, lines(o1, "0000000000100"), insns));
		cr_assert(eq(int, tu_run(a2, &o2, &e2), 0), "%s", e2);
		cr_assert(eq(str, o2, o1));
		free(o2);
		free(e2);
		cr_assert(eq(int, tu_run(a3, &o2, &e2), 0), "%s", e2);
		cr_assert(eq(str, o2, o1));
		free(o2);
		free(e2);
		cr_assert(eq(int, tu_run(a4, &o2, &e2), 2));
		cr_assert(ne(ptr, strstr(e2, "jobs"), NULL), "%s", e2);
	}
	free(o1);
	free(e1);
	free(o2);
	free(e2);
	unlink(pt);
	unlink(file);
	free(pt);
	free(file);
	free(buf);
}
