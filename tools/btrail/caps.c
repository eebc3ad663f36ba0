// SPDX-License-Identifier: BSD-3-Clause
/*
 * btrail caps: which trace facilities this machine offers, and for each
 * one it does not, why.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <btrail/ds.h>
#include <btrail/errno.h>

#include "btrail.h"

static int usage(FILE *f, int status)
{
	fprintf(f,
		"Usage: %s caps [--json] [--no-open] [--sysfs DIR] [--procfs DIR]\n"
		"\n"
		"Print each trace facility (pt, bts, pebs, lbr, step, pt-emu),\n"
		"whether this process can use it now, and why not.\n"
		"\n"
		"  --json        one JSON object instead of the table\n"
		"  --no-open     judge from sysfs and /proc only; open no event\n"
		"  --sysfs DIR   read DIR instead of /sys (a copy of another machine's)\n"
		"  --procfs DIR  read DIR instead of /proc\n"
		"  -h, --help    this help\n", bin_name);
	return status;
}

/* @s as a JSON string, quotes included. */
static void json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void print_json(const struct bt_cap *caps)
{
	printf("{\n  \"facilities\": [\n");
	for (uint32_t i = 0; i < BT_FAC__COUNT; i++) {
		printf("    { \"name\": ");
		json_string(bt_facility_name(i));
		printf(", \"present\": %s, \"reason\": ",
		       caps[i].present ? "true" : "false");
		json_string(caps[i].reason);
		printf(", \"holder\": ");
		if (caps[i].holder[0])
			json_string(caps[i].holder);
		else
			printf("null");
		printf(" }%s\n", i + 1 < BT_FAC__COUNT ? "," : "");
	}
	printf("  ]\n}\n");
}

static void print_table(const struct bt_cap *caps)
{
	for (uint32_t i = 0; i < BT_FAC__COUNT; i++) {
		printf("%-7s %-8s %s\n", bt_facility_name(i),
		       caps[i].present ? "present" : "absent", caps[i].reason);
		if (caps[i].holder[0])
			printf("%-7s %-8s held by %s\n", "", "", caps[i].holder);
	}
}

int do_caps(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json",    no_argument,       NULL, 'j' },
		{ "no-open", no_argument,       NULL, 'n' },
		{ "sysfs",   required_argument, NULL, 's' },
		{ "procfs",  required_argument, NULL, 'p' },
		{ "help",    no_argument,       NULL, 'h' },
		{ NULL,      0,                 NULL, 0 },
	};
	struct bt_caps_opts o = { .sz = sizeof(o) };
	struct bt_cap caps[BT_FAC__COUNT];
	bool json = false;
	int c, err;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'n':
			o.no_open = true;
			break;
		case 's':
			o.sysfs = optarg;
			break;
		case 'p':
			o.procfs = optarg;
			break;
		case 'h':
			return usage(stdout, BT_EXIT_OK);
		default:
			return usage(stderr, BT_EXIT_USAGE);
		}
	}
	if (optind != argc) {
		err_msg("caps: unexpected argument '%s'", argv[optind]);
		return usage(stderr, BT_EXIT_USAGE);
	}
	err = bt_caps_probe(caps, &o);
	if (err < 0) {
		err_msg("caps: cannot probe: %s", bt_strerror(err));
		return BT_EXIT_FAIL;
	}
	if (json)
		print_json(caps);
	else
		print_table(caps);
	return BT_EXIT_OK;
}
