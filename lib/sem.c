/* SPDX-License-Identifier: MIT */
/*
 * Semaphore. The futex word is the free-permit count.
 *
 * No lost wake: a waiter increments `waiters` before it reads the count,
 * and a release adds to the count before it reads `waiters`, both
 * sequentially consistent. So either the release sees the waiter and wakes,
 * or the waiter sees the permit (or its futex wait finds the word changed
 * and returns at once). A waiter that was woken but leaves without a permit
 * (timeout or cancel racing the wake) hands the wake on.
 *
 * Bounded unfairness: a woken waiter that fails to get a permit after
 * waiting KSYNC_SEM_STARVE_NS marks the semaphore STARVING. A release then
 * reserves the permits it hands to the waiters it wakes: new arrivals only
 * take permits beyond `reserved` (sem->handoff), so the woken waiters, served
 * in the kernel's FIFO order, cannot be barged. Every reservation is backed
 * by a wake the kernel delivered; reservations nobody will use (fewer
 * waiters woken than reserved, a woken waiter leaving) are dropped at once,
 * followed by a wake for anyone who parked meanwhile.
 */
#include "internal.h"
#include "ksync/sem.h"

#define STARVING	0x80000000u	/* in sem->handoff */
#define RESERVED_MASK	0x7fffffffu

KSYNC_API int ksync_sem_init(struct ksync_sem *s, uint32_t value, uint32_t max)
{
	if (value > KSYNC_SEM_VALUE_MAX || max > KSYNC_SEM_VALUE_MAX || (max && value > max))
		return -EINVAL;
	store_relaxed(&s->word, value);
	store_relaxed(&s->waiters, 0);
	store_relaxed(&s->max, max);
	store_relaxed(&s->handoff, 0);
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

static uint32_t reserved(struct ksync_sem *s)
{
	return __atomic_load_n(&s->handoff, __ATOMIC_SEQ_CST) & RESERVED_MASK;
}

/*
 * Take a permit. A waiter that consumed a wake (@woken) may take a reserved
 * one and then uses up a reservation; anyone else only takes permits beyond
 * the reserved ones. On failure *park is the count to sleep on.
 */
static bool take(struct ksync_sem *s, bool woken, uint32_t *park)
{
	uint32_t v = load_relaxed(&s->word), h;

	for (;;) {
		if (v == 0 || (!woken && v <= reserved(s))) {
			*park = v;
			return false;
		}
		if (cas_acquire(&s->word, &v, v - 1))
			break;
	}
	if (woken) {
		h = load_relaxed(&s->handoff);
		while ((h & RESERVED_MASK) &&
		       !__atomic_compare_exchange_n(&s->handoff, &h, h - 1, false,
						    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			;
	}
	return true;
}

KSYNC_API int ksync_sem_try(struct ksync_sem *s)
{
	uint32_t park;

	return take(s, false, &park) ? 0 : -EAGAIN;
}

/*
 * Drop up to @n reservations, then wake up to @n waiters if permits are free:
 * whoever parked while they were reserved can have them now.
 */
static void hand_on(struct ksync_sem *s, uint32_t n)
{
	uint32_t h = load_relaxed(&s->handoff), waiters;

	for (;;) {
		uint32_t drop = h & RESERVED_MASK;

		if (drop > n)
			drop = n;
		if (!drop ||
		    __atomic_compare_exchange_n(&s->handoff, &h, h - drop, false,
						__ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			break;
	}
	waiters = __atomic_load_n(&s->waiters, __ATOMIC_SEQ_CST);
	if (waiters && __atomic_load_n(&s->word, __ATOMIC_SEQ_CST))
		wake_traced(&s->word, s, KSYNC_KIND_SEM, (int)(n < waiters ? n : waiters));
}

KSYNC_API int ksync_sem_release(struct ksync_sem *s, uint32_t n)
{
	uint32_t limit = load_relaxed(&s->max), v, waiters, reserve = 0;
	int woken;

	if (n == 0)
		return -EINVAL;
	if (!limit)
		limit = KSYNC_SEM_VALUE_MAX;
	/* Starvation mode: reserve the permits for the waiters we will wake,
	 * before they become visible to new arrivals. */
	if (__atomic_load_n(&s->handoff, __ATOMIC_SEQ_CST) & STARVING) {
		waiters = __atomic_load_n(&s->waiters, __ATOMIC_SEQ_CST);
		reserve = n < waiters ? n : waiters;
		if (reserve)
			__atomic_fetch_add(&s->handoff, reserve, __ATOMIC_SEQ_CST);
	}
	v = load_relaxed(&s->word);
	do {
		if (n > limit || v > limit - n) {
			if (reserve)
				hand_on(s, reserve);
			return -EOVERFLOW;
		}
	} while (!__atomic_compare_exchange_n(&s->word, &v, v + n, false, __ATOMIC_SEQ_CST,
					      __ATOMIC_RELAXED));
	waiters = __atomic_load_n(&s->waiters, __ATOMIC_SEQ_CST);
	woken = 0;
	if (waiters) {
		uint32_t nr = n < waiters ? n : waiters;

		woken = wake_traced(&s->word, s, KSYNC_KIND_SEM, (int)(nr > reserve ? nr : reserve));
		if (woken < 0)
			woken = 0;
	}
	if (reserve > (uint32_t)woken)
		hand_on(s, reserve - (uint32_t)woken);
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

/* A woken waiter failed to get a permit: after waiting too long, ask for
 * hand-offs. A waiter served quickly ends starvation mode. */
static void note_wait(struct ksync_sem *s, bool served, int64_t waited_ns)
{
	if (!served && waited_ns >= KSYNC_SEM_STARVE_NS)
		__atomic_fetch_or(&s->handoff, STARVING, __ATOMIC_SEQ_CST);
	else if (served && waited_ns < KSYNC_SEM_STARVE_NS &&
		 (load_relaxed(&s->handoff) & STARVING))
		__atomic_fetch_and(&s->handoff, ~STARVING, __ATOMIC_SEQ_CST);
}

void ksync_sem_pass_on(struct ksync_sem *s)
{
	hand_on(s, 1);
}

KSYNC_API int ksync_sem_acquire_until(struct ksync_sem *s, clockid_t clock,
				      const struct timespec *deadline)
{
	uint32_t me, park;
	int64_t started;
	bool woken = false;
	int r = ksync_check_deadline(clock, deadline);

	if (unlikely(r))
		return r;
	if (likely(take(s, false, &park)))
		return 0;
	me = ksync_self_tid();
	started = ksync_mono_ns();
	trace_wait_begin(s, KSYNC_KIND_SEM, KSYNC_WORLD_THREAD, me);
	announce(s);
	for (;;) {
		bool got = take(s, woken, &park);

		if (woken)
			note_wait(s, got, ksync_mono_ns() - started);
		if (got) {
			r = 0;
			break;
		}
		r = ksync_futex_wait(&s->word, park, KSYNC_FUTEX_MASK_ANY, clock, deadline);
		if (r == -ETIMEDOUT || r == -ENOSYS)
			break;	/* not woken: nothing to hand on */
		/* 0: woken. -EAGAIN/-EINTR: a wake consumed earlier still counts. */
		if (r == 0)
			woken = true;
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
	bool got;

	if (!op->announced) {
		if (take(s, false, park))
			return 1;
		announce(s);
		op->announced = 1;
	}
	got = take(s, woken, park);
	if (woken && op->started_ns)
		note_wait(s, got, ksync_mono_ns() - op->started_ns);
	if (!got)
		return 0;
	leave(s);
	op->announced = 0;
	return 1;
}

void ksync_sem_op_leave(struct ksync_sem *s)
{
	leave(s);
}
