/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The capstone adapter of the stepping engine: x86-64 instructions
 * classified for branch tracing (enum bt_insn_class), decoded once per
 * address and kept in a cache until the tracee's code may have changed
 * (exec, mmap, munmap, mprotect). cs_err never leaves this module.
 */
#ifndef BT_DS_INSN_H
#define BT_DS_INSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ds/stepper.h"

enum bt_insn_flag {
	/* After a single-step the registers must be read: the next IP
	 * depends on them (conditional, indirect, return, far). */
	BT_INSN_F_NEEDS_REGS = 1u << 0,
	/* A REP/REPNE string instruction: each iteration traps. */
	BT_INSN_F_REP = 1u << 1,
	/* syscall, sysenter or int 0x80: may block in the kernel. */
	BT_INSN_F_SYSCALL = 1u << 2,
	/* int3, int1, int n, into: raises a trap the tracee may see. */
	BT_INSN_F_INT = 1u << 3,
};

/* One decoded instruction. */
struct bt_insn_desc {
	uint64_t ip;
	uint64_t target;	/* direct JMP/CALL/JCC: the branch target */
	uint8_t len;
	uint8_t cls;		/* enum bt_insn_class */
	uint8_t flags;		/* enum bt_insn_flag */
	uint8_t bytes[16];
};

/*
 * bt_insn_classify() - decode the instruction at the start of @bytes
 * (@n of them, the tracee's real bytes at @ip) into @out. Returns 0,
 * -EINVAL for bad arguments, -EILSEQ when capstone cannot decode it, or
 * -ENOMEM.
 */
int bt_insn_classify(const uint8_t *bytes, size_t n, uint64_t ip,
		     struct bt_insn_desc *out);

/* The class name ("jcc", "ret", ...) for messages and tests. */
const char *bt_insn_class_name(uint32_t cls);

struct bt_insn_cache;

/* An empty cache. NULL with errno ENOMEM or EINVAL (capstone refused). */
struct bt_insn_cache *bt_insn_cache__new(void);

/* NULL is a no-op. */
void bt_insn_cache__free(struct bt_insn_cache *c);

/*
 * The cached instruction at @ip, or NULL. The pointer stays valid until
 * the next __add() or __clear().
 */
const struct bt_insn_desc *bt_insn_cache__find(struct bt_insn_cache *c,
					       uint64_t ip);

/*
 * Decode the instruction at @ip from @bytes (@n of them) and cache it.
 * *@out points at the cached copy (valid as for __find()). Returns 0 or
 * what bt_insn_classify() returns.
 */
int bt_insn_cache__add(struct bt_insn_cache *c, uint64_t ip,
		       const uint8_t *bytes, size_t n,
		       const struct bt_insn_desc **out);

/*
 * Cache @d as it is: an instruction capstone could not decode, whose
 * length the engine learnt by running it. 0, -EINVAL or -ENOMEM.
 */
int bt_insn_cache__put(struct bt_insn_cache *c, const struct bt_insn_desc *d);

/* Forget everything: the code may have changed. */
void bt_insn_cache__clear(struct bt_insn_cache *c);

/* Instructions decoded with capstone so far (misses), for the stats. */
uint64_t bt_insn_cache__decoded(const struct bt_insn_cache *c);

#endif /* BT_DS_INSN_H */
