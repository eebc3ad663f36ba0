// SPDX-License-Identifier: BSD-3-Clause
/*
 * pt-emu: stepped instructions as the Intel PT packets a user-only trace
 * (IA32_RTIT_CTL.User=1, OS=0, BranchEn, TSCEn) would hold, written with
 * libipt's packet encoder (Intel SDM vol. 3 ch. 33):
 *
 *   - PSB+ (PSB, TSC, CBR, MODE.EXEC, FUP when tracing is on, PSBEND)
 *     at the start and whenever psb_period bytes were written since the
 *     last one. A PSB resets the last IP and, as perf's decoder assumes,
 *     the return-compression stack.
 *   - MODE.EXEC + TIP.PGE where tracing (re)starts, TIP.PGD where it stops.
 *   - One TNT bit per conditional branch, packed into TNT-8 (up to 6) or
 *     TNT-64 (up to 47); pending bits are flushed before any other packet
 *     that carries an IP, and before a PSB.
 *   - TIP for indirect jumps and calls, with the IP compressed against
 *     the last IP as the hardware does (update-16/32, sext-48, update-48,
 *     full).
 *   - Return compression: near calls push their return address (not a
 *     call to the next instruction, which position-independent code uses
 *     to read the IP; libipt skips those too) on a 64-deep stack; a return
 *     to the top of it is one taken TNT bit, any other return a TIP.
 *   - Far transfers (syscall, int, iret, ...) leave user space: TIP.PGD
 *     with the target suppressed, and TIP.PGE where user space resumes.
 *   - Asynchronous events (a signal handler entered): FUP at the
 *     interrupted IP and TIP at the handler; when tracing is off at that
 *     point (the signal is delivered on the way back from a system
 *     call), only TIP.PGE at the handler.
 *   - A thread switch: FUP + TIP.PGD (an asynchronous disable), then
 *     TIP.PGE in the next thread. The end: FUP + TIP.PGD.
 *
 * decoding the result with libipt's instruction flow decoder over the
 * same binaries gives back the stepped instructions (tests/ds/test_ptemu.c).
 */
#include "ds/ptemu.h"

#include <errno.h>
#include <intel-pt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <btrail/errno.h>

#include "common/log.h"
#include "common/opts.h"

#define PTEMU_BUF	4096	/* the encoder's buffer, drained when full */
#define PTEMU_SLACK	64	/* room kept for the largest packet group */
#define PTEMU_RETSTACK	64	/* the processor's return stack depth */
#define PTEMU_TNT8_MAX	6
#define PTEMU_TNT64_MAX	47
#define PTEMU_CBR	0x1c	/* core:bus ratio in CBR packets */

struct bt_ptemu {
	struct bt_ptemu_opts o;
	struct pt_config cfg;
	struct pt_encoder *enc;
	uint8_t buf[PTEMU_BUF];

	uint64_t out;		/* bytes handed to the write callback */
	uint64_t since_psb;	/* bytes since the last PSB started */
	uint64_t psbs;
	bool psb_due;

	bool enabled;		/* between TIP.PGE and TIP.PGD */
	bool pge_pending;	/* re-enable at the next instruction */
	uint64_t cur_ip;	/* where the traced thread is */

	uint64_t tnt;		/* pending TNT bits, oldest highest */
	unsigned ntnt;

	bool have_last;
	uint64_t last_ip;

	uint64_t ret[PTEMU_RETSTACK];
	unsigned ret_top;	/* next free slot */
	unsigned ret_count;
};

static uint64_t ptemu_clock(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bt_ptemu_config(struct pt_config *config)
{
	int err;

	if (!config)
		return -EINVAL;
	pt_config_init(config);
	config->cpu.vendor = pcv_intel;
	config->cpu.family = 6;
	config->cpu.model = 0x55;	/* Skylake server */
	config->cpu.stepping = 4;
	err = pt_cpu_errata(&config->errata, &config->cpu);
	if (err < 0) {
		pr_debug("ptemu: libipt: %s\n", pt_errstr(pt_errcode(err)));
		return -EINVAL;
	}
	return 0;
}

/* Hand the encoded bytes to the write callback; restart the buffer. */
static int ptemu_drain(struct bt_ptemu *pe)
{
	uint64_t off = 0;
	int err;

	if (pt_enc_get_offset(pe->enc, &off) < 0)
		return -BT_ERRNO_INTERNAL;
	if (!off)
		return 0;
	err = pe->o.write(pe->o.ctx, pe->buf, (size_t)off);
	if (err < 0)
		return err;
	pe->out += off;
	if (pt_enc_sync_set(pe->enc, 0) < 0)
		return -BT_ERRNO_INTERNAL;
	return 0;
}

static int ptemu_put(struct bt_ptemu *pe, const struct pt_packet *pkt)
{
	uint64_t off = 0;
	int n, err;

	if (pt_enc_get_offset(pe->enc, &off) < 0)
		return -BT_ERRNO_INTERNAL;
	if (off + PTEMU_SLACK > PTEMU_BUF) {
		err = ptemu_drain(pe);
		if (err < 0)
			return err;
	}
	n = pt_enc_next(pe->enc, pkt);
	if (n < 0) {
		pr_warn("ptemu: libipt encoder: %s\n",
			pt_errstr(pt_errcode(n)));
		return -BT_ERRNO_INTERNAL;
	}
	pe->since_psb += (unsigned)n;
	if (pe->since_psb >= pe->o.psb_period)
		pe->psb_due = true;
	return 0;
}

static int ptemu_simple(struct bt_ptemu *pe, enum pt_packet_type type)
{
	struct pt_packet p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	return ptemu_put(pe, &p);
}

static uint64_t sext48(uint64_t ip)
{
	return (uint64_t)((int64_t)(ip << 16) >> 16);
}

/* The compression the hardware would choose for @ip against the last IP. */
static enum pt_ip_compression ptemu_ipc(const struct bt_ptemu *pe, uint64_t ip)
{
	uint64_t diff = ip ^ pe->last_ip;

	if (pe->have_last && !(diff >> 16))
		return pt_ipc_update_16;
	if (pe->have_last && !(diff >> 32))
		return pt_ipc_update_32;
	if (sext48(ip) == ip)
		return pt_ipc_sext_48;
	if (pe->have_last && !(diff >> 48))
		return pt_ipc_update_48;
	return pt_ipc_full;
}

/* A packet with an IP payload; @suppress: no IP (TIP.PGD). */
static int ptemu_ip(struct bt_ptemu *pe, enum pt_packet_type type,
		    uint64_t ip, bool suppress)
{
	struct pt_packet p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	if (suppress) {
		p.payload.ip.ipc = pt_ipc_suppressed;
		return ptemu_put(pe, &p);
	}
	p.payload.ip.ipc = ptemu_ipc(pe, ip);
	switch (p.payload.ip.ipc) {
	case pt_ipc_update_16:
		p.payload.ip.ip = ip & 0xffffull;
		break;
	case pt_ipc_update_32:
		p.payload.ip.ip = ip & 0xffffffffull;
		break;
	case pt_ipc_sext_48:
	case pt_ipc_update_48:
		p.payload.ip.ip = ip & 0xffffffffffffull;
		break;
	default:
		p.payload.ip.ip = ip;
		break;
	}
	pe->have_last = true;
	pe->last_ip = ip;
	return ptemu_put(pe, &p);
}

static int ptemu_tnt_flush(struct bt_ptemu *pe)
{
	struct pt_packet p;
	int err;

	if (!pe->ntnt)
		return 0;
	memset(&p, 0, sizeof(p));
	p.type = pe->ntnt <= PTEMU_TNT8_MAX ? ppt_tnt_8 : ppt_tnt_64;
	p.payload.tnt.bit_size = (uint8_t)pe->ntnt;
	p.payload.tnt.payload = pe->tnt;
	err = ptemu_put(pe, &p);
	pe->tnt = 0;
	pe->ntnt = 0;
	return err;
}

static int ptemu_tnt(struct bt_ptemu *pe, bool taken)
{
	pe->tnt = (pe->tnt << 1) | (taken ? 1u : 0u);
	if (++pe->ntnt == PTEMU_TNT64_MAX)
		return ptemu_tnt_flush(pe);
	return 0;
}

static int ptemu_mode_exec(struct bt_ptemu *pe)
{
	struct pt_packet p;

	memset(&p, 0, sizeof(p));
	p.type = ppt_mode;
	p.payload.mode.leaf = pt_mol_exec;
	p.payload.mode.bits.exec = pt_set_exec_mode(ptem_64bit);
	return ptemu_put(pe, &p);
}

/* PSB+; with FUP at @ip when tracing is on. */
static int ptemu_psb(struct bt_ptemu *pe, uint64_t ip)
{
	struct pt_packet p;
	int err;

	err = ptemu_tnt_flush(pe);
	if (err < 0)
		return err;
	pe->since_psb = 0;
	pe->psb_due = false;
	pe->psbs++;
	pe->have_last = false;
	pe->ret_count = 0;
	err = ptemu_simple(pe, ppt_psb);
	if (err < 0)
		return err;
	memset(&p, 0, sizeof(p));
	p.type = ppt_tsc;
	p.payload.tsc.tsc = pe->o.tsc(pe->o.ctx) & ((1ull << 56) - 1);
	err = ptemu_put(pe, &p);
	if (err < 0)
		return err;
	memset(&p, 0, sizeof(p));
	p.type = ppt_cbr;
	p.payload.cbr.ratio = PTEMU_CBR;
	err = ptemu_put(pe, &p);
	if (!err)
		err = ptemu_mode_exec(pe);
	if (!err && pe->enabled)
		err = ptemu_ip(pe, ppt_fup, ip, false);
	if (!err)
		err = ptemu_simple(pe, ppt_psbend);
	return err;
}

/* Tracing (re)starts at @ip. */
static int ptemu_enable(struct bt_ptemu *pe, uint64_t ip)
{
	int err = 0;

	if (pe->psb_due)
		err = ptemu_psb(pe, ip);
	if (!err)
		err = ptemu_mode_exec(pe);
	if (!err)
		err = ptemu_ip(pe, ppt_tip_pge, ip, false);
	pe->enabled = true;
	pe->pge_pending = false;
	return err;
}

/* Tracing stops at @ip, between instructions: FUP + TIP.PGD. */
static int ptemu_disable_at(struct bt_ptemu *pe, uint64_t ip)
{
	int err;

	err = ptemu_tnt_flush(pe);
	if (!err)
		err = ptemu_ip(pe, ppt_fup, ip, false);
	if (!err)
		err = ptemu_ip(pe, ppt_tip_pgd, 0, true);
	pe->enabled = false;
	return err;
}

static void ret_push(struct bt_ptemu *pe, uint64_t ip)
{
	pe->ret[pe->ret_top] = ip;
	pe->ret_top = (pe->ret_top + 1) % PTEMU_RETSTACK;
	if (pe->ret_count < PTEMU_RETSTACK)
		pe->ret_count++;
}

/* Pop the top if it is @ip: a compressed return. */
static bool ret_match(struct bt_ptemu *pe, uint64_t ip)
{
	unsigned top = (pe->ret_top + PTEMU_RETSTACK - 1) % PTEMU_RETSTACK;

	if (!pe->ret_count || pe->ret[top] != ip)
		return false;
	pe->ret_top = top;
	pe->ret_count--;
	return true;
}

static int ptemu_begin(void *ctx, pid_t tid, uint64_t ip)
{
	struct bt_ptemu *pe = ctx;

	(void)tid;
	pe->cur_ip = ip;
	pe->psb_due = true;
	pe->pge_pending = true;
	return 0;
}

static int ptemu_insn(void *ctx, const struct bt_step_insn *in)
{
	struct bt_ptemu *pe = ctx;
	uint64_t fall = in->ip + in->len;
	int err = 0;

	if (pe->pge_pending)
		err = ptemu_enable(pe, in->ip);
	else if (!pe->enabled)
		return 0;	/* after the end */
	else if (pe->psb_due)
		err = ptemu_psb(pe, in->ip);
	if (err < 0)
		return err;

	pe->cur_ip = in->next_ip;
	switch (in->cls) {
	case BT_INSN_JCC:
		return ptemu_tnt(pe, in->taken);
	case BT_INSN_CALL:
		if (in->taken)
			ret_push(pe, fall);
		return 0;
	case BT_INSN_CALL_IND:
		ret_push(pe, fall);
		/* fall through */
	case BT_INSN_JMP_IND:
		err = ptemu_tnt_flush(pe);
		return err ? err : ptemu_ip(pe, ppt_tip, in->next_ip, false);
	case BT_INSN_RET:
		if (ret_match(pe, in->next_ip))
			return ptemu_tnt(pe, true);
		err = ptemu_tnt_flush(pe);
		return err ? err : ptemu_ip(pe, ppt_tip, in->next_ip, false);
	case BT_INSN_FAR:
		err = ptemu_tnt_flush(pe);
		if (!err)
			err = ptemu_ip(pe, ppt_tip_pgd, 0, true);
		pe->enabled = false;
		pe->pge_pending = true;
		return err;
	case BT_INSN_OTHER:
		if (in->taken && in->next_ip) {
			/* Moved without a branch (a transaction abort):
			 * an asynchronous branch after the instruction. */
			err = ptemu_tnt_flush(pe);
			if (!err)
				err = ptemu_ip(pe, ppt_fup, fall, false);
			if (!err)
				err = ptemu_ip(pe, ppt_tip, in->next_ip, false);
		}
		return err;
	default:
		return 0;
	}
}

static int ptemu_async(void *ctx, const struct bt_step_async *a)
{
	struct bt_ptemu *pe = ctx;
	int err;

	pe->cur_ip = a->to;
	if (pe->pge_pending)
		return ptemu_enable(pe, a->to);
	if (!pe->enabled)
		return 0;
	err = ptemu_tnt_flush(pe);
	if (!err)
		err = ptemu_ip(pe, ppt_fup, a->from, false);
	if (!err)
		err = ptemu_ip(pe, ppt_tip, a->to, false);
	return err;
}

static int ptemu_switch(void *ctx, pid_t from, pid_t to)
{
	struct bt_ptemu *pe = ctx;
	int err = 0;

	(void)from;
	(void)to;
	if (pe->enabled)
		err = ptemu_disable_at(pe, pe->cur_ip);
	pe->pge_pending = true;
	return err;
}

static int ptemu_end(void *ctx, pid_t tid, uint64_t ip)
{
	struct bt_ptemu *pe = ctx;
	int err = 0;

	(void)tid;
	if (pe->enabled)
		err = ptemu_disable_at(pe, ip);
	pe->pge_pending = false;
	if (!err)
		err = ptemu_tnt_flush(pe);
	if (!err)
		err = ptemu_drain(pe);
	return err;
}

void bt_ptemu__sink(struct bt_ptemu *pe, struct bt_step_sink *sink)
{
	memset(sink, 0, sizeof(*sink));
	sink->ctx = pe;
	sink->begin = ptemu_begin;
	sink->insn = ptemu_insn;
	sink->async = ptemu_async;
	sink->thread_switch = ptemu_switch;
	sink->end = ptemu_end;
}

struct bt_ptemu *bt_ptemu__new(const struct bt_ptemu_opts *opts)
{
	struct bt_ptemu *pe;
	int err;

	pe = calloc(1, sizeof(*pe));
	if (!pe)
		return errno = ENOMEM, NULL;
	err = bt_opts_copy(&pe->o, sizeof(pe->o), opts);
	if (!err && (!opts || !pe->o.write ||
		     (pe->o.psb_period && pe->o.psb_period < 256)))
		err = -EINVAL;
	if (!err)
		err = bt_ptemu_config(&pe->cfg);
	if (err < 0) {
		free(pe);
		return errno = -err, NULL;
	}
	if (!pe->o.psb_period)
		pe->o.psb_period = 4096;
	if (!pe->o.tsc)
		pe->o.tsc = ptemu_clock;
	pe->cfg.begin = pe->buf;
	pe->cfg.end = pe->buf + sizeof(pe->buf);
	pe->enc = pt_alloc_encoder(&pe->cfg);
	if (!pe->enc) {
		free(pe);
		return errno = ENOMEM, NULL;
	}
	return pe;
}

void bt_ptemu__free(struct bt_ptemu *pe)
{
	if (!pe)
		return;
	pt_free_encoder(pe->enc);
	free(pe);
}

int bt_ptemu__flush(struct bt_ptemu *pe)
{
	return pe ? ptemu_drain(pe) : -EINVAL;
}

uint64_t bt_ptemu__bytes(const struct bt_ptemu *pe)
{
	return pe ? pe->out : 0;
}

uint64_t bt_ptemu__psbs(const struct bt_ptemu *pe)
{
	return pe ? pe->psbs : 0;
}
