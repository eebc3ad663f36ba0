// SPDX-License-Identifier: BSD-3-Clause
/*
 * The bundle writer: every event of every ring of a KMES session becomes
 * a CTF 1.8 event in stream_<slot>, typed from the bt.* table; unknown or
 * undecodable events are kept whole as "kmes.raw". docs/bundle.md
 * describes the layout; the TSDL text is in bundle_meta.c.
 *
 * Every integer is byte-aligned (align = 8), so a packet is a plain
 * concatenation with no padding, and one writer serves both byte orders.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include <btrail/bundle.h>
#include <btrail/errno.h>
#include <btrail/events.h>
#include <btrail/kmes.h>

#include "collector/bundle_int.h"
#include "common/log.h"
#include "common/opts.h"

/* Consecutive corrupt reads after which a ring is given up on. */
#define CORRUPT_GIVE_UP	64

struct buf {
	unsigned char *p;
	size_t len, cap;
	bool be;
	bool oom;
};

static void buf_need(struct buf *b, size_t n)
{
	size_t cap;
	unsigned char *p;

	if (b->oom || n <= b->cap - b->len)
		return;
	cap = b->cap ? b->cap : 4096;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2) {
			b->oom = true;
			return;
		}
		cap *= 2;
	}
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void put_bytes(struct buf *b, const void *p, size_t n)
{
	buf_need(b, n);
	if (b->oom)
		return;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_uint(struct buf *b, uint64_t v, unsigned bytes)
{
	unsigned char t[8];

	for (unsigned i = 0; i < bytes; i++) {
		unsigned sh = b->be ? 8 * (bytes - 1 - i) : 8 * i;

		t[i] = (unsigned char)(v >> sh);
	}
	put_bytes(b, t, bytes);
}

static void set_uint(struct buf *b, size_t off, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++) {
		unsigned sh = b->be ? 8 * (bytes - 1 - i) : 8 * i;

		b->p[off + i] = (unsigned char)(v >> sh);
	}
}

struct stream {
	bool used;
	uint32_t slot;
	int fd;
	char file[32];
	struct buf pkt;
	uint64_t nev_pkt, ts_begin, ts_end, last_ts;
	uint64_t prev_seq;
	uint64_t pkt_seq;
	uint32_t cpu_id, kind, tid;
	struct bw_ring_counts c;
	unsigned corrupt_run;
};

struct writer {
	struct bt_bundle_write_opts o;
	const char *dir;
	unsigned char uuid[16];
	struct stream *s;
	uint32_t ns;
	struct buf ev;
	struct bw_json *json;
	uint64_t total;
};

static void pkt_reset(struct writer *w, struct stream *s)
{
	s->pkt.len = 0;
	s->pkt.be = w->o.big_endian;
	put_bytes(&s->pkt, NULL, 0);
	buf_need(&s->pkt, BT_BUNDLE_PKT_PROLOGUE);
	if (!s->pkt.oom) {
		memset(s->pkt.p, 0, BT_BUNDLE_PKT_PROLOGUE);
		s->pkt.len = BT_BUNDLE_PKT_PROLOGUE;
	}
	s->nev_pkt = 0;
}

static int write_full(int fd, const void *p, size_t n)
{
	const unsigned char *q = p;

	while (n) {
		ssize_t k = write(fd, q, n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		q += k;
		n -= (size_t)k;
	}
	return 0;
}

static int pkt_flush(struct writer *w, struct stream *s)
{
	struct buf *b = &s->pkt;
	size_t off = 0;
	int err;

	if (b->oom)
		return -ENOMEM;
	set_uint(b, off, BT_BUNDLE_CTF_MAGIC, 4);
	memcpy(b->p + 4, w->uuid, 16);
	set_uint(b, 20, 0, 4);				/* stream_id */
	off = BT_BUNDLE_PKT_HEADER;
	set_uint(b, off, s->ts_begin, 8);
	set_uint(b, off + 8, s->ts_end, 8);
	/* content_size, packet_size, events_discarded, packet_seq_num */
	set_uint(b, off + 16, (uint64_t)b->len * 8, 8);
	set_uint(b, off + 24, (uint64_t)b->len * 8, 8);
	set_uint(b, off + 32, s->c.missed, 8);
	set_uint(b, off + 40, s->pkt_seq, 8);
	set_uint(b, off + 48, s->cpu_id, 4);
	set_uint(b, off + 52, s->slot, 4);
	set_uint(b, off + 56, s->kind, 4);
	set_uint(b, off + 60, s->tid, 4);
	err = write_full(s->fd, b->p, b->len);
	if (err) {
		pr_warn("bundle: %s/ctf/%s: write: %s", w->dir, s->file,
			strerror(-err));
		return err;
	}
	s->pkt_seq++;
	s->c.packets++;
	pkt_reset(w, s);
	return 0;
}

static struct stream *stream_get(struct writer *w, uint32_t slot,
				 const struct bt_kmes_slot_stats *st, int *err)
{
	struct stream *s;
	char path[PATH_MAX];

	if (slot >= w->ns) {
		uint32_t n = slot + 1;
		struct stream *p = realloc(w->s, n * sizeof(*p));

		if (!p) {
			*err = -ENOMEM;
			return NULL;
		}
		memset(p + w->ns, 0, (n - w->ns) * sizeof(*p));
		w->s = p;
		w->ns = n;
	}
	s = &w->s[slot];
	if (s->used)
		return s;
	s->used = true;
	s->slot = slot;
	s->kind = st ? st->kind : BT_KMES_RING_CPU;
	s->tid = st ? st->tid : 0;
	s->cpu_id = s->kind == BT_KMES_RING_CPU ? slot : UINT32_MAX;
	snprintf(s->file, sizeof(s->file), "stream_%u", slot);
	snprintf(path, sizeof(path), "%s/ctf/%s", w->dir, s->file);
	s->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (s->fd < 0) {
		*err = -errno;
		pr_warn("bundle: %s: %s", path, strerror(errno));
		s->used = false;
		return NULL;
	}
	pkt_reset(w, s);
	return s;
}

/* A STR value holding a NUL cannot be a CTF string: keep it raw. */
static bool values_fit(const struct bt_event_type *t,
		       const struct bt_event_value *v)
{
	for (uint32_t i = 0; i < t->nfields; i++) {
		if (t->fields[i].kind == BT_FK_STR && v[i].len &&
		    memchr(v[i].p, 0, v[i].len))
			return false;
	}
	return true;
}

static void put_fields(struct buf *b, const struct bt_event_type *t,
		       const struct bt_event_value *v)
{
	for (uint32_t i = 0; i < t->nfields; i++) {
		const struct bt_event_field *f = &t->fields[i];

		switch (f->kind) {
		case BT_FK_U64:
			put_uint(b, v[i].u, 8);
			break;
		case BT_FK_I64:
			put_uint(b, (uint64_t)v[i].i, 8);
			break;
		case BT_FK_U32:
			put_uint(b, v[i].u, 4);
			break;
		case BT_FK_I32:
			put_uint(b, (uint64_t)(uint32_t)v[i].i, 4);
			break;
		case BT_FK_BOOL:
			put_uint(b, v[i].u ? 1 : 0, 1);
			break;
		case BT_FK_STR:
			put_bytes(b, v[i].p, v[i].len);
			put_uint(b, 0, 1);
			break;
		case BT_FK_BYTES:
			put_uint(b, v[i].len, 4);
			put_bytes(b, v[i].p, v[i].len);
			break;
		case BT_FK_RECS: {
			size_t n = v[i].len / f->rec_size;

			put_uint(b, n, 4);
			/* The records are little-endian u64s already. */
			if (!b->be) {
				put_bytes(b, v[i].p, n * f->rec_size);
				break;
			}
			for (size_t r = 0; r < n; r++)
				for (uint32_t k = 0; k < f->rec_nfields; k++)
					put_uint(b, bt_event_rec_u64(&v[i],
						 f->rec_size, r, k), 8);
			break;
		}
		}
	}
}

/* The type string as a CTF string: no NUL, valid UTF-8 ('?' otherwise). */
static void put_type_string(struct buf *b, const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];

		put_uint(b, c && c < 0x80 ? c : '?', 1);
	}
	put_uint(b, 0, 1);
}

static int write_event(struct writer *w, const struct bt_kmes_event *ev,
		       const struct bt_kmes_slot_stats *st)
{
	const struct bt_event_type *t;
	struct bt_event_value v[BT_BUNDLE_MAX_FIELDS];
	struct stream *s;
	struct buf *b = &w->ev;
	uint64_t ts;
	int err = 0;

	s = stream_get(w, ev->slot, st, &err);
	if (!s)
		return err;
	b->len = 0;
	b->be = w->o.big_endian;
	t = bt_event_type_find(ev->type, ev->type_len);
	if (t && t->nfields <= BT_BUNDLE_MAX_FIELDS) {
		char why[160];

		memset(v, 0, sizeof(v));
		if (bt_event_decode(t, ev->payload, ev->payload_len, v, why,
				    sizeof(why)) < 0) {
			pr_debug("bundle: slot %u seq %" PRIu64
				 ": kept raw: %s", ev->slot, ev->sequence,
				 why);
			t = NULL;
		} else if (!values_fit(t, v)) {
			t = NULL;
		}
	} else {
		t = NULL;
	}

	ts = ev->timestamp > s->last_ts ? ev->timestamp : s->last_ts;
	put_uint(b, t ? t->id : BT_BUNDLE_EVID_RAW, 2);
	put_uint(b, ts, 8);
	put_uint(b, ev->timestamp, 8);
	put_uint(b, ev->sequence, 8);
	put_uint(b, ev->cpu_id, 2);
	if (t) {
		put_fields(b, t, v);
		bw_json__event(w->json, t, v);
	} else {
		put_type_string(b, ev->type, ev->type_len);
		put_uint(b, ev->payload_len, 4);
		put_bytes(b, ev->payload, ev->payload_len);
		s->c.raw++;
	}
	if (b->oom)
		return -ENOMEM;

	if (s->nev_pkt && s->pkt.len + b->len > BT_BUNDLE_PKT_TARGET) {
		err = pkt_flush(w, s);
		if (err)
			return err;
	}
	if (!s->nev_pkt)
		s->ts_begin = ts;
	s->ts_end = ts;
	s->last_ts = ts;
	if (!s->c.events) {
		s->c.first_seq = ev->sequence;
		s->c.missed += ev->sequence > 1 ? ev->sequence - 1 : 0;
	} else if (ev->sequence > s->prev_seq + 1) {
		s->c.missed += ev->sequence - s->prev_seq - 1;
		s->c.gaps++;
	}
	s->prev_seq = ev->sequence;
	s->c.last_seq = ev->sequence;
	s->c.events++;
	put_bytes(&s->pkt, b->p, b->len);
	s->nev_pkt++;
	return s->pkt.oom ? -ENOMEM : 0;
}

static void progress(struct writer *w, bool done)
{
	if (!w->o.progress || !isatty(STDERR_FILENO))
		return;
	if (done || (w->total & 0xffff) == 0)
		fprintf(stderr, "\rbundle: %" PRIu64 " events%s", w->total,
			done ? "\n" : "");
}

static int drain(struct writer *w, struct bt_kmes_reader *r)
{
	struct bt_kmes_event ev;
	struct bt_kmes_slot_stats st;
	uint64_t corrupt_run = 0;
	int ret, err;

	for (;;) {
		ret = bt_kmes_reader__next(r, &ev);
		if (ret == 0)
			return 0;
		if (ret == -BT_ERRNO_CORRUPT) {
			struct stream *s = stream_get(w, ev.slot, NULL, &err);

			if (!s)
				return err;
			s->c.corrupt++;
			/*
			 * A dead producer never moves past the bad bytes, so
			 * the reader would report them forever: once every
			 * reader call for a while has been a corrupt one (the
			 * good rings are drained), stop.
			 */
			if (++s->corrupt_run == CORRUPT_GIVE_UP)
				pr_warn("bundle: ring %u of the session is "
					"corrupt; what follows is lost",
					ev.slot);
			if (++corrupt_run >= CORRUPT_GIVE_UP *
			    (uint64_t)(w->ns + 1))
				return 0;
			continue;
		}
		if (ret < 0)
			return ret;
		if (bt_kmes_reader__stats(r, ev.slot, &st) < 0)
			memset(&st, 0, sizeof(st));
		err = write_event(w, &ev, &st);
		if (err)
			return err;
		w->s[ev.slot].corrupt_run = 0;
		corrupt_run = 0;
		w->total++;
		progress(w, false);
	}
}

static int rm_cb(const char *path, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static int write_metadata(struct writer *w, const char *session)
{
	char path[PATH_MAX], uuid[37];
	FILE *f;
	int err;

	uuid_unparse_lower(w->uuid, uuid);
	snprintf(path, sizeof(path), "%s/ctf/metadata", w->dir);
	f = fopen(path, "wx");
	if (!f)
		return -errno;
	err = bw_metadata_write(f, w->o.big_endian, uuid, session);
	if (fclose(f) && !err)
		err = -errno;
	return err;
}

int bt_bundle_write(const char *session, const char *out,
		    const struct bt_bundle_write_opts *opts)
{
	struct bt_kmes_reader *r;
	struct stat sb;
	int err;

	if (!session || !out)
		return -EINVAL;
	if (lstat(out, &sb) == 0)
		return -EEXIST;
	r = bt_kmes_reader__new(session, NULL);
	if (!r)
		return -errno;
	err = bt_bundle_write_reader(r, session, out, opts);
	bt_kmes_reader__free(r);
	return err;
}

int bt_bundle_write_reader(struct bt_kmes_reader *r, const char *session,
			   const char *out,
			   const struct bt_bundle_write_opts *opts)
{
	struct writer w = { 0 };
	char tmp[PATH_MAX], sub[PATH_MAX + 8], uuid[37];
	struct stat sb;
	uint32_t n;
	int err;

	if (!r || !session || !out)
		return -EINVAL;
	err = bt_opts_copy(&w.o, sizeof(w.o), opts);
	if (err)
		return err;
	if (!w.o.sysroot)
		w.o.sysroot = "/";
	if (lstat(out, &sb) == 0)
		return -EEXIST;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", out, (int)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;

	if (mkdir(tmp, 0755) < 0)
		return -errno;
	w.dir = tmp;
	snprintf(sub, sizeof(sub), "%s/ctf", tmp);
	if (mkdir(sub, 0755) < 0) {
		err = -errno;
		goto fail;
	}
	uuid_generate(w.uuid);
	uuid_unparse_lower(w.uuid, uuid);
	w.json = bw_json__new(session, uuid, &w.o);
	if (!w.json) {
		err = -ENOMEM;
		goto fail;
	}

	/* Every ring gets its file, even an empty one. */
	n = bt_kmes_reader__slots(r);
	for (uint32_t i = 0; i < n; i++) {
		struct bt_kmes_slot_stats st;

		if (bt_kmes_reader__stats(r, i, &st) < 0)
			continue;
		if (!stream_get(&w, i, &st, &err))
			goto fail;
	}
	err = drain(&w, r);
	if (err)
		goto fail;
	progress(&w, true);

	for (uint32_t i = 0; i < w.ns; i++) {
		struct stream *s = &w.s[i];
		struct bt_kmes_slot_stats st;

		if (!s->used)
			continue;
		if (s->nev_pkt || !s->pkt_seq) {
			err = pkt_flush(&w, s);
			if (err)
				goto fail;
		}
		if (bt_kmes_reader__stats(r, i, &st) < 0) {
			memset(&st, 0, sizeof(st));
			st.slot = i;
		}
		bw_json__ring(w.json, &st, &s->c, s->file);
	}
	err = write_metadata(&w, session);
	if (err)
		goto fail;
	err = bw_json__finish(w.json, tmp);
	if (err)
		goto fail;
	if (rename(tmp, out) < 0) {
		err = -errno;
		goto fail;
	}
	err = 0;
	goto out;
fail:
	nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
out:
	for (uint32_t i = 0; i < w.ns; i++) {
		if (w.s[i].used)
			close(w.s[i].fd);
		free(w.s[i].pkt.p);
	}
	free(w.s);
	free(w.ev.p);
	bw_json__free(w.json);
	return err;
}
