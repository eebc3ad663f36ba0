// SPDX-License-Identifier: BSD-3-Clause
/*
 * A crash in a second thread: main() starts worker(), which stores
 * through a bad pointer (0xbad000, never mapped) while main() waits in
 * pthread_join(). SIGSEGV with that fault address, in the worker thread.
 */
#include <pthread.h>
#include <stdint.h>

volatile int sink;

void __attribute__((noinline)) store(volatile int *p, int v)
{
	*p = v;
}

void __attribute__((noinline)) fill(volatile int *p, int n)
{
	for (int i = 0; i < n; i++)
		sink += i;
	store(p, n);
}

static void *worker(void *arg)
{
	(void)arg;
	fill((volatile int *)(uintptr_t)0xbad000, 10);
	return NULL;
}

int main(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, worker, NULL))
		return 1;
	pthread_join(t, NULL);
	return 0;
}
