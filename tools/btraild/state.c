// SPDX-License-Identifier: BSD-3-Clause
/*
 * What a restarted daemon needs to find the rings of the one before it:
 * a state file beside the socket (SOCKET.state), one line per capture,
 * "RING FACILITY MODE KIND ID", rewritten (write then rename) whenever a
 * capture begins or ends. The rings themselves are files and survive the
 * daemon; this only says what each was capturing. The file is the
 * daemon's own, but it is read as hostile input all the same: a line that
 * does not parse, or names a ring that is gone, is skipped with a warning.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector/kmes_path.h"
#include "common/log.h"
#include "btraild.h"

static bool ring_exists(const char *name)
{
	uint64_t nr;

	return kmes_name_check(name) == 0 &&
	       kmes_attach(name, KMES_ATTACH_QUERY_SLOTS, &nr) == 0;
}

void bd_state_load(struct bd_daemon *d)
{
	char line[256];
	unsigned lineno = 0;
	FILE *f = fopen(d->state_path, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		struct bd_orphan o = { 0 }, *n;
		char fac[16], mode[16], kind[8];
		int id, used = 0;

		lineno++;
		if (sscanf(line, "%63s %15s %15s %7s %d%n", o.ring, fac, mode,
			   kind, &id, &used) != 5 ||
		    (line[used] != '\n' && line[used] != '\0') ||
		    bt_facility_parse(fac) < 0 ||
		    (strcmp(mode, "stream") && strcmp(mode, "snapshot")) ||
		    (strcmp(kind, "task") && strcmp(kind, "cpu"))) {
			pr_warn("btraild: %s:%u: not a capture line; skipped",
				d->state_path, lineno);
			continue;
		}
		if (!ring_exists(o.ring))
			continue;	/* recovered and removed since */
		o.facility = (uint32_t)bt_facility_parse(fac);
		o.mode = strcmp(mode, "stream") ? BT_MODE_SNAPSHOT :
						  BT_MODE_STREAM;
		o.target.kind = strcmp(kind, "task") ? BT_TARGET_CPU :
						       BT_TARGET_TASK;
		o.target.id = id;
		n = malloc(sizeof(*n));
		if (!n)
			break;
		*n = o;
		n->next = d->orphans;
		d->orphans = n;
		if (!d->o.quiet)
			pr_info("btraild: found ring session %s (%s on %s %d) "
				"of an earlier daemon", o.ring, fac, kind, id);
	}
	fclose(f);
}

static void put(FILE *f, const char *ring, uint32_t fac, uint32_t mode,
		struct bt_target t)
{
	fprintf(f, "%s %s %s %s %d\n", ring, bt_facility_name(fac),
		bd_mode_name(mode), bd_kind_name(t.kind), (int)t.id);
}

void bd_state_save(struct bd_daemon *d)
{
	char tmp[160];
	FILE *f;

	if (!d->state_path[0])
		return;
	if (!d->caps_list && !d->orphans) {
		unlink(d->state_path);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", d->state_path);
	f = fopen(tmp, "w");
	if (!f) {
		pr_warn("btraild: writing %s: %s", tmp, strerror(errno));
		return;
	}
	for (const struct bd_capture *c = d->caps_list; c; c = c->next)
		put(f, c->ring, c->facility, c->mode, c->target);
	for (const struct bd_orphan *o = d->orphans; o; o = o->next)
		put(f, o->ring, o->facility, o->mode, o->target);
	if (fclose(f) || rename(tmp, d->state_path))
		pr_warn("btraild: writing %s: %s", d->state_path,
			strerror(errno));
}

struct bd_orphan *bd_orphan_take(struct bd_daemon *d, uint32_t facility,
				 uint32_t mode, struct bt_target target)
{
	for (struct bd_orphan **pp = &d->orphans; *pp; pp = &(*pp)->next) {
		struct bd_orphan *o = *pp;

		if (o->facility == facility && o->mode == mode &&
		    o->target.kind == target.kind &&
		    o->target.id == target.id) {
			*pp = o->next;
			return o;
		}
	}
	return NULL;
}

void bd_orphans_free(struct bd_daemon *d)
{
	while (d->orphans) {
		struct bd_orphan *o = d->orphans;

		d->orphans = o->next;
		free(o);
	}
}
