/*
 * KNOWN-BAD model: the Semaphore as it was at commit 3539cdc (lib/sem.c):
 * the futex word is the free-permit count; `waiters` counts announced
 * waiters (each decrements itself when it leaves); `handoff` beside the
 * word holds the permits reserved for woken waiters (low 7 bits here) and
 * STARVING (bit 7). take(), hand_on(), release(), note_wait() and the
 * thread/op paths follow the C line by line, one step per atomic access.
 * Kept to show that the model finds both bugs of issue 7; tests/model/run
 * expects an error from each configuration:
 *
 *   -DBUG1  STARVING preset, word 0; one thread acquires (no deadline), one
 *           releases 1. Finds: a waiter asleep forever with an unreserved
 *           permit free (assertion sleeper_with_free_permit).
 *   -DBUG2  binary semaphore (word 1), clean start, three threads each
 *           acquiring and releasing once (no timeouts), one of them twice.
 *           Finds: a reservation that no woken waiter will ever use
 *           (assertion reservation_leaked); in that run other stuck states
 *           are not reported (pan -E), so the error is the leak itself.
 *
 * Kernel: futex.pml (late compare-and-enqueue, wake picks any waiter,
 * EINTR_BUDGET 1). "Waited past KSYNC_SEM_STARVE_NS" is a nondeterministic
 * monotonic bit per acquire that may turn on at any take after a wake. The
 * overflow path of release is not modelled (no release here can overflow).
 */
#include "futex.pml"

#define STARVING 128
#define MASK     127

#ifdef BUG1
byte word = 0;
byte handoff = STARVING;
#else
byte word = 1;
byte handoff = 0;
#endif
byte waiters = 0;

#define MIN(a, b) ((a) < (b) -> (a) : (b))
#define MAX(a, b) ((a) > (b) -> (a) : (b))

/* take(woken): got, or park = the count to sleep on. */
inline take(woken)
{
	got = false;
	v = word;
	do
	:: v == 0 -> park = v; break
	:: v != 0 && !woken && v <= (handoff & MASK) -> park = v; break
	:: v != 0 && (woken || v > (handoff & MASK)) ->
		atomic {
			if
			:: word == v -> word = v - 1; got = true
			:: else -> v = word
			fi
		};
		if
		:: got -> break
		:: else -> skip
		fi
	od;
	if
	:: got && woken ->
		h = handoff;
		do
		:: (h & MASK) ->
			atomic {
				if
				:: handoff == h -> handoff = h - 1; ok = true
				:: else -> h = handoff; ok = false
				fi
			};
			if
			:: ok -> break
			:: else -> skip
			fi
		:: else -> break
		od
	:: else -> skip
	fi;
	kwoken[me] = false
}

/* hand_on(n) */
inline hand_on(n)
{
	h = handoff;
	do
	:: (h & MASK) == 0 -> break
	:: (h & MASK) != 0 ->
		d = MIN(h & MASK, n);
		atomic {
			if
			:: handoff == h -> handoff = h - d; ok = true
			:: else -> h = handoff; ok = false
			fi
		};
		if
		:: ok -> break
		:: else -> skip
		fi
	od;
	w = waiters;
	if
	:: w != 0 ->
		if
		:: word != 0 -> nw = MIN(n, w); futex_wake(nw, k)
		:: else -> skip
		fi
	:: else -> skip
	fi
}

/* ksync_sem_release(n), no overflow */
inline release(n)
{
	reserve = 0;
	if
	:: (handoff & STARVING) ->
		w = waiters;
		reserve = MIN(n, w);
		if
		:: reserve -> handoff = handoff + reserve	/* fetch_add */
		:: else -> skip
		fi
	:: else -> skip
	fi;
	v = word;
	do
	:: atomic {
		if
		:: word == v -> word = v + n; break
		:: else -> v = word
		fi
	   }
	od;
	w = waiters;
	k = 0;
	if
	:: w != 0 -> nw = MAX(MIN(n, w), reserve); futex_wake(nw, k)
	:: else -> skip
	fi;
	if
	:: reserve > k -> nh = reserve - k; hand_on(nh)
	:: else -> skip
	fi
}

/* note_wait(served): only called by a woken waiter */
inline note_wait(served)
{
	if
	:: !lng -> lng = true
	:: true -> skip
	fi;
	if
	:: !served && lng -> handoff = handoff | STARVING	/* fetch_or */
	:: served && !lng ->
		if
		:: (handoff & STARVING) -> handoff = handoff & MASK	/* fetch_and */
		:: else -> skip
		fi
	:: else -> skip
	fi
}

#define SEM_LOCALS \
	byte v, h, d, w, k, nw, nh, park, reserve, r, i; \
	bool got, ok, woken, lng

/* ksync_sem_acquire_until, then (if keep == 0) ksync_sem_release(1) */
proctype Thread(byte me; byte rounds; bool deadline; bool keep)
{
	SEM_LOCALS;

	do
	:: i < rounds ->
		woken = false; lng = false;
		take(false);
		if
		:: !got ->
			waiters++;	/* announce */
			do
			:: take(woken);
				if
				:: woken -> note_wait(got)
				:: else -> skip
				fi;
				if
				:: got -> break
				:: else -> skip
				fi;
				futex_wait(word == park, r, deadline);
				if
				:: r == R_TIMEOUT -> break
				:: r == R_WOKEN -> woken = true
				:: else -> skip
				fi
			od;
			assert(waiters > 0);
			waiters--	/* leave */
		:: else -> skip
		fi;
		if
		:: got && !keep -> release(1)
		:: else -> skip
		fi;
		i++
	:: else -> break
	od;
	FINISHED
}

proctype Releaser(byte me; byte n)
{
	SEM_LOCALS;

	release(n);
	FINISHED
}

bool sleeper_with_free_permit, reservation_leaked;

init {
	atomic {
#ifdef BUG1
		RUN(Thread(0, 1, false, true));
		RUN(Releaser(1, 1))
#else
		RUN(Thread(0, 2, false, false));
		RUN(Thread(1, 1, false, false));
		RUN(Thread(2, 1, false, false))
#endif
	};
	if
	:: running == 0 -> skip
	:: timeout -> skip
	fi;
	reservation_leaked = (handoff & MASK) != 0;
	sleeper_with_free_permit = ANY_QUEUED && word > (handoff & MASK);
#ifdef BUG2
	assert(!reservation_leaked)
#else
	assert(!sleeper_with_free_permit);
	assert(!reservation_leaked);
	assert(running == 0 && !ANY_QUEUED)
#endif
}
