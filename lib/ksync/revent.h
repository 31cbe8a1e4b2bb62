/* SPDX-License-Identifier: MIT */
/*
 * ksync REvent: a resettable event that threads and io_uring tasks wait for.
 *
 * ksync_revent_set() releases every waiter that was waiting when it was
 * called, even if ksync_revent_clear() follows at once, before the waiters
 * have run: a waiter looks at the event's generation, which every set
 * advances, not at whether it is set now. A wait that starts while the
 * event is set returns at once; one that starts after a clear waits for the
 * next set. A set wakes every waiter in every world with at most one
 * futex_wake syscall, whatever their number, and with none when nobody
 * waits. Waiters are not ordered: a set releases all of them.
 *
 * Semantics follow aiologic's REvent (a waiter is released by any set that
 * comes after it started waiting, as with threading.Event, whose wait
 * returns True if the flag was set at any point while it waited), not
 * those of an auto-reset event (which releases one waiter per set).
 *
 * Wrap-around: the generation has 30 bits. A waiter that stays between
 * reading the word and checking it again (a thread descheduled there, an
 * io_uring wait submitted late) while exactly a multiple of 2^30 sets
 * happen does not notice them; it then waits for the next set. It is never
 * released without a set.
 *
 * Async ops that are cancelled or time out report -ECANCELED/-ETIMEDOUT
 * even if a set raced the cancel (a set's wake is everyone's: nothing is
 * handed on). A blocking wait whose deadline races a set returns 0 if the
 * set came first.
 *
 * Word layout: KSYNC_REVENT_* in <ksync/word.h>. 8 bytes, no destructor;
 * zero-initialise it, use KSYNC_REVENT_INIT, or ksync_revent_init.
 */
#ifndef KSYNC_REVENT_H
#define KSYNC_REVENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>	/* clockid_t (<time.h> has it only for POSIX) */
#include <time.h>		/* struct timespec */
#include "ksync/kernel.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ksync_op;

struct ksync_revent {
	uint32_t word;		/* SET | WAITERS | generation */
	uint32_t flags;		/* attributes given at init: KSYNC_SHARED */
};

#define KSYNC_REVENT_INIT { 0, 0 }
/* Process-shared (KSYNC_SHARED): for memory shared between processes. */
#define KSYNC_REVENT_SHARED_INIT { 0, 1u /* KSYNC_SHARED */ }

/*
 * ksync_revent_init - the event starts clear. @flags 0 (process-private)
 * or KSYNC_SHARED (<ksync/attr.h>). Returns 0, or -EINVAL for an unknown
 * flag.
 */
int ksync_revent_init(struct ksync_revent *ev, unsigned flags);

/*
 * ksync_revent_set - set the event and release every waiter.
 * Returns 1 if this call set it, 0 if it was set already (then nobody was
 * waiting). It cannot fail. Release semantics: what the caller wrote before
 * is visible to every waiter it releases.
 */
int ksync_revent_set(struct ksync_revent *ev);

/*
 * ksync_revent_clear - clear the event: waits that start from now on wait
 * for the next set. Waiters a set has released stay released.
 * Returns 1 if this call cleared it, 0 if it was clear already.
 */
int ksync_revent_clear(struct ksync_revent *ev);

/* Is the event set now? Acquire semantics. */
bool ksync_revent_is_set(const struct ksync_revent *ev);

/* Try form: 0 if set, -EAGAIN if not. */
KSYNC_MUST_CHECK int ksync_revent_try(const struct ksync_revent *ev);

/*
 * ksync_revent_wait / ksync_revent_wait_until - block the thread until the
 * event is set, or has been set since the call began.
 * @clock: CLOCK_MONOTONIC or CLOCK_REALTIME; @deadline absolute, NULL =
 * none. Returns 0, or:
 *   -ETIMEDOUT  the deadline passed first (also if it already had and the
 *               event is clear)
 *   -EINVAL     bad clock or malformed deadline
 *   -ENOSYS, -EPERM  only when it must wait: the kernel refused every
 *               futex wait
 *   or any other error the kernel gave the wait (never retried: no spin).
 */
KSYNC_MUST_CHECK int ksync_revent_wait(struct ksync_revent *ev);
KSYNC_MUST_CHECK int ksync_revent_wait_until(struct ksync_revent *ev, clockid_t clock,
					     const struct timespec *deadline);

/*
 * ksync_op_revent - initialise @op to wait for @ev (see <ksync/op.h>).
 * op->result: 0 once set (or set since the op started), -ETIMEDOUT,
 * -ECANCELED, or the errors of ksync_op_start.
 */
void ksync_op_revent(struct ksync_op *op, struct ksync_revent *ev);

#ifdef __cplusplus
}
#endif
#endif
