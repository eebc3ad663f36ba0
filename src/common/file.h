/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef BT_COMMON_FILE_H
#define BT_COMMON_FILE_H

/*
 * bt_copy_file() - copy the bytes of @from into a new file @to (mode 0644,
 * O_EXCL: an existing @to is -EEXIST). Returns 0 or a negative errno; a
 * failed copy may leave a partial @to for the caller to remove.
 */
int bt_copy_file(const char *from, const char *to);

#endif /* BT_COMMON_FILE_H */
