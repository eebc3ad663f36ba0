// SPDX-License-Identifier: BSD-3-Clause
/*
 * Small file helpers that both the collector (bundle images/) and the
 * decoder (CTF export) need; they may not include each other.
 */
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int bt_copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in, out, err = 0;
	ssize_t n;

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		err = -errno;
		close(in);
		return err;
	}
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		for (ssize_t o = 0; o < n;) {
			ssize_t w = write(out, buf + o, (size_t)(n - o));

			if (w < 0) {
				if (errno == EINTR)
					continue;
				err = -errno;
				break;
			}
			o += w;
		}
		if (err)
			break;
	}
	close(in);
	if (close(out) && !err)
		err = -errno;
	return err;
}
