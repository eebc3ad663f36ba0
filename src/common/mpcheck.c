// SPDX-License-Identifier: BSD-3-Clause
#include "common/mpcheck.h"

#include <errno.h>
#include <stdbool.h>

/* Zone chunk: enough for the arrays and maps of a typical 64 KiB event. */
#define MPCHECK_CHUNK	8192
/* Deepest walk: one frame per container level (limits go up to 256). */
#define MP_STACK_MAX	257

int bt_mpcheck__init(struct bt_mpcheck *c, uint32_t max_depth)
{
	if (!msgpack_zone_init(&c->zone, MPCHECK_CHUNK))
		return -ENOMEM;
	c->max_depth = max_depth;
	return 0;
}

void bt_mpcheck__fini(struct bt_mpcheck *c)
{
	msgpack_zone_destroy(&c->zone);
}

static inline bool mp_is_container(const msgpack_object *o)
{
	return o->type == MSGPACK_OBJECT_ARRAY || o->type == MSGPACK_OBJECT_MAP;
}

/*
 * Depth of the object tree, walked without recursion: msgpack-c already
 * bounds the tree at MSGPACK_EMBED_STACK_SIZE (32) levels of non-empty
 * containers, but an empty container at the bottom adds one more level
 * that the parser never pushes, so the walk is what decides.
 */
static bool mp_depth_ok(const msgpack_object *root, uint32_t max_depth)
{
	struct frame {
		const msgpack_object *o;
		uint32_t next;		/* next child (array) or pair (map) */
		uint32_t half;		/* map: 1 when the pair's key is done */
	} stack[MP_STACK_MAX];
	uint32_t top = 0;

	if (!mp_is_container(root))
		return true;
	if (max_depth < 1)
		return false;
	stack[0].o = root;
	stack[0].next = 0;
	stack[0].half = 0;
	while (true) {
		struct frame *f = &stack[top];
		const msgpack_object *child = NULL;
		uint32_t i = f->next;

		/* Scalars are skipped in a tight loop: only containers nest. */
		if (f->o->type == MSGPACK_OBJECT_ARRAY) {
			const msgpack_object *a = f->o->via.array.ptr;
			uint32_t n = f->o->via.array.size;

			while (i < n && !mp_is_container(&a[i]))
				i++;
			if (i < n)
				child = &a[i++];
		} else {
			/* Keys can be containers too: visit key, then value. */
			const msgpack_object_kv *kv = f->o->via.map.ptr;
			uint32_t n = f->o->via.map.size;

			if (f->half && i < n) {		/* the value of pair i */
				f->half = 0;
				if (mp_is_container(&kv[i].val))
					child = &kv[i].val;
				i++;
			}
			while (!child && i < n) {
				if (mp_is_container(&kv[i].key)) {
					child = &kv[i].key;
					f->half = 1;
				} else if (mp_is_container(&kv[i].val)) {
					child = &kv[i++].val;
				} else {
					i++;
				}
			}
		}
		f->next = i;
		if (!child) {
			if (top == 0)
				return true;
			top--;
			continue;
		}
		/* The child's depth is top + 2 (the root has depth 1). */
		if (top + 2 > max_depth || top + 1 >= MP_STACK_MAX)
			return false;
		top++;
		stack[top].o = child;
		stack[top].next = 0;
		stack[top].half = 0;
	}
}

/*
 * msgpack-c allocates a container's elements from the zone when it meets
 * the header, before it has seen them: the 5-byte payload dd ff ff ff ff
 * (array32 of 2^32 - 1) asks for 96 GiB. So walk the encoding first,
 * allocating nothing, and refuse a payload that claims more values than
 * it has bytes left (a value takes one byte at least). What passes makes
 * msgpack-c allocate a bounded multiple of @len. Whatever this refuses,
 * msgpack-c would refuse too (truncated, or the never-used byte 0xc1).
 */
bool bt_mp_claims_fit(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t want = 1;	/* values still to come */
	size_t off = 0;

	while (want) {
		/* Bytes and values that follow; length field; 1 array, 2 map. */
		uint64_t data = 0, items = 0;
		unsigned lenb = 0, kind = 0;
		unsigned char c;

		if (want > len - off)
			return false;
		c = p[off++];
		want--;
		/* fixints, nil, false, true: the byte is the value */
		if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 ||
		    c == 0xc3)
			continue;
		if (c <= 0x8f)
			items = 2u * (c & 0x0fu);	/* fixmap */
		else if (c <= 0x9f)
			items = c & 0x0fu;		/* fixarray */
		else if (c <= 0xbf)
			data = c & 0x1fu;		/* fixstr */
		else if (c == 0xc4 || c == 0xd9)
			lenb = 1;			/* bin8, str8 */
		else if (c == 0xc5 || c == 0xda)
			lenb = 2;
		else if (c == 0xc6 || c == 0xdb)
			lenb = 4;
		else if (c >= 0xc7 && c <= 0xc9)	/* ext8/16/32: + type */
			lenb = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4, data = 1;
		else if (c == 0xca || c == 0xce || c == 0xd2)
			data = 4;
		else if (c == 0xcb || c == 0xcf || c == 0xd3)
			data = 8;
		else if (c == 0xcc || c == 0xd0)
			data = 1;
		else if (c == 0xcd || c == 0xd1)
			data = 2;
		else if (c >= 0xd4 && c <= 0xd8)	/* fixext: type + 2^n */
			data = 1 + (1u << (c - 0xd4));
		else if (c >= 0xdc && c <= 0xdf)	/* array/map 16/32 */
			lenb = c & 1 ? 4 : 2, kind = c < 0xde ? 1 : 2;
		else
			return false;			/* 0xc1 */
		if (lenb) {
			uint64_t n = 0;

			if (len - off < lenb)
				return false;
			for (unsigned k = 0; k < lenb; k++)
				n = n << 8 | p[off++];
			if (kind)
				items = kind == 2 ? 2 * n : n;
			else
				data += n;
		}
		if (data > len - off)
			return false;
		off += data;
		want += items;
	}
	return true;
}

int bt_mpcheck__run(struct bt_mpcheck *c, const void *buf, size_t len)
{
	msgpack_object obj;
	msgpack_unpack_return ret;
	size_t off = 0;
	int err = 0;

	if (len == 0)
		return -EINVAL;		/* an empty payload is no value */
	if (!bt_mp_claims_fit(buf, len))
		return -EINVAL;
	/*
	 * msgpack_unpack() is marked obsolete in msgpack-c, but it is the one
	 * entry point that parses into a caller-owned zone; the others
	 * allocate a fresh zone for every payload.
	 */
	ret = msgpack_unpack(buf, len, &off, &c->zone, &obj);
	switch (ret) {
	case MSGPACK_UNPACK_SUCCESS:
		if (!mp_depth_ok(&obj, c->max_depth))
			err = -EINVAL;
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		/*
		 * Also what msgpack-c answers when nesting exceeds its
		 * 32-level stack; an allocation failure would be reported by
		 * the zone, not here, so treat it as malformed input.
		 */
		err = -EINVAL;
		break;
	case MSGPACK_UNPACK_EXTRA_BYTES:	/* more than one value */
	case MSGPACK_UNPACK_CONTINUE:		/* truncated */
	case MSGPACK_UNPACK_PARSE_ERROR:
	default:
		err = -EINVAL;
		break;
	}
	msgpack_zone_clear(&c->zone);
	return err;
}
