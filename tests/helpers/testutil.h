/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers shared by the Criterion tests: unique session names, sessions
 * that clean up after themselves, captured library messages, a consumer's
 * view of a ring, and child processes.
 */
#ifndef BT_TESTS_TESTUTIL_H
#define BT_TESTS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/* ---- A ring as a consumer sees it --------------------------------------- */

/*
 * The 16-, 32- or 64-bit field at @p, unaligned (memcpy), in host byte
 * order: the layout's little-endian on the hosts these tests run on.
 */
uint16_t tu_rd16(const unsigned char *p);
uint32_t tu_rd32(const unsigned char *p);
uint64_t tu_rd64(const unsigned char *p);

/*
 * The word at @base + @off with an acquire load: positions and the other
 * producer page fields are published with release stores.
 */
uint64_t tu_ld64(const unsigned char *base, unsigned off);
uint32_t tu_ld32(const unsigned char *base, unsigned off);

/* Are the @len bytes at @p all 0? */
bool tu_all_zero(const unsigned char *p, size_t len);

/*
 * A consumer's own §2.2 mapping of @slot of @name (kmes_attach +
 * kmes_map; the fd is closed, the mapping kept); fails the test on error.
 * *@cap_out, when not NULL, gets the capacity.
 */
unsigned char *tu_map_slot(const char *name, uint32_t slot,
			   uint64_t *cap_out);

/*
 * Emit one event of type @type and exactly @size bytes (header included)
 * on @slot with kmes_emit(), its payload a tu_payload() for the next
 * sequence; fails the test on error.
 */
void tu_emit_sized(struct bt_kmes_session *s, uint32_t slot, const char *type,
		   uint32_t size);

/* ---- Time and child processes ------------------------------------------- */

/* CLOCK_MONOTONIC in ms. */
uint64_t tu_mono_ms(void);

/* The state letter of /proc/<pid>/stat ('S' sleeping, 'R', ...) or '?'. */
char tu_proc_state(pid_t pid);

/* Give @pid time to reach its sleep: poll for 'S', then a little more. */
void tu_wait_until_sleeping(pid_t pid);

/* Read exactly @len bytes of @fd (a pipe from a child); fails the test. */
void tu_read_full(int fd, void *buf, size_t len);

/* For children: write @len bytes to @fd or _exit(99). */
void tu_write_full(int fd, const void *buf, size_t len);

/* The next xorshift64 value of state *@s, which must not be 0. */
uint64_t tu_xorshift(uint64_t *s);

/* Reap @pid, fail the test unless it exited; return its exit status. */
int tu_child_status(pid_t pid);

#endif /* BT_TESTS_TESTUTIL_H */
