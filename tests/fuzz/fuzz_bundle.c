// SPDX-License-Identifier: BSD-3-Clause
/*
 * The bundle reader (bt_bundle__open/next) on hostile files. At start a
 * real bundle is written (one ring holding an event of every bt.* type,
 * through bt_bundle_write()); each input then replaces one of its files:
 * the first byte picks which (modulo 3: ctf/stream_0, ctf/metadata,
 * btrail.json), the rest is its content. The other two stay valid.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <btrail/bundle.h>
#include <btrail/events.h>
#include <btrail/kmes.h>

#include "fuzz_util.h"

static const char *const files[] = { "ctf/stream_0", "ctf/metadata",
				      "btrail.json" };
#define NFILES (sizeof(files) / sizeof(files[0]))

static void *orig[NFILES];
static size_t orig_len[NFILES];
static char work[300];

static void emit_all(struct bt_kmes_session *ks)
{
	size_t n;
	const struct bt_event_type *t = bt_event_types(&n);
	static const unsigned char rec[48] = { 0x10, 0x20, 0x30 };

	for (size_t i = 0; i < n; i++) {
		struct bt_event_value v[64] = { { 0 } };
		unsigned char buf[1024];
		long len;

		for (uint32_t f = 0; f < t[i].nfields && f < 64; f++) {
			const struct bt_event_field *fd = &t[i].fields[f];

			v[f].u = fd->kind == BT_FK_BOOL ? 1 : 0x1000 + f;
			v[f].i = -(int64_t)f;
			if (fd->kind == BT_FK_STR) {
				v[f].p = "fuzz";
				v[f].len = 4;
			} else if (fd->kind == BT_FK_BYTES) {
				v[f].p = rec;
				v[f].len = 7;
			} else if (fd->kind == BT_FK_RECS &&
				   2 * fd->rec_size <= sizeof(rec)) {
				v[f].p = rec;
				v[f].len = 2 * fd->rec_size;
			}
		}
		len = bt_event_encode(&t[i], v, buf, sizeof(buf));
		if (len > 0 && kmes_emit(ks, 0, t[i].name,
					 (uint16_t)strlen(t[i].name), buf,
					 (uint32_t)len)) {
			perror("fuzz: kmes_emit");
			abort();
		}
	}
}

static void make_template(void)
{
	struct bt_kmes_session_opts so = { .sz = sizeof(so),
					   .capacity = 65536, .slots = 1 };
	char name[64], tmpl[300], path[400];
	struct bt_kmes_session *ks;

	snprintf(name, sizeof(name), "fuzz-bundle-%d", (int)getpid());
	snprintf(tmpl, sizeof(tmpl), "%s/tmpl", fz_dir());
	bt_kmes_session__destroy(name, true);
	ks = bt_kmes_session__create(name, &so);
	if (!ks) {
		perror("fuzz: session");
		abort();
	}
	emit_all(ks);
	bt_kmes_session__close(ks);
	if (bt_bundle_write(name, tmpl, NULL)) {
		fprintf(stderr, "fuzz: cannot write the template bundle\n");
		abort();
	}
	bt_kmes_session__destroy(name, true);
	for (size_t i = 0; i < NFILES; i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpl, files[i]);
		orig[i] = fz_read(path, &orig_len[i]);
		if (!orig[i]) {
			fprintf(stderr, "fuzz: no %s\n", path);
			abort();
		}
		/* Seeds: each file as it is. */
		unsigned char *s = malloc(orig_len[i] + 1);

		s[0] = (unsigned char)i;
		memcpy(s + 1, orig[i], orig_len[i]);
		snprintf(path, sizeof(path), "valid-%zu", i);
		fz_seed(path, s, orig_len[i] + 1);
		free(s);
	}
	snprintf(work, sizeof(work), "%s/b", fz_dir());
	mkdir(work, 0700);
	snprintf(path, sizeof(path), "%s/ctf", work);
	mkdir(path, 0700);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_quiet();
	make_template();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bt_bundle_stream_info info;
	struct bt_bundle_event ev;
	struct bt_bundle *b;
	char path[400];
	size_t pick;

	if (!size)
		return 0;
	pick = data[0] % NFILES;
	for (size_t i = 0; i < NFILES; i++) {
		snprintf(path, sizeof(path), "%s/%s", work, files[i]);
		if (i == pick)
			fz_write(path, data + 1, size - 1);
		else
			fz_write(path, orig[i], orig_len[i]);
	}
	if (bt_bundle__open(work, &b))
		return 0;
	(void)bt_bundle__json(b);
	(void)bt_bundle__big_endian(b);
	for (uint32_t i = 0; i < bt_bundle__streams(b); i++) {
		int r;

		if (bt_bundle__stream_info(b, i, &info))
			abort();
		for (int pass = 0; pass < 2; pass++) {
			while ((r = bt_bundle__next(b, i, &ev)) == 1) {
				if (ev.type && ev.type->nfields >
					       BT_BUNDLE_MAX_FIELDS)
					abort();
			}
			if (bt_bundle__rewind(b, i))
				break;
		}
	}
	bt_bundle__close(b);
	return 0;
}
