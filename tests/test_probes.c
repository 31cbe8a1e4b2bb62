/* SPDX-License-Identifier: MIT */
/*
 * The USDT probes are part of the ABI (uapi/ksync/probe.h): tracing tools
 * find them in the shared library's .note.stapsdt notes. Check that the
 * built library really carries them, with is-enabled semaphores, and with
 * the documented number of arguments; and that its name registry is in the
 * section where tools look for it.
 */
#include "harness.h"
#include "stapsdt.h"

#include <inttypes.h>

#ifndef KSYNC_LIB_PATH
#error "the build passes -DKSYNC_LIB_PATH"
#endif

struct probe_want {
	const char *name;
	int nargs;		/* per uapi/ksync/probe.h */
	int found;
};

struct probe_check {
	struct probe_want *want;
	size_t nwant;
	const Elf64_Shdr *probes;	/* the .probes section: semaphores */
};

/* Arguments are "size@location" items separated by single spaces. */
static int count_args(const char *args)
{
	int n = 0;

	for (const char *p = args; *p; p++)
		if (*p != ' ' && (p == args || p[-1] == ' '))
			n++;
	return n;
}

static void check_probe(const struct stapsdt_probe *p, void *arg)
{
	struct probe_check *c = arg;

	if (strcmp(p->provider, KSYNC_PROBE_PROVIDER))
		return;
	for (size_t i = 0; i < c->nwant; i++) {
		if (strcmp(p->name, c->want[i].name))
			continue;
		c->want[i].found++;
		if (p->pc == 0)
			fail_msg("ksync:%s has no address", p->name);
		if (p->sem == 0)
			fail_msg("ksync:%s has no is-enabled semaphore", p->name);
		/* A tracer increments the semaphore where the note says it
		 * is: that must be the semaphore ksync reads. */
		if (p->sem < c->probes->sh_addr || p->sem + sizeof(unsigned short) >
		    c->probes->sh_addr + c->probes->sh_size)
			fail_msg("ksync:%s semaphore %#" PRIx64 " outside .probes "
				 "[%#" PRIx64 ", %#" PRIx64 ")", p->name, p->sem,
				 (uint64_t)c->probes->sh_addr,
				 (uint64_t)(c->probes->sh_addr + c->probes->sh_size));
		if (count_args(p->args) != c->want[i].nargs)
			fail_msg("ksync:%s has arguments \"%s\", want %d", p->name, p->args,
				 c->want[i].nargs);
	}
}

static void test_stapsdt_probes(void **state)
{
	struct probe_want want[] = {
		{ "wait_begin", 4, 0 },
		{ "wait_end", 5, 0 },
		{ "wake_begin", 2, 0 },
		{ "wake", 3, 0 },
		{ "op_start", 4, 0 },
		{ "name", 2, 0 },
	};
	struct probe_check c = { .want = want, .nwant = sizeof(want) / sizeof(want[0]) };
	struct elf_file f;

	(void)state;
	elf_open(&f, KSYNC_LIB_PATH);
	if (!elf_section(&f, ".note.stapsdt"))
		fail_msg("%s has no .note.stapsdt section (built without sys/sdt.h?)",
			 KSYNC_LIB_PATH);
	c.probes = elf_section(&f, ".probes");
	if (!c.probes)
		fail_msg("%s has no .probes section: the probes have no semaphores",
			 KSYNC_LIB_PATH);
	stapsdt_each(&f, check_probe, &c);
	for (size_t i = 0; i < c.nwant; i++)
		if (!want[i].found)
			fail_msg("probe ksync:%s not found in %s", want[i].name, KSYNC_LIB_PATH);
	elf_close(&f);
}

/* The name registry is where tools look for it (uapi/ksync/probe.h). */
static void test_name_section(void **state)
{
	const Elf64_Shdr *names;
	struct elf_file f;

	(void)state;
	elf_open(&f, KSYNC_LIB_PATH);
	names = elf_section(&f, KSYNC_NAME_SECTION);
	if (!names)
		fail_msg("%s has no %s section", KSYNC_LIB_PATH, KSYNC_NAME_SECTION);
	assert_int_equal(names->sh_type, SHT_PROGBITS);
	assert_true(names->sh_flags & SHF_ALLOC);
	assert_true(names->sh_size >= sizeof(struct ksync_name_table));
	elf_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stapsdt_probes),
		cmocka_unit_test(test_name_section),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
