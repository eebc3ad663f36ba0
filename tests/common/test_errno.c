// SPDX-License-Identifier: BSD-3-Clause
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <string.h>

#include <btrail/common.h>
#include <btrail/errno.h>

Test(strerror, btrail_codes_have_their_own_messages)
{
	cr_assert(eq(str, (char *)bt_strerror(-BT_ERRNO_FORMAT),
		     "Malformed input"));
	cr_assert(eq(str, (char *)bt_strerror(BT_ERRNO_CORRUPT),
		     "Shared memory failed validation"));
}

Test(strerror, errno_values_fall_back_to_strerror)
{
	cr_assert(eq(str, (char *)bt_strerror(-ENOENT), strerror(ENOENT)));
	cr_assert(eq(str, (char *)bt_strerror(0), strerror(0)));
}

Test(strerror, unknown_codes_say_so)
{
	cr_assert(strstr(bt_strerror(BT_ERRNO_END + 7), "Unknown error") != NULL);
}

Test(strerror, version_matches_the_header)
{
	cr_assert(eq(str, (char *)bt_version(), BTRAIL_VERSION_STRING));
}
