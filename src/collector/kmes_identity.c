// SPDX-License-Identifier: BSD-3-Clause
#include "collector/kmes_identity.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "common/log.h"

static bool read_small_file(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

/* Field 22 of /proc/<pid>/stat, after the last ')' (comm may hold any). */
static uint64_t process_start_time(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long start = 0;
	const char *p;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!read_small_file(path, buf, sizeof(buf)))
		return 0;
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* After ") " comes field 3 (state); walk to field 22. */
	for (field = 2; *p && field < 22; p++) {
		if (*p == ' ')
			field++;
	}
	if (sscanf(p, "%llu", &start) != 1)
		return 0;
	return start;
}

/* RFC 4122 stores Data1..3 big-endian; the spec's GUIDs are little. */
static void uuid_to_guid(const uuid_t u, uint8_t g[16])
{
	g[0] = u[3];
	g[1] = u[2];
	g[2] = u[1];
	g[3] = u[0];
	g[4] = u[5];
	g[5] = u[4];
	g[6] = u[7];
	g[7] = u[6];
	memcpy(g + 8, u + 8, 8);
}

static void name_guid(const uuid_t ns, const char *name, uint8_t g[16])
{
	uuid_t u;

	uuid_generate_sha1(u, ns, name, strlen(name));
	uuid_to_guid(u, g);
}

void kmes_identity_get(struct kmes_identity *id, pid_t pid, uid_t uid,
		       uid_t euid)
{
	char buf[128];
	uuid_t boot;

	memset(id, 0, sizeof(*id));
	if (!read_small_file("/proc/sys/kernel/random/boot_id", buf,
			     sizeof(buf)))
		return;
	buf[strcspn(buf, "\n")] = '\0';
	if (uuid_parse(buf, boot) < 0) {
		pr_warn("kmes: unreadable boot id '%s'; identity GUIDs are null",
			buf);
		return;
	}
	snprintf(buf, sizeof(buf), "process:%d:%" PRIu64, (int)pid,
		 process_start_time(pid));
	name_guid(boot, buf, id->process);
	snprintf(buf, sizeof(buf), "token:%u", (unsigned)uid);
	name_guid(boot, buf, id->true_token);
	snprintf(buf, sizeof(buf), "token:%u", (unsigned)euid);
	name_guid(boot, buf, id->effective_token);
}
