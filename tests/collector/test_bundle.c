// SPDX-License-Identifier: BSD-3-Clause
/*
 * Bundles: KMES sessions holding an event of every bt.* type (payloads
 * from bt_event_encode) are written little- and big-endian, read back
 * with our reader field by field, and read by the real babeltrace2; a
 * session whose producer was killed with SIGKILL mid-emit is recovered by
 * `btrail recover`; malformed bundles (every truncation, byte flips, bad
 * magic and sizes, garbage metadata, no btrail.json) are refused with the
 * file and offset, never a crash; `btrail info` prints the counts.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include <btrail/bundle.h>
#include <btrail/errno.h>
#include <btrail/events.h>
#include <btrail/kmes.h>

#include "common/bytes.h"
#include "helpers/testutil.h"

#define BABELTRACE	"/usr/bin/babeltrace2"
#define CAP		(256u * 1024u)
#define RAW_TYPE	"x.custom"
#define MAX_EV		64

/* One emitted event as the test remembers it. */
struct sent {
	uint32_t slot;
	uint16_t id;		/* type id or BT_BUNDLE_EVID_RAW */
	const char *type;
	struct bt_event_value v[BT_BUNDLE_MAX_FIELDS];
	unsigned char payload[4096];
	size_t plen;
	unsigned char store[2048];	/* STR/BYTES/RECS values */
};

static struct sent sent[MAX_EV];
static unsigned nsent;
static char tmpdir[256];

static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *w)
{
	(void)sb;
	(void)f;
	(void)w;
	remove(p);
	return 0;
}

static void cleanup(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *tmp_path(const char *name)
{
	static char buf[8][PATH_MAX];
	static unsigned n;
	char *p = buf[n++ % 8];

	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/bt-bundle-test-XXXXXX");
		cr_assert(ne(ptr, mkdtemp(tmpdir), NULL));
		atexit(cleanup);
	}
	snprintf(p, PATH_MAX, "%s/%s", tmpdir, name);
	return p;
}

/* Deterministic values for every field of @t; branch/comm are known. */
static void fill(struct sent *s, const struct bt_event_type *t, unsigned k)
{
	size_t used = 0;

	for (uint32_t i = 0; i < t->nfields; i++) {
		const struct bt_event_field *f = &t->fields[i];
		struct bt_event_value *v = &s->v[i];
		char *str = (char *)s->store + used;

		switch (f->kind) {
		case BT_FK_U64:
			v->u = f->flags & BT_EF_ADDR ? 0x401000u + 16 * i + k :
			       0xfedcba9876543210ull - i - k;
			break;
		case BT_FK_I64:
			v->i = -1000000000000ll - i;
			break;
		case BT_FK_U32:
			v->u = 0xfffffff0u + i;
			break;
		case BT_FK_I32:
			v->i = -(int64_t)i - 3 - k;
			break;
		case BT_FK_BOOL:
			v->u = (i + k) & 1;
			break;
		case BT_FK_STR:
			if (!strcmp(f->name, "comm"))
				strcpy(str, "hello");
			else if (t->id == BT_EVID_MMAP)
				strcpy(str, "/usr/bin/true");
			else if (t->id == BT_EVID_TRIGGER)
				strcpy(str, "signal");
			else
				snprintf(str, 64, "%s-%s-%u \xc3\xa9", t->name,
					 f->name, k);
			v->p = str;
			v->len = strlen(str);
			used += v->len + 1;
			break;
		case BT_FK_BYTES:
			v->len = 5 + i;
			for (size_t b = 0; b < v->len; b++)
				s->store[used + b] =
					(unsigned char)(b * 37 + k);
			v->p = s->store + used;
			used += v->len;
			break;
		case BT_FK_RECS: {
			size_t nrec = t->id == BT_EVID_TRIGGER ? 1 : 3;

			v->len = nrec * f->rec_size;
			for (size_t r = 0; r < nrec; r++)
				for (uint32_t x = 0; x < f->rec_nfields; x++)
					bt_put_le64(s->store + used +
						    r * f->rec_size + 8 * x,
						    0x401136u + 0x100 * r +
						    x + k);
			v->p = s->store + used;
			used += v->len;
			break;
		}
		}
	}
	cr_assert(le(sz, used, sizeof(s->store)));
}

static void emit(struct bt_kmes_session *ks, uint32_t slot, const char *type,
		 const void *p, size_t n)
{
	cr_assert(eq(int, kmes_emit(ks, slot, type, (uint16_t)strlen(type), p,
				    (uint32_t)n), 0), "emit %s: %s", type,
		  strerror(errno));
}

/* Every bt.* type on slot 0, twice over two slots, plus raw ones. */
static const char *make_session(void)
{
	const char *name = tu_name("bundle");
	struct bt_kmes_session *ks = tu_create(name, CAP, 2);
	size_t ntypes;
	const struct bt_event_type *types = bt_event_types(&ntypes);
	static const unsigned char fixint = 0x2a;
	/* bt.comm with a field missing: decodes badly, is kept raw. */
	static const unsigned char bad_comm[] = { 0x81, 0xa3, 'p', 'i', 'd',
						  0x01 };

	nsent = 0;
	for (unsigned k = 0; k < 2; k++) {
		for (size_t i = 0; i < ntypes; i++) {
			struct sent *s = &sent[nsent++];
			long n;

			memset(s, 0, sizeof(*s));
			s->slot = k;
			s->id = (uint16_t)types[i].id;
			s->type = types[i].name;
			fill(s, &types[i], k);
			n = bt_event_encode(&types[i], s->v, s->payload,
					    sizeof(s->payload));
			cr_assert(gt(long, n, 0), "encode %s", s->type);
			s->plen = (size_t)n;
			emit(ks, k, s->type, s->payload, s->plen);
		}
	}
	sent[nsent] = (struct sent){ .slot = 1, .id = BT_BUNDLE_EVID_RAW,
				     .type = RAW_TYPE, .plen = 1 };
	sent[nsent].payload[0] = fixint;
	emit(ks, 1, RAW_TYPE, &fixint, 1);
	nsent++;
	sent[nsent] = (struct sent){ .slot = 0, .id = BT_BUNDLE_EVID_RAW,
				     .type = BT_EV_COMM,
				     .plen = sizeof(bad_comm) };
	memcpy(sent[nsent].payload, bad_comm, sizeof(bad_comm));
	emit(ks, 0, BT_EV_COMM, bad_comm, sizeof(bad_comm));
	nsent++;
	bt_kmes_session__close(ks);
	return name;
}

static void check_value(const struct bt_event_field *f,
			const struct bt_event_value *a,
			const struct bt_event_value *b, const char *type)
{
	switch (f->kind) {
	case BT_FK_U64:
	case BT_FK_U32:
	case BT_FK_BOOL:
		cr_assert(eq(u64, a->u, b->u), "%s.%s", type, f->name);
		break;
	case BT_FK_I64:
	case BT_FK_I32:
		cr_assert(eq(i64, a->i, b->i), "%s.%s", type, f->name);
		break;
	default:
		cr_assert(eq(sz, a->len, b->len), "%s.%s", type, f->name);
		cr_assert(eq(int, memcmp(a->p, b->p, a->len), 0), "%s.%s",
			  type, f->name);
		break;
	}
}

/* Read @dir with our reader and compare with sent[]. */
static void check_bundle(const char *dir, bool be)
{
	struct bt_bundle *b;
	unsigned seen = 0;

	cr_assert(eq(int, bt_bundle__open(dir, &b), 0));
	cr_assert(eq(int, bt_bundle__big_endian(b), be));
	cr_assert(eq(u32, bt_bundle__streams(b), 2));
	for (uint32_t i = 0; i < 2; i++) {
		struct bt_bundle_stream_info si;
		struct bt_bundle_event ev;
		uint64_t seq = 0;
		int r;

		cr_assert(eq(int, bt_bundle__stream_info(b, i, &si), 0));
		cr_assert(eq(u32, si.slot, i));
		for (unsigned k = 0; k < nsent; k++) {
			const struct sent *s = &sent[k];

			if (s->slot != i)
				continue;
			r = bt_bundle__next(b, i, &ev);
			cr_assert(eq(int, r, 1), "stream %u event %u", i, k);
			cr_assert(eq(u64, ev.sequence, ++seq));
			cr_assert(eq(u64, ev.gap, 0));
			cr_assert(eq(u16, ev.id, s->id));
			cr_assert(eq(str, (char *)ev.type_name,
				     (char *)s->type));
			if (s->id == BT_BUNDLE_EVID_RAW) {
				cr_assert(eq(sz, ev.raw_len, s->plen));
				cr_assert(eq(int, memcmp(ev.raw, s->payload,
							 s->plen), 0));
				seen++;
				continue;
			}
			for (uint32_t f = 0; f < ev.type->nfields; f++)
				check_value(&ev.type->fields[f], &ev.v[f],
					    &s->v[f], s->type);
			seen++;
		}
		cr_assert(eq(int, bt_bundle__next(b, i, &ev), 0));
	}
	cr_assert(eq(u32, seen, nsent));
	bt_bundle__close(b);
}

static bool have_babeltrace(void)
{
	return access(BABELTRACE, X_OK) == 0;
}

/* babeltrace2 exits 0 and prints the typed fields. */
static void check_babeltrace(const char *dir)
{
	char *argv[] = { BABELTRACE, (char *)dir, NULL };
	char *out = NULL, *err = NULL;
	int st = tu_run(argv, &out, &err);

	cr_assert(eq(int, st, 0), "babeltrace2 %s: %s", dir, err);
	cr_assert(ne(ptr, strstr(out, "bt.branch"), NULL));
	/* A branch address is an integer, shown in hex. */
	cr_assert(ne(ptr, strstr(out, "from = 0x401136"), NULL), "%s", out);
	cr_assert(ne(ptr, strstr(out, "comm = \"hello\""), NULL));
	cr_assert(ne(ptr, strstr(out, "file = \"/usr/bin/true\""), NULL));
	cr_assert(ne(ptr, strstr(out, "kmes.raw"), NULL));
	cr_assert(ne(ptr, strstr(out, "type = \"x.custom\""), NULL));
	cr_assert(ne(ptr, strstr(out, "cpu = -3"), NULL));
	/* The KMES sequence is in the event context, where readers see it. */
	cr_assert(ne(ptr, strstr(out, "seq = 15,"), NULL), "%s", out);
	cr_assert(eq(ptr, strstr(err, "ignoring"), NULL), "%s", err);
	free(out);
	free(err);
}

TestSuite(bundle, .timeout = 120);

Test(bundle, roundtrip_le)
{
	const char *name = make_session();
	const char *dir = tmp_path("le");
	struct bt_bundle_write_opts o = { .sz = sizeof(o) };

	cr_assert(eq(int, bt_bundle_write(name, dir, &o), 0));
	cr_assert(eq(int, bt_bundle_write(name, dir, &o), -EEXIST));
	check_bundle(dir, false);
	if (!have_babeltrace())
		cr_skip("babeltrace2 is not installed (" BABELTRACE ")");
	check_babeltrace(dir);
}

Test(bundle, roundtrip_be)
{
	const char *name = make_session();
	const char *dir = tmp_path("be");
	struct bt_bundle_write_opts o = { .sz = sizeof(o), .big_endian = true };
	unsigned char magic[4];
	char p[PATH_MAX];
	int fd;

	cr_assert(eq(int, bt_bundle_write(name, dir, &o), 0));
	snprintf(p, sizeof(p), "%s/ctf/stream_0", dir);
	fd = open(p, O_RDONLY);
	cr_assert(ge(int, fd, 0));
	cr_assert(eq(long, (long)read(fd, magic, 4), 4));
	close(fd);
	cr_assert(eq(u8, magic[0], 0xC1));
	cr_assert(eq(u8, magic[1], 0xFC));	/* big-endian 0xC1FC1FC1 */
	check_bundle(dir, true);
	if (!have_babeltrace())
		cr_skip("babeltrace2 is not installed (" BABELTRACE ")");
	check_babeltrace(dir);
}

Test(bundle, no_session)
{
	cr_assert(eq(int, bt_bundle_write(tu_name("nosuch"), tmp_path("x"),
					  NULL), -ENOENT));
	cr_assert(eq(int, access(tmp_path("x"), F_OK), -1));
}

Test(bundle, json_and_images)
{
	const char *name = make_session();
	const char *dir = tmp_path("img");
	struct bt_bundle_write_opts o = { .sz = sizeof(o),
					  .with_binaries = true };
	json_object *j, *imgs, *im, *v, *t;
	struct stat a, b;
	char p[PATH_MAX];

	cr_assert(eq(int, bt_bundle_write(name, dir, &o), 0));
	snprintf(p, sizeof(p), "%s/btrail.json", dir);
	j = json_object_from_file(p);
	cr_assert(ne(ptr, j, NULL));
	cr_assert(json_object_object_get_ex(j, "images", &imgs));
	cr_assert(eq(sz, json_object_array_length(imgs), 1));
	im = json_object_array_get_idx(imgs, 0);
	cr_assert(json_object_object_get_ex(im, "build_id", &v));
	/* /usr/bin/true has a GNU build-id note: 20 bytes of SHA-1. */
	cr_assert(eq(sz, strlen(json_object_get_string(v)), 40));
	cr_assert(json_object_object_get_ex(im, "copy", &v));
	snprintf(p, sizeof(p), "%s/%s", dir, json_object_get_string(v));
	cr_assert(eq(int, stat(p, &a), 0));
	cr_assert(eq(int, stat("/usr/bin/true", &b), 0));
	cr_assert(eq(i64, (int64_t)a.st_size, (int64_t)b.st_size));
	cr_assert(json_object_object_get_ex(j, "trigger", &t));
	/* The trigger of slot 0 (k 0) or slot 1 (k 1), whole. */
	cr_assert(json_object_object_get_ex(t, "signo", &v));
	{
		int k = -7 - json_object_get_int(v);
		char rip[32];

		cr_assert(k == 0 || k == 1, "signo %d", json_object_get_int(v));
		snprintf(rip, sizeof(rip), "0x%x", 0x401146 + k);
		cr_assert(json_object_object_get_ex(t, "registers", &v));
		cr_assert(json_object_object_get_ex(v, "rip", &v));
		cr_assert(eq(str, (char *)json_object_get_string(v), rip));
	}
	cr_assert(json_object_object_get_ex(j, "clock", &t));
	cr_assert(json_object_object_get_ex(t, "time_mult", &v));
	cr_assert(eq(u64, json_object_get_uint64(v), 0xfffffff3u));
	cr_assert(json_object_object_get_ex(j, "rings", &v));
	cr_assert(eq(sz, json_object_array_length(v), 2));
	json_object_put(j);
}

/* ---- Recovery after kill -9 -------------------------------------------- */

Test(bundle, recover_after_sigkill)
{
	const char *name = tu_name("kill9");
	struct bt_kmes_session *ks = tu_create(name, 65536, 1);
	const char *dir = tmp_path("rec");
	const char *bin = tu_btrail_bin();
	struct bt_bundle_event ev;
	struct bt_bundle *b;
	unsigned char *map;
	uint64_t last, lost, n = 0, first = 0, prev = 0;
	int pfd[2], st;
	pid_t pid;
	char c;

	if (!bin)
		cr_skip("BTRAIL_BIN is not set");
	bt_kmes_session__close(ks);
	cr_assert(eq(int, pipe(pfd), 0));
	pid = fork();
	cr_assert(ge(int, pid, 0));
	if (pid == 0) {
		const struct bt_event_type *t =
			bt_event_type_find(BT_EV_BRANCH, strlen(BT_EV_BRANCH));
		struct bt_kmes_session *p = bt_kmes_session__open(name, NULL);
		struct sent s;
		long len;

		if (!p)
			_exit(98);
		close(pfd[0]);
		for (uint64_t i = 0;; i++) {
			memset(&s, 0, sizeof(s));
			fill(&s, t, (unsigned)i);
			len = bt_event_encode(t, s.v, s.payload,
					      sizeof(s.payload));
			if (len < 0 || kmes_emit(p, 0, BT_EV_BRANCH, 9,
						 s.payload, (uint32_t)len))
				_exit(97);
			if (i == 3000)
				tu_write_full(pfd[1], "x", 1);
		}
	}
	close(pfd[1]);
	tu_read_full(pfd[0], &c, 1);
	close(pfd[0]);
	kill(pid, SIGKILL);
	cr_assert(eq(int, waitpid(pid, &st, 0), pid));
	cr_assert(eq(int, WIFSIGNALED(st) ? WTERMSIG(st) : 0, SIGKILL));

	{
		char *argv[] = { (char *)bin, "recover", (char *)name, "-o",
				 (char *)dir, NULL };
		char *out = NULL, *err = NULL;

		cr_assert(eq(int, tu_run(argv, &out, &err), 0), "%s", err);
		free(out);
		free(err);
	}
	map = tu_map_slot(name, 0, NULL);
	last = tu_ld64(map, BT_KMES_XOFF_LAST_SEQ);
	lost = tu_ld64(map, BT_KMES_XOFF_LOST);
	cr_assert(gt(u64, lost, 0));	/* the ring wrapped */

	cr_assert(eq(int, bt_bundle__open(dir, &b), 0));
	while (bt_bundle__next(b, 0, &ev) == 1) {
		if (!n)
			first = ev.sequence;
		else
			cr_assert(eq(u64, ev.gap, 0), "hole at %llu",
				  (unsigned long long)ev.sequence);
		cr_assert(eq(u16, ev.id, BT_EVID_BRANCH));
		prev = ev.sequence;
		n++;
	}
	cr_assert(gt(u64, n, 0));
	/* Every committed event: nothing before first was kept, none after. */
	cr_assert(eq(u64, first - 1, lost), "first %llu lost %llu",
		  (unsigned long long)first, (unsigned long long)lost);
	/*
	 * The last sequence is spent just before the commit that publishes
	 * it, so a kill between the two leaves it one ahead.
	 */
	cr_assert(le(u64, last - prev, 1));
	cr_assert(eq(u64, n, prev - lost));
	cr_assert(ge(u64, n + lost + 1, last));
	bt_bundle__close(b);
}

/* ---- Malformed bundles ------------------------------------------------- */

static void copy_bundle(const char *from, const char *to)
{
	char cmd[3 * PATH_MAX];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s'", to, from,
		 to);
	cr_assert(eq(int, system(cmd), 0));
}

/* Open and read every event; the first error, or 0. */
static int read_all(const char *dir)
{
	struct bt_bundle_event ev;
	struct bt_bundle *b;
	int err = bt_bundle__open(dir, &b);

	if (err)
		return err;
	for (uint32_t i = 0; i < bt_bundle__streams(b) && !err; i++) {
		int r;

		while ((r = bt_bundle__next(b, i, &ev)) == 1)
			;
		err = r;
	}
	bt_bundle__close(b);
	return err;
}

static const char *small_bundle(bool be)
{
	const char *name = make_session();
	const char *dir = tmp_path(be ? "small-be" : "small-le");
	struct bt_bundle_write_opts o = { .sz = sizeof(o), .big_endian = be };

	if (access(dir, F_OK))
		cr_assert(eq(int, bt_bundle_write(name, dir, &o), 0));
	cr_assert(eq(int, read_all(dir), 0));
	return dir;
}

static void write_at(const char *path, off_t off, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY);

	cr_assert(ge(int, fd, 0));
	cr_assert(eq(long, (long)pwrite(fd, p, n, off), (long)n));
	close(fd);
}

static void expect_refused(const char *dir, const char *file, const char *what)
{
	int err;

	tu_log_clear();
	err = read_all(dir);
	cr_assert(eq(int, err, -BT_ERRNO_FORMAT), "%s: got %d", what, err);
	cr_assert(ne(ptr, strstr(tu_log_text(), file), NULL), "%s: %s", what,
		  tu_log_text());
	cr_assert(ne(ptr, strstr(tu_log_text(), "offset"), NULL), "%s: %s",
		  what, tu_log_text());
}

Test(bundle, truncated_at_every_offset)
{
	for (int be = 0; be < 2; be++) {
		const char *src = small_bundle(be);
		const char *dir = tmp_path("trunc");
		char path[PATH_MAX];
		struct stat sb;

		copy_bundle(src, dir);
		snprintf(path, sizeof(path), "%s/ctf/stream_0", dir);
		cr_assert(eq(int, stat(path, &sb), 0));
		tu_log_capture();
		/* One packet: every shorter length is a truncation. */
		for (off_t k = sb.st_size - 1; k >= 0; k--) {
			cr_assert(eq(int, truncate(path, k), 0));
			expect_refused(dir, "stream_0", "truncated");
		}
	}
}

/* metadata and btrail.json cut anywhere before their last newline */
Test(bundle, truncated_metadata_and_json)
{
	static const char *const files[] = { "ctf/metadata", "btrail.json" };
	const char *src = small_bundle(false);
	const char *dir = tmp_path("trunc-meta");

	tu_log_capture();
	for (int f = 0; f < 2; f++) {
		char path[PATH_MAX];
		struct stat sb;

		copy_bundle(src, dir);
		snprintf(path, sizeof(path), "%s/%s", dir, files[f]);
		cr_assert(eq(int, stat(path, &sb), 0));
		for (off_t k = sb.st_size - 2; k >= 0; k--) {
			cr_assert(eq(int, truncate(path, k), 0));
			expect_refused(dir, files[f] + (f ? 0 : 4), files[f]);
		}
	}
}

Test(bundle, byte_flips_never_crash)
{
	const char *src = small_bundle(false);
	const char *dir = tmp_path("flip");
	char path[PATH_MAX];
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	struct stat sb;
	unsigned refused = 0;

	copy_bundle(src, dir);
	snprintf(path, sizeof(path), "%s/ctf/stream_0", dir);
	cr_assert(eq(int, stat(path, &sb), 0));
	tu_log_capture();
	for (int i = 0; i < 3000; i++) {
		off_t off = (off_t)(tu_xorshift(&rng) % (uint64_t)sb.st_size);
		unsigned char old, x;
		int fd = open(path, O_RDWR), err;

		cr_assert(ge(int, fd, 0));
		cr_assert(eq(long, (long)pread(fd, &old, 1, off), 1));
		x = old ^ (unsigned char)(1u << (tu_xorshift(&rng) % 8));
		cr_assert(eq(long, (long)pwrite(fd, &x, 1, off), 1));
		err = read_all(dir);
		cr_assert(err == 0 || err == -BT_ERRNO_FORMAT, "err %d", err);
		refused += err != 0;
		cr_assert(eq(long, (long)pwrite(fd, &old, 1, off), 1));
		close(fd);
	}
	/* Flips in the header, sizes and lengths are caught. */
	cr_assert(gt(u32, refused, 100));
}

Test(bundle, bad_magic_sizes_metadata_json)
{
	const char *src = small_bundle(false);
	const char *dir = tmp_path("bad");
	char path[PATH_MAX];
	unsigned char v[8];

	tu_log_capture();
	copy_bundle(src, dir);
	snprintf(path, sizeof(path), "%s/ctf/stream_1", dir);
	write_at(path, 0, "\0\0\0\0", 4);
	expect_refused(dir, "stream_1", "magic");
	cr_assert(ne(ptr, strstr(tu_log_text(), "magic"), NULL));

	/* packet_size past the end of the file */
	copy_bundle(src, dir);
	bt_put_le64(v, 1ull << 40);
	write_at(path, BT_BUNDLE_PKT_HEADER + 24, v, 8);
	expect_refused(dir, "stream_1", "packet_size");

	/* content_size not a multiple of 8 */
	copy_bundle(src, dir);
	bt_put_le64(v, 8 * BT_BUNDLE_PKT_PROLOGUE + 3);
	write_at(path, BT_BUNDLE_PKT_HEADER + 16, v, 8);
	expect_refused(dir, "stream_1", "content_size");

	/* an event id nobody defined */
	copy_bundle(src, dir);
	bt_put_le16(v, 777);
	write_at(path, BT_BUNDLE_PKT_PROLOGUE, v, 2);
	expect_refused(dir, "stream_1", "event id");
	cr_assert(ne(ptr, strstr(tu_log_text(), "unknown event id 777"), NULL));

	/* garbage metadata */
	copy_bundle(src, dir);
	snprintf(path, sizeof(path), "%s/ctf/metadata", dir);
	cr_assert(eq(int, truncate(path, 0), 0));
	write_at(path, 0, "\x7f" "ELF garbage\xff\xfe", 14);
	expect_refused(dir, "metadata", "metadata");

	/* metadata of another byte order word */
	copy_bundle(src, dir);
	{
		FILE *f = fopen(path, "r+");
		char buf[65536];
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		char *p;

		buf[n] = 0;
		p = strstr(buf, "byte_order = le;");
		cr_assert(ne(ptr, p, NULL));
		memcpy(p + 13, "xx", 2);
		rewind(f);
		fwrite(buf, 1, n, f);
		fclose(f);
	}
	expect_refused(dir, "metadata", "byte_order");

	/* btrail.json missing, then not JSON */
	copy_bundle(src, dir);
	snprintf(path, sizeof(path), "%s/btrail.json", dir);
	cr_assert(eq(int, unlink(path), 0));
	expect_refused(dir, "btrail.json", "missing json");
	{
		int fd = open(path, O_WRONLY | O_CREAT, 0644);

		cr_assert(eq(long, (long)write(fd, "{\"format\": [1,", 14),
			     14));
		close(fd);
	}
	expect_refused(dir, "btrail.json", "bad json");
}

/* ---- The CLI ----------------------------------------------------------- */

Test(bundle, info_prints_counts)
{
	const char *src = small_bundle(true);
	const char *bin = tu_btrail_bin();
	char *argv[] = { (char *)bin, "info", (char *)src, NULL };
	char *jargv[] = { (char *)bin, "info", "--json", (char *)src, NULL };
	char *out = NULL, *err = NULL;
	json_object *j, *v;

	if (!bin)
		cr_skip("BTRAIL_BIN is not set");
	cr_assert(eq(int, tu_run(argv, &out, &err), 0), "%s", err);
	/* 14 typed + bad bt.comm on slot 0; 14 + x.custom on slot 1 */
	cr_assert(ne(ptr, strstr(out, "streams:   2, 30 events"), NULL), "%s",
		  out);
	cr_assert(ne(ptr, strstr(out, "stream_0  cpu 0  events 15"), NULL),
		  "%s", out);
	cr_assert(ne(ptr, strstr(out, "kmes.raw     1"), NULL), "%s", out);
	cr_assert(ne(ptr, strstr(out, "trigger:   signal"), NULL), "%s", out);
	cr_assert(ne(ptr, strstr(out, "/usr/bin/true  build-id "), NULL));
	free(out);
	free(err);

	cr_assert(eq(int, tu_run(jargv, &out, &err), 0), "%s", err);
	j = json_tokener_parse(out);
	cr_assert(ne(ptr, j, NULL));
	cr_assert(json_object_object_get_ex(j, "events", &v));
	cr_assert(eq(i64, json_object_get_int64(v), 30));
	json_object_put(j);
	free(out);
	free(err);
}

Test(bundle, info_refuses_damaged)
{
	const char *src = small_bundle(false);
	const char *dir = tmp_path("dmg");
	const char *bin = tu_btrail_bin();
	char *argv[] = { (char *)bin, "info", (char *)dir, NULL };
	char *out = NULL, *err = NULL;
	char path[PATH_MAX];
	struct stat sb;

	if (!bin)
		cr_skip("BTRAIL_BIN is not set");
	copy_bundle(src, dir);
	snprintf(path, sizeof(path), "%s/ctf/stream_0", dir);
	cr_assert(eq(int, stat(path, &sb), 0));
	cr_assert(eq(int, truncate(path, sb.st_size - 3), 0));
	cr_assert(eq(int, tu_run(argv, &out, &err), 3));
	cr_assert(ne(ptr, strstr(err, "stream_0: offset"), NULL), "%s", err);
	free(out);
	free(err);
}

/* btrail.json is input too: members of the wrong type are not trusted. */
Test(bundle, info_survives_odd_json)
{
	static const char odd[] =
		"{\"format\": \"btrail-bundle\", \"format_version\": 1,"
		" \"machine\": [1, 2], \"trigger\": \"x\", \"clock\": 3,"
		" \"rings\": 5, \"images\": {\"a\": 1}, \"uuid\": 7}\n";
	const char *src = small_bundle(false);
	const char *dir = tmp_path("odd");
	const char *bin = tu_btrail_bin();
	char *argv[] = { (char *)bin, "info", (char *)dir, NULL };
	char *out = NULL, *err = NULL;
	char path[PATH_MAX];
	FILE *f;

	if (!bin)
		cr_skip("BTRAIL_BIN is not set");
	copy_bundle(src, dir);
	snprintf(path, sizeof(path), "%s/btrail.json", dir);
	f = fopen(path, "w");
	cr_assert(ne(ptr, f, NULL));
	fputs(odd, f);
	fclose(f);
	cr_assert(eq(int, tu_run(argv, &out, &err), 0), "%s", err);
	cr_assert(ne(ptr, strstr(out, "trigger:   none"), NULL), "%s", out);
	cr_assert(ne(ptr, strstr(out, "streams:   2, 30 events"), NULL));
	free(out);
	free(err);
}

/* A per-task ring: its kind and task in the packet context, the CPU of
 * each event in its context, and a spent sequence seen as a gap. */
Test(bundle, per_task_ring_and_gap)
{
	const char *name = tu_name("task");
	struct bt_kmes_session_opts so = { .sz = sizeof(so), .capacity = CAP,
					   .kind = BT_KMES_RING_TASK };
	struct bt_kmes_stamp stamp = { .sz = sizeof(stamp), .has_cpu = true,
				       .cpu_id = 3 };
	const char *dir = tmp_path("task");
	struct bt_bundle_stream_info si;
	struct bt_bundle_event ev;
	struct bt_kmes_session *ks;
	struct bt_bundle *b;
	struct sent s;
	struct kmes_emit_entry e[3];
	const struct bt_event_type *t =
		bt_event_type_find(BT_EV_COMM, strlen(BT_EV_COMM));
	long n;

	ks = bt_kmes_session__create(name, &so);
	cr_assert(ne(ptr, ks, NULL), "%s", strerror(errno));
	tu_cleanup_at_exit(name);
	cr_assert(eq(int, bt_kmes_session__add_slot(ks, 4242), 0));
	memset(&s, 0, sizeof(s));
	fill(&s, t, 0);
	n = bt_event_encode(t, s.v, s.payload, sizeof(s.payload));
	cr_assert(gt(long, n, 0));
	for (int i = 0; i < 3; i++)
		e[i] = (struct kmes_emit_entry){ BT_EV_COMM, 7, s.payload,
						 (uint32_t)n };
	e[1].event_type_len = 0;	/* dropped: its sequence is spent */
	cr_assert(eq(int, bt_kmes_session__emit_trusted(ks, 0, &stamp, e, 3),
		     2));
	bt_kmes_session__close(ks);

	cr_assert(eq(int, bt_bundle_write(name, dir, NULL), 0));
	cr_assert(eq(int, bt_bundle__open(dir, &b), 0));
	cr_assert(eq(int, bt_bundle__stream_info(b, 0, &si), 0));
	cr_assert(eq(u32, si.kind, BT_KMES_RING_TASK));
	cr_assert(eq(u32, si.tid, 4242));
	cr_assert(eq(u32, si.cpu_id, UINT32_MAX));
	cr_assert(eq(int, bt_bundle__next(b, 0, &ev), 1));
	cr_assert(eq(u64, ev.sequence, 1));
	cr_assert(eq(u16, ev.cpu_id, 3));
	cr_assert(eq(u16, ev.id, BT_EVID_COMM));
	cr_assert(eq(int, bt_bundle__next(b, 0, &ev), 1));
	cr_assert(eq(u64, ev.sequence, 3));
	cr_assert(eq(u64, ev.gap, 1));
	cr_assert(eq(int, bt_bundle__next(b, 0, &ev), 0));
	bt_bundle__close(b);
}

/* A stream cut at a packet boundary: btrail.json's packet count tells. */
Test(bundle, cut_at_packet_boundary)
{
	const char *name = tu_name("pkts");
	struct bt_kmes_session *ks = tu_create(name, 1u << 20, 1);
	const struct bt_event_type *t =
		bt_event_type_find(BT_EV_PT, strlen(BT_EV_PT));
	const char *dir = tmp_path("pkts");
	static unsigned char data[2048], payload[4096];
	struct bt_event_value v[BT_PT__N] = { { 0 } };
	unsigned char ctx[8];
	char path[PATH_MAX];
	uint64_t psize;
	long n;
	int fd;

	v[BT_PT_DATA].p = data;
	v[BT_PT_DATA].len = sizeof(data);
	n = bt_event_encode(t, v, payload, sizeof(payload));
	cr_assert(gt(long, n, 0));
	for (int i = 0; i < 300; i++)	/* 600 KiB: three packets */
		emit(ks, 0, BT_EV_PT, payload, (size_t)n);
	bt_kmes_session__close(ks);
	cr_assert(eq(int, bt_bundle_write(name, dir, NULL), 0));
	cr_assert(eq(int, read_all(dir), 0));

	snprintf(path, sizeof(path), "%s/ctf/stream_0", dir);
	fd = open(path, O_RDONLY);
	cr_assert(ge(int, fd, 0));
	cr_assert(eq(long, (long)pread(fd, ctx, 8, BT_BUNDLE_PKT_HEADER + 24),
		     8));
	close(fd);
	psize = bt_le64(ctx) / 8;
	cr_assert(lt(u64, psize, 300ull * (uint64_t)n));
	tu_log_capture();
	cr_assert(eq(int, truncate(path, (off_t)psize), 0));
	expect_refused(dir, "stream_0", "packet boundary");
	cr_assert(ne(ptr, strstr(tu_log_text(), "btrail.json says 3"), NULL),
		  "%s", tu_log_text());
}
