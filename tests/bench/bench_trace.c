/* SPDX-License-Identifier: MIT */
/*
 * 12. What ksync-wait costs the process it traces (bpf/, uapi/ksync/probe.h).
 *
 * A contended wait fires four probes: wait_begin and wait_end around the
 * waiter's wait, wake_begin and wake around the wake that ends it. The
 * loop here makes exactly that, with nothing else that waits: a thread
 * waits on an unset Event with a deadline already past (wait_begin, a
 * futex_wait that times out at once, wait_end), then sets it (wake_begin,
 * a futex_wake that wakes nobody, wake). Each run times a batch of those
 * with no tracer, then attaches ksync-wait -p to this process, times the
 * same batch, and detaches; the added time per contended wait is the
 * difference, per run. A second series does it with --no-stacks (no user
 * stack taken). The uncontended lock (case 1's loop) is timed the same way:
 * its fast path has no probe at all, so attaching cannot change its
 * instructions (tests/bench/fastpath-cost.sh counts them), only the noise.
 *
 * Needs root, a kernel with BPF and uprobes, and ksync-wait built; without
 * them the rows say why. Times on a shared machine are noisy: read the
 * added time as "about", and the min-max spread as the noise.
 */
#include "bench.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef KSYNC_WAIT_TOOL
#define KSYNC_WAIT_TOOL ""
#endif

static struct ksync_event tev;

/* This thread's CPU time: what the probes add is spent on it, and time the
 * machine gives to other processes is left out (it is shared and busy). */
static int64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
static struct ksync_lock tlock __attribute__((aligned(64)));

/* ns per contended wait: the waiter's side and the wake that would end it. */
static __attribute__((noinline)) double loop_wait(long n)
{
	static const struct timespec past = { 0, 1 };
	int64_t t0 = cpu_ns();

	for (long i = 0; i < n; i++) {
		ksync_event_init(&tev, 0);
		if (ksync_event_wait_until(&tev, CLOCK_MONOTONIC, &past) != -ETIMEDOUT)
			die("a wait with a past deadline did not time out");
		if (ksync_event_set(&tev) != 1)
			die("set");
	}
	return (double)(cpu_ns() - t0) / (double)n;
}

/* ns per uncontended acquire+release pair. */
static __attribute__((noinline)) double loop_lock(long n)
{
	int64_t t0 = cpu_ns();

	for (long i = 0; i < n; i++) {
		check(ksync_lock_acquire(&tlock));
		ksync_lock_release(&tlock);
	}
	return (double)(cpu_ns() - t0) / (double)n;
}

struct tool {
	pid_t pid;
	int err;	/* its stderr */
};

/* Start ksync-wait -p <us> (plus @extra) and wait until it has attached.
 * Returns false, with @why, if it cannot. */
static bool tool_attach(struct tool *t, const char *extra, char *why, size_t len)
{
	char pid[16], buf[4096];
	int fds[2];
	size_t got = 0;
	int64_t end = now_ns() + 30000000000LL;

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (pipe2(fds, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	t->pid = fork();
	if (t->pid < 0)
		die("fork: %s", strerror(errno));
	if (t->pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		execl(KSYNC_WAIT_TOOL, "ksync-wait", "-p", pid, extra, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	t->err = fds[0];
	buf[0] = 0;
	while (!strstr(buf, "Ctrl-C to end") && now_ns() < end && got < sizeof(buf) - 1) {
		struct pollfd p = { .fd = t->err, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 100) <= 0)
			continue;
		r = read(t->err, buf + got, sizeof(buf) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		buf[got] = 0;
	}
	if (strstr(buf, "Ctrl-C to end"))
		return true;
	kill(t->pid, SIGKILL);
	waitpid(t->pid, NULL, 0);
	close(t->err);
	buf[strcspn(buf, "\n")] = 0;
	snprintf(why, len, "ksync-wait did not attach: %s", buf[0] ? buf : "no output");
	return false;
}

static void tool_detach(struct tool *t)
{
	int status;

	kill(t->pid, SIGINT);
	if (waitpid(t->pid, &status, 0) != t->pid || !WIFEXITED(status) || WEXITSTATUS(status))
		die("ksync-wait did not end cleanly");
	close(t->err);
}

/* The batch sizes: each batch takes a few tens of milliseconds. */
static void measure(const char *extra, long nwait, long nlock, struct series *w0,
		    struct series *w1, struct series *added, struct series *l0,
		    struct series *l1, char *why, size_t len)
{
	for (int run = 0; run < cfg.runs; run++) {
		struct tool t;
		double a, b, c, d;

		loop_wait(nwait / 10);	/* warm up */
		a = loop_wait(nwait);
		c = loop_lock(nlock);
		if (!tool_attach(&t, extra, why, len))
			return;
		loop_wait(nwait / 10);
		b = loop_wait(nwait);
		d = loop_lock(nlock);
		tool_detach(&t);
		series_add(w0, a);
		series_add(w1, b);
		series_add(added, b - a);
		if (l0) {
			series_add(l0, c);
			series_add(l1, d);
		}
	}
}

void bench_tracer(void)
{
	struct series w0 = { 0 }, w1 = { 0 }, added = { 0 }, l0 = { 0 }, l1 = { 0 };
	struct series n0 = { 0 }, n1 = { 0 }, nadded = { 0 };
	struct goal goal = { G_VALUE_LE, 1000, "≤ 1 µs (every run)" };
	long nwait = scaled(20000, 2000), nlock = scaled(2000000, 200000);
	char why[512] = "";
	char a[32];

	ksync_lock_init(&tlock, 0);
	if (!KSYNC_WAIT_TOOL[0])
		snprintf(why, sizeof(why), "not measured: ksync-wait is not built");
	else if (geteuid() != 0)
		snprintf(why, sizeof(why), "not measured: attaching needs root");
	if (!why[0])
		measure("-g", nwait, nlock, &w0, &w1, &added, &l0, &l1, why, sizeof(why));
	if (!why[0])
		measure("--no-stacks", nwait, nlock, &n0, &n1, &nadded, NULL, NULL, why,
			sizeof(why));
	if (why[0]) {
		report_missing("12 tracer attached: added per contended wait", why, goal);
		return;
	}
	report("12 tracer attached: contended wait + its wake", U_NS, &w1, "no tracer", &w0,
	       NO_GOAL);
	report("12 tracer attached: added per contended wait", U_NS, &added, NULL, NULL, goal);
	report("12 tracer --no-stacks: contended wait + its wake", U_NS, &n1, "no tracer", &n0,
	       NO_GOAL);
	report("12 tracer --no-stacks: added per contended wait", U_NS, &nadded, NULL, NULL, goal);
	report("12 tracer attached: uncontended lock acquire+release", U_NS, &l1, "no tracer", &l0,
	       NO_GOAL);
	note("12: %ld waits per batch (%ld in quick mode): each a wait on an unset Event with a "
	     "past deadline (wait_begin, futex_wait timing out at once, wait_end) and the set "
	     "that follows (wake_begin, futex_wake waking nobody, wake): the four probes of one "
	     "contended wait and its wake. Per run: the batch without a tracer, then with "
	     "ksync-wait -p attached (default: a user stack per wait and per wake), then "
	     "detached. Times are the thread's CPU time. Without a tracer this loop takes %s per "
	     "wait, nearly all of it the futex_wait that arms a timer and times out. "
	     "The uncontended lock has no probe on its path: same instructions attached or not "
	     "(callgrind), so its row shows only noise. Times here are noisy (shared machine).",
	     20000L, 2000L, fmt_ns(a, sizeof(a), series_median(&w0)));
}
