// SPDX-License-Identifier: BSD-3-Clause
/*
 * The threshold notifier (seed 001, docs/notifier.md): the seed's five
 * detections over exact level sequences, ONESHOT and re-arming, signed
 * thresholds, scopes one/each/sum, delivery by queued signal (to this
 * thread, and to another process carrying a new pid), eventfd and
 * SIGEV_THREAD, real KMES ring levels, a tracer's charge over the sim
 * backend, the background poller, and the argument checks.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <btrail/ds.h>
#include <btrail/kmes.h>
#include <btrail/notify.h>

#include "helpers/testutil.h"

#define UP	BT_THRESHOLD_UP
#define DOWN	BT_THRESHOLD_DOWN
#define LEVEL	BT_THRESHOLD_LEVEL
#define ONESHOT	BT_THRESHOLD_ONESHOT

static struct bt_notify *nt;

static void nt_setup(void)
{
	nt = bt_notify__new(NULL);
	cr_assert(ne(ptr, nt, NULL));
}

static void nt_teardown(void)
{
	bt_notify__free(nt);
	nt = NULL;
}

TestSuite(notify, .init = nt_setup, .fini = nt_teardown);

/* A watch description with SIGEV_NONE delivery (count only). */
static struct bt_notify_watch wdesc(uint32_t kind, uint32_t scope, int obj,
				    int64_t th, uint32_t flags)
{
	struct bt_notify_watch w;

	memset(&w, 0, sizeof(w));
	w.sz = sizeof(w);
	w.kind = kind;
	w.scope = scope;
	w.object = obj;
	w.th.threshold_level = th;
	w.th.flags = flags;
	w.th.sigev.sigev_notify = SIGEV_NONE;
	return w;
}

static int watch_one(int obj, int64_t th, uint32_t flags)
{
	struct bt_notify_watch w = wdesc(BT_NOTIFY_GENERIC, BT_NOTIFY_ONE, obj,
					 th, flags);
	int id = bt_notify__watch(nt, &w);

	cr_assert(gt(int, id, 0), "watch: %d", id);
	return id;
}

static struct bt_notify_watch_info info_of(int id)
{
	struct bt_notify_watch_info wi;

	cr_assert(eq(int, bt_notify__watch_info(nt, id, &wi), 0));
	return wi;
}

/*
 * Feed @n levels to @obj and check that step i fires exactly want[i]
 * times; then the watch's count is the sum.
 */
static void run_seq(int obj, int id, const int64_t *lv, const int *want,
		    size_t n)
{
	uint64_t total = info_of(id).fired;

	for (size_t i = 0; i < n; i++) {
		int got = bt_notify__set_level(nt, obj, lv[i]);

		cr_assert(eq(int, got, want[i]), "step %zu (level %lld)", i,
			  (long long)lv[i]);
		total += (uint64_t)want[i];
	}
	cr_assert(eq(u64, info_of(id).fired, total));
}

#define RUN_SEQ(obj, id, lv, want) do {					\
	_Static_assert(sizeof(lv) / sizeof(lv[0]) ==			\
		       sizeof(want) / sizeof(want[0]), "lengths");	\
	run_seq(obj, id, lv, want, sizeof(want) / sizeof(want[0]));	\
} while (0)

/* ---- The seed's five detections ------------------------------------------ */

/* "trigger on the one alloc that exceeds a level": UP & NOT LEVEL */
Test(notify, edge_up_fires_once_per_crossing_to_at_or_above)
{
	int obj = bt_notify__add_level(nt, 0);
	int id = watch_one(obj, 10, UP);
	const int64_t lv[] = { 5, 10, 12, 8, 15, 9, 10, 10, 9 };
	const int want[] = { 0, 1, 0, 0, 1, 0, 1, 0, 0 };

	cr_assert(eq(int, bt_notify__poll(nt), 0));
	RUN_SEQ(obj, id, lv, want);
	cr_assert(eq(i64, info_of(id).last_level, 10));
	cr_assert(eq(int, info_of(id).last_object, obj));
}

/* "trigger on the one dealloc that falls below a level": DOWN & NOT LEVEL */
Test(notify, edge_down_fires_once_per_crossing_to_below)
{
	int obj = bt_notify__add_level(nt, 20);
	int id = watch_one(obj, 10, DOWN);
	const int64_t lv[] = { 15, 10, 9, 9, 12, 3, 10, 9 };
	const int want[] = { 0, 0, 1, 0, 0, 1, 0, 1 };

	RUN_SEQ(obj, id, lv, want);
	cr_assert(eq(i64, info_of(id).last_level, 9));
}

/*
 * "trigger on any change": LEVEL & UP with threshold 0. Levels of this
 * object are never negative, so every value is at or above 0: the first
 * evaluation reports the current level, then every change fires, down to
 * 0 included (that is why "above" is >=).
 */
Test(notify, level_up_at_zero_fires_on_any_change)
{
	int obj = bt_notify__add_level(nt, 0);
	int id = watch_one(obj, 0, LEVEL | UP);
	const int64_t lv[] = { 1, 1, 0, 5, 5, 2, 0 };
	const int want[] = { 1, 0, 1, 1, 0, 1, 1 };

	cr_assert(eq(int, bt_notify__poll(nt), 1));	/* state at start */
	cr_assert(eq(int, bt_notify__poll(nt), 0));	/* no change */
	RUN_SEQ(obj, id, lv, want);
	cr_assert(eq(u64, info_of(id).fired, 6));
}

/* "trigger on every alloc/dealloc when above a level": LEVEL & UP */
Test(notify, level_up_fires_on_every_change_at_or_above)
{
	int obj = bt_notify__add_level(nt, 0);
	int id = watch_one(obj, 10, LEVEL | UP);
	const int64_t lv[] = { 5, 10, 12, 12, 8, 11, 30, 9 };
	const int want[] = { 0, 1, 1, 0, 0, 1, 1, 0 };

	cr_assert(eq(int, bt_notify__poll(nt), 0));	/* 0 is below */
	RUN_SEQ(obj, id, lv, want);
	cr_assert(eq(i64, info_of(id).last_level, 30));
}

/* "trigger on every alloc/dealloc when below a level": LEVEL & DOWN */
Test(notify, level_down_fires_on_every_change_below)
{
	int obj = bt_notify__add_level(nt, 20);
	int id = watch_one(obj, 10, LEVEL | DOWN);
	const int64_t lv[] = { 15, 9, 3, 3, 10, 12, 0, 1 };
	const int want[] = { 0, 1, 1, 0, 0, 0, 1, 1 };

	cr_assert(eq(int, bt_notify__poll(nt), 0));
	RUN_SEQ(obj, id, lv, want);
	cr_assert(eq(i64, info_of(id).last_level, 1));
}

/* UP | DOWN edge: either crossing; the two alternate strictly. */
Test(notify, edge_up_and_down_fires_on_both_crossings)
{
	int obj = bt_notify__add_level(nt, 0);
	int id = watch_one(obj, 10, UP | DOWN);
	const int64_t lv[] = { 10, 11, 9, 9, 100, -3 };
	const int want[] = { 1, 0, 1, 0, 1, 1 };

	RUN_SEQ(obj, id, lv, want);
}

/* Signed levels: negative thresholds and levels compare as integers. */
Test(notify, negative_thresholds_and_levels)
{
	int obj = bt_notify__add_level(nt, 3);
	int any = watch_one(obj, INT64_MIN, LEVEL | UP);
	int down = watch_one(obj, 0, DOWN);
	int up = watch_one(obj, -5, UP);
	const int64_t lv[] = { -1, -1, -6, -5, INT64_MIN };
	/* firings of the three watches summed per step */
	const int want[] = { 1 + 1, 0, 1, 1 + 1, 1 };

	for (size_t i = 0; i < sizeof(lv) / sizeof(lv[0]); i++)
		cr_assert(eq(int, bt_notify__set_level(nt, obj, lv[i]),
			     want[i]), "step %zu", i);
	/* any: the first evaluation and three changes */
	cr_assert(eq(u64, info_of(any).fired, 4));
	cr_assert(eq(u64, info_of(down).fired, 1));
	cr_assert(eq(u64, info_of(up).fired, 1));
	cr_assert(eq(i64, info_of(any).last_level, INT64_MIN));
}

/* ---- ONESHOT ------------------------------------------------------------- */

Test(notify, oneshot_edge_fires_once_until_rearmed)
{
	int obj = bt_notify__add_level(nt, 0);
	int id = watch_one(obj, 10, UP | ONESHOT);
	const int64_t lv1[] = { 12, 5, 12, 3, 50 };
	const int want1[] = { 1, 0, 0, 0, 0 };
	const int64_t lv2[] = { 60, 5, 11, 2, 11 };
	const int want2[] = { 0, 0, 1, 0, 0 };

	RUN_SEQ(obj, id, lv1, want1);
	cr_assert(eq(int, info_of(id).armed, 0));
	cr_assert(eq(i64, info_of(id).last_level, 12));

	/* Re-armed at 50: already above, so it needs a new crossing. */
	cr_assert(eq(int, bt_notify__rearm(nt, id), 0));
	cr_assert(eq(int, info_of(id).armed, 1));
	RUN_SEQ(obj, id, lv2, want2);
	cr_assert(eq(u64, info_of(id).fired, 2));
	cr_assert(eq(int, info_of(id).armed, 0));
}

/* A oneshot level watch reports a state that holds, once per arming. */
Test(notify, oneshot_level_reports_a_holding_state_once_per_arming)
{
	int obj = bt_notify__add_level(nt, 15);
	int id = watch_one(obj, 10, LEVEL | UP | ONESHOT);

	cr_assert(eq(int, bt_notify__poll(nt), 1));
	cr_assert(eq(int, bt_notify__set_level(nt, obj, 16), 0));
	cr_assert(eq(int, bt_notify__poll(nt), 0));
	cr_assert(eq(int, bt_notify__rearm(nt, id), 0));
	cr_assert(eq(int, bt_notify__poll(nt), 1));
	cr_assert(eq(i64, info_of(id).last_level, 16));
	/* Re-armed below the threshold: nothing until it is above. */
	cr_assert(eq(int, bt_notify__set_level(nt, obj, 1), 0));
	cr_assert(eq(int, bt_notify__rearm(nt, id), 0));
	cr_assert(eq(int, bt_notify__poll(nt), 0));
	cr_assert(eq(int, bt_notify__set_level(nt, obj, 10), 1));
	cr_assert(eq(u64, info_of(id).fired, 3));
	/* Re-creating is the seed's way, and works the same. */
	cr_assert(eq(int, bt_notify__unwatch(nt, id), 0));
	id = watch_one(obj, 10, LEVEL | UP | ONESHOT);
	cr_assert(eq(int, bt_notify__poll(nt), 1));
	cr_assert(eq(u64, info_of(id).fired, 1));
}

/* ---- Scopes -------------------------------------------------------------- */

Test(notify, scopes_one_each_and_sum)
{
	int a = bt_notify__add_level(nt, 1);
	int b = bt_notify__add_level(nt, 2);
	int c = bt_notify__add_level(nt, 3);
	struct bt_notify_watch w;
	int one, each, sum, d;
	int64_t lv;

	one = watch_one(b, 5, UP);
	w = wdesc(BT_NOTIFY_GENERIC, BT_NOTIFY_EACH, 0, 5, UP);
	each = bt_notify__watch(nt, &w);
	w = wdesc(BT_NOTIFY_GENERIC, BT_NOTIFY_SUM, 0, 10, UP | DOWN);
	sum = bt_notify__watch(nt, &w);
	cr_assert(gt(int, each, 0));
	cr_assert(gt(int, sum, 0));

	/* b: 2 -> 6: ONE and EACH fire for b; the sum 1+6+3 = 10 reaches 10 */
	cr_assert(eq(int, bt_notify__set_level(nt, b, 6), 3));
	cr_assert(eq(i64, info_of(sum).last_level, 10));
	cr_assert(eq(int, info_of(sum).last_object, 0));
	cr_assert(eq(int, info_of(each).last_object, b));
	/* a: 1 -> 4: below 5, the sum 13 stays above */
	cr_assert(eq(int, bt_notify__set_level(nt, a, 4), 0));

	/* EACH covers an object added later, from its level at adding. */
	d = bt_notify__add_level(nt, 7);
	cr_assert(gt(int, d, c));
	cr_assert(eq(int, bt_notify__poll(nt), 0));	/* sum 20: above */
	cr_assert(eq(int, bt_notify__set_level(nt, d, 2), 0));
	cr_assert(eq(int, bt_notify__set_level(nt, d, 9), 1));
	cr_assert(eq(int, info_of(each).last_object, d));
	cr_assert(eq(u64, info_of(each).fired, 2));

	/* sum 4 + 6 - 20 + 9 = -1: below; then 4 + 6 + 3 + 9 = 22 */
	cr_assert(eq(int, bt_notify__set_level(nt, c, -20), 1));
	cr_assert(eq(i64, info_of(sum).last_level, -1));
	cr_assert(eq(int, bt_notify__set_level(nt, c, 3), 1));
	cr_assert(eq(i64, info_of(sum).last_level, 22));
	cr_assert(eq(u64, info_of(sum).fired, 3));
	cr_assert(eq(u64, info_of(one).fired, 1));

	/* Removing b removes the ONE watch on it; the sum drops by 6. */
	cr_assert(eq(int, bt_notify__remove(nt, b), 0));
	cr_assert(eq(int, bt_notify__watch_info(nt, one, &(struct
			bt_notify_watch_info){ 0 }), -EINVAL));
	cr_assert(eq(int, bt_notify__poll(nt), 0));	/* 16: above */
	cr_assert(eq(int, bt_notify__set_level(nt, d, 0), 1));	/* 7 */
	cr_assert(eq(i64, info_of(sum).last_level, 7));
	cr_assert(eq(int, bt_notify__level(nt, b, BT_NOTIFY_GENERIC, &lv),
		     -EINVAL));
	cr_assert(eq(int, bt_notify__level(nt, d, BT_NOTIFY_GENERIC, &lv), 0));
	cr_assert(eq(i64, lv, 0));
}

/* A oneshot EACH watch is one notification, whichever object fires. */
Test(notify, oneshot_each_disarms_the_whole_watch)
{
	int a = bt_notify__add_level(nt, 0);
	int b = bt_notify__add_level(nt, 0);
	struct bt_notify_watch w = wdesc(BT_NOTIFY_GENERIC, BT_NOTIFY_EACH, 0,
					 1, UP | ONESHOT);
	int id = bt_notify__watch(nt, &w);

	cr_assert(eq(int, bt_notify__set_level(nt, b, 1), 1));
	cr_assert(eq(int, bt_notify__set_level(nt, a, 1), 0));
	cr_assert(eq(int, info_of(id).last_object, b));
	cr_assert(eq(int, bt_notify__rearm(nt, id), 0));
	cr_assert(eq(int, bt_notify__set_level(nt, a, 0), 0));
	cr_assert(eq(int, bt_notify__set_level(nt, a, 1), 1));
	cr_assert(eq(int, info_of(id).last_object, a));
}

/* ---- Delivery ------------------------------------------------------------ */

static pid_t my_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* A real queued signal to this thread carries sigev_value. */
Test(notify, signal_to_a_thread_carries_the_value)
{
	int sig = SIGRTMIN + 1;
	int obj = bt_notify__add_level(nt, 0);
	struct bt_notify_watch w = wdesc(BT_NOTIFY_GENERIC, BT_NOTIFY_ONE, obj,
					 100, UP);
	struct timespec ts = { .tv_sec = 10 };
	siginfo_t si;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, sig);
	cr_assert(eq(int, sigprocmask(SIG_BLOCK, &set, NULL), 0));
	w.th.sigev.sigev_notify = SIGEV_THREAD_ID;
	w.th.sigev.sigev_signo = sig;
	w.th.sigev.sigev_notify_thread_id = my_tid();
	w.th.sigev.sigev_value.sival_int = 4242;
	cr_assert(gt(int, bt_notify__watch(nt, &w), 0));

	cr_assert(eq(int, bt_notify__set_level(nt, obj, 100), 1));
	cr_assert(eq(int, sigtimedwait(&set, &si, &ts), sig));
	cr_assert(eq(int, si.si_code, SI_QUEUE));
	cr_assert(eq(int, si.si_value.sival_int, 4242));
	cr_assert(eq(int, si.si_pid, getpid()));
	/* exactly one */
	ts.tv_sec = 0;
	cr_assert(eq(int, sigtimedwait(&set, &si, &ts), -1));
	cr_assert(eq(int, errno, EAGAIN));
}

/* SIGEV_SIGNAL to the process, read through a signalfd. */
Test(notify, signal_to_the_process_through_signalfd)
{
	int sig = SIGRTMIN + 2;
	int obj = bt_notify__add_level(nt, 50);
	struct bt_notify_watch w = wdesc(BT_NOTIFY_GENERIC, BT_NOTIFY_ONE, obj,
					 10, LEVEL | DOWN);
	struct signalfd_siginfo ssi[4];
	sigset_t set;
	ssize_t r;
	int sfd;

	sigemptyset(&set);
	sigaddset(&set, sig);
	cr_assert(eq(int, sigprocmask(SIG_BLOCK, &set, NULL), 0));
	sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	cr_assert(ge(int, sfd, 0));
	w.th.sigev.sigev_notify = SIGEV_SIGNAL;
	w.th.sigev.sigev_signo = sig;
	w.th.sigev.sigev_value.sival_int = 77;
	cr_assert(gt(int, bt_notify__watch(nt, &w), 0));

	cr_assert(eq(int, bt_notify__set_level(nt, obj, 9), 1));
	cr_assert(eq(int, bt_notify__set_level(nt, obj, 20), 0));
	cr_assert(eq(int, bt_notify__set_level(nt, obj, 2), 1));
	/* Queued signals are not merged: two arrive. */
	r = read(sfd, ssi, sizeof(ssi));
	cr_assert(eq(sz, (size_t)r, 2 * sizeof(ssi[0])));
	cr_assert(eq(u32, ssi[0].ssi_signo, (uint32_t)sig));
	cr_assert(eq(i32, ssi[0].ssi_int, 77));
	cr_assert(eq(i32, ssi[1].ssi_int, 77));
	cr_assert(eq(i32, ssi[0].ssi_code, SI_QUEUE));
	close(sfd);
}

Test(notify, eventfd_counts_firings)
{
	int obj = bt_notify__add_level(nt, 0);
	struct bt_notify_watch w = wdesc(BT_NOTIFY_GENERIC, BT_NOTIFY_ONE, obj,
					 10, UP | DOWN);
	const int64_t lv[] = { 10, 11, 3, 4, 12, 12 };
	uint64_t cnt = 0;
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), id;

	cr_assert(ge(int, efd, 0));
	w.th.sigev.sigev_notify = BT_SIGEV_EVENTFD;
	w.eventfd = efd;
	id = bt_notify__watch(nt, &w);
	cr_assert(gt(int, id, 0));
	for (size_t i = 0; i < sizeof(lv) / sizeof(lv[0]); i++)
		bt_notify__set_level(nt, obj, lv[i]);
	cr_assert(eq(sz, (size_t)read(efd, &cnt, sizeof(cnt)), sizeof(cnt)));
	cr_assert(eq(u64, cnt, 3));
	cr_assert(eq(u64, info_of(id).fired, 3));
	cr_assert(eq(u64, info_of(id).failed, 0));
	/* nothing more is pending */
	cr_assert(eq(int, (int)read(efd, &cnt, sizeof(cnt)), -1));
	cr_assert(eq(int, errno, EAGAIN));
	close(efd);
}

static int thread_vals[16];
static int thread_n;

static void on_fire(union sigval v)
{
	if (thread_n < 16)
		thread_vals[thread_n++] = v.sival_int;
}

/* SIGEV_THREAD: the function runs on the delivery thread, in order. */
Test(notify, sigev_thread_calls_in_firing_order)
{
	int a = bt_notify__add_level(nt, 0), b = bt_notify__add_level(nt, 0);
	struct bt_notify_watch w = wdesc(BT_NOTIFY_GENERIC, BT_NOTIFY_ONE, a,
					 1, UP);

	w.th.sigev.sigev_notify = SIGEV_THREAD;
	w.th.sigev.sigev_notify_function = on_fire;
	w.th.sigev.sigev_value.sival_int = 1;
	cr_assert(gt(int, bt_notify__watch(nt, &w), 0));
	w.object = b;
	w.th.sigev.sigev_value.sival_int = 2;
	cr_assert(gt(int, bt_notify__watch(nt, &w), 0));

	bt_notify__set_level(nt, b, 5);
	bt_notify__set_level(nt, a, 5);
	bt_notify__set_level(nt, a, 0);
	bt_notify__set_level(nt, a, 1);
	cr_assert(eq(int, bt_notify__flush(nt), 0));
	cr_assert(eq(int, thread_n, 3));
	cr_assert(eq(int, thread_vals[0], 2));
	cr_assert(eq(int, thread_vals[1], 1));
	cr_assert(eq(int, thread_vals[2], 1));
}

/*
 * The seed's "can we deliver the new pid": a client process waits for a
 * queued signal; real children are created and reported; each firing
 * carries the new pid in sival_int across processes.
 */
Test(notify, new_task_pid_travels_in_sival_int)
{
	int sig = SIGRTMIN + 3, cpipe[2], gate[2], tasks, id;
	pid_t client, kid[2];
	struct bt_notify_watch w;
	sigset_t set;
	int got[2];

	sigemptyset(&set);
	sigaddset(&set, sig);
	cr_assert(eq(int, sigprocmask(SIG_BLOCK, &set, NULL), 0));
	cr_assert(eq(int, pipe(cpipe), 0));
	cr_assert(eq(int, pipe(gate), 0));

	client = fork();
	cr_assert(ge(int, client, 0));
	if (client == 0) {	/* the client: two signals, values out */
		struct timespec ts = { .tv_sec = 20 };
		siginfo_t si;

		close(cpipe[0]);
		for (int i = 0; i < 2; i++) {
			if (sigtimedwait(&set, &si, &ts) != sig ||
			    si.si_code != SI_QUEUE)
				_exit(3);
			tu_write_full(cpipe[1], &si.si_value.sival_int,
				      sizeof(int));
		}
		_exit(0);
	}
	close(cpipe[1]);

	tasks = bt_notify__add_tasks(nt);
	cr_assert(gt(int, tasks, 0));
	/* Every creation: LEVEL & UP at 1 (the count is >= 1 from one on). */
	w = wdesc(BT_NOTIFY_TASKS, BT_NOTIFY_ONE, tasks, 1, LEVEL | UP);
	w.th.sigev.sigev_notify = SIGEV_SIGNAL;
	w.th.sigev.sigev_signo = sig;
	w.th.sigev.sigev_value.sival_int = -1;	/* replaced by the pid */
	w.pid = client;
	id = bt_notify__watch(nt, &w);
	cr_assert(gt(int, id, 0));
	cr_assert(eq(int, bt_notify__poll(nt), 0));	/* none yet */

	for (int i = 0; i < 2; i++) {
		kid[i] = fork();
		cr_assert(ge(int, kid[i], 0));
		if (kid[i] == 0) {	/* a real task: waits for the gate */
			char c;

			close(gate[1]);
			_exit(read(gate[0], &c, 1) == 0 ? 0 : 4);
		}
		cr_assert(eq(int, bt_notify__task_created(nt, tasks, kid[i]),
			     1));
	}
	close(gate[0]);
	close(gate[1]);

	tu_read_full(cpipe[0], got, sizeof(got));
	cr_assert(eq(int, got[0], kid[0]));
	cr_assert(eq(int, got[1], kid[1]));
	cr_assert(eq(int, tu_child_status(client), 0));
	cr_assert(eq(int, tu_child_status(kid[0]), 0));
	cr_assert(eq(int, tu_child_status(kid[1]), 0));
	cr_assert(eq(u64, info_of(id).fired, 2));
	cr_assert(eq(i64, info_of(id).last_level, 2));
	close(cpipe[0]);
}

/* ---- Real levels: a KMES ring -------------------------------------------- */

#define EV_SIZE	200u

static uint64_t fake_ns;

static uint64_t fake_clock(void *ctx)
{
	(void)ctx;
	return fake_ns;
}

Test(notify, ring_unread_crosses_as_events_are_emitted_and_drained)
{
	const char *name = tu_name("ntf");
	struct bt_kmes_session *s = tu_create(name, 65536, 1);
	struct bt_kmes_reader_opts ro = { .sz = sizeof(ro), .one_slot = true };
	struct bt_kmes_reader *rd = bt_kmes_reader__new(name, &ro);
	struct bt_notify_ring rr = { .sz = sizeof(rr), .session = name,
				     .reader = rd };
	struct bt_kmes_event ev;
	int ring, up, down;
	struct bt_notify_watch w;
	int64_t lv;

	cr_assert(ne(ptr, rd, NULL));
	ring = bt_notify__add_ring(nt, &rr);
	cr_assert(gt(int, ring, 0), "add_ring: %d", ring);
	w = wdesc(BT_NOTIFY_RING_UNREAD, BT_NOTIFY_ONE, ring, 1000, UP);
	up = bt_notify__watch(nt, &w);
	w.th.flags = DOWN;
	down = bt_notify__watch(nt, &w);
	cr_assert(gt(int, down, up));

	for (int i = 0; i < 4; i++)
		tu_emit_sized(s, 0, "t.ev", EV_SIZE);
	cr_assert(eq(int, bt_notify__poll(nt), 0));
	cr_assert(eq(int, bt_notify__level(nt, ring, BT_NOTIFY_RING_UNREAD,
					   &lv), 0));
	cr_assert(eq(i64, lv, 4 * EV_SIZE));

	tu_emit_sized(s, 0, "t.ev", EV_SIZE);		/* 1000: reached */
	cr_assert(eq(int, bt_notify__poll(nt), 1));
	cr_assert(eq(u64, info_of(up).fired, 1));
	cr_assert(eq(i64, info_of(up).last_level, 5 * EV_SIZE));

	/* The consumer reads two: 600 unread, below. */
	cr_assert(eq(int, bt_kmes_reader__next(rd, &ev), 1));
	cr_assert(eq(int, bt_kmes_reader__next(rd, &ev), 1));
	cr_assert(eq(int, bt_notify__poll(nt), 1));
	cr_assert(eq(u64, info_of(down).fired, 1));
	cr_assert(eq(i64, info_of(down).last_level, 3 * EV_SIZE));
	while (bt_kmes_reader__next(rd, &ev) == 1)
		;
	cr_assert(eq(int, bt_notify__poll(nt), 0));
	cr_assert(eq(int, bt_notify__level(nt, ring, BT_NOTIFY_RING_UNREAD,
					   &lv), 0));
	cr_assert(eq(i64, lv, 0));

	/* A ring object without a reader: unread is the live span. */
	bt_notify__free(nt);
	nt = bt_notify__new(NULL);
	rr.reader = NULL;
	ring = bt_notify__add_ring(nt, &rr);
	cr_assert(eq(int, bt_notify__level(nt, ring, BT_NOTIFY_RING_UNREAD,
					   &lv), 0));
	cr_assert(eq(i64, lv, 5 * EV_SIZE));
	bt_kmes_reader__free(rd);
	bt_kmes_session__close(s);
}

Test(notify, ring_lost_bytes_and_events_when_the_producer_laps)
{
	const char *name = tu_name("ntl");
	struct bt_kmes_session *s = tu_create(name, 65536, 1);
	struct bt_notify_ring rr = { .sz = sizeof(rr), .session = name };
	struct bt_notify_watch w;
	unsigned char *map;
	int ring, lb, le, i;
	int64_t lv;

	ring = bt_notify__add_ring(nt, &rr);
	cr_assert(gt(int, ring, 0));
	w = wdesc(BT_NOTIFY_RING_LOST_EVENTS, BT_NOTIFY_EACH, 0, 1, UP);
	le = bt_notify__watch(nt, &w);
	w = wdesc(BT_NOTIFY_RING_LOST_BYTES, BT_NOTIFY_SUM, 0, 1, UP);
	lb = bt_notify__watch(nt, &w);
	cr_assert(gt(int, lb, 0));

	/* 327 * 200 = 65400 bytes fit in 64 KiB: nothing lost yet */
	for (i = 0; i < 327; i++)
		tu_emit_sized(s, 0, "t.ev", EV_SIZE);
	cr_assert(eq(int, bt_notify__poll(nt), 0));
	for (i = 0; i < 10; i++)
		tu_emit_sized(s, 0, "t.ev", EV_SIZE);
	cr_assert(eq(int, bt_notify__poll(nt), 2));

	map = tu_map_slot(name, 0, NULL);
	cr_assert(eq(int, bt_notify__level(nt, ring, BT_NOTIFY_RING_LOST_BYTES,
					   &lv), 0));
	cr_assert(eq(u64, (uint64_t)lv, tu_ld64(map, KMES_OFF_TAIL_POS)));
	cr_assert(gt(i64, lv, 0));
	cr_assert(eq(int, bt_notify__level(nt, ring,
					   BT_NOTIFY_RING_LOST_EVENTS, &lv),
		     0));
	cr_assert(eq(u64, (uint64_t)lv, tu_ld64(map, BT_KMES_XOFF_LOST) +
		     tu_ld64(map, BT_KMES_XOFF_DROPPED)));
	/* each lost event is EV_SIZE bytes overwritten */
	cr_assert(eq(u64, (uint64_t)lv * EV_SIZE,
		     tu_ld64(map, KMES_OFF_TAIL_POS)));
	cr_assert(eq(i64, info_of(le).last_level, lv));
	kmes_unmap(map, 65536);
	bt_kmes_session__close(s);
}

Test(notify, ring_rate_over_its_window)
{
	struct bt_notify_opts o = { .sz = sizeof(o), .rate_window_ms = 1000,
				    .now_ns = fake_clock };
	const char *name = tu_name("ntr");
	struct bt_kmes_session *s = tu_create(name, 65536, 1);
	struct bt_notify_ring rr = { .sz = sizeof(rr), .session = name };
	struct bt_notify_watch w;
	int ring, id, i;
	int64_t lv;

	bt_notify__free(nt);
	fake_ns = 5000000000ull;
	nt = bt_notify__new(&o);
	cr_assert(ne(ptr, nt, NULL));
	ring = bt_notify__add_ring(nt, &rr);	/* the window starts */
	w = wdesc(BT_NOTIFY_RING_RATE, BT_NOTIFY_ONE, ring, 40, UP);
	id = bt_notify__watch(nt, &w);
	cr_assert(gt(int, id, 0));

	for (i = 0; i < 50; i++)
		tu_emit_sized(s, 0, "t.ev", 100);
	fake_ns += 500000000ull;		/* half a window: no rate yet */
	cr_assert(eq(int, bt_notify__poll(nt), 0));
	cr_assert(eq(int, bt_notify__level(nt, ring, BT_NOTIFY_RING_RATE, &lv),
		     0));
	cr_assert(eq(i64, lv, 0));
	fake_ns += 500000000ull;		/* 50 events in 1 s */
	cr_assert(eq(int, bt_notify__poll(nt), 1));
	cr_assert(eq(i64, info_of(id).last_level, 50));

	for (i = 0; i < 30; i++)
		tu_emit_sized(s, 0, "t.ev", 100);
	fake_ns += 2000000000ull;		/* 30 events in 2 s: 15/s */
	cr_assert(eq(int, bt_notify__poll(nt), 0));
	cr_assert(eq(int, bt_notify__level(nt, ring, BT_NOTIFY_RING_RATE, &lv),
		     0));
	cr_assert(eq(i64, lv, 15));
	bt_kmes_session__close(s);
}

/* ---- Real levels: a tracer's charge over the sim backend ----------------- */

Test(notify, tracer_charge_crosses_on_request_and_release)
{
	struct bt_sim_opts so = { .sz = sizeof(so), .nr_cpus = 2,
				  .cap_ipc_lock = true };
	struct bt_pmu *pmu = bt_pmu__new_sim(&so);
	struct bt_ds_opts dso = { .sz = sizeof(dso), .nr_cpus = 2 };
	struct bt_ds *ds;
	struct bt_tracer_opts to = { .sz = sizeof(to), .uid = getuid(),
				     .pid = getpid(), .name = "nt",
				     .unlimited = true };
	struct bt_tracer *t;
	struct bt_ds_request req = {
		.sz = sizeof(req),
		.target = { .kind = BT_TARGET_CPU, .id = 0 },
		.facility = BT_FAC_PT, .aux_bytes = 512 * 1024,
		.mode = BT_MODE_SNAPSHOT,
	};
	struct bt_ds_view *v;
	struct bt_notify_watch w;
	int obj, up, down;
	int64_t lv;

	cr_assert(ne(ptr, pmu, NULL));
	ds = bt_ds__new(pmu, &dso);
	cr_assert(ne(ptr, ds, NULL));
	t = bt_ds__join(ds, &to);
	cr_assert(ne(ptr, t, NULL));

	obj = bt_notify__add_tracer(nt, t);
	cr_assert(gt(int, obj, 0));
	w = wdesc(BT_NOTIFY_TRACER_CHARGE, BT_NOTIFY_ONE, obj, 512 * 1024, UP);
	up = bt_notify__watch(nt, &w);
	w.th.flags = DOWN;
	down = bt_notify__watch(nt, &w);
	cr_assert(eq(int, bt_notify__poll(nt), 0));

	cr_assert(eq(int, bt_tracer__request(t, &req, &v), 0));
	/* header page + 64 KiB data + 512 KiB AUX (docs/allocator.md) */
	cr_assert(eq(u64, bt_tracer__charged(t), 593920));
	cr_assert(eq(int, bt_notify__poll(nt), 1));
	cr_assert(eq(i64, info_of(up).last_level, 593920));
	cr_assert(eq(int, bt_notify__poll(nt), 0));

	bt_ds_view__release(v);
	cr_assert(eq(int, bt_notify__poll(nt), 1));
	cr_assert(eq(u64, info_of(down).fired, 1));
	cr_assert(eq(i64, info_of(down).last_level, 0));
	cr_assert(eq(int, bt_notify__level(nt, obj, BT_NOTIFY_TRACER_CHARGE,
					   &lv), 0));
	cr_assert(eq(i64, lv, 0));

	cr_assert(eq(int, bt_notify__remove(nt, obj), 0));
	bt_tracer__leave(t);
	bt_ds__free(ds);
	bt_pmu__free(pmu);
}

/* ---- The background poller ----------------------------------------------- */

Test(notify, background_poller_notices_a_ring_level)
{
	const char *name = tu_name("ntb");
	struct bt_kmes_session *s = tu_create(name, 65536, 1);
	struct bt_notify_ring rr = { .sz = sizeof(rr), .session = name };
	int efd = eventfd(0, EFD_CLOEXEC), ring;
	struct bt_notify_watch w;
	struct pollfd pfd;
	uint64_t cnt;

	ring = bt_notify__add_ring(nt, &rr);
	w = wdesc(BT_NOTIFY_RING_UNREAD, BT_NOTIFY_ONE, ring, 3 * EV_SIZE, UP);
	w.th.sigev.sigev_notify = BT_SIGEV_EVENTFD;
	w.eventfd = efd;
	cr_assert(gt(int, bt_notify__watch(nt, &w), 0));
	cr_assert(eq(int, bt_notify__start(nt, 0), -EINVAL));
	cr_assert(eq(int, bt_notify__start(nt, 2), 0));
	cr_assert(eq(int, bt_notify__start(nt, 2), -EALREADY));

	for (int i = 0; i < 3; i++)
		tu_emit_sized(s, 0, "t.ev", EV_SIZE);
	pfd = (struct pollfd){ .fd = efd, .events = POLLIN };
	/* generous bound against a stuck poller, not a timing check */
	cr_assert(eq(int, poll(&pfd, 1, 30000), 1));
	cr_assert(eq(sz, (size_t)read(efd, &cnt, sizeof(cnt)), sizeof(cnt)));
	cr_assert(eq(u64, cnt, 1));
	cr_assert(eq(int, bt_notify__stop(nt), 0));
	cr_assert(eq(int, bt_notify__stop(nt), -EINVAL));
	close(efd);
	bt_kmes_session__close(s);
}

/* ---- Arguments ----------------------------------------------------------- */

Test(notify, invalid_arguments_give_exact_errors)
{
	int obj = bt_notify__add_level(nt, 0);
	int tasks = bt_notify__add_tasks(nt);
	struct bt_notify_ring rr = { .sz = sizeof(rr),
				     .session = "no-such-session-ntf" };
	struct bt_notify_opts o = { .sz = 1 };
	struct bt_notify_watch w;
	struct bt_notify_watch_info wi;
	int64_t lv;

	cr_assert(eq(ptr, bt_notify__new(&o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	cr_assert(eq(int, bt_notify__add_level(NULL, 0), -EINVAL));
	cr_assert(eq(int, bt_notify__add_tracer(nt, NULL), -EINVAL));
	cr_assert(eq(int, bt_notify__add_ring(nt, NULL), -EINVAL));
	cr_assert(eq(int, bt_notify__add_ring(nt, &rr), -ENOENT));
	rr.session = NULL;
	cr_assert(eq(int, bt_notify__add_ring(nt, &rr), -EINVAL));
	cr_assert(eq(int, bt_notify__set_level(nt, 999, 1), -EINVAL));
	cr_assert(eq(int, bt_notify__set_level(nt, tasks, 1), -ENOENT));
	cr_assert(eq(int, bt_notify__task_created(nt, obj, 5), -ENOENT));
	cr_assert(eq(int, bt_notify__task_created(nt, tasks, 0), -EINVAL));
	cr_assert(eq(int, bt_notify__level(nt, obj, BT_NOTIFY_TASKS, &lv),
		     -ENOENT));
	cr_assert(eq(int, bt_notify__level(nt, obj, 99, &lv), -EINVAL));
	cr_assert(eq(int, bt_notify__remove(nt, 0), -EINVAL));

	cr_assert(eq(int, bt_notify__watch(nt, NULL), -EINVAL));
	w = wdesc(BT_NOTIFY__KIND_COUNT, BT_NOTIFY_ONE, obj, 0, UP);
	cr_assert(eq(int, bt_notify__watch(nt, &w), -EINVAL));
	w = wdesc(BT_NOTIFY_GENERIC, 3, obj, 0, UP);
	cr_assert(eq(int, bt_notify__watch(nt, &w), -EINVAL));
	w = wdesc(BT_NOTIFY_GENERIC, BT_NOTIFY_ONE, obj, 0, LEVEL);
	cr_assert(eq(int, bt_notify__watch(nt, &w), -EINVAL));
	w = wdesc(BT_NOTIFY_GENERIC, BT_NOTIFY_ONE, obj, 0, UP | 0x10);
	cr_assert(eq(int, bt_notify__watch(nt, &w), -EINVAL));
	w = wdesc(BT_NOTIFY_GENERIC, BT_NOTIFY_ONE, 999, 0, UP);
	cr_assert(eq(int, bt_notify__watch(nt, &w), -EINVAL));
	w = wdesc(BT_NOTIFY_TASKS, BT_NOTIFY_ONE, obj, 0, UP);
	cr_assert(eq(int, bt_notify__watch(nt, &w), -ENOENT));
	w = wdesc(BT_NOTIFY_GENERIC, BT_NOTIFY_ONE, obj, 0, UP);
	w.sz = 2;
	cr_assert(eq(int, bt_notify__watch(nt, &w), -EINVAL));
	w = wdesc(BT_NOTIFY_GENERIC, BT_NOTIFY_ONE, obj, 0, UP);
	w.th.sigev.sigev_notify = 77;
	cr_assert(eq(int, bt_notify__watch(nt, &w), -EINVAL));
	w.th.sigev.sigev_notify = SIGEV_SIGNAL;
	w.th.sigev.sigev_signo = 0;
	cr_assert(eq(int, bt_notify__watch(nt, &w), -EINVAL));
	w.th.sigev.sigev_signo = SIGRTMAX + 1;
	cr_assert(eq(int, bt_notify__watch(nt, &w), -EINVAL));
	w.th.sigev.sigev_signo = SIGUSR1;
	w.pid = -1;
	cr_assert(eq(int, bt_notify__watch(nt, &w), -EINVAL));
	w.pid = 0;
	w.th.sigev.sigev_notify = SIGEV_THREAD_ID;
	w.th.sigev.sigev_notify_thread_id = 0;
	cr_assert(eq(int, bt_notify__watch(nt, &w), -EINVAL));
	w.th.sigev.sigev_notify = SIGEV_THREAD;
	w.th.sigev.sigev_notify_function = NULL;
	cr_assert(eq(int, bt_notify__watch(nt, &w), -EINVAL));
	w.th.sigev.sigev_notify = BT_SIGEV_EVENTFD;
	w.eventfd = -1;
	cr_assert(eq(int, bt_notify__watch(nt, &w), -EINVAL));
	w.eventfd = 1000000;
	cr_assert(eq(int, bt_notify__watch(nt, &w), -EBADF));

	cr_assert(eq(int, bt_notify__unwatch(nt, 1), -EINVAL));
	cr_assert(eq(int, bt_notify__rearm(nt, 1), -EINVAL));
	cr_assert(eq(int, bt_notify__watch_info(nt, 1, &wi), -EINVAL));
	cr_assert(eq(int, bt_notify__poll(NULL), -EINVAL));
	cr_assert(eq(int, bt_notify__stop(nt), -EINVAL));
	cr_assert(eq(int, bt_notify__flush(NULL), -EINVAL));
	bt_notify__free(NULL);
}
