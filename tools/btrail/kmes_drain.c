// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail kmes drain: a KMES consumer on the command line. Prints events
 * (or periodic rates), then per-ring accounting: events, sequence gaps,
 * lapping, torn reads, corruption, generations followed, and the
 * producer's dropped and lost counters.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include <btrail/errno.h>
#include <btrail/kmes.h>

#include "btrail.h"
#include "common/mpcheck.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/*
 * Drained, a follower naps this long before asking for a wake: the events
 * written meanwhile cost the producer nothing, where a wake per event would
 * cost it a system call each (bt_kmes_reader_opts.linger_us).
 */
#define DRAIN_LINGER_US	200u

struct drain_opts {
	bool follow;
	bool quiet;
	bool payload;
	bool verify;
	double interval;
	double timeout;
	double idle;
	uint64_t count;
};

static const char *status_name(uint32_t st)
{
	switch (st) {
	case BT_KMES_CPU_ONLINE:
		return "online";
	case BT_KMES_CPU_OFFLINE:
		return "offline";
	case BT_KMES_CPU_REMOVED:
		return "removed";
	default:
		return "?";
	}
}

static void print_time(uint64_t ns)
{
	time_t sec = (time_t)(ns / 1000000000ull);
	struct tm tm;
	char buf[32];

	gmtime_r(&sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	printf("%s.%09" PRIu64 "Z", buf, ns % UINT64_C(1000000000));
}

static void print_event(const struct bt_kmes_event *ev, bool payload)
{
	printf("slot %u seq %" PRIu64 " gen %" PRIu64 " ", ev->slot,
	       ev->sequence, ev->generation);
	print_time(ev->timestamp);
	printf(" cpu %u origin %u %.*s %u bytes", ev->cpu_id, ev->origin_class,
	       (int)ev->type_len, ev->type, ev->event_size);
	if (ev->gap)
		printf(" gap %" PRIu64, ev->gap);
	if (payload) {
		msgpack_unpacked up;
		size_t off = 0;

		msgpack_unpacked_init(&up);
		/* Claims checked first: msgpack-c allocates what they say. */
		if (ev->payload_len &&
		    bt_mp_claims_fit(ev->payload, ev->payload_len) &&
		    msgpack_unpack_next(&up, ev->payload, ev->payload_len,
					&off) == MSGPACK_UNPACK_SUCCESS) {
			fputc(' ', stdout);
			msgpack_object_print(stdout, up.data);
		} else {
			printf(" <payload is not msgpack>");
		}
		msgpack_unpacked_destroy(&up);
	}
	fputc('\n', stdout);
}

static void print_rates(struct bt_kmes_reader *r, uint64_t *prev_ev,
			uint64_t *prev_bytes, double dt, double since)
{
	uint32_t n = bt_kmes_reader__slots(r);

	for (uint32_t i = 0; i < n; i++) {
		struct bt_kmes_slot_stats st;

		if (bt_kmes_reader__stats(r, i, &st) < 0)
			continue;
		printf("%7.1fs slot %u: %9.0f events/s %8.2f MB/s  last seq %"
		       PRIu64 "  missed %" PRIu64 "  lapped %" PRIu64
		       "  generation %" PRIu64 "  %s\n", since, st.slot,
		       (double)(st.events - prev_ev[i]) / dt,
		       (double)(st.bytes - prev_bytes[i]) / dt / 1e6,
		       st.last_sequence, st.missed, st.lapped, st.generation,
		       status_name(st.status));
		prev_ev[i] = st.events;
		prev_bytes[i] = st.bytes;
	}
	fflush(stdout);
}

static bool print_summary(struct bt_kmes_reader *r, uint64_t bad_payloads)
{
	uint32_t n = bt_kmes_reader__slots(r);
	uint64_t events = 0, missed = 0, corrupt = 0;

	printf("%-5s %10s %12s %21s %8s %6s %6s %5s %7s %4s %8s %8s %8s %s\n",
	       "slot", "events", "bytes", "sequences", "missed", "gaps",
	       "lapped", "torn", "corrupt", "gen", "reattach", "dropped",
	       "lost", "status");
	for (uint32_t i = 0; i < n; i++) {
		struct bt_kmes_slot_stats st;
		char seqs[48];

		if (bt_kmes_reader__stats(r, i, &st) < 0)
			continue;
		if (st.events)
			snprintf(seqs, sizeof(seqs), "%" PRIu64 "..%" PRIu64,
				 st.first_sequence, st.last_sequence);
		else
			snprintf(seqs, sizeof(seqs), "-");
		printf("%-5u %10" PRIu64 " %12" PRIu64 " %21s %8" PRIu64
		       " %6" PRIu64 " %6" PRIu64 " %5" PRIu64 " %7" PRIu64
		       " %4" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
		       " %s%s\n", st.slot, st.events, st.bytes, seqs, st.missed,
		       st.gaps, st.lapped, st.torn, st.corrupt, st.generation,
		       st.reattached, st.dropped, st.lost, status_name(st.status),
		       st.alive ? "" : " (session gone)");
		events += st.events;
		missed += st.missed;
		corrupt += st.corrupt;
	}
	printf("total: %" PRIu64 " events, %" PRIu64 " missed, %" PRIu64
	       " corrupt", events, missed, corrupt);
	if (bad_payloads != UINT64_MAX)
		printf(", %" PRIu64 " payloads failed verification", bad_payloads);
	printf("\n");
	return corrupt == 0 && (bad_payloads == UINT64_MAX || bad_payloads == 0);
}

static int drain_usage(FILE *f)
{
	fprintf(f,
		"Usage: %s kmes drain NAME [OPTIONS]\n"
		"\n"
		"Attach to NAME's rings and print their events, oldest first,\n"
		"then a table of what each ring gave: events, sequence gaps\n"
		"(missed), lapping, torn reads, corruption, the generation and\n"
		"re-attaches, and the producer's dropped/lost counters.\n"
		"\n"
		"  -f, --follow         keep reading until interrupted (or --timeout)\n"
		"      --slot S         read only ring S (default: all, and new ones)\n"
		"      --from-now       skip the events already in the rings\n"
		"  -q, --quiet          no line per event\n"
		"  -p, --payload        print each payload (decoded msgpack)\n"
		"  -i, --interval SEC   print per-ring rates every SEC seconds\n"
		"  -n, --count N        stop after N events\n"
		"      --timeout SEC    stop after SEC seconds\n"
		"      --idle SEC       with --follow: stop after SEC without events\n"
		"      --linger US      with --follow: when drained, nap US microseconds\n"
		"                       before asking the producer for a wake\n"
		"                       (default 200; 0: ask at once)\n"
		"      --verify         check self-checking payloads of kmes emit\n"
		"\n"
		"Exit status: 0; 1 on failure; 3 when corrupt events were seen or\n"
		"payloads failed --verify.\n", bin_name);
	return f == stdout ? BT_EXIT_OK : BT_EXIT_USAGE;
}

static int parse_seconds(const char *s, double *out)
{
	char *end;

	*out = strtod(s, &end);
	return *end || *out < 0 ? -1 : 0;
}

int kmes_do_drain(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "follow",   no_argument,       NULL, 'f' },
		{ "slot",     required_argument, NULL, 'S' },
		{ "from-now", no_argument,       NULL, 'N' },
		{ "quiet",    no_argument,       NULL, 'q' },
		{ "payload",  no_argument,       NULL, 'p' },
		{ "interval", required_argument, NULL, 'i' },
		{ "count",    required_argument, NULL, 'n' },
		{ "timeout",  required_argument, NULL, 'T' },
		{ "idle",     required_argument, NULL, 'I' },
		{ "verify",   no_argument,       NULL, 'V' },
		{ "linger",   required_argument, NULL, 'L' },
		{ "help",     no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bt_kmes_reader_opts ro = {
		.sz = sizeof(ro), .linger_us = DRAIN_LINGER_US,
	};
	struct drain_opts o = { 0 };
	uint64_t *prev_ev = NULL, *prev_bytes = NULL, seen = 0, bad = 0, slot;
	uint64_t us;
	uint32_t prev_n = 0;
	struct bt_kmes_reader *r;
	struct bt_kmes_event ev;
	struct sigaction sa = { .sa_handler = on_signal };
	double t0, last_tick, last_event;
	int c, ret, status = BT_EXIT_OK;

	while ((c = getopt_long(argc, argv, "fqpi:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o.follow = true;
			break;
		case 'S':
			if (parse_count(optarg, &slot) < 0 || slot >= UINT32_MAX)
				goto bad;
			ro.one_slot = true;
			ro.slot = (uint32_t)slot;
			break;
		case 'N':
			ro.from_now = true;
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'p':
			o.payload = true;
			break;
		case 'i':
			if (parse_seconds(optarg, &o.interval) < 0 ||
			    o.interval <= 0)
				goto bad;
			break;
		case 'n':
			if (parse_count(optarg, &o.count) < 0)
				goto bad;
			break;
		case 'T':
			if (parse_seconds(optarg, &o.timeout) < 0)
				goto bad;
			break;
		case 'I':
			if (parse_seconds(optarg, &o.idle) < 0)
				goto bad;
			break;
		case 'V':
			o.verify = true;
			break;
		case 'L':
			if (parse_count(optarg, &us) < 0 || us > 1000000)
				goto bad;
			ro.linger_us = (uint32_t)us;
			break;
		case 'h':
			return drain_usage(stdout);
		default:
			return drain_usage(stderr);
		}
	}
	if (optind != argc - 1)
		return drain_usage(stderr);

	r = bt_kmes_reader__new(argv[optind], &ro);
	if (!r) {
		int err = errno;

		err_msg("kmes drain: cannot attach to '%s': %s%s", argv[optind],
			bt_strerror(err), err == EINVAL && ro.one_slot ?
			" (no such slot)" : err == EACCES ?
			" (not allowed: the session's owner or group only)" : "");
		return BT_EXIT_FAIL;
	}
	sigaction(SIGINT, &sa, NULL);	/* no SA_RESTART: the wait returns */
	sigaction(SIGTERM, &sa, NULL);
	t0 = last_tick = last_event = now_s();

	while (!stop) {
		double now;

		ret = bt_kmes_reader__next(r, &ev);
		if (ret > 0) {
			seen++;
			if (o.verify) {
				uint64_t pseq;
				int v = bt_kmes_payload_check(ev.payload,
							      ev.payload_len, &pseq);

				if (v < 0 || (v > 0 && pseq != ev.sequence)) {
					bad++;
					err_msg("kmes drain: slot %u seq %" PRIu64
						": payload %s", ev.slot,
						ev.sequence, v < 0 ?
						"fails its checksum" :
						"carries another sequence");
				}
			}
			if (!o.quiet && !o.interval)
				print_event(&ev, o.payload);
			if (o.count && seen >= o.count)
				break;
			if ((seen & 1023) != 0)
				continue;	/* check the clock now and then */
		} else if (ret == -BT_ERRNO_CORRUPT) {
			continue;	/* logged and counted by the reader */
		} else if (ret < 0) {
			err_msg("kmes drain: %s", bt_strerror(ret));
			status = BT_EXIT_FAIL;
			break;
		}
		now = now_s();
		if (ret > 0)
			last_event = now;
		if (o.interval && now - last_tick >= o.interval) {
			uint32_t n = bt_kmes_reader__slots(r);

			if (n > prev_n) {	/* rings were added */
				uint64_t *a = realloc(prev_ev, n * sizeof(*a));
				uint64_t *b = a ? realloc(prev_bytes,
							  n * sizeof(*b)) : NULL;

				if (a)
					prev_ev = a;
				if (!a || !b)
					break;
				prev_bytes = b;
				memset(prev_ev + prev_n, 0,
				       (n - prev_n) * sizeof(*a));
				memset(prev_bytes + prev_n, 0,
				       (n - prev_n) * sizeof(*b));
				prev_n = n;
			}
			print_rates(r, prev_ev, prev_bytes, now - last_tick,
				    now - t0);
			last_tick = now;
		}
		if (o.timeout && now - t0 >= o.timeout)
			break;
		if (ret > 0)
			continue;
		if (!o.follow)
			break;
		if (o.idle && now - last_event >= o.idle)
			break;
		bt_kmes_reader__wait(r, 200);
	}
	if (!print_summary(r, o.verify ? bad : UINT64_MAX) &&
	    status == BT_EXIT_OK)
		status = BT_EXIT_DATA;
	free(prev_ev);
	free(prev_bytes);
	bt_kmes_reader__free(r);
	return status;

bad:
	err_msg("kmes drain: bad value '%s' (see --help)", optarg);
	return BT_EXIT_USAGE;
}
