// SPDX-License-Identifier: BSD-3-Clause
/* The smallest traced program: a loop, a call, an exit status. */
#include <stdio.h>

static int __attribute__((noinline)) square(int x)
{
	return x * x;
}

int main(int argc, char **argv)
{
	int sum = 0;

	(void)argv;
	for (int i = 0; i < 10 + argc; i++)
		sum += square(i);
	return sum % 7;
}
