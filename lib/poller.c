/* SPDX-License-Identifier: MIT */
/*
 * ksync_poller: ops on a small plain ring whose fd a foreign poll loop
 * watches (see ksync/poller.h). Built on the public op API only.
 *
 * Unlike ksync_loop, nobody enters io_uring_enter on our behalf: the loop
 * sleeps in epoll_wait and only calls us when the fd is readable. So every
 * SQE is submitted as soon as it is queued (start, cancel, re-arms after a
 * dispatch), or a wait would sit in the SQ ring and never park.
 */
#include "internal.h"
#include "queue.h"
#include "ksync/poller.h"

#include <string.h>

enum { P_CLOSED, P_OPEN, P_CLOSING };

KSYNC_API int ksync_poller_init(struct ksync_poller *p, unsigned entries)
{
	int r = ksync_require_uring_futex();

	memset(p, 0, sizeof(*p));
	p->ring.ring_fd = -1;
	queue_init(&p->queue);
	if (r)
		return r;
	/* Plain ring on purpose: see the header. */
	r = io_uring_queue_init(entries, &p->ring, 0);
	if (r) {
		p->ring.ring_fd = -1;
		return r;
	}
	p->state = P_OPEN;
	return 0;
}

KSYNC_API int ksync_poller_fd(const struct ksync_poller *p)
{
	return p->state == P_CLOSED ? -1 : p->ring.ring_fd;
}

KSYNC_API unsigned ksync_poller_busy(const struct ksync_poller *p)
{
	return queue_busy(&p->queue);
}

/* Hand queued SQEs to the kernel. On failure they stay queued (the kernel
 * has not consumed them) and the next submit retries them. */
static int submit(struct ksync_poller *p)
{
	int r;

	if (!io_uring_sq_ready(&p->ring))
		return 0;
	do
		r = io_uring_submit(&p->ring);
	while (r == -EINTR);
	return r < 0 ? r : 0;
}

KSYNC_API int ksync_poller_start(struct ksync_poller *p, struct ksync_op *op, ksync_op_cb cb)
{
	int r;

	if (p->state != P_OPEN)
		return -ESHUTDOWN;
	r = ksync_op_start(op, &p->ring);
	if (r == -EBUSY && !ksync_op_pending(op) && submit(p) == 0)
		r = ksync_op_start(op, &p->ring);	/* our own ring: room made */
	if (r != KSYNC_OP_PENDING)
		return r;	/* done at once, or not started */
	op->callback = cb;
	queue_pending_add(&p->queue, op);
	/* The wait is queued; an error here leaves it queued for the next
	 * submit, and the op is pending either way. */
	submit(p);
	return KSYNC_OP_PENDING;
}

KSYNC_API int ksync_poller_cancel(struct ksync_poller *p, struct ksync_op *op)
{
	int r;

	if (p->state == P_CLOSED)
		return -EALREADY;
	r = ksync_op_cancel(op, &p->ring);
	if (r == 0)
		submit(p);
	return r;
}

KSYNC_API int ksync_poller_dispatch(struct ksync_poller *p)
{
	int err = 0, n;

	if (p->state != P_OPEN)
		return -ESHUTDOWN;
	for (;;) {
		/*
		 * Re-armed waits must reach the kernel now, and CQEs the kernel
		 * kept aside after a CQ overflow are only flushed by an enter;
		 * the fd stays readable while they exist. Otherwise no
		 * syscall: on a plain ring the CQEs are already posted.
		 */
		if (io_uring_sq_ready(&p->ring) || io_uring_cq_has_overflow(&p->ring)) {
			int r = io_uring_submit_and_get_events(&p->ring);

			if (r < 0 && r != -EINTR) {
				err = r;
				break;
			}
		}
		if (!queue_reap(&p->queue, &p->ring))
			break;
	}
	n = queue_run_ready(&p->queue);
	return err && !n ? err : n;
}

KSYNC_API void ksync_poller_exit(struct ksync_poller *p)
{
	if (p->state != P_OPEN)
		return;		/* closed, or exit is already under way */
	p->state = P_CLOSING;
	queue_drain(&p->queue, &p->ring);
	io_uring_queue_exit(&p->ring);
	p->ring.ring_fd = -1;
	p->state = P_CLOSED;
}
