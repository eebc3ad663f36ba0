// SPDX-License-Identifier: BSD-3-Clause
/*
 * The views of `btrail script BUNDLE`: the instruction flow, the taken
 * branches and the function-call history of a reconstruction, as text or
 * as JSON Lines (docs/script-json.md). They sit on bt_recon__run(); the
 * symbols come from bt_recon__symbolize() through a small cache, since a
 * loop asks for the same few addresses millions of times, and the
 * disassembly from capstone over the bytes each item carries, so no view
 * reads the image again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <intel-pt.h>

#include <btrail/decoder.h>

#include "common/opts.h"
#include "decoder/pt_int.h"
#include "decoder/recon_int.h"
#include "decoder/views_int.h"

/* ---- Shared pieces ------------------------------------------------------ */

int vw_init(struct vw *v, struct bt_recon *r, FILE *out)
{
	memset(v, 0, sizeof(*v));
	v->r = r;
	v->out = out;
	v->cache = calloc(VW_SYMCACHE, sizeof(*v->cache));
	v->dis = ptd_disasm__new();
	if (!v->cache || !v->dis) {
		vw_fini(v);
		return -ENOMEM;
	}
	return 0;
}

void vw_fini(struct vw *v)
{
	free(v->cache);
	v->cache = NULL;
	ptd_disasm__free(v->dis);
	v->dis = NULL;
}

const struct bt_sym *vw_sym(struct vw *v, int32_t pid, uint64_t addr)
{
	uint64_t h = addr ^ (addr >> 12) ^ ((uint64_t)(uint32_t)pid << 7);
	struct vw_symc *e = &v->cache[(h * 0x9E3779B97F4A7C15ull) >> 52];

	if (e->valid && e->addr == addr && e->pid == pid)
		return &e->sym;
	memset(e, 0, sizeof(*e));
	e->addr = addr;
	e->pid = pid;
	e->valid = true;
	e->known = bt_recon__symbolize(v->r, pid, addr, &e->sym) == 0;
	if (!e->known)
		memset(&e->sym, 0, sizeof(e->sym));
	return &e->sym;
}

const char *vw_symstr(const struct bt_sym *s, char *buf, size_t len)
{
	if (!s->name)
		snprintf(buf, len, "??");
	else if (!s->offset)
		snprintf(buf, len, "%s", s->name);
	else
		snprintf(buf, len, "%s+0x%" PRIx64, s->name, s->offset);
	return buf;
}

const char *vw_iclass_name(uint32_t iclass)
{
	static const char *const names[] = {
		[BT_IC_OTHER] = "other", [BT_IC_JCC] = "jcc",
		[BT_IC_JMP] = "jmp", [BT_IC_JMP_IND] = "jmp_ind",
		[BT_IC_CALL] = "call", [BT_IC_CALL_IND] = "call_ind",
		[BT_IC_RET] = "ret", [BT_IC_FAR] = "far",
	};

	return iclass < sizeof(names) / sizeof(names[0]) ? names[iclass] :
	       "other";
}

const char *vw_kind_name(uint32_t kind)
{
	static const char *const names[] = {
		[BT_RI_INSN] = "insn", [BT_RI_BRANCH] = "branch",
		[BT_RI_EVENT] = "event", [BT_RI_GAP] = "gap",
		[BT_RI_ERROR] = "error", [BT_RI_TRIGGER] = "trigger",
	};

	return kind < sizeof(names) / sizeof(names[0]) ? names[kind] :
	       "event";
}

const char *vw_disasm(struct vw *v, const struct bt_recon_item *it,
		      char *buf, size_t len)
{
	struct ptd_insn in;
	size_t n = it->len <= sizeof(it->bytes) ? it->len : sizeof(it->bytes);

	if (!n || ptd_disasm(v->dis, ptem_64bit, it->bytes, n, it->ip, true,
			     &in) < 0)
		snprintf(buf, len, "(bad)");
	else
		snprintf(buf, len, "%s", in.text);
	return buf;
}

void vw_json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	putc('"', f);
	for (; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			/* control bytes escaped; others (UTF-8) as they are:
			 * symbol names and messages are not ours to vet */
			if (*p < 0x20 || *p == 0x7f)
				fprintf(f, "\\u%04x", *p);
			else
				putc(*p, f);
		}
	}
	putc('"', f);
}

static void json_common(FILE *f, const struct bt_recon_item *it)
{
	fprintf(f, "{\"kind\":\"%s\",\"stream\":%" PRIu32 ",\"cpu\":%" PRId32
		",\"pid\":%" PRId32 ",\"tid\":%" PRId32 ",\"time\":%" PRIu64,
		vw_kind_name(it->kind), it->stream, it->cpu, it->pid, it->tid,
		it->time);
}

void vw_json_sym(FILE *f, const char *key, const struct bt_sym *s)
{
	fprintf(f, ",\"%s\":", key);
	if (s->name)
		vw_json_str(f, s->name);
	else
		fputs("null", f);
	fprintf(f, ",\"%s_off\":%" PRIu64, key, s->name ? s->offset : 0);
}

void vw_json_item(struct vw *v, const struct bt_recon_item *it)
{
	FILE *f = v->out;
	char dis[256];

	json_common(f, it);
	switch (it->kind) {
	case BT_RI_INSN:
		fprintf(f, ",\"ip\":\"0x%" PRIx64 "\",\"len\":%u,\"bytes\":\"",
			it->ip, it->len);
		for (unsigned i = 0; i < it->len && i < sizeof(it->bytes); i++)
			fprintf(f, "%02x", it->bytes[i]);
		fprintf(f, "\",\"iclass\":\"%s\"", vw_iclass_name(it->iclass));
		vw_json_sym(f, "sym", vw_sym(v, it->pid, it->ip));
		fputs(",\"asm\":", f);
		vw_json_str(f, vw_disasm(v, it, dis, sizeof(dis)));
		break;
	case BT_RI_BRANCH:
		fprintf(f, ",\"from\":\"0x%" PRIx64 "\",\"to\":\"0x%" PRIx64
			"\",\"iclass\":\"%s\"", it->ip, it->to,
			vw_iclass_name(it->iclass));
		vw_json_sym(f, "from_sym", vw_sym(v, it->pid, it->ip));
		vw_json_sym(f, "to_sym", vw_sym(v, it->pid, it->to));
		break;
	default:
		fprintf(f, ",\"ip\":\"0x%" PRIx64 "\",\"text\":", it->ip);
		vw_json_str(f, it->text);
		break;
	}
	fputs("}\n", f);
}

/* ---- Call tracking ------------------------------------------------------ */

/*
 * One thread's tracking. A stream may interleave threads (a per-CPU ring,
 * a task ring shared by a process's threads), and each has its own call
 * stack, so the state is per (stream, tid).
 */
struct vw_thr {
	uint32_t stream;
	int32_t tid;
	struct vw_seg *seg;	/* its segments, told at the flush */
	size_t n, cap;
	int64_t level, min;
	uint64_t ninsn;
	uint64_t last_time;
	bool timed;
	bool have_prev;		/* prev_* describe the last instruction */
	bool after_break;	/* a gap/error since the last instruction */
	uint64_t prev_next;
	uint32_t prev_iclass;
	const char *cur;	/* the function of the open segment */
	const char **callers;	/* the function of each open call */
	size_t ncallers, capcallers;
};

struct vw_calls {
	struct vw *v;
	vw_seg_fn fn;
	void *ctx;
	struct vw_thr *thr;	/* threads of the current stream */
	size_t nthr, capthr;
	struct vw_thr *last;	/* the thread of the last item */
	bool active;
	uint32_t stream;
};

struct vw_calls *vw_calls__new(struct vw *v, vw_seg_fn fn, void *ctx)
{
	struct vw_calls *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->v = v;
	c->fn = fn;
	c->ctx = ctx;
	return c;
}

static void thr_free(struct vw_thr *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->seg[i].text);
	free(t->seg);
	free(t->callers);
	memset(t, 0, sizeof(*t));
}

static void drop_threads(struct vw_calls *c)
{
	for (size_t i = 0; i < c->nthr; i++)
		thr_free(&c->thr[i]);
	c->nthr = 0;
	c->last = NULL;
}

void vw_calls__free(struct vw_calls *c)
{
	if (!c)
		return;
	drop_threads(c);
	free(c->thr);
	free(c);
}

static struct vw_seg *new_seg(struct vw_thr *t)
{
	struct vw_seg *s;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct vw_seg *p = realloc(t->seg, cap * sizeof(*p));

		if (!p)
			return NULL;
		t->seg = p;
		t->cap = cap;
	}
	s = &t->seg[t->n++];
	memset(s, 0, sizeof(*s));
	return s;
}

static int flush_thread(struct vw_calls *c, struct vw_thr *t)
{
	size_t nfn = 0, adv = 0;
	bool timed = t->timed;
	int ret = 0;

	/* trace time is a clock for calls only where it is fine enough:
	 * it advances within at least half the function segments */
	for (size_t i = 0; i < t->n; i++) {
		if (t->seg[i].kind != BT_RI_INSN)
			continue;
		nfn++;
		adv += t->seg[i].t_last > t->seg[i].t_first;
	}
	if (adv * 2 < nfn || !nfn)
		timed = false;
	for (size_t i = 0; i < t->n && !ret; i++) {
		t->seg[i].timed = timed;
		ret = c->fn(c->ctx, &t->seg[i], t->min);
	}
	return ret;
}

int vw_calls__flush(struct vw_calls *c)
{
	int ret = 0;

	for (size_t i = 0; i < c->nthr && !ret; i++)
		ret = flush_thread(c, &c->thr[i]);
	drop_threads(c);
	c->active = false;
	return ret;
}

static struct vw_thr *thread_of(struct vw_calls *c,
				const struct bt_recon_item *it, int *err)
{
	struct vw_thr *t;

	*err = 0;
	if (c->active && c->stream != it->stream)
		*err = vw_calls__flush(c);
	if (*err)
		return NULL;
	c->active = true;
	c->stream = it->stream;
	if (c->last && c->last->tid == it->tid)
		return c->last;
	for (size_t i = 0; i < c->nthr; i++) {
		if (c->thr[i].tid == it->tid)
			return c->last = &c->thr[i];
	}
	if (c->nthr == c->capthr) {
		size_t cap = c->capthr ? c->capthr * 2 : 8;
		struct vw_thr *p = realloc(c->thr, cap * sizeof(*p));

		if (!p) {
			*err = -ENOMEM;
			return NULL;
		}
		c->thr = p;
		c->capthr = cap;
	}
	t = &c->thr[c->nthr++];
	memset(t, 0, sizeof(*t));
	t->stream = it->stream;
	t->tid = it->tid;
	t->timed = true;
	return c->last = t;
}

static bool same_fn(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return a == b || !strcmp(a, b);
}

static int push_caller(struct vw_thr *t)
{
	if (t->ncallers == t->capcallers) {
		size_t cap = t->capcallers ? t->capcallers * 2 : 64;
		const char **p = realloc(t->callers, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		t->callers = p;
		t->capcallers = cap;
	}
	t->callers[t->ncallers++] = t->cur;
	return 0;
}

/*
 * After a gap or an error the trace resumes in @name: when that is the
 * function of an open call, the gap hid the returns to it; go back up.
 */
static void unwind_to(struct vw_thr *t, const char *name)
{
	if (!name || same_fn(name, t->cur))
		return;
	for (size_t k = t->ncallers; k-- > 0;) {
		if (same_fn(t->callers[k], name)) {
			t->level -= (int64_t)(t->ncallers - k);
			t->ncallers = k;
			if (t->level < t->min)
				t->min = t->level;
			return;
		}
	}
}

static int other_item(struct vw_thr *t, const struct bt_recon_item *it)
{
	struct vw_seg *s = new_seg(t);

	if (!s)
		return -ENOMEM;
	s->kind = it->kind;
	s->level = t->level;
	s->ip = it->ip;
	s->stream = it->stream;
	s->pid = it->pid;
	s->tid = it->tid;
	s->first = s->last = t->ninsn;
	s->t_first = s->t_last = it->time;
	s->text = strdup(it->text ? it->text : "");
	if (!s->text)
		return -ENOMEM;
	if (it->kind == BT_RI_GAP || it->kind == BT_RI_ERROR)
		t->after_break = true;
	return 0;
}

int vw_calls__item(struct vw_calls *c, const struct bt_recon_item *it)
{
	const struct bt_sym *sym;
	struct vw_thr *t;
	struct vw_seg *s;
	int how = -1;
	int err;

	if (it->kind == BT_RI_BRANCH)
		return 0;
	t = thread_of(c, it, &err);
	if (!t)
		return err;
	if (it->kind != BT_RI_INSN)
		return other_item(t, it);

	t->ninsn++;
	if (!it->time || it->time < t->last_time)
		t->timed = false;
	else
		t->last_time = it->time;

	sym = vw_sym(c->v, it->pid, it->ip);
	if (!t->have_prev) {
		how = VW_START;
	} else if (t->after_break) {
		how = VW_RESUME;
		unwind_to(t, sym->name);
	} else if (t->prev_iclass == BT_IC_CALL ||
		   t->prev_iclass == BT_IC_CALL_IND) {
		/* a call to the next instruction (call/pop for the IP) is
		 * no function entered */
		if (it->ip != t->prev_next) {
			how = VW_CALL;
			t->level++;
			if (push_caller(t))
				return -ENOMEM;
		}
	} else if (t->prev_iclass == BT_IC_RET) {
		how = VW_RETURN;
		if (t->ncallers)
			t->ncallers--;
		t->level--;
		if (t->level < t->min)
			t->min = t->level;
	} else if (it->ip != t->prev_next && !same_fn(sym->name, t->cur)) {
		/* a taken jump (or a far transfer) into another function:
		 * a tail call, a PLT stub's jump; the same level */
		how = VW_JUMP;
	}

	if (how >= 0) {
		s = new_seg(t);
		if (!s)
			return -ENOMEM;
		s->kind = BT_RI_INSN;
		s->how = (uint32_t)how;
		s->level = t->level;
		s->name = sym->name;
		s->ip = it->ip;
		s->first = t->ninsn;
		s->t_first = it->time;
		s->stream = it->stream;
		s->pid = it->pid;
		s->tid = it->tid;
		t->cur = sym->name;
	}
	/* the open segment is the last INSN segment */
	for (size_t i = t->n; i-- > 0;) {
		if (t->seg[i].kind == BT_RI_INSN) {
			t->seg[i].last = t->ninsn;
			t->seg[i].t_last = it->time;
			break;
		}
	}
	t->have_prev = true;
	t->after_break = false;
	t->prev_next = it->ip + it->len;
	t->prev_iclass = it->iclass;
	return 0;
}

/* ---- The views ---------------------------------------------------------- */

struct pv {
	struct vw v;
	struct bt_view_opts o;
	struct vw_calls *calls;
	bool any;
	uint32_t stream;	/* of the last header line */
	int32_t tid;
	uint64_t n;		/* --calls: the line number in the thread */
};

static void stream_header(struct pv *p, const struct bt_recon_item *it)
{
	if (p->o.format != BT_VIEW_TEXT ||
	    (p->any && p->stream == it->stream && p->tid == it->tid))
		return;
	fprintf(p->v.out, "%s== stream %" PRIu32 " (pid %" PRId32 ", tid %"
		PRId32 ") ==\n", p->any ? "\n" : "", it->stream, it->pid,
		it->tid);
	p->any = true;
	p->stream = it->stream;
	p->tid = it->tid;
}

static void text_other(FILE *f, const struct bt_recon_item *it,
		       const char *indent)
{
	fprintf(f, "%s[%s: %s]\n", indent, vw_kind_name(it->kind),
		it->text ? it->text : "");
}

static int insn_item(void *ctx, const struct bt_recon_item *it)
{
	struct pv *p = ctx;
	FILE *f = p->v.out;
	char sym[160], dis[256];

	if (p->o.format == BT_VIEW_JSON) {
		vw_json_item(&p->v, it);
	} else {
		stream_header(p, it);
		if (it->kind == BT_RI_INSN)
			fprintf(f, "0x%016" PRIx64 "  %-28s  %s\n", it->ip,
				vw_symstr(vw_sym(&p->v, it->pid, it->ip), sym,
					  sizeof(sym)),
				vw_disasm(&p->v, it, dis, sizeof(dis)));
		else if (it->kind != BT_RI_BRANCH)
			text_other(f, it, "");
	}
	return ferror(f) ? -EIO : 0;
}

static int branch_item(void *ctx, const struct bt_recon_item *it)
{
	struct pv *p = ctx;
	FILE *f = p->v.out;
	char a[160], b[160];

	if (it->kind == BT_RI_INSN)
		return 0;
	if (p->o.format == BT_VIEW_JSON) {
		vw_json_item(&p->v, it);
	} else {
		stream_header(p, it);
		if (it->kind == BT_RI_BRANCH)
			fprintf(f, "0x%" PRIx64 " (%s) -> 0x%" PRIx64
				" (%s)  %s\n", it->ip,
				vw_symstr(vw_sym(&p->v, it->pid, it->ip), a,
					  sizeof(a)), it->to,
				vw_symstr(vw_sym(&p->v, it->pid, it->to), b,
					  sizeof(b)),
				vw_iclass_name(it->iclass));
		else
			text_other(f, it, "");
	}
	return ferror(f) ? -EIO : 0;
}

static const char *how_name(uint32_t how)
{
	static const char *const names[] = {
		[VW_START] = "start", [VW_CALL] = "call",
		[VW_RETURN] = "return", [VW_JUMP] = "jump",
		[VW_RESUME] = "resume",
	};

	return how < sizeof(names) / sizeof(names[0]) ? names[how] : "start";
}

static int calls_seg(void *ctx, const struct vw_seg *s, int64_t min)
{
	struct pv *p = ctx;
	FILE *f = p->v.out;
	uint64_t depth = (uint64_t)(s->level - min);
	char ind[2 * 64 + 1];
	size_t ni = depth < 64 ? (size_t)depth * 2 : 128;

	memset(ind, ' ', ni);
	ind[ni] = '\0';
	if (!p->any || p->stream != s->stream || p->tid != s->tid)
		p->n = 0;
	if (p->o.format == BT_VIEW_JSON) {
		fprintf(f, "{\"kind\":\"%s\",\"stream\":%" PRIu32 ",\"pid\":%"
			PRId32 ",\"tid\":%" PRId32 ",\"depth\":%" PRIu64,
			s->kind == BT_RI_INSN ? "call" : vw_kind_name(s->kind),
			s->stream, s->pid, s->tid, depth);
		if (s->kind == BT_RI_INSN) {
			fprintf(f, ",\"how\":\"%s\",\"func\":",
				how_name(s->how));
			if (s->name)
				vw_json_str(f, s->name);
			else
				fputs("null", f);
			fprintf(f, ",\"ip\":\"0x%" PRIx64 "\",\"first\":%"
				PRIu64 ",\"last\":%" PRIu64 "}\n", s->ip,
				s->first, s->last);
		} else {
			fputs(",\"text\":", f);
			vw_json_str(f, s->text);
			fputs("}\n", f);
		}
	} else if (s->kind == BT_RI_INSN) {
		struct bt_recon_item it = {
			.stream = s->stream, .pid = s->pid, .tid = s->tid,
		};

		stream_header(p, &it);
		fprintf(f, "%-6" PRIu64 " %s%s\tinst %" PRIu64 ",%" PRIu64
			"\n", ++p->n, ind, s->name ? s->name : "??", s->first,
			s->last);
	} else {
		struct bt_recon_item it = {
			.kind = s->kind, .stream = s->stream, .pid = s->pid,
			.tid = s->tid, .text = s->text,
		};

		stream_header(p, &it);
		fprintf(f, "%-6s %s", "", ind);
		text_other(f, &it, "");
	}
	return ferror(f) ? -EIO : 0;
}

static int calls_item(void *ctx, const struct bt_recon_item *it)
{
	struct pv *p = ctx;

	return vw_calls__item(p->calls, it);
}

int bt_recon__print_view(struct bt_recon *r, FILE *out,
			 const struct bt_view_opts *opts)
{
	struct pv p;
	bt_recon_fn fn;
	uint32_t what;
	int err;

	memset(&p, 0, sizeof(p));
	if (!r || !out || bt_opts_copy(&p.o, sizeof(p.o), opts) ||
	    p.o.view > BT_VIEW_CALLS || p.o.format > BT_VIEW_JSON)
		return -EINVAL;
	err = vw_init(&p.v, r, out);
	if (err)
		return err;
	switch (p.o.view) {
	case BT_VIEW_BRANCHES:
		what = BT_RECON_BRANCHES;
		fn = branch_item;
		break;
	case BT_VIEW_CALLS:
		what = BT_RECON_INSNS;
		fn = calls_item;
		p.calls = vw_calls__new(&p.v, calls_seg, &p);
		if (!p.calls) {
			vw_fini(&p.v);
			return -ENOMEM;
		}
		break;
	default:
		what = BT_RECON_INSNS;
		fn = insn_item;
		break;
	}
	err = bt_recon__run(r, what, fn, &p);
	if (!err && p.calls)
		err = vw_calls__flush(p.calls);
	vw_calls__free(p.calls);
	vw_fini(&p.v);
	if (!err && fflush(out))
		err = -EIO;
	return err;
}
