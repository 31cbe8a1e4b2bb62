/* SPDX-License-Identifier: MIT */
/*
 * ksync-wait: time every contended wait on a ksync primitive, per waiter
 * stack, and charge the waiting to the stacks of the wakes (releases, sets)
 * that end it, from the USDT probes of uapi/ksync/probe.h.
 *
 * A wait in progress is keyed by (process, primitive, world, who), not by
 * thread: an io_uring loop thread begins and ends the waits of many tasks,
 * interleaved, and only the task token (who) tells them apart. A task's
 * stack is the one taken at ksync:op_start, where the task started the op,
 * not the loop's stack at wait_begin.
 *
 * The records, and how delay and hold time are derived, are described in
 * uapi/ksync/trace.h; ksync-wait.c loads and reads this.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

#include "ksync/probe.h"
#include "ksync/word.h"
#include "ksync/trace.h"

/* usdt.bpf.h may or may not bring in the errno values; these are Linux's. */
#ifndef ETIMEDOUT
#define ETIMEDOUT	110
#endif
#ifndef ECANCELED
#define ECANCELED	125
#endif

/* Map sizes. A full map drops records (the counts of that row then fall
 * short), it never blocks the tracee. The loader may change them. */
#define MAX_WAITS	16384
#define MAX_PRIMS	16384
#define MAX_ROWS	8192
#define MAX_STACKS	8192

/* Set by the loader before load (--no-stacks clears it). */
const volatile bool want_stacks = true;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_WAITS);
	__type(key, struct ksync_trace_wait_key);
	__type(value, struct ksync_trace_wait);
} starts SEC(".maps");

/* LRU: an op that starts but never waits (an error) leaves its entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_WAITS);
	__type(key, struct ksync_trace_wait_key);
	__type(value, __u32);
} op_starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PRIMS);
	__type(key, struct ksync_trace_prim_key);
	__type(value, struct ksync_trace_prim);
} prims SEC(".maps");

/* Per CPU, so that two CPUs updating one busy primitive do not fight over
 * its cache line; the loader sums the copies. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_ROWS);
	__type(key, struct ksync_trace_wait_row_key);
	__type(value, struct ksync_trace_wait_row);
} waits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_ROWS);
	__type(key, struct ksync_trace_wake_row_key);
	__type(value, struct ksync_trace_wake_row);
} wakes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PRIMS);
	__type(key, struct ksync_trace_prim_key);
	__type(value, struct ksync_trace_name);
} names SEC(".maps");

/* The wake row a thread's wake_begin used, for the wake that follows it. */
struct waking {
	__u64 prim;
	__u32 stack_id;
	__u32 kind;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);		/* pid_tgid */
	__type(value, struct waking);
} wakers SEC(".maps");

/* Processes seen; a new one is announced on new_pids, so that the loader
 * reads its maps and names while it still lives. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} seen_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} new_pids SEC(".maps");

/*
 * User stacks, interned here rather than in a BPF_MAP_TYPE_STACK_TRACE: that
 * map keeps one stack per hash bucket and fails (-EEXIST) for a second stack
 * whose hash lands in a taken bucket, so with a dozen stacks in 8192 buckets
 * about one run in two hundred silently lost one (a row without its call
 * site). Here a stack is found by a 64-bit hash of its frames and then
 * compared frame by frame with the one stored under its id: two stacks never
 * share an id, and only a full map (or two stacks with one 64-bit hash) loses
 * one, counted in stacks_lost.
 *
 *   stack_ids  hash and depth -> id
 *   stacks     id -> the frames (zero-padded), written before the id is
 *              published
 */
struct stack_frames {
	__u64 ip[KSYNC_TRACE_STACK_DEPTH];
};

struct stack_key {
	__u64 hash;
	__u32 nframes;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_STACKS);
	__type(key, struct stack_key);
	__type(value, __u32);
} stack_ids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_STACKS);
	__type(key, __u32);
	__type(value, struct stack_frames);
} stacks SEC(".maps");

/* Where a stack is taken (too large for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stack_frames);
} stack_scratch SEC(".maps");

/* Ids handed out, and stacks that could not be kept (read by the loader). */
__u32 next_stack_id;
__u64 stacks_lost;

/* New rows start from these (too large for the BPF stack). */
static struct ksync_trace_wait_row new_wait_row = {
	.max_waker_stack = KSYNC_TRACE_NO_STACK,
};
static struct ksync_trace_wake_row new_wake_row;
static struct ksync_trace_prim new_prim = {
	.last_wake_stack = KSYNC_TRACE_NO_STACK,
	.hold_stack = KSYNC_TRACE_NO_STACK,
};

/* The Lock's public layout (lib/ksync/lock.h): word, owner_tid, owner_token. */
struct user_lock {
	__u32 word;
	__u32 owner_tid;
	__u64 owner_token;
};

static __always_inline __u32 current_pid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

static __always_inline __u32 current_tid(void)
{
	return (__u32)bpf_get_current_pid_tgid();
}

static __always_inline void note_pid(void)
{
	__u32 pid = current_pid();
	__u8 one = 1;

	if (bpf_map_lookup_elem(&seen_pids, &pid))
		return;
	if (bpf_map_update_elem(&seen_pids, &pid, &one, BPF_NOEXIST) == 0)
		bpf_ringbuf_output(&new_pids, &pid, sizeof(pid), 0);
}

/*
 * The user stack by frame pointer, as the kernel's walker does: the probe's
 * own address, then the return address of each frame record. Used when
 * bpf_get_stack() cannot take it (its per-CPU buffers are taken, e.g. by a
 * preempted program on this CPU: uprobe programs run preemptibly).
 */
static __always_inline int walk_frames(struct pt_regs *regs, struct stack_frames *st)
{
	__u64 fp = PT_REGS_FP(regs);
	int n = 1;

	st->ip[0] = PT_REGS_IP(regs);
	for (int i = 1; i < KSYNC_TRACE_STACK_DEPTH; i++) {
		__u64 rec[2];	/* saved frame pointer, return address */

		if (!fp || (fp & 7) || bpf_probe_read_user(rec, sizeof(rec), (void *)fp))
			break;
		if (!rec[1])
			break;
		st->ip[i] = rec[1];
		n++;
		if (rec[0] <= fp)	/* stacks grow down: a caller's frame is higher */
			break;
		fp = rec[0];
	}
	return n;
}

static __always_inline __u64 hash_frames(const struct stack_frames *st, int n)
{
	__u64 h = 0xcbf29ce484222325ULL;

	for (int i = 0; i < KSYNC_TRACE_STACK_DEPTH; i++) {
		if (i >= n)
			break;
		h = (h ^ st->ip[i]) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h;
}

static __always_inline bool same_frames(const struct stack_frames *a,
					const struct stack_frames *b, int n)
{
	for (int i = 0; i < KSYNC_TRACE_STACK_DEPTH; i++) {
		if (i >= n)
			break;
		if (a->ip[i] != b->ip[i])
			return false;
	}
	return true;
}

/* The id of this stack, the one it had before if it was seen. */
static __always_inline __u32 take_stack(struct pt_regs *ctx)
{
	struct stack_frames *st, *known;
	struct stack_key key = {};
	__u32 zero = 0, *idp, id;
	long len;
	int n;

	if (!want_stacks)
		return KSYNC_TRACE_NO_STACK;
	st = bpf_map_lookup_elem(&stack_scratch, &zero);
	if (!st)
		return KSYNC_TRACE_NO_STACK;
	/* Fills the rest of the buffer with zeros. */
	len = bpf_get_stack(ctx, st->ip, sizeof(st->ip), BPF_F_USER_STACK);
	if (len > 0) {
		n = (int)(len / sizeof(__u64));
	} else {
		__builtin_memset(st, 0, sizeof(*st));
		n = walk_frames(ctx, st);
	}
	key.hash = hash_frames(st, n);
	key.nframes = (__u32)n;
	idp = bpf_map_lookup_elem(&stack_ids, &key);
	if (!idp) {
		id = __sync_fetch_and_add(&next_stack_id, 1);
		if (id >= MAX_STACKS || bpf_map_update_elem(&stacks, &id, st, BPF_ANY))
			goto lost;
		if (bpf_map_update_elem(&stack_ids, &key, &id, BPF_NOEXIST) == 0)
			return id;
		/* Another CPU interned a stack with this key meanwhile (ours
		 * is left unused): the same stack, most likely. */
		idp = bpf_map_lookup_elem(&stack_ids, &key);
		if (!idp)
			goto lost;
	}
	id = *idp;
	known = bpf_map_lookup_elem(&stacks, &id);
	if (known && same_frames(known, st, n))
		return id;
lost:
	__sync_fetch_and_add(&stacks_lost, 1);
	return KSYNC_TRACE_NO_STACK;
}

/* Look a row up, creating it on first use; NOEXIST: if another CPU created
 * it meanwhile, keep its data. */
static __always_inline void *get_or_create(void *map, const void *key, const void *init)
{
	void *v = bpf_map_lookup_elem(map, key);

	if (v)
		return v;
	bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

static __always_inline struct ksync_trace_prim *prim_state(__u64 prim)
{
	struct ksync_trace_prim_key key = { .prim = prim, .pid = current_pid() };

	return get_or_create(&prims, &key, &new_prim);
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

/* floor(log2(v)) for v >= 1, 0 for v == 0, without loops. */
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xffffffffULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xffff) << 4; v >>= shift; r |= shift;
	shift = (v > 0xff) << 3; v >>= shift; r |= shift;
	shift = (v > 0xf) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline void max_u64(__u64 *p, __u64 v)
{
	/* Racy only against a preempting program on this CPU (per-CPU rows):
	 * at worst a max is lost to a close one. */
	if (v > *p)
		*p = v;
}

SEC("usdt")
int BPF_USDT(op_start, void *op, void *prim, int kind, __u64 who)
{
	struct ksync_trace_wait_key key = {
		.prim = (__u64)prim,
		.who = who,
		.pid = current_pid(),
		.world = KSYNC_WORLD_URING,
	};
	__u32 stack_id = take_stack(ctx);

	note_pid();
	(void)op;
	(void)kind;
	bpf_map_update_elem(&op_starts, &key, &stack_id, BPF_ANY);
	return 0;
}

SEC("usdt")
int BPF_USDT(wait_begin, void *prim, int kind, int world, __u64 who)
{
	struct ksync_trace_wait_key key = {
		.prim = (__u64)prim,
		.who = who,
		.pid = current_pid(),
		.world = world,
	};
	struct ksync_trace_wait w = {
		.ts_ns = bpf_ktime_get_ns(),
		.stack_id = KSYNC_TRACE_NO_STACK,
	};
	struct ksync_trace_prim *ps;

	note_pid();
	if (world == KSYNC_WORLD_URING) {
		__u32 *sid = bpf_map_lookup_elem(&op_starts, &key);

		if (sid) {
			w.stack_id = *sid;
			bpf_map_delete_elem(&op_starts, &key);
		}
	}
	/* A task without an op_start record (a library without that probe)
	 * still waits inside ksync_op_start(): its own stack is next best. */
	if (w.stack_id == KSYNC_TRACE_NO_STACK)
		w.stack_id = take_stack(ctx);
	if (kind == KSYNC_KIND_LOCK) {
		struct user_lock l;

		if (!bpf_probe_read_user(&l, sizeof(l), prim)) {
			w.holder_tid = l.owner_tid;
			w.holder_token = l.owner_token;
		}
	}
	/* NOEXIST: a stale entry (a wait whose end was never seen) keeps
	 * its place in the primitive's count instead of adding to it. */
	if (bpf_map_update_elem(&starts, &key, &w, BPF_NOEXIST)) {
		bpf_map_update_elem(&starts, &key, &w, BPF_EXIST);
		return 0;
	}
	ps = prim_state((__u64)prim);
	if (ps) {
		__sync_fetch_and_add(&ps->nwaiting, 1);
		__sync_fetch_and_add(&ps->start_sum, w.ts_ns);
	}
	return 0;
}

SEC("usdt")
int BPF_USDT(wait_end, void *prim, int kind, int world, __u64 who, int outcome)
{
	struct ksync_trace_wait_key key = {
		.prim = (__u64)prim,
		.who = who,
		.pid = current_pid(),
		.world = world,
	};
	struct ksync_trace_wait_row_key rkey = {
		.prim = (__u64)prim,
		.pid = key.pid,
		.kind = kind,
		.world = world,
		.stack_id = KSYNC_TRACE_NO_STACK,
	};
	struct ksync_trace_wait *sp, start = {};
	struct ksync_trace_wait_row *row;
	struct ksync_trace_prim *ps;
	__u32 waker = KSYNC_TRACE_NO_STACK;
	__u64 now = bpf_ktime_get_ns(), ns = 0;
	bool timed = false;

	note_pid();
	sp = bpf_map_lookup_elem(&starts, &key);
	if (sp) {
		/* Copy before the delete: the element may be reused after it. */
		start = *sp;
		bpf_map_delete_elem(&starts, &key);
		ns = now - start.ts_ns;
		timed = true;
		rkey.stack_id = start.stack_id;
	} else if (world != KSYNC_WORLD_URING) {
		/* Began before we attached: a thread is still in the same call. */
		rkey.stack_id = take_stack(ctx);
	}

	ps = prim_state((__u64)prim);
	if (ps && timed) {
		__u64 from = start.ts_ns;

		/* Its share of start_sum: reset to the last wake at each wake. */
		if (ps->last_wake_ns > from) {
			from = ps->last_wake_ns;
			waker = ps->last_wake_stack;
		}
		__sync_fetch_and_add(&ps->nwaiting, -1);
		__sync_fetch_and_add(&ps->start_sum, -from);
	}

	row = get_or_create(&waits, &rkey, &new_wait_row);
	if (!row)
		return 0;
	/*
	 * Atomic adds although the row is per CPU: a uprobe program can be
	 * preempted, and another on this CPU could then hit the same row.
	 */
	__sync_fetch_and_add(&row->waits, 1);
	__sync_fetch_and_add(&row->outcomes[outcome_slot(outcome)], 1);
	if (timed) {
		__u32 slot = log2_u64(ns);

		if (slot >= KSYNC_TRACE_HIST_SLOTS)
			slot = KSYNC_TRACE_HIST_SLOTS - 1;
		__sync_fetch_and_add(&row->timed, 1);
		__sync_fetch_and_add(&row->total_ns, ns);
		__sync_fetch_and_add(&row->hist[slot], 1);
		if (ns > row->max_ns) {
			row->max_ns = ns;
			row->max_who = who;
			row->max_holder_tid = start.holder_tid;
			row->max_holder_token = start.holder_token;
			row->max_waker_stack = waker;
		}
	}

	/* A hold begins: time it if its release is sure to wake. */
	if (kind == KSYNC_KIND_LOCK && outcome == 0 && ps) {
		__u32 word = 0;
		const __u32 both = KSYNC_LOCK_LOCKED | KSYNC_LOCK_CONTENDED;

		bpf_probe_read_user(&word, sizeof(word), prim);
		if ((word & both) == both) {
			ps->hold_tid = current_tid();
			ps->hold_world = world;
			ps->hold_stack = rkey.stack_id;
			ps->hold_ns = now;
		} else {
			ps->hold_ns = 0;
		}
	}
	return 0;
}

SEC("usdt")
int BPF_USDT(wake_begin, void *prim, int kind)
{
	struct ksync_trace_wake_row_key key = {
		.prim = (__u64)prim,
		.pid = current_pid(),
		.kind = kind,
		.stack_id = take_stack(ctx),
	};
	struct waking wk = { .prim = (__u64)prim, .stack_id = key.stack_id, .kind = kind };
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ksync_trace_wake_row *row;
	struct ksync_trace_prim *ps;
	__u64 now = bpf_ktime_get_ns(), delay = 0, hold = 0;
	struct ksync_trace_wait_row_key hkey = {};
	bool held = false;

	note_pid();
	ps = prim_state((__u64)prim);
	if (ps) {
		__u64 n = ps->nwaiting, due = n * now, sum = ps->start_sum;

		/* Everyone waiting now waited since max(its start, last wake)
		 * because of this hold; from now on they wait on the next. */
		if (due > sum) {
			delay = due - sum;
			__sync_fetch_and_add(&ps->start_sum, delay);
		}
		ps->last_wake_ns = now;
		ps->last_wake_stack = key.stack_id;
		if (kind == KSYNC_KIND_LOCK && ps->hold_ns && ps->hold_tid == (__u32)pid_tgid) {
			hold = now - ps->hold_ns;
			held = true;
			hkey.prim = (__u64)prim;
			hkey.pid = key.pid;
			hkey.kind = kind;
			hkey.world = ps->hold_world;
			hkey.stack_id = ps->hold_stack;
			ps->hold_ns = 0;
		}
	}

	row = get_or_create(&wakes, &key, &new_wake_row);
	if (row) {
		__sync_fetch_and_add(&row->wakes, 1);
		__sync_fetch_and_add(&row->delay_ns, delay);
		row->last_tid = (__u32)pid_tgid;
		if (held) {
			__sync_fetch_and_add(&row->holds, 1);
			__sync_fetch_and_add(&row->hold_total_ns, hold);
			max_u64(&row->hold_max_ns, hold);
		}
	}
	if (held) {
		/* Also on the row of the waits that began the hold. */
		struct ksync_trace_wait_row *w = get_or_create(&waits, &hkey, &new_wait_row);

		if (w) {
			__sync_fetch_and_add(&w->holds, 1);
			__sync_fetch_and_add(&w->hold_total_ns, hold);
			max_u64(&w->hold_max_ns, hold);
		}
	}
	bpf_map_update_elem(&wakers, &pid_tgid, &wk, BPF_ANY);
	return 0;
}

SEC("usdt")
int BPF_USDT(wake, void *prim, int kind, int woken)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ksync_trace_wake_row_key key = {
		.prim = (__u64)prim,
		.pid = pid_tgid >> 32,
		.kind = kind,
		.stack_id = KSYNC_TRACE_NO_STACK,
	};
	struct ksync_trace_wake_row *row;
	struct waking *wk;

	wk = bpf_map_lookup_elem(&wakers, &pid_tgid);
	if (wk && wk->prim == (__u64)prim) {
		key.stack_id = wk->stack_id;
		bpf_map_delete_elem(&wakers, &pid_tgid);
	}
	if (woken <= 0)
		return 0;
	row = get_or_create(&wakes, &key, &new_wake_row);
	if (row)
		__sync_fetch_and_add(&row->woken, woken);
	return 0;
}

SEC("usdt")
int BPF_USDT(name, void *prim, const char *name)
{
	struct ksync_trace_prim_key key = { .prim = (__u64)prim, .pid = current_pid() };
	struct ksync_trace_name v = {};

	note_pid();
	if (name)
		bpf_probe_read_user_str(v.name, sizeof(v.name), name);
	bpf_map_update_elem(&names, &key, &v, BPF_ANY);
	return 0;
}

/*
 * bpf_get_stackid() and the user-memory reads behind USDT arguments are
 * GPL-only helpers; MIT code is GPL-compatible, so declare both.
 */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
