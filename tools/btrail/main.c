// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail: the command-line front end. main() handles the global options
 * and hands argv to the subcommand named by the first word.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <btrail/common.h>
#include <btrail/errno.h>
#include <btrail/log.h>

#include "btrail.h"

const char *bin_name = "btrail";
int verbose;

static int do_help(int argc, char **argv);
static int do_version(int argc, char **argv);

static const struct cmd cmds[] = {
	{ "caps",	do_caps,	"which trace facilities this machine offers, and why not" },
	{ "kmes",	do_kmes,	"create, fill, drain, resize and remove KMES ring sessions" },
	{ "rings",	do_rings,	"list ring sessions, or the rings of one session" },
	{ "record",	do_record,	"run a command under branch trace; a bundle when it crashes" },
	{ "snapshot",	do_snapshot,	"ask a running 'btrail record' for a snapshot bundle" },
	{ "info",	do_info,	"what a bundle holds: machine, trigger, streams, images" },
	{ "recover",	do_recover,	"write the bundle of a ring session (after a crash)" },
	{ "report",	do_report,	"the way to the crash: signal, call stack, last branches" },
	{ "script",	do_script,	"a bundle's instructions, branches or calls; raw PT (--pt)" },
	{ "export",	do_export,	"write a bundle as JSON Lines, Chrome trace JSON or CTF" },
	{ "import",	do_import,	"turn a perf.data file (perf record -e intel_pt//) into a bundle" },
	{ "daemon",	do_daemon,	"run btraild, the broker that shares the trace hardware" },
	{ "status",	do_status,	"ask btraild who holds what: tracers, sessions, charges" },
	{ "version",	do_version,	"print the version" },
	{ "help",	do_help,	"print this help" },
	{ NULL,		NULL,		NULL },
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [-v] [--version] COMMAND [ARGS...]\n"
		"\n"
		"btrail captures recent control flow (Intel PT, BTS, PEBS, LBR)\n"
		"into crash-surviving KMES rings and reconstructs it offline.\n"
		"\n"
		"Commands:\n", bin_name);
	for (const struct cmd *c = cmds; c->name; c++)
		fprintf(f, "  %-10s %s\n", c->name, c->summary);
	fprintf(f,
		"\n"
		"Options:\n"
		"  -v, --verbose   say more (twice: debug messages)\n"
		"  -h, --help      this help\n"
		"      --version   print the version\n"
		"\n"
		"'%s COMMAND --help' describes a command; man btrail(1) has more.\n",
		bin_name);
}

static int do_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	usage(stdout);
	return BT_EXIT_OK;
}

static int do_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("btrail %s\n", bt_version());
	return BT_EXIT_OK;
}

int cmd_select(const struct cmd *table, const char *group, int argc,
	       char **argv)
{
	if (argc < 1) {
		err_msg("%s: missing command; try '%s%s%s --help'",
			group ? group : "btrail", bin_name, group ? " " : "",
			group ? group : "");
		return BT_EXIT_USAGE;
	}
	for (const struct cmd *c = table; c->name; c++) {
		if (strcmp(argv[0], c->name) == 0) {
			optind = 0;	/* reset getopt for the subcommand */
			return c->fn(argc, argv);
		}
	}
	err_msg("unknown command '%s%s%s'; try '%s%s%s --help'",
		group ? group : "", group ? " " : "", argv[0], bin_name,
		group ? " " : "", group ? group : "");
	return BT_EXIT_USAGE;
}

__attribute__((format(printf, 2, 0)))
static void print_lib(enum bt_log_level level, const char *fmt, va_list ap)
{
	if ((int)level > verbose)
		return;
	fprintf(stderr, "%s: ", bin_name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void err_msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", bin_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "help",    no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL,      0,           NULL, 0 },
	};
	int c;

	bt_set_print(print_lib);
	/* '+': stop at the command name; its options are its own. */
	while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return BT_EXIT_OK;
		case 'V':
			return do_version(0, NULL);
		default:
			usage(stderr);
			return BT_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return BT_EXIT_USAGE;
	}
	return cmd_select(cmds, NULL, argc - optind, argv + optind);
}
