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
		"\n"
		"  -o, --output BUNDLE   the bundle directory to create\n"
		"      --big-endian      write big-endian CTF streams\n"
		"      --with-binaries   copy every mapped binary into images/\n"
		"      --sysroot DIR     find mapped binaries under DIR\n",
		bin_name);
	return status;
}

int do_recover(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output",        required_argument, NULL, 'o' },
		{ "big-endian",    no_argument,       NULL, 'b' },
		{ "with-binaries", no_argument,       NULL, 'w' },
		{ "sysroot",       required_argument, NULL, 's' },
		{ "help",          no_argument,       NULL, 'h' },
		{ NULL,            0,                 NULL, 0 },
	};
	struct bt_bundle_write_opts o = { .sz = sizeof(o) };
	const char *out = NULL;
	int c, err;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'b':
			o.big_endian = true;
			break;
		case 'w':
			o.with_binaries = true;
			break;
		case 's':
			o.sysroot = optarg;
			break;
		case 'h':
			return usage(stdout, BT_EXIT_OK);
		default:
			return usage(stderr, BT_EXIT_USAGE);
		}
	}
	if (optind + 1 != argc || !out) {
		err_msg("recover: need one SESSION and -o BUNDLE");
		return usage(stderr, BT_EXIT_USAGE);
	}
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
