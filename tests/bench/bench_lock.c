/* SPDX-License-Identifier: MIT */
/*
 * Lock cases.
 *
 * 1. Uncontended acquire+release in a tight loop on one thread: ksync vs
 *    pthread_mutex vs a bare CAS-acquire + exchange-release, which is the
 *    least any lock with a one-word fast path can cost (two atomic RMWs).
 *
 * 2. Contended: 2 and 4 threads hammer one lock with a short critical
 *    section and a little work outside it. Throughput and the wait of each
 *    acquisition (time inside acquire), ksync vs pthread_mutex.
 *
 *    Thread i is pinned to usable CPU i mod ncpu. Left to the scheduler, two
 *    threads on this kind of machine often share one CPU for a while and
 *    then run in turn, uncontended, which measures placement luck instead
 *    of the lock. Pinned, they really contend across CPUs.
 *
 *    A bound on the max wait only means something next to what the machine
 *    does to a thread that takes no lock at all, so each run also measures
 *    the longest gap seen by the same number of pinned threads that only
 *    read the clock ("stall"): a waiter cannot beat a holder that was
 *    descheduled that long.
 */
#include "bench.h"

#include <unistd.h>

/* Each lock on its own cache line, so the cases measure the lock only. */
static struct ksync_lock klock __attribute__((aligned(64)));
static pthread_mutex_t plock __attribute__((aligned(64))) = PTHREAD_MUTEX_INITIALIZER;
static uint32_t floor_word __attribute__((aligned(64)));

enum kind { K_KSYNC, K_PTHREAD, K_FLOOR };

static inline void floor_lock(uint32_t *w)
{
	uint32_t z;

	do {
		z = 0;
	} while (!__atomic_compare_exchange_n(w, &z, 1, false, __ATOMIC_ACQUIRE,
					      __ATOMIC_RELAXED));
}

static __attribute__((noinline, cold)) void floor_wake(uint32_t *w)
{
	/* Never called: nobody waits in the uncontended loop. */
	die("floor lock %p contended", (void *)w);
}

/*
 * A futex lock's release must learn whether someone waits, so it is an
 * exchange whose old value is looked at. (An exchange whose result is
 * ignored is just a store, and clang emits it as one.)
 */
static inline void floor_unlock(uint32_t *w)
{
	if (__builtin_expect(__atomic_exchange_n(w, 0, __ATOMIC_RELEASE) != 1, 0))
		floor_wake(w);
}

/* ns per acquire+release pair. noinline keeps the three loops alike. */
static __attribute__((noinline)) double loop_ksync(long n)
{
	int64_t t0 = now_ns();

	for (long i = 0; i < n; i++) {
		check(ksync_lock_acquire(&klock));
		ksync_lock_release(&klock);
	}
	return (double)(now_ns() - t0) / (double)n;
}

static __attribute__((noinline)) double loop_pthread(long n)
{
	int64_t t0 = now_ns();

	for (long i = 0; i < n; i++) {
		pthread_mutex_lock(&plock);
		pthread_mutex_unlock(&plock);
	}
	return (double)(now_ns() - t0) / (double)n;
}

static __attribute__((noinline)) double loop_floor(long n)
{
	int64_t t0 = now_ns();

	for (long i = 0; i < n; i++) {
		floor_lock(&floor_word);
		floor_unlock(&floor_word);
	}
	return (double)(now_ns() - t0) / (double)n;
}

void bench_lock_uncontended(void)
{
	struct series k = { 0 }, p = { 0 }, f = { 0 };
	long n = scaled(2000000, 100000);

	ksync_lock_init(&klock, 0);
	/* Warm up: cached tid, page faults, CPU frequency. */
	loop_ksync(n / 4);
	loop_pthread(n / 4);
	loop_floor(n / 4);
	for (int r = 0; r < cfg.runs; r++) {
		series_add(&k, loop_ksync(n));
		series_add(&p, loop_pthread(n));
		series_add(&f, loop_floor(n));
	}
	report("1 uncontended lock: acquire+release", U_NS, &k, "pthread_mutex", &p,
	       (struct goal){ G_RATIO_LE, 0.8, "≤ 0.8x pthread" });
	report("1 uncontended lock: vs physical floor", U_NS, &k, "CAS+xchg", &f, NO_GOAL);
	note("1: %ld acquire+release pairs per run on one thread; ksync is linked "
	     "statically (direct calls), pthread through the PLT; the floor is an inline "
	     "CAS acquire and an exchange release that checks the old value, the least "
	     "a futex lock whose word records waiters can do.", n);
}

/* ---- contended ---------------------------------------------------------- */

#define MAX_THREADS 4

/* What the lock protects: one cache line that every holder writes. */
static struct {
	uint64_t v[8];
} shared __attribute__((aligned(64)));

struct worker {
	pthread_t t;
	enum kind kind;
	uint64_t ops;
	uint64_t seed;
	struct hist wait;
} __attribute__((aligned(64)));

static struct worker workers[MAX_THREADS];
static pthread_barrier_t gate;
static int stop;

static void pin(int i)
{
	int n = CPU_COUNT(&cpus_allowed);
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(usable_cpu(i % n), &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
		die("pthread_setaffinity_np");
}

/* The critical section: a read-modify-write of the protected line. */
static inline void critical(uint64_t x)
{
	for (int i = 0; i < 8; i++)
		shared.v[i] += x + (uint64_t)i;
}

/* Work between acquisitions (~50 ns), so the lock is not re-taken at once. */
static inline void think(uint64_t *seed)
{
	uint32_t x = 0;

	for (int i = 0; i < 32; i++)
		x += rnd(seed);
	__asm__ __volatile__("" : : "r"(x));
}

static void *contend(void *arg)
{
	struct worker *w = arg;

	pin((int)(w - workers));
	pthread_barrier_wait(&gate);
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		int64_t t0 = now_ns(), t1;

		if (w->kind == K_KSYNC)
			check(ksync_lock_acquire(&klock));
		else
			pthread_mutex_lock(&plock);
		t1 = now_ns();
		critical(w->ops);
		if (w->kind == K_KSYNC)
			ksync_lock_release(&klock);
		else
			pthread_mutex_unlock(&plock);
		hist_add(&w->wait, t1 - t0);
		w->ops++;
		think(&w->seed);
	}
	return NULL;
}

/* No lock: the longest gap between two clock reads is this thread's stall. */
static void *stall(void *arg)
{
	struct worker *w = arg;
	int64_t last;

	pin((int)(w - workers));
	pthread_barrier_wait(&gate);
	last = now_ns();
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		int64_t t = now_ns();

		hist_add(&w->wait, t - last);
		last = t;
	}
	return NULL;
}

struct contended_run {
	double ops_per_s;
	struct hist wait;
};

/* K_FLOOR here means: no lock, measure stalls. */
static void run_contended(enum kind kind, int nthreads, int64_t duration,
			  struct contended_run *out)
{
	int64_t t0, t1;
	uint64_t ops = 0;

	poke(stop, 0);
	pthread_barrier_init(&gate, NULL, (unsigned)nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		struct worker *w = &workers[i];

		w->kind = kind;
		w->ops = 0;
		w->seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
		hist_reset(&w->wait);
		w->t = spawn(kind == K_FLOOR ? stall : contend, w);
	}
	pthread_barrier_wait(&gate);
	t0 = now_ns();
	sleep_ns(duration);
	poke(stop, 1);
	t1 = now_ns();
	hist_reset(&out->wait);
	for (int i = 0; i < nthreads; i++) {
		join(workers[i].t);
		ops += workers[i].ops;
		hist_merge(&out->wait, &workers[i].wait);
	}
	pthread_barrier_destroy(&gate);
	out->ops_per_s = (double)ops / ((double)(t1 - t0) / 1e9);
}

void bench_lock_contended(void)
{
	static const int threads[] = { 2, 4 };
	int64_t duration = scaled(200, 50) * 1000000;
	static struct contended_run kr, pr, sr;

	ksync_lock_init(&klock, 0);
	for (unsigned ti = 0; ti < sizeof(threads) / sizeof(threads[0]); ti++) {
		int n = threads[ti];
		struct series kops = { 0 }, pops = { 0 }, k50 = { 0 }, p50 = { 0 };
		struct series k999 = { 0 }, p999 = { 0 }, kmax = { 0 }, pmax = { 0 };
		struct series smax = { 0 };
		char name[96];

		for (int r = 0; r < cfg.runs; r++) {
			run_contended(K_KSYNC, n, duration, &kr);
			run_contended(K_PTHREAD, n, duration, &pr);
			run_contended(K_FLOOR, n, duration, &sr);
			series_add(&kops, kr.ops_per_s);
			series_add(&pops, pr.ops_per_s);
			series_add(&k50, hist_pct(&kr.wait, 0.5));
			series_add(&p50, hist_pct(&pr.wait, 0.5));
			series_add(&k999, hist_pct(&kr.wait, 0.999));
			series_add(&p999, hist_pct(&pr.wait, 0.999));
			series_add(&kmax, (double)kr.wait.max);
			series_add(&pmax, (double)pr.wait.max);
			series_add(&smax, (double)sr.wait.max);
		}
		if (ksync_lock_destroy(&klock))
			die("lock left held or with waiters");
		snprintf(name, sizeof(name), "2 contended lock, %d threads: throughput", n);
		report(name, U_OPS, &kops, "pthread_mutex", &pops,
		       (struct goal){ G_RATIO_GE, 1.5, "≥ 1.5x pthread" });
		snprintf(name, sizeof(name), "2 contended lock, %d threads: p50 wait", n);
		report(name, U_NS, &k50, "pthread_mutex", &p50, NO_GOAL);
		snprintf(name, sizeof(name), "2 contended lock, %d threads: p99.9 wait", n);
		report(name, U_NS, &k999, "pthread_mutex", &p999, NO_GOAL);
		snprintf(name, sizeof(name), "2 contended lock, %d threads: max wait", n);
		report(name, U_NS, &kmax, "pthread_mutex", &pmax,
		       (struct goal){ G_VALUE_LE, 1e6, "≤ 1 ms (every run)" });
		snprintf(name, sizeof(name), "2 contended lock, %d threads: max wait vs stall", n);
		report(name, U_NS, &kmax, "no lock, max stall", &smax, NO_GOAL);
	}
	note("2: wait = time spent in acquire, every acquisition timestamped (both locks); "
	     "critical section = 8 writes to one shared line, ~50 ns of work between "
	     "acquisitions; %lld ms per run; thread i pinned to CPU i mod %d. \"Stall\" = "
	     "longest gap between clock reads of as many pinned threads taking no lock, "
	     "in the same runs: what the machine (VM, other load, time slices) imposes.",
	     (long long)(duration / 1000000), CPU_COUNT(&cpus_allowed));
}
