// SPDX-License-Identifier: BSD-3-Clause
/*
 * step_bench - how fast the stepping engine steps (not a timed test: it
 * prints figures and never fails on them).
 *
 * The same program (tests/progs/hello, from its first instruction after
 * exec: the dynamic loader, libc's start-up, main and exit, about 100,000
 * instructions) is stepped, in the same run and alternately:
 *
 *   plain    a bare loop of PTRACE_SINGLESTEP and waitpid, nothing else:
 *            the most ptrace can do;
 *   step     bt_step with the step facility: every instruction decoded
 *            (cached by address), every taken branch a BTS record written
 *            through the DS area of a sim event, sideband into sim;
 *   pt-emu   bt_step with pt-emu: the same stepping, PT packets through
 *            the sim event's ToPA.
 *
 * Each figure is the median of 3 runs (1 with --quick, which also stops
 * stepping after 20,000 instructions), with the min..max beside it.
 * Instructions per second: for plain, single-step traps (a rep-prefixed
 * instruction traps once per iteration, so plain counts a little more
 * than it ran); for bt_step, the instructions it reported. The ratio
 * step / plain is what the engine costs beyond ptrace itself; the issue's
 * target, at least 0.8, is marked PASS or MISS. The exit status is 0
 * unless something failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <btrail/ds.h>
#include <btrail/errno.h>
#include <btrail/step.h>

#include "bench_util.h"

#define PG		4096ull
#define RUNS		3
#define QUICK_INSNS	20000

struct fig {
	double rate;		/* instructions (or traps) per second */
	uint64_t insns;
	double secs;
};

/* The plain loop: PTRACE_SINGLESTEP + waitpid until exit (or @max). */
static int run_plain(const char *prog, uint64_t max, struct fig *f)
{
	int status, sig = 0;
	uint64_t n = 0;
	double t0;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		char *argv[] = { (char *)prog, NULL };

		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0)
			execv(prog, argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status))
		return -ECHILD;
	t0 = bench_now_s();
	for (;;) {
		if (ptrace(PTRACE_SINGLESTEP, pid, NULL, (void *)(long)sig) < 0)
			return -errno;
		sig = 0;
		if (waitpid(pid, &status, 0) != pid)
			return -errno;
		if (!WIFSTOPPED(status))
			break;
		if (WSTOPSIG(status) != SIGTRAP)
			sig = WSTOPSIG(status);
		else
			n++;
		if (max && n >= max) {
			ptrace(PTRACE_CONT, pid, NULL, NULL);
			waitpid(pid, &status, 0);
			break;
		}
	}
	f->secs = bench_now_s() - t0;
	f->insns = n;
	f->rate = (double)n / f->secs;
	return WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -ECHILD;
}

static struct bt_pmu_event *open_map(struct bt_pmu *p, uint32_t fac,
				     pid_t pid, bool sideband, uint64_t aux)
{
	struct bt_pmu_open_args a = {
		.sz = sizeof(a), .facility = fac,
		.target = { BT_TARGET_TASK, pid }, .sideband = sideband,
		.uid = getuid(),
	};
	const struct bt_pmu_ops *o = bt_pmu__ops(p);
	struct bt_pmu_buffers b;
	struct bt_pmu_event *ev = NULL;

	if (o->open(p, &a, &ev) < 0)
		return NULL;
	if (o->map(p, ev, 16 * PG, aux, false, &b) < 0 ||
	    o->enable(p, ev, true) < 0) {
		o->close(p, ev);
		return NULL;
	}
	return ev;
}

/* bt_step with @fac into sim, from spawn to exit. */
static int run_step(const char *prog, uint32_t fac, uint64_t max,
		    struct fig *f)
{
	struct bt_sim_opts so = { .sz = sizeof(so), .cap_ipc_lock = true };
	struct bt_pmu_event *trace = NULL, *sb = NULL;
	char *argv[] = { (char *)prog, NULL };
	struct bt_step_stats st;
	struct bt_step *s = NULL;
	struct bt_pmu *sim;
	double t0;
	int err, status;

	sim = bt_pmu__new_sim(&so);
	if (!sim)
		return -errno;
	{
		struct bt_step_opts o = { .sz = sizeof(o), .facility = fac,
					  .sim = sim, .max_insns = max };

		s = bt_step__spawn(&o, argv);
	}
	if (!s) {
		err = -errno;
		goto out;
	}
	trace = open_map(sim, fac, bt_step__pid(s), false, 1024 * PG);
	sb = open_map(sim, 0, bt_step__pid(s), true, 0);
	err = trace && sb ? bt_step__bind(s, trace, sb) : -ENOMEM;
	if (err < 0)
		goto out;
	t0 = bench_now_s();
	err = bt_step__run(s);
	f->secs = bench_now_s() - t0;
	bt_step__stats(s, &st);
	f->insns = st.insns;
	f->rate = (double)st.insns / f->secs;
	status = bt_step__status(s);
	if (!err && !(WIFEXITED(status) && !WEXITSTATUS(status)))
		err = -ECHILD;
out:
	bt_step__free(s);
	if (trace)
		bt_pmu__ops(sim)->close(sim, trace);
	if (sb)
		bt_pmu__ops(sim)->close(sim, sb);
	bt_pmu__free(sim);
	return err;
}

static int cmp_fig(const void *a, const void *b)
{
	double x = ((const struct fig *)a)->rate;
	double y = ((const struct fig *)b)->rate;

	return (x > y) - (x < y);
}

static void print_fig(const char *name, struct fig *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_fig);
	printf("  %-34s %9.0f insns/s  (%d run%s: %.0f..%.0f; %" PRIu64
	       " instructions in %.2f s)\n", name, v[n / 2].rate, n,
	       n > 1 ? "s" : "", v[0].rate, v[n - 1].rate, v[n / 2].insns,
	       v[n / 2].secs);
}

int main(int argc, char **argv)
{
	struct fig plain[RUNS], step[RUNS], ptemu[RUNS];
	bool quick = argc > 1 && !strcmp(argv[1], "--quick");
	int runs = quick ? 1 : RUNS, err = 0;
	uint64_t max = quick ? QUICK_INSNS : 0;
	const char *dir = getenv("BTRAIL_PROGS");
	char prog[4096];
	double ratio;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: step_bench [--quick]\n"
		       "Steps $BTRAIL_PROGS/hello with a bare PTRACE_SINGLESTEP loop,\n"
		       "with step and with pt-emu; prints instructions per second\n"
		       "and the ratios. --quick: one run of 20000 instructions.\n");
		return 0;
	}
	if (argc > 2 || (argc > 1 && !quick)) {
		fprintf(stderr, "usage: step_bench [--quick]\n");
		return 2;
	}
	snprintf(prog, sizeof(prog), "%s/hello", dir ? dir : "build/tests/progs");
	if (access(prog, X_OK) < 0) {
		fprintf(stderr, "step_bench: %s: %s (set BTRAIL_PROGS)\n", prog,
			strerror(errno));
		return 1;
	}
	bench_print_machine();
	printf("program: %s from exec%s\n", prog,
	       quick ? ", first 20000 instructions (--quick)" : "");

	/* Interleaved, so outside load spreads over all three. */
	for (int i = 0; i < runs && !err; i++) {
		err = run_plain(prog, max, &plain[i]);
		if (!err)
			err = run_step(prog, BT_FAC_STEP, max, &step[i]);
		if (!err)
			err = run_step(prog, BT_FAC_PTEMU, max, &ptemu[i]);
	}
	if (err) {
		fprintf(stderr, "step_bench: %s\n", bt_strerror(err));
		return 1;
	}
	print_fig("plain PTRACE_SINGLESTEP + waitpid", plain, runs);
	print_fig("bt_step, step (BTS into sim)", step, runs);
	print_fig("bt_step, pt-emu (PT into sim)", ptemu, runs);
	ratio = step[runs / 2].rate / plain[runs / 2].rate;
	printf("ratio step / plain: %.2f (target >= 0.80: %s)\n", ratio,
	       ratio >= 0.8 ? "PASS" : "MISS");
	printf("ratio pt-emu / plain: %.2f\n",
	       ptemu[runs / 2].rate / plain[runs / 2].rate);
	return 0;
}
