/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Extensible option structs (STYLE rule 16): every options struct starts
 * with size_t sz. A caller built against an older, smaller struct passes a
 * smaller sz and gets zeros for the fields it does not know; a caller
 * built against a newer one may pass a larger sz as long as the bytes we
 * do not know are zero.
 */
#ifndef BT_COMMON_OPTS_H
#define BT_COMMON_OPTS_H

#include <errno.h>
#include <stddef.h>
#include <string.h>

/*
 * Copy user options @user (of user size *(size_t *)@user; NULL allowed)
 * into @out, a zeroed struct of @known bytes. Returns 0 or -EINVAL.
 */
static inline int bt_opts_copy(void *out, size_t known, const void *user)
{
	size_t sz;

	memset(out, 0, known);
	if (!user)
		return 0;
	memcpy(&sz, user, sizeof(sz));
	if (sz < sizeof(size_t))
		return -EINVAL;
	if (sz > known) {
		const unsigned char *p = user;

		for (size_t i = known; i < sz; i++) {
			if (p[i])
				return -EINVAL;
		}
		sz = known;
	}
	memcpy(out, user, sz);
	return 0;
}

#endif /* BT_COMMON_OPTS_H */
