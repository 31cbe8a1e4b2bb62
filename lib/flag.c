/* SPDX-License-Identifier: MIT */
/*
 * Flag: one 64-bit word, 0 = not set. Setting is one CAS from 0, so the
 * decision and the value are published together; nobody ever waits.
 */
#include "internal.h"
#include "ksync/flag.h"

_Static_assert(__atomic_always_lock_free(sizeof(uint64_t), 0),
	       "a Flag needs lock-free 64-bit atomics");

KSYNC_API int ksync_flag_init(struct ksync_flag *f, unsigned flags)
{
	if (flags & ~KSYNC_SHARED)
		return -EINVAL;
	store_relaxed(&f->value, 0);
	f->flags = flags;
	f->reserved = 0;
	return 0;
}

KSYNC_API int ksync_flag_set(struct ksync_flag *f, uint64_t value, uint64_t *current)
{
	uint64_t old = 0;

	if (!value)
		return -EINVAL;
	if (__atomic_compare_exchange_n(&f->value, &old, value, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		if (current)
			*current = value;
		return 0;
	}
	if (current)
		*current = old;
	return -EEXIST;
}

KSYNC_API int ksync_flag_get(const struct ksync_flag *f, uint64_t *value)
{
	uint64_t v = load_acquire(&f->value);

	if (!v)
		return -EAGAIN;
	*value = v;
	return 0;
}

KSYNC_API bool ksync_flag_is_set(const struct ksync_flag *f)
{
	return load_acquire(&f->value) != 0;
}

KSYNC_API uint64_t ksync_flag_clear(struct ksync_flag *f)
{
	return __atomic_exchange_n(&f->value, 0, __ATOMIC_ACQ_REL);
}
