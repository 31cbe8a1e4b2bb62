/*
 * Model of the CapacityLimiter protocol, lib/limiter.c (word layout in
 * uapi/ksync/word.h).
 *
 * Word: T | B << 13 | R << 26 in the C (total, borrowed, reserved); here
 * T, B and R are two bits each (T | B * 4 | R * 16). Everything a waiter
 * can wait for is in this one word, so a waiter that chose to park on a
 * stale value gets EAGAIN from the kernel; the total is in it too, so a
 * take decides against the total of the very word it CASes (no ABA with a
 * total kept elsewhere). room = T - B - R: permits anyone may take.
 * `waiters` counts waiters that announced and were not woken; whoever
 * wakes subtracts what futex_wake reports (as the Semaphore, sem.pml).
 * One step per atomic instruction of the C; every load of a shared
 * variable is its own step; the futex wait is futex.pml's late
 * compare-and-enqueue; a wake picks any queued waiter.
 *
 *   take(woken)   loop: v = word; woken && R(v): CAS R-1, B+1; else
 *                 room(v) > 0: CAS B+1; else fail, park on v.
 *   claim         after the take: a token's slot (one atomic step, a CAS
 *                 on a free slot's key; the table has NS = the largest
 *                 total slots); release clears it before B-1. A thread's
 *                 own table is private to it and not modelled; a thread
 *                 that spills into slots is a token here.
 *   release       clear the slot; CAS loop: B-1 and, in hand-off mode
 *                 (STARVING, re-read each try) with waiters and room after
 *                 the return, R+1 instead; then if room after > 0 and
 *                 waiters: k = wake(1), waiters -= k; reserved but woke
 *                 nobody: unreserve(1).
 *   unreserve(d)  CAS loop: d' = min(d, R), stop if 0, R -= d'; then if
 *                 waiters: wake(min(d', waiters)), subtract.
 *   pass_on       while R: CAS R-1; then if room(word) > 0 and waiters:
 *                 wake(1), subtract.
 *   set_total(t)  CAS loop: T = t and R = min(R, max(0, t - B)) (a
 *                 reservation that no longer fits the total is revoked:
 *                 its woken waiter then finds nothing and parks again);
 *                 then if room > 0 and waiters: wake(min(room, waiters)).
 *   thread        take(false) or announce and loop: take(woken) -> done
 *                 (leave unless woken); a woken take that fails: announce
 *                 again, take again; else futex_wait: 0 -> woken; timeout
 *                 -> leave, fail; EAGAIN/EINTR -> loop. Then claim.
 *   async op      limiter_attempt / limiter_abandon and op.c, as sem.pml:
 *                 a wait ends woken, by a timeout/cancel that won (leave,
 *                 end), or by a cancel that lost to a wake (pass_on); its
 *                 deadline may pass after any failed attempt.
 *   STARVING      may be set by a woken waiter whose take fails once it has
 *                 waited "long" (nondeterministic monotonic bit), cleared
 *                 by one served while still "quick"; starts clear or set.
 *
 * Configurations (bounds):
 *   default  T = 1; T0 thread, no deadline, 2 rounds; T1 thread with a
 *            deadline, 1 round; O2 async op, 1 round. Each round borrows
 *            and, if it got the permit, returns it.
 *   -DRESIZE T = 1; T0 thread (no deadline), O1 op, 1 round each; Z2
 *            sets the total to any of 0, 1, 2 and then to 1 or 2
 *            (shrinking below what is borrowed, growing with waiters
 *            parked, revoking reservations).
 *   -DRESIZE_DL  as RESIZE with the op replaced by a thread with a
 *            deadline.
 *   EINTR_BUDGET 1; the identity checks (-EDEADLK, -EPERM, reentrancy)
 *   touch only the caller's own slot and are not part of the futex
 *   protocol; they are tested in tests/test_limiter.c.
 *
 * Checks:
 *   - never over the total: whenever B grows, B <= T after (every step);
 *   - borrow conservation: B == borrowers holding (every step);
 *   - slots: occupied slots <= B (every step), and a borrower about to
 *     claim always finds a free one;
 *   - waiters never underflows, waiters == counted + woken-not-subtracted;
 *   - an R permit is only taken by a waiter the kernel woke since its last
 *     attempt (kwoken);
 *   - at the end: every process finished, waiters == 0, R == 0, B == 0,
 *     no slot occupied; a stuck state is reported as asleep_with_room,
 *     asleep_with_reservation or stuck.
 *
 * Mutants (-DMUTANT_x, each must make SPIN report an error):
 *   NO_REVOKE          set_total keeps reservations that no longer fit
 *   NO_GROW_WAKE       set_total does not wake when it makes room
 *   ROOM_IGNORES_R     a new arrival counts reserved permits as room
 *   CLAIM_FIRST        a borrower claims its slot before its take
 *   NO_PASS_ON         a cancelled op that consumed a wake does not pass_on
 *
 * Run: tests/model/run limiter (README.md there has the table).
 * Results (spin 6.5.2, -DCOLLAPSE):
 *   limiter                  3,901,183 states, 0 errors
 *   limiter-resize           2,121,632 states, 0 errors
 *   limiter-resize-deadline  1,624,406 states, 0 errors
 *   limiter-acyclic (RESIZE, pan -l)  4,243,263 states, no cycle
 *   ~2 CPU-minutes for all nine checks on a loaded 2-vCPU Xeon guest.
 *   NO_REVOKE       caught with RESIZE (B > T after a woken waiter takes a
 *                   reservation the shrink should have revoked)
 *   NO_GROW_WAKE    caught with RESIZE (asleep_with_room)
 *   ROOM_IGNORES_R  caught (B > T)
 *   CLAIM_FIRST     caught (occupied slots > B)
 *   NO_PASS_ON      caught (asleep_with_reservation)
 */
/* The kernel dequeues a waiter: its count now belongs to the waker. */
#define ON_WOKEN(j) assert(cnt[j]); cnt[j] = 0; owed++
#include "futex.pml"

#define B_ONE   4
#define R_ONE   16
#define TOT(v)  ((v) & 3)
#define BOR(v)  (((v) / B_ONE) & 3)
#define RES(v)  ((v) / R_ONE)
#define RMAX    3
#define NS      2	/* slots: the largest total the runs set */
#define ROOM(v) (TOT(v) > BOR(v) + RES(v))

#define INIT_T 1

byte word = INIT_T;
byte waiters = 0;
bool starving = false;

/* ghosts */
byte held = 0;		/* borrowers holding a permit */
byte occ = 0;		/* occupied slots */
bit cnt[MAXP];		/* process is counted in waiters */
byte owed = 0;		/* woken by the kernel, not yet subtracted by the waker */

#define MIN(a, b) ((a) < (b) -> (a) : (b))
#define CONSERVED assert(BOR(word) == held && occ <= BOR(word))
#define COUNTED   assert(waiters == cnt[0] + cnt[1] + cnt[2] + cnt[3] + owed)

#ifdef MUTANT_ROOM_IGNORES_R
#define MAY_TAKE_ROOM(v) (TOT(v) > BOR(v))
#else
#define MAY_TAKE_ROOM(v) ROOM(v)
#endif

/* From v: the next word (nv, fromR), or failure (park = v). */
inline decide(woken)
{
	if
	:: (woken) && RES(v) > 0 -> nv = v - R_ONE + B_ONE; fromR = true
	:: else ->
		if
		:: MAY_TAKE_ROOM(v) -> nv = v + B_ONE; fromR = false
		:: else -> park = v; done = true; v = 0; kwoken[me] = false
		fi
	fi
}

/* take(woken): got, or !got and park. */
inline take(woken)
{
	atomic { got = false; done = false; v = word; decide(woken) };
	do
	:: done -> break
	:: else ->
		atomic {
			if
			:: word == v ->
				word = nv; got = true; done = true; held++;
				assert(BOR(word) <= TOT(word));	/* never over the total */
				CONSERVED;
				assert(!fromR || kwoken[me]);
				kwoken[me] = false; v = 0; nv = 0; fromR = false
			:: else -> v = word; decide(woken)
			fi
		}
	od
}

/* The borrower's slot: a CAS on a free slot's key (any free one). */
inline claim()
{
	atomic { assert(occ < NS); occ++; CONSERVED }
}

inline announce()
{
	atomic { waiters++; cnt[me] = 1; COUNTED }
}

inline leave()
{
	atomic { assert(waiters > 0); waiters--; cnt[me] = 0; COUNTED }
}

/* wake_waiters(nr): futex_wake, then uncount the k the kernel woke. */
inline wake_waiters(nr)
{
	futex_wake(nr, k);
	if
	:: k > 0 ->
		atomic {
			assert(waiters >= k && owed >= k);
			waiters = waiters - k;
			owed = owed - k;
			COUNTED;
			nr = 0
		}
	:: else -> nr = 0
	fi
}

/* unreserve(d): up to d reservations nobody was woken for become room. */
inline unreserve()
{
	atomic { v = word; dd = MIN(d, RES(v)) };
	do
	:: dd == 0 -> break
	:: else ->
		atomic {
			if
			:: word == v -> word = v - dd * R_ONE; v = 0; break
			:: else -> v = word; dd = MIN(d, RES(v))
			fi
		}
	od;
	if
	:: dd > 0 ->
		atomic { w = waiters; nw = MIN(dd, w); d = 0; dd = 0; w = 0 };
		if
		:: nw > 0 -> wake_waiters(nw); k = 0
		:: else -> skip
		fi
	:: else -> d = 0
	fi
}

/* ksync_limiter_release after the identity check: clear the slot, return
 * the permit. */
inline release()
{
	atomic { assert(occ > 0); occ--; CONSERVED };
	v = word;
	do
	:: atomic { m = 0; st = starving; nv = v - B_ONE; ok = ROOM(nv) };
		if
		:: st && ok && RES(v) < RMAX ->
			atomic { w = waiters; m = (w > 0 -> 1 : 0); w = 0 }
		:: else -> skip
		fi;
		atomic {
			if
			:: word == v ->
				word = nv + m * R_ONE; held--; CONSERVED;
				v = 0; nv = 0; st = false;
				break
			:: else -> v = word
			fi
		}
	od;
	if
	:: ok ->
		atomic { w = waiters; nw = MIN(1, w); w = 0; k = 0; ok = false };
		if
		:: nw > 0 -> wake_waiters(nw)
		:: else -> skip
		fi
	:: else -> k = 0
	fi;
	atomic { d = (m > k -> m - k : 0); m = 0; k = 0 };
	if
	:: d > 0 -> unreserve()
	:: else -> skip
	fi
}

/* A woken waiter leaves without taking. */
inline pass_on()
{
	v = word;
	do
	:: RES(v) > 0 ->
		atomic {
			if
			:: word == v -> word = v - R_ONE; v = 0; break
			:: else -> v = word
			fi
		}
	:: else -> v = 0; break
	od;
	ok = ROOM(word);
	if
	:: ok ->
		atomic { ok = false; w = waiters };
		if
		:: w > 0 -> w = 0; nw = 1; wake_waiters(nw); k = 0
		:: else -> skip
		fi
	:: else -> skip
	fi
}

/* ksync_limiter_set_total(t) */
inline set_total(t)
{
	v = word;
	do
	:: atomic {
#ifdef MUTANT_NO_REVOKE
		r2 = RES(v);
#else
		r2 = (t > BOR(v) -> MIN(RES(v), t - BOR(v)) : 0);
#endif
		nv = t + BOR(v) * B_ONE + r2 * R_ONE
	   };
		atomic {
			if
			:: word == v -> word = nv; CONSERVED; break
			:: else -> v = word
			fi
		}
	od;
	atomic { room = (t > BOR(v) + r2 -> t - BOR(v) - r2 : 0); v = 0; nv = 0; r2 = 0 };
	if
	:: room > 0 ->
		atomic { w = waiters; nw = MIN(room, w); w = 0; room = 0 };
		if
#ifndef MUTANT_NO_GROW_WAKE
		:: nw > 0 -> wake_waiters(nw)
#endif
		:: else -> nw = 0
		fi
	:: else -> skip
	fi
}

/* "waited >= KSYNC_LIMITER_STARVE_NS" may become true at any note point. */
inline may_age()
{
	if
	:: !lng -> lng = true
	:: true -> skip
	fi
}

inline note_lost()
{
	may_age();
	if
	:: lng -> starving = true	/* fetch_or */
	:: else -> skip
	fi
}

inline note_served()
{
	may_age();
	if
	:: !lng && starving -> starving = false	/* fetch_and */
	:: else -> skip
	fi
}

#define LIM_LOCALS \
	byte v, nv, park, w, nw, k, m, d, dd, r, i, r2, room; \
	bool got, done, fromR, ok, st, woken, lng, announced

/* ksync_limiter_acquire_until, then ksync_limiter_release if it got one */
proctype Thread(byte me; byte rounds; bool deadline)
{
	LIM_LOCALS;

	do
	:: i < rounds ->
		woken = false; lng = false;
#ifdef MUTANT_CLAIM_FIRST
		claim();
#endif
		take(false);
		if
		:: !got ->
			announce();
			do
			:: take(woken);
				if
				:: got ->
					if
					:: woken -> note_served()
					:: else -> leave()
					fi;
					break
				:: else -> skip
				fi;
				if
				:: woken ->
					note_lost();
					announce();
					woken = false
				:: else ->
					futex_wait(word == park, r, deadline);
					park = 0;
					if
					:: r == R_WOKEN -> r = 0; woken = true
					:: r == R_TIMEOUT -> r = 0; leave(); break
					:: else -> r = 0	/* EAGAIN, EINTR */
					fi
				fi
			od
		:: else -> skip
		fi;
		park = 0; woken = false; lng = false;
		if
		:: got ->
#ifndef MUTANT_CLAIM_FIRST
			claim();
#endif
			got = false; release()
		:: else ->
#ifdef MUTANT_CLAIM_FIRST
			atomic { occ-- };
#endif
			skip
		fi;
		i++
	:: i > 0 -> break	/* may stop after any round */
	:: else -> break
	od;
	FINISHED
}

/* limiter_attempt(op, woken): got, or park */
inline op_attempt()
{
	if
	:: woken ->
		announced = false;	/* the waker uncounted it */
		take(true);
		if
		:: got -> note_served()
		:: else -> note_lost()
		fi
	:: else ->
		if
		:: !announced -> take(false)
		:: else -> got = false
		fi
	fi;
	if
	:: !got ->
		if
		:: !announced -> announce(); announced = true
		:: else -> skip
		fi;
		take(false);
		if
		:: got -> leave(); announced = false
		:: else -> skip
		fi
	:: else -> skip
	fi;
	if
	:: got -> claim()
	:: else -> skip
	fi
}

/* limiter_abandon: the op ends without its permit */
inline abandon()
{
	park = 0;
	if
	:: woken ->
#ifndef MUTANT_NO_PASS_ON
		pass_on();
#endif
		woken = false
	:: else ->
		if
		:: announced -> leave()
		:: else -> skip
		fi
	fi;
	announced = false
}

proctype Op(byte me; byte rounds)
{
	LIM_LOCALS;

	do
	:: i < rounds ->
		woken = false; lng = false; announced = false;
		op_attempt();		/* ksync_op_start */
		if
		:: !got ->
			do
			:: if
				:: true -> skip
				:: true -> abandon(); break	/* deadline passed */
				fi;
				futex_wait(word == park, r, true);
				park = 0;
				if
				:: r == R_TIMEOUT -> r = 0; woken = false; abandon(); break
				:: r == R_WOKEN ->
					woken = true;
					if
					:: true -> skip
					:: true -> abandon(); break	/* cancel lost the race */
					fi
				:: else -> r = 0; woken = false	/* EAGAIN, EINTR */
				fi;
				op_attempt();
				if
				:: got -> break
				:: else -> skip
				fi;
				woken = false
			od
		:: else -> skip
		fi;
		park = 0; woken = false; lng = false;
		if
		:: got -> got = false; release()
		:: else -> skip
		fi;
		i++
	:: i > 0 -> break	/* may stop after any round */
	:: else -> break
	od;
	FINISHED
}

/* Sets the total twice: to any of 0 .. NS, then to 1 or NS (a thread
 * without a deadline must be able to finish). */
proctype Resizer(byte me)
{
	LIM_LOCALS;
	byte t;

	if
	:: t = 0
	:: t = 1
	:: t = 2
	fi;
	set_total(t);
	if
	:: t = 1
	:: t = 2
	fi;
	set_total(t);
	FINISHED
}

bool asleep_with_room, asleep_with_reservation;

init {
	if
	:: skip
	:: starving = true	/* left over from earlier contention */
	fi;
	atomic {
#if defined(RESIZE)
		RUN(Thread(0, 1, false));
		RUN(Op(1, 1));
		RUN(Resizer(2))
#elif defined(RESIZE_DL)
		RUN(Thread(0, 1, false));
		RUN(Thread(1, 1, true));
		RUN(Resizer(2))
#else
		RUN(Thread(0, 2, false));
		RUN(Thread(1, 1, true));
		RUN(Op(2, 1))
#endif
	};
	if
	:: running == 0 ->
		assert(RES(word) == 0);
		assert(waiters == 0 && owed == 0 && held == 0 && occ == 0 && !ANY_QUEUED);
		assert(BOR(word) == 0)
	:: timeout ->
		asleep_with_room = ANY_QUEUED && ROOM(word);
		asleep_with_reservation = ANY_QUEUED && RES(word) > 0;
		assert(!asleep_with_room);
		assert(!asleep_with_reservation);
		assert(false)	/* stuck */
	fi
}
