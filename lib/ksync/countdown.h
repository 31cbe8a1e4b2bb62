/* SPDX-License-Identifier: MIT */
/*
 * ksync CountdownEvent and Latch: waiting for a count to reach zero, from
 * threads and io_uring tasks.
 *
 * CountdownEvent: a counter that goes up (ksync_countdown_up) and down
 * (ksync_countdown_down, or ksync_countdown_clear to force zero); it is
 * "set" while the count is zero. Reaching zero releases every waiter that
 * was waiting then, even if up() follows at once, before they have run; a
 * wait that starts at zero returns at once, one that starts while the count
 * is above zero waits for the next time it reaches zero. A down() below zero
 * is refused (-EINVAL) and changes nothing. Semantics follow aiologic's
 * CountdownEvent (itself after .NET's): unlike .NET's, up() on a count at
 * zero is allowed and starts a new round, as in aiologic.
 *
 * Latch: single use, as C++'s std::latch: a count fixed at init that
 * count_down(n) lowers; once it reaches zero it stays open for good. Waiters
 * wait for zero; arrive_and_wait = count_down then wait. Counting down more
 * than is left is refused (-EINVAL; std::latch leaves it undefined).
 * (aiologic's Latch is instead a one-shot barrier with abort; ksync's
 * Barrier covers that use.)
 *
 * Both: reaching zero wakes every waiter in every world with at most one
 * futex_wake syscall, and none when nobody waits. up() and downs that do
 * not reach zero never wake anyone and do not disturb parked waiters.
 * Waiters are not ordered: zero releases all of them. Release/acquire:
 * what a thread wrote before its down is visible to the waiters that down
 * (or a later one) releases.
 *
 * Wrap-around: the generation that marks each zero has 31 bits; a waiter
 * that stays between two looks at the word while exactly a multiple of
 * 2^31 zeros happen waits for the next one. Never released without a zero.
 *
 * Async ops cancelled or timed out report -ECANCELED/-ETIMEDOUT even if
 * zero raced the cancel; a blocking wait whose deadline races zero
 * returns 0 if zero came first.
 *
 * State layout: KSYNC_COUNTDOWN_* in <ksync/word.h> (one 64-bit word: the
 * futex word and the count). 16 bytes, 8-byte aligned, no destructor.
 */
#ifndef KSYNC_COUNTDOWN_H
#define KSYNC_COUNTDOWN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>	/* clockid_t (<time.h> has it only for POSIX) */
#include <time.h>		/* struct timespec */
#include "ksync/kernel.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ksync_op;

struct ksync_countdown {
	uint64_t state;		/* futex word (low half) | count << 32 */
	uint32_t flags;		/* attributes given at init: KSYNC_SHARED */
	uint32_t reserved;	/* 0 */
};

struct ksync_latch {
	uint64_t state;		/* futex word (low half) | count << 32 */
	uint32_t flags;		/* attributes given at init: KSYNC_SHARED */
	uint32_t reserved;	/* 0 */
};

#define KSYNC_COUNTDOWN_INIT(value)	{ (uint64_t)(value) << 32, 0, 0 }
#define KSYNC_LATCH_INIT(count)		{ (uint64_t)(count) << 32, 0, 0 }
/* Process-shared (KSYNC_SHARED): for memory shared between processes. */
#define KSYNC_COUNTDOWN_SHARED_INIT(value) { (uint64_t)(value) << 32, 1u /* KSYNC_SHARED */, 0 }
#define KSYNC_LATCH_SHARED_INIT(count)	{ (uint64_t)(count) << 32, 1u /* KSYNC_SHARED */, 0 }

/* ---- CountdownEvent ----------------------------------------------------- */

/*
 * ksync_countdown_init - start at @value (0: set). @flags 0 or
 * KSYNC_SHARED. Returns 0, or -EINVAL for an unknown flag.
 */
int ksync_countdown_init(struct ksync_countdown *cd, uint32_t value, unsigned flags);

/*
 * ksync_countdown_up - add @n to the count (from zero: the event is no
 * longer set). Returns 0, or -EINVAL (n == 0) or -EOVERFLOW (the count
 * would pass KSYNC_COUNTDOWN_MAX); then nothing changes.
 */
int ksync_countdown_up(struct ksync_countdown *cd, uint32_t n);

/*
 * ksync_countdown_down - take one from the count; reaching zero releases
 * every waiter. Returns 1 if this call brought it to zero, 0 if not, or
 * -EINVAL if it was zero already (more downs than ups; nothing changes).
 */
int ksync_countdown_down(struct ksync_countdown *cd);

/*
 * ksync_countdown_clear - force the count to zero, releasing every waiter.
 * Returns 1 if it was above zero, 0 if it was zero already.
 */
int ksync_countdown_clear(struct ksync_countdown *cd);

/* The count now (a snapshot). */
uint32_t ksync_countdown_value(const struct ksync_countdown *cd);

/* Try form: 0 if the count is zero, -EAGAIN if not. Acquire semantics. */
KSYNC_MUST_CHECK int ksync_countdown_try(const struct ksync_countdown *cd);

/*
 * ksync_countdown_wait / ksync_countdown_wait_until - block until the count
 * is zero, or has been zero since the call began.
 * @clock: CLOCK_MONOTONIC or CLOCK_REALTIME; @deadline absolute, NULL =
 * none. Returns 0, or:
 *   -ETIMEDOUT  the deadline passed first
 *   -EINVAL     bad clock or malformed deadline
 *   -ENOSYS, -EPERM  only when it must wait: the kernel refused every
 *               futex wait
 *   or any other error the kernel gave the wait (never retried).
 */
KSYNC_MUST_CHECK int ksync_countdown_wait(struct ksync_countdown *cd);
KSYNC_MUST_CHECK int ksync_countdown_wait_until(struct ksync_countdown *cd, clockid_t clock,
						const struct timespec *deadline);

/* Async wait for zero (see <ksync/op.h>): op->result as for the thread. */
void ksync_op_countdown(struct ksync_op *op, struct ksync_countdown *cd);

/* ---- Latch -------------------------------------------------------------- */

/*
 * ksync_latch_init - @count downs open the latch (0: open now). @flags 0
 * or KSYNC_SHARED. Returns 0, or -EINVAL for an unknown flag.
 */
int ksync_latch_init(struct ksync_latch *l, uint32_t count, unsigned flags);

/*
 * ksync_latch_count_down - lower the count by @n; reaching zero opens the
 * latch for good and releases every waiter. Returns 1 if this call opened
 * it, 0 if not, or -EINVAL (n == 0, or n more than is left; nothing
 * changes).
 */
int ksync_latch_count_down(struct ksync_latch *l, uint32_t n);

/* What is left to count down (a snapshot). */
uint32_t ksync_latch_value(const struct ksync_latch *l);

/* Try form: 0 if open, -EAGAIN if not. Acquire semantics. */
KSYNC_MUST_CHECK int ksync_latch_try(const struct ksync_latch *l);

/* Block until open; returns as ksync_countdown_wait[_until]. */
KSYNC_MUST_CHECK int ksync_latch_wait(struct ksync_latch *l);
KSYNC_MUST_CHECK int ksync_latch_wait_until(struct ksync_latch *l, clockid_t clock,
					    const struct timespec *deadline);

/*
 * ksync_latch_arrive_and_wait[_until] - count down @n, then wait until
 * open. Returns 0, the error of ksync_latch_count_down (then it did not
 * wait), or that of ksync_latch_wait_until (the count down happened).
 */
KSYNC_MUST_CHECK int ksync_latch_arrive_and_wait(struct ksync_latch *l, uint32_t n);
KSYNC_MUST_CHECK int ksync_latch_arrive_and_wait_until(struct ksync_latch *l, uint32_t n,
						       clockid_t clock,
						       const struct timespec *deadline);

/* Async wait until open (see <ksync/op.h>); a task that arrives counts
 * down first, then starts this op. */
void ksync_op_latch(struct ksync_op *op, struct ksync_latch *l);

#ifdef __cplusplus
}
#endif
#endif
