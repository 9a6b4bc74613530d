/* perf/bench/switch.c - switch: the bare context switch of core/fiber.h.
 *
 * No runtime: the calling thread's context and one fiber on a 64 KiB stack
 * switch back and forth through corio__fiber_switch(), N switches in all
 * (N/2 round trips, so N must be even). This is the floor under every other
 * figure, checked against DESIGN.md's target of 20 ns or less (boost.context
 * fcontext ~9 ns, libaco ~10 ns). The check is that the fiber ran once per
 * round trip and handed back what it was given.
 *
 * fiber.h is internal: it is reached by a path relative to this file, since
 * corio-bench is built against the public include folder only.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "bench.h"
#include "../../core/fiber.h"

#define SWITCH_STACK_SIZE (64u * 1024)   /* the default task stack (DESIGN.md) */
#define SWITCH_WARMUP 10000u             /* round trips before the clock starts */

struct switch_ctx {
    struct corio__fiber main, peer;
    uint64_t resumes;   /* times the peer ran */
};

/* The peer echoes each value back. It never returns (fiber.h forbids it):
 * when the benchmark ends it is simply never resumed again. */
static void switch_peer(void *value)
{
    struct switch_ctx *c = value;
    void *v = NULL;
    for (;;) {
        c->resumes++;
        v = corio__fiber_switch(&c->peer, &c->main, v);
    }
}

static uint64_t round_trips(struct switch_ctx *c, uint64_t n)
{
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++) {
        void *back = corio__fiber_switch(&c->main, &c->peer, (void *)(uintptr_t)i);
        bad += (uintptr_t)back != i;
    }
    return bad;
}

uint64_t bench_switch(const struct bench_args *a)
{
    if (a->n % 2)
        bench_die("switch: N counts switches, two per round trip: give an even N");
    struct switch_ctx c = { .resumes = 0 };
    void *stack = aligned_alloc(4096, SWITCH_STACK_SIZE);
    if (!stack)
        bench_die("switch: no memory for a stack");
    corio__fiber_init_thread(&c.main);
    corio__fiber_init(&c.peer, stack, SWITCH_STACK_SIZE, switch_peer);

    /* The first switch starts switch_peer(&c); its first switch back echoes NULL. */
    corio__fiber_switch(&c.main, &c.peer, &c);
    uint64_t bad = round_trips(&c, SWITCH_WARMUP);
    uint64_t t0 = bench_now_ns();
    bad += round_trips(&c, a->n / 2);
    uint64_t wall_ns = bench_now_ns() - t0;

    corio__fiber_destroy(&c.peer);
    free(stack);
    uint64_t want = 1 + SWITCH_WARMUP + a->n / 2;
    if (bad || c.resumes != want)
        bench_die("switch: wrong result: %" PRIu64 " values lost, %" PRIu64
                  " resumes, want %" PRIu64, bad, c.resumes, want);
    return wall_ns;
}
