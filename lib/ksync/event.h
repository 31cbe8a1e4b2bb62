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
#include "ksync/kernel.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ksync_event {
	uint32_t word;
	uint32_t flags;		/* attributes given at init: KSYNC_SHARED */
};

#define KSYNC_EVENT_INIT { 0, 0 }
/* Process-shared (KSYNC_SHARED): for memory shared between processes. */
#define KSYNC_EVENT_SHARED_INIT { 0, 1u /* KSYNC_SHARED */ }

/*
 * ksync_event_init - @flags 0 (process-private) or KSYNC_SHARED
 * (<ksync/attr.h>). Returns 0, or -EINVAL for an unknown flag.
 */
int ksync_event_init(struct ksync_event *ev, unsigned flags);

/*
 * ksync_event_set - set the event and release every waiter.
 * Returns 1 if this call set it, 0 if it was already set. It cannot fail:
 * where the kernel refuses the wake syscall it also refused every wait, so
 * nobody is parked.
 */
int ksync_event_set(struct ksync_event *ev);

/* Has the event been set? Acquire semantics: what the setter wrote before
 * set() is visible once this returns true. */
bool ksync_event_is_set(const struct ksync_event *ev);

/* Try form: 0 if set, -EAGAIN if not. */
KSYNC_MUST_CHECK int ksync_event_try(const struct ksync_event *ev);

/*
 * ksync_event_wait / ksync_event_wait_until - block the thread until set.
 * @clock: CLOCK_MONOTONIC or CLOCK_REALTIME; @deadline absolute, NULL = none
 * (any tv_sec >= 0 is valid, INT64_MAX included).
 * Returns 0 once set, or:
 *   -ETIMEDOUT  the deadline passed first (also if it already had)
 *   -EINVAL     bad clock or malformed deadline
 *   -ENOSYS, -EPERM  only when it must wait: the kernel refused every futex
 *               wait (futex2 and the classic futex(2) alike)
 *   or any other error the kernel gave the wait (never retried: no spin).
 */
KSYNC_MUST_CHECK int ksync_event_wait(struct ksync_event *ev);
KSYNC_MUST_CHECK int ksync_event_wait_until(struct ksync_event *ev, clockid_t clock,
					    const struct timespec *deadline);

/*
 * ksync_event_wait_any - block until any of @n events is set.
 * @n: 1 .. 128.
 * Returns the index of a set event (the lowest, if several are), or
 * -ETIMEDOUT, -EINVAL (n out of range, bad clock/deadline, NULL event).
 *
 * More than one event is watched with futex_waitv (Linux 5.16), which has
 * no futex(2) equivalent. Where it is missing or refused, a call that must
 * wait on n > 1 events returns -ENOSYS (or -EPERM) at once: it never polls
 * or spins. n == 1 works on every kernel, like ksync_event_wait_until.
 * ksync_require(KSYNC_FEAT_FUTEX_WAITV) tells in advance.
 */
KSYNC_MUST_CHECK int ksync_event_wait_any(struct ksync_event *const *events, unsigned n,
					  clockid_t clock, const struct timespec *deadline);

#ifdef __cplusplus
}
#endif
#endif
