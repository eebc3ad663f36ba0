// SPDX-License-Identifier: BSD-3-Clause
/*
 * Mappings, entry point and ELF symbols of a live process (libelf).
 */
#include "ds/elfsym.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <btrail/errno.h>

#include "common/log.h"

static int maps_parse_line(const char *line, struct bt_map *m)
{
	char perms[8] = "";
	unsigned long long start, end, off, ino;
	unsigned int maj, min;
	int pos = 0;

	if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end,
		   perms, &off, &maj, &min, &ino, &pos) < 7)
		return -1;
	memset(m, 0, sizeof(*m));
	m->start = start;
	m->end = end;
	m->offset = off;
	m->dev_major = maj;
	m->dev_minor = min;
	m->inode = ino;
	if (perms[0] == 'r')
		m->prot |= PROT_READ;
	if (perms[1] == 'w')
		m->prot |= PROT_WRITE;
	if (perms[2] == 'x')
		m->prot |= PROT_EXEC;
	m->shared = perms[3] == 's';
	if (pos > 0) {
		size_t len;

		snprintf(m->path, sizeof(m->path), "%s", line + pos);
		len = strlen(m->path);
		while (len && (m->path[len - 1] == '\n' || m->path[len - 1] == ' '))
			m->path[--len] = '\0';
	}
	return 0;
}

int bt_maps_read(pid_t pid, struct bt_map **maps, size_t *n)
{
	struct bt_map *v = NULL, *nv;
	size_t len = 0, cap = 0;
	char path[64], *line = NULL;
	size_t line_cap = 0;
	FILE *f;
	int err = 0;

	if (!maps || !n)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	while (getline(&line, &line_cap, f) > 0) {
		if (len == cap) {
			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				err = -ENOMEM;
				goto out_close;
			}
			v = nv;
		}
		if (maps_parse_line(line, &v[len]) == 0)
			len++;
	}
	if (ferror(f))
		err = -EIO;
out_close:
	free(line);
	fclose(f);
	if (!err && !len)
		err = -ESRCH;	/* a zombie has no mappings */
	if (err) {
		free(v);
		return err;
	}
	*maps = v;
	*n = len;
	return 0;
}

const struct bt_map *bt_maps_find(const struct bt_map *maps, size_t n,
				  uint64_t addr)
{
	for (size_t i = 0; i < n; i++) {
		if (addr >= maps[i].start && addr < maps[i].end)
			return &maps[i];
	}
	return NULL;
}

int bt_proc_entry(pid_t pid, uint64_t *entry)
{
	uint64_t aux[2];
	char path[64];
	int fd, err = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/auxv", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	while (read(fd, aux, sizeof(aux)) == (ssize_t)sizeof(aux) && aux[0]) {
		if (aux[0] == 9 /* AT_ENTRY */) {
			*entry = aux[1];
			err = 0;
			break;
		}
	}
	close(fd);
	return err;
}

/* An ELF file open for reading: the fd and libelf's handle. */
struct elf_file {
	int fd;
	Elf *elf;
};

/* Whether @ef's section header table lies outside the file (logged). */
static bool elf_section_table_bad(const struct elf_file *ef,
				  const char *path)
{
	GElf_Ehdr eh;
	struct stat st;
	uint64_t end;

	if (!gelf_getehdr(ef->elf, &eh) || fstat(ef->fd, &st) < 0) {
		pr_debug("elfsym: %s: offset 0: bad ELF header: %s\n", path,
			 elf_errmsg(-1));
		return true;
	}
	if (!eh.e_shoff)
		return false;
	end = eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize;
	if (end < eh.e_shoff || end > (uint64_t)st.st_size) {
		/* e_shoff is at offset 32 (ELF32) or 40 (ELF64) */
		pr_debug("elfsym: %s: offset %d: section headers at offset %"
			 PRIu64 " end past the file's %" PRIu64 " bytes\n",
			 path, eh.e_ident[EI_CLASS] == ELFCLASS32 ? 32 : 40,
			 (uint64_t)eh.e_shoff, (uint64_t)st.st_size);
		return true;
	}
	return false;
}

static int elf_file_open(struct elf_file *ef, const char *path)
{
	ef->elf = NULL;
	if (elf_version(EV_CURRENT) == EV_NONE) {
		pr_debug("elfsym: libelf: %s\n", elf_errmsg(-1));
		return -BT_ERRNO_INTERNAL;
	}
	ef->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (ef->fd < 0)
		return -errno;
	ef->elf = elf_begin(ef->fd, ELF_C_READ_MMAP, NULL);
	if (!ef->elf || elf_kind(ef->elf) != ELF_K_ELF) {
		pr_debug("elfsym: %s: not an ELF file: %s\n", path,
			 elf_errmsg(-1));
		elf_end(ef->elf);
		close(ef->fd);
		ef->elf = NULL;
		return -BT_ERRNO_FORMAT;
	}
	/* libelf reads section headers lazily and a table past the end
	 * reads as none: "no such symbol" for a damaged file. Say so. */
	if (elf_section_table_bad(ef, path)) {
		elf_end(ef->elf);
		close(ef->fd);
		ef->elf = NULL;
		return -BT_ERRNO_FORMAT;
	}
	return 0;
}

static void elf_file_close(struct elf_file *ef)
{
	elf_end(ef->elf);
	if (ef->elf)
		close(ef->fd);
	ef->elf = NULL;
}

/* Search the symbol table of section type @type; 0, -ENOENT. */
static int elf_find_sym(Elf *elf, Elf64_Word type, const char *name,
			GElf_Sym *out)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *data;
		size_t count;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != type ||
		    !sh.sh_entsize)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data)
			continue;
		count = sh.sh_size / sh.sh_entsize;
		for (size_t i = 0; i < count; i++) {
			GElf_Sym sym;
			const char *s;
			int t;

			if (!gelf_getsym(data, (int)i, &sym))
				break;
			t = GELF_ST_TYPE(sym.st_info);
			if (sym.st_shndx == SHN_UNDEF ||
			    (t != STT_FUNC && t != STT_OBJECT &&
			     t != STT_NOTYPE && t != STT_GNU_IFUNC))
				continue;
			s = elf_strptr(elf, sh.sh_link, sym.st_name);
			if (s && !strcmp(s, name)) {
				*out = sym;
				return 0;
			}
		}
	}
	return -ENOENT;
}

/* .symtab first, then .dynsym. */
static int elf_find_any_sym(Elf *elf, const char *name, GElf_Sym *out)
{
	int err = elf_find_sym(elf, SHT_SYMTAB, name, out);

	return err == -ENOENT ? elf_find_sym(elf, SHT_DYNSYM, name, out) : err;
}

int bt_elfsym_lookup(const char *path, const char *name, uint64_t *value)
{
	struct elf_file ef;
	GElf_Sym sym;
	int err;

	if (!path || !name || !*name || !value)
		return -EINVAL;
	err = elf_file_open(&ef, path);
	if (err < 0)
		return err;
	err = elf_find_any_sym(ef.elf, name, &sym);
	if (!err)
		*value = sym.st_value;
	elf_file_close(&ef);
	return err;
}

int bt_elfsym_file_offset(const char *path, const char *name, uint64_t *off,
			  uint64_t *size)
{
	struct elf_file ef;
	GElf_Sym sym;
	size_t phnum;
	int err;

	if (!path || !name || !*name || !off || !size)
		return -EINVAL;
	err = elf_file_open(&ef, path);
	if (err < 0)
		return err;
	err = elf_find_any_sym(ef.elf, name, &sym);
	if (err < 0)
		goto out_close;
	if (elf_getphdrnum(ef.elf, &phnum) < 0) {
		pr_debug("elfsym: %s: %s\n", path, elf_errmsg(-1));
		err = -BT_ERRNO_FORMAT;
		goto out_close;
	}
	err = -ERANGE;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(ef.elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (sym.st_value >= ph.p_vaddr &&
		    sym.st_value - ph.p_vaddr < ph.p_filesz) {
			*off = sym.st_value - ph.p_vaddr + ph.p_offset;
			*size = sym.st_size;
			err = 0;
			break;
		}
	}
out_close:
	elf_file_close(&ef);
	return err;
}

int bt_elf_load_bias(const char *path, const struct bt_map *maps, size_t n,
		     uint64_t *bias)
{
	struct elf_file ef;
	size_t phnum;
	int err;

	if (!path || !maps || !bias)
		return -EINVAL;
	err = elf_file_open(&ef, path);
	if (err < 0)
		return err;
	if (elf_getphdrnum(ef.elf, &phnum) < 0) {
		pr_debug("elfsym: %s: %s\n", path, elf_errmsg(-1));
		err = -BT_ERRNO_FORMAT;
		goto out_close;
	}
	err = -ENOENT;
	for (size_t i = 0; i < phnum && err == -ENOENT; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(ef.elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		for (size_t j = 0; j < n; j++) {
			if (strcmp(maps[j].path, path) ||
			    maps[j].offset != (ph.p_offset & ~0xfffull))
				continue;
			*bias = maps[j].start - (ph.p_vaddr & ~0xfffull);
			err = 0;
			break;
		}
	}
out_close:
	elf_file_close(&ef);
	return err;
}

/* Does the file name of @path name the object @lib? */
static bool elfsym_lib_matches(const char *path, const char *lib, size_t len)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	if (strncmp(base, lib, len))
		return false;
	return base[len] == '\0' || base[len] == '.' || base[len] == '-';
}

int bt_elfsym_resolve(pid_t pid, const char *spec, uint64_t *addr)
{
	char exe[PATH_MAX], lnk[64], lib[256];
	const char *colon, *sym = spec, *path = NULL;
	struct bt_map *maps = NULL;
	uint64_t value, bias;
	size_t n;
	int err;

	if (!spec || !*spec || !addr)
		return -EINVAL;
	colon = strchr(spec, ':');
	if (colon) {
		size_t len = (size_t)(colon - spec);

		if (!len || len >= sizeof(lib) || !colon[1])
			return -EINVAL;
		memcpy(lib, spec, len);
		lib[len] = '\0';
		sym = colon + 1;
	}

	err = bt_maps_read(pid, &maps, &n);
	if (err < 0)
		return err;
	if (colon) {
		for (size_t i = 0; i < n && !path; i++) {
			if (maps[i].path[0] == '/' &&
			    elfsym_lib_matches(maps[i].path, lib, strlen(lib)))
				path = maps[i].path;
		}
		err = path ? 0 : -ENOENT;
	} else {
		ssize_t len;

		snprintf(lnk, sizeof(lnk), "/proc/%d/exe", (int)pid);
		len = readlink(lnk, exe, sizeof(exe) - 1);
		if (len < 0) {
			err = errno == ENOENT ? -ESRCH : -errno;
		} else {
			exe[len] = '\0';
			path = exe;
		}
	}
	if (!err)
		err = bt_elfsym_lookup(path, sym, &value);
	if (!err)
		err = bt_elf_load_bias(path, maps, n, &bias);
	if (!err)
		*addr = value + bias;
	free(maps);
	return err;
}
