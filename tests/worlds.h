/* SPDX-License-Identifier: MIT */
/*
 * Groups of waiters in every world, for the tests of the broadcast
 * primitives (REvent, CountdownEvent, Latch, Barrier): N threads, or N
 * async ops on a ksync_loop of either ring setup, or on a ksync_poller
 * driven by a plain epoll loop, each group in a thread of its own. Every
 * waiter waits @rounds times; each outcome is reported to the group's
 * on_result hook (from the waiter's thread or the loop's), and counted.
 */
#ifndef KSYNC_TEST_WORLDS_H
#define KSYNC_TEST_WORLDS_H

#include "testpoint.h"
#include <sys/epoll.h>
#include "ksync/poller.h"

enum world { W_THREAD, W_RING, W_RING_DEFER, W_POLLER, N_WORLDS };

static const char *const world_name[N_WORLDS] = {
	"thread", "ring", "ring (SINGLE_ISSUER|DEFER_TASKRUN)", "poller (epoll)",
};

struct group;

struct group_ops {
	/* thread world: one blocking wait; the value to report */
	int (*wait)(struct group *g, int who);
	/* async worlds: initialise the op for one wait (deadline set after) */
	void (*init)(struct group *g, struct ksync_op *op);
	/* the value an op reports once done (default: op->result) */
	int (*value)(struct group *g, struct ksync_op *op);
	/* called with each outcome, in the waiter's (or loop's) thread */
	void (*on_result)(struct group *g, int who, int round, int value);
	/* called before each op wait (ring worlds): a non-zero return is the
	 * number of µs after which to cancel it */
	int64_t (*cancel_after_us)(struct group *g, int who, int round);
};

struct group {
	enum world world;
	int n;			/* waiters */
	int rounds;		/* waits per waiter */
	const struct group_ops *ops;
	void *prim;
	void *arg;		/* the test's */
	int64_t deadline_ns;	/* > 0: each wait has a deadline this far ahead */

	/* filled in */
	int started;		/* threads: every one is about to wait; async:
				 * the first round of ops is submitted */
	int results;		/* outcomes reported */
	pid_t *tids;		/* thread world: each waiter's, once known */
	pid_t loop_tid;		/* async worlds: the loop's thread */
	pthread_t *threads;
	int nthreads;
};

/* ---- threads ------------------------------------------------------------ */

struct group_thread {
	struct group *g;
	int who;
};

static void group_report(struct group *g, int who, int round, int value)
{
	if (g->ops->on_result)
		g->ops->on_result(g, who, round, value);
	__atomic_add_fetch(&g->results, 1, __ATOMIC_ACQ_REL);
}

static void *group_thread_main(void *arg)
{
	struct group_thread *gt = arg;
	struct group *g = gt->g;

	__atomic_store_n(&g->tids[gt->who], self_tid(), __ATOMIC_RELEASE);
	__atomic_add_fetch(&g->started, 1, __ATOMIC_ACQ_REL);
	for (int round = 0; round < g->rounds; round++)
		group_report(g, gt->who, round, g->ops->wait(g, gt->who));
	free(gt);
	return NULL;
}

/* ---- async ops ---------------------------------------------------------- */

struct group_task {
	struct group *g;
	int who, round;
	struct ksync_op op;
	struct ksync_op timer;	/* cancels op at a random moment */
	bool op_busy, timer_busy;
	struct ksync_loop *loop;
	struct ksync_poller *poller;
	int *active;		/* tasks with rounds left, or an op owed */
};

static int group_task_start(struct group_task *t);

static int group_value(struct group *g, struct ksync_op *op)
{
	return g->ops->value ? g->ops->value(g, op) : op->result;
}

static void group_task_next(struct group_task *t)
{
	/* A round ends once neither op is owed a completion. */
	while (!t->op_busy && !t->timer_busy) {
		if (++t->round == t->g->rounds) {
			(*t->active)--;
			return;
		}
		if (group_task_start(t) != 0)
			return;	/* pending */
	}
}

static void group_op_done(struct ksync_op *op)
{
	struct group_task *t = op->data;

	t->op_busy = false;
	group_report(t->g, t->who, t->round, group_value(t->g, op));
	if (t->timer_busy) {
		ksync_loop_cancel(t->loop, &t->timer);
		return;	/* the timer's callback goes on */
	}
	group_task_next(t);
}

static void group_timer_done(struct ksync_op *op)
{
	struct group_task *t = op->data;

	t->timer_busy = false;
	if (t->op_busy) {
		if (t->loop)
			ksync_loop_cancel(t->loop, &t->op);
		else
			ksync_poller_cancel(t->poller, &t->op);
		return;	/* the op's callback goes on */
	}
	group_task_next(t);
}

/* Start this round's wait. 0: it finished at once (reported). */
static int group_task_start(struct group_task *t)
{
	struct group *g = t->g;
	int64_t cancel = g->ops->cancel_after_us ? g->ops->cancel_after_us(g, t->who, t->round) : 0;
	int r;

	g->ops->init(g, &t->op);
	t->op.data = t;
	if (g->deadline_ns > 0) {
		struct timespec dl = in_ns(g->deadline_ns);

		assert_int_equal(ksync_op_set_deadline(&t->op, CLOCK_MONOTONIC, &dl), 0);
	}
	t->op_busy = true;
	r = t->loop ? ksync_loop_start(t->loop, &t->op, group_op_done)
		    : ksync_poller_start(t->poller, &t->op, group_op_done);
	if (r < 0) {	/* not started (e.g. -EPIPE from a broken barrier) */
		t->op_busy = false;
		t->op.result = r;
		group_report(g, t->who, t->round, r);
		return 0;
	}
	if (r == 0) {	/* done at once: no callback comes */
		t->op_busy = false;
		group_report(g, t->who, t->round, group_value(g, &t->op));
		return 0;
	}
	if (cancel > 0 && t->loop) {	/* a poller has no timers: deadlines only */
		t->timer.data = t;
		assert_int_equal(ksync_loop_sleep(t->loop, &t->timer, cancel * 1000,
						  group_timer_done), 0);
		t->timer_busy = true;
	}
	return KSYNC_OP_PENDING;
}

static void *group_loop_main(void *arg)
{
	struct group *g = arg;
	struct ksync_loop loop;
	struct ksync_poller poller;
	struct group_task *tasks = calloc((size_t)g->n, sizeof(*tasks));
	int active = g->n, ep = -1;

	assert_non_null(tasks);
	__atomic_store_n(&g->loop_tid, self_tid(), __ATOMIC_RELEASE);
	if (g->world == W_POLLER) {
		struct epoll_event e = { .events = EPOLLIN };

		assert_int_equal(ksync_poller_init(&poller, 64), 0);
		ep = epoll_create1(EPOLL_CLOEXEC);
		assert_true(ep >= 0);
		assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, ksync_poller_fd(&poller), &e), 0);
	} else {
		assert_int_equal(ksync_loop_init(&loop, 256,
						 ring_setups[g->world == W_RING_DEFER]), 0);
	}
	for (int i = 0; i < g->n; i++) {
		struct group_task *t = &tasks[i];

		t->g = g;
		t->who = i;
		t->active = &active;
		if (g->world == W_POLLER)
			t->poller = &poller;
		else
			t->loop = &loop;
		t->round = -1;
		group_task_next(t);	/* starts round 0 */
		if (g->world != W_POLLER && (i & 63) == 63)
			assert_true(ksync_loop_run_once(&loop, 0) >= 0);
	}
	if (g->world == W_POLLER) {
		/* The poller submits as it starts: its waits are armed. */
		__atomic_store_n(&g->started, g->n, __ATOMIC_RELEASE);
		while (active > 0) {
			struct epoll_event e;
			int n = epoll_wait(ep, &e, 1, 100);

			assert_true(n >= 0 || errno == EINTR);
			if (n > 0)
				assert_true(ksync_poller_dispatch(&poller) >= 0);
		}
		assert_int_equal(ksync_poller_busy(&poller), 0);
		ksync_poller_exit(&poller);
		close(ep);
	} else {
		assert_true(ksync_loop_run_once(&loop, 0) >= 0);	/* submitted */
		__atomic_store_n(&g->started, g->n, __ATOMIC_RELEASE);
		while (active > 0)
			assert_true(ksync_loop_run_once(&loop, 1) >= 0);
		assert_int_equal(ksync_loop_busy(&loop), 0);
		ksync_loop_exit(&loop);
	}
	free(tasks);
	return NULL;
}

/* ---- groups ------------------------------------------------------------- */

static void group_start(struct group *g)
{
	g->started = 0;
	g->results = 0;
	g->loop_tid = 0;
	g->tids = calloc((size_t)g->n, sizeof(*g->tids));
	assert_non_null(g->tids);
	if (!g->rounds)
		g->rounds = 1;
	if (g->world == W_THREAD) {
		g->nthreads = g->n;
		g->threads = calloc((size_t)g->n, sizeof(*g->threads));
		assert_non_null(g->threads);
		for (int i = 0; i < g->n; i++) {
			struct group_thread *gt = malloc(sizeof(*gt));

			assert_non_null(gt);
			*gt = (struct group_thread){ g, i };
			g->threads[i] = spawn(group_thread_main, gt);
		}
	} else {
		g->nthreads = 1;
		g->threads = calloc(1, sizeof(*g->threads));
		assert_non_null(g->threads);
		g->threads[0] = spawn(group_loop_main, g);
	}
}

/* Every waiter has started, and (threads) sleeps in a futex wait or (async)
 * has its wait armed and the loop sleeps. */
static void group_wait_parked(struct group *g)
{
	wait_until(__atomic_load_n(&g->started, __ATOMIC_ACQUIRE) == g->n);
	if (g->world == W_THREAD) {
		for (int i = 0; i < g->n; i++)
			wait_futex_asleep(__atomic_load_n(&g->tids[i], __ATOMIC_ACQUIRE));
	} else if (g->world == W_POLLER) {
#ifdef SYS_epoll_wait
		wait_until(asleep_in(__atomic_load_n(&g->loop_tid, __ATOMIC_ACQUIRE),
				     SYS_epoll_wait, SYS_epoll_pwait));
#else
		wait_until(asleep_in(__atomic_load_n(&g->loop_tid, __ATOMIC_ACQUIRE),
				     SYS_epoll_pwait, -1));
#endif
	} else {
		wait_ring_asleep(__atomic_load_n(&g->loop_tid, __ATOMIC_ACQUIRE));
	}
}

static void group_join(struct group *g)
{
	for (int i = 0; i < g->nthreads; i++)
		join(g->threads[i]);
	assert_int_equal(g->results, g->n * g->rounds);
	free(g->threads);
	free(g->tids);
	g->threads = NULL;
	g->tids = NULL;
}

#endif
