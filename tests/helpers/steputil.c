// SPDX-License-Identifier: BSD-3-Clause
#include "helpers/steputil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GROW(v, n, cap)							\
	do {								\
		if ((n) == (cap)) {					\
			(cap) = (cap) ? (cap) * 2 : 1024;		\
			(v) = realloc((v), (cap) * sizeof(*(v)));	\
			cr_assert((v) != NULL);				\
		}							\
	} while (0)

/* Keep the mappings and a copy of the vdso while the tracee lives. */
static void rec_capture(struct su_rec *r)
{
	char path[64];
	int fd, out;

	if (r->maps)
		return;
	cr_assert(bt_maps_read(r->pid, &r->maps, &r->nmaps) == 0);
	for (size_t i = 0; i < r->nmaps; i++) {
		const struct bt_map *m = &r->maps[i];
		size_t len = m->end - m->start;
		unsigned char *buf;

		if (strcmp(m->path, "[vdso]"))
			continue;
		buf = malloc(len);
		cr_assert(buf != NULL);
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)r->pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		cr_assert(fd >= 0);
		cr_assert(pread(fd, buf, len, (off_t)m->start) == (ssize_t)len);
		close(fd);
		snprintf(r->vdso_file, sizeof(r->vdso_file),
			 "/tmp/bt-vdso-%d-XXXXXX", (int)getpid());
		out = mkstemp(r->vdso_file);
		cr_assert(out >= 0);
		cr_assert(write(out, buf, len) == (ssize_t)len);
		close(out);
		free(buf);
	}
}

static int rec_begin(void *ctx, pid_t tid, uint64_t ip)
{
	struct su_rec *r = ctx;

	rec_capture(r);
	r->begins++;
	r->begin_tid = tid;
	r->begin_ip = ip;
	r->seq++;
	return r->next && r->next->begin ? r->next->begin(r->next->ctx, tid, ip)
					 : 0;
}

static int rec_insn(void *ctx, const struct bt_step_insn *in)
{
	struct su_rec *r = ctx;

	GROW(r->insn, r->ninsn, r->capinsn);
	r->insn[r->ninsn++] = (struct su_insn){
		.tid = in->tid, .ip = in->ip, .next = in->next_ip,
		.len = in->len, .cls = (uint8_t)in->cls, .taken = in->taken,
		.seq = r->seq++,
	};
	return r->next ? r->next->insn(r->next->ctx, in) : 0;
}

static int rec_async(void *ctx, const struct bt_step_async *a)
{
	struct su_rec *r = ctx;

	GROW(r->async, r->nasync, r->capasync);
	r->async[r->nasync++] = (struct su_async){ *a, r->seq++ };
	return r->next && r->next->async ? r->next->async(r->next->ctx, a) : 0;
}

static int rec_switch(void *ctx, pid_t from, pid_t to)
{
	struct su_rec *r = ctx;

	GROW(r->sw, r->nsw, r->capsw);
	r->sw[r->nsw++] = (struct su_switch){ from, to, r->seq++, r->ninsn };
	return r->next && r->next->thread_switch ?
	       r->next->thread_switch(r->next->ctx, from, to) : 0;
}

static int rec_end(void *ctx, pid_t tid, uint64_t ip)
{
	struct su_rec *r = ctx;

	r->ends++;
	r->end_tid = tid;
	r->end_ip = ip;
	r->seq++;
	return r->next && r->next->end ? r->next->end(r->next->ctx, tid, ip) : 0;
}

void su_rec_init(struct su_rec *r, pid_t pid, const struct bt_step_sink *next)
{
	memset(r, 0, sizeof(*r));
	r->pid = pid;
	r->next = next;
}

void su_rec_sink(struct su_rec *r, struct bt_step_sink *sink)
{
	sink->ctx = r;
	sink->begin = rec_begin;
	sink->insn = rec_insn;
	sink->async = rec_async;
	sink->thread_switch = rec_switch;
	sink->end = rec_end;
}

void su_rec_fini(struct su_rec *r)
{
	if (r->vdso_file[0])
		unlink(r->vdso_file);
	free(r->insn);
	free(r->async);
	free(r->sw);
	free(r->maps);
	memset(r, 0, sizeof(*r));
}

const char *su_prog(const char *name)
{
	static char path[PATH_MAX];
	const char *dir = getenv("BTRAIL_PROGS");

	if (!dir)
		cr_skip_test("BTRAIL_PROGS is not set (make check sets it)");
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (access(path, X_OK) < 0)
		cr_skip_test("%s is not built", path);
	return path;
}

const char *su_exe(const struct su_rec *r)
{
	char lnk[64];
	static char exe[PATH_MAX];
	ssize_t n;

	snprintf(lnk, sizeof(lnk), "/proc/%d/exe", (int)r->pid);
	n = readlink(lnk, exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		return exe;
	}
	/* The process is gone: the first file mapping is the executable. */
	for (size_t i = 0; i < r->nmaps; i++) {
		if (r->maps[i].path[0] == '/')
			return r->maps[i].path;
	}
	return NULL;
}

uint64_t su_sym(const struct su_rec *r, const char *sym)
{
	const char *exe = su_exe(r);
	uint64_t value = 0, bias = 0;

	cr_assert(exe != NULL);
	cr_assert(bt_elfsym_lookup(exe, sym, &value) == 0, "no %s in %s", sym,
		  exe);
	cr_assert(bt_elf_load_bias(exe, r->maps, r->nmaps, &bias) == 0);
	return value + bias;
}

size_t su_code(const struct su_rec *r, uint64_t addr, uint8_t *buf,
	       size_t len)
{
	const struct bt_map *m = bt_maps_find(r->maps, r->nmaps, addr);
	const char *file;
	uint64_t off;
	ssize_t n;
	int fd;

	if (!m)
		return 0;
	if (!strcmp(m->path, "[vdso]")) {
		file = r->vdso_file;
		off = addr - m->start;
	} else if (m->path[0] == '/') {
		file = m->path;
		off = addr - m->start + m->offset;
	} else {
		return 0;
	}
	if (addr + len > m->end)
		len = m->end - addr;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = pread(fd, buf, len, (off_t)off);
	close(fd);
	return n > 0 ? (size_t)n : 0;
}

struct bt_pmu_event *su_open_map(struct bt_pmu *p, uint32_t fac, pid_t pid,
				 bool sideband, uint64_t aux,
				 struct bt_pmu_buffers *b)
{
	struct bt_pmu_open_args a = {
		.sz = sizeof(a), .facility = fac,
		.target = { BT_TARGET_TASK, pid }, .sideband = sideband,
		.uid = getuid(),
	};
	const struct bt_pmu_ops *o = bt_pmu__ops(p);
	struct bt_pmu_event *ev = NULL;

	cr_assert(o->open(p, &a, &ev) == 0, "open facility %u", fac);
	cr_assert(o->map(p, ev, 16 * 4096, aux, false, b) == 0, "map");
	cr_assert(o->enable(p, ev, true) == 0, "enable");
	return ev;
}
