/* SPDX-License-Identifier: MIT */
/*
 * Semaphore (semantics in ksync/sem.h, word layout in ksync/word.h).
 * The protocol below is modelled in tests/model/sem.pml.
 *
 * Taking. The word holds F free permits and R permits reserved for woken
 * waiters. A new arrival takes only from F; a waiter the kernel has just
 * woken takes from R first, then from F. Either is one CAS on the word, so
 * the check and the take cannot be separated by other takes and releases.
 *
 * Counting waiters. `waiters` counts the waiters that announced themselves
 * and have not been woken: a waiter increments it before it reads the word,
 * and whoever wakes waiters subtracts the number the kernel reports woken.
 * A woken waiter that has to park again announces itself again first. So a
 * release never wakes on behalf of a waiter that is already awake (an async
 * task whose wake CQE is not reaped yet is not counted).
 *
 * No lost wake. Whatever adds to F (release, unreserve, pass_on) changes the
 * word first and then reads `waiters`; a waiter announces first and then
 * reads the word (all seq_cst). So the adder sees the waiter and wakes it,
 * or the waiter sees the permit, or the kernel's compare finds the word
 * changed and the wait returns at once.
 *
 * Bounded unfairness. A woken waiter that keeps losing to new arrivals for
 * KSYNC_SEM_STARVE_NS sets STARVING. Then a release puts its permits, up to
 * the number of waiters, in R and wakes as many waiters, so new arrivals
 * cannot take them. Reservations that no waiter was woken for go back to F
 * at once (unreserve); a woken waiter that leaves without taking (its
 * timeout or cancel lost the race to the wake) moves one back and wakes
 * someone in its place (pass_on). A waiter served within the bound clears
 * STARVING.
 */
#include "engine.h"
#include "ksync/sem.h"

#define FREE(v)		((v) & KSYNC_SEM_FREE_MASK)
#define RESERVED(v)	(((v) & KSYNC_SEM_RESERVED_MASK) / KSYNC_SEM_RESERVED_ONE)
#define R_ONE		KSYNC_SEM_RESERVED_ONE

#define seq_load(p)		__atomic_load_n((p), __ATOMIC_SEQ_CST)
#define seq_cas(p, old, new)	__atomic_compare_exchange_n((p), (old), (new), false, \
							    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

KSYNC_API int ksync_sem_init(struct ksync_sem *s, uint32_t value, uint32_t max, unsigned flags)
{
	if (value > KSYNC_SEM_VALUE_MAX || max > KSYNC_SEM_VALUE_MAX || (max && value > max) ||
	    (flags & ~KSYNC_SHARED))
		return -EINVAL;
	store_relaxed(&s->word, value);
	store_relaxed(&s->waiters, 0);
	store_relaxed(&s->max, max);
	store_relaxed(&s->flags, flags & KSYNC_SHARED ? KSYNC_SEM_SHARED : 0);
	return 0;
}

static uint32_t fflags(const struct ksync_sem *s)
{
	return futex_flags_for(load_relaxed(&s->flags) & KSYNC_SEM_SHARED ? KSYNC_SHARED : 0);
}

KSYNC_API int ksync_sem_destroy(struct ksync_sem *s)
{
	return load_acquire(&s->waiters) || RESERVED(load_acquire(&s->word)) ? -EBUSY : 0;
}

KSYNC_API uint32_t ksync_sem_value(const struct ksync_sem *s)
{
	uint32_t v = load_relaxed(&s->word);

	return FREE(v) + RESERVED(v);
}

/*
 * Take a permit: from R first if the kernel just woke the caller (@woken),
 * else only from F. On failure *park is the word value to sleep on.
 */
static bool take(struct ksync_sem *s, bool woken, uint32_t *park)
{
	uint32_t v = seq_load(&s->word), nv;

	for (;;) {
		if (woken && RESERVED(v))
			nv = v - R_ONE;
		else if (FREE(v))
			nv = v - 1;
		else {
			*park = v;
			return false;
		}
		TEST_POINT("sem.take.decided", s);
		if (cas_acquire(&s->word, &v, nv))
			return true;
	}
}

KSYNC_API int ksync_sem_try(struct ksync_sem *s)
{
	uint32_t park;

	return take(s, false, &park) ? 0 : -EAGAIN;
}

static void announce(struct ksync_sem *s)
{
	__atomic_fetch_add(&s->waiters, 1, __ATOMIC_SEQ_CST);
}

static void leave(struct ksync_sem *s)
{
	__atomic_fetch_sub(&s->waiters, 1, __ATOMIC_SEQ_CST);
}

/* Wake up to @nr counted waiters; uncount those the kernel woke. */
static uint32_t wake_waiters(struct ksync_sem *s, uint32_t nr)
{
	int woken = wake_traced(&s->word, fflags(s), s, KSYNC_KIND_SEM, (int)nr);

	if (woken <= 0)
		return 0;
	__atomic_fetch_sub(&s->waiters, (uint32_t)woken, __ATOMIC_SEQ_CST);
	return (uint32_t)woken;
}

/* Up to @n reservations nobody was woken for become free permits. */
static void unreserve(struct ksync_sem *s, uint32_t n)
{
	uint32_t v = load_relaxed(&s->word), d, waiters;

	do {
		d = min_u32(n, RESERVED(v));
		if (!d)
			return;	/* woken waiters took them meanwhile */
	} while (!seq_cas(&s->word, &v, v - d * R_ONE + d));
	waiters = seq_load(&s->waiters);
	if (waiters)
		wake_waiters(s, min_u32(d, waiters));
}

KSYNC_API int ksync_sem_release(struct ksync_sem *s, uint32_t n)
{
	uint32_t limit = load_relaxed(&s->max), v, reserve, waiters, woken = 0;

	if (n == 0)
		return -EINVAL;
	if (!limit)
		limit = KSYNC_SEM_VALUE_MAX;
	v = load_relaxed(&s->word);
	do {
		if (n > limit || FREE(v) + RESERVED(v) > limit - n)
			return -EOVERFLOW;
		reserve = 0;
		if (load_relaxed(&s->flags) & KSYNC_SEM_STARVING)
			reserve = min_u32(min_u32(n, load_relaxed(&s->waiters)),
					  KSYNC_SEM_RESERVED_MAX - RESERVED(v));
	} while (!seq_cas(&s->word, &v, v + (n - reserve) + reserve * R_ONE));
	TEST_POINT("sem.release.added", s);
	waiters = seq_load(&s->waiters);
	if (waiters)
		woken = wake_waiters(s, min_u32(n, waiters));
	TEST_POINT("sem.release.woke", s);
	if (reserve > woken)
		unreserve(s, reserve - woken);
	return 0;
}

/* A woken waiter leaves without taking: give back what its wake was for. */
static void pass_on(struct ksync_sem *s)
{
	uint32_t v = load_relaxed(&s->word);

	while (RESERVED(v) && !seq_cas(&s->word, &v, v - R_ONE + 1))
		;
	if (seq_load(&s->waiters) && FREE(seq_load(&s->word)))
		wake_waiters(s, 1);
}

/* A woken waiter lost to new arrivals: after too long, ask for hand-offs. */
static void note_lost(struct ksync_sem *s, int64_t waited_ns)
{
	if (waited_ns >= KSYNC_SEM_STARVE_NS && !(load_relaxed(&s->flags) & KSYNC_SEM_STARVING))
		__atomic_fetch_or(&s->flags, KSYNC_SEM_STARVING, __ATOMIC_RELAXED);
}

/* A woken waiter was served: within the bound, barging may resume. */
static void note_served(struct ksync_sem *s, int64_t waited_ns)
{
	if (waited_ns < KSYNC_SEM_STARVE_NS && (load_relaxed(&s->flags) & KSYNC_SEM_STARVING))
		__atomic_fetch_and(&s->flags, ~KSYNC_SEM_STARVING, __ATOMIC_RELAXED);
}

KSYNC_API int ksync_sem_acquire_until(struct ksync_sem *s, clockid_t clock,
				      const struct timespec *deadline)
{
	uint32_t me, park;
	int64_t started;
	bool woken = false;	/* the kernel woke us, so we are not counted */
	int r = ksync_check_deadline(clock, deadline);

	if (unlikely(r))
		return r;
	if (likely(take(s, false, &park)))
		return 0;
	me = ksync_self_tid();
	started = ksync_mono_ns();
	trace_wait_begin(s, KSYNC_KIND_SEM, KSYNC_WORLD_THREAD, me);
	announce(s);
	TEST_POINT("sem.wait.announced", s);
	for (;;) {
		if (take(s, woken, &park)) {
			if (woken)
				note_served(s, ksync_mono_ns() - started);
			else
				leave(s);
			r = 0;
			break;
		}
		if (woken) {
			/* Lost the permit we were woken for: count ourselves
			 * again before reading the word again. */
			note_lost(s, ksync_mono_ns() - started);
			announce(s);
			woken = false;
			continue;
		}
		TEST_POINT("sem.wait.park", s);
		r = wait_word(&s->word, fflags(s), park, clock, deadline);
		if (r == 0) {
			woken = true;
			TEST_POINT("sem.wait.woken", s);
		} else if (r != -EAGAIN && r != -EINTR) {
			leave(s);	/* timed out or failed: not woken, holds nothing */
			break;
		}
	}
	trace_wait_end(s, KSYNC_KIND_SEM, KSYNC_WORLD_THREAD, me, r);
	return r;
}

KSYNC_API int ksync_sem_acquire(struct ksync_sem *s)
{
	return ksync_sem_acquire_until(s, CLOCK_MONOTONIC, NULL);
}

/*
 * Async ops: the same steps as a thread, spread over CQEs. The op is counted
 * in `waiters` while its family state says so (COUNTED); a wake uncounts it.
 */
#define COUNTED(op) (op_state(op)->family[0])

static int sem_attempt(struct ksync_op *op, bool woken, struct ksync_park *where)
{
	uint32_t *park = &where->value;
	struct ksync_sem *s = op_prim(op);
	int64_t started = op_state(op)->started_ns;
	int64_t waited = started ? ksync_mono_ns() - started : 0;

	if (woken) {
		COUNTED(op) = 0;
		TEST_POINT("sem.op.woken", s);
		if (take(s, true, park)) {
			note_served(s, waited);
			return 1;
		}
		note_lost(s, waited);
	} else if (!COUNTED(op) && take(s, false, park)) {
		return 1;
	}
	if (!COUNTED(op)) {
		announce(s);
		COUNTED(op) = 1;
	}
	if (!take(s, false, park))
		return 0;
	leave(s);
	COUNTED(op) = 0;
	return 1;
}

static void sem_abandon(struct ksync_op *op, bool woken)
{
	if (woken)
		pass_on(op_prim(op));	/* the waker uncounted it */
	else if (COUNTED(op))
		leave(op_prim(op));
	COUNTED(op) = 0;
}

static const struct ksync_waitable sem_waitable = {
	.kind = KSYNC_KIND_SEM,
	.attempt = sem_attempt,
	.abandon = sem_abandon,
};

KSYNC_API void ksync_op_sem(struct ksync_op *op, struct ksync_sem *sem)
{
	ksync_op_prepare(op, &sem_waitable, sem, 0, fflags(sem));
}
