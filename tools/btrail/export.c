// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail export: a bundle's reconstruction as JSON Lines or Chrome Trace
 * Event JSON (bt_recon__export()), or its CTF trace on its own
 * (bt_bundle_export_ctf()). Output goes to a temporary file renamed into
 * place, so a failed export leaves no half-written OUT.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <btrail/decoder.h>
#include <btrail/errno.h>

#include "btrail.h"

static int usage(FILE *f, int status)
{
	fprintf(f,
"Usage: %s export BUNDLE --format json|chrome|ctf -o OUT\n"
"                 [--sysroot DIR] [--buildid-dir DIR] [--cpu F/M[/S]]\n"
"\n"
"Write what bundle BUNDLE holds in another format:\n"
"  json     JSON Lines: every instruction, branch, event, gap and error\n"
"           (docs/script-json.md); OUT is a file, '-' for stdout\n"
"  chrome   Chrome Trace Event JSON, one complete event per call span,\n"
"           for Perfetto (ui.perfetto.dev) or chrome://tracing; OUT is a\n"
"           file, '-' for stdout\n"
"  ctf      the bundle's CTF trace (metadata and stream files), checked\n"
"           event by event; OUT is a new directory babeltrace2 reads\n"
"\n"
"Exit status: 0 done, 1 the bundle could not be read or OUT written,\n"
"2 bad command line, 3 the bundle is malformed.\n",
		bin_name);
	return status;
}

static int fail(const char *what, int err)
{
	err_msg("export: %s: %s", what, bt_strerror(err));
	return err == -BT_ERRNO_FORMAT || err == BT_ERRNO_FORMAT ?
	       BT_EXIT_DATA : BT_EXIT_FAIL;
}

static int export_file(const char *bundle, const char *out,
		       enum bt_export_format fmt,
		       const struct bt_recon_opts *ro)
{
	char tmp[4096];
	struct bt_recon *r;
	bool to_stdout = !strcmp(out, "-");
	FILE *f = stdout;
	int err, n;

	r = bt_recon__open(bundle, ro);
	if (!r)
		return fail(bundle, errno);
	if (!to_stdout) {
		n = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", out, (int)getpid());
		if (n < 0 || (size_t)n >= sizeof(tmp)) {
			bt_recon__free(r);
			return fail(out, -ENAMETOOLONG);
		}
		f = fopen(tmp, "wx");
		if (!f) {
			err = -errno;
			bt_recon__free(r);
			return fail(out, err);
		}
	}
	err = bt_recon__export(r, f, fmt);
	bt_recon__free(r);
	if (!to_stdout) {
		if (fclose(f) && !err)
			err = -EIO;
		if (!err && rename(tmp, out))
			err = -errno;
		if (err)
			unlink(tmp);
	}
	if (err)
		return fail(err == -EIO ? out : bundle, err);
	return BT_EXIT_OK;
}

int do_export(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "sysroot", required_argument, NULL, 's' },
		{ "buildid-dir", required_argument, NULL, 'B' },
		{ "cpu", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bt_recon_opts ro = { .sz = sizeof(ro) };
	const char *fmt = NULL, *out = NULL, *bundle;
	struct stat st;
	int c, err;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "f:o:h", lo, NULL)) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 's':
			ro.sysroot = optarg;
			break;
		case 'B':
			ro.buildid_dir = optarg;
			break;
		case 'C':
			ro.cpu = optarg;
			break;
		case 'h':
			return usage(stdout, BT_EXIT_OK);
		default:
			err_msg("export: bad option '%s'; try '%s export "
				"--help'", argv[optind - 1], bin_name);
			return BT_EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || !fmt || !out) {
		err_msg("export: give BUNDLE, --format json|chrome|ctf and "
			"-o OUT; try '%s export --help'", bin_name);
		return BT_EXIT_USAGE;
	}
	bundle = argv[optind];
	ro.progress = progress_tty();
	if (strcmp(out, "-") && !lstat(out, &st)) {
		err_msg("export: %s exists; give a new name", out);
		return BT_EXIT_FAIL;
	}
	if (!strcmp(fmt, "json"))
		return export_file(bundle, out, BT_EXPORT_JSON, &ro);
	if (!strcmp(fmt, "chrome"))
		return export_file(bundle, out, BT_EXPORT_CHROME, &ro);
	if (!strcmp(fmt, "ctf")) {
		if (!strcmp(out, "-")) {
			err_msg("export: ctf is a directory; give -o DIR");
			return BT_EXIT_USAGE;
		}
		err = bt_bundle_export_ctf(bundle, out);
		return err ? fail(bundle, err) : BT_EXIT_OK;
	}
	err_msg("export: unknown format '%s' (json, chrome or ctf)", fmt);
	return BT_EXIT_USAGE;
}
