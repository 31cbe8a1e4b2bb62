/* SPDX-License-Identifier: MIT */
/*
 * Bounded queue: interleavings forced with test points (lib/testpoint.h).
 *
 * Claims:
 * - A getter that decides to wait while the only item is reserved for a
 *   woken task, which is then cancelled and gives the reservation back, is
 *   not stranded: it read the word before deciding (the model's first
 *   counterexample, tests/model/bqueue.pml).
 * - A cancelled woken task that gives its reservation back while a getter
 *   is between deciding and sleeping makes that getter's sleep fail
 *   (the leaver bumps the word: mutant NO_SEQ_BUMP).
 * - A reservation nobody was woken for (the waiters were between deciding
 *   and sleeping) goes back, and the waiter that decided on it takes the
 *   item instead of sleeping.
 * - A getter that waits on a closed queue whose last item is reserved for a
 *   woken task is woken with -ESHUTDOWN when the task takes that item (it
 *   slept until its deadline before: the close's wake had come before it
 *   slept, and taking an item woke nobody).
 * - A woken getter that loses to a barger after waiting longer than the
 *   bound switches the side to hand-off mode; the next item is reserved for
 *   it and a try_get cannot take it.
 */
#include "testpoint.h"

enum { ROLE_X = 1, ROLE_W, ROLE_P };

static struct ksync_bqueue q;
static uint64_t qbuf[16];

static void init_q(bool starving)
{
	assert_int_equal(ksync_bqueue_init(&q, KSYNC_BQUEUE_FIFO, 4, 1, qbuf, sizeof(qbuf), 0), 0);
	if (starving)
		__atomic_fetch_or(&q.flags, KSYNC_BQUEUE_STARVING_GET, __ATOMIC_RELEASE);
}

static void assert_idle(void)
{
	assert_int_equal(peek(q.getters), 0);
	assert_int_equal(peek(q.putters), 0);
	assert_int_equal(peek(q.get_res), 0);
	assert_int_equal(peek(q.put_res), 0);
	assert_int_equal(ksync_bqueue_destroy(&q), 0);
}

struct getter {
	int role;
	pid_t tid;
	uint32_t item;
	int result;
	int done;
};

/* get with a deadline far enough away that only a lost wake reaches it */
static void *getter_main(void *arg)
{
	struct getter *g = arg;
	struct timespec dl = in_ns(5000000000LL);

	set_role(g->role);
	__atomic_store_n(&g->tid, self_tid(), __ATOMIC_RELEASE);
	g->result = ksync_bqueue_get_until(&q, &g->item, CLOCK_MONOTONIC, &dl);
	__atomic_store_n(&g->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static uint32_t put_value;

static void *putter_main(void *arg)
{
	(void)arg;
	set_role(ROLE_P);
	assert_int_equal(ksync_bqueue_put(&q, &put_value), 0);
	return NULL;
}

static int op_done;

static void on_done(struct ksync_op *op)
{
	(void)op;
	op_done = 1;
}

/*
 * A task's get parks; a put reserves the item for it and wakes it (its CQE
 * is not reaped yet). Returns with the loop set up and the op woken.
 */
static void woken_task(struct ksync_loop *loop, struct ksync_op *op, uint32_t *out)
{
	pthread_t tp;

	assert_int_equal(ksync_loop_init(loop, 8, 0), 0);
	ksync_op_bqueue_get(op, &q, out);
	op_done = 0;
	assert_int_equal(loop_start(loop, op, on_done), 0);
	assert_true(ksync_loop_run_once(loop, 0) >= 0);
	assert_int_equal(peek(q.getters), 1);
	put_value = 11;
	tp = spawn(putter_main, NULL);
	join(tp);					/* reserved for the task, woke it */
	assert_int_equal(peek(q.get_res), 1);
}

static void test_decided_before_reservation_dropped(void **state)
{
	struct getter x = { .role = ROLE_X };
	struct ksync_loop loop;
	struct ksync_op op;
	uint32_t out;
	int decided;
	pthread_t tx;

	(void)state;
	init_q(true);
	woken_task(&loop, &op, &out);

	decided = arm(ROLE_X, "bqueue.take.decided");
	tx = spawn(getter_main, &x);
	wait_arrived(decided);				/* X saw only a reserved item */

	assert_int_equal(ksync_loop_cancel(&loop, &op), 0);
	run_loop_until(&loop, op_done);			/* the woken task leaves */
	assert_int_equal(op.result, -ECANCELED);
	assert_int_equal(peek(q.get_res), 0);

	resume(decided);				/* X must not sleep for good */
	join(tx);
	assert_int_equal(x.result, 0);
	assert_int_equal(x.item, 11);
	ksync_loop_exit(&loop);
	assert_idle();
}

static void test_leaver_bumps_the_word(void **state)
{
	struct getter x = { .role = ROLE_X };
	struct ksync_loop loop;
	struct ksync_op op;
	uint32_t out;
	int parking;
	pthread_t tx;

	(void)state;
	init_q(true);
	woken_task(&loop, &op, &out);

	parking = arm(ROLE_X, "bqueue.wait.park");
	tx = spawn(getter_main, &x);
	wait_arrived(parking);				/* X registered, about to sleep */
	assert_int_equal(peek(q.getters), 2);

	assert_int_equal(ksync_loop_cancel(&loop, &op), 0);
	run_loop_until(&loop, op_done);			/* its wake finds nobody asleep */
	assert_int_equal(op.result, -ECANCELED);

	resume(parking);				/* X's sleep must fail */
	join(tx);
	assert_int_equal(x.result, 0);
	assert_int_equal(x.item, 11);
	ksync_loop_exit(&loop);
	assert_idle();
}

static void test_unwanted_reservation_goes_back(void **state)
{
	struct getter x = { .role = ROLE_X }, w = { .role = ROLE_W };
	int w_parking, x_parking, p_wake;
	pthread_t tw, tx, tp;

	(void)state;
	init_q(true);
	w_parking = arm(ROLE_W, "bqueue.wait.park");
	tw = spawn(getter_main, &w);
	wait_arrived(w_parking);			/* W registered, not asleep */

	p_wake = arm(ROLE_P, "bqueue.produce.wake");
	put_value = 21;
	tp = spawn(putter_main, NULL);
	wait_arrived(p_wake);				/* the item is reserved for W */
	assert_int_equal(peek(q.get_res), 1);

	x_parking = arm(ROLE_X, "bqueue.wait.park");
	tx = spawn(getter_main, &x);
	wait_arrived(x_parking);			/* X saw only a reserved item */

	resume(p_wake);					/* wakes nobody: gives it back */
	join(tp);
	assert_int_equal(peek(q.get_res), 0);

	resume(x_parking);				/* X's sleep must fail: it takes */
	join(tx);
	assert_int_equal(x.result, 0);
	assert_int_equal(x.item, 21);
	resume(w_parking);
	put_value = 22;
	assert_int_equal(ksync_bqueue_put(&q, &put_value), 0);
	join(tw);
	assert_int_equal(w.result, 0);
	assert_int_equal(w.item, 22);
	assert_idle();
}

static void test_last_item_of_closed_queue_wakes_getters(void **state)
{
	struct getter x = { .role = ROLE_X };
	struct ksync_loop loop;
	struct ksync_op op;
	uint32_t out;
	pthread_t tx;

	(void)state;
	init_q(true);
	woken_task(&loop, &op, &out);			/* the item is the task's */
	assert_int_equal(ksync_bqueue_close(&q), 0);

	tx = spawn(getter_main, &x);
	wait_until(peek(x.tid) != 0);
	wait_futex_asleep(peek(x.tid));			/* X waits: closed, not empty */
	assert_int_equal(peek(q.getters), 2);

	run_loop_until(&loop, op_done);			/* the task takes the last item */
	assert_int_equal(op.result, 0);
	assert_int_equal(out, 11);
	join(tx);
	assert_int_equal(x.result, -ESHUTDOWN);
	ksync_loop_exit(&loop);
	assert_idle();
}

static void test_starving_getter_gets_handoff(void **state)
{
	struct getter w = { .role = ROLE_W };
	uint32_t v = 5, stolen;
	int woken, parking;
	pthread_t tw;

	(void)state;
	init_q(false);
	tw = spawn(getter_main, &w);
	wait_until(peek(w.tid) != 0);
	wait_futex_asleep(peek(w.tid));
	sleep_ns(2 * KSYNC_BQUEUE_STARVE_NS);		/* W waited longer than the bound */

	woken = arm(ROLE_W, "bqueue.wait.woken");
	assert_int_equal(ksync_bqueue_put(&q, &v), 0);
	wait_arrived(woken);
	assert_int_equal(ksync_bqueue_try_get(&q, &stolen), 0);	/* a barger */
	assert_false(peek(q.flags) & KSYNC_BQUEUE_STARVING_GET);

	parking = arm(ROLE_W, "bqueue.wait.park");
	resume(woken);
	wait_arrived(parking);				/* W lost, too late: hand-off */
	assert_true(peek(q.flags) & KSYNC_BQUEUE_STARVING_GET);
	resume(parking);
	wait_futex_asleep(w.tid);

	woken = arm(ROLE_W, "bqueue.wait.woken");
	assert_int_equal(ksync_bqueue_put(&q, &stolen), 0);
	wait_arrived(woken);
	assert_int_equal(peek(q.get_res), 1);
	assert_int_equal(ksync_bqueue_try_get(&q, &v), -EAGAIN);	/* no barging */
	resume(woken);
	join(tw);
	assert_int_equal(w.result, 0);
	assert_int_equal(w.item, 5);
	assert_idle();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		async_unit_test(test_decided_before_reservation_dropped),
		async_unit_test(test_leaver_bumps_the_word),
		cmocka_unit_test(test_unwanted_reservation_goes_back),
		async_unit_test(test_last_item_of_closed_queue_wakes_getters),
		cmocka_unit_test(test_starving_getter_gets_handoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
