/* SPDX-License-Identifier: MIT */
/*
 * Futex-word layouts of the ksync primitives.
 *
 * This header is stable ABI: the library, BPF programs and tracing tools all
 * read primitive words with these definitions. A value change here is an ABI
 * break.
 */
#ifndef KSYNC_UAPI_WORD_H
#define KSYNC_UAPI_WORD_H

/*
 * Event word. One-shot: UNSET -> (WAITERS ->) SET, never back.
 * WAITERS means at least one waiter may be parked, so set() must wake.
 */
#define KSYNC_EVENT_UNSET	0u
#define KSYNC_EVENT_WAITERS	1u
#define KSYNC_EVENT_SET		2u

/*
 * Lock word. The lock is free exactly when the word is 0.
 *
 * LOCKED     someone owns the lock.
 * CONTENDED  waiters may be parked: release must wake one.
 * HANDOFF    the releaser kept the lock locked and woke a waiter to take it
 *            over; only a woken waiter may claim it.
 * STARVING   a waiter has waited longer than KSYNC_LOCK_STARVE_NS; releases
 *            hand the lock off in wake (FIFO) order instead of letting new
 *            arrivals barge, until a waiter is served quickly again.
 */
#define KSYNC_LOCK_LOCKED	0x1u
#define KSYNC_LOCK_CONTENDED	0x2u
#define KSYNC_LOCK_HANDOFF	0x4u
#define KSYNC_LOCK_STARVING	0x8u

/*
 * Semaphore word: F | R << 23 | HEAD << 30 | CLOSED << 31.
 *
 * F (bits 0-22)   free permits, which anyone may take (unless HEAD).
 * R (bits 23-29)  permits reserved for waiters the kernel has woken; only a
 *                 woken single-permit waiter may take one. Non-zero only in
 *                 hand-off mode.
 * HEAD (bit 30)   a waiter for several permits is first in line: nobody
 *                 else takes from F until it has them all. It waits on its
 *                 own futex bitset (KSYNC_SEM_MASK_HEAD), so a release can
 *                 wake it alone; it needs struct ksync_sem.flags' NEED.
 * CLOSED (bit 31) ksync_sem_close() was called: acquires fail.
 *
 * Every change a waiter could be waiting for changes this word, so a waiter
 * that decided to park on a stale value gets EAGAIN from the kernel. The
 * waiters that have announced themselves and not yet been woken are counted
 * in struct ksync_sem.waiters.
 */
#define KSYNC_SEM_VALUE_MAX	0x007fffffu	/* most permits F + R can hold */
#define KSYNC_SEM_FREE_MASK	0x007fffffu
#define KSYNC_SEM_RESERVED_SHIFT 23
#define KSYNC_SEM_RESERVED_ONE	0x00800000u
#define KSYNC_SEM_RESERVED_MASK	0x3f800000u
#define KSYNC_SEM_RESERVED_MAX	127u
#define KSYNC_SEM_HEAD		0x40000000u
#define KSYNC_SEM_CLOSED	0x80000000u

/* Futex bitsets of semaphore waiters. */
#define KSYNC_SEM_MASK_QUEUE	0x1u
#define KSYNC_SEM_MASK_HEAD	0x2u

/* struct ksync_sem.flags */
#define KSYNC_SEM_STARVING	0x1u		/* hand-off mode (changes at run time) */
#define KSYNC_SEM_NEED_SHIFT	1		/* bits 1-23: permits the HEAD waits for */
#define KSYNC_SEM_NEED_MASK	(KSYNC_SEM_VALUE_MAX << KSYNC_SEM_NEED_SHIFT)
#define KSYNC_SEM_SHARED	0x80000000u	/* initialised with KSYNC_SHARED */

/*
 * CapacityLimiter word: T | B << 13 | R << 26.
 *
 * T (bits 0-12)   the total: at most this many permits may be borrowed.
 * B (bits 13-25)  permits borrowed now. After the total shrank, B may
 *                 exceed T until enough borrowers return.
 * R (bits 26-31)  permits reserved for waiters the kernel has woken; only a
 *                 woken waiter may take one. Non-zero only in hand-off mode.
 *
 * New borrows need T - B - R > 0. The total is in the word so that a
 * borrow decides against the total of the very value it changes, and a
 * change of the total reaches waiters like any other change. The waiters
 * that have announced themselves and not yet been woken are counted in
 * struct ksync_limiter.waiters.
 */
#define KSYNC_LIMITER_TOTAL_MAX		0x1fffu		/* also the most slots */
#define KSYNC_LIMITER_TOTAL_MASK	0x00001fffu
#define KSYNC_LIMITER_BORROWED_SHIFT	13
#define KSYNC_LIMITER_BORROWED_ONE	0x00002000u
#define KSYNC_LIMITER_BORROWED_MASK	0x03ffe000u
#define KSYNC_LIMITER_RESERVED_SHIFT	26
#define KSYNC_LIMITER_RESERVED_ONE	0x04000000u
#define KSYNC_LIMITER_RESERVED_MASK	0xfc000000u
#define KSYNC_LIMITER_RESERVED_MAX	63u

/* struct ksync_limiter.flags */
#define KSYNC_LIMITER_STARVING	0x1u		/* hand-off mode (changes at run time) */
#define KSYNC_LIMITER_REENTRANT	0x2u		/* an RCapacityLimiter */
#define KSYNC_LIMITER_SHARED	0x80000000u	/* initialised with KSYNC_SHARED */

/*
 * Identity keys (a CapacityLimiter's borrower slots, a ResourceGuard's
 * owner): 64 bits, 0 = nobody. A thread is KSYNC_KEY_THREAD | its tid; a
 * task is its token, which must be non-zero and below KSYNC_KEY_THREAD.
 */
#define KSYNC_KEY_THREAD	0xffffffff00000000ull

/*
 * Bounded queue (struct ksync_bqueue, <ksync/bqueue.h>).
 *
 * get_word, put_word  sequence words: whoever changes what the waiters of a
 *                     side wait for (a put for getters, a get for putters, a
 *                     close, a reservation given back) adds 1 to the side's
 *                     word after the change, so a waiter that decided to
 *                     sleep on the older value gets EAGAIN from the kernel.
 * lock                the internal lock over the items: UNLOCKED, LOCKED,
 *                     or LOCKED_WAITERS (someone may sleep on it: unlock wakes).
 * flags               the order (FIFO, LIFO, PRIORITY), CLOSED, the hand-off
 *                     mode of each side, SHARED.
 */
#define KSYNC_BQUEUE_UNLOCKED		0u
#define KSYNC_BQUEUE_LOCKED		1u
#define KSYNC_BQUEUE_LOCKED_WAITERS	2u
#define KSYNC_BQUEUE_ORDER_MASK		0x3u
#define KSYNC_BQUEUE_CLOSED		0x4u
#define KSYNC_BQUEUE_STARVING_GET	0x8u
#define KSYNC_BQUEUE_STARVING_PUT	0x10u
#define KSYNC_BQUEUE_SHARED		0x80000000u	/* initialised with KSYNC_SHARED */

/*
 * REvent word: SET | WAITERS | gen * KSYNC_REVENT_GEN_ONE.
 *
 * SET      the event is set.
 * WAITERS  a waiter may be parked: set() must wake.
 * gen      (bits 2-31) advanced by every set() that sets the event, so a
 *          waiter that saw generation g is released by any later set, even
 *          one that clear() has already undone, and a wait armed late on an
 *          old value finds the word changed.
 */
#define KSYNC_REVENT_SET	0x1u
#define KSYNC_REVENT_WAITERS	0x2u
#define KSYNC_REVENT_GEN_ONE	0x4u

/*
 * CountdownEvent and Latch state: one 64-bit word (struct ksync_countdown
 * and struct ksync_latch .state), always changed as a whole. Its low 32
 * bits are the futex word, gen * KSYNC_COUNTDOWN_GEN_ONE | WAITERS; its
 * high 32 bits are the count.
 *
 * WAITERS  a waiter may be parked: reaching zero must wake.
 * gen      (bits 1-31) advanced whenever the count reaches zero (down to
 *          zero, clear), so waiters are released by that even if up()
 *          follows at once. Changes of the count that do not reach zero
 *          leave the futex word, and the parked waiters, alone.
 */
#define KSYNC_COUNTDOWN_WAITERS	0x1u
#define KSYNC_COUNTDOWN_GEN_ONE	0x2u
#define KSYNC_COUNTDOWN_MAX	0xffffffffu	/* the largest count */

/*
 * Barrier and RBarrier state: one 64-bit word (struct ksync_barrier and
 * struct ksync_rbarrier .state), always changed as a whole.
 *
 * Low 32 bits, the futex word: gen_lo * KSYNC_BARRIER_GEN_ONE | RESETTING
 * | BROKEN. High 32 bits: count | gen_hi << KSYNC_BARRIER_GEN_HI_SHIFT.
 * The cycle's generation is gen_lo | gen_hi << 30 (42 bits).
 *
 * BROKEN     the cycle broke (timeout, cancel, abort, reset): arrivals
 *            fail with -EPIPE; count is then the waiters of the broken
 *            cycle that have not returned yet.
 * RESETTING  (with BROKEN) reset() was called while such waiters remain;
 *            the last of them to return makes the barrier new, and
 *            arrivals wait for that.
 * count      arrivals of the current cycle (bits 0-19) while filling.
 * gen        advanced when a cycle completes and when a reset makes the
 *            barrier new: a waiter of generation g succeeded exactly when
 *            the generation changed before the barrier broke.
 */
#define KSYNC_BARRIER_BROKEN		0x1u
#define KSYNC_BARRIER_RESETTING		0x2u
#define KSYNC_BARRIER_GEN_ONE		0x4u
#define KSYNC_BARRIER_COUNT_MASK	0x000fffffu	/* of the high half */
#define KSYNC_BARRIER_GEN_HI_SHIFT	20		/* of the high half */
#define KSYNC_BARRIER_PARTIES_MAX	0x000fffffu

#endif
