/*
 * Model of the bounded queue's waiting protocol, lib/bqueue.c.
 *
 * What is modelled. The queue's contents (nitems items of CAP) change only
 * under the queue's internal lock; the lock itself is an atomic
 * test-and-set here (its futex protocol is the classic one and is tested,
 * not modelled). Each side (getters wait for items, putters for slots) has
 *   seq[s]  the futex word its waiters park on,
 *   reg[s]  the waiters registered on it (each counts itself in, under the
 *           lock, and out, without the lock),
 *   res[s]  units (items or slots) reserved for waiters the kernel woke
 *           (hand-off mode, starving[s]).
 * One Promela step per atomic instruction of the C code that can race with
 * another process; what a process computes from its own variables is
 * folded into the step before. Under the lock only the lock-free steps of
 * others (a leaver's reg--, unreserve, seq++ and reads) can interleave, so a
 * critical section is split exactly where it touches those variables.
 *
 * The kernel. futex_wait's compare-and-enqueue is one atomic step that may
 * come arbitrarily late (also an io_uring FUTEX_WAIT SQE submitted late).
 * Once queued a waiter leaves the kernel in exactly one of these ways,
 * each decided atomically: a wake dequeues it (woken); its deadline or a
 * cancel wins (only a waiter with a deadline); a signal (EINTR, at most
 * EINTR_BUDGET in a run). futex_wake picks ANY queued waiters (no FIFO is
 * assumed). An async op whose cancel lost to a wake (res 0) may still end:
 * it then leaves with a consumed wake (abandon(op, woken)).
 *
 * Processes (bounds), CAP 1:
 *   P0  putter, no deadline, puts NP0 items one by one
 *   P1  putter with a deadline/cancel, 1 item
 *   G0  getter, no deadline, NG0 items
 *   G1  getter with a deadline/cancel, 1 item
 *   -DCLOSE adds a closer that closes the queue at any moment.
 *   -DSTARVING starts both sides in hand-off mode; -DNO_P1 leaves P1 out.
 * "waited past the starvation bound" is a nondeterministic monotone bit
 * per waiter that may turn on at any attempt after a wake.
 *
 * Checks:
 *   - conservation: items put == items got + nitems, at every step;
 *     0 <= res[s] <= units available on s, at every step;
 *   - no stranded waiter: when nothing can move (SPIN's timeout) nobody is
 *     queued on a side's word while that side has a free unit;
 *   - at the end every registration has been undone (reg == 0, res == 0).
 *
 * Mutants (-DMUTANT_x), each must be caught:
 *   NO_WAKE      a put or get never wakes the other side
 *   NO_HAND_ON   a woken waiter that leaves does not hand its wake on
 *   NO_SEQ_BUMP  a leaver hands on without changing the word first
 *   STRICT_RULE  a producer wakes only if free < registered (not <=)
 *   NO_UNRESERVE a reservation nobody was woken for stays reserved
 *   CLOSE_NO_WAKE  close does not wake the getters (-DCLOSE)
 *   NO_DRAIN_WAKE  the getter that takes the last item of a closed queue
 *                does not wake the getters that wait (for items reserved
 *                for others) (-DCLOSE -DSTARVING)
 *
 * Named failures: sleeper_with_free_unit (a waiter asleep for good while
 * its side has a free unit, or after close), registration_left,
 * reservation_leaked, items_conserved, reserved_le_avail.
 *
 * Checks run by tests/model/run (states with -DCOLLAPSE, SPIN 6.5.2):
 *   bqueue                P0 2 items, G0 1 item             2,995,603 states
 *   bqueue-getters        P0 1 item, G0 2 items             1,539,325
 *   bqueue-cap2           CAP 2, P0 3 items                 2,705,319
 *   bqueue-close          + closer, P0 1 item, no P1          357,720
 *   bqueue-close-starving  the same in hand-off mode        1,292,582
 *   bqueue-acyclic        as bqueue, pan -l (no cycle)      5,991,205
 *   --deep: bqueue-wide (P0 2, G0 2) 24,985,876; bqueue-close-wide (with
 *   P1) 16,712,622; bqueue-starving 55,042,354.
 * About a CPU-minute in all (minutes of wall time on a loaded 2-vCPU
 * guest). Every mutant is caught in under 0.5 s. Not modelled: several
 * units per operation (put_many/get_many: the same rule with k units),
 * the internal lock's own futex protocol (an atomic test-and-set here),
 * FIFO/LIFO/PRIORITY storage (under the lock, tested), select (select.pml).
 */

#ifndef CAP
#define CAP 1
#endif
#ifndef NP0
#define NP0 2
#endif
#ifndef NG0
#define NG0 1
#endif
#ifndef EINTR_BUDGET
#define EINTR_BUDGET 1
#endif

#define GET 0
#define PUT 1
#define NPROC 5

#define R_WOKEN   0
#define R_EAGAIN  1
#define R_EINTR   2
#define R_TIMEOUT 3

byte nitems = 0;
bool closed = false;
byte seq[2];
byte reg[2];
byte res[2];
bool starving[2];
bool lk = false;

byte q[NPROC];		/* 0, or 1 + the side whose word the process is queued on */
byte eintr = EINTR_BUDGET;
byte put_total = 0, got_total = 0;	/* ghosts */
byte running = 0;
bool sleeper_with_free_unit = false;	/* what the end watcher reports */
bool registration_left = false, reservation_leaked = false;
bool items_conserved = false, reserved_le_avail = false;	/* only read when violated */

#define AVAIL(s)	((s) == GET -> nitems : CAP - nitems)
#define FREE(s)		(AVAIL(s) - res[s])

/* ---- kernel ---------------------------------------------------------------- */

inline futex_wait(s, v, r, abort_ok)
{
	atomic {
		if
		:: seq[s] == v -> q[me] = s + 1; r = R_WOKEN
		:: else -> r = R_EAGAIN
		fi
	};
	if
	:: r == R_WOKEN ->
end_parked:	if
		:: q[me] == 0 -> skip
		:: atomic { q[me] != 0 && abort_ok -> q[me] = 0; r = R_TIMEOUT }
		:: atomic { q[me] != 0 && eintr > 0 -> q[me] = 0; eintr--; r = R_EINTR }
		fi
	:: else -> skip
	fi
}

/* Wake up to n waiters queued on side s's word; k = how many. */
inline futex_wake(s, n, k)
{
	atomic {
		k = 0;
		do
		:: k < n && q[0] == s + 1 -> q[0] = 0; k++
		:: k < n && q[1] == s + 1 -> q[1] = 0; k++
		:: k < n && q[2] == s + 1 -> q[2] = 0; k++
		:: k < n && q[3] == s + 1 -> q[3] = 0; k++
		:: k < n && q[4] == s + 1 -> q[4] = 0; k++
		:: else -> break
		od
	}
}

inline lock()
{
	atomic { !lk -> lk = true }
}

inline unlock()
{
	lk = false
}

/* ---- the protocol ------------------------------------------------------------ */

/*
 * unreserve(s, d): up to d reservations nobody will take become free units
 * (lock-free, a CAS loop in C); if some did, bump the word and wake as a
 * producer of that many units would.
 */
inline unreserve(s, d)
{
	atomic { e = (res[s] < d -> res[s] : d); res[s] = res[s] - e };
#ifdef MUTANT_NO_UNRESERVE
	e = 0;
#endif
	if
	:: e > 0 ->
		seq[s]++;
		f = AVAIL(s);
		f = (f > res[s] -> f - res[s] : 0);
		atomic { n = reg[s]; e = (f <= n -> 1 : 0) };
		if
		:: e > 0 -> futex_wake(s, e, k)
		:: else -> skip
		fi
	:: else -> skip
	fi;
	atomic { e = 0; f = 0; n = 0; k = 0 }
}

/*
 * leave(s): the waiter stops waiting on side s without taking (timeout,
 * cancel, close, error). If it had consumed a wake (woken), that wake may
 * have been the only one owed to the parked waiters: give back a
 * reservation if there is one, change the word (a waiter deciding to park
 * right now must not sleep on the old value), and wake one if there is a
 * free unit and a registered waiter.
 */
inline leave(s)
{
	reg[s]--;
	if
	:: woken ->
#ifndef MUTANT_NO_HAND_ON
		atomic { if :: res[s] > 0 -> res[s]-- :: else -> skip fi };
#ifndef MUTANT_NO_SEQ_BUMP
		seq[s]++;
#endif
		f = AVAIL(s);
		f = (f > res[s] -> f - res[s] : 0);
		n = reg[s];
		if
		:: f > 0 && n > 0 -> futex_wake(s, 1, k)
		:: else -> skip
		fi;
#endif
		skip
	:: else -> skip
	fi;
	atomic { f = 0; n = 0; k = 0; woken = false }
}

/*
 * The producer side of a take: one unit went to side o (an item to the
 * getters, a slot to the putters). Under the lock: in hand-off mode reserve
 * it for a registered waiter that has no reservation yet; otherwise decide
 * whether a registered waiter may be left without a unit (free <= reg).
 * The wake itself comes after the unlock.
 */
inline produced(o)
{
	seq[o]++;
	n = reg[o];
	atomic {
		rsv = 0; wk = 0;
		if
		:: starving[o] && n > res[o] -> res[o]++; rsv = 1
		:: else ->
			f = FREE(o);
#ifdef MUTANT_STRICT_RULE
			wk = (f > 0 && f < n -> 1 : 0);
#else
			wk = (f > 0 && f <= n -> 1 : 0);
#endif
		fi;
		f = 0; n = 0
	}
}

inline wake_after(o)
{
#ifndef MUTANT_NO_WAKE
	if
	:: rsv > 0 ->
		futex_wake(o, 1, k);
		if
		:: k < rsv -> d = rsv - k; unreserve(o, d)
		:: else -> skip
		fi
	:: wk > 0 -> futex_wake(o, 1, k)
	:: else -> skip
	fi;
#endif
	atomic { rsv = 0; wk = 0; k = 0; d = 0 }
}

/*
 * One unit taken from side s by a waiter (woken: it consumed a wake since
 * its last attempt). Runs under the lock. got: 1 taken, 0 must wait,
 * 2 closed.
 */
inline take(s)
{
	atomic {
		if
		:: woken && !lng -> lng = true		/* has now waited long */
		:: true -> skip
		fi;
		if
		:: closed && (s == PUT || nitems == 0) -> got = 2
		:: else ->
			mine = (woken && res[s] > 0 -> 1 : 0);
			if
			:: mine + FREE(s) > 0 ->
				res[s] = res[s] - mine;
				if
				:: s == GET -> nitems--; got_total++
				:: else -> nitems++; put_total++
				fi;
				got = 1
			:: else -> got = 0
			fi;
			mine = 0
		fi
	}
}

inline waiter(s, abortable)
{
	woken = false; registered = false;
	lock();
	do
	:: true ->
		v = seq[s];	/* before the decision: a later change is seen */
		take(s);
		if
		:: got == 1 ->
			v = 0;
			if
			:: registered -> reg[s]--; registered = false
			:: else -> skip
			fi;
			if
			:: woken && !lng -> starving[s] = false
			:: else -> skip
			fi;
			produced(1 - s);
			/* the last item of a closed queue: nobody may sleep on */
			atomic { drained = (s == GET && closed && nitems == 0) };
			if
			:: drained -> seq[GET]++
			:: else -> skip
			fi;
			unlock();
			wake_after(1 - s);
#ifndef MUTANT_NO_DRAIN_WAKE
			if
			:: drained -> futex_wake(GET, NPROC, k); drained = false
			:: else -> skip
			fi;
#endif
			drained = false;
			break
		:: got == 2 ->
			v = 0;
			unlock();
			if
			:: registered -> leave(s); registered = false
			:: else -> skip
			fi;
			break
		:: got == 0 ->
			if
			:: woken && lng -> starving[s] = true
			:: else -> skip
			fi;
			if
			:: !registered -> reg[s]++; registered = true
			:: else -> skip
			fi;
			woken = false;
			unlock();
			futex_wait(s, v, r, abortable);
			v = 0;
			if
			:: r == R_WOKEN -> woken = true
			:: else -> skip
			fi;
			if
			:: r == R_TIMEOUT ->
				leave(s); registered = false; break
			:: abortable && r == R_WOKEN ->
				/* the cancel lost to the wake, the op ends anyway */
				if
				:: leave(s); registered = false; break
				:: true -> skip
				fi
			:: abortable && (r == R_EAGAIN || r == R_EINTR) ->
				/* awake but not woken (an op that now waits for
				 * the queue's lock): cancelled there, it owes no
				 * wake (every put wakes while someone sleeps, so
				 * free units never count on an unwoken waiter) */
				if
				:: leave(s); registered = false; break
				:: true -> skip
				fi
			:: else -> skip
			fi;
			r = 0;
			lock()
		fi
	od;
	atomic { woken = false; lng = false; got = 0 }
}

#define LOCALS bool woken, registered, lng, drained; byte v, r, got, mine, f, n, k, e, d, rsv, wk

proctype putter(byte me; byte count; bool abortable)
{
	LOCALS;
	byte i = 0;
	do
	:: i < count -> waiter(PUT, abortable); i++
	:: else -> break
	od;
	running--
}

proctype getter(byte me; byte count; bool abortable)
{
	LOCALS;
	byte i = 0;
	do
	:: i < count -> waiter(GET, abortable); i++
	:: else -> break
	od;
	running--
}

#ifdef CLOSE
proctype closer()
{
	byte k;
	lock();
	closed = true;
	seq[GET]++;
	seq[PUT]++;
	unlock();
#ifndef MUTANT_CLOSE_NO_WAKE
	futex_wake(GET, NPROC, k);
#endif
	futex_wake(PUT, NPROC, k);
	running--
}
#endif

#define STRANDED(s) ((q[0] == s + 1 || q[1] == s + 1 || q[2] == s + 1 || \
		      q[3] == s + 1 || q[4] == s + 1) && (FREE(s) > 0 || closed))

init {
	atomic {
#ifdef STARVING
		starving[GET] = true;	/* left on by earlier contention */
		starving[PUT] = true;
#endif
		running = 4;
		run putter(0, NP0, false);
#ifdef NO_P1
		running--;
#else
		run putter(1, 1, true);
#endif
		run getter(2, NG0, false);
		run getter(3, 1, true);
#ifdef CLOSE
		running++;
		run closer();
#endif
	}
	if
	:: running == 0 ->
		registration_left = reg[GET] != 0 || reg[PUT] != 0;
		assert(!registration_left);
		reservation_leaked = res[GET] != 0 || res[PUT] != 0;
		assert(!reservation_leaked)
	:: timeout ->
		/* stuck: only legitimate if every sleeper has nothing to take */
		sleeper_with_free_unit = STRANDED(GET) || STRANDED(PUT);
		assert(!sleeper_with_free_unit)
	fi
}

/* Invariants at every step. */
active proctype invariants()
{
end:	do
	:: atomic { !(put_total == got_total + nitems) -> assert(items_conserved) }
	:: atomic { !(res[GET] <= nitems && res[PUT] <= CAP - nitems) -> assert(reserved_le_avail) }
	od
}
