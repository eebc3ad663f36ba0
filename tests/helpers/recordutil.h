/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers of the tests that drive the btrail CLI on the programs of
 * tests/progs/: where the binary and the programs are, fresh temporary
 * directories, and a bundle recorded with `btrail record`.
 */
#ifndef BT_TESTS_RECORDUTIL_H
#define BT_TESTS_RECORDUTIL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * $BTRAIL_PROGS/@name, in a static buffer of 8 rotating slots; skips the
 * test when BTRAIL_PROGS is not set or the program is not built.
 */
const char *ru_prog(const char *name);

/* The btrail binary under test; skips the test when there is none. */
const char *ru_bin(void);

/* Make @dir (@size bytes) a fresh "/tmp/bt-@tag-XXXXXX"; fails the test. */
void ru_tmpdir(char *dir, size_t size, const char *tag);

/* rm -rf @dir; fails the test unless that works. */
void ru_rmrf(const char *dir);

/* A bundle recorded into a temporary directory of its own. */
struct ru_rec {
	char dir[64];
	char bundle[128];
};

/*
 * Record program @p with facility @fac from main into a fresh bundle
 * @r->bundle in a fresh "/tmp/bt-@tag-XXXXXX". Fails the test when no
 * bundle is written, and, with @check_status, unless the program's
 * status is 0 or 128 + the signal it died of.
 */
void ru_record(struct ru_rec *r, const char *tag, const char *fac,
	       const char *p, bool check_status);

/* Remove @r's directory, bundle and all. */
void ru_rec_free(struct ru_rec *r);

#endif /* BT_TESTS_RECORDUTIL_H */
