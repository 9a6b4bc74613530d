/* perf/bench/timers.c - W4 timers: N tasks each sleep a pseudo-random delay.
 *
 * The delays come from WORKLOADS.md's LCG (s = 42; s = s*6364136223846793005
 * + 1442695040888963407; delay_ms = (s >> 33) % 100), drawn in spawn order
 * by the main task, so every peer sleeps the same multiset of delays. Each
 * task reads the clock, sleeps, reads it again and records its lateness
 * (after - before - delay) into a shared maximum; a negative lateness (a
 * timer that fired early, which corio/time.h promises never happens) fails
 * the run. The main task awaits every task; the figure is N / wall time
 * (the ideal wall time is 0.1 s) with max_late_ms=.
 *
 * Tasks are fire-and-forget and the last one to finish completes a future,
 * rather than N handles awaited in turn: the wall time is then the timers'
 * alone, not the main task's walk over a million handles.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>

#include "bench.h"

struct timers_ctx {
    atomic_uint_fast64_t left;     /* tasks not finished yet */
    atomic_uint_fast64_t max_late; /* ns */
    atomic_uint_fast64_t early;    /* tasks whose timer fired early */
    corio_future *done;            /* set by the last task */
};

struct timers_main_ctx {
    const struct bench_args *a;
    uint64_t wall_ns;
};

static struct timers_ctx *timers_shared;

static void record_max(atomic_uint_fast64_t *max, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(max, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(max, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

static void *timer_task(void *arg)
{
    struct timers_ctx *c = timers_shared;
    int64_t delay = (int64_t)(uintptr_t)arg * CORIO_MSEC;
    uint64_t before = corio_time_ns();
    int rc = corio_sleep(delay);
    uint64_t after = corio_time_ns();
    if (rc < 0)
        bench_die("W4: sleep: %s", corio_strerror(rc));
    if (after - before < (uint64_t)delay)
        atomic_fetch_add_explicit(&c->early, 1, memory_order_relaxed);
    else
        record_max(&c->max_late, after - before - (uint64_t)delay);
    /* acq_rel: the last task sees every other task's records. */
    if (atomic_fetch_sub_explicit(&c->left, 1, memory_order_acq_rel) == 1) {
        /* The main task may drop its reference (and its frame, *c) as soon
         * as the future is done, while set_result still wakes it. */
        corio_future *done = corio_future_ref(c->done);
        corio_future_set_result(done, NULL);
        corio_future_unref(done);
    }
    return NULL;
}

static void *timers_main(void *arg)
{
    struct timers_main_ctx *m = arg;
    uint64_t n = m->a->n;
    struct timers_ctx c = { .left = n };
    int rc = corio_future_create(&c.done);
    if (rc < 0)
        bench_die("W4: future: %s", corio_strerror(rc));
    timers_shared = &c;

    uint64_t s = 42;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        rc = corio_spawn(NULL, timer_task, (void *)(uintptr_t)((s >> 33) % 100));
        if (rc < 0)
            bench_die("W4: spawn of task %" PRIu64 ": %s", i, corio_strerror(rc));
    }
    rc = corio_await(c.done, NULL);
    m->wall_ns = bench_now_ns() - t0;
    if (rc < 0)
        bench_die("W4: await: %s", corio_strerror(rc));
    corio_future_unref(c.done);

    uint64_t early = atomic_load(&c.early);
    if (early)
        bench_die("W4: wrong result: %" PRIu64 " timers fired early", early);
    snprintf(bench_extra, sizeof bench_extra, "max_late_ms=%.3f",
             (double)atomic_load(&c.max_late) / 1e6);
    return NULL;
}

uint64_t bench_timers(const struct bench_args *a)
{
    struct timers_main_ctx m = { .a = a };
    bench_run_main(a, a->workers, timers_main, &m);
    return m.wall_ns;
}
