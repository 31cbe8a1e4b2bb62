/* SPDX-License-Identifier: MIT */
/*
 * Test points: named places in a protocol where a regression test can pause
 * a thread to force one interleaving (tests/test_regress_*.c). They exist
 * only in the test build of the library (-DKSYNC_TEST_HOOKS), which the test
 * program links with its own definition of ksync_test_point; the library
 * that is installed has none and pays nothing.
 */
#ifndef KSYNC_TESTPOINT_H
#define KSYNC_TESTPOINT_H

#ifdef KSYNC_TEST_HOOKS
void ksync_test_point(const char *name, const void *prim);
#define TEST_POINT(name, prim) ksync_test_point((name), (prim))
#else
#define TEST_POINT(name, prim) do { } while (0)
#endif

#endif
