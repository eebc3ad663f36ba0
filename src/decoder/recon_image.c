// SPDX-License-Identifier: BSD-3-Clause
/*
 * The binaries of a reconstruction: for every bt.mmap, the file it maps
 * (the bundle's images/ copy, else the recorded path under the sysroot,
 * else a build-id directory), read whole, with its PT_LOAD segments, its
 * symbols (.symtab, else the .symtab of its separate debug file found by
 * build-id, else .dynsym; plus "name@plt" for its PLT stubs) and its
 * DWARF line table (libdw) when there is one. A binary that cannot be found, or whose build-id is not
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

/*
 * Where an unsized symbol of section @shndx of @e ends: its section's
 * end (_init, hand-written assembly). The nearest lower symbol is not
 * the owner of an address past it: the PLT after .init is not _init.
 */
static uint64_t scn_end(Elf *e, size_t shndx)
{
	Elf_Scn *scn;
	GElf_Shdr sh;

	if (shndx == SHN_UNDEF || shndx >= SHN_LORESERVE)
		return UINT64_MAX;
	scn = elf_getscn(e, shndx);
	if (!scn || !gelf_getshdr(scn, &sh) ||
	    sh.sh_addr + sh.sh_size < sh.sh_addr)
		return UINT64_MAX;
	return sh.sh_addr + sh.sh_size;
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
		f->syms[k].end = s.st_size && s.st_value + s.st_size >
				 s.st_value ? s.st_value + s.st_size :
				 scn_end(e, s.st_shndx);
		f->syms[k].name = f->strs + at;
		at += l;
		k++;
	}
	f->nsyms = k;
	return 0;
}

/* ---- PLT stubs ------------------------------------------------------------ */

struct plt_ent {
	uint64_t addr, size;
	const char *name;	/* the dynamic symbol's, in the file */
};

struct plt_scns {
	Elf_Scn *plt, *plt_sec, *plt_got, *rela_plt, *rela_dyn;
	GElf_Shdr plt_sh, sec_sh, got_sh, rp_sh, rd_sh;
};

static void plt_find(Elf *e, struct plt_scns *p)
{
	Elf_Scn *scn = NULL;
	size_t shstr;

	memset(p, 0, sizeof(*p));
	if (elf_getshdrstrndx(e, &shstr) < 0)
		return;
	while ((scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		const char *nm;

		if (!gelf_getshdr(scn, &sh) ||
		    !(nm = elf_strptr(e, shstr, sh.sh_name)))
			continue;
		if (!strcmp(nm, ".plt") && sh.sh_type == SHT_PROGBITS) {
			p->plt = scn;
			p->plt_sh = sh;
		} else if (!strcmp(nm, ".plt.sec") &&
			   sh.sh_type == SHT_PROGBITS) {
			p->plt_sec = scn;
			p->sec_sh = sh;
		} else if (!strcmp(nm, ".plt.got") &&
			   sh.sh_type == SHT_PROGBITS) {
			p->plt_got = scn;
			p->got_sh = sh;
		} else if (!strcmp(nm, ".rela.plt") &&
			   sh.sh_type == SHT_RELA) {
			p->rela_plt = scn;
			p->rp_sh = sh;
		} else if (!strcmp(nm, ".rela.dyn") &&
			   sh.sh_type == SHT_RELA) {
			p->rela_dyn = scn;
			p->rd_sh = sh;
		}
	}
}

/* The name of dynamic symbol @idx of symbol table section @link. */
static const char *dyn_name(Elf *e, size_t link, size_t idx)
{
	Elf_Scn *scn = elf_getscn(e, link);
	GElf_Shdr sh;
	GElf_Sym s;
	Elf_Data *d;

	if (!idx || !scn || !gelf_getshdr(scn, &sh) || !sh.sh_entsize ||
	    idx >= sh.sh_size / sh.sh_entsize ||
	    !(d = elf_getdata(scn, NULL)) || !gelf_getsym(d, (int)idx, &s))
		return NULL;
	return elf_strptr(e, sh.sh_link, s.st_name);
}

static int plt_add(struct plt_ent **v, size_t *n, uint64_t addr,
		   uint64_t size, const char *name)
{
	struct plt_ent *nv;

	if (!name || !*name)
		return 0;
	nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	nv[*n].addr = addr;
	nv[*n].size = size;
	nv[(*n)++].name = name;
	*v = nv;
	return 0;
}

/*
 * .plt.got: each entry is "jmp *GOT(%rip)" (after endbr64 with IBT);
 * the symbol is the one whose GLOB_DAT relocation fills that GOT slot.
 */
static int plt_got(Elf *e, const struct plt_scns *p, struct plt_ent **v,
		   size_t *n)
{
	Elf_Data *code = elf_getdata(p->plt_got, NULL);
	Elf_Data *rd = p->rela_dyn ? elf_getdata(p->rela_dyn, NULL) : NULL;
	uint64_t esz = p->got_sh.sh_entsize >= 8 ? p->got_sh.sh_entsize : 8;
	size_t nrel;

	if (!code || !code->d_buf || !rd || !p->rd_sh.sh_entsize)
		return 0;
	nrel = p->rd_sh.sh_size / p->rd_sh.sh_entsize;
	if (nrel > rd->d_size / p->rd_sh.sh_entsize)
		nrel = rd->d_size / p->rd_sh.sh_entsize;
	for (uint64_t o = 0; o + esz <= code->d_size; o += esz) {
		const uint8_t *b = (const uint8_t *)code->d_buf + o;
		uint64_t slot = 0;
		bool found = false;

		for (uint64_t k = 0; k + 6 <= esz; k++) {
			int32_t disp;

			if (b[k] != 0xff || b[k + 1] != 0x25)
				continue;
			memcpy(&disp, b + k + 2, 4);
			slot = p->got_sh.sh_addr + o + k + 6 +
			       (uint64_t)(int64_t)disp;
			found = true;
			break;
		}
		for (size_t i = 0; found && i < nrel; i++) {
			GElf_Rela ra;
			int err;

			if (!gelf_getrela(rd, (int)i, &ra) ||
			    ra.r_offset != slot)
				continue;
			err = plt_add(v, n, p->got_sh.sh_addr + o, esz,
				      dyn_name(e, p->rd_sh.sh_link,
					       GELF_R_SYM(ra.r_info)));
			if (err)
				return err;
			break;
		}
	}
	return 0;
}

/*
 * Symbols for the PLT stubs, "name@plt", as perf and objdump make them:
 * the n-th stub (of .plt.sec with IBT, else of .plt after its 16-byte
 * header) jumps through the slot of the n-th .rela.plt relocation.
 */
static int plt_syms(struct rc_elf *f, Elf *e)
{
	struct plt_scns p;
	struct plt_ent *v = NULL;
	size_t n = 0, strsz = 0, at = 0;
	struct rc_sym *ns;
	int err = 0;

	plt_find(e, &p);
	if (p.rela_plt && p.rp_sh.sh_entsize && (p.plt_sec || p.plt)) {
		Elf_Data *d = elf_getdata(p.rela_plt, NULL);
		const GElf_Shdr *ph = p.plt_sec ? &p.sec_sh : &p.plt_sh;
		uint64_t esz = ph->sh_entsize ? ph->sh_entsize : 16;
		uint64_t base = ph->sh_addr + (p.plt_sec ? 0 : esz);
		size_t nrel = p.rp_sh.sh_size / p.rp_sh.sh_entsize;

		/* a hostile sh_size: only what the file holds */
		if (d && nrel > d->d_size / p.rp_sh.sh_entsize)
			nrel = d->d_size / p.rp_sh.sh_entsize;
		for (size_t i = 0; d && i < nrel && !err; i++) {
			GElf_Rela ra;

			if (base + (i + 1) * esz > ph->sh_addr + ph->sh_size)
				break;
			if (!gelf_getrela(d, (int)i, &ra))
				continue;
			err = plt_add(&v, &n, base + i * esz, esz,
				      dyn_name(e, p.rp_sh.sh_link,
					       GELF_R_SYM(ra.r_info)));
		}
	}
	if (!err && p.plt_got)
		err = plt_got(e, &p, &v, &n);
	for (size_t i = 0; i < n; i++)
		strsz += strlen(v[i].name) + sizeof("@plt");
	if (err || !n)
		goto out;
	ns = realloc(f->syms, (f->nsyms + n) * sizeof(*ns));
	f->plt_strs = malloc(strsz);
	if (ns)
		f->syms = ns;
	if (!ns || !f->plt_strs) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct rc_sym *s = &f->syms[f->nsyms++];
		int l = snprintf(f->plt_strs + at, strsz - at, "%s@plt",
				 v[i].name);

		s->addr = v[i].addr;
		s->size = v[i].size;
		s->end = v[i].addr + v[i].size;
		s->name = f->plt_strs + at;
		at += (size_t)l + 1;
	}
out:
	free(v);
	return err;
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
	free(f->plt_strs);
	if (f->dbg_elf)
		elf_end(f->dbg_elf);
	free(f->dbg_data);
	free(f->dbg_path);
	free(f);
}

/* The first SHT_SYMTAB section of @e, or NULL. */
static Elf_Scn *find_symtab(Elf *e, GElf_Shdr *sh)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(e, scn))) {
		if (gelf_getshdr(scn, sh) && sh->sh_type == SHT_SYMTAB)
			return scn;
	}
	return NULL;
}

/*
 * Separate debug info of a binary without .symtab (distribution libraries
 * such as libc: __strlen_evex is only in libc6-dbg's file), found by
 * build-id @id as gdb and perf look for it: <dir>/xx/rest.debug under the
 * --buildid-dir, the sysroot's /usr/lib/debug/.build-id and this
 * machine's. A file of another build-id is not used. 0 or -ENOENT.
 */
static int dbg_attach(const struct bt_recon *r, struct rc_elf *f,
		      const char *id)
{
	const char *sys = r && r->o.sysroot ? r->o.sysroot : NULL;
	char *dirs[3] = { NULL, NULL, NULL };
	int ret = -ENOENT;

	if (strlen(id) < 3 || strspn(id, "0123456789abcdef") != strlen(id))
		return -ENOENT;
	if (r && r->o.buildid_dir)
		dirs[0] = strdup(r->o.buildid_dir);
	if (sys && asprintf(&dirs[1], "%s/usr/lib/debug/.build-id", sys) < 0)
		dirs[1] = NULL;
	dirs[2] = strdup("/usr/lib/debug/.build-id");
	for (int i = 0; i < 3 && ret; i++) {
		char *path = NULL, got[130];
		Elf *e;

		if (!dirs[i] || asprintf(&path, "%s/%.2s/%s.debug", dirs[i],
					 id, id + 2) < 0)
			continue;
		if (read_whole(path, &f->dbg_data, &f->dbg_size) < 0) {
			free(path);
			continue;
		}
		e = elf_memory((char *)f->dbg_data, f->dbg_size);
		if (e && elf_kind(e) == ELF_K_ELF) {
			elf_build_id(e, got, sizeof(got));
			if (!strcmp(got, id)) {
				f->dbg_elf = e;
				f->dbg_path = path;
				path = NULL;
				ret = 0;
			} else {
				pr_warn("%s: build-id %s, not %s: not used\n",
					path, *got ? got : "none", id);
			}
		} else {
			pr_warn("%s: not an ELF file: not used\n", path);
		}
		if (ret) {
			if (e)
				elf_end(e);
			free(f->dbg_data);
			f->dbg_data = NULL;
		}
		free(path);
	}
	for (int i = 0; i < 3; i++)
		free(dirs[i]);
	return ret;
}

/*
 * Read @path as an ELF file. With @want_id (hex, may be NULL) a file of
 * another build-id is refused (-ESTALE). Returns 0 with *@out or -errno.
 */
static int elf_load(const struct bt_recon *r, const char *path,
		    const char *want_id, struct rc_elf **out)
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
	    elf_getphdrnum(f->elf, &nph) < 0) {
		/* else only "not found" is said, of the recorded path */
		pr_warn("%s: offset 0: not a readable ELF file (%zu bytes): "
			"not used\n", path, f->size);
		goto fail;
	}
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
	if (sym) {
		err = load_syms(f, f->elf, sym, &ssh);
	} else if (*id && dbg_attach(r, f, id) == 0) {
		Elf_Scn *ds = find_symtab(f->dbg_elf, &ssh);

		pr_debug("%s: debug info from %s\n", path, f->dbg_path);
		if (ds)
			err = load_syms(f, f->dbg_elf, ds, &ssh);
	}
	if (!err && !f->syms && dyn)
		err = load_syms(f, f->elf, dyn, &dsh);
	if (!err)
		err = plt_syms(f, f->elf);
	if (err)
		goto fail;
	if (f->nsyms)
		qsort(f->syms, f->nsyms, sizeof(*f->syms), sym_cmp);
	/* libdw keeps a reference to the Elf; no DWARF is fine */
	f->dwarf = dwarf_begin_elf(f->elf, DWARF_C_READ, NULL);
	if (!f->dwarf && f->dbg_elf)
		f->dwarf = dwarf_begin_elf(f->dbg_elf, DWARF_C_READ, NULL);
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
		if (!f && elf_load(r, cands[i], m->build_id, &f) == 0) {
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

int rc_hexbytes(const struct bt_recon *r, int32_t pid, uint64_t addr,
		char *out, size_t cap)
{
	uint8_t b[16];
	long n = rc_read(r, pid, addr, b, sizeof(b));
	size_t at = 0;

	if (!cap)
		return -EINVAL;
	out[0] = '\0';
	if (n <= 0)
		return n < 0 ? (int)n : -ENOENT;
	/* an instruction is at most 15 bytes: 12 say which it is */
	for (long i = 0; i < n && i < 12 && at + 4 <= cap; i++)
		at += (size_t)snprintf(out + at, cap - at, "%s%02x",
				       i ? " " : "", b[i]);
	if (n > 12 && at + 5 <= cap)
		snprintf(out + at, cap - at, " ...");
	return (int)n;
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

/*
 * The symbol of @f holding link-time @a, or NULL. Only the symbols at
 * the nearest lower address are candidates, and only while @a lies
 * before their end: an address past a function is not that function's.
 */
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
		if (a < s->end)
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
