/* SPDX-License-Identifier: MIT */
/*
 * shared_lock: one ksync_lock shared by io_uring tasks and plain threads.
 *
 * NLOOPS threads each run their own io_uring loop (struct ksync_loop) with
 * NTASKS tasks; NTHREADS more threads block in ksync_lock_acquire. Everybody
 * takes the same lock ROUNDS times, holds it briefly and lets it go. A task
 * never blocks its thread: it waits with ksync_op_lock, which parks an
 * IORING_OP_FUTEX_WAIT on its loop's ring, and holds the lock across a
 * ksync_loop_sleep timer, so the other tasks of its loop keep running.
 *
 * Every holder prints a line when it gets the lock; the program checks that
 * no two holders were ever inside at once and exits 1 if anything failed.
 * On a machine without io_uring futex waits it says what is missing and
 * exits 2 before starting anything.
 */
#include <ksync/ksync.h>
#include <ksync/loop.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NLOOPS		2
#define NTASKS		3	/* per loop */
#define NTHREADS	2
#define ROUNDS		5

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

static struct ksync_lock lock = KSYNC_LOCK_INIT;	/* the one shared lock */

static atomic_int inside;		/* current holders: must be 0 or 1 */
static atomic_int errors;
static atomic_int task_grants, thread_grants;
static struct timespec t0;
static pthread_barrier_t start_line;	/* everybody starts together */

static double ms_since_start(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0.tv_sec) * 1e3 + (now.tv_nsec - t0.tv_nsec) / 1e6;
}

static void fail(const char *who, const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", who, what, strerror(-err));
	atomic_fetch_add(&errors, 1);
}

/* Called by every holder right after it got the lock, and before release. */
static void enter(const char *who, int round)
{
	if (atomic_fetch_add(&inside, 1) != 0) {
		fprintf(stderr, "%s: someone else holds the lock too!\n", who);
		atomic_fetch_add(&errors, 1);
	}
	printf("%9.3f ms  %-16s holds the lock (round %d/%d)\n",
	       ms_since_start(), who, round, ROUNDS);
}

static void leave(void)
{
	atomic_fetch_sub(&inside, 1);
}

/* What ksync_require() reported missing, in words. */
static const char *missing(int err)
{
	switch (err) {
	case -EPERM:
		return "io_uring is disabled (sysctl kernel.io_uring_disabled) or refused by seccomp";
	case -ENOSYS:
		return "the kernel has no io_uring (or refuses futex syscalls)";
	case -EOPNOTSUPP:
		return "io_uring lacks the futex operations (Linux 6.7 or later needed)";
	default:
		return strerror(-err);
	}
}

/* How long to hold the lock: 100-500 µs, varying a little. */
static int64_t hold_ns(int id, int round)
{
	return (100 + 100 * ((id + round) % 5)) * 1000ll;
}

/* ---- The async world: tasks in io_uring loops ---- */

struct task {
	struct ksync_loop *loop;
	char name[24];
	int id;
	int round;			/* rounds completed */
	struct ksync_op lock_op;	/* waits for the lock */
	struct ksync_op sleep_op;	/* the timer while holding it */
};

/* The token that identifies a task as lock owner: its address. */
static uint64_t token(struct task *t)
{
	return (uint64_t)(uintptr_t)t;
}

static void on_locked(struct ksync_op *op);

static void task_acquire(struct task *t)
{
	int r;

	ksync_op_lock(&t->lock_op, &lock, token(t));
	r = ksync_loop_start(t->loop, &t->lock_op, on_locked);
	if (r == 0)
		on_locked(&t->lock_op);	/* it was free: no callback comes */
	else if (r != KSYNC_OP_PENDING)
		fail(t->name, "ksync_loop_start", r);
}

/* The hold time is over: release, then go again until ROUNDS are done. */
static void on_slept(struct ksync_op *op)
{
	struct task *t = container_of(op, struct task, sleep_op);
	int r;

	leave();
	r = ksync_lock_release_task(&lock, token(t));
	if (r)
		fail(t->name, "ksync_lock_release_task", r);
	if (++t->round < ROUNDS && !r)
		task_acquire(t);
}

/* The lock op is done: op->result says whether we own the lock. */
static void on_locked(struct ksync_op *op)
{
	struct task *t = container_of(op, struct task, lock_op);
	int r;

	if (op->result) {
		fail(t->name, "lock op", op->result);
		return;
	}
	atomic_fetch_add(&task_grants, 1);
	enter(t->name, t->round + 1);

	/* Hold it without blocking the loop: the other tasks keep running. */
	r = ksync_loop_sleep(t->loop, &t->sleep_op, hold_ns(t->id, t->round), on_slept);
	if (r) {
		fail(t->name, "ksync_loop_sleep", r);
		leave();
		r = ksync_lock_release_task(&lock, token(t));
		if (r)
			fail(t->name, "ksync_lock_release_task", r);
	}
}

struct loop_thread {
	pthread_t tid;
	int id;
	unsigned flags;			/* io_uring setup flags */
	struct task tasks[NTASKS];
};

static void *loop_main(void *arg)
{
	struct loop_thread *lt = arg;
	struct ksync_loop loop;
	char name[24];
	int r;

	/* A loop belongs to the thread that runs it: set it up here. */
	snprintf(name, sizeof(name), "loop %d", lt->id);
	r = ksync_loop_init(&loop, 32, lt->flags);
	pthread_barrier_wait(&start_line);
	if (r) {
		fail(name, "ksync_loop_init", r);
		return NULL;
	}

	for (int i = 0; i < NTASKS; i++) {
		struct task *t = &lt->tasks[i];

		t->loop = &loop;
		t->id = i;
		snprintf(t->name, sizeof(t->name), "loop %d task %d", lt->id, i);
		task_acquire(t);
	}

	/* Runs the callbacks until no task has anything left to wait for. */
	r = ksync_loop_run(&loop);
	if (r)
		fail(name, "ksync_loop_run", r);
	ksync_loop_exit(&loop);
	return NULL;
}

/* ---- The blocking world: plain threads ---- */

static void *thread_main(void *arg)
{
	int id = (int)(intptr_t)arg;
	char name[24];

	snprintf(name, sizeof(name), "thread %d", id);
	pthread_barrier_wait(&start_line);

	for (int round = 0; round < ROUNDS; round++) {
		int64_t ns = hold_ns(id, round);
		struct timespec hold = { 0, (long)ns };
		int r = ksync_lock_acquire(&lock);

		if (r) {
			fail(name, "ksync_lock_acquire", r);
			break;
		}
		atomic_fetch_add(&thread_grants, 1);
		enter(name, round + 1);
		nanosleep(&hold, NULL);
		leave();
		r = ksync_lock_release(&lock);
		if (r) {
			fail(name, "ksync_lock_release", r);
			break;
		}
	}
	return NULL;
}

int main(void)
{
	static struct loop_thread loops[NLOOPS];
	pthread_t threads[NTHREADS];
	int total, expected = NLOOPS * NTASKS * ROUNDS + NTHREADS * ROUNDS;
	int r;

	/* Threads block with futex(2) on any Linux; the loops need io_uring's
	 * futex operations. Say so, rather than fail half-way. */
	r = ksync_require(KSYNC_FEAT_FUTEX | KSYNC_FEAT_URING_FUTEX);
	if (r) {
		fprintf(stderr, "shared_lock: cannot run io_uring tasks here: %s (%s)\n",
			missing(r), strerror(-r));
		return 2;
	}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = pthread_barrier_init(&start_line, NULL, NLOOPS + NTHREADS);
	if (r) {
		fprintf(stderr, "pthread_barrier_init: %s\n", strerror(r));
		return 1;
	}

	for (int i = 0; i < NLOOPS; i++) {
		loops[i].id = i;
		/* Both kinds of ring work; use one of each. */
		loops[i].flags = i % 2 ? 0 : IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
		printf("loop %d: %d tasks on a ring with flags %s\n", i, NTASKS,
		       loops[i].flags ? "SINGLE_ISSUER|DEFER_TASKRUN" : "0");
		r = pthread_create(&loops[i].tid, NULL, loop_main, &loops[i]);
		if (r) {
			fprintf(stderr, "pthread_create: %s\n", strerror(r));
			return 1;	/* the others wait at the barrier forever */
		}
	}
	for (int i = 0; i < NTHREADS; i++) {
		r = pthread_create(&threads[i], NULL, thread_main, (void *)(intptr_t)i);
		if (r) {
			fprintf(stderr, "pthread_create: %s\n", strerror(r));
			return 1;
		}
	}

	for (int i = 0; i < NLOOPS; i++)
		pthread_join(loops[i].tid, NULL);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(threads[i], NULL);
	pthread_barrier_destroy(&start_line);

	/* Nobody holds or waits for the lock any more. */
	if (ksync_lock_destroy(&lock)) {
		fprintf(stderr, "the lock is still busy at the end\n");
		atomic_fetch_add(&errors, 1);
	}

	total = task_grants + thread_grants;
	printf("\ngrants: %d to loop tasks, %d to threads, %d in total (expected %d)\n",
	       task_grants, thread_grants, total, expected);
	printf("mutual exclusion %s, %d error(s)\n",
	       inside == 0 && errors == 0 ? "held" : "VIOLATED or incomplete", (int)errors);
	return errors == 0 && total == expected ? 0 : 1;
}
