// SPDX-License-Identifier: BSD-3-Clause
/*
 * Two threads: work() starts a second thread, both loop, then it joins.
 * Traced from work(); the second thread is followed through its clone.
 */
#include <pthread.h>
#include <stdlib.h>

volatile long sink;

static void *__attribute__((noinline)) worker(void *arg)
{
	volatile long acc = 0;

	for (long i = 0; i < (long)arg; i++)
		acc += i & 3 ? i : -i;
	return (void *)acc;
}

int __attribute__((noinline)) work(long n)
{
	volatile long acc = 0;
	pthread_t t;
	void *ret;

	if (pthread_create(&t, NULL, worker, (void *)n))
		return 1;
	for (long i = 0; i < n; i++)
		acc += i & 1 ? i : 2;
	pthread_join(t, &ret);
	sink = acc + (long)ret;
	return 0;
}

int main(int argc, char **argv)
{
	return work(argc > 1 ? atol(argv[1]) : 1500);
}
