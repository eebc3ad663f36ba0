/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * btrail error codes.
 *
 * Every bt_* function that can fail returns an int: >= 0 on success,
 * otherwise a negated code that is either an errno value (EINVAL, ENOMEM,
 * EACCES from open(2), ...) or one of the codes below. They start above any
 * errno value, so one int carries both. Functions that return a pointer
 * return NULL and set errno to the same (positive) code.
 *
 * The KMES entry points that keep the spec's names (kmes_attach, kmes_emit,
 * ...) follow the spec instead: -1 with errno set.
 */
#ifndef BTRAIL_ERRNO_H
#define BTRAIL_ERRNO_H

#include <btrail/common.h>

#ifdef __cplusplus
extern "C" {
#endif

enum bt_errno {
	BT_ERRNO_BASE = 4000,
	BT_ERRNO_FORMAT = BT_ERRNO_BASE, /* malformed input file or stream */
	BT_ERRNO_CORRUPT,		/* shared memory failed validation */
	BT_ERRNO_INTERNAL,		/* an invariant broke: a bug */
	BT_ERRNO_END,
};

/*
 * bt_strerror() - the message for @err, of either sign.
 *
 * Covers errno values (through strerror_r) and enum bt_errno. The string
 * is static or thread-local; do not free it. It stays valid until the
 * next call from the same thread.
 */
BT_API const char *bt_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_ERRNO_H */
