/*
 * Model of the Barrier and RBarrier protocol, lib/barrier.c.
 *
 * State: one 64-bit word read and changed as a whole (one atomic step):
 * the futex word F = gen * 4 | RESETTING 2 | BROKEN 1 (its low half) and
 * the count (its high half, which also holds the generation's high bits:
 * uapi/ksync/word.h). Here gen stays below 8 (no wrap in any run).
 * Waiters sleep on F, so arrivals do not disturb them. While the barrier
 * is filling, count = arrivals of the cycle; while it is broken, count =
 * the waiters of the broken cycle that have not left yet.
 *
 *   arrive    CAS loop: BROKEN and RESETTING: wait for F to change (not
 *             counted), then arrive again; BROKEN: -EPIPE; count + 1 ==
 *             parties: gen + 1, count 0 (the cycle completes), wake all if
 *             anyone waits, return index count; else count + 1, remember gen
 *             g and index count, and wait.
 *   wait      futex_wait(F == value at arrival); look: gen != g -> success;
 *             BROKEN -> leave, -EPIPE; a timeout (cancel, error) gives up.
 *   leave     (a waiter of a broken cycle) CAS loop: count - 1; if that was
 *             the last one and RESETTING: gen + 1, flags and count 0, then
 *             wake everyone (arrivals waiting for the reset to finish).
 *   give up   CAS loop: gen != g -> success after all (the cycle completed
 *             first); BROKEN -> leave, -EPIPE; else F | BROKEN, count - 1
 *             (it breaks the barrier and leaves in one transition), wake
 *             all if others wait, and report its own reason. This single
 *             CAS is what decides whether a waiter whose cancel or timeout
 *             races its cycle's release succeeded or broke the barrier.
 *   abort     CAS loop: BROKEN: nothing; else F | BROKEN, wake all if count.
 *   reset     (RBarrier) CAS loop: RESETTING: nothing; BROKEN: count 0 ->
 *             gen + 1, flags 0; else F | RESETTING (the last waiter to
 *             leave finishes it); filling: count 0 -> nothing; else F |
 *             BROKEN | RESETTING and wake all.
 *   async op  the same steps spread over CQEs; its wait may end woken, by a
 *             timeout/cancel that won, or by a cancel that lost to the wake
 *             (res 0, yet the op ends): every ending without the grant goes
 *             through give up (the engine's settle hook) if the op had
 *             arrived; after a failed attempt its deadline may have passed.
 *             Wakes are broadcasts, so a consumed wake owes nobody anything:
 *             the outcome is read from the word, never from `woken`.
 *
 * Configurations (bounds), each with EINTR_BUDGET 1:
 *   default  parties 3: T0 thread no deadline, T1 thread with a deadline,
 *            O2 async op, one wait each; A aborts at any moment.
 *   -DREUSE  parties 2: T0 thread and O1 op, 2 waits each; T2 thread with
 *            a deadline, 1 wait; A aborts at any moment.
 *   -DRESET  parties 2, RBarrier: T0 thread and O1 op, 2 waits each; R
 *            aborts or not, resets, and once that reset has finished,
 *            aborts (so that a lone last arrival is not left waiting for
 *            a partner that will never come: that wait is legitimate);
 *            each at any moment.
 *   -DRESET_DL  parties 2, RBarrier: T0 thread, O1 op, T2 thread with a
 *            deadline, 1 wait each; R as in -DRESET.
 *
 * Checks:
 *   - a cycle either completes or breaks, never both; a waiter reports
 *     success only if its cycle completed, and failure only if it broke;
 *   - a completed cycle gave every index 0..parties-1 exactly once;
 *   - at the end every process has finished (nobody stranded, in any
 *     world), nobody is queued, and no departed waiter is still counted.
 * States (tests/model/run, -DCOLLAPSE): default 1,131,260; REUSE 3,914,594;
 * RESET 472,913; RESET_DL 4,981,144; acyclic 2,262,519 (default) and
 * 945,825 (RESET).
 *
 * Mutants (-DMUTANT_x, each must make SPIN report an error):
 *   NO_WAKE       the arrival that completes a cycle does not wake
 *   BREAK_NO_WAKE giving up breaks the barrier without waking
 *   BLIND_GIVE_UP a waiter that gives up after its cycle completed breaks
 *                 the barrier and reports failure anyway (both outcomes)
 *   EAGER_RESET   reset un-breaks at once although broken waiters have not
 *                 left (-DRESET)
 *   NO_LEAVE      a broken waiter leaves without uncounting itself
 *                 (-DRESET: the reset never finishes)
 */
#include "futex.pml"

#define BROKEN    1
#define RESETTING 2
#define GEN(f)    ((f) / 4)
#define NEXT(f)   ((GEN(f) + 1) * 4)

#if defined(REUSE) || defined(RESET) || defined(RESET_DL)
#define PARTIES 2
#else
#define PARTIES 3
#endif
#define ALL_IDX ((1 << PARTIES) - 1)

byte F = 0;
byte count = 0;

/* ghosts, per cycle (gen) */
bool completed[8];
bool broken[8];
byte given[8];		/* indices handed out by the cycle (bit mask) */

/* named failures, for the runner's error:NAME checks */
bool completed_and_broken, index_twice, success_without_completion, failure_without_break;
bool counted_after_end, index_missing, asleep_at_end;

#define CONSISTENT(x) assert(GEN(F) < 8); completed_and_broken = completed[x] && broken[x]; \
	assert(!completed_and_broken)

/* outcomes */
#define OK      1
#define EPIPE   2
#define OWN     3	/* its own timeout/cancel, having broken the barrier */
#define TIMEOUT 4	/* gave up while not counted (waiting for a reset) */

#define SUCCESS_CHECK success_without_completion = !completed[g]; assert(!success_without_completion)
#define FAILURE_CHECK failure_without_break = !broken[g]; assert(!failure_without_break)

/* states of a waiter */
#define NONE    0
#define ARRIVED 1
#define GATED   2

#define LOCALS byte f, c, g, idx, r, st, res, k; bool done, wake

inline take_index()
{
	index_twice = given[g] & (1 << idx);
	assert(!index_twice);
	given[g] = given[g] | (1 << idx)
}

/* The arrival CAS loop: st = ARRIVED (g, idx), GATED (park on f), or
 * res = OK (completed it) / EPIPE. */
inline arrive()
{
	atomic { f = F; c = count; done = false; wake = false };
	do
	:: done -> break
	:: else ->
		atomic {
			if
			:: (f & BROKEN) && (f & RESETTING) -> st = GATED; done = true
			:: (f & BROKEN) && !(f & RESETTING) -> st = NONE; res = EPIPE; done = true
			:: !(f & BROKEN) && F == f && count == c && c + 1 == PARTIES ->
				F = NEXT(f); count = 0;
				g = GEN(f); idx = c; completed[g] = true; take_index(); CONSISTENT(g);
				wake = (c > 0); st = NONE; res = OK; done = true
			:: !(f & BROKEN) && F == f && count == c && c + 1 < PARTIES ->
				count = c + 1; g = GEN(f); idx = c; st = ARRIVED; done = true
			:: !(f & BROKEN) && !(F == f && count == c) -> f = F; c = count
			fi
		}
	od;
	if
	:: wake ->
#ifdef MUTANT_NO_WAKE
		skip
#else
		futex_wake(255, k)
#endif
	:: else -> skip
	fi;
	atomic { k = 0; wake = false; done = false; c = 0 }
}

/* A waiter of a broken cycle leaves: uncount it, finish a reset. */
inline leave()
{
	atomic { f = F; c = count; done = false; wake = false };
	do
	:: done -> break
	:: else ->
		atomic {
			assert(f & BROKEN);
			if
			:: F == f && count == c ->
				assert(c > 0);
#ifdef MUTANT_NO_LEAVE
				skip;
#else
				if
				:: c == 1 && (f & RESETTING) -> F = NEXT(f); count = 0; wake = true
				:: else -> count = c - 1
				fi;
#endif
				done = true
			:: else -> f = F; c = count
			fi
		}
	od;
	if
	:: wake -> futex_wake(255, k)
	:: else -> skip
	fi;
	atomic { k = 0; wake = false; done = false; f = 0; c = 0; st = NONE }
}

/* Look at the word after a wait: res = OK, or EPIPE (then leave). */
inline look()
{
	atomic {
		f = F; c = 0;
		if
		:: GEN(f) != g -> res = OK; take_index(); SUCCESS_CHECK; st = NONE
		:: GEN(f) == g && (f & BROKEN) -> res = EPIPE; FAILURE_CHECK
		:: else -> res = 0
		fi
	};
	if
	:: res == EPIPE -> leave()
	:: else -> skip
	fi
}

/* The waiter gives up (timeout, cancel, failed wait) while counted. */
inline give_up()
{
	atomic { f = F; c = count; done = false; wake = false };
	do
	:: done -> break
	:: else ->
		atomic {
			if
			:: GEN(f) != g ->	/* the cycle completed first */
#ifdef MUTANT_BLIND_GIVE_UP
				/* ignores it: breaks the barrier and fails */
				F = F | BROKEN; broken[g] = true; res = OWN; done = true
#else
				res = OK; take_index(); SUCCESS_CHECK; done = true
#endif
			:: GEN(f) == g && (f & BROKEN) -> res = EPIPE; done = true
			:: GEN(f) == g && !(f & BROKEN) && F == f && count == c ->
				F = f | BROKEN; count = c - 1; broken[g] = true; CONSISTENT(g);
				wake = (c > 1); res = OWN; done = true
			:: GEN(f) == g && !(f & BROKEN) && !(F == f && count == c) ->
				f = F; c = count
			fi
		}
	od;
	if
	:: wake ->
#ifdef MUTANT_BREAK_NO_WAKE
		skip
#else
		futex_wake(255, k)
#endif
	:: else -> skip
	fi;
	atomic { k = 0; wake = false; done = false };
	if
	:: res == EPIPE -> leave()
	:: else -> st = NONE
	fi
}

inline outcome_checked()
{
	atomic {
		if
		:: res == OK -> SUCCESS_CHECK; CONSISTENT(g)
		:: res == OWN -> FAILURE_CHECK; CONSISTENT(g)
		:: res == EPIPE && st == NONE -> skip	/* arrival found it broken, or left */
		:: else -> skip
		fi;
		f = 0; c = 0; g = 0; idx = 0; r = 0; st = NONE; res = 0
	}
}

/* ksync_barrier_wait[_until], @rounds times */
proctype Thread(byte me; byte rounds; bool deadline)
{
	LOCALS;
	byte i;

	do
	:: i < rounds ->
		do
		:: arrive();
			if
			:: st == GATED ->
				futex_wait(F == f, r, deadline);
				if
				:: r == R_TIMEOUT -> res = TIMEOUT; st = NONE; break
				:: else -> r = 0	/* look again */
				fi
			:: else -> break
			fi
		od;
		do
		:: st != ARRIVED -> break
		:: else ->
			futex_wait(F == f, r, deadline);
			look();
			if
			:: res != 0 -> break
			:: res == 0 && r == R_TIMEOUT -> r = 0; give_up(); break
			:: else -> r = 0
			fi
		od;
		outcome_checked();
		i++
	:: else -> break
	od;
	FINISHED
}

/* An async op: ksync_op_start, ksync_op_complete per CQE, settle. */
proctype Op(byte me; byte rounds)
{
	LOCALS;
	byte i;

	do
	:: i < rounds ->
		arrive();
		do
		:: st == NONE -> break
		:: else ->
			if
			:: true -> skip
			:: true -> goto settle	/* deadline passed before arming */
			fi;
			futex_wait(F == f, r, true);
			if
			:: r == R_TIMEOUT -> goto settle	/* timeout/cancel won */
			:: r == R_WOKEN ->
				if
				:: true -> skip
				:: true -> goto settle	/* cancel lost to the wake */
				fi
			:: else -> skip
			fi;
			r = 0;
			if
			:: st == GATED -> arrive()
			:: else -> look();
				if
				:: res != 0 -> break
				:: else -> skip
				fi
			fi
		od;
		goto round_end;
settle:
		r = 0;
		if
		:: st == ARRIVED -> give_up()
		:: else -> res = TIMEOUT; st = NONE
		fi;
round_end:
		outcome_checked();
		i++
	:: else -> break
	od;
	FINISHED
}

/* ksync_barrier_abort */
inline abort()
{
	atomic { f = F; c = count; done = false; wake = false };
	do
	:: done -> break
	:: else ->
		atomic {
			if
			:: f & BROKEN -> done = true
			:: !(f & BROKEN) && F == f && count == c ->
				F = f | BROKEN; broken[GEN(f)] = true; CONSISTENT(GEN(f));
				wake = (c > 0); done = true
			:: !(f & BROKEN) && !(F == f && count == c) -> f = F; c = count
			fi
		}
	od;
	if
	:: wake -> futex_wake(255, k)
	:: else -> skip
	fi;
	atomic { f = 0; c = 0; k = 0; done = false; wake = false }
}

proctype Aborter()
{
	byte f, c, k;
	bool done, wake;

	abort();
	FINISHED
}

/* ksync_rbarrier_reset */
inline reset()
{
	atomic { f = F; c = count; done = false; wake = false };
	do
	:: done -> break
	:: else ->
		atomic {
			if
			:: F != f || count != c -> f = F; c = count
			:: else ->
				if
				:: f & RESETTING -> skip
				:: (f & BROKEN) && !(f & RESETTING) && c == 0 -> F = NEXT(f)
#ifdef MUTANT_EAGER_RESET
				:: (f & BROKEN) && !(f & RESETTING) && c > 0 -> F = NEXT(f); count = 0
#else
				:: (f & BROKEN) && !(f & RESETTING) && c > 0 -> F = f | RESETTING
#endif
				:: !(f & BROKEN) && c == 0 -> skip
				:: !(f & BROKEN) && c > 0 ->
					F = f | BROKEN | RESETTING; broken[GEN(f)] = true;
					CONSISTENT(GEN(f)); wake = true
				fi;
				done = true
			fi
		}
	od;
	if
	:: wake -> futex_wake(255, k)
	:: else -> skip
	fi;
	atomic { f = 0; c = 0; k = 0; done = false; wake = false }
}

/* Maybe abort, then reset; once that reset has finished, abort for good. */
proctype Resetter()
{
	byte f, c, k;
	bool done, wake;

	if
	:: abort()
	:: skip
	fi;
	reset();
	atomic { !(F & RESETTING) -> skip };
	abort();
	FINISHED
}

init {
	atomic {
#if defined(REUSE)
		RUN(Thread(0, 2, false));
		RUN(Op(1, 2));
		RUN(Thread(2, 1, true));
		RUN(Aborter())
#elif defined(RESET)
		RUN(Thread(0, 2, false));
		RUN(Op(1, 2));
		RUN(Resetter())
#elif defined(RESET_DL)
		RUN(Thread(0, 1, false));
		RUN(Op(1, 1));
		RUN(Thread(2, 1, true));
		RUN(Resetter())
#else
		RUN(Thread(0, 1, false));
		RUN(Thread(1, 1, true));
		RUN(Op(2, 1));
		RUN(Aborter())
#endif
	};
	if
	:: running == 0 ->
		assert(!ANY_QUEUED);
		/* everyone left: nobody is still counted, no reset half done */
		counted_after_end = count != 0 || (F & RESETTING);
		assert(!counted_after_end);
		/* every completed cycle handed out every index once */
		index_missing = (completed[0] && given[0] != ALL_IDX) ||
				(completed[1] && given[1] != ALL_IDX) ||
				(completed[2] && given[2] != ALL_IDX) ||
				(completed[3] && given[3] != ALL_IDX);
		assert(!index_missing)
	:: timeout ->	/* stuck: a waiter nobody will wake */
		asleep_at_end = true;
		assert(!asleep_at_end)
	fi
}
