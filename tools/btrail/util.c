// SPDX-License-Identifier: BSD-3-Clause
/* Small helpers the subcommands share. */
#include <ctype.h>
#include <errno.h>
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
