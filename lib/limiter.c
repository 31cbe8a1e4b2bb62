/* SPDX-License-Identifier: MIT */
/*
 * CapacityLimiter and RCapacityLimiter (semantics in ksync/limiter.h, word
 * layout in ksync/word.h). The protocol below is modelled in
 * tests/model/limiter.pml.
 *
 * The word holds the total T, the borrowed permits B and the permits R
 * reserved for woken waiters. A new arrival borrows only if T - B - R > 0;
 * a waiter the kernel has just woken takes from R first. Either is one CAS
 * on the word, against the total in the same word: a borrow cannot slip in
 * under a total that changed after it looked. set_total changes T in one
 * CAS too, and drops reservations that no longer fit under it (their woken
 * waiters find nothing and park again).
 *
 * Counting waiters, no lost wake, bounded unfairness: as the Semaphore.
 * `waiters` counts the announced waiters the kernel has not woken; a
 * waiter announces, then reads the word; whatever makes room (a return,
 * unreserve, pass_on, a growing total) changes the word, then reads
 * `waiters` and wakes (all seq_cst), so either side sees the other. A woken
 * waiter that keeps losing to arrivals for KSYNC_LIMITER_STARVE_NS sets
 * STARVING, and returns then go to R for the waiter they wake.
 *
 * Identity. A thread's borrows are in its own thread-local table (see
 * below), which nobody else touches. A token's borrow is in the caller's
 * slot table, hashed by key with linear probing: the borrower claims a free
 * slot (CAS 0 -> key) after its CAS on the word and clears it before
 * returning its permit, so occupied slots <= B <= the largest total <=
 * nslots: a borrower always finds a free slot. Only a key's own borrower
 * writes that key into a slot, so "does this key hold a slot?" is answered
 * by its own probe, which never looks past `reach`, the longest probe any
 * borrow needed (it only grows). A token's slot is freed with a CAS, so two
 * releases of one token that overlap cannot both return the permit.
 */
#include "engine.h"
#include "ksync/limiter.h"

#include <limits.h>
#include <unistd.h>

#define TOTAL(v)	((v) & KSYNC_LIMITER_TOTAL_MASK)
#define BORROWED(v)	(((v) & KSYNC_LIMITER_BORROWED_MASK) >> KSYNC_LIMITER_BORROWED_SHIFT)
#define RESERVED(v)	((v) >> KSYNC_LIMITER_RESERVED_SHIFT)
#define B_ONE		KSYNC_LIMITER_BORROWED_ONE
#define R_ONE		KSYNC_LIMITER_RESERVED_ONE
/* Permits a new arrival may borrow. */
#define ROOM(v)		(TOTAL(v) > BORROWED(v) + RESERVED(v) ? \
			 TOTAL(v) - BORROWED(v) - RESERVED(v) : 0)

#define seq_load(p)		__atomic_load_n((p), __ATOMIC_SEQ_CST)
#define seq_cas(p, old, new)	__atomic_compare_exchange_n((p), (old), (new), false, \
							    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static uint32_t fflags(const struct ksync_limiter *l)
{
	return futex_flags_for(load_relaxed(&l->flags) & KSYNC_LIMITER_SHARED ? KSYNC_SHARED : 0);
}

/* ---- the borrower slots (tokens) ------------------------------------------- */

static inline bool valid_token(uint64_t token)
{
	return token && token < KSYNC_KEY_THREAD;
}

static inline struct ksync_limiter_slot *slot_array(const struct ksync_limiter *l)
{
	return (struct ksync_limiter_slot *)((uintptr_t)l + (uintptr_t)l->slots);
}

/* Where @key's probe starts: a multiplicative hash scaled to [0, n). */
static inline uint32_t home(uint64_t key, uint32_t n)
{
	return (uint32_t)((((key * 0x9e3779b97f4a7c15ull) >> 32) * n) >> 32);
}

/* The slot @key holds, or NULL. Only @key's own borrower ever writes @key
 * into a slot, so its own probe needs no more than `reach` steps. */
static struct ksync_limiter_slot *find(const struct ksync_limiter *l, uint64_t key)
{
	struct ksync_limiter_slot *s = slot_array(l);
	uint32_t n = l->nslots, j = home(key, n), reach = load_relaxed(&l->reach);

	for (uint32_t i = 0; i <= reach; i++) {
		if (load_relaxed(&s[j].key) == key)
			return &s[j];
		if (++j == n)
			j = 0;
	}
	return NULL;
}

/* Occupy a free slot for @key; the caller has just borrowed a permit, so
 * one is free (see the top of the file). */
static void claim(struct ksync_limiter *l, uint64_t key)
{
	struct ksync_limiter_slot *s = slot_array(l);
	uint32_t n = l->nslots, j = home(key, n), reach;

	for (uint32_t i = 0;; i++) {
		uint64_t zero = 0;

		if (load_relaxed(&s[j].key) == 0 &&
		    __atomic_compare_exchange_n(&s[j].key, &zero, key, false, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED)) {
			store_relaxed(&s[j].count, 1);
			i %= n;
			reach = load_relaxed(&l->reach);
			while (i > reach && !__atomic_compare_exchange_n(&l->reach, &reach, i, false,
									 __ATOMIC_RELAXED,
									 __ATOMIC_RELAXED))
				;
			return;
		}
		if (++j == n)
			j = 0;
	}
}

/* Give up @key's slot @s (its last borrow). Returns false if another
 * release of the same key got there first (overlapping calls of a token). */
static bool unclaim(struct ksync_limiter_slot *s, uint64_t key)
{
	return __atomic_compare_exchange_n(&s->key, &key, 0, false, __ATOMIC_RELAXED,
					   __ATOMIC_RELAXED);
}

/* ---- a thread's own borrows ------------------------------------------------- */

/*
 * A thread keeps its borrows in a small table of its own, so its borrow and
 * its return touch no shared memory but the word. The table is tied to the
 * thread id: a forked child (new id) starts with an empty one. An entry is
 * tied to the limiter's id too, so a limiter initialised again at the same
 * address is not mistaken for the old one. A thread that borrows from more
 * limiters at once than the table holds keeps the rest in the limiters'
 * slots, under its thread key.
 */
#define THREAD_ENTRIES 4

struct thread_entry {
	const struct ksync_limiter *lim;
	uint32_t id;
	uint32_t count;		/* 0: free entry */
};

struct thread_borrows {
	uint32_t tid;		/* whose entries these are */
	uint32_t spilled;	/* borrows kept in slots instead */
	struct thread_entry e[THREAD_ENTRIES];
};

static __thread struct thread_borrows my_borrows __attribute__((tls_model("initial-exec")));

static inline struct thread_borrows *thread_borrows(void)
{
	struct thread_borrows *t = &my_borrows;
	uint32_t tid = ksync_self_tid();

	if (unlikely(t->tid != tid))
		*t = (struct thread_borrows){ .tid = tid };	/* new thread, or forked child */
	return t;
}

static inline uint64_t thread_key(const struct thread_borrows *t)
{
	return KSYNC_KEY_THREAD | t->tid;
}

/* The calling thread's entry for @l, or NULL. */
static inline struct thread_entry *entry_of(struct thread_borrows *t, const struct ksync_limiter *l)
{
	for (int i = 0; i < THREAD_ENTRIES; i++) {
		struct thread_entry *e = &t->e[i];

		if (e->lim == l && e->count) {
			if (likely(e->id == l->id))
				return e;
			e->count = 0;	/* an earlier limiter at this address */
		}
	}
	return NULL;
}

/* Record the thread's new borrow of @l (its permit is taken). */
static inline void record(struct ksync_limiter *l, struct thread_borrows *t)
{
	for (int i = 0; i < THREAD_ENTRIES; i++) {
		struct thread_entry *e = &t->e[i];

		if (!e->count) {
			*e = (struct thread_entry){ .lim = l, .id = l->id, .count = 1 };
			return;
		}
	}
	claim(l, thread_key(t));
	t->spilled++;
}

/* ---- reentrancy ---------------------------------------------------------------- */

/* A second borrow by a holder whose count is at @count. */
static int reenter(struct ksync_limiter *l, uint32_t *count)
{
	uint32_t c;

	if (!(load_relaxed(&l->flags) & KSYNC_LIMITER_REENTRANT))
		return -EDEADLK;
	c = load_relaxed(count);
	if (c == UINT32_MAX)
		return -EOVERFLOW;
	store_relaxed(count, c + 1);
	return 0;
}

KSYNC_API uint32_t ksync_limiter_held(const struct ksync_limiter *l, uint64_t token)
{
	const struct ksync_limiter_slot *s;

	if (!token) {
		struct thread_borrows *t = thread_borrows();
		struct thread_entry *e = entry_of(t, l);

		if (e)
			return e->count;
		if (!t->spilled)
			return 0;
		token = thread_key(t);
	} else if (!valid_token(token)) {
		return 0;
	}
	s = find(l, token);
	return s ? load_relaxed(&s->count) : 0;
}

/* ---- init, snapshots ------------------------------------------------------ */

/* Tells a limiter from an earlier one initialised at the same address. */
static uint32_t last_id;

static int init(struct ksync_limiter *l, uint32_t total, struct ksync_limiter_slot *slots,
		uint32_t nslots, unsigned flags, uint32_t kind)
{
	if (!slots || ((uintptr_t)slots & 7) || nslots == 0 ||
	    nslots > KSYNC_LIMITER_TOTAL_MAX || total > nslots || (flags & ~KSYNC_SHARED))
		return -EINVAL;
	for (uint32_t i = 0; i < nslots; i++) {
		store_relaxed(&slots[i].key, 0);
		store_relaxed(&slots[i].count, 0);
		slots[i].reserved = 0;
	}
	store_relaxed(&l->word, total);
	store_relaxed(&l->waiters, 0);
	store_relaxed(&l->flags, kind | (flags & KSYNC_SHARED ? KSYNC_LIMITER_SHARED : 0));
	l->nslots = nslots;
	store_relaxed(&l->reach, 0);
	l->id = __atomic_add_fetch(&last_id, 1, __ATOMIC_RELAXED) + (uint32_t)getpid() * 0x9e3779b9u;
	l->slots = (int64_t)((uintptr_t)slots - (uintptr_t)l);
	return 0;
}

KSYNC_API int ksync_limiter_init(struct ksync_limiter *l, uint32_t total,
				 struct ksync_limiter_slot *slots, uint32_t nslots, unsigned flags)
{
	return init(l, total, slots, nslots, flags, 0);
}

KSYNC_API int ksync_rlimiter_init(struct ksync_limiter *l, uint32_t total,
				  struct ksync_limiter_slot *slots, uint32_t nslots, unsigned flags)
{
	return init(l, total, slots, nslots, flags, KSYNC_LIMITER_REENTRANT);
}

KSYNC_API int ksync_limiter_destroy(struct ksync_limiter *l)
{
	uint32_t v = load_acquire(&l->word);

	return BORROWED(v) || RESERVED(v) || load_acquire(&l->waiters) ? -EBUSY : 0;
}

KSYNC_API uint32_t ksync_limiter_total(const struct ksync_limiter *l)
{
	return TOTAL(load_relaxed(&l->word));
}

KSYNC_API uint32_t ksync_limiter_borrowed(const struct ksync_limiter *l)
{
	return BORROWED(load_relaxed(&l->word));
}

KSYNC_API uint32_t ksync_limiter_available(const struct ksync_limiter *l)
{
	uint32_t v = load_relaxed(&l->word);

	return TOTAL(v) > BORROWED(v) ? TOTAL(v) - BORROWED(v) : 0;
}

/* ---- the word --------------------------------------------------------------- */

static void announce(struct ksync_limiter *l)
{
	__atomic_fetch_add(&l->waiters, 1, __ATOMIC_SEQ_CST);
}

static void leave(struct ksync_limiter *l)
{
	__atomic_fetch_sub(&l->waiters, 1, __ATOMIC_SEQ_CST);
}

/* Wake up to @nr counted waiters; uncount those the kernel woke. */
static uint32_t wake_waiters(struct ksync_limiter *l, uint32_t nr)
{
	int woken = wake_traced(&l->word, fflags(l), l, KSYNC_KIND_LIMITER,
				(int)min_u32(nr, INT_MAX));

	if (woken <= 0)
		return 0;
	__atomic_fetch_sub(&l->waiters, (uint32_t)woken, __ATOMIC_SEQ_CST);
	return (uint32_t)woken;
}

/* Room for up to @added more borrowers was made; the word now reads @v:
 * wake as many counted waiters as can use it. */
static uint32_t wake_for(struct ksync_limiter *l, uint32_t v, uint32_t added)
{
	uint32_t waiters = seq_load(&l->waiters);

	added = min_u32(added, ROOM(v));
	if (!waiters || !added)
		return 0;
	return wake_waiters(l, min_u32(added, waiters));
}

/*
 * Borrow a permit: from R first if the kernel just woke the caller
 * (@woken), else only from the room under the total. On failure *park is
 * the word value to sleep on.
 */
static inline bool take(struct ksync_limiter *l, bool woken, uint32_t *park)
{
	uint32_t v = seq_load(&l->word), nv;

	for (;;) {
		if (woken && RESERVED(v))
			nv = v - R_ONE + B_ONE;
		else if (ROOM(v))
			nv = v + B_ONE;
		else {
			*park = v;
			return false;
		}
		TEST_POINT("limiter.take.decided", l);
		if (cas_acquire(&l->word, &v, nv))
			return true;
	}
}

/* Up to @n reservations nobody was woken for become room. */
static void unreserve(struct ksync_limiter *l, uint32_t n)
{
	uint32_t v = load_relaxed(&l->word), d;

	do {
		d = min_u32(n, RESERVED(v));
		if (!d)
			return;	/* woken waiters took them, or a shrink revoked them */
	} while (!seq_cas(&l->word, &v, v - d * R_ONE));
	wake_for(l, v - d * R_ONE, d);
}

/* A woken waiter will not borrow: give back what its wake was for. */
static void pass_on(struct ksync_limiter *l)
{
	uint32_t v = load_relaxed(&l->word);

	while (RESERVED(v) && !seq_cas(&l->word, &v, v - R_ONE))
		;
	wake_for(l, seq_load(&l->word), 1);
}

/* A borrower returns its permit (its slot is already free). */
static void put_back(struct ksync_limiter *l)
{
	uint32_t v = load_relaxed(&l->word), nv, woken = 0;
	bool room, reserve;

	do {
		nv = v - B_ONE;
		room = ROOM(nv) > 0;	/* under the total: someone may use it */
		reserve = room && RESERVED(v) < KSYNC_LIMITER_RESERVED_MAX &&
			  (load_relaxed(&l->flags) & KSYNC_LIMITER_STARVING) &&
			  load_relaxed(&l->waiters);
		if (reserve)
			nv += R_ONE;
	} while (!seq_cas(&l->word, &v, nv));
	TEST_POINT("limiter.release.returned", l);
	if (!room)
		return;		/* the total shrank below what is borrowed */
	if (seq_load(&l->waiters))
		woken = wake_waiters(l, 1);
	TEST_POINT("limiter.release.woke", l);
	if (reserve && !woken)
		unreserve(l, 1);
}

KSYNC_API int ksync_limiter_set_total(struct ksync_limiter *l, uint32_t total)
{
	uint32_t v = load_relaxed(&l->word), nv, b, r;

	if (total > l->nslots)
		return -EINVAL;
	do {
		b = BORROWED(v);
		/* Reservations that no longer fit under the total are revoked. */
		r = total > b ? min_u32(RESERVED(v), total - b) : 0;
		nv = total | b << KSYNC_LIMITER_BORROWED_SHIFT | r << KSYNC_LIMITER_RESERVED_SHIFT;
	} while (!seq_cas(&l->word, &v, nv));
	TEST_POINT("limiter.total.set", l);
	wake_for(l, nv, ROOM(nv));
	return 0;
}

/* ---- waiting ----------------------------------------------------------------- */

/* A waiter's own state: on a thread's stack, or in an op's family words. */
struct waiter {
	bool counted;	/* in l->waiters */
	bool woken;	/* the kernel woke it since its last attempt */
};

static void give_up(struct ksync_limiter *l, struct waiter *w)
{
	if (w->counted)
		leave(l);
	w->counted = false;
}

/* A woken waiter lost to new arrivals: after too long, ask for hand-offs. */
static void note_lost(struct ksync_limiter *l, int64_t waited_ns)
{
	if (waited_ns >= KSYNC_LIMITER_STARVE_NS &&
	    !(load_relaxed(&l->flags) & KSYNC_LIMITER_STARVING))
		__atomic_fetch_or(&l->flags, KSYNC_LIMITER_STARVING, __ATOMIC_RELAXED);
}

/* A woken waiter was served: within the bound, barging may resume. */
static void note_served(struct ksync_limiter *l, int64_t waited_ns)
{
	if (waited_ns < KSYNC_LIMITER_STARVE_NS &&
	    (load_relaxed(&l->flags) & KSYNC_LIMITER_STARVING))
		__atomic_fetch_and(&l->flags, ~KSYNC_LIMITER_STARVING, __ATOMIC_RELAXED);
}

/*
 * One attempt of a waiter, thread or op: borrow, or get counted and say
 * where to sleep. Returns 1 (borrowed; the caller claims its slot) or 0
 * (sleep on *park).
 */
static int attempt(struct ksync_limiter *l, struct waiter *w, int64_t waited, uint32_t *park)
{
	bool woken = w->woken;

	w->woken = false;
	for (;;) {
		if (take(l, woken, park)) {
			if (w->counted)
				leave(l);
			w->counted = false;
			if (woken)
				note_served(l, waited);
			return 1;
		}
		if (woken) {
			note_lost(l, waited);
			woken = false;
		}
		if (w->counted)
			return 0;
		/* Count ourselves, then read the word again. */
		announce(l);
		w->counted = true;
		TEST_POINT("limiter.wait.announced", l);
	}
}

/* Block the calling thread until it takes a permit: 0, or an error (then
 * it holds and counts nothing). */
static int wait_permit(struct ksync_limiter *l, clockid_t clock, const struct timespec *deadline)
{
	struct waiter w = { 0 };
	uint32_t me, park;
	int64_t started;
	int r = attempt(l, &w, 0, &park);

	if (r == 1)
		return 0;
	me = ksync_self_tid();
	started = ksync_mono_ns();
	trace_wait_begin(l, KSYNC_KIND_LIMITER, KSYNC_WORLD_THREAD, me);
	while (r == 0) {
		TEST_POINT("limiter.wait.park", l);
		r = wait_word(&l->word, fflags(l), park, clock, deadline);
		if (r == 0) {
			w.woken = true;	/* and the waker uncounted us */
			w.counted = false;
			TEST_POINT("limiter.wait.woken", l);
		} else if (r != -EAGAIN && r != -EINTR) {
			give_up(l, &w);	/* timed out or failed: not woken, holds nothing */
			break;
		}
		r = attempt(l, &w, ksync_mono_ns() - started, &park);
	}
	r = r == 1 ? 0 : r;
	trace_wait_end(l, KSYNC_KIND_LIMITER, KSYNC_WORLD_THREAD, me, r);
	return r;
}

/* ---- threads ------------------------------------------------------------------ */

/* The calling thread's borrow count on @l, or NULL if it borrows nothing. */
static inline uint32_t *thread_count(struct thread_borrows *t, const struct ksync_limiter *l)
{
	struct thread_entry *e = entry_of(t, l);
	struct ksync_limiter_slot *s;

	if (e)
		return &e->count;
	if (likely(!t->spilled))
		return NULL;
	s = find(l, thread_key(t));
	return s ? &s->count : NULL;
}

static inline int thread_acquire(struct ksync_limiter *l, clockid_t clock,
				 const struct timespec *deadline)
{
	struct thread_borrows *t = thread_borrows();
	uint32_t *count = thread_count(t, l), park;

	if (unlikely(count))
		return reenter(l, count);
	if (unlikely(!take(l, false, &park))) {
		int r = wait_permit(l, clock, deadline);

		if (r)
			return r;
	}
	record(l, t);
	return 0;
}

KSYNC_API int ksync_limiter_acquire(struct ksync_limiter *l)
{
	return thread_acquire(l, CLOCK_MONOTONIC, NULL);
}

KSYNC_API int ksync_limiter_acquire_until(struct ksync_limiter *l, clockid_t clock,
					  const struct timespec *deadline)
{
	int r = ksync_check_deadline(clock, deadline);

	if (unlikely(r))
		return r;
	return thread_acquire(l, clock, deadline);
}

KSYNC_API int ksync_limiter_try(struct ksync_limiter *l)
{
	struct thread_borrows *t = thread_borrows();
	uint32_t *count = thread_count(t, l), park;

	if (count)
		return reenter(l, count);
	if (!take(l, false, &park))
		return -EAGAIN;
	record(l, t);
	return 0;
}

KSYNC_API int ksync_limiter_release(struct ksync_limiter *l)
{
	struct thread_borrows *t = thread_borrows();
	struct thread_entry *e = entry_of(t, l);
	struct ksync_limiter_slot *s;

	if (likely(e)) {
		if (e->count > 1) {
			e->count--;
			return 0;
		}
		e->count = 0;
		put_back(l);
		return 0;
	}
	if (!t->spilled || !(s = find(l, thread_key(t))))
		return -EPERM;
	if (load_relaxed(&s->count) > 1) {
		store_relaxed(&s->count, load_relaxed(&s->count) - 1);
		return 0;
	}
	/* Only this thread ever writes its key into a slot. */
	store_relaxed(&s->count, 0);
	store_relaxed(&s->key, 0);
	t->spilled--;
	put_back(l);
	return 0;
}

/* ---- tasks ----------------------------------------------------------------------- */

KSYNC_API int ksync_limiter_acquire_task_until(struct ksync_limiter *l, uint64_t token,
					       clockid_t clock, const struct timespec *deadline)
{
	struct ksync_limiter_slot *s;
	uint32_t park;
	int r = ksync_check_deadline(clock, deadline);

	if (unlikely(r))
		return r;
	if (!valid_token(token))
		return -EINVAL;
	s = find(l, token);
	if (s)
		return reenter(l, &s->count);
	if (!take(l, false, &park)) {
		r = wait_permit(l, clock, deadline);
		if (r)
			return r;
	}
	claim(l, token);
	return 0;
}

KSYNC_API int ksync_limiter_try_task(struct ksync_limiter *l, uint64_t token)
{
	struct ksync_limiter_slot *s;
	uint32_t park;

	if (!valid_token(token))
		return -EINVAL;
	s = find(l, token);
	if (s)
		return reenter(l, &s->count);
	if (!take(l, false, &park))
		return -EAGAIN;
	claim(l, token);
	return 0;
}

KSYNC_API int ksync_limiter_release_task(struct ksync_limiter *l, uint64_t token)
{
	struct ksync_limiter_slot *s;
	uint32_t c;

	if (!valid_token(token))
		return -EINVAL;
	s = find(l, token);
	if (!s)
		return -EPERM;
	c = load_relaxed(&s->count);
	if (c > 1) {
		store_relaxed(&s->count, c - 1);
		return 0;
	}
	/* A token's releases may overlap (misuse): only one returns the permit. */
	if (!unclaim(s, token))
		return -EPERM;
	put_back(l);
	return 0;
}

/*
 * Async ops: the same attempts as a thread, spread over CQEs. The waiter
 * state lives in the op's family word [0]: counted.
 */
static int limiter_attempt(struct ksync_op *op, bool woken, struct ksync_park *park)
{
	struct ksync_limiter *l = op_prim(op);
	struct op_state *st = op_state(op);
	struct waiter w = { .counted = st->family[0] && !woken, .woken = woken };
	int r;

	if (!st->started_ns && !st->family[0]) {
		/* The first attempt: who is borrowing? */
		struct ksync_limiter_slot *s;

		if (!valid_token(op->token))
			return -EINVAL;
		s = find(l, op->token);
		if (s) {
			r = reenter(l, &s->count);
			return r ? r : 1;
		}
	}
	if (woken)
		TEST_POINT("limiter.op.woken", l);
	r = attempt(l, &w, st->started_ns ? ksync_mono_ns() - st->started_ns : 0, &park->value);
	st->family[0] = w.counted;
	if (r == 1)
		claim(l, op->token);
	return r;
}

static void limiter_abandon(struct ksync_op *op, bool woken)
{
	struct ksync_limiter *l = op_prim(op);
	struct waiter w = { .counted = op_state(op)->family[0] && !woken };

	give_up(l, &w);
	if (woken)
		pass_on(l);
	op_state(op)->family[0] = 0;
}

static const struct ksync_waitable limiter_waitable = {
	.kind = KSYNC_KIND_LIMITER,
	.needs_token = true,
	.attempt = limiter_attempt,
	.abandon = limiter_abandon,
};

KSYNC_API void ksync_op_limiter(struct ksync_op *op, struct ksync_limiter *lim, uint64_t token)
{
	ksync_op_prepare(op, &limiter_waitable, lim, token, fflags(lim));
}
