/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef BT_COLLECTOR_KMES_PATH_H
#define BT_COLLECTOR_KMES_PATH_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Where ring sessions live (ARCHITECTURE.md): a plain name resolves to
 * $XDG_RUNTIME_DIR/btrail/<name> when that exists, else to
 * /dev/shm/btrail-<euid>/<name>. A name with a '/' is the directory itself.
 */

/* 0 when @name is a usable plain name or a path; else -EINVAL/-EFAULT. */
int kmes_name_check(const char *name);

/* Directory of existing session @name into @out; -ENOENT if none. */
int kmes_path_lookup(const char *name, char *out, size_t outlen);

/*
 * Directory a new session @name should get, into @out, creating the base
 * directory (0700, or 0711 so a group can reach a @group session) and
 * checking it is ours and not writable by others. -EEXIST when @name
 * exists in either base.
 */
int kmes_path_for_create(const char *name, bool group, char *out,
			 size_t outlen);

/* Ring and consumer-page file names of slot @slot. */
#define KMES_RING_FMT	"ring.%u"
#define KMES_WAKE_FMT	"wake.%u"
#define KMES_LOCK_NAME	"lock"
#define KMES_CONFIG_NAME "config"
#define KMES_NEW_SUFFIX	".new"

#endif /* BT_COLLECTOR_KMES_PATH_H */
