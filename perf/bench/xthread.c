/* perf/bench/xthread.c - W6 xthread: 4 plain OS threads each submit N/4
 * trivial coroutines (returning x+1) to a running runtime with
 * corio_run_coroutine_threadsafe() and block on each result in turn
 * (corio_cfuture_result, a condvar wait).
 *
 * The main task starts the threads once the runtime runs and awaits their
 * end through corio_to_thread() (a join on the default pool), so both
 * workers are free for the submitted tasks. The time runs from the threads'
 * common start (a barrier) to the last one's end. Each thread checks every
 * result; the figure is submits per second.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>

#include <corio/executor.h>

#include "bench.h"

#define THREADS 4   /* WORKLOADS.md W6 */

struct xthread_ctx {
    corio_rt *rt;
    uint64_t per_thread;
    pthread_barrier_t go;
    _Atomic uint64_t t0, t1;
};

static void *coro_inc(void *arg)
{
    return (void *)((uintptr_t)arg + 1);
}

static void *submitter(void *arg)
{
    struct xthread_ctx *c = arg;
    pthread_barrier_wait(&c->go);
    uint64_t t0 = bench_now_ns(), zero = 0;
    atomic_compare_exchange_strong(&c->t0, &zero, t0);
    for (uint64_t x = 0; x < c->per_thread; x++) {
        corio_cfuture *f;
        int rc = corio_run_coroutine_threadsafe(c->rt, coro_inc, (void *)(uintptr_t)x, &f);
        if (rc < 0)
            bench_die("W6: run_coroutine_threadsafe: %s", corio_strerror(rc));
        void *v;
        rc = corio_cfuture_result(f, CORIO_WAIT_FOREVER, &v);
        if (rc < 0 || (uintptr_t)v != x + 1)
            bench_die("W6: wrong result for %" PRIu64 ": %s", x, corio_strerror(rc));
        corio_cfuture_unref(f);
    }
    uint64_t t1 = bench_now_ns(), prev = atomic_load(&c->t1);
    while (prev < t1 && !atomic_compare_exchange_weak(&c->t1, &prev, t1)) {
    }
    return NULL;
}

static void *join_fn(void *arg)
{
    pthread_join(*(pthread_t *)arg, NULL);
    return NULL;
}

static void *xthread_main(void *arg)
{
    struct xthread_ctx *c = arg;
    c->rt = corio_get_running_rt();
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, submitter, c))
            bench_die("W6: pthread_create failed");
    for (int i = 0; i < THREADS; i++) {
        int rc = corio_to_thread(join_fn, &t[i], NULL);
        if (rc < 0)
            bench_die("W6: join: %s", corio_strerror(rc));
    }
    return NULL;
}

uint64_t bench_xthread(const struct bench_args *a)
{
    struct xthread_ctx c = { .per_thread = a->n / THREADS };
    if (c.per_thread == 0)
        bench_die("W6: N must be at least %d", THREADS);
    pthread_barrier_init(&c.go, NULL, THREADS);
    bench_run_main(a, a->workers, xthread_main, &c);
    pthread_barrier_destroy(&c.go);
    return atomic_load(&c.t1) - atomic_load(&c.t0);
}
