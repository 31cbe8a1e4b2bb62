/* SPDX-License-Identifier: MIT */
/*
 * REvent: resettable event, broadcast wake (semantics in ksync/revent.h,
 * word layout in ksync/word.h). Modelled in tests/model/revent.pml.
 *
 * The word holds SET, WAITERS and a generation. set() is one CAS that
 * advances the generation, sets SET and clears WAITERS; if WAITERS was
 * there it wakes everyone (INT_MAX) with one syscall. clear() only drops
 * SET. A waiter remembers the generation g it saw at arrival and is
 * released as soon as the generation differs from g: a set followed at
 * once by a clear still releases it, and one that arrives after the clear
 * saw the new generation, so it waits for the next set.
 *
 * No lost wake: a waiter parks only on a value with WAITERS, which it put
 * there by a CAS on the same word as set()'s CAS. Either its CAS came
 * first and set() sees WAITERS and wakes (after its CAS, so a wait queued
 * before the wake is woken and one queued after it finds the word
 * changed), or set()'s CAS came first and the waiter's CAS fails on the
 * new generation. A wait armed late (an io_uring SQE submitted long after
 * its attempt) compares against a value carrying the old generation, which
 * set+clear does not restore.
 */
#include "engine.h"
#include "annotate.h"
#include "ksync/revent.h"

#include <limits.h>

#define SET	KSYNC_REVENT_SET
#define W	KSYNC_REVENT_WAITERS

/* The generation part of a word. */
static inline uint32_t gen_of(uint32_t v)
{
	return v & ~(SET | W);
}

/* A CAS whose failure also reads with acquire: the new word may be the
 * set() that releases us, and the setter's writes must be visible then. */
#define cas_acq(p, old, new) \
	__atomic_compare_exchange_n((p), (old), (new), false, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)

KSYNC_API int ksync_revent_init(struct ksync_revent *ev, unsigned flags)
{
	if (flags & ~KSYNC_SHARED)
		return -EINVAL;
	store_relaxed(&ev->word, 0);
	store_relaxed(&ev->flags, flags);
	return 0;
}

static inline uint32_t fflags(const struct ksync_revent *ev)
{
	return futex_flags_for(load_relaxed(&ev->flags));
}

KSYNC_API int ksync_revent_set(struct ksync_revent *ev)
{
	uint32_t v = load_relaxed(&ev->word), nv;

	do {
		if (v & SET)
			return 0;
		nv = (gen_of(v) + KSYNC_REVENT_GEN_ONE) | SET;
		annotate_release(ev);
	} while (!cas_acq_rel(&ev->word, &v, nv));
	TEST_POINT("revent.set.done", ev);
	/* One syscall reaches every parked thread and io_uring wait. */
	if (v & W)
		wake_traced(&ev->word, fflags(ev), ev, KSYNC_KIND_REVENT, INT_MAX);
	return 1;
}

KSYNC_API int ksync_revent_clear(struct ksync_revent *ev)
{
	return __atomic_fetch_and(&ev->word, ~SET, __ATOMIC_ACQ_REL) & SET ? 1 : 0;
}

KSYNC_API bool ksync_revent_is_set(const struct ksync_revent *ev)
{
	return annotate_if(load_acquire(&ev->word) & SET, ev);
}

KSYNC_API int ksync_revent_try(const struct ksync_revent *ev)
{
	return ksync_revent_is_set(ev) ? 0 : -EAGAIN;
}

/*
 * A waiter of generation @g is about to park on *v: make sure WAITERS is
 * in the word. Returns true if it was released meanwhile (the generation
 * moved), else false with *v the value to park on.
 */
static bool announce(struct ksync_revent *ev, uint32_t g, uint32_t *v)
{
	while (!(*v & W)) {
		if (cas_acq(&ev->word, v, *v | W)) {
			*v |= W;
			break;
		}
		if (gen_of(*v) != g)
			return true;
	}
	return false;
}

KSYNC_API int ksync_revent_wait_until(struct ksync_revent *ev, clockid_t clock,
				      const struct timespec *deadline)
{
	uint32_t v, g, me;
	int r = ksync_check_deadline(clock, deadline);

	if (r)
		return r;
	v = load_acquire(&ev->word);
	if (v & SET) {
		annotate_acquire(ev);
		return 0;
	}
	g = gen_of(v);
	me = ksync_self_tid();
	trace_wait_begin(ev, KSYNC_KIND_REVENT, KSYNC_WORLD_THREAD, me);
	for (;;) {
		if (announce(ev, g, &v)) {
			r = 0;
			break;
		}
		TEST_POINT("revent.wait.park", ev);
		r = wait_word(&ev->word, fflags(ev), v, clock, deadline);
		v = load_acquire(&ev->word);
		if (gen_of(v) != g) {
			r = 0;	/* a set since we arrived, even if cleared again */
			break;
		}
		/* Woken (spuriously: the generation did not move), the word
		 * changed (another waiter announced) or a signal: look again.
		 * Anything else ends the wait: retrying it would spin. */
		if (r != 0 && r != -EAGAIN && r != -EINTR)
			break;
	}
	if (r == 0)
		annotate_acquire(ev);
	trace_wait_end(ev, KSYNC_KIND_REVENT, KSYNC_WORLD_THREAD, me, r);
	return r;
}

KSYNC_API int ksync_revent_wait(struct ksync_revent *ev)
{
	return ksync_revent_wait_until(ev, CLOCK_MONOTONIC, NULL);
}

/*
 * Async ops: the generation seen at the first attempt (started_ns == 0, in
 * ksync_op_start) is kept in the op; every later attempt compares with it.
 */
#define OP_GEN(op) (op_state(op)->family[0])

static int revent_attempt(struct ksync_op *op, bool woken, struct ksync_park *park)
{
	struct ksync_revent *ev = op_prim(op);
	uint32_t v = load_acquire(&ev->word);

	(void)woken;	/* a wake is a broadcast: nothing to hand on */
	if (!op_state(op)->started_ns) {
		if (v & SET)
			return annotate_acquired(ev);
		OP_GEN(op) = gen_of(v);
	} else if (gen_of(v) != OP_GEN(op)) {
		return annotate_acquired(ev);
	}
	if (announce(ev, (uint32_t)OP_GEN(op), &v))
		return annotate_acquired(ev);
	park->value = v;
	return 0;
}

static const struct ksync_waitable revent_waitable = {
	.kind = KSYNC_KIND_REVENT,
	.attempt = revent_attempt,
};

KSYNC_API void ksync_op_revent(struct ksync_op *op, struct ksync_revent *ev)
{
	ksync_op_prepare(op, &revent_waitable, ev, 0, fflags(ev));
}
