/* pool/clock.c - the time helpers of pool/: CLOCK_MONOTONIC nanoseconds,
 * relative timeouts turned into deadlines (CORIO_WAIT_FOREVER: none), and
 * condvars that wait on CLOCK_MONOTONIC so a wall-clock step never stretches
 * or cuts a timeout.
 */
#include <pthread.h>
#include <time.h>

#include "pool.h"

uint64_t corio__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* UINT64_MAX: no deadline. */
uint64_t corio__deadline_of(int64_t timeout_ns)
{
    if (timeout_ns == CORIO_WAIT_FOREVER)
        return UINT64_MAX;
    uint64_t now = corio__mono_ns();
    return (uint64_t)timeout_ns > UINT64_MAX - now - 1 ? UINT64_MAX : now + (uint64_t)timeout_ns;
}

static struct timespec ts_of(uint64_t ns)
{
    return (struct timespec){ .tv_sec = (time_t)(ns / 1000000000u),
                              .tv_nsec = (long)(ns % 1000000000u) };
}

/* Waits on @cond (with @m held) until woken or @deadline; false once past it. */
bool corio__cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *m, uint64_t deadline)
{
    if (deadline == UINT64_MAX) {
        pthread_cond_wait(cond, m);
        return true;
    }
    if (corio__mono_ns() >= deadline)
        return false;
    struct timespec ts = ts_of(deadline);
    pthread_cond_timedwait(cond, m, &ts);
    return true;
}

int corio__cond_init_mono(pthread_cond_t *cond)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cond, &a);
    pthread_condattr_destroy(&a);
    return -rc;
}
