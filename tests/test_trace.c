/* SPDX-License-Identifier: MIT */
/*
 * Tracing: primitive names, and the BPF tool bpf/ksync-wait end to end.
 *
 *  - the name registry that ksync_set_name() keeps for tools;
 *  - ksync-wait attached to this very process (-b /proc/self/exe, the tests
 *    link the static library): waits whose number, world and outcome we
 *    know (threads and tasks, ok and timed out, lock and event), wakes;
 *  - ksync-wait -p PID on tests/trace_workload.c, once linked with the
 *    shared library and once statically: the tool finds the probes through
 *    /proc/PID/maps, names the primitives (set before and after it
 *    attached, a symbol, an address), gives one row per primitive, world
 *    and call site, symbolised stacks (a task's from where it started the
 *    op), hold times and the holders' release sites with the delay they
 *    caused, in the table, JSON and folded outputs; and the probes'
 *    is-enabled semaphores in the traced process go up on attach and back
 *    to 0 on detach.
 *
 * Every assertion on a duration is a lower bound the workload guarantees
 * (it holds a lock for HOLD_NS after the waiter is parked), never a
 * threshold a slow machine could miss.
 *
 * The tool's tests need root and a kernel with BPF; without them they are
 * skipped, with the reason on stderr.
 */
#include "harness.h"
#include "config.h"
#include "stapsdt.h"

#include "ksync/name.h"

#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#ifndef KSYNC_WAIT_TOOL
#define KSYNC_WAIT_TOOL ""	/* not built: see bpf/meson.build */
#endif

/* tests/trace_workload.c holds each lock this long after its waiter parked. */
#define WORKLOAD_HOLD_NS	5000000LL

#define SKIP(...) do {								\
	fprintf(stderr, "SKIP: " __VA_ARGS__);					\
	fprintf(stderr, "\n");							\
	skip();									\
} while (0)

/* ---- the name registry -------------------------------------------------- */

extern struct ksync_name_table ksync_name_table;

/* The slots that name @prim, and the last such slot's name. */
static int slots_of(const void *prim, const char **name)
{
	int n = 0;

	for (unsigned i = 0; i < KSYNC_NAME_SLOTS; i++) {
		const struct ksync_name_slot *s = &ksync_name_table.slot[i];

		if (peek(s->prim) == (uintptr_t)prim && s->name[0]) {
			assert_int_equal(peek(s->seq) & 1, 0);
			*name = s->name;
			n++;
		}
	}
	return n;
}

static void test_name_registry(void **state)
{
	static struct ksync_lock many[KSYNC_NAME_SLOTS + 1];
	struct ksync_lock lock = KSYNC_LOCK_INIT;
	const char *name = NULL;
	char longname[2 * KSYNC_NAME_MAX];
	int used = 0;

	(void)state;
	assert_int_equal(ksync_name_table.magic, KSYNC_NAME_MAGIC);
	assert_int_equal(ksync_name_table.version, KSYNC_NAME_VERSION);
	assert_int_equal(ksync_name_table.nslots, KSYNC_NAME_SLOTS);
	assert_int_equal(ksync_set_name(NULL, "x"), -EINVAL);

	assert_int_equal(slots_of(&lock, &name), 0);
	assert_int_equal(ksync_set_name(&lock, "first"), 0);
	assert_int_equal(slots_of(&lock, &name), 1);
	assert_string_equal(name, "first");
	/* Renaming keeps the slot. */
	assert_int_equal(ksync_set_name(&lock, "second"), 0);
	assert_int_equal(slots_of(&lock, &name), 1);
	assert_string_equal(name, "second");
	/* Long names are cut to KSYNC_NAME_MAX - 1 bytes. */
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(ksync_set_name(&lock, longname), 0);
	assert_int_equal(slots_of(&lock, &name), 1);
	assert_int_equal(strlen(name), KSYNC_NAME_MAX - 1);
	/* NULL and "" remove it; removing twice is fine. */
	assert_int_equal(ksync_set_name(&lock, NULL), 0);
	assert_int_equal(slots_of(&lock, &name), 0);
	assert_int_equal(ksync_set_name(&lock, "again"), 0);
	assert_int_equal(ksync_set_name(&lock, ""), 0);
	assert_int_equal(slots_of(&lock, &name), 0);
	assert_int_equal(ksync_set_name(&lock, NULL), 0);

	/* A full table says so, and unnaming frees a slot. */
	for (unsigned i = 0; i < KSYNC_NAME_SLOTS; i++)
		if (peek(ksync_name_table.slot[i].prim))
			used++;
	for (int i = 0; i < KSYNC_NAME_SLOTS - used; i++)
		assert_int_equal(ksync_set_name(&many[i], "many"), 0);
	assert_int_equal(ksync_set_name(&many[KSYNC_NAME_SLOTS], "one too many"), -ENOSPC);
	assert_int_equal(ksync_set_name(&many[0], NULL), 0);
	assert_int_equal(ksync_set_name(&many[KSYNC_NAME_SLOTS], "fits now"), 0);
	assert_int_equal(slots_of(&many[KSYNC_NAME_SLOTS], &name), 1);
	assert_string_equal(name, "fits now");
	for (int i = 0; i <= KSYNC_NAME_SLOTS; i++)
		assert_int_equal(ksync_set_name(&many[i], NULL), 0);
}

#if KSYNC_HAVE_SDT

/* ---- the tool as a child process ---------------------------------------- */

struct child {
	pid_t pid;
	int out;		/* its stdout (and stderr for the tool) */
	int in;			/* its stdin, or -1 */
	char *buf;		/* everything it printed, NUL-terminated */
	size_t len, cap;
	bool eof;
};

static void child_start(struct child *c, const char *path, char *const argv[], bool with_stdin,
			bool stderr_too)
{
	int out[2], in[2] = { -1, -1 };

	memset(c, 0, sizeof(*c));
	c->cap = 1 << 16;
	c->buf = calloc(1, c->cap);
	c->in = -1;
	assert_non_null(c->buf);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	if (with_stdin)
		assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	fflush(NULL);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		if (stderr_too)
			dup2(out[1], STDERR_FILENO);
		if (with_stdin)
			dup2(in[0], STDIN_FILENO);
		execv(path, argv);
		fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	close(out[1]);
	c->out = out[0];
	if (with_stdin) {
		close(in[0]);
		c->in = in[1];
	}
}

/* Read what the child printed, waiting up to @ms for more. */
static void child_read(struct child *c, int ms)
{
	struct pollfd pfd = { .fd = c->out, .events = POLLIN };
	ssize_t n;

	if (c->eof || poll(&pfd, 1, ms) <= 0)
		return;
	if (c->len + 4096 + 1 > c->cap) {
		c->cap *= 2;
		c->buf = realloc(c->buf, c->cap);
		assert_non_null(c->buf);
	}
	n = read(c->out, c->buf + c->len, c->cap - c->len - 1);
	if (n <= 0) {
		c->eof = true;
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
}

/* Wait until the child printed @what; false if it ended first (20 s max). */
static bool child_wait_for(struct child *c, const char *what)
{
	int64_t end = ksync_clock_ns(CLOCK_MONOTONIC) + 20000000000LL;

	while (!strstr(c->buf, what)) {
		if (c->eof || ksync_clock_ns(CLOCK_MONOTONIC) > end)
			return false;
		child_read(c, 100);
	}
	return true;
}

static void child_say(struct child *c, const char *line)
{
	size_t n = strlen(line);

	assert_int_equal(write(c->in, line, n), (ssize_t)n);
}

/* Read to EOF (or 20 s), reap it, and return its exit status. */
static int child_end(struct child *c)
{
	int64_t end = ksync_clock_ns(CLOCK_MONOTONIC) + 20000000000LL;
	int status;

	while (!c->eof && ksync_clock_ns(CLOCK_MONOTONIC) < end)
		child_read(c, 100);
	if (!c->eof)
		kill(c->pid, SIGKILL);
	assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
	close(c->out);
	if (c->in >= 0)
		close(c->in);
	assert_true(c->eof);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void skip_unless_tool_runs(void)
{
	if (!KSYNC_WAIT_TOOL[0])
		SKIP("ksync-wait is not built (see the meson setup messages)");
	if (access(KSYNC_WAIT_TOOL, X_OK))
		SKIP("%s: %s", KSYNC_WAIT_TOOL, strerror(errno));
	if (geteuid() != 0)
		SKIP("loading BPF programs needs root");
	if (ksync_require(KSYNC_FEAT_FUTEX2 | KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX))
		SKIP("the kernel lacks futex2 or io_uring futex operations");
}

/* Start the tool with @args; skip if it may not load BPF, fail if it does
 * not attach. */
static void tool_start(struct child *t, char *const args[])
{
	char *argv[32] = { "ksync-wait" };
	int n = 1;

	for (; args[n - 1]; n++) {
		assert_true(n < 31);
		argv[n] = args[n - 1];
	}
	argv[n] = NULL;
	child_start(t, KSYNC_WAIT_TOOL, argv, false, true);
	if (!child_wait_for(t, "Ctrl-C to end")) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
		fprintf(stderr, "%s", t->buf);
		if (strstr(t->buf, "Operation not permitted"))
			SKIP("ksync-wait may not load BPF programs here");
		fail_msg("ksync-wait did not attach");
	}
}

/* SIGINT, like Ctrl-C: the tool prints its final report and exits 0. */
static void tool_stop(struct child *t)
{
	int status;

	assert_int_equal(kill(t->pid, SIGINT), 0);
	status = child_end(t);
	fprintf(stderr, "---- ksync-wait output ----\n%s---------------------------\n", t->buf);
	assert_int_equal(status, 0);
}

/* ---- reading its JSON --------------------------------------------------- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *s = NULL;
	size_t cap = 0;
	ssize_t n;

	assert_non_null(f);
	n = getdelim(&s, &cap, '\0', f);
	fclose(f);
	assert_true(n > 0);
	return s;
}

static json_object *parse_json(const char *text)
{
	json_object *j = json_tokener_parse(text);

	if (!j)
		fail_msg("the tool's JSON does not parse:\n%s", text);
	return j;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no \"%s\" in %s", key, json_object_to_json_string(o));
	return v;
}

static int64_t get_int(json_object *o, const char *key)
{
	return json_object_get_int64(get(o, key));
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v = get(o, key);

	return json_object_is_type(v, json_type_null) ? NULL : json_object_get_string(v);
}

/* Does any frame of any stack of @row name function @func? */
static bool stacks_have(json_object *row, const char *func)
{
	json_object *stacks = get(row, "stacks");

	for (size_t i = 0; i < json_object_array_length(stacks); i++) {
		json_object *frames = get(json_object_array_get_idx(stacks, i), "frames");

		for (size_t j = 0; j < json_object_array_length(frames); j++) {
			const char *f = get_str(json_object_array_get_idx(frames, j), "func");

			if (f && !strcmp(f, func))
				return true;
		}
	}
	return false;
}

/* The one row of @array (waits or holders) matching name, world (NULL: any)
 * and call-site function (NULL: any). Fails if there is not exactly one. */
static json_object *find_row(json_object *report, const char *array, const char *name,
			     const char *world, const char *site, pid_t pid)
{
	json_object *rows = get(report, array), *found = NULL;

	for (size_t i = 0; i < json_object_array_length(rows); i++) {
		json_object *r = json_object_array_get_idx(rows, i), *s;

		if (get_int(r, "pid") != pid || strcmp(get_str(r, "name"), name))
			continue;
		if (world && strcmp(get_str(r, "world"), world))
			continue;
		s = get(r, "site");
		if (site && (json_object_is_type(s, json_type_null) || !get_str(s, "func") ||
			     strcmp(get_str(s, "func"), site)))
			continue;
		if (found)
			fail_msg("two %s rows for %s %s %s", array, name, world ? world : "",
				 site ? site : "");
		found = r;
	}
	if (!found)
		fail_msg("no %s row for %s %s %s", array, name, world ? world : "", site ? site : "");
	return found;
}

static int count_rows(json_object *report, const char *array, const char *name, pid_t pid)
{
	json_object *rows = get(report, array);
	int n = 0;

	for (size_t i = 0; i < json_object_array_length(rows); i++) {
		json_object *r = json_object_array_get_idx(rows, i);

		if (get_int(r, "pid") == pid && !strcmp(get_str(r, "name"), name))
			n++;
	}
	return n;
}

/* ---- the probes' semaphores in another process -------------------------- */

struct sem_sum {
	int mem;		/* /proc/PID/mem */
	uint64_t bias;
	unsigned sum;
	int n;
};

static void add_semaphore(const struct stapsdt_probe *p, void *arg)
{
	struct sem_sum *s = arg;
	unsigned short v;

	if (strcmp(p->provider, KSYNC_PROBE_PROVIDER) || !p->sem)
		return;
	assert_int_equal(pread(s->mem, &v, sizeof(v), (off_t)(p->sem + s->bias)), sizeof(v));
	s->sum += v;
	s->n++;
}

/* The sum of the ksync semaphores @file has in process @pid (it maps it). */
static unsigned semaphores_in(pid_t pid, const char *file)
{
	char path[64], line[PATH_MAX + 128], real[PATH_MAX];
	struct sem_sum s = { .bias = UINT64_MAX };
	struct elf_file f;
	FILE *maps;

	assert_non_null(realpath(file, real));
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	maps = fopen(path, "re");
	assert_non_null(maps);
	while (fgets(line, sizeof(line), maps)) {
		unsigned long long start, off;
		char name[PATH_MAX] = "";

		if (sscanf(line, "%llx-%*x %*s %llx %*s %*s %4095[^\n]", &start, &off, name) == 3 &&
		    !strcmp(name, real) && off == 0) {
			s.bias = start;
			break;
		}
	}
	fclose(maps);
	assert_true(s.bias != UINT64_MAX);
	elf_open(&f, real);
	s.bias -= elf_first_load(&f);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	s.mem = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(s.mem >= 0);
	stapsdt_each(&f, add_semaphore, &s);
	close(s.mem);
	elf_close(&f);
	assert_true(s.n >= 6);	/* every probe of uapi/ksync/probe.h */
	return s.sum;
}

/* ---- ksync-wait on this process ------------------------------------------ */

/*
 * This process's own semaphores are read directly (lib/kernel.c), not
 * through /proc/self/mem: on Linux 6.18, reading them that way while a
 * tracer is attached leaves them raised after it detaches.
 */
extern unsigned short ksync_wait_begin_semaphore, ksync_wait_end_semaphore,
	ksync_wake_begin_semaphore, ksync_wake_semaphore, ksync_op_start_semaphore,
	ksync_name_semaphore;

static unsigned self_semaphores(void)
{
	return peek(ksync_wait_begin_semaphore) + peek(ksync_wait_end_semaphore) +
	       peek(ksync_wake_begin_semaphore) + peek(ksync_wake_semaphore) +
	       peek(ksync_op_start_semaphore) + peek(ksync_name_semaphore);
}

#define LOCK_WAITERS	3
#define EVENT_WAITERS	2
#define HOLD_NS		20000000	/* the lock is held this long */

static struct ksync_lock lock = KSYNC_LOCK_INIT;
static struct ksync_event event = KSYNC_EVENT_INIT;
static int started;			/* waiter threads about to wait */

static void *lock_waiter(void *arg)
{
	(void)arg;
	__atomic_fetch_add(&started, 1, __ATOMIC_RELEASE);
	assert_int_equal(ksync_lock_acquire(&lock), 0);
	sleep_ns(1000000);
	assert_int_equal(ksync_lock_release(&lock), 0);
	return NULL;
}

static void *event_waiter(void *arg)
{
	(void)arg;
	__atomic_fetch_add(&started, 1, __ATOMIC_RELEASE);
	assert_int_equal(ksync_event_wait(&event), 0);
	return NULL;
}

static struct ksync_barrier barrier = KSYNC_BARRIER_INIT(2);
static struct ksync_revent revent = KSYNC_REVENT_INIT;

static void *barrier_waiter(void *arg)
{
	(void)arg;
	__atomic_fetch_add(&started, 1, __ATOMIC_RELEASE);
	assert_int_equal(ksync_barrier_wait(&barrier), 0);
	return NULL;
}

static void *revent_waiter(void *arg)
{
	(void)arg;
	__atomic_fetch_add(&started, 1, __ATOMIC_RELEASE);
	assert_int_equal(ksync_revent_wait(&revent), 0);
	return NULL;
}

static int done;

static void on_done(struct ksync_op *op)
{
	(void)op;
	done = 1;
}

/*
 * Lock: held by this thread for HOLD_NS while LOCK_WAITERS threads wait
 * (thread world, ok) and one loop task waits with a 5 ms deadline (uring
 * world, timed out). Event: EVENT_WAITERS threads and one task wait, one
 * set wakes them all (one wake, all ok).
 */
static __attribute__((noinline)) void workload(void)
{
	pthread_t th[LOCK_WAITERS + EVENT_WAITERS];
	struct ksync_loop loop;
	struct ksync_op op;
	struct timespec dl;

	assert_int_equal(ksync_loop_init(&loop, 8, 0), 0);

	assert_int_equal(ksync_lock_acquire(&lock), 0);
	started = 0;
	for (int i = 0; i < LOCK_WAITERS; i++)
		th[i] = spawn(lock_waiter, NULL);
	wait_until(peek(started) == LOCK_WAITERS);

	ksync_op_lock(&op, &lock, 0x7a5c);	/* any non-zero task token */
	dl = in_ns(5000000);
	assert_int_equal(ksync_op_set_deadline(&op, CLOCK_MONOTONIC, &dl), 0);
	done = 0;
	assert_true(loop_start(&loop, &op, on_done) >= 0);
	run_loop_until(&loop, done);
	assert_int_equal(op.result, -ETIMEDOUT);

	sleep_ns(HOLD_NS);
	assert_int_equal(ksync_lock_release(&lock), 0);
	for (int i = 0; i < LOCK_WAITERS; i++)
		join(th[i]);

	started = 0;
	for (int i = 0; i < EVENT_WAITERS; i++)
		th[i] = spawn(event_waiter, NULL);
	ksync_op_event(&op, &event);
	done = 0;
	assert_true(loop_start(&loop, &op, on_done) >= 0);
	assert_false(done);
	wait_until(peek(started) == EVENT_WAITERS);
	sleep_ns(10000000);
	assert_int_equal(ksync_event_set(&event), 1);
	run_loop_until(&loop, done);
	assert_int_equal(op.result, 0);
	for (int i = 0; i < EVENT_WAITERS; i++)
		join(th[i]);

	/* A barrier and a resettable event: one thread waiter each. */
	started = 0;
	th[0] = spawn(barrier_waiter, NULL);
	th[1] = spawn(revent_waiter, NULL);
	wait_until(peek(started) == 2);
	wait_until(ksync_barrier_waiting(&barrier) == 1);
	sleep_ns(10000000);
	assert_int_equal(ksync_barrier_wait(&barrier), 1);
	assert_int_equal(ksync_revent_set(&revent), 1);
	assert_int_equal(ksync_revent_clear(&revent), 1);
	join(th[0]);
	join(th[1]);

	ksync_loop_exit(&loop);
	assert_int_equal(ksync_lock_destroy(&lock), 0);
}

/* The sum of one JSON field over every row of @name in @world. */
static int64_t sum_rows(json_object *report, const char *array, const char *name,
			const char *world, const char *key, const char *sub)
{
	json_object *rows = get(report, array);
	int64_t sum = 0;

	for (size_t i = 0; i < json_object_array_length(rows); i++) {
		json_object *r = json_object_array_get_idx(rows, i);

		if (get_int(r, "pid") != getpid() || strcmp(get_str(r, "name"), name))
			continue;
		if (world && strcmp(get_str(r, "world"), world))
			continue;
		sum += sub ? get_int(get(r, key), sub) : get_int(r, key);
	}
	return sum;
}

static void test_self(void **state)
{
	/* lock and event are unnamed file-scope statics: their symbols. */
	const char *lock_name = "lock", *event_name = "event";
	char exe[PATH_MAX], pid[16];
	char *args[] = { "-b", exe, "-p", pid, "--json", NULL };
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	json_object *report, *r;
	struct child t;
	const char *json;

	(void)state;
	skip_unless_tool_runs();
	/* The tool resolves -b itself: /proc/self/exe would be the tool. */
	assert_true(n > 0);
	exe[n] = '\0';
	snprintf(pid, sizeof(pid), "%d", (int)getpid());

	/* Unattached, the probes are off: their arguments cost nothing. */
	assert_int_equal(self_semaphores(), 0);
	tool_start(&t, args);
	/* Attached to this pid: every semaphore is up. */
	assert_true(peek(ksync_wait_begin_semaphore) && peek(ksync_wait_end_semaphore) &&
		    peek(ksync_wake_begin_semaphore) && peek(ksync_wake_semaphore) &&
		    peek(ksync_op_start_semaphore) && peek(ksync_name_semaphore));

	workload();
	tool_stop(&t);
	/* Detached again: the semaphores drop back to 0. */
	wait_until(self_semaphores() == 0);

	json = strchr(t.buf, '{');
	assert_non_null(json);
	report = parse_json(json);

	/* Every waiter waited out the whole hold; the task timed out. */
	r = find_row(report, "waits", lock_name, "thread", "lock_waiter", getpid());
	assert_string_equal(get_str(r, "name_source"), "symbol");
	assert_string_equal(get_str(r, "kind"), "lock");
	assert_int_equal(get_int(r, "waits"), LOCK_WAITERS);
	assert_int_equal(get_int(get(r, "outcomes"), "ok"), LOCK_WAITERS);
	assert_int_equal(get_int(get(r, "outcomes"), "timeout"), 0);
	assert_true(get_int(r, "max_ns") >= get_int(r, "avg_ns"));
	r = find_row(report, "waits", lock_name, "uring", NULL, getpid());
	assert_int_equal(get_int(r, "waits"), 1);
	assert_int_equal(get_int(get(r, "outcomes"), "timeout"), 1);
	assert_int_equal(get_int(get(r, "outcomes"), "ok"), 0);
	assert_true(stacks_have(r, "workload"));	/* where it started the op */
	/* The releases woke the waiters: at least the first one. */
	assert_true(sum_rows(report, "holders", lock_name, NULL, "wakes", NULL) >= 1);
	assert_true(sum_rows(report, "holders", lock_name, NULL, "woken", NULL) >= 1);

	r = find_row(report, "waits", event_name, "thread", "event_waiter", getpid());
	assert_string_equal(get_str(r, "kind"), "event");
	assert_int_equal(get_int(r, "waits"), EVENT_WAITERS);
	assert_int_equal(get_int(get(r, "outcomes"), "ok"), EVENT_WAITERS);
	assert_true(json_object_is_type(get(r, "hold"), json_type_null));
	r = find_row(report, "waits", event_name, "uring", "workload", getpid());
	assert_int_equal(get_int(r, "waits"), 1);
	assert_int_equal(get_int(get(r, "outcomes"), "ok"), 1);
	/* One set, one futex_wake for everybody, at the set() call site. */
	r = find_row(report, "holders", event_name, NULL, "workload", getpid());
	assert_int_equal(get_int(r, "wakes"), 1);
	assert_true(get_int(r, "woken") >= 1 && get_int(r, "woken") <= EVENT_WAITERS + 1);
	assert_true(get_int(r, "delay_ns") > 0);

	/* The newer kinds are named too. */
	r = find_row(report, "waits", "barrier", "thread", "barrier_waiter", getpid());
	assert_string_equal(get_str(r, "kind"), "barrier");
	assert_int_equal(get_int(get(r, "outcomes"), "ok"), 1);
	r = find_row(report, "waits", "revent", "thread", "revent_waiter", getpid());
	assert_string_equal(get_str(r, "kind"), "revent");
	assert_int_equal(get_int(get(r, "outcomes"), "ok"), 1);

	json_object_put(report);
	free(t.buf);
}

/* ---- regression: every stack kept, however many ------------------------- */

/*
 * 512 waits, each from its own stack (a path of DEEP_LEVELS calls, each to
 * one of two functions), each timing out at once (deadline in the past) on
 * a lock another thread holds. The tool once interned stacks in a
 * BPF_MAP_TYPE_STACK_TRACE, which keeps one stack per hash bucket and drops
 * a second stack that hashes to a taken bucket: a dozen stacks lost one
 * about one run in two hundred (a row whose call site came out null), and
 * 512 stacks lose some in every run. Every one must come out, with its site.
 */
#define DEEP_LEVELS	9
#define DEEP_STACKS	(1u << DEEP_LEVELS)

static struct ksync_lock deep_lock = KSYNC_LOCK_INIT;

static __attribute__((noinline)) int deep_left(unsigned path, int level);
static __attribute__((noinline)) int deep_right(unsigned path, int level);

static int deep_next(unsigned path, int level)
{
	static const struct timespec past = { 0, 1 };

	if (level == DEEP_LEVELS)
		return ksync_lock_acquire_until(&deep_lock, CLOCK_MONOTONIC, &past);
	return (path >> level & 1) ? deep_right(path, level + 1) : deep_left(path, level + 1);
}

/* Something after each call, so that none is a tail call: every level
 * keeps its frame and its return address. */
static __attribute__((noinline)) int deep_left(unsigned path, int level)
{
	int r = deep_next(path, level);

	__asm__ volatile("" ::: "memory");
	return r;
}

static __attribute__((noinline)) int deep_right(unsigned path, int level)
{
	int r = deep_next(path, level);

	__asm__ volatile("" ::: "memory");
	return r;
}

static void test_many_stacks(void **state)
{
	char exe[PATH_MAX], pid[16], json_path[] = "/tmp/ksync-wait-json-XXXXXX", json_arg[64];
	char *args[] = { "-b", exe, "-p", pid, json_arg, NULL };
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct holder h = { .lock = &deep_lock };
	json_object *report, *rows;
	int64_t waits = 0, timeouts = 0, nstacks = 0;
	struct child t;
	pthread_t th;
	char *json;
	int fd;

	(void)state;
	skip_unless_tool_runs();
	assert_true(n > 0);
	exe[n] = '\0';
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	fd = mkstemp(json_path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(json_arg, sizeof(json_arg), "--json=%s", json_path);

	th = spawn(holder_main, &h);
	wait_until(peek(h.held));
	assert_int_equal(h.ret, 0);
	tool_start(&t, args);
	for (unsigned path = 0; path < DEEP_STACKS; path++)
		assert_int_equal(deep_left(path, 0), -ETIMEDOUT);
	tool_stop(&t);
	__atomic_store_n(&h.release, 1, __ATOMIC_RELEASE);
	join(th);
	assert_int_equal(h.ret, 0);

	json = slurp(json_path);
	report = parse_json(json);
	assert_int_equal(get_int(report, "stacks_lost"), 0);
	rows = get(report, "waits");
	for (size_t i = 0; i < json_object_array_length(rows); i++) {
		json_object *r = json_object_array_get_idx(rows, i);

		if (get_int(r, "pid") != getpid() || strcmp(get_str(r, "name"), "deep_lock"))
			continue;
		/* Every row has its call site: one of the two functions. */
		assert_false(json_object_is_type(get(r, "site"), json_type_null));
		assert_true(!strcmp(get_str(get(r, "site"), "func"), "deep_left") ||
			    !strcmp(get_str(get(r, "site"), "func"), "deep_right"));
		waits += get_int(r, "waits");
		timeouts += get_int(get(r, "outcomes"), "timeout");
		nstacks += (int64_t)json_object_array_length(get(r, "stacks"));
	}
	assert_int_equal(waits, DEEP_STACKS);
	assert_int_equal(timeouts, DEEP_STACKS);
	assert_int_equal(nstacks, DEEP_STACKS);	/* one stack each, none shared */
	json_object_put(report);
	unlink(json_path);
	free(json);
	free(t.buf);
}

/* ---- ksync-wait -p on the workload program -------------------------------- */

static const char *const sites[] = {
	"wait_site_one", "wait_site_two", "task_site_one", "task_site_two",
	"release_held", "task_release",
};
#define NSITES (sizeof(sites) / sizeof(sites[0]))

struct workload_out {
	unsigned long long heap;
	int line[NSITES];
};

static void parse_workload(const char *out, struct workload_out *w)
{
	const char *p;

	memset(w, 0, sizeof(*w));
	p = strstr(out, "heap 0x");
	assert_non_null(p);
	w->heap = strtoull(p + 5, NULL, 16);
	for (size_t i = 0; i < NSITES; i++) {
		char key[64];

		snprintf(key, sizeof(key), "line %s ", sites[i]);
		p = strstr(out, key);
		assert_non_null(p);
		w->line[i] = atoi(p + strlen(key));
		assert_true(w->line[i] > 0);
	}
}

static int site_line(const struct workload_out *w, const char *site)
{
	for (size_t i = 0; i < NSITES; i++)
		if (!strcmp(sites[i], site))
			return w->line[i];
	fail_msg("unknown site %s", site);
	return 0;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), m = strlen(tail);

	return n >= m && !strcmp(s + n - m, tail);
}

/* A call site symbolised to the workload's function and source line. */
static void check_site(json_object *site, const char *func, int line)
{
	assert_false(json_object_is_type(site, json_type_null));
	assert_string_equal(get_str(site, "func"), func);
	assert_non_null(get_str(site, "file"));
	assert_true(ends_with(get_str(site, "file"), "trace_workload.c"));
	assert_int_equal(get_int(site, "line"), line);
}

/* A waiter row of the workload: one wait, parked, then held for a hold. */
static void check_wait_row(json_object *report, pid_t pid, const struct workload_out *w,
			   const char *name, const char *world, const char *site)
{
	json_object *r = find_row(report, "waits", name, world, site, pid), *longest, *hold, *hist;
	int64_t timed, count = 0;

	assert_string_equal(get_str(r, "kind"), "lock");
	check_site(get(r, "site"), site, site_line(w, site));
	assert_int_equal(get_int(r, "waits"), 1);
	timed = get_int(r, "timed");
	assert_int_equal(timed, 1);
	assert_int_equal(get_int(get(r, "outcomes"), "ok"), 1);
	assert_true(get_int(r, "total_ns") >= WORKLOAD_HOLD_NS);
	assert_true(get_int(r, "max_ns") >= WORKLOAD_HOLD_NS);
	assert_true(get_int(r, "p50_ns") > 0 && get_int(r, "p50_ns") <= get_int(r, "max_ns"));
	assert_true(get_int(r, "p99_ns") >= get_int(r, "p50_ns"));
	assert_true(get_int(r, "p99_ns") <= get_int(r, "max_ns"));
	hist = get(r, "histogram");
	for (size_t i = 0; i < json_object_array_length(hist); i++)
		count += get_int(json_object_array_get_idx(hist, i), "count");
	assert_int_equal(count, timed);
	/* Woken by the holder's release, then held (and so timed) itself. */
	hold = get(r, "hold");
	assert_int_equal(get_int(hold, "count"), 1);
	assert_true(get_int(hold, "max_ns") >= WORKLOAD_HOLD_NS);
	longest = get(r, "longest");
	assert_int_equal(get_int(get(longest, "holder"), "tid"), pid);	/* main thread */
	check_site(get(longest, "woken_by"), "release_held", site_line(w, "release_held"));
	/* A task's stack is where it started the op, not the loop's. */
	assert_true(stacks_have(r, site));
	if (!strcmp(world, "uring")) {
		assert_true(stacks_have(r, "ksync_op_start"));
		assert_false(stacks_have(r, "ksync_loop_run_once"));
	}
}

static void check_json(const char *text, pid_t pid, const struct workload_out *w)
{
	static const char *const locks[] = { "queue_lock", "cache_lock" };
	json_object *report = parse_json(text), *r;
	char heap[32];

	for (size_t i = 0; i < 2; i++) {
		const char *name = locks[i];

		/* Two call sites per world. */
		assert_int_equal(count_rows(report, "waits", name, pid), 4);
		check_wait_row(report, pid, w, name, "thread", "wait_site_one");
		check_wait_row(report, pid, w, name, "thread", "wait_site_two");
		check_wait_row(report, pid, w, name, "uring", "task_site_one");
		check_wait_row(report, pid, w, name, "uring", "task_site_two");
		r = find_row(report, "waits", name, "thread", "wait_site_one", pid);
		/* Named before the tool attached (registry), or after (probe). */
		assert_string_equal(get_str(r, "name_source"), "set");

		/* The holder's release site, charged with all four waits. */
		r = find_row(report, "holders", name, NULL, "release_held", pid);
		check_site(get(r, "site"), "release_held", site_line(w, "release_held"));
		assert_int_equal(get_int(r, "wakes"), 4);
		assert_int_equal(get_int(r, "woken"), 4);
		assert_true(get_int(r, "delay_ns") >= 4 * WORKLOAD_HOLD_NS);
		assert_true(stacks_have(r, "release_held"));
		/* Its holds began on the fast path: not timed. */
		assert_int_equal(get_int(get(r, "hold"), "count"), 0);
		/* The waiters' own releases end the holds they began. */
		r = find_row(report, "holders", name, NULL, "task_release", pid);
		assert_int_equal(get_int(get(r, "hold"), "count"), 2);
		assert_true(get_int(get(r, "hold"), "max_ns") >= WORKLOAD_HOLD_NS);
		r = find_row(report, "holders", name, NULL, "wait_site_two", pid);
		assert_int_equal(get_int(get(r, "hold"), "count"), 1);
		assert_true(get_int(get(r, "hold"), "max_ns") >= WORKLOAD_HOLD_NS);
	}

	/* Renamed while attached: the new name, never the old one. */
	check_wait_row(report, pid, w, "new_name", "thread", "wait_site_one");
	assert_int_equal(count_rows(report, "waits", "old_name", pid), 0);
	/* Unnamed: the global's symbol, then the heap address. */
	check_wait_row(report, pid, w, "stats_lock", "thread", "wait_site_one");
	r = find_row(report, "waits", "stats_lock", "thread", NULL, pid);
	assert_string_equal(get_str(r, "name_source"), "symbol");
	snprintf(heap, sizeof(heap), "0x%llx", w->heap);
	check_wait_row(report, pid, w, heap, "thread", "wait_site_one");
	r = find_row(report, "waits", heap, "thread", NULL, pid);
	assert_string_equal(get_str(r, "name_source"), "address");
	r = find_row(report, "holders", "stats_lock", NULL, "release_held", pid);
	assert_true(get_int(r, "delay_ns") >= WORKLOAD_HOLD_NS);
	json_object_put(report);
}

/* Copy the line of @text that starts at @line (no newline). */
static const char *line_at(const char *line, char *buf, size_t len)
{
	size_t n = strcspn(line, "\n");

	if (n >= len)
		n = len - 1;
	memcpy(buf, line, n);
	buf[n] = '\0';
	return buf;
}

/* The table: a row per name, world and call site, with its waits; the
 * holder's release site with its wakes. */
static void check_table(const char *out, const struct workload_out *w)
{
	static const char *const locks[] = { "queue_lock", "cache_lock" };
	static const char *const worlds[] = { "thread", "thread", "uring", "uring" };
	const char *holders = strstr(out, "\nholders:");

	assert_non_null(holders);
	for (size_t i = 0; i < 2; i++) {
		int found;

		for (size_t s = 0; s < 4; s++) {
			char site[96];

			snprintf(site, sizeof(site), "  %s+0x", sites[s]);
			found = 0;
			for (const char *p = out; p && p < holders; p = strchr(p + 1, '\n')) {
				char buf[1024], kind[16], world[16], where[64], name[48];
				long long waits;
				unsigned pid;

				line_at(p + (*p == '\n'), buf, sizeof(buf));
				if (sscanf(buf, "%u %15s %15s %lld", &pid, kind, world, &waits) != 4)
					continue;
				snprintf(name, sizeof(name), "  %s ", locks[i]);
				snprintf(where, sizeof(where), "(trace_workload.c:%d)",
					 site_line(w, sites[s]));
				if (strcmp(world, worlds[s]) || !strstr(buf, name) ||
				    !strstr(buf, site) || !ends_with(buf, where))
					continue;
				assert_string_equal(kind, "lock");
				assert_int_equal(waits, 1);
				found++;
			}
			if (found != 1)
				fail_msg("%d table rows for %s %s %s", found, locks[i], worlds[s],
					 sites[s]);
		}
		found = 0;
		for (const char *p = holders; p; p = strchr(p + 1, '\n')) {
			char buf[1024], kind[16], name[48];
			long long wakes, woken;
			unsigned pid;

			line_at(p + (*p == '\n'), buf, sizeof(buf));
			snprintf(name, sizeof(name), "  %s ", locks[i]);
			if (sscanf(buf, "%u %15s %lld %lld", &pid, kind, &wakes, &woken) != 4 ||
			    !strstr(buf, name) || !strstr(buf, "  release_held+0x"))
				continue;
			assert_int_equal(wakes, 4);
			assert_int_equal(woken, 4);
			found++;
		}
		assert_int_equal(found, 1);
	}
}

/* Folded stacks: "frame;frame;... count", root first. */
static void check_folded(const char *text)
{
	int64_t wait_site = 0, wait_task = 0, hold = 0;

	for (const char *line = text; line && *line; line = strchr(line, '\n'), line += !!line) {
		const char *end = strchr(line, '\n'), *sp;
		char buf[4096];
		size_t len = end ? (size_t)(end - line) : strlen(line);
		long long v;

		if (!len)
			continue;
		assert_true(len < sizeof(buf));
		memcpy(buf, line, len);
		buf[len] = '\0';
		sp = strrchr(buf, ' ');
		assert_non_null(sp);
		v = atoll(sp + 1);
		assert_true(v > 0);
		assert_true(!strncmp(buf, "wait;", 5) || !strncmp(buf, "hold;", 5));
		if (!strncmp(buf, "wait;", 5) && strstr(buf, ";waiter_main;wait_site_one;") &&
		    strstr(buf, ";queue_lock(lock,thread) "))
			wait_site += v;
		if (!strncmp(buf, "wait;", 5) && strstr(buf, ";task_site_two;ksync_loop_start;") &&
		    strstr(buf, ";cache_lock(lock,uring) "))
			wait_task += v;
		if (!strncmp(buf, "hold;", 5) && strstr(buf, ";release_held;") &&
		    strstr(buf, ";queue_lock(lock) "))
			hold += v;
	}
	assert_true(wait_site >= WORKLOAD_HOLD_NS);
	assert_true(wait_task >= WORKLOAD_HOLD_NS);
	assert_true(hold >= 4 * WORKLOAD_HOLD_NS);
}

/*
 * Run the workload @path, attach the tool with -p (no -b: it must find the
 * probes itself, in @probe_file), and check every output.
 */
static void trace_workload(const char *path, const char *probe_file)
{
	char json_path[] = "/tmp/ksync-wait-json-XXXXXX";
	char folded_path[] = "/tmp/ksync-wait-folded-XXXXXX";
	char pid_arg[16], json_arg[64], folded_arg[64];
	char *wargv[] = { (char *)path, NULL };
	char *args[] = { "-p", pid_arg, "-g", "--histogram", json_arg, folded_arg, NULL };
	struct workload_out w;
	struct child c, t;
	char *json, *folded;
	pid_t pid;
	int fd;

	skip_unless_tool_runs();
	fd = mkstemp(json_path);
	assert_true(fd >= 0);
	close(fd);
	fd = mkstemp(folded_path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(json_arg, sizeof(json_arg), "--json=%s", json_path);
	snprintf(folded_arg, sizeof(folded_arg), "--folded=%s", folded_path);

	child_start(&c, path, wargv, true, false);
	assert_true(child_wait_for(&c, "ready "));
	pid = (pid_t)atoi(strstr(c.buf, "ready ") + 6);
	assert_int_equal(pid, c.pid);
	snprintf(pid_arg, sizeof(pid_arg), "%d", (int)pid);

	assert_int_equal(semaphores_in(pid, probe_file), 0);
	tool_start(&t, args);
	/* It found the file with the probes in the process's maps. */
	{
		char real[PATH_MAX], want[PATH_MAX + 32];

		assert_non_null(realpath(probe_file, real));
		snprintf(want, sizeof(want), "attached to %s, pid %d", real, (int)pid);
		assert_non_null(strstr(t.buf, want));
	}
	assert_true(semaphores_in(pid, probe_file) >= 6);

	child_say(&c, "go\n");
	assert_true(child_wait_for(&c, "done\n"));
	parse_workload(c.buf, &w);
	tool_stop(&t);
	/* Detached: the traced process is back to zero cost. */
	wait_until(semaphores_in(pid, probe_file) == 0);
	child_say(&c, "exit\n");
	assert_int_equal(child_end(&c), 0);

	json = slurp(json_path);
	folded = slurp(folded_path);
	fprintf(stderr, "---- folded ----\n%s----------------\n", folded);
	check_json(json, pid, &w);
	check_table(t.buf, &w);
	check_folded(folded);
	unlink(json_path);
	unlink(folded_path);
	free(json);
	free(folded);
	free(t.buf);
	free(c.buf);
}

static void test_pid_shared(void **state)
{
	(void)state;
	trace_workload(TRACE_WORKLOAD_SHARED, KSYNC_LIB_PATH);
}

static void test_pid_static(void **state)
{
	(void)state;
	trace_workload(TRACE_WORKLOAD_STATIC, TRACE_WORKLOAD_STATIC);
}

#else

static void skip_no_sdt(void **state)
{
	(void)state;
	SKIP("ksync is built without sys/sdt.h: no USDT probes to trace");
}
#define test_self skip_no_sdt
#define test_pid_shared skip_no_sdt
#define test_pid_static skip_no_sdt
#define test_many_stacks skip_no_sdt

#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_registry),
		cmocka_unit_test(test_self),
		cmocka_unit_test(test_pid_shared),
		cmocka_unit_test(test_pid_static),
		cmocka_unit_test(test_many_stacks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
