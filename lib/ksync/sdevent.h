/* SPDX-License-Identifier: MIT */
/*
 * ksync_sdevent: await ksync primitives from a systemd sd-event loop.
 *
 * Attach an adapter to an sd_event; it adds one IO source, on the fd of a
 * ksync_poller (<ksync/poller.h>), whose handler reaps completions and runs
 * the callbacks of finished ops. A Lock, Semaphore or Event op started
 * through the adapter parks an IORING_OP_FUTEX_WAIT on the primitive's own
 * futex word, so threads, io_uring loops and sd-event callbacks all wait on,
 * and are woken through, the same word. No helper thread.
 *
 *   static void on_permit(struct ksync_op *op)
 *   {
 *           if (op->result == 0)
 *                   ...;                        // we hold a permit
 *   }
 *
 *   ksync_sdevent_attach(&a, event);
 *   ksync_op_sem(&op, &sem);
 *   ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &deadline);   // optional
 *   if (ksync_sdevent_start(&a, &op, on_permit) == 0)
 *           on_permit(&op);                     // had one at once
 *   sd_event_loop(event);
 *   ksync_sdevent_detach(&a);
 *
 * Callbacks run from the IO source's handler, inside sd_event_dispatch(),
 * never from inside ksync_sdevent_start. Change the source's priority with
 * sd_event_source_set_priority(a.source, ...) if it matters.
 *
 * Lifetime. The adapter holds a reference on the sd_event (and so does its
 * IO source), so the event stays valid until ksync_sdevent_detach even if
 * the caller drops its own reference while waits are pending; detach then
 * frees it. Detach before the loop stops running for good: a pending op
 * that gets a lock or permit keeps it until its callback runs or detach
 * hands it on.
 *
 * Threads: like sd-event itself, an adapter belongs to the thread that runs
 * the event loop; call every function here from that thread.
 */
#ifndef KSYNC_SDEVENT_H
#define KSYNC_SDEVENT_H

/* <liburing.h> (through poller.h) first: it must see the C library's
 * feature macros before anything else does (see ksync/poller.h). */
#include "ksync/poller.h"
#include <systemd/sd-event.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ksync_sdevent {
	struct ksync_poller poller;
	sd_event *event;		/* our reference; NULL when detached */
	sd_event_source *source;	/* IO source on the poller's fd */
};

/*
 * ksync_sdevent_attach - set up @a and add its IO source to @e.
 * Returns 0, or:
 *   -EINVAL      @e is NULL
 *   -ENOSYS / -EOPNOTSUPP / -EPERM, or an io_uring setup error, as for
 *                ksync_poller_init
 *   -ESTALE      @e has already finished (sd_event_add_io)
 *   -ECHILD      @e was created in another process (sd_event_add_io)
 *   -ENOMEM...   other sd_event_add_io errors
 * @a must not be attached already: its contents are overwritten. On
 * failure nothing is left attached and ksync_sdevent_detach(@a) is a no-op.
 */
KSYNC_MUST_CHECK int ksync_sdevent_attach(struct ksync_sdevent *a, sd_event *e);

/*
 * ksync_sdevent_start - start @op (ksync_op_lock / _sem / _event, optional
 * ksync_op_set_deadline) in the sd-event loop.
 * Returns:
 *   0                 finished at once, with no syscall: op->result holds the
 *                     outcome and @cb is NOT called
 *   KSYNC_OP_PENDING  @cb runs later from the loop, with op->result 0,
 *                     -ETIMEDOUT, -ECANCELED (cancel or detach) or another
 *                     negative errno
 *   -ESHUTDOWN        not attached, or inside detach
 *   or the errors of ksync_poller_start (-EINVAL, -EBUSY, -EDEADLK,
 *   -ENOSYS, -EOPNOTSUPP, -EPERM); then @cb is not called.
 */
KSYNC_MUST_CHECK int ksync_sdevent_start(struct ksync_sdevent *a, struct ksync_op *op,
					 ksync_op_cb cb);

/*
 * ksync_sdevent_cancel - stop a pending op; its callback still runs, from
 * the loop, with -ECANCELED. A grant that raced the cancel is handed on.
 * Returns 0, -EALREADY (not pending, or already cancelling; also when not
 * attached) or -EBUSY (no SQE; try again).
 */
int ksync_sdevent_cancel(struct ksync_sdevent *a, struct ksync_op *op);

/*
 * ksync_sdevent_detach - remove the IO source, cancel every pending op and
 * wait for the kernel to answer (a lock or permit that raced the cancel is
 * handed to the next waiter, never lost), run every outstanding callback
 * (pending ops get -ECANCELED; ops started from them get -ESHUTDOWN), then
 * drop the adapter's reference on the sd_event (which frees it if the
 * caller has already dropped its own). Safe to call twice, after a failed
 * attach, and from a callback or any other handler of the same loop (then
 * @a's memory must stay valid until that callback returns).
 */
void ksync_sdevent_detach(struct ksync_sdevent *a);

#ifdef __cplusplus
}
#endif
#endif
