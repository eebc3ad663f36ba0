// SPDX-License-Identifier: BSD-3-Clause
/*
 * `btrail export`: a reconstruction as JSON Lines (every item, the schema
 * of docs/script-json.md), as Chrome Trace Event JSON (one complete "X"
 * event per call span, for Perfetto and chrome://tracing), and the
 * bundle's CTF trace re-exported on its own.
 *
 * Chrome spans come from the call tracker of views.c: a function segment
 * opens a span at its level, a return closes the spans above the level
 * returned to, a jump into another function (a tail call) closes the
 * span at its level and opens the next. A return above the function the
 * trace began in reaches a caller that was running since before the
 * trace: its span starts where the stream starts, so a child always lies
 * within its parent. The clock of a stream is its trace time (ns, given
 * in microseconds) when every instruction carries a time that never goes
 * back and advances within at least half the function segments (coarser
 * times, one per chunk of trace, would make every span last 0);
 * otherwise the instruction count, one instruction a microsecond.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <btrail/bundle.h>
#include <btrail/decoder.h>
#include <btrail/errno.h>

#include "common/file.h"
#include "common/log.h"
#include "decoder/views_int.h"

/* ---- JSON Lines --------------------------------------------------------- */

static int json_item(void *ctx, const struct bt_recon_item *it)
{
	struct vw *v = ctx;

	vw_json_item(v, it);
	return ferror(v->out) ? -EIO : 0;
}

/* ---- Chrome Trace Event Format ------------------------------------------ */

struct frame {
	bool open;
	const char *name;
	uint64_t ip;
	uint64_t first, t_first;
};

struct chrome {
	struct vw v;
	struct vw_calls *calls;
	FILE *out;
	bool any_event;
	bool in_stream;
	uint32_t stream;
	int32_t pid, tid;
	bool timed;
	uint64_t s_first, s_t0;		/* where the stream starts */
	uint64_t last, t_last;		/* the end of the last segment */
	struct frame *fr;
	size_t nfr;
	int32_t (*seen)[2];		/* pid, tid of named threads */
	size_t nseen;
};

static void ev_begin(struct chrome *c)
{
	fputs(c->any_event ? ",\n" : "\n", c->out);
	c->any_event = true;
}

/* A time in microseconds: ns exactly, or an instruction number. */
static void put_us(FILE *f, const struct chrome *c, uint64_t insn, uint64_t t)
{
	if (c->timed)
		fprintf(f, "%" PRIu64 ".%03u", t / 1000u,
			(unsigned)(t % 1000u));
	else
		fprintf(f, "%" PRIu64, insn);
}

static void close_frame(struct chrome *c, size_t i)
{
	struct frame *fr = &c->fr[i];
	FILE *f = c->out;

	if (!fr->open)
		return;
	fr->open = false;
	ev_begin(c);
	fputs("{\"name\":", f);
	vw_json_str(f, fr->name ? fr->name : "??");
	fputs(",\"cat\":\"call\",\"ph\":\"X\",\"ts\":", f);
	/* instruction n (1..) runs during [n - 1, n) */
	put_us(f, c, fr->first - 1, fr->t_first);
	fputs(",\"dur\":", f);
	if (c->timed)
		put_us(f, c, 0, c->t_last >= fr->t_first ?
			   c->t_last - fr->t_first : 0);
	else
		put_us(f, c, c->last >= fr->first - 1 ?
			   c->last - (fr->first - 1) : 0, 0);
	fprintf(f, ",\"pid\":%" PRId32 ",\"tid\":%" PRId32
		",\"args\":{\"ip\":\"0x%" PRIx64 "\",\"depth\":%zu"
		",\"first_insn\":%" PRIu64 ",\"last_insn\":%" PRIu64
		",\"clock\":\"%s\"}}", c->pid, c->tid, fr->ip, i, fr->first,
		c->last, c->timed ? "trace" : "insn");
}

static void close_above(struct chrome *c, size_t keep)
{
	for (size_t i = c->nfr; i-- > keep;)
		close_frame(c, i);
}

static int need_frames(struct chrome *c, size_t n)
{
	if (n > c->nfr) {
		struct frame *p = realloc(c->fr, n * sizeof(*p));

		if (!p)
			return -ENOMEM;
		memset(p + c->nfr, 0, (n - c->nfr) * sizeof(*p));
		c->fr = p;
		c->nfr = n;
	}
	return 0;
}

static int name_thread(struct chrome *c, int32_t pid, int32_t tid)
{
	int32_t (*p)[2];

	for (size_t i = 0; i < c->nseen; i++) {
		if (c->seen[i][0] == pid && c->seen[i][1] == tid)
			return 0;
	}
	p = realloc(c->seen, (c->nseen + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	c->seen = p;
	c->seen[c->nseen][0] = pid;
	c->seen[c->nseen][1] = tid;
	c->nseen++;
	ev_begin(c);
	fprintf(c->out, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%"
		PRId32 ",\"tid\":%" PRId32 ",\"args\":{\"name\":\"tid %"
		PRId32 "\"}}", pid, tid, tid);
	ev_begin(c);
	fprintf(c->out, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%"
		PRId32 ",\"tid\":%" PRId32 ",\"args\":{\"name\":\"pid %"
		PRId32 "\"}}", pid, tid, pid);
	return 0;
}

static int chrome_seg(void *ctx, const struct vw_seg *s, int64_t min)
{
	struct chrome *c = ctx;
	size_t i = (size_t)(s->level - min);
	struct frame *fr;
	int err;

	/* the tracker tells one thread after the other */
	if (!c->in_stream || c->stream != s->stream || c->tid != s->tid) {
		close_above(c, 0);
		c->in_stream = true;
		c->stream = s->stream;
		c->pid = s->pid;
		c->tid = s->tid;
		c->timed = s->timed;
		c->s_first = 1;
		c->s_t0 = 0;
		c->last = c->t_last = 0;
	}
	err = name_thread(c, s->pid, s->tid);
	if (err)
		return err;
	if (s->kind != BT_RI_INSN) {
		ev_begin(c);
		fprintf(c->out, "{\"name\":\"%s\",\"cat\":\"trace\",\"ph\":"
			"\"i\",\"s\":\"t\",\"ts\":", vw_kind_name(s->kind));
		put_us(c->out, c, c->last,
		       s->t_first ? s->t_first : c->t_last);
		fprintf(c->out, ",\"pid\":%" PRId32 ",\"tid\":%" PRId32
			",\"args\":{\"text\":", c->pid, c->tid);
		vw_json_str(c->out, s->text);
		fputs("}}", c->out);
		return ferror(c->out) ? -EIO : 0;
	}
	if (!c->s_t0)
		c->s_t0 = s->t_first;
	err = need_frames(c, i + 1);
	if (err)
		return err;
	close_above(c, i + 1);
	fr = &c->fr[i];
	if (fr->open && (s->how == VW_JUMP || s->how == VW_START ||
			 s->how == VW_CALL ||
			 (s->how == VW_RESUME && fr->name != s->name &&
			  (!fr->name || !s->name ||
			   strcmp(fr->name, s->name)))))
		close_frame(c, i);
	if (!fr->open) {
		fr->open = true;
		fr->name = s->name;
		fr->ip = s->ip;
		if (s->how == VW_RETURN) {
			/* a caller from before the trace began */
			fr->first = c->s_first;
			fr->t_first = c->s_t0;
		} else {
			fr->first = s->first;
			fr->t_first = s->t_first;
		}
	}
	c->last = s->last;
	c->t_last = s->t_last;
	return ferror(c->out) ? -EIO : 0;
}

static int chrome_item(void *ctx, const struct bt_recon_item *it)
{
	struct chrome *c = ctx;

	return vw_calls__item(c->calls, it);
}

static int export_chrome(struct bt_recon *r, FILE *out)
{
	struct chrome c;
	int err;

	memset(&c, 0, sizeof(c));
	c.out = out;
	err = vw_init(&c.v, r, out);
	if (err)
		return err;
	c.calls = vw_calls__new(&c.v, chrome_seg, &c);
	if (!c.calls) {
		vw_fini(&c.v);
		return -ENOMEM;
	}
	fputs("{\"displayTimeUnit\":\"ns\",\"otherData\":{\"producer\":"
	      "\"btrail export\"},\"traceEvents\":[", out);
	err = bt_recon__run(r, BT_RECON_INSNS, chrome_item, &c);
	if (!err)
		err = vw_calls__flush(c.calls);
	if (!err)
		close_above(&c, 0);
	fputs("\n]}\n", out);
	vw_calls__free(c.calls);
	vw_fini(&c.v);
	free(c.fr);
	free(c.seen);
	return err;
}

int bt_recon__export(struct bt_recon *r, FILE *out, enum bt_export_format fmt)
{
	struct vw v;
	int err;

	if (!r || !out)
		return -EINVAL;
	switch (fmt) {
	case BT_EXPORT_JSON:
		err = vw_init(&v, r, out);
		if (err)
			return err;
		err = bt_recon__run(r, BT_RECON_INSNS | BT_RECON_BRANCHES,
				    json_item, &v);
		vw_fini(&v);
		break;
	case BT_EXPORT_CHROME:
		err = export_chrome(r, out);
		break;
	default:
		return -EINVAL;
	}
	if (!err && (fflush(out) || ferror(out)))
		err = -EIO;
	return err;
}

/* ---- CTF ---------------------------------------------------------------- */

static int join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void rm_tree(const char *dir)
{
	char p[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d) {
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			if (!join(p, sizeof(p), dir, de->d_name))
				unlink(p);
		}
		closedir(d);
	}
	rmdir(dir);
}

/* Read every event of every stream: a malformed bundle is refused. */
static int check_bundle(const char *bundle)
{
	struct bt_bundle *b;
	struct bt_bundle_event ev;
	int err;

	err = bt_bundle__open(bundle, &b);
	if (err)
		return err;
	for (uint32_t i = 0; i < bt_bundle__streams(b) && !err; i++) {
		int n;

		while ((n = bt_bundle__next(b, i, &ev)) == 1)
			;
		err = n;
	}
	bt_bundle__close(b);
	return err;
}

int bt_bundle_export_ctf(const char *bundle, const char *out)
{
	char src[PATH_MAX], tmp[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
	struct dirent *de;
	struct stat st;
	int err, n;
	DIR *d;

	if (!bundle || !out)
		return -EINVAL;
	if (!lstat(out, &st))
		return -EEXIST;
	err = check_bundle(bundle);
	if (err)
		return err;
	n = snprintf(src, sizeof(src), "%s/ctf", bundle);
	if (n < 0 || (size_t)n >= sizeof(src))
		return -ENAMETOOLONG;
	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", out, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	d = opendir(src);
	if (!d)
		return -errno;
	if (mkdir(tmp, 0755)) {
		err = -errno;
		closedir(d);
		return err;
	}
	/* the files a CTF reader takes: metadata and the stream files */
	while (!err && (de = readdir(d))) {
		if (strcmp(de->d_name, "metadata") &&
		    strncmp(de->d_name, "stream_", 7))
			continue;
		err = join(a, sizeof(a), src, de->d_name);
		if (!err)
			err = join(b, sizeof(b), tmp, de->d_name);
		if (err)
			break;
		if (lstat(a, &st) || !S_ISREG(st.st_mode))
			continue;
		err = bt_copy_file(a, b);
		if (err)
			pr_warn("%s: cannot copy to %s: %s", a, b,
				strerror(-err));
	}
	closedir(d);
	if (!err && rename(tmp, out))
		err = -errno;
	if (err)
		rm_tree(tmp);
	return err;
}
