/* perf/bench/spawn.c - the spawn family: W1 spawn and W3 chain.
 *
 * W1: the main task spawns N tasks, each returning its index as a
 * pointer-sized integer, keeps every handle, then awaits each in turn
 * (corio_await, then corio_task_unref) and checks that the indices sum to
 * N(N-1)/2. The figure is tasks per second.
 *
 * W3: a chain of N fire-and-forget tasks (corio_spawn(NULL, ...)): each
 * counts itself and spawns the next, then exits; the N-th completes a future
 * that the main task awaits. The figure is spawns per second.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "bench.h"

struct spawn_ctx {
    const struct bench_args *a;
    uint64_t wall_ns;
};

static void *spawn_child(void *arg)
{
    return arg;   /* its index */
}

static void spawn_all(const struct bench_args *a, corio_task **tasks)
{
    for (uint64_t i = 0; i < a->n; i++) {
        int rc = corio_spawn(&tasks[i], spawn_child, (void *)(uintptr_t)i);
        if (rc < 0)
            bench_die("W1: spawn of task %" PRIu64 ": %s", i, corio_strerror(rc));
    }
}

static uint64_t await_all(const struct bench_args *a, corio_task **tasks)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < a->n; i++) {
        void *value;
        int rc = corio_await(tasks[i], &value);
        if (rc < 0)
            bench_die("W1: await of task %" PRIu64 ": %s", i, corio_strerror(rc));
        sum += (uintptr_t)value;
        corio_task_unref(tasks[i]);
    }
    return sum;
}

static void *spawn_main(void *arg)
{
    struct spawn_ctx *c = arg;
    const struct bench_args *a = c->a;
    corio_task **tasks = malloc(a->n * sizeof(*tasks));
    if (!tasks)
        bench_die("W1: no memory for %" PRIu64 " task handles", a->n);

    uint64_t t0 = bench_now_ns();
    spawn_all(a, tasks);
    uint64_t sum = await_all(a, tasks);
    c->wall_ns = bench_now_ns() - t0;

    free(tasks);
    uint64_t want = a->n * (a->n - 1) / 2;
    if (sum != want)
        bench_die("W1: wrong result: sum %" PRIu64 ", want %" PRIu64, sum, want);
    return NULL;
}

uint64_t bench_spawn(const struct bench_args *a)
{
    struct spawn_ctx c = { .a = a };
    bench_run_main(a, a->workers, spawn_main, &c);
    return c.wall_ns;
}

/* W3. Only one task of the chain runs at a time as far as the counter is
 * concerned: a task increments ->hops before it spawns the next, and the
 * spawn publishes that write to whichever worker runs the next task. */
struct chain_ctx {
    uint64_t n;
    uint64_t hops;        /* tasks of the chain that have run */
    corio_future *done;   /* completed by the last task with its depth */
};

static void *chain_step(void *arg)
{
    struct chain_ctx *c = arg;
    uint64_t hop = ++c->hops;
    if (hop == c->n) {
        corio_future_set_result(c->done, (void *)(uintptr_t)hop);
        return NULL;
    }
    int rc = corio_spawn(NULL, chain_step, c);
    if (rc < 0)
        bench_die("W3: spawn at depth %" PRIu64 ": %s", hop, corio_strerror(rc));
    return NULL;
}

struct chain_main_ctx {
    const struct bench_args *a;
    uint64_t wall_ns;
};

static void *chain_main(void *arg)
{
    struct chain_main_ctx *m = arg;
    struct chain_ctx c = { .n = m->a->n };
    int rc = corio_future_create(&c.done);
    if (rc < 0)
        bench_die("W3: future: %s", corio_strerror(rc));

    uint64_t t0 = bench_now_ns();
    rc = corio_spawn(NULL, chain_step, &c);
    if (rc < 0)
        bench_die("W3: first spawn: %s", corio_strerror(rc));
    void *depth;
    rc = corio_await(c.done, &depth);
    m->wall_ns = bench_now_ns() - t0;

    if (rc < 0)
        bench_die("W3: await: %s", corio_strerror(rc));
    corio_future_unref(c.done);
    if ((uintptr_t)depth != c.n || c.hops != c.n)
        bench_die("W3: wrong result: depth %" PRIuPTR ", %" PRIu64 " hops, want %" PRIu64,
                  (uintptr_t)depth, c.hops, c.n);
    return NULL;
}

uint64_t bench_chain(const struct bench_args *a)
{
    struct chain_main_ctx m = { .a = a };
    bench_run_main(a, a->workers, chain_main, &m);
    return m.wall_ns;
}
