// SPDX-License-Identifier: BSD-3-Clause
/*
 * The consumer's entry points with the spec's names: kmes_attach(),
 * kmes_map(), kmes_unmap(), and the §2.2 mapping they produce (KMES.md
 * §8 items 1, 3, 4, 6, 7, 32-35). Item 31 (privilege) is file permissions
 * here and is tested with the session's file modes (test_kmes_session.c).
 * Everything is read through a consumer's own mapping at the offsets of
 * <btrail/kmes.h>, little-endian and unaligned (memcpy).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <btrail/kmes.h>

#include "helpers/testutil.h"

#define CAP_64K		65536u
#define CAP_128K	131072u
#define CAP_256K	262144u
#define EV_TYPE		"t.attach"

/* ---- Helpers ------------------------------------------------------------ */

/* The lowest free descriptor: a leaked fd moves it. */
static int lowest_free_fd(void)
{
	int fd = dup(0);

	cr_assert(ge(int, fd, 0));
	close(fd);
	return fd;
}

/*
 * Walk the events of a mapping from tail_pos to write_pos with the
 * structural checks of KMES.md §10 item 9; calls @fn on each. Returns the
 * number of events.
 */
typedef void (*ev_fn)(const unsigned char *ev, void *arg);

static size_t walk_events(const unsigned char *base, uint64_t cap,
			  ev_fn fn, void *arg)
{
	uint64_t wp = tu_ld64(base, KMES_OFF_WRITE_POS);
	uint64_t pos = tu_ld64(base, KMES_OFF_TAIL_POS);
	size_t n = 0;

	cr_assert(le(u64, pos, wp));
	cr_assert(le(u64, wp - pos, cap));
	while (pos < wp) {
		const unsigned char *ev = base + KMES_DATA_OFFSET +
					  (pos & (cap - 1));
		uint32_t esz = tu_rd32(ev + KMES_EV_EVENT_SIZE);
		uint32_t hsz = tu_rd32(ev + KMES_EV_HEADER_SIZE);

		cr_assert(ge(u32, esz, KMES_HDR_FIXED), "event at %" PRIu64, pos);
		cr_assert(le(u64, (uint64_t)esz, wp - pos));
		cr_assert(le(u64, (uint64_t)esz, cap / 2));
		cr_assert(eq(u32, hsz, KMES_HDR_FIXED +
				       tu_rd16(ev + KMES_EV_TYPE_LEN)));
		cr_assert(le(u32, hsz, esz));
		if (fn)
			fn(ev, arg);
		pos += esz;
		n++;
	}
	cr_assert(eq(u64, pos, wp), "the event chain must end at write_pos");
	return n;
}

/*
 * Parse /proc/self/maps for the mappings of files under @dir: the number
 * of bytes mapped inside [@lo, @hi), outside it, and the permissions of
 * the page at @probe.
 */
struct maps_info {
	uint64_t inside;
	uint64_t outside;
	char perms[5];
};

static void maps_scan(const char *dir, uintptr_t lo, uintptr_t hi,
		      uintptr_t probe, struct maps_info *mi)
{
	char line[PATH_MAX + 256], real[PATH_MAX];
	FILE *f = fopen("/proc/self/maps", "r");
	size_t dl;

	cr_assert(ne(ptr, f, NULL));
	/* The kernel names mappings by their canonical path. */
	cr_assert(ne(ptr, realpath(dir, real), NULL));
	dir = real;
	dl = strlen(dir);
	memset(mi, 0, sizeof(*mi));
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		char perms[5], *path;

		if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) != 3)
			continue;
		path = strchr(line, '/');
		if (!path || strncmp(path, dir, dl) != 0 || path[dl] != '/')
			continue;
		if (start >= lo && end <= hi)
			mi->inside += end - start;
		else
			mi->outside += end - start;
		if (probe >= start && probe < end)
			memcpy(mi->perms, perms, sizeof(perms));
	}
	fclose(f);
}

/*
 * Fork a child that writes one byte at @addr; returns the wait status.
 * The child restores the default SIGSEGV action first (a sanitizer
 * runtime catches SIGSEGV to report it, and would exit instead of dying
 * by the signal), and records the si_code of the fault in @code, a
 * shared page: SEGV_ACCERR says the page is mapped but not writable.
 */
static volatile int *fault_code;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	struct sigaction sa;

	(void)uc;
	*fault_code = si->si_code;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(sig, &sa, NULL);	/* the write faults again and kills */
}

static int write_in_child(volatile unsigned char *addr, int *code)
{
	int status;
	pid_t pid;

	fault_code = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(ne(ptr, (void *)fault_code, MAP_FAILED));
	*fault_code = -1;
	pid = fork();
	cr_assert(ge(int, pid, 0));
	if (pid == 0) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_segv;
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGSEGV, &sa, NULL);
		*addr = 0x5a;
		_exit(0);
	}
	cr_assert(eq(int, waitpid(pid, &status, 0), pid));
	*code = *fault_code;
	munmap((void *)fault_code, 4096);
	return status;
}

static void assert_write_faults(unsigned char *addr, const char *what)
{
	int code, status = write_in_child(addr, &code);
	int segv = WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;

	cr_assert(segv, "a write to %s must die by SIGSEGV (status 0x%x)",
		  what, status);
	cr_assert(eq(int, code, SEGV_ACCERR),
		  "%s must be mapped read-only, not unmapped", what);
}

/* ---- Layout ------------------------------------------------------------- */

/* KMES.md §8 item 1 */
Test(kmes_attach, the_mapping_is_8192_plus_twice_the_capacity_with_magic_version_and_data_offset)
{
	const char *name = tu_name("layout");
	struct bt_kmes_session *s = tu_create(name, CAP_128K, 1);
	struct maps_info mi;
	unsigned char *base;
	uint64_t cap;
	uintptr_t lo;

	base = tu_map_slot(name, 0, &cap);
	cr_assert(eq(u64, cap, CAP_128K));
	cr_assert(eq(int, memcmp(base, "\x4b\x4d\x45\x53\x52\x49\x4e\x47", 8), 0));
	cr_assert(eq(u32, tu_rd32(base + KMES_OFF_VERSION), 1));
	cr_assert(eq(u64, tu_rd64(base + KMES_OFF_DATA_OFFSET), 8192));
	cr_assert(eq(u64, tu_rd64(base + KMES_OFF_CAPACITY), cap));

	/* Exactly 8192 + 2 * capacity bytes of the session's files. */
	lo = (uintptr_t)base;
	maps_scan(bt_kmes_session__path(s), lo, lo + KMES_MAP_SIZE(cap), lo, &mi);
	cr_assert(eq(u64, mi.inside, 8192 + 2 * cap));
	cr_assert(eq(int, kmes_unmap(base, cap), 0));
	maps_scan(bt_kmes_session__path(s), lo, lo + KMES_MAP_SIZE(cap), lo, &mi);
	cr_assert(eq(u64, mi.inside, 0), "kmes_unmap leaves nothing mapped");
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 3 */
Test(kmes_attach, metadata_cpu_id_is_the_attached_slot_and_its_events_carry_it)
{
	const char *name = tu_name("cpuid");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 3);

	for (uint32_t slot = 0; slot < 3; slot++) {
		for (uint32_t i = 0; i <= slot; i++)
			tu_emit_sized(s, slot, EV_TYPE, 200 + 10 * i);
	}
	for (uint32_t slot = 0; slot < 3; slot++) {
		uint64_t cap, wp, pos;
		unsigned char *base = tu_map_slot(name, slot, &cap);
		size_t n = 0;

		cr_assert(eq(u16, tu_rd16(base + KMES_OFF_CPU_ID),
			     (uint16_t)slot));
		wp = tu_ld64(base, KMES_OFF_WRITE_POS);
		for (pos = tu_ld64(base, KMES_OFF_TAIL_POS); pos < wp; n++) {
			const unsigned char *ev = base + KMES_DATA_OFFSET +
						  (pos & (cap - 1));

			cr_assert(eq(u16, tu_rd16(ev + KMES_EV_CPU_ID),
				     (uint16_t)slot));
			pos += tu_rd32(ev + KMES_EV_EVENT_SIZE);
		}
		cr_assert(eq(sz, n, (size_t)slot + 1));
		kmes_unmap(base, cap);
	}
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 4 */
Test(kmes_attach, reserved0_to_reserved4_read_zero)
{
	const char *name = tu_name("rsvd");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);

	/* Through a wrap, so every producer field has moved. */
	for (int i = 0; i < 200; i++)
		tu_emit_sized(s, 1, EV_TYPE, 1000);
	for (uint32_t slot = 0; slot < 2; slot++) {
		uint64_t cap;
		unsigned char *base = tu_map_slot(name, slot, &cap);

		cr_assert(tu_all_zero(base + KMES_OFF_RESERVED0, 2),
			  "reserved0");
		cr_assert(tu_all_zero(base + KMES_OFF_RESERVED1, 24),
			  "reserved1");
		cr_assert(tu_all_zero(base + KMES_OFF_RESERVED2, 48),
			  "reserved2");
		cr_assert(tu_all_zero(base + KMES_OFF_RESERVED3, 60),
			  "reserved3");
		cr_assert(tu_all_zero(base + KMES_OFF_NEED_WAKE + 1, 4095),
			  "reserved4");
		kmes_unmap(base, cap);
	}
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 6 */
Test(kmes_attach, writes_to_the_producer_page_or_the_data_fault)
{
	const char *name = tu_name("rofault");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	unsigned char *base;
	uint64_t cap;

	tu_emit_sized(s, 0, EV_TYPE, 300);
	base = tu_map_slot(name, 0, &cap);
	assert_write_faults(base + KMES_OFF_MAGIC, "the magic");
	assert_write_faults(base + KMES_OFF_WRITE_POS, "write_pos");
	assert_write_faults(base + KMES_OFF_FUTEX, "futex_counter");
	assert_write_faults(base + 4095, "the last producer-page byte");
	assert_write_faults(base + KMES_DATA_OFFSET, "the data region");
	assert_write_faults(base + KMES_DATA_OFFSET + cap - 1,
			    "the end of the data region");
	assert_write_faults(base + KMES_DATA_OFFSET + cap,
			    "the second copy of the data");
	assert_write_faults(base + KMES_MAP_SIZE(cap) - 1,
			    "the last byte of the mapping");
	/* Nothing a child tried reached the ring. */
	cr_assert(eq(int, memcmp(base, KMES_MAGIC, KMES_MAGIC_LEN), 0));
	cr_assert(eq(u64, tu_ld64(base, KMES_OFF_WRITE_POS), 300));
	cr_assert(eq(u32, tu_rd32(base + KMES_DATA_OFFSET), 300));
	kmes_unmap(base, cap);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 6 */
Test(kmes_attach, no_protection_asked_for_makes_the_ring_writable)
{
	const char *name = tu_name("roprot");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	unsigned char *base;
	uint64_t cap = 0;
	void *p;
	int fd;

	fd = kmes_attach(name, 0, &cap);
	cr_assert(ge(int, fd, 0));
	cr_assert(eq(int, fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY));

	/* The canonical call of the spec is refused: the fd is read-only. */
	errno = 0;
	p = mmap(NULL, KMES_MAP_SIZE(cap), PROT_READ | PROT_WRITE, MAP_SHARED,
		 fd, 0);
	cr_assert(eq(ptr, p, MAP_FAILED));
	cr_assert(eq(int, errno, EACCES));
	errno = 0;
	p = mmap(NULL, KMES_PAGE_SIZE, PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert(eq(ptr, p, MAP_FAILED));
	cr_assert(eq(int, errno, EACCES));

	/* Nor can the pages kmes_map() gives be made writable. */
	base = kmes_map(fd, cap);
	cr_assert(ne(ptr, base, NULL));
	errno = 0;
	cr_assert(eq(int, mprotect(base, KMES_PAGE_SIZE, PROT_READ | PROT_WRITE),
		     -1));
	cr_assert(eq(int, errno, EACCES));
	errno = 0;
	cr_assert(eq(int, mprotect(base + KMES_DATA_OFFSET, cap,
				   PROT_READ | PROT_WRITE), -1));
	cr_assert(eq(int, errno, EACCES));
	assert_write_faults(base, "the producer page after mprotect");
	close(fd);
	kmes_unmap(base, cap);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 6 */
Test(kmes_attach, need_wake_is_writable_and_shared_by_the_consumers_of_a_slot)
{
	const char *name = tu_name("needwake");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	struct maps_info mi;
	unsigned char *a, *b, *other;
	uint64_t cap;
	int code, status, ok;

	a = tu_map_slot(name, 0, &cap);
	b = tu_map_slot(name, 0, &cap);
	other = tu_map_slot(name, 1, &cap);

	/* A child's write succeeds (it exits normally) ... */
	status = write_in_child(a + KMES_OFF_NEED_WAKE, &code);
	ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	cr_assert(ok, "a write to need_wake must not fault (status 0x%x)",
		  status);
	cr_assert(eq(int, code, -1));
	/* ... lands in the shared consumer page, seen by every mapping. */
	cr_assert(eq(u8, a[KMES_OFF_NEED_WAKE], 0x5a));
	cr_assert(eq(u8, b[KMES_OFF_NEED_WAKE], 0x5a));
	cr_assert(eq(u8, other[KMES_OFF_NEED_WAKE], 0),
		  "another slot has its own consumer page");
	b[KMES_OFF_NEED_WAKE] = 0;
	cr_assert(eq(u8, a[KMES_OFF_NEED_WAKE], 0));

	/* The kernel's view: only the consumer page is writable. */
	maps_scan(bt_kmes_session__path(s), 0, 0, (uintptr_t)a, &mi);
	cr_assert(eq(chr, mi.perms[1], '-'), "producer page %s", mi.perms);
	maps_scan(bt_kmes_session__path(s), 0, 0,
		  (uintptr_t)(a + KMES_OFF_NEED_WAKE), &mi);
	cr_assert(eq(chr, mi.perms[1], 'w'), "consumer page %s", mi.perms);
	cr_assert(eq(chr, mi.perms[3], 's'), "consumer page %s", mi.perms);
	maps_scan(bt_kmes_session__path(s), 0, 0,
		  (uintptr_t)(a + KMES_DATA_OFFSET + cap), &mi);
	cr_assert(eq(chr, mi.perms[1], '-'), "data %s", mi.perms);
	kmes_unmap(a, cap);
	kmes_unmap(b, cap);
	kmes_unmap(other, cap);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 7 */
Test(kmes_attach, the_data_region_is_mapped_twice_in_a_row)
{
	const char *name = tu_name("double");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	unsigned char *base, *d;
	uint64_t cap, wp, pos, k;
	bool straddled = false;

	/* 999-byte events wrap the ring three times and straddle its end. */
	for (int i = 0; i < 200; i++)
		tu_emit_sized(s, 0, EV_TYPE, 999);
	base = tu_map_slot(name, 0, &cap);
	d = base + KMES_DATA_OFFSET;
	wp = tu_ld64(base, KMES_OFF_WRITE_POS);
	cr_assert(gt(u64, wp, 3 * cap), "the ring has wrapped");
	for (k = 0; k < cap; k++) {
		if (d[k] != d[cap + k])
			break;
	}
	cr_assert(eq(u64, k, cap), "byte %" PRIu64 " differs", k);
	/* An event crossing the physical end reads back whole. */
	for (pos = tu_ld64(base, KMES_OFF_TAIL_POS); pos < wp; pos += 999) {
		uint64_t off = pos & (cap - 1), seq;
		const unsigned char *ev = d + off;
		uint32_t hsz = tu_rd32(ev + KMES_EV_HEADER_SIZE);

		cr_assert(eq(u32, tu_rd32(ev + KMES_EV_EVENT_SIZE), 999));
		if (off + 999 > cap)
			straddled = true;
		cr_assert(eq(int, bt_kmes_payload_check(ev + hsz, 999 - hsz,
							&seq), 1));
		cr_assert(eq(u64, seq, tu_rd64(ev + KMES_EV_SEQUENCE)));
	}
	cr_assert(straddled, "some event must cross the physical end");
	kmes_unmap(base, cap);
	bt_kmes_session__close(s);
}

/* ---- kmes_attach -------------------------------------------------------- */

/* KMES.md §8 item 32 */
Test(kmes_attach, slots_0_to_n_minus_1_attach_and_slot_n_is_einval)
{
	const char *name = tu_name("slots");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 3);
	uint64_t cap;
	int fd;

	for (uint32_t slot = 0; slot < 3; slot++) {
		cap = 0;
		fd = kmes_attach(name, slot, &cap);
		cr_assert(ge(int, fd, 0), "slot %u: %s", slot, strerror(errno));
		cr_assert(eq(u64, cap, CAP_64K));
		close(fd);
	}
	cap = 0xcdcdcdcdcdcdcdcdull;
	errno = 0;
	cr_assert(eq(int, kmes_attach(name, 3, &cap), -1));
	cr_assert(eq(int, errno, EINVAL));
	cr_assert(eq(u64, cap, 0xcdcdcdcdcdcdcdcdull), "untouched on error");
	errno = 0;
	cr_assert(eq(int, kmes_attach(name, 0xFFFFFFFEu, &cap), -1));
	cr_assert(eq(int, errno, EINVAL));

	/* A slot added later can be attached; the next one still cannot. */
	cr_assert(eq(int, bt_kmes_session__add_slot(s, 0), 3));
	fd = kmes_attach(name, 3, &cap);
	cr_assert(ge(int, fd, 0));
	close(fd);
	errno = 0;
	cr_assert(eq(int, kmes_attach(name, 4, &cap), -1));
	cr_assert(eq(int, errno, EINVAL));
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 32 */
Test(kmes_attach, a_per_cpu_session_has_a_slot_for_every_online_cpu)
{
	const char *name = tu_name("percpu");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 0);
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t n = 0, cap;
	int fd;

	cr_assert(eq(int, kmes_attach(name, KMES_ATTACH_QUERY_SLOTS, &n), 0));
	cr_assert(ge(u64, n, (uint64_t)online));
	cr_assert(eq(u64, n, bt_kmes_session__slots(s)));
	for (uint32_t slot = 0; slot < n; slot++) {
		fd = kmes_attach(name, slot, &cap);
		cr_assert(ge(int, fd, 0), "slot %u: %s", slot, strerror(errno));
		close(fd);
	}
	errno = 0;
	cr_assert(eq(int, kmes_attach(name, (uint32_t)n, &cap), -1));
	cr_assert(eq(int, errno, EINVAL));
	bt_kmes_session__close(s);
}

Test(kmes_attach, query_slots_stores_the_slot_count_and_opens_nothing)
{
	const char *name = tu_name("query");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 5);
	int free_fd = lowest_free_fd();
	uint64_t n = 0;

	cr_assert(eq(int, kmes_attach(name, KMES_ATTACH_QUERY_SLOTS, &n), 0));
	cr_assert(eq(u64, n, 5));
	cr_assert(eq(int, lowest_free_fd(), free_fd), "no fd is opened");
	errno = 0;
	cr_assert(eq(int, kmes_attach(name, KMES_ATTACH_QUERY_SLOTS, NULL), -1));
	cr_assert(eq(int, errno, EFAULT));
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 33 */
Test(kmes_attach, a_null_capacity_pointer_is_efault_and_leaks_no_fd)
{
	const char *name = tu_name("efault");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	int free_fd = lowest_free_fd();

	errno = 0;
	cr_assert(eq(int, kmes_attach(name, 0, NULL), -1));
	cr_assert(eq(int, errno, EFAULT));
	cr_assert(eq(int, lowest_free_fd(), free_fd),
		  "the fd is closed again, as the spec does");
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 34 */
Test(kmes_attach, two_attaches_give_distinct_fds_that_see_the_same_events)
{
	const char *name = tu_name("twice");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	uint64_t cap1 = 0, cap2 = 0, wp;
	unsigned char *m1, *m2;
	int fd1, fd2;

	tu_emit_sized(s, 0, EV_TYPE, 400);
	fd1 = kmes_attach(name, 0, &cap1);
	fd2 = kmes_attach(name, 0, &cap2);
	cr_assert(ge(int, fd1, 0));
	cr_assert(ge(int, fd2, 0));
	cr_assert(ne(int, fd1, fd2));
	cr_assert(eq(u64, cap1, cap2));
	/* Independent open files: an offset moved on one is not the other's. */
	cr_assert(eq(int, (int)lseek(fd1, 100, SEEK_SET), 100));
	cr_assert(eq(int, (int)lseek(fd2, 0, SEEK_CUR), 0));
	cr_assert(fcntl(fd1, F_GETFD) & FD_CLOEXEC);
	cr_assert(fcntl(fd2, F_GETFD) & FD_CLOEXEC);

	m1 = kmes_map(fd1, cap1);
	m2 = kmes_map(fd2, cap2);
	cr_assert(ne(ptr, m1, NULL));
	cr_assert(ne(ptr, m2, NULL));
	cr_assert(ne(ptr, m1, m2));
	for (int i = 0; i < 10; i++)
		tu_emit_sized(s, 0, EV_TYPE, 300 + i);
	wp = tu_ld64(m1, KMES_OFF_WRITE_POS);
	cr_assert(eq(u64, wp, 400 + 10 * 300 + 45));
	cr_assert(eq(u64, tu_ld64(m2, KMES_OFF_WRITE_POS), wp));
	cr_assert(eq(sz, walk_events(m1, cap1, NULL, NULL), 11));
	cr_assert(eq(sz, walk_events(m2, cap2, NULL, NULL), 11));
	cr_assert(eq(int, memcmp(m1 + KMES_DATA_OFFSET, m2 + KMES_DATA_OFFSET,
				 wp), 0));

	/* Letting go of one leaves the other working. */
	close(fd1);
	kmes_unmap(m1, cap1);
	tu_emit_sized(s, 0, EV_TYPE, 500);
	cr_assert(eq(u64, tu_ld64(m2, KMES_OFF_WRITE_POS), wp + 500));
	cr_assert(eq(sz, walk_events(m2, cap2, NULL, NULL), 12));
	close(fd2);
	kmes_unmap(m2, cap2);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 35 */
Test(kmes_attach, the_capacity_written_equals_the_metadata_capacity)
{
	const uint64_t caps[] = { CAP_64K, CAP_128K, CAP_256K };

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		const char *name = tu_name("cap");
		struct bt_kmes_session *s = tu_create(name, caps[i], 1);
		uint64_t cap = 0;
		unsigned char *base;
		int fd;

		fd = kmes_attach(name, 0, &cap);
		cr_assert(ge(int, fd, 0));
		cr_assert(eq(u64, cap, caps[i]));
		base = kmes_map(fd, cap);
		cr_assert(ne(ptr, base, NULL));
		cr_assert(eq(u64, tu_rd64(base + KMES_OFF_CAPACITY), cap));
		close(fd);
		kmes_unmap(base, cap);
		bt_kmes_session__close(s);
	}
}

Test(kmes_attach, a_missing_session_is_enoent)
{
	char dir[] = "/tmp/bt-attach-XXXXXX";
	uint64_t cap;

	errno = 0;
	cr_assert(eq(int, kmes_attach(tu_name("nosuch"), 0, &cap), -1));
	cr_assert(eq(int, errno, ENOENT));
	errno = 0;
	cr_assert(eq(int, kmes_attach(tu_name("nosuch"),
				      KMES_ATTACH_QUERY_SLOTS, &cap), -1));
	cr_assert(eq(int, errno, ENOENT));
	errno = 0;
	cr_assert(eq(int, kmes_attach("/nonexistent/bt-session", 0, &cap), -1));
	cr_assert(eq(int, errno, ENOENT));
	/* A directory that is no session (no lock file). */
	cr_assert(ne(ptr, mkdtemp(dir), NULL));
	errno = 0;
	cr_assert(eq(int, kmes_attach(dir, 0, &cap), -1));
	cr_assert(eq(int, errno, ENOENT));
	errno = 0;
	cr_assert(eq(int, kmes_attach("/etc/passwd", 0, &cap), -1));
	cr_assert(eq(int, errno, ENOENT), "a file is no session");
	rmdir(dir);
}

Test(kmes_attach, a_null_session_name_is_efault)
{
	uint64_t cap;

	errno = 0;
	cr_assert(eq(int, kmes_attach(NULL, 0, &cap), -1));
	cr_assert(eq(int, errno, EFAULT));
	errno = 0;
	cr_assert(eq(int, kmes_attach(NULL, KMES_ATTACH_QUERY_SLOTS, &cap), -1));
	cr_assert(eq(int, errno, EFAULT));
}

Test(kmes_attach, a_bad_session_name_is_einval)
{
	char longname[300];
	const char *bad[] = { "", ".hidden", "has space", "star*", "tab\tname",
			      "semi;colon", longname };

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t cap = 0xcdcdcdcdcdcdcdcdull;

		errno = 0;
		cr_assert(eq(int, kmes_attach(bad[i], 0, &cap), -1),
			  "name '%s'", bad[i]);
		cr_assert(eq(int, errno, EINVAL), "name '%s'", bad[i]);
		cr_assert(eq(u64, cap, 0xcdcdcdcdcdcdcdcdull));
	}
}

Test(kmes_attach, a_session_is_reachable_by_its_directory)
{
	const char *name = tu_name("bydir");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	uint64_t cap = 0, n = 0;
	int fd;

	cr_assert(eq(int, kmes_attach(bt_kmes_session__path(s),
				      KMES_ATTACH_QUERY_SLOTS, &n), 0));
	cr_assert(eq(u64, n, 2));
	fd = kmes_attach(bt_kmes_session__path(s), 1, &cap);
	cr_assert(ge(int, fd, 0), "%s", strerror(errno));
	cr_assert(eq(u64, cap, CAP_64K));
	close(fd);
	bt_kmes_session__close(s);
}

/* Overwrite @len bytes at @off of ring.<slot> of closed session @dir. */
static void corrupt_ring(const char *dir, uint32_t slot, off_t off,
			 const void *bytes, size_t len)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/ring.%u", dir, slot);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	cr_assert(ge(int, fd, 0), "%s: %s", path, strerror(errno));
	cr_assert(eq(int, (int)pwrite(fd, bytes, len, off), (int)len));
	close(fd);
}

Test(kmes_attach, a_ring_with_a_corrupt_magic_is_eproto_and_the_log_says_why)
{
	const char *name = tu_name("eproto");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	char dir[PATH_MAX];
	uint64_t cap = 0xcdcdcdcdcdcdcdcdull;
	int free_fd, fd;

	snprintf(dir, sizeof(dir), "%s", bt_kmes_session__path(s));
	bt_kmes_session__close(s);
	corrupt_ring(dir, 0, KMES_OFF_MAGIC, "GARBAGE!", 8);

	tu_log_capture();
	free_fd = lowest_free_fd();
	errno = 0;
	cr_assert(eq(int, kmes_attach(name, 0, &cap), -1));
	cr_assert(eq(int, errno, EPROTO));
	cr_assert(eq(u64, cap, 0xcdcdcdcdcdcdcdcdull));
	cr_assert(eq(int, lowest_free_fd(), free_fd), "no fd is leaked");
	cr_assert(ne(ptr, strstr(tu_log_text(), "ring.0"), NULL), "log: %s",
		  tu_log_text());
	cr_assert(ne(ptr, strstr(tu_log_text(), "magic"), NULL), "log: %s",
		  tu_log_text());
	/* The other slot is unharmed. */
	fd = kmes_attach(name, 1, &cap);
	cr_assert(ge(int, fd, 0));
	cr_assert(eq(u64, cap, CAP_64K));
	close(fd);
}

Test(kmes_attach, a_ring_with_a_bad_version_or_capacity_is_eproto)
{
	const char *name = tu_name("eproto2");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	uint32_t version = 2;
	uint64_t bad_cap = CAP_64K + 1, cap;
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", bt_kmes_session__path(s));
	bt_kmes_session__close(s);
	corrupt_ring(dir, 0, KMES_OFF_VERSION, &version, sizeof(version));
	corrupt_ring(dir, 1, KMES_OFF_CAPACITY, &bad_cap, sizeof(bad_cap));
	errno = 0;
	cr_assert(eq(int, kmes_attach(name, 0, &cap), -1));
	cr_assert(eq(int, errno, EPROTO));
	errno = 0;
	cr_assert(eq(int, kmes_attach(name, 1, &cap), -1));
	cr_assert(eq(int, errno, EPROTO));
}

/* ---- kmes_map / kmes_unmap ---------------------------------------------- */

Test(kmes_attach, map_of_a_closed_or_negative_fd_is_ebadf)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	cr_assert(ge(int, fd, 0));
	close(fd);
	errno = 0;
	cr_assert(eq(ptr, kmes_map(fd, CAP_64K), NULL));
	cr_assert(eq(int, errno, EBADF));
	errno = 0;
	cr_assert(eq(ptr, kmes_map(-1, CAP_64K), NULL));
	cr_assert(eq(int, errno, EBADF));
}

Test(kmes_attach, map_with_a_capacity_that_is_not_the_rings_is_einval)
{
	const char *name = tu_name("mapinval");
	struct bt_kmes_session *s = tu_create(name, CAP_128K, 1);
	const uint64_t bad[] = { 0, 12345, CAP_64K, CAP_256K, CAP_128K + 1,
				 (uint64_t)KMES_CAPACITY_MAX * 2 };
	uint64_t cap = 0;
	int fd = kmes_attach(name, 0, &cap);

	cr_assert(ge(int, fd, 0));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		cr_assert(eq(ptr, kmes_map(fd, bad[i]), NULL), "capacity %" PRIu64,
			  bad[i]);
		cr_assert(eq(int, errno, EINVAL), "capacity %" PRIu64, bad[i]);
	}
	close(fd);
	bt_kmes_session__close(s);
}

Test(kmes_attach, map_of_a_file_that_is_no_ring_is_eproto)
{
	char path[] = "/tmp/bt-notring-XXXXXX";
	int fd = mkstemp(path);

	cr_assert(ge(int, fd, 0));
	unlink(path);
	cr_assert(eq(int, ftruncate(fd, KMES_PAGE_SIZE + CAP_64K), 0));
	errno = 0;
	cr_assert(eq(ptr, kmes_map(fd, CAP_64K), NULL));
	cr_assert(eq(int, errno, EPROTO));
	close(fd);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	errno = 0;
	cr_assert(eq(ptr, kmes_map(fd, CAP_64K), NULL));
	cr_assert(eq(int, errno, EPROTO));
	close(fd);
}

Test(kmes_attach, map_of_a_ring_corrupted_after_attach_is_eproto)
{
	const char *name = tu_name("mapproto");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	char dir[PATH_MAX];
	uint64_t cap = 0;
	int fd;

	snprintf(dir, sizeof(dir), "%s", bt_kmes_session__path(s));
	bt_kmes_session__close(s);
	fd = kmes_attach(name, 0, &cap);
	cr_assert(ge(int, fd, 0));
	corrupt_ring(dir, 0, KMES_OFF_MAGIC, "kmesring", 8);
	errno = 0;
	cr_assert(eq(ptr, kmes_map(fd, cap), NULL));
	cr_assert(eq(int, errno, EPROTO));
	close(fd);
}

Test(kmes_attach, map_after_the_consumer_page_is_gone_is_estale)
{
	const char *name = tu_name("estale");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	char path[PATH_MAX];
	uint64_t cap = 0;
	int fd0, fd1;

	fd0 = kmes_attach(name, 0, &cap);
	fd1 = kmes_attach(name, 1, &cap);
	cr_assert(ge(int, fd0, 0));
	cr_assert(ge(int, fd1, 0));
	snprintf(path, sizeof(path), "%s/wake.0", bt_kmes_session__path(s));
	cr_assert(eq(int, unlink(path), 0));
	errno = 0;
	cr_assert(eq(ptr, kmes_map(fd0, cap), NULL));
	cr_assert(eq(int, errno, ESTALE));

	/* The whole session destroyed under an attached fd. */
	bt_kmes_session__close(s);
	cr_assert(eq(int, bt_kmes_session__destroy(name, true), 0));
	errno = 0;
	cr_assert(eq(ptr, kmes_map(fd1, cap), NULL));
	cr_assert(eq(int, errno, ESTALE));

	/* A new session of the same name has other consumer pages. */
	s = tu_create(name, CAP_64K, 2);
	errno = 0;
	cr_assert(eq(ptr, kmes_map(fd1, cap), NULL));
	cr_assert(eq(int, errno, ESTALE));
	close(fd0);
	close(fd1);
	bt_kmes_session__close(s);
}

Test(kmes_attach, unmap_rejects_a_null_base_or_a_bad_capacity_with_einval)
{
	const char *name = tu_name("unmap");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	unsigned char *base;
	uint64_t cap;

	errno = 0;
	cr_assert(eq(int, kmes_unmap(NULL, CAP_64K), -1));
	cr_assert(eq(int, errno, EINVAL));
	base = tu_map_slot(name, 0, &cap);
	errno = 0;
	cr_assert(eq(int, kmes_unmap(base, 12345), -1));
	cr_assert(eq(int, errno, EINVAL));
	errno = 0;
	cr_assert(eq(int, kmes_unmap(base, 0), -1));
	cr_assert(eq(int, errno, EINVAL));
	/* Still mapped after the refusals. */
	cr_assert(eq(int, memcmp(base, KMES_MAGIC, KMES_MAGIC_LEN), 0));
	cr_assert(eq(int, kmes_unmap(base, cap), 0));
	bt_kmes_session__close(s);
}

Test(kmes_attach, a_mapping_outlives_its_fd_and_the_producer)
{
	const char *name = tu_name("outlive");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	unsigned char *base, *late;
	uint64_t cap;

	for (int i = 0; i < 5; i++)
		tu_emit_sized(s, 0, EV_TYPE, 256);
	base = tu_map_slot(name, 0, &cap);	/* the fd is closed already */
	bt_kmes_session__close(s);
	cr_assert(eq(sz, walk_events(base, cap, NULL, NULL), 5));
	cr_assert(eq(u64, tu_ld64(base, KMES_OFF_WRITE_POS), 5 * 256));
	/* A consumer attaching after the producer left sees every event. */
	late = tu_map_slot(name, 0, &cap);
	cr_assert(eq(sz, walk_events(late, cap, NULL, NULL), 5));
	cr_assert(eq(int, memcmp(base + KMES_DATA_OFFSET,
				 late + KMES_DATA_OFFSET, 5 * 256), 0));
	kmes_unmap(base, cap);
	kmes_unmap(late, cap);
}
