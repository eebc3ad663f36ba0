// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail script: print the instruction flow of a trace. So far the raw
 * Intel PT mode, which takes libipt ptxed's options so that ptxed
 * workflows (and libipt's test corpus) carry over; bundles and perf.data
 * files come later.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <btrail/decoder.h>
#include <btrail/errno.h>

#include "btrail.h"
#include "decoder/pt_args.h"

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
"\n"
"Exit status: 0 decoded (decode errors are part of the listing),\n"
"1 the trace or a file could not be read, 2 bad command line.\n",
		bin_name);
	return status;
}

int do_script(int argc, char **argv)
{
	struct bt_ptdec_stats st = { 0 };
	struct ptd_args a;
	int err;

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
	err = ptd_args_run(&a, stdout, &st);
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
