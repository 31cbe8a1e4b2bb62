/*
 * Model of the Lock protocol, lib/lock.c (word bits of uapi/ksync/word.h).
 *
 * One Promela step per atomic instruction of the C code (load, CAS,
 * exchange); the futex wait is futex.pml's late compare-and-enqueue. CAS
 * failure reloads v, as __atomic_compare_exchange_n does. Memory is
 * sequentially consistent (x86: every RMW here is a full barrier).
 *
 * Processes (bounds; a process may stop after any round):
 *   T0  thread, no deadline, <= 2 acquire/release rounds
 *   T1  thread with a deadline (its futex waits may time out), 1 round
 *   O2  async op, 1 round: each wait may end woken, or by a timeout/cancel
 *       that won (not woken: op ends), or by a cancel that lost to a wake
 *       (res 0 but the op ends: ksync_lock_pass_on); after any failed
 *       attempt its deadline may have passed (op ends before arming)
 *   -DWIDE adds T3, a thread without deadline; -DOPS runs T0, two ops O1,
 *   O2 and T3, a thread with a deadline.
 *   EINTR_BUDGET (1) spurious EINTR in the whole run; EAGAIN whenever the
 *   compare fails. "waited >= KSYNC_LOCK_STARVE_NS" is a nondeterministic,
 *   monotonic per-wait bit that may turn on at any attempt after a wake.
 *   A thread's `woken` counts for one attempt only (lib/lock.c since
 *   5aec8d3), as an op's does.
 *
 * Checks: mutual exclusion (assertion at every grant, including the grant
 * pass_on takes to release a hand-off); at the end every process has
 * finished and the word is 0 (lock free, no HANDOFF/CONTENDED left over);
 * nobody is left asleep (the end watcher in init fires on a stuck state and
 * says whether a waiter sleeps with the lock free).
 * A HANDOFF is only claimed by a waiter that a wake dequeued since its last
 * attempt (kwoken, the kernel's view, not the waiter's own flag): so a
 * hand-off always goes to a waiter its release (or an earlier one) woke.
 *
 * Mutants (-DMUTANT_x, each must make SPIN report an error):
 *   NO_WAKE       release_contended's plain path does not wake
 *   NO_PASS_ON    a cancelled op that consumed a wake does not hand it on
 *   NO_CONTENDED  a failed attempt parks without setting CONTENDED
 *   NO_RECLAIM    a hand-off nobody was woken for is not taken back
 *   STICKY_WOKEN  a thread keeps `woken` after its first wake (lib/lock.c
 *                 before 5aec8d3): it can claim a hand-off meant for the
 *                 waiter the release woke
 */
#include "futex.pml"

#define L 1
#define C 2
#define H 4
#define S 8

byte word = 0;
byte holders = 0;	/* ghost: processes inside the critical section */

/*
 * Step boundaries: every access to the word is its own atomic step; what a
 * process computes from its own variables is folded into the step before
 * it, and dead locals are zeroed there so that they do not split states.
 */

/* The lock is granted to this process inside the atomic step that took it. */
#define GRANT	holders++; assert(holders == 1)

#define GRAB 1	/* CAS v -> nv takes the lock */
#define MARK 2	/* CAS v -> nv marks CONTENDED (and STARVING): then park on nv */
#define PARK 3	/* park on v as it is */

/* attempt()'s decision from v (and woken, lng). */
inline decide(woken)
{
	if
	:: v == 0 -> nv = (woken -> L | C : L); act = GRAB
	:: v != 0 && (v & H) && woken ->
		nv = v & ~H;
		if
		:: !lng -> nv = nv & ~S	/* served within the bound */
		:: else -> skip
		fi;
		act = GRAB
	:: else ->
#ifdef MUTANT_NO_CONTENDED
		nv = v;
#else
		nv = v | C;
#endif
		if
		:: woken && lng -> nv = nv | S
		:: else -> skip
		fi;
		if
		:: nv == v -> park = v; act = PARK
		:: else -> act = MARK
		fi
	fi
}

/* attempt(woken): got = true with the lock, or got = false and park set. */
inline attempt(woken)
{
	atomic {
		if
		:: woken && !lng -> lng = true	/* has now waited past the bound */
		:: true -> skip
		fi;
		got = false;
		v = word;
		decide(woken)
	};
	do
	:: act == PARK -> break
	:: act != PARK ->
		atomic {
			if
			:: word == v ->
				word = nv;
				if
				:: act == GRAB ->
					got = true; GRANT;
					/* a HANDOFF goes to a waiter the kernel woke */
					assert(!(v & H) || kwoken[me]);
					act = PARK	/* done */
				:: else -> park = nv; act = PARK
				fi;
				v = 0; nv = 0
			:: else -> v = word; decide(woken)
			fi
		}
	od;
	atomic { act = 0; v = 0; nv = 0; kwoken[me] = false }
}

inline take_free()
{
	atomic {
		if
		:: word == 0 -> word = L; got = true; GRANT
		:: else -> skip
		fi
	}
}

/* The xchg in release_word found v != L. */
inline release_contended()
{
	if
	:: (v & S) ->
		atomic {
			if
			:: word == 0 -> word = v | H; ok = true
			:: else -> ok = false
			fi
		}
	:: else -> ok = false
	fi;
	if
	:: ok ->
		futex_wake(1, k);
		if
		:: k == 0 ->
#ifndef MUTANT_NO_RECLAIM
			/* nobody was parked: take the hand-off back unless a
			 * woken waiter claimed it, then wake once more */
			atomic { v = word; ok = false };
			do
			:: (v & H) ->
				atomic {
					if
					:: word == v -> word = 0; break
					:: else -> v = word
					fi
				}
			:: else -> break
			od;
			if
			:: (v & H) -> futex_wake(1, k)
			:: else -> skip
			fi;
#endif
			skip
		:: else -> skip
		fi
	:: else ->
#ifndef MUTANT_NO_WAKE
		futex_wake(1, k);
#endif
		skip
	fi;
	atomic { ok = false; k = 0; v = 0 }
}

/* The owner releases: one exchange, the slow path only if v != LOCKED. */
inline release_word()
{
	atomic { holders--; v = word; word = 0 };
	if
	:: v != L -> release_contended()
	:: else -> v = 0
	fi
}

/* ksync_lock_pass_on: an op leaves with a wake it consumed. */
inline pass_on()
{
	v = word;
	do
	:: v == 0 -> futex_wake(1, k); k = 0; break
	:: (v & H) ->
		atomic {
			if
			:: word == v -> word = v & ~H; ok = true; GRANT
			:: else -> v = word; ok = false
			fi
		};
		if
		:: ok -> ok = false; release_word(); break
		:: else -> skip
		fi
	:: v != 0 && !(v & H) && (v & C) -> v = 0; break
	:: v != 0 && !(v & H) && !(v & C) ->
		atomic {
			if
			:: word == v -> word = v | C; v = 0; break
			:: else -> v = word
			fi
		}
	od
}

#define LOCK_LOCALS \
	byte v, nv, act, park, k, r, i; \
	bool got, ok, woken, lng

/* Up to `rounds` acquire/release rounds; may stop after any round. */
proctype Thread(byte me; byte rounds; bool deadline)
{
	LOCK_LOCALS;

	do
	:: i < rounds ->
		take_free();
		if
		:: !got ->	/* the spin phase: one more barging attempt */
			v = word;
			if
			:: v == 0 -> v = 0; take_free()
			:: else -> v = 0
			fi
		:: else -> skip
		fi;
		if
		:: !got ->
			do
			:: attempt(woken);
				if
				:: got -> break
				:: else -> skip
				fi;
#ifndef MUTANT_STICKY_WOKEN
				woken = false;
#endif
				futex_wait(word == park, r, deadline);
				park = 0;
				if
				:: r == R_WOKEN -> woken = true
				:: r == R_TIMEOUT -> r = 0; break
				:: else -> r = 0	/* EAGAIN, EINTR */
				fi
			od
		:: else -> skip
		fi;
		woken = false; lng = false;
		if
		:: got -> got = false; release_word()
		:: else -> skip
		fi;
		i++
	:: i > 0 -> break	/* may stop after any round */
	:: else -> break
	od;
	FINISHED
}

proctype Op(byte me; byte rounds)
{
	LOCK_LOCALS;

	do
	:: i < rounds ->
		attempt(woken);		/* ksync_op_start (woken = 0) */
		if
		:: !got ->
			do
			:: if
				:: true -> skip
				:: true -> park = 0; break	/* deadline passed before arming: woken = 0 */
				fi;
				futex_wait(word == park, r, true);
				park = 0;
				if
				:: r == R_TIMEOUT -> r = 0; break	/* not woken: nothing to hand on */
				:: r == R_WOKEN ->
					woken = true;
					if
					:: true -> skip
					:: true ->	/* its cancel lost the race to this wake */
#ifndef MUTANT_NO_PASS_ON
						pass_on();
#endif
						break
					fi
				:: else -> r = 0; woken = false	/* EAGAIN, EINTR */
				fi;
				attempt(woken);
				if
				:: got -> break
				:: else -> skip
				fi;
				woken = false
			od
		:: else -> skip
		fi;
		woken = false; lng = false;
		if
		:: got -> got = false; release_word()
		:: else -> skip
		fi;
		i++
	:: i > 0 -> break	/* may stop after any round */
	:: else -> break
	od;
	FINISHED
}

bool asleep_with_lock_free, handoff_grant_lost;

init {
	atomic {
#if defined(WIDE)
		RUN(Thread(0, 2, false));
		RUN(Thread(1, 1, true));
		RUN(Op(2, 1));
		RUN(Thread(3, 1, false))
#elif defined(OPS)
		RUN(Thread(0, 2, false));
		RUN(Op(1, 1));
		RUN(Op(2, 1));
		RUN(Thread(3, 1, true))
#else
		RUN(Thread(0, 2, false));
		RUN(Thread(1, 1, true));
		RUN(Op(2, 1))
#endif
	};
	if
	:: running == 0 ->
		assert(word == 0 && holders == 0 && !ANY_QUEUED)
	:: timeout ->
		asleep_with_lock_free = ANY_QUEUED && word == 0;
		handoff_grant_lost = (word & H) != 0;
		assert(!asleep_with_lock_free);
		assert(!handoff_grant_lost);
		assert(false)	/* stuck */
	fi
}
