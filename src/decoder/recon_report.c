// SPDX-License-Identifier: BSD-3-Clause
/*
 * The crash report: where the program died (one entry) and how it got
 * there (the call stack rebuilt from the trace's calls and returns, and
 * the last branches). The stack comes from the flow, not from unwinding
 * memory: a call pushes a frame whose return address is the call's next
 * instruction, a return pops to the frame it returns to (so longjmp-like
 * returns that skip frames still land right), and a return past the
 * oldest frame seen means the trace started inside a callee: that frame
 * becomes its caller. Only the faulting thread's flow counts.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/opts.h"
#include "decoder/recon_int.h"

#define RP_MAX_FRAMES	4096u

struct rp_frame {
	uint64_t pc;	/* where it is: the call site for callers */
	uint64_t ret;	/* return address its caller expects; 0 unknown */
};

struct rp_branch {
	uint64_t from, to;
	uint32_t cls;
};

struct rp {
	struct bt_recon *r;
	int32_t tid;
	struct rp_frame *f;
	size_t nf;
	bool truncated;
	uint64_t last_ip;
	uint8_t last_len;
	struct rp_branch *br;	/* ring of the last N */
	uint32_t nbr, cap;
	uint64_t total;
	uint64_t insns;
	uint64_t gaps, errors;
	char first_gap[160];
};

static void push(struct rp *p, uint64_t pc, uint64_t ret)
{
	if (p->nf == RP_MAX_FRAMES) {
		/* very deep recursion: forget the oldest frame */
		memmove(p->f, p->f + 1, (p->nf - 1) * sizeof(*p->f));
		p->nf--;
		p->truncated = true;
	}
	p->f[p->nf].pc = pc;
	p->f[p->nf++].ret = ret;
}

static void on_branch(struct rp *p, const struct bt_recon_item *it)
{
	if (p->cap) {
		p->br[p->total % p->cap].from = it->ip;
		p->br[p->total % p->cap].to = it->to;
		p->br[p->total % p->cap].cls = it->iclass;
	}
	p->total++;
	if (!p->nf)
		push(p, it->ip, 0);
	p->f[p->nf - 1].pc = it->ip;
	switch (it->iclass) {
	case BT_IC_CALL:
	case BT_IC_CALL_IND:
		push(p, it->to, p->last_ip == it->ip ?
			 it->ip + p->last_len : 0);
		return;
	case BT_IC_RET:
		for (size_t k = p->nf; k-- > 1;) {
			if (p->f[k].ret == it->to || !p->f[k].ret) {
				p->nf = k;
				p->f[k - 1].pc = it->to;
				return;
			}
		}
		if (p->nf > 1)
			p->nf--;
		/* back into a caller older than the trace */
		p->f[p->nf - 1].pc = it->to;
		return;
	default:
		p->f[p->nf - 1].pc = it->to;
		return;
	}
}

static int on_item(void *ctx, const struct bt_recon_item *it)
{
	struct rp *p = ctx;

	if (it->kind == BT_RI_TRIGGER || it->tid != p->tid)
		return 0;
	switch (it->kind) {
	case BT_RI_INSN:
		p->insns++;
		p->last_ip = it->ip;
		p->last_len = it->len;
		if (!p->nf)
			push(p, it->ip, 0);
		p->f[p->nf - 1].pc = it->ip;
		break;
	case BT_RI_BRANCH:
		on_branch(p, it);
		break;
	case BT_RI_GAP:
	case BT_RI_ERROR:
		if (it->kind == BT_RI_GAP)
			p->gaps++;
		else
			p->errors++;
		if (!p->first_gap[0] && it->text)
			snprintf(p->first_gap, sizeof(p->first_gap), "%s",
				 it->text);
		break;
	default:
		break;
	}
	return 0;
}

static const char *code_text(int signo, int code)
{
	if (code == SI_USER)
		return "sent by kill";
	if (code == SI_TKILL)
		return "sent by tkill: raise() or abort()";
	if (code == SI_QUEUE)
		return "sent by sigqueue";
	switch (signo) {
	case SIGSEGV:
		return code == SEGV_MAPERR ? "address not mapped" :
		       code == SEGV_ACCERR ? "no permission for the access" :
		       NULL;
	case SIGBUS:
		return code == BUS_ADRALN ? "misaligned address" :
		       code == BUS_ADRERR ? "no such physical address" :
		       NULL;
	case SIGFPE:
		return code == FPE_INTDIV ? "integer divide by zero" : NULL;
	case SIGILL:
		return code == ILL_ILLOPN ? "illegal operand" :
		       code == ILL_ILLOPC ? "illegal opcode" : NULL;
	default:
		return NULL;
	}
}

static const char *base_name(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;

	return s ? s + 1 : p;
}

struct rp_color {
	const char *fn, *err, *dim, *hdr, *off;
};

/* "name+0xOFF (file:line)", "name+0xOFF (image)", "?? 0xADDR". */
static void where(struct bt_recon *r, int32_t pid, uint64_t addr,
		  const struct rp_color *c, char *out, size_t cap)
{
	struct bt_sym s;
	int n;

	if (bt_recon__symbolize(r, pid, addr, &s) < 0 || !s.name) {
		const char *img = s.image ? base_name(s.image) : NULL;

		if (bt_recon__symbolize(r, pid, addr, &s) == 0 && img)
			snprintf(out, cap, "%s??%s 0x%llx (%s)", c->fn, c->off,
				 (unsigned long long)addr, img);
		else
			snprintf(out, cap, "%s??%s 0x%llx", c->fn, c->off,
				 (unsigned long long)addr);
		return;
	}
	n = snprintf(out, cap, "%s%s%s+0x%llx", c->fn, s.name, c->off,
		     (unsigned long long)s.offset);
	if (n < 0 || (size_t)n >= cap)
		return;
	if (s.file)
		snprintf(out + n, cap - n, " (%s:%u)", s.file, s.line);
	else if (s.image)
		snprintf(out + n, cap - n, " (%s)", base_name(s.image));
}

static const char *cls_name(uint32_t cls)
{
	static const char *const n[] = { "", "jcc", "jmp", "jmp*", "call",
					 "call*", "ret", "far" };

	return cls < sizeof(n) / sizeof(n[0]) ? n[cls] : "?";
}

int bt_recon__report(struct bt_recon *r, FILE *out,
		     const struct bt_report_opts *opts)
{
	struct bt_report_opts o;
	struct rp p;
	struct rp_color c = { "", "", "", "", "" };
	const struct rc_trigger *t;
	char w[512], dis[256], hx[64];
	const char *sn, *ct;
	int err;

	if (!r || !out)
		return -EINVAL;
	err = bt_opts_copy(&o, sizeof(o), opts);
	if (err)
		return err;
	if (!o.branches)
		o.branches = 32;
	if (o.color)
		c = (struct rp_color){ "\033[1m", "\033[1;31m", "\033[2m",
				       "\033[1;4m", "\033[0m" };
	t = &r->trig;
	memset(&p, 0, sizeof(p));
	p.r = r;
	p.tid = t->valid ? t->tid : -1;
	p.cap = o.branches;
	p.f = calloc(RP_MAX_FRAMES, sizeof(*p.f));
	p.br = calloc(p.cap, sizeof(*p.br));
	if (!p.f || !p.br) {
		free(p.f);
		free(p.br);
		return -ENOMEM;
	}
	if (t->valid)
		err = bt_recon__run(r, BT_RECON_INSNS | BT_RECON_BRANCHES,
				    on_item, &p);
	if (err) {
		free(p.f);
		free(p.br);
		return err;
	}

	/* 1. where it died */
	if (!t->valid) {
		fprintf(out, "%s: no trigger: capture was not frozen by a "
			"crash\n", r->dir);
	} else {
		sn = rc_signame(t->signo);
		ct = code_text(t->signo, t->code);
		if (t->signo > 0)
			fprintf(out, "%s%s%s (signal %d%s%s)%s", c.err,
				sn ? sn : "signal", "", t->signo,
				ct ? ", " : "", ct ? ct : "", c.off);
		else
			fprintf(out, "%s%s%s", c.err, t->reason, c.off);
		if (t->signo == SIGSEGV || t->signo == SIGBUS ||
		    t->signo == SIGFPE || t->signo == SIGILL)
			fprintf(out, " at address 0x%llx",
				(unsigned long long)t->addr);
		fprintf(out, " in pid %d, thread %d\n", t->pid, t->tid);
		if (r->exe[0])
			fprintf(out, "program %s\n", r->exe);
		fprintf(out, "\n%sfaulting instruction%s\n", c.hdr, c.off);
		where(r, t->pid, t->ip, &c, w, sizeof(w));
		if (bt_recon__disasm(r, t->pid, t->ip, dis, sizeof(dis)) > 0)
			fprintf(out, "  %s0x%llx%s  %s\n      %s\n", c.dim,
				(unsigned long long)t->ip, c.off, w, dis);
		else if (rc_hexbytes(r, t->pid, t->ip, hx, sizeof(hx)) > 0)
			/* the code is there; capstone 4 lacks some EVEX */
			fprintf(out, "  %s0x%llx%s  %s\n      (capstone cannot "
				"decode: %s)\n", c.dim,
				(unsigned long long)t->ip, c.off, w, hx);
		else
			fprintf(out, "  %s0x%llx%s  %s\n      (no code at this "
				"address%s)\n", c.dim,
				(unsigned long long)t->ip, c.off, w,
				p.total ? ": the last branch below jumped "
				"here" : "");
	}

	/* 2. how it got there: the stack */
	fprintf(out, "\n%scall stack%s (from the trace, innermost first)\n",
		c.hdr, c.off);
	if (p.nf && t->valid)
		p.f[p.nf - 1].pc = t->ip;
	if (!p.nf)
		fprintf(out, "  (no trace of thread %d in the bundle)\n",
			p.tid);
	for (size_t k = p.nf; k-- > 0;) {
		where(r, t->pid, p.f[k].pc, &c, w, sizeof(w));
		fprintf(out, "#%zu  %s\n", p.nf - 1 - k, w);
	}
	if (p.nf)
		fprintf(out, "    %s(the trace starts in #%zu)%s\n", c.dim,
			p.nf - 1, c.off);
	if (p.truncated)
		fprintf(out, "    (older frames beyond %u forgotten)\n",
			RP_MAX_FRAMES);

	/* 3. the last branches */
	if (p.total) {
		uint64_t n = p.total < p.cap ? p.total : p.cap;

		fprintf(out, "\n%slast %llu branches%s (oldest first, of "
			"%llu; %llu instructions traced)\n", c.hdr,
			(unsigned long long)n, c.off,
			(unsigned long long)p.total,
			(unsigned long long)p.insns);
		for (uint64_t i = p.total - n; i < p.total; i++) {
			const struct rp_branch *b = &p.br[i % p.cap];
			char to[512];

			where(r, t->pid, b->from, &c, w, sizeof(w));
			where(r, t->pid, b->to, &c, to, sizeof(to));
			fprintf(out, "  %-5s %s -> %s\n", cls_name(b->cls),
				w, to);
		}
	}
	if (p.gaps || p.errors)
		fprintf(out, "\n%llu gaps, %llu decode errors in this thread's "
			"trace (first: %s)\n", (unsigned long long)p.gaps,
			(unsigned long long)p.errors, p.first_gap);
	free(p.f);
	free(p.br);
	return ferror(out) ? -EIO : 0;
}
