/* SPDX-License-Identifier: MIT */
/*
 * ResourceGuard. It never waits, so there is no futex protocol to model:
 * these tests attack its atomicity instead.
 *
 * Claims:
 * - Errors: a second user gets -EBUSY at once, the current user entering
 *   again -EDEADLK, an exit by anyone but the user -EPERM (the guard
 *   unchanged), bad tokens and attributes -EINVAL, destroy while in use
 *   -EBUSY; ksync_guard_user() names the user (thread or token).
 * - Threads and tokens hammering one guard never overlap inside it, every
 *   failed enter is -EBUSY (never -EDEADLK for someone else, never a
 *   wait), every exit by a non-user is -EPERM and disturbs nothing, and
 *   the enters that succeeded equal the exits.
 * - Two threads exiting as the same token at once: exactly one succeeds.
 * - A forked child is not the user its parent was.
 */
#include "harness.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static struct ksync_guard guard = KSYNC_GUARD_INIT;

static uint64_t my_key(void)
{
	return KSYNC_KEY_THREAD | (uint64_t)syscall(SYS_gettid);
}

static int other_enter, other_exit;

static void *other_thread(void *arg)
{
	(void)arg;
	other_exit = ksync_guard_exit(&guard);
	other_enter = ksync_guard_enter(&guard);
	return NULL;
}

static void test_errors(void **state)
{
	struct ksync_guard g;

	(void)state;
	assert_int_equal(ksync_guard_init(&g, 4), -EINVAL);
	assert_int_equal(ksync_guard_init(&g, KSYNC_SHARED), 0);
	assert_int_equal(ksync_guard_init(&guard, 0), 0);
	assert_false(ksync_guard_busy(&guard));
	assert_int_equal(ksync_guard_user(&guard), 0);
	assert_int_equal(ksync_guard_exit(&guard), -EPERM);

	assert_int_equal(ksync_guard_enter(&guard), 0);
	assert_true(ksync_guard_busy(&guard));
	assert_true(ksync_guard_user(&guard) == my_key());
	assert_int_equal(ksync_guard_enter(&guard), -EDEADLK);
	assert_int_equal(ksync_guard_destroy(&guard), -EBUSY);
	join(spawn(other_thread, NULL));
	assert_int_equal(other_exit, -EPERM);
	assert_int_equal(other_enter, -EBUSY);
	assert_true(ksync_guard_user(&guard) == my_key());
	assert_int_equal(ksync_guard_enter_task(&guard, 3), -EBUSY);
	assert_int_equal(ksync_guard_exit_task(&guard, 3), -EPERM);
	assert_int_equal(ksync_guard_exit(&guard), 0);
	assert_int_equal(ksync_guard_exit(&guard), -EPERM);

	/* Tokens. */
	assert_int_equal(ksync_guard_enter_task(&guard, 0), -EINVAL);
	assert_int_equal(ksync_guard_enter_task(&guard, KSYNC_KEY_THREAD | 1), -EINVAL);
	assert_int_equal(ksync_guard_exit_task(&guard, 0), -EINVAL);
	assert_int_equal(ksync_guard_enter_task(&guard, 3), 0);
	assert_true(ksync_guard_user(&guard) == 3);
	assert_int_equal(ksync_guard_enter_task(&guard, 3), -EDEADLK);
	assert_int_equal(ksync_guard_enter_task(&guard, 4), -EBUSY);
	assert_int_equal(ksync_guard_enter(&guard), -EBUSY);
	assert_int_equal(ksync_guard_exit(&guard), -EPERM);
	assert_int_equal(ksync_guard_exit_task(&guard, 4), -EPERM);
	assert_int_equal(ksync_guard_exit_task(&guard, 3), 0);
	assert_int_equal(ksync_guard_exit_task(&guard, 3), -EPERM);
	assert_int_equal(ksync_guard_destroy(&guard), 0);
}

/* ---- hammering ------------------------------------------------------------------ */

enum { USERS = 4, TOKENS_PER_USER = 3, ROUNDS = 20000 };

static int inside;
static long entered, exited, busy, stray_exits;
static long protected_count;	/* only touched inside the guard */

struct user {
	unsigned idx;
	long entered, exited, busy, stray;
};

static void use_resource(void)
{
	assert_int_equal(__atomic_fetch_add(&inside, 1, __ATOMIC_RELAXED), 0);
	protected_count++;
	assert_int_equal(__atomic_fetch_sub(&inside, 1, __ATOMIC_RELAXED), 1);
}

static void *user_main(void *arg)
{
	struct user *u = arg;
	uint64_t seed = u->idx * 1000003 + 1;

	for (int i = 0; i < ROUNDS; i++) {
		/* As the thread itself, or as one of "its tasks". */
		uint64_t token = rnd(&seed) % (TOKENS_PER_USER + 1);
		int r;

		if (token)
			token += u->idx * TOKENS_PER_USER;
		r = token ? ksync_guard_enter_task(&guard, token) : ksync_guard_enter(&guard);
		if (r) {
			assert_int_equal(r, -EBUSY);
			u->busy++;
			spin_ns(rnd(&seed) % 300);
			/* Not the user: an exit must fail and change nothing. */
			if (rnd(&seed) % 4 == 0) {
				r = token ? ksync_guard_exit_task(&guard, token) : ksync_guard_exit(&guard);
				assert_int_equal(r, -EPERM);
				u->stray++;
			}
			continue;
		}
		u->entered++;
		use_resource();
		if (rnd(&seed) % 8 == 0)
			spin_ns(rnd(&seed) % 2000);
		r = token ? ksync_guard_exit_task(&guard, token) : ksync_guard_exit(&guard);
		assert_int_equal(r, 0);
		u->exited++;
		spin_ns(rnd(&seed) % 1000);	/* let the others in */
	}
	return NULL;
}

static void test_hammer(void **state)
{
	struct user users[USERS];
	pthread_t t[USERS];

	(void)state;
	assert_int_equal(ksync_guard_init(&guard, 0), 0);
	for (unsigned i = 0; i < USERS; i++) {
		users[i] = (struct user){ .idx = i };
		t[i] = spawn(user_main, &users[i]);
	}
	for (unsigned i = 0; i < USERS; i++) {
		join(t[i]);
		entered += users[i].entered;
		exited += users[i].exited;
		busy += users[i].busy;
		stray_exits += users[i].stray;
	}
	print_message("guard: %ld uses, %ld refused (-EBUSY), %ld stray exits refused\n",
		      entered, busy, stray_exits);
	assert_int_equal(entered + busy, (long)USERS * ROUNDS);
	assert_int_equal(entered, exited);
	assert_int_equal(protected_count, entered);
	/* How often users collided depends on the scheduler: reported above,
	 * not asserted (test_errors refuses a second user deterministically). */
	assert_int_equal(ksync_guard_destroy(&guard), 0);
}

/* ---- two exits of one token --------------------------------------------------------- */

static int go;
static int exit_result[2];

static void *token_exit(void *arg)
{
	int i = (int)(uintptr_t)arg;

	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE))
		;
	exit_result[i] = ksync_guard_exit_task(&guard, 9);
	return NULL;
}

static void test_racing_exits(void **state)
{
	(void)state;
	for (int i = 0; i < 2000; i++) {
		pthread_t a, b;

		assert_int_equal(ksync_guard_enter_task(&guard, 9), 0);
		go = 0;
		a = spawn(token_exit, (void *)0);
		b = spawn(token_exit, (void *)1);
		__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
		join(a);
		join(b);
		assert_int_equal(exit_result[0] + exit_result[1], -EPERM);	/* one 0, one -EPERM */
		assert_false(ksync_guard_busy(&guard));
	}
}

/* ---- fork ---------------------------------------------------------------------- */

static void test_fork(void **state)
{
	struct ksync_guard *g;
	int status;
	pid_t pid;

	(void)state;
	g = mmap(NULL, sizeof(*g), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(g != MAP_FAILED);
	assert_int_equal(ksync_guard_init(g, KSYNC_SHARED), 0);
	assert_int_equal(ksync_guard_enter(g), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(ksync_guard_exit(g) == -EPERM && ksync_guard_enter(g) == -EBUSY ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(ksync_guard_exit(g), 0);
	assert_int_equal(ksync_guard_destroy(g), 0);
	munmap(g, sizeof(*g));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_hammer),
		cmocka_unit_test(test_racing_exits),
		cmocka_unit_test(test_fork),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
