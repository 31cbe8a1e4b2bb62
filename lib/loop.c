/* SPDX-License-Identifier: MIT */
/* ksync_loop: the optional single-ring driver (see ksync/loop.h). */
#include "internal.h"
#include "ksync/loop.h"

#include <string.h>

/* A sleep is a plain IORING_OP_TIMEOUT; ksync_op_complete never sees it. */
#define KIND_SLEEP 0x80

KSYNC_API int ksync_loop_init(struct ksync_loop *loop, unsigned entries, unsigned flags)
{
	int r = ksync_require_uring_futex();

	memset(loop, 0, sizeof(*loop));
	loop->ready_tail = &loop->ready;
	if (r)
		return r;
	return io_uring_queue_init(entries, &loop->ring, flags);
}

static void pending_add(struct ksync_loop *loop, struct ksync_op *op)
{
	op->prev = NULL;
	op->next = loop->pending;
	if (loop->pending)
		loop->pending->prev = op;
	loop->pending = op;
	loop->npending++;
}

static void pending_del(struct ksync_loop *loop, struct ksync_op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		loop->pending = op->next;
	if (op->next)
		op->next->prev = op->prev;
	loop->npending--;
}

static void ready_add(struct ksync_loop *loop, struct ksync_op *op)
{
	op->next = NULL;
	*loop->ready_tail = op;
	loop->ready_tail = &op->next;
}

KSYNC_API unsigned ksync_loop_busy(const struct ksync_loop *loop)
{
	unsigned n = loop->npending;

	for (const struct ksync_op *op = loop->ready; op; op = op->next)
		n++;
	return n;
}

KSYNC_API int ksync_loop_start(struct ksync_loop *loop, struct ksync_op *op, ksync_op_cb cb)
{
	int r;

	if (loop->closing)
		return -ESHUTDOWN;
	r = ksync_op_start(op, &loop->ring);
	if (r < 0)
		return r;
	op->callback = cb;
	if (r == 0)
		ready_add(loop, op);
	else
		pending_add(loop, op);
	return 0;
}

KSYNC_API int ksync_loop_sleep(struct ksync_loop *loop, struct ksync_op *op, int64_t ns,
			       ksync_op_cb cb)
{
	void *data = op->data;
	struct io_uring_sqe *sqe;

	if (loop->closing)
		return -ESHUTDOWN;
	memset(op, 0, sizeof(*op));
	op->data = data;
	op->kind = KIND_SLEEP;
	op->user_data = (uintptr_t)op;
	op->deadline.tv_sec = ns / 1000000000;
	op->deadline.tv_nsec = ns % 1000000000;
	sqe = io_uring_get_sqe(&loop->ring);
	if (!sqe) {
		io_uring_submit(&loop->ring);
		sqe = io_uring_get_sqe(&loop->ring);
		if (!sqe)
			return -EBUSY;
	}
	io_uring_prep_timeout(sqe, (struct __kernel_timespec *)&op->deadline, 0, 0);
	sqe->user_data = op->user_data;
	op->inflight = 1;
	op->callback = cb;
	pending_add(loop, op);
	return 0;
}

KSYNC_API int ksync_loop_cancel(struct ksync_loop *loop, struct ksync_op *op)
{
	struct io_uring_sqe *sqe;

	if (op->kind != KIND_SLEEP)
		return ksync_op_cancel(op, &loop->ring);
	if (!op->inflight || op->cancel)
		return -EALREADY;
	sqe = io_uring_get_sqe(&loop->ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_timeout_remove(sqe, op->user_data, 0);
	sqe->user_data = op->user_data | KSYNC_OP_TAG_CANCEL;
	op->cancel = 1;
	op->inflight++;
	return 0;
}

static void handle_cqe(struct ksync_loop *loop, struct io_uring_cqe *cqe)
{
	struct ksync_op *op = (struct ksync_op *)(uintptr_t)(cqe->user_data & ~KSYNC_OP_TAG_MASK);

	if (op->kind == KIND_SLEEP) {
		if ((cqe->user_data & KSYNC_OP_TAG_MASK) == 0)
			op->result = cqe->res == -ETIME ? 0 : cqe->res;
		if (--op->inflight)
			return;
	} else if (ksync_op_complete(op, &loop->ring, cqe) != 0) {
		return;
	}
	pending_del(loop, op);
	ready_add(loop, op);
}

static int run_ready(struct ksync_loop *loop)
{
	struct ksync_op *op = loop->ready;
	int n = 0;

	/* Callbacks may start new ops: take the list first. */
	loop->ready = NULL;
	loop->ready_tail = &loop->ready;
	while (op) {
		struct ksync_op *next = op->next;

		op->next = NULL;
		if (op->callback)
			op->callback(op);
		op = next;
		n++;
	}
	return n;
}

KSYNC_API int ksync_loop_run_once(struct ksync_loop *loop, int wait)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	int r;

	/* Always enter the kernel with GETEVENTS: under DEFER_TASKRUN (and
	 * COOP_TASKRUN) a futex wake is only turned into a CQE then. */
	if (wait && !loop->ready && loop->npending)
		r = io_uring_submit_and_wait(&loop->ring, 1);
	else
		r = io_uring_submit_and_get_events(&loop->ring);
	if (r < 0 && r != -EINTR && r != -ETIME && r != -EBUSY)
		return r;
	io_uring_for_each_cqe(&loop->ring, head, cqe) {
		handle_cqe(loop, cqe);
		seen++;
	}
	io_uring_cq_advance(&loop->ring, seen);
	return run_ready(loop);
}

KSYNC_API int ksync_loop_run(struct ksync_loop *loop)
{
	while (loop->npending || loop->ready) {
		int r = ksync_loop_run_once(loop, 1);

		if (r < 0)
			return r;
	}
	return 0;
}

KSYNC_API void ksync_loop_exit(struct ksync_loop *loop)
{
	loop->closing = 1;
	for (struct ksync_op *op = loop->pending; op; op = op->next)
		while (ksync_loop_cancel(loop, op) == -EBUSY)
			io_uring_submit(&loop->ring);
	while (loop->npending || loop->ready)
		if (ksync_loop_run_once(loop, 1) < 0)
			break;
	io_uring_queue_exit(&loop->ring);
}
