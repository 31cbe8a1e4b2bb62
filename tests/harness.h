/* SPDX-License-Identifier: MIT */
/* Small helpers shared by the ksync tests. */
#ifndef KSYNC_TEST_HARNESS_H
#define KSYNC_TEST_HARNESS_H

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "ksync/ksync.h"
#include "ksync/loop.h"

/* Both ring setups every async test runs under. */
static const unsigned ring_setups[] = {
	0,
	IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
};
#define N_RING_SETUPS (sizeof(ring_setups) / sizeof(ring_setups[0]))

static inline pthread_t spawn(void *(*fn)(void *), void *arg)
{
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, fn, arg), 0);
	return t;
}

static inline void join(pthread_t t)
{
	assert_int_equal(pthread_join(t, NULL), 0);
}

static inline void sleep_ns(int64_t ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* A thread that takes @lock and holds it until ->release is set. */
struct holder {
	struct ksync_lock *lock;
	int held;	/* set once it owns the lock (or failed: see ret) */
	int release;
	int ret;	/* acquire's result, then release's */
};

static inline void *holder_main(void *arg)
{
	struct holder *h = arg;

	h->ret = ksync_lock_acquire(h->lock);
	__atomic_store_n(&h->held, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&h->release, __ATOMIC_ACQUIRE))
		sleep_ns(100000);
	if (!h->ret)
		h->ret = ksync_lock_release(h->lock);
	return NULL;
}

/*
 * ksync_loop_start for tests that count callbacks: an op that finished at
 * once gets its callback here and now (the driver does not call it), so a
 * callback runs exactly once either way. Returns 0 when the op was started
 * (done or pending), or the driver's error.
 */
static inline int loop_start(struct ksync_loop *loop, struct ksync_op *op, ksync_op_cb cb)
{
	int r = ksync_loop_start(loop, op, cb);

	if (r == 0 && cb)
		cb(op);
	return r == KSYNC_OP_PENDING ? 0 : r;
}

/* Busy-wait @ns: places a racing action more precisely than a sleep. */
static inline void spin_ns(int64_t ns)
{
	int64_t end = ksync_clock_ns(CLOCK_MONOTONIC) + ns;

	while (ksync_clock_ns(CLOCK_MONOTONIC) < end)
		;
}

static inline struct timespec in_ns(int64_t ns)
{
	struct timespec ts;

	ksync_deadline_after(&ts, CLOCK_MONOTONIC, ns);
	return ts;
}

/*
 * Async tests need io_uring's futex ops. Where the kernel lacks them, or
 * io_uring is disabled, such a test is skipped with the reason (and every
 * thread-only test still runs). Mark it in the test table:
 *   async_unit_test(test_x)     instead of cmocka_unit_test(test_x)
 * or call require_async() first thing in the test.
 */
static inline void require_async(void)
{
	int r = ksync_require(KSYNC_FEAT_FUTEX | KSYNC_FEAT_URING_FUTEX);

	if (r) {
		print_message("SKIP: needs io_uring futex ops: %s\n",
			      r == -EPERM ? "io_uring is disabled or refused (EPERM)" :
			      r == -EOPNOTSUPP ? "the kernel lacks them (EOPNOTSUPP)" :
			      strerror(-r));
		skip();
	}
}

struct async_test {
	CMUnitTestFunction fn;
};

static inline void async_test_run(void **state)
{
	const struct async_test *t = *state;

	require_async();
	t->fn(state);
}

#define async_unit_test(f) \
	{ #f, async_test_run, NULL, NULL, &(struct async_test){ f } }

/* Read a word another thread writes (tests must not race either). */
#define peek(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)

/* xorshift: per-thread random numbers without locks. */
static inline uint32_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 11);
}

/* Spin until @cond holds or ~10 s pass (then fail the test). */
#define wait_until(cond) do {							\
	int64_t _end = ksync_clock_ns(CLOCK_MONOTONIC) + 10000000000LL;		\
	while (!(cond)) {							\
		assert_true(ksync_clock_ns(CLOCK_MONOTONIC) < _end);		\
		sleep_ns(100000);						\
	}									\
} while (0)

/* Run a loop until @cond holds, or fail after ~10 s. */
#define run_loop_until(loop, cond) do {						\
	int64_t _end = ksync_clock_ns(CLOCK_MONOTONIC) + 10000000000LL;		\
	while (!(cond)) {							\
		assert_true(ksync_clock_ns(CLOCK_MONOTONIC) < _end);		\
		assert_true(ksync_loop_run_once((loop), 0) >= 0);		\
		if (!(cond))							\
			sleep_ns(50000);					\
	}									\
} while (0)

#endif
