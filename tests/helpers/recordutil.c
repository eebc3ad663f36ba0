// SPDX-License-Identifier: BSD-3-Clause
#include "helpers/recordutil.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers/testutil.h"

const char *ru_prog(const char *name)
{
	static char path[8][PATH_MAX];
	static int i;
	const char *dir = getenv("BTRAIL_PROGS");
	char *p = path[i++ % 8];

	if (!dir)
		cr_skip_test("BTRAIL_PROGS is not set (make check sets it)");
	snprintf(p, PATH_MAX, "%s/%s", dir, name);
	if (access(p, X_OK) < 0)
		cr_skip_test("%s is not built", p);
	return p;
}

const char *ru_bin(void)
{
	const char *b = tu_btrail_bin();

	if (!b)
		cr_skip_test("BTRAIL_BIN is not set (make check sets it)");
	return b;
}

void ru_tmpdir(char *dir, size_t size, const char *tag)
{
	int n = snprintf(dir, size, "/tmp/bt-%s-XXXXXX", tag);

	cr_assert(lt(sz, (size_t)n, size), "tag %s", tag);
	cr_assert(ne(ptr, mkdtemp(dir), NULL), "mkdtemp %s", dir);
}

void ru_rmrf(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert(eq(int, system(cmd), 0), "%s", cmd);
}

void ru_record(struct ru_rec *r, const char *tag, const char *fac,
	       const char *p, bool check_status)
{
	char *argv[] = {
		(char *)ru_bin(), "record", "-e", (char *)fac, "--start-at",
		"main", "-o", r->bundle, "--", (char *)ru_prog(p), NULL,
	};
	char *out = NULL, *err = NULL;
	struct stat st;
	int status;

	ru_tmpdir(r->dir, sizeof(r->dir), tag);
	snprintf(r->bundle, sizeof(r->bundle), "%s/b", r->dir);
	status = tu_run(argv, &out, &err);
	/* the program's status: 0, or 128 + the signal it died of */
	if (check_status)
		cr_assert(status == 0 || status > 128,
			  "record %s -e %s: %d\n%s", p, fac, status, err);
	cr_assert(eq(int, stat(r->bundle, &st), 0), "no bundle: %s", err);
	free(out);
	free(err);
}

void ru_rec_free(struct ru_rec *r)
{
	ru_rmrf(r->dir);
}
