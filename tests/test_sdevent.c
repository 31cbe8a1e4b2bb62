/* SPDX-License-Identifier: MIT */
/*
 * sd-event adapter: a thread and an sd-event loop, and an sd-event loop and
 * an io_uring loop, sharing each primitive; timeouts and cancels racing
 * wakes; detach, and sd_event_unref, with waits pending.
 */
#include "harness.h"
#include "ksync/sdevent.h"

static struct ksync_lock lock;
static struct ksync_sem sem;
static struct ksync_event ev, ev2;
static struct ksync_sdevent ad;		/* the adapter under test */
static int ops_done;
static int thread_result;

static void count_done(struct ksync_op *op)
{
	(void)op;
	ops_done++;
}

static sd_event *new_attached(void)
{
	sd_event *e;

	assert_true(sd_event_new(&e) >= 0);
	assert_int_equal(ksync_sdevent_attach(&ad, e), 0);
	return e;
}

/* Run the sd-event loop until @cond, or fail after ~10 s. */
#define sd_run_until(e, cond) do {						\
	int64_t _end = ksync_clock_ns(CLOCK_MONOTONIC) + 10000000000LL;		\
	while (!(cond)) {							\
		assert_true(ksync_clock_ns(CLOCK_MONOTONIC) < _end);		\
		assert_true(sd_event_run((e), 100000) >= 0);			\
	}									\
} while (0)

/* Call @fn from the loop after @usec (a floating timer source; accuracy 1 µs,
 * as 0 would mean sd-event's default of 250 ms). */
static void after_us(sd_event *e, uint64_t usec, sd_event_time_handler_t fn, void *data)
{
	assert_true(sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, usec, 1, fn, data) >= 0);
}

/* ---- blocking threads used by several tests ------------------------------- */

static void *blocking_lock(void *arg)
{
	struct timespec dl = in_ns(10000000000LL);

	(void)arg;
	thread_result = ksync_lock_acquire_until(&lock, CLOCK_MONOTONIC, &dl);
	if (thread_result == 0)
		assert_int_equal(ksync_lock_release(&lock), 0);
	return NULL;
}

static void *blocking_sem(void *arg)
{
	struct timespec dl = in_ns(10000000000LL);

	(void)arg;
	thread_result = ksync_sem_acquire_until(&sem, CLOCK_MONOTONIC, &dl);
	return NULL;
}

static void *blocking_event2(void *arg)
{
	struct timespec dl = in_ns(10000000000LL);

	(void)arg;
	thread_result = ksync_event_wait_until(&ev2, CLOCK_MONOTONIC, &dl);
	return NULL;
}

/* ---- attach, detach, misuse ------------------------------------------------ */

static void test_attach_basics(void **state)
{
	struct ksync_op op;
	sd_event *e;

	(void)state;
	assert_int_equal(ksync_sdevent_attach(&ad, NULL), -EINVAL);
	ksync_sdevent_detach(&ad);			/* failed attach: no-op */
	ksync_event_init(&ev, 0);
	ksync_op_event(&op, &ev);
	assert_int_equal(ksync_sdevent_start(&ad, &op, count_done), -ESHUTDOWN);
	assert_int_equal(ksync_sdevent_cancel(&ad, &op), -EALREADY);

	e = new_attached();
	assert_non_null(ad.source);
	/* Already set: done inside start, no callback. */
	ksync_event_set(&ev);
	ops_done = 0;
	assert_int_equal(ksync_sdevent_start(&ad, &op, count_done), 0);
	assert_int_equal(op.result, 0);
	assert_true(sd_event_run(e, 0) >= 0);
	assert_int_equal(ops_done, 0);
	/* Lock misuse goes through unchanged. */
	ksync_lock_init(&lock, 0);
	ksync_op_lock(&op, &lock, 0);
	assert_int_equal(ksync_sdevent_start(&ad, &op, count_done), -EINVAL);
	ksync_op_lock(&op, &lock, 3);
	assert_int_equal(ksync_sdevent_start(&ad, &op, count_done), 0);
	ksync_op_lock(&op, &lock, 3);
	assert_int_equal(ksync_sdevent_start(&ad, &op, count_done), -EDEADLK);
	assert_int_equal(ksync_lock_release_task(&lock, 3), 0);

	ksync_sdevent_detach(&ad);
	ksync_sdevent_detach(&ad);
	assert_null(ad.event);
	assert_int_equal(ksync_sdevent_start(&ad, &op, count_done), -ESHUTDOWN);
	/* A finished loop refuses new sources. */
	assert_true(sd_event_exit(e, 0) >= 0);
	assert_true(sd_event_loop(e) >= 0);
	assert_int_equal(ksync_sdevent_attach(&ad, e), -ESTALE);
	ksync_sdevent_detach(&ad);
	sd_event_unref(e);
}

/* ---- thread <-> sd-event ------------------------------------------------- */

static int release_lock_5(sd_event_source *s, uint64_t usec, void *data)
{
	(void)s;
	(void)usec;
	(void)data;
	assert_int_equal(ksync_lock_release_task(&lock, 5), 0);
	ops_done++;
	return 0;
}

static void test_thread_sdevent_lock(void **state)
{
	struct holder h = { .lock = &lock };
	struct ksync_op op;
	sd_event *e;
	pthread_t t;

	(void)state;
	e = new_attached();
	ksync_lock_init(&lock, 0);

	/* thread -> sd-event callback */
	t = spawn(holder_main, &h);
	wait_until(__atomic_load_n(&h.held, __ATOMIC_ACQUIRE));
	ksync_op_lock(&op, &lock, 5);
	ops_done = 0;
	assert_int_equal(ksync_sdevent_start(&ad, &op, count_done), KSYNC_OP_PENDING);
	wait_until(peek(lock.word) & KSYNC_LOCK_CONTENDED);
	assert_true(sd_event_run(e, 2000) >= 0);
	assert_int_equal(ops_done, 0);		/* still held: no callback */
	__atomic_store_n(&h.release, 1, __ATOMIC_RELEASE);
	sd_run_until(e, ops_done == 1);
	join(t);
	assert_int_equal(h.ret, 0);
	assert_int_equal(op.result, 0);
	assert_int_equal(peek(lock.owner_token), 5);

	/* sd-event -> thread: a timer callback releases to a blocked thread. */
	t = spawn(blocking_lock, NULL);
	wait_until(peek(lock.word) & KSYNC_LOCK_CONTENDED);
	after_us(e, 1000, release_lock_5, NULL);
	sd_run_until(e, ops_done == 2);
	join(t);
	assert_int_equal(thread_result, 0);
	assert_int_equal(ksync_lock_destroy(&lock), 0);
	ksync_sdevent_detach(&ad);
	sd_event_unref(e);
}

static void *release_permits(void *arg)
{
	int n = (int)(intptr_t)arg;

	for (int i = 0; i < n; i++) {
		sleep_ns(200000);
		assert_int_equal(ksync_sem_release(&sem, 1), 0);
	}
	return NULL;
}

static int release_permit(sd_event_source *s, uint64_t usec, void *data)
{
	(void)s;
	(void)usec;
	(void)data;
	assert_int_equal(ksync_sem_release(&sem, 1), 0);
	ops_done++;
	return 0;
}

static void test_thread_sdevent_sem(void **state)
{
	struct ksync_op ops[4];
	sd_event *e;
	pthread_t t;

	(void)state;
	e = new_attached();
	assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);

	/* thread -> four sd-event callbacks, one permit each */
	ops_done = 0;
	for (int i = 0; i < 4; i++) {
		ksync_op_sem(&ops[i], &sem);
		assert_int_equal(ksync_sdevent_start(&ad, &ops[i], count_done), KSYNC_OP_PENDING);
	}
	t = spawn(release_permits, (void *)4);
	sd_run_until(e, ops_done == 4);
	join(t);
	for (int i = 0; i < 4; i++)
		assert_int_equal(ops[i].result, 0);
	assert_int_equal(ksync_sem_value(&sem), 0);

	/* sd-event -> thread */
	t = spawn(blocking_sem, NULL);
	wait_until(peek(sem.waiters) == 1);
	after_us(e, 1000, release_permit, NULL);
	sd_run_until(e, ops_done == 5);
	join(t);
	assert_int_equal(thread_result, 0);
	assert_int_equal(ksync_sem_destroy(&sem), 0);
	ksync_sdevent_detach(&ad);
	sd_event_unref(e);
}

static void *set_ev_later(void *arg)
{
	(void)arg;
	sleep_ns(1000000);
	ksync_event_set(&ev);
	return NULL;
}

/* The event's callback sets ev2, which a blocked thread waits for. */
static void set_ev2(struct ksync_op *op)
{
	assert_int_equal(op->result, 0);
	ksync_event_set(&ev2);
	ops_done++;
}

static void test_thread_sdevent_event(void **state)
{
	struct ksync_op ops[3];
	pthread_t setter, waiter;
	sd_event *e;

	(void)state;
	e = new_attached();
	ksync_event_init(&ev, 0);
	ksync_event_init(&ev2, 0);
	ops_done = 0;
	for (int i = 0; i < 3; i++) {
		ksync_op_event(&ops[i], &ev);
		assert_int_equal(ksync_sdevent_start(&ad, &ops[i], i ? count_done : set_ev2),
				 KSYNC_OP_PENDING);
	}
	waiter = spawn(blocking_event2, NULL);
	setter = spawn(set_ev_later, NULL);
	sd_run_until(e, ops_done == 3);
	join(setter);
	join(waiter);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ops[i].result, 0);
	assert_int_equal(thread_result, 0);
	ksync_sdevent_detach(&ad);
	sd_event_unref(e);
}

/* ---- sd-event <-> io_uring loop ------------------------------------------- */

/*
 * Lock: three sd-event tasks, three tasks on an io_uring loop in another
 * thread and one plain thread take one lock ROUNDS times each, holding it
 * across a timer. Nobody may ever be inside together.
 */
#define NTASKS	3
#define ROUNDS	40

struct task {
	struct ksync_op lock_op;
	struct ksync_op sleep_op;	/* ring tasks only */
	struct ksync_loop *loop;	/* NULL: an sd-event task */
	sd_event *e;
	int rounds;
};

static int inside, max_inside, grants;

static void enter(void)
{
	int n = __atomic_add_fetch(&inside, 1, __ATOMIC_ACQ_REL);

	if (n > __atomic_load_n(&max_inside, __ATOMIC_RELAXED))
		__atomic_store_n(&max_inside, n, __ATOMIC_RELAXED);
	__atomic_add_fetch(&grants, 1, __ATOMIC_RELAXED);
}

static void leave(void)
{
	__atomic_sub_fetch(&inside, 1, __ATOMIC_ACQ_REL);
}

static void task_locked(struct ksync_op *op);

static void task_acquire(struct task *t)
{
	ksync_op_lock(&t->lock_op, &lock, (uintptr_t)t);
	if (t->loop) {
		assert_int_equal(loop_start(t->loop, &t->lock_op, task_locked), 0);
	} else {
		int r = ksync_sdevent_start(&ad, &t->lock_op, task_locked);

		assert_true(r == 0 || r == KSYNC_OP_PENDING);
		if (r == 0)
			task_locked(&t->lock_op);
	}
}

static void task_release(struct task *t)
{
	leave();
	assert_int_equal(ksync_lock_release_task(&lock, (uintptr_t)t), 0);
	if (++t->rounds < ROUNDS)
		task_acquire(t);
}

static void ring_slept(struct ksync_op *op)
{
	task_release((struct task *)((char *)op - offsetof(struct task, sleep_op)));
}

static int sd_slept(sd_event_source *s, uint64_t usec, void *data)
{
	(void)s;
	(void)usec;
	task_release(data);
	return 0;
}

static void task_locked(struct ksync_op *op)
{
	struct task *t = (struct task *)op;

	assert_int_equal(op->result, 0);
	enter();
	if (t->loop)
		assert_int_equal(ksync_loop_sleep(t->loop, &t->sleep_op, 30000, ring_slept), 0);
	else
		after_us(t->e, 30, sd_slept, t);
}

static void *ring_tasks(void *arg)
{
	unsigned setup = (unsigned)(uintptr_t)arg;
	struct task tasks[NTASKS] = { 0 };
	struct ksync_loop loop;

	assert_int_equal(ksync_loop_init(&loop, 32, setup), 0);
	for (int i = 0; i < NTASKS; i++) {
		tasks[i].loop = &loop;
		task_acquire(&tasks[i]);
	}
	assert_int_equal(ksync_loop_run(&loop), 0);
	for (int i = 0; i < NTASKS; i++)
		assert_int_equal(tasks[i].rounds, ROUNDS);
	ksync_loop_exit(&loop);
	return NULL;
}

static void *thread_rounds(void *arg)
{
	(void)arg;
	for (int i = 0; i < ROUNDS; i++) {
		assert_int_equal(ksync_lock_acquire(&lock), 0);
		enter();
		sleep_ns(30000);
		leave();
		assert_int_equal(ksync_lock_release(&lock), 0);
	}
	return NULL;
}

static bool all_done(const struct task *tasks)
{
	for (int i = 0; i < NTASKS; i++)
		if (tasks[i].rounds < ROUNDS)
			return false;
	return true;
}

static void test_sdevent_uring_lock(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct task tasks[NTASKS] = { 0 };
		pthread_t ring, thr;
		sd_event *e = new_attached();

		ksync_lock_init(&lock, 0);
		inside = max_inside = grants = 0;
		ring = spawn(ring_tasks, (void *)(uintptr_t)ring_setups[s]);
		thr = spawn(thread_rounds, NULL);
		for (int i = 0; i < NTASKS; i++) {
			tasks[i].e = e;
			task_acquire(&tasks[i]);
		}
		sd_run_until(e, all_done(tasks));
		join(ring);
		join(thr);
		assert_int_equal(max_inside, 1);
		assert_int_equal(grants, (2 * NTASKS + 1) * ROUNDS);
		assert_int_equal(ksync_lock_destroy(&lock), 0);
		ksync_sdevent_detach(&ad);
		sd_event_unref(e);
	}
}

/*
 * Semaphore ping-pong: an io_uring task waits on ping and releases pong, an
 * sd-event task waits on pong and releases ping.
 */
#define PINGS 300

static struct ksync_sem ping, pong;
static int ring_pings, sd_pongs;

static void ring_got_ping(struct ksync_op *op)
{
	struct ksync_loop *loop = op->data;

	assert_int_equal(op->result, 0);
	ring_pings++;
	assert_int_equal(ksync_sem_release(&pong, 1), 0);
	if (ring_pings < PINGS) {
		ksync_op_sem(op, &ping);
		op->data = loop;
		assert_int_equal(loop_start(loop, op, ring_got_ping), 0);
	}
}

static void *ring_pinger(void *arg)
{
	unsigned setup = (unsigned)(uintptr_t)arg;
	struct ksync_loop loop;
	struct ksync_op op;

	assert_int_equal(ksync_loop_init(&loop, 8, setup), 0);
	ksync_op_sem(&op, &ping);
	op.data = &loop;
	assert_int_equal(loop_start(&loop, &op, ring_got_ping), 0);
	assert_int_equal(ksync_loop_run(&loop), 0);
	ksync_loop_exit(&loop);
	return NULL;
}

static void sd_got_pong(struct ksync_op *op)
{
	int r;

	do {
		assert_int_equal(op->result, 0);
		sd_pongs++;
		if (sd_pongs == PINGS)
			return;
		assert_int_equal(ksync_sem_release(&ping, 1), 0);
		ksync_op_sem(op, &pong);
		r = ksync_sdevent_start(&ad, op, sd_got_pong);
		assert_true(r == 0 || r == KSYNC_OP_PENDING);
	} while (r == 0);	/* had one at once: no callback comes */
}

static void test_sdevent_uring_sem(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		sd_event *e = new_attached();
		struct ksync_op op;
		pthread_t ring;

		assert_int_equal(ksync_sem_init(&ping, 0, 0, 0), 0);
		assert_int_equal(ksync_sem_init(&pong, 0, 0, 0), 0);
		ring_pings = sd_pongs = 0;
		ring = spawn(ring_pinger, (void *)(uintptr_t)ring_setups[s]);
		ksync_op_sem(&op, &pong);
		assert_int_equal(ksync_sdevent_start(&ad, &op, sd_got_pong), KSYNC_OP_PENDING);
		assert_int_equal(ksync_sem_release(&ping, 1), 0);
		sd_run_until(e, sd_pongs == PINGS);
		join(ring);
		assert_int_equal(ring_pings, PINGS);
		assert_int_equal(ksync_sem_value(&ping), 0);
		assert_int_equal(ksync_sem_value(&pong), 0);
		assert_int_equal(ksync_sem_destroy(&ping), 0);
		assert_int_equal(ksync_sem_destroy(&pong), 0);
		ksync_sdevent_detach(&ad);
		sd_event_unref(e);
	}
}

/* Event ping-pong: one fresh pair of one-shot events per round. */
static struct ksync_event pings[PINGS], pongs[PINGS];

static void ring_got_event(struct ksync_op *op)
{
	struct ksync_loop *loop = op->data;

	assert_int_equal(op->result, 0);
	ksync_event_set(&pongs[ring_pings]);
	if (++ring_pings < PINGS) {
		ksync_op_event(op, &pings[ring_pings]);
		op->data = loop;
		assert_int_equal(loop_start(loop, op, ring_got_event), 0);
	}
}

static void *ring_event_pinger(void *arg)
{
	unsigned setup = (unsigned)(uintptr_t)arg;
	struct ksync_loop loop;
	struct ksync_op op;

	assert_int_equal(ksync_loop_init(&loop, 8, setup), 0);
	ksync_op_event(&op, &pings[0]);
	op.data = &loop;
	assert_int_equal(loop_start(&loop, &op, ring_got_event), 0);
	assert_int_equal(ksync_loop_run(&loop), 0);
	ksync_loop_exit(&loop);
	return NULL;
}

static void sd_got_event(struct ksync_op *op)
{
	int r;

	do {
		assert_int_equal(op->result, 0);
		if (++sd_pongs == PINGS)
			return;
		ksync_event_set(&pings[sd_pongs]);
		ksync_op_event(op, &pongs[sd_pongs]);
		r = ksync_sdevent_start(&ad, op, sd_got_event);
		assert_true(r == 0 || r == KSYNC_OP_PENDING);
	} while (r == 0);
}

static void test_sdevent_uring_event(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		sd_event *e = new_attached();
		struct ksync_op op;
		pthread_t ring;

		for (int i = 0; i < PINGS; i++) {
			ksync_event_init(&pings[i], 0);
			ksync_event_init(&pongs[i], 0);
		}
		ring_pings = sd_pongs = 0;
		ring = spawn(ring_event_pinger, (void *)(uintptr_t)ring_setups[s]);
		ksync_op_event(&op, &pongs[0]);
		assert_int_equal(ksync_sdevent_start(&ad, &op, sd_got_event), KSYNC_OP_PENDING);
		ksync_event_set(&pings[0]);
		sd_run_until(e, sd_pongs == PINGS);
		join(ring);
		assert_int_equal(ring_pings, PINGS);
		ksync_sdevent_detach(&ad);
		sd_event_unref(e);
	}
}

/* ---- timeouts and cancels ---------------------------------------------------- */

static void test_timeout_and_cancel(void **state)
{
	struct ksync_op op;
	struct timespec dl;
	sd_event *e;

	(void)state;
	e = new_attached();
	ksync_event_init(&ev, 0);
	ops_done = 0;

	ksync_op_event(&op, &ev);
	dl = in_ns(20000000);
	assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
	assert_int_equal(ksync_sdevent_start(&ad, &op, count_done), KSYNC_OP_PENDING);
	sd_run_until(e, ops_done == 1);
	assert_int_equal(op.result, -ETIMEDOUT);
	assert_true(ksync_clock_ns(CLOCK_MONOTONIC) >= dl.tv_sec * 1000000000LL + dl.tv_nsec);

	ksync_op_event(&op, &ev);
	ksync_deadline_after(&dl, CLOCK_REALTIME, 10000000);
	assert_int_equal(ksync_op_set_deadline(&op, CLOCK_REALTIME, &dl), 0);
	assert_int_equal(ksync_sdevent_start(&ad, &op, count_done), KSYNC_OP_PENDING);
	sd_run_until(e, ops_done == 2);
	assert_int_equal(op.result, -ETIMEDOUT);

	ksync_op_event(&op, &ev);
	dl = (struct timespec){ 1, 0 };
	assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
	assert_int_equal(ksync_sdevent_start(&ad, &op, count_done), 0);
	assert_int_equal(op.result, -ETIMEDOUT);

	ksync_op_event(&op, &ev);
	assert_int_equal(ksync_sdevent_start(&ad, &op, count_done), KSYNC_OP_PENDING);
	assert_int_equal(ksync_sdevent_cancel(&ad, &op), 0);
	assert_int_equal(ksync_sdevent_cancel(&ad, &op), -EALREADY);
	sd_run_until(e, ops_done == 3);
	assert_int_equal(op.result, -ECANCELED);
	assert_int_equal(ksync_poller_busy(&ad.poller), 0);
	ksync_sdevent_detach(&ad);
	sd_event_unref(e);
}

/*
 * The lost-wakeup hunt, as in test_lock/test_sem but with the waiting task
 * in sd-event: a thread releases right around the sd-event op's deadline or
 * cancel while a blocking thread waits too. Whatever wins, the blocking
 * thread must get the lock or permit (its 10 s deadline fails the test).
 */
struct race {
	int kind;
	int held;
	int go;
};

static void *race_releaser(void *arg)
{
	struct race *r = arg;

	if (r->kind == KSYNC_KIND_LOCK)
		assert_int_equal(ksync_lock_acquire(&lock), 0);
	__atomic_store_n(&r->held, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
		;
	if (r->kind == KSYNC_KIND_LOCK)
		assert_int_equal(ksync_lock_release(&lock), 0);
	else
		assert_int_equal(ksync_sem_release(&sem, 1), 0);
	return NULL;
}

static void race(int kind)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull + (uint64_t)kind;
	int got = 0, cancelled = 0, timed_out = 0;
	sd_event *e = new_attached();

	for (int i = 0; i < 1500; i++) {
		struct race r = { .kind = kind };
		bool use_timeout = rnd(&seed) & 1;
		struct ksync_op op;
		pthread_t h, w;
		int started;

		if (kind == KSYNC_KIND_LOCK) {
			ksync_lock_init(&lock, 0);
			ksync_op_lock(&op, &lock, 1000 + i);
		} else {
			assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
			ksync_op_sem(&op, &sem);
		}
		thread_result = 1;
		h = spawn(race_releaser, &r);
		wait_until(__atomic_load_n(&r.held, __ATOMIC_ACQUIRE));
		if (use_timeout) {
			struct timespec dl = in_ns(150000 + rnd(&seed) % 60000);

			assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
		}
		ops_done = 0;
		/* Submitted at once: the wait is parked when start returns. A
		 * slow machine (sanitizers) may pass the deadline first: then
		 * the op is done at once, without a callback. */
		started = ksync_sdevent_start(&ad, &op, count_done);
		if (started == 0) {
			assert_int_equal(op.result, -ETIMEDOUT);
			ops_done = 1;
		} else {
			assert_int_equal(started, KSYNC_OP_PENDING);
		}
		w = spawn(kind == KSYNC_KIND_LOCK ? blocking_lock : blocking_sem, NULL);
		spin_ns(100000);
		__atomic_store_n(&r.go, 1, __ATOMIC_RELEASE);
		if (!use_timeout) {
			spin_ns(rnd(&seed) % 30000);
			ksync_sdevent_cancel(&ad, &op);
		}
		sd_run_until(e, ops_done == 1);
		switch (op.result) {
		case 0:
			got++;
			if (kind == KSYNC_KIND_LOCK) {
				assert_int_equal(peek(lock.owner_token), 1000 + i);
				assert_int_equal(ksync_lock_release_task(&lock, 1000 + i), 0);
			} else {
				assert_int_equal(ksync_sem_release(&sem, 1), 0);
			}
			break;
		case -ECANCELED:
			cancelled++;
			break;
		case -ETIMEDOUT:
			timed_out++;
			break;
		default:
			fail_msg("unexpected op result %d", op.result);
		}
		join(h);
		join(w);
		assert_int_equal(thread_result, 0);
		if (kind == KSYNC_KIND_LOCK) {
			assert_int_equal(ksync_lock_destroy(&lock), 0);
		} else {
			assert_int_equal(peek(sem.waiters), 0);
			assert_int_equal(ksync_sem_value(&sem), 0);
		}
	}
	print_message("sd-event %s race: %d granted, %d cancelled, %d timed out\n",
		      kind == KSYNC_KIND_LOCK ? "lock" : "sem", got, cancelled, timed_out);
	assert_true(got > 0 && cancelled > 0 && timed_out > 0);
	ksync_sdevent_detach(&ad);
	sd_event_unref(e);
}

static void test_lock_race(void **state)
{
	(void)state;
	race(KSYNC_KIND_LOCK);
}

static void test_sem_race(void **state)
{
	(void)state;
	race(KSYNC_KIND_SEM);
}

/* ---- detach and unref with waits pending ------------------------------------ */

/*
 * Each round a lock (or permit) is released, which may wake the sd-event op
 * first, and the adapter is detached at once (after the user's sd_event_unref
 * on odd rounds). The pending ops get -ECANCELED exactly once and the
 * blocking thread gets the lock or permit.
 */
static void test_detach_with_pending(void **state)
{
	(void)state;
	for (int i = 0; i < 400; i++) {
		bool is_lock = i & 1, unref_first = i & 2;
		struct ksync_op op, evop;
		sd_event *e = new_attached();
		pthread_t w;

		ops_done = 0;
		thread_result = 1;
		ksync_event_init(&ev, 0);
		ksync_op_event(&evop, &ev);
		assert_int_equal(ksync_sdevent_start(&ad, &evop, count_done), KSYNC_OP_PENDING);
		if (is_lock) {
			ksync_lock_init(&lock, 0);
			assert_int_equal(ksync_lock_acquire(&lock), 0);
			ksync_op_lock(&op, &lock, 1);
			assert_int_equal(ksync_sdevent_start(&ad, &op, count_done), KSYNC_OP_PENDING);
			w = spawn(blocking_lock, NULL);
			wait_until(peek(lock.word) & KSYNC_LOCK_CONTENDED);
		} else {
			assert_int_equal(ksync_sem_init(&sem, 0, 0, 0), 0);
			ksync_op_sem(&op, &sem);
			assert_int_equal(ksync_sdevent_start(&ad, &op, count_done), KSYNC_OP_PENDING);
			w = spawn(blocking_sem, NULL);
			wait_until(peek(sem.waiters) == 2);
		}
		if (unref_first)
			sd_event_unref(e);	/* ad keeps it alive */
		if (i & 4)
			sleep_ns(50000);
		if (is_lock)
			assert_int_equal(ksync_lock_release(&lock), 0);
		else
			assert_int_equal(ksync_sem_release(&sem, 1), 0);
		ksync_sdevent_detach(&ad);	/* frees e if unref'd above */
		assert_int_equal(ops_done, 2);
		assert_int_equal(op.result, -ECANCELED);
		assert_int_equal(evop.result, -ECANCELED);
		join(w);
		assert_int_equal(thread_result, 0);
		if (is_lock) {
			assert_int_equal(ksync_lock_destroy(&lock), 0);
		} else {
			assert_int_equal(peek(sem.waiters), 0);
			assert_int_equal(ksync_sem_value(&sem), 0);
		}
		if (!unref_first)
			sd_event_unref(e);
	}
}

/* The caller drops its sd_event and keeps running the loop through ad. */
static void test_unref_while_attached(void **state)
{
	struct ksync_op op;
	pthread_t t;
	sd_event *e;

	(void)state;
	e = new_attached();
	ksync_event_init(&ev, 0);
	ksync_op_event(&op, &ev);
	ops_done = 0;
	assert_int_equal(ksync_sdevent_start(&ad, &op, count_done), KSYNC_OP_PENDING);
	sd_event_unref(e);
	assert_int_equal(sd_event_get_state(ad.event), SD_EVENT_INITIAL);
	t = spawn(set_ev_later, NULL);
	sd_run_until(ad.event, ops_done == 1);
	join(t);
	assert_int_equal(op.result, 0);
	ksync_sdevent_detach(&ad);	/* the last reference: ASan checks it is freed */
	assert_null(ad.event);
}

/* Detach from a ksync callback, and from another handler of the loop. */
static struct ksync_op late;
static int late_start;

static void detach_in_callback(struct ksync_op *op)
{
	(void)op;
	ops_done++;
	ksync_sdevent_detach(&ad);
	ksync_op_event(&late, &ev);
	late_start = ksync_sdevent_start(&ad, &late, count_done);
}

static int detach_in_timer(sd_event_source *s, uint64_t usec, void *data)
{
	(void)s;
	(void)usec;
	(void)data;
	ksync_sdevent_detach(&ad);
	ops_done += 10;
	return 0;
}

static void test_detach_from_handlers(void **state)
{
	struct ksync_event other = KSYNC_EVENT_INIT;
	struct ksync_op a, b;
	sd_event *e;

	(void)state;
	e = new_attached();
	ksync_event_init(&ev, 0);
	ops_done = 0;
	ksync_op_event(&a, &ev);
	ksync_op_event(&b, &other);
	assert_int_equal(ksync_sdevent_start(&ad, &a, detach_in_callback), KSYNC_OP_PENDING);
	assert_int_equal(ksync_sdevent_start(&ad, &b, count_done), KSYNC_OP_PENDING);
	ksync_event_set(&ev);
	sd_run_until(e, ops_done == 2);
	assert_int_equal(a.result, 0);
	assert_int_equal(b.result, -ECANCELED);
	assert_int_equal(late_start, -ESHUTDOWN);
	assert_null(ad.event);
	/* The loop goes on without the adapter. */
	after_us(e, 100, detach_in_timer, NULL);
	sd_run_until(e, ops_done == 12);

	/* A timer handler detaches while an op waits. */
	assert_int_equal(ksync_sdevent_attach(&ad, e), 0);
	ksync_op_event(&b, &other);
	assert_int_equal(ksync_sdevent_start(&ad, &b, count_done), KSYNC_OP_PENDING);
	after_us(e, 1000, detach_in_timer, NULL);
	sd_run_until(e, ops_done == 23);
	assert_int_equal(b.result, -ECANCELED);
	sd_event_unref(e);
}

/*
 * "Loop freed with waits pending", the other way round: an io_uring loop
 * thread tears its loop down right as the lock it waits for is released to
 * it. The grant must reach the sd-event task that waits behind it.
 */
struct ring_exit {
	unsigned setup;
	int parked;
	int go;
	int result;
};

static void *ring_wait_then_exit(void *arg)
{
	struct ring_exit *re = arg;
	struct ksync_loop loop;
	struct ksync_op op;

	assert_int_equal(ksync_loop_init(&loop, 8, re->setup), 0);
	ksync_op_lock(&op, &lock, 2);
	assert_int_equal(loop_start(&loop, &op, NULL), 0);
	assert_int_equal(ksync_loop_run_once(&loop, 0), 0);
	__atomic_store_n(&re->parked, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&re->go, __ATOMIC_ACQUIRE))
		;
	ksync_loop_exit(&loop);
	re->result = op.result;
	return NULL;
}

static void test_uring_loop_exit_hands_on(void **state)
{
	sd_event *e;

	(void)state;
	e = new_attached();
	for (int i = 0; i < 300; i++) {
		struct ring_exit re = { .setup = ring_setups[i % N_RING_SETUPS] };
		struct ksync_op mine, next;
		pthread_t t;

		ksync_lock_init(&lock, 0);
		ksync_op_lock(&mine, &lock, 1);
		assert_int_equal(ksync_sdevent_start(&ad, &mine, count_done), 0);
		t = spawn(ring_wait_then_exit, &re);
		wait_until(__atomic_load_n(&re.parked, __ATOMIC_ACQUIRE));
		wait_until(peek(lock.word) & KSYNC_LOCK_CONTENDED);
		ksync_op_lock(&next, &lock, 3);
		ops_done = 0;
		assert_int_equal(ksync_sdevent_start(&ad, &next, count_done), KSYNC_OP_PENDING);
		/* Wakes the ring's wait (it parked first), which is torn down now. */
		assert_int_equal(ksync_lock_release_task(&lock, 1), 0);
		__atomic_store_n(&re.go, 1, __ATOMIC_RELEASE);
		join(t);
		assert_int_equal(re.result, -ECANCELED);
		sd_run_until(e, ops_done == 1);
		assert_int_equal(next.result, 0);
		assert_int_equal(ksync_lock_release_task(&lock, 3), 0);
		assert_int_equal(ksync_lock_destroy(&lock), 0);
	}
	ksync_sdevent_detach(&ad);
	sd_event_unref(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		async_unit_test(test_attach_basics),
		async_unit_test(test_thread_sdevent_lock),
		async_unit_test(test_thread_sdevent_sem),
		async_unit_test(test_thread_sdevent_event),
		async_unit_test(test_sdevent_uring_lock),
		async_unit_test(test_sdevent_uring_sem),
		async_unit_test(test_sdevent_uring_event),
		async_unit_test(test_timeout_and_cancel),
		async_unit_test(test_lock_race),
		async_unit_test(test_sem_race),
		async_unit_test(test_detach_with_pending),
		async_unit_test(test_unref_while_attached),
		async_unit_test(test_detach_from_handlers),
		async_unit_test(test_uring_loop_exit_hands_on),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
