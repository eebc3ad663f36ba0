// SPDX-License-Identifier: BSD-3-Clause
/*
 * KMES rings across processes, under load and under attack:
 *
 *  - stress: one producer process emits 10 million self-checking events
 *    of random sizes (single emits and batches mixed) into small rings
 *    while two consumer processes drain and a third lags on purpose so it
 *    is lapped; every consumer accounts for every sequence (read, counted
 *    as a gap, or before its first event) and never sees a torn event;
 *  - crash survival: a producer killed with SIGKILL mid-stream (also in
 *    the middle of a batch) leaves every committed event readable by a
 *    consumer that attaches afterwards, and a new producer can take over;
 *  - permissions: another user cannot attach to a private session, and a
 *    member of a session's --group can read it but not write the ring.
 *
 * Children report to the test through a MAP_SHARED anonymous mapping and
 * their exit status; they never call cr_assert (a child is not the test)
 * and always leave with _exit(). PR_SET_PDEATHSIG takes them down with the
 * test process when an assertion fails or the timeout fires.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <btrail/errno.h>
#include <btrail/kmes.h>

#include "common/bytes.h"
#include "helpers/testutil.h"

#define EV_TYPE		"stress.ev"
#define EV_TYPE_LEN	9u

/* ---- Helpers ------------------------------------------------------------ */

/* A seed that differs between runs; printed with every failure. */
static uint64_t test_seed(void)
{
	struct timespec ts;
	uint64_t s;

	clock_gettime(CLOCK_REALTIME, &ts);
	s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
	    ((uint64_t)getpid() << 40);
	return s ? s : 1;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { us / 1000000u, (long)(us % 1000000u) * 1000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void *shared_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	cr_assert(ne(ptr, p, MAP_FAILED), "mmap shared: %s", strerror(errno));
	return p;
}

/*
 * fork() a child that dies with the test process. Returns 0 in the child,
 * the pid in the parent.
 */
static pid_t fork_child(void)
{
	pid_t parent = getpid(), pid;

	fflush(NULL);
	pid = fork();
	cr_assert(ge(int, (int)pid, 0), "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(120);	/* the test died before we got here */
	}
	return pid;
}

/* Wait for @pid; its exit code, or 128 + the signal that killed it. */
static int reap(pid_t pid)
{
	int st = 0;
	pid_t r;

	do
		r = waitpid(pid, &st, 0);
	while (r < 0 && errno == EINTR);
	if (r != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) :
	       WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

/* Has @pid exited (without reaping it)? */
static bool child_exited(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	       si.si_pid == pid;
}

/* Create a session and close it at once: children open it themselves. */
static char *make_session(const char *tag, uint64_t cap, uint32_t slots)
{
	const char *name = tu_name(tag);
	struct bt_kmes_session *s = tu_create(name, cap, slots);

	bt_kmes_session__close(s);
	return strdup(name);
}

/* ---- Stress: 1 producer, 2 draining consumers, 1 lagging consumer ------- */

#define ST_SLOTS	2u
#define ST_CAP		(1u << 20)		/* 1 MiB: lapping happens */
#define ST_EVENTS	10000000ull		/* in all, over both rings */
#define ST_PAY_MIN	23u			/* smallest checked payload */
#define ST_PAY_MAX	600u
#define ST_CONSUMERS	3
#define ST_LAGGER	2			/* consumer index that lags */
#define ST_LAG_EVERY	400000u			/* events read between naps */
#define ST_LAG_NAPS	6			/* naps at most */
/*
 * The most events one ring holds (all of the smallest size): a nap that
 * lets more than this go by on a ring is certain to be lapped.
 */
#define ST_RING_EVENTS	(ST_CAP / (KMES_HDR_FIXED + EV_TYPE_LEN + ST_PAY_MIN))

struct st_consumer {
	atomic_int ready;
	int exited_ok;
	uint64_t events[ST_SLOTS];	/* counted by the test */
	uint64_t gap_sum[ST_SLOTS];	/* sum of ev.gap */
	uint64_t first_seq[ST_SLOTS];
	uint64_t last_seq[ST_SLOTS];
	uint64_t bad;			/* events that failed a check */
	uint64_t corrupt_returns;	/* -BT_ERRNO_CORRUPT from __next */
	uint64_t naps;
	uint32_t reader_slots;
	struct bt_kmes_slot_stats st[ST_SLOTS];
	char why[256];			/* the first failure */
};

struct st_shared {
	atomic_int go;
	atomic_int producer_done;
	_Atomic uint64_t emitted[ST_SLOTS];	/* events that emit accepted */
	uint64_t singles, batches;
	uint64_t last_sequence[ST_SLOTS];	/* as the producer saw it */
	int producer_err;
	double producer_s;
	char producer_why[256];
	struct st_consumer c[ST_CONSUMERS];
};

static void st_producer(struct st_shared *sh, const char *name, uint64_t seed)
{
	static unsigned char buf[KMES_BATCH_MAX][ST_PAY_MAX];
	struct kmes_emit_entry e[KMES_BATCH_MAX];
	uint64_t next[ST_SLOTS], total = 0, rng = seed;
	struct bt_kmes_session *s;
	double t0;

	s = bt_kmes_session__open(name, NULL);
	if (!s) {
		snprintf(sh->producer_why, sizeof(sh->producer_why),
			 "session open: %s", bt_strerror(errno));
		_exit(2);
	}
	for (uint32_t i = 0; i < ST_SLOTS; i++)
		next[i] = 1;
	while (!atomic_load(&sh->go))
		sleep_us(1000);

	t0 = mono_s();
	while (total < ST_EVENTS) {
		uint32_t slot = (uint32_t)(tu_xorshift(&rng) % ST_SLOTS);
		uint64_t r = tu_xorshift(&rng);
		/* Half single emits, half batches of 2..128 events. */
		uint32_t n = (r & 1) ? 1 : 2 + (uint32_t)((r >> 1) % 127);
		uint32_t done = 0;
		int ret;

		if (n > ST_EVENTS - total)
			n = (uint32_t)(ST_EVENTS - total);
		for (uint32_t i = 0; i < n; i++) {
			uint32_t len = ST_PAY_MIN +
				(uint32_t)(tu_xorshift(&rng) %
					   (ST_PAY_MAX - ST_PAY_MIN + 1));

			bt_kmes_payload_fill(buf[i], len, next[slot] + i, &rng);
			e[i] = (struct kmes_emit_entry){
				.event_type = EV_TYPE,
				.event_type_len = EV_TYPE_LEN,
				.payload = buf[i],
				.payload_len = len,
			};
		}
		if (n == 1) {
			ret = kmes_emit(s, slot, EV_TYPE, EV_TYPE_LEN, buf[0],
					e[0].payload_len);
			done = ret == 0;
			sh->singles++;
		} else {
			ret = kmes_emit_batch(s, slot, e, n, &done);
			sh->batches++;
		}
		if (ret < 0) {
			sh->producer_err = errno;
			snprintf(sh->producer_why, sizeof(sh->producer_why),
				 "slot %u: emit of %u failed after %u: %s", slot,
				 n, done, strerror(errno));
			atomic_store(&sh->producer_done, 1);
			_exit(3);
		}
		next[slot] += done;
		total += done;
		atomic_store_explicit(&sh->emitted[slot], next[slot] - 1,
				      memory_order_release);
	}
	sh->producer_s = mono_s() - t0;
	for (uint32_t i = 0; i < ST_SLOTS; i++)
		sh->last_sequence[i] = bt_kmes_session__last_sequence(s, i);
	/* Every emit returned: write_pos of every ring is final now. */
	atomic_store(&sh->producer_done, 1);
	bt_kmes_session__close(s);
	_exit(0);
}

static void st_fail(struct st_consumer *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void st_fail(struct st_consumer *c, const char *fmt, ...)
{
	va_list ap;

	if (c->bad++ || c->why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
}

/* Every property a returned event must have; failures are counted. */
static void st_check_event(struct st_consumer *c, const struct bt_kmes_event *ev,
			   uint64_t *last_ts)
{
	uint32_t sl = ev->slot;
	uint64_t pseq = 0;
	int v;

	if (sl >= ST_SLOTS) {
		st_fail(c, "event from slot %u", sl);
		return;
	}
	if (ev->type_len != EV_TYPE_LEN || memcmp(ev->type, EV_TYPE, EV_TYPE_LEN))
		st_fail(c, "slot %u seq %" PRIu64 ": wrong type", sl,
			ev->sequence);
	if (ev->origin_class != KMES_ORIGIN_USER || ev->cpu_id != sl)
		st_fail(c, "slot %u seq %" PRIu64 ": origin %u cpu %u", sl,
			ev->sequence, ev->origin_class, ev->cpu_id);
	if (ev->payload_len < ST_PAY_MIN || ev->payload_len > ST_PAY_MAX ||
	    ev->event_size != KMES_HDR_FIXED + EV_TYPE_LEN + ev->payload_len)
		st_fail(c, "slot %u seq %" PRIu64 ": sizes %u/%u", sl,
			ev->sequence, ev->event_size, ev->payload_len);
	v = bt_kmes_payload_check(ev->payload, ev->payload_len, &pseq);
	if (v != 1 || pseq != ev->sequence)
		st_fail(c, "slot %u seq %" PRIu64 ": torn or corrupt payload "
			"(check %d, carried sequence %" PRIu64 ")", sl,
			ev->sequence, v, pseq);
	if (bt_le64((const unsigned char *)ev->raw + KMES_EV_SEQUENCE) !=
	    ev->sequence)
		st_fail(c, "slot %u seq %" PRIu64 ": raw header differs", sl,
			ev->sequence);
	if (ev->timestamp < last_ts[sl])
		st_fail(c, "slot %u seq %" PRIu64 ": timestamp went back", sl,
			ev->sequence);
	last_ts[sl] = ev->timestamp;

	if (!c->events[sl]) {
		c->first_seq[sl] = ev->sequence;
		if (ev->gap)
			st_fail(c, "slot %u: first event has gap %" PRIu64, sl,
				ev->gap);
	} else if (ev->sequence != c->last_seq[sl] + 1 + ev->gap) {
		st_fail(c, "slot %u: seq %" PRIu64 " after %" PRIu64
			" with gap %" PRIu64, sl, ev->sequence,
			c->last_seq[sl], ev->gap);
	}
	c->events[sl]++;
	c->gap_sum[sl] += ev->gap;
	c->last_seq[sl] = ev->sequence;
}

/*
 * The lagging consumer's nap: sleep until more than a ring's worth of
 * events went into every ring (or the producer is done), so the
 * producer certainly laps it.
 */
static void st_nap(struct st_shared *sh, struct st_consumer *c)
{
	uint64_t from[ST_SLOTS];
	bool far;

	for (uint32_t i = 0; i < ST_SLOTS; i++)
		from[i] = atomic_load(&sh->emitted[i]);
	do {
		sleep_us(2000);
		far = true;
		for (uint32_t i = 0; i < ST_SLOTS; i++)
			far &= atomic_load(&sh->emitted[i]) - from[i] >
			       2 * ST_RING_EVENTS;
	} while (!far && !atomic_load(&sh->producer_done));
	c->naps++;
}

static void st_consumer(struct st_shared *sh, int idx, const char *name)
{
	struct st_consumer *c = &sh->c[idx];
	struct bt_kmes_reader_opts ro = { .sz = sizeof(ro) };
	uint64_t last_ts[ST_SLOTS] = { 0 }, read = 0;
	struct bt_kmes_reader *r;
	struct bt_kmes_event ev;
	bool done = false;

	r = bt_kmes_reader__new(name, &ro);
	if (!r) {
		st_fail(c, "reader_new: %s", bt_strerror(errno));
		atomic_store(&c->ready, 1);
		_exit(2);
	}
	atomic_store(&c->ready, 1);
	for (;;) {
		int ret = bt_kmes_reader__next(r, &ev);

		if (ret > 0) {
			st_check_event(c, &ev, last_ts);
			read++;
			if (idx == ST_LAGGER && read % ST_LAG_EVERY == 0 &&
			    c->naps < ST_LAG_NAPS)
				st_nap(sh, c);
			continue;
		}
		if (ret == -BT_ERRNO_CORRUPT) {
			c->corrupt_returns++;
			continue;
		}
		if (ret < 0) {
			st_fail(c, "reader_next: %s", bt_strerror(ret));
			break;
		}
		/* Drained. Once the producer was done before that, stop. */
		if (done)
			break;
		done = atomic_load(&sh->producer_done);
		if (!done) {
			ret = bt_kmes_reader__wait(r, 100);
			if (ret < 0 && ret != -EINTR) {
				st_fail(c, "reader_wait: %s", bt_strerror(ret));
				break;
			}
		}
	}
	c->reader_slots = bt_kmes_reader__slots(r);
	for (uint32_t i = 0; i < ST_SLOTS && i < c->reader_slots; i++)
		bt_kmes_reader__stats(r, i, &c->st[i]);
	bt_kmes_reader__free(r);
	c->exited_ok = 1;
	_exit(0);
}

Test(kmes_stress,
     ten_million_events_reach_every_consumer_or_are_counted_as_gaps_never_torn,
     .timeout = 400)
{
	struct st_shared *sh = shared_map(sizeof(*sh));
	uint64_t seed = test_seed(), emitted_total = 0;
	char *name = make_session("stress", ST_CAP, ST_SLOTS);
	pid_t cons[ST_CONSUMERS], prod;
	int prod_rc, cons_rc[ST_CONSUMERS];
	double t0 = mono_s();

	for (int i = 0; i < ST_CONSUMERS; i++) {
		cons[i] = fork_child();
		if (cons[i] == 0)
			st_consumer(sh, i, name);
	}
	/* Consumers attach first: they start at sequence 1 unless lapped. */
	for (int i = 0; i < ST_CONSUMERS; i++) {
		for (int k = 0; k < 30000 && !atomic_load(&sh->c[i].ready); k++)
			sleep_us(1000);
	}
	prod = fork_child();
	if (prod == 0)
		st_producer(sh, name, seed);
	atomic_store(&sh->go, 1);

	prod_rc = reap(prod);
	if (prod_rc != 0)	/* consumers wait for this flag */
		atomic_store(&sh->producer_done, 1);
	for (int i = 0; i < ST_CONSUMERS; i++)
		cons_rc[i] = reap(cons[i]);

	cr_log_info("kmes_stress: %" PRIu64 " + %" PRIu64 " events, %" PRIu64
		    " singles, %" PRIu64 " batches; producer %.2f s, all %.2f s;"
		    " lagger naps %" PRIu64 " lapped %" PRIu64 "+%" PRIu64
		    " missed %" PRIu64 "+%" PRIu64 " (seed %#" PRIx64 ")",
		    atomic_load(&sh->emitted[0]), atomic_load(&sh->emitted[1]),
		    sh->singles, sh->batches, sh->producer_s, mono_s() - t0,
		    sh->c[ST_LAGGER].naps, sh->c[ST_LAGGER].st[0].lapped,
		    sh->c[ST_LAGGER].st[1].lapped, sh->c[ST_LAGGER].st[0].missed,
		    sh->c[ST_LAGGER].st[1].missed, seed);

	cr_assert(eq(int, prod_rc, 0), "producer: %s (seed %#" PRIx64 ")",
		  sh->producer_why, seed);
	for (uint32_t sl = 0; sl < ST_SLOTS; sl++) {
		uint64_t em = atomic_load(&sh->emitted[sl]);

		emitted_total += em;
		cr_assert(eq(u64, sh->last_sequence[sl], em),
			  "slot %u: library's last sequence vs events emitted",
			  sl);
	}
	cr_assert(eq(u64, emitted_total, ST_EVENTS));
	cr_assert(gt(u64, sh->singles, 0ull));
	cr_assert(gt(u64, sh->batches, 0ull));

	for (int i = 0; i < ST_CONSUMERS; i++) {
		struct st_consumer *c = &sh->c[i];

		cr_assert(eq(int, cons_rc[i], 0), "consumer %d exit %d: %s", i,
			  cons_rc[i], c->why);
		cr_assert(eq(int, c->exited_ok, 1));
		cr_assert(eq(u64, c->bad, 0ull),
			  "consumer %d: %" PRIu64 " bad events; first: %s "
			  "(seed %#" PRIx64 ")", i, c->bad, c->why, seed);
		cr_assert(eq(u64, c->corrupt_returns, 0ull), "consumer %d", i);
		cr_assert(eq(u32, c->reader_slots, ST_SLOTS));
		for (uint32_t sl = 0; sl < ST_SLOTS; sl++) {
			uint64_t em = atomic_load(&sh->emitted[sl]);
			const struct bt_kmes_slot_stats *st = &c->st[sl];
			uint64_t before = c->first_seq[sl] ?
					  c->first_seq[sl] - 1 : em;

			cr_assert(gt(u64, c->events[sl], 0ull),
				  "consumer %d slot %u read nothing", i, sl);
			/* Drained to the end: the last sequence is the last. */
			cr_assert(eq(u64, c->last_seq[sl], em),
				  "consumer %d slot %u", i, sl);
			/* Every sequence read, skipped, or before the first. */
			cr_assert(eq(u64, c->events[sl] + c->gap_sum[sl] + before,
				     em), "consumer %d slot %u: %" PRIu64
				  " read + %" PRIu64 " gaps + %" PRIu64
				  " before the first", i, sl, c->events[sl],
				  c->gap_sum[sl], before);
			/* The reader's own accounting agrees. */
			cr_assert(eq(u64, st->events, c->events[sl]));
			cr_assert(eq(u64, st->missed, c->gap_sum[sl]));
			cr_assert(eq(u64, st->first_sequence, c->first_seq[sl]));
			cr_assert(eq(u64, st->last_sequence, em));
			cr_assert(eq(u64, st->corrupt, 0ull),
				  "consumer %d slot %u", i, sl);
			cr_assert(eq(u64, st->produced, em));
			cr_assert(eq(u64, st->write_pos, st->read_pos));
			cr_assert(eq(u64, st->generation, 1ull));
		}
	}
	/* The lagging consumer really was overtaken, on every ring. */
	cr_assert(ge(u64, sh->c[ST_LAGGER].naps, 1ull));
	for (uint32_t sl = 0; sl < ST_SLOTS; sl++) {
		const struct bt_kmes_slot_stats *st = &sh->c[ST_LAGGER].st[sl];

		cr_assert(gt(u64, st->lapped, 0ull),
			  "lagging consumer was never lapped on slot %u", sl);
		cr_assert(gt(u64, st->missed, 0ull),
			  "lagging consumer missed nothing on slot %u", sl);
		cr_assert(gt(u64, st->lost, 0ull),
			  "the producer overwrote nothing on slot %u", sl);
	}
	free(name);
}

/* ---- Crash survival: SIGKILL the producer mid-stream ------------------- */

#define CR_CAP		(64u << 20)	/* no event is overwritten */
#define CR_PAY_MAX	300u

enum cr_mode { CR_SINGLES, CR_BATCHES, CR_MIXED };

struct cr_shared {
	atomic_int ready;
	atomic_int full;		/* the ring could take no more */
	_Atomic uint64_t committed;	/* events of emits that returned 0 */
	_Atomic uint32_t inflight;	/* entries of the call under way */
	char why[256];
};

static void cr_producer(struct cr_shared *sh, const char *name,
			enum cr_mode mode, uint64_t seed)
{
	static unsigned char buf[KMES_BATCH_MAX][CR_PAY_MAX];
	struct kmes_emit_entry e[KMES_BATCH_MAX];
	struct bt_kmes_session *s;
	uint64_t rng = seed, next, bytes = 0;

	s = bt_kmes_session__open(name, NULL);
	if (!s) {
		snprintf(sh->why, sizeof(sh->why), "open: %s",
			 bt_strerror(errno));
		_exit(2);
	}
	next = bt_kmes_session__last_sequence(s, 0) + 1;
	atomic_store(&sh->ready, 1);
	for (;;) {
		uint64_t r = tu_xorshift(&rng), need = 0;
		uint32_t n, done = 0;
		int ret;

		n = mode == CR_SINGLES ? 1 :
		    mode == CR_BATCHES ? 2 + (uint32_t)(r % 255) :
		    (r & 1) ? 1 : 2 + (uint32_t)((r >> 1) % 255);
		for (uint32_t i = 0; i < n; i++) {
			uint32_t len = ST_PAY_MIN +
				(uint32_t)(tu_xorshift(&rng) %
					   (CR_PAY_MAX - ST_PAY_MIN + 1));

			bt_kmes_payload_fill(buf[i], len, next + i, &rng);
			e[i] = (struct kmes_emit_entry){
				.event_type = EV_TYPE,
				.event_type_len = EV_TYPE_LEN,
				.payload = buf[i],
				.payload_len = len,
			};
			need += KMES_HDR_FIXED + EV_TYPE_LEN + len;
		}
		if (bytes + need > CR_CAP) {
			/* Stop before anything would be overwritten. */
			atomic_store(&sh->full, 1);
			for (;;)
				pause();
		}
		atomic_store(&sh->inflight, n);
		if (n == 1) {
			ret = kmes_emit(s, 0, EV_TYPE, EV_TYPE_LEN, buf[0],
					e[0].payload_len);
			done = ret == 0;
		} else {
			ret = kmes_emit_batch(s, 0, e, n, &done);
		}
		if (ret < 0) {
			snprintf(sh->why, sizeof(sh->why), "emit: %s",
				 strerror(errno));
			_exit(3);
		}
		next += done;
		bytes += need;
		atomic_store(&sh->committed, next - 1);
		atomic_store(&sh->inflight, 0);
	}
}

/* The ring's BT_KMES_XOFF_LAST_SEQ, read through a consumer mapping. */
static uint64_t ring_last_seq(const char *name)
{
	uint64_t cap = 0, v;
	unsigned char *b;
	int fd;

	fd = kmes_attach(name, 0, &cap);
	cr_assert(ge(int, fd, 0), "kmes_attach: %s", strerror(errno));
	b = kmes_map(fd, cap);
	cr_assert(ne(ptr, (void *)b, NULL), "kmes_map: %s", strerror(errno));
	close(fd);
	v = bt_le64(b + BT_KMES_XOFF_LAST_SEQ);
	kmes_unmap(b, cap);
	return v;
}

/*
 * One round: start a producer, let it emit at least @min_events, then
 * kill it @delay_us later (or, with @in_batch, at a moment it is inside
 * kmes_emit_batch, found by stopping it until it is), then check what a
 * new consumer and a new producer find.
 */
static void crash_round(enum cr_mode mode, uint64_t min_events,
			unsigned delay_us, bool in_batch, uint64_t seed)
{
	struct cr_shared *sh = shared_map(sizeof(*sh));
	char *name = make_session("crash", CR_CAP, 1);
	struct bt_kmes_reader *r;
	struct bt_kmes_session *s2;
	struct bt_kmes_slot_stats st;
	struct bt_kmes_event ev;
	uint64_t committed, n = 0, last, pseq;
	uint32_t inflight;
	unsigned char pay[64];
	double t0;
	pid_t pid;
	int rc, ret;

	pid = fork_child();
	if (pid == 0)
		cr_producer(sh, name, mode, seed);

	t0 = mono_s();
	while (atomic_load(&sh->committed) < min_events &&
	       !atomic_load(&sh->full) && mono_s() - t0 < 60 &&
	       !child_exited(pid))
		sleep_us(50);
	if (delay_us)
		sleep_us(delay_us);
	if (in_batch) {
		/* Stop it until it is stopped inside a batch, then kill. */
		int tries = 0;

		for (;; tries++) {
			int wst = 0;

			kill(pid, SIGSTOP);
			if (waitpid(pid, &wst, WUNTRACED) != pid ||
			    !WIFSTOPPED(wst))
				break;
			if (atomic_load(&sh->inflight) > 1 || tries > 100000 ||
			    atomic_load(&sh->full))
				break;
			kill(pid, SIGCONT);
			sleep_us((unsigned)(seed % 97) + (unsigned)tries % 53);
		}
	}
	kill(pid, SIGKILL);
	rc = reap(pid);
	committed = atomic_load(&sh->committed);
	inflight = atomic_load(&sh->inflight);
	cr_log_info("kmes_stress crash: mode %d, %" PRIu64 " committed, %u "
		    "in flight at the kill (seed %#" PRIx64 ")", (int)mode,
		    committed, inflight, seed);

	cr_assert(eq(int, rc, 128 + SIGKILL), "producer: exit %d: %s", rc,
		  sh->why);
	cr_assert(eq(int, atomic_load(&sh->full), 0),
		  "the ring filled up before the kill: not mid-stream");
	cr_assert(ge(u64, committed, min_events));
	if (in_batch)
		cr_assert(gt(u32, inflight, 1u),
			  "could not catch the producer inside a batch");

	/* A consumer that attaches now reads 1..N, all intact. */
	r = bt_kmes_reader__new(name, NULL);
	cr_assert(ne(ptr, r, NULL), "reader: %s", strerror(errno));
	while ((ret = bt_kmes_reader__next(r, &ev)) > 0) {
		n++;
		cr_assert(eq(u64, ev.sequence, n), "sequences are contiguous");
		cr_assert(eq(u64, ev.gap, 0ull));
		cr_assert(eq(int, bt_kmes_payload_check(ev.payload,
							ev.payload_len, &pseq),
			     1), "seq %" PRIu64 " torn or corrupt", n);
		cr_assert(eq(u64, pseq, ev.sequence));
	}
	cr_assert(eq(int, ret, 0));
	cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &st), 0));
	cr_assert(eq(u64, st.corrupt, 0ull));
	cr_assert(eq(u64, st.torn, 0ull));
	cr_assert(eq(u64, st.lapped, 0ull));
	cr_assert(eq(u64, st.lost, 0ull));
	cr_assert(eq(u32, st.producer_pid, (uint32_t)pid),
		  "the ring still names the dead producer");

	/*
	 * Everything that emit reported done is there, and at most the
	 * call it was killed in besides.
	 */
	cr_assert(ge(u64, n, committed), "lost committed events");
	cr_assert(le(u64, n, committed + inflight));
	last = ring_last_seq(name);
	/*
	 * The last sequence spent is N: ring_write() stores it just before
	 * the write_pos that publishes the events. Only a kill between those
	 * two stores leaves it ahead, by at most the call in flight (those
	 * sequences were spent, never published: a gap, never a duplicate).
	 */
	if (last != n) {
		cr_assert(gt(u32, inflight, 0u), "last_seq %" PRIu64
			  " but %" PRIu64 " events, and no call in flight",
			  last, n);
		cr_assert(le(u64, last, committed + inflight));
		cr_assert(gt(u64, last, n));
	}
	cr_assert(eq(u64, st.produced, last));

	/* The flock died with the producer: a new one takes over at N + 1. */
	s2 = bt_kmes_session__open(name, NULL);
	cr_assert(ne(ptr, s2, NULL), "session open after the kill: %s",
		  bt_strerror(errno));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s2, 0), last));
	tu_payload(pay, sizeof(pay), last + 1);
	cr_assert(eq(int, kmes_emit(s2, 0, EV_TYPE, EV_TYPE_LEN, pay,
				    sizeof(pay)), 0), "emit: %s",
		  strerror(errno));
	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
	cr_assert(eq(u64, ev.sequence, last + 1));
	cr_assert(eq(u64, ev.gap, last - n));
	cr_assert(eq(int, bt_kmes_payload_check(ev.payload, ev.payload_len,
						&pseq), 1));
	cr_assert(eq(u64, pseq, last + 1));
	cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &st), 0));
	cr_assert(eq(u32, st.producer_pid, (uint32_t)getpid()));
	bt_kmes_session__close(s2);
	bt_kmes_reader__free(r);
	cr_assert(eq(int, bt_kmes_session__destroy(name, false), 0));
	munmap(sh, sizeof(*sh));
	free(name);
}

Test(kmes_stress, a_producer_killed_mid_stream_leaves_every_committed_event_readable,
     .timeout = 240)
{
	uint64_t seed = test_seed();
	static const struct {
		enum cr_mode mode;
		uint64_t min_events;
		unsigned delay_us;
		bool in_batch;
	} rounds[] = {
		{ CR_SINGLES, 1, 0, false },		/* at the very start */
		{ CR_SINGLES, 2000, 700, false },
		{ CR_MIXED, 5000, 2500, false },
		{ CR_MIXED, 20000, 0, true },
		{ CR_BATCHES, 100, 300, true },
		{ CR_BATCHES, 30000, 1500, true },
		{ CR_BATCHES, 10000, 4000, false },
	};

	for (size_t i = 0; i < sizeof(rounds) / sizeof(rounds[0]); i++) {
		uint64_t rs = seed + i * 0x9e3779b97f4a7c15ull;

		crash_round(rounds[i].mode, rounds[i].min_events,
			    rounds[i].delay_us + (unsigned)(rs % 500),
			    rounds[i].in_batch, rs | 1);
	}
}

/* ---- Permissions: another user, with and without the group ------------- */

/* What the unprivileged child found, step by step. */
struct perm_result {
	int dropped;			/* running as nobody, no groups */
	int attach_ret, attach_errno;
	int reader_errno;		/* 0: reader__new succeeded */
	int map_errno;			/* 0: kmes_map succeeded */
	uint64_t events, good_payloads;
	int need_wake_written;
	int open_rdwr_errno;		/* 0: the ring opened read-write (bad) */
	int open_wronly_errno;
	int lock_open_errno;
	int producer_open_errno;	/* 0: became producer (bad) */
	int page_write_signal;		/* signal of a write to the ring page */
	char why[256];
};

static void perm_drop(struct perm_result *pr, const struct passwd *pw)
{
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		snprintf(pr->why, sizeof(pr->why), "dropping to %s: %s",
			 pw->pw_name, strerror(errno));
		_exit(2);
	}
	/* Still dumpable, so the sanitizers can read /proc/self. */
	prctl(PR_SET_DUMPABLE, 1);
	pr->dropped = getuid() == pw->pw_uid && geteuid() == pw->pw_uid &&
		      getgid() == pw->pw_gid && getgroups(0, NULL) == 0;
}

static void perm_child(struct perm_result *pr, const struct passwd *pw,
		       const char *path, bool full)
{
	struct bt_kmes_reader *r;
	struct bt_kmes_event ev;
	char ring[4096];
	uint64_t cap = 0, pseq;
	unsigned char *base;
	int fd;

	perm_drop(pr, pw);
	pr->attach_ret = fd = kmes_attach(path, 0, &cap);
	pr->attach_errno = fd < 0 ? errno : 0;
	r = bt_kmes_reader__new(path, NULL);
	pr->reader_errno = r ? 0 : errno;
	if (!full) {
		if (fd >= 0)
			close(fd);
		bt_kmes_reader__free(r);
		_exit(0);
	}
	if (fd < 0 || !r)
		_exit(3);

	base = kmes_map(fd, cap);
	pr->map_errno = base ? 0 : errno;
	close(fd);
	if (base) {
		atomic_store((_Atomic uint8_t *)(void *)(base + KMES_OFF_NEED_WAKE),
			     1);
		pr->need_wake_written = atomic_load((_Atomic uint8_t *)(void *)
					(base + KMES_OFF_NEED_WAKE)) == 1;
		atomic_store((_Atomic uint8_t *)(void *)(base + KMES_OFF_NEED_WAKE),
			     0);
		/* A store to the producer page must fault. */
		fflush(NULL);
		pid_t g = fork();

		if (g == 0) {
			/* The default action, not a sanitizer's report. */
			signal(SIGSEGV, SIG_DFL);
			*(volatile uint64_t *)(void *)(base + KMES_OFF_WRITE_POS) = 1;
			_exit(0);
		}
		pr->page_write_signal = reap(g) - 128;
		kmes_unmap(base, cap);
	}
	while (bt_kmes_reader__next(r, &ev) > 0) {
		pr->events++;
		if (bt_kmes_payload_check(ev.payload, ev.payload_len, &pseq) == 1 &&
		    pseq == ev.sequence)
			pr->good_payloads++;
	}
	bt_kmes_reader__free(r);

	snprintf(ring, sizeof(ring), "%s/ring.0", path);
	fd = open(ring, O_RDWR | O_CLOEXEC);
	pr->open_rdwr_errno = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	fd = open(ring, O_WRONLY | O_CLOEXEC);
	pr->open_wronly_errno = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	snprintf(ring, sizeof(ring), "%s/lock", path);
	fd = open(ring, O_RDWR | O_CLOEXEC);
	pr->lock_open_errno = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	{
		struct bt_kmes_session *s = bt_kmes_session__open(path, NULL);

		pr->producer_open_errno = s ? 0 : errno;
		bt_kmes_session__close(s);
	}
	_exit(0);
}

/* Run perm_child as @pw against @path; returns its exit status. */
static int perm_run(struct perm_result *pr, const struct passwd *pw,
		    const char *path, bool full)
{
	pid_t pid;

	memset(pr, 0, sizeof(*pr));
	pid = fork_child();
	if (pid == 0)
		perm_child(pr, pw, path, full);
	return reap(pid);
}

static void emit_some(struct bt_kmes_session *s, uint64_t n)
{
	unsigned char pay[100];

	for (uint64_t i = 1; i <= n; i++) {
		tu_payload(pay, sizeof(pay), i);
		cr_assert(eq(int, kmes_emit(s, 0, EV_TYPE, EV_TYPE_LEN, pay,
					    sizeof(pay)), 0));
	}
}

Test(kmes_stress, only_the_sessions_group_may_attach_and_it_can_read_but_not_write)
{
	struct perm_result *pr = shared_map(sizeof(*pr));
	struct bt_kmes_session_opts o = { .sz = sizeof(o), .capacity = 65536,
					  .slots = 1 };
	struct bt_kmes_session *s;
	struct passwd *pwp, pw;
	struct group *gr;
	char gname[64], *path;
	const char *name;
	int rc;

	if (geteuid() != 0)
		cr_skip_test("needs root: the test switches to user nobody to "
			     "be another user");
	pwp = getpwnam("nobody");
	if (!pwp)
		cr_skip_test("no user 'nobody' on this system");
	pw = *pwp;
	pw.pw_name = strdup(pwp->pw_name);
	if (pw.pw_uid == 0)
		cr_skip_test("user nobody is uid 0");
	gr = getgrgid(pw.pw_gid);
	snprintf(gname, sizeof(gname), "%s", gr ? gr->gr_name : "");
	if (!gname[0])
		snprintf(gname, sizeof(gname), "%u", (unsigned)pw.pw_gid);

	/* A private session (0700 directory, 0600 rings): not for nobody. */
	name = tu_name("perm-priv");
	s = tu_create(name, 65536, 1);
	emit_some(s, 3);
	path = strdup(bt_kmes_session__path(s));
	rc = perm_run(pr, &pw, path, false);
	cr_assert(eq(int, rc, 0), "child: %s", pr->why);
	cr_assert(eq(int, pr->dropped, 1));
	cr_assert(eq(int, pr->attach_ret, -1));
	cr_assert(pr->attach_errno == EACCES || pr->attach_errno == EPERM,
		  "kmes_attach as nobody: %s", strerror(pr->attach_errno));
	cr_assert(pr->reader_errno == EACCES || pr->reader_errno == EPERM,
		  "reader_new as nobody: %s", strerror(pr->reader_errno));
	bt_kmes_session__close(s);
	free(path);

	/* With nobody's group: it reads everything, writes only need_wake. */
	name = tu_name("perm-grp");
	o.group = gname;
	bt_kmes_session__destroy(name, true);
	s = bt_kmes_session__create(name, &o);
	cr_assert(ne(ptr, s, NULL), "create with group %s: %s", gname,
		  bt_strerror(errno));
	tu_cleanup_at_exit(name);
	emit_some(s, 5);
	path = strdup(bt_kmes_session__path(s));
	rc = perm_run(pr, &pw, path, true);
	cr_assert(eq(int, rc, 0), "child exit %d: %s (attach %s, reader %s)",
		  rc, pr->why, strerror(pr->attach_errno),
		  strerror(pr->reader_errno));
	cr_assert(eq(int, pr->dropped, 1));
	cr_assert(ge(int, pr->attach_ret, 0), "kmes_attach: %s",
		  strerror(pr->attach_errno));
	cr_assert(eq(int, pr->reader_errno, 0));
	cr_assert(eq(int, pr->map_errno, 0), "kmes_map: %s",
		  strerror(pr->map_errno));
	cr_assert(eq(u64, pr->events, 5ull));
	cr_assert(eq(u64, pr->good_payloads, 5ull));
	cr_assert(eq(int, pr->need_wake_written, 1));
	cr_assert(eq(int, pr->page_write_signal, SIGSEGV),
		  "a store to the producer page did not fault");
	cr_assert(eq(int, pr->open_rdwr_errno, EACCES));
	cr_assert(eq(int, pr->open_wronly_errno, EACCES));
	cr_assert(eq(int, pr->lock_open_errno, EACCES));
	cr_assert(pr->producer_open_errno == EACCES ||
		  pr->producer_open_errno == EPERM,
		  "session open as nobody: %s",
		  strerror(pr->producer_open_errno));
	bt_kmes_session__close(s);
	free(path);
	free(pw.pw_name);
	munmap(pr, sizeof(*pr));
}
