/* perf/bench/yield.c - yield: the cost of one trip through the scheduler.
 *
 * One task calls corio_yield() N times, alone on a one-worker runtime
 * (whatever --workers says): each call is a look at the worker's queues,
 * and every 61st the worker's I/O and timer round. The peers do the same:
 * Go's runtime.Gosched() on GOMAXPROCS=1, tokio's yield_now() on a
 * current_thread runtime, each of which goes back to its scheduler
 * first. Reported as ns_per_op. The check is that every call succeeded
 * (a yield has no other result).
 *
 * A lone yielder is the next task its scheduler would pick, so corio's
 * yield starts the task's next step without a switch (core/sched.c
 * switch_away). yield2 measures the trip with a switch in it: two tasks on
 * one worker take turns, N yields in all, each one a switch from one task
 * straight to the other. No peer runs yield2; `switch` is its floor.
 */
#include "bench.h"

struct yield_ctx {
    const struct bench_args *a;
    uint64_t wall_ns;
};

static void *yield_main(void *arg)
{
    struct yield_ctx *c = arg;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < c->a->n; i++) {
        int rc = corio_yield();
        if (rc < 0)
            bench_die("yield: corio_yield: %s", corio_strerror(rc));
    }
    c->wall_ns = bench_now_ns() - t0;
    return NULL;
}

uint64_t bench_yield(const struct bench_args *a)
{
    struct yield_ctx c = { .a = a };
    bench_run_main(a, 1, yield_main, &c);
    return c.wall_ns;
}

/* yield2: the main task and one partner yield N/2 times each, in turn. */
static void *yield_half(void *arg)
{
    struct yield_ctx *c = arg;
    for (uint64_t i = 0; i < c->a->n / 2; i++) {
        int rc = corio_yield();
        if (rc < 0)
            bench_die("yield2: corio_yield: %s", corio_strerror(rc));
    }
    return NULL;
}

static void *yield2_main(void *arg)
{
    struct yield_ctx *c = arg;
    corio_task *partner;
    int rc = corio_spawn(&partner, yield_half, c);
    if (rc < 0)
        bench_die("yield2: spawn: %s", corio_strerror(rc));
    uint64_t t0 = bench_now_ns();
    yield_half(c);
    rc = corio_await(partner, NULL);
    if (rc < 0)
        bench_die("yield2: await: %s", corio_strerror(rc));
    c->wall_ns = bench_now_ns() - t0;
    corio_task_unref(partner);
    return NULL;
}

uint64_t bench_yield2(const struct bench_args *a)
{
    struct yield_ctx c = { .a = a };
    bench_run_main(a, 1, yield2_main, &c);
    return c.wall_ns;
}
