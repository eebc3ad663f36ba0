// SPDX-License-Identifier: BSD-3-Clause
/*
 * Signals: three SIGUSR1 raised (delivered on the way back from a system
 * call) and a SIGSEGV from a faulting store, caught, whose handler leaves
 * with siglongjmp. Traced from work(); exits 0 when all four handlers ran.
 */
#include <setjmp.h>
#include <signal.h>
#include <string.h>

static volatile int hits;
static sigjmp_buf env;

void on_usr1(int sig)
{
	(void)sig;
	hits++;
}

void on_segv(int sig)
{
	(void)sig;
	hits += 10;
	siglongjmp(env, 1);
}

int __attribute__((noinline)) work(void)
{
	for (int i = 0; i < 3; i++)
		raise(SIGUSR1);
	if (!sigsetjmp(env, 1))
		*(volatile int *)16 = 1;
	return hits;
}

int main(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_segv;
	sigaction(SIGSEGV, &sa, NULL);
	return work() == 13 ? 0 : 1;
}
