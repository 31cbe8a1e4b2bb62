/* SPDX-License-Identifier: MIT */
/*
 * The kernel layer: futex2 syscalls, io_uring futex SQEs on real rings,
 * feature probing, and regressions that other runtimes hit with io_uring
 * futex waits (late wakeups under DEFER_TASKRUN, stale expected values,
 * the private futex hash pivot).
 */
#include "harness.h"

#include <inttypes.h>
#include <limits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define SYS_FUTEX_WAITV	449
#define SYS_FUTEX_WAIT	455

/* Long enough never to expire in a passing run, short enough not to hang. */
#define WAIT_BOUND_NS	10000000000LL

/* ---- helpers ------------------------------------------------------------ */

/*
 * Is thread @tid asleep inside syscall @nr on @addr? The kernel only reports
 * a syscall in /proc/.../syscall while the thread sleeps (a running thread
 * reads "running"), and a futex waiter sleeps only once it is queued, so
 * this tells us a wake can reach it: no sleep-and-hope.
 */
static int blocked_in(pid_t tid, long nr, const void *addr)
{
	char path[64];
	unsigned long a = 0;
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%ld %lx", &n, &a) != 2)
		n = -1;
	fclose(f);
	return n == nr && a == (uintptr_t)addr;
}

/* A thread blocked in ksync_futex_wait or ksync_futex_waitv. */
struct waiter {
	uint32_t *word;
	uint32_t expected;
	struct ksync_futex_waitv *vec;	/* non-NULL: use futex_waitv */
	unsigned nr;
	pid_t tid;
	int ret;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	struct timespec deadline = in_ns(WAIT_BOUND_NS);

	__atomic_store_n(&w->tid, gettid(), __ATOMIC_RELEASE);
	if (w->vec)
		w->ret = ksync_futex_waitv(w->vec, w->nr, CLOCK_MONOTONIC, &deadline);
	else
		w->ret = ksync_futex_wait(w->word, w->expected, KSYNC_FUTEX_MASK_ANY,
					  CLOCK_MONOTONIC, &deadline);
	return NULL;
}

/* Start @w and return once it sleeps in the kernel. */
static pthread_t start_waiter(struct waiter *w)
{
	pthread_t t = spawn(waiter_main, w);
	long nr = w->vec ? SYS_FUTEX_WAITV : SYS_FUTEX_WAIT;
	const void *addr = w->vec ? (void *)w->vec : (void *)w->word;

	wait_until(__atomic_load_n(&w->tid, __ATOMIC_ACQUIRE) != 0);
	wait_until(blocked_in(w->tid, nr, addr));
	return t;
}

/* A thread that changes a word (optionally) and wakes it. */
struct waker {
	uint32_t *word;
	int set;		/* store @value first */
	uint32_t value;
	int ret;
};

static void *waker_main(void *arg)
{
	struct waker *k = arg;

	if (k->set)
		__atomic_store_n(k->word, k->value, __ATOMIC_RELEASE);
	k->ret = ksync_futex_wake(k->word, KSYNC_FUTEX_MASK_ANY, 1);
	return NULL;
}

static int run_waker(uint32_t *word, int set, uint32_t value)
{
	struct waker k = { .word = word, .set = set, .value = value };

	join(spawn(waker_main, &k));
	return k.ret;
}

static void ring_open(struct io_uring *ring, unsigned flags)
{
	int r = io_uring_queue_init(8, ring, flags);

	if (r)
		fail_msg("io_uring_queue_init(flags %#x): %s", flags, strerror(-r));
}

static struct io_uring_sqe *sqe_get(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	assert_non_null(sqe);
	return sqe;
}

/*
 * Reap one CQE, entering the kernel with GETEVENTS (which a DEFER_TASKRUN
 * ring needs to run the futex wake's task work). Fails after 5 s.
 */
static void cqe_get(struct io_uring *ring, uint64_t *user_data, int *res)
{
	struct __kernel_timespec ts = { 5, 0 };
	struct io_uring_cqe *cqe;
	int r = io_uring_wait_cqe_timeout(ring, &cqe, &ts);

	if (r)
		fail_msg("no CQE within 5 s: %s", strerror(-r));
	*user_data = cqe->user_data;
	*res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
}

/* Nothing may be in the CQ even after the kernel ran pending task work. */
static void assert_no_cqe(struct io_uring *ring)
{
	struct io_uring_cqe *cqe;

	assert_true(io_uring_get_events(ring) >= 0);
	if (io_uring_peek_cqe(ring, &cqe) == 0)
		fail_msg("unexpected CQE user_data %" PRIu64 " res %d",
			 (uint64_t)cqe->user_data, cqe->res);
}

/* ---- futex_wait / futex_wake ------------------------------------------- */

static void test_wait_value_mismatch(void **state)
{
	uint32_t word = 1;
	struct timespec deadline = in_ns(WAIT_BOUND_NS);

	(void)state;
	assert_int_equal(ksync_futex_wait(&word, 0, KSYNC_FUTEX_MASK_ANY,
					  CLOCK_MONOTONIC, &deadline), -EAGAIN);
	assert_int_equal(ksync_futex_wait(&word, 0, KSYNC_FUTEX_MASK_ANY,
					  CLOCK_MONOTONIC, NULL), -EAGAIN);
}

/* Wait 20 ms on @clock: must time out, and not before the deadline. */
static void timeout_on(clockid_t clock)
{
	uint32_t word = 0;
	struct timespec deadline;
	int64_t deadline_ns;

	ksync_deadline_after(&deadline, clock, 20000000);
	deadline_ns = (int64_t)deadline.tv_sec * 1000000000 + deadline.tv_nsec;
	assert_int_equal(ksync_futex_wait(&word, 0, KSYNC_FUTEX_MASK_ANY, clock, &deadline),
			 -ETIMEDOUT);
	/* Returning early would mean the deadline was read on another clock. */
	assert_true(ksync_clock_ns(clock) >= deadline_ns);
}

static void test_wait_timeout_monotonic(void **state)
{
	(void)state;
	timeout_on(CLOCK_MONOTONIC);
}

static void test_wait_timeout_realtime(void **state)
{
	(void)state;
	timeout_on(CLOCK_REALTIME);
}

static void test_wait_deadline_in_past(void **state)
{
	uint32_t word = 0;
	struct timespec zero = { 0, 0 };
	struct timespec before;

	(void)state;
	assert_int_equal(ksync_futex_wait(&word, 0, KSYNC_FUTEX_MASK_ANY,
					  CLOCK_MONOTONIC, &zero), -ETIMEDOUT);
	ksync_deadline_after(&before, CLOCK_REALTIME, 0);
	before.tv_sec -= 1;
	assert_int_equal(ksync_futex_wait(&word, 0, KSYNC_FUTEX_MASK_ANY,
					  CLOCK_REALTIME, &before), -ETIMEDOUT);
}

/*
 * The word always matches, so a wrongly accepted argument would sleep until
 * the (valid, 1 s) deadline and report -ETIMEDOUT instead of -EINVAL.
 */
static void test_wait_einval(void **state)
{
	uint32_t word = 0;
	struct timespec ok = in_ns(1000000000);
	struct timespec ns_too_big = { ok.tv_sec + 1, 1000000000 };
	struct timespec ns_negative = { ok.tv_sec + 1, -1 };

	(void)state;
	assert_int_equal(ksync_futex_wait(&word, 0, KSYNC_FUTEX_MASK_ANY,
					  CLOCK_PROCESS_CPUTIME_ID, &ok), -EINVAL);
	assert_int_equal(ksync_futex_wait(&word, 0, KSYNC_FUTEX_MASK_ANY,
					  CLOCK_MONOTONIC, &ns_too_big), -EINVAL);
	assert_int_equal(ksync_futex_wait(&word, 0, KSYNC_FUTEX_MASK_ANY,
					  CLOCK_MONOTONIC, &ns_negative), -EINVAL);
	/* kernel.h documents mask 0 as -EINVAL too. */
	assert_int_equal(ksync_futex_wait(&word, 0, 0, CLOCK_MONOTONIC, &ok), -EINVAL);
}

static void test_wake_counts(void **state)
{
	uint32_t word = 0;
	struct waiter w[3];
	pthread_t t[3];
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		w[i] = (struct waiter){ .word = &word, .expected = 0 };
		t[i] = start_waiter(&w[i]);
	}
	/* All three are queued: the counts are exact. */
	assert_int_equal(ksync_futex_wake(&word, KSYNC_FUTEX_MASK_ANY, 2), 2);
	assert_int_equal(ksync_futex_wake(&word, KSYNC_FUTEX_MASK_ANY, INT_MAX), 1);
	assert_int_equal(ksync_futex_wake(&word, KSYNC_FUTEX_MASK_ANY, INT_MAX), 0);
	for (i = 0; i < 3; i++) {
		join(t[i]);
		assert_int_equal(w[i].ret, 0);
	}
}

static void test_wake_einval(void **state)
{
	uint32_t word = 0;

	(void)state;
	assert_int_equal(ksync_futex_wake(&word, KSYNC_FUTEX_MASK_ANY, -1), -EINVAL);
	/* Waking nobody is fine. */
	assert_int_equal(ksync_futex_wake(&word, KSYNC_FUTEX_MASK_ANY, 0), 0);
}

/* ---- futex_waitv -------------------------------------------------------- */

static void fill_waitv(struct ksync_futex_waitv *v, uint32_t *words, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		v[i] = (struct ksync_futex_waitv){
			.val = words[i],
			.uaddr = (uintptr_t)&words[i],
			.flags = KSYNC_FUTEX_FLAGS,
		};
}

static void test_waitv_reports_index(void **state)
{
	uint32_t words[3] = { 0, 0, 0 };
	struct ksync_futex_waitv v[3];
	struct waiter w = { .vec = v, .nr = 3 };
	pthread_t t;

	(void)state;
	fill_waitv(v, words, 3);
	t = start_waiter(&w);
	words[1] = 1;
	assert_int_equal(ksync_futex_wake(&words[1], KSYNC_FUTEX_MASK_ANY, 1), 1);
	join(t);
	assert_int_equal(w.ret, 1);
}

static void test_waitv_errors(void **state)
{
	uint32_t words[KSYNC_FUTEX_WAITV_MAX + 1] = { 0 };
	struct ksync_futex_waitv v[KSYNC_FUTEX_WAITV_MAX + 1];
	struct timespec deadline = in_ns(1000000000);
	struct timespec soon = in_ns(20000000);

	(void)state;
	fill_waitv(v, words, KSYNC_FUTEX_WAITV_MAX + 1);

	/* The last word differs: nothing sleeps. */
	v[2].val = 7;
	assert_int_equal(ksync_futex_waitv(v, 3, CLOCK_MONOTONIC, &deadline), -EAGAIN);
	v[2].val = 0;

	assert_int_equal(ksync_futex_waitv(v, 0, CLOCK_MONOTONIC, &deadline), -EINVAL);
	assert_int_equal(ksync_futex_waitv(v, KSYNC_FUTEX_WAITV_MAX + 1, CLOCK_MONOTONIC,
					   &deadline), -EINVAL);
	/* The largest legal count is accepted (and then times out). */
	assert_int_equal(ksync_futex_waitv(v, KSYNC_FUTEX_WAITV_MAX, CLOCK_MONOTONIC, &soon),
			 -ETIMEDOUT);
}

/* ---- SQE preparers on real rings ---------------------------------------- */

static void sqe_wait_woken_by_thread(unsigned flags)
{
	struct io_uring ring;
	uint32_t word = 0;
	uint64_t ud;
	int res;

	ring_open(&ring, flags);
	ksync_prep_futex_wait(sqe_get(&ring), &word, 0, KSYNC_FUTEX_MASK_ANY, 0x100);
	/* The request is issued inline: once submit returns, it is queued. */
	assert_int_equal(io_uring_submit(&ring), 1);
	assert_no_cqe(&ring);

	assert_int_equal(run_waker(&word, 0, 0), 1);
	cqe_get(&ring, &ud, &res);
	assert_int_equal(ud, 0x100);
	assert_int_equal(res, 0);
	io_uring_queue_exit(&ring);
}

static void sqe_wait_mismatch(unsigned flags)
{
	struct io_uring ring;
	uint32_t word = 1;
	uint64_t ud;
	int res;

	ring_open(&ring, flags);
	ksync_prep_futex_wait(sqe_get(&ring), &word, 0, KSYNC_FUTEX_MASK_ANY, 0x101);
	assert_int_equal(io_uring_submit_and_wait(&ring, 1), 1);
	cqe_get(&ring, &ud, &res);
	assert_int_equal(ud, 0x101);
	assert_int_equal(res, -EAGAIN);
	io_uring_queue_exit(&ring);
}

static void sqe_wake_wakes_thread(unsigned flags)
{
	struct io_uring ring;
	uint32_t word = 0;
	struct waiter w = { .word = &word, .expected = 0 };
	pthread_t t;
	uint64_t ud;
	int res;

	ring_open(&ring, flags);
	t = start_waiter(&w);
	ksync_prep_futex_wake(sqe_get(&ring), &word, 1, KSYNC_FUTEX_MASK_ANY, 0x102);
	assert_int_equal(io_uring_submit_and_wait(&ring, 1), 1);
	cqe_get(&ring, &ud, &res);
	assert_int_equal(ud, 0x102);
	assert_int_equal(res, 1);	/* the number woken */
	join(t);
	assert_int_equal(w.ret, 0);
	io_uring_queue_exit(&ring);
}

static void sqe_waitv_reports_index(unsigned flags)
{
	struct io_uring ring;
	uint32_t words[3] = { 0, 0, 0 };
	struct ksync_futex_waitv v[3];
	uint64_t ud;
	int res;

	ring_open(&ring, flags);
	fill_waitv(v, words, 3);
	ksync_prep_futex_waitv(sqe_get(&ring), v, 3, 0x103);
	assert_int_equal(io_uring_submit(&ring), 1);
	assert_no_cqe(&ring);

	assert_int_equal(run_waker(&words[2], 1, 1), 1);
	cqe_get(&ring, &ud, &res);
	assert_int_equal(ud, 0x103);
	assert_int_equal(res, 2);
	io_uring_queue_exit(&ring);
}

static void sqe_cancel_wait(unsigned flags)
{
	struct io_uring ring;
	uint32_t word = 0;
	struct io_uring_sqe *sqe;
	int got_wait = 0, got_cancel = 0;
	uint64_t ud;
	int res;

	ring_open(&ring, flags);
	ksync_prep_futex_wait(sqe_get(&ring), &word, 0, KSYNC_FUTEX_MASK_ANY, 0x104);
	assert_int_equal(io_uring_submit(&ring), 1);

	sqe = sqe_get(&ring);
	io_uring_prep_cancel64(sqe, 0x104, 0);
	sqe->user_data = 0x105;
	assert_int_equal(io_uring_submit(&ring), 1);

	for (int i = 0; i < 2; i++) {
		cqe_get(&ring, &ud, &res);
		if (ud == 0x104) {
			assert_int_equal(res, -ECANCELED);
			got_wait++;
		} else {
			assert_int_equal(ud, 0x105);
			/* Found and cancelled: 0, or (6.18 for futex requests)
			 * the number cancelled. Not -ENOENT or -EALREADY. */
			assert_in_range(res, 0, 1);
			got_cancel++;
		}
	}
	assert_int_equal(got_wait, 1);
	assert_int_equal(got_cancel, 1);
	/* The cancelled request is off the futex queue: nothing to wake. */
	assert_int_equal(ksync_futex_wake(&word, KSYNC_FUTEX_MASK_ANY, INT_MAX), 0);
	io_uring_queue_exit(&ring);
}

static void for_each_setup(void (*fn)(unsigned flags))
{
	for (size_t i = 0; i < N_RING_SETUPS; i++)
		fn(ring_setups[i]);
}

static void test_sqe_wait_woken_by_thread(void **state)
{
	(void)state;
	for_each_setup(sqe_wait_woken_by_thread);
}

static void test_sqe_wait_mismatch(void **state)
{
	(void)state;
	for_each_setup(sqe_wait_mismatch);
}

static void test_sqe_wake_wakes_thread(void **state)
{
	(void)state;
	for_each_setup(sqe_wake_wakes_thread);
}

static void test_sqe_waitv_reports_index(void **state)
{
	(void)state;
	for_each_setup(sqe_waitv_reports_index);
}

static void test_sqe_cancel_wait(void **state)
{
	(void)state;
	for_each_setup(sqe_cancel_wait);
}

/* ---- regression: late wakeup under DEFER_TASKRUN ------------------------ */

/*
 * With DEFER_TASKRUN the futex wake only queues task work; the CQE appears
 * when the ring's thread enters the kernel with GETEVENTS. A loop that just
 * peeks the CQ before sleeping on something else wakes up late or never.
 */
static void test_defer_taskrun_needs_getevents(void **state)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	uint32_t word = 0;
	uint64_t ud;
	int res;

	(void)state;
	ring_open(&ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
	ksync_prep_futex_wait(sqe_get(&ring), &word, 0, KSYNC_FUTEX_MASK_ANY, 0x200);
	assert_int_equal(io_uring_submit(&ring), 1);
	assert_int_equal(run_waker(&word, 0, 0), 1);

	/* Informative only: the kernel may legitimately show nothing yet. */
	print_message("[ info ] DEFER_TASKRUN: peek right after the wake %s\n",
		      io_uring_peek_cqe(&ring, &cqe) == 0 ? "saw the CQE" : "saw nothing");

	assert_true(io_uring_get_events(&ring) >= 0);
	cqe_get(&ring, &ud, &res);
	assert_int_equal(ud, 0x200);
	assert_int_equal(res, 0);
	io_uring_queue_exit(&ring);
}


static void mark_done(struct ksync_op *op)
{
	*(int *)op->data = 1;
}

/* ksync_loop_run_once(loop, 0) must deliver a futex wake's completion. */
static void loop_delivers_wake(unsigned flags)
{
	struct ksync_lock lock = KSYNC_LOCK_INIT;
	struct holder h = { .lock = &lock };
	struct ksync_loop loop;
	struct ksync_op op;
	int64_t end;
	int done = 0;
	pthread_t t;

	assert_int_equal(ksync_loop_init(&loop, 8, flags), 0);
	t = spawn(holder_main, &h);
	wait_until(__atomic_load_n(&h.held, __ATOMIC_ACQUIRE));
	assert_int_equal(h.ret, 0);

	ksync_op_lock(&op, &lock, 1);
	op.data = &done;
	assert_int_equal(loop_start(&loop, &op, mark_done), 0);
	/* Submits the FUTEX_WAIT; the lock is held, so nothing completes. */
	assert_int_equal(ksync_loop_run_once(&loop, 0), 0);
	assert_true(ksync_op_pending(&op));
	assert_false(done);

	__atomic_store_n(&h.release, 1, __ATOMIC_RELEASE);
	join(t);
	assert_int_equal(h.ret, 0);

	/* Non-blocking polling only, as a loop that also waits elsewhere does. */
	end = ksync_clock_ns(CLOCK_MONOTONIC) + 5000000000LL;
	while (!done) {
		assert_true(ksync_loop_run_once(&loop, 0) >= 0);
		if (done)
			break;
		if (ksync_clock_ns(CLOCK_MONOTONIC) > end)
			fail_msg("lock op not completed within 5 s (ring flags %#x)", flags);
		sleep_ns(1000000);
	}
	assert_int_equal(op.result, 0);
	assert_true(ksync_lock_held(&lock));
	assert_int_equal(ksync_lock_release_task(&lock, 1), 0);
	assert_int_equal(ksync_lock_destroy(&lock), 0);
	ksync_loop_exit(&loop);
}

static void test_loop_run_once_delivers_wake(void **state)
{
	(void)state;
	for_each_setup(loop_delivers_wake);
}

/* ---- regression: stale / ABA expected value ----------------------------- */

/*
 * The kernel compares the word when the request is issued (at submit), not
 * when the SQE is prepared. So a changed word makes a prepared wait fail
 * with -EAGAIN, but a word that changed and came back (ABA) parks the
 * request: only a wake releases it. This is why ksync parks only on values
 * whose holder is bound to wake (see the lock.c invariant), never on "the
 * value I saw a while ago".
 */
static void stale_expected_value(unsigned flags)
{
	struct io_uring ring;
	struct __kernel_timespec short_wait = { 0, 50000000 };
	struct io_uring_cqe *cqe;
	uint32_t word = 5;
	uint64_t ud;
	int res;

	ring_open(&ring, flags);

	/* Prepared for 5, submitted when the word holds 6. */
	ksync_prep_futex_wait(sqe_get(&ring), &word, 5, KSYNC_FUTEX_MASK_ANY, 0x300);
	word = 6;
	assert_int_equal(io_uring_submit_and_wait(&ring, 1), 1);
	cqe_get(&ring, &ud, &res);
	assert_int_equal(ud, 0x300);
	assert_int_equal(res, -EAGAIN);

	/* Prepared for 5, the word went 5 -> 6 -> 5 before the submit. */
	word = 5;
	ksync_prep_futex_wait(sqe_get(&ring), &word, 5, KSYNC_FUTEX_MASK_ANY, 0x301);
	__atomic_store_n(&word, 6, __ATOMIC_SEQ_CST);
	__atomic_store_n(&word, 5, __ATOMIC_SEQ_CST);
	assert_int_equal(io_uring_submit(&ring), 1);
	assert_int_equal(io_uring_wait_cqe_timeout(&ring, &cqe, &short_wait), -ETIME);

	assert_int_equal(run_waker(&word, 0, 0), 1);
	cqe_get(&ring, &ud, &res);
	assert_int_equal(ud, 0x301);
	assert_int_equal(res, 0);
	io_uring_queue_exit(&ring);
}

static void test_stale_expected_value(void **state)
{
	(void)state;
	for_each_setup(stale_expected_value);
}

/* ---- regression: private futex hash pivot ------------------------------- */

/*
 * Since 6.16 a process gets its own private futex hash when it creates its
 * first thread; until then private futexes live in the global hash. An
 * io_uring FUTEX_WAIT armed while single-threaded is queued in the global
 * hash; if the pivot does not move it, a later private futex_wake (which
 * looks only in the new per-process hash) misses it and the wakeup is lost.
 * Blocking waits cannot hit this (the only thread is asleep and cannot
 * create another), io_uring waits can.
 *
 * The child reports through its exit status:
 *   0              the CQE arrived with res 0
 *   PIVOT_LOST+n   no CQE within 5 s (n: waiters the wake had woken, 0..9)
 *   PIVOT_BADRES   a CQE with res != 0
 *   PIVOT_SETUP    the child could not set up (ring, thread, prctl)
 */
#define PR_FUTEX_HASH		78
#define PR_FUTEX_HASH_SET_SLOTS	1
#define PR_FUTEX_HASH_GET_SLOTS	2

#define PIVOT_LOST	10
#define PIVOT_BADRES	30
#define PIVOT_SETUP	31

enum pivot_prelude {
	PRELUDE_KSYNC,		/* ksync_features() first, as ksync itself does */
	PRELUDE_GLOBAL_HASH,	/* prctl: stay on the global hash (0 slots) */
	PRELUDE_PRIVATE_HASH,	/* prctl: take a private hash (16 slots) now */
	PRELUDE_THREAD,		/* create (and join) a thread first */
};

static uint32_t pivot_word;
static int pivot_woken;

static void *pivot_waker(void *arg)
{
	(void)arg;
	pivot_woken = ksync_futex_wake(&pivot_word, KSYNC_FUTEX_MASK_ANY, 1);
	return NULL;
}

static void *nothing(void *arg)
{
	return arg;
}

static int pivot_child(int prelude)
{
	struct __kernel_timespec five_s = { 5, 0 };
	struct io_uring_cqe *cqe;
	struct io_uring ring;
	pthread_t t;
	int r;

	switch ((enum pivot_prelude)prelude) {
	case PRELUDE_KSYNC:
		/* ksync settles the futex hash when it probes io_uring. */
		if (!(ksync_features() & KSYNC_FEAT_URING_FUTEX))
			return PIVOT_SETUP;
		break;
	case PRELUDE_GLOBAL_HASH:
	case PRELUDE_PRIVATE_HASH:
		r = prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS,
			  prelude == PRELUDE_GLOBAL_HASH ? 0 : 16, 0, 0);
		if (r) {
			fprintf(stderr, "pivot child: prctl(PR_FUTEX_HASH): %m\n");
			return PIVOT_SETUP;
		}
		break;
	case PRELUDE_THREAD:
		if (pthread_create(&t, NULL, nothing, NULL) || pthread_join(t, NULL))
			return PIVOT_SETUP;
		break;
	}
	fprintf(stderr, "pivot child: prelude %d, futex hash slots before arming: %d\n",
		prelude, prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS, 0, 0, 0));

	if (io_uring_queue_init(4, &ring, 0))
		return PIVOT_SETUP;
	ksync_prep_futex_wait(io_uring_get_sqe(&ring), &pivot_word, 0,
			      KSYNC_FUTEX_MASK_ANY, 0x400);
	if (io_uring_submit(&ring) != 1)
		return PIVOT_SETUP;

	/* Without a prelude this would be the process's first thread: the
	 * pivot that strands the wait (reproduced on 6.18). */
	if (pthread_create(&t, NULL, pivot_waker, NULL) || pthread_join(t, NULL))
		return PIVOT_SETUP;
	fprintf(stderr, "pivot child: slots after the waker: %d, futex_wake woke %d\n",
		prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS, 0, 0, 0), pivot_woken);

	r = io_uring_wait_cqe_timeout(&ring, &cqe, &five_s);
	if (r == -ETIME) {
		fprintf(stderr, "pivot child: no CQE within 5 s: wakeup lost\n");
		return PIVOT_LOST + (pivot_woken >= 0 && pivot_woken < 10 ? pivot_woken : 9);
	}
	if (r || cqe->res != 0) {
		fprintf(stderr, "pivot child: wait %d, res %d\n", r, r ? 0 : cqe->res);
		return PIVOT_BADRES;
	}
	/* Exiting tears the ring down, which also cancels a lost request. */
	return 0;
}

/*
 * The same through ksync itself: a loop task waits for a lock that a task
 * token holds, armed while the process is single-threaded; then a new
 * thread releases the lock (release_task checks the token, not the thread).
 */
static struct ksync_lock pivot_lock;
static int pivot_release_ret;

static void *pivot_releaser(void *arg)
{
	(void)arg;
	pivot_release_ret = ksync_lock_release_task(&pivot_lock, 2);
	return NULL;
}

static void pivot_mark_done(struct ksync_op *op)
{
	*(int *)op->data = 1;
}

static int pivot_loop_child(int flags)
{
	struct ksync_loop loop;
	struct ksync_op op;
	pthread_t t;
	int64_t end;
	int done = 0;

	if (ksync_loop_init(&loop, 8, (unsigned)flags) ||
	    ksync_lock_try_task(&pivot_lock, 2))
		return PIVOT_SETUP;
	ksync_op_lock(&op, &pivot_lock, 1);
	op.data = &done;
	if (loop_start(&loop, &op, pivot_mark_done) ||
	    ksync_loop_run_once(&loop, 0) != 0 || !ksync_op_pending(&op))
		return PIVOT_SETUP;

	if (pthread_create(&t, NULL, pivot_releaser, NULL) || pthread_join(t, NULL) ||
	    pivot_release_ret)
		return PIVOT_SETUP;

	end = ksync_clock_ns(CLOCK_MONOTONIC) + 5000000000LL;
	while (!done && ksync_clock_ns(CLOCK_MONOTONIC) < end) {
		if (ksync_loop_run_once(&loop, 0) < 0)
			return PIVOT_SETUP;
		if (!done)
			sleep_ns(1000000);
	}
	if (!done) {
		fprintf(stderr, "pivot loop child: lock op still pending after 5 s\n");
		return PIVOT_LOST;	/* the woken count is unknown here */
	}
	if (op.result != 0) {
		fprintf(stderr, "pivot loop child: op result %d\n", op.result);
		return PIVOT_BADRES;
	}
	ksync_lock_release_task(&pivot_lock, 1);
	ksync_loop_exit(&loop);
	return 0;
}

static void run_pivot(int (*child)(int), int arg, const char *what)
{
	int status;
	pid_t pid;

	/* The child must start single-threaded: cmocka runs us on one thread
	 * and every earlier test joined its threads, and fork copies only the
	 * calling thread anyway. */
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(20);
		_exit(child(arg));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status))
		fail_msg("%s: child killed by signal %d", what, WTERMSIG(status));
	status = WEXITSTATUS(status);
	if (status >= PIVOT_LOST && status < PIVOT_LOST + 10)
		fail_msg("%s: a FUTEX_WAIT armed before the process's first thread "
			 "never completed: lost wakeup (see the child's stderr)", what);
	if (status)
		fail_msg("%s: child failed with status %d", what, status);
}

static void test_pivot_first_thread(void **state)
{
	(void)state;
	run_pivot(pivot_child, PRELUDE_KSYNC, "private hash pivot after ksync_features()");
}

static void test_pivot_prctl_global_hash(void **state)
{
	(void)state;
	run_pivot(pivot_child, PRELUDE_GLOBAL_HASH, "pivot after PR_FUTEX_HASH_SET_SLOTS 0");
}

static void test_pivot_prctl_private_hash(void **state)
{
	(void)state;
	run_pivot(pivot_child, PRELUDE_PRIVATE_HASH, "pivot after PR_FUTEX_HASH_SET_SLOTS 16");
}

static void test_pivot_thread_first(void **state)
{
	(void)state;
	run_pivot(pivot_child, PRELUDE_THREAD, "pivot with a thread created before arming");
}

static void pivot_loop(unsigned flags)
{
	char what[64];

	snprintf(what, sizeof(what), "pivot under a ksync_loop lock op (ring flags %#x)", flags);
	run_pivot(pivot_loop_child, (int)flags, what);
}

static void test_pivot_ksync_loop(void **state)
{
	(void)state;
	for_each_setup(pivot_loop);
}

/* ---- features ----------------------------------------------------------- */

static void test_features(void **state)
{
	unsigned all = KSYNC_FEAT_FUTEX2 | KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX;

	(void)state;
	assert_int_equal(ksync_features() & all, all);
	assert_int_equal(ksync_require(all), 0);
	assert_int_equal(ksync_require(KSYNC_FEAT_FUTEX2), 0);
	assert_int_equal(ksync_require(0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		async_unit_test(test_features),
		cmocka_unit_test(test_wait_value_mismatch),
		cmocka_unit_test(test_wait_timeout_monotonic),
		cmocka_unit_test(test_wait_timeout_realtime),
		cmocka_unit_test(test_wait_deadline_in_past),
		cmocka_unit_test(test_wait_einval),
		cmocka_unit_test(test_wake_counts),
		cmocka_unit_test(test_wake_einval),
		cmocka_unit_test(test_waitv_reports_index),
		cmocka_unit_test(test_waitv_errors),
		async_unit_test(test_sqe_wait_woken_by_thread),
		async_unit_test(test_sqe_wait_mismatch),
		async_unit_test(test_sqe_wake_wakes_thread),
		async_unit_test(test_sqe_waitv_reports_index),
		async_unit_test(test_sqe_cancel_wait),
		async_unit_test(test_defer_taskrun_needs_getevents),
		async_unit_test(test_loop_run_once_delivers_wake),
		async_unit_test(test_stale_expected_value),
		async_unit_test(test_pivot_first_thread),
		async_unit_test(test_pivot_prctl_global_hash),
		async_unit_test(test_pivot_prctl_private_hash),
		async_unit_test(test_pivot_thread_first),
		async_unit_test(test_pivot_ksync_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
