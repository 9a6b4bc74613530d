/* perf/bench/pingpong.c - W2 pingpong, on a one-slot channel made of futures.
 *
 * Two tasks pass a counter back and forth through two channels, N round
 * trips: the main task ("ping") sends c, the pong task answers c + 1, and
 * ping goes on with the answer, so both end at N. The figure is round trips
 * per second.
 *
 * corio has no queue or channel type yet (it arrives with a later issue), so
 * this file builds the smallest channel W2 needs out of corio futures, one
 * new future per message:
 *   - ->slot holds the receiver's pending future for the next message;
 *   - send completes that future with the value;
 *   - recv awaits it, then installs a fresh pending future for the next
 *     message before it drops the old one.
 * The sender never waits for room: the channel holds one message and relies
 * on the lockstep of pingpong, where message k + 1 is sent only after the
 * answer to message k, which the receiver sends after it installed the new
 * future. A second send before that finds the future done, and
 * corio_future_set_result() says so (-EINVAL): the run dies, it cannot hang.
 * Its costs per message (create, ref, set, await, two unrefs) are what a
 * future-based queue would pay; the later queue type replaces it here.
 */
#include <inttypes.h>
#include <stdatomic.h>

#include "bench.h"

struct chan {
    /* The receiver owns this future's one reference; release-published by
     * recv, acquire-read by send. */
    _Atomic(corio_future *) slot;
};

static void chan_init(struct chan *ch)
{
    corio_future *f;
    int rc = corio_future_create(&f);
    if (rc < 0)
        bench_die("W2: channel future: %s", corio_strerror(rc));
    atomic_init(&ch->slot, f);
}

static void chan_close(struct chan *ch)
{
    corio_future_unref(atomic_load_explicit(&ch->slot, memory_order_relaxed));
}

static void chan_send(struct chan *ch, uint64_t v)
{
    /* Pairs with the release store in chan_recv(). */
    corio_future *f = atomic_load_explicit(&ch->slot, memory_order_acquire);
    /* The receiver may drop its reference as soon as the future is done, while
     * set_result may still be waking it: hold our own across the call. */
    corio_future_ref(f);
    int rc = corio_future_set_result(f, (void *)(uintptr_t)v);
    corio_future_unref(f);
    if (rc < 0)
        bench_die("W2: send %" PRIu64 ": %s", v, corio_strerror(rc));
}

static uint64_t chan_recv(struct chan *ch)
{
    corio_future *f = atomic_load_explicit(&ch->slot, memory_order_relaxed);
    void *v;
    int rc = corio_await(f, &v);
    if (rc < 0)
        bench_die("W2: recv: %s", corio_strerror(rc));
    corio_future *next;
    rc = corio_future_create(&next);
    if (rc < 0)
        bench_die("W2: channel future: %s", corio_strerror(rc));
    /* Pairs with the acquire load in chan_send(). */
    atomic_store_explicit(&ch->slot, next, memory_order_release);
    corio_future_unref(f);
    return (uintptr_t)v;
}

struct pingpong_ctx {
    const struct bench_args *a;
    struct chan to_pong, to_ping;
    uint64_t wall_ns;
};

static void *pong_main(void *arg)
{
    struct pingpong_ctx *c = arg;
    uint64_t last = 0;
    for (uint64_t i = 0; i < c->a->n; i++) {
        last = chan_recv(&c->to_pong) + 1;
        chan_send(&c->to_ping, last);
    }
    return (void *)(uintptr_t)last;
}

static uint64_t ping(struct pingpong_ctx *c)
{
    uint64_t counter = 0;
    for (uint64_t i = 0; i < c->a->n; i++) {
        chan_send(&c->to_pong, counter);
        uint64_t reply = chan_recv(&c->to_ping);
        if (reply != counter + 1)
            bench_die("W2: wrong result: reply %" PRIu64 " to %" PRIu64, reply, counter);
        counter = reply;
    }
    return counter;
}

static void *pingpong_main(void *arg)
{
    struct pingpong_ctx *c = arg;
    chan_init(&c->to_pong);
    chan_init(&c->to_ping);

    uint64_t t0 = bench_now_ns();
    corio_task *pong;
    int rc = corio_spawn(&pong, pong_main, c);
    if (rc < 0)
        bench_die("W2: spawn: %s", corio_strerror(rc));
    uint64_t counter = ping(c);
    void *last;
    rc = corio_await(pong, &last);
    c->wall_ns = bench_now_ns() - t0;

    if (rc < 0)
        bench_die("W2: await pong: %s", corio_strerror(rc));
    corio_task_unref(pong);
    chan_close(&c->to_pong);
    chan_close(&c->to_ping);
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
