/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Bundles: the capture file. A CTF 1.8 trace directory (TSDL `metadata`,
 * one binary stream file per KMES ring, typed fields from the bt.* event
 * table of <btrail/events.h>), plus `btrail.json` (machine, PT caps, TSC
 * ratio, MTC and nominal frequencies, clock conversion, images with
 * build-ids, trigger) and, with --with-binaries, `images/` holding copies
 * of every mapped binary. babeltrace2 reads them.
 *
 * Errors: negative errno or -BT_ERRNO_FORMAT; the reader logs the file,
 * offset and problem of malformed input.
 */
#ifndef BTRAIL_BUNDLE_H
#define BTRAIL_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <btrail/common.h>
#include <btrail/events.h>
#include <btrail/kmes.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bt_bundle_write_opts {
	size_t sz;
	bool big_endian;	/* write the streams big-endian (tests) */
	bool with_binaries;	/* copy every mapped binary into images/ */
	bool progress;		/* progress lines on stderr */
	const char *sysroot;	/* where to find binaries; NULL: "/" */
	/*
	 * The CPU the trace was recorded on when it is not this machine's
	 * (btrail import): perf's CPUID string "Vendor,family,model,stepping"
	 * (e.g. "GenuineIntel,6,78,3"). The machine section then describes
	 * that CPU and leaves what it cannot know (PT caps, TSC leaves) null.
	 * NULL: this machine.
	 */
	const char *machine_cpuid;
};
#define bt_bundle_write_opts__last_field machine_cpuid

/*
 * bt_bundle_write() - read every event of KMES ring session @session (by
 * name, as kmes_attach() finds it; the producer may be dead) and write
 * bundle directory @out (created; must not exist). Returns 0 or a
 * negative errno (-EEXIST, -ENOENT for no such session, ...).
 */
BT_API int bt_bundle_write(const char *session, const char *out,
			   const struct bt_bundle_write_opts *opts);

/*
 * bt_bundle_write_reader() - the same from a reader the caller made (for
 * instance over rings btraild passed as descriptors); reads it to its end
 * and leaves it open. @session names the capture in the bundle's
 * metadata.
 */
BT_API int bt_bundle_write_reader(struct bt_kmes_reader *r,
				  const char *session, const char *out,
				  const struct bt_bundle_write_opts *opts);

/* ---- The format (docs/bundle.md) ---------------------------------------- */

#define BT_BUNDLE_CTF_MAGIC	0xC1FC1FC1u
#define BT_BUNDLE_FORMAT_VERSION 1u	/* btrail.json "format_version" */
/* Packet header (24 bytes) + packet context (64 bytes), no padding. */
#define BT_BUNDLE_PKT_HEADER	24u	/* magic, uuid[16], stream_id */
#define BT_BUNDLE_PKT_CONTEXT	64u
#define BT_BUNDLE_PKT_PROLOGUE	(BT_BUNDLE_PKT_HEADER + BT_BUNDLE_PKT_CONTEXT)
/*
 * Event header (id u16, timestamp u64: kmes_ts clamped monotonic) and
 * event context (kmes_ts u64, seq u64, kmes_cpu u16), together.
 */
#define BT_BUNDLE_EV_HEADER	28u
/* A packet holds events up to this many bytes (one bigger event alone). */
#define BT_BUNDLE_PKT_TARGET	(256u * 1024u)
/* Event class id of events whose type is not in the bt.* table. */
#define BT_BUNDLE_EVID_RAW	0xFFFFu
/* Most fields of any bt.* type. */
#define BT_BUNDLE_MAX_FIELDS	16u

/* ---- Reading ------------------------------------------------------------ */

struct bt_bundle;	/* opaque */

/* One stream file (one KMES ring), from its first packet's context. */
struct bt_bundle_stream_info {
	uint32_t slot;		/* stream_<slot> */
	uint32_t cpu_id;
	uint32_t kind;		/* enum bt_kmes_ring_kind */
	uint32_t tid;
	uint64_t size;		/* bytes of the file */
};

/*
 * One event. Values point into the reader's packet buffer (RECS records
 * little-endian whatever the stream's byte order, as <btrail/events.h>
 * says); valid until the next bt_bundle__next() on the same bundle.
 */
struct bt_bundle_event {
	uint32_t stream;	/* index, < bt_bundle__streams() */
	uint16_t id;		/* enum bt_event_id or BT_BUNDLE_EVID_RAW */
	uint16_t cpu_id;	/* KMES header's cpu_id */
	uint64_t timestamp;	/* KMES CLOCK_REALTIME ns, as recorded */
	uint64_t sequence;	/* KMES sequence */
	uint64_t gap;		/* sequences missing just before this one */
	uint64_t offset;	/* byte offset of the event in its file */
	const struct bt_event_type *type;	/* NULL for RAW */
	const char *type_name;	/* NUL-terminated */
	struct bt_event_value v[BT_BUNDLE_MAX_FIELDS];	/* type->nfields */
	const void *raw;	/* RAW: the KMES payload */
	size_t raw_len;
};

/*
 * bt_bundle__open() - open bundle directory @dir: read btrail.json and
 * metadata (its byte order and uuid) and list the stream files. Every
 * input is hostile. Returns 0 with *@out set, -ENOENT, -ENOTDIR, or
 * -BT_ERRNO_FORMAT (logged: file, offset, problem).
 */
BT_API int bt_bundle__open(const char *dir, struct bt_bundle **out);
/* NULL is a no-op. */
BT_API void bt_bundle__close(struct bt_bundle *b);
/* btrail.json's text, NUL-terminated (checked to be one JSON object). */
BT_API const char *bt_bundle__json(const struct bt_bundle *b);
BT_API bool bt_bundle__big_endian(const struct bt_bundle *b);
BT_API uint32_t bt_bundle__streams(const struct bt_bundle *b);
/* Returns 0 or -EINVAL. */
BT_API int bt_bundle__stream_info(const struct bt_bundle *b, uint32_t i,
				  struct bt_bundle_stream_info *info);
/*
 * bt_bundle__next() - the next event of stream @i, in file order.
 * Returns 1 with *@ev filled, 0 at the end of the stream, -EINVAL, -EIO,
 * or -BT_ERRNO_FORMAT (logged with file, offset and problem; the stream
 * stays at its error).
 */
BT_API int bt_bundle__next(struct bt_bundle *b, uint32_t i,
			   struct bt_bundle_event *ev);
/* Rewind stream @i to its start. Returns 0 or -EINVAL. */
BT_API int bt_bundle__rewind(struct bt_bundle *b, uint32_t i);

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_BUNDLE_H */
