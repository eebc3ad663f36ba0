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
 * Bundle and perf.data decoding come later in this header.
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
 * streams are only printed. Returns 0, -errno of the file, -EINVAL,
 * -ENOMEM.
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

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_DECODER_H */
