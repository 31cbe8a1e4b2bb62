/* SPDX-License-Identifier: MIT */
/*
 * Attributes a primitive takes at init.
 *
 * KSYNC_SHARED: the primitive lives in memory shared between processes
 * (MAP_SHARED, shm): its futex waits and wakes, in every world, are not
 * process-private, so a waiter in one process is woken from another.
 * Private (0) is the default: private futexes are cheaper for the kernel.
 * Cross-process ownership and robustness (a holder that dies) are not
 * covered yet.
 */
#ifndef KSYNC_ATTR_H
#define KSYNC_ATTR_H

#define KSYNC_SHARED	0x1u

#endif
