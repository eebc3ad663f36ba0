// SPDX-License-Identifier: BSD-3-Clause
/*
 * The KMES consumer: positions and overwrite (KMES.md §8 items 36-39), the
 * notification handshake (item 41), the reader's argument checks, gaps,
 * waiting, and a fuzz test of the reader over damaged copies of a real
 * ring. Ring metadata is read through a consumer's own mapping at the
 * offsets of <btrail/kmes.h>.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <btrail/errno.h>
#include <btrail/kmes.h>

#include "collector/kmes_ring.h"
#include "common/bytes.h"
#include "helpers/testutil.h"

#define CAP_64K		65536u
#define EV_TYPE		"t.ev"
#define EV_TYPE_LEN	4u
#define EV_HDR		(KMES_HDR_FIXED + EV_TYPE_LEN)

/* ---- Helpers ------------------------------------------------------------ */

/*
 * The structural promises of a returned event, checked against its own
 * raw bytes: header_size == 77 + type_len, sizes within bounds, fields
 * decoded from where the header says.
 */
static void check_structure(const struct bt_kmes_event *ev, uint64_t cap)
{
	const unsigned char *raw = ev->raw;

	cr_assert(ne(ptr, (void *)raw, NULL));
	cr_assert(eq(u32, ev->header_size, KMES_HDR_FIXED + ev->type_len));
	cr_assert(ge(u32, ev->event_size, ev->header_size));
	cr_assert(ge(u32, ev->event_size, KMES_HDR_FIXED));
	cr_assert(le(u64, (uint64_t)ev->event_size, cap / 2));
	cr_assert(eq(u32, ev->payload_len, ev->event_size - ev->header_size));
	cr_assert(eq(u32, bt_le32(raw + KMES_EV_EVENT_SIZE), ev->event_size));
	cr_assert(eq(u32, bt_le32(raw + KMES_EV_HEADER_SIZE), ev->header_size));
	cr_assert(eq(u16, bt_le16(raw + KMES_EV_TYPE_LEN), ev->type_len));
	cr_assert(eq(u64, bt_le64(raw + KMES_EV_SEQUENCE), ev->sequence));
	cr_assert(ne(u64, ev->sequence, 0ull));
	cr_assert(eq(ptr, (void *)ev->type, (void *)(raw + KMES_EV_TYPE)));
	cr_assert(eq(ptr, (void *)ev->payload,
		     (void *)(raw + ev->header_size)));
}

/* ---- Ring behaviour (§8 items 36-39) ------------------------------------ */

/* Shared between the sampler child and the test. */
struct sampler {
	int ready;
	int done;
	uint64_t samples;
	uint64_t torn_samples;		/* write_pos moved while sampling */
	uint64_t violations;
	uint64_t tail_moves;
	uint64_t last_wp, last_tp;
	char why[128];
};

static void sampler_run(struct sampler *sm, const char *name)
{
	uint64_t cap, pwp = 0, ptp = 0;
	unsigned char *b;
	int fd;

	fd = kmes_attach(name, 0, &cap);
	b = fd >= 0 ? kmes_map(fd, cap) : NULL;
	if (!b)
		_exit(1);
	__atomic_store_n(&sm->ready, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&sm->done, __ATOMIC_SEQ_CST)) {
		uint64_t wp1 = tu_ld64(b, KMES_OFF_WRITE_POS);
		uint64_t tp = tu_ld64(b, KMES_OFF_TAIL_POS);
		uint64_t wp2 = tu_ld64(b, KMES_OFF_WRITE_POS);

		/* Every load on its own only grows. */
		if (wp1 < pwp || wp2 < wp1 || tp < ptp) {
			sm->violations++;
			snprintf(sm->why, sizeof(sm->why), "went backwards: wp "
				 "%lu %lu %lu tp %lu %lu", (unsigned long)pwp,
				 (unsigned long)wp1, (unsigned long)wp2,
				 (unsigned long)ptp, (unsigned long)tp);
		}
		if (tp > ptp)
			__atomic_fetch_add(&sm->tail_moves, 1, __ATOMIC_RELAXED);
		pwp = wp2;
		ptp = tp;
		/* A snapshot is consistent when write_pos held still. */
		if (wp1 != wp2) {
			sm->torn_samples++;
			continue;
		}
		sm->samples++;
		if (tp > wp1 || wp1 - tp > cap) {
			sm->violations++;
			snprintf(sm->why, sizeof(sm->why), "wp %lu tp %lu",
				 (unsigned long)wp1, (unsigned long)tp);
		}
	}
	sm->last_wp = tu_ld64(b, KMES_OFF_WRITE_POS);
	sm->last_tp = tu_ld64(b, KMES_OFF_TAIL_POS);
	_exit(0);
}

/* KMES.md §8 item 36 */
Test(kmes_reader, positions_only_grow_and_never_span_more_than_the_capacity,
     .timeout = 60)
{
	const char *name = tu_name("positions");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct sampler *sm;
	uint64_t rng = 36, emitted = 0, t0;
	pid_t pid;

	sm = mmap(NULL, sizeof(*sm), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(ne(ptr, sm, MAP_FAILED));
	memset(sm, 0, sizeof(*sm));
	pid = fork();
	cr_assert(ge(int, (int)pid, 0));
	if (pid == 0)
		sampler_run(sm, name);
	for (int i = 0; i < 5000 && !__atomic_load_n(&sm->ready,
						    __ATOMIC_SEQ_CST); i++)
		usleep(1000);
	cr_assert(eq(int, sm->ready, 1));

	/*
	 * At least 24 MB through a 64 KiB ring (hundreds of wraps), and on
	 * until the sampler has seen tail_pos move often (it shares the CPUs
	 * with us and with other tests), for at most 20 s.
	 */
	t0 = tu_mono_ms();
	for (int i = 0; i < 60000 ||
	     (__atomic_load_n(&sm->tail_moves, __ATOMIC_RELAXED) < 500 &&
	      tu_mono_ms() - t0 < 20000); i++) {
		uint32_t size = EV_HDR + 20 +
				(uint32_t)(tu_xorshift(&rng) % 700);

		tu_emit_sized(s, 0, EV_TYPE, size);
		emitted += size;
	}
	__atomic_store_n(&sm->done, 1, __ATOMIC_SEQ_CST);
	cr_assert(eq(int, tu_child_status(pid), 0));

	cr_log_info("%llu consistent samples, tail_pos seen moving %llu times",
		    (unsigned long long)sm->samples,
		    (unsigned long long)sm->tail_moves);
	cr_assert(eq(u64, sm->violations, 0ull), "%s", sm->why);
	cr_assert(gt(u64, sm->samples, 1000ull));
	cr_assert(ge(u64, sm->tail_moves, 500ull),
		  "the sampler should see the ring wrap many times");
	cr_assert(eq(u64, sm->last_wp, emitted));
	cr_assert(gt(u64, sm->last_tp, emitted - CAP_64K - 1));
	munmap(sm, sizeof(*sm));
	bt_kmes_session__close(s);
}

/* Size of the @seq-th event of the wrap tests: 100..699 bytes. */
static uint32_t wrap_size(uint64_t seq)
{
	return 100 + (uint32_t)((seq * 53) % 600);
}

/* KMES.md §8 item 37 */
Test(kmes_reader, after_wrapping_tail_pos_points_at_the_oldest_surviving_event)
{
	const char *name = tu_name("wrap");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct bt_kmes_reader *r;
	struct bt_kmes_event ev;
	unsigned char *b;
	const unsigned char *d;
	uint64_t cap, tail, wp, first, pos, seq;

	for (seq = 1; seq <= 1000; seq++)
		tu_emit_sized(s, 0, EV_TYPE, wrap_size(seq));
	b = tu_map_slot(name, 0, &cap);
	d = b + KMES_DATA_OFFSET;
	tail = tu_ld64(b, KMES_OFF_TAIL_POS);
	wp = tu_ld64(b, KMES_OFF_WRITE_POS);
	cr_assert(gt(u64, tail, 0ull));
	cr_assert(le(u64, wp - tail, cap));

	/* The event at tail_pos is a valid one. */
	first = bt_le64(d + (tail & (cap - 1)) + KMES_EV_SEQUENCE);
	cr_assert(ge(u64, first, 2ull));
	cr_assert(eq(u32, bt_le32(d + (tail & (cap - 1))), wrap_size(first)));
	cr_assert(eq(u32, bt_le32(d + (tail & (cap - 1)) + KMES_EV_HEADER_SIZE),
		     EV_HDR));
	/* It is the oldest survivor: one more would not fit. */
	cr_assert(gt(u64, wp - tail + wrap_size(first - 1), cap));
	cr_assert(eq(u64, tu_ld64(b, BT_KMES_XOFF_LOST), first - 1));

	/* The chain from tail_pos: consecutive sequences, ending at wp. */
	pos = tail;
	seq = first;
	while (pos < wp) {
		const unsigned char *p = d + (pos & (cap - 1));

		cr_assert(eq(u64, bt_le64(p + KMES_EV_SEQUENCE), seq));
		cr_assert(eq(u32, bt_le32(p), wrap_size(seq)));
		pos += bt_le32(p);
		seq++;
	}
	cr_assert(eq(u64, pos, wp));
	cr_assert(eq(u64, seq, 1001ull));

	/* A reader starts there too. */
	r = bt_kmes_reader__new(name, NULL);
	cr_assert(ne(ptr, r, NULL));
	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
	cr_assert(eq(u64, ev.sequence, first));
	cr_assert(eq(u64, ev.gap, 0ull));
	bt_kmes_reader__free(r);
	kmes_unmap(b, cap);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 38 */
Test(kmes_reader,
     a_lapped_reader_resumes_at_tail_pos_with_a_gap_of_the_overwritten)
{
	const char *name = tu_name("lapped");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct bt_kmes_reader *r = bt_kmes_reader__new(name, NULL);
	struct bt_kmes_slot_stats st;
	struct bt_kmes_event ev;
	unsigned char *b;
	uint64_t cap, first, seq, n = 0;

	cr_assert(ne(ptr, r, NULL));
	for (seq = 1; seq <= 10; seq++)
		tu_emit_sized(s, 0, EV_TYPE, wrap_size(seq));
	for (seq = 1; seq <= 10; seq++) {
		cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
		cr_assert(eq(u64, ev.sequence, seq));
	}
	for (seq = 11; seq <= 2000; seq++)
		tu_emit_sized(s, 0, EV_TYPE, wrap_size(seq));
	b = tu_map_slot(name, 0, &cap);
	first = bt_le64(b + KMES_DATA_OFFSET +
			(tu_ld64(b, KMES_OFF_TAIL_POS) & (cap - 1)) +
			KMES_EV_SEQUENCE);
	cr_assert(gt(u64, first, 11ull));

	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
	cr_assert(eq(u64, ev.sequence, first), "resumes at tail_pos");
	cr_assert(eq(u64, ev.gap, first - 11));
	cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &st), 0));
	cr_assert(eq(u64, st.lapped, 1ull));
	cr_assert(eq(u64, st.missed, first - 11));
	cr_assert(eq(u64, st.gaps, 1ull));
	/* The gap is the overwritten events this reader had not read. */
	cr_assert(eq(u64, st.missed, st.lost - 10));
	n = 1;
	while (bt_kmes_reader__next(r, &ev) == 1) {
		cr_assert(eq(u64, ev.sequence, first + n));
		cr_assert(eq(u64, ev.gap, 0ull));
		n++;
	}
	cr_assert(eq(u64, first + n - 1, 2000ull));
	cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &st), 0));
	cr_assert(eq(u64, st.events, 10 + n));
	cr_assert(eq(u64, st.missed, first - 11));
	kmes_unmap(b, cap);
	bt_kmes_reader__free(r);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 39 */
Test(kmes_reader,
     an_event_straddling_the_end_of_the_data_region_reads_back_intact)
{
	static const uint32_t before_end[] = { 1, 4, 30, 77, 100, 999 };

	for (size_t t = 0; t < sizeof(before_end) / sizeof(before_end[0]); t++) {
		const char *name = tu_name("straddle");
		struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
		uint64_t target = CAP_64K - before_end[t], cap, seq = 0, pseq;
		unsigned char file[1000], *b;
		struct bt_kmes_reader *r;
		struct bt_kmes_event ev;
		char path[PATH_MAX];
		int fd, found = 0;

		/* Bring write_pos to exactly @target. */
		b = tu_map_slot(name, 0, &cap);
		while (target - tu_ld64(b, KMES_OFF_WRITE_POS) >= 2000)
			tu_emit_sized(s, 0, EV_TYPE, 1000);
		tu_emit_sized(s, 0, EV_TYPE,
			      (uint32_t)(target -
					 tu_ld64(b, KMES_OFF_WRITE_POS)));
		cr_assert(eq(u64, tu_ld64(b, KMES_OFF_WRITE_POS), target));
		cr_assert(gt(u64, (target & (cap - 1)) + 1000, cap));
		/* This one crosses the physical end. */
		tu_emit_sized(s, 0, EV_TYPE, 1000);
		seq = bt_kmes_session__last_sequence(s, 0);

		/* The bytes as stored: the end of the file, then its start. */
		snprintf(path, sizeof(path), "%s/ring.0",
			 bt_kmes_session__path(s));
		fd = open(path, O_RDONLY | O_CLOEXEC);
		cr_assert(ge(int, fd, 0));
		cr_assert(eq(long, (long)pread(fd, file, before_end[t],
					       KMES_PAGE_SIZE + target),
			     (long)before_end[t]));
		cr_assert(eq(long, (long)pread(fd, file + before_end[t],
					       1000 - before_end[t],
					       KMES_PAGE_SIZE),
			     (long)(1000 - before_end[t])));
		close(fd);

		r = bt_kmes_reader__new(name, NULL);
		cr_assert(ne(ptr, r, NULL));
		while (bt_kmes_reader__next(r, &ev) == 1) {
			check_structure(&ev, cap);
			if (ev.sequence != seq)
				continue;
			found = 1;
			cr_assert(eq(u32, ev.event_size, 1000u));
			cr_assert(eq(int, memcmp(ev.raw, file, 1000), 0),
				  "%u bytes before the end", before_end[t]);
			cr_assert(eq(int, memcmp(ev.type, EV_TYPE, EV_TYPE_LEN),
				     0));
			cr_assert(eq(int, bt_kmes_payload_check(ev.payload,
								ev.payload_len,
								&pseq), 1));
			cr_assert(eq(u64, pseq, seq));
		}
		cr_assert(eq(int, found, 1));
		bt_kmes_reader__free(r);
		kmes_unmap(b, cap);
		bt_kmes_session__close(s);
	}
}

/* ---- Notification (§8 item 41) ------------------------------------------ */

struct futex_result {
	int ret;
	int err;
	uint64_t ms;
	uint32_t before;
	uint32_t after;
};

/* KMES.md §8 item 41: need_wake = 1 */
Test(kmes_reader,
     a_consumer_asleep_with_need_wake_set_is_woken_by_the_next_emit,
     .timeout = 30)
{
	const char *name = tu_name("wake");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct futex_result res;
	unsigned char *b;
	uint64_t cap, t0;
	int pfd[2];
	pid_t pid;
	char c;

	tu_emit_sized(s, 0, EV_TYPE, 200);
	b = tu_map_slot(name, 0, &cap);
	cr_assert(eq(int, pipe(pfd), 0));
	pid = fork();
	cr_assert(ge(int, (int)pid, 0));
	if (pid == 0) {
		/* The consumer: §4.4 with the fixed order of §10 item 6. */
		uint32_t *word = (uint32_t *)(void *)(b + KMES_OFF_FUTEX);
		struct timespec to = { 20, 0 };
		uint64_t wp = tu_ld64(b, KMES_OFF_WRITE_POS), t;

		memset(&res, 0, sizeof(res));
		__atomic_store_n(b + KMES_OFF_NEED_WAKE, 1, __ATOMIC_SEQ_CST);
		res.before = __atomic_load_n(word, __ATOMIC_SEQ_CST);
		if (tu_ld64(b, KMES_OFF_WRITE_POS) != wp)
			_exit(2);
		c = 'r';
		tu_write_full(pfd[1], &c, 1);
		t = tu_mono_ms();
		res.ret = (int)syscall(SYS_futex, word, FUTEX_WAIT, res.before,
				       &to, NULL, 0);
		res.err = res.ret < 0 ? errno : 0;
		res.ms = tu_mono_ms() - t;
		res.after = __atomic_load_n(word, __ATOMIC_SEQ_CST);
		__atomic_store_n(b + KMES_OFF_NEED_WAKE, 0, __ATOMIC_RELAXED);
		tu_write_full(pfd[1], &res, sizeof(res));
		_exit(0);
	}
	close(pfd[1]);
	tu_read_full(pfd[0], &c, 1);
	tu_wait_until_sleeping(pid);

	t0 = tu_mono_ms();
	tu_emit_sized(s, 0, EV_TYPE, 200);
	tu_read_full(pfd[0], &res, sizeof(res));
	cr_assert(eq(int, tu_child_status(pid), 0));
	cr_assert(eq(int, res.ret, 0), "FUTEX_WAIT: %s", strerror(res.err));
	cr_assert(lt(u64, tu_mono_ms() - t0, 5000ull), "woken by the emit");
	cr_assert(eq(u32, res.after, res.before + 1));
	cr_assert(eq(u32, tu_ld32(b, KMES_OFF_FUTEX), res.before + 1));
	kmes_unmap(b, cap);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 41: need_wake = 0 */
Test(kmes_reader, without_need_wake_an_emit_leaves_futex_counter_unchanged)
{
	const char *name = tu_name("nowake");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	unsigned char *b;
	uint64_t cap;
	uint32_t c0;

	b = tu_map_slot(name, 0, &cap);
	__atomic_store_n(b + KMES_OFF_NEED_WAKE, 0, __ATOMIC_SEQ_CST);
	c0 = tu_ld32(b, KMES_OFF_FUTEX);
	for (int i = 0; i < 20; i++)
		tu_emit_sized(s, 0, EV_TYPE, 200);
	cr_assert(eq(u32, tu_ld32(b, KMES_OFF_FUTEX), c0));
	cr_assert(eq(u64, tu_ld64(b, KMES_OFF_WRITE_POS), 4000ull));

	/*
	 * With need_wake set (any non-zero value) the next emit wakes and
	 * takes the request: need_wake is back to 0, so the emit after it
	 * costs no wake until a consumer asks again.
	 */
	__atomic_store_n(b + KMES_OFF_NEED_WAKE, 7, __ATOMIC_SEQ_CST);
	tu_emit_sized(s, 0, EV_TYPE, 200);
	cr_assert(eq(u32, tu_ld32(b, KMES_OFF_FUTEX), c0 + 1));
	cr_assert(eq(int, __atomic_load_n(b + KMES_OFF_NEED_WAKE,
					  __ATOMIC_SEQ_CST), 0));
	tu_emit_sized(s, 0, EV_TYPE, 200);
	cr_assert(eq(u32, tu_ld32(b, KMES_OFF_FUTEX), c0 + 1));
	__atomic_store_n(b + KMES_OFF_NEED_WAKE, 1, __ATOMIC_SEQ_CST);
	tu_emit_sized(s, 0, EV_TYPE, 200);
	cr_assert(eq(u32, tu_ld32(b, KMES_OFF_FUTEX), c0 + 2));
	kmes_unmap(b, cap);
	bt_kmes_session__close(s);
}

/* ---- Arguments ---------------------------------------------------------- */

Test(kmes_reader, reader_new_rejects_bad_arguments_with_exact_errors)
{
	const char *name = tu_name("newargs");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	struct bt_kmes_reader_opts o = { .sz = sizeof(o), .one_slot = true };
	struct bt_kmes_reader *r;

	errno = 0;
	cr_assert(eq(ptr, bt_kmes_reader__new(NULL, NULL), NULL));
	cr_assert(eq(int, errno, EINVAL));
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_reader__new(tu_name("nosuch"), NULL), NULL));
	cr_assert(eq(int, errno, ENOENT));
	o.slot = 2;		/* past the end */
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_reader__new(name, &o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	o.slot = 0xFFFFFFFFu;
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_reader__new(name, &o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	o.slot = 1;
	o.sz = 4;		/* not an options struct */
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_reader__new(name, &o), NULL));
	cr_assert(eq(int, errno, EINVAL));

	/* The last slot itself is fine. */
	o.sz = sizeof(o);
	r = bt_kmes_reader__new(name, &o);
	cr_assert(ne(ptr, r, NULL), "%s", strerror(errno));
	cr_assert(eq(u32, bt_kmes_reader__slots(r), 1u));
	bt_kmes_reader__free(r);
	bt_kmes_reader__free(NULL);
	bt_kmes_session__close(s);
}

Test(kmes_reader, reader_calls_reject_null_arguments_with_einval)
{
	const char *name = tu_name("nullargs");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct bt_kmes_reader *r = bt_kmes_reader__new(name, NULL);
	struct bt_kmes_slot_stats st;
	struct bt_kmes_event ev;

	cr_assert(ne(ptr, r, NULL));
	cr_assert(eq(int, bt_kmes_reader__next(NULL, &ev), -EINVAL));
	cr_assert(eq(int, bt_kmes_reader__next(r, NULL), -EINVAL));
	cr_assert(eq(int, bt_kmes_reader__wait(NULL, 0), -EINVAL));
	cr_assert(eq(int, bt_kmes_reader__stats(NULL, 0, &st), -EINVAL));
	cr_assert(eq(int, bt_kmes_reader__stats(r, 0, NULL), -EINVAL));
	cr_assert(eq(int, bt_kmes_reader__stats(r, 1, &st), -EINVAL));
	cr_assert(eq(u32, bt_kmes_reader__slots(NULL), 0u));
	cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &st), 0));
	cr_assert(eq(u64, st.capacity, (uint64_t)CAP_64K));
	bt_kmes_reader__free(r);
	bt_kmes_session__close(s);
}

Test(kmes_reader, new_mapped_rejects_a_null_base_or_a_bad_capacity)
{
	static const uint64_t bad[] = { 0, 4096, 65535, 98304, 536870912ull };
	void *base;

	errno = 0;
	cr_assert(eq(ptr, bt_kmes_reader__new_mapped(NULL, CAP_64K, 0), NULL));
	cr_assert(eq(int, errno, EINVAL));
	base = mmap(NULL, KMES_MAP_SIZE(CAP_64K), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(ne(ptr, base, MAP_FAILED));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		cr_assert(eq(ptr, bt_kmes_reader__new_mapped(base, bad[i], 0),
			     NULL), "capacity %llu", (unsigned long long)bad[i]);
		cr_assert(eq(int, errno, EINVAL));
	}
	munmap(base, KMES_MAP_SIZE(CAP_64K));
}

/* ---- Reading and waiting ------------------------------------------------ */

Test(kmes_reader, from_now_skips_the_events_already_in_the_ring)
{
	const char *name = tu_name("fromnow");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	struct bt_kmes_reader_opts o = { .sz = sizeof(o), .from_now = true };
	struct bt_kmes_reader *r, *all;
	struct bt_kmes_event ev;
	int n = 0;

	for (int i = 0; i < 5; i++) {
		tu_emit_sized(s, 0, EV_TYPE, 200);
		tu_emit_sized(s, 1, EV_TYPE, 200);
	}
	r = bt_kmes_reader__new(name, &o);
	all = bt_kmes_reader__new(name, NULL);
	cr_assert(ne(ptr, r, NULL));
	cr_assert(ne(ptr, all, NULL));
	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 0));
	tu_emit_sized(s, 1, EV_TYPE, 200);
	tu_emit_sized(s, 1, EV_TYPE, 200);
	tu_emit_sized(s, 0, EV_TYPE, 200);
	while (bt_kmes_reader__next(r, &ev) == 1) {
		cr_assert(eq(u64, ev.sequence, ev.slot == 1 ? 6ull + (n > 0) :
			     6ull));
		cr_assert(eq(u64, ev.gap, 0ull), "from_now is not a gap");
		n += ev.slot == 1;
	}
	cr_assert(eq(int, n, 2));
	/* A reader from the start sees all 13. */
	n = 0;
	while (bt_kmes_reader__next(all, &ev) == 1)
		n++;
	cr_assert(eq(int, n, 13));
	bt_kmes_reader__free(r);
	bt_kmes_reader__free(all);
	bt_kmes_session__close(s);
}

Test(kmes_reader, wait_returns_0_when_the_timeout_expires)
{
	const char *name = tu_name("timeout");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	struct bt_kmes_reader *r = bt_kmes_reader__new(name, NULL);
	struct bt_kmes_event ev;
	uint64_t t0, ms;
	unsigned char *b;
	uint64_t cap;

	cr_assert(ne(ptr, r, NULL));
	tu_emit_sized(s, 1, EV_TYPE, 200);
	/* Something to read: 1 at once, without sleeping. */
	t0 = tu_mono_ms();
	cr_assert(eq(int, bt_kmes_reader__wait(r, 5000), 1));
	cr_assert(lt(u64, tu_mono_ms() - t0, 1000ull));
	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 0));

	t0 = tu_mono_ms();
	cr_assert(eq(int, bt_kmes_reader__wait(r, 150), 0));
	ms = tu_mono_ms() - t0;
	cr_assert(ge(u64, ms, 140ull));
	cr_assert(lt(u64, ms, 2000ull));
	cr_assert(eq(int, bt_kmes_reader__wait(r, 0), 0));
	/* need_wake is cleared again afterwards (§4.4 step 6). */
	b = tu_map_slot(name, 0, &cap);
	cr_assert(eq(u8, b[KMES_OFF_NEED_WAKE], (uint8_t)0));
	kmes_unmap(b, cap);
	bt_kmes_reader__free(r);
	bt_kmes_session__close(s);
}

/* A child that becomes the producer of @name and emits one event on @slot
 * after @delay_ms. */
static pid_t emit_later(const char *name, uint32_t slot, unsigned delay_ms)
{
	pid_t pid = fork();

	cr_assert(ge(int, (int)pid, 0));
	if (pid == 0) {
		struct bt_kmes_session *cs;
		static unsigned char pl[100];

		usleep(delay_ms * 1000);
		cs = bt_kmes_session__open(name, NULL);
		if (!cs)
			_exit(1);
		bt_kmes_payload_fill(pl, sizeof(pl), 1, NULL);
		if (kmes_emit(cs, slot, EV_TYPE, EV_TYPE_LEN, pl, sizeof(pl)) < 0)
			_exit(2);
		bt_kmes_session__close(cs);
		_exit(0);
	}
	return pid;
}

/* Milliseconds __wait() slept until emit_later(@name, @slot, @delay_ms)
 * had emitted; the wait must return 1 and the child succeed. */
static uint64_t wait_for_emit(struct bt_kmes_reader *r, const char *name,
			      uint32_t slot, unsigned delay_ms)
{
	pid_t pid = emit_later(name, slot, delay_ms);
	uint64_t t0 = tu_mono_ms(), ms;

	cr_assert(eq(int, bt_kmes_reader__wait(r, 20000), 1));
	ms = tu_mono_ms() - t0;
	cr_assert(eq(int, tu_child_status(pid), 0));
	return ms;
}

Test(kmes_reader, wait_returns_1_promptly_when_another_process_emits,
     .timeout = 30)
{
	const char *name = tu_name("waitemit");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	struct bt_kmes_reader *r;
	struct bt_kmes_event ev;
	uint64_t ms;

	bt_kmes_session__close(s);	/* the child becomes the producer */
	r = bt_kmes_reader__new(name, NULL);
	cr_assert(ne(ptr, r, NULL));
	ms = wait_for_emit(r, name, 1, 300);
	cr_assert(ge(u64, ms, 200ull), "woke before the event (%llu ms)",
		  (unsigned long long)ms);
	cr_assert(lt(u64, ms, 5000ull), "woke late (%llu ms)",
		  (unsigned long long)ms);
	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
	cr_assert(eq(u32, ev.slot, 1u));
	cr_assert(eq(u64, ev.sequence, 1ull));
	bt_kmes_reader__free(r);
}

/*
 * opts.linger_us: an event written while the reader lingers costs the
 * producer no wake (futex_counter unchanged) and is seen when the nap
 * ends; one written after it is woken for as usual; a timeout shorter
 * than the nap still holds.
 */
Test(kmes_reader, a_lingering_reader_costs_the_producer_no_wake, .timeout = 30)
{
	const char *name = tu_name("linger");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct bt_kmes_reader_opts o = {
		.sz = sizeof(o), .linger_us = 500000,
	};
	struct bt_kmes_reader *r;
	struct bt_kmes_event ev;
	uint64_t cap, t0, ms;
	unsigned char *b;
	uint32_t c0;

	bt_kmes_session__close(s);	/* the children become the producer */
	r = bt_kmes_reader__new(name, &o);
	cr_assert(ne(ptr, r, NULL));
	b = tu_map_slot(name, 0, &cap);
	c0 = tu_ld32(b, KMES_OFF_FUTEX);

	/* Written 50 ms into a 500 ms nap. */
	ms = wait_for_emit(r, name, 0, 50);
	cr_assert(ge(u64, ms, 450ull), "returned before the nap ended "
		  "(%llu ms)", (unsigned long long)ms);
	cr_assert(eq(u32, tu_ld32(b, KMES_OFF_FUTEX), c0),
		  "the producer was asked for a wake");
	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
	cr_assert(eq(u64, ev.sequence, 1ull));
	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 0));

	/* Written after the nap: the usual wake. */
	ms = wait_for_emit(r, name, 0, 1200);
	cr_assert(ge(u64, ms, 1000ull), "woke before the event (%llu ms)",
		  (unsigned long long)ms);
	cr_assert(eq(u32, tu_ld32(b, KMES_OFF_FUTEX), c0 + 1));
	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
	cr_assert(eq(u64, ev.sequence, 2ull));

	/* A timeout shorter than the nap. */
	t0 = tu_mono_ms();
	cr_assert(eq(int, bt_kmes_reader__wait(r, 100), 0));
	ms = tu_mono_ms() - t0;
	cr_assert(ge(u64, ms, 90ull));
	cr_assert(lt(u64, ms, 450ull), "the nap outlasted the timeout "
		  "(%llu ms)", (unsigned long long)ms);
	/* A zero timeout does not nap at all. */
	t0 = tu_mono_ms();
	cr_assert(eq(int, bt_kmes_reader__wait(r, 0), 0));
	ms = tu_mono_ms() - t0;
	cr_assert(lt(u64, ms, 250ull), "wait(0) napped (%llu ms)",
		  (unsigned long long)ms);
	kmes_unmap(b, cap);
	bt_kmes_reader__free(r);
}

Test(kmes_reader, gaps_are_reported_per_event_and_summed_in_stats)
{
	static unsigned char big[40000];	/* over half of 64 KiB */
	const char *name = tu_name("gaps");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct bt_kmes_reader *r;
	struct bt_kmes_slot_stats st;
	struct bt_kmes_event ev;
	struct kmes_emit_entry drop = {
		.event_type = EV_TYPE, .event_type_len = EV_TYPE_LEN,
		.payload = big, .payload_len = sizeof(big),
	};
	static const uint64_t want_seq[] = { 1, 2, 3, 6, 7, 8, 10 };
	static const uint64_t want_gap[] = { 0, 0, 0, 2, 0, 0, 1 };
	size_t n = 0;

	/* 1-3 kept, 4-5 dropped, 6-8 kept, 9 dropped, 10 kept. */
	for (int i = 0; i < 3; i++)
		tu_emit_sized(s, 0, EV_TYPE, 200);
	for (int i = 0; i < 2; i++)
		cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, NULL,
								&drop, 1), 0));
	for (int i = 0; i < 3; i++)
		tu_emit_sized(s, 0, EV_TYPE, 200);
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, NULL, &drop, 1),
		     0));
	tu_emit_sized(s, 0, EV_TYPE, 200);

	r = bt_kmes_reader__new(name, NULL);
	cr_assert(ne(ptr, r, NULL));
	memset(&ev, 0xcd, sizeof(ev));		/* poison: all of it is set */
	while (bt_kmes_reader__next(r, &ev) == 1) {
		cr_assert(lt(sz, n, (size_t)7));
		cr_assert(eq(u32, ev.slot, 0u));
		cr_assert(eq(u16, ev.cpu_id, (uint16_t)0));
		cr_assert(eq(u8, ev.origin_class, (uint8_t)KMES_ORIGIN_USER));
		cr_assert(eq(u64, ev.generation, 1ull));
		cr_assert(eq(u32, ev.header_size, EV_HDR));
		cr_assert(eq(u64, ev.sequence, want_seq[n]));
		cr_assert(eq(u64, ev.gap, want_gap[n]), "event %llu",
			  (unsigned long long)ev.sequence);
		n++;
	}
	cr_assert(eq(sz, n, (size_t)7));
	memset(&st, 0xcd, sizeof(st));
	cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &st), 0));
	cr_assert(eq(u64, st.lapped, 0ull));
	cr_assert(eq(u64, st.torn, 0ull));
	cr_assert(eq(u64, st.reattached, 0ull));
	cr_assert(eq(u64, st.generation, 1ull));
	cr_assert(eq(u64, st.write_pos, st.read_pos));
	cr_assert(eq(u32, st.status, (uint32_t)BT_KMES_CPU_ONLINE));
	cr_assert(eq(u32, st.producer_pid, (uint32_t)getpid()));
	cr_assert(eq(int, st.alive ? 1 : 0, 1));
	cr_assert(eq(u64, st.events, 7ull));
	cr_assert(eq(u64, st.missed, 3ull));
	cr_assert(eq(u64, st.gaps, 2ull));
	cr_assert(eq(u64, st.first_sequence, 1ull));
	cr_assert(eq(u64, st.last_sequence, 10ull));
	cr_assert(eq(u64, st.dropped, 3ull));
	cr_assert(eq(u64, st.produced, 10ull));
	cr_assert(eq(u64, st.bytes, 7 * 200ull));
	cr_assert(eq(u64, st.corrupt, 0ull));
	bt_kmes_reader__free(r);
	bt_kmes_session__close(s);
}

/*
 * The producer overtaking the reader in the middle of its copy (§4.3 step
 * 5), made to happen at a chosen point: a page of the reader's view of the
 * data is made inaccessible, and the fault its copy takes there lets the
 * producer write before the copy goes on.
 */
static struct {
	struct bt_kmes_session *s;
	unsigned char *page;		/* the page made inaccessible */
	unsigned events;		/* emitted from the fault handler */
	unsigned faults;
} overtake;

static void overtake_on_fault(int sig, siginfo_t *si, void *uc)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *a = si->si_addr;

	(void)uc;
	if (a < overtake.page || a >= overtake.page + pg || overtake.faults) {
		signal(sig, SIG_DFL);		/* a real fault: crash */
		return;
	}
	overtake.faults++;
	mprotect(overtake.page, (size_t)pg, PROT_READ);
	for (unsigned i = 0; i < overtake.events; i++)
		tu_emit_sized(overtake.s, 0, EV_TYPE, 1000);
}

Test(kmes_reader, a_copy_overtaken_midway_resumes_at_tail_pos_from_the_copy)
{
	const char *name = tu_name("overtake");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	long pg = sysconf(_SC_PAGESIZE);
	struct sigaction sa, old;
	struct bt_kmes_slot_stats st;
	struct bt_kmes_reader *r;
	struct bt_kmes_event ev;
	uint64_t cap, rp, want = 1, seq;
	unsigned char *b;
	int fd;

	fd = kmes_attach(name, 0, &cap);
	cr_assert(ge(int, fd, 0));
	b = kmes_map(fd, cap);
	cr_assert(ne(ptr, b, NULL));
	r = bt_kmes_reader__new_mapped(b, cap, 0);
	cr_assert(ne(ptr, r, NULL));

	/* 30 events read; 60 more wrap the ring but leave the reader ahead
	 * of tail_pos: its next copy is [30000, 90000). */
	for (int i = 0; i < 30; i++)
		tu_emit_sized(s, 0, EV_TYPE, 1000);
	while (bt_kmes_reader__next(r, &ev) == 1)
		cr_assert(eq(u64, ev.sequence, want++));
	cr_assert(eq(u64, want, 31ull));
	for (int i = 0; i < 60; i++)
		tu_emit_sized(s, 0, EV_TYPE, 1000);
	rp = 30000;
	cr_assert(lt(u64, tu_ld64(b, KMES_OFF_TAIL_POS), rp));

	/* Fault 8 KiB into that copy; the handler writes seven events (to
	 * 97000), which moves tail_pos to 32000 (97000 - 65536 rounded up to
	 * an event): events 31 and 32 are written over. */
	overtake.s = s;
	overtake.events = 7;
	overtake.page = (unsigned char *)((uintptr_t)(b + KMES_DATA_OFFSET +
					 (rp & (cap - 1)) + 8192) &
					 ~(uintptr_t)(pg - 1));
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = overtake_on_fault;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	cr_assert(eq(int, sigaction(SIGSEGV, &sa, &old), 0));
	cr_assert(eq(int, mprotect(overtake.page, (size_t)pg, PROT_NONE), 0));

	want = 33;
	while (bt_kmes_reader__next(r, &ev) == 1) {
		check_structure(&ev, cap);
		cr_assert(eq(u64, ev.sequence, want), "got %llu",
			  (unsigned long long)ev.sequence);
		cr_assert(eq(u64, ev.gap, want == 33 ? 2ull : 0ull));
		cr_assert(eq(int, bt_kmes_payload_check(ev.payload,
							ev.payload_len, &seq),
			     1), "event %llu: payload damaged",
			  (unsigned long long)ev.sequence);
		cr_assert(eq(u64, seq, ev.sequence));
		want++;
	}
	sigaction(SIGSEGV, &old, NULL);
	cr_assert(eq(u32, overtake.faults, 1u), "the copy never faulted");
	cr_assert(eq(u64, want, 98ull));
	cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &st), 0));
	cr_assert(eq(u64, st.torn, 1ull));
	cr_assert(eq(u64, st.lapped, 1ull));
	cr_assert(eq(u64, st.missed, 2ull));
	cr_assert(eq(u64, st.events, 95ull));
	cr_assert(eq(u64, st.corrupt, 0ull));
	bt_kmes_reader__free(r);
	cr_assert(eq(int, kmes_unmap(b, cap), 0));
	close(fd);
	bt_kmes_session__close(s);
}

/* ---- Fuzz: damaged copies of a real ring -------------------------------- */

#define FZ_MAXEV	1024u

/* A real ring, copied into memfds and mapped (writable) as in §2.2. */
struct fz {
	uint64_t cap;
	unsigned char *image;		/* ring file: producer page + data */
	unsigned char *base;
	int ring_fd, wake_fd;
	uint64_t tail, wp;
	size_t n;			/* events from tail to wp */
	uint64_t pos[FZ_MAXEV];
	uint64_t seq[FZ_MAXEV];
	uint32_t size[FZ_MAXEV];
};

static void fz_restore(struct fz *f)
{
	memcpy(f->base, f->image, KMES_PAGE_SIZE);
	memset(f->base + KMES_PAGE_SIZE, 0, KMES_PAGE_SIZE);
	memcpy(f->base + KMES_DATA_OFFSET, f->image + KMES_PAGE_SIZE, f->cap);
}

static void fz_setup(struct fz *f, uint64_t seed)
{
	const char *name = tu_name("fuzzsrc");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	uint64_t rng = seed, pos;
	char path[PATH_MAX];
	size_t len = KMES_PAGE_SIZE + CAP_64K;
	const unsigned char *d;
	int fd;

	memset(f, 0, sizeof(*f));
	f->cap = CAP_64K;
	/* A few hundred events of mixed sizes: wrapped, one straddles. */
	for (int i = 0; i < 400; i++)
		tu_emit_sized(s, 0, EV_TYPE, EV_HDR + 20 +
			      (uint32_t)(tu_xorshift(&rng) % 500));
	snprintf(path, sizeof(path), "%s/ring.0", bt_kmes_session__path(s));
	f->image = malloc(len);
	cr_assert(ne(ptr, f->image, NULL));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert(ge(int, fd, 0));
	cr_assert(eq(long, (long)pread(fd, f->image, len, 0), (long)len));
	close(fd);
	bt_kmes_session__close(s);

	f->ring_fd = memfd_create("kmes-fuzz-ring", MFD_CLOEXEC);
	f->wake_fd = memfd_create("kmes-fuzz-wake", MFD_CLOEXEC);
	cr_assert(ge(int, f->ring_fd, 0));
	cr_assert(ge(int, f->wake_fd, 0));
	cr_assert(eq(int, ftruncate(f->ring_fd, (off_t)len), 0));
	cr_assert(eq(int, ftruncate(f->wake_fd, KMES_PAGE_SIZE), 0));
	f->base = kmes_map_layout(f->ring_fd, f->wake_fd, f->cap, true);
	cr_assert(ne(ptr, f->base, NULL), "%s", strerror(errno));
	fz_restore(f);

	/* The event chain, walked independently of the library. */
	f->tail = bt_le64(f->image + KMES_OFF_TAIL_POS);
	f->wp = bt_le64(f->image + KMES_OFF_WRITE_POS);
	cr_assert(gt(u64, f->tail, 0ull), "the source ring should wrap");
	d = f->base + KMES_DATA_OFFSET;
	for (pos = f->tail; pos < f->wp; f->n++) {
		cr_assert(lt(sz, f->n, (size_t)FZ_MAXEV));
		f->pos[f->n] = pos;
		f->size[f->n] = bt_le32(d + (pos & (f->cap - 1)));
		f->seq[f->n] = bt_le64(d + (pos & (f->cap - 1)) +
				       KMES_EV_SEQUENCE);
		cr_assert(ge(u32, f->size[f->n], EV_HDR));
		if (f->n)
			cr_assert(eq(u64, f->seq[f->n], f->seq[f->n - 1] + 1));
		pos += f->size[f->n];
	}
	cr_assert(eq(u64, pos, f->wp));
	cr_assert(gt(sz, f->n, (size_t)100));
}

static void fz_teardown(struct fz *f)
{
	munmap(f->base, KMES_MAP_SIZE(f->cap));
	close(f->ring_fd);
	close(f->wake_fd);
	free(f->image);
}

/* Index of the original event with @seq, or -1. */
static long fz_index(const struct fz *f, uint64_t seq)
{
	if (!f->n || seq < f->seq[0] || seq > f->seq[f->n - 1])
		return -1;
	return (long)(seq - f->seq[0]);
}

/* Is @ev byte for byte the original event of its sequence? */
static int fz_genuine(const struct fz *f, const struct bt_kmes_event *ev)
{
	static unsigned char orig[CAP_64K / 2];
	long i = fz_index(f, ev->sequence);
	uint64_t off, first;

	if (i < 0 || ev->event_size != f->size[i])
		return 0;
	off = f->pos[i] & (f->cap - 1);
	first = f->cap - off < f->size[i] ? f->cap - off : f->size[i];
	memcpy(orig, f->image + KMES_PAGE_SIZE + off, first);
	memcpy(orig + first, f->image + KMES_PAGE_SIZE, f->size[i] - first);
	return !memcmp(ev->raw, orig, f->size[i]);
}

/* The consumer's structural checks, done here independently. */
static int fz_header_bad(const unsigned char *p, uint64_t avail, uint64_t cap)
{
	uint32_t esz = bt_le32(p + KMES_EV_EVENT_SIZE);
	uint32_t hsz = bt_le32(p + KMES_EV_HEADER_SIZE);
	uint16_t tl = bt_le16(p + KMES_EV_TYPE_LEN);

	return esz < KMES_HDR_FIXED || esz > avail || esz > cap / 2 ||
	       hsz != KMES_HDR_FIXED + tl || hsz > esz ||
	       bt_le64(p + KMES_EV_SEQUENCE) == 0 ||
	       bt_le16(p + KMES_EV_CPU_ID) != 0;
}

static void fz_set_tail(struct fz *f, uint64_t tail)
{
	__atomic_store_n((uint64_t *)(void *)(f->base + KMES_OFF_TAIL_POS),
			 tail, __ATOMIC_RELEASE);
}

/* Corrupt the header of event @k in one of several ways. */
static void fz_break_header(struct fz *f, size_t k, uint64_t *rng)
{
	unsigned char *p = f->base + KMES_DATA_OFFSET +
			   (f->pos[k] & (f->cap - 1));
	uint64_t r = tu_xorshift(rng);

	switch (r % 7) {
	case 0:		/* random event_size */
		bt_put_le32(p, (uint32_t)tu_xorshift(rng));
		break;
	case 1:		/* random header_size */
		bt_put_le32(p + KMES_EV_HEADER_SIZE,
			    (uint32_t)tu_xorshift(rng));
		break;
	case 2:		/* random type_len */
		bt_put_le16(p + KMES_EV_TYPE_LEN, (uint16_t)tu_xorshift(rng));
		break;
	case 3:		/* a few random bytes in the two sizes */
		for (unsigned i = 0, m = 1 + (unsigned)(r >> 8) % 8; i < m; i++)
			p[tu_xorshift(rng) % 8] =
				(unsigned char)tu_xorshift(rng);
		break;
	case 4:		/* the whole fixed header */
		for (unsigned i = 0; i < KMES_HDR_FIXED; i++)
			p[i] = (unsigned char)tu_xorshift(rng);
		break;
	case 5:		/* a zero size: would loop forever unchecked */
		bt_put_le32(p, 0);
		break;
	default:	/* an event_size past the data written */
		bt_put_le32(p, (uint32_t)(f->wp - f->pos[k] + 1 +
					  tu_xorshift(rng) % 64));
		break;
	}
}

/*
 * KMES.md §4.3 step 6 and §10 item 9: a corrupt header is reported, and
 * reading resumes at tail_pos once the producer moves past it.
 */
Test(kmes_reader, a_corrupt_header_is_reported_and_reading_resyncs_at_tail_pos,
     .timeout = 60)
{
	struct fz *f = malloc(sizeof(*f));
	uint64_t rng = 0x5eed0001ull;
	unsigned checked = 0;

	cr_assert(ne(ptr, f, NULL));
	fz_setup(f, 7);
	for (int it = 0; it < 2000; it++) {
		/* The last event and the first one for sure, then any. */
		size_t k = it == 0 ? f->n - 1 : it == 1 ? 0 :
			   tu_xorshift(&rng) % f->n, pre, i;
		struct bt_kmes_reader *r;
		struct bt_kmes_slot_stats st;
		struct bt_kmes_event ev;
		unsigned char *p;
		int ret;

		fz_restore(f);
		/*
		 * Damage first: the reader copies committed bytes in bursts
		 * and rightly returns what was intact when it copied it.
		 */
		fz_break_header(f, k, &rng);
		p = f->base + KMES_DATA_OFFSET + (f->pos[k] & (f->cap - 1));
		if (!fz_header_bad(p, f->wp - f->pos[k], f->cap))
			continue;		/* still valid: rare */
		r = bt_kmes_reader__new_mapped(f->base, f->cap, 0);
		cr_assert(ne(ptr, r, NULL));
		/* Sometimes the reader is already part-way through. */
		pre = tu_xorshift(&rng) % (k + 1);
		for (i = 0; i < pre; i++) {
			cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
			cr_assert(eq(u64, ev.sequence, f->seq[i]));
		}
		checked++;
		/* Every event before the bad one, then the report. */
		for (; i < k; i++) {
			cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
			cr_assert(eq(u64, ev.sequence, f->seq[i]));
			cr_assert(eq(int, fz_genuine(f, &ev), 1));
		}
		ev.slot = 99;
		ret = bt_kmes_reader__next(r, &ev);
		cr_assert(eq(int, ret, -BT_ERRNO_CORRUPT),
			  "iteration %d: event %zu: got %d", it, k, ret);
		cr_assert(eq(u32, ev.slot, 0u));
		cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &st), 0));
		cr_assert(eq(u64, st.corrupt, 1ull));
		/* Stuck until the producer moves: quiet, not counted again. */
		cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 0));
		cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 0));
		cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &st), 0));
		cr_assert(eq(u64, st.corrupt, 1ull));

		/* The producer moves on: tail_pos to the next boundary. */
		fz_set_tail(f, k + 1 < f->n ? f->pos[k + 1] : f->wp);
		for (i = k + 1; i < f->n; i++) {
			ret = bt_kmes_reader__next(r, &ev);
			cr_assert(eq(int, ret, 1), "iteration %d: resync at "
				  "event %zu: got %d", it, i, ret);
			cr_assert(eq(u64, ev.sequence, f->seq[i]));
			cr_assert(eq(u64, ev.gap, i == k + 1 && k > 0 ? 1ull :
				     0ull));
			cr_assert(eq(int, fz_genuine(f, &ev), 1));
		}
		cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 0));
		cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &st), 0));
		cr_assert(eq(u64, st.corrupt, 1ull));
		cr_assert(eq(u64, st.events, (uint64_t)f->n - 1));
		bt_kmes_reader__free(r);
	}
	cr_log_info("%u of 2000 iterations broke a header", checked);
	cr_assert(gt(uint, checked, 1800u), "only %u iterations corrupted a "
		  "header", checked);
	fz_teardown(f);
	free(f);
}

/* Random damage anywhere in the data or in the producer page. */
static void fz_mutate(struct fz *f, uint64_t *rng)
{
	unsigned char *b = f->base;
	uint64_t r = tu_xorshift(rng), v;

	switch (r % 10) {
	case 0: case 1: case 2: case 3: case 4: case 5: {
		uint64_t off = tu_xorshift(rng) % f->cap;
		unsigned len = 1 + (unsigned)(tu_xorshift(rng) % 16);

		/* Through the double mapping: may cross the physical end. */
		for (unsigned i = 0; i < len; i++)
			b[KMES_DATA_OFFSET + off + i] =
				(unsigned char)tu_xorshift(rng);
		break;
	}
	case 6: {
		unsigned off = (unsigned)(tu_xorshift(rng) % KMES_PAGE_SIZE);
		unsigned len = 1 + (unsigned)(tu_xorshift(rng) % 8);

		for (unsigned i = 0; i < len && off + i < KMES_PAGE_SIZE; i++)
			b[off + i] = (unsigned char)tu_xorshift(rng);
		break;
	}
	case 7:		/* write_pos */
	case 8:		/* tail_pos */
		switch (tu_xorshift(rng) % 5) {
		case 0:
			v = tu_xorshift(rng);
			break;
		case 1:
			v = f->wp - 200 + tu_xorshift(rng) % 400;
			break;
		case 2:
			v = f->tail - 200 + tu_xorshift(rng) % 400;
			break;
		case 3:
			v = f->pos[tu_xorshift(rng) % f->n] +
			    tu_xorshift(rng) % 3;
			break;
		default:
			v = f->wp + f->cap * (1 + tu_xorshift(rng) % 4);
			break;
		}
		__atomic_store_n((uint64_t *)(void *)(b + ((r % 10) == 7 ?
							   KMES_OFF_WRITE_POS :
							   KMES_OFF_TAIL_POS)),
				 v, __ATOMIC_RELEASE);
		break;
	default:	/* generation, cpu_id, kind */
		v = tu_xorshift(rng);
		memcpy(b + (v % 3 == 0 ? KMES_OFF_GENERATION :
			    v % 3 == 1 ? KMES_OFF_CPU_ID : BT_KMES_XOFF_KIND),
		       &r, v % 3 == 0 ? 8 : v % 3 == 1 ? 2 : 4);
		break;
	}
}

/*
 * The reader treats a ring as hostile (§10 item 9): whatever the damage it
 * does not crash, returns only structurally sound events, counts what it
 * reports, and resynchronises once the damage is behind tail_pos.
 */
Test(kmes_reader, a_randomly_damaged_ring_never_crashes_the_reader,
     .timeout = 60)
{
	struct fz *f = malloc(sizeof(*f));
	uint64_t rng = 0xfacade5eedull;
	unsigned resyncs = 0, reported = 0;

	cr_assert(ne(ptr, f, NULL));
	fz_setup(f, 11);
	for (int it = 0; it < 2000; it++) {
		struct bt_kmes_reader *r;
		struct bt_kmes_slot_stats st;
		struct bt_kmes_event ev;
		uint64_t events = 0, corrupt = 0, last = 0, maxseq = 0;
		unsigned pre, muts, calls = 0;
		int genuine = 1, ret;
		long b;

		fz_restore(f);
		r = bt_kmes_reader__new_mapped(f->base, f->cap, 0);
		cr_assert(ne(ptr, r, NULL));
		pre = (unsigned)(tu_xorshift(&rng) % 50);
		for (unsigned i = 0; i < pre; i++) {
			cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
			last = maxseq = ev.sequence;
			events++;
		}
		muts = 1 + (unsigned)(tu_xorshift(&rng) % 8);
		for (unsigned m = 0; m < muts; m++)
			fz_mutate(f, &rng);

		/* Read until drained; damage more on the way, sometimes. */
		for (;;) {
			ret = bt_kmes_reader__next(r, &ev);
			cr_assert(lt(uint, ++calls, 20000u), "never drains");
			if (ret == 0)
				break;
			if (ret == -BT_ERRNO_CORRUPT) {
				corrupt++;
				cr_assert(eq(u32, ev.slot, 0u));
				continue;
			}
			cr_assert(eq(int, ret, 1), "iteration %d: %d", it, ret);
			check_structure(&ev, f->cap);
			cr_assert(gt(u64, ev.sequence, last),
				  "sequences only increase");
			last = ev.sequence;
			if (ev.sequence > maxseq)
				maxseq = ev.sequence;
			if (!fz_genuine(f, &ev))
				genuine = 0;
			events++;
			if (tu_xorshift(&rng) % 64 == 0)
				fz_mutate(f, &rng);
		}
		cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &st), 0));
		cr_assert(eq(u64, st.corrupt, corrupt));
		cr_assert(eq(u64, st.events, events));
		reported += corrupt > 0;

		/*
		 * The producer moves on: a clean ring again, tail_pos at the
		 * first boundary past where the reader stopped. When all it
		 * returned was genuine, it must now return exactly the rest.
		 */
		fz_restore(f);
		b = -1;
		for (size_t i = 0; i < f->n; i++) {
			if (f->pos[i] > st.read_pos) {
				b = (long)i;
				break;
			}
		}
		if (genuine && b >= 0 && st.read_pos <= f->wp &&
		    maxseq < f->seq[b]) {
			fz_set_tail(f, f->pos[b]);
			for (size_t i = (size_t)b; i < f->n; i++) {
				ret = bt_kmes_reader__next(r, &ev);
				cr_assert(eq(int, ret, 1), "iteration %d: resync "
					  "at %zu: %d", it, i, ret);
				cr_assert(eq(u64, ev.sequence, f->seq[i]));
				cr_assert(eq(int, fz_genuine(f, &ev), 1));
			}
			cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 0));
			resyncs++;
		} else {
			/* Whatever it does now, it stays sound. */
			for (unsigned i = 0; i < 20000; i++) {
				ret = bt_kmes_reader__next(r, &ev);
				if (ret == 0)
					break;
				cr_assert(ret == 1 || ret == -BT_ERRNO_CORRUPT);
				if (ret == 1)
					check_structure(&ev, f->cap);
			}
		}
		bt_kmes_reader__free(r);
	}
	cr_log_info("2000 iterations: damage reported in %u, resync checked "
		    "in %u", reported, resyncs);
	cr_assert(gt(uint, reported, 200u), "damage was reported in only %u "
		  "iterations", reported);
	cr_assert(gt(uint, resyncs, 200u), "only %u resynchronisations were "
		  "checked", resyncs);
	fz_teardown(f);
	free(f);
}
