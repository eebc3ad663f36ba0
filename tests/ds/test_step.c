// SPDX-License-Identifier: BSD-3-Clause
/*
 * step: real programs under the stepping engine (tests/progs), their
 * trace written as BTS records into a sim event and read back as a
 * consumer reads it (the AUX area up to aux_head, records framed by
 * their offset), then checked against the binaries themselves, decoded
 * with capstone from the files the sideband says were mapped: every
 * record's from is a branch, and from each record's to straight-line
 * code reaches the next from without a branch that must have been taken.
 * Also threads, a crash, signals, attach, the --start-at forms, and the
 * exact error codes of the API.
 */
#include <capstone/capstone.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <btrail/ds.h>
#include <btrail/errno.h>
#include <btrail/step.h>

#include "ds/elfsym.h"
#include "ds/insn.h"
#include "ds/sim.h"
#include "ds/step.h"
#include "helpers/steputil.h"

#define PG	4096ull

/* ---- A session: sim events, the stepper, a tap ------------------------- */

struct sess {
	struct bt_pmu *sim;
	struct bt_step *s;
	struct bt_pmu_event *trace, *sb;
	struct bt_pmu_buffers tb, sbb;
	struct su_rec rec;
	struct bt_step_sink tap;
	pid_t pid;
};

static struct bt_pmu *new_sim(void)
{
	struct bt_sim_opts o = { .sz = sizeof(o), .nr_cpus = 2,
				 .cap_ipc_lock = true };
	struct bt_pmu *p = bt_pmu__new_sim(&o);

	cr_assert(ne(ptr, p, NULL));
	return p;
}

/* Set up the events of @x for its process and the tap. */
static void sess_bind(struct sess *x, uint32_t fac)
{
	x->pid = bt_step__pid(x->s);
	x->trace = su_open_map(x->sim, fac, x->pid, false, 256 * PG, &x->tb);
	x->sb = su_open_map(x->sim, 0, x->pid, true, 0, &x->sbb);
	cr_assert(eq(int, bt_step__bind(x->s, x->trace, x->sb), 0));
	su_rec_init(&x->rec, x->pid, NULL);
	su_rec_sink(&x->rec, &x->tap);
	cr_assert(eq(int, bt_step__set_tap(x->s, &x->tap), 0));
}

static void sess_spawn(struct sess *x, uint32_t fac, const char *prog,
		       const char *arg, const char *start_at, uint64_t max)
{
	char *argv[] = { (char *)su_prog(prog), (char *)arg, NULL };
	struct bt_step_opts o;

	memset(x, 0, sizeof(*x));
	x->sim = new_sim();
	o = (struct bt_step_opts){
		.sz = sizeof(o), .facility = fac, .sim = x->sim,
		.start_at = start_at, .max_insns = max,
	};
	x->s = bt_step__spawn(&o, argv);
	cr_assert(ne(ptr, x->s, NULL), "spawn %s: %s", prog, strerror(errno));
	sess_bind(x, fac);
}

static void sess_run(struct sess *x)
{
	cr_assert(eq(int, bt_step__run(x->s), 0));
}

static void sess_free(struct sess *x)
{
	const struct bt_pmu_ops *o = bt_pmu__ops(x->sim);

	bt_step__free(x->s);
	o->close(x->sim, x->trace);
	o->close(x->sim, x->sb);
	bt_pmu__free(x->sim);
	su_rec_fini(&x->rec);
}

/* ---- Reading the sim buffers as a consumer --------------------------- */

struct bts {
	uint64_t from, to, flags;
};

/* The BTS records in AUX (the test's areas never wrap). */
static size_t bts_records(const struct bt_pmu_buffers *b, struct bts **out)
{
	uint64_t head = __atomic_load_n(&b->page->aux_head, __ATOMIC_ACQUIRE);
	struct bts *v;
	size_t n = 0;

	cr_assert(le(u64, head, b->aux_size));
	v = calloc(head / sizeof(*v) + 1, sizeof(*v));
	cr_assert(ne(ptr, v, NULL));
	for (uint64_t off = 0; off + sizeof(*v) <= head; off += sizeof(*v)) {
		struct bts r;

		memcpy(&r, b->aux + off, sizeof(r));
		if (r.from || r.to || r.flags)
			v[n++] = r;
	}
	*out = v;
	return n;
}

struct sideband {
	size_t comm_exec, mmap2, fork, exit, sw;
	pid_t fork_tid[8], fork_ptid[8], exit_tid[8];
	size_t nexit;
	bool mmap_exe, mmap_libc;
};

static uint32_t rd32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* What the sideband event's data ring holds. */
static void sideband_read(const struct bt_pmu_buffers *b, const char *exe,
			  struct sideband *sb)
{
	uint64_t head = __atomic_load_n(&b->page->data_head, __ATOMIC_ACQUIRE);
	uint64_t off = 0;

	memset(sb, 0, sizeof(*sb));
	cr_assert(le(u64, head, b->data_size));
	while (off + sizeof(struct perf_event_header) <= head) {
		struct perf_event_header h;
		const unsigned char *p = b->data + off;

		memcpy(&h, p, sizeof(h));
		cr_assert(ge(int, h.size, sizeof(h)));
		switch (h.type) {
		case PERF_RECORD_COMM:
			sb->comm_exec += !!(h.misc & PERF_RECORD_MISC_COMM_EXEC);
			break;
		case PERF_RECORD_MMAP2: {
			const char *fn = (const char *)p + sizeof(h) + 64;

			sb->mmap2++;
			sb->mmap_exe |= !strcmp(fn, exe);
			sb->mmap_libc |= strstr(fn, "/libc.so") != NULL;
			break;
		}
		case PERF_RECORD_FORK:
			if (sb->fork < 8) {
				sb->fork_tid[sb->fork] = (pid_t)rd32(p + 16);
				sb->fork_ptid[sb->fork] = (pid_t)rd32(p + 20);
			}
			sb->fork++;
			break;
		case PERF_RECORD_EXIT:
			if (sb->nexit < 8)
				sb->exit_tid[sb->nexit++] = (pid_t)rd32(p + 16);
			sb->exit++;
			break;
		case PERF_RECORD_SWITCH:
		case PERF_RECORD_SWITCH_CPU_WIDE:
			sb->sw++;
			break;
		default:
			break;
		}
		off += h.size;
	}
}

/* ---- The binaries, decoded with capstone from the files --------------- */

struct cinsn {
	bool ok;
	bool branch;		/* capstone calls it a control transfer */
	bool may_fall;		/* conditional, or a system call that returns */
	uint8_t len;
	char mnemonic[32];
};

static struct cinsn cdecode(const struct su_rec *r, uint64_t ip)
{
	struct cinsn c = { 0 };
	uint8_t b[16];
	size_t n = su_code(r, ip, b, sizeof(b));
	cs_insn *in;
	csh h;

	if (!n)
		return c;
	cr_assert(eq(int, cs_open(CS_ARCH_X86, CS_MODE_64, &h), CS_ERR_OK));
	cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
	if (cs_disasm(h, b, n, ip, 1, &in) == 1) {
		bool rel = false;

		c.ok = true;
		c.len = (uint8_t)in->size;
		snprintf(c.mnemonic, sizeof(c.mnemonic), "%s", in->mnemonic);
		for (uint8_t g = 0; g < in->detail->groups_count; g++) {
			switch (in->detail->groups[g]) {
			case X86_GRP_JUMP: case X86_GRP_CALL: case X86_GRP_RET:
			case X86_GRP_IRET:
				c.branch = true;
				break;
			case X86_GRP_INT:
				c.branch = c.may_fall = true;
				break;
			case X86_GRP_BRANCH_RELATIVE:
				c.branch = rel = true;
				break;
			}
		}
		if (rel && in->id != X86_INS_JMP && in->id != X86_INS_CALL)
			c.may_fall = true;
		cs_free(in, 1);
	}
	cs_close(&h);
	return c;
}

/*
 * Straight-line code from @ip reaches @target: only instructions that
 * fall through (non-branches, conditional branches not taken, system
 * calls that return) in between.
 */
static void assert_reaches(const struct su_rec *r, uint64_t ip,
			   uint64_t target, size_t i)
{
	uint64_t start = ip;

	for (unsigned steps = 0; steps < 100000; steps++) {
		struct cinsn c;

		if (ip == target)
			return;
		c = cdecode(r, ip);
		cr_assert(c.ok, "record %zu: no code at %#" PRIx64 " in the "
			  "files (from %#" PRIx64 ")", i, ip, start);
		cr_assert(not(c.branch && !c.may_fall), "record %zu: %s at %#"
			  PRIx64
			  " between %#" PRIx64 " and %#" PRIx64 " has no record",
			  i, c.mnemonic, ip, start, target);
		ip += c.len;
	}
	cr_fail("record %zu: %#" PRIx64 " never reaches %#" PRIx64, i, start,
		target);
}

/* The records the tap says the CPU produced, with their threads. */
struct want {
	uint64_t from, to;
	pid_t tid;
	bool async;
};

/*
 * Taken as the CPU sees it: conditional branches to elsewhere than the
 * fall-through, every near jump, call and return, far transfers that did
 * not come back to the next instruction; nothing for an exit.
 */
static bool records_it(const struct su_insn *in)
{
	if (!in->next)
		return false;
	switch (in->cls) {
	case BT_INSN_JMP: case BT_INSN_JMP_IND: case BT_INSN_CALL:
	case BT_INSN_CALL_IND: case BT_INSN_RET:
		return true;
	default:
		return in->taken;
	}
}

static size_t wanted(const struct su_rec *r, struct want **out)
{
	struct want *w = calloc(r->ninsn + r->nasync + 1, sizeof(*w));
	size_t n = 0, a = 0;

	cr_assert(ne(ptr, w, NULL));
	for (size_t i = 0; i <= r->ninsn; i++) {
		size_t seq = i < r->ninsn ? r->insn[i].seq : SIZE_MAX;

		for (; a < r->nasync && r->async[a].seq < seq; a++)
			w[n++] = (struct want){ r->async[a].a.from,
						r->async[a].a.to,
						r->async[a].a.tid, true };
		if (i < r->ninsn && records_it(&r->insn[i]))
			w[n++] = (struct want){ r->insn[i].ip, r->insn[i].next,
						r->insn[i].tid, false };
	}
	*out = w;
	return n;
}

/*
 * The records in AUX are the CPU's, in order, and each thread's records
 * form a chain over its code: from is a branch (or, for an asynchronous
 * transfer, to is one of @handlers), and straight-line code joins them.
 * Returns the number of asynchronous records.
 */
static size_t check_records(const struct sess *x, const uint64_t *handlers,
			    size_t nh)
{
	struct want *w;
	struct bts *v;
	size_t n = bts_records(&x->tb, &v), nw = wanted(&x->rec, &w);
	size_t nasync = 0;

	cr_assert(gt(sz, n, 0));
	cr_assert(eq(sz, n, nw), "records in AUX %zu, taken branches %zu", n,
		  nw);
	for (size_t i = 0; i < n; i++) {
		cr_assert(eq(u64, v[i].from, w[i].from), "record %zu", i);
		cr_assert(eq(u64, v[i].to, w[i].to), "record %zu", i);
	}
	for (size_t i = 0; i < n; i++) {
		struct cinsn c = cdecode(&x->rec, v[i].from);
		bool is_handler = false;
		size_t prev;

		for (size_t k = 0; k < nh; k++)
			is_handler |= v[i].to == handlers[k];
		cr_assert(c.ok, "record %zu: no code at %#" PRIx64, i,
			  v[i].from);
		if (!c.branch) {
			cr_assert(is_handler, "record %zu: %s at %#" PRIx64
				  " is not a branch", i, c.mnemonic, v[i].from);
			nasync++;
		}
		/* The previous record of the same thread. */
		for (prev = i; prev-- > 0;) {
			if (w[prev].tid == w[i].tid)
				break;
		}
		if (prev != SIZE_MAX)
			assert_reaches(&x->rec, v[prev].to, v[i].from, i);
		else if (w[i].tid == x->rec.begin_tid)
			assert_reaches(&x->rec, x->rec.begin_ip, v[i].from, i);
	}
	free(v);
	free(w);
	return nasync;
}

static void assert_exited(int status, int code)
{
	int ok = WIFEXITED(status) && WEXITSTATUS(status) == code;

	cr_assert(ok, "status %#x", status);
}

/* ---- Tests ------------------------------------------------------------ */

Test(step, every_record_is_a_branch_and_straight_line_code_joins_them)
{
	struct bt_step_stats st;
	struct sideband sb;
	struct sess x;
	size_t kinds[BT_INSN_FAR + 1] = { 0 };

	sess_spawn(&x, BT_FAC_STEP, "loops", NULL, "work", 0);
	sess_run(&x);
	assert_exited(bt_step__status(x.s), 0);
	cr_assert(eq(ptr, (void *)bt_step__fault(x.s), NULL));
	cr_assert(eq(sz, check_records(&x, NULL, 0), 0));

	bt_step__stats(x.s, &st);
	cr_assert(eq(u64, st.insns, x.rec.ninsn));
	cr_assert(eq(u64, st.threads, 1));
	cr_assert(eq(u64, st.bytes, st.branches * 24));
	cr_assert(eq(u64, x.rec.begin_ip, su_sym(&x.rec, "work")));
	for (size_t i = 0; i < x.rec.ninsn; i++) {
		if (x.rec.insn[i].taken)
			kinds[x.rec.insn[i].cls]++;
	}
	/* loops has them all: jcc and loop, jmp, the jump table, calls,
	 * returns, and the exit_group system call. */
	for (int k = BT_INSN_JCC; k <= BT_INSN_RET; k++) {
		if (k != BT_INSN_CALL_IND)
			cr_assert(gt(sz, kinds[k], 0), "no taken %s",
				  bt_insn_class_name((uint32_t)k));
	}

	sideband_read(&x.sbb, su_exe(&x.rec), &sb);
	cr_assert(eq(sz, sb.comm_exec, 1));
	cr_assert(sb.mmap_exe);
	cr_assert(sb.mmap_libc);
	cr_assert(eq(sz, sb.exit, 1));
	sess_free(&x);
}

Test(step, two_threads_are_followed_with_switch_sideband)
{
	struct bt_step_stats st;
	struct sideband sb;
	struct sess x;
	pid_t other = 0;
	size_t mine = 0, theirs = 0;

	sess_spawn(&x, BT_FAC_STEP, "threads", "300", "work", 0);
	sess_run(&x);
	assert_exited(bt_step__status(x.s), 0);
	check_records(&x, NULL, 0);
	for (size_t i = 0; i < x.rec.ninsn; i++) {
		if (x.rec.insn[i].tid == x.pid) {
			mine += x.rec.insn[i].taken;
		} else {
			other = x.rec.insn[i].tid;
			theirs += x.rec.insn[i].taken;
		}
	}
	cr_assert(gt(int, other, 0));
	cr_assert(gt(sz, theirs, 300), "the worker's loop was traced");
	cr_assert(gt(sz, mine, 300));
	cr_assert(gt(sz, x.rec.nsw, 1));
	bt_step__stats(x.s, &st);
	cr_assert(eq(u64, st.threads, 2));

	sideband_read(&x.sbb, su_exe(&x.rec), &sb);
	cr_assert(eq(sz, sb.fork, 1));
	cr_assert(eq(int, sb.fork_tid[0], other));
	cr_assert(eq(int, sb.fork_ptid[0], x.pid));
	cr_assert(eq(sz, sb.exit, 2));
	/* out of one thread and into the other, per switch */
	cr_assert(eq(sz, sb.sw, 2 * x.rec.nsw));
	sess_free(&x);
}

Test(step, a_crash_leaves_the_signal_fault_address_and_registers)
{
	const struct bt_step_fault *f;
	struct user_regs_struct *r;
	struct sess x;
	uint64_t crash_here;
	struct bts *v;
	struct cinsn c;
	size_t n;
	int status, died;
	bool in_reg;

	sess_spawn(&x, BT_FAC_STEP, "crash", NULL, "work", 0);
	sess_run(&x);
	status = bt_step__status(x.s);
	died = WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
	cr_assert(died, "status %#x", status);

	f = bt_step__fault(x.s);
	cr_assert(ne(ptr, (void *)f, NULL));
	cr_assert(eq(int, f->signo, SIGSEGV));
	cr_assert(eq(int, f->code, SEGV_MAPERR));
	cr_assert(eq(u64, f->addr, 0xdead0000ull));
	cr_assert(eq(int, f->tid, x.pid));
	crash_here = su_sym(&x.rec, "crash_here");
	cr_assert(ge(u64, f->ip, crash_here));
	cr_assert(lt(u64, f->ip, crash_here + 32));
	r = (struct user_regs_struct *)&f->regs;
	cr_assert(eq(u64, r->rip, f->ip));
	in_reg = r->rax == 0xdead0000ull || r->rdi == 0xdead0000ull ||
		 r->rdx == 0xdead0000ull || r->rcx == 0xdead0000ull ||
		 r->rsi == 0xdead0000ull;
	cr_assert(in_reg, "the fault address is in a register");
	c = cdecode(&x.rec, f->ip);
	cr_assert(c.ok);
	cr_assert(eq(str, c.mnemonic, "mov"));

	/* The trace ends in crash_here, straight-line from the last record. */
	check_records(&x, NULL, 0);
	n = bts_records(&x.tb, &v);
	cr_assert(eq(u64, v[n - 1].to, crash_here));
	assert_reaches(&x.rec, v[n - 1].to, f->ip, n);
	cr_assert(eq(int, x.rec.ends, 1));
	cr_assert(eq(u64, x.rec.end_ip, f->ip));
	free(v);
	sess_free(&x);
}

Test(step, signal_handlers_show_as_records_to_the_handler)
{
	uint64_t handlers[2];
	struct sess x;

	sess_spawn(&x, BT_FAC_STEP, "sigs", NULL, "work", 0);
	sess_run(&x);
	assert_exited(bt_step__status(x.s), 0);	/* all four handlers ran */
	handlers[0] = su_sym(&x.rec, "on_usr1");
	handlers[1] = su_sym(&x.rec, "on_segv");
	cr_assert(eq(sz, x.rec.nasync, 4));
	for (size_t i = 0; i < x.rec.nasync; i++)
		cr_assert(eq(u64, x.rec.async[i].a.to,
			     handlers[i < 3 ? 0 : 1]));
	cr_assert(eq(int, x.rec.async[3].a.signo, SIGSEGV));
	cr_assert(eq(sz, check_records(&x, handlers, 2), 4));
	sess_free(&x);
}

Test(step, a_system_call_a_signal_interrupts_is_restarted)
{
	struct sess x;
	size_t again = 0;

	sess_spawn(&x, BT_FAC_STEP, "restart", NULL, "work", 0);
	sess_run(&x);
	assert_exited(bt_step__status(x.s), 0);	/* the read got its byte */
	/* The read's syscall instruction runs twice in a row. */
	for (size_t i = 1; i < x.rec.ninsn; i++)
		again += x.rec.insn[i].ip == x.rec.insn[i - 1].ip &&
			 x.rec.insn[i].cls == BT_INSN_FAR;
	cr_assert(eq(sz, again, 1));
	cr_assert(eq(sz, x.rec.nasync, 0), "SIGURG has no handler");
	check_records(&x, NULL, 0);
	sess_free(&x);
}

Test(step, without_start_at_stepping_begins_in_the_loader_and_stops_at_max)
{
	const struct bt_map *m;
	struct bt_step_stats st;
	struct sess x;

	sess_spawn(&x, BT_FAC_STEP, "hello", NULL, NULL, 2500);
	sess_run(&x);
	/* Past the limit the program runs untraced to its end. */
	assert_exited(bt_step__status(x.s), 0);
	bt_step__stats(x.s, &st);
	cr_assert(eq(u64, st.insns, 2500));
	cr_assert(eq(sz, x.rec.ninsn, 2500));
	m = bt_maps_find(x.rec.maps, x.rec.nmaps, x.rec.begin_ip);
	cr_assert(ne(ptr, (void *)m, NULL));
	cr_assert(ne(ptr, strstr(m->path, "ld-linux"), NULL), "%s", m->path);
	cr_assert(eq(int, x.rec.ends, 1));
	check_records(&x, NULL, 0);
	sess_free(&x);
}

Test(step, start_at_a_shared_object_symbol)
{
	const char *libc = NULL;
	uint64_t value, bias;
	struct sess x;

	sess_spawn(&x, BT_FAC_STEP, "hello", NULL, "libc:exit", 0);
	sess_run(&x);
	assert_exited(bt_step__status(x.s), 0);
	for (size_t i = 0; i < x.rec.nmaps && !libc; i++) {
		if (strstr(x.rec.maps[i].path, "/libc.so"))
			libc = x.rec.maps[i].path;
	}
	cr_assert(ne(ptr, (void *)libc, NULL));
	cr_assert(eq(int, bt_elfsym_lookup(libc, "exit", &value), 0));
	cr_assert(eq(int, bt_elf_load_bias(libc, x.rec.maps, x.rec.nmaps,
					   &bias), 0));
	cr_assert(eq(u64, x.rec.begin_ip, value + bias));
	cr_assert(gt(sz, x.rec.ninsn, 100));
	check_records(&x, NULL, 0);
	sess_free(&x);
}

Test(step, attach_steps_a_running_process_and_leaves_it_running)
{
	struct bt_step_stats st;
	struct bt_step_opts o;
	struct sess x;
	char buf[8] = "";
	int pfd[2], status;
	uint64_t tick;
	size_t calls = 0;
	pid_t pid;

	const char *spin = su_prog("spin");

	cr_assert(eq(int, pipe(pfd), 0));
	pid = fork();
	cr_assert(ge(int, pid, 0));
	if (!pid) {
		dup2(pfd[1], 1);
		execl(spin, spin, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	cr_assert(eq(int, (int)read(pfd[0], buf, 6), 6));
	close(pfd[0]);

	memset(&x, 0, sizeof(x));
	x.sim = new_sim();
	o = (struct bt_step_opts){ .sz = sizeof(o), .facility = BT_FAC_STEP,
				   .sim = x.sim, .max_insns = 3000 };
	x.s = bt_step__attach(&o, pid);
	cr_assert(ne(ptr, x.s, NULL), "attach: %s", strerror(errno));
	cr_assert(eq(int, bt_step__pid(x.s), pid));
	sess_bind(&x, BT_FAC_STEP);
	sess_run(&x);
	bt_step__stats(x.s, &st);
	cr_assert(eq(u64, st.insns, 3000));
	cr_assert(eq(u64, st.threads, 1));
	tick = su_sym(&x.rec, "tick");
	for (size_t i = 0; i < x.rec.ninsn; i++)
		calls += x.rec.insn[i].next == tick;
	cr_assert(gt(sz, calls, 100));
	check_records(&x, NULL, 0);

	/* Detached, it still runs; free does not touch it any more. */
	cr_assert(eq(int, waitpid(pid, &status, WNOHANG), 0));
	sess_free(&x);
	cr_assert(eq(int, waitpid(pid, &status, WNOHANG), 0));
	kill(pid, SIGKILL);
	cr_assert(eq(int, waitpid(pid, &status, 0), pid));
}

Test(step, invalid_arguments_get_exact_codes)
{
	struct bt_pmu *sim = new_sim(), *perf = bt_pmu__new_perf(NULL);
	char *argv[] = { (char *)su_prog("hello"), NULL };
	char *nope[] = { "/nonexistent/program", NULL };
	char *nopath[] = { "bt-no-such-program-here", NULL };
	char noexec_path[] = "/tmp/bt-step-noexec-XXXXXX";
	char garbage_path[] = "/tmp/bt-step-garbage-XXXXXX";
	char *notexec[] = { noexec_path, NULL };
	char *garbage[] = { garbage_path, NULL };
	int fd;
	struct bt_step_opts o = { .sz = sizeof(o), .facility = BT_FAC_STEP,
				  .sim = sim };
	struct {
		struct bt_step_opts o;
		uint64_t future;
	} big = { o, 7 };

	big.o.sz = sizeof(big);	/* a newer caller's field we do not know */
	struct bt_step_opts bad;

	cr_assert(ne(ptr, perf, NULL));
	fd = mkstemp(noexec_path);		/* 0600: not executable */
	cr_assert(ge(int, fd, 0));
	close(fd);
	fd = mkstemp(garbage_path);		/* executable, not a program */
	cr_assert(ge(int, fd, 0));
	cr_assert(eq(int, (int)write(fd, "\x01\x02garbage", 9), 9));
	close(fd);
	cr_assert(eq(int, chmod(garbage_path, 0700), 0));
#define SPAWN_FAILS(opts, args, code)					\
	do {								\
		errno = 0;						\
		cr_assert(eq(ptr, bt_step__spawn(opts, args), NULL));	\
		cr_assert(eq(int, errno, code));			\
	} while (0)
	SPAWN_FAILS(NULL, argv, EINVAL);
	bad = o;
	bad.facility = BT_FAC_PT;
	SPAWN_FAILS(&bad, argv, EINVAL);
	bad.facility = BT_FAC__COUNT + 3;
	SPAWN_FAILS(&bad, argv, EINVAL);
	bad = o;
	bad.sim = perf;
	SPAWN_FAILS(&bad, argv, EINVAL);
	bad.sim = NULL;
	SPAWN_FAILS(&bad, argv, EINVAL);
	bad = o;
	bad.sz = 4;
	SPAWN_FAILS(&bad, argv, EINVAL);
	SPAWN_FAILS((struct bt_step_opts *)&big, argv, EINVAL);
	bad = o;
	bad.facility = BT_FAC_PTEMU;
	bad.psb_period = 100;
	SPAWN_FAILS(&bad, argv, EINVAL);
	SPAWN_FAILS(&o, NULL, EINVAL);
	SPAWN_FAILS(&o, nope, ENOENT);
	SPAWN_FAILS(&o, nopath, ENOENT);
	SPAWN_FAILS(&o, notexec, EACCES);
	SPAWN_FAILS(&o, garbage, ENOEXEC);
	unlink(noexec_path);
	unlink(garbage_path);
	bad = o;
	bad.start_at = "no_such_function";
	SPAWN_FAILS(&bad, argv, ENOENT);
	bad.start_at = ":";
	SPAWN_FAILS(&bad, argv, EINVAL);

	errno = 0;
	cr_assert(eq(ptr, bt_step__attach(&o, -1), NULL));
	cr_assert(eq(int, errno, EINVAL));
	errno = 0;
	cr_assert(eq(ptr, bt_step__attach(&o, 0x3ffffff0), NULL));
	cr_assert(eq(int, errno, ESRCH));
	errno = 0;
	cr_assert(eq(ptr, bt_step__attach(&o, getpid()), NULL));
	cr_assert(eq(int, errno, EPERM));
	errno = 0;
	cr_assert(eq(ptr, bt_step__attach(&bad, getpid()), NULL));
	cr_assert(eq(int, errno, EINVAL), "opts are checked first");

	cr_assert(eq(int, bt_step__bind(NULL, NULL, NULL), -EINVAL));
	cr_assert(eq(int, bt_step__run(NULL), -EINVAL));
	cr_assert(eq(int, bt_step__status(NULL), 0));
	cr_assert(eq(ptr, (void *)bt_step__fault(NULL), NULL));
	cr_assert(eq(int, bt_step__pid(NULL), -1));
	bt_step__stats(NULL, NULL);
	bt_step__free(NULL);
	bt_pmu__free(perf);
	bt_pmu__free(sim);
#undef SPAWN_FAILS
}

Test(step, bind_and_run_check_their_arguments)
{
	struct bt_pmu_buffers b;
	struct bt_pmu_event *pt, *bts, *other, *sb;
	const struct bt_pmu_ops *ops;
	struct bt_pmu *sim = new_sim(), *sim2 = new_sim();
	char *argv[] = { (char *)su_prog("hello"), NULL };
	struct bt_step_opts o = { .sz = sizeof(o), .facility = BT_FAC_STEP,
				  .sim = sim };
	struct bt_step *s;
	pid_t pid;
	int status;

	s = bt_step__spawn(&o, argv);
	cr_assert(ne(ptr, s, NULL));
	pid = bt_step__pid(s);
	ops = bt_pmu__ops(sim);
	/* run before bind */
	cr_assert(eq(int, bt_step__run(s), -EINVAL));
	/* One stepping event per task: the wrong kind first, alone. */
	pt = su_open_map(sim, BT_FAC_PTEMU, pid, false, 16 * PG, &b);
	sb = su_open_map(sim, 0, pid, true, 0, &b);
	cr_assert(eq(int, bt_step__bind(s, pt, sb), -EINVAL), "wrong kind");
	cr_assert(eq(int, bt_step__bind(s, NULL, sb), -EINVAL));
	cr_assert(eq(int, bt_step__bind(s, sb, NULL), -EINVAL));
	ops->close(sim, pt);
	bts = su_open_map(sim2, BT_FAC_STEP, pid, false, 16 * PG, &b);
	cr_assert(eq(int, bt_step__bind(s, bts, sb), -EINVAL), "other sim");
	other = su_open_map(sim, BT_FAC_STEP, pid + 1, false, 16 * PG, &b);
	cr_assert(eq(int, bt_step__bind(s, other, sb), -EINVAL), "other task");
	ops->close(sim, other);
	other = su_open_map(sim, BT_FAC_STEP, pid, false, 16 * PG, &b);
	pt = su_open_map(sim, BT_FAC_PTEMU, pid + 1, false, 16 * PG, &b);
	cr_assert(eq(int, bt_step__bind(s, other, pt), -EINVAL),
		  "not a sideband event");
	cr_assert(eq(int, bt_step__set_tap(NULL, NULL), -EINVAL));
	cr_assert(eq(int, bt_step__bind(s, other, sb), 0));
	cr_assert(eq(int, bt_step__run(s), 0));
	status = bt_step__status(s);
	assert_exited(status, 0);
	cr_assert(eq(int, bt_step__run(s), -EALREADY));
	cr_assert(eq(int, bt_step__bind(s, other, sb), -EINVAL), "after run");
	bt_step__free(s);
	ops->close(sim, pt);
	ops->close(sim, other);
	ops->close(sim, sb);
	bt_pmu__ops(sim2)->close(sim2, bts);
	bt_pmu__free(sim);
	bt_pmu__free(sim2);
}

Test(step, free_kills_a_process_that_never_ran)
{
	struct bt_pmu *sim = new_sim();
	char *argv[] = { (char *)su_prog("spin"), NULL };
	struct bt_step_opts o = { .sz = sizeof(o), .facility = BT_FAC_STEP,
				  .sim = sim };
	struct bt_step *s = bt_step__spawn(&o, argv);
	pid_t pid;

	cr_assert(ne(ptr, s, NULL));
	pid = bt_step__pid(s);
	cr_assert(eq(int, kill(pid, 0), 0));
	bt_step__free(s);
	errno = 0;
	cr_assert(eq(int, kill(pid, 0), -1), "reaped");
	cr_assert(eq(int, errno, ESRCH));
	bt_pmu__free(sim);
}

/* ---- The engine's parts ------------------------------------------------ */

/* Not static: its address is compared with what the symbol tables say. */
int bt_test_step_marker(int x);
int bt_test_step_marker(int x)
{
	return x * 3 + 1;
}

Test(step, symbols_resolve_to_run_time_addresses)
{
	uint64_t addr = 0;
	Dl_info info;

	cr_assert(eq(int, bt_elfsym_resolve(getpid(), "bt_test_step_marker",
					    &addr), 0));
	cr_assert(eq(u64, addr, (uint64_t)(uintptr_t)&bt_test_step_marker));
	cr_assert(eq(int, bt_elfsym_resolve(getpid(), "libc:labs", &addr), 0));
	cr_assert(ne(int, dladdr((void *)(uintptr_t)addr, &info), 0));
	cr_assert(ne(ptr, strstr(info.dli_fname, "libc.so"), NULL));
	cr_assert(eq(u64, (uint64_t)(uintptr_t)info.dli_saddr, addr));
	cr_assert(eq(int, bt_elfsym_resolve(getpid(), "libc.so.6:labs",
					    &addr), 0));

	cr_assert(eq(int, bt_elfsym_resolve(getpid(), "no_such_symbol_here",
					    &addr), -ENOENT));
	cr_assert(eq(int, bt_elfsym_resolve(getpid(), "libnothere:f", &addr),
		     -ENOENT));
	cr_assert(eq(int, bt_elfsym_resolve(getpid(), "libc:", &addr),
		     -EINVAL));
	cr_assert(eq(int, bt_elfsym_resolve(getpid(), ":f", &addr), -EINVAL));
	cr_assert(eq(int, bt_elfsym_resolve(getpid(), "", &addr), -EINVAL));
	cr_assert(eq(int, bt_elfsym_resolve(0x3ffffff0, "main", &addr),
		     -ESRCH));
	cr_assert(eq(int, bt_elfsym_lookup("/etc/hostname", "main", &addr),
		     -BT_ERRNO_FORMAT));
	cr_assert(eq(int, bt_elfsym_lookup("/nonexistent", "main", &addr),
		     -ENOENT));
}

Test(step, instructions_are_classified_as_a_branch_tracer_needs)
{
	static const struct {
		uint8_t b[8];
		uint8_t n;
		uint32_t cls;
		uint8_t flags;
		uint64_t target;
	} t[] = {
		{ { 0x74, 0x10 }, 2, BT_INSN_JCC, BT_INSN_F_NEEDS_REGS, 0x1012 },
		{ { 0xe2, 0xfe }, 2, BT_INSN_JCC, BT_INSN_F_NEEDS_REGS, 0x1000 },
		{ { 0xe3, 0x00 }, 2, BT_INSN_JCC, BT_INSN_F_NEEDS_REGS, 0x1002 },
		{ { 0xeb, 0xfe }, 2, BT_INSN_JMP, 0, 0x1000 },
		{ { 0xff, 0xe0 }, 2, BT_INSN_JMP_IND, BT_INSN_F_NEEDS_REGS, 0 },
		{ { 0xe8, 0, 0, 0, 0 }, 5, BT_INSN_CALL, 0, 0x1005 },
		{ { 0xff, 0x15, 0, 0, 0, 0 }, 6, BT_INSN_CALL_IND,
		  BT_INSN_F_NEEDS_REGS, 0 },
		{ { 0x3e, 0xff, 0xd0 }, 3, BT_INSN_CALL_IND, BT_INSN_F_NEEDS_REGS,
		  0 },
		{ { 0xc3 }, 1, BT_INSN_RET, BT_INSN_F_NEEDS_REGS, 0 },
		{ { 0xc2, 8, 0 }, 3, BT_INSN_RET, BT_INSN_F_NEEDS_REGS, 0 },
		{ { 0x0f, 0x05 }, 2, BT_INSN_FAR,
		  BT_INSN_F_NEEDS_REGS | BT_INSN_F_SYSCALL, 0 },
		{ { 0xcd, 0x80 }, 2, BT_INSN_FAR,
		  BT_INSN_F_NEEDS_REGS | BT_INSN_F_SYSCALL, 0 },
		{ { 0xcc }, 1, BT_INSN_FAR, BT_INSN_F_NEEDS_REGS | BT_INSN_F_INT,
		  0 },
		{ { 0x48, 0xcf }, 2, BT_INSN_FAR, BT_INSN_F_NEEDS_REGS, 0 },
		{ { 0xcb }, 1, BT_INSN_FAR, BT_INSN_F_NEEDS_REGS, 0 },
		{ { 0xff, 0x2f }, 2, BT_INSN_FAR, BT_INSN_F_NEEDS_REGS, 0 },
		{ { 0xf3, 0xa4 }, 2, BT_INSN_OTHER,
		  BT_INSN_F_REP | BT_INSN_F_NEEDS_REGS, 0 },
		{ { 0xf3, 0x48, 0xab }, 3, BT_INSN_OTHER,
		  BT_INSN_F_REP | BT_INSN_F_NEEDS_REGS, 0 },
		{ { 0xf2, 0x0f, 0x10, 0xc1 }, 4, BT_INSN_OTHER, 0, 0 },
		{ { 0xf3, 0x0f, 0x1e, 0xfa }, 4, BT_INSN_OTHER, 0, 0 },
		{ { 0x48, 0x89, 0xe5 }, 3, BT_INSN_OTHER, 0, 0 },
	};
	struct bt_insn_desc d;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint8_t buf[16] = { 0 };

		memcpy(buf, t[i].b, sizeof(t[i].b));
		cr_assert(eq(int, bt_insn_classify(buf, sizeof(buf), 0x1000, &d),
			     0), "case %zu", i);
		cr_assert(eq(u8, d.len, t[i].n), "case %zu", i);
		cr_assert(eq(u32, d.cls, t[i].cls), "case %zu: %s", i,
			  bt_insn_class_name(d.cls));
		cr_assert(eq(u8, d.flags, t[i].flags), "case %zu", i);
		cr_assert(eq(u64, d.target, t[i].target), "case %zu", i);
	}
	/* AVX-512 that capstone 4 does not know: the engine learns its length. */
	{
		uint8_t evex[16] = { 0x62, 0xb2, 0x66, 0x20, 0x26, 0xc8 };

		cr_assert(eq(int, bt_insn_classify(evex, sizeof(evex), 0x1000,
						   &d), -EILSEQ));
	}
	cr_assert(eq(int, bt_insn_classify(NULL, 4, 0, &d), -EINVAL));
}

Test(step, the_instruction_cache_finds_what_it_decoded)
{
	struct bt_insn_cache *c = bt_insn_cache__new();
	const struct bt_insn_desc *d;
	uint8_t nop[16] = { 0x90 }, ret[16] = { 0xc3 };

	cr_assert(ne(ptr, c, NULL));
	cr_assert(eq(ptr, (void *)bt_insn_cache__find(c, 0x1000), NULL));
	/* Enough addresses to grow the table several times. */
	for (uint64_t ip = 0x1000; ip < 0x1000 + 20000; ip++) {
		cr_assert(eq(int, bt_insn_cache__add(c, ip, ip & 1 ? ret : nop,
						     16, &d), 0));
		cr_assert(eq(u64, d->ip, ip));
	}
	for (uint64_t ip = 0x1000; ip < 0x1000 + 20000; ip += 997) {
		d = bt_insn_cache__find(c, ip);
		cr_assert(ne(ptr, (void *)d, NULL));
		cr_assert(eq(u32, d->cls, ip & 1 ? BT_INSN_RET : BT_INSN_OTHER));
	}
	cr_assert(eq(u64, bt_insn_cache__decoded(c), 20000));
	bt_insn_cache__clear(c);
	cr_assert(eq(ptr, (void *)bt_insn_cache__find(c, 0x1000), NULL));
	cr_assert(eq(int, bt_insn_cache__add(c, 0, nop, 16, &d), -EINVAL));
	bt_insn_cache__free(c);
	bt_insn_cache__free(NULL);
}
