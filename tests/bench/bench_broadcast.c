/* SPDX-License-Identifier: MIT */
/*
 * Event broadcast: N async waiters spread over 4 rings (a ksync_loop in its
 * own thread each) plus 64 blocked threads all wait on one ksync_event.
 * Measured: the time from ksync_event_set() until the last waiter has
 * resumed, the time set() itself takes, and the number of syscalls set()
 * makes, at N = 1,000 and N = 10,000.
 *
 * Syscalls are counted for real: a perf counter on the raw_syscalls:sys_enter
 * tracepoint, attached to the setting thread only, is enabled just around
 * set(). The ioctl that disables it is itself counted, so an empty enable /
 * disable pair is measured each run and subtracted.
 */
#include "bench.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Debian 12's headers predate futex2; the number is the same everywhere. */
#ifndef SYS_futex_wait
#define SYS_futex_wait 455
#endif

#define NRINGS		4
#define NTHREADS	64

static struct ksync_event ev, all_done;
static uint32_t remaining;
static uint32_t rings_ready;
static int64_t t_last;

struct ring_waiters {
	pthread_t t;
	struct ksync_loop loop;
	struct ksync_op *ops;
	int nops;
};

struct thread_waiter {
	pthread_t t;
	pid_t tid;
};

static void resumed(void)
{
	if (__atomic_sub_fetch(&remaining, 1, __ATOMIC_ACQ_REL) == 0) {
		t_last = now_ns();
		ksync_event_set(&all_done);
	}
}

static void waiter_cb(struct ksync_op *op)
{
	if (op->result)
		die("event op: %s", strerror(-op->result));
	resumed();
}

static void *ring_thread(void *arg)
{
	struct ring_waiters *rw = arg;

	/* Room for every wait in the SQ and every completion in the CQ. */
	check(ksync_loop_init(&rw->loop, 4096, cfg.ring_flags));
	for (int i = 0; i < rw->nops; i++) {
		ksync_op_event(&rw->ops[i], &ev);
		if (loop_start_done(&rw->loop, &rw->ops[i], waiter_cb))
			waiter_cb(&rw->ops[i]);
	}
	/* Submitting parks every FUTEX_WAIT in the kernel before we report in. */
	check(ksync_loop_run_once(&rw->loop, 0));
	if (ksync_loop_busy(&rw->loop) != (unsigned)rw->nops)
		die("ring waiters did not all park");
	__atomic_add_fetch(&rings_ready, 1, __ATOMIC_RELEASE);
	check(ksync_loop_run(&rw->loop));
	ksync_loop_exit(&rw->loop);
	return NULL;
}

static void *waiter_thread(void *arg)
{
	struct thread_waiter *tw = arg;

	poke(tw->tid, (pid_t)syscall(SYS_gettid));
	check(ksync_event_wait(&ev));
	resumed();
	return NULL;
}

/* Is thread @tid blocked in futex_wait on @word? (/proc/.../syscall says
 * which syscall a blocked thread is in, with its arguments.) */
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

/* ---- one run ------------------------------------------------------------ */

struct bcast_run {
	double all_resumed_ns;
	double set_ns;
	double syscalls;	/* -1 when not counted */
};

static struct ring_waiters rings[NRINGS];
static struct thread_waiter threads[NTHREADS];

static void run_broadcast(int nasync, int counter, struct bcast_run *out)
{
	uint64_t base = 0, n = 0;
	int64_t t0, t1, deadline;

	ksync_event_init(&ev, 0);
	ksync_event_init(&all_done, 0);
	poke(remaining, (uint32_t)(nasync + NTHREADS));
	poke(rings_ready, 0);
	for (int i = 0; i < NRINGS; i++) {
		rings[i].nops = nasync / NRINGS + (i < nasync % NRINGS);
		rings[i].ops = calloc((size_t)rings[i].nops, sizeof(struct ksync_op));
		if (!rings[i].ops)
			die("calloc");
		rings[i].t = spawn(ring_thread, &rings[i]);
	}
	for (int i = 0; i < NTHREADS; i++) {
		threads[i].tid = 0;
		threads[i].t = spawn(waiter_thread, &threads[i]);
	}

	/* Start only once every waiter is parked in the kernel. */
	deadline = now_ns() + 10000000000LL;
	for (int i = 0; i < NTHREADS; i++)
		while (!peek(threads[i].tid) || !parked_on(peek(threads[i].tid), &ev.word)) {
			if (now_ns() > deadline)
				die("waiter threads did not park");
			sleep_ns(200000);
		}
	while (peek(rings_ready) != NRINGS) {
		if (now_ns() > deadline)
			die("rings did not park");
		sleep_ns(200000);
	}
	sleep_ns(1000000);	/* in case /proc could not be read */

	if (counter >= 0) {
		tp_counter_start(counter);
		base = tp_counter_stop(counter);
		tp_counter_start(counter);
	}
	t0 = now_ns();
	ksync_event_set(&ev);
	t1 = now_ns();
	if (counter >= 0)
		n = tp_counter_stop(counter);
	/* The benchmark doubles as a check: a lost wake-up must not hang it. */
	struct timespec limit;

	if (ksync_deadline_after(&limit, CLOCK_MONOTONIC, 30000000000LL) ||
	    ksync_event_wait_until(&all_done, CLOCK_MONOTONIC, &limit))
		die("%u of %d waiters never resumed after set()", peek(remaining),
		    nasync + NTHREADS);

	out->set_ns = (double)(t1 - t0);
	out->all_resumed_ns = (double)(peek(t_last) - t0);
	out->syscalls = counter >= 0 ? (double)n - (double)base : -1;

	for (int i = 0; i < NTHREADS; i++)
		join(threads[i].t);
	for (int i = 0; i < NRINGS; i++) {
		join(rings[i].t);
		free(rings[i].ops);
	}
}

void bench_broadcast(void)
{
	enum { SMALL, LARGE, NSIZES };
	static const int nasync[NSIZES] = { 1000, 10000 };
	struct series all[NSIZES] = { 0 }, set[NSIZES] = { 0 }, sys[NSIZES] = { 0 };
	char why[128] = "", bname[64], large[64], name[128];
	int counter = tp_counter_open("raw_syscalls/sys_enter", why, sizeof(why));
	struct bcast_run run;

	if (counter >= 0) {
		/* Check that the counter counts: three known syscalls. */
		uint64_t base, n;

		tp_counter_start(counter);
		base = tp_counter_stop(counter);
		tp_counter_start(counter);
		for (int i = 0; i < 3; i++)
			syscall(SYS_getppid);
		n = tp_counter_stop(counter);
		if (n - base != 3) {
			snprintf(why, sizeof(why), "not counted: counter saw %llu of 3 test syscalls",
				 (unsigned long long)(n - base));
			close(counter);
			counter = -1;
		}
	}

	for (int r = 0; r < cfg.runs; r++) {
		for (int s = 0; s < NSIZES; s++) {
			run_broadcast(nasync[s], counter, &run);
			series_add(&all[s], run.all_resumed_ns);
			series_add(&set[s], run.set_ns);
			if (run.syscalls >= 0)
				series_add(&sys[s], run.syscalls);
		}
	}

	snprintf(bname, sizeof(bname), "%d waiters", nasync[SMALL] + NTHREADS);
	snprintf(large, sizeof(large), "%d waiters", nasync[LARGE] + NTHREADS);
#define ROW(what) (snprintf(name, sizeof(name), "5 event broadcast, %s: %s", large, what), name)
	if (counter >= 0)
		report(ROW("syscalls in set()"), U_COUNT, &sys[LARGE], bname, &sys[SMALL],
		       (struct goal){ G_SAME_LE, 1, "O(1): ≤ 1, same at 1k" });
	else
		report_missing(ROW("syscalls in set()"), why,
			       (struct goal){ G_SAME_LE, 1, "O(1): ≤ 1, same at 1k" });
	report(ROW("set() → all resumed"), U_NS, &all[LARGE], bname, &all[SMALL], NO_GOAL);
	report(ROW("the set() call"), U_NS, &set[LARGE], bname, &set[SMALL], NO_GOAL);
#undef ROW
	note("5: waiters = N async ops over %d rings (one ksync_loop thread each) + %d "
	     "threads, all parked before set(); syscalls counted with a perf counter on "
	     "raw_syscalls:sys_enter for the setting thread only (checked on 3 getppid "
	     "calls)%s.", NRINGS, NTHREADS,
	     tracefs_mounted_here ? "; tracefs was mounted at /sys/kernel/tracing for this" : "");
	if (counter >= 0)
		close(counter);
}
