/* SPDX-License-Identifier: MIT */
/*
 * ksync_poller: wait on ksync primitives from a poll/epoll loop (sd-event,
 * libuv, glib, plain epoll) that knows nothing about io_uring.
 *
 * The poller owns a small io_uring ring. An op started through it parks its
 * IORING_OP_FUTEX_WAIT on that ring, on the primitive's own futex word, like
 * any io_uring task; there is no helper thread. The foreign loop watches
 * ksync_poller_fd() for EPOLLIN and calls ksync_poller_dispatch() when it is
 * readable, which reaps the completions and runs the callbacks:
 *
 *   ksync_poller_init(&p, 32);
 *   epoll_ctl(ep, EPOLL_CTL_ADD, ksync_poller_fd(&p), &(struct epoll_event){
 *             .events = EPOLLIN, .data.ptr = &p });
 *   ksync_op_event(&op, &ev);
 *   if (ksync_poller_start(&p, &op, on_set) == 0)
 *           on_set(&op);                // it was set already
 *   ...
 *   // in the loop: the poller's fd is readable
 *   ksync_poller_dispatch(&p);
 *   ...
 *   ksync_poller_exit(&p);              // cancels and reaps what is left
 *
 * The fd is the ring's own. The ring is a plain one (no COOP_TASKRUN, no
 * DEFER_TASKRUN): a wake or a timeout then queues its completion as task work
 * for the thread that submitted the wait, the kernel interrupts that thread
 * to run it, the CQE is posted and the fd turns readable. Under DEFER_TASKRUN
 * the CQE would only appear when the owner entered io_uring_enter with
 * GETEVENTS, which a poll loop never does. A side effect of that interrupt:
 * an epoll_wait() sleeping in the same thread may return -1/EINTR when a
 * wait completes. sd-event, libuv and glib retry; a hand-written loop must
 * too (see examples/epoll_wait.c).
 *
 * The fd is level-triggered: it stays readable while unreaped completions
 * are in the ring. With EPOLLET, call ksync_poller_dispatch() until it
 * returns 0.
 *
 * Threads: a poller belongs to one thread, the one that runs the foreign
 * loop. Start, cancel, dispatch and exit it from there (the kernel delivers
 * completions to the thread that submitted the wait). The primitives
 * themselves may of course be used from any thread or ring.
 *
 * Fast path: an op that can finish at once (free lock, free permit, event
 * already set) finishes inside ksync_poller_start with no syscall and no
 * callback; the return value says which happened, as with ksync_op_start.
 */
#ifndef KSYNC_POLLER_H
#define KSYNC_POLLER_H

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

struct ksync_poller {
	struct io_uring ring;
	struct ksync_op_queue queue;		/* private */
	int state;				/* private */
};

/*
 * ksync_poller_init - set up the poller's ring with @entries SQEs (an op
 * needs at most 2 at a time and they are submitted at once, so 16 or 32 is
 * plenty; completions never overflow, the kernel keeps what the CQ ring
 * cannot hold).
 * Returns 0, or what ksync_require(KSYNC_FEAT_FUTEX | KSYNC_FEAT_URING_FUTEX)
 * returns:
 *   -EOPNOTSUPP  io_uring lacks the futex ops (older than 6.7)
 *   -EPERM       io_uring is disabled for this process
 *   -ENOSYS      no io_uring
 *   or the error of io_uring_queue_init (-EINVAL for entries 0 or too many,
 *   -ENOMEM, -EMFILE...).
 * After a failure the poller is unusable, but ksync_poller_exit() on it is
 * a harmless no-op.
 */
KSYNC_MUST_CHECK int ksync_poller_init(struct ksync_poller *p, unsigned entries);

/* The fd to watch for EPOLLIN (or POLLIN); -1 if the poller is not open. */
int ksync_poller_fd(const struct ksync_poller *p);

/*
 * ksync_poller_start - start @op (set up with ksync_op_lock / _sem / _event,
 * optionally ksync_op_set_deadline) and submit its wait at once.
 * Returns:
 *   0                 the op finished at once, without waiting: op->result
 *                     holds the outcome (0, or -ETIMEDOUT for a deadline
 *                     already past) and @cb is NOT called
 *   KSYNC_OP_PENDING  it waits; @cb is called from a later
 *                     ksync_poller_dispatch (or ksync_poller_exit) with
 *                     op->result set: 0, -ETIMEDOUT, -ECANCELED or another
 *                     negative errno
 *   -ESHUTDOWN        the poller is closed or closing (inside exit)
 *   or an error of ksync_op_start: -EINVAL (op not set up, lock op with
 *   token 0), -EBUSY (op already started, or no SQE), -EDEADLK (the token
 *   already owns the lock), -ENOSYS / -EOPNOTSUPP / -EPERM.
 * On an error @cb is not called and the op is not started.
 * @cb may be NULL. op->callback, op->next and op->prev belong to the poller
 * until the callback runs.
 */
KSYNC_MUST_CHECK int ksync_poller_start(struct ksync_poller *p, struct ksync_op *op,
					ksync_op_cb cb);

/*
 * ksync_poller_cancel - ask a pending op to stop; submitted at once. Its
 * callback still comes, from a later dispatch, with -ECANCELED. If the op
 * had already been granted what it waited for, the grant is handed on (the
 * lock to its next waiter, the permit to another), never lost.
 * Returns 0, or:
 *   -EALREADY  the op is not pending (done, its callback may still be due)
 *              or a cancel is already under way
 *   -EBUSY     no SQE could be had; try again
 */
int ksync_poller_cancel(struct ksync_poller *p, struct ksync_op *op);

/*
 * ksync_poller_dispatch - reap the ring's completions and run the callbacks
 * of the ops that finished. Call it when the fd is readable; calling it at
 * other times is harmless (it does nothing). Never blocks.
 * Callbacks may start and cancel ops on this poller, and may call
 * ksync_poller_exit (the poller's memory must stay valid until dispatch
 * returns).
 * Returns the number of callbacks run, or:
 *   -ESHUTDOWN  the poller is not open
 *   or a negative errno from io_uring_enter while submitting re-armed waits
 *   (-EINTR, -ENOMEM...); the waits stay queued and the next dispatch,
 *   start or cancel submits them.
 */
int ksync_poller_dispatch(struct ksync_poller *p);

/* Ops started and whose callback has not run yet. */
unsigned ksync_poller_busy(const struct ksync_poller *p);

/*
 * ksync_poller_exit - close the poller: cancel every pending op, wait for
 * the kernel to return all their CQEs (a grant that raced the cancel is
 * handed on, so no wake is lost to a ring that goes away), run every
 * outstanding callback (pending ops get -ECANCELED), then close the ring.
 * Ops started from those callbacks get -ESHUTDOWN. It blocks only as long as
 * the kernel takes to answer the cancels. Safe on a poller that failed to
 * init or is already closed, and from inside a callback of this poller.
 */
void ksync_poller_exit(struct ksync_poller *p);

#ifdef __cplusplus
}
#endif
#endif
