/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What every libFuzzer harness of tests/fuzz/ shares: silenced library
 * messages (a reader that refuses input logs why, and millions of runs
 * would drown the fuzzer's own output), one private scratch directory,
 * and files written whole. Header-only so that a new harness is one .c
 * file: the Makefile's `fuzz` target builds every tests/fuzz/fuzz_*.c
 * and seeds it from tests/fuzz/corpus/<name>/.
 *
 * A harness that can make its own seeds does so when BT_FUZZ_SEEDS names
 * a directory (see docs/fuzzing.md).
 */
#ifndef BT_TESTS_FUZZ_UTIL_H
#define BT_TESTS_FUZZ_UTIL_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <btrail/log.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

__attribute__((format(printf, 2, 0)))
static inline void fz_print_none(enum bt_log_level level, const char *fmt,
			  va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
}

/* Messages off, unless BT_FUZZ_VERBOSE is set (to see why input fails). */
static inline void fz_quiet(void)
{
	if (!getenv("BT_FUZZ_VERBOSE"))
		bt_set_print(fz_print_none);
}

static char fz_dir_buf[256];

static inline void fz_dir_cleanup(void)
{
	char cmd[300];

	if (fz_dir_buf[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fz_dir_buf);
		if (system(cmd))
			fprintf(stderr, "fuzz: cannot remove %s\n", fz_dir_buf);
	}
}

/* This process's scratch directory, made on first use, removed at exit. */
static inline const char *fz_dir(void)
{
	if (!fz_dir_buf[0]) {
		const char *t = getenv("TMPDIR");

		snprintf(fz_dir_buf, sizeof(fz_dir_buf), "%s/btfuzz-XXXXXX",
			 t && *t ? t : "/tmp");
		if (!mkdtemp(fz_dir_buf)) {
			perror("fuzz: mkdtemp");
			abort();
		}
		atexit(fz_dir_cleanup);
	}
	return fz_dir_buf;
}

/* Write @n bytes at @p to @path (truncated); abort on failure. */
static inline void fz_write(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	const char *c = p;

	if (fd < 0) {
		perror(path);
		abort();
	}
	while (n) {
		ssize_t w = write(fd, c, n);

		if (w <= 0) {
			perror(path);
			abort();
		}
		c += w;
		n -= (size_t)w;
	}
	close(fd);
}

/* Read all of @path into a malloc'd buffer; NULL if it cannot be read. */
static inline void *fz_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (n == cap) {
			char *nb = realloc(buf, cap ? 2 * cap : 65536);

			if (!nb)
				abort();
			buf = nb;
			cap = cap ? 2 * cap : 65536;
		}
		size_t r = fread(buf + n, 1, cap - n, f);

		if (!r)
			break;
		n += r;
	}
	fclose(f);
	*len = n;
	return buf;
}

/* When BT_FUZZ_SEEDS is set: write seed @name there (@n bytes at @p). */
static inline void fz_seed(const char *name, const void *p, size_t n)
{
	const char *d = getenv("BT_FUZZ_SEEDS");
	char path[512];

	if (!d || !*d)
		return;
	snprintf(path, sizeof(path), "%s/%s", d, name);
	fz_write(path, p, n);
}

#endif /* BT_TESTS_FUZZ_UTIL_H */
