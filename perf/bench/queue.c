/* perf/bench/queue.c - "queue": one producer task puts N ints into a
 * corio_queue of maxsize 128, one consumer task gets them and checks their
 * sum, on --workers K workers (default 2). The figure is items per second.
 *
 * Go's peer is a buffered channel of capacity 128 with GOMAXPROCS=2; the
 * queue here has asyncio.Queue semantics (put suspends while full, get
 * while empty) and hands items straight to a waiting getter. The items are
 * 1..N so that the sum, N(N+1)/2, catches a lost or duplicated item.
 */
#include <inttypes.h>

#include <corio/queue.h>

#include "bench.h"

#define QUEUE_BENCH_MAXSIZE 128   /* the Go peer's channel capacity */

struct queue_ctx {
    const struct bench_args *a;
    corio_queue q;
    uint64_t wall_ns;
};

static void *producer_main(void *arg)
{
    struct queue_ctx *c = arg;
    for (uint64_t i = 1; i <= c->a->n; i++) {
        int rc = corio_queue_put(&c->q, (void *)(uintptr_t)i);
        if (rc < 0)
            bench_die("queue: put %" PRIu64 ": %s", i, corio_strerror(rc));
    }
    return NULL;
}

static void *consumer_main(void *arg)
{
    struct queue_ctx *c = arg;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < c->a->n; i++) {
        void *it;
        int rc = corio_queue_get(&c->q, &it);
        if (rc < 0)
            bench_die("queue: get: %s", corio_strerror(rc));
        sum += (uintptr_t)it;
    }
    return (void *)(uintptr_t)sum;
}

static void *queue_main(void *arg)
{
    struct queue_ctx *c = arg;
    int rc = corio_queue_init(&c->q, CORIO_QUEUE_FIFO, QUEUE_BENCH_MAXSIZE);
    if (rc < 0)
        bench_die("queue: init: %s", corio_strerror(rc));

    uint64_t t0 = bench_now_ns();
    corio_task *prod, *cons;
    if ((rc = corio_spawn(&cons, consumer_main, c)) < 0 ||
        (rc = corio_spawn(&prod, producer_main, c)) < 0)
        bench_die("queue: spawn: %s", corio_strerror(rc));
    void *sum;
    if ((rc = corio_await(prod, NULL)) < 0 || (rc = corio_await(cons, &sum)) < 0)
        bench_die("queue: await: %s", corio_strerror(rc));
    c->wall_ns = bench_now_ns() - t0;

    corio_task_unref(prod);
    corio_task_unref(cons);
    uint64_t n = c->a->n, want = n % 2 ? (n + 1) / 2 * n : n / 2 * (n + 1);
    if ((uintptr_t)sum != want)
        bench_die("queue: wrong sum %" PRIuPTR ", want %" PRIu64, (uintptr_t)sum, want);
    if ((rc = corio_queue_close(&c->q)) < 0)
        bench_die("queue: close: %s", corio_strerror(rc));
    return NULL;
}

uint64_t bench_queue(const struct bench_args *a)
{
    struct queue_ctx c = { .a = a };
    bench_run_main(a, a->workers, queue_main, &c);
    return c.wall_ns;
}
