/* SPDX-License-Identifier: MIT */
/*
 * ksync_poller under a plain epoll loop: the ring fd turns readable when a
 * thread's release completes a FUTEX_WAIT, every primitive across worlds,
 * timeouts and cancels, and exit with waits pending.
 */
#include "harness.h"
#include "ksync/poller.h"

#include <sys/epoll.h>

static struct ksync_lock lock;
static struct ksync_sem sem;
static struct ksync_event ev;
static int ops_done;
static int eintrs;

static void count_done(struct ksync_op *op)
{
	(void)op;
	ops_done++;
}

/* An epoll instance watching one poller. */
static int watch(struct ksync_poller *p)
{
	struct epoll_event e = { .events = EPOLLIN };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	assert_true(ep >= 0);
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, ksync_poller_fd(p), &e), 0);
	return ep;
}

/*
 * Sleep in epoll_wait until the fd is readable (or @ms pass), then
 * dispatch. Returns 1 if the fd was readable. EINTR is expected: the
 * kernel interrupts the thread to post the CQE (see poller.h).
 */
static int wait_fd(int ep, struct ksync_poller *p, int ms)
{
	struct epoll_event e;
	int n;

	while ((n = epoll_wait(ep, &e, 1, ms)) < 0 && errno == EINTR)
		eintrs++;
	assert_true(n >= 0);
	if (n)
		assert_true(ksync_poller_dispatch(p) >= 0);
	return n;
}

/* Run the epoll loop until @cond, or fail after ~10 s. */
#define poll_until(ep, p, cond) do {						\
	int64_t _end = ksync_clock_ns(CLOCK_MONOTONIC) + 10000000000LL;		\
	while (!(cond)) {							\
		assert_true(ksync_clock_ns(CLOCK_MONOTONIC) < _end);		\
		wait_fd((ep), (p), 100);					\
	}									\
} while (0)

/* ---- basics and misuse --------------------------------------------------- */

static void test_basics(void **state)
{
	struct ksync_poller p, zero = { 0 };
	struct ksync_op op;
	struct epoll_event e;
	int ep;

	(void)state;
	ksync_poller_exit(&zero);			/* never opened: no-op */
	assert_int_equal(ksync_poller_fd(&zero), -1);
	assert_int_equal(ksync_poller_init(&p, 0), -EINVAL);
	ksync_poller_exit(&p);				/* failed init: no-op */
	assert_int_equal(ksync_poller_init(&p, 8), 0);
	assert_true(ksync_poller_fd(&p) >= 0);
	ep = watch(&p);

	/* Nothing to wait for: done inside start, no callback, no CQE. */
	ksync_event_init(&ev, 0);
	ksync_event_set(&ev);
	ksync_op_event(&op, &ev);
	ops_done = 0;
	assert_int_equal(ksync_poller_start(&p, &op, count_done), 0);
	assert_int_equal(op.result, 0);
	ksync_lock_init(&lock, 0);
	ksync_op_lock(&op, &lock, 1);
	assert_int_equal(ksync_poller_start(&p, &op, count_done), 0);
	assert_int_equal(ksync_lock_release_task(&lock, 1), 0);
	assert_int_equal(ksync_sem_init(&sem, 1, 0, 0), 0);
	ksync_op_sem(&op, &sem);
	assert_int_equal(ksync_poller_start(&p, &op, count_done), 0);
	assert_int_equal(epoll_wait(ep, &e, 1, 0), 0);	/* fd not readable */
	assert_int_equal(ksync_poller_dispatch(&p), 0);
	assert_int_equal(ops_done, 0);

	/* Misuse. */
	ksync_op_lock(&op, &lock, 0);
	assert_int_equal(ksync_poller_start(&p, &op, count_done), -EINVAL);
	assert_int_equal(ksync_poller_cancel(&p, &op), -EALREADY);
	ksync_op_sem(&op, &sem);
	assert_int_equal(ksync_poller_start(&p, &op, count_done), KSYNC_OP_PENDING);
	assert_int_equal(ksync_poller_start(&p, &op, count_done), -EBUSY);
	assert_int_equal(ksync_poller_busy(&p), 1);

	/* Exit cancels it. */
	ksync_poller_exit(&p);
	assert_int_equal(ops_done, 1);
	assert_int_equal(op.result, -ECANCELED);
	assert_int_equal(ksync_poller_busy(&p), 0);
	assert_int_equal(ksync_poller_fd(&p), -1);
	assert_int_equal(ksync_poller_start(&p, &op, count_done), -ESHUTDOWN);
	assert_int_equal(ksync_poller_dispatch(&p), -ESHUTDOWN);
	assert_int_equal(ksync_poller_cancel(&p, &op), -EALREADY);
	ksync_poller_exit(&p);
	assert_int_equal(peek(sem.waiters), 0);
	assert_int_equal(ksync_sem_destroy(&sem), 0);
	close(ep);
}

/* ---- the fd turns readable when a thread's wake completes the wait ------- */

struct releaser {
	int kind;		/* KSYNC_KIND_* */
	int64_t delay_ns;	/* < 0: wait for go */
	int go;
};

static void *release_one(void *arg)
{
	struct releaser *r = arg;

	if (r->delay_ns < 0)
		while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
			;
	else
		spin_ns(r->delay_ns);
	switch (r->kind) {
	case KSYNC_KIND_LOCK:
		assert_int_equal(ksync_lock_release_task(&lock, 99), 0);
		break;
	case KSYNC_KIND_SEM:
		assert_int_equal(ksync_sem_release(&sem, 1), 0);
		break;
	default:
		ksync_event_set(&ev);
	}
	return NULL;
}

/*
 * Each round a thread releases while the poller's thread either sleeps in
 * epoll_wait or is busy in user space; the fd must turn readable well
 * before the 5 s epoll timeout, and the callback must see the grant.
 */
static void test_fd_readable_on_wake(void **state)
{
	static const int kinds[] = { KSYNC_KIND_EVENT, KSYNC_KIND_LOCK, KSYNC_KIND_SEM };
	uint64_t seed = 77;
	struct ksync_poller p;
	int ep;

	(void)state;
	assert_int_equal(ksync_poller_init(&p, 8), 0);
	ep = watch(&p);
	eintrs = 0;
	for (int i = 0; i < 600; i++) {
		struct releaser r = { .kind = kinds[i % 3] };
		bool busy = (i / 3) & 1;
		struct ksync_op op;
		pthread_t t;

		switch (r.kind) {
		case KSYNC_KIND_LOCK:
			/* Held by task 99, which the releasing thread releases for. */
			ksync_lock_init(&lock, 0);
			assert_int_equal(ksync_lock_try_task(&lock, 99), 0);
			ksync_op_lock(&op, &lock, 1000 + i);
			break;
		case KSYNC_KIND_SEM:
			assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
			ksync_op_sem(&op, &sem);
			break;
		default:
			ksync_event_init(&ev, 0);
			ksync_op_event(&op, &ev);
		}
		ops_done = 0;
		assert_int_equal(ksync_poller_start(&p, &op, count_done), KSYNC_OP_PENDING);
		r.delay_ns = rnd(&seed) % 200000;
		t = spawn(release_one, &r);
		if (busy)
			spin_ns(300000);	/* the CQE arrives while we run */
		assert_int_equal(wait_fd(ep, &p, 5000), 1);
		join(t);
		/* The wait may have been re-armed once (e.g. a spurious -EAGAIN). */
		poll_until(ep, &p, ops_done == 1);
		assert_int_equal(op.result, 0);
		if (r.kind == KSYNC_KIND_LOCK)
			assert_int_equal(ksync_lock_release_task(&lock, 1000 + i), 0);
	}
	print_message("poller: 600 wakes, epoll_wait interrupted %d times\n", eintrs);
	ksync_poller_exit(&p);
	close(ep);
}

/* ---- thread <-> epoll task, each primitive ------------------------------- */

static int thread_result;

static void *blocking_lock(void *arg)
{
	(void)arg;
	thread_result = ksync_lock_acquire(&lock);
	if (thread_result == 0)
		assert_int_equal(ksync_lock_release(&lock), 0);
	return NULL;
}

static void *blocking_sem(void *arg)
{
	struct timespec dl = in_ns(10000000000LL);

	(void)arg;
	thread_result = ksync_sem_acquire_until(&sem, CLOCK_MONOTONIC, &dl);
	return NULL;
}

static void *blocking_event(void *arg)
{
	(void)arg;
	thread_result = ksync_event_wait(&ev);
	return NULL;
}

static void test_task_to_thread(void **state)
{
	struct ksync_poller p;
	struct ksync_op op;
	pthread_t t;

	(void)state;
	assert_int_equal(ksync_poller_init(&p, 8), 0);

	/* Lock: the epoll task owns it, a thread blocks, the task releases. */
	ksync_lock_init(&lock, 0);
	ksync_op_lock(&op, &lock, 9);
	assert_int_equal(ksync_poller_start(&p, &op, NULL), 0);
	t = spawn(blocking_lock, NULL);
	wait_until(peek(lock.word) & KSYNC_LOCK_CONTENDED);
	assert_int_equal(ksync_lock_release_task(&lock, 9), 0);
	join(t);
	assert_int_equal(thread_result, 0);
	assert_int_equal(ksync_lock_destroy(&lock), 0);

	/* Semaphore. */
	assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
	t = spawn(blocking_sem, NULL);
	wait_until(peek(sem.waiters) == 1);
	assert_int_equal(ksync_sem_release(&sem, 1), 0);
	join(t);
	assert_int_equal(thread_result, 0);
	assert_int_equal(ksync_sem_destroy(&sem), 0);

	/* Event. */
	ksync_event_init(&ev, 0);
	t = spawn(blocking_event, NULL);
	sleep_ns(1000000);
	ksync_event_set(&ev);
	join(t);
	assert_int_equal(thread_result, 0);
	ksync_poller_exit(&p);
}

/* ---- timeouts and cancels ------------------------------------------------ */

static void test_timeout_and_cancel(void **state)
{
	struct ksync_poller p;
	struct ksync_op op;
	struct timespec dl;
	int ep;

	(void)state;
	assert_int_equal(ksync_poller_init(&p, 8), 0);
	ep = watch(&p);
	assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);

	ksync_op_sem(&op, &sem);
	dl = in_ns(20000000);
	assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
	ops_done = 0;
	assert_int_equal(ksync_poller_start(&p, &op, count_done), KSYNC_OP_PENDING);
	poll_until(ep, &p, ops_done == 1);
	assert_int_equal(op.result, -ETIMEDOUT);
	assert_true(ksync_clock_ns(CLOCK_MONOTONIC) >= dl.tv_sec * 1000000000LL + dl.tv_nsec);

	ksync_op_sem(&op, &sem);
	ksync_deadline_after(&dl, CLOCK_REALTIME, 10000000);
	assert_int_equal(ksync_op_set_deadline(&op, CLOCK_REALTIME, &dl), 0);
	assert_int_equal(ksync_poller_start(&p, &op, count_done), KSYNC_OP_PENDING);
	poll_until(ep, &p, ops_done == 2);
	assert_int_equal(op.result, -ETIMEDOUT);

	/* Past deadline: tried once, -ETIMEDOUT at once, no callback. */
	ksync_op_sem(&op, &sem);
	dl = (struct timespec){ 1, 0 };
	assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
	assert_int_equal(ksync_poller_start(&p, &op, count_done), 0);
	assert_int_equal(op.result, -ETIMEDOUT);

	ksync_op_sem(&op, &sem);
	assert_int_equal(ksync_poller_start(&p, &op, count_done), KSYNC_OP_PENDING);
	assert_int_equal(ksync_poller_cancel(&p, &op), 0);
	assert_int_equal(ksync_poller_cancel(&p, &op), -EALREADY);
	poll_until(ep, &p, ops_done == 3);
	assert_int_equal(op.result, -ECANCELED);
	assert_int_equal(ksync_poller_busy(&p), 0);
	assert_int_equal(peek(sem.waiters), 0);
	assert_int_equal(ksync_sem_value(&sem), 0);
	ksync_poller_exit(&p);
	close(ep);
}

/*
 * Cancel racing a release: whoever wins, the blocking thread that also
 * waits gets the permit in the end (a consumed wake is handed on).
 */
static void test_cancel_races_wake(void **state)
{
	uint64_t seed = 4242;
	int got = 0, cancelled = 0;
	struct ksync_poller p;
	int ep;

	(void)state;
	assert_int_equal(ksync_poller_init(&p, 8), 0);
	ep = watch(&p);
	for (int i = 0; i < 1000; i++) {
		struct releaser r = { .kind = KSYNC_KIND_SEM, .delay_ns = -1 };
		struct ksync_op op;
		pthread_t rel, w;

		assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
		ksync_op_sem(&op, &sem);
		ops_done = 0;
		thread_result = 1;
		assert_int_equal(ksync_poller_start(&p, &op, count_done), KSYNC_OP_PENDING);
		rel = spawn(release_one, &r);
		w = spawn(blocking_sem, NULL);
		wait_until(peek(sem.waiters) == 2);
		__atomic_store_n(&r.go, 1, __ATOMIC_RELEASE);
		spin_ns(rnd(&seed) % 30000);
		ksync_poller_cancel(&p, &op);
		poll_until(ep, &p, ops_done == 1);
		if (op.result == 0) {
			got++;
			assert_int_equal(ksync_sem_release(&sem, 1), 0);
		} else {
			assert_int_equal(op.result, -ECANCELED);
			cancelled++;
		}
		join(rel);
		join(w);
		assert_int_equal(thread_result, 0);
		assert_int_equal(peek(sem.waiters), 0);
		assert_int_equal(ksync_sem_value(&sem), 0);
	}
	print_message("poller race: %d granted, %d cancelled\n", got, cancelled);
	assert_true(cancelled > 0);
	ksync_poller_exit(&p);
	close(ep);
}

/* ---- exit with waits pending --------------------------------------------- */

static void *timed_lock(void *arg)
{
	struct timespec dl = in_ns(10000000000LL);

	(void)arg;
	thread_result = ksync_lock_acquire_until(&lock, CLOCK_MONOTONIC, &dl);
	if (thread_result == 0)
		assert_int_equal(ksync_lock_release(&lock), 0);
	return NULL;
}

/* Release (maybe waking the poller's op) and exit at once: never lost. */
static void test_exit_hands_on(void **state)
{
	(void)state;
	for (int i = 0; i < 300; i++) {
		struct ksync_poller p;
		struct ksync_op op;
		pthread_t w;

		assert_int_equal(ksync_poller_init(&p, 8), 0);
		ops_done = 0;
		thread_result = 1;
		if (i & 1) {
			ksync_lock_init(&lock, 0);
			assert_int_equal(ksync_lock_acquire(&lock), 0);
			ksync_op_lock(&op, &lock, 1);
			assert_int_equal(ksync_poller_start(&p, &op, count_done), KSYNC_OP_PENDING);
			w = spawn(timed_lock, NULL);
			wait_until(peek(lock.word) & KSYNC_LOCK_CONTENDED);
			if (i & 2)
				sleep_ns(50000);
			assert_int_equal(ksync_lock_release(&lock), 0);
		} else {
			assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
			ksync_op_sem(&op, &sem);
			assert_int_equal(ksync_poller_start(&p, &op, count_done), KSYNC_OP_PENDING);
			w = spawn(blocking_sem, NULL);
			wait_until(peek(sem.waiters) == 2);
			if (i & 2)
				sleep_ns(50000);
			assert_int_equal(ksync_sem_release(&sem, 1), 0);
		}
		ksync_poller_exit(&p);
		assert_int_equal(ops_done, 1);
		assert_int_equal(op.result, -ECANCELED);
		join(w);
		assert_int_equal(thread_result, 0);
		if (i & 1) {
			assert_int_equal(ksync_lock_destroy(&lock), 0);
		} else {
			assert_int_equal(peek(sem.waiters), 0);
			assert_int_equal(ksync_sem_value(&sem), 0);
		}
	}
}

/* A callback may close the poller; the other callbacks still run once. */
static struct ksync_poller *closing;
static struct ksync_op late;
static int late_start;

static void exit_from_callback(struct ksync_op *op)
{
	(void)op;
	ops_done++;
	if (ops_done == 1) {
		ksync_poller_exit(closing);
		ksync_op_event(&late, &ev);
		late_start = ksync_poller_start(closing, &late, count_done);
	}
}

static void test_exit_from_callback(void **state)
{
	struct ksync_event other = KSYNC_EVENT_INIT;
	struct ksync_poller p;
	struct ksync_op a, b, c;
	int ep;

	(void)state;
	assert_int_equal(ksync_poller_init(&p, 8), 0);
	ep = watch(&p);
	closing = &p;
	ops_done = 0;
	ksync_event_init(&ev, 0);
	ksync_op_event(&a, &ev);
	ksync_op_event(&b, &ev);
	ksync_op_event(&c, &other);
	assert_int_equal(ksync_poller_start(&p, &a, exit_from_callback), KSYNC_OP_PENDING);
	assert_int_equal(ksync_poller_start(&p, &b, exit_from_callback), KSYNC_OP_PENDING);
	assert_int_equal(ksync_poller_start(&p, &c, exit_from_callback), KSYNC_OP_PENDING);
	ksync_event_set(&ev);
	poll_until(ep, &p, ops_done == 3);
	/* The first callback closed the poller; the other op on ev either
	 * finished in the same dispatch or was cancelled. */
	assert_true(a.result == 0 || b.result == 0);
	assert_true(a.result == 0 || a.result == -ECANCELED);
	assert_true(b.result == 0 || b.result == -ECANCELED);
	assert_int_equal(c.result, -ECANCELED);
	assert_int_equal(late_start, -ESHUTDOWN);
	assert_int_equal(ksync_poller_fd(&p), -1);
	close(ep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		async_unit_test(test_basics),
		async_unit_test(test_fd_readable_on_wake),
		async_unit_test(test_task_to_thread),
		async_unit_test(test_timeout_and_cancel),
		async_unit_test(test_cancel_races_wake),
		async_unit_test(test_exit_hands_on),
		async_unit_test(test_exit_from_callback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
