/* SPDX-License-Identifier: MIT */
/*
 * The async op engine: turns "try, else wait on the futex word" into SQEs
 * for the caller's ring, and CQEs back into outcomes.
 *
 * An op only decides once every CQE it is owed has arrived (the wait's, its
 * linked timeout's, a cancel's), so its memory is never reused while the
 * kernel may still post to it. The wait CQE alone says whether a wake was
 * consumed (res 0): a timeout or a cancel that raced the wake loses, and the
 * op then hands the wake on instead of dropping it.
 */
#include "internal.h"
#include "compat.h"
#include "ksync/event.h"
#include "ksync/lock.h"
#include "ksync/sem.h"

#include <liburing.h>
#include <string.h>

enum { ST_IDLE, ST_WAITING, ST_DONE };

static void op_init(struct ksync_op *op, int kind, void *prim, uint64_t token)
{
	memset(op, 0, sizeof(*op));
	op->kind = (uint8_t)kind;
	op->prim = prim;
	op->token = token;
	op->user_data = (uintptr_t)op;
}

KSYNC_API void ksync_op_lock(struct ksync_op *op, struct ksync_lock *lock, uint64_t token)
{
	op_init(op, KSYNC_KIND_LOCK, lock, token);
}

KSYNC_API void ksync_op_sem(struct ksync_op *op, struct ksync_sem *sem)
{
	op_init(op, KSYNC_KIND_SEM, sem, 0);
}

KSYNC_API void ksync_op_event(struct ksync_op *op, struct ksync_event *event)
{
	op_init(op, KSYNC_KIND_EVENT, event, 0);
}

KSYNC_API int ksync_op_set_deadline(struct ksync_op *op, clockid_t clock,
				    const struct timespec *deadline)
{
	int r = ksync_check_deadline(clock, deadline);

	if (r || !deadline)
		return r ? r : -EINVAL;
	if (op->state != ST_IDLE)
		return -EBUSY;
	op->has_deadline = 1;
	op->clock_realtime = clock == CLOCK_REALTIME;
	op->deadline.tv_sec = deadline->tv_sec;
	op->deadline.tv_nsec = deadline->tv_nsec;
	return 0;
}

KSYNC_API int ksync_op_pending(const struct ksync_op *op)
{
	return op->state == ST_WAITING;
}

static uint32_t *op_word(struct ksync_op *op)
{
	/* Every primitive starts with its futex word. */
	return (uint32_t *)op->prim;
}

static int op_attempt(struct ksync_op *op, bool woken, uint32_t *park)
{
	switch (op->kind) {
	case KSYNC_KIND_EVENT:
		return ksync_event_attempt_async(op, park);
	case KSYNC_KIND_LOCK:
		return ksync_lock_attempt_async(op, woken, park);
	case KSYNC_KIND_SEM:
		return ksync_sem_attempt_async(op, woken, park);
	}
	return -EINVAL;
}

/* The op ends without what it waited for: give back what it holds. */
static void op_abandon(struct ksync_op *op)
{
	switch (op->kind) {
	case KSYNC_KIND_LOCK:
		if (op->woken)
			ksync_lock_pass_on(op->prim);
		break;
	case KSYNC_KIND_SEM:
		ksync_sem_op_abandon(op);
		break;
	}
	op->woken = 0;
}

/* Who waits, for the probes: the task token, or the op when it has none. */
static uint64_t op_who(const struct ksync_op *op)
{
	return op->token ? op->token : (uint64_t)(uintptr_t)op;
}

static int op_finish(struct ksync_op *op, int result)
{
	if (result != 0)
		op_abandon(op);
	if (op->started_ns)
		trace_wait_end(op->prim, op->kind, KSYNC_WORLD_URING, op_who(op), result);
	op->result = result;
	op->state = ST_DONE;
	return 0;
}

static bool op_deadline_passed(struct ksync_op *op)
{
	struct timespec ts = { op->deadline.tv_sec, (long)op->deadline.tv_nsec };

	return op->has_deadline &&
	       ksync_deadline_passed(op->clock_realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts);
}

static struct io_uring_sqe *get_sqe(struct io_uring *ring, unsigned need)
{
	if (io_uring_sq_space_left(ring) < need) {
		io_uring_submit(ring);
		if (io_uring_sq_space_left(ring) < need)
			return NULL;
	}
	return io_uring_get_sqe(ring);
}

/* Queue the futex wait (and its linked timeout) for op->park. */
static int op_arm(struct ksync_op *op, struct io_uring *ring)
{
	unsigned need = op->has_deadline ? 2 : 1;
	struct io_uring_sqe *sqe = get_sqe(ring, need);

	if (!sqe)
		return -EBUSY;
	ksync_prep_futex_wait(sqe, op_word(op), op->park, KSYNC_FUTEX_MASK_ANY,
			      op->user_data | KSYNC_OP_TAG_WAIT);
	if (op->has_deadline) {
		sqe->flags |= IOSQE_IO_LINK;
		sqe = io_uring_get_sqe(ring);
		io_uring_prep_link_timeout(sqe, (struct __kernel_timespec *)&op->deadline,
					   IORING_TIMEOUT_ABS |
					   (op->clock_realtime ? IORING_TIMEOUT_REALTIME : 0));
		sqe->user_data = op->user_data | KSYNC_OP_TAG_TIMEOUT;
	}
	if (!op->started_ns) {
		op->started_ns = ksync_mono_ns();
		trace_wait_begin(op->prim, op->kind, KSYNC_WORLD_URING, op_who(op));
	}
	op->inflight = (uint8_t)need;
	op->woken = 0;
	op->wait_res = 0;
	op->state = ST_WAITING;
	return KSYNC_OP_PENDING;
}

KSYNC_API int ksync_op_start(struct ksync_op *op, struct io_uring *ring)
{
	int r;

	if (!op->prim || (op->kind == KSYNC_KIND_LOCK && !op->token) ||
	    (op->user_data & KSYNC_OP_TAG_MASK))
		return -EINVAL;
	if (op->state == ST_WAITING)
		return -EBUSY;
	op->state = ST_IDLE;
	op->started_ns = 0;
	op->cancel = 0;
	op->woken = 0;
	r = op_attempt(op, false, &op->park);
	if (r < 0)
		return r;
	if (r == 1)
		return op_finish(op, 0);
	if (op_deadline_passed(op))
		return op_finish(op, -ETIMEDOUT);
	r = ksync_require_uring_futex();
	if (r == 0)
		r = op_arm(op, ring);
	if (r < 0) {
		op_abandon(op);
		op->state = ST_IDLE;
		op->started_ns = 0;
	}
	return r;
}

KSYNC_API int ksync_op_complete(struct ksync_op *op, struct io_uring *ring,
				const struct io_uring_cqe *cqe)
{
	uint64_t tag = cqe->user_data & KSYNC_OP_TAG_MASK;
	int r;

	if (op->state != ST_WAITING || (cqe->user_data & ~KSYNC_OP_TAG_MASK) != op->user_data ||
	    !op->inflight)
		return -EINVAL;
	op->inflight--;
	if (tag == KSYNC_OP_TAG_WAIT) {
		op->wait_res = cqe->res;
		if (cqe->res == 0)
			op->woken = 1;	/* this op consumed a wake */
	}
	/* The timeout's and the cancel's own results say nothing the wait's
	 * does not: -ETIME, -ECANCELED, -ENOENT, -EALREADY or a count. */
	if (op->inflight)
		return KSYNC_OP_PENDING;

	if (op->cancel)
		return op_finish(op, -ECANCELED);
	if (op->wait_res == -ECANCELED)	/* the linked timeout, or ring teardown */
		return op_finish(op, op->has_deadline ? -ETIMEDOUT : -ECANCELED);
	if (op->wait_res < 0 && op->wait_res != -EAGAIN && op->wait_res != -EINTR)
		return op_finish(op, op->wait_res);

	r = op_attempt(op, op->woken, &op->park);
	if (r == 1) {
		op->woken = 0;
		return op_finish(op, 0);
	}
	/* A failed attempt re-marks the word as contended, so a consumed wake
	 * has been accounted for: the next release wakes again. */
	op->woken = 0;
	if (r < 0)
		return op_finish(op, r);
	if (op_deadline_passed(op))
		return op_finish(op, -ETIMEDOUT);
	r = op_arm(op, ring);
	if (r < 0)
		return op_finish(op, r);
	return KSYNC_OP_PENDING;
}

KSYNC_API int ksync_op_cancel(struct ksync_op *op, struct io_uring *ring)
{
	struct io_uring_sqe *sqe;

	if (op->state != ST_WAITING || op->cancel)
		return -EALREADY;
	sqe = get_sqe(ring, 1);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel64(sqe, op->user_data | KSYNC_OP_TAG_WAIT, 0);
	sqe->user_data = op->user_data | KSYNC_OP_TAG_CANCEL;
	op->cancel = 1;
	op->inflight++;
	return 0;
}
