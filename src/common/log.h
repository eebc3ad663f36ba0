/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef BT_COMMON_LOG_H
#define BT_COMMON_LOG_H

#include <btrail/log.h>

/* Internal: hand a message to the callback set with bt_set_print(). */
void bt_log(enum bt_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define pr_warn(...)	bt_log(BT_LOG_WARN, __VA_ARGS__)
#define pr_info(...)	bt_log(BT_LOG_INFO, __VA_ARGS__)
#define pr_debug(...)	bt_log(BT_LOG_DEBUG, __VA_ARGS__)

#endif /* BT_COMMON_LOG_H */
