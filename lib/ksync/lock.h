/* SPDX-License-Identifier: MIT */
/*
 * ksync Lock: an ownable mutex shared by threads and io_uring tasks.
 *
 * Ownership. A thread owns the lock by its thread id; an io_uring task owns
 * it by the non-zero token it passes (ksync_op_lock, ksync_lock_try_task,
 * ksync_lock_release_task). Releasing a lock you do not own is -EPERM;
 * acquiring a lock you already own is -EDEADLK. A thread that would block on
 * a lock owned by a task that was running on the same thread gets -EDEADLK
 * instead of hanging (that task cannot run while its thread is blocked).
 *
 * Cost. Uncontended acquire and release are one atomic RMW each and no
 * syscall. A release makes a futex_wake syscall only when waiters may be
 * parked.
 *
 * Fairness. New arrivals may barge past parked waiters while the lock is
 * changing hands (this is what makes contended throughput high), and threads
 * spin briefly before parking. Unfairness is bounded: a woken waiter that has
 * waited longer than KSYNC_LOCK_STARVE_NS marks the lock STARVING, and from
 * then on each release hands the lock directly to the next parked waiter in
 * wake order (the kernel's FIFO order among equal priorities), with no
 * barging, until a waiter is served within the bound again. Threads and
 * tasks park on the same futex word and are served in one order.
 *
 * Word layout: KSYNC_LOCK_* in <ksync/word.h>. 24 bytes; may be
 * zero-initialised or use KSYNC_LOCK_INIT; destroy is optional (it only
 * checks that the lock is idle).
 *
 * Do not block a loop thread on a lock that a task of that loop is waiting
 * for: the hand-off may be reserved for that task, which cannot run.
 */
#ifndef KSYNC_LOCK_H
#define KSYNC_LOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>	/* clockid_t (<time.h> has it only for POSIX) */
#include <time.h>		/* struct timespec */
#include "ksync/kernel.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ksync_lock {
	uint32_t word;
	uint32_t owner_tid;	/* thread that took it (for a task: its loop thread) */
	uint64_t owner_token;	/* 0 for a thread owner, the task token otherwise */
	uint32_t flags;		/* attributes given at init: KSYNC_SHARED */
	uint32_t reserved;	/* 0 */
};

#define KSYNC_LOCK_INIT { 0, 0, 0, 0, 0 }
/* Process-shared (KSYNC_SHARED): for memory shared between processes. */
#define KSYNC_LOCK_SHARED_INIT { 0, 0, 0, 1u /* KSYNC_SHARED */, 0 }

/* A waiter that has waited this long makes releases hand off in order. */
#define KSYNC_LOCK_STARVE_NS	200000

/*
 * ksync_lock_init - @flags 0 (process-private) or KSYNC_SHARED
 * (<ksync/attr.h>). Returns 0, or -EINVAL for an unknown flag (the lock is
 * then left untouched).
 */
int ksync_lock_init(struct ksync_lock *lock, unsigned flags);

/*
 * ksync_lock_destroy - check the lock is idle.
 * Returns 0, or -EBUSY if it is held or has waiters (the lock is unchanged
 * and still usable).
 */
int ksync_lock_destroy(struct ksync_lock *lock);

/*
 * ksync_lock_acquire / ksync_lock_acquire_until - block the calling thread
 * until it owns the lock.
 * @clock: CLOCK_MONOTONIC or CLOCK_REALTIME; @deadline absolute, NULL = none
 * (any tv_sec >= 0 is a valid deadline, INT64_MAX included).
 * Returns 0 with the lock owned, or an error with the lock not owned:
 *   -EDEADLK    the thread already owns it, or a task on this thread does
 *   -ETIMEDOUT  the deadline passed first (it is tried once even if the
 *               deadline already passed)
 *   -EINVAL     bad clock or malformed deadline
 *   -ENOSYS, -EPERM  only when it must wait: the kernel refused every
 *               futex wait (futex2 and the classic futex(2) alike; a
 *               seccomp filter can do that, no Linux kernel lacks futex(2))
 *   or any other error the kernel gave the wait. A signal or a spurious
 *   wakeup never ends the call; no error is retried (no spinning).
 */
KSYNC_MUST_CHECK int ksync_lock_acquire(struct ksync_lock *lock);
KSYNC_MUST_CHECK int ksync_lock_acquire_until(struct ksync_lock *lock, clockid_t clock,
					      const struct timespec *deadline);

/*
 * ksync_lock_try - take the lock if it is free, without waiting.
 * Returns 0, -EBUSY (held by someone else or reserved for a woken waiter),
 * or -EDEADLK (the calling thread already owns it).
 */
KSYNC_MUST_CHECK int ksync_lock_try(struct ksync_lock *lock);

/* Release a lock owned by the calling thread: 0, or -EPERM if it does not
 * own it (the lock is unchanged). */
int ksync_lock_release(struct ksync_lock *lock);

/*
 * Task forms. @token must be non-zero (-EINVAL otherwise).
 * ksync_lock_try_task: 0, -EBUSY, -EDEADLK (the token already owns it).
 * ksync_lock_release_task: 0, or -EPERM if @token does not own it.
 * The async wait is ksync_op_lock() in <ksync/op.h>.
 */
KSYNC_MUST_CHECK int ksync_lock_try_task(struct ksync_lock *lock, uint64_t token);
int ksync_lock_release_task(struct ksync_lock *lock, uint64_t token);

/* Is the lock held by anyone? (A snapshot; for assertions and stats.) */
bool ksync_lock_held(const struct ksync_lock *lock);

#ifdef __cplusplus
}
#endif
#endif
