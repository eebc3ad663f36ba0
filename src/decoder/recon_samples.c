// SPDX-License-Identifier: BSD-3-Clause
/*
 * The sampled facilities of a bundle: PEBS (bt.pebs, one precise sample
 * each) and LBR (bt.lbr, a sample with the branch stack the hardware
 * kept, newest first). Unlike PT and BTS they are not a flow to walk
 * but a list of annotated samples, so they are read straight from the
 * bundle's streams when asked for, not at bt_recon__open(): a bundle of
 * a million samples costs nothing to the other views.
 *
 * The flags word of an LBR entry is perf's struct perf_branch_entry
 * bitfield, which the collector stores as the kernel wrote it; it is
 * decoded here by bit position (x86 is little-endian, so the bitfield's
 * first member is bit 0) rather than through the bitfield, whose layout
 * the C standard leaves to the compiler.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <btrail/bundle.h>
#include <btrail/decoder.h>
#include <btrail/errno.h>

#include "decoder/recon_int.h"
#include "decoder/views_int.h"

static void lbr_decode(const struct bt_event_value *v, size_t i,
		       struct bt_lbr_entry *e)
{
	uint64_t f = bt_event_rec_u64(v, BT_BREC_SIZE, i, BT_BREC_FLAGS);

	e->from = bt_event_rec_u64(v, BT_BREC_SIZE, i, BT_BREC_FROM);
	e->to = bt_event_rec_u64(v, BT_BREC_SIZE, i, BT_BREC_TO);
	e->flags = f;
	e->mispred = f & 1;
	e->predicted = (f >> 1) & 1;
	e->in_tx = (f >> 2) & 1;
	e->abort = (f >> 3) & 1;
	e->cycles = (uint16_t)(f >> 4);
	e->type = (uint8_t)((f >> 20) & 0xf);
}

struct walk {
	struct bt_lbr_entry *ent;	/* reused from sample to sample */
	size_t cap;
};

/* Fill @s from event @ev of stream @i. Returns 0 or -ENOMEM. */
static int take(struct walk *w, uint32_t i, const struct bt_bundle_event *ev,
		struct bt_sample *s)
{
	const struct bt_event_value *v = ev->v;

	memset(s, 0, sizeof(*s));
	s->stream = i;
	if (ev->id == BT_EVID_PEBS) {
		s->kind = BT_SAMPLE_PEBS;
		s->cpu = (int32_t)v[BT_PEBS_CPU].i;
		s->pid = (int32_t)v[BT_PEBS_PID].i;
		s->tid = (int32_t)v[BT_PEBS_TID].i;
		s->time = v[BT_PEBS_TIME].u;
		s->ip = v[BT_PEBS_IP].u;
		s->addr = v[BT_PEBS_ADDR].u;
		s->period = v[BT_PEBS_PERIOD].u;
		s->weight = v[BT_PEBS_WEIGHT].u;
		s->data_src = v[BT_PEBS_DATA_SRC].u;
		return 0;
	}
	s->kind = BT_SAMPLE_LBR;
	s->cpu = (int32_t)v[BT_LBR_CPU].i;
	s->pid = (int32_t)v[BT_LBR_PID].i;
	s->tid = (int32_t)v[BT_LBR_TID].i;
	s->time = v[BT_LBR_TIME].u;
	s->ip = v[BT_LBR_IP].u;
	/* the reader checked len against the record size and the packet */
	s->nlbr = v[BT_LBR_RECS].len / BT_BREC_SIZE;
	if (s->nlbr > w->cap) {
		struct bt_lbr_entry *n = realloc(w->ent, s->nlbr *
						 sizeof(*n));

		if (!n)
			return -ENOMEM;
		w->ent = n;
		w->cap = s->nlbr;
	}
	for (size_t k = 0; k < s->nlbr; k++)
		lbr_decode(&v[BT_LBR_RECS], k, &w->ent[k]);
	s->lbr = s->nlbr ? w->ent : NULL;
	return 0;
}

long bt_recon__samples(struct bt_recon *r, bt_sample_fn fn, void *ctx)
{
	struct walk w = { 0 };
	struct bt_bundle_event ev;
	struct bt_sample s;
	long n = 0;
	int ret = 0;

	if (!r || !fn)
		return -EINVAL;
	for (uint32_t i = 0; i < bt_bundle__streams(r->b) && !ret; i++) {
		int k;

		/* bt_recon__open() read every stream to its end */
		ret = bt_bundle__rewind(r->b, i);
		while (!ret && (k = bt_bundle__next(r->b, i, &ev)) == 1) {
			if (ev.id != BT_EVID_PEBS && ev.id != BT_EVID_LBR)
				continue;
			ret = take(&w, i, &ev, &s);
			if (!ret)
				ret = fn(ctx, &s);
			n++;
		}
		if (!ret && k < 0)
			ret = k;
	}
	free(w.ent);
	return ret ? ret : n;
}

/* ---- `btrail script BUNDLE --samples` ----------------------------------- */

static const char *br_type_name(uint8_t t)
{
	/* PERF_BR_* of <linux/perf_event.h> */
	static const char *const names[16] = {
		"unknown", "cond", "uncond", "ind", "call", "ind_call", "ret",
		"syscall", "sysret", "cond_call", "cond_ret", "eret", "irq",
		"serror", "no_tx", "extend_abi",
	};

	return names[t & 0xf];
}

struct sp {
	struct vw v;
	enum bt_view_format fmt;
};

/* "(sym+0xoff file:line)" */
static void text_where(struct sp *p, int32_t pid, uint64_t addr, bool line)
{
	const struct bt_sym *s = vw_sym(&p->v, pid, addr);
	char buf[512];

	fprintf(p->v.out, "(%s", vw_symstr(s, buf, sizeof(buf)));
	if (line && s->file)
		fprintf(p->v.out, " %s:%" PRIu32, s->file, s->line);
	fputc(')', p->v.out);
}

static void text_sample(struct sp *p, const struct bt_sample *s)
{
	FILE *f = p->v.out;

	fprintf(f, "%" PRIu64 " ", s->time);
	if (s->cpu >= 0)
		fprintf(f, "[%03" PRId32 "]", s->cpu);
	else
		fputs("[-]", f);
	fprintf(f, " %" PRId32 "/%" PRId32 " %s 0x%" PRIx64 " ", s->pid,
		s->tid, s->kind == BT_SAMPLE_PEBS ? "pebs" : "lbr", s->ip);
	text_where(p, s->pid, s->ip, true);
	if (s->kind == BT_SAMPLE_PEBS) {
		fprintf(f, " addr=0x%" PRIx64 " period=%" PRIu64 " weight=%"
			PRIu64 " data_src=0x%" PRIx64 "\n", s->addr, s->period,
			s->weight, s->data_src);
		return;
	}
	fprintf(f, " nr=%zu\n", s->nlbr);
	for (size_t k = 0; k < s->nlbr; k++) {
		const struct bt_lbr_entry *e = &s->lbr[k];

		fprintf(f, "  0x%" PRIx64 " ", e->from);
		text_where(p, s->pid, e->from, false);
		fprintf(f, " -> 0x%" PRIx64 " ", e->to);
		text_where(p, s->pid, e->to, false);
		/* M: mispredicted, P: predicted, -: neither (as perf) */
		fprintf(f, " [%c] cycles=%u", e->mispred ? 'M' :
			e->predicted ? 'P' : '-', e->cycles);
		if (e->type)
			fprintf(f, " type=%s", br_type_name(e->type));
		if (e->in_tx)
			fputs(" in_tx", f);
		if (e->abort)
			fputs(" abort", f);
		fputc('\n', f);
	}
}

static void json_sample(struct sp *p, const struct bt_sample *s)
{
	const struct bt_sym *sym = vw_sym(&p->v, s->pid, s->ip);
	FILE *f = p->v.out;

	fprintf(f, "{\"kind\":\"%s\",\"stream\":%" PRIu32 ",\"cpu\":%" PRId32
		",\"pid\":%" PRId32 ",\"tid\":%" PRId32 ",\"time\":%" PRIu64
		",\"ip\":\"0x%" PRIx64 "\"",
		s->kind == BT_SAMPLE_PEBS ? "pebs" : "lbr", s->stream, s->cpu,
		s->pid, s->tid, s->time, s->ip);
	vw_json_sym(f, "sym", sym);
	fputs(",\"file\":", f);
	if (sym->file)
		vw_json_str(f, sym->file);
	else
		fputs("null", f);
	fprintf(f, ",\"line\":%" PRIu32, sym->file ? sym->line : 0);
	if (s->kind == BT_SAMPLE_PEBS) {
		fprintf(f, ",\"addr\":\"0x%" PRIx64 "\",\"period\":%" PRIu64
			",\"weight\":%" PRIu64 ",\"data_src\":\"0x%" PRIx64
			"\"}\n", s->addr, s->period, s->weight, s->data_src);
		return;
	}
	fprintf(f, ",\"nr\":%zu,\"stack\":[", s->nlbr);
	for (size_t k = 0; k < s->nlbr; k++) {
		const struct bt_lbr_entry *e = &s->lbr[k];

		fprintf(f, "%s{\"from\":\"0x%" PRIx64 "\",\"to\":\"0x%" PRIx64
			"\"", k ? "," : "", e->from, e->to);
		vw_json_sym(f, "from_sym", vw_sym(&p->v, s->pid, e->from));
		vw_json_sym(f, "to_sym", vw_sym(&p->v, s->pid, e->to));
		fprintf(f, ",\"flags\":\"0x%" PRIx64 "\",\"mispred\":%s,"
			"\"predicted\":%s,\"in_tx\":%s,\"abort\":%s,"
			"\"cycles\":%u,\"type\":\"%s\"}", e->flags,
			e->mispred ? "true" : "false",
			e->predicted ? "true" : "false",
			e->in_tx ? "true" : "false",
			e->abort ? "true" : "false", e->cycles,
			br_type_name(e->type));
	}
	fputs("]}\n", f);
}

static int print_one(void *ctx, const struct bt_sample *s)
{
	struct sp *p = ctx;

	if (p->fmt == BT_VIEW_JSON)
		json_sample(p, s);
	else
		text_sample(p, s);
	/* stop at the first failed write (a closed pipe) */
	return ferror(p->v.out) ? -EIO : 0;
}

long bt_recon__print_samples(struct bt_recon *r, FILE *out,
			     enum bt_view_format format)
{
	struct sp p;
	long n;
	int err;

	if (!r || !out || (format != BT_VIEW_TEXT && format != BT_VIEW_JSON))
		return -EINVAL;
	err = vw_init(&p.v, r, out);
	if (err)
		return err;
	p.fmt = format;
	n = bt_recon__samples(r, print_one, &p);
	vw_fini(&p.v);
	if (n >= 0 && fflush(out))
		n = -EIO;
	return n;
}
