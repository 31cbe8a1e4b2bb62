/* SPDX-License-Identifier: MIT */
/*
 * Lock regressions, each one interleaving forced with test points.
 *
 * Claim: in hand-off mode the lock goes to the waiter the release woke.
 * A thread that was woken once before, lost, parked again and then left
 * its wait without a new wake (a signal, or the word changing) must not
 * claim that hand-off (issue 7: its `woken` flag stayed set, so it could,
 * sending the longest waiter back to the queue).
 */
#include "testpoint.h"

#include <signal.h>

enum { ROLE_T = 1, ROLE_W };

static struct ksync_lock lock;
static int order[2], norder;

struct waiter {
	int role;
	pid_t tid;
	int result;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	set_role(w->role);
	__atomic_store_n(&w->tid, self_tid(), __ATOMIC_RELEASE);
	w->result = ksync_lock_acquire(&lock);
	if (!w->result) {
		order[__atomic_fetch_add(&norder, 1, __ATOMIC_ACQ_REL)] = w->role;
		w->result = ksync_lock_release(&lock);
	}
	return NULL;
}

static void on_signal(int sig)
{
	(void)sig;
}

static void test_handoff_goes_to_the_woken_waiter(void **state)
{
	struct waiter t = { .role = ROLE_T }, w = { .role = ROLE_W };
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART: EINTR */
	pthread_t tt, tw;
	int t_woken, w_woken, t_park;

	(void)state;
	assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
	ksync_lock_init(&lock, 0);
	norder = 0;
	assert_int_equal(ksync_lock_acquire(&lock), 0);

	/* T parks alone, is woken, loses to a barger (main). */
	tt = spawn(waiter_main, &t);
	wait_until(peek(t.tid) != 0);
	wait_futex_asleep(peek(t.tid));
	t_woken = arm(ROLE_T, "lock.wait.woken");
	assert_int_equal(ksync_lock_release(&lock), 0);
	wait_arrived(t_woken);
	assert_int_equal(ksync_lock_try(&lock), 0);

	/* W parks while T is out, so W is ahead of T in the kernel's queue. */
	tw = spawn(waiter_main, &w);
	wait_until(peek(w.tid) != 0);
	wait_futex_asleep(peek(w.tid));
	resume(t_woken);
	wait_futex_asleep(t.tid);			/* T parked again, behind W */

	/* Hand-off mode: the release keeps the lock and wakes W for it. */
	__atomic_fetch_or(&lock.word, KSYNC_LOCK_STARVING, __ATOMIC_ACQ_REL);
	w_woken = arm(ROLE_W, "lock.wait.woken");
	assert_int_equal(ksync_lock_release(&lock), 0);
	wait_arrived(w_woken);
	assert_true(peek(lock.word) & KSYNC_LOCK_HANDOFF);

	/* T leaves its wait without a wake; it must not take W's hand-off. */
	t_park = arm(ROLE_T, "lock.wait.park");
	assert_int_equal(pthread_kill(tt, SIGUSR1), 0);
	wait_arrived(t_park);				/* about to sleep again */
	assert_true(peek(lock.word) & KSYNC_LOCK_HANDOFF);
	resume(t_park);

	resume(w_woken);
	join(tw);
	join(tt);
	assert_int_equal(w.result, 0);
	assert_int_equal(t.result, 0);
	assert_int_equal(norder, 2);
	assert_int_equal(order[0], ROLE_W);
	assert_int_equal(order[1], ROLE_T);
	assert_int_equal(ksync_lock_destroy(&lock), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handoff_goes_to_the_woken_waiter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
