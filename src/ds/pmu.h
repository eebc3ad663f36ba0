/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What every backend embeds first: struct bt_pmu is this base, so that
 * bt_pmu__ops() and bt_pmu__free() work for perf and sim alike.
 */
#ifndef BT_DS_PMU_H
#define BT_DS_PMU_H

#include <btrail/ds.h>

struct bt_pmu {
	const struct bt_pmu_ops *ops;
	void (*destroy)(struct bt_pmu *pmu);	/* frees the whole backend */
};

/* Page size of mappings; the backends and the allocator assume 4 KiB. */
#define BT_PMU_PAGE	4096ull

/* True when @n is a power of two number of pages (0 is not). */
static inline int bt_pmu_pages_pow2(uint64_t n)
{
	return n >= BT_PMU_PAGE && n % BT_PMU_PAGE == 0 &&
	       ((n / BT_PMU_PAGE) & (n / BT_PMU_PAGE - 1)) == 0;
}

#endif /* BT_DS_PMU_H */
