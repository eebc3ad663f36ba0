// SPDX-License-Identifier: BSD-3-Clause
/*
 * bt_utf8_valid(): well-formed UTF-8 as RFC 3629 and Table 3-7 of the
 * Unicode standard define it (the event-type check of kmes_emit, KMES.md
 * §8 item 20). Besides hand-picked cases, it is compared with a plain
 * decode-and-check reference on every sequence of up to three bytes and on
 * every code point, and probed around its eight-byte ASCII fast path.
 * Buffers are malloc'd at their exact length so that a sanitizer build
 * catches a read past @len.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

/* bt_utf8_valid() on an exact-size heap copy of @s[0..@len). */
static bool valid(const void *s, size_t len)
{
	unsigned char *p = malloc(len ? len : 1);
	bool ok;

	cr_assert(ne(ptr, p, NULL));
	memcpy(p, s, len);
	ok = bt_utf8_valid(p, len);
	free(p);
	return ok;
}

#define VALID(lit)	valid(lit, sizeof(lit) - 1)

/* The reference: decode each sequence, then check what it decoded to. */
static bool ref_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t cp, min;
		size_t n;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			n = 2, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 3, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (len - i < n)
			return false;
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

static size_t encode(uint32_t cp, unsigned char *b)
{
	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | cp >> 6);
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | cp >> 12);
		b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	b[0] = (unsigned char)(0xf0 | cp >> 18);
	b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
	b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
	b[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

Test(utf8, well_formed_text_is_accepted)
{
	cr_assert(VALID("kmes.config.invalid"));
	cr_assert(VALID("h\xc3\xa9llo w\xc3\xb6rld"));		/* Latin-1 */
	cr_assert(VALID("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"));	/* CJK */
	cr_assert(VALID("\xf0\x9f\x98\x80 \xf0\x9f\x8e\x89!"));	/* emoji */
	cr_assert(VALID("a\xc3\xa9\xe2\x82\xac\xf0\x90\x8d\x88z"));	/* 1-4 */
}

Test(utf8, the_empty_string_and_nul_bytes_are_valid)
{
	cr_assert(valid("", 0));
	cr_assert(valid("\0", 1));
	cr_assert(valid("a\0b\0\0\0\0\0\0\0\0\0c", 13));
}

Test(utf8, the_first_and_last_code_point_of_each_length_are_accepted)
{
	cr_assert(VALID("\x7f"));			/* U+007F */
	cr_assert(VALID("\xc2\x80"));			/* U+0080 */
	cr_assert(VALID("\xdf\xbf"));			/* U+07FF */
	cr_assert(VALID("\xe0\xa0\x80"));		/* U+0800 */
	cr_assert(VALID("\xef\xbf\xbf"));		/* U+FFFF */
	cr_assert(VALID("\xf0\x90\x80\x80"));		/* U+10000 */
	cr_assert(VALID("\xf4\x8f\xbf\xbf"));		/* U+10FFFF */
}

Test(utf8, nothing_above_u10ffff_is_accepted)
{
	cr_assert(eq(int, VALID("\xf4\x90\x80\x80"), 0));	/* U+110000 */
	cr_assert(eq(int, VALID("\xf4\xbf\xbf\xbf"), 0));
	cr_assert(eq(int, VALID("\xf7\xbf\xbf\xbf"), 0));	/* U+1FFFFF */
	for (unsigned c = 0xf5; c <= 0xff; c++) {
		unsigned char b[4] = { (unsigned char)c, 0x80, 0x80, 0x80 };

		cr_assert(eq(int, valid(b, 4), 0), "lead byte %#x", c);
		cr_assert(eq(int, valid(b, 1), 0), "lone byte %#x", c);
	}
}

Test(utf8, surrogates_are_refused_and_their_neighbours_accepted)
{
	unsigned char b[4];

	for (uint32_t cp = 0xd800; cp <= 0xdfff; cp++) {
		size_t n = encode(cp, b);

		cr_assert(eq(int, valid(b, n), 0), "U+%04X", cp);
	}
	cr_assert(VALID("\xed\x9f\xbf"));		/* U+D7FF */
	cr_assert(VALID("\xee\x80\x80"));		/* U+E000 */
	/* A CESU-8 style surrogate pair is no 4-byte character either. */
	cr_assert(eq(int, VALID("\xed\xa0\xbd\xed\xb8\x80"), 0));
}

Test(utf8, overlong_forms_are_refused)
{
	cr_assert(eq(int, VALID("\xc0\x80"), 0));		/* NUL */
	cr_assert(eq(int, VALID("\xc0\xaf"), 0));		/* '/' */
	cr_assert(eq(int, VALID("\xc1\xbf"), 0));		/* U+007F */
	cr_assert(eq(int, VALID("\xe0\x80\x80"), 0));
	cr_assert(eq(int, VALID("\xe0\x9f\xbf"), 0));		/* U+07FF */
	cr_assert(eq(int, VALID("\xf0\x80\x80\x80"), 0));
	cr_assert(eq(int, VALID("\xf0\x8f\xbf\xbf"), 0));	/* U+FFFF */
	for (unsigned c = 0x80; c <= 0xbf; c++) {
		unsigned char b0[2] = { 0xc0, (unsigned char)c };
		unsigned char b1[2] = { 0xc1, (unsigned char)c };

		cr_assert(eq(int, valid(b0, 2), 0));
		cr_assert(eq(int, valid(b1, 2), 0));
	}
}

Test(utf8, truncated_sequences_are_refused)
{
	/* At the end of the string ... */
	cr_assert(eq(int, VALID("\xc2"), 0));
	cr_assert(eq(int, VALID("ab\xe0\xa0"), 0));
	cr_assert(eq(int, VALID("\xe2"), 0));
	cr_assert(eq(int, VALID("\xf0\x90\x80"), 0));
	cr_assert(eq(int, VALID("abcdefgh\xf4\x8f\xbf"), 0));
	/* ... and in the middle of it. */
	cr_assert(eq(int, VALID("\xc2" "A"), 0));
	cr_assert(eq(int, VALID("\xe2\x82" "abc"), 0));
	cr_assert(eq(int, VALID("\xf0\x90\x80" "x"), 0));
	cr_assert(eq(int, VALID("\xe2\x28\xa1"), 0));
	cr_assert(eq(int, VALID("\xf0\x9f\x98\xc3\xa9"), 0));
}

Test(utf8, stray_continuation_bytes_are_refused)
{
	for (unsigned c = 0x80; c <= 0xbf; c++) {
		unsigned char b[3] = { 'a', (unsigned char)c, 'b' };

		cr_assert(eq(int, valid(b, 1 + 1), 0), "byte %#x", c);
		cr_assert(eq(int, valid(b + 1, 2), 0), "byte %#x", c);
	}
	/* One continuation too many after a complete character. */
	cr_assert(eq(int, VALID("\xc3\xa9\xa9"), 0));
	cr_assert(eq(int, VALID("\xe2\x82\xac\x80"), 0));
}

Test(utf8, every_code_point_is_accepted_unless_it_is_a_surrogate)
{
	unsigned char b[4];

	for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
		size_t n = encode(cp, b);
		bool want = cp < 0xd800 || cp > 0xdfff;

		if (bt_utf8_valid(b, n) != want)
			cr_fatal("U+%04X: %d", cp, !want);
	}
}

Test(utf8, agrees_with_a_reference_decoder_on_every_short_sequence)
{
	unsigned char b[4];

	for (unsigned a = 0; a < 256; a++) {
		b[0] = (unsigned char)a;
		cr_assert(eq(int, bt_utf8_valid(b, 1), ref_valid(b, 1)),
			  "%02x", a);
		for (unsigned c = 0; c < 256; c++) {
			b[1] = (unsigned char)c;
			if (bt_utf8_valid(b, 2) != ref_valid(b, 2))
				cr_fatal("%02x %02x", a, c);
			if (a < 0xe0 || a > 0xf4)
				continue;
			for (unsigned d = 0; d < 256; d++) {
				b[2] = (unsigned char)d;
				if (bt_utf8_valid(b, 3) != ref_valid(b, 3))
					cr_fatal("%02x %02x %02x", a, c, d);
			}
		}
	}
	/* Four bytes: every lead and second byte, edge values after. */
	for (unsigned a = 0xf0; a < 0x100; a++) {
		static const unsigned char edge[] = { 0x00, 0x7f, 0x80, 0xbf,
						      0xc0, 0xff };

		for (unsigned c = 0; c < 256; c++) {
			for (size_t d = 0; d < sizeof(edge); d++) {
				for (size_t e = 0; e < sizeof(edge); e++) {
					b[0] = (unsigned char)a;
					b[1] = (unsigned char)c;
					b[2] = edge[d];
					b[3] = edge[e];
					if (bt_utf8_valid(b, 4) != ref_valid(b, 4))
						cr_fatal("%02x %02x %02x %02x",
							       a, c, edge[d],
							       edge[e]);
				}
			}
		}
	}
}

Test(utf8, a_bad_byte_is_found_at_every_offset_around_the_ascii_fast_path)
{
	unsigned char buf[40];

	for (size_t len = 1; len <= sizeof(buf); len++) {
		for (size_t at = 0; at < len; at++) {
			memset(buf, 'a', sizeof(buf));
			buf[at] = 0x80;
			cr_assert(eq(int, valid(buf, len), 0), "len %zu at %zu",
				  len, at);
			buf[at] = 0xff;
			cr_assert(eq(int, valid(buf, len), 0), "len %zu at %zu",
				  len, at);
			/* A good two-byte character there instead. */
			if (at + 1 < len) {
				buf[at] = 0xc3;
				buf[at + 1] = 0xa9;
				cr_assert(eq(int, valid(buf, len), 1),
					  "len %zu at %zu", len, at);
				/* ... cut short by the end of the string. */
				cr_assert(eq(int, valid(buf, at + 1), 0),
					  "len %zu", at + 1);
			}
		}
	}
}

Test(utf8, bytes_past_the_length_are_not_looked_at)
{
	static const unsigned char s[] = "abcdefghijklmnop\xff\xc2";

	for (size_t len = 0; len <= 16; len++)
		cr_assert(eq(int, valid(s, len), 1), "len %zu", len);
	cr_assert(eq(int, valid(s, 17), 0));
	/* A multi-byte character cut by @len is truncated, even if whole after. */
	cr_assert(eq(int, valid("\xe2\x82\xac", 2), 0));
}
