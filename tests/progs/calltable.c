// SPDX-License-Identifier: BSD-3-Clause
/*
 * Indirect calls through a table of function pointers (TIP packets in
 * pt-emu, CALL_IND and returns to different places), and a call to
 * strrchr, which glibc runs as AVX-512 code on CPUs that have it (code
 * capstone 4 cannot decode, but libipt can). Traced from work().
 */
#include <stdlib.h>
#include <string.h>

typedef int (*op_fn)(int acc, int i);

static int __attribute__((noinline)) op_add(int acc, int i) { return acc + i; }
static int __attribute__((noinline)) op_sub(int acc, int i) { return acc - i / 2; }
static int __attribute__((noinline)) op_mul(int acc, int i) { return acc * 3 + (i & 1); }
static int __attribute__((noinline)) op_xor(int acc, int i) { return acc ^ (i << 3); }

static op_fn table[] = { op_add, op_sub, op_mul, op_xor };
op_fn *volatile tablep = table;
volatile int sink;
char text[] = "a path/with/some/slashes/in/it";

int __attribute__((noinline)) work(int n)
{
	int acc = 1;

	for (int i = 0; i < n; i++)
		acc = tablep[(i * 7 + acc) & 3](acc, i);
	return acc + (int)(strrchr(text, '/') - text);
}

int main(int argc, char **argv)
{
	sink = work(argc > 1 ? atoi(argv[1]) : 40);
	return 0;
}
