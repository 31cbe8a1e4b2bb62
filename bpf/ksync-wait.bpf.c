/* SPDX-License-Identifier: MIT */
/*
 * ksync-wait: time every wait on a ksync primitive, from the USDT probes
 * ksync:wait_begin / ksync:wait_end, and count ksync:wake.
 *
 * A wait in progress is keyed by (process, primitive, world, who), not by
 * thread: an io_uring loop thread begins and ends the waits of many tasks,
 * interleaved, and only the task token (who) tells them apart.
 *
 * The records are in uapi/ksync/trace.h; ksync-wait.c loads and reads this.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "ksync/probe.h"
#include "ksync/trace.h"

/* usdt.bpf.h may or may not bring in the errno values; these are Linux's. */
#ifndef ETIMEDOUT
#define ETIMEDOUT	110
#endif
#ifndef ECANCELED
#define ECANCELED	125
#endif

/* Waits in progress / stats rows we can hold. A full map drops records
 * (the counts of that row then fall short), it never blocks the tracee. */
#define MAX_WAITS	16384
#define MAX_ROWS	4096
#define MAX_STACKS	4096

/* Set by the loader before load (-s). */
const volatile bool want_stacks = false;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_WAITS);
	__type(key, struct ksync_trace_start_key);
	__type(value, struct ksync_trace_start);
} starts SEC(".maps");

/* Per CPU, so that two CPUs updating one busy primitive do not fight over
 * its cache line; the loader sums the copies. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_ROWS);
	__type(key, struct ksync_trace_key);
	__type(value, struct ksync_trace_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, MAX_STACKS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, KSYNC_TRACE_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

static __always_inline __u32 current_pid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

/* This CPU's row for (process, prim, kind, world), created on first use. */
static struct ksync_trace_stats *row(void *prim, int kind, int world)
{
	struct ksync_trace_key key = {
		.prim = (__u64)prim,
		.pid = current_pid(),
		.kind = kind,
		.world = world,
	};
	struct ksync_trace_stats zero = { .max_stack_id = KSYNC_TRACE_NO_STACK };
	struct ksync_trace_stats *s;

	s = bpf_map_lookup_elem(&stats, &key);
	if (s)
		return s;
	/* NOEXIST: if another CPU created the row meanwhile, keep its data. */
	bpf_map_update_elem(&stats, &key, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&stats, &key);
}

static __always_inline int outcome_slot(int outcome)
{
	if (outcome == 0)
		return KSYNC_TRACE_OK;
	if (outcome == -ETIMEDOUT)
		return KSYNC_TRACE_TIMEDOUT;
	if (outcome == -ECANCELED)
		return KSYNC_TRACE_CANCELED;
	return KSYNC_TRACE_OTHER;
}

SEC("usdt")
int BPF_USDT(wait_begin, void *prim, int kind, int world, __u64 who)
{
	struct ksync_trace_start_key key = {
		.prim = (__u64)prim,
		.who = who,
		.pid = current_pid(),
		.world = world,
	};
	struct ksync_trace_start start = {
		.ts_ns = bpf_ktime_get_ns(),
		.stack_id = KSYNC_TRACE_NO_STACK,
	};

	(void)kind;	/* the stats row takes it from wait_end */
	if (want_stacks) {
		long id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);

		if (id >= 0)
			start.stack_id = (__u32)id;
	}
	bpf_map_update_elem(&starts, &key, &start, BPF_ANY);
	return 0;
}

SEC("usdt")
int BPF_USDT(wait_end, void *prim, int kind, int world, __u64 who, int outcome)
{
	struct ksync_trace_start_key key = {
		.prim = (__u64)prim,
		.who = who,
		.pid = current_pid(),
		.world = world,
	};
	struct ksync_trace_start *sp, start;
	struct ksync_trace_stats *s;
	bool timed = false;
	__u64 ns = 0;

	sp = bpf_map_lookup_elem(&starts, &key);
	if (sp) {
		/* Copy before the delete: the element may be reused after it. */
		start = *sp;
		bpf_map_delete_elem(&starts, &key);
		ns = bpf_ktime_get_ns() - start.ts_ns;
		timed = true;
	}

	s = row(prim, kind, world);
	if (!s)
		return 0;
	/*
	 * Atomic adds although the row is per CPU: a uprobe program can be
	 * preempted, and another on this CPU could then hit the same row.
	 */
	__sync_fetch_and_add(&s->waits, 1);
	__sync_fetch_and_add(&s->outcomes[outcome_slot(outcome)], 1);
	if (timed) {
		__sync_fetch_and_add(&s->timed, 1);
		__sync_fetch_and_add(&s->total_ns, ns);
		/* Racy only against a preempting program on this CPU: at
		 * worst the max and its stack come from two close waits. */
		if (ns > s->max_ns) {
			s->max_ns = ns;
			s->max_who = who;
			s->max_stack_id = start.stack_id;
		}
	}
	return 0;
}

SEC("usdt")
int BPF_USDT(wake, void *prim, int kind, int woken)
{
	struct ksync_trace_stats *s = row(prim, kind, KSYNC_TRACE_WORLD_NONE);

	if (!s)
		return 0;
	__sync_fetch_and_add(&s->wakes, 1);
	if (woken > 0)
		__sync_fetch_and_add(&s->woken, woken);
	return 0;
}

/*
 * bpf_get_stackid() and the user-memory reads behind USDT arguments are
 * GPL-only helpers; MIT code is GPL-compatible, so declare both.
 */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
