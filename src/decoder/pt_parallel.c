// SPDX-License-Identifier: BSD-3-Clause
/*
 * Parallel raw PT decode: the trace cut at PSBs into segments, decoded
 * by worker threads, the listings stitched in trace order.
 *
 * A PSB+ restates what the decoder needs (last IP, execution mode,
 * whether tracing is on, the IP) and the processor starts return
 * compression afresh after it, so a decoder that synchronises at a PSB
 * should go on as one that ran into it. Should: in a corrupt trace the
 * PSB+ may say otherwise than the flow before it (libipt keeps the
 * flow's IP when it runs into a PSB+; one that synchronises there takes
 * the PSB+'s). So each segment is checked, not trusted:
 *
 *   - a segment's decoder (pt_print.c, struct ptd_seg) synchronises at
 *     its PSB (the first segment: at the first PSB, as a whole decode)
 *     and reads on past the next segment's PSB+. It is cut at the first
 *     event it gives after that PSB+ (the PSB+'s status updates, given
 *     once the flow has reached them), or where it synchronises at that
 *     PSB after an error: up to there its listing is the single-threaded
 *     one's.
 *   - What it decodes after the cut (PTD_SEG_CHECK instructions, its
 *     tail) must begin the next segment's listing; if not, or if it was
 *     never cut, the two are decoded again as one segment on the calling
 *     thread and checked against the one after.
 *
 * Error lines carry offsets in the whole trace: every decoder sees the
 * trace from its start. What does not start afresh at a PSB is decoded
 * single-threaded: sideband (its records are applied as the trace's
 * time goes by), block numbers (--block:show-blocks), the timing
 * calibration behind --event:time and the --stat block counts; so is a
 * quiet listing (errors only: too little to check a tail against).
 *
 * Each worker has its own session over the caller's: its own libipt
 * image (libipt images are not thread-safe: a lookup reorders the
 * section list) copied from the caller's, the same section cache
 * (thread-safe, so every section is mapped once), the caller's trace
 * buffer (read only) and its own disassembler. Workers take segments in
 * order; the calling thread writes each segment's listing as soon as it
 * and the next are done, and workers run at most a window of segments
 * ahead, so memory is bounded by the window, not by the trace.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/log.h"
#include "common/opts.h"
#include "decoder/pt_args.h"
#include "decoder/pt_int.h"
#include "decoder/pt_par.h"

#define PAR_MIN_AUTO	(1u << 20)	/* jobs 0: parallel from 1 MiB on */
#define PAR_SEG_MAX	(256u << 10)	/* bytes of trace per segment, about */
#define PAR_SEG_PER_JOB	4u		/* segments per job at least */
#define PAR_WINDOW	4u		/* segments ahead per job */

struct par_seg {
	struct ptd_seg s;
	char *buf;			/* the listing (count only: the head) */
	size_t len;
	char *tail;
	size_t tail_len;
	struct bt_ptdec_stats st;
	int err;
	bool done;
};

struct par {
	struct bt_ptdec *d;
	struct bt_ptdec_print_opts o;
	bool count;			/* no listing */
	struct par_seg *seg;
	size_t nseg;
	size_t next;			/* the next segment to take */
	size_t written;			/* segments handed on so far */
	size_t skip;			/* and merged into the one at written */
	size_t window;
	bool stop;			/* an error: take no more */
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static ssize_t discard_write(void *cookie, const char *buf, size_t size)
{
	(void)cookie;
	(void)buf;
	return (ssize_t)size;
}

/* A PSB and the end of its PSB+ (after PSBEND). */
struct psb {
	uint64_t at, end;
};

/*
 * The PSB+ of the trace, in order, found by libipt's packet decoder as
 * its other decoders find them when they resynchronise. A PSB+ that
 * does not decode cleanly up to its PSBEND is no place to cut.
 */
static int find_psbs(const struct bt_ptdec *d, struct psb **out, size_t *n)
{
	struct pt_packet_decoder *pkt;
	struct pt_config conf = d->conf;
	struct psb *v = NULL;
	size_t cap = 0, cnt = 0;
	uint64_t at;
	int err = 0;

	conf.begin = d->trace;
	conf.end = d->trace + d->trace_size;
	pkt = pt_pkt_alloc_decoder(&conf);
	if (!pkt)
		return -ENOMEM;
	while (pt_pkt_sync_forward(pkt) >= 0) {
		struct pt_packet pa;
		int e;

		if (pt_pkt_get_sync_offset(pkt, &at) < 0)
			break;
		do {
			e = pt_pkt_next(pkt, &pa, sizeof(pa));
		} while (e >= 0 && pa.type != ppt_psbend);
		if (e < 0)
			continue;
		if (cnt == cap) {
			struct psb *nv;

			cap = cap ? cap * 2 : 256;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				err = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[cnt].at = at;
		if (pt_pkt_get_offset(pkt, &v[cnt].end) < 0)
			continue;
		cnt++;
	}
	pt_pkt_free_decoder(pkt);
	if (err) {
		free(v);
		return err;
	}
	*out = v;
	*n = cnt;
	return 0;
}

/*
 * Cut the trace into segments: the first from 0 (the decoder searches
 * the first PSB itself, as the single-threaded one does), the others
 * each from a PSB, about @want bytes apart.
 */
static int cut(struct par *p, unsigned int jobs)
{
	uint64_t want, size = p->d->trace_size, last = 0;
	struct psb *psb = NULL;
	size_t npsb = 0, nseg, k = 0;
	int err;

	err = find_psbs(p->d, &psb, &npsb);
	if (err)
		return err;
	nseg = (size_t)jobs * PAR_SEG_PER_JOB;
	if (size / nseg > PAR_SEG_MAX)
		nseg = (size_t)(size / PAR_SEG_MAX) + 1;
	want = size / nseg ? size / nseg : 1;
	p->seg = calloc(npsb + 1, sizeof(*p->seg));
	if (!p->seg) {
		free(psb);
		return -ENOMEM;
	}
	p->seg[0].s.begin = 0;
	for (size_t i = 0; i < npsb; i++) {
		if (!psb[i].at || psb[i].at < last + want ||
		    psb[i].end >= size)
			continue;
		p->seg[k].s.psb = psb[i].at;
		p->seg[k].s.end = psb[i].end;
		p->seg[++k].s.begin = psb[i].at;
		last = psb[i].at;
	}
	p->seg[k].s.psb = size;
	p->seg[k].s.end = size;
	p->seg[k].s.stop = size;
	p->seg[k].s.last = true;
	p->nseg = k + 1;
	/* each reads on to the end of the PSB+ after its next one */
	for (size_t i = 0; i < k; i++) {
		p->seg[i].s.stop = p->seg[i + 1].s.end;
		p->seg[i].s.next = p->seg[i + 1].s.psb;
	}
	free(psb);
	return 0;
}

/* A worker's session: the caller's, with an image of its own. */
static struct bt_ptdec *worker_session(struct bt_ptdec *d)
{
	struct bt_ptdec *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->o = d->o;
	w->conf = d->conf;
	w->cpu_err = d->cpu_err;
	w->ic = d->ic;
	w->ic->refs++;		/* before any thread runs */
	w->trace = d->trace;
	w->trace_size = d->trace_size;
	w->image = pt_image_alloc(NULL);
	if (!w->image || pt_image_copy(w->image, d->image) < 0) {
		w->trace = NULL;
		bt_ptdec__free(w);
		return NULL;
	}
	return w;
}

static void worker_free(struct bt_ptdec *w)
{
	if (!w)
		return;
	w->trace = NULL;	/* the caller's */
	bt_ptdec__free(w);
}

static int decode_seg(struct par *p, struct bt_ptdec *w, struct par_seg *s)
{
	static const cookie_io_functions_t discard = {
		.write = discard_write,
	};
	FILE *f, *tail = NULL, *quiet = NULL;
	int err = -ENOMEM;

	f = open_memstream(&s->buf, &s->len);
	if (!s->s.last)
		tail = open_memstream(&s->tail, &s->tail_len);
	if (p->count)
		quiet = fopencookie(NULL, "w", discard);
	s->s.count = p->count;
	s->s.quiet_out = quiet;
	s->s.tail = tail;
	s->s.cut = s->s.cut_sync = s->s.halt = false;
	if (f && (tail || s->s.last) && (quiet || !p->count))
		err = ptd_print(w, f, &p->o, &s->st, &s->s);
	if (f && fclose(f) && !err)
		err = -ENOMEM;
	if (tail && fclose(tail) && !err)
		err = -ENOMEM;
	if (quiet)
		fclose(quiet);
	s->s.tail = NULL;
	s->s.quiet_out = NULL;
	return err;
}

struct worker {
	struct par *p;
	struct bt_ptdec *w;
	pthread_t tid;
	bool started;
};

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct par *p = wk->p;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct par_seg *s;
		int err;

		while (!p->stop && p->next < p->nseg &&
		       p->next >= p->written + p->skip + p->window)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop || p->next >= p->nseg)
			break;
		s = &p->seg[p->next++];
		pthread_mutex_unlock(&p->lock);
		err = decode_seg(p, wk->w, s);
		pthread_mutex_lock(&p->lock);
		s->err = err;
		s->done = true;
		if (err)
			p->stop = true;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void join(struct par *p, struct worker *wk, unsigned int n)
{
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned int i = 0; i < n; i++) {
		if (wk[i].started)
			pthread_join(wk[i].tid, NULL);
		wk[i].started = false;
	}
}

static void add_stats(struct bt_ptdec_stats *to,
		      const struct bt_ptdec_stats *st)
{
	to->insn += st->insn;
	to->blocks += st->blocks;
	to->errors += st->errors;
	to->syncs += st->syncs;
}

/*
 * Whether the tail of @s (what its decoder decoded on after the next
 * segment's PSB+) begins the listing of @n, the next segment: then that
 * segment's decoder, which started afresh at the PSB, goes on as the
 * single-threaded one does. A PSB+ that says something else than the
 * flow before it (corrupt trace) fails this.
 */
static bool joins(const struct par_seg *s, const struct par_seg *n)
{
	size_t len = s->tail_len < n->len ? s->tail_len : n->len;
	size_t lines = 0;

	if (!s->s.cut)
		return false;
	if (s->s.cut_sync)
		return !s->tail_len;
	if (memcmp(s->tail, n->buf, len))
		return false;
	if (len == s->tail_len)
		return len || !n->len;
	/* the next listing is shorter than the tail: its whole */
	for (size_t i = 0; i < len; i++)
		lines += n->buf[i] == '\n';
	return lines >= PTD_SEG_CHECK / 2;
}

/* Wait until segment @s is done (the lock held). */
static void wait_done(struct par *p, const struct par_seg *s)
{
	while (!s->done)
		pthread_cond_wait(&p->cond, &p->lock);
}

static void seg_free(struct par_seg *s)
{
	free(s->buf);
	free(s->tail);
	s->buf = s->tail = NULL;
	s->len = s->tail_len = 0;
}

/*
 * Hand the segments on in order as they are done. When a segment's tail
 * does not join the next segment, the two are decoded again as one,
 * here (with the caller's session: the workers have their own), and
 * checked against the one after, and so on.
 */
static int stitch(struct par *p, FILE *out, struct bt_ptdec_stats *st)
{
	int err = 0;

	pthread_mutex_lock(&p->lock);
	while (p->written < p->nseg) {
		struct par_seg *s = &p->seg[p->written], *n = NULL;
		size_t skip = 0;
		bool end;

		wait_done(p, s);
		for (;;) {
			n = s->s.last ? NULL : &p->seg[p->written + 1 + skip];
			if (n)
				wait_done(p, n);
			pthread_mutex_unlock(&p->lock);
			err = s->err ? s->err : n ? n->err : 0;
			if (err || !n || s->s.halt || joins(s, n)) {
				pthread_mutex_lock(&p->lock);
				break;
			}
			pr_debug("parallel decode: the decode does not go on "
				 "at the PSB at 0x%llx as one that starts "
				 "there: decoding on from 0x%llx in one piece",
				 (unsigned long long)s->s.psb,
				 (unsigned long long)s->s.begin);
			s->s.psb = n->s.psb;
			s->s.end = n->s.end;
			s->s.next = n->s.next;
			s->s.stop = n->s.stop;
			s->s.last = n->s.last;
			seg_free(s);
			seg_free(n);
			s->err = decode_seg(p, p->d, s);
			skip++;
			pthread_mutex_lock(&p->lock);
			p->skip = skip;
			pthread_cond_broadcast(&p->cond);
		}
		pthread_mutex_unlock(&p->lock);
		end = false;
		if (!err) {
			add_stats(st, n && s->s.cut ? &s->s.st_cut : &s->st);
			if (s->len && !p->count &&
			    fwrite(s->buf, 1, s->len, out) != s->len)
				err = -EIO;
			end = s->s.halt && !s->s.cut;
		}
		seg_free(s);
		pthread_mutex_lock(&p->lock);
		p->written += 1 + skip;
		p->skip = 0;
		if (err || end)
			p->stop = true;
		pthread_cond_broadcast(&p->cond);
		if (err || end)
			break;
	}
	pthread_mutex_unlock(&p->lock);
	return err;
}

/* The CPUs this process may run on (taskset, cgroups), else online. */
static unsigned int online_cpus(void)
{
	cpu_set_t set;
	long n;

	if (!sched_getaffinity(0, sizeof(set), &set) && CPU_COUNT(&set) > 0)
		return (unsigned int)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned int)n : 1;
}

/* Whether the listing of @o may be cut at PSBs (see the top). */
static bool cuttable(const struct bt_ptdec *d,
		     const struct bt_ptdec_print_opts *o)
{
	if (d->sb) {
		pr_debug("parallel decode: sideband: single-threaded");
		return false;
	}
	return !o->show_blocks && !o->event_time && !o->stat && !o->quiet;
}

static int run(struct bt_ptdec *d, FILE *out,
	       const struct bt_ptdec_print_opts *opts,
	       struct bt_ptdec_stats *stats, unsigned int jobs)
{
	struct bt_ptdec_stats sum = { 0 };
	struct worker *wk = NULL;
	struct par p;
	int err;

	memset(&p, 0, sizeof(p));
	p.d = d;
	p.count = !out;
	err = bt_opts_copy(&p.o, sizeof(p.o), opts);
	if (err)
		return err;
	p.o.sz = sizeof(p.o);
	if (!jobs)
		jobs = d->trace_size > PAR_MIN_AUTO ? online_cpus() : 1;
	if (jobs > 1 && cuttable(d, &p.o)) {
		err = cut(&p, jobs);
		if (err)
			return err;
	}
	if (p.count)
		p.o.quiet = true;
	if (p.nseg < 2) {
		/* nothing to share out */
		free(p.seg);
		if (p.count)
			return bt_ptdec__count(d, stats ? stats : &sum);
		return bt_ptdec__print(d, out, opts, stats);
	}
	if (jobs > p.nseg)
		jobs = (unsigned int)p.nseg;
	p.window = (size_t)jobs * PAR_WINDOW;
	wk = calloc(jobs, sizeof(*wk));
	if (!wk) {
		free(p.seg);
		return -ENOMEM;
	}
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.cond, NULL);
	for (unsigned int i = 0; i < jobs; i++) {
		wk[i].p = &p;
		wk[i].w = worker_session(d);
		if (!wk[i].w) {
			err = -ENOMEM;
			goto out;
		}
	}
	for (unsigned int i = 0; i < jobs; i++) {
		if (pthread_create(&wk[i].tid, NULL, worker_main, &wk[i])) {
			/* fewer workers do: the others take its share */
			if (!i) {
				err = -ENOMEM;
				goto out;
			}
			break;
		}
		wk[i].started = true;
	}
	err = stitch(&p, out, &sum);
	if (!err && out)
		err = fflush(out) || ferror(out) ? -EIO : 0;
out:
	join(&p, wk, jobs);
	for (unsigned int i = 0; i < jobs; i++)
		worker_free(wk[i].w);
	for (size_t i = 0; i < p.nseg; i++)
		free(p.seg[i].buf);
	pthread_cond_destroy(&p.cond);
	pthread_mutex_destroy(&p.lock);
	free(p.seg);
	free(wk);
	if (!err && stats)
		*stats = sum;
	return err;
}

int bt_ptdec__print_parallel(struct bt_ptdec *d, FILE *out,
			     const struct bt_ptdec_print_opts *opts,
			     struct bt_ptdec_stats *stats, unsigned int jobs)
{
	if (!d || !out || !d->trace)
		return -EINVAL;
	return run(d, out, opts, stats, jobs);
}

int bt_ptdec__count_parallel(struct bt_ptdec *d,
			     struct bt_ptdec_stats *stats, unsigned int jobs)
{
	if (!d || !stats || !d->trace)
		return -EINVAL;
	memset(stats, 0, sizeof(*stats));
	return run(d, NULL, NULL, stats, jobs);
}

int ptd_args_run_jobs(const struct ptd_args *a, FILE *out,
		      struct bt_ptdec_stats *stats, unsigned int jobs)
{
	struct bt_ptdec *d;
	int err;

	if (jobs == 1 || a->nr_pev)
		return ptd_args_run(a, out, stats);
	err = ptd_args_open(a, &d);
	if (err)
		return err;
	err = bt_ptdec__print_parallel(d, out, &a->print, stats, jobs);
	bt_ptdec__free(d);
	return err;
}
