/* SPDX-License-Identifier: MIT */
/*
 * ResourceGuard: one 64-bit word holding the current user's key, 0 when
 * free. Entering is one CAS from 0, so two users can never both succeed,
 * and a failed enter tells "you" from "someone else" by the key it read in
 * the same CAS. Only a thread ever writes its own key into the word, so a
 * thread's exit may check and clear it with a load and a store; a token's
 * exit uses a CAS, since two threads may race to exit as one token.
 */
#include "internal.h"
#include "ksync/guard.h"

_Static_assert(__atomic_always_lock_free(sizeof(uint64_t), 0),
	       "a ResourceGuard needs lock-free 64-bit atomics");

static inline uint64_t thread_key(void)
{
	return KSYNC_KEY_THREAD | ksync_self_tid();
}

static inline bool valid_token(uint64_t token)
{
	return token && token < KSYNC_KEY_THREAD;
}

KSYNC_API int ksync_guard_init(struct ksync_guard *g, unsigned flags)
{
	if (flags & ~KSYNC_SHARED)
		return -EINVAL;
	store_relaxed(&g->user, 0);
	g->flags = flags;
	g->reserved = 0;
	return 0;
}

KSYNC_API int ksync_guard_destroy(struct ksync_guard *g)
{
	return load_acquire(&g->user) ? -EBUSY : 0;
}

static int enter_as(struct ksync_guard *g, uint64_t key)
{
	uint64_t cur = 0;

	if (likely(__atomic_compare_exchange_n(&g->user, &cur, key, false, __ATOMIC_ACQUIRE,
					       __ATOMIC_RELAXED)))
		return 0;
	return cur == key ? -EDEADLK : -EBUSY;
}

KSYNC_API int ksync_guard_enter(struct ksync_guard *g)
{
	return enter_as(g, thread_key());
}

KSYNC_API int ksync_guard_exit(struct ksync_guard *g)
{
	if (load_relaxed(&g->user) != thread_key())
		return -EPERM;
	store_release(&g->user, 0);
	return 0;
}

KSYNC_API int ksync_guard_enter_task(struct ksync_guard *g, uint64_t token)
{
	if (!valid_token(token))
		return -EINVAL;
	return enter_as(g, token);
}

KSYNC_API int ksync_guard_exit_task(struct ksync_guard *g, uint64_t token)
{
	if (!valid_token(token))
		return -EINVAL;
	if (!__atomic_compare_exchange_n(&g->user, &token, 0, false, __ATOMIC_RELEASE,
					 __ATOMIC_RELAXED))
		return -EPERM;
	return 0;
}

KSYNC_API bool ksync_guard_busy(const struct ksync_guard *g)
{
	return load_relaxed(&g->user) != 0;
}

KSYNC_API uint64_t ksync_guard_user(const struct ksync_guard *g)
{
	return load_relaxed(&g->user);
}
