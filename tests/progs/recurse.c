// SPDX-License-Identifier: BSD-3-Clause
/*
 * Recursion: fib (many calls and returns, compressed in pt-emu) and a
 * chain 100 calls deep, deeper than the processor's 64-entry return
 * stack, so the outermost returns go uncompressed. Traced from work().
 */
#include <stdlib.h>

volatile int guard;
volatile int sink;

static int __attribute__((noinline)) fib(int n)
{
	int r;

	if (n < 2)
		return n;
	r = fib(n - 1);
	guard = r;
	return r + fib(n - 2);
}

static int __attribute__((noinline)) depth(int n)
{
	int r;

	if (!n)
		return 0;
	r = depth(n - 1);
	guard = r;	/* not a tail call: every level returns */
	return r + 1;
}

int __attribute__((noinline)) work(int n)
{
	return fib(n) + depth(100);
}

int main(int argc, char **argv)
{
	sink = work(argc > 1 ? atoi(argv[1]) : 9);
	return 0;
}
