/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the benchmarks share: the clock and the machine they ran on. Each
 * benchmark is one .c file built into its own binary, so these are
 * static inline here rather than a library of their own.
 */
#ifndef BT_BENCH_UTIL_H
#define BT_BENCH_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* CLOCK_MONOTONIC in seconds. */
static inline double bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * The first "model name" of /proc/cpuinfo into @model (@size bytes; left
 * as it is when there is none) and, when @hv is not NULL, whether the
 * hypervisor CPUID bit is set: figures from a VM are not a bare metal's.
 */
static inline void bench_cpu_model(char *model, size_t size, bool *hv)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	bool found = false;
	char line[512];

	if (hv)
		*hv = false;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!found && !strncmp(line, "model name", 10)) {
			char *c = strchr(line, ':');

			if (c) {
				c++;
				while (*c == ' ' || *c == '\t')
					c++;
				c[strcspn(c, "\n")] = '\0';
				snprintf(model, size, "%s", c);
				found = true;
			}
		}
		if (hv && !strncmp(line, "flags", 5) &&
		    strstr(line, " hypervisor"))
			*hv = true;
		if (found && !hv)
			break;
	}
	fclose(f);
}

/* "machine: MODEL, N CPUs, Linux RELEASE ARCH[, in a VM ...]". */
static inline void bench_print_machine(void)
{
	char model[128] = "?";
	struct utsname u;
	bool hv;

	bench_cpu_model(model, sizeof(model), &hv);
	uname(&u);
	printf("machine: %s, %ld CPUs, %s %s %s%s\n", model,
	       sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, u.machine,
	       hv ? ", in a VM (hypervisor CPUID bit)" : "");
}

#endif /* BT_BENCH_UTIL_H */
