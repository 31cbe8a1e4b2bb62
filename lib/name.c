/* SPDX-License-Identifier: MIT */
/* Names for primitives: the registry tools read, and the probe (ksync/name.h). */
#include "internal.h"
#include "ksync/name.h"

#include <string.h>

_Static_assert(sizeof(struct ksync_name_slot) == 16 + KSYNC_NAME_MAX, "slot layout is ABI");
_Static_assert(sizeof(struct ksync_name_table) ==
	       16 + KSYNC_NAME_SLOTS * sizeof(struct ksync_name_slot), "table layout is ABI");

/* Its own section, so that a tool finds it in a stripped file too. */
__attribute__((section(KSYNC_NAME_SECTION), used, aligned(64)))
struct ksync_name_table ksync_name_table = {
	.magic = KSYNC_NAME_MAGIC,
	.version = KSYNC_NAME_VERSION,
	.nslots = KSYNC_NAME_SLOTS,
};

/* A writer owns a slot while its seq is odd; readers skip it then. */
static void slot_lock(struct ksync_name_slot *s)
{
	uint32_t seq = load_relaxed(&s->seq);

	for (;;) {
		if (!(seq & 1) && cas_acquire(&s->seq, &seq, seq + 1))
			return;
		cpu_relax();
		seq = load_relaxed(&s->seq);
	}
}

static void slot_unlock(struct ksync_name_slot *s)
{
	store_release(&s->seq, load_relaxed(&s->seq) + 1);
}

static void slot_write(struct ksync_name_slot *s, const char *name)
{
	size_t n = strnlen(name, KSYNC_NAME_MAX - 1);

	memcpy(s->name, name, n);
	memset(s->name + n, 0, KSYNC_NAME_MAX - n);
}

KSYNC_API int ksync_set_name(const void *prim, const char *name)
{
	struct ksync_name_slot *slots = ksync_name_table.slot;
	unsigned long long key = (uintptr_t)prim;
	bool found = false;
	int r = 0;

	if (!prim)
		return -EINVAL;
	if (name && !*name)
		name = NULL;

	/* Rename (or unname) every slot this primitive has: two racing first
	 * calls may each have claimed one. */
	for (unsigned i = 0; i < KSYNC_NAME_SLOTS; i++) {
		struct ksync_name_slot *s = &slots[i];

		if (load_acquire(&s->prim) != key)
			continue;
		slot_lock(s);
		if (load_relaxed(&s->prim) == key) {
			if (name) {
				slot_write(s, name);
			} else {
				memset(s->name, 0, sizeof(s->name));
				store_release(&s->prim, 0);
			}
			found = true;
		}
		slot_unlock(s);
	}
	if (name && !found) {
		r = -ENOSPC;
		for (unsigned i = 0; i < KSYNC_NAME_SLOTS; i++) {
			struct ksync_name_slot *s = &slots[i];
			unsigned long long free_slot = 0;

			if (load_relaxed(&s->prim) || !cas_acquire(&s->prim, &free_slot, key))
				continue;
			/* Claimed, still with an empty name: readers skip it. */
			slot_lock(s);
			slot_write(s, name);
			slot_unlock(s);
			r = 0;
			break;
		}
	}
	/* After the table: a tool that attaches meanwhile sees one or the other. */
	trace_name(prim, name);
	return r;
}
