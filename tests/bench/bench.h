/* SPDX-License-Identifier: MIT */
/*
 * ksync-bench: helpers shared by the benchmark cases (timing, statistics,
 * latency histograms, threads, the result table).
 *
 * Every measurement is repeated cfg.runs times; a "series" keeps one value
 * per run so the table can quote the median and the min-max spread. Where
 * a case has a baseline, ksync and baseline runs are interleaved so that
 * noise from other work on the machine hits both alike.
 */
#ifndef KSYNC_BENCH_H
#define KSYNC_BENCH_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ksync/ksync.h"
#include "ksync/loop.h"

#define MAX_RUNS 31

struct bench_cfg {
	int runs;		/* repetitions of every measurement */
	bool quick;		/* --quick: CI smoke run, a few seconds */
	unsigned ring_flags;	/* io_uring setup flags of every ksync_loop */
};
extern struct bench_cfg cfg;

/* Full-run amount, or a tenth of it (at least @min) under --quick. */
static inline long scaled(long full, long min)
{
	long n = cfg.quick ? full / 10 : full;

	return n < min ? min : n;
}

/* Fatal error: a benchmark that misbehaves must not print a table. */
#define die(...) do {								\
	fprintf(stderr, "ksync-bench: %s:%d: ", __FILE__, __LINE__);		\
	fprintf(stderr, __VA_ARGS__);						\
	fputc('\n', stderr);							\
	exit(1);								\
} while (0)

/* For calls that return 0 / a count, or a negative errno. */
#define check(expr) do {							\
	long _r = (long)(expr);							\
	if (_r < 0)								\
		die("%s: %s", #expr, strerror((int)-_r));			\
} while (0)

/*
 * Start @op on @loop. Returns true if it finished at once: the driver then
 * calls no callback and the caller handles op->result itself, in a loop
 * rather than by recursion (see <ksync/op.h>). Dies on an error.
 */
static inline bool loop_start_done(struct ksync_loop *loop, struct ksync_op *op, ksync_op_cb cb)
{
	int r = ksync_loop_start(loop, op, cb);

	check(r);
	return r == 0;
}

/* For a futex wait in a loop that re-checks its word: a wake, a changed
 * word or a signal is fine, anything else would make the loop spin. */
#define check_wait(expr) do {							\
	int _w = (expr);							\
	if (_w < 0 && _w != -EAGAIN && _w != -EINTR)				\
		die("%s: %s", #expr, strerror(-_w));				\
} while (0)

/* Progress goes to stderr so that stdout carries only the table. */
#define progress(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } while (0)

static inline int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sleep_ns(int64_t ns);
/* Burn CPU for about @ns: a critical section or a hold that does work. */
void busy_ns(int64_t ns);

/* The CPUs the process may use, as found at start; the @i-th of them, or
 * -1 if there are not that many. */
extern cpu_set_t cpus_allowed;
int usable_cpu(int i);

/* Where the two threads of a ping-pong run. */
enum placement { P_FREE, P_SAME_CPU, P_SPLIT };
/* Pin the calling thread for @p (@side 0: the pinging thread, 1: the other). */
void place(enum placement p, int side);
/* Back to every CPU the process may use. */
void unplace(void);

/* One eventfd signal, and its wait (blocking read). */
void efd_write(int fd);
void efd_read(int fd);

pthread_t spawn(void *(*fn)(void *), void *arg);
void join(pthread_t t);

#define peek(x)		__atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define poke(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

/* xorshift, for per-thread work that the compiler cannot fold away. */
static inline uint32_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 11);
}

/*
 * Counters of a tracepoint ("raw_syscalls/sys_enter") hit by the calling
 * thread, via perf_event_open. Open returns a disabled counter, or -1 with
 * the reason in @why. If tracefs is not mounted, open mounts it (root only)
 * and sets tracefs_mounted_here, so the table can say so.
 */
int tp_counter_open(const char *event, char *why, size_t len);
void tp_counter_start(int fd);
uint64_t tp_counter_stop(int fd);	/* the count since start */
extern bool tracefs_mounted_here;

/* ---- statistics --------------------------------------------------------- */

/* One value per run. */
struct series {
	int n;
	double v[MAX_RUNS];
};

void series_add(struct series *s, double x);
double series_median(const struct series *s);
double series_min(const struct series *s);
double series_max(const struct series *s);

/*
 * Log-linear histogram of durations in ns: 32 sub-buckets per power of two,
 * so a percentile is exact to ~3%, and adding a sample is a few
 * instructions with no allocation (it sits in the hot loops of the
 * contended cases).
 */
#define HIST_SUB_BITS	5
#define HIST_SUB	(1u << HIST_SUB_BITS)
#define HIST_BUCKETS	(64 * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t max;
	uint64_t b[HIST_BUCKETS];
};

static inline unsigned hist_bucket(uint64_t v)
{
	unsigned e;

	if (v < HIST_SUB)
		return (unsigned)v;
	e = 63 - (unsigned)__builtin_clzll(v);
	return (e - HIST_SUB_BITS + 1) * HIST_SUB +
	       (unsigned)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

static inline void hist_add(struct hist *h, int64_t ns)
{
	uint64_t v = ns > 0 ? (uint64_t)ns : 0;

	h->b[hist_bucket(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

void hist_reset(struct hist *h);
void hist_merge(struct hist *into, const struct hist *from);
/* The @q quantile (0..1), as the upper edge of its bucket; max for q = 1. */
double hist_pct(const struct hist *h, double q);

/* ---- the table ---------------------------------------------------------- */

enum unit {
	U_NS,		/* a duration */
	U_OPS,		/* operations per second */
	U_BYTES,
	U_COUNT,
};

enum goal_kind {
	G_NONE,
	G_RATIO_LE,	/* ksync/baseline <= x (lower is better) */
	G_RATIO_GE,	/* ksync/baseline >= x (higher is better) */
	G_VALUE_LE,	/* every ksync run <= x, in the row's unit */
	G_SAME_LE,	/* ksync and baseline equal in every run, and <= x */
};

struct goal {
	enum goal_kind kind;
	double x;
	const char *text;
};

#define NO_GOAL ((struct goal){ G_NONE, 0, "" })

/*
 * Add a row. @base may be NULL (no baseline); @ksync may be NULL when the
 * row has nothing to measure (@why then says why, in the ksync column).
 */
void report(const char *name, enum unit unit, const struct series *ksync,
	    const char *base_name, const struct series *base, struct goal goal);
/* A duration for a note: "850 ns", "12.3 µs", "4.10 ms". */
const char *fmt_ns(char *buf, size_t len, double ns);
void report_missing(const char *name, const char *why, struct goal goal);
/* A line printed under the table. */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- cases -------------------------------------------------------------- */

void bench_lock_uncontended(void);
void bench_lock_contended(void);
void bench_wake(void);
void bench_sem(void);
void bench_broadcast(void);
void bench_pipeline(void);
void bench_memory(void);
void bench_poll(void);
void bench_limiter(void);
void bench_queue(void);
void bench_revent(void);
void bench_barrier(void);
void bench_tracer(void);

/* Allocation counters (bench_mem.c); false in sanitizer builds. */
bool alloc_counting_available(void);
void alloc_counting(bool on);
void alloc_counts(uint64_t *calls, uint64_t *bytes);

#endif
