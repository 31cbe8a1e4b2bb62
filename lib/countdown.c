/* SPDX-License-Identifier: MIT */
/*
 * CountdownEvent and Latch: waiting for zero (semantics in
 * ksync/countdown.h, layout in ksync/word.h). Modelled in
 * tests/model/countdown.pml.
 *
 * One 64-bit state, changed only as a whole: the futex word (generation,
 * WAITERS) in its low half, the count in its high half. A change that
 * brings the count to zero (down, count_down, clear) advances the
 * generation and drops WAITERS in the same CAS, then, if WAITERS was set,
 * wakes everyone with one syscall. A waiter remembers the generation it
 * saw at arrival (with the count above zero) and is released as soon as
 * the generation differs: up() right after zero does not hold it back.
 *
 * No lost wake: a waiter parks only on a futex word with WAITERS, which it
 * put there by a CAS on the whole state; the CAS that reaches zero either
 * comes after it (sees WAITERS, wakes after changing the word, so a wait
 * queued before the wake is woken and one queued after finds the word
 * changed) or before it (the waiter's CAS fails and it sees the new
 * generation). Counting up and down without reaching zero leaves the futex
 * word alone, so parked waiters (and late io_uring waits) are not
 * disturbed by it. The Latch is the same protocol without up().
 */
#include "engine.h"
#include "annotate.h"
#include "ksync/countdown.h"

#include <limits.h>

#define W	KSYNC_COUNTDOWN_WAITERS
#define ONE	((uint64_t)1 << 32)	/* one in the count */

static inline uint32_t futex_half(uint64_t s)
{
	return (uint32_t)s;
}

static inline uint32_t count_of(uint64_t s)
{
	return (uint32_t)(s >> 32);
}

static inline uint32_t gen_of(uint64_t s)
{
	return futex_half(s) & ~W;
}

#define cas_acq(p, old, new) \
	__atomic_compare_exchange_n((p), (old), (new), false, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)

/* The parts both types share: the state, its futex flags, the kind. */
struct zero {
	uint64_t *state;
	void *prim;
	unsigned long size;	/* of the primitive, for the race detectors */
	uint32_t fflags;
	uint8_t kind;
};

static struct zero cd_zero(struct ksync_countdown *cd)
{
	return (struct zero){ &cd->state, cd, sizeof(*cd), futex_flags_for(load_relaxed(&cd->flags)),
			      KSYNC_KIND_COUNTDOWN };
}

static struct zero latch_zero(struct ksync_latch *l)
{
	return (struct zero){ &l->state, l, sizeof(*l), futex_flags_for(load_relaxed(&l->flags)),
			      KSYNC_KIND_LATCH };
}

/* Race-detector edges (annotate.h): a down publishes, zero is acquired. */
static inline void zero_release(const struct zero *z)
{
	if (__builtin_expect(ksync_annotating, 0))
		ksync_annotate_release(z->prim, z->size);
}

static inline bool zero_acquired(const struct zero *z)
{
	if (__builtin_expect(ksync_annotating, 0))
		ksync_annotate_acquire(z->prim, z->size);
	return true;
}

/* The state after reaching zero from @s: next generation, no waiters. */
static inline uint64_t zeroed(uint64_t s)
{
	return (uint32_t)(gen_of(s) + KSYNC_COUNTDOWN_GEN_ONE);
}

/* Reaching zero from @old: wake everyone if someone may be parked. */
static void release_all(const struct zero *z, uint64_t old)
{
	if (futex_half(old) & W)
		wake_traced(state_futex_word(z->state), z->fflags, z->prim, z->kind, INT_MAX);
}

/* Take @n (>= 1) from the count. 1: reached zero, 0: not, -EINVAL. */
static int down_n(const struct zero *z, uint32_t n)
{
	uint64_t s = load_relaxed(z->state), ns;

	do {
		if (count_of(s) < n)
			return -EINVAL;
		ns = count_of(s) == n ? zeroed(s) : s - n * ONE;
		zero_release(z);
	} while (!cas_acq_rel(z->state, &s, ns));
	if (count_of(ns))
		return 0;
	TEST_POINT("countdown.zero", z->prim);
	release_all(z, s);
	return 1;
}

/* Is the count zero? Acquire, for what the downs before it wrote. */
static bool at_zero(const struct zero *z)
{
	return count_of(load_acquire(z->state)) == 0 && zero_acquired(z);
}

/*
 * A waiter of generation @g is about to park on *s: make sure WAITERS is
 * set. Returns true if zero came meanwhile (the generation moved).
 */
static bool announce(const struct zero *z, uint32_t g, uint64_t *s)
{
	while (!(futex_half(*s) & W)) {
		if (cas_acq(z->state, s, *s | W)) {
			*s |= W;
			break;
		}
		if (gen_of(*s) != g)
			return true;
	}
	return false;
}

static int wait_zero(const struct zero *z, clockid_t clock, const struct timespec *deadline)
{
	uint64_t s;
	uint32_t g, me;
	int r = ksync_check_deadline(clock, deadline);

	if (r)
		return r;
	s = load_acquire(z->state);
	if (count_of(s) == 0 && zero_acquired(z))
		return 0;
	g = gen_of(s);
	me = ksync_self_tid();
	trace_wait_begin(z->prim, z->kind, KSYNC_WORLD_THREAD, me);
	for (;;) {
		if (announce(z, g, &s)) {
			r = 0;
			break;
		}
		TEST_POINT("countdown.wait.park", z->prim);
		r = wait_word(state_futex_word(z->state), z->fflags, futex_half(s), clock, deadline);
		s = load_acquire(z->state);
		if (gen_of(s) != g) {
			r = 0;	/* zero since we arrived, even if up() followed */
			break;
		}
		/* Only a wake, a changed word or a signal is retried. */
		if (r != 0 && r != -EAGAIN && r != -EINTR)
			break;
	}
	if (r == 0)
		zero_acquired(z);
	trace_wait_end(z->prim, z->kind, KSYNC_WORLD_THREAD, me, r);
	return r;
}

/* ---- CountdownEvent ----------------------------------------------------- */

KSYNC_API int ksync_countdown_init(struct ksync_countdown *cd, uint32_t value, unsigned flags)
{
	if (flags & ~KSYNC_SHARED)
		return -EINVAL;
	store_relaxed(&cd->state, (uint64_t)value << 32);
	store_relaxed(&cd->flags, flags);
	store_relaxed(&cd->reserved, 0);
	return 0;
}

KSYNC_API int ksync_countdown_up(struct ksync_countdown *cd, uint32_t n)
{
	uint64_t s = load_relaxed(&cd->state);

	if (n == 0)
		return -EINVAL;
	do {
		if (count_of(s) > KSYNC_COUNTDOWN_MAX - n)
			return -EOVERFLOW;
	} while (!cas_acq_rel(&cd->state, &s, s + n * ONE));
	return 0;
}

KSYNC_API int ksync_countdown_down(struct ksync_countdown *cd)
{
	struct zero z = cd_zero(cd);

	return down_n(&z, 1);
}

KSYNC_API int ksync_countdown_clear(struct ksync_countdown *cd)
{
	struct zero z = cd_zero(cd);
	uint64_t s = load_relaxed(&cd->state);

	do {
		if (count_of(s) == 0)
			return 0;
		zero_release(&z);
	} while (!cas_acq_rel(&cd->state, &s, zeroed(s)));
	release_all(&z, s);
	return 1;
}

KSYNC_API uint32_t ksync_countdown_value(const struct ksync_countdown *cd)
{
	return count_of(load_relaxed(&cd->state));
}

KSYNC_API int ksync_countdown_try(const struct ksync_countdown *cd)
{
	struct zero z = cd_zero((struct ksync_countdown *)cd);

	return at_zero(&z) ? 0 : -EAGAIN;
}

KSYNC_API int ksync_countdown_wait_until(struct ksync_countdown *cd, clockid_t clock,
					 const struct timespec *deadline)
{
	struct zero z = cd_zero(cd);

	return wait_zero(&z, clock, deadline);
}

KSYNC_API int ksync_countdown_wait(struct ksync_countdown *cd)
{
	return ksync_countdown_wait_until(cd, CLOCK_MONOTONIC, NULL);
}

/* ---- Latch -------------------------------------------------------------- */

KSYNC_API int ksync_latch_init(struct ksync_latch *l, uint32_t count, unsigned flags)
{
	if (flags & ~KSYNC_SHARED)
		return -EINVAL;
	store_relaxed(&l->state, (uint64_t)count << 32);
	store_relaxed(&l->flags, flags);
	store_relaxed(&l->reserved, 0);
	return 0;
}

KSYNC_API int ksync_latch_count_down(struct ksync_latch *l, uint32_t n)
{
	struct zero z = latch_zero(l);

	if (n == 0)
		return -EINVAL;
	return down_n(&z, n);
}

KSYNC_API uint32_t ksync_latch_value(const struct ksync_latch *l)
{
	return count_of(load_relaxed(&l->state));
}

KSYNC_API int ksync_latch_try(const struct ksync_latch *l)
{
	struct zero z = latch_zero((struct ksync_latch *)l);

	return at_zero(&z) ? 0 : -EAGAIN;
}

KSYNC_API int ksync_latch_wait_until(struct ksync_latch *l, clockid_t clock,
				     const struct timespec *deadline)
{
	struct zero z = latch_zero(l);

	return wait_zero(&z, clock, deadline);
}

KSYNC_API int ksync_latch_wait(struct ksync_latch *l)
{
	return ksync_latch_wait_until(l, CLOCK_MONOTONIC, NULL);
}

KSYNC_API int ksync_latch_arrive_and_wait_until(struct ksync_latch *l, uint32_t n,
						clockid_t clock, const struct timespec *deadline)
{
	int r = ksync_check_deadline(clock, deadline);

	if (r)
		return r;	/* before counting down: a bad call changes nothing */
	r = ksync_latch_count_down(l, n);
	if (r < 0)
		return r;
	return ksync_latch_wait_until(l, clock, deadline);
}

KSYNC_API int ksync_latch_arrive_and_wait(struct ksync_latch *l, uint32_t n)
{
	return ksync_latch_arrive_and_wait_until(l, n, CLOCK_MONOTONIC, NULL);
}

/* ---- async ops ---------------------------------------------------------- */

/* The generation seen at the first attempt (started_ns == 0). */
#define OP_GEN(op) (op_state(op)->family[0])

static int zero_attempt(const struct zero *z, struct ksync_op *op, struct ksync_park *park)
{
	uint64_t s = load_acquire(z->state);

	if (!op_state(op)->started_ns) {
		if (count_of(s) == 0)
			return zero_acquired(z);
		OP_GEN(op) = gen_of(s);
	} else if (gen_of(s) != OP_GEN(op)) {
		return zero_acquired(z);
	}
	if (announce(z, (uint32_t)OP_GEN(op), &s))
		return zero_acquired(z);
	park->word = state_futex_word(z->state);
	park->value = futex_half(s);
	return 0;
}

static int countdown_attempt(struct ksync_op *op, bool woken, struct ksync_park *park)
{
	struct zero z = cd_zero(op_prim(op));

	(void)woken;	/* a wake is a broadcast: nothing to hand on */
	return zero_attempt(&z, op, park);
}

static int latch_attempt(struct ksync_op *op, bool woken, struct ksync_park *park)
{
	struct zero z = latch_zero(op_prim(op));

	(void)woken;
	return zero_attempt(&z, op, park);
}

static const struct ksync_waitable countdown_waitable = {
	.kind = KSYNC_KIND_COUNTDOWN,
	.attempt = countdown_attempt,
};

static const struct ksync_waitable latch_waitable = {
	.kind = KSYNC_KIND_LATCH,
	.attempt = latch_attempt,
};

KSYNC_API void ksync_op_countdown(struct ksync_op *op, struct ksync_countdown *cd)
{
	ksync_op_prepare(op, &countdown_waitable, cd, 0,
			 futex_flags_for(load_relaxed(&cd->flags)));
}

KSYNC_API void ksync_op_latch(struct ksync_op *op, struct ksync_latch *l)
{
	ksync_op_prepare(op, &latch_waitable, l, 0, futex_flags_for(load_relaxed(&l->flags)));
}
