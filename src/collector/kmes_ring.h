/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Ring files: creating, validating and mapping one ring. Used by the
 * producer (session), by kmes_attach()/kmes_map() and by the reader.
 */
#ifndef BT_COLLECTOR_KMES_RING_H
#define BT_COLLECTOR_KMES_RING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "collector/kmes_layout.h"

/* The producer's view of one ring instance (one generation of a slot). */
struct kmes_ring {
	int fd;				/* ring file, O_RDWR */
	unsigned char *base;		/* KMES_MAP_SIZE(capacity) mapping */
	struct kmes_producer_page *pp;	/* == base */
	unsigned char *data;		/* base + 8192, double-mapped */
	uint64_t capacity;
	uint64_t mask;			/* capacity - 1 */
	/*
	 * Private copies of write_pos and tail_pos: the producer is their
	 * only writer, so it never reads them back from shared memory.
	 */
	uint64_t wp;
	uint64_t tail;
};

/* What a new ring starts with. */
struct kmes_ring_init {
	uint16_t cpu_id;		/* slot index for per-task rings */
	uint64_t generation;
	uint32_t kind;
	uint32_t tid;
	uint32_t status;
	uint32_t nr_slots;
	uint64_t topology;
	uint64_t last_seq;
	uint64_t dropped;
	uint64_t lost;
	uint64_t wake_ino;
	const uint8_t *session_id;	/* 16 bytes */
	uint32_t max_event_size;	/* the session's limits (extension) */
	uint32_t max_depth;
	uint32_t max_emit_rate;
	uint32_t config;		/* BT_KMES_XC_* */
	int numa_node;			/* wanted node, -1: leave to the kernel */
	mode_t mode;
	gid_t gid;			/* (gid_t)-1: keep */
};

/*
 * Lay out the §2.2 mapping from a ring file and a consumer-page file.
 * @writable maps the producer page and data read-write (the producer);
 * otherwise read-only. Returns the base or NULL with errno.
 */
void *kmes_map_layout(int ring_fd, int wake_fd, uint64_t capacity,
		      bool writable);

/*
 * Static checks on the first bytes of a ring file (magic, version,
 * capacity, data_offset, generation, reserved fields, extension header)
 * against the file's size. Returns NULL when sound, else the problem, with
 * its offset in *@off.
 */
const char *kmes_page_check(const unsigned char *page, uint64_t file_size,
			    unsigned *off);

/* Create, size, place and map consumer page file @name in @dirfd. */
int kmes_wake_create(int dirfd, const char *name, mode_t mode, gid_t gid,
		     int *fd_out, uint64_t *ino_out);

/*
 * Create ring file @name in @dirfd (O_EXCL), allocate every page now
 * (on @init->numa_node when >= 0, then verified with move_pages(2)),
 * write its producer page and map it for the producer into @r.
 * Returns 0 or a negative errno; on error nothing is left behind.
 */
int kmes_ring_create(int dirfd, const char *name, uint64_t capacity,
		     int wake_fd, const struct kmes_ring_init *init,
		     struct kmes_ring *r);

/*
 * Open existing ring file @name for the producer and validate all of it,
 * including the event chain from tail_pos to write_pos. @path is for
 * messages. Returns 0, -EPROTO (logged with offset and problem), or
 * another negative errno.
 */
int kmes_ring_open(int dirfd, const char *name, const char *path,
		   int wake_fd, struct kmes_ring *r);

/* Unmap and close; safe on a closed ring (fd -1, base NULL). */
void kmes_ring_close(struct kmes_ring *r);

/*
 * Wake every consumer sleeping on @pp's futex if one asked to be woken
 * (need_wake at @need_wake), taking the request (need_wake back to 0).
 * Called after a publish.
 */
void kmes_ring_notify(struct kmes_producer_page *pp,
		      _Atomic uint8_t *need_wake);

/* Unconditional: bump futex_counter and wake all (swap, topology). */
void kmes_ring_wake_all(struct kmes_producer_page *pp);

/* The node of the pages of [@addr, @addr+@len): >= 0, -1 unknown, -2 mixed. */
int kmes_numa_query(void *addr, uint64_t len);

/* CLOCK_REALTIME in ns. */
uint64_t kmes_now_ns(void);

#endif /* BT_COLLECTOR_KMES_RING_H */
