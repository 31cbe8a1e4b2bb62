/* SPDX-License-Identifier: MIT */
/*
 * Bounded queue. Claims:
 * - init, the forms and every misuse error are as <ksync/bqueue.h> says;
 * - FIFO, LIFO and PRIORITY orders, also across the ring's wrap and for
 *   put_many/get_many batches (PRIORITY: equal keys in put order);
 * - close: puts fail, gets drain then fail, every waiter of every world is
 *   woken with -ESHUTDOWN;
 * - every pairing of worlds moves every item exactly once and each
 *   producer's items in order (FIFO): thread->thread, thread->tasks,
 *   tasks->thread, tasks->tasks on one ring and across rings, a poll loop
 *   (ksync_poller), on both ring setups;
 * - a get or put op cancelled or timing out while an item (or a slot) is
 *   produced for it, in plain and in hand-off mode, loses nothing and
 *   holds nothing: thousands of races with exact accounting;
 * - bounded unfairness: a waiter whose items keep being taken by bargers
 *   is served (thread and task);
 * - a KSYNC_SHARED queue works between a parent and a forked child.
 */
#include "harness.h"
#include "ksync/poller.h"

#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/wait.h>

struct item {
	uint32_t producer;
	uint32_t seq;
};

static uint64_t qbuf[4096];

static void init_q(struct ksync_bqueue *q, unsigned order, size_t size, uint32_t cap)
{
	size_t need = ksync_bqueue_buf_size(order, size, cap);

	assert_true(need > 0 && need <= sizeof(qbuf));
	assert_int_equal(ksync_bqueue_init(q, order, size, cap, qbuf, sizeof(qbuf), 0), 0);
}

static void assert_idle(struct ksync_bqueue *q)
{
	assert_int_equal(peek(q->getters), 0);
	assert_int_equal(peek(q->putters), 0);
	assert_int_equal(peek(q->get_res), 0);
	assert_int_equal(peek(q->put_res), 0);
	assert_int_equal(ksync_bqueue_destroy(q), 0);
}

/* ---- forms and misuse -------------------------------------------------------- */

static void test_misuse(void **state)
{
	struct ksync_bqueue q;
	struct timespec past = { 1, 0 }, bad = { 0, -1 };
	uint32_t x = 7, y;
	uint64_t many[4];

	(void)state;
	assert_int_equal(ksync_bqueue_buf_size(3, 4, 4), 0);
	assert_int_equal(ksync_bqueue_buf_size(KSYNC_BQUEUE_FIFO, 0, 4), 0);
	assert_int_equal(ksync_bqueue_buf_size(KSYNC_BQUEUE_FIFO, 4, 0), 0);
	assert_int_equal(ksync_bqueue_buf_size(KSYNC_BQUEUE_FIFO, 4, KSYNC_BQUEUE_CAPACITY_MAX + 1u), 0);
	assert_int_equal(ksync_bqueue_buf_size(KSYNC_BQUEUE_PRIORITY, 4, 4), 0);
	assert_int_equal(ksync_bqueue_buf_size(KSYNC_BQUEUE_FIFO, SIZE_MAX / 2, 4), 0);
	assert_int_equal(ksync_bqueue_buf_size(KSYNC_BQUEUE_LIFO, 4, 5), 20);
	assert_int_equal(ksync_bqueue_buf_size(KSYNC_BQUEUE_PRIORITY, 8, 2), 56 + 16);

	assert_int_equal(ksync_bqueue_init(&q, 3, 4, 2, qbuf, sizeof(qbuf), 0), -EINVAL);
	assert_int_equal(ksync_bqueue_init(&q, 0, 4, 2, NULL, sizeof(qbuf), 0), -EINVAL);
	assert_int_equal(ksync_bqueue_init(&q, 0, 4, 2, (char *)qbuf + 4, 64, 0), -EINVAL);
	assert_int_equal(ksync_bqueue_init(&q, 0, 4, 2, qbuf, 7, 0), -EINVAL);
	assert_int_equal(ksync_bqueue_init(&q, 0, 4, 2, qbuf, sizeof(qbuf), 2), -EINVAL);
	assert_int_equal(ksync_bqueue_init(&q, 0, 4, 2, qbuf, 8, KSYNC_SHARED), 0);
	assert_int_equal(ksync_bqueue_capacity(&q), 2);

	assert_int_equal(ksync_bqueue_try_get(&q, &y), -EAGAIN);
	assert_int_equal(ksync_bqueue_get_until(&q, &y, CLOCK_MONOTONIC, &past), -ETIMEDOUT);
	assert_int_equal(ksync_bqueue_get_until(&q, &y, CLOCK_MONOTONIC, &bad), -EINVAL);
	assert_int_equal(ksync_bqueue_get_until(&q, &y, CLOCK_TAI, NULL), -EINVAL);
	assert_int_equal(ksync_bqueue_try_put(&q, &x), 0);
	assert_int_equal(ksync_bqueue_put(&q, &x), 0);
	assert_int_equal(ksync_bqueue_len(&q), 2);
	assert_int_equal(ksync_bqueue_try_put(&q, &x), -EAGAIN);
	assert_int_equal(ksync_bqueue_put_until(&q, &x, CLOCK_REALTIME, &past), -ETIMEDOUT);
	assert_int_equal(ksync_bqueue_put_many(&q, many, 0, CLOCK_MONOTONIC, NULL), -EINVAL);
	assert_int_equal(ksync_bqueue_get_many(&q, many, 0, CLOCK_MONOTONIC, NULL), -EINVAL);
	assert_int_equal(ksync_bqueue_try_put_many(&q, many, 0), -EINVAL);
	assert_int_equal(ksync_bqueue_try_get_many(&q, many, 0), -EINVAL);
	assert_int_equal(ksync_bqueue_try_put_many(&q, many, 1), -EAGAIN);
	assert_int_equal(ksync_bqueue_get(&q, &y), 0);
	assert_int_equal(y, 7);
	assert_int_equal(ksync_bqueue_try_get_many(&q, many, 4), 1);
	assert_int_equal(ksync_bqueue_try_get_many(&q, many, 4), -EAGAIN);
	assert_idle(&q);

	{
		struct ksync_op op;

		assert_int_equal(ksync_op_bqueue_put_many(&op, &q, many, 0), -EINVAL);
		assert_int_equal(ksync_op_bqueue_get_many(&op, &q, many, 0), -EINVAL);
	}
}

/* ---- orders ------------------------------------------------------------------- */

static void test_fifo_lifo_wrap(void **state)
{
	struct ksync_bqueue q;
	uint32_t in[5] = { 1, 2, 3, 4, 5 }, out[5];

	(void)state;
	init_q(&q, KSYNC_BQUEUE_FIFO, 4, 4);
	for (uint32_t round = 0; round < 10; round++) {
		/* 3 in, 2 out, 1 in, 2 out: the ring wraps in every position */
		assert_int_equal(ksync_bqueue_try_put_many(&q, in, 3), 3);
		assert_int_equal(ksync_bqueue_try_get_many(&q, out, 2), 2);
		assert_int_equal(out[0], 1);
		assert_int_equal(out[1], 2);
		assert_int_equal(ksync_bqueue_try_put_many(&q, in + 3, 2), 2);
		assert_int_equal(ksync_bqueue_try_put(&q, in), 0);
		assert_int_equal(ksync_bqueue_try_put(&q, in), -EAGAIN);
		assert_int_equal(ksync_bqueue_try_get_many(&q, out, 5), 4);
		assert_int_equal(out[0], 3);
		assert_int_equal(out[1], 4);
		assert_int_equal(out[2], 5);
		assert_int_equal(out[3], 1);
	}
	/* put_many puts what fits */
	assert_int_equal(ksync_bqueue_put_many(&q, in, 5, CLOCK_MONOTONIC, NULL), 4);
	assert_int_equal(ksync_bqueue_get_many(&q, out, 5, CLOCK_MONOTONIC, NULL), 4);
	assert_idle(&q);

	init_q(&q, KSYNC_BQUEUE_LIFO, 4, 4);
	for (uint32_t round = 0; round < 3; round++) {
		assert_int_equal(ksync_bqueue_try_put_many(&q, in, 3), 3);
		assert_int_equal(ksync_bqueue_try_get(&q, out), 0);
		assert_int_equal(out[0], 3);
		assert_int_equal(ksync_bqueue_try_put_many(&q, in + 3, 2), 2);
		assert_int_equal(ksync_bqueue_try_get_many(&q, out, 5), 4);
		assert_int_equal(out[0], 5);
		assert_int_equal(out[1], 4);
		assert_int_equal(out[2], 2);
		assert_int_equal(out[3], 1);
	}
	assert_idle(&q);
}

struct pitem {
	uint64_t key;
	uint32_t tag;
	uint32_t pad;
};

static void test_priority(void **state)
{
	struct ksync_bqueue q;
	struct pitem it, out[64];
	uint64_t seed = 99;
	uint32_t tags[1000] = { 0 };
	int n = 0;

	(void)state;
	init_q(&q, KSYNC_BQUEUE_PRIORITY, sizeof(struct pitem), 64);
	/* Random keys from a small range (many ties); gets interleaved. */
	for (uint32_t i = 0; i < 1000; i++) {
		it = (struct pitem){ .key = rnd(&seed) % 8, .tag = i };
		if (ksync_bqueue_try_put(&q, &it) == -EAGAIN) {
			uint64_t last_key = 0;
			uint32_t last_tag = 0;
			int k = ksync_bqueue_try_get_many(&q, out, 64);

			assert_int_equal(k, 64);
			for (int j = 0; j < k; j++) {
				assert_true(j == 0 || out[j].key > last_key ||
					    (out[j].key == last_key && out[j].tag > last_tag));
				last_key = out[j].key;
				last_tag = out[j].tag;
				tags[out[j].tag]++;
				n++;
			}
			assert_int_equal(ksync_bqueue_try_put(&q, &it), 0);
		}
		if (i % 7 == 0) {
			assert_int_equal(ksync_bqueue_try_get(&q, out), 0);
			tags[out[0].tag]++;
			n++;
		}
	}
	while (ksync_bqueue_try_get(&q, out) == 0) {
		tags[out[0].tag]++;
		n++;
	}
	assert_int_equal(n, 1000);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(tags[i], 1);
	assert_idle(&q);
}

/* ---- worlds: threads, tasks on a ksync_loop, tasks on a ksync_poller ------------ */

#define NPROD 8
#define NITEMS 3000

struct pipe {
	struct ksync_bqueue q;
	bool check_order;
	uint32_t per_producer;
	int producers_left;
	uint8_t seen[NPROD][NITEMS];
	long consumed;
};

static struct pipe pipe_;

static void producer_done(struct pipe *p)
{
	if (__atomic_sub_fetch(&p->producers_left, 1, __ATOMIC_ACQ_REL) == 0)
		assert_int_equal(ksync_bqueue_close(&p->q), 0);
}

static void record(struct pipe *p, const struct item *it, uint32_t *last)
{
	assert_true(it->producer < NPROD && it->seq < p->per_producer);
	if (p->check_order) {
		/* each consumer sees each producer's items in put order */
		assert_true(last[it->producer] == UINT32_MAX || it->seq > last[it->producer]);
		last[it->producer] = it->seq;
	}
	assert_int_equal(__atomic_add_fetch(&p->seen[it->producer][it->seq], 1, __ATOMIC_RELAXED), 1);
	__atomic_add_fetch(&p->consumed, 1, __ATOMIC_RELAXED);
}

struct thread_actor {
	struct pipe *p;
	uint32_t id;
	bool many;
	uint32_t last[NPROD];
};

static void *thread_producer(void *arg)
{
	struct thread_actor *a = arg;

	for (uint32_t i = 0; i < a->p->per_producer;) {
		struct item batch[3];
		uint32_t n = a->many ? 3 : 1;
		int r;

		for (uint32_t j = 0; j < n; j++)
			batch[j] = (struct item){ a->id, i + j };
		if (i + n > a->p->per_producer)
			n = a->p->per_producer - i;
		r = a->many ? ksync_bqueue_put_many(&a->p->q, batch, n, CLOCK_MONOTONIC, NULL) :
			      ksync_bqueue_put(&a->p->q, batch);
		assert_true(r >= 0);
		i += a->many ? (uint32_t)r : 1;
	}
	producer_done(a->p);
	return NULL;
}

static void *thread_consumer(void *arg)
{
	struct thread_actor *a = arg;
	struct item batch[4];

	for (int i = 0; i < NPROD; i++)
		a->last[i] = UINT32_MAX;
	for (;;) {
		int r = a->many ? ksync_bqueue_get_many(&a->p->q, batch, 4, CLOCK_MONOTONIC, NULL) :
				  ksync_bqueue_get(&a->p->q, batch);

		if (r == -ESHUTDOWN)
			break;
		assert_true(r >= 0);
		for (int j = 0; j < (a->many ? r : 1); j++)
			record(a->p, &batch[j], a->last);
	}
	return NULL;
}

/* A ring world: a ksync_loop, or a ksync_poller under epoll. */
struct world {
	bool poller;
	unsigned setup;
	struct ksync_loop loop;
	struct ksync_poller poll;
	int ep;
};

static int world_start(struct world *w, struct ksync_op *op, ksync_op_cb cb)
{
	int r = w->poller ? ksync_poller_start(&w->poll, op, cb) : ksync_loop_start(&w->loop, op, cb);

	assert_true(r == 0 || r == KSYNC_OP_PENDING || r == -ESHUTDOWN);
	return r;
}

struct task {
	struct ksync_op op;
	struct world *w;
	struct pipe *p;
	uint32_t id, next;
	bool producer, many, done;
	struct item it[3];
	uint32_t last[NPROD];
};

static void task_cb(struct ksync_op *op);

/* Start the task's next op; loops while ops finish at once. */
static void task_step(struct task *t, bool have_result)
{
	int r;

	do {
		if (have_result) {
			r = t->op.result;

			if (t->producer) {
				assert_true(r >= 0);
				t->next += t->many ? (uint32_t)r : 1;
			} else if (r == -ESHUTDOWN) {
				t->done = true;
				return;
			} else {
				assert_true(r >= 0);
				for (int j = 0; j < (t->many ? r : 1); j++)
					record(t->p, &t->it[j], t->last);
			}
		}
		have_result = true;
		if (t->producer) {
			uint32_t n = t->many ? 3 : 1;

			if (t->next == t->p->per_producer) {
				t->done = true;
				producer_done(t->p);
				return;
			}
			if (t->next + n > t->p->per_producer)
				n = t->p->per_producer - t->next;
			for (uint32_t j = 0; j < n; j++)
				t->it[j] = (struct item){ t->id, t->next + j };
			if (t->many)
				assert_int_equal(ksync_op_bqueue_put_many(&t->op, &t->p->q, t->it, n), 0);
			else
				ksync_op_bqueue_put(&t->op, &t->p->q, t->it);
		} else if (t->many) {
			assert_int_equal(ksync_op_bqueue_get_many(&t->op, &t->p->q, t->it, 3), 0);
		} else {
			ksync_op_bqueue_get(&t->op, &t->p->q, t->it);
		}
		t->op.data = t;
		r = world_start(t->w, &t->op, task_cb);
		if (r == -ESHUTDOWN) {	/* closed (and empty): not started */
			assert_false(t->producer);
			t->done = true;
			return;
		}
	} while (r == 0);
}

static void task_cb(struct ksync_op *op)
{
	task_step(op->data, true);
}

struct ring_actor {
	struct world w;
	struct task tasks[8];
	int ntasks;
};

static bool all_done(struct ring_actor *ra)
{
	for (int i = 0; i < ra->ntasks; i++)
		if (!ra->tasks[i].done)
			return false;
	return true;
}

static void *ring_main(void *arg)
{
	struct ring_actor *ra = arg;
	struct world *w = &ra->w;

	if (w->poller) {
		struct epoll_event e = { .events = EPOLLIN };

		assert_int_equal(ksync_poller_init(&w->poll, 64), 0);
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		assert_true(w->ep >= 0);
		assert_int_equal(epoll_ctl(w->ep, EPOLL_CTL_ADD, ksync_poller_fd(&w->poll), &e), 0);
	} else {
		assert_int_equal(ksync_loop_init(&w->loop, 64, w->setup), 0);
	}
	for (int i = 0; i < ra->ntasks; i++) {
		struct task *t = &ra->tasks[i];

		t->w = w;
		for (int j = 0; j < NPROD; j++)
			t->last[j] = UINT32_MAX;
		task_step(t, false);
	}
	while (!all_done(ra)) {
		if (w->poller) {
			struct epoll_event e;
			int n = epoll_wait(w->ep, &e, 1, 1000);

			assert_true(n >= 0 || errno == EINTR);
			assert_true(ksync_poller_dispatch(&w->poll) >= 0);
		} else {
			assert_true(ksync_loop_run_once(&w->loop, 1) >= 0);
		}
	}
	if (w->poller) {
		ksync_poller_exit(&w->poll);
		close(w->ep);
	} else {
		ksync_loop_exit(&w->loop);
	}
	return NULL;
}

/* Who does what in one pipeline run. */
struct plan {
	int thread_producers, thread_consumers;
	int rings;			/* 0, 1 or 2 */
	int ring_producers[2], ring_consumers[2];
	bool poller[2];
};

static void run_pipe(unsigned order, uint32_t cap, uint32_t per, unsigned setup,
		     const struct plan *pl, bool many)
{
	struct pipe *p = &pipe_;
	struct thread_actor ta[8];
	struct ring_actor ra[2];
	pthread_t th[8], rt[2];
	int nt = 0, id = 0, producers;

	memset(p, 0, sizeof(*p));
	init_q(&p->q, order, sizeof(struct item), cap);
	p->check_order = order == KSYNC_BQUEUE_FIFO;
	p->per_producer = per;
	producers = pl->thread_producers + pl->ring_producers[0] + pl->ring_producers[1];
	assert_true(producers <= NPROD);
	p->producers_left = producers;

	memset(ra, 0, sizeof(ra));
	for (int r = 0; r < pl->rings; r++) {
		ra[r].w.poller = pl->poller[r];
		ra[r].w.setup = setup;
		for (int i = 0; i < pl->ring_producers[r]; i++)
			ra[r].tasks[ra[r].ntasks++] = (struct task){ .p = p, .id = (uint32_t)id++,
								     .producer = true, .many = many && i % 2 };
		for (int i = 0; i < pl->ring_consumers[r]; i++)
			ra[r].tasks[ra[r].ntasks++] = (struct task){ .p = p, .many = many && i % 2 };
	}
	for (int i = 0; i < pl->thread_producers; i++) {
		ta[nt] = (struct thread_actor){ .p = p, .id = (uint32_t)id++, .many = many && i % 2 };
		th[nt] = spawn(thread_producer, &ta[nt]);
		nt++;
	}
	for (int i = 0; i < pl->thread_consumers; i++) {
		ta[nt] = (struct thread_actor){ .p = p, .many = many && i % 2 };
		th[nt] = spawn(thread_consumer, &ta[nt]);
		nt++;
	}
	for (int r = 0; r < pl->rings; r++)
		rt[r] = spawn(ring_main, &ra[r]);
	for (int i = 0; i < nt; i++)
		join(th[i]);
	for (int r = 0; r < pl->rings; r++)
		join(rt[r]);
	assert_int_equal(p->consumed, (long)producers * per);
	for (int i = 0; i < producers; i++)
		for (uint32_t s = 0; s < per; s++)
			assert_int_equal(p->seen[i][s], 1);
	assert_int_equal(ksync_bqueue_len(&p->q), 0);
	assert_true(ksync_bqueue_is_closed(&p->q));
	assert_idle(&p->q);
}

static const struct plan plans[] = {
	{ .thread_producers = 2, .thread_consumers = 2 },				/* thread -> thread */
	{ .thread_producers = 2, .rings = 1, .ring_consumers = { 4 } },		/* thread -> tasks */
	{ .thread_consumers = 2, .rings = 1, .ring_producers = { 4 } },		/* tasks -> thread */
	{ .rings = 1, .ring_producers = { 3 }, .ring_consumers = { 3 } },		/* one ring */
	{ .rings = 2, .ring_producers = { 3, 0 }, .ring_consumers = { 0, 3 } },	/* two rings */
	{ .thread_producers = 1, .thread_consumers = 1, .rings = 2,			/* everything */
	  .ring_producers = { 2, 1 }, .ring_consumers = { 1, 2 } },
	{ .thread_producers = 2, .rings = 1, .ring_consumers = { 3 },		/* poll loop */
	  .poller = { true } },
	{ .thread_consumers = 1, .rings = 2, .ring_producers = { 2, 0 },		/* poll -> loop */
	  .ring_consumers = { 0, 2 }, .poller = { true, false } },
};

static void test_pairings(void **state)
{
	(void)state;
	for (unsigned s = 0; s < N_RING_SETUPS; s++)
		for (unsigned i = 0; i < sizeof(plans) / sizeof(plans[0]); i++) {
			run_pipe(KSYNC_BQUEUE_FIFO, 4, 2000, ring_setups[s], &plans[i], false);
			run_pipe(KSYNC_BQUEUE_FIFO, 5, 1000, ring_setups[s], &plans[i], true);
		}
}

static void test_orders_across_worlds(void **state)
{
	(void)state;
	run_pipe(KSYNC_BQUEUE_LIFO, 3, 1500, ring_setups[1], &plans[5], false);
	run_pipe(KSYNC_BQUEUE_LIFO, 3, 1500, ring_setups[0], &plans[5], true);
	run_pipe(KSYNC_BQUEUE_PRIORITY, 3, 1500, ring_setups[1], &plans[5], false);
	run_pipe(KSYNC_BQUEUE_PRIORITY, 8, 1500, ring_setups[0], &plans[5], true);
}

/* ---- close ---------------------------------------------------------------------- */

static struct ksync_bqueue cq;

struct closer_waiter {
	bool put;
	int result;
	int started;
};

static void *close_waiter(void *arg)
{
	struct closer_waiter *cw = arg;
	uint32_t x = 1;

	__atomic_store_n(&cw->started, 1, __ATOMIC_RELEASE);
	cw->result = cw->put ? ksync_bqueue_put(&cq, &x) : ksync_bqueue_get(&cq, &x);
	return NULL;
}

static int close_results[4], close_done;

static void close_cb(struct ksync_op *op)
{
	close_results[(uintptr_t)op->data] = op->result;
	close_done++;
}

static void test_close(void **state)
{
	uint32_t x = 5, y;

	(void)state;
	/* Drain semantics. */
	init_q(&cq, KSYNC_BQUEUE_FIFO, 4, 2);
	assert_int_equal(ksync_bqueue_put(&cq, &x), 0);
	assert_int_equal(ksync_bqueue_close(&cq), 0);
	assert_int_equal(ksync_bqueue_close(&cq), -EALREADY);
	assert_true(ksync_bqueue_is_closed(&cq));
	assert_int_equal(ksync_bqueue_put(&cq, &x), -ESHUTDOWN);
	assert_int_equal(ksync_bqueue_try_put(&cq, &x), -ESHUTDOWN);
	assert_int_equal(ksync_bqueue_get(&cq, &y), 0);
	assert_int_equal(y, 5);
	assert_int_equal(ksync_bqueue_get(&cq, &y), -ESHUTDOWN);
	assert_int_equal(ksync_bqueue_try_get(&cq, &y), -ESHUTDOWN);
	assert_int_equal(ksync_bqueue_try_get_many(&cq, &y, 1), -ESHUTDOWN);

	/* Waiters of both sides and both worlds are released. */
	for (unsigned s = 0; s < N_RING_SETUPS; s++)
		for (int side = 0; side < 2; side++) {
			struct closer_waiter cw = { .put = side };
			struct ksync_loop loop;
			struct ksync_op ops[2];
			uint32_t items[2] = { 1, 2 }, outs[2];
			pthread_t t;

			init_q(&cq, KSYNC_BQUEUE_FIFO, 4, 1);
			if (side)
				assert_int_equal(ksync_bqueue_put(&cq, &x), 0);	/* full */
			assert_int_equal(ksync_loop_init(&loop, 8, ring_setups[s]), 0);
			close_done = 0;
			for (int i = 0; i < 2; i++) {
				if (side)
					ksync_op_bqueue_put(&ops[i], &cq, &items[i]);
				else
					ksync_op_bqueue_get(&ops[i], &cq, &outs[i]);
				ops[i].data = (void *)(uintptr_t)i;
				assert_int_equal(loop_start(&loop, &ops[i], close_cb), 0);
			}
			assert_true(ksync_loop_run_once(&loop, 0) >= 0);
			t = spawn(close_waiter, &cw);
			wait_until((side ? peek(cq.putters) : peek(cq.getters)) == 3);
			assert_int_equal(ksync_bqueue_destroy(&cq), -EBUSY);
			assert_int_equal(ksync_bqueue_close(&cq), 0);
			run_loop_until(&loop, close_done == 2);
			join(t);
			assert_int_equal(cw.result, -ESHUTDOWN);
			assert_int_equal(close_results[0], -ESHUTDOWN);
			assert_int_equal(close_results[1], -ESHUTDOWN);
			assert_int_equal(ksync_bqueue_len(&cq), side ? 1 : 0);
			ksync_loop_exit(&loop);
			assert_idle(&cq);
		}
}

/* ---- cancels and timeouts racing a produced unit --------------------------------- */

static struct ksync_bqueue rq;
static int go, ops_done;
static int thread_result;

static void count_done(struct ksync_op *op)
{
	(void)op;
	ops_done++;
}

static void *race_producer(void *arg)
{
	bool put = arg != NULL;	/* produce an item (put) or a slot (get) */
	uint32_t x = 9;

	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
		;
	if (put)
		assert_int_equal(ksync_bqueue_put(&rq, &x), 0);
	else
		assert_int_equal(ksync_bqueue_get(&rq, &x), 0);
	return NULL;
}

static void *race_thread_waiter(void *arg)
{
	bool put = arg != NULL;
	struct timespec dl = in_ns(10000000000LL);
	uint32_t x = 3;

	thread_result = put ? ksync_bqueue_put_until(&rq, &x, CLOCK_MONOTONIC, &dl) :
			      ksync_bqueue_get_until(&rq, &x, CLOCK_MONOTONIC, &dl);
	return NULL;
}

/*
 * side 0: a task's get waits on an empty queue and a thread's get waits
 * too; one item is put around the task's cancel or deadline: exactly one of
 * them gets it. side 1: the same with puts on a full queue and one get.
 * handoff: the side is in hand-off mode, so the unit is reserved for the
 * woken waiter and must be given back if that was the task.
 */
static void race(int side, bool handoff, int rounds)
{
	uint64_t seed = 4242 + (uint64_t)side * 2 + handoff;
	int got = 0, cancelled = 0, timed_out = 0;

	for (unsigned s = 0; s < N_RING_SETUPS; s++) {
		struct ksync_loop loop;

		assert_int_equal(ksync_loop_init(&loop, 16, ring_setups[s]), 0);
		for (int i = 0; i < rounds; i++) {
			struct ksync_op op;
			bool use_timeout = rnd(&seed) & 1;
			uint32_t mine = 1, full = 7;
			pthread_t prod, w;

			init_q(&rq, KSYNC_BQUEUE_FIFO, 4, 1);
			if (side)
				assert_int_equal(ksync_bqueue_put(&rq, &full), 0);
			if (handoff)
				__atomic_fetch_or(&rq.flags, side ? KSYNC_BQUEUE_STARVING_PUT :
							  KSYNC_BQUEUE_STARVING_GET, __ATOMIC_RELAXED);
			go = 0;
			thread_result = 1;
			prod = spawn(race_producer, side ? NULL : (void *)1);
			if (side)
				ksync_op_bqueue_put(&op, &rq, &mine);
			else
				ksync_op_bqueue_get(&op, &rq, &mine);
			if (use_timeout) {
				struct timespec dl = in_ns(150000 + rnd(&seed) % 60000);

				assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
			}
			ops_done = 0;
			assert_int_equal(loop_start(&loop, &op, count_done), 0);
			assert_true(ksync_loop_run_once(&loop, 0) >= 0);	/* park it first */
			w = spawn(race_thread_waiter, side ? (void *)1 : NULL);
			spin_ns(100000);
			__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
			if (!use_timeout) {
				spin_ns(rnd(&seed) % 30000);
				ksync_loop_cancel(&loop, &op);
			}
			assert_int_equal(ksync_loop_run(&loop), 0);
			assert_int_equal(ops_done, 1);
			if (op.result == 0) {
				uint32_t x;

				got++;
				/* give the unit to the thread */
				if (side)
					assert_int_equal(ksync_bqueue_get(&rq, &x), 0);
				else
					assert_int_equal(ksync_bqueue_put(&rq, &mine), 0);
			} else if (op.result == -ECANCELED) {
				cancelled++;
			} else {
				assert_int_equal(op.result, -ETIMEDOUT);
				timed_out++;
			}
			join(prod);
			join(w);
			assert_int_equal(thread_result, 0);
			/* get side: both items gone; put side: queue full again */
			assert_int_equal(ksync_bqueue_len(&rq), side ? 1 : 0);
			assert_idle(&rq);
		}
		ksync_loop_exit(&loop);
	}
	print_message("bqueue race (%s%s): %d served, %d cancelled, %d timed out\n",
		      side ? "put" : "get", handoff ? ", hand-off" : "", got, cancelled, timed_out);
	assert_true(got > 0 && cancelled > 0 && timed_out > 0);
}

static void test_race_get(void **state)
{
	(void)state;
	race(0, false, 1000);
}

static void test_race_put(void **state)
{
	(void)state;
	race(1, false, 1000);
}

static void test_race_get_handoff(void **state)
{
	(void)state;
	race(0, true, 1000);
}

static void test_race_put_handoff(void **state)
{
	(void)state;
	race(1, true, 1000);
}

/* ---- bounded unfairness ------------------------------------------------------------ */

static struct ksync_bqueue sq;
static int hammer_stop;
static long starving_seen;

/* Takes the item and puts it back at once, over and over. */
static void *hammer(void *arg)
{
	uint32_t x;

	(void)arg;
	while (!__atomic_load_n(&hammer_stop, __ATOMIC_RELAXED)) {
		if (ksync_bqueue_try_get(&sq, &x) == 0) {
			spin_ns(20000);
			assert_int_equal(ksync_bqueue_put(&sq, &x), 0);
		}
		if (peek(sq.flags) & KSYNC_BQUEUE_STARVING_GET)
			__atomic_fetch_add(&starving_seen, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_starvation_bound(void **state)
{
	struct ksync_loop loop;
	struct ksync_op op;
	struct timespec dl;
	uint32_t x = 1;
	pthread_t h[2];

	(void)state;
	init_q(&sq, KSYNC_BQUEUE_FIFO, 4, 1);
	assert_int_equal(ksync_bqueue_put(&sq, &x), 0);
	hammer_stop = 0;
	starving_seen = 0;
	for (int i = 0; i < 2; i++)
		h[i] = spawn(hammer, NULL);
	for (int i = 0; i < 20; i++) {
		dl = in_ns(10000000000LL);
		assert_int_equal(ksync_bqueue_get_until(&sq, &x, CLOCK_MONOTONIC, &dl), 0);
		assert_int_equal(ksync_bqueue_put(&sq, &x), 0);
	}
	assert_int_equal(ksync_loop_init(&loop, 8, 0), 0);
	for (int i = 0; i < 20; i++) {
		ksync_op_bqueue_get(&op, &sq, &x);
		dl = in_ns(10000000000LL);
		assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
		assert_int_equal(loop_start(&loop, &op, NULL), 0);
		assert_int_equal(ksync_loop_run(&loop), 0);
		assert_int_equal(op.result, 0);
		assert_int_equal(ksync_bqueue_put(&sq, &x), 0);
	}
	ksync_loop_exit(&loop);
	__atomic_store_n(&hammer_stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++)
		join(h[i]);
	print_message("bqueue starvation: STARVING seen %ld times\n", starving_seen);
	assert_int_equal(ksync_bqueue_len(&sq), 1);
	assert_idle(&sq);
}

/* ---- process-shared ---------------------------------------------------------------- */

struct shared_area {
	struct ksync_bqueue q;
	uint64_t buf[64];
};

static void test_shared(void **state)
{
	struct shared_area *a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int status;
	pid_t pid;

	(void)state;
	assert_true(a != MAP_FAILED);
	assert_int_equal(ksync_bqueue_init(&a->q, KSYNC_BQUEUE_FIFO, 8, 2, a->buf, sizeof(a->buf),
					   KSYNC_SHARED), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* child: a thread gets half, a task the other half, in order */
		uint64_t v, want = 0;
		int ok = 1;

		for (int i = 0; i < 500; i++)
			ok &= ksync_bqueue_get(&a->q, &v) == 0 && v == want++;
		if (ksync_require(KSYNC_FEAT_FUTEX | KSYNC_FEAT_URING_FUTEX) == 0) {
			struct ksync_loop loop;
			struct ksync_op op;

			ok &= ksync_loop_init(&loop, 8, 0) == 0;
			for (int i = 0; i < 500 && ok; i++) {
				ksync_op_bqueue_get(&op, &a->q, &v);
				ok &= ksync_loop_start(&loop, &op, NULL) >= 0;
				ok &= ksync_loop_run(&loop) == 0 && op.result == 0 && v == want++;
			}
			ksync_loop_exit(&loop);
		} else {
			for (int i = 0; i < 500; i++)
				ok &= ksync_bqueue_get(&a->q, &v) == 0 && v == want++;
		}
		_exit(ok ? 0 : 1);
	}
	for (uint64_t v = 0; v < 1000; v++)
		assert_int_equal(ksync_bqueue_put(&a->q, &v), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_idle(&a->q);
	munmap(a, sizeof(*a));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_misuse),
		cmocka_unit_test(test_fifo_lifo_wrap),
		cmocka_unit_test(test_priority),
		async_unit_test(test_close),
		async_unit_test(test_pairings),
		async_unit_test(test_orders_across_worlds),
		async_unit_test(test_race_get),
		async_unit_test(test_race_put),
		async_unit_test(test_race_get_handoff),
		async_unit_test(test_race_put_handoff),
		async_unit_test(test_starvation_bound),
		cmocka_unit_test(test_shared),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
