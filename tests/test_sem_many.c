/* SPDX-License-Identifier: MIT */
/*
 * Semaphore: several permits at once, and close.
 *
 * Claims:
 * - acquire_many/try_many/op_sem_many take n permits in one step; n == 0
 *   or more than the semaphore can ever hold is -EINVAL.
 * - A request for several permits that has to wait becomes the head: no
 *   other acquire (try, thread or task) takes a free permit until it has
 *   its n, so released permits gather for it and it is not starved by small
 *   requests; then the waiters it held back get theirs.
 * - A head that times out or is cancelled lets the others go at once.
 * - close: every waiter in every world and every later acquire gets
 *   -ESHUTDOWN; releases still work; closing twice is -EALREADY.
 * - Under random sizes, deadlines and cancels from threads and tasks, the
 *   permits in use never exceed the bound and every permit comes back.
 */
#include "harness.h"

static struct ksync_sem sem;

static void assert_idle(uint32_t value)
{
	assert_int_equal(ksync_sem_value(&sem), value);
	assert_int_equal(peek(sem.waiters), 0);
	assert_int_equal(ksync_sem_destroy(&sem), 0);
}

static void test_many_forms_and_misuse(void **state)
{
	struct ksync_op op;

	(void)state;
	assert_int_equal(ksync_sem_init(&sem, 5, 8, 0), 0);
	assert_int_equal(ksync_sem_try_many(&sem, 0), -EINVAL);
	assert_int_equal(ksync_sem_try_many(&sem, 9), -EINVAL);		/* > max: never */
	assert_int_equal(ksync_sem_acquire_many(&sem, 9), -EINVAL);
	assert_int_equal(ksync_op_sem_many(&op, &sem, 0), -EINVAL);
	assert_int_equal(ksync_sem_try_many(&sem, 6), -EAGAIN);
	assert_int_equal(ksync_sem_try_many(&sem, 5), 0);
	assert_int_equal(ksync_sem_value(&sem), 0);
	assert_int_equal(ksync_sem_release(&sem, 3), 0);
	assert_int_equal(ksync_sem_acquire_many(&sem, 3), 0);
	assert_int_equal(ksync_sem_release(&sem, 8), 0);
	assert_idle(8);
	assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
	assert_int_equal(ksync_sem_try_many(&sem, KSYNC_SEM_VALUE_MAX + 1u), -EINVAL);
}

struct waiter {
	uint32_t n;
	int64_t timeout_ns;	/* 0: none */
	int result;
	int done;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	struct timespec dl = in_ns(w->timeout_ns ? w->timeout_ns : 10000000000LL);

	w->result = ksync_sem_acquire_many_until(&sem, w->n, CLOCK_MONOTONIC, &dl);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

#define HEAD_SET() (peek(sem.word) & KSYNC_SEM_HEAD)

/* A thread wants 3 while small requests come and go. */
static void test_large_request_is_head(void **state)
{
	struct waiter small = { .n = 1 }, big = { .n = 3 };
	pthread_t ts, tb;

	(void)state;
	assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
	ts = spawn(waiter_main, &small);
	wait_until(peek(sem.waiters) == 1);
	tb = spawn(waiter_main, &big);
	wait_until(HEAD_SET());				/* big is first in line */

	assert_int_equal(ksync_sem_release(&sem, 1), 0);
	assert_int_equal(ksync_sem_try(&sem), -EAGAIN);	/* gathering for big */
	assert_int_equal(ksync_sem_value(&sem), 1);
	assert_false(peek(small.done));
	assert_int_equal(ksync_sem_release(&sem, 1), 0);
	assert_int_equal(ksync_sem_try(&sem), -EAGAIN);
	assert_int_equal(ksync_sem_release(&sem, 2), 0);	/* 4 free: big takes 3 */
	join(tb);
	assert_int_equal(big.result, 0);
	join(ts);					/* small gets the 4th */
	assert_int_equal(small.result, 0);
	assert_false(HEAD_SET());
	assert_idle(0);
}

/* A head that gives up lets the small requests it held back go. */
static void test_head_timeout_lets_others_go(void **state)
{
	struct waiter small = { .n = 1 }, big = { .n = 5, .timeout_ns = 300000000 };
	pthread_t ts, tb;

	(void)state;
	assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
	ts = spawn(waiter_main, &small);
	wait_until(peek(sem.waiters) == 1);
	tb = spawn(waiter_main, &big);
	/* (Should big time out before this thread looks, the permit below goes
	 * to small at once: the outcome is the same.) */
	wait_until(HEAD_SET() || peek(big.done));
	assert_int_equal(ksync_sem_release(&sem, 1), 0);	/* held back by the head */
	join(tb);
	assert_int_equal(big.result, -ETIMEDOUT);
	join(ts);
	assert_int_equal(small.result, 0);
	assert_false(HEAD_SET());
	assert_idle(0);
}

/* The same with a task as the head, cancelled, on both ring setups. */
static void test_task_head_cancelled(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct waiter small = { .n = 1 };
		struct ksync_loop loop;
		struct ksync_op op;
		pthread_t ts;

		assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
		assert_int_equal(ksync_loop_init(&loop, 8, ring_setups[s]), 0);
		assert_int_equal(ksync_op_sem_many(&op, &sem, 4), 0);
		assert_int_equal(ksync_loop_start(&loop, &op, NULL), KSYNC_OP_PENDING);
		assert_true(HEAD_SET());
		assert_int_equal(ksync_loop_run_once(&loop, 0), 0);	/* parked */
		ts = spawn(waiter_main, &small);
		wait_until(peek(sem.waiters) == 2);
		assert_int_equal(ksync_sem_release(&sem, 3), 0);
		assert_int_equal(ksync_sem_try(&sem), -EAGAIN);
		assert_int_equal(ksync_loop_cancel(&loop, &op), 0);
		assert_int_equal(ksync_loop_run(&loop), 0);
		assert_int_equal(op.result, -ECANCELED);
		join(ts);
		assert_int_equal(small.result, 0);
		assert_false(HEAD_SET());
		assert_idle(2);
		ksync_loop_exit(&loop);
	}
}

/* A task head gets its permits from a thread's releases. */
static void test_task_head_served(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;
		struct ksync_op op;

		assert_int_equal(ksync_sem_init(&sem, 1, 0, 0), 0);
		assert_int_equal(ksync_loop_init(&loop, 8, ring_setups[s]), 0);
		assert_int_equal(ksync_op_sem_many(&op, &sem, 3), 0);
		assert_int_equal(ksync_loop_start(&loop, &op, NULL), KSYNC_OP_PENDING);
		assert_int_equal(ksync_loop_run_once(&loop, 0), 0);
		assert_int_equal(ksync_sem_release(&sem, 1), 0);
		assert_int_equal(ksync_sem_try(&sem), -EAGAIN);
		assert_int_equal(ksync_sem_release(&sem, 1), 0);
		assert_int_equal(ksync_loop_run(&loop), 0);
		assert_int_equal(op.result, 0);
		assert_idle(0);
		ksync_loop_exit(&loop);
	}
}

static void test_close(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct waiter t1 = { .n = 1 }, t2 = { .n = 2 };
		struct ksync_loop loop;
		struct ksync_op op1, op2;
		pthread_t a, b;

		assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
		assert_int_equal(ksync_loop_init(&loop, 8, ring_setups[s]), 0);
		a = spawn(waiter_main, &t1);
		b = spawn(waiter_main, &t2);
		ksync_op_sem(&op1, &sem);
		assert_int_equal(ksync_op_sem_many(&op2, &sem, 3), 0);
		assert_int_equal(ksync_loop_start(&loop, &op1, NULL), KSYNC_OP_PENDING);
		assert_int_equal(ksync_loop_start(&loop, &op2, NULL), KSYNC_OP_PENDING);
		assert_int_equal(ksync_loop_run_once(&loop, 0), 0);
		wait_until(peek(sem.waiters) == 4);
		assert_false(ksync_sem_is_closed(&sem));
		assert_int_equal(ksync_sem_close(&sem), 0);
		assert_int_equal(ksync_sem_close(&sem), -EALREADY);
		assert_true(ksync_sem_is_closed(&sem));
		join(a);
		join(b);
		assert_int_equal(ksync_loop_run(&loop), 0);
		assert_int_equal(t1.result, -ESHUTDOWN);
		assert_int_equal(t2.result, -ESHUTDOWN);
		assert_int_equal(op1.result, -ESHUTDOWN);
		assert_int_equal(op2.result, -ESHUTDOWN);
		/* Later acquires fail; releases still work. */
		assert_int_equal(ksync_sem_release(&sem, 2), 0);
		assert_int_equal(ksync_sem_try(&sem), -ESHUTDOWN);
		assert_int_equal(ksync_sem_acquire(&sem), -ESHUTDOWN);
		ksync_op_sem(&op1, &sem);
		assert_int_equal(ksync_loop_start(&loop, &op1, NULL), -ESHUTDOWN);	/* not started */
		assert_int_equal(ksync_sem_value(&sem), 2);
		assert_int_equal(peek(sem.waiters), 0);
		ksync_loop_exit(&loop);
	}
}

/*
 * Random sizes, deadlines and cancels from two threads and a ring of four
 * tasks on a semaphore bounded at 4: the permits in use never exceed 4 and
 * all come back.
 */
#define BOUND 4
#define ROUNDS 3000

static int in_use, max_in_use;
static long granted, gave_up;

static void use(uint32_t n)
{
	int now = __atomic_add_fetch(&in_use, (int)n, __ATOMIC_ACQ_REL);
	int m = peek(max_in_use);

	while (now > m && !__atomic_compare_exchange_n(&max_in_use, &m, now, false,
						       __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	spin_ns(20000);		/* hold them, so that others wait */
	__atomic_sub_fetch(&in_use, (int)n, __ATOMIC_ACQ_REL);
	assert_int_equal(ksync_sem_release(&sem, n), 0);
	__atomic_fetch_add(&granted, 1, __ATOMIC_RELAXED);
}

static void *random_thread(void *arg)
{
	uint64_t seed = (uintptr_t)arg;

	for (int i = 0; i < ROUNDS; i++) {
		uint32_t n = 1 + rnd(&seed) % 3;
		struct timespec dl = in_ns(rnd(&seed) % 200000);
		int r = ksync_sem_acquire_many_until(&sem, n, CLOCK_MONOTONIC, &dl);

		if (r == 0)
			use(n);
		else if (r == -ETIMEDOUT)
			__atomic_fetch_add(&gave_up, 1, __ATOMIC_RELAXED);
		else
			fail_msg("acquire_many: %d", r);
	}
	return NULL;
}

struct rtask {
	struct ksync_op op, timer;
	struct ksync_loop *loop;
	uint64_t seed;
	uint32_t n;
	int left;
	bool op_busy, timer_busy;
};

static void rtask_next(struct rtask *t);

static void rtask_maybe_next(struct rtask *t)
{
	if (!t->op_busy && !t->timer_busy && t->left)
		rtask_next(t);
}

static void rtask_done(struct ksync_op *op)
{
	struct rtask *t = op->data;

	t->op_busy = false;
	if (op->result == 0)
		use(t->n);
	else if (op->result == -ETIMEDOUT || op->result == -ECANCELED)
		__atomic_fetch_add(&gave_up, 1, __ATOMIC_RELAXED);
	else
		fail_msg("op: %d", op->result);
	rtask_maybe_next(t);
}

static void rtimer_done(struct ksync_op *op)
{
	struct rtask *t = op->data;

	t->timer_busy = false;
	if (t->op_busy)
		(void)ksync_loop_cancel(t->loop, &t->op);	/* may race the grant */
	rtask_maybe_next(t);
}

static void rtask_next(struct rtask *t)
{
	int r;

	t->left--;
	t->n = 1 + rnd(&t->seed) % 3;
	assert_int_equal(ksync_op_sem_many(&t->op, &sem, t->n), 0);
	t->op.data = t;
	if (rnd(&t->seed) & 1) {
		struct timespec dl = in_ns(rnd(&t->seed) % 200000);

		assert_int_equal(ksync_op_set_deadline(&t->op, CLOCK_MONOTONIC, &dl), 0);
	}
	t->op_busy = true;
	r = ksync_loop_start(t->loop, &t->op, rtask_done);
	if (r == 0) {
		rtask_done(&t->op);
		return;
	}
	assert_int_equal(r, KSYNC_OP_PENDING);
	if (rnd(&t->seed) % 3 == 0) {
		t->timer.data = t;
		assert_int_equal(ksync_loop_sleep(t->loop, &t->timer, rnd(&t->seed) % 100000,
						  rtimer_done), 0);
		t->timer_busy = true;
	}
}

static void *random_ring(void *arg)
{
	struct ksync_loop loop;
	struct rtask tasks[4];

	assert_int_equal(ksync_loop_init(&loop, 64, (unsigned)(uintptr_t)arg), 0);
	memset(tasks, 0, sizeof(tasks));
	for (int i = 0; i < 4; i++) {
		tasks[i].loop = &loop;
		tasks[i].seed = 77 + (uint64_t)i;
		tasks[i].left = ROUNDS / 2;
		rtask_next(&tasks[i]);
	}
	assert_int_equal(ksync_loop_run(&loop), 0);
	ksync_loop_exit(&loop);
	return NULL;
}

static void test_random_sizes_exact_accounting(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		pthread_t t[3];

		assert_int_equal(ksync_sem_init(&sem, BOUND, BOUND, 0), 0);
		in_use = max_in_use = 0;
		granted = gave_up = 0;
		t[0] = spawn(random_thread, (void *)(uintptr_t)11);
		t[1] = spawn(random_thread, (void *)(uintptr_t)12);
		t[2] = spawn(random_ring, (void *)(uintptr_t)ring_setups[s]);
		for (int i = 0; i < 3; i++)
			join(t[i]);
		print_message("many: %ld granted, %ld gave up, max in use %d\n", granted, gave_up,
			      max_in_use);
		assert_int_equal(granted + gave_up, 2 * ROUNDS + 4 * (ROUNDS / 2));
		assert_true(max_in_use <= BOUND);
		assert_false(HEAD_SET());
		assert_idle(BOUND);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_forms_and_misuse),
		cmocka_unit_test(test_large_request_is_head),
		cmocka_unit_test(test_head_timeout_lets_others_go),
		async_unit_test(test_task_head_cancelled),
		async_unit_test(test_task_head_served),
		async_unit_test(test_close),
		async_unit_test(test_random_sizes_exact_accounting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
