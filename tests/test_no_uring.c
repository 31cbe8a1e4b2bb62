/* SPDX-License-Identifier: MIT */
/*
 * On a machine where io_uring is disabled (kernel.io_uring_disabled, or a
 * seccomp profile: EPERM) or missing (ENOSYS), the test suite still tells
 * the truth: every async test SKIPs with the reason, every thread test runs
 * and passes, nothing fails. And the examples say what is missing and exit
 * non-zero (2), instead of reporting broken mutual exclusion.
 *
 * The other test programs and the examples are run here, next to this one
 * in the build tree, under a seccomp filter that refuses io_uring_setup.
 * (Kernels without io_uring's futex ops, EOPNOTSUPP, take the same path in
 * ksync: the skip condition is ksync_require's answer.)
 */
#include "sandbox.h"

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>

/* The test programs with thread tests (see tests/meson.build); the others
 * need io_uring throughout, or are this one (or test_features, which plays
 * missing kernels itself). */
static const char *const programs[] = {
	"test_kernel", "test_event", "test_lock", "test_sem", "test_stress",
	"test_poller", "test_sdevent", "test_regress_sem", "test_regress_lock",
	"test_futex_fallback", "test_fork", "test_deadline", "test_trace", "test_bqueue",
	"test_regress_bqueue", "test_limiter", "test_regress_limiter", "test_flag", "test_guard",
};

static const char *const examples[] = { "shared_lock", "epoll_wait", "sd_service" };

static char build_dir[PATH_MAX];	/* the build tree's root */

static void find_build_dir(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	assert_true(n > 0);
	self[n] = 0;
	snprintf(build_dir, sizeof(build_dir), "%s", dirname(dirname(self)));
}

struct run {
	int status;		/* exit status, or 128 + signal */
	char out[1 << 16];	/* stdout and stderr, merged (truncated) */
	size_t len;
};

/* Run @path with io_uring_setup refused with @err; collect its output. */
static void run_refused(const char *path, int err, struct run *r)
{
	struct sandbox sb;
	int fds[2], status;
	pid_t pid;
	ssize_t n;

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		sandbox_init(&sb);
		sandbox_refuse(&sb, NR_IO_URING_SETUP, err);
		if (sandbox_install(&sb))
			_exit(126);
		alarm(240);
		execl(path, path, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	r->len = 0;
	while ((n = read(fds[0], r->out + r->len, sizeof(r->out) - 1 - r->len)) > 0)
		r->len += (size_t)n;
	r->out[r->len] = 0;
	/* Drain what did not fit, so the child cannot block on the pipe. */
	while (n > 0 || (n < 0 && errno == EINTR)) {
		char sink[4096];

		n = read(fds[0], sink, sizeof(sink));
	}
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Show a failed program's output, quoted so that the suite's runner does
 * not take its cmocka lines for ours. */
static void show(const struct run *r)
{
	for (const char *p = r->out; *p; ) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);

		if (p[0] == '[')
			print_message("    | %.*s\n", len - 1, p + 1);
		else
			print_message("    | %.*s\n", len, p);
		p += len + (nl != NULL);
	}
}

/* Lines of @out that start with @prefix, before cmocka's summary (which
 * lists the failed and skipped tests once more). */
static int count_lines(const char *out, const char *prefix)
{
	const char *end = strstr(out, " test(s) run.");
	int n = 0;

	for (const char *p = out; (p = strstr(p, prefix)) && (!end || p < end); p++)
		if (p == out || p[-1] == '\n')
			n++;
	return n;
}

static void programs_under(int err)
{
	const char *name = err == EPERM ? "EPERM" : "ENOSYS";
	int total_passed = 0, total_skipped = 0;
	static struct run r;

	for (unsigned i = 0; i < sizeof(programs) / sizeof(programs[0]); i++) {
		char path[PATH_MAX + 64];
		int passed = 0, skipped, failed, reasons;
		const char *p;

		snprintf(path, sizeof(path), "%s/tests/%s", build_dir, programs[i]);
		if (access(path, X_OK)) {
			print_message("  %-20s not built here\n", programs[i]);
			continue;
		}
		run_refused(path, err, &r);
		p = strstr(r.out, "[  PASSED  ] ");
		if (p)
			passed = atoi(p + 13);
		skipped = count_lines(r.out, "[  SKIPPED ] test_");
		failed = count_lines(r.out, "[  FAILED  ] test_");
		reasons = count_lines(r.out, "SKIP: ");
		print_message("  %-20s io_uring_setup %s: exit %d, %d passed, %d skipped, %d failed\n",
			      programs[i], name, r.status, passed, skipped, failed);
		if (r.status != 0 || failed || reasons < skipped) {
			show(&r);
			fail_msg("%s with io_uring refused (%s): exit %d, %d failed, %d skips "
				 "without a reason", programs[i], name, r.status, failed,
				 skipped - reasons);
		}
		total_passed += passed;
		total_skipped += skipped;
	}
	/* Both kinds exist: thread tests ran, async tests were skipped. */
	assert_true(total_passed > 0);
	assert_true(total_skipped > 0);
}

static void test_programs_skip_async_parts_eperm(void **state)
{
	(void)state;
	programs_under(EPERM);
}

static void test_programs_skip_async_parts_enosys(void **state)
{
	(void)state;
	programs_under(ENOSYS);
}

static void test_examples_say_what_is_missing(void **state)
{
	static const int errs[] = { EPERM, ENOSYS };
	static struct run r;
	int ran = 0;

	(void)state;
	for (unsigned e = 0; e < 2; e++) {
		for (unsigned i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
			char path[PATH_MAX + 64];

			snprintf(path, sizeof(path), "%s/examples/%s", build_dir, examples[i]);
			if (access(path, X_OK))
				continue;
			run_refused(path, errs[e], &r);
			print_message("  %-12s io_uring_setup %s: exit %d: %s", examples[i],
				      errs[e] == EPERM ? "EPERM" : "ENOSYS", r.status, r.out);
			if (r.status != 2 || !strstr(r.out, "io_uring") ||
			    strstr(r.out, "VIOLATED")) {
				show(&r);
				fail_msg("%s must say what is missing and exit 2", examples[i]);
			}
			ran++;
		}
	}
	if (!ran)	/* -Dexamples=false (the sanitizer builds): checked elsewhere */
		print_message("  no examples in this build\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_programs_skip_async_parts_eperm),
		cmocka_unit_test(test_programs_skip_async_parts_enosys),
		cmocka_unit_test(test_examples_say_what_is_missing),
	};

	find_build_dir();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
