// SPDX-License-Identifier: BSD-3-Clause
/*
 * The perf.data reader on the two real Intel PT recordings in
 * ../shared/testdata/perfdata (seekable and pipe mode, Skylake, Linux
 * 4.14): per-CPU AUX streams against the extracted .pt files, build-ids
 * against `perf buildid-list`, records, AUXTRACE_INFO and features with
 * the values perf wrote; then every truncation on a 97-byte grid plus the
 * boundaries, a table of targeted corruptions and random byte flips,
 * which must be refused with BT_ERRNO_FORMAT or parsed, never crash (run
 * it in the sanitizer build too). Buffers are malloc'd at their exact
 * length by bt_perfdata__open_mem, so ASan sees any overread.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <btrail/errno.h>
#include <btrail/log.h>
#include <btrail/perfdata.h>

#include "helpers/testutil.h"

#define SEEKABLE	"perf.data.intel_pt-4.14"
#define PIPED		"perf.data.piped.intel_pt-4.14"

static const char *testdata(const char *file)
{
	static char path[PATH_MAX];
	const char *src = getenv("BTRAIL_SRCDIR");

	if (!src)
		cr_skip_test("BTRAIL_SRCDIR is not set (make check sets it)");
	snprintf(path, sizeof(path), "%s/../shared/testdata/perfdata/%s",
		 src, file);
	if (access(path, R_OK))
		cr_skip_test("%s is absent: the shared test data is not beside "
			     "the repository", path);
	return path;
}

static unsigned char *slurp(const char *file, size_t *size)
{
	const char *path = testdata(file);
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;

	cr_assert(ne(ptr, f, NULL), "fopen %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n ? (size_t)n : 1);
	cr_assert(ne(ptr, buf, NULL));
	cr_assert(eq(sz, fread(buf, 1, (size_t)n, f), (size_t)n));
	fclose(f);
	*size = (size_t)n;
	return buf;
}

static struct bt_perfdata *open_testdata(const char *file)
{
	struct bt_perfdata *pd = bt_perfdata__open(testdata(file), NULL);

	cr_assert(ne(ptr, pd, NULL), "open %s: %s", file, strerror(errno));
	return pd;
}

/* Stream of @cpu read whole; fails the test when there is none. */
static unsigned char *cpu_stream(struct bt_perfdata *pd, uint32_t cpu,
				 size_t *size)
{
	int i = bt_perfdata__aux_cpu(pd, cpu);
	void *buf = NULL;

	cr_assert(ge(int, i, 0), "no AUX stream for cpu %u", cpu);
	cr_assert(eq(int, bt_perfdata__aux_read(pd, (size_t)i, &buf, size),
		     0));
	return buf;
}

/* ---- Streams ------------------------------------------------------------ */

Test(perfdata, seekable_streams_match_pt_files)
{
	struct bt_perfdata *pd = open_testdata(SEEKABLE);
	static const uint32_t cpus[] = { 0, 3 };
	static const char *const ref[] = {
		"intel_pt-4.14-cpu0.pt", "intel_pt-4.14-cpu3.pt",
	};

	cr_assert(eq(int, bt_perfdata__is_pipe(pd), 0));
	cr_assert(eq(sz, bt_perfdata__nr_aux_streams(pd), 2));
	for (int k = 0; k < 2; k++) {
		size_t n, rn;
		unsigned char *s = cpu_stream(pd, cpus[k], &n);
		unsigned char *r = slurp(ref[k], &rn);

		cr_assert(eq(sz, n, rn), "cpu %u: %zu bytes, %s has %zu",
			  cpus[k], n, ref[k], rn);
		cr_assert(eq(int, memcmp(s, r, n), 0), "cpu %u differs from %s",
			  cpus[k], ref[k]);
		cr_assert(eq(u64, bt_perfdata__aux_stream(pd,
			  (size_t)bt_perfdata__aux_cpu(pd, cpus[k]))->size, n));
		free(s);
		free(r);
	}
	cr_assert(eq(int, bt_perfdata__aux_cpu(pd, 1), -ENOENT));
	bt_perfdata__close(pd);
}

/*
 * piped.intel_pt-4.14-cpu0.pt was cut from the file 32 bytes into the
 * AUXTRACE record instead of 48 (the record's header.size): it starts
 * with the record's idx/tid/cpu/reserved words and lacks the stream's
 * last 16 bytes (the final TIP.PGD and padding that the seekable
 * recording's stream ends with as well). We check exactly that relation,
 * so that a reader cutting at either wrong place fails here.
 */
Test(perfdata, piped_stream_matches_pt_file)
{
	struct bt_perfdata *pd = open_testdata(PIPED);
	struct bt_perf_record rec;
	const unsigned char *hdr = NULL;
	size_t n, rn;
	unsigned char *s, *r;

	cr_assert(eq(int, bt_perfdata__is_pipe(pd), 1));
	cr_assert(eq(sz, bt_perfdata__nr_aux_streams(pd), 2));
	s = cpu_stream(pd, 0, &n);
	r = slurp("piped.intel_pt-4.14-cpu0.pt", &rn);
	cr_assert(eq(sz, n, rn));
	while (bt_perfdata__next(pd, &rec) == 1) {
		if (rec.type == BT_PERF_REC_AUXTRACE &&
		    rec.u.auxtrace.cpu == 0) {
			hdr = rec.raw;
			cr_assert(eq(u32, rec.size, 48));
			cr_assert(eq(ptr, (void *)rec.payload,
				     (void *)(hdr + 48)));
		}
	}
	cr_assert(ne(ptr, (void *)hdr, NULL));
	cr_assert(eq(int, memcmp(r, hdr + 32, 16), 0),
		  "the .pt file does not start 32 bytes into the record");
	cr_assert(eq(int, memcmp(r + 16, s, n - 16), 0),
		  "stream differs from the .pt file (shifted by 16)");
	/* Ends like the seekable recording's stream: FUP, TIP.PGD, pad. */
	cr_assert(eq(u8, s[n - 16], 0x01));
	free(s);
	free(r);
	bt_perfdata__close(pd);
}

/* Pipe mode is a format: reading it through an actual pipe works too. */
Test(perfdata, piped_file_through_a_pipe)
{
	size_t size;
	unsigned char *buf = slurp(PIPED, &size);
	struct bt_perfdata *pd;
	char path[64];
	int fds[2], st;
	pid_t pid;

	cr_assert(eq(int, pipe(fds), 0));
	pid = fork();
	cr_assert(ge(int, pid, 0));
	if (pid == 0) {
		size_t at = 0;

		close(fds[0]);
		while (at < size) {
			ssize_t w = write(fds[1], buf + at, size - at);

			if (w <= 0)
				_exit(1);
			at += (size_t)w;
		}
		_exit(0);
	}
	close(fds[1]);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[0]);
	pd = bt_perfdata__open(path, NULL);
	close(fds[0]);
	cr_assert(eq(int, waitpid(pid, &st, 0), pid));
	cr_assert(ne(ptr, pd, NULL), "%s", strerror(errno));
	cr_assert(eq(sz, bt_perfdata__nr_aux_streams(pd), 2));
	cr_assert(eq(u64, bt_perfdata__aux_stream(pd, 0)->size, 76400));
	bt_perfdata__close(pd);
	free(buf);
}

/* ---- Header, features, records ------------------------------------------ */

Test(perfdata, build_ids_match_buildid_list)
{
	struct bt_perfdata *pd = open_testdata(SEEKABLE);
	FILE *f = fopen(testdata(SEEKABLE ".buildids"), "r");
	char line[1024], hex[41];
	size_t i = 0;

	cr_assert(ne(ptr, f, NULL));
	while (fgets(line, sizeof(line), f)) {
		const struct bt_perf_build_id *b = bt_perfdata__build_id(pd, i);
		char *sp = strchr(line, ' ');

		cr_assert(ne(ptr, sp, NULL));
		*sp = '\0';
		sp[1 + strcspn(sp + 1, "\n")] = '\0';
		cr_assert(ne(ptr, (void *)b, NULL), "only %zu build-ids", i);
		for (int k = 0; k < b->size; k++)
			sprintf(hex + 2 * k, "%02x", b->id[k]);
		hex[2 * b->size] = '\0';
		cr_assert(eq(str, hex, line), "build-id %zu", i);
		cr_assert(eq(str, (char *)b->path, sp + 1), "path %zu", i);
		i++;
	}
	fclose(f);
	cr_assert(eq(sz, i, 66));
	cr_assert(eq(sz, bt_perfdata__nr_build_ids(pd), i));
	/* The first is the kernel's, with the kernel cpumode. */
	cr_assert(eq(u16, bt_perfdata__build_id(pd, 0)->misc &
		     BT_PERF_MISC_CPUMODE_MASK, BT_PERF_MISC_KERNEL));
	bt_perfdata__close(pd);
}

static void check_info(struct bt_perfdata *pd)
{
	const struct bt_perf_auxtrace_info *in = bt_perfdata__auxtrace_info(pd);
	const struct bt_perf_time_conv *tc = bt_perfdata__time_conv(pd);
	const struct bt_perf_features *f = bt_perfdata__features(pd);
	const struct bt_perf_attr *a = bt_perfdata__attr(pd, 0);

	cr_assert(eq(int, in->present, 1));
	cr_assert(eq(u32, in->type, BT_PERF_AUXTRACE_INTEL_PT));
	cr_assert(ge(u32, in->nr_priv, 17));
	/* The PMU type is the intel_pt attr's type. */
	cr_assert(ne(ptr, (void *)a, NULL));
	cr_assert(eq(u64, in->pmu_type, a->type));
	cr_assert(eq(u64, in->pmu_type, 6));
	/* intel_pt's format bits: tsc=10, mtc=9, cyc=1, noretcomp=11 */
	cr_assert(eq(u64, in->tsc_bit, 1u << 10));
	cr_assert(eq(u64, in->mtc_bit, 1u << 9));
	cr_assert(eq(u64, in->cyc_bit, 1u << 1));
	cr_assert(eq(u64, in->noretcomp_bit, 1u << 11));
	cr_assert(eq(u64, in->per_cpu_mmaps, 1));
	cr_assert(eq(u64, in->snapshot_mode, 0));
	cr_assert(eq(u64, in->tsc_ctc_ratio_n, 100));
	cr_assert(eq(u64, in->tsc_ctc_ratio_d, 2));
	/* The attr asked for TSC: config bit 10 set. */
	cr_assert(ne(u64, a->config & in->tsc_bit, 0));
	cr_assert(eq(int, tc->present, 1));
	cr_assert(eq(u64, tc->time_shift, in->time_shift));
	cr_assert(eq(u64, tc->time_mult, in->time_mult));
	cr_assert(eq(u64, tc->time_zero, in->time_zero));
	cr_assert(eq(str, (char *)f->osrelease, "4.14.18"));
	cr_assert(eq(str, (char *)f->arch, "x86_64"));
	cr_assert(eq(str, (char *)f->cpuid, "GenuineIntel,6,78,3"));
	cr_assert(eq(str, (char *)f->hostname, "localhost"));
	cr_assert(eq(u32, f->nr_cpus_online, 4));
	cr_assert(eq(u32, f->nr_cpus_avail, 4));
	cr_assert(eq(sz, bt_perfdata__nr_attrs(pd), 4));
	cr_assert(eq(int, a->sample_id_all, 1));
	cr_assert(eq(sz, a->nr_ids, 4));
}

Test(perfdata, auxtrace_info_and_features)
{
	struct bt_perfdata *pd = open_testdata(SEEKABLE);

	check_info(pd);
	bt_perfdata__close(pd);
	pd = open_testdata(PIPED);
	check_info(pd);
	bt_perfdata__close(pd);
}

Test(perfdata, records)
{
	struct bt_perfdata *pd = open_testdata(SEEKABLE);
	struct bt_perf_record rec;
	unsigned n = 0, n2 = 0, comm_exec = 0, mmap2_exe = 0, itrace = 0;
	unsigned auxtrace = 0, aux = 0, sw = 0;
	uint64_t last = 0;
	int r;

	while ((r = bt_perfdata__next(pd, &rec)) == 1) {
		cr_assert(ge(u64, rec.offset, last));
		last = rec.offset;
		n++;
		switch (rec.type) {
		case BT_PERF_REC_COMM:
			if (rec.u.comm.exec) {
				cr_assert(eq(str, (char *)rec.u.comm.comm,
					     "echo"));
				cr_assert(eq(u32, rec.u.comm.pid, 3174));
				cr_assert(eq(int, rec.has_sample_id, 1));
				cr_assert(eq(u32, rec.sid.cpu, 3));
				cr_assert(eq(u64, rec.sid.time, 641256847598));
				comm_exec++;
			}
			break;
		case BT_PERF_REC_MMAP2:
			cr_assert(eq(u32, rec.u.mmap.pid, 3174));
			if (!strcmp(rec.u.mmap.filename,
				    "/usr/bin/coreutils")) {
				cr_assert(eq(u64, rec.u.mmap.addr,
					     0x5cba63156000ull));
				cr_assert(eq(u64, rec.u.mmap.len, 0x125000));
				cr_assert(eq(u32, rec.u.mmap.prot, 5));
				mmap2_exe++;
			}
			break;
		case BT_PERF_REC_ITRACE_START:
			cr_assert(eq(u32, rec.u.itrace_start.pid, 3174));
			itrace++;
			break;
		case BT_PERF_REC_AUXTRACE:
			cr_assert(eq(u32, rec.u.auxtrace.idx,
				     rec.u.auxtrace.cpu));
			cr_assert(eq(u64, rec.payload_size,
				     rec.u.auxtrace.size));
			auxtrace++;
			break;
		case BT_PERF_REC_AUX:
			cr_assert(ne(u64, rec.u.aux.aux_size, 0));
			aux++;
			break;
		case BT_PERF_REC_SWITCH_CPU_WIDE:
			cr_assert(eq(int, rec.has_sample_id, 1));
			sw++;
			break;
		}
	}
	cr_assert(eq(int, r, 0));
	cr_assert(eq(u32, comm_exec, 1));
	cr_assert(eq(u32, mmap2_exe, 1));
	cr_assert(eq(u32, itrace, 2));
	cr_assert(eq(u32, auxtrace, 2));
	cr_assert(eq(u32, aux, 10));
	cr_assert(eq(u32, sw, 152));
	bt_perfdata__rewind(pd);
	while (bt_perfdata__next(pd, &rec) == 1)
		n2++;
	cr_assert(eq(u32, n, n2));
	cr_assert(eq(u32, n, 257));
	bt_perfdata__close(pd);
}

Test(perfdata, bad_arguments)
{
	struct bt_perfdata_opts o = { .sz = 1 };
	struct bt_perf_record rec;

	cr_assert(eq(ptr, bt_perfdata__open(NULL, NULL), NULL));
	cr_assert(eq(int, errno, EINVAL));
	cr_assert(eq(ptr, bt_perfdata__open_mem("x", 1, &o), NULL));
	cr_assert(eq(int, errno, EINVAL));
	cr_assert(eq(ptr, bt_perfdata__open("/nonexistent/perf.data", NULL),
		     NULL));
	cr_assert(eq(int, errno, ENOENT));
	cr_assert(eq(int, bt_perfdata__next(NULL, &rec), -EINVAL));
	cr_assert(eq(sz, bt_perfdata__nr_aux_streams(NULL), 0));
	bt_perfdata__close(NULL);
}

/* ---- Hostile input ------------------------------------------------------- */

/*
 * Open @size bytes of @buf; if that works, walk every record and read
 * every stream. Returns 0 or the open error (negative).
 */
static int try_open(const unsigned char *buf, size_t size)
{
	struct bt_perfdata_opts o = { .sz = sizeof(o), .name = "hostile" };
	struct bt_perfdata *pd = bt_perfdata__open_mem(buf, size, &o);
	struct bt_perf_record rec;

	if (!pd)
		return -errno;
	while (bt_perfdata__next(pd, &rec) == 1)
		;
	for (size_t i = 0; i < bt_perfdata__nr_aux_streams(pd); i++) {
		void *s;
		size_t n;

		cr_assert(eq(int, bt_perfdata__aux_read(pd, i, &s, &n), 0));
		free(s);
	}
	for (size_t i = 0; i < bt_perfdata__nr_build_ids(pd); i++)
		(void)strlen(bt_perfdata__build_id(pd, i)->path);
	bt_perfdata__close(pd);
	return 0;
}

/* Record boundaries of @file (record offsets, and the end). */
static size_t boundaries(const char *file, uint64_t *out, size_t max)
{
	struct bt_perfdata *pd = open_testdata(file);
	struct bt_perf_record rec;
	size_t n = 0;

	while (bt_perfdata__next(pd, &rec) == 1 && n < max - 1)
		out[n++] = rec.offset;
	out[n++] = rec.offset + rec.size + rec.payload_size;
	bt_perfdata__close(pd);
	return n;
}

static bool is_boundary(const uint64_t *b, size_t n, uint64_t len)
{
	for (size_t i = 0; i < n; i++) {
		if (b[i] == len)
			return true;
	}
	return false;
}

static void truncations(const char *file)
{
	static uint64_t b[4096];
	size_t size, nb, tried = 0;
	unsigned char *buf = slurp(file, &size);
	bool pipe = strstr(file, "piped") != NULL;
	size_t extra[] = { 0, 1, 7, 8, 15, 16, 17, 103, 104, 105 };

	nb = boundaries(file, b, 4096);
	tu_log_capture();
	for (size_t pass = 0; pass < 3; pass++) {
		size_t count = pass == 0 ? (size + 96) / 97 :
			       pass == 1 ? sizeof(extra) / sizeof(extra[0]) :
			       nb;

		for (size_t k = 0; k < count; k++) {
			size_t len = pass == 0 ? 97 * k : pass == 1 ?
				     extra[k] : b[k];
			/* A record boundary of a pipe-mode file is a
			 * shorter but valid file; anything else is not. */
			bool ok = pipe && len >= 16 && is_boundary(b, nb, len);
			int err;

			if (len >= size)
				continue;
			for (int d = pass == 2 ? -1 : 0;
			     d <= (pass == 2 ? 1 : 0); d++) {
				size_t l = len + d;

				if (l >= size)
					continue;
				tu_log_clear();
				err = try_open(buf, l);
				tried++;
				if (d == 0 && ok) {
					cr_assert(eq(int, err, 0),
						  "%s cut at %zu: %s", file, l,
						  tu_log_text());
					continue;
				}
				if (pipe && is_boundary(b, nb, l))
					continue;
				cr_assert(eq(int, err, -BT_ERRNO_FORMAT),
					  "%s cut at %zu opened", file, l);
				cr_assert(ne(ptr, strstr(tu_log_text(),
					     "hostile: offset "), NULL),
					  "message: %s", tu_log_text());
			}
		}
	}
	bt_set_print(NULL);
	cr_assert(gt(sz, tried, 2000));
	free(buf);
}

Test(perfdata, truncations_seekable)
{
	truncations(SEEKABLE);
}

Test(perfdata, truncations_piped)
{
	truncations(PIPED);
}

/* Offsets of the seekable file's parts, read from its header. */
struct layout {
	uint64_t attrs, data, data_end, feat_tab;
	uint64_t first_auxtrace, first_mmap2, buildid_sec;
};

static void layout(const unsigned char *buf, struct layout *l)
{
	struct bt_perfdata *pd = open_testdata(SEEKABLE);
	struct bt_perf_record rec;
	uint64_t bits, ds;

	memcpy(&l->attrs, buf + 24, 8);
	memcpy(&l->data, buf + 40, 8);
	memcpy(&ds, buf + 48, 8);
	l->data_end = l->feat_tab = l->data + ds;
	memcpy(&bits, buf + 72, 8);
	/* BUILD_ID is feature 2: its section entry follows those below it. */
	cr_assert(ne(u64, bits & 4, 0));
	l->buildid_sec = l->feat_tab + 16 * __builtin_popcountll(bits & 3);
	l->first_auxtrace = l->first_mmap2 = 0;
	while (bt_perfdata__next(pd, &rec) == 1) {
		if (rec.type == BT_PERF_REC_AUXTRACE && !l->first_auxtrace)
			l->first_auxtrace = rec.offset;
		if (rec.type == BT_PERF_REC_MMAP2 && !l->first_mmap2)
			l->first_mmap2 = rec.offset;
	}
	bt_perfdata__close(pd);
}

static void put64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static void put16(unsigned char *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

Test(perfdata, corruptions)
{
	size_t size;
	unsigned char *orig = slurp(SEEKABLE, &size);
	unsigned char *buf = malloc(size);
	struct layout l;
	uint64_t bid;
	struct ccase {
		const char *what;
		uint64_t at;
		int width;	/* 1, 2, 8 bytes */
		uint64_t val;
		const char *msg;	/* part of the message */
	} cases[7 + 9];
	size_t nc = 0;

	layout(orig, &l);
	memcpy(&bid, orig + l.buildid_sec, 8);
#define CASE(w, a, wd, v, m) \
	cases[nc++] = (struct ccase){ w, a, wd, v, m }
	CASE("magic", 0, 1, 'X', "no PERFILE2");
	CASE("header size", 8, 8, 50, "header size 50");
	CASE("attr entry size", 16, 8, 0, "attr entry size 0");
	CASE("attr section", 24, 8, size, "attr section");
	CASE("data section", 40, 8, size - 8, "data section");
	CASE("data size", 48, 8, UINT64_MAX, "data section");
	CASE("ids section", l.attrs + 112, 8, UINT64_MAX - 3, "attr ids");
	CASE("attr.size", l.attrs + 4, 8, 4096, "attr.size");
	CASE("record size 0", l.data + 6, 2, 0, "less than its 8-byte header");
	CASE("record size 7", l.data + 6, 2, 7, "less than its 8-byte header");
	CASE("AUXTRACE size", l.first_auxtrace + 8, 8, UINT64_MAX - 40,
	     "past the end of the data");
	CASE("AUXTRACE short", l.first_auxtrace + 6, 2, 40, "less than 48");
	CASE("MMAP2 string", l.first_mmap2 + 6, 2, 72 + 32 + 8,
	     "NUL-terminated");
	CASE("feature section", l.feat_tab + 8, 8, size,
	     "past the end of the file");
	CASE("build-id size 0", bid + 6, 2, 0, "build-id record of 0 bytes");
	CASE("swapped magic", 0, 8, 0x50455246494c4532ull, "byte order");
#undef CASE
	cr_assert(eq(sz, nc, sizeof(cases) / sizeof(cases[0])));
	tu_log_capture();
	for (size_t i = 0; i < nc; i++) {
		memcpy(buf, orig, size);
		if (cases[i].width == 1)
			buf[cases[i].at] = (unsigned char)cases[i].val;
		else if (cases[i].width == 2)
			put16(buf + cases[i].at, (uint16_t)cases[i].val);
		else
			put64(buf + cases[i].at, cases[i].val);
		tu_log_clear();
		cr_assert(eq(int, try_open(buf, size), -BT_ERRNO_FORMAT),
			  "%s: opened", cases[i].what);
		cr_assert(ne(ptr, strstr(tu_log_text(), cases[i].msg), NULL),
			  "%s: message '%s' lacks '%s'", cases[i].what,
			  tu_log_text(), cases[i].msg);
		cr_assert(ne(ptr, strstr(tu_log_text(), "perf.data: hostile: "
					 "offset "), NULL));
	}
	bt_set_print(NULL);
	free(buf);
	free(orig);
}

/* xorshift64: the same flips on every run. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void flips(const char *file, uint64_t seed)
{
	size_t size;
	unsigned char *orig = slurp(file, &size);
	unsigned char *buf = malloc(size);
	unsigned opened = 0, refused = 0;

	bt_set_print(NULL);
	for (int it = 0; it < 1500; it++) {
		int n = 1 + (int)(rnd(&seed) % 4), err;

		memcpy(buf, orig, size);
		for (int k = 0; k < n; k++) {
			/* Half the flips in the first 4 KiB: the header,
			 * attrs and the first records, where they matter. */
			size_t at = rnd(&seed) % (k % 2 ? size : 4096);

			buf[at] ^= (unsigned char)(1u << (rnd(&seed) % 8));
		}
		err = try_open(buf, size);
		cr_assert(err == 0 || err == -BT_ERRNO_FORMAT,
			  "flip %d: unexpected error %d", it, err);
		if (err == 0)
			opened++;
		else
			refused++;
	}
	/* Both outcomes happen: the flips are neither all harmless nor
	 * all fatal. */
	cr_assert(gt(u32, opened, 0));
	cr_assert(gt(u32, refused, 0));
	free(buf);
	free(orig);
}

Test(perfdata, random_flips_seekable)
{
	flips(SEEKABLE, 0x9e3779b97f4a7c15ull);
}

Test(perfdata, random_flips_piped)
{
	flips(PIPED, 0xd1b54a32d192ed03ull);
}
