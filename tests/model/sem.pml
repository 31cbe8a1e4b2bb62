/*
 * Model of the Semaphore protocol, lib/sem.c since b03f949 (issue 7's fix).
 *
 * Word: F | R * R_ONE (uapi/ksync/word.h: F bits 0-23, R bits 24-30; here
 * F is bits 0-3 and R_ONE is 16, CLOSED is not modelled, always 0).
 * F = free permits anyone may take; R = permits reserved for waiters the
 * kernel woke. `waiters` counts waiters that announced and were not woken:
 * whoever wakes subtracts what futex_wake reports. `starving` = STARVING in
 * flags. One step per atomic instruction of the C (relaxed and seq_cst
 * alike: the model is sequentially consistent; every load of a shared
 * variable is its own step). The futex wait is futex.pml's late
 * compare-and-enqueue; a wake picks any queued waiter.
 *
 *   take(woken)  loop: v = word; woken && R(v): CAS v - R_ONE; else F(v):
 *                CAS v - 1; else fail, park on v.
 *   release(n)   CAS loop: m = STARVING ? min(n, waiters, RMAX - R(v)) : 0
 *                (flags and waiters re-read on every try), word += (n - m)
 *                + m * R_ONE; then w = waiters; if w: k = wake(min(n, w)),
 *                waiters -= k; if m > k: unreserve(m - k).
 *   unreserve(d) CAS loop: d' = min(d, R(v)), stop if 0, move d' from R to
 *                F; then if waiters: wake(min(d', waiters)), subtract.
 *   pass_on      while R(v): CAS v - R_ONE + 1; then if waiters (loaded
 *                first) and F(word): wake(1), subtract.
 *   thread       take(false) or announce (waiters++) and loop: take(woken)
 *                -> done (leave unless woken); a woken take that fails:
 *                announce again, woken = false, take again; else futex_wait:
 *                0 -> woken; timeout -> leave, fail; EAGAIN/EINTR -> loop.
 *   async op     ksync_sem_attempt_async / ksync_sem_op_abandon / op.c:
 *                every wait ends woken, or by a timeout/cancel that won
 *                (not woken: leave, end), or by a cancel that lost to a wake
 *                (res 0 but the op ends: pass_on); after any failed attempt
 *                (and before the first arm) its deadline may have passed
 *                (leave, end). A cancel that finds the wait ended with
 *                EAGAIN ends the op exactly like that deadline case.
 *   STARVING     a woken waiter whose take fails may set it once it has
 *                waited "long" (a nondeterministic monotonic bit per
 *                acquire); one served while still "quick" clears it. The
 *                run starts with STARVING clear or set (both explored).
 *
 * Configurations (bounds; each round acquires and, if it got a permit,
 * releases it; a process may stop after any round; EINTR_BUDGET 1):
 *   default    F = 1; T0 thread, no deadline, <= 2 rounds; T1 thread with a
 *              deadline; O2 async op
 *   -DOPS      F = 1; T0 thread; O1, O2 async ops
 *   -DROUNDS   F = 1; T0 thread <= 2 rounds; O1 op <= 2 rounds; T2 thread
 *              with a deadline
 *   -DMULTI    F = 0; P2 releases 2 permits at once; T0 thread; O1 op
 *   -DMULTI_DL F = 0; P2 releases 2; T0 thread; T1 thread with a deadline
 *   -DMULTI4   F = 0; P3 releases 2; T0; T1 with a deadline; O2 (--deep)
 *   -DWIDE     default + T3 thread, no deadline (--deep)
 *   -DRMAX=1   clamp R to 1 (with MULTI: a release(2) may reserve only 1)
 *   -DANY_M    a release may reserve any m <= min(n, RMAX - R), whatever
 *              STARVING and waiters say (a superset of every flag timing)
 *   Release overflow (-EOVERFLOW changes nothing) is not modelled.
 *
 * Checks:
 *   - permit conservation: F + R + held == initial + minted (every step);
 *   - waiters never underflows, and waiters == counted waiters + wakes
 *     whose waker has not subtracted yet (every step); a queued waiter is
 *     always counted;
 *   - an R permit is only taken by a waiter the kernel woke since its last
 *     attempt (kwoken: the kernel's view, not the waiter's flag);
 *   - at the end: every process finished (with its permit, or by its own
 *     timeout/cancel), waiters == 0, R == 0, F == initial + minted; a stuck
 *     state is reported as asleep_with_free_permit, asleep_with_reservation
 *     or stuck.
 *
 * Mutants (-DMUTANT_x, each must make SPIN report an error):
 *   NO_WAKE           release does not wake
 *   NO_PASS_ON        a cancelled op that consumed a wake does not pass_on
 *   NO_REANNOUNCE     a woken waiter whose take failed parks without
 *                     announcing itself again
 *   NO_WAKER_DEC      the waker does not subtract the waiters it woke
 *   DOUBLE_DEC        the waker subtracts and the woken waiter leaves too
 *   NONWOKEN_TAKES_R  take lets a caller that was not woken take from R
 *   NO_UNRESERVE      release keeps reservations it woke nobody for
 *
 * Optional fairness check, not in CI: -DCHECK_PASS_ON_BARGE (while others
 * wait, a new arrival never takes a permit pass_on moved from R to F) fails
 * on this pass_on and passes with -DPASS_ON_KEEPS_R (see README.md).
 */
/* The kernel dequeues a waiter: its count now belongs to the waker. */
#define ON_WOKEN(j) assert(cnt[j]); cnt[j] = 0; owed++
#include "futex.pml"

#define R_ONE   16
#define FREE(v) ((v) & 15)
#define RES(v)  ((v) / R_ONE)
#ifndef RMAX
#define RMAX 15
#endif

#if defined(MULTI) || defined(MULTI_DL) || defined(MULTI4)
#define INIT_F 0
#else
#define INIT_F 1
#endif

byte word = INIT_F;
byte waiters = 0;
bool starving = false;

/* ghosts */
byte held = 0;		/* permits held by processes */
byte minted = 0;	/* permits released by producers */
bit cnt[MAXP];		/* process is counted in waiters */
byte owed = 0;		/* woken by the kernel, not yet subtracted by the waker */
#ifdef CHECK_PASS_ON_BARGE
byte passed = 0;	/* free permits that pass_on moved out of R */
#endif

#define MIN(a, b) ((a) < (b) -> (a) : (b))
#define CONSERVED assert(FREE(word) + RES(word) + held == INIT_F + minted)
#define NCOUNTED  (cnt[0] + cnt[1] + cnt[2] + cnt[3])
#define COUNTED   assert(waiters == NCOUNTED + owed)

/*
 * Step boundaries: every access to a shared variable is its own atomic
 * step; what a process computes from its own variables is folded into the
 * step before it (invisible to others), and dead locals are zeroed there
 * so that they do not split states.
 */

#ifdef MUTANT_NONWOKEN_TAKES_R
#define MAY_TAKE_R(woken) (RES(v) > 0)
#else
#define MAY_TAKE_R(woken) ((woken) && RES(v) > 0)
#endif

/* From v: the next word (nv, fromR), or failure (park = v). */
inline decide(woken)
{
	if
	:: MAY_TAKE_R(woken) -> nv = v - R_ONE; fromR = true
	:: else ->
		if
		:: FREE(v) > 0 -> nv = v - 1; fromR = false
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
				word = nv; got = true; done = true; held++; CONSERVED;
				assert(!fromR || kwoken[me]);
#ifdef CHECK_PASS_ON_BARGE
				/* while others wait, a new arrival only takes F
				 * beyond the permits pass_on moved out of R */
				assert(fromR || kwoken[me] || cnt[me] || NCOUNTED == 0 ||
				       FREE(v) > passed);
				passed = MIN(passed, FREE(word));
#endif
				kwoken[me] = false; v = 0; nv = 0; fromR = false
			:: else -> v = word; decide(woken)
			fi
		}
	od
}

inline announce()
{
	atomic { waiters++; cnt[me] = 1; COUNTED }
}

inline leave()
{
	atomic { assert(waiters > 0); waiters--; cnt[me] = 0; COUNTED }
}

/* wake_waiters(nr): futex_wake, then uncount the k the kernel woke (k is
 * left for the caller). */
inline wake_waiters(nr)
{
	futex_wake(nr, k);
	if
	:: k > 0 ->
		atomic {
			assert(waiters >= k && owed >= k);
#ifndef MUTANT_NO_WAKER_DEC
			waiters = waiters - k;
#endif
			owed = owed - k;
			COUNTED;
			nr = 0
		}
	:: else -> nr = 0
	fi
}

/* unreserve(d): up to d reservations nobody was woken for go back to F. */
inline unreserve()
{
	atomic { v = word; dd = MIN(d, RES(v)) };
	do
	:: dd == 0 -> break
	:: else ->
		atomic {
			if
			:: word == v -> word = v - dd * R_ONE + dd; v = 0; CONSERVED; break
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

/* ksync_sem_release(n); mint: the permits are new (a producer), else the
 * caller gives back n it holds. */
inline release(n, mint)
{
	v = word;
	do
#ifdef ANY_M
	:: atomic {	/* any reservation count the CAS could allow */
			m = MIN(n, RMAX - RES(v));
			do
			:: m > 0 -> m--
			:: break
			od
		};
#else
	:: atomic { m = 0; st = starving };
		if
		:: st -> atomic { w = waiters; m = MIN(MIN(n, w), RMAX - RES(v)); w = 0; st = false }
		:: else -> skip
		fi;
#endif
		atomic {
			if
			:: word == v ->
				word = v + (n - m) + m * R_ONE;
				if
				:: mint -> minted = minted + n
				:: else -> held = held - n
				fi;
				CONSERVED;
				v = 0;
				break
			:: else -> v = word
			fi
		}
	od;
	atomic { w = waiters; nw = MIN(n, w); w = 0; k = 0 };
	if
	:: nw > 0 ->
#ifdef MUTANT_NO_WAKE
		nw = 0
#else
		wake_waiters(nw)
#endif
	:: else -> skip
	fi;
	atomic {
#ifdef MUTANT_NO_UNRESERVE
		d = 0;
#else
		d = (m > k -> m - k : 0);
#endif
		m = 0; k = 0
	};
	if
	:: d > 0 -> unreserve()
	:: else -> skip
	fi
}

/* A woken waiter leaves without taking. */
#ifndef PASS_ON_KEEPS_R
inline pass_on()
{
	v = word;
	do
	:: RES(v) > 0 ->
		atomic {
			if
			:: word == v -> word = v - R_ONE + 1; v = 0; CONSERVED;
#ifdef CHECK_PASS_ON_BARGE
				passed++;
#endif
				break
			:: else -> v = word
			fi
		}
	:: else -> v = 0; break
	od;
	w = waiters;
	if
	:: w > 0 ->
		atomic { w = 0; ok = FREE(word) > 0 };
		if
		:: ok -> ok = false; nw = 1; wake_waiters(nw); k = 0
		:: else -> skip
		fi
	:: else -> w = 0
	fi
}
#else
/* Variant: keep the reservation and wake one waiter to take it; only if
 * nobody was woken does it go back to F (release's reserve/wake/unreserve
 * pattern with m = 1), so no new arrival can take it meanwhile. */
inline pass_on()
{
	atomic { v = word; ok = RES(v) > 0; v = 0 };
	w = waiters;
	if
	:: ok ->
		k = 0;
		if
		:: w > 0 -> w = 0; nw = 1; wake_waiters(nw)
		:: else -> skip
		fi;
		atomic { ok = false; d = (k == 0 -> 1 : 0); k = 0 };
		if
		:: d > 0 -> unreserve()
		:: else -> skip
		fi
	:: else ->
		if
		:: w > 0 ->
			atomic { w = 0; ok = FREE(word) > 0 };
			if
			:: ok -> ok = false; nw = 1; wake_waiters(nw); k = 0
			:: else -> skip
			fi
		:: else -> skip
		fi
	fi
}
#endif

/* "waited >= KSYNC_SEM_STARVE_NS" may become true at any note point. */
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

#define SEM_LOCALS \
	byte v, nv, park, w, nw, k, m, d, dd, r, i; \
	bool got, done, fromR, ok, st, woken, lng, announced

/* ksync_sem_acquire_until, then ksync_sem_release(1) if it got the permit */
proctype Thread(byte me; byte rounds; bool deadline)
{
	SEM_LOCALS;

	do
	:: i < rounds ->
		woken = false; lng = false;
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
#ifdef MUTANT_DOUBLE_DEC
					if
					:: woken -> leave()
					:: else -> skip
					fi;
#endif
					break
				:: else -> skip
				fi;
				if
				:: woken ->
					note_lost();
#ifndef MUTANT_NO_REANNOUNCE
					announce();
#endif
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
		:: got -> got = false; release(1, false)
		:: else -> skip
		fi;
		i++
	:: i > 0 -> break	/* may stop after any round */
	:: else -> break
	od;
	FINISHED
}

/* ksync_sem_attempt_async(op, woken): got, or park */
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
	fi
}

/* ksync_sem_op_abandon: the op ends without its permit */
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
	SEM_LOCALS;

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
		:: got -> got = false; release(1, false)
		:: else -> skip
		fi;
		i++
	:: i > 0 -> break	/* may stop after any round */
	:: else -> break
	od;
	FINISHED
}

proctype Producer(byte me; byte n)
{
	SEM_LOCALS;

	release(n, true);
	FINISHED
}

bool asleep_with_free_permit, asleep_with_reservation, reservation_leaked;

init {
	if
	:: skip
	:: starving = true	/* left over from earlier contention */
	fi;
	atomic {
#if defined(MULTI)
		RUN(Thread(0, 1, false));
		RUN(Op(1, 1));
		RUN(Producer(2, 2))
#elif defined(MULTI_DL)
		RUN(Thread(0, 1, false));
		RUN(Thread(1, 1, true));
		RUN(Producer(2, 2))
#elif defined(MULTI4)
		RUN(Thread(0, 1, false));
		RUN(Thread(1, 1, true));
		RUN(Op(2, 1));
		RUN(Producer(3, 2))
#elif defined(OPS)
		RUN(Thread(0, 1, false));
		RUN(Op(1, 1));
		RUN(Op(2, 1))
#elif defined(ROUNDS)
		RUN(Thread(0, 2, false));
		RUN(Op(1, 2));
		RUN(Thread(2, 1, true))
#elif defined(WIDE)
		RUN(Thread(0, 2, false));
		RUN(Thread(1, 1, true));
		RUN(Op(2, 1));
		RUN(Thread(3, 1, false))
#else
		RUN(Thread(0, 2, false));
		RUN(Thread(1, 1, true));
		RUN(Op(2, 1))
#endif
	};
	if
	:: running == 0 ->
		reservation_leaked = RES(word) != 0;
		assert(!reservation_leaked);
		assert(waiters == 0 && owed == 0 && held == 0 && !ANY_QUEUED);
		assert(FREE(word) == INIT_F + minted)
	:: timeout ->
		asleep_with_free_permit = ANY_QUEUED && FREE(word) > 0;
		asleep_with_reservation = ANY_QUEUED && RES(word) > 0;
		assert(!asleep_with_free_permit);
		assert(!asleep_with_reservation);
		assert(false)	/* stuck */
	fi
}
