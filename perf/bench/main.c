/* perf/bench/main.c - corio-bench: argv, the workload table, the RESULT line.
 *
 * Usage: corio-bench <W> [N] [--workers K]
 *        corio-bench W8 serve [--port P] [--workers K]
 *        corio-bench W9 serve [--port P] [--workers K]
 *        corio-bench W9 client --port P [--conns C] [--seconds S] [--workers K]
 *
 * Prints exactly one line on success, as shared/bench/WORKLOADS.md requires:
 *   RESULT workload=<W> peer=corio n=<N> wall_s=<s> rate=<ops/s> <extra>
 * where <extra> is workers=<K> for the runtime workloads (W1-W4, W7; W4 and
 * W7 put their own key first: max_late_ms=, bytes_per_task=) and the time of
 * one operation for the single-threaded micro-benchmarks (yield, switch).
 * The servers (W8, W9 serve) print "LISTENING port=<P>" instead and run
 * until SIGTERM/SIGINT; the W9 client prints its own RESULT line.
 * Exit status: 0 ok, 1 wrong result or corio error, 2 usage.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
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
    bench_serve_fn serve;   /* W8/W9: the server (or client); run is then NULL */
    bool has_client;        /* W9: "client" is a mode too */
};

static const struct workload workloads[] = {
    { "W1", "spawn N tasks from one task, await all", 1000000, bench_spawn, NULL, NULL, false },
    { "W2", "pingpong: N round trips between two tasks", 1000000, bench_pingpong, NULL, NULL,
      false },
    { "W3", "chain: each task spawns the next, depth N", 1000000, bench_chain, NULL, NULL,
      false },
    { "W4", "timers: N tasks sleep a pseudo-random [0,100) ms", 100000, bench_timers, NULL,
      NULL, false },
    { "W5", "offload: N blocking calls via run_in_executor, 1000 in flight", 100000,
      bench_offload, NULL, NULL, false },
    { "W6", "xthread: 4 plain threads submit N/4 coroutines each, block on each", 200000,
      bench_xthread, NULL, NULL, false },
    { "W7", "memory: N tasks sleep 1 s at once", 100000, bench_memory, NULL, NULL, false },
    { "W8", "http: serve | keep-alive hello world server", 0, NULL, NULL, bench_http, false },
    { "W9", "echo: serve | client: TCP echo, 64-byte ping-pong", 0, NULL, NULL, bench_echo,
      true },
    { "yield", "one task yields N times on 1 worker", 10000000, bench_yield, "ns_per_op", NULL,
      false },
    { "yield2", "two tasks take turns yielding, N yields in all (1 worker)", 10000000,
      bench_yield2, "ns_per_op", NULL, false },
    { "switch", "N bare fiber switches", 20000000, bench_switch, "ns_per_switch", NULL, false },
    { "ppool_roundtrip", "process pool: N round trips of an empty task, one at a time", 20000,
      bench_ppool_roundtrip, NULL, NULL, false },
    { "ppool_fanout", "process pool: N small tasks at once over 2 worker processes", 100000,
      bench_ppool_fanout, NULL, NULL, false },
    { "queue", "queue: one producer, one consumer, maxsize 128", 1000000, bench_queue, NULL,
      NULL, false },
    { "lock", "one task acquires+releases a corio_lock N times (1 worker)", 10000000,
      bench_lock, "ns_per_op", NULL, false },
    { "lock_contended", "4 tasks do N/4 times lock; counter++; unlock", 2000000,
      bench_lock_contended, NULL, NULL, false },
};

char bench_extra[128];

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
    fprintf(stderr, "usage: corio-bench <workload> [N] [--workers K]\n"
                    "       corio-bench W8|W9 serve [--port P] [--workers K]\n"
                    "       corio-bench W9 client --port P [--conns C] [--seconds S]\n");
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

static double parse_seconds(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v > 0 && v <= 86400))
        usage();
    return v;
}

static uint16_t parse_port(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || v > 65535)
        usage();
    return (uint16_t)v;
}

/* The word after a server workload's id: its mode. */
static void parse_mode(const struct workload *w, const char *word, struct bench_args *a)
{
    if (strcmp(word, "serve") == 0 || (w->has_client && strcmp(word, "client") == 0))
        a->mode = word;
    else
        usage();
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
    *a = (struct bench_args){ .workers = 2, .conns = 64, .seconds = 10 };
    /* 2 workers: WORKLOADS.md's default wherever the runtime is multi-threaded;
     * 64 connections for 10 s: W9's load. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 || strcmp(argv[i], "--conns") == 0 ||
            strcmp(argv[i], "--seconds") == 0) {
            if (++i == argc || !w || !w->serve)
                usage();
            if (strcmp(argv[i - 1], "--port") == 0)
                a->port = parse_port(argv[i]);
            else if (strcmp(argv[i - 1], "--conns") == 0)
                a->conns = (unsigned)parse_count(argv[i]);
            else
                a->seconds = parse_seconds(argv[i]);
            if (a->conns > 65536)
                usage();
        } else if (strcmp(argv[i], "--workers") == 0) {
            if (++i == argc)
                usage();
            uint64_t k = parse_count(argv[i]);
            if (k > 1024)
                usage();
            a->workers = (unsigned)k;
        } else if (!w) {
            if (!(w = find_workload(argv[i])))
                usage();
        } else if (w->serve && !a->mode) {
            parse_mode(w, argv[i], a);
        } else if (!have_n && !w->serve) {
            a->n = parse_count(argv[i]);
            have_n = 1;
        } else {
            usage();
        }
    }
    if (!w || (w->serve && !a->mode))
        usage();
    if (a->mode && strcmp(a->mode, "client") == 0 && a->port == 0)
        usage();   /* a client needs the server's port */
    a->workload = w->id;
    if (!have_n)
        a->n = w->default_n;
    return w;
}

int main(int argc, char **argv)
{
    struct bench_args a;
    const struct workload *w = parse_args(argc, argv, &a);
    if (w->serve) {
        w->serve(&a);
        return 0;
    }
    uint64_t wall_ns = w->run(&a);
    if (wall_ns == 0)
        wall_ns = 1;   /* below the clock's resolution: keep the rate finite */
    double wall_s = (double)wall_ns / 1e9;
    printf("RESULT workload=%s peer=corio n=%" PRIu64 " wall_s=%.6f rate=%.0f ", a.workload,
           a.n, wall_s, (double)a.n / wall_s);
    if (w->per_op_key)
        printf("%s=%.2f\n", w->per_op_key, (double)wall_ns / (double)a.n);
    else
        printf("%s%sworkers=%u\n", bench_extra, bench_extra[0] ? " " : "", a.workers);
    return 0;
}
