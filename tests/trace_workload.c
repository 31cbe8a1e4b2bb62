/* SPDX-License-Identifier: MIT */
/*
 * The program tests/test_trace.c traces with ksync-wait -p PID, built twice:
 * against the shared library and statically. It makes contended waits whose
 * primitive, world, call site and hold it knows, each one certain to park
 * before it is released (no timing decides what the tool must see):
 *
 *   queue_lock  named before the tool attaches (the registry)
 *   cache_lock  named after it attached (the probe)
 *   renamed     named "old_name" before, renamed "new_name" after
 *   stats_lock  a global without a name: the tool shows its symbol
 *   a heap lock without a name: the tool shows its address
 *
 * queue_lock and cache_lock are each waited for from two thread call sites
 * (wait_site_one, wait_site_two) and two task call sites (task_site_one,
 * task_site_two); the others once from wait_site_one. Every time the main
 * thread holds the lock, waits until the waiter is parked, holds on for
 * HOLD_NS and releases it in release_held(); the waiter then holds it for
 * HOLD_NS itself (a thread releases in its call-site function, a task in
 * task_release()).
 *
 * Protocol on stdin/stdout, one line each:
 *   -> "ready PID"           named queue_lock and old_name; waits for "go"
 *   <- "go"
 *   -> "heap 0xADDR", "line SITE N" for each call site, "done"
 *   <- "exit"                exits 0
 */
#include <ksync/ksync.h>
#include <ksync/loop.h>
#include <ksync/name.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define HOLD_NS		5000000

static struct ksync_lock queue_lock = KSYNC_LOCK_INIT;
static struct ksync_lock cache_lock = KSYNC_LOCK_INIT;
struct ksync_lock renamed_lock = KSYNC_LOCK_INIT;
struct ksync_lock stats_lock = KSYNC_LOCK_INIT;

enum { WAIT_ONE, WAIT_TWO, TASK_ONE, TASK_TWO, RELEASE_HELD, TASK_RELEASE, NSITES };
static const char *const site_names[NSITES] = {
	"wait_site_one", "wait_site_two", "task_site_one", "task_site_two",
	"release_held", "task_release",
};
static int site_line[NSITES];	/* the line of each site's ksync call */

#define CHECK(x) do {								\
	if (!(x)) {								\
		fprintf(stderr, "trace_workload: %s:%d: %s failed\n",		\
			__FILE__, __LINE__, #x);				\
		exit(1);							\
	}									\
} while (0)

static void sleep_ns(long ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void expect(const char *cmd)
{
	char line[64];

	CHECK(fgets(line, sizeof(line), stdin));
	line[strcspn(line, "\n")] = '\0';
	CHECK(!strcmp(line, cmd));
}

/* ---- threads ------------------------------------------------------------ */

/* Each call site is its own function, and does something after the call
 * (so the call is no tail call: the site keeps its frame). */
static __attribute__((noinline)) void wait_site_one(struct ksync_lock *l)
{
	int r = ksync_lock_acquire(l); site_line[WAIT_ONE] = __LINE__;

	CHECK(r == 0);
	sleep_ns(HOLD_NS);
	CHECK(ksync_lock_release(l) == 0);
}

static __attribute__((noinline)) void wait_site_two(struct ksync_lock *l)
{
	int r = ksync_lock_acquire(l); site_line[WAIT_TWO] = __LINE__;

	CHECK(r == 0);
	sleep_ns(HOLD_NS);
	CHECK(ksync_lock_release(l) == 0);
}

static __attribute__((noinline)) void release_held(struct ksync_lock *l)
{
	int r = ksync_lock_release(l); site_line[RELEASE_HELD] = __LINE__;

	CHECK(r == 0);
}

struct waiter {
	struct ksync_lock *lock;
	void (*site)(struct ksync_lock *);
	int tid;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	__atomic_store_n(&w->tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
	w->site(w->lock);
	return NULL;
}

/* Is thread @tid asleep in a futex wait? /proc says so only once it sleeps
 * there, which for a futex wait means it is queued on the word. */
static int parked_in_futex(int tid)
{
	char path[64], buf[64] = "";
	FILE *f;
	long nr;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	if (sscanf(buf, "%ld", &nr) != 1)
		return 0;	/* "running" */
#ifdef SYS_futex_wait
	if (nr == SYS_futex_wait)
		return 1;
#endif
	return nr == 455 || nr == SYS_futex;
}

static void thread_case(struct ksync_lock *l, void (*site)(struct ksync_lock *))
{
	struct waiter w = { .lock = l, .site = site };
	pthread_t t;

	CHECK(ksync_lock_acquire(l) == 0);
	CHECK(pthread_create(&t, NULL, waiter_main, &w) == 0);
	while (!__atomic_load_n(&w.tid, __ATOMIC_ACQUIRE) ||
	       !parked_in_futex(__atomic_load_n(&w.tid, __ATOMIC_ACQUIRE)))
		sleep_ns(100000);
	sleep_ns(HOLD_NS);
	release_held(l);
	CHECK(pthread_join(t, NULL) == 0);
}

/* ---- tasks -------------------------------------------------------------- */

static int task_done;

static void on_done(struct ksync_op *op)
{
	(void)op;
	task_done = 1;
}

static __attribute__((noinline)) void task_site_one(struct ksync_loop *loop, struct ksync_op *op,
						    struct ksync_lock *l, uint64_t token)
{
	int r;

	ksync_op_lock(op, l, token);
	r = ksync_loop_start(loop, op, on_done); site_line[TASK_ONE] = __LINE__;
	CHECK(r == KSYNC_OP_PENDING);
}

static __attribute__((noinline)) void task_site_two(struct ksync_loop *loop, struct ksync_op *op,
						    struct ksync_lock *l, uint64_t token)
{
	int r;

	ksync_op_lock(op, l, token);
	r = ksync_loop_start(loop, op, on_done); site_line[TASK_TWO] = __LINE__;
	CHECK(r == KSYNC_OP_PENDING);
}

static __attribute__((noinline)) void task_release(struct ksync_lock *l, uint64_t token)
{
	int r = ksync_lock_release_task(l, token); site_line[TASK_RELEASE] = __LINE__;

	CHECK(r == 0);
}

typedef void task_site_fn(struct ksync_loop *, struct ksync_op *, struct ksync_lock *, uint64_t);

static void task_case(struct ksync_loop *loop, struct ksync_lock *l, task_site_fn *site,
		      uint64_t token)
{
	struct ksync_op op;

	CHECK(ksync_lock_acquire(l) == 0);
	task_done = 0;
	site(loop, &op, l, token);
	/* Submitted, and the kernel answered nothing: the wait is queued (an
	 * -EAGAIN would have been posted during the submit). */
	do {
		CHECK(ksync_loop_run_once(loop, 0) >= 0);
	} while (io_uring_sq_ready(&loop->ring) || io_uring_cq_ready(&loop->ring));
	CHECK(ksync_op_pending(&op) && !task_done);
	sleep_ns(HOLD_NS);
	release_held(l);
	while (!task_done)
		CHECK(ksync_loop_run_once(loop, 1) >= 0);
	CHECK(op.result == 0);
	sleep_ns(HOLD_NS);
	task_release(l, token);
}

int main(void)
{
	struct ksync_lock *heap_lock = calloc(1, sizeof(*heap_lock));
	struct ksync_loop loop;

	CHECK(heap_lock);
	setvbuf(stdout, NULL, _IOLBF, 0);
	CHECK(ksync_set_name(&queue_lock, "queue_lock") == 0);
	CHECK(ksync_set_name(&renamed_lock, "old_name") == 0);
	CHECK(ksync_loop_init(&loop, 8, 0) == 0);
	printf("ready %d\n", (int)getpid());
	expect("go");

	CHECK(ksync_set_name(&cache_lock, "cache_lock") == 0);
	CHECK(ksync_set_name(&renamed_lock, "new_name") == 0);
	for (int i = 0; i < 2; i++) {
		struct ksync_lock *l = i ? &cache_lock : &queue_lock;

		thread_case(l, wait_site_one);
		thread_case(l, wait_site_two);
		task_case(&loop, l, task_site_one, 0x7a5c1);
		task_case(&loop, l, task_site_two, 0x7a5c2);
	}
	thread_case(&renamed_lock, wait_site_one);
	thread_case(&stats_lock, wait_site_one);
	thread_case(heap_lock, wait_site_one);

	printf("heap %p\n", (void *)heap_lock);
	for (int i = 0; i < NSITES; i++)
		printf("line %s %d\n", site_names[i], site_line[i]);
	printf("done\n");
	expect("exit");
	ksync_loop_exit(&loop);
	free(heap_lock);
	return 0;
}
