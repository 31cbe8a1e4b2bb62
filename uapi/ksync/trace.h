/* SPDX-License-Identifier: MIT */
/*
 * Records shared by the ksync-wait BPF program (bpf/ksync-wait.bpf.c) and
 * any user-space reader of its maps. Stable ABI: fields are only ever
 * appended, and every struct is padded explicitly so that the BPF side and
 * user space agree on the layout (hash map keys must not hold stray bytes).
 *
 * The program fills two maps:
 *
 *   starts  (hash)        struct ksync_trace_start_key -> struct ksync_trace_start
 *           one entry per wait in progress, from ksync:wait_begin to
 *           ksync:wait_end;
 *   stats   (per-CPU hash) struct ksync_trace_key -> struct ksync_trace_stats
 *           one entry per (process, primitive, kind, world); a reader sums
 *           the per-CPU copies and takes the largest max_ns.
 *
 * Waits are counted at ksync:wait_end, so the counts are exact even for a
 * wait that began before the tracer attached; only such a wait has no
 * duration (it is not in "timed"). Wakes carry no world: they are counted
 * under world KSYNC_TRACE_WORLD_NONE.
 */
#ifndef KSYNC_UAPI_TRACE_H
#define KSYNC_UAPI_TRACE_H

/* A BPF program gets __u32/__u64 from vmlinux.h, user space from here. */
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Frames kept of a user stack (-s). */
#define KSYNC_TRACE_STACK_DEPTH	32
/* stack_id when no stack was taken (not asked for, or it failed). */
#define KSYNC_TRACE_NO_STACK	0xffffffffu

/* The world of a wake: the wake probe does not say who will be woken. */
#define KSYNC_TRACE_WORLD_NONE	0

/* Where ksync:wait_end's outcome is counted. */
enum ksync_trace_outcome {
	KSYNC_TRACE_OK = 0,		/* 0: got what it waited for */
	KSYNC_TRACE_TIMEDOUT = 1,	/* -ETIMEDOUT */
	KSYNC_TRACE_CANCELED = 2,	/* -ECANCELED */
	KSYNC_TRACE_OTHER = 3,		/* any other negative errno */
	KSYNC_TRACE_NR_OUTCOMES = 4,
};

/* A wait in progress. who: tid (thread world) or task token (uring world). */
struct ksync_trace_start_key {
	__u64 prim;		/* primitive address in the traced process */
	__u64 who;
	__u32 pid;		/* traced process (tgid) */
	__u32 world;		/* enum ksync_world */
};

struct ksync_trace_start {
	__u64 ts_ns;		/* CLOCK_MONOTONIC at ksync:wait_begin */
	__u32 stack_id;		/* user stack at wait_begin, or KSYNC_TRACE_NO_STACK */
	__u32 _pad;
};

struct ksync_trace_key {
	__u64 prim;		/* primitive address in the traced process */
	__u32 pid;		/* traced process (tgid) */
	__u32 kind;		/* enum ksync_kind */
	__u32 world;		/* enum ksync_world, or KSYNC_TRACE_WORLD_NONE */
	__u32 _pad;
};

struct ksync_trace_stats {
	__u64 waits;		/* ksync:wait_end hits */
	__u64 timed;		/* of those, waits whose wait_begin was seen */
	__u64 total_ns;		/* summed duration of the timed waits */
	__u64 max_ns;		/* longest timed wait */
	__u64 max_who;		/* its tid or task token */
	__u64 outcomes[KSYNC_TRACE_NR_OUTCOMES];
	__u64 wakes;		/* ksync:wake hits (futex_wake calls) */
	__u64 woken;		/* waiters those calls woke */
	__u32 max_stack_id;	/* user stack of the longest wait, or KSYNC_TRACE_NO_STACK */
	__u32 _pad;
};

#endif
