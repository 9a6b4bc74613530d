/* perf/bench/bench.h - what the workloads of corio-bench share.
 *
 * corio-bench runs one workload of shared/bench/WORKLOADS.md per process
 * (main.c parses argv and prints the RESULT line). A workload function gets
 * its arguments and returns the wall time of the workload alone, measured
 * with CLOCK_MONOTONIC inside the process: the runtime's start and shutdown
 * are outside the measured span. A workload checks its own result; a wrong
 * result, or an error from corio, ends the process with exit status 1
 * through bench_die(), so that no failure can be mistaken for a figure (and
 * no half-broken run can hang waiting for a message that will never come).
 *
 * W8 and W9 are servers, not timed workloads: `corio-bench W8|W9 serve
 * --port P --workers K` listens on 127.0.0.1:P, prints "LISTENING port=<P>"
 * and serves until SIGTERM/SIGINT (exit 0), while perf/run drives the load
 * and measures the server's CPU time. `corio-bench W9 client --port P
 * --conns C --seconds S` is corio's own W9 load generator and prints a
 * RESULT line. A server function (bench_serve_fn) never returns.
 */
#ifndef CORIO_PERF_BENCH_H
#define CORIO_PERF_BENCH_H

#include <stdint.h>

#include <corio/corio.h>

struct bench_args {
    const char *workload;   /* the id given on the command line: "W1", "yield" ... */
    uint64_t n;             /* N: operations to time */
    unsigned workers;       /* --workers K (default 2) */
    /* W8/W9 only */
    const char *mode;       /* "serve" or "client" */
    uint16_t port;          /* --port P (serve: 0 lets the kernel pick) */
    unsigned conns;         /* --conns C (client, default 64) */
    double seconds;         /* --seconds S (client, default 10) */
};

/* A workload: runs it once and returns its wall time in nanoseconds. */
typedef uint64_t (*bench_workload_fn)(const struct bench_args *a);

/* A server or a load generator (W8, W9): prints its own lines, exits. */
typedef void (*bench_serve_fn)(const struct bench_args *a);

/* bench_now_ns - CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* bench_die - print "corio-bench: <message>" on stderr and exit with status 1. */
__attribute__((noreturn, format(printf, 1, 2)))
void bench_die(const char *fmt, ...);

/* bench_run_main - corio_run(@fn, @ctx) on @workers workers; dies when the
 * runtime fails or the main task ends with an error. */
void bench_run_main(const struct bench_args *a, unsigned workers, corio_fn fn, void *ctx);

/* The workloads (one file per family). */
uint64_t bench_spawn(const struct bench_args *a);     /* W1: spawn.c */
uint64_t bench_chain(const struct bench_args *a);     /* W3: spawn.c */
uint64_t bench_pingpong(const struct bench_args *a);  /* W2: pingpong.c */
uint64_t bench_yield(const struct bench_args *a);
uint64_t bench_yield2(const struct bench_args *a);     /* yield: yield.c */
uint64_t bench_switch(const struct bench_args *a);    /* switch: switch.c */
uint64_t bench_timers(const struct bench_args *a);    /* W4: timers.c */
uint64_t bench_queue(const struct bench_args *a);     /* queue: queue.c */
uint64_t bench_lock(const struct bench_args *a);      /* lock: lock.c */
uint64_t bench_lock_contended(const struct bench_args *a); /* lock_contended: lock.c */
uint64_t bench_offload(const struct bench_args *a);   /* W5: offload.c */
uint64_t bench_xthread(const struct bench_args *a);   /* W6: xthread.c */
uint64_t bench_ppool_roundtrip(const struct bench_args *a); /* ppool_roundtrip: process_pool.c */
uint64_t bench_ppool_fanout(const struct bench_args *a);    /* ppool_fanout: process_pool.c */
uint64_t bench_memory(const struct bench_args *a);    /* W7: memory.c */
void bench_http(const struct bench_args *a);          /* W8 serve: http.c */
void bench_echo(const struct bench_args *a);          /* W9 serve/client: echo.c */

/* Extra key=value text a workload leaves for its RESULT line (W4's
 * max_late_ms=, W7's bytes_per_task=); empty: workers=K is printed. */
extern char bench_extra[128];

/* bench_serve - run a W8/W9 server (serve.c): blocks SIGTERM and SIGINT
 * before the runtime starts (so no worker takes them) and leaves them to a
 * plain thread that exits 0; then, on @a->workers workers, listens on
 * 127.0.0.1:@a->port, prints "LISTENING port=<P>" and runs @conn with the
 * descriptor ((void *)(intptr_t)fd) as one fire-and-forget task per
 * accepted connection. @conn owns and closes its descriptor. Never returns. */
__attribute__((noreturn))
void bench_serve(const struct bench_args *a, corio_fn conn);

#endif
