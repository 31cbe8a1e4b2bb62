/* SPDX-License-Identifier: MIT */
/*
 * ksync Semaphore: counting permits shared by threads and io_uring tasks.
 *
 * Counting (max = 0: up to KSYNC_SEM_VALUE_MAX), bounded (release past max
 * is -EOVERFLOW) and binary (bounded with max 1) forms share one type.
 * Permits are not owned: any thread or task may release.
 *
 * Cost. Uncontended acquire is one atomic RMW and no syscall; release is one
 * atomic RMW plus a load, and a futex_wake syscall only when waiters are
 * asleep: a waiter that has been woken but has not run yet (an io_uring
 * task whose CQE is not reaped) is no longer counted, so releases do not
 * wake on its behalf. A release wakes at most as many waiters as it
 * released permits.
 *
 * Fairness. Parked waiters are woken in the kernel's FIFO order (equal
 * priorities); a woken waiter then competes with new arrivals, which may
 * take the permit first (barging), and parks again if it loses. Unfairness
 * is bounded: a woken waiter that has waited KSYNC_SEM_STARVE_NS or more
 * and still loses sets STARVING, and so does a woken io_uring task that
 * loses at all (between its wake and its attempt its loop must reap the
 * CQE, a window in which threads would always win); from then on each
 * release reserves its permits (in the futex word) for the waiters it
 * wakes, so new arrivals cannot take them, until a waiter is served within the bound again. The
 * benchmark suite reports the measured max and p99.9 wait.
 *
 * Loop threads. Do not block a loop's thread in ksync_sem_acquire on a
 * semaphore that a task of that same loop is waiting for: a release may
 * wake (and, in hand-off mode, reserve a permit for) the task, which cannot
 * run while its thread is blocked, so the thread can sleep until its
 * deadline although a permit was released. Use an async op on that thread.
 *
 * Word layout: free and reserved permits in the futex word (<ksync/word.h>).
 * 16 bytes; KSYNC_SEM_INIT / ksync_sem_init; destroy is optional.
 */
#ifndef KSYNC_SEM_H
#define KSYNC_SEM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>	/* clockid_t (<time.h> has it only for POSIX) */
#include <time.h>		/* struct timespec */
#include "ksync/kernel.h"	/* KSYNC_MUST_CHECK */

#ifdef __cplusplus
extern "C" {
#endif

struct ksync_op;

struct ksync_sem {
	uint32_t word;		/* free | reserved << 24 (KSYNC_SEM_* in word.h) */
	uint32_t waiters;	/* announced and not yet woken by the kernel */
	uint32_t max;		/* 0: unbounded (KSYNC_SEM_VALUE_MAX) */
	uint32_t flags;		/* KSYNC_SEM_STARVING, KSYNC_SEM_SHARED */
};

#define KSYNC_SEM_INIT(value)			{ (value), 0, 0, 0 }
#define KSYNC_SEM_BOUNDED_INIT(value, max)	{ (value), 0, (max), 0 }
#define KSYNC_SEM_BINARY_INIT(value)		{ (value), 0, 1, 0 }
/* Process-shared (KSYNC_SHARED): for memory shared between processes. */
#define KSYNC_SEM_SHARED_INIT(value, max)	{ (value), 0, (max), KSYNC_SEM_SHARED }

/* A woken waiter that has waited this long starts hand-off mode. */
#define KSYNC_SEM_STARVE_NS	200000

/*
 * ksync_sem_init - @value free permits; @max 0 for unbounded; @flags 0
 * (process-private) or KSYNC_SHARED (<ksync/attr.h>).
 * Returns 0, or -EINVAL if value > max (bounded), value or max exceeds
 * KSYNC_SEM_VALUE_MAX, or @flags has an unknown bit.
 */
int ksync_sem_init(struct ksync_sem *sem, uint32_t value, uint32_t max, unsigned flags);

/* Returns 0, or -EBUSY if waiters are parked or a woken waiter has not
 * taken its reserved permit yet (the semaphore is unchanged). */
int ksync_sem_destroy(struct ksync_sem *sem);

/*
 * ksync_sem_acquire / ksync_sem_acquire_until - take one permit, blocking.
 * ksync_sem_acquire_many / _many_until - take @n permits at once.
 * @clock: CLOCK_MONOTONIC or CLOCK_REALTIME; @deadline absolute, NULL = none.
 * Returns 0 with the permits, or (holding none):
 *   -ETIMEDOUT  the deadline passed first (tried once even if it already had)
 *   -ESHUTDOWN  the semaphore is closed (also when closed while waiting)
 *   -EINVAL     bad clock, malformed deadline, n == 0, or n more than the
 *               semaphore can ever hold (max, or KSYNC_SEM_VALUE_MAX)
 *   other       the kernel refused the futex wait (e.g. -ENOSYS or -EPERM
 *               when no futex syscall may be used); only when it must wait
 *
 * Several permits: a request for n > 1 that cannot be served at once waits
 * at the head of the line if nobody else does: from then on no other acquire
 * takes a free permit until it has all n (released permits gather for it),
 * so a large request is not starved by small ones. Later large requests
 * queue behind it like everyone else, and one of them becomes the next
 * head when it is served or leaves.
 */
KSYNC_MUST_CHECK int ksync_sem_acquire(struct ksync_sem *sem);
KSYNC_MUST_CHECK int ksync_sem_acquire_until(struct ksync_sem *sem, clockid_t clock,
					     const struct timespec *deadline);
KSYNC_MUST_CHECK int ksync_sem_acquire_many(struct ksync_sem *sem, uint32_t n);
KSYNC_MUST_CHECK int ksync_sem_acquire_many_until(struct ksync_sem *sem, uint32_t n,
						  clockid_t clock,
						  const struct timespec *deadline);

/*
 * Try forms: 0 with the permit(s), or -EAGAIN (not enough free, or a
 * request for several permits is first in line), -ESHUTDOWN (closed),
 * -EINVAL (n == 0 or more than the semaphore can hold).
 */
KSYNC_MUST_CHECK int ksync_sem_try(struct ksync_sem *sem);
KSYNC_MUST_CHECK int ksync_sem_try_many(struct ksync_sem *sem, uint32_t n);

/*
 * ksync_sem_release - return @n permits and wake up to @n waiters.
 * Releasing works on a closed semaphore too.
 * Returns 0, or:
 *   -EINVAL     n == 0
 *   -EOVERFLOW  the count would exceed max (or KSYNC_SEM_VALUE_MAX); nothing
 *               is released
 */
int ksync_sem_release(struct ksync_sem *sem, uint32_t n);

/*
 * ksync_sem_close - every waiter, in every world, and every later acquire
 * fails with -ESHUTDOWN; releases still work (so holders can give back).
 * Returns 0, or -EALREADY if it was closed already.
 */
int ksync_sem_close(struct ksync_sem *sem);

/* Has ksync_sem_close been called? */
bool ksync_sem_is_closed(const struct ksync_sem *sem);

/* Permits nobody holds now, reserved ones included (a snapshot). */
uint32_t ksync_sem_value(const struct ksync_sem *sem);

/*
 * ksync_op_sem_many - like ksync_op_sem (<ksync/op.h>), for @n permits.
 * Returns 0, or -EINVAL (n == 0 or more than the semaphore can hold).
 */
KSYNC_MUST_CHECK int ksync_op_sem_many(struct ksync_op *op, struct ksync_sem *sem, uint32_t n);

#ifdef __cplusplus
}
#endif
#endif
