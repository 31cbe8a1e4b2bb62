/* SPDX-License-Identifier: MIT */
/*
 * REvent and Barrier cases.
 *
 * 10. REvent set/clear cycles: N async waiters over 4 rings (a ksync_loop
 *     in a thread each) plus 16 blocked threads wait on one ksync_revent;
 *     every cycle sets it and clears it at once, after everyone is parked,
 *     and the waiters wait again. Measured per cycle: the syscalls set()
 *     makes (a perf counter on raw_syscalls:sys_enter of the setting thread,
 *     as in case 5), the set() call and set() → the last waiter resumed, at
 *     N = 1,000 and 10,000.
 *
 * 11. Barrier cycle time: 4 threads + 2 rings of 50 tasks pass one
 *     ksync_barrier of 104 parties, cycle after cycle (each task restarts
 *     its op from its callback); and 4 threads alone, on ksync_barrier and
 *     on pthread_barrier_t, alternating runs (goal: ≤ 1.0× pthread).
 */
#include "bench.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_futex_wait
#define SYS_futex_wait 455
#endif

/* ---- 10: REvent ---------------------------------------------------------- */

#define RE_RINGS	4
#define RE_THREADS	16

static struct ksync_revent rev;
static struct ksync_event re_all_done;
static uint32_t re_remaining, re_armed, re_cycle;
static int re_cycles;
static int64_t re_last;

struct re_ring {
	pthread_t t;
	struct ksync_loop loop;
	struct ksync_op *ops;
	int nops;
};

struct re_thread {
	pthread_t t;
	pid_t tid;
};

static void re_resumed(void)
{
	if (__atomic_sub_fetch(&re_remaining, 1, __ATOMIC_ACQ_REL) == 0) {
		re_last = now_ns();
		ksync_event_set(&re_all_done);
	}
}

/* Wait (as a thread) until the setter starts cycle @c. */
static void re_wait_cycle(uint32_t c)
{
	uint32_t v;

	while ((v = __atomic_load_n(&re_cycle, __ATOMIC_ACQUIRE)) < c)
		check_wait(ksync_futex_wait(&re_cycle, v, KSYNC_FUTEX_MASK_ANY, CLOCK_MONOTONIC, NULL));
}

static void re_op_done(struct ksync_op *op)
{
	if (op->result)
		die("revent op: %s", strerror(-op->result));
	re_resumed();
}

static void *re_ring_main(void *arg)
{
	struct re_ring *rr = arg;

	check(ksync_loop_init(&rr->loop, 4096, cfg.ring_flags));
	for (uint32_t c = 1; c <= (uint32_t)re_cycles; c++) {
		re_wait_cycle(c);
		for (int i = 0; i < rr->nops; i++) {
			ksync_op_revent(&rr->ops[i], &rev);
			if (loop_start_done(&rr->loop, &rr->ops[i], re_op_done))
				die("revent op done before the set");
		}
		check(ksync_loop_run_once(&rr->loop, 0));	/* armed in the kernel */
		__atomic_add_fetch(&re_armed, (uint32_t)rr->nops, __ATOMIC_RELEASE);
		check(ksync_loop_run(&rr->loop));
	}
	ksync_loop_exit(&rr->loop);
	return NULL;
}

static void *re_thread_main(void *arg)
{
	struct re_thread *rt = arg;

	poke(rt->tid, (pid_t)syscall(SYS_gettid));
	for (uint32_t c = 1; c <= (uint32_t)re_cycles; c++) {
		re_wait_cycle(c);
		__atomic_add_fetch(&re_armed, 1, __ATOMIC_RELEASE);
		check(ksync_revent_wait(&rev));
		re_resumed();
	}
	return NULL;
}

/* Is thread @tid blocked in futex_wait on @word? */
static bool parked_on(pid_t tid, const void *word)
{
	char path[64], buf[256];
	unsigned long nr = 0, a0 = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == EACCES;	/* cannot look: trust the sleep below */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	if (sscanf(buf, "%lu %lx", &nr, &a0) != 2)
		return false;
	return nr == SYS_futex_wait && a0 == (unsigned long)(uintptr_t)word;
}

struct re_run {
	double resumed_ns, set_ns, syscalls;	/* per cycle (medians of the run) */
};

static struct re_ring re_rings[RE_RINGS];
static struct re_thread re_threads[RE_THREADS];

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median_of(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void run_revent(int nasync, int counter, struct re_run *out)
{
	int total = nasync + RE_THREADS;
	double res[16], set[16], sys[16];

	re_cycles = cfg.quick ? 3 : 9;
	ksync_revent_init(&rev, 0);
	poke(re_cycle, 0);
	for (int i = 0; i < RE_RINGS; i++) {
		re_rings[i].nops = nasync / RE_RINGS + (i < nasync % RE_RINGS);
		re_rings[i].ops = calloc((size_t)re_rings[i].nops, sizeof(struct ksync_op));
		if (!re_rings[i].ops)
			die("calloc");
		re_rings[i].t = spawn(re_ring_main, &re_rings[i]);
	}
	for (int i = 0; i < RE_THREADS; i++) {
		re_threads[i].tid = 0;
		re_threads[i].t = spawn(re_thread_main, &re_threads[i]);
	}
	for (int c = 1; c <= re_cycles; c++) {
		uint64_t base = 0, n = 0;
		int64_t t0, t1, deadline = now_ns() + 10000000000LL;
		struct timespec limit;

		ksync_event_init(&re_all_done, 0);
		poke(re_remaining, (uint32_t)total);
		poke(re_armed, 0);
		__atomic_store_n(&re_cycle, (uint32_t)c, __ATOMIC_RELEASE);
		ksync_futex_wake(&re_cycle, KSYNC_FUTEX_MASK_ANY, 1 << 30);
		/* Set only once every waiter is parked in the kernel. */
		while (peek(re_armed) != (uint32_t)total) {
			if (now_ns() > deadline)
				die("revent waiters did not arm");
			sleep_ns(100000);
		}
		for (int i = 0; i < RE_THREADS; i++)
			while (!parked_on(peek(re_threads[i].tid), &rev.word)) {
				if (now_ns() > deadline)
					die("revent threads did not park");
				sleep_ns(100000);
			}
		sleep_ns(1000000);
		if (counter >= 0) {
			tp_counter_start(counter);
			base = tp_counter_stop(counter);
			tp_counter_start(counter);
		}
		t0 = now_ns();
		ksync_revent_set(&rev);
		t1 = now_ns();
		if (counter >= 0)
			n = tp_counter_stop(counter);
		ksync_revent_clear(&rev);	/* at once: nobody may stay behind */
		if (ksync_deadline_after(&limit, CLOCK_MONOTONIC, 30000000000LL) ||
		    ksync_event_wait_until(&re_all_done, CLOCK_MONOTONIC, &limit))
			die("%u of %d revent waiters never resumed", peek(re_remaining), total);
		res[c - 1] = (double)(peek(re_last) - t0);
		set[c - 1] = (double)(t1 - t0);
		sys[c - 1] = counter >= 0 ? (double)n - (double)base : -1;
	}
	out->resumed_ns = median_of(res, re_cycles);
	out->set_ns = median_of(set, re_cycles);
	/* Syscalls: the worst cycle, so that one extra wake would show. */
	out->syscalls = sys[0];
	for (int c = 1; c < re_cycles; c++)
		if (sys[c] > out->syscalls)
			out->syscalls = sys[c];
	for (int i = 0; i < RE_THREADS; i++)
		join(re_threads[i].t);
	for (int i = 0; i < RE_RINGS; i++) {
		join(re_rings[i].t);
		free(re_rings[i].ops);
	}
}

void bench_revent(void)
{
	enum { SMALL, LARGE, NSIZES };
	static const int nasync[NSIZES] = { 1000, 10000 };
	struct series res[NSIZES] = { 0 }, set[NSIZES] = { 0 }, sys[NSIZES] = { 0 };
	char why[128] = "", bname[64], large[64], name[128];
	int counter = tp_counter_open("raw_syscalls/sys_enter", why, sizeof(why));
	struct re_run run;

	for (int r = 0; r < cfg.runs; r++) {
		for (int s = 0; s < NSIZES; s++) {
			run_revent(nasync[s], counter, &run);
			series_add(&res[s], run.resumed_ns);
			series_add(&set[s], run.set_ns);
			if (run.syscalls >= 0)
				series_add(&sys[s], run.syscalls);
		}
	}
	snprintf(bname, sizeof(bname), "%d waiters", nasync[SMALL] + RE_THREADS);
	snprintf(large, sizeof(large), "%d waiters", nasync[LARGE] + RE_THREADS);
#define ROW(what) (snprintf(name, sizeof(name), "10 revent set+clear, %s: %s", large, what), name)
	if (counter >= 0)
		report(ROW("syscalls in set()"), U_COUNT, &sys[LARGE], bname, &sys[SMALL],
		       (struct goal){ G_SAME_LE, 1, "1 per set, same at 1k" });
	else
		report_missing(ROW("syscalls in set()"), why,
			       (struct goal){ G_SAME_LE, 1, "1 per set, same at 1k" });
	report(ROW("set() → all resumed"), U_NS, &res[LARGE], bname, &res[SMALL], NO_GOAL);
	report(ROW("the set() call"), U_NS, &set[LARGE], bname, &set[SMALL], NO_GOAL);
#undef ROW
	note("10: waiters = N async ops over %d rings (one ksync_loop thread each) + %d threads, "
	     "all parked before each set(), clear() right after it; %d cycles per run, medians "
	     "per run (syscalls: the most any cycle made), counted as in 5.",
	     RE_RINGS, RE_THREADS, cfg.quick ? 3 : 9);
	if (counter >= 0)
		close(counter);
}

/* ---- 11: Barrier --------------------------------------------------------- */

#define B_THREADS	4
#define B_RINGS		2
#define B_TASKS		50

static struct ksync_barrier kbar __attribute__((aligned(64)));
static pthread_barrier_t pbar;
static struct ksync_event b_start;
static long b_cycles;

struct b_task {
	struct ksync_op op;
	struct b_ring *br;
	long done;
};

struct b_ring {
	pthread_t t;
	struct ksync_loop loop;
	struct b_task tasks[B_TASKS];
	int active;
};

static void b_task_done(struct ksync_op *op);

/* The next waits of a task, in a loop while they complete at once (this
 * task was the cycle's last arrival). */
static void b_task_run(struct b_task *t)
{
	while (++t->done < b_cycles) {
		ksync_op_barrier(&t->op, &kbar);
		if (!loop_start_done(&t->br->loop, &t->op, b_task_done))
			return;
		if (t->op.result < 0)
			die("barrier op: %s", strerror(-t->op.result));
	}
	t->br->active--;
}

static void b_task_done(struct ksync_op *op)
{
	struct b_task *t = (struct b_task *)op;

	if (op->result < 0)
		die("barrier op: %s", strerror(-op->result));
	b_task_run(t);
}

static void *b_ring_main(void *arg)
{
	struct b_ring *br = arg;

	check(ksync_loop_init(&br->loop, 256, cfg.ring_flags));
	check(ksync_event_wait(&b_start));
	br->active = B_TASKS;
	for (int i = 0; i < B_TASKS; i++) {
		br->tasks[i].br = br;
		br->tasks[i].done = -1;
		b_task_run(&br->tasks[i]);
	}
	while (br->active > 0)
		check(ksync_loop_run_once(&br->loop, 1));
	ksync_loop_exit(&br->loop);
	return NULL;
}

static bool b_posix;

static void *b_thread_main(void *arg)
{
	(void)arg;
	check(ksync_event_wait(&b_start));
	for (long i = 0; i < b_cycles; i++) {
		if (b_posix) {
			int r = pthread_barrier_wait(&pbar);

			if (r && r != PTHREAD_BARRIER_SERIAL_THREAD)
				die("pthread_barrier_wait: %s", strerror(r));
		} else if (ksync_barrier_wait(&kbar) < 0) {
			die("ksync_barrier_wait failed");
		}
	}
	return NULL;
}

/* ns per cycle with @rings rings of tasks (0: threads only). */
static double run_barrier(bool posix, int rings)
{
	pthread_t th[B_THREADS];
	struct b_ring *br = calloc((size_t)(rings ? rings : 1), sizeof(*br));
	int64_t t0;

	if (!br)
		die("calloc");
	b_posix = posix;
	b_cycles = rings ? scaled(2000, 100) : scaled(50000, 2000);
	ksync_event_init(&b_start, 0);
	if (posix)
		pthread_barrier_init(&pbar, NULL, B_THREADS);
	else
		check(ksync_barrier_init(&kbar, (uint32_t)(B_THREADS + rings * B_TASKS), 0));
	for (int i = 0; i < rings; i++)
		br[i].t = spawn(b_ring_main, &br[i]);
	for (int i = 0; i < B_THREADS; i++)
		th[i] = spawn(b_thread_main, NULL);
	sleep_ns(20000000);	/* everyone at the start line */
	t0 = now_ns();
	ksync_event_set(&b_start);
	for (int i = 0; i < B_THREADS; i++)
		join(th[i]);
	for (int i = 0; i < rings; i++)
		join(br[i].t);
	t0 = now_ns() - t0;
	if (posix)
		pthread_barrier_destroy(&pbar);
	else if (ksync_barrier_broken(&kbar) || ksync_barrier_destroy(&kbar))
		die("barrier left broken or busy");
	free(br);
	return (double)t0 / (double)b_cycles;
}

void bench_barrier(void)
{
	struct series mixed = { 0 }, kth = { 0 }, pth = { 0 };

	for (int r = 0; r < cfg.runs; r++) {
		series_add(&mixed, run_barrier(false, B_RINGS));
		series_add(&kth, run_barrier(false, 0));
		series_add(&pth, run_barrier(true, 0));
	}
	report("11 barrier cycle, 4 threads + 2×50 tasks (104 parties)", U_NS, &mixed, NULL, NULL,
	       NO_GOAL);
	report("11 barrier cycle, 4 threads", U_NS, &kth, "pthread_barrier", &pth,
	       (struct goal){ G_RATIO_LE, 1.0, "≤ 1.0x pthread" });
	note("11: time from a common start until every participant has passed %s cycles (mixed) "
	     "or %s (threads only), divided by the cycles; threads unpinned; tasks restart their "
	     "op from its callback. ksync and pthread runs alternate.",
	     cfg.quick ? "200" : "2000", cfg.quick ? "5000" : "50000");
}
