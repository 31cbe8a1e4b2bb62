/* SPDX-License-Identifier: MIT */
/*
 * One start convention for every driver, and a restart idiom that cannot
 * recurse.
 *
 * Claims:
 * - ksync_op_start, ksync_loop_start and ksync_poller_start all return 0
 *   for an op that finished at once (no callback) and KSYNC_OP_PENDING for
 *   one whose callback comes later.
 * - The idiom of <ksync/op.h> (handle, restart, loop while the restart
 *   finished at once) takes 1 000 000 queued permits in constant stack in
 *   every driver.
 * - Mixed with real waits (a thread releasing while the task takes), every
 *   permit is taken exactly once and the stack stays constant.
 */
#include "harness.h"
#include "ksync/poller.h"

#include <liburing.h>

#define QUEUED 1000000u

static struct ksync_sem sem;

struct taker {
	struct ksync_op op;
	unsigned want, got;
	uintptr_t sp_min, sp_max;
	int (*start)(struct taker *t);	/* the driver's start */
	struct ksync_loop *loop;
	struct ksync_poller *poller;
};

static void note_stack(struct taker *t)
{
	volatile char here;
	uintptr_t sp = (uintptr_t)&here;

	if (!t->sp_min || sp < t->sp_min)
		t->sp_min = sp;
	if (sp > t->sp_max)
		t->sp_max = sp;
}

/* The idiom: a loop, not a recursive call. */
static void on_permit(struct ksync_op *op)
{
	struct taker *t = op->data;

	do {
		note_stack(t);
		assert_int_equal(op->result, 0);
		t->got++;
		if (t->got == t->want)
			return;
		ksync_op_sem(op, &sem);
		op->data = t;
	} while (t->start(t) == 0);
}

static int start_loop(struct taker *t)
{
	int r = ksync_loop_start(t->loop, &t->op, on_permit);

	assert_true(r == 0 || r == KSYNC_OP_PENDING);
	return r;
}

static int start_poller(struct taker *t)
{
	int r = ksync_poller_start(t->poller, &t->op, on_permit);

	assert_true(r == 0 || r == KSYNC_OP_PENDING);
	return r;
}

static void begin(struct taker *t)
{
	ksync_op_sem(&t->op, &sem);
	t->op.data = t;
	if (t->start(t) == 0)
		on_permit(&t->op);
}

static void assert_flat(const struct taker *t)
{
	print_message("%u permits, stack spread %lu bytes\n", t->got,
		      (unsigned long)(t->sp_max - t->sp_min));
	assert_int_equal(t->got, t->want);
	assert_true(t->sp_max - t->sp_min < 512);
}

static void test_convention_raw_op(void **state)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	struct ksync_op op;

	(void)state;
	assert_int_equal(io_uring_queue_init(4, &ring, 0), 0);
	assert_int_equal(ksync_sem_init(&sem, 1, 0, 0), 0);
	ksync_op_sem(&op, &sem);
	assert_int_equal(ksync_op_start(&op, &ring), 0);		/* done at once */
	assert_int_equal(op.result, 0);
	ksync_op_sem(&op, &sem);
	assert_int_equal(ksync_op_start(&op, &ring), KSYNC_OP_PENDING);
	assert_int_equal(io_uring_submit(&ring), 1);
	assert_int_equal(ksync_sem_release(&sem, 2), 0);
	assert_int_equal(io_uring_wait_cqe(&ring, &cqe), 0);
	assert_int_equal(ksync_op_complete(&op, &ring, cqe), 0);
	io_uring_cqe_seen(&ring, cqe);
	assert_int_equal(op.result, 0);
	assert_int_equal(ksync_sem_value(&sem), 1);
	io_uring_queue_exit(&ring);
}

/* ksync never submits a ring it does not own: a full SQ is an error. */
static void test_full_ring_is_an_error(void **state)
{
	struct io_uring ring;
	struct ksync_op op;
	struct timespec dl = in_ns(1000000000);

	(void)state;
	assert_int_equal(io_uring_queue_init(2, &ring, 0), 0);
	assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
	assert_non_null(io_uring_get_sqe(&ring));	/* the framework's half-built chain */
	ksync_op_sem(&op, &sem);
	assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
	assert_int_equal(ksync_op_start(&op, &ring), -EBUSY);	/* needs two SQEs */
	assert_int_equal(io_uring_sq_ready(&ring), 1);		/* nothing submitted */
	assert_int_equal(peek(sem.waiters), 0);			/* nothing taken */
	assert_false(ksync_op_pending(&op));
	assert_int_equal(ksync_sem_release(&sem, 1), 0);
	assert_int_equal(ksync_op_start(&op, &ring), 0);	/* no SQE needed now */
	assert_int_equal(op.result, 0);
	io_uring_queue_exit(&ring);
}

static void test_loop_million_queued(void **state)
{
	struct ksync_loop loop;
	struct taker t = { .want = QUEUED, .start = start_loop, .loop = &loop };

	(void)state;
	assert_int_equal(ksync_sem_init(&sem, QUEUED, 0, 0), 0);
	assert_int_equal(ksync_loop_init(&loop, 8, 0), 0);
	begin(&t);
	assert_int_equal(ksync_loop_run(&loop), 0);
	assert_flat(&t);
	assert_int_equal(ksync_sem_value(&sem), 0);
	ksync_loop_exit(&loop);
}

static void test_poller_million_queued(void **state)
{
	struct ksync_poller p;
	struct taker t = { .want = QUEUED, .start = start_poller, .poller = &p };

	(void)state;
	assert_int_equal(ksync_sem_init(&sem, QUEUED, 0, 0), 0);
	assert_int_equal(ksync_poller_init(&p, 8), 0);
	begin(&t);
	assert_flat(&t);
	assert_int_equal(ksync_poller_busy(&p), 0);
	ksync_poller_exit(&p);
}

/* Permits trickle in from a thread: some starts finish at once, some wait. */
#define TRICKLE 20000u

static void *trickle(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < TRICKLE; i += 10) {
		assert_int_equal(ksync_sem_release(&sem, 10), 0);
		if (i % 1000 == 0)
			sleep_ns(20000);
	}
	return NULL;
}

static void test_loop_mixed_waits(void **state)
{
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;
		struct taker t = { .want = TRICKLE, .start = start_loop, .loop = &loop };
		pthread_t th;

		(void)state;
		assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
		assert_int_equal(ksync_loop_init(&loop, 8, ring_setups[s]), 0);
		th = spawn(trickle, NULL);
		begin(&t);
		assert_int_equal(ksync_loop_run(&loop), 0);
		join(th);
		assert_flat(&t);
		assert_int_equal(ksync_sem_value(&sem), 0);
		assert_int_equal(peek(sem.waiters), 0);
		ksync_loop_exit(&loop);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_convention_raw_op),
		cmocka_unit_test(test_full_ring_is_an_error),
		cmocka_unit_test(test_loop_million_queued),
		cmocka_unit_test(test_poller_million_queued),
		cmocka_unit_test(test_loop_mixed_waits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
