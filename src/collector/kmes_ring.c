// SPDX-License-Identifier: BSD-3-Clause
/*
 * Ring files and their mappings.
 *
 * A ring file holds the producer page (file offset 0) and the data region
 * (file offset 4096, capacity bytes); the consumer page is a separate
 * file so that consumers can open the ring read-only and still write
 * need_wake. kmes_map_layout() stitches the three into the single
 * mapping of KMES.md §2.2:
 *
 *	base + 0            ring file [0, 4096)           producer page
 *	base + 4096         wake file [0, 4096)           consumer page, RW
 *	base + 8192         ring file [4096, 4096 + cap)  data
 *	base + 8192 + cap   ring file [4096, 4096 + cap)  data again
 *
 * so an event that crosses the physical end reads (and is written) with
 * one contiguous memcpy.
 */
#include "collector/kmes_ring.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <numa.h>
#include <numaif.h>

#include "common/log.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23	/* Linux 5.14 */
#endif

_Static_assert(KMES_PAGE_SIZE == 4096, "KMES needs 4 KiB pages");

uint64_t kmes_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void *kmes_map_layout(int ring_fd, int wake_fd, uint64_t capacity,
		      bool writable)
{
	int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
	int flags = MAP_SHARED | MAP_FIXED;
	unsigned char *base, *p;
	int err;

	if (sysconf(_SC_PAGESIZE) != KMES_PAGE_SIZE)
		return errno = ENOTSUP, NULL;
	if (!kmes_capacity_valid(capacity))
		return errno = EINVAL, NULL;

	/* Reserve the whole range first so the pieces land side by side. */
	base = mmap(NULL, KMES_MAP_SIZE(capacity), PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return NULL;

	p = mmap(base, KMES_PAGE_SIZE, prot, flags, ring_fd, 0);
	if (p == MAP_FAILED)
		goto out_unmap;
	p = mmap(base + KMES_PAGE_SIZE, KMES_PAGE_SIZE, PROT_READ | PROT_WRITE,
		 flags, wake_fd, 0);
	if (p == MAP_FAILED)
		goto out_unmap;
	p = mmap(base + KMES_DATA_OFFSET, capacity, prot, flags, ring_fd,
		 KMES_FILE_DATA_OFFSET);
	if (p == MAP_FAILED)
		goto out_unmap;
	p = mmap(base + KMES_DATA_OFFSET + capacity, capacity, prot, flags,
		 ring_fd, KMES_FILE_DATA_OFFSET);
	if (p == MAP_FAILED)
		goto out_unmap;
	return base;

out_unmap:
	err = errno;
	munmap(base, KMES_MAP_SIZE(capacity));
	errno = err;
	return NULL;
}

static bool all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i])
			return false;
	}
	return true;
}

const char *kmes_page_check(const unsigned char *page, uint64_t file_size,
			    unsigned *off)
{
	uint64_t cap = bt_le64(page + KMES_OFF_CAPACITY);

#define BAD(o, why) do { *off = (o); return (why); } while (0)
	if (memcmp(page + KMES_OFF_MAGIC, KMES_MAGIC, KMES_MAGIC_LEN) != 0)
		BAD(KMES_OFF_MAGIC, "bad magic (not a KMES ring)");
	if (bt_le32(page + KMES_OFF_VERSION) != KMES_RING_VERSION)
		BAD(KMES_OFF_VERSION, "unsupported ring format version");
	if (bt_le16(page + KMES_OFF_RESERVED0) != 0)
		BAD(KMES_OFF_RESERVED0, "reserved0 is not zero");
	if (!kmes_capacity_valid(cap))
		BAD(KMES_OFF_CAPACITY, "capacity is not a power of two in "
		    "[64 KiB, 256 MiB]");
	if (file_size != KMES_FILE_SIZE(cap))
		BAD(KMES_OFF_CAPACITY, "file size does not match capacity");
	if (bt_le64(page + KMES_OFF_DATA_OFFSET) != KMES_DATA_OFFSET)
		BAD(KMES_OFF_DATA_OFFSET, "data_offset is not 8192");
	if (bt_le64(page + KMES_OFF_GENERATION) == 0)
		BAD(KMES_OFF_GENERATION, "generation 0");
	if (!all_zero(page + KMES_OFF_RESERVED1, 24))
		BAD(KMES_OFF_RESERVED1, "reserved1 is not zero");
	if (!all_zero(page + KMES_OFF_RESERVED2, 48))
		BAD(KMES_OFF_RESERVED2, "reserved2 is not zero");
	if (!all_zero(page + KMES_OFF_RESERVED3, 60))
		BAD(KMES_OFF_RESERVED3, "reserved3 is not zero");
	if (memcmp(page + BT_KMES_XOFF_MAGIC, BT_KMES_EXT_MAGIC, 8) != 0)
		BAD(BT_KMES_XOFF_MAGIC, "no btrail extension (not written by "
		    "btrail)");
	/* Later extension versions only add fields: accept them. */
	if (bt_le32(page + BT_KMES_XOFF_VERSION) < 1)
		BAD(BT_KMES_XOFF_VERSION, "bad extension version");
	if (bt_le32(page + BT_KMES_XOFF_SIZE) < BT_KMES_EXT_SIZE)
		BAD(BT_KMES_XOFF_SIZE, "extension too short");
	if (bt_le32(page + BT_KMES_XOFF_KIND) > BT_KMES_RING_TASK)
		BAD(BT_KMES_XOFF_KIND, "unknown ring kind");
	if (bt_le32(page + BT_KMES_XOFF_STATUS) > BT_KMES_CPU_REMOVED)
		BAD(BT_KMES_XOFF_STATUS, "unknown cpu status");
#undef BAD
	return NULL;
}

static int set_owner_mode(int fd, mode_t mode, gid_t gid)
{
	/* open(2) honours the umask; the session's modes are not optional. */
	if (fchmod(fd, mode) < 0)
		return -errno;
	if (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0)
		return -errno;
	return 0;
}

/* posix_fallocate() returns the error instead of setting errno. */
static int allocate_now(int fd, uint64_t len)
{
	int err = posix_fallocate(fd, 0, (off_t)len);

	return err ? -err : 0;
}

int kmes_wake_create(int dirfd, const char *name, mode_t mode, gid_t gid,
		     int *fd_out, uint64_t *ino_out)
{
	struct stat st;
	int fd, err;

	fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	err = set_owner_mode(fd, mode, gid);
	if (!err && ftruncate(fd, KMES_PAGE_SIZE) < 0)
		err = -errno;
	if (!err)
		err = allocate_now(fd, KMES_PAGE_SIZE);
	if (!err && fstat(fd, &st) < 0)
		err = -errno;
	if (err) {
		close(fd);
		unlinkat(dirfd, name, 0);
		return err;
	}
	*fd_out = fd;
	*ino_out = st.st_ino;
	return 0;
}

/*
 * Ask for the pages of [@addr, +@len) on @node. On tmpfs the policy set
 * through a shared mapping is the file's own (shmem shared policy), so
 * the fallocate() that follows allocates there.
 */
static void numa_place(void *addr, uint64_t len, int node)
{
	struct bitmask *bm;

	if (node < 0 || numa_available() < 0)
		return;
	bm = numa_allocate_nodemask();
	if (!bm)
		return;
	numa_bitmask_setbit(bm, (unsigned)node);
	if (mbind(addr, len, MPOL_PREFERRED, bm->maskp, bm->size + 1, 0) < 0)
		pr_debug("kmes: mbind to node %d failed: %s", node,
			 strerror(errno));
	numa_free_nodemask(bm);
}

int kmes_numa_query(void *addr, uint64_t len)
{
	unsigned long count = len / KMES_PAGE_SIZE;
	void **pages;
	int *status;
	int node = -1;

	if (numa_available() < 0 || count == 0)
		return -1;
	pages = malloc(count * sizeof(*pages));
	status = malloc(count * sizeof(*status));
	if (!pages || !status)
		goto out;
	for (unsigned long i = 0; i < count; i++)
		pages[i] = (unsigned char *)addr + i * KMES_PAGE_SIZE;
	/* nodes == NULL: report where each page is, move nothing. */
	if (move_pages(0, count, pages, NULL, status, 0) < 0)
		goto out;
	for (unsigned long i = 0; i < count; i++) {
		if (status[i] < 0) {	/* not present, or not queryable */
			node = -1;
			break;
		}
		if (i == 0) {
			node = status[0];
		} else if (status[i] != node) {
			node = -2;
			break;
		}
	}
out:
	free(pages);
	free(status);
	return node;
}

/* Map every page into our tables so move_pages() can see it. */
static void populate(unsigned char *addr, uint64_t len)
{
	if (madvise(addr, len, MADV_POPULATE_WRITE) == 0)
		return;
	for (uint64_t off = 0; off < len; off += KMES_PAGE_SIZE)
		(void)*(volatile unsigned char *)(addr + off);
}

static void page_init(struct kmes_producer_page *pp, uint64_t capacity,
		      const struct kmes_ring_init *in)
{
	memcpy(pp->magic, KMES_MAGIC, KMES_MAGIC_LEN);
	pp->version = KMES_RING_VERSION;
	pp->cpu_id = in->cpu_id;
	pp->capacity = capacity;
	pp->data_offset = KMES_DATA_OFFSET;
	atomic_store_explicit(&pp->generation, in->generation,
			      memory_order_relaxed);
	memcpy(pp->x_magic, BT_KMES_EXT_MAGIC, 8);
	pp->x_version = BT_KMES_EXT_VERSION;
	pp->x_size = BT_KMES_EXT_SIZE;
	pp->x_kind = in->kind;
	pp->x_tid = in->tid;
	pp->x_wake_ino = in->wake_ino;
	pp->x_max_event_size = in->max_event_size;
	pp->x_max_depth = in->max_depth;
	pp->x_max_emit_rate = in->max_emit_rate;
	pp->x_config = in->config;
	pp->x_created = kmes_now_ns();
	if (in->session_id)
		memcpy(pp->x_session_id, in->session_id, 16);
	atomic_store_explicit(&pp->x_status, in->status, memory_order_relaxed);
	atomic_store_explicit(&pp->x_nr_slots, in->nr_slots,
			      memory_order_relaxed);
	atomic_store_explicit(&pp->x_topology, in->topology,
			      memory_order_relaxed);
	atomic_store_explicit(&pp->x_producer, (uint32_t)getpid(),
			      memory_order_relaxed);
	atomic_store_explicit(&pp->x_last_seq, in->last_seq,
			      memory_order_relaxed);
	atomic_store_explicit(&pp->x_dropped, in->dropped,
			      memory_order_relaxed);
	atomic_store_explicit(&pp->x_lost, in->lost, memory_order_relaxed);
	/*
	 * Relaxed is enough for all of the above: the ring becomes visible
	 * to consumers only through rename(2) of its file, which orders
	 * everything written before it.
	 */
}

int kmes_ring_create(int dirfd, const char *name, uint64_t capacity,
		     int wake_fd, const struct kmes_ring_init *init,
		     struct kmes_ring *r)
{
	int node, err;

	memset(r, 0, sizeof(*r));
	r->fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
		       init->mode);
	if (r->fd < 0)
		return -errno;
	err = set_owner_mode(r->fd, init->mode, init->gid);
	if (err)
		goto out_unlink;
	if (ftruncate(r->fd, (off_t)KMES_FILE_SIZE(capacity)) < 0) {
		err = -errno;
		goto out_unlink;
	}
	r->base = kmes_map_layout(r->fd, wake_fd, capacity, true);
	if (!r->base) {
		err = -errno;
		goto out_unlink;
	}
	r->pp = kmes_page(r->base);
	r->data = r->base + KMES_DATA_OFFSET;
	r->capacity = capacity;
	r->mask = capacity - 1;

	/* Place, then allocate every page: ENOSPC now, never SIGBUS later. */
	numa_place(r->base, KMES_PAGE_SIZE, init->numa_node);
	numa_place(r->data, capacity, init->numa_node);
	err = allocate_now(r->fd, KMES_FILE_SIZE(capacity));
	if (err)
		goto out_unmap;
	populate(r->base, KMES_PAGE_SIZE);
	populate(r->data, capacity);

	page_init(r->pp, capacity, init);
	node = kmes_numa_query(r->data, capacity);
	if (node >= 0 && kmes_numa_query(r->base, KMES_PAGE_SIZE) == node) {
		r->pp->x_numa_node = node;
		r->pp->x_flags |= BT_KMES_XF_NUMA_VERIFIED;
		if (init->numa_node >= 0 && node != init->numa_node)
			pr_info("kmes: %s: pages landed on node %d, not %d",
				name, node, init->numa_node);
	} else {
		r->pp->x_numa_node = node == -2 ? -2 : -1;
	}
	return 0;

out_unmap:
	munmap(r->base, KMES_MAP_SIZE(capacity));
out_unlink:
	close(r->fd);
	unlinkat(dirfd, name, 0);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	return err;
}

/*
 * Walk the events from tail_pos to write_pos with the consumer's checks.
 * Only called by a producer that holds the session lock, so nothing moves.
 */
static int ring_walk(const struct kmes_ring *r, const char *path,
		     uint64_t *last_seq)
{
	uint64_t pos = r->tail, prev = 0;
	struct kmes_hdr h;

	while (pos != r->wp) {
		const char *why;

		kmes_hdr_decode(r->data + (pos & r->mask), &h);
		why = kmes_hdr_check(&h, r->wp - pos, r->capacity);
		if (!why && prev && h.sequence <= prev)
			why = "sequence does not increase";
		if (why) {
			pr_warn("kmes: %s: event at position %" PRIu64
				" (file offset %" PRIu64 "): %s", path, pos,
				KMES_FILE_DATA_OFFSET + (pos & r->mask), why);
			return -EPROTO;
		}
		prev = h.sequence;
		pos += h.event_size;
	}
	*last_seq = prev;
	return 0;
}

int kmes_ring_open(int dirfd, const char *name, const char *path,
		   int wake_fd, struct kmes_ring *r)
{
	unsigned char page[KMES_PAGE_SIZE];
	uint64_t cap, last = 0;
	const char *why;
	struct stat st;
	unsigned off;
	int err;

	memset(r, 0, sizeof(*r));
	r->fd = openat(dirfd, name, O_RDWR | O_CLOEXEC);
	if (r->fd < 0)
		return -errno;
	if (fstat(r->fd, &st) < 0) {
		err = -errno;
		goto out_close;
	}
	if (st.st_size < (off_t)KMES_PAGE_SIZE ||
	    pread(r->fd, page, sizeof(page), 0) != (ssize_t)sizeof(page)) {
		pr_warn("kmes: %s: shorter than a producer page", path);
		err = -EPROTO;
		goto out_close;
	}
	why = kmes_page_check(page, (uint64_t)st.st_size, &off);
	if (why) {
		pr_warn("kmes: %s: offset %u: %s", path, off, why);
		err = -EPROTO;
		goto out_close;
	}
	cap = bt_le64(page + KMES_OFF_CAPACITY);
	r->base = kmes_map_layout(r->fd, wake_fd, cap, true);
	if (!r->base) {
		err = -errno;
		goto out_close;
	}
	r->pp = kmes_page(r->base);
	r->data = r->base + KMES_DATA_OFFSET;
	r->capacity = cap;
	r->mask = cap - 1;
	r->wp = atomic_load_explicit(&r->pp->write_pos, memory_order_acquire);
	r->tail = atomic_load_explicit(&r->pp->tail_pos, memory_order_acquire);
	if (r->tail > r->wp || r->wp - r->tail > cap) {
		pr_warn("kmes: %s: offset %d: tail_pos %" PRIu64
			" and write_pos %" PRIu64 " are inconsistent", path,
			KMES_OFF_WRITE_POS, r->tail, r->wp);
		err = -EPROTO;
		goto out_unmap;
	}
	err = ring_walk(r, path, &last);
	if (err)
		goto out_unmap;
	if (last > atomic_load_explicit(&r->pp->x_last_seq,
					memory_order_relaxed))
		atomic_store_explicit(&r->pp->x_last_seq, last,
				      memory_order_relaxed);
	return 0;

out_unmap:
	munmap(r->base, KMES_MAP_SIZE(cap));
out_close:
	close(r->fd);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	return err;
}

void kmes_ring_close(struct kmes_ring *r)
{
	if (r->base)
		munmap(r->base, KMES_MAP_SIZE(r->capacity));
	if (r->fd >= 0)
		close(r->fd);
	r->base = NULL;
	r->pp = NULL;
	r->data = NULL;
	r->fd = -1;
}

/*
 * A shared futex (no FUTEX_PRIVATE_FLAG): the word sits in a MAP_SHARED
 * page that other processes wait on (KMES.md §10 item 10).
 */
static void futex_wake_all(_Atomic uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void kmes_ring_notify(struct kmes_producer_page *pp,
		      _Atomic uint8_t *need_wake)
{
	/*
	 * D (see kmes_emit.c): seq_cst, so this load cannot be satisfied
	 * before the seq_cst publish of write_pos that precedes it; pairs
	 * with the consumer's seq_cst store of need_wake followed by its
	 * seq_cst reload of write_pos (KMES.md §10 item 7, Dekker).
	 */
	if (!atomic_load_explicit(need_wake, memory_order_seq_cst))
		return;
	/*
	 * Take the request: the spec leaves need_wake set until the woken
	 * consumer clears it, so every emit in between (tens of µs on a VM)
	 * paid a FUTEX_WAKE. Whoever set it before this exchange is woken by
	 * the wake below (the counter moves after it); whoever sets it after
	 * re-checks write_pos after its seq_cst store and sees this publish.
	 * A consumer page is advisory (§5.1.7), so the producer may write it.
	 */
	if (!atomic_exchange_explicit(need_wake, 0, memory_order_seq_cst))
		return;
	kmes_ring_wake_all(pp);
}

void kmes_ring_wake_all(struct kmes_producer_page *pp)
{
	/* Release: a woken consumer that sees the new count sees the data. */
	atomic_fetch_add_explicit(&pp->futex_counter, 1, memory_order_release);
	futex_wake_all(&pp->futex_counter);
}
