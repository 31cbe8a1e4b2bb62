/* SPDX-License-Identifier: MIT */
/*
 * Threads where futex syscalls are missing or refused.
 *
 * Claims, each checked in a forked child under a seccomp filter that
 * refuses one futex syscall, or several, with ENOSYS (a kernel without
 * it) and with EPERM (a sandbox that forbids it):
 *
 * - Where futex2 is missing or refused, threads fall back to the classic
 *   futex(2) and sleep there: locks keep mutual exclusion and exact counts,
 *   events and semaphores work, and a blocked waiter uses (almost) no CPU.
 * - A thread on the classic path and an io_uring FUTEX_WAIT on the same
 *   word wake each other, both ways, and so do threads and loop tasks
 *   through a lock.
 * - Where even futex(2) is refused, a call that must wait returns that
 *   error at once: never 0 without the grant, never a spin. Fast paths
 *   need no syscall and keep working.
 * - ksync_event_wait_any on several events needs futex_waitv: without it,
 *   a clear error when it must wait.
 *
 * futex(2) is refused only for the words of this test (one page), so that
 * glibc, which waits with futex(2) itself, keeps working in the child.
 */
#include "sandbox.h"

#include <limits.h>

/* Everything the children wait on lives in this page. */
static struct words {
	struct ksync_lock lock;
	struct ksync_event ev[2];
	struct ksync_sem sem;
	uint32_t word;
	long counter;		/* guarded by lock */
	int inside;		/* holders of lock, or of sem permits */
	int max_inside;
} w __attribute__((aligned(4096)));

enum {
	R_WAIT = 1 << 0,	/* futex_wait */
	R_WAKE = 1 << 1,	/* futex_wake */
	R_WAITV = 1 << 2,	/* futex_waitv */
	R_CLASSIC = 1 << 3,	/* futex(2), on this test's words */
	R_FUTEX2 = R_WAIT | R_WAKE | R_WAITV,
	R_ALL = R_FUTEX2 | R_CLASSIC,
};

struct config {
	const char *name;
	unsigned refused;
	int err;		/* ENOSYS or EPERM */
};

static struct sandbox *filter(const struct config *c)
{
	static struct sandbox sb;

	sandbox_init(&sb);
	if (c->refused & R_WAIT)
		sandbox_refuse(&sb, NR_FUTEX_WAIT, c->err);
	if (c->refused & R_WAKE)
		sandbox_refuse(&sb, NR_FUTEX_WAKE, c->err);
	if (c->refused & R_WAITV)
		sandbox_refuse(&sb, NR_FUTEX_WAITV, c->err);
	if (c->refused & R_CLASSIC)
		sandbox_refuse_addr(&sb, SYS_futex, &w, sizeof(w), c->err);
	return &sb;
}

/* Can threads block at all? Once futex_wait or futex_wake is refused,
 * ksync uses futex(2) for both, for good. */
static bool can_block(const struct config *c)
{
	return !(c->refused & (R_WAIT | R_WAKE)) || !(c->refused & R_CLASSIC);
}

static long sleeps_in(const struct config *c)
{
	return c->refused & (R_WAIT | R_WAKE) ? SYS_futex : NR_FUTEX_WAIT;
}

/* ---- mutual exclusion and counts ---------------------------------------- */

#define THREADS	4
#define ROUNDS	3000

struct counter_thread {
	int ok, failed, other_error;
	int first_error;
};

static void enter(void)
{
	int n = __atomic_add_fetch(&w.inside, 1, __ATOMIC_RELAXED);
	int m = __atomic_load_n(&w.max_inside, __ATOMIC_RELAXED);

	while (n > m && !__atomic_compare_exchange_n(&w.max_inside, &m, n, false,
						     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void leave(void)
{
	__atomic_sub_fetch(&w.inside, 1, __ATOMIC_RELAXED);
}

static void *count_with_lock(void *arg)
{
	struct counter_thread *t = arg;

	for (int i = 0; i < ROUNDS; i++) {
		int r = ksync_lock_acquire(&w.lock);

		if (r) {
			t->failed++;
			if (!t->first_error)
				t->first_error = r;
			continue;
		}
		enter();
		/* Not atomic on purpose: only the lock makes it exact. */
		w.counter = w.counter + 1;
		for (volatile int k = 0; k < 50; k++)
			;
		leave();
		if (ksync_lock_release(&w.lock))
			t->other_error++;
		t->ok++;
	}
	return NULL;
}

static void *count_with_sem(void *arg)
{
	struct counter_thread *t = arg;

	for (int i = 0; i < ROUNDS; i++) {
		int r = ksync_sem_acquire(&w.sem);

		if (r) {
			t->failed++;
			if (!t->first_error)
				t->first_error = r;
			continue;
		}
		enter();
		__atomic_add_fetch(&w.counter, 1, __ATOMIC_RELAXED);
		for (volatile int k = 0; k < 50; k++)
			;
		leave();
		if (ksync_sem_release(&w.sem, 1))
			t->other_error++;
		t->ok++;
	}
	return NULL;
}

/* @limit holders at most; every successful acquire counted once; failures
 * only where the kernel refuses every wait, and then with its error. */
static int run_counters(const struct config *c, void *(*fn)(void *), int limit)
{
	struct counter_thread t[THREADS] = { { 0 } };
	pthread_t tid[THREADS];
	long ok = 0, failed = 0;

	w.counter = 0;
	w.inside = w.max_inside = 0;
	for (int i = 0; i < THREADS; i++)
		CHECK_EQ(pthread_create(&tid[i], NULL, fn, &t[i]), 0);
	for (int i = 0; i < THREADS; i++) {
		CHECK_EQ(pthread_join(tid[i], NULL), 0);
		CHECK_EQ(t[i].other_error, 0);
		ok += t[i].ok;
		failed += t[i].failed;
		if (t[i].failed)
			CHECK_EQ(t[i].first_error, -c->err);
	}
	fprintf(stderr, "  %s: %ld acquired, %ld refused, at most %d inside\n",
		fn == count_with_lock ? "lock" : "sem", ok, failed, w.max_inside);
	CHECK_EQ(ok + failed, THREADS * ROUNDS);
	CHECK_EQ(w.counter, ok);
	CHECK(w.max_inside <= limit);
	if (can_block(c))
		CHECK_EQ(failed, 0);
	return 0;
}

/* ---- a waiter that must block ------------------------------------------- */

enum what { LOCK, EVENT, EVENT_ANY2, EVENT_ANY1, SEM };

struct blocked {
	enum what what;
	pid_t tid;
	int done;
	int ret;
};

static void *block_main(void *arg)
{
	struct blocked *b = arg;
	struct ksync_event *evs[] = { &w.ev[0], &w.ev[1] };
	int r = -1;

	__atomic_store_n(&b->tid, gettid(), __ATOMIC_RELEASE);
	switch (b->what) {
	case LOCK:
		r = ksync_lock_acquire(&w.lock);
		if (r == 0)
			r = ksync_lock_release(&w.lock);
		break;
	case EVENT:
		r = ksync_event_wait(&w.ev[0]);
		break;
	case EVENT_ANY2:
		r = ksync_event_wait_any(evs, 2, CLOCK_MONOTONIC, NULL);
		break;
	case EVENT_ANY1:
		r = ksync_event_wait_any(evs, 1, CLOCK_MONOTONIC, NULL);
		break;
	case SEM:
		r = ksync_sem_acquire(&w.sem);
		break;
	}
	b->ret = r;
	__atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Start a thread that must wait for @what. If the kernel lets it block, it
 * must be asleep in syscall @nr on @addr, use almost no CPU while there
 * (under 5% of the time it waited: a spinning thread uses most of it), and
 * return @want once @grant has run. If not, it must return -err by itself
 * (no spin: it returns), never 0.
 */
static int must_block(const struct config *c, enum what what, long nr, const void *addr,
		      void (*grant)(void), int want)
{
	struct blocked b = { .what = what };
	pthread_t t;
	double share;

	CHECK_EQ(pthread_create(&t, NULL, block_main, &b), 0);
	CHECK_SOON(__atomic_load_n(&b.tid, __ATOMIC_ACQUIRE));
	if (nr < 0) {
		CHECK_SOON(__atomic_load_n(&b.done, __ATOMIC_ACQUIRE));
		CHECK_EQ(pthread_join(t, NULL), 0);
		CHECK_EQ(b.ret, -c->err);
		return 0;
	}
	CHECK_SOON(blocked_in(b.tid, nr, addr));
	share = cpu_share(t, 50000000);
	CHECK(share >= 0 && share < 0.05);
	CHECK(blocked_in(b.tid, nr, addr));
	grant();
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(b.ret, want);
	return 0;
}

static void release_lock(void)
{
	if (ksync_lock_release(&w.lock))
		abort();
}

static void set_ev0(void)
{
	ksync_event_set(&w.ev[0]);
}

static void set_ev1(void)
{
	ksync_event_set(&w.ev[1]);
}

static void release_permit(void)
{
	if (ksync_sem_release(&w.sem, 1))
		abort();
}

static void reset_events(void)
{
	ksync_event_init(&w.ev[0], 0);
	ksync_event_init(&w.ev[1], 0);
}

static int child_threads(void *arg)
{
	const struct config *c = arg;
	long nr = can_block(c) ? sleeps_in(c) : -1;
	long nr_any = c->refused & R_WAITV || !can_block(c) ? -1 : NR_FUTEX_WAITV;
	unsigned feats = ksync_features();

	/* ksync reports what the kernel refused, with the kernel's error. */
	CHECK_EQ(!!(feats & KSYNC_FEAT_FUTEX2), !(c->refused & (R_WAIT | R_WAKE)));
	CHECK_EQ(!!(feats & KSYNC_FEAT_FUTEX_WAITV), !(c->refused & R_WAITV));
	CHECK(feats & KSYNC_FEAT_FUTEX);	/* refused only on our page */
	if (c->refused & (R_WAIT | R_WAKE))
		CHECK_EQ(ksync_require(KSYNC_FEAT_FUTEX2), -c->err);
	if (c->refused & R_WAITV)
		CHECK_EQ(ksync_require(KSYNC_FEAT_FUTEX_WAITV), -c->err);

	/* Fast paths make no syscall. */
	CHECK_EQ(ksync_lock_try(&w.lock), 0);
	CHECK_EQ(ksync_lock_release(&w.lock), 0);

	if (run_counters(c, count_with_lock, 1))
		return 1;
	CHECK_EQ(ksync_lock_destroy(&w.lock), 0);

	CHECK_EQ(ksync_lock_acquire(&w.lock), 0);
	if (must_block(c, LOCK, nr, &w.lock.word, release_lock, 0))
		return 1;
	if (nr < 0)
		release_lock();
	CHECK_EQ(ksync_lock_destroy(&w.lock), 0);

	reset_events();
	if (must_block(c, EVENT, nr, &w.ev[0].word, set_ev0, 0))
		return 1;
	reset_events();
	if (must_block(c, EVENT_ANY1, nr, &w.ev[0].word, set_ev0, 0))
		return 1;
	reset_events();
	if (must_block(c, EVENT_ANY2, nr_any, NULL, set_ev1, 1))
		return 1;

	/* The semaphore only where a wait can succeed: what it does when
	 * every wait is refused is sem.c's to say. */
	if (can_block(c)) {
		CHECK_EQ(ksync_sem_init(&w.sem, 2, 0, 0), 0);
		if (run_counters(c, count_with_sem, 2))
			return 1;
		CHECK_EQ(ksync_sem_init(&w.sem, 0, 0, 0), 0);
		if (must_block(c, SEM, nr, &w.sem.word, release_permit, 0))
			return 1;
	}
	return 0;
}

static const struct config configs[] = {
	{ "futex_wait refused", R_WAIT, 0 },
	{ "futex_wake refused", R_WAKE, 0 },
	{ "futex_waitv refused", R_WAITV, 0 },
	{ "futex(2) refused", R_CLASSIC, 0 },
	{ "futex2 refused", R_FUTEX2, 0 },
	{ "every futex syscall refused", R_ALL, 0 },
};

static void run_configs(int (*child)(void *), const char *label)
{
	static const int errs[] = { ENOSYS, EPERM };

	for (unsigned i = 0; i < sizeof(configs) / sizeof(configs[0]); i++) {
		for (unsigned e = 0; e < 2; e++) {
			struct config c = configs[i];
			char what[128];

			c.err = errs[e];
			snprintf(what, sizeof(what), "%s: %s with %s", label, c.name,
				 errs[e] == ENOSYS ? "ENOSYS" : "EPERM");
			print_message("%s\n", what);
			run_sandboxed(what, filter(&c), child, &c);
		}
	}
}

static void test_threads_without_futex_syscalls(void **state)
{
	(void)state;
	run_configs(child_threads, "threads");
}

/* ---- classic futex(2) and io_uring on one word -------------------------- */

static int reap(struct io_uring *ring, uint64_t want_ud, int *res)
{
	struct __kernel_timespec ts = { 10, 0 };
	struct io_uring_cqe *cqe;

	CHECK_EQ(io_uring_wait_cqe_timeout(ring, &cqe, &ts), 0);
	CHECK_EQ(cqe->user_data, want_ud);
	*res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return 0;
}

struct raw_waiter {
	pid_t tid;
	int ret;
};

static void *raw_wait_main(void *arg)
{
	struct raw_waiter *rw = arg;

	__atomic_store_n(&rw->tid, gettid(), __ATOMIC_RELEASE);
	rw->ret = ksync_futex_wait(&w.word, 0, KSYNC_FUTEX_MASK_ANY, CLOCK_MONOTONIC, NULL);
	return NULL;
}

static void *raw_wake_main(void *arg)
{
	*(int *)arg = ksync_futex_wake(&w.word, KSYNC_FUTEX_MASK_ANY, 1);
	return NULL;
}

static int uring_and_classic(unsigned flags)
{
	struct raw_waiter rw = { 0 };
	struct io_uring ring;
	pthread_t t;
	int res, woke = -1;

	CHECK_EQ(io_uring_queue_init(8, &ring, flags), 0);
	w.word = 0;

	/* An io_uring FUTEX_WAIT, woken by a thread's futex(2) FUTEX_WAKE. */
	ksync_prep_futex_wait(io_uring_get_sqe(&ring), &w.word, 0, KSYNC_FUTEX_MASK_ANY, 1);
	CHECK_EQ(io_uring_submit(&ring), 1);
	CHECK_EQ(pthread_create(&t, NULL, raw_wake_main, &woke), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(woke, 1);
	if (reap(&ring, 1, &res))
		return 1;
	CHECK_EQ(res, 0);

	/* A thread in futex(2) FUTEX_WAIT_BITSET, woken by FUTEX_WAKE SQE. */
	CHECK_EQ(pthread_create(&t, NULL, raw_wait_main, &rw), 0);
	CHECK_SOON(__atomic_load_n(&rw.tid, __ATOMIC_ACQUIRE) &&
		   blocked_in(rw.tid, SYS_futex, &w.word));
	ksync_prep_futex_wake(io_uring_get_sqe(&ring), &w.word, 1, KSYNC_FUTEX_MASK_ANY, 2);
	CHECK_EQ(io_uring_submit(&ring), 1);
	if (reap(&ring, 2, &res))
		return 1;
	CHECK_EQ(res, 1);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(rw.ret, 0);
	io_uring_queue_exit(&ring);
	return 0;
}

static void mark_done(struct ksync_op *op)
{
	*(int *)op->data = 1;
}

struct loop_run {
	struct ksync_loop *loop;
	int *done;
	int stop;
};

/* A thread and a loop task hand one lock back and forth. */
static int lock_thread_and_task(unsigned flags)
{
	struct ksync_loop loop;
	struct ksync_op op;
	struct blocked b = { .what = LOCK };
	pthread_t t;
	int64_t end;
	int done = 0;

	CHECK_EQ(ksync_loop_init(&loop, 8, flags), 0);

	/* Thread holds, task waits (io_uring), thread's release wakes it. */
	CHECK_EQ(ksync_lock_acquire(&w.lock), 0);
	ksync_op_lock(&op, &w.lock, 7);
	op.data = &done;
	CHECK_EQ(ksync_loop_start(&loop, &op, mark_done), KSYNC_OP_PENDING);
	CHECK_EQ(ksync_loop_run_once(&loop, 0), 0);
	CHECK(ksync_op_pending(&op));
	CHECK_EQ(ksync_lock_release(&w.lock), 0);
	end = ksync_clock_ns(CLOCK_MONOTONIC) + 10000000000LL;
	while (!done && ksync_clock_ns(CLOCK_MONOTONIC) < end)
		CHECK(ksync_loop_run_once(&loop, 1) >= 0);
	CHECK(done);
	CHECK_EQ(op.result, 0);

	/* Task holds, thread waits in futex(2), task's release wakes it. */
	CHECK_EQ(pthread_create(&t, NULL, block_main, &b), 0);
	CHECK_SOON(__atomic_load_n(&b.tid, __ATOMIC_ACQUIRE) &&
		   blocked_in(b.tid, SYS_futex, &w.lock.word));
	CHECK_EQ(ksync_lock_release_task(&w.lock, 7), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(b.ret, 0);
	CHECK_EQ(ksync_lock_destroy(&w.lock), 0);
	ksync_loop_exit(&loop);
	return 0;
}

static int child_pairing(void *arg)
{
	static const unsigned setups[] = {
		0, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	};
	int r;

	(void)arg;
	r = ksync_require(KSYNC_FEAT_FUTEX | KSYNC_FEAT_URING_FUTEX);
	if (r) {
		printf("SKIP: needs io_uring futex ops: %s\n", strerror(-r));
		fflush(stdout);
		return CHILD_SKIP;
	}
	CHECK_EQ(ksync_require(KSYNC_FEAT_FUTEX2), -ENOSYS);
	for (unsigned i = 0; i < 2; i++)
		if (uring_and_classic(setups[i]) || lock_thread_and_task(setups[i]))
			return 1;
	return 0;
}

static void test_classic_futex_and_io_uring_wake_each_other(void **state)
{
	struct config c = { "futex2 refused", R_FUTEX2, ENOSYS };

	(void)state;
	run_sandboxed("classic futex(2) paired with io_uring", filter(&c), child_pairing, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_without_futex_syscalls),
		cmocka_unit_test(test_classic_futex_and_io_uring_wake_each_other),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
