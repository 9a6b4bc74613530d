/* perf/bench/lock.c - lock, lock_contended: the cost of a corio_lock.
 *
 * lock: one task acquires and releases a corio_lock N times, alone on a
 * one-worker runtime (whatever --workers says): the uncontended fast path,
 * two CAS. Reported as ns_per_op (one acquire + release). The peers:
 * perf/tools/mutex_bench.c (a pthread mutex in one thread), Go's
 * sync.Mutex in one goroutine.
 *
 * lock_contended: 4 tasks on --workers workers each do N/4 times
 * acquire; counter++; release (the last takes the remainder), and the
 * counter must come out at exactly N. corio's lock is FIFO-fair (asyncio's
 * semantics: a release with waiters hands the lock to the first one), so
 * under contention each hand-over wakes a parked task; pthread mutexes and
 * Go's sync.Mutex let a running thread barge in instead. Reported with
 * workers=K. Both time the workload inside the main task.
 */
#include "bench.h"

#include <corio/sync.h>

#define CONTENDERS 4

struct lock_ctx {
    const struct bench_args *a;
    corio_lock lock;
    uint64_t counter;    /* under lock */
    uint64_t wall_ns;
};

static void die_rc(const char *what, int rc)
{
    bench_die("%s: %s", what, corio_strerror(rc));
}

static void *lock_main(void *arg)
{
    struct lock_ctx *c = arg;
    uint64_t n = c->a->n;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        int rc = corio_lock_acquire(&c->lock);
        if (rc < 0)
            die_rc("lock: corio_lock_acquire", rc);
        c->counter++;
        rc = corio_lock_release(&c->lock);
        if (rc < 0)
            die_rc("lock: corio_lock_release", rc);
    }
    c->wall_ns = bench_now_ns() - t0;
    if (c->counter != n)
        bench_die("lock: counter %llu, want %llu", (unsigned long long)c->counter,
                  (unsigned long long)n);
    return NULL;
}

uint64_t bench_lock(const struct bench_args *a)
{
    struct lock_ctx c = { .a = a };
    int rc = corio_lock_init(&c.lock);
    if (rc < 0)
        die_rc("lock: corio_lock_init", rc);
    bench_run_main(a, 1, lock_main, &c);
    corio_lock_close(&c.lock);
    return c.wall_ns;
}

struct contender {
    struct lock_ctx *c;
    uint64_t ops;
};

static void *contend(void *arg)
{
    struct contender *k = arg;
    struct lock_ctx *c = k->c;
    for (uint64_t i = 0; i < k->ops; i++) {
        int rc = corio_lock_acquire(&c->lock);
        if (rc < 0)
            die_rc("lock_contended: corio_lock_acquire", rc);
        c->counter++;
        corio_lock_release(&c->lock);
    }
    return NULL;
}

static void *contended_main(void *arg)
{
    struct lock_ctx *c = arg;
    uint64_t n = c->a->n;
    struct contender k[CONTENDERS];
    corio_task *t[CONTENDERS];
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < CONTENDERS; i++) {
        k[i].c = c;
        k[i].ops = n / CONTENDERS + (i == CONTENDERS - 1 ? n % CONTENDERS : 0);
        int rc = corio_spawn(&t[i], contend, &k[i]);
        if (rc < 0)
            die_rc("lock_contended: corio_spawn", rc);
    }
    for (int i = 0; i < CONTENDERS; i++) {
        int rc = corio_await(t[i], NULL);
        if (rc < 0)
            die_rc("lock_contended: corio_await", rc);
        corio_task_unref(t[i]);
    }
    c->wall_ns = bench_now_ns() - t0;
    if (c->counter != n)
        bench_die("lock_contended: counter %llu, want %llu", (unsigned long long)c->counter,
                  (unsigned long long)n);
    return NULL;
}

uint64_t bench_lock_contended(const struct bench_args *a)
{
    struct lock_ctx c = { .a = a };
    int rc = corio_lock_init(&c.lock);
    if (rc < 0)
        die_rc("lock_contended: corio_lock_init", rc);
    bench_run_main(a, a->workers, contended_main, &c);
    corio_lock_close(&c.lock);
    return c.wall_ns;
}
