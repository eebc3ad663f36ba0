// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail import: a perf.data file (perf record -e intel_pt//, seekable or
 * pipe mode) as a bundle, so that every bundle tool reads it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <btrail/errno.h>
#include <btrail/perfdata.h>

#include "btrail.h"

static int usage(FILE *f, int status)
{
	fprintf(f,
		"Usage: %s import PERF.DATA -o BUNDLE [--big-endian]\n"
		"         [--with-binaries] [--sysroot DIR]\n"
		"\n"
		"Turn PERF.DATA (perf record -e intel_pt//, either layout; '-'\n"
		"reads standard input) into bundle directory BUNDLE (it must\n"
		"not exist): sideband records become bt.* events, each CPU's\n"
		"trace bt.pt chunks, the recording's CPU the bundle's machine.\n"
		"\n",
		bin_name);
	fputs(bundle_args_help, f);
	return status;
}

int do_import(int argc, char **argv)
{
	struct bt_perfdata_import_opts o = { .sz = sizeof(o) };
	struct bt_perfdata_import_stats st = { 0 };
	struct bundle_args a;
	const char *out, *in;
	int status, err;

	if (!parse_bundle_args(argc, argv, "import", "PERF.DATA", &a, usage,
			       &status))
		return status;
	out = a.out;
	o.big_endian = a.big_endian;
	o.with_binaries = a.with_binaries;
	o.sysroot = a.sysroot;
	in = argv[optind];
	o.progress = progress_tty();
	o.stats = &st;
	err = bt_perfdata_import(in, out, &o);
	if (err == -EEXIST) {
		err_msg("import: '%s' exists; name a new bundle directory",
			out);
		return BT_EXIT_FAIL;
	}
	if (err == -BT_ERRNO_FORMAT) {
		err_msg("import: %s is not a perf.data file we can read (the "
			"message above says where and why)", in);
		return BT_EXIT_DATA;
	}
	if (err) {
		err_msg("import: %s -> %s: %s", in, out, bt_strerror(err));
		return BT_EXIT_FAIL;
	}
	fprintf(stderr, "%s: import: wrote %s: %" PRIu64 " records, %"
		PRIu64 " events, %u CPUs, %" PRIu64 " bytes of trace in %"
		PRIu64 " chunks, %" PRIu64 " mappings (%" PRIu64
		" with a build-id)\n", bin_name, out, st.records, st.events,
		st.cpus, st.pt_bytes, st.pt_chunks, st.mmaps, st.build_ids);
	return BT_EXIT_OK;
}
