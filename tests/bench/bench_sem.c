/* SPDX-License-Identifier: MIT */
/*
 * Semaphore as a pool guard: 8 permits, contended by 4 threads plus 2 rings
 * (a ksync_loop in a thread each) running 50 tasks each. Every participant
 * loops: acquire, hold a permit for a little work, release. Throughput and
 * the wait of every acquisition, both worlds together.
 *
 * There is no POSIX equivalent for the mixed case, so a second pair of rows
 * runs the 4 threads alone on ksync_sem and on sem_t.
 */
#include "bench.h"

#include <semaphore.h>

#define PERMITS		8
#define NTHREADS	4
#define NRINGS		2
#define TASKS		50
#define TICK_NS		1000000		/* how often a loop looks at the stop flag */

static struct ksync_sem ksem __attribute__((aligned(64)));
static sem_t psem __attribute__((aligned(64)));
static int stop;
static pthread_barrier_t gate;

/* The work done while holding a permit (~150 ns). */
static inline void hold(uint64_t *seed)
{
	uint32_t x = 0;

	for (int i = 0; i < 96; i++)
		x += rnd(seed);
	__asm__ __volatile__("" : : "r"(x));
}

struct thread_ctx {
	pthread_t t;
	bool posix;
	uint64_t ops;
	uint64_t seed;
	struct hist wait;
} __attribute__((aligned(64)));

static void *thread_worker(void *arg)
{
	struct thread_ctx *c = arg;

	pthread_barrier_wait(&gate);
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		int64_t t0 = now_ns(), t1;

		if (c->posix) {
			while (sem_wait(&psem))
				if (errno != EINTR)
					die("sem_wait: %s", strerror(errno));
		} else {
			check(ksync_sem_acquire(&ksem));
		}
		t1 = now_ns();
		hold(&c->seed);
		if (c->posix)
			sem_post(&psem);
		else
			check(ksync_sem_release(&ksem, 1));
		hist_add(&c->wait, t1 - t0);
		c->ops++;
	}
	return NULL;
}

struct ring_ctx;

struct task {
	struct ksync_op op;
	struct ring_ctx *rc;
	int64_t t0;
};

struct ring_ctx {
	pthread_t t;
	struct ksync_loop loop;
	struct task tasks[TASKS];
	struct ksync_op tick;
	uint64_t ops;
	uint64_t seed;
	struct hist wait;
};

static void task_cb(struct ksync_op *op);

/* Start the task's acquire; true if it got a permit at once. */
static bool task_start(struct task *t)
{
	t->t0 = now_ns();
	ksync_op_sem(&t->op, &ksem);
	t->op.data = t;
	return loop_start_done(&t->rc->loop, &t->op, task_cb);
}

static void task_cb(struct ksync_op *op)
{
	struct task *t = op->data;
	struct ring_ctx *rc = t->rc;

next:
	if (op->result == -ECANCELED)	/* ksync_loop_exit at the end */
		return;
	if (op->result)
		die("sem op: %s", strerror(-op->result));
	hist_add(&rc->wait, now_ns() - t->t0);
	hold(&rc->seed);
	check(ksync_sem_release(&ksem, 1));
	rc->ops++;
	if (!__atomic_load_n(&stop, __ATOMIC_RELAXED) && task_start(t))
		goto next;	/* done at once: no callback, loop instead of recursing */
}

/* A periodic timer, so a loop whose tasks all wait still sees the stop flag. */
static void tick_cb(struct ksync_op *op)
{
	struct ring_ctx *rc = op->data;

	if (!__atomic_load_n(&stop, __ATOMIC_RELAXED))
		check(ksync_loop_sleep(&rc->loop, &rc->tick, TICK_NS, tick_cb));
}

static void *ring_worker(void *arg)
{
	struct ring_ctx *rc = arg;

	check(ksync_loop_init(&rc->loop, 256, cfg.ring_flags));
	pthread_barrier_wait(&gate);
	for (int i = 0; i < TASKS; i++) {
		rc->tasks[i].rc = rc;
		if (task_start(&rc->tasks[i]))
			task_cb(&rc->tasks[i].op);
	}
	rc->tick.data = rc;
	check(ksync_loop_sleep(&rc->loop, &rc->tick, TICK_NS, tick_cb));
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED))
		check(ksync_loop_run_once(&rc->loop, 1));
	/* Cancels the ops still waiting; a grant racing the cancel reaches
	 * task_cb with result 0 and is released there. */
	ksync_loop_exit(&rc->loop);
	return NULL;
}

struct sem_run {
	double ops_per_s;
	double thread_share;	/* fraction of acquisitions made by threads */
	struct hist wait, thread_wait, task_wait;
};

static struct thread_ctx threads[NTHREADS];
static struct ring_ctx rings[NRINGS];

static void run_sem(bool posix, int nrings, int64_t duration, struct sem_run *out)
{
	uint64_t tops = 0, rops = 0;
	int64_t t0, t1;

	poke(stop, 0);
	check(ksync_sem_init(&ksem, PERMITS, PERMITS, 0));
	if (sem_init(&psem, 0, PERMITS))
		die("sem_init: %s", strerror(errno));
	pthread_barrier_init(&gate, NULL, NTHREADS + (unsigned)nrings + 1);
	for (int i = 0; i < NTHREADS; i++) {
		threads[i].posix = posix;
		threads[i].ops = 0;
		threads[i].seed = 0x2545f4914f6cdd1dull * (uint64_t)(i + 1);
		hist_reset(&threads[i].wait);
		threads[i].t = spawn(thread_worker, &threads[i]);
	}
	for (int i = 0; i < nrings; i++) {
		rings[i].ops = 0;
		rings[i].seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
		hist_reset(&rings[i].wait);
		rings[i].t = spawn(ring_worker, &rings[i]);
	}
	pthread_barrier_wait(&gate);
	t0 = now_ns();
	sleep_ns(duration);
	poke(stop, 1);
	t1 = now_ns();

	hist_reset(&out->thread_wait);
	hist_reset(&out->task_wait);
	for (int i = 0; i < NTHREADS; i++) {
		join(threads[i].t);
		tops += threads[i].ops;
		hist_merge(&out->thread_wait, &threads[i].wait);
	}
	for (int i = 0; i < nrings; i++) {
		join(rings[i].t);
		rops += rings[i].ops;
		hist_merge(&out->task_wait, &rings[i].wait);
	}
	pthread_barrier_destroy(&gate);
	/* Conservation: every permit came back, nobody is left announced. */
	if (ksync_sem_value(&ksem) != PERMITS || ksync_sem_destroy(&ksem))
		die("semaphore: %u permits free after the run", ksync_sem_value(&ksem));
	sem_destroy(&psem);

	hist_reset(&out->wait);
	hist_merge(&out->wait, &out->thread_wait);
	hist_merge(&out->wait, &out->task_wait);
	out->ops_per_s = (double)(tops + rops) / ((double)(t1 - t0) / 1e9);
	out->thread_share = (double)tops / (double)(tops + rops);
}

void bench_sem(void)
{
	int64_t duration = scaled(250, 50) * 1000000;
	struct series mops = { 0 }, m999 = { 0 }, mmax = { 0 }, share = { 0 };
	struct series th999 = { 0 }, tk999 = { 0 }, thmax = { 0 }, tkmax = { 0 };
	struct series kops = { 0 }, pops = { 0 }, kmax = { 0 }, pmax = { 0 };
	struct series k999 = { 0 }, p999 = { 0 };
	static struct sem_run run;
	char b[4][32];

	for (int r = 0; r < cfg.runs; r++) {
		run_sem(false, NRINGS, duration, &run);
		series_add(&mops, run.ops_per_s);
		series_add(&m999, hist_pct(&run.wait, 0.999));
		series_add(&mmax, (double)run.wait.max);
		series_add(&share, run.thread_share * 100);
		series_add(&th999, hist_pct(&run.thread_wait, 0.999));
		series_add(&tk999, hist_pct(&run.task_wait, 0.999));
		series_add(&thmax, (double)run.thread_wait.max);
		series_add(&tkmax, (double)run.task_wait.max);

		run_sem(false, 0, duration, &run);
		series_add(&kops, run.ops_per_s);
		series_add(&k999, hist_pct(&run.wait, 0.999));
		series_add(&kmax, (double)run.wait.max);
		run_sem(true, 0, duration, &run);
		series_add(&pops, run.ops_per_s);
		series_add(&p999, hist_pct(&run.wait, 0.999));
		series_add(&pmax, (double)run.wait.max);
	}

	report("4 sem pool guard, 4 threads + 2×50 tasks: throughput", U_OPS, &mops,
	       NULL, NULL, NO_GOAL);
	report("4 sem pool guard, 4 threads + 2×50 tasks: p99.9 wait", U_NS, &m999,
	       NULL, NULL, NO_GOAL);
	report("4 sem pool guard, 4 threads + 2×50 tasks: max wait", U_NS, &mmax,
	       NULL, NULL, NO_GOAL);
	report("4 sem pool guard, 4 threads only: throughput", U_OPS, &kops,
	       "sem_t", &pops, NO_GOAL);
	report("4 sem pool guard, 4 threads only: p99.9 wait", U_NS, &k999,
	       "sem_t", &p999, NO_GOAL);
	report("4 sem pool guard, 4 threads only: max wait", U_NS, &kmax,
	       "sem_t", &pmax, NO_GOAL);
	note("4: %d permits, hold ~150 ns of work, %lld ms per run. Mixed case by world "
	     "(medians): threads made %.0f%% of the acquisitions; p99.9 wait threads %s, "
	     "tasks %s; max wait threads %s, tasks %s (a task's wait includes its turn in "
	     "its loop). ksync_sem bounds barging with a starvation hand-off (see sem.h).",
	     PERMITS, (long long)(duration / 1000000), series_median(&share),
	     fmt_ns(b[0], sizeof(b[0]), series_median(&th999)),
	     fmt_ns(b[1], sizeof(b[1]), series_median(&tk999)),
	     fmt_ns(b[2], sizeof(b[2]), series_median(&thmax)),
	     fmt_ns(b[3], sizeof(b[3]), series_median(&tkmax)));
}
