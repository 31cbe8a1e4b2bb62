/* SPDX-License-Identifier: MIT */
/*
 * Barrier and RBarrier (semantics in ksync/barrier.h, layout in
 * ksync/word.h). Modelled in tests/model/barrier.pml.
 *
 * One 64-bit state, changed only as a whole: the futex word (generation,
 * RESETTING, BROKEN) in its low half; the count and the generation's high
 * bits in its high half. Waiters sleep on the futex word, which arrivals do
 * not change: only the end of a cycle, a break and a reset do.
 *
 * Arrive: CAS count + 1, remembering the generation g and the index
 * (count). The arrival that makes count == parties instead completes the
 * cycle: generation + 1, count 0, and one wake for everyone.
 *
 * Outcome of a waiter of generation g, read from the state: the
 * generation moved -> success; BROKEN with generation g -> broken. While
 * broken, count is the number of waiters of the broken cycle that have not
 * returned; each one uncounts itself (leave). The generation cannot move
 * while any of them is still inside: only completing a cycle moves it
 * (impossible while broken) and making the barrier new after a reset,
 * which waits for count to drop to 0 (RESETTING: the last one to leave does
 * it). So "the generation moved" always means "my cycle completed", however
 * late a waiter looks.
 *
 * Giving up (timeout, cancel, kernel error): one CAS decides. The
 * generation moved -> success after all; BROKEN -> leave, -EPIPE; else set
 * BROKEN and uncount itself in the same CAS (then wake the others) and
 * report its own reason. A cycle therefore either completes or breaks.
 *
 * No lost wake: completing and breaking change the futex word, then wake
 * all; a waiter parks on the word value of its arrival, so a wait queued
 * after that change (an io_uring SQE submitted late) finds it changed.
 * Wakes are broadcasts: a consumed wake owes nobody anything, and any
 * wake (or spurious return) only makes the waiter look at the state again.
 */
#include "engine.h"
#include "annotate.h"
#include "ksync/barrier.h"

#include <limits.h>

#define BROKEN		KSYNC_BARRIER_BROKEN
#define RESETTING	KSYNC_BARRIER_RESETTING
#define ONE		((uint64_t)1 << 32)	/* one in the count */
#define GEN_LO_BITS	30
#define GEN_MASK	(((uint64_t)1 << 42) - 1)

static inline uint32_t futex_half(uint64_t s)
{
	return (uint32_t)s;
}

static inline uint32_t count_of(uint64_t s)
{
	return (uint32_t)(s >> 32) & KSYNC_BARRIER_COUNT_MASK;
}

static inline uint64_t gen_of(uint64_t s)
{
	return (uint64_t)(futex_half(s) >> 2) |
	       (uint64_t)((uint32_t)(s >> 32) >> KSYNC_BARRIER_GEN_HI_SHIFT) << GEN_LO_BITS;
}

/* A new cycle: generation @gen, not broken, nobody arrived. */
static inline uint64_t fresh(uint64_t gen)
{
	uint32_t lo = (uint32_t)(gen << 2);
	uint32_t hi = (uint32_t)((gen & GEN_MASK) >> GEN_LO_BITS) << KSYNC_BARRIER_GEN_HI_SHIFT;

	return (uint64_t)hi << 32 | lo;
}

/* What both barrier types share. */
struct bar {
	uint64_t *state;
	void *prim;
	unsigned long size;	/* of the primitive, for the race detectors */
	uint32_t parties;
	uint32_t fflags;
	uint8_t kind;
};

static inline struct bar as_bar(uint64_t *state, void *prim, unsigned long size, uint32_t parties,
				uint32_t flags, uint8_t kind)
{
	return (struct bar){ state, prim, size, parties, futex_flags_for(flags), kind };
}

#define BAR(b)  as_bar(&(b)->state, (b), sizeof(*(b)), load_relaxed(&(b)->parties), \
		       load_relaxed(&(b)->flags), KSYNC_KIND_BARRIER)
#define RBAR(b) as_bar(&(b)->state, (b), sizeof(*(b)), load_relaxed(&(b)->parties), \
		       load_relaxed(&(b)->flags), KSYNC_KIND_RBARRIER)

/* Race-detector edges (annotate.h): an arrival publishes what its thread
 * did; passing the barrier acquires every arrival of the cycle. */
static inline void bar_release(const struct bar *b)
{
	if (__builtin_expect(ksync_annotating, 0))
		ksync_annotate_release(b->prim, b->size);
}

static inline void bar_acquire(const struct bar *b)
{
	if (__builtin_expect(ksync_annotating, 0))
		ksync_annotate_acquire(b->prim, b->size);
}

static void wake_all(const struct bar *b)
{
	wake_traced(state_futex_word(b->state), b->fflags, b->prim, b->kind, INT_MAX);
}

static int init(uint64_t *state, uint32_t *parties_field, uint32_t *flags_field, uint32_t parties,
		unsigned flags)
{
	if (parties == 0 || parties > KSYNC_BARRIER_PARTIES_MAX || (flags & ~KSYNC_SHARED))
		return -EINVAL;
	store_relaxed(state, 0);
	store_relaxed(parties_field, parties);
	store_relaxed(flags_field, flags);
	return 0;
}

/* ---- the protocol ------------------------------------------------------- */

/* One arrival, as a thread or an op remembers it. */
struct arrival {
	uint64_t gen;
	uint32_t index;
	uint32_t park;		/* the futex word value to sleep on */
};

enum { DONE = 1, WAIT, GATED };	/* or a negative errno */

/*
 * Arrive. DONE: this arrival completed the cycle (a->index); WAIT: counted,
 * sleep on a->park until the outcome; GATED: a reset is finishing, sleep on
 * a->park (not counted) and arrive again; or -EPIPE.
 */
static int arrive(const struct bar *b, struct arrival *a)
{
	uint64_t s = load_acquire(b->state), ns;

	for (;;) {
		uint32_t f = futex_half(s), c = count_of(s);

		if (f & BROKEN) {
			if (!(f & RESETTING))
				return -EPIPE;
			a->park = f;
			return GATED;
		}
		a->gen = gen_of(s);
		a->index = c;
		a->park = f;
		ns = c + 1 == b->parties ? fresh(a->gen + 1) : s + ONE;
		bar_release(b);
		if (cas_acq_rel(b->state, &s, ns))
			break;
	}
	if (count_of(ns))
		return WAIT;
	bar_acquire(b);
	TEST_POINT("barrier.completed", b->prim);
	if (a->index)	/* someone waits */
		wake_all(b);
	return DONE;
}

/* A waiter of the broken cycle returns: uncount it; the last one finishes
 * a reset under way. @s: a recent read of the state. */
static void leave(const struct bar *b, uint64_t s)
{
	uint64_t ns;

	do {
		ns = count_of(s) == 1 && (futex_half(s) & RESETTING) ? fresh(gen_of(s) + 1)
								      : s - ONE;
	} while (!cas_acq_rel(b->state, &s, ns));
	if (futex_half(ns) != futex_half(s))	/* made it new: wake the arrivals */
		wake_all(b);
}

/* After a wait: 1 (the cycle completed), -EPIPE (broken; left), 0. */
static int look(const struct bar *b, const struct arrival *a)
{
	uint64_t s = load_acquire(b->state);

	if (gen_of(s) != a->gen) {
		bar_acquire(b);
		return 1;
	}
	if (futex_half(s) & BROKEN) {
		leave(b, s);
		return -EPIPE;
	}
	return 0;
}

/*
 * A counted waiter gives up with @why: the one transition that decides.
 * Returns 1 (its cycle completed first), -EPIPE (broken first; left), or
 * @why (it broke the barrier and left).
 */
static int give_up(const struct bar *b, const struct arrival *a, int why)
{
	uint64_t s = load_acquire(b->state);

	TEST_POINT("barrier.give_up", b->prim);
	for (;;) {
		if (gen_of(s) != a->gen) {
			bar_acquire(b);
			return 1;
		}
		if (futex_half(s) & BROKEN) {
			leave(b, s);
			return -EPIPE;
		}
		if (cas_acq_rel(b->state, &s, (s | BROKEN) - ONE))
			break;
	}
	if (count_of(s) > 1)	/* others wait */
		wake_all(b);
	return why;
}

static int try_complete(const struct bar *b)
{
	uint64_t s = load_acquire(b->state);

	for (;;) {
		uint32_t f = futex_half(s), c = count_of(s);

		if (f & BROKEN)
			return f & RESETTING ? -EAGAIN : -EPIPE;
		if (c + 1 != b->parties)
			return -EAGAIN;
		bar_release(b);
		if (cas_acq_rel(b->state, &s, fresh(gen_of(s) + 1)))
			break;
	}
	bar_acquire(b);
	if (count_of(s))
		wake_all(b);
	return (int)count_of(s);
}

static int do_abort(const struct bar *b)
{
	uint64_t s = load_relaxed(b->state);

	do {
		if (futex_half(s) & BROKEN)
			return 0;
	} while (!cas_acq_rel(b->state, &s, s | BROKEN));
	if (count_of(s))
		wake_all(b);
	return 1;
}

static int do_reset(const struct bar *b)
{
	uint64_t s = load_relaxed(b->state), ns;

	for (;;) {
		uint32_t f = futex_half(s), c = count_of(s);

		if (f & RESETTING)
			return 0;	/* the last waiter to leave finishes it */
		if (f & BROKEN)
			ns = c ? s | RESETTING : fresh(gen_of(s) + 1);
		else if (c)
			ns = s | BROKEN | RESETTING;
		else
			return 0;	/* new already */
		if (cas_acq_rel(b->state, &s, ns))
			break;
	}
	if (!(futex_half(s) & BROKEN))	/* broke a cycle with waiters */
		wake_all(b);
	return 0;
}

static int wait_until(const struct bar *b, clockid_t clock, const struct timespec *deadline)
{
	struct arrival a;
	uint32_t *word = state_futex_word(b->state);
	uint32_t me = 0;
	int r = ksync_check_deadline(clock, deadline), w;

	if (r)
		return r;
	for (;;) {
		r = arrive(b, &a);
		if (r != GATED)
			break;
		if (!me) {
			me = ksync_self_tid();
			trace_wait_begin(b->prim, b->kind, KSYNC_WORLD_THREAD, me);
		}
		w = wait_word(word, b->fflags, a.park, clock, deadline);
		if (w != 0 && w != -EAGAIN && w != -EINTR) {
			r = w;	/* not counted: nothing to undo */
			goto out;
		}
	}
	if (r == DONE) {
		r = (int)a.index;
		goto out;
	}
	if (r < 0)	/* -EPIPE */
		goto out;
	if (!me) {
		me = ksync_self_tid();
		trace_wait_begin(b->prim, b->kind, KSYNC_WORLD_THREAD, me);
	}
	for (;;) {
		TEST_POINT("barrier.wait.park", b->prim);
		w = wait_word(word, b->fflags, a.park, clock, deadline);
		r = look(b, &a);
		if (r == 0 && w != 0 && w != -EAGAIN && w != -EINTR)
			r = give_up(b, &a, w);	/* timed out, or the kernel refused */
		if (r != 0)
			break;
	}
	if (r == 1)
		r = (int)a.index;
out:
	if (me)
		trace_wait_end(b->prim, b->kind, KSYNC_WORLD_THREAD, me, r < 0 ? r : 0);
	return r;
}

/* ---- async ops ---------------------------------------------------------- */

/* Per-op state: where the op is, and its arrival. On success the op's
 * result is its index (the engine's ok_result). */
enum { OP_NONE, OP_ARRIVED, OP_GATED, OP_PASSED };
#define OP_WHERE(op)	(op_state(op)->family[0])
#define OP_GEN(op)	(op_state(op)->family[1])
#define OP_INDEX(op)	(op_state(op)->family[2])

static struct arrival op_arrival(struct ksync_op *op)
{
	return (struct arrival){ OP_GEN(op), (uint32_t)OP_INDEX(op), 0 };
}

static int bar_attempt(const struct bar *b, struct ksync_op *op, struct ksync_park *park)
{
	struct arrival a;
	int r;

	if (!op_state(op)->started_ns)	/* ksync_op_start: a new arrival */
		OP_WHERE(op) = OP_NONE;
	if (OP_WHERE(op) == OP_ARRIVED) {
		a = op_arrival(op);
		r = look(b, &a);
		if (r == 1) {
			OP_WHERE(op) = OP_PASSED;
			op_state(op)->ok_result = (int32_t)a.index;
		} else if (r < 0)
			OP_WHERE(op) = OP_NONE;	/* broken, and left */
		if (r)
			return r;
		a.park = (uint32_t)(a.gen << 2);	/* the word of its cycle */
	} else {
		r = arrive(b, &a);
		if (r < 0)
			return r;
		if (r == DONE) {
			OP_WHERE(op) = OP_PASSED;
			op_state(op)->ok_result = (int32_t)a.index;
			return 1;
		}
		OP_WHERE(op) = r == WAIT ? OP_ARRIVED : OP_GATED;
		OP_GEN(op) = a.gen;
		OP_INDEX(op) = a.index;
	}
	park->word = state_futex_word(b->state);
	park->value = a.park;
	return 0;
}

/* The op ends without having seen its cycle's outcome: decide it now. */
static int bar_settle(const struct bar *b, struct ksync_op *op, int result)
{
	struct arrival a;
	int r;

	if (OP_WHERE(op) != OP_ARRIVED) {
		OP_WHERE(op) = OP_NONE;	/* not counted (waiting for a reset) */
		return result;
	}
	a = op_arrival(op);
	r = give_up(b, &a, result);
	OP_WHERE(op) = r == 1 ? OP_PASSED : OP_NONE;
	if (r == 1)	/* its cycle completed first: it passed */
		op_state(op)->ok_result = (int32_t)a.index;
	return r;
}

static int barrier_attempt(struct ksync_op *op, bool woken, struct ksync_park *park)
{
	struct ksync_barrier *b = op_prim(op);
	struct bar bar = BAR(b);

	(void)woken;	/* broadcast wakes: the outcome is read from the state */
	return bar_attempt(&bar, op, park);
}

static int barrier_settle(struct ksync_op *op, bool woken, int result)
{
	struct ksync_barrier *b = op_prim(op);
	struct bar bar = BAR(b);

	(void)woken;
	return bar_settle(&bar, op, result);
}

static int rbarrier_attempt(struct ksync_op *op, bool woken, struct ksync_park *park)
{
	struct ksync_rbarrier *b = op_prim(op);
	struct bar bar = RBAR(b);

	(void)woken;
	return bar_attempt(&bar, op, park);
}

static int rbarrier_settle(struct ksync_op *op, bool woken, int result)
{
	struct ksync_rbarrier *b = op_prim(op);
	struct bar bar = RBAR(b);

	(void)woken;
	return bar_settle(&bar, op, result);
}

static const struct ksync_waitable barrier_waitable = {
	.kind = KSYNC_KIND_BARRIER,
	.attempt = barrier_attempt,
	.settle = barrier_settle,
	.commits = true,
};

static const struct ksync_waitable rbarrier_waitable = {
	.kind = KSYNC_KIND_RBARRIER,
	.attempt = rbarrier_attempt,
	.settle = rbarrier_settle,
	.commits = true,
};

/* ---- Barrier ------------------------------------------------------------ */

KSYNC_API int ksync_barrier_init(struct ksync_barrier *b, uint32_t parties, unsigned flags)
{
	return init(&b->state, &b->parties, &b->flags, parties, flags);
}

KSYNC_API int ksync_barrier_destroy(struct ksync_barrier *b)
{
	return count_of(load_acquire(&b->state)) ? -EBUSY : 0;
}

KSYNC_API int ksync_barrier_wait_until(struct ksync_barrier *b, clockid_t clock,
				       const struct timespec *deadline)
{
	struct bar bar = BAR(b);

	return wait_until(&bar, clock, deadline);
}

KSYNC_API int ksync_barrier_wait(struct ksync_barrier *b)
{
	return ksync_barrier_wait_until(b, CLOCK_MONOTONIC, NULL);
}

KSYNC_API int ksync_barrier_try(struct ksync_barrier *b)
{
	struct bar bar = BAR(b);

	return try_complete(&bar);
}

KSYNC_API int ksync_barrier_abort(struct ksync_barrier *b)
{
	struct bar bar = BAR(b);

	return do_abort(&bar);
}

KSYNC_API bool ksync_barrier_broken(const struct ksync_barrier *b)
{
	return futex_half(load_acquire(&b->state)) & BROKEN;
}

KSYNC_API uint32_t ksync_barrier_waiting(const struct ksync_barrier *b)
{
	uint64_t s = load_relaxed(&b->state);

	return futex_half(s) & BROKEN ? 0 : count_of(s);
}

KSYNC_API void ksync_op_barrier(struct ksync_op *op, struct ksync_barrier *b)
{
	ksync_op_prepare(op, &barrier_waitable, b, 0, futex_flags_for(load_relaxed(&b->flags)));
}

/* ---- RBarrier ----------------------------------------------------------- */

KSYNC_API int ksync_rbarrier_init(struct ksync_rbarrier *b, uint32_t parties, unsigned flags)
{
	return init(&b->state, &b->parties, &b->flags, parties, flags);
}

KSYNC_API int ksync_rbarrier_destroy(struct ksync_rbarrier *b)
{
	return count_of(load_acquire(&b->state)) ? -EBUSY : 0;
}

KSYNC_API int ksync_rbarrier_wait_until(struct ksync_rbarrier *b, clockid_t clock,
					const struct timespec *deadline)
{
	struct bar bar = RBAR(b);

	return wait_until(&bar, clock, deadline);
}

KSYNC_API int ksync_rbarrier_wait(struct ksync_rbarrier *b)
{
	return ksync_rbarrier_wait_until(b, CLOCK_MONOTONIC, NULL);
}

KSYNC_API int ksync_rbarrier_try(struct ksync_rbarrier *b)
{
	struct bar bar = RBAR(b);

	return try_complete(&bar);
}

KSYNC_API int ksync_rbarrier_abort(struct ksync_rbarrier *b)
{
	struct bar bar = RBAR(b);

	return do_abort(&bar);
}

KSYNC_API int ksync_rbarrier_reset(struct ksync_rbarrier *b)
{
	struct bar bar = RBAR(b);

	return do_reset(&bar);
}

KSYNC_API bool ksync_rbarrier_broken(const struct ksync_rbarrier *b)
{
	return futex_half(load_acquire(&b->state)) & BROKEN;
}

KSYNC_API uint32_t ksync_rbarrier_waiting(const struct ksync_rbarrier *b)
{
	uint64_t s = load_relaxed(&b->state);

	return futex_half(s) & BROKEN ? 0 : count_of(s);
}

KSYNC_API void ksync_op_rbarrier(struct ksync_op *op, struct ksync_rbarrier *b)
{
	ksync_op_prepare(op, &rbarrier_waitable, b, 0, futex_flags_for(load_relaxed(&b->flags)));
}
