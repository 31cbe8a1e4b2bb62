/* SPDX-License-Identifier: MIT */
/*
 * USDT probes of ksync (provider "ksync") and the name registry. Stable ABI
 * for tracing tools.
 *
 * Every probe sits on a slow path and is guarded by its is-enabled
 * semaphore, so an unattached probe costs one predictable load on a path
 * that is about to make a syscall anyway.
 *
 *   ksync:wait_begin (void *prim, int kind, int world, u64 who)
 *   ksync:wait_end   (void *prim, int kind, int world, u64 who, int outcome)
 *   ksync:wake_begin (void *prim, int kind)
 *   ksync:wake       (void *prim, int kind, int woken)
 *   ksync:op_start   (void *op, void *prim, int kind, u64 who)
 *   ksync:name       (void *prim, const char *name)
 *
 * wait_begin/wait_end bracket one contended wait, in the waiter's world.
 * who is the thread id for KSYNC_WORLD_THREAD; for KSYNC_WORLD_URING it is
 * the op's task token, or the op's address when it has no token (semaphore
 * and event ops), so concurrent waits of one loop are told apart. outcome
 * is 0 when the wait got what it waited for, otherwise a negative errno
 * (-ETIMEDOUT, -ECANCELED, ...). A Lock wait that ends with outcome 0 ends
 * with the waiter owning the lock.
 *
 * wake_begin/wake bracket one futex_wake of the primitive's word, on the
 * waker's thread: a release, set or hand-on that must wake waiters.
 * wake_begin fires before the syscall, so it precedes the wait_end of every
 * waiter that wake releases (a tool charges the waiting it ends to the
 * waker's stack there); wake fires after it, with the number woken. For a
 * Lock, wake_begin is the end of the current hold.
 *
 * op_start fires in ksync_op_start() when an async op has to wait (its
 * first attempt failed), before its wait is armed, on the thread and in the
 * stack that started the op: the task's call site, not the loop's. Its who
 * is the one the op's wait_begin/wait_end carry.
 *
 * name fires in ksync_set_name() after the registry below is updated; name
 * is NULL when the name is removed.
 */
#ifndef KSYNC_UAPI_PROBE_H
#define KSYNC_UAPI_PROBE_H

#define KSYNC_PROBE_PROVIDER	"ksync"

enum ksync_kind {
	KSYNC_KIND_EVENT = 1,
	KSYNC_KIND_LOCK = 2,
	KSYNC_KIND_SEM = 3,
	KSYNC_KIND_LIMITER = 4,
	KSYNC_KIND_REVENT = 10,
	KSYNC_KIND_COUNTDOWN = 11,
	KSYNC_KIND_LATCH = 12,
	KSYNC_KIND_BARRIER = 13,
	KSYNC_KIND_RBARRIER = 14,
	KSYNC_KIND_BQUEUE = 20,
};

enum ksync_world {
	KSYNC_WORLD_THREAD = 1,
	KSYNC_WORLD_URING = 2,
};

/*
 * The name registry (ksync_set_name, <ksync/name.h>): one table per
 * process, in the ELF section KSYNC_NAME_SECTION of the library (or of the
 * static binary that links it), so that a tool attaching at any time can
 * read the names given before it attached: find the section, add the
 * module's load bias, read the table from the process's memory.
 *
 * A slot is in use when prim is non-zero and name is non-empty. seq is odd
 * while the slot is being written: a reader copies the table, then reads the
 * seq of each slot again, and keeps a slot only if both reads saw the same
 * even seq.
 */
#define KSYNC_NAME_SECTION	"ksync_names"
#define KSYNC_NAME_MAGIC	0x6b6e616du	/* "knam" */
#define KSYNC_NAME_VERSION	1
#define KSYNC_NAME_MAX		32		/* bytes, with the NUL */
#define KSYNC_NAME_SLOTS	128

struct ksync_name_slot {
	unsigned long long prim;	/* primitive address, 0: free */
	unsigned int seq;
	unsigned int _pad;
	char name[KSYNC_NAME_MAX];	/* NUL-terminated */
};

struct ksync_name_table {
	unsigned int magic;		/* KSYNC_NAME_MAGIC */
	unsigned short version;		/* KSYNC_NAME_VERSION */
	unsigned short nslots;		/* KSYNC_NAME_SLOTS */
	unsigned int _pad[2];
	struct ksync_name_slot slot[KSYNC_NAME_SLOTS];
};

#endif
