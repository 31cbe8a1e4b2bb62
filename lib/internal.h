/* SPDX-License-Identifier: MIT */
/* Helpers shared by the primitive files. Not installed. */
#ifndef KSYNC_INTERNAL_H
#define KSYNC_INTERNAL_H

#include "config.h"
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include "ksync/attr.h"
#include "ksync/word.h"
#include "ksync/probe.h"
#include "ksync/kernel.h"
#include "ksync/op.h"
#include "testpoint.h"

#define KSYNC_API __attribute__((visibility("default")))

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

/* Word access. Plain uint32_t in the public structs, __atomic here. */
#define load_relaxed(p)		__atomic_load_n((p), __ATOMIC_RELAXED)
#define load_acquire(p)		__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define store_relaxed(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define store_release(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define cas_acquire(p, old, new) \
	__atomic_compare_exchange_n((p), (old), (new), false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)
#define cas_release(p, old, new) \
	__atomic_compare_exchange_n((p), (old), (new), false, __ATOMIC_RELEASE, __ATOMIC_RELAXED)
#define cas_acq_rel(p, old, new) \
	__atomic_compare_exchange_n((p), (old), (new), false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/*
 * The calling thread's id, cached per thread in memory that a forked child
 * sees zeroed, however it was made (fork, _Fork, raw clone): see kernel.c.
 * One load more than a plain TLS cache.
 */
extern __thread uint32_t *ksync_tid_slot __attribute__((tls_model("initial-exec")));
uint32_t ksync_fetch_tid(void);
static inline uint32_t ksync_self_tid(void)
{
	uint32_t tid = load_relaxed(ksync_tid_slot);

	return likely(tid) ? tid : ksync_fetch_tid();
}

/* CLOCK_MONOTONIC now, in ns. */
int64_t ksync_mono_ns(void);

/* Validate an absolute deadline: 0 or -EINVAL. */
int ksync_check_deadline(clockid_t clock, const struct timespec *deadline);

/* Has the deadline passed? */
bool ksync_deadline_passed(clockid_t clock, const struct timespec *deadline);

/* Features, cached; see ksync_require(). */
int ksync_require_uring_futex(void);

/*
 * USDT probes (uapi/ksync/probe.h). The semaphores are defined in kernel.c;
 * an attached tracer makes them non-zero, which is the only time the
 * probe's arguments are computed.
 */
#if KSYNC_HAVE_SDT
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
extern unsigned short ksync_wait_begin_semaphore;
extern unsigned short ksync_wait_end_semaphore;
extern unsigned short ksync_wake_begin_semaphore;
extern unsigned short ksync_wake_semaphore;
extern unsigned short ksync_op_start_semaphore;
extern unsigned short ksync_name_semaphore;
#define KSYNC_PROBE_ENABLED(name) unlikely(ksync_##name##_semaphore)
#define trace_wait_begin(prim, kind, world, who) do {				\
	if (KSYNC_PROBE_ENABLED(wait_begin))					\
		STAP_PROBE4(ksync, wait_begin, (prim), (kind), (world), (uint64_t)(who)); \
} while (0)
#define trace_wait_end(prim, kind, world, who, outcome) do {			\
	if (KSYNC_PROBE_ENABLED(wait_end))					\
		STAP_PROBE5(ksync, wait_end, (prim), (kind), (world), (uint64_t)(who), (int)(outcome)); \
} while (0)
#define trace_wake_begin(prim, kind) do {					\
	if (KSYNC_PROBE_ENABLED(wake_begin))					\
		STAP_PROBE2(ksync, wake_begin, (prim), (kind));			\
} while (0)
#define trace_wake(prim, kind, woken) do {					\
	if (KSYNC_PROBE_ENABLED(wake))						\
		STAP_PROBE3(ksync, wake, (prim), (kind), (int)(woken));		\
} while (0)
#define trace_op_start(op, prim, kind, who) do {				\
	if (KSYNC_PROBE_ENABLED(op_start))					\
		STAP_PROBE4(ksync, op_start, (op), (prim), (int)(kind), (uint64_t)(who)); \
} while (0)
#define trace_name(prim, name) do {						\
	if (KSYNC_PROBE_ENABLED(name))						\
		STAP_PROBE2(ksync, name, (prim), (name));			\
} while (0)
#else
#define trace_wait_begin(prim, kind, world, who) do { } while (0)
#define trace_wait_end(prim, kind, world, who, outcome) do { } while (0)
#define trace_wake_begin(prim, kind) do { } while (0)
#define trace_wake(prim, kind, woken) do { } while (0)
#define trace_op_start(op, prim, kind, who) do { } while (0)
#define trace_name(prim, name) do { } while (0)
#endif

/*
 * The futex flags of a primitive initialised with attribute flags @attr:
 * process-private unless KSYNC_SHARED. Every wait and wake of a primitive,
 * in every world, takes its flags from here.
 */
static inline uint32_t futex_flags_for(unsigned attr)
{
	return KSYNC_FUTEX2_SIZE_U32 | (attr & KSYNC_SHARED ? 0 : KSYNC_FUTEX2_PRIVATE);
}

/* The futex syscalls with explicit futex2 flags (kernel.c). */
int ksync_futex_wait_flags(uint32_t *word, uint32_t expected, uint32_t mask, uint32_t flags,
			   clockid_t clock, const struct timespec *deadline);
int ksync_futex_wake_flags(uint32_t *word, uint32_t mask, int nr, uint32_t flags);

/*
 * The futex word of a primitive whose state is one 64-bit word changed as
 * a whole (CountdownEvent, Latch, Barrier): its low 32 bits, wherever the
 * byte order puts them. Only the kernel reads it as 32 bits.
 */
static inline uint32_t *state_futex_word(uint64_t *state)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return (uint32_t *)(void *)state + 1;
#else
	return (uint32_t *)(void *)state;
#endif
}

/* Sleep on a primitive's word (@fflags from futex_flags_for). */
static inline int wait_word(uint32_t *word, uint32_t fflags, uint32_t expected, clockid_t clock,
			    const struct timespec *deadline)
{
	return ksync_futex_wait_flags(word, expected, KSYNC_FUTEX_MASK_ANY, fflags, clock, deadline);
}

/*
 * futex_wake with its probes: wake_begin before (the waker's stack, ahead
 * of every woken waiter's wait_end), wake after (how many it woke). Out of
 * line (kernel.c), so that each probe has one site: a tracer pays per site
 * to attach and detach.
 */
int ksync_wake_traced(uint32_t *word, uint32_t fflags, uint32_t mask, void *prim, int kind,
		      int nr);
static inline int wake_traced(uint32_t *word, uint32_t fflags, void *prim, int kind, int nr)
{
	return ksync_wake_traced(word, fflags, KSYNC_FUTEX_MASK_ANY, prim, kind, nr);
}

#endif
