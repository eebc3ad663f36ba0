/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Where things are in a live process: its mappings (/proc/<pid>/maps),
 * its entry point (/proc/<pid>/auxv) and the run-time address of an ELF
 * symbol of its executable or of a mapped shared object (libelf, with
 * the load bias of PIE executables and shared objects). elf_errmsg()
 * text never leaves this module.
 */
#ifndef BT_DS_ELFSYM_H
#define BT_DS_ELFSYM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One line of /proc/<pid>/maps. */
struct bt_map {
	uint64_t start;
	uint64_t end;
	uint64_t offset;	/* file offset of start */
	uint32_t prot;		/* PROT_READ | PROT_WRITE | PROT_EXEC */
	bool shared;		/* 's' rather than 'p' */
	uint32_t dev_major;
	uint32_t dev_minor;
	uint64_t inode;
	char path[256];		/* "" for anonymous memory, "[vdso]", ... */
};

/*
 * bt_maps_read() - the mappings of @pid, in address order, in a
 * malloc'd array (*@maps, *@n; free() it). Returns 0, -ESRCH when the
 * process is gone, -ENOMEM, or -errno of open(2).
 */
int bt_maps_read(pid_t pid, struct bt_map **maps, size_t *n);

/* The map of @maps (@n) that holds @addr, or NULL. */
const struct bt_map *bt_maps_find(const struct bt_map *maps, size_t n,
				  uint64_t addr);

/* AT_ENTRY of @pid (the executable's entry point). 0, -ENOENT or -errno. */
int bt_proc_entry(pid_t pid, uint64_t *entry);

/*
 * bt_elfsym_lookup() - the value of the defined function or object
 * symbol @name in @path's .symtab, else its .dynsym (the link-time
 * address). Returns 0, -ENOENT when there is no such symbol,
 * -BT_ERRNO_FORMAT when @path is not a readable ELF file, or -errno of
 * open(2).
 */
int bt_elfsym_lookup(const char *path, const char *name, uint64_t *value);

/*
 * bt_elfsym_file_offset() - where the defined symbol @name of @path lies
 * in the file: its value taken through the PT_LOAD segment that holds it
 * (offset = value - p_vaddr + p_offset), and its st_size. What the
 * kernel's address filters for a file want. Returns 0, -ERANGE when no
 * loaded segment holds it (e.g. in .bss), or as bt_elfsym_lookup().
 */
int bt_elfsym_file_offset(const char *path, const char *name, uint64_t *off,
			  uint64_t *size);

/*
 * bt_elf_load_bias() - what to add to @path's link-time addresses to get
 * run-time ones in @pid, found from the mapping of its first PT_LOAD
 * segment in @maps (@n). 0, -ENOENT (not mapped) or as _lookup().
 */
int bt_elf_load_bias(const char *path, const struct bt_map *maps, size_t n,
		     uint64_t *bias);

/*
 * bt_elfsym_resolve() - the run-time address in @pid of @spec: "symbol"
 * of the main executable (/proc/<pid>/exe), or "lib:symbol" of the mapped
 * object whose file name is lib, or starts with lib followed by '.' or
 * '-' ("libc:puts", "libc.so.6:puts"). Returns 0, -EINVAL for a bad
 * @spec, -ENOENT when the object is not mapped or has no such symbol,
 * -ESRCH, or as bt_elfsym_lookup().
 */
int bt_elfsym_resolve(pid_t pid, const char *spec, uint64_t *addr);

#endif /* BT_DS_ELFSYM_H */
