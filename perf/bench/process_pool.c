/* perf/bench/process_pool.c - the process-pool executor's two rates.
 *
 * ppool_roundtrip: one plain thread submits an empty registered task and waits for
 * its result, N times (default 20,000): the cost of one round trip to a
 * worker process and back (submit, the pool's task writes the request, the
 * worker reads, runs, replies, the pool's task reads and completes the
 * concurrent future, the thread wakes). One warm-up call before the clock
 * starts, so the worker's start is not measured. Python's peer
 * (perf/peers/python/ppool.py) does the same with ProcessPoolExecutor.
 *
 * ppool_fanout: N small tasks (default 100,000; 8 bytes in, 8 out: v + 1)
 * submitted at once over max_workers = 2 worker processes, then every
 * result awaited and checked.
 *
 * The benchmark binary is the worker image too: it registers its functions
 * with CORIO_PROCESS_FUNCTION, so a worker serves before main() runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "corio/process_pool.h"

static int ppool_empty(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in;
    (void)n;
    (void)out;
    (void)out_len;
    return 0;
}
CORIO_PROCESS_FUNCTION("bench_empty", ppool_empty);

static int ppool_inc(const void *in, size_t n, void **out, size_t *out_len)
{
    uint64_t v;
    if (n != sizeof v || !(*out = malloc(sizeof v)))
        return -EINVAL;
    memcpy(&v, in, sizeof v);
    v++;
    memcpy(*out, &v, sizeof v);
    *out_len = sizeof v;
    return 0;
}
CORIO_PROCESS_FUNCTION("bench_inc", ppool_inc);

static corio_process_pool *bench_pool(unsigned workers)
{
    corio_process_pool_options o = {.max_workers = workers};
    corio_process_pool *pp;
    int rc = corio_process_pool_create(&pp, &o);
    if (rc < 0)
        bench_die("ppool: create: %s", corio_strerror(rc));
    return pp;
}

static void one_empty(corio_process_pool *pp)
{
    corio_cfuture *f;
    int rc = corio_process_pool_submit(pp, "bench_empty", NULL, 0, &f);
    if (rc < 0)
        bench_die("ppool_roundtrip: submit: %s", corio_strerror(rc));
    void *v = NULL;
    rc = corio_cfuture_result(f, CORIO_WAIT_FOREVER, &v);
    if (rc < 0 || !v || ((struct corio_bytes *)v)->len != 0)
        bench_die("ppool_roundtrip: result: %s", corio_strerror(rc));
    corio_cfuture_unref(f);
}

uint64_t bench_ppool_roundtrip(const struct bench_args *a)
{
    corio_process_pool *pp = bench_pool(1);
    one_empty(pp);   /* starts the worker */
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < a->n; i++)
        one_empty(pp);
    uint64_t wall = bench_now_ns() - t0;
    corio_process_pool_destroy(pp);
    snprintf(bench_extra, sizeof bench_extra, "procs=1");
    return wall;
}

uint64_t bench_ppool_fanout(const struct bench_args *a)
{
    corio_process_pool *pp = bench_pool(2);
    corio_cfuture **fs = malloc(a->n * sizeof *fs);
    if (!fs)
        bench_die("ppool_fanout: out of memory");
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < a->n; i++) {
        int rc = corio_process_pool_submit(pp, "bench_inc", &i, sizeof i, &fs[i]);
        if (rc < 0)
            bench_die("ppool_fanout: submit: %s", corio_strerror(rc));
    }
    for (uint64_t i = 0; i < a->n; i++) {
        void *v = NULL;
        int rc = corio_cfuture_result(fs[i], CORIO_WAIT_FOREVER, &v);
        struct corio_bytes *b = v;
        uint64_t got = 0;
        if (rc == 0 && b && b->len == sizeof got)
            memcpy(&got, b->data, sizeof got);
        if (rc < 0 || got != i + 1)
            bench_die("ppool_fanout: task %llu: %s", (unsigned long long)i,
                      rc < 0 ? corio_strerror(rc) : "wrong result");
        corio_cfuture_unref(fs[i]);
    }
    uint64_t wall = bench_now_ns() - t0;
    free(fs);
    corio_process_pool_destroy(pp);
    snprintf(bench_extra, sizeof bench_extra, "procs=2");
    return wall;
}
