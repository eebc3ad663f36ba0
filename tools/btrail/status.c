// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail status: ask btraild who holds what: the tracers connected, what
 * each is charged against its budget, the hardware sessions with their
 * owner and sharers, and the rings they fill.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <btrail/broker.h>

#include "btrail.h"

static int usage(FILE *f, int status)
{
	fprintf(f,
		"Usage: %s status [--socket PATH] [--json] [--caps]\n"
		"\n"
		"Ask the broker (btrail daemon) who holds what: each tracer with its\n"
		"pid, uid, locked-memory budget and the bytes charged to it; each\n"
		"hardware session with its facility, target, owner (who pays for the\n"
		"buffer), sharers and the KMES ring session it fills.\n"
		"\n"
		"  --socket PATH  the daemon's socket (default $XDG_RUNTIME_DIR/btrail/\n"
		"                 btraild.sock, else /run/btrail/btraild.sock)\n"
		"  --json         the daemon's answer as one JSON object\n"
		"  --caps         the facilities as the daemon sees them instead\n"
		"  -h, --help     this help\n"
		"\n"
		"Exit status: 0 ok, 1 no daemon or it failed, 2 bad command line.\n",
		bin_name);
	return status;
}

static int64_t jint(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v,
			json_type_string) ? json_object_get_string(v) : "";
}

static void human(uint64_t b, char *buf, size_t len)
{
	if (b >= (1ull << 20) && !(b & ((1ull << 20) - 1)))
		snprintf(buf, len, "%lluM", (unsigned long long)(b >> 20));
	else if (b >= 1024 && !(b & 1023))
		snprintf(buf, len, "%lluK", (unsigned long long)(b >> 10));
	else
		snprintf(buf, len, "%llu", (unsigned long long)b);
}

static void print_table(json_object *st)
{
	json_object *dm = NULL, *tr = NULL, *ss = NULL;
	char a[32], b[32];

	json_object_object_get_ex(st, "daemon", &dm);
	json_object_object_get_ex(st, "tracers", &tr);
	json_object_object_get_ex(st, "sessions", &ss);
	human((uint64_t)jint(dm, "mapped"), a, sizeof(a));
	printf("btraild pid %lld, backend %s, socket %s, %s bytes mapped\n\n",
	       (long long)jint(dm, "pid"), jstr(dm, "backend"),
	       jstr(dm, "socket"), a);

	printf("%-8s %-6s %-16s %10s %10s  %s\n", "TRACER", "UID", "NAME",
	       "CHARGED", "BUDGET", "GRANTS");
	for (size_t i = 0; tr && i < json_object_array_length(tr); i++) {
		json_object *t = json_object_array_get_idx(tr, i), *g;
		json_object *un;
		bool unlimited = json_object_object_get_ex(t, "unlimited", &un) &&
				 json_object_get_boolean(un);

		human((uint64_t)jint(t, "charged"), a, sizeof(a));
		human((uint64_t)jint(t, "budget"), b, sizeof(b));
		printf("%-8lld %-6lld %-16.16s %10s %10s  ",
		       (long long)jint(t, "pid"), (long long)jint(t, "uid"),
		       jstr(t, "name"), a, unlimited ? "unlimited" : b);
		if (json_object_object_get_ex(t, "grants", &g))
			for (size_t k = 0; k < json_object_array_length(g); k++)
				printf("%s%lld", k ? "," : "", (long long)
				       json_object_get_int64(
					       json_object_array_get_idx(g, k)));
		printf("\n");
	}
	if (!tr || !json_object_array_length(tr))
		printf("(none)\n");

	printf("\n%-8s %-7s %-10s %-9s %8s %8s  %-12s %s\n", "SESSION",
	       "FACIL", "TARGET", "MODE", "AUX", "OWNER", "SHARERS", "RING");
	for (size_t i = 0; ss && i < json_object_array_length(ss); i++) {
		json_object *s = json_object_array_get_idx(ss, i), *tg = NULL,
			    *sh = NULL, *en = NULL;
		char target[32], sharers[128] = "";
		size_t off = 0;

		json_object_object_get_ex(s, "target", &tg);
		if (!strcmp(jstr(tg, "kind"), "all"))
			snprintf(target, sizeof(target), "all");
		else
			snprintf(target, sizeof(target), "%s %lld",
				 jstr(tg, "kind"), (long long)jint(tg, "id"));
		if (json_object_object_get_ex(s, "sharers", &sh))
			for (size_t k = 0; k < json_object_array_length(sh) &&
			     off < sizeof(sharers) - 16; k++)
				off += (size_t)snprintf(sharers + off,
					sizeof(sharers) - off, "%s%lld",
					k ? "," : "", (long long)
					json_object_get_int64(
						json_object_array_get_idx(sh, k)));
		human((uint64_t)jint(s, "aux_bytes"), a, sizeof(a));
		printf("%-8lld %-7s %-10s %-9s %8s %8lld  %-12s %s%s\n",
		       (long long)jint(s, "id"), jstr(s, "facility"), target,
		       jstr(s, "mode"), a, (long long)jint(s, "owner_pid"),
		       sharers[0] ? sharers : "-", jstr(s, "ring"),
		       json_object_object_get_ex(s, "ended", &en) &&
		       json_object_get_boolean(en) ? " (ended)" : "");
	}
	if (!ss || !json_object_array_length(ss))
		printf("(none)\n");

	if (json_object_object_get_ex(st, "orphans", &ss) &&
	    json_object_array_length(ss)) {
		printf("\nrings left by an earlier daemon (btrail recover RING "
		       "-o BUNDLE; a new request for the target writes on "
		       "into them):\n");
		for (size_t i = 0; i < json_object_array_length(ss); i++) {
			json_object *o = json_object_array_get_idx(ss, i), *tg;

			json_object_object_get_ex(o, "target", &tg);
			printf("  %s  %s %s %lld (%s)\n", jstr(o, "ring"),
			       jstr(o, "facility"), jstr(tg, "kind"),
			       (long long)jint(tg, "id"), jstr(o, "mode"));
		}
	}
}

int do_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json",   no_argument,       NULL, 'j' },
		{ "caps",   no_argument,       NULL, 'c' },
		{ "help",   no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bt_broker_opts bo = { .sz = sizeof(bo), .name = "btrail status" };
	bool json = false, caps = false;
	struct bt_broker *b;
	char *text = NULL, path[128];
	json_object *st;
	int c, err;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			bo.socket = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'c':
			caps = true;
			break;
		case 'h':
			return usage(stdout, BT_EXIT_OK);
		default:
			return usage(stderr, BT_EXIT_USAGE);
		}
	}
	if (optind < argc) {
		err_msg("status: unexpected argument '%s'", argv[optind]);
		return BT_EXIT_USAGE;
	}
	b = bt_broker__connect(&bo);
	if (!b) {
		if (!bo.socket && !bt_broker_socket_path(path, sizeof(path)))
			bo.socket = path;
		err_msg("status: no broker at %s: %s (start one with 'btrail "
			"daemon')", bo.socket, strerror(errno));
		return BT_EXIT_FAIL;
	}
	err = caps ? bt_broker__caps_json(b, &text) :
		     bt_broker__status_json(b, &text);
	if (err) {
		err_msg("status: %s", bt_broker__error(b)[0] ?
			bt_broker__error(b) : strerror(-err));
		bt_broker__close(b);
		return BT_EXIT_FAIL;
	}
	bt_broker__close(b);
	if (json) {
		printf("%s\n", text);
	} else if (caps) {
		st = json_tokener_parse(text);
		for (size_t i = 0; st && i < json_object_array_length(st); i++) {
			json_object *f = json_object_array_get_idx(st, i), *p;

			printf("%-7s %-8s %s\n", jstr(f, "facility"),
			       json_object_object_get_ex(f, "present", &p) &&
			       json_object_get_boolean(p) ? "present" : "absent",
			       jstr(f, "reason"));
		}
		json_object_put(st);
	} else {
		st = json_tokener_parse(text);
		print_table(st);
		json_object_put(st);
	}
	free(text);
	return BT_EXIT_OK;
}
