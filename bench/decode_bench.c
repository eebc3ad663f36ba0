// SPDX-License-Identifier: BSD-3-Clause
/*
 * decode_bench - how fast btrail decodes Intel PT, against libipt's own
 * block decoder (not a timed test: it prints figures and never fails on
 * them).
 *
 * The input is made here, in memory: a small x86-64 code image assembled
 * by hand (a main loop with conditional branches, an indirect call
 * through a function table, an indirect jump through a case table,
 * direct calls two deep, a short inner loop and returns), and a PT trace
 * of it running for 100 M instructions (10 M with --quick), written with
 * libipt's packet encoder the way the hardware would write it:
 *
 *   - PSB+ (PSB, TSC, MODE.EXEC, FUP, PSBEND) every 4 KiB of trace; a
 *     PSB resets the last IP and the return-compression stack;
 *   - one TNT bit per conditional branch, packed into TNT-8 (up to 6
 *     bits) or TNT-64 (up to 47), flushed before any packet with an IP;
 *   - TIP for indirect calls and jumps, the IP compressed against the
 *     last IP (update-16/32, sext-48, update-48, full);
 *   - return compression: a return to the address its call pushed is
 *     one taken TNT bit (a TIP when a PSB came between them);
 *   - TIP.PGE at the start, FUP + TIP.PGD at the end.
 *
 * Branch outcomes and indirect targets come from a fixed-seed PRNG, so
 * every run decodes the same trace. The code image is written to a
 * temporary file (libipt maps code from files) and removed at the end.
 *
 * A first pass checks that both decoders give back exactly the number of
 * instructions generated, with no decode error. Then, alternately, three
 * times each (the median is the figure, min..max beside it):
 *
 *   raw      libipt 2.0.5's block decoder, the least a decoder can do:
 *            pt_blk_sync_forward, then pt_blk_next and pt_blk_event until
 *            the end (the image through an image-section cache, as
 *            ptxed has it);
 *   btrail   bt_ptdec__count(): the session's decode path of `btrail
 *            script --pt`, with its event, sideband and error handling,
 *            writing nothing.
 *
 * Instructions per second by the decoding thread's CPU time (the wall
 * clock's beside it: on a shared VM it also counts other processes),
 * and the ratio btrail / raw against the target (at least 0.9),
 * marked PASS or MISS. The exit status
 * is 0 unless something failed (a decode that disagrees with the trace
 * is a failure).
 */
#include <errno.h>
#include <inttypes.h>
#include <intel-pt.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <btrail/decoder.h>
#include <btrail/errno.h>

#include "bench_util.h"

#define RUNS		3
#define FULL_INSNS	100000000ull
#define QUICK_INSNS	10000000ull
#define BASE		0x400000ull	/* where the code image is mapped */
#define PSB_PERIOD	4096u		/* bytes of trace between PSBs */
#define CHUNK		(64u * 1024)	/* the encoder's buffer */
#define SLACK		64u		/* room for the largest packet group */
#define RETSTACK	64u		/* the processor's return stack depth */
#define TNT8_MAX	6u
#define TNT64_MAX	47u

/* ---- The code image: a tiny assembler with labels --------------------- */

enum cls { C_OTHER, C_JCC, C_JMP, C_CALL, C_RET, C_JMP_IND, C_CALL_IND };

#define MAX_INSNS	128
#define MAX_LABELS	32
#define MAX_TARGETS	4

struct insn {
	uint32_t off;
	uint8_t len;
	uint8_t cls;
	uint8_t rel;		/* bytes of the rel8/rel32 field (direct) */
	int8_t label;		/* direct target */
	uint8_t taken;		/* JCC: probability taken, in 1/256 */
	uint8_t ntargets;	/* indirect: the labels it may go to */
	int8_t targets[MAX_TARGETS];
};

struct code {
	uint8_t bytes[1024];
	uint32_t size;
	struct insn in[MAX_INSNS];
	int n;
	int32_t label[MAX_LABELS];
	int16_t at[1024];	/* offset -> insn index, -1 inside one */
};

enum {
	L_LOOP, L_A, L_B, L_CASE0, L_CASE1, L_CASE2, L_CASE3, L_JOIN,
	L_LEAF, L_INNER, L_INNER_LOOP, L_NEST, L_NEST_OUT, L_NLABELS
};

static struct insn *emit(struct code *c, enum cls cls, const char *hex)
{
	struct insn *in = &c->in[c->n++];

	memset(in, 0, sizeof(*in));
	in->off = c->size;
	in->cls = (uint8_t)cls;
	in->label = -1;
	for (const char *h = hex; *h; h += h[2] ? 3 : 2) {
		unsigned v;

		sscanf(h, "%2x", &v);
		c->bytes[c->size++] = (uint8_t)v;
	}
	in->len = (uint8_t)(c->size - in->off);
	return in;
}

/* A direct branch: @hex is its opcode; a rel32 (or rel8) follows. */
static void emit_rel(struct code *c, enum cls cls, const char *hex,
		     int label, int rel, unsigned taken)
{
	struct insn *in = emit(c, cls, hex);

	in->rel = (uint8_t)rel;
	in->label = (int8_t)label;
	in->taken = (uint8_t)taken;
	memset(c->bytes + c->size, 0, (size_t)rel);
	c->size += (uint32_t)rel;
	in->len = (uint8_t)(in->len + rel);
}

static void emit_ind(struct code *c, enum cls cls, const char *hex, int n,
		     const int *targets)
{
	struct insn *in = emit(c, cls, hex);

	in->ntargets = (uint8_t)n;
	for (int i = 0; i < n; i++)
		in->targets[i] = (int8_t)targets[i];
}

static void label(struct code *c, int l)
{
	c->label[l] = (int32_t)c->size;
}

/* Fill in the displacements of the direct branches; index by offset. */
static int link_code(struct code *c)
{
	for (uint32_t i = 0; i < c->size; i++)
		c->at[i] = -1;
	for (int i = 0; i < c->n; i++) {
		struct insn *in = &c->in[i];
		int64_t d;

		c->at[in->off] = (int16_t)i;
		if (in->label < 0)
			continue;
		d = (int64_t)c->label[in->label] - (in->off + in->len);
		if (in->rel == 1) {
			if (d < -128 || d > 127)
				return -ERANGE;
			c->bytes[in->off + in->len - 1] = (uint8_t)(int8_t)d;
		} else {
			int32_t d32 = (int32_t)d;

			memcpy(c->bytes + in->off + in->len - 4, &d32, 4);
		}
	}
	return 0;
}

static int build_code(struct code *c)
{
	static const int fns[] = { L_LEAF, L_INNER, L_NEST };
	static const int cases[] = { L_CASE0, L_CASE1, L_CASE2, L_CASE3 };

	memset(c, 0, sizeof(*c));
	/* main: for (;;) { ... } */
	label(c, L_LOOP);
	emit(c, C_OTHER, "89 c8");			/* mov eax, ecx */
	emit(c, C_OTHER, "83 e0 03");			/* and eax, 3 */
	emit(c, C_OTHER, "48 8d 15 00 02 00 00");	/* lea rdx, [rip+tab] */
	emit(c, C_OTHER, "83 f8 02");			/* cmp eax, 2 */
	emit_rel(c, C_JCC, "0f 82", L_A, 4, 128);	/* jb .a */
	emit_rel(c, C_CALL, "e8", L_LEAF, 4, 0);	/* call leaf */
	emit(c, C_OTHER, "83 c1 01");			/* add ecx, 1 */
	label(c, L_A);
	emit(c, C_OTHER, "48 8b 04 c2");		/* mov rax, [rdx+rax*8] */
	emit_ind(c, C_CALL_IND, "ff d0", 3, fns);	/* call rax */
	emit(c, C_OTHER, "85 c9");			/* test ecx, ecx */
	emit_rel(c, C_JCC, "75", L_B, 1, 230);		/* jne .b */
	emit(c, C_OTHER, "90");				/* nop */
	label(c, L_B);
	emit_ind(c, C_JMP_IND, "ff 24 c2", 4, cases);	/* jmp [rdx+rax*8] */
	label(c, L_CASE0);
	emit(c, C_OTHER, "83 c0 01");			/* add eax, 1 */
	emit(c, C_OTHER, "31 d2");			/* xor edx, edx */
	emit_rel(c, C_JMP, "e9", L_JOIN, 4, 0);		/* jmp .join */
	label(c, L_CASE1);
	emit(c, C_OTHER, "83 e8 01");			/* sub eax, 1 */
	emit_rel(c, C_JCC, "74", L_JOIN, 1, 80);	/* je .join */
	emit(c, C_OTHER, "90");				/* nop */
	emit_rel(c, C_JMP, "eb", L_JOIN, 1, 0);		/* jmp .join */
	label(c, L_CASE2);
	emit_rel(c, C_CALL, "e8", L_LEAF, 4, 0);	/* call leaf */
	emit_rel(c, C_JMP, "eb", L_JOIN, 1, 0);		/* jmp .join */
	label(c, L_CASE3);
	emit(c, C_OTHER, "90");				/* nop */
	emit(c, C_OTHER, "48 89 c6");			/* mov rsi, rax */
	label(c, L_JOIN);
	emit(c, C_OTHER, "ff c9");			/* dec ecx */
	emit_rel(c, C_JCC, "0f 85", L_LOOP, 4, 240);	/* jnz .loop */
	emit_rel(c, C_CALL, "e8", L_NEST, 4, 0);	/* call nest */
	emit_rel(c, C_JMP, "e9", L_LOOP, 4, 0);		/* jmp .loop */

	/* leaf: a few instructions and a return */
	label(c, L_LEAF);
	emit(c, C_OTHER, "53");				/* push rbx */
	emit(c, C_OTHER, "89 fb");			/* mov ebx, edi */
	emit(c, C_OTHER, "83 c3 02");			/* add ebx, 2 */
	emit(c, C_OTHER, "5b");				/* pop rbx */
	emit(c, C_RET, "c3");				/* ret */

	/* inner: a short loop (about five times round) */
	label(c, L_INNER);
	emit(c, C_OTHER, "31 c0");			/* xor eax, eax */
	label(c, L_INNER_LOOP);
	emit(c, C_OTHER, "83 c0 01");			/* add eax, 1 */
	emit(c, C_OTHER, "83 f8 08");			/* cmp eax, 8 */
	emit_rel(c, C_JCC, "7c", L_INNER_LOOP, 1, 205);	/* jl .inner_loop */
	emit(c, C_RET, "c3");				/* ret */

	/* nest: calls two deep */
	label(c, L_NEST);
	emit(c, C_OTHER, "55");				/* push rbp */
	emit(c, C_OTHER, "48 89 e5");			/* mov rbp, rsp */
	emit_rel(c, C_CALL, "e8", L_LEAF, 4, 0);	/* call leaf */
	emit(c, C_OTHER, "85 c0");			/* test eax, eax */
	emit_rel(c, C_JCC, "74", L_NEST_OUT, 1, 128);	/* je .out */
	emit_rel(c, C_CALL, "e8", L_INNER, 4, 0);	/* call inner */
	label(c, L_NEST_OUT);
	emit(c, C_OTHER, "5d");				/* pop rbp */
	emit(c, C_RET, "c3");				/* ret */
	return link_code(c);
}

/* ---- The trace: the code run, as PT packets ------------------------ */

struct gen {
	struct pt_encoder *enc;
	uint8_t *chunk;		/* the encoder's buffer */
	uint8_t *out;		/* the whole trace */
	size_t len, cap;
	uint32_t since_psb;
	uint64_t tsc;
	bool have_last;
	uint64_t last_ip;
	uint64_t tnt;		/* pending bits, oldest highest */
	unsigned ntnt;
	uint64_t ret[RETSTACK];	/* return compression, as the CPU has it */
	unsigned ret_top, ret_count;
	uint64_t rng;
	uint64_t psbs, tnt_bits, tips;
};

static uint32_t rnd(struct gen *g)
{
	/* xorshift64*: fast, and the same sequence every run */
	g->rng ^= g->rng >> 12;
	g->rng ^= g->rng << 25;
	g->rng ^= g->rng >> 27;
	return (uint32_t)((g->rng * 0x2545f4914f6cdd1dull) >> 32);
}

static int drain(struct gen *g)
{
	uint64_t off = 0;

	if (pt_enc_get_offset(g->enc, &off) < 0)
		return -BT_ERRNO_INTERNAL;
	if (g->len + off > g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 16u << 20;
		uint8_t *p;

		while (cap < g->len + off)
			cap *= 2;
		p = realloc(g->out, cap);
		if (!p)
			return -ENOMEM;
		g->out = p;
		g->cap = cap;
	}
	memcpy(g->out + g->len, g->chunk, (size_t)off);
	g->len += (size_t)off;
	return pt_enc_sync_set(g->enc, 0) < 0 ? -BT_ERRNO_INTERNAL : 0;
}

static int put(struct gen *g, struct pt_packet *p)
{
	uint64_t off = 0;
	int n, err;

	if (pt_enc_get_offset(g->enc, &off) < 0)
		return -BT_ERRNO_INTERNAL;
	if (off + SLACK > CHUNK) {
		err = drain(g);
		if (err < 0)
			return err;
	}
	n = pt_enc_next(g->enc, p);
	if (n < 0) {
		fprintf(stderr, "decode_bench: libipt encoder: %s\n",
			pt_errstr(pt_errcode(n)));
		return -BT_ERRNO_INTERNAL;
	}
	g->since_psb += (uint32_t)n;
	return 0;
}

static int put_simple(struct gen *g, enum pt_packet_type type)
{
	struct pt_packet p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	return put(g, &p);
}

static uint64_t sext48(uint64_t ip)
{
	return (uint64_t)((int64_t)(ip << 16) >> 16);
}

/* A packet with an IP, compressed as the hardware would compress it. */
static int put_ip(struct gen *g, enum pt_packet_type type, uint64_t ip,
		  bool suppress)
{
	uint64_t diff = ip ^ g->last_ip;
	struct pt_packet p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	if (suppress) {
		p.payload.ip.ipc = pt_ipc_suppressed;
		return put(g, &p);
	}
	if (g->have_last && !(diff >> 16)) {
		p.payload.ip.ipc = pt_ipc_update_16;
		p.payload.ip.ip = ip & 0xffffull;
	} else if (g->have_last && !(diff >> 32)) {
		p.payload.ip.ipc = pt_ipc_update_32;
		p.payload.ip.ip = ip & 0xffffffffull;
	} else if (sext48(ip) == ip) {
		p.payload.ip.ipc = pt_ipc_sext_48;
		p.payload.ip.ip = ip & 0xffffffffffffull;
	} else if (g->have_last && !(diff >> 48)) {
		p.payload.ip.ipc = pt_ipc_update_48;
		p.payload.ip.ip = ip & 0xffffffffffffull;
	} else {
		p.payload.ip.ipc = pt_ipc_full;
		p.payload.ip.ip = ip;
	}
	g->have_last = true;
	g->last_ip = ip;
	return put(g, &p);
}

static int tnt_flush(struct gen *g)
{
	struct pt_packet p;
	int err;

	if (!g->ntnt)
		return 0;
	memset(&p, 0, sizeof(p));
	p.type = g->ntnt <= TNT8_MAX ? ppt_tnt_8 : ppt_tnt_64;
	p.payload.tnt.bit_size = (uint8_t)g->ntnt;
	p.payload.tnt.payload = g->tnt;
	err = put(g, &p);
	g->tnt = 0;
	g->ntnt = 0;
	return err;
}

static int tnt(struct gen *g, bool taken)
{
	g->tnt_bits++;
	g->tnt = (g->tnt << 1) | (taken ? 1u : 0u);
	return ++g->ntnt == TNT64_MAX ? tnt_flush(g) : 0;
}

static int tip(struct gen *g, uint64_t ip)
{
	int err = tnt_flush(g);

	g->tips++;
	return err ? err : put_ip(g, ppt_tip, ip, false);
}

static int mode_exec(struct gen *g)
{
	struct pt_packet p;

	memset(&p, 0, sizeof(p));
	p.type = ppt_mode;
	p.payload.mode.leaf = pt_mol_exec;
	p.payload.mode.bits.exec = pt_set_exec_mode(ptem_64bit);
	return put(g, &p);
}

/* PSB+; with a FUP at @ip when tracing is on (@ip nonzero). */
static int psb(struct gen *g, uint64_t ip)
{
	struct pt_packet p;
	int err;

	err = tnt_flush(g);
	if (err < 0)
		return err;
	g->since_psb = 0;
	g->psbs++;
	g->have_last = false;
	g->ret_count = 0;
	err = put_simple(g, ppt_psb);
	if (err < 0)
		return err;
	memset(&p, 0, sizeof(p));
	p.type = ppt_tsc;
	g->tsc += 100000;
	p.payload.tsc.tsc = g->tsc;
	err = put(g, &p);
	if (!err)
		err = mode_exec(g);
	if (!err && ip)
		err = put_ip(g, ppt_fup, ip, false);
	return err ? err : put_simple(g, ppt_psbend);
}

static void ret_push(struct gen *g, uint64_t ip)
{
	g->ret[g->ret_top] = ip;
	g->ret_top = (g->ret_top + 1) % RETSTACK;
	if (g->ret_count < RETSTACK)
		g->ret_count++;
}

static bool ret_match(struct gen *g, uint64_t ip)
{
	unsigned top = (g->ret_top + RETSTACK - 1) % RETSTACK;

	if (!g->ret_count || g->ret[top] != ip)
		return false;
	g->ret_top = top;
	g->ret_count--;
	return true;
}

/*
 * Run @c from its first instruction for @insns instructions, writing the
 * trace into @g->out. *@blocks is not known here: the decoders say.
 */
static int generate(const struct code *c, uint64_t insns, struct gen *g)
{
	uint64_t stack[16], ip = BASE, n = 0;
	struct pt_config conf;
	unsigned sp = 0;
	int err;

	memset(g, 0, sizeof(*g));
	g->rng = 0x9e3779b97f4a7c15ull;
	g->chunk = malloc(CHUNK);
	if (!g->chunk)
		return -ENOMEM;
	pt_config_init(&conf);
	conf.begin = g->chunk;
	conf.end = g->chunk + CHUNK;
	g->enc = pt_alloc_encoder(&conf);
	if (!g->enc) {
		free(g->chunk);
		return -ENOMEM;
	}

	/* PSB+ with tracing off, then tracing on at the entry. */
	err = psb(g, 0);
	if (!err)
		err = mode_exec(g);
	if (!err)
		err = put_ip(g, ppt_tip_pge, ip, false);
	while (!err && n < insns) {
		uint64_t off = ip - BASE;
		const struct insn *in;
		uint64_t next;
		int idx;

		if (off >= c->size || (idx = c->at[off]) < 0) {
			err = -BT_ERRNO_INTERNAL;
			break;
		}
		if (g->since_psb >= PSB_PERIOD) {
			err = psb(g, ip);
			if (err)
				break;
		}
		in = &c->in[idx];
		next = ip + in->len;
		n++;
		switch (in->cls) {
		case C_OTHER:
			ip = next;
			break;
		case C_JCC: {
			bool taken = (rnd(g) & 0xff) < in->taken;

			ip = taken ? BASE + (uint64_t)c->label[in->label] :
				     next;
			err = tnt(g, taken);
			break;
		}
		case C_JMP:
			ip = BASE + (uint64_t)c->label[in->label];
			break;
		case C_CALL:
		case C_CALL_IND:
			if (sp == 16) {
				err = -BT_ERRNO_INTERNAL;
				break;
			}
			stack[sp++] = next;
			ret_push(g, next);
			if (in->cls == C_CALL) {
				ip = BASE + (uint64_t)c->label[in->label];
				break;
			}
			/* fall through */
		case C_JMP_IND:
			ip = BASE + (uint64_t)c->label[
				in->targets[rnd(g) % in->ntargets]];
			err = tip(g, ip);
			break;
		case C_RET:
			if (!sp) {
				err = -BT_ERRNO_INTERNAL;
				break;
			}
			ip = stack[--sp];
			err = ret_match(g, ip) ? tnt(g, true) : tip(g, ip);
			break;
		}
	}
	/* Tracing stops before the instruction at @ip. */
	if (!err)
		err = tnt_flush(g);
	if (!err)
		err = put_ip(g, ppt_fup, ip, false);
	if (!err)
		err = put_ip(g, ppt_tip_pgd, 0, true);
	if (!err)
		err = drain(g);
	pt_free_encoder(g->enc);
	g->enc = NULL;
	free(g->chunk);
	g->chunk = NULL;
	return err;
}

/* ---- The decoders ------------------------------------------------- */

struct raw {
	struct pt_config conf;
	struct pt_image_section_cache *ic;
	struct pt_image *image;
};

static int raw_setup(struct raw *r, const char *file, uint8_t *trace,
		     size_t len)
{
	int isid;

	pt_config_init(&r->conf);
	r->conf.begin = trace;
	r->conf.end = trace + len;
	r->ic = pt_iscache_alloc(NULL);
	r->image = pt_image_alloc(NULL);
	if (!r->ic || !r->image)
		return -ENOMEM;
	isid = pt_iscache_add_file(r->ic, file, 0, UINT64_MAX, BASE);
	if (isid < 0 || pt_image_add_cached(r->image, r->ic, isid, NULL) < 0)
		return -EINVAL;
	return 0;
}

static void raw_free(struct raw *r)
{
	pt_image_free(r->image);
	pt_iscache_free(r->ic);
}

/*
 * The raw block-decoder loop: sync, blocks and events to the end; after
 * an error, on at the next PSB.
 */
static int raw_decode(struct raw *r, struct bt_ptdec_stats *st)
{
	struct pt_block_decoder *dec;
	int status;

	memset(st, 0, sizeof(*st));
	dec = pt_blk_alloc_decoder(&r->conf);
	if (!dec)
		return -ENOMEM;
	if (pt_blk_set_image(dec, r->image) < 0) {
		pt_blk_free_decoder(dec);
		return -EINVAL;
	}
	for (;;) {
		struct pt_block block;

		memset(&block, 0, sizeof(block));
		status = pt_blk_sync_forward(dec);
		if (status < 0)
			break;
		st->syncs++;
		for (;;) {
			while (status & pts_event_pending) {
				struct pt_event ev;

				status = pt_blk_event(dec, &ev, sizeof(ev));
				if (status < 0)
					break;
			}
			if (status < 0 || (status & pts_eos))
				break;
			status = pt_blk_next(dec, &block, sizeof(block));
			if (status < 0 && !block.ninsn)
				break;
			st->insn += block.ninsn;
			st->blocks++;
			if (status < 0)
				break;
		}
		if (status >= 0 || status == -pte_eos)
			break;
		st->errors++;
	}
	pt_blk_free_decoder(dec);
	return 0;
}

/* ---- Timing and output -------------------------------------------- */

/*
 * One timed decode. The figure is by the thread's CPU time: the decode
 * is single-threaded and CPU-bound, and on a shared 2-core VM the wall
 * clock also counts the time other processes ran; the wall-clock rate is
 * printed beside it.
 */
struct fig {
	double rate;		/* by CPU time */
	double wall_rate;
	double secs;		/* CPU */
};

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

struct stopwatch {
	double wall, cpu;
};

static void sw_start(struct stopwatch *w)
{
	w->wall = now();
	w->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID);
}

static void sw_stop(const struct stopwatch *w, uint64_t insns, struct fig *f)
{
	double cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - w->cpu;
	double wall = now() - w->wall;

	f->secs = cpu;
	f->rate = (double)insns / cpu;
	f->wall_rate = (double)insns / wall;
}

static int cmp_rate(const void *a, const void *b)
{
	double x = ((const struct fig *)a)->rate;
	double y = ((const struct fig *)b)->rate;

	return (x > y) - (x < y);
}

static int cmp_wall(const void *a, const void *b)
{
	double x = ((const struct fig *)a)->wall_rate;
	double y = ((const struct fig *)b)->wall_rate;

	return (x > y) - (x < y);
}

/* Print the medians; *@wall gets the wall-clock one. */
static double print_fig(const char *name, struct fig *v, int n, double *wall)
{
	double rate, lo, hi, secs;

	qsort(v, (size_t)n, sizeof(*v), cmp_rate);
	rate = v[n / 2].rate;
	lo = v[0].rate;
	hi = v[n - 1].rate;
	secs = v[n / 2].secs;
	qsort(v, (size_t)n, sizeof(*v), cmp_wall);
	*wall = v[n / 2].wall_rate;
	printf("  %-30s %6.1f M insns/s  (%d run%s: %.1f..%.1f; median "
	       "%.3f s CPU; wall clock %.1f M/s)\n", name, rate / 1e6, n,
	       n > 1 ? "s" : "", lo / 1e6, hi / 1e6, secs, *wall / 1e6);
	return rate;
}

static bool check(const char *who, const struct bt_ptdec_stats *st,
		  uint64_t want)
{
	if (st->insn == want && !st->errors)
		return true;
	fprintf(stderr, "decode_bench: %s decoded %" PRIu64 " instructions "
		"with %" PRIu64 " errors; the trace holds %" PRIu64 "\n", who,
		st->insn, st->errors, want);
	return false;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: decode_bench [--quick] [--insns N]\n"
		"Generates a PT trace of a small x86-64 code image with libipt's\n"
		"encoder (100 M instructions; --quick: 10 M), checks it decodes,\n"
		"then times btrail's count-only decode (bt_ptdec__count) against\n"
		"a raw pt_blk_next loop of libipt, median of %d each, and prints\n"
		"instructions per second and the ratio (target >= 0.90);\n"
		"then the parallel decode against it (target >= 1.70, 2 CPUs).\n",
		RUNS);
}

/*
 * The parallel decode (bt_ptdec__count_parallel, one job per online
 * CPU) against the single-threaded one, both by the wall clock (the CPU
 * time of threads says nothing of how soon a parallel decode is done),
 * alternated, median of RUNS; the target is 1.7x on 2 CPUs.
 */
static int bench_parallel(struct bt_ptdec *d, uint64_t insns)
{
	double one[RUNS], par[RUNS], t, r1, rp;
	struct bt_ptdec_stats st;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;
	int err;

	/* the library's default: the CPUs we may run on */
	if (!sched_getaffinity(0, sizeof(set), &set) && CPU_COUNT(&set) > 0)
		cpus = CPU_COUNT(&set);

	for (int i = 0; i < RUNS; i++) {
		t = now();
		err = bt_ptdec__count(d, &st);
		one[i] = (double)st.insn / (now() - t);
		if (err || !check("btrail", &st, insns))
			return err ? err : -BT_ERRNO_INTERNAL;
		t = now();
		err = bt_ptdec__count_parallel(d, &st, 0);
		par[i] = (double)st.insn / (now() - t);
		if (err || !check("btrail parallel", &st, insns))
			return err ? err : -BT_ERRNO_INTERNAL;
	}
	for (int i = 0; i < RUNS; i++) {	/* sort for the medians */
		for (int j = i + 1; j < RUNS; j++) {
			if (one[j] < one[i]) {
				t = one[i];
				one[i] = one[j];
				one[j] = t;
			}
			if (par[j] < par[i]) {
				t = par[i];
				par[i] = par[j];
				par[j] = t;
			}
		}
	}
	r1 = one[RUNS / 2];
	rp = par[RUNS / 2];
	printf("  %-30s %6.1f M insns/s  (wall clock, %d runs: %.1f..%.1f)\n",
	       "btrail bt_ptdec__count", r1 / 1e6, RUNS, one[0] / 1e6,
	       one[RUNS - 1] / 1e6);
	printf("  %-30s %6.1f M insns/s  (wall clock, %d runs: %.1f..%.1f; "
	       "%ld jobs)\n", "btrail bt_ptdec__count_parallel", rp / 1e6,
	       RUNS, par[0] / 1e6, par[RUNS - 1] / 1e6, cpus);
	printf("ratio parallel / single-threaded: %.2f by wall clock (target "
	       ">= 1.70 on 2 CPUs: %s)\n", rp / r1,
	       rp / r1 >= 1.7 ? "PASS" : "MISS");
	return 0;
}

int main(int argc, char **argv)
{
	struct bt_ptdec_opts o = { .sz = sizeof(o) };
	char file[] = "/tmp/decode_bench.XXXXXX";
	struct fig fraw[RUNS], fbt[RUNS];
	struct bt_ptdec_stats st;
	struct bt_ptdec *d = NULL;
	uint64_t insns = FULL_INSNS, blocks;
	struct raw r = { 0 };
	struct code code;
	struct gen g;
	double t0, rraw, rbt, wraw, wbt, ratio;
	int fd = -1, err, rc = 1;
	char *end;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--quick")) {
			insns = QUICK_INSNS;
		} else if (!strcmp(argv[i], "--insns") && i + 1 < argc) {
			errno = 0;
			insns = strtoull(argv[++i], &end, 0);
			if (errno || *end || !insns) {
				usage(stderr);
				return 2;
			}
		} else {
			usage(stderr);
			return 2;
		}
	}

	err = build_code(&code);
	if (err) {
		fprintf(stderr, "decode_bench: code image: %s\n",
			bt_strerror(err));
		return 1;
	}
	t0 = now();
	err = generate(&code, insns, &g);
	if (err) {
		fprintf(stderr, "decode_bench: trace: %s\n", bt_strerror(err));
		goto out;
	}
	bench_print_machine();
	printf("code: %u bytes, %d instructions at 0x%llx; trace: %" PRIu64
	       " instructions, %zu bytes (%.2f bytes/insn), %" PRIu64
	       " PSBs, %" PRIu64 " TNT bits, %" PRIu64 " TIPs, made in "
	       "%.2f s\n", code.size, code.n, BASE, insns, g.len,
	       (double)g.len / (double)insns, g.psbs, g.tnt_bits, g.tips,
	       now() - t0);
	fflush(stdout);

	fd = mkstemp(file);
	if (fd < 0 || write(fd, code.bytes, code.size) != (ssize_t)code.size) {
		fprintf(stderr, "decode_bench: %s: %s\n", file,
			strerror(errno));
		goto out;
	}
	close(fd);
	err = raw_setup(&r, file, g.out, g.len);
	if (err) {
		fprintf(stderr, "decode_bench: libipt image: %s\n",
			bt_strerror(err));
		goto out;
	}
	d = bt_ptdec__new(&o);
	if (!d) {
		fprintf(stderr, "decode_bench: %s\n", bt_strerror(-errno));
		goto out;
	}
	err = bt_ptdec__set_trace_mem(d, g.out, g.len);
	if (!err)
		err = bt_ptdec__add_file(d, file, 0, 0, BASE);
	if (err) {
		fprintf(stderr, "decode_bench: btrail session: %s\n",
			bt_strerror(err));
		goto out;
	}

	/* Both must give back what was generated; this also warms up. */
	err = raw_decode(&r, &st);
	if (err || !check("libipt", &st, insns))
		goto out;
	blocks = st.blocks;
	err = bt_ptdec__count(d, &st);
	if (err || !check("btrail", &st, insns))
		goto out;
	if (st.blocks != blocks) {
		fprintf(stderr, "decode_bench: btrail: %" PRIu64 " blocks, "
			"libipt %" PRIu64 "\n", st.blocks, blocks);
		goto out;
	}
	printf("decoded: %" PRIu64 " instructions in %" PRIu64 " blocks, "
	       "%" PRIu64 " syncs, no errors (both decoders)\n", st.insn,
	       st.blocks, st.syncs);
	fflush(stdout);

	/* Alternated, so outside load spreads over both. */
	for (int i = 0; i < RUNS; i++) {
		struct stopwatch w;

		sw_start(&w);
		err = raw_decode(&r, &st);
		sw_stop(&w, st.insn, &fraw[i]);
		if (err || !check("libipt", &st, insns))
			goto out;
		sw_start(&w);
		err = bt_ptdec__count(d, &st);
		sw_stop(&w, st.insn, &fbt[i]);
		if (err || !check("btrail", &st, insns))
			goto out;
	}
	rraw = print_fig("libipt pt_blk_next loop (raw)", fraw, RUNS, &wraw);
	rbt = print_fig("btrail bt_ptdec__count", fbt, RUNS, &wbt);
	ratio = rbt / rraw;
	printf("ratio btrail / raw: %.2f by CPU time (target >= 0.90: %s); "
	       "%.2f by wall clock\n", ratio, ratio >= 0.9 ? "PASS" : "MISS",
	       wbt / wraw);
	fflush(stdout);
	err = bench_parallel(d, insns);
	if (err)
		goto out;
	rc = 0;
out:
	if (err && rc)
		fprintf(stderr, "decode_bench: %s\n", bt_strerror(err));
	bt_ptdec__free(d);
	raw_free(&r);
	if (fd >= 0)
		unlink(file);
	free(g.out);
	return rc;
}
