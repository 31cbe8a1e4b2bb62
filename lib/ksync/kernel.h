/* SPDX-License-Identifier: MIT */
/*
 * ksync kernel layer: futex syscalls with absolute deadlines, io_uring SQE
 * preparers for the futex opcodes, runtime feature detection, clocks.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure; none sets errno.
 *
 * Kernels. The thread world (blocking waits) needs only the classic
 * futex(2) with FUTEX_WAIT_BITSET (Linux 2.6.29), and is supported from
 * Linux 4.14, the first with MADV_WIPEONFORK, by which ksync tells a forked
 * child from its parent without atfork handlers (before 4.14 a child made
 * by fork() is still handled, one made by _Fork() or a raw clone is not).
 * It uses futex2 (futex_wait/futex_wake, 6.7) where the kernel offers it
 * and falls back to futex(2), for good, the first time futex2 is missing
 * (ENOSYS) or refused (EPERM, e.g. by seccomp). ksync_event_wait_any on
 * more than one event needs futex_waitv (5.16). The async world needs
 * io_uring's futex opcodes (6.7). ksync_features() says what this kernel
 * offers.
 */
#ifndef KSYNC_KERNEL_H
#define KSYNC_KERNEL_H

#include <stdint.h>
#include <sys/types.h>	/* clockid_t (<time.h> has it only for POSIX) */
#include <time.h>		/* struct timespec */

/*
 * KSYNC_MUST_CHECK marks the calls whose failure means the caller does not
 * hold what it asked for (a lock, a permit, a set event, a started op): the
 * compiler warns when the result is ignored. Define it empty before
 * including ksync headers to turn that off.
 */
#ifndef KSYNC_MUST_CHECK
#if defined(__GNUC__) || defined(__clang__)
#define KSYNC_MUST_CHECK __attribute__((__warn_unused_result__))
#else
#define KSYNC_MUST_CHECK
#endif
#endif

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
#define KSYNC_FEAT_FUTEX2	(1u << 0) /* futex_wait + futex_wake syscalls (6.7) */
#define KSYNC_FEAT_URING	(1u << 1) /* io_uring_setup works (not disabled by sysctl) */
#define KSYNC_FEAT_URING_FUTEX	(1u << 2) /* IORING_OP_FUTEX_WAIT, _WAKE and _WAITV (6.7) */
#define KSYNC_FEAT_FUTEX_WAITV	(1u << 3) /* futex_waitv syscall (5.16) */
#define KSYNC_FEAT_FUTEX	(1u << 4) /* classic futex(2): threads can block */

/*
 * ksync_features - what this kernel offers ksync: a mask of KSYNC_FEAT_*.
 *
 * Thread-safe. Answers that cannot change while the process lives (a
 * syscall exists, or is refused) are cached after the first call; a
 * transient failure to set up a ring (no memory, no free descriptor) is
 * not, and the next call probes again.
 */
unsigned ksync_features(void);

/*
 * ksync_require - check that every feature in @mask is available.
 *
 * Returns 0, or why a feature is missing, as the kernel said it:
 *   -ENOSYS      the syscall does not exist (futex2: older than 6.7;
 *                futex_waitv: older than 5.16; io_uring: built without)
 *   -EPERM       refused: io_uring disabled (sysctl kernel.io_uring_disabled)
 *                or a seccomp filter
 *   -EOPNOTSUPP  io_uring lacks the futex opcodes (older than 6.7)
 *   -ENOMEM, -EMFILE, -ENFILE...  io_uring could not be set up just now
 *                (not cached: a later call tries again)
 *   -EINVAL      @mask has a bit that is not a KSYNC_FEAT_*
 *
 * The blocking world needs KSYNC_FEAT_FUTEX; async ops and the drivers need
 * KSYNC_FEAT_FUTEX | KSYNC_FEAT_URING_FUTEX (and check it themselves).
 */
KSYNC_MUST_CHECK int ksync_require(unsigned mask);

/*
 * ksync_futex_wait - sleep while *@word == @expected.
 * @mask:     futex2 bitset (KSYNC_FUTEX_MASK_ANY unless you use bitsets)
 * @clock:    CLOCK_MONOTONIC or CLOCK_REALTIME
 * @deadline: absolute time on @clock, or NULL to wait forever; any tv_sec
 *            >= 0 works (INT64_MAX is "never")
 *
 * Uses futex_wait, or FUTEX_WAIT_BITSET of futex(2) where futex2 is
 * missing or refused (see above).
 *
 * Returns 0 when woken (possibly spuriously), or:
 *   -EAGAIN     *word != expected when the kernel looked
 *   -ETIMEDOUT  the deadline passed (also when it already had)
 *   -EINTR      a signal interrupted the wait
 *   -EINVAL     bad clock, mask 0, or deadline with tv_sec < 0 or tv_nsec
 *               outside [0, 1e9)
 *   -ENOSYS, -EPERM  the kernel refused futex2 and futex(2) alike
 */
KSYNC_MUST_CHECK int ksync_futex_wait(uint32_t *word, uint32_t expected, uint32_t mask,
				      clockid_t clock, const struct timespec *deadline);

/*
 * ksync_futex_wake - wake up to @nr waiters of @word whose mask meets @mask,
 * threads and io_uring requests alike (futex_wake, or FUTEX_WAKE_BITSET).
 *
 * Returns the number woken (>= 0), or -EINVAL (nr < 0 or mask 0), or
 * -ENOSYS / -EPERM (no futex syscall allowed).
 */
int ksync_futex_wake(uint32_t *word, uint32_t mask, int nr);

/*
 * ksync_futex_waitv - sleep until any of @nr words differs from its value.
 * @nr: 1 .. KSYNC_FUTEX_WAITV_MAX
 *
 * Returns the index of a word that was woken, or -EAGAIN (some word already
 * differed), -ETIMEDOUT, -EINTR, -EINVAL, or -ENOSYS / -EPERM: futex_waitv
 * (Linux 5.16) has no futex(2) equivalent, so there is no fallback.
 *
 * Note: a wake that races with another word's wake (or with the timeout) is
 * still counted by futex_wake() although only one index is reported.
 * Callers must treat every watched word as possibly woken; ksync only
 * multi-waits on Events, whose state is sticky, for that reason.
 */
KSYNC_MUST_CHECK int ksync_futex_waitv(struct ksync_futex_waitv *waiters, unsigned nr,
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

/*
 * ksync_clock_ns - read @clock (any clock clock_gettime() accepts) in
 * nanoseconds; CLOCK_MONOTONIC and CLOCK_REALTIME are the time bases of
 * deadlines. Returns the time (>= 0), or -EINVAL for a clock the kernel
 * does not know.
 */
int64_t ksync_clock_ns(clockid_t clock);

/*
 * ksync_deadline_after - set @ts to "now + @ns" on @clock, an absolute
 * deadline for the *_until calls. @ns < 0 counts as 0 (a deadline that has
 * passed: the call tries once). Any @ns works, INT64_MAX included.
 * Returns 0, or -EINVAL if @clock is not CLOCK_MONOTONIC or CLOCK_REALTIME
 * or @ts is NULL; then *@ts is left malformed (tv_nsec -1), so a caller who
 * ignores the error gets -EINVAL from the wait it passes @ts to.
 */
int ksync_deadline_after(struct timespec *ts, clockid_t clock, int64_t ns);

#ifdef __cplusplus
}
#endif
#endif
