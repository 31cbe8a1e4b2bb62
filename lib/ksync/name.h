/* SPDX-License-Identifier: MIT */
/*
 * Names for primitives, shown by tracing tools (ksync-wait) instead of an
 * address.
 *
 *   static struct ksync_lock queue_lock = KSYNC_LOCK_INIT;
 *   ksync_set_name(&queue_lock, "queue_lock");
 *
 * Any ksync primitive can be named: a lock, a semaphore, an event, ...; the
 * name is keyed by the primitive's address. A tool shows, in this order, the
 * name given here; for an unnamed primitive in a global or static variable,
 * the variable's ELF symbol ("server+0x10" for one inside a struct); else
 * the address.
 *
 * Cost. Nothing on any operation of a primitive: the library never looks a
 * name up. ksync_set_name() itself copies the name into a small table (no
 * allocation, no lock, no syscall) and fires one USDT probe, which is a
 * single load when no tracer is attached. Call it once, at init.
 *
 * Design. A tool learns a name in one of two ways, so that it sees names
 * whenever they were given:
 *
 *  - the registry, for names given before the tool attached: a table of
 *    KSYNC_NAME_SLOTS slots in its own ELF section ("ksync_names") of the
 *    library, or of a static binary that links it. A tool finds the section
 *    in the file, adds the load bias from /proc/PID/maps and reads the table
 *    from the process's memory. Each slot is written under a sequence count,
 *    so a tool reading a slot while it changes skips it instead of showing a
 *    torn name. The layout is ABI: struct ksync_name_table in
 *    <ksync/probe.h>.
 *  - the probe ksync:name(prim, name), fired after the table is updated, for
 *    names given while a tool is attached. A name given while a tool
 *    attaches is seen one way or the other (the table is written before the
 *    probe's is-enabled check, and the tool raises the check before it reads
 *    the table).
 *
 * Limits. Names are truncated to KSYNC_NAME_MAX - 1 bytes. At most
 * KSYNC_NAME_SLOTS primitives are named in the table at a time; past that
 * ksync_set_name() returns -ENOSPC and the name reaches only a tool attached
 * at that moment (through the probe).
 *
 * Lifetime. The table holds the primitive's address, not the primitive:
 * remove the name (ksync_set_name(prim, NULL)) before the primitive's memory
 * is freed or reused, or a tool may show the old name for whatever lives at
 * that address next. A forked child inherits the parent's names.
 *
 * Thread safety: any thread may call it at any time; two threads naming the
 * same primitive at once leave one of the two names.
 */
#ifndef KSYNC_NAME_H
#define KSYNC_NAME_H

#include "ksync/probe.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * ksync_set_name - name the primitive at @prim for tracing tools.
 * @name: NUL-terminated; NULL or "" removes the name.
 * Returns 0, or:
 *   -EINVAL  @prim is NULL
 *   -ENOSPC  the table is full: the name is not kept (a tool attached now
 *            still sees it)
 */
int ksync_set_name(const void *prim, const char *name);

#ifdef __cplusplus
}
#endif
#endif
