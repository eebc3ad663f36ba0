// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail script: print the instruction flow of a trace. Two modes: a
 * bundle (`btrail script BUNDLE [--insn|--branches|--calls]`), whose
 * views are bt_recon__print_view()'s, and raw Intel PT (`--pt FILE`),
 * which takes libipt ptxed's options so that ptxed workflows (and
 * libipt's test corpus) carry over.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <btrail/decoder.h>
#include <btrail/errno.h>

#include "btrail.h"
#include "decoder/pt_args.h"
#include "decoder/pt_par.h"

static int bundle_usage(FILE *f, int status)
{
	fprintf(f,
"Usage: %s script BUNDLE [--insn | --branches | --calls | --samples]\n"
"                 [--format text|json]\n"
"                 [--sysroot DIR] [--buildid-dir DIR] [--cpu F/M[/S]]\n"
"       %s script --pt FILE --raw FILE:BASE... (raw Intel PT, below)\n"
"\n"
"Reconstruct what ran from bundle BUNDLE and print it:\n"
"  --insn       the instruction flow, disassembled, with symbol+offset\n"
"               (the default)\n"
"  --branches   one line per taken branch: FROM (sym+off) -> TO (sym+off)\n"
"  --calls      the function-call history, nested by call and return\n"
"  --samples    the PEBS and LBR samples, an LBR sample with its branch\n"
"               stack (newest first)\n"
"  --format F   text (default) or json (JSON Lines, docs/script-json.md)\n"
"  --sysroot DIR      prefix of the binaries' recorded paths\n"
"  --buildid-dir DIR  binaries by build-id (DIR/xx/rest)\n"
"  --cpu F/M[/S]      the CPU for PT errata (default: the bundle's)\n"
"Events, gaps and decode errors appear in every view, in brackets.\n"
"\n"
"Exit status: 0 done, 1 the bundle could not be read, 2 bad command\n"
"line, 3 the bundle is malformed.\n",
		bin_name, bin_name);
	return status;
}

static int usage(FILE *f, int status)
{
	fprintf(f,
"Usage: %s script --pt FILE[:FROM[-TO]] --raw FILE[:FROM[-TO]]:BASE... [OPTIONS]\n"
"\n"
"Decode a raw Intel PT trace with libipt and print the instruction flow,\n"
"one instruction a line with its disassembly, the decoder's events in\n"
"brackets and decode errors as \"[OFFSET, IP: error: MESSAGE]\"; after an\n"
"error decoding goes on at the next PSB. The options are ptxed's.\n"
"\n"
"Trace and code:\n"
"  --pt FILE[:FROM[-TO]]        the trace (optionally a byte range of FILE)\n"
"  --raw FILE[:OFF|:FROM-TO]:BASE  map raw code bytes at address BASE\n"
"  --cpu F/M[/S]|none|auto      the CPU of the trace, for its errata\n"
"  --mtc-freq N  --nom-freq N  --cpuid-0x15.eax N  --cpuid-0x15.ebx N\n"
"  --filter:addrN_cfg V  --filter:addrN_a A  --filter:addrN_b B  (N 0..3)\n"
"Decoder:\n"
"  --block-decoder (default)  --insn-decoder\n"
"  --block:end-on-call  --block:end-on-jump  --event:tick\n"
"Output:\n"
"  --no-inst        addresses only (ptxed's listing)\n"
"  --quiet, -q      no instructions or events (errors still)\n"
"  --event:ip  --event:time  --block:show-blocks\n"
"  --stat  --stat:insn  --stat:blocks   counts at the end\n"
"Perf sideband:\n"
"  --pevent:primary FILE[:FROM[-TO]]  --pevent:secondary FILE[:FROM[-TO]]\n"
"  --pevent:sample-type N  --pevent:time-zero N  --pevent:time-shift N\n"
"  --pevent:time-mult N  --pevent:tsc-offset N  --pevent:kernel-start A\n"
"  --pevent:sysroot DIR  --pevent:vdso-x64|x32|ia32 FILE\n"
"  --sb:compact  --sb:verbose  --sb:offset  --sb:filename  --sb:time\n"
"  --sb:switch  --sb:warn\n"
"Parallel decode:\n"
"  -j N, --jobs N   decode on N threads (default: one per CPU for a trace\n"
"                   over 1 MiB; 1: single-threaded); same listing\n"
"\n"
"Exit status: 0 decoded (decode errors are part of the listing),\n"
"1 the trace or a file could not be read, 2 bad command line.\n",
		bin_name);
	return status;
}

/*
 * Raw mode when --pt or any option of ptxed's is given; else the operand
 * is a bundle.
 */
static bool raw_mode(int argc, char **argv)
{
	static const char *const bopt[] = {
		"--insn", "--branches", "--calls", "--samples", "--format",
		"--sysroot", "--buildid-dir", "--cpu", "--help", "-h",
	};

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		size_t k;

		if (!strcmp(a, "--"))
			break;
		if (a[0] != '-')
			continue;
		if (!strcmp(a, "--pt") || !strncmp(a, "--pt=", 5))
			return true;
		for (k = 0; k < sizeof(bopt) / sizeof(bopt[0]); k++) {
			size_t n = strlen(bopt[k]);

			if (!strncmp(a, bopt[k], n) &&
			    (a[n] == '\0' || a[n] == '='))
				break;
		}
		if (k == sizeof(bopt) / sizeof(bopt[0]))
			return true;
	}
	return false;
}

static int bundle_script(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "insn", no_argument, NULL, 'i' },
		{ "branches", no_argument, NULL, 'b' },
		{ "calls", no_argument, NULL, 'c' },
		{ "samples", no_argument, NULL, 'S' },
		{ "format", required_argument, NULL, 'f' },
		{ "sysroot", required_argument, NULL, 's' },
		{ "buildid-dir", required_argument, NULL, 'B' },
		{ "cpu", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bt_recon_opts ro = { .sz = sizeof(ro) };
	struct bt_view_opts vo = { .sz = sizeof(vo) };
	struct bt_recon *r;
	bool samples = false;
	long nsamples = 0;
	int c, err, nview = 0;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'i':
			vo.view = BT_VIEW_INSN;
			nview++;
			break;
		case 'b':
			vo.view = BT_VIEW_BRANCHES;
			nview++;
			break;
		case 'c':
			vo.view = BT_VIEW_CALLS;
			nview++;
			break;
		case 'S':
			samples = true;
			nview++;
			break;
		case 'f':
			if (!strcmp(optarg, "text")) {
				vo.format = BT_VIEW_TEXT;
			} else if (!strcmp(optarg, "json")) {
				vo.format = BT_VIEW_JSON;
			} else {
				err_msg("script: unknown format '%s' (text or "
					"json)", optarg);
				return BT_EXIT_USAGE;
			}
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
			return bundle_usage(stdout, BT_EXIT_OK);
		default:
			err_msg("script: bad option '%s'; try '%s script "
				"--help'", argv[optind - 1], bin_name);
			return BT_EXIT_USAGE;
		}
	}
	if (nview > 1) {
		err_msg("script: give one of --insn, --branches, --calls, "
			"--samples");
		return BT_EXIT_USAGE;
	}
	if (optind != argc - 1) {
		err_msg("script: give one bundle (or a raw trace with --pt); "
			"try '%s script --help'", bin_name);
		return BT_EXIT_USAGE;
	}
	ro.progress = progress_tty();
	r = bt_recon__open(argv[optind], &ro);
	if (!r) {
		err = errno;
		err_msg("script: %s: %s", argv[optind], bt_strerror(err));
		return err == BT_ERRNO_FORMAT ? BT_EXIT_DATA : BT_EXIT_FAIL;
	}
	if (samples) {
		nsamples = bt_recon__print_samples(r, stdout, vo.format);
		err = nsamples < 0 ? (int)nsamples : 0;
	} else {
		err = bt_recon__print_view(r, stdout, &vo);
	}
	bt_recon__free(r);
	if (samples && !err && !nsamples)
		err_msg("script: no PEBS or LBR samples in %s", argv[optind]);
	if (err) {
		err_msg("script: %s: %s", argv[optind], err == -EIO ?
			"cannot write the output" : bt_strerror(err));
		return err == -BT_ERRNO_FORMAT ? BT_EXIT_DATA : BT_EXIT_FAIL;
	}
	return BT_EXIT_OK;
}

int do_script(int argc, char **argv)
{
	struct bt_ptdec_stats st = { 0 };
	struct ptd_args a;
	long jobs = 0;
	int err, nargs = 1;

	/* btrail script PERF.DATA: script_perf.c */
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] != '-') {
			if (script_is_perfdata(argv[i]))
				return script_perfdata(argc, argv);
			break;
		}
		if (!strcmp(argv[i], "--sysroot") ||
		    !strcmp(argv[i], "--buildid-dir") ||
		    !strcmp(argv[i], "--cpu") || !strcmp(argv[i], "--format"))
			i++;	/* its value */
	}
	if (!raw_mode(argc, argv)) {
		for (int i = 1; i < argc; i++) {
			if (!strcmp(argv[i], "--help") ||
			    !strcmp(argv[i], "-h")) {
				bundle_usage(stdout, BT_EXIT_OK);
				putchar('\n');
				return usage(stdout, BT_EXIT_OK);
			}
		}
		return bundle_script(argc, argv);
	}
	/* -j N / --jobs N are ours, not ptxed's: take them out first. */
	for (int i = 1; i < argc; i++) {
		char *rest;

		if (strcmp(argv[i], "-j") && strcmp(argv[i], "--jobs")) {
			argv[nargs++] = argv[i];
			continue;
		}
		if (i + 1 >= argc) {
			err_msg("script: %s: missing argument", argv[i]);
			return BT_EXIT_USAGE;
		}
		errno = 0;
		jobs = strtol(argv[i + 1], &rest, 10);
		if (errno || *rest || jobs < 1 || jobs > 1024) {
			err_msg("script: %s: bad number of jobs '%s' (1..1024)",
				argv[i], argv[i + 1]);
			return BT_EXIT_USAGE;
		}
		i++;
	}
	argc = nargs;
	memset(&a, 0, sizeof(a));
	err = ptd_args_parse(&a, argc - 1, argv + 1);
	if (err == -ENOMEM) {
		err_msg("script: out of memory");
		ptd_args_free(&a);
		return BT_EXIT_FAIL;
	}
	if (err) {
		err_msg("script: %s; try '%s script --help'", a.err, bin_name);
		ptd_args_free(&a);
		return BT_EXIT_USAGE;
	}
	if (a.help) {
		ptd_args_free(&a);
		return usage(stdout, BT_EXIT_OK);
	}
	if (!a.pt) {
		err_msg("script: give the trace with --pt FILE (bundle and "
			"perf.data input are not there yet)");
		ptd_args_free(&a);
		return BT_EXIT_USAGE;
	}
	if (jobs > 1 && a.nr_pev)
		err_msg("script: note: perf sideband: decoding on one thread");
	err = ptd_args_run_jobs(&a, stdout, &st, (unsigned int)jobs);
	if (!err && !st.syncs)
		err_msg("script: warning: no PSB found in the trace %s: "
			"nothing could be decoded", a.pt);
	ptd_args_free(&a);
	if (err) {
		err_msg("script: %s", err == -EIO ? "cannot write the output" :
			bt_strerror(-err));
		return BT_EXIT_FAIL;
	}
	return BT_EXIT_OK;
}
