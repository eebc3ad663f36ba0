// SPDX-License-Identifier: BSD-3-Clause
/*
 * Runs until killed, calling tick() in a loop: a process to attach to.
 * Prints "ready" on stdout once running.
 */
#include <stdio.h>
#include <unistd.h>

volatile unsigned long counter;

void __attribute__((noinline)) tick(void)
{
	counter++;
}

int main(void)
{
	if (write(1, "ready\n", 6) != 6)
		return 1;
	for (;;)
		tick();
}
