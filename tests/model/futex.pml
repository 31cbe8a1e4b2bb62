/*
 * The kernel side of a futex word, shared by the ksync protocol models.
 *
 * futex_wait(cmp, r, abort_ok): the kernel's compare-and-enqueue is ONE
 *   atomic step, separate from everything the caller did before it, so it
 *   may happen arbitrarily late. That is also the model of an io_uring
 *   FUTEX_WAIT SQE that reaches the kernel long after the attempt that chose
 *   the value to park on. If the compare fails: R_EAGAIN. Once queued, the
 *   waiter is blocked (no end label: a waiter still queued when nobody is
 *   left to wake it is an invalid end state, and the models' end watcher
 *   reports it as an assertion) until exactly one of these happens, each
 *   decided atomically by the kernel:
 *     - a futex_wake dequeues it: R_WOKEN (res 0);
 *     - its timeout / linked timeout / cancel wins (only if abort_ok):
 *       R_TIMEOUT; it was NOT dequeued by a wake, so that wake went to
 *       someone else or to nobody;
 *     - a signal (EINTR), at most EINTR_BUDGET times in a whole run.
 * futex_wake(n, k): wakes min(n, number queued) waiters and returns that
 *   count in k. Which waiters is a free choice: the model does not rely on
 *   the kernel's FIFO order anywhere (no ksync protocol needs it for safety
 *   or liveness; FIFO only matters for the fairness figures).
 *
 * Several futex words (the event model's futex_waitv): q[i] is the set of
 * words (bit mask) process i is queued on; futex_waitv enqueues on all of
 * them in one step and a wake on any of them dequeues it from all. Models
 * with one word use bit 1.
 *
 * kwoken[i] (ghost): a wake dequeued process i and it has not made its next
 * attempt yet.
 */
#ifndef EINTR_BUDGET
#define EINTR_BUDGET 1
#endif

#define MAXP 4

/* A model may define ON_WOKEN(j): ghost bookkeeping when a wake dequeues j. */
#ifndef ON_WOKEN
#define ON_WOKEN(j) skip
#endif

#define R_WOKEN   0
#define R_EAGAIN  1
#define R_EINTR   2
#define R_TIMEOUT 3

byte q[MAXP];
bool kwoken[MAXP];
byte eintr = EINTR_BUDGET;

/*
 * The end watcher (each model's init): RUN counts the processes it starts,
 * each process ends with FINISHED. When all have finished, init checks the
 * final state; if instead nothing can move while some have not (SPIN's
 * timeout), it reports what is stuck. So a run ends validly only when
 * every process has finished.
 */
byte running = 0;
#define RUN(p)    running++; run p
#define FINISHED  running--

/* Wait on the words in mask `words`; cmp compares all of them at once. */
inline futex_waitv(words, cmp, r, abort_ok)
{
	atomic {
		if
		:: cmp -> q[me] = words; r = R_WOKEN
		:: else -> r = R_EAGAIN
		fi
	};
	if
	:: r == R_WOKEN ->
		if
		:: q[me] == 0 -> skip	/* dequeued by a wake */
		:: atomic { q[me] != 0 && abort_ok -> q[me] = 0; r = R_TIMEOUT }
		:: atomic { q[me] != 0 && eintr > 0 -> q[me] = 0; eintr--; r = R_EINTR }
		fi
	:: else -> skip
	fi
}

/* One word: futex_wait(2), io_uring FUTEX_WAIT. */
inline futex_wait(cmp, r, abort_ok)
{
	futex_waitv(1, cmp, r, abort_ok)
}

/* Wake up to n waiters queued on word bit w. */
inline futex_wake_on(w, n, k)
{
	atomic {
		k = 0;
		do
		:: k < n && (q[0] & w) -> q[0] = 0; kwoken[0] = true; ON_WOKEN(0); k++
		:: k < n && (q[1] & w) -> q[1] = 0; kwoken[1] = true; ON_WOKEN(1); k++
		:: k < n && (q[2] & w) -> q[2] = 0; kwoken[2] = true; ON_WOKEN(2); k++
		:: k < n && (q[3] & w) -> q[3] = 0; kwoken[3] = true; ON_WOKEN(3); k++
		:: else -> break
		od
	}
}

inline futex_wake(n, k)
{
	futex_wake_on(1, n, k)
}

#define ANY_QUEUED (q[0] != 0 || q[1] != 0 || q[2] != 0 || q[3] != 0)
