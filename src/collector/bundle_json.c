// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail.json of a bundle (built with json-c) and images/: the machine
 * (CPUID and the intel_pt caps), the clock conversions and the trigger
 * seen in the events, the images mapped (build-ids read from the ELF
 * notes with libelf) and, with with_binaries, copies of them.
 * docs/bundle.md lists the keys.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <gelf.h>
#include <json-c/json.h>
#include <libelf.h>

#include <btrail/bundle.h>
#include <btrail/errno.h>
#include <btrail/events.h>
#include <btrail/kmes.h>

#include "collector/bundle_int.h"
#include "common/file.h"
#include "common/log.h"

#define MAX_IMAGES	4096
#define MAX_RANGES	64	/* per image */
#define BUILD_ID_MAX	64

struct image {
	char *path;
	unsigned char ev_id[BUILD_ID_MAX];	/* from the bt.mmap event */
	size_t ev_id_len;
	json_object *ranges;
	size_t nranges;
};

struct bw_json {
	struct bt_bundle_write_opts o;
	json_object *root, *rings, *clocks, *trigger;
	struct image *img;
	size_t nimg;
	uint64_t tsc_hz;
	bool copied;		/* images/ holds a copy */
};

static json_object *hex(uint64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "0x%" PRIx64, v);
	return json_object_new_string(s);
}

static void add_u64(json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

static json_object *hexbytes(const unsigned char *p, size_t n)
{
	char s[2 * BUILD_ID_MAX + 1];

	if (n > BUILD_ID_MAX)
		n = BUILD_ID_MAX;
	for (size_t i = 0; i < n; i++)
		snprintf(s + 2 * i, 3, "%02x", p[i]);
	s[2 * n] = 0;
	return json_object_new_string(s);
}

/* A STR value (not NUL-terminated) as a JSON string. */
static json_object *str(const struct bt_event_value *v)
{
	return json_object_new_string_len(v->p ? v->p : "", (int)v->len);
}

/* ---- The machine --------------------------------------------------------- */

static void cpuinfo_model_name(json_object *m)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[512];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');

		if (strncmp(line, "model name", 10) || !c)
			continue;
		c++;
		while (*c == ' ' || *c == '\t')
			c++;
		c[strcspn(c, "\n")] = 0;
		json_object_object_add(m, "model_name",
				       json_object_new_string(c));
		break;
	}
	fclose(f);
}

static void machine_cpuid(json_object *m, uint64_t tsc_hz)
{
	json_object *tsc = json_object_new_object();
	bool have15 = false;

#if defined(__x86_64__) || defined(__i386__)
	unsigned a, b, c, d, max;
	char vendor[13];

	if (__get_cpuid(0, &max, &b, &c, &d)) {
		memcpy(vendor, &b, 4);
		memcpy(vendor + 4, &d, 4);
		memcpy(vendor + 8, &c, 4);
		vendor[12] = 0;
		json_object_object_add(m, "vendor",
				       json_object_new_string(vendor));
		if (__get_cpuid(1, &a, &b, &c, &d)) {
			unsigned fam = (a >> 8) & 0xf, model = (a >> 4) & 0xf;

			if (fam == 0xf)
				fam += (a >> 20) & 0xff;
			if (fam == 0x6 || fam >= 0xf)
				model |= ((a >> 16) & 0xf) << 4;
			json_object_object_add(m, "family",
					       json_object_new_int((int)fam));
			json_object_object_add(m, "model",
					       json_object_new_int((int)model));
			json_object_object_add(m, "stepping",
				json_object_new_int((int)(a & 0xf)));
		}
		/* CPUID 0x15: TSC/crystal ratio; crystal drives MTC. */
		if (max >= 0x15 && __get_cpuid(0x15, &a, &b, &c, &d) && a &&
		    b) {
			have15 = true;
			json_object_object_add(tsc, "ratio_den",
					       json_object_new_int64(a));
			json_object_object_add(tsc, "ratio_num",
					       json_object_new_int64(b));
			json_object_object_add(tsc, "crystal_hz", c ?
				json_object_new_int64(c) : NULL);
			json_object_object_add(tsc, "mtc_base_hz", c ?
				json_object_new_int64(c) : NULL);
		}
		if (max >= 0x16 && __get_cpuid(0x16, &a, &b, &c, &d) && a)
			json_object_object_add(tsc, "nominal_hz",
				json_object_new_int64((int64_t)a * 1000000));
	}
#endif
	if (!have15) {
		json_object_object_add(tsc, "ratio_den", NULL);
		json_object_object_add(tsc, "ratio_num", NULL);
		json_object_object_add(tsc, "crystal_hz", NULL);
		json_object_object_add(tsc, "mtc_base_hz", NULL);
	}
	if (!json_object_object_get_ex(tsc, "nominal_hz", NULL))
		json_object_object_add(tsc, "nominal_hz", NULL);
	json_object_object_add(tsc, "tsc_hz", tsc_hz ?
			       json_object_new_int64((int64_t)tsc_hz) : NULL);
	json_object_object_add(m, "tsc", tsc);
}

/*
 * The machine a trace was recorded on, from perf's CPUID string
 * "Vendor,family,model,stepping" (btrail import): this machine's CPUID
 * leaves would describe the wrong CPU, so what the string does not say
 * is null.
 */
static void machine_recorded(json_object *m, const char *cpuid,
			     uint64_t tsc_hz)
{
	static const char *const tsc_keys[] = {
		"ratio_den", "ratio_num", "crystal_hz", "mtc_base_hz",
		"nominal_hz",
	};
	json_object *tsc = json_object_new_object();
	char vendor[64] = "";
	int fam = -1, model = -1, step = -1;

	sscanf(cpuid, "%63[^,],%i,%i,%i", vendor, &fam, &model, &step);
	json_object_object_add(m, "vendor", vendor[0] ?
			       json_object_new_string(vendor) : NULL);
	json_object_object_add(m, "family", fam >= 0 ?
			       json_object_new_int(fam) : NULL);
	json_object_object_add(m, "model", model >= 0 ?
			       json_object_new_int(model) : NULL);
	json_object_object_add(m, "stepping", step >= 0 ?
			       json_object_new_int(step) : NULL);
	json_object_object_add(m, "cpuid", json_object_new_string(cpuid));
	json_object_object_add(m, "model_name", NULL);
	json_object_object_add(m, "pt_caps", NULL);
	for (size_t i = 0; i < sizeof(tsc_keys) / sizeof(tsc_keys[0]); i++)
		json_object_object_add(tsc, tsc_keys[i], NULL);
	json_object_object_add(tsc, "tsc_hz", tsc_hz ?
			       json_object_new_int64((int64_t)tsc_hz) : NULL);
	json_object_object_add(m, "tsc", tsc);
}

static void machine_pt_caps(json_object *m)
{
	static const char dir[] = "/sys/bus/event_source/devices/intel_pt/caps";
	json_object *caps;
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d) {
		json_object_object_add(m, "pt_caps", NULL);
		return;
	}
	caps = json_object_new_object();
	while ((e = readdir(d))) {
		char path[PATH_MAX], val[64] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(val, sizeof(val), f)) {
			char *end;
			unsigned long long x = strtoull(val, &end, 0);

			if (end != val && (*end == '\n' || !*end))
				json_object_object_add(caps, e->d_name,
					json_object_new_int64((int64_t)x));
		}
		fclose(f);
	}
	closedir(d);
	json_object_object_add(m, "pt_caps", caps);
}

/* ---- Building --------------------------------------------------------- */

struct bw_json *bw_json__new(const char *session, const char *uuid,
			     const struct bt_bundle_write_opts *o)
{
	struct bw_json *j = calloc(1, sizeof(*j));
	struct timespec ts;

	if (!j)
		return NULL;
	j->o = *o;
	j->root = json_object_new_object();
	j->rings = json_object_new_array();
	j->clocks = json_object_new_array();
	clock_gettime(CLOCK_REALTIME, &ts);
	json_object_object_add(j->root, "format",
			       json_object_new_string("btrail-bundle"));
	json_object_object_add(j->root, "format_version",
			       json_object_new_int(BT_BUNDLE_FORMAT_VERSION));
	json_object_object_add(j->root, "btrail",
			       json_object_new_string(BTRAIL_VERSION_STRING));
	json_object_object_add(j->root, "session",
			       json_object_new_string(session));
	add_u64(j->root, "written_ns",
		(uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
	json_object_object_add(j->root, "uuid", json_object_new_string(uuid));
	json_object_object_add(j->root, "byte_order",
			       json_object_new_string(o->big_endian ?
						      "be" : "le"));
	return j;
}

void bw_json__free(struct bw_json *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->nimg; i++) {
		free(j->img[i].path);
		json_object_put(j->img[i].ranges);
	}
	free(j->img);
	json_object_put(j->root);
	json_object_put(j->rings);
	json_object_put(j->clocks);
	json_object_put(j->trigger);
	free(j);
}

static void note_clock(struct bw_json *j, const struct bt_event_value *v)
{
	static const char *const names[BT_CLOCK__N] = {
		"reason", "tsc_hz", "time_zero", "time_mult", "time_shift",
		"tsc", "perf_ns", "mono_ns", "real_ns",
	};
	json_object *c = json_object_new_object();

	json_object_object_add(c, names[0], str(&v[0]));
	for (int i = 1; i < BT_CLOCK__N; i++)
		add_u64(c, names[i], v[i].u);
	if (v[BT_CLOCK_TSC_HZ].u)
		j->tsc_hz = v[BT_CLOCK_TSC_HZ].u;
	json_object_array_add(j->clocks, c);
}

static void note_mmap(struct bw_json *j, const struct bt_event_value *v)
{
	const struct bt_event_value *file = &v[BT_MMAP_FILE];
	struct image *im = NULL;
	json_object *r;

	for (size_t i = 0; i < j->nimg; i++) {
		if (strlen(j->img[i].path) == file->len &&
		    !memcmp(j->img[i].path, file->p, file->len)) {
			im = &j->img[i];
			break;
		}
	}
	if (!im) {
		struct image *p;

		if (j->nimg >= MAX_IMAGES)
			return;
		p = realloc(j->img, (j->nimg + 1) * sizeof(*p));
		if (!p)
			return;
		j->img = p;
		im = &p[j->nimg];
		memset(im, 0, sizeof(*im));
		im->path = strndup(file->p ? file->p : "", file->len);
		if (!im->path)
			return;
		im->ranges = json_object_new_array();
		j->nimg++;
	}
	if (!im->ev_id_len && v[BT_MMAP_BUILD_ID].len &&
	    v[BT_MMAP_BUILD_ID].len <= BUILD_ID_MAX) {
		im->ev_id_len = v[BT_MMAP_BUILD_ID].len;
		memcpy(im->ev_id, v[BT_MMAP_BUILD_ID].p, im->ev_id_len);
	}
	if (im->nranges >= MAX_RANGES)
		return;
	r = json_object_new_object();
	json_object_object_add(r, "pid",
			       json_object_new_int((int)v[BT_MMAP_PID].i));
	json_object_object_add(r, "start", hex(v[BT_MMAP_ADDR].u));
	json_object_object_add(r, "end",
			       hex(v[BT_MMAP_ADDR].u + v[BT_MMAP_LEN].u));
	json_object_object_add(r, "pgoff", hex(v[BT_MMAP_PGOFF].u));
	json_object_array_add(im->ranges, r);
	im->nranges++;
}

static void note_trigger(struct bw_json *j, const struct bt_event_value *v)
{
	static const char *const regs[BT_REGS_N] = {
		"r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9",
		"r8", "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip",
		"cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es",
		"fs", "gs",
	};
	json_object *t = json_object_new_object();
	int signo = (int)v[BT_TRIGGER_SIGNO].i;
	const char *abbr = signo > 0 && signo < NSIG ?
			   sigabbrev_np(signo) : NULL;
	char sname[32];

	json_object_object_add(t, "reason", str(&v[BT_TRIGGER_REASON]));
	add_u64(t, "time", v[BT_TRIGGER_TIME].u);
	json_object_object_add(t, "pid",
			       json_object_new_int((int)v[BT_TRIGGER_PID].i));
	json_object_object_add(t, "tid",
			       json_object_new_int((int)v[BT_TRIGGER_TID].i));
	json_object_object_add(t, "signo", json_object_new_int(signo));
	if (abbr) {
		snprintf(sname, sizeof(sname), "SIG%s", abbr);
		json_object_object_add(t, "signal",
				       json_object_new_string(sname));
	} else {
		json_object_object_add(t, "signal", NULL);
	}
	json_object_object_add(t, "code",
			       json_object_new_int((int)v[BT_TRIGGER_CODE].i));
	json_object_object_add(t, "addr", hex(v[BT_TRIGGER_ADDR].u));
	json_object_object_add(t, "ip", hex(v[BT_TRIGGER_IP].u));
	if (v[BT_TRIGGER_REGS].len >= BT_REGS_SIZE) {
		json_object *r = json_object_new_object();

		for (uint32_t i = 0; i < BT_REGS_N; i++)
			json_object_object_add(r, regs[i],
				hex(bt_event_rec_u64(&v[BT_TRIGGER_REGS],
						     BT_REGS_SIZE, 0, i)));
		json_object_object_add(t, "registers", r);
	} else {
		json_object_object_add(t, "registers", NULL);
	}
	json_object_put(j->trigger);
	j->trigger = t;
}

void bw_json__event(struct bw_json *j, const struct bt_event_type *t,
		    const struct bt_event_value *v)
{
	switch (t->id) {
	case BT_EVID_CLOCK:
		note_clock(j, v);
		break;
	case BT_EVID_MMAP:
		note_mmap(j, v);
		break;
	case BT_EVID_TRIGGER:
		note_trigger(j, v);
		break;
	default:
		break;
	}
}

void bw_json__ring(struct bw_json *j, const struct bt_kmes_slot_stats *st,
		   const struct bw_ring_counts *c, const char *file)
{
	json_object *r = json_object_new_object();

	json_object_object_add(r, "slot", json_object_new_int64(st->slot));
	json_object_object_add(r, "file", json_object_new_string(file));
	json_object_object_add(r, "kind", json_object_new_string(
		st->kind == BT_KMES_RING_TASK ? "task" : "cpu"));
	json_object_object_add(r, "tid", json_object_new_int64(st->tid));
	add_u64(r, "capacity", st->capacity);
	add_u64(r, "events", c->events);
	add_u64(r, "raw_events", c->raw);
	add_u64(r, "packets", c->packets);
	add_u64(r, "first_seq", c->first_seq);
	add_u64(r, "last_seq", c->last_seq);
	add_u64(r, "produced", st->produced);
	add_u64(r, "missed", c->missed);
	add_u64(r, "gaps", c->gaps);
	add_u64(r, "lost", st->lost);
	add_u64(r, "dropped", st->dropped);
	add_u64(r, "corrupt", c->corrupt);
	json_object_array_add(j->rings, r);
}

/* ---- ELF build-ids and images/ ------------------------------------------ */

static long note_build_id(Elf_Data *d, unsigned char *id, size_t cap)
{
	size_t off = 0, noff, doff;
	GElf_Nhdr nh;

	while (off < d->d_size &&
	       (off = gelf_getnote(d, off, &nh, &noff, &doff)) > 0) {
		if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
		    !memcmp((char *)d->d_buf + noff, "GNU", 4)) {
			if (nh.n_descsz > cap || !nh.n_descsz)
				return -BT_ERRNO_FORMAT;
			memcpy(id, (char *)d->d_buf + doff, nh.n_descsz);
			return (long)nh.n_descsz;
		}
	}
	return -ENOENT;
}

/* The build-id of @e: its SHT_NOTE sections, else its PT_NOTE segments. */
static long elf_id(Elf *e, unsigned char *id, size_t cap)
{
	Elf_Scn *scn = NULL;
	long ret = -ENOENT;
	size_t nph = 0;

	while (ret < 0 && (scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		d = elf_getdata(scn, NULL);
		if (d && d->d_buf)
			ret = note_build_id(d, id, cap);
	}
	/* Stripped of section headers: the PT_NOTE segments. */
	if (ret < 0 && !elf_getphdrnum(e, &nph)) {
		for (size_t i = 0; i < nph && ret < 0; i++) {
			GElf_Phdr ph;
			Elf_Data *d;

			if (!gelf_getphdr(e, (int)i, &ph) ||
			    ph.p_type != PT_NOTE)
				continue;
			d = elf_getdata_rawchunk(e, (int64_t)ph.p_offset,
						 ph.p_filesz, ELF_T_NHDR);
			if (d && d->d_buf)
				ret = note_build_id(d, id, cap);
		}
	}
	return ret;
}

long bw_elf_build_id(const char *path, unsigned char *id, size_t cap)
{
	long ret;
	Elf *e;
	int fd;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -ENOSYS;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	e = elf_begin(fd, ELF_C_READ, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF)
		ret = -BT_ERRNO_FORMAT;
	else
		ret = elf_id(e, id, cap);
	if (e)
		elf_end(e);
	close(fd);
	return ret;
}

/* A hostile path's last component, usable as a file name, or NULL. */
static const char *safe_base(const char *path)
{
	const char *b = strrchr(path, '/');

	b = b ? b + 1 : path;
	if (!*b || !strcmp(b, ".") || !strcmp(b, ".."))
		return NULL;
	return b;
}

static void fnv_hex(const char *s, char *out, size_t cap)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	snprintf(out, cap, "path-%016" PRIx64, h);
}

/*
 * This process's vdso: its image (ELF header, program headers, the
 * PT_LOAD contents, section headers) as the kernel mapped it. 0 or
 * -ENOENT.
 */
static int vdso_self(const uint8_t **p, size_t *len)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)getauxval(AT_SYSINFO_EHDR);
	uint64_t end;

	if (!eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum > 64)
		return -ENOENT;
	end = eh->e_phoff + (uint64_t)eh->e_phnum * eh->e_phentsize;
	if (eh->e_shoff + (uint64_t)eh->e_shnum * eh->e_shentsize > end)
		end = eh->e_shoff + (uint64_t)eh->e_shnum * eh->e_shentsize;
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)
			((const uint8_t *)eh + eh->e_phoff) + i;

		if (ph->p_type == PT_LOAD && ph->p_offset + ph->p_filesz > end)
			end = ph->p_offset + ph->p_filesz;
	}
	/* the kernel's vdso is a few pages; more is not a vdso */
	if (end > (1u << 20))
		return -ENOENT;
	*p = (const uint8_t *)eh;
	*len = (size_t)end;
	return 0;
}

static int write_bytes(const char *to, const uint8_t *p, size_t len)
{
	int fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	int err = 0;

	if (fd < 0)
		return -errno;
	while (len && !err) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno != EINTR)
			err = -errno;
		if (w > 0) {
			p += w;
			len -= (size_t)w;
		}
	}
	if (close(fd) && !err)
		err = -errno;
	return err;
}

/*
 * The [vdso]: no file to copy, but the kernel writing the bundle is the
 * traced process's (same machine, same boot), so its vdso is the same
 * code: copy the writer's own to images/<build-id>/vdso.so (about 8 KiB,
 * always, with or without with_binaries). Not for a trace recorded
 * elsewhere (machine_cpuid) nor when the event carried another build-id.
 */
static void vdso_copy(struct bw_json *j, struct image *im, json_object *o,
		      const char *dir)
{
	unsigned char id[BUILD_ID_MAX];
	char sub[2 * BUILD_ID_MAX + 8], rel[PATH_MAX];
	char abs[2 * PATH_MAX + 16];
	const uint8_t *p;
	uint8_t *buf;
	size_t len;
	long n = -ENOENT;
	Elf *e;
	int err;

	if (j->o.machine_cpuid || vdso_self(&p, &len) < 0 ||
	    elf_version(EV_CURRENT) == EV_NONE)
		return;
	/* libelf wants writable memory: a copy */
	buf = malloc(len);
	if (!buf)
		return;
	memcpy(buf, p, len);
	e = elf_memory((char *)buf, len);
	if (e && elf_kind(e) == ELF_K_ELF)
		n = elf_id(e, id, sizeof(id));
	if (e)
		elf_end(e);
	if (n <= 0 || (im->ev_id_len && ((size_t)n != im->ev_id_len ||
					  memcmp(id, im->ev_id, (size_t)n)))) {
		pr_debug("bundle: the vdso has %s build-id: not copied\n",
			 n > 0 ? "another" : "no");
		free(buf);
		return;
	}
	for (long i = 0; i < n; i++)
		snprintf(sub + 2 * i, 3, "%02x", id[i]);
	snprintf(abs, sizeof(abs), "%s/images", dir);
	err = mkdir(abs, 0755) < 0 && errno != EEXIST ? -errno : 0;
	snprintf(abs, sizeof(abs), "%s/images/%s", dir, sub);
	if (!err && mkdir(abs, 0755) < 0 && errno != EEXIST)
		err = -errno;
	snprintf(rel, sizeof(rel), "images/%s/vdso.so", sub);
	snprintf(abs, sizeof(abs), "%s/%s", dir, rel);
	if (!err)
		err = write_bytes(abs, buf, len);
	free(buf);
	if (err && err != -EEXIST) {
		pr_warn("bundle: cannot write %s: %s\n", abs,
			strerror(-err));
		return;
	}
	json_object_object_add(o, "build_id", hexbytes(id, (size_t)n));
	json_object_object_add(o, "build_id_source",
			       json_object_new_string("elf"));
	json_object_object_add(o, "copy", json_object_new_string(rel));
	j->copied = true;
}

static json_object *image_json(struct bw_json *j, struct image *im,
			       const char *dir)
{
	json_object *o = json_object_new_object();
	unsigned char id[BUILD_ID_MAX];
	char src[PATH_MAX], sub[2 * BUILD_ID_MAX + 8], rel[PATH_MAX];
	char abs[2 * PATH_MAX + 16];
	const char *base = safe_base(im->path);
	const char *idsrc = NULL;
	long n = -ENOENT;
	bool file = im->path[0] == '/';

	json_object_object_add(o, "path", json_object_new_string(im->path));
	snprintf(src, sizeof(src), "%s%s", strcmp(j->o.sysroot, "/") ?
		 j->o.sysroot : "", im->path);
	if (file)
		n = bw_elf_build_id(src, id, sizeof(id));
	if (n > 0) {
		idsrc = "elf";
	} else if (im->ev_id_len) {
		memcpy(id, im->ev_id, im->ev_id_len);
		n = (long)im->ev_id_len;
		idsrc = "event";
	}
	if (n > 0) {
		json_object_object_add(o, "build_id", hexbytes(id, (size_t)n));
		if (im->ev_id_len && !strcmp(idsrc, "elf") &&
		    ((size_t)n != im->ev_id_len ||
		     memcmp(id, im->ev_id, (size_t)n)))
			pr_warn("bundle: %s: build-id differs from the "
				"recorded one", src);
	} else {
		json_object_object_add(o, "build_id", NULL);
	}
	json_object_object_add(o, "build_id_source",
			       idsrc ? json_object_new_string(idsrc) : NULL);
	json_object_object_add(o, "ranges", json_object_get(im->ranges));

	if (!strcmp(im->path, "[vdso]")) {
		json_object_object_add(o, "copy", NULL);
		vdso_copy(j, im, o, dir);
		return o;
	}
	if (!j->o.with_binaries || !file || !base) {
		json_object_object_add(o, "copy", NULL);
		return o;
	}
	if (n > 0) {
		for (long i = 0; i < n; i++)
			snprintf(sub + 2 * i, 3, "%02x", id[i]);
	} else {
		fnv_hex(im->path, sub, sizeof(sub));
	}
	snprintf(rel, sizeof(rel), "images/%s", sub);
	snprintf(abs, sizeof(abs), "%s/%s", dir, rel);
	if (mkdir(abs, 0755) < 0 && errno != EEXIST) {
		json_object_object_add(o, "copy", NULL);
		return o;
	}
	snprintf(rel, sizeof(rel), "images/%s/%s", sub, base);
	snprintf(abs, sizeof(abs), "%s/%s", dir, rel);
	n = bt_copy_file(src, abs);
	if (n == 0 || n == -EEXIST) {
		json_object_object_add(o, "copy",
				       json_object_new_string(rel));
		j->copied = true;
	} else {
		pr_warn("bundle: cannot copy %s: %s", src,
			strerror((int)-n));
		json_object_object_add(o, "copy", NULL);
	}
	return o;
}

int bw_json__finish(struct bw_json *j, const char *dir)
{
	json_object *m = json_object_new_object(), *imgs;
	char path[PATH_MAX];
	const char *txt;
	FILE *f;
	int err = 0;

	if (j->o.machine_cpuid) {
		machine_recorded(m, j->o.machine_cpuid, j->tsc_hz);
	} else {
		machine_cpuid(m, j->tsc_hz);
		cpuinfo_model_name(m);
		machine_pt_caps(m);
	}
	json_object_object_add(j->root, "machine", m);
	json_object_object_add(j->root, "clocks", json_object_get(j->clocks));
	{
		size_t n = json_object_array_length(j->clocks);

		json_object_object_add(j->root, "clock", n ?
			json_object_get(json_object_array_get_idx(j->clocks,
								  n - 1)) :
			NULL);
	}
	json_object_object_add(j->root, "trigger",
			       j->trigger ? json_object_get(j->trigger) : NULL);
	json_object_object_add(j->root, "rings", json_object_get(j->rings));

	if (j->o.with_binaries) {
		snprintf(path, sizeof(path), "%s/images", dir);
		if (mkdir(path, 0755) < 0)
			return -errno;
	}
	imgs = json_object_new_array();
	for (size_t i = 0; i < j->nimg; i++)
		json_object_array_add(imgs, image_json(j, &j->img[i], dir));
	json_object_object_add(j->root, "images", imgs);
	json_object_object_add(j->root, "images_dir",
			       j->o.with_binaries || j->copied ?
			       json_object_new_string("images") : NULL);

	txt = json_object_to_json_string_ext(j->root, JSON_C_TO_STRING_PRETTY |
					     JSON_C_TO_STRING_NOSLASHESCAPE);
	snprintf(path, sizeof(path), "%s/btrail.json", dir);
	f = fopen(path, "wx");
	if (!f)
		return -errno;
	if (fputs(txt, f) < 0 || fputc('\n', f) < 0)
		err = -EIO;
	if (fclose(f) && !err)
		err = -errno;
	return err;
}
