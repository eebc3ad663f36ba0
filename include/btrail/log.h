/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Library logging. libbtrail never writes to stdout or stderr on its own:
 * it hands each message to a callback the program sets. Messages have the
 * form "<subsystem>: <what failed>: <why>", lowercase, no final period,
 * and no trailing newline.
 */
#ifndef BTRAIL_LOG_H
#define BTRAIL_LOG_H

#include <stdarg.h>

#include <btrail/common.h>

#ifdef __cplusplus
extern "C" {
#endif

enum bt_log_level {
	BT_LOG_WARN,	/* something failed or input was rejected */
	BT_LOG_INFO,	/* a notable state change (resize, recovery) */
	BT_LOG_DEBUG,	/* detail for developers */
};

typedef void (*bt_print_fn)(enum bt_log_level level, const char *fmt,
			    va_list ap);

/*
 * bt_set_print() - route library messages to @fn; NULL silences them
 * (the default). Returns the previous callback. The callback may be called
 * from any thread that calls into the library.
 */
BT_API bt_print_fn bt_set_print(bt_print_fn fn);

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_LOG_H */
