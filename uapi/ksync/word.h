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
 * Semaphore word: the number of free permits, nothing else. Waiters park on
 * the count they saw; the count of waiters (struct ksync_sem.waiters) and the
 * permits reserved for woken waiters (struct ksync_sem.handoff, low 31 bits;
 * bit 31 = STARVING) live beside the word, not in it.
 */
#define KSYNC_SEM_VALUE_MAX	0x7fffffffu

#endif
