// SPDX-License-Identifier: BSD-3-Clause
/*
 * A raw PT decode session: the libipt configuration, the trace buffer
 * and the image of raw code files, mapped through a (possibly shared)
 * image-section cache. The argument forms are ptxed's, so that libipt
 * workflows carry over unchanged.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <btrail/errno.h>

#include "common/log.h"
#include "common/opts.h"
#include "decoder/pt_int.h"

struct bt_iscache *bt_iscache__new(const char *name)
{
	struct bt_iscache *c = calloc(1, sizeof(*c));

	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	c->ic = pt_iscache_alloc(name);
	if (!c->ic) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	c->refs = 1;
	return c;
}

void bt_iscache__free(struct bt_iscache *c)
{
	if (!c || --c->refs > 0)
		return;
	pt_iscache_free(c->ic);
	free(c);
}

struct bt_ptdec *bt_ptdec__new(const struct bt_ptdec_opts *opts)
{
	struct bt_ptdec *d;
	int err;

	d = calloc(1, sizeof(*d));
	if (!d) {
		errno = ENOMEM;
		return NULL;
	}
	err = bt_opts_copy(&d->o, sizeof(d->o), opts);
	if (err || (d->o.kind != BT_PTDEC_BLOCK && d->o.kind != BT_PTDEC_INSN)
	    || (d->o.addr_cfg >> 16)) {
		free(d);
		errno = EINVAL;
		return NULL;
	}
	pt_config_init(&d->conf);
	if (d->o.has_cpu || d->o.cpu_family) {
		d->conf.cpu.vendor = pcv_intel;
		d->conf.cpu.family = d->o.cpu_family;
		d->conf.cpu.model = d->o.cpu_model;
		d->conf.cpu.stepping = d->o.cpu_stepping;
		d->cpu_err = pt_cpu_errata(&d->conf.errata, &d->conf.cpu);
	}
	d->conf.mtc_freq = d->o.mtc_freq;
	d->conf.nom_freq = d->o.nom_freq;
	d->conf.cpuid_0x15_eax = d->o.cpuid_0x15_eax;
	d->conf.cpuid_0x15_ebx = d->o.cpuid_0x15_ebx;
	d->conf.addr_filter.config.addr_cfg = d->o.addr_cfg;
	d->conf.addr_filter.addr0_a = d->o.addr_a[0];
	d->conf.addr_filter.addr0_b = d->o.addr_b[0];
	d->conf.addr_filter.addr1_a = d->o.addr_a[1];
	d->conf.addr_filter.addr1_b = d->o.addr_b[1];
	d->conf.addr_filter.addr2_a = d->o.addr_a[2];
	d->conf.addr_filter.addr2_b = d->o.addr_b[2];
	d->conf.addr_filter.addr3_a = d->o.addr_a[3];
	d->conf.addr_filter.addr3_b = d->o.addr_b[3];
	if (d->o.kind == BT_PTDEC_BLOCK) {
		d->conf.flags.variant.block.end_on_call = d->o.end_on_call;
		d->conf.flags.variant.block.end_on_jump = d->o.end_on_jump;
		d->conf.flags.variant.block.enable_tick_events =
			d->o.tick_events;
	} else {
		d->conf.flags.variant.insn.enable_tick_events =
			d->o.tick_events;
	}
	if (d->o.iscache) {
		d->ic = d->o.iscache;
		d->ic->refs++;
	} else {
		d->ic = bt_iscache__new(NULL);
		if (!d->ic)
			goto fail;
	}
	d->o.iscache = NULL;	/* held in d->ic */
	d->image = pt_image_alloc(NULL);
	if (!d->image)
		goto fail;
	return d;
fail:
	bt_ptdec__free(d);
	errno = ENOMEM;
	return NULL;
}

void bt_ptdec__free(struct bt_ptdec *d)
{
	if (!d)
		return;
	ptd_sb_free(d->sb);
	ptd_disasm__free(d->dis);
	pt_image_free(d->image);
	bt_iscache__free(d->ic);
	free(d->trace);
	free(d->trace_name);
	free(d);
}

int bt_ptdec__config_error(const struct bt_ptdec *d, const char **msg)
{
	if (!d)
		return -EINVAL;
	if (!d->cpu_err)
		return 0;
	if (msg)
		*msg = pt_errstr(pt_errcode(d->cpu_err));
	return -BT_ERRNO_FORMAT;
}

int ptd_parse_range(const char *s, uint64_t *begin, uint64_t *end)
{
	char *rest;

	if (!s || !*s)
		return 0;
	/* strtoull takes a sign; an offset has none */
	if (*s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	*begin = strtoull(s, &rest, 0);
	if (errno || rest == s)
		return -1;
	if (!*rest)
		return 1;
	if (*rest != '-' || !rest[1] || rest[1] == '-' || rest[1] == '+')
		return -1;
	s = rest + 1;
	*end = strtoull(s, &rest, 0);
	if (errno || *rest || rest == s)
		return -1;
	return 2;
}

int ptd_split_range(char *s, uint64_t *offset, uint64_t *size)
{
	uint64_t b = 0, e = 0;
	char *colon = strrchr(s, ':');
	int parts;

	*offset = 0;
	*size = 0;
	if (!colon)
		return 0;
	/* Not a range: the ':' is part of the name. */
	parts = ptd_parse_range(colon + 1, &b, &e);
	if (parts <= 0)
		return 0;
	if (parts == 2) {
		if (e <= b)
			return -EINVAL;
		*size = e - b;
	}
	*offset = b;
	*colon = 0;
	return 0;
}

int ptd_read_file(const char *path, uint64_t offset, uint64_t size,
		  uint8_t **buf, size_t *len)
{
	struct stat st;
	uint64_t end;
	uint8_t *p;
	size_t got = 0;
	FILE *f;
	int err;

	f = fopen(path, "rb");
	if (!f) {
		err = -errno;
		pr_warn("%s: %s", path, strerror(errno));
		return err;
	}
	if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
		pr_warn("%s: not a regular file", path);
		fclose(f);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size <= offset) {
		pr_warn("%s: offset 0x%" PRIx64 " is past its end (%" PRIu64
			" bytes)", path, offset, (uint64_t)st.st_size);
		fclose(f);
		return -EINVAL;
	}
	end = (uint64_t)st.st_size;
	if (size) {
		if (size > end - offset) {
			pr_warn("%s: range 0x%" PRIx64 "-0x%" PRIx64 " is past "
				"its end (%" PRIu64 " bytes)", path, offset,
				offset + size, end);
			fclose(f);
			return -EINVAL;
		}
		end = offset + size;
	}
	if (end - offset > SIZE_MAX / 2) {
		fclose(f);
		return -ENOMEM;
	}
	p = malloc(end - offset);
	if (!p) {
		fclose(f);
		return -ENOMEM;
	}
	if (fseeko(f, (off_t)offset, SEEK_SET) == 0)
		got = fread(p, 1, end - offset, f);
	fclose(f);
	if (got != end - offset) {
		pr_warn("%s: short read (%zu of %" PRIu64 " bytes)", path, got,
			end - offset);
		free(p);
		return -EIO;
	}
	*buf = p;
	*len = got;
	return 0;
}

int bt_ptdec__set_trace_mem(struct bt_ptdec *d, const void *buf, size_t size)
{
	uint8_t *p;

	if (!d || (!buf && size))
		return -EINVAL;
	p = malloc(size ? size : 1);
	if (!p)
		return -ENOMEM;
	if (size)
		memcpy(p, buf, size);
	free(d->trace);
	d->trace = p;
	d->trace_size = size;
	return 0;
}

int bt_ptdec__set_trace_file(struct bt_ptdec *d, const char *spec)
{
	uint64_t off, size;
	uint8_t *buf;
	size_t len;
	char *name;
	int err;

	if (!d || !spec || !*spec)
		return -EINVAL;
	name = strdup(spec);
	if (!name)
		return -ENOMEM;
	err = ptd_split_range(name, &off, &size);
	if (err) {
		pr_warn("%s: bad range", spec);
		free(name);
		return err;
	}
	err = ptd_read_file(name, off, size, &buf, &len);
	if (err) {
		free(name);
		return err;
	}
	free(d->trace);
	free(d->trace_name);
	d->trace = buf;
	d->trace_size = len;
	d->trace_name = name;
	return 0;
}

int bt_ptdec__add_file(struct bt_ptdec *d, const char *path, uint64_t offset,
		       uint64_t size, uint64_t vaddr)
{
	struct stat st;
	int isid, err;

	if (!d || !path || !*path)
		return -EINVAL;
	/* libipt says "bad file" for all of these; say which. */
	if (stat(path, &st)) {
		err = -errno;
		pr_warn("%s: %s", path, strerror(errno));
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		pr_warn("%s: not a regular file", path);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size <= offset) {
		pr_warn("%s: offset 0x%" PRIx64 " is past its end (%" PRIu64
			" bytes)", path, offset, (uint64_t)st.st_size);
		return -EINVAL;
	}
	if (size && size > (uint64_t)st.st_size - offset) {
		pr_warn("%s: range 0x%" PRIx64 "-0x%" PRIx64 " is past its "
			"end (%" PRIu64 " bytes)", path, offset, offset + size,
			(uint64_t)st.st_size);
		return -EINVAL;
	}
	isid = pt_iscache_add_file(d->ic->ic, path, offset,
				   size ? size : UINT64_MAX, vaddr);
	if (isid < 0) {
		pr_warn("%s: cannot map it at 0x%" PRIx64 ": %s", path, vaddr,
			pt_errstr(pt_errcode(isid)));
		return isid == -pte_nomem ? -ENOMEM : -EINVAL;
	}
	err = pt_image_add_cached(d->image, d->ic->ic, isid, NULL);
	if (err < 0) {
		pr_warn("%s: cannot add it at 0x%" PRIx64 ": %s", path, vaddr,
			pt_errstr(pt_errcode(err)));
		return err == -pte_nomem ? -ENOMEM : -EINVAL;
	}
	return 0;
}

int bt_ptdec__add_raw(struct bt_ptdec *d, const char *spec)
{
	uint64_t base, off, size;
	char *name, *colon, *rest;
	int err;

	if (!d || !spec)
		return -EINVAL;
	name = strdup(spec);
	if (!name)
		return -ENOMEM;
	colon = strrchr(name, ':');
	if (!colon || !colon[1] || colon[1] == '-' || colon == name) {
		pr_warn("%s: expected FILE[:FROM[-TO]]:BASE", spec);
		free(name);
		return -EINVAL;
	}
	errno = 0;
	base = strtoull(colon + 1, &rest, 0);
	if (errno || *rest) {
		pr_warn("%s: bad base address '%s'", spec, colon + 1);
		free(name);
		return -EINVAL;
	}
	*colon = 0;
	err = ptd_split_range(name, &off, &size);
	if (err)
		pr_warn("%s: bad range", spec);
	else
		err = bt_ptdec__add_file(d, name, off, size, base);
	free(name);
	return err;
}
