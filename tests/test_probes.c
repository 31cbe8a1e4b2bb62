/* SPDX-License-Identifier: MIT */
/*
 * The USDT probes are part of the ABI (uapi/ksync/probe.h): tracing tools
 * find them in the shared library's .note.stapsdt notes. Check that the
 * installed library really carries them, with is-enabled semaphores, and
 * with the documented number of arguments.
 */
#include "harness.h"

#include <elf.h>
#include <inttypes.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#ifndef KSYNC_LIB_PATH
#error "the build passes -DKSYNC_LIB_PATH"
#endif

#define NT_STAPSDT 3

struct probe_want {
	const char *name;
	int nargs;		/* per uapi/ksync/probe.h */
	int found;
};

struct elf_file {
	const unsigned char *base;
	size_t size;
	const Elf64_Ehdr *eh;
	const Elf64_Shdr *sh;
	const char *shstr;
};

static void elf_open(struct elf_file *f, const char *path)
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

static const Elf64_Shdr *elf_section(const struct elf_file *f, const char *name)
{
	for (unsigned i = 0; i < f->eh->e_shnum; i++)
		if (!strcmp(f->shstr + f->sh[i].sh_name, name))
			return &f->sh[i];
	return NULL;
}

/* Arguments are "size@location" items separated by single spaces. */
static int count_args(const char *args)
{
	int n = 0;

	for (const char *p = args; *p; p++)
		if (*p != ' ' && (p == args || p[-1] == ' '))
			n++;
	return n;
}

static void test_stapsdt_probes(void **state)
{
	struct probe_want want[] = {
		{ "wait_begin", 4, 0 },
		{ "wait_end", 5, 0 },
		{ "wake", 3, 0 },
	};
	const size_t nwant = sizeof(want) / sizeof(want[0]);
	const Elf64_Shdr *notes, *probes;
	struct elf_file f;
	size_t off, end;

	(void)state;
	elf_open(&f, KSYNC_LIB_PATH);

	notes = elf_section(&f, ".note.stapsdt");
	if (!notes)
		fail_msg("%s has no .note.stapsdt section (built without sys/sdt.h?)",
			 KSYNC_LIB_PATH);
	probes = elf_section(&f, ".probes");
	if (!probes)
		fail_msg("%s has no .probes section: the probes have no semaphores",
			 KSYNC_LIB_PATH);
	assert_true(notes->sh_offset + notes->sh_size <= f.size);

	off = notes->sh_offset;
	end = notes->sh_offset + notes->sh_size;
	while (off + sizeof(Elf64_Nhdr) <= end) {
		const Elf64_Nhdr *nh = (const Elf64_Nhdr *)(f.base + off);
		const char *owner = (const char *)(nh + 1);
		const unsigned char *desc = (const unsigned char *)owner + ((nh->n_namesz + 3) & ~3u);
		const char *provider, *name, *args, *desc_end;
		uint64_t pc, base, sem;

		off += sizeof(*nh) + ((nh->n_namesz + 3) & ~3u) + ((nh->n_descsz + 3) & ~3u);
		assert_true(off <= end);
		if (nh->n_type != NT_STAPSDT || strcmp(owner, "stapsdt"))
			continue;

		/* desc: pc, .stapsdt.base address, semaphore address (8 bytes
		 * each), then provider, name and arguments as C strings. */
		assert_true(nh->n_descsz > 3 * 8);
		memcpy(&pc, desc, 8);
		memcpy(&base, desc + 8, 8);
		memcpy(&sem, desc + 16, 8);
		desc_end = (const char *)desc + nh->n_descsz;
		provider = (const char *)desc + 24;
		name = provider + strnlen(provider, (size_t)(desc_end - provider)) + 1;
		assert_true(name < desc_end);
		args = name + strnlen(name, (size_t)(desc_end - name)) + 1;
		assert_true(args < desc_end);
		assert_true(memchr(args, 0, (size_t)(desc_end - args)) != NULL);
		(void)base;

		if (strcmp(provider, KSYNC_PROBE_PROVIDER))
			continue;
		for (size_t i = 0; i < nwant; i++) {
			if (strcmp(name, want[i].name))
				continue;
			want[i].found++;
			if (pc == 0)
				fail_msg("ksync:%s has no address", name);
			if (sem == 0)
				fail_msg("ksync:%s has no is-enabled semaphore", name);
			/* A tracer increments the semaphore where the note says
			 * it is: that must be the semaphore ksync reads. */
			if (sem < probes->sh_addr || sem + sizeof(unsigned short) >
			    probes->sh_addr + probes->sh_size)
				fail_msg("ksync:%s semaphore %#" PRIx64 " outside .probes "
					 "[%#" PRIx64 ", %#" PRIx64 ")", name, sem,
					 (uint64_t)probes->sh_addr,
					 (uint64_t)(probes->sh_addr + probes->sh_size));
			if (count_args(args) != want[i].nargs)
				fail_msg("ksync:%s has arguments \"%s\", want %d", name, args,
					 want[i].nargs);
		}
	}

	for (size_t i = 0; i < nwant; i++)
		if (!want[i].found)
			fail_msg("probe ksync:%s not found in %s", want[i].name, KSYNC_LIB_PATH);
	munmap((void *)f.base, f.size);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stapsdt_probes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
