/* SPDX-License-Identifier: MIT */
/*
 * Symbolisation shared by the ksync tracing tools, on elfutils' libdwfl:
 * code addresses to function+offset and file:line, data addresses to the
 * variable they fall in, and the ELF questions a USDT tool asks about the
 * files a process maps.
 *
 * A struct sym_proc is a snapshot of one process's file mappings
 * (/proc/PID/maps). It is taken while the process lives and keeps working
 * after it exits (the files stay on disk), so a tool can print its report
 * after the traced program ended. Take it early, refresh it now and then
 * (dlopen adds mappings).
 *
 * Files are opened by the paths in the maps, so the process must share the
 * tool's mount namespace. Source lines need the file's DWARF (-g), in the
 * file itself or where dwfl_standard_find_debuginfo looks (build-id under
 * /usr/lib/debug).
 */
#ifndef KSYNC_BPF_SYMBOLIZE_H
#define KSYNC_BPF_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sym_proc;

/* A snapshot of @pid's mappings; NULL with errno set if it cannot be read
 * (ESRCH: no such process). */
struct sym_proc *sym_proc_new(pid_t pid);

/* Re-read the mappings if the process still lives. Returns 0, or -ESRCH
 * (gone: the last snapshot stays). */
int sym_proc_refresh(struct sym_proc *p);

void sym_proc_free(struct sym_proc *p);

pid_t sym_proc_pid(const struct sym_proc *p);
/* The process's name (comm) and executable path when the snapshot was taken
 * ("" if unknown). */
const char *sym_proc_comm(const struct sym_proc *p);
const char *sym_proc_exe(const struct sym_proc *p);

/* One code address, resolved. Strings live as long as the snapshot. */
struct sym_frame {
	uint64_t addr;
	const char *module;	/* path of the file mapped there, NULL if none */
	uint64_t module_off;	/* addr relative to the module's load bias */
	const char *func;	/* NULL: no symbol */
	uint64_t func_off;	/* addr - start of func */
	const char *file;	/* source file, NULL: no line information */
	int line;
};

/*
 * Resolve @addr. @ret: it is a return address (any stack frame but the
 * innermost), so the call that made it is looked up (addr - 1) for the
 * function and the line; offsets are still those of @addr. Returns false
 * when no module maps @addr (f->addr is still set).
 */
bool sym_frame(struct sym_proc *p, uint64_t addr, bool ret, struct sym_frame *f);

/*
 * Write a frame as "func+0xoff (file.c:12)", "func+0xoff [module]" without
 * line information, "[module]+0xoff" without a symbol, or "0xaddr".
 * @file_dirs: keep the source file's directories. Returns buf.
 */
char *sym_format(const struct sym_frame *f, bool file_dirs, char *buf, size_t len);

/*
 * The data symbol (a variable) covering @addr, as "name" or "name+0xoff",
 * into @buf. false if no sized symbol covers it (heap, stack, stripped).
 */
bool sym_data(struct sym_proc *p, uint64_t addr, char *buf, size_t len);

/*
 * Is @addr in the code of the functions whose name starts with @prefix, in
 * the module that maps it: from the lowest to the end of the highest such
 * function, or in a part the compiler split off one of the functions in
 * that range ("f.cold")? Tells a library's code apart inside a static
 * binary, where the library's object files are linked next to each other.
 */
bool sym_prefix_code(struct sym_proc *p, uint64_t addr, const char *prefix);

/* The mapped files, in address order. */
struct sym_module {
	const char *path;
	uint64_t start, end;	/* mapped range */
	uint64_t bias;		/* load bias: runtime address - ELF address */
};

/* Calls @fn for each module; stops when it returns non-zero (returned). */
int sym_proc_modules(struct sym_proc *p, int (*fn)(const struct sym_module *m, void *arg),
		     void *arg);

/* ---- ELF files ---------------------------------------------------------- */

/* Does @path carry USDT probes (.note.stapsdt) of @provider? 1, 0, or -errno. */
int elf_has_usdt_provider(const char *path, const char *provider);

/* The address and size of section @name of @path: 0, -ENOENT, or -errno. */
int elf_section(const char *path, const char *name, uint64_t *addr, uint64_t *size);

#endif
