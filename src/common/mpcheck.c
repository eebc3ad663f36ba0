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
		uint32_t next;		/* next child to visit */
	} stack[MP_STACK_MAX];
	uint32_t top = 0;

	if (root->type != MSGPACK_OBJECT_ARRAY &&
	    root->type != MSGPACK_OBJECT_MAP)
		return true;
	if (max_depth < 1)
		return false;
	stack[0].o = root;
	stack[0].next = 0;
	while (true) {
		struct frame *f = &stack[top];
		const msgpack_object *child = NULL;

		if (f->o->type == MSGPACK_OBJECT_ARRAY) {
			if (f->next < f->o->via.array.size)
				child = &f->o->via.array.ptr[f->next];
			f->next++;
		} else {
			/* Keys can be containers too: visit key, then value. */
			uint32_t kv = f->next / 2;

			if (kv < f->o->via.map.size)
				child = f->next % 2 ?
					&f->o->via.map.ptr[kv].val :
					&f->o->via.map.ptr[kv].key;
			f->next++;
		}
		if (!child) {
			if (top == 0)
				return true;
			top--;
			continue;
		}
		if (child->type != MSGPACK_OBJECT_ARRAY &&
		    child->type != MSGPACK_OBJECT_MAP)
			continue;
		/* The child's depth is top + 2 (the root has depth 1). */
		if (top + 2 > max_depth || top + 1 >= MP_STACK_MAX)
			return false;
		top++;
		stack[top].o = child;
		stack[top].next = 0;
	}
}

int bt_mpcheck__run(struct bt_mpcheck *c, const void *buf, size_t len)
{
	msgpack_object obj;
	msgpack_unpack_return ret;
	size_t off = 0;
	int err = 0;

	if (len == 0)
		return -EINVAL;		/* an empty payload is no value */
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
