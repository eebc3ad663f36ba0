// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail report: the way to the crash of a bundle. Where it died (signal,
 * faulting instruction with its source line), the call stack rebuilt
 * from the trace, and the last branches. The work is bt_recon__report();
 * this file is the command line.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <btrail/decoder.h>
#include <btrail/errno.h>

#include "btrail.h"

static int usage(FILE *f, int status)
{
	fprintf(f,
		"Usage: %s report [options] BUNDLE\n"
		"\n"
		"Show how the program of bundle BUNDLE reached its crash: the\n"
		"signal and the faulting instruction, the call stack rebuilt\n"
		"from the trace (innermost first), and the last branches.\n"
		"\n"
		"  --branches N         show the last N branches (default 32)\n"
		"  --color WHEN         auto (a terminal), always or never\n"
		"  --sysroot DIR        find recorded binaries under DIR\n"
		"  --buildid-dir DIR    binaries as DIR/xx/rest by build-id\n"
		"  --cpu F/M[/S]        the CPU of a PT trace, for its errata\n"
		"  --insn-decoder       libipt's instruction decoder for PT\n"
		"  -h, --help           this text\n", bin_name);
	return status;
}

int do_report(int argc, char **argv)
{
	enum { O_BR = 256, O_COLOR, O_SYSROOT, O_BID, O_CPU, O_INSN };
	static const struct option lo[] = {
		{ "branches",	  required_argument, NULL, O_BR },
		{ "color",	  required_argument, NULL, O_COLOR },
		{ "sysroot",	  required_argument, NULL, O_SYSROOT },
		{ "buildid-dir",  required_argument, NULL, O_BID },
		{ "cpu",	  required_argument, NULL, O_CPU },
		{ "insn-decoder", no_argument,	     NULL, O_INSN },
		{ "help",	  no_argument,	     NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bt_recon_opts ro = { .sz = sizeof(ro),
				    .progress = progress_tty() };
	struct bt_report_opts po = { .sz = sizeof(po) };
	const char *color = "auto";
	struct bt_recon *r;
	uint64_t n;
	int c, err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_BR:
			if (parse_count(optarg, &n) < 0 || !n ||
			    n > 1000000) {
				err_msg("report: bad --branches '%s': want "
					"1..1000000", optarg);
				return BT_EXIT_USAGE;
			}
			po.branches = (uint32_t)n;
			break;
		case O_COLOR:
			color = optarg;
			break;
		case O_SYSROOT:
			ro.sysroot = optarg;
			break;
		case O_BID:
			ro.buildid_dir = optarg;
			break;
		case O_CPU:
			ro.cpu = optarg;
			break;
		case O_INSN:
			ro.kind = BT_PTDEC_INSN;
			break;
		case 'h':
			return usage(stdout, BT_EXIT_OK);
		default:
			return usage(stderr, BT_EXIT_USAGE);
		}
	}
	if (!strcmp(color, "always")) {
		po.color = true;
	} else if (!strcmp(color, "auto")) {
		po.color = isatty(STDOUT_FILENO) && getenv("TERM") &&
			   strcmp(getenv("TERM"), "dumb") && !getenv("NO_COLOR");
	} else if (strcmp(color, "never")) {
		err_msg("report: bad --color '%s': want auto, always or never",
			color);
		return BT_EXIT_USAGE;
	}
	if (optind != argc - 1) {
		err_msg("report: %s", optind >= argc ? "no bundle given" :
			"one bundle only");
		return usage(stderr, BT_EXIT_USAGE);
	}
	r = bt_recon__open(argv[optind], &ro);
	if (!r) {
		err = errno;
		err_msg("report: %s: %s", argv[optind], bt_strerror(err));
		return err == BT_ERRNO_FORMAT ? BT_EXIT_DATA : BT_EXIT_FAIL;
	}
	err = bt_recon__report(r, stdout, &po);
	bt_recon__free(r);
	if (fflush(stdout) && !err)
		err = -EIO;
	if (err) {
		err_msg("report: %s: %s", argv[optind], bt_strerror(err));
		return BT_EXIT_FAIL;
	}
	return BT_EXIT_OK;
}
