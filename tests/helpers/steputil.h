/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers of the step and pt-emu tests: a sink that records what the
 * stepping engine tells it (and passes it on to another sink), the
 * tracee's mappings and vdso captured while it is alive, and the code
 * bytes of an address read back from the files it was mapped from, so
 * that tests check the trace against the binaries, not against the
 * tracer's own view.
 */
#ifndef BT_TESTS_STEPUTIL_H
#define BT_TESTS_STEPUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <btrail/ds.h>

#include "ds/elfsym.h"
#include "ds/stepper.h"

struct su_insn {
	pid_t tid;
	uint64_t ip;
	uint64_t next;
	uint8_t len;
	uint8_t cls;
	bool taken;
	size_t seq;		/* position among all events */
};

struct su_async {
	struct bt_step_async a;
	size_t seq;
};

struct su_switch {
	pid_t from, to;
	size_t seq;
	size_t insns_before;	/* instructions recorded before it */
};

struct su_rec {
	struct su_insn *insn;
	size_t ninsn, capinsn;
	struct su_async *async;
	size_t nasync, capasync;
	struct su_switch *sw;
	size_t nsw, capsw;
	size_t seq;
	pid_t begin_tid, end_tid;
	uint64_t begin_ip, end_ip;
	int begins, ends;

	/* The tracee's mappings and a copy of its vdso, taken at begin. */
	pid_t pid;
	struct bt_map *maps;
	size_t nmaps;
	char vdso_file[64];

	const struct bt_step_sink *next;	/* passed on to; may be NULL */
};

/* Start recording into @r for process @pid, passing events on to @next. */
void su_rec_init(struct su_rec *r, pid_t pid, const struct bt_step_sink *next);
/* The sink that records into @r. */
void su_rec_sink(struct su_rec *r, struct bt_step_sink *sink);
/* Free and remove what @r holds. */
void su_rec_fini(struct su_rec *r);

/* $BTRAIL_PROGS/@name; skips the test when the programs are not built. */
const char *su_prog(const char *name);

/* The run-time address of @sym in the executable mapped in @r's maps. */
uint64_t su_sym(const struct su_rec *r, const char *sym);

/*
 * Read @len code bytes at @addr from the file @r's maps say holds it
 * (the vdso from its copy). Returns the count read (0: not mapped from a
 * file).
 */
size_t su_code(const struct su_rec *r, uint64_t addr, uint8_t *buf,
	       size_t len);

/* The executable mapped in @r's maps (its path), or NULL. */
const char *su_exe(const struct su_rec *r);

/*
 * Open a sim event of @fac (a sideband event when @sideband) for task
 * @pid, map it (16 pages of data, @aux bytes of AUX) into @b and enable
 * it; the test fails when any of it does.
 */
struct bt_pmu_event *su_open_map(struct bt_pmu *p, uint32_t fac, pid_t pid,
				 bool sideband, uint64_t aux,
				 struct bt_pmu_buffers *b);

#endif /* BT_TESTS_STEPUTIL_H */
