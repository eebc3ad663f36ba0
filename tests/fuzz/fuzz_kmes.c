// SPDX-License-Identifier: BSD-3-Clause
/*
 * The KMES ring consumer (struct bt_kmes_reader over a mapping it is
 * given, bt_kmes_reader__new_mapped) on a hostile ring: a 64 KiB ring
 * laid out as KMES.md §2.2, its data region mapped twice in a row from
 * one memfd as kmes_map() does. The producer page is valid (magic,
 * version, capacity, data offset, generation 1); the input gives the
 * rest: u64 write_pos, u64 tail_pos (little-endian), then the data
 * region from its first byte (zeros after the input).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <btrail/kmes.h>

#include "fuzz_util.h"

#define CAP	65536u

static unsigned char *base;

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void map_ring(void)
{
	int fd = memfd_create("fuzz-kmes", 0);
	unsigned char *b;

	if (fd < 0 || ftruncate(fd, KMES_DATA_OFFSET + CAP)) {
		perror("fuzz: memfd");
		abort();
	}
	b = mmap(NULL, KMES_MAP_SIZE(CAP), PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED ||
	    mmap(b, KMES_DATA_OFFSET + CAP, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED ||
	    mmap(b + KMES_DATA_OFFSET + CAP, CAP, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, fd, KMES_DATA_OFFSET) == MAP_FAILED) {
		perror("fuzz: mmap");
		abort();
	}
	close(fd);
	base = b;
}

/* With BT_FUZZ_SEEDS: a few real rings, written by the producer. */
static void seeds(void)
{
	static const char *const types[] = { "bt.comm", "t.x", "app.some" };
	char name[64];
	unsigned char pay[300], *m, *s;
	uint64_t cap = 0, wp, tp;
	struct bt_kmes_session_opts so = { .sz = sizeof(so),
					   .capacity = CAP, .slots = 1 };
	struct bt_kmes_session *ks;
	int fd;

	if (!getenv("BT_FUZZ_SEEDS"))
		return;
	snprintf(name, sizeof(name), "fuzz-kmes-%d", (int)getpid());
	bt_kmes_session__destroy(name, true);
	ks = bt_kmes_session__create(name, &so);
	if (!ks)
		abort();
	for (unsigned i = 0; i < 12; i++) {
		size_t n = 1 + i * 20;

		bt_kmes_payload_fill(pay, n, i + 1, NULL);
		if (kmes_emit(ks, 0, types[i % 3],
			      (uint16_t)strlen(types[i % 3]), pay,
			      (uint32_t)n))
			abort();
	}
	fd = kmes_attach(name, 0, &cap);
	m = fd >= 0 ? kmes_map(fd, cap) : NULL;
	if (!m)
		abort();
	memcpy(&wp, m + KMES_OFF_WRITE_POS, 8);
	memcpy(&tp, m + KMES_OFF_TAIL_POS, 8);
	s = calloc(1, 16 + wp);
	put64(s, wp);
	put64(s + 8, tp);
	memcpy(s + 16, m + KMES_DATA_OFFSET, wp);
	fz_seed("ring-12", s, 16 + wp);
	/* The same ring, read from the middle. */
	put64(s + 8, tp + (wp - tp) / 2);
	fz_seed("ring-mid", s, 16 + wp);
	free(s);
	kmes_unmap(m, cap);
	close(fd);
	bt_kmes_session__close(ks);
	bt_kmes_session__destroy(name, true);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	map_ring();
	seeds();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bt_kmes_slot_stats st;
	struct bt_kmes_event ev;
	struct bt_kmes_reader *r;
	size_t n;

	memset(base, 0, KMES_DATA_OFFSET + CAP);
	memcpy(base + KMES_OFF_MAGIC, KMES_MAGIC, KMES_MAGIC_LEN);
	base[KMES_OFF_VERSION] = KMES_RING_VERSION;
	put64(base + KMES_OFF_CAPACITY, CAP);
	put64(base + KMES_OFF_DATA_OFFSET, KMES_DATA_OFFSET);
	put64(base + KMES_OFF_GENERATION, 1);
	if (size >= 16) {
		memcpy(base + KMES_OFF_WRITE_POS, data, 8);
		memcpy(base + KMES_OFF_TAIL_POS, data + 8, 8);
		n = size - 16 < CAP ? size - 16 : CAP;
		memcpy(base + KMES_DATA_OFFSET, data + 16, n);
	}
	r = bt_kmes_reader__new_mapped(base, CAP, 0);
	if (!r)
		abort();
	/* A corrupt ring resynchronises: bounded, as the producer is idle. */
	for (int i = 0; i < 4096; i++) {
		int e = bt_kmes_reader__next(r, &ev);

		if (e == 0)
			break;
		if (e == 1 && (ev.event_size < ev.header_size ||
			       ev.payload_len > ev.event_size))
			abort();
	}
	if (bt_kmes_reader__stats(r, 0, &st))
		abort();
	bt_kmes_reader__free(r);
	return 0;
}
