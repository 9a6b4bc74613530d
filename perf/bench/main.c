/* perf/bench/main.c - corio-bench: argv, the workload table, the RESULT line.
 *
 * Usage: corio-bench <W> [N] [--workers K]
 *
 * Prints exactly one line on success, as shared/bench/WORKLOADS.md requires:
 *   RESULT workload=<W> peer=corio n=<N> wall_s=<s> rate=<ops/s> <extra>
 * where <extra> is workers=<K> for the runtime workloads (W1-W3) and the
 * time of one operation for the single-threaded micro-benchmarks (yield,
 * switch). Exit status: 0 ok, 1 wrong result or corio error, 2 usage.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

struct workload {
    const char *id;
    const char *what;       /* for the usage text */
    uint64_t default_n;     /* WORKLOADS.md's defaults; the micro-benchmarks' own */
    bench_workload_fn run;
    const char *per_op_key; /* NULL: print workers=K; else print <key>=ns per op */
};

static const struct workload workloads[] = {
    { "W1", "spawn N tasks from one task, await all", 1000000, bench_spawn, NULL },
    { "W2", "pingpong: N round trips between two tasks", 1000000, bench_pingpong, NULL },
    { "W3", "chain: each task spawns the next, depth N", 1000000, bench_chain, NULL },
    { "yield", "one task yields N times on 1 worker", 10000000, bench_yield, "ns_per_op" },
    { "switch", "N bare fiber switches", 20000000, bench_switch, "ns_per_switch" },
};

#define NWORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_die(const char *fmt, ...)
{
    va_list ap;
    fputs("corio-bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    /* Other workers may still run tasks: leave without atexit handlers. */
    fflush(NULL);
    _Exit(1);
}

void bench_run_main(const struct bench_args *a, unsigned workers, corio_fn fn, void *ctx)
{
    corio_rt_options opts = { .workers = workers };
    int rc = corio_run(fn, ctx, &opts, NULL);
    if (rc < 0)
        bench_die("%s: corio_run: %s", a->workload, corio_strerror(rc));
}

static __attribute__((noreturn)) void usage(void)
{
    fprintf(stderr, "usage: corio-bench <workload> [N] [--workers K]\n");
    for (size_t i = 0; i < NWORKLOADS; i++)
        fprintf(stderr, "  %-7s %s (default N %" PRIu64 ")\n", workloads[i].id,
                workloads[i].what, workloads[i].default_n);
    exit(2);
}

static uint64_t parse_count(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || v == 0)
        usage();
    return (uint64_t)v;
}

static const struct workload *find_workload(const char *id)
{
    for (size_t i = 0; i < NWORKLOADS; i++)
        if (strcmp(workloads[i].id, id) == 0)
            return &workloads[i];
    return NULL;
}

static const struct workload *parse_args(int argc, char **argv, struct bench_args *a)
{
    const struct workload *w = NULL;
    int have_n = 0;
    a->workers = 2;   /* WORKLOADS.md: 2 workers wherever the runtime is multi-threaded */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--workers") == 0) {
            if (++i == argc)
                usage();
            uint64_t k = parse_count(argv[i]);
            if (k > 1024)
                usage();
            a->workers = (unsigned)k;
        } else if (!w) {
            if (!(w = find_workload(argv[i])))
                usage();
        } else if (!have_n) {
            a->n = parse_count(argv[i]);
            have_n = 1;
        } else {
            usage();
        }
    }
    if (!w)
        usage();
    a->workload = w->id;
    if (!have_n)
        a->n = w->default_n;
    return w;
}

int main(int argc, char **argv)
{
    struct bench_args a;
    const struct workload *w = parse_args(argc, argv, &a);
    uint64_t wall_ns = w->run(&a);
    if (wall_ns == 0)
        wall_ns = 1;   /* below the clock's resolution: keep the rate finite */
    double wall_s = (double)wall_ns / 1e9;
    printf("RESULT workload=%s peer=corio n=%" PRIu64 " wall_s=%.6f rate=%.0f ", a.workload,
           a.n, wall_s, (double)a.n / wall_s);
    if (w->per_op_key)
        printf("%s=%.2f\n", w->per_op_key, (double)wall_ns / (double)a.n);
    else
        printf("workers=%u\n", a.workers);
    return 0;
}
