/* SPDX-License-Identifier: MIT */
/* Event: one-shot flag, broadcast wake. */
#include "annotate.h"
#include "engine.h"
#include "ksync/event.h"

#include <limits.h>

KSYNC_API int ksync_event_init(struct ksync_event *ev, unsigned flags)
{
	if (flags & ~KSYNC_SHARED)
		return -EINVAL;
	store_relaxed(&ev->word, KSYNC_EVENT_UNSET);
	store_relaxed(&ev->flags, flags);
	return 0;
}

static inline uint32_t fflags(const struct ksync_event *ev)
{
	return futex_flags_for(load_relaxed(&ev->flags));
}

KSYNC_API int ksync_event_set(struct ksync_event *ev)
{
	annotate_release(ev);
	uint32_t old = __atomic_exchange_n(&ev->word, KSYNC_EVENT_SET, __ATOMIC_ACQ_REL);

	if (old == KSYNC_EVENT_SET)
		return 0;
	/* One syscall reaches every parked thread and io_uring wait. */
	if (old == KSYNC_EVENT_WAITERS)
		wake_traced(&ev->word, fflags(ev), ev, KSYNC_KIND_EVENT, INT_MAX);
	return 1;
}

KSYNC_API bool ksync_event_is_set(const struct ksync_event *ev)
{
	return annotate_if(load_acquire(&ev->word) == KSYNC_EVENT_SET, ev);
}

KSYNC_API int ksync_event_try(const struct ksync_event *ev)
{
	return ksync_event_is_set(ev) ? 0 : -EAGAIN;
}

/*
 * Announce a waiter: UNSET -> WAITERS. Returns true if the event is set.
 * Shared by threads and async ops; the parked value is always WAITERS.
 */
static bool announce_waiter(struct ksync_event *ev)
{
	uint32_t v = load_acquire(&ev->word);

	while (v == KSYNC_EVENT_UNSET) {
		if (cas_acquire(&ev->word, &v, KSYNC_EVENT_WAITERS))
			return false;
	}
	return annotate_if(v == KSYNC_EVENT_SET, ev);
}

KSYNC_API int ksync_event_wait_until(struct ksync_event *ev, clockid_t clock,
				     const struct timespec *deadline)
{
	int r = ksync_check_deadline(clock, deadline);

	if (r)
		return r;
	if (ksync_event_is_set(ev))
		return 0;
	trace_wait_begin(ev, KSYNC_KIND_EVENT, KSYNC_WORLD_THREAD, ksync_self_tid());
	for (;;) {
		if (announce_waiter(ev)) {
			r = 0;
			break;
		}
		r = wait_word(&ev->word, fflags(ev), KSYNC_EVENT_WAITERS, clock, deadline);
		/* Woken, or the word changed, or a signal: look again. Any
		 * other answer (-ETIMEDOUT, a refused syscall) ends the wait:
		 * retrying it would spin. */
		if (r != 0 && r != -EAGAIN && r != -EINTR) {
			if (ksync_event_is_set(ev))
				r = 0;
			break;
		}
	}
	trace_wait_end(ev, KSYNC_KIND_EVENT, KSYNC_WORLD_THREAD, ksync_self_tid(), r);
	return r;
}

KSYNC_API int ksync_event_wait(struct ksync_event *ev)
{
	return ksync_event_wait_until(ev, CLOCK_MONOTONIC, NULL);
}

KSYNC_API int ksync_event_wait_any(struct ksync_event *const *events, unsigned n,
				   clockid_t clock, const struct timespec *deadline)
{
	struct ksync_futex_waitv w[KSYNC_FUTEX_WAITV_MAX];
	int r = ksync_check_deadline(clock, deadline);

	if (r)
		return r;
	if (!events || n == 0 || n > KSYNC_FUTEX_WAITV_MAX)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		if (!events[i])
			return -EINVAL;
		w[i] = (struct ksync_futex_waitv){
			.val = KSYNC_EVENT_WAITERS,
			.uaddr = (uintptr_t)&events[i]->word,
			.flags = fflags(events[i]),
		};
	}
	/* One event needs no futex_waitv: this works on every kernel. */
	if (n == 1)
		return ksync_event_wait_until(events[0], clock, deadline);
	for (;;) {
		/* Events are sticky, so any index the kernel reports (or a wake
		 * it counted but did not report) is re-derived from the words. */
		for (unsigned i = 0; i < n; i++)
			if (announce_waiter(events[i]))
				return (int)i;
		r = ksync_futex_waitv(w, n, clock, deadline);
		/* As in wait_until: only a wake, a changed word or a signal is
		 * retried; -ENOSYS (no futex_waitv) ends the call at once. */
		if (r < 0 && r != -EAGAIN && r != -EINTR) {
			for (unsigned i = 0; i < n; i++)
				if (ksync_event_is_set(events[i]))
					return (int)i;
			return r;
		}
	}
}

static int event_attempt(struct ksync_op *op, bool woken, struct ksync_park *park)
{
	(void)woken;	/* a wake is a broadcast: nothing to hand on */
	if (announce_waiter(op_prim(op)))
		return 1;
	park->value = KSYNC_EVENT_WAITERS;
	return 0;
}

static const struct ksync_waitable event_waitable = {
	.kind = KSYNC_KIND_EVENT,
	.attempt = event_attempt,
};

KSYNC_API void ksync_op_event(struct ksync_op *op, struct ksync_event *event)
{
	ksync_op_prepare(op, &event_waitable, event, 0, fflags(event));
}
