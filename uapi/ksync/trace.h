/* SPDX-License-Identifier: MIT */
/*
 * Records shared by the ksync-wait BPF program (bpf/ksync-wait.bpf.c) and
 * any user-space reader of its maps. Every struct is padded explicitly so
 * that the BPF side and user space agree on the layout (hash map keys must
 * not hold stray bytes).
 *
 * The program keeps:
 *
 *   starts    (hash)          struct ksync_trace_wait_key -> struct ksync_trace_wait
 *             one entry per wait in progress, wait_begin to wait_end;
 *   op_starts (LRU hash)      struct ksync_trace_wait_key -> __u32 stack id
 *             the stack of an async op's ksync:op_start, until its wait_begin;
 *   prims     (hash)          struct ksync_trace_prim_key -> struct ksync_trace_prim
 *             per primitive: who is waiting since when, the last wake, the
 *             hold being timed;
 *   waits     (per-CPU hash)  struct ksync_trace_wait_row_key -> struct ksync_trace_wait_row
 *             one row per (process, primitive, kind, world, waiter stack);
 *   wakes     (per-CPU hash)  struct ksync_trace_wake_row_key -> struct ksync_trace_wake_row
 *             one row per (process, primitive, kind, waker stack);
 *   names     (hash)          struct ksync_trace_prim_key -> struct ksync_trace_name
 *             names given by ksync:name while attached ("" = name removed);
 *   stacks    (array)         stack id -> user stack, KSYNC_TRACE_STACK_DEPTH
 *             frames, zero-padded (interned through the stack_ids hash: two
 *             different stacks never share an id).
 *
 * A reader sums the per-CPU copies of a row and takes the largest max.
 *
 * Waits are counted at ksync:wait_end, so the counts are exact even for a
 * wait that began before the tracer attached; only such a wait has no
 * duration (it is not in "timed").
 *
 * Delay charged to a waker. Between two wakes of a primitive, every waiter
 * that waits is delayed by whoever holds it. At ksync:wake_begin the program
 * charges to the waker's row the time each current waiter spent waiting
 * since the later of its wait_begin and the primitive's previous wake
 * (n * now - sum of those starts, kept per primitive), so the waiting of
 * every wait is split among the holds it sat through. Waiting after the last
 * wake (the wake-up itself) and the waiting of waits that give up is charged
 * to nobody.
 *
 * Hold time (Lock). A hold is timed when it begins with a contended
 * acquisition (wait_end, outcome 0) that leaves the lock word CONTENDED:
 * its release is then sure to wake (wake_begin), and that ends it. The
 * waker must be the thread that acquired it (for a task, its loop thread).
 * Holds that begin on the fast path are not seen: timing them would need a
 * probe on the fast path.
 */
#ifndef KSYNC_UAPI_TRACE_H
#define KSYNC_UAPI_TRACE_H

/* A BPF program gets __u32/__u64 from vmlinux.h, user space from here. */
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "probe.h"

/* Frames kept of a user stack. */
#define KSYNC_TRACE_STACK_DEPTH	64
/* A stack id when no stack was taken (not asked for, or it failed). */
#define KSYNC_TRACE_NO_STACK	0xffffffffu

/*
 * Wait-time histogram: slot 0 counts waits under 2 ns, slot k (k >= 1)
 * those in [2^k, 2^(k+1)) ns, the last slot everything longer.
 */
#define KSYNC_TRACE_HIST_SLOTS	40

/* Where ksync:wait_end's outcome is counted. */
enum ksync_trace_outcome {
	KSYNC_TRACE_OK = 0,		/* 0: got what it waited for */
	KSYNC_TRACE_TIMEDOUT = 1,	/* -ETIMEDOUT */
	KSYNC_TRACE_CANCELED = 2,	/* -ECANCELED */
	KSYNC_TRACE_OTHER = 3,		/* any other negative errno */
	KSYNC_TRACE_NR_OUTCOMES = 4,
};

/* A wait in progress. who: tid (thread world) or task token (uring world). */
struct ksync_trace_wait_key {
	__u64 prim;		/* primitive address in the traced process */
	__u64 who;
	__u32 pid;		/* traced process (tgid) */
	__u32 world;		/* enum ksync_world */
};

struct ksync_trace_wait {
	__u64 ts_ns;		/* CLOCK_MONOTONIC at ksync:wait_begin */
	__u64 holder_token;	/* Lock: owner_token when the wait began */
	__u32 holder_tid;	/* Lock: owner_tid when the wait began, 0 unknown */
	__u32 stack_id;		/* waiter's stack (a task's: at op_start) */
};

struct ksync_trace_prim_key {
	__u64 prim;
	__u32 pid;
	__u32 _pad;
};

struct ksync_trace_prim {
	__u64 nwaiting;		/* timed waits in progress */
	__u64 start_sum;	/* sum of their starts (see "Delay" above) */
	__u64 last_wake_ns;	/* the last wake_begin, 0: none seen */
	__u32 last_wake_stack;	/* its stack */
	__u32 hold_tid;		/* thread that holds the timed hold */
	__u64 hold_ns;		/* when the timed hold began, 0: none */
	__u32 hold_world;	/* its acquirer's world and stack */
	__u32 hold_stack;
};

struct ksync_trace_wait_row_key {
	__u64 prim;
	__u32 pid;
	__u32 kind;		/* enum ksync_kind */
	__u32 world;		/* enum ksync_world */
	__u32 stack_id;		/* waiter's stack, or KSYNC_TRACE_NO_STACK */
};

struct ksync_trace_wait_row {
	__u64 waits;		/* ksync:wait_end hits */
	__u64 timed;		/* of those, waits whose wait_begin was seen */
	__u64 total_ns;		/* summed duration of the timed waits */
	__u64 max_ns;		/* longest timed wait */
	__u64 max_who;		/* its tid or task token */
	__u64 max_holder_token;	/* Lock: the owner when it began */
	__u32 max_holder_tid;
	__u32 max_waker_stack;	/* the wake that ended it, or KSYNC_TRACE_NO_STACK */
	__u64 outcomes[KSYNC_TRACE_NR_OUTCOMES];
	__u64 holds;		/* Lock: timed holds that followed these waits */
	__u64 hold_total_ns;
	__u64 hold_max_ns;
	__u64 hist[KSYNC_TRACE_HIST_SLOTS];	/* timed waits by duration */
};

struct ksync_trace_wake_row_key {
	__u64 prim;
	__u32 pid;
	__u32 kind;
	__u32 stack_id;		/* waker's stack, or KSYNC_TRACE_NO_STACK */
	__u32 _pad;
};

struct ksync_trace_wake_row {
	__u64 wakes;		/* ksync:wake_begin hits (futex_wake calls) */
	__u64 woken;		/* waiters those calls woke */
	__u64 delay_ns;		/* waiting charged to these wakes */
	__u64 holds;		/* Lock: timed holds these wakes ended */
	__u64 hold_total_ns;
	__u64 hold_max_ns;
	__u64 last_tid;		/* thread of the latest wake */
};

struct ksync_trace_name {
	char name[KSYNC_NAME_MAX];	/* "" = name removed */
};

#endif
