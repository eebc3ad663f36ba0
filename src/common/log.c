// SPDX-License-Identifier: BSD-3-Clause
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include <btrail/common.h>

/* Relaxed: a callback is a plain function pointer, set before use. */
static _Atomic(bt_print_fn) print_fn;

bt_print_fn bt_set_print(bt_print_fn fn)
{
	return atomic_exchange_explicit(&print_fn, fn, memory_order_relaxed);
}

void bt_log(enum bt_log_level level, const char *fmt, ...)
{
	bt_print_fn fn = atomic_load_explicit(&print_fn, memory_order_relaxed);
	va_list ap;

	if (!fn)
		return;
	va_start(ap, fmt);
	fn(level, fmt, ap);
	va_end(ap);
}

const char *bt_version(void)
{
	return BTRAIL_VERSION_STRING;
}
