/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * btraild, the broker (docs/btrail-daemon.1, docs/protocol.md): one
 * thread runs an epoll loop over the listening socket, the clients and
 * the stepper threads' wakeups. The allocator (struct bt_ds) is only ever
 * called from that thread.
 *
 * Objects:
 *   client   a connection: its identity (SO_PEERCRED), its tracer in the
 *            allocator (charged against its RLIMIT_MEMLOCK), its grants;
 *   grant    one allocator view a client asked for, and the captures it
 *            reads (one per hardware session the view is made of);
 *   capture  one hardware session as the daemon serves it: a KMES ring
 *            session with one ring, a collector draining the session's
 *            buffers into it, a sideband event, and for step/pt-emu the
 *            thread that steps the task (it plays the hardware).
 *
 * A collector borrows the buffers of a view, which an allocator call can
 * change (ownership passing on, a shrink, a revoke): captures touched by
 * a release are paused before it and re-wired after it (bd_reconcile).
 */
#ifndef BT_TOOLS_BTRAILD_H
#define BT_TOOLS_BTRAILD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <btrail/collector.h>
#include <btrail/ds.h>
#include <btrail/kmes.h>
#include <btrail/step.h>

#include "broker/perm.h"
#include "broker/proto.h"

struct bd_daemon;

enum { BD_W_LISTEN = 1, BD_W_QUIT, BD_W_CLIENT, BD_W_CAPTURE };

struct bd_capture {
	int kind;			/* BD_W_CAPTURE: first, for epoll */
	uint64_t id;
	struct bd_daemon *d;
	struct bt_pmu_event *event;	/* the hardware session's event */
	uint32_t facility;
	uint32_t mode;
	struct bt_target target;	/* TASK tid or CPU */
	char ring[64];			/* KMES session name */
	struct bt_kmes_session *ks;
	uint32_t slot;			/* its one ring */
	struct bt_collector *col;
	const struct bt_pmu_buffers *wired; /* what col drains */
	struct bt_pmu_event *sb;	/* sideband event */
	struct bt_pmu_buffers sbb;
	/* step / pt-emu: the stepping thread */
	pthread_t th;
	bool th_started, th_done, th_joined;
	int th_err;
	struct bt_step *step;
	int ready_fd;			/* eventfd: attached / finished */
	bool frozen;			/* bt.trigger written */
	pid_t owner_pid;		/* who pays for the session */
	struct bd_capture *next;
};

struct bd_grant {
	uint64_t id;
	struct bt_ds_view *view;
	uint32_t ncap;
	struct bd_capture **cap;	/* one per part (or one) */
	struct bd_grant *next;		/* in the client's list */
};

struct bd_client {
	int kind;		/* BD_W_CLIENT: first, for epoll */
	int fd;
	struct bt_peer peer;
	struct bt_tracer *tr;
	struct bt_proto_rx rx;
	bool hello;
	char name[BT_PROTO_NAME_MAX];
	struct bd_grant *grants;
	struct bd_client *next;
};

/*
 * A ring session a dead daemon left (listed in the state file beside the
 * socket): recoverable with `btrail recover`, and adopted by the first
 * capture of the same facility, mode and target, which goes on writing
 * into it (sequences continue), so clients that kept it mapped read on.
 */
struct bd_orphan {
	char ring[64];
	uint32_t facility, mode;
	struct bt_target target;
	struct bd_orphan *next;
};

struct bd_opts {
	const char *socket;	/* NULL: bt_broker_socket_path() */
	const char *backend;	/* "auto", "perf", "sim" */
	const char *procfs;	/* NULL: /proc */
	uint64_t ring_bytes;	/* default ring capacity */
	uint32_t max_clients;
	bool quiet;
	int ready_fd;		/* >= 0: write a byte there once listening */
};

struct bd_daemon {
	struct bd_opts o;
	char sock_path[108];
	int lfd, efd;
	int quit_fd;		/* eventfd: bd_stop() */
	struct bt_pmu *pmu;
	bool sim;
	struct bt_ds *ds;
	struct bt_cap caps[BT_FAC__COUNT];
	struct bd_client *clients;
	uint32_t nclients;
	struct bd_capture *caps_list;
	struct bd_orphan *orphans;
	char state_path[128];
	uint64_t next_grant, next_capture;
	time_t started;
	uint64_t epoch;		/* ring names: btraild-<epoch>-<id> */
};

/* server.c */
int bd_run(const struct bd_opts *opts);
void bd_stop(void);		/* async-signal-safe */

/* state.c */
void bd_state_load(struct bd_daemon *d);
void bd_state_save(struct bd_daemon *d);
/* The orphan ring for a new capture like this one, taken off the list. */
struct bd_orphan *bd_orphan_take(struct bd_daemon *d, uint32_t facility,
				 uint32_t mode, struct bt_target target);
void bd_orphans_free(struct bd_daemon *d);

static inline const char *bd_kind_name(uint32_t kind)
{
	return kind == BT_TARGET_TASK ? "task" :
	       kind == BT_TARGET_CPU ? "cpu" : "all";
}

static inline const char *bd_mode_name(uint32_t mode)
{
	return mode == BT_MODE_SNAPSHOT ? "snapshot" : "stream";
}

/* capture.c */
/*
 * The capture of @part's session: the existing one, or a new one
 * (*@created; @owner pays for it) with its rings, collector and, for
 * step/pt-emu, its stepping thread watched by the daemon's epoll.
 */
int bd_capture_for(struct bd_daemon *d, struct bt_ds_view *part,
		   uint32_t facility, uint32_t mode, uint64_t ring_bytes,
		   pid_t owner, struct bd_capture **out, bool *created,
		   char *err, size_t errlen);
struct bd_capture *bd_capture_find(struct bd_daemon *d,
				   const struct bt_pmu_event *ev);
void bd_capture_pause(struct bd_capture *c);
int bd_capture_wire(struct bd_capture *c, struct bt_ds_view *part);
void bd_capture_end(struct bd_capture *c);
/* The stepping thread of @c finished: freeze the rings. */
void bd_capture_step_done(struct bd_capture *c);
long bd_capture_sync(struct bd_capture *c);
int bd_capture_ring_fds(struct bd_capture *c, int *ring_fd, int *wake_fd,
			uint64_t *capacity);

#endif /* BT_TOOLS_BTRAILD_H */
