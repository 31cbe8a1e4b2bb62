/* SPDX-License-Identifier: MIT */
/*
 * The kernel layer: futex syscalls (futex2, or the classic futex(2) where
 * futex2 is missing or refused), io_uring futex SQEs, feature probing,
 * clocks, and the per-process state a forked child must not inherit (thread
 * ids, the futex hash). Nothing else in ksync talks to the kernel directly.
 */
#include "internal.h"
#include "compat.h"

#include <liburing.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#if KSYNC_HAVE_SDT
/* Is-enabled semaphores of the USDT probes; a tracer increments them. */
#define KSYNC_SEMAPHORE(name) \
	__attribute__((section(".probes"), used)) unsigned short ksync_##name##_semaphore
KSYNC_SEMAPHORE(wait_begin);
KSYNC_SEMAPHORE(wait_end);
KSYNC_SEMAPHORE(wake_begin);
KSYNC_SEMAPHORE(wake);
KSYNC_SEMAPHORE(op_start);
KSYNC_SEMAPHORE(name);
#endif

int ksync_wake_traced(uint32_t *word, uint32_t fflags, uint32_t mask, void *prim, int kind,
		      int nr)
{
	int n;

	trace_wake_begin(prim, kind);
	n = ksync_futex_wake_flags(word, mask, nr, fflags);
	trace_wake(prim, kind, n);
	return n;
}

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

	if (clock_gettime(clock, &ts))
		return -EINVAL;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t ksync_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

KSYNC_API int ksync_deadline_after(struct timespec *ts, clockid_t clock, int64_t ns)
{
	struct timespec now;

	if (!ts)
		return -EINVAL;
	if ((clock != CLOCK_MONOTONIC && clock != CLOCK_REALTIME) || clock_gettime(clock, &now)) {
		/* Malformed on purpose: every ksync wait refuses it (-EINVAL),
		 * so a caller that ignored this error cannot wait on garbage. */
		ts->tv_sec = 0;
		ts->tv_nsec = -1;
		return -EINVAL;
	}
	if (ns < 0)
		ns = 0;
	/* In (s, ns) form, so no ns value can overflow. */
	ts->tv_sec = now.tv_sec + ns / 1000000000;
	ts->tv_nsec = now.tv_nsec + ns % 1000000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
	return 0;
}

bool ksync_deadline_passed(clockid_t clock, const struct timespec *deadline)
{
	struct timespec now;

	if (!deadline)
		return false;
	clock_gettime(clock, &now);
	/* Compared as (s, ns) pairs: any tv_sec ksync_check_deadline accepts,
	 * up to INT64_MAX, is a deadline that has not passed, whereas its
	 * value in ns would overflow from the year 2262 on. */
	return now.tv_sec > deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* ---- per-process state: thread ids, futex hash -------------------------- */

/*
 * What a forked child must not inherit lives in one private anonymous
 * region marked MADV_WIPEONFORK, so the kernel gives any child zeroes
 * there, however it was made: fork(), _Fork(), a raw clone or fork
 * syscall. None of these paths needs an atfork handler. Each thread caches
 * its id in a slot of the region and reaches the slot through a TLS
 * pointer. A zero slot means "not known in this process". So the whole
 * cost of fork detection on a fast path is one load, of the TLS pointer.
 *
 * Slots are handed out from a bitmap in ordinary memory and given back
 * when a thread exits (a pthread key destructor). A child keeps the
 * parent's bitmap: the slots of the parent's other threads stay taken in
 * the child (the forking thread keeps its own), a small leak that only the
 * child pays. Without a free slot or without the region (mmap failed), a
 * thread simply does not cache: every lookup asks the kernel.
 *
 * Kernels before 4.14 lack MADV_WIPEONFORK: there an atfork handler zeroes
 * the region in the child, which covers fork() but not _Fork() or a raw
 * clone.
 */
#define PROC_SLOTS	((65536 - 64) / 4)

struct proc_state {
	uint32_t hash_settled;		/* see settle_private_futex_hash() */
	uint32_t reserved[15];
	uint32_t tid[PROC_SLOTS];	/* a thread id per slot, 0 = unknown */
};

static struct proc_state *proc;		/* created on first use, never freed */
static uint64_t slot_used[(PROC_SLOTS + 63) / 64];
static pthread_key_t slot_key;
static bool slot_key_ok;

/* Where a thread's TLS pointer points while it has no slot: always 0. */
uint32_t ksync_tid_none;
static uint32_t tid_exited;	/* ... and after its slot was given back */

__thread uint32_t *ksync_tid_slot __attribute__((tls_model("initial-exec"))) = &ksync_tid_none;

static void wipe_in_child(void)
{
	memset(proc, 0, sizeof(*proc));
}

static struct proc_state *proc_state(void)
{
	struct proc_state *p = __atomic_load_n(&proc, __ATOMIC_ACQUIRE), *mine;
	bool wiped;

	if (likely(p))
		return p;
	mine = mmap(NULL, sizeof(*mine), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mine == MAP_FAILED)
		return NULL;
	/* Marked before it is published, so no child can inherit it unmarked. */
	wiped = madvise(mine, sizeof(*mine), MADV_WIPEONFORK) == 0;
	if (!__atomic_compare_exchange_n(&proc, &p, mine, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		munmap(mine, sizeof(*mine));
		return p;
	}
	if (!wiped)
		pthread_atfork(NULL, NULL, wipe_in_child);
	return mine;
}

static int slot_alloc(void)
{
	for (unsigned w = 0; w < sizeof(slot_used) / sizeof(slot_used[0]); w++) {
		uint64_t v = __atomic_load_n(&slot_used[w], __ATOMIC_RELAXED);

		while (~v) {
			unsigned b = (unsigned)__builtin_ctzll(~v);

			if (w * 64 + b >= PROC_SLOTS)
				break;
			if (__atomic_compare_exchange_n(&slot_used[w], &v, v | 1ull << b, false,
							__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
				return (int)(w * 64 + b);
		}
	}
	return -1;
}

static void slot_free(unsigned i)
{
	__atomic_fetch_and(&slot_used[i / 64], ~(1ull << (i % 64)), __ATOMIC_RELEASE);
}

/* Thread exit: give the slot back; later lookups of this thread (from
 * other destructors) ask the kernel. */
static void slot_release(void *v)
{
	unsigned i = (unsigned)((uintptr_t)v - 1);

	ksync_tid_slot = &tid_exited;
	store_relaxed(&proc->tid[i], 0);
	slot_free(i);
}

__attribute__((constructor)) static void slot_key_create(void)
{
	slot_key_ok = pthread_key_create(&slot_key, slot_release) == 0;
}

/* A dlclose()d ksync must not be called back at thread exit. */
__attribute__((destructor)) static void slot_key_delete(void)
{
	if (slot_key_ok)
		pthread_key_delete(slot_key);
	slot_key_ok = false;
}

uint32_t ksync_fetch_tid(void)
{
	uint32_t tid = (uint32_t)syscall(SYS_gettid);
	uint32_t *slot = ksync_tid_slot;

	if (slot == &tid_exited || !slot_key_ok)
		return tid;
	if (slot == &ksync_tid_none) {
		struct proc_state *p = proc_state();
		int i = p ? slot_alloc() : -1;

		if (i < 0)
			return tid;
		if (pthread_setspecific(slot_key, (void *)(uintptr_t)(i + 1))) {
			slot_free((unsigned)i);
			return tid;
		}
		slot = &p->tid[i];
		ksync_tid_slot = slot;
	}
	/* A new thread, or a forked child whose slot the kernel zeroed. */
	store_relaxed(slot, tid);
	return tid;
}

/* ---- futex syscalls ----------------------------------------------------- */

/*
 * Threads wait with futex2 (futex_wait/futex_wake, Linux 6.7) until the
 * kernel refuses it: ENOSYS (an older kernel, valgrind before 3.22) or
 * EPERM (a seccomp profile). From then on, for the life of the process,
 * they use the classic futex(2): FUTEX_WAIT_BITSET with an absolute
 * deadline (FUTEX_CLOCK_REALTIME for CLOCK_REALTIME) and FUTEX_WAKE_BITSET,
 * private exactly when the futex2 flags are. For a 32-bit word both reach
 * the same kernel futex, so futex2 waiters, classic waiters and io_uring
 * FUTEX_WAITs wake each other. ENOSYS and EPERM are the only answers
 * cached, and they cannot change during the life of a process.
 * futex_waitv (Linux 5.16) has no classic equivalent: see
 * ksync_futex_waitv().
 */
static int futex_classic;

static int syscall_result(long r)
{
	return r < 0 ? -errno : (int)r;
}

static bool refused(int r)
{
	return r == -ENOSYS || r == -EPERM;
}

static int classic_op(int cmd, unsigned flags2, clockid_t clock)
{
	if (flags2 & KSYNC_FUTEX2_PRIVATE)
		cmd |= FUTEX_PRIVATE_FLAG;
	if (clock == CLOCK_REALTIME)
		cmd |= FUTEX_CLOCK_REALTIME;
	return cmd;
}

int ksync_futex_wait_flags(uint32_t *word, uint32_t expected, uint32_t mask, uint32_t flags,
			   clockid_t clock, const struct timespec *deadline)
{
	int r;

	if (likely(!load_relaxed(&futex_classic))) {
		r = syscall_result(syscall(SYS_futex_wait, word, (unsigned long)expected,
					   (unsigned long)mask, flags, deadline, clock));
		if (likely(!refused(r)))
			return r;
		store_relaxed(&futex_classic, 1);
	}
	return syscall_result(syscall(SYS_futex, word, classic_op(FUTEX_WAIT_BITSET, flags, clock),
				      expected, deadline, NULL, mask));
}

int ksync_futex_wake_flags(uint32_t *word, uint32_t mask, int nr, uint32_t flags)
{
	int r;

	if (likely(!load_relaxed(&futex_classic))) {
		r = syscall_result(syscall(SYS_futex_wake, word, (unsigned long)mask, nr, flags));
		if (likely(!refused(r)))
			return r;
		store_relaxed(&futex_classic, 1);
	}
	/* No clock flag: FUTEX_WAKE_BITSET refuses FUTEX_CLOCK_REALTIME. */
	return syscall_result(syscall(SYS_futex, word,
				      classic_op(FUTEX_WAKE_BITSET, flags, CLOCK_MONOTONIC),
				      nr, NULL, NULL, mask));
}

KSYNC_API int ksync_futex_wait(uint32_t *word, uint32_t expected, uint32_t mask,
			       clockid_t clock, const struct timespec *deadline)
{
	int err = ksync_check_deadline(clock, deadline);

	if (err)
		return err;
	/* struct timespec == __kernel_timespec on the 64-bit targets. */
	return ksync_futex_wait_flags(word, expected, mask, KSYNC_FUTEX_FLAGS, clock, deadline);
}

KSYNC_API int ksync_futex_wake(uint32_t *word, uint32_t mask, int nr)
{
	if (nr < 0)
		return -EINVAL;
	return ksync_futex_wake_flags(word, mask, nr, KSYNC_FUTEX_FLAGS);
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

/*
 * Only answers that cannot change during the life of a process are
 * cached: whether a syscall exists (ENOSYS) or is refused (EPERM: seccomp,
 * kernel.io_uring_disabled), and which opcodes io_uring has. A ring setup
 * that failed for want of memory or descriptors (ENOMEM, EMFILE, ENFILE...)
 * is reported as it is and tried again by the next call.
 */
static struct {
	int futex, futex2, waitv;	/* 0 (works) or the refusal */
	int done;
} fx;

/* 1: io_uring with the futex opcodes; -EOPNOTSUPP: without them;
 * -ENOSYS / -EPERM: no io_uring; 0: not known yet. */
static int uring_known;

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
 * private hash and need nothing. Done once per process: the flag lives in
 * the wiped-on-fork region, so any child starts over.
 */
static void settle_private_futex_hash(void)
{
	struct proc_state *p = proc_state();
	pthread_t t;

	if (likely(p && load_acquire(&p->hash_settled)))
		return;
	if (prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_GET_SLOTS, 0, 0, 0) == 0 &&
	    pthread_create(&t, NULL, nothing, NULL) == 0)
		pthread_join(t, NULL);
	if (p)
		store_release(&p->hash_settled, 1);
}

static void probe_futex(void)
{
	uint32_t word = 1;
	int r;

	if (likely(load_acquire(&fx.done)))
		return;
	r = syscall_result(syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 0, NULL, NULL, 0));
	fx.futex = r < 0 ? r : 0;
	/* futex2 needs both calls: a word that differs makes the wait return. */
	r = syscall_result(syscall(SYS_futex_wake, &word, (unsigned long)KSYNC_FUTEX_MASK_ANY,
				   0, KSYNC_FUTEX_FLAGS));
	if (r >= 0)
		r = syscall_result(syscall(SYS_futex_wait, &word, 0ul,
					   (unsigned long)KSYNC_FUTEX_MASK_ANY, KSYNC_FUTEX_FLAGS,
					   NULL, CLOCK_MONOTONIC));
	fx.futex2 = r == -EAGAIN || r >= 0 ? 0 : r;
	if (refused(fx.futex2))
		store_relaxed(&futex_classic, 1);
	/* No waiters is -EINVAL from a kernel that has the call. */
	r = syscall_result(syscall(SYS_futex_waitv, NULL, 0, 0, NULL, CLOCK_MONOTONIC));
	fx.waitv = r == -EINVAL ? 0 : r < 0 ? r : 0;
	store_release(&fx.done, 1);
}

/* Does io_uring have the futex opcodes? 0, -EOPNOTSUPP, or a transient error. */
static int probe_uring_ops(struct io_uring *ring)
{
	union {
		struct io_uring_probe p;
		char room[sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op)];
	} u;
	int r;

	memset(&u, 0, sizeof(u));
	r = io_uring_register_probe(ring, &u.p, 256);
	if (r == -EINVAL)
		return -EOPNOTSUPP;	/* no IORING_REGISTER_PROBE: older than 5.6 */
	if (r < 0)
		return r;
	if (io_uring_opcode_supported(&u.p, IORING_OP_FUTEX_WAIT) &&
	    io_uring_opcode_supported(&u.p, IORING_OP_FUTEX_WAKE) &&
	    io_uring_opcode_supported(&u.p, IORING_OP_FUTEX_WAITV))
		return 0;
	return -EOPNOTSUPP;
}

/* 0: io_uring with futex ops; -EOPNOTSUPP: io_uring without them; or why
 * there is no io_uring (-ENOSYS, -EPERM, or a transient -ENOMEM...). */
static int probe_uring(void)
{
	struct io_uring ring;
	int r = load_acquire(&uring_known);

	if (likely(r))
		return r > 0 ? 0 : r;
	r = io_uring_queue_init(2, &ring, 0);
	if (r < 0) {
		if (refused(r))
			store_release(&uring_known, r);
		return r;
	}
	r = probe_uring_ops(&ring);
	io_uring_queue_exit(&ring);
	if (r == 0 || r == -EOPNOTSUPP)
		store_release(&uring_known, r == 0 ? 1 : r);
	return r;
}

#define KNOWN_FEATS (KSYNC_FEAT_FUTEX | KSYNC_FEAT_FUTEX2 | KSYNC_FEAT_FUTEX_WAITV | \
		     KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX)

KSYNC_API unsigned ksync_features(void)
{
	unsigned have = 0;
	int r;

	probe_futex();
	if (!fx.futex)
		have |= KSYNC_FEAT_FUTEX;
	if (!fx.futex2)
		have |= KSYNC_FEAT_FUTEX2;
	if (!fx.waitv)
		have |= KSYNC_FEAT_FUTEX_WAITV;
	r = probe_uring();
	if (r == 0)
		have |= KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX;
	else if (r == -EOPNOTSUPP)
		have |= KSYNC_FEAT_URING;
	if (r == 0)
		settle_private_futex_hash();
	return have;
}

KSYNC_API int ksync_require(unsigned mask)
{
	int r;

	if (mask & ~KNOWN_FEATS)
		return -EINVAL;
	probe_futex();
	if ((mask & KSYNC_FEAT_FUTEX) && fx.futex)
		return fx.futex;
	if ((mask & KSYNC_FEAT_FUTEX2) && fx.futex2)
		return fx.futex2;
	if ((mask & KSYNC_FEAT_FUTEX_WAITV) && fx.waitv)
		return fx.waitv;
	if (mask & (KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX)) {
		r = probe_uring();
		if (r == 0)
			settle_private_futex_hash();	/* see kernel.h */
		else if (r != -EOPNOTSUPP || (mask & KSYNC_FEAT_URING_FUTEX))
			return r;
	}
	return 0;
}

/* Async ops park in io_uring and are woken by a futex wake syscall (from a
 * thread, or from a task releasing): they need both. */
int ksync_require_uring_futex(void)
{
	return ksync_require(KSYNC_FEAT_FUTEX | KSYNC_FEAT_URING_FUTEX);
}
