// SPDX-License-Identifier: BSD-3-Clause
/*
 * Malformed input, reader by reader (issue 5): one table of corruptions
 * (truncate at N, flip the byte at N, set the u32 at N, append garbage)
 * of valid files, each row naming what the reader must say. Every row
 * must fail cleanly: the right error, a message naming the file and,
 * where the reader knows it, the offset; never a crash (the suite also
 * runs under ASan + UBSan).
 *
 * Seeds: a bundle written here (one ring, an event of every bt.* type),
 * the real perf.data files of ../shared/testdata/perfdata (rows skipped
 * when absent), the PT seed tests/fuzz/corpus/pt/loop-tnt (libipt's
 * pttc test, trace and code), and a copy of tests/progs/hello for the
 * ELF readers (for the decoder's, in a bundle recorded --with-binaries).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <btrail/bundle.h>
#include <btrail/decoder.h>
#include <btrail/errno.h>
#include <btrail/events.h>
#include <btrail/kmes.h>
#include <btrail/perfdata.h>

#include "collector/bundle_int.h"
#include "ds/elfsym.h"
#include "helpers/testutil.h"

enum op { TRUNC, FLIP, SET32, APPEND };

struct row {
	const char *reader;	/* bundle, perfdata, pt, elfsym, buildid,
				   recon */
	const char *seed;	/* the file (bundle: the file in it) */
	enum op op;
	uint64_t at;		/* offset; TRUNC: new length */
	uint32_t val;		/* SET32 */
	const char *want;	/* in the log (pt: in the listing) */
	bool want_offset;	/* and "offset N" named there */
};

static const struct row rows[] = {
	/* A bundle: its stream, TSDL metadata and btrail.json. */
	{ "bundle", "ctf/stream_0", TRUNC, 0, 0, "stream_0", false },
	{ "bundle", "ctf/stream_0", TRUNC, 50, 0, "stream_0", true },
	{ "bundle", "ctf/stream_0", FLIP, 0, 0, "magic", true },
	{ "bundle", "ctf/stream_0", SET32, 4, 0x12345678, "stream_0", true },
	{ "bundle", "ctf/stream_0", APPEND, 13, 0, "stream_0", true },
	{ "bundle", "ctf/metadata", TRUNC, 10, 0, "metadata", true },
	{ "bundle", "ctf/metadata", FLIP, 0, 0, "metadata", true },
	{ "bundle", "btrail.json", TRUNC, 20, 0, "btrail.json", true },
	{ "bundle", "btrail.json", FLIP, 0, 0, "btrail.json", true },
	/* perf.data, file mode and pipe mode */
	{ "perfdata", "perf.data.intel_pt-4.14", TRUNC, 8, 0, "too short", true },
	{ "perfdata", "perf.data.intel_pt-4.14", FLIP, 0, 0, "magic", true },
	{ "perfdata", "perf.data.intel_pt-4.14", SET32, 16, 0xfffffff0,
	  "attr", true },
	{ "perfdata", "perf.data.intel_pt-4.14", TRUNC, 90000, 0,
	  "perf.data.intel_pt-4.14", true },
	{ "perfdata", "perf.data.intel_pt-4.14", SET32, 40, 0x7fffffff,
	  "perf.data.intel_pt-4.14", true },
	{ "perfdata", "perf.data.piped.intel_pt-4.14", TRUNC, 20, 0,
	  "perf.data.piped.intel_pt-4.14", true },
	{ "perfdata", "perf.data.piped.intel_pt-4.14", SET32, 20, 0x00010000,
	  "perf.data.piped.intel_pt-4.14", true },
	{ "perfdata", "perf.data.piped.intel_pt-4.14", APPEND, 5, 0,
	  "perf.data.piped.intel_pt-4.14", true },
	/* PT: errors are listed, the offset first; decoding goes on. (A
	 * truncated trace is no error: it just ends.) */
	{ "pt", "loop-tnt", SET32, 16, 0xffffffff,
	  "error: expected tracing enabled event", false },
	{ "pt", "loop-tnt", SET32, 26, 0, "sync error: unknown opcode", false },
	{ "pt", "loop-tnt", FLIP, 18, 0, "no memory mapped", false },
	{ "pt", "loop-tnt", FLIP, 27, 0, "error", false },
	/* ELF: the symbol reader and the build-id reader */
	{ "elfsym", "hello", TRUNC, 40, 0, "not an ELF file", false },
	{ "elfsym", "hello", FLIP, 1, 0, "not an ELF file", false },
	{ "elfsym", "hello", SET32, 0x28, 0x7ffffff0, "section headers", true },
	{ "buildid", "hello", TRUNC, 40, 0, NULL, false },
	{ "buildid", "hello", FLIP, 1, 0, NULL, false },
	/* the decoder's ELF loader: a bundle's images/ copy of hello (the
	 * bundle still opens: that code becomes a gap in the flow) */
	{ "recon", "hello", TRUNC, 40, 0, "not a readable ELF file", true },
	{ "recon", "hello", FLIP, 2, 0, "not a readable ELF file", true },
};

static char tmp[64];

static void rm_tmp(void)
{
	char cmd[128];

	if (tmp[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd))
			fprintf(stderr, "cannot remove %s\n", tmp);
	}
}

static const char *tmpdir(void)
{
	if (!tmp[0]) {
		snprintf(tmp, sizeof(tmp), "/tmp/bt-malformed-XXXXXX");
		cr_assert(ne(ptr, mkdtemp(tmp), NULL));
		atexit(rm_tmp);
	}
	return tmp;
}

static void *slurp(const char *path, size_t *len)
{
	struct stat st;
	void *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return NULL;
	cr_assert(eq(int, fstat(fd, &st), 0));
	buf = malloc((size_t)st.st_size + 64);
	cr_assert(ne(ptr, buf, NULL));
	cr_assert(eq(long, (long)read(fd, buf, (size_t)st.st_size),
		     (long)st.st_size));
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void spit(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	cr_assert(ge(int, fd, 0), "%s", path);
	cr_assert(eq(long, (long)write(fd, p, n), (long)n));
	close(fd);
}

/* Apply @r to @buf (*@len bytes, 64 bytes of room after them). */
static void corrupt(const struct row *r, unsigned char *buf, size_t *len)
{
	switch (r->op) {
	case TRUNC:
		cr_assert(le(u64, r->at, *len));
		*len = r->at;
		break;
	case FLIP:
		cr_assert(lt(u64, r->at, *len));
		buf[r->at] ^= 0xff;
		break;
	case SET32:
		cr_assert(le(u64, r->at + 4, *len));
		memcpy(buf + r->at, &r->val, 4);
		break;
	case APPEND:
		cr_assert(le(u64, r->at, 64));
		for (uint64_t i = 0; i < r->at; i++)
			buf[(*len)++] = (unsigned char)(0xa5 ^ i);
		break;
	}
}

/* ---- Seeds ---------------------------------------------------------------- */

/* A bundle of one ring with an event of every bt.* type. */
static const char *seed_bundle(void)
{
	static char dir[128];
	const char *name = tu_name("malformed");
	struct bt_kmes_session *ks;
	size_t n;
	const struct bt_event_type *t = bt_event_types(&n);
	static const unsigned char rec[48] = { 0x10, 0x20, 0x30 };

	if (dir[0])
		return dir;
	ks = tu_create(name, 65536, 1);
	for (size_t i = 0; i < n; i++) {
		struct bt_event_value v[64] = { { 0 } };
		unsigned char buf[1024];
		long len;

		for (uint32_t f = 0; f < t[i].nfields && f < 64; f++) {
			const struct bt_event_field *fd = &t[i].fields[f];

			v[f].u = fd->kind == BT_FK_BOOL ? 1 : 0x1000 + f;
			if (fd->kind == BT_FK_STR) {
				v[f].p = "x";
				v[f].len = 1;
			} else if (fd->kind == BT_FK_RECS &&
				   fd->rec_size <= sizeof(rec)) {
				v[f].p = rec;
				v[f].len = fd->rec_size;
			}
		}
		len = bt_event_encode(&t[i], v, buf, sizeof(buf));
		cr_assert(gt(long, len, 0), "%s", t[i].name);
		cr_assert(eq(int, kmes_emit(ks, 0, t[i].name,
					    (uint16_t)strlen(t[i].name), buf,
					    (uint32_t)len), 0));
	}
	bt_kmes_session__close(ks);
	snprintf(dir, sizeof(dir), "%s/seed", tmpdir());
	cr_assert(eq(int, bt_bundle_write(name, dir, NULL), 0));
	return dir;
}

static const char *shared_file(const char *name)
{
	static char path[PATH_MAX];
	const char *src = getenv("BTRAIL_SRCDIR");

	if (!src)
		cr_skip_test("BTRAIL_SRCDIR is not set (make check sets it)");
	snprintf(path, sizeof(path), "%s/../shared/testdata/perfdata/%s",
		 src, name);
	if (access(path, R_OK))
		cr_skip_test("%s is absent", path);
	return path;
}

/* ---- Readers ---------------------------------------------------------- */

/* Open and read every event: the first error, or 0. */
static int read_bundle(const char *dir)
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

static int run_bundle(const struct row *r)
{
	char dir[128], path[256], cmd[512];
	unsigned char *buf;
	size_t len;

	snprintf(dir, sizeof(dir), "%s/b", tmpdir());
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s'", dir,
		 seed_bundle(), dir);
	cr_assert(eq(int, system(cmd), 0));
	cr_assert(eq(int, read_bundle(dir), 0), "the seed is valid");
	snprintf(path, sizeof(path), "%s/%s", dir, r->seed);
	buf = slurp(path, &len);
	cr_assert(ne(ptr, buf, NULL), "%s", path);
	corrupt(r, buf, &len);
	spit(path, buf, len);
	free(buf);
	tu_log_clear();
	return read_bundle(dir);
}

static int run_perfdata(const struct row *r)
{
	struct bt_perfdata_opts o = { .sz = sizeof(o), .name = r->seed };
	struct bt_perfdata *pd;
	unsigned char *buf;
	size_t len;

	buf = slurp(shared_file(r->seed), &len);
	cr_assert(ne(ptr, buf, NULL));
	pd = bt_perfdata__open_mem(buf, len, &o);
	cr_assert(ne(ptr, pd, NULL), "the seed is valid");
	bt_perfdata__close(pd);
	corrupt(r, buf, &len);
	tu_log_clear();
	pd = bt_perfdata__open_mem(buf, len, &o);
	free(buf);
	if (pd) {
		bt_perfdata__close(pd);
		return 0;
	}
	return -errno;
}

/* The listing of the seed's trace with @r applied, in a malloc'd string. */
static char *pt_listing(const struct row *r, bool apply,
			struct bt_ptdec_stats *st)
{
	char seed[PATH_MAX], code[128], *text = NULL;
	const char *src = getenv("BTRAIL_SRCDIR");
	unsigned char *buf;
	size_t len, clen, size = 0;
	struct bt_ptdec *d;
	FILE *out;

	if (!src)
		cr_skip_test("BTRAIL_SRCDIR is not set (make check sets it)");
	snprintf(seed, sizeof(seed), "%s/tests/fuzz/corpus/pt/%s", src,
		 r->seed);
	buf = slurp(seed, &len);
	cr_assert(ne(ptr, buf, NULL), "%s", seed);
	/* the fuzz seed: u16 code length, the code at 0x100000, the trace */
	clen = (buf[0] | (size_t)buf[1] << 8) & 0x7fff;
	cr_assert(le(sz, 2 + clen, len));
	snprintf(code, sizeof(code), "%s/code.bin", tmpdir());
	spit(code, buf + 2, clen);
	memmove(buf, buf + 2 + clen, len - 2 - clen);
	len -= 2 + clen;
	if (apply)
		corrupt(r, buf, &len);
	d = bt_ptdec__new(NULL);
	cr_assert(ne(ptr, d, NULL));
	cr_assert(eq(int, bt_ptdec__add_file(d, code, 0, 0, 0x100000), 0));
	cr_assert(eq(int, bt_ptdec__set_trace_mem(d, buf, len), 0));
	out = open_memstream(&text, &size);
	cr_assert(ne(ptr, out, NULL));
	cr_assert(eq(int, bt_ptdec__print(d, out, NULL, st), 0));
	fclose(out);
	bt_ptdec__free(d);
	free(buf);
	return text;
}

static int run_elf(const struct row *r)
{
	const char *progs = getenv("BTRAIL_PROGS");
	char src[PATH_MAX], path[160];
	unsigned char *buf, id[64];
	uint64_t v, off, sz;
	size_t len;

	if (!progs)
		cr_skip_test("BTRAIL_PROGS is not set (make check sets it)");
	snprintf(src, sizeof(src), "%s/%s", progs, r->seed);
	buf = slurp(src, &len);
	if (!buf)
		cr_skip_test("%s is not built", src);
	snprintf(path, sizeof(path), "%s/%s", tmpdir(), r->seed);
	spit(path, buf, len);
	if (!strcmp(r->reader, "buildid")) {
		cr_assert(gt(long, bw_elf_build_id(path, id, sizeof(id)), 0));
	} else {
		cr_assert(eq(int, bt_elfsym_lookup(path, "main", &v), 0));
		cr_assert(eq(int, bt_elfsym_file_offset(path, "main", &off,
							&sz), 0));
	}
	corrupt(r, buf, &len);
	spit(path, buf, len);
	free(buf);
	tu_log_clear();
	if (!strcmp(r->reader, "buildid")) {
		long n = bw_elf_build_id(path, id, sizeof(id));

		return n > 0 ? 0 : (int)n;
	}
	{
		int e1 = bt_elfsym_lookup(path, "main", &v);
		int e2 = bt_elfsym_file_offset(path, "main", &off, &sz);

		cr_assert(eq(int, e1 < 0, e2 < 0), "%d %d", e1, e2);
		return e1;
	}
}

/* A bundle of hello recorded with --with-binaries, copied to @dir. */
static void recorded_copy(const char *dir)
{
	static char seed[128];
	char cmd[512];

	if (!seed[0]) {
		const char *bin = tu_btrail_bin();
		const char *progs = getenv("BTRAIL_PROGS");
		char prog[PATH_MAX], *err = NULL;

		if (!bin || !progs)
			cr_skip_test("BTRAIL_BIN or BTRAIL_PROGS is not set");
		snprintf(prog, sizeof(prog), "%s/hello", progs);
		snprintf(seed, sizeof(seed), "%s/rec", tmpdir());

		char *argv[] = { (char *)bin, "record", "-e", "step",
				 "--start-at", "main", "--with-binaries", "-o",
				 seed, "--", prog, NULL };

		cr_assert(eq(int, tu_run(argv, NULL, &err), 0), "%s", err);
		free(err);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s'", dir, seed,
		 dir);
	cr_assert(eq(int, system(cmd), 0));
}

static int run_recon(const struct row *r)
{
	struct bt_recon_opts o = { .sz = sizeof(o) };
	char dir[128], root[160], path[512], cmd[512];
	struct bt_recon *rc;
	unsigned char *buf;
	size_t len;
	FILE *p;

	snprintf(dir, sizeof(dir), "%s/rb", tmpdir());
	recorded_copy(dir);
	/* the copy's path: images/<build-id>/hello */
	snprintf(cmd, sizeof(cmd), "ls %s/images/*/%s", dir, r->seed);
	p = popen(cmd, "r");
	cr_assert(ne(ptr, p, NULL));
	cr_assert(ne(ptr, fgets(path, sizeof(path), p), NULL), "no copy");
	pclose(p);
	path[strcspn(path, "\n")] = '\0';
	/* a sysroot without it: the recorded path is no fallback */
	snprintf(root, sizeof(root), "%s/root", tmpdir());
	mkdir(root, 0700);
	o.sysroot = root;
	rc = bt_recon__open(dir, &o);
	cr_assert(ne(ptr, rc, NULL), "the seed is valid");
	bt_recon__free(rc);
	buf = slurp(path, &len);
	cr_assert(ne(ptr, buf, NULL));
	corrupt(r, buf, &len);
	spit(path, buf, len);
	free(buf);
	tu_log_clear();
	rc = bt_recon__open(dir, &o);
	if (!rc)
		return -errno;
	bt_recon__free(rc);
	return 0;
}

/*
 * "offset N" in @log. N is where the reader found the problem: the start
 * of the record or packet holding the damaged byte, not always the byte.
 */
static bool names_offset(const char *log)
{
	for (const char *p = log; (p = strstr(p, "offset ")); p++) {
		if (p[7] >= '0' && p[7] <= '9')
			return true;
	}
	return false;
}

static void check_row(const struct row *r)
{
	char what[160];
	int err;

	snprintf(what, sizeof(what), "%s %s op %d at %llu", r->reader,
		 r->seed, (int)r->op, (unsigned long long)r->at);
	tu_log_capture();
	if (!strcmp(r->reader, "pt")) {
		struct bt_ptdec_stats st0 = { 0 }, st = { 0 };
		char *good = pt_listing(r, false, &st0);
		char *bad = pt_listing(r, true, &st);

		cr_assert(eq(u64, st0.errors, 0), "the seed is valid: %s",
			  good);
		cr_assert(gt(u64, st.errors, 0), "%s: %s", what, bad);
		cr_assert(ne(ptr, strstr(bad, r->want), NULL), "%s: %s", what,
			  bad);
		/* "[offset, ip: error: what]" */
		cr_assert(ne(ptr, strstr(bad, "["), NULL), "%s: %s", what, bad);
		free(good);
		free(bad);
		return;
	}
	if (!strcmp(r->reader, "bundle"))
		err = run_bundle(r);
	else if (!strcmp(r->reader, "perfdata"))
		err = run_perfdata(r);
	else if (!strcmp(r->reader, "recon"))
		err = run_recon(r);
	else
		err = run_elf(r);
	/* A bad image is a gap in the flow, not a bad bundle. */
	cr_assert(eq(int, err, strcmp(r->reader, "recon") ?
			       -BT_ERRNO_FORMAT : 0), "%s: %d (%s)", what, err,
		  tu_log_text());
	if (r->want)
		cr_assert(ne(ptr, strstr(tu_log_text(), r->want), NULL),
			  "%s: %s", what, tu_log_text());
	if (r->want_offset)
		cr_assert(names_offset(tu_log_text()), "%s: %s", what,
			  tu_log_text());
}

Test(malformed, table, .timeout = 120)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		if (!strcmp(rows[i].reader, "perfdata") &&
		    access(shared_file(rows[i].seed), R_OK))
			continue;
		check_row(&rows[i]);
	}
}
