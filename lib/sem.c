/* SPDX-License-Identifier: MIT */
/*
 * Semaphore. The futex word is the permit count; waiters park on 0.
 *
 * No lost wake: a waiter increments `waiters` before it reads the count,
 * and a release adds to the count before it reads `waiters`, both
 * sequentially consistent. So either the release sees the waiter and wakes,
 * or the waiter sees the permit (or its futex wait finds the word non-zero
 * and returns at once). A waiter that was woken but leaves without a permit
 * (timeout or cancel racing the wake) wakes another in its place.
 */
#include "internal.h"
#include "ksync/sem.h"

KSYNC_API int ksync_sem_init(struct ksync_sem *s, uint32_t value, uint32_t max)
{
	if (value > KSYNC_SEM_VALUE_MAX || max > KSYNC_SEM_VALUE_MAX || (max && value > max))
		return -EINVAL;
	store_relaxed(&s->word, value);
	store_relaxed(&s->waiters, 0);
	store_relaxed(&s->max, max);
	return 0;
}

KSYNC_API int ksync_sem_destroy(struct ksync_sem *s)
{
	return load_acquire(&s->waiters) ? -EBUSY : 0;
}

KSYNC_API uint32_t ksync_sem_value(const struct ksync_sem *s)
{
	return load_relaxed(&s->word);
}

static bool take(struct ksync_sem *s)
{
	uint32_t v = load_relaxed(&s->word);

	while (v) {
		if (cas_acquire(&s->word, &v, v - 1))
			return true;
	}
	return false;
}

KSYNC_API int ksync_sem_try(struct ksync_sem *s)
{
	return take(s) ? 0 : -EAGAIN;
}

KSYNC_API int ksync_sem_release(struct ksync_sem *s, uint32_t n)
{
	uint32_t limit = load_relaxed(&s->max), v, waiters;

	if (n == 0)
		return -EINVAL;
	if (!limit)
		limit = KSYNC_SEM_VALUE_MAX;
	v = load_relaxed(&s->word);
	do {
		if (n > limit || v > limit - n)
			return -EOVERFLOW;
	} while (!__atomic_compare_exchange_n(&s->word, &v, v + n, false, __ATOMIC_SEQ_CST,
					      __ATOMIC_RELAXED));
	waiters = __atomic_load_n(&s->waiters, __ATOMIC_SEQ_CST);
	if (waiters)
		wake_traced(&s->word, s, KSYNC_KIND_SEM, (int)(n < waiters ? n : waiters));
	return 0;
}

static void announce(struct ksync_sem *s)
{
	__atomic_fetch_add(&s->waiters, 1, __ATOMIC_SEQ_CST);
}

static void leave(struct ksync_sem *s)
{
	__atomic_fetch_sub(&s->waiters, 1, __ATOMIC_RELEASE);
}

void ksync_sem_pass_on(struct ksync_sem *s)
{
	if (__atomic_load_n(&s->word, __ATOMIC_SEQ_CST) &&
	    __atomic_load_n(&s->waiters, __ATOMIC_SEQ_CST))
		wake_traced(&s->word, s, KSYNC_KIND_SEM, 1);
}

KSYNC_API int ksync_sem_acquire_until(struct ksync_sem *s, clockid_t clock,
				      const struct timespec *deadline)
{
	uint32_t me;
	int r = ksync_check_deadline(clock, deadline);

	if (unlikely(r))
		return r;
	if (likely(take(s)))
		return 0;
	me = ksync_self_tid();
	trace_wait_begin(s, KSYNC_KIND_SEM, KSYNC_WORLD_THREAD, me);
	announce(s);
	for (;;) {
		if (take(s)) {
			r = 0;
			break;
		}
		r = ksync_futex_wait(&s->word, 0, KSYNC_FUTEX_MASK_ANY, clock, deadline);
		if (r == -ETIMEDOUT || r == -ENOSYS)
			break;	/* not woken: nothing to hand on */
	}
	leave(s);
	trace_wait_end(s, KSYNC_KIND_SEM, KSYNC_WORLD_THREAD, me, r);
	return r;
}

KSYNC_API int ksync_sem_acquire(struct ksync_sem *s)
{
	return ksync_sem_acquire_until(s, CLOCK_MONOTONIC, NULL);
}

/*
 * Async attempts. An op counts itself in `waiters` from its first failed
 * attempt until it takes a permit or ends (op.c then calls
 * ksync_sem_op_leave).
 */
int ksync_sem_attempt_async(struct ksync_op *op, bool woken, uint32_t *park)
{
	struct ksync_sem *s = op->prim;

	(void)woken;	/* a woken op competes like any other */
	if (!op->announced) {
		if (take(s))
			return 1;
		announce(s);
		op->announced = 1;
	}
	if (take(s)) {
		leave(s);
		op->announced = 0;
		return 1;
	}
	*park = 0;
	return 0;
}

void ksync_sem_op_leave(struct ksync_sem *s)
{
	leave(s);
}
