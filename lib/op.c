/* SPDX-License-Identifier: MIT */
/*
 * The async op engine: turns "try, else wait on the futex word" into SQEs
 * for the caller's ring, and CQEs back into outcomes. It knows the life of
 * an op and no primitive: each family's protocol comes in through its
 * struct ksync_waitable (engine.h).
 *
 * An op only decides once every CQE it is owed has arrived (the wait's, its
 * linked timeout's, a cancel's), so its memory is never reused while the
 * kernel may still post to it. The wait CQE alone says whether a wake was
 * consumed (res 0): a timeout or a cancel that raced the wake loses, and the
 * op then hands the wake on (the family's abandon hook) instead of dropping
 * it.
 *
 * ksync never submits the caller's ring: when the SQEs an op needs are not
 * free, it says so (-EBUSY) and takes nothing.
 */
#include "engine.h"
#include "compat.h"

#include <liburing.h>
#include <string.h>

void ksync_op_prepare(struct ksync_op *op, const struct ksync_waitable *proto, void *prim,
		      uint64_t token, uint32_t fflags)
{
	struct op_state *st = op_state(op);

	memset(op, 0, sizeof(*op));
	op->token = token;
	op->user_data = (uintptr_t)op;
	st->proto = proto;
	st->prim = prim;
	st->kind = proto->kind;
	st->futex_flags = fflags;
}

KSYNC_API int ksync_op_set_deadline(struct ksync_op *op, clockid_t clock,
				    const struct timespec *deadline)
{
	struct op_state *st = op_state(op);
	int r = ksync_check_deadline(clock, deadline);

	if (r || !deadline)
		return r ? r : -EINVAL;
	if (st->state == OP_WAITING)
		return -EBUSY;
	st->has_deadline = 1;
	st->clock_realtime = clock == CLOCK_REALTIME;
	st->deadline.tv_sec = deadline->tv_sec;
	st->deadline.tv_nsec = deadline->tv_nsec;
	return 0;
}

KSYNC_API int ksync_op_pending(const struct ksync_op *op)
{
	return op_state_const(op)->state == OP_WAITING;
}

/*
 * The op would end with @result < 0: give back what it holds, or, for a
 * family with a settle hook, let it decide whether the op won after all.
 * Returns the result to report (0: it did).
 */
static int op_give_up(struct ksync_op *op, int result)
{
	struct op_state *st = op_state(op);
	bool woken = st->woken;

	st->woken = 0;
	if (st->proto->settle) {
		int r = st->proto->settle(op, woken, result);

		return r == 1 ? 0 : r;
	}
	if (st->proto->abandon)
		st->proto->abandon(op, woken);
	return result;
}

/* Who waits, for the probes: the task token, or the op when it has none. */
static uint64_t op_who(const struct ksync_op *op)
{
	return op->token ? op->token : (uint64_t)(uintptr_t)op;
}

static int op_finish(struct ksync_op *op, int result)
{
	struct op_state *st = op_state(op);

	if (result != 0)
		result = op_give_up(op, result);
	if (st->started_ns)
		trace_wait_end(st->prim, st->kind, KSYNC_WORLD_URING, op_who(op), result);
	op->result = result ? result : st->ok_result;
	st->state = OP_DONE;
	return 0;
}

static bool op_deadline_passed(struct ksync_op *op)
{
	struct op_state *st = op_state(op);
	struct timespec ts = { st->deadline.tv_sec, (long)st->deadline.tv_nsec };

	return st->has_deadline &&
	       ksync_deadline_passed(st->clock_realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts);
}

/* One attempt of the family's protocol; the park word defaults to the
 * primitive's own (every primitive starts with its futex word). */
static int op_attempt(struct ksync_op *op, bool woken)
{
	struct op_state *st = op_state(op);

	st->park.word = (uint32_t *)st->prim;
	st->park.mask = KSYNC_FUTEX_MASK_ANY;
	return st->proto->attempt(op, woken, &st->park);
}

/* Queue the futex wait (and its linked timeout) for st->park. */
static int op_arm(struct ksync_op *op, struct io_uring *ring)
{
	struct op_state *st = op_state(op);
	unsigned need = st->has_deadline ? 2 : 1;
	struct io_uring_sqe *sqe;

	if (io_uring_sq_space_left(ring) < need)
		return -EBUSY;
	sqe = io_uring_get_sqe(ring);
	ksync_prep_futex_wait(sqe, st->park.word, st->park.value, st->park.mask,
			      op->user_data | KSYNC_OP_TAG_WAIT);
	sqe->fd = (int)st->futex_flags;
	if (st->has_deadline) {
		sqe->flags |= IOSQE_IO_LINK;
		sqe = io_uring_get_sqe(ring);
		io_uring_prep_link_timeout(sqe, (struct __kernel_timespec *)&st->deadline,
					   IORING_TIMEOUT_ABS |
					   (st->clock_realtime ? IORING_TIMEOUT_REALTIME : 0));
		sqe->user_data = op->user_data | KSYNC_OP_TAG_TIMEOUT;
	}
	if (!st->started_ns) {
		st->started_ns = ksync_mono_ns();
		trace_wait_begin(st->prim, st->kind, KSYNC_WORLD_URING, op_who(op));
	}
	st->inflight = (uint8_t)need;
	st->woken = 0;
	st->wait_res = 0;
	st->state = OP_WAITING;
	return KSYNC_OP_PENDING;
}

KSYNC_API int ksync_op_start(struct ksync_op *op, struct io_uring *ring)
{
	struct op_state *st = op_state(op);
	int r;

	if (!st->proto || (st->proto->needs_token && !op->token) ||
	    (op->user_data & KSYNC_OP_TAG_MASK))
		return -EINVAL;
	if (st->state == OP_WAITING)
		return -EBUSY;
	st->state = OP_IDLE;
	st->started_ns = 0;
	st->cancel = 0;
	st->woken = 0;
	st->ok_result = 0;
	if (st->proto->commits) {
		/* Make sure it could wait before the attempt commits it. */
		r = ksync_require_uring_futex();
		if (r < 0)
			return r;
		if (io_uring_sq_space_left(ring) < (st->has_deadline ? 2u : 1u))
			return -EBUSY;
	}
	r = op_attempt(op, false);
	if (r < 0)
		return r;
	if (r == 1)
		return op_finish(op, 0);
	if (op_deadline_passed(op))
		return op_finish(op, -ETIMEDOUT);
	trace_op_start(op, st->prim, st->kind, op_who(op));
	r = ksync_require_uring_futex();
	if (r == 0)
		r = op_arm(op, ring);
	if (r < 0) {
		r = op_give_up(op, r);
		st->started_ns = 0;
		if (r == 0)	/* settled: it got what it waited for after all */
			return op_finish(op, 0);
		st->state = OP_IDLE;
	}
	return r;
}

KSYNC_API int ksync_op_complete(struct ksync_op *op, struct io_uring *ring,
				const struct io_uring_cqe *cqe)
{
	struct op_state *st = op_state(op);
	uint64_t tag = cqe->user_data & KSYNC_OP_TAG_MASK;
	int r;

	if (st->state != OP_WAITING || (cqe->user_data & ~KSYNC_OP_TAG_MASK) != op->user_data ||
	    !st->inflight)
		return -EINVAL;
	st->inflight--;
	if (tag == KSYNC_OP_TAG_WAIT) {
		st->wait_res = cqe->res;
		if (cqe->res == 0)
			st->woken = 1;	/* this op consumed a wake */
	}
	/* The timeout's and the cancel's own results say nothing the wait's
	 * does not: -ETIME, -ECANCELED, -ENOENT, -EALREADY or a count. */
	if (st->inflight)
		return KSYNC_OP_PENDING;

	if (st->cancel)
		return op_finish(op, -ECANCELED);
	if (st->wait_res == -ECANCELED)	/* the linked timeout, or ring teardown */
		return op_finish(op, st->has_deadline ? -ETIMEDOUT : -ECANCELED);
	if (st->wait_res < 0 && st->wait_res != -EAGAIN && st->wait_res != -EINTR)
		return op_finish(op, st->wait_res);

	r = op_attempt(op, st->woken);
	/* Whatever the attempt did, the wake it was given is accounted for:
	 * taken, or the attempt re-registered the op as a waiter. */
	st->woken = 0;
	if (r == 1)
		return op_finish(op, 0);
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
	struct op_state *st = op_state(op);
	struct io_uring_sqe *sqe;

	if (st->state != OP_WAITING || st->cancel)
		return -EALREADY;
	sqe = io_uring_get_sqe(ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel64(sqe, op->user_data | KSYNC_OP_TAG_WAIT, 0);
	sqe->user_data = op->user_data | KSYNC_OP_TAG_CANCEL;
	st->cancel = 1;
	st->inflight++;
	return 0;
}
