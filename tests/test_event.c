/* SPDX-License-Identifier: MIT */
/* Event: every pairing, broadcast with one syscall, wait_any, timeouts. */
#include "harness.h"

static struct ksync_event ev;
static int done_count;

static void count_done(struct ksync_op *op)
{
	(void)op;
	__atomic_fetch_add(&done_count, 1, __ATOMIC_RELAXED);
}

static void test_basics_and_misuse(void **state)
{
	struct timespec bad = { 0, -5 }, past = { 1, 0 }, dl = in_ns(1000000);
	struct ksync_event *none[1] = { NULL };

	(void)state;
	ksync_event_init(&ev, 0);
	assert_false(ksync_event_is_set(&ev));
	assert_int_equal(ksync_event_try(&ev), -EAGAIN);
	assert_int_equal(ksync_event_wait_until(&ev, CLOCK_MONOTONIC, &bad), -EINVAL);
	assert_int_equal(ksync_event_wait_until(&ev, CLOCK_BOOTTIME, &dl), -EINVAL);
	assert_int_equal(ksync_event_wait_until(&ev, CLOCK_MONOTONIC, &past), -ETIMEDOUT);
	dl = in_ns(10000000);
	assert_int_equal(ksync_event_wait_until(&ev, CLOCK_MONOTONIC, &dl), -ETIMEDOUT);
	ksync_deadline_after(&dl, CLOCK_REALTIME, 10000000);
	assert_int_equal(ksync_event_wait_until(&ev, CLOCK_REALTIME, &dl), -ETIMEDOUT);
	assert_int_equal(ksync_event_wait_any(none, 1, CLOCK_MONOTONIC, NULL), -EINVAL);
	assert_int_equal(ksync_event_wait_any(none, 0, CLOCK_MONOTONIC, NULL), -EINVAL);
	assert_int_equal(ksync_event_wait_any(none, 129, CLOCK_MONOTONIC, NULL), -EINVAL);
	/* Timed-out waiters left the waiters flag; set still works, once. */
	assert_int_equal(ksync_event_set(&ev), 1);
	assert_int_equal(ksync_event_set(&ev), 0);
	assert_true(ksync_event_is_set(&ev));
	assert_int_equal(ksync_event_try(&ev), 0);
	assert_int_equal(ksync_event_wait(&ev), 0);
	assert_int_equal(ksync_event_wait_until(&ev, CLOCK_MONOTONIC, &past), 0);
}

/* The setter's writes are visible to every waiter (acquire/release). */
static int payload;

static void *thread_waiter(void *arg)
{
	int *seen = arg;

	assert_int_equal(ksync_event_wait(&ev), 0);
	*seen = payload;
	return NULL;
}

struct ring_waiters {
	unsigned setup;
	int tasks;
	int parked;	/* set once every task is waiting in the kernel */
	int seen;
};

static void *ring_main(void *arg)
{
	struct ring_waiters *rw = arg;
	struct ksync_loop loop;
	struct ksync_op *ops = calloc((size_t)rw->tasks, sizeof(*ops));
	int ring_done = 0;

	assert_non_null(ops);
	assert_int_equal(ksync_loop_init(&loop, 256, rw->setup), 0);
	for (int i = 0; i < rw->tasks; i++) {
		ksync_op_event(&ops[i], &ev);
		ops[i].data = &ring_done;
		assert_int_equal(loop_start(&loop, &ops[i], count_done), 0);
		if ((i & 127) == 127)
			assert_true(ksync_loop_run_once(&loop, 0) >= 0);
	}
	assert_true(ksync_loop_run_once(&loop, 0) >= 0);
	__atomic_store_n(&rw->parked, 1, __ATOMIC_RELEASE);
	assert_int_equal(ksync_loop_run(&loop), 0);
	for (int i = 0; i < rw->tasks; i++)
		assert_int_equal(ops[i].result, 0);
	rw->seen = payload;
	ksync_loop_exit(&loop);
	free(ops);
	return NULL;
}

/* Threads and tasks on two rings (both setups) wait; one set() releases
 * them all with a single futex_wake that reports every one of them. */
static void test_broadcast_all_worlds(void **state)
{
	enum { THREADS = 16, TASKS = 300 };
	struct ring_waiters rw[2] = { { .setup = ring_setups[0], .tasks = TASKS },
				      { .setup = ring_setups[1], .tasks = TASKS } };
	pthread_t t[THREADS], r[2];
	int seen[THREADS];

	(void)state;
	ksync_event_init(&ev, 0);
	done_count = 0;
	payload = 0;
	for (int i = 0; i < THREADS; i++)
		t[i] = spawn(thread_waiter, &seen[i]);
	for (int i = 0; i < 2; i++)
		r[i] = spawn(ring_main, &rw[i]);
	for (int i = 0; i < 2; i++)
		wait_until(__atomic_load_n(&rw[i].parked, __ATOMIC_ACQUIRE));
	sleep_ns(20000000);	/* let the threads park too */
	assert_int_equal(done_count, 0);
	assert_int_equal(peek(ev.word), KSYNC_EVENT_WAITERS);
	payload = 1234;
	assert_int_equal(ksync_event_set(&ev), 1);
	for (int i = 0; i < THREADS; i++)
		join(t[i]);
	for (int i = 0; i < 2; i++)
		join(r[i]);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(seen[i], 1234);
	for (int i = 0; i < 2; i++)
		assert_int_equal(rw[i].seen, 1234);
	assert_int_equal(done_count, 2 * TASKS);
}

/* One wake syscall reaches threads and ring waits alike: count them. */
static void test_one_wake_reaches_everyone(void **state)
{
	enum { THREADS = 8, TASKS = 50 };
	struct ring_waiters rw = { .setup = ring_setups[0], .tasks = TASKS };
	pthread_t t[THREADS], r;
	int seen[THREADS], woken;

	(void)state;
	ksync_event_init(&ev, 0);
	done_count = 0;
	for (int i = 0; i < THREADS; i++)
		t[i] = spawn(thread_waiter, &seen[i]);
	r = spawn(ring_main, &rw);
	wait_until(__atomic_load_n(&rw.parked, __ATOMIC_ACQUIRE));
	sleep_ns(20000000);
	/* Do set()'s two steps by hand to see the wake count. */
	assert_int_equal(__atomic_exchange_n(&ev.word, KSYNC_EVENT_SET, __ATOMIC_ACQ_REL),
			 KSYNC_EVENT_WAITERS);
	woken = ksync_futex_wake(&ev.word, KSYNC_FUTEX_MASK_ANY, 1 << 30);
	assert_int_equal(woken, THREADS + TASKS);
	for (int i = 0; i < THREADS; i++)
		join(t[i]);
	join(r);
}

static void test_task_sets_for_thread(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;
		struct ksync_op sleep_op;
		pthread_t t;
		int seen = 0;

		ksync_event_init(&ev, 0);
		payload = 77;
		t = spawn(thread_waiter, &seen);
		assert_int_equal(ksync_loop_init(&loop, 8, ring_setups[s]), 0);
		/* The task sets the event from its callback, after a sleep. */
		assert_int_equal(ksync_loop_sleep(&loop, &sleep_op, 5000000, count_done), 0);
		assert_int_equal(ksync_loop_run(&loop), 0);
		assert_int_equal(ksync_event_set(&ev), 1);
		join(t);
		assert_int_equal(seen, 77);
		ksync_loop_exit(&loop);
	}
}

static void test_async_timeout_cancel(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;
		struct ksync_op op;
		struct timespec dl = in_ns(10000000);

		ksync_event_init(&ev, 0);
		assert_int_equal(ksync_loop_init(&loop, 8, ring_setups[s]), 0);
		ksync_op_event(&op, &ev);
		assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
		assert_int_equal(loop_start(&loop, &op, NULL), 0);
		assert_int_equal(ksync_loop_run(&loop), 0);
		assert_int_equal(op.result, -ETIMEDOUT);
		ksync_op_event(&op, &ev);
		assert_int_equal(loop_start(&loop, &op, NULL), 0);
		assert_int_equal(ksync_loop_run_once(&loop, 0), 0);
		assert_int_equal(ksync_loop_cancel(&loop, &op), 0);
		assert_int_equal(ksync_loop_run(&loop), 0);
		assert_int_equal(op.result, -ECANCELED);
		/* Already set: done at once, no SQE. */
		ksync_event_set(&ev);
		ksync_op_event(&op, &ev);
		assert_int_equal(ksync_op_start(&op, &loop.ring), 0);
		assert_int_equal(op.result, 0);
		assert_int_equal(io_uring_sq_ready(&loop.ring), 0);
		ksync_loop_exit(&loop);
	}
}

static struct ksync_event a, b;

static void *wait_any_ab(void *arg)
{
	struct ksync_event *evs[2] = { &a, &b };

	*(int *)arg = ksync_event_wait_any(evs, 2, CLOCK_MONOTONIC, NULL);
	return NULL;
}

static void *wait_b(void *arg)
{
	*(int *)arg = ksync_event_wait(&b);
	return NULL;
}

/*
 * futex_waitv regression: when a waitv waiter is woken through one word,
 * a wake-one on another of its words can be counted against it and reach
 * nobody. Events never wake one, so a plain waiter on b still wakes.
 */
static void test_wait_any(void **state)
{
	struct ksync_event *evs[3] = { &a, &b, &ev };
	struct timespec dl = in_ns(5000000);
	int any = -1, plain = -1;
	pthread_t t1, t2;

	(void)state;
	ksync_event_init(&a, 0);
	ksync_event_init(&b, 0);
	ksync_event_init(&ev, 0);
	assert_int_equal(ksync_event_wait_any(evs, 3, CLOCK_MONOTONIC, &dl), -ETIMEDOUT);
	ksync_event_set(&ev);
	assert_int_equal(ksync_event_wait_any(evs, 3, CLOCK_MONOTONIC, NULL), 2);

	ksync_event_init(&a, 0);
	ksync_event_init(&b, 0);
	t1 = spawn(wait_any_ab, &any);
	t2 = spawn(wait_b, &plain);
	wait_until(peek(a.word) == KSYNC_EVENT_WAITERS && peek(b.word) == KSYNC_EVENT_WAITERS);
	sleep_ns(5000000);
	ksync_event_set(&a);
	ksync_event_set(&b);
	join(t1);
	join(t2);
	assert_int_equal(any, 0);
	assert_int_equal(plain, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basics_and_misuse),
		async_unit_test(test_broadcast_all_worlds),
		async_unit_test(test_one_wake_reaches_everyone),
		async_unit_test(test_task_sets_for_thread),
		async_unit_test(test_async_timeout_cancel),
		cmocka_unit_test(test_wait_any),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
