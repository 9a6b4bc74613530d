/* core/monitor.c - the runtime's watchdog thread (Go's sysmon, reduced to
 * what cooperative scheduling needs).
 *
 * A task that runs a long step without awaiting keeps its worker busy. Work
 * in that worker's run queue is safe (a push wakes a sleeping worker, which
 * steals it), but a task that was woken or spawned into the worker's LIFO
 * slot, or that used up its budget into its yield slot, is not: putting it
 * there wakes nobody, because the owner is expected to run it next. If the
 * long step waits for that very task (a spin on a flag it sets), nothing
 * would ever run it. So every MONITOR_PERIOD_MS the monitor looks at each
 * worker's tick; a worker whose tick has not moved while it holds queued
 * work gets a sleeping worker woken, which takes the slot in its last
 * round (core/sched.c steal_lifo(), once the tick has stood still for its
 * grace period).
 *
 * Only with two or more workers (one worker has nobody to hand work to).
 * The monitor reads the workers' tick and queues with relaxed atomics and
 * wakes through corio__idle_notify(), which any thread may call. It sleeps
 * on a condition variable, so stopping it is immediate.
 */
#include <stdlib.h>
#include <time.h>

#include "internal.h"

#define MONITOR_PERIOD_MS 10   /* DESIGN.md "Fairness": Go's sysmon uses 10 ms too */

static void check_workers(struct corio_rt *rt, uint64_t *last_tick)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct corio__worker *w = &rt->workers[i];
        uint64_t tick = atomic_load_explicit(&w->tick, memory_order_relaxed);
        if (tick == last_tick[i] && corio__worker_has_stealable(w))
            corio__idle_notify(rt);
        last_tick[i] = tick;
    }
}

static void *monitor_main(void *arg)
{
    struct corio_rt *rt = arg;
    uint64_t *last_tick = calloc(rt->nworkers, sizeof *last_tick);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&rt->mon_lock);
    while (!rt->mon_stop) {
        next.tv_nsec += MONITOR_PERIOD_MS * 1000000L;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&rt->mon_cond, &rt->mon_lock, &next);
        if (!rt->mon_stop && last_tick)
            check_workers(rt, last_tick);
    }
    pthread_mutex_unlock(&rt->mon_lock);
    free(last_tick);
    return NULL;
}

int corio__monitor_start(struct corio_rt *rt)
{
    rt->mon_running = false;
    if (rt->nworkers < 2)
        return 0;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&rt->mon_cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&rt->mon_lock, NULL);
    rt->mon_stop = false;
    int rc = -pthread_create(&rt->mon_thread, NULL, monitor_main, rt);
    if (rc < 0) {
        pthread_cond_destroy(&rt->mon_cond);
        pthread_mutex_destroy(&rt->mon_lock);
        return rc;
    }
    rt->mon_running = true;
    return 0;
}

void corio__monitor_stop(struct corio_rt *rt)
{
    if (!rt->mon_running)
        return;
    pthread_mutex_lock(&rt->mon_lock);
    rt->mon_stop = true;
    pthread_cond_signal(&rt->mon_cond);
    pthread_mutex_unlock(&rt->mon_lock);
    pthread_join(rt->mon_thread, NULL);
    pthread_cond_destroy(&rt->mon_cond);
    pthread_mutex_destroy(&rt->mon_lock);
    rt->mon_running = false;
}
