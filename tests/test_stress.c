/* SPDX-License-Identifier: MIT */
/*
 * Stress: threads and several rings hammer one Lock and one Semaphore with
 * random hold times, deadlines and cancellations. Checked, not assumed:
 *  - mutual exclusion (a holder count that must never exceed 1 for the lock
 *    and PERMITS for the semaphore, and a plain counter only the lock
 *    protects);
 *  - permit conservation (every grant released once; value back to PERMITS);
 *  - every op completes exactly once with a documented outcome;
 *  - nothing is stuck at the end (no waiters, words idle).
 * The CapacityLimiter has its own section below, and so has the bounded
 * queue (the same mix of worlds, deadlines and cancels: every item whose put
 * succeeded is got exactly once, no item whose put failed is ever got,
 * nothing is left reserved or registered), and the RBarrier (with the
 * CountdownEvent and Latch that pace its rounds: every waiter of a cycle is
 * released exactly once, with the whole cycle passing or breaking).
 */
#include "harness.h"

enum {
	THREADS = 4,
	RINGS = 3,
	TASKS = 6,	/* per ring */
	ROUNDS = 3000,	/* per actor */
	PERMITS = 3,
};

static struct ksync_lock lock;
static struct ksync_sem sem;

static int lock_inside, sem_inside, sem_max_inside;
static long protected_counter;	/* only touched with the lock held */
static long lock_grants, sem_grants, timeouts, cancels;

static void enter_lock(void)
{
	assert_int_equal(__atomic_fetch_add(&lock_inside, 1, __ATOMIC_RELAXED), 0);
	protected_counter++;
	__atomic_fetch_add(&lock_grants, 1, __ATOMIC_RELAXED);
}

static void leave_lock(void)
{
	assert_int_equal(__atomic_fetch_sub(&lock_inside, 1, __ATOMIC_RELAXED), 1);
}

static void enter_sem(void)
{
	int n = __atomic_add_fetch(&sem_inside, 1, __ATOMIC_RELAXED);

	assert_true(n <= PERMITS);
	if (n > __atomic_load_n(&sem_max_inside, __ATOMIC_RELAXED))
		__atomic_store_n(&sem_max_inside, n, __ATOMIC_RELAXED);
	__atomic_fetch_add(&sem_grants, 1, __ATOMIC_RELAXED);
}

static void leave_sem(void)
{
	__atomic_fetch_sub(&sem_inside, 1, __ATOMIC_RELAXED);
}

static void count_failure(int r)
{
	if (r == -ETIMEDOUT)
		__atomic_fetch_add(&timeouts, 1, __ATOMIC_RELAXED);
	else if (r == -ECANCELED)
		__atomic_fetch_add(&cancels, 1, __ATOMIC_RELAXED);
	else
		fail_msg("unexpected result %d", r);
}

/* ---- threads ------------------------------------------------------------ */

static void *thread_actor(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;

	for (int i = 0; i < ROUNDS; i++) {
		bool use_lock = rnd(&seed) & 1;
		struct timespec dl;
		const struct timespec *dlp = NULL;
		int r;

		if (rnd(&seed) % 3 == 0) {
			assert_int_equal(ksync_deadline_after(&dl, CLOCK_MONOTONIC,
							      rnd(&seed) % 200000), 0);
			dlp = &dl;
		}
		r = use_lock ? ksync_lock_acquire_until(&lock, CLOCK_MONOTONIC, dlp)
			     : ksync_sem_acquire_until(&sem, CLOCK_MONOTONIC, dlp);
		if (r) {
			count_failure(r);
			continue;
		}
		use_lock ? enter_lock() : enter_sem();
		if (rnd(&seed) & 1)
			sleep_ns(rnd(&seed) % 50000);
		if (use_lock) {
			leave_lock();
			assert_int_equal(ksync_lock_release(&lock), 0);
		} else {
			leave_sem();
			assert_int_equal(ksync_sem_release(&sem, 1), 0);
		}
	}
	return NULL;
}

/* ---- ring tasks --------------------------------------------------------- */

struct task {
	struct ksync_loop *loop;
	struct ksync_op acq;	/* the acquire */
	struct ksync_op timer;	/* hold time, or the moment to cancel acq */
	uint64_t seed;
	int round;
	bool use_lock;
	bool holding;
	bool acq_busy, timer_busy;
	int *finished;
};

static void task_next(struct task *t);

static void task_release(struct task *t)
{
	if (t->use_lock) {
		leave_lock();
		assert_int_equal(ksync_lock_release_task(&lock, (uintptr_t)t), 0);
	} else {
		leave_sem();
		assert_int_equal(ksync_sem_release(&sem, 1), 0);
	}
	t->holding = false;
}

/* Start the next round once neither op is owed a completion. */
static void task_maybe_next(struct task *t)
{
	if (t->acq_busy || t->timer_busy)
		return;
	if (t->holding)
		task_release(t);
	task_next(t);
}

static void timer_done(struct ksync_op *op)
{
	struct task *t = op->data;

	t->timer_busy = false;
	if (t->acq_busy)
		ksync_loop_cancel(t->loop, &t->acq);	/* may race the grant */
	task_maybe_next(t);
}

static void acq_done(struct ksync_op *op)
{
	struct task *t = op->data;

	t->acq_busy = false;
	if (op->result == 0) {
		t->use_lock ? enter_lock() : enter_sem();
		t->holding = true;
		/* Hold across a sleep sometimes, so others really wait. */
		if (!t->timer_busy && (rnd(&t->seed) & 1)) {
			t->timer.data = t;
			if (ksync_loop_sleep(t->loop, &t->timer, rnd(&t->seed) % 50000,
					     timer_done) == 0)
				t->timer_busy = true;
		}
	} else {
		count_failure(op->result);
	}
	task_maybe_next(t);
}

static void task_next(struct task *t)
{
	int r;

	if (t->round++ == ROUNDS) {
		(*t->finished)++;
		return;
	}
	t->use_lock = rnd(&t->seed) & 1;
	if (t->use_lock)
		ksync_op_lock(&t->acq, &lock, (uintptr_t)t);
	else
		ksync_op_sem(&t->acq, &sem);
	t->acq.data = t;
	if (rnd(&t->seed) % 3 == 0) {
		struct timespec dl;

		ksync_deadline_after(&dl, CLOCK_MONOTONIC, rnd(&t->seed) % 200000);
		assert_int_equal(ksync_op_set_deadline(&t->acq, CLOCK_MONOTONIC, &dl), 0);
	}
	t->acq_busy = true;
	r = ksync_loop_start(t->loop, &t->acq, acq_done);
	assert_true(r == 0 || r == KSYNC_OP_PENDING);
	if (r == 0) {
		acq_done(&t->acq);	/* finished at once: no callback comes */
		return;
	}
	/* Sometimes arrange a cancel at a random moment. */
	if (rnd(&t->seed) % 3 == 0) {
		t->timer.data = t;
		assert_int_equal(ksync_loop_sleep(t->loop, &t->timer, rnd(&t->seed) % 100000,
						  timer_done), 0);
		t->timer_busy = true;
	}
}

static void *ring_actor(void *arg)
{
	unsigned idx = (unsigned)(uintptr_t)arg;
	struct ksync_loop loop;
	struct task tasks[TASKS];
	int finished = 0;

	assert_int_equal(ksync_loop_init(&loop, 64, ring_setups[idx % N_RING_SETUPS]), 0);
	memset(tasks, 0, sizeof(tasks));
	for (int i = 0; i < TASKS; i++) {
		tasks[i].loop = &loop;
		tasks[i].seed = (idx + 1) * 1000003ull + (uint64_t)i * 7919 + 1;
		tasks[i].finished = &finished;
		task_next(&tasks[i]);
	}
	while (finished < TASKS)
		assert_true(ksync_loop_run_once(&loop, 1) >= 0);
	assert_int_equal(ksync_loop_busy(&loop), 0);
	ksync_loop_exit(&loop);
	return NULL;
}

static void test_stress(void **state)
{
	pthread_t th[THREADS], rings[RINGS];
	long attempts = (long)ROUNDS * (THREADS + RINGS * TASKS);

	(void)state;
	ksync_lock_init(&lock, 0);
	assert_int_equal(ksync_sem_init(&sem, PERMITS, PERMITS, 0), 0);
	for (int i = 0; i < RINGS; i++)
		rings[i] = spawn(ring_actor, (void *)(uintptr_t)i);
	for (int i = 0; i < THREADS; i++)
		th[i] = spawn(thread_actor, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < THREADS; i++)
		join(th[i]);
	for (int i = 0; i < RINGS; i++)
		join(rings[i]);

	print_message("stress: %ld lock grants, %ld permits, %ld timeouts, %ld cancels "
		      "(max %d permits held at once)\n",
		      lock_grants, sem_grants, timeouts, cancels, sem_max_inside);
	/* Every attempt ended exactly once. */
	assert_int_equal(lock_grants + sem_grants + timeouts + cancels, attempts);
	assert_int_equal(protected_counter, lock_grants);
	/* Everything given back, nobody left behind. */
	assert_int_equal(peek(lock.word), 0);
	assert_int_equal(ksync_lock_destroy(&lock), 0);
	assert_int_equal(ksync_sem_value(&sem), PERMITS);
	assert_int_equal(peek(sem.waiters), 0);
	assert_int_equal(lock_inside, 0);
	assert_int_equal(sem_inside, 0);
	assert_true(lock_grants > 0 && sem_grants > 0 && timeouts > 0 && cancels > 0);
	assert_int_equal(sem_max_inside, PERMITS);	/* the permits were really contended */
}

/* ---- CapacityLimiter ------------------------------------------------------
 *
 * Threads and ring tasks borrow from one limiter (tasks by token) with
 * random holds, deadlines and cancels while a resizer changes the total
 * between 1 and LIM_MAX. Checked at every grant: the borrower holds
 * exactly one borrow (ksync_limiter_held), the borrowers inside never
 * exceed LIM_MAX, and never exceed the current total unless a shrink began
 * since the borrow started (a shrink lets borrowers return first). At the
 * end: every attempt ended once, nothing borrowed, reserved or waiting,
 * every slot free.
 */
enum { LIM_MAX = 4, LIM_THREADS = 3, LIM_RINGS = 2, LIM_TASKS = 5, LIM_ROUNDS = 2000 };

static struct ksync_limiter lim;
static struct ksync_limiter_slot lim_slots[2 * LIM_MAX];
static int lim_inside, lim_max_inside, lim_stop;
static unsigned lim_shrinks;
static long lim_grants;

static void lim_enter(uint64_t token, unsigned shrinks_before)
{
	int n = __atomic_add_fetch(&lim_inside, 1, __ATOMIC_SEQ_CST);
	uint32_t total = ksync_limiter_total(&lim);

	assert_int_equal(ksync_limiter_held(&lim, token), 1);
	assert_true(n <= LIM_MAX);
	if (__atomic_load_n(&lim_shrinks, __ATOMIC_SEQ_CST) == shrinks_before)
		assert_true((uint32_t)n <= total);
	if (n > __atomic_load_n(&lim_max_inside, __ATOMIC_RELAXED))
		__atomic_store_n(&lim_max_inside, n, __ATOMIC_RELAXED);
	__atomic_fetch_add(&lim_grants, 1, __ATOMIC_RELAXED);
}

static void lim_leave(void)
{
	__atomic_fetch_sub(&lim_inside, 1, __ATOMIC_SEQ_CST);
}

static void *lim_resizer(void *arg)
{
	uint64_t seed = (uintptr_t)arg;
	uint32_t total = LIM_MAX;

	while (!__atomic_load_n(&lim_stop, __ATOMIC_ACQUIRE)) {
		uint32_t next = 1 + rnd(&seed) % LIM_MAX;

		if (next < total)
			__atomic_fetch_add(&lim_shrinks, 1, __ATOMIC_SEQ_CST);
		assert_int_equal(ksync_limiter_set_total(&lim, next), 0);
		total = next;
		sleep_ns(rnd(&seed) % 100000);
	}
	return NULL;
}

static void *lim_thread_actor(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 7;

	for (int i = 0; i < LIM_ROUNDS; i++) {
		unsigned shrinks = __atomic_load_n(&lim_shrinks, __ATOMIC_SEQ_CST);
		struct timespec dl;
		const struct timespec *dlp = NULL;
		int r;

		if (rnd(&seed) % 3 == 0) {
			assert_int_equal(ksync_deadline_after(&dl, CLOCK_MONOTONIC,
							      rnd(&seed) % 200000), 0);
			dlp = &dl;
		}
		r = ksync_limiter_acquire_until(&lim, CLOCK_MONOTONIC, dlp);
		if (r) {
			count_failure(r);
			continue;
		}
		lim_enter(0, shrinks);
		assert_int_equal(ksync_limiter_try(&lim), -EDEADLK);
		if (rnd(&seed) & 1)
			sleep_ns(rnd(&seed) % 50000);
		lim_leave();
		assert_int_equal(ksync_limiter_release(&lim), 0);
	}
	return NULL;
}

struct lim_task {
	struct ksync_loop *loop;
	struct ksync_op acq, timer;
	uint64_t seed, token;
	unsigned shrinks;
	int round;
	bool holding, acq_busy, timer_busy;
	int *finished;
};

static void lim_task_next(struct lim_task *t);

static void lim_task_maybe_next(struct lim_task *t)
{
	if (t->acq_busy || t->timer_busy)
		return;
	if (t->holding) {
		lim_leave();
		assert_int_equal(ksync_limiter_release_task(&lim, t->token), 0);
		t->holding = false;
	}
	lim_task_next(t);
}

static void lim_timer_done(struct ksync_op *op)
{
	struct lim_task *t = op->data;

	t->timer_busy = false;
	if (t->acq_busy)
		ksync_loop_cancel(t->loop, &t->acq);	/* may race the grant */
	lim_task_maybe_next(t);
}

static void lim_acq_done(struct ksync_op *op)
{
	struct lim_task *t = op->data;

	t->acq_busy = false;
	if (op->result == 0) {
		lim_enter(t->token, t->shrinks);
		t->holding = true;
		if (!t->timer_busy && (rnd(&t->seed) & 1)) {
			t->timer.data = t;
			if (ksync_loop_sleep(t->loop, &t->timer, rnd(&t->seed) % 50000,
					     lim_timer_done) == 0)
				t->timer_busy = true;
		}
	} else {
		assert_int_equal(ksync_limiter_held(&lim, t->token), 0);
		count_failure(op->result);
	}
	lim_task_maybe_next(t);
}

static void lim_task_next(struct lim_task *t)
{
	int r;

	if (t->round++ == LIM_ROUNDS) {
		(*t->finished)++;
		return;
	}
	t->shrinks = __atomic_load_n(&lim_shrinks, __ATOMIC_SEQ_CST);
	ksync_op_limiter(&t->acq, &lim, t->token);
	t->acq.data = t;
	if (rnd(&t->seed) % 3 == 0) {
		struct timespec dl;

		ksync_deadline_after(&dl, CLOCK_MONOTONIC, rnd(&t->seed) % 200000);
		assert_int_equal(ksync_op_set_deadline(&t->acq, CLOCK_MONOTONIC, &dl), 0);
	}
	t->acq_busy = true;
	r = ksync_loop_start(t->loop, &t->acq, lim_acq_done);
	assert_true(r == 0 || r == KSYNC_OP_PENDING);
	if (r == 0) {
		lim_acq_done(&t->acq);
		return;
	}
	if (rnd(&t->seed) % 3 == 0) {
		t->timer.data = t;
		assert_int_equal(ksync_loop_sleep(t->loop, &t->timer, rnd(&t->seed) % 100000,
						  lim_timer_done), 0);
		t->timer_busy = true;
	}
}

static void *lim_ring_actor(void *arg)
{
	unsigned idx = (unsigned)(uintptr_t)arg;
	struct ksync_loop loop;
	struct lim_task tasks[LIM_TASKS];
	int finished = 0;

	assert_int_equal(ksync_loop_init(&loop, 64, ring_setups[idx % N_RING_SETUPS]), 0);
	memset(tasks, 0, sizeof(tasks));
	for (int i = 0; i < LIM_TASKS; i++) {
		tasks[i].loop = &loop;
		tasks[i].seed = (idx + 1) * 7919ull + (uint64_t)i * 104729 + 1;
		tasks[i].token = 1 + idx * LIM_TASKS + (uint64_t)i;
		tasks[i].finished = &finished;
		lim_task_next(&tasks[i]);
	}
	while (finished < LIM_TASKS)
		assert_true(ksync_loop_run_once(&loop, 1) >= 0);
	assert_int_equal(ksync_loop_busy(&loop), 0);
	ksync_loop_exit(&loop);
	return NULL;
}

static void test_stress_limiter(void **state)
{
	pthread_t th[LIM_THREADS], rings[LIM_RINGS], resizer;
	long attempts = (long)LIM_ROUNDS * (LIM_THREADS + LIM_RINGS * LIM_TASKS);

	(void)state;
	timeouts = cancels = 0;
	assert_int_equal(ksync_limiter_init(&lim, LIM_MAX, lim_slots, 2 * LIM_MAX, 0), 0);
	resizer = spawn(lim_resizer, (void *)(uintptr_t)99);
	for (int i = 0; i < LIM_RINGS; i++)
		rings[i] = spawn(lim_ring_actor, (void *)(uintptr_t)i);
	for (int i = 0; i < LIM_THREADS; i++)
		th[i] = spawn(lim_thread_actor, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < LIM_THREADS; i++)
		join(th[i]);
	for (int i = 0; i < LIM_RINGS; i++)
		join(rings[i]);
	__atomic_store_n(&lim_stop, 1, __ATOMIC_RELEASE);
	join(resizer);

	print_message("stress limiter: %ld borrows, %ld timeouts, %ld cancels, %u shrinks "
		      "(max %d borrowers at once)\n",
		      lim_grants, timeouts, cancels, lim_shrinks, lim_max_inside);
	assert_int_equal(lim_grants + timeouts + cancels, attempts);
	assert_int_equal(lim_inside, 0);
	assert_int_equal(ksync_limiter_borrowed(&lim), 0);
	assert_int_equal(peek(lim.waiters), 0);
	assert_int_equal(peek(lim.word) >> KSYNC_LIMITER_RESERVED_SHIFT, 0);
	for (int i = 0; i < 2 * LIM_MAX; i++)
		assert_int_equal(peek(lim_slots[i].key), 0);
	assert_int_equal(ksync_limiter_destroy(&lim), 0);
	assert_true(lim_grants > 0);
}

/* ---- bounded queue ------------------------------------------------------ */

enum { QCAP = 4, QACTORS = THREADS + RINGS * TASKS };

static struct ksync_bqueue bq;
static uint64_t bq_buf[QCAP];
static uint8_t bq_put[QACTORS << 13][2], bq_got[QACTORS << 13][2];
static long bq_puts, bq_gets, bq_fails;

/* item = actor << 13 | round, then the batch index */
#define BQ_ID(actor, round)	((uint32_t)(actor) << 13 | (uint32_t)(round))

static void bq_count(int r, bool put, const uint32_t *items)
{
	if (r < 0) {
		assert_true(r == -ETIMEDOUT || r == -ECANCELED);
		__atomic_fetch_add(&bq_fails, 1, __ATOMIC_RELAXED);
		return;
	}
	for (int j = 0; j < r; j++) {
		uint32_t id = items[j] >> 1, b = items[j] & 1;

		if (put) {
			__atomic_fetch_add(&bq_put[id][b], 1, __ATOMIC_RELAXED);
		} else {
			assert_int_equal(__atomic_add_fetch(&bq_got[id][b], 1, __ATOMIC_RELAXED), 1);
		}
	}
	__atomic_fetch_add(put ? &bq_puts : &bq_gets, r, __ATOMIC_RELAXED);
}

static void *bq_thread(void *arg)
{
	uint32_t actor = (uint32_t)(uintptr_t)arg;
	uint64_t seed = actor * 0x9e3779b97f4a7c15ull + 5;

	for (int i = 0; i < ROUNDS; i++) {
		bool put = rnd(&seed) & 1, many = rnd(&seed) % 4 == 0;
		uint32_t items[2] = { BQ_ID(actor, i) << 1, BQ_ID(actor, i) << 1 | 1 };
		struct timespec dl;
		int r;

		assert_int_equal(ksync_deadline_after(&dl, CLOCK_MONOTONIC, rnd(&seed) % 200000), 0);
		if (put)
			r = many ? ksync_bqueue_put_many(&bq, items, 2, CLOCK_MONOTONIC, &dl) :
				   ksync_bqueue_put_until(&bq, items, CLOCK_MONOTONIC, &dl) ?: 1;
		else
			r = many ? ksync_bqueue_get_many(&bq, items, 2, CLOCK_MONOTONIC, &dl) :
				   ksync_bqueue_get_until(&bq, items, CLOCK_MONOTONIC, &dl) ?: 1;
		bq_count(r, put, items);
	}
	return NULL;
}

struct bq_task {
	struct ksync_loop *loop;
	struct ksync_op op, timer;
	uint64_t seed;
	uint32_t actor, items[2];
	int round;
	bool put, many, op_busy, timer_busy;
	int *finished;
};

static void bq_task_next(struct bq_task *t);

static void bq_task_maybe_next(struct bq_task *t)
{
	if (!t->op_busy && !t->timer_busy)
		bq_task_next(t);
}

static void bq_timer_done(struct ksync_op *op)
{
	struct bq_task *t = op->data;

	t->timer_busy = false;
	if (t->op_busy)
		ksync_loop_cancel(t->loop, &t->op);	/* may race the item */
	bq_task_maybe_next(t);
}

static void bq_op_done(struct ksync_op *op)
{
	struct bq_task *t = op->data;
	int r = op->result;

	t->op_busy = false;
	bq_count(r == 0 ? 1 : r, t->put, t->items);
	bq_task_maybe_next(t);
}

static void bq_task_next(struct bq_task *t)
{
	struct timespec dl;
	int r;

	do {
		if (t->round == ROUNDS) {
			(*t->finished)++;
			return;
		}
		t->put = rnd(&t->seed) & 1;
		t->many = rnd(&t->seed) % 4 == 0;
		t->items[0] = BQ_ID(t->actor, t->round) << 1;
		t->items[1] = t->items[0] | 1;
		t->round++;
		if (t->many)
			assert_int_equal(t->put ? ksync_op_bqueue_put_many(&t->op, &bq, t->items, 2) :
				ksync_op_bqueue_get_many(&t->op, &bq, t->items, 2), 0);
		else if (t->put)
			ksync_op_bqueue_put(&t->op, &bq, t->items);
		else
			ksync_op_bqueue_get(&t->op, &bq, t->items);
		t->op.data = t;
		ksync_deadline_after(&dl, CLOCK_MONOTONIC, rnd(&t->seed) % 200000);
		assert_int_equal(ksync_op_set_deadline(&t->op, CLOCK_MONOTONIC, &dl), 0);
		t->op_busy = true;
		r = ksync_loop_start(t->loop, &t->op, bq_op_done);
		assert_true(r == 0 || r == KSYNC_OP_PENDING);
		if (r == 0) {
			t->op_busy = false;
			bq_count(t->op.result == 0 ? 1 : t->op.result, t->put, t->items);
		}
	} while (r == 0);
	if (rnd(&t->seed) % 3 == 0) {
		t->timer.data = t;
		assert_int_equal(ksync_loop_sleep(t->loop, &t->timer, rnd(&t->seed) % 100000,
						  bq_timer_done), 0);
		t->timer_busy = true;
	}
}

static void *bq_ring(void *arg)
{
	unsigned idx = (unsigned)(uintptr_t)arg;
	struct ksync_loop loop;
	struct bq_task tasks[TASKS];
	int finished = 0;

	assert_int_equal(ksync_loop_init(&loop, 64, ring_setups[idx % N_RING_SETUPS]), 0);
	memset(tasks, 0, sizeof(tasks));
	for (int i = 0; i < TASKS; i++) {
		tasks[i].loop = &loop;
		tasks[i].actor = THREADS + idx * TASKS + (unsigned)i;
		tasks[i].seed = (idx + 1) * 1000033ull + (uint64_t)i * 7907 + 1;
		tasks[i].finished = &finished;
		bq_task_next(&tasks[i]);
	}
	while (finished < TASKS)
		assert_true(ksync_loop_run_once(&loop, 1) >= 0);
	ksync_loop_exit(&loop);
	return NULL;
}

static void test_stress_bqueue(void **state)
{
	pthread_t th[THREADS], rings[RINGS];
	uint32_t item;
	long left = 0;

	(void)state;
	assert_int_equal(ksync_bqueue_init(&bq, KSYNC_BQUEUE_FIFO, sizeof(uint32_t), QCAP, bq_buf,
					   sizeof(bq_buf), 0), 0);
	for (int i = 0; i < RINGS; i++)
		rings[i] = spawn(bq_ring, (void *)(uintptr_t)i);
	for (int i = 0; i < THREADS; i++)
		th[i] = spawn(bq_thread, (void *)(uintptr_t)i);
	for (int i = 0; i < THREADS; i++)
		join(th[i]);
	for (int i = 0; i < RINGS; i++)
		join(rings[i]);
	while (ksync_bqueue_try_get(&bq, &item) == 0) {
		bq_count(1, false, &item);
		left++;
	}
	print_message("stress bqueue: %ld items put, %ld got (%ld left at the end), "
		      "%ld timeouts or cancels\n", bq_puts, bq_gets, left, bq_fails);
	for (uint32_t id = 0; id < (QACTORS << 13); id++)
		for (int b = 0; b < 2; b++)
			assert_int_equal(bq_put[id][b], bq_got[id][b]);
	assert_int_equal(bq_puts, bq_gets);
	assert_true(bq_puts > 0 && bq_fails > 0);
	assert_int_equal(ksync_bqueue_destroy(&bq), 0);
	assert_int_equal(peek(bq.get_res) + peek(bq.put_res), 0);
}

/* ---- RBarrier, CountdownEvent, Latch --------------------------------------
 *
 * BAR_PARTIES participants (threads and ring tasks) pass one RBarrier round
 * after round; a participant gives up now and then (a short deadline, or a
 * task's cancel at a random moment), and the coordinator sometimes aborts
 * mid-round. Rounds are paced with the other two primitives, in both
 * worlds: each participant counts its outcome down on a CountdownEvent and
 * then waits on the next round's Latch; the coordinator waits for zero,
 * checks the round, resets the barrier if it broke, ups the countdown and
 * opens the next latch. Checked for every round (one cycle): every
 * participant ended exactly once; either all passed with the indices
 * 0..BAR_PARTIES-1 each once, or none passed (the cycle broke: then
 * everyone failed with -EPIPE or its own -ETIMEDOUT/-ECANCELED, and someone
 * gave up or the coordinator aborted). At the end nothing is waiting.
 */
enum { BAR_THREADS = 3, BAR_RINGS = 2, BAR_TASKS = 3, BAR_ROUNDS = 600,
       BAR_PARTIES = BAR_THREADS + BAR_RINGS * BAR_TASKS };

static struct ksync_rbarrier rbar;
static struct ksync_countdown bar_pending;
static struct ksync_latch bar_open[BAR_ROUNDS + 1];
static int bar_out[BAR_ROUNDS][BAR_PARTIES];	/* each participant's outcome */
static int bar_gave_up[BAR_ROUNDS];
static long bar_passed, bar_broken_rounds;

static void bar_record(int round, int who, int r)
{
	assert_true(r >= -ECANCELED && r < BAR_PARTIES);
	assert_true(r >= 0 || r == -EPIPE || r == -ETIMEDOUT || r == -ECANCELED);
	bar_out[round][who] = r;
	if (r == -ETIMEDOUT || r == -ECANCELED)
		__atomic_fetch_add(&bar_gave_up[round], 1, __ATOMIC_RELAXED);
	assert_true(ksync_countdown_down(&bar_pending) >= 0);
}

static void *bar_thread(void *arg)
{
	int who = (int)(uintptr_t)arg;
	uint64_t seed = (uint64_t)who * 0x9e3779b97f4a7c15ull + 3;

	for (int round = 0; round < BAR_ROUNDS; round++) {
		struct timespec dl;
		int r;

		assert_int_equal(ksync_latch_wait(&bar_open[round]), 0);
		if (rnd(&seed) % 40 == 0) {
			ksync_deadline_after(&dl, CLOCK_MONOTONIC, rnd(&seed) % 100000);
			r = ksync_rbarrier_wait_until(&rbar, CLOCK_MONOTONIC, &dl);
		} else {
			r = ksync_rbarrier_wait(&rbar);
		}
		bar_record(round, who, r);
	}
	return NULL;
}

struct bar_task {
	struct ksync_loop *loop;
	struct ksync_op op, timer;
	int who, round;
	uint64_t seed;
	bool op_busy, timer_busy, at_latch;
	int *finished;
};

static void bar_task_step(struct bar_task *t);

static void bar_task_timer(struct ksync_op *op)
{
	struct bar_task *t = op->data;

	t->timer_busy = false;
	if (t->op_busy)
		ksync_loop_cancel(t->loop, &t->op);	/* may race the release */
	else
		bar_task_step(t);
}

static void bar_task_done(struct ksync_op *op)
{
	struct bar_task *t = op->data;

	t->op_busy = false;
	if (t->at_latch) {
		assert_int_equal(op->result, 0);
	} else {
		bar_record(t->round, t->who, op->result);
		t->round++;
	}
	t->at_latch = !t->at_latch;
	if (t->timer_busy)
		ksync_loop_cancel(t->loop, &t->timer);	/* its callback goes on */
	else
		bar_task_step(t);
}

/* Start the next wait: the round's latch, then the barrier. */
static void bar_task_step(struct bar_task *t)
{
	int r;

	do {
		if (t->round == BAR_ROUNDS) {
			(*t->finished)++;
			return;
		}
		if (t->at_latch) {
			ksync_op_latch(&t->op, &bar_open[t->round]);
		} else {
			ksync_op_rbarrier(&t->op, &rbar);
			if (rnd(&t->seed) % 40 == 0) {
				struct timespec dl;

				ksync_deadline_after(&dl, CLOCK_MONOTONIC, rnd(&t->seed) % 100000);
				assert_int_equal(ksync_op_set_deadline(&t->op, CLOCK_MONOTONIC, &dl), 0);
			}
		}
		t->op.data = t;
		t->op_busy = true;
		r = ksync_loop_start(t->loop, &t->op, bar_task_done);
		if (r < 0) {	/* not started: the barrier is broken */
			assert_int_equal(r, -EPIPE);
			t->op.result = r;
			r = 0;
		}
		if (r == 0) {	/* done at once */
			t->op_busy = false;
			if (t->at_latch) {
				assert_int_equal(t->op.result, 0);
			} else {
				bar_record(t->round, t->who, t->op.result);
				t->round++;
			}
			t->at_latch = !t->at_latch;
		}
	} while (r == 0);
	if (!t->at_latch && rnd(&t->seed) % 40 == 0) {
		t->timer.data = t;
		assert_int_equal(ksync_loop_sleep(t->loop, &t->timer, rnd(&t->seed) % 100000,
						  bar_task_timer), 0);
		t->timer_busy = true;
	}
}

static void *bar_ring(void *arg)
{
	unsigned idx = (unsigned)(uintptr_t)arg;
	struct ksync_loop loop;
	struct bar_task tasks[BAR_TASKS];
	int finished = 0;

	assert_int_equal(ksync_loop_init(&loop, 64, ring_setups[idx % N_RING_SETUPS]), 0);
	memset(tasks, 0, sizeof(tasks));
	for (int i = 0; i < BAR_TASKS; i++) {
		tasks[i].loop = &loop;
		tasks[i].who = BAR_THREADS + (int)idx * BAR_TASKS + i;
		tasks[i].seed = (idx + 1) * 1000081ull + (uint64_t)i * 7883 + 1;
		tasks[i].at_latch = true;
		tasks[i].finished = &finished;
		bar_task_step(&tasks[i]);
	}
	while (finished < BAR_TASKS)
		assert_true(ksync_loop_run_once(&loop, 1) >= 0);
	assert_int_equal(ksync_loop_busy(&loop), 0);
	ksync_loop_exit(&loop);
	return NULL;
}

static void bar_check_round(int round, bool aborted)
{
	int passed = 0;
	unsigned seen = 0;

	for (int who = 0; who < BAR_PARTIES; who++) {
		int r = bar_out[round][who];

		if (r >= 0) {
			assert_false(seen & (1u << r));	/* an index handed out twice */
			seen |= 1u << r;
			passed++;
		}
	}
	if (passed) {
		assert_int_equal(passed, BAR_PARTIES);	/* a cycle passes whole */
		bar_passed++;
	} else {
		assert_true(aborted || bar_gave_up[round] > 0);	/* someone broke it */
		bar_broken_rounds++;
	}
}

static void test_stress_barrier(void **state)
{
	pthread_t th[BAR_THREADS], rings[BAR_RINGS];
	uint64_t seed = 31337;

	(void)state;
	assert_int_equal(ksync_rbarrier_init(&rbar, BAR_PARTIES, 0), 0);
	assert_int_equal(ksync_countdown_init(&bar_pending, BAR_PARTIES, 0), 0);
	for (int i = 0; i <= BAR_ROUNDS; i++)
		assert_int_equal(ksync_latch_init(&bar_open[i], 1, 0), 0);
	for (int i = 0; i < BAR_RINGS; i++)
		rings[i] = spawn(bar_ring, (void *)(uintptr_t)i);
	for (int i = 0; i < BAR_THREADS; i++)
		th[i] = spawn(bar_thread, (void *)(uintptr_t)i);
	for (int round = 0; round < BAR_ROUNDS; round++) {
		bool abort_it = rnd(&seed) % 30 == 0;

		assert_int_equal(ksync_latch_count_down(&bar_open[round], 1), 1);
		if (abort_it) {
			sleep_ns(rnd(&seed) % 50000);
			ksync_rbarrier_abort(&rbar);
		}
		assert_int_equal(ksync_countdown_wait(&bar_pending), 0);
		bar_check_round(round, abort_it);
		/* Everyone has returned: a reset makes it new at once. */
		assert_int_equal(ksync_rbarrier_reset(&rbar), 0);
		assert_false(ksync_rbarrier_broken(&rbar));
		assert_int_equal(ksync_rbarrier_waiting(&rbar), 0);
		assert_int_equal(ksync_countdown_up(&bar_pending, BAR_PARTIES), 0);
	}
	for (int i = 0; i < BAR_THREADS; i++)
		join(th[i]);
	for (int i = 0; i < BAR_RINGS; i++)
		join(rings[i]);
	print_message("stress barrier: %ld cycles passed, %ld broken, of %d\n", bar_passed,
		      bar_broken_rounds, BAR_ROUNDS);
	assert_int_equal(bar_passed + bar_broken_rounds, BAR_ROUNDS);
	assert_true(bar_passed > 0 && bar_broken_rounds > 0);
	assert_int_equal(ksync_rbarrier_destroy(&rbar), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		async_unit_test(test_stress),
		async_unit_test(test_stress_limiter),
		async_unit_test(test_stress_bqueue),
		async_unit_test(test_stress_barrier),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
