/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The parallel raw PT decode (pt_parallel.c) for `btrail script --pt
 * ... -j N`.
 */
#ifndef BT_DECODER_PT_PAR_H
#define BT_DECODER_PT_PAR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "decoder/pt_args.h"

/* Instructions of a piece's tail and the next one's head compared. */
#define PTD_SEG_CHECK	64

/*
 * A piece of a parallel decode: the decoder synchronises at @begin (a
 * PSB; 0: at the first PSB, as a whole decode does) and reads on to
 * @stop, past the PSB+ at @psb (ending at @end) where the next piece
 * starts: the piece is cut at the first event the decoder gives after
 * that PSB+ (or when it synchronises at or after @psb), and what it
 * decodes after the cut, PTD_SEG_CHECK instructions, goes to @tail: the
 * stitcher checks that it begins the next piece. The last piece has
 * @psb = @end = @stop = the trace size and no tail.
 */
struct ptd_seg {
	uint64_t begin, psb, end, stop;
	uint64_t next;		/* the PSB after @psb (or @stop) */
	bool last;		/* prints "[end of trace]" */
	/* count only: list the head and the tail as --no-inst does (the
	 * head, the first PSB_SEG_CHECK instructions, to the caller's
	 * stream, then quiet to @quiet_out) */
	bool count;
	FILE *quiet_out;
	FILE *tail;
	/* out */
	bool cut;
	bool cut_sync;		/* at a synchronisation: no tail needed */
	struct bt_ptdec_stats st_cut;
	bool halt;		/* a sync error without progress: the end */
};

/* bt_ptdec__print() of the piece @seg (NULL: all of the trace). */
int ptd_print(struct bt_ptdec *d, FILE *out,
	      const struct bt_ptdec_print_opts *opts,
	      struct bt_ptdec_stats *stats, struct ptd_seg *seg);

/*
 * ptd_args_run() on @jobs threads (0: one per online CPU for a trace
 * over 1 MiB; 1: ptd_args_run() itself). With perf sideband the decode
 * is single-threaded (bt_ptdec__print_parallel() says why).
 */
int ptd_args_run_jobs(const struct ptd_args *a, FILE *out,
		      struct bt_ptdec_stats *stats, unsigned int jobs);

#endif /* BT_DECODER_PT_PAR_H */
