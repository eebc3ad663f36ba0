/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The stepping engine shared by step and pt-emu: ptrace single-step of
 * every thread, instructions classified with capstone from the tracee's
 * real bytes, and a sink that turns the instruction stream into trace.
 */
#ifndef BT_DS_STEPPER_H
#define BT_DS_STEPPER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

enum bt_insn_class {
	BT_INSN_OTHER = 0,	/* falls through */
	BT_INSN_JCC,		/* conditional direct jump (jcc, loop, jrcxz) */
	BT_INSN_JMP,		/* unconditional direct jump */
	BT_INSN_JMP_IND,	/* indirect jump */
	BT_INSN_CALL,		/* direct call */
	BT_INSN_CALL_IND,	/* indirect call */
	BT_INSN_RET,		/* near return */
	BT_INSN_FAR,		/* syscall, sysenter, int, iret, far transfers */
};

/* One instruction the tracee executed. */
struct bt_step_insn {
	pid_t tid;
	uint64_t ip;		/* its address */
	uint64_t next_ip;	/* where the thread went next */
	uint8_t len;
	uint8_t bytes[16];
	uint32_t cls;		/* enum bt_insn_class */
	bool taken;		/* next_ip != ip + len */
};

/* Asynchronous transfer: a signal handler entered, or a sigreturn. */
struct bt_step_async {
	pid_t tid;
	uint64_t from;		/* the ip that was interrupted */
	uint64_t to;		/* where execution resumes */
	int signo;		/* 0 for sigreturn and the like */
};

/* What the engine tells its sink; each returns 0 or a negative errno. */
struct bt_step_sink {
	void *ctx;
	int (*begin)(void *ctx, pid_t tid, uint64_t ip);   /* tracing starts */
	int (*insn)(void *ctx, const struct bt_step_insn *in);
	int (*async)(void *ctx, const struct bt_step_async *a);
	int (*thread_switch)(void *ctx, pid_t from_tid, pid_t to_tid);
	int (*end)(void *ctx, pid_t tid, uint64_t ip);	    /* tracing stops */
};

#endif /* BT_DS_STEPPER_H */
