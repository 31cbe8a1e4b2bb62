/* SPDX-License-Identifier: MIT */
/*
 * Case 8: a producer thread hands work to io_uring tasks through a
 * Semaphore, one release per item, and we count the futex_wake syscalls the
 * producer makes and how many of them woke nobody.
 *
 * A release must wake only when a waiter is asleep. A task the kernel has
 * already woken, whose CQE its loop has not reaped yet, is awake: waking on
 * its behalf again is a syscall that wakes nobody. The counts come from the
 * syscalls:sys_enter_futex_wake and sys_exit_futex_wake (ret == 0)
 * tracepoints, for the producer thread only. Every item must be taken.
 */
#include "bench.h"

#include <sys/ioctl.h>
#include <linux/perf_event.h>
#include <unistd.h>

#define TASKS	16

static struct ksync_sem items;
static uint64_t taken;
static int stop;

struct ptask {
	struct ksync_op op;
	struct ksync_loop *loop;
};

static void ptask_cb(struct ksync_op *op);

static bool ptask_start(struct ptask *t)
{
	ksync_op_sem(&t->op, &items);
	t->op.data = t;
	return loop_start_done(t->loop, &t->op, ptask_cb);
}

static void ptask_cb(struct ksync_op *op)
{
	struct ptask *t = op->data;

	do {
		if (op->result == -ECANCELED)	/* the loop is closing */
			return;
		if (op->result)
			die("sem op: %s", strerror(-op->result));
		busy_ns(300);			/* the work of one item */
		__atomic_add_fetch(&taken, 1, __ATOMIC_RELAXED);
	} while (ptask_start(t));
}

static void *consumer_main(void *arg)
{
	struct ksync_loop loop;
	struct ptask tasks[TASKS];
	uint64_t want = *(uint64_t *)arg;

	check(ksync_loop_init(&loop, 64, cfg.ring_flags));
	for (int i = 0; i < TASKS; i++) {
		tasks[i].loop = &loop;
		if (ptask_start(&tasks[i]))
			ptask_cb(&tasks[i].op);
	}
	while (__atomic_load_n(&taken, __ATOMIC_RELAXED) < want)
		check(ksync_loop_run_once(&loop, 1));
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	ksync_loop_exit(&loop);
	return NULL;
}

struct pipe_run {
	double wakes, idle_wakes;	/* per 1000 releases */
};

static void run_pipeline(uint64_t n, int enter_fd, int idle_fd, struct pipe_run *out)
{
	pthread_t consumer;
	uint64_t wakes, idle;

	check(ksync_sem_init(&items, 0, 0, 0));
	taken = 0;
	stop = 0;
	consumer = spawn(consumer_main, &n);
	while (__atomic_load_n(&items.waiters, __ATOMIC_ACQUIRE) < TASKS)
		sleep_ns(100000);
	tp_counter_start(enter_fd);
	tp_counter_start(idle_fd);
	for (uint64_t i = 0; i < n; i++) {
		busy_ns(200);			/* making the item */
		check(ksync_sem_release(&items, 1));
	}
	wakes = tp_counter_stop(enter_fd);
	idle = tp_counter_stop(idle_fd);
	join(consumer);
	if (taken != n || ksync_sem_value(&items) != 0)
		die("pipeline lost items: %llu of %llu taken, %u left", (unsigned long long)taken,
		    (unsigned long long)n, ksync_sem_value(&items));
	out->wakes = 1000.0 * (double)wakes / (double)n;
	out->idle_wakes = 1000.0 * (double)idle / (double)n;
}

void bench_pipeline(void)
{
	char why[128] = "", name[128];
	int enter_fd = tp_counter_open("syscalls/sys_enter_futex_wake", why, sizeof(why));
	int idle_fd = enter_fd < 0 ? -1 :
		      tp_counter_open("syscalls/sys_exit_futex_wake", why, sizeof(why));
	struct series wakes = { 0 }, idle = { 0 };
	struct goal goal = { G_VALUE_LE, 50, "≤ 50 (5 %)" };
	uint64_t n = (uint64_t)scaled(20000, 2000);
	struct pipe_run run;

	if (idle_fd >= 0 && ioctl(idle_fd, PERF_EVENT_IOC_SET_FILTER, "ret == 0") != 0) {
		snprintf(why, sizeof(why), "not counted: tracepoint filter: %s", strerror(errno));
		close(idle_fd);
		idle_fd = -1;
	}
	if (idle_fd >= 0) {
		/* Check that both counters count: three wakes of nobody. */
		uint32_t dummy = 0;
		uint64_t e, i;

		tp_counter_start(enter_fd);
		tp_counter_start(idle_fd);
		for (int k = 0; k < 3; k++)
			check(ksync_futex_wake(&dummy, KSYNC_FUTEX_MASK_ANY, 1));
		e = tp_counter_stop(enter_fd);
		i = tp_counter_stop(idle_fd);
		if (e != 3 || i != 3) {
			snprintf(why, sizeof(why), "not counted: counters saw %llu and %llu of 3 "
				 "test wakes", (unsigned long long)e, (unsigned long long)i);
			close(idle_fd);
			idle_fd = -1;
		}
	}
#define ROW(what) (snprintf(name, sizeof(name), "8 sem pipeline, thread → %d tasks: %s", \
			    TASKS, what), name)
	if (enter_fd < 0 || idle_fd < 0) {
		report_missing(ROW("wake syscalls that woke nobody, per 1000 releases"), why, goal);
		return;
	}
	for (int r = 0; r < cfg.runs; r++) {
		run_pipeline(n, enter_fd, idle_fd, &run);
		series_add(&wakes, run.wakes);
		series_add(&idle, run.idle_wakes);
	}
	report(ROW("wake syscalls per 1000 releases"), U_COUNT, &wakes, NULL, NULL, NO_GOAL);
	report(ROW("wake syscalls that woke nobody, per 1000 releases"), U_COUNT, &idle, NULL,
	       NULL, goal);
#undef ROW
	note("8: one producer thread releases %llu permits, one per item (~200 ns to make "
	     "each); %d io_uring tasks on one ksync_loop take them (~300 ns of work each); "
	     "futex_wake syscalls counted on the producer thread by tracepoint "
	     "(sys_exit_futex_wake with ret == 0 for those that woke nobody); every item "
	     "is checked taken.", (unsigned long long)n, TASKS);
	close(enter_fd);
	close(idle_fd);
}
