/* SPDX-License-Identifier: MIT */
/*
 * Case 9: the bounded queue (ksync_bqueue).
 *
 *   latency    one item in flight: a thread puts a timestamped item, a task
 *              on a ksync_loop in another thread gets it and puts a reply
 *              on a second queue, which the thread gets. Each item's
 *              one-way latency (put to got) is a sample: thread -> task and
 *              task -> thread. Baseline: half a futex2 round trip between
 *              two threads on two plain words (the floor of any hand-off).
 *   throughput 2 producer threads, 2 consumer threads, 8-byte items,
 *              capacity 64: items per second. Baselines: a mutex + two
 *              condition variables around a ring (what a C programmer
 *              writes), and a pipe (8-byte writes and reads).
 *   mixed      2 producer threads -> 2 rings x 50 tasks: items per second
 *              and the p99.9 put-to-got latency.
 *   rings      task -> task across two rings, ping-pong: the round trip,
 *              against IORING_OP_MSG_RING carrying the same 64-bit payload
 *              between the two rings.
 *
 * Threads of a ping-pong are pinned to two CPUs when there are two.
 */
#include "bench.h"

#include <fcntl.h>
#include <unistd.h>

#define QCAP 64

struct titem {
	int64_t ts;
	uint64_t seq;
};

static uint64_t buf_a[QCAP * 2], buf_b[QCAP * 2];

static void qinit(struct ksync_bqueue *q, uint64_t *buf, size_t size, uint32_t cap)
{
	check(ksync_bqueue_init(q, KSYNC_BQUEUE_FIFO, size, cap, buf, sizeof(buf_a), 0));
}

/* ---- latency: thread <-> task ------------------------------------------------ */

struct lat {
	struct ksync_bqueue to_task, to_thread;
	struct ksync_loop loop;
	struct ksync_op op;
	struct titem it;
	int n, i;
	bool replying;
	pthread_barrier_t ready;
	struct hist t2k, k2t;
};

static void lat_cb(struct ksync_op *op)
{
	struct lat *l = op->data;

	do {
		if (op->result)
			die("queue op: %s", strerror(-op->result));
		if (!l->replying) {
			/* got the thread's item: measure, then answer */
			hist_add(&l->t2k, now_ns() - l->it.ts);
			l->it.ts = now_ns();
			ksync_op_bqueue_put(op, &l->to_thread, &l->it);
			l->replying = true;
		} else {
			l->replying = false;
			if (++l->i == l->n)
				return;
			ksync_op_bqueue_get(op, &l->to_task, &l->it);
		}
		op->data = l;
	} while (loop_start_done(&l->loop, op, lat_cb));
}

static void *lat_task_side(void *arg)
{
	struct lat *l = arg;

	place(P_SPLIT, 1);
	check(ksync_loop_init(&l->loop, 64, cfg.ring_flags));
	l->i = 0;
	l->replying = false;
	ksync_op_bqueue_get(&l->op, &l->to_task, &l->it);
	l->op.data = l;
	if (loop_start_done(&l->loop, &l->op, lat_cb))
		lat_cb(&l->op);
	check(ksync_loop_run_once(&l->loop, 0));
	pthread_barrier_wait(&l->ready);
	check(ksync_loop_run(&l->loop));
	ksync_loop_exit(&l->loop);
	return NULL;
}

static void run_lat(struct lat *l, int n)
{
	pthread_t t;
	struct titem it;

	qinit(&l->to_task, buf_a, sizeof(struct titem), 4);
	qinit(&l->to_thread, buf_b, sizeof(struct titem), 4);
	hist_reset(&l->t2k);
	hist_reset(&l->k2t);
	l->n = n;
	pthread_barrier_init(&l->ready, NULL, 2);
	t = spawn(lat_task_side, l);
	place(P_SPLIT, 0);
	pthread_barrier_wait(&l->ready);
	for (int i = 0; i < n; i++) {
		it = (struct titem){ now_ns(), (uint64_t)i };
		check(ksync_bqueue_put(&l->to_task, &it));
		check(ksync_bqueue_get(&l->to_thread, &it));
		hist_add(&l->k2t, now_ns() - it.ts);
	}
	join(t);
	unplace();
	pthread_barrier_destroy(&l->ready);
}

/* futex2 round trip between two threads, halved: the one-way floor */
static uint32_t fping __attribute__((aligned(64))), fpong __attribute__((aligned(64)));
static int fn_rounds;

static void *futex_answer(void *arg)
{
	(void)arg;
	place(P_SPLIT, 1);
	for (uint32_t i = 1; i <= (uint32_t)fn_rounds; i++) {
		while (peek(fping) != i)
			check_wait(ksync_futex_wait(&fping, i - 1, KSYNC_FUTEX_MASK_ANY,
						    CLOCK_MONOTONIC, NULL));
		poke(fpong, i);
		check(ksync_futex_wake(&fpong, KSYNC_FUTEX_MASK_ANY, 1));
	}
	return NULL;
}

static void run_futex(struct hist *h, int n)
{
	pthread_t t;

	fping = fpong = 0;
	fn_rounds = n;
	hist_reset(h);
	t = spawn(futex_answer, NULL);
	place(P_SPLIT, 0);
	for (uint32_t i = 1; i <= (uint32_t)n; i++) {
		int64_t t0 = now_ns();

		poke(fping, i);
		check(ksync_futex_wake(&fping, KSYNC_FUTEX_MASK_ANY, 1));
		while (peek(fpong) != i)
			check_wait(ksync_futex_wait(&fpong, i - 1, KSYNC_FUTEX_MASK_ANY,
						    CLOCK_MONOTONIC, NULL));
		hist_add(h, (now_ns() - t0) / 2);
	}
	join(t);
	unplace();
}

/* ---- throughput: 2 x 2 threads --------------------------------------------------- */

enum impl { I_KSYNC, I_MUTEX, I_PIPE };

struct mqueue {
	pthread_mutex_t m;
	pthread_cond_t not_empty, not_full;
	uint64_t ring[QCAP];
	unsigned head, len;
};

static struct {
	enum impl impl;
	struct ksync_bqueue q;
	struct mqueue mq;
	int pfd[2];
	long per_producer;
	pthread_barrier_t go;
} tp;

static void mq_put(struct mqueue *q, uint64_t v)
{
	pthread_mutex_lock(&q->m);
	while (q->len == QCAP)
		pthread_cond_wait(&q->not_full, &q->m);
	q->ring[(q->head + q->len++) % QCAP] = v;
	pthread_cond_signal(&q->not_empty);
	pthread_mutex_unlock(&q->m);
}

static uint64_t mq_get(struct mqueue *q)
{
	uint64_t v;

	pthread_mutex_lock(&q->m);
	while (q->len == 0)
		pthread_cond_wait(&q->not_empty, &q->m);
	v = q->ring[q->head];
	q->head = (q->head + 1) % QCAP;
	q->len--;
	pthread_cond_signal(&q->not_full);
	pthread_mutex_unlock(&q->m);
	return v;
}

static void *tp_producer(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&tp.go);
	for (uint64_t i = 1; i <= (uint64_t)tp.per_producer; i++) {
		switch (tp.impl) {
		case I_KSYNC:
			check(ksync_bqueue_put(&tp.q, &i));
			break;
		case I_MUTEX:
			mq_put(&tp.mq, i);
			break;
		case I_PIPE:
			if (write(tp.pfd[1], &i, sizeof(i)) != sizeof(i))
				die("pipe write: %s", strerror(errno));
			break;
		}
	}
	return NULL;
}

static void *tp_consumer(void *arg)
{
	uint64_t v, sum = 0;

	(void)arg;
	pthread_barrier_wait(&tp.go);
	for (long i = 0; i < tp.per_producer; i++) {
		switch (tp.impl) {
		case I_KSYNC:
			check(ksync_bqueue_get(&tp.q, &v));
			break;
		case I_MUTEX:
			v = mq_get(&tp.mq);
			break;
		case I_PIPE:
			if (read(tp.pfd[0], &v, sizeof(v)) != sizeof(v))
				die("pipe read: %s", strerror(errno));
			break;
		}
		sum += v;
	}
	return (void *)(uintptr_t)sum;
}

static double run_tp(enum impl impl, long per_producer)
{
	pthread_t p[2], c[2];
	uint64_t sum = 0;
	int64_t t0;

	tp.impl = impl;
	tp.per_producer = per_producer;
	qinit(&tp.q, buf_a, sizeof(uint64_t), QCAP);
	pthread_mutex_init(&tp.mq.m, NULL);
	pthread_cond_init(&tp.mq.not_empty, NULL);
	pthread_cond_init(&tp.mq.not_full, NULL);
	tp.mq.head = tp.mq.len = 0;
	if (pipe2(tp.pfd, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	pthread_barrier_init(&tp.go, NULL, 5);
	for (int i = 0; i < 2; i++) {
		p[i] = spawn(tp_producer, NULL);
		c[i] = spawn(tp_consumer, NULL);
	}
	pthread_barrier_wait(&tp.go);
	t0 = now_ns();
	for (int i = 0; i < 2; i++) {
		void *s;

		join(p[i]);
		if (pthread_join(c[i], &s))
			die("join");
		sum += (uintptr_t)s;
	}
	t0 = now_ns() - t0;
	if (sum != (uint64_t)per_producer * (uint64_t)(per_producer + 1))
		die("throughput %d: items lost (sum %llu)", impl, (unsigned long long)sum);
	pthread_barrier_destroy(&tp.go);
	close(tp.pfd[0]);
	close(tp.pfd[1]);
	pthread_mutex_destroy(&tp.mq.m);
	pthread_cond_destroy(&tp.mq.not_empty);
	pthread_cond_destroy(&tp.mq.not_full);
	return 2.0 * (double)per_producer / ((double)t0 / 1e9);
}

/* ---- mixed: 2 producer threads -> 2 rings x 50 tasks ------------------------------ */

#define MRINGS 2
#define MTASKS 50

struct mtask {
	struct ksync_op op;
	struct ksync_loop *loop;
	struct titem it;
	struct hist *h;
	long *got;
};

static struct ksync_bqueue mq_q;
static uint64_t mq_buf[QCAP * 2];

static void mtask_cb(struct ksync_op *op)
{
	struct mtask *t = op->data;

	do {
		if (op->result == -ESHUTDOWN)
			return;
		if (op->result)
			die("mixed get: %s", strerror(-op->result));
		hist_add(t->h, now_ns() - t->it.ts);
		(*t->got)++;
		ksync_op_bqueue_get(op, &mq_q, &t->it);
		op->data = t;
	} while (ksync_loop_start(t->loop, op, mtask_cb) == 0);
}

struct mring {
	struct hist h;
	long got;
};

static void *mring_main(void *arg)
{
	struct mring *r = arg;
	static __thread struct mtask tasks[MTASKS];
	struct ksync_loop loop;

	check(ksync_loop_init(&loop, 128, cfg.ring_flags));
	for (int i = 0; i < MTASKS; i++) {
		tasks[i] = (struct mtask){ .loop = &loop, .h = &r->h, .got = &r->got };
		ksync_op_bqueue_get(&tasks[i].op, &mq_q, &tasks[i].it);
		tasks[i].op.data = &tasks[i];
		if (loop_start_done(&loop, &tasks[i].op, mtask_cb))
			mtask_cb(&tasks[i].op);
	}
	check(ksync_loop_run(&loop));
	ksync_loop_exit(&loop);
	return NULL;
}

static long mixed_left;

static void *mixed_producer(void *arg)
{
	long n = *(long *)arg;

	for (long i = 0; i < n; i++) {
		struct titem it = { now_ns(), (uint64_t)i };

		check(ksync_bqueue_put(&mq_q, &it));
	}
	if (__atomic_sub_fetch(&mixed_left, 1, __ATOMIC_ACQ_REL) == 0)
		check(ksync_bqueue_close(&mq_q));
	return NULL;
}

static void run_mixed(long per_producer, double *rate, double *p999)
{
	static struct mring rings[MRINGS];
	pthread_t p[2], r[MRINGS];
	struct hist all;
	long got = 0;
	int64_t t0;

	check(ksync_bqueue_init(&mq_q, KSYNC_BQUEUE_FIFO, sizeof(struct titem), QCAP, mq_buf,
				sizeof(mq_buf), 0));
	mixed_left = 2;
	for (int i = 0; i < MRINGS; i++) {
		hist_reset(&rings[i].h);
		rings[i].got = 0;
		r[i] = spawn(mring_main, &rings[i]);
	}
	sleep_ns(20000000);	/* the tasks park */
	t0 = now_ns();
	for (int i = 0; i < 2; i++)
		p[i] = spawn(mixed_producer, &per_producer);
	for (int i = 0; i < 2; i++)
		join(p[i]);
	for (int i = 0; i < MRINGS; i++)
		join(r[i]);
	t0 = now_ns() - t0;
	hist_reset(&all);
	for (int i = 0; i < MRINGS; i++) {
		hist_merge(&all, &rings[i].h);
		got += rings[i].got;
	}
	if (got != 2 * per_producer)
		die("mixed: %ld items got of %ld", got, 2 * per_producer);
	*rate = (double)got / ((double)t0 / 1e9);
	*p999 = hist_pct(&all, 0.999);
}

/* ---- task -> task across two rings ---------------------------------------------- */

struct side {
	struct ksync_loop loop;
	struct ksync_op op;
	struct titem it;
	struct ksync_bqueue *in, *out;
	int n, i;
	bool first, putting;
	struct hist *h;
};

static struct ksync_bqueue ab, ba;

static void side_cb(struct ksync_op *op);

/* A: put, get the echo (one round trip); B: get, put it back. */
static bool side_next(struct side *s)
{
	struct ksync_op *op = &s->op;

	if (s->putting) {
		ksync_op_bqueue_put(op, s->out, &s->it);
	} else {
		ksync_op_bqueue_get(op, s->in, &s->it);
	}
	op->data = s;
	return loop_start_done(&s->loop, op, side_cb);
}

static void side_cb(struct ksync_op *op)
{
	struct side *s = op->data;

	do {
		if (op->result)
			die("ring op: %s", strerror(-op->result));
		/* a round ends with A's get and with B's put */
		if (s->first ? !s->putting : s->putting) {
			if (s->h)
				hist_add(s->h, now_ns() - s->it.ts);
			if (++s->i == s->n)
				return;
			if (s->first)
				s->it.ts = now_ns();
		}
		s->putting = !s->putting;
	} while (side_next(s));
}

static void *side_main(void *arg)
{
	struct side *s = arg;

	place(P_SPLIT, s->first ? 0 : 1);
	check(ksync_loop_init(&s->loop, 64, cfg.ring_flags));
	s->i = 0;
	s->putting = s->first;
	s->it.ts = now_ns();
	if (side_next(s))
		side_cb(&s->op);
	check(ksync_loop_run(&s->loop));
	ksync_loop_exit(&s->loop);
	unplace();
	return NULL;
}

static void run_rings(struct hist *rt, int n)
{
	static struct side a, b;
	pthread_t ta, tb;

	qinit(&ab, buf_a, sizeof(struct titem), 4);
	qinit(&ba, buf_b, sizeof(struct titem), 4);
	hist_reset(rt);
	a = (struct side){ .in = &ba, .out = &ab, .n = n, .first = true, .h = rt };
	b = (struct side){ .in = &ab, .out = &ba, .n = n };
	tb = spawn(side_main, &b);
	ta = spawn(side_main, &a);
	join(ta);
	join(tb);
}

/* MSG_RING ping-pong: each side waits for a CQE and sends one to the other. */
struct msgside {
	struct io_uring ring;
	int peer_fd, n;
	bool first;
	struct hist *h;
	pthread_barrier_t *ready;
	struct msgside *peer;
};

static void msg_send(struct msgside *s, uint64_t payload)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

	io_uring_prep_msg_ring(sqe, s->peer_fd, 0, payload, 0);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	sqe->user_data = 1;
	check(io_uring_submit(&s->ring));
}

static uint64_t msg_recv(struct msgside *s)
{
	struct io_uring_cqe *cqe;
	uint64_t v;

	for (;;) {
		check(io_uring_wait_cqe(&s->ring, &cqe));
		if (cqe->user_data == 1 && cqe->res < 0)
			die("MSG_RING: %s", strerror(-cqe->res));
		v = cqe->user_data;
		io_uring_cqe_seen(&s->ring, cqe);
		if (v != 1)
			return v;
	}
}

static void *msg_main(void *arg)
{
	struct msgside *s = arg;

	place(P_SPLIT, s->first ? 0 : 1);
	check(io_uring_queue_init(8, &s->ring, cfg.ring_flags));
	pthread_barrier_wait(s->ready);
	s->peer_fd = s->peer->ring.ring_fd;
	pthread_barrier_wait(s->ready);
	for (int i = 0; i < s->n; i++) {
		if (s->first) {
			int64_t t0 = now_ns();

			msg_send(s, (uint64_t)t0 | 2);
			msg_recv(s);
			hist_add(s->h, now_ns() - t0);
		} else {
			msg_send(s, msg_recv(s));
		}
	}
	pthread_barrier_wait(s->ready);
	io_uring_queue_exit(&s->ring);
	unplace();
	return NULL;
}

static void run_msg(struct hist *rt, int n)
{
	static struct msgside a, b;
	pthread_barrier_t ready;
	pthread_t ta, tb;

	pthread_barrier_init(&ready, NULL, 2);
	hist_reset(rt);
	a = (struct msgside){ .n = n, .first = true, .h = rt, .ready = &ready, .peer = &b };
	b = (struct msgside){ .n = n, .ready = &ready, .peer = &a };
	ta = spawn(msg_main, &a);
	tb = spawn(msg_main, &b);
	join(ta);
	join(tb);
	pthread_barrier_destroy(&ready);
}

/* ---- the rows ---------------------------------------------------------------------- */

void bench_queue(void)
{
	struct series t2k = { 0 }, k2t = { 0 }, fx = { 0 }, q = { 0 }, m = { 0 }, pp = { 0 };
	struct series mix = { 0 }, mix999 = { 0 }, rq = { 0 }, rmsg = { 0 };
	static struct lat l;
	struct hist h;
	int rounds = (int)scaled(3000, 300);
	long items = scaled(500000, 50000);

	for (int r = 0; r < cfg.runs; r++) {
		double rate, p999;

		run_lat(&l, rounds);
		series_add(&t2k, hist_pct(&l.t2k, 0.5));
		series_add(&k2t, hist_pct(&l.k2t, 0.5));
		run_futex(&h, rounds);
		series_add(&fx, hist_pct(&h, 0.5));

		series_add(&q, run_tp(I_KSYNC, items));
		series_add(&m, run_tp(I_MUTEX, items));
		series_add(&pp, run_tp(I_PIPE, items));

		run_mixed(items / 2, &rate, &p999);
		series_add(&mix, rate);
		series_add(&mix999, p999);

		run_rings(&h, rounds);
		series_add(&rq, hist_pct(&h, 0.5));
		run_msg(&h, rounds);
		series_add(&rmsg, hist_pct(&h, 0.5));
	}
	report("9 queue item latency thread → task: p50", U_NS, &t2k, "futex2 one way", &fx,
	       (struct goal){ G_RATIO_LE, 1.2, "≤ 1.2x futex2" });
	report("9 queue item latency task → thread: p50", U_NS, &k2t, "futex2 one way", &fx,
	       (struct goal){ G_RATIO_LE, 1.2, "≤ 1.2x futex2" });
	report("9 queue 2×2 threads, 8-byte items: throughput", U_OPS, &q, "mutex+condvar", &m,
	       (struct goal){ G_RATIO_GE, 2.0, "≥ 2x mutex+condvar" });
	report("9 queue 2×2 threads, 8-byte items: throughput", U_OPS, &q, "pipe", &pp,
	       (struct goal){ G_RATIO_GE, 5.0, "≥ 5x pipe" });
	report("9 queue 2 threads → 2×50 tasks: throughput", U_OPS, &mix, NULL, NULL, NO_GOAL);
	report("9 queue 2 threads → 2×50 tasks: p99.9 latency", U_NS, &mix999, NULL, NULL,
	       NO_GOAL);
	report("9 queue task → task, 2 rings: round trip p50", U_NS, &rq, "MSG_RING", &rmsg,
	       (struct goal){ G_RATIO_LE, 1.0, "≤ 1.0x MSG_RING" });
	note("9: latency rows: one item in flight, %d per run, threads pinned to two CPUs; "
	     "futex2 one way is half a thread↔thread round trip on two plain words. "
	     "Throughput rows: %ld items per producer, capacity %d.",
	     rounds, items, QCAP);
}
