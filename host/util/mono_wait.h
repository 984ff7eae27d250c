/* Timed waits on CLOCK_MONOTONIC (a wall-clock jump neither shortens nor
 * stretches them), for threads that sleep on a condition variable. */
#ifndef ND_MONO_WAIT_H
#define ND_MONO_WAIT_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* pthread_cond_init with CLOCK_MONOTONIC for pthread_cond_timedwait. */
void nd_mono_cond_init(pthread_cond_t *cv);
/* *ts = now + ms (CLOCK_MONOTONIC). */
void nd_mono_deadline(struct timespec *ts, int64_t ms);
/* 1 once the deadline has passed. */
int nd_mono_passed(const struct timespec *ts);

#endif
