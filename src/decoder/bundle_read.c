// SPDX-License-Identifier: BSD-3-Clause
/*
 * The bundle reader: btrail.json, the byte order and uuid of our own TSDL
 * metadata, and the stream files, decoded with the bt.* table of
 * <btrail/events.h> (the same table the writer derived the metadata
 * from). Everything is hostile: every size and count is checked against
 * the packet and the file before it is used, and every refusal names the
 * file, the byte offset and the problem.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <uuid/uuid.h>

#include <btrail/bundle.h>
#include <btrail/errno.h>
#include <btrail/events.h>

#include "common/log.h"
#include "common/utf8.h"

#define JSON_MAX	(64u << 20)
#define METADATA_MAX	(4u << 20)
#define PACKET_MAX	(512ull << 20)
#define STREAMS_MAX	65536u

struct rstream {
	char *path;
	uint32_t slot;
	int fd;
	uint64_t size;
	uint64_t off;		/* file offset of the next packet */
	uint64_t pkt_off;	/* file offset of the packet loaded */
	unsigned char *pkt;
	size_t pkt_cap, pkt_len, pos;
	uint64_t ts_begin, ts_end, last_ts;
	uint64_t prev_seq;
	uint64_t npkts;		/* packets loaded since the start */
	uint64_t want_pkts;	/* what btrail.json says, when it says */
	bool have_want;
	int err;
	struct bt_bundle_stream_info info;
};

struct bt_bundle {
	char *dir;
	char *json;
	json_object *root;
	bool be;
	unsigned char uuid[16];
	struct rstream *s;
	uint32_t ns;
};

__attribute__((format(printf, 3, 4)))
static int bad(const char *file, uint64_t off, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_warn("%s: offset %" PRIu64 ": %s", file, off, msg);
	return -BT_ERRNO_FORMAT;
}

/* Read all of small file @path (at most @max bytes) NUL-terminated. */
static int slurp(const char *path, size_t max, char **out, size_t *len)
{
	struct stat sb;
	char *p;
	ssize_t n;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		err = S_ISDIR(sb.st_mode) ? -EISDIR : -EINVAL;
		close(fd);
		return err;
	}
	if ((uint64_t)sb.st_size > max) {
		close(fd);
		return bad(path, max, "file larger than %zu bytes", max);
	}
	p = malloc((size_t)sb.st_size + 1);
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)sb.st_size &&
	       (n = read(fd, p + got, (size_t)sb.st_size - got)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			free(p);
			close(fd);
			return err;
		}
		got += (size_t)n;
	}
	close(fd);
	p[got] = 0;
	*out = p;
	*len = got;
	return 0;
}

static int read_json(struct bt_bundle *b)
{
	char path[PATH_MAX];
	struct json_tokener *tok;
	json_object *root, *o;
	size_t len;
	int err;

	snprintf(path, sizeof(path), "%s/btrail.json", b->dir);
	err = slurp(path, JSON_MAX, &b->json, &len);
	if (err == -ENOENT)
		return bad(path, 0, "missing: not a btrail bundle");
	if (err < 0) {
		if (err != -BT_ERRNO_FORMAT)
			pr_warn("%s: %s", path, strerror(-err));
		return err;
	}
	if (strlen(b->json) != len)
		return bad(path, strlen(b->json), "NUL byte in JSON");
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	root = json_tokener_parse_ex(tok, b->json, (int)len);
	if (!root) {
		enum json_tokener_error je = json_tokener_get_error(tok);

		err = bad(path, json_tokener_get_parse_end(tok), "%s",
			  je == json_tokener_continue ? "truncated JSON" :
			  json_tokener_error_desc(je));
		json_tokener_free(tok);
		return err;
	}
	if (json_tokener_get_parse_end(tok) < len &&
	    b->json[json_tokener_get_parse_end(tok) +
		    strspn(b->json + json_tokener_get_parse_end(tok),
			   " \t\r\n")]) {
		err = bad(path, json_tokener_get_parse_end(tok),
			  "bytes after the JSON object");
		goto out;
	}
	if (!json_object_is_type(root, json_type_object)) {
		err = bad(path, 0, "not a JSON object");
		goto out;
	}
	if (!json_object_object_get_ex(root, "format", &o) ||
	    !json_object_is_type(o, json_type_string) ||
	    strcmp(json_object_get_string(o), "btrail-bundle")) {
		err = bad(path, 0, "\"format\" is not \"btrail-bundle\"");
		goto out;
	}
	if (!json_object_object_get_ex(root, "format_version", &o) ||
	    !json_object_is_type(o, json_type_int) ||
	    json_object_get_int64(o) != BT_BUNDLE_FORMAT_VERSION) {
		err = bad(path, 0, "unsupported \"format_version\" (want %u)",
			  BT_BUNDLE_FORMAT_VERSION);
		goto out;
	}
	b->root = root;
	root = NULL;
	err = 0;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return err;
}

/* The value of "key = VALUE;" in @blk..@end, or NULL. */
static const char *tsdl_attr(const char *blk, const char *end,
			     const char *key, size_t *vlen)
{
	size_t kl = strlen(key);

	for (const char *p = blk; p && p + kl < end; p++) {
		const char *v, *semi;

		p = memmem(p, (size_t)(end - p), key, kl);
		if (!p)
			return NULL;
		if (p > blk && (p[-1] != '\t' && p[-1] != ' ' && p[-1] != '\n'))
			continue;
		v = p + kl;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		if (v >= end || *v != '=')
			continue;
		v++;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		semi = memchr(v, ';', (size_t)(end - v));
		if (!semi)
			return NULL;
		*vlen = (size_t)(semi - v);
		return v;
	}
	return NULL;
}

static int read_metadata(struct bt_bundle *b)
{
	static const char hdr[] = "/* CTF 1.8 */";
	char path[PATH_MAX], u[37];
	const char *trace, *end, *v;
	size_t len, vl;
	char *m;
	int err;

	snprintf(path, sizeof(path), "%s/ctf/metadata", b->dir);
	err = slurp(path, METADATA_MAX, &m, &len);
	if (err == -ENOENT)
		return bad(path, 0, "missing");
	if (err < 0) {
		if (err != -BT_ERRNO_FORMAT)
			pr_warn("%s: %s", path, strerror(-err));
		return err;
	}
	if (len < sizeof(hdr) - 1 || memcmp(m, hdr, sizeof(hdr) - 1)) {
		err = bad(path, 0, "not plain-text TSDL (no \"%s\")", hdr);
		goto out;
	}
	trace = strstr(m, "\ntrace {");
	end = trace ? strstr(trace, "\n};") : NULL;
	if (!trace || !end) {
		err = bad(path, trace ? (uint64_t)(trace - m) : len,
			  "no trace block");
		goto out;
	}
	v = tsdl_attr(trace, end, "byte_order", &vl);
	if (v && vl == 2 && !memcmp(v, "le", 2)) {
		b->be = false;
	} else if (v && vl == 2 && !memcmp(v, "be", 2)) {
		b->be = true;
	} else {
		err = bad(path, v ? (uint64_t)(v - m) : (uint64_t)(trace - m),
			  "trace byte_order is not le or be");
		goto out;
	}
	v = tsdl_attr(trace, end, "uuid", &vl);
	if (!v || vl != 38 || v[0] != '"' || v[37] != '"') {
		err = bad(path, v ? (uint64_t)(v - m) : (uint64_t)(trace - m),
			  "trace uuid missing or malformed");
		goto out;
	}
	memcpy(u, v + 1, 36);
	u[36] = 0;
	if (uuid_parse(u, b->uuid)) {
		err = bad(path, (uint64_t)(v - m), "bad uuid \"%s\"", u);
		goto out;
	}
	if (!strstr(m, "\tevent.header := struct {\n\t\tuint16_t id;\n"
		    "\t\tuint64_clock_t timestamp;\n\t};\n") ||
	    !strstr(m, "\tevent.context := struct {\n\t\tuint64_t kmes_ts;\n"
		    "\t\tuint64_t seq;\n\t\tuint16_t kmes_cpu;\n\t};\n")) {
		err = bad(path, 0, "not a btrail bundle's event header");
		goto out;
	}
	/*
	 * The events are decoded with our table, so every class of it must
	 * be declared with its id, and the text must end where ours does:
	 * a cut metadata would fail other CTF readers.
	 */
	{
		const struct bt_event_type *t;
		size_t nt, e = len;
		char want[96];

		t = bt_event_types(&nt);
		for (size_t i = 0; i < nt; i++) {
			snprintf(want, sizeof(want),
				 "\tname = \"%s\";\n\tid = %u;\n", t[i].name,
				 t[i].id);
			if (!strstr(m, want)) {
				err = bad(path, len,
					  "no event class %s (id %u)",
					  t[i].name, t[i].id);
				goto out;
			}
		}
		snprintf(want, sizeof(want), "\tname = \"kmes.raw\";\n"
			 "\tid = %u;\n", BT_BUNDLE_EVID_RAW);
		if (!strstr(m, want)) {
			err = bad(path, len, "no event class kmes.raw");
			goto out;
		}
		while (e && (m[e - 1] == '\n' || m[e - 1] == ' '))
			e--;
		if (e < 3 || memcmp(m + e - 3, "\n};", 3)) {
			err = bad(path, e, "truncated: does not end with a "
				  "closed block");
			goto out;
		}
	}
	err = 0;
out:
	free(m);
	return err;
}

static uint64_t get(const struct bt_bundle *b, const unsigned char *p,
		    unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (b->be ? 8 * (n - 1 - i) : 8 * i);
	return v;
}

static int pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	unsigned char *p = buf;

	while (n) {
		ssize_t k = pread(fd, p, n, (off_t)off);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return -EIO;	/* the file shrank under us */
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

static int load_packet(struct bt_bundle *b, struct rstream *s)
{
	unsigned char h[BT_BUNDLE_PKT_PROLOGUE];
	const unsigned char *c = h + BT_BUNDLE_PKT_HEADER;
	uint64_t left = s->size - s->off, content, psize, magic;
	int err;

	if (left < BT_BUNDLE_PKT_PROLOGUE)
		return bad(s->path, s->off, "truncated packet header "
			   "(%" PRIu64 " bytes left, need %u)", left,
			   BT_BUNDLE_PKT_PROLOGUE);
	err = pread_full(s->fd, h, sizeof(h), s->off);
	if (err)
		return err;
	magic = get(b, h, 4);
	if (magic != BT_BUNDLE_CTF_MAGIC)
		return bad(s->path, s->off, "bad packet magic 0x%08" PRIx64,
			   magic);
	if (memcmp(h + 4, b->uuid, 16))
		return bad(s->path, s->off + 4,
			   "packet uuid is not the trace's");
	if (get(b, h + 20, 4) != 0)
		return bad(s->path, s->off + 20, "unknown stream_id %" PRIu64,
			   get(b, h + 20, 4));
	s->ts_begin = get(b, c, 8);
	s->ts_end = get(b, c + 8, 8);
	content = get(b, c + 16, 8);
	psize = get(b, c + 24, 8);
	if (content % 8 || psize % 8 || content > psize ||
	    content < 8ull * BT_BUNDLE_PKT_PROLOGUE)
		return bad(s->path, s->off + BT_BUNDLE_PKT_HEADER + 16,
			   "bad packet sizes: content %" PRIu64 " bits, "
			   "packet %" PRIu64 " bits", content, psize);
	if (psize / 8 > left || psize / 8 > PACKET_MAX)
		return bad(s->path, s->off + BT_BUNDLE_PKT_HEADER + 24,
			   "packet of %" PRIu64 " bytes past the end of the "
			   "file (%" PRIu64 " bytes left)", psize / 8, left);
	if (s->ts_begin > s->ts_end)
		return bad(s->path, s->off + BT_BUNDLE_PKT_HEADER,
			   "packet ends before it begins");
	if (get(b, c + 52, 4) != s->slot)
		return bad(s->path, s->off + BT_BUNDLE_PKT_HEADER + 52,
			   "packet of slot %" PRIu64 " in the file of slot %u",
			   get(b, c + 52, 4), s->slot);
	if (s->off == 0) {
		s->info.cpu_id = (uint32_t)get(b, c + 48, 4);
		s->info.kind = (uint32_t)get(b, c + 56, 4);
		s->info.tid = (uint32_t)get(b, c + 60, 4);
	}
	if (content / 8 > s->pkt_cap) {
		unsigned char *p = realloc(s->pkt, content / 8);

		if (!p)
			return -ENOMEM;
		s->pkt = p;
		s->pkt_cap = content / 8;
	}
	memcpy(s->pkt, h, sizeof(h));
	err = pread_full(s->fd, s->pkt + sizeof(h),
			 content / 8 - sizeof(h), s->off + sizeof(h));
	if (err)
		return err;
	s->pkt_off = s->off;
	s->npkts++;
	s->pkt_len = content / 8;
	s->pos = BT_BUNDLE_PKT_PROLOGUE;
	s->off += psize / 8;
	return 0;
}

/* The fields of one event at s->pkt + s->pos, bounded by s->pkt_len. */
static int parse_fields(struct bt_bundle *b, struct rstream *s,
			const struct bt_event_type *t,
			struct bt_bundle_event *ev)
{
	size_t end = s->pkt_len;

	for (uint32_t i = 0; i < t->nfields; i++) {
		const struct bt_event_field *f = &t->fields[i];
		struct bt_event_value *v = &ev->v[i];
		unsigned char *p = s->pkt + s->pos;
		uint64_t at = s->pkt_off + s->pos;
		size_t left = end - s->pos, n;
		unsigned w = 0;

		switch (f->kind) {
		case BT_FK_U64:
		case BT_FK_I64:
			w = 8;
			break;
		case BT_FK_U32:
		case BT_FK_I32:
			w = 4;
			break;
		case BT_FK_BOOL:
			w = 1;
			break;
		default:
			break;
		}
		if (w) {
			if (left < w)
				return bad(s->path, at, "%s.%s: truncated",
					   t->name, f->name);
			v->u = get(b, p, w);
			if (f->kind == BT_FK_I32)
				v->i = (int32_t)(uint32_t)v->u;
			else if (f->kind == BT_FK_I64)
				v->i = (int64_t)v->u;
			if (f->kind == BT_FK_I32 || f->kind == BT_FK_I64)
				v->u = 0;
			if (f->kind == BT_FK_BOOL && v->u > 1)
				return bad(s->path, at, "%s.%s: bool %" PRIu64,
					   t->name, f->name, v->u);
			s->pos += w;
			continue;
		}
		if (f->kind == BT_FK_STR) {
			unsigned char *z = memchr(p, 0, left);

			if (!z)
				return bad(s->path, at, "%s.%s: string runs "
					   "past the packet", t->name,
					   f->name);
			if (!bt_utf8_valid(p, (size_t)(z - p)))
				return bad(s->path, at, "%s.%s: not UTF-8",
					   t->name, f->name);
			v->p = p;
			v->len = (size_t)(z - p);
			s->pos += v->len + 1;
			continue;
		}
		/* BYTES and RECS: a u32 length, then the bytes. */
		if (left < 4)
			return bad(s->path, at, "%s.%s: truncated length",
				   t->name, f->name);
		n = (size_t)get(b, p, 4);
		left -= 4;
		if (f->kind == BT_FK_RECS) {
			if (n > left / f->rec_size)
				return bad(s->path, at, "%s.%s: %zu records "
					   "past the packet", t->name,
					   f->name, n);
			n *= f->rec_size;
		} else if (n > left) {
			return bad(s->path, at, "%s.%s: %zu bytes past the "
				   "packet", t->name, f->name, n);
		}
		v->p = p + 4;
		v->len = n;
		/* Records are little-endian in memory, as events.h says. */
		if (f->kind == BT_FK_RECS && b->be) {
			for (size_t k = 0; k < n; k += 8)
				for (int x = 0; x < 4; x++) {
					unsigned char tmp = p[4 + k + x];

					p[4 + k + x] = p[4 + k + 7 - x];
					p[4 + k + 7 - x] = tmp;
				}
		}
		s->pos += 4 + n;
	}
	return 0;
}

static int parse_event(struct bt_bundle *b, struct rstream *s,
		       struct bt_bundle_event *ev)
{
	const unsigned char *p = s->pkt + s->pos;
	uint64_t at = s->pkt_off + s->pos, ts;
	size_t left = s->pkt_len - s->pos;
	int err;

	memset(ev, 0, sizeof(*ev));
	if (left < BT_BUNDLE_EV_HEADER)
		return bad(s->path, at, "truncated event header "
			   "(%zu bytes left in the packet)", left);
	ev->offset = at;
	ev->id = (uint16_t)get(b, p, 2);
	ts = get(b, p + 2, 8);
	ev->timestamp = get(b, p + 10, 8);
	ev->sequence = get(b, p + 18, 8);
	ev->cpu_id = (uint16_t)get(b, p + 26, 2);
	if (ts < s->ts_begin || ts > s->ts_end || ts < s->last_ts)
		return bad(s->path, at + 2, "event time %" PRIu64 " outside "
			   "its packet [%" PRIu64 ", %" PRIu64 "] or going "
			   "back", ts, s->ts_begin, s->ts_end);
	if (!ev->sequence || ev->sequence <= s->prev_seq)
		return bad(s->path, at + 18, "sequence %" PRIu64 " after %"
			   PRIu64, ev->sequence, s->prev_seq);
	s->pos += BT_BUNDLE_EV_HEADER;
	if (ev->id < BT_EVID__COUNT) {
		ev->type = &bt_event_types(NULL)[ev->id];
		ev->type_name = ev->type->name;
		if (ev->type->nfields > BT_BUNDLE_MAX_FIELDS)
			return -BT_ERRNO_INTERNAL;
		err = parse_fields(b, s, ev->type, ev);
		if (err)
			return err;
	} else if (ev->id == BT_BUNDLE_EVID_RAW) {
		unsigned char *q = s->pkt + s->pos, *z;
		size_t l = s->pkt_len - s->pos, n;

		z = memchr(q, 0, l);
		if (!z)
			return bad(s->path, at, "kmes.raw: type string runs "
				   "past the packet");
		ev->type_name = (const char *)q;
		l -= (size_t)(z - q) + 1;
		q = z + 1;
		if (l < 4)
			return bad(s->path, at, "kmes.raw: truncated length");
		n = (size_t)get(b, q, 4);
		if (n > l - 4)
			return bad(s->path, at, "kmes.raw: %zu bytes past "
				   "the packet", n);
		ev->raw = q + 4;
		ev->raw_len = n;
		s->pos = (size_t)(q + 4 + n - s->pkt);
	} else {
		return bad(s->path, at, "unknown event id %u", ev->id);
	}
	ev->gap = ev->sequence - s->prev_seq - 1;
	s->prev_seq = ev->sequence;
	s->last_ts = ts;
	return 0;
}

int bt_bundle__next(struct bt_bundle *b, uint32_t i,
		    struct bt_bundle_event *ev)
{
	struct rstream *s;
	int err;

	if (!b || !ev || i >= b->ns)
		return -EINVAL;
	s = &b->s[i];
	if (s->err)
		return s->err;
	while (s->pos >= s->pkt_len) {
		if (s->off >= s->size) {
			/* Cut at a packet boundary: only the count tells. */
			if (s->have_want && s->npkts != s->want_pkts)
				return s->err = bad(s->path, s->size,
					"stream ends after %" PRIu64 " packets;"
					" btrail.json says %" PRIu64,
					s->npkts, s->want_pkts);
			return 0;
		}
		err = load_packet(b, s);
		if (err)
			return s->err = err;
	}
	err = parse_event(b, s, ev);
	if (err)
		return s->err = err;
	ev->stream = i;
	return 1;
}

int bt_bundle__rewind(struct bt_bundle *b, uint32_t i)
{
	struct rstream *s;

	if (!b || i >= b->ns)
		return -EINVAL;
	s = &b->s[i];
	s->off = 0;
	s->pos = s->pkt_len = 0;
	s->prev_seq = 0;
	s->last_ts = 0;
	s->npkts = 0;
	s->err = 0;
	return 0;
}

static int slot_of(const char *name, uint32_t *slot)
{
	const char *d = name + 7;
	uint64_t v = 0;

	if (strncmp(name, "stream_", 7) || !*d || strlen(d) > 5)
		return -1;
	for (; *d; d++) {
		if (*d < '0' || *d > '9')
			return -1;
		v = v * 10 + (uint64_t)(*d - '0');
	}
	if (v >= STREAMS_MAX)
		return -1;
	*slot = (uint32_t)v;
	return 0;
}

static int cmp_slot(const void *a, const void *b)
{
	const struct rstream *x = a, *y = b;

	return x->slot < y->slot ? -1 : x->slot > y->slot;
}

static int list_streams(struct bt_bundle *b)
{
	struct dirent *e;
	char ctf[PATH_MAX];
	DIR *d;
	int err = 0;

	snprintf(ctf, sizeof(ctf), "%s/ctf", b->dir);
	d = opendir(ctf);
	if (!d)
		return bad(ctf, 0, "cannot open the CTF directory: %s",
			   strerror(errno));
	while ((e = readdir(d))) {
		struct rstream *s, *p;
		struct stat sb;
		uint32_t slot;
		size_t pl;

		if (slot_of(e->d_name, &slot))
			continue;
		if (b->ns >= STREAMS_MAX) {
			err = bad(ctf, 0, "too many stream files");
			break;
		}
		p = realloc(b->s, (b->ns + 1) * sizeof(*p));
		if (!p) {
			err = -ENOMEM;
			break;
		}
		b->s = p;
		s = &p[b->ns];
		memset(s, 0, sizeof(*s));
		s->fd = -1;
		s->slot = slot;
		b->ns++;
		pl = strlen(ctf) + strlen(e->d_name) + 2;
		s->path = malloc(pl);
		if (!s->path) {
			err = -ENOMEM;
			break;
		}
		snprintf(s->path, pl, "%s/%s", ctf, e->d_name);
		s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
		if (s->fd < 0 || fstat(s->fd, &sb) < 0) {
			err = -errno;
			pr_warn("%s: %s", s->path, strerror(errno));
			break;
		}
		if (!S_ISREG(sb.st_mode)) {
			err = bad(s->path, 0, "not a regular file");
			break;
		}
		s->size = (uint64_t)sb.st_size;
		s->info.slot = slot;
		s->info.size = s->size;
	}
	closedir(d);
	if (err)
		return err;
	if (!b->ns)
		return bad(ctf, 0, "no stream_<slot> files");
	qsort(b->s, b->ns, sizeof(*b->s), cmp_slot);
	/* The first packet of each says which ring it was. */
	for (uint32_t i = 0; i < b->ns; i++) {
		struct rstream *s = &b->s[i];

		if (!s->size)
			return bad(s->path, 0, "empty stream file");
		err = load_packet(b, s);
		if (err)
			return err;
		bt_bundle__rewind(b, i);
	}
	return 0;
}

/* The packet count of each ring that btrail.json states. */
static void want_packets(struct bt_bundle *b)
{
	json_object *rings, *r, *v;

	if (!json_object_object_get_ex(b->root, "rings", &rings) ||
	    !json_object_is_type(rings, json_type_array))
		return;
	for (size_t k = 0; k < json_object_array_length(rings); k++) {
		int64_t slot, n;

		r = json_object_array_get_idx(rings, k);
		if (!json_object_object_get_ex(r, "slot", &v) ||
		    !json_object_is_type(v, json_type_int))
			continue;
		slot = json_object_get_int64(v);
		if (!json_object_object_get_ex(r, "packets", &v) ||
		    !json_object_is_type(v, json_type_int))
			continue;
		n = json_object_get_int64(v);
		for (uint32_t i = 0; i < b->ns && n >= 0; i++) {
			if (b->s[i].slot == (uint64_t)slot) {
				b->s[i].want_pkts = (uint64_t)n;
				b->s[i].have_want = true;
			}
		}
	}
}

int bt_bundle__open(const char *dir, struct bt_bundle **out)
{
	struct bt_bundle *b;
	struct stat sb;
	int err;

	if (!dir || !out)
		return -EINVAL;
	*out = NULL;
	if (stat(dir, &sb) < 0)
		return -errno;
	if (!S_ISDIR(sb.st_mode))
		return -ENOTDIR;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->dir = strdup(dir);
	if (!b->dir) {
		free(b);
		return -ENOMEM;
	}
	err = read_json(b);
	if (!err)
		err = read_metadata(b);
	if (!err)
		err = list_streams(b);
	if (!err)
		want_packets(b);
	if (err) {
		bt_bundle__close(b);
		return err;
	}
	*out = b;
	return 0;
}

void bt_bundle__close(struct bt_bundle *b)
{
	if (!b)
		return;
	for (uint32_t i = 0; i < b->ns; i++) {
		if (b->s[i].fd >= 0)
			close(b->s[i].fd);
		free(b->s[i].path);
		free(b->s[i].pkt);
	}
	free(b->s);
	json_object_put(b->root);
	free(b->json);
	free(b->dir);
	free(b);
}

const char *bt_bundle__json(const struct bt_bundle *b)
{
	return b ? b->json : NULL;
}

bool bt_bundle__big_endian(const struct bt_bundle *b)
{
	return b && b->be;
}

uint32_t bt_bundle__streams(const struct bt_bundle *b)
{
	return b ? b->ns : 0;
}

int bt_bundle__stream_info(const struct bt_bundle *b, uint32_t i,
			   struct bt_bundle_stream_info *info)
{
	if (!b || !info || i >= b->ns)
		return -EINVAL;
	*info = b->s[i].info;
	return 0;
}
