/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef BT_COLLECTOR_KMES_IDENTITY_H
#define BT_COLLECTOR_KMES_IDENTITY_H

#include <stdint.h>
#include <sys/types.h>

/*
 * The three identity GUIDs of a KMES header (KMES.md §3), derived as
 * ARCHITECTURE.md says: name-based (SHA-1, RFC 4122 version 5) UUIDs in
 * the namespace of this boot's boot_id, of "process:<pid>:<starttime>",
 * "token:<uid>" and "token:<euid>", stored in the Microsoft binary layout
 * the spec uses (Data1..Data3 little-endian). A caller whose euid is its
 * uid (not impersonating) gets equal effective and true token GUIDs. When
 * the boot id cannot be read, all three are the null GUID (16 zeros).
 */
struct kmes_identity {
	uint8_t effective_token[16];
	uint8_t true_token[16];
	uint8_t process[16];
};

/* Fills @id for process @pid with credentials @uid/@euid. */
void kmes_identity_get(struct kmes_identity *id, pid_t pid, uid_t uid,
		       uid_t euid);

#endif /* BT_COLLECTOR_KMES_IDENTITY_H */
