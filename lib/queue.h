/* SPDX-License-Identifier: MIT */
/*
 * The bookkeeping both drivers (ksync_loop, ksync_poller) keep: which ops
 * are owed CQEs, and which are done with their callback still to run.
 * Not installed.
 */
#ifndef KSYNC_QUEUE_H
#define KSYNC_QUEUE_H

#include <liburing.h>
#include "engine.h"

/* A sleep is a plain IORING_OP_TIMEOUT of ksync_loop; ksync_op_complete
 * never sees it. */
#define KIND_SLEEP 0x80

static inline void queue_init(struct ksync_op_queue *q)
{
	q->pending = NULL;
	q->ready = NULL;
	q->ready_tail = &q->ready;
	q->npending = 0;
}

static inline void queue_pending_add(struct ksync_op_queue *q, struct ksync_op *op)
{
	op->prev = NULL;
	op->next = q->pending;
	if (q->pending)
		q->pending->prev = op;
	q->pending = op;
	q->npending++;
}

static inline void queue_pending_del(struct ksync_op_queue *q, struct ksync_op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		q->pending = op->next;
	if (op->next)
		op->next->prev = op->prev;
	q->npending--;
}

static inline void queue_ready_add(struct ksync_op_queue *q, struct ksync_op *op)
{
	op->next = NULL;
	*q->ready_tail = op;
	q->ready_tail = &op->next;
}

static inline unsigned queue_busy(const struct ksync_op_queue *q)
{
	unsigned n = q->npending;

	for (const struct ksync_op *op = q->ready; op; op = op->next)
		n++;
	return n;
}

/*
 * Feed one CQE to its op; a finished op moves to the ready list. The
 * driver owns its ring, so it makes room first: an op that must wait again
 * needs up to two SQEs, and ksync_op_complete never submits.
 */
static inline void queue_complete(struct ksync_op_queue *q, struct io_uring *ring,
				  const struct io_uring_cqe *cqe)
{
	struct ksync_op *op = (struct ksync_op *)(uintptr_t)(cqe->user_data & ~KSYNC_OP_TAG_MASK);
	struct op_state *st = op_state(op);

	if (st->kind == KIND_SLEEP) {
		if ((cqe->user_data & KSYNC_OP_TAG_MASK) == KSYNC_OP_TAG_WAIT)
			op->result = cqe->res == -ETIME ? 0 : cqe->res;
		if (--st->inflight)
			return;
	} else {
		if (io_uring_sq_space_left(ring) < 2)
			io_uring_submit(ring);
		if (ksync_op_complete(op, ring, cqe) != 0)
			return;	/* still pending (it may have re-armed) */
	}
	queue_pending_del(q, op);
	queue_ready_add(q, op);
}

/* Reap every posted CQE. Returns how many there were. */
static inline unsigned queue_reap(struct ksync_op_queue *q, struct io_uring *ring)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;

	io_uring_for_each_cqe(ring, head, cqe) {
		queue_complete(q, ring, cqe);
		seen++;
	}
	io_uring_cq_advance(ring, seen);
	return seen;
}

/*
 * Run the callbacks of the ops that are ready now, one at a time, taking
 * each op off the list first: a callback may start ops (those that finish
 * at once wait for the next run, so a busy task cannot starve the ring), or
 * tear the driver down (whose own run then finishes this list).
 */
static inline int queue_run_ready(struct ksync_op_queue *q)
{
	const struct ksync_op *last = NULL;
	struct ksync_op *op;
	int n = 0;

	for (op = q->ready; op; op = op->next)
		last = op;
	while (last && (op = q->ready)) {
		q->ready = op->next;
		if (!q->ready)
			q->ready_tail = &q->ready;
		op->next = NULL;
		if (op->callback)
			op->callback(op);
		n++;
		if (op == last)
			break;
	}
	return n;
}

/* Cancel a started op: a ksync op, or a ksync_loop sleep. */
static inline int queue_cancel(struct io_uring *ring, struct ksync_op *op)
{
	struct op_state *st = op_state(op);
	struct io_uring_sqe *sqe;

	if (st->kind != KIND_SLEEP)
		return ksync_op_cancel(op, ring);
	if (!st->inflight || st->cancel)
		return -EALREADY;
	sqe = io_uring_get_sqe(ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_timeout_remove(sqe, op->user_data, 0);
	sqe->user_data = op->user_data | KSYNC_OP_TAG_CANCEL;
	st->cancel = 1;
	st->inflight++;
	return 0;
}

/*
 * Teardown: cancel every pending op and reap until each has had all its
 * CQEs, then run the callbacks. A wait the kernel has already woken may be
 * sitting in the CQ ring, or be about to: only once its op has seen that
 * CQE is the consumed wake handed on. Closing the ring first would drop it.
 */
static inline void queue_drain(struct ksync_op_queue *q, struct io_uring *ring)
{
	for (struct ksync_op *op = q->pending; op; op = op->next)
		while (queue_cancel(ring, op) == -EBUSY) {
			int r = io_uring_submit(ring);	/* make room for the cancel */

			if (r < 0 && r != -EINTR)
				break;
		}
	while (q->npending) {
		int r = io_uring_submit_and_wait(ring, 1);

		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME)
			break;	/* the ring is broken: nothing more will come */
		queue_reap(q, ring);
	}
	queue_run_ready(q);
}

#endif
