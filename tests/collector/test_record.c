// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail record, end to end: the CLI records the crashing programs of
 * tests/progs with step and pt-emu (from main), and the test checks what
 * it kept (--keep-session: the KMES rings the bundle was written from,
 * read back with the ring reader and bt_event_decode):
 *
 *   - the exit status is the program's, 128 + its signal;
 *   - the bundle exists;
 *   - bt.trigger names the signal, si_code and fault address the program
 *     must die of (0 for a null call or strlen(NULL), 0xbad000 from the
 *     second thread, a page past `small` for the wild walk, SI_TKILL for
 *     abort), in the right thread;
 *   - step: from the `to` of the last bt.branch record, straight-line
 *     code (capstone over the files the bt.mmap events name) reaches the
 *     trigger's IP; pt-emu: libipt's instruction flow decoder, over the
 *     bt.pt chunks and those files, ends at the trigger's IP.
 *
 * And: -e auto picks what bt_caps_probe says (step here) and says why;
 * SIGUSR2 through `btrail snapshot` gives a snapshot bundle while the
 * program runs; bad options get a clear error and exit status 2.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <intel-pt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <btrail/bundle.h>
#include <btrail/ds.h>
#include <btrail/events.h>
#include <btrail/kmes.h>

#include "ds/elfsym.h"
#include "ds/insn.h"
#include "ds/ptemu.h"
#include "helpers/recordutil.h"
#include "helpers/testutil.h"

/* ---- What a recording kept ---------------------------------------------- */

struct mapping {
	uint64_t addr, len, pgoff;
	char file[256];
};

struct capture {
	bool has_trigger;
	char reason[16];
	int pid, tid, signo, code;
	uint64_t addr, ip;
	bool has_regs;
	int requests;			/* bt.trigger "request" seen */
	int notifier;			/* bt.trigger "notifier" seen */
	uint64_t last_from, last_to;	/* the last branch record */
	size_t branches;
	uint8_t *pt;			/* bt.pt chunks in order */
	size_t pt_len;
	struct mapping map[64];
	size_t nmap;
};

static void str_of(const struct bt_event_value *v, char *out, size_t cap)
{
	size_t n = v->len < cap - 1 ? v->len : cap - 1;

	memcpy(out, v->p, n);
	out[n] = '\0';
}

/* Read every event of @session into @c, then remove the session. */
static void read_session(const char *session, struct capture *c)
{
	struct bt_kmes_reader *r = bt_kmes_reader__new(session, NULL);
	struct bt_kmes_event ev;
	size_t pt_cap = 0;
	int n;

	memset(c, 0, sizeof(*c));
	cr_assert(ne(ptr, r, NULL), "session %s: %s", session,
		  strerror(errno));
	while ((n = bt_kmes_reader__next(r, &ev)) != 0) {
		const struct bt_event_type *t;
		struct bt_event_value v[16];
		char why[200];

		cr_assert(eq(int, n, 1), "reading %s: %d", session, n);
		t = bt_event_type_find(ev.type, ev.type_len);
		if (!t || t->id == BT_EVID_SCHEMA)
			continue;
		cr_assert(eq(int, bt_event_decode(t, ev.payload,
						  ev.payload_len, v, why,
						  sizeof(why)), 0),
			  "%.*s: %s", (int)ev.type_len, ev.type, why);
		switch (t->id) {
		case BT_EVID_TRIGGER: {
			char reason[16];

			str_of(&v[BT_TRIGGER_REASON], reason, sizeof(reason));
			if (!strcmp(reason, "request")) {
				c->requests++;
				break;
			}
			if (!strcmp(reason, "notifier")) {
				c->notifier++;
				break;
			}
			if (c->has_trigger)
				break;	/* one per slot: the first will do */
			c->has_trigger = true;
			memcpy(c->reason, reason, sizeof(reason));
			c->pid = (int)v[BT_TRIGGER_PID].i;
			c->tid = (int)v[BT_TRIGGER_TID].i;
			c->signo = (int)v[BT_TRIGGER_SIGNO].i;
			c->code = (int)v[BT_TRIGGER_CODE].i;
			c->addr = v[BT_TRIGGER_ADDR].u;
			c->ip = v[BT_TRIGGER_IP].u;
			c->has_regs = v[BT_TRIGGER_REGS].len == BT_REGS_SIZE;
			break;
		}
		case BT_EVID_BRANCH: {
			size_t nrec = v[BT_BRANCH_RECS].len / BT_BREC_SIZE;

			if (!nrec)
				break;
			c->branches += nrec;
			c->last_from = bt_event_rec_u64(&v[BT_BRANCH_RECS],
							BT_BREC_SIZE, nrec - 1,
							BT_BREC_FROM);
			c->last_to = bt_event_rec_u64(&v[BT_BRANCH_RECS],
						      BT_BREC_SIZE, nrec - 1,
						      BT_BREC_TO);
			break;
		}
		case BT_EVID_PT:
			if (c->pt_len + v[BT_PT_DATA].len > pt_cap) {
				pt_cap = (c->pt_len + v[BT_PT_DATA].len) * 2;
				c->pt = realloc(c->pt, pt_cap);
				cr_assert(ne(ptr, c->pt, NULL));
			}
			memcpy(c->pt + c->pt_len, v[BT_PT_DATA].p,
			       v[BT_PT_DATA].len);
			c->pt_len += v[BT_PT_DATA].len;
			break;
		case BT_EVID_MMAP:
			if (c->nmap < sizeof(c->map) / sizeof(c->map[0]) &&
			    v[BT_MMAP_FILE].len) {
				struct mapping *m = &c->map[c->nmap++];

				m->addr = v[BT_MMAP_ADDR].u;
				m->len = v[BT_MMAP_LEN].u;
				m->pgoff = v[BT_MMAP_PGOFF].u;
				str_of(&v[BT_MMAP_FILE], m->file,
				       sizeof(m->file));
			}
			break;
		default:
			break;
		}
	}
	bt_kmes_reader__free(r);
	bt_kmes_session__destroy(session, true);
}

/* The newest mapping holding @addr, or NULL. */
static const struct mapping *map_of(const struct capture *c, uint64_t addr)
{
	for (size_t i = c->nmap; i-- > 0;) {
		const struct mapping *m = &c->map[i];

		if (addr >= m->addr && addr - m->addr < m->len &&
		    m->file[0] == '/')
			return m;
	}
	return NULL;
}

static size_t code_at(const struct capture *c, uint64_t addr, uint8_t *buf,
		      size_t len)
{
	const struct mapping *m = map_of(c, addr);
	ssize_t n;
	int fd;

	if (!m)
		return 0;
	if (addr + len > m->addr + m->len)
		len = m->addr + m->len - addr;
	fd = open(m->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = pread(fd, buf, len, (off_t)(addr - m->addr + m->pgoff));
	close(fd);
	return n > 0 ? (size_t)n : 0;
}

/*
 * From @from, instructions that do not branch (a conditional jump not
 * taken leaves no record either) reach @to within @max instructions.
 */
static bool straight_line(const struct capture *c, uint64_t from, uint64_t to,
			  int max)
{
	uint64_t ip = from;

	for (int i = 0; i <= max; i++) {
		struct bt_insn_desc d;
		uint8_t b[16];
		size_t n;

		if (ip == to)
			return true;
		n = code_at(c, ip, b, sizeof(b));
		if (!n || bt_insn_classify(b, n, ip, &d) < 0)
			return false;
		if (d.cls != BT_INSN_OTHER && d.cls != BT_INSN_JCC &&
		    d.cls != BT_INSN_FAR)
			return false;
		ip += d.len;
	}
	return false;
}

/* ---- Running the CLI ---------------------------------------------------- */

struct recording {
	char dir[64];
	char bundle[128];
	char session[64];
	int status;
	char *out, *err;
	struct capture cap;
};

/*
 * An independent CTF reader reads the bundle: babeltrace2 exits 0, warns
 * of nothing, and prints the trigger with its typed fields.
 */
static void babeltrace_reads(const char *bundle)
{
	char *argv[] = { "/usr/bin/babeltrace2", (char *)bundle, NULL };
	char *out = NULL, *err = NULL;

	if (access(argv[0], X_OK) != 0)
		return;		/* the bundle suite says it is missing */
	cr_assert(eq(int, tu_run(argv, &out, &err), 0), "babeltrace2: %s",
		  err);
	cr_assert(ne(ptr, strstr(out, "bt.trigger"), NULL));
	cr_assert(ne(ptr, strstr(out, "signo = "), NULL));
	cr_assert(eq(ptr, strstr(err, "WARN"), NULL), "%s", err);
	free(out);
	free(err);
}

static void record(struct recording *rec, const char *fac, const char *p)
{
	char *argv[] = {
		(char *)ru_bin(), "record", "-e", (char *)fac, "--start-at",
		"main", "--keep-session", "--session", rec->session, "-o",
		rec->bundle, "--", (char *)ru_prog(p), NULL,
	};
	struct stat st;

	memset(rec, 0, sizeof(*rec));
	snprintf(rec->dir, sizeof(rec->dir), "/tmp/bt-rec-XXXXXX");
	cr_assert(ne(ptr, mkdtemp(rec->dir), NULL));
	snprintf(rec->bundle, sizeof(rec->bundle), "%s/crash.bundle",
		 rec->dir);
	snprintf(rec->session, sizeof(rec->session), "%s",
		 tu_name("rec"));
	tu_cleanup_at_exit(rec->session);
	argv[1] = "record";
	argv[12] = (char *)ru_prog(p);
	rec->status = tu_run(argv, &rec->out, &rec->err);
	cr_assert(eq(int, stat(rec->bundle, &st), 0),
		  "no bundle %s; stderr:\n%s", rec->bundle, rec->err);
	cr_assert(eq(u32, st.st_mode & S_IFMT, S_IFDIR));
	read_session(rec->session, &rec->cap);
	babeltrace_reads(rec->bundle);
}

static void recording_free(struct recording *rec)
{
	ru_rmrf(rec->dir);
	free(rec->out);
	free(rec->err);
	free(rec->cap.pt);
}

/* ---- libipt over the bt.pt chunks --------------------------------------- */

/* Where the PT stream says execution stopped: the IP it was disabled at. */
static uint64_t pt_end(const struct capture *c, size_t *ninsn)
{
	struct pt_insn_decoder *dec;
	struct pt_config cfg;
	uint64_t end = 0;
	int status;

	*ninsn = 0;
	cr_assert(eq(int, bt_ptemu_config(&cfg), 0));
	cfg.begin = c->pt;
	cfg.end = c->pt + c->pt_len;
	dec = pt_insn_alloc_decoder(&cfg);
	cr_assert(ne(ptr, dec, NULL));
	for (size_t i = 0; i < c->nmap; i++) {
		const struct mapping *m = &c->map[i];

		if (m->file[0] == '/')
			pt_image_add_file(pt_insn_get_image(dec), m->file,
					  m->pgoff, m->len, NULL, m->addr);
	}
	status = pt_insn_sync_forward(dec);
	while (status >= 0) {
		struct pt_insn insn;

		while (status & pts_event_pending) {
			struct pt_event ev;

			status = pt_insn_event(dec, &ev, sizeof(ev));
			if (status < 0)
				break;
			if (ev.type == ptev_async_disabled)
				end = ev.variant.async_disabled.at;
		}
		if (status < 0 || (status & pts_eos))
			break;
		memset(&insn, 0, sizeof(insn));
		status = pt_insn_next(dec, &insn, sizeof(insn));
		if (insn.iclass != ptic_error) {
			(*ninsn)++;
			end = insn.ip + insn.size;
		}
	}
	cr_assert(status >= 0 || status == -pte_eos,
		  "libipt: %s after %zu instructions",
		  pt_errstr(pt_errcode(status)), *ninsn);
	pt_insn_free_decoder(dec);
	return end;
}

/* ---- The crashes ---------------------------------------------------------- */

struct crash {
	const char *prog;
	int signo;
	int code;		/* expected si_code; INT32_MIN: any */
	uint64_t addr;		/* expected si_addr; UINT64_MAX: see check */
	bool other_thread;
	const char *ip_file;	/* the fault IP lies in this file */
};

static const struct crash crashes[] = {
	{ "crash_nullfn", SIGSEGV, SEGV_MAPERR, 0, false, NULL },
	{ "crash_wild", SIGSEGV, SEGV_MAPERR, UINT64_MAX, false,
	  "crash_wild" },
	{ "crash_abort", SIGABRT, SI_TKILL, UINT64_MAX, false, "libc" },
	{ "crash_strlen", SIGSEGV, SEGV_MAPERR, 0, false, "libc" },
	{ "crash_thread", SIGSEGV, SEGV_MAPERR, 0xbad000, true,
	  "crash_thread" },
};

static const struct crash *crash_named(const char *name)
{
	for (size_t i = 0; i < sizeof(crashes) / sizeof(crashes[0]); i++) {
		if (!strcmp(crashes[i].prog, name))
			return &crashes[i];
	}
	cr_fail("no crash %s", name);
	return NULL;
}

/* The run-time address of @sym of the executable @path in @c's maps. */
static uint64_t runtime_sym(const struct capture *c, const char *path,
			    const char *sym)
{
	struct bt_map maps[64];
	uint64_t value = 0, bias = 0;
	size_t n = 0;

	for (size_t i = 0; i < c->nmap; i++) {
		struct bt_map *m = &maps[n++];

		memset(m, 0, sizeof(*m));
		m->start = c->map[i].addr;
		m->end = c->map[i].addr + c->map[i].len;
		m->offset = c->map[i].pgoff;
		m->prot = PROT_READ | PROT_EXEC;
		snprintf(m->path, sizeof(m->path), "%s", c->map[i].file);
	}
	cr_assert(eq(int, bt_elfsym_lookup(path, sym, &value), 0));
	cr_assert(eq(int, bt_elf_load_bias(path, maps, n, &bias), 0),
		  "no load bias for %s", path);
	return value + bias;
}

static void check_crash(const char *fac, const char *name)
{
	const struct crash *k = crash_named(name);
	struct recording rec;
	const struct capture *c = &rec.cap;
	const struct mapping *m;

	record(&rec, fac, name);
	cr_assert(eq(int, rec.status, 128 + k->signo),
		  "%s under %s: status %d; stderr:\n%s", name, fac,
		  rec.status, rec.err);
	cr_assert(ne(ptr, strstr(rec.err, "facility "), NULL), "%s", rec.err);
	cr_assert(ne(ptr, strstr(rec.err, rec.bundle), NULL),
		  "the bundle path is printed: %s", rec.err);

	/* The trigger. */
	cr_assert(c->has_trigger, "no bt.trigger in %s", rec.session);
	cr_assert(eq(str, (char *)c->reason, "signal"));
	cr_assert(eq(int, c->signo, k->signo));
	cr_assert(eq(int, c->code, k->code), "si_code");
	cr_assert(c->has_regs, "registers");
	if (k->addr != UINT64_MAX)
		cr_assert(eq(u64, c->addr, k->addr), "fault address");
	if (!strcmp(name, "crash_wild")) {
		/* A page-sized stride from `small`, past the mapped data. */
		uint64_t small = runtime_sym(c, ru_prog(name), "small");

		cr_assert(gt(u64, c->addr, small));
		cr_assert(eq(u64, (c->addr - small) % 4096, 0),
			  "%#" PRIx64 " from small %#" PRIx64, c->addr, small);
	}
	if (k->other_thread)
		cr_assert(ne(int, c->tid, c->pid), "the second thread");
	else
		cr_assert(eq(int, c->tid, c->pid));
	if (!strcmp(name, "crash_nullfn")) {
		cr_assert(eq(u64, c->ip, 0), "the call went to 0");
	} else {
		m = map_of(c, c->ip);
		cr_assert(ne(ptr, (void *)m, NULL), "fault IP %#" PRIx64 " unmapped",
			  c->ip);
		cr_assert(ne(ptr, strstr(m->file, k->ip_file), NULL),
			  "fault IP in %s, not %s", m->file, k->ip_file);
	}

	/* The trace reaches the faulting instruction. */
	if (!strcmp(fac, "step")) {
		cr_assert(gt(sz, c->branches, 0));
		cr_assert(straight_line(c, c->last_to, c->ip, 64),
			  "last branch %#" PRIx64 " -> %#" PRIx64
			  " does not reach %#" PRIx64, c->last_from,
			  c->last_to, c->ip);
	} else {
		size_t ninsn;

		cr_assert(gt(sz, c->pt_len, 0), "no bt.pt");
		cr_assert(eq(u64, pt_end(c, &ninsn), c->ip),
			  "the PT stream ends at the fault (%zu insns)",
			  ninsn);
		cr_assert(gt(sz, ninsn, 10));
	}
	recording_free(&rec);
}

TestSuite(record, .timeout = 120);

Test(record, step_null_function_call) { check_crash("step", "crash_nullfn"); }
Test(record, step_wild_pointer_walk) { check_crash("step", "crash_wild"); }
Test(record, step_abort) { check_crash("step", "crash_abort"); }
Test(record, step_strlen_null_in_libc) { check_crash("step", "crash_strlen"); }
Test(record, step_second_thread) { check_crash("step", "crash_thread"); }
Test(record, ptemu_null_function_call) { check_crash("pt-emu", "crash_nullfn"); }
Test(record, ptemu_wild_pointer_walk) { check_crash("pt-emu", "crash_wild"); }
Test(record, ptemu_abort) { check_crash("pt-emu", "crash_abort"); }
Test(record, ptemu_strlen_null_in_libc) { check_crash("pt-emu", "crash_strlen"); }
Test(record, ptemu_second_thread) { check_crash("pt-emu", "crash_thread"); }

/* ---- auto, exit status, snapshots, errors ------------------------------- */

Test(record, auto_picks_the_best_facility_and_says_why)
{
	struct bt_caps_opts co = { .sz = sizeof(co) };
	struct bt_cap caps[BT_FAC__COUNT];
	static const int order[] = { BT_FAC_PT, BT_FAC_BTS, BT_FAC_LBR,
				     BT_FAC_STEP };
	char dir[] = "/tmp/bt-rec-XXXXXX", out[128], want[64];
	char *argv[] = { (char *)ru_bin(), "record", "-e", "auto", "--start-at",
			 "main", "-o", out, "--", (char *)ru_prog("hello"), NULL };
	char *o = NULL, *e = NULL;
	int best = -1, status;

	cr_assert(eq(int, bt_caps_probe(caps, &co), 0));
	for (size_t i = 0; i < 4 && best < 0; i++)
		if (caps[order[i]].present)
			best = order[i];
	if (best != BT_FAC_STEP)
		cr_skip_test("this machine has %s: --start-at is for step",
			     bt_facility_name((uint32_t)best));
	cr_assert(ne(ptr, mkdtemp(dir), NULL));
	snprintf(out, sizeof(out), "%s/b", dir);
	status = tu_run(argv, &o, &e);
	cr_assert(eq(int, status, 0), "status %d: %s", status, e);
	snprintf(want, sizeof(want), "facility step: auto chose step (no pt, "
		 "no bts, no lbr)");
	cr_assert(ne(ptr, strstr(e, want), NULL), "stderr: %s", e);
	/* The reason names why pt is missing here, as caps does. */
	cr_assert(ne(ptr, strstr(e, caps[BT_FAC_STEP].reason), NULL));
	cr_assert(eq(int, access(out, F_OK), 0));
	ru_rmrf(dir);
	free(o);
	free(e);
}

Test(record, exit_status_is_the_commands)
{
	struct recording rec;

	/* hello exits 0 normally: a bundle with an "exit" trigger. */
	record(&rec, "step", "hello");
	cr_assert(eq(int, rec.status, 0), "%s", rec.err);
	cr_assert(rec.cap.has_trigger);
	cr_assert(eq(str, rec.cap.reason, "exit"));
	cr_assert(eq(int, rec.cap.signo, 0));
	cr_assert(gt(sz, rec.cap.branches, 10));
	recording_free(&rec);
}

/* The children of @pid (its main thread's). */
static pid_t child_of(pid_t pid)
{
	char path[64];
	FILE *f;
	int c = 0;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid,
		 (int)pid);
	f = fopen(path, "re");
	cr_assert(ne(ptr, f, NULL));
	if (fscanf(f, "%d", &c) != 1)
		c = 0;
	fclose(f);
	return c;
}

Test(record, a_snapshot_on_demand_while_the_program_runs)
{
	char dir[] = "/tmp/bt-rec-XXXXXX", out[128], snap[160], line[16];
	const char *session = tu_name("snap");
	char *snap_argv[] = { (char *)ru_bin(), "snapshot", (char *)session,
			      NULL };
	char *argv[] = { (char *)ru_bin(), "record", "-e", "step", "--start-at",
			 "main", "--keep-session", "--session",
			 (char *)session, "-o", out, "--",
			 (char *)ru_prog("spin"), NULL };
	struct capture c;
	char *so = NULL, *se = NULL;
	int p[2], st, rc;
	pid_t rec, spin;
	FILE *f;

	tu_cleanup_at_exit(session);
	cr_assert(ne(ptr, mkdtemp(dir), NULL));
	snprintf(out, sizeof(out), "%s/b", dir);
	snprintf(snap, sizeof(snap), "%s.snapshot-1", out);
	cr_assert(eq(int, pipe(p), 0));
	rec = fork();
	cr_assert(ge(int, rec, 0));
	if (rec == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	/* spin says "ready" once main runs (under the stepper). */
	cr_assert(ne(ptr, fgets(line, sizeof(line), f), NULL));
	cr_assert(eq(str, line, "ready\n"));
	rc = tu_run(snap_argv, &so, &se);
	cr_assert(eq(int, rc, 0), "btrail snapshot: %s", se);
	cr_assert(ne(ptr, strstr(so, "snapshot"), NULL));
	/* The recorder writes it while spin runs on; wait for it. */
	for (int i = 0; i < 600 && access(snap, F_OK) != 0; i++)
		usleep(100000);
	cr_assert(eq(int, access(snap, F_OK), 0), "no %s", snap);
	spin = child_of(rec);
	cr_assert(gt(int, spin, 0));
	cr_assert(eq(int, kill(spin, SIGKILL), 0));
	cr_assert(eq(int, waitpid(rec, &st, 0), rec));
	cr_assert(eq(int, st & 0x7f, 0), "exited");
	cr_assert(eq(int, (st >> 8) & 0xff, 128 + SIGKILL));
	fclose(f);
	cr_assert(eq(int, access(out, F_OK), 0), "the final bundle");
	read_session(session, &c);
	cr_assert(ge(int, c.requests, 1), "bt.trigger \"request\"");
	cr_assert(eq(int, c.signo, SIGKILL));
	cr_assert(gt(sz, c.branches, 0));
	free(c.pt);
	free(so);
	free(se);
	ru_rmrf(dir);
}

static void bad(const char *why, char *const *args)
{
	char *argv[16] = { (char *)ru_bin() };
	char *o = NULL, *e = NULL;
	int n = 1, status;

	for (; args[n - 1] && n < 15; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	status = tu_run(argv, &o, &e);
	cr_assert(eq(int, status, 2), "%s: status %d, stderr %s", args[1],
		  status, e);
	cr_assert(ne(ptr, strstr(e, why), NULL), "stderr: %s (want %s)", e,
		  why);
	free(o);
	free(e);
}

Test(record, bad_options_are_usage_errors)
{
	bad("unknown facility 'nosuch'",
	    (char *[]){ "record", "-e", "nosuch", "--", "true", NULL });
	bad("nothing to record", (char *[]){ "record", NULL });
	bad("bad size '3000'",
	    (char *[]){ "record", "-m", "3000", "--", "true", NULL });
	bad("bad mode 'fast'",
	    (char *[]){ "record", "--mode", "fast", "--", "true", NULL });
	bad("give one target",
	    (char *[]){ "record", "-p", "1", "-a", NULL });
	bad("bad pid 'x'", (char *[]){ "record", "-p", "x", NULL });
	bad("traces a process, not CPUs",
	    (char *[]){ "record", "-e", "step", "-a", NULL });
	bad("bad CPU list '3-1'",
	    (char *[]){ "record", "-e", "step", "-C", "3-1", NULL });
	bad("--start-at is for step",
	    (char *[]){ "record", "-e", "pt", "--start-at", "main", "--",
			"true", NULL });
	bad("give one SESSION", (char *[]){ "snapshot", NULL });
}

Test(record, snapshot_of_a_session_without_recorder_fails)
{
	const char *name = tu_name("norec");
	char *argv[] = { (char *)ru_bin(), "snapshot", (char *)name, NULL };
	char *o = NULL, *e = NULL;

	tu_cleanup_at_exit(name);
	cr_assert(eq(int, tu_run(argv, &o, &e), 1));
	cr_assert(ne(ptr, strstr(e, "No such file"), NULL), "%s", e);
	free(o);
	free(e);
}

/*
 * Start `btrail record ... EXTRA -- spin` with its stdout (spin's) on a
 * pipe, and wait for spin's "ready" (main runs under the stepper).
 */
static pid_t start_spin_recorder(const char *session, const char *out,
				 const char *extra, FILE **spin_out)
{
	char *argv[] = { (char *)ru_bin(), "record", "-e", "step", "--start-at",
			 "main", "--keep-session", "--session",
			 (char *)session, "-o", (char *)out, "--ring-size",
			 "64K", (char *)extra, "--", (char *)ru_prog("spin"),
			 NULL };
	char line[16];
	int p[2];
	pid_t rec;

	if (!extra) {
		argv[13] = "--";
		argv[14] = (char *)ru_prog("spin");
		argv[15] = NULL;
	}
	cr_assert(eq(int, pipe(p), 0));
	rec = fork();
	cr_assert(ge(int, rec, 0));
	if (rec == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	*spin_out = fdopen(p[0], "r");
	cr_assert(ne(ptr, fgets(line, sizeof(line), *spin_out), NULL));
	cr_assert(eq(str, line, "ready\n"));
	return rec;
}

Test(record, a_notifier_condition_takes_a_snapshot)
{
	char dir[] = "/tmp/bt-rec-XXXXXX", out[128], snap[160];
	const char *session = tu_name("when");
	struct bt_bundle_event bev;
	struct bt_bundle *b;
	struct capture c;
	int st, n, notifier = 0;
	pid_t rec, spin;
	FILE *f;

	tu_cleanup_at_exit(session);
	cr_assert(ne(ptr, mkdtemp(dir), NULL));
	snprintf(out, sizeof(out), "%s/b", dir);
	snprintf(snap, sizeof(snap), "%s.snapshot-1", out);
	/* The ring holds 8 KiB within a second or two of stepping. */
	rec = start_spin_recorder(session, out, "--snapshot-when=unread>=8K",
				  &f);
	for (int i = 0; i < 600 && access(snap, F_OK) != 0; i++)
		usleep(100000);
	cr_assert(eq(int, access(snap, F_OK), 0), "no %s", snap);
	spin = child_of(rec);
	cr_assert(gt(int, spin, 0));
	cr_assert(eq(int, kill(spin, SIGKILL), 0));
	cr_assert(eq(int, waitpid(rec, &st, 0), rec));
	cr_assert(eq(int, (st >> 8) & 0xff, 128 + SIGKILL));
	fclose(f);
	/* The snapshot bundle ends with the notifier's bt.trigger. */
	cr_assert(eq(int, bt_bundle__open(snap, &b), 0));
	for (uint32_t i = 0; i < bt_bundle__streams(b); i++) {
		while ((n = bt_bundle__next(b, i, &bev)) > 0) {
			if (bev.id != BT_EVID_TRIGGER)
				continue;
			cr_assert(eq(sz, bev.v[BT_TRIGGER_REASON].len, 8));
			cr_assert(eq(int, memcmp(bev.v[BT_TRIGGER_REASON].p,
						 "notifier", 8), 0));
			notifier++;
		}
		cr_assert(eq(int, n, 0));
	}
	bt_bundle__close(b);
	cr_assert(eq(int, notifier, 1));
	/* An UP edge: once, however long the level stays above. */
	snap[strlen(snap) - 1] = '2';
	cr_assert(ne(int, access(snap, F_OK), 0), "a second snapshot");
	read_session(session, &c);
	cr_assert(eq(int, c.requests, 0));
	free(c.pt);
	ru_rmrf(dir);
}

Test(record, a_bad_notifier_condition_is_a_usage_error)
{
	char *argv[] = { (char *)ru_bin(), "record", "-e", "step",
			 "--snapshot-when", "unread>5", "--",
			 (char *)ru_prog("hello"), NULL };
	char *so = NULL, *se = NULL;

	cr_assert(eq(int, tu_run(argv, &so, &se), 2));
	cr_assert(ne(ptr, strstr(se, "--snapshot-when"), NULL), "%s", se);
	free(so);
	free(se);
}

Test(record, recover_after_the_recorder_is_killed)
{
	char dir[] = "/tmp/bt-rec-XXXXXX", out[128], bundle[160];
	const char *session = tu_name("kill9");
	char *rec_argv[] = { (char *)ru_bin(), "recover", (char *)session, "-o",
			     bundle, NULL };
	char *so = NULL, *se = NULL;
	struct bt_kmes_reader_opts ro = { .sz = sizeof(ro) };
	struct bt_kmes_reader *rd;
	struct bt_kmes_event ev;
	struct bt_bundle *b;
	struct bt_bundle_event bev;
	uint64_t in_ring = 0, in_bundle = 0;
	pid_t rec, spin;
	FILE *f;
	int st, n;

	tu_cleanup_at_exit(session);
	cr_assert(ne(ptr, mkdtemp(dir), NULL));
	snprintf(out, sizeof(out), "%s/b", dir);
	snprintf(bundle, sizeof(bundle), "%s/recovered", dir);
	rec = start_spin_recorder(session, out, NULL, &f);
	spin = child_of(rec);
	cr_assert(gt(int, spin, 0));
	usleep(1500000);	/* some trace in the ring */
	cr_assert(eq(int, kill(rec, SIGKILL), 0));
	cr_assert(eq(int, waitpid(rec, &st, 0), rec));
	cr_assert(eq(int, WIFSIGNALED(st) ? WTERMSIG(st) : 0, SIGKILL));
	/* The stepped spin dies with its tracer (PTRACE_O_EXITKILL) or runs. */
	kill(spin, SIGKILL);
	fclose(f);
	cr_assert(ne(int, access(out, F_OK), 0), "no bundle was written");

	/* Every event committed before the kill is in the recovered bundle. */
	rd = bt_kmes_reader__new(session, &ro);
	cr_assert(ne(ptr, rd, NULL));
	while ((n = bt_kmes_reader__next(rd, &ev)) > 0)
		in_ring++;
	cr_assert(eq(int, n, 0));
	bt_kmes_reader__free(rd);
	cr_assert(gt(u64, in_ring, 2), "events in the ring");
	cr_assert(eq(int, tu_run(rec_argv, &so, &se), 0), "%s", se);
	cr_assert(eq(int, bt_bundle__open(bundle, &b), 0));
	for (uint32_t i = 0; i < bt_bundle__streams(b); i++) {
		while ((n = bt_bundle__next(b, i, &bev)) > 0)
			in_bundle++;
		cr_assert(eq(int, n, 0));
	}
	bt_bundle__close(b);
	cr_assert(eq(u64, in_bundle, in_ring));
	free(so);
	free(se);
	ru_rmrf(dir);
}

Test(record, attach_to_a_running_process_and_leave_it_running)
{
	char dir[] = "/tmp/bt-rec-XXXXXX", out[128], pid_s[16], line[16];
	const char *session = tu_name("attach");
	char *argv[] = { (char *)ru_bin(), "record", "-e", "step", "-p", pid_s,
			 "--max-insns", "5000", "--keep-session", "--session",
			 (char *)session, "-o", out, NULL };
	char *so = NULL, *se = NULL;
	struct capture c;
	int p[2], st;
	pid_t spin;
	FILE *f;

	tu_cleanup_at_exit(session);
	cr_assert(ne(ptr, mkdtemp(dir), NULL));
	snprintf(out, sizeof(out), "%s/b", dir);
	cr_assert(eq(int, pipe(p), 0));
	spin = fork();
	cr_assert(ge(int, spin, 0));
	if (spin == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl(ru_prog("spin"), "spin", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	cr_assert(ne(ptr, fgets(line, sizeof(line), f), NULL));
	snprintf(pid_s, sizeof(pid_s), "%d", (int)spin);

	cr_assert(eq(int, tu_run(argv, &so, &se), 0), "%s", se);
	cr_assert(ne(ptr, strstr(se, "goes on"), NULL), "%s", se);
	/* Detached, not killed: it still runs. */
	cr_assert(eq(int, waitpid(spin, &st, WNOHANG), 0));
	cr_assert(eq(int, kill(spin, SIGKILL), 0));
	cr_assert(eq(int, waitpid(spin, &st, 0), spin));
	fclose(f);
	read_session(session, &c);
	cr_assert(eq(str, c.reason, "stop"));
	cr_assert(gt(sz, c.branches, 0));
	babeltrace_reads(out);
	free(c.pt);
	free(so);
	free(se);
	ru_rmrf(dir);
}
