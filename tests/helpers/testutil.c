// SPDX-License-Identifier: BSD-3-Clause
#include "helpers/testutil.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <btrail/errno.h>
#include <btrail/log.h>

#define MAX_CLEANUP	64

static char cleanup[MAX_CLEANUP][128];
static int ncleanup;
static pid_t cleanup_pid;

static void run_cleanup(void)
{
	if (getpid() != cleanup_pid)
		return;		/* a forked child: the parent cleans up */
	for (int i = 0; i < ncleanup; i++)
		bt_kmes_session__destroy(cleanup[i], true);
}

void tu_cleanup_at_exit(const char *name)
{
	if (ncleanup == 0) {
		cleanup_pid = getpid();
		atexit(run_cleanup);
	}
	if (ncleanup < MAX_CLEANUP)
		snprintf(cleanup[ncleanup++], sizeof(cleanup[0]), "%s", name);
}

const char *tu_name(const char *tag)
{
	static char buf[8][96];
	static unsigned n;
	char *b = buf[n % 8];

	snprintf(b, sizeof(buf[0]), "t-%s-%d-%u", tag, (int)getpid(), n);
	n++;
	return b;
}

struct bt_kmes_session *tu_create(const char *name, uint64_t capacity,
				  uint32_t slots)
{
	struct bt_kmes_session_opts o = {
		.sz = sizeof(o),
		.capacity = capacity,
		.slots = slots,
	};
	struct bt_kmes_session *s;

	bt_kmes_session__destroy(name, true);
	s = bt_kmes_session__create(name, &o);
	cr_assert(s != NULL, "cannot create session %s: %s", name, bt_strerror(errno));
	tu_cleanup_at_exit(name);
	return s;
}

static char logbuf[65536];
static size_t loglen;

__attribute__((format(printf, 2, 0)))
static void capture(enum bt_log_level level, const char *fmt, va_list ap)
{
	int n;

	(void)level;
	if (loglen >= sizeof(logbuf) - 2)
		return;
	n = vsnprintf(logbuf + loglen, sizeof(logbuf) - loglen - 1, fmt, ap);
	if (n < 0)
		return;
	loglen += (size_t)n;
	if (loglen > sizeof(logbuf) - 2)
		loglen = sizeof(logbuf) - 2;
	logbuf[loglen++] = '\n';
	logbuf[loglen] = '\0';
}

void tu_log_capture(void)
{
	tu_log_clear();
	bt_set_print(capture);
}

const char *tu_log_text(void)
{
	return logbuf;
}

void tu_log_clear(void)
{
	loglen = 0;
	logbuf[0] = '\0';
}

void tu_payload(void *buf, size_t size, uint64_t seq)
{
	uint64_t rng = seq * 0x9e3779b97f4a7c15ull + 1;

	cr_assert(bt_kmes_payload_fill(buf, size, seq, &rng) == size);
}

uint64_t tu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *tu_btrail_bin(void)
{
	const char *b = getenv("BTRAIL_BIN");

	return b && *b ? b : NULL;
}

/* Read all of @fd into a malloc'd string. */
static char *slurp(int fd)
{
	size_t len = 0, cap = 4096;
	char *s = malloc(cap);
	ssize_t n;

	if (!s)
		return NULL;
	while ((n = read(fd, s + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 2) {
			char *t = realloc(s, cap * 2);

			if (!t)
				break;
			s = t;
			cap *= 2;
		}
	}
	s[len] = '\0';
	return s;
}

int tu_run(char *const argv[], char **out, char **err)
{
	char outname[] = "/tmp/bt-tu-out-XXXXXX";
	char errname[] = "/tmp/bt-tu-err-XXXXXX";
	int ofd = mkstemp(outname), efd = mkstemp(errname), status;
	pid_t pid;

	cr_assert(ofd >= 0 && efd >= 0);
	unlink(outname);
	unlink(errname);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(ofd, STDOUT_FILENO);
		dup2(efd, STDERR_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	cr_assert(waitpid(pid, &status, 0) == pid);
	lseek(ofd, 0, SEEK_SET);
	lseek(efd, 0, SEEK_SET);
	if (out)
		*out = slurp(ofd);
	if (err)
		*err = slurp(efd);
	close(ofd);
	close(efd);
	return WIFEXITED(status) ? WEXITSTATUS(status) :
	       128 + WTERMSIG(status);
}

uint16_t tu_rd16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

uint32_t tu_rd32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

uint64_t tu_rd64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

uint64_t tu_ld64(const unsigned char *base, unsigned off)
{
	return __atomic_load_n((const uint64_t *)(const void *)(base + off),
			       __ATOMIC_ACQUIRE);
}

uint32_t tu_ld32(const unsigned char *base, unsigned off)
{
	return __atomic_load_n((const uint32_t *)(const void *)(base + off),
			       __ATOMIC_ACQUIRE);
}

bool tu_all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i])
			return false;
	}
	return true;
}

unsigned char *tu_map_slot(const char *name, uint32_t slot,
			   uint64_t *cap_out)
{
	uint64_t cap = 0;
	void *base;
	int fd;

	fd = kmes_attach(name, slot, &cap);
	cr_assert(ge(int, fd, 0), "kmes_attach(%s, %u): %s", name, slot,
		  strerror(errno));
	base = kmes_map(fd, cap);
	cr_assert(ne(ptr, base, NULL), "kmes_map(%s, %u): %s", name, slot,
		  strerror(errno));
	close(fd);
	if (cap_out)
		*cap_out = cap;
	return base;
}

void tu_emit_sized(struct bt_kmes_session *s, uint32_t slot, const char *type,
		   uint32_t size)
{
	static unsigned char buf[65536];
	uint16_t tlen = (uint16_t)strlen(type);
	uint32_t hdr = KMES_HDR_FIXED + tlen;
	uint32_t plen = size - hdr;
	uint64_t seq = bt_kmes_session__last_sequence(s, slot) + 1;

	cr_assert(size > hdr && plen <= sizeof(buf));
	tu_payload(buf, plen, seq);
	cr_assert(eq(int, kmes_emit(s, slot, type, tlen, buf, plen), 0),
		  "kmes_emit(slot %u, %u bytes): %s", slot, size,
		  strerror(errno));
}

uint64_t tu_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

char tu_proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

void tu_wait_until_sleeping(pid_t pid)
{
	for (int i = 0; i < 500 && tu_proc_state(pid) != 'S'; i++)
		usleep(10000);
	usleep(50000);
}

void tu_read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		cr_assert(gt(long, (long)n, 0L), "short read from child");
		done += (size_t)n;
	}
}

void tu_write_full(int fd, const void *buf, size_t len)
{
	if (write(fd, buf, len) != (ssize_t)len)
		_exit(99);
}

uint64_t tu_xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

int tu_child_status(pid_t pid)
{
	int st = 0;

	cr_assert(eq(int, (int)waitpid(pid, &st, 0), (int)pid));
	cr_assert(eq(int, WIFEXITED(st) ? 1 : 0, 1), "child died (status %#x)",
		  st);
	return WEXITSTATUS(st);
}
