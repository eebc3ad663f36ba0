// SPDX-License-Identifier: BSD-3-Clause
/*
 * The btrail command line, run as a program ($BTRAIL_BIN): global options,
 * `btrail kmes create|emit|drain|resize|destroy` and `btrail rings`, their
 * output formats and their exact exit statuses (0 ok, 1 failed, 2 bad
 * command line, 3 the data had problems).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <btrail/common.h>
#include <btrail/kmes.h>

#include "common/bytes.h"
#include "helpers/testutil.h"

/* ---- Helpers ------------------------------------------------------------ */

struct res {
	int rc;
	char *out;
	char *err;
};

static void res_free(struct res *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* Run `btrail ARGS...` (NULL-terminated); skips the test without a binary. */
static struct res btrail(const char *arg, ...)
{
	const char *bin = tu_btrail_bin();
	char *argv[32];
	struct res r = { 0 };
	va_list ap;
	int n = 0;

	if (!bin)
		cr_skip_test("BTRAIL_BIN is not set (make check sets it to the "
			     "built btrail)");
	argv[n++] = (char *)bin;
	va_start(ap, arg);
	for (const char *a = arg; a; a = va_arg(ap, const char *)) {
		cr_assert(lt(int, n, 31));
		argv[n++] = (char *)a;
	}
	va_end(ap);
	argv[n] = NULL;
	r.rc = tu_run(argv, &r.out, &r.err);
	cr_assert(ne(ptr, r.out, NULL));
	cr_assert(ne(ptr, r.err, NULL));
	return r;
}

/* Assert @r exited with @rc; print what it said otherwise. */
#define expect_rc(r, want)						\
	cr_assert(eq(int, (r).rc, (want)),				\
		  "exit status %d, wanted %d\nstdout:\n%s\nstderr:\n%s",\
		  (r).rc, (want), (r).out, (r).err)

#define expect_in(hay, needle)						\
	cr_assert(strstr((hay), (needle)) != NULL,			\
		  "'%s' not found in:\n%s", (needle), (hay))

/*
 * `btrail kmes create NAME --capacity C --slots N`, expected to work; the
 * session is removed at exit. Returns the directory it printed (malloc'd).
 */
static char *create(const char *name, const char *capacity, const char *slots)
{
	struct res r = btrail("kmes", "create", name, "--capacity", capacity,
			      "--slots", slots, NULL);
	char *dir;

	tu_cleanup_at_exit(name);
	expect_rc(r, 0);
	cr_assert(eq(str, r.err, ""));
	dir = strdup(r.out);
	dir[strcspn(dir, "\n")] = '\0';
	res_free(&r);
	return dir;
}

static void emit(const char *name, const char *count, const char *size)
{
	struct res r = btrail("kmes", "emit", name, "--count", count, "--size",
			      size, "--slot", "0", NULL);

	expect_rc(r, 0);
	res_free(&r);
}

/* Number of lines of @s matching extended regex @re. */
static int count_matches(const char *s, const char *re)
{
	regex_t rx;
	int n = 0;
	char *copy = strdup(s), *save = NULL;

	cr_assert(eq(int, regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0));
	for (char *l = strtok_r(copy, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save))
		n += regexec(&rx, l, 0, NULL, 0) == 0;
	regfree(&rx);
	free(copy);
	return n;
}

/* The line of `btrail kmes drain`'s summary table for @slot. */
struct summary_row {
	unsigned slot;
	uint64_t events, bytes, first, last, missed, gaps, lapped, torn;
	uint64_t corrupt, gen, reattach, dropped, lost;
};

static void summary_row(const char *out, unsigned slot, struct summary_row *row)
{
	char *copy = strdup(out), *save = NULL;
	bool found = false;

	for (char *l = strtok_r(copy, "\n", &save); l && !found;
	     l = strtok_r(NULL, "\n", &save)) {
		memset(row, 0, sizeof(*row));
		found = sscanf(l, "%u %" SCNu64 " %" SCNu64 " %" SCNu64 "..%"
			       SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %"
			       SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %"
			       SCNu64 " %" SCNu64, &row->slot, &row->events,
			       &row->bytes, &row->first, &row->last,
			       &row->missed, &row->gaps, &row->lapped,
			       &row->torn, &row->corrupt, &row->gen,
			       &row->reattach, &row->dropped, &row->lost) == 14 &&
			row->slot == slot;
	}
	free(copy);
	cr_assert(found, "no summary row for slot %u in:\n%s", slot, out);
}

/* ---- Global options ----------------------------------------------------- */

Test(cli, help_lists_the_commands_on_stdout_and_exits_0)
{
	struct res r = btrail("--help", NULL);

	expect_rc(r, 0);
	expect_in(r.out, "Usage: btrail");
	expect_in(r.out, "kmes");
	expect_in(r.out, "rings");
	cr_assert(eq(str, r.err, ""));
	res_free(&r);

	r = btrail("kmes", "--help", NULL);
	expect_rc(r, 0);
	expect_in(r.out, "create NAME");
	res_free(&r);
}

Test(cli, version_prints_the_library_version_and_exits_0)
{
	struct res r = btrail("--version", NULL);
	char want[64];

	snprintf(want, sizeof(want), "btrail %s\n", BTRAIL_VERSION_STRING);
	expect_rc(r, 0);
	cr_assert(eq(str, r.out, want));
	res_free(&r);
}

Test(cli, an_unknown_command_or_option_or_none_exits_2)
{
	struct res r = btrail("frobnicate", NULL);

	expect_rc(r, 2);
	expect_in(r.err, "unknown command 'frobnicate'");
	cr_assert(eq(str, r.out, ""));
	res_free(&r);

	r = btrail("kmes", "frobnicate", NULL);
	expect_rc(r, 2);
	expect_in(r.err, "unknown command 'kmes frobnicate'");
	res_free(&r);

	r = btrail("--no-such-option", NULL);
	expect_rc(r, 2);
	res_free(&r);

	r = btrail(NULL);
	expect_rc(r, 2);
	expect_in(r.err, "Usage:");
	res_free(&r);

	/* Names match exactly: no prefix of a command is taken for it. */
	r = btrail("km", NULL);
	expect_rc(r, 2);
	res_free(&r);
}

/* ---- kmes create -------------------------------------------------------- */

Test(cli, create_prints_the_directory_and_a_second_create_fails_with_eexist)
{
	const char *name = tu_name("cli-create");
	char *dir = create(name, "64K", "2");
	struct res r;
	struct stat st;
	char ring[4096];

	cr_assert(eq(int, stat(dir, &st), 0), "%s: %s", dir, strerror(errno));
	cr_assert(eq(int, S_ISDIR(st.st_mode) ? 1 : 0, 1));
	cr_assert(eq(int, (int)(st.st_mode & 0777), 0700));
	cr_assert(ne(ptr, strstr(dir, name), NULL));
	for (int i = 0; i < 2; i++) {
		snprintf(ring, sizeof(ring), "%s/ring.%d", dir, i);
		cr_assert(eq(int, stat(ring, &st), 0), "%s", ring);
		cr_assert(eq(i64, (int64_t)st.st_size,
			     (int64_t)(KMES_PAGE_SIZE + 65536)));
	}

	r = btrail("kmes", "create", name, NULL);
	expect_rc(r, 1);
	expect_in(r.err, name);
	expect_in(r.err, strerror(EEXIST));
	cr_assert(eq(str, r.out, ""));
	res_free(&r);
	free(dir);
}

Test(cli, create_rejects_a_bad_capacity_with_a_clear_message)
{
	const char *name = tu_name("cli-badcap");
	struct res r;

	tu_cleanup_at_exit(name);
	/* Not a size at all, or not one a ring can have: usage errors. */
	r = btrail("kmes", "create", name, "--capacity", "xyz", NULL);
	expect_rc(r, 2);
	expect_in(r.err, "capacity 'xyz' is not a power of two in 64K..256M");
	cr_assert(eq(str, r.out, ""));
	res_free(&r);

	r = btrail("kmes", "create", name, "--capacity", "100K", NULL);
	expect_rc(r, 2);
	expect_in(r.err, "capacity '100K' is not a power of two in 64K..256M");
	res_free(&r);

	r = btrail("kmes", "create", name, "--capacity", "512M", NULL);
	expect_rc(r, 2);
	expect_in(r.err, "capacity '512M' is not a power of two in 64K..256M");
	res_free(&r);

	r = btrail("kmes", "create", name, "--capacity", "32K", NULL);
	expect_rc(r, 2);
	res_free(&r);

	/* Nothing was left behind. */
	r = btrail("kmes", "drain", name, NULL);
	expect_rc(r, 1);
	expect_in(r.err, strerror(ENOENT));
	res_free(&r);
}

/* ---- kmes emit / drain -------------------------------------------------- */

Test(cli, emitted_events_drain_back_complete_and_verified)
{
	const char *name = tu_name("cli-emit");
	struct summary_row row;
	struct res r;
	char *dir = create(name, "1M", "1");

	r = btrail("kmes", "emit", name, "--count", "1000", "--size", "100",
		   NULL);
	expect_rc(r, 0);
	expect_in(r.out, "emitted 1000 events (184000 bytes) to 1 ring in ");
	res_free(&r);

	r = btrail("kmes", "drain", name, "--quiet", "--verify", NULL);
	expect_rc(r, 0);
	expect_in(r.out, "total: 1000 events, 0 missed, 0 corrupt, "
		  "0 payloads failed verification\n");
	summary_row(r.out, 0, &row);
	cr_assert(eq(u64, row.events, 1000ull));
	cr_assert(eq(u64, row.bytes, 184000ull));
	cr_assert(eq(u64, row.first, 1ull));
	cr_assert(eq(u64, row.last, 1000ull));
	cr_assert(eq(u64, row.missed, 0ull));
	cr_assert(eq(u64, row.corrupt, 0ull));
	cr_assert(eq(u64, row.gen, 1ull));
	/* --quiet: no line per event. */
	cr_assert(eq(int, count_matches(r.out, "^slot [0-9]+ seq "), 0));
	res_free(&r);

	/* Batches and --all-slots go through the same checks. */
	r = btrail("kmes", "emit", name, "--count", "500", "--size", "300",
		   "--batch", "64", "--all-slots", NULL);
	expect_rc(r, 0);
	res_free(&r);
	r = btrail("kmes", "drain", name, "--quiet", "--verify", NULL);
	expect_rc(r, 0);
	expect_in(r.out, "total: 1500 events, 0 missed, 0 corrupt, "
		  "0 payloads failed verification\n");
	res_free(&r);
	free(dir);
}

Test(cli, drain_prints_one_line_per_event_in_sequence_order)
{
	const char *name = tu_name("cli-lines");
	struct res r;
	char *dir = create(name, "64K", "1");
	char re[256];

	r = btrail("kmes", "emit", name, "--count", "3", "--size", "50",
		   "--type", "cli.line", "--slot", "0", NULL);
	expect_rc(r, 0);
	res_free(&r);

	r = btrail("kmes", "drain", name, NULL);
	expect_rc(r, 0);
	/* slot S seq N gen G TIMESTAMP cpu C origin O TYPE SIZE bytes */
	for (int seq = 1; seq <= 3; seq++) {
		snprintf(re, sizeof(re), "^slot 0 seq %d gen 1 "
			 "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
			 "\\.[0-9]{9}Z cpu 0 origin 0 cli\\.line 135 bytes$",
			 seq);
		cr_assert(eq(int, count_matches(r.out, re), 1),
			  "no line for seq %d in:\n%s", seq, r.out);
	}
	cr_assert(eq(int, count_matches(r.out, "^slot [0-9]"), 3));
	/* In order: seq 1 before 2 before 3. */
	cr_assert(lt(ptr, strstr(r.out, "seq 1 "), strstr(r.out, "seq 2 ")));
	cr_assert(lt(ptr, strstr(r.out, "seq 2 "), strstr(r.out, "seq 3 ")));
	expect_in(r.out, "total: 3 events, 0 missed, 0 corrupt\n");
	res_free(&r);

	/* --count stops early; --payload decodes the msgpack. */
	r = btrail("kmes", "drain", name, "--count", "1", "--payload", NULL);
	expect_rc(r, 0);
	cr_assert(eq(int, count_matches(r.out, "^slot 0 seq 1 .* cli\\.line "
					"135 bytes \\{\"s\"=>1, \"c\"=>[0-9]+, "
					"\"p\"=>"), 1), "%s", r.out);
	expect_in(r.out, "total: 1 events, 0 missed, 0 corrupt\n");
	res_free(&r);
	free(dir);
}

/* ---- kmes resize / destroy ---------------------------------------------- */

Test(cli, after_a_resize_drain_reads_the_same_events_from_generation_2)
{
	const char *name = tu_name("cli-resize");
	struct summary_row row;
	struct res r;
	char *dir = create(name, "64K", "1");

	emit(name, "10", "40");
	r = btrail("kmes", "resize", name, "128K", NULL);
	expect_rc(r, 0);
	expect_in(r.out, ": 1 rings of 131072 bytes\n");
	res_free(&r);

	r = btrail("kmes", "drain", name, NULL);
	expect_rc(r, 0);
	cr_assert(eq(int, count_matches(r.out, "^slot 0 seq ([1-9]|10) gen 2 "),
		     10), "%s", r.out);
	cr_assert(eq(int, count_matches(r.out, " gen 1 "), 0));
	summary_row(r.out, 0, &row);
	cr_assert(eq(u64, row.gen, 2ull));
	cr_assert(eq(u64, row.events, 10ull));
	cr_assert(eq(u64, row.first, 1ull));
	cr_assert(eq(u64, row.last, 10ull));
	res_free(&r);

	/* A capacity no ring can have changes nothing. */
	r = btrail("kmes", "resize", name, "100K", NULL);
	expect_rc(r, 1);
	expect_in(r.err, "power of two");
	res_free(&r);
	r = btrail("kmes", "resize", name, "lots", NULL);
	expect_rc(r, 2);
	res_free(&r);
	r = btrail("kmes", "drain", name, "--quiet", NULL);
	expect_rc(r, 0);
	summary_row(r.out, 0, &row);
	cr_assert(eq(u64, row.gen, 2ull));
	res_free(&r);
	free(dir);
}

Test(cli, after_destroy_drain_fails_with_exit_1_and_says_why)
{
	const char *name = tu_name("cli-destroy");
	struct res r;
	struct stat st;
	char *dir = create(name, "64K", "1");

	emit(name, "5", "40");
	r = btrail("kmes", "destroy", name, NULL);
	expect_rc(r, 0);
	res_free(&r);
	cr_assert(eq(int, stat(dir, &st), -1));
	cr_assert(eq(int, errno, ENOENT));

	r = btrail("kmes", "drain", name, NULL);
	expect_rc(r, 1);
	expect_in(r.err, "cannot attach to '");
	expect_in(r.err, strerror(ENOENT));
	res_free(&r);

	r = btrail("kmes", "destroy", name, NULL);
	expect_rc(r, 1);
	expect_in(r.err, strerror(ENOENT));
	res_free(&r);
	free(dir);
}

/* ---- btrail rings ------------------------------------------------------- */

Test(cli, rings_lists_the_session_and_shows_each_ring_of_it)
{
	const char *name = tu_name("cli-rings");
	char *dir = create(name, "64K", "2");
	struct res r;
	char re[512];
	unsigned slot, tid;
	char kind[16], status[16];
	uint64_t cap, gen, wp, tp, live, last;
	bool seen[2] = { false, false };
	char *copy, *save = NULL;

	emit(name, "7", "40");

	r = btrail("rings", NULL);
	expect_rc(r, 0);
	snprintf(re, sizeof(re), "^%s +2 +65536 +%s$", name, dir);
	cr_assert(eq(int, count_matches(r.out, re), 1), "'%s' not in:\n%s",
		  re, r.out);
	res_free(&r);

	r = btrail("rings", name, NULL);
	expect_rc(r, 0);
	cr_assert(eq(int, count_matches(r.out, "^slot +kind +tid +status +"
					"capacity +gen +write_pos +tail_pos +"
					"live +last seq +dropped +lost +node +"
					"producer$"), 1), "%s", r.out);
	copy = strdup(r.out);
	for (char *l = strtok_r(copy, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		if (sscanf(l, "%u %15s %u %15s %" SCNu64 " %" SCNu64 " %" SCNu64
			   " %" SCNu64 " %" SCNu64 " %" SCNu64, &slot, kind, &tid,
			   status, &cap, &gen, &wp, &tp, &live, &last) != 10)
			continue;
		cr_assert(lt(u32, slot, 2u), "%s", l);
		seen[slot] = true;
		cr_assert(eq(str, kind, "cpu"));
		cr_assert(eq(str, status, "online"));
		cr_assert(eq(u64, cap, 65536ull));
		cr_assert(eq(u64, gen, 1ull));
		cr_assert(eq(u64, tp, 0ull));
		cr_assert(eq(u64, live, wp - tp));
		/* emit --slot 0: 7 events of 77 + 7 + 40 bytes on ring 0. */
		cr_assert(eq(u64, wp, slot == 0 ? 7ull * 124 : 0ull), "%s", l);
		cr_assert(eq(u64, last, slot == 0 ? 7ull : 0ull), "%s", l);
		/* emit closed the session: no producer now. */
		cr_assert(ne(ptr, strstr(l, " 0 (none)"), NULL), "%s", l);
	}
	free(copy);
	cr_assert(seen[0] && seen[1], "a ring is missing:\n%s", r.out);
	res_free(&r);

	r = btrail("rings", tu_name("cli-nosuch"), NULL);
	expect_rc(r, 1);
	expect_in(r.err, strerror(ENOENT));
	res_free(&r);
	free(dir);
}

/* ---- Against another process and a damaged ring ------------------------- */

Test(cli, emit_fails_with_exit_1_naming_the_pid_that_holds_the_session,
     .timeout = 60)
{
	const char *name = tu_name("cli-busy");
	char *dir = create(name, "64K", "1");
	int ready[2], release[2];
	char c = 0, pidstr[32];
	struct res r;
	pid_t pid;

	cr_assert(eq(int, pipe(ready), 0));
	cr_assert(eq(int, pipe(release), 0));
	fflush(NULL);
	pid = fork();
	cr_assert(ge(int, (int)pid, 0));
	if (pid == 0) {
		struct bt_kmes_session *s;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(ready[0]);
		close(release[1]);
		s = bt_kmes_session__open(name, NULL);
		c = s ? 'y' : 'n';
		if (write(ready[1], &c, 1) != 1)
			_exit(2);
		if (read(release[0], &c, 1) < 0)	/* until the test says */
			_exit(3);
		bt_kmes_session__close(s);
		_exit(s ? 0 : 1);
	}
	close(ready[1]);
	close(release[0]);
	cr_assert(eq(int, (int)read(ready[0], &c, 1), 1));
	if (c != 'y')
		kill(pid, SIGKILL);
	cr_assert(eq(chr, c, 'y'), "the child could not open the session");

	r = btrail("kmes", "emit", name, "--count", "1", NULL);
	snprintf(pidstr, sizeof(pidstr), "(pid %d)", (int)pid);
	if (r.rc != 1 || !strstr(r.err, pidstr))
		kill(pid, SIGKILL);
	expect_rc(r, 1);
	expect_in(r.err, pidstr);
	expect_in(r.err, strerror(EBUSY));
	res_free(&r);

	/* `btrail rings` names the holder too, and it is running. */
	snprintf(pidstr, sizeof(pidstr), " %d (running)\n", (int)pid);
	r = btrail("rings", name, NULL);
	if (r.rc != 0 || !strstr(r.out, pidstr))
		kill(pid, SIGKILL);
	expect_rc(r, 0);
	expect_in(r.out, pidstr);
	res_free(&r);

	/* Once the holder is gone, emit works. */
	close(release[1]);
	cr_assert(eq(int, (int)waitpid(pid, NULL, 0), (int)pid));
	r = btrail("kmes", "emit", name, "--count", "1", NULL);
	expect_rc(r, 0);
	res_free(&r);
	close(ready[0]);
	free(dir);
}

/* Overwrite @len bytes at @off of @dir/ring.0; @flip: XOR them instead. */
static void poke_ring(const char *dir, off_t off, const void *buf, size_t len,
		      bool flip)
{
	unsigned char cur[16];
	char path[4096];
	int fd;

	cr_assert(le(u64, (uint64_t)len, (uint64_t)sizeof(cur)));
	snprintf(path, sizeof(path), "%s/ring.0", dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	cr_assert(ge(int, fd, 0), "%s: %s", path, strerror(errno));
	cr_assert(eq(long, (long)pread(fd, cur, len, off), (long)len));
	for (size_t i = 0; i < len; i++)
		cur[i] = flip ? cur[i] ^ ((const unsigned char *)buf)[i] :
			 ((const unsigned char *)buf)[i];
	cr_assert(eq(long, (long)pwrite(fd, cur, len, off), (long)len));
	close(fd);
}

Test(cli, drain_of_a_corrupted_ring_exits_3)
{
	const char *name = tu_name("cli-corrupt");
	char *dir = create(name, "64K", "1");
	struct summary_row row;
	unsigned char b[4];
	struct res r;

	/* 10 events of 77 + 7 + 40 = 124 bytes, then the producer is gone. */
	emit(name, "10", "40");
	r = btrail("kmes", "drain", name, "--quiet", "--verify", NULL);
	expect_rc(r, 0);
	res_free(&r);

	/* Event 4's event_size (data starts at file offset 4096) says 20. */
	bt_put_le32(b, 20);
	poke_ring(dir, KMES_PAGE_SIZE + 3 * 124 + KMES_EV_EVENT_SIZE, b, 4,
		  false);
	r = btrail("kmes", "drain", name, "--quiet", NULL);
	expect_rc(r, 3);
	expect_in(r.err, "corrupt event at position 372");
	summary_row(r.out, 0, &row);
	cr_assert(eq(u64, row.events, 3ull));
	cr_assert(eq(u64, row.corrupt, 1ull));
	expect_in(r.out, "total: 3 events, 0 missed, 1 corrupt\n");
	res_free(&r);

	/* Repair it, then damage a payload byte: only --verify can tell. */
	bt_put_le32(b, 124);
	poke_ring(dir, KMES_PAGE_SIZE + 3 * 124 + KMES_EV_EVENT_SIZE, b, 4,
		  false);
	b[0] = 0x5a;
	poke_ring(dir, KMES_PAGE_SIZE + 6 * 124 + 123, b, 1, true);
	r = btrail("kmes", "drain", name, "--quiet", NULL);
	expect_rc(r, 0);
	res_free(&r);
	r = btrail("kmes", "drain", name, "--quiet", "--verify", NULL);
	expect_rc(r, 3);
	expect_in(r.err, "slot 0 seq 7: payload fails its checksum");
	expect_in(r.out, "total: 10 events, 0 missed, 0 corrupt, "
		  "1 payloads failed verification\n");
	res_free(&r);
	free(dir);
}
