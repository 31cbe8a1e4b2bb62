/* SPDX-License-Identifier: MIT */
/*
 * epoll_wait: the generic ksync_poller in a hand-written epoll loop.
 *
 * A thread holds a lock for 50 ms and then sets an event. The epoll loop
 * waits for both without blocking: each wait is an IORING_OP_FUTEX_WAIT on
 * the poller's ring, and the loop only watches the ring's fd. Exit code 0 if
 * both waits completed as expected, 1 if not, 2 if this machine cannot run
 * io_uring futex waits (it says what is missing).
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
static int holder_error;

static void *holder(void *arg)
{
	int r;

	(void)arg;
	r = ksync_lock_acquire(&lock);
	if (r) {
		fprintf(stderr, "holder: ksync_lock_acquire: %s\n", strerror(-r));
		holder_error = r;
	}
	ksync_event_set(&held);		/* even on error: main must not hang */
	if (r)
		return NULL;
	usleep(50000);
	ksync_lock_release(&lock);	/* wakes the loop's lock op */
	usleep(50000);
	ksync_event_set(&ready);	/* wakes the loop's event op */
	return NULL;
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

static void on_lock(struct ksync_op *op)
{
	printf("lock op: %s\n", op->result ? strerror(-op->result) : "got the lock");
	if (op->result == 0 && ksync_lock_release_task(&lock, op->token))
		op->result = -EPERM;	/* not ours after all: report it at exit */
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
		fprintf(stderr, "epoll_wait: cannot run io_uring futex waits here: %s (%s)\n",
			missing(r), strerror(-r));
		return 2;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	e.data.ptr = &poller;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ksync_poller_fd(&poller), &e)) {
		perror("epoll");
		return 1;
	}

	r = pthread_create(&t, NULL, holder, NULL);
	if (r) {
		fprintf(stderr, "pthread_create: %s\n", strerror(r));
		return 1;
	}
	r = ksync_event_wait(&held);		/* the thread holds the lock now */
	if (r || holder_error) {
		fprintf(stderr, "waiting for the holder: %s\n", strerror(r ? -r : -holder_error));
		return 1;
	}

	ksync_op_lock(&lock_op, &lock, 1);	/* task token 1 */
	ksync_op_event(&ready_op, &ready);
	r = ksync_deadline_after(&deadline, CLOCK_MONOTONIC, 2000000000);
	if (r == 0)
		r = ksync_op_set_deadline(&ready_op, CLOCK_MONOTONIC, &deadline);
	if (r) {
		fprintf(stderr, "deadline: %s\n", strerror(-r));
		return 1;
	}
	/* 0 would mean "done at once, no callback"; not the case here. */
	r = ksync_poller_start(&poller, &lock_op, on_lock);
	if (r == 0)
		on_lock(&lock_op);
	else if (r < 0)
		fprintf(stderr, "ksync_poller_start: %s\n", strerror(-r));
	r = ksync_poller_start(&poller, &ready_op, on_ready);
	if (r == 0)
		on_ready(&ready_op);
	else if (r < 0)
		fprintf(stderr, "ksync_poller_start: %s\n", strerror(-r));

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
		r = ksync_poller_dispatch(e.data.ptr);
		if (r < 0 && r != -EINTR) {
			fprintf(stderr, "ksync_poller_dispatch: %s\n", strerror(-r));
			break;
		}
	}

	pthread_join(t, NULL);
	ksync_poller_exit(&poller);	/* nothing pending by now */
	close(ep);
	return done == 2 && lock_op.result == 0 && ready_op.result == 0 &&
	       ksync_lock_destroy(&lock) == 0 ? 0 : 1;
}
