/* SPDX-License-Identifier: MIT */
/*
 * The BPF tool bpf/ksync-wait against a known workload. The tool runs as a
 * child attached to this very process (the tests link the static library,
 * so the USDT probes live in this executable), the test makes waits whose
 * number, world and outcome it knows, then stops the tool and checks its
 * final table row by row.
 *
 * Needs root and a kernel with BPF; without them it is skipped, with the
 * reason on stderr.
 */
#include "harness.h"
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#ifndef KSYNC_WAIT_TOOL
#define KSYNC_WAIT_TOOL ""	/* not built: see bpf/meson.build */
#endif

#if KSYNC_HAVE_SDT
/* The is-enabled semaphores (lib/kernel.c); an attached tracer raises them. */
extern unsigned short ksync_wait_begin_semaphore;
extern unsigned short ksync_wait_end_semaphore;
extern unsigned short ksync_wake_semaphore;

static unsigned semaphores(void)
{
	return peek(ksync_wait_begin_semaphore) + peek(ksync_wait_end_semaphore) +
	       peek(ksync_wake_semaphore);
}
#endif

#define SKIP(...) do {								\
	fprintf(stderr, "SKIP: " __VA_ARGS__);					\
	fprintf(stderr, "\n");							\
	skip();									\
} while (0)

/* ---- the tool as a child process ---------------------------------------- */

struct tool {
	pid_t pid;
	int fd;			/* its stdout and stderr */
	char *out;		/* everything it printed, NUL-terminated */
	size_t len, cap;
	bool eof;
};

static void tool_start(struct tool *t)
{
	char exe[PATH_MAX], pid[16];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int p[2];

	/* The tool resolves -b itself: /proc/self/exe would be the tool. */
	assert_true(n > 0);
	exe[n] = '\0';
	snprintf(pid, sizeof(pid), "%d", (int)getpid());

	memset(t, 0, sizeof(*t));
	t->cap = 1 << 16;
	t->out = calloc(1, t->cap);
	assert_non_null(t->out);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	fflush(NULL);
	t->pid = fork();
	assert_true(t->pid >= 0);
	if (t->pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		execl(KSYNC_WAIT_TOOL, "ksync-wait", "-b", exe, "-p", pid, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", KSYNC_WAIT_TOOL, strerror(errno));
		_exit(127);
	}
	close(p[1]);
	t->fd = p[0];
}

/* Read what the tool printed, waiting up to @ms for more. */
static void tool_read(struct tool *t, int ms)
{
	struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
	ssize_t n;

	if (t->eof || poll(&pfd, 1, ms) <= 0)
		return;
	if (t->len + 4096 + 1 > t->cap) {
		t->cap *= 2;
		t->out = realloc(t->out, t->cap);
		assert_non_null(t->out);
	}
	n = read(t->fd, t->out + t->len, t->cap - t->len - 1);
	if (n <= 0) {
		t->eof = true;
		return;
	}
	t->len += (size_t)n;
	t->out[t->len] = '\0';
}

/* Wait for the "attached" line; false if the tool gave up first. */
static bool tool_wait_attached(struct tool *t)
{
	int64_t end = ksync_clock_ns(CLOCK_MONOTONIC) + 20000000000LL;

	while (!strstr(t->out, "attached")) {
		if (t->eof || ksync_clock_ns(CLOCK_MONOTONIC) > end)
			return false;
		tool_read(t, 100);
	}
	return true;
}

/* SIGINT, like Ctrl-C: the tool prints its final table and exits 0. */
static void tool_stop(struct tool *t)
{
	int64_t end = ksync_clock_ns(CLOCK_MONOTONIC) + 20000000000LL;
	int status;

	assert_int_equal(kill(t->pid, SIGINT), 0);
	while (!t->eof && ksync_clock_ns(CLOCK_MONOTONIC) < end)
		tool_read(t, 100);
	if (!t->eof)
		kill(t->pid, SIGKILL);
	assert_int_equal(waitpid(t->pid, &status, 0), t->pid);
	close(t->fd);
	fprintf(stderr, "---- ksync-wait output ----\n%s---------------------------\n", t->out);
	assert_true(t->eof);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- its table ---------------------------------------------------------- */

/* One row of the table; a "-" column reads as -1. */
struct row {
	bool found;
	long long waits, ok, timeout, cancel, other, wakes, woken;
	double avg_us, max_us;
};

static long long num(const char *s)
{
	return strcmp(s, "-") ? strtoll(s, NULL, 10) : -1;
}

/*
 * Find the row of (our pid, @prim, @kind, @world) in the last table:
 * PID PRIM KIND WORLD WAITS AVG_us MAX_us OK TIMEOUT CANCEL OTHER WAKES WOKEN
 */
static struct row find_row(const char *out, const void *prim, const char *kind,
			   const char *world)
{
	const char *table = out, *line, *p;
	struct row r = { 0 };

	/* Only the last table counts (the tool prints one at exit). */
	for (p = out; (p = strstr(p, "\nPID ")); p++)
		table = p + 1;
	for (line = table; line; line = strchr(line, '\n')) {
		char k[16], w[16], c[9][32];
		unsigned long long addr;
		unsigned pid;

		if (*line == '\n')
			line++;
		if (sscanf(line, "%u 0x%llx %15s %15s %31s %31s %31s %31s %31s %31s %31s %31s %31s",
			   &pid, &addr, k, w, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
			   c[8]) != 13)
			continue;
		if (pid != (unsigned)getpid() || addr != (uintptr_t)prim || strcmp(k, kind) ||
		    strcmp(w, world))
			continue;
		assert_false(r.found);	/* one row per key */
		r.found = true;
		r.waits = num(c[0]);
		r.avg_us = strcmp(c[1], "-") ? strtod(c[1], NULL) : -1;
		r.max_us = strcmp(c[2], "-") ? strtod(c[2], NULL) : -1;
		r.ok = num(c[3]);
		r.timeout = num(c[4]);
		r.cancel = num(c[5]);
		r.other = num(c[6]);
		r.wakes = num(c[7]);
		r.woken = num(c[8]);
	}
	if (!r.found)
		fail_msg("no row for %p %s %s in the tool's table", prim, kind, world);
	return r;
}

/* ---- the workload ------------------------------------------------------- */

#define LOCK_WAITERS	3
#define EVENT_WAITERS	2
#define HOLD_NS		20000000	/* the lock is held this long */

static struct ksync_lock lock = KSYNC_LOCK_INIT;
static struct ksync_event event = KSYNC_EVENT_INIT;
static int started;			/* waiter threads about to wait */

static void *lock_waiter(void *arg)
{
	(void)arg;
	__atomic_fetch_add(&started, 1, __ATOMIC_RELEASE);
	assert_int_equal(ksync_lock_acquire(&lock), 0);
	sleep_ns(1000000);
	assert_int_equal(ksync_lock_release(&lock), 0);
	return NULL;
}

static void *event_waiter(void *arg)
{
	(void)arg;
	__atomic_fetch_add(&started, 1, __ATOMIC_RELEASE);
	assert_int_equal(ksync_event_wait(&event), 0);
	return NULL;
}

static int done;

static void on_done(struct ksync_op *op)
{
	(void)op;
	done = 1;
}

/*
 * Lock: held by this thread for HOLD_NS while LOCK_WAITERS threads wait
 * (thread world, ok, each >= HOLD_NS) and one loop task waits with a 5 ms
 * deadline (uring world, timed out). Event: EVENT_WAITERS threads and one
 * task wait, one set wakes them all (one wake, all ok).
 */
static void workload(void)
{
	pthread_t th[LOCK_WAITERS + EVENT_WAITERS];
	struct ksync_loop loop;
	struct ksync_op op;
	struct timespec dl;

	assert_int_equal(ksync_loop_init(&loop, 8, 0), 0);

	assert_int_equal(ksync_lock_acquire(&lock), 0);
	started = 0;
	for (int i = 0; i < LOCK_WAITERS; i++)
		th[i] = spawn(lock_waiter, NULL);
	wait_until(peek(started) == LOCK_WAITERS);

	ksync_op_lock(&op, &lock, 0x7a5c);	/* any non-zero task token */
	dl = in_ns(5000000);
	assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
	done = 0;
	assert_true(loop_start(&loop, &op, on_done) >= 0);
	run_loop_until(&loop, done);
	assert_int_equal(op.result, -ETIMEDOUT);

	/* The threads are parked by now (they only spin a few µs first). */
	sleep_ns(HOLD_NS);
	assert_int_equal(ksync_lock_release(&lock), 0);
	for (int i = 0; i < LOCK_WAITERS; i++)
		join(th[i]);

	started = 0;
	for (int i = 0; i < EVENT_WAITERS; i++)
		th[i] = spawn(event_waiter, NULL);
	ksync_op_event(&op, &event);
	done = 0;
	assert_true(loop_start(&loop, &op, on_done) >= 0);
	assert_false(done);
	wait_until(peek(started) == EVENT_WAITERS);
	sleep_ns(10000000);
	assert_int_equal(ksync_event_set(&event), 1);
	run_loop_until(&loop, done);
	assert_int_equal(op.result, 0);
	for (int i = 0; i < EVENT_WAITERS; i++)
		join(th[i]);

	ksync_loop_exit(&loop);
	assert_int_equal(ksync_lock_destroy(&lock), 0);
}

static void test_ksync_wait(void **state)
{
	(void)state;
#if !KSYNC_HAVE_SDT
	SKIP("ksync is built without sys/sdt.h: no USDT probes to trace");
#else
	struct row r;
	struct tool t;

	if (!KSYNC_WAIT_TOOL[0])
		SKIP("ksync-wait is not built (see the meson setup messages)");
	if (access(KSYNC_WAIT_TOOL, X_OK))
		SKIP("%s: %s", KSYNC_WAIT_TOOL, strerror(errno));
	if (geteuid() != 0)
		SKIP("loading BPF programs needs root");
	if (ksync_require(KSYNC_FEAT_FUTEX2 | KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX))
		SKIP("the kernel lacks futex2 or io_uring futex operations");

	/* Unattached, the probes are off: their arguments cost nothing. */
	assert_int_equal(semaphores(), 0);

	tool_start(&t);
	if (!tool_wait_attached(&t)) {
		kill(t.pid, SIGKILL);
		waitpid(t.pid, NULL, 0);
		fprintf(stderr, "%s", t.out);
		if (strstr(t.out, "Operation not permitted"))
			SKIP("ksync-wait may not load BPF programs here");
		fail_msg("ksync-wait did not attach");
	}
	/* Attached to this pid: all three semaphores are up. */
	assert_true(peek(ksync_wait_begin_semaphore) > 0);
	assert_true(peek(ksync_wait_end_semaphore) > 0);
	assert_true(peek(ksync_wake_semaphore) > 0);

	workload();
	tool_stop(&t);

	r = find_row(t.out, &lock, "lock", "thread");
	assert_int_equal(r.waits, LOCK_WAITERS);
	assert_int_equal(r.ok, LOCK_WAITERS);
	assert_int_equal(r.timeout, 0);
	assert_int_equal(r.cancel, 0);
	assert_int_equal(r.other, 0);
	/* Every waiter waited out the whole hold, and then some. */
	assert_true(r.max_us >= 10000);
	assert_true(r.avg_us >= 10000);
	assert_true(r.max_us >= r.avg_us);

	r = find_row(t.out, &lock, "lock", "uring");
	assert_int_equal(r.waits, 1);
	assert_int_equal(r.ok, 0);
	assert_int_equal(r.timeout, 1);
	assert_int_equal(r.cancel, 0);
	assert_int_equal(r.other, 0);
	assert_true(r.max_us >= 1000);	/* the 5 ms deadline */

	/* The releases woke the waiters: at least the first one. */
	r = find_row(t.out, &lock, "lock", "-");
	assert_true(r.wakes >= 1);
	assert_true(r.woken >= 1);

	r = find_row(t.out, &event, "event", "thread");
	assert_int_equal(r.waits, EVENT_WAITERS);
	assert_int_equal(r.ok, EVENT_WAITERS);
	assert_int_equal(r.timeout + r.cancel + r.other, 0);

	r = find_row(t.out, &event, "event", "uring");
	assert_int_equal(r.waits, 1);
	assert_int_equal(r.ok, 1);
	assert_int_equal(r.timeout + r.cancel + r.other, 0);

	/* One set, one futex_wake for everybody. */
	r = find_row(t.out, &event, "event", "-");
	assert_int_equal(r.wakes, 1);
	assert_true(r.woken >= 1 && r.woken <= EVENT_WAITERS + 1);

	/* Detached again: the semaphores drop back to 0. */
	wait_until(semaphores() == 0);
	free(t.out);
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ksync_wait),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
