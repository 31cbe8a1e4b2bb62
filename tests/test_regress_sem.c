/* SPDX-License-Identifier: MIT */
/*
 * Semaphore regressions, each one interleaving forced with test points.
 *
 * Claims:
 * - A waiter that decided to park on a value with a permit reserved for
 *   someone else is not stranded when the reservation is dropped (issue 7,
 *   bug 1: it slept until its deadline with a permit free).
 * - A new arrival cannot take a permit reserved for a woken waiter, even if
 *   it saw the same word value before the reservation was made (issue 7,
 *   bug 2: the reservation leaked and the semaphore was dead for good).
 * - A woken waiter that loses to a barger after waiting too long switches
 *   the semaphore to hand-off mode, and its next wake comes with a permit no
 *   new arrival can take: as a thread and as an io_uring task.
 */
#include "testpoint.h"

enum { ROLE_W = 1, ROLE_R, ROLE_A, ROLE_B, ROLE_LOOP };

static struct ksync_sem sem;

#define RESERVED_NOW() ((peek(sem.word) & KSYNC_SEM_RESERVED_MASK) / KSYNC_SEM_RESERVED_ONE)
#define FREE_NOW() (peek(sem.word) & KSYNC_SEM_FREE_MASK)

static void assert_idle(uint32_t value)
{
	assert_int_equal(ksync_sem_value(&sem), value);
	assert_int_equal(RESERVED_NOW(), 0);
	assert_int_equal(peek(sem.waiters), 0);
	assert_int_equal(ksync_sem_destroy(&sem), 0);
}

struct waiter {
	int role;
	pid_t tid;
	int result;
	int done;
};

/* acquire with a deadline far enough away that only a lost wake reaches it */
static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	struct timespec dl = in_ns(5000000000LL);

	set_role(w->role);
	__atomic_store_n(&w->tid, self_tid(), __ATOMIC_RELEASE);
	w->result = ksync_sem_acquire_until(&sem, CLOCK_MONOTONIC, &dl);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *releaser_main(void *arg)
{
	(void)arg;
	set_role(ROLE_R);
	assert_int_equal(ksync_sem_release(&sem, 1), 0);
	return NULL;
}

static void test_reservation_dropped_wakes_parker(void **state)
{
	struct waiter w = { .role = ROLE_W };
	int announced, parking, woke;
	pthread_t tw, tr;

	(void)state;
	assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
	__atomic_store_n(&sem.flags, KSYNC_SEM_STARVING, __ATOMIC_RELEASE);

	announced = arm(ROLE_W, "sem.wait.announced");
	parking = arm(ROLE_W, "sem.wait.park");
	woke = arm(ROLE_R, "sem.release.woke");
	tw = spawn(waiter_main, &w);
	wait_arrived(announced);			/* W counted in waiters */

	tr = spawn(releaser_main, NULL);
	wait_arrived(woke);				/* R reserved 1, woke nobody */
	assert_int_equal(RESERVED_NOW(), 1);
	assert_int_equal(peek(sem.waiters), 1);

	resume(announced);
	wait_arrived(parking);				/* W saw only a reserved permit */
	resume(woke);					/* R drops it, wakes nobody */
	join(tr);
	assert_int_equal(FREE_NOW(), 1);
	resume(parking);				/* W's wait must not sleep */
	join(tw);
	assert_int_equal(w.result, 0);
	assert_idle(0);
}

static void test_arrival_cannot_take_reserved(void **state)
{
	struct waiter a = { .role = ROLE_A }, b = { .role = ROLE_B };
	int b_decided, a_parking, a_woken;
	pthread_t ta, tb;

	(void)state;
	assert_int_equal(ksync_sem_init(&sem, 1, 1, 0), 0);
	__atomic_store_n(&sem.flags, KSYNC_SEM_STARVING, __ATOMIC_RELEASE);

	b_decided = arm(ROLE_B, "sem.take.decided");
	tb = spawn(waiter_main, &b);
	wait_arrived(b_decided);			/* B is about to take 1 -> 0 */

	assert_int_equal(ksync_sem_try(&sem), 0);	/* C takes it first */

	a_parking = arm(ROLE_A, "sem.wait.park");
	ta = spawn(waiter_main, &a);
	wait_arrived(a_parking);
	a_woken = arm(ROLE_A, "sem.wait.woken");
	resume(a_parking);
	wait_futex_asleep(peek(a.tid));			/* A is queued in the kernel */

	assert_int_equal(ksync_sem_release(&sem, 1), 0);	/* reserved for A, wakes A */
	wait_arrived(a_woken);
	assert_int_equal(RESERVED_NOW(), 1);

	resume(b_decided);				/* B's take must fail now */
	wait_until(peek(sem.waiters) == 1);		/* B parks */
	assert_false(peek(b.done));

	resume(a_woken);
	join(ta);
	assert_int_equal(a.result, 0);			/* A got the reserved permit */
	assert_int_equal(RESERVED_NOW(), 0);

	assert_int_equal(ksync_sem_release(&sem, 1), 0);	/* A's permit, for B */
	join(tb);
	assert_int_equal(b.result, 0);
	assert_int_equal(ksync_sem_release(&sem, 1), 0);
	assert_idle(1);
	assert_int_equal(ksync_sem_try(&sem), 0);	/* usable */
	assert_int_equal(ksync_sem_release(&sem, 1), 0);
}

static void test_thread_starving_switches_to_handoff(void **state)
{
	struct waiter w = { .role = ROLE_W };
	int woken, parking;
	pthread_t tw;

	(void)state;
	assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
	tw = spawn(waiter_main, &w);
	wait_until(peek(w.tid) != 0);
	wait_futex_asleep(peek(w.tid));
	sleep_ns(2 * KSYNC_SEM_STARVE_NS);		/* W has waited longer than the bound */

	woken = arm(ROLE_W, "sem.wait.woken");
	assert_int_equal(ksync_sem_release(&sem, 1), 0);
	wait_arrived(woken);
	assert_int_equal(ksync_sem_try(&sem), 0);	/* a barger takes W's permit */
	assert_false(peek(sem.flags) & KSYNC_SEM_STARVING);

	parking = arm(ROLE_W, "sem.wait.park");
	resume(woken);
	wait_arrived(parking);				/* W lost, too late: hand-off mode */
	assert_true(peek(sem.flags) & KSYNC_SEM_STARVING);
	resume(parking);
	wait_futex_asleep(w.tid);

	woken = arm(ROLE_W, "sem.wait.woken");
	assert_int_equal(ksync_sem_release(&sem, 1), 0);	/* the barger gives it back */
	wait_arrived(woken);
	assert_int_equal(RESERVED_NOW(), 1);
	assert_int_equal(ksync_sem_try(&sem), -EAGAIN);	/* no barging now */
	resume(woken);
	join(tw);
	assert_int_equal(w.result, 0);
	assert_idle(0);
}

/* The same for a task: the op waits on a plain ring in its own thread. */
struct task {
	pid_t tid;
	struct ksync_op op;
	int done;
};

static void *task_main(void *arg)
{
	struct task *t = arg;
	struct ksync_loop loop;

	set_role(ROLE_LOOP);
	assert_int_equal(ksync_loop_init(&loop, 8, 0), 0);
	ksync_op_sem(&t->op, &sem);
	assert_int_equal(loop_start(&loop, &t->op, NULL), 0);
	__atomic_store_n(&t->tid, self_tid(), __ATOMIC_RELEASE);
	assert_int_equal(ksync_loop_run(&loop), 0);
	ksync_loop_exit(&loop);
	__atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_task_starving_switches_to_handoff(void **state)
{
	struct task t = { 0 };
	int woken;
	pthread_t tt;

	(void)state;
	assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
	tt = spawn(task_main, &t);
	wait_until(peek(t.tid) != 0 && peek(sem.waiters) == 1);
	wait_ring_asleep(peek(t.tid));			/* its FUTEX_WAIT is armed */
	sleep_ns(2 * KSYNC_SEM_STARVE_NS);

	woken = arm(ROLE_LOOP, "sem.op.woken");
	assert_int_equal(ksync_sem_release(&sem, 1), 0);
	wait_arrived(woken);				/* the CQE is being handled */
	assert_int_equal(ksync_sem_try(&sem), 0);	/* a thread barges */
	resume(woken);
	wait_until(peek(sem.waiters) == 1);		/* the task parks again */
	assert_true(peek(sem.flags) & KSYNC_SEM_STARVING);
	wait_ring_asleep(t.tid);

	woken = arm(ROLE_LOOP, "sem.op.woken");
	assert_int_equal(ksync_sem_release(&sem, 1), 0);
	wait_arrived(woken);
	assert_int_equal(ksync_sem_try(&sem), -EAGAIN);	/* reserved for the task */
	resume(woken);
	join(tt);
	assert_int_equal(t.op.result, 0);
	assert_idle(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reservation_dropped_wakes_parker),
		cmocka_unit_test(test_arrival_cannot_take_reserved),
		cmocka_unit_test(test_thread_starving_switches_to_handoff),
		async_unit_test(test_task_starving_switches_to_handoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
