/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers shared by the Criterion tests: unique session names, sessions
 * that clean up after themselves, captured library messages.
 */
#ifndef BT_TESTS_TESTUTIL_H
#define BT_TESTS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <btrail/kmes.h>

/*
 * A session name unique to this process and call ("t-<tag>-<pid>-<n>"),
 * in a static buffer of 8 rotating slots.
 */
const char *tu_name(const char *tag);

/*
 * Create session @name with @capacity bytes per ring and @slots rings
 * (0: one per CPU) and return it; fails the test on error. The session is
 * destroyed at process exit (atexit), whatever the test did.
 */
struct bt_kmes_session *tu_create(const char *name, uint64_t capacity,
				  uint32_t slots);

/* Destroy at exit a session created some other way. */
void tu_cleanup_at_exit(const char *name);

/* Route library messages into a buffer (and nowhere else). */
void tu_log_capture(void);
/* Everything captured so far, messages separated by newlines. */
const char *tu_log_text(void);
void tu_log_clear(void);

/* A valid msgpack payload of exactly @size bytes (see bt_kmes_payload_fill). */
void tu_payload(void *buf, size_t size, uint64_t seq);

/* CLOCK_REALTIME in ns, as the producer stamps events. */
uint64_t tu_now_ns(void);

/* The btrail binary under test ($BTRAIL_BIN), or NULL. */
const char *tu_btrail_bin(void);

/*
 * Run @argv (argv[0] is a path), capture stdout and stderr into
 * malloc'd strings (may be NULL), return the exit status or 128+signal.
 */
int tu_run(char *const argv[], char **out, char **err);

#endif /* BT_TESTS_TESTUTIL_H */
