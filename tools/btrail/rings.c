// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail rings: what ring sessions exist, and the state of each ring of
 * one: positions, generation, producer, counters, placement.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <btrail/errno.h>
#include <btrail/kmes.h>

#include "btrail.h"

static const char *kind_name(uint32_t k)
{
	return k == BT_KMES_RING_TASK ? "task" : "cpu";
}

static const char *status_name(uint32_t st)
{
	static const char *const names[] = { "online", "offline", "removed" };

	return st < 3 ? names[st] : "?";
}

static const char *producer_state(uint32_t pid)
{
	if (!pid)
		return "none";
	return kill((pid_t)pid, 0) == 0 || errno == EPERM ? "running" : "gone";
}

static int show_session(const char *name)
{
	struct bt_kmes_reader *r;
	uint32_t n;

	r = bt_kmes_reader__new(name, NULL);
	if (!r) {
		err_msg("rings: cannot attach to '%s': %s", name,
			bt_strerror(errno));
		return BT_EXIT_FAIL;
	}
	n = bt_kmes_reader__slots(r);
	printf("%-5s %-4s %7s %-8s %10s %4s %14s %14s %10s %12s %8s %8s %4s %s\n",
	       "slot", "kind", "tid", "status", "capacity", "gen",
	       "write_pos", "tail_pos", "live", "last seq", "dropped",
	       "lost", "node", "producer");
	for (uint32_t i = 0; i < n; i++) {
		struct bt_kmes_slot_stats st;
		char node[16];

		if (bt_kmes_reader__stats(r, i, &st) < 0)
			continue;
		if (st.numa_node >= 0)
			snprintf(node, sizeof(node), "%d", st.numa_node);
		else
			snprintf(node, sizeof(node), st.numa_node == -2 ?
				 "mixed" : "-");
		printf("%-5u %-4s %7u %-8s %10" PRIu64 " %4" PRIu64 " %14" PRIu64
		       " %14" PRIu64 " %10" PRIu64 " %12" PRIu64 " %8" PRIu64
		       " %8" PRIu64 " %4s %u (%s)\n", i, kind_name(st.kind),
		       st.tid, status_name(st.status), st.capacity,
		       st.generation, st.write_pos, st.tail_pos,
		       st.write_pos - st.tail_pos, st.produced, st.dropped,
		       st.lost, node, st.producer_pid,
		       producer_state(st.producer_pid));
	}
	bt_kmes_reader__free(r);
	return BT_EXIT_OK;
}

static void list_dir(const char *base, int *count)
{
	DIR *d = opendir(base);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[PATH_MAX];
		uint64_t slots = 0, cap = 0;
		struct stat st;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", base, de->d_name) >=
		    (int)sizeof(path) || stat(path, &st) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		if (kmes_attach(path, KMES_ATTACH_QUERY_SLOTS, &slots) < 0)
			continue;
		if (!*count)
			printf("%-20s %6s %10s %s\n", "session", "rings",
			       "capacity", "directory");
		fd = slots ? kmes_attach(path, 0, &cap) : -1;
		if (fd >= 0)
			close(fd);
		printf("%-20s %6" PRIu64 " %10" PRIu64 " %s\n", de->d_name,
		       slots, cap, path);
		(*count)++;
	}
	closedir(d);
}

int do_rings(int argc, char **argv)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char base[PATH_MAX];
	struct stat st;
	int count = 0;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("Usage: %s rings [SESSION]\n\n"
		       "Without SESSION, list the ring sessions of this user.\n"
		       "With SESSION, show each ring: kind, task, CPU status,\n"
		       "capacity, generation, positions, the last sequence\n"
		       "spent, dropped and lost events, NUMA node and producer.\n",
		       bin_name);
		return BT_EXIT_OK;
	}
	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		err_msg("usage: %s rings [SESSION]", bin_name);
		return BT_EXIT_USAGE;
	}
	if (argc == 2)
		return show_session(argv[1]);
	/* As name lookup does: only a runtime directory of our own counts. */
	if (xdg && xdg[0] == '/' && lstat(xdg, &st) == 0 && S_ISDIR(st.st_mode) &&
	    st.st_uid == geteuid()) {
		snprintf(base, sizeof(base), "%s/btrail", xdg);
		list_dir(base, &count);
	}
	snprintf(base, sizeof(base), "/dev/shm/btrail-%u", (unsigned)geteuid());
	list_dir(base, &count);
	if (!count)
		printf("no ring sessions (create one with '%s kmes create NAME')\n",
		       bin_name);
	return BT_EXIT_OK;
}
