/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Offline decoding of branch trace.
 *
 * So far: raw Intel PT, the way libipt's ptxed takes it. A PT decode
 * session (struct bt_ptdec) holds a libipt configuration (CPU and its
 * errata, MTC/CTC/nominal frequencies, address filters), a trace buffer,
 * an image built from raw code files, optional perf_event sideband
 * streams, and runs libipt 2.0.5's block decoder (the default) or its
 * instruction decoder over the trace. bt_ptdec__print() writes the
 * listing ptxed writes: one line per instruction, event lines, error
 * lines "[<offset>, <ip>: error: <message>]" with resynchronisation at
 * the next PSB.
 *
 * Sections of code files live in a struct bt_iscache, libipt's
 * image-section cache: several sessions given the same cache share the
 * mapped sections (the parallel decode and bundle decoding build on it).
 *
 * Bundles are reconstructed by struct bt_recon (below).
 */
#ifndef BTRAIL_DECODER_H
#define BTRAIL_DECODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <btrail/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An image-section cache (libipt's pt_image_section_cache). */
struct bt_iscache;

/*
 * bt_iscache__new() - an empty cache named @name (may be NULL). Returns
 * it, or NULL with errno ENOMEM.
 */
BT_API struct bt_iscache *bt_iscache__new(const char *name);

/*
 * bt_iscache__free() - drop the caller's reference; the cache goes when
 * no session uses it any more. NULL is a no-op.
 */
BT_API void bt_iscache__free(struct bt_iscache *c);

enum bt_ptdec_kind {
	BT_PTDEC_BLOCK = 0,	/* libipt's block decoder (default) */
	BT_PTDEC_INSN = 1,	/* libipt's instruction flow decoder */
};

/* Options for bt_ptdec__new(). Set .sz = sizeof; may be NULL. */
struct bt_ptdec_opts {
	size_t sz;
	enum bt_ptdec_kind kind;
	/* The CPU the trace was recorded on, for its errata. Without
	 * has_cpu (and cpu_family 0) there is none: decode by the
	 * specification. */
	bool has_cpu;
	uint16_t cpu_family;
	uint8_t cpu_model;
	uint8_t cpu_stepping;
	uint8_t mtc_freq;		/* IA32_RTIT_CTL.MTCFreq */
	uint8_t nom_freq;		/* MSR_PLATFORM_INFO[15:8] */
	uint32_t cpuid_0x15_eax;
	uint32_t cpuid_0x15_ebx;
	/* IA32_RTIT_CTL.ADDRn_CFG (4 bits each, n = 0..3) and the ranges */
	uint64_t addr_cfg;
	uint64_t addr_a[4];
	uint64_t addr_b[4];
	bool end_on_call;		/* block decoder flags */
	bool end_on_jump;
	bool tick_events;		/* ask for tick events */
	/* The section cache to use (shared); NULL: the session's own. */
	struct bt_iscache *iscache;
};
#define bt_ptdec_opts__last_field iscache

struct bt_ptdec;	/* opaque */

/*
 * bt_ptdec__new() - a decode session. Nothing is decoded yet: give it a
 * trace (bt_ptdec__set_trace*) and code (bt_ptdec__add_raw) first.
 *
 * Returns the session, or NULL with errno EINVAL (bad @opts) or ENOMEM.
 */
BT_API struct bt_ptdec *bt_ptdec__new(const struct bt_ptdec_opts *opts);

/* bt_ptdec__free() - free @d. NULL is a no-op. */
BT_API void bt_ptdec__free(struct bt_ptdec *d);

/*
 * bt_ptdec__config_error() - whether libipt 2.0.5 knows the CPU of the
 * options: 0, or -BT_ERRNO_FORMAT with @msg (if not NULL) set to libipt's
 * text. bt_ptdec__print() reports an unknown CPU the way ptxed does
 * ("[0, 0: config error: unknown cpu]") and decodes without errata.
 */
BT_API int bt_ptdec__config_error(const struct bt_ptdec *d,
				  const char **msg);

/*
 * bt_ptdec__set_trace_file() - read the trace from @spec, "FILE",
 * "FILE:FROM" or "FILE:FROM-TO" (byte offsets, any C base). A second
 * call replaces the first. Returns 0, -ENOENT/-EACCES/... from the file,
 * -EINVAL for a bad range, -ENOMEM. The log names file and problem.
 */
BT_API int bt_ptdec__set_trace_file(struct bt_ptdec *d, const char *spec);

/* bt_ptdec__set_trace_mem() - @size bytes at @buf (copied). */
BT_API int bt_ptdec__set_trace_mem(struct bt_ptdec *d, const void *buf,
				   size_t size);

/*
 * bt_ptdec__add_raw() - map the raw code file of @spec into the image:
 * "FILE:BASE" (the whole file at address BASE), "FILE:OFFSET:BASE" (from
 * file offset OFFSET on) or "FILE:FROM-TO:BASE" (bytes FROM..TO-1), the
 * forms of ptxed's --raw. Returns 0, -EINVAL (bad spec), -ENOENT (no
 * such file, or an offset past its end), -ENOMEM.
 */
BT_API int bt_ptdec__add_raw(struct bt_ptdec *d, const char *spec);

/*
 * bt_ptdec__add_file() - map @size bytes (0: to the end) of @path from
 * file offset @offset at address @vaddr. Errors as for __add_raw().
 */
BT_API int bt_ptdec__add_file(struct bt_ptdec *d, const char *path,
			      uint64_t offset, uint64_t size, uint64_t vaddr);

/* The perf_event sideband configuration (ptxed's --pevent:*). */
struct bt_pevent_opts {
	size_t sz;
	uint64_t sample_type;		/* perf_event_attr.sample_type */
	uint64_t time_zero;		/* perf_event_mmap_page time_* */
	uint16_t time_shift;
	uint32_t time_mult;		/* 0 is taken as 1 */
	uint64_t tsc_offset;		/* apply records this much earlier */
	uint64_t kernel_start;		/* 0: UINT64_MAX (no kernel) */
	const char *sysroot;		/* prefix of sideband file names */
	const char *vdso_x64;		/* files for [vdso] mappings */
	const char *vdso_x32;
	const char *vdso_ia32;
	bool primary;			/* the trace's own CPU */
};
#define bt_pevent_opts__last_field primary

/*
 * bt_ptdec__add_pevent() - add the perf_event sideband stream of @spec,
 * "FILE[:FROM[-TO]]", read with @opts. Records of primary streams change
 * the image the decoder uses as the trace's time reaches them (MMAP,
 * MMAP2, COMM.EXEC, ITRACE_START, SWITCH, ...); records of secondary
 * streams fill the processes' images but switch nothing. The whole
 * file is checked here. Returns 0, -errno of the file, -EINVAL (bad
 * range), -BT_ERRNO_FORMAT (a malformed record; the log names the file
 * and the offset), -ENOMEM.
 */
BT_API int bt_ptdec__add_pevent(struct bt_ptdec *d, const char *spec,
				const struct bt_pevent_opts *opts);

/* What bt_ptdec__print() prints. Set .sz = sizeof; may be NULL. */
struct bt_ptdec_print_opts {
	size_t sz;
	bool no_inst;		/* addresses only (ptxed --no-inst) */
	bool quiet;		/* neither instructions nor events */
	bool event_ip;		/* ", ip: ..." on events */
	bool event_time;	/* the TSC of events */
	bool show_blocks;	/* "[block N]" lines (block decoder) */
	bool stat;		/* "insn: N." / "blocks:\tN." at the end */
	bool stat_insn;		/* only these (with stat) */
	bool stat_blocks;
	/* sideband records: compact/verbose form, with file offset, file
	 * name, time; context switch lines; sideband warnings */
	bool sb_compact;
	bool sb_verbose;
	bool sb_offset;
	bool sb_filename;
	bool sb_time;
	bool sb_switch;
	bool sb_warn;
};
#define bt_ptdec_print_opts__last_field sb_warn

/* Counts of one decode. */
struct bt_ptdec_stats {
	uint64_t insn;
	uint64_t blocks;
	uint64_t errors;	/* error lines (decode and sync errors) */
	uint64_t syncs;		/* PSBs the decoder synchronised at */
};

/*
 * bt_ptdec__print() - decode the whole trace and write its listing to
 * @out. Decode errors are part of the listing, not failures: after each
 * the decoder searches for the next PSB and goes on. @stats may be NULL.
 *
 * Returns 0, -EINVAL (no trace, bad @opts), -ENOMEM, or -EIO when
 * writing @out failed.
 */
BT_API int bt_ptdec__print(struct bt_ptdec *d, FILE *out,
			   const struct bt_ptdec_print_opts *opts,
			   struct bt_ptdec_stats *stats);


/* ---- Bundles: reconstruction ------------------------------------------- */

/*
 * A reconstruction reads a bundle (<btrail/bundle.h>) and gives back what
 * ran: instructions and branches in trace order per stream, with the
 * image built from the sideband (bt.mmap) and the binaries (the bundle's
 * images/, the recorded paths under a sysroot, or build-id directories),
 * PT decoded with libipt (through struct bt_ptdec), BTS records walked
 * with capstone from each record's `to` to the next `from`, symbols from
 * .symtab/.dynsym (libelf) and file:line from DWARF (libdw) when there
 * is debug information. A missing binary is a warning naming its
 * build-id and path, and a gap item in the flow, never a failure.
 */
struct bt_recon;	/* opaque */

struct bt_recon_opts {
	size_t sz;
	const char *sysroot;	/* prefix of recorded paths; NULL: "" */
	const char *buildid_dir;/* DIR/xx/rest[.debug] as debuginfod keeps
				   them; NULL: none */
	enum bt_ptdec_kind kind;/* PT decoder: block (default) or insn */
	const char *cpu;	/* "F/M[/S]" for errata; NULL: the bundle's */
	bool progress;		/* progress lines on stderr (a terminal) */
};
#define bt_recon_opts__last_field progress

/*
 * bt_recon__open() - open bundle @dir for reconstruction. NULL with
 * errno: ENOENT, ENOTDIR, EINVAL, ENOMEM, or BT_ERRNO_FORMAT for a
 * malformed bundle (logged with file, offset and problem).
 */
BT_API struct bt_recon *bt_recon__open(const char *dir,
				       const struct bt_recon_opts *opts);
/* NULL is a no-op. */
BT_API void bt_recon__free(struct bt_recon *r);

enum bt_recon_kind {
	BT_RI_INSN = 0,		/* an instruction ran: ip, len, bytes, iclass */
	BT_RI_BRANCH,		/* a taken branch: ip (from), to, iclass */
	BT_RI_EVENT,		/* trace enabled/disabled, interrupt, ... */
	BT_RI_GAP,		/* trace missing here (loss, unknown code) */
	BT_RI_ERROR,		/* a decode error (the flow resumes later) */
	BT_RI_TRIGGER,		/* the bundle's trigger, at the end */
};

/* Instruction classes (as a branch tracer needs them). */
enum bt_iclass {
	BT_IC_OTHER = 0,	/* falls through */
	BT_IC_JCC,		/* conditional jump */
	BT_IC_JMP,		/* direct jump */
	BT_IC_JMP_IND,		/* indirect jump */
	BT_IC_CALL,		/* direct call */
	BT_IC_CALL_IND,		/* indirect call */
	BT_IC_RET,		/* near return */
	BT_IC_FAR,		/* syscall, int, iret, far transfers */
};

struct bt_recon_item {
	uint32_t kind;		/* enum bt_recon_kind */
	uint32_t stream;	/* the bundle stream (ring) */
	int32_t cpu;		/* -1 unknown */
	int32_t pid, tid;	/* -1 unknown */
	uint64_t time;		/* perf clock ns where known, else 0 */
	uint64_t ip;		/* INSN: address; BRANCH: from */
	uint64_t to;		/* BRANCH: target */
	uint32_t iclass;	/* enum bt_iclass */
	uint8_t len;		/* INSN: length, bytes[0..len) */
	uint8_t bytes[15];
	const char *text;	/* EVENT/GAP/ERROR: one line, no newline */
};

/* Called for each item in order; nonzero stops the run with that value. */
typedef int (*bt_recon_fn)(void *ctx, const struct bt_recon_item *it);

#define BT_RECON_INSNS		0x1u	/* INSN items */
#define BT_RECON_BRANCHES	0x2u	/* BRANCH items */

/*
 * bt_recon__run() - reconstruct every stream in order, telling @fn the
 * items asked for in @what (EVENT, GAP, ERROR and TRIGGER items always).
 * Returns 0, @fn's nonzero value, or a negative errno.
 */
BT_API int bt_recon__run(struct bt_recon *r, uint32_t what, bt_recon_fn fn,
			 void *ctx);

struct bt_sym {
	const char *name;	/* function, or NULL when unknown */
	uint64_t offset;	/* addr - symbol start */
	const char *file;	/* source file, or NULL */
	uint32_t line;		/* 0 when unknown */
	const char *image;	/* the binary's path, or NULL */
};

/*
 * bt_recon__symbolize() - what @addr of process @pid is (-1: any).
 * Strings are owned by @r. Returns 0 (fields NULL/0 where unknown) or
 * -ENOENT when no image holds @addr.
 */
BT_API int bt_recon__symbolize(struct bt_recon *r, int32_t pid,
			       uint64_t addr, struct bt_sym *out);

/*
 * bt_recon__disasm() - the instruction at @addr of @pid as text
 * ("mov rax, qword ptr [rdi]") into @buf. Returns its length in bytes
 * of code, or -ENOENT (no code there), -EINVAL.
 */
BT_API int bt_recon__disasm(struct bt_recon *r, int32_t pid, uint64_t addr,
			    char *buf, size_t len);

struct bt_report_opts {
	size_t sz;
	uint32_t branches;	/* last N branches shown; 0: 32 */
	bool color;		/* ANSI colour */
};
#define bt_report_opts__last_field color

/*
 * bt_recon__report() - the way to the crash, to @out: the signal and the
 * faulting instruction (disassembled, with its source line), the call
 * stack reconstructed from the trace, innermost first, one frame a line
 * "#N  function+0xOFF (file:line)" ("??" where unknown), then the last N
 * branches with symbols. Returns 0 or a negative errno.
 */
BT_API int bt_recon__report(struct bt_recon *r, FILE *out,
			    const struct bt_report_opts *opts);

/* ---- Bundles: views and exports ---------------------------------------- */

/* The views of `btrail script BUNDLE` (docs/btrail-script.1). */
enum bt_view_kind {
	BT_VIEW_INSN = 0,	/* instruction flow, disassembled (default) */
	BT_VIEW_BRANCHES,	/* one line per taken branch, with symbols */
	BT_VIEW_CALLS,		/* function-call history, nested by depth */
};

enum bt_view_format {
	BT_VIEW_TEXT = 0,
	BT_VIEW_JSON,		/* JSON Lines: docs/script-json.md */
};

struct bt_view_opts {
	size_t sz;
	enum bt_view_kind view;
	enum bt_view_format format;
};
#define bt_view_opts__last_field format

/*
 * bt_recon__print_view() - run @r and write the view of @opts to @out.
 * Events, gaps, errors and the trigger appear in every view. Returns 0,
 * -EINVAL, -ENOMEM, -EIO (writing @out failed) or bt_recon__run()'s
 * negative errno.
 */
BT_API int bt_recon__print_view(struct bt_recon *r, FILE *out,
				const struct bt_view_opts *opts);

enum bt_export_format {
	BT_EXPORT_JSON = 0,	/* JSON Lines of every item */
	BT_EXPORT_CHROME,	/* Chrome Trace Event JSON, a span per call */
	BT_EXPORT_CTF,		/* the bundle's CTF trace, re-exported */
};

/*
 * bt_recon__export() - run @r and write it to @out as @fmt (JSON or
 * CHROME; CTF is bt_bundle_export_ctf()). Returns 0, -EINVAL, -ENOMEM,
 * -EIO or bt_recon__run()'s negative errno.
 */
BT_API int bt_recon__export(struct bt_recon *r, FILE *out,
			    enum bt_export_format fmt);

/*
 * bt_bundle_export_ctf() - check every event of bundle @bundle with the
 * reader and write its CTF trace (metadata and stream files) to the new
 * directory @out, which babeltrace2 reads. Returns 0, -EEXIST, -ENOENT,
 * -BT_ERRNO_FORMAT (malformed bundle, logged) or another negative errno.
 */
BT_API int bt_bundle_export_ctf(const char *bundle, const char *out);

/*
 * bt_ptdec__count() - decode the whole trace exactly as bt_ptdec__print()
 * does (same decoder, events, sideband, errors and resynchronisation)
 * but write nothing; @stats gets the counts (errors included). Returns
 * 0, -EINVAL (no trace, @stats NULL) or -ENOMEM.
 */
BT_API int bt_ptdec__count(struct bt_ptdec *d, struct bt_ptdec_stats *stats);

/* ---- Bundles: PEBS and LBR samples -------------------------------------- */

enum bt_sample_kind {
	BT_SAMPLE_PEBS = 0,	/* bt.pebs: one precise sample */
	BT_SAMPLE_LBR,		/* bt.lbr: a sample and its branch stack */
};

/*
 * One LBR entry: perf's struct perf_branch_entry, its flags word (kept
 * in @flags) decoded bit by bit as the kernel packs it: mispred (bit 0),
 * predicted (1), in_tx (2), abort (3), cycles (4..19), type (20..23,
 * PERF_BR_*).
 */
struct bt_lbr_entry {
	uint64_t from, to;
	uint64_t flags;		/* the raw word */
	bool mispred, predicted, in_tx, abort;
	uint16_t cycles;	/* 0: not reported */
	uint8_t type;		/* PERF_BR_*, 0 unknown */
};

struct bt_sample {
	uint32_t kind;		/* enum bt_sample_kind */
	uint32_t stream;	/* the bundle stream (ring) */
	int32_t cpu, pid, tid;	/* -1 unknown */
	uint64_t time;		/* perf clock ns */
	uint64_t ip;
	/* PEBS (0 for LBR) */
	uint64_t addr, period, weight, data_src;
	/* LBR: the branch stack, newest first (NULL, 0 for PEBS) */
	const struct bt_lbr_entry *lbr;
	size_t nlbr;
};

/* Called per sample; nonzero stops the walk with that value. */
typedef int (*bt_sample_fn)(void *ctx, const struct bt_sample *s);

/*
 * bt_recon__samples() - tell @fn every bt.pebs and bt.lbr event of the
 * bundle, stream by stream in file order. What @fn gets is valid during
 * the call. Symbols: bt_recon__symbolize(). Returns the number of
 * samples told (>= 0), @fn's nonzero value when it stopped the walk
 * (as is; give a negative one to tell it from a count), or -EINVAL,
 * -ENOMEM, -BT_ERRNO_FORMAT (a malformed stream, logged).
 */
BT_API long bt_recon__samples(struct bt_recon *r, bt_sample_fn fn,
			      void *ctx);

/*
 * bt_recon__print_samples() - `btrail script BUNDLE --samples`: every
 * sample as a text line (an LBR sample followed by its stack, a line per
 * entry) or a JSON line (docs/script-json.md). Returns the number of
 * samples written (0: the bundle holds none), or -EINVAL, -ENOMEM, -EIO
 * (writing @out failed), -BT_ERRNO_FORMAT.
 */
BT_API long bt_recon__print_samples(struct bt_recon *r, FILE *out,
				    enum bt_view_format format);

/* ---- Parallel raw PT decode ------------------------------------------- */

/*
 * bt_ptdec__print_parallel() - bt_ptdec__print() on @jobs worker threads
 * (0: one per CPU the process may use when the trace is over 1 MiB,
 * else 1), with the same listing byte for byte: the trace is cut at
 * PSBs into segments of about equal size, each decoded by a worker with
 * its own libipt decoder and image over the session's section cache,
 * each checked to join the next (else decoded again with it), and the
 * listings written to @out in trace order. Sideband, --block:show-blocks,
 * --event:time, --stat and quiet listings depend on more than a PSB
 * restates, or cannot be checked: those, one job or a trace with too few
 * PSBs are decoded on this thread. @stats (may be NULL) gets the sums of
 * the segments: insn and errors as the single-threaded decode has them;
 * blocks and syncs count each segment's own (a block cut at a segment's
 * end is two, each segment synchronises once). Returns
 * bt_ptdec__print()'s values.
 */
BT_API int bt_ptdec__print_parallel(struct bt_ptdec *d, FILE *out,
				    const struct bt_ptdec_print_opts *opts,
				    struct bt_ptdec_stats *stats,
				    unsigned int jobs);

/*
 * bt_ptdec__count_parallel() - bt_ptdec__count() on @jobs threads (as
 * above). Returns 0, -EINVAL (no trace, @stats NULL) or -ENOMEM.
 */
BT_API int bt_ptdec__count_parallel(struct bt_ptdec *d,
				    struct bt_ptdec_stats *stats,
				    unsigned int jobs);

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_DECODER_H */
