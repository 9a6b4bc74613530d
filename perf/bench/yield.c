/* perf/bench/yield.c - yield: the cost of one trip through the scheduler.
 *
 * One task calls corio_yield() N times, alone on a one-worker runtime
 * (whatever --workers says), so each call is a switch to the worker's
 * scheduler context, a look at the run queue, and a switch back. The peers
 * do the same: Go's runtime.Gosched() on GOMAXPROCS=1, tokio's yield_now()
 * on a current_thread runtime. Reported as ns_per_op. The check is that
 * every call succeeded (a yield has no other result).
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
