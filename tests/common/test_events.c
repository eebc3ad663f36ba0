// SPDX-License-Identifier: BSD-3-Clause
/*
 * The bt.* event payloads: every type written and read back, the schema
 * text, and hostile payloads (truncated, wrong kinds, missing fields,
 * random bytes) refused with a reason and never a crash. Inputs are
 * malloc'd at their exact length so that a sanitizer build catches a
 * read past the end.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include <btrail/errno.h>
#include <btrail/events.h>

/* Values that exercise every kind of every field of @t. */
static void sample_values(const struct bt_event_type *t,
			  struct bt_event_value *v, unsigned char *recs)
{
	static const char text[] = "h\xc3\xa9llo";

	for (uint32_t i = 0; i < t->nfields; i++) {
		const struct bt_event_field *f = &t->fields[i];

		memset(&v[i], 0, sizeof(v[i]));
		switch (f->kind) {
		case BT_FK_U64:
			v[i].u = 0xffff800012345678ull + i;
			break;
		case BT_FK_U32:
			v[i].u = 0xfffffff0u + i;
			break;
		case BT_FK_I64:
			v[i].i = -(int64_t)i * 1000000000000ll;
			break;
		case BT_FK_I32:
			v[i].i = i % 2 ? -1 : 2147483647;
			break;
		case BT_FK_BOOL:
			v[i].u = 1;
			break;
		case BT_FK_STR:
			v[i].p = text;
			v[i].len = strlen(text);
			break;
		case BT_FK_BYTES:
			v[i].p = "\x00\x02\x82\x02";
			v[i].len = 4;
			break;
		case BT_FK_RECS:
			for (size_t b = 0; b < 3u * f->rec_size; b++)
				recs[b] = (unsigned char)(b * 7 + 1);
			v[i].p = recs;
			v[i].len = 3u * f->rec_size;
			break;
		}
	}
}

static unsigned char *exact_copy(const void *p, size_t n)
{
	unsigned char *c = malloc(n ? n : 1);

	cr_assert(ne(ptr, c, NULL));
	memcpy(c, p, n);
	return c;
}

Test(events, every_type_round_trips)
{
	size_t count;
	const struct bt_event_type *types = bt_event_types(&count);

	cr_assert(eq(sz, count, BT_EVID__COUNT));
	for (size_t k = 0; k < count; k++) {
		const struct bt_event_type *t = &types[k];
		struct bt_event_value v[64], back[64];
		unsigned char recs[3 * 8 * 27], buf[4096], *exact;
		char why[200];
		long n;

		cr_assert(eq(u32, t->id, (uint32_t)k));
		cr_assert(eq(ptr, (void *)bt_event_type_find(t->name,
				strlen(t->name)), (void *)t));
		sample_values(t, v, recs);
		n = bt_event_encode(t, v, buf, sizeof(buf));
		cr_assert(gt(long, n, 0), "%s: %ld", t->name, n);
		cr_assert(eq(sz, bt_event_encoded_size(t, v), (size_t)n));
		exact = exact_copy(buf, (size_t)n);
		cr_assert(eq(int, bt_event_decode(t, exact, (size_t)n, back,
						  why, sizeof(why)), 0),
			  "%s: %s", t->name, why);
		for (uint32_t i = 0; i < t->nfields; i++) {
			cr_assert(eq(u64, back[i].u, v[i].u), "%s.%s", t->name,
				  t->fields[i].name);
			cr_assert(eq(i64, back[i].i, v[i].i));
			cr_assert(eq(sz, back[i].len, v[i].len));
			if (v[i].len)
				cr_assert(eq(int, memcmp(back[i].p, v[i].p, v[i].len), 0));
		}
		/* Every shorter prefix is refused, never read past. */
		for (long cut = 0; cut < n; cut++) {
			unsigned char *p = exact_copy(buf, (size_t)cut);

			cr_assert(eq(int, bt_event_decode(t, p, (size_t)cut,
					back, why, sizeof(why)),
				     -BT_ERRNO_FORMAT), "%s cut %ld", t->name,
				  cut);
			free(p);
		}
		free(exact);
	}
}

Test(events, records_read_little_endian)
{
	const struct bt_event_type *t = bt_event_type_find("bt.branch", 9);
	struct bt_event_value v[BT_BRANCH__N] = { 0 }, back[BT_BRANCH__N];
	unsigned char recs[2 * BT_BREC_SIZE] = { 0 }, buf[256];
	long n;

	cr_assert(ne(ptr, (void *)t, NULL));
	recs[0] = 0x78;			/* rec 0 from = 0x...5678 */
	recs[1] = 0x56;
	recs[BT_BREC_SIZE + 8 + 7] = 0xff;	/* rec 1 to: top byte */
	v[BT_BRANCH_RECS].p = recs;
	v[BT_BRANCH_RECS].len = sizeof(recs);
	v[BT_BRANCH_CPU].i = 3;
	v[BT_BRANCH_TID].i = -1;
	n = bt_event_encode(t, v, buf, sizeof(buf));
	cr_assert(gt(long, n, 0));
	cr_assert(eq(int, bt_event_decode(t, buf, (size_t)n, back, NULL, 0), 0));
	cr_assert(eq(sz, back[BT_BRANCH_RECS].len / BT_BREC_SIZE, 2));
	cr_assert(eq(u64, bt_event_rec_u64(&back[BT_BRANCH_RECS], BT_BREC_SIZE,
					   0, BT_BREC_FROM), 0x5678));
	cr_assert(eq(u64, bt_event_rec_u64(&back[BT_BRANCH_RECS], BT_BREC_SIZE,
					   1, BT_BREC_TO), 0xff00000000000000ull));
	cr_assert(eq(i64, back[BT_BRANCH_TID].i, -1));
}

Test(events, values_that_do_not_fit_are_refused)
{
	const struct bt_event_type *br = bt_event_type_find("bt.branch", 9);
	const struct bt_event_type *cl = bt_event_type_find("bt.clock", 8);
	const struct bt_event_type *co = bt_event_type_find("bt.comm", 7);
	struct bt_event_value v[16] = { 0 };
	unsigned char buf[512];

	v[BT_BRANCH_RECS].p = buf;
	v[BT_BRANCH_RECS].len = 25;	/* not a multiple of 24 */
	cr_assert(eq(long, bt_event_encode(br, v, buf, sizeof(buf)), -EINVAL));
	memset(v, 0, sizeof(v));
	v[BT_BRANCH_CPU].i = (int64_t)1 << 40;
	cr_assert(eq(long, bt_event_encode(br, v, buf, sizeof(buf)), -EINVAL));
	memset(v, 0, sizeof(v));
	v[BT_CLOCK_TIME_MULT].u = 1ull << 32;
	cr_assert(eq(long, bt_event_encode(cl, v, buf, sizeof(buf)), -EINVAL));
	memset(v, 0, sizeof(v));
	v[BT_COMM_COMM].p = "\xff\xfe";
	v[BT_COMM_COMM].len = 2;
	cr_assert(eq(long, bt_event_encode(co, v, buf, sizeof(buf)), -EINVAL));
	memset(v, 0, sizeof(v));
	cr_assert(eq(long, bt_event_encode(co, v, buf, 4), -ENOSPC));
	cr_assert(gt(long, bt_event_encode(co, v, buf, sizeof(buf)), 4));
	cr_assert(eq(long, bt_event_encode(NULL, v, buf, sizeof(buf)), -EINVAL));
}

/* Pack a map by hand with msgpack-c for the hostile cases. */
struct mp {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

static void mp_init(struct mp *m, uint32_t nkeys)
{
	msgpack_sbuffer_init(&m->sb);
	msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
	msgpack_pack_map(&m->pk, nkeys);
}

static void mp_key(struct mp *m, const char *k)
{
	msgpack_pack_str_with_body(&m->pk, k, strlen(k));
}

static int mp_decode(struct mp *m, const struct bt_event_type *t, char *why,
		     size_t wl)
{
	struct bt_event_value v[64];
	unsigned char *p = exact_copy(m->sb.data, m->sb.size);
	int err = bt_event_decode(t, p, m->sb.size, v, why, wl);

	free(p);
	msgpack_sbuffer_destroy(&m->sb);
	return err;
}

Test(events, hostile_payloads_get_a_reason)
{
	const struct bt_event_type *t = bt_event_type_find("bt.comm", 7);
	char why[200];
	struct mp m;

	/* A field missing. */
	mp_init(&m, 1);
	mp_key(&m, "pid");
	msgpack_pack_int32(&m.pk, 1);
	cr_assert(eq(int, mp_decode(&m, t, why, sizeof(why)), -BT_ERRNO_FORMAT));
	cr_assert(ne(ptr, strstr(why, "'tid' missing"), NULL), "%s", why);

	/* Wrong kind. */
	mp_init(&m, 5);
	mp_key(&m, "pid"); msgpack_pack_str_with_body(&m.pk, "x", 1);
	mp_key(&m, "tid"); msgpack_pack_int32(&m.pk, 1);
	mp_key(&m, "time"); msgpack_pack_uint64(&m.pk, 1);
	mp_key(&m, "comm"); msgpack_pack_str_with_body(&m.pk, "a", 1);
	mp_key(&m, "exec"); msgpack_pack_true(&m.pk);
	cr_assert(eq(int, mp_decode(&m, t, why, sizeof(why)), -BT_ERRNO_FORMAT));
	cr_assert(ne(ptr, strstr(why, "'pid': not an integer"), NULL), "%s", why);

	/* Unknown keys are skipped, order does not matter. */
	mp_init(&m, 6);
	mp_key(&m, "exec"); msgpack_pack_false(&m.pk);
	mp_key(&m, "future"); msgpack_pack_array(&m.pk, 0);
	mp_key(&m, "comm"); msgpack_pack_str_with_body(&m.pk, "a", 1);
	mp_key(&m, "time"); msgpack_pack_uint64(&m.pk, 1);
	mp_key(&m, "tid"); msgpack_pack_int32(&m.pk, -5);
	mp_key(&m, "pid"); msgpack_pack_int32(&m.pk, 1);
	cr_assert(eq(int, mp_decode(&m, t, why, sizeof(why)), 0), "%s", why);

	/* A field twice. */
	mp_init(&m, 2);
	mp_key(&m, "pid"); msgpack_pack_int32(&m.pk, 1);
	mp_key(&m, "pid"); msgpack_pack_int32(&m.pk, 1);
	cr_assert(eq(int, mp_decode(&m, t, why, sizeof(why)), -BT_ERRNO_FORMAT));
	cr_assert(ne(ptr, strstr(why, "twice"), NULL), "%s", why);

	/* Not a map, and bytes after the map. */
	msgpack_sbuffer_init(&m.sb);
	msgpack_packer_init(&m.pk, &m.sb, msgpack_sbuffer_write);
	msgpack_pack_array(&m.pk, 0);
	cr_assert(eq(int, mp_decode(&m, t, why, sizeof(why)), -BT_ERRNO_FORMAT));
	cr_assert(ne(ptr, strstr(why, "not a msgpack map"), NULL), "%s", why);
	mp_init(&m, 0);
	msgpack_pack_nil(&m.pk);
	cr_assert(eq(int, mp_decode(&m, t, why, sizeof(why)), -BT_ERRNO_FORMAT));
	cr_assert(ne(ptr, strstr(why, "after the payload"), NULL), "%s", why);

	cr_assert(eq(int, bt_event_decode(NULL, "", 0, NULL, NULL, 0), -EINVAL));
}

Test(events, random_bytes_never_crash)
{
	size_t count;
	const struct bt_event_type *types = bt_event_types(&count);
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(x % 96);
		unsigned char *p = malloc(len ? len : 1);
		struct bt_event_value v[64];

		for (size_t i = 0; i < len; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			p[i] = (unsigned char)x;
		}
		if (len)
			p[0] = 0x80 | (p[0] & 0x0f);	/* mostly fixmaps */
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		(void)bt_event_decode(&types[x % count], p, len, v, NULL, 0);
		free(p);
	}
}

Test(events, schema_describes_each_type)
{
	const struct bt_event_type *br = bt_event_type_find("bt.branch", 9);
	const struct bt_event_type *sc = bt_event_type_find("bt.schema", 9);
	struct bt_event_value v[BT_SCHEMA__N];
	unsigned char buf[2048];
	char text[512];
	long n;

	cr_assert(gt(long, bt_event_schema_fields(br, text, sizeof(text)), 0));
	cr_assert(eq(str, text, "cpu:i32 pid:i32 tid:i32 time:u64 "
		      "recs:recs{from:u64:addr to:u64:addr flags:u64}"));
	cr_assert(eq(long, bt_event_schema_fields(br, text, 10), -ENOSPC));
	n = bt_event_schema_encode(br, buf, sizeof(buf));
	cr_assert(gt(long, n, 0));
	cr_assert(eq(int, bt_event_decode(sc, buf, (size_t)n, v, NULL, 0), 0));
	cr_assert(eq(sz, v[BT_SCHEMA_TYPE].len, 9));
	cr_assert(eq(int, memcmp(v[BT_SCHEMA_TYPE].p, "bt.branch", 9), 0));
	cr_assert(eq(u64, v[BT_SCHEMA_ID].u, BT_EVID_BRANCH));
	cr_assert(eq(int, bt_event_field_index(br, "recs"), BT_BRANCH_RECS));
	cr_assert(eq(int, bt_event_field_index(br, "nope"), -1));
}

/*
 * Five bytes that claim 2^32 array elements: msgpack-c would allocate
 * 64 GiB for them before reading one. They are refused first.
 */
Test(events, a_container_claiming_more_than_its_bytes_is_refused)
{
	static const unsigned char bomb[][6] = {
		{ 0xdd, 0xff, 0xff, 0xff, 0xff },	/* array32 */
		{ 0xdf, 0xff, 0xff, 0xff, 0xff },	/* map32 */
		{ 0x81, 0xa1, 'x', 0xdc, 0xff, 0xff },	/* {x: array16} */
	};
	const struct bt_event_type *t = bt_event_type_find("bt.comm", 7);
	struct bt_event_value v[BT_COMM__N];
	char why[200];

	for (size_t i = 0; i < sizeof(bomb) / sizeof(bomb[0]); i++) {
		unsigned char *p = exact_copy(bomb[i], i < 2 ? 5 : 6);

		cr_assert(eq(int, bt_event_decode(t, p, i < 2 ? 5 : 6, v, why,
						  sizeof(why)),
			     -BT_ERRNO_FORMAT));
		cr_assert(ne(ptr, strstr(why, "claims more"), NULL), "%s", why);
		free(p);
	}
}
