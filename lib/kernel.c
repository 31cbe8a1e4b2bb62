/* SPDX-License-Identifier: MIT */
/*
 * The kernel layer: futex2 syscalls, io_uring futex SQEs, feature probing,
 * clocks and the cached thread id. Nothing else in ksync talks to the kernel
 * directly.
 */
#include "internal.h"
#include "compat.h"

#include <liburing.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#if KSYNC_HAVE_SDT
/* Is-enabled semaphores of the USDT probes; a tracer increments them. */
#define KSYNC_SEMAPHORE(name) \
	__attribute__((section(".probes"), used)) unsigned short ksync_##name##_semaphore
KSYNC_SEMAPHORE(wait_begin);
KSYNC_SEMAPHORE(wait_end);
KSYNC_SEMAPHORE(wake);
#endif

static int ts_valid(const struct timespec *ts)
{
	return ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L;
}

int ksync_check_deadline(clockid_t clock, const struct timespec *deadline)
{
	if (clock != CLOCK_MONOTONIC && clock != CLOCK_REALTIME)
		return -EINVAL;
	if (deadline && !ts_valid(deadline))
		return -EINVAL;
	return 0;
}

KSYNC_API int64_t ksync_clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t ksync_mono_ns(void)
{
	return ksync_clock_ns(CLOCK_MONOTONIC);
}

KSYNC_API struct timespec *ksync_deadline_after(struct timespec *ts, clockid_t clock, int64_t ns)
{
	int64_t at = ksync_clock_ns(clock) + (ns > 0 ? ns : 0);

	ts->tv_sec = at / 1000000000;
	ts->tv_nsec = at % 1000000000;
	return ts;
}

bool ksync_deadline_passed(clockid_t clock, const struct timespec *deadline)
{
	if (!deadline)
		return false;
	return ksync_clock_ns(clock) >= (int64_t)deadline->tv_sec * 1000000000 + deadline->tv_nsec;
}

/* ---- thread id ---------------------------------------------------------- */

__thread uint32_t ksync_cached_tid __attribute__((tls_model("initial-exec")));

static int futex_hash_settled;	/* see settle_private_futex_hash() */

/* A forked child is a new, single-threaded process with a new thread id. */
static void reset_in_child(void)
{
	ksync_cached_tid = 0;
	futex_hash_settled = 0;
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void install_atfork(void)
{
	pthread_atfork(NULL, NULL, reset_in_child);
}

uint32_t ksync_fetch_tid(void)
{
	pthread_once(&atfork_once, install_atfork);
	ksync_cached_tid = (uint32_t)syscall(SYS_gettid);
	return ksync_cached_tid;
}

/* ---- futex2 syscalls ---------------------------------------------------- */

static int syscall_result(long r)
{
	return r < 0 ? -errno : (int)r;
}

KSYNC_API int ksync_futex_wait(uint32_t *word, uint32_t expected, uint32_t mask,
			       clockid_t clock, const struct timespec *deadline)
{
	struct timespec ts;
	int err = ksync_check_deadline(clock, deadline);

	if (err)
		return err;
	if (deadline)
		ts = *deadline; /* struct timespec == __kernel_timespec on 64-bit */
	return syscall_result(syscall(SYS_futex_wait, word, (unsigned long)expected,
				      (unsigned long)mask, KSYNC_FUTEX_FLAGS,
				      deadline ? &ts : NULL, clock));
}

KSYNC_API int ksync_futex_wake(uint32_t *word, uint32_t mask, int nr)
{
	if (nr < 0)
		return -EINVAL;
	return syscall_result(syscall(SYS_futex_wake, word, (unsigned long)mask, nr,
				      KSYNC_FUTEX_FLAGS));
}

KSYNC_API int ksync_futex_waitv(struct ksync_futex_waitv *waiters, unsigned nr,
				clockid_t clock, const struct timespec *deadline)
{
	int err = ksync_check_deadline(clock, deadline);

	if (err)
		return err;
	if (nr == 0 || nr > KSYNC_FUTEX_WAITV_MAX)
		return -EINVAL;
	return syscall_result(syscall(SYS_futex_waitv, waiters, nr, 0, deadline, clock));
}

/* ---- io_uring SQEs ------------------------------------------------------ */

static void prep_futex_sqe(struct io_uring_sqe *sqe, int opcode, uint64_t addr,
			   uint64_t addr2, uint64_t addr3, unsigned len, int fd,
			   uint64_t user_data)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = (uint8_t)opcode;
	sqe->fd = fd;		/* futex2 flags; futex_flags (rw_flags) stays 0 */
	sqe->addr = addr;
	sqe->off = addr2;	/* addr2 shares the union with off */
	sqe->addr3 = addr3;
	sqe->len = len;
	sqe->user_data = user_data;
}

KSYNC_API void ksync_prep_futex_wait(struct io_uring_sqe *sqe, uint32_t *word,
				     uint32_t expected, uint32_t mask, uint64_t user_data)
{
	prep_futex_sqe(sqe, IORING_OP_FUTEX_WAIT, (uintptr_t)word, expected, mask, 0,
		       KSYNC_FUTEX_FLAGS, user_data);
}

KSYNC_API void ksync_prep_futex_wake(struct io_uring_sqe *sqe, uint32_t *word, int nr,
				     uint32_t mask, uint64_t user_data)
{
	prep_futex_sqe(sqe, IORING_OP_FUTEX_WAKE, (uintptr_t)word, (uint64_t)nr, mask, 0,
		       KSYNC_FUTEX_FLAGS, user_data);
}

KSYNC_API void ksync_prep_futex_waitv(struct io_uring_sqe *sqe,
				      struct ksync_futex_waitv *waiters, unsigned nr,
				      uint64_t user_data)
{
	/* WAITV takes no flags in fd: each waiter carries its own. */
	prep_futex_sqe(sqe, IORING_OP_FUTEX_WAITV, (uintptr_t)waiters, 0, 0, nr, 0, user_data);
}

/* ---- feature probing ---------------------------------------------------- */

static unsigned features;
static int uring_error;	/* why KSYNC_FEAT_URING is missing */
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

#ifndef PR_FUTEX_HASH
#define PR_FUTEX_HASH			78
#define PR_FUTEX_HASH_GET_SLOTS		2
#endif

static void *nothing(void *arg)
{
	return arg;
}

/*
 * Since Linux 6.16 a process gets a private futex hash when it creates its
 * first thread. A FUTEX2_PRIVATE io_uring wait armed before that sits in the
 * global hash and is not moved: later private wakes never find it (a lost
 * wakeup seen on 6.18; tests/test_kernel.c reproduces it). A thread blocked
 * in futex_wait cannot meet this, since its process is busy being blocked;
 * only an io_uring wait can be pending in a single-threaded process.
 *
 * So before ksync arms its first io_uring wait, make sure the switch has
 * already happened: if the process has no private hash (0 slots), start and
 * join one thread that does nothing. If 0 slots was the application's own
 * choice (prctl PR_FUTEX_HASH_SET_SLOTS 0), the thread changes nothing and
 * no switch can happen later either. Kernels without PR_FUTEX_HASH have no
 * private hash and need nothing. Done once per process (a forked child
 * starts over: it is single-threaded again).
 */
static void settle_private_futex_hash(void)
{
	pthread_t t;

	if (likely(__atomic_load_n(&futex_hash_settled, __ATOMIC_ACQUIRE)))
		return;
	pthread_once(&atfork_once, install_atfork);
	if (prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS, 0, 0, 0) == 0 &&
	    pthread_create(&t, NULL, nothing, NULL) == 0)
		pthread_join(t, NULL);
	__atomic_store_n(&futex_hash_settled, 1, __ATOMIC_RELEASE);
}

static void probe_features(void)
{
	uint32_t dummy = 0;
	struct io_uring ring;
	struct io_uring_probe *probe;
	int r;

	/* Waking nobody is harmless and tells whether the syscall exists. */
	if (ksync_futex_wake(&dummy, KSYNC_FUTEX_MASK_ANY, 0) >= 0)
		features |= KSYNC_FEAT_FUTEX2;

	r = io_uring_queue_init(2, &ring, 0);
	if (r < 0) {
		uring_error = r == -ENOSYS ? -ENOSYS : -EPERM;
		return;
	}
	features |= KSYNC_FEAT_URING;
	probe = io_uring_get_probe_ring(&ring);
	if (probe && io_uring_opcode_supported(probe, IORING_OP_FUTEX_WAIT) &&
	    io_uring_opcode_supported(probe, IORING_OP_FUTEX_WAKE) &&
	    io_uring_opcode_supported(probe, IORING_OP_FUTEX_WAITV))
		features |= KSYNC_FEAT_URING_FUTEX;
	if (probe)
		io_uring_free_probe(probe);
	io_uring_queue_exit(&ring);
}

KSYNC_API unsigned ksync_features(void)
{
	pthread_once(&features_once, probe_features);
	if (features & KSYNC_FEAT_URING_FUTEX)
		settle_private_futex_hash();
	return features;
}

KSYNC_API int ksync_require(unsigned mask)
{
	unsigned have = ksync_features();

	if ((mask & KSYNC_FEAT_FUTEX2) && !(have & KSYNC_FEAT_FUTEX2))
		return -ENOSYS;
	if ((mask & (KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX)) && !(have & KSYNC_FEAT_URING))
		return uring_error ? uring_error : -EPERM;
	if ((mask & KSYNC_FEAT_URING_FUTEX) && !(have & KSYNC_FEAT_URING_FUTEX))
		return -EOPNOTSUPP;
	return 0;
}

int ksync_require_uring_futex(void)
{
	return ksync_require(KSYNC_FEAT_FUTEX2 | KSYNC_FEAT_URING_FUTEX);
}
