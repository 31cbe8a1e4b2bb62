/* SPDX-License-Identifier: MIT */
/*
 * Race-detector annotations: what a primitive tells helgrind, DRD and
 * ThreadSanitizer so that data it guards or hands over is not reported as
 * racy. Not installed.
 *
 * How to annotate a primitive (one line at each point, nothing else):
 *
 *   annotate_release(prim)       the releasing side, BEFORE the atomic that
 *                                publishes: lock release, sem release,
 *                                event set, queue put, barrier arrival,
 *                                count down. Everything the thread did
 *                                before it happens before whoever acquires
 *                                @prim afterwards.
 *   annotate_acquire(prim)       the acquiring side, AFTER the grant is
 *                                certain (the CAS that took it succeeded,
 *                                the set word was seen): lock acquired,
 *                                permit taken, event seen set, item taken,
 *                                barrier passed, in every world (thread,
 *                                task op attempt, try).
 *   annotate_acquired(prim)      the same as an expression that is always
 *                                true, for a fast path written as one
 *                                condition: if (likely(cas(...)) &&
 *                                annotate_acquired(p)) return 0;
 *   annotate_if(cond, prim)      @cond, having annotated an acquire when it
 *                                is true: return annotate_if(v == SET, ev);
 *
 * @prim is a typed pointer to the primitive (its size is taken from the
 * type); both sides of an edge must name the same one (a queue may use the queue, or the slot for per-item edges). Mark the
 * points where a grant is decided, not every path that leads to one: a
 * waiter woken with nothing must not be annotated. A failed or refused
 * operation annotates nothing. Two sides of one primitive need no other
 * annotation: its futex word and internals are never reported (the
 * annotations make the tools ignore the primitive's own memory).
 *
 * What the tools get: helgrind and DRD a happens-before edge from each
 * release to every later acquire of the same primitive (their
 * ANNOTATE_HAPPENS_BEFORE/AFTER client requests); TSan __tsan_release and
 * __tsan_acquire on the same address. These are edges, not a lock model:
 * the tools check data races, not lock order.
 *
 * Cost: with no tool present each point is one compare of a byte and a
 * branch not taken (ksync_annotating, set once at load when the process
 * runs under helgrind or DRD, or has a TSan runtime; other valgrind tools
 * such as callgrind leave it 0); the requests themselves sit out of line in
 * annotate.c. -Dvalgrind=disabled leaves the valgrind requests out; the
 * check stays, for TSan.
 */
#ifndef KSYNC_ANNOTATE_H
#define KSYNC_ANNOTATE_H

#include "config.h"
#include <stdbool.h>

#if defined(__SANITIZE_THREAD__)
#define KSYNC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KSYNC_TSAN 1
#endif
#endif

/*
 * Always compiled in: a program built with -fsanitize=thread may link an
 * ordinary libksync (annotate.c finds the TSan runtime through weak
 * symbols), and valgrind's part is there when its headers were found at
 * build time (KSYNC_HAVE_VALGRIND, -Dvalgrind).
 */
/* Non-zero when some tool listens: set once, before main. */
extern unsigned char ksync_annotating __attribute__((visibility("hidden")));
/*
 * cold: the compiler keeps the fast path's registers for itself and moves the
 * call out of its way. The explicit section keeps these two functions next
 * to the rest of the library in a static link (not with all cold code), so
 * tools that find the library's code by its address range still do.
 */
#define KSYNC_ANNOTATE_FN __attribute__((visibility("hidden"), cold, section(".text.ksync_annotate")))
KSYNC_ANNOTATE_FN void ksync_annotate_release(const void *prim, unsigned long size);
KSYNC_ANNOTATE_FN void ksync_annotate_acquire(const void *prim, unsigned long size);

#define annotate_release(prim) do {						\
	if (__builtin_expect(ksync_annotating, 0))				\
		ksync_annotate_release(prim, sizeof(*(prim)));					\
} while (0)
#define annotate_acquire(prim) do {						\
	if (__builtin_expect(ksync_annotating, 0))				\
		ksync_annotate_acquire(prim, sizeof(*(prim)));					\
} while (0)
#define annotate_acquired(prim)							\
	(__builtin_expect(ksync_annotating, 0) ? (ksync_annotate_acquire(prim, sizeof(*(prim))), true) : true)
#define annotate_if(cond, prim) __extension__ ({				\
	bool annotate_c_ = (cond);						\
	if (annotate_c_)							\
		annotate_acquire(prim);						\
	annotate_c_;								\
})

#endif
