// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail script PERF.DATA: decode the Intel PT trace of a perf.data file
 * (perf record -e intel_pt//), one CPU after the other, with libipt
 * through struct bt_ptdec. The image is built from the file's MMAP and
 * MMAP2 records: each mapped binary is looked up under --sysroot (the
 * recorded path) or --buildid-dir (by build-id), and one whose build-id
 * differs from the recorded one is not used. Every binary that cannot be
 * had is named once on stderr, by build-id and path, and decoding goes
 * on: where the image has no code the decoder reports an error and
 * resynchronises at the next PSB, and its events (paging, mode, TSX,
 * enable/disable with their IPs) still come out. --packets prints the
 * packets instead, as libipt's ptdump does, which needs no binary at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <getopt.h>
#include <inttypes.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <intel-pt.h>

#include <btrail/decoder.h>
#include <btrail/errno.h>
#include <btrail/perfdata.h>

#include "btrail.h"

struct sp_opts {
	const char *sysroot;
	const char *buildid_dir;
	bool packets;
	bool insn;
	bool no_inst;
	int64_t cpu;		/* -1: all */
};

/* One mapping of the image: the record and where its binary is. */
struct sp_map {
	uint64_t addr, len, pgoff;
	const char *file;	/* recorded path, in the reader */
	unsigned char id[20];
	uint8_t id_size;
	char *found;		/* the binary used, or NULL: missing */
};

static int usage(FILE *f, int status)
{
	fprintf(f,
"Usage: %s script PERF.DATA [--sysroot DIR] [--buildid-dir DIR]\n"
"                 [--cpu N] [--packets] [--insn-decoder] [--no-inst]\n"
"\n"
"Decode the Intel PT trace of PERF.DATA (perf record -e intel_pt//, either\n"
"layout), one CPU after the other, with the image the MMAP/MMAP2 records\n"
"describe. A binary that cannot be found is named on stderr by build-id\n"
"and path; decoding goes on, with an error line where code is missing and\n"
"resynchronisation at the next PSB.\n"
"\n"
"  --sysroot DIR      look binaries up as DIR/<recorded path>\n"
"  --buildid-dir DIR  look binaries up by build-id: DIR/xx/rest[/elf]\n"
"  --cpu N            only CPU N\n"
"  --packets          print the packets (libipt ptdump's listing) instead\n"
"  --insn-decoder     libipt's instruction decoder (default: block)\n"
"  --no-inst          addresses only, no disassembly\n"
"\n"
"Exit status: 0 done, 1 failure, 2 bad command line, 3 malformed file.\n",
		bin_name);
	return status;
}

bool script_is_perfdata(const char *path)
{
	char magic[8];
	struct stat st;
	ssize_t n;
	int fd;

	if (stat(path, &st) || !S_ISREG(st.st_mode))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, magic, sizeof(magic));
	close(fd);
	return n == (ssize_t)sizeof(magic) && !memcmp(magic, "PERFILE2", 8);
}

/* ---- Binaries ------------------------------------------------------------ */

/* The NT_GNU_BUILD_ID of ELF file @path into @id; its length, or -1. */
static int elf_build_id(const char *path, unsigned char *id, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), len = -1;
	Elf_Scn *scn = NULL;
	Elf *e;

	if (fd < 0)
		return -1;
	elf_version(EV_CURRENT);
	e = elf_begin(fd, ELF_C_READ, NULL);
	while (e && len < 0 && (scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		GElf_Nhdr nh;
		size_t off = 0, noff, doff;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		d = elf_getdata(scn, NULL);
		while (d && (off = gelf_getnote(d, off, &nh, &noff, &doff))) {
			if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
			    !memcmp((char *)d->d_buf + noff, "GNU", 4) &&
			    nh.n_descsz <= cap) {
				memcpy(id, (char *)d->d_buf + doff, nh.n_descsz);
				len = (int)nh.n_descsz;
				break;
			}
		}
	}
	elf_end(e);
	close(fd);
	return len;
}

static void hex(char *out, const unsigned char *id, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", id[i]);
	out[2 * n] = 0;
}

/* A usable copy of @m's binary at @path: it exists and, when the record
 * has a build-id, carries that one. */
static bool usable(const struct sp_map *m, const char *path)
{
	unsigned char id[64];
	struct stat st;
	int n;

	if (stat(path, &st) || !S_ISREG(st.st_mode))
		return false;
	if (!m->id_size)
		return true;
	n = elf_build_id(path, id, sizeof(id));
	return n == m->id_size && !memcmp(id, m->id, m->id_size);
}

static char *find_binary(const struct sp_opts *o, const struct sp_map *m)
{
	char path[4096], h[41];

	if (m->id_size && o->buildid_dir) {
		hex(h, m->id, m->id_size);
		snprintf(path, sizeof(path), "%s/%.2s/%s", o->buildid_dir, h,
			 h + 2);
		if (usable(m, path))
			return strdup(path);
		snprintf(path, sizeof(path), "%s/%.2s/%s/elf", o->buildid_dir,
			 h, h + 2);
		if (usable(m, path))
			return strdup(path);
	}
	/* pseudo-files ([vdso], [kernel.kallsyms]_text) have no path */
	if (m->file[0] != '/')
		return NULL;
	snprintf(path, sizeof(path), "%s%s",
		 o->sysroot ? o->sysroot : "", m->file);
	if (usable(m, path))
		return strdup(path);
	return NULL;
}

static const struct bt_perf_build_id *table_id(struct bt_perfdata *pd,
					       const char *file)
{
	static const char kernel[] = "[kernel.kallsyms]";
	bool is_kernel = !strncmp(file, kernel, sizeof(kernel) - 1);

	for (size_t i = 0; i < bt_perfdata__nr_build_ids(pd); i++) {
		const struct bt_perf_build_id *b =
			bt_perfdata__build_id(pd, i);

		if (!strcmp(b->path, file) ||
		    (is_kernel && !strcmp(b->path, kernel)))
			return b;
	}
	return NULL;
}

/* The mappings of the file, each binary looked up once. */
static int load_maps(struct bt_perfdata *pd, const struct sp_opts *o,
		     struct sp_map **out, size_t *nout)
{
	struct sp_map *maps = NULL;
	struct bt_perf_record r;
	size_t n = 0, cap = 0;
	int ret;

	bt_perfdata__rewind(pd);
	while ((ret = bt_perfdata__next(pd, &r)) == 1) {
		const struct bt_perf_build_id *b;
		struct sp_map *m;

		if (r.type != BT_PERF_REC_MMAP && r.type != BT_PERF_REC_MMAP2)
			continue;
		if (r.type == BT_PERF_REC_MMAP2 &&
		    !(r.u.mmap.prot & 4 /* PROT_EXEC */))
			continue;
		if (n == cap) {
			struct sp_map *p;

			cap = cap ? 2 * cap : 64;
			p = realloc(maps, cap * sizeof(*maps));
			if (!p) {
				ret = -ENOMEM;
				break;
			}
			maps = p;
		}
		m = &maps[n++];
		memset(m, 0, sizeof(*m));
		m->addr = r.u.mmap.addr;
		m->len = r.u.mmap.len;
		m->pgoff = r.u.mmap.pgoff;
		m->file = r.u.mmap.filename;
		if (r.u.mmap.build_id_size) {
			m->id_size = r.u.mmap.build_id_size;
			memcpy(m->id, r.u.mmap.build_id, m->id_size);
		} else if ((b = table_id(pd, m->file))) {
			m->id_size = b->size;
			memcpy(m->id, b->id, b->size);
		}
		/* the same binary mapped again: found or missing as before */
		for (size_t i = 0; i + 1 < n; i++) {
			if (!strcmp(maps[i].file, m->file) &&
			    maps[i].id_size == m->id_size &&
			    !memcmp(maps[i].id, m->id, m->id_size)) {
				m->found = maps[i].found ?
					   strdup(maps[i].found) : NULL;
				goto next;
			}
		}
		m->found = find_binary(o, m);
		if (!m->found) {
			char h[41] = "(none recorded)";

			if (m->id_size)
				hex(h, m->id, m->id_size);
			fprintf(stderr, "%s: script: missing binary: build-id "
				"%s %s (mapped at %#" PRIx64 "); its code is not "
				"decoded\n", bin_name, h, m->file, m->addr);
		}
next:;
	}
	*out = maps;
	*nout = n;
	return ret < 0 ? ret : 0;
}

static void free_maps(struct sp_map *maps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(maps[i].found);
	free(maps);
}

/* ---- Packets (libipt ptdump's listing) ---------------------------------- */

static void print_ip(FILE *f, const struct pt_packet_ip *ip)
{
	uint64_t v = ip->ip;

	switch (ip->ipc) {
	case pt_ipc_suppressed:
		fprintf(f, "0: ????????????????");
		break;
	case pt_ipc_update_16:
		fprintf(f, "1: ????????????%04" PRIx64, v & 0xffff);
		break;
	case pt_ipc_update_32:
		fprintf(f, "2: ????????%08" PRIx64, v & 0xffffffff);
		break;
	case pt_ipc_sext_48:
		v &= 0xffffffffffffull;
		if (v & (1ull << 47))
			v |= 0xffff000000000000ull;
		fprintf(f, "3: %016" PRIx64, v);
		break;
	case pt_ipc_update_48:
		fprintf(f, "4: ????%012" PRIx64, v & UINT64_C(0xffffffffffff));
		break;
	case pt_ipc_full:
		fprintf(f, "6: %016" PRIx64, v);
		break;
	default:
		fprintf(f, "%d: %016" PRIx64, (int)ip->ipc, v);
		break;
	}
}

static void print_packet(FILE *f, uint64_t off, const struct pt_packet *p)
{
	static const char *const names[] = {
		[ppt_invalid] = "invalid", [ppt_unknown] = "unknown",
		[ppt_pad] = "pad", [ppt_psb] = "psb", [ppt_psbend] = "psbend",
		[ppt_fup] = "fup", [ppt_tip] = "tip", [ppt_tip_pge] = "tip.pge",
		[ppt_tip_pgd] = "tip.pgd", [ppt_tnt_8] = "tnt.8",
		[ppt_tnt_64] = "tnt.64", [ppt_mode] = "mode", [ppt_pip] = "pip",
		[ppt_vmcs] = "vmcs", [ppt_cbr] = "cbr", [ppt_tsc] = "tsc",
		[ppt_tma] = "tma", [ppt_mtc] = "mtc", [ppt_cyc] = "cyc",
		[ppt_stop] = "stop", [ppt_ovf] = "ovf", [ppt_mnt] = "mnt",
		[ppt_exstop] = "exstop", [ppt_mwait] = "mwait",
		[ppt_pwre] = "pwre", [ppt_pwrx] = "pwrx", [ppt_ptw] = "ptw",
	};
	const char *name = (size_t)p->type < sizeof(names) / sizeof(*names) &&
			   names[p->type] ? names[p->type] : "?";

	fprintf(f, "%016" PRIx64 "  ", off);
	if (p->type == ppt_mode) {
		const struct pt_packet_mode *m = &p->payload.mode;

		if (m->leaf == pt_mol_exec)
			fprintf(f, "%-11s%s%s%s", "mode.exec",
				m->bits.exec.csl ? "cs.l" : "",
				m->bits.exec.csl && m->bits.exec.csd ?
				", " : "", m->bits.exec.csd ? "cs.d" : "");
		else
			fprintf(f, "%-11s%s%s%s", "mode.tsx",
				m->bits.tsx.intx ? "intx" : "",
				m->bits.tsx.intx && m->bits.tsx.abrt ?
				", " : "", m->bits.tsx.abrt ? "abrt" : "");
		fputc('\n', f);
		return;
	}
	fprintf(f, "%-11s", name);
	switch (p->type) {
	case ppt_fup:
	case ppt_tip:
	case ppt_tip_pge:
	case ppt_tip_pgd:
		print_ip(f, &p->payload.ip);
		break;
	case ppt_tnt_8:
	case ppt_tnt_64:
		for (int b = p->payload.tnt.bit_size - 1; b >= 0; b--)
			fputc(p->payload.tnt.payload >> b & 1 ? '!' : '.', f);
		break;
	case ppt_pip:
		fprintf(f, "%-26" PRIx64 "cr3  %016" PRIx64 "%s",
			p->payload.pip.cr3, p->payload.pip.cr3,
			p->payload.pip.nr ? ", nr" : "");
		break;
	case ppt_vmcs:
		fprintf(f, "%-14" PRIx64 "vmcs %016" PRIx64,
			p->payload.vmcs.base, p->payload.vmcs.base);
		break;
	case ppt_cbr:
		fprintf(f, "%x", p->payload.cbr.ratio);
		break;
	case ppt_tsc:
		fprintf(f, "%" PRIx64, p->payload.tsc.tsc);
		break;
	case ppt_tma:
		fprintf(f, "%x, %x", p->payload.tma.ctc, p->payload.tma.fc);
		break;
	case ppt_mtc:
		fprintf(f, "%x", p->payload.mtc.ctc);
		break;
	case ppt_cyc:
		fprintf(f, "%" PRIx64, p->payload.cyc.value);
		break;
	case ppt_mnt:
		fprintf(f, "%" PRIx64, p->payload.mnt.payload);
		break;
	case ppt_exstop:
		fprintf(f, "%s", p->payload.exstop.ip ? "ip" : "");
		break;
	case ppt_mwait:
		fprintf(f, "%08x, %08x", p->payload.mwait.hints,
			p->payload.mwait.ext);
		break;
	case ppt_pwre:
		fprintf(f, "c%u.%u%s", (p->payload.pwre.state + 1) & 0xf,
			(p->payload.pwre.sub_state + 1) & 0xf,
			p->payload.pwre.hw ? ", hw" : "");
		break;
	case ppt_pwrx:
		fprintf(f, "%s: c%u, c%u",
			p->payload.pwrx.interrupt ? "int" :
			p->payload.pwrx.store ? "st" :
			p->payload.pwrx.autonomous ? "hw" : "",
			(p->payload.pwrx.last + 1) & 0xf,
			(p->payload.pwrx.deepest + 1) & 0xf);
		break;
	case ppt_ptw:
		fprintf(f, "%x: %" PRIx64 "%s", p->payload.ptw.plc,
			p->payload.ptw.payload, p->payload.ptw.ip ? ", ip" : "");
		break;
	default:
		break;
	}
	fputc('\n', f);
}

/* Every packet of @buf; a decode error is a line and a resync. */
static int dump_packets(FILE *f, const unsigned char *buf, size_t size,
			const struct pt_config *base, uint64_t *errors)
{
	struct pt_config cfg = *base;
	struct pt_packet_decoder *dec;
	int status;

	cfg.begin = (uint8_t *)buf;
	cfg.end = (uint8_t *)buf + size;
	dec = pt_pkt_alloc_decoder(&cfg);
	if (!dec)
		return -ENOMEM;
	for (;;) {
		uint64_t off = 0;

		status = pt_pkt_sync_forward(dec);
		if (status < 0) {
			if (status != -pte_eos) {
				fprintf(f, "[error: %s]\n",
					pt_errstr(pt_errcode(status)));
				(*errors)++;
			}
			break;
		}
		for (;;) {
			struct pt_packet pkt;

			pt_pkt_get_offset(dec, &off);
			status = pt_pkt_next(dec, &pkt, sizeof(pkt));
			if (status < 0)
				break;
			/* PAD carries nothing; ptdump's listings here omit it */
			if (pkt.type != ppt_pad)
				print_packet(f, off, &pkt);
		}
		if (status == -pte_eos)
			break;
		fprintf(f, "[%" PRIx64 ": error: %s]\n", off,
			pt_errstr(pt_errcode(status)));
		(*errors)++;
	}
	pt_pkt_free_decoder(dec);
	return ferror(f) ? -EIO : 0;
}

/* ---- Decoding ------------------------------------------------------------- */

/* The decoder's configuration from the recording's CPUID, intel_pt attr
 * and AUXTRACE_INFO. */
static void dec_config(struct bt_perfdata *pd, struct bt_ptdec_opts *d,
		       struct pt_config *pc)
{
	const struct bt_perf_features *ft = bt_perfdata__features(pd);
	const struct bt_perf_auxtrace_info *ai = bt_perfdata__auxtrace_info(pd);
	unsigned fam, model, step;

	if (ft->cpuid && sscanf(ft->cpuid, "GenuineIntel,%u,%u,%u", &fam,
				&model, &step) == 3 && fam < 65536 &&
	    model < 256 && step < 256) {
		d->has_cpu = true;
		d->cpu_family = (uint16_t)fam;
		d->cpu_model = (uint8_t)model;
		d->cpu_stepping = (uint8_t)step;
		pc->cpu.vendor = pcv_intel;
		pc->cpu.family = (uint16_t)fam;
		pc->cpu.model = (uint8_t)model;
		pc->cpu.stepping = (uint8_t)step;
	}
	if (!ai->present || ai->type != BT_PERF_AUXTRACE_INTEL_PT)
		return;
	for (size_t i = 0; i < bt_perfdata__nr_attrs(pd); i++) {
		const struct bt_perf_attr *a = bt_perfdata__attr(pd, i);
		uint64_t mask = ai->mtc_freq_bits;

		if (a->type != ai->pmu_type || !mask)
			continue;
		d->mtc_freq = (uint8_t)((a->config & mask) >>
					__builtin_ctzll(mask));
		break;
	}
	d->nom_freq = (uint8_t)ai->max_nonturbo_ratio;
	d->cpuid_0x15_eax = (uint32_t)ai->tsc_ctc_ratio_d;
	d->cpuid_0x15_ebx = (uint32_t)ai->tsc_ctc_ratio_n;
	pc->mtc_freq = d->mtc_freq;
	pc->nom_freq = d->nom_freq;
	pc->cpuid_0x15_eax = d->cpuid_0x15_eax;
	pc->cpuid_0x15_ebx = d->cpuid_0x15_ebx;
}

static int decode_cpu(FILE *out, const struct bt_ptdec_opts *dopts,
		      const struct sp_opts *o, const struct sp_map *maps,
		      size_t nmaps, const void *buf, size_t size,
		      struct bt_ptdec_stats *st)
{
	struct bt_ptdec_print_opts po = { .sz = sizeof(po) };
	struct bt_ptdec *d = bt_ptdec__new(dopts);
	int err;

	if (!d)
		return -errno;
	err = bt_ptdec__set_trace_mem(d, buf, size);
	for (size_t i = 0; !err && i < nmaps; i++) {
		const struct sp_map *m = &maps[i];
		struct stat sb;
		uint64_t len = m->len;

		if (!m->found || stat(m->found, &sb))
			continue;
		if (m->pgoff >= (uint64_t)sb.st_size)
			continue;
		if (len > (uint64_t)sb.st_size - m->pgoff)
			len = 0;	/* to the end of the file */
		if (bt_ptdec__add_file(d, m->found, m->pgoff, len, m->addr))
			fprintf(stderr, "%s: script: cannot map %s at %#"
				PRIx64 "\n", bin_name, m->found, m->addr);
	}
	po.no_inst = o->no_inst;
	po.event_ip = true;
	if (!err)
		err = bt_ptdec__print(d, out, &po, st);
	bt_ptdec__free(d);
	return err;
}

int script_perfdata(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sysroot",      required_argument, NULL, 's' },
		{ "buildid-dir",  required_argument, NULL, 'b' },
		{ "cpu",          required_argument, NULL, 'c' },
		{ "packets",      no_argument,       NULL, 'p' },
		{ "insn-decoder", no_argument,       NULL, 'i' },
		{ "no-inst",      no_argument,       NULL, 'n' },
		{ "help",         no_argument,       NULL, 'h' },
		{ NULL,           0,                 NULL, 0 },
	};
	struct bt_ptdec_opts dopts = { .sz = sizeof(dopts) };
	struct sp_opts o = { .cpu = -1 };
	struct pt_config pc;
	struct bt_perfdata *pd;
	struct sp_map *maps = NULL;
	size_t nmaps = 0, done = 0;
	bool hint = false;
	const char *path;
	int c, err = 0;
	char *end;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			o.sysroot = optarg;
			break;
		case 'b':
			o.buildid_dir = optarg;
			break;
		case 'c':
			errno = 0;
			o.cpu = strtoll(optarg, &end, 0);
			if (errno || *end || o.cpu < 0 || o.cpu > UINT32_MAX) {
				err_msg("script: --cpu %s: not a CPU number",
					optarg);
				return BT_EXIT_USAGE;
			}
			break;
		case 'p':
			o.packets = true;
			break;
		case 'i':
			o.insn = true;
			break;
		case 'n':
			o.no_inst = true;
			break;
		case 'h':
			return usage(stdout, BT_EXIT_OK);
		default:
			return usage(stderr, BT_EXIT_USAGE);
		}
	}
	if (optind + 1 != argc) {
		err_msg("script: give one perf.data file");
		return usage(stderr, BT_EXIT_USAGE);
	}
	path = argv[optind];
	pd = bt_perfdata__open(path, NULL);
	if (!pd) {
		err = errno;
		err_msg("script: %s: %s", path, err == BT_ERRNO_FORMAT ?
			"not a perf.data file we can read (see above)" :
			bt_strerror(err));
		return err == BT_ERRNO_FORMAT ? BT_EXIT_DATA : BT_EXIT_FAIL;
	}
	pt_config_init(&pc);
	dopts.kind = o.insn ? BT_PTDEC_INSN : BT_PTDEC_BLOCK;
	dec_config(pd, &dopts, &pc);
	if (!o.packets)
		err = load_maps(pd, &o, &maps, &nmaps);

	for (size_t i = 0; !err && i < bt_perfdata__nr_aux_streams(pd); i++) {
		const struct bt_perf_aux_stream *s =
			bt_perfdata__aux_stream(pd, i);
		struct bt_ptdec_stats st = { 0 };
		uint64_t errors = 0;
		void *buf;
		size_t size;

		if (o.cpu >= 0 && s->cpu != (uint64_t)o.cpu)
			continue;
		err = bt_perfdata__aux_read(pd, i, &buf, &size);
		if (err)
			break;
		if (s->cpu == UINT32_MAX)
			printf("# mmap index %u (tid %u): %zu bytes of trace\n",
			       s->idx, s->tid, size);
		else
			printf("# cpu %u: %zu bytes of trace\n", s->cpu, size);
		if (o.packets) {
			err = dump_packets(stdout, buf, size, &pc, &errors);
			printf("# cpu %u: %" PRIu64 " errors\n", s->cpu,
			       errors);
		} else {
			err = decode_cpu(stdout, &dopts, &o, maps, nmaps, buf,
					 size, &st);
			printf("# cpu %u: %" PRIu64 " instructions, %" PRIu64
			       " errors, %" PRIu64 " PSBs synchronised at\n",
			       s->cpu, st.insn, st.errors, st.syncs);
			if (!st.insn && st.errors)
				hint = true;
		}
		free(buf);
		done++;
	}
	free_maps(maps, nmaps);
	bt_perfdata__close(pd);
	if (fflush(stdout) || ferror(stdout))
		err = -EIO;
	if (err) {
		err_msg("script: %s: %s", path, err == -EIO ?
			"cannot write the output" : bt_strerror(-err));
		return BT_EXIT_FAIL;
	}
	if (hint)
		err_msg("script: note: no code could be decoded (binaries "
			"missing); --packets lists the trace's packets");
	if (!done)
		err_msg("script: warning: %s has no Intel PT trace%s", path,
			o.cpu >= 0 ? " of that CPU" : "");
	return BT_EXIT_OK;
}
