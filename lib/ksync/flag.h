/* SPDX-License-Identifier: MIT */
/*
 * ksync Flag: a set-once value holder. The first setter wins; every later
 * set fails and learns the winner's value; everyone who reads it sees the
 * same value, and what the winner wrote before setting it.
 *
 * Nobody waits for a Flag: it never blocks, never makes a syscall, and is
 * the same in every world (threads, io_uring tasks, poll loops, other
 * processes with KSYNC_SHARED). A Flag that one could wait for would be an
 * Event carrying a value; with ksync, set the Flag, then set an Event
 * (<ksync/event.h>) that the waiters wait on: the Event's acquire makes the
 * Flag's value visible to them.
 *
 * Values are 64-bit and non-zero: 0 means "not set". Storing the value and
 * deciding who won is then one CAS, so there is no moment at which a set
 * has been decided but its value is not yet readable (a loser that reads
 * the Flag right after losing always finds the winner's value). Store a
 * pointer, or an index + 1.
 *
 * ksync_flag_clear empties the Flag for reuse (then the next set wins
 * again); a Flag that is never cleared keeps its first value for good.
 *
 * Where references differ: aiologic's Flag holds any object; this one a
 * non-zero 64-bit value, so that deciding the winner and publishing its
 * value are one CAS. Like aiologic's, it never waits and can be cleared.
 *
 * 16 bytes; may be zero-initialised or use KSYNC_FLAG_INIT; no destructor.
 */
#ifndef KSYNC_FLAG_H
#define KSYNC_FLAG_H

#include <stdbool.h>
#include <stdint.h>
#include "ksync/kernel.h"	/* KSYNC_MUST_CHECK */

#ifdef __cplusplus
extern "C" {
#endif

struct ksync_flag {
	uint64_t value;		/* 0: not set */
	uint32_t flags;		/* attributes given at init: KSYNC_SHARED */
	uint32_t reserved;	/* 0 */
};

#define KSYNC_FLAG_INIT { 0, 0, 0 }
/* Process-shared (KSYNC_SHARED): for memory shared between processes. */
#define KSYNC_FLAG_SHARED_INIT { 0, 1u /* KSYNC_SHARED */, 0 }

/*
 * ksync_flag_init - an unset Flag. @flags 0 (process-private) or
 * KSYNC_SHARED (<ksync/attr.h>; a Flag makes no futex call, so it only
 * records it). Returns 0, or -EINVAL for an unknown flag.
 */
int ksync_flag_init(struct ksync_flag *flag, unsigned flags);

/*
 * ksync_flag_set - set the Flag to @value if nobody has.
 * @current: NULL, or where to store the value the Flag holds after the
 * call (@value if this call won, the winner's otherwise).
 * Returns 0 if this call set it, or:
 *   -EEXIST  it was already set (to any value, @value included)
 *   -EINVAL  @value is 0 (nothing is stored in *@current)
 * Release semantics on success; acquire on -EEXIST (the winner's writes
 * before its set are visible).
 */
KSYNC_MUST_CHECK int ksync_flag_set(struct ksync_flag *flag, uint64_t value, uint64_t *current);

/*
 * ksync_flag_get - read the value: 0 and *@value set, or -EAGAIN if the
 * Flag is not set (*@value untouched). Acquire semantics.
 */
KSYNC_MUST_CHECK int ksync_flag_get(const struct ksync_flag *flag, uint64_t *value);

/* Is the Flag set? (acquire) */
bool ksync_flag_is_set(const struct ksync_flag *flag);

/* Empty the Flag; returns the value it held (0 if it was not set). */
uint64_t ksync_flag_clear(struct ksync_flag *flag);

#ifdef __cplusplus
}
#endif
#endif
