/*
 * Model of the CountdownEvent and Latch protocol, lib/countdown.c.
 *
 * State: one 64-bit word read and changed as a whole (one atomic step):
 * the futex word F = gen * 2 | WAITERS (its low half) and the count (its
 * high half; uapi/ksync/word.h). Here gen is kept below 128 (no wrap in
 * any run). Waiters sleep on F only, so up() and a down() that does not
 * reach zero do not disturb them.
 *
 *   up(n)     CAS loop: count += n.
 *   down(n)   CAS loop: count == 0 (or < n): -EINVAL, nothing changes;
 *             count == n: count = 0 and F = (gen + 1) * 2 (WAITERS
 *             cleared), then, if the old F had WAITERS, wake everyone;
 *             else count -= n. (The Latch's count_down(n) is the same.)
 *   clear()   CAS loop: count == 0: nothing; else as a down to zero.
 *   wait      s = state; count == 0 -> done. g = gen. Loop: if F lacks
 *             WAITERS, CAS it in (on failure s is reloaded: gen != g ->
 *             released); futex_wait(F == F(s)); reload; gen != g ->
 *             released; a timeout or cancel ends the wait (a thread first
 *             looks once more).
 *   async op  the same steps spread over CQEs, as in revent.pml: woken,
 *             timeout/cancel won, cancel lost to the wake (ends -ECANCELED,
 *             nothing to hand on), deadline passed after a failed attempt.
 *
 * Processes (bounds): count starts at 1;
 *   D   down()
 *   U   up(1); down()
 *   so the count reaches zero once or twice, and up() may come right after
 *   a zero (or before the first).
 *   W0  thread, no deadline; O1 async op; W2 thread with a deadline: each
 *       waits once, arriving at any time
 *   -DCLEAR: C clear() instead of W2
 *   EINTR_BUDGET (1) spurious EINTR. In every run the count ends at 0 (a
 *   down that finds it too small fails and changes nothing).
 *
 * Checks:
 *   - released only by a zero crossing (a down to zero, or clear) after
 *     the waiter's arrival read, or by finding the count at zero then;
 *   - reaching zero releases everyone who was waiting, even if up()
 *     follows at once: a waiter never decides to sleep on a word it read
 *     after a zero crossing that followed its arrival;
 *   - nobody is left asleep: every process finishes;
 *   - the count never underflows.
 * States (tests/model/run, -DCOLLAPSE): countdown 4,526,853; -DCLEAR
 * 2,370,801; acyclic 9,053,705.
 *
 * Mutants (-DMUTANT_x, each must make SPIN report an error):
 *   NO_GEN       reaching zero does not advance the generation; a waiter
 *                looks at the count instead (up() after zero strands it)
 *   NO_WAITERS   a waiter sleeps without announcing WAITERS
 *   WAKE_ONE     reaching zero wakes one waiter instead of all
 *   CLEAR_NO_WAKE clear() does not wake (only with -DCLEAR)
 */
#include "futex.pml"

#define WAITERS 1
#define GEN(f)  ((f) / 2)

byte F = 0;
byte count = 1;

/* ghosts */
byte zeros = 0;		/* zero crossings so far */
byte arrival[MAXP];	/* zero crossings at each waiter's arrival read */

/* CAS loop on (F, count): down by n, or clear (n == 0). */
inline decrement(n)
{
	atomic { f = F; c = count; done = false };
	do
	:: done -> break
	:: else ->
		atomic {
			if
			:: F == f && count == c ->
				if
				:: n > 0 && c < n -> old = 0	/* -EINVAL */
				:: n == 0 && c == 0 -> old = 0	/* clear: already 0 */
				:: n > 0 && c > n -> count = c - n; old = 0
				:: (n > 0 && c == n) || (n == 0 && c > 0) ->
#ifdef MUTANT_NO_GEN
					F = f & ~WAITERS;
#else
					F = (GEN(f) + 1) * 2;
#endif
					count = 0; zeros++; old = f
				fi;
				done = true
			:: else -> f = F; c = count
			fi
		}
	od;
	if
	:: old & WAITERS ->
#if defined(MUTANT_WAKE_ONE)
		futex_wake(1, k)
#elif defined(MUTANT_CLEAR_NO_WAKE)
		if
		:: n > 0 -> futex_wake(255, k)
		:: else -> skip
		fi
#else
		futex_wake(255, k)
#endif
	:: else -> skip
	fi;
	atomic { f = 0; c = 0; old = 0; k = 0; done = false }
}

inline up(n)
{
	atomic { f = F; c = count; done = false };
	do
	:: done -> break
	:: else ->
		atomic {
			if
			:: F == f && count == c -> count = c + n; done = true
			:: else -> f = F; c = count
			fi
		}
	od;
	atomic { f = 0; c = 0; done = false }
}

#define WORKER_LOCALS byte f, c, old, k; bool done

proctype Down()
{
	WORKER_LOCALS;

	decrement(1);
	FINISHED
}

proctype UpDown()
{
	WORKER_LOCALS;

	up(1);
	decrement(1);
	FINISHED
}

proctype Clear()
{
	WORKER_LOCALS;

	decrement(0);
	FINISHED
}

/* ---- waiters ------------------------------------------------------------ */

#ifdef MUTANT_NO_GEN
#define RELEASED_NOW (count == 0)
#else
#define RELEASED_NOW (GEN(F) != g)
#endif

inline arrive()
{
	atomic { f = F; c = count; arrival[me] = zeros; seen = zeros }
}

inline look()
{
	atomic { released = RELEASED_NOW; f = F; c = count; seen = zeros }
}

/* Make sure F has WAITERS; released = count reached zero meanwhile. */
inline announce()
{
	do
	:: f & WAITERS -> break
	:: else ->
#ifdef MUTANT_NO_WAITERS
		break
#else
		atomic {
			if
			:: F == f && count == c -> F = f | WAITERS; f = f | WAITERS; seen = zeros
			:: else -> released = RELEASED_NOW; f = F; c = count; seen = zeros
			fi
		};
		if
		:: released -> break
		:: else -> skip
		fi
#endif
	od
}

/* named failures, for the runner's error:NAME checks */
bool parked_after_zero, released_without_zero, asleep_at_end;

/* A waiter decides to sleep on f, read when `seen` crossings had happened. */
#define ASSERT_NOT_DUE	atomic { parked_after_zero = (seen != arrival[me]); assert(!parked_after_zero) }
#define CHECK_RELEASED	released_without_zero = (zeros == arrival[me]); assert(!released_without_zero)

proctype Waiter(byte me; bool deadline)
{
	byte f, c, g, r, seen;
	bool released;

	arrive();
	if
	:: c == 0 -> goto done	/* at zero when it arrived */
	:: else -> g = GEN(f)
	fi;
	do
	:: announce();
		if
		:: released -> break
		:: else -> skip
		fi;
		ASSERT_NOT_DUE;
		futex_wait(F == f, r, deadline);
		look();
		if
		:: released -> break
		:: r == R_TIMEOUT -> break
		:: else -> r = 0
		fi
	od;
done:
	atomic {
		if
		:: released -> CHECK_RELEASED
		:: else -> skip
		fi;
		f = 0; c = 0; g = 0; r = 0; seen = 0; released = false;
		FINISHED
	}
}

proctype Op(byte me)
{
	byte f, c, g, r, seen;
	bool released;

	arrive();
	if
	:: c == 0 -> goto done
	:: else -> g = GEN(f)
	fi;
	do
	:: announce();
		if
		:: released -> break
		:: else -> skip
		fi;
		if
		:: true -> skip
		:: true -> break	/* deadline passed before arming */
		fi;
		ASSERT_NOT_DUE;
		futex_wait(F == f, r, true);
		if
		:: r == R_TIMEOUT -> break	/* timeout/cancel won */
		:: r == R_WOKEN ->
			if
			:: true -> skip
			:: true -> break	/* cancel lost to the wake */
			fi
		:: else -> skip
		fi;
		r = 0;
		look();
		if
		:: released -> break
		:: else -> skip
		fi
	od;
done:
	atomic {
		if
		:: released -> CHECK_RELEASED
		:: else -> skip
		fi;
		f = 0; c = 0; g = 0; r = 0; seen = 0; released = false;
		FINISHED
	}
}

init {
	atomic {
		RUN(Waiter(0, false));
		RUN(Op(1));
#ifdef CLEAR
		RUN(Clear());
#else
		RUN(Waiter(2, true));
#endif
		RUN(Down());
		RUN(UpDown())
	};
	if
	:: running == 0 -> assert(!ANY_QUEUED && count == 0)
	:: timeout ->	/* stuck: someone sleeps, and the count is zero */
		asleep_at_end = true;
		assert(!asleep_at_end)
	fi
}
