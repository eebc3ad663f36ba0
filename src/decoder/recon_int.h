/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internals of struct bt_recon: recon.c (the bundle's events, the PT and
 * BTS flows), recon_image.c (binaries: ELF segments, symbols, lines, the
 * address space of each process) and recon_report.c (the crash report).
 */
#ifndef BT_DECODER_RECON_INT_H
#define BT_DECODER_RECON_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <btrail/bundle.h>
#include <btrail/decoder.h>

struct pt_image;
struct bt_insn_cache;

/* A symbol of a binary, link-time address. */
struct rc_sym {
	uint64_t addr, size;
	uint64_t end;		/* first address past it: addr + size, or
				 * for an unsized one its section's end */
	const char *name;	/* into the binary's string table copy */
};

/* A PT_LOAD segment. */
struct rc_seg {
	uint64_t vaddr, offset, filesz;
};

/* One binary (or the vdso copy), found on disk and read whole. */
struct rc_elf {
	char *path;		/* the file we read */
	uint8_t *data;		/* its bytes */
	size_t size;
	struct rc_seg *segs;
	size_t nsegs;
	struct rc_sym *syms;	/* sorted by addr */
	size_t nsyms;
	char *strs;		/* the names, one allocation */
	char *plt_strs;		/* the "name@plt" names, one allocation */
	void *dwarf;		/* Dwarf *, or NULL */
	void *elf;		/* Elf * over data */
	/* separate debug info found by build-id (.symtab, DWARF) */
	char *dbg_path;
	uint8_t *dbg_data;
	size_t dbg_size;
	void *dbg_elf;		/* Elf * over dbg_data, or NULL */
};

/* A mapping of one process: bt.mmap. */
struct rc_map {
	int32_t pid;
	uint64_t start, end, pgoff, time;
	char *file;		/* as recorded */
	char *build_id;		/* hex, or NULL */
	struct rc_elf *elf;	/* NULL: missing (warned once) */
	int64_t bias;		/* run-time - link-time */
	bool warned;
};

/* Where a thread's part of a stream lies. */
struct rc_chunk {
	uint64_t off, size;	/* AUX space */
	int32_t tid;
};

/* The trace of one stream. */
struct rc_stream {
	uint32_t index;
	int32_t cpu;
	/* PT: chunks by AUX offset */
	struct rc_pt {
		uint64_t off;
		uint8_t *data;
		size_t len;
		int32_t pid, tid;
		uint64_t time;
	} *pt;
	size_t npt;
	/* BTS records (24 bytes each) with their AUX offsets */
	uint8_t *recs;
	size_t nrecs;
	int32_t rec_pid, rec_tid;
	uint64_t rec_time;
	/* thread attribution of AUX ranges (bt.aux + bt.switch) */
	struct rc_chunk *chunks;
	size_t nchunks;
	/* losses: text lines, told at the start of the stream */
	char **lost;
	size_t nlost;
};

struct rc_trigger {
	bool valid;
	char reason[24];
	int32_t pid, tid, signo, code;
	uint64_t addr, ip, time;
	bool has_regs;
	uint64_t regs[27];
};

struct bt_recon {
	struct bt_recon_opts o;
	char *dir;
	struct bt_bundle *b;
	char *facility;		/* "pt-emu", "step", ... from btrail.json */
	bool has_cpu;
	uint16_t cpu_family;
	uint8_t cpu_model, cpu_stepping;
	bool pt_emu_cpu;	/* decode with bt_ptemu_config() */
	uint8_t mtc_freq, nom_freq;
	uint32_t cpuid15_eax, cpuid15_ebx;
	struct rc_map *maps;	/* in time order */
	size_t nmaps;
	struct rc_elf **elfs;	/* owned, one per file */
	char **elf_keys;	/* resolved path of each */
	size_t nelfs;
	struct rc_stream *streams;
	size_t nstreams;
	struct rc_trigger trig;
	struct bt_iscache *ic;
	struct bt_insn_cache *icache;
	void *cs;		/* capstone handle for text */
	uint64_t cs_handle;
	char exe[256];		/* the first mapped file with a path */
};

/* recon_image.c */
int rc_images_load(struct bt_recon *r);
void rc_images_free(struct bt_recon *r);
/* The mapping of @pid (-1 any) holding @addr, or NULL. */
const struct rc_map *rc_map_find(const struct bt_recon *r, int32_t pid,
				 uint64_t addr);
/*
 * Up to @n bytes of code at @addr of @pid into @buf. Returns the count
 * (0 when the address lies in a mapping without binary), or -ENOENT
 * when no mapping holds it.
 */
long rc_read(const struct bt_recon *r, int32_t pid, uint64_t addr,
	     uint8_t *buf, size_t n);
/*
 * The bytes at @addr of @pid as hex ("62 f1 fe 28 ...", up to 12 bytes)
 * into @out (48+ bytes), for an instruction capstone cannot decode.
 * Returns the count of bytes there, or -ENOENT when there is no code.
 */
int rc_hexbytes(const struct bt_recon *r, int32_t pid, uint64_t addr,
		char *out, size_t cap);
/* Add the mappings of @pid to @img (sections through the cache). */
int rc_image_fill(struct bt_recon *r, int32_t pid, struct pt_image *img);

/* recon.c */
const char *rc_signame(int signo);

#endif /* BT_DECODER_RECON_INT_H */
