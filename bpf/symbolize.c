/* SPDX-License-Identifier: MIT */
/* Symbolisation shared by the ksync tracing tools (see symbolize.h). */
#include "symbolize.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>

#define NT_STAPSDT 3

struct sym_mod {
	Dwfl_Module *mod;
	const char *path;		/* owned by dwfl */
	uint64_t start, end;		/* mapped range */
	uint64_t bias;
	uint64_t load_lo, load_hi;	/* PT_LOAD extent, runtime (with .bss) */
	char *prefix;			/* sym_prefix_code cache */
	bool prefix_found;
	uint64_t prefix_lo, prefix_hi;
	uint64_t (*cold)[2];		/* [start, end) of their .cold parts */
	size_t ncold;
};

struct sym_proc {
	pid_t pid;
	char comm[64];
	char exe[PATH_MAX];
	char *maps;			/* the snapshot the modules come from */
	size_t maps_len;
	Dwfl *dwfl;
	struct sym_mod *mods;
	size_t nmods;
};

static const Dwfl_Callbacks proc_callbacks = {
	.find_elf = dwfl_linux_proc_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
};

static char *read_file(const char *path, size_t *len)
{
	size_t cap = 8192, n = 0;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || !buf) {
		int e = fd < 0 ? errno : ENOMEM;

		if (fd >= 0)
			close(fd);
		free(buf);
		errno = e;
		return NULL;
	}
	for (;;) {
		ssize_t r;

		if (n + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				free(buf);
				close(fd);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			free(buf);
			close(fd);
			errno = e;
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static int collect_module(Dwfl_Module *mod, void **userdata, const char *name,
			  Dwarf_Addr start, void *arg)
{
	struct sym_proc *p = arg;
	struct sym_mod *m, *mods;
	Dwarf_Addr low, high, bias = 0;
	Elf *elf;
	size_t nph;

	(void)userdata;
	(void)start;
	mods = realloc(p->mods, (p->nmods + 1) * sizeof(*mods));
	if (!mods)
		return DWARF_CB_ABORT;
	p->mods = mods;
	m = &mods[p->nmods++];
	memset(m, 0, sizeof(*m));
	dwfl_module_info(mod, NULL, &low, &high, NULL, NULL, NULL, NULL);
	m->mod = mod;
	m->path = name;
	m->start = low;
	m->end = high;
	m->load_lo = low;
	m->load_hi = high;
	elf = dwfl_module_getelf(mod, &bias);
	m->bias = bias;
	if (elf && elf_getphdrnum(elf, &nph) == 0) {
		uint64_t lo = UINT64_MAX, hi = 0;

		for (size_t i = 0; i < nph; i++) {
			GElf_Phdr ph;

			if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
				continue;
			if (ph.p_vaddr < lo)
				lo = ph.p_vaddr;
			if (ph.p_vaddr + ph.p_memsz > hi)
				hi = ph.p_vaddr + ph.p_memsz;
		}
		if (lo < hi) {
			m->load_lo = lo + bias;
			m->load_hi = hi + bias;
		}
	}
	return DWARF_CB_OK;
}

static void drop_modules(struct sym_proc *p)
{
	for (size_t i = 0; i < p->nmods; i++) {
		free(p->mods[i].prefix);
		free(p->mods[i].cold);
	}
	free(p->mods);
	p->mods = NULL;
	p->nmods = 0;
	if (p->dwfl)
		dwfl_end(p->dwfl);
	p->dwfl = NULL;
}

/* Build the modules from p->maps. */
static int load_modules(struct sym_proc *p)
{
	FILE *f;

	p->dwfl = dwfl_begin(&proc_callbacks);
	if (!p->dwfl)
		return -ENOMEM;
	f = fmemopen(p->maps, p->maps_len ? p->maps_len : 1, "r");
	if (!f)
		return -errno;
	dwfl_report_begin(p->dwfl);
	dwfl_linux_proc_maps_report(p->dwfl, f);
	fclose(f);
	dwfl_report_end(p->dwfl, NULL, NULL);
	dwfl_getmodules(p->dwfl, collect_module, p, 0);
	return 0;
}

static int snapshot(struct sym_proc *p)
{
	char path[64], *maps, *nl;
	size_t len;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)p->pid);
	maps = read_file(path, &len);
	if (!maps)
		return errno == ENOENT ? -ESRCH : -errno;
	if (p->maps && len == p->maps_len && !memcmp(maps, p->maps, len)) {
		free(maps);
		return 0;	/* unchanged: keep the loaded modules */
	}
	drop_modules(p);
	free(p->maps);
	p->maps = maps;
	p->maps_len = len;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)p->pid);
	maps = read_file(path, &len);
	if (maps) {
		nl = strchr(maps, '\n');
		if (nl)
			*nl = '\0';
		snprintf(p->comm, sizeof(p->comm), "%s", maps);
		free(maps);
	}
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)p->pid);
	n = readlink(path, p->exe, sizeof(p->exe) - 1);
	p->exe[n > 0 ? n : 0] = '\0';
	return load_modules(p);
}

struct sym_proc *sym_proc_new(pid_t pid)
{
	struct sym_proc *p = calloc(1, sizeof(*p));
	int r;

	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	elf_version(EV_CURRENT);
	p->pid = pid;
	r = snapshot(p);
	if (r) {
		sym_proc_free(p);
		errno = -r;
		return NULL;
	}
	return p;
}

int sym_proc_refresh(struct sym_proc *p)
{
	return snapshot(p);
}

void sym_proc_free(struct sym_proc *p)
{
	if (!p)
		return;
	drop_modules(p);
	free(p->maps);
	free(p);
}

pid_t sym_proc_pid(const struct sym_proc *p)
{
	return p->pid;
}

const char *sym_proc_comm(const struct sym_proc *p)
{
	return p->comm;
}

const char *sym_proc_exe(const struct sym_proc *p)
{
	return p->exe;
}

/* The module that maps @addr; @load: count .bss and the like too. */
static struct sym_mod *find_mod(struct sym_proc *p, uint64_t addr, bool load)
{
	for (size_t i = 0; i < p->nmods; i++) {
		struct sym_mod *m = &p->mods[i];

		if (addr >= m->start && addr < m->end)
			return m;
		if (load && addr >= m->load_lo && addr < m->load_hi)
			return m;
	}
	return NULL;
}

/*
 * The line of @at by walking the compile units: libdwfl finds a unit by
 * .debug_aranges, which clang does not emit by default; each unit's own
 * ranges (dwarf_haspc) still say whether it covers the address.
 */
static void cu_line(Dwfl_Module *mod, uint64_t at, struct sym_frame *f)
{
	Dwarf_Addr bias = 0;
	Dwarf *dw = dwfl_module_getdwarf(mod, &bias);
	Dwarf_Off off = 0, next;
	size_t hsize;

	if (!dw)
		return;
	while (dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu;
		Dwarf_Line *line;
		const char *src;
		int lineno = 0;

		if (dwarf_offdie(dw, off + hsize, &cu) && dwarf_haspc(&cu, at - bias) > 0) {
			line = dwarf_getsrc_die(&cu, at - bias);
			src = line ? dwarf_linesrc(line, NULL, NULL) : NULL;
			if (src && dwarf_lineno(line, &lineno) == 0 && lineno > 0) {
				f->file = src;
				f->line = lineno;
			}
			return;
		}
		off = next;
	}
}

bool sym_frame(struct sym_proc *p, uint64_t addr, bool ret, struct sym_frame *f)
{
	uint64_t at = ret && addr ? addr - 1 : addr;
	struct sym_mod *m = find_mod(p, at, false);
	GElf_Off off = 0;
	GElf_Sym sym;
	Dwfl_Line *line;

	memset(f, 0, sizeof(*f));
	f->addr = addr;
	if (!m)
		return false;
	f->module = m->path;
	f->module_off = addr - m->bias;
	f->func = dwfl_module_addrinfo(m->mod, at, &off, &sym, NULL, NULL, NULL);
	if (f->func)
		f->func_off = off + (addr - at);
	line = dwfl_module_getsrc(m->mod, at);
	if (line) {
		int lineno = 0;
		const char *src = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);

		if (src && lineno > 0) {
			f->file = src;
			f->line = lineno;
		}
	} else {
		cu_line(m->mod, at, f);
	}
	return true;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

char *sym_format(const struct sym_frame *f, bool file_dirs, char *buf, size_t len)
{
	if (f->func && f->file)
		snprintf(buf, len, "%s+0x%llx (%s:%d)", f->func, (unsigned long long)f->func_off,
			 file_dirs ? f->file : base_name(f->file), f->line);
	else if (f->func)
		snprintf(buf, len, "%s+0x%llx [%s]", f->func, (unsigned long long)f->func_off,
			 base_name(f->module));
	else if (f->module)
		snprintf(buf, len, "[%s]+0x%llx", base_name(f->module),
			 (unsigned long long)f->module_off);
	else
		snprintf(buf, len, "0x%llx", (unsigned long long)f->addr);
	return buf;
}

bool sym_data(struct sym_proc *p, uint64_t addr, char *buf, size_t len)
{
	struct sym_mod *m = find_mod(p, addr, true);
	const char *best = NULL;
	uint64_t best_start = 0;
	int n;

	if (!m)
		return false;
	/* Our own walk: addrinfo stops at the mapped range, and .bss past
	 * the last file page is not file-mapped. */
	n = dwfl_module_getsymtab(m->mod);
	for (int i = 1; i < n; i++) {
		GElf_Addr start;
		GElf_Sym sym;
		const char *name = dwfl_module_getsym_info(m->mod, i, &sym, &start, NULL, NULL, NULL);
		int type = GELF_ST_TYPE(sym.st_info);

		if (!name || !*name || (type != STT_OBJECT && type != STT_COMMON))
			continue;
		if (addr < start || addr >= start + sym.st_size)
			continue;
		if (!best || start > best_start) {	/* the innermost */
			best = name;
			best_start = start;
		}
	}
	if (!best)
		return false;
	if (addr == best_start)
		snprintf(buf, len, "%s", best);
	else
		snprintf(buf, len, "%s+0x%llx", best, (unsigned long long)(addr - best_start));
	return true;
}

/* A function symbol's name, start and size, or NULL. */
static const char *func_sym(Dwfl_Module *mod, int i, uint64_t *start, uint64_t *size)
{
	GElf_Addr a;
	GElf_Sym sym;
	const char *name = dwfl_module_getsym_info(mod, i, &sym, &a, NULL, NULL, NULL);

	if (!name || GELF_ST_TYPE(sym.st_info) != STT_FUNC)
		return NULL;
	*start = a;
	*size = sym.st_size;
	return name;
}

/*
 * The range of the prefix's functions, and the parts the compiler split off
 * them ("f.cold", placed with all cold code, far from "f"): a part belongs
 * to the range when its function does. Without that, the cold parts would
 * stretch the range over everything linked between them and the rest.
 */
static void prefix_scan(struct sym_mod *m, const char *prefix)
{
	size_t plen = strlen(prefix), nin = 0, cap = 0;
	int n = dwfl_module_getsymtab(m->mod);
	const char **in = NULL;
	uint64_t start, size;

	for (int i = 1; i < n; i++) {
		const char *name = func_sym(m->mod, i, &start, &size);

		if (!name || strncmp(name, prefix, plen) || strchr(name, '.'))
			continue;
		m->prefix_found = true;
		if (start < m->prefix_lo)
			m->prefix_lo = start;
		if (start + size > m->prefix_hi)
			m->prefix_hi = start + size;
	}
	if (!m->prefix_found)
		return;
	/* Every function inside the range, by name... */
	for (int i = 1; i < n; i++) {
		const char *name = func_sym(m->mod, i, &start, &size);

		if (!name || strchr(name, '.') || start < m->prefix_lo || start >= m->prefix_hi)
			continue;
		if (nin == cap) {
			const char **ni = realloc(in, (cap = cap ? 2 * cap : 64) * sizeof(*in));

			if (!ni)
				goto out;
			in = ni;
		}
		in[nin++] = name;
	}
	/* ... and the cold parts of those. */
	for (int i = 1; i < n; i++) {
		const char *name = func_sym(m->mod, i, &start, &size), *dot;
		uint64_t (*nc)[2];

		if (!name || !(dot = strstr(name, ".cold")))
			continue;
		for (size_t j = 0; j < nin; j++) {
			if (strncmp(in[j], name, (size_t)(dot - name)) || in[j][dot - name])
				continue;
			nc = realloc(m->cold, (m->ncold + 1) * sizeof(*nc));
			if (!nc)
				goto out;
			m->cold = nc;
			m->cold[m->ncold][0] = start;
			m->cold[m->ncold][1] = start + (size ? size : 1);
			m->ncold++;
			break;
		}
	}
out:
	free(in);
}

bool sym_prefix_code(struct sym_proc *p, uint64_t addr, const char *prefix)
{
	struct sym_mod *m = find_mod(p, addr, false);
	uint64_t at;

	if (!m)
		return false;
	if (!m->prefix || strcmp(m->prefix, prefix)) {
		free(m->prefix);
		free(m->cold);
		m->cold = NULL;
		m->ncold = 0;
		m->prefix = strdup(prefix);
		m->prefix_found = false;
		m->prefix_lo = UINT64_MAX;
		m->prefix_hi = 0;
		prefix_scan(m, prefix);
	}
	if (!m->prefix_found)
		return false;
	at = addr;	/* symbol addresses from dwfl are run-time ones too */
	if (at >= m->prefix_lo && at < m->prefix_hi)
		return true;
	for (size_t i = 0; i < m->ncold; i++)
		if (at >= m->cold[i][0] && at < m->cold[i][1])
			return true;
	return false;
}

int sym_proc_modules(struct sym_proc *p, int (*fn)(const struct sym_module *m, void *arg),
		     void *arg)
{
	for (size_t i = 0; i < p->nmods; i++) {
		struct sym_module sm = {
			.path = p->mods[i].path,
			.start = p->mods[i].start,
			.end = p->mods[i].end,
			.bias = p->mods[i].bias,
		};
		int r = fn(&sm, arg);

		if (r)
			return r;
	}
	return 0;
}

/* ---- ELF files ---------------------------------------------------------- */

static Elf *elf_open(const char *path, int *fd)
{
	Elf *elf;

	elf_version(EV_CURRENT);
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return NULL;
	elf = elf_begin(*fd, ELF_C_READ, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF) {
		if (elf)
			elf_end(elf);
		close(*fd);
		errno = ENOEXEC;
		return NULL;
	}
	return elf;
}

static void elf_close(Elf *elf, int fd)
{
	elf_end(elf);
	close(fd);
}

int elf_has_usdt_provider(const char *path, const char *provider)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;
	int fd, found = 0;
	Elf *elf = elf_open(path, &fd);
	size_t asz;

	if (!elf)
		return -errno;
	asz = gelf_getclass(elf) == ELFCLASS32 ? 4 : 8;
	if (elf_getshdrstrndx(elf, &shstrndx)) {
		elf_close(elf, fd);
		return 0;
	}
	while (!found && (scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *name;
		Elf_Data *data;
		size_t off = 0, name_off, desc_off;
		GElf_Nhdr nh;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (!name || strcmp(name, ".note.stapsdt"))
			continue;
		data = elf_getdata(scn, NULL);
		while (data && (off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
			const char *owner = (const char *)data->d_buf + name_off;
			const char *desc = (const char *)data->d_buf + desc_off;

			if (nh.n_type != NT_STAPSDT || nh.n_namesz != sizeof("stapsdt") ||
			    memcmp(owner, "stapsdt", sizeof("stapsdt")) || nh.n_descsz <= 3 * asz)
				continue;
			if (strnlen(desc + 3 * asz, nh.n_descsz - 3 * asz) < nh.n_descsz - 3 * asz &&
			    !strcmp(desc + 3 * asz, provider)) {
				found = 1;
				break;
			}
		}
	}
	elf_close(elf, fd);
	return found;
}

int elf_section(const char *path, const char *name, uint64_t *addr, uint64_t *size)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;
	int fd, r = -ENOENT;
	Elf *elf = elf_open(path, &fd);

	if (!elf)
		return -errno;
	if (elf_getshdrstrndx(elf, &shstrndx) == 0) {
		while ((scn = elf_nextscn(elf, scn))) {
			GElf_Shdr sh;
			const char *n;

			if (!gelf_getshdr(scn, &sh))
				continue;
			n = elf_strptr(elf, shstrndx, sh.sh_name);
			if (n && !strcmp(n, name)) {
				*addr = sh.sh_addr;
				*size = sh.sh_size;
				r = 0;
				break;
			}
		}
	}
	elf_close(elf, fd);
	return r;
}
