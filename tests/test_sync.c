/* tests/test_sync.c - the synchronization primitives (corio/sync.h): Lock,
 * Event, Condition, Semaphore/BoundedSemaphore, Barrier, checked against
 * CPython 3.12's asyncio behaviour, and the seed's coroutine-lock example.
 *
 * Every case runs its own runtime (testutil.h): tasks record what they saw
 * (CHECK into a struct checks, or a struct of results) and the case asserts
 * after the run. Order-sensitive cases (FIFO order of waiters, what a wait
 * returns before anything else runs) run on one worker, where ready tasks
 * run strictly in the order they became ready. The races that must lose
 * nothing (a cancellation racing a hand-over, a release, a notify) and the
 * stress cases run many rounds on 2 and 4 workers.
 *
 * White-box: a task "is waiting" once its node is in the primitive's queue,
 * which the cases read under the primitive's spinlock (core/sync.h), so
 * they never guess with sleeps.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corio/corio.h"
#include "corio/sync.h"

#include "sync.h"   /* core/sync.h: the queues, for white-box waiting */
#include "testutil.h"

#define ROUNDS 50            /* race rounds per run (each run repeated on 2 and 4 workers) */
#define STRESS_TASKS 8
#define STRESS_OPS 20000

/* ---- white-box: how many wait ------------------------------------------- */

static size_t qlen(struct corio__spin *s, struct corio__waitq *q)
{
    corio__spin_lock(s);
    size_t n = q->n;
    corio__spin_unlock(s);
    return n;
}

static size_t lock_q(void *p)
{
    struct corio__lock *x = corio__lock_of(p);
    return qlen(&x->spin, &x->wq);
}

static size_t event_q(void *p)
{
    struct corio__event *x = p;
    return qlen(&x->spin, &x->wq);
}

static size_t cond_q(void *p)
{
    struct corio__cond *x = p;
    return qlen(&x->spin, &x->wq);
}

static size_t sem_q(void *p)
{
    struct corio__sem *x = p;
    return qlen(&x->spin, &x->wq);
}

static size_t barrier_q(void *p)
{
    struct corio__barrier *x = p;
    return qlen(&x->spin, &x->wq);
}

/* Yields (then sleeps 1 ms at a time) until @len(@obj) == @want; a failed
 * check after ~5 s. */
static void settle_at(struct checks *ck, size_t (*len)(void *), void *obj, size_t want, int line)
{
    for (int i = 0; i < 5100 && len(obj) != want; i++) {
        if (i < 100)
            corio_yield();
        else
            corio_sleep(CORIO_MSEC);
    }
    size_t got = len(obj);
    check_at(ck, got == want, "queue length settles", line, " (got %lld, want %lld)",
             (long long)got, (long long)want);
}
#define settle(ck, len, obj, want) settle_at((ck), (len), (obj), (want), __LINE__)

/* ---- what the cases share ----------------------------------------------- */

struct ctx {
    struct checks ck;
    corio_lock l;
    corio_event e;
    corio_condition c;
    corio_semaphore s;
    corio_barrier b;
    struct order_log log;    /* one-worker cases only */
    atomic_int go;           /* a race's start signal */
    long counter;            /* under l */
    int items;               /* under c's lock */
    atomic_int holders, max_holders;
    int round;
};

struct waiter {
    struct ctx *c;
    const char *name;
    int rc;
    bool flag;
    corio_task *t;
    void *extra;     /* a case's own */
};

static void spawn_all(struct ctx *c, struct waiter *w, int n, corio_fn fn)
{
    for (int i = 0; i < n; i++) {
        w[i].c = c;
        CHECK_EQ(&c->ck, corio_spawn(&w[i].t, fn, &w[i]), 0);
    }
}

static void await_all(struct waiter *w, int n)
{
    for (int i = 0; i < n; i++) {
        corio_await(w[i].t, NULL);
        corio_task_unref(w[i].t);
        w[i].t = NULL;
    }
}

static const char *const NAMES[] = {"a", "b", "c", "d", "e", "f", "g", "h"};

static void name_all(struct waiter *w, int n)
{
    for (int i = 0; i < n; i++)
        w[i].name = NAMES[i];
}

/* Runs @fn with a fresh struct ctx on @workers workers; asserts its checks. */
static void run_ctx(unsigned workers, corio_fn fn)
{
    struct ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    run_main_checked(workers, fn, c, &c->ck);
    free(c);
}

/* Spins (a bounded while, then yields) until the race's signal. */
static void await_go(struct ctx *c)
{
    for (int i = 0; !atomic_load(&c->go); i++)
        if (i > 100000)
            corio_yield();
}

/* Cancels the waiter given as arg once the round's signal is given. */
static void *canceller(void *arg)
{
    struct waiter *w = arg;
    await_go(w->c);
    corio_task_cancel(w->t, NULL);
    return NULL;
}

/* ==== Lock ================================================================= */

static void *lock_waiter(void *arg)
{
    struct waiter *w = arg;
    w->rc = corio_lock_acquire(&w->c->l);
    if (w->rc == 0) {
        log_word(&w->c->log, w->name);
        corio_yield();   /* hold it a step: the others stay queued */
        CHECK_EQ(&w->c->ck, corio_lock_release(&w->c->l), 0);
    }
    return NULL;
}

static void *lock_basic_main(void *arg)
{
    struct ctx *c = arg;
    CHECK_EQ(&c->ck, corio_lock_init(&c->l), 0);
    CHECK(&c->ck, !corio_lock_locked(&c->l));
    CHECK_EQ(&c->ck, corio_lock_acquire(&c->l), 0);
    CHECK(&c->ck, corio_lock_locked(&c->l));
    CHECK_EQ(&c->ck, corio_lock_release(&c->l), 0);
    CHECK(&c->ck, !corio_lock_locked(&c->l));
    /* asyncio: RuntimeError('Lock is not acquired.') */
    CHECK_EQ(&c->ck, corio_lock_release(&c->l), -EINVAL);
    CHECK_EQ(&c->ck, corio_lock_acquire_timeout(&c->l, 0), 0);   /* free: no wait */
    CHECK_EQ(&c->ck, corio_lock_release(&c->l), 0);
    CHECK_EQ(&c->ck, corio_lock_close(&c->l), 0);
    return NULL;
}

static void sync_lock_acquire_release(void **state)
{
    (void)state;
    run_ctx(1, lock_basic_main);
}

static void *lock_fifo_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w[4] = {{0}};
    name_all(w, 4);
    corio_lock_init(&c->l);
    CHECK_EQ(&c->ck, corio_lock_acquire(&c->l), 0);
    spawn_all(c, w, 4, lock_waiter);
    settle(&c->ck, lock_q, &c->l, 4);
    CHECK_EQ(&c->ck, corio_lock_release(&c->l), 0);
    /* Handed to a: the lock stays held, and main queues behind d. */
    CHECK(&c->ck, corio_lock_locked(&c->l));
    CHECK_EQ(&c->ck, corio_lock_acquire(&c->l), 0);
    log_word(&c->log, "main");
    CHECK_EQ(&c->ck, corio_lock_release(&c->l), 0);
    await_all(w, 4);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(&c->ck, w[i].rc, 0);
    CHECK_EQ(&c->ck, corio_lock_close(&c->l), 0);
    return NULL;
}

static void sync_lock_fifo_no_barging(void **state)
{
    struct ctx c = {0};
    (void)state;
    run_main_checked(1, lock_fifo_main, &c, &c.ck);
    assert_string_equal(c.log.buf, "a b c d main");
}

static void *lock_cancel_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w[3] = {{0}};
    name_all(w, 3);
    corio_lock_init(&c->l);
    corio_lock_acquire(&c->l);
    spawn_all(c, w, 3, lock_waiter);
    settle(&c->ck, lock_q, &c->l, 3);
    CHECK_EQ(&c->ck, corio_task_cancel(w[1].t, NULL), 1);
    settle(&c->ck, lock_q, &c->l, 2);   /* b left the queue */
    CHECK_EQ(&c->ck, corio_lock_release(&c->l), 0);
    await_all(w, 3);
    CHECK_EQ(&c->ck, w[0].rc, 0);
    CHECK_EQ(&c->ck, w[1].rc, -ECANCELED);
    CHECK_EQ(&c->ck, w[2].rc, 0);
    CHECK(&c->ck, !corio_lock_locked(&c->l));
    CHECK_EQ(&c->ck, corio_lock_close(&c->l), 0);
    return NULL;
}

static void sync_lock_cancel_waiter_removed(void **state)
{
    struct ctx c = {0};
    (void)state;
    run_main_checked(1, lock_cancel_main, &c, &c.ck);
    assert_string_equal(c.log.buf, "a c");
}

/* A waiter that counts what it got (many workers: no log). */
static void *lock_counter(void *arg)
{
    struct waiter *w = arg;
    w->rc = corio_lock_acquire(&w->c->l);
    if (w->rc == 0) {
        w->c->counter++;
        CHECK_EQ(&w->c->ck, corio_lock_release(&w->c->l), 0);
    }
    return NULL;
}

static void *lock_race_main(void *arg)
{
    struct ctx *c = arg;
    corio_lock_init(&c->l);
    for (int r = 0; r < ROUNDS; r++) {
        struct waiter w[2] = {{0}};
        corio_task *k = NULL;
        c->counter = 0;
        atomic_store(&c->go, 0);
        corio_lock_acquire(&c->l);
        spawn_all(c, w, 2, lock_counter);
        settle(&c->ck, lock_q, &c->l, 2);
        w[0].c = c;
        CHECK_EQ(&c->ck, corio_spawn(&k, canceller, &w[0]), 0);
        atomic_store(&c->go, 1);
        CHECK_EQ(&c->ck, corio_lock_release(&c->l), 0);   /* races the cancel */
        corio_await(k, NULL);   /* first: it reads w[0].t, which await_all() clears */
        corio_task_unref(k);
        await_all(w, 2);
        /* Nothing lost: the other waiter got it, whatever the first did. */
        CHECK_EQ(&c->ck, w[1].rc, 0);
        CHECK(&c->ck, w[0].rc == 0 || w[0].rc == -ECANCELED);
        CHECK_EQ(&c->ck, corio_lock_acquire(&c->l), 0);
        CHECK_EQ(&c->ck, c->counter, 1 + (w[0].rc == 0));
        CHECK_EQ(&c->ck, corio_lock_release(&c->l), 0);
        CHECK_EQ(&c->ck, lock_q(&c->l), 0);
    }
    CHECK(&c->ck, !corio_lock_locked(&c->l));
    CHECK_EQ(&c->ck, corio_lock_close(&c->l), 0);
    return NULL;
}

static void lock_race_body(unsigned workers)
{
    struct ctx c = {0};
    run_main_checked(workers, lock_race_main, &c, &c.ck);
}

static void sync_lock_cancel_races_handover(void **state)
{
    (void)state;
    on_each_worker_count(lock_race_body);
}

static void *lock_timed_waiter(void *arg)
{
    struct waiter *w = arg;
    uint64_t t0 = corio_time_ns();
    w->rc = corio_lock_acquire_timeout(&w->c->l, 20 * CORIO_MSEC);
    w->flag = corio_time_ns() - t0 >= 20 * CORIO_MSEC;
    if (w->rc == -ETIMEDOUT) {
        /* The deadline's cancellation is used up: the next await is fine. */
        CHECK_EQ(&w->c->ck, corio_task_cancelling(corio_current_task()), 0);
        CHECK_EQ(&w->c->ck, corio_yield(), 0);
    }
    if (w->rc == 0)
        corio_lock_release(&w->c->l);
    return NULL;
}

static void *lock_long_waiter(void *arg)
{
    struct waiter *w = arg;
    w->rc = corio_lock_acquire_timeout(&w->c->l, 10 * CORIO_SEC);
    if (w->rc == 0)
        corio_lock_release(&w->c->l);
    return NULL;
}

static void *lock_timeout_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w = {0}, v = {0};
    corio_lock_init(&c->l);
    CHECK_EQ(&c->ck, corio_lock_acquire_timeout(&c->l, -1), -EINVAL);
    corio_lock_acquire(&c->l);
    spawn_all(c, &w, 1, lock_timed_waiter);
    await_all(&w, 1);
    CHECK_EQ(&c->ck, w.rc, -ETIMEDOUT);
    CHECK(&c->ck, w.flag);
    CHECK_EQ(&c->ck, lock_q(&c->l), 0);
    CHECK(&c->ck, corio_lock_locked(&c->l));   /* still main's */
    /* Released before the deadline: acquired. */
    spawn_all(c, &v, 1, lock_long_waiter);
    settle(&c->ck, lock_q, &c->l, 1);
    corio_lock_release(&c->l);
    await_all(&v, 1);
    CHECK_EQ(&c->ck, v.rc, 0);
    CHECK_EQ(&c->ck, corio_lock_close(&c->l), 0);
    return NULL;
}

static void sync_lock_timeout(void **state)
{
    (void)state;
    run_ctx(1, lock_timeout_main);
    run_ctx(2, lock_timeout_main);
}

static void *lock_close_busy_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w = {0};
    corio_lock_init(&c->l);
    corio_lock_acquire(&c->l);
    spawn_all(c, &w, 1, lock_waiter);
    settle(&c->ck, lock_q, &c->l, 1);
    CHECK_EQ(&c->ck, corio_lock_close(&c->l), -EBUSY);
    corio_lock_release(&c->l);
    await_all(&w, 1);
    CHECK_EQ(&c->ck, corio_lock_close(&c->l), 0);
    CHECK_EQ(&c->ck, corio_lock_acquire(&c->l), -EINVAL);
    return NULL;
}

static void sync_lock_bad_input(void **state)
{
    corio_lock l;
    (void)state;
    assert_int_equal(corio_lock_init(NULL), -EINVAL);
    assert_int_equal(corio_lock_close(NULL), -EINVAL);
    assert_int_equal(corio_lock_acquire(NULL), -EINVAL);
    assert_int_equal(corio_lock_acquire_timeout(NULL, 0), -EINVAL);
    assert_int_equal(corio_lock_release(NULL), -EINVAL);
    assert_false(corio_lock_locked(NULL));
    memset(&l, 0, sizeof l);   /* never initialized */
    assert_int_equal(corio_lock_acquire(&l), -EINVAL);
    assert_int_equal(corio_lock_release(&l), -EINVAL);
    assert_int_equal(corio_lock_close(&l), -EINVAL);
    /* Outside a task: only what needs no wait. */
    assert_int_equal(corio_lock_init(&l), 0);
    assert_int_equal(corio_lock_acquire(&l), 0);
    assert_int_equal(corio_lock_acquire(&l), -EPERM);
    assert_int_equal(corio_lock_acquire_timeout(&l, CORIO_SEC), -EPERM);
    assert_int_equal(corio_lock_release(&l), 0);
    assert_int_equal(corio_lock_release(&l), -EINVAL);
    assert_int_equal(corio_lock_close(&l), 0);
    /* After close. */
    assert_int_equal(corio_lock_acquire(&l), -EINVAL);
    assert_int_equal(corio_lock_release(&l), -EINVAL);
    assert_int_equal(corio_lock_close(&l), -EINVAL);
    assert_false(corio_lock_locked(&l));
    run_ctx(1, lock_close_busy_main);
}

/* CORIO_WITH_LOCK: every way out of the body releases. */
static int guarded_return(struct ctx *c)
{
    int rc;
    CORIO_WITH_LOCK(&c->l, rc) {
        CHECK(&c->ck, corio_lock_locked(&c->l));
        return 7;
    }
    return rc;
}

static void *lock_guarded_waiter(void *arg)
{
    struct waiter *w = arg;
    int rc;
    CORIO_WITH_LOCK(&w->c->l, rc) {
        w->flag = true;   /* must not run: cancelled */
    }
    w->rc = rc;
    return NULL;
}

static void *lock_guard_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w = {0};
    int rc = 1, runs = 0;
    corio_lock_init(&c->l);
    CORIO_WITH_LOCK(&c->l, rc) {
        runs++;
        CHECK(&c->ck, corio_lock_locked(&c->l));
    }
    CHECK_EQ(&c->ck, rc, 0);
    CHECK_EQ(&c->ck, runs, 1);
    CHECK(&c->ck, !corio_lock_locked(&c->l));
    CORIO_WITH_LOCK(&c->l, rc) {
        break;
    }
    CHECK(&c->ck, !corio_lock_locked(&c->l));
    CHECK_EQ(&c->ck, guarded_return(c), 7);
    CHECK(&c->ck, !corio_lock_locked(&c->l));
    /* Nested guards on two locks. */
    corio_lock other;
    corio_lock_init(&other);
    int rc2 = 1;
    CORIO_WITH_LOCK(&c->l, rc) {
        CORIO_WITH_LOCK(&other, rc2) {
            CHECK(&c->ck, corio_lock_locked(&c->l) && corio_lock_locked(&other));
        }
        CHECK(&c->ck, !corio_lock_locked(&other));
    }
    CHECK_EQ(&c->ck, rc2, 0);
    CHECK(&c->ck, !corio_lock_locked(&c->l));
    corio_lock_close(&other);
    /* A cancelled acquire skips the body. */
    corio_lock_acquire(&c->l);
    spawn_all(c, &w, 1, lock_guarded_waiter);
    settle(&c->ck, lock_q, &c->l, 1);
    corio_task_cancel(w.t, NULL);
    await_all(&w, 1);
    CHECK_EQ(&c->ck, w.rc, -ECANCELED);
    CHECK(&c->ck, !w.flag);
    CHECK_EQ(&c->ck, corio_lock_release(&c->l), 0);
    CHECK_EQ(&c->ck, corio_lock_close(&c->l), 0);
    return NULL;
}

static void sync_lock_guard(void **state)
{
    (void)state;
    run_ctx(1, lock_guard_main);
}

static void *lock_stress_task(void *arg)
{
    struct waiter *w = arg;
    for (int i = 0; i < STRESS_OPS; i++) {
        int rc = corio_lock_acquire(&w->c->l);
        if (rc != 0) {
            CHECK_EQ(&w->c->ck, rc, 0);
            return NULL;
        }
        w->c->counter++;
        corio_lock_release(&w->c->l);
        if (i % 1000 == 0)
            corio_yield();
    }
    return NULL;
}

static void *lock_stress_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w[STRESS_TASKS] = {{0}};
    corio_lock_init(&c->l);
    spawn_all(c, w, STRESS_TASKS, lock_stress_task);
    await_all(w, STRESS_TASKS);
    CHECK_EQ(&c->ck, c->counter, (long)STRESS_TASKS * STRESS_OPS);
    CHECK(&c->ck, !corio_lock_locked(&c->l));
    CHECK_EQ(&c->ck, corio_lock_close(&c->l), 0);
    return NULL;
}

static void sync_lock_stress_counter_exact(void **state)
{
    struct ctx c = {0};
    (void)state;
    run_main_checked(4, lock_stress_main, &c, &c.ck);
}

/* ==== Event ================================================================ */

static void *event_waiter(void *arg)
{
    struct waiter *w = arg;
    w->rc = corio_event_wait(&w->c->e);
    if (w->rc == 0 && w->name)
        log_word(&w->c->log, w->name);
    return NULL;
}

static void *logger(void *arg)
{
    struct waiter *w = arg;
    log_word(&w->c->log, w->name);
    return NULL;
}

static void *event_order_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w[3] = {{0}}, other = {.name = "other"};
    name_all(w, 3);
    CHECK_EQ(&c->ck, corio_event_init(&c->e), 0);
    CHECK(&c->ck, !corio_event_is_set(&c->e));
    spawn_all(c, w, 3, event_waiter);
    settle(&c->ck, event_q, &c->e, 3);
    CHECK_EQ(&c->ck, corio_event_set(&c->e), 0);
    CHECK(&c->ck, corio_event_is_set(&c->e));
    CHECK_EQ(&c->ck, corio_event_set(&c->e), 0);   /* already set: nothing */
    /* Cleared before they run: woken waiters still return 0. */
    CHECK_EQ(&c->ck, corio_event_clear(&c->e), 0);
    CHECK(&c->ck, !corio_event_is_set(&c->e));
    await_all(w, 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(&c->ck, w[i].rc, 0);
    /* A set event: wait() returns before anything else runs. */
    corio_event_set(&c->e);
    spawn_all(c, &other, 1, logger);
    CHECK_EQ(&c->ck, corio_event_wait(&c->e), 0);
    CHECK_EQ(&c->ck, corio_event_wait_timeout(&c->e, 0), 0);
    log_word(&c->log, "main");
    await_all(&other, 1);
    CHECK_EQ(&c->ck, corio_event_close(&c->e), 0);
    return NULL;
}

static void sync_event_set_wakes_all_in_order(void **state)
{
    struct ctx c = {0};
    (void)state;
    run_main_checked(1, event_order_main, &c, &c.ck);
    assert_string_equal(c.log.buf, "a b c main other");
}

static void *event_cancel_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w[3] = {{0}};
    corio_event_init(&c->e);
    spawn_all(c, w, 3, event_waiter);
    settle(&c->ck, event_q, &c->e, 3);
    corio_task_cancel(w[1].t, NULL);
    settle(&c->ck, event_q, &c->e, 2);
    CHECK_EQ(&c->ck, corio_event_close(&c->e), -EBUSY);
    corio_event_set(&c->e);
    await_all(w, 3);
    CHECK_EQ(&c->ck, w[0].rc, 0);
    CHECK_EQ(&c->ck, w[1].rc, -ECANCELED);
    CHECK_EQ(&c->ck, w[2].rc, 0);
    CHECK_EQ(&c->ck, corio_event_close(&c->e), 0);
    return NULL;
}

static void sync_event_cancel_waiter_removed(void **state)
{
    (void)state;
    run_ctx(1, event_cancel_main);
    run_ctx(4, event_cancel_main);
}

static void *event_timeout_main(void *arg)
{
    struct ctx *c = arg;
    corio_event_init(&c->e);
    CHECK_EQ(&c->ck, corio_event_wait_timeout(&c->e, -1), -EINVAL);
    uint64_t t0 = corio_time_ns();
    CHECK_EQ(&c->ck, corio_event_wait_timeout(&c->e, 10 * CORIO_MSEC), -ETIMEDOUT);
    CHECK(&c->ck, corio_time_ns() - t0 >= 10 * CORIO_MSEC);
    CHECK_EQ(&c->ck, event_q(&c->e), 0);
    CHECK_EQ(&c->ck, corio_event_wait_timeout(&c->e, 0), -ETIMEDOUT);
    CHECK_EQ(&c->ck, corio_yield(), 0);
    corio_event_set(&c->e);
    CHECK_EQ(&c->ck, corio_event_wait_timeout(&c->e, 10 * CORIO_MSEC), 0);
    CHECK_EQ(&c->ck, corio_event_close(&c->e), 0);
    return NULL;
}

static void sync_event_timeout(void **state)
{
    (void)state;
    run_ctx(1, event_timeout_main);
}

static void *set_from_thread(void *arg)
{
    struct ctx *c = arg;
    CHECK_EQ(&c->ck, corio_event_set(&c->e), 0);
    return NULL;
}

static void *event_thread_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w[4] = {{0}};
    corio_event_init(&c->e);
    spawn_all(c, w, 4, event_waiter);
    settle(&c->ck, event_q, &c->e, 4);
    run_plain_thread(&c->ck, set_from_thread, c);
    await_all(w, 4);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(&c->ck, w[i].rc, 0);
    CHECK_EQ(&c->ck, corio_event_close(&c->e), 0);
    return NULL;
}

static void event_thread_body(unsigned workers)
{
    struct ctx c = {0};
    run_main_checked(workers, event_thread_main, &c, &c.ck);
}

static void sync_event_set_from_plain_thread(void **state)
{
    (void)state;
    on_worker_counts(event_thread_body, 1, 5);
}

static void sync_event_bad_input(void **state)
{
    corio_event e;
    (void)state;
    assert_int_equal(corio_event_init(NULL), -EINVAL);
    assert_int_equal(corio_event_set(NULL), -EINVAL);
    assert_int_equal(corio_event_clear(NULL), -EINVAL);
    assert_int_equal(corio_event_wait(NULL), -EINVAL);
    assert_int_equal(corio_event_wait_timeout(NULL, 0), -EINVAL);
    assert_int_equal(corio_event_close(NULL), -EINVAL);
    assert_false(corio_event_is_set(NULL));
    memset(&e, 0, sizeof e);
    assert_int_equal(corio_event_set(&e), -EINVAL);
    assert_int_equal(corio_event_init(&e), 0);
    assert_int_equal(corio_event_wait(&e), -EPERM);   /* would wait, no task */
    assert_int_equal(corio_event_set(&e), 0);
    assert_int_equal(corio_event_wait(&e), 0);        /* set: no wait needed */
    assert_int_equal(corio_event_close(&e), 0);
    assert_int_equal(corio_event_set(&e), -EINVAL);
    assert_int_equal(corio_event_wait(&e), -EINVAL);
    assert_int_equal(corio_event_close(&e), -EINVAL);
    assert_false(corio_event_is_set(&e));
}

/* ==== Condition ============================================================ */

static void *cond_waiter(void *arg)
{
    struct waiter *w = arg;
    CHECK_EQ(&w->c->ck, corio_condition_acquire(&w->c->c), 0);
    w->rc = corio_condition_wait(&w->c->c);
    w->flag = corio_condition_locked(&w->c->c);   /* held again, always */
    if (w->rc == 0 && w->name)
        log_word(&w->c->log, w->name);
    CHECK_EQ(&w->c->ck, corio_condition_release(&w->c->c), 0);
    return NULL;
}

static void *cond_order_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w[3] = {{0}};
    name_all(w, 3);
    CHECK_EQ(&c->ck, corio_condition_init(&c->c, NULL), 0);
    spawn_all(c, w, 3, cond_waiter);
    settle(&c->ck, cond_q, &c->c, 3);
    CHECK(&c->ck, !corio_condition_locked(&c->c));   /* each released it to wait */
    CHECK_EQ(&c->ck, corio_condition_acquire(&c->c), 0);
    CHECK_EQ(&c->ck, corio_condition_notify(&c->c, 1), 1);
    CHECK_EQ(&c->ck, corio_condition_release(&c->c), 0);
    settle(&c->ck, cond_q, &c->c, 2);
    corio_yield();
    log_word(&c->log, "main");
    CHECK_EQ(&c->ck, corio_condition_acquire(&c->c), 0);
    CHECK_EQ(&c->ck, corio_condition_notify(&c->c, 5), 2);
    CHECK_EQ(&c->ck, corio_condition_notify(&c->c, 1), 0);   /* nobody waits */
    CHECK_EQ(&c->ck, corio_condition_notify_all(&c->c), 0);
    CHECK_EQ(&c->ck, corio_condition_release(&c->c), 0);
    await_all(w, 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(&c->ck, w[i].rc, 0);
        CHECK(&c->ck, w[i].flag);
    }
    CHECK_EQ(&c->ck, corio_condition_close(&c->c), 0);
    return NULL;
}

static void sync_condition_notify_in_order(void **state)
{
    struct ctx c = {0};
    (void)state;
    run_main_checked(1, cond_order_main, &c, &c.ck);
    assert_string_equal(c.log.buf, "a main b c");
}

static void *cond_nolock_main(void *arg)
{
    struct ctx *c = arg;
    corio_condition_init(&c->c, NULL);
    /* asyncio: RuntimeError('cannot wait on un-acquired lock') */
    CHECK_EQ(&c->ck, corio_condition_wait(&c->c), -EINVAL);
    CHECK_EQ(&c->ck, corio_condition_wait_timeout(&c->c, CORIO_MSEC), -EINVAL);
    CHECK_EQ(&c->ck, corio_condition_wait_for(&c->c, NULL, NULL), -EINVAL);
    CHECK_EQ(&c->ck, corio_condition_notify(&c->c, 1), -EINVAL);
    CHECK_EQ(&c->ck, corio_condition_notify_all(&c->c), -EINVAL);
    CHECK_EQ(&c->ck, corio_condition_release(&c->c), -EINVAL);
    CHECK_EQ(&c->ck, cond_q(&c->c), 0);
    CHECK_EQ(&c->ck, corio_condition_close(&c->c), 0);
    return NULL;
}

static void sync_condition_wait_without_lock(void **state)
{
    (void)state;
    run_ctx(1, cond_nolock_main);
}

static bool three_items(void *arg)
{
    return ((struct ctx *)arg)->items >= 3;
}

static void *cond_consumer(void *arg)
{
    struct waiter *w = arg;
    struct ctx *c = w->c;
    int rc;
    CORIO_WITH_LOCK(corio_condition_lock(&c->c), rc) {
        w->rc = corio_condition_wait_for(&c->c, three_items, c);
        w->flag = c->items >= 3 && corio_condition_locked(&c->c);
    }
    CHECK_EQ(&c->ck, rc, 0);
    return NULL;
}

static void *cond_wait_for_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w[2] = {{0}};
    corio_lock lock;
    corio_lock_init(&lock);
    CHECK_EQ(&c->ck, corio_condition_init(&c->c, &lock), 0);
    CHECK_PTR(&c->ck, corio_condition_lock(&c->c), &lock);
    spawn_all(c, w, 2, cond_consumer);
    for (int i = 0; i < 3; i++) {
        settle(&c->ck, cond_q, &c->c, 2);
        CHECK_EQ(&c->ck, corio_lock_acquire(&lock), 0);   /* the same lock */
        c->items++;
        CHECK_EQ(&c->ck, corio_condition_notify_all(&c->c), 2);
        corio_lock_release(&lock);
    }
    await_all(w, 2);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(&c->ck, w[i].rc, 0);
        CHECK(&c->ck, w[i].flag);
    }
    /* Already true: returns at once (with the lock held). */
    corio_lock_acquire(&lock);
    CHECK_EQ(&c->ck, corio_condition_wait_for(&c->c, three_items, c), 0);
    CHECK_EQ(&c->ck, corio_condition_wait_for_timeout(&c->c, three_items, c, 0), 0);
    corio_lock_release(&lock);
    CHECK_EQ(&c->ck, corio_condition_close(&c->c), 0);
    CHECK_EQ(&c->ck, corio_lock_close(&lock), 0);   /* not the condition's to close */
    return NULL;
}

static void cond_wait_for_body(unsigned workers)
{
    struct ctx c = {0};
    run_main_checked(workers, cond_wait_for_main, &c, &c.ck);
}

static void sync_condition_wait_for_predicate(void **state)
{
    (void)state;
    on_worker_counts(cond_wait_for_body, 1, 5);
}

static void *cond_cancel_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w = {0};
    corio_condition_init(&c->c, NULL);
    spawn_all(c, &w, 1, cond_waiter);
    settle(&c->ck, cond_q, &c->c, 1);
    corio_condition_acquire(&c->c);
    corio_task_cancel(w.t, NULL);
    /* Cancelled, but it must take the lock again first: main holds it. */
    settle(&c->ck, lock_q, corio_condition_lock(&c->c), 1);
    yield_n(3);
    CHECK(&c->ck, !corio_task_done(w.t));
    CHECK_EQ(&c->ck, cond_q(&c->c), 0);
    CHECK_EQ(&c->ck, corio_condition_close(&c->c), -EBUSY);   /* its own lock has a waiter */
    corio_condition_release(&c->c);
    await_all(&w, 1);
    CHECK_EQ(&c->ck, w.rc, -ECANCELED);
    CHECK(&c->ck, w.flag);
    CHECK(&c->ck, !corio_condition_locked(&c->c));
    CHECK_EQ(&c->ck, corio_condition_close(&c->c), 0);
    return NULL;
}

static void sync_condition_cancel_reacquires_lock(void **state)
{
    (void)state;
    run_ctx(1, cond_cancel_main);
    run_ctx(2, cond_cancel_main);
}

static void *cond_race_main(void *arg)
{
    struct ctx *c = arg;
    corio_condition_init(&c->c, NULL);
    for (int r = 0; r < ROUNDS; r++) {
        struct waiter w[2] = {{0}};
        corio_task *k = NULL;
        atomic_store(&c->go, 0);
        spawn_all(c, &w[0], 1, cond_waiter);
        settle(&c->ck, cond_q, &c->c, 1);
        spawn_all(c, &w[1], 1, cond_waiter);
        settle(&c->ck, cond_q, &c->c, 2);
        w[0].c = c;
        CHECK_EQ(&c->ck, corio_spawn(&k, canceller, &w[0]), 0);
        corio_condition_acquire(&c->c);
        atomic_store(&c->go, 1);
        int n = corio_condition_notify(&c->c, 1);   /* races the cancel of w[0] */
        CHECK_EQ(&c->ck, n, 1);
        corio_condition_release(&c->c);
        corio_await(w[0].t, NULL);
        corio_await(k, NULL);
        corio_task_unref(k);
        if (w[0].rc == 0) {
            /* w[0] had the notification: w[1] still needs one. */
            corio_condition_acquire(&c->c);
            corio_condition_notify(&c->c, 1);
            corio_condition_release(&c->c);
        }
        /* Else the one notification reached w[1], directly or passed on. */
        CHECK_EQ(&c->ck, corio_wait_for(w[1].t, 5 * CORIO_SEC, NULL), 0);
        await_all(w, 2);
        CHECK(&c->ck, w[0].rc == 0 || w[0].rc == -ECANCELED);
        CHECK_EQ(&c->ck, w[1].rc, 0);
        CHECK(&c->ck, w[0].flag && w[1].flag);
        CHECK_EQ(&c->ck, cond_q(&c->c), 0);
    }
    CHECK_EQ(&c->ck, corio_condition_close(&c->c), 0);
    return NULL;
}

static void cond_race_body(unsigned workers)
{
    struct ctx c = {0};
    run_main_checked(workers, cond_race_main, &c, &c.ck);
}

static void sync_condition_cancel_passes_notification(void **state)
{
    (void)state;
    on_each_worker_count(cond_race_body);
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void *cond_timeout_main(void *arg)
{
    struct ctx *c = arg;
    corio_condition_init(&c->c, NULL);
    CHECK_EQ(&c->ck, corio_condition_acquire(&c->c), 0);
    CHECK_EQ(&c->ck, corio_condition_wait_timeout(&c->c, -1), -EINVAL);
    CHECK_EQ(&c->ck, corio_condition_wait_for_timeout(&c->c, never, NULL, -1), -EINVAL);
    uint64_t t0 = corio_time_ns();
    CHECK_EQ(&c->ck, corio_condition_wait_timeout(&c->c, 10 * CORIO_MSEC), -ETIMEDOUT);
    CHECK(&c->ck, corio_time_ns() - t0 >= 10 * CORIO_MSEC);
    CHECK(&c->ck, corio_condition_locked(&c->c));   /* held again */
    CHECK_EQ(&c->ck, corio_condition_wait_for_timeout(&c->c, never, NULL, 5 * CORIO_MSEC),
             -ETIMEDOUT);
    CHECK(&c->ck, corio_condition_locked(&c->c));
    CHECK_EQ(&c->ck, corio_yield(), 0);
    CHECK_EQ(&c->ck, cond_q(&c->c), 0);
    CHECK_EQ(&c->ck, corio_condition_release(&c->c), 0);
    CHECK_EQ(&c->ck, corio_condition_close(&c->c), 0);
    return NULL;
}

static void sync_condition_timeout(void **state)
{
    (void)state;
    run_ctx(1, cond_timeout_main);
}

static void *cond_close_busy_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w = {0};
    corio_condition_init(&c->c, NULL);
    spawn_all(c, &w, 1, cond_waiter);
    settle(&c->ck, cond_q, &c->c, 1);
    CHECK_EQ(&c->ck, corio_condition_close(&c->c), -EBUSY);
    corio_condition_acquire(&c->c);
    corio_condition_notify_all(&c->c);
    corio_condition_release(&c->c);
    await_all(&w, 1);
    CHECK_EQ(&c->ck, corio_condition_close(&c->c), 0);
    return NULL;
}

static void sync_condition_bad_input(void **state)
{
    corio_condition c;
    corio_lock l;
    (void)state;
    memset(&l, 0, sizeof l);
    assert_int_equal(corio_condition_init(NULL, NULL), -EINVAL);
    assert_int_equal(corio_condition_init(&c, &l), -EINVAL);   /* not a lock */
    assert_int_equal(corio_condition_close(NULL), -EINVAL);
    assert_int_equal(corio_condition_acquire(NULL), -EINVAL);
    assert_int_equal(corio_condition_release(NULL), -EINVAL);
    assert_int_equal(corio_condition_wait(NULL), -EINVAL);
    assert_int_equal(corio_condition_wait_for(NULL, never, NULL), -EINVAL);
    assert_int_equal(corio_condition_notify(NULL, 1), -EINVAL);
    assert_int_equal(corio_condition_notify_all(NULL), -EINVAL);
    assert_null(corio_condition_lock(NULL));
    assert_false(corio_condition_locked(NULL));
    assert_int_equal(corio_condition_init(&c, NULL), 0);
    assert_int_equal(corio_condition_wait(&c), -EPERM);
    assert_int_equal(corio_condition_acquire(&c), 0);
    assert_int_equal(corio_condition_wait_for(&c, NULL, NULL), -EINVAL);
    assert_int_equal(corio_condition_notify(&c, 1), 0);
    assert_int_equal(corio_condition_release(&c), 0);
    assert_int_equal(corio_condition_close(&c), 0);
    assert_int_equal(corio_condition_acquire(&c), -EINVAL);
    assert_int_equal(corio_condition_notify(&c, 1), -EINVAL);
    assert_int_equal(corio_condition_close(&c), -EINVAL);
    run_ctx(1, cond_close_busy_main);
}

/* ==== Semaphore ============================================================ */

static void *sem_waiter(void *arg)
{
    struct waiter *w = arg;
    w->rc = corio_semaphore_acquire(&w->c->s);
    if (w->rc == 0) {
        if (w->name)
            log_word(&w->c->log, w->name);
        corio_yield();
        CHECK_EQ(&w->c->ck, corio_semaphore_release(&w->c->s), 0);
    }
    return NULL;
}

static void *sem_basic_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w[3] = {{0}};
    name_all(w, 3);
    CHECK_EQ(&c->ck, corio_semaphore_init(&c->s, 2), 0);
    CHECK(&c->ck, !corio_semaphore_locked(&c->s));
    CHECK_EQ(&c->ck, corio_semaphore_acquire(&c->s), 0);
    CHECK_EQ(&c->ck, corio_semaphore_acquire(&c->s), 0);
    CHECK(&c->ck, corio_semaphore_locked(&c->s));
    CHECK_EQ(&c->ck, corio_semaphore_value(&c->s), 0);
    spawn_all(c, w, 3, sem_waiter);
    settle(&c->ck, sem_q, &c->s, 3);
    CHECK_EQ(&c->ck, corio_semaphore_release(&c->s), 0);   /* handed to a */
    CHECK_EQ(&c->ck, corio_semaphore_value(&c->s), 0);
    CHECK(&c->ck, corio_semaphore_locked(&c->s));
    /* No barging: main queues behind b and c, and gets c's permit. */
    CHECK_EQ(&c->ck, corio_semaphore_acquire(&c->s), 0);
    log_word(&c->log, "main");
    await_all(w, 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(&c->ck, w[i].rc, 0);
    CHECK_EQ(&c->ck, corio_semaphore_value(&c->s), 0);
    CHECK_EQ(&c->ck, corio_semaphore_release(&c->s), 0);
    CHECK_EQ(&c->ck, corio_semaphore_release(&c->s), 0);
    CHECK_EQ(&c->ck, corio_semaphore_value(&c->s), 2);
    CHECK_EQ(&c->ck, corio_semaphore_release(&c->s), 0);   /* unbounded: fine */
    CHECK_EQ(&c->ck, corio_semaphore_value(&c->s), 3);
    CHECK_EQ(&c->ck, corio_semaphore_close(&c->s), 0);
    return NULL;
}

static void sync_semaphore_fifo_no_barging(void **state)
{
    struct ctx c = {0};
    (void)state;
    run_main_checked(1, sem_basic_main, &c, &c.ck);
    assert_string_equal(c.log.buf, "a b c main");
}

static void sync_bounded_semaphore_overflow(void **state)
{
    corio_semaphore s;
    (void)state;
    assert_int_equal(corio_bounded_semaphore_init(&s, 1), 0);
    /* asyncio: ValueError('BoundedSemaphore released too many times') */
    assert_int_equal(corio_semaphore_release(&s), -EOVERFLOW);
    assert_int_equal(corio_semaphore_acquire(&s), 0);
    assert_int_equal(corio_semaphore_value(&s), 0);
    assert_int_equal(corio_semaphore_release(&s), 0);
    assert_int_equal(corio_semaphore_release(&s), -EOVERFLOW);
    assert_int_equal(corio_semaphore_value(&s), 1);
    assert_int_equal(corio_semaphore_close(&s), 0);
    assert_int_equal(corio_bounded_semaphore_init(&s, 0), 0);
    assert_int_equal(corio_semaphore_release(&s), -EOVERFLOW);
    assert_true(corio_semaphore_locked(&s));
    assert_int_equal(corio_semaphore_close(&s), 0);
    assert_int_equal(corio_semaphore_init(&s, INT64_MAX), 0);
    assert_int_equal(corio_semaphore_release(&s), -EOVERFLOW);
    assert_int_equal(corio_semaphore_close(&s), 0);
}

static void *sem_cancel_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w[3] = {{0}};
    corio_semaphore_init(&c->s, 0);
    spawn_all(c, w, 3, sem_waiter);
    settle(&c->ck, sem_q, &c->s, 3);
    corio_task_cancel(w[0].t, NULL);
    settle(&c->ck, sem_q, &c->s, 2);
    CHECK_EQ(&c->ck, corio_semaphore_close(&c->s), -EBUSY);
    corio_semaphore_release(&c->s);
    await_all(w, 3);
    CHECK_EQ(&c->ck, w[0].rc, -ECANCELED);
    CHECK_EQ(&c->ck, w[1].rc, 0);
    CHECK_EQ(&c->ck, w[2].rc, 0);
    CHECK_EQ(&c->ck, corio_semaphore_value(&c->s), 1);
    CHECK_EQ(&c->ck, corio_semaphore_close(&c->s), 0);
    return NULL;
}

static void sync_semaphore_cancel_waiter_removed(void **state)
{
    (void)state;
    run_ctx(1, sem_cancel_main);
    run_ctx(4, sem_cancel_main);
}

static void *sem_timed_waiter(void *arg)
{
    struct waiter *w = arg;
    w->rc = corio_semaphore_acquire_timeout(&w->c->s, 5 * CORIO_SEC);
    if (w->rc == 0)
        corio_semaphore_release(&w->c->s);
    return NULL;
}

static void *sem_race_main(void *arg)
{
    struct ctx *c = arg;
    corio_semaphore_init(&c->s, 0);
    for (int r = 0; r < ROUNDS; r++) {
        struct waiter w[2] = {{0}};
        corio_task *k = NULL;
        atomic_store(&c->go, 0);
        spawn_all(c, &w[0], 1, sem_waiter);
        spawn_all(c, &w[1], 1, sem_timed_waiter);
        settle(&c->ck, sem_q, &c->s, 2);
        w[0].c = c;
        CHECK_EQ(&c->ck, corio_spawn(&k, canceller, &w[0]), 0);
        atomic_store(&c->go, 1);
        CHECK_EQ(&c->ck, corio_semaphore_release(&c->s), 0);   /* races the cancel */
        corio_await(k, NULL);   /* first: it reads w[0].t, which await_all() clears */
        corio_task_unref(k);
        await_all(w, 2);
        /* One permit, and it reached w[1] (via w[0] or not): never lost. */
        CHECK(&c->ck, w[0].rc == 0 || w[0].rc == -ECANCELED);
        CHECK_EQ(&c->ck, w[1].rc, 0);
        CHECK_EQ(&c->ck, corio_semaphore_value(&c->s), 1);
        CHECK_EQ(&c->ck, corio_semaphore_acquire(&c->s), 0);   /* back to 0 */
    }
    CHECK_EQ(&c->ck, corio_semaphore_close(&c->s), 0);
    return NULL;
}

static void sem_race_body(unsigned workers)
{
    struct ctx c = {0};
    run_main_checked(workers, sem_race_main, &c, &c.ck);
}

static void sync_semaphore_cancel_races_release(void **state)
{
    (void)state;
    on_each_worker_count(sem_race_body);
}

static void *sem_timeout_main(void *arg)
{
    struct ctx *c = arg;
    corio_semaphore_init(&c->s, 1);
    CHECK_EQ(&c->ck, corio_semaphore_acquire_timeout(&c->s, -1), -EINVAL);
    CHECK_EQ(&c->ck, corio_semaphore_acquire_timeout(&c->s, 0), 0);
    uint64_t t0 = corio_time_ns();
    CHECK_EQ(&c->ck, corio_semaphore_acquire_timeout(&c->s, 10 * CORIO_MSEC), -ETIMEDOUT);
    CHECK(&c->ck, corio_time_ns() - t0 >= 10 * CORIO_MSEC);
    CHECK_EQ(&c->ck, sem_q(&c->s), 0);
    CHECK_EQ(&c->ck, corio_yield(), 0);
    CHECK_EQ(&c->ck, corio_semaphore_release(&c->s), 0);
    CHECK_EQ(&c->ck, corio_semaphore_value(&c->s), 1);
    CHECK_EQ(&c->ck, corio_semaphore_close(&c->s), 0);
    return NULL;
}

static void sync_semaphore_timeout(void **state)
{
    (void)state;
    run_ctx(1, sem_timeout_main);
}

static void *sem_stress_task(void *arg)
{
    struct waiter *w = arg;
    struct ctx *c = w->c;
    for (int i = 0; i < STRESS_OPS / 10; i++) {
        int rc;
        CORIO_WITH_SEMAPHORE(&c->s, rc) {
            int h = atomic_fetch_add(&c->holders, 1) + 1;
            int m = atomic_load(&c->max_holders);
            while (h > m && !atomic_compare_exchange_weak(&c->max_holders, &m, h))
                ;
            if (i % 7 == 0)
                corio_yield();
            atomic_fetch_sub(&c->holders, 1);
        }
        if (rc != 0) {
            CHECK_EQ(&c->ck, rc, 0);
            return NULL;
        }
    }
    return NULL;
}

static void *sem_stress_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w[STRESS_TASKS] = {{0}};
    corio_semaphore_init(&c->s, 3);
    spawn_all(c, w, STRESS_TASKS, sem_stress_task);
    await_all(w, STRESS_TASKS);
    CHECK(&c->ck, atomic_load(&c->max_holders) <= 3);
    CHECK(&c->ck, atomic_load(&c->max_holders) >= 1);
    CHECK_EQ(&c->ck, corio_semaphore_value(&c->s), 3);
    CHECK_EQ(&c->ck, corio_semaphore_close(&c->s), 0);
    return NULL;
}

static void sync_semaphore_stress_never_over_granted(void **state)
{
    struct ctx c = {0};
    (void)state;
    run_main_checked(4, sem_stress_main, &c, &c.ck);
}

static void sync_semaphore_bad_input(void **state)
{
    corio_semaphore s;
    (void)state;
    assert_int_equal(corio_semaphore_init(NULL, 1), -EINVAL);
    assert_int_equal(corio_semaphore_init(&s, -1), -EINVAL);   /* asyncio: ValueError */
    assert_int_equal(corio_bounded_semaphore_init(&s, -1), -EINVAL);
    assert_int_equal(corio_semaphore_acquire(NULL), -EINVAL);
    assert_int_equal(corio_semaphore_acquire_timeout(NULL, 0), -EINVAL);
    assert_int_equal(corio_semaphore_release(NULL), -EINVAL);
    assert_int_equal(corio_semaphore_close(NULL), -EINVAL);
    assert_int_equal(corio_semaphore_value(NULL), -EINVAL);
    assert_false(corio_semaphore_locked(NULL));
    assert_int_equal(corio_semaphore_init(&s, 0), 0);
    assert_int_equal(corio_semaphore_acquire(&s), -EPERM);
    assert_int_equal(corio_semaphore_close(&s), 0);
    assert_int_equal(corio_semaphore_acquire(&s), -EINVAL);
    assert_int_equal(corio_semaphore_release(&s), -EINVAL);
    assert_int_equal(corio_semaphore_close(&s), -EINVAL);
}

/* ==== Barrier ============================================================== */

static void *barrier_waiter(void *arg)
{
    struct waiter *w = arg;
    w->rc = corio_barrier_wait(&w->c->b);
    return NULL;
}

static void *barrier_indices_main(void *arg)
{
    struct ctx *c = arg;
    CHECK_EQ(&c->ck, corio_barrier_init(&c->b, 3), 0);
    CHECK_EQ(&c->ck, corio_barrier_parties(&c->b), 3);
    for (int round = 0; round < 2; round++) {
        struct waiter w[3] = {{0}};
        spawn_all(c, w, 2, barrier_waiter);
        settle(&c->ck, barrier_q, &c->b, 2);
        CHECK_EQ(&c->ck, corio_barrier_n_waiting(&c->b), 2);
        spawn_all(c, &w[2], 1, barrier_waiter);
        await_all(w, 3);
        for (int i = 0; i < 3; i++)
            CHECK_EQ(&c->ck, w[i].rc, i);   /* arrival order, on one worker */
        CHECK_EQ(&c->ck, corio_barrier_n_waiting(&c->b), 0);
        CHECK(&c->ck, !corio_barrier_broken(&c->b));
    }
    CHECK_EQ(&c->ck, corio_barrier_close(&c->b), 0);
    /* One party: passes at once with index 0. */
    corio_barrier_init(&c->b, 1);
    CHECK_EQ(&c->ck, corio_barrier_wait(&c->b), 0);
    CHECK_EQ(&c->ck, corio_barrier_wait(&c->b), 0);
    CHECK_EQ(&c->ck, corio_barrier_close(&c->b), 0);
    return NULL;
}

static void sync_barrier_wait_returns_index(void **state)
{
    (void)state;
    run_ctx(1, barrier_indices_main);
}

static void *barrier_abort_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w[3] = {{0}};
    corio_barrier_init(&c->b, 3);
    spawn_all(c, w, 2, barrier_waiter);
    settle(&c->ck, barrier_q, &c->b, 2);
    CHECK_EQ(&c->ck, corio_barrier_close(&c->b), -EBUSY);
    CHECK_EQ(&c->ck, corio_barrier_abort(&c->b), 0);
    await_all(w, 2);
    CHECK_EQ(&c->ck, w[0].rc, -EPIPE);   /* asyncio: BrokenBarrierError */
    CHECK_EQ(&c->ck, w[1].rc, -EPIPE);
    CHECK(&c->ck, corio_barrier_broken(&c->b));
    CHECK_EQ(&c->ck, corio_barrier_wait(&c->b), -EPIPE);
    CHECK_EQ(&c->ck, corio_barrier_wait_timeout(&c->b, CORIO_SEC), -EPIPE);
    CHECK_EQ(&c->ck, corio_barrier_reset(&c->b), 0);
    CHECK(&c->ck, !corio_barrier_broken(&c->b));
    spawn_all(c, w, 3, barrier_waiter);
    await_all(w, 3);
    CHECK_EQ(&c->ck, w[0].rc + w[1].rc + w[2].rc, 0 + 1 + 2);
    CHECK_EQ(&c->ck, corio_barrier_close(&c->b), 0);
    return NULL;
}

static void sync_barrier_abort_breaks(void **state)
{
    (void)state;
    run_ctx(1, barrier_abort_main);
    run_ctx(4, barrier_abort_main);
}

static void *barrier_reset_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w[3] = {{0}};
    corio_barrier_init(&c->b, 3);
    spawn_all(c, w, 2, barrier_waiter);
    settle(&c->ck, barrier_q, &c->b, 2);
    CHECK_EQ(&c->ck, corio_barrier_reset(&c->b), 0);
    await_all(w, 2);
    CHECK_EQ(&c->ck, w[0].rc, -EPIPE);
    CHECK_EQ(&c->ck, w[1].rc, -EPIPE);
    CHECK(&c->ck, !corio_barrier_broken(&c->b));
    CHECK_EQ(&c->ck, corio_barrier_n_waiting(&c->b), 0);
    spawn_all(c, w, 3, barrier_waiter);
    await_all(w, 3);
    CHECK_EQ(&c->ck, w[0].rc + w[1].rc + w[2].rc, 0 + 1 + 2);
    CHECK_EQ(&c->ck, corio_barrier_close(&c->b), 0);
    return NULL;
}

static void sync_barrier_reset_wakes_waiters(void **state)
{
    (void)state;
    run_ctx(1, barrier_reset_main);
    run_ctx(4, barrier_reset_main);
}

static void *barrier_cancel_main(void *arg)
{
    struct ctx *c = arg;
    struct waiter w[4] = {{0}};
    corio_barrier_init(&c->b, 3);
    spawn_all(c, w, 2, barrier_waiter);
    settle(&c->ck, barrier_q, &c->b, 2);
    corio_task_cancel(w[0].t, NULL);
    corio_await(w[0].t, NULL);
    CHECK_EQ(&c->ck, corio_barrier_n_waiting(&c->b), 1);   /* no longer counted */
    spawn_all(c, &w[2], 2, barrier_waiter);
    await_all(w, 4);
    CHECK_EQ(&c->ck, w[0].rc, -ECANCELED);
    /* asyncio: index = count, and the cancelled one no longer counts, so
     * the next arrival gets its index again. */
    CHECK(&c->ck, w[1].rc == 0 || w[1].rc == 1);   /* 1 on one worker */
    CHECK(&c->ck, (w[2].rc == 1 && w[3].rc == 2) || (w[2].rc == 2 && w[3].rc == 1));
    CHECK(&c->ck, !corio_barrier_broken(&c->b));
    /* Timed out: not counted either. */
    uint64_t t0 = corio_time_ns();
    CHECK_EQ(&c->ck, corio_barrier_wait_timeout(&c->b, -1), -EINVAL);
    CHECK_EQ(&c->ck, corio_barrier_wait_timeout(&c->b, 10 * CORIO_MSEC), -ETIMEDOUT);
    CHECK(&c->ck, corio_time_ns() - t0 >= 10 * CORIO_MSEC);
    CHECK_EQ(&c->ck, corio_barrier_n_waiting(&c->b), 0);
    CHECK_EQ(&c->ck, corio_yield(), 0);
    CHECK_EQ(&c->ck, corio_barrier_close(&c->b), 0);
    return NULL;
}

static void sync_barrier_cancel_and_timeout(void **state)
{
    (void)state;
    run_ctx(1, barrier_cancel_main);
    run_ctx(2, barrier_cancel_main);
}

#define BARRIER_ROUNDS 100

struct barrier_rounds {
    struct ctx *c;
    atomic_uint masks[BARRIER_ROUNDS];
};

static void *barrier_rounds_task(void *arg)
{
    struct waiter *w = arg;
    struct barrier_rounds *br = w->extra;
    for (int r = 0; r < BARRIER_ROUNDS; r++) {
        int rc = corio_barrier_wait(&w->c->b);
        if (rc < 0 || rc >= 4) {
            CHECK(&w->c->ck, rc >= 0 && rc < 4);
            corio_barrier_abort(&w->c->b);   /* let the others out */
            return NULL;
        }
        atomic_fetch_or(&br->masks[r], 1u << rc);
    }
    return NULL;
}

static void *barrier_rounds_main(void *arg)
{
    struct ctx *c = arg;
    struct barrier_rounds br = {.c = c};
    struct waiter w[4] = {{0}};
    for (int i = 0; i < 4; i++)
        w[i].extra = &br;
    corio_barrier_init(&c->b, 4);
    spawn_all(c, w, 4, barrier_rounds_task);
    await_all(w, 4);
    for (int r = 0; r < BARRIER_ROUNDS; r++)
        CHECK_EQ(&c->ck, atomic_load(&br.masks[r]), 0xf);   /* each index once a round */
    CHECK_EQ(&c->ck, corio_barrier_close(&c->b), 0);
    return NULL;
}

static void barrier_rounds_body(unsigned workers)
{
    struct ctx c = {0};
    run_main_checked(workers, barrier_rounds_main, &c, &c.ck);
}

static void sync_barrier_rounds_across_workers(void **state)
{
    (void)state;
    on_worker_counts(barrier_rounds_body, 1, 5);
}

static void sync_barrier_bad_input(void **state)
{
    corio_barrier b;
    (void)state;
    assert_int_equal(corio_barrier_init(NULL, 1), -EINVAL);
    assert_int_equal(corio_barrier_init(&b, 0), -EINVAL);   /* asyncio: ValueError */
    assert_int_equal(corio_barrier_wait(NULL), -EINVAL);
    assert_int_equal(corio_barrier_wait_timeout(NULL, 0), -EINVAL);
    assert_int_equal(corio_barrier_reset(NULL), -EINVAL);
    assert_int_equal(corio_barrier_abort(NULL), -EINVAL);
    assert_int_equal(corio_barrier_close(NULL), -EINVAL);
    assert_int_equal(corio_barrier_parties(NULL), 0);
    assert_int_equal(corio_barrier_n_waiting(NULL), 0);
    assert_false(corio_barrier_broken(NULL));
    assert_int_equal(corio_barrier_init(&b, 2), 0);
    assert_int_equal(corio_barrier_wait(&b), -EPERM);
    assert_int_equal(corio_barrier_close(&b), 0);
    assert_int_equal(corio_barrier_wait(&b), -EINVAL);
    assert_int_equal(corio_barrier_abort(&b), -EINVAL);
    assert_int_equal(corio_barrier_close(&b), -EINVAL);
    assert_int_equal(corio_barrier_parties(&b), 0);
}

/* ==== woken and cancelled at once (CORIO__WQ_WOKEN_CANCELLED) =============== */

/* A plain thread plays the waker with the primitive's spinlock held: it
 * cancels the first waiter, gives it time to see the cancellation and
 * block on that spinlock (inside corio__wq_wait), then takes it off the
 * queue as the primitive's release/notify would, so the waiter finds itself
 * woken after it was cancelled. Whatever the timing, nothing may be lost:
 * the second waiter is served either way. */
struct handover {
    struct ctx *c;
    struct corio__spin *spin;
    struct corio__waitq *q;
    corio_task *victim;
    bool is_lock;     /* the lock's state word: hand-over keeps LOCKED */
};

static void *handover_thread(void *arg)
{
    struct handover *h = arg;
    struct corio__wq_batch b;
    corio__wq_batch_init(&b);
    corio__spin_lock(h->spin);
    corio_task_cancel(h->victim, NULL);
    usleep(20000);
    struct corio__wq_node *n = corio__wq_pop_to(h->q, &b);
    CHECK(&h->c->ck, n != NULL);
    if (h->is_lock && corio__wq_empty(h->q))
        atomic_store(&corio__lock_of(&h->c->l)->state, CORIO__LOCK_LOCKED);
    corio__spin_unlock(h->spin);
    corio__wq_wake_batch(&b);
    return NULL;
}

static void *woken_cancel_main(void *arg)
{
    struct ctx *c = arg;
    int cancelled = 0;
    corio_lock_init(&c->l);
    corio_semaphore_init(&c->s, 0);
    corio_condition_init(&c->c, NULL);
    for (int kind = 0; kind < 3; kind++) {
        for (int r = 0; r < 3; r++) {
            struct waiter w[2] = {{0}};
            struct corio__lock *lk = corio__lock_of(&c->l);
            struct corio__sem *sm = (struct corio__sem *)(void *)&c->s;
            struct corio__cond *cd = (struct corio__cond *)(void *)&c->c;
            struct handover h = {.c = c, .is_lock = kind == 0};
            corio_fn fn = kind == 0 ? lock_waiter : kind == 1 ? sem_waiter : cond_waiter;
            size_t (*len)(void *) = kind == 0 ? lock_q : kind == 1 ? sem_q : cond_q;
            void *obj = kind == 0 ? (void *)&c->l : kind == 1 ? (void *)&c->s : (void *)&c->c;
            h.spin = kind == 0 ? &lk->spin : kind == 1 ? &sm->spin : &cd->spin;
            h.q = kind == 0 ? &lk->wq : kind == 1 ? &sm->wq : &cd->wq;
            if (kind == 0)
                corio_lock_acquire(&c->l);
            spawn_all(c, &w[0], 1, fn);
            settle(&c->ck, len, obj, 1);
            spawn_all(c, &w[1], 1, fn);
            settle(&c->ck, len, obj, 2);
            h.victim = w[0].t;
            if (kind == 2)
                corio_condition_acquire(&c->c);   /* notify with the lock held */
            run_plain_thread(&c->ck, handover_thread, &h);
            if (kind == 2)
                corio_condition_release(&c->c);
            corio_await(w[0].t, NULL);
            cancelled += w[0].rc == -ECANCELED;
            if (w[0].rc == 0 && kind == 2) {
                corio_condition_acquire(&c->c);
                corio_condition_notify(&c->c, 1);
                corio_condition_release(&c->c);
            }
            /* The grant went on to w[1]. */
            CHECK_EQ(&c->ck, corio_wait_for(w[1].t, 5 * CORIO_SEC, NULL), 0);
            await_all(w, 2);
            CHECK_EQ(&c->ck, w[1].rc, 0);
            CHECK(&c->ck, w[0].rc == 0 || w[0].rc == -ECANCELED);
            if (kind == 1)   /* the thread's grant came back: take it */
                CHECK_EQ(&c->ck, corio_semaphore_acquire(&c->s), 0);
            if (kind == 2)
                CHECK(&c->ck, w[0].flag && w[1].flag);
        }
    }
    CHECK(&c->ck, !corio_lock_locked(&c->l));
    CHECK_EQ(&c->ck, corio_semaphore_value(&c->s), 0);
    CHECK_EQ(&c->ck, corio_lock_close(&c->l), 0);
    CHECK_EQ(&c->ck, corio_semaphore_close(&c->s), 0);
    CHECK_EQ(&c->ck, corio_condition_close(&c->c), 0);
    /* The timing makes the path near certain; require it at least once. */
    CHECK(&c->ck, cancelled >= 1);
    return NULL;
}

static void sync_woken_cancelled_passes_grant_on(void **state)
{
    (void)state;
    run_ctx(2, woken_cancel_main);
}

/* ==== the seed's example =================================================== */

/* examples/seeds/lock.c prints what async_lock.py prints (seed 002). */
static void sync_seed_lock_example(void **state)
{
    static const char expected[] = "lalalalalalalala\n"
                                   "one start\n"
                                   "lalalalalalalala\n"
                                   "----------\n"
                                   "one end\n"
                                   "one ok\n"
                                   "two start\n"
                                   "two ok\n";
    char out[512];
    size_t len = 0, n;
    (void)state;
    FILE *p = popen(CORIO_EXAMPLES_DIR "/seed_lock", "r");
    if (!p)
        fail_msg("cannot run %s", CORIO_EXAMPLES_DIR "/seed_lock");
    while (len < sizeof out - 1 && (n = fread(out + len, 1, sizeof out - 1 - len, p)) > 0)
        len += n;
    out[len] = '\0';
    int status = pclose(p);
    assert_int_equal(status, 0);
    assert_string_equal(out, expected);
}

/* ---- close waits for the waiting calls to leave ------------------------- */

struct close_ctx {
    struct checks ck;
    corio_event ev;
    corio_lock lk;
    int waiter_rc;
};

static void *close_waiter(void *arg)
{
    struct close_ctx *c = arg;
    c->waiter_rc = corio_event_wait(&c->ev);
    return NULL;
}

static void *close_busy_main(void *arg)
{
    struct close_ctx *c = arg;
    CHECK_EQ(&c->ck, corio_event_init(&c->ev), 0);
    CHECK_EQ(&c->ck, corio_lock_init(&c->lk), 0);
    corio_task *t;
    CHECK_EQ(&c->ck, corio_spawn(&t, close_waiter, c), 0);
    corio_yield();   /* the waiter parks */
    CHECK_EQ(&c->ck, corio_event_set(&c->ev), 0);
    /* Woken but not yet run (one worker): its call is still inside. */
    CHECK_EQ(&c->ck, corio_event_close(&c->ev), -EBUSY);
    CHECK_EQ(&c->ck, corio_await(t, NULL), 0);
    CHECK_EQ(&c->ck, c->waiter_rc, 0);
    CHECK_EQ(&c->ck, corio_event_close(&c->ev), 0);
    corio_task_unref(t);
    /* A held lock cannot be closed either. */
    CHECK_EQ(&c->ck, corio_lock_acquire(&c->lk), 0);
    CHECK_EQ(&c->ck, corio_lock_close(&c->lk), -EBUSY);
    CHECK_EQ(&c->ck, corio_lock_release(&c->lk), 0);
    CHECK_EQ(&c->ck, corio_lock_close(&c->lk), 0);
    return NULL;
}

static void sync_close_refuses_until_waiters_left(void **state)
{
    (void)state;
    struct close_ctx c = {0};
    run_main_checked(1, close_busy_main, &c, &c.ck);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sync_lock_acquire_release),
        cmocka_unit_test(sync_lock_fifo_no_barging),
        cmocka_unit_test(sync_lock_cancel_waiter_removed),
        cmocka_unit_test(sync_lock_cancel_races_handover),
        cmocka_unit_test(sync_lock_timeout),
        cmocka_unit_test(sync_lock_bad_input),
        cmocka_unit_test(sync_lock_guard),
        cmocka_unit_test(sync_lock_stress_counter_exact),
        cmocka_unit_test(sync_event_set_wakes_all_in_order),
        cmocka_unit_test(sync_event_cancel_waiter_removed),
        cmocka_unit_test(sync_event_timeout),
        cmocka_unit_test(sync_event_set_from_plain_thread),
        cmocka_unit_test(sync_event_bad_input),
        cmocka_unit_test(sync_condition_notify_in_order),
        cmocka_unit_test(sync_condition_wait_without_lock),
        cmocka_unit_test(sync_condition_wait_for_predicate),
        cmocka_unit_test(sync_condition_cancel_reacquires_lock),
        cmocka_unit_test(sync_condition_cancel_passes_notification),
        cmocka_unit_test(sync_condition_timeout),
        cmocka_unit_test(sync_condition_bad_input),
        cmocka_unit_test(sync_semaphore_fifo_no_barging),
        cmocka_unit_test(sync_bounded_semaphore_overflow),
        cmocka_unit_test(sync_semaphore_cancel_waiter_removed),
        cmocka_unit_test(sync_semaphore_cancel_races_release),
        cmocka_unit_test(sync_semaphore_timeout),
        cmocka_unit_test(sync_semaphore_stress_never_over_granted),
        cmocka_unit_test(sync_semaphore_bad_input),
        cmocka_unit_test(sync_barrier_wait_returns_index),
        cmocka_unit_test(sync_barrier_abort_breaks),
        cmocka_unit_test(sync_barrier_reset_wakes_waiters),
        cmocka_unit_test(sync_barrier_cancel_and_timeout),
        cmocka_unit_test(sync_barrier_rounds_across_workers),
        cmocka_unit_test(sync_barrier_bad_input),
        cmocka_unit_test(sync_woken_cancelled_passes_grant_on),
        cmocka_unit_test(sync_seed_lock_example),
        cmocka_unit_test(sync_close_refuses_until_waiters_left),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
