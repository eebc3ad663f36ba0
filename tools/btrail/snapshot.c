// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail snapshot SESSION: ask the recorder that produces ring session
 * SESSION for a snapshot bundle. The recorder's pid is in the rings'
 * producer extension (BT_KMES_XOFF_PRODUCER); it gets SIGUSR2.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <btrail/kmes.h>

#include "btrail.h"

static int usage(FILE *f, int status)
{
	fprintf(f,
		"Usage: %s snapshot SESSION\n"
		"\n"
		"Ask the '%s record' that writes ring session SESSION to write\n"
		"a snapshot bundle now (BUNDLE.snapshot-N beside its bundle);\n"
		"in stream mode capture goes on. The same as sending SIGUSR2 to\n"
		"the recorder.\n"
		"\n"
		"Options:\n"
		"  -h, --help   this help\n",
		bin_name, bin_name);
	return status;
}

/* The producer pid stored in slot 0's ring; 0 for none, -errno. */
static long producer_pid(const char *session)
{
	unsigned char b[4];
	uint64_t cap;
	int fd = kmes_attach(session, 0, &cap);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pread(fd, b, sizeof(b), BT_KMES_XOFF_PRODUCER);
	close(fd);
	if (n != (ssize_t)sizeof(b))
		return -EPROTO;
	return (long)((uint32_t)b[0] | (uint32_t)b[1] << 8 |
		      (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
}

/* True when @pid runs "btrail ... record": SIGUSR2 would kill others. */
static bool is_recorder(pid_t pid)
{
	char path[64], buf[4096];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
		if (!strcmp(buf + i, "record"))
			return true;
	}
	return false;
}

int do_snapshot(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL,   0,           NULL, 0 },
	};
	const char *session;
	long pid;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			return usage(stdout, BT_EXIT_OK);
		default:
			return usage(stderr, BT_EXIT_USAGE);
		}
	}
	if (optind + 1 != argc) {
		err_msg("snapshot: give one SESSION ('%s rings' lists them)",
			bin_name);
		return usage(stderr, BT_EXIT_USAGE);
	}
	session = argv[optind];
	pid = producer_pid(session);
	if (pid < 0) {
		err_msg("snapshot: session %s: %s%s", session,
			strerror((int)-pid), pid == -ENOENT ?
			" ('btrail rings' lists the sessions)" : "");
		return BT_EXIT_FAIL;
	}
	if (pid == 0 || kill((pid_t)pid, 0) < 0) {
		err_msg("snapshot: session %s has no live recorder%s; 'btrail "
			"recover %s -o BUNDLE' turns its rings into a bundle",
			session, pid ? " (it is gone)" : "", session);
		return BT_EXIT_FAIL;
	}
	if (!is_recorder((pid_t)pid)) {
		err_msg("snapshot: the producer of %s, pid %ld, is not a "
			"'btrail record'; not signalling it", session, pid);
		return BT_EXIT_FAIL;
	}
	if (kill((pid_t)pid, SIGUSR2) < 0) {
		err_msg("snapshot: signalling pid %ld: %s", pid,
			strerror(errno));
		return BT_EXIT_FAIL;
	}
	printf("asked recorder pid %ld of session %s for a snapshot\n", pid,
	       session);
	return BT_EXIT_OK;
}
