// SPDX-License-Identifier: BSD-3-Clause
/*
 * A wild pointer walk: sum() reads a small array with a bound it was
 * never given, one page at a time, until it leaves the mapped memory and
 * dies of SIGSEGV (SEGV_MAPERR) at the first unmapped page.
 */
#include <stdlib.h>

int small[4] = { 1, 2, 3, 4 };

long __attribute__((noinline)) sum(const volatile int *p, long count)
{
	long acc = 0;

	/* 1024 ints: a page per iteration, so the walk ends quickly. */
	for (long i = 0; i < count; i++)
		acc += p[i * 1024];
	return acc;
}

long __attribute__((noinline)) walk(void)
{
	return sum(small, 1L << 40);
}

int main(void)
{
	return (int)(walk() & 0x7f);
}
