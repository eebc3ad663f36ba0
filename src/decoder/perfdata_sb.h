/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One perf_event record from a raw sideband buffer (the .sb files of
 * libipt's ptxed --pevent:*, or a perf ring's data), where no perf.data
 * header says what the sample_id_all trailer holds: the caller gives the
 * attr's sample_type.
 */
#ifndef BT_DECODER_PERFDATA_SB_H
#define BT_DECODER_PERFDATA_SB_H

#include <stddef.h>
#include <stdint.h>

#include <btrail/perfdata.h>

/*
 * pd_sb_record() - parse the record at byte @off of the @size bytes at
 * @buf into @rec, reading its sample_id_all trailer as @sample_type asks,
 * and put the offset of the record after it into *@next. @name names the
 * buffer in messages. Pointers in @rec point into @buf.
 *
 * Returns 0, or -BT_ERRNO_FORMAT for a malformed or truncated record
 * (logged with @name, the offset and the problem).
 */
int pd_sb_record(const void *buf, size_t size, uint64_t off,
		 uint64_t sample_type, const char *name,
		 struct bt_perf_record *rec, uint64_t *next);

#endif /* BT_DECODER_PERFDATA_SB_H */
