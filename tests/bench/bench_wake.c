/* SPDX-License-Identifier: MIT */
/*
 * Cross-world wake round trip: a thread pings, the other side answers, the
 * thread waits for the answer. One sample is the whole round trip as the
 * thread sees it, so both wake-ups are in it.
 *
 *   ksync        thread <-> task: a ksync_loop in another thread waits with
 *                an async op on event ping[i] and sets pong[i]; the thread
 *                sets ping[i] and blocks in ksync_event_wait(pong[i]). Every
 *                round uses a fresh pair of events (events are one-shot).
 *   futex2       thread <-> thread on two plain words: store, futex_wake;
 *                futex_wait until the other word changes.
 *   eventfd/uring the other side reads eventfd "ping" through IORING_OP_READ
 *                on its ring and writes eventfd "pong"; the thread writes
 *                ping and blocks in read(pong).
 *   eventfd/epoll the same, with epoll_wait on ping instead of a ring.
 *
 * Both threads are pinned, either to one CPU (the software path: syscalls,
 * wake-up, context switch) or to two (that plus waking an idle CPU, which
 * in a VM costs tens of µs). Left unpinned, the scheduler flips between the
 * two from run to run and the medians become a lottery.
 */
#include "bench.h"

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WARMUP 100

enum variant { V_KSYNC, V_FUTEX, V_EVENTFD_URING, V_EVENTFD_EPOLL };

struct pingpong {
	enum variant variant;
	enum placement placement;
	unsigned ring_flags;
	int n;			/* rounds, warm-up included */
	pthread_barrier_t ready;
	struct hist rt;

	/* ksync */
	struct ksync_event *ping, *pong;
	struct ksync_loop loop;
	struct ksync_op op;
	int i;

	/* futex2: the round number, each word on its own line */
	uint32_t fping __attribute__((aligned(64)));
	uint32_t fpong __attribute__((aligned(64)));

	/* eventfd */
	int efd_ping, efd_pong;
};

/* ---- the answering side ------------------------------------------------- */

static void task_cb(struct ksync_op *op)
{
	struct pingpong *pp = op->data;

	do {
		if (op->result)
			die("event op: %s", strerror(-op->result));
		ksync_event_set(&pp->pong[pp->i]);
		if (++pp->i == pp->n)
			return;
		ksync_op_event(op, &pp->ping[pp->i]);
		op->data = pp;
	} while (loop_start_done(&pp->loop, op, task_cb));
}

static void *answer_ksync(struct pingpong *pp)
{
	/* The ring is made here: a SINGLE_ISSUER ring belongs to its creator. */
	check(ksync_loop_init(&pp->loop, 64, pp->ring_flags));
	pp->i = 0;
	ksync_op_event(&pp->op, &pp->ping[0]);
	pp->op.data = pp;
	if (loop_start_done(&pp->loop, &pp->op, task_cb))
		task_cb(&pp->op);
	check(ksync_loop_run_once(&pp->loop, 0));
	pthread_barrier_wait(&pp->ready);
	check(ksync_loop_run(&pp->loop));
	ksync_loop_exit(&pp->loop);
	return NULL;
}

static void *answer_futex(struct pingpong *pp)
{
	pthread_barrier_wait(&pp->ready);
	for (uint32_t i = 1; i <= (uint32_t)pp->n; i++) {
		while (peek(pp->fping) != i)
			check_wait(ksync_futex_wait(&pp->fping, i - 1, KSYNC_FUTEX_MASK_ANY,
						    CLOCK_MONOTONIC, NULL));
		poke(pp->fpong, i);
		check(ksync_futex_wake(&pp->fpong, KSYNC_FUTEX_MASK_ANY, 1));
	}
	return NULL;
}

static void *answer_eventfd_uring(struct pingpong *pp)
{
	struct io_uring ring;
	uint64_t v;

	check(io_uring_queue_init(8, &ring, pp->ring_flags));
	pthread_barrier_wait(&pp->ready);
	for (int i = 0; i < pp->n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		struct io_uring_cqe *cqe;

		io_uring_prep_read(sqe, pp->efd_ping, &v, sizeof(v), 0);
		check(io_uring_submit_and_wait(&ring, 1));
		check(io_uring_wait_cqe(&ring, &cqe));
		if (cqe->res != sizeof(v))
			die("IORING_OP_READ of eventfd: %d", cqe->res);
		io_uring_cqe_seen(&ring, cqe);
		efd_write(pp->efd_pong);
	}
	io_uring_queue_exit(&ring);
	return NULL;
}

static void *answer_eventfd_epoll(struct pingpong *pp)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, pp->efd_ping, &ev))
		die("epoll: %s", strerror(errno));
	pthread_barrier_wait(&pp->ready);
	for (int i = 0; i < pp->n; i++) {
		while (epoll_wait(ep, &ev, 1, -1) != 1)
			if (errno != EINTR)
				die("epoll_wait: %s", strerror(errno));
		efd_read(pp->efd_ping);
		efd_write(pp->efd_pong);
	}
	close(ep);
	return NULL;
}

static void *answer(void *arg)
{
	struct pingpong *pp = arg;

	place(pp->placement, 1);
	switch (pp->variant) {
	case V_KSYNC:
		return answer_ksync(pp);
	case V_FUTEX:
		return answer_futex(pp);
	case V_EVENTFD_URING:
		return answer_eventfd_uring(pp);
	case V_EVENTFD_EPOLL:
		return answer_eventfd_epoll(pp);
	}
	return NULL;
}

/* ---- the pinging thread ------------------------------------------------- */

static void ping_once(struct pingpong *pp, int i)
{
	switch (pp->variant) {
	case V_KSYNC:
		ksync_event_set(&pp->ping[i]);
		check(ksync_event_wait(&pp->pong[i]));
		break;
	case V_FUTEX: {
		uint32_t seq = (uint32_t)i + 1;

		poke(pp->fping, seq);
		check(ksync_futex_wake(&pp->fping, KSYNC_FUTEX_MASK_ANY, 1));
		while (peek(pp->fpong) != seq)
			check_wait(ksync_futex_wait(&pp->fpong, seq - 1, KSYNC_FUTEX_MASK_ANY,
						    CLOCK_MONOTONIC, NULL));
		break;
	}
	case V_EVENTFD_URING:
	case V_EVENTFD_EPOLL:
		efd_write(pp->efd_ping);
		efd_read(pp->efd_pong);
		break;
	}
}

static void run_pingpong(struct pingpong *pp, enum variant v, unsigned ring_flags, int rounds)
{
	pthread_t t;

	pp->variant = v;
	pp->ring_flags = ring_flags;
	pp->n = rounds + WARMUP;
	hist_reset(&pp->rt);
	pp->fping = pp->fpong = 0;
	pp->ping = calloc((size_t)pp->n, sizeof(*pp->ping));
	pp->pong = calloc((size_t)pp->n, sizeof(*pp->pong));
	pp->efd_ping = eventfd(0, EFD_CLOEXEC);
	pp->efd_pong = eventfd(0, EFD_CLOEXEC);
	if (!pp->ping || !pp->pong || pp->efd_ping < 0 || pp->efd_pong < 0)
		die("setup: %s", strerror(errno));
	pthread_barrier_init(&pp->ready, NULL, 2);

	t = spawn(answer, pp);
	place(pp->placement, 0);
	pthread_barrier_wait(&pp->ready);
	for (int i = 0; i < pp->n; i++) {
		int64_t t0 = now_ns();

		ping_once(pp, i);
		if (i >= WARMUP)
			hist_add(&pp->rt, now_ns() - t0);
	}
	join(t);
	unplace();

	pthread_barrier_destroy(&pp->ready);
	close(pp->efd_ping);
	close(pp->efd_pong);
	free(pp->ping);
	free(pp->pong);
}

void bench_wake(void)
{
	enum { KS, KS_PLAIN, FX, EU, EE, NV };
	static const enum variant variants[NV] = {
		[KS] = V_KSYNC, [KS_PLAIN] = V_KSYNC, [FX] = V_FUTEX,
		[EU] = V_EVENTFD_URING, [EE] = V_EVENTFD_EPOLL,
	};
	static const enum placement placements[] = { P_SAME_CPU, P_SPLIT };
	static const char *pname[] = { [P_SAME_CPU] = "same CPU", [P_SPLIT] = "2 CPUs" };
	struct series p50[3][NV] = { 0 }, p99[3][NV] = { 0 };
	static struct pingpong pp;
	int rounds = (int)scaled(3000, 300);
	int nplace = usable_cpu(1) >= 0 ? 2 : 1;
	char name[128];

	for (int r = 0; r < cfg.runs; r++) {
		for (int pi = 0; pi < nplace; pi++) {
			for (int v = 0; v < NV; v++) {
				/* ksync and the io_uring baseline use the configured
				 * ring; KS_PLAIN shows a ring without DEFER_TASKRUN. */
				unsigned flags = v == KS_PLAIN ? 0 : cfg.ring_flags;
				enum placement p = placements[pi];

				pp.placement = p;
				run_pingpong(&pp, variants[v], flags, rounds);
				series_add(&p50[p][v], hist_pct(&pp.rt, 0.5));
				series_add(&p99[p][v], hist_pct(&pp.rt, 0.99));
			}
		}
	}

	for (int pi = 0; pi < nplace; pi++) {
		enum placement p = placements[pi];

#define ROW(what) (snprintf(name, sizeof(name), "3 wake round trip thread↔task, %s: %s", \
			    pname[p], what), name)
		report(ROW("p50"), U_NS, &p50[p][KS], "futex2 thread↔thread", &p50[p][FX],
		       (struct goal){ G_RATIO_LE, 1.15, "≤ 1.15x futex2" });
		report(ROW("p99"), U_NS, &p99[p][KS], "futex2 thread↔thread", &p99[p][FX],
		       NO_GOAL);
		report(ROW("p50"), U_NS, &p50[p][KS], "eventfd via io_uring read", &p50[p][EU],
		       (struct goal){ G_RATIO_LE, 0.2, "≤ 0.2x eventfd/uring" });
		report(ROW("p99"), U_NS, &p99[p][KS], "eventfd via io_uring read", &p99[p][EU],
		       NO_GOAL);
		report(ROW("p50"), U_NS, &p50[p][KS], "eventfd in epoll", &p50[p][EE], NO_GOAL);
		report(ROW("p99"), U_NS, &p99[p][KS], "eventfd in epoll", &p99[p][EE], NO_GOAL);
		report(ROW("p50, plain ring"), U_NS, &p50[p][KS_PLAIN], "futex2 thread↔thread",
		       &p50[p][FX], NO_GOAL);
#undef ROW
	}
	if (nplace == 1)
		report_missing("3 wake round trip thread↔task, 2 CPUs", "only 1 usable CPU",
			       NO_GOAL);
	note("3: %d round trips per run after %d warm-up rounds. Both threads are pinned: "
	     "\"same CPU\" is the software path (syscalls, wake, context switch); \"2 CPUs\" "
	     "adds waking an idle CPU, which dominates in a VM. Unpinned runs flip between "
	     "the two at random. The task side runs a ksync_loop (the eventfd/uring side a "
	     "ring) with SINGLE_ISSUER|DEFER_TASKRUN unless the row says plain ring.",
	     rounds, WARMUP);
}
