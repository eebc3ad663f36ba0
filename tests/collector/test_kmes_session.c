// SPDX-License-Identifier: BSD-3-Clause
/*
 * Ring sessions, producer side: create/open/destroy, the buffer swap of a
 * resize (KMES.md §4.6) and the reader's re-attach by sequence (§4.5),
 * topology (App. C §10.1.1), file modes, the btrail extension fields and
 * NUMA placement. Ring metadata is read through a consumer's own mapping
 * (kmes_attach + kmes_map) at the offsets of <btrail/kmes.h>.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <numa.h>
#include <numaif.h>

#include <btrail/errno.h>
#include <btrail/kmes.h>

#include "collector/kmes_path.h"
#include "common/bytes.h"
#include "helpers/testutil.h"

#define CAP_64K		65536u
#define CAP_128K	131072u
#define CAP_256K	262144u
#define EV_TYPE		"t.ev"
#define EV_TYPE_LEN	4u
#define EV_HDR		(KMES_HDR_FIXED + EV_TYPE_LEN)
#define MAXEV		8192u

/* ---- Helpers ------------------------------------------------------------ */

static void emit_n(struct bt_kmes_session *s, uint32_t slot, unsigned n,
		   uint32_t size)
{
	for (unsigned i = 0; i < n; i++)
		tu_emit_sized(s, slot, EV_TYPE, size);
}

static uint64_t capacity_of(const char *name, uint32_t slot)
{
	uint64_t cap = 0;
	int fd = kmes_attach(name, slot, &cap);

	cr_assert(ge(int, fd, 0), "kmes_attach: %s", strerror(errno));
	close(fd);
	return cap;
}

/* Events read back, in the order a reader returned them. */
struct evs {
	size_t n;
	uint64_t seq[MAXEV];
	uint32_t size[MAXEV];
	uint32_t slot[MAXEV];
	uint8_t origin[MAXEV];
	uint64_t gen[MAXEV];
	uint64_t gap[MAXEV];
	char type[MAXEV][24];
	unsigned char *payload[MAXEV];	/* malloc'd copies */
	uint32_t plen[MAXEV];
};

static struct evs *evs_new(void)
{
	struct evs *e = calloc(1, sizeof(*e));

	cr_assert(ne(ptr, e, NULL));
	return e;
}

static void evs_free(struct evs *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->payload[i]);
	free(e);
}

/* Read until the reader is drained; every call must succeed. */
static void drain(struct bt_kmes_reader *r, struct evs *e)
{
	struct bt_kmes_event ev;
	int ret;

	while ((ret = bt_kmes_reader__next(r, &ev)) == 1) {
		size_t i = e->n++;

		cr_assert(lt(sz, i, (size_t)MAXEV));
		e->seq[i] = ev.sequence;
		e->size[i] = ev.event_size;
		e->slot[i] = ev.slot;
		e->origin[i] = ev.origin_class;
		e->gen[i] = ev.generation;
		e->gap[i] = ev.gap;
		snprintf(e->type[i], sizeof(e->type[i]), "%.*s",
			 (int)ev.type_len, ev.type);
		e->plen[i] = ev.payload_len;
		e->payload[i] = malloc(ev.payload_len ? ev.payload_len : 1);
		cr_assert(ne(ptr, e->payload[i], NULL));
		memcpy(e->payload[i], ev.payload, ev.payload_len);
	}
	cr_assert(eq(int, ret, 0), "bt_kmes_reader__next: %s",
		  bt_strerror(ret));
}

/* Every event of one ring mapping, read with a borrowed-mapping reader. */
static void drain_mapping(unsigned char *base, uint64_t cap, struct evs *e)
{
	struct bt_kmes_reader *r = bt_kmes_reader__new_mapped(base, cap, 0);

	cr_assert(ne(ptr, r, NULL), "new_mapped: %s", strerror(errno));
	drain(r, e);
	bt_kmes_reader__free(r);
}

static struct bt_kmes_reader *reader_all(const char *name)
{
	struct bt_kmes_reader *r = bt_kmes_reader__new(name, NULL);

	cr_assert(ne(ptr, r, NULL), "bt_kmes_reader__new(%s): %s", name,
		  strerror(errno));
	return r;
}

/*
 * Key @key of the msgpack map in @buf: 1 and the string in @str, 2 and
 * the unsigned in *@u, 0 when missing (or the payload is not a map).
 */
static int mp_lookup(const void *buf, size_t len, const char *key, char *str,
		     size_t strlen_max, uint64_t *u)
{
	msgpack_unpacked up;
	size_t off = 0;
	int found = 0;

	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, buf, len, &off) == MSGPACK_UNPACK_SUCCESS &&
	    up.data.type == MSGPACK_OBJECT_MAP) {
		const msgpack_object_map *m = &up.data.via.map;

		for (uint32_t i = 0; i < m->size && !found; i++) {
			const msgpack_object *k = &m->ptr[i].key;
			const msgpack_object *v = &m->ptr[i].val;

			if (k->type != MSGPACK_OBJECT_STR ||
			    k->via.str.size != strlen(key) ||
			    memcmp(k->via.str.ptr, key, k->via.str.size))
				continue;
			if (v->type == MSGPACK_OBJECT_STR) {
				snprintf(str, strlen_max, "%.*s",
					 (int)v->via.str.size, v->via.str.ptr);
				found = 1;
			} else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
				*u = v->via.u64;
				found = 2;
			}
		}
	}
	msgpack_unpacked_destroy(&up);
	return found;
}

static uint64_t mp_u64(const struct evs *e, size_t i, const char *key)
{
	char s[64];
	uint64_t u = 0;

	cr_assert(eq(int, mp_lookup(e->payload[i], e->plen[i], key, s,
				    sizeof(s), &u), 2),
		  "event %zu (%s): no unsigned \"%s\"", i, e->type[i], key);
	return u;
}

/* Wait for need_wake (byte 4096 of a consumer mapping) to become 1. */
static void wait_need_wake(const unsigned char *base)
{
	for (int i = 0; i < 500; i++) {
		if (__atomic_load_n(base + KMES_OFF_NEED_WAKE, __ATOMIC_SEQ_CST))
			return;
		usleep(10000);
	}
	cr_fatal("need_wake never became 1");
}

/*
 * Wait for child @pid's 'r' on @rfd, then until it sleeps with need_wake
 * set (seen in @mine).
 */
static void wait_for_sleeper(const unsigned char *mine, int rfd, pid_t pid)
{
	char c;

	tu_read_full(rfd, &c, 1);
	cr_assert(eq(chr, c, 'r'));
	wait_need_wake(mine);
	tu_wait_until_sleeping(pid);
}

/* A child that is the producer of @name until release_holder(). */
struct holder {
	pid_t pid;
	int release_fd;
};

static struct holder hold_session(const char *name)
{
	int up[2], down[2];
	struct holder h;
	char c = 0;

	cr_assert(eq(int, pipe(up), 0));
	cr_assert(eq(int, pipe(down), 0));
	h.pid = fork();
	cr_assert(ge(int, (int)h.pid, 0));
	if (h.pid == 0) {
		struct bt_kmes_session *s;

		close(up[0]);
		close(down[1]);
		s = bt_kmes_session__open(name, NULL);
		c = s ? 'k' : 'x';
		tu_write_full(up[1], &c, 1);
		/* EOF when the parent releases us (or dies). */
		while (read(down[0], &c, 1) > 0)
			;
		bt_kmes_session__close(s);
		_exit(s ? 0 : 1);
	}
	close(up[1]);
	close(down[0]);
	tu_read_full(up[0], &c, 1);
	close(up[0]);
	cr_assert(eq(chr, c, 'k'), "the holder could not open %s", name);
	h.release_fd = down[1];
	return h;
}

static void release_holder(struct holder h)
{
	close(h.release_fd);
	cr_assert(eq(int, tu_child_status(h.pid), 0));
}

/* The whole content of @dir/@file into a malloc'd buffer. */
static unsigned char *slurp_file(const char *dir, const char *file,
				 size_t *len)
{
	char path[PATH_MAX];
	unsigned char *buf;
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert(ge(int, fd, 0), "open %s: %s", path, strerror(errno));
	cr_assert(eq(int, fstat(fd, &st), 0));
	buf = malloc((size_t)st.st_size + 1);
	cr_assert(ne(ptr, buf, NULL));
	cr_assert(eq(long, (long)pread(fd, buf, (size_t)st.st_size, 0),
		     (long)st.st_size));
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void stat_in(const char *dir, const char *file, struct stat *st)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	cr_assert(eq(int, stat(path, st), 0), "stat %s: %s", path,
		  strerror(errno));
}

/* Does @dir hold a file whose name ends in @suffix? */
static int dir_has_suffix(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t sl = strlen(suffix);
	int found = 0;

	cr_assert(ne(ptr, d, NULL));
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (l >= sl && !strcmp(de->d_name + l - sl, suffix))
			found = 1;
	}
	closedir(d);
	return found;
}

/* ---- Capacity and the first ring (§8 items 2, 5) ------------------------ */

/* KMES.md §8 item 2: default 4194304 with no option */
Test(kmes_session, capacity_defaults_to_4_mib_when_no_option_is_given)
{
	const char *name = tu_name("defcap");
	struct bt_kmes_session_opts o = { .sz = sizeof(o), .slots = 1 };
	struct bt_kmes_session *s;
	unsigned char *base;
	uint64_t cap;

	s = bt_kmes_session__create(name, NULL);
	cr_assert(ne(ptr, s, NULL), "create: %s", strerror(errno));
	tu_cleanup_at_exit(name);
	cr_assert(eq(u64, bt_kmes_session__capacity(s),
		     (uint64_t)KMES_CAPACITY_DEFAULT));
	cr_assert(eq(u64, (uint64_t)KMES_CAPACITY_DEFAULT, 4194304ull));
	for (uint32_t i = 0; i < bt_kmes_session__slots(s); i++) {
		base = tu_map_slot(name, i, &cap);
		cr_assert(eq(u64, cap, 4194304ull));
		cr_assert(eq(u64, tu_ld64(base, KMES_OFF_CAPACITY),
			     4194304ull));
		kmes_unmap(base, cap);
	}
	bt_kmes_session__close(s);
	cr_assert(eq(int, bt_kmes_session__destroy(name, false), 0));

	/* An options struct with capacity 0 means the default too. */
	name = tu_name("defcap0");
	s = bt_kmes_session__create(name, &o);
	cr_assert(ne(ptr, s, NULL), "create: %s", strerror(errno));
	tu_cleanup_at_exit(name);
	cr_assert(eq(u64, capacity_of(name, 0), 4194304ull));
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 2: a power of two in [65536, 268435456], else EINVAL */
Test(kmes_session, capacity_must_be_a_power_of_two_between_64_kib_and_256_mib,
     .timeout = 60)
{
	static const uint64_t bad[] = {
		1, 4096, 32768, 65535, 65537, 98304, 3u << 20, 536870912ull,
		(1ull << 40), UINT64_MAX,
	};
	static const uint64_t good[] = { 65536, 131072, 268435456ull };
	struct bt_kmes_session_opts o = { .sz = sizeof(o), .slots = 1 };
	struct bt_kmes_session *s;
	uint64_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *name = tu_name("badcap");

		o.capacity = bad[i];
		errno = 0;
		s = bt_kmes_session__create(name, &o);
		if (s)
			tu_cleanup_at_exit(name);
		cr_assert(eq(ptr, s, NULL), "capacity %llu accepted",
			  (unsigned long long)bad[i]);
		cr_assert(eq(int, errno, EINVAL), "capacity %llu",
			  (unsigned long long)bad[i]);
		/* Nothing was left behind. */
		cr_assert(eq(int, kmes_attach(name, KMES_ATTACH_QUERY_SLOTS, &n),
			     -1));
		cr_assert(eq(int, errno, ENOENT));
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const char *name = tu_name("goodcap");
		unsigned char *base;
		uint64_t cap;

		o.capacity = good[i];
		s = bt_kmes_session__create(name, &o);
		cr_assert(ne(ptr, s, NULL), "capacity %llu: %s",
			  (unsigned long long)good[i], strerror(errno));
		tu_cleanup_at_exit(name);
		cr_assert(eq(u64, bt_kmes_session__capacity(s), good[i]));
		base = tu_map_slot(name, 0, &cap);
		cr_assert(eq(u64, cap, good[i]));
		cr_assert(eq(u64, tu_ld64(base, KMES_OFF_CAPACITY), good[i]));
		kmes_unmap(base, cap);
		bt_kmes_session__close(s);
		cr_assert(eq(int, bt_kmes_session__destroy(name, false), 0));
	}
}

/* KMES.md §8 item 5 */
Test(kmes_session, a_new_ring_has_generation_1_and_both_positions_at_0)
{
	const char *name = tu_name("first");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 3);

	cr_assert(eq(u32, bt_kmes_session__slots(s), 3u));
	for (uint32_t i = 0; i < 3; i++) {
		uint64_t cap;
		unsigned char *base = tu_map_slot(name, i, &cap);

		cr_assert(eq(u64, tu_ld64(base, KMES_OFF_GENERATION), 1ull));
		cr_assert(eq(u64, tu_ld64(base, KMES_OFF_TAIL_POS), 0ull));
		cr_assert(eq(u64, tu_ld64(base, KMES_OFF_WRITE_POS), 0ull));
		cr_assert(eq(u64, tu_ld64(base, BT_KMES_XOFF_LAST_SEQ), 0ull));
		kmes_unmap(base, cap);
	}
	bt_kmes_session__close(s);
}

/* ---- Resize: the buffer swap (§8 items 42-46) --------------------------- */

/* KMES.md §8 item 42 */
Test(kmes_session,
     a_resize_bumps_the_old_generation_and_loses_nothing_that_fits)
{
	const char *name = tu_name("grow");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	struct evs *before = evs_new(), *after = evs_new();
	unsigned char *old0, *old1, *nb;
	uint64_t cap, ncap, wp, tail, lost;

	/* Wrap slot 0 (500 * 200 bytes > 64 KiB); leave slot 1 empty. */
	emit_n(s, 0, 500, 200);
	old0 = tu_map_slot(name, 0, &cap);
	old1 = tu_map_slot(name, 1, &cap);
	wp = tu_ld64(old0, KMES_OFF_WRITE_POS);
	tail = tu_ld64(old0, KMES_OFF_TAIL_POS);
	lost = tu_ld64(old0, BT_KMES_XOFF_LOST);
	cr_assert(gt(u64, tail, 0ull), "slot 0 should have wrapped");
	cr_assert(eq(u64, tu_ld64(old0, KMES_OFF_GENERATION), 1ull));
	drain_mapping(old0, cap, before);
	cr_assert(eq(u64, before->seq[before->n - 1], 500ull));

	cr_assert(eq(int, bt_kmes_session__resize(s, CAP_128K), 0));

	/* The old rings, through mappings taken before: generation old+1. */
	cr_assert(eq(u64, tu_ld64(old0, KMES_OFF_GENERATION), 2ull));
	cr_assert(eq(u64, tu_ld64(old1, KMES_OFF_GENERATION), 2ull));
	cr_assert(eq(u64, bt_kmes_session__capacity(s), (uint64_t)CAP_128K));

	/* A new attach: new capacity, generation old+1, tail_pos 0. */
	nb = tu_map_slot(name, 0, &ncap);
	cr_assert(eq(u64, ncap, (uint64_t)CAP_128K));
	cr_assert(eq(u64, tu_ld64(nb, KMES_OFF_CAPACITY), (uint64_t)CAP_128K));
	cr_assert(eq(u64, tu_ld64(nb, KMES_OFF_GENERATION), 2ull));
	cr_assert(eq(u64, tu_ld64(nb, KMES_OFF_TAIL_POS), 0ull));
	cr_assert(eq(u64, tu_ld64(nb, KMES_OFF_WRITE_POS), wp - tail));
	cr_assert(eq(u64, tu_ld64(nb, BT_KMES_XOFF_LOST), lost),
		  "nothing is lost when the new capacity holds the live span");
	cr_assert(eq(u64, tu_ld64(nb, BT_KMES_XOFF_LAST_SEQ), 500ull));

	/* The same events, in the same order, byte for byte. */
	drain_mapping(nb, ncap, after);
	cr_assert(eq(sz, after->n, before->n));
	for (size_t i = 0; i < before->n; i++) {
		cr_assert(eq(u64, after->seq[i], before->seq[i]));
		cr_assert(eq(u32, after->size[i], before->size[i]));
		cr_assert(eq(int, memcmp(after->payload[i], before->payload[i],
					 before->plen[i]), 0));
	}

	/* Sequences continue in the new ring. */
	tu_emit_sized(s, 0, EV_TYPE, 300);
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 501ull));
	cr_assert(eq(u64, tu_ld64(nb, KMES_OFF_WRITE_POS), wp - tail + 300));

	/* The empty slot swapped too. */
	kmes_unmap(nb, ncap);
	nb = tu_map_slot(name, 1, &ncap);
	cr_assert(eq(u64, ncap, (uint64_t)CAP_128K));
	cr_assert(eq(u64, tu_ld64(nb, KMES_OFF_GENERATION), 2ull));
	cr_assert(eq(u64, tu_ld64(nb, KMES_OFF_WRITE_POS), 0ull));

	kmes_unmap(nb, ncap);
	kmes_unmap(old0, cap);
	kmes_unmap(old1, cap);
	evs_free(before);
	evs_free(after);
	bt_kmes_session__close(s);
}

/* Event size of the @seq-th event of the shrink test: 100..499 bytes. */
static uint32_t shrink_size(uint64_t seq)
{
	return 100 + (uint32_t)((seq * 53) % 400);
}

/* KMES.md §8 item 43 */
Test(kmes_session,
     shrinking_keeps_only_the_newest_suffix_and_counts_the_rest_lost)
{
	const char *name = tu_name("shrink");
	struct bt_kmes_session *s = tu_create(name, CAP_256K, 1);
	struct evs *before = evs_new(), *after = evs_new();
	unsigned char *old, *nb;
	uint64_t cap, ncap, lost0, kept_bytes = 0;
	size_t keep = 0;
	struct bt_kmes_reader *r;
	struct bt_kmes_slot_stats st;

	for (uint64_t seq = 1; seq <= 700; seq++)
		tu_emit_sized(s, 0, EV_TYPE, shrink_size(seq));
	old = tu_map_slot(name, 0, &cap);
	lost0 = tu_ld64(old, BT_KMES_XOFF_LOST);
	drain_mapping(old, cap, before);
	cr_assert(gt(u64, tu_ld64(old, KMES_OFF_WRITE_POS) -
		     tu_ld64(old, KMES_OFF_TAIL_POS), (uint64_t)CAP_64K),
		  "the live span must not fit in the new capacity");

	/* Independently: the longest suffix of survivors that fits. */
	while (keep < before->n &&
	       kept_bytes + before->size[before->n - 1 - keep] <= CAP_64K) {
		kept_bytes += before->size[before->n - 1 - keep];
		keep++;
	}

	cr_assert(eq(int, bt_kmes_session__resize(s, CAP_64K), 0));
	nb = tu_map_slot(name, 0, &ncap);
	cr_assert(eq(u64, ncap, (uint64_t)CAP_64K));
	cr_assert(eq(u64, tu_ld64(nb, KMES_OFF_GENERATION), 2ull));
	cr_assert(eq(u64, tu_ld64(nb, KMES_OFF_TAIL_POS), 0ull));
	cr_assert(eq(u64, tu_ld64(nb, KMES_OFF_WRITE_POS), kept_bytes));
	drain_mapping(nb, ncap, after);
	cr_assert(eq(sz, after->n, keep));
	for (size_t i = 0; i < keep; i++) {
		size_t j = before->n - keep + i;

		cr_assert(eq(u64, after->seq[i], before->seq[j]));
		cr_assert(eq(int, memcmp(after->payload[i], before->payload[j],
					 before->plen[j]), 0));
	}
	cr_assert(eq(u64, after->seq[keep - 1], 700ull), "the newest survives");

	/* The lost counter grows by exactly the number dropped. */
	cr_assert(eq(u64, tu_ld64(nb, BT_KMES_XOFF_LOST),
		     lost0 + (before->n - keep)));
	r = bt_kmes_reader__new(name, NULL);
	cr_assert(ne(ptr, r, NULL));
	cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &st), 0));
	cr_assert(eq(u64, st.lost, lost0 + (before->n - keep)));
	bt_kmes_reader__free(r);

	kmes_unmap(old, cap);
	kmes_unmap(nb, ncap);
	evs_free(before);
	evs_free(after);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 44 */
Test(kmes_session, an_invalid_resize_changes_nothing_and_emits_config_invalid)
{
	static const uint64_t bad[] = {
		98304,		/* not a power of two */
		65537,		/* not a power of two */
		32768,		/* below the minimum */
		536870912ull,	/* above the maximum */
	};
	const size_t nbad = sizeof(bad) / sizeof(bad[0]);
	const char *name = tu_name("badresize");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	unsigned char *m[2];
	struct stat st0, st1;
	char dir[PATH_MAX];
	uint64_t cap;

	snprintf(dir, sizeof(dir), "%s", bt_kmes_session__path(s));
	emit_n(s, 0, 3, 200);
	m[0] = tu_map_slot(name, 0, &cap);
	m[1] = tu_map_slot(name, 1, &cap);
	stat_in(dir, "ring.0", &st0);

	for (size_t i = 0; i < nbad; i++) {
		cr_assert(eq(int, bt_kmes_session__resize(s, bad[i]), -EINVAL),
			  "resize to %llu", (unsigned long long)bad[i]);
		cr_assert(eq(u64, bt_kmes_session__capacity(s),
			     (uint64_t)CAP_64K));
		for (int k = 0; k < 2; k++) {
			cr_assert(eq(u64, tu_ld64(m[k], KMES_OFF_GENERATION),
				     1ull));
			cr_assert(eq(u64, tu_ld64(m[k], KMES_OFF_CAPACITY),
				     (uint64_t)CAP_64K));
			cr_assert(eq(u64, capacity_of(name, (uint32_t)k),
				     (uint64_t)CAP_64K));
		}
	}
	stat_in(dir, "ring.0", &st1);
	cr_assert(eq(u64, (uint64_t)st1.st_ino, (uint64_t)st0.st_ino),
		  "ring.0 was swapped");

	/* Every ring got one notice per bad value, in order. */
	for (uint32_t k = 0; k < 2; k++) {
		struct evs *e = evs_new();
		size_t first = k == 0 ? 3 : 0;
		char str[64];
		uint64_t u;

		drain_mapping(m[k], cap, e);
		cr_assert(eq(sz, e->n, first + nbad));
		for (size_t i = 0; i < nbad; i++) {
			size_t j = first + i;

			cr_assert(eq(str, e->type[j], "kmes.config.invalid"));
			cr_assert(eq(u8, e->origin[j], (uint8_t)KMES_ORIGIN_KMES));
			cr_assert(eq(int, mp_lookup(e->payload[j], e->plen[j],
						    "key", str, sizeof(str), &u),
				     1));
			cr_assert(eq(str, str, "BufferCapacity"));
			cr_assert(eq(u64, mp_u64(e, j, "value"), bad[i]));
			cr_assert(eq(u64, mp_u64(e, j, "kept"),
				     (uint64_t)CAP_64K));
		}
		evs_free(e);
	}
	kmes_unmap(m[0], cap);
	kmes_unmap(m[1], cap);
	bt_kmes_session__close(s);
}

struct wait_result {
	int ret;
	int err;
	uint64_t ms;
	uint32_t counter_before;
	uint32_t counter_after;
	uint64_t gen_after;
};

/* KMES.md §8 item 45: a consumer asleep in bt_kmes_reader__wait */
Test(kmes_session, a_consumer_sleeping_in_reader_wait_is_woken_by_a_resize,
     .timeout = 30)
{
	const char *name = tu_name("wakeresize");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct wait_result res;
	unsigned char *mine;
	uint64_t cap, t0;
	int pfd[2];
	pid_t pid;
	char c;

	emit_n(s, 0, 5, 200);
	mine = tu_map_slot(name, 0, &cap);
	cr_assert(eq(int, pipe(pfd), 0));
	pid = fork();
	cr_assert(ge(int, (int)pid, 0));
	if (pid == 0) {
		struct bt_kmes_reader_opts o = { .sz = sizeof(o),
						 .from_now = true };
		struct bt_kmes_reader *r = bt_kmes_reader__new(name, &o);
		uint64_t t;

		memset(&res, 0, sizeof(res));
		c = r ? 'r' : 'x';
		tu_write_full(pfd[1], &c, 1);
		if (!r)
			_exit(1);
		t = tu_mono_ms();
		res.ret = bt_kmes_reader__wait(r, 20000);
		res.ms = tu_mono_ms() - t;
		tu_write_full(pfd[1], &res, sizeof(res));
		_exit(0);
	}
	close(pfd[1]);
	wait_for_sleeper(mine, pfd[0], pid);

	t0 = tu_mono_ms();
	cr_assert(eq(int, bt_kmes_session__resize(s, CAP_128K), 0));
	tu_read_full(pfd[0], &res, sizeof(res));
	cr_assert(eq(int, tu_child_status(pid), 0));
	cr_assert(eq(int, res.ret, 1), "wait returned %d", res.ret);
	cr_assert(lt(u64, tu_mono_ms() - t0, 5000ull),
		  "woken late: the 20 s timeout must not be what ended it");
	cr_assert(lt(u64, res.ms, 19000ull));
	kmes_unmap(mine, cap);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 45: a raw FUTEX_WAIT with need_wake set */
Test(kmes_session, a_raw_futex_waiter_with_need_wake_set_is_woken_by_a_resize,
     .timeout = 30)
{
	const char *name = tu_name("futexresize");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct wait_result res;
	unsigned char *mine;
	uint64_t cap, t0;
	int pfd[2];
	pid_t pid;
	char c;

	emit_n(s, 0, 5, 200);
	mine = tu_map_slot(name, 0, &cap);
	cr_assert(eq(int, pipe(pfd), 0));
	pid = fork();
	cr_assert(ge(int, (int)pid, 0));
	if (pid == 0) {
		/* The child's own attach: its own mapping of the old ring. */
		uint64_t ccap;
		int fd = kmes_attach(name, 0, &ccap);
		unsigned char *b = fd >= 0 ? kmes_map(fd, ccap) : NULL;
		struct timespec to = { 20, 0 };
		uint32_t *word;
		uint64_t t;

		memset(&res, 0, sizeof(res));
		c = b ? 'r' : 'x';
		if (!b) {
			tu_write_full(pfd[1], &c, 1);
			_exit(1);
		}
		word = (uint32_t *)(void *)(b + KMES_OFF_FUTEX);
		__atomic_store_n(b + KMES_OFF_NEED_WAKE, 1, __ATOMIC_SEQ_CST);
		res.counter_before = __atomic_load_n(word, __ATOMIC_SEQ_CST);
		tu_write_full(pfd[1], &c, 1);
		t = tu_mono_ms();
		res.ret = (int)syscall(SYS_futex, word, FUTEX_WAIT,
				       res.counter_before, &to, NULL, 0);
		res.err = res.ret < 0 ? errno : 0;
		res.ms = tu_mono_ms() - t;
		res.counter_after = __atomic_load_n(word, __ATOMIC_SEQ_CST);
		res.gen_after = tu_ld64(b, KMES_OFF_GENERATION);
		tu_write_full(pfd[1], &res, sizeof(res));
		_exit(0);
	}
	close(pfd[1]);
	wait_for_sleeper(mine, pfd[0], pid);

	t0 = tu_mono_ms();
	cr_assert(eq(int, bt_kmes_session__resize(s, CAP_128K), 0));
	tu_read_full(pfd[0], &res, sizeof(res));
	cr_assert(eq(int, tu_child_status(pid), 0));
	cr_assert(eq(int, res.ret, 0), "FUTEX_WAIT: %s", strerror(res.err));
	cr_assert(lt(u64, tu_mono_ms() - t0, 5000ull));
	cr_assert(gt(u32, res.counter_after, res.counter_before));
	cr_assert(eq(u64, res.gen_after, 2ull));
	kmes_unmap(mine, cap);
	bt_kmes_session__close(s);
}

/* KMES.md §8 item 46 */
Test(kmes_session, the_old_mapping_stays_readable_after_the_swap_until_unmapped)
{
	const char *name = tu_name("oldmap");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct evs *before = evs_new(), *after = evs_new();
	unsigned char *old, *copy;
	uint64_t cap, wp;

	emit_n(s, 0, 100, 300);		/* wraps */
	old = tu_map_slot(name, 0, &cap);
	wp = tu_ld64(old, KMES_OFF_WRITE_POS);
	copy = malloc(cap);
	cr_assert(ne(ptr, copy, NULL));
	memcpy(copy, old + KMES_DATA_OFFSET, cap);
	drain_mapping(old, cap, before);

	/* Two swaps (the second removes the first replacement too). */
	cr_assert(eq(int, bt_kmes_session__resize(s, CAP_128K), 0));
	emit_n(s, 0, 10, 300);
	cr_assert(eq(int, bt_kmes_session__resize(s, CAP_64K), 0));
	emit_n(s, 0, 10, 300);

	/* Same bytes, a frozen write_pos, the same events. */
	cr_assert(eq(int, memcmp(copy, old + KMES_DATA_OFFSET, cap), 0));
	cr_assert(eq(int, memcmp(copy, old + KMES_DATA_OFFSET + cap, cap), 0));
	cr_assert(eq(u64, tu_ld64(old, KMES_OFF_WRITE_POS), wp));
	cr_assert(eq(u64, tu_ld64(old, KMES_OFF_GENERATION), 2ull));
	drain_mapping(old, cap, after);
	cr_assert(eq(sz, after->n, before->n));
	for (size_t i = 0; i < before->n; i++)
		cr_assert(eq(u64, after->seq[i], before->seq[i]));

	/* Even with the whole session gone. */
	bt_kmes_session__close(s);
	cr_assert(eq(int, bt_kmes_session__destroy(name, false), 0));
	cr_assert(eq(int, memcmp(copy, old + KMES_DATA_OFFSET, cap), 0));

	/* Until unmapped: then the range is no longer mapped at all. */
	cr_assert(eq(int, kmes_unmap(old, cap), 0));
	errno = 0;
	cr_assert(eq(int, msync(old, KMES_PAGE_SIZE, MS_ASYNC), -1));
	cr_assert(eq(int, errno, ENOMEM));
	free(copy);
	evs_free(before);
	evs_free(after);
}

/* §7.1.4: a failed allocation keeps the old rings and says so. */
Test(kmes_session, a_failed_swap_keeps_the_old_rings_and_emits_swap_failed)
{
	const char *name = tu_name("swapfail");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	char dir[PATH_MAX];
	struct stat st0, st1;
	unsigned char *m[2];
	uint64_t cap;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s", bt_kmes_session__path(s));
	emit_n(s, 0, 10, 200);
	bt_kmes_session__close(s);
	m[0] = tu_map_slot(name, 0, &cap);
	m[1] = tu_map_slot(name, 1, &cap);
	stat_in(dir, "ring.0", &st0);

	pid = fork();
	cr_assert(ge(int, (int)pid, 0));
	if (pid == 0) {
		/* A file size limit below the new ring: ftruncate gets EFBIG. */
		struct rlimit rl = { 256 * 1024, 256 * 1024 };
		struct bt_kmes_session *cs = bt_kmes_session__open(name, NULL);
		static unsigned char pl[100];
		int err;

		if (!cs)
			_exit(10);
		signal(SIGXFSZ, SIG_IGN);
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(11);
		err = bt_kmes_session__resize(cs, 1024 * 1024);
		if (err != -EFBIG)
			_exit(20);
		if (bt_kmes_session__capacity(cs) != CAP_64K)
			_exit(21);
		/* The old rings still take events. */
		bt_kmes_payload_fill(pl, sizeof(pl), 12, NULL);
		if (kmes_emit(cs, 0, EV_TYPE, EV_TYPE_LEN, pl, sizeof(pl)) < 0)
			_exit(22);
		bt_kmes_session__close(cs);
		_exit(0);
	}
	cr_assert(eq(int, tu_child_status(pid), 0),
		  "child: 10 open, 11 setrlimit, 20 resize not EFBIG, "
		  "21 capacity changed, 22 emit failed");

	/* Generation and capacity unchanged, same file, no leftovers. */
	stat_in(dir, "ring.0", &st1);
	cr_assert(eq(u64, (uint64_t)st1.st_ino, (uint64_t)st0.st_ino));
	cr_assert(eq(int, dir_has_suffix(dir, KMES_NEW_SUFFIX), 0));
	for (uint32_t k = 0; k < 2; k++) {
		struct evs *e = evs_new();
		size_t i = k == 0 ? 10 : 0;

		cr_assert(eq(u64, tu_ld64(m[k], KMES_OFF_GENERATION), 1ull));
		cr_assert(eq(u64, capacity_of(name, k), (uint64_t)CAP_64K));
		drain_mapping(m[k], cap, e);
		cr_assert(eq(sz, e->n, i + 1 + (k == 0)));
		cr_assert(eq(str, e->type[i], "kmes.swap.failed"));
		cr_assert(eq(u8, e->origin[i], (uint8_t)KMES_ORIGIN_KMES));
		cr_assert(eq(u64, mp_u64(e, i, "requested"), 1048576ull));
		cr_assert(eq(u64, mp_u64(e, i, "kept"), (uint64_t)CAP_64K));
		cr_assert(eq(u64, mp_u64(e, i, "errno"), (uint64_t)EFBIG));
		if (k == 0)
			cr_assert(eq(u64, e->seq[i + 1], 12ull));
		evs_free(e);
	}
	kmes_unmap(m[0], cap);
	kmes_unmap(m[1], cap);
}

/* ---- The reader's re-attach by sequence (§4.5) -------------------------- */

/* §4.5: drain the old ring to its frozen write_pos, resume by sequence. */
Test(kmes_session, a_reader_follows_a_resize_without_loss_or_duplicates)
{
	const char *name = tu_name("follow1");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct bt_kmes_reader *r = reader_all(name);
	struct bt_kmes_slot_stats st;
	struct evs *e = evs_new();

	emit_n(s, 0, 50, 200);
	for (int i = 0; i < 20; i++) {
		struct bt_kmes_event ev;

		cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
		cr_assert(eq(u64, ev.sequence, (uint64_t)i + 1));
	}
	cr_assert(eq(int, bt_kmes_session__resize(s, CAP_128K), 0));
	emit_n(s, 0, 50, 200);
	drain(r, e);

	cr_assert(eq(sz, e->n, (size_t)80));
	for (size_t i = 0; i < e->n; i++) {
		cr_assert(eq(u64, e->seq[i], (uint64_t)i + 21));
		cr_assert(eq(u64, e->gap[i], 0ull));
		/* 21..50 come from the old ring, 51.. from the new one. */
		cr_assert(eq(u64, e->gen[i], e->seq[i] <= 50 ? 1ull : 2ull));
	}
	cr_assert(eq(int, bt_kmes_reader__stats(r, 0, &st), 0));
	cr_assert(eq(u64, st.reattached, 1ull));
	cr_assert(eq(u64, st.generation, 2ull));
	cr_assert(eq(u64, st.capacity, (uint64_t)CAP_128K));
	cr_assert(eq(u64, st.missed, 0ull));
	cr_assert(eq(u64, st.events, 100ull));
	evs_free(e);
	bt_kmes_reader__free(r);
	bt_kmes_session__close(s);
}

/* §4.5 across several consecutive resizes, read between and not. */
Test(kmes_session, a_reader_follows_several_resizes_in_a_row)
{
	static const uint64_t caps[] = { CAP_128K, CAP_256K, CAP_128K };
	const char *name = tu_name("followN");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	struct bt_kmes_reader *r = reader_all(name);
	struct bt_kmes_slot_stats st;
	struct evs *e = evs_new();
	uint64_t next[2] = { 1, 1 };

	emit_n(s, 0, 30, 200);
	emit_n(s, 1, 5, 200);
	for (int i = 0; i < 3; i++) {
		cr_assert(eq(int, bt_kmes_session__resize(s, caps[i]), 0));
		emit_n(s, 0, 30, 200);
		emit_n(s, 1, 5, 200);
	}
	drain(r, e);
	/* Then two more, each one read before the next. */
	for (int i = 0; i < 2; i++) {
		cr_assert(eq(int, bt_kmes_session__resize(s, i ? CAP_128K :
							  CAP_64K), 0));
		emit_n(s, 0, 30, 200);
		emit_n(s, 1, 5, 200);
		drain(r, e);
	}

	/* Every event exactly once, in order, per slot. */
	cr_assert(eq(sz, e->n, (size_t)(6 * 35)));
	for (size_t i = 0; i < e->n; i++) {
		uint32_t k = e->slot[i];

		cr_assert(lt(u32, k, 2u));
		cr_assert(eq(u64, e->seq[i], next[k]), "slot %u", k);
		next[k]++;
	}
	cr_assert(eq(u64, next[0], 181ull));
	cr_assert(eq(u64, next[1], 31ull));
	for (uint32_t k = 0; k < 2; k++) {
		cr_assert(eq(int, bt_kmes_reader__stats(r, k, &st), 0));
		/* One re-attach for the three in a row, one per later swap. */
		cr_assert(eq(u64, st.reattached, 3ull), "slot %u", k);
		cr_assert(eq(u64, st.generation, 6ull));
		cr_assert(eq(u64, st.missed, 0ull));
	}
	evs_free(e);
	bt_kmes_reader__free(r);
	bt_kmes_session__close(s);
}

/* ---- Create, open, destroy errors --------------------------------------- */

Test(kmes_session, create_fails_with_eexist_for_a_name_in_use)
{
	const char *name = tu_name("exists");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct bt_kmes_session_opts o = { .sz = sizeof(o), .capacity = CAP_64K,
					  .slots = 1 };

	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__create(name, &o), NULL));
	cr_assert(eq(int, errno, EEXIST));
	/* Also once the producer is gone: the rings outlive it. */
	bt_kmes_session__close(s);
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__create(name, &o), NULL));
	cr_assert(eq(int, errno, EEXIST));
}

Test(kmes_session, create_rejects_bad_names_with_einval)
{
	static const char *const bad[] = {
		"", ".", "..", ".hidden", "a b", "tab\there", "semi;colon",
		"new\nline", "star*",
	};
	struct bt_kmes_session_opts o = { .sz = sizeof(o), .capacity = CAP_64K,
					  .slots = 1 };
	char longname[300];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		cr_assert(eq(ptr, bt_kmes_session__create(bad[i], &o), NULL),
			  "name \"%s\" accepted", bad[i]);
		cr_assert(eq(int, errno, EINVAL), "name \"%s\"", bad[i]);
	}
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__create(longname, &o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__create(NULL, &o), NULL));
	cr_assert(eq(int, errno, EFAULT));
}

/* kmes.h: a name with a '/' is the session directory itself. */
Test(kmes_session, a_name_with_a_slash_is_the_session_directory_itself)
{
	struct bt_kmes_session_opts o = { .sz = sizeof(o), .capacity = CAP_64K,
					  .slots = 1 };
	char parent[] = "/tmp/bt-sesspath-XXXXXX", dir[PATH_MAX];
	struct bt_kmes_session *s;
	struct stat st;
	uint64_t n;

	cr_assert(ne(ptr, mkdtemp(parent), NULL));
	snprintf(dir, sizeof(dir), "%s/sess", parent);
	s = bt_kmes_session__create(dir, &o);
	cr_assert(ne(ptr, s, NULL), "%s", strerror(errno));
	tu_cleanup_at_exit(dir);
	cr_assert(eq(str, (char *)bt_kmes_session__path(s), dir));
	stat_in(dir, "ring.0", &st);
	cr_assert(eq(int, kmes_attach(dir, KMES_ATTACH_QUERY_SLOTS, &n), 0));
	cr_assert(eq(u64, n, 1ull));
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__create(dir, &o), NULL));
	cr_assert(eq(int, errno, EEXIST));
	bt_kmes_session__close(s);
	cr_assert(eq(int, bt_kmes_session__destroy(dir, false), 0));
	cr_assert(eq(int, stat(dir, &st), -1), "the directory is removed");
	cr_assert(eq(int, rmdir(parent), 0));
}

Test(kmes_session, create_rejects_an_options_struct_it_cannot_read)
{
	struct {
		struct bt_kmes_session_opts o;
		uint64_t future;
	} big;
	struct bt_kmes_session_opts o = { .sz = 4, .capacity = CAP_64K,
					  .slots = 1 };
	const char *name = tu_name("optsz");
	struct bt_kmes_session *s;

	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__create(name, &o), NULL));
	cr_assert(eq(int, errno, EINVAL), "sz below sizeof(size_t)");

	/* A newer, larger struct: its unknown tail must be zero. */
	memset(&big, 0, sizeof(big));
	big.o.sz = sizeof(big);
	big.o.capacity = CAP_64K;
	big.o.slots = 1;
	big.future = 1;
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__create(name, &big.o), NULL));
	cr_assert(eq(int, errno, EINVAL), "unknown non-zero tail bytes");

	big.future = 0;
	s = bt_kmes_session__create(name, &big.o);
	cr_assert(ne(ptr, s, NULL), "a zero tail is fine: %s", strerror(errno));
	tu_cleanup_at_exit(name);
	bt_kmes_session__close(s);
}

Test(kmes_session, create_fails_with_enoent_for_an_unknown_group)
{
	struct bt_kmes_session_opts o = {
		.sz = sizeof(o), .capacity = CAP_64K, .slots = 1,
		.group = "no-such-group-btrail-test",
	};
	const char *name = tu_name("nogroup");
	uint64_t n;

	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__create(name, &o), NULL));
	cr_assert(eq(int, errno, ENOENT));
	cr_assert(eq(int, kmes_attach(name, KMES_ATTACH_QUERY_SLOTS, &n), -1));
	cr_assert(eq(int, errno, ENOENT));
}

Test(kmes_session, create_rejects_limits_out_of_range_with_einval)
{
	struct bt_kmes_session_opts base = { .sz = sizeof(base),
					     .capacity = CAP_64K, .slots = 1 };
	struct bt_kmes_session_opts o;
	struct bt_kmes_session *s;
	const char *name;

	/* max_nesting_depth: 4..32 (msgpack-c's stack, see kmes.h). */
	o = base;
	o.max_nesting_depth = 33;
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__create(tu_name("d33"), &o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	o.max_nesting_depth = 3;
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__create(tu_name("d3"), &o), NULL));
	cr_assert(eq(int, errno, EINVAL));

	/* kind: 0 (per-CPU) or 1 (per-task); 2 is no kind. */
	o = base;
	o.kind = 2;
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__create(tu_name("k2"), &o), NULL));
	cr_assert(eq(int, errno, EINVAL));

	o = base;
	o.slots = 65537;
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__create(tu_name("s65537"), &o),
		     NULL));
	cr_assert(eq(int, errno, EINVAL));

	o = base;
	o.max_event_size = KMES_MAX_EVENT_SIZE_MIN - 1;
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__create(tu_name("mes"), &o), NULL));
	cr_assert(eq(int, errno, EINVAL));

	o = base;
	o.max_emit_rate = KMES_EMIT_RATE_MAX + 1;
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__create(tu_name("rate"), &o), NULL));
	cr_assert(eq(int, errno, EINVAL));

	/* The limits themselves are accepted. */
	o = base;
	o.max_nesting_depth = 32;
	o.kind = BT_KMES_RING_TASK;
	name = tu_name("d32");
	s = bt_kmes_session__create(name, &o);
	cr_assert(ne(ptr, s, NULL), "%s", strerror(errno));
	tu_cleanup_at_exit(name);
	bt_kmes_session__close(s);
}

Test(kmes_session, session_calls_reject_a_null_session)
{
	bt_kmes_session__close(NULL);
	cr_assert(eq(ptr, (void *)bt_kmes_session__path(NULL), NULL));
	cr_assert(eq(u32, bt_kmes_session__slots(NULL), 0u));
	cr_assert(eq(u64, bt_kmes_session__capacity(NULL), 0ull));
	cr_assert(eq(int, bt_kmes_session__resize(NULL, CAP_64K), -EINVAL));
	cr_assert(eq(int, bt_kmes_session__add_slot(NULL, 0), -EINVAL));
	cr_assert(eq(int, bt_kmes_session__set_status(NULL, 0, 0), -EINVAL));
	cr_assert(eq(int, bt_kmes_session__sync_cpus(NULL, "/sys"), -EINVAL));
	cr_assert(eq(int, bt_kmes_session__destroy(NULL, false), -EFAULT));
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__open(NULL, NULL), NULL));
	cr_assert(eq(int, errno, EFAULT));
}

Test(kmes_session, open_fails_with_enoent_for_a_missing_session)
{
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__open(tu_name("missing"), NULL),
		     NULL));
	cr_assert(eq(int, errno, ENOENT));
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__open("", NULL), NULL));
	cr_assert(eq(int, errno, EINVAL));
}

Test(kmes_session, open_fails_with_ebusy_while_another_process_produces)
{
	const char *name = tu_name("busy");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct bt_kmes_session *again;
	struct holder h;
	char pid[32];

	bt_kmes_session__close(s);
	h = hold_session(name);
	tu_log_capture();
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__open(name, NULL), NULL));
	cr_assert(eq(int, errno, EBUSY));
	snprintf(pid, sizeof(pid), "pid %d", (int)h.pid);
	cr_assert(ne(ptr, strstr(tu_log_text(), pid), NULL),
		  "the log should name the holder (%s): %s", pid, tu_log_text());
	release_holder(h);

	/* Free again once the holder is gone. */
	again = bt_kmes_session__open(name, NULL);
	cr_assert(ne(ptr, again, NULL), "%s", strerror(errno));
	bt_kmes_session__close(again);
}

Test(kmes_session, destroy_refuses_a_held_session_unless_forced)
{
	const char *name = tu_name("destroy");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct holder h;
	char pid[32];
	uint64_t n;

	bt_kmes_session__close(s);
	h = hold_session(name);
	tu_log_capture();
	cr_assert(eq(int, bt_kmes_session__destroy(name, false), -EBUSY));
	snprintf(pid, sizeof(pid), "pid %d", (int)h.pid);
	cr_assert(ne(ptr, strstr(tu_log_text(), pid), NULL), "%s",
		  tu_log_text());
	cr_assert(eq(int, kmes_attach(name, KMES_ATTACH_QUERY_SLOTS, &n), 0),
		  "refused means untouched");
	cr_assert(eq(u64, n, 1ull));

	cr_assert(eq(int, bt_kmes_session__destroy(name, true), 0));
	cr_assert(eq(int, kmes_attach(name, KMES_ATTACH_QUERY_SLOTS, &n), -1));
	cr_assert(eq(int, errno, ENOENT));
	cr_assert(eq(int, bt_kmes_session__destroy(name, false), -ENOENT));
	cr_assert(eq(int, bt_kmes_session__destroy(name, true), -ENOENT));
	release_holder(h);

	/* Without a holder, no force is needed. */
	name = tu_name("destroy2");
	s = tu_create(name, CAP_64K, 1);
	bt_kmes_session__close(s);
	cr_assert(eq(int, bt_kmes_session__destroy(name, false), 0));
	cr_assert(eq(int, bt_kmes_session__destroy(name, false), -ENOENT));
	cr_assert(eq(int, bt_kmes_session__destroy("", false), -EINVAL));
}

Test(kmes_session, open_refuses_a_corrupt_ring_with_eproto_and_changes_nothing)
{
	static const char *const files[] = {
		"lock", "ring.0", "ring.1", "wake.0", "wake.1",
	};
	const size_t nf = sizeof(files) / sizeof(files[0]);
	const char *name = tu_name("eproto");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	unsigned char *before[5], *after[5], bad[4];
	size_t blen[5], alen[5];
	char dir[PATH_MAX], path[PATH_MAX + 16], where[64];
	int fd;

	snprintf(dir, sizeof(dir), "%s", bt_kmes_session__path(s));
	emit_n(s, 0, 10, 200);
	emit_n(s, 1, 10, 200);
	bt_kmes_session__close(s);

	/* Event 5 of slot 1 (position 800) gets an event_size of 3. */
	snprintf(path, sizeof(path), "%s/ring.1", dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	cr_assert(ge(int, fd, 0));
	bt_put_le32(bad, 3);
	cr_assert(eq(long, (long)pwrite(fd, bad, 4, KMES_PAGE_SIZE + 800), 4L));
	close(fd);

	for (size_t i = 0; i < nf; i++)
		before[i] = slurp_file(dir, files[i], &blen[i]);
	tu_log_capture();
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__open(name, NULL), NULL));
	cr_assert(eq(int, errno, EPROTO));
	/* The log names the file and the offset of the bad event. */
	cr_assert(ne(ptr, strstr(tu_log_text(), "ring.1"), NULL), "%s",
		  tu_log_text());
	snprintf(where, sizeof(where), "%u", KMES_PAGE_SIZE + 800);
	cr_assert(ne(ptr, strstr(tu_log_text(), where), NULL), "%s",
		  tu_log_text());

	for (size_t i = 0; i < nf; i++) {
		after[i] = slurp_file(dir, files[i], &alen[i]);
		cr_assert(eq(sz, alen[i], blen[i]), "%s", files[i]);
		cr_assert(eq(int, memcmp(after[i], before[i], blen[i]), 0),
			  "%s changed", files[i]);
		free(before[i]);
		free(after[i]);
	}
	/* And it stays refused. */
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__open(name, NULL), NULL));
	cr_assert(eq(int, errno, EPROTO));
}

/* Sequences continue after a reopen, counting sequences of dropped events. */
Test(kmes_session, a_reopened_session_continues_after_the_last_sequence_spent)
{
	static unsigned char big[40000];
	const char *name = tu_name("reopen");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct kmes_emit_entry drop = {
		.event_type = EV_TYPE, .event_type_len = EV_TYPE_LEN,
		.payload = big, .payload_len = sizeof(big),	/* > 50% */
	};
	struct bt_kmes_reader *r;
	struct evs *e = evs_new();

	emit_n(s, 0, 5, 200);
	cr_assert(eq(int, bt_kmes_session__emit_trusted(s, 0, NULL, &drop, 1),
		     0));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 6ull));
	bt_kmes_session__close(s);

	s = bt_kmes_session__open(name, NULL);
	cr_assert(ne(ptr, s, NULL), "%s", strerror(errno));
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 6ull));
	cr_assert(eq(u64, bt_kmes_session__capacity(s), (uint64_t)CAP_64K));
	tu_emit_sized(s, 0, EV_TYPE, 200);
	cr_assert(eq(u64, bt_kmes_session__last_sequence(s, 0), 7ull));
	bt_kmes_session__close(s);

	/* Twice: the second open sees what the first one wrote. */
	s = bt_kmes_session__open(name, NULL);
	cr_assert(ne(ptr, s, NULL), "%s", strerror(errno));
	tu_emit_sized(s, 0, EV_TYPE, 200);
	bt_kmes_session__close(s);

	r = reader_all(name);
	drain(r, e);
	cr_assert(eq(sz, e->n, (size_t)7));
	for (size_t i = 0; i < 5; i++)
		cr_assert(eq(u64, e->seq[i], (uint64_t)i + 1));
	cr_assert(eq(u64, e->seq[5], 7ull));
	cr_assert(eq(u64, e->gap[5], 1ull));
	cr_assert(eq(u64, e->seq[6], 8ull));
	bt_kmes_reader__free(r);
	evs_free(e);
}

/* ---- Files, modes, extension fields ------------------------------------- */

static void check_mode(const char *dir, const char *file, mode_t mode,
		       gid_t gid)
{
	struct stat st;

	stat_in(dir, file, &st);
	cr_assert(eq(uint, (unsigned)(st.st_mode & 07777), (unsigned)mode),
		  "%s/%s: mode %04o", dir, file, st.st_mode & 07777);
	if (gid != (gid_t)-1)
		cr_assert(eq(uint, (unsigned)st.st_gid, (unsigned)gid),
			  "%s/%s: group", dir, file);
}

static void check_session_modes(const char *name, const char *group,
				gid_t gid)
{
	struct bt_kmes_session_opts o = { .sz = sizeof(o), .capacity = CAP_64K,
					  .slots = 2, .group = group };
	struct bt_kmes_session *s = bt_kmes_session__create(name, &o);
	char dir[PATH_MAX];
	struct stat st;

	cr_assert(ne(ptr, s, NULL), "group %s: %s", group ? group : "(none)",
		  strerror(errno));
	tu_cleanup_at_exit(name);
	snprintf(dir, sizeof(dir), "%s", bt_kmes_session__path(s));
	cr_assert(eq(int, stat(dir, &st), 0));
	cr_assert(eq(int, S_ISDIR(st.st_mode) ? 1 : 0, 1));
	cr_assert(eq(uint, (unsigned)(st.st_mode & 07777),
		     group ? 0750u : 0700u), "%s: mode %04o", dir,
		  st.st_mode & 07777);
	if (group)
		cr_assert(eq(uint, (unsigned)st.st_gid, (unsigned)gid));
	for (int i = 0; i < 2; i++) {
		char f[16];

		snprintf(f, sizeof(f), "ring.%d", i);
		check_mode(dir, f, group ? 0640 : 0600,
			   group ? gid : (gid_t)-1);
		snprintf(f, sizeof(f), "wake.%d", i);
		check_mode(dir, f, group ? 0660 : 0600,
			   group ? gid : (gid_t)-1);
	}
	/* The lock stays private: a group member could flock() it otherwise. */
	check_mode(dir, "lock", 0600, (gid_t)-1);
	if (group) {
		/* The group can reach the session: search on the base. */
		char base[PATH_MAX];

		snprintf(base, sizeof(base), "%s", dir);
		*strrchr(base, '/') = '\0';
		cr_assert(eq(int, stat(base, &st), 0));
		cr_assert(eq(uint, (unsigned)(st.st_mode & 011), 011u),
			  "%s: mode %04o", base, st.st_mode & 07777);
	}
	/* A slot added later gets the same modes. */
	cr_assert(eq(int, bt_kmes_session__add_slot(s, 0), 2));
	check_mode(dir, "ring.2", group ? 0640 : 0600, group ? gid : (gid_t)-1);
	check_mode(dir, "wake.2", group ? 0660 : 0600, group ? gid : (gid_t)-1);
	bt_kmes_session__close(s);
}

Test(kmes_session, session_files_are_private_to_the_owner_by_default)
{
	mode_t old = umask(0);	/* the library must not rely on the umask */

	check_session_modes(tu_name("modes"), NULL, (gid_t)-1);
	umask(old);
}

Test(kmes_session, a_group_session_is_group_owned_and_group_readable)
{
	struct group *gr = getgrnam("daemon");

	umask(0);	/* the library must not rely on the umask */
	if (!gr)
		gr = getgrnam("nogroup");
	check_session_modes(tu_name("grp0"), "0", 0);
	if (!gr)
		cr_skip_test("no group \"daemon\" or \"nogroup\" to test a "
			     "group other than 0 with");
	check_session_modes(tu_name("grpname"), gr->gr_name, gr->gr_gid);
}

Test(kmes_session, a_per_task_session_records_ring_kind_and_tid)
{
	struct bt_kmes_session_opts o = { .sz = sizeof(o), .capacity = CAP_64K,
					  .kind = BT_KMES_RING_TASK, .slots = 1 };
	const char *name = tu_name("pertask");
	struct bt_kmes_session *s = bt_kmes_session__create(name, &o);
	struct bt_kmes_reader *r;
	struct bt_kmes_slot_stats st;
	unsigned char *b[3];
	uint64_t cap, n;

	cr_assert(ne(ptr, s, NULL), "%s", strerror(errno));
	tu_cleanup_at_exit(name);
	cr_assert(eq(u32, bt_kmes_session__slots(s), 1u));
	cr_assert(eq(int, bt_kmes_session__add_slot(s, 4242), 1));
	cr_assert(eq(int, bt_kmes_session__add_slot(s, 4343), 2));
	cr_assert(eq(int, kmes_attach(name, KMES_ATTACH_QUERY_SLOTS, &n), 0));
	cr_assert(eq(u64, n, 3ull));
	b[2] = tu_map_slot(name, 0, &cap);
	cr_assert(eq(u32, tu_ld32(b[2], BT_KMES_XOFF_KIND),
		     (uint32_t)BT_KMES_RING_TASK));
	cr_assert(eq(u32, tu_ld32(b[2], BT_KMES_XOFF_TID), 0u),
		  "no task given");
	kmes_unmap(b[2], cap);
	b[0] = tu_map_slot(name, 1, &cap);
	b[1] = tu_map_slot(name, 2, &cap);
	cr_assert(eq(u32, tu_ld32(b[0], BT_KMES_XOFF_KIND),
		     (uint32_t)BT_KMES_RING_TASK));
	cr_assert(eq(u32, tu_ld32(b[1], BT_KMES_XOFF_KIND),
		     (uint32_t)BT_KMES_RING_TASK));
	cr_assert(eq(u32, tu_ld32(b[0], BT_KMES_XOFF_TID), 4242u));
	cr_assert(eq(u32, tu_ld32(b[1], BT_KMES_XOFF_TID), 4343u));
	cr_assert(eq(u32, tu_ld32(b[0], BT_KMES_XOFF_NR_SLOTS), 3u));
	cr_assert(eq(u32, tu_ld32(b[1], BT_KMES_XOFF_NR_SLOTS), 3u));
	cr_assert(eq(u16, bt_le16(b[1] + KMES_OFF_CPU_ID), (uint16_t)2));
	cr_assert(eq(int, memcmp(b[0] + BT_KMES_XOFF_SESSION_ID,
				 b[1] + BT_KMES_XOFF_SESSION_ID, 16), 0));
	cr_assert(eq(int, memcmp(b[0] + BT_KMES_XOFF_MAGIC, BT_KMES_EXT_MAGIC,
				 8), 0));

	r = reader_all(name);
	cr_assert(eq(int, bt_kmes_reader__stats(r, 2, &st), 0));
	cr_assert(eq(u32, st.kind, (uint32_t)BT_KMES_RING_TASK));
	cr_assert(eq(u32, st.tid, 4343u));
	cr_assert(eq(u32, st.producer_pid, (uint32_t)getpid()));
	bt_kmes_reader__free(r);

	/* The tid survives a resize. */
	cr_assert(eq(int, bt_kmes_session__resize(s, CAP_128K), 0));
	kmes_unmap(b[1], cap);
	b[1] = tu_map_slot(name, 2, &cap);
	cr_assert(eq(u32, tu_ld32(b[1], BT_KMES_XOFF_TID), 4343u));
	cr_assert(eq(u32, tu_ld32(b[1], BT_KMES_XOFF_KIND),
		     (uint32_t)BT_KMES_RING_TASK));
	/* Per-task sessions have no CPUs to sync. */
	cr_assert(eq(int, bt_kmes_session__sync_cpus(s, "/sys"), -EINVAL));
	kmes_unmap(b[0], CAP_64K);
	kmes_unmap(b[1], cap);
	bt_kmes_session__close(s);
}

/* ---- Topology (App. C §10.1.1) ------------------------------------------ */

Test(kmes_session, set_status_marks_a_slot_and_bumps_the_topology_counter)
{
	const char *name = tu_name("status");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	struct bt_kmes_reader *r = reader_all(name);
	struct bt_kmes_slot_stats st;
	unsigned char *b0, *b1;
	uint64_t cap, topo;

	b0 = tu_map_slot(name, 0, &cap);
	b1 = tu_map_slot(name, 1, &cap);
	topo = tu_ld64(b0, BT_KMES_XOFF_TOPOLOGY);
	cr_assert(eq(u64, tu_ld64(b1, BT_KMES_XOFF_TOPOLOGY), topo));

	cr_assert(eq(int, bt_kmes_session__set_status(s, 1, BT_KMES_CPU_OFFLINE),
		     0));
	cr_assert(eq(u32, tu_ld32(b1, BT_KMES_XOFF_STATUS),
		     (uint32_t)BT_KMES_CPU_OFFLINE));
	cr_assert(eq(u64, tu_ld64(b0, BT_KMES_XOFF_TOPOLOGY), topo + 1));
	cr_assert(eq(u64, tu_ld64(b1, BT_KMES_XOFF_TOPOLOGY), topo + 1));
	cr_assert(eq(int, bt_kmes_reader__stats(r, 1, &st), 0));
	cr_assert(eq(u32, st.status, (uint32_t)BT_KMES_CPU_OFFLINE));

	cr_assert(eq(int, bt_kmes_session__set_status(s, 1, BT_KMES_CPU_REMOVED),
		     0));
	cr_assert(eq(u32, tu_ld32(b1, BT_KMES_XOFF_STATUS),
		     (uint32_t)BT_KMES_CPU_REMOVED));
	cr_assert(eq(u64, tu_ld64(b0, BT_KMES_XOFF_TOPOLOGY), topo + 2));
	cr_assert(eq(int, bt_kmes_session__set_status(s, 1, BT_KMES_CPU_ONLINE),
		     0));
	cr_assert(eq(u32, tu_ld32(b1, BT_KMES_XOFF_STATUS),
		     (uint32_t)BT_KMES_CPU_ONLINE));
	cr_assert(eq(u64, tu_ld64(b1, BT_KMES_XOFF_TOPOLOGY), topo + 3));
	cr_assert(eq(u32, tu_ld32(b0, BT_KMES_XOFF_STATUS),
		     (uint32_t)BT_KMES_CPU_ONLINE), "slot 0 untouched");

	/* The status survives a swap. */
	cr_assert(eq(int, bt_kmes_session__set_status(s, 1, BT_KMES_CPU_OFFLINE),
		     0));
	cr_assert(eq(int, bt_kmes_session__resize(s, CAP_128K), 0));
	kmes_unmap(b1, cap);
	b1 = tu_map_slot(name, 1, &cap);
	cr_assert(eq(u32, tu_ld32(b1, BT_KMES_XOFF_STATUS),
		     (uint32_t)BT_KMES_CPU_OFFLINE));

	/* Bad arguments change nothing. */
	topo = tu_ld64(b1, BT_KMES_XOFF_TOPOLOGY);
	cr_assert(eq(int, bt_kmes_session__set_status(s, 2, 0), -EINVAL));
	cr_assert(eq(int, bt_kmes_session__set_status(s, 0, 3), -EINVAL));
	cr_assert(eq(int, bt_kmes_session__set_status(NULL, 0, 0), -EINVAL));
	cr_assert(eq(u64, tu_ld64(b1, BT_KMES_XOFF_TOPOLOGY), topo));
	kmes_unmap(b0, CAP_64K);
	kmes_unmap(b1, cap);
	bt_kmes_reader__free(r);
	bt_kmes_session__close(s);
}

/* App. C §10.1.1: a hot-added CPU gets a ring instead of losing events. */
Test(kmes_session, a_reader_of_all_slots_picks_up_a_hot_added_slot)
{
	const char *name = tu_name("hotadd");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct bt_kmes_reader *r = reader_all(name);
	struct bt_kmes_event ev;
	unsigned char *b0, *b1;
	uint64_t cap, topo;

	tu_emit_sized(s, 0, EV_TYPE, 200);
	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 0));
	cr_assert(eq(u32, bt_kmes_reader__slots(r), 1u));
	b0 = tu_map_slot(name, 0, &cap);
	topo = tu_ld64(b0, BT_KMES_XOFF_TOPOLOGY);

	cr_assert(eq(int, bt_kmes_session__add_slot(s, 0), 1));
	cr_assert(eq(u32, bt_kmes_session__slots(s), 2u));
	cr_assert(eq(u64, tu_ld64(b0, BT_KMES_XOFF_TOPOLOGY), topo + 1));
	cr_assert(eq(u32, tu_ld32(b0, BT_KMES_XOFF_NR_SLOTS), 2u));
	b1 = tu_map_slot(name, 1, &cap);
	cr_assert(eq(u64, tu_ld64(b1, KMES_OFF_GENERATION), 1ull));
	cr_assert(eq(u16, bt_le16(b1 + KMES_OFF_CPU_ID), (uint16_t)1));
	cr_assert(eq(u64, tu_ld64(b1, BT_KMES_XOFF_TOPOLOGY), topo + 1));

	tu_emit_sized(s, 1, EV_TYPE, 200);
	tu_emit_sized(s, 1, EV_TYPE, 200);
	for (uint64_t q = 1; q <= 2; q++) {
		cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 1));
		cr_assert(eq(u32, ev.slot, 1u));
		cr_assert(eq(u16, ev.cpu_id, (uint16_t)1));
		cr_assert(eq(u64, ev.sequence, q));
	}
	cr_assert(eq(u32, bt_kmes_reader__slots(r), 2u));
	cr_assert(eq(int, bt_kmes_reader__next(r, &ev), 0));
	kmes_unmap(b0, cap);
	kmes_unmap(b1, cap);
	bt_kmes_reader__free(r);
	bt_kmes_session__close(s);
}

Test(kmes_session, a_reader_sleeping_in_wait_is_woken_by_a_hot_added_slot,
     .timeout = 30)
{
	const char *name = tu_name("hotwake");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 1);
	struct wait_result res;
	unsigned char *mine;
	uint64_t cap, t0;
	int pfd[2];
	pid_t pid;
	char c;

	mine = tu_map_slot(name, 0, &cap);
	cr_assert(eq(int, pipe(pfd), 0));
	pid = fork();
	cr_assert(ge(int, (int)pid, 0));
	if (pid == 0) {
		struct bt_kmes_reader *r = bt_kmes_reader__new(name, NULL);
		struct bt_kmes_event ev;
		uint64_t t;

		memset(&res, 0, sizeof(res));
		c = r ? 'r' : 'x';
		tu_write_full(pfd[1], &c, 1);
		if (!r)
			_exit(1);
		t = tu_mono_ms();
		res.ret = bt_kmes_reader__wait(r, 20000);
		res.ms = tu_mono_ms() - t;
		/* Then the new slot is followed. */
		(void)bt_kmes_reader__next(r, &ev);
		res.counter_after = bt_kmes_reader__slots(r);
		tu_write_full(pfd[1], &res, sizeof(res));
		_exit(0);
	}
	close(pfd[1]);
	wait_for_sleeper(mine, pfd[0], pid);

	t0 = tu_mono_ms();
	cr_assert(eq(int, bt_kmes_session__add_slot(s, 0), 1));
	tu_read_full(pfd[0], &res, sizeof(res));
	cr_assert(eq(int, tu_child_status(pid), 0));
	cr_assert(eq(int, res.ret, 1));
	cr_assert(lt(u64, tu_mono_ms() - t0, 5000ull));
	cr_assert(eq(u32, res.counter_after, 2u), "the reader follows 2 slots");
	kmes_unmap(mine, cap);
	bt_kmes_session__close(s);
}

/* A fake sysfs root with devices/system/cpu/ in it. */
static void fake_sysfs(char *root, size_t len)
{
	char p[PATH_MAX];

	snprintf(root, len, "/tmp/bt-sysfs-XXXXXX");
	cr_assert(ne(ptr, mkdtemp(root), NULL));
	snprintf(p, sizeof(p), "%s/devices", root);
	cr_assert(eq(int, mkdir(p, 0700), 0));
	snprintf(p, sizeof(p), "%s/devices/system", root);
	cr_assert(eq(int, mkdir(p, 0700), 0));
	snprintf(p, sizeof(p), "%s/devices/system/cpu", root);
	cr_assert(eq(int, mkdir(p, 0700), 0));
}

/* Write @text to cpu/@file of @root; NULL removes the file. */
static void cpu_file(const char *root, const char *file, const char *text)
{
	char p[PATH_MAX];
	FILE *f;

	snprintf(p, sizeof(p), "%s/devices/system/cpu/%s", root, file);
	if (!text) {
		unlink(p);
		return;
	}
	f = fopen(p, "w");
	cr_assert(ne(ptr, f, NULL));
	fputs(text, f);
	fclose(f);
}

static void fake_sysfs_remove(const char *root)
{
	char p[PATH_MAX];

	cpu_file(root, "online", NULL);
	cpu_file(root, "present", NULL);
	snprintf(p, sizeof(p), "%s/devices/system/cpu", root);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/devices/system", root);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/devices", root);
	rmdir(p);
	rmdir(root);
}

static void check_statuses(const char *name, const uint32_t *want, uint32_t n)
{
	uint64_t nr;

	cr_assert(eq(int, kmes_attach(name, KMES_ATTACH_QUERY_SLOTS, &nr), 0));
	cr_assert(eq(u64, nr, (uint64_t)n));
	for (uint32_t i = 0; i < n; i++) {
		uint64_t cap;
		unsigned char *b = tu_map_slot(name, i, &cap);

		cr_assert(eq(u32, tu_ld32(b, BT_KMES_XOFF_STATUS), want[i]),
			  "slot %u", i);
		cr_assert(eq(u32, tu_ld32(b, BT_KMES_XOFF_NR_SLOTS), n),
			  "slot %u", i);
		kmes_unmap(b, cap);
	}
}

/* App. C §10.1.1: hot-add, offline and removed CPUs. */
Test(kmes_session, sync_cpus_follows_online_and_present_cpu_lists)
{
	const char *name = tu_name("sync");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	char root[64];
	unsigned char *b0;
	uint64_t cap, topo;

	fake_sysfs(root, sizeof(root));
	/* A known start whatever this machine's CPUs are. */
	cr_assert(eq(int, bt_kmes_session__set_status(s, 0, 0), 0));
	cr_assert(eq(int, bt_kmes_session__set_status(s, 1, 0), 0));
	b0 = tu_map_slot(name, 0, &cap);
	topo = tu_ld64(b0, BT_KMES_XOFF_TOPOLOGY);

	/* CPU 2 is present, not online: a ring, marked offline. */
	cpu_file(root, "online", "0-1\n");
	cpu_file(root, "present", "0-2\n");
	cr_assert(eq(int, bt_kmes_session__sync_cpus(s, root), 1));
	cr_assert(eq(u32, bt_kmes_session__slots(s), 3u));
	check_statuses(name, (const uint32_t[]){ 0, 0, 1 }, 3);
	cr_assert(eq(u64, tu_ld64(b0, BT_KMES_XOFF_TOPOLOGY), topo + 1));

	/* CPU 2 comes online, CPU 3 is hot-added. */
	cpu_file(root, "online", "0-3\n");
	cpu_file(root, "present", "0-3\n");
	cr_assert(eq(int, bt_kmes_session__sync_cpus(s, root), 2));
	check_statuses(name, (const uint32_t[]){ 0, 0, 0, 0 }, 4);
	cr_assert(eq(u64, tu_ld64(b0, BT_KMES_XOFF_TOPOLOGY), topo + 2));
	tu_emit_sized(s, 3, EV_TYPE, 200);	/* the new ring takes events */

	/* CPU 1 goes offline, CPU 2 is removed. */
	cpu_file(root, "online", "0,3\n");
	cpu_file(root, "present", "0-1,3\n");
	cr_assert(eq(int, bt_kmes_session__sync_cpus(s, root), 2));
	check_statuses(name, (const uint32_t[]){ 0, 1, 2, 0 }, 4);

	/* Nothing changed: no bump. */
	topo = tu_ld64(b0, BT_KMES_XOFF_TOPOLOGY);
	cr_assert(eq(int, bt_kmes_session__sync_cpus(s, root), 0));
	cr_assert(eq(u64, tu_ld64(b0, BT_KMES_XOFF_TOPOLOGY), topo));

	/* No "present" file: the online CPUs are the present ones. */
	cpu_file(root, "present", NULL);
	cpu_file(root, "online", "0-2\n");
	cr_assert(eq(int, bt_kmes_session__sync_cpus(s, root), 3));
	check_statuses(name, (const uint32_t[]){ 0, 0, 0, 2 }, 4);

	/* Holes: CPU 5 online gets slots 4 (removed) and 5. */
	cpu_file(root, "online", "0-2,5\n");
	cr_assert(eq(int, bt_kmes_session__sync_cpus(s, root), 2));
	check_statuses(name, (const uint32_t[]){ 0, 0, 0, 2, 2, 0 }, 6);

	kmes_unmap(b0, cap);
	fake_sysfs_remove(root);
	bt_kmes_session__close(s);
}

Test(kmes_session, sync_cpus_rejects_malformed_cpu_lists)
{
	static const char *const bad[] = {
		"x\n", "0-\n", "-1\n", "3-1\n", "0-1x\n", "0,,1\n", "70000\n",
		"0 1\n",
	};
	const char *name = tu_name("syncbad");
	struct bt_kmes_session *s = tu_create(name, CAP_64K, 2);
	char root[64];
	unsigned char *b0;
	uint64_t cap, topo;

	fake_sysfs(root, sizeof(root));
	cr_assert(eq(int, bt_kmes_session__set_status(s, 0, 0), 0));
	cr_assert(eq(int, bt_kmes_session__set_status(s, 1, 0), 0));
	b0 = tu_map_slot(name, 0, &cap);
	topo = tu_ld64(b0, BT_KMES_XOFF_TOPOLOGY);

	/* No online file at all. */
	cr_assert(eq(int, bt_kmes_session__sync_cpus(s, root), -ENOENT));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cpu_file(root, "online", bad[i]);
		cpu_file(root, "present", "0-1\n");
		cr_assert(eq(int, bt_kmes_session__sync_cpus(s, root),
			     -BT_ERRNO_FORMAT), "online \"%s\"", bad[i]);
		/* A malformed present list is as unreadable. */
		cpu_file(root, "online", "0-1\n");
		cpu_file(root, "present", bad[i]);
		cr_assert(eq(int, bt_kmes_session__sync_cpus(s, root),
			     -BT_ERRNO_FORMAT), "present \"%s\"", bad[i]);
	}
	/* Nothing changed on the way. */
	check_statuses(name, (const uint32_t[]){ 0, 0 }, 2);
	cr_assert(eq(u64, tu_ld64(b0, BT_KMES_XOFF_TOPOLOGY), topo));
	cr_assert(eq(int, bt_kmes_session__sync_cpus(s, NULL), -EINVAL));
	cr_assert(eq(int, bt_kmes_session__sync_cpus(NULL, root), -EINVAL));
	kmes_unmap(b0, cap);
	fake_sysfs_remove(root);
	bt_kmes_session__close(s);
}

/* ---- NUMA placement (App. C §10.1.2) ------------------------------------ */

/* Every ring of @name: the extension's node, checked by move_pages(2). */
static void check_numa(const char *name, uint32_t slots, uint64_t gen)
{
	for (uint32_t i = 0; i < slots; i++) {
		int node = numa_node_of_cpu((int)i);
		unsigned long count = CAP_64K / KMES_PAGE_SIZE + 1;
		void *pages[CAP_64K / KMES_PAGE_SIZE + 1];
		int status[CAP_64K / KMES_PAGE_SIZE + 1];
		unsigned char *b;
		uint64_t cap;

		cr_assert(ge(int, node, 0), "cpu %u has no node", i);
		b = tu_map_slot(name, i, &cap);
		cr_assert(eq(u64, tu_ld64(b, KMES_OFF_GENERATION), gen));
		cr_assert(eq(i32, (int32_t)tu_ld32(b, BT_KMES_XOFF_NUMA_NODE),
			     (int32_t)node), "slot %u", i);
		cr_assert(eq(u32, tu_ld32(b, BT_KMES_XOFF_FLAGS) &
			     BT_KMES_XF_NUMA_VERIFIED, BT_KMES_XF_NUMA_VERIFIED),
			  "slot %u", i);

		/* Independently: where are the pages of our own mapping? */
		pages[0] = b;
		for (unsigned long p = 1; p < count; p++)
			pages[p] = b + KMES_DATA_OFFSET + (p - 1) * KMES_PAGE_SIZE;
		for (unsigned long p = 0; p < count; p++) {
			(void)*(volatile unsigned char *)pages[p];
			status[p] = -12345;
		}
		cr_assert(eq(long, move_pages(0, count, pages, NULL, status, 0),
			     0L), "move_pages: %s", strerror(errno));
		for (unsigned long p = 0; p < count; p++)
			cr_assert(eq(int, status[p], node),
				  "slot %u page %lu: node %d", i, p, status[p]);
		kmes_unmap(b, cap);
	}
}

/* App. C §10.1.2: node-local ring pages. */
Test(kmes_session, ring_pages_sit_on_the_numa_node_of_their_cpu)
{
	const char *name;
	struct bt_kmes_session *s;
	int ncpu;

	if (numa_available() < 0)
		cr_skip_test("libnuma reports no NUMA support on this machine "
			     "(numa_available() < 0)");
	ncpu = numa_num_configured_cpus();
	cr_assert(gt(int, ncpu, 0));
	name = tu_name("numa");
	s = tu_create(name, CAP_64K, (uint32_t)(ncpu < 8 ? ncpu : 8));
	check_numa(name, bt_kmes_session__slots(s), 1);
	/* Rings made by a swap are placed too. */
	cr_assert(eq(int, bt_kmes_session__resize(s, CAP_64K), 0));
	check_numa(name, bt_kmes_session__slots(s), 2);
	bt_kmes_session__close(s);
}

/* The limits given at creation bind every later producer. */
Test(kmes_session, limits_set_at_creation_bind_a_later_producer)
{
	struct bt_kmes_session_opts o = { .sz = sizeof(o), .capacity = CAP_64K,
					  .slots = 1, .max_event_size = 2048,
					  .max_nesting_depth = 4 };
	const char *name = tu_name("limits");
	unsigned char big[3000], deep[] = { 0x91, 0x91, 0x91, 0x91, 0x91, 0x01 };
	struct bt_kmes_session *s;

	bt_kmes_session__destroy(name, true);
	s = bt_kmes_session__create(name, &o);
	cr_assert(ne(ptr, s, NULL), "%s", strerror(errno));
	tu_cleanup_at_exit(name);
	bt_kmes_session__close(s);

	s = bt_kmes_session__open(name, NULL);
	cr_assert(ne(ptr, s, NULL), "%s", strerror(errno));
	tu_payload(big, sizeof(big), 1);
	errno = 0;
	cr_assert(eq(int, kmes_emit(s, 0, "bt.test", 7, big, sizeof(big)), -1));
	cr_assert(eq(int, errno, ENOSPC));
	/* Five nested arrays: depth 5 > 4. */
	errno = 0;
	cr_assert(eq(int, kmes_emit(s, 0, "bt.test", 7, deep, sizeof(deep)), -1));
	cr_assert(eq(int, errno, EINVAL));
	cr_assert(eq(int, kmes_emit(s, 0, "bt.test", 7, deep + 1,
				    sizeof(deep) - 1), 0));
	bt_kmes_session__close(s);
}

/* A per-task session without rings keeps its kind and capacity. */
Test(kmes_session, a_per_task_session_without_rings_keeps_its_settings)
{
	struct bt_kmes_session_opts o = { .sz = sizeof(o), .capacity = 131072,
					  .kind = BT_KMES_RING_TASK,
					  .max_event_size = 4096 };
	const char *name = tu_name("task0");
	struct bt_kmes_session *s;
	unsigned char big[5000];
	int slot;

	bt_kmes_session__destroy(name, true);
	s = bt_kmes_session__create(name, &o);
	cr_assert(ne(ptr, s, NULL), "%s", strerror(errno));
	tu_cleanup_at_exit(name);
	cr_assert(eq(u32, bt_kmes_session__slots(s), 0u));
	bt_kmes_session__close(s);

	s = bt_kmes_session__open(name, NULL);
	cr_assert(ne(ptr, s, NULL), "%s", strerror(errno));
	cr_assert(eq(u32, bt_kmes_session__kind(s), BT_KMES_RING_TASK));
	cr_assert(eq(u64, bt_kmes_session__capacity(s), 131072ull));
	slot = bt_kmes_session__add_slot(s, 4242);
	cr_assert(eq(int, slot, 0));
	tu_payload(big, sizeof(big), 1);
	errno = 0;
	cr_assert(eq(int, kmes_emit(s, 0, "bt.test", 7, big, sizeof(big)), -1));
	cr_assert(eq(int, errno, ENOSPC));	/* the stored 4096 limit */
	bt_kmes_session__close(s);
}

/* The config file is input like any other: garbage is refused. */
Test(kmes_session, a_malformed_config_file_is_eproto_and_named)
{
	const char *name = tu_name("badcfg");
	struct bt_kmes_session *s = tu_create(name, 65536, 1);
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/config", bt_kmes_session__path(s));
	bt_kmes_session__close(s);
	fd = open(path, O_WRONLY | O_TRUNC);
	cr_assert(ge(int, fd, 0));
	cr_assert(eq(int, (int)write(fd, "btrail-kmes-session 1\nkind 9\n", 29),
		     29));
	close(fd);
	tu_log_capture();
	errno = 0;
	cr_assert(eq(ptr, bt_kmes_session__open(name, NULL), NULL));
	cr_assert(eq(int, errno, EPROTO));
	cr_assert(strstr(tu_log_text(), "config") != NULL, "%s", tu_log_text());
}
