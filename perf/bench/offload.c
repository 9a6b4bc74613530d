/* perf/bench/offload.c - W5 offload: N blocking calls sent to the runtime's
 * default thread pool from async code, 1000 in flight.
 *
 * 1000 tasks each await corio_run_in_executor(NULL, ...) one call at a time
 * (corio's loop.run_in_executor), taking call indices from a shared counter
 * until N are claimed. Call i computes WORKLOADS.md's blocking call (x = i+1,
 * 200 rounds of xorshift); every task sums what it got, and the total is
 * checked against the same sum computed inline. The figure is calls per
 * second.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <corio/executor.h>

#include "bench.h"

#define IN_FLIGHT 1000   /* WORKLOADS.md W5 */

static uint64_t blocking_call(uint64_t i)
{
    uint64_t x = i + 1;
    for (int k = 0; k < 200; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

static void *pool_fn(void *arg)
{
    return (void *)(uintptr_t)blocking_call((uintptr_t)arg);
}

struct offload_ctx {
    uint64_t n;
    _Atomic uint64_t next;
    _Atomic uint64_t sum;
    uint64_t wall_ns;
};

static void *offloader(void *arg)
{
    struct offload_ctx *c = arg;
    uint64_t sum = 0;
    for (;;) {
        uint64_t i = atomic_fetch_add_explicit(&c->next, 1, memory_order_relaxed);
        if (i >= c->n)
            break;
        void *v;
        int rc = corio_run_in_executor(NULL, pool_fn, (void *)(uintptr_t)i, &v);
        if (rc < 0)
            bench_die("W5: run_in_executor of call %" PRIu64 ": %s", i, corio_strerror(rc));
        sum += (uintptr_t)v;
    }
    atomic_fetch_add_explicit(&c->sum, sum, memory_order_relaxed);
    return NULL;
}

static void *offload_main(void *arg)
{
    struct offload_ctx *c = arg;
    corio_task *tasks[IN_FLIGHT];
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < IN_FLIGHT; i++) {
        int rc = corio_spawn(&tasks[i], offloader, c);
        if (rc < 0)
            bench_die("W5: spawn: %s", corio_strerror(rc));
    }
    for (int i = 0; i < IN_FLIGHT; i++) {
        int rc = corio_await(tasks[i], NULL);
        if (rc < 0)
            bench_die("W5: await: %s", corio_strerror(rc));
        corio_task_unref(tasks[i]);
    }
    c->wall_ns = bench_now_ns() - t0;
    return NULL;
}

uint64_t bench_offload(const struct bench_args *a)
{
    struct offload_ctx c = { .n = a->n };
    bench_run_main(a, a->workers, offload_main, &c);
    uint64_t want = 0;
    for (uint64_t i = 0; i < a->n; i++)
        want += blocking_call(i);
    if (atomic_load(&c.sum) != want)
        bench_die("W5: wrong result: sum %" PRIu64 ", want %" PRIu64, atomic_load(&c.sum), want);
    return c.wall_ns;
}
