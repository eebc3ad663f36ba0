// SPDX-License-Identifier: BSD-3-Clause
/*
 * abort(): check() finds a broken invariant and calls abort(), which
 * raises SIGABRT inside libc (si_code SI_TKILL, no fault address).
 */
#include <stdio.h>
#include <stdlib.h>

int __attribute__((noinline)) check(int value)
{
	if (value != 42) {
		fputs("crash_abort: invariant broken\n", stderr);
		abort();
	}
	return 0;
}

int __attribute__((noinline)) process(int n)
{
	int acc = 0;

	for (int i = 0; i < n; i++)
		acc += i;
	return check(acc);
}

int main(int argc, char **argv)
{
	return process(argc > 1 ? atoi(argv[1]) : 5);
}
