// SPDX-License-Identifier: BSD-3-Clause
/*
 * A call through a null function pointer: dispatch() looks up a handler
 * that was never registered and calls it. The call itself succeeds and
 * the fetch at address 0 faults: SIGSEGV, si_addr 0, and the last branch
 * goes from the `call` in dispatch() to 0.
 */
#include <stdlib.h>

typedef int (*handler_fn)(int);

static int __attribute__((noinline)) square(int x)
{
	return x * x;
}

/* Slot 2 was never filled in. */
handler_fn handlers[4] = { square, square, NULL, square };

int __attribute__((noinline)) dispatch(int op, int arg)
{
	return handlers[op](arg);
}

int __attribute__((noinline)) run(int n)
{
	int acc = 0;

	for (int op = 0; op < n; op++)
		acc += dispatch(op, op + 1);
	return acc;
}

int main(int argc, char **argv)
{
	return run(argc > 1 ? atoi(argv[1]) : 4) & 0x7f;
}
