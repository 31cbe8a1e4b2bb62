/* SPDX-License-Identifier: MIT */
/*
 * Playing a kernel, or a sandbox, that lacks or refuses syscalls: a
 * seccomp filter built rule by rule, run in a forked child.
 *
 *   struct sandbox sb;
 *   sandbox_init(&sb);
 *   sandbox_refuse(&sb, SYS_futex_wait, ENOSYS);           // every call
 *   sandbox_refuse_addr(&sb, SYS_futex, page, 4096, EPERM); // calls on page
 *   run_sandboxed("what", &sb, child_fn, arg);              // in a child
 *
 * The filter is installed in the child before it calls anything, so the
 * library's once-per-process probes see the filtered kernel, and before it
 * makes threads, which inherit it. Refusing a syscall only for some
 * addresses lets glibc keep its own futexes while ksync's words are
 * refused. A child reports through its exit status (0 = every check
 * passed) and prints the failed check on stderr; cmocka's asserts cannot be
 * used there (they longjmp into the parent's runner state).
 */
#ifndef KSYNC_TEST_SANDBOX_H
#define KSYNC_TEST_SANDBOX_H

#include "harness.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* From 424 on, syscall numbers are the same on every architecture. */
#define NR_IO_URING_SETUP	425
#define NR_FUTEX_WAITV		449
#define NR_FUTEX_WAKE		454
#define NR_FUTEX_WAIT		455

struct sandbox {
	struct sock_filter prog[128];
	unsigned n;
};

#define SB_STMT(sb, code, k) \
	((sb)->prog[(sb)->n++] = (struct sock_filter)BPF_STMT((code), (k)))
#define SB_JUMP(sb, code, k, jt, jf) \
	((sb)->prog[(sb)->n++] = (struct sock_filter)BPF_JUMP((code), (k), (jt), (jf)))

/* The halves of argument @i (little-endian 64-bit targets). */
#define SB_ARG_LO(i)	((uint32_t)(offsetof(struct seccomp_data, args) + 8 * (i)))
#define SB_ARG_HI(i)	(SB_ARG_LO(i) + 4)

static inline void sandbox_init(struct sandbox *sb)
{
	sb->n = 0;
}

/* Every call of @nr fails with @err. */
static inline void sandbox_refuse(struct sandbox *sb, long nr, int err)
{
	SB_STMT(sb, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	SB_JUMP(sb, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 1);
	SB_STMT(sb, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (uint32_t)err);
}

/* Calls of @nr whose first argument lies in [@addr, @addr + @len) fail. */
static inline void sandbox_refuse_addr(struct sandbox *sb, long nr, const void *addr,
				       uint32_t len, int err)
{
	uint64_t a = (uintptr_t)addr;

	SB_STMT(sb, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	SB_JUMP(sb, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 6);
	SB_STMT(sb, BPF_LD | BPF_W | BPF_ABS, SB_ARG_HI(0));
	SB_JUMP(sb, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(a >> 32), 0, 4);
	SB_STMT(sb, BPF_LD | BPF_W | BPF_ABS, SB_ARG_LO(0));
	SB_STMT(sb, BPF_ALU | BPF_SUB | BPF_K, (uint32_t)a);	/* wraps if below */
	SB_JUMP(sb, BPF_JMP | BPF_JGE | BPF_K, len, 1, 0);
	SB_STMT(sb, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (uint32_t)err);
}

/* Calls of @nr whose argument @i equals @value (32 bits) fail. */
static inline void sandbox_refuse_arg(struct sandbox *sb, long nr, unsigned i, uint32_t value,
				      int err)
{
	SB_STMT(sb, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	SB_JUMP(sb, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 3);
	SB_STMT(sb, BPF_LD | BPF_W | BPF_ABS, SB_ARG_LO(i));
	SB_JUMP(sb, BPF_JMP | BPF_JEQ | BPF_K, value, 0, 1);
	SB_STMT(sb, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (uint32_t)err);
}

/* Install the filter in the calling thread (and so in its future threads
 * and exec'd programs). 0 or -1. */
static inline int sandbox_install(struct sandbox *sb)
{
	struct sock_fprog fprog;

	SB_STMT(sb, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	fprog.len = (unsigned short)sb->n;
	fprog.filter = sb->prog;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0)) {
		fprintf(stderr, "seccomp: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- checks inside a child ---------------------------------------------- */

#define CHECK(cond) do {							\
	if (!(cond)) {								\
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		return 1;							\
	}									\
} while (0)

#define CHECK_EQ(expr, want) do {						\
	long _got = (long)(expr), _want = (long)(want);				\
	if (_got != _want) {							\
		fprintf(stderr, "%s:%d: %s = %ld (%s), want %ld (%s)\n", __FILE__, __LINE__, \
			#expr, _got, _got < 0 ? strerror((int)-_got) : "", _want,	\
			_want < 0 ? strerror((int)-_want) : "");		\
		return 1;							\
	}									\
} while (0)

/* Poll @cond for up to ~10 s; a check that fails after that. */
#define CHECK_SOON(cond) do {							\
	int64_t _end = ksync_clock_ns(CLOCK_MONOTONIC) + 10000000000LL;		\
	while (!(cond) && ksync_clock_ns(CLOCK_MONOTONIC) < _end)		\
		sleep_ns(100000);						\
	CHECK(cond);								\
} while (0)

/*
 * Is thread @tid asleep in syscall @nr with @addr (unless NULL) as first
 * argument? The
 * kernel shows a syscall in /proc/.../syscall only while the thread sleeps
 * in it (a running or runnable thread reads "running"), so a spinning
 * thread never matches.
 */
static inline int blocked_in(pid_t tid, long nr, const void *addr)
{
	char path[64];
	unsigned long a = 0;
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%ld %lx", &n, &a) != 2)
		n = -1;
	fclose(f);
	return n == nr && (!addr || a == (uintptr_t)addr);
}

/* CPU time thread @t used over ~@window_ns of wall time, as a fraction of
 * that wall time (0: asleep throughout, ~1: spinning on a CPU of its own). */
static inline double cpu_share(pthread_t t, int64_t window_ns)
{
	struct timespec c0, c1;
	clockid_t clock;
	int64_t w0, w1;

	if (pthread_getcpuclockid(t, &clock))
		return -1;
	clock_gettime(clock, &c0);
	w0 = ksync_clock_ns(CLOCK_MONOTONIC);
	sleep_ns(window_ns);
	clock_gettime(clock, &c1);
	w1 = ksync_clock_ns(CLOCK_MONOTONIC);
	return ((c1.tv_sec - c0.tv_sec) * 1e9 + (c1.tv_nsec - c0.tv_nsec)) / (double)(w1 - w0);
}

/* A child's exit status for "cannot test this here": the test is skipped. */
#define CHILD_SKIP	77

/*
 * Run @fn(@arg) in a forked child under @sb (NULL: no filter); fail the
 * calling cmocka test if the child fails, crashes or hangs (SIGALRM after
 * 60 s), skip it if the child says CHILD_SKIP (after printing why).
 */
static inline void run_sandboxed(const char *what, struct sandbox *sb, int (*fn)(void *),
				 void *arg)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(60);
		if (sb && sandbox_install(sb))
			_exit(2);
		_exit(fn(arg));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fail_msg("%s: child killed by signal %d (%s)", what, WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == CHILD_SKIP)
		skip();
	if (WEXITSTATUS(status))
		fail_msg("%s: child exited with %d (see its stderr)", what, WEXITSTATUS(status));
}

#endif
