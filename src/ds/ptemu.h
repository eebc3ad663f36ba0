/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pt-emu: the stepping engine's sink that encodes control flow into real
 * Intel PT packets with libipt's encoder, as a user-only trace of the
 * hardware would show it. The bytes go to a write callback (the sim
 * backend's PT event, or memory in tests). pte_* codes never leave this
 * module.
 */
#ifndef BT_DS_PTEMU_H
#define BT_DS_PTEMU_H

#include <stddef.h>
#include <stdint.h>

#include "ds/stepper.h"

struct pt_config;
struct bt_ptemu;

/* Take @len bytes of packets; 0 or a negative errno (tracing stops). */
typedef int (*bt_ptemu_write_fn)(void *ctx, const void *buf, size_t len);
/* The time-stamp counter for TSC packets. */
typedef uint64_t (*bt_ptemu_tsc_fn)(void *ctx);

struct bt_ptemu_opts {
	size_t sz;
	bt_ptemu_write_fn write;	/* required */
	bt_ptemu_tsc_fn tsc;		/* NULL: CLOCK_MONOTONIC in ns */
	void *ctx;			/* for both */
	uint32_t psb_period;		/* bytes between PSB+; 0: 4096 */
};
#define bt_ptemu_opts__last_field psb_period

/*
 * bt_ptemu__new() - an encoder. NULL with errno EINVAL (no write
 * callback, bad @opts->sz, psb_period under 256) or ENOMEM.
 */
struct bt_ptemu *bt_ptemu__new(const struct bt_ptemu_opts *opts);

/* NULL is a no-op. */
void bt_ptemu__free(struct bt_ptemu *pe);

/* The sink to give the engine; valid as long as @pe. */
void bt_ptemu__sink(struct bt_ptemu *pe, struct bt_step_sink *sink);

/* Hand what is encoded so far to the write callback. 0 or its error. */
int bt_ptemu__flush(struct bt_ptemu *pe);

/* Bytes of packets written so far (handed to the write callback). */
uint64_t bt_ptemu__bytes(const struct bt_ptemu *pe);

/* PSB+ written so far. */
uint64_t bt_ptemu__psbs(const struct bt_ptemu *pe);

/*
 * bt_ptemu_config() - the configuration the encoder uses (its CPU, a
 * family 6 model 0x55 Intel part libipt knows, and that CPU's errata),
 * with no buffer: decode pt-emu traces with it. 0 or -EINVAL.
 */
int bt_ptemu_config(struct pt_config *config);

#endif /* BT_DS_PTEMU_H */
