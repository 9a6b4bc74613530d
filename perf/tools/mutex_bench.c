/* perf/tools/mutex_bench.c - the pthread peer of corio-bench's lock and
 * lock_contended workloads: the same loops on a pthread_mutex_t.
 *
 *   lock N            one thread locks and unlocks a mutex N times
 *                     (default 10,000,000); extra key ns_per_op. An idle
 *                     second thread is alive meanwhile: glibc drops the
 *                     lock prefix while a process has one thread (~2x
 *                     faster), and corio's runtime always has several, so
 *                     the figure compares the same atomic operations.
 *   lock_contended N  4 threads each do N/4 times lock; counter++; unlock
 *                     (the last takes the remainder); the counter must be N
 *                     (default 2,000,000); extra key threads=4.
 *
 * Prints one line, as shared/bench/WORKLOADS.md requires:
 *   RESULT workload=<W> peer=pthread n=<N> wall_s=<s> rate=<ops/s> <extra>
 * Exit status: 0 ok, 1 wrong result or error, 2 usage.
 *
 * Usage: mutex_bench <lock|lock_contended> [N]
 * Build: cc -O2 -Wall mutex_bench.c -o mutex_bench -lpthread (perf/run does)
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THREADS 4   /* as corio's lock_contended: 4 contenders */

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static uint64_t counter;   /* under mutex */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
    fprintf(stderr, "usage: mutex_bench <lock|lock_contended> [N]\n");
    exit(2);
}

static void loop(uint64_t ops)
{
    for (uint64_t i = 0; i < ops; i++) {
        pthread_mutex_lock(&mutex);
        counter++;
        pthread_mutex_unlock(&mutex);
    }
}

/* Keeps the process multi-threaded during "lock" (see above). */
static void *idle_thread(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

static void *contender(void *arg)
{
    loop(*(uint64_t *)arg);
    return NULL;
}

static uint64_t contended(uint64_t n)
{
    pthread_t th[THREADS];
    uint64_t ops[THREADS];
    uint64_t t0 = now_ns();
    for (int i = 0; i < THREADS; i++) {
        ops[i] = n / THREADS + (i == THREADS - 1 ? n % THREADS : 0);
        if (pthread_create(&th[i], NULL, contender, &ops[i]) != 0) {
            fprintf(stderr, "mutex_bench: pthread_create failed\n");
            exit(1);
        }
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    return now_ns() - t0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3)
        usage();
    int is_contended = strcmp(argv[1], "lock_contended") == 0;
    if (!is_contended && strcmp(argv[1], "lock") != 0)
        usage();
    uint64_t n = is_contended ? 2000000 : 10000000;
    if (argc == 3) {
        char *end;
        unsigned long long v = strtoull(argv[2], &end, 10);
        if (*argv[2] == '\0' || *argv[2] == '-' || *end != '\0' || v == 0)
            usage();
        n = v;
    }
    uint64_t wall_ns;
    if (is_contended) {
        wall_ns = contended(n);
    } else {
        pthread_t idle;
        if (pthread_create(&idle, NULL, idle_thread, NULL) != 0) {
            fprintf(stderr, "mutex_bench: pthread_create failed\n");
            return 1;
        }
        uint64_t t0 = now_ns();
        loop(n);
        wall_ns = now_ns() - t0;
    }
    if (counter != n) {
        fprintf(stderr, "mutex_bench: %s: counter %llu, want %llu\n", argv[1],
                (unsigned long long)counter, (unsigned long long)n);
        return 1;
    }
    if (wall_ns == 0)
        wall_ns = 1;
    double s = (double)wall_ns / 1e9;
    printf("RESULT workload=%s peer=pthread n=%llu wall_s=%.6f rate=%.0f ", argv[1],
           (unsigned long long)n, s, (double)n / s);
    if (is_contended)
        printf("threads=%d\n", THREADS);
    else
        printf("ns_per_op=%.2f\n", (double)wall_ns / (double)n);
    return 0;
}
