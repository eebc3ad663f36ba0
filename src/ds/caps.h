/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bt_caps_probe()'s insides, for tests: the probe over a stand-in kernel,
 * and the search of /proc for who holds a PMU.
 */
#ifndef BT_DS_CAPS_H
#define BT_DS_CAPS_H

#include <stddef.h>
#include <stdint.h>

#include <btrail/ds.h>

#include "ds/perf.h"

/*
 * bt_caps__probe_sys() - bt_caps_probe() with its confirming opens (unless
 * opts->no_open) made through @sys. Returns 0 or -EINVAL.
 */
int bt_caps__probe_sys(struct bt_cap *caps, const struct bt_caps_opts *opts,
		       const struct bt_perf_sys *sys);

/*
 * bt_caps__find_holder() - look through <@procfs>/<pid>/fd for perf event
 * fds (links to "anon_inode:[perf_event]") of processes other than this
 * one, and through their fdinfo for "perf_event_attr.type: @pmu_type"
 * where the kernel prints it.
 *
 * Returns 1 with @holder set ("pid 1234 (perf)") when a process's fdinfo
 * names the type, else 0 with @why saying what was found instead: the
 * processes that hold perf events (this kernel's fdinfo not naming the
 * PMU), none at all, or /proc entries it could not read. Both strings are
 * one line, without a final period.
 */
int bt_caps__find_holder(const char *procfs, uint64_t pmu_type, char *holder,
			 size_t holder_len, char *why, size_t why_len);

#endif /* BT_DS_CAPS_H */
