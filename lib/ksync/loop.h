/* SPDX-License-Identifier: MIT */
/*
 * ksync_loop: a small optional driver for programs without an event-loop
 * framework. It owns one io_uring ring, starts ops on it and calls each op's
 * callback from ksync_loop_run*() once the op is done. Everything it does is
 * built on the public op API (<ksync/op.h>); frameworks can do the same with
 * their own ring.
 *
 * A loop belongs to the thread that runs it (SINGLE_ISSUER rings demand it).
 */
#ifndef KSYNC_LOOP_H
#define KSYNC_LOOP_H

/*
 * Strict ISO C (-std=c11 and no feature macro): liburing 2.3's header then
 * compiles only if no C library header came before it, because it picks
 * the feature macros it needs itself. Include this header first, or compile
 * with -D_POSIX_C_SOURCE=200809L (or -std=gnu11).
 */
#include <liburing.h>
#include "ksync/kernel.h"
#include "ksync/op.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ksync_loop {
	struct io_uring ring;
	struct ksync_op_queue queue;
	int closing;				/* in ksync_loop_exit */
};

/*
 * ksync_loop_init - set up a ring of @entries SQEs with io_uring @flags
 * (0, or e.g. IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN).
 * Returns 0, or what ksync_require(KSYNC_FEAT_FUTEX | KSYNC_FEAT_URING_FUTEX)
 * returns (-EOPNOTSUPP: no io_uring futex ops; -EPERM: io_uring disabled or
 * refused; -ENOSYS: no io_uring), or the error of io_uring_queue_init
 * (-EINVAL for bad flags, -ENOMEM, -EMFILE...). After a failure the loop is
 * unusable (ksync_loop_exit must not be called on it).
 */
KSYNC_MUST_CHECK int ksync_loop_init(struct ksync_loop *loop, unsigned entries, unsigned flags);

/*
 * ksync_loop_exit - cancel every pending op, reap all their CQEs (grants that
 * raced the cancel are handed on), run the callbacks of every op that
 * finished, then close the ring.
 */
void ksync_loop_exit(struct ksync_loop *loop);

/*
 * ksync_loop_start - start @op (initialised with ksync_op_*) on the loop.
 * Returns:
 *   0                 the op finished at once, without waiting: op->result
 *                     holds the outcome and @cb is NOT called (the same
 *                     convention as ksync_op_start and every other driver;
 *                     see <ksync/op.h> for the restart idiom)
 *   KSYNC_OP_PENDING  it waits; @cb is called from a later ksync_loop_run*
 *                     (or ksync_loop_exit) with op->result set
 *   -ESHUTDOWN        from a callback run by ksync_loop_exit
 *   or an error of ksync_op_start (the op is not started, @cb not called).
 * The loop owns its ring, so a full SQ ring is submitted, not reported.
 */
KSYNC_MUST_CHECK int ksync_loop_start(struct ksync_loop *loop, struct ksync_op *op, ksync_op_cb cb);

/*
 * ksync_loop_sleep - call @cb after @ns nanoseconds (op->result 0; or
 * -ECANCELED if cancelled). A negative @ns counts as 0 (a duration computed
 * as "deadline - now" may come out late): the callback then comes from the
 * next ksync_loop_run* that reaps the ring, never from inside this call.
 * Any @ns up to INT64_MAX works. @op is reset by this call.
 * Returns 0, -EBUSY (no SQE) or -ESHUTDOWN (inside ksync_loop_exit); then
 * @cb is not called.
 */
KSYNC_MUST_CHECK int ksync_loop_sleep(struct ksync_loop *loop, struct ksync_op *op, int64_t ns,
				      ksync_op_cb cb);

/* Cancel a started op: 0, -EALREADY (done or already cancelling), -EBUSY. */
int ksync_loop_cancel(struct ksync_loop *loop, struct ksync_op *op);

/*
 * ksync_loop_run_once - submit, reap what completed (waiting for at least
 * one completion if @wait and nothing is ready), and run callbacks.
 * Returns the number of callbacks run, or a negative errno from the ring.
 */
int ksync_loop_run_once(struct ksync_loop *loop, int wait);

/* Run until no op is pending or ready. Returns 0 or a negative errno. */
int ksync_loop_run(struct ksync_loop *loop);

/* Number of ops started and not yet handed to their callback. */
unsigned ksync_loop_busy(const struct ksync_loop *loop);

#ifdef __cplusplus
}
#endif
#endif
