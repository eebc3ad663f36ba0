// SPDX-License-Identifier: BSD-3-Clause
/*
 * Capstone for the PT listing: a block of libipt's block decoder gives
 * only its first and last address, so the instructions in between are
 * walked here (length, and the target of a direct jump or call the block
 * followed), and the listing's disassembly text comes from here too.
 * One handle per execution mode, opened on first use.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <capstone/capstone.h>

#include "decoder/pt_int.h"

struct ptd_disasm {
	csh cs[3];		/* 16-, 32-, 64-bit */
	bool open[3];
	cs_insn *insn;		/* capstone's buffer, reused */
};

struct ptd_disasm *ptd_disasm__new(void)
{
	return calloc(1, sizeof(struct ptd_disasm));
}

void ptd_disasm__free(struct ptd_disasm *dis)
{
	if (!dis)
		return;
	if (dis->insn)
		cs_free(dis->insn, 1);
	for (int i = 0; i < 3; i++) {
		if (dis->open[i])
			cs_close(&dis->cs[i]);
	}
	free(dis);
}

static csh *handle(struct ptd_disasm *dis, enum pt_exec_mode mode)
{
	static const cs_mode modes[3] = { CS_MODE_16, CS_MODE_32, CS_MODE_64 };
	int i;

	switch (mode) {
	case ptem_16bit:
		i = 0;
		break;
	case ptem_32bit:
		i = 1;
		break;
	default:
		/* unknown: the trace's most likely mode */
		i = 2;
		break;
	}
	if (!dis->open[i]) {
		if (cs_open(CS_ARCH_X86, modes[i], &dis->cs[i]) != CS_ERR_OK)
			return NULL;
		cs_option(dis->cs[i], CS_OPT_DETAIL, CS_OPT_ON);
		dis->open[i] = true;
	}
	return &dis->cs[i];
}

/* The length of a ModRM operand (ModRM byte on) in @mode, or 0. */
static size_t modrm_len(const uint8_t *p, size_t n, enum pt_exec_mode mode)
{
	unsigned mod, rm;
	size_t len = 1;

	if (!n)
		return 0;
	mod = p[0] >> 6;
	rm = p[0] & 7;
	if (mode == ptem_16bit) {
		if (mod == 1)
			len += 1;
		else if (mod == 2 || (mod == 0 && rm == 6))
			len += 2;
		return len <= n ? len : 0;
	}
	if (mod != 3 && rm == 4) {
		if (n < 2)
			return 0;
		len++;
		if (mod == 0 && (p[1] & 7) == 5)
			len += 4;
	}
	if (mod == 1)
		len += 1;
	else if (mod == 2 || (mod == 0 && rm == 5))
		len += 4;
	return len <= n ? len : 0;
}

/*
 * PTWRITE (F3 [REX.W] 0F AE /4), which capstone 4 does not know and
 * traces that use it are full of.
 */
static int ptwrite(const uint8_t *raw, size_t n, enum pt_exec_mode mode,
		   bool text, struct ptd_insn *out)
{
	size_t i = 0, m;
	bool w = false;

	if (n < 4 || raw[i++] != 0xf3)
		return -EILSEQ;
	if (mode == ptem_64bit && (raw[i] & 0xf0) == 0x40)
		w = raw[i++] & 8;
	if (i + 3 > n || raw[i] != 0x0f || raw[i + 1] != 0xae ||
	    ((raw[i + 2] >> 3) & 7) != 4)
		return -EILSEQ;
	i += 2;
	m = modrm_len(raw + i, n - i, mode);
	if (!m)
		return -EILSEQ;
	out->len = (uint8_t)(i + m);
	if (text)
		snprintf(out->text, sizeof(out->text), "ptwrite%s",
			 w ? "q" : "l");
	return 0;
}

int ptd_disasm(struct ptd_disasm *dis, enum pt_exec_mode mode,
	       const uint8_t *raw, size_t n, uint64_t ip, bool text,
	       struct ptd_insn *out)
{
	const uint8_t *code = raw;
	uint64_t addr = ip;
	size_t size = n;
	csh *cs;

	memset(out, 0, sizeof(*out));
	cs = handle(dis, mode);
	if (!cs)
		return -ENOMEM;
	if (!dis->insn) {
		dis->insn = cs_malloc(*cs);
		if (!dis->insn)
			return -ENOMEM;
	}
	if (!cs_disasm_iter(*cs, &code, &size, &addr, dis->insn))
		return ptwrite(raw, n, mode, text, out);
	out->len = (uint8_t)dis->insn->size;
	if (dis->insn->detail &&
	    (cs_insn_group(*cs, dis->insn, CS_GRP_JUMP) ||
	     cs_insn_group(*cs, dis->insn, CS_GRP_CALL))) {
		const cs_x86 *x = &dis->insn->detail->x86;

		/* rel8/rel16/rel32: one immediate operand, the target;
		 * a far pointer has two */
		if (x->op_count == 1 && x->operands[0].type == X86_OP_IMM) {
			out->has_target = true;
			out->target = (uint64_t)x->operands[0].imm;
		}
	}
	if (text) {
		if (dis->insn->op_str[0])
			snprintf(out->text, sizeof(out->text), "%s %s",
				 dis->insn->mnemonic, dis->insn->op_str);
		else
			snprintf(out->text, sizeof(out->text), "%s",
				 dis->insn->mnemonic);
	}
	return 0;
}
