// SPDX-License-Identifier: BSD-3-Clause
/*
 * bt_ptdec__count(), the count-only decode bench/decode_bench times: on
 * libipt's corpus (../shared/testdata/libipt-corpus) it must count the
 * instruction lines and the error lines of each case's ptxed expectation,
 * with both decoders, and agree with the counts of a printed decode of
 * the same session.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <btrail/decoder.h>

#include "helpers/corpus.h"

/* "0000000000100000" or "? 0000000000100000": an instruction line. */
static bool insn_line(const char *l, size_t n)
{
	if (n >= 2 && l[0] == '?' && l[1] == ' ') {
		l += 2;
		n -= 2;
	}
	while (n && (l[n - 1] == ' ' || l[n - 1] == '\r'))
		n--;
	if (n != 16)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", l[i]))
			return false;
	return true;
}

/* "[2b, 100004: error: ...]", "[?, 0: sync error: ...]"; not the
 * configuration error, which is no decode error. */
static bool error_line(const char *l, size_t n)
{
	char buf[256];

	if (!n || l[0] != '[' || n >= sizeof(buf))
		return false;
	memcpy(buf, l, n);
	buf[n] = 0;
	return strstr(buf, "error: ") && !strstr(buf, "config error: ");
}

static void count_exp(const char *text, uint64_t *insn, uint64_t *errors)
{
	*insn = 0;
	*errors = 0;
	while (*text) {
		size_t n = strcspn(text, "\n");

		if (insn_line(text, n))
			(*insn)++;
		else if (error_line(text, n))
			(*errors)++;
		text += n + (text[n] == '\n');
	}
}

/* A session for one case: its raw image, trace and CPU. */
static struct bt_ptdec *open_case(const char *dir, const char *test,
				  const char *cpu, const char *pt,
				  const char *raw, enum bt_ptdec_kind kind)
{
	struct bt_ptdec_opts o = { .sz = sizeof(o), .kind = kind };
	char path[PATH_MAX];
	struct bt_ptdec *d;
	unsigned f, m;

	if (strcmp(cpu, "-")) {
		cr_assert(eq(int, sscanf(cpu, "%u/%u", &f, &m), 2), "%s", cpu);
		o.has_cpu = true;
		o.cpu_family = (uint16_t)f;
		o.cpu_model = (uint8_t)m;
	}
	d = bt_ptdec__new(&o);
	cr_assert(ne(ptr, d, NULL));
	snprintf(path, sizeof(path), "%s/cases/%s/%s", dir, test, pt);
	cr_assert(eq(int, bt_ptdec__set_trace_file(d, path), 0), "%s", path);
	snprintf(path, sizeof(path), "%s/cases/%s/%s", dir, test, raw);
	cr_assert(eq(int, bt_ptdec__add_raw(d, path), 0), "%s", path);
	return d;
}

/*
 * Every case libipt 2.0.5's ptxed passes with no extra option and no
 * sideband: the count equals the expectation's instruction and error
 * lines, with both decoders.
 */
Test(ptcount, corpus)
{
	const char *dir = pc_corpus();
	unsigned cases = 0, with_errors = 0;
	struct pc_manifest m;
	char path[PATH_MAX];
	char *f[20];
	int nf;

	pc_manifest__open(&m, dir);
	while ((nf = pc_manifest__next(&m, f, 20))) {
		uint64_t want_insn, want_err;
		char *exp;

		if (nf < 17 || !strcmp(f[8], "-") ||
		    strcmp(f[6], "-") || strcmp(f[7], "-") ||
		    !pc_deb_passes(f[15]) || !pc_deb_passes(f[16]))
			continue;
		snprintf(path, sizeof(path), "%s/cases/%s/%s", dir, f[2], f[8]);
		exp = pc_slurp(path, NULL);
		cr_assert(ne(ptr, exp, NULL), "%s", path);
		count_exp(exp, &want_insn, &want_err);
		free(exp);
		for (int k = 0; k < 2; k++) {
			enum bt_ptdec_kind kind = k ? BT_PTDEC_INSN :
						      BT_PTDEC_BLOCK;
			struct bt_ptdec_stats st;
			struct bt_ptdec *d;

			d = open_case(dir, f[2], f[3], f[4], f[5], kind);
			cr_assert(eq(int, bt_ptdec__count(d, &st), 0), "%s",
				  f[0]);
			cr_assert(eq(u64, st.insn, want_insn), "%s (%s)",
				  f[0], k ? "insn" : "block");
			cr_assert(eq(u64, st.errors, want_err), "%s (%s)",
				  f[0], k ? "insn" : "block");
			bt_ptdec__free(d);
		}
		cases++;
		with_errors += want_err > 0;
	}
	pc_manifest__close(&m);
	cr_log_info("ptcount: %u corpus cases counted right with both "
		    "decoders (%u with decode errors)\n", cases, with_errors);
	/* The corpus has 232 such cases; a broken manifest reader must not
	 * pass by counting none. */
	cr_assert(ge(u32, cases, 200));
	cr_assert(ge(u32, with_errors, 1));
}

/* Known figures: the loop of loop-tnt-64, and the same session printed. */
Test(ptcount, same_as_print)
{
	const char *dir = pc_corpus();
	struct bt_ptdec_print_opts po = { .sz = sizeof(po), .no_inst = true };
	struct bt_ptdec_stats st, pst;
	struct bt_ptdec *d;
	char *out = NULL;
	size_t len = 0;
	FILE *mem;

	d = open_case(dir, "loop-tnt-64", "-", "loop-tnt-64.pt",
		      "loop-tnt-64.bin:0x100000", BT_PTDEC_BLOCK);
	cr_assert(eq(int, bt_ptdec__count(d, &st), 0));
	cr_assert(eq(u64, st.insn, 133));
	cr_assert(eq(u64, st.errors, 0));
	/* A second count of the session gives the same instructions (not
	 * the same blocks: libipt's block cache, filled by the first
	 * decode, lets blocks run further). */
	cr_assert(eq(int, bt_ptdec__count(d, &pst), 0));
	cr_assert(eq(u64, st.insn, pst.insn));
	bt_ptdec__free(d);

	/* A fresh session, printed: the same counts, blocks included. */
	d = open_case(dir, "loop-tnt-64", "-", "loop-tnt-64.pt",
		      "loop-tnt-64.bin:0x100000", BT_PTDEC_BLOCK);
	mem = open_memstream(&out, &len);
	cr_assert(ne(ptr, mem, NULL));
	cr_assert(eq(int, bt_ptdec__print(d, mem, &po, &pst), 0));
	fclose(mem);
	free(out);
	cr_assert(eq(u64, st.insn, pst.insn));
	cr_assert(eq(u64, st.blocks, pst.blocks));
	cr_assert(eq(u64, st.syncs, pst.syncs));
	cr_assert(eq(u64, st.errors, pst.errors));
	bt_ptdec__free(d);
}

Test(ptcount, bad_args)
{
	struct bt_ptdec_stats st;
	struct bt_ptdec *d = bt_ptdec__new(NULL);

	cr_assert(ne(ptr, d, NULL));
	cr_assert(eq(int, bt_ptdec__count(NULL, &st), -EINVAL));
	cr_assert(eq(int, bt_ptdec__count(d, NULL), -EINVAL));
	/* no trace yet */
	cr_assert(eq(int, bt_ptdec__count(d, &st), -EINVAL));
	bt_ptdec__free(d);
}
