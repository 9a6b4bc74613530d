/* tests/test_queue.c - corio_queue (asyncio.Queue, LifoQueue, PriorityQueue,
 * Python 3.13 shutdown) checked against asyncio's behaviour, on one worker
 * where order matters and on 2 and 4 workers (repeated) where it does not.
 *
 * Tasks record what they saw (struct checks, or fields of the case's
 * struct) and the case asserts after the run (testutil.h). Blocked tasks
 * are made to block by yielding on one worker: a spawned task runs its
 * first step before main's next one. The races between a cancellation and
 * a hand-off run many rounds on several workers and count every item: each
 * must end in exactly one place (the task that reports success, or the
 * queue). The stress moves STRESS_ITEMS items through a bounded queue with
 * 8 producers and 8 consumers on every worker (--workers N; default: the
 * online CPUs), checking a per-item bitmap; TSan builds move fewer.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corio/corio.h"
#include "corio/queue.h"

#include "testutil.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#endif

#ifdef UNDER_TSAN
#define STRESS_ITEMS 200000u   /* TSan runs it ~10x slower; still every path */
#define RACE_ROUNDS 300
#else
#define STRESS_ITEMS 1000000u  /* ASan too: under a second on 2 cores */
#define RACE_ROUNDS 1000
#endif

static unsigned stress_workers;   /* --workers N; 0: the online CPUs */

/* ---- helper tasks ---------------------------------------------------------- */

struct getter {
    corio_queue *q;
    int rc;
    void *item;
    int64_t prio;
    struct order_log *log;
    const char *word;
};

static void *getter_task(void *arg)
{
    struct getter *g = arg;
    g->rc = corio_queue_get_prio(g->q, &g->item, &g->prio);
    if (g->log)
        log_word(g->log, g->word);
    return NULL;
}

struct putter {
    corio_queue *q;
    void *item;
    int64_t prio;
    int rc;
    struct order_log *log;
    const char *word;
};

static void *putter_task(void *arg)
{
    struct putter *p = arg;
    p->rc = corio_queue_put_prio(p->q, p->item, p->prio);
    if (p->log)
        log_word(p->log, p->word);
    return NULL;
}

struct joiner {
    corio_queue *q;
    int rc;
    atomic_bool done;
};

static void *joiner_task(void *arg)
{
    struct joiner *j = arg;
    j->rc = corio_queue_join(j->q);
    atomic_store(&j->done, true);
    return NULL;
}

static corio_task *spawn_or_null(corio_fn fn, void *arg)
{
    corio_task *t = NULL;
    return corio_spawn(&t, fn, arg) == 0 ? t : NULL;
}

/* Awaits and drops @t; returns the await's result. */
static int finish(corio_task *t)
{
    if (!t)
        return -EINVAL;
    int rc = corio_await(t, NULL);
    corio_task_unref(t);
    return rc;
}

static uintptr_t get_now(corio_queue *q)
{
    void *it = NULL;
    int rc = corio_queue_get_nowait(q, &it);
    return rc == 0 ? (uintptr_t)it : (uintptr_t)(intptr_t)rc;
}

/* ---- order ------------------------------------------------------------------ */

static void *order_main(void *arg)
{
    struct checks *ck = arg;
    corio_queue q;

    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, 0), 0);
    CHECK(ck, corio_queue_empty(&q));
    for (uintptr_t i = 1; i <= 100; i++)   /* past the first buffer: it grows */
        CHECK_EQ(ck, corio_queue_put_nowait(&q, V(i)), 0);
    CHECK_EQ(ck, corio_queue_qsize(&q), 100);
    CHECK(ck, !corio_queue_full(&q));   /* unbounded: never full */
    CHECK_EQ(ck, corio_queue_maxsize(&q), 0);
    for (uintptr_t i = 1; i <= 100; i++) {
        void *it = NULL;
        CHECK_EQ(ck, corio_queue_get(&q, &it), 0);
        CHECK_EQ(ck, (uintptr_t)it, i);
    }
    CHECK(ck, corio_queue_empty(&q));
    CHECK_EQ(ck, corio_queue_close(&q), 0);

    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_LIFO, 3), 0);
    for (uintptr_t i = 1; i <= 3; i++)
        CHECK_EQ(ck, corio_queue_put(&q, V(i)), 0);
    CHECK(ck, corio_queue_full(&q));
    CHECK_EQ(ck, get_now(&q), 3);
    CHECK_EQ(ck, corio_queue_put_nowait(&q, V(4)), 0);
    CHECK_EQ(ck, get_now(&q), 4);
    CHECK_EQ(ck, get_now(&q), 2);
    CHECK_EQ(ck, get_now(&q), 1);
    CHECK_EQ(ck, corio_queue_close(&q), 0);
    return NULL;
}

static void queue_fifo_lifo_order(void **state)
{
    (void)state;
    run_checks(1, order_main);
}

static void *prio_main(void *arg)
{
    struct checks *ck = arg;
    corio_queue q;
    /* (priority, item): item numbers in the order they must come out. */
    static const struct { int64_t prio; uintptr_t item; } in[] = {
        {5, 6}, {-3, 1}, {5, 7}, {0, 3}, {INT64_MAX, 9}, {0, 4}, {INT64_MIN, 0},
        {-3, 2}, {5, 8}, {1, 5},
    };
    const size_t n = sizeof in / sizeof in[0];

    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_PRIORITY, 0), 0);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(ck, corio_queue_put_prio_nowait(&q, V(in[i].item), in[i].prio), 0);
    CHECK_EQ(ck, corio_queue_put_nowait(&q, V(10)), 0);   /* priority 0, after 3 and 4 */
    int64_t last = INT64_MIN;
    uintptr_t want[] = {0, 1, 2, 3, 4, 10, 5, 6, 7, 8, 9};
    for (size_t i = 0; i < n + 1; i++) {
        void *it = NULL;
        int64_t pr = 42;
        CHECK_EQ(ck, corio_queue_get_prio_nowait(&q, &it, &pr), 0);
        CHECK_EQ(ck, (uintptr_t)it, want[i]);
        CHECK(ck, pr >= last);
        last = pr;
    }
    CHECK_EQ(ck, corio_queue_get_prio_nowait(&q, NULL, NULL), -EAGAIN);

    /* A large heap against a sort: random priorities, ties in put order. */
    uint64_t x = 88172645463325252u;
    int64_t prev_p = INT64_MIN;
    uintptr_t prev_i = 0;
    for (uintptr_t i = 1; i <= 5000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        CHECK_EQ(ck, corio_queue_put_prio(&q, V(i), (int64_t)(x % 64) - 32), 0);
    }
    for (int i = 0; i < 5000; i++) {
        void *it;
        int64_t pr;
        CHECK_EQ(ck, corio_queue_get_prio(&q, &it, &pr), 0);
        CHECK(ck, pr > prev_p || (pr == prev_p && (uintptr_t)it > prev_i));
        prev_p = pr;
        prev_i = (uintptr_t)it;
    }
    CHECK_EQ(ck, corio_queue_close(&q), 0);
    return NULL;
}

static void queue_priority_order(void **state)
{
    (void)state;
    run_checks(1, prio_main);
}

/* ---- blocking --------------------------------------------------------------- */

struct producer {
    corio_queue *q;
    int n;
    int rc;
    struct order_log log;
};

static void *producer_task(void *arg)
{
    struct producer *p = arg;
    for (int i = 1; i <= p->n; i++) {
        char w[16];
        p->rc = corio_queue_put(p->q, V(i));
        if (p->rc < 0)
            return NULL;
        snprintf(w, sizeof w, "p%d", i);
        log_word(&p->log, w);
    }
    return NULL;
}

static void *maxsize_main(void *arg)
{
    struct checks *ck = arg;
    corio_queue q;
    struct producer p = {.q = &q, .n = 5};

    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, 2), 0);
    corio_task *t = spawn_or_null(producer_task, &p);
    yield_n(3);
    CHECK_STR(ck, p.log.buf, "p1 p2");   /* the third put waits */
    CHECK_EQ(ck, corio_queue_qsize(&q), 2);
    CHECK(ck, corio_queue_full(&q));
    CHECK_EQ(ck, corio_queue_put_nowait(&q, V(99)), -EAGAIN);
    CHECK_EQ(ck, get_now(&q), 1);   /* moves the waiting 3 in */
    CHECK_EQ(ck, corio_queue_qsize(&q), 2);
    yield_n(3);
    CHECK_STR(ck, p.log.buf, "p1 p2 p3");
    for (uintptr_t i = 2; i <= 5; i++) {
        void *it = NULL;
        CHECK_EQ(ck, corio_queue_get(&q, &it), 0);
        CHECK_EQ(ck, (uintptr_t)it, i);
    }
    CHECK_EQ(ck, finish(t), 0);
    CHECK_EQ(ck, p.rc, 0);
    CHECK_STR(ck, p.log.buf, "p1 p2 p3 p4 p5");
    CHECK(ck, corio_queue_empty(&q));
    CHECK_EQ(ck, corio_queue_close(&q), 0);
    return NULL;
}

static void queue_maxsize_blocks_put(void **state)
{
    (void)state;
    run_checks(1, maxsize_main);
}

/* Getters are served oldest first, each item to exactly one; blocked
 * putters' items go in, in the order they waited, with their priorities. */
static void *waiters_fifo_main(void *arg)
{
    struct checks *ck = arg;
    corio_queue q;
    struct order_log log = {0};
    struct getter g[3] = {{.word = "g0"}, {.word = "g1"}, {.word = "g2"}};
    corio_task *t[3];

    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, 0), 0);
    for (int i = 0; i < 3; i++) {
        g[i].q = &q;
        g[i].log = &log;
        t[i] = spawn_or_null(getter_task, &g[i]);
    }
    yield_n(2);
    for (uintptr_t i = 0; i < 3; i++)
        CHECK_EQ(ck, corio_queue_put_nowait(&q, V(10 + i)), 0);
    /* Handed straight to the getters: nothing shows in the queue, and a
     * get_nowait cannot overtake them. */
    CHECK_EQ(ck, corio_queue_qsize(&q), 0);
    CHECK_EQ(ck, corio_queue_get_nowait(&q, NULL), -EAGAIN);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(ck, finish(t[i]), 0);
        CHECK_EQ(ck, g[i].rc, 0);
        CHECK_EQ(ck, (uintptr_t)g[i].item, 10 + i);
    }
    CHECK_STR(ck, log.buf, "g0 g1 g2");
    CHECK_EQ(ck, corio_queue_close(&q), 0);

    /* Putters on a full priority queue of maxsize 1. */
    struct putter p[3] = {{.item = V(1), .prio = 7}, {.item = V(2), .prio = -1},
                          {.item = V(3), .prio = 7}};
    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_PRIORITY, 1), 0);
    CHECK_EQ(ck, corio_queue_put_prio_nowait(&q, V(0), 100), 0);
    for (int i = 0; i < 3; i++) {
        p[i].q = &q;
        t[i] = spawn_or_null(putter_task, &p[i]);
    }
    yield_n(2);
    uintptr_t want[] = {0, 1, 2, 3};
    int64_t wantp[] = {100, 7, -1, 7};
    for (int i = 0; i < 4; i++) {
        void *it = NULL;
        int64_t pr = 0;
        CHECK_EQ(ck, corio_queue_get_prio(&q, &it, &pr), 0);
        CHECK_EQ(ck, (uintptr_t)it, want[i]);
        CHECK_EQ(ck, pr, wantp[i]);
        if (i < 3)
            yield_n(1);   /* no effect on the order: it is settled at the get */
    }
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(ck, finish(t[i]), 0);
        CHECK_EQ(ck, p[i].rc, 0);
    }
    CHECK_EQ(ck, corio_queue_close(&q), 0);
    return NULL;
}

static void queue_waiters_served_in_order(void **state)
{
    (void)state;
    run_checks(1, waiters_fifo_main);
}

/* ---- nowait from anywhere ----------------------------------------------- */

struct thread_put {
    corio_queue *q;
    int rc;
};

static void *thread_put(void *arg)
{
    struct thread_put *tp = arg;
    tp->rc = corio_queue_put_nowait(tp->q, V(77));
    return NULL;
}

struct plain_thread {
    struct checks ck;
    unsigned workers;
};

static void *plain_thread_main(void *arg)
{
    struct plain_thread *pt = arg;
    struct checks *ck = &pt->ck;
    corio_queue q;
    struct getter g = {.q = NULL};
    struct thread_put tp;

    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, 0), 0);
    g.q = &q;
    tp.q = &q;
    corio_task *t = spawn_or_null(getter_task, &g);
    yield_n(2);
    run_plain_thread(ck, thread_put, &tp);   /* wakes the getter from a plain thread */
    CHECK_EQ(ck, tp.rc, 0);
    CHECK_EQ(ck, finish(t), 0);
    CHECK_EQ(ck, g.rc, 0);
    CHECK_EQ(ck, (uintptr_t)g.item, 77);
    CHECK_EQ(ck, corio_queue_close(&q), 0);
    return NULL;
}

static void plain_thread_body(unsigned workers)
{
    struct plain_thread pt = {.workers = workers};
    run_main_checked(workers, plain_thread_main, &pt, &pt.ck);
}

static void queue_nowait_any_thread(void **state)
{
    (void)state;
    corio_queue q;

    /* No runtime at all: the _nowait functions work on a plain thread. */
    assert_int_equal(corio_queue_init(&q, CORIO_QUEUE_FIFO, 1), 0);
    assert_int_equal(corio_queue_get_nowait(&q, NULL), -EAGAIN);
    assert_int_equal(corio_queue_put_nowait(&q, V(5)), 0);
    assert_int_equal(corio_queue_put_nowait(&q, V(6)), -EAGAIN);
    assert_int_equal(corio_queue_qsize(&q), 1);
    assert_true(corio_queue_full(&q));
    void *it = NULL;
    assert_int_equal(corio_queue_get_nowait(&q, &it), 0);
    assert_ptr_equal(it, V(5));
    assert_int_equal(corio_queue_task_done(&q), 0);
    assert_int_equal(corio_queue_task_done(&q), -EINVAL);
    /* The suspending calls need a task. */
    assert_int_equal(corio_queue_put(&q, V(1)), -EPERM);
    assert_int_equal(corio_queue_get(&q, &it), -EPERM);
    assert_int_equal(corio_queue_join(&q), -EPERM);
    assert_int_equal(corio_queue_get_timeout(&q, &it, 10), -EPERM);
    assert_int_equal(corio_queue_put_timeout(&q, V(1), 10), -EPERM);
    assert_int_equal(corio_queue_shutdown(&q, false), 0);
    assert_int_equal(corio_queue_put_nowait(&q, V(6)), -ESHUTDOWN);
    assert_int_equal(corio_queue_close(&q), 0);

    on_worker_counts(plain_thread_body, 1, 5);
}

/* ---- task_done / join ---------------------------------------------------- */

static void *join_main(void *arg)
{
    struct checks *ck = arg;
    corio_queue q;
    struct joiner j = {0};

    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, 0), 0);
    CHECK_EQ(ck, corio_queue_join(&q), 0);   /* nothing put: at once */
    CHECK_EQ(ck, corio_queue_task_done(&q), -EINVAL);
    j.q = &q;
    for (uintptr_t i = 0; i < 3; i++)
        CHECK_EQ(ck, corio_queue_put(&q, V(i)), 0);
    corio_task *t = spawn_or_null(joiner_task, &j);
    yield_n(2);
    for (int i = 0; i < 3; i++) {
        CHECK(ck, !atomic_load(&j.done));
        CHECK_EQ(ck, corio_queue_get(&q, NULL), 0);
        yield_n(2);
        CHECK(ck, !atomic_load(&j.done));   /* got is not done */
        CHECK_EQ(ck, corio_queue_task_done(&q), 0);
        yield_n(2);
    }
    CHECK(ck, atomic_load(&j.done));
    CHECK_EQ(ck, finish(t), 0);
    CHECK_EQ(ck, j.rc, 0);
    CHECK_EQ(ck, corio_queue_task_done(&q), -EINVAL);   /* one too many: ValueError */
    CHECK_EQ(ck, corio_queue_join(&q), 0);

    /* A cancelled join. */
    CHECK_EQ(ck, corio_queue_put(&q, V(1)), 0);
    atomic_store(&j.done, false);
    t = spawn_or_null(joiner_task, &j);
    yield_n(2);
    CHECK_EQ(ck, corio_task_cancel(t, NULL), 1);
    CHECK_EQ(ck, finish(t), -ECANCELED);
    CHECK_EQ(ck, j.rc, -ECANCELED);
    CHECK_EQ(ck, corio_queue_close(&q), 0);   /* the joiner left: not busy */
    return NULL;
}

static void queue_task_done_join(void **state)
{
    (void)state;
    run_checks(1, join_main);
}

/* ---- shutdown ------------------------------------------------------------- */

static void *shutdown_getters_main(void *arg)
{
    struct checks *ck = arg;
    corio_queue q;
    struct getter g[3];
    corio_task *t[3];

    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, 0), 0);
    for (int i = 0; i < 3; i++) {
        g[i] = (struct getter){.q = &q, .rc = 1};
        t[i] = spawn_or_null(getter_task, &g[i]);
    }
    yield_n(2);
    CHECK_EQ(ck, corio_queue_shutdown(&q, false), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(ck, finish(t[i]), 0);
        CHECK_EQ(ck, g[i].rc, -ESHUTDOWN);
    }
    CHECK_EQ(ck, corio_queue_put(&q, V(1)), -ESHUTDOWN);
    CHECK_EQ(ck, corio_queue_put_nowait(&q, V(1)), -ESHUTDOWN);
    CHECK_EQ(ck, corio_queue_put_timeout(&q, V(1), 0), -ESHUTDOWN);
    CHECK_EQ(ck, corio_queue_get(&q, NULL), -ESHUTDOWN);
    CHECK_EQ(ck, corio_queue_get_nowait(&q, NULL), -ESHUTDOWN);
    CHECK_EQ(ck, corio_queue_get_timeout(&q, NULL, 1000000), -ESHUTDOWN);
    CHECK_EQ(ck, corio_queue_shutdown(&q, false), 0);   /* again: fine */
    CHECK_EQ(ck, corio_queue_close(&q), 0);

    /* A normal shutdown leaves the items to be got; then QueueShutDown. */
    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, 0), 0);
    CHECK_EQ(ck, corio_queue_put(&q, V(1)), 0);
    CHECK_EQ(ck, corio_queue_put(&q, V(2)), 0);
    CHECK_EQ(ck, corio_queue_shutdown(&q, false), 0);
    CHECK_EQ(ck, corio_queue_qsize(&q), 2);
    CHECK_EQ(ck, get_now(&q), 1);
    void *it = NULL;
    CHECK_EQ(ck, corio_queue_get(&q, &it), 0);
    CHECK_EQ(ck, (uintptr_t)it, 2);
    CHECK_EQ(ck, corio_queue_get(&q, &it), -ESHUTDOWN);
    CHECK_EQ(ck, corio_queue_task_done(&q), 0);
    CHECK_EQ(ck, corio_queue_task_done(&q), 0);
    CHECK_EQ(ck, corio_queue_join(&q), 0);
    CHECK_EQ(ck, corio_queue_close(&q), 0);
    return NULL;
}

static void queue_shutdown_wakes_getters(void **state)
{
    (void)state;
    run_checks(1, shutdown_getters_main);
}

static void *shutdown_putters_main(void *arg)
{
    struct checks *ck = arg;
    corio_queue q;
    struct putter p[2];
    corio_task *t[2];

    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_LIFO, 1), 0);
    CHECK_EQ(ck, corio_queue_put(&q, V(1)), 0);
    for (int i = 0; i < 2; i++) {
        p[i] = (struct putter){.q = &q, .item = V(2 + i), .rc = 1};
        t[i] = spawn_or_null(putter_task, &p[i]);
    }
    yield_n(2);
    CHECK_EQ(ck, corio_queue_shutdown(&q, false), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(ck, finish(t[i]), 0);
        CHECK_EQ(ck, p[i].rc, -ESHUTDOWN);
    }
    CHECK_EQ(ck, corio_queue_qsize(&q), 1);   /* their items were not put */
    CHECK_EQ(ck, get_now(&q), 1);
    CHECK_EQ(ck, get_now(&q), (uintptr_t)(intptr_t)-ESHUTDOWN);
    CHECK_EQ(ck, corio_queue_task_done(&q), 0);
    CHECK_EQ(ck, corio_queue_task_done(&q), -EINVAL);
    CHECK_EQ(ck, corio_queue_close(&q), 0);
    return NULL;
}

static void queue_shutdown_wakes_putters(void **state)
{
    (void)state;
    run_checks(1, shutdown_putters_main);
}

static void *shutdown_immediate_main(void *arg)
{
    struct checks *ck = arg;
    corio_queue q;
    struct joiner j = {0};

    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_PRIORITY, 0), 0);
    j.q = &q;
    for (uintptr_t i = 0; i < 3; i++)
        CHECK_EQ(ck, corio_queue_put_prio(&q, V(i), (int64_t)i), 0);
    CHECK_EQ(ck, corio_queue_get(&q, NULL), 0);   /* got, not yet done */
    corio_task *t = spawn_or_null(joiner_task, &j);
    yield_n(2);
    /* Drops the 2 items left: they count as done; the one got does not. */
    CHECK_EQ(ck, corio_queue_shutdown(&q, true), 0);
    CHECK_EQ(ck, corio_queue_qsize(&q), 0);
    yield_n(2);
    CHECK(ck, !atomic_load(&j.done));
    CHECK_EQ(ck, corio_queue_task_done(&q), 0);
    CHECK_EQ(ck, finish(t), 0);
    CHECK_EQ(ck, j.rc, 0);
    CHECK_EQ(ck, corio_queue_task_done(&q), -EINVAL);
    CHECK_EQ(ck, corio_queue_get(&q, NULL), -ESHUTDOWN);
    CHECK_EQ(ck, corio_queue_close(&q), 0);

    /* Immediate after a normal shutdown; getters and joiners all wake. */
    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, 0), 0);
    struct getter g = {.q = &q, .rc = 1};
    corio_task *gt = spawn_or_null(getter_task, &g);
    yield_n(2);
    CHECK_EQ(ck, corio_queue_shutdown(&q, false), 0);
    CHECK_EQ(ck, finish(gt), 0);
    CHECK_EQ(ck, g.rc, -ESHUTDOWN);
    CHECK_EQ(ck, corio_queue_close(&q), 0);

    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, 2), 0);
    CHECK_EQ(ck, corio_queue_put(&q, V(1)), 0);
    CHECK_EQ(ck, corio_queue_put(&q, V(2)), 0);
    struct putter p = {.q = &q, .item = V(3), .rc = 1};
    corio_task *pt = spawn_or_null(putter_task, &p);
    atomic_store(&j.done, false);
    t = spawn_or_null(joiner_task, &j);
    yield_n(2);
    CHECK_EQ(ck, corio_queue_shutdown(&q, false), 0);
    CHECK_EQ(ck, finish(pt), 0);
    CHECK_EQ(ck, p.rc, -ESHUTDOWN);
    yield_n(2);
    CHECK(ck, !atomic_load(&j.done));   /* a normal shutdown does not release join */
    CHECK_EQ(ck, corio_queue_shutdown(&q, true), 0);
    CHECK_EQ(ck, finish(t), 0);
    CHECK_EQ(ck, j.rc, 0);
    CHECK(ck, corio_queue_empty(&q));
    CHECK_EQ(ck, corio_queue_close(&q), 0);
    return NULL;
}

static void queue_shutdown_immediate(void **state)
{
    (void)state;
    run_checks(1, shutdown_immediate_main);
}

/* ---- cancellation ----------------------------------------------------------- */

static void *cancel_main(void *arg)
{
    struct checks *ck = arg;
    corio_queue q;

    /* A blocked get, cancelled: it took nothing, the next item stays. */
    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, 0), 0);
    struct getter g = {.q = &q, .rc = 1};
    corio_task *t = spawn_or_null(getter_task, &g);
    yield_n(2);
    CHECK_EQ(ck, corio_task_cancel(t, NULL), 1);
    CHECK_EQ(ck, finish(t), -ECANCELED);
    CHECK_EQ(ck, g.rc, -ECANCELED);
    CHECK_EQ(ck, corio_queue_put(&q, V(5)), 0);
    CHECK_EQ(ck, corio_queue_qsize(&q), 1);
    CHECK_EQ(ck, get_now(&q), 5);
    CHECK_EQ(ck, corio_queue_close(&q), 0);

    /* A blocked put, cancelled: its item is not in the queue, not counted. */
    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, 1), 0);
    CHECK_EQ(ck, corio_queue_put(&q, V(1)), 0);
    struct putter p = {.q = &q, .item = V(2), .rc = 1};
    t = spawn_or_null(putter_task, &p);
    yield_n(2);
    CHECK_EQ(ck, corio_task_cancel(t, NULL), 1);
    CHECK_EQ(ck, finish(t), -ECANCELED);
    CHECK_EQ(ck, p.rc, -ECANCELED);
    CHECK_EQ(ck, get_now(&q), 1);
    CHECK_EQ(ck, get_now(&q), (uintptr_t)(intptr_t)-EAGAIN);
    CHECK_EQ(ck, corio_queue_task_done(&q), 0);
    CHECK_EQ(ck, corio_queue_task_done(&q), -EINVAL);

    /* Cancelled after the hand-off, before it ran: keeps the item, and the
     * cancellation comes at its next suspension. */
    struct getter g2 = {.q = &q, .rc = 1};
    t = spawn_or_null(getter_task, &g2);
    yield_n(2);
    CHECK_EQ(ck, corio_queue_put_nowait(&q, V(9)), 0);   /* handed to g2 */
    CHECK_EQ(ck, corio_task_cancel(t, NULL), 1);
    CHECK_EQ(ck, finish(t), -ECANCELED);   /* ended with the request counted */
    CHECK_EQ(ck, g2.rc, 0);
    CHECK_EQ(ck, (uintptr_t)g2.item, 9);
    CHECK(ck, corio_queue_empty(&q));
    CHECK_EQ(ck, corio_queue_close(&q), 0);
    return NULL;
}

static void queue_cancel_blocked_get_and_put(void **state)
{
    (void)state;
    run_checks(1, cancel_main);
}

/* Races: a cancellation from another task against a put that hands the item
 * to a blocked getter (or a get that moves a blocked putter's item in). */
struct race {
    struct checks ck;
    corio_queue q;
    corio_task *victim;
    int victim_rc;
    void *item;
    int after_rc;         /* what the victim's next suspension returned */
    uint64_t after_ns;    /* and how long it took (a lost wake-up shows as ~60 s) */
    int yields_cancel;    /* the canceller yields this many times first */
    int lost, dup, kept, cancelled;
};

/* Only the cancellation ends this (a re-armed one at once): a worker thread
 * may lose its core for a while, so no bounded number of yields will do. */
static int wait_for_cancel(struct race *r)
{
    uint64_t t0 = corio_time_ns();
    int rc = corio_sleep(60000000000);
    r->after_ns = corio_time_ns() - t0;
    return rc;
}

static void *race_getter(void *arg)
{
    struct race *r = arg;
    r->victim_rc = corio_queue_get(&r->q, &r->item);
    if (r->victim_rc == 0)
        r->after_rc = wait_for_cancel(r);
    return NULL;
}

static void *race_putter(void *arg)
{
    struct race *r = arg;
    r->victim_rc = corio_queue_put(&r->q, V(2));
    if (r->victim_rc == 0)
        r->after_rc = wait_for_cancel(r);
    return NULL;
}

static void *race_canceller(void *arg)
{
    struct race *r = arg;
    yield_n(r->yields_cancel);
    corio_task_cancel(r->victim, NULL);
    return NULL;
}

static void race_round(struct race *r, bool getter, uint64_t rnd)
{
    struct checks *ck = &r->ck;
    CHECK_EQ(ck, corio_queue_init(&r->q, CORIO_QUEUE_FIFO, getter ? 0 : 1), 0);
    if (!getter)
        CHECK_EQ(ck, corio_queue_put_nowait(&r->q, V(1)), 0);
    r->item = NULL;
    r->victim_rc = 1;
    r->yields_cancel = (int)(rnd % 4);
    r->victim = spawn_or_null(getter ? race_getter : race_putter, r);
    corio_task *c = spawn_or_null(race_canceller, r);
    yield_n((int)((rnd >> 8) % 4));
    if (getter) {
        CHECK_EQ(ck, corio_queue_put_nowait(&r->q, V(7)), 0);
    } else {
        CHECK_EQ(ck, get_now(&r->q), 1);   /* may move the putter's 2 in */
    }
    CHECK_EQ(ck, finish(c), 0);
    CHECK_EQ(ck, finish(r->victim), -ECANCELED);   /* the request is never lost */
    uintptr_t left = get_now(&r->q);
    bool in_queue = left == (getter ? 7u : 2u);
    CHECK(ck, in_queue || left == (uintptr_t)(intptr_t)-EAGAIN);
    bool victim_has = r->victim_rc == 0;
    CHECK(ck, victim_has || r->victim_rc == -ECANCELED || r->victim_rc == 1);
    if (getter && victim_has)
        CHECK_EQ(ck, (uintptr_t)r->item, 7);
    if (victim_has && r->after_rc != -ECANCELED)
        fprintf(stderr, "[ race     ] getter=%d victim_rc=%d after_rc=%d after %.3f s left=%ld\n",
                getter, r->victim_rc, r->after_rc, (double)r->after_ns / 1e9, (long)left);
    if (victim_has)
        CHECK_EQ(ck, r->after_rc, -ECANCELED);
    /* A getter that got the item must have taken it out of the queue; a
     * putter that succeeded must have left it in, and one that failed must
     * not have. */
    bool ok = getter ? victim_has != in_queue : victim_has == in_queue;
    if (!ok && (getter ? victim_has : in_queue))
        r->dup++;
    else if (!ok)
        r->lost++;
    else if (victim_has)
        r->kept++;   /* won the race against its cancellation */
    else
        r->cancelled++;
    CHECK_EQ(ck, corio_queue_close(&r->q), 0);
}

static void *race_main(void *arg)
{
    struct race *r = arg;
    uint64_t x = 0x9E3779B97F4A7C15u ^ (uint64_t)(uintptr_t)&x;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        race_round(r, (i & 1) == 0, x);
    }
    return NULL;
}

static void race_body(unsigned workers)
{
    struct race r;
    memset(&r, 0, sizeof r);
    run_main_checked(workers, race_main, &r, &r.ck);
    assert_int_equal(r.lost, 0);
    assert_int_equal(r.dup, 0);
    assert_int_equal(r.kept + r.cancelled, RACE_ROUNDS);
    if (getenv("QUEUE_RACE_VERBOSE"))
        fprintf(stderr, "[ race     ] %u workers: %d kept, %d cancelled\n", workers, r.kept,
                r.cancelled);
}

static void queue_cancel_races_handoff(void **state)
{
    (void)state;
    on_worker_counts(race_body, 1, 3);
}

/* ---- timeouts -------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *late_putter(void *arg)
{
    corio_queue *q = arg;
    corio_sleep(5000000);
    corio_queue_put(q, V(3));
    return NULL;
}

static void *timeout_main(void *arg)
{
    struct checks *ck = arg;
    corio_queue q;
    void *it = NULL;

    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, 1), 0);
    uint64_t t0 = now_ns();
    CHECK_EQ(ck, corio_queue_get_timeout(&q, &it, 20000000), -ETIMEDOUT);
    CHECK(ck, now_ns() - t0 >= 20000000);
    CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
    CHECK_EQ(ck, corio_yield(), 0);   /* nothing left pending */
    CHECK_EQ(ck, corio_queue_get_timeout(&q, &it, 0), -ETIMEDOUT);
    CHECK_EQ(ck, corio_queue_get_timeout(&q, &it, -1), -EINVAL);
    CHECK_EQ(ck, corio_queue_put_timeout(&q, V(1), -1), -EINVAL);
    CHECK_EQ(ck, corio_queue_put_timeout(&q, V(1), 0), 0);   /* no wait needed */
    t0 = now_ns();
    CHECK_EQ(ck, corio_queue_put_prio_timeout(&q, V(2), 0, 10000000), -ETIMEDOUT);
    CHECK(ck, now_ns() - t0 >= 10000000);
    CHECK_EQ(ck, corio_queue_put_timeout(&q, V(2), 0), -ETIMEDOUT);
    CHECK_EQ(ck, corio_queue_qsize(&q), 1);   /* the timed-out puts put nothing */
    CHECK_EQ(ck, corio_queue_get_timeout(&q, &it, 0), 0);
    CHECK_EQ(ck, (uintptr_t)it, 1);

    /* The item comes before the deadline. */
    corio_task *t = spawn_or_null(late_putter, &q);
    int64_t pr = 5;
    CHECK_EQ(ck, corio_queue_get_prio_timeout(&q, &it, &pr, 2000000000), 0);
    CHECK_EQ(ck, (uintptr_t)it, 3);
    CHECK_EQ(ck, pr, 0);
    CHECK_EQ(ck, finish(t), 0);
    CHECK_EQ(ck, corio_yield(), 0);

    /* An outer cancellation is not turned into a timeout. */
    CHECK_EQ(ck, corio_task_cancel(corio_current_task(), NULL), 1);
    CHECK_EQ(ck, corio_queue_get_timeout(&q, &it, 1000000000), -ECANCELED);
    CHECK_EQ(ck, corio_task_uncancel(corio_current_task()), 0);
    CHECK_EQ(ck, corio_queue_close(&q), 0);
    return NULL;
}

static void queue_timeouts(void **state)
{
    (void)state;
    run_checks(1, timeout_main);
    run_checks(2, timeout_main);
}

/* ---- bad input --------------------------------------------------------------- */

static void *bad_input_main(void *arg)
{
    struct checks *ck = arg;
    corio_queue q;

    CHECK_EQ(ck, corio_queue_init(NULL, CORIO_QUEUE_FIFO, 0), -EINVAL);
    CHECK_EQ(ck, corio_queue_init(&q, 3, 0), -EINVAL);
    CHECK_EQ(ck, corio_queue_init(&q, -1, 0), -EINVAL);
    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, -1), -EINVAL);
    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, INT64_MIN), -EINVAL);
    CHECK_EQ(ck, corio_queue_put(NULL, V(1)), -EINVAL);
    CHECK_EQ(ck, corio_queue_put_nowait(NULL, V(1)), -EINVAL);
    CHECK_EQ(ck, corio_queue_put_timeout(NULL, V(1), 1), -EINVAL);
    CHECK_EQ(ck, corio_queue_put_prio(NULL, V(1), 1), -EINVAL);
    CHECK_EQ(ck, corio_queue_get(NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_queue_get_nowait(NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_queue_get_timeout(NULL, NULL, 1), -EINVAL);
    CHECK_EQ(ck, corio_queue_get_prio(NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_queue_qsize(NULL), -EINVAL);
    CHECK_EQ(ck, corio_queue_maxsize(NULL), -EINVAL);
    CHECK(ck, !corio_queue_empty(NULL));
    CHECK(ck, !corio_queue_full(NULL));
    CHECK_EQ(ck, corio_queue_task_done(NULL), -EINVAL);
    CHECK_EQ(ck, corio_queue_join(NULL), -EINVAL);
    CHECK_EQ(ck, corio_queue_shutdown(NULL, true), -EINVAL);
    CHECK_EQ(ck, corio_queue_close(NULL), -EINVAL);

    /* Close with a waiter is refused; use after close is -EINVAL. */
    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_FIFO, 7), 0);
    CHECK_EQ(ck, corio_queue_maxsize(&q), 7);
    struct getter g = {.q = &q, .rc = 1};
    corio_task *t = spawn_or_null(getter_task, &g);
    yield_n(2);
    CHECK_EQ(ck, corio_queue_close(&q), -EBUSY);
    CHECK_EQ(ck, corio_queue_put(&q, V(4)), 0);
    CHECK_EQ(ck, finish(t), 0);
    CHECK_EQ(ck, g.rc, 0);
    CHECK_EQ(ck, corio_queue_put(&q, V(5)), 0);
    CHECK_EQ(ck, corio_queue_close(&q), 0);   /* items left are dropped */
    CHECK_EQ(ck, corio_queue_close(&q), -EINVAL);
    CHECK_EQ(ck, corio_queue_put(&q, V(1)), -EINVAL);
    CHECK_EQ(ck, corio_queue_put_nowait(&q, V(1)), -EINVAL);
    CHECK_EQ(ck, corio_queue_get(&q, NULL), -EINVAL);
    CHECK_EQ(ck, corio_queue_get_nowait(&q, NULL), -EINVAL);
    CHECK_EQ(ck, corio_queue_get_timeout(&q, NULL, 5), -EINVAL);
    CHECK_EQ(ck, corio_queue_qsize(&q), -EINVAL);
    CHECK_EQ(ck, corio_queue_maxsize(&q), -EINVAL);
    CHECK_EQ(ck, corio_queue_task_done(&q), -EINVAL);
    CHECK_EQ(ck, corio_queue_join(&q), -EINVAL);
    CHECK_EQ(ck, corio_queue_shutdown(&q, false), -EINVAL);
    CHECK(ck, !corio_queue_empty(&q));
    CHECK(ck, !corio_queue_full(&q));
    /* Init again after close. */
    CHECK_EQ(ck, corio_queue_init(&q, CORIO_QUEUE_LIFO, 0), 0);
    CHECK_EQ(ck, corio_queue_close(&q), 0);
    return NULL;
}

static void queue_bad_input(void **state)
{
    (void)state;
    run_checks(1, bad_input_main);
}

/* ---- stress: 8 producers, 8 consumers, one bounded queue ----------------- */

#define STRESS_SIDE 8

struct stress {
    struct checks ck;
    corio_queue q;
    _Atomic uint64_t *seen;        /* one bit per item */
    atomic_uint_fast64_t got, dup;
    int prod_id[STRESS_SIDE];
};

struct stress_prod {
    struct stress *s;
    unsigned id;
};

static void *stress_producer(void *arg)
{
    struct stress_prod *p = arg;
    for (uint64_t v = p->id; v < STRESS_ITEMS; v += STRESS_SIDE) {
        int rc = corio_queue_put(&p->s->q, V(v + 1));
        if (rc < 0) {
            CHECK_EQ(&p->s->ck, rc, 0);
            return NULL;
        }
    }
    return NULL;
}

static void *stress_consumer(void *arg)
{
    struct stress *s = arg;
    for (;;) {
        void *it;
        int rc = corio_queue_get(&s->q, &it);
        if (rc == -ESHUTDOWN)
            return NULL;
        if (rc < 0) {
            CHECK_EQ(&s->ck, rc, 0);
            return NULL;
        }
        uint64_t v = (uintptr_t)it - 1;
        if (v >= STRESS_ITEMS) {
            CHECK(&s->ck, v < STRESS_ITEMS);
            continue;
        }
        uint64_t bit = 1ull << (v % 64);
        if (atomic_fetch_or_explicit(&s->seen[v / 64], bit, memory_order_relaxed) & bit)
            atomic_fetch_add_explicit(&s->dup, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->got, 1, memory_order_relaxed);
        corio_queue_task_done(&s->q);
    }
}

static void *stress_main(void *arg)
{
    struct stress *s = arg;
    struct checks *ck = &s->ck;
    struct stress_prod prod[STRESS_SIDE];
    corio_task *pt[STRESS_SIDE], *ct[STRESS_SIDE];

    CHECK_EQ(ck, corio_queue_init(&s->q, CORIO_QUEUE_FIFO, 64), 0);
    for (unsigned i = 0; i < STRESS_SIDE; i++) {
        prod[i] = (struct stress_prod){s, i};
        ct[i] = spawn_or_null(stress_consumer, s);
        pt[i] = spawn_or_null(stress_producer, &prod[i]);
    }
    for (unsigned i = 0; i < STRESS_SIDE; i++)
        CHECK_EQ(ck, finish(pt[i]), 0);
    CHECK_EQ(ck, corio_queue_join(&s->q), 0);   /* every item task_done'd */
    CHECK_EQ(ck, atomic_load(&s->got), STRESS_ITEMS);
    CHECK_EQ(ck, corio_queue_shutdown(&s->q, false), 0);   /* ends the consumers */
    for (unsigned i = 0; i < STRESS_SIDE; i++)
        CHECK_EQ(ck, finish(ct[i]), 0);
    CHECK_EQ(ck, corio_queue_close(&s->q), 0);
    return NULL;
}

static void queue_stress_8x8_bounded(void **state)
{
    (void)state;
    struct stress *s = calloc(1, sizeof *s);
    assert_non_null(s);
    size_t words = (STRESS_ITEMS + 63) / 64;
    s->seen = calloc(words, sizeof *s->seen);
    assert_non_null(s->seen);
    uint64_t t0 = now_ns();
    run_main_checked(stress_workers, stress_main, s, &s->ck);
    fprintf(stderr, "[ stress   ] %u items in %.3f s\n", STRESS_ITEMS,
            (double)(now_ns() - t0) / 1e9);
    assert_int_equal(atomic_load(&s->dup), 0);
    assert_int_equal(atomic_load(&s->got), STRESS_ITEMS);
    for (size_t w = 0; w < words; w++) {
        uint64_t want = w + 1 < words || STRESS_ITEMS % 64 == 0
                            ? UINT64_MAX
                            : (1ull << (STRESS_ITEMS % 64)) - 1;
        assert_int_equal(atomic_load(&s->seen[w]), want);
    }
    free(s->seen);
    free(s);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--workers") == 0)
            stress_workers = (unsigned)atoi(argv[i + 1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(queue_fifo_lifo_order),
        cmocka_unit_test(queue_priority_order),
        cmocka_unit_test(queue_maxsize_blocks_put),
        cmocka_unit_test(queue_waiters_served_in_order),
        cmocka_unit_test(queue_nowait_any_thread),
        cmocka_unit_test(queue_task_done_join),
        cmocka_unit_test(queue_shutdown_wakes_getters),
        cmocka_unit_test(queue_shutdown_wakes_putters),
        cmocka_unit_test(queue_shutdown_immediate),
        cmocka_unit_test(queue_cancel_blocked_get_and_put),
        cmocka_unit_test(queue_cancel_races_handoff),
        cmocka_unit_test(queue_timeouts),
        cmocka_unit_test(queue_bad_input),
        cmocka_unit_test(queue_stress_8x8_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
