// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail record --daemon: the same capture through btraild. The daemon
 * owns the hardware session (shared with any other tracer of the same
 * target and facility); this process asks for it, waits for the target
 * to end (or SIGINT), has the daemon copy what is captured into the
 * rings, and writes the bundle from the rings it was handed over the
 * socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <btrail/broker.h>
#include <btrail/bundle.h>
#include <btrail/errno.h>
#include <btrail/record.h>

#include "btrail.h"

static volatile sig_atomic_t rd_stop;

static void on_stop(int sig)
{
	(void)sig;
	rd_stop = 1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Start @argv held at a pipe until @go is written: the daemon attaches. */
static pid_t spawn_held(char *const argv[], int *go)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "%s: record: %s: %s\n", bin_name, argv[0],
			strerror(errno));
		_exit(127);
	}
	close(p[0]);
	*go = p[1];
	return pid;
}

int record_via_daemon(const struct bt_record_opts *o, const char *socket)
{
	struct bt_broker_opts bo = {
		.sz = sizeof(bo), .socket = socket, .name = "btrail record",
	};
	struct bt_trace_config cfg = { .sz = sizeof(cfg), .user = true };
	struct bt_ds_request req = {
		.sz = sizeof(req), .config = &cfg, .mode = o->mode,
		.aux_bytes = o->aux_bytes ? o->aux_bytes : 1ull << 20,
	};
	struct sigaction sa = { .sa_handler = on_stop };
	const char *out = o->output;
	struct bt_bundle_write_opts wo = {
		.sz = sizeof(wo), .with_binaries = o->with_binaries,
		.progress = progress_tty(),
	};
	struct bt_broker_grant g;
	struct bt_kmes_reader *r;
	struct bt_broker *b;
	char why[256];
	pid_t child = -1;
	int go = -1, fac, err, status = -1, ret = BT_EXIT_FAIL;
	uint64_t seq[32];

	if (o->start_at || o->max_insns || o->snapshot_when) {
		err_msg("record: --daemon does not take --start-at, "
			"--max-insns or --snapshot-when yet");
		return BT_EXIT_USAGE;
	}
	fac = bt_record_choose(o->facility, NULL, why, sizeof(why));
	if (fac < 0) {
		err_msg("record: %s", why);
		return BT_EXIT_FAIL;
	}
	req.facility = (uint32_t)fac;
	if (o->argv || o->pid) {
		req.target.kind = BT_TARGET_TASK;
		req.target.id = o->pid;
	} else if (o->all_cpus) {
		req.target.kind = BT_TARGET_ALL;
		req.target.id = -1;
	} else {
		char *end;
		long cpu = strtol(o->cpus, &end, 10);

		if (*end || cpu < 0) {
			err_msg("record: --daemon takes one CPU with -C, not "
				"'%s'", o->cpus);
			return BT_EXIT_USAGE;
		}
		req.target.kind = BT_TARGET_CPU;
		req.target.id = (int32_t)cpu;
	}

	b = bt_broker__connect(&bo);
	if (!b) {
		err_msg("record: --daemon: no broker: %s (start one with "
			"'btrail daemon')", strerror(errno));
		return BT_EXIT_FAIL;
	}
	if (o->argv) {
		child = spawn_held(o->argv, &go);
		if (child < 0) {
			err_msg("record: starting %s: %s", o->argv[0],
				strerror(errno));
			goto out;
		}
		req.target.id = child;
	}
	fprintf(stderr, "%s: record: facility %s through btraild (pid %d): "
		"%s\n", bin_name, bt_facility_name(req.facility),
		(int)bt_broker__daemon_pid(b), why);
	err = bt_broker__request(b, &req, o->ring_bytes, &g);
	if (err) {
		err_msg("record: btraild refused: %s",
			bt_broker__error(b)[0] ? bt_broker__error(b) :
			bt_strerror(err));
		goto out;
	}
	fprintf(stderr, "%s: record: %s session %llu (ring session %s), "
		"%llu bytes charged to this process\n", bin_name,
		g.shared ? "sharing" : "owning", (unsigned long long)g.session,
		g.ring, (unsigned long long)g.charged);

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (go >= 0) {
		(void)!write(go, "", 1);	/* run, traced */
		close(go);
		go = -1;
	}
	/* Until the target ends or we are told to stop. */
	while (!rd_stop) {
		if (child > 0) {
			if (waitpid(child, &status, WNOHANG) == child)
				break;
		} else if (o->pid && kill(o->pid, 0) < 0 && errno == ESRCH) {
			break;
		}
		sleep_ms(20);
	}
	/* The daemon freezes a stepped task's rings when it sees it end. */
	for (int i = 0; i < 100; i++) {
		err = bt_broker__snapshot(b, g.grant, seq, 32);
		if (err < 0 || !(o->argv || o->pid) ||
		    bt_broker__snapshot_ended(b))
			break;
		sleep_ms(20);
	}
	r = bt_broker__attach(b, g.grant, NULL);
	if (!r) {
		err_msg("record: attaching the rings: %s",
			bt_broker__error(b)[0] ? bt_broker__error(b) :
			strerror(errno));
		goto out;
	}
	err = bt_bundle_write_reader(r, g.ring, out, &wo);
	bt_kmes_reader__free(r);
	bt_broker__release(b, g.grant);
	if (err) {
		err_msg("record: writing %s: %s", out, bt_strerror(err));
		goto out;
	}
	fprintf(stderr, "%s: record: bundle %s\n", bin_name, out);
	ret = child > 0 && status != -1 ? record_exit_status(status) :
					  BT_EXIT_OK;
out:
	if (go >= 0)
		close(go);		/* the held child exits */
	if (child > 0 && status == -1 && waitpid(child, &status, 0) == child &&
	    ret == BT_EXIT_OK)
		ret = record_exit_status(status);
	bt_broker__close(b);
	return ret;
}
