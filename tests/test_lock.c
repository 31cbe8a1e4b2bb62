/* SPDX-License-Identifier: MIT */
/* Lock: every pairing of worlds, misuse, timeouts and cancels racing wakes. */
#include "harness.h"

#include <limits.h>
#include <sys/syscall.h>

static struct ksync_lock lock;

static void reset(void)
{
	ksync_lock_init(&lock, 0);
}

static void assert_idle(void)
{
	assert_int_equal(ksync_lock_destroy(&lock), 0);
	assert_int_equal(peek(lock.word), 0);
}

/* ---- single world ------------------------------------------------------- */

static void test_uncontended(void **state)
{
	(void)state;
	reset();
	assert_int_equal(ksync_lock_acquire(&lock), 0);
	assert_true(ksync_lock_held(&lock));
	assert_int_equal(peek(lock.word), KSYNC_LOCK_LOCKED);	/* no waiter flag */
	assert_int_equal(ksync_lock_release(&lock), 0);
	assert_false(ksync_lock_held(&lock));
	assert_int_equal(ksync_lock_try(&lock), 0);
	assert_int_equal(ksync_lock_release(&lock), 0);
	assert_idle();
}

static void *hold_briefly(void *arg)
{
	int *res = arg;

	res[0] = ksync_lock_try(&lock);		/* held by main: -EBUSY */
	res[1] = ksync_lock_release(&lock);	/* not the owner: -EPERM */
	return NULL;
}

static void test_misuse(void **state)
{
	struct timespec bad = { 0, 1000000000L }, ok = in_ns(1000000);
	int res[2];

	(void)state;
	reset();
	assert_int_equal(ksync_lock_release(&lock), -EPERM);
	assert_int_equal(ksync_lock_release_task(&lock, 7), -EPERM);
	assert_int_equal(ksync_lock_release_task(&lock, 0), -EINVAL);
	assert_int_equal(ksync_lock_try_task(&lock, 0), -EINVAL);
	assert_int_equal(ksync_lock_acquire_until(&lock, CLOCK_MONOTONIC, &bad), -EINVAL);
	assert_int_equal(ksync_lock_acquire_until(&lock, CLOCK_PROCESS_CPUTIME_ID, &ok), -EINVAL);
	assert_idle();

	assert_int_equal(ksync_lock_acquire(&lock), 0);
	assert_int_equal(ksync_lock_acquire(&lock), -EDEADLK);
	assert_int_equal(ksync_lock_acquire_until(&lock, CLOCK_MONOTONIC, &ok), -EDEADLK);
	assert_int_equal(ksync_lock_try(&lock), -EDEADLK);
	assert_int_equal(ksync_lock_release_task(&lock, 7), -EPERM);
	assert_int_equal(ksync_lock_destroy(&lock), -EBUSY);
	join(spawn(hold_briefly, res));
	assert_int_equal(res[0], -EBUSY);
	assert_int_equal(res[1], -EPERM);
	/* Every failed call left the lock as it was. */
	assert_int_equal(peek(lock.word), KSYNC_LOCK_LOCKED);
	assert_int_equal(ksync_lock_release(&lock), 0);
	assert_int_equal(ksync_lock_release(&lock), -EPERM);
	assert_idle();

	/* Task ownership: right token only. */
	assert_int_equal(ksync_lock_try_task(&lock, 42), 0);
	assert_int_equal(ksync_lock_try_task(&lock, 42), -EDEADLK);
	assert_int_equal(ksync_lock_try_task(&lock, 43), -EBUSY);
	assert_int_equal(ksync_lock_release(&lock), -EPERM);
	assert_int_equal(ksync_lock_release_task(&lock, 43), -EPERM);
	assert_int_equal(ksync_lock_release_task(&lock, 42), 0);
	assert_idle();
}

static void *take_for_task_99(void *arg)
{
	(void)arg;
	assert_int_equal(ksync_lock_try_task(&lock, 99), 0);
	return NULL;
}

static void test_thread_timeouts(void **state)
{
	struct timespec past = { 1, 0 }, dl;
	int64_t t0;

	(void)state;
	reset();
	/* Held by a task of another thread (of this thread would be -EDEADLK). */
	join(spawn(take_for_task_99, NULL));
	/* Past deadline: tried once, then -ETIMEDOUT without sleeping. */
	assert_int_equal(ksync_lock_acquire_until(&lock, CLOCK_MONOTONIC, &past), -ETIMEDOUT);
	t0 = ksync_clock_ns(CLOCK_MONOTONIC);
	dl = in_ns(20000000);
	assert_int_equal(ksync_lock_acquire_until(&lock, CLOCK_MONOTONIC, &dl), -ETIMEDOUT);
	assert_true(ksync_clock_ns(CLOCK_MONOTONIC) - t0 >= 20000000);
	ksync_deadline_after(&dl, CLOCK_REALTIME, 20000000);
	assert_int_equal(ksync_lock_acquire_until(&lock, CLOCK_REALTIME, &dl), -ETIMEDOUT);
	assert_int_equal(ksync_lock_release_task(&lock, 99), 0);
	/* The waiters that timed out left the lock usable. */
	assert_int_equal(ksync_lock_try(&lock), 0);
	assert_int_equal(ksync_lock_release(&lock), 0);
	assert_idle();
}

/* ---- thread <-> thread -------------------------------------------------- */

static int waiter_result;
static int waiter_done;

static void *blocking_waiter(void *arg)
{
	(void)arg;
	waiter_result = ksync_lock_acquire(&lock);
	__atomic_store_n(&waiter_done, 1, __ATOMIC_RELEASE);
	if (waiter_result == 0)
		assert_int_equal(ksync_lock_release(&lock), 0);
	return NULL;
}

static void test_thread_thread(void **state)
{
	pthread_t t;

	(void)state;
	reset();
	waiter_done = 0;
	assert_int_equal(ksync_lock_acquire(&lock), 0);
	t = spawn(blocking_waiter, NULL);
	wait_until(peek(lock.word) & KSYNC_LOCK_CONTENDED);	/* it parked */
	sleep_ns(2000000);
	assert_false(__atomic_load_n(&waiter_done, __ATOMIC_ACQUIRE));
	assert_int_equal(ksync_lock_release(&lock), 0);
	join(t);
	assert_int_equal(waiter_result, 0);
	assert_idle();
}

/* ---- tasks -------------------------------------------------------------- */

static int ops_done;

static void count_done(struct ksync_op *op)
{
	(void)op;
	ops_done++;
}

static void test_task_task_one_ring(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;
		struct ksync_op a, b;

		reset();
		ops_done = 0;
		assert_int_equal(ksync_loop_init(&loop, 16, ring_setups[s]), 0);
		ksync_op_lock(&a, &lock, 1);
		ksync_op_lock(&b, &lock, 2);
		assert_int_equal(loop_start(&loop, &a, count_done), 0);
		assert_int_equal(loop_start(&loop, &b, count_done), 0);
		run_loop_until(&loop, ops_done == 1);
		assert_int_equal(a.result, 0);
		assert_true(ksync_op_pending(&b));
		/* b parked its wait in the kernel; releasing a wakes it. */
		assert_int_equal(ksync_lock_release_task(&lock, 2), -EPERM);
		assert_int_equal(ksync_lock_release_task(&lock, 1), 0);
		run_loop_until(&loop, ops_done == 2);
		assert_int_equal(b.result, 0);
		assert_int_equal(peek(lock.owner_token), 2);
		assert_int_equal(ksync_lock_release_task(&lock, 2), 0);
		ksync_loop_exit(&loop);
		assert_idle();
	}
}

struct ring_waiter {
	unsigned setup;
	uint64_t token;
	int result;
	int started;
	int release;	/* release the lock when done */
};

/* A thread running its own ring with one task waiting for the lock. */
static void *ring_waiter_main(void *arg)
{
	struct ring_waiter *rw = arg;
	struct ksync_loop loop;
	struct ksync_op op;

	assert_int_equal(ksync_loop_init(&loop, 8, rw->setup), 0);
	ksync_op_lock(&op, &lock, rw->token);
	ops_done = 0;
	assert_int_equal(loop_start(&loop, &op, NULL), 0);
	__atomic_store_n(&rw->started, 1, __ATOMIC_RELEASE);
	assert_int_equal(ksync_loop_run(&loop), 0);
	rw->result = op.result;
	if (op.result == 0 && rw->release)
		assert_int_equal(ksync_lock_release_task(&lock, rw->token), 0);
	ksync_loop_exit(&loop);
	return NULL;
}

static void test_thread_to_task(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ring_waiter rw = { .setup = ring_setups[s], .token = 5, .release = 1 };
		pthread_t t;

		reset();
		assert_int_equal(ksync_lock_acquire(&lock), 0);
		t = spawn(ring_waiter_main, &rw);
		wait_until(__atomic_load_n(&rw.started, __ATOMIC_ACQUIRE));
		wait_until(peek(lock.word) & KSYNC_LOCK_CONTENDED);
		assert_int_equal(ksync_lock_release(&lock), 0);
		join(t);
		assert_int_equal(rw.result, 0);
		assert_idle();
	}
}

static void test_task_to_thread(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;
		struct ksync_op op;
		pthread_t t;

		reset();
		waiter_done = 0;
		ops_done = 0;
		assert_int_equal(ksync_loop_init(&loop, 8, ring_setups[s]), 0);
		ksync_op_lock(&op, &lock, 77);
		assert_int_equal(loop_start(&loop, &op, count_done), 0);
		run_loop_until(&loop, ops_done == 1);
		assert_int_equal(op.result, 0);
		t = spawn(blocking_waiter, NULL);
		wait_until(peek(lock.word) & KSYNC_LOCK_CONTENDED);
		assert_int_equal(ksync_lock_release_task(&lock, 77), 0);
		join(t);
		assert_int_equal(waiter_result, 0);
		ksync_loop_exit(&loop);
		assert_idle();
	}
}

static void test_task_task_two_rings(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ring_waiter holder = { .setup = ring_setups[s], .token = 10 };
		struct ring_waiter rw = { .setup = ring_setups[s], .token = 11, .release = 1 };
		pthread_t t;

		reset();
		/* First ring thread takes the lock and keeps it. */
		join(spawn(ring_waiter_main, &holder));
		assert_int_equal(holder.result, 0);
		t = spawn(ring_waiter_main, &rw);
		wait_until(peek(lock.word) & KSYNC_LOCK_CONTENDED);
		/* Release on behalf of the first task (tokens, not threads, own). */
		assert_int_equal(ksync_lock_release_task(&lock, 10), 0);
		join(t);
		assert_int_equal(rw.result, 0);
		assert_idle();
	}
}

/* A thread blocking on a lock its own task holds would hang forever. */
static void test_deadlock_detection(void **state)
{
	struct ksync_loop loop;
	struct ksync_op op;

	(void)state;
	reset();
	assert_int_equal(ksync_loop_init(&loop, 8, 0), 0);
	ksync_op_lock(&op, &lock, 3);
	assert_int_equal(loop_start(&loop, &op, NULL), 0);
	assert_int_equal(ksync_loop_run(&loop), 0);
	assert_int_equal(op.result, 0);
	assert_int_equal(ksync_lock_acquire(&lock), -EDEADLK);
	/* Same token again: -EDEADLK instead of waiting on itself. */
	ksync_op_lock(&op, &lock, 3);
	assert_int_equal(loop_start(&loop, &op, NULL), -EDEADLK);
	/* Token 0 is not a task. */
	ksync_op_lock(&op, &lock, 0);
	assert_int_equal(loop_start(&loop, &op, NULL), -EINVAL);
	assert_int_equal(ksync_lock_release_task(&lock, 3), 0);
	ksync_loop_exit(&loop);
	assert_idle();
}

static void test_async_timeout_and_cancel(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;
		struct ksync_op op;
		struct timespec dl;

		reset();
		ops_done = 0;
		assert_int_equal(ksync_loop_init(&loop, 8, ring_setups[s]), 0);
		assert_int_equal(ksync_lock_acquire(&lock), 0);

		ksync_op_lock(&op, &lock, 1);
		dl = in_ns(20000000);
		assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
		assert_int_equal(loop_start(&loop, &op, count_done), 0);
		assert_int_equal(ksync_loop_run(&loop), 0);
		assert_int_equal(op.result, -ETIMEDOUT);
		assert_true(ksync_clock_ns(CLOCK_MONOTONIC) >=
			    dl.tv_sec * 1000000000LL + dl.tv_nsec);

		ksync_op_lock(&op, &lock, 1);
		ksync_deadline_after(&dl, CLOCK_REALTIME, 10000000);
		assert_int_equal(ksync_op_set_deadline(&op, CLOCK_REALTIME, &dl), 0);
		assert_int_equal(loop_start(&loop, &op, count_done), 0);
		assert_int_equal(ksync_loop_run(&loop), 0);
		assert_int_equal(op.result, -ETIMEDOUT);

		ksync_op_lock(&op, &lock, 1);
		assert_int_equal(loop_start(&loop, &op, count_done), 0);
		assert_int_equal(ksync_loop_run_once(&loop, 0), 0);
		assert_int_equal(ksync_loop_cancel(&loop, &op), 0);
		assert_int_equal(ksync_loop_cancel(&loop, &op), -EALREADY);
		assert_int_equal(ksync_loop_run(&loop), 0);
		assert_int_equal(op.result, -ECANCELED);
		assert_int_equal(ksync_op_cancel(&op, &loop.ring), -EALREADY);

		/* Past deadline: -ETIMEDOUT at once, nothing queued. */
		ksync_op_lock(&op, &lock, 1);
		dl = (struct timespec){ 1, 0 };
		assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
		assert_int_equal(ksync_op_start(&op, &loop.ring), 0);
		assert_int_equal(op.result, -ETIMEDOUT);
		dl.tv_nsec = -1;
		assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), -EINVAL);

		assert_int_equal(ksync_lock_release(&lock), 0);
		assert_idle();
		ksync_loop_exit(&loop);
	}
}

/*
 * The lost-wakeup hunt. Each round: a holder thread releases the lock at a
 * moment the main thread picks; right around it, the task waiting for the
 * lock is cancelled or reaches its deadline; a blocking thread waits too.
 * Whatever wins each race, the blocking thread must get the lock: a wake
 * consumed by the cancelled or timed-out task and then dropped would leave
 * it parked forever (its 10 s deadline then fails the test).
 */
struct race {
	int held;
	int go;
	int waiter_result;
};

static void *race_holder(void *arg)
{
	struct race *r = arg;

	assert_int_equal(ksync_lock_acquire(&lock), 0);
	__atomic_store_n(&r->held, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
		;
	assert_int_equal(ksync_lock_release(&lock), 0);
	return NULL;
}

static void *race_waiter(void *arg)
{
	struct race *r = arg;
	struct timespec dl = in_ns(10000000000LL);

	r->waiter_result = ksync_lock_acquire_until(&lock, CLOCK_MONOTONIC, &dl);
	if (r->waiter_result == 0)
		assert_int_equal(ksync_lock_release(&lock), 0);
	return NULL;
}

static void test_cancel_and_timeout_race_wake(void **state)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int got = 0, cancelled = 0, timed_out = 0;

	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;

		assert_int_equal(ksync_loop_init(&loop, 16, ring_setups[s]), 0);
		for (int i = 0; i < 1500; i++) {
			struct race r = { 0 };
			struct ksync_op op;
			bool use_timeout = rnd(&seed) & 1;
			pthread_t h, w;

			reset();
			h = spawn(race_holder, &r);
			wait_until(__atomic_load_n(&r.held, __ATOMIC_ACQUIRE));
			ksync_op_lock(&op, &lock, 1000 + i);
			if (use_timeout) {
				struct timespec dl = in_ns(150000 + rnd(&seed) % 60000);

				assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
			}
			ops_done = 0;
			assert_int_equal(loop_start(&loop, &op, count_done), 0);
			assert_true(ksync_loop_run_once(&loop, 0) >= 0);	/* park it first */
			w = spawn(race_waiter, &r);
			spin_ns(100000);
			__atomic_store_n(&r.go, 1, __ATOMIC_RELEASE);
			if (!use_timeout) {
				spin_ns(rnd(&seed) % 30000);
				ksync_loop_cancel(&loop, &op);
			}
			assert_int_equal(ksync_loop_run(&loop), 0);
			assert_int_equal(ops_done, 1);
			switch (op.result) {
			case 0:
				got++;
				assert_int_equal(peek(lock.owner_token), 1000 + i);
				assert_int_equal(ksync_lock_release_task(&lock, 1000 + i), 0);
				break;
			case -ECANCELED:
				cancelled++;
				break;
			case -ETIMEDOUT:
				timed_out++;
				break;
			default:
				fail_msg("unexpected op result %d", op.result);
			}
			join(h);
			join(w);
			assert_int_equal(r.waiter_result, 0);
			assert_idle();
		}
		ksync_loop_exit(&loop);
	}
	print_message("lock race: %d granted, %d cancelled, %d timed out\n", got, cancelled,
		      timed_out);
	/* The random schedule must have exercised every outcome. */
	assert_true(got > 0 && cancelled > 0 && timed_out > 0);
}

/* Ring teardown with a wait pending must not swallow the lock's wake. */
static void test_loop_exit_hands_on(void **state)
{
	(void)state;
	for (int i = 0; i < 200; i++) {
		struct ksync_loop loop;
		struct ksync_op op;
		struct race r = { 0 };
		pthread_t w;

		reset();
		assert_int_equal(ksync_loop_init(&loop, 8, ring_setups[i % N_RING_SETUPS]), 0);
		assert_int_equal(ksync_lock_acquire(&lock), 0);
		ksync_op_lock(&op, &lock, 1);
		assert_int_equal(loop_start(&loop, &op, NULL), 0);
		assert_int_equal(ksync_loop_run_once(&loop, 0), 0);
		w = spawn(race_waiter, &r);
		wait_until(peek(lock.word) & KSYNC_LOCK_CONTENDED);
		if (i & 1)
			sleep_ns(50000);
		/* Release (waking whoever is first: maybe the task) and tear
		 * the ring down at once. */
		assert_int_equal(ksync_lock_release(&lock), 0);
		ksync_loop_exit(&loop);
		assert_true(op.result == -ECANCELED || op.result == 0);
		if (op.result == 0)
			assert_int_equal(ksync_lock_release_task(&lock, 1), 0);
		join(w);
		assert_int_equal(r.waiter_result, 0);
		assert_idle();
	}
}

/*
 * Liveness under barging. Two threads re-take the lock the moment they
 * release it, which is what barging favours: a parked waiter, woken after a
 * release, often arrives too late. A blocking thread and a task must still
 * get their turns, again and again, and the starvation hand-off path runs
 * here (the bound itself is measured by tests/bench, not asserted: it is a
 * time).
 */
static int hammer_stop;
static long hammer_rounds;

static void *hammer(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&hammer_stop, __ATOMIC_RELAXED)) {
		assert_int_equal(ksync_lock_acquire(&lock), 0);
		for (volatile int i = 0; i < 50; i++)
			;
		assert_int_equal(ksync_lock_release(&lock), 0);
		__atomic_fetch_add(&hammer_rounds, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_starvation_bound(void **state)
{
	struct ksync_loop loop;
	struct ksync_op op;
	struct timespec dl;
	pthread_t h[2];
	int r;

	(void)state;
	reset();
	hammer_stop = 0;
	hammer_rounds = 0;
	for (int i = 0; i < 2; i++)
		h[i] = spawn(hammer, NULL);
	wait_until(__atomic_load_n(&hammer_rounds, __ATOMIC_RELAXED) > 10000);

	/* A blocking thread (this one) gets its turn. */
	for (int i = 0; i < 20; i++) {
		dl = in_ns(10000000000LL);
		r = ksync_lock_acquire_until(&lock, CLOCK_MONOTONIC, &dl);
		assert_int_equal(r, 0);
		assert_int_equal(ksync_lock_release(&lock), 0);
	}

	/* So does a task. */
	assert_int_equal(ksync_loop_init(&loop, 8, 0), 0);
	for (int i = 0; i < 20; i++) {
		ksync_op_lock(&op, &lock, 5);
		dl = in_ns(10000000000LL);
		assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
		assert_int_equal(loop_start(&loop, &op, NULL), 0);
		assert_int_equal(ksync_loop_run(&loop), 0);
		assert_int_equal(op.result, 0);
		assert_int_equal(ksync_lock_release_task(&lock, 5), 0);
	}
	ksync_loop_exit(&loop);

	__atomic_store_n(&hammer_stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++)
		join(h[i]);
	print_message("starvation: %ld hammer rounds\n", hammer_rounds);
	assert_idle();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uncontended),
		cmocka_unit_test(test_misuse),
		cmocka_unit_test(test_thread_timeouts),
		cmocka_unit_test(test_thread_thread),
		async_unit_test(test_task_task_one_ring),
		async_unit_test(test_thread_to_task),
		async_unit_test(test_task_to_thread),
		async_unit_test(test_task_task_two_rings),
		async_unit_test(test_deadlock_detection),
		async_unit_test(test_async_timeout_and_cancel),
		async_unit_test(test_cancel_and_timeout_race_wake),
		async_unit_test(test_loop_exit_hands_on),
		async_unit_test(test_starvation_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
