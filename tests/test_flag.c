/* SPDX-License-Identifier: MIT */
/*
 * Flag: set-once value holder. It never waits, so there is no futex
 * protocol to model: these tests attack its atomicity instead.
 *
 * Claims:
 * - Errors: value 0 (-EINVAL), unknown attribute (-EINVAL), reading an
 *   unset Flag (-EAGAIN); a second set is -EEXIST and reports the value
 *   the Flag holds, whoever set it.
 * - Many threads racing to set it: exactly one wins in every round, every
 *   loser learns the winner's value from its own failed set, and every
 *   reader that sees the Flag set sees that value and what the winner
 *   wrote before setting it (TSan checks the ordering).
 * - clear racing sets loses and duplicates nothing: every value that won a
 *   set comes back exactly once, from a clear or as the final value.
 * - A Flag in shared memory set by a child process is seen by its parent.
 */
#include "harness.h"

#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>

static void test_basics(void **state)
{
	struct ksync_flag f = KSYNC_FLAG_INIT, g;
	uint64_t v = 77, cur = 0;

	(void)state;
	assert_int_equal(ksync_flag_init(&g, 2), -EINVAL);
	assert_int_equal(ksync_flag_init(&g, KSYNC_SHARED), 0);
	assert_false(ksync_flag_is_set(&f));
	assert_int_equal(ksync_flag_get(&f, &v), -EAGAIN);
	assert_int_equal(v, 77);				/* untouched */
	assert_int_equal(ksync_flag_set(&f, 0, &cur), -EINVAL);
	assert_int_equal(cur, 0);
	assert_false(ksync_flag_is_set(&f));

	assert_int_equal(ksync_flag_set(&f, 5, &cur), 0);
	assert_int_equal(cur, 5);
	assert_true(ksync_flag_is_set(&f));
	assert_int_equal(ksync_flag_get(&f, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(ksync_flag_set(&f, 6, &cur), -EEXIST);
	assert_int_equal(cur, 5);
	assert_int_equal(ksync_flag_set(&f, 5, &cur), -EEXIST);	/* even the same value */
	assert_int_equal(ksync_flag_set(&f, 7, NULL), -EEXIST);
	assert_int_equal(ksync_flag_get(&f, &v), 0);
	assert_int_equal(v, 5);

	/* clear makes it settable again. */
	assert_int_equal(ksync_flag_clear(&f), 5);
	assert_int_equal(ksync_flag_clear(&f), 0);
	assert_int_equal(ksync_flag_get(&f, &v), -EAGAIN);
	assert_int_equal(ksync_flag_set(&f, UINT64_MAX, NULL), 0);
	assert_int_equal(ksync_flag_get(&f, &v), 0);
	assert_int_equal(v, UINT64_MAX);
}

/* ---- first setter wins -------------------------------------------------------- */

enum { SETTERS = 4, READERS = 2, ROUNDS = 3000 };

static struct ksync_flag flag;
static uint64_t payload[SETTERS + 1];	/* written by setter i before its set */
static pthread_barrier_t start, done;
static int winners[ROUNDS];
static uint64_t seen[ROUNDS][SETTERS];

static void *setter(void *arg)
{
	uint64_t me = (uintptr_t)arg, seed = me * 7919;

	for (int r = 0; r < ROUNDS; r++) {
		uint64_t cur = 0;
		int rc;

		pthread_barrier_wait(&start);
		spin_ns(rnd(&seed) % 2000);
		payload[me] = (uint64_t)r << 8 | me;	/* only read after our set wins */
		rc = ksync_flag_set(&flag, me, &cur);
		if (rc == 0) {
			__atomic_fetch_add(&winners[r], 1, __ATOMIC_RELAXED);
			assert_int_equal(cur, me);
		} else {
			assert_int_equal(rc, -EEXIST);
			assert_int_not_equal(cur, me);
		}
		seen[r][me - 1] = cur;
		pthread_barrier_wait(&done);
	}
	return NULL;
}

static void *reader(void *arg)
{
	(void)arg;
	for (int r = 0; r < ROUNDS; r++) {
		uint64_t v;

		pthread_barrier_wait(&start);
		while (ksync_flag_get(&flag, &v) == -EAGAIN)
			sched_yield();
		assert_true(v >= 1 && v <= SETTERS);
		/* What the winner wrote before its set is visible now. */
		assert_int_equal(payload[v], (uint64_t)r << 8 | v);
		pthread_barrier_wait(&done);
	}
	return NULL;
}

static void test_first_setter_wins(void **state)
{
	pthread_t t[SETTERS + READERS];

	(void)state;
	assert_int_equal(pthread_barrier_init(&start, NULL, SETTERS + READERS + 1), 0);
	assert_int_equal(pthread_barrier_init(&done, NULL, SETTERS + READERS + 1), 0);
	for (int i = 0; i < SETTERS; i++)
		t[i] = spawn(setter, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < READERS; i++)
		t[SETTERS + i] = spawn(reader, NULL);
	for (int r = 0; r < ROUNDS; r++) {
		uint64_t v;

		assert_int_equal(ksync_flag_init(&flag, 0), 0);
		pthread_barrier_wait(&start);
		pthread_barrier_wait(&done);
		assert_int_equal(winners[r], 1);
		assert_int_equal(ksync_flag_get(&flag, &v), 0);
		for (int i = 0; i < SETTERS; i++)
			assert_int_equal(seen[r][i], v);	/* every loser learnt the winner */
	}
	for (int i = 0; i < SETTERS + READERS; i++)
		join(t[i]);
	pthread_barrier_destroy(&start);
	pthread_barrier_destroy(&done);
}

/* ---- clear racing sets --------------------------------------------------------- */

enum { CLEAR_SETTERS = 3, CLEAR_SETS = 5000 };

static int clear_stop;
static uint64_t set_sum[CLEAR_SETTERS], cleared_sum;
static long set_wins[CLEAR_SETTERS], cleared;

/* Each setter tries CLEAR_SETS values; a winner waits until its value is
 * gone (cleared) before its next try, so sets and clears interleave
 * whatever the scheduler does, and the other setters race the clear. */
static void *clear_setter(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;

	for (uint64_t i = 1; i <= CLEAR_SETS; i++) {
		uint64_t v = i << 2 | me, cur;	/* unique per setter and attempt */
		int rc = ksync_flag_set(&flag, v, &cur);

		if (rc == 0) {
			set_sum[me] += v;
			set_wins[me]++;
			while (ksync_flag_get(&flag, &cur) == 0 && cur == v)
				sched_yield();
		} else {
			assert_int_equal(rc, -EEXIST);
			assert_true(cur != 0 && cur != v);
			sched_yield();
		}
	}
	return NULL;
}

static void *clearer(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&clear_stop, __ATOMIC_ACQUIRE)) {
		uint64_t v = ksync_flag_clear(&flag);

		if (v) {
			cleared_sum += v;
			cleared++;
		}
	}
	return NULL;
}

static void test_clear_races_set(void **state)
{
	pthread_t s[CLEAR_SETTERS], c;
	uint64_t sum = 0, last = 0;
	long wins = 0;

	(void)state;
	assert_int_equal(ksync_flag_init(&flag, 0), 0);
	c = spawn(clearer, NULL);
	for (unsigned i = 0; i < CLEAR_SETTERS; i++)
		s[i] = spawn(clear_setter, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < CLEAR_SETTERS; i++)
		join(s[i]);
	__atomic_store_n(&clear_stop, 1, __ATOMIC_RELEASE);
	join(c);
	for (unsigned i = 0; i < CLEAR_SETTERS; i++) {
		sum += set_sum[i];
		wins += set_wins[i];
	}
	if (ksync_flag_get(&flag, &last))
		last = 0;
	print_message("flag: %ld sets won, %ld of them cleared\n", wins, cleared);
	/* Every winning value came back exactly once: cleared, or still there. */
	assert_int_equal(wins, cleared + (last != 0));
	assert_true(sum == cleared_sum + last);
	assert_true(cleared > 0);
}

/* ---- processes ----------------------------------------------------------------- */

static void test_shared(void **state)
{
	struct ksync_flag *f;
	uint64_t v = 0;
	int status;
	pid_t pid;

	(void)state;
	f = mmap(NULL, sizeof(*f), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(f != MAP_FAILED);
	*f = (struct ksync_flag)KSYNC_FLAG_SHARED_INIT;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(ksync_flag_set(f, 1234, NULL) == 0 ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(ksync_flag_set(f, 99, &v), -EEXIST);
	assert_int_equal(v, 1234);
	munmap(f, sizeof(*f));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basics),
		cmocka_unit_test(test_first_setter_wins),
		cmocka_unit_test(test_clear_races_set),
		cmocka_unit_test(test_shared),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
