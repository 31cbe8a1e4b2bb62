/* SPDX-License-Identifier: MIT */
/*
 * CapacityLimiter case.
 *
 * 9. Uncontended borrow+return in a tight loop on one thread, against the
 *    Semaphore's acquire+release (the same loop on a ksync_sem): what the
 *    borrower identity costs. Runs alternate, so noise hits both alike;
 *    the goal is the ratio of medians. A second row borrows as a token
 *    (a task's identity, kept in the limiter's slots: one more CAS).
 */
#include "bench.h"

static struct ksync_sem ksem __attribute__((aligned(64)));
static struct ksync_limiter klim __attribute__((aligned(64)));
static struct ksync_limiter_slot kslots[16] __attribute__((aligned(64)));

/* ns per pair. noinline keeps the loops alike. */
static __attribute__((noinline)) double loop_sem(long n)
{
	int64_t t0 = now_ns();

	for (long i = 0; i < n; i++) {
		check(ksync_sem_acquire(&ksem));
		check(ksync_sem_release(&ksem, 1));
	}
	return (double)(now_ns() - t0) / (double)n;
}

static __attribute__((noinline)) double loop_limiter(long n)
{
	int64_t t0 = now_ns();

	for (long i = 0; i < n; i++) {
		check(ksync_limiter_acquire(&klim));
		check(ksync_limiter_release(&klim));
	}
	return (double)(now_ns() - t0) / (double)n;
}

static __attribute__((noinline)) double loop_token(long n)
{
	int64_t t0 = now_ns();

	for (long i = 0; i < n; i++) {
		check(ksync_limiter_try_task(&klim, 12345));
		check(ksync_limiter_release_task(&klim, 12345));
	}
	return (double)(now_ns() - t0) / (double)n;
}

void bench_limiter(void)
{
	struct series l = { 0 }, s = { 0 }, t = { 0 };
	long n = scaled(2000000, 100000);

	check(ksync_sem_init(&ksem, 8, 0, 0));
	check(ksync_limiter_init(&klim, 8, kslots, 16, 0));
	/* Warm up: cached tid, page faults, CPU frequency. */
	loop_sem(n / 4);
	loop_limiter(n / 4);
	loop_token(n / 4);
	for (int r = 0; r < cfg.runs; r++) {
		series_add(&l, loop_limiter(n));
		series_add(&s, loop_sem(n));
		series_add(&t, loop_token(n));
	}
	report("9 uncontended limiter: borrow+return (thread)", U_NS, &l, "ksync_sem", &s,
	       (struct goal){ G_RATIO_LE, 1.2, "≤ 1.2x Semaphore" });
	report("9 uncontended limiter: borrow+return (token)", U_NS, &t, "ksync_sem", &s, NO_GOAL);
	note("9: %ld pairs per run on one thread, limiter of 8 with 16 slots; a thread keeps "
	     "its borrow in its own thread-local table, a token in a slot of the limiter.", n);
}
