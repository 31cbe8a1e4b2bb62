/* SPDX-License-Identifier: MIT */
/* ksync_sdevent: a ksync_poller driven by an sd-event IO source. */
#include "internal.h"
#include "ksync/sdevent.h"

#include <string.h>
#include <sys/epoll.h>

/* The poller's fd is readable: reap and run callbacks. */
static int on_ring(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	(void)s;
	(void)fd;
	(void)revents;
	/*
	 * Errors are transient (the re-armed waits stay queued and go out with
	 * the next submit). Returning one would make sd-event disable the
	 * source, and every pending op would hang.
	 */
	ksync_poller_dispatch(userdata);
	return 0;
}

KSYNC_API int ksync_sdevent_attach(struct ksync_sdevent *a, sd_event *e)
{
	int r;

	memset(a, 0, sizeof(*a));
	if (!e)
		return -EINVAL;
	r = ksync_poller_init(&a->poller, 32);
	if (r)
		return r;
	r = sd_event_add_io(e, &a->source, ksync_poller_fd(&a->poller), EPOLLIN, on_ring,
			    &a->poller);
	if (r < 0) {
		a->source = NULL;
		ksync_poller_exit(&a->poller);
		return r;
	}
	sd_event_source_set_description(a->source, "ksync");
	a->event = sd_event_ref(e);
	return 0;
}

KSYNC_API int ksync_sdevent_start(struct ksync_sdevent *a, struct ksync_op *op, ksync_op_cb cb)
{
	if (!a->event)
		return -ESHUTDOWN;
	return ksync_poller_start(&a->poller, op, cb);
}

KSYNC_API int ksync_sdevent_cancel(struct ksync_sdevent *a, struct ksync_op *op)
{
	if (!a->event)
		return -EALREADY;
	return ksync_poller_cancel(&a->poller, op);
}

KSYNC_API void ksync_sdevent_detach(struct ksync_sdevent *a)
{
	sd_event *e = a->event;

	if (!e)
		return;
	/* Marks us detached for callbacks that run below (start: -ESHUTDOWN,
	 * a nested detach: no-op). */
	a->event = NULL;
	/* Off epoll while the ring fd is still open (the poller closes it). If
	 * we are inside this source's own handler, sd-event defers the free. */
	a->source = sd_event_source_disable_unref(a->source);
	/* Cancels, reaps, hands on raced grants, runs the callbacks. It does
	 * not need the loop: it waits on the ring directly. */
	ksync_poller_exit(&a->poller);
	/* Last: this may free the event if the caller already dropped it. */
	sd_event_unref(e);
}
