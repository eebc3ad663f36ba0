// SPDX-License-Identifier: BSD-3-Clause
/*
 * Emission: the validated kmes_emit()/kmes_emit_batch() of the spec's
 * syscalls and the trusted bt_kmes_session__emit_trusted() of its kernel
 * emitters (KMES.md §8 items 8-30, 40, 47, 48). Events are read back
 * through a consumer's own mapping (kmes_attach + kmes_map) and decoded
 * at the KMES_EV_* offsets, little-endian and unaligned (memcpy), and in
 * places through the public reader as a cross-check.
 *
 * Not applicable here: item 16 (EPERM without SeAuditPrivilege; file
 * permissions stand in for privileges, see <btrail/kmes.h>), the EPERM
 * step of item 22, and the SeTcbPrivilege exemption of item 24. The half
 * of item 14 about kernel emissions without process context has no
 * counterpart: every emitter here is a process.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <btrail/errno.h>
#include <btrail/kmes.h>

#include "helpers/testutil.h"

#define CAP_64K		65536u
#define CAP_256K	262144u
#define EVT		"t.emit"
#define EVT_LEN	6u
#define HDR		(KMES_HDR_FIXED + EVT_LEN)
#define MAXEV		4096u

/* {"k": 1}: a small valid payload whose first byte is not 0. */
static const unsigned char small[] = { 0x81, 0xa1, 'k', 0x01 };

/* ---- Helpers ------------------------------------------------------------ */

/* A session with options; destroyed at exit. */
static struct bt_kmes_session *create_opts(const char *name,
					   struct bt_kmes_session_opts *o)
{
	struct bt_kmes_session *s;

	o->sz = sizeof(*o);
	bt_kmes_session__destroy(name, true);
	s = bt_kmes_session__create(name, o);
	cr_assert(ne(ptr, s, NULL), "create %s: %s", name, strerror(errno));
	tu_cleanup_at_exit(name);
	return s;
}

static struct bt_kmes_session *create_rate(const char *name, uint32_t rate)
{
	struct bt_kmes_session_opts o = {
		.capacity = CAP_256K, .slots = 1, .max_emit_rate = rate,
	};

	return create_opts(name, &o);
}

/* One decoded event; type and payload point into the mapping. */
struct ev {
	uint64_t pos;
	uint32_t size, hsize;
	uint64_t ts, seq;
	uint16_t cpu;
	uint8_t origin;
	uint8_t eff[16], tru[16], proc[16];
	uint16_t tlen;
	const unsigned char *type, *payload;
	uint32_t plen;
};

struct ring {
	unsigned char *base;
	uint64_t cap;
	size_t n;
	struct ev ev[MAXEV];
};

/* Map @slot of @name and decode every event from tail_pos to write_pos. */
static struct ring *ring_read(const char *name, uint32_t slot)
{
	struct ring *r = calloc(1, sizeof(*r));
	uint64_t wp, pos;

	cr_assert(ne(ptr, r, NULL));
	r->base = tu_map_slot(name, slot, &r->cap);
	wp = tu_ld64(r->base, KMES_OFF_WRITE_POS);
	pos = tu_ld64(r->base, KMES_OFF_TAIL_POS);
	cr_assert(le(u64, pos, wp));
	cr_assert(le(u64, wp - pos, r->cap));
	while (pos < wp) {
		const unsigned char *p = r->base + KMES_DATA_OFFSET +
					 (pos & (r->cap - 1));
		struct ev *e = &r->ev[r->n];

		cr_assert(lt(sz, r->n, (size_t)MAXEV));
		e->pos = pos;
		e->size = tu_rd32(p + KMES_EV_EVENT_SIZE);
		e->hsize = tu_rd32(p + KMES_EV_HEADER_SIZE);
		e->ts = tu_rd64(p + KMES_EV_TIMESTAMP);
		e->seq = tu_rd64(p + KMES_EV_SEQUENCE);
		e->cpu = tu_rd16(p + KMES_EV_CPU_ID);
		e->origin = p[KMES_EV_ORIGIN];
		memcpy(e->eff, p + KMES_EV_EFFECTIVE_GUID, 16);
		memcpy(e->tru, p + KMES_EV_TRUE_GUID, 16);
		memcpy(e->proc, p + KMES_EV_PROCESS_GUID, 16);
		e->tlen = tu_rd16(p + KMES_EV_TYPE_LEN);
		e->type = p + KMES_EV_TYPE;
		cr_assert(ge(u32, e->size, KMES_HDR_FIXED), "event at %" PRIu64,
			  pos);
		cr_assert(le(u64, (uint64_t)e->size, wp - pos));
		cr_assert(ge(u32, e->size, e->hsize));
		e->payload = p + e->hsize;
		e->plen = e->size - e->hsize;
		pos += e->size;
		r->n++;
	}
	return r;
}

static void ring_free(struct ring *r)
{
	kmes_unmap(r->base, r->cap);
	free(r);
}

static uint64_t ext64(const char *name, uint32_t slot, unsigned off)
{
	uint64_t cap, v;
	unsigned char *base = tu_map_slot(name, slot, &cap);

	v = __atomic_load_n((const uint64_t *)(const void *)(base + off),
			    __ATOMIC_RELAXED);
	kmes_unmap(base, cap);
	return v;
}

static void emit_ok(struct bt_kmes_session *s, uint32_t slot)
{
	cr_assert(eq(int, kmes_emit(s, slot, EVT, EVT_LEN, small,
				    sizeof(small)), 0),
		  "kmes_emit: %s", strerror(errno));
}

/* @n batch entries, each the small event of emit_ok(). */
static void fill_small(struct kmes_emit_entry *e, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		e[i] = (struct kmes_emit_entry){ EVT, EVT_LEN, small,
						 sizeof(small) };
}

/* kmes_emit() must fail with @err. */
static void emit_fails(struct bt_kmes_session *s, uint32_t slot,
		       const char *type, uint16_t tlen, const void *pl,
		       uint32_t plen, int err)
{
	errno = 0;
	cr_assert(eq(int, kmes_emit(s, slot, type, tlen, pl, plen), -1),
		  "type len %u, payload len %u accepted", tlen, plen);
	cr_assert(eq(int, errno, err), "type len %u, payload len %u: %s, not %s",
		  tlen, plen, strerror(errno), strerror(err));
}

/* A payload of @size bytes (a valid msgpack value) in a static buffer. */
static const unsigned char *payload_of(uint32_t size)
{
	static unsigned char buf[4 * 65536];

	cr_assert(le(u32, size, (uint32_t)sizeof(buf)));
	tu_payload(buf, size, 1);
	return buf;
}

/* @depth nested containers; @map: maps {1: ...}; @scalar: innermost 1. */
static size_t nest(unsigned char *buf, unsigned depth, bool map, bool scalar)
{
	size_t n = 0;

	for (unsigned i = 0; i < depth; i++) {
		if (i == depth - 1 && !scalar) {
			buf[n++] = map ? 0x80 : 0x90;	/* empty */
			return n;
		}
		buf[n++] = map ? 0x81 : 0x91;
		if (map)
			buf[n++] = 0x01;		/* the key */
	}
	buf[n++] = 0x01;
	return n;
}

/* ---- Event format ------------------------------------------------------- */

/* KMES.md §8 item 8 */
Test(kmes_emit, header_size_is_77_plus_type_len_and_the_type_sits_at_77_without_nul)
{
	const char *name = tu_name("hdr");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	static char long_type[1000];
	const char *types[] = { "a", "user.login", "\xc3\xa9t\xc3\xa9.\xe2\x82\xac",
				long_type };
	size_t nt = sizeof(types) / sizeof(types[0]);
	struct ring *r;

	memset(long_type, 'x', sizeof(long_type) - 1);
	for (size_t i = 0; i < nt; i++) {
		cr_assert(eq(int, kmes_emit(s, 0, types[i],
					    (uint16_t)strlen(types[i]), small,
					    sizeof(small)), 0));
	}
	r = ring_read(name, 0);
	cr_assert(eq(sz, r->n, nt));
	for (size_t i = 0; i < nt; i++) {
		const struct ev *e = &r->ev[i];
		size_t tl = strlen(types[i]);

		cr_assert(eq(u16, e->tlen, (uint16_t)tl));
		cr_assert(eq(u32, e->hsize, KMES_HDR_FIXED + (uint32_t)tl));
		cr_assert(eq(int, memcmp(e->type, types[i], tl), 0));
		/* The payload starts right after the type: no NUL between. */
		cr_assert(eq(u8, e->type[tl], small[0]));
	}
	ring_free(r);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 9 */
Test(kmes_emit, event_size_is_header_plus_payload_and_events_are_back_to_back)
{
	const char *name = tu_name("size");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	const uint32_t plens[] = { 1, 2, 22, 23, 100, 1000, 5000, 7 };
	const size_t np = sizeof(plens) / sizeof(plens[0]);
	struct ring *r;
	uint64_t pos = 0;

	for (size_t i = 0; i < np; i++) {
		cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN,
					    payload_of(plens[i]), plens[i]), 0));
	}
	r = ring_read(name, 0);
	cr_assert(eq(sz, r->n, np));
	for (size_t i = 0; i < np; i++) {
		cr_assert(eq(u64, r->ev[i].pos, pos));
		cr_assert(eq(u32, r->ev[i].size, r->ev[i].hsize + plens[i]));
		cr_assert(eq(u32, r->ev[i].plen, plens[i]));
		pos += r->ev[i].size;
	}
	cr_assert(eq(u64, tu_ld64(r->base, KMES_OFF_WRITE_POS), pos));
	ring_free(r);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 10 */
Test(kmes_emit, payload_and_type_bytes_are_stored_verbatim)
{
	const char *name = tu_name("verbatim");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	/* NUL is a valid code point; a 4-byte sequence; mixed case. */
	static const char type[] = "Ab\0c.\xf0\x9f\x98\x80.Z";
	const uint16_t tlen = sizeof(type) - 1;
	struct bt_kmes_reader_opts ro = { .sz = sizeof(ro), .one_slot = true };
	unsigned char pl[3 + 300];
	struct bt_kmes_reader *rd;
	struct bt_kmes_event ev;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	struct ring *r;

	/* bin16 of 300 bytes: every byte value, zeros included. */
	pl[0] = 0xc5;
	pl[1] = 300 >> 8;
	pl[2] = 300 & 0xff;
	for (int i = 0; i < 300; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		pl[3 + i] = i < 256 ? (unsigned char)i : (unsigned char)x;
	}
	cr_assert(eq(int, kmes_emit(s, 0, type, tlen, pl, sizeof(pl)), 0));
	r = ring_read(name, 0);
	cr_assert(eq(sz, r->n, 1));
	cr_assert(eq(u16, r->ev[0].tlen, tlen));
	cr_assert(eq(int, memcmp(r->ev[0].type, type, tlen), 0));
	cr_assert(eq(u32, r->ev[0].plen, (uint32_t)sizeof(pl)));
	cr_assert(eq(int, memcmp(r->ev[0].payload, pl, sizeof(pl)), 0));
	ring_free(r);

	/* The public reader returns the same bytes. */
	rd = bt_kmes_reader__new(name, &ro);
	cr_assert(ne(ptr, rd, NULL));
	cr_assert(eq(int, bt_kmes_reader__next(rd, &ev), 1));
	cr_assert(eq(u16, ev.type_len, tlen));
	cr_assert(eq(int, memcmp(ev.type, type, tlen), 0));
	cr_assert(eq(u32, ev.payload_len, (uint32_t)sizeof(pl)));
	cr_assert(eq(int, memcmp(ev.payload, pl, sizeof(pl)), 0));
	bt_kmes_reader__free(rd);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 11 */
Test(kmes_emit, the_timestamp_lies_between_the_clock_before_and_after_the_call)
{
	const char *name = tu_name("ts");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	uint64_t before[50], after[50];
	struct ring *r;

	for (int i = 0; i < 50; i++) {
		before[i] = tu_now_ns();
		emit_ok(s, 0);
		after[i] = tu_now_ns();
		if (i % 10 == 0)
			usleep(100);
	}
	r = ring_read(name, 0);
	cr_assert(eq(sz, r->n, 50));
	for (int i = 0; i < 50; i++) {
		cr_assert(ge(u64, r->ev[i].ts, before[i]), "event %d", i);
		cr_assert(le(u64, r->ev[i].ts, after[i]), "event %d", i);
	}
	ring_free(r);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 12 */
Test(kmes_emit, the_first_sequence_is_1_and_each_emit_adds_1_per_slot)
{
	const char *name = tu_name("seq");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	struct ring *r;

	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 0));
	for (int i = 0; i < 7; i++) {
		emit_ok(s, 0);
		if (i % 2)
			emit_ok(s, 1);
	}
	for (uint32_t slot = 0; slot < 2; slot++) {
		size_t want = slot ? 3 : 7;

		r = ring_read(name, slot);
		cr_assert(eq(sz, r->n, want));
		for (size_t i = 0; i < r->n; i++)
			cr_assert(eq(u64, r->ev[i].seq, i + 1));
		cr_assert(eq(u64, bt_kmes_session__last_sequence(s, slot), want));
		ring_free(r);
	}
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 13 */
Test(kmes_emit, user_emitted_events_have_origin_class_0)
{
	const char *name = tu_name("origin");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct bt_kmes_stamp st = { .sz = sizeof(st),
				    .origin_class = KMES_ORIGIN_KACS };
	struct kmes_emit_entry e[3] = {
		{ EVT, EVT_LEN, small, sizeof(small) },
		{ EVT, EVT_LEN, small, sizeof(small) },
		{ EVT, EVT_LEN, small, sizeof(small) },
	};
	uint32_t done = 0;
	struct ring *r;

	emit_ok(s, 0);
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, &st, e, 1), 1));
	cr_assert(eq(int, kmes_emit_batch(s, 0, e, 3, &done), 0));
	emit_ok(s, 0);
	r = ring_read(name, 0);
	cr_assert(eq(sz, r->n, 6));
	cr_assert(eq(u8, r->ev[1].origin, KMES_ORIGIN_KACS));
	for (size_t i = 0; i < r->n; i++) {
		if (i != 1)
			cr_assert(eq(u8, r->ev[i].origin, KMES_ORIGIN_USER),
				  "event %zu", i);
	}
	ring_free(r);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 14 */
Test(kmes_emit, a_non_impersonating_caller_gets_equal_effective_and_true_token_guids)
{
	const char *name = tu_name("guid");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct ring *r;

	cr_assert(eq(int, (int)getuid(), (int)geteuid()));
	emit_ok(s, 0);
	emit_ok(s, 0);
	r = ring_read(name, 0);
	cr_assert(eq(sz, r->n, 2));
	cr_assert(eq(int, memcmp(r->ev[0].eff, r->ev[0].tru, 16), 0));
	cr_assert(eq(int, tu_all_zero(r->ev[0].eff, 16), 0), "the token GUID is not null");
	cr_assert(eq(int, tu_all_zero(r->ev[0].proc, 16), 0), "the process GUID is not null");
	cr_assert(ne(int, memcmp(r->ev[0].proc, r->ev[0].tru, 16), 0));
	/* One process, one identity. */
	cr_assert(eq(int, memcmp(r->ev[1].eff, r->ev[0].eff, 16), 0));
	cr_assert(eq(int, memcmp(r->ev[1].proc, r->ev[0].proc, 16), 0));
	ring_free(r);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 15 */
Test(kmes_emit, batch_events_share_timestamp_and_guids_with_consecutive_sequences)
{
	const char *name = tu_name("batchts");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct kmes_emit_entry e[10];
	uint64_t before, after;
	uint32_t done = 0;
	struct ring *r;

	fill_small(e, 10);
	emit_ok(s, 0);
	emit_ok(s, 0);
	usleep(1000);
	before = tu_now_ns();
	cr_assert(eq(int, kmes_emit_batch(s, 0, e, 10, &done), 0));
	after = tu_now_ns();
	usleep(1000);
	cr_assert(eq(int, kmes_emit_batch(s, 0, e, 2, &done), 0));
	r = ring_read(name, 0);
	cr_assert(eq(sz, r->n, 14));
	for (size_t i = 2; i < 12; i++) {
		cr_assert(eq(u64, r->ev[i].seq, i + 1));
		cr_assert(eq(u64, r->ev[i].ts, r->ev[2].ts));
		cr_assert(eq(int, memcmp(r->ev[i].eff, r->ev[2].eff, 16), 0));
		cr_assert(eq(int, memcmp(r->ev[i].tru, r->ev[2].tru, 16), 0));
		cr_assert(eq(int, memcmp(r->ev[i].proc, r->ev[2].proc, 16), 0));
	}
	cr_assert(ge(u64, r->ev[2].ts, before));
	cr_assert(le(u64, r->ev[2].ts, after));
	/* The shared timestamp is the batch's own, not a frozen clock. */
	cr_assert(gt(u64, r->ev[2].ts, r->ev[1].ts));
	cr_assert(gt(u64, r->ev[12].ts, r->ev[11].ts));
	cr_assert(eq(u64, r->ev[13].ts, r->ev[12].ts));
	ring_free(r);
	bt_kmes_session__close(s);
}

/* ---- kmes_emit validation ----------------------------------------------- */

/* KMES.md §8 item 17 */
Test(kmes_emit, a_zero_type_length_is_einval)
{
	const char *name = tu_name("len0");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);

	emit_fails(s, 0, EVT, 0, small, sizeof(small), EINVAL);
	emit_fails(s, 0, NULL, 0, small, sizeof(small), EINVAL);
	emit_fails(s, 0, "", 0, small, sizeof(small), EINVAL);
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 0));
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 18 */
Test(kmes_emit, over_max_event_size_is_enospc_and_exactly_at_it_is_accepted)
{
	const char *name = tu_name("maxev");
	struct bt_kmes_session *s = tu_create(name, CAP_256K, 1);
	struct bt_kmes_session_opts o = { .capacity = CAP_64K, .slots = 1,
					  .max_event_size = 1024 };
	const char *name2 = tu_name("maxev2");
	struct bt_kmes_session *s2 = create_opts(name2, &o);
	uint32_t at = KMES_MAX_EVENT_SIZE_DEFAULT - HDR;
	struct ring *r;

	/* The default MaxEventSize, 65536, is below 50% of 256 KiB. */
	emit_fails(s, 0, EVT, EVT_LEN, payload_of(at + 1), at + 1, ENOSPC);
	emit_fails(s, 0, EVT, EVT_LEN, payload_of(at + 1000), at + 1000,
		   ENOSPC);
	cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, payload_of(at), at), 0),
		  "exactly MaxEventSize: %s", strerror(errno));
	r = ring_read(name, 0);
	cr_assert(eq(sz, r->n, 1));
	cr_assert(eq(u32, r->ev[0].size, KMES_MAX_EVENT_SIZE_DEFAULT));
	ring_free(r);

	/* A configured MaxEventSize. */
	emit_fails(s2, 0, EVT, EVT_LEN, payload_of(1024 - HDR + 1),
		   1024 - HDR + 1, ENOSPC);
	cr_assert(eq(int, kmes_emit(s2, 0, EVT, EVT_LEN,
				    payload_of(1024 - HDR), 1024 - HDR), 0));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s2, 0), 1));
	bt_kmes_session__close(s);
	bt_kmes_session__close(s2);
}

/* KMES.md §8 item 18 */
Test(kmes_emit, over_half_the_capacity_is_enospc_and_exactly_half_is_accepted)
{
	const char *name = tu_name("half");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	uint32_t at = CAP_64K / 2 - HDR;
	struct ring *r;

	/* MaxEventSize (65536) allows it: the 50% rule is what refuses. */
	emit_fails(s, 0, EVT, EVT_LEN, payload_of(at + 1), at + 1, ENOSPC);
	cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, payload_of(at), at), 0),
		  "exactly 50%%: %s", strerror(errno));
	cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, payload_of(at), at), 0));
	r = ring_read(name, 0);
	cr_assert(eq(sz, r->n, 2), "two half-capacity events fill the ring");
	cr_assert(eq(u32, r->ev[0].size, CAP_64K / 2));
	cr_assert(eq(u64, r->ev[1].seq, 2));
	ring_free(r);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 19 */
Test(kmes_emit, a_null_pointer_is_efault_only_after_the_size_checks_pass)
{
	const char *name = tu_name("efault");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);

	emit_fails(s, 0, EVT, EVT_LEN, NULL, sizeof(small), EFAULT);
	emit_fails(s, 0, NULL, EVT_LEN, small, sizeof(small), EFAULT);
	emit_fails(s, 0, NULL, EVT_LEN, NULL, sizeof(small), EFAULT);
	/* Oversize wins over a bad pointer. */
	emit_fails(s, 0, EVT, EVT_LEN, NULL, CAP_64K / 2, ENOSPC);
	emit_fails(s, 0, NULL, EVT_LEN, small, CAP_64K / 2, ENOSPC);
	emit_fails(s, 0, NULL, EVT_LEN, NULL, 70000, ENOSPC);
	/* A type alone can be too big: u16 lengths reach past 50%. */
	emit_fails(s, 0, NULL, 65535, small, sizeof(small), ENOSPC);
	/*
	 * A NULL payload of length 0 is no bad copy (nothing is read, as a
	 * zero-length copy_from_user would not fault): it is an empty
	 * payload, which fails msgpack validation.
	 */
	emit_fails(s, 0, EVT, EVT_LEN, NULL, 0, EINVAL);
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 0));
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 20 */
Test(kmes_emit, a_type_that_is_not_valid_utf8_is_einval)
{
	const char *name = tu_name("utf8");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	static const struct {
		const char *s;
		uint16_t len;
	} bad[] = {
		{ "\xc0\x80", 2 },		/* overlong NUL */
		{ "a\xc1\xbf", 3 },		/* overlong */
		{ "\xe0\x80\xaf", 3 },		/* overlong '/' */
		{ "\xf0\x80\x80\xaf", 4 },	/* overlong '/' */
		{ "x\xed\xa0\x80", 4 },		/* U+D800 */
		{ "\xed\xbf\xbfy", 4 },		/* U+DFFF */
		{ "\xf4\x90\x80\x80", 4 },	/* U+110000 */
		{ "ab\xe2\x82", 4 },		/* truncated at the end */
		{ "\xe2\x82z", 3 },		/* truncated in the middle */
		{ "\x80", 1 },			/* lone continuation */
		{ "abc\xff", 4 },
		{ "\xf5\x80\x80\x80", 4 },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		emit_fails(s, 0, bad[i].s, bad[i].len, small, sizeof(small),
			   EINVAL);
	/* Their well-formed neighbours pass. */
	cr_assert(eq(int, kmes_emit(s, 0, "\xf4\x8f\xbf\xbf", 4, small,
				    sizeof(small)), 0));
	cr_assert(eq(int, kmes_emit(s, 0, "\xed\x9f\xbf", 3, small,
				    sizeof(small)), 0));
	cr_assert(eq(int, kmes_emit(s, 0, "a\0b", 3, small, sizeof(small)), 0));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 3));
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 20 */
Test(kmes_emit, a_payload_that_is_not_exactly_one_msgpack_value_is_einval)
{
	const char *name = tu_name("mp");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	static const struct {
		const char *what;
		unsigned char b[8];
		uint32_t len;
	} bad[] = {
		{ "never-used byte", { 0xc1 }, 1 },
		{ "truncated str", { 0xa5, 'a', 'b' }, 3 },
		{ "truncated uint16", { 0xcd, 0x01 }, 2 },
		{ "truncated float64", { 0xcb, 0, 0, 0 }, 4 },
		{ "array missing an element", { 0x92, 0x01 }, 2 },
		{ "map missing a value", { 0x81, 0x01 }, 2 },
		{ "trailing bytes", { 0x01, 0x02 }, 2 },
		{ "two maps", { 0x80, 0x80 }, 2 },
		{ "trailing zero", { 0x81, 0xa1, 'k', 0x01, 0x00 }, 5 },
		/* Claims that must not make the validator allocate 96 GiB. */
		{ "array32 of 2^32-1", { 0xdd, 0xff, 0xff, 0xff, 0xff }, 5 },
		{ "map32 of 2^32-1", { 0x91, 0xdf, 0xff, 0xff, 0xff, 0xff, 1 }, 7 },
	};
	unsigned char empty = 0x01;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, bad[i].b,
					    bad[i].len), -1), "%s", bad[i].what);
		cr_assert(eq(int, errno, EINVAL), "%s", bad[i].what);
	}
	/* An empty payload. */
	emit_fails(s, 0, EVT, EVT_LEN, &empty, 0, EINVAL);
	/* Single values of every kind pass. */
	cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, "\xc0", 1), 0));
	cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, "\x90", 1), 0));
	cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, "\xa2hi", 3), 0));
	cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN,
				    "\xcb\0\0\0\0\0\0\0\0", 9), 0));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 4));
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 21 */
Test(kmes_emit, nesting_depth_32_is_accepted_and_33_refused)
{
	const char *name = tu_name("depth");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	unsigned char buf[1024];
	uint64_t seq = 0;

	for (int map = 0; map < 2; map++) {
		for (int scalar = 0; scalar < 2; scalar++) {
			size_t n = nest(buf, 32, map, scalar);

			cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, buf,
						    (uint32_t)n), 0),
				  "depth 32 (%s, %s innermost): %s",
				  map ? "maps" : "arrays",
				  scalar ? "scalar" : "empty", strerror(errno));
			cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0),
				     ++seq));
			n = nest(buf, 33, map, scalar);
			errno = 0;
			cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, buf,
						    (uint32_t)n), -1),
				  "depth 33 (%s, %s innermost) accepted",
				  map ? "maps" : "arrays",
				  scalar ? "scalar" : "empty");
			cr_assert(eq(int, errno, EINVAL));
			n = nest(buf, 300, map, scalar);
			emit_fails(s, 0, EVT, EVT_LEN, buf, (uint32_t)n, EINVAL);
		}
	}
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 21 */
Test(kmes_emit, a_configured_nesting_limit_counts_keys_and_values_alike)
{
	const char *name = tu_name("depth4");
	struct bt_kmes_session_opts o = { .capacity = CAP_64K, .slots = 1,
					  .max_nesting_depth = 4 };
	struct bt_kmes_session *s = create_opts(name, &o);
	/* {[[[]]]: 1} is depth 4 through a key; {[[[[]]]]: 1} is 5. */
	static const unsigned char key4[] = { 0x81, 0x91, 0x91, 0x90, 0x01 };
	static const unsigned char key5[] = { 0x81, 0x91, 0x91, 0x91, 0x90, 0x01 };
	/* [1, [[[]]], 2] is 4 deep in its middle element; [1, [[[[]]]]] is 5. */
	static const unsigned char mid4[] = { 0x93, 0x01, 0x91, 0x91, 0x90, 0x02 };
	static const unsigned char mid5[] = { 0x92, 0x01, 0x91, 0x91, 0x91, 0x90 };
	unsigned char buf[64];

	cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, buf,
				    (uint32_t)nest(buf, 4, false, false)), 0));
	cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, buf,
				    (uint32_t)nest(buf, 4, true, true)), 0));
	cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, key4, sizeof(key4)), 0));
	cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, mid4, sizeof(mid4)), 0));
	emit_fails(s, 0, EVT, EVT_LEN, buf,
		   (uint32_t)nest(buf, 5, false, false), EINVAL);
	emit_fails(s, 0, EVT, EVT_LEN, buf,
		   (uint32_t)nest(buf, 5, true, true), EINVAL);
	emit_fails(s, 0, EVT, EVT_LEN, key5, sizeof(key5), EINVAL);
	emit_fails(s, 0, EVT, EVT_LEN, mid5, sizeof(mid5), EINVAL);
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 4));
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 22 */
Test(kmes_emit, validation_runs_in_the_documented_order)
{
	const char *name = tu_name("order");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	static const unsigned char badmp[] = { 0xc1 };

	/* Slot before everything. */
	emit_fails(s, 1, NULL, 0, NULL, 0xFFFFFFFFu, EINVAL);
	emit_fails(NULL, 0, EVT, EVT_LEN, small, sizeof(small), EINVAL);
	/* Length 0 before size and pointers. */
	emit_fails(s, 0, NULL, 0, NULL, 70000, EINVAL);
	/* A total that does not fit in a u32 is EINVAL, before ENOSPC ... */
	emit_fails(s, 0, EVT, 1, small, 0xFFFFFFFFu, EINVAL);
	emit_fails(s, 0, EVT, 65535, small, 0xFFFFFFFFu - 77 - 65535 + 1,
		   EINVAL);
	/* ... and a total of exactly 2^32 - 1 is only too big. */
	emit_fails(s, 0, EVT, 65535, small, 0xFFFFFFFFu - 77 - 65535, ENOSPC);
	/* Size before pointers, UTF-8 and msgpack. */
	emit_fails(s, 0, NULL, 3, NULL, 70000, ENOSPC);
	emit_fails(s, 0, "\xff\xff\xff", 3, badmp, 40000, ENOSPC);
	/* Pointers before UTF-8. */
	emit_fails(s, 0, "\xff\xff\xff", 3, NULL, 10, EFAULT);
	/* UTF-8 and msgpack are both EINVAL, after the pointers. */
	emit_fails(s, 0, "\xff", 1, badmp, sizeof(badmp), EINVAL);
	emit_fails(s, 0, EVT, EVT_LEN, badmp, sizeof(badmp), EINVAL);
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 0));
	bt_kmes_session__close(s);
}

/*
 * With the bucket just emptied, what does this emit fail with? A token
 * can trickle in (100/s: one per 10 ms) between emptying and the call; a
 * call that got one fails in the entry checks instead, so try again.
 */
static int errno_when_empty(struct bt_kmes_session *s, uint32_t slot,
			    const char *type, uint16_t tlen, const void *pl,
			    uint32_t plen)
{
	int err = 0;

	for (int tries = 0; tries < 20; tries++) {
		int n = 0;

		while (kmes_emit(s, 0, EVT, EVT_LEN, small, sizeof(small)) == 0)
			cr_assert(lt(int, ++n, 10000));
		cr_assert(eq(int, errno, EAGAIN));
		errno = 0;
		cr_assert(eq(int, kmes_emit(s, slot, type, tlen, pl, plen), -1));
		err = errno;
		if (err == EAGAIN)
			break;
	}
	return err;
}

/* KMES.md §8 items 22 and 24 */
Test(kmes_emit, an_exhausted_rate_limit_is_eagain_before_any_entry_check)
{
	const char *name = tu_name("order-rate");
	struct bt_kmes_session *s = create_rate(name, KMES_EMIT_RATE_MIN);

	cr_assert(eq(int, errno_when_empty(s, 0, EVT, 0, small, sizeof(small)),
		     EAGAIN));
	cr_assert(eq(int, errno_when_empty(s, 0, EVT, EVT_LEN, small, 1000000),
		     EAGAIN));
	cr_assert(eq(int, errno_when_empty(s, 0, NULL, EVT_LEN, NULL, 10),
		     EAGAIN));
	cr_assert(eq(int, errno_when_empty(s, 0, "\xff", 1, "\xc1", 1),
		     EAGAIN));
	/* ... but after the slot check. */
	emit_fails(s, 7, EVT, EVT_LEN, small, sizeof(small), EINVAL);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 23 */
Test(kmes_emit, rejected_emits_spend_no_sequence_number)
{
	const char *name = tu_name("nogap");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct kmes_emit_entry bad = { EVT, EVT_LEN, "\xc1", 1 };
	struct bt_kmes_reader_opts ro = { .sz = sizeof(ro), .one_slot = true };
	struct bt_kmes_slot_stats st;
	struct bt_kmes_reader *rd;
	struct bt_kmes_event ev;
	unsigned char deep[64];
	uint64_t wp;
	uint32_t done;
	struct ring *r;

	emit_ok(s, 0);
	r = ring_read(name, 0);
	wp = tu_ld64(r->base, KMES_OFF_WRITE_POS);
	emit_fails(s, 0, EVT, 0, small, sizeof(small), EINVAL);
	emit_fails(s, 0, EVT, EVT_LEN, payload_of(40000), 40000, ENOSPC);
	emit_fails(s, 0, EVT, EVT_LEN, NULL, 10, EFAULT);
	emit_fails(s, 0, "\xc0\x80", 2, small, sizeof(small), EINVAL);
	emit_fails(s, 0, EVT, EVT_LEN, "\xc1", 1, EINVAL);
	emit_fails(s, 0, EVT, EVT_LEN, deep,
		   (uint32_t)nest(deep, 33, false, false), EINVAL);
	cr_assert(eq(int, kmes_emit_batch(s, 0, &bad, 1, &done), -1));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 1));
	cr_assert(eq(u64, tu_rd64(r->base + BT_KMES_XOFF_LAST_SEQ), 1));
	cr_assert(eq(u64, tu_ld64(r->base, KMES_OFF_WRITE_POS), wp),
		  "nothing was written");
	ring_free(r);
	emit_ok(s, 0);

	rd = bt_kmes_reader__new(name, &ro);
	cr_assert(ne(ptr, rd, NULL));
	cr_assert(eq(int, bt_kmes_reader__next(rd, &ev), 1));
	cr_assert(eq(u64, ev.sequence, 1));
	cr_assert(eq(int, bt_kmes_reader__next(rd, &ev), 1));
	cr_assert(eq(u64, ev.sequence, 2));
	cr_assert(eq(u64, ev.gap, 0));
	cr_assert(eq(int, bt_kmes_reader__next(rd, &ev), 0));
	cr_assert(eq(int, bt_kmes_reader__stats(rd, 0, &st), 0));
	cr_assert(eq(u64, st.missed, 0));
	cr_assert(eq(u64, st.dropped, 0));
	bt_kmes_reader__free(rd);
	bt_kmes_session__close(s);
}

/* ---- The rate limit ----------------------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* KMES.md §8 item 24 */
Test(kmes_emit, the_rate_limit_gives_eagain_after_a_burst_of_the_rate)
{
	const char *name = tu_name("rate");
	struct bt_kmes_session *s = create_rate(name, 100);
	uint64_t t0 = mono_ns(), elapsed, n = 0;

	while (kmes_emit(s, 0, EVT, EVT_LEN, small, sizeof(small)) == 0)
		cr_assert(lt(u64, ++n, 10000));
	elapsed = mono_ns() - t0;
	cr_assert(eq(int, errno, EAGAIN));
	/* The burst is the rate, plus what refilled while emitting. */
	cr_assert(ge(u64, n, 100));
	cr_assert(le(u64, n, 100 + elapsed / 10000000 + 1), "%" PRIu64
		  " events in %" PRIu64 " ns", n, elapsed);
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), n),
		  "EAGAIN spends no sequence number");
	/* The bucket refills at the rate: 100/s is one token per 10 ms. */
	usleep(50000);
	emit_ok(s, 0);
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), n + 1));
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 24 */
Test(kmes_emit, without_a_configured_rate_nothing_is_limited)
{
	const char *name = tu_name("norate");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	static struct kmes_emit_entry e[256];
	uint32_t done;

	fill_small(e, 256);
	/* More than the spec's default of 10000 per second, at once. */
	for (int i = 0; i < 2000; i++)
		emit_ok(s, 0);
	for (int i = 0; i < 40; i++)
		cr_assert(eq(int, kmes_emit_batch(s, 0, e, 256, &done), 0));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 2000 + 40 * 256));
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 24 */
Test(kmes_emit, failed_validations_consume_no_rate_tokens)
{
	const char *name = tu_name("ratefail");
	struct bt_kmes_session *s = create_rate(name, 100);
	uint64_t n = 0;

	for (int i = 0; i < 500; i++) {
		emit_fails(s, 0, EVT, EVT_LEN, "\xc1", 1, EINVAL);
		emit_fails(s, 0, EVT, EVT_LEN, NULL, 1, EFAULT);
		emit_fails(s, 0, EVT, 0, small, sizeof(small), EINVAL);
	}
	/* Failures and successes interleaved until the bucket is empty. */
	for (;;) {
		/* Over MaxEventSize; the payload is never read. */
		errno = 0;
		cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, small, 70000),
			     -1));
		if (errno == EAGAIN)
			break;
		cr_assert(eq(int, errno, ENOSPC));
		if (kmes_emit(s, 0, EVT, EVT_LEN, small, sizeof(small)) < 0) {
			cr_assert(eq(int, errno, EAGAIN));
			break;
		}
		cr_assert(lt(u64, ++n, 10000));
	}
	cr_assert(ge(u64, n, 100), "only %" PRIu64 " events passed", n);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 30 */
Test(kmes_emit, a_batch_needing_more_tokens_than_are_left_is_eagain_and_emits_nothing)
{
	const char *name = tu_name("ratebatch");
	struct bt_kmes_session *s = create_rate(name, 100);
	struct kmes_emit_entry e[101];
	uint32_t done = 0xcdcdcdcd;

	fill_small(e, 101);
	errno = 0;
	cr_assert(eq(int, kmes_emit_batch(s, 0, e, 101, &done), -1));
	cr_assert(eq(int, errno, EAGAIN));
	cr_assert(eq(u32, done, 0xcdcdcdcd), "emitted_out is untouched");
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 0));
	cr_assert(eq(u64, ext64(name, 0, KMES_OFF_WRITE_POS), 0));
	/* The refused reservation took nothing: the whole burst is there. */
	cr_assert(eq(int, kmes_emit_batch(s, 0, e, 100, &done), 0));
	cr_assert(eq(u32, done, 100));
	/* 50 tokens take half a second to come back. */
	errno = 0;
	cr_assert(eq(int, kmes_emit_batch(s, 0, e, 50, &done), -1));
	cr_assert(eq(int, errno, EAGAIN));
	cr_assert(eq(u32, done, 100));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 100));
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 30 */
Test(kmes_emit, rate_accounting_charges_only_the_events_emitted)
{
	const char *name = tu_name("ratecharge");
	struct bt_kmes_session *s = create_rate(name, 100);
	struct kmes_emit_entry e[100];
	uint32_t done = 0;

	fill_small(e, 100);
	e[40].payload = "\xc1";
	e[40].payload_len = 1;
	errno = 0;
	cr_assert(eq(int, kmes_emit_batch(s, 0, e, 100, &done), -1));
	cr_assert(eq(int, errno, EINVAL));
	cr_assert(eq(u32, done, 40));
	/* 60 tokens came back: a batch of 60 passes, then nothing does. */
	cr_assert(eq(int, kmes_emit_batch(s, 0, &e[41], 59, &done), 0));
	emit_ok(s, 0);
	errno = 0;
	cr_assert(eq(int, kmes_emit_batch(s, 0, e, 50, &done), -1));
	cr_assert(eq(int, errno, EAGAIN));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 100));
	bt_kmes_session__close(s);
}

/* ---- kmes_emit_batch ---------------------------------------------------- */

/* KMES.md §8 item 25 */
Test(kmes_emit, batch_count_0_or_257_is_einval_and_leaves_emitted_out_untouched)
{
	const char *name = tu_name("bcount");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	static struct kmes_emit_entry e[257];
	uint32_t done = 0xcdcdcdcd;

	fill_small(e, 257);
	errno = 0;
	cr_assert(eq(int, kmes_emit_batch(s, 0, e, 0, &done), -1));
	cr_assert(eq(int, errno, EINVAL));
	errno = 0;
	cr_assert(eq(int, kmes_emit_batch(s, 0, e, 257, &done), -1));
	cr_assert(eq(int, errno, EINVAL));
	errno = 0;
	cr_assert(eq(int, kmes_emit_batch(s, 0, e, 0xFFFFFFFFu, &done), -1));
	cr_assert(eq(int, errno, EINVAL));
	/* A bad session or slot is the same case. */
	errno = 0;
	cr_assert(eq(int, kmes_emit_batch(NULL, 0, e, 1, &done), -1));
	cr_assert(eq(int, errno, EINVAL));
	errno = 0;
	cr_assert(eq(int, kmes_emit_batch(s, 2, e, 1, &done), -1));
	cr_assert(eq(int, errno, EINVAL));
	cr_assert(eq(u32, done, 0xcdcdcdcd));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 0));
	/* 256 is the limit, and it is allowed. */
	cr_assert(eq(int, kmes_emit_batch(s, 0, e, 256, &done), 0));
	cr_assert(eq(u32, done, 256));
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 26 */
Test(kmes_emit, a_null_emitted_out_is_efault_and_emits_nothing)
{
	const char *name = tu_name("bnull");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct kmes_emit_entry e[2] = {
		{ EVT, EVT_LEN, small, sizeof(small) },
		{ EVT, EVT_LEN, small, sizeof(small) },
	};
	uint32_t done = 0xcdcdcdcd;

	errno = 0;
	cr_assert(eq(int, kmes_emit_batch(s, 0, e, 2, NULL), -1));
	cr_assert(eq(int, errno, EFAULT));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 0));
	cr_assert(eq(u64, ext64(name, 0, KMES_OFF_WRITE_POS), 0));
	/* NULL entries: EFAULT too, after emitted_out got its 0. */
	errno = 0;
	cr_assert(eq(int, kmes_emit_batch(s, 0, NULL, 2, &done), -1));
	cr_assert(eq(int, errno, EFAULT));
	cr_assert(eq(u32, done, 0));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 0));
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 27 */
Test(kmes_emit, a_failure_at_entry_n_emits_entries_before_it_and_reports_n)
{
	const char *name = tu_name("bfail");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	static const struct {
		uint32_t at;
		int err;
	} cases[] = { { 3, EINVAL }, { 5, ENOSPC }, { 1, EFAULT },
		      { 0, EINVAL }, { 7, EINVAL } };
	struct kmes_emit_entry e[8];
	uint64_t seq = 0;
	struct ring *r;
	size_t nev = 0;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		uint32_t at = cases[c].at, done = 0xcdcdcdcd;

		fill_small(e, 8);
		switch (cases[c].err) {
		case ENOSPC:
			e[at].payload_len = 40000;
			break;
		case EFAULT:
			e[at].payload = NULL;
			break;
		default:
			e[at].event_type = "\xed\xa0\x80";
			e[at].event_type_len = 3;
			break;
		}
		errno = 0;
		cr_assert(eq(int, kmes_emit_batch(s, 0, e, 8, &done), -1));
		cr_assert(eq(int, errno, cases[c].err), "case %zu", c);
		cr_assert(eq(u32, done, at), "case %zu", c);
		seq += at;
		nev += at;
		cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), seq),
			  "entries from %u on spend no sequence number", at);
	}
	emit_ok(s, 0);
	r = ring_read(name, 0);
	cr_assert(eq(sz, r->n, nev + 1));
	for (size_t i = 0; i < r->n; i++)
		cr_assert(eq(u64, r->ev[i].seq, i + 1));
	ring_free(r);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 28 */
Test(kmes_emit, a_full_batch_returns_0_and_counts_every_entry)
{
	const char *name = tu_name("bfull");
	struct bt_kmes_session *s = tu_create(name, CAP_256K, 1);
	static struct kmes_emit_entry e[256];
	static const uint32_t counts[] = { 1, 17, 256 };
	uint64_t total = 0;
	struct ring *r;

	fill_small(e, 256);
	for (size_t c = 0; c < 3; c++) {
		uint32_t done = 0xcdcdcdcd;

		cr_assert(eq(int, kmes_emit_batch(s, 0, e, counts[c], &done), 0));
		cr_assert(eq(u32, done, counts[c]));
		total += counts[c];
	}
	r = ring_read(name, 0);
	cr_assert(eq(sz, r->n, (size_t)total));
	cr_assert(eq(u64, r->ev[r->n - 1].seq, total));
	ring_free(r);
	bt_kmes_session__close(s);
}

/* A child's view of the positions, shared with the test through mmap. */
struct watch {
	_Atomic int ready;
	_Atomic int stop;
	_Atomic uint64_t seen;		/* distinct write_pos values */
	_Atomic uint64_t bad;		/* ... not on a batch boundary */
	_Atomic uint64_t bad_pos;
};

#define B_EVENTS	16u
#define B_EVSIZE	256u
#define B_BYTES		(B_EVENTS * B_EVSIZE)

static void watch_write_pos(const unsigned char *base, struct watch *w)
{
	uint64_t last = 0;

	atomic_store(&w->ready, 1);
	for (;;) {
		int stop = atomic_load(&w->stop);
		uint64_t wp = tu_ld64(base, KMES_OFF_WRITE_POS);

		if (wp != last) {
			atomic_fetch_add(&w->seen, 1);
			if (wp % B_BYTES) {
				atomic_fetch_add(&w->bad, 1);
				atomic_store(&w->bad_pos, wp);
			}
			last = wp;
		}
		if (stop)
			break;
	}
}

/* KMES.md §8 item 29 */
Test(kmes_emit, a_concurrent_reader_never_sees_part_of_a_batch, .timeout = 30)
{
	const char *name = tu_name("batchvis");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	const uint32_t plen = B_EVSIZE - HDR;
	struct kmes_emit_entry e[B_EVENTS];
	unsigned char *base;
	struct watch *w;
	uint64_t cap, t0, batches = 0;
	int status;
	pid_t pid;

	for (uint32_t i = 0; i < B_EVENTS; i++)
		e[i] = (struct kmes_emit_entry){ EVT, EVT_LEN,
						 payload_of(plen), plen };
	base = tu_map_slot(name, 0, &cap);
	cr_assert(le(u64, (uint64_t)B_BYTES, cap / 2), "the batch fits");
	w = mmap(NULL, sizeof(*w), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(ne(ptr, (void *)w, MAP_FAILED));
	pid = fork();
	cr_assert(ge(int, pid, 0));
	if (pid == 0) {
		watch_write_pos(base, w);
		_exit(0);
	}
	while (!atomic_load(&w->ready))
		sched_yield();
	t0 = mono_ns();
	/* Until the watcher has seen plenty of publishes, or 5 s. */
	while (batches < 200 ||
	       (atomic_load(&w->seen) < 500 && mono_ns() - t0 < 5000000000ull)) {
		uint32_t done = 0;

		cr_assert(eq(int, kmes_emit_batch(s, 0, e, B_EVENTS, &done), 0));
		batches++;
		if (batches % 64 == 0)
			sched_yield();
	}
	atomic_store(&w->stop, 1);
	cr_assert(eq(int, waitpid(pid, &status, 0), pid));
	cr_assert(eq(int, status, 0));
	cr_assert(eq(u64, tu_ld64(base, KMES_OFF_WRITE_POS),
		     batches * B_BYTES));
	cr_assert(eq(u64, atomic_load(&w->bad), 0),
		  "write_pos %" PRIu64 " is inside a batch",
		  atomic_load(&w->bad_pos));
	cr_assert(ge(u64, atomic_load(&w->seen), 2),
		  "the watcher saw the ring move");
	munmap(w, sizeof(*w));
	kmes_unmap(base, cap);
	bt_kmes_session__close(s);
}

/* ---- Ring behaviour on emission ---------------------------------------- */

/* KMES.md §8 item 40 */
Test(kmes_emit, emission_never_blocks_or_fails_without_a_consumer, .timeout = 30)
{
	const char *name = tu_name("noconsumer");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	const uint32_t plen = 1000 - HDR;
	const unsigned char *pl = payload_of(plen);
	struct kmes_emit_entry e[32];
	uint64_t n = 0, lost;
	struct ring *r;

	for (int i = 0; i < 32; i++)
		e[i] = (struct kmes_emit_entry){ EVT, EVT_LEN, pl, plen };
	/* 20 times the capacity, one by one and in batches. */
	while (n < 20 * CAP_64K / 1000) {
		uint32_t done = 0;

		cr_assert(eq(int, kmes_emit(s, 0, EVT, EVT_LEN, pl, plen), 0),
			  "emit %" PRIu64 ": %s", n, strerror(errno));
		cr_assert(eq(int, kmes_emit_batch(s, 0, e, 32, &done), 0));
		n += 33;
	}
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), n));
	r = ring_read(name, 0);
	cr_assert(gt(u64, tu_ld64(r->base, KMES_OFF_TAIL_POS), 0));
	cr_assert(eq(sz, r->n, (size_t)(CAP_64K / 1000)));
	cr_assert(eq(u64, r->ev[r->n - 1].seq, n), "the newest events survive");
	for (size_t i = 1; i < r->n; i++)
		cr_assert(eq(u64, r->ev[i].seq, r->ev[i - 1].seq + 1));
	lost = tu_rd64(r->base + BT_KMES_XOFF_LOST);
	cr_assert(eq(u64, lost, n - r->n), "the overwritten ones are counted");
	ring_free(r);
	bt_kmes_session__close(s);
}

/* Watch tail_pos <= write_pos and the span <= capacity, from a child. */
static void watch_positions(const unsigned char *base, uint64_t cap,
			    struct watch *w)
{
	atomic_store(&w->ready, 1);
	while (!atomic_load(&w->stop)) {
		uint64_t tp1 = tu_ld64(base, KMES_OFF_TAIL_POS);
		uint64_t wp = tu_ld64(base, KMES_OFF_WRITE_POS);
		uint64_t tp2 = tu_ld64(base, KMES_OFF_TAIL_POS);

		atomic_fetch_add(&w->seen, 1);
		/* tp1 was read first, so it may not pass wp ... */
		if (tp1 > wp)
			atomic_fetch_add(&w->bad, 1);
		/* ... and tp2, read later, cannot be further back than cap. */
		if (tp2 <= wp && wp - tp2 > cap)
			atomic_fetch_add(&w->bad, 1);
	}
}

Test(kmes_emit, a_batch_larger_than_the_ring_loses_its_head_on_arrival, .timeout = 30)
{
	const char *name = tu_name("bigbatch");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	static struct kmes_emit_entry e[256];
	const uint32_t plen = 600, esz = HDR + 600;
	const size_t fit = CAP_64K / esz;
	unsigned char *base;
	struct watch *w;
	uint64_t cap;
	struct ring *r;
	int status;
	pid_t pid;

	for (int i = 0; i < 256; i++)
		e[i] = (struct kmes_emit_entry){ EVT, EVT_LEN,
						 payload_of(plen), plen };
	base = tu_map_slot(name, 0, &cap);
	w = mmap(NULL, sizeof(*w), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(ne(ptr, (void *)w, MAP_FAILED));
	pid = fork();
	cr_assert(ge(int, pid, 0));
	if (pid == 0) {
		watch_positions(base, cap, w);
		_exit(0);
	}
	while (!atomic_load(&w->ready))
		sched_yield();

	for (int round = 1; round <= 20; round++) {
		uint32_t done = 0xcdcdcdcd;
		uint64_t tp, wp;

		cr_assert(eq(int, kmes_emit_batch(s, 0, e, 256, &done), 0));
		cr_assert(eq(u32, done, 256));
		tp = tu_ld64(base, KMES_OFF_TAIL_POS);
		wp = tu_ld64(base, KMES_OFF_WRITE_POS);
		cr_assert(le(u64, tp, wp));
		cr_assert(le(u64, wp - tp, cap));
		cr_assert(eq(u64, wp - tp, fit * esz), "round %d", round);
		cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0),
			     256ull * (uint64_t)round));
		if (round == 1) {
			r = ring_read(name, 0);
			cr_assert(eq(sz, r->n, fit));
			for (size_t i = 0; i < r->n; i++) {
				uint64_t seq;

				cr_assert(eq(u64, r->ev[i].seq, 256 - fit + 1 + i));
				cr_assert(eq(u32, r->ev[i].size, esz));
				cr_assert(eq(int, bt_kmes_payload_check(
					r->ev[i].payload, r->ev[i].plen, &seq), 1));
			}
			cr_assert(eq(u64, tu_rd64(r->base + BT_KMES_XOFF_LOST),
				     256 - fit), "the head counts as lost");
			ring_free(r);
		}
	}
	atomic_store(&w->stop, 1);
	cr_assert(eq(int, waitpid(pid, &status, 0), pid));
	cr_assert(eq(int, status, 0));
	cr_assert(eq(u64, atomic_load(&w->bad), 0));
	cr_assert(gt(u64, atomic_load(&w->seen), 0));
	munmap(w, sizeof(*w));
	kmes_unmap(base, cap);
	bt_kmes_session__close(s);
}

/* ---- Trusted emission --------------------------------------------------- */

/* KMES.md §8 item 47 */
Test(kmes_emit, a_trusted_event_over_half_the_capacity_is_dropped_with_a_sequence_gap)
{
	const char *name = tu_name("tdrop");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	const uint32_t half = CAP_64K / 2 - HDR;
	struct kmes_emit_entry ok = { EVT, EVT_LEN, small, sizeof(small) };
	struct kmes_emit_entry big = { EVT, EVT_LEN, payload_of(half + 1),
				       half + 1 };
	struct kmes_emit_entry empty = { "", 0, small, sizeof(small) };
	struct bt_kmes_reader_opts ro = { .sz = sizeof(ro), .one_slot = true };
	struct bt_kmes_reader *rd;
	struct bt_kmes_event ev;
	struct ring *r;

	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, NULL, &ok, 1), 1));
	cr_assert(eq(u64, ext64(name, 0, BT_KMES_XOFF_DROPPED), 0));
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, NULL, &big, 1), 0));
	cr_assert(eq(u64, ext64(name, 0, BT_KMES_XOFF_DROPPED), 1));
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, NULL, &ok, 1), 1));
	/* An empty type is dropped the same way. */
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, NULL, &empty, 1), 0));
	cr_assert(eq(u64, ext64(name, 0, BT_KMES_XOFF_DROPPED), 2));
	/* Exactly half is no drop for a trusted emitter either. */
	big.payload_len = half;
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, NULL, &big, 1), 1));

	r = ring_read(name, 0);
	cr_assert(eq(sz, r->n, 3));
	cr_assert(eq(u64, r->ev[0].seq, 1));
	cr_assert(eq(u64, r->ev[1].seq, 3), "the drop spent sequence 2");
	cr_assert(eq(u64, r->ev[2].seq, 5));
	cr_assert(eq(u32, r->ev[2].size, CAP_64K / 2));
	cr_assert(eq(u64, tu_rd64(r->base + BT_KMES_XOFF_LAST_SEQ), 5));
	ring_free(r);

	rd = bt_kmes_reader__new(name, &ro);
	cr_assert(ne(ptr, rd, NULL));
	cr_assert(eq(int, bt_kmes_reader__next(rd, &ev), 1));
	cr_assert(eq(int, bt_kmes_reader__next(rd, &ev), 1));
	cr_assert(eq(u64, ev.sequence, 3));
	cr_assert(eq(u64, ev.gap, 1));
	bt_kmes_reader__free(rd);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 48 */
Test(kmes_emit, a_bad_middle_event_of_a_trusted_batch_is_dropped_and_the_rest_written)
{
	const char *name = tu_name("tbatch");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct kmes_emit_entry e[5];
	struct ring *r;

	fill_small(e, 5);
	e[2].payload = payload_of(CAP_64K);
	e[2].payload_len = CAP_64K;
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, NULL, e, 5), 4));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 5));
	r = ring_read(name, 0);
	cr_assert(eq(sz, r->n, 4));
	cr_assert(eq(u64, r->ev[0].seq, 1));
	cr_assert(eq(u64, r->ev[1].seq, 2));
	cr_assert(eq(u64, r->ev[2].seq, 4));
	cr_assert(eq(u64, r->ev[3].seq, 5));
	for (size_t i = 1; i < 4; i++)
		cr_assert(eq(u64, r->ev[i].ts, r->ev[0].ts), "one timestamp");
	cr_assert(eq(u64, tu_rd64(r->base + BT_KMES_XOFF_DROPPED), 1));
	ring_free(r);
	bt_kmes_session__close(s);
}

Test(kmes_emit, trusted_emission_skips_utf8_and_msgpack_validation)
{
	const char *name = tu_name("tnocheck");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct kmes_emit_entry e[3] = {
		{ "\xff\xfe", 2, small, sizeof(small) },	/* not UTF-8 */
		{ EVT, EVT_LEN, "\xc1\xc1", 2 },		/* not msgpack */
		{ EVT, EVT_LEN, NULL, 0 },			/* empty */
	};
	struct ring *r;

	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, NULL, e, 3), 3));
	r = ring_read(name, 0);
	cr_assert(eq(sz, r->n, 3));
	cr_assert(eq(int, memcmp(r->ev[0].type, "\xff\xfe", 2), 0));
	cr_assert(eq(int, memcmp(r->ev[1].payload, "\xc1\xc1", 2), 0));
	cr_assert(eq(u32, r->ev[2].size, r->ev[2].hsize),
		  "a kernel emitter may send a zero-length payload");
	ring_free(r);
	bt_kmes_session__close(s);
}

Test(kmes_emit, a_stamp_with_a_cpu_sets_the_header_cpu_of_a_per_task_ring)
{
	const char *name = tu_name("tstamp");
	struct bt_kmes_session_opts o = { .capacity = CAP_64K, .slots = 2,
					  .kind = BT_KMES_RING_TASK };
	struct bt_kmes_session *s = create_opts(name, &o);
	struct bt_kmes_stamp st = { .sz = sizeof(st), .origin_class = 3,
				    .has_cpu = true, .cpu_id = 7 };
	struct kmes_emit_entry e = { EVT, EVT_LEN, small, sizeof(small) };
	cpu_set_t allowed, one;
	int cpu = 0;
	struct ring *r;

	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 1, &st, &e, 1), 1));
	st.cpu_id = 65535;
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 1, &st, &e, 1), 1));
	/* Without a CPU in the stamp, the CPU the caller runs on. */
	cr_assert(eq(int, sched_getaffinity(0, sizeof(allowed), &allowed), 0));
	while (!CPU_ISSET(cpu, &allowed))
		cpu++;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	cr_assert(eq(int, sched_setaffinity(0, sizeof(one), &one), 0));
	st.has_cpu = false;
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 1, &st, &e, 1), 1));
	cr_assert(eq(int, kmes_emit(s, 1, EVT, EVT_LEN, small, sizeof(small)), 0));

	r = ring_read(name, 1);
	cr_assert(eq(u16, tu_rd16(r->base + KMES_OFF_CPU_ID), 1), "the slot index");
	cr_assert(eq(sz, r->n, 4));
	cr_assert(eq(u16, r->ev[0].cpu, 7));
	cr_assert(eq(u8, r->ev[0].origin, 3));
	cr_assert(eq(u16, r->ev[1].cpu, 65535));
	cr_assert(eq(u16, r->ev[2].cpu, (uint16_t)cpu));
	cr_assert(eq(u16, r->ev[3].cpu, (uint16_t)cpu));
	cr_assert(eq(u8, r->ev[3].origin, KMES_ORIGIN_USER));
	ring_free(r);
	bt_kmes_session__close(s);
}

Test(kmes_emit, emit_trusted_rejects_bad_arguments_with_einval)
{
	const char *name = tu_name("tinval");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	static struct kmes_emit_entry e[257];
	struct bt_kmes_stamp st = { .sz = sizeof(st) };
	struct {
		struct bt_kmes_stamp st;
		uint64_t more;
	} big = { .st = { .sz = sizeof(big) } };

	fill_small(e, 257);
	cr_assert(eq(int, bt_kmes_session__emit_trusted(NULL, 0, NULL, e, 1),
		     -EINVAL));
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 2, NULL, e, 1),
		     -EINVAL));
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, NULL, NULL, 1),
		     -EINVAL));
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, NULL, e, 0),
		     -EINVAL));
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, NULL, e, 257),
		     -EINVAL));
	st.sz = 0;
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, &st, e, 1),
		     -EINVAL));
	st.sz = sizeof(size_t) - 1;
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, &st, e, 1),
		     -EINVAL));
	/* A newer, larger stamp is fine while the bytes we do not know are 0. */
	big.more = 1;
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, &big.st, e, 1),
		     -EINVAL));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 0),
		  "nothing was emitted");
	big.more = 0;
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, &big.st, e, 1), 1));
	/* A smaller, older stamp is fine too. */
	st.sz = sizeof(size_t);
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, &st, e, 256), 256));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 257));
	bt_kmes_session__close(s);
}

Test(kmes_emit, kmes_emit_rejects_a_null_session_or_a_bad_slot_with_einval)
{
	const char *name = tu_name("inval");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	struct bt_kmes_session_opts o = { .capacity = CAP_64K, .slots = 1,
					  .kind = BT_KMES_RING_TASK };
	const char *tname = tu_name("inval-task");
	struct bt_kmes_session *t = create_opts(tname, &o);
	struct kmes_emit_entry e = { EVT, EVT_LEN, small, sizeof(small) };

	emit_fails(NULL, 0, EVT, EVT_LEN, small, sizeof(small), EINVAL);
	emit_fails(s, 2, EVT, EVT_LEN, small, sizeof(small), EINVAL);
	emit_fails(s, 0xFFFFFFFEu, EVT, EVT_LEN, small, sizeof(small), EINVAL);
	/* A per-task session has no "current CPU" slot. */
	emit_fails(t, KMES_SLOT_CURRENT, EVT, EVT_LEN, small, sizeof(small),
		   EINVAL);
	cr_assert(eq(int, bt_kmes_session__emit_trusted(t, KMES_SLOT_CURRENT,
							NULL, &e, 1),
		     -EINVAL));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 0));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(NULL, 0), 0));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 2), 0));
	bt_kmes_session__close(s);
	bt_kmes_session__close(t);
}

Test(kmes_emit, slot_current_emits_on_the_ring_of_the_cpu_the_caller_runs_on)
{
	const char *name = tu_name("current");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 0);
	uint32_t n = bt_kmes_session__slots(s);
	cpu_set_t one;
	uint32_t cpus = 0;

	for (uint32_t cpu = 0; cpu < n && cpus < 2; cpu++) {
		struct ring *r;

		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (sched_setaffinity(0, sizeof(one), &one) < 0)
			continue;		/* offline */
		cr_assert(eq(int, sched_getcpu(), (int)cpu));
		cr_assert(eq(int, kmes_emit(s, KMES_SLOT_CURRENT, EVT, EVT_LEN,
					    small, sizeof(small)), 0));
		r = ring_read(name, cpu);
		cr_assert(eq(sz, r->n, 1));
		cr_assert(eq(u16, r->ev[0].cpu, (uint16_t)cpu));
		ring_free(r);
		cpus++;
	}
	cr_assert(ge(u32, cpus, 1));
	bt_kmes_session__close(s);
}
