/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ptxed's command line for `btrail script` in raw PT mode, parsed here
 * in the library so that the CLI and the in-process corpus test read
 * option strings the same way.
 */
#ifndef BT_DECODER_PT_ARGS_H
#define BT_DECODER_PT_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <btrail/decoder.h>

struct ptd_pevent_arg {
	const char *spec;
	struct bt_pevent_opts o;
};

struct ptd_args {
	struct bt_ptdec_opts dec;
	struct bt_ptdec_print_opts print;
	const char *pt;			/* --pt */
	const char **raw;		/* --raw, in order */
	size_t nr_raw;
	struct ptd_pevent_arg *pev;	/* --pevent:primary/secondary */
	size_t nr_pev;
	struct bt_pevent_opts pev_cur;	/* --pevent:* given so far */
	bool help;
	char err[256];			/* why parsing failed */
};

/*
 * Parse @argc words of @argv (no program name) into @a, which the
 * caller zeroes first; it may be called again to add more words (later
 * words win). Returns 0, or -EINVAL with a->err saying why, or -ENOMEM.
 * The strings of @argv must outlive @a.
 */
int ptd_args_parse(struct ptd_args *a, int argc, char **argv);

/* Free what ptd_args_parse() allocated. */
void ptd_args_free(struct ptd_args *a);

/*
 * The session of @a without its perf sideband: the --raw images and the
 * --pt trace loaded. Returns 0 with *@out set (free it with
 * bt_ptdec__free()), or -errno with the problem logged.
 */
int ptd_args_open(const struct ptd_args *a, struct bt_ptdec **out);

/*
 * Build the session the arguments describe and print its listing to
 * @out. Problems setting it up (no --pt, a missing file) go to the log
 * and return -errno; decode errors are part of the listing.
 */
int ptd_args_run(const struct ptd_args *a, FILE *out,
		 struct bt_ptdec_stats *stats);

#endif /* BT_DECODER_PT_ARGS_H */
