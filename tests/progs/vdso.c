// SPDX-License-Identifier: BSD-3-Clause
/*
 * Calls into the vdso: clock_gettime and gettimeofday run the kernel's
 * vdso code in user space, so a trace of main goes through [vdso].
 */
#include <stddef.h>
#include <sys/time.h>
#include <time.h>

int main(void)
{
	struct timespec ts;
	struct timeval tv;

	if (clock_gettime(CLOCK_MONOTONIC, &ts))
		return 1;
	if (gettimeofday(&tv, NULL))
		return 2;
	return (int)((ts.tv_nsec ^ tv.tv_usec) & 1) + 3;
}
