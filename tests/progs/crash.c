// SPDX-License-Identifier: BSD-3-Clause
/*
 * A crash: crash_here() stores to 0xdead0000 (never mapped), so the
 * process dies of SIGSEGV with that fault address (SEGV_MAPERR) and the
 * address in a register. Traced from work().
 */
#include <stdlib.h>

volatile int sink;

void __attribute__((noinline)) crash_here(volatile int *p)
{
	*p = 42;
}

int __attribute__((noinline)) work(int n)
{
	int acc = 0;

	for (int i = 0; i < n; i++)
		acc += i * i;
	sink = acc;
	crash_here((volatile int *)0xdead0000ul);
	return acc;
}

int main(int argc, char **argv)
{
	return work(argc > 1 ? atoi(argv[1]) : 20);
}
