/* SPDX-License-Identifier: MIT */
/*
 * Feature probing: what ksync reports on kernels that lack (ENOSYS) or
 * refuse (EPERM) what it uses, and that only permanent answers are cached.
 *
 * Each case runs in a forked child under a seccomp filter (tests/sandbox.h)
 * that plays the missing kernel: futex2 syscalls failing with ENOSYS (older
 * than 6.7), io_uring_setup failing with EPERM (kernel.io_uring_disabled)
 * or ENOSYS. The child touches ksync only after the filter is in place, so
 * the library's once-per-process probes see the filtered kernel; for the
 * same reason the parent never calls ksync (a probe it ran would be
 * inherited by every child).
 */
#include "sandbox.h"

#include <fcntl.h>
#include <sys/resource.h>

#include "ksync/poller.h"

#define ALL_FEATS (KSYNC_FEAT_FUTEX | KSYNC_FEAT_FUTEX2 | KSYNC_FEAT_FUTEX_WAITV | \
		   KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX)
#define ASYNC_FEATS (KSYNC_FEAT_FUTEX | KSYNC_FEAT_URING_FUTEX)

enum {
	BLOCK_FUTEX2 = 1 << 0,		/* futex_wait, futex_wake, futex_waitv: ENOSYS */
	BLOCK_URING_EPERM = 1 << 1,	/* io_uring_setup: EPERM */
	BLOCK_URING_ENOSYS = 1 << 2,	/* io_uring_setup: ENOSYS */
	BLOCK_URING_ENOMEM = 1 << 3,	/* io_uring_setup: ENOMEM (transient) */
};

static struct sandbox *filter(unsigned block)
{
	static struct sandbox sb;

	sandbox_init(&sb);
	if (block & BLOCK_FUTEX2) {
		sandbox_refuse(&sb, NR_FUTEX_WAITV, ENOSYS);
		sandbox_refuse(&sb, NR_FUTEX_WAKE, ENOSYS);
		sandbox_refuse(&sb, NR_FUTEX_WAIT, ENOSYS);
	}
	if (block & BLOCK_URING_EPERM)
		sandbox_refuse(&sb, NR_IO_URING_SETUP, EPERM);
	if (block & BLOCK_URING_ENOSYS)
		sandbox_refuse(&sb, NR_IO_URING_SETUP, ENOSYS);
	if (block & BLOCK_URING_ENOMEM)
		sandbox_refuse(&sb, NR_IO_URING_SETUP, ENOMEM);
	return &sb;
}

/* ---- helpers inside a child --------------------------------------------- */

struct waiter {
	struct ksync_lock *lock;
	pid_t tid;
	int done;
	int ret;
};

static void *lock_waiter(void *arg)
{
	struct waiter *w = arg;
	int r;

	__atomic_store_n(&w->tid, gettid(), __ATOMIC_RELEASE);
	r = ksync_lock_acquire(w->lock);
	if (r == 0)
		r = ksync_lock_release(w->lock);
	w->ret = r;
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int holder_start(struct holder *h, pthread_t *t)
{
	if (pthread_create(t, NULL, holder_main, h))
		return -1;
	while (!__atomic_load_n(&h->held, __ATOMIC_ACQUIRE))
		sleep_ns(100000);
	return h->ret;
}

static int holder_finish(struct holder *h, pthread_t t)
{
	__atomic_store_n(&h->release, 1, __ATOMIC_RELEASE);
	if (pthread_join(t, NULL))
		return -1;
	return h->ret;
}

/* A thread must wait for a lock: it sleeps in @nr and gets the lock once
 * the holder lets go. */
static int lock_waits_in(long nr)
{
	struct ksync_lock lock = KSYNC_LOCK_INIT;
	struct holder h = { .lock = &lock };
	struct waiter w = { .lock = &lock };
	pthread_t ht, wt;

	CHECK_EQ(holder_start(&h, &ht), 0);
	CHECK_EQ(pthread_create(&wt, NULL, lock_waiter, &w), 0);
	CHECK_SOON(__atomic_load_n(&w.tid, __ATOMIC_ACQUIRE) &&
		   blocked_in(w.tid, nr, &lock.word));
	CHECK_EQ(holder_finish(&h, ht), 0);
	CHECK_EQ(pthread_join(wt, NULL), 0);
	CHECK_EQ(w.ret, 0);
	CHECK_EQ(ksync_lock_destroy(&lock), 0);
	return 0;
}

/* ksync_op_start must fail before it touches the ring: give it a zeroed
 * one, which would crash if used. */
static int op_start_fails(int want)
{
	struct ksync_lock lock = KSYNC_LOCK_INIT;
	struct io_uring ring;
	struct ksync_op op;

	CHECK_EQ(ksync_lock_try_task(&lock, 2), 0);
	memset(&ring, 0, sizeof(ring));
	ksync_op_lock(&op, &lock, 1);
	CHECK_EQ(ksync_op_start(&op, &ring), want);
	CHECK(!ksync_op_pending(&op));
	CHECK_EQ(ksync_lock_release_task(&lock, 2), 0);
	CHECK_EQ(ksync_lock_destroy(&lock), 0);
	return 0;
}

/* ---- the cases ---------------------------------------------------------- */

/* Control: everything is there on the machines this runs on. */
static int child_unfiltered(void *arg)
{
	struct ksync_loop loop;

	(void)arg;
	CHECK_EQ(ksync_features() & ALL_FEATS, ALL_FEATS);
	CHECK_EQ(ksync_require(ALL_FEATS), 0);
	CHECK_EQ(ksync_require(0), 0);
	CHECK_EQ(ksync_require(1u << 30), -EINVAL);
	CHECK_EQ(ksync_loop_init(&loop, 8, 0), 0);
	ksync_loop_exit(&loop);
	return lock_waits_in(NR_FUTEX_WAIT);
}

/* Neither futex2 nor io_uring: a 6.1 kernel with io_uring disabled. Threads
 * still block (with futex(2)); async ops say why they cannot. */
static int child_no_futex2_no_uring(void *arg)
{
	struct ksync_event a = KSYNC_EVENT_INIT, b = KSYNC_EVENT_INIT;
	struct ksync_event *both[] = { &a, &b };
	struct timespec deadline;
	struct ksync_loop loop;

	(void)arg;
	CHECK_EQ(ksync_features() & ALL_FEATS, KSYNC_FEAT_FUTEX);
	CHECK_EQ(ksync_require(KSYNC_FEAT_FUTEX), 0);
	CHECK_EQ(ksync_require(KSYNC_FEAT_FUTEX2), -ENOSYS);
	CHECK_EQ(ksync_require(KSYNC_FEAT_FUTEX_WAITV), -ENOSYS);
	CHECK_EQ(ksync_require(KSYNC_FEAT_URING), -EPERM);
	CHECK_EQ(ksync_require(KSYNC_FEAT_URING_FUTEX), -EPERM);
	CHECK_EQ(ksync_loop_init(&loop, 8, 0), -EPERM);
	if (op_start_fails(-EPERM))
		return 1;

	/* The thread world works: it waits in futex(2), not futex_wait. */
	if (lock_waits_in(SYS_futex))
		return 1;

	/* Waiting on two events needs futex_waitv: a clear error, at once
	 * (the deadline is far: a wrong fallback would time out instead). */
	CHECK_EQ(ksync_deadline_after(&deadline, CLOCK_MONOTONIC, 5000000000LL), 0);
	CHECK_EQ(ksync_event_wait_any(both, 2, CLOCK_MONOTONIC, &deadline), -ENOSYS);
	/* ... unless one is set already, or there is only one. */
	CHECK_EQ(ksync_event_set(&b), 1);
	CHECK_EQ(ksync_event_wait_any(both, 2, CLOCK_MONOTONIC, &deadline), 1);
	CHECK_EQ(ksync_event_wait_any(both + 1, 1, CLOCK_MONOTONIC, &deadline), 0);
	return 0;
}

/* futex2 works, io_uring is forbidden (kernel.io_uring_disabled = 2). */
static int child_no_uring(void *arg)
{
	struct ksync_loop loop;
	struct ksync_poller poller;

	(void)arg;
	CHECK_EQ(ksync_features() & ALL_FEATS,
		 KSYNC_FEAT_FUTEX | KSYNC_FEAT_FUTEX2 | KSYNC_FEAT_FUTEX_WAITV);
	CHECK_EQ(ksync_require(KSYNC_FEAT_FUTEX2), 0);
	CHECK_EQ(ksync_require(KSYNC_FEAT_URING), -EPERM);
	CHECK_EQ(ksync_require(KSYNC_FEAT_URING_FUTEX), -EPERM);
	CHECK_EQ(ksync_loop_init(&loop, 8, 0), -EPERM);
	CHECK_EQ(ksync_poller_init(&poller, 8), -EPERM);
	ksync_poller_exit(&poller);
	if (op_start_fails(-EPERM))
		return 1;
	return lock_waits_in(NR_FUTEX_WAIT);
}

/* A kernel built without io_uring: -ENOSYS, not "disabled". */
static int child_uring_enosys(void *arg)
{
	struct ksync_loop loop;

	(void)arg;
	CHECK_EQ(ksync_features() & (KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX), 0);
	CHECK_EQ(ksync_require(KSYNC_FEAT_URING), -ENOSYS);
	CHECK_EQ(ksync_require(ASYNC_FEATS), -ENOSYS);
	CHECK_EQ(ksync_loop_init(&loop, 8, 0), -ENOSYS);
	if (op_start_fails(-ENOSYS))
		return 1;
	return lock_waits_in(NR_FUTEX_WAIT);
}

/* io_uring works but the futex2 syscalls do not (a sandbox can do that):
 * threads fall back to futex(2), and async ops still work, since futex(2)
 * wakes io_uring waits (tests/test_futex_fallback.c pairs them). */
static int child_no_futex2(void *arg)
{
	struct ksync_loop loop;

	(void)arg;
	CHECK_EQ(ksync_features() & ALL_FEATS,
		 KSYNC_FEAT_FUTEX | KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX);
	CHECK_EQ(ksync_require(KSYNC_FEAT_FUTEX2), -ENOSYS);
	CHECK_EQ(ksync_require(ASYNC_FEATS), 0);
	CHECK_EQ(ksync_loop_init(&loop, 8, 0), 0);
	ksync_loop_exit(&loop);
	return lock_waits_in(SYS_futex);
}

/* A transient setup failure is reported as such (not as "disabled"). */
static int child_uring_enomem(void *arg)
{
	(void)arg;
	CHECK_EQ(ksync_require(KSYNC_FEAT_URING), -ENOMEM);
	CHECK_EQ(ksync_require(ASYNC_FEATS), -ENOMEM);
	CHECK_EQ(ksync_features() & KSYNC_FEAT_URING, 0);
	return 0;
}

/*
 * ... and not cached: out of file descriptors (a real EMFILE, no filter),
 * io_uring is unavailable; with descriptors free again, it is back.
 */
static int child_uring_emfile(void *arg)
{
	struct rlimit lim = { 64, 64 };
	struct ksync_loop loop;
	int fds[64], n = 0;

	(void)arg;
	CHECK_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
	while (n < 64 && (fds[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		n++;
	CHECK(n < 64 && errno == EMFILE);
	CHECK_EQ(ksync_require(KSYNC_FEAT_URING), -EMFILE);
	CHECK_EQ(ksync_features() & KSYNC_FEAT_URING, 0);
	CHECK_EQ(ksync_loop_init(&loop, 8, 0), -EMFILE);

	for (int i = 0; i < 8; i++)
		close(fds[--n]);
	CHECK_EQ(ksync_require(ASYNC_FEATS), 0);
	CHECK_EQ(ksync_features() & ASYNC_FEATS, ASYNC_FEATS);
	CHECK_EQ(ksync_loop_init(&loop, 8, 0), 0);
	ksync_loop_exit(&loop);
	while (n)
		close(fds[--n]);
	return 0;
}

/* ---- parent side -------------------------------------------------------- */

static void test_unfiltered(void **state)
{
	(void)state;
	run_sandboxed("no filter", NULL, child_unfiltered, NULL);
}

static void test_no_futex2_no_uring(void **state)
{
	(void)state;
	run_sandboxed("no futex2, no io_uring", filter(BLOCK_FUTEX2 | BLOCK_URING_EPERM),
		      child_no_futex2_no_uring, NULL);
}

static void test_no_uring(void **state)
{
	(void)state;
	run_sandboxed("io_uring disabled", filter(BLOCK_URING_EPERM), child_no_uring, NULL);
}

static void test_uring_enosys(void **state)
{
	(void)state;
	run_sandboxed("no io_uring", filter(BLOCK_URING_ENOSYS), child_uring_enosys, NULL);
}

static void test_no_futex2(void **state)
{
	(void)state;
	run_sandboxed("no futex2", filter(BLOCK_FUTEX2), child_no_futex2, NULL);
}

static void test_transient_uring_error_reported(void **state)
{
	(void)state;
	run_sandboxed("io_uring_setup ENOMEM", filter(BLOCK_URING_ENOMEM), child_uring_enomem,
		      NULL);
}

static void test_transient_uring_error_not_cached(void **state)
{
	(void)state;
	run_sandboxed("out of descriptors", NULL, child_uring_emfile, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unfiltered),
		cmocka_unit_test(test_no_futex2_no_uring),
		cmocka_unit_test(test_no_uring),
		cmocka_unit_test(test_uring_enosys),
		cmocka_unit_test(test_no_futex2),
		cmocka_unit_test(test_transient_uring_error_reported),
		cmocka_unit_test(test_transient_uring_error_not_cached),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
