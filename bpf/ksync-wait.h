/* SPDX-License-Identifier: MIT */
/* ksync-wait internals shared by its two halves: ksync-wait.c (options,
 * attaching, traced processes) and ksync-wait-report.c (rows and outputs). */
#ifndef KSYNC_WAIT_H
#define KSYNC_WAIT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "ksync/probe.h"
#include "ksync/trace.h"
#include "symbolize.h"

enum sort_key {
	SORT_WAITS,
	SORT_TOTAL,
	SORT_AVG,
	SORT_MAX,
	SORT_P50,
	SORT_P99,
	SORT_HOLD,
	SORT_NAME,
};

#define MAX_SORT_KEYS 4

struct options {
	const char *binary;	/* -b, or NULL */
	pid_t pid;		/* -p, or -1: every process that maps the binary */
	long interval;		/* seconds, 0: report at exit only */
	long duration;		/* seconds, 0: until a signal */
	bool no_stacks;		/* --no-stacks */
	bool show_stacks;	/* -g */
	bool histogram;		/* --histogram */
	bool table;		/* the table goes to stdout */
	bool json;		/* --json */
	const char *json_path;	/* --json=FILE, NULL: stdout */
	bool folded;		/* --folded */
	const char *folded_path;
	enum sort_key sort[MAX_SORT_KEYS];
	int nsort;
	long top;		/* -n, 0: all */
	bool verbose;
};

extern struct options opt;

/* A process that appeared in the maps: its symbols and its named primitives. */
struct name_entry {
	uint64_t prim;
	char name[KSYNC_NAME_MAX];
};

struct proc {
	pid_t pid;
	struct sym_proc *sym;	/* NULL if it was gone before we saw it */
	int err;		/* then why (errno) */
	struct name_entry *names;	/* read from its registry */
	size_t nnames;
};

/* The tracked process @pid, snapshotted on first use (or refreshed when
 * @refresh and it still lives). NULL only without memory. */
struct proc *proc_get(pid_t pid, bool refresh);

/* Does @path carry the ksync probes (a libksync or a static binary)? */
bool is_ksync_module(const char *path);

struct ksync_wait_bpf;

/* Read the maps (deleting what is read when @reset) and print a report in
 * every output asked for. Returns 0 or -errno. */
int report(struct ksync_wait_bpf *skel, bool reset);

#endif
