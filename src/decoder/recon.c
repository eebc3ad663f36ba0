// SPDX-License-Identifier: BSD-3-Clause
/*
 * Reconstruction of a bundle: read its events once (mappings, PT chunks,
 * branch records, AUX ranges, context switches, losses, the trigger),
 * then give back what ran, stream by stream and thread by thread.
 *
 * Threads: a per-task ring of a process with several threads holds the
 * trace of all of them, one AUX range (bt.aux) per stretch a thread ran.
 * A range belongs to the thread switched out since the previous range,
 * else to the thread last switched in, else to the ring's own task: the
 * collector writes a range when its thread leaves the CPU. PT items take
 * the thread of the range holding the PSB decoding synchronised at, then
 * of the range holding each TIP.PGE (tracing resumed after a switch);
 * the decoder's offset runs ahead of what it reports, so it is read only
 * there.
 *
 * The CPU for PT errata: opts->cpu, else the bundle's machine when it is
 * an Intel part with intel_pt; a bundle from a machine without intel_pt
 * holds pt-emu's packets, decoded with pt-emu's own CPU
 * (bt_ptemu_config()).
 */
#include <errno.h>
#include <inttypes.h>
#include <intel-pt.h>
#include <stdarg.h>
#include <json-c/json.h>
#include <libelf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/opts.h"
#include "decoder/pt_int.h"
#include "decoder/recon_int.h"
#include "ds/insn.h"
#include "ds/ptemu.h"

#define RC_WALK_MAX	4096u	/* straight-line instructions per record */

struct rc_switch {
	uint64_t time;
	int32_t tid;
	bool out;
};

struct rc_aux {
	uint64_t off, size, time;
};

const char *rc_signame(int signo)
{
	static const char *const names[] = {
		[SIGHUP] = "SIGHUP", [SIGINT] = "SIGINT", [SIGQUIT] = "SIGQUIT",
		[SIGILL] = "SIGILL", [SIGTRAP] = "SIGTRAP",
		[SIGABRT] = "SIGABRT", [SIGBUS] = "SIGBUS", [SIGFPE] = "SIGFPE",
		[SIGKILL] = "SIGKILL", [SIGUSR1] = "SIGUSR1",
		[SIGSEGV] = "SIGSEGV", [SIGUSR2] = "SIGUSR2",
		[SIGPIPE] = "SIGPIPE", [SIGALRM] = "SIGALRM",
		[SIGTERM] = "SIGTERM", [SIGSYS] = "SIGSYS",
	};

	if (signo > 0 && (size_t)signo < sizeof(names) / sizeof(names[0]) &&
	    names[signo])
		return names[signo];
	return NULL;
}

static char *str_dup(const struct bt_event_value *v)
{
	char *s = malloc(v->len + 1);

	if (s) {
		memcpy(s, v->p, v->len);
		s[v->len] = '\0';
	}
	return s;
}

static int add_map(struct bt_recon *r, const struct bt_bundle_event *ev)
{
	const struct bt_event_value *v = ev->v;
	struct rc_map *m, *nm;

	if (!v[BT_MMAP_LEN].u || v[BT_MMAP_ADDR].u + v[BT_MMAP_LEN].u <
	    v[BT_MMAP_ADDR].u)
		return 0;
	nm = realloc(r->maps, (r->nmaps + 1) * sizeof(*nm));
	if (!nm)
		return -ENOMEM;
	r->maps = nm;
	m = &nm[r->nmaps];
	memset(m, 0, sizeof(*m));
	m->pid = (int32_t)v[BT_MMAP_PID].i;
	m->start = v[BT_MMAP_ADDR].u;
	m->end = m->start + v[BT_MMAP_LEN].u;
	m->pgoff = v[BT_MMAP_PGOFF].u;
	m->time = v[BT_MMAP_TIME].u;
	m->file = str_dup(&v[BT_MMAP_FILE]);
	if (!m->file)
		return -ENOMEM;
	if (v[BT_MMAP_BUILD_ID].len && v[BT_MMAP_BUILD_ID].len <= 64) {
		const uint8_t *b = v[BT_MMAP_BUILD_ID].p;

		m->build_id = malloc(2 * v[BT_MMAP_BUILD_ID].len + 1);
		if (!m->build_id)
			return -ENOMEM;
		for (size_t i = 0; i < v[BT_MMAP_BUILD_ID].len; i++)
			snprintf(m->build_id + 2 * i, 3, "%02x", b[i]);
	}
	r->nmaps++;
	return 0;
}

static int map_time_cmp(const void *a, const void *b)
{
	const struct rc_map *x = a, *y = b;

	return (x->time > y->time) - (x->time < y->time);
}

static int pt_off_cmp(const void *a, const void *b)
{
	const struct rc_pt *x = a, *y = b;

	return (x->off > y->off) - (x->off < y->off);
}

static int aux_off_cmp(const void *a, const void *b)
{
	const struct rc_aux *x = a, *y = b;

	return (x->off > y->off) - (x->off < y->off);
}

static void take_trigger(struct bt_recon *r, const struct bt_bundle_event *e)
{
	const struct bt_event_value *v = e->v;
	size_t n = v[BT_TRIGGER_REASON].len;
	struct rc_trigger *t = &r->trig;

	memset(t, 0, sizeof(*t));
	t->valid = true;
	if (n >= sizeof(t->reason))
		n = sizeof(t->reason) - 1;
	memcpy(t->reason, v[BT_TRIGGER_REASON].p, n);
	t->time = v[BT_TRIGGER_TIME].u;
	t->pid = (int32_t)v[BT_TRIGGER_PID].i;
	t->tid = (int32_t)v[BT_TRIGGER_TID].i;
	t->signo = (int32_t)v[BT_TRIGGER_SIGNO].i;
	t->code = (int32_t)v[BT_TRIGGER_CODE].i;
	t->addr = v[BT_TRIGGER_ADDR].u;
	t->ip = v[BT_TRIGGER_IP].u;
	if (v[BT_TRIGGER_REGS].len >= BT_REGS_SIZE) {
		t->has_regs = true;
		for (uint32_t i = 0; i < BT_REGS_N; i++)
			t->regs[i] = bt_event_rec_u64(&v[BT_TRIGGER_REGS],
						      BT_REGS_SIZE, 0, i);
	}
}

/* Give the AUX ranges of @s their threads (see the top of the file). */
static int attribute(struct rc_stream *s, struct rc_aux *aux, size_t naux,
		     const struct rc_switch *sw, size_t nsw, int32_t dflt)
{
	uint64_t prev = 0;

	if (!naux)
		return 0;
	s->chunks = calloc(naux, sizeof(*s->chunks));
	if (!s->chunks)
		return -ENOMEM;
	/* by time to find the thread, then kept in AUX order */
	for (size_t i = 0; i < naux; i++) {
		int32_t tid = -1, in = -1;

		for (size_t k = 0; k < nsw && sw[k].time <= aux[i].time; k++) {
			if (sw[k].out && sw[k].time >= prev)
				tid = sw[k].tid;
			else if (!sw[k].out)
				in = sw[k].tid;
		}
		if (tid < 0)
			tid = in >= 0 ? in : dflt;
		s->chunks[i].off = aux[i].off;
		s->chunks[i].size = aux[i].size;
		s->chunks[i].tid = tid;
		prev = aux[i].time;
	}
	s->nchunks = naux;
	qsort(s->chunks, naux, sizeof(*s->chunks), aux_off_cmp);
	return 0;
}

/* The thread of AUX offset @off of @s, or @dflt. */
static int32_t tid_at(const struct rc_stream *s, uint64_t off, int32_t dflt)
{
	for (size_t i = 0; i < s->nchunks; i++) {
		if (off >= s->chunks[i].off &&
		    off - s->chunks[i].off < s->chunks[i].size)
			return s->chunks[i].tid;
	}
	return dflt;
}

static int add_lost(struct rc_stream *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int add_lost(struct rc_stream *s, const char *fmt, ...)
{
	char **nl = realloc(s->lost, (s->nlost + 1) * sizeof(*nl));
	va_list ap;
	int n;

	if (!nl)
		return -ENOMEM;
	s->lost = nl;
	va_start(ap, fmt);
	n = vasprintf(&nl[s->nlost], fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	s->nlost++;
	return 0;
}

/* Read stream @i whole. */
static int read_stream(struct bt_recon *r, uint32_t i)
{
	struct rc_stream *s = &r->streams[i];
	struct bt_bundle_stream_info info;
	struct bt_bundle_event ev;
	struct rc_aux *aux = NULL;
	struct rc_switch *sw = NULL;
	size_t naux = 0, nsw = 0, recs_cap = 0;
	int32_t ring_tid;
	int n, err = 0;

	s->index = i;
	s->rec_pid = s->rec_tid = -1;
	if (bt_bundle__stream_info(r->b, i, &info) < 0)
		return -EINVAL;
	s->cpu = info.kind == 0 ? (int32_t)info.cpu_id : -1;
	ring_tid = info.kind == 1 ? (int32_t)info.tid : -1;
	while ((n = bt_bundle__next(r->b, i, &ev)) == 1) {
		const struct bt_event_value *v = ev.v;

		if (ev.gap)
			err = add_lost(s, "%llu events of the ring missing",
				       (unsigned long long)ev.gap);
		switch (ev.id) {
		case BT_EVID_MMAP:
			err = add_map(r, &ev);
			break;
		case BT_EVID_PT: {
			struct rc_pt *np = realloc(s->pt, (s->npt + 1) *
						   sizeof(*np));

			if (!np) {
				err = -ENOMEM;
				break;
			}
			s->pt = np;
			np[s->npt].off = v[BT_PT_OFF].u;
			np[s->npt].len = v[BT_PT_DATA].len;
			np[s->npt].pid = (int32_t)v[BT_PT_PID].i;
			np[s->npt].tid = (int32_t)v[BT_PT_TID].i;
			np[s->npt].time = v[BT_PT_TIME].u;
			np[s->npt].data = malloc(v[BT_PT_DATA].len + 1);
			if (!np[s->npt].data) {
				err = -ENOMEM;
				break;
			}
			memcpy(np[s->npt++].data, v[BT_PT_DATA].p,
			       v[BT_PT_DATA].len);
			break;
		}
		case BT_EVID_BRANCH: {
			size_t len = v[BT_BRANCH_RECS].len;
			size_t k = len / BT_BREC_SIZE;

			if (s->nrecs + k > recs_cap) {
				size_t cap = (s->nrecs + k) * 2;
				uint8_t *nr = realloc(s->recs,
						      cap * BT_BREC_SIZE);

				if (!nr) {
					err = -ENOMEM;
					break;
				}
				s->recs = nr;
				recs_cap = cap;
			}
			memcpy(s->recs + s->nrecs * BT_BREC_SIZE,
			       v[BT_BRANCH_RECS].p, k * BT_BREC_SIZE);
			s->nrecs += k;
			s->rec_pid = (int32_t)v[BT_BRANCH_PID].i;
			s->rec_tid = (int32_t)v[BT_BRANCH_TID].i;
			s->rec_time = v[BT_BRANCH_TIME].u;
			break;
		}
		case BT_EVID_AUX: {
			struct rc_aux *na = realloc(aux, (naux + 1) *
						    sizeof(*na));

			if (!na) {
				err = -ENOMEM;
				break;
			}
			aux = na;
			aux[naux].off = v[BT_AUX_OFF].u;
			aux[naux].size = v[BT_AUX_SIZE].u;
			aux[naux++].time = v[BT_AUX_TIME].u;
			if (v[BT_AUX_FLAGS].u & 1)	/* PERF_AUX_FLAG_TRUNCATED */
				err = add_lost(s, "trace truncated at AUX "
					       "offset 0x%llx",
					       (unsigned long long)
					       (v[BT_AUX_OFF].u +
						v[BT_AUX_SIZE].u));
			break;
		}
		case BT_EVID_SWITCH: {
			struct rc_switch *ns = realloc(sw, (nsw + 1) *
						       sizeof(*ns));

			if (!ns) {
				err = -ENOMEM;
				break;
			}
			sw = ns;
			sw[nsw].time = v[BT_SWITCH_TIME].u;
			sw[nsw].tid = (int32_t)v[BT_SWITCH_TID].i;
			sw[nsw++].out = v[BT_SWITCH_OUT].u != 0;
			break;
		}
		case BT_EVID_LOST:
			err = add_lost(s, "lost %llu %.*s",
				       (unsigned long long)v[BT_LOST_COUNT].u,
				       (int)v[BT_LOST_WHAT].len,
				       (const char *)v[BT_LOST_WHAT].p);
			break;
		case BT_EVID_TRIGGER:
			take_trigger(r, &ev);
			break;
		default:
			break;
		}
		if (err)
			break;
	}
	if (!err && n < 0)
		err = n;
	if (!err) {
		int32_t dflt = ring_tid;

		if (dflt < 0 && s->npt)
			dflt = s->pt[0].tid;
		if (dflt < 0)
			dflt = s->rec_tid;
		err = attribute(s, aux, naux, sw, nsw, dflt);
	}
	if (s->npt)
		qsort(s->pt, s->npt, sizeof(*s->pt), pt_off_cmp);
	free(aux);
	free(sw);
	return err;
}

static int parse_cpu(const char *s, uint16_t *f, uint8_t *m, uint8_t *st)
{
	unsigned a = 0, b = 0, c = 0;
	int n = sscanf(s, "%u/%u/%u", &a, &b, &c);

	if (n < 2 || a > 0xffff || b > 0xff || c > 0xff)
		return -EINVAL;
	*f = (uint16_t)a;
	*m = (uint8_t)b;
	*st = (uint8_t)c;
	return 0;
}

static int64_t jint(json_object *o, const char *key, int64_t dflt)
{
	json_object *v;

	if (o && json_object_object_get_ex(o, key, &v) &&
	    json_object_is_type(v, json_type_int))
		return json_object_get_int64(v);
	return dflt;
}

/* The CPU of the trace (see the top of the file). */
static int machine(struct bt_recon *r)
{
	json_object *root = json_tokener_parse(bt_bundle__json(r->b));
	json_object *mach = NULL, *vendor = NULL, *caps = NULL;
	bool intel;

	if (r->o.cpu) {
		json_object_put(root);
		r->has_cpu = true;
		if (parse_cpu(r->o.cpu, &r->cpu_family, &r->cpu_model,
			      &r->cpu_stepping) < 0) {
			pr_warn("bad cpu '%s': want FAMILY/MODEL[/STEPPING]\n",
				r->o.cpu);
			return -EINVAL;
		}
		return 0;
	}
	if (root)
		json_object_object_get_ex(root, "machine", &mach);
	if (mach) {
		json_object_object_get_ex(mach, "vendor", &vendor);
		json_object_object_get_ex(mach, "pt_caps", &caps);
	}
	intel = vendor && json_object_is_type(vendor, json_type_string) &&
		!strcmp(json_object_get_string(vendor), "GenuineIntel");
	if (intel && caps && json_object_is_type(caps, json_type_object)) {
		r->has_cpu = true;
		r->cpu_family = (uint16_t)jint(mach, "family", 0);
		r->cpu_model = (uint8_t)jint(mach, "model", 0);
		r->cpu_stepping = (uint8_t)jint(mach, "stepping", 0);
	} else {
		/* no intel_pt there: the packets are pt-emu's */
		r->pt_emu_cpu = true;
	}
	json_object_put(root);
	return 0;
}

struct bt_recon *bt_recon__open(const char *dir,
				const struct bt_recon_opts *opts)
{
	struct bt_recon *r;
	uint32_t ns;
	int err;

	if (!dir)
		return errno = EINVAL, NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return errno = ENOMEM, NULL;
	err = bt_opts_copy(&r->o, sizeof(r->o), opts);
	if (err)
		goto fail;
	elf_version(EV_CURRENT);
	r->dir = strdup(dir);
	if (!r->dir) {
		err = -ENOMEM;
		goto fail;
	}
	err = bt_bundle__open(dir, &r->b);
	if (err)
		goto fail;
	err = machine(r);
	if (err)
		goto fail;
	ns = bt_bundle__streams(r->b);
	r->streams = calloc(ns ? ns : 1, sizeof(*r->streams));
	if (!r->streams) {
		err = -ENOMEM;
		goto fail;
	}
	r->nstreams = ns;
	for (uint32_t i = 0; i < ns; i++) {
		err = read_stream(r, i);
		if (err)
			goto fail;
	}
	if (r->nmaps)
		qsort(r->maps, r->nmaps, sizeof(*r->maps), map_time_cmp);
	r->ic = bt_iscache__new(dir);
	r->icache = bt_insn_cache__new();
	if (!r->ic || !r->icache) {
		err = -ENOMEM;
		goto fail;
	}
	err = rc_images_load(r);
	if (err)
		goto fail;
	return r;
fail:
	bt_recon__free(r);
	errno = -err;
	return NULL;
}

void bt_recon__free(struct bt_recon *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nstreams; i++) {
		struct rc_stream *s = &r->streams[i];

		for (size_t k = 0; k < s->npt; k++)
			free(s->pt[k].data);
		for (size_t k = 0; k < s->nlost; k++)
			free(s->lost[k]);
		free(s->pt);
		free(s->recs);
		free(s->chunks);
		free(s->lost);
	}
	free(r->streams);
	rc_images_free(r);
	bt_iscache__free(r->ic);
	bt_insn_cache__free(r->icache);
	bt_bundle__close(r->b);
	free(r->dir);
	free(r);
}

/* ---- Emitting items ----------------------------------------------------- */

struct rc_run {
	struct bt_recon *r;
	uint32_t what;
	bt_recon_fn fn;
	void *ctx;
	struct bt_recon_item base;	/* stream, cpu, pid, tid, time */
	/* the previous instruction, to see taken branches (PT) */
	bool prev;
	uint64_t prev_ip;
	uint8_t prev_len;
	uint32_t prev_cls;
	char text[256];
	/* progress lines (opts.progress): items seen, when the next is due */
	uint64_t items;
	uint64_t next_ns;
	bool shown;
};

/*
 * Now and then, when asked for, a progress line on stderr: a clock read
 * per 64 Ki items, a line per quarter second, overwritten in place.
 */
static void progress(struct rc_run *run, const struct bt_recon_item *it)
{
	struct timespec ts;
	uint64_t now;

	if (!run->r->o.progress || (++run->items & 0xffff))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (now < run->next_ns)
		return;
	run->next_ns = now + 250000000u;
	run->shown = true;
	fprintf(stderr, "\rbtrail: decoding stream %" PRIu32 ": %" PRIu64
		" items", it->stream, run->items);
}

static int emit(struct rc_run *run, struct bt_recon_item *it)
{
	progress(run, it);
	if (it->kind == BT_RI_INSN && !(run->what & BT_RECON_INSNS))
		return 0;
	if (it->kind == BT_RI_BRANCH && !(run->what & BT_RECON_BRANCHES))
		return 0;
	return run->fn(run->ctx, it);
}

static int emit_text(struct rc_run *run, uint32_t kind, uint64_t ip,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int emit_text(struct rc_run *run, uint32_t kind, uint64_t ip,
		     const char *fmt, ...)
{
	struct bt_recon_item it = run->base;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(run->text, sizeof(run->text), fmt, ap);
	va_end(ap);
	it.kind = kind;
	it.ip = ip;
	it.text = run->text;
	return emit(run, &it);
}

static int emit_branch(struct rc_run *run, uint64_t from, uint64_t to,
		       uint32_t cls)
{
	struct bt_recon_item it = run->base;

	it.kind = BT_RI_BRANCH;
	it.ip = from;
	it.to = to;
	it.iclass = cls;
	return emit(run, &it);
}

/* The flow reached @ip: a taken branch from the previous instruction? */
static int flow_to(struct rc_run *run, uint64_t ip)
{
	uint64_t fall = run->prev_ip + run->prev_len;

	if (!run->prev || run->prev_cls == BT_IC_OTHER)
		return 0;
	if ((run->prev_cls == BT_IC_JCC || run->prev_cls == BT_IC_FAR) &&
	    ip == fall)
		return 0;
	return emit_branch(run, run->prev_ip, ip, run->prev_cls);
}

/* Instruction at @ip (classified with capstone); 0, or -ENOENT/-EILSEQ. */
static int classify(struct bt_recon *r, int32_t pid, uint64_t ip,
		    const struct bt_insn_desc **d)
{
	uint8_t buf[16];
	long n;

	*d = bt_insn_cache__find(r->icache, ip);
	if (*d)
		return 0;
	n = rc_read(r, pid, ip, buf, sizeof(buf));
	if (n <= 0)
		return -ENOENT;
	return bt_insn_cache__add(r->icache, ip, buf, (size_t)n, d);
}

static int emit_insn(struct rc_run *run, const struct bt_insn_desc *d,
		     bool synth)
{
	struct bt_recon_item it = run->base;
	int err = synth ? flow_to(run, d->ip) : 0;

	if (err)
		return err;
	it.kind = BT_RI_INSN;
	it.ip = d->ip;
	it.len = d->len;
	it.iclass = d->cls;
	memcpy(it.bytes, d->bytes, d->len <= 15 ? d->len : 15);
	run->prev = true;
	run->prev_ip = d->ip;
	run->prev_len = d->len;
	run->prev_cls = d->cls;
	return emit(run, &it);
}

/* ---- PT ------------------------------------------------------------------ */

static const char *ev_name(enum pt_event_type t)
{
	switch (t) {
	case ptev_enabled: return "enabled";
	case ptev_disabled: return "disabled";
	case ptev_async_disabled: return "disabled (async)";
	case ptev_async_branch: return "interrupt";
	case ptev_paging: case ptev_async_paging: return "paging";
	case ptev_overflow: return "overflow";
	case ptev_exec_mode: return "exec mode";
	case ptev_tsx: return "tsx";
	case ptev_stop: return "stopped";
	case ptev_vmcs: case ptev_async_vmcs: return "vmcs";
	case ptev_exstop: return "exstop";
	case ptev_mwait: return "mwait";
	case ptev_pwre: return "pwre";
	case ptev_pwrx: return "pwrx";
	case ptev_ptwrite: return "ptwrite";
	case ptev_tick: return "tick";
	case ptev_cbr: return "cbr";
	case ptev_mnt: return "mnt";
	default: return "event";
	}
}

static int pt_ev(struct rc_run *run, const struct pt_event *ev)
{
	uint64_t ip = 0;
	int err = 0;

	switch (ev->type) {
	case ptev_enabled:
		ip = ev->variant.enabled.ip;
		run->prev = false;
		break;
	case ptev_disabled:
		ip = ev->variant.disabled.ip;
		break;
	case ptev_async_disabled:
		ip = ev->variant.async_disabled.at;
		err = flow_to(run, ip);
		run->prev = false;
		break;
	case ptev_async_branch:
		ip = ev->variant.async_branch.from;
		err = emit_branch(run, ip, ev->variant.async_branch.to,
				  BT_IC_FAR);
		run->prev = false;
		break;
	case ptev_overflow:
		ip = ev->variant.overflow.ip;
		run->prev = false;
		return err ? err : emit_text(run, BT_RI_GAP, ip,
					     "trace overflow: lost trace");
	default:
		break;
	}
	if (err)
		return err;
	return emit_text(run, BT_RI_EVENT, ip, "%s%s", ev_name(ev->type),
			 ev->ip_suppressed ? "" : "");
}

static int pt_config_for(struct bt_recon *r, struct pt_config *c)
{
	if (r->pt_emu_cpu)
		return bt_ptemu_config(c);
	pt_config_init(c);
	if (r->has_cpu) {
		c->cpu.vendor = pcv_intel;
		c->cpu.family = r->cpu_family;
		c->cpu.model = r->cpu_model;
		c->cpu.stepping = r->cpu_stepping;
		if (pt_cpu_errata(&c->errata, &c->cpu) < 0)
			pr_debug("%s: cpu %u/%u unknown to libipt: no errata\n",
				 r->dir, r->cpu_family, r->cpu_model);
	}
	return 0;
}

/* The instructions of block @b, walked with capstone. */
static int pt_block(struct rc_run *run, int32_t pid, const struct pt_block *b)
{
	uint64_t ip = b->ip;

	for (uint16_t i = 0; i < b->ninsn; i++) {
		const struct bt_insn_desc *d;
		struct bt_insn_desc last;
		int err = classify(run->r, pid, ip, &d);

		if (err < 0 && ip == b->end_ip && b->size) {
			/* capstone does not know it; libipt did */
			memset(&last, 0, sizeof(last));
			last.ip = ip;
			last.len = b->size;
			memcpy(last.bytes, b->raw, b->size <= 15 ? b->size : 15);
			d = &last;
		} else if (err == -ENOENT) {
			return emit_text(run, BT_RI_ERROR, ip,
					 "no code at 0x%llx inside a block",
					 (unsigned long long)ip);
		} else if (err < 0) {
			char hx[64];

			rc_hexbytes(run->r, pid, ip, hx, sizeof(hx));
			return emit_text(run, BT_RI_ERROR, ip,
					 "capstone cannot decode the "
					 "instruction at 0x%llx (%s) inside a "
					 "block", (unsigned long long)ip, hx);
		}
		err = emit_insn(run, d, true);
		if (err)
			return err;
		/* blocks go on through direct calls and jumps */
		if (d->cls == BT_IC_CALL || d->cls == BT_IC_JMP)
			ip = d->target;
		else
			ip += d->len;
	}
	return 0;
}

static int pt_err(struct rc_run *run, uint64_t off, uint64_t ip, int status)
{
	int err = 0;

	if (status == -pte_nomap) {
		err = flow_to(run, ip);
		run->prev = false;
		if (!err)
			err = emit_text(run, BT_RI_GAP, ip,
					"[%llx, %llx: no code here (no binary "
					"mapped)]", (unsigned long long)off,
					(unsigned long long)ip);
		return err;
	}
	run->prev = false;
	return emit_text(run, BT_RI_ERROR, ip, "[%llx, %llx: error: %s]",
			 (unsigned long long)off, (unsigned long long)ip,
			 pt_errstr(pt_errcode(status)));
}

/* The thread at decoder offset @off; a change of thread ends the flow. */
static void pt_where(struct rc_run *run, const struct rc_stream *s,
		     uint64_t base, uint64_t off)
{
	int32_t t = tid_at(s, base + off, run->base.tid);

	if (t != run->base.tid)
		run->prev = false;
	run->base.tid = t;
}

static int pt_decode(struct rc_run *run, const struct rc_stream *s,
		     uint64_t base, uint8_t *buf, size_t len)
{
	int32_t pid = run->base.pid;
	struct bt_recon *r = run->r;
	struct pt_config c;
	struct pt_block_decoder *bd = NULL;
	struct pt_insn_decoder *id = NULL;
	struct pt_image *img;
	bool blk = r->o.kind != BT_PTDEC_INSN;
	uint64_t stuck_n, stuck_same, stuck_off;
	int status, err = 0;

	if (pt_config_for(r, &c) < 0)
		return -EINVAL;
	c.begin = buf;
	c.end = buf + len;
	if (blk)
		bd = pt_blk_alloc_decoder(&c);
	else
		id = pt_insn_alloc_decoder(&c);
	if (!bd && !id)
		return -ENOMEM;
	img = blk ? pt_blk_get_image(bd) : pt_insn_get_image(id);
	rc_image_fill(r, pid, img);
	run->prev = false;
	stuck_n = stuck_same = stuck_off = 0;
	for (;;) {
		uint64_t off = 0;

		status = blk ? pt_blk_sync_forward(bd) :
			       pt_insn_sync_forward(id);
		if (status < 0) {
			if (status != -pte_eos) {
				if (blk)
					pt_blk_get_offset(bd, &off);
				else
					pt_insn_get_offset(id, &off);
				err = pt_err(run, off, 0, status);
			}
			break;
		}
		/* Synchronised at a PSB: its thread is where it lies. */
		if (blk)
			pt_blk_get_sync_offset(bd, &off);
		else
			pt_insn_get_sync_offset(id, &off);
		pt_where(run, s, base, off);
		for (;;) {
			struct pt_block b;
			struct pt_insn in;
			struct pt_event ev;

			while (status & pts_event_pending) {
				status = blk ? pt_blk_event(bd, &ev,
							    sizeof(ev)) :
					       pt_insn_event(id, &ev,
							     sizeof(ev));
				if (status < 0)
					break;
				/*
				 * Threads change only where tracing is
				 * enabled again (TIP.PGE after a switch's
				 * TIP.PGD): the decoder has just read that
				 * packet, which lies in the new thread's
				 * AUX range. Between, its offset runs
				 * ahead of the instructions it reports.
				 */
				if (ev.type == ptev_enabled) {
					if (blk)
						pt_blk_get_offset(bd, &off);
					else
						pt_insn_get_offset(id, &off);
					pt_where(run, s, base, off);
				}
				err = pt_ev(run, &ev);
				if (err)
					goto out;
			}
			if (status < 0 || (status & pts_eos))
				break;
			if (blk) {
				memset(&b, 0, sizeof(b));
				status = pt_blk_next(bd, &b, sizeof(b));
				err = pt_block(run, pid, &b);
			} else {
				const struct bt_insn_desc *d;

				memset(&in, 0, sizeof(in));
				status = pt_insn_next(id, &in, sizeof(in));
				if (in.iclass != ptic_error && in.size &&
				    classify(r, pid, in.ip, &d) == 0)
					err = emit_insn(run, d, true);
				b.ip = in.ip;
				if (status < 0 && in.iclass == ptic_error)
					b.ip = in.ip;
			}
			if (err)
				goto out;
			/*
			 * A loop of direct branches needs no trace and
			 * libipt follows it for ever (a wrong or hostile
			 * image): after 4 Mi instructions at one trace
			 * offset, an error, and on at the next PSB.
			 */
			if (status >= 0 &&
			    (stuck_n += blk ? b.ninsn : 1) >= (1u << 16)) {
				uint64_t now = 0;

				if (blk)
					pt_blk_get_offset(bd, &now);
				else
					pt_insn_get_offset(id, &now);
				stuck_same = now == stuck_off ?
					     stuck_same + stuck_n : 0;
				stuck_off = now;
				stuck_n = 0;
				if (stuck_same >= (1u << 22)) {
					stuck_same = 0;
					err = emit_text(run, BT_RI_ERROR, b.ip,
						"[%llx, %llx: error: no trace "
						"for 4194304 instructions: a "
						"loop of direct branches]",
						(unsigned long long)now,
						(unsigned long long)b.ip);
					if (err)
						goto out;
					break;	/* to the next PSB */
				}
			}
			if (status < 0) {
				if (status == -pte_eos)
					break;
				if (blk)
					pt_blk_get_offset(bd, &off);
				else
					pt_insn_get_offset(id, &off);
				err = pt_err(run, off, b.ip, status);
				if (err)
					goto out;
				break;
			}
		}
	}
out:
	pt_blk_free_decoder(bd);
	pt_insn_free_decoder(id);
	return err;
}

/*
 * The PT of @s: its bytes in AUX order, one decode per run of contiguous
 * bytes (a hole is a gap). One stream may hold several threads (a
 * per-task ring inherited by threads): each item gets the thread whose
 * AUX range holds the decoder's position.
 */
static int run_pt(struct rc_run *run, struct rc_stream *s)
{
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	uint64_t base = 0;
	int err = 0;

	for (size_t k = 0; k < s->npt && !err; k++) {
		const struct rc_pt *p = &s->pt[k];

		if (len && base + len != p->off) {
			err = pt_decode(run, s, base, buf, len);
			if (!err)
				err = emit_text(run, BT_RI_GAP, 0,
						"trace missing (AUX 0x%llx.."
						"0x%llx)",
						(unsigned long long)
						(base + len),
						(unsigned long long)p->off);
			len = 0;
		}
		if (!len)
			base = p->off;
		if (len + p->len > cap) {
			uint8_t *nb;

			cap = (len + p->len) * 2 + 1;
			nb = realloc(buf, cap);
			if (!nb) {
				err = -ENOMEM;
				break;
			}
			buf = nb;
		}
		memcpy(buf + len, p->data, p->len);
		len += p->len;
		run->base.pid = p->pid;
		run->base.tid = p->tid;
		run->base.cpu = s->cpu;
		run->base.time = p->time;
	}
	if (!err && len)
		err = pt_decode(run, s, base, buf, len);
	free(buf);
	return err;
}

/* ---- BTS ----------------------------------------------------------------- */

static uint64_t rec(const struct rc_stream *s, size_t i, unsigned f)
{
	struct bt_event_value v = { .p = s->recs, .len = s->nrecs };

	return bt_event_rec_u64(&v, BT_BREC_SIZE, i, f);
}

/*
 * Straight-line code from @ip up to and including @end (@incl) or up
 * to @end excluded. A taken branch on the way, no code, or too long a
 * walk is an item saying so. Returns 0 or @fn's value.
 */
static int walk(struct rc_run *run, int32_t pid, uint64_t ip, uint64_t end,
		bool incl, size_t recno)
{
	for (uint32_t n = 0; n < RC_WALK_MAX; n++) {
		const struct bt_insn_desc *d;
		int err;

		if (!incl && ip == end)
			return 0;
		err = classify(run->r, pid, ip, &d);
		if (err == -ENOENT)
			return emit_text(run, BT_RI_GAP, ip,
					 "no code at 0x%llx (binary missing): "
					 "record %zu not walked",
					 (unsigned long long)ip, recno);
		if (err < 0) {
			char hx[64];

			/* the code is there: say what capstone refused */
			rc_hexbytes(run->r, pid, ip, hx, sizeof(hx));
			return emit_text(run, BT_RI_ERROR, ip,
					 "capstone cannot decode the "
					 "instruction at 0x%llx (%s): record "
					 "%zu not walked",
					 (unsigned long long)ip, hx, recno);
		}
		err = emit_insn(run, d, false);
		if (err)
			return err;
		if (ip == end)
			return 0;
		if (d->cls != BT_IC_OTHER && d->cls != BT_IC_JCC &&
		    d->cls != BT_IC_FAR)
			return emit_text(run, BT_RI_ERROR, ip,
					 "record %zu disagrees with the code: "
					 "%s at 0x%llx leaves the straight "
					 "line before from 0x%llx", recno,
					 bt_insn_class_name(d->cls),
					 (unsigned long long)ip,
					 (unsigned long long)end);
		ip += d->len;
	}
	return emit_text(run, BT_RI_ERROR, ip,
			 "record %zu disagrees with the code: no branch at "
			 "0x%llx within %u instructions", recno,
			 (unsigned long long)end, RC_WALK_MAX);
}

static int run_bts(struct rc_run *run, struct rc_stream *s, int32_t tid)
{
	struct bt_recon *r = run->r;
	uint64_t end_off = s->nchunks ? s->chunks[s->nchunks - 1].off +
				       s->chunks[s->nchunks - 1].size : 0;
	uint64_t base = end_off >= s->nrecs * BT_BREC_SIZE ?
			end_off - s->nrecs * BT_BREC_SIZE : 0;
	int32_t pid = s->rec_pid;
	bool have = false;
	uint64_t last_to = 0;
	size_t last = 0;
	int err = 0;

	run->base.pid = pid;
	run->base.cpu = s->cpu;
	run->base.time = s->rec_time;
	run->prev = false;
	for (size_t i = 0; i < s->nrecs && !err; i++) {
		uint64_t from = rec(s, i, BT_BREC_FROM);
		uint64_t to = rec(s, i, BT_BREC_TO);
		const struct bt_insn_desc *d;
		uint32_t cls = BT_IC_OTHER;

		if (tid_at(s, base + i * BT_BREC_SIZE, s->rec_tid) != tid)
			continue;
		if (have)
			err = walk(run, pid, last_to, from, true, i);
		else if (classify(r, pid, from, &d) == 0)
			err = emit_insn(run, d, false);
		if (err)
			break;
		if (classify(r, pid, from, &d) == 0)
			cls = d->cls;
		err = emit_branch(run, from, to, cls);
		have = true;
		last_to = to;
		last = i;
	}
	/* the trigger's thread: on from the last record to the fault */
	if (!err && have && r->trig.valid && r->trig.tid == tid &&
	    rc_map_find(r, pid, last_to))
		err = walk(run, pid, last_to, r->trig.ip, false, last + 1);
	return err;
}

/* ---- The run ----------------------------------------------------------- */

static int add_tid(int32_t **tids, size_t *n, int32_t t)
{
	int32_t *nt;

	for (size_t i = 0; i < *n; i++) {
		if ((*tids)[i] == t)
			return 0;
	}
	nt = realloc(*tids, (*n + 1) * sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	nt[(*n)++] = t;
	*tids = nt;
	return 0;
}

int bt_recon__run(struct bt_recon *r, uint32_t what, bt_recon_fn fn,
		  void *ctx)
{
	struct rc_run run;
	int err = 0;

	if (!r || !fn)
		return -EINVAL;
	memset(&run, 0, sizeof(run));
	run.r = r;
	run.what = what;
	run.fn = fn;
	run.ctx = ctx;
	for (size_t i = 0; i < r->nstreams && !err; i++) {
		struct rc_stream *s = &r->streams[i];
		int32_t *tids = NULL;
		size_t nt = 0;

		memset(&run.base, 0, sizeof(run.base));
		run.base.stream = (uint32_t)i;
		run.base.cpu = s->cpu;
		run.base.pid = run.base.tid = -1;
		for (size_t k = 0; k < s->nlost && !err; k++)
			err = emit_text(&run, BT_RI_GAP, 0, "%s", s->lost[k]);
		if (s->npt)
			err = run_pt(&run, s);
		if (!err && s->nrecs) {
			for (size_t j = 0; j < s->nchunks && !err; j++)
				err = add_tid(&tids, &nt, s->chunks[j].tid);
			err = err ? err : add_tid(&tids, &nt, s->rec_tid);
		}
		for (size_t k = 0; k < nt && !err; k++) {
			run.base.tid = tids[k];
			err = run_bts(&run, s, tids[k]);
		}
		free(tids);
	}
	if (!err && r->trig.valid) {
		const char *sn = rc_signame(r->trig.signo);

		memset(&run.base, 0, sizeof(run.base));
		run.base.cpu = -1;
		run.base.pid = r->trig.pid;
		run.base.tid = r->trig.tid;
		run.base.time = r->trig.time;
		run.base.kind = BT_RI_TRIGGER;
		if (sn)
			err = emit_text(&run, BT_RI_TRIGGER, r->trig.ip,
					"%s %s", r->trig.reason, sn);
		else
			err = emit_text(&run, BT_RI_TRIGGER, r->trig.ip, "%s",
					r->trig.reason);
	}
	if (run.shown)	/* take the progress line away */
		fprintf(stderr, "\r%60s\r", "");
	return err;
}

int bt_recon__disasm(struct bt_recon *r, int32_t pid, uint64_t addr,
		     char *buf, size_t len)
{
	struct ptd_disasm *dis;
	struct ptd_insn in;
	uint8_t code[16];
	long n;
	int err;

	if (!r || !buf || !len)
		return -EINVAL;
	n = rc_read(r, pid, addr, code, sizeof(code));
	if (n <= 0)
		return -ENOENT;
	dis = ptd_disasm__new();
	if (!dis)
		return -ENOMEM;
	err = ptd_disasm(dis, ptem_64bit, code, (size_t)n, addr, true, &in);
	ptd_disasm__free(dis);
	if (err < 0)
		return err;
	snprintf(buf, len, "%s", in.text);
	return in.len;
}
