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
 */
#ifndef CORIO_PERF_BENCH_H
#define CORIO_PERF_BENCH_H

#include <stdint.h>

#include <corio/corio.h>

struct bench_args {
    const char *workload;   /* the id given on the command line: "W1", "yield" ... */
    uint64_t n;             /* N: operations to time */
    unsigned workers;       /* --workers K (default 2) */
};

/* A workload: runs it once and returns its wall time in nanoseconds. */
typedef uint64_t (*bench_workload_fn)(const struct bench_args *a);

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
uint64_t bench_yield(const struct bench_args *a);     /* yield: yield.c */
uint64_t bench_switch(const struct bench_args *a);    /* switch: switch.c */

#endif
