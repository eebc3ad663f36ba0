// SPDX-License-Identifier: BSD-3-Clause
/*
 * The consumer's entry points with the spec's names: kmes_attach(),
 * kmes_map(), kmes_unmap(). They return -1 (or NULL) with errno, as the
 * spec's syscalls do.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <btrail/kmes.h>

#include "collector/kmes_path.h"
#include "collector/kmes_ring.h"
#include "common/log.h"

/* Count ring.0, ring.1, ... as the slots (slots are never removed). */
static uint32_t count_slots(int dirfd)
{
	uint32_t n = 0;
	char name[32];

	for (;; n++) {
		snprintf(name, sizeof(name), KMES_RING_FMT, n);
		if (faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			return n;
	}
}

/* Validate the static part of the ring behind @fd; -EPROTO, logged. */
static int check_ring_fd(int fd, const char *what, uint64_t *capacity)
{
	unsigned char page[KMES_PAGE_SIZE];
	const char *why;
	struct stat st;
	unsigned off = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)KMES_PAGE_SIZE ||
	    pread(fd, page, sizeof(page), 0) != (ssize_t)sizeof(page)) {
		pr_warn("kmes: %s: not a ring file (too short)", what);
		return -EPROTO;
	}
	why = kmes_page_check(page, (uint64_t)st.st_size, &off);
	if (why) {
		pr_warn("kmes: %s: offset %u: %s", what, off, why);
		return -EPROTO;
	}
	*capacity = bt_le64(page + KMES_OFF_CAPACITY);
	return 0;
}

int kmes_attach(const char *session, uint32_t cpu_id, uint64_t *capacity)
{
	char path[PATH_MAX], name[32];
	uint64_t cap;
	int dirfd, fd, err;

	if (!session) {
		errno = EFAULT;
		return -1;
	}
	err = kmes_path_lookup(session, path, sizeof(path));
	if (err) {
		errno = -err;
		return -1;
	}
	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		if (errno == ENOTDIR)
			errno = ENOENT;
		return -1;
	}
	/* A directory without the producer's lock file is no session. */
	if (faccessat(dirfd, KMES_LOCK_NAME, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
		err = errno;
		close(dirfd);
		errno = err;
		return -1;
	}
	if (cpu_id == KMES_ATTACH_QUERY_SLOTS) {
		if (!capacity) {
			close(dirfd);
			errno = EFAULT;
			return -1;
		}
		*capacity = count_slots(dirfd);
		close(dirfd);
		return 0;
	}
	snprintf(name, sizeof(name), KMES_RING_FMT, cpu_id);
	/* Read-only: the producer page and data cannot be made writable. */
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	err = errno;
	close(dirfd);
	if (fd < 0) {
		errno = err == ENOENT ? EINVAL : err;	/* past the last slot */
		return -1;
	}
	snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%s", name);
	err = check_ring_fd(fd, path, &cap);
	if (!err && !capacity)
		err = -EFAULT;		/* the spec closes the fd again */
	if (err) {
		close(fd);
		errno = -err;
		return -1;
	}
	*capacity = cap;
	return fd;
}

/*
 * The consumer page of the ring behind @fd: wake.<N> beside the ring file.
 * The ring may have been swapped out (its name then reads "... (deleted)")
 * but the consumer page is kept across swaps, so the sibling is still
 * right; the inode stored in the ring says whether it is.
 */
static int open_wake(int fd, uint64_t want_ino)
{
	char link[64], path[PATH_MAX + 16];
	const char *del = " (deleted)";
	struct stat st;
	char *slash, *dot;
	ssize_t n;
	size_t dl = strlen(del);
	int wfd;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return -errno;
	path[n] = '\0';
	if ((size_t)n > dl && !strcmp(path + n - dl, del))
		path[n - dl] = '\0';
	slash = strrchr(path, '/');
	dot = slash ? strrchr(slash, '.') : NULL;
	if (!slash || !dot || strncmp(slash + 1, "ring.", 5))
		return -EINVAL;
	/* ring.<N>[.new] -> wake.<N> */
	memcpy(slash + 1, "wake", 4);
	if (!strcmp(dot, ".new"))
		*dot = '\0';
	wfd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (wfd < 0)
		return errno == ENOENT ? -ESTALE : -errno;
	if (fstat(wfd, &st) < 0 || st.st_size != KMES_PAGE_SIZE ||
	    (uint64_t)st.st_ino != want_ino) {
		close(wfd);
		return -ESTALE;
	}
	return wfd;
}

/*
 * Check that @fd is an open, sound ring of @capacity and read its
 * producer page into @page. 0 or a negative errno (kmes_map()'s).
 */
static int ring_page(int fd, uint64_t capacity,
		     unsigned char page[KMES_PAGE_SIZE])
{
	uint64_t cap;
	int err;

	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	if (!kmes_capacity_valid(capacity))
		return -EINVAL;
	err = check_ring_fd(fd, "ring", &cap);
	if (err)
		return err;
	if (cap != capacity)
		return -EINVAL;
	if (pread(fd, page, KMES_PAGE_SIZE, 0) != KMES_PAGE_SIZE)
		return -EPROTO;
	return 0;
}

void *kmes_map(int fd, uint64_t capacity)
{
	unsigned char page[KMES_PAGE_SIZE];
	void *base;
	int wfd, err;

	err = ring_page(fd, capacity, page);
	if (err)
		return errno = -err, NULL;
	wfd = open_wake(fd, bt_le64(page + BT_KMES_XOFF_WAKE_INO));
	if (wfd < 0)
		return errno = -wfd, NULL;
	base = kmes_map_layout(fd, wfd, capacity, false);
	err = errno;
	close(wfd);		/* the mapping keeps the page */
	errno = err;
	return base;
}

void *bt_kmes_map_fds(int ring_fd, int wake_fd, uint64_t capacity)
{
	unsigned char page[KMES_PAGE_SIZE];
	struct stat st;
	int err;

	if (wake_fd < 0 || fcntl(wake_fd, F_GETFD) < 0)
		return errno = EBADF, NULL;
	err = ring_page(ring_fd, capacity, page);
	if (err)
		return errno = -err, NULL;
	/* The ring names its consumer page by inode: a stranger is refused. */
	if (fstat(wake_fd, &st) < 0 || st.st_size != KMES_PAGE_SIZE ||
	    (uint64_t)st.st_ino != bt_le64(page + BT_KMES_XOFF_WAKE_INO))
		return errno = ESTALE, NULL;
	return kmes_map_layout(ring_fd, wake_fd, capacity, false);
}

int kmes_unmap(void *base, uint64_t capacity)
{
	if (!base || !kmes_capacity_valid(capacity)) {
		errno = EINVAL;
		return -1;
	}
	return munmap(base, KMES_MAP_SIZE(capacity));
}
