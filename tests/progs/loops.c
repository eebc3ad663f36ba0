// SPDX-License-Identifier: BSD-3-Clause
/*
 * Loops for the step and pt-emu tests: nested loops with conditional
 * branches, a switch compiled to a jump table (an indirect jump), a
 * `loop` instruction and a `rep movsb` (one instruction, many single-step
 * traps). Traced from work() (--start-at work).
 */
#include <stdlib.h>
#include <string.h>

volatile int sink;

static int __attribute__((noinline)) classify(int x)
{
	switch (x % 8) {
	case 0: return 3;
	case 1: return x + 5;
	case 2: return 7;
	case 3: return x * 11;
	case 4: return 13;
	case 5: return x ^ 17;
	case 6: return 19;
	default: return 23;
	}
}

int __attribute__((noinline)) work(int n)
{
	char src[48], dst[48];
	unsigned long count = 9;
	int acc = 0;

	for (int i = 0; i < n; i++) {
		for (int j = 0; j < 4; j++)
			acc += ((i ^ j) & 1) ? classify(i + j) : j;
	}
	/* loop: a conditional branch on rcx */
	__asm__ volatile("1: addl $1, %0\n\tloop 1b" : "+r"(acc), "+c"(count));
	/* rep movsb: one instruction, one trap per byte */
	memset(src, acc & 0x7f, sizeof(src));
	{
		void *d = dst, *s = src;
		unsigned long c = sizeof(src);

		__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(c) : : "memory");
	}
	return acc + dst[47];
}

int main(int argc, char **argv)
{
	sink = work(argc > 1 ? atoi(argv[1]) : 24);
	return 0;
}
