// SPDX-License-Identifier: BSD-3-Clause
/*
 * perf.data reader: the file, its header, the attr and feature sections,
 * and the public calls. Records are in perfdata_rec.c.
 *
 * Written from the format's description (perf's perf.data-file-format
 * document and the kernel's perf_event.h ABI); no perf code is used. The
 * file is read whole into memory and validated once at open: every size
 * and offset is checked against the buffer before it is used, and a
 * string is only ever handed out after its NUL was found inside it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <btrail/errno.h>

#include "common/bytes.h"
#include "common/log.h"
#include "common/opts.h"
#include "decoder/perfdata_int.h"

#define PD_MAGIC		"PERFILE2"
#define PD_MAGIC_SWAPPED	"2ELIFREP"
#define PD_HDR_SIZE		104u	/* perf_file_header */
#define PD_PIPE_HDR_SIZE	16u	/* perf_pipe_file_header */
#define PD_SECTION_SIZE		16u	/* perf_file_section: offset, size */
#define PD_BUILD_ID_MIN		36u	/* header, pid, 24-byte id area */

int pd_bad(const struct bt_perfdata *pd, uint64_t off, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	pr_warn("perf.data: %s: offset %" PRIu64 ": %s", pd->name, off, why);
	return -BT_ERRNO_FORMAT;
}

int pd_grow(void *arr, size_t *cap, size_t need, size_t elem)
{
	void **p = arr;
	size_t n = *cap ? *cap : 8;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = reallocarray(*p, n, elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

/* ---- Attrs -------------------------------------------------------------- */

int pd_attr_add(struct bt_perfdata *pd, const unsigned char *p,
		uint64_t avail, uint64_t off, const unsigned char *ids,
		uint64_t nr_ids)
{
	struct bt_perf_attr *a;
	uint64_t *v = NULL;
	uint32_t asz;

	if (avail < PD_ATTR_SIZE_VER0)
		return pd_bad(pd, off, "attr of %" PRIu64 " bytes, less than "
			      "the %u of the first perf_event_attr", avail,
			      PD_ATTR_SIZE_VER0);
	asz = bt_le32(p + 4);
	/* Size 0 is how the first ABI version wrote it. */
	if (asz == 0)
		asz = PD_ATTR_SIZE_VER0;
	if (asz < PD_ATTR_SIZE_VER0 || asz > avail)
		return pd_bad(pd, off + 4, "attr.size %u outside [%u, %" PRIu64
			      "]", asz, PD_ATTR_SIZE_VER0, avail);
	if (pd->nr_attrs == PD_MAX_ATTRS)
		return pd_bad(pd, off, "more than %u attrs", PD_MAX_ATTRS);
	if (pd_grow(&pd->attrs, &pd->cap_attrs, pd->nr_attrs + 1,
		    sizeof(*pd->attrs)))
		return -ENOMEM;
	if (nr_ids) {
		v = calloc(nr_ids, sizeof(*v));
		if (!v)
			return -ENOMEM;
		for (uint64_t i = 0; i < nr_ids; i++)
			v[i] = bt_le64(ids + 8 * i);
	}
	a = &pd->attrs[pd->nr_attrs];
	memset(a, 0, sizeof(*a));
	a->type = bt_le32(p);
	a->size = asz;
	a->config = bt_le64(p + 8);
	a->sample_type = bt_le64(p + 24);
	a->read_format = bt_le64(p + 32);
	a->flags = bt_le64(p + 40);
	a->sample_id_all = (a->flags >> PD_SAMPLE_ID_ALL_BIT) & 1;
	a->raw = p;
	a->raw_size = asz;
	a->ids = v;
	a->nr_ids = nr_ids;
	if (pd->first_diff == SIZE_MAX && pd->nr_attrs &&
	    (a->sample_type != pd->attrs[0].sample_type ||
	     a->sample_id_all != pd->attrs[0].sample_id_all))
		pd->first_diff = pd->nr_attrs;
	pd->nr_attrs++;
	return 0;
}

/* The attr section of a seekable file: perf_file_attr entries. */
static int read_attrs(struct bt_perfdata *pd, uint64_t entry, uint64_t off,
		      uint64_t size)
{
	if (entry < PD_ATTR_SIZE_VER0 + PD_SECTION_SIZE || entry > 4096)
		return pd_bad(pd, 16, "attr entry size %" PRIu64 " outside "
			      "[%u, 4096]", entry,
			      PD_ATTR_SIZE_VER0 + PD_SECTION_SIZE);
	if (!pd_fits(off, size, pd->size))
		return pd_bad(pd, 24, "attr section [%" PRIu64 ", +%" PRIu64
			      ") past the end of the file (%" PRIu64 " bytes)",
			      off, size, pd->size);
	if (size % entry)
		return pd_bad(pd, 32, "attr section size %" PRIu64 " not a "
			      "multiple of the entry size %" PRIu64, size,
			      entry);
	for (uint64_t e = off; e < off + size; e += entry) {
		const unsigned char *p = pd->buf + e;
		uint64_t ids_off = bt_le64(p + entry - PD_SECTION_SIZE);
		uint64_t ids_size = bt_le64(p + entry - 8);
		int err;

		if (!pd_fits(ids_off, ids_size, pd->size) || ids_size % 8)
			return pd_bad(pd, e + entry - PD_SECTION_SIZE,
				      "attr ids [%" PRIu64 ", +%" PRIu64 ") "
				      "past the end of the file or not whole "
				      "u64s", ids_off, ids_size);
		err = pd_attr_add(pd, p, entry - PD_SECTION_SIZE, e,
				  pd->buf + ids_off, ids_size / 8);
		if (err)
			return err;
	}
	pd->nr_file_attrs = pd->nr_attrs_now = pd->nr_attrs;
	return 0;
}

/* ---- Features ----------------------------------------------------------- */

int pd_build_id(struct bt_perfdata *pd, uint64_t off, uint64_t size,
		struct bt_perf_build_id *b)
{
	const unsigned char *p = pd->buf + off;
	uint16_t misc;
	uint8_t idsz = 20;

	if (size < PD_BUILD_ID_MIN)
		return pd_bad(pd, off, "build-id record of %" PRIu64 " bytes, "
			      "less than %u", size, PD_BUILD_ID_MIN);
	misc = bt_le16(p + 4);
	if (!memchr(p + PD_BUILD_ID_MIN, 0, size - PD_BUILD_ID_MIN))
		return pd_bad(pd, off + PD_BUILD_ID_MIN,
			      "build-id path not NUL-terminated");
	if (misc & PD_MISC_BUILD_ID_SIZE) {
		idsz = p[12 + 20];
		if (idsz > 20)
			return pd_bad(pd, off + 32, "build-id size %u over 20",
				      idsz);
	}
	memset(b, 0, sizeof(*b));
	b->pid = bt_le32(p + 8);
	b->misc = misc & ~PD_MISC_BUILD_ID_SIZE;
	b->size = idsz;
	memcpy(b->id, p + 12, idsz);
	b->path = (const char *)p + PD_BUILD_ID_MIN;
	return 0;
}

int pd_build_id_add(struct bt_perfdata *pd, const struct bt_perf_build_id *b)
{
	if (pd_grow(&pd->build_ids, &pd->cap_build_ids, pd->nr_build_ids + 1,
		    sizeof(*pd->build_ids)))
		return -ENOMEM;
	pd->build_ids[pd->nr_build_ids++] = *b;
	return 0;
}

/* perf_header_string: u32 length, then that many bytes with a NUL. */
static int feat_string(struct bt_perfdata *pd, uint64_t off, uint64_t size,
		       const char **out)
{
	uint32_t len;

	if (size < 4)
		return pd_bad(pd, off, "string feature of %" PRIu64 " bytes",
			      size);
	len = bt_le32(pd->buf + off);
	if (len > size - 4 || !memchr(pd->buf + off + 4, 0, len))
		return pd_bad(pd, off, "string of length %u does not fit its "
			      "%" PRIu64 "-byte section or has no NUL", len,
			      size);
	*out = (const char *)pd->buf + off + 4;
	return 0;
}

int pd_feature(struct bt_perfdata *pd, uint64_t feat, uint64_t off,
	       uint64_t size)
{
	struct bt_perf_features *f = &pd->feat;
	struct bt_perf_build_id b;
	int err = 0;

	if (feat < BT_PERF_FEAT_MAX)
		f->present[feat / 64] |= 1ull << (feat % 64);
	switch (feat) {
	case BT_PERF_FEAT_BUILD_ID:
		for (uint64_t p = off; p < off + size; ) {
			uint16_t rs;

			if (off + size - p < 8)
				return pd_bad(pd, p, "%" PRIu64 " stray bytes "
					      "after the last build-id",
					      off + size - p);
			rs = bt_le16(pd->buf + p + 6);
			if (rs > off + size - p)
				return pd_bad(pd, p, "build-id record of %u "
					      "bytes past its section's end",
					      rs);
			err = pd_build_id(pd, p, rs, &b);
			if (!err)
				err = pd_build_id_add(pd, &b);
			if (err)
				return err;
			p += rs;
		}
		return 0;
	case BT_PERF_FEAT_HOSTNAME:
		return feat_string(pd, off, size, &f->hostname);
	case BT_PERF_FEAT_OSRELEASE:
		return feat_string(pd, off, size, &f->osrelease);
	case BT_PERF_FEAT_VERSION:
		return feat_string(pd, off, size, &f->version);
	case BT_PERF_FEAT_ARCH:
		return feat_string(pd, off, size, &f->arch);
	case BT_PERF_FEAT_CPUDESC:
		return feat_string(pd, off, size, &f->cpudesc);
	case BT_PERF_FEAT_CPUID:
		return feat_string(pd, off, size, &f->cpuid);
	case BT_PERF_FEAT_NRCPUS:
		if (size < 8)
			return pd_bad(pd, off, "NRCPUS feature of %" PRIu64
				      " bytes", size);
		f->nr_cpus_avail = bt_le32(pd->buf + off);
		f->nr_cpus_online = bt_le32(pd->buf + off + 4);
		return 0;
	default:
		/* The rest are not needed to decode a trace. */
		pr_debug("perf.data: %s: offset %" PRIu64 ": feature %" PRIu64
			 " skipped", pd->name, off, feat);
		return 0;
	}
}

/* The feature section table of a seekable file, after the data. */
static int read_features(struct bt_perfdata *pd, const unsigned char *bits)
{
	uint64_t tab = pd->data_end, nr = 0, i = 0;

	for (unsigned w = 0; w < 4; w++)
		nr += __builtin_popcountll(bt_le64(bits + 8 * w));
	if (!nr)
		return 0;
	if (!pd_fits(tab, nr * PD_SECTION_SIZE, pd->size))
		return pd_bad(pd, tab, "feature table of %" PRIu64 " sections "
			      "past the end of the file (%" PRIu64 " bytes)",
			      nr, pd->size);
	for (uint64_t feat = 0; feat < BT_PERF_FEAT_MAX; feat++) {
		uint64_t s = tab + PD_SECTION_SIZE * i, off, size;
		int err;

		if (!(bt_le64(bits + 8 * (feat / 64)) >> (feat % 64) & 1))
			continue;
		i++;
		off = bt_le64(pd->buf + s);
		size = bt_le64(pd->buf + s + 8);
		if (!pd_fits(off, size, pd->size))
			return pd_bad(pd, s, "feature %" PRIu64 " section [%"
				      PRIu64 ", +%" PRIu64 ") past the end of "
				      "the file", feat, off, size);
		err = pd_feature(pd, feat, off, size);
		if (err)
			return err;
	}
	return 0;
}

/* ---- The file ----------------------------------------------------------- */

static int read_header(struct bt_perfdata *pd)
{
	const unsigned char *h = pd->buf;
	uint64_t hsize, doff, dsize;
	int err;

	if (pd->size < PD_PIPE_HDR_SIZE)
		return pd_bad(pd, 0, "%" PRIu64 " bytes, too short for a "
			      "perf.data header", pd->size);
	if (!memcmp(h, PD_MAGIC_SWAPPED, 8))
		return pd_bad(pd, 0, "written on a machine of the other byte "
			      "order, which is not supported");
	if (memcmp(h, PD_MAGIC, 8))
		return pd_bad(pd, 0, "not a perf.data file (no PERFILE2 "
			      "magic)");
	hsize = bt_le64(h + 8);
	if (hsize == PD_PIPE_HDR_SIZE) {
		pd->pipe = true;
		pd->data_off = PD_PIPE_HDR_SIZE;
		pd->data_end = pd->size;
		return 0;
	}
	if (hsize != PD_HDR_SIZE)
		return pd_bad(pd, 8, "header size %" PRIu64 " is neither %u "
			      "(file) nor %u (pipe)", hsize, PD_HDR_SIZE,
			      PD_PIPE_HDR_SIZE);
	if (pd->size < PD_HDR_SIZE)
		return pd_bad(pd, pd->size, "file ends inside its %u-byte "
			      "header", PD_HDR_SIZE);
	doff = bt_le64(h + 40);
	dsize = bt_le64(h + 48);
	if (!pd_fits(doff, dsize, pd->size) || doff < PD_HDR_SIZE)
		return pd_bad(pd, 40, "data section [%" PRIu64 ", +%" PRIu64
			      ") outside the file (%" PRIu64 " bytes)", doff,
			      dsize, pd->size);
	pd->data_off = doff;
	pd->data_end = doff + dsize;
	err = read_attrs(pd, bt_le64(h + 16), bt_le64(h + 24),
			 bt_le64(h + 32));
	if (err)
		return err;
	/* h + 56: the event_types section, unused since perf 2.6.x. */
	return read_features(pd, h + 72);
}

/* Walk the record stream once: validate it and collect what it declares. */
static int read_records(struct bt_perfdata *pd)
{
	struct bt_perf_record rec;
	uint64_t off = pd->data_off, next;
	int err;

	while (off < pd->data_end) {
		err = pd_record(pd, off, &rec, &next, true);
		if (err)
			return err;
		off = next;
	}
	return 0;
}

static struct bt_perfdata *open_buf(unsigned char *buf, size_t size,
				    const char *name)
{
	struct bt_perfdata *pd = calloc(1, sizeof(*pd));
	int err;

	if (!pd) {
		free(buf);
		errno = ENOMEM;
		return NULL;
	}
	pd->buf = buf;
	pd->size = size;
	pd->first_diff = SIZE_MAX;
	pd->name = strdup(name);
	if (!pd->name) {
		err = -ENOMEM;
		goto err_out;
	}
	err = read_header(pd);
	if (err)
		goto err_out;
	err = read_records(pd);
	if (err)
		goto err_out;
	bt_perfdata__rewind(pd);
	return pd;

err_out:
	bt_perfdata__close(pd);
	errno = -err;
	return NULL;
}

/* Read all of @fd: perf.data may come through a pipe. */
static int read_fd(int fd, unsigned char **out, size_t *size)
{
	size_t len = 0, cap = 1 << 16;
	unsigned char *buf = malloc(cap), *q;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (len == cap) {
			if (cap > SIZE_MAX / 2) {
				free(buf);
				return -EFBIG;
			}
			q = realloc(buf, cap * 2);
			if (!q) {
				free(buf);
				return -ENOMEM;
			}
			buf = q;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = -errno;

			free(buf);
			return err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*out = buf;
	*size = len;
	return 0;
}

struct bt_perfdata *bt_perfdata__open(const char *path,
				      const struct bt_perfdata_opts *opts)
{
	struct bt_perfdata_opts o;
	unsigned char *buf = NULL;
	size_t size = 0;
	int fd, err;

	if (!path || bt_opts_copy(&o, sizeof(o), opts)) {
		errno = EINVAL;
		return NULL;
	}
	fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
	if (fd < 0)
		return NULL;
	err = read_fd(fd, &buf, &size);
	if (fd)
		close(fd);
	if (err) {
		errno = -err;
		return NULL;
	}
	return open_buf(buf, size, strcmp(path, "-") ? path : "<stdin>");
}

struct bt_perfdata *bt_perfdata__open_mem(const void *buf, size_t size,
					  const struct bt_perfdata_opts *opts)
{
	struct bt_perfdata_opts o;
	unsigned char *copy;

	if ((!buf && size) || bt_opts_copy(&o, sizeof(o), opts)) {
		errno = EINVAL;
		return NULL;
	}
	/* Exactly @size bytes, so that a sanitizer sees any overread. */
	copy = malloc(size ? size : 1);
	if (!copy) {
		errno = ENOMEM;
		return NULL;
	}
	if (size)
		memcpy(copy, buf, size);
	return open_buf(copy, size, o.name ? o.name : "<memory>");
}

void bt_perfdata__close(struct bt_perfdata *pd)
{
	if (!pd)
		return;
	for (size_t i = 0; i < pd->nr_attrs; i++)
		free((void *)pd->attrs[i].ids);
	for (size_t i = 0; i < pd->nr_streams; i++)
		free(pd->streams[i].segs);
	free(pd->streams);
	free(pd->attrs);
	free(pd->build_ids);
	free(pd->info_priv);
	free(pd->name);
	free(pd->buf);
	free(pd);
}

bool bt_perfdata__is_pipe(const struct bt_perfdata *pd)
{
	return pd && pd->pipe;
}

size_t bt_perfdata__nr_attrs(const struct bt_perfdata *pd)
{
	return pd ? pd->nr_attrs : 0;
}

const struct bt_perf_attr *bt_perfdata__attr(const struct bt_perfdata *pd,
					     size_t i)
{
	return pd && i < pd->nr_attrs ? &pd->attrs[i] : NULL;
}

size_t bt_perfdata__nr_build_ids(const struct bt_perfdata *pd)
{
	return pd ? pd->nr_build_ids : 0;
}

const struct bt_perf_build_id *
bt_perfdata__build_id(const struct bt_perfdata *pd, size_t i)
{
	return pd && i < pd->nr_build_ids ? &pd->build_ids[i] : NULL;
}

const struct bt_perf_features *
bt_perfdata__features(const struct bt_perfdata *pd)
{
	return pd ? &pd->feat : NULL;
}

const struct bt_perf_auxtrace_info *
bt_perfdata__auxtrace_info(const struct bt_perfdata *pd)
{
	return pd ? &pd->info : NULL;
}

const struct bt_perf_time_conv *
bt_perfdata__time_conv(const struct bt_perfdata *pd)
{
	return pd ? &pd->tconv : NULL;
}

int bt_perfdata__next(struct bt_perfdata *pd, struct bt_perf_record *rec)
{
	uint64_t next;
	int err;

	if (!pd || !rec)
		return -EINVAL;
	if (pd->pos >= pd->data_end)
		return 0;
	/* Validated at open, so this cannot fail; stop cleanly if it does. */
	err = pd_record(pd, pd->pos, rec, &next, false);
	if (err) {
		pd->pos = pd->data_end;
		return err;
	}
	pd->pos = next;
	return 1;
}

void bt_perfdata__rewind(struct bt_perfdata *pd)
{
	if (pd) {
		pd->pos = pd->data_off;
		pd->nr_attrs_now = pd->nr_file_attrs;
	}
}

size_t bt_perfdata__nr_aux_streams(const struct bt_perfdata *pd)
{
	return pd ? pd->nr_streams : 0;
}

const struct bt_perf_aux_stream *
bt_perfdata__aux_stream(const struct bt_perfdata *pd, size_t i)
{
	return pd && i < pd->nr_streams ? &pd->streams[i].pub : NULL;
}

int bt_perfdata__aux_read(const struct bt_perfdata *pd, size_t i,
			  void **buf, size_t *size)
{
	const struct pd_aux_stream *s;
	unsigned char *out;
	size_t at = 0;

	if (!pd || i >= pd->nr_streams || !buf || !size)
		return -EINVAL;
	s = &pd->streams[i];
	/* The total is bounded by the file, which is in memory. */
	out = malloc(s->pub.size ? s->pub.size : 1);
	if (!out)
		return -ENOMEM;
	for (size_t k = 0; k < s->nr_segs; k++) {
		memcpy(out + at, pd->buf + s->segs[k].off, s->segs[k].size);
		at += s->segs[k].size;
	}
	*buf = out;
	*size = at;
	return 0;
}

int bt_perfdata__aux_cpu(const struct bt_perfdata *pd, uint32_t cpu)
{
	if (!pd)
		return -EINVAL;
	for (size_t i = 0; i < pd->nr_streams; i++) {
		if (pd->streams[i].pub.cpu == cpu)
			return (int)i;
	}
	return -ENOENT;
}
