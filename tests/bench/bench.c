/* SPDX-License-Identifier: MIT */
/*
 * ksync-bench: runs every benchmark case and prints one markdown table:
 *
 *   case | ksync | baseline | ratio | goal | met?
 *
 * Each figure is the median over the runs, with the min-max spread in
 * brackets; ratio is median(ksync) / median(baseline). A goal that is not
 * met says so in the table.
 *
 *   ksync-bench [--quick] [--runs N] [--only CASE[,CASE...]]
 *
 * Cases: lock, contended, wake, sem, broadcast, memory, poll, pipeline, limiter, queue,
 * revent, barrier.
 */
#include "bench.h"

#include <linux/perf_event.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

struct bench_cfg cfg = {
	.runs = 11,
	.ring_flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
};

/* ---- helpers ------------------------------------------------------------ */

cpu_set_t cpus_allowed;

int usable_cpu(int i)
{
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &cpus_allowed) && i-- == 0)
			return cpu;
	return -1;
}

void place(enum placement p, int side)
{
	cpu_set_t set;

	if (p == P_FREE)
		return;
	CPU_ZERO(&set);
	CPU_SET(usable_cpu(p == P_SPLIT ? side : 0), &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
		die("pthread_setaffinity_np");
}

void unplace(void)
{
	pthread_setaffinity_np(pthread_self(), sizeof(cpus_allowed), &cpus_allowed);
}

void efd_write(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) != sizeof(one))
		die("eventfd write: %s", strerror(errno));
}

void efd_read(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		die("eventfd read: %s", strerror(errno));
}

void sleep_ns(int64_t ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

void busy_ns(int64_t ns)
{
	int64_t end = now_ns() + ns;

	while (now_ns() < end)
		;
}

pthread_t spawn(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	int r = pthread_create(&t, NULL, fn, arg);

	if (r)
		die("pthread_create: %s", strerror(r));
	return t;
}

void join(pthread_t t)
{
	int r = pthread_join(t, NULL);

	if (r)
		die("pthread_join: %s", strerror(r));
}

/* ---- tracepoint counters ------------------------------------------------ */

bool tracefs_mounted_here;

static int read_tracepoint_id(const char *event)
{
	static const char *roots[] = { "/sys/kernel/tracing", "/sys/kernel/debug/tracing" };

	for (unsigned i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		char path[256];
		FILE *f;
		int id;

		snprintf(path, sizeof(path), "%s/events/%s/id", roots[i], event);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%d", &id) != 1)
			id = -1;
		fclose(f);
		if (id >= 0)
			return id;
	}
	return -1;
}

int tp_counter_open(const char *event, char *why, size_t len)
{
	struct perf_event_attr a;
	int id = read_tracepoint_id(event);
	int fd;

	if (id < 0 && !tracefs_mounted_here &&
	    mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL) == 0) {
		/* The project's machines do not always mount tracefs. */
		tracefs_mounted_here = true;
		id = read_tracepoint_id(event);
	}
	if (id < 0) {
		snprintf(why, len, "not counted: no tracefs id for %s", event);
		return -1;
	}
	memset(&a, 0, sizeof(a));
	a.type = PERF_TYPE_TRACEPOINT;
	a.size = sizeof(a);
	a.config = (uint64_t)id;
	a.disabled = 1;
	/* pid 0, cpu -1: this thread only, on any CPU; children not included. */
	fd = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "not counted: perf_event_open: %s", strerror(errno));
		return -1;
	}
	return fd;
}

void tp_counter_start(int fd)
{
	ioctl(fd, PERF_EVENT_IOC_RESET, 0);
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
}

uint64_t tp_counter_stop(int fd)
{
	uint64_t n = 0;

	ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
	if (read(fd, &n, sizeof(n)) != sizeof(n))
		die("read perf counter: %s", strerror(errno));
	return n;
}

/* ---- statistics --------------------------------------------------------- */

void series_add(struct series *s, double x)
{
	if (s->n < MAX_RUNS)
		s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double series_median(const struct series *s)
{
	double v[MAX_RUNS];

	if (!s->n)
		return NAN;
	memcpy(v, s->v, sizeof(double) * (size_t)s->n);
	qsort(v, (size_t)s->n, sizeof(double), cmp_double);
	return s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
}

double series_min(const struct series *s)
{
	double m = s->n ? s->v[0] : NAN;

	for (int i = 1; i < s->n; i++)
		if (s->v[i] < m)
			m = s->v[i];
	return m;
}

double series_max(const struct series *s)
{
	double m = s->n ? s->v[0] : NAN;

	for (int i = 1; i < s->n; i++)
		if (s->v[i] > m)
			m = s->v[i];
	return m;
}

void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
}

void hist_merge(struct hist *into, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		into->b[i] += from->b[i];
	into->count += from->count;
	if (from->max > into->max)
		into->max = from->max;
}

/* Smallest value that falls in the bucket after @i. */
static double bucket_upper(unsigned i)
{
	unsigned e, sub;

	if (i < HIST_SUB)
		return i + 1;
	e = i / HIST_SUB + HIST_SUB_BITS - 1;
	sub = i % HIST_SUB;
	return ldexp(HIST_SUB + sub + 1, (int)e - HIST_SUB_BITS);
}

double hist_pct(const struct hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (!h->count)
		return NAN;
	if (q >= 1)
		return (double)h->max;
	rank = (uint64_t)ceil(q * (double)h->count);
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			double up = bucket_upper(i);

			/* The top bucket's edge can overshoot the real max. */
			return up < (double)h->max ? up : (double)h->max;
		}
	}
	return (double)h->max;
}

/* ---- the table ---------------------------------------------------------- */

#define MAX_ROWS 64
#define MAX_NOTES 32
#define CELL 128

enum { COL_CASE, COL_KSYNC, COL_BASE, COL_RATIO, COL_GOAL, COL_MET, NCOLS };

static char rows[MAX_ROWS][NCOLS][CELL];
static int nrows;
static char notes[MAX_NOTES][512];
static int nnotes;

/* Scale a value into a readable unit; the spread uses the median's scale. */
static void fmt_value(char *buf, size_t len, enum unit unit, double v, double lo, double hi,
		      bool spread)
{
	const char *suffix = "";
	double div = 1;
	int prec = 0;

	switch (unit) {
	case U_NS:
		if (v < 1e3) {
			suffix = " ns", prec = 1;
		} else if (v < 1e6) {
			suffix = " µs", div = 1e3, prec = 2;
		} else {
			suffix = " ms", div = 1e6, prec = 2;
		}
		break;
	case U_OPS:
		if (v >= 1e6)
			suffix = " M/s", div = 1e6, prec = 2;
		else
			suffix = " k/s", div = 1e3, prec = 1;
		break;
	case U_BYTES:
		suffix = " B", prec = v == floor(v) ? 0 : 2;
		break;
	case U_COUNT:
		prec = v == floor(v) ? 0 : 2;
		break;
	}
	if (spread && lo != hi)
		snprintf(buf, len, "%.*f%s (%.*f–%.*f)", prec, v / div, suffix,
			 prec, lo / div, prec, hi / div);
	else
		snprintf(buf, len, "%.*f%s", prec, v / div, suffix);
}

const char *fmt_ns(char *buf, size_t len, double ns)
{
	fmt_value(buf, len, U_NS, ns, ns, ns, false);
	return buf;
}

static void fmt_series(char *buf, size_t len, enum unit unit, const struct series *s)
{
	fmt_value(buf, len, unit, series_median(s), series_min(s), series_max(s), true);
}

static char (*new_row(const char *name))[CELL]
{
	char (*row)[CELL];

	if (nrows == MAX_ROWS)
		die("too many rows");
	row = rows[nrows++];
	for (int c = 0; c < NCOLS; c++)
		row[c][0] = 0;
	snprintf(row[COL_CASE], CELL, "%s", name);
	return row;
}

void report(const char *name, enum unit unit, const struct series *ksync,
	    const char *base_name, const struct series *base, struct goal goal)
{
	char (*row)[CELL] = new_row(name);
	double ratio = NAN;
	const char *met = "—";

	fmt_series(row[COL_KSYNC], CELL, unit, ksync);
	if (base) {
		char v[64];

		fmt_series(v, sizeof(v), unit, base);
		snprintf(row[COL_BASE], CELL, "%s: %s", base_name, v);
		ratio = series_median(ksync) / series_median(base);
		if (isfinite(ratio))
			snprintf(row[COL_RATIO], CELL, "%.2fx", ratio);
		else
			snprintf(row[COL_RATIO], CELL, "—");
	} else {
		snprintf(row[COL_BASE], CELL, "—");
		snprintf(row[COL_RATIO], CELL, "—");
	}
	snprintf(row[COL_GOAL], CELL, "%s", goal.kind == G_NONE ? "—" : goal.text);

	switch (goal.kind) {
	case G_NONE:
		break;
	case G_RATIO_LE:
		met = ratio <= goal.x ? "yes" : "**NO**";
		break;
	case G_RATIO_GE:
		met = ratio >= goal.x ? "yes" : "**NO**";
		break;
	case G_VALUE_LE:
		/* Judged on the worst run, not the median: a bound is a bound. */
		met = series_max(ksync) <= goal.x ? "yes" : "**NO**";
		break;
	case G_SAME_LE: {
		bool ok = base && series_max(ksync) <= goal.x && series_max(base) <= goal.x &&
			  series_min(ksync) == series_max(base) &&
			  series_max(ksync) == series_min(base);

		met = ok ? "yes" : "**NO**";
		break;
	}
	}
	snprintf(row[COL_MET], CELL, "%s", met);
}

void report_missing(const char *name, const char *why, struct goal goal)
{
	char (*row)[CELL] = new_row(name);

	snprintf(row[COL_KSYNC], CELL, "%s", why);
	snprintf(row[COL_BASE], CELL, "—");
	snprintf(row[COL_RATIO], CELL, "—");
	snprintf(row[COL_GOAL], CELL, "%s", goal.kind == G_NONE ? "—" : goal.text);
	snprintf(row[COL_MET], CELL, "%s", goal.kind == G_NONE ? "—" : "not measured");
}

void note(const char *fmt, ...)
{
	va_list ap;

	if (nnotes == MAX_NOTES)
		return;
	va_start(ap, fmt);
	vsnprintf(notes[nnotes++], sizeof(notes[0]), fmt, ap);
	va_end(ap);
}

/* Display width of a UTF-8 cell (µ, –, — are one column each). */
static int width(const char *s)
{
	int w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static void print_cell(const char *s, int w)
{
	printf(" %s%*s |", s, w - width(s), "");
}

static void print_table(void)
{
	static const char *head[NCOLS] = { "case", "ksync", "baseline", "ratio", "goal", "met?" };
	int w[NCOLS];

	for (int c = 0; c < NCOLS; c++) {
		w[c] = width(head[c]);
		for (int r = 0; r < nrows; r++)
			if (width(rows[r][c]) > w[c])
				w[c] = width(rows[r][c]);
	}
	printf("|");
	for (int c = 0; c < NCOLS; c++)
		print_cell(head[c], w[c]);
	printf("\n|");
	for (int c = 0; c < NCOLS; c++) {
		printf(" ");
		for (int i = 0; i < w[c]; i++)
			putchar('-');
		printf(" |");
	}
	printf("\n");
	for (int r = 0; r < nrows; r++) {
		printf("|");
		for (int c = 0; c < NCOLS; c++)
			print_cell(rows[r][c], w[c]);
		printf("\n");
	}
	if (nnotes)
		printf("\n");
	for (int i = 0; i < nnotes; i++)
		printf("- %s\n", notes[i]);
}

/* ---- the machine -------------------------------------------------------- */

static void cpu_model(char *buf, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];

	snprintf(buf, len, "unknown CPU");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) || !colon)
			continue;
		colon += 2;
		colon[strcspn(colon, "\n")] = 0;
		snprintf(buf, len, "%s", colon);
		break;
	}
	fclose(f);
}


static void print_header(int64_t elapsed_ns)
{
	char cpu[256], date[64], load[64] = "?";
	struct utsname u;
	time_t now = time(NULL);
	FILE *f;

	cpu_model(cpu, sizeof(cpu));
	uname(&u);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fgets(load, sizeof(load), f))
			load[strcspn(load, " ")] = 0;
		fclose(f);
	}
	printf("ksync %s — %s, %ld cores (%d usable), Linux %s %s, %s, load %s; "
	       "%d runs per figure, %s mode, %.0f s\n\n",
	       KSYNC_VERSION, cpu, sysconf(_SC_NPROCESSORS_ONLN), CPU_COUNT(&cpus_allowed), u.release,
	       u.machine, date, load, cfg.runs, cfg.quick ? "quick" : "full",
	       elapsed_ns / 1e9);
	printf("Figures: median (min–max) over the runs; ratio = ksync / baseline "
	       "(medians).\n\n");
}

/* ---- main --------------------------------------------------------------- */

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{ "lock", bench_lock_uncontended },
	{ "contended", bench_lock_contended },
	{ "wake", bench_wake },
	{ "sem", bench_sem },
	{ "broadcast", bench_broadcast },
	{ "memory", bench_memory },
	{ "poll", bench_poll },
	{ "pipeline", bench_pipeline },
	{ "limiter", bench_limiter },
	{ "queue", bench_queue },
	{ "revent", bench_revent },
	{ "barrier", bench_barrier },
	{ "tracer", bench_tracer },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static bool selected(const char *only, const char *name)
{
	size_t n = strlen(name);

	if (!only)
		return true;
	for (const char *p = only; (p = strstr(p, name)); p += n)
		if ((p == only || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
			return true;
	return false;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ksync-bench [--quick] [--runs N] [--only CASE[,CASE...]]\n"
		   "cases:");
	for (size_t i = 0; i < NCASES; i++)
		fprintf(f, " %s", cases[i].name);
	fprintf(f, "\n");
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	bool runs_given = false;
	int64_t t0;
	int r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			cfg.quick = true;
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			cfg.runs = atoi(argv[++i]);
			runs_given = true;
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (cfg.quick && !runs_given)
		cfg.runs = 3;
	if (cfg.runs < 1 || cfg.runs > MAX_RUNS)
		die("--runs must be 1..%d", MAX_RUNS);

	r = ksync_require(KSYNC_FEAT_FUTEX2 | KSYNC_FEAT_URING | KSYNC_FEAT_URING_FUTEX);
	if (r) {
		/* 77: meson's "skipped". */
		printf("ksync-bench: skipped, this kernel lacks what ksync needs (%s)\n",
		       strerror(-r));
		return 77;
	}

	if (sched_getaffinity(0, sizeof(cpus_allowed), &cpus_allowed))
		die("sched_getaffinity: %s", strerror(errno));
	t0 = now_ns();
	for (size_t i = 0; i < NCASES; i++) {
		if (!selected(only, cases[i].name))
			continue;
		progress("ksync-bench: %s ...", cases[i].name);
		cases[i].fn();
	}
	print_header(now_ns() - t0);
	print_table();
	return 0;
}
