/* SPDX-License-Identifier: MIT */
/*
 * ksync Event: a one-shot flag that threads and io_uring tasks wait for.
 *
 * Once set it stays set. ksync_event_set() wakes every waiter in every world
 * with at most one futex_wake syscall, whatever the number of waiters, and
 * none when nobody waits. Waiters are not ordered: all of them are released.
 *
 * The word layout is KSYNC_EVENT_* in <ksync/word.h>. 4 bytes, no
 * destructor, may be zero-initialised or use KSYNC_EVENT_INIT.
 */
#ifndef KSYNC_EVENT_H
#define KSYNC_EVENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>	/* clockid_t (<time.h> has it only for POSIX) */
#include <time.h>		/* struct timespec */

#ifdef __cplusplus
extern "C" {
#endif

struct ksync_event {
	uint32_t word;
};

#define KSYNC_EVENT_INIT { 0 }

void ksync_event_init(struct ksync_event *ev);

/*
 * ksync_event_set - set the event and release every waiter.
 * Returns 1 if this call set it, 0 if it was already set. It cannot fail:
 * without futex2 no waiter can have parked, so there is nobody to wake.
 */
int ksync_event_set(struct ksync_event *ev);

/* Has the event been set? Acquire semantics: what the setter wrote before
 * set() is visible once this returns true. */
bool ksync_event_is_set(const struct ksync_event *ev);

/* Try form: 0 if set, -EAGAIN if not. */
int ksync_event_try(const struct ksync_event *ev);

/*
 * ksync_event_wait / ksync_event_wait_until - block the thread until set.
 * @clock: CLOCK_MONOTONIC or CLOCK_REALTIME; @deadline absolute, NULL = none.
 * Returns 0 once set, or:
 *   -ETIMEDOUT  the deadline passed first (also if it already had)
 *   -EINVAL     bad clock or malformed deadline
 *   -ENOSYS     the kernel has no futex2 syscalls
 */
int ksync_event_wait(struct ksync_event *ev);
int ksync_event_wait_until(struct ksync_event *ev, clockid_t clock,
			   const struct timespec *deadline);

/*
 * ksync_event_wait_any - block until any of @n events is set (futex_waitv).
 * @n: 1 .. 128.
 * Returns the index of a set event (the lowest, if several are), or
 * -ETIMEDOUT, -EINVAL (n out of range, bad clock/deadline, NULL event),
 * -ENOSYS.
 */
int ksync_event_wait_any(struct ksync_event *const *events, unsigned n,
			 clockid_t clock, const struct timespec *deadline);

#ifdef __cplusplus
}
#endif
#endif
