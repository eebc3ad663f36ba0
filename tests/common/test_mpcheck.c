// SPDX-License-Identifier: BSD-3-Clause
/*
 * bt_mpcheck: the msgpack payload check of kmes_emit (KMES.md §8 items 20
 * and 21): exactly one well-formed value, nesting no deeper than the
 * limit, counted as mpcheck.h documents (a scalar has depth 0, [1] depth
 * 1, [[]] depth 2). Payloads are built by hand and, for the random cases,
 * with msgpack-c's packer. Inputs are malloc'd at their exact length so
 * that a sanitizer build catches a read past the end.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "common/mpcheck.h"

static struct bt_mpcheck mc;

static void mc_setup(void)
{
	memset(&mc, 0xcd, sizeof(mc));	/* poisoned: init must set it all */
	cr_assert(eq(int, bt_mpcheck__init(&mc, 32), 0));
}

static void mc_teardown(void)
{
	bt_mpcheck__fini(&mc);
}

TestSuite(mpcheck, .init = mc_setup, .fini = mc_teardown);

/* bt_mpcheck__run() on an exact-size heap copy. */
static int run(struct bt_mpcheck *c, const void *buf, size_t len)
{
	unsigned char *p = malloc(len ? len : 1);
	int ret;

	cr_assert(ne(ptr, p, NULL));
	memcpy(p, buf, len);
	ret = bt_mpcheck__run(c, p, len);
	free(p);
	return ret;
}

#define RUN(lit)	run(&mc, lit, sizeof(lit) - 1)

/* @depth nested containers; @map: maps {1: ...}; @scalar: innermost 1. */
static size_t nest(unsigned char *buf, unsigned depth, bool map, bool scalar)
{
	size_t n = 0;

	for (unsigned i = 0; i < depth; i++) {
		if (i == depth - 1 && !scalar) {
			buf[n++] = map ? 0x80 : 0x90;
			return n;
		}
		buf[n++] = map ? 0x81 : 0x91;
		if (map)
			buf[n++] = 0x01;
	}
	buf[n++] = 0x01;
	return n;
}

/* Every scalar type of the msgpack spec, one value each. */
static const struct {
	const char *what;
	const char *b;
	size_t len;
} scalars[] = {
#define S(what, lit) { what, lit, sizeof(lit) - 1 }
	S("positive fixint", "\x00"),
	S("positive fixint max", "\x7f"),
	S("negative fixint", "\xe0"),
	S("negative fixint -1", "\xff"),
	S("nil", "\xc0"),
	S("false", "\xc2"),
	S("true", "\xc3"),
	S("uint8", "\xcc\xff"),
	S("uint16", "\xcd\xff\xff"),
	S("uint32", "\xce\xff\xff\xff\xff"),
	S("uint64", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
	S("int8", "\xd0\x80"),
	S("int16", "\xd1\x80\x00"),
	S("int32", "\xd2\x80\x00\x00\x00"),
	S("int64", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00"),
	S("float32", "\xca\x3f\x80\x00\x00"),
	S("float64", "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"),
	S("fixstr empty", "\xa0"),
	S("fixstr", "\xa3" "abc"),
	S("str8", "\xd9\x03" "abc"),
	S("str16", "\xda\x00\x03" "abc"),
	S("str32", "\xdb\x00\x00\x00\x03" "abc"),
	S("bin8", "\xc4\x02\x00\xff"),
	S("bin16", "\xc5\x00\x02\x00\xff"),
	S("bin32", "\xc6\x00\x00\x00\x02\x00\xff"),
	S("fixext1", "\xd4\x01\xaa"),
	S("fixext2", "\xd5\x01\xaa\xbb"),
	S("fixext4", "\xd6\x01\xaa\xbb\xcc\xdd"),
	S("fixext8", "\xd7\x01" "12345678"),
	S("fixext16", "\xd8\x01" "1234567890abcdef"),
	S("ext8", "\xc7\x03\x05" "abc"),
	S("ext16", "\xc8\x00\x03\x05" "abc"),
	S("ext32", "\xc9\x00\x00\x00\x03\x05" "abc"),
	S("timestamp32", "\xd6\xff\x00\x00\x00\x01"),
	S("str with invalid UTF-8 (not msgpack's business)", "\xa2\xff\xfe"),
#undef S
};

#define NSCALARS	(sizeof(scalars) / sizeof(scalars[0]))

Test(mpcheck, init_sets_the_limit_and_a_fresh_checker_works)
{
	struct bt_mpcheck c;

	memset(&c, 0xcd, sizeof(c));
	cr_assert(eq(int, bt_mpcheck__init(&c, 7), 0));
	cr_assert(eq(u32, c.max_depth, 7));
	cr_assert(eq(int, run(&c, "\x91\x01", 2), 0));
	bt_mpcheck__fini(&c);
}

Test(mpcheck, every_scalar_type_is_one_value)
{
	for (size_t i = 0; i < NSCALARS; i++)
		cr_assert(eq(int, run(&mc, scalars[i].b, scalars[i].len), 0),
			  "%s", scalars[i].what);
}

Test(mpcheck, every_container_encoding_is_one_value)
{
	cr_assert(eq(int, RUN("\x90"), 0));
	cr_assert(eq(int, RUN("\x93\x01\x02\x03"), 0));
	cr_assert(eq(int, RUN("\xdc\x00\x02\x01\x02"), 0));
	cr_assert(eq(int, RUN("\xdd\x00\x00\x00\x02\x01\x02"), 0));
	cr_assert(eq(int, RUN("\x80"), 0));
	cr_assert(eq(int, RUN("\x82\xa1" "a\x01\xa1" "b\x02"), 0));
	cr_assert(eq(int, RUN("\xde\x00\x01\x01\x02"), 0));
	cr_assert(eq(int, RUN("\xdf\x00\x00\x00\x01\x01\x02"), 0));
	cr_assert(eq(int, RUN("\xdc\x00\x00"), 0));
	cr_assert(eq(int, RUN("\xdf\x00\x00\x00\x00"), 0));
	/* Any type as a map key. */
	cr_assert(eq(int, RUN("\x83\xc0\x01\x92\x01\x02\x03\xcb\0\0\0\0\0\0\0\0\x04"),
		     0));
}

Test(mpcheck, an_empty_payload_is_einval)
{
	cr_assert(eq(int, run(&mc, "", 0), -EINVAL));
}

Test(mpcheck, the_never_used_byte_c1_is_einval)
{
	cr_assert(eq(int, RUN("\xc1"), -EINVAL));
	cr_assert(eq(int, RUN("\x92\x01\xc1"), -EINVAL));
	cr_assert(eq(int, RUN("\x81\xc1\x01"), -EINVAL));
}

Test(mpcheck, every_proper_prefix_of_a_value_is_einval)
{
	static const char big[] =
		"\x85\xa1" "a\x93\x01\xcd\x01\x02\xa3xyz"
		"\xa1" "b\xc4\x03\x00\x01\x02"
		"\xa1" "c\x82\xd9\x01k\xcb\0\0\0\0\0\0\0\0\xc0\xd7\x01" "12345678"
		"\xa1" "d\xdd\x00\x00\x00\x01\x90"
		"\xc8\x00\x01\x05\xee\xd3\x00\x00\x00\x00\x00\x00\x00\x01";

	cr_assert(eq(int, run(&mc, big, sizeof(big) - 1), 0));
	for (size_t len = 1; len < sizeof(big) - 1; len++)
		cr_assert(eq(int, run(&mc, big, len), -EINVAL), "prefix %zu", len);
	for (size_t i = 0; i < NSCALARS; i++) {
		for (size_t len = 1; len < scalars[i].len; len++)
			cr_assert(eq(int, run(&mc, scalars[i].b, len), -EINVAL),
				  "%s cut at %zu", scalars[i].what, len);
	}
}

Test(mpcheck, anything_after_the_first_value_is_einval)
{
	unsigned char buf[64];

	for (size_t i = 0; i < NSCALARS; i++) {
		memcpy(buf, scalars[i].b, scalars[i].len);
		buf[scalars[i].len] = 0x00;
		cr_assert(eq(int, run(&mc, buf, scalars[i].len + 1), -EINVAL),
			  "%s + 00", scalars[i].what);
		buf[scalars[i].len] = 0xc0;
		cr_assert(eq(int, run(&mc, buf, scalars[i].len + 1), -EINVAL),
			  "%s + nil", scalars[i].what);
	}
	cr_assert(eq(int, RUN("\x90\x90"), -EINVAL));
	cr_assert(eq(int, RUN("\x91\x01\x02"), -EINVAL));
}

Test(mpcheck, containers_missing_elements_are_einval)
{
	cr_assert(eq(int, RUN("\x92\x01"), -EINVAL));
	cr_assert(eq(int, RUN("\x81\x01"), -EINVAL));
	cr_assert(eq(int, RUN("\xdc\x00\x03\x01\x02"), -EINVAL));
	cr_assert(eq(int, RUN("\xa5" "abcd"), -EINVAL));
	cr_assert(eq(int, RUN("\xc4\x05\x00"), -EINVAL));
	cr_assert(eq(int, RUN("\xdb\xff\xff\xff\xff" "a"), -EINVAL));
	cr_assert(eq(int, RUN("\xc9\xff\xff\xff\xff\x01"), -EINVAL));
}

Test(mpcheck, a_container_claiming_more_elements_than_bytes_is_einval)
{
	/* A few header bytes claiming millions of elements. */
	cr_assert(eq(int, RUN("\xdd\x00\x10\x00\x00\x01"), -EINVAL));
	cr_assert(eq(int, RUN("\xdd\xff\xff\xff\xff"), -EINVAL));
	cr_assert(eq(int, RUN("\xdf\xff\xff\xff\xff"), -EINVAL));
	cr_assert(eq(int, RUN("\x91\xdd\xff\xff\xff\xff\x01\x02"), -EINVAL));
	cr_assert(eq(int, RUN("\x81\xdf\xff\xff\xff\xff\x01"), -EINVAL));
	cr_assert(eq(int, RUN("\xdc\xff\xff\x01"), -EINVAL));
}

/* KMES.md §8 item 21 */
Test(mpcheck, depth_is_counted_as_documented)
{
	struct bt_mpcheck c0, c1, c2;

	cr_assert(eq(int, bt_mpcheck__init(&c0, 0), 0));
	cr_assert(eq(int, bt_mpcheck__init(&c1, 1), 0));
	cr_assert(eq(int, bt_mpcheck__init(&c2, 2), 0));
	/* A scalar has depth 0. */
	cr_assert(eq(int, run(&c0, "\x01", 1), 0));
	cr_assert(eq(int, run(&c0, "\xa1x", 2), 0));
	cr_assert(eq(int, run(&c0, "\x90", 1), -EINVAL));
	cr_assert(eq(int, run(&c0, "\x80", 1), -EINVAL));
	/* [] and [1] have depth 1. */
	cr_assert(eq(int, run(&c1, "\x90", 1), 0));
	cr_assert(eq(int, run(&c1, "\x91\x01", 2), 0));
	cr_assert(eq(int, run(&c1, "\x81\x01\x02", 3), 0));
	/* [[]] has depth 2, and so has a container as a key or value. */
	cr_assert(eq(int, run(&c1, "\x91\x90", 2), -EINVAL));
	cr_assert(eq(int, run(&c1, "\x81\x90\x01", 3), -EINVAL));
	cr_assert(eq(int, run(&c1, "\x81\x01\x80", 3), -EINVAL));
	cr_assert(eq(int, run(&c1, "\x93\x01\x02\x90", 4), -EINVAL));
	cr_assert(eq(int, run(&c2, "\x91\x90", 2), 0));
	cr_assert(eq(int, run(&c2, "\x81\x90\x80", 3), 0));
	/* The deepest branch counts, wherever it is. */
	cr_assert(eq(int, run(&c2, "\x93\x90\x91\x91\x01\x90", 6), -EINVAL));
	cr_assert(eq(int, run(&c2, "\x93\x90\x91\x01\x90", 5), 0));
	cr_assert(eq(int, run(&c2, "\x82\x01\x90\x91\x91\x01\x02", 7), -EINVAL));
	bt_mpcheck__fini(&c0);
	bt_mpcheck__fini(&c1);
	bt_mpcheck__fini(&c2);
}

/* KMES.md §8 item 21 */
Test(mpcheck, depth_32_passes_and_33_fails_at_the_default_limit)
{
	unsigned char buf[1024];

	for (int map = 0; map < 2; map++) {
		for (int scalar = 0; scalar < 2; scalar++) {
			cr_assert(eq(int, run(&mc, buf, nest(buf, 32, map, scalar)),
				     0), "32 (map %d, scalar %d)", map, scalar);
			cr_assert(eq(int, run(&mc, buf, nest(buf, 33, map, scalar)),
				     -EINVAL), "33 (map %d, scalar %d)", map,
				  scalar);
			cr_assert(eq(int, run(&mc, buf, nest(buf, 200, map, scalar)),
				     -EINVAL), "200 (map %d, scalar %d)", map,
				  scalar);
		}
	}
}

Test(mpcheck, a_wide_flat_payload_is_accepted)
{
	size_t n = 3 + 20000;
	unsigned char *buf = malloc(n + 5 + 2 * 70000);

	cr_assert(ne(ptr, buf, NULL));
	buf[0] = 0xdc;
	buf[1] = 20000 >> 8;
	buf[2] = 20000 & 0xff;
	for (size_t i = 3; i < n; i++)
		buf[i] = (unsigned char)(i & 0x7f);
	cr_assert(eq(int, run(&mc, buf, n), 0));
	/* A str32 longer than 64 KiB. */
	buf[0] = 0xdb;
	buf[1] = 0;
	buf[2] = 70000 >> 16;
	buf[3] = (70000 >> 8) & 0xff;
	buf[4] = 70000 & 0xff;
	memset(buf + 5, 'x', 70000);
	cr_assert(eq(int, run(&mc, buf, 5 + 70000), 0));
	cr_assert(eq(int, run(&mc, buf, 5 + 69999), -EINVAL));
	free(buf);
}

Test(mpcheck, a_checker_is_reusable_after_any_result)
{
	unsigned char deep[128];
	size_t nd = nest(deep, 33, false, true);

	for (int i = 0; i < 2000; i++) {
		cr_assert(eq(int, RUN("\x82\xa1" "a\x92\x01\x02\xa1" "b\x80"), 0));
		cr_assert(eq(int, RUN("\x92\x01"), -EINVAL));
		cr_assert(eq(int, run(&mc, deep, nd), -EINVAL));
		cr_assert(eq(int, RUN("\xc1"), -EINVAL));
	}
}

/* ---- Random payloads packed by msgpack-c -------------------------------- */

static uint64_t rnd_state = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* Pack a random value nesting @depth levels at most; returns its depth. */
static unsigned pack_random(msgpack_packer *pk, unsigned depth)
{
	static const char junk[300] = { 0 };
	unsigned kind = (unsigned)(rnd() % (depth ? 12 : 9)), d = 0;
	uint32_t n;

	switch (kind) {
	case 0:
		msgpack_pack_nil(pk);
		break;
	case 1:
		msgpack_pack_true(pk);
		break;
	case 2:
		msgpack_pack_uint64(pk, rnd() >> (rnd() % 64));
		break;
	case 3:
		msgpack_pack_int64(pk, -(int64_t)(rnd() >> (rnd() % 63 + 1)));
		break;
	case 4:
		msgpack_pack_double(pk, (double)rnd());
		break;
	case 5:
		msgpack_pack_float(pk, 1.5f);
		break;
	case 6:
		n = (uint32_t)(rnd() % sizeof(junk));
		msgpack_pack_str(pk, n);
		msgpack_pack_str_body(pk, junk, n);
		break;
	case 7:
		n = (uint32_t)(rnd() % sizeof(junk));
		msgpack_pack_bin(pk, n);
		msgpack_pack_bin_body(pk, junk, n);
		break;
	case 8:
		n = (uint32_t)(rnd() % 20);
		msgpack_pack_ext(pk, n, (int8_t)(rnd() % 100));
		msgpack_pack_ext_body(pk, junk, n);
		break;
	case 9:
	case 10:
		n = (uint32_t)(rnd() % 4 ? rnd() % 5 : rnd() % 40);
		msgpack_pack_array(pk, n);
		for (uint32_t i = 0; i < n; i++) {
			unsigned c = pack_random(pk, depth - 1);

			d = c > d ? c : d;
		}
		return d + 1;
	default:
		n = (uint32_t)(rnd() % 4 ? rnd() % 4 : rnd() % 20);
		msgpack_pack_map(pk, n);
		for (uint32_t i = 0; i < 2 * n; i++) {
			unsigned c = pack_random(pk, depth - 1);

			d = c > d ? c : d;
		}
		return d + 1;
	}
	return 0;
}

Test(mpcheck, random_values_packed_by_msgpack_c_pass_at_their_depth, .timeout = 30)
{
	for (int i = 0; i < 2000; i++) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		struct bt_mpcheck c;
		unsigned depth;

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		depth = pack_random(&pk, 1 + (unsigned)(rnd() % 8));
		cr_assert(eq(int, run(&mc, sb.data, sb.size), 0), "value %d", i);
		/* Exactly its depth passes, one less does not. */
		cr_assert(eq(int, bt_mpcheck__init(&c, depth), 0));
		cr_assert(eq(int, run(&c, sb.data, sb.size), 0), "value %d", i);
		bt_mpcheck__fini(&c);
		if (depth > 0) {
			cr_assert(eq(int, bt_mpcheck__init(&c, depth - 1), 0));
			cr_assert(eq(int, run(&c, sb.data, sb.size), -EINVAL),
				  "value %d, depth %u", i, depth);
			bt_mpcheck__fini(&c);
		}
		/* Cut short or with a byte more, it fails. */
		if (sb.size > 1)
			cr_assert(eq(int, run(&mc, sb.data, sb.size - 1), -EINVAL));
		msgpack_sbuffer_write(&sb, "\xc0", 1);
		cr_assert(eq(int, run(&mc, sb.data, sb.size), -EINVAL));
		msgpack_sbuffer_destroy(&sb);
	}
}
