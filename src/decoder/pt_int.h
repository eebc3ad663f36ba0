/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internals of the raw PT decode session: pt_session.c (configuration,
 * trace, image), pt_print.c (the ptxed-style listing), pt_disasm.c
 * (capstone: lengths, direct targets, text) and pt_pevent.c (perf_event
 * sideband, the part of libipt-sb that ptxed uses).
 */
#ifndef BT_DECODER_PT_INT_H
#define BT_DECODER_PT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <intel-pt.h>

#include <btrail/decoder.h>

struct bt_iscache {
	struct pt_image_section_cache *ic;
	int refs;
};

struct ptd_sb;		/* pt_pevent.c */
struct ptd_disasm;	/* pt_disasm.c */

struct bt_ptdec {
	struct bt_ptdec_opts o;
	struct pt_config conf;
	int cpu_err;			/* pt_cpu_errata()'s, or 0 */
	struct bt_iscache *ic;
	struct pt_image *image;		/* the raw files */
	uint8_t *trace;
	size_t trace_size;
	char *trace_name;
	struct ptd_sb *sb;
	struct ptd_disasm *dis;
};

/* Parse "N" or "N-M" (C bases); 1 for N, 2 for N-M, 0 none, -1 bad. */
int ptd_parse_range(const char *s, uint64_t *begin, uint64_t *end);

/*
 * Split "FILE[:FROM[-TO]]" in place (@s is modified): the name stays in
 * @s. *@size is 0 without TO. Returns 0 or -EINVAL (TO <= FROM).
 */
int ptd_split_range(char *s, uint64_t *offset, uint64_t *size);

/* Read @size bytes (0: to the end) from @offset of @path. -errno. */
int ptd_read_file(const char *path, uint64_t offset, uint64_t size,
		  uint8_t **buf, size_t *len);

/* One instruction as capstone sees it. */
struct ptd_insn {
	uint8_t len;
	bool has_target;	/* a direct (relative) jump or call */
	uint64_t target;
	char text[224];		/* "mnemonic operands" */
};

struct ptd_disasm *ptd_disasm__new(void);
void ptd_disasm__free(struct ptd_disasm *dis);
/* Decode @raw (@n bytes) at @ip in @mode. 0 or -EILSEQ / -ENOMEM. */
int ptd_disasm(struct ptd_disasm *dis, enum pt_exec_mode mode,
	       const uint8_t *raw, size_t n, uint64_t ip, bool text,
	       struct ptd_insn *out);

/* Sideband (pt_pevent.c). */
struct ptd_sb_print {
	bool compact, verbose, offset, filename, time, sw, warn;
};
void ptd_sb_free(struct ptd_sb *sb);
/* Set up the decoders (read the first records) before decoding. */
int ptd_sb_init(struct bt_ptdec *d, FILE *out,
		const struct ptd_sb_print *p);
/*
 * Apply what @ev means for the sideband: print and apply records up to
 * its time, switch contexts. *@image is set when the decoder's image
 * must change. Returns 0 or a negative pt_error_code.
 */
int ptd_sb_event(struct bt_ptdec *d, const struct pt_event *ev,
		 struct pt_image **image);
/* At the end of a decode (records left are not shown, as in ptxed). */
void ptd_sb_fini(struct bt_ptdec *d);

#endif /* BT_DECODER_PT_INT_H */
