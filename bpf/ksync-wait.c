/* SPDX-License-Identifier: MIT */
/*
 * ksync-wait: who waits on which ksync primitive, from which world, for how
 * long, and how the waits end. Attaches ksync-wait.bpf.c to the USDT probes
 * of a binary or shared library carrying ksync (uapi/ksync/probe.h) and
 * prints a table per interval or at exit.
 *
 *   ksync-wait [-b PATH] [-p PID] [-i SEC] [-d SEC] [-s] [-v]
 *
 * Attaching raises the probes' is-enabled semaphores in the traced
 * processes; detaching (exit) lowers them again, so the probes go back to
 * costing nothing.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ksync/probe.h"
#include "ksync/trace.h"
#include "ksync-wait.skel.h"

#ifndef KSYNC_DEFAULT_LIB
#define KSYNC_DEFAULT_LIB "libksync.so.0"
#endif

static struct {
	const char *binary;
	pid_t pid;		/* -1: every process that maps the binary */
	long interval;		/* seconds, 0: print at exit only */
	long duration;		/* seconds, 0: until a signal */
	bool stacks;
	bool verbose;
} opt = {
	.binary = KSYNC_DEFAULT_LIB,
	.pid = -1,
};

static volatile sig_atomic_t exiting;

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ksync-wait [-b PATH] [-p PID] [-i SEC] [-d SEC] [-s] [-v]\n"
		"Time waits on ksync primitives through the library's USDT probes.\n"
		"\n"
		"  -b, --binary PATH    binary or shared library with the ksync probes\n"
		"                       (default: %s)\n"
		"  -p, --pid PID        trace this process only (default: all)\n"
		"  -i, --interval SEC   print (and reset) the table every SEC seconds\n"
		"  -d, --duration SEC   stop after SEC seconds (default: Ctrl-C/SIGTERM)\n"
		"  -s, --stacks         show the user stack of each row's slowest wait\n"
		"                       (raw addresses; unwinding needs frame pointers)\n"
		"  -v, --verbose        show libbpf debug output\n"
		"  -h, --help           this text\n"
		"\n"
		"Columns: WAITS ended waits; AVG_us/MAX_us over the waits whose start\n"
		"was seen; OK TIMEOUT CANCEL OTHER their outcomes; WAKES futex_wake\n"
		"calls and WOKEN the waiters they woke (world \"-\": a wake has none).\n",
		KSYNC_DEFAULT_LIB);
}

static long parse_long(const char *s, const char *what, long min)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min) {
		fprintf(stderr, "ksync-wait: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "binary", required_argument, NULL, 'b' },
		{ "pid", required_argument, NULL, 'p' },
		{ "interval", required_argument, NULL, 'i' },
		{ "duration", required_argument, NULL, 'd' },
		{ "stacks", no_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "b:p:i:d:svh", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			opt.binary = optarg;
			break;
		case 'p':
			opt.pid = (pid_t)parse_long(optarg, "pid", 1);
			break;
		case 'i':
			opt.interval = parse_long(optarg, "interval", 1);
			break;
		case 'd':
			opt.duration = parse_long(optarg, "duration", 1);
			break;
		case 's':
			opt.stacks = true;
			break;
		case 'v':
			opt.verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && !opt.verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* ---- reading the maps --------------------------------------------------- */

struct row {
	struct ksync_trace_key key;
	struct ksync_trace_stats s;	/* summed over the CPUs */
};

/* Fold one CPU's copy into the total; the max keeps its own who and stack. */
static void add_stats(struct ksync_trace_stats *sum, const struct ksync_trace_stats *s)
{
	sum->waits += s->waits;
	sum->timed += s->timed;
	sum->total_ns += s->total_ns;
	for (int i = 0; i < KSYNC_TRACE_NR_OUTCOMES; i++)
		sum->outcomes[i] += s->outcomes[i];
	sum->wakes += s->wakes;
	sum->woken += s->woken;
	if (s->max_ns > sum->max_ns) {
		sum->max_ns = s->max_ns;
		sum->max_who = s->max_who;
		sum->max_stack_id = s->max_stack_id;
	}
}

/* Threads, then loop tasks, then the world-less wake counts. */
static int world_order(__u32 world)
{
	return world == KSYNC_TRACE_WORLD_NONE ? INT_MAX : (int)world;
}

static int cmp_rows(const void *a, const void *b)
{
	const struct ksync_trace_key *x = &((const struct row *)a)->key;
	const struct ksync_trace_key *y = &((const struct row *)b)->key;

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	if (x->prim != y->prim)
		return x->prim < y->prim ? -1 : 1;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return world_order(x->world) - world_order(y->world);
}

/*
 * Read every row, summed over the CPUs. With @reset the rows are deleted as
 * they are read (one syscall each, so no update falls between read and
 * delete): the next table covers only what happened after this one.
 */
static int read_rows(int fd, bool reset, struct row **out, size_t *nout)
{
	int ncpus = libbpf_num_possible_cpus();
	struct ksync_trace_key key, next, *keys = NULL;
	struct ksync_trace_stats *percpu;
	size_t nkeys = 0, cap = 0, n = 0;
	struct row *rows;
	void *prev = NULL;
	int err = 0;

	if (ncpus <= 0)
		return ncpus ? ncpus : -EINVAL;
	/* Collect the keys first: deleting while walking would restart it. */
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		if (nkeys == cap) {
			void *p;

			cap = cap ? 2 * cap : 64;
			p = realloc(keys, cap * sizeof(*keys));
			if (!p) {
				free(keys);
				return -ENOMEM;
			}
			keys = p;
		}
		keys[nkeys++] = next;
		key = next;
		prev = &key;
	}

	/* The per-CPU value size is 8-byte aligned; ours already is. */
	percpu = calloc((size_t)ncpus, sizeof(*percpu));
	rows = calloc(nkeys ? nkeys : 1, sizeof(*rows));
	if (!percpu || !rows) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nkeys; i++) {
		int r = reset ? bpf_map_lookup_and_delete_elem(fd, &keys[i], percpu)
			      : bpf_map_lookup_elem(fd, &keys[i], percpu);

		if (r)
			continue;	/* gone meanwhile */
		rows[n].key = keys[i];
		rows[n].s.max_stack_id = KSYNC_TRACE_NO_STACK;
		for (int c = 0; c < ncpus; c++)
			add_stats(&rows[n].s, &percpu[c]);
		n++;
	}
	qsort(rows, n, sizeof(*rows), cmp_rows);
out:
	free(keys);
	free(percpu);
	if (err) {
		free(rows);
		return err;
	}
	*out = rows;
	*nout = n;
	return 0;
}

/* ---- printing ----------------------------------------------------------- */

static const char *kind_name(__u32 kind, char *buf, size_t len)
{
	switch (kind) {
	case KSYNC_KIND_EVENT:
		return "event";
	case KSYNC_KIND_LOCK:
		return "lock";
	case KSYNC_KIND_SEM:
		return "sem";
	}
	snprintf(buf, len, "kind%u", kind);
	return buf;
}

static const char *world_name(__u32 world, char *buf, size_t len)
{
	switch (world) {
	case KSYNC_TRACE_WORLD_NONE:
		return "-";
	case KSYNC_WORLD_THREAD:
		return "thread";
	case KSYNC_WORLD_URING:
		return "uring";
	}
	snprintf(buf, len, "world%u", world);
	return buf;
}

/*
 * Name the mapping an address falls in, as "file+0xoffset", so that the raw
 * address can be fed to addr2line. Empty if the process or mapping is gone.
 */
static void describe_addr(pid_t pid, __u64 addr, char *buf, size_t len)
{
	char path[64], line[PATH_MAX + 128];
	FILE *f;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, off;
		char file[PATH_MAX];
		const char *base;

		file[0] = '\0';
		if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %4095[^\n]",
			   &start, &end, &off, file) < 3)
			continue;
		if (addr < start || addr >= end)
			continue;
		if (file[0]) {
			base = strrchr(file, '/');
			snprintf(buf, len, "%s+0x%llx", base ? base + 1 : file,
				 addr - start + off);
		}
		break;
	}
	fclose(f);
}

static void print_stack(int stacks_fd, const struct row *r)
{
	__u64 ips[KSYNC_TRACE_STACK_DEPTH] = { 0 };
	__u32 id = r->s.max_stack_id;
	char where[PATH_MAX + 32];

	if (r->key.world == KSYNC_WORLD_URING)
		printf("    slowest: %.1f us, task token 0x%llx\n", r->s.max_ns / 1e3,
		       (unsigned long long)r->s.max_who);
	else
		printf("    slowest: %.1f us, tid %llu\n", r->s.max_ns / 1e3,
		       (unsigned long long)r->s.max_who);
	if (id == KSYNC_TRACE_NO_STACK || bpf_map_lookup_elem(stacks_fd, &id, ips)) {
		/* No stack: the wait began before -s attached, or the stack
		 * map bucket was taken by another stack. */
		printf("      [user stack unavailable]\n");
		return;
	}
	for (int i = 0; i < KSYNC_TRACE_STACK_DEPTH && ips[i]; i++) {
		describe_addr((pid_t)r->key.pid, ips[i], where, sizeof(where));
		printf("      #%-2d 0x%016llx %s\n", i, (unsigned long long)ips[i], where);
	}
}

static void print_table(const struct row *rows, size_t n, int stacks_fd)
{
	char tbuf[32], kbuf[16], wbuf[16];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(tbuf, sizeof(tbuf), "%H:%M:%S", &tm);
	printf("\n%s\n", tbuf);
	printf("%-7s %-18s %-5s %-6s %7s %10s %10s %7s %7s %6s %5s %7s %7s\n",
	       "PID", "PRIM", "KIND", "WORLD", "WAITS", "AVG_us", "MAX_us",
	       "OK", "TIMEOUT", "CANCEL", "OTHER", "WAKES", "WOKEN");
	if (!n)
		printf("(no ksync waits or wakes)\n");
	for (size_t i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		const struct ksync_trace_stats *s = &r->s;
		char avg[24] = "-", max[24] = "-";

		printf("%-7u 0x%-16llx %-5s %-6s ", r->key.pid, (unsigned long long)r->key.prim,
		       kind_name(r->key.kind, kbuf, sizeof(kbuf)),
		       world_name(r->key.world, wbuf, sizeof(wbuf)));
		if (r->key.world == KSYNC_TRACE_WORLD_NONE) {
			printf("%7s %10s %10s %7s %7s %6s %5s %7llu %7llu\n",
			       "-", "-", "-", "-", "-", "-", "-",
			       (unsigned long long)s->wakes, (unsigned long long)s->woken);
			continue;
		}
		if (s->timed) {
			snprintf(avg, sizeof(avg), "%.1f", (double)s->total_ns / s->timed / 1e3);
			snprintf(max, sizeof(max), "%.1f", s->max_ns / 1e3);
		}
		printf("%7llu %10s %10s %7llu %7llu %6llu %5llu %7s %7s\n",
		       (unsigned long long)s->waits, avg, max,
		       (unsigned long long)s->outcomes[KSYNC_TRACE_OK],
		       (unsigned long long)s->outcomes[KSYNC_TRACE_TIMEDOUT],
		       (unsigned long long)s->outcomes[KSYNC_TRACE_CANCELED],
		       (unsigned long long)s->outcomes[KSYNC_TRACE_OTHER], "-", "-");
		if (opt.stacks && s->timed)
			print_stack(stacks_fd, r);
	}
	fflush(stdout);
}

static int report(struct ksync_wait_bpf *skel, bool reset)
{
	struct row *rows;
	size_t n;
	int err = read_rows(bpf_map__fd(skel->maps.stats), reset, &rows, &n);

	if (err) {
		fprintf(stderr, "ksync-wait: reading the stats map: %s\n", strerror(-err));
		return err;
	}
	print_table(rows, n, bpf_map__fd(skel->maps.stacks));
	free(rows);
	return 0;
}

/* ---- attaching ---------------------------------------------------------- */

static int attach(struct ksync_wait_bpf *skel, const char *path)
{
	static const char *const names[] = { "wait_begin", "wait_end", "wake" };
	struct bpf_program *progs[] = {
		skel->progs.wait_begin, skel->progs.wait_end, skel->progs.wake,
	};
	struct bpf_link **links[] = {
		&skel->links.wait_begin, &skel->links.wait_end, &skel->links.wake,
	};

	for (int i = 0; i < 3; i++) {
		/* libbpf finds the probe notes, arguments and semaphores. */
		*links[i] = bpf_program__attach_usdt(progs[i], opt.pid, path,
						     KSYNC_PROBE_PROVIDER, names[i], NULL);
		if (!*links[i]) {
			int err = -errno;

			fprintf(stderr, "ksync-wait: attaching to %s:%s in %s: %s\n",
				KSYNC_PROBE_PROVIDER, names[i], path, strerror(-err));
			if (err == -ENOENT)
				fprintf(stderr, "ksync-wait: is %s built with sys/sdt.h "
					"(ksync USDT probes)?\n", path);
			return err;
		}
	}
	return 0;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct ksync_wait_bpf *skel;
	double start, next_print, stop;
	char *path;
	int err;

	parse_args(argc, argv);
	libbpf_set_print(libbpf_print);

	/* A canonical path: the kernel resolves the uprobe's file by it. */
	path = realpath(opt.binary, NULL);
	if (!path) {
		fprintf(stderr, "ksync-wait: %s: %s\n", opt.binary, strerror(errno));
		return 1;
	}
	if (opt.pid > 0 && kill(opt.pid, 0) && errno == ESRCH) {
		fprintf(stderr, "ksync-wait: no process %d\n", (int)opt.pid);
		free(path);
		return 1;
	}

	skel = ksync_wait_bpf__open();
	if (!skel) {
		fprintf(stderr, "ksync-wait: opening the BPF object: %s\n", strerror(errno));
		free(path);
		return 1;
	}
	skel->rodata->want_stacks = opt.stacks;
	if (!opt.stacks)
		bpf_map__set_max_entries(skel->maps.stacks, 1);	/* unused */

	err = ksync_wait_bpf__load(skel);
	if (err) {
		fprintf(stderr, "ksync-wait: loading the BPF program: %s%s\n", strerror(-err),
			err == -EPERM ? " (needs root or CAP_BPF+CAP_PERFMON)" : "");
		goto out;
	}
	err = attach(skel, path);
	if (err)
		goto out;

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* Scripts and the test wait for this line before starting work. */
	if (opt.pid > 0)
		fprintf(stderr, "ksync-wait: attached to %s, pid %d. Ctrl-C to end.\n",
			path, (int)opt.pid);
	else
		fprintf(stderr, "ksync-wait: attached to %s, all processes. Ctrl-C to end.\n",
			path);

	start = mono_s();
	next_print = opt.interval ? start + opt.interval : 0;
	stop = opt.duration ? start + opt.duration : 0;
	while (!exiting) {
		/* Wake at least every second to notice a traced process exit. */
		double now = mono_s(), wake = now + 1;
		struct timespec ts;

		if (next_print && next_print < wake)
			wake = next_print;
		if (stop && stop < wake)
			wake = stop;
		if (wake > now) {
			ts.tv_sec = (time_t)(wake - now);
			ts.tv_nsec = (long)((wake - now - ts.tv_sec) * 1e9);
			nanosleep(&ts, NULL);	/* a signal cuts it short */
		}
		if (exiting)
			break;
		now = mono_s();
		if (stop && now >= stop)
			break;
		if (opt.pid > 0 && kill(opt.pid, 0) && errno == ESRCH) {
			fprintf(stderr, "ksync-wait: process %d exited\n", (int)opt.pid);
			break;
		}
		if (next_print && now >= next_print) {
			if (report(skel, true))
				break;
			next_print += opt.interval;
		}
	}
	err = report(skel, true);
out:
	ksync_wait_bpf__destroy(skel);
	free(path);
	return err ? 1 : 0;
}
