// SPDX-License-Identifier: BSD-3-Clause
#include <btrail/errno.h>

#include <stdio.h>
#include <string.h>

static const char *const bt_errstr[BT_ERRNO_END - BT_ERRNO_BASE] = {
	[BT_ERRNO_FORMAT - BT_ERRNO_BASE] = "Malformed input",
	[BT_ERRNO_CORRUPT - BT_ERRNO_BASE] = "Shared memory failed validation",
	[BT_ERRNO_INTERNAL - BT_ERRNO_BASE] = "Internal error (a btrail bug)",
};

const char *bt_strerror(int err)
{
	static _Thread_local char buf[64];

	if (err < 0)
		err = -err;
	if (err >= BT_ERRNO_BASE && err < BT_ERRNO_END)
		return bt_errstr[err - BT_ERRNO_BASE];
	if (err >= BT_ERRNO_END) {
		snprintf(buf, sizeof(buf), "Unknown error %d", err);
		return buf;
	}
	/* GNU strerror_r returns the message, maybe not in buf. */
	return strerror_r(err, buf, sizeof(buf));
}
