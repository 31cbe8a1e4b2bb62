/* SPDX-License-Identifier: MIT */
/*
 * Lock: ownable mutex, barging with a starvation bound (see ksync/lock.h).
 *
 * Invariant that makes parking safe in every world, including an io_uring
 * wait whose SQE reaches the kernel late: a waiter only parks on a value
 * with LOCKED|CONTENDED set, and whoever holds a lock whose word has
 * CONTENDED wakes someone when releasing. A release that clears CONTENDED
 * (word back to 0) wakes one waiter, which re-sets CONTENDED when it takes
 * the lock or parks again, or hands the wake on if it leaves (pass_on).
 * So if the word reads LOCKED|CONTENDED when the kernel compares it, a wake
 * is still to come, whatever happened in between.
 */
#include "annotate.h"
#include "engine.h"
#include "ksync/lock.h"

#define L KSYNC_LOCK_LOCKED
#define C KSYNC_LOCK_CONTENDED
#define H KSYNC_LOCK_HANDOFF
#define S KSYNC_LOCK_STARVING

/* Spins before a thread parks; a hand-over usually takes less than this. */
#define SPIN_LIMIT 100

KSYNC_API int ksync_lock_init(struct ksync_lock *l, unsigned flags)
{
	if (flags & ~KSYNC_SHARED)
		return -EINVAL;
	store_relaxed(&l->word, 0);
	store_relaxed(&l->owner_tid, 0);
	store_relaxed(&l->owner_token, 0);
	store_relaxed(&l->flags, flags);
	store_relaxed(&l->reserved, 0);
	return 0;
}

static inline uint32_t fflags(const struct ksync_lock *l)
{
	return futex_flags_for(load_relaxed(&l->flags));
}

KSYNC_API int ksync_lock_destroy(struct ksync_lock *l)
{
	return load_acquire(&l->word) ? -EBUSY : 0;
}

KSYNC_API bool ksync_lock_held(const struct ksync_lock *l)
{
	return load_relaxed(&l->word) & L;
}

static inline void set_owner(struct ksync_lock *l, uint32_t tid, uint64_t token)
{
	store_relaxed(&l->owner_tid, tid);
	store_relaxed(&l->owner_token, token);
}

static inline bool take_free(struct ksync_lock *l)
{
	uint32_t v = 0;

	return cas_acquire(&l->word, &v, L);
}

/*
 * One attempt by a waiter. @woken: it consumed a futex wake since its last
 * attempt, so it may claim a HANDOFF and must keep CONTENDED set for those
 * still parked. Returns true with the lock taken, or false with *park set to
 * the value to sleep on.
 */
static bool attempt(struct ksync_lock *l, bool woken, int64_t waited_ns, uint32_t *park)
{
	uint32_t v = load_relaxed(&l->word);

	for (;;) {
		if (v == 0) {
			if (cas_acquire(&l->word, &v, woken ? L | C : L))
				return true;
			continue;
		}
		if ((v & H) && woken) {
			uint32_t nv = v & ~H;

			/* Served within the bound: back to barging mode. */
			if (waited_ns < KSYNC_LOCK_STARVE_NS)
				nv &= ~S;
			if (cas_acquire(&l->word, &v, nv))
				return true;
			continue;
		}
		uint32_t want = v | C;

		if (woken && waited_ns >= KSYNC_LOCK_STARVE_NS)
			want |= S;
		if (want != v && !cas_acquire(&l->word, &v, want))
			continue;
		*park = want;
		return false;
	}
}

/*
 * The release exchange found waiters (@v has CONTENDED) and left the word 0.
 * In starvation mode, lock it again as a hand-off to the next waiter in
 * wake order; a barger that slipped into the few-cycle window wins this
 * round instead (STARVING stays with the waiters, so the next release hands
 * off). Otherwise wake one waiter to compete.
 */
static void release_contended(struct ksync_lock *l, uint32_t v)
{
	uint32_t zero = 0;

	if ((v & S) && cas_release(&l->word, &zero, v | H)) {
		if (wake_traced(&l->word, fflags(l), l, KSYNC_KIND_LOCK, 1) > 0)
			return;
		/* Nobody was parked: take the hand-off back unless a woken
		 * waiter claimed it meanwhile, then wake once more for anyone
		 * who parked on the reserved value in the window. */
		v = load_relaxed(&l->word);
		while (v & H) {
			if (cas_release(&l->word, &v, 0))
				break;
		}
		if (v & H)
			wake_traced(&l->word, fflags(l), l, KSYNC_KIND_LOCK, 1);
		return;
	}
	wake_traced(&l->word, fflags(l), l, KSYNC_KIND_LOCK, 1);
}

/* Release a lock the caller holds: one exchange when nobody waits. */
static void release_word(struct ksync_lock *l)
{
	uint32_t v = __atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE);

	if (unlikely(v != L))
		release_contended(l, v);
}

static void pass_on(struct ksync_lock *l)
{
	uint32_t v = load_relaxed(&l->word);

	for (;;) {
		if (v == 0) {
			wake_traced(&l->word, fflags(l), l, KSYNC_KIND_LOCK, 1);
			return;
		}
		if (v & H) {
			/* The hand-off may have been ours: take it and release it. */
			if (cas_acquire(&l->word, &v, v & ~H)) {
				release_word(l);
				return;
			}
			continue;
		}
		if (v & C)
			return;	/* the holder will wake someone */
		/* A barger holds it without CONTENDED: make sure its release
		 * wakes the waiters whose wake we are giving back. */
		if (cas_acquire(&l->word, &v, v | C))
			return;
	}
}

/* ---- threads ------------------------------------------------------------ */

static int acquire_slow(struct ksync_lock *l, clockid_t clock, const struct timespec *deadline)
{
	uint32_t me = ksync_self_tid(), park;
	int64_t started = 0;
	bool woken = false;
	int r;

	if (load_relaxed(&l->owner_tid) == me)
		return -EDEADLK;

	for (int i = 0; i < SPIN_LIMIT; i++) {
		uint32_t v = load_relaxed(&l->word);

		if (v == 0 && take_free(l))
			goto owned;
		if (v & (S | H))
			break;	/* hand-off mode: spinning cannot win */
		cpu_relax();
	}

	trace_wait_begin(l, KSYNC_KIND_LOCK, KSYNC_WORLD_THREAD, me);
	for (;;) {
		int64_t waited = started ? ksync_mono_ns() - started : 0;

		if (attempt(l, woken, waited, &park)) {
			r = 0;
			break;
		}
		if (!started)
			started = ksync_mono_ns();
		/* The failed attempt left CONTENDED set, so the wake we used is
		 * accounted for: the next release wakes again. Only a new wake
		 * lets us claim a hand-off meant for a woken waiter. */
		woken = false;
		TEST_POINT("lock.wait.park", l);
		r = wait_word(&l->word, fflags(l), park, clock, deadline);
		if (r == 0) {
			woken = true;
			TEST_POINT("lock.wait.woken", l);
		} else if (r != -EAGAIN && r != -EINTR) {
			/* -ETIMEDOUT, or the kernel refused the wait (-ENOSYS,
			 * -EPERM...): give up with that error, never retry it
			 * (that would spin). The kernel reported no wake, so
			 * none was consumed and CONTENDED is set for those
			 * still parked. */
			break;
		}
		/* -EAGAIN, -EINTR: no wake consumed; look again. */
	}
	trace_wait_end(l, KSYNC_KIND_LOCK, KSYNC_WORLD_THREAD, me, r);
	if (r)
		return r;
owned:
	annotate_acquire(l);
	set_owner(l, me, 0);
	return 0;
}

KSYNC_API int ksync_lock_acquire_until(struct ksync_lock *l, clockid_t clock,
				       const struct timespec *deadline)
{
	int r = ksync_check_deadline(clock, deadline);

	if (unlikely(r))
		return r;
	if (likely(take_free(l)) && annotate_acquired(l)) {
		set_owner(l, ksync_self_tid(), 0);
		return 0;
	}
	return acquire_slow(l, clock, deadline);
}

KSYNC_API int ksync_lock_acquire(struct ksync_lock *l)
{
	if (likely(take_free(l)) && annotate_acquired(l)) {
		set_owner(l, ksync_self_tid(), 0);
		return 0;
	}
	return acquire_slow(l, CLOCK_MONOTONIC, NULL);
}

KSYNC_API int ksync_lock_try(struct ksync_lock *l)
{
	uint32_t me = ksync_self_tid();

	if (take_free(l) && annotate_acquired(l)) {
		set_owner(l, me, 0);
		return 0;
	}
	if (load_relaxed(&l->owner_tid) == me && load_relaxed(&l->owner_token) == 0)
		return -EDEADLK;
	return -EBUSY;
}

static int release_as(struct ksync_lock *l, uint32_t tid, uint64_t token)
{
	/* Only the owner's own thread (or task) ever stores these values, so a
	 * non-owner can never read a match, even while the lock changes hands. */
	if (!(load_relaxed(&l->word) & L) || load_relaxed(&l->owner_token) != token ||
	    (tid && load_relaxed(&l->owner_tid) != tid))
		return -EPERM;
	annotate_release(l);
	set_owner(l, 0, 0);
	release_word(l);
	return 0;
}

KSYNC_API int ksync_lock_release(struct ksync_lock *l)
{
	return release_as(l, ksync_self_tid(), 0);
}

/* ---- tasks -------------------------------------------------------------- */

KSYNC_API int ksync_lock_try_task(struct ksync_lock *l, uint64_t token)
{
	if (!token)
		return -EINVAL;
	if (take_free(l) && annotate_acquired(l)) {
		set_owner(l, ksync_self_tid(), token);
		return 0;
	}
	return load_relaxed(&l->owner_token) == token ? -EDEADLK : -EBUSY;
}

KSYNC_API int ksync_lock_release_task(struct ksync_lock *l, uint64_t token)
{
	if (!token)
		return -EINVAL;
	return release_as(l, 0, token);
}

static int lock_attempt(struct ksync_op *op, bool woken, struct ksync_park *park)
{
	struct ksync_lock *l = op_prim(op);
	int64_t started = op_state(op)->started_ns;
	int64_t waited = started ? ksync_mono_ns() - started : 0;

	if (!started && load_relaxed(&l->owner_token) == op->token)
		return -EDEADLK;
	if (!attempt(l, woken, waited, &park->value))
		return 0;
	annotate_acquire(l);
	set_owner(l, ksync_self_tid(), op->token);
	return 1;
}

static void lock_abandon(struct ksync_op *op, bool woken)
{
	if (woken)
		pass_on(op_prim(op));
}

static const struct ksync_waitable lock_waitable = {
	.kind = KSYNC_KIND_LOCK,
	.needs_token = true,
	.attempt = lock_attempt,
	.abandon = lock_abandon,
};

KSYNC_API void ksync_op_lock(struct ksync_op *op, struct ksync_lock *lock, uint64_t token)
{
	ksync_op_prepare(op, &lock_waitable, lock, token, fflags(lock));
}
