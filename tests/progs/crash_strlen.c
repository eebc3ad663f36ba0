// SPDX-License-Identifier: BSD-3-Clause
/*
 * A crash inside libc: strlen(NULL). The fault is in libc's strlen
 * (SIGSEGV, si_addr 0), reached from measure() through the PLT.
 */
#include <stdlib.h>
#include <string.h>

const char *volatile names[3] = { "alpha", "beta", NULL };

size_t __attribute__((noinline)) measure(const char *s)
{
	return strlen(s);
}

size_t __attribute__((noinline)) total(int n)
{
	size_t acc = 0;

	for (int i = 0; i < n; i++)
		acc += measure(names[i]);
	return acc;
}

int main(int argc, char **argv)
{
	return (int)(total(argc > 1 ? atoi(argv[1]) : 3) & 0x7f);
}
