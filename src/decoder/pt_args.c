// SPDX-License-Identifier: BSD-3-Clause
/*
 * The raw-PT options of `btrail script`, spelt as libipt's ptxed spells
 * them (--raw FILE:BASE, --cpu F/M, --pevent:primary FILE, ...). As in
 * ptxed, the --pevent:* settings given before a --pevent:primary or
 * --pevent:secondary apply to that stream.
 */
#include <cpuid.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "decoder/pt_args.h"

__attribute__((format(printf, 2, 3)))
static int bad(struct ptd_args *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->err, sizeof(a->err), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int get_u64(struct ptd_args *a, const char *opt, const char *arg,
		   uint64_t max, uint64_t *out)
{
	char *rest;

	if (!arg || !*arg || *arg == '-')
		return bad(a, "%s: missing or bad argument", opt);
	errno = 0;
	*out = strtoull(arg, &rest, 0);
	if (errno || *rest)
		return bad(a, "%s: bad number '%s'", opt, arg);
	if (*out > max)
		return bad(a, "%s: %s is over %" PRIu64, opt, arg, max);
	return 0;
}

/* "F/M[/S]", or "none", or "auto" (this machine, which must be Intel). */
static int parse_cpu(struct ptd_args *a, const char *arg)
{
	unsigned long f, m, s = 0;
	char *rest;

	if (!arg)
		return bad(a, "--cpu: missing argument");
	if (!strcmp(arg, "none")) {
		a->dec.has_cpu = false;
		a->dec.cpu_family = 0;
		a->dec.cpu_model = 0;
		a->dec.cpu_stepping = 0;
		return 0;
	}
	if (!strcmp(arg, "auto")) {
		unsigned int eax, ebx, ecx, edx;

		if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx) ||
		    ebx != 0x756e6547 || edx != 0x49656e69 ||
		    ecx != 0x6c65746e)
			return bad(a, "--cpu auto: this is not an Intel CPU; "
				   "give the trace's CPU as --cpu F/M");
		__get_cpuid(1, &eax, &ebx, &ecx, &edx);
		f = (eax >> 8) & 0xf;
		m = (eax >> 4) & 0xf;
		s = eax & 0xf;
		if (f == 0xf)
			f += (eax >> 20) & 0xff;
		if (f == 0x6 || f == 0xf)
			m += ((eax >> 16) & 0xf) << 4;
		a->dec.has_cpu = true;
		a->dec.cpu_family = (uint16_t)f;
		a->dec.cpu_model = (uint8_t)m;
		a->dec.cpu_stepping = (uint8_t)s;
		return 0;
	}
	errno = 0;
	f = strtoul(arg, &rest, 0);
	if (errno || rest == arg || *rest != '/' || f > UINT16_MAX)
		goto fail;
	arg = rest + 1;
	m = strtoul(arg, &rest, 0);
	if (errno || rest == arg || m > UINT8_MAX)
		goto fail;
	if (*rest == '/') {
		arg = rest + 1;
		s = strtoul(arg, &rest, 0);
		if (errno || rest == arg || s > UINT8_MAX)
			goto fail;
	}
	if (*rest)
		goto fail;
	a->dec.has_cpu = true;
	a->dec.cpu_family = (uint16_t)f;
	a->dec.cpu_model = (uint8_t)m;
	a->dec.cpu_stepping = (uint8_t)s;
	return 0;
fail:
	return bad(a, "--cpu: expected F/M[/S], 'none' or 'auto', not '%s'",
		   arg);
}

/* --filter:addrN_cfg/_a/_b */
static int parse_filter(struct ptd_args *a, const char *opt, const char *arg)
{
	const char *p = opt + strlen("--filter:addr");
	unsigned n;
	uint64_t v;
	int err;

	if (*p < '0' || *p > '3')
		return bad(a, "unknown option %s", opt);
	n = (unsigned)(*p - '0');
	p++;
	if (!strcmp(p, "_cfg")) {
		err = get_u64(a, opt, arg, 15, &v);
		if (err)
			return err;
		a->dec.addr_cfg &= ~(0xfull << (n * 4));
		a->dec.addr_cfg |= v << (n * 4);
		return 0;
	}
	if (!strcmp(p, "_a"))
		return get_u64(a, opt, arg, UINT64_MAX, &a->dec.addr_a[n]);
	if (!strcmp(p, "_b"))
		return get_u64(a, opt, arg, UINT64_MAX, &a->dec.addr_b[n]);
	return bad(a, "unknown option %s", opt);
}

static int add_pevent(struct ptd_args *a, const char *spec, bool primary)
{
	struct ptd_pevent_arg *n;

	if (!spec)
		return bad(a, "--pevent:%s: missing argument",
			   primary ? "primary" : "secondary");
	n = realloc(a->pev, (a->nr_pev + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	a->pev = n;
	n[a->nr_pev].spec = spec;
	n[a->nr_pev].o = a->pev_cur;
	n[a->nr_pev].o.sz = sizeof(n->o);
	n[a->nr_pev].o.primary = primary;
	a->nr_pev++;
	return 0;
}

static int parse_pevent(struct ptd_args *a, const char *opt, const char *arg)
{
	struct bt_pevent_opts *o = &a->pev_cur;
	const char *what = opt + strlen("--pevent:");
	uint64_t v;
	int err;

	if (!strcmp(what, "primary"))
		return add_pevent(a, arg, true);
	if (!strcmp(what, "secondary"))
		return add_pevent(a, arg, false);
	if (!strcmp(what, "sample-type"))
		return get_u64(a, opt, arg, UINT64_MAX, &o->sample_type);
	if (!strcmp(what, "time-zero"))
		return get_u64(a, opt, arg, UINT64_MAX, &o->time_zero);
	if (!strcmp(what, "time-shift")) {
		err = get_u64(a, opt, arg, UINT16_MAX, &v);
		o->time_shift = (uint16_t)v;
		return err;
	}
	if (!strcmp(what, "time-mult")) {
		err = get_u64(a, opt, arg, UINT32_MAX, &v);
		o->time_mult = (uint32_t)v;
		return err;
	}
	if (!strcmp(what, "tsc-offset"))
		return get_u64(a, opt, arg, UINT64_MAX, &o->tsc_offset);
	if (!strcmp(what, "kernel-start"))
		return get_u64(a, opt, arg, UINT64_MAX, &o->kernel_start);
	if (!arg)
		return bad(a, "%s: missing argument", opt);
	if (!strcmp(what, "sysroot"))
		o->sysroot = arg;
	else if (!strcmp(what, "vdso-x64"))
		o->vdso_x64 = arg;
	else if (!strcmp(what, "vdso-x32"))
		o->vdso_x32 = arg;
	else if (!strcmp(what, "vdso-ia32"))
		o->vdso_ia32 = arg;
	else
		return bad(a, "unknown option %s", opt);
	return 0;
}

/* Options without an argument: a flag each. */
static bool *flag(struct ptd_args *a, const char *opt)
{
	static const struct {
		const char *name;
		size_t off;
		bool print;
	} flags[] = {
#define P(n, f) { n, offsetof(struct bt_ptdec_print_opts, f), true }
#define D(n, f) { n, offsetof(struct bt_ptdec_opts, f), false }
		P("--no-inst", no_inst), P("--quiet", quiet), P("-q", quiet),
		P("--event:ip", event_ip), P("--event:time", event_time),
		P("--block:show-blocks", show_blocks), P("--stat", stat),
		P("--sb", sb_compact), P("--sb:compact", sb_compact),
		P("--sb:verbose", sb_verbose), P("--sb:offset", sb_offset),
		P("--sb:filename", sb_filename), P("--sb:time", sb_time),
		P("--sb:switch", sb_switch), P("--sb:warn", sb_warn),
		D("--block:end-on-call", end_on_call),
		D("--block:end-on-jump", end_on_jump),
		D("--event:tick", tick_events),
#undef P
#undef D
	};

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		if (strcmp(opt, flags[i].name))
			continue;
		return (bool *)((char *)(flags[i].print ?
					 (void *)&a->print :
					 (void *)&a->dec) + flags[i].off);
	}
	return NULL;
}

int ptd_args_parse(struct ptd_args *a, int argc, char **argv)
{
	a->dec.sz = sizeof(a->dec);
	a->print.sz = sizeof(a->print);
	for (int i = 0; i < argc; i++) {
		char *opt = argv[i], *arg = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t v;
		bool *b;
		int err = 0;

		b = flag(a, opt);
		if (b) {
			*b = true;
			if (!strcmp(opt, "--sb:compact") || !strcmp(opt, "--sb"))
				a->print.sb_verbose = false;
			if (!strcmp(opt, "--sb:verbose"))
				a->print.sb_compact = false;
			continue;
		}
		if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
			a->help = true;
			continue;
		}
		if (!strcmp(opt, "--check"))	/* ptxed's XED check */
			continue;
		if (!strcmp(opt, "--insn-decoder")) {
			a->dec.kind = BT_PTDEC_INSN;
			continue;
		}
		if (!strcmp(opt, "--block-decoder")) {
			a->dec.kind = BT_PTDEC_BLOCK;
			continue;
		}
		if (!strcmp(opt, "--stat:insn")) {
			a->print.stat = a->print.stat_insn = true;
			continue;
		}
		if (!strcmp(opt, "--stat:blocks")) {
			a->print.stat = a->print.stat_blocks = true;
			continue;
		}
		/* The rest take an argument. */
		i++;
		if (!strcmp(opt, "--pt")) {
			if (!arg)
				return bad(a, "--pt: missing argument");
			if (a->pt)
				return bad(a, "--pt given twice");
			a->pt = arg;
		} else if (!strcmp(opt, "--raw")) {
			const char **n;

			if (!arg)
				return bad(a, "--raw: missing argument");
			n = realloc(a->raw, (a->nr_raw + 1) * sizeof(*n));
			if (!n)
				return -ENOMEM;
			a->raw = n;
			a->raw[a->nr_raw++] = arg;
		} else if (!strcmp(opt, "--cpu")) {
			err = parse_cpu(a, arg);
		} else if (!strcmp(opt, "--mtc-freq")) {
			err = get_u64(a, opt, arg, UINT8_MAX, &v);
			a->dec.mtc_freq = (uint8_t)v;
		} else if (!strcmp(opt, "--nom-freq")) {
			err = get_u64(a, opt, arg, UINT8_MAX, &v);
			a->dec.nom_freq = (uint8_t)v;
		} else if (!strcmp(opt, "--cpuid-0x15.eax")) {
			err = get_u64(a, opt, arg, UINT32_MAX, &v);
			a->dec.cpuid_0x15_eax = (uint32_t)v;
		} else if (!strcmp(opt, "--cpuid-0x15.ebx")) {
			err = get_u64(a, opt, arg, UINT32_MAX, &v);
			a->dec.cpuid_0x15_ebx = (uint32_t)v;
		} else if (!strncmp(opt, "--filter:addr", 13)) {
			err = parse_filter(a, opt, arg);
		} else if (!strncmp(opt, "--pevent:", 9)) {
			err = parse_pevent(a, opt, arg);
		} else {
			return bad(a, "unknown option '%s'", opt);
		}
		if (err)
			return err;
	}
	return 0;
}

void ptd_args_free(struct ptd_args *a)
{
	free(a->raw);
	free(a->pev);
	a->raw = NULL;
	a->pev = NULL;
}

int ptd_args_open(const struct ptd_args *a, struct bt_ptdec **out)
{
	struct bt_ptdec *d;
	int err = 0;

	if (!a->pt) {
		pr_warn("no trace: give --pt FILE");
		return -EINVAL;
	}
	d = bt_ptdec__new(&a->dec);
	if (!d)
		return -errno;
	for (size_t i = 0; !err && i < a->nr_raw; i++)
		err = bt_ptdec__add_raw(d, a->raw[i]);
	if (!err)
		err = bt_ptdec__set_trace_file(d, a->pt);
	if (err) {
		bt_ptdec__free(d);
		return err;
	}
	*out = d;
	return 0;
}

int ptd_args_run(const struct ptd_args *a, FILE *out,
		 struct bt_ptdec_stats *stats)
{
	struct bt_ptdec *d;
	int err;

	err = ptd_args_open(a, &d);
	if (err)
		return err;
	for (size_t i = 0; i < a->nr_pev; i++) {
		err = bt_ptdec__add_pevent(d, a->pev[i].spec, &a->pev[i].o);
		if (err)
			goto out;
	}
	err = bt_ptdec__print(d, out, &a->print, stats);
out:
	bt_ptdec__free(d);
	return err;
}
