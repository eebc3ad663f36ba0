// SPDX-License-Identifier: BSD-3-Clause
/* Small helpers the subcommands share. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <btrail/errno.h>

#include "btrail.h"

static int parse_scaled(const char *s, uint64_t *out, uint64_t k)
{
	unsigned long long v;
	uint64_t mul = 1;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (tolower((unsigned char)*end)) {
	case '\0':
		break;
	case 'k':
		mul = k;
		end++;
		break;
	case 'm':
		mul = k * k;
		end++;
		break;
	case 'g':
		mul = k * k * k;
		end++;
		break;
	default:
		return -1;
	}
	/* Accept "4M", "4MB", "4MiB" alike for sizes. */
	if (k == 1024 && mul > 1 &&
	    (!strcasecmp(end, "ib") || !strcasecmp(end, "b")))
		end += strlen(end);
	if (*end)
		return -1;
	if (v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	return parse_scaled(s, out, 1024);
}

int parse_count(const char *s, uint64_t *out)
{
	return parse_scaled(s, out, 1000);
}

bool progress_tty(void)
{
	return isatty(STDERR_FILENO);
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char bundle_args_help[] =
	"  -o, --output BUNDLE   the bundle directory to create\n"
	"      --big-endian      write big-endian CTF streams\n"
	"      --with-binaries   copy every mapped binary into images/\n"
	"      --sysroot DIR     find mapped binaries under DIR\n";

bool parse_bundle_args(int argc, char **argv, const char *cmd,
		       const char *what, struct bundle_args *a,
		       int (*usage)(FILE *f, int status), int *status)
{
	static const struct option opts[] = {
		{ "output",        required_argument, NULL, 'o' },
		{ "big-endian",    no_argument,       NULL, 'b' },
		{ "with-binaries", no_argument,       NULL, 'w' },
		{ "sysroot",       required_argument, NULL, 's' },
		{ "help",          no_argument,       NULL, 'h' },
		{ NULL,            0,                 NULL, 0 },
	};
	int c;

	memset(a, 0, sizeof(*a));
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			a->out = optarg;
			break;
		case 'b':
			a->big_endian = true;
			break;
		case 'w':
			a->with_binaries = true;
			break;
		case 's':
			a->sysroot = optarg;
			break;
		case 'h':
			*status = usage(stdout, BT_EXIT_OK);
			return false;
		default:
			*status = usage(stderr, BT_EXIT_USAGE);
			return false;
		}
	}
	if (optind + 1 != argc || !a->out) {
		err_msg("%s: need one %s and -o BUNDLE", cmd, what);
		*status = usage(stderr, BT_EXIT_USAGE);
		return false;
	}
	return true;
}
