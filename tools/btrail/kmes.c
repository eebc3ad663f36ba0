// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail kmes: work with KMES ring sessions by hand. The verbs create,
 * resize and destroy live here; emit and drain have files of their own.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <btrail/errno.h>
#include <btrail/kmes.h>

#include "btrail.h"

static int kmes_do_create(int argc, char **argv);
static int kmes_do_resize(int argc, char **argv);
static int kmes_do_destroy(int argc, char **argv);
static int kmes_do_help(int argc, char **argv);

static const struct cmd kmes_cmds[] = {
	{ "create",  kmes_do_create,  "create a ring session" },
	{ "emit",    kmes_do_emit,    "emit test events (self-checking msgpack payloads)" },
	{ "drain",   kmes_do_drain,   "read and print events, gaps, lost counts, generations" },
	{ "resize",  kmes_do_resize,  "swap every ring for one of a new capacity" },
	{ "destroy", kmes_do_destroy, "remove a ring session" },
	{ "help",    kmes_do_help,    "print this help" },
	{ NULL, NULL, NULL },
};

static void kmes_usage(FILE *f)
{
	fprintf(f,
		"Usage: %s kmes VERB [OPTIONS] NAME ...\n"
		"\n"
		"  create NAME [--capacity BYTES] [--slots N] [--group G] [--per-task]\n"
		"              [--max-event-size BYTES] [--max-depth N] [--max-rate N]\n"
		"              [--no-numa]\n"
		"  emit NAME --count N [--size BYTES] [--type T] [--batch K]\n"
		"            [--slot S | --all-slots] [--trusted] [--seed N]\n"
		"  drain NAME [--follow] [--slot S] [--from-now] [--quiet] [--payload]\n"
		"             [--interval SEC] [--count N] [--timeout SEC] [--idle SEC]\n"
		"             [--verify]\n"
		"  resize NAME BYTES\n"
		"  destroy NAME [--force]\n"
		"\n"
		"NAME is a session name ($XDG_RUNTIME_DIR/btrail/NAME, else\n"
		"/dev/shm/btrail-UID/NAME) or, when it contains '/', the session\n"
		"directory. Sizes take K, M, G suffixes (powers of 1024).\n"
		"'%s kmes VERB --help' and man btrail-kmes(1) say more.\n",
		bin_name, bin_name);
}

static int kmes_do_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	kmes_usage(stdout);
	return BT_EXIT_OK;
}

int do_kmes(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		kmes_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? BT_EXIT_USAGE : BT_EXIT_OK;
	}
	return cmd_select(kmes_cmds, "kmes", argc - 1, argv + 1);
}

static int create_usage(FILE *f)
{
	fprintf(f,
		"Usage: %s kmes create NAME [OPTIONS]\n"
		"\n"
		"Create ring session NAME with one ring per CPU (or per task) and\n"
		"print its directory.\n"
		"\n"
		"  -c, --capacity BYTES  bytes per ring: a power of two, 64K..256M\n"
		"                        (default 4M)\n"
		"  -n, --slots N         rings (default: one per CPU id up to the\n"
		"                        highest online CPU; per-task: 0)\n"
		"  -g, --group GROUP     let GROUP attach (rings 0640, consumer\n"
		"                        pages 0660; the session goes to /dev/shm)\n"
		"      --per-task        rings are per task, not per CPU\n"
		"      --max-event-size BYTES   kmes_emit limit, 1K..4M (default 64K)\n"
		"      --max-depth N     msgpack nesting limit, 4..32 (default 32)\n"
		"      --max-rate N      kmes_emit events per second, 100..1000000\n"
		"                        (default: unlimited)\n"
		"      --no-numa         do not place ring pages on the CPU's node\n"
		"\n"
		"The limits are stored in the rings: every later producer applies them.\n",
		bin_name);
	return f == stdout ? BT_EXIT_OK : BT_EXIT_USAGE;
}

static int kmes_do_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "capacity",       required_argument, NULL, 'c' },
		{ "slots",          required_argument, NULL, 'n' },
		{ "group",          required_argument, NULL, 'g' },
		{ "per-task",       no_argument,       NULL, 't' },
		{ "max-event-size", required_argument, NULL, 'E' },
		{ "max-depth",      required_argument, NULL, 'D' },
		{ "max-rate",       required_argument, NULL, 'R' },
		{ "no-numa",        no_argument,       NULL, 'N' },
		{ "help",           no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bt_kmes_session_opts o = { .sz = sizeof(o) };
	struct bt_kmes_session *s;
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "c:n:g:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (parse_size(optarg, &o.capacity) < 0 ||
			    o.capacity < KMES_CAPACITY_MIN ||
			    o.capacity > KMES_CAPACITY_MAX ||
			    (o.capacity & (o.capacity - 1))) {
				err_msg("kmes create: capacity '%s' is not a power "
					"of two in 64K..256M", optarg);
				return BT_EXIT_USAGE;
			}
			break;
		case 'n':
			if (parse_count(optarg, &v) < 0 || v > 65536) {
				err_msg("kmes create: bad slot count '%s'", optarg);
				return BT_EXIT_USAGE;
			}
			o.slots = (uint32_t)v;
			break;
		case 'g':
			o.group = optarg;
			break;
		case 't':
			o.kind = BT_KMES_RING_TASK;
			break;
		case 'E':
			if (parse_size(optarg, &v) < 0 ||
			    v < KMES_MAX_EVENT_SIZE_MIN ||
			    v > KMES_MAX_EVENT_SIZE_MAX) {
				err_msg("kmes create: --max-event-size '%s' is not "
					"in 1K..4M", optarg);
				return BT_EXIT_USAGE;
			}
			o.max_event_size = (uint32_t)v;
			break;
		case 'D':
			if (parse_count(optarg, &v) < 0 ||
			    v < KMES_MAX_NESTING_MIN || v > KMES_MAX_NESTING_MAX) {
				err_msg("kmes create: --max-depth '%s' is not in "
					"4..32", optarg);
				return BT_EXIT_USAGE;
			}
			o.max_nesting_depth = (uint32_t)v;
			break;
		case 'R':
			if (parse_count(optarg, &v) < 0 ||
			    v < KMES_EMIT_RATE_MIN || v > KMES_EMIT_RATE_MAX) {
				err_msg("kmes create: --max-rate '%s' is not in "
					"100..1000000", optarg);
				return BT_EXIT_USAGE;
			}
			o.max_emit_rate = (uint32_t)v;
			break;
		case 'N':
			o.no_numa = true;
			break;
		case 'h':
			return create_usage(stdout);
		default:
			return create_usage(stderr);
		}
	}
	if (optind != argc - 1)
		return create_usage(stderr);

	s = bt_kmes_session__create(argv[optind], &o);
	if (!s) {
		int err = errno;

		err_msg("kmes create: cannot create session '%s': %s%s",
			argv[optind], bt_strerror(err),
			err == EINVAL ? " (a name is letters, digits and ._-+@:, "
			"not starting with '.', or a directory path)" :
			err == EEXIST ? " (remove it with 'btrail kmes destroy')" :
			err == ENOENT && o.group ? " (no such group)" : "");
		return BT_EXIT_FAIL;
	}
	printf("%s\n", bt_kmes_session__path(s));
	if (verbose)
		fprintf(stderr, "%s: %u rings of %" PRIu64 " bytes\n", bin_name,
			bt_kmes_session__slots(s), bt_kmes_session__capacity(s));
	bt_kmes_session__close(s);
	return BT_EXIT_OK;
}

static int kmes_do_resize(int argc, char **argv)
{
	struct bt_kmes_session *s;
	uint64_t cap;
	int err;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("Usage: %s kmes resize NAME BYTES\n\n"
		       "Swap every ring of NAME for one of BYTES (a power of two,\n"
		       "64K..256M). Surviving events are copied (the newest when\n"
		       "shrinking); consumers follow by generation and sequence.\n"
		       "Needs the session's producer lock: fails while another\n"
		       "process is producing.\n", bin_name);
		return BT_EXIT_OK;
	}
	if (argc != 3) {
		err_msg("usage: %s kmes resize NAME BYTES", bin_name);
		return BT_EXIT_USAGE;
	}
	if (parse_size(argv[2], &cap) < 0) {
		err_msg("kmes resize: bad size '%s'", argv[2]);
		return BT_EXIT_USAGE;
	}
	s = bt_kmes_session__open(argv[1], NULL);
	if (!s) {
		err_msg("kmes resize: cannot open session '%s': %s", argv[1],
			bt_strerror(errno));
		return BT_EXIT_FAIL;
	}
	err = bt_kmes_session__resize(s, cap);
	if (err < 0)
		err_msg("kmes resize: %s: cannot resize to %" PRIu64 ": %s%s",
			argv[1], cap, bt_strerror(err), err == -EINVAL ?
			" (need a power of two in 64K..256M)" : "");
	else
		printf("%s: %u rings of %" PRIu64 " bytes\n",
		       bt_kmes_session__path(s), bt_kmes_session__slots(s), cap);
	bt_kmes_session__close(s);
	return err < 0 ? BT_EXIT_FAIL : BT_EXIT_OK;
}

static int kmes_do_destroy(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "help",  no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool force = false;
	int c, err;

	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			force = true;
			break;
		case 'h':
			printf("Usage: %s kmes destroy NAME [--force]\n\n"
			       "Remove session NAME. Refused while a producer holds it,\n"
			       "unless --force. Attached consumers keep their mappings.\n",
			       bin_name);
			return BT_EXIT_OK;
		default:
			err_msg("usage: %s kmes destroy NAME [--force]", bin_name);
			return BT_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		err_msg("usage: %s kmes destroy NAME [--force]", bin_name);
		return BT_EXIT_USAGE;
	}
	err = bt_kmes_session__destroy(argv[optind], force);
	if (err < 0) {
		err_msg("kmes destroy: %s: %s%s", argv[optind], bt_strerror(err),
			err == -EBUSY ? " (a producer holds it; --force removes "
			"it anyway)" : "");
		return BT_EXIT_FAIL;
	}
	return BT_EXIT_OK;
}
