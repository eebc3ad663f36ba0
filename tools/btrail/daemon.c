// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail daemon: run btraild, the broker that owns the hardware trace
 * sessions and serves every tracer on the machine from them
 * (docs/btrail-daemon.1, docs/protocol.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <btrail/errno.h>

#include "../btraild/btraild.h"
#include "btrail.h"

static int usage(FILE *f, int status)
{
	fprintf(f,
		"Usage: %s daemon [--socket PATH] [--backend auto|perf|sim]\n"
		"                 [--ring-size BYTES] [--max-clients N] [--detach]\n"
		"                 [--pidfile FILE] [--quiet]\n"
		"\n"
		"Run btraild, the broker: it owns the hardware trace sessions the\n"
		"kernel allows (one intel_pt or intel_bts event per context) and\n"
		"serves every tracer from them over a Unix socket. Clients are known\n"
		"by SO_PEERCRED, charged against their own RLIMIT_MEMLOCK, and may\n"
		"trace only what the kernel would let them trace themselves.\n"
		"Runs in the foreground until SIGINT or SIGTERM.\n"
		"\n"
		"  --socket PATH     listen here (default $XDG_RUNTIME_DIR/btrail/\n"
		"                    btraild.sock, else /run/btrail/btraild.sock)\n"
		"  --backend B       perf (the kernel), sim (the model: step and\n"
		"                    pt-emu, tests), auto: perf when this machine has\n"
		"                    a trace PMU, else sim (default)\n"
		"  --ring-size BYTES KMES ring capacity per capture (default 4M)\n"
		"  --max-clients N   connections at once (default 1024)\n"
		"  --detach          go to the background once listening\n"
		"  --pidfile FILE    write the daemon's pid there\n"
		"  -q, --quiet       log only warnings\n"
		"  -h, --help        this help\n"
		"\n"
		"Exit status: 0 stopped by a signal, 1 could not start (another\n"
		"daemon on the socket, no backend), 2 bad command line.\n",
		bin_name);
	return status;
}

static void on_signal(int sig)
{
	(void)sig;
	bd_stop();
}

/* Fork; the parent returns once the child listens (the pipe closes). */
static int detach(int *ready_w)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		/* The child writes one byte when it listens. */
		if (read(p[0], &c, 1) != 1)
			_exit(BT_EXIT_FAIL);
		_exit(BT_EXIT_OK);
	}
	close(p[0]);
	setsid();
	/* Nothing to read; log lines still go to stderr (redirect it). */
	{
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			close(null);
		}
	}
	*ready_w = p[1];
	return 0;
}

int do_daemon(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket",      required_argument, NULL, 's' },
		{ "backend",     required_argument, NULL, 'b' },
		{ "ring-size",   required_argument, NULL, 'r' },
		{ "max-clients", required_argument, NULL, 'm' },
		{ "detach",      no_argument,       NULL, 'd' },
		{ "pidfile",     required_argument, NULL, 'p' },
		{ "quiet",       no_argument,       NULL, 'q' },
		{ "help",        no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bd_opts o = { .backend = "auto" };
	const char *pidfile = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	bool bg = false;
	int c, err, ready_w = -1;
	uint64_t v;

	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			o.socket = optarg;
			break;
		case 'b':
			o.backend = optarg;
			if (strcmp(o.backend, "auto") &&
			    strcmp(o.backend, "perf") &&
			    strcmp(o.backend, "sim")) {
				err_msg("daemon: --backend takes auto, perf or "
					"sim, not '%s'", optarg);
				return BT_EXIT_USAGE;
			}
			break;
		case 'r':
			if (parse_size(optarg, &o.ring_bytes)) {
				err_msg("daemon: bad --ring-size '%s'", optarg);
				return BT_EXIT_USAGE;
			}
			break;
		case 'm':
			if (parse_count(optarg, &v) || !v || v > 65536) {
				err_msg("daemon: bad --max-clients '%s'", optarg);
				return BT_EXIT_USAGE;
			}
			o.max_clients = (uint32_t)v;
			break;
		case 'd':
			bg = true;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'q':
			o.quiet = true;
			break;
		case 'h':
			return usage(stdout, BT_EXIT_OK);
		default:
			return usage(stderr, BT_EXIT_USAGE);
		}
	}
	if (optind < argc) {
		err_msg("daemon: unexpected argument '%s'", argv[optind]);
		return BT_EXIT_USAGE;
	}
	if (bg && detach(&ready_w) < 0) {
		err_msg("daemon: --detach: %s", strerror(errno));
		return BT_EXIT_FAIL;
	}
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");

		if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f)) {
			err_msg("daemon: writing %s: %s", pidfile,
				strerror(errno));
			return BT_EXIT_FAIL;
		}
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	o.ready_fd = ready_w;
	err = bd_run(&o);
	if (pidfile)
		unlink(pidfile);
	if (err) {
		err_msg("daemon: %s", bt_strerror(err));
		return BT_EXIT_FAIL;
	}
	return BT_EXIT_OK;
}
