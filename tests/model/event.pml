/*
 * Model of the one-shot Event, lib/event.c (word: UNSET 0, WAITERS 1, SET 2).
 *
 * set() is one exchange to SET and, if the old value was WAITERS, one wake
 * of every waiter. A waiter announces (UNSET -> WAITERS by CAS) and parks on
 * WAITERS; futex.pml's compare-and-enqueue may come late (io_uring SQE).
 * ksync_event_wait_any parks with futex_waitv on several words at once.
 *
 * Processes (bounds): three events E0, E1, E2 and
 *   W0  thread, ksync_event_wait(E0), no deadline
 *   W1  thread, ksync_event_wait(E0) with a deadline (waits may time out)
 *   W2  async op on E0: each wait may end woken, or by a timeout/cancel that
 *       won, or by a cancel that lost to the wake (ends -ECANCELED: an event
 *       hands nothing on, its wake was for everyone)
 *   W3  thread, ksync_event_wait_any({E2, E1}), no deadline; E2 is never set
 *   S0  set(E0); S1 set(E1)
 *   EINTR_BUDGET (1) spurious EINTR in the whole run.
 *
 * Checks: a waiter returns "set" only if that event is set; at the end every
 * process has finished (nobody asleep after set: the end watcher reports
 * asleep_after_set otherwise) and both events are SET.
 *
 * Mutants (-DMUTANT_x, each must make SPIN report an error):
 *   NO_WAKE     set() does not wake the parked waiters
 *   WAKE_ONE    set() wakes one waiter instead of all
 *   NO_ANNOUNCE a waiter parks on the value it read (UNSET) without
 *               announcing WAITERS
 *   WAITV_ONE   wait_any compares and parks on its first word only
 * There is no pass-on mutant: an event op that leaves after consuming a
 * wake owes nothing to anyone (set() wakes all and the word stays SET).
 */
#include "futex.pml"

#define UNSET   0
#define WAITERS 1
#define SET     2

byte ev[3];

/* ksync_event_set(ev[e]) */
proctype Setter(byte e)
{
	byte old, k;

	atomic { old = ev[e]; ev[e] = SET };
	if
	:: old == WAITERS ->
#if defined(MUTANT_NO_WAKE)
		skip
#elif defined(MUTANT_WAKE_ONE)
		futex_wake_on(1 << e, 1, k)
#else
		futex_wake_on(1 << e, 255, k)
#endif
	:: else -> skip
	fi;
	atomic { old = 0; k = 0; FINISHED }
}

/*
 * announce_waiter(ev[e]): isset = the event is set. Locals are zeroed in
 * the last step that uses them, so that dead values do not split states.
 */
inline announce(e)
{
	v = ev[e];
	do
	:: v == UNSET ->
#ifdef MUTANT_NO_ANNOUNCE
		park = UNSET; break
#else
		atomic {
			if
			:: ev[e] == v -> ev[e] = WAITERS; v = WAITERS; break
			:: else -> v = ev[e]
			fi
		}
#endif
	:: else -> break
	od;
	atomic { isset = (v == SET); v = 0 }
}

#ifdef MUTANT_NO_ANNOUNCE
#define PARK_ON park
#else
#define PARK_ON WAITERS
#endif

/* ksync_event_wait[_until](ev[0]); r = 0 (set) or R_TIMEOUT */
proctype Waiter(byte me; bool deadline)
{
	byte v, park, r;
	bool isset;

	if
	:: ev[0] == SET -> goto done
	:: else -> skip
	fi;
	do
	:: announce(0);
		if
		:: isset -> isset = false; break
		:: else -> skip
		fi;
		futex_wait(ev[0] == PARK_ON, r, deadline);
		park = 0;
		if
		:: r == R_TIMEOUT ->
			atomic { r = (ev[0] == SET -> 0 : R_TIMEOUT) };
			break
		:: else -> r = 0
		fi
	od;
done:
	atomic { assert(r != 0 || ev[0] == SET); r = 0; FINISHED }
}

/* An async op on ev[0] (ksync_op_start / ksync_op_complete). */
proctype Op(byte me)
{
	byte v, park, r;
	bool isset;

	announce(0);
	do
	:: isset -> isset = false; assert(ev[0] == SET); break
	:: else ->
		futex_wait(ev[0] == PARK_ON, r, true);
		park = 0;
		if
		:: r == R_TIMEOUT -> r = 0; break	/* -ETIMEDOUT / -ECANCELED */
		:: r == R_WOKEN ->
			if
			:: true -> skip
			:: true -> break	/* cancel lost to the wake: -ECANCELED */
			fi
		:: else -> r = 0
		fi;
		announce(0);
		if
		:: isset -> skip
		:: !isset -> break	/* deadline passed after a failed attempt */
		:: !isset -> skip
		fi
	od;
	FINISHED
}

/* ksync_event_wait_any({ev[2], ev[1]}), no deadline; idx = the event set. */
proctype WaitAny(byte me)
{
	byte v, park, r, idx;
	bool isset;

	do
	:: announce(2);
		if
		:: isset -> idx = 2; break
		:: else -> skip
		fi;
		announce(1);
		if
		:: isset -> idx = 1; break
		:: else -> skip
		fi;
#ifdef MUTANT_WAITV_ONE
		futex_waitv(4, ev[2] == PARK_ON, r, false);
#else
		futex_waitv(6, ev[2] == PARK_ON && ev[1] == PARK_ON, r, false);
#endif
		atomic { park = 0; r = 0 }
	od;
	atomic { assert(ev[idx] == SET); isset = false; idx = 0; FINISHED }
}

bool asleep_after_set;

init {
	atomic {
		RUN(Waiter(0, false));
		RUN(Waiter(1, true));
		RUN(Op(2));
		RUN(WaitAny(3));
		RUN(Setter(0));
		RUN(Setter(1))
	};
	if
	:: running == 0 ->
		assert(ev[0] == SET && ev[1] == SET && !ANY_QUEUED)
	:: timeout ->
		asleep_after_set = ANY_QUEUED && ev[0] == SET && ev[1] == SET;
		assert(!asleep_after_set);
		assert(false)	/* stuck */
	fi
}
