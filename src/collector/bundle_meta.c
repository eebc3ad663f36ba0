// SPDX-License-Identifier: BSD-3-Clause
/*
 * The TSDL metadata of a bundle: every event class is derived, field by
 * field, from the bt.* table of <btrail/events.h>, so a new field in the
 * table is a new CTF field with no other change. docs/bundle.md shows
 * the result.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <btrail/bundle.h>
#include <btrail/common.h>
#include <btrail/events.h>

#include "collector/bundle_int.h"

static const char prologue[] =
	"/* CTF 1.8 */\n"
	"\n"
	"/* btrail bundle: see docs/bundle.md. Every integer is "
	"byte-aligned. */\n"
	"typealias integer { size = 8; align = 8; signed = false; }"
	" := uint8_t;\n"
	"typealias integer { size = 16; align = 8; signed = false; }"
	" := uint16_t;\n"
	"typealias integer { size = 32; align = 8; signed = false; }"
	" := uint32_t;\n"
	"typealias integer { size = 64; align = 8; signed = false; }"
	" := uint64_t;\n"
	"typealias integer { size = 64; align = 8; signed = false;"
	" base = 16; } := uint64_hex_t;\n"
	"typealias integer { size = 32; align = 8; signed = true; }"
	" := int32_t;\n"
	"typealias integer { size = 64; align = 8; signed = true; }"
	" := int64_t;\n"
	"\n";

/* Keep a session name printable inside a TSDL string literal. */
static void put_name(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		fputc(c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? c : '_',
		      f);
	}
}

static void put_field(FILE *f, const struct bt_event_field *fl)
{
	switch (fl->kind) {
	case BT_FK_U64:
		fprintf(f, "\t\t%s %s;\n", fl->flags & BT_EF_ADDR ?
			"uint64_hex_t" : "uint64_t", fl->name);
		break;
	case BT_FK_I64:
		fprintf(f, "\t\tint64_t %s;\n", fl->name);
		break;
	case BT_FK_U32:
		fprintf(f, "\t\tuint32_t %s;\n", fl->name);
		break;
	case BT_FK_I32:
		fprintf(f, "\t\tint32_t %s;\n", fl->name);
		break;
	case BT_FK_BOOL:
		fprintf(f, "\t\tuint8_t %s;\n", fl->name);
		break;
	case BT_FK_STR:
		fprintf(f, "\t\tstring { encoding = UTF8; } %s;\n", fl->name);
		break;
	case BT_FK_BYTES:
		fprintf(f, "\t\tuint32_t %s_len;\n", fl->name);
		fprintf(f, "\t\tuint8_t %s[%s_len];\n", fl->name, fl->name);
		break;
	case BT_FK_RECS:
		fprintf(f, "\t\tuint32_t %s_count;\n\t\tstruct {\n", fl->name);
		for (uint32_t i = 0; i < fl->rec_nfields; i++)
			fprintf(f, "\t\t\t%s %s;\n",
				fl->rec[i].flags & BT_EF_ADDR ?
				"uint64_hex_t" : "uint64_t", fl->rec[i].name);
		fprintf(f, "\t\t} %s[%s_count];\n", fl->name, fl->name);
		break;
	}
}

int bw_metadata_write(FILE *f, bool big_endian, const char *uuid,
		      const char *session)
{
	const struct bt_event_type *types;
	size_t n;

	fputs(prologue, f);
	fprintf(f,
		"trace {\n"
		"\tmajor = 1;\n"
		"\tminor = 8;\n"
		"\tuuid = \"%s\";\n"
		"\tbyte_order = %s;\n"
		"\tpacket.header := struct {\n"
		"\t\tuint32_t magic;\n"
		"\t\tuint8_t uuid[16];\n"
		"\t\tuint32_t stream_id;\n"
		"\t};\n"
		"};\n\n", uuid, big_endian ? "be" : "le");
	fprintf(f, "env {\n\ttracer_name = \"btrail\";\n"
		"\ttracer_major = %d;\n\ttracer_minor = %d;\n"
		"\ttracer_patch = %d;\n\tbtrail_format = %u;\n"
		"\tsession = \"", BTRAIL_VERSION_MAJOR, BTRAIL_VERSION_MINOR,
		BTRAIL_VERSION_PATCH, BT_BUNDLE_FORMAT_VERSION);
	put_name(f, session);
	fputs("\";\n};\n\n", f);
	fputs("clock {\n"
	      "\tname = \"realtime\";\n"
	      "\tdescription = \"CLOCK_REALTIME, the KMES event timestamps\";\n"
	      "\tfreq = 1000000000;\n"
	      "\tprecision = 1;\n"
	      "\toffset_s = 0;\n"
	      "\toffset = 0;\n"
	      "\tabsolute = true;\n"
	      "};\n\n"
	      "typealias integer { size = 64; align = 8; signed = false; "
	      "map = clock.realtime.value; } := uint64_clock_t;\n\n", f);
	fputs("stream {\n"
	      "\tid = 0;\n"
	      "\tpacket.context := struct {\n"
	      "\t\tuint64_clock_t timestamp_begin;\n"
	      "\t\tuint64_clock_t timestamp_end;\n"
	      "\t\tuint64_t content_size;\n"
	      "\t\tuint64_t packet_size;\n"
	      "\t\tuint64_t events_discarded;\n"
	      "\t\tuint64_t packet_seq_num;\n"
	      "\t\tuint32_t cpu_id;\n"
	      "\t\tuint32_t slot;\n"
	      "\t\tuint32_t ring_kind;\n"
	      "\t\tuint32_t ring_tid;\n"
	      "\t};\n"
	      "\t/* timestamp: kmes_ts made monotonic within the stream */\n"
	      "\tevent.header := struct {\n"
	      "\t\tuint16_t id;\n"
	      "\t\tuint64_clock_t timestamp;\n"
	      "\t};\n"
	      "\t/* the KMES header: its time, sequence (gaps) and CPU */\n"
	      "\tevent.context := struct {\n"
	      "\t\tuint64_t kmes_ts;\n"
	      "\t\tuint64_t seq;\n"
	      "\t\tuint16_t kmes_cpu;\n"
	      "\t};\n"
	      "};\n\n", f);

	types = bt_event_types(&n);
	for (size_t i = 0; i < n; i++) {
		const struct bt_event_type *t = &types[i];

		fprintf(f, "event {\n\tname = \"%s\";\n\tid = %u;\n"
			"\tstream_id = 0;\n\tfields := struct {\n",
			t->name, t->id);
		for (uint32_t k = 0; k < t->nfields; k++)
			put_field(f, &t->fields[k]);
		fputs("\t};\n};\n\n", f);
	}
	fprintf(f, "/* An event whose type is not in the bt.* table. */\n"
		"event {\n\tname = \"kmes.raw\";\n\tid = %u;\n"
		"\tstream_id = 0;\n\tfields := struct {\n"
		"\t\tstring { encoding = UTF8; } type;\n"
		"\t\tuint32_t payload_len;\n"
		"\t\tuint8_t payload[payload_len];\n"
		"\t};\n};\n", BT_BUNDLE_EVID_RAW);
	return ferror(f) ? -EIO : 0;
}
