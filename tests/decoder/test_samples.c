// SPDX-License-Identifier: BSD-3-Clause
/*
 * PEBS and LBR samples of a bundle: bt_recon__samples() and `btrail
 * script BUNDLE --samples [--format json]`.
 *
 * The bundle is made the way a recording makes it: the sim backend plays
 * the kernel (a per-task PEBS event through its DS area and PMIs, a
 * per-task LBR event writing PERF_RECORD_SAMPLEs with branch stacks, a
 * sideband event with the MMAP2 of this test binary's code), the
 * collector drains them into a KMES session and bt_bundle_write() makes
 * the bundle. The sampled ips, LBR froms and tos lie in functions of this
 * file, so the symbols come from this binary; addr2line (binutils, not
 * libdw) is the oracle of file:line, the compiler's perf_branch_entry
 * bitfield that of the flag bits.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <link.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>

#include <btrail/bundle.h>
#include <btrail/collector.h>
#include <btrail/decoder.h>
#include <btrail/events.h>
#include <btrail/kmes.h>

#include "ds/sim.h"
#include "helpers/recordutil.h"
#include "helpers/testutil.h"

#define PG		4096ull
#define PID		4241
#define TID		4242
#define PERIOD		5000
#define NPEBS		4
#define NLBR		3

/* ---- Code and data the samples point into ------------------------------- */

static volatile unsigned smp_data[64];

static __attribute__((noinline, noclone, used)) unsigned smp_alpha(unsigned x)
{
	unsigned s = 0;

	for (unsigned i = 0; i < x; i++)
		s += smp_data[i % 64] * x;
	return s;
}

static __attribute__((noinline, noclone, used)) unsigned smp_beta(unsigned x)
{
	unsigned s = 1;

	for (unsigned i = 0; i < x; i++)
		s ^= smp_alpha(i) + smp_data[(i * 7) % 64];
	return s;
}

struct fn {
	const char *name;
	uint64_t addr;		/* run time */
};

static struct fn fns[2];

static void fns_init(void)
{
	fns[0].name = "smp_alpha";
	fns[0].addr = (uint64_t)(uintptr_t)&smp_alpha;
	fns[1].name = "smp_beta";
	fns[1].addr = (uint64_t)(uintptr_t)&smp_beta;
}

/* PEBS sample @i: ip, data address, TSC */
static uint64_t pebs_ip(unsigned i)
{
	return fns[i % 2].addr + 2 * i;
}

static uint64_t pebs_addr(unsigned i)
{
	return (uint64_t)(uintptr_t)&smp_data[8 * i + 1];
}

static uint64_t pebs_tsc(unsigned i)
{
	return 2000000 + 1013 * (uint64_t)i;
}

static const unsigned lbr_depth[NLBR] = { 3, 0, 5 };

/* LBR sample @k's stack, newest first; flags of every kind. */
static unsigned lbr_stack(unsigned k, struct perf_branch_entry *e)
{
	static const unsigned types[] = { PERF_BR_CALL, PERF_BR_RET,
					  PERF_BR_COND, PERF_BR_UNKNOWN,
					  PERF_BR_IND };
	unsigned n = lbr_depth[k];

	memset(e, 0, 32 * sizeof(*e));
	for (unsigned j = 0; j < n; j++) {
		e[j].from = fns[(k + j) % 2].addr + j + 1;
		e[j].to = fns[(k + j + 1) % 2].addr + 3 * j;
		e[j].mispred = (k + j) % 3 == 0;
		e[j].predicted = (k + j) % 3 == 1;
		e[j].in_tx = j == 2;
		e[j].abort = j == 4;
		e[j].cycles = (uint16_t)(17 * (j + 1) + k);
		e[j].type = types[j % 5];
	}
	return n;
}

static uint64_t lbr_ip(unsigned k)
{
	return fns[k % 2].addr + 5 + k;
}

/* ---- The oracles --------------------------------------------------------- */

static int main_bias_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	*(uint64_t *)data = info->dlpi_addr;
	return 1;	/* the first object is the program */
}

static uint64_t main_bias(void)
{
	uint64_t b = 0;

	dl_iterate_phdr(main_bias_cb, &b);
	return b;
}

static char exe[PATH_MAX];

/* The executable mapping of this binary's code: start, length, offset. */
static void exe_map(uint64_t *start, uint64_t *len, uint64_t *pgoff)
{
	uint64_t a = (uint64_t)(uintptr_t)&smp_alpha;
	FILE *f = fopen("/proc/self/maps", "r");
	char line[PATH_MAX + 128];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	cr_assert(gt(long, (long)n, 0));
	exe[n] = '\0';
	cr_assert(ne(ptr, f, NULL));
	*len = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e, off;

		if (sscanf(line, "%llx-%llx %*s %llx", &s, &e, &off) != 3)
			continue;
		if (a >= s && a < e) {
			*start = s;
			*len = e - s;
			*pgoff = off;
			cr_assert(ne(ptr, strstr(line, exe), NULL), "%s", line);
			break;
		}
	}
	fclose(f);
	cr_assert(gt(u64, *len, 0));
}

struct where {
	char name[64];
	uint64_t off;
	char file[512];
	unsigned line;
};

/* What @addr is: name+off from fns, file:line from addr2line. */
static void oracle(uint64_t addr, struct where *w)
{
	char hex[32];
	char *argv[] = { "addr2line", "-e", exe, hex, NULL };
	char *out = NULL, *err = NULL, *colon, *f;
	const char *srcdir = getenv("BTRAIL_SRCDIR");
	char cwd[PATH_MAX];
	uint64_t best = 0;

	memset(w, 0, sizeof(*w));
	for (unsigned i = 0; i < 2; i++) {
		if (fns[i].addr <= addr && fns[i].addr >= best) {
			best = fns[i].addr;
			snprintf(w->name, sizeof(w->name), "%s", fns[i].name);
			w->off = addr - fns[i].addr;
		}
	}
	snprintf(hex, sizeof(hex), "0x%" PRIx64, addr - main_bias());
	argv[0] = "/usr/bin/addr2line";
	if (!srcdir)
		srcdir = getcwd(cwd, sizeof(cwd));
	if (access(argv[0], X_OK) < 0)
		cr_skip_test("no addr2line (binutils) for the line oracle");
	cr_assert(eq(int, tu_run(argv, &out, &err), 0), "addr2line: %s", err);
	/* "FILE:LINE" or "FILE:LINE (discriminator N)" */
	out[strcspn(out, " \n")] = '\0';
	colon = strrchr(out, ':');
	cr_assert(ne(ptr, colon, NULL), "addr2line: %s", out);
	*colon = '\0';
	/*
	 * addr2line joins the compilation directory (the source tree: the
	 * Makefile compiles with paths relative to it) to the name DWARF
	 * records; btrail shows the name as recorded, as gdb's "list" does
	 */
	f = out;
	if (srcdir && !strncmp(f, srcdir, strlen(srcdir)) &&
	    f[strlen(srcdir)] == '/')
		f += strlen(srcdir) + 1;
	snprintf(w->file, sizeof(w->file), "%s", f);
	w->line = (unsigned)strtoul(colon + 1, NULL, 10);
	cr_assert(gt(u32, w->line, 0), "addr2line knows no line of %s", hex);
	free(out);
	free(err);
}

static const char *symstr(const struct where *w, char *buf, size_t len)
{
	if (w->off)
		snprintf(buf, len, "%s+0x%" PRIx64, w->name, w->off);
	else
		snprintf(buf, len, "%s", w->name);
	return buf;
}

/* ---- Making the bundle --------------------------------------------------- */

static struct bt_pmu_event *open_ev(struct bt_pmu *p, uint32_t fac, bool sb,
				    const struct bt_trace_config *cfg,
				    uint64_t data, struct bt_pmu_buffers *b)
{
	struct bt_pmu_open_args a = {
		.sz = sizeof(a), .facility = fac,
		.target = { BT_TARGET_TASK, TID }, .sideband = sb,
		.config = cfg, .uid = getuid(),
	};
	const struct bt_pmu_ops *o = bt_pmu__ops(p);
	struct bt_pmu_event *ev = NULL;

	cr_assert(eq(int, o->open(p, &a, &ev), 0));
	cr_assert(eq(int, o->map(p, ev, data, 0, false, b), 0));
	cr_assert(eq(int, o->enable(p, ev, true), 0));
	return ev;
}

static void close_ev(struct bt_pmu *p, struct bt_pmu_event *ev)
{
	bt_pmu__ops(p)->unmap(p, ev);
	bt_pmu__ops(p)->close(p, ev);
}

static void add_src(struct bt_collector *c, struct bt_pmu *p,
		    struct bt_pmu_event *tr, const struct bt_pmu_buffers *tb,
		    struct bt_pmu_event *sb, const struct bt_pmu_buffers *sbb,
		    uint32_t fac, uint32_t slot)
{
	struct bt_collector_source s = {
		.sz = sizeof(s), .pmu = p, .trace = tr, .trace_buf = tb,
		.sideband = sb, .sideband_buf = sbb, .facility = fac,
		.target = { BT_TARGET_TASK, TID }, .slot = slot,
	};

	cr_assert(ge(int, bt_collector__add(c, &s), 0));
}

static uint64_t page_time(const struct perf_event_mmap_page *pc, uint64_t tsc)
{
	uint64_t quot = tsc >> pc->time_shift;
	uint64_t rem = tsc & ((1ull << pc->time_shift) - 1);

	cr_assert(pc->cap_user_time_zero);
	return pc->time_zero + quot * pc->time_mult +
	       ((rem * pc->time_mult) >> pc->time_shift);
}

struct made {
	char dir[64];
	char bundle[128];
	uint64_t pebs_time[NPEBS];
	uint64_t lbr_t0[NLBR], lbr_t1[NLBR];
};

/*
 * The bundle: slot 0 the sideband (this binary's MMAP2), slot 1 the PEBS
 * samples, slot 2 the LBR samples; with @samples false, the sideband
 * only.
 */
static void make_bundle(struct made *m, bool samples)
{
	const char *name = tu_name("smp");
	struct bt_kmes_session *s = tu_create(name, 4 << 20, 3);
	struct bt_sim_opts so = { .sz = sizeof(so), .nr_cpus = 2,
				  .cap_ipc_lock = true };
	struct bt_pmu *p = bt_pmu__new_sim(&so);
	struct bt_trace_config cfg = { .sz = sizeof(cfg), .period = PERIOD };
	struct bt_pmu_buffers sbb, pb, lb;
	struct bt_pmu_event *sb, *pe = NULL, *le = NULL;
	struct bt_collector_opts co = { .sz = sizeof(co), .session = s,
					.mode = BT_MODE_STREAM,
					.no_threads = true };
	struct bt_collector *c;
	struct perf_branch_entry e[32];
	uint64_t start = 0, len = 0, pgoff = 0;

	cr_assert(ne(ptr, p, NULL));
	fns_init();
	exe_map(&start, &len, &pgoff);
	c = bt_collector__new(&co);
	cr_assert(ne(ptr, c, NULL));
	sb = open_ev(p, 0, true, NULL, 8 * PG, &sbb);
	add_src(c, p, NULL, NULL, sb, &sbb, BT_FAC_PEBS, 0);
	if (samples) {
		pe = open_ev(p, BT_FAC_PEBS, false, &cfg, 32 * PG, &pb);
		le = open_ev(p, BT_FAC_LBR, false, NULL, 8 * PG, &lb);
		add_src(c, p, pe, &pb, NULL, NULL, BT_FAC_PEBS, 1);
		add_src(c, p, le, &lb, NULL, NULL, BT_FAC_LBR, 2);
	}
	cr_assert(eq(int, bt_sim_mmap2(p, PID, TID, start, len, pgoff,
				       PROT_READ | PROT_EXEC, MAP_PRIVATE,
				       exe), 0));
	/* the task runs on CPU 1 */
	cr_assert(eq(int, bt_sim_switch(p, 1, 0, 0, PID, TID), 0));
	for (unsigned i = 0; samples && i < NPEBS; i++) {
		struct bt_sim_pebs_record r = {
			.ip = pebs_ip(i), .addr = pebs_addr(i),
			.tsc = pebs_tsc(i),
		};

		cr_assert(eq(int, bt_sim_pebs_record(p, pe, &r), 0));
		m->pebs_time[i] = page_time(pb.page, pebs_tsc(i));
	}
	for (unsigned k = 0; samples && k < NLBR; k++) {
		unsigned n = lbr_stack(k, e);

		m->lbr_t0[k] = page_time(lb.page, bt_sim_tsc(p));
		cr_assert(eq(int, bt_sim_lbr_sample(p, le, PID, TID, lbr_ip(k),
						    e, n), 0));
		m->lbr_t1[k] = page_time(lb.page, bt_sim_tsc(p));
	}
	cr_assert(ge(long, bt_collector__drain(c), 0));
	/* the freeze's disable drains the rest of the PEBS buffer */
	cr_assert(eq(int, bt_collector__freeze(c, NULL), 0));
	ru_tmpdir(m->dir, sizeof(m->dir), "samples");
	snprintf(m->bundle, sizeof(m->bundle), "%s/b", m->dir);
	cr_assert(eq(int, bt_bundle_write(name, m->bundle, NULL), 0));
	bt_collector__free(c);
	if (samples) {
		close_ev(p, pe);
		close_ev(p, le);
	}
	close_ev(p, sb);
	bt_pmu__free(p);
	bt_kmes_session__close(s);
	cr_assert(eq(int, bt_kmes_session__destroy(name, false), 0));
}

static void made_free(struct made *m)
{
	ru_rmrf(m->dir);
}

static int btrail(char **out, char **err, const char *b, const char *a1,
		  const char *a2, const char *a3)
{
	const char *bin = tu_btrail_bin();
	char *argv[] = { (char *)bin, "script", (char *)b, (char *)a1,
			 (char *)a2, (char *)a3, NULL };

	if (!bin)
		cr_skip_test("BTRAIL_BIN is not set (make check sets it)");
	return tu_run(argv, out, err);
}

/* The next line of *@p (advanced), without its newline, into @buf. */
static const char *next_line(const char **p, char *buf, size_t len)
{
	size_t n = strcspn(*p, "\n");

	cr_assert(lt(sz, n, len));
	memcpy(buf, *p, n);
	buf[n] = '\0';
	*p += n + ((*p)[n] == '\n');
	return buf;
}

/* ---- The API ------------------------------------------------------------- */

struct api {
	const struct made *m;
	unsigned npebs, nlbr;
};

static int api_each(void *ctx, const struct bt_sample *s)
{
	struct api *a = ctx;
	struct perf_branch_entry e[32];

	cr_assert(eq(i32, s->pid, PID));
	cr_assert(eq(i32, s->tid, TID));
	cr_assert(eq(i32, s->cpu, 1));
	if (s->kind == BT_SAMPLE_PEBS) {
		unsigned i = a->npebs++;

		/* PEBS (stream 1) comes before LBR (stream 2) */
		cr_assert(eq(u32, a->nlbr, 0));
		cr_assert(eq(u32, s->stream, 1));
		cr_assert(lt(u32, i, NPEBS));
		cr_assert(eq(u64, s->ip, pebs_ip(i)));
		cr_assert(eq(u64, s->addr, pebs_addr(i)));
		cr_assert(eq(u64, s->time, a->m->pebs_time[i]));
		cr_assert(eq(u64, s->period, PERIOD));
		cr_assert(eq(sz, s->nlbr, 0));
		cr_assert(eq(ptr, (void *)s->lbr, NULL));
		return 0;
	}
	cr_assert(eq(u32, s->kind, BT_SAMPLE_LBR));
	cr_assert(eq(u32, s->stream, 2));
	{
		unsigned k = a->nlbr++, n;

		cr_assert(lt(u32, k, NLBR));
		n = lbr_stack(k, e);
		cr_assert(eq(u64, s->ip, lbr_ip(k)));
		cr_assert(ge(u64, s->time, a->m->lbr_t0[k]));
		cr_assert(le(u64, s->time, a->m->lbr_t1[k]));
		cr_assert(eq(sz, s->nlbr, n));
		for (unsigned j = 0; j < n; j++) {
			const struct bt_lbr_entry *l = &s->lbr[j];
			uint64_t raw;

			memcpy(&raw, (const char *)&e[j] + 16, 8);
			cr_assert(eq(u64, l->from, e[j].from));
			cr_assert(eq(u64, l->to, e[j].to));
			cr_assert(eq(u64, l->flags, raw));
			cr_assert(eq(int, l->mispred, e[j].mispred));
			cr_assert(eq(int, l->predicted, e[j].predicted));
			cr_assert(eq(int, l->in_tx, e[j].in_tx));
			cr_assert(eq(int, l->abort, e[j].abort));
			cr_assert(eq(u32, l->cycles, e[j].cycles));
			cr_assert(eq(u32, l->type, e[j].type));
		}
	}
	return 0;
}

static int stop_at_second(void *ctx, const struct bt_sample *s)
{
	(void)s;
	return ++*(int *)ctx == 2 ? -42 : 0;
}

Test(samples, api_tells_every_pebs_and_lbr_sample_decoded)
{
	struct made m;
	struct api a = { .m = &m };
	struct bt_recon *r;
	struct bt_sym sym;
	struct where w;
	int calls = 0;

	make_bundle(&m, true);
	r = bt_recon__open(m.bundle, NULL);
	cr_assert(ne(ptr, r, NULL), "open: %s", strerror(errno));
	cr_assert(eq(long, bt_recon__samples(r, api_each, &a), NPEBS + NLBR));
	cr_assert(eq(u32, a.npebs, NPEBS));
	cr_assert(eq(u32, a.nlbr, NLBR));
	/* a second walk sees the same (the streams are rewound) */
	a.npebs = a.nlbr = 0;
	cr_assert(eq(long, bt_recon__samples(r, api_each, &a), NPEBS + NLBR));
	/* the callback's value stops the walk */
	cr_assert(eq(long, bt_recon__samples(r, stop_at_second, &calls), -42));
	cr_assert(eq(int, calls, 2));
	cr_assert(eq(long, bt_recon__samples(r, NULL, NULL), -EINVAL));
	/* the sampled ips are this binary's functions */
	cr_assert(eq(int, bt_recon__symbolize(r, PID, pebs_ip(1), &sym), 0));
	oracle(pebs_ip(1), &w);
	cr_assert(eq(str, (char *)sym.name, "smp_beta"));
	cr_assert(eq(u64, sym.offset, 2));
	bt_recon__free(r);
	made_free(&m);
}

/* ---- The text view ------------------------------------------------------- */

/* "(sym+off file:line)" or "(sym+off)" of @addr, by the oracles. */
static const char *where_str(uint64_t addr, bool line, char *buf,
			     size_t len)
{
	struct where w;
	char s[128];

	oracle(addr, &w);
	if (line)
		snprintf(buf, len, "(%s %s:%u)", symstr(&w, s, sizeof(s)),
			 w.file, w.line);
	else
		snprintf(buf, len, "(%s)", symstr(&w, s, sizeof(s)));
	return buf;
}

Test(samples, text_lines_field_by_field_with_symbols_and_stacks)
{
	static const char *const tname[] = { "call", "ret", "cond", NULL,
					     "ind" };
	struct made m;
	char *out = NULL, *err = NULL;
	char line[4096], want[4096], w1[1024], w2[256];
	const char *p;
	struct perf_branch_entry e[32];

	make_bundle(&m, true);
	cr_assert(eq(int, btrail(&out, &err, m.bundle, "--samples", NULL,
				 NULL), 0), "%s", err);
	p = out;
	for (unsigned i = 0; i < NPEBS; i++) {
		snprintf(want, sizeof(want), "%" PRIu64 " [001] %d/%d pebs "
			 "0x%" PRIx64 " %s addr=0x%" PRIx64 " period=%d "
			 "weight=0 data_src=0x0", m.pebs_time[i], PID, TID,
			 pebs_ip(i), where_str(pebs_ip(i), true, w1,
					       sizeof(w1)),
			 pebs_addr(i), PERIOD);
		cr_assert(eq(str, (char *)next_line(&p, line, sizeof(line)),
			     want));
	}
	for (unsigned k = 0; k < NLBR; k++) {
		unsigned n = lbr_stack(k, e);
		unsigned long long t;
		char rest[4096];

		next_line(&p, line, sizeof(line));
		/* the time: within the sample's call, checked by the API */
		cr_assert(eq(int, sscanf(line, "%llu %4095[^\n]", &t, rest),
			     2), "%s", line);
		cr_assert(ge(u64, (uint64_t)t, m.lbr_t0[k]));
		cr_assert(le(u64, (uint64_t)t, m.lbr_t1[k]));
		snprintf(want, sizeof(want), "[001] %d/%d lbr 0x%" PRIx64
			 " %s nr=%u", PID, TID, lbr_ip(k),
			 where_str(lbr_ip(k), true, w1, sizeof(w1)), n);
		cr_assert(eq(str, rest, want));
		/* the stack, newest first */
		for (unsigned j = 0; j < n; j++) {
			char flags[64];
			int o;

			o = snprintf(flags, sizeof(flags), "[%c] cycles=%u",
				     e[j].mispred ? 'M' : e[j].predicted ?
				     'P' : '-', (unsigned)e[j].cycles);
			if (tname[j % 5])
				o += snprintf(flags + o, sizeof(flags) - o,
					      " type=%s", tname[j % 5]);
			if (e[j].in_tx)
				o += snprintf(flags + o, sizeof(flags) - o,
					      " in_tx");
			if (e[j].abort)
				snprintf(flags + o, sizeof(flags) - o,
					 " abort");
			where_str(e[j].from, false, w1, sizeof(w1));
			snprintf(want, sizeof(want), "  0x%llx %s -> 0x%llx %s "
				 "%s", (unsigned long long)e[j].from, w1,
				 (unsigned long long)e[j].to,
				 where_str(e[j].to, false, w2, sizeof(w2)),
				 flags);
			cr_assert(eq(str, (char *)next_line(&p, line,
							    sizeof(line)),
				     want), "sample %u entry %u", k, j);
		}
	}
	cr_assert(eq(str, (char *)p, ""), "more lines: %s", p);
	free(out);
	free(err);
	made_free(&m);
}

/* ---- JSON ---------------------------------------------------------------- */

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

static bool mbool(json_object *o, const char *k)
{
	return json_object_get_boolean(member(o, k, json_type_boolean));
}

static uint64_t mhex(json_object *o, const char *k)
{
	const char *s = mstr(o, k);

	cr_assert(eq(int, strncmp(s, "0x", 2), 0), "%s: %s", k, s);
	return strtoull(s, NULL, 16);
}

static void check_sym(json_object *o, const char *k, uint64_t addr)
{
	struct where w;
	char off[64];

	oracle(addr, &w);
	cr_assert(eq(str, (char *)mstr(o, k), w.name));
	snprintf(off, sizeof(off), "%s_off", k);
	cr_assert(eq(i64, mint(o, off), (int64_t)w.off));
}

static void check_common(json_object *o, const char *kind, int stream,
			 uint64_t ip)
{
	struct where w;

	cr_assert(eq(str, (char *)mstr(o, "kind"), (char *)kind));
	cr_assert(eq(i64, mint(o, "stream"), stream));
	cr_assert(eq(i64, mint(o, "cpu"), 1));
	cr_assert(eq(i64, mint(o, "pid"), PID));
	cr_assert(eq(i64, mint(o, "tid"), TID));
	cr_assert(eq(u64, mhex(o, "ip"), ip));
	check_sym(o, "sym", ip);
	oracle(ip, &w);
	cr_assert(eq(str, (char *)mstr(o, "file"), w.file));
	cr_assert(eq(i64, mint(o, "line"), w.line));
}

Test(samples, json_lines_follow_script_json_md)
{
	static const char *const tname[] = { "call", "ret", "cond",
					     "unknown", "ind" };
	struct made m;
	char *out = NULL, *err = NULL;
	char line[8192];
	const char *p;
	struct perf_branch_entry e[32];

	make_bundle(&m, true);
	cr_assert(eq(int, btrail(&out, &err, m.bundle, "--samples",
				 "--format", "json"), 0), "%s", err);
	p = out;
	for (unsigned i = 0; i < NPEBS; i++) {
		json_object *o = json_tokener_parse(next_line(&p, line,
							      sizeof(line)));

		cr_assert(ne(ptr, o, NULL), "not JSON: %s", line);
		check_common(o, "pebs", 1, pebs_ip(i));
		cr_assert(eq(i64, mint(o, "time"), (int64_t)m.pebs_time[i]));
		cr_assert(eq(u64, mhex(o, "addr"), pebs_addr(i)));
		cr_assert(eq(i64, mint(o, "period"), PERIOD));
		cr_assert(eq(i64, mint(o, "weight"), 0));
		cr_assert(eq(u64, mhex(o, "data_src"), 0));
		json_object_put(o);
	}
	for (unsigned k = 0; k < NLBR; k++) {
		json_object *o = json_tokener_parse(next_line(&p, line,
							      sizeof(line)));
		unsigned n = lbr_stack(k, e);
		json_object *st;

		cr_assert(ne(ptr, o, NULL), "not JSON: %s", line);
		check_common(o, "lbr", 2, lbr_ip(k));
		cr_assert(ge(i64, mint(o, "time"), (int64_t)m.lbr_t0[k]));
		cr_assert(le(i64, mint(o, "time"), (int64_t)m.lbr_t1[k]));
		cr_assert(eq(i64, mint(o, "nr"), n));
		st = member(o, "stack", json_type_array);
		cr_assert(eq(sz, json_object_array_length(st), n));
		for (unsigned j = 0; j < n; j++) {
			json_object *x = json_object_array_get_idx(st, j);
			uint64_t raw;

			memcpy(&raw, (const char *)&e[j] + 16, 8);
			cr_assert(eq(u64, mhex(x, "from"), e[j].from));
			cr_assert(eq(u64, mhex(x, "to"), e[j].to));
			check_sym(x, "from_sym", e[j].from);
			check_sym(x, "to_sym", e[j].to);
			cr_assert(eq(u64, mhex(x, "flags"), raw));
			cr_assert(eq(int, mbool(x, "mispred"), e[j].mispred));
			cr_assert(eq(int, mbool(x, "predicted"),
				     e[j].predicted));
			cr_assert(eq(int, mbool(x, "in_tx"), e[j].in_tx));
			cr_assert(eq(int, mbool(x, "abort"), e[j].abort));
			cr_assert(eq(i64, mint(x, "cycles"), e[j].cycles));
			cr_assert(eq(str, (char *)mstr(x, "type"),
				     (char *)tname[j % 5]));
		}
		json_object_put(o);
	}
	cr_assert(eq(str, (char *)p, ""), "more lines: %s", p);
	free(out);
	free(err);
	made_free(&m);
}

/* ---- Without samples, and the command line ------------------------------- */

Test(samples, a_bundle_without_samples_says_so_and_succeeds)
{
	struct made m;
	char *out = NULL, *err = NULL;
	char want[256];
	struct bt_recon *r;

	make_bundle(&m, false);
	r = bt_recon__open(m.bundle, NULL);
	cr_assert(ne(ptr, r, NULL));
	cr_assert(eq(long, bt_recon__print_samples(r, stdout, BT_VIEW_TEXT),
		     0));
	cr_assert(eq(long, bt_recon__print_samples(r, stdout, 7), -EINVAL));
	bt_recon__free(r);
	for (int json = 0; json < 2; json++) {
		cr_assert(eq(int, btrail(&out, &err, m.bundle, "--samples",
					 json ? "--format" : NULL, "json"),
			     0), "%s", err);
		cr_assert(eq(str, out, ""));
		snprintf(want, sizeof(want), "no PEBS or LBR samples in %s",
			 m.bundle);
		cr_assert(ne(ptr, strstr(err, want), NULL), "stderr: %s", err);
		free(out);
		free(err);
	}
	/* one view at a time */
	cr_assert(eq(int, btrail(&out, &err, m.bundle, "--samples", "--calls",
				 NULL), 2));
	cr_assert(ne(ptr, strstr(err, "--samples"), NULL), "%s", err);
	free(out);
	free(err);
	made_free(&m);
}
