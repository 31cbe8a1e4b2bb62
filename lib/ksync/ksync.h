/* SPDX-License-Identifier: MIT */
/* ksync: synchronization primitives shared by threads and io_uring loops. */
#ifndef KSYNC_H
#define KSYNC_H

#include "ksync/word.h"
#include "ksync/probe.h"
#include "ksync/attr.h"
#include "ksync/kernel.h"
#include "ksync/op.h"
#include "ksync/event.h"
#include "ksync/lock.h"
#include "ksync/sem.h"
#include "ksync/name.h"
#include "ksync/limiter.h"
#include "ksync/flag.h"
#include "ksync/guard.h"
#include "ksync/bqueue.h"
#include "ksync/revent.h"
#include "ksync/countdown.h"
#include "ksync/barrier.h"

#endif
