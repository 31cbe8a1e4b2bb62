/* SPDX-License-Identifier: MIT */
/*
 * Pausing a thread at a named test point of the library (lib/testpoint.h),
 * to force one interleaving of a protocol. For tests linked with the
 * hooked library (ksync_hooked_dep in tests/meson.build).
 *
 *   set_role(1);                          // in the thread to be paused
 *   int p = arm(1, "sem.wait.park");      // pause role 1 at its next visit
 *   wait_arrived(p);                      // it is there now, stopped
 *   ... make other threads act ...
 *   resume(p);                            // let it go on
 *
 * Waiting is by polling with short sleeps, bounded at ~10 s (then the test
 * fails): no timing decides an outcome, the bound only stops a hang.
 */
#ifndef KSYNC_TEST_TESTPOINT_H
#define KSYNC_TEST_TESTPOINT_H

#include "harness.h"
#include <stdio.h>
#include <sys/syscall.h>

enum { ARM_FREE, ARM_ARMED, ARM_ARRIVED, ARM_RESUMED };

struct arm {
	const char *name;
	int role;
	int state;
};

static struct arm arms[16];
static __thread int my_role;

static inline void set_role(int role)
{
	my_role = role;
}

void ksync_test_point(const char *name, const void *prim)
{
	(void)prim;
	if (!my_role)
		return;
	for (unsigned i = 0; i < sizeof(arms) / sizeof(arms[0]); i++) {
		struct arm *a = &arms[i];

		/* name and role are written before the state turns ARMED */
		if (__atomic_load_n(&a->state, __ATOMIC_ACQUIRE) != ARM_ARMED ||
		    a->role != my_role || strcmp(a->name, name))
			continue;
		__atomic_store_n(&a->state, ARM_ARRIVED, __ATOMIC_RELEASE);
		while (__atomic_load_n(&a->state, __ATOMIC_ACQUIRE) != ARM_RESUMED)
			sleep_ns(50000);
		__atomic_store_n(&a->state, ARM_FREE, __ATOMIC_RELEASE);
		return;
	}
}

static inline int arm(int role, const char *name)
{
	for (unsigned i = 0; i < sizeof(arms) / sizeof(arms[0]); i++) {
		if (__atomic_load_n(&arms[i].state, __ATOMIC_ACQUIRE) != ARM_FREE)
			continue;
		arms[i].name = name;
		arms[i].role = role;
		__atomic_store_n(&arms[i].state, ARM_ARMED, __ATOMIC_RELEASE);
		return (int)i;
	}
	fail_msg("no free test point slot");
	return -1;
}

static inline void wait_arrived(int id)
{
	wait_until(__atomic_load_n(&arms[id].state, __ATOMIC_ACQUIRE) == ARM_ARRIVED);
}

static inline void resume(int id)
{
	__atomic_store_n(&arms[id].state, ARM_RESUMED, __ATOMIC_RELEASE);
	wait_until(__atomic_load_n(&arms[id].state, __ATOMIC_ACQUIRE) == ARM_FREE);
}

/* The calling thread's id, for asleep(). */
static inline pid_t self_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/*
 * Is thread @tid asleep inside syscall @nr (or @nr2, if non-negative)?
 * /proc shows the syscall a blocked thread is in, and 'S' once the
 * scheduler has put it to sleep, i.e. after a futex wait has queued it.
 */
static inline bool asleep_in(pid_t tid, long nr, long nr2)
{
	char path[64], buf[512], *p;
	long cur;
	FILE *f;
	bool sleeping;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return false;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (!p || !(p = strrchr(buf, ')')))
		return false;
	sleeping = p[2] == 'S';
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return false;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (!p || sscanf(buf, "%ld", &cur) != 1)
		return false;
	return sleeping && (cur == nr || (nr2 >= 0 && cur == nr2));
}

/* A thread asleep in a futex wait (futex2 or the classic syscall). */
#define wait_futex_asleep(tid) wait_until(asleep_in((tid), 455, SYS_futex))
/* A loop thread asleep waiting for CQEs. */
#define wait_ring_asleep(tid) wait_until(asleep_in((tid), SYS_io_uring_enter, -1))

#endif
