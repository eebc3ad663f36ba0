// SPDX-License-Identifier: BSD-3-Clause
/*
 * A system call restarted: work() blocks in read(2) on a pipe; a child
 * waits until its parent sleeps (in that read), sends it SIGURG (ignored
 * by default, so no handler runs and the kernel restarts the read), then
 * writes the byte the read returns. Exits 0 when the byte arrived.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void pause_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000 };

	nanosleep(&ts, NULL);
}

/* The state letter of @pid ('S': sleeping in a system call). */
static char state_of(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] && p[2] ? p[2] : '?';
}

int __attribute__((noinline)) work(int rd, pid_t child)
{
	char c = 0;
	int status;

	if (read(rd, &c, 1) != 1)
		return 1;
	waitpid(child, &status, 0);
	return c == 'x' ? 0 : 2;
}

int main(void)
{
	int p[2];
	pid_t child;

	if (pipe(p))
		return 3;
	child = fork();
	if (child < 0)
		return 4;
	if (!child) {
		pid_t parent = getppid();

		close(p[0]);
		for (int i = 0; i < 10000 && state_of(parent) != 'S'; i++)
			pause_ms(1);
		kill(parent, SIGURG);
		pause_ms(20);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	return work(p[0], child);
}
