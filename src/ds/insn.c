// SPDX-License-Identifier: BSD-3-Clause
/*
 * Instruction classification with capstone (x86-64) and a cache of
 * decoded instructions keyed by address (open addressing, linear
 * probing, at most half full).
 *
 * The classes follow what a branch tracer must know and agree with
 * libipt's (pt_insn_class): loop/loopcc/jcxz/jecxz/jrcxz are conditional
 * jumps; a near return with an immediate is still a return; far jumps,
 * calls and returns, iret, syscall/sysenter/sysret/sysexit and the int
 * family are far transfers. xbegin is not a branch here (as in libipt),
 * but its abort moves the IP, so the registers are read after it.
 */
#include "ds/insn.h"

#include <capstone/capstone.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct bt_insn_cache {
	csh cs;
	struct bt_insn_desc *slot;	/* ip 0 marks a free slot */
	size_t cap;			/* power of two */
	size_t used;
	uint64_t decoded;
};

static int insn_open(csh *cs)
{
	cs_err err;

	err = cs_open(CS_ARCH_X86, CS_MODE_64, cs);
	if (err == CS_ERR_OK)
		err = cs_option(*cs, CS_OPT_DETAIL, CS_OPT_ON);
	if (err != CS_ERR_OK) {
		pr_debug("insn: capstone: %s\n", cs_strerror(err));
		return err == CS_ERR_MEM ? -ENOMEM : -EINVAL;
	}
	return 0;
}

/*
 * True for a string instruction (movs, cmps, stos, lods, scas, ins,
 * outs) behind a REP/REPNE prefix: read from the bytes, because capstone
 * reports the mandatory F2/F3 of SSE instructions (movsd xmm) the same way.
 */
static bool insn_is_rep_string(const uint8_t *b, size_t len)
{
	bool rep = false;
	size_t i = 0;

	for (; i < len; i++) {
		switch (b[i]) {
		case 0xf2:
		case 0xf3:
			rep = true;
			continue;
		case 0xf0: case 0x2e: case 0x36: case 0x3e: case 0x26:
		case 0x64: case 0x65: case 0x66: case 0x67:
			continue;
		}
		break;
	}
	if (i < len && (b[i] & 0xf0) == 0x40)	/* REX */
		i++;
	if (!rep || i >= len)
		return false;
	return (b[i] >= 0xa4 && b[i] <= 0xa7) || (b[i] >= 0xaa && b[i] <= 0xaf) ||
	       (b[i] >= 0x6c && b[i] <= 0x6f);
}

static bool insn_has_group(const cs_insn *in, uint8_t group)
{
	for (uint8_t i = 0; i < in->detail->groups_count; i++) {
		if (in->detail->groups[i] == group)
			return true;
	}
	return false;
}

/* The class of @in, and its direct target in *@target when it has one. */
static uint32_t insn_class_of(const cs_insn *in, uint64_t *target)
{
	const cs_x86 *x = &in->detail->x86;
	bool imm = x->op_count == 1 && x->operands[0].type == X86_OP_IMM;

	*target = 0;
	switch (in->id) {
	case X86_INS_JAE: case X86_INS_JA: case X86_INS_JBE: case X86_INS_JB:
	case X86_INS_JCXZ: case X86_INS_JECXZ: case X86_INS_JRCXZ:
	case X86_INS_JE: case X86_INS_JGE: case X86_INS_JG: case X86_INS_JLE:
	case X86_INS_JL: case X86_INS_JNE: case X86_INS_JNO: case X86_INS_JNP:
	case X86_INS_JNS: case X86_INS_JO: case X86_INS_JP: case X86_INS_JS:
	case X86_INS_LOOP: case X86_INS_LOOPE: case X86_INS_LOOPNE:
		if (imm)
			*target = (uint64_t)x->operands[0].imm;
		return BT_INSN_JCC;
	case X86_INS_JMP:
		if (!imm)
			return BT_INSN_JMP_IND;
		*target = (uint64_t)x->operands[0].imm;
		return BT_INSN_JMP;
	case X86_INS_CALL:
		if (!imm)
			return BT_INSN_CALL_IND;
		*target = (uint64_t)x->operands[0].imm;
		return BT_INSN_CALL;
	case X86_INS_RET:
		return BT_INSN_RET;
	case X86_INS_LJMP: case X86_INS_LCALL:
	case X86_INS_RETF: case X86_INS_RETFQ:
	case X86_INS_IRET: case X86_INS_IRETD: case X86_INS_IRETQ:
	case X86_INS_INT: case X86_INS_INT1: case X86_INS_INT3:
	case X86_INS_INTO:
	case X86_INS_SYSCALL: case X86_INS_SYSENTER:
	case X86_INS_SYSEXIT: case X86_INS_SYSRET:
		return BT_INSN_FAR;
	case X86_INS_XBEGIN:
		return BT_INSN_OTHER;
	}
	/* Anything else capstone calls a control transfer is far. */
	if (insn_has_group(in, X86_GRP_INT) || insn_has_group(in, X86_GRP_IRET))
		return BT_INSN_FAR;
	return BT_INSN_OTHER;
}

static int insn_decode(csh cs, const uint8_t *bytes, size_t n, uint64_t ip,
		       struct bt_insn_desc *out)
{
	cs_insn *in = NULL;
	size_t count;
	uint32_t cls;

	if (n > sizeof(out->bytes))
		n = sizeof(out->bytes);
	count = cs_disasm(cs, bytes, n, ip, 1, &in);
	if (count != 1) {
		pr_debug("insn: capstone cannot decode %02x %02x %02x %02x "
			 "at %#llx: %s\n", bytes[0], n > 1 ? bytes[1] : 0,
			 n > 2 ? bytes[2] : 0, n > 3 ? bytes[3] : 0,
			 (unsigned long long)ip, cs_strerror(cs_errno(cs)));
		if (count)
			cs_free(in, count);
		return cs_errno(cs) == CS_ERR_MEM ? -ENOMEM : -EILSEQ;
	}

	memset(out, 0, sizeof(*out));
	out->ip = ip;
	out->len = (uint8_t)in->size;
	memcpy(out->bytes, bytes, in->size);
	cls = insn_class_of(in, &out->target);
	out->cls = (uint8_t)cls;
	if (cls != BT_INSN_OTHER && cls != BT_INSN_JMP && cls != BT_INSN_CALL)
		out->flags |= BT_INSN_F_NEEDS_REGS;
	if (in->id == X86_INS_XBEGIN)
		out->flags |= BT_INSN_F_NEEDS_REGS;
	if (insn_is_rep_string(bytes, in->size))
		out->flags |= BT_INSN_F_REP | BT_INSN_F_NEEDS_REGS;
	if (in->id == X86_INS_SYSCALL || in->id == X86_INS_SYSENTER ||
	    (in->id == X86_INS_INT && in->size == 2 && bytes[1] == 0x80))
		out->flags |= BT_INSN_F_SYSCALL;
	else if (cls == BT_INSN_FAR && insn_has_group(in, X86_GRP_INT))
		out->flags |= BT_INSN_F_INT;
	cs_free(in, count);
	return 0;
}

int bt_insn_classify(const uint8_t *bytes, size_t n, uint64_t ip,
		     struct bt_insn_desc *out)
{
	csh cs;
	int err;

	if (!bytes || !n || !out)
		return -EINVAL;
	err = insn_open(&cs);
	if (err < 0)
		return err;
	err = insn_decode(cs, bytes, n, ip, out);
	cs_close(&cs);
	return err;
}

const char *bt_insn_class_name(uint32_t cls)
{
	static const char *const names[] = {
		[BT_INSN_OTHER] = "other",	[BT_INSN_JCC] = "jcc",
		[BT_INSN_JMP] = "jmp",		[BT_INSN_JMP_IND] = "jmp*",
		[BT_INSN_CALL] = "call",	[BT_INSN_CALL_IND] = "call*",
		[BT_INSN_RET] = "ret",		[BT_INSN_FAR] = "far",
	};

	return cls < sizeof(names) / sizeof(names[0]) ? names[cls] : "?";
}

struct bt_insn_cache *bt_insn_cache__new(void)
{
	struct bt_insn_cache *c;
	int err;

	c = calloc(1, sizeof(*c));
	if (!c)
		return errno = ENOMEM, NULL;
	c->cap = 4096;
	c->slot = calloc(c->cap, sizeof(*c->slot));
	if (!c->slot) {
		free(c);
		return errno = ENOMEM, NULL;
	}
	err = insn_open(&c->cs);
	if (err < 0) {
		free(c->slot);
		free(c);
		return errno = -err, NULL;
	}
	return c;
}

void bt_insn_cache__free(struct bt_insn_cache *c)
{
	if (!c)
		return;
	cs_close(&c->cs);
	free(c->slot);
	free(c);
}

static size_t cache_hash(uint64_t ip, size_t cap)
{
	/* Fibonacci hashing: instruction addresses are dense and aligned. */
	return (size_t)((ip * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

const struct bt_insn_desc *bt_insn_cache__find(struct bt_insn_cache *c,
					       uint64_t ip)
{
	size_t i;

	if (!ip)
		return NULL;
	for (i = cache_hash(ip, c->cap);; i = (i + 1) & (c->cap - 1)) {
		if (c->slot[i].ip == ip)
			return &c->slot[i];
		if (!c->slot[i].ip)
			return NULL;
	}
}

static struct bt_insn_desc *cache_insert(struct bt_insn_desc *slot, size_t cap,
					 const struct bt_insn_desc *d)
{
	size_t i;

	for (i = cache_hash(d->ip, cap); slot[i].ip && slot[i].ip != d->ip;
	     i = (i + 1) & (cap - 1))
		;
	slot[i] = *d;
	return &slot[i];
}

static int cache_grow(struct bt_insn_cache *c)
{
	size_t cap = c->cap * 2;
	struct bt_insn_desc *slot;

	slot = calloc(cap, sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	for (size_t i = 0; i < c->cap; i++) {
		if (c->slot[i].ip)
			cache_insert(slot, cap, &c->slot[i]);
	}
	free(c->slot);
	c->slot = slot;
	c->cap = cap;
	return 0;
}

int bt_insn_cache__add(struct bt_insn_cache *c, uint64_t ip,
		       const uint8_t *bytes, size_t n,
		       const struct bt_insn_desc **out)
{
	struct bt_insn_desc d;
	int err;

	if (!c || !ip || !bytes || !n || !out)
		return -EINVAL;
	err = insn_decode(c->cs, bytes, n, ip, &d);
	if (err < 0)
		return err;
	c->decoded++;
	if ((c->used + 1) * 2 > c->cap) {
		err = cache_grow(c);
		if (err < 0)
			return err;
	}
	if (!bt_insn_cache__find(c, ip))
		c->used++;
	*out = cache_insert(c->slot, c->cap, &d);
	return 0;
}

int bt_insn_cache__put(struct bt_insn_cache *c, const struct bt_insn_desc *d)
{
	int err;

	if (!c || !d || !d->ip || !d->len)
		return -EINVAL;
	if ((c->used + 1) * 2 > c->cap) {
		err = cache_grow(c);
		if (err < 0)
			return err;
	}
	if (!bt_insn_cache__find(c, d->ip))
		c->used++;
	cache_insert(c->slot, c->cap, d);
	return 0;
}

void bt_insn_cache__clear(struct bt_insn_cache *c)
{
	memset(c->slot, 0, c->cap * sizeof(*c->slot));
	c->used = 0;
}

uint64_t bt_insn_cache__decoded(const struct bt_insn_cache *c)
{
	return c->decoded;
}
