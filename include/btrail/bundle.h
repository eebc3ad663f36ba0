/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Bundles: the capture file. A CTF 1.8 trace directory (TSDL `metadata`,
 * one binary stream file per KMES ring, typed fields from the bt.* event
 * table of <btrail/events.h>), plus `btrail.json` (machine, PT caps, TSC
 * ratio, MTC and nominal frequencies, clock conversion, images with
 * build-ids, trigger) and, with --with-binaries, `images/` holding copies
 * of every mapped binary. babeltrace2 reads them.
 *
 * Errors: negative errno or -BT_ERRNO_FORMAT; the reader logs the file,
 * offset and problem of malformed input.
 */
#ifndef BTRAIL_BUNDLE_H
#define BTRAIL_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <btrail/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bt_bundle_write_opts {
	size_t sz;
	bool big_endian;	/* write the streams big-endian (tests) */
	bool with_binaries;	/* copy every mapped binary into images/ */
	bool progress;		/* progress lines on stderr */
	const char *sysroot;	/* where to find binaries; NULL: "/" */
};
#define bt_bundle_write_opts__last_field sysroot

/*
 * bt_bundle_write() - read every event of KMES ring session @session (by
 * name, as kmes_attach() finds it; the producer may be dead) and write
 * bundle directory @out (created; must not exist). Returns 0 or a
 * negative errno (-EEXIST, -ENOENT for no such session, ...).
 */
BT_API int bt_bundle_write(const char *session, const char *out,
			   const struct bt_bundle_write_opts *opts);

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_BUNDLE_H */
