// SPDX-License-Identifier: BSD-3-Clause
/*
 * Address filters: perf's syntax ("filter main @ /bin/prog") turned into
 * what PERF_EVENT_IOC_SET_FILTER parses ("filter 0x1139/0x2c@/bin/prog").
 *
 * The kernel's filter for a file names a range of FILE OFFSETS: it finds
 * the range in each mapping of the file by the mapping's page offset.
 * A symbol's st_value is a virtual address, so it goes through the
 * PT_LOAD segment that holds it (offset = addr - p_vaddr + p_offset).
 * Numbers are passed through as they are: they already are offsets, or
 * kernel addresses when there is no file.
 */
#include "ds/perf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <btrail/errno.h>

#include "common/log.h"
#include "ds/elfsym.h"

struct filter_term {
	const char *action;	/* kernel's: filter, start, stop */
	uint64_t addr;
	uint64_t size;
	bool has_size;
	char file[PATH_MAX];	/* absolute, or "" for kernel addresses */
};

/* Symbol @name of @path as a file offset and size, with a warning why not. */
static int elf_sym_offset(const char *path, const char *name, uint64_t *off,
			  uint64_t *size)
{
	int err = bt_elfsym_file_offset(path, name, off, size);

	switch (err) {
	case 0:
		return 0;
	case -ENOENT:
		pr_warn("perf: filter: no symbol '%s' in %s", name, path);
		return err;
	case -ERANGE:
		pr_warn("perf: filter: symbol '%s' of %s is in no loaded "
			"segment", name, path);
		return -ENOENT;
	case -BT_ERRNO_FORMAT:
		pr_warn("perf: filter: %s is not an ELF file", path);
		return -EINVAL;
	default:
		return err;
	}
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || *end ? -EINVAL : 0;
}

/* One term "ACTION WHERE[/SIZE] [@ FILE]" (modified in place). */
static int filter_parse_term(char *s, struct filter_term *t)
{
	char *where, *at, *slash, *file = NULL;
	bool tracestop = false;
	size_t n;
	int err;

	s = trim(s);
	n = strcspn(s, " \t");
	if (n == 6 && !strncmp(s, "filter", n))
		t->action = "filter";
	else if (n == 5 && !strncmp(s, "start", n))
		t->action = "start";
	else if (n == 4 && !strncmp(s, "stop", n))
		t->action = "stop";
	else if (n == 9 && !strncmp(s, "tracestop", n)) {
		t->action = "stop";	/* the kernel's stop over a range */
		tracestop = true;
	} else
		return -EINVAL;
	where = s + n;
	at = strchr(where, '@');
	if (at) {
		*at = '\0';
		file = trim(at + 1);
		if (!*file || strpbrk(file, " \t,\n"))
			return -EINVAL;	/* the kernel splits on these */
	}
	where = trim(where);
	if (!*where)
		return -EINVAL;
	slash = strchr(where, '/');
	t->has_size = slash != NULL;
	if (slash) {
		*slash = '\0';
		err = parse_u64(trim(slash + 1), &t->size);
		if (err)
			return err;
		where = trim(where);
	}
	t->file[0] = '\0';
	if (file && !realpath(file, t->file))
		return -errno;
	if (parse_u64(where, &t->addr)) {
		uint64_t sym_size = 0;

		if (!file || strpbrk(where, " \t"))
			return -EINVAL;	/* a symbol needs its file */
		err = elf_sym_offset(t->file, where, &t->addr, &sym_size);
		if (err)
			return err;
		/* A range defaults to the whole symbol; start/stop are one address. */
		if (!t->has_size && (!strcmp(t->action, "filter") || tracestop)) {
			t->size = sym_size;
			t->has_size = true;
		}
	}
	if ((!strcmp(t->action, "filter") || tracestop) &&
	    (!t->has_size || t->size == 0))
		return -EINVAL;		/* a range needs a length */
	return 0;
}

int bt_perf_filter__resolve(const char *in, char *out, size_t len)
{
	struct filter_term *t;
	char *copy, *term, *save = NULL;
	size_t pos = 0;
	int err = 0, n;

	if (!in || !out || !len)
		return -EINVAL;
	copy = strdup(in);
	t = malloc(sizeof(*t));
	if (!copy || !t) {
		err = -ENOMEM;
		goto out_free;
	}
	out[0] = '\0';
	for (term = strtok_r(copy, ",", &save); term;
	     term = strtok_r(NULL, ",", &save)) {
		err = filter_parse_term(term, t);
		if (err)
			goto out_free;
		if (t->has_size && t->size)
			n = snprintf(out + pos, len - pos, "%s%s %#llx/%#llx%s%s",
				     pos ? "," : "", t->action,
				     (unsigned long long)t->addr,
				     (unsigned long long)t->size,
				     t->file[0] ? "@" : "", t->file);
		else
			n = snprintf(out + pos, len - pos, "%s%s %#llx%s%s",
				     pos ? "," : "", t->action,
				     (unsigned long long)t->addr,
				     t->file[0] ? "@" : "", t->file);
		if (n < 0 || (size_t)n >= len - pos) {
			err = -ENAMETOOLONG;
			goto out_free;
		}
		pos += (size_t)n;
	}
	if (!pos)
		err = -EINVAL;		/* nothing but separators */
out_free:
	free(t);
	free(copy);
	return err;
}
