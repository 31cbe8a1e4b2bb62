/* SPDX-License-Identifier: MIT */
/*
 * CapacityLimiter interleavings, each forced with test points.
 *
 * Claims:
 * - A borrow decided under the old total cannot land after the total
 *   shrank: the total is in the word the borrow CASes, so its CAS fails,
 *   it looks again, finds no room and waits (with the total kept in
 *   another word, this borrow would land over the new total).
 * - A permit reserved for a woken waiter is revoked when the total shrinks
 *   below it: the waiter finds nothing, parks again, and is woken when the
 *   total grows.
 * - A woken waiter that loses to a barger after waiting too long switches
 *   the limiter to hand-off mode, and its next wake comes with a permit no
 *   new arrival can take.
 */
#include "testpoint.h"

enum { ROLE_W = 1 };

static struct ksync_limiter lim;
static struct ksync_limiter_slot slots[8];

#define RESERVED_NOW() (peek(lim.word) >> KSYNC_LIMITER_RESERVED_SHIFT)

static void assert_idle(uint32_t total)
{
	assert_int_equal(ksync_limiter_total(&lim), total);
	assert_int_equal(ksync_limiter_borrowed(&lim), 0);
	assert_int_equal(RESERVED_NOW(), 0);
	assert_int_equal(peek(lim.waiters), 0);
	assert_int_equal(ksync_limiter_destroy(&lim), 0);
}

struct waiter {
	pid_t tid;
	int result;
	int done;
};

/* Borrow with a deadline far enough away that only a lost wake reaches
 * it; return the permit if it got one. */
static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	struct timespec dl = in_ns(5000000000LL);

	set_role(ROLE_W);
	__atomic_store_n(&w->tid, self_tid(), __ATOMIC_RELEASE);
	w->result = ksync_limiter_acquire_until(&lim, CLOCK_MONOTONIC, &dl);
	assert_int_equal(ksync_limiter_borrowed(&lim), w->result == 0 ? 1 : 0);
	if (w->result == 0)
		assert_int_equal(ksync_limiter_release(&lim), 0);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_borrow_decided_under_old_total(void **state)
{
	struct waiter w = { 0 };
	int decided;
	pthread_t t;

	(void)state;
	assert_int_equal(ksync_limiter_init(&lim, 2, slots, 8, 0), 0);
	assert_int_equal(ksync_limiter_try_task(&lim, 1), 0);

	decided = arm(ROLE_W, "limiter.take.decided");
	t = spawn(waiter_main, &w);
	wait_arrived(decided);				/* W: 1 of 2 borrowed, take it */
	assert_int_equal(ksync_limiter_set_total(&lim, 1), 0);
	resume(decided);
	wait_until(peek(lim.waiters) == 1);		/* W's CAS failed; it waits */
	assert_int_equal(ksync_limiter_borrowed(&lim), 1);
	assert_false(peek(w.done));

	assert_int_equal(ksync_limiter_release_task(&lim, 1), 0);
	join(t);
	assert_int_equal(w.result, 0);
	assert_idle(1);
}

static void test_shrink_revokes_reservation(void **state)
{
	struct waiter w = { 0 };
	int woken;
	pthread_t t;

	(void)state;
	assert_int_equal(ksync_limiter_init(&lim, 1, slots, 8, 0), 0);
	__atomic_store_n(&lim.flags, KSYNC_LIMITER_STARVING, __ATOMIC_RELEASE);
	assert_int_equal(ksync_limiter_try_task(&lim, 5), 0);
	t = spawn(waiter_main, &w);
	wait_until(peek(w.tid) != 0 && peek(lim.waiters) == 1);
	wait_futex_asleep(peek(w.tid));

	woken = arm(ROLE_W, "limiter.wait.woken");
	assert_int_equal(ksync_limiter_release_task(&lim, 5), 0);	/* reserved for W */
	wait_arrived(woken);
	assert_int_equal(RESERVED_NOW(), 1);
	assert_int_equal(ksync_limiter_try_task(&lim, 6), -EAGAIN);	/* no barging */

	assert_int_equal(ksync_limiter_set_total(&lim, 0), 0);		/* revokes it */
	assert_int_equal(RESERVED_NOW(), 0);
	resume(woken);
	wait_until(peek(lim.waiters) == 1);		/* W found nothing, waits again */
	assert_false(peek(w.done));
	assert_int_equal(ksync_limiter_borrowed(&lim), 0);

	assert_int_equal(ksync_limiter_set_total(&lim, 1), 0);
	join(t);
	assert_int_equal(w.result, 0);
	assert_idle(1);
}

static void test_starving_switches_to_handoff(void **state)
{
	struct waiter w = { 0 };
	int woken, parking;
	pthread_t t;

	(void)state;
	assert_int_equal(ksync_limiter_init(&lim, 1, slots, 8, 0), 0);
	assert_int_equal(ksync_limiter_try_task(&lim, 5), 0);
	t = spawn(waiter_main, &w);
	wait_until(peek(w.tid) != 0 && peek(lim.waiters) == 1);
	wait_futex_asleep(peek(w.tid));
	sleep_ns(2 * KSYNC_LIMITER_STARVE_NS);		/* W has waited longer than the bound */

	woken = arm(ROLE_W, "limiter.wait.woken");
	assert_int_equal(ksync_limiter_release_task(&lim, 5), 0);
	wait_arrived(woken);
	assert_int_equal(ksync_limiter_try_task(&lim, 6), 0);	/* a barger takes W's permit */
	assert_false(peek(lim.flags) & KSYNC_LIMITER_STARVING);

	parking = arm(ROLE_W, "limiter.wait.park");
	resume(woken);
	wait_arrived(parking);				/* W lost, too late: hand-off mode */
	assert_true(peek(lim.flags) & KSYNC_LIMITER_STARVING);
	resume(parking);
	wait_futex_asleep(w.tid);

	woken = arm(ROLE_W, "limiter.wait.woken");
	assert_int_equal(ksync_limiter_release_task(&lim, 6), 0);	/* the barger returns */
	wait_arrived(woken);
	assert_int_equal(RESERVED_NOW(), 1);
	assert_int_equal(ksync_limiter_try_task(&lim, 7), -EAGAIN);	/* no barging now */
	resume(woken);
	join(t);
	assert_int_equal(w.result, 0);
	assert_idle(1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_borrow_decided_under_old_total),
		cmocka_unit_test(test_shrink_revokes_reservation),
		cmocka_unit_test(test_starving_switches_to_handoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
