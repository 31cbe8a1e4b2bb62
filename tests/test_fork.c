/* SPDX-License-Identifier: MIT */
/*
 * A forked child is a new process, however it was made: fork() (which runs
 * atfork handlers), _Fork() and a raw clone/fork syscall (which do not).
 *
 * - A lock the child takes records the child's thread id, not the id of the
 *   parent thread that forked (ksync caches thread ids per thread).
 * - The child's first io_uring wait, armed while it is single-threaded, is
 *   not lost when it creates its first thread (ksync settles the private
 *   futex hash once per process, and a child is a new process).
 * - Without MADV_WIPEONFORK (kernels before 4.14), fork() children are
 *   still right (an atfork handler does the work).
 *
 * Each child reports through its exit status; see tests/sandbox.h.
 */
#include "sandbox.h"

#include <sys/mman.h>

enum how { FORK, UNDERSCORE_FORK, RAW_CLONE };

static const char *const how_name[] = { "fork()", "_Fork()", "raw clone syscall" };

static pid_t fork_how(enum how how)
{
	fflush(NULL);
	switch (how) {
	case FORK:
		return fork();
	case UNDERSCORE_FORK:
		return _Fork();
	case RAW_CLONE:
		/* What a runtime with its own process model does: no glibc
		 * bookkeeping at all, no atfork handler. */
		return (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
	}
	return -1;
}

/* Run @fn in a child made by @how; its exit status is the verdict. */
static void run_forked(enum how how, int (*fn)(void), const char *what)
{
	int status;
	pid_t pid = fork_how(how);

	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(30);
		_exit(fn());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("%s (%s): child killed by signal %d", what, how_name[how],
			 WTERMSIG(status));
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status))
		fail_msg("%s (%s): child exited with %d (see its stderr)", what, how_name[how],
			 WEXITSTATUS(status));
}

/* ---- the owner of a lock taken in a child ------------------------------- */

static struct ksync_lock lock = KSYNC_LOCK_INIT;

static int take_and_check(void)
{
	pid_t me = (pid_t)syscall(SYS_gettid);

	CHECK_EQ(ksync_lock_acquire(&lock), 0);
	CHECK_EQ(lock.owner_tid, me);
	CHECK_EQ(ksync_lock_release(&lock), 0);
	CHECK_EQ(ksync_lock_try(&lock), 0);
	CHECK_EQ(lock.owner_tid, me);
	CHECK_EQ(ksync_lock_release(&lock), 0);
	return 0;
}

static void *thread_take_and_check(void *arg)
{
	*(int *)arg = take_and_check();
	return NULL;
}

static int child_owner(void)
{
	pthread_t t;
	int r = -1;

	if (take_and_check())
		return 1;
	/* And its threads are themselves too. */
	CHECK_EQ(pthread_create(&t, NULL, thread_take_and_check, &r), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(r, 0);
	return take_and_check();
}

/* The parent's thread has used ksync (its id is cached) before forking. */
static void owner_after(enum how how)
{
	assert_int_equal(take_and_check(), 0);
	run_forked(how, child_owner, "lock owner in the child");
	assert_int_equal(take_and_check(), 0);	/* the parent is unchanged */
}

static void test_owner_after_fork(void **state)
{
	(void)state;
	owner_after(FORK);
}

static void test_owner_after_underscore_fork(void **state)
{
	(void)state;
	owner_after(UNDERSCORE_FORK);
}

static void test_owner_after_raw_clone(void **state)
{
	(void)state;
	owner_after(RAW_CLONE);
}

/* The same when the forking thread is not the main thread. */
struct forker {
	enum how how;
	int status;
};

static void *fork_from_thread(void *arg)
{
	struct forker *f = arg;
	pid_t pid;

	if (take_and_check())
		return NULL;
	pid = fork_how(f->how);
	if (pid == 0)
		_exit(child_owner());
	if (pid > 0 && waitpid(pid, &f->status, 0) != pid)
		f->status = -1;
	return NULL;
}

static void test_owner_after_fork_from_a_thread(void **state)
{
	(void)state;
	for (enum how how = FORK; how <= RAW_CLONE; how++) {
		struct forker f = { .how = how, .status = -1 };

		join(spawn(fork_from_thread, &f));
		if (!WIFEXITED(f.status) || WEXITSTATUS(f.status))
			fail_msg("lock owner in a child forked by a thread (%s): status %#x",
				 how_name[how], f.status);
	}
}

/* ---- the child's first ring wait ---------------------------------------- */

static int releaser_ret = -1;

static void *release_token_2(void *arg)
{
	(void)arg;
	releaser_ret = ksync_lock_release_task(&lock, 2);
	return NULL;
}

static void mark_done(struct ksync_op *op)
{
	*(int *)op->data = 1;
}

/*
 * In the child: a loop task waits for a lock held by task token 2; the
 * wait is armed while the child has one thread. Then the child's first
 * thread releases the lock. If ksync believed the futex hash already
 * settled (the parent's state), the wake would miss the wait (6.16+).
 */
static int child_first_ring_wait(void)
{
	struct ksync_loop loop;
	struct ksync_op op;
	pthread_t t;
	int64_t end;
	int done = 0;

	CHECK_EQ(ksync_loop_init(&loop, 8, 0), 0);
	CHECK_EQ(ksync_lock_try_task(&lock, 2), 0);
	ksync_op_lock(&op, &lock, 1);
	op.data = &done;
	CHECK_EQ(ksync_loop_start(&loop, &op, mark_done), KSYNC_OP_PENDING);
	CHECK_EQ(ksync_loop_run_once(&loop, 0), 0);
	CHECK(ksync_op_pending(&op));

	CHECK_EQ(pthread_create(&t, NULL, release_token_2, NULL), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(releaser_ret, 0);

	end = ksync_clock_ns(CLOCK_MONOTONIC) + 5000000000LL;
	while (!done && ksync_clock_ns(CLOCK_MONOTONIC) < end) {
		CHECK(ksync_loop_run_once(&loop, 0) >= 0);
		if (!done)
			sleep_ns(1000000);
	}
	if (!done) {
		fprintf(stderr, "child: the lock op never completed: wakeup lost\n");
		return 1;
	}
	CHECK_EQ(op.result, 0);
	CHECK_EQ(ksync_lock_release_task(&lock, 1), 0);
	ksync_loop_exit(&loop);
	return 0;
}

static void *nothing(void *arg)
{
	return arg;
}

static void first_ring_wait_after(enum how how)
{
	/* The parent has settled its own hash and has had a thread. */
	require_async();
	join(spawn(nothing, NULL));
	run_forked(how, child_first_ring_wait, "first ring wait in the child");
}

static void test_first_ring_wait_after_fork(void **state)
{
	(void)state;
	first_ring_wait_after(FORK);
}

static void test_first_ring_wait_after_underscore_fork(void **state)
{
	(void)state;
	first_ring_wait_after(UNDERSCORE_FORK);
}

static void test_first_ring_wait_after_raw_clone(void **state)
{
	(void)state;
	first_ring_wait_after(RAW_CLONE);
}

/* ---- without MADV_WIPEONFORK -------------------------------------------- */

static int child_without_wipeonfork(void *arg)
{
	(void)arg;
	CHECK_EQ(madvise(&lock, 4096, MADV_WIPEONFORK), -1);	/* the filter works */
	if (take_and_check())
		return 1;
	fflush(NULL);
	{
		pid_t pid = fork();
		int status;

		if (pid == 0)
			_exit(child_owner());
		CHECK(pid > 0);
		CHECK_EQ(waitpid(pid, &status, 0), pid);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	return 0;
}

static void test_fork_without_wipeonfork(void **state)
{
	struct sandbox sb;

	(void)state;
	sandbox_init(&sb);
	sandbox_refuse_arg(&sb, SYS_madvise, 2, MADV_WIPEONFORK, EINVAL);
	run_sandboxed("fork() on a kernel without MADV_WIPEONFORK", &sb,
		      child_without_wipeonfork, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* First: ksync makes its per-process region at its first use,
		 * which must happen in the child, under the filter. */
		cmocka_unit_test(test_fork_without_wipeonfork),
		cmocka_unit_test(test_owner_after_fork),
		cmocka_unit_test(test_owner_after_underscore_fork),
		cmocka_unit_test(test_owner_after_raw_clone),
		cmocka_unit_test(test_owner_after_fork_from_a_thread),
		cmocka_unit_test(test_first_ring_wait_after_fork),
		cmocka_unit_test(test_first_ring_wait_after_underscore_fork),
		cmocka_unit_test(test_first_ring_wait_after_raw_clone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
