/* SPDX-License-Identifier: MIT */
/*
 * Bounded queue (semantics in ksync/bqueue.h, words in ksync/word.h). The
 * protocol below is modelled in tests/model/bqueue.pml.
 *
 * Items. The items, len and the order's bookkeeping change only under the
 * internal lock (q->lock, a plain three-state futex lock held while items
 * are copied). A get and a put are each one lock hold.
 *
 * Two sides, one protocol. Getters wait for items, putters for slots; a
 * "unit" is an item for the first and a slot for the second. Per side:
 * its futex word (a sequence number), `reg` (the waiters registered on the
 * side) and `res` (units reserved for woken waiters, hand-off mode only).
 * Taking a unit for one side produces one for the other.
 *
 * Waiting. Under the lock a waiter reads the side's word, then decides: it
 * takes, or registers (reg++) and sleeps on the value it read. Everything
 * that gives a side a unit changes that side's word afterwards (a producer
 * under the lock, a leaver without it), so the kernel's compare fails for a
 * waiter that decided on older state.
 *
 * Counting. Waiters count themselves in (under the lock) and out (when
 * they take, or leave: timeout, cancel, close). Wakers never uncount
 * anyone, so the count is exact whatever the kernel does with a wake,
 * including the wakes a multi-word wait (select) swallows without saying.
 * A producer that made F units free on a side with reg registered waiters
 * wakes only the waiters F does not already cover: with k new units,
 * min(k, reg - (F - k)) if positive. So a woken waiter that has not run yet
 * is counted and has its unit counted: no wake is made on its behalf.
 *
 * No lost wake. If a waiter is asleep, the free units are at most the
 * registered waiters that are awake (each of which will take one or look
 * again); the rule above keeps that, and so does every way out: a waiter
 * that leaves after consuming a wake it will not use (its timeout or cancel
 * lost the race to the wake) gives back a reservation if there is one,
 * bumps the word and wakes one if a unit is free and someone is registered.
 *
 * Bounded unfairness. New arrivals may take a unit a woken waiter was woken
 * for (barging). A woken waiter that keeps losing for
 * KSYNC_BQUEUE_STARVE_NS sets its side's STARVING; then producers reserve
 * each unit for a registered waiter that has no reservation yet and wake
 * one; only a woken waiter takes a reservation; reservations nobody was
 * woken for go back at once (unreserve). A woken waiter served within the
 * bound clears STARVING.
 *
 * Nothing lost on cancel: a reservation is a count, the unit stays in the
 * queue in its place; whoever gives a reservation back makes the unit free
 * again and wakes for it.
 *
 * Close wakes every registered waiter; later puts fail, gets drain. A
 * getter may still register after the close while the items left are
 * reserved for woken getters; whoever takes the last item of a closed queue
 * bumps the word and wakes every getter, so none sleeps on an empty closed
 * queue.
 */
#include "engine.h"
#include "ksync/bqueue.h"

#include <limits.h>
#include <string.h>

#define GET 0
#define PUT 1

#define SPIN_LIMIT 100

#define seq_load(p)		__atomic_load_n((p), __ATOMIC_SEQ_CST)
#define seq_store(p, v)		__atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define seq_add(p, v)		__atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define seq_sub(p, v)		__atomic_fetch_sub((p), (v), __ATOMIC_SEQ_CST)
#define seq_cas(p, old, new)	__atomic_compare_exchange_n((p), (old), (new), false, \
							    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static inline uint32_t fflags(const struct ksync_bqueue *q)
{
	return futex_flags_for(load_relaxed(&q->flags) & KSYNC_BQUEUE_SHARED ? KSYNC_SHARED : 0);
}

static inline uint32_t *side_word(struct ksync_bqueue *q, int s)
{
	return s == GET ? &q->get_word : &q->put_word;
}

static inline uint32_t *side_reg(struct ksync_bqueue *q, int s)
{
	return s == GET ? &q->getters : &q->putters;
}

static inline uint32_t *side_res(struct ksync_bqueue *q, int s)
{
	return s == GET ? &q->get_res : &q->put_res;
}

static inline uint32_t starving_bit(int s)
{
	return s == GET ? KSYNC_BQUEUE_STARVING_GET : KSYNC_BQUEUE_STARVING_PUT;
}

/* Units side @s has when the queue holds @len items. */
static inline uint32_t avail(const struct ksync_bqueue *q, int s, uint32_t len)
{
	return s == GET ? len : load_relaxed(&q->capacity) - len;
}

/* ---- the internal lock ------------------------------------------------------ */

#define UNLOCKED	KSYNC_BQUEUE_UNLOCKED
#define LOCKED		KSYNC_BQUEUE_LOCKED
#define CONTENDED	KSYNC_BQUEUE_LOCKED_WAITERS

static bool qlock_spin(struct ksync_bqueue *q)
{
	for (int i = 0; i < SPIN_LIMIT; i++) {
		uint32_t v = UNLOCKED;

		if (load_relaxed(&q->lock) == UNLOCKED && cas_acquire(&q->lock, &v, LOCKED))
			return true;
		cpu_relax();
	}
	return false;
}

/* Threads: take the lock, sleeping on it if need be. */
static int qlock(struct ksync_bqueue *q)
{
	uint32_t v = UNLOCKED;

	if (likely(cas_acquire(&q->lock, &v, LOCKED)) || qlock_spin(q))
		return 0;
	for (;;) {
		int r;

		if (__atomic_exchange_n(&q->lock, CONTENDED, __ATOMIC_ACQUIRE) == UNLOCKED)
			return 0;
		TEST_POINT("bqueue.lock.park", q);
		r = wait_word(&q->lock, fflags(q), CONTENDED, CLOCK_MONOTONIC, NULL);
		if (r && r != -EAGAIN && r != -EINTR)
			return r;
	}
}

/*
 * Ops: take the lock without blocking the thread, or say to sleep on it
 * (*park). A waiter the lock's wake woke takes it as CONTENDED, since
 * others may still sleep on it.
 */
static bool qlock_op(struct ksync_bqueue *q, bool woken, uint32_t *park)
{
	uint32_t v = UNLOCKED;

	if (!woken && (cas_acquire(&q->lock, &v, LOCKED) || qlock_spin(q)))
		return true;
	if (__atomic_exchange_n(&q->lock, CONTENDED, __ATOMIC_ACQUIRE) == UNLOCKED)
		return true;
	*park = CONTENDED;
	return false;
}

static void qunlock(struct ksync_bqueue *q)
{
	if (__atomic_exchange_n(&q->lock, UNLOCKED, __ATOMIC_RELEASE) == CONTENDED)
		wake_traced(&q->lock, fflags(q), q, KSYNC_KIND_BQUEUE, 1);
}

/* An op woken on the lock will not take it: whoever sleeps on it must still
 * be woken, now or by the holder's unlock. */
static void qlock_pass_on(struct ksync_bqueue *q)
{
	uint32_t v = load_relaxed(&q->lock);

	for (;;) {
		if (v == UNLOCKED) {
			wake_traced(&q->lock, fflags(q), q, KSYNC_KIND_BQUEUE, 1);
			return;
		}
		if (v == CONTENDED || cas_acquire(&q->lock, &v, CONTENDED))
			return;
	}
}

/* ---- items ------------------------------------------------------------------- */

static inline char *buf(struct ksync_bqueue *q)
{
	return (char *)q + q->buf_off;
}

static inline size_t isize(const struct ksync_bqueue *q)
{
	return (size_t)q->item_size;
}

/* PRIORITY bookkeeping, at the start of the buffer: a binary heap of
 * entries, then a stack of free slots, then the items. */
struct pent {
	uint64_t key;
	uint64_t seq;
	uint32_t slot;
	uint32_t pad;
};

#define PENT_BYTES	(sizeof(struct pent) + sizeof(uint32_t))

static inline size_t prio_meta(uint32_t capacity)
{
	return ((size_t)capacity * PENT_BYTES + 7) & ~(size_t)7;
}

static inline struct pent *heap(struct ksync_bqueue *q)
{
	return (struct pent *)(void *)buf(q);
}

static inline uint32_t *free_slots(struct ksync_bqueue *q)
{
	return (uint32_t *)(void *)(buf(q) + (size_t)q->capacity * sizeof(struct pent));
}

static inline char *prio_items(struct ksync_bqueue *q)
{
	return buf(q) + prio_meta(q->capacity);
}

static inline bool before(const struct pent *a, const struct pent *b)
{
	return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void prio_put(struct ksync_bqueue *q, uint32_t len, const char *item)
{
	struct pent *h = heap(q), e;
	uint32_t i = len;

	e.slot = free_slots(q)[q->capacity - len - 1];
	e.seq = q->seq++;
	e.pad = 0;
	memcpy(&e.key, item, sizeof(e.key));
	memcpy(prio_items(q) + (size_t)e.slot * isize(q), item, isize(q));
	while (i > 0 && before(&e, &h[(i - 1) / 2])) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = e;
}

static void prio_get(struct ksync_bqueue *q, uint32_t len, char *out)
{
	struct pent *h = heap(q), last = h[len - 1];
	uint32_t i = 0, n = len - 1;

	memcpy(out, prio_items(q) + (size_t)h[0].slot * isize(q), isize(q));
	free_slots(q)[q->capacity - len] = h[0].slot;
	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && before(&h[c + 1], &h[c]))
			c++;
		if (!before(&h[c], &last))
			break;
		h[i] = h[c];
		i = c;
	}
	if (n)
		h[i] = last;
}

/* Copy @k items between the ring slots from @pos on and @p (to the ring if
 * @in); the ring wraps at most once. */
static void ring_copy(struct ksync_bqueue *q, uint32_t pos, char *p, uint32_t k, bool in)
{
	uint32_t first = min_u32(k, q->capacity - pos);
	size_t sz = isize(q);
	char *slot = buf(q) + (size_t)pos * sz;

	if (in) {
		memcpy(slot, p, first * sz);
		memcpy(buf(q), p + first * sz, (size_t)(k - first) * sz);
	} else {
		memcpy(p, slot, first * sz);
		memcpy(p + first * sz, buf(q), (size_t)(k - first) * sz);
	}
}

/* Under the lock: move @k units for side @s, to or from @data. */
static void move_items(struct ksync_bqueue *q, int s, char *data, uint32_t k, uint32_t len)
{
	uint32_t order = load_relaxed(&q->flags) & KSYNC_BQUEUE_ORDER_MASK, cap = q->capacity;

	if (order == KSYNC_BQUEUE_PRIORITY) {
		for (uint32_t i = 0; i < k; i++) {
			if (s == PUT)
				prio_put(q, len + i, data + (size_t)i * isize(q));
			else
				prio_get(q, len - i, data + (size_t)i * isize(q));
		}
		return;
	}
	if (s == PUT) {
		ring_copy(q, (uint32_t)(((uint64_t)q->head + len) % cap), data, k, true);
	} else if (order == KSYNC_BQUEUE_FIFO) {
		ring_copy(q, q->head, data, k, false);
		q->head = (uint32_t)(((uint64_t)q->head + k) % cap);
	} else {
		for (uint32_t i = 0; i < k; i++)
			ring_copy(q, (uint32_t)(((uint64_t)q->head + len - 1 - i) % cap),
				  data + (size_t)i * isize(q), 1, false);
	}
}

/* ---- the protocol ------------------------------------------------------------ */

/* A waiter's own state: on a thread's stack, or in an op's family words. */
struct waiter {
	uint32_t n;		/* units wanted (takes 1..n) */
	bool registered;	/* counted in the side's reg */
	bool woken;		/* consumed a wake of the side's word, not used yet */
};

/* Wakes a producer owes the other side, made after the unlock. */
struct plan {
	uint32_t reserved;	/* units it reserved, one wake each */
	uint32_t wake;		/* more wakes for free units */
	bool drained;		/* it took the last item of a closed queue */
};

/* How many of @reg registered waiters @free units (@k of them new) leave
 * without a unit: the wakes @k new units call for. */
static uint32_t wakes_for(uint32_t reg, uint32_t free, uint32_t k)
{
	uint32_t covered = free > k ? free - k : 0;	/* others took some: wake more */

	return reg > covered ? min_u32(k, reg - covered) : 0;
}

/*
 * Under the lock, after the queue changed: @k units went to side @o, which
 * now has @av of them. In hand-off mode reserve them for registered
 * waiters that have none; decide the wakes.
 */
static void produced(struct ksync_bqueue *q, int o, uint32_t k, uint32_t av, struct plan *p)
{
	uint32_t *resw = side_res(q, o), reg, res, r = 0;

	seq_add(side_word(q, o), 1);
	reg = seq_load(side_reg(q, o));
	res = seq_load(resw);
	if (load_relaxed(&q->flags) & starving_bit(o)) {
		do {
			r = reg > res ? min_u32(k, reg - res) : 0;
		} while (r && !seq_cas(resw, &res, res + r));
		res += r;
	}
	p->reserved = r;
	/* res only drops meanwhile (leavers), so av - res >= k - r */
	p->wake = k > r ? wakes_for(reg, av > res ? av - res : 0, k - r) : 0;
}

static void unreserve(struct ksync_bqueue *q, int s, uint32_t d);

static void run_plan(struct ksync_bqueue *q, int o, const struct plan *p)
{
	uint32_t n = p->reserved + p->wake;
	int woken;

	/* Getters that wait for items reserved for others must learn that
	 * none will come. */
	if (p->drained && seq_load(&q->getters))
		wake_traced(&q->get_word, fflags(q), q, KSYNC_KIND_BQUEUE, INT_MAX);
	if (!n)
		return;
	TEST_POINT("bqueue.produce.wake", q);
	woken = wake_traced(side_word(q, o), fflags(q), q, KSYNC_KIND_BQUEUE, (int)n);
	if (woken < 0)
		woken = 0;
	if ((uint32_t)woken < p->reserved)
		unreserve(q, o, p->reserved - (uint32_t)woken);
}

/* Free units of side @s, as seen without the lock. */
static uint32_t free_now(struct ksync_bqueue *q, int s)
{
	uint32_t av = avail(q, s, seq_load(&q->len)), res = seq_load(side_res(q, s));

	return av > res ? av - res : 0;
}

/* Up to @d reservations nobody will take become free units again. */
static void unreserve(struct ksync_bqueue *q, int s, uint32_t d)
{
	uint32_t *resw = side_res(q, s), res = seq_load(resw), e, n;

	do {
		e = min_u32(d, res);
		if (!e)
			return;
	} while (!seq_cas(resw, &res, res - e));
	seq_add(side_word(q, s), 1);
	TEST_POINT("bqueue.unreserve.bumped", q);
	n = wakes_for(seq_load(side_reg(q, s)), free_now(q, s), e);
	if (n)
		wake_traced(side_word(q, s), fflags(q), q, KSYNC_KIND_BQUEUE, (int)n);
}

/*
 * The waiter stops waiting on side @s without taking. If it consumed a
 * wake it will not use, that wake may have been owed to a sleeper: give a
 * reservation back (every one if @all: the wakes of a multi-word wait are
 * not all reported, see select), bump the word, and wake for the free
 * units. Needs no lock: a thread may call it anywhere, an op from abandon.
 */
static void leave(struct ksync_bqueue *q, int s, struct waiter *w, bool all)
{
	uint32_t *resw = side_res(q, s), res, f, reg;

	if (w->registered)
		seq_sub(side_reg(q, s), 1);
	w->registered = false;
	if (!w->woken)
		return;
	w->woken = false;
	res = seq_load(resw);
	while (res && !seq_cas(resw, &res, all ? 0 : res - 1))
		;
	seq_add(side_word(q, s), 1);
	TEST_POINT("bqueue.leave.bumped", q);
	f = free_now(q, s);
	reg = seq_load(side_reg(q, s));
	if (f && reg)
		wake_traced(side_word(q, s), fflags(q), q, KSYNC_KIND_BQUEUE,
			    all ? (int)min_u32(min_u32(f, reg), INT_MAX) : 1);
}

/*
 * Under the lock: one try of waiter @w to move up to w->n units for side
 * @s. Returns the number moved (> 0; then *p holds the wakes to make after
 * the unlock), 0 (if @may_wait the waiter is registered and must sleep on
 * *park), or -ESHUTDOWN. @waited: ns since it first slept (starvation).
 */
static int take_locked(struct ksync_bqueue *q, int s, struct waiter *w, char *data,
		       bool may_wait, int64_t waited, struct plan *p, uint32_t *park)
{
	uint32_t *resw = side_res(q, s), v = seq_load(side_word(q, s));
	uint32_t flags = load_relaxed(&q->flags), len = load_relaxed(&q->len);
	uint32_t av = avail(q, s, len), res, mine, k;

	if ((flags & KSYNC_BQUEUE_CLOSED) && (s == PUT || len == 0))
		return -ESHUTDOWN;
	res = seq_load(resw);
	for (;;) {
		/* a woken waiter may take one reserved unit, anyone the free ones */
		mine = w->woken && res ? 1 : 0;
		k = min_u32(w->n, mine + (av > res ? av - res : 0));
		if (!k || !mine || seq_cas(resw, &res, res - 1))
			break;
	}
	TEST_POINT("bqueue.take.decided", q);
	if (!k) {
		if (!may_wait)
			return 0;
		if (w->woken && waited >= KSYNC_BQUEUE_STARVE_NS && !(flags & starving_bit(s)))
			__atomic_fetch_or(&q->flags, starving_bit(s), __ATOMIC_RELAXED);
		if (!w->registered)
			seq_add(side_reg(q, s), 1);
		w->registered = true;
		w->woken = false;	/* accounted for: it is registered again */
		*park = v;
		return 0;
	}
	move_items(q, s, data, k, len);
	len = s == GET ? len - k : len + k;
	seq_store(&q->len, len);
	if (w->registered)
		seq_sub(side_reg(q, s), 1);
	w->registered = false;
	if (w->woken && waited < KSYNC_BQUEUE_STARVE_NS && (flags & starving_bit(s)))
		__atomic_fetch_and(&q->flags, ~starving_bit(s), __ATOMIC_RELAXED);
	w->woken = false;
	produced(q, 1 - s, k, avail(q, 1 - s, len), p);
	p->drained = s == GET && !len && (flags & KSYNC_BQUEUE_CLOSED);
	if (p->drained)
		seq_add(&q->get_word, 1);
	return (int)k;
}

/* ---- threads ------------------------------------------------------------------ */

/* Move 1..n units for side @s, waiting if @may_wait. Returns the count or
 * an error (-EAGAIN for a try that found nothing). */
static int thread_move(struct ksync_bqueue *q, int s, char *data, uint32_t n, bool may_wait,
		       clockid_t clock, const struct timespec *deadline)
{
	struct waiter w = { .n = n };
	struct plan p;
	uint32_t park, me;
	int64_t started;
	int r;

	if (may_wait && (r = ksync_check_deadline(clock, deadline)))
		return r;
	r = qlock(q);
	if (r)
		return r;
	r = take_locked(q, s, &w, data, may_wait, 0, &p, &park);
	if (likely(r != 0 || !may_wait)) {
		qunlock(q);
		if (r > 0)
			run_plan(q, 1 - s, &p);
		return r ? r : -EAGAIN;
	}
	me = ksync_self_tid();
	started = ksync_mono_ns();
	trace_wait_begin(q, KSYNC_KIND_BQUEUE, KSYNC_WORLD_THREAD, me);
	for (;;) {
		qunlock(q);
		TEST_POINT("bqueue.wait.park", q);
		r = wait_word(side_word(q, s), fflags(q), park, clock, deadline);
		if (r == 0) {
			w.woken = true;
			TEST_POINT("bqueue.wait.woken", q);
		} else if (r != -EAGAIN && r != -EINTR) {
			leave(q, s, &w, false);	/* timed out or refused */
			break;
		}
		r = qlock(q);
		if (r) {
			leave(q, s, &w, false);
			break;
		}
		r = take_locked(q, s, &w, data, true, ksync_mono_ns() - started, &p, &park);
		if (r > 0) {
			qunlock(q);
			run_plan(q, 1 - s, &p);
			break;
		}
		if (r < 0) {
			qunlock(q);
			leave(q, s, &w, false);
			break;
		}
	}
	trace_wait_end(q, KSYNC_KIND_BQUEUE, KSYNC_WORLD_THREAD, me, r > 0 ? 0 : r);
	return r;
}

static int one(int r)
{
	return r > 0 ? 0 : r;
}

KSYNC_API int ksync_bqueue_put_until(struct ksync_bqueue *q, const void *item, clockid_t clock,
				     const struct timespec *deadline)
{
	return one(thread_move(q, PUT, (char *)(uintptr_t)item, 1, true, clock, deadline));
}

KSYNC_API int ksync_bqueue_put(struct ksync_bqueue *q, const void *item)
{
	return ksync_bqueue_put_until(q, item, CLOCK_MONOTONIC, NULL);
}

KSYNC_API int ksync_bqueue_try_put(struct ksync_bqueue *q, const void *item)
{
	return one(thread_move(q, PUT, (char *)(uintptr_t)item, 1, false, CLOCK_MONOTONIC, NULL));
}

KSYNC_API int ksync_bqueue_get_until(struct ksync_bqueue *q, void *out, clockid_t clock,
				     const struct timespec *deadline)
{
	return one(thread_move(q, GET, out, 1, true, clock, deadline));
}

KSYNC_API int ksync_bqueue_get(struct ksync_bqueue *q, void *out)
{
	return ksync_bqueue_get_until(q, out, CLOCK_MONOTONIC, NULL);
}

KSYNC_API int ksync_bqueue_try_get(struct ksync_bqueue *q, void *out)
{
	/* Empty and open: no need for the lock to say so. */
	if (!seq_load(&q->len) && !(load_acquire(&q->flags) & KSYNC_BQUEUE_CLOSED))
		return -EAGAIN;
	return one(thread_move(q, GET, out, 1, false, CLOCK_MONOTONIC, NULL));
}

KSYNC_API int ksync_bqueue_put_many(struct ksync_bqueue *q, const void *items, uint32_t n,
				    clockid_t clock, const struct timespec *deadline)
{
	if (!n)
		return -EINVAL;
	return thread_move(q, PUT, (char *)(uintptr_t)items, n, true, clock, deadline);
}

KSYNC_API int ksync_bqueue_get_many(struct ksync_bqueue *q, void *out, uint32_t max,
				    clockid_t clock, const struct timespec *deadline)
{
	if (!max)
		return -EINVAL;
	return thread_move(q, GET, out, max, true, clock, deadline);
}

KSYNC_API int ksync_bqueue_try_put_many(struct ksync_bqueue *q, const void *items, uint32_t n)
{
	if (!n)
		return -EINVAL;
	return thread_move(q, PUT, (char *)(uintptr_t)items, n, false, CLOCK_MONOTONIC, NULL);
}

KSYNC_API int ksync_bqueue_try_get_many(struct ksync_bqueue *q, void *out, uint32_t max)
{
	if (!max)
		return -EINVAL;
	return thread_move(q, GET, out, max, false, CLOCK_MONOTONIC, NULL);
}

/* ---- set-up, close, snapshots ----------------------------------------------- */

KSYNC_API size_t ksync_bqueue_buf_size(unsigned order, size_t item_size, uint32_t capacity)
{
	size_t meta = 0;

	if (order > KSYNC_BQUEUE_PRIORITY || !item_size || !capacity ||
	    capacity > KSYNC_BQUEUE_CAPACITY_MAX ||
	    (order == KSYNC_BQUEUE_PRIORITY && item_size < sizeof(uint64_t)))
		return 0;
	if (order == KSYNC_BQUEUE_PRIORITY)
		meta = prio_meta(capacity);
	if (item_size > (SIZE_MAX - meta) / capacity)
		return 0;
	return meta + item_size * capacity;
}

KSYNC_API int ksync_bqueue_init(struct ksync_bqueue *q, unsigned order, size_t item_size,
				uint32_t capacity, void *b, size_t buf_size, unsigned flags)
{
	size_t need = ksync_bqueue_buf_size(order, item_size, capacity);

	if (!need || !b || ((uintptr_t)b & 7) || buf_size < need || (flags & ~KSYNC_SHARED))
		return -EINVAL;
	memset(q, 0, sizeof(*q));
	q->capacity = capacity;
	q->item_size = item_size;
	q->buf_off = (int64_t)((uintptr_t)b - (uintptr_t)q);
	if (order == KSYNC_BQUEUE_PRIORITY)
		for (uint32_t i = 0; i < capacity; i++)
			free_slots(q)[i] = i;
	store_release(&q->flags, order | (flags & KSYNC_SHARED ? KSYNC_BQUEUE_SHARED : 0));
	return 0;
}

KSYNC_API int ksync_bqueue_destroy(struct ksync_bqueue *q)
{
	return load_acquire(&q->getters) || load_acquire(&q->putters) || load_acquire(&q->lock) ?
	       -EBUSY : 0;
}

KSYNC_API int ksync_bqueue_close(struct ksync_bqueue *q)
{
	int r = qlock(q);

	if (r)
		return r;
	if (load_relaxed(&q->flags) & KSYNC_BQUEUE_CLOSED) {
		qunlock(q);
		return -EALREADY;
	}
	__atomic_fetch_or(&q->flags, KSYNC_BQUEUE_CLOSED, __ATOMIC_SEQ_CST);
	seq_add(&q->get_word, 1);
	seq_add(&q->put_word, 1);
	qunlock(q);
	/* Registered before the close, or seeing CLOSED when they look. */
	for (int s = GET; s <= PUT; s++)
		if (seq_load(side_reg(q, s)))
			wake_traced(side_word(q, s), fflags(q), q, KSYNC_KIND_BQUEUE, INT_MAX);
	return 0;
}

KSYNC_API bool ksync_bqueue_is_closed(const struct ksync_bqueue *q)
{
	return load_acquire(&q->flags) & KSYNC_BQUEUE_CLOSED;
}

KSYNC_API uint32_t ksync_bqueue_len(const struct ksync_bqueue *q)
{
	return load_relaxed(&q->len);
}

KSYNC_API uint32_t ksync_bqueue_capacity(const struct ksync_bqueue *q)
{
	return load_relaxed(&q->capacity);
}

/* ---- async ops ----------------------------------------------------------------- */

/*
 * The op's family words: [0] the items, [1] n | side << 32 | many << 33,
 * [2] REGISTERED | WOKEN | ON_LOCK (it sleeps on the internal lock, not
 * on its side's word).
 */
#define F_REGISTERED	1u
#define F_WOKEN		2u
#define F_ON_LOCK	4u

static struct waiter op_waiter(struct ksync_op *op)
{
	uint64_t *f = op_state(op)->family;

	return (struct waiter){
		.n = (uint32_t)f[1],
		.registered = f[2] & F_REGISTERED,
		.woken = f[2] & F_WOKEN,
	};
}

static void op_keep(struct ksync_op *op, const struct waiter *w, bool on_lock)
{
	op_state(op)->family[2] = (w->registered ? F_REGISTERED : 0) | (w->woken ? F_WOKEN : 0) |
				  (on_lock ? F_ON_LOCK : 0);
}

static inline int op_side(struct ksync_op *op)
{
	return (int)(op_state(op)->family[1] >> 32 & 1);
}

static int bq_attempt(struct ksync_op *op, bool woken, struct ksync_park *park)
{
	struct op_state *st = op_state(op);
	struct ksync_bqueue *q = op_prim(op);
	struct waiter w = op_waiter(op);
	bool lock_woken = false;
	int s = op_side(op);
	struct plan p;
	int r;

	if (st->family[2] & F_ON_LOCK)
		lock_woken = woken;
	else if (woken)
		w.woken = true;
	if (!qlock_op(q, lock_woken, &park->value)) {
		park->word = &q->lock;
		op_keep(op, &w, true);
		return 0;
	}
	r = take_locked(q, s, &w, (char *)(uintptr_t)st->family[0], true,
			st->started_ns ? ksync_mono_ns() - st->started_ns : 0, &p, &park->value);
	qunlock(q);
	if (r > 0) {
		run_plan(q, 1 - s, &p);
		st->ok_result = st->family[1] >> 33 ? r : 0;
		op_keep(op, &w, false);
		return 1;
	}
	if (r < 0)
		leave(q, s, &w, false);
	else
		park->word = side_word(q, s);
	op_keep(op, &w, false);
	return r;
}

static void bq_abandon(struct ksync_op *op, bool woken)
{
	struct ksync_bqueue *q = op_prim(op);
	struct waiter w = op_waiter(op);

	if (op_state(op)->family[2] & F_ON_LOCK) {
		if (woken)
			qlock_pass_on(q);
	} else if (woken) {
		w.woken = true;
	}
	leave(q, op_side(op), &w, false);
	op_keep(op, &w, false);
}

static const struct ksync_waitable bqueue_waitable = {
	.kind = KSYNC_KIND_BQUEUE,
	.attempt = bq_attempt,
	.abandon = bq_abandon,
};

static void op_init(struct ksync_op *op, struct ksync_bqueue *q, int s, const void *data,
		    uint32_t n, bool many)
{
	ksync_op_prepare(op, &bqueue_waitable, q, 0, fflags(q));
	op_state(op)->family[0] = (uint64_t)(uintptr_t)data;
	op_state(op)->family[1] = n | (uint64_t)s << 32 | (uint64_t)many << 33;
	op_state(op)->park.word = side_word(q, s);
}

KSYNC_API void ksync_op_bqueue_put(struct ksync_op *op, struct ksync_bqueue *q, const void *item)
{
	op_init(op, q, PUT, item, 1, false);
}

KSYNC_API void ksync_op_bqueue_get(struct ksync_op *op, struct ksync_bqueue *q, void *out)
{
	op_init(op, q, GET, out, 1, false);
}

KSYNC_API int ksync_op_bqueue_put_many(struct ksync_op *op, struct ksync_bqueue *q,
				       const void *items, uint32_t n)
{
	if (!n)
		return -EINVAL;
	op_init(op, q, PUT, items, n, true);
	return 0;
}

KSYNC_API int ksync_op_bqueue_get_many(struct ksync_op *op, struct ksync_bqueue *q, void *out,
				       uint32_t max)
{
	if (!max)
		return -EINVAL;
	op_init(op, q, GET, out, max, true);
	return 0;
}
