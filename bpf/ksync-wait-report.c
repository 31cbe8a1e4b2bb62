/* SPDX-License-Identifier: MIT */
/*
 * ksync-wait's report: reads the BPF maps, folds the per-stack rows into
 * rows per call site, names the primitives, and prints the table, JSON or
 * folded stacks.
 *
 * A call site is the first frame of a stack outside ksync: a frame is
 * ksync's when its function is named ksync_*, when it lies in a shared
 * library carrying the ksync probes, or (a static binary) when it lies
 * between the first and the last ksync_* function of its file, where the
 * library's objects were linked together (or in a part the compiler split
 * off one of those functions, "f.cold", which lies elsewhere).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ksync-wait.h"
#include "ksync-wait.skel.h"

/* ---- stacks ------------------------------------------------------------- */

struct stack {
	__u32 id;
	int n;			/* frames; 0: unavailable */
	__u64 ips[KSYNC_TRACE_STACK_DEPTH];
};

static struct stack *stack_cache;
static size_t nstack_cache;
static int stacks_fd;
static __u64 stacks_lost;	/* not kept: the stack maps were full */

static const struct stack *get_stack(__u32 id)
{
	struct stack *s, *ns;

	if (id == KSYNC_TRACE_NO_STACK)
		return NULL;
	for (size_t i = 0; i < nstack_cache; i++)
		if (stack_cache[i].id == id)
			return stack_cache[i].n ? &stack_cache[i] : NULL;
	ns = realloc(stack_cache, (nstack_cache + 1) * sizeof(*ns));
	if (!ns)
		return NULL;
	stack_cache = ns;
	s = &stack_cache[nstack_cache++];
	memset(s, 0, sizeof(*s));
	s->id = id;
	if (bpf_map_lookup_elem(stacks_fd, &id, s->ips) == 0)
		while (s->n < KSYNC_TRACE_STACK_DEPTH && s->ips[s->n])
			s->n++;
	return s->n ? s : NULL;
}

static bool frame_is_ksync(struct proc *p, __u64 addr, bool ret)
{
	uint64_t at = ret ? addr - 1 : addr;
	struct sym_frame f;

	if (!sym_frame(p->sym, addr, ret, &f))
		return false;
	if (f.func && !strncmp(f.func, "ksync_", 6))
		return true;
	if (f.module && is_ksync_module(f.module) && strcmp(f.module, sym_proc_exe(p->sym)))
		return true;
	return sym_prefix_code(p->sym, at, "ksync_");
}

/* Index of the call site in @st: its first frame outside ksync. */
static int site_index(struct proc *p, const struct stack *st)
{
	if (!p || !p->sym)
		return 0;
	for (int i = 0; i < st->n; i++)
		if (!frame_is_ksync(p, st->ips[i], i > 0))
			return i;
	return 0;
}

/* ---- rows --------------------------------------------------------------- */

/* One stack folded into a row: its waits and their time, or its wakes and
 * the delay charged to them. */
struct part {
	__u32 stack_id;
	__u64 count;
	__u64 ns;
};

struct prim_id {
	char name[96];
	const char *source;	/* "set", "symbol", "address" */
};

struct wrow {
	__u32 pid, kind, world;
	__u64 prim;
	__u64 site;		/* call-site address; 0: no stack */
	int site_idx;		/* its frame index in the parts' stacks */
	struct ksync_trace_wait_row s;
	struct part *parts;
	size_t nparts;
	struct prim_id id;
	__u64 p50, p99;
};

struct krow {
	__u32 pid, kind;
	__u64 prim;
	__u64 site;
	int site_idx;
	struct ksync_trace_wake_row s;
	struct part *parts;
	size_t nparts;
	struct prim_id id;
};

static int add_part(struct part **parts, size_t *n, __u32 stack_id, __u64 count, __u64 ns)
{
	struct part *np;

	for (size_t i = 0; i < *n; i++) {
		if ((*parts)[i].stack_id == stack_id) {
			(*parts)[i].count += count;
			(*parts)[i].ns += ns;
			return 0;
		}
	}
	np = realloc(*parts, (*n + 1) * sizeof(*np));
	if (!np)
		return -ENOMEM;
	*parts = np;
	np[*n] = (struct part){ stack_id, count, ns };
	(*n)++;
	return 0;
}

static void add_wait_stats(struct ksync_trace_wait_row *sum, const struct ksync_trace_wait_row *s)
{
	sum->waits += s->waits;
	sum->timed += s->timed;
	sum->total_ns += s->total_ns;
	for (int i = 0; i < KSYNC_TRACE_NR_OUTCOMES; i++)
		sum->outcomes[i] += s->outcomes[i];
	sum->holds += s->holds;
	sum->hold_total_ns += s->hold_total_ns;
	if (s->hold_max_ns > sum->hold_max_ns)
		sum->hold_max_ns = s->hold_max_ns;
	for (int i = 0; i < KSYNC_TRACE_HIST_SLOTS; i++)
		sum->hist[i] += s->hist[i];
	if (s->max_ns > sum->max_ns) {
		sum->max_ns = s->max_ns;
		sum->max_who = s->max_who;
		sum->max_holder_tid = s->max_holder_tid;
		sum->max_holder_token = s->max_holder_token;
		sum->max_waker_stack = s->max_waker_stack;
	}
}

static void add_wake_stats(struct ksync_trace_wake_row *sum, const struct ksync_trace_wake_row *s)
{
	sum->wakes += s->wakes;
	sum->woken += s->woken;
	sum->delay_ns += s->delay_ns;
	sum->holds += s->holds;
	sum->hold_total_ns += s->hold_total_ns;
	if (s->hold_max_ns > sum->hold_max_ns)
		sum->hold_max_ns = s->hold_max_ns;
	if (s->last_tid)
		sum->last_tid = s->last_tid;
}

/*
 * Read every entry of a per-CPU map, each summed over the CPUs by @add into
 * a zeroed (then @init-ed) value, and hand it to @fn. With @reset entries
 * are deleted as they are read (one syscall each, so no update falls
 * between read and delete).
 */
static int read_percpu(int fd, size_t key_size, size_t value_size, bool reset,
		       void (*init)(void *sum), void (*add)(void *sum, const void *one),
		       int (*fn)(const void *key, const void *sum, void *arg), void *arg)
{
	int ncpus = libbpf_num_possible_cpus();
	size_t nkeys = 0, cap = 0, stride = (value_size + 7) & ~(size_t)7;
	char *keys = NULL, *prev = NULL, *values = NULL, *sum = NULL;
	int err = 0;

	if (ncpus <= 0)
		return ncpus ? ncpus : -EINVAL;
	/* Collect the keys first: deleting while walking would restart it. */
	for (;;) {
		if (nkeys == cap) {
			char *nk;

			cap = cap ? 2 * cap : 64;
			nk = realloc(keys, cap * key_size);
			if (!nk) {
				err = -ENOMEM;
				goto out;
			}
			keys = nk;
			if (prev)
				prev = keys + (nkeys - 1) * key_size;
		}
		if (bpf_map_get_next_key(fd, prev, keys + nkeys * key_size))
			break;
		prev = keys + nkeys * key_size;
		nkeys++;
	}
	values = calloc((size_t)ncpus, stride);
	sum = malloc(value_size);
	if (!values || !sum) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nkeys; i++) {
		const void *key = keys + i * key_size;
		int r = reset ? bpf_map_lookup_and_delete_elem(fd, key, values)
			      : bpf_map_lookup_elem(fd, key, values);

		if (r)
			continue;	/* gone meanwhile */
		memset(sum, 0, value_size);
		if (init)
			init(sum);
		for (int c = 0; c < ncpus; c++)
			add(sum, values + (size_t)c * stride);
		err = fn(key, sum, arg);
		if (err)
			break;
	}
out:
	free(keys);
	free(values);
	free(sum);
	return err;
}

static void init_wait(void *sum)
{
	((struct ksync_trace_wait_row *)sum)->max_waker_stack = KSYNC_TRACE_NO_STACK;
}

static void add_wait(void *sum, const void *one)
{
	add_wait_stats(sum, one);
}

static void add_wake(void *sum, const void *one)
{
	add_wake_stats(sum, one);
}

struct rows {
	struct wrow *w;
	size_t nw;
	struct krow *k;
	size_t nk;
};

/* The call site of a stack: its address and frame index (0, 0: none). */
static __u64 site_of(__u32 pid, __u32 stack_id, int *idx)
{
	const struct stack *st = get_stack(stack_id);
	struct proc *p;

	*idx = 0;
	if (!st)
		return 0;
	p = proc_get((pid_t)pid, false);
	*idx = site_index(p, st);
	return st->ips[*idx];
}

static int collect_wait(const void *key, const void *sum, void *arg)
{
	const struct ksync_trace_wait_row_key *k = key;
	const struct ksync_trace_wait_row *s = sum;
	struct rows *rows = arg;
	struct wrow *r = NULL, *nw;
	int idx;
	__u64 site = site_of(k->pid, k->stack_id, &idx);

	for (size_t i = 0; i < rows->nw; i++) {
		struct wrow *x = &rows->w[i];

		if (x->pid == k->pid && x->prim == k->prim && x->kind == k->kind &&
		    x->world == k->world && x->site == site) {
			r = x;
			break;
		}
	}
	if (!r) {
		nw = realloc(rows->w, (rows->nw + 1) * sizeof(*nw));
		if (!nw)
			return -ENOMEM;
		rows->w = nw;
		r = &nw[rows->nw++];
		memset(r, 0, sizeof(*r));
		r->pid = k->pid;
		r->kind = k->kind;
		r->world = k->world;
		r->prim = k->prim;
		r->site = site;
		r->site_idx = idx;
		init_wait(&r->s);
	}
	add_wait_stats(&r->s, s);
	if (s->waits || s->holds)
		return add_part(&r->parts, &r->nparts, k->stack_id, s->waits, s->total_ns);
	return 0;
}

static int collect_wake(const void *key, const void *sum, void *arg)
{
	const struct ksync_trace_wake_row_key *k = key;
	const struct ksync_trace_wake_row *s = sum;
	struct rows *rows = arg;
	struct krow *r = NULL, *nk;
	int idx;
	__u64 site = site_of(k->pid, k->stack_id, &idx);

	for (size_t i = 0; i < rows->nk; i++) {
		struct krow *x = &rows->k[i];

		if (x->pid == k->pid && x->prim == k->prim && x->kind == k->kind &&
		    x->site == site) {
			r = x;
			break;
		}
	}
	if (!r) {
		nk = realloc(rows->k, (rows->nk + 1) * sizeof(*nk));
		if (!nk)
			return -ENOMEM;
		rows->k = nk;
		r = &nk[rows->nk++];
		memset(r, 0, sizeof(*r));
		r->pid = k->pid;
		r->kind = k->kind;
		r->prim = k->prim;
		r->site = site;
		r->site_idx = idx;
	}
	add_wake_stats(&r->s, s);
	return add_part(&r->parts, &r->nparts, k->stack_id, s->wakes, s->delay_ns);
}

/* ---- names -------------------------------------------------------------- */

static int names_fd;

static void name_prim(__u32 pid, __u64 prim, struct prim_id *id)
{
	struct ksync_trace_prim_key key = { .prim = prim, .pid = pid };
	struct ksync_trace_name v;
	struct proc *p = proc_get((pid_t)pid, false);

	/* Named (or unnamed) while we were attached: the latest word. */
	if (bpf_map_lookup_elem(names_fd, &key, &v) == 0) {
		if (v.name[0]) {
			v.name[KSYNC_NAME_MAX - 1] = '\0';
			snprintf(id->name, sizeof(id->name), "%s", v.name);
			id->source = "set";
			return;
		}
	} else if (p) {
		for (size_t i = 0; i < p->nnames; i++) {
			if (p->names[i].prim == prim) {
				snprintf(id->name, sizeof(id->name), "%s", p->names[i].name);
				id->source = "set";
				return;
			}
		}
	}
	if (p && p->sym && sym_data(p->sym, prim, id->name, sizeof(id->name))) {
		id->source = "symbol";
		return;
	}
	snprintf(id->name, sizeof(id->name), "0x%llx", prim);
	id->source = "address";
}

/* ---- numbers ------------------------------------------------------------ */

/* The @q quantile of the timed waits, interpolated in its log2 bucket. */
static __u64 percentile(const struct ksync_trace_wait_row *s, double q)
{
	double rank = q * (double)s->timed;
	__u64 cum = 0;

	if (!s->timed)
		return 0;
	if (rank < 1)
		rank = 1;
	for (int k = 0; k < KSYNC_TRACE_HIST_SLOTS; k++) {
		__u64 c = s->hist[k], lo, hi;
		double v;

		if (!c)
			continue;
		if ((double)(cum + c) < rank) {
			cum += c;
			continue;
		}
		lo = k ? 1ULL << k : 0;
		hi = k == KSYNC_TRACE_HIST_SLOTS - 1 ? s->max_ns : 1ULL << (k + 1);
		if (hi < lo)
			hi = lo;
		v = (double)lo + (rank - (double)cum) / (double)c * (double)(hi - lo);
		return v > (double)s->max_ns ? s->max_ns : (__u64)v;
	}
	return s->max_ns;
}

static const char *fmt_ns(__u64 ns, char *buf, size_t len)
{
	if (ns < 1000)
		snprintf(buf, len, "%llu ns", ns);
	else if (ns < 1000000)
		snprintf(buf, len, "%.1f us", ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, len, "%.1f ms", ns / 1e6);
	else
		snprintf(buf, len, "%.2f s", ns / 1e9);
	return buf;
}

static const char *kind_name(__u32 kind)
{
	switch (kind) {
	case KSYNC_KIND_EVENT:
		return "event";
	case KSYNC_KIND_LOCK:
		return "lock";
	case KSYNC_KIND_SEM:
		return "sem";
	case KSYNC_KIND_LIMITER:
		return "limiter";
	case KSYNC_KIND_REVENT:
		return "revent";
	case KSYNC_KIND_COUNTDOWN:
		return "countdown";
	case KSYNC_KIND_LATCH:
		return "latch";
	case KSYNC_KIND_BARRIER:
		return "barrier";
	case KSYNC_KIND_RBARRIER:
		return "rbarrier";
	}
	return "?";
}

static const char *world_name(__u32 world)
{
	switch (world) {
	case KSYNC_WORLD_THREAD:
		return "thread";
	case KSYNC_WORLD_URING:
		return "uring";
	}
	return "?";
}

/* ---- sorting ------------------------------------------------------------ */

static __u64 wrow_key(const struct wrow *r, enum sort_key k)
{
	switch (k) {
	case SORT_WAITS:
		return r->s.waits;
	case SORT_TOTAL:
		return r->s.total_ns;
	case SORT_AVG:
		return r->s.timed ? r->s.total_ns / r->s.timed : 0;
	case SORT_MAX:
		return r->s.max_ns;
	case SORT_P50:
		return r->p50;
	case SORT_P99:
		return r->p99;
	case SORT_HOLD:
		return r->s.hold_max_ns;
	case SORT_NAME:
		break;
	}
	return 0;
}

static int cmp_wrows(const void *a, const void *b)
{
	const struct wrow *x = a, *y = b;
	int c;

	for (int i = 0; i < opt.nsort; i++) {
		__u64 kx, ky;

		if (opt.sort[i] == SORT_NAME) {
			c = strcmp(x->id.name, y->id.name);
			if (c)
				return c;
			continue;
		}
		kx = wrow_key(x, opt.sort[i]);
		ky = wrow_key(y, opt.sort[i]);
		if (kx != ky)
			return kx > ky ? -1 : 1;	/* largest first */
	}
	/* Stable order for equal keys: process, name, world, site. */
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	c = strcmp(x->id.name, y->id.name);
	if (c)
		return c;
	if (x->world != y->world)
		return x->world < y->world ? -1 : 1;
	return x->site < y->site ? -1 : x->site > y->site;
}

static int cmp_krows(const void *a, const void *b)
{
	const struct krow *x = a, *y = b;
	int c;

	if (x->s.delay_ns != y->s.delay_ns)
		return x->s.delay_ns > y->s.delay_ns ? -1 : 1;
	if (x->s.wakes != y->s.wakes)
		return x->s.wakes > y->s.wakes ? -1 : 1;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	c = strcmp(x->id.name, y->id.name);
	if (c)
		return c;
	return x->site < y->site ? -1 : x->site > y->site;
}

/* ---- frames ------------------------------------------------------------- */

static void resolve(__u32 pid, __u64 addr, bool ret, struct sym_frame *f)
{
	struct proc *p = proc_get((pid_t)pid, false);

	if (!p || !p->sym || !sym_frame(p->sym, addr, ret, f)) {
		memset(f, 0, sizeof(*f));
		f->addr = addr;
	}
}

static char *site_text(__u32 pid, __u64 site, int idx, char *buf, size_t len)
{
	struct sym_frame f;

	if (!site) {
		snprintf(buf, len, "-");
		return buf;
	}
	resolve(pid, site, idx > 0, &f);
	return sym_format(&f, false, buf, len);
}

static const char *proc_comm(__u32 pid)
{
	struct proc *p = proc_get((pid_t)pid, false);

	return p && p->sym ? sym_proc_comm(p->sym) : "";
}

/* ---- the table ---------------------------------------------------------- */

static void print_stack(FILE *f, __u32 pid, __u32 stack_id, const char *indent)
{
	const struct stack *st = get_stack(stack_id);
	char buf[PATH_MAX + 128];

	if (!st) {
		fprintf(f, "%s[no stack]\n", indent);
		return;
	}
	for (int i = 0; i < st->n; i++) {
		struct sym_frame fr;

		resolve(pid, st->ips[i], i > 0, &fr);
		fprintf(f, "%s#%-2d %s\n", indent, i, sym_format(&fr, false, buf, sizeof(buf)));
	}
}

static void print_histogram(FILE *f, const struct ksync_trace_wait_row *s)
{
	__u64 most = 0;
	int first = -1, last = -1;

	for (int k = 0; k < KSYNC_TRACE_HIST_SLOTS; k++) {
		if (!s->hist[k])
			continue;
		if (first < 0)
			first = k;
		last = k;
		if (s->hist[k] > most)
			most = s->hist[k];
	}
	if (first < 0)
		return;
	fprintf(f, "        %-24s %8s\n", "wait time", "count");
	for (int k = first; k <= last; k++) {
		char lo[24], hi[24], range[56], bar[41];
		int w = (int)((s->hist[k] * 40 + most - 1) / most);

		fmt_ns(k ? 1ULL << k : 0, lo, sizeof(lo));
		if (k == KSYNC_TRACE_HIST_SLOTS - 1)
			snprintf(hi, sizeof(hi), "...");
		else
			fmt_ns(1ULL << (k + 1), hi, sizeof(hi));
		snprintf(range, sizeof(range), "[%s, %s)", lo, hi);
		memset(bar, '*', (size_t)w);
		bar[w] = '\0';
		fprintf(f, "        %-24s %8llu |%-40s|\n", range, s->hist[k], bar);
	}
}

static void print_table(FILE *f, struct rows *rows, size_t nw, size_t nk)
{
	char tbuf[32], site[PATH_MAX + 128];
	static const char *sort_names[] = {
		"waits", "total", "avg", "max", "p50", "p99", "hold", "name",
	};
	time_t now = time(NULL);
	int width = 9;
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(tbuf, sizeof(tbuf), "%H:%M:%S", &tm);
	for (size_t i = 0; i < nw; i++)
		if ((int)strlen(rows->w[i].id.name) > width)
			width = (int)strlen(rows->w[i].id.name);
	for (size_t i = 0; i < nk; i++)
		if ((int)strlen(rows->k[i].id.name) > width)
			width = (int)strlen(rows->k[i].id.name);
	if (width > 40)
		width = 40;

	fprintf(f, "\n%s  waits by %s", tbuf, sort_names[opt.sort[0]]);
	for (int i = 1; i < opt.nsort; i++)
		fprintf(f, ",%s", sort_names[opt.sort[i]]);
	fprintf(f, "%s\n", opt.top ? " (top rows)" : "");
	fprintf(f, "%7s %-5s %-6s %7s %9s %9s %9s %9s %9s %5s %4s %4s %4s %9s %9s  %-*s  %s\n",
		"PID", "KIND", "WORLD", "WAITS", "TOTAL", "AVG", "MAX", "P50", "P99",
		"OK", "TMO", "CAN", "ERR", "HOLD_AVG", "HOLD_MAX", width, "PRIMITIVE",
		"CALL SITE");
	if (!nw)
		fprintf(f, "(no contended waits)\n");
	for (size_t i = 0; i < nw; i++) {
		const struct wrow *r = &rows->w[i];
		const struct ksync_trace_wait_row *s = &r->s;
		char total[16] = "-", avg[16] = "-", max[16] = "-", p50[16] = "-", p99[16] = "-";
		char havg[16] = "-", hmax[16] = "-";

		if (s->timed) {
			fmt_ns(s->total_ns, total, sizeof(total));
			fmt_ns(s->total_ns / s->timed, avg, sizeof(avg));
			fmt_ns(s->max_ns, max, sizeof(max));
			fmt_ns(r->p50, p50, sizeof(p50));
			fmt_ns(r->p99, p99, sizeof(p99));
		}
		if (s->holds) {
			fmt_ns(s->hold_total_ns / s->holds, havg, sizeof(havg));
			fmt_ns(s->hold_max_ns, hmax, sizeof(hmax));
		}
		fprintf(f, "%7u %-5s %-6s %7llu %9s %9s %9s %9s %9s %5llu %4llu"
			" %4llu %4llu %9s %9s  %-*s  %s\n",
			r->pid, kind_name(r->kind), world_name(r->world), s->waits, total, avg, max,
			p50, p99, s->outcomes[KSYNC_TRACE_OK], s->outcomes[KSYNC_TRACE_TIMEDOUT],
			s->outcomes[KSYNC_TRACE_CANCELED], s->outcomes[KSYNC_TRACE_OTHER], havg, hmax,
			width, r->id.name, site_text(r->pid, r->site, r->site_idx, site, sizeof(site)));
		if (opt.histogram)
			print_histogram(f, s);
		if (opt.show_stacks) {
			char buf[32];

			if (s->timed) {
				fprintf(f, "        longest: %s, %s %llu", fmt_ns(s->max_ns, buf, sizeof(buf)),
					r->world == KSYNC_WORLD_URING ? "task" : "tid", s->max_who);
				if (s->max_holder_tid)
					fprintf(f, "; held by %s %llu when it began",
						s->max_holder_token ? "task" : "tid",
						s->max_holder_token ? (__u64)s->max_holder_token
								    : (__u64)s->max_holder_tid);
				if (s->max_waker_stack != KSYNC_TRACE_NO_STACK) {
					int idx;
					__u64 ws = site_of(r->pid, s->max_waker_stack, &idx);

					fprintf(f, "; woken by %s",
						site_text(r->pid, ws, idx, site, sizeof(site)));
				}
				fprintf(f, "\n");
			}
			for (size_t j = 0; j < r->nparts; j++) {
				fprintf(f, "        stack: %llu waits, %s\n", r->parts[j].count,
					fmt_ns(r->parts[j].ns, buf, sizeof(buf)));
				print_stack(f, r->pid, r->parts[j].stack_id, "          ");
			}
		}
	}

	fprintf(f, "\nholders: release sites that woke waiters, by the waiting charged to them\n");
	fprintf(f, "%7s %-5s %7s %7s %9s %9s %9s  %-*s  %s\n", "PID", "KIND", "WAKES", "WOKEN",
		"DELAY", "HOLD_AVG", "HOLD_MAX", width, "PRIMITIVE", "RELEASE SITE");
	if (!nk)
		fprintf(f, "(no wakes)\n");
	for (size_t i = 0; i < nk; i++) {
		const struct krow *r = &rows->k[i];
		char delay[16], havg[16] = "-", hmax[16] = "-";

		if (r->s.holds) {
			fmt_ns(r->s.hold_total_ns / r->s.holds, havg, sizeof(havg));
			fmt_ns(r->s.hold_max_ns, hmax, sizeof(hmax));
		}
		fprintf(f, "%7u %-5s %7llu %7llu %9s %9s %9s  %-*s  %s\n", r->pid,
			kind_name(r->kind), r->s.wakes, r->s.woken,
			fmt_ns(r->s.delay_ns, delay, sizeof(delay)), havg, hmax, width, r->id.name,
			site_text(r->pid, r->site, r->site_idx, site, sizeof(site)));
		if (opt.show_stacks) {
			for (size_t j = 0; j < r->nparts; j++) {
				char buf[32];

				fprintf(f, "        stack: %llu wakes, %s charged\n",
					r->parts[j].count, fmt_ns(r->parts[j].ns, buf, sizeof(buf)));
				print_stack(f, r->pid, r->parts[j].stack_id, "          ");
			}
		}
	}
	fflush(f);
}

/* ---- JSON --------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_frame(FILE *f, __u32 pid, __u64 addr, bool ret)
{
	struct sym_frame fr;

	resolve(pid, addr, ret, &fr);
	fprintf(f, "{\"addr\":\"0x%llx\",\"func\":", addr);
	json_str(f, fr.func);
	fprintf(f, ",\"offset\":");
	if (fr.func)
		fprintf(f, "%llu", (unsigned long long)fr.func_off);
	else
		fputs("null", f);
	fprintf(f, ",\"file\":");
	json_str(f, fr.file);
	fprintf(f, ",\"line\":");
	if (fr.file)
		fprintf(f, "%d", fr.line);
	else
		fputs("null", f);
	fprintf(f, ",\"module\":");
	json_str(f, fr.module);
	fputc('}', f);
}

static void json_site(FILE *f, __u32 pid, __u64 site, int idx)
{
	if (site)
		json_frame(f, pid, site, idx > 0);
	else
		fputs("null", f);
}

static void json_stack(FILE *f, __u32 pid, __u32 stack_id)
{
	const struct stack *st = get_stack(stack_id);

	fputc('[', f);
	for (int i = 0; st && i < st->n; i++) {
		if (i)
			fputc(',', f);
		json_frame(f, pid, st->ips[i], i > 0);
	}
	fputc(']', f);
}

static void json_hold(FILE *f, __u64 holds, __u64 total, __u64 max)
{
	fprintf(f, "{\"count\":%llu,\"total_ns\":%llu,\"avg_ns\":%llu"
		",\"max_ns\":%llu}", holds, total, holds ? total / holds : 0, max);
}

static void json_prim(FILE *f, __u32 pid, __u64 prim, const struct prim_id *id, __u32 kind)
{
	fprintf(f, "\"pid\":%u,\"comm\":", pid);
	json_str(f, proc_comm(pid));
	fprintf(f, ",\"prim\":\"0x%llx\",\"name\":", prim);
	json_str(f, id->name);
	fprintf(f, ",\"name_source\":\"%s\",\"kind\":\"%s\"", id->source, kind_name(kind));
}

/*
 * One object per report, on one line:
 *
 *   {"version":1, "time":UNIX_S, "stacks_lost":N, "waits":[WAIT...],
 *    "holders":[HOLDER...]}
 *
 * stacks_lost: stacks not kept since the tool started (its maps were full);
 * their waits and wakes are counted in rows without a call site.
 *
 * WAIT: pid, comm, prim ("0x..."), name, name_source ("set", "symbol",
 *   "address"), kind, world, site (FRAME or null), waits, timed, total_ns,
 *   avg_ns, max_ns, p50_ns, p99_ns, outcomes {ok, timeout, canceled, other},
 *   hold (Lock: {count, total_ns, avg_ns, max_ns}, else null), longest
 *   ({ns, tid or token, holder {tid, token} or null, woken_by FRAME or null}
 *   or null), histogram [{lo_ns, hi_ns (null: open), count}], stacks
 *   [{waits, total_ns, frames [FRAME...]}] (innermost frame first).
 * HOLDER: pid, comm, prim, name, name_source, kind, site, wakes, woken,
 *   delay_ns, last_tid, hold, stacks [{wakes, delay_ns, frames}].
 * FRAME: {addr, func, offset, file, line, module}, unknown parts null.
 */
static void print_json(FILE *f, struct rows *rows, size_t nw, size_t nk)
{
	fprintf(f, "{\"version\":1,\"time\":%lld,\"stacks_lost\":%llu,\"waits\":[",
		(long long)time(NULL), stacks_lost);
	for (size_t i = 0; i < nw; i++) {
		const struct wrow *r = &rows->w[i];
		const struct ksync_trace_wait_row *s = &r->s;
		bool first = true;

		fprintf(f, "%s{", i ? "," : "");
		json_prim(f, r->pid, r->prim, &r->id, r->kind);
		fprintf(f, ",\"world\":\"%s\",\"site\":", world_name(r->world));
		json_site(f, r->pid, r->site, r->site_idx);
		fprintf(f, ",\"waits\":%llu,\"timed\":%llu,\"total_ns\":%llu"
			",\"avg_ns\":%llu,\"max_ns\":%llu,\"p50_ns\":%llu"
			",\"p99_ns\":%llu", s->waits, s->timed, s->total_ns,
			s->timed ? s->total_ns / s->timed : 0, s->max_ns, r->p50, r->p99);
		fprintf(f, ",\"outcomes\":{\"ok\":%llu,\"timeout\":%llu"
			",\"canceled\":%llu,\"other\":%llu}",
			s->outcomes[KSYNC_TRACE_OK], s->outcomes[KSYNC_TRACE_TIMEDOUT],
			s->outcomes[KSYNC_TRACE_CANCELED], s->outcomes[KSYNC_TRACE_OTHER]);
		fprintf(f, ",\"hold\":");
		if (r->kind == KSYNC_KIND_LOCK)
			json_hold(f, s->holds, s->hold_total_ns, s->hold_max_ns);
		else
			fputs("null", f);
		fprintf(f, ",\"longest\":");
		if (s->timed) {
			fprintf(f, "{\"ns\":%llu,\"%s\":%llu,\"holder\":", s->max_ns,
				r->world == KSYNC_WORLD_URING ? "token" : "tid", s->max_who);
			if (s->max_holder_tid)
				fprintf(f, "{\"tid\":%u,\"token\":%llu}", s->max_holder_tid,
					(__u64)s->max_holder_token);
			else
				fputs("null", f);
			fprintf(f, ",\"woken_by\":");
			if (s->max_waker_stack != KSYNC_TRACE_NO_STACK) {
				int idx;
				__u64 ws = site_of(r->pid, s->max_waker_stack, &idx);

				json_site(f, r->pid, ws, idx);
			} else {
				fputs("null", f);
			}
			fputc('}', f);
		} else {
			fputs("null", f);
		}
		fprintf(f, ",\"histogram\":[");
		for (int k = 0; k < KSYNC_TRACE_HIST_SLOTS; k++) {
			if (!s->hist[k])
				continue;
			fprintf(f, "%s{\"lo_ns\":%llu,\"hi_ns\":", first ? "" : ",",
				k ? 1ULL << k : 0);
			if (k == KSYNC_TRACE_HIST_SLOTS - 1)
				fputs("null", f);
			else
				fprintf(f, "%llu", 1ULL << (k + 1));
			fprintf(f, ",\"count\":%llu}", s->hist[k]);
			first = false;
		}
		fprintf(f, "],\"stacks\":[");
		for (size_t j = 0; j < r->nparts; j++) {
			fprintf(f, "%s{\"waits\":%llu,\"total_ns\":%llu,\"frames\":",
				j ? "," : "", r->parts[j].count, r->parts[j].ns);
			json_stack(f, r->pid, r->parts[j].stack_id);
			fputc('}', f);
		}
		fprintf(f, "]}");
	}
	fprintf(f, "],\"holders\":[");
	for (size_t i = 0; i < nk; i++) {
		const struct krow *r = &rows->k[i];

		fprintf(f, "%s{", i ? "," : "");
		json_prim(f, r->pid, r->prim, &r->id, r->kind);
		fprintf(f, ",\"site\":");
		json_site(f, r->pid, r->site, r->site_idx);
		fprintf(f, ",\"wakes\":%llu,\"woken\":%llu,\"delay_ns\":%llu"
			",\"last_tid\":%llu,\"hold\":", r->s.wakes, r->s.woken, r->s.delay_ns,
			(__u64)r->s.last_tid);
		if (r->kind == KSYNC_KIND_LOCK)
			json_hold(f, r->s.holds, r->s.hold_total_ns, r->s.hold_max_ns);
		else
			fputs("null", f);
		fprintf(f, ",\"stacks\":[");
		for (size_t j = 0; j < r->nparts; j++) {
			fprintf(f, "%s{\"wakes\":%llu,\"delay_ns\":%llu,\"frames\":",
				j ? "," : "", r->parts[j].count, r->parts[j].ns);
			json_stack(f, r->pid, r->parts[j].stack_id);
			fputc('}', f);
		}
		fprintf(f, "]}");
	}
	fprintf(f, "]}\n");
	fflush(f);
}

/* ---- folded stacks ------------------------------------------------------ */

/* A frame as a flame graph shows it: the function, else the file. */
static void folded_frame(FILE *f, __u32 pid, __u64 addr, bool ret)
{
	struct sym_frame fr;
	char buf[PATH_MAX + 32];
	const char *s;

	resolve(pid, addr, ret, &fr);
	if (fr.func) {
		s = fr.func;
	} else if (fr.module) {
		const char *b = strrchr(fr.module, '/');

		snprintf(buf, sizeof(buf), "[%s]", b ? b + 1 : fr.module);
		s = buf;
	} else {
		snprintf(buf, sizeof(buf), "0x%llx", addr);
		s = buf;
	}
	for (; *s; s++)
		fputc(*s == ';' ? ':' : *s, f);
}

/* Folded lines, merged: stacks that differ only in offsets fold into one. */
struct folded {
	char *stack;
	__u64 ns;
};

static int cmp_folded(const void *a, const void *b)
{
	return strcmp(((const struct folded *)a)->stack, ((const struct folded *)b)->stack);
}

static void folded_add(struct folded **lines, size_t *n, const char *what, __u32 pid,
		       __u32 stack_id, const char *leaf, __u64 ns)
{
	const struct stack *st = get_stack(stack_id);
	const char *comm = proc_comm(pid);
	struct folded *nl;
	size_t len = 0;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return;
	fprintf(f, "%s;%s", what, comm[0] ? comm : "?");
	if (!st)
		fprintf(f, ";[no stack]");
	for (int i = st ? st->n - 1 : -1; i >= 0; i--) {
		fputc(';', f);
		folded_frame(f, pid, st->ips[i], i > 0);
	}
	fprintf(f, ";%s", leaf);
	fclose(f);
	nl = realloc(*lines, (*n + 1) * sizeof(*nl));
	if (!nl) {
		free(buf);
		return;
	}
	*lines = nl;
	nl[*n].stack = buf;
	nl[*n].ns = ns;
	(*n)++;
}

static void print_folded(FILE *f, struct rows *rows, size_t nw, size_t nk)
{
	struct folded *lines = NULL;
	size_t n = 0;
	char leaf[160];

	for (size_t i = 0; i < nw; i++) {
		const struct wrow *r = &rows->w[i];

		snprintf(leaf, sizeof(leaf), "%s(%s,%s)", r->id.name, kind_name(r->kind),
			 world_name(r->world));
		for (size_t j = 0; j < r->nparts; j++)
			if (r->parts[j].ns)
				folded_add(&lines, &n, "wait", r->pid, r->parts[j].stack_id, leaf,
					   r->parts[j].ns);
	}
	for (size_t i = 0; i < nk; i++) {
		const struct krow *r = &rows->k[i];

		snprintf(leaf, sizeof(leaf), "%s(%s)", r->id.name, kind_name(r->kind));
		for (size_t j = 0; j < r->nparts; j++)
			if (r->parts[j].ns)
				folded_add(&lines, &n, "hold", r->pid, r->parts[j].stack_id, leaf,
					   r->parts[j].ns);
	}
	if (n)
		qsort(lines, n, sizeof(*lines), cmp_folded);
	for (size_t i = 0; i < n; i++) {
		__u64 ns = lines[i].ns;

		while (i + 1 < n && !strcmp(lines[i].stack, lines[i + 1].stack)) {
			free(lines[i].stack);
			ns += lines[++i].ns;
		}
		fprintf(f, "%s %llu\n", lines[i].stack, ns);
		free(lines[i].stack);
	}
	free(lines);
	fflush(f);
}

/* ---- the report --------------------------------------------------------- */

/* Re-read the maps and names of every process with rows that still lives
 * (dlopen, names given since), before anything is symbolised. */
static void refresh_procs(struct ksync_wait_bpf *skel)
{
	struct ksync_trace_wait_row_key wk, *wprev = NULL;
	struct ksync_trace_wake_row_key kk, *kprev = NULL;
	pid_t *pids = NULL, *np;
	size_t n = 0;
	int fd = bpf_map__fd(skel->maps.waits);

	while (bpf_map_get_next_key(fd, wprev, &wk) == 0) {
		np = realloc(pids, (n + 1) * sizeof(*pids));
		if (!np)
			break;
		pids = np;
		pids[n++] = (pid_t)wk.pid;
		wprev = &wk;
	}
	fd = bpf_map__fd(skel->maps.wakes);
	while (bpf_map_get_next_key(fd, kprev, &kk) == 0) {
		np = realloc(pids, (n + 1) * sizeof(*pids));
		if (!np)
			break;
		pids = np;
		pids[n++] = (pid_t)kk.pid;
		kprev = &kk;
	}
	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = pids[j] == pids[i];
		if (!seen)
			proc_get(pids[i], true);
	}
	free(pids);
}

static FILE *open_out(const char *path, FILE **keep)
{
	if (!path)
		return stdout;
	if (!*keep) {
		*keep = fopen(path, "we");
		if (!*keep)
			fprintf(stderr, "ksync-wait: %s: %s\n", path, strerror(errno));
	}
	return *keep;
}

int report(struct ksync_wait_bpf *skel, bool reset)
{
	static FILE *json_file, *folded_file;
	struct rows rows = { 0 };
	size_t nw, nk;
	int err;

	stacks_fd = bpf_map__fd(skel->maps.stacks);
	stacks_lost = skel->bss->stacks_lost;
	if (stacks_lost)
		fprintf(stderr, "ksync-wait: %llu stacks not kept (the stack map is full): "
			"their rows have no call site\n", stacks_lost);
	names_fd = bpf_map__fd(skel->maps.names);
	refresh_procs(skel);

	err = read_percpu(bpf_map__fd(skel->maps.waits), sizeof(struct ksync_trace_wait_row_key),
			  sizeof(struct ksync_trace_wait_row), reset, init_wait, add_wait,
			  collect_wait, &rows);
	if (!err)
		err = read_percpu(bpf_map__fd(skel->maps.wakes),
				  sizeof(struct ksync_trace_wake_row_key),
				  sizeof(struct ksync_trace_wake_row), reset, NULL, add_wake,
				  collect_wake, &rows);
	if (err) {
		fprintf(stderr, "ksync-wait: reading the maps: %s\n", strerror(-err));
		goto out;
	}

	for (size_t i = 0; i < rows.nw; i++) {
		struct wrow *r = &rows.w[i];

		name_prim(r->pid, r->prim, &r->id);
		r->p50 = percentile(&r->s, 0.50);
		r->p99 = percentile(&r->s, 0.99);
	}
	for (size_t i = 0; i < rows.nk; i++)
		name_prim(rows.k[i].pid, rows.k[i].prim, &rows.k[i].id);
	/* An empty array may be NULL, which qsort must not be given. */
	if (rows.nw)
		qsort(rows.w, rows.nw, sizeof(*rows.w), cmp_wrows);
	if (rows.nk)
		qsort(rows.k, rows.nk, sizeof(*rows.k), cmp_krows);
	nw = opt.top && (size_t)opt.top < rows.nw ? (size_t)opt.top : rows.nw;
	nk = opt.top && (size_t)opt.top < rows.nk ? (size_t)opt.top : rows.nk;

	if (opt.table)
		print_table(stdout, &rows, nw, nk);
	if (opt.json) {
		FILE *f = open_out(opt.json_path, &json_file);

		if (f)
			print_json(f, &rows, nw, nk);
	}
	if (opt.folded) {
		FILE *f = open_out(opt.folded_path, &folded_file);

		if (f)
			print_folded(f, &rows, nw, nk);
	}
out:
	for (size_t i = 0; i < rows.nw; i++)
		free(rows.w[i].parts);
	for (size_t i = 0; i < rows.nk; i++)
		free(rows.k[i].parts);
	free(rows.w);
	free(rows.k);
	free(stack_cache);
	stack_cache = NULL;
	nstack_cache = 0;
	return err;
}
