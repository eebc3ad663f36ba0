// SPDX-License-Identifier: BSD-3-Clause
/*
 * The ELF readers that take a file path: bt_elfsym_lookup() and
 * bt_elfsym_file_offset() (src/ds/elfsym.c: address filters and
 * --trigger symbols) and bw_elf_build_id() (src/collector/bundle_json.c:
 * the build-id of every image a bundle records). The input is written to
 * a file and given to each. The decoder's own ELF loader
 * (src/decoder/recon_image.c) has no entry point short of a whole bundle;
 * tests/decoder/test_malformed.c drives it through one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "collector/bundle_int.h"
#include "ds/elfsym.h"

#include "fuzz_util.h"

static char path[300];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	snprintf(path, sizeof(path), "%s/elf", fz_dir());
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "main", "puts", "_start",
					     "environ" };
	unsigned char id[64];
	uint64_t v, off, sz;
	long n;

	fz_write(path, data, size);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		(void)bt_elfsym_lookup(path, names[i], &v);
		(void)bt_elfsym_file_offset(path, names[i], &off, &sz);
	}
	n = bw_elf_build_id(path, id, sizeof(id));
	if (n > (long)sizeof(id))
		abort();
	return 0;
}
