/* SPDX-License-Identifier: MIT */
/*
 * CountdownEvent and Latch. Claims:
 * - up/down/clear/count_down/try/wait return what countdown.h says; misuse
 *   (down below zero, counting a latch down too far, n == 0, overflow) is
 *   refused and changes nothing;
 * - reaching zero releases every waiter of every world (threads, tasks on
 *   either ring setup, a poll loop) even if up() follows at once, and
 *   whoever counts down (a thread, a task on another ring, a task on the
 *   waiters' ring); clear() does the same;
 * - downs that do not reach zero leave the futex word, and the waiters,
 *   alone;
 * - a latch opened by arrivals from every world releases them all;
 * - a waiter about to sleep when zero comes and up() follows (a thread at
 *   its futex wait, an io_uring wait submitted late) is released;
 * - timeouts and cancels racing zero-then-up: every op completes once, 0
 *   only if zero came, and a waiter without deadline is always released;
 * - process-shared: a child process waits on a latch the parent opens.
 */
#include "worlds.h"

#include <sys/mman.h>
#include <sys/wait.h>

static struct ksync_countdown cd;
static struct ksync_latch latch;

/* The futex word: the low half of the 64-bit state (read atomically). */
#define FUTEX_WORD(x) ((uint32_t)peek((x).state))

static void test_basics_and_misuse(void **state)
{
	struct timespec bad = { 0, -5 }, past = { 1, 0 }, dl = in_ns(1000000);
	struct ksync_countdown st = KSYNC_COUNTDOWN_INIT(2), sh = KSYNC_COUNTDOWN_SHARED_INIT(0);
	struct ksync_latch lst = KSYNC_LATCH_INIT(1);

	(void)state;
	assert_int_equal(ksync_countdown_init(&cd, 0, 4), -EINVAL);
	assert_int_equal(ksync_countdown_init(&cd, 0, 0), 0);
	assert_int_equal(ksync_countdown_try(&cd), 0);		/* zero: set */
	assert_int_equal(ksync_countdown_wait(&cd), 0);
	assert_int_equal(ksync_countdown_down(&cd), -EINVAL);	/* below zero */
	assert_int_equal(ksync_countdown_value(&cd), 0);
	assert_int_equal(ksync_countdown_clear(&cd), 0);
	assert_int_equal(ksync_countdown_up(&cd, 0), -EINVAL);
	assert_int_equal(ksync_countdown_up(&cd, 2), 0);
	assert_int_equal(ksync_countdown_up(&cd, KSYNC_COUNTDOWN_MAX - 1), -EOVERFLOW);
	assert_int_equal(ksync_countdown_value(&cd), 2);
	assert_int_equal(ksync_countdown_try(&cd), -EAGAIN);
	assert_int_equal(ksync_countdown_wait_until(&cd, CLOCK_MONOTONIC, &bad), -EINVAL);
	assert_int_equal(ksync_countdown_wait_until(&cd, CLOCK_BOOTTIME, &dl), -EINVAL);
	assert_int_equal(ksync_countdown_wait_until(&cd, CLOCK_MONOTONIC, &past), -ETIMEDOUT);
	dl = in_ns(5000000);
	assert_int_equal(ksync_countdown_wait_until(&cd, CLOCK_MONOTONIC, &dl), -ETIMEDOUT);
	assert_int_equal(ksync_countdown_down(&cd), 0);
	assert_int_equal(ksync_countdown_down(&cd), 1);
	assert_int_equal(ksync_countdown_down(&cd), -EINVAL);
	/* The timed-out waits announced themselves; zero cleared that. */
	assert_int_equal(FUTEX_WORD(cd) & KSYNC_COUNTDOWN_WAITERS, 0);
	assert_int_equal(ksync_countdown_up(&cd, 3), 0);
	assert_int_equal(ksync_countdown_clear(&cd), 1);
	assert_int_equal(ksync_countdown_value(&cd), 0);
	assert_int_equal(ksync_countdown_up(&cd, KSYNC_COUNTDOWN_MAX), 0);
	assert_int_equal(ksync_countdown_up(&cd, 1), -EOVERFLOW);
	assert_int_equal(ksync_countdown_value(&cd), KSYNC_COUNTDOWN_MAX);
	assert_int_equal(ksync_countdown_value(&st), 2);
	assert_int_equal(sh.flags, KSYNC_SHARED);
	assert_int_equal(ksync_countdown_try(&sh), 0);

	assert_int_equal(ksync_latch_init(&latch, 3, 8), -EINVAL);
	assert_int_equal(ksync_latch_init(&latch, 3, 0), 0);
	assert_int_equal(ksync_latch_try(&latch), -EAGAIN);
	assert_int_equal(ksync_latch_count_down(&latch, 0), -EINVAL);
	assert_int_equal(ksync_latch_count_down(&latch, 4), -EINVAL);
	assert_int_equal(ksync_latch_value(&latch), 3);
	assert_int_equal(ksync_latch_wait_until(&latch, CLOCK_MONOTONIC, &past), -ETIMEDOUT);
	assert_int_equal(ksync_latch_arrive_and_wait_until(&latch, 1, CLOCK_MONOTONIC, &bad),
			 -EINVAL);
	assert_int_equal(ksync_latch_value(&latch), 3);		/* did not count down */
	assert_int_equal(ksync_latch_arrive_and_wait_until(&latch, 1, CLOCK_MONOTONIC, &past),
			 -ETIMEDOUT);
	assert_int_equal(ksync_latch_value(&latch), 2);		/* counted down */
	assert_int_equal(ksync_latch_count_down(&latch, 1), 0);
	assert_int_equal(ksync_latch_arrive_and_wait(&latch, 1), 0);	/* opens it */
	assert_int_equal(ksync_latch_try(&latch), 0);
	assert_int_equal(ksync_latch_wait(&latch), 0);
	assert_int_equal(ksync_latch_count_down(&latch, 1), -EINVAL);	/* open for good */
	assert_int_equal(ksync_latch_arrive_and_wait(&latch, 1), -EINVAL);
	assert_int_equal(ksync_latch_count_down(&lst, 1), 1);
	assert_int_equal(ksync_latch_init(&latch, 0, 0), 0);
	assert_int_equal(ksync_latch_try(&latch), 0);		/* 0: open at once */
}

/* ---- waiters in every world --------------------------------------------- */

static int cd_wait(struct group *g, int who)
{
	(void)who;
	if (g->deadline_ns > 0) {
		struct timespec dl = in_ns(g->deadline_ns);

		return ksync_countdown_wait_until(g->prim, CLOCK_MONOTONIC, &dl);
	}
	return ksync_countdown_wait(g->prim);
}

static void cd_init(struct group *g, struct ksync_op *op)
{
	ksync_op_countdown(op, g->prim);
}

static int released;

static void count_result(struct group *g, int who, int round, int value)
{
	(void)g, (void)who, (void)round;
	if (value == 0)
		__atomic_add_fetch(&released, 1, __ATOMIC_RELAXED);
}

static const struct group_ops cd_waiters = {
	.wait = cd_wait,
	.init = cd_init,
	.on_result = count_result,
};

/* Latch arrivals: count down one, then wait (an op counts down first). */
static int latch_wait(struct group *g, int who)
{
	(void)who;
	return ksync_latch_arrive_and_wait(g->prim, 1);
}

static void latch_init(struct group *g, struct ksync_op *op)
{
	assert_true(ksync_latch_count_down(g->prim, 1) >= 0);
	ksync_op_latch(op, g->prim);
}

static const struct group_ops latch_arrivals = {
	.wait = latch_wait,
	.init = latch_init,
	.on_result = count_result,
};

static const int group_size[N_WORLDS] = { 4, 60, 60, 20 };

static int all_waiters(void)
{
	int n = 0;

	for (int w = 0; w < N_WORLDS; w++)
		n += group_size[w];
	return n;
}

static void start_all_worlds(struct group *gs, const struct group_ops *ops, void *prim)
{
	for (int w = 0; w < N_WORLDS; w++) {
		gs[w] = (struct group){ .world = (enum world)w, .n = group_size[w],
					.ops = ops, .prim = prim };
		group_start(&gs[w]);
	}
	for (int w = 0; w < N_WORLDS; w++)
		group_wait_parked(&gs[w]);
}

static void join_all(struct group *gs)
{
	for (int w = 0; w < N_WORLDS; w++)
		group_join(&gs[w]);
}

/* Down to zero, then up at once. */
static void zero_then_up(void)
{
	assert_int_equal(ksync_countdown_down(&cd), 1);
	assert_int_equal(ksync_countdown_up(&cd, 1), 0);
}

static void test_zero_then_up_releases_every_world(void **state)
{
	struct group gs[N_WORLDS];
	struct timespec dl;
	uint32_t word;

	(void)state;
	assert_int_equal(ksync_countdown_init(&cd, 3, 0), 0);
	released = 0;
	start_all_worlds(gs, &cd_waiters, &cd);
	word = FUTEX_WORD(cd);
	assert_true(word & KSYNC_COUNTDOWN_WAITERS);
	/* Downs and ups that do not reach zero leave the futex word alone. */
	assert_int_equal(ksync_countdown_down(&cd), 0);
	assert_int_equal(ksync_countdown_up(&cd, 5), 0);
	assert_int_equal(ksync_countdown_down(&cd), 0);
	assert_int_equal(FUTEX_WORD(cd), word);
	sleep_ns(2000000);
	assert_int_equal(released, 0);
	assert_int_equal(ksync_countdown_value(&cd), 6);
	for (int i = 0; i < 5; i++)
		assert_int_equal(ksync_countdown_down(&cd), 0);
	zero_then_up();
	join_all(gs);
	assert_int_equal(released, all_waiters());
	assert_int_equal(ksync_countdown_value(&cd), 1);
	dl = in_ns(5000000);
	assert_int_equal(ksync_countdown_wait_until(&cd, CLOCK_MONOTONIC, &dl), -ETIMEDOUT);
}

static void test_clear_releases_every_world(void **state)
{
	struct group gs[N_WORLDS];

	(void)state;
	assert_int_equal(ksync_countdown_init(&cd, 7, 0), 0);
	released = 0;
	start_all_worlds(gs, &cd_waiters, &cd);
	assert_int_equal(ksync_countdown_clear(&cd), 1);
	assert_int_equal(ksync_countdown_up(&cd, 2), 0);
	join_all(gs);
	assert_int_equal(released, all_waiters());
}

/* The last down comes from a task: on another ring, or on the waiters'. */
struct ring_downer {
	unsigned setup;
	int go;
};

static void down_from_task(struct ksync_op *op)
{
	(void)op;
	zero_then_up();
}

static void *ring_downer_main(void *arg)
{
	struct ring_downer *rd = arg;
	struct ksync_loop loop;
	struct ksync_op sleep_op;

	assert_int_equal(ksync_loop_init(&loop, 8, rd->setup), 0);
	wait_until(peek(rd->go));
	assert_int_equal(ksync_loop_sleep(&loop, &sleep_op, 1000000, down_from_task), 0);
	assert_int_equal(ksync_loop_run(&loop), 0);
	ksync_loop_exit(&loop);
	return NULL;
}

static void test_task_on_another_ring_counts_down(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ring_downer rd = { .setup = ring_setups[s] };
		struct group gs[N_WORLDS];
		pthread_t t;

		assert_int_equal(ksync_countdown_init(&cd, 1, 0), 0);
		released = 0;
		t = spawn(ring_downer_main, &rd);
		start_all_worlds(gs, &cd_waiters, &cd);
		__atomic_store_n(&rd.go, 1, __ATOMIC_RELEASE);
		join(t);
		join_all(gs);
		assert_int_equal(released, all_waiters());
	}
}

static int same_ring_done;

static void same_ring_waiter_done(struct ksync_op *op)
{
	assert_int_equal(op->result, 0);
	same_ring_done++;
}

static void test_task_counts_down_for_tasks_on_its_ring(void **state)
{
	enum { N = 40 };

	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;
		struct ksync_op ops[N], sleep_op;

		assert_int_equal(ksync_countdown_init(&cd, 1, 0), 0);
		assert_int_equal(ksync_loop_init(&loop, 64, ring_setups[s]), 0);
		same_ring_done = 0;
		for (int i = 0; i < N; i++) {
			ksync_op_countdown(&ops[i], &cd);
			assert_int_equal(loop_start(&loop, &ops[i], same_ring_waiter_done), 0);
		}
		assert_int_equal(ksync_loop_sleep(&loop, &sleep_op, 2000000, down_from_task), 0);
		assert_int_equal(ksync_loop_run(&loop), 0);
		assert_int_equal(same_ring_done, N);
		assert_int_equal(ksync_countdown_value(&cd), 1);
		ksync_loop_exit(&loop);
	}
}

/* Every world arrives at one latch; the last arrival opens it for all. */
static void test_latch_arrivals_from_every_world(void **state)
{
	struct group gs[N_WORLDS];

	(void)state;
	assert_int_equal(ksync_latch_init(&latch, (uint32_t)all_waiters() + 1, 0), 0);
	released = 0;
	start_all_worlds(gs, &latch_arrivals, &latch);
	assert_int_equal(ksync_latch_value(&latch), 1);
	assert_int_equal(released, 0);
	assert_int_equal(ksync_latch_count_down(&latch, 1), 1);
	join_all(gs);
	assert_int_equal(released, all_waiters());
	assert_int_equal(ksync_latch_try(&latch), 0);
}

/* ---- late waits --------------------------------------------------------- */

enum { ROLE_W = 1 };

static int thread_result;
static pid_t thread_tid;

static void *thread_wait(void *arg)
{
	(void)arg;
	set_role(ROLE_W);
	__atomic_store_n(&thread_tid, self_tid(), __ATOMIC_RELEASE);
	thread_result = ksync_countdown_wait(&cd);
	return NULL;
}

static void test_thread_parks_after_zero_then_up(void **state)
{
	int park;
	pthread_t t;

	(void)state;
	assert_int_equal(ksync_countdown_init(&cd, 1, 0), 0);
	thread_result = 1;
	park = arm(ROLE_W, "countdown.wait.park");
	t = spawn(thread_wait, NULL);
	wait_arrived(park);
	zero_then_up();
	resume(park);
	join(t);
	assert_int_equal(thread_result, 0);
}

static void test_late_sqe_after_zero_then_up(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct io_uring ring;
		struct io_uring_cqe *cqe;
		struct ksync_op op;

		assert_int_equal(ksync_countdown_init(&cd, 1, 0), 0);
		assert_int_equal(io_uring_queue_init(8, &ring, ring_setups[s]), 0);
		ksync_op_countdown(&op, &cd);
		assert_int_equal(ksync_op_start(&op, &ring), KSYNC_OP_PENDING);
		zero_then_up();
		assert_int_equal(io_uring_submit_and_wait(&ring, 1), 1);
		assert_int_equal(io_uring_wait_cqe(&ring, &cqe), 0);
		assert_int_equal(cqe->res, -EAGAIN);
		assert_int_equal(ksync_op_complete(&op, &ring, cqe), 0);
		io_uring_cqe_seen(&ring, cqe);
		assert_int_equal(op.result, 0);
		io_uring_queue_exit(&ring);
	}
}

/* ---- races -------------------------------------------------------------- */

static int go;
static bool do_zero;

static void *racer(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
		;
	if (do_zero)
		zero_then_up();
	else
		assert_int_equal(ksync_countdown_up(&cd, 1), 0);
	return NULL;
}

static int op_done;

static void count_op(struct ksync_op *op)
{
	(void)op;
	op_done++;
}

/*
 * An op with a random deadline or cancel, a thread waiting without
 * deadline, and zero-then-up (or, one time in four, an up alone) right
 * around the deadline or cancel. The op ends once, with 0 only if zero
 * came; the thread is released exactly when zero came.
 */
static void test_cancel_and_timeout_race_zero(void **state)
{
	uint64_t seed = 777;
	int got = 0, cancelled = 0, timed_out = 0, no_zero = 0;

	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;

		assert_int_equal(ksync_loop_init(&loop, 16, ring_setups[s]), 0);
		for (int i = 0; i < 1000; i++) {
			struct ksync_op op;
			bool use_timeout = rnd(&seed) & 1;
			pthread_t rel, w = 0;
			struct timespec tdl;

			assert_int_equal(ksync_countdown_init(&cd, 1, 0), 0);
			do_zero = rnd(&seed) % 4 != 0;
			go = 0;
			thread_result = 1;
			rel = spawn(racer, NULL);
			if (do_zero) {
				thread_tid = 0;
				w = spawn(thread_wait, NULL);
				wait_until(peek(thread_tid));
				wait_futex_asleep(peek(thread_tid));
			}
			ksync_op_countdown(&op, &cd);
			if (use_timeout) {
				struct timespec dl = in_ns(150000 + rnd(&seed) % 60000);

				assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
			}
			op_done = 0;
			assert_int_equal(loop_start(&loop, &op, count_op), 0);
			assert_true(ksync_loop_run_once(&loop, 0) >= 0);
			spin_ns(100000);
			__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
			if (!use_timeout) {
				spin_ns(rnd(&seed) % 30000);
				ksync_loop_cancel(&loop, &op);
			}
			assert_int_equal(ksync_loop_run(&loop), 0);
			assert_int_equal(op_done, 1);
			join(rel);
			if (op.result == 0) {
				assert_true(do_zero);
				got++;
			} else if (op.result == -ECANCELED) {
				cancelled++;
			} else {
				assert_int_equal(op.result, -ETIMEDOUT);
				timed_out++;
			}
			if (do_zero) {
				join(w);
				assert_int_equal(thread_result, 0);
			} else {
				no_zero++;
				tdl = in_ns(0);
				assert_int_equal(ksync_countdown_wait_until(&cd, CLOCK_MONOTONIC, &tdl),
						 -ETIMEDOUT);
			}
			assert_int_equal(ksync_countdown_value(&cd), do_zero ? 1 : 2);
		}
		ksync_loop_exit(&loop);
	}
	print_message("countdown race: %d released, %d cancelled, %d timed out (%d without zero)\n",
		      got, cancelled, timed_out, no_zero);
	assert_true(got > 0 && cancelled > 0 && timed_out > 0);
}

/* ---- process-shared ----------------------------------------------------- */

static void test_shared_latch_between_processes(void **state)
{
	struct ksync_latch *sl = mmap(NULL, sizeof(*sl), PROT_READ | PROT_WRITE,
				      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int status;
	pid_t child;

	(void)state;
	assert_true(sl != MAP_FAILED);
	assert_int_equal(ksync_latch_init(sl, 2, KSYNC_SHARED), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct timespec dl;

		ksync_deadline_after(&dl, CLOCK_MONOTONIC, 10000000000LL);
		_exit(ksync_latch_arrive_and_wait_until(sl, 1, CLOCK_MONOTONIC, &dl) == 0 ? 0 : 1);
	}
	wait_until(FUTEX_WORD(*sl) & KSYNC_COUNTDOWN_WAITERS);
	sleep_ns(5000000);
	assert_int_equal(ksync_latch_count_down(sl, 1), 1);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	munmap(sl, sizeof(*sl));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basics_and_misuse),
		async_unit_test(test_zero_then_up_releases_every_world),
		async_unit_test(test_clear_releases_every_world),
		async_unit_test(test_task_on_another_ring_counts_down),
		async_unit_test(test_task_counts_down_for_tasks_on_its_ring),
		async_unit_test(test_latch_arrivals_from_every_world),
		cmocka_unit_test(test_thread_parks_after_zero_then_up),
		async_unit_test(test_late_sqe_after_zero_then_up),
		async_unit_test(test_cancel_and_timeout_race_zero),
		cmocka_unit_test(test_shared_latch_between_processes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
