// SPDX-License-Identifier: BSD-3-Clause
#include <btrail/kmes.h>

#include <string.h>

#include <msgpack.h>

#include "common/bytes.h"
#include "common/mpcheck.h"

/* map header + "s" u64 + "c" u32 + "p" key: 1 + 11 + 7 + 2 */
#define FIXED_PART	21u

static uint32_t fnv1a(uint32_t h, const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

static uint32_t payload_sum(uint64_t seq, const unsigned char *pad, size_t len)
{
	unsigned char s[8];

	bt_put_le64(s, seq);
	return fnv1a(fnv1a(2166136261u, s, sizeof(s)), pad, len);
}

static void fill_random(unsigned char *p, size_t len, uint64_t *rng)
{
	uint64_t x = rng ? *rng : 0;
	size_t i = 0;

	if (!rng) {
		memset(p, 0, len);
		return;
	}
	for (; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
	for (; i < len; i++)
		p[i] = (unsigned char)(x >> (8 * (i % 8)));
	*rng = x ? x : 0x9e3779b97f4a7c15ull;
}

size_t bt_kmes_payload_fill(void *buf, size_t size, uint64_t seq,
			    uint64_t *rng)
{
	unsigned char *p = buf, *pad;
	size_t rem, len, hdr;

	if (size == 0 || size > UINT32_MAX)
		return 0;
	if (size == 1) {
		p[0] = 0x00;		/* positive fixint 0 */
		return 1;
	}
	if (size < BT_KMES_PAYLOAD_MIN_CHECKED) {
		p[0] = 0xc4;		/* bin 8 */
		p[1] = (unsigned char)(size - 2);
		fill_random(p + 2, size - 2, rng);
		return size;
	}
	rem = size - FIXED_PART;
	if (rem - 2 <= 0xff) {
		hdr = 2;
	} else if (rem - 3 <= 0xffff) {
		hdr = 3;
	} else {
		hdr = 5;
	}
	len = rem - hdr;
	p[0] = 0x83;				/* fixmap, 3 pairs */
	p[1] = 0xa1; p[2] = 's';
	p[3] = 0xcf;				/* uint 64, big-endian */
	for (int i = 0; i < 8; i++)
		p[4 + i] = (unsigned char)(seq >> (56 - 8 * i));
	p[12] = 0xa1; p[13] = 'c';
	p[14] = 0xce;				/* uint 32; filled below */
	p[19] = 0xa1; p[20] = 'p';
	pad = p + FIXED_PART + hdr;
	if (hdr == 2) {
		p[21] = 0xc4;
		p[22] = (unsigned char)len;
	} else if (hdr == 3) {
		p[21] = 0xc5;
		p[22] = (unsigned char)(len >> 8);
		p[23] = (unsigned char)len;
	} else {
		p[21] = 0xc6;
		for (int i = 0; i < 4; i++)
			p[22 + i] = (unsigned char)(len >> (24 - 8 * i));
	}
	fill_random(pad, len, rng);
	{
		uint32_t sum = payload_sum(seq, pad, len);

		for (int i = 0; i < 4; i++)
			p[15 + i] = (unsigned char)(sum >> (24 - 8 * i));
	}
	return size;
}

static const msgpack_object *map_get(const msgpack_object *m, char key)
{
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];

		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == 1 && kv->key.via.str.ptr[0] == key)
			return &kv->val;
	}
	return NULL;
}

int bt_kmes_payload_check(const void *buf, size_t size, uint64_t *seq)
{
	const msgpack_object *s, *c, *pad;
	msgpack_unpacked up;
	size_t off = 0;
	int ret = -1;

	msgpack_unpacked_init(&up);
	/* Hostile: what a header claims must fit before msgpack-c sees it. */
	if (!size || !bt_mp_claims_fit(buf, size))
		goto out;
	if (msgpack_unpack_next(&up, buf, size, &off) != MSGPACK_UNPACK_SUCCESS ||
	    off != size)
		goto out;
	if (up.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    up.data.type == MSGPACK_OBJECT_BIN) {
		ret = size < BT_KMES_PAYLOAD_MIN_CHECKED ? 0 : -1;
		goto out;
	}
	if (up.data.type != MSGPACK_OBJECT_MAP)
		goto out;
	s = map_get(&up.data, 's');
	c = map_get(&up.data, 'c');
	pad = map_get(&up.data, 'p');
	if (!s || !c || !pad || s->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    c->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    pad->type != MSGPACK_OBJECT_BIN)
		goto out;
	if (payload_sum(s->via.u64, (const unsigned char *)pad->via.bin.ptr,
			pad->via.bin.size) != c->via.u64)
		goto out;
	if (seq)
		*seq = s->via.u64;
	ret = 1;
out:
	msgpack_unpacked_destroy(&up);
	return ret;
}
