/* SPDX-License-Identifier: MIT */
/*
 * ksync Barrier and RBarrier: cyclic barriers that threads and io_uring
 * tasks pass together.
 *
 * A barrier of @parties releases its waiters when the parties-th one
 * arrives, then starts over (cyclic). Each wait returns its arrival index
 * in that cycle, 0 for the first arrival up to parties - 1 for the one that
 * completed the cycle (which does not wait). Completing a cycle wakes every
 * waiter in every world with one futex_wake syscall. Arrivals release what
 * they wrote before to everyone leaving the cycle.
 *
 * Broken barrier. A wait that times out, is cancelled, or fails in the
 * kernel, and ksync_barrier_abort(), break the barrier: every waiter of the
 * current cycle and every later arrival gets -EPIPE ("broken"), until
 * ksync_rbarrier_reset() (RBarrier only; a Barrier stays broken for good).
 * The waiter whose timeout or cancel broke it reports its own -ETIMEDOUT /
 * -ECANCELED. No waiter is ever stranded, in any world: a break wakes every
 * waiter of the cycle.
 *
 * A timeout or cancel that races the release of its cycle: the waiter
 * either succeeds (its cycle completed first: it returns its index, and
 * the barrier is not broken) or breaks the barrier (then no waiter of that
 * cycle succeeds), never both and never neither. One atomic transition on
 * the barrier's word decides it, whatever the world; for an async op the
 * engine's settle step makes it after the cancel's or timeout's CQE, so a
 * cancelled op may end with its index as result. (-EPIPE instead if another
 * waiter broke the barrier first.)
 *
 * Reset (RBarrier). ksync_rbarrier_reset() breaks the current cycle if it
 * has waiters (they get -EPIPE) and makes the barrier new for later
 * arrivals. If waiters of the broken cycle have not returned yet (an async
 * op whose CQE its loop has not reaped), arrivals wait until they have: a
 * late waiter must still see the break it was woken for (Python's
 * threading.Barrier does the same while it drains). An arrival that gives
 * up during that wait leaves without having arrived and breaks nothing.
 *
 * Semantics follow aiologic's Barrier and RBarrier (and Python's
 * threading.Barrier): indices in arrival order, a timeout breaks the
 * barrier, reset breaks current waiters. Unlike Python, the waiter whose
 * own timeout or cancel broke the barrier reports that reason rather than
 * the generic "broken" error, so the two can be told apart; parties must be
 * at least 1 (aiologic's barrier of 0 parties never fills).
 *
 * Limits: parties <= KSYNC_BARRIER_PARTIES_MAX; at most that many waiters
 * inside at once. Cycles are numbered with 42 bits: a waiter that does not
 * run while 2^42 cycles pass would misread its outcome (it cannot happen
 * when every participant waits in every cycle).
 *
 * State layout: KSYNC_BARRIER_* in <ksync/word.h> (one 64-bit word). 16
 * bytes, 8-byte aligned; KSYNC_BARRIER_INIT or ksync_barrier_init.
 */
#ifndef KSYNC_BARRIER_H
#define KSYNC_BARRIER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>	/* clockid_t (<time.h> has it only for POSIX) */
#include <time.h>		/* struct timespec */
#include "ksync/kernel.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ksync_op;

struct ksync_barrier {
	uint64_t state;		/* futex word (low half) | count, generation */
	uint32_t parties;
	uint32_t flags;		/* attributes given at init: KSYNC_SHARED */
};

struct ksync_rbarrier {
	uint64_t state;
	uint32_t parties;
	uint32_t flags;
};

#define KSYNC_BARRIER_INIT(parties)		{ 0, (parties), 0 }
#define KSYNC_RBARRIER_INIT(parties)		{ 0, (parties), 0 }
/* Process-shared (KSYNC_SHARED): for memory shared between processes. */
#define KSYNC_BARRIER_SHARED_INIT(parties)	{ 0, (parties), 1u /* KSYNC_SHARED */ }
#define KSYNC_RBARRIER_SHARED_INIT(parties)	{ 0, (parties), 1u /* KSYNC_SHARED */ }

/* ---- Barrier ------------------------------------------------------------ */

/*
 * ksync_barrier_init - @parties 1 .. KSYNC_BARRIER_PARTIES_MAX; @flags 0
 * or KSYNC_SHARED. Returns 0, or -EINVAL.
 */
int ksync_barrier_init(struct ksync_barrier *b, uint32_t parties, unsigned flags);

/* Returns 0, or -EBUSY while waiters are inside (nothing changes). */
int ksync_barrier_destroy(struct ksync_barrier *b);

/*
 * ksync_barrier_wait / ksync_barrier_wait_until - arrive and wait for the
 * cycle to complete. @clock: CLOCK_MONOTONIC or CLOCK_REALTIME; @deadline
 * absolute, NULL = none. Returns the arrival index (>= 0), or:
 *   -EPIPE      the barrier is broken, or broke while waiting
 *   -ETIMEDOUT  the deadline passed first: this call broke the barrier
 *               (a deadline already past breaks it unless this arrival
 *               completes the cycle)
 *   -EINVAL     bad clock or malformed deadline (did not arrive)
 *   -ENOSYS, -EPERM, ...  the kernel refused the futex wait: this call
 *               broke the barrier (a blocking wait never retries an error)
 */
KSYNC_MUST_CHECK int ksync_barrier_wait(struct ksync_barrier *b);
KSYNC_MUST_CHECK int ksync_barrier_wait_until(struct ksync_barrier *b, clockid_t clock,
					      const struct timespec *deadline);

/*
 * ksync_barrier_try - arrive only if that completes the cycle. Returns the
 * index (parties - 1), -EAGAIN if it would have to wait (it did not
 * arrive), or -EPIPE if broken.
 */
KSYNC_MUST_CHECK int ksync_barrier_try(struct ksync_barrier *b);

/*
 * ksync_barrier_abort - break the barrier: its waiters and every later
 * arrival get -EPIPE. Returns 1 if this call broke it, 0 if it was broken.
 */
int ksync_barrier_abort(struct ksync_barrier *b);

/* Is it broken? */
bool ksync_barrier_broken(const struct ksync_barrier *b);

/* Arrivals waiting in the current cycle (a snapshot; 0 if broken). */
uint32_t ksync_barrier_waiting(const struct ksync_barrier *b);

/*
 * ksync_op_barrier - initialise @op to arrive at @b and wait (see
 * <ksync/op.h>). The op arrives in ksync_op_start, which first makes sure
 * it could wait (so it fails, with nothing done, on -EBUSY or a kernel
 * without io_uring futex ops), and returns -EPIPE there if the barrier is
 * broken. op->result, as the thread's return value: the arrival index
 * (>= 0), -EPIPE, -ETIMEDOUT or -ECANCELED (this op broke the barrier),
 * -EBUSY (no SQE to wait again: broke it), or a kernel error (broke it).
 */
void ksync_op_barrier(struct ksync_op *op, struct ksync_barrier *b);

/* ---- RBarrier: a Barrier with reset ------------------------------------- */

int ksync_rbarrier_init(struct ksync_rbarrier *b, uint32_t parties, unsigned flags);
int ksync_rbarrier_destroy(struct ksync_rbarrier *b);
KSYNC_MUST_CHECK int ksync_rbarrier_wait(struct ksync_rbarrier *b);
KSYNC_MUST_CHECK int ksync_rbarrier_wait_until(struct ksync_rbarrier *b, clockid_t clock,
					       const struct timespec *deadline);
KSYNC_MUST_CHECK int ksync_rbarrier_try(struct ksync_rbarrier *b);
int ksync_rbarrier_abort(struct ksync_rbarrier *b);
bool ksync_rbarrier_broken(const struct ksync_rbarrier *b);
uint32_t ksync_rbarrier_waiting(const struct ksync_rbarrier *b);
void ksync_op_rbarrier(struct ksync_op *op, struct ksync_rbarrier *b);

/*
 * ksync_rbarrier_reset - make the barrier new. Waiters of the current
 * cycle get -EPIPE (the cycle breaks); arrivals after the reset start a new
 * cycle, once every waiter of the broken cycle has returned. A reset while
 * one is still finishing does nothing more. Returns 0.
 */
int ksync_rbarrier_reset(struct ksync_rbarrier *b);

#ifdef __cplusplus
}
#endif
#endif
