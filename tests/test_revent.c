/* SPDX-License-Identifier: MIT */
/*
 * REvent. Claims:
 * - set/clear/try/wait return what revent.h says; misuse is refused;
 * - a set releases every waiter that was waiting then, in every world
 *   (threads, tasks on either ring setup, a poll loop), even when clear
 *   follows at once; whoever sets (a thread, a task on another ring, a task
 *   on the waiters' own ring);
 * - a wait that starts after a clear waits for the next set;
 * - one futex_wake reaches every parked waiter of every world;
 * - a waiter about to sleep when set+clear happen (a thread at its futex
 *   wait, an io_uring wait submitted after them) is released, not parked;
 * - timeouts and cancels racing set+clear: every op completes once, with
 *   0 only if a set came, and a waiter without deadline is always released;
 * - process-shared: a child process waits, the parent sets.
 */
#include "worlds.h"

#include <sys/mman.h>
#include <sys/wait.h>

static struct ksync_revent ev;

static void test_basics_and_misuse(void **state)
{
	struct timespec bad = { 0, -5 }, past = { 1, 0 }, dl = in_ns(1000000);
	struct ksync_revent st = KSYNC_REVENT_INIT, sh = KSYNC_REVENT_SHARED_INIT;

	(void)state;
	assert_int_equal(ksync_revent_init(&ev, 2), -EINVAL);
	assert_int_equal(ksync_revent_init(&ev, 0), 0);
	assert_false(ksync_revent_is_set(&ev));
	assert_int_equal(ksync_revent_try(&ev), -EAGAIN);
	assert_int_equal(ksync_revent_wait_until(&ev, CLOCK_MONOTONIC, &bad), -EINVAL);
	assert_int_equal(ksync_revent_wait_until(&ev, CLOCK_BOOTTIME, &dl), -EINVAL);
	assert_int_equal(ksync_revent_wait_until(&ev, CLOCK_MONOTONIC, &past), -ETIMEDOUT);
	dl = in_ns(5000000);
	assert_int_equal(ksync_revent_wait_until(&ev, CLOCK_MONOTONIC, &dl), -ETIMEDOUT);
	assert_int_equal(ksync_revent_clear(&ev), 0);
	assert_int_equal(ksync_revent_set(&ev), 1);
	assert_int_equal(ksync_revent_set(&ev), 0);
	assert_true(ksync_revent_is_set(&ev));
	assert_int_equal(ksync_revent_try(&ev), 0);
	assert_int_equal(ksync_revent_wait(&ev), 0);
	assert_int_equal(ksync_revent_wait_until(&ev, CLOCK_MONOTONIC, &past), 0);
	assert_int_equal(ksync_revent_clear(&ev), 1);
	assert_int_equal(ksync_revent_clear(&ev), 0);
	assert_int_equal(ksync_revent_try(&ev), -EAGAIN);
	/* The timed-out waits announced themselves; set still wakes once and
	 * leaves no WAITERS behind. */
	assert_int_equal(peek(ev.word) & KSYNC_REVENT_WAITERS, 0);
	assert_int_equal(ksync_revent_set(&st), 1);
	assert_int_equal(ksync_revent_set(&sh), 1);
	assert_int_equal(sh.flags, KSYNC_SHARED);
}

/* ---- waiters in every world --------------------------------------------- */

static int wait_thread(struct group *g, int who)
{
	(void)who;
	if (g->deadline_ns > 0) {
		struct timespec dl = in_ns(g->deadline_ns);

		return ksync_revent_wait_until(g->prim, CLOCK_MONOTONIC, &dl);
	}
	return ksync_revent_wait(g->prim);
}

static void init_op(struct group *g, struct ksync_op *op)
{
	ksync_op_revent(op, g->prim);
}

static int released;	/* outcomes 0 */

static void count_result(struct group *g, int who, int round, int value)
{
	(void)g, (void)who, (void)round;
	if (value == 0)
		__atomic_add_fetch(&released, 1, __ATOMIC_RELAXED);
}

static const struct group_ops revent_waiters = {
	.wait = wait_thread,
	.init = init_op,
	.on_result = count_result,
};

static const int group_size[N_WORLDS] = { 4, 60, 60, 20 };

static void start_all_worlds(struct group *gs)
{
	for (int w = 0; w < N_WORLDS; w++) {
		gs[w] = (struct group){ .world = (enum world)w, .n = group_size[w],
					.ops = &revent_waiters, .prim = &ev };
		group_start(&gs[w]);
	}
	for (int w = 0; w < N_WORLDS; w++)
		group_wait_parked(&gs[w]);
}

static int all_waiters(void)
{
	int n = 0;

	for (int w = 0; w < N_WORLDS; w++)
		n += group_size[w];
	return n;
}

/* Set, then clear at once: nobody may stay behind. */
static void set_clear(void)
{
	assert_int_equal(ksync_revent_set(&ev), 1);
	assert_int_equal(ksync_revent_clear(&ev), 1);
}

static void test_set_clear_releases_every_world(void **state)
{
	struct group gs[N_WORLDS];
	struct timespec dl;

	(void)state;
	assert_int_equal(ksync_revent_init(&ev, 0), 0);
	released = 0;
	start_all_worlds(gs);
	assert_int_equal(released, 0);
	assert_true(peek(ev.word) & KSYNC_REVENT_WAITERS);
	set_clear();
	for (int w = 0; w < N_WORLDS; w++)
		group_join(&gs[w]);
	assert_int_equal(released, all_waiters());
	assert_false(ksync_revent_is_set(&ev));
	/* After the clear, a new wait waits (for the next set). */
	dl = in_ns(10000000);
	assert_int_equal(ksync_revent_wait_until(&ev, CLOCK_MONOTONIC, &dl), -ETIMEDOUT);
}

/* A setter that is a task: on another ring (its own thread), after a sleep. */
struct ring_setter {
	unsigned setup;
	int go;
};

static void set_from_task(struct ksync_op *op)
{
	(void)op;
	set_clear();
}

static void *ring_setter_main(void *arg)
{
	struct ring_setter *rs = arg;
	struct ksync_loop loop;
	struct ksync_op sleep_op;

	assert_int_equal(ksync_loop_init(&loop, 8, rs->setup), 0);
	wait_until(peek(rs->go));
	assert_int_equal(ksync_loop_sleep(&loop, &sleep_op, 1000000, set_from_task), 0);
	assert_int_equal(ksync_loop_run(&loop), 0);
	ksync_loop_exit(&loop);
	return NULL;
}

static void test_task_on_another_ring_sets(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ring_setter rs = { .setup = ring_setups[s] };
		struct group gs[N_WORLDS];
		pthread_t t;

		assert_int_equal(ksync_revent_init(&ev, 0), 0);
		released = 0;
		t = spawn(ring_setter_main, &rs);
		start_all_worlds(gs);
		__atomic_store_n(&rs.go, 1, __ATOMIC_RELEASE);
		join(t);
		for (int w = 0; w < N_WORLDS; w++)
			group_join(&gs[w]);
		assert_int_equal(released, all_waiters());
	}
}

/* Waiters and the setting task share one ring (and its thread). */
static int same_ring_done;

static void same_ring_waiter_done(struct ksync_op *op)
{
	assert_int_equal(op->result, 0);
	same_ring_done++;
}

static void test_task_sets_for_tasks_on_its_ring(void **state)
{
	enum { N = 40 };

	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;
		struct ksync_op ops[N], sleep_op;

		assert_int_equal(ksync_revent_init(&ev, 0), 0);
		assert_int_equal(ksync_loop_init(&loop, 64, ring_setups[s]), 0);
		same_ring_done = 0;
		for (int i = 0; i < N; i++) {
			ksync_op_revent(&ops[i], &ev);
			assert_int_equal(loop_start(&loop, &ops[i], same_ring_waiter_done), 0);
		}
		assert_int_equal(ksync_loop_sleep(&loop, &sleep_op, 2000000, set_from_task), 0);
		assert_int_equal(ksync_loop_run(&loop), 0);
		assert_int_equal(same_ring_done, N);
		assert_false(ksync_revent_is_set(&ev));
		ksync_loop_exit(&loop);
	}
}

/* A wait that starts after set+clear waits for the next set, in every
 * world; that set releases it. */
static void test_after_clear_waits_for_next_set(void **state)
{
	struct group gs[N_WORLDS];

	(void)state;
	assert_int_equal(ksync_revent_init(&ev, 0), 0);
	set_clear();
	released = 0;
	start_all_worlds(gs);
	sleep_ns(10000000);
	assert_int_equal(released, 0);
	for (int w = 0; w < N_WORLDS; w++)
		assert_int_equal(peek(gs[w].results), 0);
	assert_int_equal(ksync_revent_set(&ev), 1);
	for (int w = 0; w < N_WORLDS; w++)
		group_join(&gs[w]);
	assert_int_equal(released, all_waiters());
	assert_true(ksync_revent_is_set(&ev));
}

/* set()'s two steps by hand, to see that one futex_wake reaches all. */
static void test_one_wake_reaches_everyone(void **state)
{
	struct group gs[N_WORLDS];
	uint32_t v;

	(void)state;
	assert_int_equal(ksync_revent_init(&ev, 0), 0);
	released = 0;
	start_all_worlds(gs);
	v = peek(ev.word);
	assert_int_equal(v, KSYNC_REVENT_WAITERS);
	assert_true(__atomic_compare_exchange_n(&ev.word, &v,
						KSYNC_REVENT_GEN_ONE | KSYNC_REVENT_SET, false,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
	assert_int_equal(ksync_futex_wake(&ev.word, KSYNC_FUTEX_MASK_ANY, 1 << 30), all_waiters());
	assert_int_equal(ksync_revent_clear(&ev), 1);
	for (int w = 0; w < N_WORLDS; w++)
		group_join(&gs[w]);
	assert_int_equal(released, all_waiters());
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
	thread_result = ksync_revent_wait(&ev);
	return NULL;
}

/* A thread stopped just before its futex wait while set+clear happen:
 * the word it parks on is gone, so the wait returns and it is released. */
static void test_thread_parks_after_set_clear(void **state)
{
	int park;
	pthread_t t;

	(void)state;
	assert_int_equal(ksync_revent_init(&ev, 0), 0);
	thread_result = 1;
	park = arm(ROLE_W, "revent.wait.park");
	t = spawn(thread_wait, NULL);
	wait_arrived(park);
	set_clear();
	resume(park);
	join(t);
	assert_int_equal(thread_result, 0);
}

/* An io_uring wait submitted only after set+clear (a late SQE). */
static void test_late_sqe_after_set_clear(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct io_uring ring;
		struct io_uring_cqe *cqe;
		struct ksync_op op;

		assert_int_equal(ksync_revent_init(&ev, 0), 0);
		assert_int_equal(io_uring_queue_init(8, &ring, ring_setups[s]), 0);
		ksync_op_revent(&op, &ev);
		assert_int_equal(ksync_op_start(&op, &ring), KSYNC_OP_PENDING);
		set_clear();	/* before the SQE reaches the kernel */
		assert_int_equal(io_uring_submit_and_wait(&ring, 1), 1);
		assert_int_equal(io_uring_wait_cqe(&ring, &cqe), 0);
		assert_int_equal(cqe->res, -EAGAIN);	/* the word moved on */
		assert_int_equal(ksync_op_complete(&op, &ring, cqe), 0);
		io_uring_cqe_seen(&ring, cqe);
		assert_int_equal(op.result, 0);
		io_uring_queue_exit(&ring);
	}
}

/* ---- races -------------------------------------------------------------- */

static int go;
static bool do_set;

static void *racer(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
		;
	if (do_set)
		set_clear();
	else
		ksync_revent_clear(&ev);
	return NULL;
}

static int op_done;

static void count_op(struct ksync_op *op)
{
	(void)op;
	op_done++;
}

/*
 * An op with a random deadline or a cancel at a random moment, a thread
 * waiting without deadline, and set+clear (or, one time in four, a clear
 * alone) right around the deadline or cancel. The op ends exactly once:
 * 0 only if a set came; the thread is released exactly when a set came.
 */
static void test_cancel_and_timeout_race_set_clear(void **state)
{
	uint64_t seed = 4242;
	int got = 0, cancelled = 0, timed_out = 0, unset = 0;

	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;

		assert_int_equal(ksync_loop_init(&loop, 16, ring_setups[s]), 0);
		for (int i = 0; i < 1000; i++) {
			struct ksync_op op;
			bool use_timeout = rnd(&seed) & 1;
			pthread_t rel, w = 0;
			struct timespec tdl;

			assert_int_equal(ksync_revent_init(&ev, 0), 0);
			do_set = rnd(&seed) % 4 != 0;
			go = 0;
			thread_result = 1;
			rel = spawn(racer, NULL);
			if (do_set) {	/* it must be waiting before the set */
				thread_tid = 0;
				w = spawn(thread_wait, NULL);
				wait_until(peek(thread_tid));
				wait_futex_asleep(peek(thread_tid));
			}
			ksync_op_revent(&op, &ev);
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
				assert_true(do_set);
				got++;
			} else if (op.result == -ECANCELED) {
				cancelled++;
			} else {
				assert_int_equal(op.result, -ETIMEDOUT);
				timed_out++;
			}
			if (do_set) {
				join(w);
				assert_int_equal(thread_result, 0);
			} else {
				unset++;
				tdl = in_ns(0);
				assert_int_equal(ksync_revent_wait_until(&ev, CLOCK_MONOTONIC, &tdl),
						 -ETIMEDOUT);
			}
		}
		ksync_loop_exit(&loop);
	}
	print_message("revent race: %d released, %d cancelled, %d timed out (%d without set)\n",
		      got, cancelled, timed_out, unset);
	assert_true(got > 0 && cancelled > 0 && timed_out > 0);
}

/* ---- process-shared ----------------------------------------------------- */

static void test_shared_between_processes(void **state)
{
	struct ksync_revent *sev = mmap(NULL, sizeof(*sev), PROT_READ | PROT_WRITE,
					MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int status;
	pid_t child;

	(void)state;
	assert_true(sev != MAP_FAILED);
	assert_int_equal(ksync_revent_init(sev, KSYNC_SHARED), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct timespec dl;

		ksync_deadline_after(&dl, CLOCK_MONOTONIC, 10000000000LL);
		_exit(ksync_revent_wait_until(sev, CLOCK_MONOTONIC, &dl) == 0 ? 0 : 1);
	}
	wait_until(peek(sev->word) & KSYNC_REVENT_WAITERS);
	sleep_ns(5000000);
	assert_int_equal(ksync_revent_set(sev), 1);
	assert_int_equal(ksync_revent_clear(sev), 1);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	munmap(sev, sizeof(*sev));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basics_and_misuse),
		async_unit_test(test_set_clear_releases_every_world),
		async_unit_test(test_task_on_another_ring_sets),
		async_unit_test(test_task_sets_for_tasks_on_its_ring),
		async_unit_test(test_after_clear_waits_for_next_set),
		async_unit_test(test_one_wake_reaches_everyone),
		cmocka_unit_test(test_thread_parks_after_set_clear),
		async_unit_test(test_late_sqe_after_set_clear),
		async_unit_test(test_cancel_and_timeout_race_set_clear),
		cmocka_unit_test(test_shared_between_processes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
