// SPDX-License-Identifier: BSD-3-Clause
/*
 * The listing of a raw PT decode, line for line what libipt's ptxed
 * prints (with --no-inst: one address per instruction, event lines in
 * brackets, error lines "[<offset>, <ip>: <kind>: <message>]"), so that
 * libipt's test corpus and people's ptxed scripts work on it. After a
 * decode error the decoder goes on at the next PSB; a sync error that
 * makes no progress ends the decode.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/opts.h"
#include "decoder/pt_int.h"
#include "decoder/pt_par.h"

struct pr {
	struct bt_ptdec *d;
	FILE *out;
	struct bt_ptdec_print_opts o;
	struct bt_ptdec_stats st;
	bool stats;			/* counting for the stat lines */
	bool st_insn, st_blocks;
	uint64_t time;
	struct ptd_seg *seg;		/* a parallel decode's piece, or NULL */
	uint64_t seg_sync;		/* its PSB, until synchronised there */
	bool seg_stop;			/* past it: stop */
	struct pt_insn_decoder *insn;
	struct pt_block_decoder *blk;
};

static const char *mode_name(enum pt_exec_mode mode)
{
	switch (mode) {
	case ptem_unknown:
		return "<unknown>";
	case ptem_16bit:
		return "16-bit";
	case ptem_32bit:
		return "32-bit";
	case ptem_64bit:
		return "64-bit";
	}
	return "<invalid>";
}

static void print_ip(struct pr *p, bool want, const struct pt_event *ev,
		     uint64_t ip)
{
	if (want && p->o.event_ip && !ev->ip_suppressed)
		fprintf(p->out, ", ip: %016" PRIx64, ip);
}

static void print_event(struct pr *p, const struct pt_event *ev)
{
	FILE *f = p->out;

	fputc('[', f);
	if (p->o.event_time && ev->has_tsc)
		fprintf(f, "%016" PRIx64 "  ", ev->tsc);
	switch (ev->type) {
	case ptev_enabled:
		fputs(ev->variant.enabled.resumed ? "resumed" : "enabled", f);
		if (p->o.event_ip)
			fprintf(f, ", ip: %016" PRIx64, ev->variant.enabled.ip);
		break;
	case ptev_disabled:
		fputs("disabled", f);
		print_ip(p, true, ev, ev->variant.disabled.ip);
		break;
	case ptev_async_disabled:
		fputs("disabled", f);
		if (p->o.event_ip) {
			fprintf(f, ", at: %016" PRIx64,
				ev->variant.async_disabled.at);
			print_ip(p, true, ev, ev->variant.async_disabled.ip);
		}
		break;
	case ptev_async_branch:
		fputs("interrupt", f);
		if (p->o.event_ip) {
			fprintf(f, ", from: %016" PRIx64,
				ev->variant.async_branch.from);
			if (!ev->ip_suppressed)
				fprintf(f, ", to: %016" PRIx64,
					ev->variant.async_branch.to);
		}
		break;
	case ptev_paging:
		fprintf(f, "paging, cr3: %016" PRIx64 "%s",
			ev->variant.paging.cr3,
			ev->variant.paging.non_root ? ", nr" : "");
		break;
	case ptev_async_paging:
		fprintf(f, "paging, cr3: %016" PRIx64 "%s",
			ev->variant.async_paging.cr3,
			ev->variant.async_paging.non_root ? ", nr" : "");
		if (p->o.event_ip)
			fprintf(f, ", ip: %016" PRIx64,
				ev->variant.async_paging.ip);
		break;
	case ptev_overflow:
		fputs("overflow", f);
		print_ip(p, true, ev, ev->variant.overflow.ip);
		break;
	case ptev_exec_mode:
		fprintf(f, "exec mode: %s",
			mode_name(ev->variant.exec_mode.mode));
		print_ip(p, true, ev, ev->variant.exec_mode.ip);
		break;
	case ptev_tsx:
		if (ev->variant.tsx.aborted)
			fputs("aborted", f);
		else if (ev->variant.tsx.speculative)
			fputs("begin transaction", f);
		else
			fputs("committed", f);
		print_ip(p, true, ev, ev->variant.tsx.ip);
		break;
	case ptev_stop:
		fputs("stopped", f);
		break;
	case ptev_vmcs:
		fprintf(f, "vmcs, base: %016" PRIx64, ev->variant.vmcs.base);
		break;
	case ptev_async_vmcs:
		fprintf(f, "vmcs, base: %016" PRIx64,
			ev->variant.async_vmcs.base);
		if (p->o.event_ip)
			fprintf(f, ", ip: %016" PRIx64,
				ev->variant.async_vmcs.ip);
		break;
	case ptev_exstop:
		fputs("exstop", f);
		print_ip(p, true, ev, ev->variant.exstop.ip);
		break;
	case ptev_mwait:
		fprintf(f, "mwait %" PRIx32 " %" PRIx32,
			ev->variant.mwait.hints, ev->variant.mwait.ext);
		print_ip(p, true, ev, ev->variant.mwait.ip);
		break;
	case ptev_pwre:
		fprintf(f, "pwre c%u.%u", (ev->variant.pwre.state + 1) & 0xf,
			(ev->variant.pwre.sub_state + 1) & 0xf);
		if (ev->variant.pwre.hw)
			fputs(" hw", f);
		break;
	case ptev_pwrx:
		fputs("pwrx ", f);
		if (ev->variant.pwrx.interrupt)
			fputs("int: ", f);
		if (ev->variant.pwrx.store)
			fputs("st: ", f);
		if (ev->variant.pwrx.autonomous)
			fputs("hw: ", f);
		fprintf(f, "c%u (c%u)", (ev->variant.pwrx.last + 1) & 0xf,
			(ev->variant.pwrx.deepest + 1) & 0xf);
		break;
	case ptev_ptwrite:
		fprintf(f, "ptwrite: %" PRIx64, ev->variant.ptwrite.payload);
		print_ip(p, true, ev, ev->variant.ptwrite.ip);
		break;
	case ptev_tick:
		fputs("tick", f);
		print_ip(p, true, ev, ev->variant.tick.ip);
		break;
	case ptev_cbr:
		fprintf(f, "cbr: %x", ev->variant.cbr.ratio);
		break;
	case ptev_mnt:
		fprintf(f, "mnt: %" PRIx64, ev->variant.mnt.payload);
		break;
	default:
		fprintf(f, "event %d", (int)ev->type);
		break;
	}
	fputs("]\n", f);
}

static int get_offset(struct pr *p, uint64_t *off)
{
	return p->blk ? pt_blk_get_offset(p->blk, off) :
			pt_insn_get_offset(p->insn, off);
}

/*
 * Pieces of a parallel decode (pt_parallel.c, which says why): the
 * decoder reads on into the next piece's PSB+. At the first event past
 * it (or a resynchronisation at or after it) the piece is cut: what is
 * decoded after that goes to the piece's tail, a few instructions that
 * the stitcher checks against the next piece's head.
 */
static int seg_offset(struct pr *p, bool sync, uint64_t *off)
{
	if (sync)
		return p->blk ? pt_blk_get_sync_offset(p->blk, off) :
				pt_insn_get_sync_offset(p->insn, off);
	return p->blk ? pt_blk_get_offset(p->blk, off) :
			pt_insn_get_offset(p->insn, off);
}

static void seg_cut(struct pr *p, bool sync)
{
	struct ptd_seg *s = p->seg;
	uint64_t off;

	if (!s || s->cut || s->last || seg_offset(p, sync, &off) < 0 ||
	    off < (sync ? s->psb : s->end))
		return;
	/* Past the next piece's PSB+ (at a PSB after it, at an event after
	 * the PSB after it): no place to cut, stop. */
	s->cut = sync ? off == s->psb : off < s->next;
	s->cut_sync = sync;
	s->st_cut = p->st;
	p->out = s->tail;
	if (s->count)
		p->o.quiet = false;
	if (!s->cut)
		p->seg_stop = true;
}

/* Whether the piece has all it needs; a count-only head goes quiet. */
static bool seg_full(struct pr *p)
{
	struct ptd_seg *s = p->seg;

	if (!s)
		return false;
	if (p->seg_stop)
		return true;
	if (s->cut)
		return p->st.insn - s->st_cut.insn >= PTD_SEG_CHECK;
	if (s->quiet_out && p->st.insn >= PTD_SEG_CHECK) {
		p->out = s->quiet_out;
		p->o.quiet = true;
		s->quiet_out = NULL;
	}
	return false;
}

static void diagnose(struct pr *p, uint64_t ip, const char *kind, int err)
{
	uint64_t pos = 0;
	int e;

	p->st.errors++;
	e = get_offset(p, &pos);
	if (e < 0) {
		fprintf(p->out, "could not determine offset: %s\n",
			pt_errstr(pt_errcode(e)));
		fprintf(p->out, "[?, %" PRIx64 ": %s: %s]\n", ip, kind,
			pt_errstr(pt_errcode(err)));
	} else {
		fprintf(p->out, "[%" PRIx64 ", %" PRIx64 ": %s: %s]\n", pos, ip,
			kind, pt_errstr(pt_errcode(err)));
	}
}

/*
 * A loop of direct branches runs without reading trace (libipt follows
 * them from the code alone), so a hostile or wrong image can keep the
 * decoder busy for ever; ptxed would hang. Every PTD_STUCK_CHECK
 * instructions the trace offset is compared with the last one: after
 * PTD_STUCK_MAX instructions without progress an error line says so and
 * decoding resynchronises at the next PSB.
 */
#define PTD_STUCK_CHECK	(1u << 16)
#define PTD_STUCK_MAX	(1u << 22)
#define PTD_STUCK	(-100000)	/* not a libipt error code */

struct stuck {
	uint64_t count;		/* instructions since the last check */
	uint64_t same;		/* instructions at the same offset */
	uint64_t off;
};

/* Count @n instructions; true when the decoder is stuck (see above). */
static bool stuck(struct pr *p, struct stuck *s, uint64_t n)
{
	uint64_t off = 0;

	s->count += n;
	if (s->count < PTD_STUCK_CHECK)
		return false;
	if (get_offset(p, &off) < 0 || off != s->off) {
		s->off = off;
		s->same = 0;
	} else {
		s->same += s->count;
	}
	s->count = 0;
	return s->same >= PTD_STUCK_MAX;
}

static void stuck_line(struct pr *p, uint64_t ip)
{
	uint64_t pos = 0;

	p->st.errors++;
	(void)get_offset(p, &pos);
	fprintf(p->out, "[%" PRIx64 ", %" PRIx64 ": error: no trace for %u "
		"instructions: a loop of direct branches]\n", pos, ip,
		PTD_STUCK_MAX);
}

/* Events pending at @status: print them, feed the sideband. */
static int drain(struct pr *p, int status)
{
	while (status & pts_event_pending) {
		struct pt_image *image = NULL;
		struct pt_event ev;
		int err;

		seg_cut(p, false);
		status = p->blk ? pt_blk_event(p->blk, &ev, sizeof(ev)) :
				  pt_insn_event(p->insn, &ev, sizeof(ev));
		if (status < 0)
			return status;
		p->time = ev.tsc;
		if (!p->o.quiet && !ev.status_update)
			print_event(p, &ev);
		if (p->d->sb) {
			err = ptd_sb_event(p->d, &ev, &image);
			if (err < 0)
				return err;
			if (image) {
				err = p->blk ?
					pt_blk_set_image(p->blk, image) :
					pt_insn_set_image(p->insn, image);
				if (err < 0)
					return err;
			}
		}
	}
	return status;
}

/*
 * What to do after a synchronisation that returned @status: decode from
 * there, try the next PSB, or stop (at the trace's end, at the next
 * piece's PSB, or after a sync error that made no progress: we never
 * will). @sync is the offset of the last sync error.
 */
enum sync_next { SYNC_DECODE, SYNC_RETRY, SYNC_STOP };

static enum sync_next synced(struct pr *p, int status, uint64_t *sync)
{
	uint64_t new_sync;

	/* at the next piece's PSB: the single-threaded decode
	 * synchronises there as that piece does */
	if (status >= 0 && p->seg && (seg_cut(p, true), p->seg_stop ||
				      p->seg->cut))
		return SYNC_STOP;
	if (status >= 0) {
		p->st.syncs++;
		return SYNC_DECODE;
	}
	if (status == -pte_eos)
		return SYNC_STOP;
	/* Nothing decoded since: no instruction to name. */
	diagnose(p, 0, "sync error", status);
	if (get_offset(p, &new_sync) < 0 || new_sync <= *sync) {
		if (p->seg)
			p->seg->halt = true;
		return SYNC_STOP;
	}
	*sync = new_sync;
	return SYNC_RETRY;
}

/*
 * Before the next instruction or block: the events pending at @status.
 * Returns @status, -pte_eos at the trace's end, or an error.
 */
static int before_next(struct pr *p, int status)
{
	/* The common case has no event: skip the call. */
	if (status & pts_event_pending)
		status = drain(p, status);
	if (status < 0)
		return status;
	if (status & pts_eos) {
		if (!(status & pts_ip_suppressed) &&
		    !p->o.quiet && (!p->seg || p->seg->last))
			fputs("[end of trace]\n", p->out);
		return -pte_eos;
	}
	return status;
}

/*
 * After @n instructions that came with @status: @status (an error
 * included), -pte_eos when the piece has all it needs, or PTD_STUCK.
 */
static int after_next(struct pr *p, struct stuck *sk, uint64_t n,
		      int status)
{
	if (status < 0)
		return status;
	if (p->seg && seg_full(p))
		return -pte_eos;
	if (stuck(p, sk, n))
		return PTD_STUCK;
	return status;
}

static void print_insn_line(struct pr *p, uint64_t ip, bool speculative,
			    enum pt_exec_mode mode, const uint8_t *raw,
			    size_t size)
{
	struct ptd_insn in;

	if (speculative)
		fputs("? ", p->out);
	fprintf(p->out, "%016" PRIx64, ip);
	if (!p->o.no_inst) {
		if (ptd_disasm(p->d->dis, mode, raw, size, ip, true, &in))
			fputs("  (bad)", p->out);
		else
			fprintf(p->out, "  %s", in.text);
	}
	fputc('\n', p->out);
}

static void decode_insn(struct pr *p)
{
	struct stuck sk = { 0 };
	uint64_t sync = 0;

	for (;;) {
		struct pt_insn insn;
		enum sync_next next;
		int status;

		memset(&insn, 0, sizeof(insn));
		/* A segment starts at its PSB, not at the first one. */
		status = p->seg_sync ? pt_insn_sync_set(p->insn, p->seg_sync) :
				       pt_insn_sync_forward(p->insn);
		p->seg_sync = 0;
		next = synced(p, status, &sync);
		if (next == SYNC_STOP)
			break;
		if (next == SYNC_RETRY)
			continue;
		for (;;) {
			status = before_next(p, status);
			if (status < 0)
				break;
			status = pt_insn_next(p->insn, &insn, sizeof(insn));
			if (status < 0 && insn.iclass == ptic_error)
				break;
			/* even on error the instruction may be good */
			if (!p->o.quiet)
				print_insn_line(p, insn.ip, insn.speculative,
						insn.mode, insn.raw, insn.size);
			p->st.insn++;
			status = after_next(p, &sk, 1, status);
			if (status < 0)
				break;
		}
		if (status == PTD_STUCK) {
			stuck_line(p, insn.ip);
			memset(&sk, 0, sizeof(sk));
			continue;	/* to the next PSB */
		}
		if (!status)
			status = -pte_internal;
		if (status == -pte_eos)
			break;
		diagnose(p, insn.ip, "error", status);
	}
}

/* The bytes of the instruction at @ip of @block. */
static int block_fetch(struct pr *p, const struct pt_block *block,
		       uint64_t ip, uint8_t *raw, size_t *size)
{
	int n;

	if (!block->ninsn)
		return -pte_invalid;
	/* The last instruction of a block may cross a section's end. */
	if (ip == block->end_ip && block->truncated) {
		if (!block->size || block->size > 15)
			return -pte_bad_insn;
		memcpy(raw, block->raw, block->size);
		*size = block->size;
		return 0;
	}
	n = pt_iscache_read(p->d->ic->ic, raw, 15, block->isid, ip);
	if (n < 0)
		return n;
	*size = (size_t)n;
	return 0;
}

/* Where the instruction at @ip of @block leads when it is not taken
 * conditionally: next address, or a direct branch's target. */
static int next_ip(struct pr *p, const struct pt_block *block, uint64_t ip,
		   const uint8_t *raw, size_t size, uint64_t *next)
{
	struct ptd_insn in;

	if (ptd_disasm(p->d->dis, block->mode, raw, size, ip, false, &in))
		return -pte_bad_insn;
	*next = in.has_target ? in.target : ip + in.len;
	return 0;
}

static void diagnose_block(struct pr *p, const char *kind, int err,
			   const struct pt_block *block)
{
	uint64_t ip;

	if (!block->ninsn) {
		ip = block->ip;
	} else {
		ip = block->end_ip;
		/* A fetch after the block failed: report its address. */
		if (err == -pte_nomap || err == -pte_bad_insn) {
			uint8_t raw[16];
			size_t size;
			uint64_t next;

			if (!block_fetch(p, block, ip, raw, &size) &&
			    !next_ip(p, block, ip, raw, size, &next))
				ip = next;
		}
	}
	diagnose(p, ip, kind, err);
}

static void print_block(struct pr *p, const struct pt_block *block)
{
	uint16_t ninsn = block->ninsn;
	uint64_t ip = block->ip;

	if (p->o.show_blocks) {
		fputs("[block", p->out);
		if (p->stats)
			fprintf(p->out, " %" PRIx64, p->st.blocks);
		fputs("]\n", p->out);
	}
	if (!ninsn)
		return;
	for (;;) {
		struct ptd_insn in;
		uint8_t raw[16];
		size_t size;
		int err;

		if (block->speculative)
			fputs("? ", p->out);
		fprintf(p->out, "%016" PRIx64, ip);
		err = block_fetch(p, block, ip, raw, &size);
		if (err < 0) {
			fprintf(p->out, " [fetch error: %s]\n",
				pt_errstr(pt_errcode(err)));
			break;
		}
		if (ptd_disasm(p->d->dis, block->mode, raw, size, ip,
			       !p->o.no_inst, &in)) {
			fputs(" [decode error]\n", p->out);
			break;
		}
		if (!p->o.no_inst)
			fprintf(p->out, "  %s", in.text);
		fputc('\n', p->out);
		if (--ninsn == 0)
			break;
		ip = in.has_target ? in.target : ip + in.len;
	}
	if (ip != block->end_ip)
		diagnose(p, ip, "reconstruct error", -pte_nosync);
}

static void decode_block(struct pr *p)
{
	struct stuck sk = { 0 };
	uint64_t sync = 0;

	for (;;) {
		struct pt_block block;
		enum sync_next next;
		int status;

		memset(&block, 0, sizeof(block));
		status = p->seg_sync ? pt_blk_sync_set(p->blk, p->seg_sync) :
				       pt_blk_sync_forward(p->blk);
		p->seg_sync = 0;
		next = synced(p, status, &sync);
		if (next == SYNC_STOP)
			break;
		if (next == SYNC_RETRY)
			continue;
		for (;;) {
			status = before_next(p, status);
			if (status < 0)
				break;
			status = pt_blk_next(p->blk, &block, sizeof(block));
			if (status < 0 && !block.ninsn)
				break;
			p->st.insn += block.ninsn;
			p->st.blocks++;
			if (!p->o.quiet)
				print_block(p, &block);
			status = after_next(p, &sk, block.ninsn, status);
			if (status < 0)
				break;
		}
		if (status == PTD_STUCK) {
			stuck_line(p, block.end_ip);
			memset(&sk, 0, sizeof(sk));
			continue;	/* to the next PSB */
		}
		if (!status)
			status = -pte_internal;
		if (status == -pte_eos)
			break;
		diagnose_block(p, "error", status, &block);
	}
}

int ptd_print(struct bt_ptdec *d, FILE *out,
	      const struct bt_ptdec_print_opts *opts,
	      struct bt_ptdec_stats *stats, struct ptd_seg *seg)
{
	struct pt_config conf;
	struct pr p;
	int err;

	if (!d || !out || !d->trace)
		return -EINVAL;
	memset(&p, 0, sizeof(p));
	err = bt_opts_copy(&p.o, sizeof(p.o), opts);
	if (err)
		return err;
	if (seg && (seg->begin >= d->trace_size || seg->stop > d->trace_size ||
		    seg->psb < seg->begin || seg->end < seg->psb ||
		    seg->stop < seg->end || (!seg->last && !seg->tail)))
		return -EINVAL;
	p.d = d;
	p.out = out;
	if (p.o.stat) {
		p.stats = true;
		p.st_insn = p.o.stat_insn;
		p.st_blocks = p.o.stat_blocks;
		if (!p.st_insn && !p.st_blocks) {
			p.st_insn = true;
			p.st_blocks = d->o.kind == BT_PTDEC_BLOCK;
		}
	}
	if (!d->dis) {
		d->dis = ptd_disasm__new();
		if (!d->dis)
			return -ENOMEM;
	}
	if (d->cpu_err && (!seg || !seg->begin))
		fprintf(out, "[0, 0: config error: %s]\n",
			pt_errstr(pt_errcode(d->cpu_err)));

	conf = d->conf;
	conf.begin = d->trace;
	conf.end = d->trace + d->trace_size;
	/* A segment of a parallel decode (pt_parallel.c): the decoder sees
	 * the trace end after the next segment's PSB+ and then some. */
	if (seg) {
		conf.end = d->trace + seg->stop;
		p.seg = seg;
		p.seg_sync = seg->begin;
		if (seg->count) {
			p.o.quiet = false;
			p.o.no_inst = true;
		}
	}
	if (d->o.kind == BT_PTDEC_BLOCK) {
		p.blk = pt_blk_alloc_decoder(&conf);
		if (!p.blk)
			return -ENOMEM;
		err = pt_blk_set_image(p.blk, d->image);
	} else {
		p.insn = pt_insn_alloc_decoder(&conf);
		if (!p.insn)
			return -ENOMEM;
		err = pt_insn_set_image(p.insn, d->image);
	}
	if (err < 0) {
		err = -EINVAL;
		goto out;
	}
	if (d->sb) {
		struct ptd_sb_print sp = {
			.compact = p.o.sb_compact, .verbose = p.o.sb_verbose,
			.offset = p.o.sb_offset, .filename = p.o.sb_filename,
			.time = p.o.sb_time, .sw = p.o.sb_switch,
			.warn = p.o.sb_warn,
		};

		err = ptd_sb_init(d, out, &sp);
		if (err < 0) {
			err = err == -pte_nomem ? -ENOMEM : -EINVAL;
			goto out;
		}
	}
	if (p.blk)
		decode_block(&p);
	else
		decode_insn(&p);
	if (d->sb)
		ptd_sb_fini(d);
	if (p.stats) {
		if (p.st_insn)
			fprintf(out, "insn: %" PRIu64 ".\n", p.st.insn);
		if (p.st_blocks)
			fprintf(out, "blocks:\t%" PRIu64 ".\n", p.st.blocks);
	}
	if (stats)
		*stats = p.st;
	err = fflush(out) || ferror(out) ? -EIO : 0;
out:
	pt_blk_free_decoder(p.blk);
	pt_insn_free_decoder(p.insn);
	return err;
}

int bt_ptdec__print(struct bt_ptdec *d, FILE *out,
		    const struct bt_ptdec_print_opts *opts,
		    struct bt_ptdec_stats *stats)
{
	return ptd_print(d, out, opts, stats, NULL);
}
