/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the subcommands of the btrail CLI share. Each subcommand is one
 * file exporting only its do_<name>(); argv[0] is its own name.
 */
#ifndef BT_TOOLS_BTRAIL_H
#define BT_TOOLS_BTRAIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses; docs/btrail.1 lists them. */
enum {
	BT_EXIT_OK = 0,
	BT_EXIT_FAIL = 1,	/* the operation failed */
	BT_EXIT_USAGE = 2,	/* bad command line */
	BT_EXIT_DATA = 3,	/* it ran, but the data had problems */
};

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

extern const char *bin_name;
extern int verbose;

/* Pick the subcommand argv[0] of @table; exact names only. */
int cmd_select(const struct cmd *table, const char *group, int argc,
	       char **argv);

/* "4M", "64KiB", "1g", "4096" -> bytes. Returns 0 or -1. */
int parse_size(const char *s, uint64_t *out);
/* A decimal count with an optional k/M/G suffix (1000s). */
int parse_count(const char *s, uint64_t *out);
/* Print @fmt to stderr as "btrail: ...". */
void err_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* True when stderr is a terminal (progress lines go there). */
bool progress_tty(void);
/* CLOCK_MONOTONIC seconds. */
double now_s(void);

/* What recover and import take: -o BUNDLE and how to write it. */
struct bundle_args {
	const char *out;
	const char *sysroot;
	bool big_endian;
	bool with_binaries;
};

/* The --help lines of those options. */
extern const char bundle_args_help[];

/*
 * Parse the options of @cmd ("recover", "import"), which takes one @what
 * ("SESSION", "PERF.DATA") and -o BUNDLE, into @a; argv[optind] is then
 * the @what. Returns true to go on; false when the command is done (after
 * --help, or a bad command line), with its exit status in *@status.
 * @usage prints the command's usage to its FILE and returns its status.
 */
bool parse_bundle_args(int argc, char **argv, const char *cmd,
		       const char *what, struct bundle_args *a,
		       int (*usage)(FILE *f, int status), int *status);

int do_caps(int argc, char **argv);
int do_kmes(int argc, char **argv);
int do_rings(int argc, char **argv);
int do_record(int argc, char **argv);
int do_snapshot(int argc, char **argv);
int do_info(int argc, char **argv);
int do_recover(int argc, char **argv);
int do_script(int argc, char **argv);
int do_report(int argc, char **argv);
int do_import(int argc, char **argv);
int do_daemon(int argc, char **argv);
struct bt_record_opts;
/*
 * btrail record --daemon (record_daemon.c), @o->output set: returns the
 * exit status.
 */
int record_via_daemon(const struct bt_record_opts *o, const char *socket);
/* record's exit status for a command that ended with wait(2) status @st. */
int record_exit_status(int st);
int do_status(int argc, char **argv);
/* btrail script PERF.DATA (script_perf.c); argv as do_script()'s. */
int script_perfdata(int argc, char **argv);
/* Whether @path is a regular file that starts with perf.data's magic. */
bool script_is_perfdata(const char *path);
int do_export(int argc, char **argv);
int kmes_do_emit(int argc, char **argv);
int kmes_do_drain(int argc, char **argv);

#endif /* BT_TOOLS_BTRAIL_H */
