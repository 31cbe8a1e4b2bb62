/* SPDX-License-Identifier: MIT */
/*
 * Process-shared primitives (KSYNC_SHARED) between a parent and a forked
 * child sharing a MAP_SHARED mapping, with threads and io_uring tasks on
 * both sides.
 *
 * Claims:
 * - An Event set in one process wakes a thread and a task parked on it in
 *   the other.
 * - A Lock keeps mutual exclusion and a Semaphore keeps its permit count
 *   across processes, and no wake is lost between them: every waiter, in
 *   either process and either world, gets its grant before a deadline far
 *   away (a wake sent with process-private futex flags would never reach
 *   the other process, and its waiters would sit until that deadline).
 * - The attribute is checked: unknown flags are -EINVAL.
 */
#include "harness.h"

#include <sys/mman.h>
#include <sys/wait.h>

#define THREADS		2
#define TASKS		4
#define ROUNDS		2000
#define PERMITS		2

struct shared {
	struct ksync_lock lock;
	struct ksync_sem sem;
	struct ksync_event go;
	long counter;		/* under the lock */
	int lock_inside, lock_max;
	int sem_inside, sem_max;
	int failures;
};

static struct shared *sh;

static void failed(const char *what, int r)
{
	fprintf(stderr, "pid %d: %s: %d\n", (int)getpid(), what, r);
	__atomic_fetch_add(&sh->failures, 1, __ATOMIC_RELAXED);
}

static void enter(int *inside, int *max)
{
	int n = __atomic_add_fetch(inside, 1, __ATOMIC_ACQ_REL);
	int m = __atomic_load_n(max, __ATOMIC_RELAXED);

	while (n > m && !__atomic_compare_exchange_n(max, &m, n, false, __ATOMIC_RELAXED,
						     __ATOMIC_RELAXED))
		;
}

static void leave(int *inside)
{
	__atomic_sub_fetch(inside, 1, __ATOMIC_ACQ_REL);
}

static void in_lock(void)
{
	enter(&sh->lock_inside, &sh->lock_max);
	sh->counter++;
	leave(&sh->lock_inside);
}

static void *thread_main(void *arg)
{
	struct timespec dl;
	int r;

	(void)arg;
	dl = in_ns(20000000000LL);
	r = ksync_event_wait_until(&sh->go, CLOCK_MONOTONIC, &dl);
	if (r)
		failed("thread event wait", r);
	for (int i = 0; i < ROUNDS; i++) {
		dl = in_ns(20000000000LL);
		r = ksync_lock_acquire_until(&sh->lock, CLOCK_MONOTONIC, &dl);
		if (r) {
			failed("thread lock", r);
			continue;
		}
		in_lock();
		if ((r = ksync_lock_release(&sh->lock)))
			failed("thread unlock", r);
		dl = in_ns(20000000000LL);
		r = ksync_sem_acquire_until(&sh->sem, CLOCK_MONOTONIC, &dl);
		if (r) {
			failed("thread sem", r);
			continue;
		}
		enter(&sh->sem_inside, &sh->sem_max);
		leave(&sh->sem_inside);
		if ((r = ksync_sem_release(&sh->sem, 1)))
			failed("thread sem release", r);
	}
	return NULL;
}

/* A task alternates lock and semaphore rounds, restarting in a loop. */
struct task {
	struct ksync_op op;
	struct ksync_loop *loop;
	uint64_t token;	/* unique across both processes (addresses are not) */
	int round;	/* even: lock, odd: semaphore */
	int started;	/* past the event */
};

static void task_cb(struct ksync_op *op);

static int task_start(struct task *t)
{
	struct timespec dl = in_ns(20000000000LL);
	int r;

	if (!t->started)
		ksync_op_event(&t->op, &sh->go);
	else if (t->round % 2 == 0)
		ksync_op_lock(&t->op, &sh->lock, t->token);
	else
		ksync_op_sem(&t->op, &sh->sem);
	t->op.data = t;
	if ((r = ksync_op_set_deadline(&t->op, CLOCK_MONOTONIC, &dl)))
		return r;
	return ksync_loop_start(t->loop, &t->op, task_cb);
}

static void task_cb(struct ksync_op *op)
{
	struct task *t = op->data;
	int r;

	do {
		if (op->result) {
			failed("task wait", op->result);
		} else if (!t->started) {
			t->started = 1;
		} else if (t->round % 2 == 0) {
			in_lock();
			if ((r = ksync_lock_release_task(&sh->lock, t->token)))
				failed("task unlock", r);
			t->round++;
		} else {
			enter(&sh->sem_inside, &sh->sem_max);
			leave(&sh->sem_inside);
			if ((r = ksync_sem_release(&sh->sem, 1)))
				failed("task sem release", r);
			t->round++;
		}
		if (t->round == 2 * ROUNDS)
			return;
	} while ((r = task_start(t)) == 0);
	if (r != KSYNC_OP_PENDING)
		failed("task start", r);
}

static void *ring_main(void *arg)
{
	struct ksync_loop loop;
	struct task tasks[TASKS];
	int r;

	(void)arg;
	if ((r = ksync_loop_init(&loop, 64, 0))) {
		failed("loop init", r);
		return NULL;
	}
	memset(tasks, 0, sizeof(tasks));
	for (int i = 0; i < TASKS; i++) {
		tasks[i].loop = &loop;
		tasks[i].token = (uint64_t)getpid() << 8 | (uint64_t)(i + 1);
		r = task_start(&tasks[i]);
		if (r == 0)
			task_cb(&tasks[i].op);
		else if (r != KSYNC_OP_PENDING)
			failed("task start", r);
	}
	if ((r = ksync_loop_run(&loop)))
		failed("loop run", r);
	ksync_loop_exit(&loop);
	return NULL;
}

/* Both processes run this: THREADS threads and one ring of TASKS tasks. */
static void workload(void)
{
	pthread_t t[THREADS + 1];

	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, thread_main, NULL);
	pthread_create(&t[THREADS], NULL, ring_main, NULL);
	for (int i = 0; i <= THREADS; i++)
		pthread_join(t[i], NULL);
}

static void test_attribute_checked(void **state)
{
	struct ksync_lock l;
	struct ksync_sem s;
	struct ksync_event e;

	(void)state;
	assert_int_equal(ksync_lock_init(&l, 2), -EINVAL);
	assert_int_equal(ksync_sem_init(&s, 0, 0, 0x10), -EINVAL);
	assert_int_equal(ksync_event_init(&e, ~0u), -EINVAL);
	assert_int_equal(ksync_lock_init(&l, KSYNC_SHARED), 0);
	assert_int_equal(ksync_sem_init(&s, 1, 1, KSYNC_SHARED), 0);
	assert_int_equal(ksync_event_init(&e, KSYNC_SHARED), 0);
	assert_int_equal(ksync_sem_try(&s), 0);
	assert_int_equal(ksync_sem_release(&s, 1), 0);
	assert_int_equal(ksync_lock_try(&l), 0);
	assert_int_equal(ksync_lock_release(&l), 0);
}

static void test_parent_and_child(void **state)
{
	int status;
	pid_t pid;
	long want = 2L * (THREADS + TASKS) * ROUNDS;

	(void)state;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	memset(sh, 0, sizeof(*sh));
	assert_int_equal(ksync_lock_init(&sh->lock, KSYNC_SHARED), 0);
	assert_int_equal(ksync_sem_init(&sh->sem, PERMITS, PERMITS, KSYNC_SHARED), 0);
	assert_int_equal(ksync_event_init(&sh->go, KSYNC_SHARED), 0);

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(120);
		workload();
		_exit(0);
	}
	/* Let the child's waiters park on the event first, then go. */
	sleep_ns(50000000);
	assert_int_equal(ksync_event_set(&sh->go), 1);
	workload();
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	print_message("counter %ld of %ld, lock max inside %d, permits max in use %d\n",
		      sh->counter, want, sh->lock_max, sh->sem_max);
	assert_int_equal(sh->failures, 0);
	assert_int_equal(sh->counter, want);
	assert_int_equal(sh->lock_max, 1);
	assert_true(sh->sem_max >= 1 && sh->sem_max <= PERMITS);
	assert_int_equal(ksync_sem_value(&sh->sem), PERMITS);
	assert_int_equal(peek(sh->sem.waiters), 0);
	assert_int_equal(ksync_lock_destroy(&sh->lock), 0);
	munmap(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_attribute_checked),
		cmocka_unit_test(test_parent_and_child),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
