// SPDX-License-Identifier: BSD-3-Clause
#include "common/utf8.h"

#include <stdint.h>
#include <string.h>

/*
 * Table 3-7 of the Unicode standard: the well-formed byte sequences. The
 * second byte's range depends on the first byte; later bytes are always
 * 0x80..0xBF.
 */
bool bt_utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;
	uint64_t w;

	/*
	 * Fast path for the usual all-ASCII string: whole words up to the
	 * first byte with the high bit, then the tail as one word that
	 * overlaps the last one checked. Anything else goes the long way
	 * from the first word that is not ASCII.
	 */
	while (len - i >= 8) {
		memcpy(&w, s + i, sizeof(w));
		if (w & 0x8080808080808080ull)
			break;
		i += 8;
	}
	if (len - i < 8) {
		if (len >= 8) {
			memcpy(&w, s + len - 8, sizeof(w));
			if (!(w & 0x8080808080808080ull))
				return true;
		} else {
			unsigned char acc = 0;

			for (size_t k = 0; k < len; k++)
				acc |= s[k];
			if (!(acc & 0x80))
				return true;
		}
	}

	while (i < len) {
		unsigned char c = s[i];
		unsigned char lo = 0x80, hi = 0xBF;
		size_t n;

		/* Fast path: eight ASCII bytes at a time. */
		if (len - i >= 8) {
			memcpy(&w, s + i, sizeof(w));
			if (!(w & 0x8080808080808080ull)) {
				i += 8;
				continue;
			}
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			if (c == 0xE0)
				lo = 0xA0;	/* no overlong */
			else if (c == 0xED)
				hi = 0x9F;	/* no surrogates */
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			if (c == 0xF0)
				lo = 0x90;	/* no overlong */
			else if (c == 0xF4)
				hi = 0x8F;	/* nothing past U+10FFFF */
		} else {
			return false;		/* 0x80..0xC1, 0xF5..0xFF */
		}
		if (len - i - 1 < n)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++) {
			if (s[i + k] < 0x80 || s[i + k] > 0xBF)
				return false;
		}
		i += n + 1;
	}
	return true;
}
