/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internals of the software facilities' public side (step.c), for tests.
 */
#ifndef BT_DS_STEP_H
#define BT_DS_STEP_H

#include <btrail/step.h>

#include "ds/stepper.h"

/*
 * bt_step__set_tap() - give @tap (borrowed; NULL removes it) every event
 * the engine gives the facility's sink, before the sink gets it: the
 * stepped instructions as they were, to check the trace against. A tap's
 * error stops the run as a sink's does. Before bt_step__run() only.
 * Returns 0 or -EINVAL.
 */
int bt_step__set_tap(struct bt_step *s, const struct bt_step_sink *tap);

#endif /* BT_DS_STEP_H */
