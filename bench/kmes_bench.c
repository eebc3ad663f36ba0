// SPDX-License-Identifier: BSD-3-Clause
/*
 * kmes_bench - throughput of the KMES ring library (not a timed test: it
 * prints figures and never fails on them).
 *
 * For payloads of 16, 64, 256 and 1024 bytes (valid msgpack of exactly
 * that size, from bt_kmes_payload_fill) it measures:
 *
 *   emit    kmes_emit (validated, one event a call), kmes_emit_batch of
 *           256, and the trusted path bt_kmes_session__emit_trusted (no
 *           UTF-8 or msgpack checks) single and batched of 256; each with
 *           no consumer and with one consumer process (forked, pinned to
 *           the other CPU) draining with bt_kmes_reader__next/__wait.
 *   drain   a reader draining a full ring from where it stopped to
 *           write_pos (the ring refilled between passes).
 *
 * Every figure is printed beside a baseline measured in the same run:
 * for emits, memcpy of the same event bytes (77 + type + payload), event
 * by event, into a writable mapping of the same size laid out as a ring
 * (the data region mapped twice), advancing and wrapping the same way;
 * for the drain, memcpy of the same events out of the ring's own mapping
 * into one buffer. The ratio is ring / memcpy: what the ring costs beyond
 * the copy.
 *
 * Each figure is the median of 3 runs (1 with --quick) of at least
 * --time seconds each; the min..max of the runs is printed beside it,
 * and the least share of wall time the producer spent on a CPU ("cpu %",
 * under 100 when other load preempted it), since these are shared 2-CPU
 * machines. Runs are interleaved (memcpy, then each path) so a burst of
 * outside load spreads over all figures instead of spoiling one.
 *
 * With a consumer, the producer's session and the reader's stats say
 * whether it kept up: events read + sequences missed == events emitted,
 * and kept up means missed == 0 (no gap, no lap). The worst of the runs
 * is printed, with the consumer's own rate (events read / time from its
 * first event to its last) and how often it went to sleep in __wait.
 *
 * The figures are printed, never judged, except the targets
 * (64-byte payload, validated path: kmes_emit >= 15 M events/s, batches
 * of 256 >= 40 M events/s; one consumer keeps up), marked PASS or MISS.
 * The exit status is 0 unless something failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <btrail/errno.h>
#include <btrail/kmes.h>

#include "bench_util.h"

#define EV_TYPE		"bench.event"
#define EV_TYPE_LEN	((uint16_t)(sizeof(EV_TYPE) - 1))
#define POOL		256u		/* distinct payloads, cycled */
#define BATCH		KMES_BATCH_MAX	/* 256 */
#define MAX_REPS	5
#define NSIZES		4

#define TARGET_SINGLE	15e6	/* 64-byte payload, kmes_emit */
#define TARGET_BATCH	40e6	/* 64-byte payload, batches of 256 */

static const uint32_t sizes[NSIZES] = { 16, 64, 256, 1024 };

enum path { P_EMIT, P_BATCH, P_TRUSTED, P_TRUSTED_BATCH, NPATHS };

static const char *const path_name[NPATHS] = {
	"kmes_emit", "kmes_emit_batch", "emit_trusted", "emit_trusted",
};
static const uint32_t path_batch[NPATHS] = { 1, BATCH, 1, BATCH };

/* ---- Options and run state ---------------------------------------------- */

static struct {
	double min_s;		/* each run lasts at least this long */
	int reps;
	uint64_t capacity;
	uint32_t spin_us;
	uint32_t linger_us;
	bool quick;
} opt = { 0.25, 3, KMES_CAPACITY_DEFAULT, 0, 200, false };

static int cpu_prod = -1, cpu_cons = -1;	/* -1: not pinned */
static char session_name[96];
static struct bt_kmes_session *session;
static pid_t main_pid;

/* Payloads, batch entries and event images for the current size. */
static unsigned char *pool;		/* POOL payloads of @cur_size */
static struct kmes_emit_entry entries[POOL];
static unsigned char *images;		/* POOL whole events, for memcpy */
static uint32_t cur_size, cur_esz;

static void cleanup(void)
{
	if (getpid() != main_pid)
		return;
	if (session) {
		bt_kmes_session__close(session);
		session = NULL;
	}
	if (session_name[0]) {
		bt_kmes_session__destroy(session_name, true);
		session_name[0] = '\0';
	}
}

static void on_signal(int sig)
{
	/* Not async-signal-safe in general; good enough to not leak rings. */
	if (session_name[0] && getpid() == main_pid)
		bt_kmes_session__destroy(session_name, true);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "kmes_bench: %s: %s\n", what, bt_strerror(err));
	exit(1);
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		fprintf(stderr, "kmes_bench: cannot pin to CPU %d: %s\n", cpu,
			strerror(errno));
}

/* The first two CPUs we may run on: producer, consumer. */
static int pick_cpus(void)
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 0;
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++) {
		if (!CPU_ISSET(c, &set))
			continue;
		if (n++ == 0)
			cpu_prod = c;
		else
			cpu_cons = c;
	}
	if (n < 2)
		cpu_prod = -1;	/* one CPU: both share it, pin nothing */
	return CPU_COUNT(&set);
}

static void read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	snprintf(buf, len, "?");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

/*
 * Milliseconds the hypervisor has taken from @cpu so far (the steal column
 * of /proc/stat); -1 when unknown. A consumer whose vCPU is not run for a
 * few milliseconds is lapped by a producer writing GB/s into 4 MiB.
 */
static double steal_ms(int cpu)
{
	char line[512], want[32];
	unsigned long long v[8];
	double ms = -1;
	FILE *f;

	if (cpu < 0 || !(f = fopen("/proc/stat", "r")))
		return -1;
	snprintf(want, sizeof(want), "cpu%d ", cpu);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, want, strlen(want)))
			continue;
		if (sscanf(line + strlen(want), "%llu %llu %llu %llu %llu "
			   "%llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
			   &v[5], &v[6], &v[7]) == 8)
			ms = (double)v[7] * 1000.0 / (double)sysconf(_SC_CLK_TCK);
		break;
	}
	fclose(f);
	return ms;
}

/* ---- Payloads ----------------------------------------------------------- */

static void le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void prepare_size(uint32_t size)
{
	uint64_t rng = 0x9e3779b97f4a7c15ull ^ size, seq;

	free(pool);
	free(images);
	cur_size = size;
	cur_esz = KMES_HDR_FIXED + EV_TYPE_LEN + size;
	pool = malloc((size_t)POOL * size);
	images = calloc(POOL, cur_esz);
	if (!pool || !images)
		die("malloc", ENOMEM);
	for (uint32_t i = 0; i < POOL; i++) {
		unsigned char *p = pool + (size_t)i * size;
		unsigned char *img = images + (size_t)i * cur_esz;

		if (bt_kmes_payload_fill(p, size, i + 1, &rng) != size ||
		    bt_kmes_payload_check(p, size, &seq) < 0)
			die("bt_kmes_payload_fill", EINVAL);
		entries[i].event_type = EV_TYPE;
		entries[i].event_type_len = EV_TYPE_LEN;
		entries[i].payload = p;
		entries[i].payload_len = size;
		/* A plausible event image: sizes, type, payload. */
		le32(img + KMES_EV_EVENT_SIZE, cur_esz);
		le32(img + KMES_EV_HEADER_SIZE, KMES_HDR_FIXED + EV_TYPE_LEN);
		img[KMES_EV_TYPE_LEN] = EV_TYPE_LEN;
		memcpy(img + KMES_EV_TYPE, EV_TYPE, EV_TYPE_LEN);
		memcpy(img + KMES_EV_TYPE + EV_TYPE_LEN, p, size);
	}
}

/* ---- The memcpy baseline's ring-shaped memory --------------------------- */

static unsigned char *copy_ring;	/* 2 * capacity, data mapped twice */

static void copy_ring_map(void)
{
	uint64_t cap = opt.capacity;
	unsigned char *base;
	int fd;

	fd = memfd_create("kmes-bench-copy", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)cap) < 0)
		die("memfd_create", errno);
	base = mmap(NULL, 2 * cap, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		die("mmap", errno);
	for (int i = 0; i < 2; i++) {
		if (mmap(base + i * cap, cap, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
			die("mmap", errno);
	}
	close(fd);
	memset(base, 0, 2 * cap);	/* fault every page in, both views */
	copy_ring = base;
}

static uint64_t copy_pos;

/* @n events into the ring-shaped memory, as the ring lays them out. */
static void run_memcpy(uint64_t n)
{
	const uint64_t mask = opt.capacity - 1;
	uint64_t pos = copy_pos;
	const uint32_t esz = cur_esz;

	for (uint64_t i = 0; i < n; i++) {
		memcpy(copy_ring + (pos & mask),
		       images + (size_t)(i & (POOL - 1)) * esz, esz);
		pos += esz;
		/* Keep the compiler from merging or dropping the copies. */
		__asm__ __volatile__("" ::: "memory");
	}
	copy_pos = pos;
}

/* ---- Emitting ----------------------------------------------------------- */

/* @n events (a multiple of 256) on slot 0 by @p. */
static void run_emit(enum path p, uint64_t n)
{
	struct bt_kmes_session *s = session;
	uint32_t done;
	int rc;

	switch (p) {
	case P_EMIT:
		for (uint64_t i = 0; i < n; i++) {
			const struct kmes_emit_entry *e =
				&entries[i & (POOL - 1)];

			if (kmes_emit(s, 0, e->event_type, e->event_type_len,
				      e->payload, e->payload_len) < 0)
				die("kmes_emit", errno);
		}
		break;
	case P_BATCH:
		for (uint64_t i = 0; i < n; i += BATCH) {
			if (kmes_emit_batch(s, 0, entries, BATCH, &done) < 0)
				die("kmes_emit_batch", errno);
		}
		break;
	case P_TRUSTED:
		for (uint64_t i = 0; i < n; i++) {
			rc = bt_kmes_session__emit_trusted(s, 0, NULL,
					&entries[i & (POOL - 1)], 1);
			if (rc != 1)
				die("bt_kmes_session__emit_trusted",
				    rc < 0 ? -rc : EIO);
		}
		break;
	case P_TRUSTED_BATCH:
		for (uint64_t i = 0; i < n; i += BATCH) {
			rc = bt_kmes_session__emit_trusted(s, 0, NULL, entries,
							   BATCH);
			if (rc != (int)BATCH)
				die("bt_kmes_session__emit_trusted",
				    rc < 0 ? -rc : EIO);
		}
		break;
	default:
		break;
	}
}

static double last_share;	/* CPU time / wall time of the last run_for */

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * Run @p (memcpy when @p == NPATHS) for at least @secs; returns events/s
 * and the events done in *@n_out. The clock is read every 256 events
 * (memcpy: 1024), well under 1% of any run.
 */
static double run_for(enum path p, double secs, uint64_t *n_out)
{
	const uint64_t chunk = p == NPATHS ? 1024 : BATCH;
	double t0 = bench_now_s(), c0 = cpu_s(), el;
	uint64_t n = 0;

	do {
		if (p == NPATHS)
			run_memcpy(chunk);
		else
			run_emit(p, chunk);
		n += chunk;
		el = bench_now_s() - t0;
	} while (el < secs);
	/* Below 1: the producer was off the CPU (other load, or asleep). */
	last_share = (cpu_s() - c0) / el;
	if (n_out)
		*n_out = n;
	return (double)n / el;
}

/* ---- The consumer process ----------------------------------------------- */

/* Shared with the forked consumer (MAP_SHARED | MAP_ANONYMOUS). */
struct cons_ctl {
	_Atomic int ready;		/* consumer attached: 1; failed: -1 */
	_Atomic int done;		/* producer finished its emits */
	uint64_t events;		/* events read */
	uint64_t first_seq, last_seq;
	uint64_t missed;		/* sequences skipped after the first */
	uint64_t lapped, torn, corrupt;
	uint64_t waits;			/* __wait calls */
	uint64_t timeouts;		/* __wait calls that timed out */
	double max_wait_s;		/* longest __wait */
	double max_stall_s;		/* longest time outside __wait
					   between two looks at the clock */
	double busy_s;			/* first event to last event */
	int err;
};

static struct cons_ctl *ctl;

static void consumer_main(void)
{
	struct bt_kmes_reader_opts o = {
		.sz = sizeof(o),
		.one_slot = true,
		.slot = 0,
		.from_now = true,
		.spin_us = opt.spin_us,
		.linger_us = opt.linger_us,
	};
	struct bt_kmes_slot_stats st;
	struct bt_kmes_reader *r;
	struct bt_kmes_event ev;
	double t0 = 0, t_last = 0, deadline;
	bool done_seen = false, got = false;
	uint64_t reads = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	pin(cpu_cons);
	r = bt_kmes_reader__new(session_name, &o);
	if (!r) {
		ctl->err = errno;
		atomic_store(&ctl->ready, -1);
		_exit(1);
	}
	atomic_store(&ctl->ready, 1);
	deadline = bench_now_s() + 120;
	for (double prev = bench_now_s(), t;;) {
		int rc = bt_kmes_reader__next(r, &ev);

		/* A clock read costs about what a read does: take it every
		 * 256 reads (a few us) and whenever the rings are drained. */
		if (rc != 1 || !(++reads & 255)) {
			t = bench_now_s();
			if (t - prev > ctl->max_stall_s)
				ctl->max_stall_s = t - prev;
			prev = t;
		}
		if (rc == 1) {
			if (!ctl->events++)
				t0 = bench_now_s();
			got = true;
			continue;
		}
		if (rc == 0 && got) {
			/* Caught up: the time of (about) the last event. */
			t_last = bench_now_s();
			got = false;
		}
		if (rc < 0 && rc != -BT_ERRNO_CORRUPT) {
			ctl->err = -rc;
			break;
		}
		if (rc < 0)
			continue;
		/* Drained. After "done" was seen, one full drain more. */
		if (done_seen)
			break;
		if (atomic_load(&ctl->done)) {
			done_seen = true;
			continue;
		}
		if (bench_now_s() > deadline) {
			ctl->err = ETIMEDOUT;
			break;
		}
		ctl->waits++;
		if (bt_kmes_reader__wait(r, 10) == 0)
			ctl->timeouts++;
		t = bench_now_s();
		if (t - prev > ctl->max_wait_s)
			ctl->max_wait_s = t - prev;
		prev = t;
	}
	if (bt_kmes_reader__stats(r, 0, &st) == 0) {
		ctl->first_seq = st.first_sequence;
		ctl->last_seq = st.last_sequence;
		ctl->missed = st.missed;
		ctl->lapped = st.lapped;
		ctl->torn = st.torn;
		ctl->corrupt = st.corrupt;
	}
	ctl->busy_s = ctl->events ? t_last - t0 : 0;
	bt_kmes_reader__free(r);
	_exit(ctl->err ? 1 : 0);
}

static pid_t consumer_start(void)
{
	pid_t pid;
	double until;

	memset(ctl, 0, sizeof(*ctl));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0)
		consumer_main();
	until = bench_now_s() + 10;
	while (atomic_load(&ctl->ready) == 0 && bench_now_s() < until)
		usleep(200);
	if (atomic_load(&ctl->ready) != 1) {
		waitpid(pid, NULL, 0);
		die("consumer: bt_kmes_reader__new",
		    ctl->err ? ctl->err : ETIMEDOUT);
	}
	return pid;
}

static void consumer_finish(pid_t pid)
{
	int status;

	atomic_store(&ctl->done, 1);
	if (waitpid(pid, &status, 0) < 0)
		die("waitpid", errno);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("consumer", ctl->err ? ctl->err : EIO);
}

/* ---- Measurements ------------------------------------------------------- */

struct sample {
	double rate[MAX_REPS];		/* events/s of each run */
	double share_min;		/* least CPU share of the runs */
	int n;
};

static double median(const struct sample *s)
{
	double v[MAX_REPS];

	memcpy(v, s->rate, sizeof(v));
	for (int i = 1; i < s->n; i++) {
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	}
	if (!s->n)
		return 0;
	return s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
}

static void minmax(const struct sample *s, double *lo, double *hi)
{
	*lo = *hi = s->n ? s->rate[0] : 0;
	for (int i = 1; i < s->n; i++) {
		if (s->rate[i] < *lo)
			*lo = s->rate[i];
		if (s->rate[i] > *hi)
			*hi = s->rate[i];
	}
}

struct cons_result {
	uint64_t emitted, read, missed, lapped, torn, corrupt, waits;
	uint64_t timeouts;
	double max_wait_s, max_stall_s;
	double steal_ms;		/* taken from the consumer's vCPU */
	double rate;			/* events read / busy time */
	bool kept_up;
};

struct row {
	struct sample emit;
	struct cons_result cons;	/* worst run, when with a consumer */
	bool with_consumer;
};

static double timed_emit(enum path p, struct cons_result *cr)
{
	uint64_t first = bt_kmes_session__last_sequence(session, 0) + 1;
	pid_t pid = 0;
	double rate, steal0 = 0;
	uint64_t n;

	if (cr) {
		pid = consumer_start();
		steal0 = steal_ms(cpu_cons);
	}
	rate = run_for(p, opt.min_s, &n);
	if (cr) {
		uint64_t lost;

		cr->steal_ms = steal0 < 0 ? -1 : steal_ms(cpu_cons) - steal0;
		consumer_finish(pid);
		/* Sequences never seen: before the first read, or skipped. */
		lost = ctl->first_seq > first ? ctl->first_seq - first : 0;
		if (!ctl->events)
			lost = n;
		cr->emitted = n;
		cr->read = ctl->events;
		cr->missed = ctl->missed + lost;
		cr->lapped = ctl->lapped;
		cr->torn = ctl->torn;
		cr->corrupt = ctl->corrupt;
		cr->waits = ctl->waits;
		cr->timeouts = ctl->timeouts;
		cr->max_wait_s = ctl->max_wait_s;
		cr->max_stall_s = ctl->max_stall_s;
		cr->rate = ctl->busy_s > 0 ?
			   (double)ctl->events / ctl->busy_s : 0;
		cr->kept_up = cr->read == n && cr->missed == 0 &&
			      cr->read + cr->missed == n && !cr->corrupt;
	}
	return rate;
}

/* ---- Drain -------------------------------------------------------------- */

static unsigned char *drain_map;	/* our own read-only view of slot 0 */
static uint64_t drain_cap;

static uint64_t rd_wp(void)
{
	const _Atomic uint64_t *wp =
		(const _Atomic uint64_t *)(const void *)(drain_map +
							 KMES_OFF_WRITE_POS);

	return atomic_load_explicit(wp, memory_order_acquire);
}

/* Fill the ring with about a capacity of events; returns how many. */
static uint64_t refill(void)
{
	uint64_t n = (opt.capacity / cur_esz - 1) / BATCH * BATCH;

	run_emit(P_TRUSTED_BATCH, n);
	return n;
}

/* memcpy of the events in [@from, @to) out of the ring, one by one. */
static double drain_memcpy(uint64_t from, uint64_t to, unsigned char *buf)
{
	const unsigned char *data = drain_map + KMES_DATA_OFFSET;
	const uint64_t mask = drain_cap - 1;
	double t = bench_now_s();

	while (from < to) {
		const unsigned char *p = data + (from & mask);
		uint32_t esz = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
			       (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;

		memcpy(buf, p, esz);
		__asm__ __volatile__("" ::: "memory");
		from += esz;
	}
	return bench_now_s() - t;
}

static double drain_reader(struct bt_kmes_reader *r, uint64_t want)
{
	struct bt_kmes_event ev;
	uint64_t got = 0;
	double t = bench_now_s();
	int rc;

	while ((rc = bt_kmes_reader__next(r, &ev)) == 1)
		got++;
	t = bench_now_s() - t;
	if (rc < 0)
		die("bt_kmes_reader__next", -rc);
	if (got != want) {
		fprintf(stderr, "kmes_bench: drain read %" PRIu64 " events, "
			"expected %" PRIu64 "\n", got, want);
		exit(1);
	}
	return t;
}

/* One run: refill/drain passes until both sides took opt.min_s. */
static void drain_run(struct bt_kmes_reader *r, double *ring_rate,
		      double *copy_rate)
{
	static unsigned char buf[KMES_MAX_EVENT_SIZE_DEFAULT];
	double t_ring = 0, t_copy = 0, min_s = opt.min_s / 2;
	double w0 = bench_now_s(), c0 = cpu_s();
	uint64_t n_ring = 0, n_copy = 0;

	for (unsigned pass = 0; t_ring < min_s; pass++) {
		uint64_t from = rd_wp(), n = refill();

		/* Alternate the order: neither always finds the bytes hot. */
		if (pass % 2) {
			t_ring += drain_reader(r, n);
			t_copy += drain_memcpy(from, rd_wp(), buf);
		} else {
			t_copy += drain_memcpy(from, rd_wp(), buf);
			t_ring += drain_reader(r, n);
		}
		n_ring += n;
		n_copy += n;
	}
	last_share = (cpu_s() - c0) / (bench_now_s() - w0);
	*ring_rate = (double)n_ring / t_ring;
	*copy_rate = (double)n_copy / t_copy;
}

/* ---- Report ------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: kmes_bench [--quick] [--time SECONDS] [--reps N] [--capacity BYTES]\n"
"                  [--spin-us US] [--linger-us US]\n"
"\n"
"Throughput of the KMES ring library: emits (kmes_emit, kmes_emit_batch of\n"
"256, bt_kmes_session__emit_trusted single and batched) for 16, 64, 256 and\n"
"1024-byte msgpack payloads, with no consumer and with one consumer process\n"
"draining on the other CPU, and the reader's drain rate; each beside a\n"
"memcpy of the same bytes into (or out of) ring-shaped memory, same run.\n"
"\n"
"  --quick          one short run per figure (CI smoke test)\n"
"  --time SECONDS   minimum length of each run (default 0.25)\n"
"  --reps N         runs per figure, median reported (default 3, max %d)\n"
"  --capacity BYTES ring capacity, a power of two (default 4194304)\n"
"  --spin-us US     consumer's bt_kmes_reader opts.spin_us (default 0)\n"
"  --linger-us US   consumer's bt_kmes_reader opts.linger_us (default 200,\n"
"                   as btrail kmes drain --follow; 0: a wake per event)\n"
"  --help           this text\n"
"\n"
"Exit status 0 unless something failed; missed targets are only reported.\n",
		MAX_REPS);
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "--quick")) {
			opt.quick = true;
			opt.min_s = 0.02;
			opt.reps = 1;
		} else if (!strcmp(a, "--time") && v) {
			opt.min_s = atof(v);
			i++;
		} else if (!strcmp(a, "--reps") && v) {
			opt.reps = atoi(v);
			i++;
		} else if (!strcmp(a, "--capacity") && v) {
			opt.capacity = strtoull(v, NULL, 0);
			i++;
		} else if (!strcmp(a, "--spin-us") && v) {
			opt.spin_us = (uint32_t)strtoul(v, NULL, 0);
			i++;
		} else if (!strcmp(a, "--linger-us") && v) {
			opt.linger_us = (uint32_t)strtoul(v, NULL, 0);
			i++;
		} else {
			usage(stderr);
			exit(2);
		}
	}
	if (opt.reps < 1 || opt.reps > MAX_REPS || !(opt.min_s > 0) ||
	    opt.min_s > 10 || opt.capacity < KMES_CAPACITY_MIN ||
	    opt.capacity > KMES_CAPACITY_MAX ||
	    (opt.capacity & (opt.capacity - 1))) {
		usage(stderr);
		exit(2);
	}
}

static void print_header(void)
{
	char model[256] = "unknown CPU", cs[64];
	struct utsname u;
	int allowed = pick_cpus();

	bench_cpu_model(model, sizeof(model), NULL);
	read_line("/sys/devices/system/clocksource/clocksource0/"
		  "current_clocksource", cs, sizeof(cs));
	if (uname(&u) < 0)
		snprintf(u.release, sizeof(u.release), "?");
	printf("kmes_bench: KMES ring throughput%s\n",
	       opt.quick ? " (--quick: one short run per figure)" : "");
	printf("machine:  %s, nproc %ld (%d usable), Linux %s, "
	       "clocksource %s\n",
	       model, sysconf(_SC_NPROCESSORS_ONLN), allowed, u.release, cs);
	printf("ring:     capacity %" PRIu64 " bytes (%" PRIu64 " KiB), "
	       "1 slot; "
	       "event = 77 + %u (type \"%s\") + payload bytes\n",
	       opt.capacity, opt.capacity >> 10, EV_TYPE_LEN, EV_TYPE);
	if (cpu_prod >= 0)
		printf("cpus:     producer pinned to CPU %d, consumer process "
		       "to CPU %d (reader spin_us %u, linger_us %u)\n",
		       cpu_prod, cpu_cons, opt.spin_us, opt.linger_us);
	else
		printf("cpus:     one usable CPU: producer and consumer share "
		       "it (reader spin_us %u, linger_us %u)\n", opt.spin_us,
		       opt.linger_us);
	printf("runs:     median of %d run%s of >= %.2f s each (range = "
	       "min..max); memcpy baseline measured in the same runs\n",
	       opt.reps, opt.reps > 1 ? "s" : "", opt.min_s);
	printf("ratio:    ring events/s / memcpy events/s of the same event "
	       "bytes into (drain: out of) ring-shaped memory\n");
	printf("cpu %%:    least share of the wall time the producer thread "
	       "was on a CPU in the runs\n          of that row (under 100: "
	       "preempted by other load, or asleep in a syscall)\n");
	read_line("/proc/loadavg", cs, sizeof(cs));
	printf("load:     /proc/loadavg at start: %s\n\n", cs);
}

static void print_cons(const struct row *rw)
{
	const struct cons_result *c = &rw->cons;

	if (!rw->with_consumer) {
		printf("-\n");
		return;
	}
	printf("%s: read %" PRIu64 "/%" PRIu64 " at %.2f M/s, missed %" PRIu64
	       ", lapped %" PRIu64 ", waits %" PRIu64 " (%" PRIu64
	       " timed out, longest %.2f ms), longest stall %.2f ms, "
	       "steal %.0f ms%s%s\n",
	       c->kept_up ? "kept up" : "BEHIND", c->read, c->emitted,
	       c->rate / 1e6, c->missed, c->lapped, c->waits, c->timeouts,
	       c->max_wait_s * 1e3, c->max_stall_s * 1e3, c->steal_ms,
	       c->torn ? ", torn" : "", c->corrupt ? ", CORRUPT" : "");
}

/* Also notes the CPU share of the run_for() that measured @v. */
static void add_sample(struct sample *s, double v)
{
	if (!s->n || last_share < s->share_min)
		s->share_min = last_share;
	if (s->n < MAX_REPS)
		s->rate[s->n++] = v;
}

int main(int argc, char **argv)
{
	struct bt_kmes_session_opts so = { .sz = sizeof(so) };
	struct row rows[NSIZES][NPATHS][2];
	struct sample copy[NSIZES], dr_ring[NSIZES], dr_copy[NSIZES];
	bool all_kept_up = true;
	int cons_runs = 0, cons_ok = 0;
	double t_start = bench_now_s(), v64[NPATHS] = { 0 };

	parse_args(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	main_pid = getpid();
	print_header();
	pin(cpu_prod);

	ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED)
		die("mmap", errno);
	copy_ring_map();

	snprintf(session_name, sizeof(session_name), "kmes-bench-%d",
		 (int)main_pid);
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, on_signal);
	bt_kmes_session__destroy(session_name, true);
	so.capacity = opt.capacity;
	so.slots = 1;
	session = bt_kmes_session__create(session_name, &so);
	if (!session) {
		session_name[0] = '\0';	/* not ours to destroy */
		die("bt_kmes_session__create", errno);
	}

	memset(rows, 0, sizeof(rows));
	memset(copy, 0, sizeof(copy));
	memset(dr_ring, 0, sizeof(dr_ring));
	memset(dr_copy, 0, sizeof(dr_copy));

	printf("%7s %5s  %-15s %5s %-8s %8s %6s %7s %15s %8s %7s %4s  %s\n",
	       "payload", "event", "path", "batch", "consumer", "M ev/s",
	       "ns/ev", "GB/s", "range M ev/s", "memcpy", "ratio", "cpu",
	       "consumer result");
	printf("%7s %5s  %-15s %5s %-8s %8s %6s %7s %15s %8s %7s %4s\n",
	       "bytes", "bytes", "", "", "", "", "", "", "(min..max)",
	       "M ev/s", "emit/cp", "%");

	for (int si = 0; si < NSIZES; si++) {
		double m_copy;

		prepare_size(sizes[si]);
		/* Warm up; fills the ring, so each emit also moves tail_pos. */
		for (int p = 0; p <= NPATHS; p++)
			run_for((enum path)p, opt.min_s / 5, NULL);

		/* Interleave the runs so noise spreads over every figure. */
		for (int rep = 0; rep < opt.reps; rep++) {
			add_sample(&copy[si], run_for(NPATHS, opt.min_s, NULL));
			for (int p = 0; p < NPATHS; p++) {
				for (int c = 0; c < 2; c++) {
					struct row *rw = &rows[si][p][c];
					struct cons_result cr;
					double v;

					rw->with_consumer = c;
					v = timed_emit((enum path)p,
						       c ? &cr : NULL);
					add_sample(&rw->emit, v);
					if (!c)
						continue;
					cons_runs++;
					cons_ok += cr.kept_up;
					/* Keep the worst run's verdict. */
					if (rep == 0 || !cr.kept_up ||
					    (rw->cons.kept_up &&
					     cr.rate < rw->cons.rate))
						rw->cons = cr;
				}
			}
		}

		m_copy = median(&copy[si]);
		for (int p = 0; p < NPATHS; p++) {
			for (int c = 0; c < 2; c++) {
				const struct row *rw = &rows[si][p][c];
				double m = median(&rw->emit), lo, hi;
				char range[32];

				minmax(&rw->emit, &lo, &hi);
				snprintf(range, sizeof(range), "%.2f..%.2f",
					 lo / 1e6, hi / 1e6);
				printf("%7u %5u  %-15s %5u %-8s %8.2f %6.1f "
				       "%7.3f %15s %8.2f %7.3f %4.0f  ",
				       sizes[si], cur_esz, path_name[p],
				       path_batch[p], c ? "1 proc" : "none",
				       m / 1e6, 1e9 / m, m * cur_esz / 1e9,
				       range, m_copy / 1e6, m / m_copy,
				       rw->emit.share_min * 100);
				print_cons(rw);
				if (c && !rw->cons.kept_up)
					all_kept_up = false;
				if (sizes[si] == 64 && !c)
					v64[p] = m;
			}
		}
		{
			double lo, hi;
			char range[32];

			minmax(&copy[si], &lo, &hi);
			snprintf(range, sizeof(range), "%.2f..%.2f", lo / 1e6,
				 hi / 1e6);
			printf("%7u %5u  %-15s %5s %-8s %8.2f %6.1f %7.3f "
			       "%15s %8s %7s %4.0f  (the baseline)\n",
			       sizes[si], cur_esz, "memcpy", "1", "none",
			       m_copy / 1e6, 1e9 / m_copy,
			       m_copy * cur_esz / 1e9, range, "", "",
			       copy[si].share_min * 100);
		}
	}

	/* Drain: a reader over a full ring, vs memcpy out of it. */
	{
		struct bt_kmes_reader_opts ro = {
			.sz = sizeof(ro), .one_slot = true, .from_now = true,
		};
		struct bt_kmes_reader *r;
		int fd;

		fd = kmes_attach(session_name, 0, &drain_cap);
		if (fd < 0)
			die("kmes_attach", errno);
		drain_map = kmes_map(fd, drain_cap);
		if (!drain_map)
			die("kmes_map", errno);
		close(fd);
		r = bt_kmes_reader__new(session_name, &ro);
		if (!r)
			die("bt_kmes_reader__new", errno);

		printf("\ndrain: bt_kmes_reader__next over a full ring "
		       "(%" PRIu64
		       " KiB, refilled between passes), vs memcpy of the same "
		       "events out of the ring\n", opt.capacity >> 10);
		printf("%7s %5s  %8s %6s %7s %15s %8s %7s %4s\n", "payload",
		       "event", "M ev/s", "ns/ev", "GB/s", "range M ev/s",
		       "memcpy", "ratio", "cpu");
		printf("%7s %5s  %8s %6s %7s %15s %8s %7s %4s\n", "bytes",
		       "bytes", "", "", "", "(min..max)", "M ev/s", "ring/cp",
		       "%");
		for (int si = 0; si < NSIZES; si++) {
			double ring, cp, lo, hi, m, mc;
			char range[32];

			prepare_size(sizes[si]);
			drain_run(r, &ring, &cp);	/* warm-up */
			for (int rep = 0; rep < opt.reps; rep++) {
				drain_run(r, &ring, &cp);
				add_sample(&dr_ring[si], ring);
				add_sample(&dr_copy[si], cp);
			}
			m = median(&dr_ring[si]);
			mc = median(&dr_copy[si]);
			minmax(&dr_ring[si], &lo, &hi);
			snprintf(range, sizeof(range), "%.2f..%.2f", lo / 1e6,
				 hi / 1e6);
			printf("%7u %5u  %8.2f %6.1f %7.3f %15s %8.2f %7.3f "
			       "%4.0f\n", sizes[si], cur_esz, m / 1e6, 1e9 / m,
			       m * cur_esz / 1e9, range, mc / 1e6, m / mc,
			       dr_ring[si].share_min * 100);
		}
		bt_kmes_reader__free(r);
		kmes_unmap(drain_map, drain_cap);
	}

	printf("\ntargets (64-byte payload, validated path, no consumer, "
	       "median):\n");
	printf("  kmes_emit single        >= %4.0f M ev/s: %6.2f M ev/s  %s\n",
	       TARGET_SINGLE / 1e6, v64[P_EMIT] / 1e6,
	       v64[P_EMIT] >= TARGET_SINGLE ? "PASS" : "MISS");
	printf("  kmes_emit_batch of 256  >= %4.0f M ev/s: %6.2f M ev/s  %s\n",
	       TARGET_BATCH / 1e6, v64[P_BATCH] / 1e6,
	       v64[P_BATCH] >= TARGET_BATCH ? "PASS" : "MISS");
	printf("  (the same figures for the trusted path, no validation: "
	       "single %.2f %s, batch %.2f %s)\n", v64[P_TRUSTED] / 1e6,
	       v64[P_TRUSTED] >= TARGET_SINGLE ? "PASS" : "MISS",
	       v64[P_TRUSTED_BATCH] / 1e6,
	       v64[P_TRUSTED_BATCH] >= TARGET_BATCH ? "PASS" : "MISS");
	printf("  one consumer keeps up with one producer (%" PRIu64 " KiB "
	       "ring): %d/%d runs with read + missed == emitted and missed "
	       "0  %s\n", opt.capacity >> 10, cons_ok, cons_runs,
	       all_kept_up && cons_ok == cons_runs ? "PASS" : "MISS");
	{
		char la[64];

		read_line("/proc/loadavg", la, sizeof(la));
		printf("total time %.1f s; /proc/loadavg at the end: %s\n",
		       bench_now_s() - t_start, la);
	}

	cleanup();
	return 0;
}
