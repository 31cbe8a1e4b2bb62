/* SPDX-License-Identifier: MIT */
/*
 * ksync-fastpath: the uncontended fast paths, one function per case, for
 * counting instructions with callgrind (tests/bench/fastpath-cost.sh), which
 * is exact and repeatable where times on a shared machine are not.
 *
 *   ksync-fastpath [N]     runs every case N times (default 100000)
 *
 * Each case_* function is called once and loops N times; callgrind's
 * inclusive count of it, divided by N, is the cost of one iteration
 * (the loop's own two or three instructions included, the same in every
 * build). Nothing here waits or makes a syscall.
 */
#include <ksync/ksync.h>

#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

#define CHECK(x) do {								\
	if (!(x)) {								\
		fprintf(stderr, "ksync-fastpath: %s failed\n", #x);		\
		exit(1);							\
	}									\
} while (0)

static struct ksync_lock lock = KSYNC_LOCK_INIT;
static struct ksync_sem sem = KSYNC_SEM_INIT(1);
static struct ksync_event event = KSYNC_EVENT_INIT;

/* Lock: acquire + release. */
static NOINLINE void case_lock(long n)
{
	for (long i = 0; i < n; i++) {
		CHECK(ksync_lock_acquire(&lock) == 0);
		CHECK(ksync_lock_release(&lock) == 0);
	}
}

/* Lock: try + release. */
static NOINLINE void case_lock_try(long n)
{
	for (long i = 0; i < n; i++) {
		CHECK(ksync_lock_try(&lock) == 0);
		CHECK(ksync_lock_release(&lock) == 0);
	}
}

/* Semaphore: acquire + release of one permit. */
static NOINLINE void case_sem(long n)
{
	for (long i = 0; i < n; i++) {
		CHECK(ksync_sem_acquire(&sem) == 0);
		CHECK(ksync_sem_release(&sem, 1) == 0);
	}
}

/* Semaphore: try + release. */
static NOINLINE void case_sem_try(long n)
{
	for (long i = 0; i < n; i++) {
		CHECK(ksync_sem_try(&sem) == 0);
		CHECK(ksync_sem_release(&sem, 1) == 0);
	}
}

/* Event: a wait on a set event returns at once. */
static NOINLINE void case_event_wait(long n)
{
	for (long i = 0; i < n; i++)
		CHECK(ksync_event_wait(&event) == 0);
}

/* Event: set on a set event (nothing to wake). */
static NOINLINE void case_event_set(long n)
{
	for (long i = 0; i < n; i++)
		CHECK(ksync_event_set(&event) == 0);
}

/* Async: a task's lock op that finishes at once (no SQE), then release. */
static NOINLINE void case_op_lock(long n, struct io_uring *ring)
{
	struct ksync_op op;

	for (long i = 0; i < n; i++) {
		ksync_op_lock(&op, &lock, 1);
		CHECK(ksync_op_start(&op, ring) == 0);
		CHECK(ksync_lock_release_task(&lock, 1) == 0);
	}
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	struct io_uring ring;
	bool have_ring;

	CHECK(n > 0);
	CHECK(ksync_event_set(&event) == 1);
	case_lock(n);
	case_lock_try(n);
	case_sem(n);
	case_sem_try(n);
	case_event_wait(n);
	case_event_set(n);
	/* An op that finishes at once never touches the ring, but needs one. */
	have_ring = io_uring_queue_init(8, &ring, 0) == 0;
	if (have_ring) {
		case_op_lock(n, &ring);
		io_uring_queue_exit(&ring);
	}
	printf("%ld iterations per case%s\n", n, have_ring ? "" : " (no io_uring: no op case)");
	return 0;
}
