/* SPDX-License-Identifier: MIT */
/*
 * USDT probes of ksync (provider "ksync"). Stable ABI for tracing tools.
 *
 * Every probe sits on a slow path and is guarded by its is-enabled
 * semaphore, so an unattached probe costs one predictable load on a path
 * that is about to make a syscall anyway.
 *
 *   ksync:wait_begin (void *prim, int kind, int world, u64 who)
 *   ksync:wait_end   (void *prim, int kind, int world, u64 who, int outcome)
 *   ksync:wake       (void *prim, int kind, int woken)
 *
 * who is the thread id for KSYNC_WORLD_THREAD; for KSYNC_WORLD_URING it is
 * the op's task token, or the op's address when it has no token (semaphore
 * and event ops), so concurrent waits of one loop are told apart. outcome is 0 when the wait got what it waited for,
 * otherwise a negative errno (-ETIMEDOUT, -ECANCELED, ...).
 */
#ifndef KSYNC_UAPI_PROBE_H
#define KSYNC_UAPI_PROBE_H

#define KSYNC_PROBE_PROVIDER	"ksync"

enum ksync_kind {
	KSYNC_KIND_EVENT = 1,
	KSYNC_KIND_LOCK = 2,
	KSYNC_KIND_SEM = 3,
};

enum ksync_world {
	KSYNC_WORLD_THREAD = 1,
	KSYNC_WORLD_URING = 2,
};

#endif
