/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the views (views.c) and the exports (export.c) share: a symbol
 * cache in front of bt_recon__symbolize(), JSON string output, the JSON
 * Lines form of an item (docs/script-json.md) and the call tracker that
 * turns instructions into nested function segments.
 */
#ifndef BT_DECODER_VIEWS_INT_H
#define BT_DECODER_VIEWS_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <btrail/decoder.h>

#define VW_SYMCACHE	4096u	/* direct-mapped, by address */

struct vw_symc {
	uint64_t addr;
	int32_t pid;
	bool valid;
	bool known;		/* an image holds addr */
	struct bt_sym sym;
};

struct ptd_disasm;

struct vw {
	struct bt_recon *r;
	FILE *out;
	struct ptd_disasm *dis;
	struct vw_symc *cache;	/* VW_SYMCACHE entries */
};

int vw_init(struct vw *v, struct bt_recon *r, FILE *out);
void vw_fini(struct vw *v);

/* The symbol of @addr (cached); NULL name when unknown. */
const struct bt_sym *vw_sym(struct vw *v, int32_t pid, uint64_t addr);
/* "name+0xoff", "name" or "??" into @buf. */
const char *vw_symstr(const struct bt_sym *s, char *buf, size_t len);
/* The iclass's name ("call", "jcc", ...). */
const char *vw_iclass_name(uint32_t iclass);
/* The item kind's name ("insn", "gap", ...). */
const char *vw_kind_name(uint32_t kind);
/* Disassemble an INSN item's bytes; "(bad)" when capstone cannot. */
const char *vw_disasm(struct vw *v, const struct bt_recon_item *it,
		      char *buf, size_t len);

/* @s as a JSON string, quotes included. */
void vw_json_str(FILE *f, const char *s);
/* The members "@key" (the name, or null) and "@key_off" of symbol @s. */
void vw_json_sym(FILE *f, const char *key, const struct bt_sym *s);
/* One JSON line of item @it, symbols and disassembly included. */
void vw_json_item(struct vw *v, const struct bt_recon_item *it);

/* ---- Call tracking ------------------------------------------------------ */

/* How a function segment was entered. */
enum vw_how { VW_START = 0, VW_CALL, VW_RETURN, VW_JUMP, VW_RESUME };

struct vw_calls;

/*
 * Told of each segment when it is complete: @level may be negative (a
 * return out of the function the trace began in); the minimum level of
 * a thread is known only at its end, so the tracker buffers the segments
 * of each thread (stream, tid) and tells them, thread after thread, when
 * the stream ends or at vw_calls__flush().
 */
struct vw_seg {
	uint32_t kind;		/* BT_RI_INSN for a function segment, else
				   the item kind of an event/gap/... line */
	uint32_t how;		/* enum vw_how */
	int64_t level;
	const char *name;	/* function (owned by the recon) or NULL */
	char *text;		/* non-INSN: the item's text (owned) */
	uint64_t ip;		/* first instruction */
	uint64_t first, last;	/* instruction numbers in the stream, 1.. */
	uint64_t t_first, t_last;/* trace times (0: unknown) */
	uint32_t stream;
	int32_t pid, tid;
	bool timed;		/* every instruction of the thread had a
				   time, never going back, fine enough */
};

/* Called per segment at flush, with the thread's minimum level. */
typedef int (*vw_seg_fn)(void *ctx, const struct vw_seg *s, int64_t min);

struct vw_calls *vw_calls__new(struct vw *v, vw_seg_fn fn, void *ctx);
void vw_calls__free(struct vw_calls *c);
/* Feed an item (INSN or event kinds). Returns 0 or a negative errno. */
int vw_calls__item(struct vw_calls *c, const struct bt_recon_item *it);
/* Tell the buffered segments. Returns 0, fn's value or -errno. */
int vw_calls__flush(struct vw_calls *c);

#endif /* BT_DECODER_VIEWS_INT_H */
