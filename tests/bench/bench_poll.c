/* SPDX-License-Identifier: MIT */
/*
 * Poll-loop round trip: a thread pings, a callback in a poll loop (one that
 * knows nothing about io_uring) answers, the thread waits for the answer.
 * One sample is the whole round trip as the thread sees it, so both
 * wake-ups, the loop's epoll_wait and its dispatch are in it.
 *
 *   ksync_sdevent  an sd-event loop in another thread waits, through the
 *                  adapter, for event ping[i]; the callback sets pong[i] and
 *                  starts the wait for ping[i+1]. The thread sets ping[i] and
 *                  blocks in ksync_event_wait(pong[i]). A fresh pair of
 *                  events per round (events are one-shot).
 *   eventfd/sd-event  the same loop watches eventfd "ping" with an IO
 *                  source; the handler reads it and writes eventfd "pong";
 *                  the thread writes ping and blocks in read(pong).
 *   ksync_poller   the same as ksync_sdevent in a bare epoll_wait loop that
 *                  watches the poller's fd and calls ksync_poller_dispatch.
 *   eventfd/epoll  the same bare loop watching eventfd "ping".
 *
 * The ksync side's wait is an IORING_OP_FUTEX_WAIT on the event's word,
 * parked on the poller's plain ring; the wake completes it as task work for
 * the loop thread, which makes the ring fd readable to epoll. The eventfd
 * side is the classic way to wake a poll loop from a thread.
 *
 * Pinned like case 3: both threads on one CPU (the software path), or on
 * two (that plus waking an idle CPU).
 *
 * The sd-event rows are built only where libsystemd is (as the adapter is).
 */
#include "bench.h"

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ksync/poller.h"
#if KSYNC_BENCH_SDEVENT
#include "ksync/sdevent.h"
#endif

#define WARMUP 100

enum variant { V_SD_KSYNC, V_SD_EVENTFD, V_EP_KSYNC, V_EP_EVENTFD, NVARIANTS };

struct pingpong {
	enum variant variant;
	enum placement placement;
	int n;			/* rounds, warm-up included */
	pthread_barrier_t ready;
	struct hist rt;
	int i;			/* the loop side's next round */

	/* ksync */
	struct ksync_event *ping, *pong;
	struct ksync_op op;
	struct ksync_poller poller;
#if KSYNC_BENCH_SDEVENT
	struct ksync_sdevent adapter;
	sd_event *event;
#endif

	/* eventfd */
	int efd_ping, efd_pong;
};

/* ---- the answering side ------------------------------------------------- */

static int start_op(struct pingpong *pp, ksync_op_cb cb)
{
	ksync_op_event(&pp->op, &pp->ping[pp->i]);
	pp->op.data = pp;
#if KSYNC_BENCH_SDEVENT
	if (pp->variant == V_SD_KSYNC)
		return ksync_sdevent_start(&pp->adapter, &pp->op, cb);
#endif
	return ksync_poller_start(&pp->poller, &pp->op, cb);
}

/* The ksync answer: set pong[i], wait for ping[i+1]. If ping[i+1] is set
 * already (the thread was quick, on another CPU) the start finishes at once
 * without a callback, so answer that round here too. */
static void on_ping(struct ksync_op *op)
{
	struct pingpong *pp = op->data;
	int r;

	do {
		if (op->result)
			die("event op: %s", strerror(-op->result));
		ksync_event_set(&pp->pong[pp->i]);
		if (++pp->i == pp->n) {
#if KSYNC_BENCH_SDEVENT
			if (pp->variant == V_SD_KSYNC)
				check(sd_event_exit(pp->event, 0));
#endif
			return;
		}
		r = start_op(pp, on_ping);
		check(r);
	} while (r == 0);
}

#if KSYNC_BENCH_SDEVENT
static int on_efd(sd_event_source *s, int fd, uint32_t revents, void *data)
{
	struct pingpong *pp = data;

	(void)s, (void)revents;
	efd_read(fd);
	efd_write(pp->efd_pong);
	if (++pp->i == pp->n)
		check(sd_event_exit(pp->event, 0));
	return 0;
}

static void answer_sdevent(struct pingpong *pp)
{
	check(sd_event_new(&pp->event));
	if (pp->variant == V_SD_KSYNC) {
		check(ksync_sdevent_attach(&pp->adapter, pp->event));
		if (start_op(pp, on_ping) == 0)
			die("ping[0] set before the first round");
	} else {
		check(sd_event_add_io(pp->event, NULL, pp->efd_ping, EPOLLIN, on_efd, pp));
	}
	pthread_barrier_wait(&pp->ready);
	check(sd_event_loop(pp->event));
	if (pp->variant == V_SD_KSYNC)
		ksync_sdevent_detach(&pp->adapter);
	sd_event_unref(pp->event);
	pp->event = NULL;
}
#endif

static void answer_epoll(struct pingpong *pp)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int fd = pp->efd_ping;

	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));
	if (pp->variant == V_EP_KSYNC) {
		/* The poller belongs to the loop's thread: made here. */
		check(ksync_poller_init(&pp->poller, 16));
		fd = ksync_poller_fd(&pp->poller);
		if (start_op(pp, on_ping) == 0)
			die("ping[0] set before the first round");
	}
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		die("epoll_ctl: %s", strerror(errno));
	pthread_barrier_wait(&pp->ready);
	while (pp->i < pp->n) {
		/* A completion's task work may interrupt the wait: retry. */
		if (epoll_wait(ep, &ev, 1, -1) != 1) {
			if (errno != EINTR)
				die("epoll_wait: %s", strerror(errno));
			continue;
		}
		if (pp->variant == V_EP_KSYNC) {
			check(ksync_poller_dispatch(&pp->poller));
		} else {
			efd_read(pp->efd_ping);
			efd_write(pp->efd_pong);
			pp->i++;
		}
	}
	if (pp->variant == V_EP_KSYNC)
		ksync_poller_exit(&pp->poller);
	close(ep);
}

static void *answer(void *arg)
{
	struct pingpong *pp = arg;

	place(pp->placement, 1);
	pp->i = 0;
	switch (pp->variant) {
#if KSYNC_BENCH_SDEVENT
	case V_SD_KSYNC:
	case V_SD_EVENTFD:
		answer_sdevent(pp);
		break;
#endif
	case V_EP_KSYNC:
	case V_EP_EVENTFD:
		answer_epoll(pp);
		break;
	default:
		die("variant %d not built", pp->variant);
	}
	return NULL;
}

/* ---- the pinging thread ------------------------------------------------- */

static void ping_once(struct pingpong *pp, int i)
{
	switch (pp->variant) {
	case V_SD_KSYNC:
	case V_EP_KSYNC:
		ksync_event_set(&pp->ping[i]);
		check(ksync_event_wait(&pp->pong[i]));
		break;
	default:
		efd_write(pp->efd_ping);
		efd_read(pp->efd_pong);
		break;
	}
}

static void run_pingpong(struct pingpong *pp, enum variant v, int rounds)
{
	pthread_t t;

	pp->variant = v;
	pp->n = rounds + WARMUP;
	hist_reset(&pp->rt);
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

void bench_poll(void)
{
	static const enum placement placements[] = { P_SAME_CPU, P_SPLIT };
	static const char *pname[] = { [P_SAME_CPU] = "same CPU", [P_SPLIT] = "2 CPUs" };
	static const struct {
		enum variant ksync, base;
		const char *loop, *base_name;
	} pairs[] = {
#if KSYNC_BENCH_SDEVENT
		{ V_SD_KSYNC, V_SD_EVENTFD, "sd-event (ksync_sdevent)", "eventfd in sd-event" },
#endif
		{ V_EP_KSYNC, V_EP_EVENTFD, "epoll (ksync_poller)", "eventfd in epoll" },
	};
	enum { NPAIRS = sizeof(pairs) / sizeof(pairs[0]) };
	struct series p50[2][NVARIANTS] = { 0 }, p99[2][NVARIANTS] = { 0 };
	static struct pingpong pp;
	int rounds = (int)scaled(1500, 200);
	int nplace = usable_cpu(1) >= 0 ? 2 : 1;
	char name[128];

	for (int r = 0; r < cfg.runs; r++) {
		for (int pi = 0; pi < nplace; pi++) {
			for (int k = 0; k < NPAIRS; k++) {
				/* ksync, then its baseline in the same loop. */
				enum variant vs[2] = { pairs[k].ksync, pairs[k].base };
				enum placement p = placements[pi];

				for (int j = 0; j < 2; j++) {
					pp.placement = p;
					run_pingpong(&pp, vs[j], rounds);
					series_add(&p50[pi][vs[j]], hist_pct(&pp.rt, 0.5));
					series_add(&p99[pi][vs[j]], hist_pct(&pp.rt, 0.99));
				}
			}
		}
	}

	for (int pi = 0; pi < nplace; pi++) {
		enum placement p = placements[pi];

		for (int k = 0; k < NPAIRS; k++) {
			enum variant ks = pairs[k].ksync, base = pairs[k].base;

#define ROW(what) (snprintf(name, sizeof(name), "7 poll-loop round trip thread↔%s, %s: %s", \
			    pairs[k].loop, pname[p], what), name)
			report(ROW("p50"), U_NS, &p50[pi][ks], pairs[k].base_name, &p50[pi][base],
			       NO_GOAL);
			report(ROW("p99"), U_NS, &p99[pi][ks], pairs[k].base_name, &p99[pi][base],
			       NO_GOAL);
#undef ROW
		}
	}
#if !KSYNC_BENCH_SDEVENT
	report_missing("7 poll-loop round trip thread↔sd-event (ksync_sdevent)",
		       "not built: no libsystemd", NO_GOAL);
#endif
	if (nplace == 1)
		report_missing("7 poll-loop round trip, 2 CPUs", "only 1 usable CPU", NO_GOAL);
	note("7: %d round trips per run after %d warm-up rounds, pinned as in 3. The loop "
	     "thread sleeps in epoll_wait (sd_event_loop, or a bare loop); ksync rows wait "
	     "for ksync_event ping through the adapter / poller (an io_uring futex wait "
	     "whose completion makes the ring fd readable) and set ksync_event pong, the "
	     "thread blocking in ksync_event_wait; eventfd rows watch eventfd ping in the "
	     "same loop and write eventfd pong, the thread blocking in read.",
	     rounds, WARMUP);
}
