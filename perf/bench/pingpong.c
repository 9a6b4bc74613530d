/* perf/bench/pingpong.c - W2 pingpong, on two corio_queues.
 *
 * Two tasks pass a counter back and forth through two queues, N round
 * trips: the main task ("ping") puts c into to_pong, the pong task answers
 * c + 1 through to_ping, and ping goes on with the answer, so both end at N.
 * The figure is round trips per second.
 *
 * The queues have maxsize 1 (asyncio's W2 would use two asyncio.Queue(1);
 * Go's peer uses unbuffered channels, which corio's queue has no equivalent
 * of). The lockstep never holds more than one message per queue, so the
 * bound never blocks a put: a put that finds the receiver already waiting
 * in get hands the value straight to it, else it fills the one slot. A
 * reply that is not c + 1, or an error from corio, ends the run
 * (bench_die), so it cannot hang or lie.
 */
#include <inttypes.h>

#include <corio/queue.h>

#include "bench.h"

#define W2_MAXSIZE 1

struct pingpong_ctx {
    const struct bench_args *a;
    corio_queue to_pong, to_ping;
    uint64_t wall_ns;
};

static void w2_send(corio_queue *q, uint64_t v)
{
    int rc = corio_queue_put(q, (void *)(uintptr_t)v);
    if (rc < 0)
        bench_die("W2: send %" PRIu64 ": %s", v, corio_strerror(rc));
}

static uint64_t w2_recv(corio_queue *q)
{
    void *v;
    int rc = corio_queue_get(q, &v);
    if (rc < 0)
        bench_die("W2: recv: %s", corio_strerror(rc));
    return (uintptr_t)v;
}

static void *pong_main(void *arg)
{
    struct pingpong_ctx *c = arg;
    uint64_t last = 0;
    for (uint64_t i = 0; i < c->a->n; i++) {
        last = w2_recv(&c->to_pong) + 1;
        w2_send(&c->to_ping, last);
    }
    return (void *)(uintptr_t)last;
}

static uint64_t ping(struct pingpong_ctx *c)
{
    uint64_t counter = 0;
    for (uint64_t i = 0; i < c->a->n; i++) {
        w2_send(&c->to_pong, counter);
        uint64_t reply = w2_recv(&c->to_ping);
        if (reply != counter + 1)
            bench_die("W2: wrong result: reply %" PRIu64 " to %" PRIu64, reply, counter);
        counter = reply;
    }
    return counter;
}

static void *pingpong_main(void *arg)
{
    struct pingpong_ctx *c = arg;
    int rc;
    if ((rc = corio_queue_init(&c->to_pong, CORIO_QUEUE_FIFO, W2_MAXSIZE)) < 0 ||
        (rc = corio_queue_init(&c->to_ping, CORIO_QUEUE_FIFO, W2_MAXSIZE)) < 0)
        bench_die("W2: queue: %s", corio_strerror(rc));

    uint64_t t0 = bench_now_ns();
    corio_task *pong;
    rc = corio_spawn(&pong, pong_main, c);
    if (rc < 0)
        bench_die("W2: spawn: %s", corio_strerror(rc));
    uint64_t counter = ping(c);
    void *last;
    rc = corio_await(pong, &last);
    c->wall_ns = bench_now_ns() - t0;

    if (rc < 0)
        bench_die("W2: await pong: %s", corio_strerror(rc));
    corio_task_unref(pong);
    if ((rc = corio_queue_close(&c->to_pong)) < 0 || (rc = corio_queue_close(&c->to_ping)) < 0)
        bench_die("W2: close: %s", corio_strerror(rc));
    if (counter != c->a->n || (uintptr_t)last != c->a->n)
        bench_die("W2: wrong result: counter %" PRIu64 ", pong's last %" PRIuPTR
                  ", want %" PRIu64, counter, (uintptr_t)last, c->a->n);
    return NULL;
}

uint64_t bench_pingpong(const struct bench_args *a)
{
    struct pingpong_ctx c = { .a = a };
    bench_run_main(a, a->workers, pingpong_main, &c);
    return c.wall_ns;
}
