/* SPDX-License-Identifier: MIT */
/*
 * ksync async ops: waiting on a primitive from an io_uring loop.
 *
 * The caller owns the ring and the loop. An op is a caller-allocated struct
 * (embed it in your task; ksync never allocates). The life of an op:
 *
 *   ksync_op_lock(&op, &lock, token);          // or _sem / _event
 *   ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &abs);   // optional
 *   r = ksync_op_start(&op, ring);
 *     r == 0                done at once: op.result holds the outcome
 *     r == KSYNC_OP_PENDING SQEs were queued on @ring: submit them, then
 *                           feed every CQE whose user_data maps to the op to
 *   r = ksync_op_complete(&op, ring, cqe);
 *     r == 0                done: op.result holds the outcome
 *     r == KSYNC_OP_PENDING keep feeding CQEs (new SQEs may have been queued:
 *                           submit them)
 *
 * op.result is 0 on success (lock owned / permit taken / event set),
 * -ETIMEDOUT when the deadline passed first, -ECANCELED after
 * ksync_op_cancel(), or another negative errno from the kernel.
 *
 * CQE routing: an op's SQEs carry user_data = op->user_data | tag, with the
 * tag in the low two bits (KSYNC_OP_TAG_MASK). user_data defaults to the op's
 * address; a framework may set its own base after ksync_op_*() as long as
 * the low two bits are 0, and must route those CQEs back to the op.
 *
 * Lost wakeups: a grant is never lost. If a wake reaches an op at the same
 * time as its timeout or cancellation, the kernel decides which won (the
 * wait CQE's res). A timed-out or cancelled op that was in fact woken hands
 * its grant to the next waiter before it reports -ETIMEDOUT/-ECANCELED, so
 * the caller never owns anything after a negative result.
 *
 * Rings: plain rings and IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN rings both
 * work. With DEFER_TASKRUN (and COOP_TASKRUN) a futex wake only becomes a CQE
 * when the ring's thread enters the kernel with GETEVENTS, e.g. through
 * io_uring_wait_cqe or io_uring_submit_and_wait: a loop must not just peek
 * the CQ before deciding it is idle. Before tearing a ring down, cancel every
 * pending op and reap its CQEs (ksync_loop_exit does this), or a wake the
 * kernel already counted against a dead ring is lost to the other waiters.
 *
 * An op is not thread-safe: start, complete and cancel it from the thread
 * that owns its ring.
 *
 * ksync never submits your ring: it only fills SQEs. An op needs at most
 * two free SQEs at a time (a wait and its linked timeout, or a cancel);
 * when they cannot be had the call says so with -EBUSY and nothing is lost.
 *
 * One convention for every driver (ksync_op_start, ksync_loop_start,
 * ksync_poller_start, ksync_sdevent_start): 0 means the op finished at once
 * and its callback is NOT called; KSYNC_OP_PENDING means the callback (or
 * your ksync_op_complete) comes later. A task that takes permits, items or
 * events one after another restarts its op from its callback; write that as
 * a loop, not as a recursive call, so a long run of immediate successes
 * uses constant stack:
 *
 *   static void on_permit(struct ksync_op *op)
 *   {
 *           do {
 *                   if (op->result == 0)
 *                           use_one_permit(op->data);
 *           } while (want_more(op->data) &&
 *                    ksync_loop_start(loop, op, on_permit) == 0);
 *   }
 */
#ifndef KSYNC_OP_H
#define KSYNC_OP_H

#include <stdint.h>
#include <sys/types.h>	/* clockid_t (<time.h> has it only for POSIX) */
#include <time.h>		/* struct timespec */
#include "ksync/kernel.h"	/* KSYNC_MUST_CHECK */

#ifdef __cplusplus
extern "C" {
#endif

struct io_uring;
struct io_uring_cqe;
struct ksync_lock;
struct ksync_sem;
struct ksync_event;

#define KSYNC_OP_PENDING	1

/* Low bits of user_data that tell an op's SQEs apart. */
#define KSYNC_OP_TAG_MASK	3ull
#define KSYNC_OP_TAG_WAIT	0ull
#define KSYNC_OP_TAG_TIMEOUT	1ull
#define KSYNC_OP_TAG_CANCEL	2ull

/* Size of the private part of struct ksync_op, in 64-bit words. Fixed by
 * the ABI: a release that needs more must bump the soname. */
#define KSYNC_OP_PRIVATE_WORDS	16

struct ksync_op {
	/* Public: */
	uint64_t user_data;	/* base for the SQEs' user_data (see above) */
	uint64_t token;		/* task identity; non-zero for ownership ops */
	void *data;		/* the caller's, untouched by ksync */
	int result;		/* final outcome once done */
	int reserved0;		/* 0 */

	/* For drivers (ksync_loop and ksync_poller use them; a framework
	 * may too): */
	void (*callback)(struct ksync_op *op);
	struct ksync_op *next, *prev;

	/* Private to ksync: never read or write it. */
	uint64_t private_area[KSYNC_OP_PRIVATE_WORDS];
};
/* 184 bytes on 64-bit targets, 8-byte aligned. */

/*
 * Initialisers, one per primitive, declared here for the first primitives
 * (later ones declare theirs in their own header). They reset the whole op
 * (user_data = the op's address, no deadline). @token identifies the task
 * for ownership checks; ownership ops need a non-zero token
 * (ksync_op_start returns -EINVAL otherwise).
 */
void ksync_op_lock(struct ksync_op *op, struct ksync_lock *lock, uint64_t token);
void ksync_op_sem(struct ksync_op *op, struct ksync_sem *sem);
void ksync_op_event(struct ksync_op *op, struct ksync_event *event);

/*
 * ksync_op_set_deadline - give up at @deadline (absolute, on @clock).
 * Returns 0, or -EINVAL for a clock other than CLOCK_MONOTONIC/REALTIME or a
 * malformed timespec, or -EBUSY if the op was already started.
 * A deadline already in the past is allowed: the op then only tries once
 * and reports -ETIMEDOUT if it cannot complete at once.
 */
KSYNC_MUST_CHECK int ksync_op_set_deadline(struct ksync_op *op, clockid_t clock,
					   const struct timespec *deadline);

/*
 * ksync_op_start - try the op; if it must wait, queue its SQEs on @ring.
 * Returns 0 (done, see op->result), KSYNC_OP_PENDING, or:
 *   -EINVAL      op not initialised, or an ownership op with token 0
 *   -EBUSY       the op is already started, or the SQEs it needs are not free
 *                (one, two with a deadline; nothing was taken: submit your
 *                ring and start it again)
 *   -EDEADLK     a lock op whose token already owns the lock
 *   -ENOSYS      the kernel has no futex2 (older than 6.7)
 *   -EOPNOTSUPP  the kernel lacks io_uring futex ops
 *   -EPERM       io_uring is disabled for this process
 * The three feature errors come only when the op would have to wait.
 */
KSYNC_MUST_CHECK int ksync_op_start(struct ksync_op *op, struct io_uring *ring);

/*
 * ksync_op_complete - feed one CQE of @op (routed by user_data).
 * Returns 0 (done, see op->result), KSYNC_OP_PENDING, or:
 *   -EINVAL  the op is not pending or the CQE is not one of its own
 * When the op has to wait again it queues fresh SQEs on @ring; if the
 * SQEs it needs are not free it ends the op with result -EBUSY (handing on any
 * grant), so an op never hangs. Drivers keep room so this never happens to
 * them; a framework should do the same before it feeds a CQE.
 */
KSYNC_MUST_CHECK int ksync_op_complete(struct ksync_op *op, struct io_uring *ring,
				       const struct io_uring_cqe *cqe);

/*
 * ksync_op_cancel - ask a pending op to stop. Queues one ASYNC_CANCEL SQE.
 * The op still completes through ksync_op_complete, with result
 * -ECANCELED; if the grant had already arrived it is handed on (a lock is
 * passed to the next waiter, a permit returned), never lost.
 * Returns 0, or:
 *   -EALREADY  the op is not pending or a cancel is already under way
 *   -EBUSY     no SQE is free; submit your ring and try again
 */
int ksync_op_cancel(struct ksync_op *op, struct io_uring *ring);

/* Is the op waiting for CQEs? */
int ksync_op_pending(const struct ksync_op *op);

/* A driver's callback for a finished op (ksync_loop, ksync_poller). */
typedef void (*ksync_op_cb)(struct ksync_op *op);

/* A driver's bookkeeping: ops owed CQEs, and finished ops whose callback has
 * not run yet. Private to the drivers. */
struct ksync_op_queue {
	struct ksync_op *pending;		/* doubly linked */
	struct ksync_op *ready, **ready_tail;	/* FIFO */
	unsigned npending;
};

#ifdef __cplusplus
}
#endif
#endif
