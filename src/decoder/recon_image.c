// SPDX-License-Identifier: BSD-3-Clause
/*
 * The binaries of a reconstruction: for every bt.mmap, the file it maps
 * (the bundle's images/ copy, else the recorded path under the sysroot,
 * else a build-id directory), read whole, with its PT_LOAD segments, its
 * symbols (.symtab, else .dynsym) and its DWARF line table (libdw) when
 * there is one. A binary that cannot be found, or whose build-id is not
 * the recorded one, is one warning naming build-id and path; its
 * mappings stay in the address space without code, so the flow shows a
 * gap where it enters them.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <elfutils/libdw.h>
#include <intel-pt.h>
#include <json-c/json.h>
#include <libelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <btrail/errno.h>

#include "common/log.h"
#include "decoder/pt_int.h"
#include "decoder/recon_int.h"

/* Binaries over this are refused (a hostile path could name anything). */
#define RC_MAX_FILE	(1ull << 30)

static int read_whole(const char *path, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > RC_MAX_FILE) {
		close(fd);
		return -EINVAL;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n <= 0) {
			free(buf);
			close(fd);
			return n < 0 ? -errno : -EIO;
		}
		got += (size_t)n;
	}
	close(fd);
	*out = buf;
	*len = got;
	return 0;
}

static int sym_cmp(const void *a, const void *b)
{
	const struct rc_sym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	/* sized symbols first: they say where a function ends */
	return (x->size < y->size) - (x->size > y->size);
}

/* The function symbols of section @scn (SHT_SYMTAB or SHT_DYNSYM). */
static int load_syms(struct rc_elf *f, Elf *e, Elf_Scn *scn, GElf_Shdr *sh)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	size_t n, strsz = 0, k = 0, at = 0;

	if (!d || !sh->sh_entsize)
		return 0;
	n = sh->sh_size / sh->sh_entsize;
	for (size_t i = 0; i < n; i++) {
		GElf_Sym s;
		const char *nm;

		if (!gelf_getsym(d, (int)i, &s) ||
		    GELF_ST_TYPE(s.st_info) != STT_FUNC || !s.st_value)
			continue;
		nm = elf_strptr(e, sh->sh_link, s.st_name);
		if (nm && *nm)
			strsz += strlen(nm) + 1;
	}
	if (!strsz)
		return 0;
	f->syms = calloc(n, sizeof(*f->syms));
	f->strs = malloc(strsz);
	if (!f->syms || !f->strs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		GElf_Sym s;
		const char *nm;
		size_t l;

		if (!gelf_getsym(d, (int)i, &s) ||
		    GELF_ST_TYPE(s.st_info) != STT_FUNC || !s.st_value)
			continue;
		nm = elf_strptr(e, sh->sh_link, s.st_name);
		if (!nm || !*nm)
			continue;
		l = strlen(nm) + 1;
		if (at + l > strsz)
			break;
		memcpy(f->strs + at, nm, l);
		f->syms[k].addr = s.st_value;
		f->syms[k].size = s.st_size;
		f->syms[k].name = f->strs + at;
		at += l;
		k++;
	}
	f->nsyms = k;
	qsort(f->syms, k, sizeof(*f->syms), sym_cmp);
	return 0;
}

/* The NT_GNU_BUILD_ID of @e as hex into @hex (41+ bytes), or "". */
static void elf_build_id(Elf *e, char *hex, size_t cap)
{
	Elf_Scn *scn = NULL;

	hex[0] = '\0';
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		GElf_Nhdr nh;
		size_t off = 0, noff, doff;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		d = elf_getdata(scn, NULL);
		while (d && (off = gelf_getnote(d, off, &nh, &noff, &doff))) {
			if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
			    memcmp((char *)d->d_buf + noff, "GNU", 4))
				continue;
			for (size_t i = 0; i < nh.n_descsz &&
			     2 * i + 3 <= cap; i++)
				snprintf(hex + 2 * i, 3, "%02x",
					 ((uint8_t *)d->d_buf)[doff + i]);
			return;
		}
	}
}

static void elf_free(struct rc_elf *f)
{
	if (!f)
		return;
	if (f->dwarf)
		dwarf_end(f->dwarf);
	if (f->elf)
		elf_end(f->elf);
	free(f->path);
	free(f->data);
	free(f->segs);
	free(f->syms);
	free(f->strs);
	free(f);
}

/*
 * Read @path as an ELF file. With @want_id (hex, may be NULL) a file of
 * another build-id is refused (-ESTALE). Returns 0 with *@out or -errno.
 */
static int elf_load(const char *path, const char *want_id,
		    struct rc_elf **out)
{
	struct rc_elf *f = calloc(1, sizeof(*f));
	char id[130];
	size_t nph = 0;
	Elf_Scn *scn = NULL, *dyn = NULL, *sym = NULL;
	GElf_Shdr dsh, ssh;
	int err;

	if (!f)
		return -ENOMEM;
	err = read_whole(path, &f->data, &f->size);
	if (err < 0)
		goto fail;
	f->path = strdup(path);
	f->elf = elf_memory((char *)f->data, f->size);
	err = -BT_ERRNO_FORMAT;
	if (!f->path || !f->elf || elf_kind(f->elf) != ELF_K_ELF ||
	    elf_getphdrnum(f->elf, &nph) < 0)
		goto fail;
	elf_build_id(f->elf, id, sizeof(id));
	if (want_id && *want_id && *id && strcmp(id, want_id)) {
		pr_warn("%s: build-id %s, not the recorded %s: not used\n",
			path, id, want_id);
		err = -ESTALE;
		goto fail;
	}
	f->segs = calloc(nph ? nph : 1, sizeof(*f->segs));
	if (!f->segs) {
		err = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(f->elf, (int)i, &ph) && ph.p_type == PT_LOAD) {
			f->segs[f->nsegs].vaddr = ph.p_vaddr;
			f->segs[f->nsegs].offset = ph.p_offset;
			f->segs[f->nsegs++].filesz = ph.p_filesz;
		}
	}
	while ((scn = elf_nextscn(f->elf, scn))) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_SYMTAB && !sym) {
			sym = scn;
			ssh = sh;
		} else if (sh.sh_type == SHT_DYNSYM && !dyn) {
			dyn = scn;
			dsh = sh;
		}
	}
	err = 0;
	if (sym)
		err = load_syms(f, f->elf, sym, &ssh);
	if (!err && !f->nsyms && dyn)
		err = load_syms(f, f->elf, dyn, &dsh);
	if (err)
		goto fail;
	/* libdw keeps a reference to the Elf; no DWARF is fine */
	f->dwarf = dwarf_begin_elf(f->elf, DWARF_C_READ, NULL);
	*out = f;
	return 0;
fail:
	elf_free(f);
	return err;
}

/* The bundle's copy of @file, from btrail.json's images[], or NULL. */
static char *json_copy(struct bt_recon *r, const char *file, char **bid)
{
	json_object *root = json_tokener_parse(bt_bundle__json(r->b));
	json_object *imgs, *p, *c, *b;
	char *out = NULL;

	if (!root)
		return NULL;
	if (json_object_object_get_ex(root, "images", &imgs) &&
	    json_object_is_type(imgs, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(imgs); i++) {
			json_object *im = json_object_array_get_idx(imgs, i);

			if (!json_object_object_get_ex(im, "path", &p) ||
			    !json_object_is_type(p, json_type_string) ||
			    strcmp(json_object_get_string(p), file))
				continue;
			if (!*bid && json_object_object_get_ex(im, "build_id",
							       &b) &&
			    json_object_is_type(b, json_type_string))
				*bid = strdup(json_object_get_string(b));
			if (json_object_object_get_ex(im, "copy", &c) &&
			    json_object_is_type(c, json_type_string) &&
			    !strstr(json_object_get_string(c), "..") &&
			    asprintf(&out, "%s/%s", r->dir,
				     json_object_get_string(c)) < 0)
				out = NULL;
			break;
		}
	}
	json_object_put(root);
	return out;
}

/* Open the file of @m (cached by resolved path). */
static struct rc_elf *map_elf(struct bt_recon *r, struct rc_map *m)
{
	char *cands[3] = { NULL, NULL, NULL };
	struct rc_elf *f = NULL;
	bool pseudo = m->file[0] == '[';

	cands[0] = json_copy(r, m->file, &m->build_id);
	if (m->file[0] == '/' &&
	    asprintf(&cands[1], "%s%s", r->o.sysroot ? r->o.sysroot : "",
		     m->file) < 0)
		cands[1] = NULL;
	if (r->o.buildid_dir && m->build_id && strlen(m->build_id) > 2 &&
	    asprintf(&cands[2], "%s/%.2s/%s", r->o.buildid_dir, m->build_id,
		     m->build_id + 2) < 0)
		cands[2] = NULL;
	for (int i = 0; i < 3 && !f; i++) {
		if (!cands[i])
			continue;
		for (size_t k = 0; k < r->nelfs; k++) {
			if (!strcmp(r->elf_keys[k], cands[i]))
				f = r->elfs[k];
		}
		if (!f && elf_load(cands[i], m->build_id, &f) == 0) {
			struct rc_elf **ne = realloc(r->elfs,
					(r->nelfs + 1) * sizeof(*ne));
			char **nk = ne ? realloc(r->elf_keys,
					(r->nelfs + 1) * sizeof(*nk)) : NULL;

			if (ne)
				r->elfs = ne;
			if (!nk) {
				elf_free(f);
				f = NULL;
				break;
			}
			r->elf_keys = nk;
			r->elfs[r->nelfs] = f;
			r->elf_keys[r->nelfs++] = strdup(cands[i]);
			if (!r->elf_keys[r->nelfs - 1])
				r->elf_keys[r->nelfs - 1] = strdup("");
		}
	}
	if (!f && !pseudo) {
		pr_warn("%s: binary %s (build-id %s) not found%s%s: its code "
			"is a gap in the flow\n", r->dir, m->file,
			m->build_id ? m->build_id : "unknown",
			r->o.sysroot ? " under sysroot " : "",
			r->o.sysroot ? r->o.sysroot : "");
	} else if (!f && !strcmp(m->file, "[vdso]")) {
		pr_warn("%s: no copy of the [vdso] in the bundle: its code is "
			"a gap in the flow\n", r->dir);
	}
	for (int i = 0; i < 3; i++)
		free(cands[i]);
	return f;
}

/* Load-time bias of @m: the segment holding file offset pgoff. */
static void map_bias(struct rc_map *m)
{
	const struct rc_elf *f = m->elf;

	m->bias = (int64_t)m->start - (int64_t)m->pgoff;
	for (size_t i = 0; f && i < f->nsegs; i++) {
		const struct rc_seg *s = &f->segs[i];

		if (m->pgoff >= (s->offset & ~0xfffull) &&
		    m->pgoff < s->offset + s->filesz) {
			m->bias = (int64_t)(m->start -
				  (s->vaddr - s->offset + m->pgoff));
			return;
		}
	}
}

int rc_images_load(struct bt_recon *r)
{
	for (size_t i = 0; i < r->nmaps; i++) {
		struct rc_map *m = &r->maps[i];
		bool seen = false;

		/* one warning per file: reuse what an earlier map found */
		for (size_t k = 0; k < i; k++) {
			if (!strcmp(r->maps[k].file, m->file)) {
				m->elf = r->maps[k].elf;
				seen = true;
				break;
			}
		}
		if (!seen && m->file[0] && strcmp(m->file, "//anon"))
			m->elf = map_elf(r, m);
		map_bias(m);
		if (!r->exe[0] && m->file[0] == '/')
			snprintf(r->exe, sizeof(r->exe), "%s", m->file);
	}
	return 0;
}

void rc_images_free(struct bt_recon *r)
{
	for (size_t i = 0; i < r->nelfs; i++) {
		elf_free(r->elfs[i]);
		free(r->elf_keys[i]);
	}
	free(r->elfs);
	free(r->elf_keys);
	for (size_t i = 0; i < r->nmaps; i++) {
		free(r->maps[i].file);
		free(r->maps[i].build_id);
	}
	free(r->maps);
}

const struct rc_map *rc_map_find(const struct bt_recon *r, int32_t pid,
				 uint64_t addr)
{
	/* the latest mapping wins: later bt.mmap events replace earlier */
	for (size_t i = r->nmaps; i-- > 0;) {
		const struct rc_map *m = &r->maps[i];

		if ((pid < 0 || m->pid < 0 || m->pid == pid) &&
		    addr >= m->start && addr < m->end)
			return m;
	}
	return NULL;
}

long rc_read(const struct bt_recon *r, int32_t pid, uint64_t addr,
	     uint8_t *buf, size_t n)
{
	const struct rc_map *m = rc_map_find(r, pid, addr);
	uint64_t off;
	size_t got;

	if (!m)
		return -ENOENT;
	if (!m->elf)
		return 0;
	off = m->pgoff + (addr - m->start);
	if (off >= m->elf->size)
		return 0;
	got = m->elf->size - off;
	if (got > n)
		got = n;
	if (got > m->end - addr)
		got = m->end - addr;
	memcpy(buf, m->elf->data + off, got);
	return (long)got;
}

int rc_image_fill(struct bt_recon *r, int32_t pid, struct pt_image *img)
{
	for (size_t i = 0; i < r->nmaps; i++) {
		const struct rc_map *m = &r->maps[i];
		uint64_t size;
		int isid;

		if (!m->elf || (pid >= 0 && m->pid >= 0 && m->pid != pid) ||
		    m->pgoff >= m->elf->size)
			continue;
		size = m->end - m->start;
		if (size > m->elf->size - m->pgoff)
			size = m->elf->size - m->pgoff;
		isid = pt_iscache_add_file(r->ic->ic, m->elf->path, m->pgoff,
					   size, m->start);
		if (isid < 0 || pt_image_add_cached(img, r->ic->ic, isid,
						    NULL) < 0)
			pr_debug("%s: %s at 0x%llx: libipt refused it\n",
				 r->dir, m->elf->path,
				 (unsigned long long)m->start);
	}
	return 0;
}

/* The symbol of @f holding link-time @a, or NULL. */
static const struct rc_sym *sym_find(const struct rc_elf *f, uint64_t a)
{
	size_t lo = 0, hi = f->nsyms;
	const struct rc_sym *best;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (f->syms[mid].addr <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	best = &f->syms[lo - 1];
	/* among symbols at that address, a sized one that holds @a */
	while (best > f->syms && best[-1].addr == best->addr)
		best--;
	for (const struct rc_sym *s = best;
	     s < f->syms + f->nsyms && s->addr == best->addr; s++) {
		if (!s->size || a < s->addr + s->size)
			return s;
	}
	return NULL;
}

int bt_recon__symbolize(struct bt_recon *r, int32_t pid, uint64_t addr,
			struct bt_sym *out)
{
	const struct rc_map *m;
	uint64_t a;

	if (!r || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	m = rc_map_find(r, pid, addr);
	if (!m)
		return -ENOENT;
	out->image = m->file;
	if (!m->elf)
		return 0;
	a = addr - (uint64_t)m->bias;
	{
		const struct rc_sym *s = sym_find(m->elf, a);

		if (s) {
			out->name = s->name;
			out->offset = a - s->addr;
		}
	}
	if (m->elf->dwarf) {
		Dwarf_Die cu;
		Dwarf_Line *l;
		int line = 0;

		if (dwarf_addrdie(m->elf->dwarf, a, &cu) &&
		    (l = dwarf_getsrc_die(&cu, a)) &&
		    !dwarf_lineno(l, &line) && line > 0) {
			out->file = dwarf_linesrc(l, NULL, NULL);
			out->line = (uint32_t)line;
		}
	}
	return 0;
}
