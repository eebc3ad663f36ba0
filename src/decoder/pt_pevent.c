// SPDX-License-Identifier: BSD-3-Clause
/*
 * perf_event sideband for the raw PT decode (ptxed's --pevent:*), the
 * part of libipt-sb that ptxed uses, so that its listings match:
 *
 * - Each stream is a file of perf records whose sample_id_all trailer
 *   holds what --pevent:sample-type says. Records are read with the
 *   perf.data record parser (pd_sb_record) and checked whole when the
 *   stream is added: a malformed file is refused there, naming file and
 *   offset.
 * - Records of all streams are taken in time order (perf time converted
 *   to TSC with time-zero/shift/mult, minus tsc-offset; a record without
 *   a time is due at once). A record is printed and applied when a decode
 *   event's TSC reaches it.
 * - Each process (pid) has a context: an image of its own, filled by
 *   MMAP/MMAP2 records (from any stream). FORK copies the parent's image,
 *   COMM.EXEC starts an empty one. On primary streams ITRACE_START
 *   switches the decoder to the process's image at once; SWITCH and
 *   SWITCH_CPU_WIDE, and COMM.EXEC, ask for a switch that is made when
 *   the trace is (or may be) in the kernel, or its place is unknown, as
 *   ptxed does: the user code before the switch still runs in the old
 *   image.
 * - Problems in the sideband are lines of the listing,
 *   "[FILE:OFFSET sideband error: ...]" always and "... warning: ...]"
 *   with --sb:warn (lost records or trace, unmappable sections).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <btrail/errno.h>

#include "common/bytes.h"
#include "common/log.h"
#include "common/opts.h"
#include "decoder/perfdata_sb.h"
#include "decoder/pt_int.h"

/* perf_event_attr.sample_type bits of the sample_id trailer, in order */
#define SB_TID		(1ull << 1)
#define SB_TIME		(1ull << 2)
#define SB_ID		(1ull << 6)
#define SB_CPU		(1ull << 7)
#define SB_STREAM_ID	(1ull << 9)
#define SB_IDENTIFIER	(1ull << 16)

#define SB_AUX_TRUNCATED	0x1ull

/* Sideband warnings (positive) as ptxed names them. */
enum { SBW_LOST = 1, SBW_TRACE_LOST, SBW_SECTION_LOST };

/* Where the trace is, as far as the events tell. */
enum sb_loc {
	LOC_UNKNOWN,
	LOC_KERNEL,
	LOC_USER,
	LOC_LIKELY_KERNEL,
	LOC_LIKELY_USER,
};

enum sb_abi { ABI_UNKNOWN, ABI_X64, ABI_X32, ABI_IA32 };

/* A process: its image. Referenced by the session and the streams. */
struct sb_ctx {
	struct sb_ctx *next;
	uint32_t pid;
	unsigned refs;
	enum sb_abi abi;
	struct pt_image *image;
};

/* The sample_id trailer of the current record. */
struct sb_sample {
	bool tid, time, id, stream_id, cpu, identifier;
	uint32_t pid_v, tid_v, cpu_v;
	uint64_t time_v, id_v, stream_id_v, identifier_v;
};

struct sb_stream {
	struct sb_stream *next;		/* in the due or retired list */
	char *name;			/* the file, as given */
	uint8_t *buf;
	size_t size;
	struct bt_pevent_opts o;	/* strings owned */
	/* the current record: [cur, nxt); cur == nxt: none left */
	uint64_t cur, nxt;
	struct bt_perf_record rec;
	struct sb_sample smp;
	uint64_t tsc;			/* when it is due */
	struct sb_ctx *ctx, *next_ctx;
	enum sb_loc loc;
};

struct ptd_sb {
	struct sb_stream **all;		/* in the order given */
	size_t nr;
	struct sb_stream *due;		/* by tsc, ascending */
	struct sb_stream *retired;	/* at their end, switch pending */
	struct sb_ctx *ctxs;
	struct bt_ptdec *d;
	FILE *out;
	struct ptd_sb_print p;
};

/* ---- contexts ---------------------------------------------------------- */

static void ctx_put(struct sb_ctx *c)
{
	if (!c || --c->refs)
		return;
	pt_image_free(c->image);
	free(c);
}

static struct sb_ctx *ctx_find(struct ptd_sb *sb, uint32_t pid)
{
	for (struct sb_ctx *c = sb->ctxs; c; c = c->next)
		if (c->pid == pid)
			return c;
	return NULL;
}

/* The context of @pid, made (with an empty image) if there is none. */
static int ctx_get_pid(struct ptd_sb *sb, uint32_t pid, struct sb_ctx **out)
{
	char name[16];
	struct sb_ctx *c = ctx_find(sb, pid);

	if (c) {
		*out = c;
		return 0;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -pte_nomem;
	snprintf(name, sizeof(name), "pid-%" PRIx32, pid);
	c->image = pt_image_alloc(name);
	if (!c->image) {
		free(c);
		return -pte_nomem;
	}
	c->pid = pid;
	c->refs = 1;			/* the session's */
	c->next = sb->ctxs;
	sb->ctxs = c;
	*out = c;
	return 0;
}

static void ctx_remove_pid(struct ptd_sb *sb, uint32_t pid)
{
	for (struct sb_ctx **pp = &sb->ctxs; *pp; pp = &(*pp)->next) {
		struct sb_ctx *c = *pp;

		if (c->pid != pid)
			continue;
		*pp = c->next;
		ctx_put(c);
		return;
	}
}

/* ---- listing lines ------------------------------------------------------ */

static const char *warn_text(int w)
{
	switch (w) {
	case SBW_LOST:
		return "sideband lost";
	case SBW_TRACE_LOST:
		return "trace lost";
	case SBW_SECTION_LOST:
		return "image section lost";
	}
	return "bad errcode";
}

/*
 * Report @err at the current record of @s: a negative pt_error_code is
 * an error (always shown), a positive SBW_* a warning (with --sb:warn).
 */
static void report(struct ptd_sb *sb, const struct sb_stream *s, int err)
{
	if (err >= 0 && !sb->p.warn)
		return;
	fprintf(sb->out, "[%s:%016" PRIx64 " sideband %s: %s]\n", s->name,
		s->cur, err < 0 ? "error" : "warning",
		err < 0 ? pt_errstr(pt_errcode(err)) : warn_text(err));
}

/* Whether libipt's record reader knows @type (and reads its samples). */
static bool known_type(uint32_t type)
{
	return (type >= BT_PERF_REC_MMAP && type <= BT_PERF_REC_FORK) ||
	       (type >= BT_PERF_REC_MMAP2 &&
		type <= BT_PERF_REC_SWITCH_CPU_WIDE);
}

static uint64_t raw64(const struct bt_perf_record *r, unsigned at)
{
	return bt_le64((const unsigned char *)r->raw + at);
}

static uint32_t raw32(const struct bt_perf_record *r, unsigned at)
{
	return bt_le32((const unsigned char *)r->raw + at);
}

static void print_compact(FILE *f, const struct bt_perf_record *r)
{
	switch (r->type) {
	case BT_PERF_REC_MMAP:
		fprintf(f, "PERF_RECORD_MMAP  %" PRIx32 "/%" PRIx32 ", %" PRIx64
			", %" PRIx64 ", %" PRIx64 ", %s", r->u.mmap.pid,
			r->u.mmap.tid, r->u.mmap.addr, r->u.mmap.len,
			r->u.mmap.pgoff, r->u.mmap.filename);
		break;
	case BT_PERF_REC_MMAP2:
		fprintf(f, "PERF_RECORD_MMAP2  %" PRIx32 "/%" PRIx32 ", %"
			PRIx64 ", %" PRIx64 ", %" PRIx64 ", %" PRIx32 ", %"
			PRIx32 ", %" PRIx64 ", %" PRIx64 ", %" PRIx32 ", %"
			PRIx32 ", %s", r->u.mmap.pid, r->u.mmap.tid,
			r->u.mmap.addr, r->u.mmap.len, r->u.mmap.pgoff,
			raw32(r, 40), raw32(r, 44), raw64(r, 48), raw64(r, 56),
			r->u.mmap.prot, r->u.mmap.flags, r->u.mmap.filename);
		break;
	case BT_PERF_REC_LOST:
		fprintf(f, "PERF_RECORD_LOST  %" PRIx64 ", %" PRIx64,
			r->u.lost.id, r->u.lost.lost);
		break;
	case BT_PERF_REC_COMM:
		fprintf(f, "PERF_RECORD_COMM%s  %" PRIx32 "/%" PRIx32 ", %s",
			r->u.comm.exec ? ".EXEC" : "", r->u.comm.pid,
			r->u.comm.tid, r->u.comm.comm);
		break;
	case BT_PERF_REC_EXIT:
	case BT_PERF_REC_FORK:
		fprintf(f, "PERF_RECORD_%s  %" PRIx32 "/%" PRIx32 ", %" PRIx32
			"/%" PRIx32 ", %" PRIx64,
			r->type == BT_PERF_REC_EXIT ? "EXIT" : "FORK",
			r->u.fork.pid, r->u.fork.tid, r->u.fork.ppid,
			r->u.fork.ptid, r->u.fork.time);
		break;
	case BT_PERF_REC_THROTTLE:
	case BT_PERF_REC_UNTHROTTLE:
		fprintf(f, "PERF_RECORD_%sTHROTTLE  %" PRIx64 ", %" PRIx64
			", %" PRIx64,
			r->type == BT_PERF_REC_UNTHROTTLE ? "UN" : "",
			raw64(r, 8), raw64(r, 16), raw64(r, 24));
		break;
	case BT_PERF_REC_AUX:
		fprintf(f, "PERF_RECORD_AUX%s  %" PRIx64 ", %" PRIx64 ", %"
			PRIx64,
			r->u.aux.flags & SB_AUX_TRUNCATED ? ".TRUNCATED" : "",
			r->u.aux.aux_offset, r->u.aux.aux_size, r->u.aux.flags);
		break;
	case BT_PERF_REC_ITRACE_START:
		fprintf(f, "PERF_RECORD_ITRACE_START  %" PRIx32 "/%" PRIx32,
			r->u.itrace_start.pid, r->u.itrace_start.tid);
		break;
	case BT_PERF_REC_LOST_SAMPLES:
		fprintf(f, "PERF_RECORD_LOST_SAMPLES  %" PRIx64,
			r->u.lost_samples.lost);
		break;
	case BT_PERF_REC_SWITCH:
		fprintf(f, "PERF_RECORD_SWITCH.%s", r->u.sw.out ? "OUT" : "IN");
		break;
	case BT_PERF_REC_SWITCH_CPU_WIDE:
		fprintf(f, "PERF_RECORD_SWITCH_CPU_WIDE.%s  %" PRIx32 "/%"
			PRIx32, r->u.sw.out ? "OUT" : "IN",
			r->u.sw.next_prev_pid, r->u.sw.next_prev_tid);
		break;
	default:
		fprintf(f, "UNKNOWN (%" PRIx32 ", %x)", r->type, r->misc);
		break;
	}
}

static void print_verbose(FILE *f, const struct bt_perf_record *r)
{
	switch (r->type) {
	case BT_PERF_REC_MMAP:
	case BT_PERF_REC_MMAP2:
		fprintf(f, "PERF_RECORD_MMAP%s\n  pid: %" PRIx32 "\n  tid: %"
			PRIx32 "\n  addr: %" PRIx64 "\n  len: %" PRIx64
			"\n  pgoff: %" PRIx64,
			r->type == BT_PERF_REC_MMAP2 ? "2" : "", r->u.mmap.pid,
			r->u.mmap.tid, r->u.mmap.addr, r->u.mmap.len,
			r->u.mmap.pgoff);
		if (r->type == BT_PERF_REC_MMAP2)
			fprintf(f, "\n  maj: %" PRIx32 "\n  min: %" PRIx32
				"\n  ino: %" PRIx64 "\n  ino_generation: %"
				PRIx64 "\n  prot: %" PRIx32 "\n  flags: %"
				PRIx32, raw32(r, 40), raw32(r, 44),
				raw64(r, 48), raw64(r, 56), r->u.mmap.prot,
				r->u.mmap.flags);
		fprintf(f, "\n  filename: %s", r->u.mmap.filename);
		break;
	case BT_PERF_REC_LOST:
		fprintf(f, "PERF_RECORD_LOST\n  id: %" PRIx64 "\n  lost: %"
			PRIx64, r->u.lost.id, r->u.lost.lost);
		break;
	case BT_PERF_REC_COMM:
		fprintf(f, "PERF_RECORD_COMM%s\n  pid: %" PRIx32 "\n  tid: %"
			PRIx32 "\n  comm: %s", r->u.comm.exec ? ".EXEC" : "",
			r->u.comm.pid, r->u.comm.tid, r->u.comm.comm);
		break;
	case BT_PERF_REC_EXIT:
	case BT_PERF_REC_FORK:
		fprintf(f, "PERF_RECORD_%s\n  pid: %" PRIx32 "\n  ppid: %"
			PRIx32 "\n  tid: %" PRIx32 "\n  ptid: %" PRIx32
			"\n  time: %" PRIx64,
			r->type == BT_PERF_REC_EXIT ? "EXIT" : "FORK",
			r->u.fork.pid, r->u.fork.ppid, r->u.fork.tid,
			r->u.fork.ptid, r->u.fork.time);
		break;
	case BT_PERF_REC_THROTTLE:
	case BT_PERF_REC_UNTHROTTLE:
		fprintf(f, "PERF_RECORD_%sTHROTTLE\n  time: %" PRIx64
			"\n  id: %" PRIx64 "\n  stream_id: %" PRIx64,
			r->type == BT_PERF_REC_UNTHROTTLE ? "UN" : "",
			raw64(r, 8), raw64(r, 16), raw64(r, 24));
		break;
	case BT_PERF_REC_AUX:
		fprintf(f, "PERF_RECORD_AUX%s\n  aux offset: %" PRIx64
			"\n  aux size: %" PRIx64 "\n  flags: %" PRIx64,
			r->u.aux.flags & SB_AUX_TRUNCATED ? ".TRUNCATED" : "",
			r->u.aux.aux_offset, r->u.aux.aux_size, r->u.aux.flags);
		break;
	case BT_PERF_REC_ITRACE_START:
		fprintf(f, "PERF_RECORD_ITRACE_START\n  pid: %" PRIx32
			"\n  tid: %" PRIx32, r->u.itrace_start.pid,
			r->u.itrace_start.tid);
		break;
	case BT_PERF_REC_LOST_SAMPLES:
		fprintf(f, "PERF_RECORD_LOST_SAMPLES\n  lost: %" PRIx64,
			r->u.lost_samples.lost);
		break;
	case BT_PERF_REC_SWITCH:
		fprintf(f, "PERF_RECORD_SWITCH.%s", r->u.sw.out ? "OUT" : "IN");
		break;
	case BT_PERF_REC_SWITCH_CPU_WIDE: {
		const char *pfx = r->u.sw.out ? "next" : "prev";

		fprintf(f, "PERF_RECORD_SWITCH_CPU_WIDE.%s\n  %s pid: %" PRIx32
			"\n  %s tid: %" PRIx32, r->u.sw.out ? "OUT" : "IN",
			pfx, r->u.sw.next_prev_pid, pfx,
			r->u.sw.next_prev_tid);
		break;
	}
	default:
		fprintf(f, "UNKNOWN\n  type: %" PRIx32 "\n  misc: %x", r->type,
			r->misc);
		break;
	}
}

static void print_samples(FILE *f, const struct sb_sample *m, bool verbose)
{
	if (!verbose) {
		fputs("  {", f);
		if (m->tid)
			fprintf(f, " %" PRIx32 "/%" PRIx32, m->pid_v, m->tid_v);
		if (m->time)
			fprintf(f, " %" PRIx64, m->time_v);
		if (m->id)
			fprintf(f, " %" PRIx64, m->id_v);
		if (m->cpu)
			fprintf(f, " cpu-%" PRIx32, m->cpu_v);
		if (m->stream_id)
			fprintf(f, " %" PRIx64, m->stream_id_v);
		if (m->identifier)
			fprintf(f, " %" PRIx64, m->identifier_v);
		fputs(" }", f);
		return;
	}
	if (m->tid)
		fprintf(f, "\n  pid: %" PRIx32 "\n  tid: %" PRIx32, m->pid_v,
			m->tid_v);
	if (m->time)
		fprintf(f, "\n  time: %" PRIx64, m->time_v);
	if (m->id)
		fprintf(f, "\n  id: %" PRIx64, m->id_v);
	if (m->cpu)
		fprintf(f, "\n  cpu: %" PRIx32, m->cpu_v);
	if (m->stream_id)
		fprintf(f, "\n  stream id: %" PRIx64, m->stream_id_v);
	if (m->identifier)
		fprintf(f, "\n  identifier: %" PRIx64, m->identifier_v);
}

/* The current record of @s, as --sb:* asks. */
static void print_record(struct ptd_sb *sb, const struct sb_stream *s)
{
	const struct ptd_sb_print *p = &sb->p;
	FILE *f = sb->out;

	if (!p->compact && !p->verbose && !p->offset && !p->filename &&
	    !p->time)
		return;
	if (p->filename && p->offset)
		fprintf(f, "%s:%016" PRIx64 "  ", s->name, s->cur);
	else if (p->filename)
		fprintf(f, "%s  ", s->name);
	else if (p->offset)
		fprintf(f, "%016" PRIx64 "  ", s->cur);
	if (p->time && s->smp.time)
		fprintf(f, "%016" PRIx64 "  ", s->tsc);
	if (p->compact) {
		print_compact(f, &s->rec);
		print_samples(f, &s->smp, false);
	} else if (p->verbose) {
		print_verbose(f, &s->rec);
		print_samples(f, &s->smp, true);
	}
	fputc('\n', f);
}

/* ---- reading records ---------------------------------------------------- */

/* perf time to TSC (the inverse of perf_event_mmap_page's conversion). */
static uint64_t time_to_tsc(const struct bt_pevent_opts *o, uint64_t time)
{
	uint32_t mult = o->time_mult ? o->time_mult : 1;
	uint64_t quot, rem;

	/* time 0 is for synthesized records: the beginning of time. */
	if (!time)
		return 0;
	time -= o->time_zero;
	quot = time / mult;
	rem = time % mult;
	return (quot << o->time_shift) + ((rem << o->time_shift) / mult);
}

/* The trailer of the record, which pd_sb_record found to fit. */
static void read_samples(struct sb_stream *s)
{
	const struct bt_perf_record *r = &s->rec;
	const unsigned char *p = r->raw;
	uint64_t st = s->o.sample_type;
	struct sb_sample *m = &s->smp;
	unsigned n, q;

	memset(m, 0, sizeof(*m));
	if (!known_type(r->type))
		return;
	n = 8 * (!!(st & SB_TID) + !!(st & SB_TIME) + !!(st & SB_ID) +
		 !!(st & SB_STREAM_ID) + !!(st & SB_CPU) +
		 !!(st & SB_IDENTIFIER));
	if (n > r->size)
		return;
	q = r->size - n;
	if (st & SB_TID) {
		m->tid = true;
		m->pid_v = bt_le32(p + q);
		m->tid_v = bt_le32(p + q + 4);
		q += 8;
	}
	if (st & SB_TIME) {
		m->time = true;
		m->time_v = bt_le64(p + q);
		q += 8;
	}
	if (st & SB_ID) {
		m->id = true;
		m->id_v = bt_le64(p + q);
		q += 8;
	}
	if (st & SB_STREAM_ID) {
		m->stream_id = true;
		m->stream_id_v = bt_le64(p + q);
		q += 8;
	}
	if (st & SB_CPU) {
		m->cpu = true;
		m->cpu_v = bt_le32(p + q);
		q += 8;
	}
	if (st & SB_IDENTIFIER) {
		m->identifier = true;
		m->identifier_v = bt_le64(p + q);
	}
}

/*
 * Read the next record of @s. Returns 0, -pte_eos at the end, or
 * -pte_bad_packet (reported) for a record that does not parse.
 */
static int fetch(struct ptd_sb *sb, struct sb_stream *s)
{
	uint64_t next, tsc, off;

	s->cur = s->nxt;
	if (s->cur >= s->size)
		return -pte_eos;
	if (pd_sb_record(s->buf, s->size, s->cur, s->o.sample_type, s->name,
			 &s->rec, &next) || next <= s->cur) {
		report(sb, s, -pte_bad_packet);
		return -pte_bad_packet;
	}
	s->nxt = next;
	read_samples(s);
	if (!s->smp.time) {
		s->tsc = 0;	/* due at once */
		return 0;
	}
	/*
	 * Apply the stream tsc-offset earlier, without wrapping: a huge
	 * offset (a negative one, as two's complement) pushes records later
	 * but never past the end of time.
	 */
	tsc = time_to_tsc(&s->o, s->smp.time_v);
	off = s->o.tsc_offset;
	if (off <= tsc)
		tsc -= off;
	else if ((int64_t)off >= 0)
		tsc = 0;
	else
		tsc = tsc - off >= tsc ? tsc - off : UINT64_MAX;
	s->tsc = tsc;
	return 0;
}

/* Put @s into @list, before the first stream due at the same time. */
static void insert(struct sb_stream **list, struct sb_stream *s)
{
	while (*list && s->tsc > (*list)->tsc)
		list = &(*list)->next;
	s->next = *list;
	*list = s;
}

/* ---- applying records --------------------------------------------------- */

static int switch_now(struct ptd_sb *sb, struct sb_stream *s,
		      struct pt_image **image)
{
	struct sb_ctx *next = s->next_ctx;

	if (!image || !next)
		return -pte_internal;
	if (sb->p.sw)
		fprintf(sb->out, "[context: %s]\n",
			pt_image_name(next->image) ?
			pt_image_name(next->image) : "<unknown>");
	*image = next->image;
	s->next_ctx = NULL;
	ctx_put(s->ctx);
	s->ctx = next;
	return 0;
}

/* Switch to @c when the trace allows (at once if it is current). */
static void prepare_switch(struct sb_stream *s, struct sb_ctx *c)
{
	if (s->next_ctx == c)
		return;
	/* A newer switch replaces a pending one. */
	ctx_put(s->next_ctx);
	s->next_ctx = NULL;
	if (s->ctx == c)
		return;
	c->refs++;
	s->next_ctx = c;
}

static int prepare_switch_pid(struct ptd_sb *sb, struct sb_stream *s,
			      uint32_t pid)
{
	struct sb_ctx *c;
	int err = ctx_get_pid(sb, pid, &c);

	if (err)
		return err;
	prepare_switch(s, c);
	return 0;
}

static enum sb_abi elf_abi(const char *path)
{
	unsigned char h[20];
	enum sb_abi abi = ABI_UNKNOWN;
	FILE *f = fopen(path, "rb");

	if (!f)
		return ABI_UNKNOWN;
	if (fread(h, 1, sizeof(h), f) == sizeof(h) &&
	    !memcmp(h, "\177ELF", 4) && h[6] == 1) {
		uint16_t machine = bt_le16(h + 18);

		if (h[4] == 2)
			abi = ABI_X64;
		else if (h[4] == 1 && machine == 3)
			abi = ABI_IA32;
		else if (h[4] == 1 && machine == 62)
			abi = ABI_X32;
	}
	fclose(f);
	return abi;
}

/* MMAP/MMAP2: map the file into the image of @pid. */
static int map(struct ptd_sb *sb, struct sb_stream *s, uint32_t pid,
	       const char *file, uint64_t pgoff, uint64_t len, uint64_t addr)
{
	struct pt_image_section_cache *ic = sb->d->ic->ic;
	char path[PATH_MAX];
	struct sb_ctx *c;
	int err, isid;

	err = ctx_get_pid(sb, pid, &c);
	if (err)
		return err;
	if (file[0] == '[') {
		const char *vdso = NULL;

		/* [vdso] is the user's file for the process's ABI; the
		 * kernel's own mappings cannot be read from files. */
		if (strcmp(file, "[vdso]")) {
			report(sb, s, SBW_SECTION_LOST);
			return 0;
		}
		if (c->abi == ABI_X64)
			vdso = s->o.vdso_x64;
		else if (c->abi == ABI_X32)
			vdso = s->o.vdso_x32;
		else if (c->abi == ABI_IA32)
			vdso = s->o.vdso_ia32;
		if (!vdso) {
			report(sb, s, -pte_bad_config);
			return 0;
		}
		file = vdso;
	} else if (!strcmp(file, "//anon") || strstr(file, " (deleted)")) {
		/* JIT code, or a file that is gone: nothing to read. */
		report(sb, s, SBW_SECTION_LOST);
		return 0;
	} else if (s->o.sysroot) {
		if ((size_t)snprintf(path, sizeof(path), "%s%s", s->o.sysroot,
				     file) >= sizeof(path))
			return -pte_invalid;
		file = path;
	}
	if (c->abi == ABI_UNKNOWN)
		c->abi = elf_abi(file);
	isid = pt_iscache_add_file(ic, file, pgoff, len, addr);
	if (isid < 0)
		return isid;
	return pt_image_add_cached(c->image, ic, isid, NULL);
}

static int fork_rec(struct ptd_sb *sb, const struct bt_perf_record *r)
{
	uint32_t pid = r->u.fork.pid, ppid = r->u.fork.ppid;
	struct sb_ctx *c, *parent;
	int err;

	/* A new thread: its process has its context already. */
	if (pid == ppid)
		return 0;
	if (pid != r->u.fork.tid)
		return -pte_internal;
	/* A reused pid: the old process is gone (EXIT comes too early to
	 * drop it there: the process still runs in the kernel). */
	ctx_remove_pid(sb, pid);
	err = ctx_get_pid(sb, pid, &c);
	if (err)
		return err;
	parent = ctx_find(sb, ppid);
	if (!parent)
		return 0;
	err = pt_image_copy(c->image, parent->image);
	return err < 0 ? err : 0;
}

static int exec_rec(struct ptd_sb *sb, struct sb_stream *s,
		    struct pt_image **image, uint32_t pid)
{
	struct sb_ctx *c;
	int err;

	/*
	 * A new context rather than an emptied image: the trace still runs
	 * the old one until it enters the kernel, where the switch is made.
	 * The MMAPs that follow fill the new one.
	 */
	ctx_remove_pid(sb, pid);
	err = ctx_get_pid(sb, pid, &c);
	if (err || !image)
		return err;
	prepare_switch(s, c);
	return 0;
}

/* Apply the current record of @s; @image is NULL for secondary streams. */
static int apply_record(struct ptd_sb *sb, struct sb_stream *s,
			struct pt_image **image)
{
	const struct bt_perf_record *r = &s->rec;
	int err;

	switch (r->type) {
	case BT_PERF_REC_ITRACE_START:
		if (!image)
			return 0;
		err = prepare_switch_pid(sb, s, r->u.itrace_start.pid);
		if (err || !s->next_ctx)
			return err;
		/* Tracing just started: no need to wait for the kernel. */
		return switch_now(sb, s, image);
	case BT_PERF_REC_FORK:
		return fork_rec(sb, r);
	case BT_PERF_REC_COMM:
		if (!r->u.comm.exec)
			return 0;
		return exec_rec(sb, s, image, r->u.comm.pid);
	case BT_PERF_REC_SWITCH:
		if (!image || r->u.sw.out)
			return 0;
		if (!s->smp.tid)
			return -pte_bad_config;
		return prepare_switch_pid(sb, s, s->smp.pid_v);
	case BT_PERF_REC_SWITCH_CPU_WIDE:
		if (!image)
			return 0;
		if (!r->u.sw.out)
			return s->smp.tid ?
			       prepare_switch_pid(sb, s, s->smp.pid_v) : 0;
		return prepare_switch_pid(sb, s, r->u.sw.next_prev_pid);
	case BT_PERF_REC_MMAP:
	case BT_PERF_REC_MMAP2:
		/* Kernel code is changed at boot and insmod: its files on
		 * disk do not hold what ran. */
		if ((r->misc & BT_PERF_MISC_CPUMODE_MASK) ==
		    BT_PERF_MISC_KERNEL)
			return 0;
		return map(sb, s, r->u.mmap.pid, r->u.mmap.filename,
			   r->u.mmap.pgoff, r->u.mmap.len, r->u.mmap.addr);
	case BT_PERF_REC_LOST:
		report(sb, s, SBW_LOST);
		return 0;
	case BT_PERF_REC_AUX:
		if (image && (r->u.aux.flags & SB_AUX_TRUNCATED))
			report(sb, s, SBW_TRACE_LOST);
		return 0;
	default:
		return 0;
	}
}

static enum sb_loc loc_ip(const struct sb_stream *s, uint64_t ip)
{
	uint64_t ks = s->o.kernel_start ? s->o.kernel_start : UINT64_MAX;

	return ip < ks ? LOC_USER : LOC_KERNEL;
}

/* Tracing stopped at an unknown IP: it likely left for the other side. */
static enum sb_loc loc_flip(enum sb_loc from)
{
	switch (from) {
	case LOC_KERNEL:
	case LOC_LIKELY_KERNEL:
		return LOC_LIKELY_USER;
	case LOC_USER:
	case LOC_LIKELY_USER:
		return LOC_LIKELY_KERNEL;
	default:
		return LOC_UNKNOWN;
	}
}

static enum sb_loc loc_event(const struct sb_stream *s,
			     const struct pt_event *ev)
{
	bool ip = !ev->ip_suppressed;

	switch (ev->type) {
	case ptev_enabled:
		return loc_ip(s, ev->variant.enabled.ip);
	case ptev_disabled:
		return ip ? loc_ip(s, ev->variant.disabled.ip) :
			    loc_flip(s->loc);
	case ptev_async_disabled:
		return ip ? loc_ip(s, ev->variant.async_disabled.ip) :
			    loc_flip(loc_ip(s, ev->variant.async_disabled.at));
	case ptev_async_branch:
		return loc_ip(s, ev->variant.async_branch.to);
	case ptev_async_paging:
		if (ip)
			return loc_ip(s, ev->variant.async_paging.ip);
		return LOC_LIKELY_KERNEL;
	case ptev_paging:
		return LOC_LIKELY_KERNEL;
	case ptev_overflow:
		return ip ? loc_ip(s, ev->variant.overflow.ip) : LOC_UNKNOWN;
	case ptev_exec_mode:
		return ip ? loc_ip(s, ev->variant.exec_mode.ip) : LOC_UNKNOWN;
	case ptev_tsx:
		return ip ? loc_ip(s, ev->variant.tsx.ip) : LOC_UNKNOWN;
	case ptev_exstop:
		return ip ? loc_ip(s, ev->variant.exstop.ip) : LOC_UNKNOWN;
	case ptev_mwait:
		return ip ? loc_ip(s, ev->variant.mwait.ip) : LOC_UNKNOWN;
	case ptev_ptwrite:
		return ip ? loc_ip(s, ev->variant.ptwrite.ip) : LOC_UNKNOWN;
	case ptev_tick:
		return ip ? loc_ip(s, ev->variant.tick.ip) : LOC_UNKNOWN;
	default:
		return LOC_UNKNOWN;
	}
}

static bool kernelish(enum sb_loc l)
{
	return l == LOC_KERNEL || l == LOC_LIKELY_KERNEL || l == LOC_UNKNOWN;
}

/*
 * Show @ev to @s after the due records were taken: apply a record still
 * due, else follow kernel/user and make a pending switch. Returns 0, or
 * -pte_eos when @s has nothing left to do.
 */
static int present(struct ptd_sb *sb, struct sb_stream *s,
		   const struct pt_event *ev, struct pt_image **image)
{
	enum sb_loc old;
	int err;

	if (s->cur != s->nxt && (!s->smp.time || s->tsc <= ev->tsc)) {
		err = apply_record(sb, s, image);
		if (err < 0)
			report(sb, s, err);
		return 0;
	}
	old = s->loc;
	s->loc = loc_event(s, ev);
	if (!s->next_ctx)
		return s->cur == s->nxt ? -pte_eos : 0;
	/* In the kernel, where exec and switches happen (or unknown: the
	 * window before tracing is enabled again). */
	if (kernelish(old) || kernelish(s->loc)) {
		err = switch_now(sb, s, image);
		if (err < 0)
			report(sb, s, err);
	}
	return 0;
}

static void present_all(struct ptd_sb *sb, struct sb_stream **list,
			const struct pt_event *ev, struct pt_image **image)
{
	while (*list) {
		struct sb_stream *s = *list;

		if (present(sb, s, ev, s->o.primary ? image : NULL) < 0) {
			*list = s->next;	/* done */
			s->next = NULL;
			continue;
		}
		list = &s->next;
	}
}

int ptd_sb_event(struct bt_ptdec *d, const struct pt_event *ev,
		 struct pt_image **image)
{
	struct ptd_sb *sb = d->sb;

	if (!sb || !ev || !image)
		return -pte_internal;
	/* Records due by the event's time, in time order. ptxed does not
	 * look at has_tsc: relative time works too. */
	while (sb->due && ev->tsc >= sb->due->tsc) {
		struct sb_stream *s = sb->due;
		int err;

		sb->due = s->next;
		s->next = NULL;
		print_record(sb, s);
		err = apply_record(sb, s, s->o.primary ? image : NULL);
		if (err < 0)
			report(sb, s, err);
		err = fetch(sb, s);
		if (err == -pte_eos) {
			s->next = sb->retired;
			sb->retired = s;
		} else if (!err) {
			insert(&sb->due, s);
		}
	}
	present_all(sb, &sb->due, ev, image);
	present_all(sb, &sb->retired, ev, image);
	return 0;
}

/* ---- set-up ------------------------------------------------------------- */

/* Forget the state of a previous decode: contexts, positions. */
static void reset(struct ptd_sb *sb)
{
	for (size_t i = 0; i < sb->nr; i++) {
		struct sb_stream *s = sb->all[i];

		ctx_put(s->ctx);
		ctx_put(s->next_ctx);
		s->ctx = s->next_ctx = NULL;
		s->cur = s->nxt = 0;
		s->next = NULL;
		s->loc = LOC_UNKNOWN;
	}
	while (sb->ctxs) {
		struct sb_ctx *c = sb->ctxs;

		sb->ctxs = c->next;
		ctx_put(c);
	}
	sb->due = sb->retired = NULL;
}

static void stream_free(struct sb_stream *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->buf);
	free((char *)s->o.sysroot);
	free((char *)s->o.vdso_x64);
	free((char *)s->o.vdso_x32);
	free((char *)s->o.vdso_ia32);
	free(s);
}

void ptd_sb_free(struct ptd_sb *sb)
{
	if (!sb)
		return;
	reset(sb);
	for (size_t i = 0; i < sb->nr; i++)
		stream_free(sb->all[i]);
	free(sb->all);
	free(sb);
}

int ptd_sb_init(struct bt_ptdec *d, FILE *out, const struct ptd_sb_print *p)
{
	struct ptd_sb *sb = d->sb;

	if (!sb)
		return 0;
	reset(sb);
	sb->d = d;
	sb->out = out;
	sb->p = *p;
	/*
	 * First records, last stream first: each goes before those due at
	 * the same time, so that ties go in the order the streams were
	 * given. A stream that cannot start is left out.
	 */
	for (size_t i = sb->nr; i-- > 0;) {
		struct sb_stream *s = sb->all[i];

		if (!fetch(sb, s))
			insert(&sb->due, s);
	}
	return 0;
}

void ptd_sb_fini(struct bt_ptdec *d)
{
	/* As ptxed: records after the trace's end are not shown. The
	 * contexts stay until the next decode or the session's end, as the
	 * decoder may still hold their images. */
	(void)d;
}

static char *dup_opt(const char *s, int *err)
{
	char *c;

	if (!s)
		return NULL;
	c = strdup(s);
	if (!c)
		*err = -ENOMEM;
	return c;
}

int bt_ptdec__add_pevent(struct bt_ptdec *d, const char *spec,
			 const struct bt_pevent_opts *opts)
{
	struct bt_pevent_opts o;
	struct sb_stream *s, **all;
	struct bt_perf_record rec;
	uint64_t off, size, pos, next;
	int err;

	if (!d || !spec)
		return -EINVAL;
	err = bt_opts_copy(&o, sizeof(o), opts);
	if (err)
		return err;
	/* A TSC is 64 bits: a larger shift means nothing (and is UB). */
	if (o.time_shift > 63) {
		pr_warn("%s: time-shift %u is over 63", spec, o.time_shift);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->name = strdup(spec);
	if (!s->name) {
		free(s);
		return -ENOMEM;
	}
	err = ptd_split_range(s->name, &off, &size);
	if (err) {
		pr_warn("%s: bad range", spec);
		goto fail;
	}
	err = ptd_read_file(s->name, off, size, &s->buf, &s->size);
	if (err)
		goto fail;
	/* Check every record now: the decode then only meets good ones. */
	for (pos = 0; pos < s->size; pos = next) {
		if (pd_sb_record(s->buf, s->size, pos, o.sample_type, s->name,
				 &rec, &next)) {
			pr_warn("%s: malformed perf_event sideband at offset "
				"0x%" PRIx64 " (sample-type 0x%" PRIx64 ")",
				s->name, off + pos, o.sample_type);
			err = -BT_ERRNO_FORMAT;
			goto fail;
		}
	}
	s->o = o;
	s->o.sysroot = dup_opt(o.sysroot, &err);
	s->o.vdso_x64 = dup_opt(o.vdso_x64, &err);
	s->o.vdso_x32 = dup_opt(o.vdso_x32, &err);
	s->o.vdso_ia32 = dup_opt(o.vdso_ia32, &err);
	if (err)
		goto fail;
	if (!d->sb) {
		d->sb = calloc(1, sizeof(*d->sb));
		if (!d->sb) {
			err = -ENOMEM;
			goto fail;
		}
	}
	all = realloc(d->sb->all, (d->sb->nr + 1) * sizeof(*all));
	if (!all) {
		err = -ENOMEM;
		goto fail;
	}
	d->sb->all = all;
	all[d->sb->nr++] = s;
	return 0;
fail:
	stream_free(s);
	return err;
}
