/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internal to the bundle writer: the TSDL metadata text and btrail.json,
 * kept apart from the stream writer (bundle_write.c).
 */
#ifndef BT_COLLECTOR_BUNDLE_INT_H
#define BT_COLLECTOR_BUNDLE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <btrail/bundle.h>
#include <btrail/events.h>
#include <btrail/kmes.h>

/* Write the TSDL metadata of a bundle to @f. @uuid is 36 chars + NUL. */
int bw_metadata_write(FILE *f, bool big_endian, const char *uuid,
		      const char *session);

struct bw_json;	/* btrail.json being built */

struct bw_json *bw_json__new(const char *session, const char *uuid,
			     const struct bt_bundle_write_opts *o);
void bw_json__free(struct bw_json *j);
/* Note an event of the bt.* table (clock, mmap, trigger matter). */
void bw_json__event(struct bw_json *j, const struct bt_event_type *t,
		    const struct bt_event_value *v);
/* Per ring: what the reader says, and what was written. */
struct bw_ring_counts {
	uint64_t events;	/* events written */
	uint64_t raw;		/* of which kept as raw (unknown type) */
	uint64_t missed;	/* sequences missing (gaps) */
	uint64_t gaps;		/* times a gap happened */
	uint64_t first_seq, last_seq;
	uint64_t corrupt;
	uint64_t packets;
};
void bw_json__ring(struct bw_json *j, const struct bt_kmes_slot_stats *st,
		   const struct bw_ring_counts *c, const char *file);
/* Copy images (with_binaries) under @dir and write @dir/btrail.json. */
int bw_json__finish(struct bw_json *j, const char *dir);

/* The build-id of ELF file @path into @id (@cap bytes); its length or <0. */
long bw_elf_build_id(const char *path, unsigned char *id, size_t cap);

#endif /* BT_COLLECTOR_BUNDLE_INT_H */
