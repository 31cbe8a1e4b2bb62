/* SPDX-License-Identifier: MIT */
/*
 * ksync kernel layer: futex2 syscalls with absolute deadlines, io_uring SQE
 * preparers for the futex opcodes, and runtime feature detection.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure; none sets errno.
 */
#ifndef KSYNC_KERNEL_H
#define KSYNC_KERNEL_H

#include <stdint.h>
#include <sys/types.h>	/* clockid_t (<time.h> has it only for POSIX) */
#include <time.h>		/* struct timespec */

#ifdef __cplusplus
extern "C" {
#endif

struct io_uring_sqe;

/* futex2 flags (include/uapi/linux/futex.h, Linux 6.7+). */
#define KSYNC_FUTEX2_SIZE_U32	0x02u
#define KSYNC_FUTEX2_PRIVATE	128u
/* What ksync passes for an in-process 32-bit futex. */
#define KSYNC_FUTEX_FLAGS	(KSYNC_FUTEX2_SIZE_U32 | KSYNC_FUTEX2_PRIVATE)
/* Mask that matches every waiter. Must fit in 32 bits. */
#define KSYNC_FUTEX_MASK_ANY	0xffffffffu
/* Most futexes one futex_waitv call or FUTEX_WAITV request may watch. */
#define KSYNC_FUTEX_WAITV_MAX	128

/* Same layout as the kernel's struct futex_waitv. */
struct ksync_futex_waitv {
	uint64_t val;		/* expected value */
	uint64_t uaddr;		/* address of the 32-bit word */
	uint32_t flags;		/* KSYNC_FUTEX_FLAGS */
	uint32_t __reserved;	/* must be 0 */
};

/* Features, as reported by ksync_features(). */
#define KSYNC_FEAT_FUTEX2	(1u << 0) /* futex_wait/futex_wake/futex_waitv syscalls */
#define KSYNC_FEAT_URING	(1u << 1) /* io_uring_setup works (not disabled by sysctl) */
#define KSYNC_FEAT_URING_FUTEX	(1u << 2) /* IORING_OP_FUTEX_WAIT, _WAKE and _WAITV */

/*
 * ksync_features - what this kernel offers ksync.
 *
 * Probed once per process (thread-safe) and cached. Returns a mask of
 * KSYNC_FEAT_* bits.
 */
unsigned ksync_features(void);

/*
 * ksync_require - check that every feature in @mask is available.
 *
 * Returns 0, or:
 *   -ENOSYS      futex2 syscalls are missing (kernel older than 6.7)
 *   -EPERM       io_uring is disabled (sysctl kernel.io_uring_disabled) or
 *                forbidden to this process
 *   -EOPNOTSUPP  io_uring lacks the futex opcodes (kernel older than 6.7)
 */
int ksync_require(unsigned mask);

/*
 * ksync_futex_wait - sleep while *@word == @expected.
 * @mask:     futex2 bitset (KSYNC_FUTEX_MASK_ANY unless you use bitsets)
 * @clock:    CLOCK_MONOTONIC or CLOCK_REALTIME
 * @deadline: absolute time on @clock, or NULL to wait forever
 *
 * Returns 0 when woken (possibly spuriously), or:
 *   -EAGAIN     *word != expected when the kernel looked
 *   -ETIMEDOUT  the deadline passed (also when it already had)
 *   -EINTR      a signal interrupted the wait
 *   -EINVAL     bad clock, mask 0, or deadline with tv_nsec outside [0, 1e9)
 *   -ENOSYS     no futex2 syscalls
 */
int ksync_futex_wait(uint32_t *word, uint32_t expected, uint32_t mask,
		     clockid_t clock, const struct timespec *deadline);

/*
 * ksync_futex_wake - wake up to @nr waiters of @word whose mask meets @mask,
 * threads and io_uring requests alike.
 *
 * Returns the number woken (>= 0), or -EINVAL (nr < 0 or mask 0) or -ENOSYS.
 */
int ksync_futex_wake(uint32_t *word, uint32_t mask, int nr);

/*
 * ksync_futex_waitv - sleep until any of @nr words differs from its value.
 * @nr: 1 .. KSYNC_FUTEX_WAITV_MAX
 *
 * Returns the index of a word that was woken, or -EAGAIN (some word already
 * differed), -ETIMEDOUT, -EINTR, -EINVAL, -ENOSYS.
 *
 * Note: a wake that races with another word's wake (or with the timeout) is
 * still counted by futex_wake() although only one index is reported.
 * Callers must treat every watched word as possibly woken; ksync only
 * multi-waits on Events, whose state is sticky, for that reason.
 */
int ksync_futex_waitv(struct ksync_futex_waitv *waiters, unsigned nr,
		      clockid_t clock, const struct timespec *deadline);

/*
 * SQE preparers. They fill every field of @sqe (no prior memset needed) and
 * set its user_data. The futex2 flags go in sqe->fd, as the kernel wants;
 * the SQE's own futex_flags field stays 0.
 *
 * Call ksync_features() (or ksync_require()) once before arming the first
 * FUTEX_WAIT/WAITV of a process: besides probing, it makes sure the
 * process's private futex hash is in place (Linux 6.16+ switches hashes at
 * the first pthread_create and strands private io_uring waits armed before
 * it). ksync's own ops and ksync_loop do this themselves.
 */
void ksync_prep_futex_wait(struct io_uring_sqe *sqe, uint32_t *word,
			   uint32_t expected, uint32_t mask, uint64_t user_data);
void ksync_prep_futex_wake(struct io_uring_sqe *sqe, uint32_t *word, int nr,
			   uint32_t mask, uint64_t user_data);
/* The CQE's res is the index that woke. @waiters must stay valid until then. */
void ksync_prep_futex_waitv(struct io_uring_sqe *sqe,
			    struct ksync_futex_waitv *waiters, unsigned nr,
			    uint64_t user_data);

/* Reads @clock as nanoseconds; the time base of deadlines. */
int64_t ksync_clock_ns(clockid_t clock);

/*
 * ksync_deadline_after - fill @ts with "now + @ns" on @clock.
 * Returns @ts, for use as an argument.
 */
struct timespec *ksync_deadline_after(struct timespec *ts, clockid_t clock, int64_t ns);

#ifdef __cplusplus
}
#endif
#endif
