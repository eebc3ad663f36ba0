// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail kmes emit: be a session's producer for a while and emit
 * self-checking test events, one thread per ring with --all-slots.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <btrail/errno.h>
#include <btrail/kmes.h>

#include "btrail.h"

#define SLOT_CURRENT	UINT32_MAX

struct emit_job {
	struct bt_kmes_session *s;
	uint32_t slot;			/* SLOT_CURRENT: the CPU we run on */
	bool pin;
	uint64_t count;
	uint32_t size;
	uint32_t batch;
	const char *type;
	bool trusted;
	uint64_t seed;
	_Atomic uint64_t done;		/* events emitted, for progress */
	int err;			/* errno of the failure that stopped it */
	bool dropped;			/* --trusted: the ring dropped events */
	uint64_t err_at;
	pthread_t tid;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void *emit_thread(void *arg)
{
	struct emit_job *j = arg;
	struct kmes_emit_entry e[KMES_BATCH_MAX];
	uint64_t rng = j->seed | 1;
	uint16_t tlen = (uint16_t)strlen(j->type);
	unsigned char *buf;

	if (j->pin && j->slot != SLOT_CURRENT) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(j->slot, &set);
		/* An offline CPU cannot be joined: emit from anywhere. */
		sched_setaffinity(0, sizeof(set), &set);
	}
	buf = malloc((size_t)j->size * j->batch);
	if (!buf) {
		j->err = ENOMEM;
		return NULL;
	}
	while (!stop && atomic_load(&j->done) < j->count) {
		uint64_t left = j->count - atomic_load(&j->done);
		uint32_t n = left < j->batch ? (uint32_t)left : j->batch;
		uint32_t slot = j->slot, emitted = 0;
		uint64_t seq;
		int ret;

		if (slot == SLOT_CURRENT) {
			int cpu = sched_getcpu();

			slot = cpu < 0 ? 0 : (uint32_t)cpu;
			if (slot >= bt_kmes_session__slots(j->s))
				slot = 0;
		}
		/* One producer per session: the next sequence is ours to know. */
		seq = bt_kmes_session__last_sequence(j->s, slot) + 1;
		for (uint32_t i = 0; i < n; i++) {
			unsigned char *p = buf + (size_t)i * j->size;

			bt_kmes_payload_fill(p, j->size, seq + i, &rng);
			e[i].event_type = j->type;
			e[i].event_type_len = tlen;
			e[i].payload = p;
			e[i].payload_len = j->size;
		}
		if (j->trusted) {
			ret = bt_kmes_session__emit_trusted(j->s, slot, NULL, e, n);
			if (ret >= 0) {
				emitted = (uint32_t)ret;
				if (emitted < n) {
					/* Dropped, sequence spent: too big. */
					j->dropped = true;
					ret = -ENOSPC;
				}
			}
		} else if (n == 1) {
			ret = kmes_emit(j->s, slot, j->type, tlen, buf, j->size);
			emitted = ret == 0;
			if (ret < 0)
				ret = -errno;
		} else {
			ret = kmes_emit_batch(j->s, slot, e, n, &emitted);
			if (ret < 0)
				ret = -errno;
		}
		atomic_fetch_add(&j->done, emitted);
		if (ret < 0) {
			j->err = -ret;
			j->err_at = atomic_load(&j->done);
			break;
		}
	}
	free(buf);
	return NULL;
}

static int emit_usage(FILE *f)
{
	fprintf(f,
		"Usage: %s kmes emit NAME --count N [OPTIONS]\n"
		"\n"
		"Become NAME's producer and emit N self-checking events (msgpack\n"
		"{s: sequence, c: checksum, p: padding}) per ring.\n"
		"\n"
		"  -n, --count N       events per ring (k, M, G suffixes: 1000s)\n"
		"  -s, --size BYTES    payload size (default 64; under 23 bytes the\n"
		"                      payload carries no checksum)\n"
		"  -t, --type TYPE     event type (default bt.test)\n"
		"  -b, --batch K       kmes_emit_batch of K events, 1..256 (default 1)\n"
		"      --slot S        emit on ring S (default: the CPU we run on;\n"
		"                      ring 0 of a per-task session)\n"
		"  -a, --all-slots     one thread per ring (pinned to its CPU when\n"
		"                      the rings are per CPU)\n"
		"      --trusted       kernel-emitter path: no UTF-8/msgpack checks,\n"
		"                      oversized events dropped with a sequence gap\n"
		"      --seed N        padding seed (default 1)\n"
		"\n"
		"Prints events, bytes and rate; exit status 1 when an emit failed.\n",
		bin_name);
	return f == stdout ? BT_EXIT_OK : BT_EXIT_USAGE;
}

static void progress(struct emit_job *jobs, uint32_t n, uint64_t total,
		     double t0, bool last)
{
	uint64_t done = 0;
	double dt = now_s() - t0;

	for (uint32_t i = 0; i < n; i++)
		done += atomic_load(&jobs[i].done);
	fprintf(stderr, "\r%s: emitted %" PRIu64 "/%" PRIu64 " events "
		"(%.2f M events/s)%s", bin_name, done, total,
		dt > 0 ? (double)done / dt / 1e6 : 0.0, last ? "\n" : "");
}

int kmes_do_emit(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "count",     required_argument, NULL, 'n' },
		{ "size",      required_argument, NULL, 's' },
		{ "type",      required_argument, NULL, 't' },
		{ "batch",     required_argument, NULL, 'b' },
		{ "slot",      required_argument, NULL, 'S' },
		{ "all-slots", no_argument,       NULL, 'a' },
		{ "trusted",   no_argument,       NULL, 'T' },
		{ "seed",      required_argument, NULL, 'R' },
		{ "help",      no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t count = 0, size = 64, batch = 1, slot = SLOT_CURRENT, seed = 1;
	uint64_t total = 0, bytes, done = 0;
	const char *type = "bt.test";
	bool all = false, trusted = false, have_count = false, per_task;
	struct bt_kmes_session *s;
	struct emit_job *jobs;
	uint32_t nj;
	double t0, dt;
	int c, status = BT_EXIT_OK;

	while ((c = getopt_long(argc, argv, "n:s:t:b:ah", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_count(optarg, &count) < 0)
				goto bad;
			have_count = true;
			break;
		case 's':
			if (parse_size(optarg, &size) < 0 || size == 0 ||
			    size > UINT32_MAX)
				goto bad;
			break;
		case 't':
			type = optarg;
			if (!*type || strlen(type) > UINT16_MAX)
				goto bad;
			break;
		case 'b':
			if (parse_count(optarg, &batch) < 0 || batch < 1 ||
			    batch > KMES_BATCH_MAX)
				goto bad;
			break;
		case 'S':
			if (parse_count(optarg, &slot) < 0 || slot >= UINT32_MAX)
				goto bad;
			break;
		case 'a':
			all = true;
			break;
		case 'T':
			trusted = true;
			break;
		case 'R':
			if (parse_count(optarg, &seed) < 0)
				goto bad;
			break;
		case 'h':
			return emit_usage(stdout);
		default:
			return emit_usage(stderr);
		}
	}
	if (optind != argc - 1 || !have_count)
		return emit_usage(stderr);

	s = bt_kmes_session__open(argv[optind], NULL);
	if (!s) {
		err_msg("kmes emit: cannot open session '%s' as its producer: %s",
			argv[optind], bt_strerror(errno));
		return BT_EXIT_FAIL;
	}
	per_task = bt_kmes_session__kind(s) == BT_KMES_RING_TASK;
	if (bt_kmes_session__slots(s) == 0) {
		err_msg("kmes emit: %s has no rings yet", argv[optind]);
		bt_kmes_session__close(s);
		return BT_EXIT_FAIL;
	}
	nj = all ? bt_kmes_session__slots(s) : 1;
	if (nj == 0 || (!all && slot != SLOT_CURRENT &&
			slot >= bt_kmes_session__slots(s))) {
		err_msg("kmes emit: %s has %u rings; no slot %" PRIu64,
			argv[optind], bt_kmes_session__slots(s),
			slot == SLOT_CURRENT ? 0 : slot);
		bt_kmes_session__close(s);
		return BT_EXIT_USAGE;
	}
	jobs = calloc(nj, sizeof(*jobs));
	if (!jobs) {
		bt_kmes_session__close(s);
		return BT_EXIT_FAIL;
	}
	{
		struct sigaction sa = { .sa_handler = on_signal };

		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}

	t0 = now_s();
	for (uint32_t i = 0; i < nj; i++) {
		jobs[i] = (struct emit_job){
			.s = s,
			.slot = all ? i : slot == SLOT_CURRENT && per_task ? 0 :
				(uint32_t)slot,
			.pin = all && !per_task,
			.count = count,
			.size = (uint32_t)size,
			.batch = (uint32_t)batch,
			.type = type,
			.trusted = trusted,
			.seed = seed + i,
		};
		total += count;
		if (pthread_create(&jobs[i].tid, NULL, emit_thread, &jobs[i])) {
			err_msg("kmes emit: cannot start a thread");
			stop = 1;
			nj = i;
			status = BT_EXIT_FAIL;
			break;
		}
	}
	if (progress_tty()) {
		for (;;) {
			struct timespec ts = { 0, 250 * 1000000L };
			uint64_t d = 0;
			bool busy = false;

			nanosleep(&ts, NULL);
			for (uint32_t i = 0; i < nj; i++) {
				d = atomic_load(&jobs[i].done);
				busy |= d < count && !jobs[i].err;
			}
			if (!busy || stop)
				break;
			progress(jobs, nj, total, t0, false);
		}
	}
	for (uint32_t i = 0; i < nj; i++)
		pthread_join(jobs[i].tid, NULL);
	dt = now_s() - t0;
	if (progress_tty())
		progress(jobs, nj, total, t0, true);

	for (uint32_t i = 0; i < nj; i++) {
		done += atomic_load(&jobs[i].done);
		if (jobs[i].dropped) {
			err_msg("kmes emit: ring %u: events dropped after %" PRIu64
				": larger than half the ring's capacity (their "
				"sequence numbers are spent)",
				jobs[i].slot == SLOT_CURRENT ? 0 : jobs[i].slot,
				jobs[i].err_at);
			status = BT_EXIT_FAIL;
		} else if (jobs[i].err) {
			err_msg("kmes emit: ring %u: event %" PRIu64 " refused: %s",
				jobs[i].slot == SLOT_CURRENT ? 0 : jobs[i].slot,
				jobs[i].err_at + 1, bt_strerror(jobs[i].err));
			status = BT_EXIT_FAIL;
		}
	}
	bytes = done * (KMES_HDR_FIXED + strlen(type) + size);
	printf("emitted %" PRIu64 " events (%" PRIu64 " bytes) to %u ring%s in "
	       "%.3f s: %.0f events/s, %.1f MB/s\n", done, bytes, nj,
	       nj == 1 ? "" : "s", dt, dt > 0 ? (double)done / dt : 0.0,
	       dt > 0 ? (double)bytes / dt / 1e6 : 0.0);
	if (stop && status == BT_EXIT_OK && done < total)
		status = BT_EXIT_FAIL;
	free(jobs);
	bt_kmes_session__close(s);
	return status;

bad:
	err_msg("kmes emit: bad value '%s' (see --help)", optarg);
	return BT_EXIT_USAGE;
}
