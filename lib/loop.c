/* SPDX-License-Identifier: MIT */
/* ksync_loop: the optional single-ring driver (see ksync/loop.h). */
#include "internal.h"
#include "queue.h"
#include "ksync/loop.h"

#include <string.h>

KSYNC_API int ksync_loop_init(struct ksync_loop *loop, unsigned entries, unsigned flags)
{
	int r = ksync_require_uring_futex();

	memset(loop, 0, sizeof(*loop));
	queue_init(&loop->queue);
	if (r)
		return r;
	return io_uring_queue_init(entries, &loop->ring, flags);
}

KSYNC_API unsigned ksync_loop_busy(const struct ksync_loop *loop)
{
	return queue_busy(&loop->queue);
}

KSYNC_API int ksync_loop_start(struct ksync_loop *loop, struct ksync_op *op, ksync_op_cb cb)
{
	int r;

	if (loop->closing)
		return -ESHUTDOWN;
	r = ksync_op_start(op, &loop->ring);
	if (r == -EBUSY && ksync_op_pending(op) == 0) {
		/* Our own ring is full: we may submit it, then retry once. */
		io_uring_submit(&loop->ring);
		r = ksync_op_start(op, &loop->ring);
	}
	if (r != KSYNC_OP_PENDING)
		return r;	/* done at once (no callback), or not started */
	op->callback = cb;
	queue_pending_add(&loop->queue, op);
	return KSYNC_OP_PENDING;
}

KSYNC_API int ksync_loop_sleep(struct ksync_loop *loop, struct ksync_op *op, int64_t ns,
			       ksync_op_cb cb)
{
	void *data = op->data;
	struct op_state *st = op_state(op);
	struct io_uring_sqe *sqe;

	if (loop->closing)
		return -ESHUTDOWN;
	memset(op, 0, sizeof(*op));
	op->data = data;
	st->kind = KIND_SLEEP;
	op->user_data = (uintptr_t)op;
	if (ns < 0)
		ns = 0;		/* late is not an error: see loop.h */
	st->deadline.tv_sec = ns / 1000000000;
	st->deadline.tv_nsec = ns % 1000000000;
	sqe = io_uring_get_sqe(&loop->ring);
	if (!sqe) {
		io_uring_submit(&loop->ring);
		sqe = io_uring_get_sqe(&loop->ring);
		if (!sqe)
			return -EBUSY;
	}
	io_uring_prep_timeout(sqe, (struct __kernel_timespec *)&st->deadline, 0, 0);
	sqe->user_data = op->user_data;
	st->inflight = 1;
	op->callback = cb;
	queue_pending_add(&loop->queue, op);
	return 0;
}

KSYNC_API int ksync_loop_cancel(struct ksync_loop *loop, struct ksync_op *op)
{
	return queue_cancel(&loop->ring, op);
}

KSYNC_API int ksync_loop_run_once(struct ksync_loop *loop, int wait)
{
	int r;

	/* Always enter the kernel with GETEVENTS: under DEFER_TASKRUN (and
	 * COOP_TASKRUN) a futex wake is only turned into a CQE then. */
	if (wait && !loop->queue.ready && loop->queue.npending)
		r = io_uring_submit_and_wait(&loop->ring, 1);
	else
		r = io_uring_submit_and_get_events(&loop->ring);
	if (r < 0 && r != -EINTR && r != -ETIME && r != -EBUSY)
		return r;
	queue_reap(&loop->queue, &loop->ring);
	return queue_run_ready(&loop->queue);
}

KSYNC_API int ksync_loop_run(struct ksync_loop *loop)
{
	while (loop->queue.npending || loop->queue.ready) {
		int r = ksync_loop_run_once(loop, 1);

		if (r < 0)
			return r;
	}
	return 0;
}

KSYNC_API void ksync_loop_exit(struct ksync_loop *loop)
{
	loop->closing = 1;
	queue_drain(&loop->queue, &loop->ring);
	io_uring_queue_exit(&loop->ring);
}
