/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef BT_COMMON_MPCHECK_H
#define BT_COMMON_MPCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

/*
 * A reusable msgpack validator. msgpack-c parses into objects allocated
 * from a zone; keeping one zone per validator (cleared after each check)
 * avoids a malloc per payload. Not thread-safe: one per writer.
 */
struct bt_mpcheck {
	msgpack_zone zone;
	uint32_t max_depth;
};

int bt_mpcheck__init(struct bt_mpcheck *c, uint32_t max_depth);
void bt_mpcheck__fini(struct bt_mpcheck *c);

/*
 * bt_mpcheck__run() - 0 when @buf[0..@len) is exactly one msgpack value
 * whose containers nest no deeper than max_depth (a scalar has depth 0,
 * [1] depth 1, [[]] depth 2). Otherwise -EINVAL, or -ENOMEM.
 */
int bt_mpcheck__run(struct bt_mpcheck *c, const void *buf, size_t len);

/*
 * bt_mp_claims_fit() - false when the first msgpack value of @buf
 * (@len bytes) is truncated or has a container claiming more elements
 * than there are bytes left. msgpack-c allocates a container's elements
 * before it reads them: four bytes claiming 2^32 elements would cost it
 * 64 GiB. Call it on hostile input before msgpack-c sees it.
 */
bool bt_mp_claims_fit(const void *buf, size_t len);

#endif /* BT_COMMON_MPCHECK_H */
