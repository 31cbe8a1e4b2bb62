/* SPDX-License-Identifier: MIT */
/*
 * ksync bounded queue: a multi-producer multi-consumer queue of fixed-size
 * items, shared by threads and io_uring tasks.
 *
 * Memory. The queue is this struct plus a buffer the caller provides
 * (ksync_bqueue_buf_size() bytes, 8-byte aligned); items are copied in and
 * out with memcpy. Nothing is allocated, per item or per wait. The buffer
 * is found through its offset from the struct, so a queue initialised with
 * KSYNC_SHARED works from every process that maps the memory, at any
 * address, as long as the struct and the buffer are in the same mapping.
 *
 * Orders (fixed at init):
 *   KSYNC_BQUEUE_FIFO      first in, first out
 *   KSYNC_BQUEUE_LIFO      last in, first out
 *   KSYNC_BQUEUE_PRIORITY  each item starts with a uint64_t key (native
 *                          byte order, item_size >= 8); the smallest key is
 *                          got first, equal keys in put order
 * Items put by one producer are got in its put order (FIFO), or as the
 * order says (LIFO, PRIORITY). put_many and get_many move their items under
 * one lock hold: a batch is contiguous in the queue's order.
 *
 * Cost. A put or get that does not wait takes the queue's internal lock
 * (one atomic RMW to take, one to release), copies the item and makes a
 * futex_wake syscall only when a waiter of the other side may be asleep
 * without an item (or slot) to go to. The internal lock is held only while
 * items are copied; a thread that finds it held spins briefly, then sleeps
 * on it; an async op never blocks its thread: it waits for it with its own
 * FUTEX_WAIT.
 *
 * Fairness. Waiters sleep in the kernel's FIFO order on their side's futex
 * word; a woken waiter competes with new arrivals, which may take the item
 * first (barging); it then waits again. Unfairness is bounded: a woken
 * waiter that has waited KSYNC_BQUEUE_STARVE_NS or more and still loses
 * switches its side to hand-off mode, in which each unit produced (an item
 * for getters, a slot for putters) is reserved for a waiter the producer
 * wakes, so new arrivals cannot take it, until a woken waiter is served
 * within the bound again.
 *
 * Nothing is lost. A put copies its item in before it returns 0; a get
 * copies the item out before it returns a count. A waiter that times out
 * or is cancelled after a unit was reserved for it (or after it consumed
 * the wake meant to make it take one) gives the reservation back and wakes
 * another waiter in its place; the item itself never leaves the queue for
 * a waiter that does not return it. A failed call has moved nothing.
 *
 * Close. ksync_bqueue_close() makes every later put fail with -ESHUTDOWN;
 * gets go on returning the items left and then fail with -ESHUTDOWN; every
 * waiter, in every world, is woken and gets that.
 *
 * Async ops (ksync_op_bqueue_*) follow <ksync/op.h>: the item (or the
 * space for it) must stay valid until the op is done; a get op writes
 * @out only when it succeeds. For the single-item ops op->result is 0 on
 * success; for the _many ops it is the number of items moved (>= 1).
 *
 * Loop threads: do not block a loop's thread in a blocking get or put on a
 * queue that tasks of that loop wait on (as for <ksync/sem.h>).
 *
 * Word layout: <ksync/word.h> (KSYNC_BQUEUE_*). Model: tests/model/bqueue.pml.
 */
#ifndef KSYNC_BQUEUE_H
#define KSYNC_BQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>	/* clockid_t (<time.h> has it only for POSIX) */
#include <time.h>		/* struct timespec */
#include "ksync/kernel.h"	/* KSYNC_MUST_CHECK */

#ifdef __cplusplus
extern "C" {
#endif

struct ksync_op;

#define KSYNC_BQUEUE_FIFO	0u
#define KSYNC_BQUEUE_LIFO	1u
#define KSYNC_BQUEUE_PRIORITY	2u

/* Most items a queue can hold. */
#define KSYNC_BQUEUE_CAPACITY_MAX	0x7fffffffu

/* A woken waiter that has waited this long starts hand-off mode. */
#define KSYNC_BQUEUE_STARVE_NS	200000

/* Every field is private; read the queue with the functions below. */
struct ksync_bqueue {
	uint32_t get_word;	/* getters sleep here (KSYNC_BQUEUE_* in word.h) */
	uint32_t put_word;	/* putters sleep here */
	uint32_t lock;		/* the internal lock */
	uint32_t flags;		/* order, attributes, CLOSED, STARVING_* */
	uint32_t len;		/* items in the queue */
	uint32_t capacity;
	uint32_t head;		/* FIFO/LIFO: where the oldest item is */
	uint32_t getters;	/* getters waiting (registered) */
	uint32_t putters;	/* putters waiting */
	uint32_t get_res;	/* items reserved for woken getters */
	uint32_t put_res;	/* slots reserved for woken putters */
	uint32_t reserved0;
	uint64_t item_size;
	uint64_t seq;		/* PRIORITY: items put so far (ties in put order) */
	int64_t buf_off;	/* the buffer's address minus the queue's */
};

/*
 * ksync_bqueue_buf_size - bytes of buffer a queue of @capacity items of
 * @item_size bytes in @order needs: capacity * item_size for FIFO and
 * LIFO, plus 28 bytes per item of bookkeeping for PRIORITY. Returns 0 if
 * the arguments are invalid (see ksync_bqueue_init) or the size does not
 * fit a size_t.
 */
size_t ksync_bqueue_buf_size(unsigned order, size_t item_size, uint32_t capacity);

/*
 * ksync_bqueue_init - an empty queue of @capacity items of @item_size
 * bytes, in @order, whose items live in @buf (@buf_size bytes, at least
 * ksync_bqueue_buf_size(), 8-byte aligned). @flags: 0 (process-private)
 * or KSYNC_SHARED (<ksync/attr.h>; then @buf must be in the same shared
 * mapping as @q).
 * Returns 0, or -EINVAL: unknown order or flag, item_size 0 (or < 8 for
 * PRIORITY), capacity 0 or above KSYNC_BQUEUE_CAPACITY_MAX, buf NULL or
 * misaligned, buf_size too small. The queue is untouched on error.
 */
int ksync_bqueue_init(struct ksync_bqueue *q, unsigned order, size_t item_size,
		      uint32_t capacity, void *buf, size_t buf_size, unsigned flags);

/* Returns 0, or -EBUSY if waiters are registered (the queue is unchanged).
 * The items left in the queue are the caller's business. */
int ksync_bqueue_destroy(struct ksync_bqueue *q);

/*
 * ksync_bqueue_put / _put_until - copy @item (item_size bytes) in, waiting
 * for a free slot. @clock: CLOCK_MONOTONIC or CLOCK_REALTIME; @deadline
 * absolute, NULL = none.
 * Returns 0 (the item is in the queue), or, with nothing put:
 *   -ESHUTDOWN  the queue is closed (also when it closes while waiting)
 *   -ETIMEDOUT  the deadline passed first (tried once even if it already had)
 *   -EINVAL     bad clock or malformed deadline
 *   other       the kernel refused the futex wait (-ENOSYS, -EPERM...)
 */
KSYNC_MUST_CHECK int ksync_bqueue_put(struct ksync_bqueue *q, const void *item);
KSYNC_MUST_CHECK int ksync_bqueue_put_until(struct ksync_bqueue *q, const void *item,
					    clockid_t clock, const struct timespec *deadline);
/* Try form: 0, -EAGAIN (full, or every free slot is reserved for a woken
 * putter), -ESHUTDOWN. */
KSYNC_MUST_CHECK int ksync_bqueue_try_put(struct ksync_bqueue *q, const void *item);

/*
 * ksync_bqueue_get / _get_until - copy the next item out to @out, waiting
 * for one. Returns 0 (the item is in @out), or, with nothing taken:
 *   -ESHUTDOWN  the queue is closed and empty
 *   -ETIMEDOUT, -EINVAL, other: as for put
 */
KSYNC_MUST_CHECK int ksync_bqueue_get(struct ksync_bqueue *q, void *out);
KSYNC_MUST_CHECK int ksync_bqueue_get_until(struct ksync_bqueue *q, void *out,
					    clockid_t clock, const struct timespec *deadline);
/* Try form: 0, -EAGAIN (empty, or every item is reserved for a woken
 * getter), -ESHUTDOWN (closed and empty). */
KSYNC_MUST_CHECK int ksync_bqueue_try_get(struct ksync_bqueue *q, void *out);

/*
 * ksync_bqueue_put_many - put up to @n items from @items (an array of n
 * items), waiting until at least one slot is free; as many as fit are put
 * under one lock hold, in array order. Returns the number put (1..n), or
 * an error as for put (nothing put), or -EINVAL for n == 0. Call it again
 * for the rest.
 * ksync_bqueue_get_many - get up to @max items into @out, waiting until at
 * least one is there; as many as there are (up to max) are taken under one
 * lock hold, in the queue's order. Returns the number got (1..max), or an
 * error as for get, or -EINVAL for max == 0.
 * The try forms return -EAGAIN instead of waiting.
 */
KSYNC_MUST_CHECK int ksync_bqueue_put_many(struct ksync_bqueue *q, const void *items,
					   uint32_t n, clockid_t clock,
					   const struct timespec *deadline);
KSYNC_MUST_CHECK int ksync_bqueue_get_many(struct ksync_bqueue *q, void *out, uint32_t max,
					   clockid_t clock, const struct timespec *deadline);
KSYNC_MUST_CHECK int ksync_bqueue_try_put_many(struct ksync_bqueue *q, const void *items,
					       uint32_t n);
KSYNC_MUST_CHECK int ksync_bqueue_try_get_many(struct ksync_bqueue *q, void *out, uint32_t max);

/*
 * ksync_bqueue_close - refuse every later put; wake every waiter.
 * Returns 0, or -EALREADY if it was closed already.
 */
int ksync_bqueue_close(struct ksync_bqueue *q);

/* Snapshots. */
bool ksync_bqueue_is_closed(const struct ksync_bqueue *q);
uint32_t ksync_bqueue_len(const struct ksync_bqueue *q);	/* items in it now */
uint32_t ksync_bqueue_capacity(const struct ksync_bqueue *q);

/*
 * Async ops (<ksync/op.h>). @item / @items / @out must stay valid until
 * the op is done. ksync_op_start/complete fail as documented there; the
 * op's result is 0 (or the count, for _many), -ESHUTDOWN, -ETIMEDOUT,
 * -ECANCELED, or a kernel error. The _many initialisers return 0, or
 * -EINVAL for a count of 0 (the op is then not initialised).
 */
void ksync_op_bqueue_put(struct ksync_op *op, struct ksync_bqueue *q, const void *item);
void ksync_op_bqueue_get(struct ksync_op *op, struct ksync_bqueue *q, void *out);
KSYNC_MUST_CHECK int ksync_op_bqueue_put_many(struct ksync_op *op, struct ksync_bqueue *q,
					      const void *items, uint32_t n);
KSYNC_MUST_CHECK int ksync_op_bqueue_get_many(struct ksync_op *op, struct ksync_bqueue *q,
					      void *out, uint32_t max);

#ifdef __cplusplus
}
#endif
#endif
