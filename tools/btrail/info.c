// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail info: what a bundle holds. The machine, clock and trigger come
 * from btrail.json; the per-stream counts are made by reading every
 * event with the bundle reader, so info also checks the bundle whole.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include <btrail/bundle.h>
#include <btrail/errno.h>
#include <btrail/events.h>

#include "btrail.h"

#define NTYPES	(BT_EVID__COUNT + 1)	/* the table, then kmes.raw */

struct scount {
	uint64_t n[NTYPES];
	uint64_t events, missed, gaps;
	uint64_t first_ts, last_ts;
	int err;
};

static int usage(FILE *f, int status)
{
	fprintf(f,
		"Usage: %s info [--json] BUNDLE\n"
		"\n"
		"Say what bundle BUNDLE holds: when it was taken, on what\n"
		"machine, with which facility, the events of each stream by\n"
		"type, losses, the trigger, and the images with build-ids.\n"
		"Every event is read, so a damaged bundle is reported.\n"
		"\n"
		"  --json   print one JSON object instead\n", bin_name);
	return status;
}

static const char *type_name(size_t i)
{
	return i < BT_EVID__COUNT ? bt_event_types(NULL)[i].name : "kmes.raw";
}

static json_object *get(json_object *o, const char *k)
{
	json_object *v = NULL;

	if (!o || !json_object_object_get_ex(o, k, &v))
		return NULL;
	return v;
}

/* An array member, or NULL: btrail.json is input, any key may be odd. */
static json_object *get_array(json_object *o, const char *k)
{
	json_object *v = get(o, k);

	return v && json_object_is_type(v, json_type_array) ? v : NULL;
}

static json_object *get_object(json_object *o, const char *k)
{
	json_object *v = get(o, k);

	return v && json_object_is_type(v, json_type_object) ? v : NULL;
}

static const char *gets(json_object *o, const char *k, const char *def)
{
	json_object *v = get(o, k);

	return v && json_object_is_type(v, json_type_string) ?
	       json_object_get_string(v) : def;
}

static void fmt_time(uint64_t ns, char *s, size_t cap)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;

	if (!ns || !gmtime_r(&t, &tm)) {
		snprintf(s, cap, "-");
		return;
	}
	strftime(s, cap, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(s + strlen(s), cap - strlen(s), ".%06" PRIu64 " UTC",
		 ns % 1000000000u / 1000u);
}

/* What the event types say about the facility (bundles do not name it). */
static const char *facility(const struct scount *tot)
{
	if (tot->n[BT_EVID_PT])
		return "pt or pt-emu (PT packets)";
	if (tot->n[BT_EVID_BRANCH])
		return "bts or step (branch records)";
	if (tot->n[BT_EVID_LBR])
		return "lbr (branch stacks)";
	if (tot->n[BT_EVID_PEBS])
		return "pebs (precise samples)";
	return "unknown (no trace events)";
}

static void count_stream(struct bt_bundle *b, uint32_t i, struct scount *c)
{
	struct bt_bundle_event ev;
	int r;

	while ((r = bt_bundle__next(b, i, &ev)) == 1) {
		c->n[ev.id < BT_EVID__COUNT ? ev.id : BT_EVID__COUNT]++;
		if (!c->events)
			c->first_ts = ev.timestamp;
		c->last_ts = ev.timestamp;
		c->events++;
		c->missed += ev.gap;
		if (ev.gap && c->events > 1)
			c->gaps++;
	}
	c->err = r;
}

static void print_text(const char *dir, struct bt_bundle *b, json_object *j,
		       const struct scount *sc, const struct scount *tot)
{
	json_object *m = get_object(j, "machine");
	json_object *t = get_object(j, "trigger");
	json_object *clk = get_object(j, "clock");
	json_object *imgs = get_array(j, "images");
	json_object *rings = get_array(j, "rings");
	json_object *caps = get_object(m, "pt_caps");
	uint64_t first = 0, last = 0;
	char a[64], z[64];

	for (uint32_t i = 0; i < bt_bundle__streams(b); i++) {
		if (!sc[i].events)
			continue;
		if (!first || sc[i].first_ts < first)
			first = sc[i].first_ts;
		if (sc[i].last_ts > last)
			last = sc[i].last_ts;
	}
	fmt_time(first, a, sizeof(a));
	fmt_time(last, z, sizeof(z));
	printf("bundle:    %s (%s-endian, uuid %s)\n", dir,
	       bt_bundle__big_endian(b) ? "big" : "little",
	       gets(j, "uuid", "?"));
	printf("session:   %s\n", gets(j, "session", "?"));
	printf("when:      %s .. %s\n", a, z);
	printf("machine:   %s family %d model %d stepping %d (%s)\n",
	       gets(m, "vendor", "?"),
	       json_object_get_int(get(m, "family")),
	       json_object_get_int(get(m, "model")),
	       json_object_get_int(get(m, "stepping")),
	       gets(m, "model_name", "?"));
	printf("pt caps:   %s\n", caps ? json_object_to_json_string_ext(caps,
	       JSON_C_TO_STRING_PLAIN) : "none (no intel_pt)");
	printf("facility:  %s\n", facility(tot));
	if (clk)
		printf("clock:     tsc_hz %" PRIu64 " time_zero %" PRIu64
		       " time_mult %" PRIu64 " time_shift %" PRIu64 "\n",
		       (uint64_t)json_object_get_uint64(get(clk, "tsc_hz")),
		       (uint64_t)json_object_get_uint64(get(clk, "time_zero")),
		       (uint64_t)json_object_get_uint64(get(clk, "time_mult")),
		       (uint64_t)json_object_get_uint64(get(clk,
							    "time_shift")));
	else
		printf("clock:     none (no bt.clock event)\n");
	if (t && json_object_get_int(get(t, "signo")))
		printf("trigger:   %s %s (%d) code %d addr %s ip %s pid %d "
		       "tid %d\n", gets(t, "reason", "?"),
		       gets(t, "signal", "-"),
		       json_object_get_int(get(t, "signo")),
		       json_object_get_int(get(t, "code")),
		       gets(t, "addr", "?"), gets(t, "ip", "?"),
		       json_object_get_int(get(t, "pid")),
		       json_object_get_int(get(t, "tid")));
	else if (t)	/* exit, stop, request, notifier: no signal */
		printf("trigger:   %s pid %d tid %d\n",
		       gets(t, "reason", "?"),
		       json_object_get_int(get(t, "pid")),
		       json_object_get_int(get(t, "tid")));
	else
		printf("trigger:   none\n");
	printf("streams:   %u, %" PRIu64 " events\n", bt_bundle__streams(b),
	       tot->events);
	for (uint32_t i = 0; i < bt_bundle__streams(b); i++) {
		struct bt_bundle_stream_info si;
		json_object *r = NULL;
		uint64_t lost = 0, dropped = 0;

		bt_bundle__stream_info(b, i, &si);
		for (size_t k = 0; rings && k < json_object_array_length(rings);
		     k++) {
			json_object *x = json_object_array_get_idx(rings, k);

			if ((uint64_t)json_object_get_int64(get(x, "slot")) ==
			    si.slot)
				r = x;
		}
		if (r) {
			lost = json_object_get_uint64(get(r, "lost"));
			dropped = json_object_get_uint64(get(r, "dropped"));
		}
		printf("  stream_%u  %s%s%u  events %" PRIu64 "  missed %"
		       PRIu64 " (%" PRIu64 " gaps)  lost %" PRIu64
		       "  dropped %" PRIu64 "%s\n", si.slot,
		       si.kind ? "task" : "cpu", si.kind ? " tid " : " ",
		       si.kind ? si.tid : si.cpu_id, sc[i].events,
		       sc[i].missed, sc[i].gaps, lost, dropped,
		       sc[i].err < 0 ? "  DAMAGED" : "");
		for (size_t k = 0; k < NTYPES; k++)
			if (sc[i].n[k])
				printf("      %-12s %" PRIu64 "\n",
				       type_name(k), sc[i].n[k]);
	}
	printf("images:    %zu%s\n", imgs ? json_object_array_length(imgs) : 0,
	       get(j, "images_dir") ? " (binaries in images/)" : "");
	for (size_t k = 0; imgs && k < json_object_array_length(imgs); k++) {
		json_object *im = json_object_array_get_idx(imgs, k);

		printf("  %s  build-id %s%s%s\n", gets(im, "path", "?"),
		       gets(im, "build_id", "none"),
		       get(im, "copy") ? "  copy " : "",
		       gets(im, "copy", ""));
	}
}

static void print_json(const char *dir, struct bt_bundle *b, json_object *j,
		       const struct scount *sc, const struct scount *tot)
{
	json_object *o = json_object_new_object(), *ss;

	json_object_object_add(o, "bundle", json_object_new_string(dir));
	json_object_object_add(o, "facility",
			       json_object_new_string(facility(tot)));
	json_object_object_add(o, "events",
			       json_object_new_uint64(tot->events));
	ss = json_object_new_array();
	for (uint32_t i = 0; i < bt_bundle__streams(b); i++) {
		json_object *s = json_object_new_object(), *by;
		struct bt_bundle_stream_info si;

		bt_bundle__stream_info(b, i, &si);
		json_object_object_add(s, "slot",
				       json_object_new_int64(si.slot));
		json_object_object_add(s, "events",
				       json_object_new_uint64(sc[i].events));
		json_object_object_add(s, "missed",
				       json_object_new_uint64(sc[i].missed));
		json_object_object_add(s, "gaps",
				       json_object_new_uint64(sc[i].gaps));
		by = json_object_new_object();
		for (size_t k = 0; k < NTYPES; k++)
			if (sc[i].n[k])
				json_object_object_add(by, type_name(k),
					json_object_new_uint64(sc[i].n[k]));
		json_object_object_add(s, "by_type", by);
		json_object_object_add(s, "error", sc[i].err < 0 ?
			json_object_new_string(bt_strerror(sc[i].err)) : NULL);
		json_object_array_add(ss, s);
	}
	json_object_object_add(o, "streams", ss);
	json_object_object_add(o, "btrail_json", json_object_get(j));
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
					    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

int do_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL,   0,           NULL, 0 },
	};
	struct scount *sc, tot = { 0 };
	struct bt_bundle *b;
	json_object *j;
	bool as_json = false, damaged = false;
	int c, err;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			as_json = true;
			break;
		case 'h':
			return usage(stdout, BT_EXIT_OK);
		default:
			return usage(stderr, BT_EXIT_USAGE);
		}
	}
	if (optind + 1 != argc)
		return usage(stderr, BT_EXIT_USAGE);
	err = bt_bundle__open(argv[optind], &b);
	if (err) {
		err_msg("info: %s: %s", argv[optind], bt_strerror(err));
		return err == -BT_ERRNO_FORMAT ? BT_EXIT_DATA : BT_EXIT_FAIL;
	}
	j = json_tokener_parse(bt_bundle__json(b));
	sc = calloc(bt_bundle__streams(b) + 1, sizeof(*sc));
	if (!sc || !j) {
		err_msg("info: out of memory");
		json_object_put(j);
		free(sc);
		bt_bundle__close(b);
		return BT_EXIT_FAIL;
	}
	for (uint32_t i = 0; i < bt_bundle__streams(b); i++) {
		count_stream(b, i, &sc[i]);
		for (size_t k = 0; k < NTYPES; k++)
			tot.n[k] += sc[i].n[k];
		tot.events += sc[i].events;
		if (sc[i].err < 0)
			damaged = true;
	}
	if (as_json)
		print_json(argv[optind], b, j, sc, &tot);
	else
		print_text(argv[optind], b, j, sc, &tot);
	if (damaged)
		err_msg("info: %s: damaged stream(s); the counts stop at the "
			"damage", argv[optind]);
	json_object_put(j);
	free(sc);
	bt_bundle__close(b);
	return damaged ? BT_EXIT_DATA : BT_EXIT_OK;
}
