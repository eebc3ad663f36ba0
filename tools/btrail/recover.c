// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail recover: write the bundle of an existing ring session, typically
 * one whose recorder died (kill -9): the rings are files and keep every
 * event committed before the death.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <btrail/bundle.h>
#include <btrail/errno.h>

#include "btrail.h"

static int usage(FILE *f, int status)
{
	fprintf(f,
		"Usage: %s recover SESSION -o BUNDLE [--big-endian]\n"
		"         [--with-binaries] [--sysroot DIR]\n"
		"\n"
		"Write every event still in the rings of SESSION (the producer\n"
		"may be dead) as bundle directory BUNDLE (it must not exist).\n"
		"\n",
		bin_name);
	fputs(bundle_args_help, f);
	return status;
}

int do_recover(int argc, char **argv)
{
	struct bt_bundle_write_opts o = { .sz = sizeof(o) };
	struct bundle_args a;
	const char *out;
	int status, err;

	if (!parse_bundle_args(argc, argv, "recover", "SESSION", &a, usage,
			       &status))
		return status;
	out = a.out;
	o.big_endian = a.big_endian;
	o.with_binaries = a.with_binaries;
	o.sysroot = a.sysroot;
	o.progress = progress_tty();
	err = bt_bundle_write(argv[optind], out, &o);
	if (err == -ENOENT) {
		err_msg("recover: no ring session '%s'; 'btrail rings' lists "
			"them", argv[optind]);
		return BT_EXIT_FAIL;
	}
	if (err == -EEXIST) {
		err_msg("recover: '%s' exists; name a new bundle directory",
			out);
		return BT_EXIT_FAIL;
	}
	if (err) {
		err_msg("recover: %s -> %s: %s", argv[optind], out,
			bt_strerror(err));
		return BT_EXIT_FAIL;
	}
	fprintf(stderr, "%s: recover: wrote %s\n", bin_name, out);
	return BT_EXIT_OK;
}
