/* SPDX-License-Identifier: MIT */
/*
 * What older headers lack. meson.build detects each item (config.h); this
 * file supplies the ones that are missing, so the same tree builds against
 * Debian 12 (liburing 2.3, 6.1 headers) and against newer ones.
 */
#ifndef KSYNC_COMPAT_H
#define KSYNC_COMPAT_H

#include "config.h"
#include <sys/syscall.h>

/* futex2 syscall numbers: the same on every architecture (generic table). */
#if !KSYNC_HAVE_SYS_FUTEX_WAITV
#define SYS_futex_waitv 449
#endif
#if !KSYNC_HAVE_SYS_FUTEX_WAKE
#define SYS_futex_wake 454
#endif
#if !KSYNC_HAVE_SYS_FUTEX_WAIT
#define SYS_futex_wait 455
#endif

/* io_uring futex opcodes are enum values, so #ifdef cannot see them. */
#if !KSYNC_HAVE_URING_FUTEX_OPS
#define IORING_OP_FUTEX_WAIT	51
#define IORING_OP_FUTEX_WAKE	52
#define IORING_OP_FUTEX_WAITV	53
#endif

#endif
