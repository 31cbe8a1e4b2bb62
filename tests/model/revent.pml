/*
 * Model of the resettable event, lib/revent.c (word: SET 1 | WAITERS 2 |
 * gen * GEN_ONE, uapi/ksync/word.h; here gen is bits 2-7 of a byte, 64
 * values, more than the sets of any run, so it does not wrap).
 *
 *   set()    CAS loop: if SET, return; else word = (gen + 1) | SET (WAITERS
 *            cleared); then, if the old word had WAITERS, wake everyone.
 *   clear()  fetch_and(~SET).
 *   wait     v = word; SET -> done. g = gen(v). Loop: if v lacks WAITERS,
 *            CAS it in (on failure v is reloaded: gen(v) != g -> released);
 *            futex_wait(word == v); v = word; gen(v) != g -> released;
 *            a timeout or cancel ends the wait (a thread first looks once
 *            more: released if gen changed).
 *   async op the same steps spread over CQEs: each wait may end woken, or by
 *            a timeout/cancel that won, or by a cancel that lost to the wake
 *            (res 0 but the op ends -ECANCELED: a broadcast wake is
 *            everyone's, there is nothing to hand on); after a failed
 *            attempt its deadline may have passed.
 *
 * One step per atomic instruction; futex.pml's compare-and-enqueue may
 * come late (an io_uring SQE submitted long after its attempt).
 *
 * Processes (bounds):
 *   W0  thread, no deadline, arrives before the first set
 *   O1  async op, arrives before the first set
 *   W2  thread with a deadline, arrives at any time
 *   W3  thread, no deadline, arrives only after the clear
 *   S   set(); clear(); set(): the first set only once W0 and O1 have
 *       arrived (made their first read of the word), the second only once
 *       W3 has
 *   EINTR_BUDGET (1) spurious EINTR in the whole run.
 *
 * Checks:
 *   - released only by a set: a waiter that returns "released" arrived
 *     before some set (ghost: sets counted at its arrival read);
 *   - a set releases everyone who was waiting, even if clear follows at
 *     once: a waiter never decides to sleep on a word it read after a set
 *     that followed its arrival (so W0 and O1 are released by the first
 *     set, not by the second);
 *   - nobody is left asleep: every process finishes (W3 can only be
 *     released by the second set, which it must see);
 *   - one wake per set: a set that wakes issues one futex_wake for all.
 * States (tests/model/run, -DCOLLAPSE): revent 2,937,909; revent-acyclic
 * 5,875,817.
 *
 * Mutants (-DMUTANT_x, each must make SPIN report an error):
 *   NO_GEN      set() does not advance the generation (set+clear restores
 *               the old word: a woken waiter sleeps again)
 *   NO_WAITERS  a waiter parks without announcing WAITERS (set does not
 *               wake it)
 *   WAKE_ONE    set() wakes one waiter instead of all
 *   TRUST_WAKE  a waiter takes any return of its wait (EINTR, EAGAIN) as
 *               its release without looking at the word
 */
#include "futex.pml"

#define SET      1
#define WAITERS  2
#define GEN_ONE  4
#define GEN(v)   ((v) / GEN_ONE)

byte word = 0;

/* ghosts */
byte sets = 0;		/* set() calls that set the event */
byte arrival[MAXP];	/* sets counted at each waiter's arrival read */
bit arrived[MAXP];
bool cleared = false;

/* ---- set / clear -------------------------------------------------------- */

inline do_set()
{
	atomic { v = word; done = false };
	do
	:: done -> break
	:: else ->
		atomic {
			if
			:: v & SET -> old = 0; done = true	/* already set */
			:: else ->
				if
				:: word == v ->
#ifdef MUTANT_NO_GEN
					word = (v & ~WAITERS) | SET;
#else
					word = ((v & ~(SET | WAITERS)) + GEN_ONE) % 256 | SET;
#endif
					sets++; old = v; done = true
				:: else -> v = word
				fi
			fi
		}
	od;
	if
	:: old & WAITERS ->
#ifdef MUTANT_WAKE_ONE
		futex_wake(1, k)
#else
		futex_wake(255, k)
#endif
	:: else -> skip
	fi;
	atomic { v = 0; k = 0; old = 0; done = false }
}

proctype Setter()
{
	byte v, k, old;
	bool done;

	atomic { arrived[0] && arrived[1] -> skip };
	do_set();
	atomic { word = word & ~SET; cleared = true };
	atomic { arrived[3] -> skip };
	do_set();
	FINISHED
}

/* ---- waiters ------------------------------------------------------------ */

/* The arrival read: the wait starts here. W3 only arrives after clear. */
inline arrive()
{
	atomic {
		(me != 3 || cleared) -> v = word; arrival[me] = sets; arrived[me] = 1; seen = sets
	}
}

/* named failures, for the runner's error:NAME checks */
bool parked_after_set, released_without_set, asleep_at_end;

/* A waiter decides to sleep on v, read when `seen` sets had happened. */
inline assert_not_due()
{
	atomic { parked_after_set = (seen != arrival[me]); assert(!parked_after_set) }
}

/* Make sure v has WAITERS (CAS); released = a set happened meanwhile. */
inline announce()
{
	do
	:: v & WAITERS -> break
	:: else ->
#ifdef MUTANT_NO_WAITERS
		break
#else
		atomic {
			if
			:: word == v -> word = v | WAITERS; v = v | WAITERS; seen = sets
			:: else -> v = word; seen = sets; released = (GEN(v) != g)
			fi
		};
		if
		:: released -> break
		:: else -> skip
		fi
#endif
	od
}

inline look()
{
	atomic { v = word; seen = sets; released = (GEN(v) != g) }
}

inline check_released()
{
	released_without_set = (sets == arrival[me]);
	assert(!released_without_set)
}

/* ksync_revent_wait[_until]: released, or timed out */
proctype Waiter(byte me; bool deadline)
{
	byte v, g, r, seen;
	bool released;

	arrive();
	if
	:: v & SET -> goto done	/* set when it arrived */
	:: else -> g = GEN(v)
	fi;
	do
	:: announce();
		if
		:: released -> break
		:: else -> skip
		fi;
		assert_not_due();
		futex_wait(word == v, r, deadline);
		look();
#ifdef MUTANT_TRUST_WAKE
		released = true;
#endif
		if
		:: released -> break
		:: r == R_TIMEOUT -> break	/* -ETIMEDOUT */
		:: else -> r = 0
		fi
	od;
done:
	atomic {
		if
		:: released -> check_released()
		:: else -> skip
		fi;
		v = 0; g = 0; r = 0; seen = 0; released = false;
		FINISHED
	}
}

/* An async op: ksync_op_start, then ksync_op_complete per CQE. */
proctype Op(byte me)
{
	byte v, g, r, seen;
	bool released, ended;

	arrive();
	if
	:: v & SET -> goto done	/* set when it arrived */
	:: else -> g = GEN(v)
	fi;
	do
	:: announce();
		if
		:: released -> break
		:: else -> skip
		fi;
		if
		:: true -> skip
		:: true -> ended = true; break	/* deadline passed before arming */
		fi;
		assert_not_due();
		futex_wait(word == v, r, true);
		if
		:: r == R_TIMEOUT -> ended = true; break	/* timeout/cancel won */
		:: r == R_WOKEN ->
			if
			:: true -> skip
			:: true -> ended = true; break	/* cancel lost to the wake */
			fi
		:: else -> skip
		fi;
		r = 0;
		look();
#ifdef MUTANT_TRUST_WAKE
		released = true;
#endif
		if
		:: released -> break
		:: else -> skip
		fi
	od;
done:
	atomic {
		if
		:: released -> check_released()
		:: else -> skip
		fi;
		v = 0; g = 0; r = 0; seen = 0; released = false; ended = false;
		FINISHED
	}
}

init {
	atomic {
		RUN(Waiter(0, false));
		RUN(Op(1));
		RUN(Waiter(2, true));
		RUN(Waiter(3, false));
		RUN(Setter())
	};
	if
	:: running == 0 -> assert(!ANY_QUEUED && (word & SET))
	:: timeout ->	/* stuck: someone sleeps after the last set */
		asleep_at_end = true;
		assert(!asleep_at_end)
	fi
}
