// SPDX-License-Identifier: BSD-3-Clause
/*
 * btraild end to end: a real daemon (`btrail daemon --backend sim`) and
 * real client processes over its socket. Sharing and exact charges,
 * EBUSY naming the holder, the owner killed (ownership and charge move,
 * the sharer keeps reading), the daemon killed and restarted (nothing
 * committed is lost), refusals for a client that is nobody, a load of 64
 * clients x 1000 cycles with the daemon's resources back to baseline, and
 * 100,000 hostile messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <btrail/broker.h>
#include <btrail/kmes.h>

#include "broker/proto.h"
#include "helpers/recordutil.h"

#define AUX_64K		(64 * 1024ull)
/* What the sim kernel maps for it: AUX + 64 KiB data ring + its page. */
#define MAPPED_64K	(AUX_64K + 64 * 1024ull + 4096ull)

struct td {
	char dir[64];
	char sock[128];
	pid_t pid;
};

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static bool can_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static void td_spawn(struct td *t)
{
	const char *bin = ru_bin();

	t->pid = fork();
	cr_assert(t->pid >= 0);
	if (t->pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		/* A failed test must not leave its daemon behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (null >= 0) {
			dup2(null, 1);
			if (!getenv("BT_TEST_DAEMON_LOG"))
				dup2(null, 2);
		}
		execl(bin, bin, "daemon", "--socket", t->sock, "--backend",
		      "sim", "--quiet", "--ring-size", "1M", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && !can_connect(t->sock); i++)
		sleep_ms(10);
	cr_assert(can_connect(t->sock), "btraild did not listen on %s",
		  t->sock);
}

static void td_start(struct td *t, const char *tag)
{
	ru_tmpdir(t->dir, sizeof(t->dir), tag);
	/* Clients of any uid reach the socket (it is 0666 itself). */
	cr_assert(eq(int, chmod(t->dir, 0755), 0));
	snprintf(t->sock, sizeof(t->sock), "%s/btraild.sock", t->dir);
	td_spawn(t);
}

static void td_stop(struct td *t, int sig)
{
	int st;

	if (t->pid <= 0)
		return;
	kill(t->pid, sig);
	cr_assert(eq(int, waitpid(t->pid, &st, 0), t->pid));
	t->pid = -1;
	/* Stopped by SIGTERM, it cleans up and exits 0 (and leaks nothing). */
	if (sig == SIGTERM) {
		bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;

		cr_assert(clean, "btraild ended with status %#x", st);
	}
}

static struct bt_broker *td_connect(const struct td *t, const char *name)
{
	struct bt_broker_opts o = {
		.sz = sizeof(o), .socket = t->sock, .name = name,
		.timeout_ms = 60000,
	};
	struct bt_broker *b = bt_broker__connect(&o);

	cr_assert(ne(ptr, b, NULL), "connect %s: %s", t->sock,
		  strerror(errno));
	return b;
}

static struct bt_ds_request req_of(uint32_t fac, uint32_t kind, int32_t id,
				   const struct bt_trace_config *cfg)
{
	struct bt_ds_request r = {
		.sz = sizeof(r), .facility = fac, .aux_bytes = AUX_64K,
		.target = { kind, id }, .config = cfg,
	};

	return r;
}

/* A tests/progs/spin process, running. */
static pid_t spawn_spin(void)
{
	const char *prog = ru_prog("spin");
	int p[2];
	char buf[8];
	pid_t pid;

	cr_assert(pipe(p) == 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(prog, prog, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	cr_assert(eq(sz, (size_t)read(p[0], buf, 6), 6));
	close(p[0]);
	return pid;
}

static void reap(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

/* A number out of `btrail status --json` for tracer @pid. */
static uint64_t charged_of(struct bt_broker *b, pid_t pid, int *owner_out)
{
	char *json = NULL, key[64], *p;
	uint64_t v = UINT64_MAX;

	cr_assert(eq(int, bt_broker__status_json(b, &json), 0));
	snprintf(key, sizeof(key), "\"pid\": %d,", (int)pid);
	p = strstr(json, "\"tracers\"");
	p = p ? strstr(p, key) : NULL;
	if (p && (p = strstr(p, "\"charged\": ")))
		v = strtoull(p + 11, NULL, 10);
	if (owner_out) {
		p = strstr(json, "\"owner_pid\": ");
		*owner_out = p ? atoi(p + 13) : -1;
	}
	free(json);
	return v;
}

Test(daemon, sharing_one_session_with_exact_charges_and_ebusy_naming_the_holder,
     .timeout = 60)
{
	struct bt_trace_config cfg = { .sz = sizeof(cfg), .user = true };
	struct bt_trace_config tsc = { .sz = sizeof(tsc), .user = true,
				       .tsc = true };
	struct bt_broker_grant g[3], busy;
	struct bt_broker *b[4];
	struct bt_ds_request r = req_of(BT_FAC_PT, BT_TARGET_CPU, 0, &cfg);
	struct td t;
	char *json = NULL;
	int err;

	td_start(&t, "bd-share");
	for (int i = 0; i < 4; i++)
		b[i] = td_connect(&t, "share");
	for (int i = 0; i < 3; i++) {
		err = bt_broker__request(b[i], &r, 0, &g[i]);
		cr_assert(eq(int, err, 0), "request %d: %s", i,
			  bt_broker__error(b[i]));
	}
	/* One hardware session: the first owns and pays for it. */
	cr_assert(eq(u64, g[0].session, g[1].session));
	cr_assert(eq(u64, g[0].session, g[2].session));
	cr_assert(g[0].owner && !g[0].shared);
	cr_assert(g[1].shared && !g[1].owner);
	cr_assert(eq(u64, g[0].charged, MAPPED_64K));
	cr_assert(eq(u64, g[1].charged, 0));
	cr_assert(eq(u64, g[2].charged, 0));
	cr_assert(eq(str, g[0].ring, g[1].ring));

	/* Another configuration of the same hardware: EBUSY, and who. */
	r.config = &tsc;
	err = bt_broker__request(b[3], &r, 0, &busy);
	cr_assert(eq(int, err, -EBUSY));
	cr_assert(eq(int, busy.holder_pid, getpid()));
	cr_assert(ne(ptr, strstr(bt_broker__error(b[3]), "held by pid"), NULL),
		  "%s", bt_broker__error(b[3]));

	cr_assert(eq(int, bt_broker__status_json(b[3], &json), 0));
	cr_assert(ne(ptr, strstr(json, "\"sharers\""), NULL), "%s", json);
	cr_assert(ne(ptr, strstr(json, g[0].ring), NULL), "%s", json);
	free(json);

	/* Release everything: nothing is charged, no session is left. */
	for (int i = 0; i < 3; i++)
		cr_assert(eq(int, bt_broker__release(b[i], g[i].grant), 0));
	cr_assert(eq(int, bt_broker__release(b[0], g[0].grant), -ENOENT));
	cr_assert(eq(int, bt_broker__status_json(b[3], &json), 0));
	cr_assert(ne(ptr, strstr(json, "\"mapped\": 0"), NULL), "%s", json);
	free(json);
	for (int i = 0; i < 4; i++)
		bt_broker__close(b[i]);
	td_stop(&t, SIGTERM);
	ru_rmrf(t.dir);
}

/* Child: own a step session on @target, tell the parent, wait to die. */
static void owner_child(const struct td *t, pid_t target, int wfd)
{
	struct bt_broker_opts o = {
		.sz = sizeof(o), .socket = t->sock, .name = "owner",
	};
	struct bt_ds_request r = req_of(BT_FAC_STEP, BT_TARGET_TASK, target,
					NULL);
	struct bt_broker_grant g;
	struct bt_broker *b = bt_broker__connect(&o);
	uint64_t v = 0;

	if (b && bt_broker__request(b, &r, 0, &g) == 0)
		v = g.charged;
	(void)!write(wfd, &v, sizeof(v));
	for (;;)
		pause();
}

/* Events read from @r now (waiting up to @ms for the first). */
static uint64_t read_some(struct bt_kmes_reader *r, int ms, uint64_t *last_seq)
{
	struct bt_kmes_event ev;
	uint64_t n = 0;
	int ret;

	bt_kmes_reader__wait(r, ms);
	while ((ret = bt_kmes_reader__next(r, &ev)) == 1) {
		n++;
		*last_seq = ev.sequence;
	}
	cr_assert(ret >= 0);
	return n;
}

Test(daemon, owner_killed_ownership_and_charge_move_and_the_sharer_keeps_reading,
     .timeout = 120)
{
	struct bt_ds_request r;
	struct bt_broker_grant g;
	struct bt_kmes_reader *rd;
	struct bt_broker *b;
	uint64_t owner_charge = 0, seq = 0, seq_at_kill, n = 0;
	pid_t target, owner;
	int p[2], st, own = -1;
	struct td t;

	td_start(&t, "bd-owner");
	target = spawn_spin();
	cr_assert(pipe(p) == 0);
	owner = fork();
	cr_assert(owner >= 0);
	if (owner == 0)
		owner_child(&t, target, p[1]);
	cr_assert(eq(sz, (size_t)read(p[0], &owner_charge, 8), 8));
	cr_assert(eq(u64, owner_charge, MAPPED_64K),
		  "the owner was charged %llu",
		  (unsigned long long)owner_charge);

	b = td_connect(&t, "sharer");
	r = req_of(BT_FAC_STEP, BT_TARGET_TASK, target, NULL);
	cr_assert(eq(int, bt_broker__request(b, &r, 0, &g), 0), "%s",
		  bt_broker__error(b));
	cr_assert(g.shared);
	cr_assert(eq(u64, g.charged, 0));
	rd = bt_broker__attach(b, g.grant, NULL);
	cr_assert(ne(ptr, rd, NULL), "attach: %s", bt_broker__error(b));
	for (int i = 0; i < 100 && n < 3; i++)
		n += read_some(rd, 100, &seq);
	cr_assert(n >= 3, "the sharer read %llu events", (unsigned long long)n);
	charged_of(b, getpid(), &own);
	cr_assert(eq(int, own, owner));

	kill(owner, SIGKILL);
	waitpid(owner, &st, 0);
	seq_at_kill = seq;
	/* The charge passes to the sharer, the oldest remaining view. */
	for (int i = 0; i < 200; i++) {
		if (charged_of(b, getpid(), &own) == owner_charge)
			break;
		sleep_ms(20);
	}
	cr_assert(eq(u64, charged_of(b, getpid(), &own), owner_charge));
	cr_assert(eq(int, own, getpid()));
	/* And the capture goes on: new events after the kill. */
	for (int i = 0; i < 100 && seq <= seq_at_kill + 2; i++)
		read_some(rd, 100, &seq);
	cr_assert(seq > seq_at_kill + 2, "no new events after the owner died "
		  "(%llu <= %llu)", (unsigned long long)seq,
		  (unsigned long long)seq_at_kill);

	bt_kmes_reader__free(rd);
	cr_assert(eq(int, bt_broker__release(b, g.grant), 0));
	cr_assert(eq(u64, charged_of(b, getpid(), NULL), 0));
	bt_broker__close(b);
	reap(target);
	td_stop(&t, SIGTERM);
	ru_rmrf(t.dir);
}

Test(daemon, daemon_killed_and_restarted_loses_nothing_committed,
     .timeout = 120)
{
	struct bt_ds_request r;
	struct bt_broker_grant g, g2;
	struct bt_kmes_slot_stats st;
	struct bt_kmes_reader *rd;
	struct bt_broker *b, *b2;
	uint64_t seq = 0, seqs[4] = { 0 }, at_kill;
	char cmd[512], bundle[128], *json = NULL;
	struct td t;

	/*
	 * A CPU session of the sim backend: its rings get the collector's
	 * own events (bt.schema, bt.clock), and nothing else dies with the
	 * daemon (a task stepped by it would: see btrail-daemon(1)).
	 */
	td_start(&t, "bd-restart");
	b = td_connect(&t, "survivor");
	r = req_of(BT_FAC_PT, BT_TARGET_CPU, 0, NULL);
	cr_assert(eq(int, bt_broker__request(b, &r, 0, &g), 0), "%s",
		  bt_broker__error(b));
	rd = bt_broker__attach(b, g.grant, NULL);
	cr_assert(ne(ptr, rd, NULL));
	for (int i = 0; i < 300 && seqs[0] < 3; i++) {
		cr_assert(eq(int, bt_broker__snapshot(b, g.grant, seqs, 4), 1));
		sleep_ms(20);
	}
	cr_assert(seqs[0] >= 3);

	td_stop(&t, SIGKILL);
	/* Everything committed is there, in order, none missing. */
	while (read_some(rd, 0, &seq))
		;
	cr_assert(eq(int, bt_kmes_reader__stats(rd, 0, &st), 0));
	cr_assert(eq(u64, st.missed, 0));
	cr_assert(eq(u64, st.torn, 0));
	cr_assert(eq(u64, st.corrupt, 0));
	cr_assert(st.last_sequence >= seqs[0]);
	cr_assert(eq(u64, st.last_sequence, st.produced),
		  "read to %llu of %llu committed",
		  (unsigned long long)st.last_sequence,
		  (unsigned long long)st.produced);
	at_kill = st.last_sequence;

	/* A new daemon takes the socket over and finds the rings. */
	td_spawn(&t);
	b2 = td_connect(&t, "after");
	cr_assert(eq(int, bt_broker__status_json(b2, &json), 0));
	cr_assert(ne(ptr, strstr(json, "\"orphans\""), NULL), "%s", json);
	cr_assert(ne(ptr, strstr(json, g.ring), NULL), "%s", json);
	free(json);
	snprintf(bundle, sizeof(bundle), "%s/recovered", t.dir);
	snprintf(cmd, sizeof(cmd), "%s recover %s -o %s >/dev/null 2>&1",
		 ru_bin(), g.ring, bundle);
	cr_assert(eq(int, system(cmd), 0), "%s", cmd);
	snprintf(cmd, sizeof(cmd), "%s/btrail.json", bundle);
	cr_assert(eq(int, access(cmd, F_OK), 0));

	/* Asked for again, the capture writes on into the same rings... */
	cr_assert(eq(int, bt_broker__request(b2, &r, 0, &g2), 0), "%s",
		  bt_broker__error(b2));
	cr_assert(eq(str, g2.ring, g.ring));
	/* ...so the reader that kept them mapped reads on, no gap. */
	for (int i = 0; i < 200 && seq <= at_kill + 1; i++)
		read_some(rd, 50, &seq);
	cr_assert(seq > at_kill + 1, "nothing new after the restart");
	cr_assert(eq(int, bt_kmes_reader__stats(rd, 0, &st), 0));
	cr_assert(eq(u64, st.missed, 0));
	cr_assert(eq(u64, st.corrupt, 0));
	bt_kmes_reader__free(rd);
	bt_broker__close(b);
	cr_assert(eq(int, bt_broker__release(b2, g2.grant), 0));
	bt_broker__close(b2);
	td_stop(&t, SIGTERM);
	ru_rmrf(t.dir);
}

Test(daemon, a_client_that_is_nobody_is_refused_what_the_kernel_refuses,
     .timeout = 60)
{
	struct td t;
	int p[2], res[3] = { 1, 1, 1 }, st;
	pid_t pid;
	FILE *f;
	int paranoid = 2;

	if (geteuid() != 0)
		cr_skip("needs root: the client drops to nobody");
	f = fopen("/proc/sys/kernel/perf_event_paranoid", "r");
	if (f) {
		if (fscanf(f, "%d", &paranoid) != 1)
			paranoid = 2;
		fclose(f);
	}
	td_start(&t, "bd-nobody");
	cr_assert(pipe(p) == 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		struct bt_broker_opts o = {
			.sz = sizeof(o), .socket = t.sock, .name = "nobody",
		};
		struct bt_ds_request r = req_of(BT_FAC_STEP, BT_TARGET_TASK,
						getppid(), NULL);
		struct bt_broker_grant g;
		struct bt_broker *b;

		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(3);
		b = bt_broker__connect(&o);
		if (!b)
			_exit(4);
		res[0] = bt_broker__request(b, &r, 0, &g);
		r = req_of(BT_FAC_PT, BT_TARGET_CPU, 0, NULL);
		res[1] = bt_broker__request(b, &r, 0, &g);
		res[2] = strstr(bt_broker__error(b), "perf_event_paranoid") !=
			 NULL;
		(void)!write(p[1], res, sizeof(res));
		_exit(0);
	}
	close(p[1]);
	cr_assert(eq(sz, (size_t)read(p[0], res, sizeof(res)), sizeof(res)));
	waitpid(pid, &st, 0);
	cr_assert(eq(int, res[0], -EPERM), "a root process: %d", res[0]);
	if (paranoid > 0) {
		cr_assert(eq(int, res[1], -EACCES), "a CPU: %d", res[1]);
		cr_assert(eq(int, res[2], 1));
	}
	td_stop(&t, SIGTERM);
	ru_rmrf(t.dir);
}

/* ---- Load ---------------------------------------------------------------- */

#define LOAD_CLIENTS	64
#define LOAD_CYCLES	1000

struct load {
	const struct td *t;
	int failures;
	char why[256];
};

static void *load_main(void *arg)
{
	struct load *l = arg;
	struct bt_broker_opts o = {
		.sz = sizeof(o), .socket = l->t->sock, .name = "load",
		.timeout_ms = 60000,
	};
	struct bt_ds_request r = req_of(BT_FAC_PT, BT_TARGET_CPU, 0, NULL);
	struct bt_broker *b = bt_broker__connect(&o);

	if (!b) {
		l->failures++;
		return NULL;
	}
	for (int i = 0; i < LOAD_CYCLES; i++) {
		struct bt_broker_grant g;
		struct bt_kmes_reader *rd;

		if (bt_broker__request(b, &r, 64 * 1024, &g)) {
			snprintf(l->why, sizeof(l->why), "request: %s",
				 bt_broker__error(b));
			l->failures++;
			continue;
		}
		rd = bt_broker__attach(b, g.grant, NULL);
		if (!rd) {
			snprintf(l->why, sizeof(l->why), "attach: %s",
				 bt_broker__error(b));
			l->failures++;
		}
		bt_kmes_reader__free(rd);
		if (bt_broker__release(b, g.grant))
			l->failures++;
	}
	bt_broker__close(b);
	return NULL;
}

struct usage {
	unsigned fds, maps;
	unsigned ring_maps;	/* mappings of ring files */
	unsigned long rss_kb;
};

static struct usage usage_of(pid_t pid)
{
	struct usage u = { 0 };
	char path[64], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	snprintf(line, sizeof(line), "ls %s | wc -l", path);
	f = popen(line, "r");
	if (f) {
		if (fscanf(f, "%u", &u.fds) != 1)
			u.fds = 0;
		pclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		u.maps++;
		u.ring_maps += strstr(line, "/btraild-") != NULL;
	}
	if (f)
		fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			u.rss_kb = strtoul(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return u;
}

Test(daemon, sixty_four_clients_a_thousand_cycles_each_leave_no_trace,
     .timeout = 900)
{
	pthread_t th[LOAD_CLIENTS];
	struct load l[LOAD_CLIENTS];
	struct usage before, after;
	struct td t;
	int fails = 0;

	td_start(&t, "bd-load");
	/* Warm up: one whole cycle, so the baseline has its allocations. */
	l[0] = (struct load){ .t = &t };
	load_main(&l[0]);
	cr_assert(eq(int, l[0].failures, 0), "%s", l[0].why);
	sleep_ms(200);
	before = usage_of(t.pid);
	for (int i = 0; i < LOAD_CLIENTS; i++) {
		l[i] = (struct load){ .t = &t };
		cr_assert(eq(int, pthread_create(&th[i], NULL, load_main,
						 &l[i]), 0));
	}
	for (int i = 0; i < LOAD_CLIENTS; i++) {
		pthread_join(th[i], NULL);
		fails += l[i].failures;
		if (l[i].failures)
			cr_log_warn("client %d: %s", i, l[i].why);
	}
	cr_assert(eq(int, fails, 0));
	sleep_ms(300);
	after = usage_of(t.pid);
	cr_log_info("btraild after %d x %d cycles: fds %u -> %u, mappings "
		    "%u -> %u, RSS %lu -> %lu KiB", LOAD_CLIENTS, LOAD_CYCLES,
		    before.fds, after.fds, before.maps, after.maps,
		    before.rss_kb, after.rss_kb);
	cr_assert(eq(u32, after.fds, before.fds));
	cr_assert(eq(u32, after.ring_maps, before.ring_maps));
#ifndef __SANITIZE_ADDRESS__
	/*
	 * Under ASan its quarantine and shadow make the process's own
	 * mappings and RSS move on their own: only the plain build can be
	 * held to them.
	 */
	cr_assert(eq(u32, after.maps, before.maps));
	/* malloc's arenas may keep a few pages; nothing per cycle. */
	cr_assert(after.rss_kb <= before.rss_kb + 8192,
		  "RSS %lu -> %lu KiB", before.rss_kb, after.rss_kb);
#endif
	td_stop(&t, SIGTERM);
	ru_rmrf(t.dir);
}

/* ---- Hostile input ------------------------------------------------------- */

static int raw_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	cr_assert(fd >= 0);
	cr_assert(eq(int, connect(fd, (struct sockaddr *)&a, sizeof(a)), 0));
	return fd;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A valid frame body of a random op, for mutation. */
static size_t valid_body(uint64_t *s, unsigned char *out, size_t cap)
{
	struct bt_proto_req r = { .op = 1 + rnd(s) % (BT_OP__COUNT - 1) };
	struct bt_proto_buf b;
	size_t n;

	r.id = rnd(s) % 1000;
	r.version = BT_PROTO_VERSION;
	r.facility = rnd(s) % BT_FAC__COUNT;
	r.target.kind = rnd(s) % 3;
	r.target.id = (int32_t)(rnd(s) % 4);
	r.aux_bytes = 4096ull << (rnd(s) % 12);
	r.grant = rnd(s) % 8;
	r.config.sz = sizeof(r.config);
	bt_proto_buf__init(&b);
	if (bt_proto_req__encode(&r, &b) || b.oom) {
		bt_proto_buf__fini(&b);
		return 0;
	}
	n = b.len < cap ? b.len : cap;
	memcpy(out, b.data, n);
	bt_proto_buf__fini(&b);
	return n;
}

Test(daemon, a_hundred_thousand_hostile_messages_crash_nothing, .timeout = 600)
{
	struct bt_proto_req hello = { .op = BT_OP_HELLO, .id = 1,
				      .version = BT_PROTO_VERSION };
	struct bt_broker *good;
	struct bt_proto_buf hb;
	unsigned char body[512];
	uint64_t s = 0x9E3779B97F4A7C15ull, answered = 0, closed = 0;
	struct td t;
	int fd;

	td_start(&t, "bd-hostile");
	good = td_connect(&t, "well-behaved");
	bt_proto_buf__init(&hb);
	cr_assert(eq(int, bt_proto_req__encode(&hello, &hb), 0));
	fd = raw_connect(t.sock);
	for (int i = 0; i < 100000; i++) {
		size_t n = valid_body(&s, body, sizeof(body));
		unsigned kind = rnd(&s) % 8;
		unsigned char hdr[4];
		void *rep = NULL;
		size_t rlen;
		int fds[4];
		unsigned nfds = 0;
		int err;

		/* Half the connections say hello first, as a client would. */
		if (kind == 0) {
			for (size_t k = n; k < sizeof(body); k++)
				body[k] = (unsigned char)rnd(&s);
			n = 1 + rnd(&s) % sizeof(body);	/* random bytes */
		} else if (kind <= 5 && n) {
			for (int k = 0; k < 1 + (int)(rnd(&s) % 4); k++)
				body[rnd(&s) % n] = (unsigned char)rnd(&s);
		} else if (kind == 6 && n > 1) {
			n = 1 + rnd(&s) % (n - 1);	/* truncated */
		}
		if (kind == 7 && (rnd(&s) & 1)) {
			/* A frame length the daemon must refuse. */
			uint32_t bad = rnd(&s) & 1 ? 0 : 0xFFFFFFF0u;

			hdr[0] = bad >> 24;
			hdr[1] = bad >> 16;
			hdr[2] = bad >> 8;
			hdr[3] = bad;
			err = send(fd, hdr, 4, MSG_NOSIGNAL) == 4 ? 0 : -EPIPE;
		} else {
			err = bt_proto_send(fd, body, n ? n : 1, NULL, 0);
		}
		if (!err)
			err = bt_proto_recv(fd, &rep, &rlen, fds, 4, &nfds);
		for (unsigned k = 0; k < nfds; k++)
			close(fds[k]);
		free(rep);
		if (!err) {
			answered++;
			continue;
		}
		/* The daemon closed this connection: open another. */
		closed++;
		close(fd);
		fd = raw_connect(t.sock);
		if (rnd(&s) & 1) {
			cr_assert(eq(int, bt_proto_send(fd, hb.data, hb.len,
							NULL, 0), 0));
			cr_assert(eq(int, bt_proto_recv(fd, &rep, &rlen, fds,
							4, &nfds), 0));
			free(rep);
		}
		if (i % 1000 == 0) {
			char *json = NULL;

			cr_assert(eq(int, bt_broker__status_json(good, &json),
				     0), "the good client after %d: %s", i,
				  bt_broker__error(good));
			free(json);
		}
	}
	close(fd);
	bt_proto_buf__fini(&hb);
	cr_log_info("100000 hostile messages: %llu answered, %llu closed "
		    "the connection", (unsigned long long)answered,
		    (unsigned long long)closed);
	cr_assert(eq(int, kill(t.pid, 0), 0), "btraild died");
	{
		char *json = NULL;

		cr_assert(eq(int, bt_broker__status_json(good, &json), 0));
		free(json);
	}
	bt_broker__close(good);
	td_stop(&t, SIGTERM);
	ru_rmrf(t.dir);
}

/* ---- btrail record --daemon ---------------------------------------------- */

/* Start `btrail record --daemon -e step -p @pid -o @out`, stderr to @log. */
static pid_t record_daemon(const struct td *t, pid_t pid, const char *out,
			   const char *log)
{
	const char *bin = ru_bin();
	char spid[16];
	pid_t r = fork();

	cr_assert(r >= 0);
	if (r == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0)
			dup2(fd, 2);
		snprintf(spid, sizeof(spid), "%d", (int)pid);
		execl(bin, bin, "record", "--socket", t->sock, "-e", "step",
		      "-p", spid, "-o", out, (char *)NULL);
		_exit(127);
	}
	return r;
}

static bool file_has(const char *path, const char *needle)
{
	static char buf[1 << 20];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

Test(daemon, two_record_daemon_runs_on_one_target_share_one_session,
     .timeout = 120)
{
	char out[2][160], log[2][160], json_key[64], *json = NULL;
	struct bt_broker *b;
	pid_t target, rec[2];
	int st, sessions = 0;
	struct td t;

	td_start(&t, "bd-record");
	target = spawn_spin();
	for (int i = 0; i < 2; i++) {
		snprintf(out[i], sizeof(out[i]), "%s/b%d.bundle", t.dir, i);
		snprintf(log[i], sizeof(log[i]), "%s/rec%d.log", t.dir, i);
		rec[i] = record_daemon(&t, target, out[i], log[i]);
		/* The second asks once the first owns the session. */
		for (int k = 0; i == 0 && k < 250 &&
		     !file_has(log[0], "owning session"); k++)
			sleep_ms(20);
	}
	for (int k = 0; k < 250 && !file_has(log[1], "sharing session"); k++)
		sleep_ms(20);
	cr_assert(file_has(log[0], "owning session 1"), "first recorder "
		  "did not own the session");
	cr_assert(file_has(log[1], "sharing session 1"), "second recorder "
		  "did not share it");

	/* One hardware session, two tracers on it. */
	b = td_connect(&t, "check");
	cr_assert(eq(int, bt_broker__status_json(b, &json), 0));
	for (const char *p = json; (p = strstr(p, "\"facility\": \"step\""));
	     p++)
		sessions++;
	cr_assert(eq(int, sessions, 1), "%s", json);
	snprintf(json_key, sizeof(json_key), "\"owner_pid\": %d", (int)rec[0]);
	cr_assert(ne(ptr, strstr(json, json_key), NULL), "%s", json);
	free(json);
	bt_broker__close(b);

	/* The target ends: both write their bundle of the same trace. */
	kill(target, SIGTERM);
	waitpid(target, &st, 0);
	for (int i = 0; i < 2; i++) {
		char json_path[400];

		bool exited;

		cr_assert(eq(int, waitpid(rec[i], &st, 0), rec[i]));
		exited = WIFEXITED(st) && WEXITSTATUS(st) == 0;
		cr_assert(exited, "recorder %d: status %#x", i, st);
		snprintf(json_path, sizeof(json_path), "%s/btrail.json",
			 out[i]);
		cr_assert(eq(int, access(json_path, F_OK), 0), "%s", json_path);
		cr_assert(file_has(json_path, "\"trigger\""), "%s has no "
			  "trigger", json_path);
	}
	td_stop(&t, SIGTERM);
	ru_rmrf(t.dir);
}
