/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the recorder shares with the broker's daemon (tools/btraild),
 * which steps tasks for its clients the way `btrail record` does.
 */
#ifndef BT_COLLECTOR_RECORD_INT_H
#define BT_COLLECTOR_RECORD_INT_H

#include <stdbool.h>
#include <sys/types.h>

#include <btrail/collector.h>
#include <btrail/step.h>

/*
 * bt_step_trigger() - the bt.trigger for the end of task @pid stepped by
 * @s (NULL: it was never attached): its fault (signal, si_code, address,
 * registers), the signal that killed it, its exit, or "stop" when it was
 * @attached to and let go still running. Returns true in that last case.
 */
bool bt_step_trigger(struct bt_trigger *t, const struct bt_step *s, pid_t pid,
		     bool attached);

#endif /* BT_COLLECTOR_RECORD_INT_H */
