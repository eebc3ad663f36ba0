// SPDX-License-Identifier: BSD-3-Clause
/*
 * The attr and TSC accessors of pmu_attr.h: one entry for the collector,
 * dispatching on the backend (each keeps its event struct private).
 */
#include "ds/pmu_attr.h"

#include "ds/perf.h"
#include "ds/sim_model.h"

const struct perf_event_attr *bt_pmu_event__attr(const struct bt_pmu *pmu,
						 const struct bt_pmu_event *ev)
{
	if (!pmu || !ev)
		return NULL;
	if (bt_sim_is(pmu))
		return &ev->attr;
	return bt_perf_event__attr(ev);
}

uint64_t bt_pmu__tsc_hz(const struct bt_pmu *pmu)
{
	if (!bt_sim_is(pmu))
		return 0;
	/* set once at creation: no lock */
	return ((const struct bt_sim *)pmu)->tsc_hz;
}
