/* SPDX-License-Identifier: MIT */
/*
 * Memory: the size of each primitive and of an async op, and the bytes
 * allocated per wait, which the design says must be 0.
 *
 * Allocations are counted for real: this file defines malloc, calloc,
 * realloc, free and the aligned allocators for the whole process. Symbols
 * defined in the executable take precedence over libc's for every caller,
 * libc and liburing included, and forward to glibc's allocator through its
 * __libc_* entry points. Counting is off except around the measured batch
 * of waits. Sanitizer builds bring their own allocator, so there the hooks
 * are compiled out and the row says "not measured".
 */
#include "bench.h"

#include <semaphore.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NO_ALLOC_HOOKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
	__has_feature(memory_sanitizer)
#define NO_ALLOC_HOOKS 1
#endif
#endif

static bool counting;
static uint64_t alloc_calls, alloc_bytes;

#ifndef NO_ALLOC_HOOKS
/* The project builds with -fvisibility=hidden; these must be seen by libc. */
#define EXPORT __attribute__((visibility("default")))

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

static inline void count(size_t n)
{
	if (__atomic_load_n(&counting, __ATOMIC_RELAXED)) {
		__atomic_add_fetch(&alloc_calls, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&alloc_bytes, n, __ATOMIC_RELAXED);
	}
}

EXPORT void *malloc(size_t n)
{
	count(n);
	return __libc_malloc(n);
}

EXPORT void *calloc(size_t n, size_t size)
{
	count(n * size);
	return __libc_calloc(n, size);
}

EXPORT void *realloc(void *p, size_t n)
{
	count(n);
	return __libc_realloc(p, n);
}

EXPORT void free(void *p)
{
	__libc_free(p);
}

EXPORT void *memalign(size_t align, size_t n)
{
	count(n);
	return __libc_memalign(align, n);
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
	count(n);
	return __libc_memalign(align, n);
}

EXPORT int posix_memalign(void **p, size_t align, size_t n)
{
	void *m;

	if (!align || (align & (align - 1)) || align % sizeof(void *))
		return EINVAL;
	count(n);
	m = __libc_memalign(align, n);
	if (!m)
		return ENOMEM;
	*p = m;
	return 0;
}

bool alloc_counting_available(void)
{
	return true;
}
#else
bool alloc_counting_available(void)
{
	return false;
}
#endif

void alloc_counting(bool on)
{
	if (on) {
		__atomic_store_n(&alloc_calls, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&alloc_bytes, 0, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&counting, on, __ATOMIC_SEQ_CST);
}

void alloc_counts(uint64_t *calls, uint64_t *bytes)
{
	*calls = __atomic_load_n(&alloc_calls, __ATOMIC_RELAXED);
	*bytes = __atomic_load_n(&alloc_bytes, __ATOMIC_RELAXED);
}

/* ---- the batch of waits ------------------------------------------------- */

/*
 * Three phases, each ended by a barrier of the three threads:
 *   lock   the main thread, a helper thread and 4 tasks on a ring take a
 *          ksync_lock in turn and hold it ~20 µs, so most acquisitions park;
 *   sem    the same on a binary ksync_sem;
 *   event  the main thread and one task ping-pong over fresh event pairs.
 * The ring, the threads and the events exist before counting starts.
 */
#define NTASKS	4
#define HOLD_NS	20000	/* longer than a thread spins before it parks */

enum phase { P_LOCK, P_SEM, P_EVENT, NPHASES };

struct mtask {
	struct ksync_op op;
	int left;
};

static struct {
	struct ksync_lock lock;
	struct ksync_sem sem;
	struct ksync_event *ping, *pong;
	int rounds;		/* per participant and phase */
	int event_i;
	struct ksync_loop loop;
	struct mtask tasks[NTASKS];
	pthread_barrier_t phase;
	uint64_t thread_waits;	/* blocking calls */
	int64_t thread_parks;	/* futex_wait syscalls they made; -1: not counted */
	uint64_t async_waits;	/* ops started */
	uint64_t async_parked;	/* ops that had to wait in the ring */
} m;

static void task_cb(struct ksync_op *op);

/* Start the task's op for phase @p; true if it finished at once. */
static bool task_start(struct mtask *t, enum phase p)
{
	switch (p) {
	case P_LOCK:
		ksync_op_lock(&t->op, &m.lock, (uintptr_t)t);
		break;
	case P_SEM:
		ksync_op_sem(&t->op, &m.sem);
		break;
	case P_EVENT:
		ksync_op_event(&t->op, &m.ping[m.event_i]);
		break;
	default:
		die("bad phase");
	}
	t->op.data = (void *)(uintptr_t)p;
	m.async_waits++;
	if (loop_start_done(&m.loop, &t->op, task_cb))
		return true;
	m.async_parked++;
	return false;
}

static void task_cb(struct ksync_op *op)
{
	struct mtask *t = (struct mtask *)op;
	enum phase p = (enum phase)(uintptr_t)op->data;

next:
	if (op->result)
		die("op: %s", strerror(-op->result));
	switch (p) {
	case P_LOCK:
		busy_ns(HOLD_NS);
		check(ksync_lock_release_task(&m.lock, (uintptr_t)t));
		break;
	case P_SEM:
		busy_ns(HOLD_NS);
		check(ksync_sem_release(&m.sem, 1));
		break;
	case P_EVENT:
		ksync_event_set(&m.pong[m.event_i]);
		m.event_i++;
		break;
	default:
		break;
	}
	if (--t->left && task_start(t, p))
		goto next;	/* done at once: no callback, loop instead of recursing */
}

static void *loop_thread(void *arg)
{
	(void)arg;
	check(ksync_loop_init(&m.loop, 64, cfg.ring_flags));
	pthread_barrier_wait(&m.phase);		/* set up */
	pthread_barrier_wait(&m.phase);		/* counting started */
	for (int p = 0; p < NPHASES; p++) {
		int ntasks = p == P_EVENT ? 1 : NTASKS;

		for (int i = 0; i < ntasks; i++) {
			m.tasks[i].left = m.rounds;
			if (task_start(&m.tasks[i], p))
				task_cb(&m.tasks[i].op);
		}
		check(ksync_loop_run(&m.loop));
		pthread_barrier_wait(&m.phase);
	}
	pthread_barrier_wait(&m.phase);		/* counting stopped */
	ksync_loop_exit(&m.loop);
	return NULL;
}

/* What the main thread and the helper thread do in each phase. */
/* Counts how many of the thread's waits really slept in the kernel. Opened
 * before counting starts: opening reads tracefs, and stdio allocates. */
static int open_park_counter(void)
{
	char why[128];

	return tp_counter_open("syscalls/sys_enter_futex_wait", why, sizeof(why));
}

static void thread_phases(bool main_thread, int counter)
{
	uint64_t waits = 0, parks;

	if (counter >= 0)
		tp_counter_start(counter);

	for (int p = 0; p < NPHASES; p++) {
		for (int i = 0; i < m.rounds; i++) {
			switch (p) {
			case P_LOCK:
				check(ksync_lock_acquire(&m.lock));
				busy_ns(HOLD_NS);
				check(ksync_lock_release(&m.lock));
				waits++;
				break;
			case P_SEM:
				check(ksync_sem_acquire(&m.sem));
				busy_ns(HOLD_NS);
				check(ksync_sem_release(&m.sem, 1));
				waits++;
				break;
			case P_EVENT:
				if (!main_thread)
					break;
				ksync_event_set(&m.ping[i]);
				check(ksync_event_wait(&m.pong[i]));
				waits++;
				break;
			}
		}
		pthread_barrier_wait(&m.phase);
	}
	__atomic_add_fetch(&m.thread_waits, waits, __ATOMIC_RELAXED);
	if (counter < 0) {
		poke(m.thread_parks, -1);
		return;
	}
	parks = tp_counter_stop(counter);
	close(counter);
	if (peek(m.thread_parks) >= 0)
		__atomic_add_fetch(&m.thread_parks, (int64_t)parks, __ATOMIC_RELAXED);
}

static void *helper_thread(void *arg)
{
	int counter = open_park_counter();

	(void)arg;
	pthread_barrier_wait(&m.phase);
	pthread_barrier_wait(&m.phase);
	thread_phases(false, counter);
	pthread_barrier_wait(&m.phase);
	return NULL;
}

struct mem_run {
	uint64_t calls, bytes, waits;
	uint64_t thread_waits, async_waits, async_parked;
	int64_t thread_parks;
};

static void run_waits(struct mem_run *out)
{
	pthread_t lt, ht;
	int counter = open_park_counter();

	m.rounds = (int)scaled(300, 50);
	ksync_lock_init(&m.lock, 0);
	check(ksync_sem_init(&m.sem, 1, 1, 0));
	m.ping = calloc((size_t)m.rounds, sizeof(*m.ping));
	m.pong = calloc((size_t)m.rounds, sizeof(*m.pong));
	if (!m.ping || !m.pong)
		die("calloc");
	m.event_i = 0;
	m.thread_waits = m.async_waits = m.async_parked = 0;
	m.thread_parks = 0;
	pthread_barrier_init(&m.phase, NULL, 3);
	lt = spawn(loop_thread, NULL);
	ht = spawn(helper_thread, NULL);

	/* Everyone is set up before counting starts, and waits start after. */
	pthread_barrier_wait(&m.phase);
	alloc_counting(true);
	pthread_barrier_wait(&m.phase);
	thread_phases(true, counter);
	alloc_counting(false);
	pthread_barrier_wait(&m.phase);

	join(lt);
	join(ht);
	pthread_barrier_destroy(&m.phase);
	free(m.ping);
	free(m.pong);
	alloc_counts(&out->calls, &out->bytes);
	out->waits = m.thread_waits + m.async_waits;
	out->thread_waits = m.thread_waits;
	out->thread_parks = m.thread_parks;
	out->async_waits = m.async_waits;
	out->async_parked = m.async_parked;
}

static struct series one(double v)
{
	struct series s = { 0 };

	series_add(&s, v);
	return s;
}

void bench_memory(void)
{
	struct series lk = one(sizeof(struct ksync_lock)), pm = one(sizeof(pthread_mutex_t));
	struct series ks = one(sizeof(struct ksync_sem)), ps = one(sizeof(sem_t));
	struct series ke = one(sizeof(struct ksync_event));
	struct series pe = one(sizeof(pthread_mutex_t) + sizeof(pthread_cond_t));
	struct series op = one(sizeof(struct ksync_op));
	struct goal zero = { G_VALUE_LE, 0, "0 B" };

	report("6 sizeof struct ksync_lock", U_BYTES, &lk, "pthread_mutex_t", &pm, NO_GOAL);
	report("6 sizeof struct ksync_sem", U_BYTES, &ks, "sem_t", &ps, NO_GOAL);
	report("6 sizeof struct ksync_event", U_BYTES, &ke, "pthread mutex+cond", &pe, NO_GOAL);
	report("6 sizeof struct ksync_op (one per async wait)", U_BYTES, &op, NULL, NULL,
	       NO_GOAL);

	if (!alloc_counting_available()) {
		report_missing("6 bytes allocated per wait", "not measured (sanitizer build)",
			       zero);
		return;
	}

	struct series per_wait = { 0 };
	struct mem_run run = { 0 };
	uint64_t calls = 0, bytes = 0;
	char parks[64];
	int runs = cfg.runs < 3 ? cfg.runs : 3;

	for (int r = 0; r < runs; r++) {
		run_waits(&run);
		series_add(&per_wait, (double)run.bytes / (double)run.waits);
		calls += run.calls;
		bytes += run.bytes;
	}
	report("6 bytes allocated per wait", U_BYTES, &per_wait, NULL, NULL, zero);
	if (run.thread_parks >= 0)
		snprintf(parks, sizeof(parks), "%lld futex_wait syscalls", (long long)run.thread_parks);
	else
		snprintf(parks, sizeof(parks), "futex_wait syscalls not counted");
	note("6: allocations counted by malloc/calloc/realloc/memalign hooks for the whole "
	     "process over %d runs: %llu calls, %llu bytes. Per run: %llu blocking waits "
	     "(lock, sem, event; %s) and %llu async ops (%llu parked in the ring).",
	     runs, (unsigned long long)calls, (unsigned long long)bytes,
	     (unsigned long long)run.thread_waits, parks,
	     (unsigned long long)run.async_waits, (unsigned long long)run.async_parked);
}
