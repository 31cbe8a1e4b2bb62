/* SPDX-License-Identifier: MIT */
/*
 * Reading a file's USDT probes (.note.stapsdt) and sections, for the probe
 * and trace tests. 64-bit ELF only. Include after harness.h.
 */
#ifndef KSYNC_TEST_STAPSDT_H
#define KSYNC_TEST_STAPSDT_H

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define NT_STAPSDT 3

struct elf_file {
	const unsigned char *base;
	size_t size;
	const Elf64_Ehdr *eh;
	const Elf64_Shdr *sh;
	const char *shstr;
};

static inline void elf_open(struct elf_file *f, const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	assert_int_equal(fstat(fd, &st), 0);
	f->size = (size_t)st.st_size;
	f->base = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	assert_true(f->base != MAP_FAILED);

	assert_true(f->size >= sizeof(Elf64_Ehdr));
	f->eh = (const Elf64_Ehdr *)f->base;
	assert_memory_equal(f->eh->e_ident, ELFMAG, SELFMAG);
	/* The probe note layout below (8-byte addresses) is the 64-bit one. */
	assert_int_equal(f->eh->e_ident[EI_CLASS], ELFCLASS64);
	assert_int_equal(f->eh->e_shentsize, sizeof(Elf64_Shdr));
	assert_true(f->eh->e_shoff + (uint64_t)f->eh->e_shnum * sizeof(Elf64_Shdr) <= f->size);
	assert_true(f->eh->e_shstrndx < f->eh->e_shnum);
	f->sh = (const Elf64_Shdr *)(f->base + f->eh->e_shoff);
	f->shstr = (const char *)f->base + f->sh[f->eh->e_shstrndx].sh_offset;
}

static inline void elf_close(struct elf_file *f)
{
	munmap((void *)f->base, f->size);
}

static inline const Elf64_Shdr *elf_section(const struct elf_file *f, const char *name)
{
	for (unsigned i = 0; i < f->eh->e_shnum; i++)
		if (!strcmp(f->shstr + f->sh[i].sh_name, name))
			return &f->sh[i];
	return NULL;
}

/* The ELF address of the first loadable segment (what its load bias is
 * relative to). */
static inline uint64_t elf_first_load(const struct elf_file *f)
{
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(f->base + f->eh->e_phoff);

	for (unsigned i = 0; i < f->eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD)
			return ph[i].p_vaddr & ~(uint64_t)0xfff;
	return 0;
}

struct stapsdt_probe {
	uint64_t pc;		/* probe address */
	uint64_t sem;		/* is-enabled semaphore address, 0: none */
	const char *provider, *name, *args;	/* point into the mapped file */
};

/*
 * Call @fn for each USDT probe of @f. desc: pc, .stapsdt.base address,
 * semaphore address (8 bytes each), then provider, name and arguments as
 * C strings.
 */
static inline void stapsdt_each(const struct elf_file *f,
				void (*fn)(const struct stapsdt_probe *p, void *arg), void *arg)
{
	const Elf64_Shdr *notes = elf_section(f, ".note.stapsdt");
	size_t off, end;

	if (!notes)
		return;
	assert_true(notes->sh_offset + notes->sh_size <= f->size);
	off = notes->sh_offset;
	end = notes->sh_offset + notes->sh_size;
	while (off + sizeof(Elf64_Nhdr) <= end) {
		const Elf64_Nhdr *nh = (const Elf64_Nhdr *)(f->base + off);
		const char *owner = (const char *)(nh + 1);
		const unsigned char *desc = (const unsigned char *)owner + ((nh->n_namesz + 3) & ~3u);
		const char *desc_end;
		struct stapsdt_probe p;

		off += sizeof(*nh) + ((nh->n_namesz + 3) & ~3u) + ((nh->n_descsz + 3) & ~3u);
		assert_true(off <= end);
		if (nh->n_type != NT_STAPSDT || strcmp(owner, "stapsdt"))
			continue;
		assert_true(nh->n_descsz > 3 * 8);
		memcpy(&p.pc, desc, 8);
		memcpy(&p.sem, desc + 16, 8);
		desc_end = (const char *)desc + nh->n_descsz;
		p.provider = (const char *)desc + 24;
		p.name = p.provider + strnlen(p.provider, (size_t)(desc_end - p.provider)) + 1;
		assert_true(p.name < desc_end);
		p.args = p.name + strnlen(p.name, (size_t)(desc_end - p.name)) + 1;
		assert_true(p.args < desc_end);
		assert_true(memchr(p.args, 0, (size_t)(desc_end - p.args)) != NULL);
		fn(&p, arg);
	}
}

#endif
