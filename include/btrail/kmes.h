/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * KMES rings: PSD-003 v0.22 per-CPU event rings, as a userspace library.
 *
 * A ring session is a directory of files (see docs/kmes-extensions.md):
 *
 *	$XDG_RUNTIME_DIR/btrail/<name>/      (else /dev/shm/btrail-<uid>/<name>/)
 *	    lock        the producer's exclusive lock; holds the holder's pid
 *	    ring.<N>    slot N: producer page (4096 bytes) + data (capacity)
 *	    wake.<N>    slot N: consumer page (4096 bytes), shared by consumers
 *
 * A session name containing '/' is taken as the session directory itself;
 * that is how another user (see --group) names a session it does not own.
 *
 * Because rings are files, they outlive the producer: a consumer that
 * attaches after the producer was killed reads every event committed
 * before the kill and none torn (a commit is the release store of
 * write_pos; nothing past it is ever visible).
 *
 * Exactly one writer per ring: a producer holds flock(LOCK_EX) on the
 * session's lock file from bt_kmes_session__create()/__open() until
 * __close(), so a second producer process gets EBUSY; inside the process,
 * every write to a slot is made under that slot's mutex, so threads may
 * emit to the same slot concurrently. The kernel's "preemption off" of the
 * spec is this mutex. A session handle must not be used on both sides of
 * a fork().
 *
 * Consumers open ring files read-only, so the producer page and the data
 * are read-only to them whatever protection they ask mmap(2) for (it
 * fails with EACCES); only the consumer page is writable.
 *
 * Error conventions: the entry points that keep the spec's names
 * (kmes_attach, kmes_map, kmes_unmap, kmes_emit, kmes_emit_batch) return
 * -1 (or NULL) and set errno, as the spec's syscalls do. The bt_kmes_*
 * functions return a negative errno (or NULL with errno set); see
 * <btrail/errno.h>.
 */
#ifndef BTRAIL_KMES_H
#define BTRAIL_KMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <btrail/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Layout and constants (KMES.md §2, App. A) ------------------------ */

#define KMES_MAGIC		"KMESRING"	/* 8 bytes, no NUL; memcmp 8 */
#define KMES_MAGIC_LEN		8u
#define KMES_RING_VERSION	1u
#define KMES_PAGE_SIZE		4096u
#define KMES_DATA_OFFSET	8192u		/* producer + consumer page */
#define KMES_MAP_SIZE(cap)	(8192u + 2u * (uint64_t)(cap))
#define KMES_HDR_FIXED		77u		/* header_size = 77 + type_len */
#define KMES_BATCH_MAX		256u

#define KMES_CAPACITY_MIN	65536u		/* 64 KiB */
#define KMES_CAPACITY_MAX	268435456u	/* 256 MiB */
#define KMES_CAPACITY_DEFAULT	4194304u	/* 4 MiB */

#define KMES_MAX_EVENT_SIZE_DEFAULT	65536u	/* MaxEventSize */
#define KMES_MAX_EVENT_SIZE_MIN		1024u
#define KMES_MAX_EVENT_SIZE_MAX		4194304u
#define KMES_MAX_NESTING_DEFAULT	32u	/* MaxNestingDepth */
#define KMES_MAX_NESTING_MIN		4u
/*
 * msgpack-c's parser keeps a fixed stack of 32 container levels
 * (MSGPACK_EMBED_STACK_SIZE), so deeper limits could never be honoured;
 * the spec's range 4..256 is cut to 4..32 here.
 */
#define KMES_MAX_NESTING_MAX		32u
#define KMES_EMIT_RATE_MIN		100u	/* MaxEmitRatePerProcess */
#define KMES_EMIT_RATE_MAX		1000000u

/* Producer page offsets (from the start of the mapping). */
#define KMES_OFF_MAGIC		0
#define KMES_OFF_VERSION	8
#define KMES_OFF_CPU_ID		12
#define KMES_OFF_RESERVED0	14
#define KMES_OFF_CAPACITY	16
#define KMES_OFF_DATA_OFFSET	24
#define KMES_OFF_GENERATION	32
#define KMES_OFF_RESERVED1	40
#define KMES_OFF_WRITE_POS	64
#define KMES_OFF_TAIL_POS	72
#define KMES_OFF_RESERVED2	80
#define KMES_OFF_FUTEX		128
#define KMES_OFF_RESERVED3	132
#define KMES_OFF_EXT		192		/* btrail extension, see below */
#define KMES_OFF_NEED_WAKE	4096		/* consumer page */

/* Event header offsets (KMES.md §3); fields are little-endian, unaligned. */
#define KMES_EV_EVENT_SIZE	0
#define KMES_EV_HEADER_SIZE	4
#define KMES_EV_TIMESTAMP	8
#define KMES_EV_SEQUENCE	16
#define KMES_EV_CPU_ID		24
#define KMES_EV_ORIGIN		26
#define KMES_EV_EFFECTIVE_GUID	27
#define KMES_EV_TRUE_GUID	43
#define KMES_EV_PROCESS_GUID	59
#define KMES_EV_TYPE_LEN	75
#define KMES_EV_TYPE		77

enum kmes_origin_class {
	KMES_ORIGIN_USER = 0,	/* kmes_emit, kmes_emit_batch */
	KMES_ORIGIN_KMES = 1,	/* the ring library's own notices */
	KMES_ORIGIN_KACS = 2,
	KMES_ORIGIN_LCS = 3,
};

/*
 * btrail extension in producer-page bytes 192..4095 (v0.22 leaves them
 * undefined). Offsets from the start of the mapping; all little-endian.
 * docs/kmes-extensions.md describes each field.
 */
#define BT_KMES_EXT_MAGIC	"BTKMESX1"
#define BT_KMES_EXT_VERSION	2u	/* 2: session limits at 276..291 */
#define BT_KMES_XOFF_MAGIC	192	/* u8[8] */
#define BT_KMES_XOFF_VERSION	200	/* u32 */
#define BT_KMES_XOFF_SIZE	204	/* u32: bytes of extension defined */
#define BT_KMES_XOFF_KIND	208	/* u32: enum bt_kmes_ring_kind */
#define BT_KMES_XOFF_TID	212	/* u32: task id of a per-task ring */
#define BT_KMES_XOFF_NUMA_NODE	216	/* s32: node of the pages, -1 unknown */
#define BT_KMES_XOFF_FLAGS	220	/* u32: BT_KMES_XF_* */
#define BT_KMES_XOFF_WAKE_INO	224	/* u64: inode of wake.<N> */
#define BT_KMES_XOFF_CREATED	232	/* u64: CLOCK_REALTIME ns of creation */
#define BT_KMES_XOFF_SESSION_ID	240	/* u8[16]: random, same in all rings */
#define BT_KMES_XOFF_STATUS	256	/* u32: enum bt_kmes_cpu_status */
#define BT_KMES_XOFF_NR_SLOTS	260	/* u32: slots in the session */
#define BT_KMES_XOFF_TOPOLOGY	264	/* u64: bumped when slots change */
#define BT_KMES_XOFF_PRODUCER	272	/* u32: pid of the producer, 0 none */
/* The session's limits, so every producer that opens it applies them. */
#define BT_KMES_XOFF_MAX_EVENT	276	/* u32: MaxEventSize */
#define BT_KMES_XOFF_MAX_DEPTH	280	/* u32: MaxNestingDepth */
#define BT_KMES_XOFF_MAX_RATE	284	/* u32: MaxEmitRatePerProcess, 0 none */
#define BT_KMES_XOFF_CONFIG	288	/* u32: BT_KMES_XC_* */
#define BT_KMES_XOFF_LAST_SEQ	320	/* u64: last sequence spent */
#define BT_KMES_XOFF_DROPPED	328	/* u64: events dropped (> 50%) */
#define BT_KMES_XOFF_LOST	336	/* u64: events overwritten */
#define BT_KMES_EXT_SIZE	192	/* bytes 192..383 are defined */

#define BT_KMES_XF_NUMA_VERIFIED 0x1u	/* numa_node checked by move_pages */
#define BT_KMES_XC_NO_NUMA	0x1u	/* session made with no_numa */

enum bt_kmes_ring_kind {
	BT_KMES_RING_CPU = 0,		/* one ring per CPU; slot == cpu */
	BT_KMES_RING_TASK = 1,		/* one ring per traced task */
};

enum bt_kmes_cpu_status {
	BT_KMES_CPU_ONLINE = 0,
	BT_KMES_CPU_OFFLINE = 1,	/* present, not online: ring idle */
	BT_KMES_CPU_REMOVED = 2,	/* hot-removed, or its task exited */
};

/* ---- Consumer entry points (spec names; -1/NULL with errno) ----------- */

/* Pass as @cpu_id to kmes_attach() to learn the slot count. */
#define KMES_ATTACH_QUERY_SLOTS	0xFFFFFFFFu

/*
 * kmes_attach() - open slot @cpu_id of ring session @session.
 *
 * Returns a read-only fd for the slot's current ring and stores its
 * capacity in *@capacity. The fd is O_CLOEXEC; map it with kmes_map().
 * Attaching again gives a new, independent fd. With @cpu_id ==
 * KMES_ATTACH_QUERY_SLOTS, stores the slot count in *@capacity, opens
 * nothing and returns 0 (the later PKM discovery method; walking 0, 1, 2,
 * ... until EINVAL works too).
 *
 * Errors (-1, errno):
 *   EFAULT   @capacity or @session is NULL
 *   ENOENT   no such session
 *   EINVAL   @cpu_id is past the last slot, or @session is not a valid name
 *   EACCES, EPERM  the caller may not read the session
 *   EPROTO   the ring file failed validation (the log says where and why)
 *   ENOMEM, EMFILE, ...  as open(2)
 */
BT_API int kmes_attach(const char *session, uint32_t cpu_id,
		       uint64_t *capacity);

/*
 * kmes_map() - map the ring behind @fd, laid out as KMES.md §2.2.
 *
 * The mapping is exactly KMES_MAP_SIZE(@capacity) bytes: the producer page
 * (read-only: a write faults), the consumer page (writable; shared with
 * every consumer of the slot), and the data region mapped twice in a row,
 * read-only. @capacity must be what kmes_attach() returned for @fd. The
 * mapping stays valid after @fd is closed and after the producer is gone,
 * until kmes_unmap().
 *
 * Returns the base address, or NULL with errno:
 *   EBADF    @fd is not open
 *   EINVAL   @capacity is not a valid capacity or not @fd's
 *   ESTALE   the session's consumer page is gone (session destroyed)
 *   EPROTO   the ring file failed validation
 *   ENOTSUP  the page size is not 4096 bytes
 *   EACCES, ENOMEM, ...  as open(2), mmap(2)
 * The consumer page is found beside the ring file through
 * /proc/self/fd, so /proc must be mounted.
 */
BT_API void *kmes_map(int fd, uint64_t capacity);

/*
 * kmes_unmap() - undo kmes_map(). Returns 0, or -1 with errno EINVAL when
 * @base is NULL or @capacity is not a valid capacity.
 */
BT_API int kmes_unmap(void *base, uint64_t capacity);

/*
 * bt_kmes_map_fds() - kmes_map() for a ring whose consumer page is not
 * reachable by path: both files came as descriptors (btraild passes them
 * over its socket to clients that may not open the session directory).
 * @wake_fd must be the ring's own consumer page (the inode the ring
 * records): else NULL with errno ESTALE. Neither fd is kept; errors as
 * kmes_map(), plus EBADF for either fd.
 */
BT_API void *bt_kmes_map_fds(int ring_fd, int wake_fd, uint64_t capacity);

/* ---- Producer: sessions ------------------------------------------------ */

struct bt_kmes_session;	/* opaque; the producer's handle */

/* Options for bt_kmes_session__create()/__open(). Set .sz = sizeof. */
struct bt_kmes_session_opts {
	size_t sz;			/* sizeof(struct bt_kmes_session_opts) */
	uint64_t capacity;		/* bytes per ring; 0: 4 MiB */
	uint32_t slots;			/* 0: one per CPU id up to the highest
					   online (per-task: none yet) */
	uint32_t kind;			/* enum bt_kmes_ring_kind */
	const char *group;		/* group name or number allowed to attach */
	uint32_t max_event_size;	/* kmes_emit limit; 0: 65536 */
	uint32_t max_nesting_depth;	/* msgpack depth limit; 0: 32 */
	uint32_t max_emit_rate;		/* events/s token bucket; 0: unlimited */
	bool no_numa;			/* do not place pages node-locally */
};
#define bt_kmes_session_opts__last_field no_numa

/*
 * bt_kmes_session__create() - create ring session @name and open it as
 * its producer.
 *
 * Creates the session directory (0700; 0750 with @opts->group) and one
 * ring per slot (0600; 0640 with a group, consumer pages 0660), every ring
 * generation 1, empty. Per-CPU ring pages are placed on the CPU's NUMA
 * node (mbind + fallocate) and the placement is verified with
 * move_pages(2). A per-task session may start with no slots
 * (@opts->slots 0) and get one per task with bt_kmes_session__add_slot().
 * The limits (max_event_size, max_nesting_depth, max_emit_rate, no_numa)
 * are stored in the rings, so every later producer applies them.
 * @opts may be NULL. The caller owns the result and
 * releases it with bt_kmes_session__close(); the rings stay on disk until
 * bt_kmes_session__destroy().
 *
 * Returns the session, or NULL with errno:
 *   EINVAL   bad name, @opts->sz unknown or its tail not zero, capacity not
 *            a power of two in [64 KiB, 256 MiB], a limit out of range,
 *            more than 65536 slots
 *   EEXIST   a session of that name exists
 *   ENOENT   @opts->group names no group
 *   ENOSPC, EFBIG, ENOMEM, EACCES, ...  as mkdir(2), open(2), fallocate(2)
 */
BT_API struct bt_kmes_session *
bt_kmes_session__create(const char *name,
			const struct bt_kmes_session_opts *opts);

/*
 * bt_kmes_session__open() - become the producer of existing session @name.
 *
 * Every ring is validated first (magic, version, capacity, positions, the
 * event chain from tail_pos to write_pos); nothing is changed when one
 * fails. Sequences continue from the last one spent. @opts may be NULL;
 * its capacity, slots, kind and group are ignored (the rings have them),
 * and a limit it leaves at 0 is the one stored at creation.
 *
 * Returns the session, or NULL with errno:
 *   ENOENT   no such session
 *   EBUSY    another process is its producer (the log names its pid)
 *   EPROTO   a ring failed validation (the log names file, offset, problem)
 *   EINVAL, EACCES, ...  as for __create
 */
BT_API struct bt_kmes_session *
bt_kmes_session__open(const char *name,
		      const struct bt_kmes_session_opts *opts);

/*
 * bt_kmes_session__close() - stop being the producer and free @s. The
 * rings and their events stay. NULL is a no-op. No emit may run
 * concurrently.
 */
BT_API void bt_kmes_session__close(struct bt_kmes_session *s);

/*
 * bt_kmes_session__destroy() - remove session @name and its rings.
 * Consumers keep their mappings until they unmap them.
 *
 * Returns 0, or:
 *   -ENOENT  no such session
 *   -EBUSY   a producer holds it and @force is false
 *   -EINVAL  bad name; -EACCES, ... as unlink(2)
 */
BT_API int bt_kmes_session__destroy(const char *name, bool force);

/* The session directory; borrowed, valid until __close(). */
BT_API const char *bt_kmes_session__path(const struct bt_kmes_session *s);
/* Current number of slots. */
BT_API uint32_t bt_kmes_session__slots(const struct bt_kmes_session *s);
/* Current capacity of every ring. */
BT_API uint64_t bt_kmes_session__capacity(const struct bt_kmes_session *s);
/* enum bt_kmes_ring_kind of the session. */
BT_API uint32_t bt_kmes_session__kind(const struct bt_kmes_session *s);

/*
 * bt_kmes_session__resize() - swap every ring for one of @capacity
 * (KMES.md §4.6): the surviving events that fit are copied, newest last,
 * into a new ring with tail_pos 0 and generation old+1, which replaces the
 * old file; then the old ring's generation is bumped and its sleepers are
 * woken, so consumers re-attach by sequence. Nothing is lost or duplicated
 * when @capacity holds the live span; a smaller ring keeps the newest
 * suffix and counts the rest as lost. New rings are allocated for every
 * slot before any swap, so either all slots swap or none does.
 *
 * An invalid @capacity changes nothing and emits a "kmes.config.invalid"
 * event (origin class 1) on every ring; a failed allocation keeps the old
 * rings and emits "kmes.swap.failed".
 *
 * Returns 0, or -EINVAL (bad capacity), or the allocation's error, or
 * -EIO when a new ring could not be renamed into place after others were
 * (only if the directory is tampered with; rings then differ in capacity
 * until the next resize).
 */
BT_API int bt_kmes_session__resize(struct bt_kmes_session *s,
				   uint64_t capacity);

/*
 * bt_kmes_session__add_slot() - add a ring at the end (a hot-added CPU, or
 * a new task of a per-task session, with @tid; @tid is ignored for
 * per-CPU sessions). Bumps the topology counter in every ring and wakes
 * sleeping consumers so they re-enumerate.
 *
 * Returns the new slot index (>= 0), or -ENOSPC (65536 slots), or the
 * allocation's error.
 */
BT_API int bt_kmes_session__add_slot(struct bt_kmes_session *s, uint32_t tid);

/*
 * bt_kmes_session__set_status() - mark @slot online, offline or removed
 * (enum bt_kmes_cpu_status), bump the topology counter, wake consumers.
 * Returns 0, or -EINVAL for a bad slot or status.
 */
BT_API int bt_kmes_session__set_status(struct bt_kmes_session *s,
				       uint32_t slot, uint32_t status);

/*
 * bt_kmes_session__sync_cpus() - bring a per-CPU session in line with the
 * machine: CPUs in <@sysfs>/devices/system/cpu/online are online, present
 * but not online are offline, the rest removed; a CPU id past the last
 * slot gets a ring (App. C §10.1.1: a hot-added CPU gets a ring instead
 * of losing events). @sysfs is normally "/sys"; tests pass a fake tree.
 *
 * Returns the number of slots whose status or existence changed, or a
 * negative errno (-EINVAL for a per-task session, -BT_ERRNO_FORMAT for an
 * unreadable cpu list).
 */
BT_API int bt_kmes_session__sync_cpus(struct bt_kmes_session *s,
				      const char *sysfs);

/* ---- Producer: emitting ------------------------------------------------ */

/* Emit on the ring of the CPU the caller runs on (sched_getcpu()). */
#define KMES_SLOT_CURRENT	0xFFFFFFFFu

/* One entry of a batch; the layout of KMES.md §5.1 (32 bytes on LP64). */
struct kmes_emit_entry {
	const char *event_type;
	uint16_t event_type_len;
	const void *payload;
	uint32_t payload_len;
};

/*
 * kmes_emit() - validate one event as the spec's syscall does and write it
 * to @slot's ring (KMES.md §5.1 kmes_emit).
 *
 * The header gets a CLOCK_REALTIME timestamp, the ring's next sequence,
 * origin class 0 and the caller's identity GUIDs (see
 * docs/kmes-extensions.md). A validation failure spends no sequence.
 * Checks, in this order (the privilege check of the spec does not apply:
 * file permissions stand in for it):
 *
 *   EINVAL   @slot is not a slot (or KMES_SLOT_CURRENT) of @s, @s is NULL
 *   EAGAIN   the session's rate limit is exhausted
 *   EINVAL   @event_type_len is 0, or the total does not fit in a u32
 *   ENOSPC   77 + type + payload exceeds MaxEventSize
 *   ENOSPC   ... or 50% of the ring's capacity
 *   EFAULT   @event_type is NULL, or @payload is NULL with a nonzero
 *            @payload_len (a pointer that is not NULL but invalid is the
 *            caller's bug, as with any library); a NULL @payload of length
 *            0 is an empty payload (EINVAL below)
 *   EINVAL   the type is not valid UTF-8
 *   EINVAL   the payload is empty, is not exactly one msgpack value, or
 *            nests deeper than MaxNestingDepth (32: accepted; 33: refused)
 *
 * Returns 0, or -1 with errno.
 */
BT_API int kmes_emit(struct bt_kmes_session *s, uint32_t slot,
		     const char *event_type, uint16_t event_type_len,
		     const void *payload, uint32_t payload_len);

/*
 * kmes_emit_batch() - kmes_emit() for @count entries in order, stopping at
 * the first that fails; the emitted ones share one timestamp and become
 * visible to consumers at once (a single write_pos publish) when they fit
 * in the ring together.
 *
 * Returns 0 with *@emitted_out = @count, or -1 with errno:
 *   EINVAL   bad @s or @slot, or @count is 0 or > 256 (*@emitted_out untouched)
 *   EAGAIN   fewer than @count rate tokens (nothing emitted)
 *   EFAULT   @emitted_out is NULL (nothing emitted), or @entries is NULL
 *   any kmes_emit() error of entry N: entries 0..N-1 are emitted and
 *   *@emitted_out = N; N and later spend no sequence number
 */
BT_API int kmes_emit_batch(struct bt_kmes_session *s, uint32_t slot,
			   const struct kmes_emit_entry *entries,
			   uint32_t count, uint32_t *emitted_out);

/*
 * Stamp for bt_kmes_session__emit_trusted(). Set .sz = sizeof.
 */
struct bt_kmes_stamp {
	size_t sz;
	uint8_t origin_class;	/* enum kmes_origin_class */
	bool has_cpu;		/* set for per-task rings: */
	uint16_t cpu_id;	/* ... the CPU the event was captured on */
};
#define bt_kmes_stamp__last_field cpu_id

/*
 * bt_kmes_session__emit_trusted() - the spec's kernel emission API
 * (KMES.md §5.2), for producers that build their own payloads: no UTF-8
 * or msgpack validation. An entry with an empty type, a size that does
 * not fit in a u32, or a size over 50% of capacity is dropped: its
 * sequence number is spent (consumers see a gap), the ring's dropped
 * counter grows, and the batch goes on. One timestamp for all entries.
 * @stamp may be NULL (origin class 0, the ring's CPU).
 *
 * Returns the number of entries written (dropped ones not counted), or
 * -EINVAL for a bad @s, @slot, @stamp, @entries or @count (1..256).
 */
BT_API int bt_kmes_session__emit_trusted(struct bt_kmes_session *s,
					 uint32_t slot,
					 const struct bt_kmes_stamp *stamp,
					 const struct kmes_emit_entry *entries,
					 uint32_t count);

/* One piece of a gathered payload. */
struct bt_kmes_iov {
	const void *base;
	size_t len;
};
#define BT_KMES_IOV_MAX	8u

/*
 * bt_kmes_session__emit_trusted_iov() - one event of
 * bt_kmes_session__emit_trusted() whose payload is the concatenation of
 * @iov[0..@iovcnt) (1..BT_KMES_IOV_MAX pieces), copied straight into the
 * ring: a producer puts its own header bytes (a msgpack map's keys and a
 * bin header) beside bulk data it then copies once, from where it lies
 * (an AUX area), instead of assembling the payload first.
 *
 * Returns 1 when written, 0 when dropped (as __emit_trusted: empty type,
 * too large; the sequence is spent and the dropped counter grows), or
 * -EINVAL for a bad @s, @slot, @stamp, @type, @iov or @iovcnt.
 */
BT_API int bt_kmes_session__emit_trusted_iov(struct bt_kmes_session *s,
					     uint32_t slot,
					     const struct bt_kmes_stamp *stamp,
					     const char *type,
					     uint16_t type_len,
					     const struct bt_kmes_iov *iov,
					     uint32_t iovcnt);

/*
 * bt_kmes_session__last_sequence() - the last sequence number spent on
 * @slot (the next event gets this + 1), or 0 for a bad @s or @slot.
 */
BT_API uint64_t bt_kmes_session__last_sequence(struct bt_kmes_session *s,
					       uint32_t slot);

/* ---- Self-checking test payloads --------------------------------------- */

/*
 * Payloads of an exact size for tests, benchmarks and `btrail kmes emit`:
 * the msgpack map {"s": sequence, "c": checksum, "p": bin padding}, whose
 * FNV-1a checksum over the sequence and the padding proves an event read
 * back is neither torn nor corrupt. Sizes under 23 bytes cannot hold the
 * map and give a bare bin (a fixint for 1 byte), unchecked.
 */
#define BT_KMES_PAYLOAD_MIN_CHECKED	23u

/*
 * bt_kmes_payload_fill() - write a @size-byte payload for @seq into @buf,
 * the padding drawn from the xorshift state *@rng (NULL: zeros).
 * Returns @size, or 0 when @size is 0 or over 4 GiB.
 */
BT_API size_t bt_kmes_payload_fill(void *buf, size_t size, uint64_t seq,
				   uint64_t *rng);

/*
 * bt_kmes_payload_check() - parse @buf with msgpack-c and verify it.
 * Returns 1 with *@seq set (when @seq is not NULL) for a checked payload
 * whose checksum holds, 0 for a valid small (unchecked) payload, -1 for
 * anything else.
 */
BT_API int bt_kmes_payload_check(const void *buf, size_t size, uint64_t *seq);

/* ---- Consumer: the reader ---------------------------------------------- */

struct bt_kmes_reader;	/* opaque */

/* Options for bt_kmes_reader__new(). Set .sz = sizeof. */
struct bt_kmes_reader_opts {
	size_t sz;
	bool one_slot;		/* read only .slot; default: every slot,
				   following slots added later */
	uint32_t slot;
	bool from_now;		/* start at write_pos instead of tail_pos */
	uint32_t spin_us;	/* spin this long before sleeping in __wait */
	uint32_t linger_us;	/* __wait first naps this long without
				   asking producers for a wake (see there) */
};
#define bt_kmes_reader_opts__last_field linger_us

/* One event, copied out of the ring (PSD-008: copy before advancing). */
struct bt_kmes_event {
	uint32_t slot;
	uint32_t event_size;
	uint32_t header_size;
	uint64_t timestamp;
	uint64_t sequence;
	uint16_t cpu_id;
	uint8_t origin_class;
	uint8_t effective_token_guid[16];
	uint8_t true_token_guid[16];
	uint8_t process_guid[16];
	uint16_t type_len;
	const char *type;	/* not NUL-terminated */
	const void *payload;
	uint32_t payload_len;
	const void *raw;	/* the whole event, event_size bytes */
	uint64_t gap;		/* sequences missing just before this one */
	uint64_t generation;	/* of the ring it was read from */
	/* type, payload and raw are valid until the next __next() call */
};

/* Per-slot accounting. */
struct bt_kmes_slot_stats {
	uint32_t slot;		/* the ring's slot index in the session */
	uint64_t events;	/* events returned */
	uint64_t bytes;		/* their event_size, summed */
	uint64_t first_sequence;/* of the first event returned, 0 none yet */
	uint64_t last_sequence;	/* of the last event returned */
	uint64_t missed;	/* sequence numbers skipped after the first event */
	uint64_t gaps;		/* times a skip happened */
	uint64_t lapped;	/* times the producer overtook the reader */
	uint64_t torn;		/* copies the torn-read check found overtaken
				   (their intact rest is read on) */
	uint64_t corrupt;	/* structural failures (then resync) */
	uint64_t reattached;	/* generation changes followed */
	uint64_t generation;	/* of the ring now mapped */
	uint64_t capacity;
	uint64_t write_pos, tail_pos, read_pos;
	uint64_t produced;	/* producer's last sequence spent (extension) */
	uint64_t dropped;	/* producer's counters (extension) */
	uint64_t lost;
	uint32_t status;	/* enum bt_kmes_cpu_status */
	uint32_t kind;		/* enum bt_kmes_ring_kind */
	uint32_t tid;
	int32_t numa_node;
	uint32_t producer_pid;
	bool alive;		/* false once the slot's session is gone */
};

/*
 * bt_kmes_reader__new() - attach to @session (every slot, or opts->slot)
 * and map the rings. Reading starts at each ring's tail_pos (the oldest
 * surviving event) unless @opts->from_now. @opts may be NULL (all slots).
 * Free with bt_kmes_reader__free().
 *
 * Returns the reader, or NULL with errno as kmes_attach()/kmes_map().
 */
BT_API struct bt_kmes_reader *
bt_kmes_reader__new(const char *session,
		    const struct bt_kmes_reader_opts *opts);

/*
 * bt_kmes_reader__new_mapped() - a reader over one ring mapping the caller
 * already has (KMES_MAP_SIZE(@capacity) bytes laid out as §2.2, for
 * instance a copy being recovered). The mapping is borrowed and must
 * outlive the reader. Such a reader cannot follow a generation change.
 * Returns NULL with errno EINVAL for a NULL @base or a bad @capacity.
 */
BT_API struct bt_kmes_reader *
bt_kmes_reader__new_mapped(void *base, uint64_t capacity, uint32_t slot);

/*
 * How a reader attaches slot @slot of a session it cannot reach by name:
 * 0 with a read-only ring fd, that ring's consumer-page fd and the
 * capacity (the reader takes both fds), or a negative errno (-ENOENT or
 * -ESTALE: the slot or session is gone).
 */
typedef int (*bt_kmes_attach_fn)(void *ctx, uint32_t slot, int *ring_fd,
				 int *wake_fd, uint64_t *capacity);

/*
 * bt_kmes_reader__new_attach() - a reader over slots 0..@nslots-1 (or
 * opts->slot alone) attached through @fn, called again to follow a
 * generation change (§4.5: the new ring is read on from the last sequence
 * read). It does not discover slots added later. NULL with errno.
 */
BT_API struct bt_kmes_reader *
bt_kmes_reader__new_attach(uint32_t nslots, bt_kmes_attach_fn fn, void *ctx,
			   const struct bt_kmes_reader_opts *opts);

/* NULL is a no-op. Unmaps and closes everything the reader attached. */
BT_API void bt_kmes_reader__free(struct bt_kmes_reader *r);

/*
 * bt_kmes_reader__next() - the next event of any slot (the drain loop of
 * KMES.md §4.3, with the torn-read check and strict validation before the
 * copy). Between cycles it follows generation changes (§4.5: finish the
 * old ring up to its frozen write_pos, re-attach, resume after the last
 * sequence read) and topology changes (new slots).
 *
 * Returns 1 with *@ev filled, 0 when every ring is drained, or:
 *   -BT_ERRNO_CORRUPT  a ring failed validation at @ev->slot; the reader
 *                      counted it and will resynchronise at tail_pos once
 *                      the producer moves past the bad bytes; call again
 *   -EINVAL            NULL argument
 */
BT_API int bt_kmes_reader__next(struct bt_kmes_reader *r,
				struct bt_kmes_event *ev);

/*
 * bt_kmes_reader__wait() - sleep until an event, a generation or topology
 * change, or @timeout_ms (-1: no limit). The notification protocol of
 * §4.4 with the fixes of KMES.md §10: need_wake is set with a full fence,
 * futex_counter is read before write_pos is re-checked, and the futex is
 * a shared one (futex_waitv over every slot).
 *
 * With opts.linger_us, it first naps that long without setting need_wake
 * and returns 1 if anything arrived meanwhile: a producer writing then
 * pays no futex_wake for the reader (each costs it a system call, which
 * a reader that sleeps after every event would make it pay per emit), at
 * up to linger_us of latency. With opts.spin_us, it then spins that long.
 *
 * futex_waitv(2) takes at most 128 words: with more slots the wait
 * sleeps at most 10 ms at a time and re-checks every ring, so an event
 * on slot 128 or later is noticed within 10 ms.
 *
 * Returns 1 when something may be ready, 0 on timeout, -EINTR when a
 * signal arrived, or another negative errno.
 */
BT_API int bt_kmes_reader__wait(struct bt_kmes_reader *r, int timeout_ms);

/* Number of slots the reader follows now. */
BT_API uint32_t bt_kmes_reader__slots(const struct bt_kmes_reader *r);

/*
 * bt_kmes_reader__stats() - accounting for @slot (an index < __slots()).
 * Returns 0, or -EINVAL.
 */
BT_API int bt_kmes_reader__stats(const struct bt_kmes_reader *r,
				 uint32_t slot,
				 struct bt_kmes_slot_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* BTRAIL_KMES_H */
