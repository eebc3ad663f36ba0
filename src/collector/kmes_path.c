// SPDX-License-Identifier: BSD-3-Clause
#include "collector/kmes_path.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

/* Room left in a path for "/ring.65535.new" and the like. */
#define KMES_PATH_SLACK	32

int kmes_name_check(const char *name)
{
	size_t len;

	if (!name)
		return -EFAULT;
	len = strlen(name);
	if (len == 0 || len >= PATH_MAX - KMES_PATH_SLACK)
		return -EINVAL;
	if (strchr(name, '/'))
		return 0;		/* a path: the directory itself */
	if (len > NAME_MAX - KMES_PATH_SLACK || name[0] == '.')
		return -EINVAL;
	for (const char *p = name; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr("._-+@:", c)))
			return -EINVAL;
	}
	return 0;
}

static int fmt_path(char *out, size_t outlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fmt_path(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * $XDG_RUNTIME_DIR counts only when it is an existing directory of the
 * effective user: under sudo it still names the invoking user's
 * directory, where root's sessions do not belong.
 */
static const char *xdg_dir(void)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	if (!x || x[0] != '/' || lstat(x, &st) < 0)
		return NULL;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return NULL;
	return x;
}

static int base_xdg(char *out, size_t outlen)
{
	const char *x = xdg_dir();

	if (!x)
		return -ENOENT;
	return fmt_path(out, outlen, "%s/btrail", x);
}

static int base_shm(char *out, size_t outlen)
{
	return fmt_path(out, outlen, "/dev/shm/btrail-%u", (unsigned)geteuid());
}

int kmes_path_lookup(const char *name, char *out, size_t outlen)
{
	char base[PATH_MAX];
	struct stat st;
	int err;

	err = kmes_name_check(name);
	if (err)
		return err;
	if (strchr(name, '/'))
		return fmt_path(out, outlen, "%s", name);
	if (base_xdg(base, sizeof(base)) == 0) {
		err = fmt_path(out, outlen, "%s/%s", base, name);
		if (err)
			return err;
		if (stat(out, &st) == 0 || errno != ENOENT)
			return 0;
	}
	err = base_shm(base, sizeof(base));
	if (err)
		return err;
	return fmt_path(out, outlen, "%s/%s", base, name);
}

/*
 * Make @dir (mode @mode) or accept it if it is already a directory of ours
 * that nobody else can write to; /dev/shm is shared by every user, so a
 * planted symlink or a foreign directory must be refused.
 */
static int make_private_dir(const char *dir, mode_t mode)
{
	struct stat st;

	if (mkdir(dir, mode) < 0 && errno != EEXIST) {
		int err = -errno;

		pr_warn("kmes: cannot create %s: %s", dir, strerror(-err));
		return err;
	}
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022)) {
		pr_warn("kmes: %s is not a private directory of uid %u "
			"(owner %u, mode %04o); remove it or set XDG_RUNTIME_DIR",
			dir, (unsigned)geteuid(), (unsigned)st.st_uid,
			(unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	/* A group session must be reachable: search permission only. */
	if ((mode & 011) && (st.st_mode & 011) != 011 &&
	    chmod(dir, (st.st_mode & 0777) | 011) < 0)
		return -errno;
	return 0;
}

int kmes_path_for_create(const char *name, bool group, char *out,
			 size_t outlen)
{
	char base[PATH_MAX], other[PATH_MAX];
	struct stat st;
	int err;

	err = kmes_name_check(name);
	if (err)
		return err;
	if (strchr(name, '/')) {
		err = fmt_path(out, outlen, "%s", name);
		if (err)
			return err;
		return lstat(out, &st) == 0 ? -EEXIST : 0;
	}

	/*
	 * $XDG_RUNTIME_DIR is 0700 and not ours to open up, so a session
	 * that a group must reach goes to /dev/shm.
	 */
	if (!group && base_xdg(base, sizeof(base)) == 0) {
		err = make_private_dir(base, 0700);
	} else {
		err = base_shm(base, sizeof(base));
		if (!err)
			err = make_private_dir(base, group ? 0711 : 0700);
	}
	if (err)
		return err;
	err = fmt_path(out, outlen, "%s/%s", base, name);
	if (err)
		return err;
	if (lstat(out, &st) == 0)
		return -EEXIST;
	/* The name must be unique across both places a lookup searches. */
	if (kmes_path_lookup(name, other, sizeof(other)) == 0 &&
	    lstat(other, &st) == 0)
		return -EEXIST;
	return 0;
}
