// SPDX-License-Identifier: BSD-3-Clause
/*
 * Who holds a PMU: the perf event fds of other processes, found through
 * /proc/<pid>/fd (links to "anon_inode:[perf_event]"), and the PMU type
 * their fdinfo names where the kernel prints it. Kernels that print no
 * type still tell which processes hold perf events at all.
 */
#include "ds/caps.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* snprintf that truncates on purpose. */
__attribute__((format(printf, 3, 4)))
static void fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vsnprintf(buf, len, f, ap);
	va_end(ap);
}

/* Up to @len - 1 bytes of @dir/@file, NUL-terminated; length or -errno. */
static int read_small(const char *dir, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return (int)n;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
	}
	return true;
}

/* "pid 1234 (comm)" for @pid under @procfs. */
static void name_pid(const char *procfs, const char *pid, char *buf,
		     size_t len)
{
	char dir[PATH_MAX], comm[64];
	char *nl;

	snprintf(dir, sizeof(dir), "%s/%s", procfs, pid);
	if (read_small(dir, "comm", comm, sizeof(comm)) <= 0)
		snprintf(comm, sizeof(comm), "?");
	nl = strchr(comm, '\n');
	if (nl)
		*nl = '\0';
	snprintf(buf, len, "pid %s (%.32s)", pid, comm);
}

/*
 * Scan the fds of one process. Returns 1 when one of them is a perf
 * event whose fdinfo names @type, 0 when it has perf events but the
 * fdinfo names no type (*@untyped set), 2 when none, -errno when its fd
 * directory cannot be read.
 */
static int scan_pid(const char *procfs, const char *pid, uint64_t type,
		    bool *untyped)
{
	char dir[PATH_MAX], path[PATH_MAX + 64], link[64], info[2048];
	struct dirent *fd;
	bool perf = false;
	DIR *d;
	int ret = 2;

	snprintf(dir, sizeof(dir), "%s/%s/fd", procfs, pid);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((fd = readdir(d))) {
		ssize_t n;
		char *t;

		if (!all_digits(fd->d_name))
			continue;
		fmt(path, sizeof(path), "%s/%s", dir, fd->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, "anon_inode:[perf_event]"))
			continue;
		perf = true;
		snprintf(path, sizeof(path), "%s/%s/fdinfo", procfs, pid);
		if (read_small(path, fd->d_name, info, sizeof(info)) <= 0)
			continue;
		t = strstr(info, "perf_event_attr.type:");
		if (!t) {
			*untyped = true;
			continue;
		}
		if (strtoull(t + strlen("perf_event_attr.type:"), NULL, 10) == type) {
			ret = 1;
			break;
		}
	}
	closedir(d);
	if (ret == 2 && perf && *untyped)
		ret = 0;
	return ret;
}

int bt_caps__find_holder(const char *procfs, uint64_t pmu_type, char *holder,
			 size_t holder_len, char *why, size_t why_len)
{
	char self[24], names[3][48];
	unsigned candidates = 0, unreadable = 0;
	struct dirent *e;
	size_t pos;
	DIR *d;

	holder[0] = '\0';
	why[0] = '\0';
	snprintf(self, sizeof(self), "%d", (int)getpid());
	d = opendir(procfs);
	if (!d) {
		snprintf(why, why_len, "cannot read %s to find the holder: %s",
			 procfs, strerrorname_np(errno));
		return 0;
	}
	while ((e = readdir(d))) {
		bool untyped = false;
		int r;

		if (!all_digits(e->d_name) || !strcmp(e->d_name, self))
			continue;
		r = scan_pid(procfs, e->d_name, pmu_type, &untyped);
		if (r == 1) {
			name_pid(procfs, e->d_name, holder, holder_len);
			closedir(d);
			return 1;
		}
		if (r == 0) {
			if (candidates < 3)
				name_pid(procfs, e->d_name, names[candidates],
					 sizeof(names[0]));
			candidates++;
		} else if (r == -EACCES || r == -EPERM) {
			unreadable++;
		}
	}
	closedir(d);

	if (candidates) {
		pos = (size_t)snprintf(why, why_len, "perf events are held by ");
		for (unsigned i = 0; i < candidates && i < 3 && pos < why_len; i++)
			pos += (size_t)snprintf(why + pos, why_len - pos, "%s%s",
						i ? ", " : "", names[i]);
		if (candidates > 3 && pos < why_len)
			pos += (size_t)snprintf(why + pos, why_len - pos,
						" and %u more", candidates - 3);
		if (pos < why_len)
			snprintf(why + pos, why_len - pos, " (fdinfo does not "
				 "say which PMU)");
	} else if (unreadable) {
		snprintf(why, why_len, "holder not found: the fds of %u "
			 "processes are not readable (EACCES)", unreadable);
	} else {
		snprintf(why, why_len, "holder not found: no process in %s "
			 "has perf event fds", procfs);
	}
	return 0;
}
