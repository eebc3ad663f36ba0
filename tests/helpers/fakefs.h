/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fake sysfs and procfs trees for the caps and perf tests: a temporary
 * directory removed at exit, files written with their parents, and the
 * contents real machines have (a Skylake's intel_pt, intel_bts and cpu
 * PMUs; /proc/cpuinfo of an Intel or AMD CPU; a process with perf event
 * fds).
 */
#ifndef BT_TESTS_FAKEFS_H
#define BT_TESTS_FAKEFS_H

#include <stdint.h>

/*
 * A new empty directory "/tmp/bt-fake-<tag>-XXXXXX", removed with all
 * its contents when the process that made it exits. The string is the
 * caller's (freed at exit too).
 */
char *tu_fake_root(const char *tag);

/* Write @content to @root/@rel, creating the directories above it. */
void tu_fake_write(const char *root, const char *rel, const char *content);
/* printf form of tu_fake_write. */
void tu_fake_printf(const char *root, const char *rel, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A symbolic link @root/@rel -> @target (which need not exist). */
void tu_fake_symlink(const char *root, const char *rel, const char *target);
/* Remove @root/@rel (a file). */
void tu_fake_remove(const char *root, const char *rel);

/*
 * Under @sysfs: a Skylake's intel_pt PMU (type @pt_type; the caps and
 * format files Linux shows there), an intel_bts PMU (type @pt_type + 1)
 * and the core PMU "cpu" (type 4, max_precise 3, 32 LBR entries), plus the
 * software and tracepoint PMUs every kernel has.
 */
void tu_fake_skylake_sysfs(const char *sysfs, unsigned pt_type);
/* Only the software and tracepoint PMUs: a VM without a PMU. */
void tu_fake_bare_sysfs(const char *sysfs);

/*
 * Under @procfs: cpuinfo for two CPUs of @vendor/@family/@model/@name
 * with @flags, self/status with CapEff @cap_eff, and
 * sys/kernel/perf_event_paranoid @paranoid.
 */
void tu_fake_procfs(const char *procfs, const char *vendor, int family,
		    int model, const char *name, const char *flags,
		    uint64_t cap_eff, int paranoid);

/* The flags of a Skylake client (with intel_pt, without hypervisor). */
extern const char tu_flags_skylake[];
/* The flags of an AMD EPYC guest (hypervisor, no intel_pt). */
extern const char tu_flags_epyc_vm[];
/* CapEff of root: every capability up to CAP_CHECKPOINT_RESTORE (40). */
#define TU_CAP_ALL	0x1ffffffffffull

#endif /* BT_TESTS_FAKEFS_H */
