/* SPDX-License-Identifier: MIT */
/*
 * ksync CapacityLimiter and RCapacityLimiter: a semaphore whose permits are
 * borrowed by an identity, shared by threads and io_uring tasks.
 *
 * Borrowers. A thread borrows as itself (its thread id); a task borrows as
 * the non-zero token it passes (ksync_op_limiter, ksync_limiter_try_task,
 * ksync_limiter_release_task), and a thread may borrow on behalf of a token
 * too (ksync_limiter_acquire_task_until). A borrower holds at most one
 * permit. Borrowing again while holding it is -EDEADLK for a
 * CapacityLimiter (ksync_limiter_init); an RCapacityLimiter
 * (ksync_rlimiter_init) counts it instead, takes no second permit, and the
 * permit goes back on the release that brings the count to zero (-EOVERFLOW
 * past UINT32_MAX borrows). Releasing as a borrower that holds nothing is
 * -EPERM. Tokens must be non-zero and below KSYNC_KEY_THREAD
 * (<ksync/word.h>): the keys above are the threads'. Two borrows of the
 * same token that run at the same time, in different threads, are not
 * detected as one borrower borrowing twice (each takes a permit); a
 * token's calls should not overlap, as a task's do not.
 *
 * The total can be changed at run time (ksync_limiter_set_total): growing
 * wakes waiters for the new room; shrinking takes effect as borrowers
 * return: nobody borrows while the borrowed permits are not below the new
 * total (permits already reserved for woken waiters are revoked if they no
 * longer fit). Up to KSYNC_LIMITER_TOTAL_MAX (8191) permits: for more, or
 * for permits without owners, use a Semaphore.
 *
 * Where borrowers are kept, with no allocation anywhere:
 *  - a thread's borrows in a small table of its own (thread-local; four
 *    limiters at once, more spill into the limiters' slots), which only
 *    that thread reads or writes: a thread borrows and returns with one CAS
 *    on the word and touches nothing else shared;
 *  - a token's borrow in one of the slots the caller gives at init, found
 *    by hashing the token with linear probing (O(1) in the usual case; the
 *    probe never reads further than the longest probe any borrow has
 *    needed so far, at most nslots; give about twice as many slots as the
 *    total to keep it short). A slot is occupied only while its borrower
 *    holds a permit, so as many slots as the largest total suffice: the
 *    total may never exceed nslots.
 * The alternative, an intrusive record the caller passes with each borrow,
 * needs no bound on the total, but to find a second borrow by the same
 * borrower the limiter must link the records (a lock, or a walk of every
 * borrower, on each borrow), and each borrow needs a record that outlives
 * it. Slots bound the total and cost a token borrow one CAS on a slot;
 * the thread-local table keeps even that off the threads' fast path.
 *
 * Fork. A thread is known by its thread id, read again in a new process:
 * in a child, the thread that forked starts with no borrows (a private
 * limiter copied into the child keeps the parent's borrows borrowed, as a
 * copied lock stays locked), and in a KSYNC_SHARED limiter the parent's
 * borrows stay the parent's to return. A thread must return its borrows
 * before it exits: they go with it, and its permits stay borrowed.
 *
 * Cost. Uncontended, a thread's borrow is a look at its own table and one
 * CAS on the word; its return the same (the semaphore's cost, within a
 * few nanoseconds); a token's borrow adds a hash probe and a CAS on a slot.
 * A futex_wake syscall only when waiters are asleep.
 *
 * Fairness. Like the Semaphore: parked waiters are woken in the kernel's
 * order; a woken waiter competes with new arrivals and parks again if it
 * loses. Unfairness is bounded: a woken waiter that has waited
 * KSYNC_LIMITER_STARVE_NS or more and still loses sets STARVING; from then
 * on each returned permit is reserved (in the futex word) for the waiter
 * its release wakes, until a waiter is served within the bound again.
 * Threads and tasks park on the same word and are served in one order.
 *
 * Loop threads. Do not block a loop's thread in ksync_limiter_acquire on a
 * limiter that a task of that same loop is waiting for (a permit may be
 * reserved for the task, which cannot run); use an async op there.
 *
 * Shared memory (KSYNC_SHARED): the slots must be in the same mapping as
 * the limiter (they are found by their offset from it), and every process
 * must use tokens no other process uses.
 *
 * Where references differ. Trio, AnyIO and aiologic all refuse a second
 * borrow (here -EDEADLK) and a return by a non-borrower (-EPERM), and
 * aiologic's RCapacityLimiter counts reentrant borrows: so does this one.
 * Trio and AnyIO refuse a total of 0; here 0 is allowed (nobody borrows
 * until it grows: a pause), since set_total(0) is how one drains a pool.
 * Trio serves waiters strictly in order; here new arrivals may barge, with
 * the Semaphore's bound: a strict hand-off on every return would make each
 * return under contention wait for a woken waiter to run, and the limiter
 * is the Semaphore with owners, with the same throughput and bound.
 *
 * Word layout: KSYNC_LIMITER_* in <ksync/word.h>. 32 bytes, plus 16 per
 * slot, plus 72 bytes of thread-local storage per thread. No static
 * initialiser (the slots are bound at init); destroy is optional (it
 * checks the limiter is idle).
 */
#ifndef KSYNC_LIMITER_H
#define KSYNC_LIMITER_H

#include <stdint.h>
#include <sys/types.h>	/* clockid_t (<time.h> has it only for POSIX) */
#include <time.h>		/* struct timespec */
#include "ksync/kernel.h"	/* KSYNC_MUST_CHECK */

#ifdef __cplusplus
extern "C" {
#endif

struct ksync_op;

/* A borrower slot. Private: read through the functions below. */
struct ksync_limiter_slot {
	uint64_t key;		/* 0: free; a thread's or a token's key */
	uint32_t count;		/* borrows held by that key (1, or more if reentrant) */
	uint32_t reserved;
};

struct ksync_limiter {
	uint32_t word;		/* total | borrowed << 13 | reserved << 26 (word.h) */
	uint32_t waiters;	/* announced and not yet woken by the kernel */
	uint32_t flags;		/* KSYNC_LIMITER_STARVING, _REENTRANT, _SHARED */
	uint32_t nslots;
	uint32_t reach;		/* longest probe a borrow needed, minus one (grows) */
	uint32_t id;		/* tells it from an earlier limiter at the same address */
	int64_t slots;		/* byte offset of the slot array from this struct */
};

/* A woken waiter that has waited this long starts hand-off mode. */
#define KSYNC_LIMITER_STARVE_NS	200000

/*
 * ksync_limiter_init / ksync_rlimiter_init - a CapacityLimiter (a second
 * borrow is -EDEADLK) or an RCapacityLimiter (reentrant, counted) of
 * @total permits, with @nslots borrower slots at @slots (8-byte aligned;
 * their contents are overwritten, and they must stay valid and unmoved as
 * long as the limiter is used).
 * @flags: 0 (process-private) or KSYNC_SHARED (<ksync/attr.h>).
 * Returns 0, or -EINVAL if @slots is NULL or misaligned, @nslots is 0 or
 * above KSYNC_LIMITER_TOTAL_MAX, @total exceeds @nslots, or @flags has an
 * unknown bit (the limiter is then left untouched).
 */
int ksync_limiter_init(struct ksync_limiter *lim, uint32_t total,
		       struct ksync_limiter_slot *slots, uint32_t nslots, unsigned flags);
int ksync_rlimiter_init(struct ksync_limiter *lim, uint32_t total,
			struct ksync_limiter_slot *slots, uint32_t nslots, unsigned flags);

/* Returns 0, or -EBUSY if a permit is borrowed, reserved for a woken
 * waiter, or someone waits (the limiter is unchanged and still usable). */
int ksync_limiter_destroy(struct ksync_limiter *lim);

/*
 * ksync_limiter_acquire / ksync_limiter_acquire_until - borrow a permit as
 * the calling thread, blocking.
 * @clock: CLOCK_MONOTONIC or CLOCK_REALTIME; @deadline absolute, NULL = none.
 * Returns 0 with a permit borrowed (or, reentrant, the count raised), or:
 *   -EDEADLK    the thread already borrows one (CapacityLimiter)
 *   -EOVERFLOW  the thread's count is at UINT32_MAX (RCapacityLimiter)
 *   -ETIMEDOUT  the deadline passed first (tried once even if it had)
 *   -EINVAL     bad clock or malformed deadline
 *   other       the kernel refused the futex wait (e.g. -ENOSYS or -EPERM
 *               when no futex syscall may be used); only when it must wait
 * A failed call borrows nothing.
 */
KSYNC_MUST_CHECK int ksync_limiter_acquire(struct ksync_limiter *lim);
KSYNC_MUST_CHECK int ksync_limiter_acquire_until(struct ksync_limiter *lim, clockid_t clock,
						 const struct timespec *deadline);

/* Try form: 0, -EAGAIN (no permit free now), -EDEADLK or -EOVERFLOW. */
KSYNC_MUST_CHECK int ksync_limiter_try(struct ksync_limiter *lim);

/* Return the calling thread's borrow (one count of it, if reentrant): 0,
 * or -EPERM if the thread borrows nothing here. */
int ksync_limiter_release(struct ksync_limiter *lim);

/*
 * Task forms: borrow and return as @token (non-zero, below
 * KSYNC_KEY_THREAD; -EINVAL otherwise), from any thread.
 * ksync_limiter_acquire_task_until: a thread blocks to borrow on behalf of
 * @token; results as ksync_limiter_acquire_until.
 * ksync_limiter_try_task: as ksync_limiter_try.
 * ksync_limiter_release_task: 0, or -EPERM if @token borrows nothing here.
 * The async wait is ksync_op_limiter().
 */
KSYNC_MUST_CHECK int ksync_limiter_acquire_task_until(struct ksync_limiter *lim, uint64_t token,
						      clockid_t clock,
						      const struct timespec *deadline);
KSYNC_MUST_CHECK int ksync_limiter_try_task(struct ksync_limiter *lim, uint64_t token);
int ksync_limiter_release_task(struct ksync_limiter *lim, uint64_t token);

/*
 * ksync_op_limiter - initialise @op to borrow a permit of @lim as @token
 * (see <ksync/op.h>). op->result: 0 (borrowed, or the count raised), or
 * -EDEADLK, -EOVERFLOW, -ETIMEDOUT, -ECANCELED, or a kernel error;
 * ksync_op_start returns -EINVAL for token 0 or a token in the threads'
 * key range, and -EDEADLK / -EOVERFLOW at once for a second borrow. A
 * cancel or timeout that races the wake hands the permit on.
 */
void ksync_op_limiter(struct ksync_op *op, struct ksync_limiter *lim, uint64_t token);

/*
 * ksync_limiter_set_total - change the total to @total.
 * Growing wakes up to as many waiters as there is new room; shrinking
 * lets no one borrow until the borrowed permits are below @total.
 * Returns 0, or -EINVAL if @total exceeds the limiter's slots.
 */
int ksync_limiter_set_total(struct ksync_limiter *lim, uint32_t total);

/* Snapshots: the total; the permits borrowed now; the permits that may
 * still be borrowed (total - borrowed, 0 if the total shrank below). */
uint32_t ksync_limiter_total(const struct ksync_limiter *lim);
uint32_t ksync_limiter_borrowed(const struct ksync_limiter *lim);
uint32_t ksync_limiter_available(const struct ksync_limiter *lim);

/* How many borrows @token holds (0: the calling thread): 0 if none, 1 for
 * a CapacityLimiter borrower, the count for an RCapacityLimiter. */
uint32_t ksync_limiter_held(const struct ksync_limiter *lim, uint64_t token);

#ifdef __cplusplus
}
#endif
#endif
