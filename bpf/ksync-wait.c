/* SPDX-License-Identifier: MIT */
/*
 * ksync-wait: which ksync primitive is contended, from which world and call
 * site, for how long, and who held it. Attaches ksync-wait.bpf.c to the
 * USDT probes of libksync (or of a static binary that links it) and prints
 * a report per interval or at exit: a table, JSON, or folded stacks.
 *
 *   ksync-wait [-p PID] [-b PATH] [-s KEYS] [-n N] [-g] [--histogram]
 *              [--json[=FILE]] [--folded[=FILE]] [-i SEC] [-d SEC]
 *
 * This half parses options, finds and attaches to the probes, and keeps the
 * traced processes' symbols and names; ksync-wait-report.c builds the rows.
 *
 * Attaching raises the probes' is-enabled semaphores in the traced
 * processes; detaching (exit) lowers them again, so the probes go back to
 * costing nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ksync-wait.h"
#include "ksync-wait.skel.h"

#ifndef KSYNC_DEFAULT_LIB
#define KSYNC_DEFAULT_LIB "/usr/local/lib/libksync.so.0"
#endif

struct options opt = {
	.pid = -1,
	.table = true,
	.sort = { SORT_TOTAL },
	.nsort = 1,
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
		"Usage: ksync-wait [OPTION]...\n"
		"Who waits on which ksync primitive, from which world and call site, for how\n"
		"long, and who held it: through the library's USDT probes (needs root).\n"
		"\n"
		"What to trace:\n"
		"  -p, --pid PID        this process: the ksync library or static binary it\n"
		"                       runs is found in /proc/PID/maps\n"
		"  -b, --binary PATH    every process running PATH, a binary or libksync.so\n"
		"                       (default without -p: %s)\n"
		"      --no-stacks      take no stacks: one row per primitive and world\n"
		"  -i, --interval SEC   report (and reset) every SEC seconds\n"
		"  -d, --duration SEC   stop after SEC seconds (default: Ctrl-C/SIGTERM)\n"
		"\n"
		"Output (a table on stdout by default):\n"
		"  -s, --sort KEYS      sort waits by KEYS, comma-separated: waits (contended),\n"
		"                       total (wait_total), avg (avg_wait), max (wait_max),\n"
		"                       p50, p99, hold, name. Default: total\n"
		"  -n, --top N          the top N rows of waits and of holders only\n"
		"  -g, --stacks         each row's stacks, symbolised, under it\n"
		"      --histogram      each row's log2 histogram of wait times under it\n"
		"      --json[=FILE]    JSON (one object per report) instead of the table,\n"
		"                       or as well, into FILE\n"
		"      --folded[=FILE]  folded stacks for flame graphs instead of the table,\n"
		"                       or as well, into FILE: waiters' stacks weighted by\n"
		"                       their waiting, holders' by the waiting they caused\n"
		"  -v, --verbose        libbpf's debug output\n"
		"  -h, --help           this text\n"
		"\n"
		"Waits: a row per primitive, kind, world (thread, uring) and call site (the\n"
		"first frame outside ksync; for a task, where it started the op). WAITS\n"
		"contended waits; TOTAL AVG MAX P50 P99 their durations (percentiles from a\n"
		"log2 histogram); OK TMO CAN ERR their outcomes; HOLD_AVG HOLD_MAX the holds\n"
		"(Lock) that followed these waits. Holders: a row per release site that\n"
		"woke waiters; DELAY the waiting charged to it, HOLD_* the holds it ended.\n"
		"Hold times are timed only for holds that begin with a contended acquisition.\n",
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

static void parse_sort(const char *arg)
{
	static const struct {
		const char *name;
		enum sort_key key;
	} keys[] = {
		{ "waits", SORT_WAITS }, { "contended", SORT_WAITS },
		{ "total", SORT_TOTAL }, { "wait_total", SORT_TOTAL },
		{ "avg", SORT_AVG }, { "avg_wait", SORT_AVG },
		{ "max", SORT_MAX }, { "wait_max", SORT_MAX },
		{ "p50", SORT_P50 }, { "p99", SORT_P99 },
		{ "hold", SORT_HOLD }, { "name", SORT_NAME },
	};
	char *copy = strdup(arg), *save = NULL, *tok;

	if (!copy)
		exit(1);
	opt.nsort = 0;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (!strcmp(tok, keys[i].name))
				break;
		if (i == sizeof(keys) / sizeof(keys[0]) || opt.nsort == MAX_SORT_KEYS) {
			fprintf(stderr, "ksync-wait: bad sort key: %s (see --help)\n", tok);
			exit(2);
		}
		opt.sort[opt.nsort++] = keys[i].key;
	}
	free(copy);
	if (!opt.nsort) {
		fprintf(stderr, "ksync-wait: empty sort key\n");
		exit(2);
	}
}

enum {
	OPT_NO_STACKS = 0x100,
	OPT_HISTOGRAM,
	OPT_JSON,
	OPT_FOLDED,
};

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "binary", required_argument, NULL, 'b' },
		{ "no-stacks", no_argument, NULL, OPT_NO_STACKS },
		{ "interval", required_argument, NULL, 'i' },
		{ "duration", required_argument, NULL, 'd' },
		{ "sort", required_argument, NULL, 's' },
		{ "top", required_argument, NULL, 'n' },
		{ "stacks", no_argument, NULL, 'g' },
		{ "histogram", no_argument, NULL, OPT_HISTOGRAM },
		{ "json", optional_argument, NULL, OPT_JSON },
		{ "folded", optional_argument, NULL, OPT_FOLDED },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "p:b:i:d:s:n:gvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			opt.pid = (pid_t)parse_long(optarg, "pid", 1);
			break;
		case 'b':
			opt.binary = optarg;
			break;
		case OPT_NO_STACKS:
			opt.no_stacks = true;
			break;
		case 'i':
			opt.interval = parse_long(optarg, "interval", 1);
			break;
		case 'd':
			opt.duration = parse_long(optarg, "duration", 1);
			break;
		case 's':
			parse_sort(optarg);
			break;
		case 'n':
			opt.top = parse_long(optarg, "top", 1);
			break;
		case 'g':
			opt.show_stacks = true;
			break;
		case OPT_HISTOGRAM:
			opt.histogram = true;
			break;
		case OPT_JSON:
			opt.json = true;
			opt.json_path = optarg;
			break;
		case OPT_FOLDED:
			opt.folded = true;
			opt.folded_path = optarg;
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
	if ((opt.json && !opt.json_path) && (opt.folded && !opt.folded_path)) {
		fprintf(stderr, "ksync-wait: --json and --folded both on stdout: give one a FILE\n");
		exit(2);
	}
	/* A format without a FILE replaces the table on stdout. */
	if ((opt.json && !opt.json_path) || (opt.folded && !opt.folded_path))
		opt.table = false;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && !opt.verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* ---- files carrying the probes ------------------------------------------ */

/* Per path: does it carry ksync probes, where is its name table. */
struct file_info {
	char *path;
	bool ksync;
	bool has_names;
	uint64_t names_addr;	/* ELF address of the ksync_names section */
};

static struct file_info *files;
static size_t nfiles;

static const struct file_info *file_info(const char *path)
{
	struct file_info *f, *nf;
	uint64_t size;

	for (size_t i = 0; i < nfiles; i++)
		if (!strcmp(files[i].path, path))
			return &files[i];
	nf = realloc(files, (nfiles + 1) * sizeof(*files));
	if (!nf)
		return NULL;
	files = nf;
	f = &files[nfiles];
	memset(f, 0, sizeof(*f));
	f->path = strdup(path);
	if (!f->path)
		return NULL;
	nfiles++;
	f->ksync = elf_has_usdt_provider(path, KSYNC_PROBE_PROVIDER) == 1;
	if (f->ksync && elf_section(path, KSYNC_NAME_SECTION, &f->names_addr, &size) == 0 &&
	    size >= sizeof(struct ksync_name_table))
		f->has_names = true;
	return f;
}

bool is_ksync_module(const char *path)
{
	const struct file_info *f = file_info(path);

	return f && f->ksync;
}

/* ---- traced processes --------------------------------------------------- */

static struct proc **procs;
static size_t nprocs;

struct names_read {
	struct proc *p;
};

/* Read one registry (uapi/ksync/probe.h) from the process's memory. */
static int read_names(const struct sym_module *m, void *arg)
{
	struct names_read *nr = arg;
	const struct file_info *f = file_info(m->path);
	struct ksync_name_table *t, *again;
	struct iovec local, remote;
	size_t size = sizeof(*t);

	if (!f || !f->has_names)
		return 0;
	t = malloc(size);
	again = malloc(size);
	if (!t || !again)
		goto out;
	remote.iov_base = (void *)(uintptr_t)(f->names_addr + m->bias);
	remote.iov_len = size;
	local.iov_base = t;
	local.iov_len = size;
	if (process_vm_readv(nr->p->pid, &local, 1, &remote, 1, 0) != (ssize_t)size)
		goto out;
	local.iov_base = again;
	if (process_vm_readv(nr->p->pid, &local, 1, &remote, 1, 0) != (ssize_t)size)
		goto out;
	if (t->magic != KSYNC_NAME_MAGIC || t->version != KSYNC_NAME_VERSION)
		goto out;
	for (unsigned i = 0; i < t->nslots && i < KSYNC_NAME_SLOTS; i++) {
		const struct ksync_name_slot *s = &t->slot[i];
		struct name_entry *ne;

		if (!s->prim || !s->name[0] || (s->seq & 1) || s->seq != again->slot[i].seq)
			continue;
		ne = realloc(nr->p->names, (nr->p->nnames + 1) * sizeof(*ne));
		if (!ne)
			break;
		nr->p->names = ne;
		ne = &ne[nr->p->nnames++];
		ne->prim = s->prim;
		memcpy(ne->name, s->name, KSYNC_NAME_MAX);
		ne->name[KSYNC_NAME_MAX - 1] = '\0';
	}
out:
	free(t);
	free(again);
	return 0;
}

static void proc_load_names(struct proc *p)
{
	struct names_read nr = { .p = p };

	free(p->names);
	p->names = NULL;
	p->nnames = 0;
	sym_proc_modules(p->sym, read_names, &nr);
}

struct proc *proc_get(pid_t pid, bool refresh)
{
	struct proc *p = NULL, **np;

	for (size_t i = 0; i < nprocs; i++)
		if (procs[i]->pid == pid)
			p = procs[i];
	if (p) {
		if (refresh && p->sym && sym_proc_refresh(p->sym) == 0)
			proc_load_names(p);
		return p;
	}
	np = realloc(procs, (nprocs + 1) * sizeof(*procs));
	if (!np)
		return NULL;
	procs = np;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->pid = pid;
	p->sym = sym_proc_new(pid);
	if (p->sym)
		proc_load_names(p);
	else
		p->err = errno;
	procs[nprocs++] = p;
	return p;
}

/* Snapshot every process that has rows and is not tracked yet, while it
 * still lives: its maps (for symbols) and its names. */
static void track_new_pids(struct ksync_wait_bpf *skel)
{
	struct ksync_trace_wait_row_key wk, *wprev = NULL;
	struct ksync_trace_wake_row_key kk, *kprev = NULL;
	int fd = bpf_map__fd(skel->maps.waits);

	while (bpf_map_get_next_key(fd, wprev, &wk) == 0) {
		proc_get((pid_t)wk.pid, false);
		wprev = &wk;
	}
	fd = bpf_map__fd(skel->maps.wakes);
	while (bpf_map_get_next_key(fd, kprev, &kk) == 0) {
		proc_get((pid_t)kk.pid, false);
		kprev = &kk;
	}
}

static bool pid_alive(pid_t pid)
{
	return !(kill(pid, 0) && errno == ESRCH);
}

/* Delete the entries of @fd whose key's pid (at @pid_off) has exited. */
static void drop_dead_in(int fd, size_t key_size, size_t pid_off)
{
	char key[64], next[64];
	bool have = false;
	__u32 pid;

	while (bpf_map_get_next_key(fd, have ? key : NULL, next) == 0) {
		if (have) {
			memcpy(&pid, key + pid_off, sizeof(pid));
			if (!pid_alive((pid_t)pid))
				bpf_map_delete_elem(fd, key);
		}
		memcpy(key, next, key_size);
		have = true;
	}
	if (have) {
		memcpy(&pid, key + pid_off, sizeof(pid));
		if (!pid_alive((pid_t)pid))
			bpf_map_delete_elem(fd, key);
	}
}

/* Forget the waits in progress, primitive state and names of processes
 * that exited (their waits will never end), so that the maps do not fill
 * up over a long run. Their rows stay until reported. */
static void drop_dead(struct ksync_wait_bpf *skel)
{
	_Static_assert(sizeof(struct ksync_trace_wait_key) <= 64, "key buffer");
	drop_dead_in(bpf_map__fd(skel->maps.prims), sizeof(struct ksync_trace_prim_key),
		     offsetof(struct ksync_trace_prim_key, pid));
	drop_dead_in(bpf_map__fd(skel->maps.names), sizeof(struct ksync_trace_prim_key),
		     offsetof(struct ksync_trace_prim_key, pid));
	drop_dead_in(bpf_map__fd(skel->maps.starts), sizeof(struct ksync_trace_wait_key),
		     offsetof(struct ksync_trace_wait_key, pid));
}

/* ---- attaching ---------------------------------------------------------- */

struct target {
	char *path;
};

static struct target *targets;
static size_t ntargets;
static struct bpf_link **links;
static size_t nlinks;

static int add_target(const char *path)
{
	struct target *t;

	for (size_t i = 0; i < ntargets; i++)
		if (!strcmp(targets[i].path, path))
			return 0;
	t = realloc(targets, (ntargets + 1) * sizeof(*t));
	if (!t)
		return -ENOMEM;
	targets = t;
	targets[ntargets].path = strdup(path);
	if (!targets[ntargets].path)
		return -ENOMEM;
	ntargets++;
	return 0;
}

static int add_if_ksync(const struct sym_module *m, void *arg)
{
	(void)arg;
	if (is_ksync_module(m->path))
		return add_target(m->path);
	return 0;
}

/* -p without -b: whatever the process maps that carries the ksync probes. */
static int find_targets_in(pid_t pid)
{
	struct proc *p = proc_get(pid, true);
	int r;

	if (!p || !p->sym) {
		fprintf(stderr, "ksync-wait: reading /proc/%d/maps: %s\n", (int)pid,
			strerror(p ? p->err : ENOMEM));
		return -ESRCH;
	}
	r = sym_proc_modules(p->sym, add_if_ksync, NULL);
	if (r)
		return r;
	if (!ntargets) {
		fprintf(stderr, "ksync-wait: process %d (%s) maps no file with ksync probes: does it use "
			"ksync, built with sys/sdt.h (-Dprobes)?\n", (int)pid, sym_proc_comm(p->sym));
		return -ENOENT;
	}
	return 0;
}

static int attach_one(struct bpf_program *prog, const char *path, const char *probe,
		      bool optional)
{
	struct bpf_link *link, **nl;

	/* libbpf finds the probe notes, arguments and semaphores. */
	link = bpf_program__attach_usdt(prog, opt.pid, path, KSYNC_PROBE_PROVIDER, probe, NULL);
	if (!link) {
		int err = -errno;

		if (err == -ENOENT && optional) {
			if (opt.verbose)
				fprintf(stderr, "ksync-wait: %s has no probe %s:%s (an older ksync)\n",
					path, KSYNC_PROBE_PROVIDER, probe);
			return 0;
		}
		fprintf(stderr, "ksync-wait: attaching to %s:%s in %s: %s\n",
			KSYNC_PROBE_PROVIDER, probe, path, strerror(-err));
		if (err == -ENOENT)
			fprintf(stderr, "ksync-wait: is %s built with sys/sdt.h "
				"(ksync USDT probes)?\n", path);
		return err;
	}
	nl = realloc(links, (nlinks + 1) * sizeof(*links));
	if (!nl) {
		bpf_link__destroy(link);
		return -ENOMEM;
	}
	links = nl;
	links[nlinks++] = link;
	return 0;
}

static int attach(struct ksync_wait_bpf *skel, const char *path)
{
	const struct {
		struct bpf_program *prog;
		const char *probe;
		bool optional;	/* absent from older libraries */
	} probes[] = {
		/* name first: a name given while we attach is then seen
		 * through the probe or in the registry read after. */
		{ skel->progs.name, "name", true },
		{ skel->progs.op_start, "op_start", true },
		{ skel->progs.wait_begin, "wait_begin", false },
		{ skel->progs.wait_end, "wait_end", false },
		{ skel->progs.wake_begin, "wake_begin", true },
		{ skel->progs.wake, "wake", false },
	};

	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		int err = attach_one(probes[i].prog, path, probes[i].probe, probes[i].optional);

		if (err)
			return err;
	}
	return 0;
}

/* Detach, which lowers the semaphores again. The kernel takes a while for
 * each probe site (an RCU grace period to remove its uprobe). */
static void detach_all(void)
{
	for (size_t i = 0; i < nlinks; i++)
		bpf_link__destroy(links[i]);
	free(links);
	links = NULL;
	nlinks = 0;
}

/* Names given before we attached, in processes already running the targets. */
static void scan_running(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[64], *file, line[PATH_MAX + 128];
		pid_t pid = (pid_t)atoi(e->d_name);
		bool hit = false;
		FILE *f;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (!hit && fgets(line, sizeof(line), f)) {
			file = strchr(line, '/');
			if (!file)
				continue;
			file[strcspn(file, "\n")] = '\0';
			for (size_t i = 0; i < ntargets && !hit; i++)
				hit = !strcmp(file, targets[i].path);
		}
		fclose(f);
		if (hit)
			proc_get(pid, false);
	}
	closedir(d);
}

/* A process hit a probe for the first time: snapshot it now, while it lives. */
static int on_new_pid(void *ctx, void *data, size_t size)
{
	(void)ctx;
	if (size >= sizeof(__u32))
		proc_get((pid_t)*(__u32 *)data, false);
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
	struct ksync_wait_bpf *skel = NULL;
	struct ring_buffer *rb = NULL;
	double start, next_print, stop, next_gc;
	int err;

	parse_args(argc, argv);
	libbpf_set_print(libbpf_print);

	if (opt.pid > 0 && !pid_alive(opt.pid)) {
		fprintf(stderr, "ksync-wait: no process %d\n", (int)opt.pid);
		return 1;
	}
	if (opt.binary || opt.pid <= 0) {
		const char *bin = opt.binary ? opt.binary : KSYNC_DEFAULT_LIB;
		/* A canonical path: the kernel resolves the uprobe's file by it. */
		char *path = realpath(bin, NULL);

		if (!path) {
			fprintf(stderr, "ksync-wait: %s: %s%s\n", bin, strerror(errno),
				opt.binary ? "" : " (the installed library; give -p PID or -b PATH)");
			return 1;
		}
		err = add_target(path);
		free(path);
		if (err)
			return 1;
	} else if (find_targets_in(opt.pid)) {
		return 1;
	}

	skel = ksync_wait_bpf__open();
	if (!skel) {
		fprintf(stderr, "ksync-wait: opening the BPF object: %s\n", strerror(errno));
		return 1;
	}
	skel->rodata->want_stacks = !opt.no_stacks;
	if (opt.no_stacks)
		bpf_map__set_max_entries(skel->maps.stacks, 1);	/* unused */

	err = ksync_wait_bpf__load(skel);
	if (err) {
		fprintf(stderr, "ksync-wait: loading the BPF program: %s%s\n", strerror(-err),
			err == -EPERM ? " (needs root or CAP_BPF+CAP_PERFMON)" : "");
		goto out;
	}
	for (size_t i = 0; i < ntargets; i++) {
		err = attach(skel, targets[i].path);
		if (err)
			goto out;
	}

	rb = ring_buffer__new(bpf_map__fd(skel->maps.new_pids), on_new_pid, NULL, NULL);
	if (!rb) {
		err = -errno;
		fprintf(stderr, "ksync-wait: ring buffer: %s\n", strerror(-err));
		goto out;
	}

	/* Attached: read the names given before (the registry). */
	if (opt.pid > 0)
		proc_get(opt.pid, true);
	else
		scan_running();

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* Scripts and the tests wait for this line before starting work. */
	for (size_t i = 0; i < ntargets; i++) {
		if (opt.pid > 0)
			fprintf(stderr, "ksync-wait: attached to %s, pid %d.", targets[i].path,
				(int)opt.pid);
		else
			fprintf(stderr, "ksync-wait: attached to %s, all processes.",
				targets[i].path);
		fprintf(stderr, i + 1 == ntargets ? " Ctrl-C to end.\n" : "\n");
	}

	start = mono_s();
	next_print = opt.interval ? start + opt.interval : 0;
	stop = opt.duration ? start + opt.duration : 0;
	next_gc = start + 10;
	while (!exiting) {
		/* New processes wake us at once; otherwise wake every second to
		 * notice exits. */
		double now = mono_s(), wake = now + 1;

		if (next_print && next_print < wake)
			wake = next_print;
		if (stop && stop < wake)
			wake = stop;
		if (wake > now)
			ring_buffer__poll(rb, (int)((wake - now) * 1000) + 1);	/* a signal cuts it short */
		if (exiting)
			break;
		track_new_pids(skel);
		now = mono_s();
		if (stop && now >= stop)
			break;
		if (opt.pid > 0 && !pid_alive(opt.pid)) {
			fprintf(stderr, "ksync-wait: process %d exited\n", (int)opt.pid);
			break;
		}
		if (next_print && now >= next_print) {
			err = report(skel, true);
			if (err)
				goto out;
			next_print += opt.interval;
		}
		if (now >= next_gc) {
			drop_dead(skel);
			next_gc = now + 10;
		}
	}
	/* Detach first: the report may take a while, and the traced
	 * processes should not pay for probes meanwhile. */
	detach_all();
	track_new_pids(skel);
	err = report(skel, true);
out:
	detach_all();
	ring_buffer__free(rb);
	ksync_wait_bpf__destroy(skel);
	for (size_t i = 0; i < nprocs; i++) {
		sym_proc_free(procs[i]->sym);
		free(procs[i]->names);
		free(procs[i]);
	}
	free(procs);
	for (size_t i = 0; i < ntargets; i++)
		free(targets[i].path);
	free(targets);
	for (size_t i = 0; i < nfiles; i++)
		free(files[i].path);
	free(files);
	return err ? 1 : 0;
}
