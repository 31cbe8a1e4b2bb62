/* SPDX-License-Identifier: MIT */
/*
 * Barrier and RBarrier. Claims:
 * - init/wait/try/abort/reset/destroy return what barrier.h says; misuse is
 *   refused without arriving;
 * - cycles made of threads, tasks on either ring setup and a poll loop
 *   complete, again and again, each handing out every index once;
 * - a timeout (thread, task, poll-loop task), a cancel or an abort breaks
 *   the barrier: the one that broke it reports its reason, every other
 *   waiter of every world and every later arrival gets -EPIPE;
 * - RBarrier: reset breaks the current waiters, in every world, and the
 *   barrier works again; arrivals after a reset wait until every waiter of
 *   the broken cycle has returned (thread and io_uring cases, forced);
 * - a timeout or cancel that races the release of its cycle either
 *   succeeds (with its index; the barrier is not broken) or breaks the
 *   barrier (nobody of that cycle succeeds): forced both ways, then
 *   thousands of random races with exact accounting;
 * - an op that cannot wait (no free SQE) does not arrive;
 * - process-shared: a parent and a child process pass a barrier together.
 */
#include "worlds.h"

#include <sys/mman.h>
#include <sys/wait.h>

static struct ksync_barrier bar;
static struct ksync_rbarrier rbar;

static void test_basics_and_misuse(void **state)
{
	struct timespec bad = { 0, -5 }, past = { 1, 0 };
	struct ksync_barrier one = KSYNC_BARRIER_INIT(1), sh = KSYNC_BARRIER_SHARED_INIT(2);
	struct ksync_rbarrier r1 = KSYNC_RBARRIER_INIT(1);

	(void)state;
	assert_int_equal(ksync_barrier_init(&bar, 0, 0), -EINVAL);
	assert_int_equal(ksync_barrier_init(&bar, KSYNC_BARRIER_PARTIES_MAX + 1, 0), -EINVAL);
	assert_int_equal(ksync_barrier_init(&bar, 2, 2), -EINVAL);
	assert_int_equal(ksync_rbarrier_init(&rbar, 0, 0), -EINVAL);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ksync_barrier_wait(&one), 0);		/* alone: passes */
		assert_int_equal(ksync_barrier_try(&one), 0);
		assert_int_equal(ksync_rbarrier_wait(&r1), 0);
	}
	assert_int_equal(sh.flags, KSYNC_SHARED);

	assert_int_equal(ksync_barrier_init(&bar, 2, 0), 0);
	assert_int_equal(ksync_barrier_try(&bar), -EAGAIN);	/* would wait: not arrived */
	assert_int_equal(ksync_barrier_waiting(&bar), 0);
	assert_int_equal(ksync_barrier_wait_until(&bar, CLOCK_MONOTONIC, &bad), -EINVAL);
	assert_int_equal(ksync_barrier_wait_until(&bar, CLOCK_BOOTTIME, &past), -EINVAL);
	assert_int_equal(ksync_barrier_waiting(&bar), 0);	/* did not arrive */
	assert_false(ksync_barrier_broken(&bar));
	assert_int_equal(ksync_barrier_destroy(&bar), 0);
	/* A deadline already past: it arrives, cannot wait, breaks it. */
	assert_int_equal(ksync_barrier_wait_until(&bar, CLOCK_MONOTONIC, &past), -ETIMEDOUT);
	assert_true(ksync_barrier_broken(&bar));
	assert_int_equal(ksync_barrier_wait(&bar), -EPIPE);
	assert_int_equal(ksync_barrier_try(&bar), -EPIPE);
	assert_int_equal(ksync_barrier_abort(&bar), 0);		/* broken already */
	assert_int_equal(ksync_barrier_waiting(&bar), 0);
	assert_int_equal(ksync_barrier_destroy(&bar), 0);

	assert_int_equal(ksync_barrier_init(&bar, 3, 0), 0);
	assert_int_equal(ksync_barrier_abort(&bar), 1);
	assert_int_equal(ksync_barrier_wait(&bar), -EPIPE);

	/* RBarrier: reset makes a broken one new; reset of a new one is a no-op. */
	assert_int_equal(ksync_rbarrier_init(&rbar, 2, 0), 0);
	assert_int_equal(ksync_rbarrier_reset(&rbar), 0);
	assert_false(ksync_rbarrier_broken(&rbar));
	assert_int_equal(ksync_rbarrier_abort(&rbar), 1);
	assert_int_equal(ksync_rbarrier_try(&rbar), -EPIPE);
	assert_int_equal(ksync_rbarrier_reset(&rbar), 0);
	assert_false(ksync_rbarrier_broken(&rbar));
	assert_int_equal(ksync_rbarrier_try(&rbar), -EAGAIN);
	assert_int_equal(ksync_rbarrier_waiting(&rbar), 0);
	assert_int_equal(ksync_rbarrier_destroy(&rbar), 0);
}

/* ---- groups of arrivals in every world ---------------------------------- */

enum { MAX_ROUNDS = 4, MAX_PARTIES = 512 };

struct tally {
	int ok, epipe, timedout, cancelled, other;
	uint8_t index[MAX_ROUNDS][MAX_PARTIES];	/* times each index was handed out */
};

static struct tally tally;

static int bar_wait(struct group *g, int who)
{
	(void)who;
	if (g->deadline_ns > 0) {
		struct timespec dl = in_ns(g->deadline_ns);

		return ksync_barrier_wait_until(g->prim, CLOCK_MONOTONIC, &dl);
	}
	return ksync_barrier_wait(g->prim);
}

static int rbar_wait(struct group *g, int who)
{
	(void)who;
	return ksync_rbarrier_wait(g->prim);
}

static void bar_init(struct group *g, struct ksync_op *op)
{
	ksync_op_barrier(op, g->prim);
}

static void rbar_init(struct group *g, struct ksync_op *op)
{
	ksync_op_rbarrier(op, g->prim);
}

static void tally_result(struct group *g, int who, int round, int value)
{
	(void)g, (void)who;
	if (value >= 0) {
		assert_true(round < MAX_ROUNDS && value < MAX_PARTIES);
		__atomic_add_fetch(&tally.index[round][value], 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&tally.ok, 1, __ATOMIC_RELAXED);
	} else if (value == -EPIPE) {
		__atomic_add_fetch(&tally.epipe, 1, __ATOMIC_RELAXED);
	} else if (value == -ETIMEDOUT) {
		__atomic_add_fetch(&tally.timedout, 1, __ATOMIC_RELAXED);
	} else if (value == -ECANCELED) {
		__atomic_add_fetch(&tally.cancelled, 1, __ATOMIC_RELAXED);
	} else {
		print_message("unexpected outcome %d\n", value);
		__atomic_add_fetch(&tally.other, 1, __ATOMIC_RELAXED);
	}
}

static const struct group_ops barrier_arrivals = {
	.wait = bar_wait,
	.init = bar_init,
	.on_result = tally_result,
};

static const struct group_ops rbarrier_arrivals = {
	.wait = rbar_wait,
	.init = rbar_init,
	.on_result = tally_result,
};

static const int group_size[N_WORLDS] = { 4, 60, 60, 20 };

static int all_parties(void)
{
	int n = 0;

	for (int w = 0; w < N_WORLDS; w++)
		n += group_size[w];
	return n;
}

static void start_groups(struct group *gs, const struct group_ops *ops, void *prim, int rounds)
{
	for (int w = 0; w < N_WORLDS; w++) {
		gs[w] = (struct group){ .world = (enum world)w, .n = group_size[w],
					.rounds = rounds, .ops = ops, .prim = prim };
		group_start(&gs[w]);
	}
}

static void join_groups(struct group *gs)
{
	for (int w = 0; w < N_WORLDS; w++)
		group_join(&gs[w]);
}

/* Every round was one cycle that handed out each index exactly once. */
static void assert_cycles(int rounds, int parties)
{
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < parties; i++)
			assert_int_equal(tally.index[r][i], 1);
}

static void test_cycles_across_every_world(void **state)
{
	enum { ROUNDS = 3 };
	struct group gs[N_WORLDS];

	(void)state;
	memset(&tally, 0, sizeof(tally));
	assert_int_equal(ksync_barrier_init(&bar, (uint32_t)all_parties(), 0), 0);
	start_groups(gs, &barrier_arrivals, &bar, ROUNDS);
	join_groups(gs);
	assert_int_equal(tally.ok, ROUNDS * all_parties());
	assert_cycles(ROUNDS, all_parties());
	assert_false(ksync_barrier_broken(&bar));
	assert_int_equal(ksync_barrier_destroy(&bar), 0);
}

/* One more party than arrive, so the cycle can only end by breaking; the
 * breaker is a group of one, in world @w, with a deadline (or a cancel). */
static int64_t cancel_soon(struct group *g, int who, int round)
{
	(void)g, (void)who, (void)round;
	return 20000;	/* µs */
}

static const struct group_ops barrier_cancelled = {
	.wait = bar_wait,
	.init = bar_init,
	.on_result = tally_result,
	.cancel_after_us = cancel_soon,
};

static void break_with(enum world w, bool cancel)
{
	struct group gs[N_WORLDS], breaker;

	memset(&tally, 0, sizeof(tally));
	assert_int_equal(ksync_barrier_init(&bar, (uint32_t)all_parties() + 2, 0), 0);
	start_groups(gs, &barrier_arrivals, &bar, 1);
	for (int i = 0; i < N_WORLDS; i++)
		group_wait_parked(&gs[i]);
	breaker = (struct group){ .world = w, .n = 1, .ops = cancel ? &barrier_cancelled
								   : &barrier_arrivals,
				  .prim = &bar, .deadline_ns = cancel ? 0 : 20000000 };
	group_start(&breaker);
	group_join(&breaker);
	join_groups(gs);
	assert_int_equal(cancel ? tally.cancelled : tally.timedout, 1);
	assert_int_equal(tally.epipe, all_parties());
	assert_int_equal(tally.ok + tally.other, 0);
	assert_true(ksync_barrier_broken(&bar));
	assert_int_equal(ksync_barrier_wait(&bar), -EPIPE);	/* later arrivals too */
	assert_int_equal(ksync_barrier_destroy(&bar), 0);	/* everyone left */
}

static void test_timeout_breaks_every_world(void **state)
{
	(void)state;
	for (int w = 0; w < N_WORLDS; w++)
		break_with((enum world)w, false);
}

static void test_cancel_breaks_every_world(void **state)
{
	(void)state;
	break_with(W_RING, true);
	break_with(W_RING_DEFER, true);
}

static void test_abort_breaks_every_world(void **state)
{
	struct group gs[N_WORLDS];

	(void)state;
	memset(&tally, 0, sizeof(tally));
	assert_int_equal(ksync_barrier_init(&bar, (uint32_t)all_parties() + 1, 0), 0);
	start_groups(gs, &barrier_arrivals, &bar, 1);
	for (int w = 0; w < N_WORLDS; w++)
		group_wait_parked(&gs[w]);
	assert_int_equal(ksync_barrier_waiting(&bar), all_parties());
	assert_int_equal(ksync_barrier_destroy(&bar), -EBUSY);
	assert_int_equal(ksync_barrier_abort(&bar), 1);
	join_groups(gs);
	assert_int_equal(tally.epipe, all_parties());
	assert_int_equal(ksync_barrier_destroy(&bar), 0);
}

/* RBarrier: reset breaks the waiters of every world; then cycles work. */
static void test_reset_then_cycles(void **state)
{
	struct group gs[N_WORLDS];

	(void)state;
	memset(&tally, 0, sizeof(tally));
	assert_int_equal(ksync_rbarrier_init(&rbar, (uint32_t)all_parties() + 1, 0), 0);
	start_groups(gs, &rbarrier_arrivals, &rbar, 1);
	for (int w = 0; w < N_WORLDS; w++)
		group_wait_parked(&gs[w]);
	assert_int_equal(ksync_rbarrier_reset(&rbar), 0);
	join_groups(gs);
	assert_int_equal(tally.epipe, all_parties());
	assert_false(ksync_rbarrier_broken(&rbar));	/* every waiter returned */

	memset(&tally, 0, sizeof(tally));
	assert_int_equal(ksync_rbarrier_init(&rbar, (uint32_t)all_parties(), 0), 0);
	assert_int_equal(ksync_rbarrier_abort(&rbar), 1);
	assert_int_equal(ksync_rbarrier_reset(&rbar), 0);
	start_groups(gs, &rbarrier_arrivals, &rbar, 2);
	join_groups(gs);
	assert_int_equal(tally.ok, 2 * all_parties());
	assert_cycles(2, all_parties());
}

/* ---- forced interleavings ----------------------------------------------- */

enum { ROLE_W = 1, ROLE_X };

struct arrival {
	int role;
	bool rbarrier;
	int64_t deadline_ns;	/* 0: none; < 0: already past */
	pid_t tid;
	int result;
	int done;
};

static void *arrival_main(void *arg)
{
	struct arrival *a = arg;
	struct timespec dl = in_ns(a->deadline_ns > 0 ? a->deadline_ns : 0);
	const struct timespec *dlp = a->deadline_ns ? &dl : NULL;

	set_role(a->role);
	__atomic_store_n(&a->tid, self_tid(), __ATOMIC_RELEASE);
	a->result = a->rbarrier ? ksync_rbarrier_wait_until(&rbar, CLOCK_MONOTONIC, dlp)
				: ksync_barrier_wait_until(&bar, CLOCK_MONOTONIC, dlp);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* A thread's timeout decided after its cycle completed: it succeeds. */
static void test_thread_timeout_loses_to_release(void **state)
{
	struct arrival w = { .role = ROLE_W, .deadline_ns = -1 };
	int giving_up;
	pthread_t t;

	(void)state;
	assert_int_equal(ksync_barrier_init(&bar, 2, 0), 0);
	giving_up = arm(ROLE_W, "barrier.give_up");
	t = spawn(arrival_main, &w);
	wait_arrived(giving_up);		/* W arrived, timed out, about to decide */
	assert_int_equal(ksync_barrier_wait(&bar), 1);	/* completes the cycle */
	resume(giving_up);
	join(t);
	assert_int_equal(w.result, 0);		/* success, index 0, despite the timeout */
	assert_false(ksync_barrier_broken(&bar));
	assert_int_equal(ksync_barrier_destroy(&bar), 0);
}

/* A thread's timeout decided before the last arrival: it breaks it. */
static void test_thread_timeout_wins(void **state)
{
	struct arrival w = { .role = ROLE_W, .deadline_ns = -1 };
	pthread_t t;

	(void)state;
	assert_int_equal(ksync_barrier_init(&bar, 2, 0), 0);
	t = spawn(arrival_main, &w);
	join(t);
	assert_int_equal(w.result, -ETIMEDOUT);
	assert_int_equal(ksync_barrier_wait(&bar), -EPIPE);
}

/* An op whose cancel is queued after the release of its cycle has been
 * posted: it passed, and reports its index (the cancel found nothing or
 * lost). Three parties: a thread (index 0), the op (1), this thread (2). */
static void test_op_cancel_after_release(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct arrival first = { .role = ROLE_X };
		struct io_uring ring;
		struct io_uring_cqe *cqe;
		struct ksync_op op;
		int r = KSYNC_OP_PENDING;
		pthread_t t;

		assert_int_equal(ksync_barrier_init(&bar, 3, 0), 0);
		assert_int_equal(io_uring_queue_init(8, &ring, ring_setups[s]), 0);
		t = spawn(arrival_main, &first);
		wait_until(ksync_barrier_waiting(&bar) == 1);
		ksync_op_barrier(&op, &bar);
		assert_int_equal(ksync_op_start(&op, &ring), KSYNC_OP_PENDING);
		assert_int_equal(io_uring_submit(&ring), 1);
		assert_int_equal(ksync_barrier_waiting(&bar), 2);
		assert_int_equal(ksync_barrier_wait(&bar), 2);	/* the release */
		assert_int_equal(ksync_op_cancel(&op, &ring), 0);
		while (r == KSYNC_OP_PENDING) {
			assert_true(io_uring_submit_and_wait(&ring, 1) >= 0);
			assert_int_equal(io_uring_wait_cqe(&ring, &cqe), 0);
			r = ksync_op_complete(&op, &ring, cqe);
			io_uring_cqe_seen(&ring, cqe);
		}
		assert_int_equal(r, 0);
		assert_int_equal(op.result, 1);		/* its index, not -ECANCELED */
		join(t);
		assert_int_equal(first.result, 0);
		assert_false(ksync_barrier_broken(&bar));
		io_uring_queue_exit(&ring);
	}
}

/* An op cancelled before the last arrival breaks the barrier. */
static void test_op_cancel_before_release(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;
		struct ksync_op op;

		assert_int_equal(ksync_barrier_init(&bar, 2, 0), 0);
		assert_int_equal(ksync_loop_init(&loop, 8, ring_setups[s]), 0);
		ksync_op_barrier(&op, &bar);
		assert_int_equal(loop_start(&loop, &op, NULL), 0);
		assert_true(ksync_loop_run_once(&loop, 0) >= 0);
		assert_int_equal(ksync_loop_cancel(&loop, &op), 0);
		assert_int_equal(ksync_loop_run(&loop), 0);
		assert_int_equal(op.result, -ECANCELED);
		assert_int_equal(ksync_barrier_wait(&bar), -EPIPE);
		ksync_loop_exit(&loop);
	}
}

/* An op that cannot wait (the SQ ring is full) does not arrive. */
static void test_op_without_sqe_does_not_arrive(void **state)
{
	struct io_uring ring;
	struct ksync_op op;

	(void)state;
	assert_int_equal(ksync_barrier_init(&bar, 2, 0), 0);
	assert_int_equal(io_uring_queue_init(2, &ring, 0), 0);
	while (io_uring_get_sqe(&ring))
		;
	ksync_op_barrier(&op, &bar);
	assert_int_equal(ksync_op_start(&op, &ring), -EBUSY);
	assert_int_equal(ksync_barrier_waiting(&bar), 0);
	assert_false(ksync_barrier_broken(&bar));
	io_uring_queue_exit(&ring);
}

/*
 * After a reset, arrivals wait until every waiter of the broken cycle has
 * returned: W is stopped before its futex wait when the barrier breaks and
 * is reset; X, arriving then, must wait (not join the broken cycle, not
 * see a barrier that looks new to W) until W has returned -EPIPE.
 */
static void test_reset_waits_for_broken_waiters(void **state)
{
	struct arrival w = { .role = ROLE_W, .rbarrier = true };
	struct arrival x = { .role = ROLE_X, .rbarrier = true };
	int park;
	pthread_t tw, tx;

	(void)state;
	assert_int_equal(ksync_rbarrier_init(&rbar, 2, 0), 0);
	park = arm(ROLE_W, "barrier.wait.park");
	tw = spawn(arrival_main, &w);
	wait_arrived(park);			/* W counted, not asleep yet */
	assert_int_equal(ksync_rbarrier_abort(&rbar), 1);
	assert_int_equal(ksync_rbarrier_reset(&rbar), 0);
	assert_true(ksync_rbarrier_broken(&rbar));	/* W has not returned */
	tx = spawn(arrival_main, &x);
	wait_until(peek(x.tid));
	wait_futex_asleep(peek(x.tid));		/* X waits for the reset */
	assert_false(peek(x.done));
	resume(park);				/* W sees the break, returns */
	join(tw);
	assert_int_equal(w.result, -EPIPE);
	wait_until(ksync_rbarrier_waiting(&rbar) == 1);	/* X arrived anew */
	assert_int_equal(ksync_rbarrier_wait(&rbar), 1);
	join(tx);
	assert_int_equal(x.result, 0);
}

/* The same with an io_uring waiter whose wait reaches the kernel only
 * after the break and the reset (a late SQE). */
static void test_reset_waits_for_late_sqe(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct arrival x = { .role = ROLE_X, .rbarrier = true };
		struct io_uring ring;
		struct io_uring_cqe *cqe;
		struct ksync_op op;
		pthread_t tx;

		assert_int_equal(ksync_rbarrier_init(&rbar, 2, 0), 0);
		assert_int_equal(io_uring_queue_init(8, &ring, ring_setups[s]), 0);
		ksync_op_rbarrier(&op, &rbar);
		assert_int_equal(ksync_op_start(&op, &ring), KSYNC_OP_PENDING);
		assert_int_equal(ksync_rbarrier_abort(&rbar), 1);
		assert_int_equal(ksync_rbarrier_reset(&rbar), 0);
		tx = spawn(arrival_main, &x);
		wait_until(peek(x.tid));
		wait_futex_asleep(peek(x.tid));
		assert_int_equal(io_uring_submit_and_wait(&ring, 1), 1);
		assert_int_equal(io_uring_wait_cqe(&ring, &cqe), 0);
		assert_int_equal(cqe->res, -EAGAIN);
		assert_int_equal(ksync_op_complete(&op, &ring, cqe), 0);
		io_uring_cqe_seen(&ring, cqe);
		assert_int_equal(op.result, -EPIPE);
		wait_until(ksync_rbarrier_waiting(&rbar) == 1);
		assert_int_equal(ksync_rbarrier_wait(&rbar), 1);
		join(tx);
		assert_int_equal(x.result, 0);
		io_uring_queue_exit(&ring);
	}
}

/* ---- random races ------------------------------------------------------- */

static int go;
static int releaser_result;

static void *releaser(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
		;
	releaser_result = ksync_barrier_wait(&bar);
	return NULL;
}

static int op_done;

static void count_op(struct ksync_op *op)
{
	(void)op;
	op_done++;
}

/*
 * Two parties: an op with a random deadline, or cancelled at a random
 * moment, and a thread arriving right around then. Either both pass with
 * indices {0, 1} and the barrier is not broken, or the op failed with its
 * own reason, broke the barrier, and the thread got -EPIPE.
 */
static void test_cancel_and_timeout_race_release(void **state)
{
	uint64_t seed = 99;
	int passed = 0, cancelled = 0, timed_out = 0;

	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;

		assert_int_equal(ksync_loop_init(&loop, 16, ring_setups[s]), 0);
		for (int i = 0; i < 1000; i++) {
			struct ksync_op op;
			bool use_timeout = rnd(&seed) & 1;
			pthread_t rel;

			assert_int_equal(ksync_barrier_init(&bar, 2, 0), 0);
			go = 0;
			releaser_result = 1000;
			rel = spawn(releaser, NULL);
			ksync_op_barrier(&op, &bar);
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
			if (op.result >= 0) {
				int idx = op.result;

				assert_true(idx == 0 || idx == 1);
				assert_int_equal(releaser_result, 1 - idx);
				assert_false(ksync_barrier_broken(&bar));
				passed++;
			} else {
				assert_int_equal(op.result, use_timeout ? -ETIMEDOUT : -ECANCELED);
				assert_int_equal(releaser_result, -EPIPE);
				assert_true(ksync_barrier_broken(&bar));
				use_timeout ? timed_out++ : cancelled++;
			}
			assert_int_equal(ksync_barrier_destroy(&bar), 0);
		}
		ksync_loop_exit(&loop);
	}
	print_message("barrier race: %d passed, %d cancelled, %d timed out\n", passed, cancelled,
		      timed_out);
	assert_true(passed > 0 && cancelled > 0 && timed_out > 0);
}

/* The same between two threads, one with a deadline. */
static void test_thread_timeout_race_release(void **state)
{
	uint64_t seed = 5;
	int passed = 0, timed_out = 0;

	(void)state;
	for (int i = 0; i < 1000; i++) {
		struct timespec dl;
		pthread_t rel;
		int r;

		assert_int_equal(ksync_barrier_init(&bar, 2, 0), 0);
		go = 0;
		releaser_result = 1000;
		rel = spawn(releaser, NULL);
		dl = in_ns(100000 + rnd(&seed) % 60000);
		__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
		r = ksync_barrier_wait_until(&bar, CLOCK_MONOTONIC, &dl);
		join(rel);
		if (r >= 0) {
			assert_true(r == 0 || r == 1);
			assert_int_equal(releaser_result, 1 - r);
			passed++;
		} else {
			assert_int_equal(r, -ETIMEDOUT);
			assert_int_equal(releaser_result, -EPIPE);
			timed_out++;
		}
	}
	print_message("barrier thread race: %d passed, %d timed out\n", passed, timed_out);
	assert_true(passed > 0);
}

/* ---- process-shared ----------------------------------------------------- */

static void test_shared_between_processes(void **state)
{
	struct ksync_barrier *sb = mmap(NULL, sizeof(*sb), PROT_READ | PROT_WRITE,
					MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int status, mine, theirs;
	pid_t child;

	(void)state;
	assert_true(sb != MAP_FAILED);
	assert_int_equal(ksync_barrier_init(sb, 2, KSYNC_SHARED), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct timespec dl;
		int r;

		ksync_deadline_after(&dl, CLOCK_MONOTONIC, 10000000000LL);
		r = ksync_barrier_wait_until(sb, CLOCK_MONOTONIC, &dl);
		_exit(r == 0 || r == 1 ? r : 2);
	}
	sleep_ns(5000000);
	mine = ksync_barrier_wait(sb);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	theirs = WEXITSTATUS(status);
	assert_true((mine == 0 && theirs == 1) || (mine == 1 && theirs == 0));
	munmap(sb, sizeof(*sb));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basics_and_misuse),
		async_unit_test(test_cycles_across_every_world),
		async_unit_test(test_timeout_breaks_every_world),
		async_unit_test(test_cancel_breaks_every_world),
		async_unit_test(test_abort_breaks_every_world),
		async_unit_test(test_reset_then_cycles),
		cmocka_unit_test(test_thread_timeout_loses_to_release),
		cmocka_unit_test(test_thread_timeout_wins),
		async_unit_test(test_op_cancel_after_release),
		async_unit_test(test_op_cancel_before_release),
		async_unit_test(test_op_without_sqe_does_not_arrive),
		cmocka_unit_test(test_reset_waits_for_broken_waiters),
		async_unit_test(test_reset_waits_for_late_sqe),
		async_unit_test(test_cancel_and_timeout_race_release),
		cmocka_unit_test(test_thread_timeout_race_release),
		cmocka_unit_test(test_shared_between_processes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
