/* SPDX-License-Identifier: MIT */
/*
 * sd_service: a small sd-event service whose callbacks wait on ksync
 * primitives that plain worker threads signal.
 *
 * NWORKERS threads each finish JOBS jobs. For every finished job a worker
 * releases one permit of the `finished` semaphore; NCONSUMERS callbacks in
 * the sd-event loop wait for those permits (ksync_op_sem through
 * ksync_sdevent), each with a deadline, and account for the jobs. The last
 * worker to come up sets the `up` event and the last one to finish sets
 * `all_done`; the loop awaits both. Nothing polls and there is no helper
 * thread: the loop's callbacks park on the primitives' own futex words.
 *
 * The service stops when every job is accounted for and all workers are
 * done, on SIGINT/SIGTERM, or after a 5 s watchdog. Detaching the adapter
 * then cancels the callbacks still waiting. Exit code 0 if every permit was
 * accounted for exactly once (consumed, or left in the semaphore after an
 * early stop by a signal), 1 otherwise, 2 if this machine cannot run
 * io_uring futex waits (it says what is missing).
 */
#include <ksync/ksync.h>
#include <ksync/sdevent.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NWORKERS	3
#define JOBS		20	/* per worker */
#define NCONSUMERS	2
#define TOTAL		(NWORKERS * JOBS)

static struct ksync_sem finished = KSYNC_SEM_INIT(0);	/* one permit per job done */
static struct ksync_event up = KSYNC_EVENT_INIT;	/* all workers running */
static struct ksync_event all_done = KSYNC_EVENT_INIT;	/* all jobs released */
static atomic_int workers_up, workers_done, released;

/* The loop's state; touched only from the loop's thread. */
static struct ksync_sdevent adapter;
static sd_event *loop;
static int consumed, errors, saw_done, stopped_by_signal;
static struct timespec t0;

static double ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0.tv_sec) * 1e3 + (now.tv_nsec - t0.tv_nsec) / 1e6;
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

/* ---- the worker threads (the blocking world) ---- */

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;

	printf("%8.3f ms  worker %d up\n", ms(), id);
	if (atomic_fetch_add(&workers_up, 1) + 1 == NWORKERS)
		ksync_event_set(&up);
	for (int j = 0; j < JOBS; j++) {
		struct timespec work = { 0, (1000 + 500 * ((id + j) % 4)) * 1000L };

		nanosleep(&work, NULL);			/* "the job" */
		/* Wakes one waiting callback. It cannot overflow here (an
		 * unbounded count), but an example checks every return. */
		if (ksync_sem_release(&finished, 1) == 0)
			atomic_fetch_add(&released, 1);
	}
	printf("%8.3f ms  worker %d finished %d jobs\n", ms(), id, JOBS);
	if (atomic_fetch_add(&workers_done, 1) + 1 == NWORKERS)
		ksync_event_set(&all_done);
	return NULL;
}

/* ---- the sd-event loop (the callback world) ---- */

struct consumer {
	struct ksync_op op;	/* first member: the callback gets &op */
	int id;
	int jobs;
};

static struct consumer consumers[NCONSUMERS];
static struct ksync_op up_op, done_op;

static void maybe_stop(void)
{
	if (consumed == TOTAL && saw_done) {
		printf("%8.3f ms  loop: all %d jobs accounted for, stopping\n", ms(), TOTAL);
		sd_event_exit(loop, 0);
	}
}

static void on_permit(struct ksync_op *op);

/* Wait for the next permit, at most one second. */
static int consumer_wait(struct consumer *c)
{
	struct timespec deadline;
	int r;

	ksync_op_sem(&c->op, &finished);
	r = ksync_deadline_after(&deadline, CLOCK_MONOTONIC, 1000000000);
	if (r == 0)
		r = ksync_op_set_deadline(&c->op, CLOCK_MONOTONIC, &deadline);
	if (r)
		return r;
	return ksync_sdevent_start(&adapter, &c->op, on_permit);
}

static void on_permit(struct ksync_op *op)
{
	struct consumer *c = (struct consumer *)op;
	int r;

	do {
		if (op->result == -ECANCELED) {
			printf("%8.3f ms  loop: consumer %d cancelled at shutdown (%d jobs taken)\n",
			       ms(), c->id, c->jobs);
			return;
		}
		if (op->result) {
			fprintf(stderr, "consumer %d: %s\n", c->id, strerror(-op->result));
			errors++;
			sd_event_exit(loop, 1);
			return;
		}
		c->jobs++;
		if (++consumed % 10 == 0 || consumed == TOTAL)
			printf("%8.3f ms  loop: consumer %d took a permit, %d/%d jobs done\n",
			       ms(), c->id, consumed, TOTAL);
		if (consumed == TOTAL) {
			maybe_stop();
			return;
		}
		/* 0: another permit was free at once, so no callback comes. */
		r = consumer_wait(c);
	} while (r == 0);
	if (r < 0) {
		fprintf(stderr, "consumer %d: start: %s\n", c->id, strerror(-r));
		errors++;
	}
}

static void on_up(struct ksync_op *op)
{
	if (op->result)
		return;
	printf("%8.3f ms  loop: event 'up': all %d workers running\n", ms(), NWORKERS);
}

static void on_all_done(struct ksync_op *op)
{
	if (op->result)
		return;
	saw_done = 1;
	printf("%8.3f ms  loop: event 'all_done': %d permits released\n", ms(),
	       atomic_load(&released));
	maybe_stop();
}

/* Start an op; call @cb at once if it needed no waiting. */
static void await(struct ksync_op *op, ksync_op_cb cb)
{
	int r = ksync_sdevent_start(&adapter, op, cb);

	if (r == 0)
		cb(op);
	else if (r < 0) {
		fprintf(stderr, "ksync_sdevent_start: %s\n", strerror(-r));
		errors++;
	}
}

static int on_watchdog(sd_event_source *s, uint64_t usec, void *data)
{
	(void)s;
	(void)usec;
	(void)data;
	fprintf(stderr, "watchdog: not done after 5 s (%d/%d jobs)\n", consumed, TOTAL);
	errors++;
	return sd_event_exit(loop, 1);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *data)
{
	(void)s;
	(void)data;
	printf("%8.3f ms  loop: signal %u, stopping\n", ms(), si->ssi_signo);
	stopped_by_signal = 1;
	return sd_event_exit(loop, 0);
}

int main(void)
{
	pthread_t workers[NWORKERS];
	sigset_t mask;
	unsigned value;
	int r, code;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* sd-event's signal sources need the signals blocked in every thread:
	 * block them before the workers start. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);

	r = sd_event_new(&loop);
	if (r < 0) {
		fprintf(stderr, "sd_event_new: %s\n", strerror(-r));
		return 1;
	}
	r = ksync_sdevent_attach(&adapter, loop);
	if (r < 0) {
		fprintf(stderr, "sd_service: cannot run io_uring futex waits here: %s (%s)\n",
			missing(r), strerror(-r));
		return 2;
	}
	r = sd_event_add_signal(loop, NULL, SIGINT, on_signal, NULL);
	if (r >= 0)
		r = sd_event_add_signal(loop, NULL, SIGTERM, on_signal, NULL);
	if (r >= 0)
		r = sd_event_add_time_relative(loop, NULL, CLOCK_MONOTONIC, 5000000, 1000,
					       on_watchdog, NULL);
	if (r < 0) {
		fprintf(stderr, "sd-event sources: %s\n", strerror(-r));
		return 1;
	}

	ksync_op_event(&up_op, &up);
	await(&up_op, on_up);
	ksync_op_event(&done_op, &all_done);
	await(&done_op, on_all_done);
	for (int i = 0; i < NCONSUMERS; i++) {
		consumers[i].id = i;
		r = consumer_wait(&consumers[i]);
		if (r == 0) {
			on_permit(&consumers[i].op);
		} else if (r < 0) {
			fprintf(stderr, "consumer %d: start: %s\n", i, strerror(-r));
			errors++;
		}
	}

	for (int i = 0; i < NWORKERS; i++) {
		r = pthread_create(&workers[i], NULL, worker, (void *)(intptr_t)i);
		if (r) {
			fprintf(stderr, "pthread_create: %s\n", strerror(r));
			return 1;
		}
	}

	code = sd_event_loop(loop);

	/* Cancels what still waits (callbacks see -ECANCELED) and reaps it
	 * before the ring goes away, so no permit is lost in it. */
	ksync_sdevent_detach(&adapter);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(workers[i], NULL);
	sd_event_unref(loop);

	/*
	 * Every permit released is either consumed or still in the semaphore
	 * (after an early stop by a signal): none lost, none counted twice.
	 */
	value = ksync_sem_value(&finished);
	printf("released %d, consumed %d, left in the semaphore %u\n", atomic_load(&released),
	       consumed, value);
	if (code != 0 || errors || atomic_load(&released) != TOTAL ||
	    consumed + (int)value != TOTAL || (!stopped_by_signal && consumed != TOTAL) ||
	    ksync_sem_destroy(&finished) != 0) {
		fprintf(stderr, "inconsistent end state (loop exit code %d, %d errors)\n", code,
			errors);
		return 1;
	}
	printf("clean exit\n");
	return 0;
}
