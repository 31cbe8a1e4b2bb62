/* SPDX-License-Identifier: MIT */
/* Race-detector annotations, out of line: see annotate.h. */
#include "annotate.h"
#include "internal.h"

#if KSYNC_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#include <valgrind/helgrind.h>
#include <valgrind/drd.h>
#endif

unsigned char ksync_annotating;

/* The TSan runtime, if this process has one (a -fsanitize=thread program,
 * whether or not libksync itself was built with it). */
void __tsan_acquire(void *addr) __attribute__((weak));
void __tsan_release(void *addr) __attribute__((weak));

enum { UNDER_HELGRIND = 1, UNDER_DRD = 2, UNDER_TSAN = 4 };

/*
 * Which tool listens, asked once. Other valgrind tools (memcheck, callgrind)
 * leave the flag 0, so they run, and count, the same fast paths as a
 * process with no tool.
 */
__attribute__((constructor)) static void annotate_setup(void)
{
	unsigned char on = 0;

#if KSYNC_HAVE_VALGRIND
	if (RUNNING_ON_VALGRIND) {
		static char probe;

		/* -2 when helgrind is not there (it comes back as 32 bits). */
		if ((int)VALGRIND_HG_GET_ABITS(&probe, NULL, 1) != -2)
			on |= UNDER_HELGRIND;
		if (DRD_GET_VALGRIND_THREADID != 0)
			on |= UNDER_DRD;
	}
#endif
	if (__tsan_acquire && __tsan_release)
		on |= UNDER_TSAN;
	__atomic_store_n(&ksync_annotating, on, __ATOMIC_RELAXED);
}

#if KSYNC_HAVE_VALGRIND
/*
 * ksync's own memory is read and written with atomics that helgrind and DRD
 * do not follow (the futex word; a Lock's owner, which a non-owner reads to
 * refuse it; the calling thread's tid slot, reused by the next thread): they
 * would report races there that are none. Stop both checking it; the
 * primitive's edges order what it guards.
 */
static void ignore_internals(const void *prim, unsigned long size)
{
	uint32_t *slot = ksync_tid_slot;

	if (ksync_annotating & UNDER_HELGRIND) {
		VALGRIND_HG_DISABLE_CHECKING(prim, size);
		VALGRIND_HG_DISABLE_CHECKING(slot, sizeof(*slot));
	}
	if (ksync_annotating & UNDER_DRD) {
		VALGRIND_DO_CLIENT_REQUEST_STMT(VG_USERREQ__DRD_START_SUPPRESSION, prim, size,
						0, 0, 0);
		VALGRIND_DO_CLIENT_REQUEST_STMT(VG_USERREQ__DRD_START_SUPPRESSION, slot,
						sizeof(*slot), 0, 0, 0);
	}
}
#endif

void ksync_annotate_release(const void *prim, unsigned long size)
{
#if KSYNC_HAVE_VALGRIND
	ignore_internals(prim, size);
	if (ksync_annotating & UNDER_HELGRIND)
		VALGRIND_DO_CLIENT_REQUEST_STMT(_VG_USERREQ__HG_USERSO_SEND_PRE, prim, 0, 0, 0, 0);
	if (ksync_annotating & UNDER_DRD)
		VALGRIND_DO_CLIENT_REQUEST_STMT(VG_USERREQ__DRD_ANNOTATE_HAPPENS_BEFORE, prim, 0, 0,
						0, 0);
#else
	(void)size;
#endif
	if (ksync_annotating & UNDER_TSAN)
		__tsan_release((void *)prim);
}

void ksync_annotate_acquire(const void *prim, unsigned long size)
{
#if KSYNC_HAVE_VALGRIND
	ignore_internals(prim, size);
	if (ksync_annotating & UNDER_HELGRIND)
		VALGRIND_DO_CLIENT_REQUEST_STMT(_VG_USERREQ__HG_USERSO_RECV_POST, prim, 0, 0, 0, 0);
	if (ksync_annotating & UNDER_DRD)
		VALGRIND_DO_CLIENT_REQUEST_STMT(VG_USERREQ__DRD_ANNOTATE_HAPPENS_AFTER, prim, 0, 0,
						0, 0);
#else
	(void)size;
#endif
	if (ksync_annotating & UNDER_TSAN)
		__tsan_acquire((void *)prim);
}
