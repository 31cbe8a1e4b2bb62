/* SPDX-License-Identifier: MIT */
/*
 * ksync ResourceGuard: detects concurrent use of a resource that must not
 * be used concurrently. A user enters the guard before using the resource
 * and exits it after; a second user who enters meanwhile gets an error at
 * once (-EBUSY) instead of waiting, so a bug that shares a connection, a
 * parser or a ring between two tasks shows up as a clear error where it
 * happens rather than as corrupted state later.
 *
 * Users are identified like a Lock's owners: a thread by its thread id, a
 * task by the non-zero token it passes (ksync_guard_enter_task). Entering
 * again as the current user is -EDEADLK (the guard is not reentrant: a
 * nested use is a concurrent use too); exiting as someone who is not the
 * current user is -EPERM and changes nothing. ksync_guard_user() names the
 * current user, for the error message.
 *
 * A guard never waits and never makes a syscall, in any world. Entering is
 * one CAS (acquire) and exiting one store (release) for a thread, one CAS
 * for a token, so successive users are ordered like a lock's holders. A
 * thread's identity is its thread id, read again in a new process: a forked
 * child does not inherit its parent's use (its exit is -EPERM).
 * Tokens must be below KSYNC_KEY_THREAD (<ksync/word.h>).
 *
 * Where references differ: aiologic's ResourceGuard (and Trio's conflict
 * detector) only know "in use" and raise on a second entry; this one also
 * knows who uses it, so a nested use by the user itself (-EDEADLK) is told
 * from a use by someone else (-EBUSY), and an exit by a non-user is caught
 * (-EPERM) instead of freeing the resource under its user.
 *
 * 16 bytes; may be zero-initialised or use KSYNC_GUARD_INIT; destroy is
 * optional (it checks that nobody is using the resource).
 */
#ifndef KSYNC_GUARD_H
#define KSYNC_GUARD_H

#include <stdbool.h>
#include <stdint.h>
#include "ksync/kernel.h"	/* KSYNC_MUST_CHECK */

#ifdef __cplusplus
extern "C" {
#endif

struct ksync_guard {
	uint64_t user;		/* 0: free; the user's key (KSYNC_KEY_THREAD | tid, or a token) */
	uint32_t flags;		/* attributes given at init: KSYNC_SHARED */
	uint32_t reserved;	/* 0 */
};

#define KSYNC_GUARD_INIT { 0, 0, 0 }
/* Process-shared (KSYNC_SHARED): for memory shared between processes. */
#define KSYNC_GUARD_SHARED_INIT { 0, 1u /* KSYNC_SHARED */, 0 }

/*
 * ksync_guard_init - a free guard. @flags 0 (process-private) or
 * KSYNC_SHARED (<ksync/attr.h>; a guard makes no futex call, so it only
 * records it). Returns 0, or -EINVAL for an unknown flag.
 */
int ksync_guard_init(struct ksync_guard *guard, unsigned flags);

/* Returns 0, or -EBUSY if someone is using the resource (unchanged). */
int ksync_guard_destroy(struct ksync_guard *guard);

/*
 * ksync_guard_enter - start using the resource as the calling thread.
 * Returns 0, or:
 *   -EBUSY    someone else is using it (nothing changed; never waits)
 *   -EDEADLK  the calling thread is using it already
 */
KSYNC_MUST_CHECK int ksync_guard_enter(struct ksync_guard *guard);

/* Stop using it: 0, or -EPERM if the calling thread is not its user. */
int ksync_guard_exit(struct ksync_guard *guard);

/*
 * Task forms, as @token (non-zero and below KSYNC_KEY_THREAD; -EINVAL
 * otherwise). ksync_guard_enter_task: 0, -EBUSY, -EDEADLK (@token is the
 * user already). ksync_guard_exit_task: 0, or -EPERM if @token is not the
 * user.
 */
KSYNC_MUST_CHECK int ksync_guard_enter_task(struct ksync_guard *guard, uint64_t token);
int ksync_guard_exit_task(struct ksync_guard *guard, uint64_t token);

/* Is someone using the resource? (a snapshot) */
bool ksync_guard_busy(const struct ksync_guard *guard);

/*
 * The current user (a snapshot): 0 if none, KSYNC_KEY_THREAD | tid for a
 * thread, or a task's token.
 */
uint64_t ksync_guard_user(const struct ksync_guard *guard);

#ifdef __cplusplus
}
#endif
#endif
