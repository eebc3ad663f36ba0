/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef BT_COMMON_UTF8_H
#define BT_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/*
 * bt_utf8_valid() - true when @s[0..@len) is well-formed UTF-8 (RFC 3629):
 * no overlong forms, no surrogates, nothing above U+10FFFF, no truncated
 * sequence. NUL bytes are valid code points.
 */
bool bt_utf8_valid(const unsigned char *s, size_t len);

#endif /* BT_COMMON_UTF8_H */
