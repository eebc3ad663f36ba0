/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libipt's test corpus (../shared/testdata/libipt-corpus, beside the
 * repository) as the raw PT decoder tests read it: where it is, its
 * files read whole, and the cases of its manifest.tsv one at a time.
 */
#ifndef BT_TESTS_CORPUS_H
#define BT_TESTS_CORPUS_H

#include <stdbool.h>
#include <stddef.h>

/* The corpus directory; skips the test when it is not there. */
const char *pc_corpus(void);

/*
 * The whole of file @path, NUL-terminated, malloc'd; its length in *@len
 * when @len is not NULL. NULL when @path cannot be opened.
 */
char *pc_slurp(const char *path, size_t *len);

/* The manifest, read and split into its case lines. */
struct pc_manifest {
	char *text;
	char *save;	/* strtok_r's place */
};

/* Read @dir's manifest.tsv and pass its header; fails the test on error. */
void pc_manifest__open(struct pc_manifest *m, const char *dir);

/*
 * The next case line, split in place at the tabs into at most @max
 * columns in @f. Returns the number of columns, 0 after the last line.
 */
int pc_manifest__next(struct pc_manifest *m, char **f, int max);

void pc_manifest__close(struct pc_manifest *m);

/* A manifest verdict of Debian's libipt 2.0.5 ptxed that is a pass. */
bool pc_deb_passes(const char *s);

#endif /* BT_TESTS_CORPUS_H */
