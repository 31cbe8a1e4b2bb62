/* SPDX-License-Identifier: MIT */
/*
 * The bookkeeping both drivers (ksync_loop, ksync_poller) keep: which ops
 * are owed CQEs, and which are done with their callback still to run.
 * Not installed.
 */
#ifndef KSYNC_QUEUE_H
#define KSYNC_QUEUE_H

#include <liburing.h>
#include "internal.h"

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

/* Feed one CQE to its op; a finished op moves to the ready list. */
static inline void queue_complete(struct ksync_op_queue *q, struct io_uring *ring,
				  const struct io_uring_cqe *cqe)
{
	struct ksync_op *op = (struct ksync_op *)(uintptr_t)(cqe->user_data & ~KSYNC_OP_TAG_MASK);

	if (op->kind == KIND_SLEEP) {
		if ((cqe->user_data & KSYNC_OP_TAG_MASK) == KSYNC_OP_TAG_WAIT)
			op->result = cqe->res == -ETIME ? 0 : cqe->res;
		if (--op->inflight)
			return;
	} else if (ksync_op_complete(op, ring, cqe) != 0) {
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

#endif
