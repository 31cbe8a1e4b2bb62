/* SPDX-License-Identifier: MIT */
/*
 * Semaphore (semantics in ksync/sem.h, word layout in ksync/word.h).
 * The protocol below is modelled in tests/model/sem.pml.
 *
 * Taking. The word holds F free permits, R permits reserved for woken
 * waiters, HEAD and CLOSED. A new arrival takes only from F; a waiter the
 * kernel has just woken for one permit takes from R first, then from F.
 * Either is one CAS on the word, so the check and the take cannot be
 * separated by other takes and releases.
 *
 * Counting waiters. `waiters` counts the waiters that announced themselves
 * and have not been woken: a waiter increments it before it reads the word,
 * and whoever wakes waiters subtracts the number the kernel reports woken.
 * A woken waiter that has to park again announces itself again first. So a
 * release never wakes on behalf of a waiter that is already awake (an async
 * task whose wake CQE is not reaped yet is not counted).
 *
 * No lost wake. Whatever adds to F (release, unreserve, pass_on, a head
 * leaving) changes the word first and then reads `waiters`; a waiter
 * announces first and then reads the word (all seq_cst). So the adder sees
 * the waiter and wakes it, or the waiter sees the permit, or the kernel's
 * compare finds the word changed and the wait returns at once. While HEAD
 * is set only the head can use new permits, so adders wake the head alone
 * (its own futex bitset) once F covers its need, and nobody before.
 *
 * Several permits at once. A counted waiter for n > 1 permits that cannot
 * have them becomes the head if there is none: it publishes its need, sets
 * HEAD, and from then on nobody else takes from F (woken waiters still take
 * the reservations made for them). Its take of n clears HEAD in the same
 * CAS; a head that leaves clears HEAD. Either way it then wakes the waiters
 * HEAD held back if permits are free. So a large request is not starved by
 * a stream of small ones.
 *
 * Bounded unfairness. A woken waiter that keeps losing to new arrivals for
 * KSYNC_SEM_STARVE_NS sets STARVING. Then a release puts its permits, up to
 * the number of waiters, in R and wakes as many waiters, so new arrivals
 * cannot take them. Reservations that no waiter was woken for go back to F
 * at once (unreserve); a woken waiter that leaves without taking (its
 * timeout or cancel lost the race to the wake), or that wants several
 * permits, moves one back and wakes someone in its place (pass_on). A
 * waiter served within the bound clears STARVING.
 *
 * Closing sets CLOSED and wakes everyone; every acquire then fails.
 */
#include "annotate.h"
#include "engine.h"
#include "ksync/sem.h"

#include <limits.h>

#define FREE(v)		((v) & KSYNC_SEM_FREE_MASK)
#define RESERVED(v)	(((v) & KSYNC_SEM_RESERVED_MASK) >> KSYNC_SEM_RESERVED_SHIFT)
#define R_ONE		KSYNC_SEM_RESERVED_ONE
#define HEAD		KSYNC_SEM_HEAD
#define CLOSED		KSYNC_SEM_CLOSED

#define seq_load(p)		__atomic_load_n((p), __ATOMIC_SEQ_CST)
#define seq_cas(p, old, new)	__atomic_compare_exchange_n((p), (old), (new), false, \
							    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)

/* A waiter's own state: on a thread's stack, or in an op's family words. */
struct waiter {
	uint32_t n;	/* permits wanted */
	bool counted;	/* in s->waiters */
	bool woken;	/* the kernel woke it since its last attempt */
	bool head;	/* it set HEAD */
	bool task;	/* an async op: slow to act on a wake */
};

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

static uint32_t limit(const struct ksync_sem *s)
{
	uint32_t max = load_relaxed(&s->max);

	return max ? max : KSYNC_SEM_VALUE_MAX;
}

KSYNC_API int ksync_sem_destroy(struct ksync_sem *s)
{
	uint32_t v = load_acquire(&s->word);

	return load_acquire(&s->waiters) || RESERVED(v) || (v & HEAD) ? -EBUSY : 0;
}

KSYNC_API uint32_t ksync_sem_value(const struct ksync_sem *s)
{
	uint32_t v = load_relaxed(&s->word);

	return FREE(v) + RESERVED(v);
}

KSYNC_API bool ksync_sem_is_closed(const struct ksync_sem *s)
{
	return load_acquire(&s->word) & CLOSED;
}

static void announce(struct ksync_sem *s)
{
	__atomic_fetch_add(&s->waiters, 1, __ATOMIC_SEQ_CST);
}

static void leave(struct ksync_sem *s)
{
	__atomic_fetch_sub(&s->waiters, 1, __ATOMIC_SEQ_CST);
}

/* Wake up to @nr waiters whose bitset meets @mask; uncount those woken. */
static uint32_t wake_waiters(struct ksync_sem *s, uint32_t nr, uint32_t mask)
{
	int woken;

	woken = ksync_wake_traced(&s->word, fflags(s), mask, s, KSYNC_KIND_SEM,
				  (int)min_u32(nr, INT_MAX));
	if (woken <= 0)
		return 0;
	__atomic_fetch_sub(&s->waiters, (uint32_t)woken, __ATOMIC_SEQ_CST);
	return (uint32_t)woken;
}

static uint32_t need(const struct ksync_sem *s)
{
	return (seq_load(&s->flags) & KSYNC_SEM_NEED_MASK) >> KSYNC_SEM_NEED_SHIFT;
}

/*
 * @added permits went into F, which now reads as @v: wake whoever can use
 * them. With a head, that is the head alone once F covers its need.
 */
static uint32_t wake_for(struct ksync_sem *s, uint32_t v, uint32_t added)
{
	uint32_t waiters = seq_load(&s->waiters);

	if (!waiters || !added)
		return 0;
	if (v & HEAD)
		return FREE(v) >= need(s) ? wake_waiters(s, 1, KSYNC_SEM_MASK_HEAD) : 0;
	return wake_waiters(s, min_u32(added, waiters), KSYNC_FUTEX_MASK_ANY);
}

/* Up to @n reservations nobody was woken for become free permits. */
static void unreserve(struct ksync_sem *s, uint32_t n)
{
	uint32_t v = load_relaxed(&s->word), d;

	do {
		d = min_u32(n, RESERVED(v));
		if (!d)
			return;	/* woken waiters took them meanwhile */
	} while (!seq_cas(&s->word, &v, v - d * R_ONE + d));
	wake_for(s, v - d * R_ONE + d, d);
}

/* A woken waiter will not use its wake: give back what it was for. */
static void pass_on(struct ksync_sem *s)
{
	uint32_t v = load_relaxed(&s->word);

	while (RESERVED(v) && !seq_cas(&s->word, &v, v - R_ONE + 1))
		;
	v = seq_load(&s->word);
	wake_for(s, v, FREE(v) ? 1 : 0);
}

/* The head took its permits (@v: the word after) or left: others may go. */
static void head_gone(struct ksync_sem *s, uint32_t v)
{
	wake_for(s, v, FREE(v));
}

static void drop_head(struct ksync_sem *s)
{
	uint32_t v = load_relaxed(&s->word);

	while (!seq_cas(&s->word, &v, v & ~HEAD))
		;
	head_gone(s, v & ~HEAD);
}

static void set_need(struct ksync_sem *s, uint32_t n)
{
	uint32_t f = load_relaxed(&s->flags);

	while (!seq_cas(&s->flags, &f, (f & ~KSYNC_SEM_NEED_MASK) | n << KSYNC_SEM_NEED_SHIFT))
		;
}

/*
 * One try to take w->n permits. Returns 1 (taken), 0 (*park and *mask say
 * where to sleep) or -ESHUTDOWN. @woken: the kernel just woke the waiter.
 */
static int take(struct ksync_sem *s, struct waiter *w, bool woken, uint32_t *park, uint32_t *mask)
{
	uint32_t v = seq_load(&s->word), nv;

	for (;;) {
		if (v & CLOSED)
			return -ESHUTDOWN;
		if (woken && w->n == 1 && RESERVED(v)) {
			nv = v - R_ONE;
		} else if (w->head) {
			if (FREE(v) < w->n)
				goto wait_head;
			nv = (v - w->n) & ~HEAD;
		} else if (v & HEAD) {
			goto wait;
		} else if (FREE(v) >= w->n) {
			nv = v - w->n;
		} else if (w->n > 1 && w->counted) {
			/* First in line: others wait until we have ours. A
			 * release that saw HEAD before our need was published
			 * may not have woken us, so read the word again after. */
			if (!seq_cas(&s->word, &v, v | HEAD))
				continue;
			w->head = true;
			set_need(s, w->n);
			v = seq_load(&s->word);
			continue;
		} else {
			goto wait;
		}
		TEST_POINT("sem.take.decided", s);
		if (cas_acquire(&s->word, &v, nv))
			break;
	}
	if (w->head) {
		w->head = false;
		head_gone(s, nv);
	}
	annotate_acquire(s);
	return 1;
wait:
	*park = v;
	*mask = KSYNC_SEM_MASK_QUEUE;
	return 0;
wait_head:
	*park = v;
	*mask = KSYNC_SEM_MASK_HEAD;
	return 0;
}

/* The waiter gives up (timeout, cancel, close, error). */
static void give_up(struct ksync_sem *s, struct waiter *w)
{
	if (w->counted)
		leave(s);
	w->counted = false;
	if (w->head)
		drop_head(s);
	w->head = false;
}

/*
 * A woken waiter lost to new arrivals: after too long, ask for hand-offs.
 * A task asks at once: between its wake and its attempt its loop must reap
 * the CQE, a window in which a spinning thread always wins, so without
 * hand-offs tasks would lose every race to threads.
 */
static void note_lost(struct ksync_sem *s, const struct waiter *w, int64_t waited_ns)
{
	if ((w->task || waited_ns >= KSYNC_SEM_STARVE_NS) &&
	    !(load_relaxed(&s->flags) & KSYNC_SEM_STARVING))
		__atomic_fetch_or(&s->flags, KSYNC_SEM_STARVING, __ATOMIC_RELAXED);
}

/* A woken waiter was served: within the bound, barging may resume. */
static void note_served(struct ksync_sem *s, int64_t waited_ns)
{
	if (waited_ns < KSYNC_SEM_STARVE_NS && (load_relaxed(&s->flags) & KSYNC_SEM_STARVING))
		__atomic_fetch_and(&s->flags, ~KSYNC_SEM_STARVING, __ATOMIC_RELAXED);
}

/*
 * One attempt of a waiter, thread or op: take, or get counted and say where
 * to sleep. Returns 1 (taken), 0 (sleep on *park with *mask) or an error
 * (then the waiter holds and counts nothing).
 */
static int attempt(struct ksync_sem *s, struct waiter *w, int64_t waited, uint32_t *park,
		   uint32_t *mask)
{
	bool woken = w->woken;
	int r;

	w->woken = false;
	if (woken && w->n > 1)
		pass_on(s);	/* a reservation may have come with the wake */
	for (;;) {
		r = take(s, w, woken && w->n == 1, park, mask);
		if (r == 1) {
			if (w->counted)
				leave(s);
			w->counted = false;
			if (woken)
				note_served(s, waited);
			return 1;
		}
		if (r < 0) {
			give_up(s, w);
			return r;
		}
		if (woken) {
			note_lost(s, w, waited);
			woken = false;
		}
		if (w->counted)
			return 0;
		/* Count ourselves, then read the word again. */
		announce(s);
		w->counted = true;
		TEST_POINT("sem.wait.announced", s);
	}
}

KSYNC_API int ksync_sem_try_many(struct ksync_sem *s, uint32_t n)
{
	struct waiter w = { .n = n };
	uint32_t park, mask;
	int r;

	if (n == 0 || n > limit(s))
		return -EINVAL;
	r = take(s, &w, false, &park, &mask);
	return r == 1 ? 0 : r == 0 ? -EAGAIN : r;
}

KSYNC_API int ksync_sem_try(struct ksync_sem *s)
{
	return ksync_sem_try_many(s, 1);
}

KSYNC_API int ksync_sem_release(struct ksync_sem *s, uint32_t n)
{
	uint32_t max = limit(s), v, nv, reserve, woken = 0;

	if (n == 0)
		return -EINVAL;
	v = load_relaxed(&s->word);
	do {
		if (n > max || FREE(v) + RESERVED(v) > max - n)
			return -EOVERFLOW;
		annotate_release(s);
		reserve = 0;
		if (!(v & HEAD) && (load_relaxed(&s->flags) & KSYNC_SEM_STARVING))
			reserve = min_u32(min_u32(n, load_relaxed(&s->waiters)),
					  KSYNC_SEM_RESERVED_MAX - RESERVED(v));
		nv = v + (n - reserve) + reserve * R_ONE;
	} while (!seq_cas(&s->word, &v, nv));
	TEST_POINT("sem.release.added", s);
	if (reserve) {
		uint32_t waiters = seq_load(&s->waiters);

		if (waiters)
			woken = wake_waiters(s, min_u32(n, waiters), KSYNC_FUTEX_MASK_ANY);
		TEST_POINT("sem.release.woke", s);
		if (reserve > woken)
			unreserve(s, reserve - woken);
		return 0;
	}
	wake_for(s, nv, n);
	TEST_POINT("sem.release.woke", s);
	return 0;
}

KSYNC_API int ksync_sem_close(struct ksync_sem *s)
{
	uint32_t v = load_relaxed(&s->word);

	do {
		if (v & CLOSED)
			return -EALREADY;
	} while (!seq_cas(&s->word, &v, v | CLOSED));
	if (seq_load(&s->waiters))
		wake_waiters(s, UINT32_MAX, KSYNC_FUTEX_MASK_ANY);
	return 0;
}

KSYNC_API int ksync_sem_acquire_many_until(struct ksync_sem *s, uint32_t n, clockid_t clock,
					   const struct timespec *deadline)
{
	struct waiter w = { .n = n };
	uint32_t me, park, mask;
	int64_t started;
	int r = ksync_check_deadline(clock, deadline);

	if (unlikely(r))
		return r;
	if (n == 0 || n > limit(s))
		return -EINVAL;
	r = attempt(s, &w, 0, &park, &mask);
	if (likely(r))
		return r == 1 ? 0 : r;
	me = ksync_self_tid();
	started = ksync_mono_ns();
	trace_wait_begin(s, KSYNC_KIND_SEM, KSYNC_WORLD_THREAD, me);
	for (;;) {
		TEST_POINT("sem.wait.park", s);
		r = ksync_futex_wait_flags(&s->word, park, mask, fflags(s), clock, deadline);
		if (r == 0) {
			w.woken = true;	/* and the waker uncounted us */
			w.counted = false;
			TEST_POINT("sem.wait.woken", s);
		} else if (r != -EAGAIN && r != -EINTR) {
			give_up(s, &w);	/* timed out or failed: not woken, holds nothing */
			break;
		}
		r = attempt(s, &w, ksync_mono_ns() - started, &park, &mask);
		if (r) {
			r = r == 1 ? 0 : r;
			break;
		}
	}
	trace_wait_end(s, KSYNC_KIND_SEM, KSYNC_WORLD_THREAD, me, r);
	return r;
}

KSYNC_API int ksync_sem_acquire_until(struct ksync_sem *s, clockid_t clock,
				      const struct timespec *deadline)
{
	return ksync_sem_acquire_many_until(s, 1, clock, deadline);
}

KSYNC_API int ksync_sem_acquire_many(struct ksync_sem *s, uint32_t n)
{
	return ksync_sem_acquire_many_until(s, n, CLOCK_MONOTONIC, NULL);
}

KSYNC_API int ksync_sem_acquire(struct ksync_sem *s)
{
	uint32_t v = load_relaxed(&s->word);

	/* The uncontended case in a few instructions. */
	if (likely(FREE(v) && !(v & (HEAD | CLOSED)) && cas_acquire(&s->word, &v, v - 1)) &&
	    annotate_acquired(s))
		return 0;
	return ksync_sem_acquire_many_until(s, 1, CLOCK_MONOTONIC, NULL);
}

/*
 * Async ops: the same attempts as a thread, spread over CQEs. The waiter
 * state lives in the op's family words: [0] n, [1] counted | head << 1.
 */
static struct waiter op_waiter(struct ksync_op *op, bool woken)
{
	uint64_t *f = op_state(op)->family;

	return (struct waiter){
		.n = (uint32_t)f[0],
		.counted = (f[1] & 1) && !woken,	/* a wake uncounts */
		.woken = woken,
		.head = f[1] & 2,
		.task = true,
	};
}

static void op_keep(struct ksync_op *op, const struct waiter *w)
{
	op_state(op)->family[1] = (uint64_t)w->counted | (uint64_t)w->head << 1;
}

static int sem_attempt(struct ksync_op *op, bool woken, struct ksync_park *park)
{
	struct ksync_sem *s = op_prim(op);
	struct waiter w = op_waiter(op, woken);
	int64_t started = op_state(op)->started_ns;
	int r;

	if (woken)
		TEST_POINT("sem.op.woken", s);
	r = attempt(s, &w, started ? ksync_mono_ns() - started : 0, &park->value, &park->mask);
	op_keep(op, &w);
	return r;
}

static void sem_abandon(struct ksync_op *op, bool woken)
{
	struct ksync_sem *s = op_prim(op);
	struct waiter w = op_waiter(op, woken);

	give_up(s, &w);
	if (woken)
		pass_on(s);
	op_keep(op, &w);
}

static const struct ksync_waitable sem_waitable = {
	.kind = KSYNC_KIND_SEM,
	.attempt = sem_attempt,
	.abandon = sem_abandon,
};

KSYNC_API int ksync_op_sem_many(struct ksync_op *op, struct ksync_sem *sem, uint32_t n)
{
	if (n == 0 || n > limit(sem))
		return -EINVAL;
	ksync_op_prepare(op, &sem_waitable, sem, 0, fflags(sem));
	op_state(op)->family[0] = n;
	return 0;
}

KSYNC_API void ksync_op_sem(struct ksync_op *op, struct ksync_sem *sem)
{
	ksync_op_prepare(op, &sem_waitable, sem, 0, fflags(sem));
	op_state(op)->family[0] = 1;
}
