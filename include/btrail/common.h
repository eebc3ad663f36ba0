/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * btrail: things every public header needs.
 */
#ifndef BTRAIL_COMMON_H
#define BTRAIL_COMMON_H

#ifndef BT_API
#define BT_API __attribute__((visibility("default")))
#endif

#define BTRAIL_VERSION_MAJOR	0
#define BTRAIL_VERSION_MINOR	1
#define BTRAIL_VERSION_PATCH	0
#define BTRAIL_VERSION_STRING	"0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version, "MAJOR.MINOR.PATCH"; a static string. */
BT_API const char *bt_version(void);

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_COMMON_H */
