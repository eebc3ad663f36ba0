/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a consumer of an event needs to parse its records and convert its
 * time, whichever backend opened it: the perf_event_attr the event
 * stands for (sample_type, sample_regs_intr, branch_sample_type decide
 * the layout of PERF_RECORD_SAMPLE) and the TSC frequency where the
 * backend knows it exactly (sim: its opts.tsc_hz).
 */
#ifndef BT_DS_PMU_ATTR_H
#define BT_DS_PMU_ATTR_H

#include <stdint.h>

#include <linux/perf_event.h>

#include <btrail/ds.h>

/* The attr @ev was opened with (borrowed, valid until close), or NULL. */
const struct perf_event_attr *bt_pmu_event__attr(const struct bt_pmu *pmu,
						 const struct bt_pmu_event *ev);

/* The TSC frequency @pmu models (sim), or 0 when it is not known here. */
uint64_t bt_pmu__tsc_hz(const struct bt_pmu *pmu);

#endif /* BT_DS_PMU_ATTR_H */
