// SPDX-License-Identifier: BSD-3-Clause
/* The backend base shared by perf and sim, and facility names. */
#include "ds/pmu.h"

#include <errno.h>
#include <string.h>

static const char *const facility_names[BT_FAC__COUNT] = {
	[BT_FAC_PT] = "pt",
	[BT_FAC_BTS] = "bts",
	[BT_FAC_PEBS] = "pebs",
	[BT_FAC_LBR] = "lbr",
	[BT_FAC_STEP] = "step",
	[BT_FAC_PTEMU] = "pt-emu",
};

const char *bt_facility_name(uint32_t facility)
{
	return facility < BT_FAC__COUNT ? facility_names[facility] : NULL;
}

int bt_facility_parse(const char *name)
{
	if (!name)
		return -EINVAL;
	for (int i = 0; i < BT_FAC__COUNT; i++) {
		if (!strcmp(name, facility_names[i]))
			return i;
	}
	return -EINVAL;
}

bool bt_facility_exclusive(uint32_t facility)
{
	/*
	 * The kernel allows one intel_pt or intel_bts event per context and
	 * makes PT, BTS and LBR exclude each other; a task can have one
	 * ptrace tracer, so the stepping facilities are exclusive too. PEBS
	 * is a counter like any other: several configs coexist.
	 */
	return facility != BT_FAC_PEBS && facility < BT_FAC__COUNT;
}

const struct bt_pmu_ops *bt_pmu__ops(const struct bt_pmu *pmu)
{
	return pmu ? pmu->ops : NULL;
}

void bt_pmu__free(struct bt_pmu *pmu)
{
	if (pmu && pmu->destroy)
		pmu->destroy(pmu);
}
