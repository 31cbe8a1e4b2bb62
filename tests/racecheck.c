/* SPDX-License-Identifier: MIT */
/*
 * A program for race detectors (tests/racecheck.sh runs it under helgrind,
 * DRD and ThreadSanitizer). Its shared data are plain variables, guarded or
 * handed over only by ksync primitives, so a detector that does not
 * understand ksync reports races here that are not there:
 *
 *   racecheck ok     every access ordered by a ksync primitive: no report
 *                    may come out
 *     - a Lock guards a counter and a list: threads, and io_uring tasks on
 *       a ksync_loop in another thread (try, blocking and async acquires);
 *     - a Semaphore of one permit guards a second counter (try, blocking);
 *     - an Event publishes a message written before set() to threads that
 *       wait for it and to one that polls ksync_event_is_set();
 *     - a Semaphore hands items over: a producer writes a slot and
 *       releases, the consumer acquires and reads it.
 *   racecheck racy   the same, plus one real race: a thread that reads the
 *                    lock's counter without the lock (racy_reader) while
 *                    the workers write it, which a detector must report.
 *
 * Prints "tasks: yes" or "tasks: no (why)": io_uring futex waits need
 * Linux 6.7, and valgrind may not run them.
 * Exits 0 when every count adds up (the detector's verdict is its own).
 */
#include <ksync/ksync.h>
#include <ksync/loop.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS	3
#define ROUNDS	200
#define TASKS	4
#define ITEMS	64

#define CHECK(x) do {								\
	if (!(x)) {								\
		fprintf(stderr, "racecheck: %s:%d: %s failed\n", __FILE__,	\
			__LINE__, #x);						\
		exit(2);							\
	}									\
} while (0)

static struct ksync_lock lock = KSYNC_LOCK_INIT;
static long counter;			/* guarded by lock */
static int list[THREADS * ROUNDS + TASKS * ROUNDS + ROUNDS];
static int nlist;			/* guarded by lock */

static struct ksync_sem mutex_sem = KSYNC_SEM_BINARY_INIT(1);
static long sem_counter;		/* guarded by mutex_sem */

static struct ksync_event published = KSYNC_EVENT_INIT;
static char message[64];		/* written once before set() */

static struct ksync_sem items = KSYNC_SEM_BOUNDED_INIT(0, ITEMS);
static int slots[ITEMS];		/* slot i written before the i-th release */

static void locked_add(int who)
{
	counter++;
	list[nlist++] = who;
}

static void *worker(void *arg)
{
	int who = (int)(intptr_t)arg;

	for (int i = 0; i < ROUNDS; i++) {
		if (i % 4 == 0 && ksync_lock_try(&lock) == 0) {
			locked_add(who);
		} else {
			CHECK(ksync_lock_acquire(&lock) == 0);
			locked_add(who);
		}
		CHECK(ksync_lock_release(&lock) == 0);

		if (i % 3 == 0 && ksync_sem_try(&mutex_sem) == 0) {
			sem_counter++;
		} else {
			CHECK(ksync_sem_acquire(&mutex_sem) == 0);
			sem_counter++;
		}
		CHECK(ksync_sem_release(&mutex_sem, 1) == 0);
	}
	return NULL;
}

static void *reader(void *arg)
{
	(void)arg;
	CHECK(ksync_event_wait(&published) == 0);
	CHECK(!strcmp(message, "hello"));
	return NULL;
}

static void *poller(void *arg)
{
	(void)arg;
	while (!ksync_event_is_set(&published))
		sched_yield();
	CHECK(!strcmp(message, "hello"));
	return NULL;
}

static void *producer(void *arg)
{
	(void)arg;
	for (int i = 0; i < ITEMS; i++) {
		slots[i] = i * 7 + 1;
		CHECK(ksync_sem_release(&items, 1) == 0);
	}
	return NULL;
}

static long sink;

/* Reads the lock's counter without the lock while the workers write it. */
static void *racy_reader(void *arg)
{
	(void)arg;
	for (int i = 0; i < ROUNDS; i++)
		sink += *(volatile long *)&counter;
	return NULL;
}

/* ---- tasks: a loop thread whose tasks take the lock asynchronously ------- */

struct task {
	struct ksync_op op;	/* first: the callback gets the task */
	struct ksync_loop *loop;
	int rounds;
	int id;
};

static int tasks_left;		/* loop thread only */

static void task_locked(struct ksync_op *op);

/* Take the lock again; a start that finishes at once loops here. */
static void task_next(struct task *t)
{
	while (t->rounds < ROUNDS) {
		int r;

		ksync_op_lock(&t->op, &lock, (uintptr_t)t);
		r = ksync_loop_start(t->loop, &t->op, task_locked);
		CHECK(r >= 0);
		if (r == KSYNC_OP_PENDING)
			return;	/* task_locked runs from the loop */
		CHECK(t->op.result == 0);
		locked_add(100 + t->id);
		CHECK(ksync_lock_release_task(&lock, (uintptr_t)t) == 0);
		t->rounds++;
	}
	tasks_left--;
}

static void task_locked(struct ksync_op *op)
{
	struct task *t = (struct task *)op;

	CHECK(op->result == 0);
	locked_add(100 + t->id);
	CHECK(ksync_lock_release_task(&lock, (uintptr_t)t) == 0);
	t->rounds++;
	task_next(t);
}

static void *loop_thread(void *arg)
{
	struct ksync_loop loop;
	struct task tasks[TASKS];

	(void)arg;
	CHECK(ksync_loop_init(&loop, 16, 0) == 0);
	tasks_left = TASKS;
	for (int i = 0; i < TASKS; i++) {
		tasks[i] = (struct task){ .loop = &loop, .id = i };
		task_next(&tasks[i]);
	}
	while (tasks_left)
		CHECK(ksync_loop_run_once(&loop, 1) >= 0);
	ksync_loop_exit(&loop);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[THREADS], rd[2], prod, loop_th, racy;
	bool with_race = argc > 1 && !strcmp(argv[1], "racy");
	int tasks = ksync_require(KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX);
	long expect;

	if (argc < 2 || (!with_race && strcmp(argv[1], "ok"))) {
		fprintf(stderr, "usage: racecheck ok|racy\n");
		return 2;
	}
	if (tasks == 0)
		printf("tasks: yes\n");
	else
		printf("tasks: no (%s)\n", strerror(-tasks));

	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&rd[i], NULL, i ? poller : reader, NULL) == 0);
	for (int i = 0; i < THREADS; i++)
		CHECK(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) == 0);
	if (tasks == 0)
		CHECK(pthread_create(&loop_th, NULL, loop_thread, NULL) == 0);
	CHECK(pthread_create(&prod, NULL, producer, NULL) == 0);
	if (with_race)
		CHECK(pthread_create(&racy, NULL, racy_reader, NULL) == 0);

	snprintf(message, sizeof(message), "hello");
	CHECK(ksync_event_set(&published) == 1);

	/* The consumer: item i was written before the release that made it. */
	for (int i = 0; i < ITEMS; i++) {
		CHECK(ksync_sem_acquire(&items) == 0);
		CHECK(slots[i] == i * 7 + 1);
	}

	for (int i = 0; i < THREADS; i++)
		CHECK(pthread_join(th[i], NULL) == 0);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_join(rd[i], NULL) == 0);
	if (tasks == 0)
		CHECK(pthread_join(loop_th, NULL) == 0);
	CHECK(pthread_join(prod, NULL) == 0);
	if (with_race)
		CHECK(pthread_join(racy, NULL) == 0);

	/* Joined: no lock needed any more (pthread_join orders it). */
	expect = (long)THREADS * ROUNDS + (tasks == 0 ? (long)TASKS * ROUNDS : 0);
	CHECK(counter == expect && nlist == expect);
	CHECK(sem_counter == (long)THREADS * ROUNDS);
	printf("counter %ld, list %d, sem %ld: ok\n", counter, nlist, sem_counter);
	return 0;
}
