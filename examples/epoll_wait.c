/* SPDX-License-Identifier: MIT */
/*
 * epoll_wait: the generic ksync_poller in a hand-written epoll loop.
 *
 * A thread holds a lock for 50 ms and then sets an event. The epoll loop
 * waits for both without blocking: each wait is an IORING_OP_FUTEX_WAIT on
 * the poller's ring, and the loop only watches the ring's fd. Exit code 0 if
 * both waits completed as expected.
 */
#include <ksync/ksync.h>
#include <ksync/poller.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static struct ksync_lock lock = KSYNC_LOCK_INIT;
static struct ksync_event held = KSYNC_EVENT_INIT;
static struct ksync_event ready = KSYNC_EVENT_INIT;
static int done;

static void *holder(void *arg)
{
	(void)arg;
	ksync_lock_acquire(&lock);
	ksync_event_set(&held);
	usleep(50000);
	ksync_lock_release(&lock);	/* wakes the loop's lock op */
	usleep(50000);
	ksync_event_set(&ready);	/* wakes the loop's event op */
	return NULL;
}

static void on_lock(struct ksync_op *op)
{
	printf("lock op: %s\n", op->result ? strerror(-op->result) : "got the lock");
	if (op->result == 0)
		ksync_lock_release_task(&lock, op->token);
	done++;
}

static void on_ready(struct ksync_op *op)
{
	printf("event op: %s\n", op->result ? strerror(-op->result) : "event set");
	done++;
}

int main(void)
{
	struct ksync_poller poller;
	struct ksync_op lock_op, ready_op;
	struct epoll_event e = { .events = EPOLLIN };
	struct timespec deadline;
	pthread_t t;
	int ep, r;

	r = ksync_poller_init(&poller, 16);
	if (r) {
		fprintf(stderr, "ksync_poller_init: %s\n", strerror(-r));
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	e.data.ptr = &poller;
	epoll_ctl(ep, EPOLL_CTL_ADD, ksync_poller_fd(&poller), &e);

	pthread_create(&t, NULL, holder, NULL);
	ksync_event_wait(&held);		/* the thread holds the lock now */

	ksync_op_lock(&lock_op, &lock, 1);	/* task token 1 */
	ksync_op_event(&ready_op, &ready);
	ksync_op_set_deadline(&ready_op, CLOCK_MONOTONIC,
			      ksync_deadline_after(&deadline, CLOCK_MONOTONIC, 2000000000));
	/* 0 would mean "done at once, no callback"; not the case here. */
	if (ksync_poller_start(&poller, &lock_op, on_lock) == 0)
		on_lock(&lock_op);
	if (ksync_poller_start(&poller, &ready_op, on_ready) == 0)
		on_ready(&ready_op);

	while (done < 2) {
		int n = epoll_wait(ep, &e, 1, 5000);

		/* The kernel interrupts this thread to post a completion to
		 * the ring; epoll_wait then fails with EINTR: just retry. */
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "epoll_wait: %s\n", n ? strerror(errno) : "timed out");
			break;
		}
		ksync_poller_dispatch(e.data.ptr);
	}

	pthread_join(t, NULL);
	ksync_poller_exit(&poller);	/* nothing pending by now */
	close(ep);
	return done == 2 && lock_op.result == 0 && ready_op.result == 0 &&
	       ksync_lock_destroy(&lock) == 0 ? 0 : 1;
}
