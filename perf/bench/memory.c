/* perf/bench/memory.c - W7 memory: N tasks sleep 1 s at once.
 *
 * The figure is bytes_per_task = (VmHWM after all tasks finished - VmRSS
 * before the first spawn) / N, both read from /proc/self/status: what a
 * sleeping task costs, its task record, timer entry and the stack pages it
 * touched (the runtime's target is <= 4.5 KiB, one page of stack plus the
 * task). So the task does as little as a sleeping task can: one
 * corio_sleep() call with nothing on its own frame, which keeps its stack
 * use within the top page. rate= is N / wall time (ideal: N / 1 s).
 *
 * As in W4 the tasks are fire-and-forget and the last one completes a
 * future, so no array of N handles is part of the measured memory. Each
 * task checks that it slept at least the second; a short sleep or an error
 * fails the run.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

struct memory_ctx {
    atomic_uint_fast64_t left;    /* tasks not finished yet */
    atomic_uint_fast64_t short_;  /* tasks that woke before 1 s */
    corio_future *done;           /* set by the last task */
};

static struct memory_ctx *memory_shared;

/* A "Vm...:   1234 kB" line of /proc/self/status, in bytes. */
static uint64_t status_bytes(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        bench_die("W7: /proc/self/status: cannot open");
    char line[256];
    size_t klen = strlen(key);
    uint64_t kb = UINT64_MAX;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            if (sscanf(line + klen + 1, "%" SCNu64, &kb) != 1)
                kb = UINT64_MAX;
            break;
        }
    fclose(f);
    if (kb == UINT64_MAX)
        bench_die("W7: no %s in /proc/self/status", key);
    return kb * 1024;
}

static void *sleeper(void *arg)
{
    (void)arg;
    struct memory_ctx *c = memory_shared;
    uint64_t before = corio_time_ns();
    int rc = corio_sleep(CORIO_SEC);
    if (rc < 0)
        bench_die("W7: sleep: %s", corio_strerror(rc));
    if (corio_time_ns() - before < (uint64_t)CORIO_SEC)
        atomic_fetch_add_explicit(&c->short_, 1, memory_order_relaxed);
    if (atomic_fetch_sub_explicit(&c->left, 1, memory_order_acq_rel) == 1) {
        /* The main task may drop its reference (and *c) once it is done. */
        corio_future *done = corio_future_ref(c->done);
        corio_future_set_result(done, NULL);
        corio_future_unref(done);
    }
    return NULL;
}

struct memory_main_ctx {
    const struct bench_args *a;
    uint64_t wall_ns;
};

static void *memory_main(void *arg)
{
    struct memory_main_ctx *m = arg;
    uint64_t n = m->a->n;
    struct memory_ctx c = { .left = n };
    int rc = corio_future_create(&c.done);
    if (rc < 0)
        bench_die("W7: future: %s", corio_strerror(rc));
    memory_shared = &c;

    uint64_t rss_before = status_bytes("VmRSS");
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        rc = corio_spawn(NULL, sleeper, NULL);
        if (rc < 0)
            bench_die("W7: spawn of task %" PRIu64 ": %s", i, corio_strerror(rc));
    }
    rc = corio_await(c.done, NULL);
    m->wall_ns = bench_now_ns() - t0;
    if (rc < 0)
        bench_die("W7: await: %s", corio_strerror(rc));
    corio_future_unref(c.done);
    uint64_t hwm = status_bytes("VmHWM");

    if (atomic_load(&c.short_))
        bench_die("W7: wrong result: %" PRIu64 " tasks slept less than 1 s",
                  (uint64_t)atomic_load(&c.short_));
    double per_task = hwm > rss_before ? (double)(hwm - rss_before) / (double)n : 0;
    snprintf(bench_extra, sizeof bench_extra, "bytes_per_task=%.0f rss_before_kib=%" PRIu64
             " hwm_kib=%" PRIu64, per_task, rss_before / 1024, hwm / 1024);
    return NULL;
}

uint64_t bench_memory(const struct bench_args *a)
{
    struct memory_main_ctx m = { .a = a };
    bench_run_main(a, a->workers, memory_main, &m);
    return m.wall_ns;
}
