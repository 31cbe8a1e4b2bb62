/* SPDX-License-Identifier: MIT */
/*
 * Deadlines and clocks at their edges.
 *
 * - Every deadline ksync_check_deadline accepts (tv_sec from 0 to
 *   INT64_MAX) means the same in every world: a far one (the year 2286,
 *   tv_sec INT64_MAX used as "never") does not expire, whether a thread
 *   waits (futex2 or the classic futex(2)) or an async op does (a ring
 *   driven by ksync_loop, or a poll loop through ksync_poller); both wait
 *   until woken or cancelled. One in the past times out everywhere.
 * - ksync_deadline_after and ksync_clock_ns reject a clock they cannot use
 *   with -EINVAL, and any duration up to INT64_MAX gives a valid deadline.
 * - ksync_loop_sleep takes a negative duration as 0.
 */
#include "sandbox.h"

#include <limits.h>

#include "ksync/poller.h"

static const struct timespec far[] = {
	{ INT64_MAX, 999999999 },	/* the largest deadline there is */
	{ INT64_MAX, 0 },		/* "never", as some callers spell it */
	{ 10000000000LL, 0 },		/* the year 2286: past 2^63 ns */
	{ 1LL << 62, 5 },
};
#define N_FAR (sizeof(far) / sizeof(far[0]))

static const clockid_t clocks[] = { CLOCK_MONOTONIC, CLOCK_REALTIME };

/* ---- clocks ------------------------------------------------------------- */

static void test_deadline_after_rejects_bad_clocks(void **state)
{
	static const clockid_t bad[] = {
		CLOCK_PROCESS_CPUTIME_ID, CLOCK_BOOTTIME, (clockid_t)12345, (clockid_t)-77,
	};
	struct ksync_lock lock = KSYNC_LOCK_INIT;
	struct timespec ts;

	(void)state;
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ts = (struct timespec){ 1, 1 };
		assert_int_equal(ksync_deadline_after(&ts, bad[i], 1000), -EINVAL);
		/* Left malformed: a caller who ignored the error cannot wait
		 * on it by mistake. */
		assert_int_equal(ksync_lock_acquire_until(&lock, CLOCK_MONOTONIC, &ts), -EINVAL);
	}
	assert_int_equal(ksync_deadline_after(NULL, CLOCK_MONOTONIC, 1000), -EINVAL);
	assert_int_equal(ksync_lock_destroy(&lock), 0);
}

static void test_clock_ns_rejects_unknown_clocks(void **state)
{
	(void)state;
	assert_int_equal(ksync_clock_ns((clockid_t)12345), -EINVAL);
	assert_int_equal(ksync_clock_ns((clockid_t)-77), -EINVAL);
	assert_true(ksync_clock_ns(CLOCK_MONOTONIC) > 0);
	assert_true(ksync_clock_ns(CLOCK_REALTIME) > 0);
	assert_true(ksync_clock_ns(CLOCK_THREAD_CPUTIME_ID) >= 0);	/* any real clock */
}

static void test_deadline_after_any_duration(void **state)
{
	(void)state;
	for (unsigned c = 0; c < 2; c++) {
		struct timespec before, ts, after;

		clock_gettime(clocks[c], &before);
		assert_int_equal(ksync_deadline_after(&ts, clocks[c], INT64_MAX), 0);
		assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000);
		assert_true(ts.tv_sec >= before.tv_sec + INT64_MAX / 1000000000);

		/* Negative: now (a deadline that has passed). */
		assert_int_equal(ksync_deadline_after(&ts, clocks[c], INT64_MIN), 0);
		clock_gettime(clocks[c], &after);
		assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000);
		assert_true(ts.tv_sec >= before.tv_sec && ts.tv_sec <= after.tv_sec);

		/* Carries into tv_sec. */
		assert_int_equal(ksync_deadline_after(&ts, clocks[c], 1999999999), 0);
		assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000);
		assert_true(ts.tv_sec >= before.tv_sec + 1);
	}
}

/* ---- threads ------------------------------------------------------------ */

struct waiter {
	struct ksync_lock *lock;
	struct ksync_event *ev;
	clockid_t clock;
	const struct timespec *deadline;
	pid_t tid;
	int ret;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	__atomic_store_n(&w->tid, gettid(), __ATOMIC_RELEASE);
	if (w->lock) {
		w->ret = ksync_lock_acquire_until(w->lock, w->clock, w->deadline);
		if (w->ret == 0)
			w->ret = ksync_lock_release(w->lock);
	} else {
		w->ret = ksync_event_wait_until(w->ev, w->clock, w->deadline);
	}
	return NULL;
}

/* A thread waits with each far deadline, in syscall @nr, until woken. */
static int threads_wait_past_2262(long nr)
{
	for (unsigned c = 0; c < 2; c++) {
		for (unsigned i = 0; i < N_FAR; i++) {
			struct ksync_lock lock = KSYNC_LOCK_INIT;
			struct ksync_event ev = KSYNC_EVENT_INIT;
			struct waiter wl = { .lock = &lock, .clock = clocks[c], .deadline = &far[i] };
			struct waiter we = { .ev = &ev, .clock = clocks[c], .deadline = &far[i] };
			pthread_t tl, te;

			CHECK_EQ(ksync_lock_acquire(&lock), 0);
			CHECK_EQ(pthread_create(&tl, NULL, waiter_main, &wl), 0);
			CHECK_EQ(pthread_create(&te, NULL, waiter_main, &we), 0);
			CHECK_SOON(__atomic_load_n(&wl.tid, __ATOMIC_ACQUIRE) &&
				   blocked_in(wl.tid, nr, &lock.word));
			CHECK_SOON(__atomic_load_n(&we.tid, __ATOMIC_ACQUIRE) &&
				   blocked_in(we.tid, nr, &ev.word));
			CHECK_EQ(ksync_lock_release(&lock), 0);
			CHECK_EQ(ksync_event_set(&ev), 1);
			CHECK_EQ(pthread_join(tl, NULL), 0);
			CHECK_EQ(pthread_join(te, NULL), 0);
			CHECK_EQ(wl.ret, 0);
			CHECK_EQ(we.ret, 0);
			CHECK_EQ(ksync_lock_destroy(&lock), 0);
		}
	}
	return 0;
}

static void test_threads_far_deadlines(void **state)
{
	(void)state;
	assert_int_equal(threads_wait_past_2262(NR_FUTEX_WAIT), 0);
}

static int child_classic(void *arg)
{
	(void)arg;
	return threads_wait_past_2262(SYS_futex);
}

static void test_threads_far_deadlines_classic_futex(void **state)
{
	struct sandbox sb;

	(void)state;
	sandbox_init(&sb);
	sandbox_refuse(&sb, NR_FUTEX_WAIT, ENOSYS);
	sandbox_refuse(&sb, NR_FUTEX_WAKE, ENOSYS);
	run_sandboxed("far deadlines on futex(2)", &sb, child_classic, NULL);
}

/* ---- async ops ---------------------------------------------------------- */

static void mark_done(struct ksync_op *op)
{
	(*(int *)op->data)++;
}

/* A lock op (cancelled) and an event op (set by a thread) with each far
 * deadline: both stay pending until then. */
static void loop_far_deadlines(unsigned setup)
{
	for (unsigned c = 0; c < 2; c++) {
		for (unsigned i = 0; i < N_FAR; i++) {
			struct ksync_lock lock = KSYNC_LOCK_INIT;
			struct ksync_event ev = KSYNC_EVENT_INIT;
			struct ksync_op lop, eop;
			struct ksync_loop loop;
			int ldone = 0, edone = 0;

			assert_int_equal(ksync_loop_init(&loop, 8, setup), 0);
			assert_int_equal(ksync_lock_try_task(&lock, 2), 0);
			ksync_op_lock(&lop, &lock, 1);
			ksync_op_event(&eop, &ev);
			lop.data = &ldone;
			eop.data = &edone;
			assert_int_equal(ksync_op_set_deadline(&lop, clocks[c], &far[i]), 0);
			assert_int_equal(ksync_op_set_deadline(&eop, clocks[c], &far[i]), 0);
			assert_int_equal(ksync_loop_start(&loop, &lop, mark_done), KSYNC_OP_PENDING);
			assert_int_equal(ksync_loop_start(&loop, &eop, mark_done), KSYNC_OP_PENDING);
			for (int k = 0; k < 3; k++) {
				assert_true(ksync_loop_run_once(&loop, 0) >= 0);
				sleep_ns(1000000);
			}
			assert_true(ksync_op_pending(&lop) && ksync_op_pending(&eop));
			assert_int_equal(ldone + edone, 0);

			assert_int_equal(ksync_loop_cancel(&loop, &lop), 0);
			assert_int_equal(ksync_event_set(&ev), 1);
			run_loop_until(&loop, ldone && edone);
			assert_int_equal(lop.result, -ECANCELED);
			assert_int_equal(eop.result, 0);
			assert_int_equal(ksync_lock_release_task(&lock, 2), 0);
			assert_int_equal(ksync_lock_destroy(&lock), 0);
			ksync_loop_exit(&loop);
		}
	}
}

static void test_loop_ops_far_deadlines(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++)
		loop_far_deadlines(ring_setups[s]);
}

static void test_poller_ops_far_deadlines(void **state)
{
	(void)state;
	for (unsigned c = 0; c < 2; c++) {
		for (unsigned i = 0; i < N_FAR; i++) {
			struct ksync_event ev = KSYNC_EVENT_INIT;
			struct ksync_poller p;
			struct ksync_op op;
			int done = 0;
			int64_t end;

			assert_int_equal(ksync_poller_init(&p, 8), 0);
			ksync_op_event(&op, &ev);
			op.data = &done;
			assert_int_equal(ksync_op_set_deadline(&op, clocks[c], &far[i]), 0);
			assert_int_equal(ksync_poller_start(&p, &op, mark_done), KSYNC_OP_PENDING);
			sleep_ns(2000000);
			assert_true(ksync_poller_dispatch(&p) >= 0);
			assert_int_equal(done, 0);
			assert_int_equal(ksync_poller_cancel(&p, &op), 0);
			end = ksync_clock_ns(CLOCK_MONOTONIC) + 10000000000LL;
			while (!done) {
				assert_true(ksync_clock_ns(CLOCK_MONOTONIC) < end);
				assert_true(ksync_poller_dispatch(&p) >= 0);
				if (!done)
					sleep_ns(100000);
			}
			assert_int_equal(op.result, -ECANCELED);
			ksync_poller_exit(&p);
		}
	}
}

/* A deadline that has passed: -ETIMEDOUT in every world, without waiting. */
static void test_past_deadline_times_out_everywhere(void **state)
{
	static const struct timespec past = { 0, 0 };
	struct ksync_lock lock = KSYNC_LOCK_INIT;
	struct ksync_event ev = KSYNC_EVENT_INIT;
	struct ksync_loop loop;
	struct ksync_op op;
	struct holder h = { .lock = &lock };
	pthread_t t;

	(void)state;
	t = spawn(holder_main, &h);
	wait_until(peek(h.held));
	for (unsigned c = 0; c < 2; c++) {
		assert_int_equal(ksync_lock_acquire_until(&lock, clocks[c], &past), -ETIMEDOUT);
		assert_int_equal(ksync_event_wait_until(&ev, clocks[c], &past), -ETIMEDOUT);
		assert_int_equal(ksync_loop_init(&loop, 8, 0), 0);
		ksync_op_lock(&op, &lock, 1);
		assert_int_equal(ksync_op_set_deadline(&op, clocks[c], &past), 0);
		assert_int_equal(ksync_loop_start(&loop, &op, NULL), 0);
		assert_int_equal(op.result, -ETIMEDOUT);
		ksync_loop_exit(&loop);
	}
	__atomic_store_n(&h.release, 1, __ATOMIC_RELEASE);
	join(t);
	assert_int_equal(h.ret, 0);
}

/* ---- ksync_loop_sleep --------------------------------------------------- */

static void test_loop_sleep_negative_is_zero(void **state)
{
	static const int64_t durations[] = { -1, -1000000000, INT64_MIN };

	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;
		struct ksync_op op[3], forever;
		int done = 0, forever_done = 0;

		assert_int_equal(ksync_loop_init(&loop, 8, ring_setups[s]), 0);
		for (unsigned i = 0; i < 3; i++) {
			op[i].data = &done;
			assert_int_equal(ksync_loop_sleep(&loop, &op[i], durations[i], mark_done), 0);
		}
		forever.data = &forever_done;
		assert_int_equal(ksync_loop_sleep(&loop, &forever, INT64_MAX, mark_done), 0);
		assert_int_equal(done, 0);	/* never from inside the call */
		run_loop_until(&loop, done == 3);
		for (unsigned i = 0; i < 3; i++)
			assert_int_equal(op[i].result, 0);

		assert_int_equal(forever_done, 0);
		assert_int_equal(ksync_loop_cancel(&loop, &forever), 0);
		run_loop_until(&loop, forever_done);
		assert_int_equal(forever.result, -ECANCELED);
		ksync_loop_exit(&loop);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deadline_after_rejects_bad_clocks),
		cmocka_unit_test(test_clock_ns_rejects_unknown_clocks),
		cmocka_unit_test(test_deadline_after_any_duration),
		cmocka_unit_test(test_threads_far_deadlines),
		cmocka_unit_test(test_threads_far_deadlines_classic_futex),
		async_unit_test(test_loop_ops_far_deadlines),
		async_unit_test(test_poller_ops_far_deadlines),
		async_unit_test(test_past_deadline_times_out_everywhere),
		async_unit_test(test_loop_sleep_negative_is_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
