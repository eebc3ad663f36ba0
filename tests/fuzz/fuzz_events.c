// SPDX-License-Identifier: BSD-3-Clause
/*
 * bt_event_decode() on hostile payloads, for every bt.* type. Input: one
 * byte choosing the type (modulo the table), then the msgpack payload.
 * A payload that decodes must encode again (the decoder accepts only
 * what the encoder can write) to the same values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <btrail/events.h>

#include "fuzz_util.h"

#define MAXF 64

static void seeds(void)
{
	size_t n;
	const struct bt_event_type *t = bt_event_types(&n);

	for (size_t i = 0; i < n; i++) {
		struct bt_event_value v[MAXF] = { { 0 } };
		static const unsigned char rec[24] = { 1, 2, 3 };
		unsigned char buf[1024];
		char name[64];
		long len;

		for (uint32_t f = 0; f < t[i].nfields && f < MAXF; f++) {
			v[f].u = t[i].fields[f].kind == BT_FK_BOOL ? 1 : f + 1;
			v[f].i = -(int64_t)f;
			if (t[i].fields[f].kind == BT_FK_STR) {
				v[f].p = "abc";
				v[f].len = 3;
			} else if (t[i].fields[f].kind == BT_FK_BYTES) {
				v[f].p = rec;
				v[f].len = 5;
			} else if (t[i].fields[f].kind == BT_FK_RECS) {
				v[f].p = rec;
				v[f].len = t[i].fields[f].rec_size <= 24 ?
					   t[i].fields[f].rec_size : 0;
			}
		}
		buf[0] = (unsigned char)i;
		len = bt_event_encode(&t[i], v, buf + 1, sizeof(buf) - 1);
		if (len < 0)
			continue;
		snprintf(name, sizeof(name), "%s", t[i].name);
		fz_seed(name, buf, (size_t)len + 1);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	seeds();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n;
	const struct bt_event_type *types = bt_event_types(&n);
	const struct bt_event_type *t;
	struct bt_event_value v[MAXF], w[MAXF];
	static unsigned char buf[1 << 20];
	char why[256];
	long len;

	if (!size)
		return 0;
	t = &types[data[0] % n];
	if (t->nfields > MAXF)
		abort();
	if (bt_event_decode(t, data + 1, size - 1, v, why, sizeof(why)))
		return 0;
	/* Accepted: it must be writable again, to the same values. */
	len = bt_event_encode(t, v, buf, sizeof(buf));
	if (len < 0) {
		fprintf(stderr, "%s: decoded but does not encode (%ld)\n",
			t->name, len);
		abort();
	}
	if (bt_event_decode(t, buf, (size_t)len, w, why, sizeof(why))) {
		fprintf(stderr, "%s: re-encoded payload refused: %s\n",
			t->name, why);
		abort();
	}
	for (uint32_t f = 0; f < t->nfields; f++) {
		if (v[f].u != w[f].u || v[f].i != w[f].i ||
		    v[f].len != w[f].len ||
		    (v[f].len && memcmp(v[f].p, w[f].p, v[f].len))) {
			fprintf(stderr, "%s: field %s changed in a round trip\n",
				t->name, t->fields[f].name);
			abort();
		}
	}
	return 0;
}
