/* SPDX-License-Identifier: MIT */
/*
 * Missing kernel features give clear errors, never a crash or a hang.
 *
 * Each case runs in a forked child that installs a seccomp filter making
 * the futex2 syscalls fail with ENOSYS (as on a kernel older than 6.7)
 * and/or io_uring_setup fail with EPERM (as with kernel.io_uring_disabled),
 * and only then touches ksync, so the library's once-per-process feature
 * probe sees the filtered kernel. For that reason the parent never calls
 * ksync: a probe it ran would be inherited by every child.
 *
 * A child reports through its exit status (0 = every check passed); it
 * prints the failed check on stderr. The parent asserts on the status.
 */
#include "harness.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/wait.h>

/*
 * Syscall numbers from 424 on are the same on every architecture, so the
 * filter needs no per-architecture table.
 */
#define NR_IO_URING_SETUP	425
#define NR_FUTEX_WAITV		449
#define NR_FUTEX_WAKE		454
#define NR_FUTEX_WAIT		455

enum {
	BLOCK_FUTEX2 = 1 << 0,	/* futex_wait, futex_wake, futex_waitv: ENOSYS */
	BLOCK_URING = 1 << 1,	/* io_uring_setup: EPERM */
};

#define ALL_FEATS (KSYNC_FEAT_FUTEX2 | KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX)

/* ---- child-side checks -------------------------------------------------- */

/* cmocka's asserts longjmp into the parent's runner state; a child uses
 * these, which print the failed check and make the child exit 1. */
#define CHECK(cond) do {							\
	if (!(cond)) {								\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		return 1;							\
	}									\
} while (0)

#define CHECK_EQ(expr, want) do {						\
	long _got = (long)(expr), _want = (long)(want);				\
	if (_got != _want) {							\
		fprintf(stderr, "%s:%d: %s = %ld (%s), want %ld\n", __FILE__, __LINE__, \
			#expr, _got, _got < 0 ? strerror((int)-_got) : "", _want); \
		return 1;							\
	}									\
} while (0)

static int install_filter(unsigned block)
{
	struct sock_filter prog[16];
	struct sock_fprog fprog;
	unsigned n = 0;

#define STMT(code, k)		(prog[n++] = (struct sock_filter)BPF_STMT((code), (k)))
#define JEQ_RET(nr, ret) do {							\
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1); \
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, (ret));	\
} while (0)

	STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	if (block & BLOCK_FUTEX2) {
		JEQ_RET(NR_FUTEX_WAITV, SECCOMP_RET_ERRNO | ENOSYS);
		JEQ_RET(NR_FUTEX_WAKE, SECCOMP_RET_ERRNO | ENOSYS);
		JEQ_RET(NR_FUTEX_WAIT, SECCOMP_RET_ERRNO | ENOSYS);
	}
	if (block & BLOCK_URING)
		JEQ_RET(NR_IO_URING_SETUP, SECCOMP_RET_ERRNO | EPERM);
	STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
#undef STMT
#undef JEQ_RET

	fprog.len = (unsigned short)n;
	fprog.filter = prog;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0)) {
		fprintf(stderr, "seccomp: %m\n");
		return -1;
	}
	return 0;
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

static int is_one_of(int r, int a, int b, int c)
{
	return r == a || r == b || r == c;
}

/* Control: the harness itself, with a filter that blocks nothing of ours. */
static int child_unfiltered(void)
{
	struct ksync_loop loop;

	CHECK_EQ(ksync_features() & ALL_FEATS, ALL_FEATS);
	CHECK_EQ(ksync_require(ALL_FEATS), 0);
	CHECK_EQ(ksync_loop_init(&loop, 8, 0), 0);
	ksync_loop_exit(&loop);
	return 0;
}

/* Neither futex2 nor io_uring: what a 6.1 kernel with io_uring off looks like. */
static int child_no_futex2_no_uring(void)
{
	struct ksync_lock lock = KSYNC_LOCK_INIT;
	struct holder h = { .lock = &lock };
	struct ksync_event ev = KSYNC_EVENT_INIT;
	struct timespec deadline;
	struct ksync_loop loop;
	struct io_uring ring;
	struct ksync_op op;
	pthread_t t;
	int r;

	CHECK_EQ(ksync_features() & ALL_FEATS, 0);
	CHECK_EQ(ksync_require(KSYNC_FEAT_FUTEX2), -ENOSYS);
	CHECK_EQ(ksync_require(KSYNC_FEAT_URING), -EPERM);
	CHECK_EQ(ksync_require(KSYNC_FEAT_URING_FUTEX), -EPERM);

	/* Fast paths make no syscall and keep working. */
	CHECK_EQ(ksync_lock_acquire(&lock), 0);
	CHECK_EQ(ksync_lock_release(&lock), 0);
	CHECK_EQ(ksync_lock_try(&lock), 0);
	CHECK_EQ(ksync_lock_release(&lock), 0);

	/* A thread that must wait gets -ENOSYS at once (the 5 s deadline is
	 * only there so that a wrong fallback cannot hang: it would give
	 * -ETIMEDOUT). */
	CHECK_EQ(holder_start(&h, &t), 0);
	CHECK_EQ(ksync_lock_acquire_until(&lock, CLOCK_MONOTONIC,
					  ksync_deadline_after(&deadline, CLOCK_MONOTONIC,
							       5000000000LL)), -ENOSYS);

	/* Both features are missing; either error names a real cause. */
	r = ksync_loop_init(&loop, 8, 0);
	fprintf(stderr, "info: ksync_loop_init without futex2 and io_uring: %d (%s)\n",
		r, strerror(-r));
	CHECK(r == -ENOSYS || r == -EPERM);

	/* ksync_op_start must fail before it touches the ring: give it a
	 * zeroed one, which would crash if used. */
	memset(&ring, 0, sizeof(ring));
	ksync_op_lock(&op, &lock, 1);
	r = ksync_op_start(&op, &ring);
	fprintf(stderr, "info: ksync_op_start without futex2 and io_uring: %d (%s)\n",
		r, strerror(-r));
	CHECK(is_one_of(r, -ENOSYS, -EPERM, -EOPNOTSUPP));
	CHECK(!ksync_op_pending(&op));

	/* The lock survives all of that: its holder releases it (the wake it
	 * attempts fails quietly) and it can be taken again. */
	CHECK_EQ(holder_finish(&h, t), 0);
	CHECK_EQ(ksync_lock_try(&lock), 0);
	CHECK_EQ(ksync_lock_release(&lock), 0);
	CHECK_EQ(ksync_lock_destroy(&lock), 0);

	/* An event that must be waited for: -ENOSYS, not a hang. */
	CHECK_EQ(ksync_event_try(&ev), -EAGAIN);
	CHECK_EQ(ksync_event_wait_until(&ev, CLOCK_MONOTONIC,
					ksync_deadline_after(&deadline, CLOCK_MONOTONIC,
							     5000000000LL)), -ENOSYS);
	CHECK_EQ(ksync_event_set(&ev), 1);	/* set, though nobody could be woken */
	CHECK(ksync_event_is_set(&ev));
	CHECK_EQ(ksync_event_wait(&ev), 0);
	return 0;
}

/* futex2 works, io_uring is forbidden (kernel.io_uring_disabled = 2). */
static int child_no_uring(void)
{
	struct ksync_lock lock = KSYNC_LOCK_INIT;
	struct holder h = { .lock = &lock };
	struct timespec deadline;
	struct ksync_loop loop;
	struct io_uring ring;
	struct ksync_op op;
	pthread_t t;

	CHECK_EQ(ksync_features() & ALL_FEATS, KSYNC_FEAT_FUTEX2);
	CHECK_EQ(ksync_require(KSYNC_FEAT_FUTEX2), 0);
	CHECK_EQ(ksync_require(KSYNC_FEAT_URING), -EPERM);
	CHECK_EQ(ksync_require(KSYNC_FEAT_URING_FUTEX), -EPERM);
	CHECK_EQ(ksync_loop_init(&loop, 8, 0), -EPERM);

	CHECK_EQ(holder_start(&h, &t), 0);
	memset(&ring, 0, sizeof(ring));
	ksync_op_lock(&op, &lock, 1);
	CHECK_EQ(ksync_op_start(&op, &ring), -EPERM);
	CHECK(!ksync_op_pending(&op));

	/* Threads still block and are woken normally. */
	CHECK_EQ(holder_finish(&h, t), 0);
	CHECK_EQ(ksync_lock_acquire_until(&lock, CLOCK_MONOTONIC,
					  ksync_deadline_after(&deadline, CLOCK_MONOTONIC,
							       5000000000LL)), 0);
	CHECK_EQ(ksync_lock_release(&lock), 0);
	CHECK_EQ(ksync_lock_destroy(&lock), 0);
	return 0;
}

/* io_uring works but the futex2 syscalls do not (cannot happen on a real
 * kernel, both came in 6.7, but a sandbox can do it). */
static int child_no_futex2(void)
{
	struct ksync_lock lock = KSYNC_LOCK_INIT;
	struct holder h = { .lock = &lock };
	struct timespec deadline;
	struct ksync_loop loop;
	struct io_uring ring;
	struct ksync_op op;
	pthread_t t;
	int r;

	CHECK_EQ(ksync_features() & ALL_FEATS, KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX);
	CHECK_EQ(ksync_require(KSYNC_FEAT_FUTEX2), -ENOSYS);
	CHECK_EQ(ksync_require(KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX), 0);
	/* A loop's ops are woken by futex_wake syscalls from threads. */
	CHECK_EQ(ksync_loop_init(&loop, 8, 0), -ENOSYS);

	CHECK_EQ(holder_start(&h, &t), 0);
	CHECK_EQ(ksync_lock_acquire_until(&lock, CLOCK_MONOTONIC,
					  ksync_deadline_after(&deadline, CLOCK_MONOTONIC,
							       5000000000LL)), -ENOSYS);
	memset(&ring, 0, sizeof(ring));
	ksync_op_lock(&op, &lock, 1);
	r = ksync_op_start(&op, &ring);
	fprintf(stderr, "info: ksync_op_start without futex2: %d (%s)\n", r, strerror(-r));
	CHECK(r == -ENOSYS || r == -EOPNOTSUPP);
	CHECK(!ksync_op_pending(&op));

	CHECK_EQ(holder_finish(&h, t), 0);
	CHECK_EQ(ksync_lock_try(&lock), 0);
	CHECK_EQ(ksync_lock_release(&lock), 0);
	CHECK_EQ(ksync_lock_destroy(&lock), 0);
	return 0;
}

/* ---- parent side -------------------------------------------------------- */

static void run_child(const char *what, unsigned block, int (*fn)(void))
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* A hang is a failure too: SIGALRM kills the child. */
		alarm(20);
		if (install_filter(block))
			_exit(2);
		_exit(fn());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("%s: child killed by signal %d (%s)", what, WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status))
		fail_msg("%s: child exited with %d (see its stderr)", what, WEXITSTATUS(status));
}

static void test_unfiltered(void **state)
{
	(void)state;
	run_child("no filter", 0, child_unfiltered);
}

static void test_no_futex2_no_uring(void **state)
{
	(void)state;
	run_child("no futex2, no io_uring", BLOCK_FUTEX2 | BLOCK_URING, child_no_futex2_no_uring);
}

static void test_no_uring(void **state)
{
	(void)state;
	run_child("no io_uring", BLOCK_URING, child_no_uring);
}

static void test_no_futex2(void **state)
{
	(void)state;
	run_child("no futex2", BLOCK_FUTEX2, child_no_futex2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unfiltered),
		cmocka_unit_test(test_no_futex2_no_uring),
		cmocka_unit_test(test_no_uring),
		cmocka_unit_test(test_no_futex2),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
