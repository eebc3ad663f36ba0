// SPDX-License-Identifier: BSD-3-Clause
/*
 * The PT decoder session (struct bt_ptdec: libipt's block or instruction
 * flow decoder with btrail's event, resync and error handling) over a
 * hostile trace and code image.
 *
 * Input: a little-endian u16 H, then H & 0x7fff bytes of code mapped at
 * 0x100000 (where most of libipt's pttc tests put their code), then the
 * trace. Bit 15 of H picks the instruction flow decoder instead of the
 * block one.
 * tests/fuzz/mkseeds.sh makes seeds of that shape from libipt's corpus.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <btrail/decoder.h>

#include "fuzz_util.h"

static char code_path[300];

/*
 * Whether @code (@n bytes) may hold a backward direct JMP or CALL (E8,
 * E9 with rel16 or rel32, EB with rel8: any byte offset, any mode).
 *
 * Such a cycle needs no trace to follow, and libipt follows it as long
 * as it is asked to. The decoder now gives up after 4 Mi instructions at
 * one trace offset (tests/fuzz/regress/pt-selfcall-hang and
 * pt-directloop, tested by `ptraw`), but walking that far costs a second
 * or more per input under the fuzzer's instrumentation, so by default
 * the harness skips these images to keep its rate; BT_FUZZ_PT_LOOPS=1
 * fuzzes them too (docs/fuzzing.md).
 */
static bool direct_loop(const uint8_t *code, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (code[i] == 0xeb && (i + 1 >= n || code[i + 1] >= 0x80))
			return true;
		if ((code[i] == 0xe8 || code[i] == 0xe9) &&
		    (i + 2 >= n || code[i + 2] >= 0x80 ||
		     i + 4 >= n || code[i + 4] >= 0x80))
			return true;
	}
	return false;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	snprintf(code_path, sizeof(code_path), "%s/code.bin", fz_dir());
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bt_ptdec_opts o = { .sz = sizeof(o) };
	struct bt_ptdec_stats st;
	struct bt_ptdec *d;
	size_t clen;
	unsigned h;

	if (size < 2)
		return 0;
	h = data[0] | (unsigned)data[1] << 8;
	clen = h & 0x7fff;
	data += 2;
	size -= 2;
	if (clen > size)
		clen = size;
	if (direct_loop(data, clen) && !getenv("BT_FUZZ_PT_LOOPS"))
		return 0;
	o.kind = h & 0x8000 ? BT_PTDEC_INSN : BT_PTDEC_BLOCK;
	d = bt_ptdec__new(&o);
	if (!d)
		abort();
	if (clen) {
		fz_write(code_path, data, clen);
		if (bt_ptdec__add_file(d, code_path, 0, 0, 0x100000))
			abort();
	}
	/* An empty trace is refused; anything else must decode to stats. */
	if (bt_ptdec__set_trace_mem(d, data + clen, size - clen) == 0 &&
	    size > clen) {
		int r = bt_ptdec__count(d, &st);

		if (r && r != -ENOMEM) {
			fprintf(stderr, "count: %d\n", r);
			abort();
		}
	}
	bt_ptdec__free(d);
	return 0;
}
