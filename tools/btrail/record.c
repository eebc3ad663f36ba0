// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail record: run a command (or follow a process, or CPUs) under a
 * branch-trace capture and write a bundle when it ends or crashes. The
 * work is the library's (include/btrail/record.h); this file is argv,
 * signals and the exit status.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <btrail/ds.h>
#include <btrail/errno.h>
#include <btrail/record.h>

#include "btrail.h"

#define DEFAULT_BUNDLE	"btrail.bundle"

static struct bt_record *the_record;

static int usage(FILE *f, int status)
{
	fprintf(f,
		"Usage: %s record [OPTIONS] [-- CMD ARGS...]\n"
		"\n"
		"Run CMD (or follow a process, or CPUs) under a branch-trace\n"
		"capture kept in KMES rings; when it dies of a signal the trace\n"
		"is frozen and written as a bundle at once. Exits with CMD's\n"
		"status (128+signal when it was killed).\n"
		"\n"
		"Target (one):\n"
		"  -- CMD ARGS...          start CMD and record it\n"
		"  -p, --pid PID           record a running process\n"
		"  -a, --all-cpus          record every CPU (until SIGINT)\n"
		"  -C, --cpu CPUS          record CPUs, e.g. 0-3,6\n"
		"\n"
		"Options:\n"
		"  -e, --event FAC         pt, bts, pebs, lbr, step, pt-emu or\n"
		"                          auto (default: pt > bts > lbr > step)\n"
		"  -m, --mmap-size SIZE    trace buffer size, a power of two\n"
		"                          (default 1M; 4K, 64K, 2M, ...)\n"
		"      --ring-size SIZE    KMES ring capacity (default 4M)\n"
		"      --mode MODE         stream (default) or snapshot\n"
		"      --start-at SYMBOL   step/pt-emu: run at full speed to\n"
		"                          SYMBOL (or lib:SYMBOL), then trace\n"
		"      --max-insns N       step/pt-emu: stop tracing after N\n"
		"      --with-binaries     copy the mapped binaries into the bundle\n"
		"  -o, --output BUNDLE     the bundle directory (default\n"
		"                          " DEFAULT_BUNDLE ", the previous one\n"
		"                          kept as " DEFAULT_BUNDLE ".old)\n"
		"      --session NAME      the ring session (default record-PID)\n"
		"      --keep-session      leave the ring session after the run\n"
		"      --snapshot-when COND\n"
		"                          a snapshot bundle each time COND\n"
		"                          becomes true, over all rings:\n"
		"                          unread>=N, lost>=N (bytes),\n"
		"                          lost-events>=N, rate>=N (events/s)\n"
		"      --daemon            record through btraild (btrail daemon),\n"
		"                          sharing its hardware sessions with\n"
		"                          other tracers of the same target\n"
		"      --socket PATH       btraild's socket (implies --daemon)\n"
		"  -h, --help              this help\n"
		"\n"
		"While it runs, SIGUSR2 (or '%s snapshot SESSION') writes a\n"
		"snapshot bundle BUNDLE.snapshot-N of what the rings hold.\n",
		bin_name, bin_name);
	return status;
}

static void on_request(int sig)
{
	(void)sig;
	bt_record__request(the_record);
}

static void on_stop(int sig)
{
	(void)sig;
	bt_record__stop(the_record);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Like perf.data: the previous default bundle becomes BUNDLE.old. */
static int rotate_default(void)
{
	if (access(DEFAULT_BUNDLE, F_OK) != 0)
		return 0;
	if (access(DEFAULT_BUNDLE ".old", F_OK) == 0 &&
	    nftw(DEFAULT_BUNDLE ".old", rm_entry, 16,
		 FTW_DEPTH | FTW_PHYS) != 0) {
		err_msg("record: cannot remove %s.old: %s", DEFAULT_BUNDLE,
			strerror(errno));
		return -1;
	}
	if (rename(DEFAULT_BUNDLE, DEFAULT_BUNDLE ".old") != 0) {
		err_msg("record: cannot rename %s: %s", DEFAULT_BUNDLE,
			strerror(errno));
		return -1;
	}
	return 0;
}

int record_exit_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return BT_EXIT_FAIL;
}

static void describe(int st, char *buf, size_t len)
{
	if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by SIG%s",
			 sigabbrev_np(WTERMSIG(st)) ?
			 sigabbrev_np(WTERMSIG(st)) : "?");
	else if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else
		snprintf(buf, len, "ended");
}

int do_record(int argc, char **argv)
{
	enum { O_MODE = 256, O_START, O_BINS, O_SESSION, O_KEEP, O_MAX,
	       O_RING, O_WHEN, O_DAEMON, O_SOCKET };
	static const struct option opts[] = {
		{ "event",         required_argument, NULL, 'e' },
		{ "pid",           required_argument, NULL, 'p' },
		{ "all-cpus",      no_argument,       NULL, 'a' },
		{ "cpu",           required_argument, NULL, 'C' },
		{ "mmap-size",     required_argument, NULL, 'm' },
		{ "output",        required_argument, NULL, 'o' },
		{ "mode",          required_argument, NULL, O_MODE },
		{ "start-at",      required_argument, NULL, O_START },
		{ "with-binaries", no_argument,       NULL, O_BINS },
		{ "session",       required_argument, NULL, O_SESSION },
		{ "keep-session",  no_argument,       NULL, O_KEEP },
		{ "max-insns",     required_argument, NULL, O_MAX },
		{ "ring-size",     required_argument, NULL, O_RING },
		{ "snapshot-when", required_argument, NULL, O_WHEN },
		{ "daemon",        no_argument,       NULL, O_DAEMON },
		{ "socket",        required_argument, NULL, O_SOCKET },
		{ "help",          no_argument,       NULL, 'h' },
		{ NULL,            0,                 NULL, 0 },
	};
	struct bt_record_opts o = { .sz = sizeof(o),
				    .facility = BT_RECORD_AUTO };
	struct sigaction sa;
	char what[64], *end;
	const char *socket = NULL;
	bool daemon = false;
	int c, err, status;

	while ((c = getopt_long(argc, argv, "+e:p:aC:m:o:h", opts,
				NULL)) != -1) {
		switch (c) {
		case 'e':
			if (!strcmp(optarg, "auto")) {
				o.facility = BT_RECORD_AUTO;
				break;
			}
			o.facility = bt_facility_parse(optarg);
			if (o.facility < 0) {
				err_msg("record: unknown facility '%s' (pt, bts, "
					"pebs, lbr, step, pt-emu or auto)",
					optarg);
				return BT_EXIT_USAGE;
			}
			break;
		case 'p':
			errno = 0;
			o.pid = (pid_t)strtol(optarg, &end, 10);
			if (errno || *end || o.pid <= 0) {
				err_msg("record: bad pid '%s'", optarg);
				return BT_EXIT_USAGE;
			}
			break;
		case 'a':
			o.all_cpus = true;
			break;
		case 'C':
			o.cpus = optarg;
			break;
		case 'm':
		case O_RING: {
			uint64_t v;

			if (parse_size(optarg, &v) || !v || (v & (v - 1))) {
				err_msg("record: bad size '%s' for %s (a power "
					"of two: 64K, 1M, ...)", optarg,
					c == 'm' ? "-m" : "--ring-size");
				return BT_EXIT_USAGE;
			}
			if (c == 'm')
				o.aux_bytes = v;
			else
				o.ring_bytes = v;
			break;
		}
		case 'o':
			o.output = optarg;
			break;
		case O_MODE:
			if (!strcmp(optarg, "stream")) {
				o.mode = BT_MODE_STREAM;
			} else if (!strcmp(optarg, "snapshot")) {
				o.mode = BT_MODE_SNAPSHOT;
			} else {
				err_msg("record: bad mode '%s' (stream or "
					"snapshot)", optarg);
				return BT_EXIT_USAGE;
			}
			break;
		case O_START:
			o.start_at = optarg;
			break;
		case O_BINS:
			o.with_binaries = true;
			break;
		case O_SESSION:
			o.session = optarg;
			break;
		case O_KEEP:
			o.keep_session = true;
			break;
		case O_WHEN:
			o.snapshot_when = optarg;	/* checked by the library */
			break;
		case O_DAEMON:
			daemon = true;
			break;
		case O_SOCKET:
			socket = optarg;
			daemon = true;
			break;
		case O_MAX:
			if (parse_count(optarg, &o.max_insns)) {
				err_msg("record: bad count '%s'", optarg);
				return BT_EXIT_USAGE;
			}
			break;
		case 'h':
			return usage(stdout, BT_EXIT_OK);
		default:
			return usage(stderr, BT_EXIT_USAGE);
		}
	}
	if (optind < argc)
		o.argv = argv + optind;
	if (!o.argv && !o.pid && !o.all_cpus && !o.cpus) {
		err_msg("record: nothing to record: give -- CMD, -p PID, -a "
			"or -C CPUS");
		return usage(stderr, BT_EXIT_USAGE);
	}
	if ((o.pid && (o.argv || o.all_cpus || o.cpus)) ||
	    (o.all_cpus && o.cpus)) {
		err_msg("record: give one target: -p PID, -a, -C CPUS (a "
			"command may run with -a or -C)");
		return BT_EXIT_USAGE;
	}
	if (o.start_at && !*o.start_at) {
		err_msg("record: --start-at needs a symbol");
		return BT_EXIT_USAGE;
	}
	if (!o.output && rotate_default())
		return BT_EXIT_FAIL;
	if (daemon) {
		if (!o.output)
			o.output = DEFAULT_BUNDLE;
		return record_via_daemon(&o, socket);
	}

	the_record = bt_record__new(&o);
	if (!the_record) {
		err = errno;
		/* The library said why; the status says what kind. */
		return err == EINVAL ? BT_EXIT_USAGE : BT_EXIT_FAIL;
	}
	fprintf(stderr, "%s: record: facility %s: %s\n", bin_name,
		bt_facility_name((uint32_t)bt_record__facility(the_record)),
		bt_record__why(the_record));
	fprintf(stderr, "%s: record: ring session %s\n", bin_name,
		bt_record__session(the_record));

	memset(&sa, 0, sizeof(sa));
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_request;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_stop;
	if (!o.argv) {
		/* With a command, ^C reaches it and it ends the capture. */
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}

	err = bt_record__run(the_record);
	status = bt_record__status(the_record);
	signal(SIGUSR2, SIG_IGN);
	if (bt_record__snapshots(the_record))
		fprintf(stderr, "%s: record: %u snapshot bundle(s) %s.snapshot-N\n",
			bin_name, bt_record__snapshots(the_record),
			bt_record__output(the_record));
	if (status != -1) {
		describe(status, what, sizeof(what));
		fprintf(stderr, "%s: record: %s %s\n", bin_name,
			o.pid ? "process" : "command", what);
	} else if (o.pid && !err) {
		fprintf(stderr, "%s: record: tracing ended; process %d goes "
			"on\n", bin_name, (int)o.pid);
	}
	if (err) {
		err_msg("record: failed: %s", bt_strerror(err));
	} else {
		fprintf(stderr, "%s: record: bundle %s\n", bin_name,
			bt_record__output(the_record));
	}
	bt_record__free(the_record);
	the_record = NULL;
	if (o.argv && status != -1)
		return record_exit_status(status);
	return err ? BT_EXIT_FAIL : BT_EXIT_OK;
}
