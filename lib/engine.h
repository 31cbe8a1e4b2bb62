/* SPDX-License-Identifier: MIT */
/*
 * The async op engine's view of an op, and what a primitive family gives
 * the engine: its waiter protocol. Not installed.
 *
 * A family describes itself with one struct ksync_waitable and points its
 * ops at it in its ksync_op_NAME() initialiser (ksync_op_prepare). The
 * engine (op.c) and the drivers never name a primitive.
 */
#ifndef KSYNC_ENGINE_H
#define KSYNC_ENGINE_H

#include "internal.h"

/* Where an op that must wait sleeps: a futex word and its expected value. */
struct ksync_park {
	uint32_t *word;		/* preset to the primitive's own word */
	uint32_t value;
	uint32_t mask;		/* futex bitset, preset to KSYNC_FUTEX_MASK_ANY */
};

struct ksync_waitable {
	uint8_t kind;		/* KSYNC_KIND_*, for the probes */
	bool needs_token;	/* ownership: start refuses token 0 */
	/*
	 * One attempt. @woken: the op consumed a futex wake since its last
	 * attempt (its wait CQE had res 0). Returns 1 when the op got what it
	 * waits for (op->result becomes op_state(op)->ok_result: 0 unless the
	 * attempt set it, e.g. to a count), 0 when it must wait (then
	 * park->value is the value to sleep on; park->word, preset to the
	 * primitive's futex word, may be pointed at another word, e.g. a
	 * condition's lock), or a negative errno that ends the op.
	 */
	int (*attempt)(struct ksync_op *op, bool woken, struct ksync_park *park);
	/*
	 * The op ends without what it waited for (cancelled, timed out,
	 * failed), after every CQE it was owed has arrived. @woken: it
	 * consumed a wake that it will not use; hand that on. Optional.
	 */
	void (*abandon)(struct ksync_op *op, bool woken);
	/*
	 * Optional, instead of abandon, for a family whose waiters take part
	 * in the outcome (a barrier arrival): the op would end with @result
	 * (< 0: cancelled, timed out, the wait failed or could not be armed),
	 * after every CQE it was owed has arrived. Decide in one atomic
	 * transition on the primitive whether the op got what it waited for
	 * after all: return 1 (the op ends with result 0), or leave, giving
	 * back what it held, and return the result to report (@result or
	 * another negative errno).
	 */
	int (*settle)(struct ksync_op *op, bool woken, int result);
	/*
	 * The first attempt commits the op (a barrier arrival) in a way only
	 * settle can take back: ksync_op_start checks that the op could wait
	 * (io_uring futex ops, free SQEs) before making it, so that starting
	 * never fails after it.
	 */
	bool commits;
};

/* The private part of struct ksync_op. */
struct op_state {
	const struct ksync_waitable *proto;	/* NULL: a driver's own op */
	void *prim;
	int64_t started_ns;	/* CLOCK_MONOTONIC when it first waited; 0 before */
	struct {
		int64_t tv_sec;
		long long tv_nsec;
	} deadline;		/* layout of struct __kernel_timespec */
	struct ksync_park park;	/* where the pending wait sleeps */
	uint32_t futex_flags;	/* FUTEX2_* for every wait of this op */
	int wait_res;		/* res of the last wait CQE */
	uint8_t kind;		/* proto->kind, or a driver's own kind */
	uint8_t state;		/* OP_IDLE, OP_WAITING, OP_DONE */
	uint8_t woken;		/* the last wait CQE had res 0 */
	uint8_t cancel;		/* a cancel SQE is in flight */
	uint8_t inflight;	/* CQEs still owed by the kernel */
	uint8_t has_deadline;
	uint8_t clock_realtime;
	int32_t ok_result;	/* op->result when the op succeeds (attempt may set it) */
	uint64_t family[4];	/* the primitive family's per-op state */
};

enum { OP_IDLE, OP_WAITING, OP_DONE };

_Static_assert(sizeof(struct op_state) <= sizeof(((struct ksync_op *)0)->private_area),
	       "struct op_state must fit in struct ksync_op's private area");

static inline struct op_state *op_state(struct ksync_op *op)
{
	return (struct op_state *)(void *)op->private_area;
}

static inline const struct op_state *op_state_const(const struct ksync_op *op)
{
	return (const struct op_state *)(const void *)op->private_area;
}

/*
 * What a family's ksync_op_NAME() calls: reset @op to wait on @prim, whose
 * futex waits use @fflags (futex_flags_for the primitive's attribute).
 */
void ksync_op_prepare(struct ksync_op *op, const struct ksync_waitable *proto, void *prim,
		      uint64_t token, uint32_t fflags);

/* The primitive an op waits on, for the family's hooks. */
static inline void *op_prim(struct ksync_op *op)
{
	return op_state(op)->prim;
}

#endif
