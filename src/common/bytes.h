/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Little-endian loads and stores at any alignment. KMES headers put u16,
 * u32 and u64 fields at odd offsets (KMES.md §10 item 12), so they are
 * never read through a cast pointer.
 */
#ifndef BT_COMMON_BYTES_H
#define BT_COMMON_BYTES_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t bt_le16(const void *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static inline uint32_t bt_le32(const void *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t bt_le64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline void bt_put_le16(void *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void bt_put_le32(void *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void bt_put_le64(void *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

#endif /* BT_COMMON_BYTES_H */
