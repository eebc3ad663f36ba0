// SPDX-License-Identifier: BSD-3-Clause
#include "helpers/corpus.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *pc_corpus(void)
{
	static char path[PATH_MAX];
	const char *src = getenv("BTRAIL_SRCDIR");

	if (!src)
		cr_skip_test("BTRAIL_SRCDIR is not set (make check sets it)");
	snprintf(path, sizeof(path), "%s/../shared/testdata/libipt-corpus",
		 src);
	if (access(path, R_OK))
		cr_skip_test("%s is absent: the shared test data is not beside "
			     "the repository", path);
	return path;
}

char *pc_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	cr_assert(ne(ptr, buf, NULL));
	n = (long)fread(buf, 1, (size_t)n, f);
	buf[n] = 0;
	if (len)
		*len = (size_t)n;
	fclose(f);
	return buf;
}

void pc_manifest__open(struct pc_manifest *m, const char *dir)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/manifest.tsv", dir);
	m->save = NULL;
	m->text = pc_slurp(path, NULL);
	cr_assert(ne(ptr, m->text, NULL), "%s", path);
	strtok_r(m->text, "\n", &m->save);	/* the header */
}

int pc_manifest__next(struct pc_manifest *m, char **f, int max)
{
	char *line = strtok_r(NULL, "\n", &m->save);
	int n = 0;

	if (!line)
		return 0;
	f[n++] = line;
	for (char *p = line; *p && n < max; p++) {
		if (*p == '\t') {
			*p = 0;
			f[n++] = p + 1;
		}
	}
	return n;
}

void pc_manifest__close(struct pc_manifest *m)
{
	free(m->text);
	m->text = NULL;
}

bool pc_deb_passes(const char *s)
{
	return !strcmp(s, "exact") || !strcmp(s, "pass-b");
}
