// SPDX-License-Identifier: BSD-3-Clause
/*
 * Ring sessions, producer side: creating and opening a session directory,
 * its slots, the buffer swap of a resize (KMES.md §4.6), and topology
 * (hot-added CPUs, CPU status; App. C §10.1.1).
 */
#include "collector/kmes_session.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>
#include <numa.h>

#include <btrail/errno.h>

#include "collector/kmes_path.h"
#include "common/log.h"
#include "common/opts.h"

/* ---- Slots -------------------------------------------------------------- */

void kmes_slot_fill_template(const struct bt_kmes_session *s,
			     struct kmes_slot *sl)
{
	memset(sl->tmpl, 0, sizeof(sl->tmpl));
	bt_put_le16(sl->tmpl + KMES_EV_CPU_ID, (uint16_t)sl->index);
	sl->tmpl[KMES_EV_ORIGIN] = KMES_ORIGIN_USER;
	memcpy(sl->tmpl + KMES_EV_EFFECTIVE_GUID, s->id.effective_token, 16);
	memcpy(sl->tmpl + KMES_EV_TRUE_GUID, s->id.true_token, 16);
	memcpy(sl->tmpl + KMES_EV_PROCESS_GUID, s->id.process, 16);
}

struct kmes_slot *kmes_session_slot(struct bt_kmes_session *s, uint32_t slot)
{
	/* Acquire: pairs with the release store in __add_slot(). */
	uint32_t n = atomic_load_explicit(&s->nr_slots, memory_order_acquire);

	if (slot == KMES_SLOT_CURRENT) {
		int cpu;

		if (s->kind != BT_KMES_RING_CPU)
			return NULL;
		cpu = sched_getcpu();
		if (cpu < 0)
			return NULL;
		slot = (uint32_t)cpu;
	}
	return slot < n ? s->slots[slot] : NULL;
}

static void slot_free(struct kmes_slot *sl)
{
	if (!sl)
		return;
	if (sl->ring.pp)
		atomic_store_explicit(&sl->ring.pp->x_producer, 0,
				      memory_order_relaxed);
	kmes_ring_close(&sl->ring);
	if (sl->wake_fd >= 0)
		close(sl->wake_fd);
	bt_mpcheck__fini(&sl->mp);
	pthread_mutex_destroy(&sl->lock);
	free(sl);
}

static struct kmes_slot *slot_alloc(const struct bt_kmes_session *s,
				    uint32_t index)
{
	struct kmes_slot *sl = calloc(1, sizeof(*sl));

	if (!sl)
		return NULL;
	sl->index = index;
	sl->wake_fd = -1;
	sl->ring.fd = -1;
	if (bt_mpcheck__init(&sl->mp, s->max_depth) < 0) {
		free(sl);
		return errno = ENOMEM, NULL;
	}
	pthread_mutex_init(&sl->lock, NULL);
	kmes_slot_fill_template(s, sl);
	return sl;
}

static int slot_numa_node(const struct bt_kmes_session *s, uint32_t index)
{
	if (!s->numa || s->kind != BT_KMES_RING_CPU || numa_available() < 0)
		return -1;
	return numa_node_of_cpu((int)index);
}

static void ring_init_for(const struct bt_kmes_session *s,
			  const struct kmes_slot *sl, uint32_t tid,
			  uint32_t status, uint32_t nr_slots,
			  struct kmes_ring_init *in)
{
	memset(in, 0, sizeof(*in));
	in->cpu_id = (uint16_t)sl->index;
	in->generation = 1;
	in->kind = s->kind;
	in->tid = tid;
	in->status = status;
	in->nr_slots = nr_slots;
	in->topology = s->topology;
	in->last_seq = sl->seq;
	in->dropped = sl->dropped;
	in->lost = sl->lost;
	in->wake_ino = sl->wake_ino;
	in->session_id = s->session_id;
	in->numa_node = slot_numa_node(s, sl->index);
	in->max_event_size = s->max_event_size;
	in->max_depth = s->max_depth;
	in->max_emit_rate = s->rate.rate;
	in->config = s->numa ? 0 : BT_KMES_XC_NO_NUMA;
	in->mode = s->ring_mode;
	in->gid = s->gid;
}

/*
 * Create slot @index: its consumer page, then its ring under a temporary
 * name renamed into place, so a consumer never opens a half-made ring.
 */
static struct kmes_slot *slot_create(struct bt_kmes_session *s, uint32_t index,
				     uint32_t tid, uint32_t status,
				     uint32_t nr_slots)
{
	char wake[32], ring[32], tmp[40];
	struct kmes_ring_init in;
	struct kmes_slot *sl;
	int err;

	snprintf(wake, sizeof(wake), KMES_WAKE_FMT, index);
	snprintf(ring, sizeof(ring), KMES_RING_FMT, index);
	snprintf(tmp, sizeof(tmp), "%s" KMES_NEW_SUFFIX, ring);
	sl = slot_alloc(s, index);
	if (!sl)
		return NULL;
	/* Leftovers of a producer that died while adding this slot. */
	unlinkat(s->dirfd, tmp, 0);
	if (faccessat(s->dirfd, ring, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		unlinkat(s->dirfd, wake, 0);

	err = kmes_wake_create(s->dirfd, wake, s->wake_mode, s->gid,
			       &sl->wake_fd, &sl->wake_ino);
	if (err)
		goto out_free;
	ring_init_for(s, sl, tid, status, nr_slots, &in);
	err = kmes_ring_create(s->dirfd, tmp, s->capacity, sl->wake_fd, &in,
			       &sl->ring);
	if (err)
		goto out_unlink_wake;
	if (renameat(s->dirfd, tmp, s->dirfd, ring) < 0) {
		err = -errno;
		unlinkat(s->dirfd, tmp, 0);
		goto out_unlink_wake;
	}
	return sl;

out_unlink_wake:
	unlinkat(s->dirfd, wake, 0);
out_free:
	slot_free(sl);
	errno = -err;
	return NULL;
}

/* Open slot @index of an existing session; -ENOENT when there is none. */
static int slot_open(struct bt_kmes_session *s, uint32_t index,
		     struct kmes_slot **out)
{
	char wake[32], ring[32], path[PATH_MAX + 40];
	struct kmes_producer_page *pp;
	struct kmes_slot *sl;
	struct stat st;
	int err;

	snprintf(wake, sizeof(wake), KMES_WAKE_FMT, index);
	snprintf(ring, sizeof(ring), KMES_RING_FMT, index);
	snprintf(path, sizeof(path), "%s/%s", s->path, ring);
	if (faccessat(s->dirfd, ring, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	sl = slot_alloc(s, index);
	if (!sl)
		return -errno;
	sl->wake_fd = openat(s->dirfd, wake, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (sl->wake_fd < 0 || fstat(sl->wake_fd, &st) < 0) {
		err = -errno;
		pr_warn("kmes: %s/%s: cannot open: %s", s->path, wake,
			strerror(-err));
		/* ring.N without its consumer page: not a session we made. */
		if (err == -ENOENT)
			err = -EPROTO;
		goto out_free;
	}
	if (st.st_size != KMES_PAGE_SIZE) {
		pr_warn("kmes: %s/%s: not a consumer page (size %lld)", s->path,
			wake, (long long)st.st_size);
		err = -EPROTO;
		goto out_free;
	}
	sl->wake_ino = st.st_ino;
	err = kmes_ring_open(s->dirfd, ring, path, sl->wake_fd, &sl->ring);
	if (err)
		goto out_free;
	pp = sl->ring.pp;
	if (pp->cpu_id != (uint16_t)index || pp->x_wake_ino != sl->wake_ino) {
		pr_warn("kmes: %s: cpu_id %u or consumer page does not belong "
			"to slot %u", path, pp->cpu_id, index);
		err = -EPROTO;
		goto out_free;
	}
	sl->seq = atomic_load_explicit(&pp->x_last_seq, memory_order_relaxed);
	sl->dropped = atomic_load_explicit(&pp->x_dropped, memory_order_relaxed);
	sl->lost = atomic_load_explicit(&pp->x_lost, memory_order_relaxed);
	atomic_store_explicit(&pp->x_producer, (uint32_t)getpid(),
			      memory_order_relaxed);
	*out = sl;
	return 0;

out_free:
	slot_free(sl);
	return err;
}

/* ---- Sessions ----------------------------------------------------------- */

static int parse_group(const char *group, gid_t *gid)
{
	struct group gr, *res = NULL;
	char buf[4096], *end;
	unsigned long v;

	errno = 0;
	v = strtoul(group, &end, 10);
	if (*group && !*end && errno == 0 && v < (gid_t)-1) {
		*gid = (gid_t)v;
		return 0;
	}
	if (getgrnam_r(group, &gr, buf, sizeof(buf), &res) != 0 || !res)
		return -ENOENT;
	*gid = res->gr_gid;
	return 0;
}

static struct bt_kmes_session *session_alloc(const struct bt_kmes_session_opts *o)
{
	struct bt_kmes_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->slots = calloc(KMES_MAX_SLOTS, sizeof(*s->slots));
	if (!s->slots) {
		free(s);
		return errno = ENOMEM, NULL;
	}
	s->dirfd = -1;
	s->lockfd = -1;
	s->gid = (gid_t)-1;
	s->ring_mode = 0600;
	s->wake_mode = 0600;
	s->max_event_size = o->max_event_size ? o->max_event_size :
			    KMES_MAX_EVENT_SIZE_DEFAULT;
	s->max_depth = o->max_nesting_depth ? o->max_nesting_depth :
		       KMES_MAX_NESTING_DEFAULT;
	s->numa = !o->no_numa;
	s->rate.rate = o->max_emit_rate;
	s->rate.tokens = (uint64_t)o->max_emit_rate * 1000000000ull;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->rate.lock, NULL);
	kmes_identity_get(&s->id, getpid(), getuid(), geteuid());
	return s;
}

void bt_kmes_session__close(struct bt_kmes_session *s)
{
	uint32_t n;

	if (!s)
		return;
	n = atomic_load_explicit(&s->nr_slots, memory_order_relaxed);
	for (uint32_t i = 0; i < n; i++)
		slot_free(s->slots[i]);
	if (s->lockfd >= 0)
		close(s->lockfd);	/* releases the flock */
	if (s->dirfd >= 0)
		close(s->dirfd);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->rate.lock);
	free(s->slots);
	free(s->path);
	free(s);
}

static int check_limits(const struct bt_kmes_session_opts *o)
{
	if (o->capacity && !kmes_capacity_valid(o->capacity))
		return -EINVAL;
	if (o->kind > BT_KMES_RING_TASK || o->slots > KMES_MAX_SLOTS)
		return -EINVAL;
	if (o->max_event_size && (o->max_event_size < KMES_MAX_EVENT_SIZE_MIN ||
				  o->max_event_size > KMES_MAX_EVENT_SIZE_MAX))
		return -EINVAL;
	if (o->max_nesting_depth &&
	    (o->max_nesting_depth < KMES_MAX_NESTING_MIN ||
	     o->max_nesting_depth > KMES_MAX_NESTING_MAX))
		return -EINVAL;
	if (o->max_emit_rate && (o->max_emit_rate < KMES_EMIT_RATE_MIN ||
				 o->max_emit_rate > KMES_EMIT_RATE_MAX))
		return -EINVAL;
	return 0;
}

/*
 * Take the session's writer lock. The holder's pid is written into the
 * file so that the next one to try can be told who has it.
 */
static void report_holder(int fd, const char *path)
{
	char buf[32];
	ssize_t n;

	n = pread(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	pr_warn("kmes: %s: has a producer already (pid %s)", path,
		buf[0] ? buf : "unknown");
}

static int take_lock(int fd, const char *path)
{
	char buf[32];
	int len;

	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno == EWOULDBLOCK ? -EBUSY : -errno;

		if (err == -EBUSY)
			report_holder(fd, path);
		return err;
	}
	len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)len, 0) != len)
		return -errno;
	return 0;
}

/* Remove the files a session directory may hold, then the directory. */
static int remove_session_dir(const char *path, int dirfd)
{
	DIR *d;
	struct dirent *de;
	int fd, err = 0;

	fd = dup(dirfd);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		const char *n = de->d_name;

		if (!strncmp(n, "ring.", 5) || !strncmp(n, "wake.", 5) ||
		    !strcmp(n, KMES_LOCK_NAME) || !strncmp(n, KMES_CONFIG_NAME,
							   strlen(KMES_CONFIG_NAME))) {
			if (unlinkat(dirfd, n, 0) < 0 && errno != ENOENT)
				err = -errno;
		}
	}
	closedir(d);
	if (rmdir(path) < 0) {
		if (!err)
			err = -errno;
		pr_warn("kmes: cannot remove %s: %s", path, strerror(-err));
	}
	return err;
}

/*
 * Parse a kernel cpu list ("0-3,5,7-8\n") into @set, a bitmap of
 * KMES_MAX_SLOTS bits. Returns the highest CPU + 1, or -BT_ERRNO_FORMAT.
 */
static int parse_cpulist(const char *s, uint8_t *set)
{
	int hi = 0;

	while (*s && *s != '\n') {
		char *end;
		unsigned long a, b;

		if (*s < '0' || *s > '9')
			return -BT_ERRNO_FORMAT;
		a = strtoul(s, &end, 10);
		b = a;
		if (*end == '-') {
			s = end + 1;
			if (*s < '0' || *s > '9')
				return -BT_ERRNO_FORMAT;
			b = strtoul(s, &end, 10);
		}
		if (b < a || b >= KMES_MAX_SLOTS)
			return -BT_ERRNO_FORMAT;
		for (unsigned long c = a; c <= b; c++)
			set[c / 8] |= (uint8_t)(1u << (c % 8));
		if ((int)b + 1 > hi)
			hi = (int)b + 1;
		s = end;
		if (*s == ',')
			s++;
		else if (*s && *s != '\n')
			return -BT_ERRNO_FORMAT;
	}
	return hi;
}

static int read_cpulist(const char *sysfs, const char *file, uint8_t *set)
{
	char path[PATH_MAX], buf[8192];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/devices/system/cpu/%s", sysfs, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	n = parse_cpulist(buf, set);
	if (n < 0)
		pr_warn("kmes: %s: not a cpu list", path);
	return (int)n;
}

#define IN_SET(set, c)	((set)[(c) / 8] & (1u << ((c) % 8)))

/*
 * The online CPUs into @set; *@nr, when 0, becomes one slot per CPU id up
 * to the highest online one (so ids stay slot indexes even with holes).
 */
static int online_cpus(uint8_t *set, uint32_t *nr)
{
	int hi;

	memset(set, 0, KMES_MAX_SLOTS / 8);
	hi = read_cpulist("/sys", "online", set);
	if (hi <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		hi = n > 0 && n < (long)KMES_MAX_SLOTS ? (int)n : 1;
		for (int c = 0; c < hi; c++)
			set[c / 8] |= (uint8_t)(1u << (c % 8));
	}
	if (*nr == 0)
		*nr = (uint32_t)hi;
	return 0;
}

static int config_write(struct bt_kmes_session *s);

struct bt_kmes_session *
bt_kmes_session__create(const char *name,
			const struct bt_kmes_session_opts *opts)
{
	struct bt_kmes_session_opts o;
	struct bt_kmes_session *s;
	char path[PATH_MAX], tmp[PATH_MAX + 64];
	uint8_t onset[KMES_MAX_SLOTS / 8];
	uint32_t nr, online = 0;
	const char *base;
	int err, n;

	err = bt_opts_copy(&o, sizeof(o), opts);
	if (!err)
		err = check_limits(&o);
	if (!err)
		err = kmes_path_for_create(name, o.group != NULL, path,
					   sizeof(path));
	if (err)
		return errno = -err, NULL;
	s = session_alloc(&o);
	if (!s)
		return NULL;
	s->kind = o.kind;
	s->capacity = o.capacity ? o.capacity : KMES_CAPACITY_DEFAULT;
	if (o.group) {
		err = parse_group(o.group, &s->gid);
		if (err)
			goto out_free;
		s->ring_mode = 0640;
		s->wake_mode = 0660;
	}
	if (getrandom(s->session_id, sizeof(s->session_id), 0) !=
	    (ssize_t)sizeof(s->session_id)) {
		err = -errno;
		goto out_free;
	}

	/*
	 * Build the session in a hidden sibling directory and rename it into
	 * place: consumers see a complete session or none.
	 */
	base = strrchr(path, '/');
	n = snprintf(tmp, sizeof(tmp), "%.*s/.%s.new-%d", (int)(base - path),
		     path, base + 1, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		err = -ENAMETOOLONG;
		goto out_free;
	}
	if (mkdir(tmp, o.group ? 0750 : 0700) < 0) {
		err = -errno;
		goto out_free;
	}
	s->dirfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0 ||
	    (o.group && (fchown(s->dirfd, (uid_t)-1, s->gid) < 0 ||
			 fchmod(s->dirfd, 0750) < 0))) {
		err = -errno;
		goto out_rmdir;
	}
	/*
	 * The lock stays 0600 even in a group session: a group member that
	 * could open it could also flock() it and lock the producer out.
	 */
	s->lockfd = openat(s->dirfd, KMES_LOCK_NAME,
			   O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (s->lockfd < 0) {
		err = -errno;
		goto out_rmdir;
	}
	if (fchmod(s->lockfd, 0600) < 0) {
		err = -errno;
		goto out_rmdir;
	}
	err = take_lock(s->lockfd, tmp);
	if (err)
		goto out_rmdir;

	nr = o.slots;
	if (s->kind == BT_KMES_RING_CPU) {
		err = online_cpus(onset, &nr);
		if (err)
			goto out_rmdir;
	}
	for (uint32_t i = 0; i < nr; i++) {
		uint32_t status = BT_KMES_CPU_ONLINE;
		struct kmes_slot *sl;

		if (s->kind == BT_KMES_RING_CPU && !IN_SET(onset, i))
			status = BT_KMES_CPU_OFFLINE;
		online += status == BT_KMES_CPU_ONLINE;
		sl = slot_create(s, i, 0, status, nr);
		if (!sl) {
			err = -errno;
			goto out_rmdir;
		}
		s->slots[i] = sl;
		atomic_store_explicit(&s->nr_slots, i + 1, memory_order_release);
	}
	err = config_write(s);
	if (err)
		goto out_rmdir;
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		err = -errno;
		goto out_rmdir;
	}
	s->path = strdup(path);
	if (!s->path) {
		err = -ENOMEM;
		goto out_close;
	}
	pr_info("kmes: created %s: %u slots (%u online), %" PRIu64
		" bytes each", path, nr, online, s->capacity);
	return s;

out_rmdir:
	for (uint32_t i = 0; i < atomic_load(&s->nr_slots); i++) {
		slot_free(s->slots[i]);
		s->slots[i] = NULL;
	}
	atomic_store(&s->nr_slots, 0);
	if (s->dirfd >= 0)
		remove_session_dir(tmp, s->dirfd);
	else
		rmdir(tmp);
	goto out_free;
out_close:
	/* The session exists now; leave it, as a crash would. */
out_free:
	bt_kmes_session__close(s);
	errno = -err;
	return NULL;
}

/*
 * The session's settings as a small text file, for what the rings cannot
 * carry: a per-task session may have no ring at all, and its kind,
 * capacity and limits must survive until it gets one. Written to a
 * temporary name and renamed, so a reader sees the old file or the new.
 */
static int config_write(struct bt_kmes_session *s)
{
	char buf[512], tmp[32];
	int fd, len, err = 0;

	len = snprintf(buf, sizeof(buf),
		       "btrail-kmes-session 1\n"
		       "kind %u\ncapacity %" PRIu64 "\nmax_event_size %u\n"
		       "max_depth %u\nmax_emit_rate %u\nno_numa %u\n",
		       s->kind, s->capacity, s->max_event_size, s->max_depth,
		       s->rate.rate, s->numa ? 0u : 1u);
	snprintf(tmp, sizeof(tmp), "%s" KMES_NEW_SUFFIX, KMES_CONFIG_NAME);
	unlinkat(s->dirfd, tmp, 0);
	fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    s->ring_mode);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, s->ring_mode) < 0 ||
	    (s->gid != (gid_t)-1 && fchown(fd, (uid_t)-1, s->gid) < 0) ||
	    write(fd, buf, (size_t)len) != len)
		err = errno ? -errno : -EIO;
	close(fd);
	if (!err && renameat(s->dirfd, tmp, s->dirfd, KMES_CONFIG_NAME) < 0)
		err = -errno;
	if (err)
		unlinkat(s->dirfd, tmp, 0);
	return err;
}

/*
 * Read the config file into @o (kind, capacity, limits). Missing: 0 and
 * @o untouched (sessions of earlier versions). Malformed: -EPROTO, logged
 * with the line.
 */
static int config_read(struct bt_kmes_session *s, const char *path,
		       struct bt_kmes_session_opts *o)
{
	char buf[1024], *line, *save = NULL;
	unsigned lineno = 0;
	ssize_t n;
	int fd;

	fd = openat(s->dirfd, KMES_CONFIG_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char key[32];
		unsigned long long v;
		int used = 0;

		lineno++;
		if (lineno == 1) {
			if (strcmp(line, "btrail-kmes-session 1"))
				goto bad;
			continue;
		}
		if (sscanf(line, "%31s %llu%n", key, &v, &used) != 2 ||
		    line[used] != '\0' || v > UINT32_MAX * 65536ull)
			goto bad;
		if (!strcmp(key, "kind"))
			o->kind = (uint32_t)v;
		else if (!strcmp(key, "capacity"))
			o->capacity = v;
		else if (!strcmp(key, "max_event_size"))
			o->max_event_size = (uint32_t)v;
		else if (!strcmp(key, "max_depth"))
			o->max_nesting_depth = (uint32_t)v;
		else if (!strcmp(key, "max_emit_rate"))
			o->max_emit_rate = (uint32_t)v;
		else if (!strcmp(key, "no_numa"))
			o->no_numa = v != 0;
		/* Unknown keys come from later versions: ignore them. */
	}
	if (lineno == 0 || check_limits(o) < 0) {
		lineno = 0;
		goto bad;
	}
	return 0;
bad:
	pr_warn("kmes: %s/%s: line %u: not a valid session config", path,
		KMES_CONFIG_NAME, lineno);
	return -EPROTO;
}

/*
 * The limits the session was created with, from ring 0's extension, for
 * those @o leaves at 0 (so a later producer applies what `kmes create`
 * set). Read before any slot is opened: the slots' validators need them.
 */
static int stored_limits(struct bt_kmes_session *s,
			 const struct bt_kmes_session_opts *o, const char *path)
{
	unsigned char page[KMES_PAGE_SIZE];
	struct bt_kmes_session_opts st = { .sz = sizeof(st) };
	struct stat sb;
	unsigned off;
	int fd;

	fd = openat(s->dirfd, "ring.0", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;		/* no rings yet: only @o counts */
	if (fstat(fd, &sb) < 0 ||
	    pread(fd, page, sizeof(page), 0) != (ssize_t)sizeof(page) ||
	    kmes_page_check(page, (uint64_t)sb.st_size, &off)) {
		close(fd);
		return 0;		/* slot_open() reports it in detail */
	}
	close(fd);
	st.max_event_size = bt_le32(page + BT_KMES_XOFF_MAX_EVENT);
	st.max_nesting_depth = bt_le32(page + BT_KMES_XOFF_MAX_DEPTH);
	st.max_emit_rate = bt_le32(page + BT_KMES_XOFF_MAX_RATE);
	if (check_limits(&st) < 0) {
		pr_warn("kmes: %s/ring.0: offset %d: stored limits out of range",
			path, BT_KMES_XOFF_MAX_EVENT);
		return -EPROTO;
	}
	if (!o->max_event_size && st.max_event_size)
		s->max_event_size = st.max_event_size;
	if (!o->max_nesting_depth && st.max_nesting_depth)
		s->max_depth = st.max_nesting_depth;
	if (!o->max_emit_rate && st.max_emit_rate) {
		s->rate.rate = st.max_emit_rate;
		s->rate.tokens = (uint64_t)st.max_emit_rate * 1000000000ull;
	}
	if (!o->no_numa && (bt_le32(page + BT_KMES_XOFF_CONFIG) &
			    BT_KMES_XC_NO_NUMA))
		s->numa = false;
	return 0;
}

struct bt_kmes_session *
bt_kmes_session__open(const char *name, const struct bt_kmes_session_opts *opts)
{
	struct bt_kmes_session_opts o, cfg = { .sz = sizeof(cfg) };
	struct bt_kmes_session *s;
	char path[PATH_MAX];
	struct stat st;
	int err;

	err = bt_opts_copy(&o, sizeof(o), opts);
	if (!err)
		err = check_limits(&o);
	if (!err)
		err = kmes_path_lookup(name, path, sizeof(path));
	if (err)
		return errno = -err, NULL;
	s = session_alloc(&o);
	if (!s)
		return NULL;
	s->path = strdup(path);
	if (!s->path) {
		err = -ENOMEM;
		goto out_close;
	}
	s->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		err = errno == ENOTDIR ? -ENOENT : -errno;
		goto out_close;
	}
	s->lockfd = openat(s->dirfd, KMES_LOCK_NAME,
			   O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (s->lockfd < 0 || fstat(s->dirfd, &st) < 0) {
		err = errno == ENOENT ? -ENOENT : -errno;
		if (err == -ENOENT)
			pr_warn("kmes: %s: not a ring session (no lock file)",
				path);
		goto out_close;
	}
	err = take_lock(s->lockfd, path);
	if (err)
		goto out_close;
	/* New rings get the modes and group the session was made with. */
	if (st.st_mode & 0050) {
		s->ring_mode = 0640;
		s->wake_mode = 0660;
		s->gid = st.st_gid;
	}
	err = config_read(s, path, &cfg);
	if (err)
		goto out_close;
	if (cfg.capacity) {
		/* Settings for a session whose rings may not exist yet. */
		s->kind = cfg.kind;
		s->capacity = cfg.capacity;
		if (!o.max_event_size && cfg.max_event_size)
			s->max_event_size = cfg.max_event_size;
		if (!o.max_nesting_depth && cfg.max_nesting_depth)
			s->max_depth = cfg.max_nesting_depth;
		if (!o.max_emit_rate && cfg.max_emit_rate) {
			s->rate.rate = cfg.max_emit_rate;
			s->rate.tokens = (uint64_t)cfg.max_emit_rate * 1000000000ull;
		}
		if (!o.no_numa && cfg.no_numa)
			s->numa = false;
	}
	err = stored_limits(s, &o, path);
	if (err)
		goto out_close;

	for (uint32_t i = 0; i < KMES_MAX_SLOTS; i++) {
		struct kmes_slot *sl = NULL;
		struct kmes_producer_page *pp;

		err = slot_open(s, i, &sl);
		if (err == -ENOENT)
			break;
		if (err)
			goto out_close;
		pp = sl->ring.pp;
		if (i == 0) {
			s->kind = pp->x_kind;
			s->capacity = sl->ring.capacity;
			memcpy(s->session_id, pp->x_session_id, 16);
		} else if (sl->ring.capacity != s->capacity) {
			/* A producer died between two swaps of a resize. */
			pr_info("kmes: %s: slot %u has capacity %" PRIu64
				", slot 0 %" PRIu64 "; resize to even them",
				path, i, sl->ring.capacity, s->capacity);
		}
		if (pp->x_topology > s->topology)
			s->topology = pp->x_topology;
		s->slots[i] = sl;
		atomic_store_explicit(&s->nr_slots, i + 1, memory_order_release);
	}
	if (!atomic_load(&s->nr_slots) && !cfg.capacity) {
		/* No rings and no config (an older session): trust @opts. */
		s->kind = o.kind;
		s->capacity = o.capacity ? o.capacity : KMES_CAPACITY_DEFAULT;
	}
	return s;

out_close:
	bt_kmes_session__close(s);
	errno = -err;
	return NULL;
}

int bt_kmes_session__destroy(const char *name, bool force)
{
	char path[PATH_MAX];
	int dirfd, lockfd, err;

	err = kmes_path_lookup(name, path, sizeof(path));
	if (err)
		return err;
	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return errno == ENOTDIR ? -ENOENT : -errno;
	lockfd = openat(dirfd, KMES_LOCK_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (lockfd < 0) {
		err = -errno;
		if (err == -ENOENT)
			pr_warn("kmes: %s: not a ring session (no lock file)",
				path);
		close(dirfd);
		return err == -ENOENT ? -EINVAL : err;
	}
	if (flock(lockfd, LOCK_EX | LOCK_NB) < 0 && !force) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (err == -EBUSY)
			report_holder(lockfd, path);
		goto out;
	}
	err = remove_session_dir(path, dirfd);
out:
	close(lockfd);
	close(dirfd);
	return err;
}

const char *bt_kmes_session__path(const struct bt_kmes_session *s)
{
	return s ? s->path : NULL;
}

uint32_t bt_kmes_session__slots(const struct bt_kmes_session *s)
{
	return s ? atomic_load_explicit(&s->nr_slots, memory_order_acquire) : 0;
}

uint64_t bt_kmes_session__capacity(const struct bt_kmes_session *s)
{
	return s ? s->capacity : 0;
}

uint32_t bt_kmes_session__kind(const struct bt_kmes_session *s)
{
	return s ? s->kind : 0;
}

/* ---- Notices from the ring library (origin class 1) -------------------- */

void kmes_session_notice(struct bt_kmes_session *s, const char *type,
			 const struct kmes_kv *kv, unsigned n)
{
	struct bt_kmes_stamp st = {
		.sz = sizeof(st),
		.origin_class = KMES_ORIGIN_KMES,
	};
	struct kmes_emit_entry e;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	uint32_t nr = atomic_load_explicit(&s->nr_slots, memory_order_relaxed);

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	for (unsigned i = 0; i < n; i++) {
		msgpack_pack_str_with_body(&pk, kv[i].key, strlen(kv[i].key));
		if (kv[i].str)
			msgpack_pack_str_with_body(&pk, kv[i].str,
						   strlen(kv[i].str));
		else
			msgpack_pack_uint64(&pk, kv[i].u);
	}
	e.event_type = type;
	e.event_type_len = (uint16_t)strlen(type);
	e.payload = sb.data;
	e.payload_len = (uint32_t)sb.size;
	for (uint32_t i = 0; i < nr; i++)
		bt_kmes_session__emit_trusted(s, i, &st, &e, 1);
	msgpack_sbuffer_destroy(&sb);
}

/* ---- Topology ----------------------------------------------------------- */

/* Tell every ring's consumers the slot set or a status changed. */
static void topology_bump(struct bt_kmes_session *s)
{
	uint32_t n = atomic_load_explicit(&s->nr_slots, memory_order_relaxed);

	s->topology++;
	for (uint32_t i = 0; i < n; i++) {
		struct kmes_producer_page *pp = s->slots[i]->ring.pp;

		atomic_store_explicit(&pp->x_nr_slots, n, memory_order_relaxed);
		/* Release: a consumer that sees the bump sees the new slot. */
		atomic_store_explicit(&pp->x_topology, s->topology,
				      memory_order_release);
		kmes_ring_wake_all(pp);
	}
}

static int add_slot_locked(struct bt_kmes_session *s, uint32_t tid,
			   uint32_t status)
{
	uint32_t idx = atomic_load_explicit(&s->nr_slots, memory_order_relaxed);
	struct kmes_slot *sl;

	if (idx >= KMES_MAX_SLOTS)
		return -ENOSPC;
	sl = slot_create(s, idx, s->kind == BT_KMES_RING_TASK ? tid : 0,
			 status, idx + 1);
	if (!sl)
		return -errno;
	s->slots[idx] = sl;
	/* Release: pairs with the acquire in kmes_session_slot(). */
	atomic_store_explicit(&s->nr_slots, idx + 1, memory_order_release);
	return (int)idx;
}

int bt_kmes_session__add_slot(struct bt_kmes_session *s, uint32_t tid)
{
	int idx;

	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	idx = add_slot_locked(s, tid, BT_KMES_CPU_ONLINE);
	if (idx >= 0)
		topology_bump(s);
	pthread_mutex_unlock(&s->lock);
	return idx;
}

int bt_kmes_session__set_status(struct bt_kmes_session *s, uint32_t slot,
				uint32_t status)
{
	uint32_t n;

	if (!s || status > BT_KMES_CPU_REMOVED)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	n = atomic_load_explicit(&s->nr_slots, memory_order_relaxed);
	if (slot >= n) {
		pthread_mutex_unlock(&s->lock);
		return -EINVAL;
	}
	atomic_store_explicit(&s->slots[slot]->ring.pp->x_status, status,
			      memory_order_relaxed);
	topology_bump(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int bt_kmes_session__sync_cpus(struct bt_kmes_session *s, const char *sysfs)
{
	uint8_t *online, *present;
	int hi_on, hi_pr, changed = 0, err = 0;
	uint32_t n;

	if (!s || !sysfs || s->kind != BT_KMES_RING_CPU)
		return -EINVAL;
	online = calloc(2, KMES_MAX_SLOTS / 8);
	if (!online)
		return -ENOMEM;
	present = online + KMES_MAX_SLOTS / 8;
	hi_on = read_cpulist(sysfs, "online", online);
	hi_pr = read_cpulist(sysfs, "present", present);
	if (hi_on < 0) {
		free(online);
		return hi_on;
	}
	if (hi_pr < 0 && hi_pr != -ENOENT) {	/* malformed or unreadable */
		free(online);
		return hi_pr;
	}
	if (hi_pr < 0) {		/* no "present": treat online as present */
		memcpy(present, online, KMES_MAX_SLOTS / 8);
		hi_pr = hi_on;
	}

	pthread_mutex_lock(&s->lock);
	n = atomic_load_explicit(&s->nr_slots, memory_order_relaxed);
	for (uint32_t c = 0; c < n; c++) {
		struct kmes_producer_page *pp = s->slots[c]->ring.pp;
		uint32_t want = IN_SET(online, c) ? BT_KMES_CPU_ONLINE :
				IN_SET(present, c) ? BT_KMES_CPU_OFFLINE :
				BT_KMES_CPU_REMOVED;

		if (atomic_load_explicit(&pp->x_status, memory_order_relaxed) !=
		    want) {
			atomic_store_explicit(&pp->x_status, want,
					      memory_order_relaxed);
			changed++;
		}
	}
	/* Hot-added CPUs get rings (and any id below them, offline). */
	for (uint32_t c = n; c < (uint32_t)(hi_on > hi_pr ? hi_on : hi_pr);
	     c++) {
		uint32_t want = IN_SET(online, c) ? BT_KMES_CPU_ONLINE :
				IN_SET(present, c) ? BT_KMES_CPU_OFFLINE :
				BT_KMES_CPU_REMOVED;

		err = add_slot_locked(s, 0, want);
		if (err < 0)
			break;
		err = 0;
		changed++;
	}
	if (changed)
		topology_bump(s);
	pthread_mutex_unlock(&s->lock);
	free(online);
	return err < 0 ? err : changed;
}

/* ---- Resize: the buffer swap of §4.6 ------------------------------------ */

/*
 * Move the surviving events of @sl's ring into @nr (empty, not yet
 * visible) and make @nr the slot's ring. Called with both locks held.
 */
static int swap_ring(struct bt_kmes_session *s, struct kmes_slot *sl,
		     struct kmes_ring *nr, const char *tmp, const char *name)
{
	struct kmes_ring old = sl->ring;
	uint64_t p = old.tail, lost = 0, gen;

	/* Keep the newest suffix that fits (ordinary overwrite semantics). */
	while (old.wp - p > nr->capacity) {
		uint32_t esz = bt_le32(old.data + (p & old.mask));

		if (esz < KMES_HDR_FIXED || esz > old.wp - p) {
			p = old.wp;
			break;
		}
		p += esz;
		lost++;
	}
	memcpy(nr->data, old.data + (p & old.mask), old.wp - p);
	nr->wp = old.wp - p;
	nr->tail = 0;
	sl->lost += lost;
	gen = atomic_load_explicit(&old.pp->generation, memory_order_relaxed);

	/* Fully initialised before anyone can open it (§4.6 step 3). */
	atomic_store_explicit(&nr->pp->generation, gen + 1, memory_order_relaxed);
	atomic_store_explicit(&nr->pp->write_pos, nr->wp, memory_order_relaxed);
	atomic_store_explicit(&nr->pp->tail_pos, 0, memory_order_relaxed);
	atomic_store_explicit(&nr->pp->x_last_seq, sl->seq, memory_order_relaxed);
	atomic_store_explicit(&nr->pp->x_dropped, sl->dropped,
			      memory_order_relaxed);
	atomic_store_explicit(&nr->pp->x_lost, sl->lost, memory_order_relaxed);
	atomic_store_explicit(&nr->pp->x_status,
			      atomic_load(&old.pp->x_status), memory_order_relaxed);
	nr->pp->x_tid = old.pp->x_tid;

	/* Step 4: the new ring takes the name consumers attach by. */
	if (renameat(s->dirfd, tmp, s->dirfd, name) < 0) {
		int err = -errno;

		/* The old ring stays current; its consumers see no change. */
		pr_warn("kmes: %s/%s: cannot swap in the new ring: %s",
			s->path, name, strerror(-err));
		sl->lost -= lost;
		unlinkat(s->dirfd, tmp, 0);
		kmes_ring_close(nr);
		return err;
	}
	sl->ring = *nr;
	/*
	 * Step 5: release, so that a consumer that sees the new generation
	 * also sees the old ring's final write_pos (frozen from here on).
	 */
	atomic_store_explicit(&old.pp->generation, gen + 1, memory_order_release);
	/* Step 6: sleepers on the old ring wake up and see the change. */
	kmes_ring_notify(old.pp, KMES_NEED_WAKE(old.base));
	kmes_ring_close(&old);
	return 0;
}

int bt_kmes_session__resize(struct bt_kmes_session *s, uint64_t capacity)
{
	struct kmes_ring *fresh;
	uint32_t n, made = 0;
	int err = 0;

	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	n = atomic_load_explicit(&s->nr_slots, memory_order_relaxed);
	if (!kmes_capacity_valid(capacity)) {
		const struct kmes_kv kv[] = {
			{ .key = "key", .str = "BufferCapacity" },
			{ .key = "value", .u = capacity },
			{ .key = "kept", .u = s->capacity },
		};

		pr_warn("kmes: %s: capacity %" PRIu64 " is not a power of two "
			"in [64 KiB, 256 MiB]; keeping %" PRIu64, s->path,
			capacity, s->capacity);
		kmes_session_notice(s, "kmes.config.invalid", kv, 3);
		pthread_mutex_unlock(&s->lock);
		return -EINVAL;
	}
	fresh = calloc(n ? n : 1, sizeof(*fresh));
	if (!fresh) {
		pthread_mutex_unlock(&s->lock);
		return -ENOMEM;
	}

	/* Allocate every new ring first: all slots swap, or none. */
	for (; made < n; made++) {
		struct kmes_slot *sl = s->slots[made];
		struct kmes_ring_init in;
		char tmp[40];

		snprintf(tmp, sizeof(tmp), KMES_RING_FMT KMES_NEW_SUFFIX, made);
		unlinkat(s->dirfd, tmp, 0);
		ring_init_for(s, sl, 0, 0, n, &in);
		in.generation = atomic_load(&sl->ring.pp->generation) + 1;
		err = kmes_ring_create(s->dirfd, tmp, capacity, sl->wake_fd, &in,
				       &fresh[made]);
		if (err)
			break;
	}
	if (err) {
		const struct kmes_kv kv[] = {
			{ .key = "requested", .u = capacity },
			{ .key = "kept", .u = s->capacity },
			{ .key = "errno", .u = (uint64_t)-err },
		};

		for (uint32_t i = 0; i < made; i++) {
			char tmp[40];

			snprintf(tmp, sizeof(tmp), KMES_RING_FMT KMES_NEW_SUFFIX,
				 i);
			kmes_ring_close(&fresh[i]);
			unlinkat(s->dirfd, tmp, 0);
		}
		pr_warn("kmes: %s: resize to %" PRIu64 " failed: %s; keeping "
			"%" PRIu64, s->path, capacity, strerror(-err),
			s->capacity);
		kmes_session_notice(s, "kmes.swap.failed", kv, 3);
		goto out;
	}

	for (uint32_t i = 0; i < n; i++) {
		struct kmes_slot *sl = s->slots[i];
		char name[32], tmp[40];

		snprintf(name, sizeof(name), KMES_RING_FMT, i);
		snprintf(tmp, sizeof(tmp), "%s" KMES_NEW_SUFFIX, name);
		pthread_mutex_lock(&sl->lock);
		if (swap_ring(s, sl, &fresh[i], tmp, name) < 0 && !err)
			err = -EIO;
		pthread_mutex_unlock(&sl->lock);
	}
	if (err) {
		/*
		 * A rename failed after others succeeded (it does not, short
		 * of someone tampering with the directory): rings now differ
		 * in capacity; a later resize evens them out.
		 */
		pr_warn("kmes: %s: resize to %" PRIu64 " left some rings at "
			"%" PRIu64, s->path, capacity, s->capacity);
		goto out;
	}
	s->capacity = capacity;
	if (config_write(s) < 0)
		pr_warn("kmes: %s: cannot record the new capacity in %s",
			s->path, KMES_CONFIG_NAME);
	pr_info("kmes: %s: resized to %" PRIu64 " bytes per ring", s->path,
		capacity);
out:
	free(fresh);
	pthread_mutex_unlock(&s->lock);
	return err;
}
