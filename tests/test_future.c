/* tests/test_future.c - futures (corio/future.h): completing, failing,
 * cancelling and awaiting them, done callbacks, completion from a thread that
 * is not a worker, the "never retrieved" report, and the misuse codes.
 *
 * Every case runs its own runtime (testutil.h), which must leave no task
 * alive and, except where a report is the point, report nothing. Tasks,
 * callbacks and helper threads never call cmocka's assertions (they longjmp,
 * which must not cross a fiber or a thread): they record what they saw with
 * CHECK*(), and the case asserts once the runtime has shut down.
 * Order-sensitive cases run on one worker, where ready tasks and callbacks
 * run in asyncio's order; the cross-thread and many-awaiter cases also run
 * on 2 and 4 workers, repeated.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <corio/corio.h>

#include "testutil.h"

/* ---- set_result wakes awaiters in order; a task completes one ---------- */

struct wake_case {
    struct checks ck;
    corio_future *f, *g;
    char order[8];
    int norder;
};

struct awaiter_arg {
    struct wake_case *w;
    char name;
};

static void note(struct wake_case *w, char c)
{
    if (w->norder < (int)sizeof w->order - 1)
        w->order[w->norder++] = c;
}

static void *await_f_and_note(void *arg)
{
    struct awaiter_arg *a = arg;
    void *v = NULL;
    CHECK_EQ(&a->w->ck, corio_await(a->w->f, &v), 0);
    CHECK_PTR(&a->w->ck, v, V(0xf00d));
    note(a->w, a->name);
    return v;
}

static void *set_g_later(void *arg)
{
    struct wake_case *w = arg;
    CHECK_EQ(&w->ck, corio_yield(), 0);
    CHECK(&w->ck, !corio_future_done(w->g));
    CHECK_EQ(&w->ck, corio_future_set_result(w->g, V(0xbeef)), 0);
    return NULL;
}

static void *wake_main(void *arg)
{
    struct wake_case *w = arg;
    struct awaiter_arg aa = {w, 'A'}, ab = {w, 'B'};
    corio_task *a, *b, *setter;
    void *v = NULL;

    CHECK_EQ(&w->ck, corio_future_create(&w->f), 0);
    CHECK_EQ(&w->ck, corio_spawn(&a, await_f_and_note, &aa), 0);
    CHECK_EQ(&w->ck, corio_spawn(&b, await_f_and_note, &ab), 0);
    CHECK_EQ(&w->ck, corio_yield(), 0);   /* A, then B, start and park on f */
    CHECK(&w->ck, !corio_task_done(a) && !corio_task_done(b));
    note(w, 's');
    CHECK_EQ(&w->ck, corio_future_set_result(w->f, V(0xf00d)), 0);
    /* Completing only schedules the waiters. */
    CHECK(&w->ck, !corio_task_done(a) && !corio_task_done(b));
    CHECK_EQ(&w->ck, corio_await(a, &v), 0);
    CHECK_PTR(&w->ck, v, V(0xf00d));
    CHECK_EQ(&w->ck, corio_await(b, &v), 0);
    CHECK_PTR(&w->ck, v, V(0xf00d));
    /* Awaiting a done future returns its value at once. */
    v = NULL;
    CHECK_EQ(&w->ck, corio_await(w->f, &v), 0);
    CHECK_PTR(&w->ck, v, V(0xf00d));
    CHECK_EQ(&w->ck, corio_future_result(w->f, &v), 0);
    CHECK_PTR(&w->ck, v, V(0xf00d));

    /* This task waits; another task completes. */
    CHECK_EQ(&w->ck, corio_future_create(&w->g), 0);
    CHECK_EQ(&w->ck, corio_spawn(&setter, set_g_later, w), 0);
    v = NULL;
    CHECK_EQ(&w->ck, corio_await(w->g, &v), 0);
    CHECK_PTR(&w->ck, v, V(0xbeef));
    CHECK_EQ(&w->ck, corio_await(setter, NULL), 0);

    corio_task_unref(a);
    corio_task_unref(b);
    corio_task_unref(setter);
    corio_future_unref(w->f);
    corio_future_unref(w->g);
    return NULL;
}

static void future_set_result_wakes_awaiters(void **state)
{
    (void)state;
    struct wake_case w = {0};
    run_main_checked(1, wake_main, &w, &w.ck);
    assert_string_equal(w.order, "sAB");
}

/* ---- set_exception: code and copied message --------------------------- */

struct exc_case {
    struct checks ck;
    corio_future *f;
    int awaited_rc;
};

static void *await_failing(void *arg)
{
    struct exc_case *e = arg;
    void *v = V(1);
    e->awaited_rc = corio_await(e->f, &v);
    const char *m = NULL;
    CHECK_EQ(&e->ck, corio_future_exception(e->f, &m), -EIO);
    CHECK_STR(&e->ck, m, "disk on fire");
    return NULL;
}

static void *exc_main(void *arg)
{
    struct exc_case *e = arg;
    char msg[32] = "disk on fire";
    const char *m = NULL;
    corio_task *t;

    CHECK_EQ(&e->ck, corio_future_create(&e->f), 0);
    CHECK_EQ(&e->ck, corio_spawn(&t, await_failing, e), 0);
    CHECK_EQ(&e->ck, corio_yield(), 0);   /* the awaiter parks */
    CHECK_EQ(&e->ck, corio_future_set_exception(e->f, -EIO, msg), 0);
    memset(msg, 'x', sizeof msg - 1);      /* the future kept its own copy */
    CHECK_EQ(&e->ck, corio_await(t, NULL), 0);
    CHECK(&e->ck, corio_future_done(e->f));
    CHECK(&e->ck, !corio_future_cancelled(e->f));
    CHECK_EQ(&e->ck, corio_future_exception(e->f, &m), -EIO);
    CHECK_STR(&e->ck, m, "disk on fire");
    CHECK(&e->ck, m != msg);
    CHECK_EQ(&e->ck, corio_future_result(e->f, NULL), -EIO);
    CHECK_EQ(&e->ck, corio_await(e->f, NULL), -EIO);
    corio_future_unref(e->f);
    corio_task_unref(t);

    /* Without a message. */
    corio_future *g;
    CHECK_EQ(&e->ck, corio_future_create(&g), 0);
    CHECK_EQ(&e->ck, corio_future_set_exception(g, -EPIPE, NULL), 0);
    m = "not cleared";
    CHECK_EQ(&e->ck, corio_future_exception(g, &m), -EPIPE);
    CHECK_PTR(&e->ck, m, NULL);
    CHECK_EQ(&e->ck, corio_await(g, NULL), -EPIPE);
    corio_future_unref(g);
    return NULL;
}

static void future_set_exception_carries_code_and_message(void **state)
{
    (void)state;
    struct exc_case e = {0};
    run_main_checked(1, exc_main, &e, &e.ck);
    assert_int_equal(e.awaited_rc, -EIO);
}

/* ---- a future completes once ------------------------------------------ */

static void *set_twice_main(void *arg)
{
    struct checks *ck = arg;
    corio_future *f, *g, *h;
    void *v = NULL;
    const char *m = NULL;

    CHECK_EQ(ck, corio_future_create(&f), 0);
    CHECK_EQ(ck, corio_future_set_result(f, V(1)), 0);
    CHECK_EQ(ck, corio_future_set_result(f, V(2)), -EINVAL);
    CHECK_EQ(ck, corio_future_set_exception(f, -EIO, "late"), -EINVAL);
    CHECK_EQ(ck, corio_future_cancel(f, NULL), 0);
    CHECK(ck, !corio_future_cancelled(f));
    CHECK_EQ(ck, corio_future_result(f, &v), 0);
    CHECK_PTR(ck, v, V(1));

    CHECK_EQ(ck, corio_future_create(&g), 0);
    CHECK_EQ(ck, corio_future_set_exception(g, -EIO, "first"), 0);
    CHECK_EQ(ck, corio_future_set_result(g, V(3)), -EINVAL);
    CHECK_EQ(ck, corio_future_set_exception(g, -EPIPE, "second"), -EINVAL);
    CHECK_EQ(ck, corio_future_cancel(g, NULL), 0);
    CHECK_EQ(ck, corio_future_exception(g, &m), -EIO);
    CHECK_STR(ck, m, "first");

    CHECK_EQ(ck, corio_future_create(&h), 0);
    CHECK_EQ(ck, corio_future_cancel(h, NULL), 1);
    CHECK_EQ(ck, corio_future_set_result(h, V(4)), -EINVAL);
    CHECK_EQ(ck, corio_future_set_exception(h, -EIO, "after cancel"), -EINVAL);
    CHECK(ck, corio_future_cancelled(h));

    corio_future_unref(f);
    corio_future_unref(g);
    corio_future_unref(h);
    return NULL;
}

static void future_set_twice_einval(void **state)
{
    (void)state;
    run_checks(1, set_twice_main);
}

/* ---- set_exception refuses codes that are not errors, and -ECANCELED --- */

static void *bad_codes_main(void *arg)
{
    struct checks *ck = arg;
    corio_future *f;

    CHECK_EQ(ck, corio_future_create(&f), 0);
    CHECK_EQ(ck, corio_future_set_exception(f, 0, "zero"), -EINVAL);
    CHECK_EQ(ck, corio_future_set_exception(f, 1, "one"), -EINVAL);
    CHECK_EQ(ck, corio_future_set_exception(f, EIO, "positive"), -EINVAL);
    /* asyncio: set_exception(CancelledError()) is a TypeError. */
    CHECK_EQ(ck, corio_future_set_exception(f, -ECANCELED, "cancelled"), -EINVAL);
    CHECK(ck, !corio_future_done(f));
    CHECK_EQ(ck, corio_future_result(f, NULL), -EAGAIN);
    CHECK_EQ(ck, corio_future_set_result(f, V(9)), 0);
    corio_future_unref(f);
    return NULL;
}

static void future_set_exception_rejects_bad_codes(void **state)
{
    (void)state;
    run_checks(1, bad_codes_main);
}

/* ---- cancel: 1, then 0 ------------------------------------------------- */

static void *cancel_main(void *arg)
{
    struct checks *ck = arg;
    corio_future *f, *g;
    corio_task *t;
    const char *m = NULL;

    CHECK_EQ(ck, corio_future_create(&f), 0);
    CHECK_EQ(ck, corio_future_cancel(f, "stop"), 1);
    CHECK_EQ(ck, corio_future_cancel(f, "stop again"), 0);
    CHECK_EQ(ck, corio_future_cancel(f, NULL), 0);
    CHECK(ck, corio_future_done(f));
    CHECK(ck, corio_future_cancelled(f));
    CHECK_EQ(ck, corio_future_result(f, NULL), -ECANCELED);
    CHECK_EQ(ck, corio_future_exception(f, &m), -ECANCELED);
    CHECK_EQ(ck, corio_await(f, NULL), -ECANCELED);

    /* A future that is done already is not cancelled. */
    CHECK_EQ(ck, corio_future_create(&g), 0);
    CHECK_EQ(ck, corio_future_set_result(g, V(5)), 0);
    CHECK_EQ(ck, corio_future_cancel(g, NULL), 0);
    CHECK(ck, !corio_future_cancelled(g));

    /* On a task's future it requests the task's cancellation. */
    CHECK_EQ(ck, corio_spawn(&t, yield_until_cancelled, NULL), 0);
    CHECK_EQ(ck, corio_future_cancel(corio_task_future(t), "task, stop"), 1);
    CHECK_EQ(ck, corio_task_cancelling(t), 1);
    CHECK_EQ(ck, corio_await(t, NULL), -ECANCELED);
    CHECK(ck, corio_task_cancelled(t));
    CHECK_EQ(ck, corio_future_cancel(corio_task_future(t), NULL), 0);

    corio_task_unref(t);
    corio_future_unref(f);
    corio_future_unref(g);
    return NULL;
}

static void future_cancel_returns_1_then_0(void **state)
{
    (void)state;
    run_checks(1, cancel_main);
}

/* ---- awaiting a future that gets cancelled ----------------------------- */

struct await_cancel_case {
    struct checks ck;
    corio_future *f;
    int rc;
};

static void *await_and_record(void *arg)
{
    struct await_cancel_case *a = arg;
    a->rc = corio_await(a->f, NULL);
    return V(1);
}

/* Makes a->f and spawns a task that awaits it; returns once that task is
 * parked there (one worker), its a->rc still 1. */
static corio_task *park_awaiter(struct await_cancel_case *a)
{
    corio_task *t = NULL;
    a->rc = 1;
    CHECK_EQ(&a->ck, corio_future_create(&a->f), 0);
    CHECK_EQ(&a->ck, corio_spawn(&t, await_and_record, a), 0);
    CHECK_EQ(&a->ck, corio_yield(), 0);
    return t;
}

/* Runs @main, whose awaiter must have seen its await end -ECANCELED. */
static void run_await_cancel_case(corio_fn main)
{
    struct await_cancel_case a = {0};
    run_main_checked(1, main, &a, &a.ck);
    assert_int_equal(a.rc, -ECANCELED);
}

static void *await_cancelled_main(void *arg)
{
    struct await_cancel_case *a = arg;
    corio_task *t = park_awaiter(a);
    void *v = NULL;

    CHECK_EQ(&a->ck, a->rc, 1);
    CHECK_EQ(&a->ck, corio_future_cancel(a->f, NULL), 1);
    CHECK_EQ(&a->ck, corio_await(t, &v), 0);
    CHECK_PTR(&a->ck, v, V(1));
    /* The future was cancelled, not the task that awaited it. */
    CHECK(&a->ck, !corio_task_cancelled(t));
    CHECK_EQ(&a->ck, corio_task_cancelling(t), 0);
    corio_task_unref(t);
    corio_future_unref(a->f);
    return NULL;
}

static void future_await_cancelled_returns_ecanceled(void **state)
{
    (void)state;
    run_await_cancel_case(await_cancelled_main);
}

/* Cancelling the awaiting task cancels the awaited future (asyncio). */
static void *cancel_awaiter_main(void *arg)
{
    struct await_cancel_case *a = arg;
    corio_task *t = park_awaiter(a);

    CHECK_EQ(&a->ck, corio_task_cancel(t, "enough"), 1);
    /* t returns with the request still counted: it ends cancelled. */
    CHECK_EQ(&a->ck, corio_await(t, NULL), -ECANCELED);
    CHECK(&a->ck, corio_task_cancelled(t));
    CHECK(&a->ck, corio_future_cancelled(a->f));
    corio_task_unref(t);
    corio_future_unref(a->f);
    return NULL;
}

static void future_cancelled_awaiter_cancels_future(void **state)
{
    (void)state;
    run_await_cancel_case(cancel_awaiter_main);
}

/* ---- result() of a pending future; state snapshots ---------------------- */

static void *pending_main(void *arg)
{
    struct checks *ck = arg;
    corio_future *f;
    void *v = V(7);

    CHECK_EQ(ck, corio_future_create(&f), 0);
    CHECK_EQ(ck, corio_future_result(f, &v), -EAGAIN);
    CHECK_PTR(ck, v, V(7));
    CHECK_EQ(ck, corio_future_exception(f, NULL), -EAGAIN);
    CHECK(ck, !corio_future_done(f));
    CHECK(ck, !corio_future_cancelled(f));
    corio_future_unref(f);   /* a pending future may be dropped */
    return NULL;
}

static void future_result_pending_eagain(void **state)
{
    (void)state;
    run_checks(1, pending_main);
}

static void *yield_once(void *arg)
{
    (void)arg;
    corio_yield();
    return V(3);
}

static void *snapshots_main(void *arg)
{
    struct checks *ck = arg;
    corio_future *ok, *bad, *gone;
    corio_task *t;

    CHECK_EQ(ck, corio_future_create(&ok), 0);
    CHECK_EQ(ck, corio_future_create(&bad), 0);
    CHECK_EQ(ck, corio_future_create(&gone), 0);
    CHECK(ck, !corio_future_done(ok) && !corio_future_cancelled(ok));
    CHECK_EQ(ck, corio_future_set_result(ok, NULL), 0);
    CHECK_EQ(ck, corio_future_set_exception(bad, -EIO, "x"), 0);
    CHECK_EQ(ck, corio_future_cancel(gone, NULL), 1);
    CHECK(ck, corio_future_done(ok) && !corio_future_cancelled(ok));
    CHECK(ck, corio_future_done(bad) && !corio_future_cancelled(bad));
    CHECK(ck, corio_future_done(gone) && corio_future_cancelled(gone));
    CHECK(ck, !corio_future_done(NULL) && !corio_future_cancelled(NULL));
    CHECK_EQ(ck, corio_future_exception(bad, NULL), -EIO);

    /* The future view of a task. */
    CHECK_EQ(ck, corio_spawn(&t, yield_once, NULL), 0);
    CHECK(ck, !corio_future_done(corio_task_future(t)));
    CHECK_EQ(ck, corio_future_result(corio_task_future(t), NULL), -EAGAIN);
    CHECK_EQ(ck, corio_await(t, NULL), 0);
    CHECK(ck, corio_future_done(corio_task_future(t)));
    CHECK(ck, !corio_future_cancelled(corio_task_future(t)));

    corio_task_unref(t);
    corio_future_unref(ok);
    corio_future_unref(bad);
    corio_future_unref(gone);
    return NULL;
}

static void future_done_and_cancelled_snapshots(void **state)
{
    (void)state;
    run_checks(1, snapshots_main);
}

/* ---- awaiting a done future does not suspend ------------------------------ */

struct ticker_case {
    struct checks ck;
    atomic_int ticks;
    atomic_bool stop;
};

static void *ticker(void *arg)
{
    struct ticker_case *c = arg;
    while (!atomic_load(&c->stop)) {
        atomic_fetch_add(&c->ticks, 1);
        corio_yield();
    }
    return NULL;
}

static void *await_done_main(void *arg)
{
    struct ticker_case *c = arg;
    corio_future *f;
    corio_task *t;
    int i;

    CHECK_EQ(&c->ck, corio_future_create(&f), 0);
    CHECK_EQ(&c->ck, corio_future_set_result(f, V(1)), 0);
    CHECK_EQ(&c->ck, corio_spawn(&t, ticker, c), 0);
    CHECK_EQ(&c->ck, corio_yield(), 0);   /* the ticker ticks once */
    CHECK_EQ(&c->ck, atomic_load(&c->ticks), 1);
    for (i = 0; i < 127; i++)
        CHECK_EQ(&c->ck, corio_await(f, NULL), 0);
    CHECK_EQ(&c->ck, atomic_load(&c->ticks), 1);
    /* The 128th in a row yields once, for fairness; then 72 more do not. */
    for (; i < 200; i++)
        CHECK_EQ(&c->ck, corio_await(f, NULL), 0);
    CHECK_EQ(&c->ck, atomic_load(&c->ticks), 2);
    atomic_store(&c->stop, true);
    CHECK_EQ(&c->ck, corio_await(t, NULL), 0);
    corio_task_unref(t);
    corio_future_unref(f);
    return NULL;
}

static void future_await_done_does_not_suspend(void **state)
{
    (void)state;
    struct ticker_case c = {0};
    run_main_checked(1, await_done_main, &c, &c.ck);
}

/* ---- many awaiters, completed from another task, on many workers ----------- */

#define NAWAITERS 64

struct many_case {
    struct checks ck;
    corio_future *f;
    atomic_int woken;
};

static void *await_many(void *arg)
{
    struct many_case *m = arg;
    void *v = NULL;
    CHECK_EQ(&m->ck, corio_await(m->f, &v), 0);
    CHECK_PTR(&m->ck, v, V(0xa11));
    atomic_fetch_add(&m->woken, 1);
    return NULL;
}

static void *set_many(void *arg)
{
    struct many_case *m = arg;
    CHECK_EQ(&m->ck, corio_yield(), 0);
    CHECK_EQ(&m->ck, corio_future_set_result(m->f, V(0xa11)), 0);
    return NULL;
}

static void *many_main(void *arg)
{
    struct many_case *m = arg;
    corio_task *ts[NAWAITERS], *setter;

    CHECK_EQ(&m->ck, corio_future_create(&m->f), 0);
    for (int i = 0; i < NAWAITERS; i++)
        CHECK_EQ(&m->ck, corio_spawn(&ts[i], await_many, m), 0);
    CHECK_EQ(&m->ck, corio_spawn(&setter, set_many, m), 0);
    for (int i = 0; i < NAWAITERS; i++) {
        CHECK_EQ(&m->ck, corio_await(ts[i], NULL), 0);
        corio_task_unref(ts[i]);
    }
    CHECK_EQ(&m->ck, corio_await(setter, NULL), 0);
    corio_task_unref(setter);
    corio_future_unref(m->f);
    return NULL;
}

static void many_on(unsigned workers)
{
    struct many_case m = {0};
    run_main_checked(workers, many_main, &m, &m.ck);
    assert_int_equal(atomic_load(&m.woken), NAWAITERS);
}

static void future_many_awaiters_all_woken(void **state)
{
    (void)state;
    on_worker_counts(many_on, 10, 10);
}

/* ---- done callbacks --------------------------------------------------- */

#define LOG_MAX 16

struct cb_log {
    struct checks ck;
    int ids[LOG_MAX];
    corio_future *seen[LOG_MAX];
    void *values[LOG_MAX];
    int results[LOG_MAX];
    bool in_task[LOG_MAX];
    atomic_int n;
};

struct cb_arg {
    struct cb_log *log;
    int id;
};

/* Appends one entry; returns its index, or -1 when the log is full. */
static int log_entry(corio_future *f, struct cb_arg *a, int id)
{
    int i = atomic_fetch_add(&a->log->n, 1);
    if (i >= LOG_MAX)
        return -1;
    a->log->ids[i] = id;
    a->log->seen[i] = f;
    a->log->values[i] = NULL;
    a->log->results[i] = corio_future_result(f, &a->log->values[i]);
    a->log->in_task[i] = corio_current_task() != NULL;
    return i;
}

static void log_cb(corio_future *f, void *arg)
{
    struct cb_arg *a = arg;
    log_entry(f, a, a->id);
}

/* A second function with the same argument: logs id + 100. */
static void other_cb(corio_future *f, void *arg)
{
    struct cb_arg *a = arg;
    log_entry(f, a, a->id + 100);
}

static void *callbacks_main(void *arg)
{
    struct cb_log *log = arg;
    struct cb_arg a1 = {log, 1}, a2 = {log, 2}, a3 = {log, 3}, a4 = {log, 4};
    corio_future *f, *g;

    CHECK_EQ(&log->ck, corio_future_create(&f), 0);
    CHECK_EQ(&log->ck, corio_future_add_done_callback(f, log_cb, &a2), 0);
    CHECK_EQ(&log->ck, corio_future_add_done_callback(f, log_cb, &a1), 0);
    CHECK_EQ(&log->ck, corio_future_add_done_callback(f, log_cb, &a3), 0);
    CHECK_EQ(&log->ck, corio_future_set_result(f, V(0x51)), 0);
    /* Scheduled, not run inline. */
    CHECK_EQ(&log->ck, atomic_load(&log->n), 0);
    /* On one worker they run before this task's next step. */
    CHECK_EQ(&log->ck, corio_yield(), 0);
    CHECK_EQ(&log->ck, atomic_load(&log->n), 3);

    /* A failed future's callbacks see the failure. */
    CHECK_EQ(&log->ck, corio_future_create(&g), 0);
    CHECK_EQ(&log->ck, corio_future_add_done_callback(g, log_cb, &a4), 0);
    CHECK_EQ(&log->ck, corio_future_set_exception(g, -EIO, "cb"), 0);
    CHECK_EQ(&log->ck, atomic_load(&log->n), 3);
    CHECK_EQ(&log->ck, corio_yield(), 0);
    CHECK_EQ(&log->ck, atomic_load(&log->n), 4);

    corio_future_unref(f);
    corio_future_unref(g);
    return NULL;
}

static void future_done_callbacks_scheduled_in_order(void **state)
{
    (void)state;
    struct cb_log log = {0};
    corio_future *f;
    run_main_checked(1, callbacks_main, &log, &log.ck);
    assert_int_equal(atomic_load(&log.n), 4);
    /* Registration order, each with its own argument. */
    assert_int_equal(log.ids[0], 2);
    assert_int_equal(log.ids[1], 1);
    assert_int_equal(log.ids[2], 3);
    assert_int_equal(log.ids[3], 4);
    f = log.seen[0];
    for (int i = 0; i < 3; i++) {
        assert_ptr_equal(log.seen[i], f);
        assert_int_equal(log.results[i], 0);
        assert_ptr_equal(log.values[i], V(0x51));
        assert_false(log.in_task[i]);   /* on the worker's own stack */
    }
    assert_true(log.seen[3] != f);
    assert_int_equal(log.results[3], -EIO);
    assert_false(log.in_task[3]);
}

static void *return_0x77(void *arg)
{
    (void)arg;
    corio_yield();
    return V(0x77);
}

static void *late_callback_main(void *arg)
{
    struct cb_log *log = arg;
    struct cb_arg a1 = {log, 1}, a2 = {log, 2};
    corio_future *f;
    corio_task *t;

    /* Added after completion: scheduled at once, still not inline. */
    CHECK_EQ(&log->ck, corio_future_create(&f), 0);
    CHECK_EQ(&log->ck, corio_future_set_result(f, V(0x66)), 0);
    CHECK_EQ(&log->ck, corio_future_add_done_callback(f, log_cb, &a1), 0);
    CHECK_EQ(&log->ck, atomic_load(&log->n), 0);
    CHECK_EQ(&log->ck, corio_yield(), 0);
    CHECK_EQ(&log->ck, atomic_load(&log->n), 1);

    /* On a task: runs once the task has returned. */
    CHECK_EQ(&log->ck, corio_spawn(&t, return_0x77, NULL), 0);
    CHECK_EQ(&log->ck, corio_future_add_done_callback(corio_task_future(t), log_cb, &a2), 0);
    CHECK_EQ(&log->ck, corio_await(t, NULL), 0);
    CHECK_EQ(&log->ck, corio_yield(), 0);
    CHECK_EQ(&log->ck, atomic_load(&log->n), 2);
    CHECK_PTR(&log->ck, log->seen[1], corio_task_future(t));

    corio_task_unref(t);
    corio_future_unref(f);
    return NULL;
}

static void future_done_callback_added_after_completion(void **state)
{
    (void)state;
    struct cb_log log = {0};
    run_main_checked(1, late_callback_main, &log, &log.ck);
    assert_int_equal(atomic_load(&log.n), 2);
    assert_int_equal(log.ids[0], 1);
    assert_ptr_equal(log.values[0], V(0x66));
    assert_int_equal(log.ids[1], 2);
    assert_int_equal(log.results[1], 0);
    assert_ptr_equal(log.values[1], V(0x77));
}

static void *remove_main(void *arg)
{
    struct cb_log *log = arg;
    struct cb_arg a = {log, 1}, b = {log, 2}, c = {log, 3};
    corio_future *f;

    CHECK_EQ(&log->ck, corio_future_create(&f), 0);
    CHECK_EQ(&log->ck, corio_future_add_done_callback(f, log_cb, &a), 0);
    CHECK_EQ(&log->ck, corio_future_add_done_callback(f, log_cb, &b), 0);
    CHECK_EQ(&log->ck, corio_future_add_done_callback(f, log_cb, &a), 0);
    CHECK_EQ(&log->ck, corio_future_add_done_callback(f, other_cb, &a), 0);
    CHECK_EQ(&log->ck, corio_future_add_done_callback(f, log_cb, &c), 0);
    /* Every (fn, arg) pair matching, and only those. */
    CHECK_EQ(&log->ck, corio_future_remove_done_callback(f, log_cb, &a), 2);
    CHECK_EQ(&log->ck, corio_future_remove_done_callback(f, log_cb, &a), 0);
    CHECK_EQ(&log->ck, corio_future_remove_done_callback(f, other_cb, &b), 0);
    CHECK_EQ(&log->ck, corio_future_remove_done_callback(f, log_cb, &c), 1);
    CHECK_EQ(&log->ck, corio_future_set_result(f, NULL), 0);
    /* Already scheduled: nothing left to remove, and it still runs. */
    CHECK_EQ(&log->ck, corio_future_remove_done_callback(f, log_cb, &b), 0);
    CHECK_EQ(&log->ck, corio_yield(), 0);
    CHECK_EQ(&log->ck, corio_yield(), 0);
    corio_future_unref(f);
    return NULL;
}

static void future_remove_done_callback_counts_and_prevents(void **state)
{
    (void)state;
    struct cb_log log = {0};
    run_main_checked(1, remove_main, &log, &log.ck);
    assert_int_equal(atomic_load(&log.n), 2);
    assert_int_equal(log.ids[0], 2);     /* log_cb(b) */
    assert_int_equal(log.ids[1], 101);   /* other_cb(a) */
}

/* Cancelling completes: the callbacks run and see a cancelled future. That
 * holds when the cancel comes from dropping the last reference to a pending
 * future too: the future must stay valid until its callbacks have run. */
static void *cancel_callbacks_main(void *arg)
{
    struct cb_log *log = arg;
    struct cb_arg a1 = {log, 1}, a2 = {log, 2};
    corio_future *f, *g;

    CHECK_EQ(&log->ck, corio_future_create(&f), 0);
    CHECK_EQ(&log->ck, corio_future_add_done_callback(f, log_cb, &a1), 0);
    CHECK_EQ(&log->ck, corio_future_cancel(f, NULL), 1);
    CHECK_EQ(&log->ck, atomic_load(&log->n), 0);
    CHECK_EQ(&log->ck, corio_yield(), 0);
    CHECK_EQ(&log->ck, atomic_load(&log->n), 1);
    corio_future_unref(f);

    CHECK_EQ(&log->ck, corio_future_create(&g), 0);
    CHECK_EQ(&log->ck, corio_future_add_done_callback(g, log_cb, &a2), 0);
    corio_future_unref(g);
    CHECK_EQ(&log->ck, corio_yield(), 0);
    CHECK_EQ(&log->ck, atomic_load(&log->n), 2);
    return NULL;
}

static void future_cancel_schedules_done_callbacks(void **state)
{
    (void)state;
    struct cb_log log = {0};
    run_main_checked(1, cancel_callbacks_main, &log, &log.ck);
    assert_int_equal(atomic_load(&log.n), 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(log.ids[i], i + 1);
        assert_int_equal(log.results[i], -ECANCELED);
    }
}

/* ---- completion from a plain thread ------------------------------------ */

#define XTHREAD_ROUNDS 50

struct xthread_case {
    struct checks ck;
    corio_rt *rt;
    atomic_int callbacks;
    atomic_int callbacks_on_worker;
};

struct xthread_round {
    struct xthread_case *x;
    corio_future *f;
    unsigned delay_us;
};

static void count_callback(corio_future *f, void *arg);

static void *complete_from_thread(void *arg)
{
    struct xthread_round *r = arg;
    if (r->delay_us)
        usleep(r->delay_us);
    /* A done callback may be added from any thread too. */
    CHECK_EQ(&r->x->ck, corio_future_add_done_callback(r->f, count_callback, r->x), 0);
    CHECK_EQ(&r->x->ck, corio_future_set_result(r->f, V(0x99)), 0);
    return NULL;
}

static void count_callback(corio_future *f, void *arg)
{
    struct xthread_case *x = arg;
    (void)f;
    /* Scheduled on the future's runtime, never on the completing thread. */
    if (corio_worker_id() >= 0 && corio_get_running_rt() == x->rt)
        atomic_fetch_add(&x->callbacks_on_worker, 1);
    atomic_fetch_add(&x->callbacks, 1);
}

static void *xthread_main(void *arg)
{
    struct xthread_case *x = arg;
    x->rt = corio_get_running_rt();
    for (int i = 0; i < XTHREAD_ROUNDS; i++) {
        /* Every third round completes at once, racing with the await. */
        struct xthread_round r = {.x = x, .delay_us = i % 3 == 0 ? 0 : 200};
        pthread_t th;
        void *v = NULL;
        CHECK_EQ(&x->ck, corio_future_create(&r.f), 0);
        CHECK_EQ(&x->ck, corio_future_add_done_callback(r.f, count_callback, x), 0);
        CHECK_EQ(&x->ck, pthread_create(&th, NULL, complete_from_thread, &r), 0);
        CHECK_EQ(&x->ck, corio_await(r.f, &v), 0);
        CHECK_PTR(&x->ck, v, V(0x99));
        pthread_join(th, NULL);   /* it has set the result: returns at once */
        corio_future_unref(r.f);
    }
    while (atomic_load(&x->callbacks) < 2 * XTHREAD_ROUNDS)
        corio_yield();
    return NULL;
}

static void xthread_on(unsigned workers)
{
    struct xthread_case x = {0};
    run_main_checked(workers, xthread_main, &x, &x.ck);
    assert_int_equal(atomic_load(&x.callbacks), 2 * XTHREAD_ROUNDS);
    assert_int_equal(atomic_load(&x.callbacks_on_worker), 2 * XTHREAD_ROUNDS);
}

static void future_set_from_plain_thread_wakes_task(void **state)
{
    (void)state;
    on_worker_counts(xthread_on, 3, 3);
}

/* ---- "Future exception was never retrieved" ----------------------------- */

struct unretrieved_case {
    struct checks ck;
    int reports_before_unref, reports_after_unref;
    struct reports *rep;
};

static void *unretrieved_main(void *arg)
{
    struct unretrieved_case *u = arg;
    corio_future *f, *ok, *gone;

    CHECK_EQ(&u->ck, corio_future_create(&f), 0);
    CHECK_EQ(&u->ck, corio_future_set_exception(f, -EIO, "lost write"), 0);
    /* Neither success nor cancellation is an unretrieved error. */
    CHECK_EQ(&u->ck, corio_future_create(&ok), 0);
    CHECK_EQ(&u->ck, corio_future_set_result(ok, V(1)), 0);
    CHECK_EQ(&u->ck, corio_future_create(&gone), 0);
    CHECK_EQ(&u->ck, corio_future_cancel(gone, "bye"), 1);
    corio_future_unref(ok);
    corio_future_unref(gone);
    u->reports_before_unref = reports_count(u->rep);
    corio_future_unref(f);
    u->reports_after_unref = reports_count(u->rep);
    return NULL;
}

static void future_unretrieved_exception_reported(void **state)
{
    (void)state;
    corio_rt_options o = {.workers = 1};
    struct reports reps;
    struct unretrieved_case u = {.rep = &reps};
    assert_int_equal(run_with(&o, &reps, unretrieved_main, &u, NULL), 0);
    assert_checks(&u.ck);
    assert_int_equal(u.reports_before_unref, 0);
    assert_int_equal(u.reports_after_unref, 1);   /* when freed */
    expect_reports(&reps, 1);
    assert_string_equal(reps.r[0].message, "Future exception was never retrieved");
    assert_int_equal(reps.r[0].error, -EIO);
    assert_string_equal(reps.r[0].error_message, "lost write");
    assert_true(reps.r[0].had_future);
    assert_false(reps.r[0].had_task);
}

struct retrieved_case {
    struct checks ck;
    corio_future *awaited;
};

static void *await_awaited(void *arg)
{
    struct retrieved_case *r = arg;
    CHECK_EQ(&r->ck, corio_await(r->awaited, NULL), -EIO);
    return NULL;
}

static void *retrieved_main(void *arg)
{
    struct retrieved_case *r = arg;
    corio_future *by_result, *by_exception;
    corio_task *t;
    const char *m = NULL;

    CHECK_EQ(&r->ck, corio_future_create(&r->awaited), 0);
    CHECK_EQ(&r->ck, corio_future_create(&by_result), 0);
    CHECK_EQ(&r->ck, corio_future_create(&by_exception), 0);
    CHECK_EQ(&r->ck, corio_spawn(&t, await_awaited, r), 0);
    CHECK_EQ(&r->ck, corio_yield(), 0);
    CHECK_EQ(&r->ck, corio_future_set_exception(r->awaited, -EIO, "awaited"), 0);
    CHECK_EQ(&r->ck, corio_future_set_exception(by_result, -EIO, "result"), 0);
    CHECK_EQ(&r->ck, corio_future_set_exception(by_exception, -EIO, "exception"), 0);
    CHECK_EQ(&r->ck, corio_await(t, NULL), 0);
    CHECK_EQ(&r->ck, corio_future_result(by_result, NULL), -EIO);
    CHECK_EQ(&r->ck, corio_future_exception(by_exception, &m), -EIO);
    CHECK_STR(&r->ck, m, "exception");
    corio_future_unref(r->awaited);
    corio_future_unref(by_result);
    corio_future_unref(by_exception);
    corio_task_unref(t);
    return NULL;
}

static void future_retrieved_exception_not_reported(void **state)
{
    (void)state;
    struct retrieved_case r = {0};
    run_main_checked(1, retrieved_main, &r, &r.ck);
}

/* ---- misuse ------------------------------------------------------------ */

static void never_cb(corio_future *f, void *arg)
{
    (void)f;
    atomic_fetch_add((atomic_int *)arg, 1);
}

struct null_case {
    struct checks ck;
    atomic_int never;
};

static void *null_main(void *arg)
{
    struct null_case *n = arg;
    struct checks *ck = &n->ck;
    corio_future *f;
    void *v = NULL;
    const char *m = NULL;

    CHECK_EQ(ck, corio_future_create(NULL), -EINVAL);
    CHECK_EQ(ck, corio_future_create(&f), 0);
    CHECK_EQ(ck, corio_future_set_result(NULL, V(1)), -EINVAL);
    CHECK_EQ(ck, corio_future_set_exception(NULL, -EIO, "x"), -EINVAL);
    CHECK_EQ(ck, corio_future_cancel(NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_future_result(NULL, &v), -EINVAL);
    CHECK_EQ(ck, corio_future_exception(NULL, &m), -EINVAL);
    CHECK_EQ(ck, corio_future_add_done_callback(NULL, never_cb, &n->never), -EINVAL);
    CHECK_EQ(ck, corio_future_add_done_callback(f, NULL, &n->never), -EINVAL);
    CHECK_EQ(ck, corio_future_remove_done_callback(NULL, never_cb, &n->never), -EINVAL);
    CHECK_EQ(ck, corio_future_remove_done_callback(f, NULL, &n->never), -EINVAL);
    CHECK_EQ(ck, corio_future_await(NULL, &v), -EINVAL);
    CHECK(ck, !corio_future_done(NULL));
    CHECK(ck, !corio_future_cancelled(NULL));
    CHECK_PTR(ck, corio_future_ref(NULL), NULL);
    corio_future_unref(NULL);
    CHECK_PTR(ck, corio_task_future(NULL), NULL);
    /* None of that touched f. */
    CHECK(ck, !corio_future_done(f));
    /* Optional out-pointers may be NULL. */
    CHECK_EQ(ck, corio_future_set_result(f, V(2)), 0);
    CHECK_EQ(ck, corio_future_result(f, NULL), 0);
    CHECK_EQ(ck, corio_future_exception(f, NULL), 0);
    CHECK_EQ(ck, corio_await(f, NULL), 0);
    CHECK_EQ(ck, corio_yield(), 0);
    corio_future_unref(f);
    return NULL;
}

static void future_null_arguments_einval(void **state)
{
    (void)state;
    struct null_case n = {0};
    run_main_checked(1, null_main, &n, &n.ck);
    assert_int_equal(atomic_load(&n.never), 0);
}

struct eperm_case {
    struct checks ck;
    corio_future *f;
    atomic_int callback_ran;
};

static void *eperm_thread(void *arg)
{
    struct eperm_case *e = arg;
    corio_future *g = NULL;
    /* A thread that is not a worker, while the runtime runs. */
    CHECK_EQ(&e->ck, corio_future_create(&g), -EPERM);
    CHECK_EQ(&e->ck, corio_future_await(e->f, NULL), -EPERM);
    CHECK_EQ(&e->ck, corio_yield(), -EPERM);
    return NULL;
}

static void eperm_callback(corio_future *f, void *arg)
{
    struct eperm_case *e = arg;
    corio_future *g = NULL;
    /* A callback runs on a worker but is no task: it may create, not await. */
    CHECK_EQ(&e->ck, corio_future_await(f, NULL), -EPERM);
    CHECK_EQ(&e->ck, corio_future_create(&g), 0);
    corio_future_unref(g);
    atomic_store(&e->callback_ran, 1);
}

static void *eperm_main(void *arg)
{
    struct eperm_case *e = arg;

    CHECK_EQ(&e->ck, corio_future_create(&e->f), 0);
    run_plain_thread(&e->ck, eperm_thread, e);
    CHECK(&e->ck, !corio_future_done(e->f));
    CHECK_EQ(&e->ck, corio_future_add_done_callback(e->f, eperm_callback, e), 0);
    CHECK_EQ(&e->ck, corio_future_set_result(e->f, NULL), 0);
    while (!atomic_load(&e->callback_ran))
        corio_yield();
    corio_future_unref(e->f);
    return NULL;
}

static void future_outside_runtime_eperm(void **state)
{
    (void)state;
    corio_future *f = NULL;
    /* No runtime at all on this thread. */
    assert_int_equal(corio_future_create(&f), -EPERM);
    assert_null(f);
    assert_int_equal(corio_yield(), -EPERM);

    struct eperm_case e = {0};
    run_main_checked(1, eperm_main, &e, &e.ck);
    assert_int_equal(atomic_load(&e.callback_ran), 1);
}

static void *await_self(void *arg)
{
    struct checks *ck = arg;
    corio_task *self = corio_current_task();
    CHECK(ck, self != NULL);
    CHECK_EQ(ck, corio_await(self, NULL), -EINVAL);
    CHECK_EQ(ck, corio_future_await(corio_task_future(self), NULL), -EINVAL);
    CHECK(ck, !corio_task_done(self));
    return V(0x5e1f);
}

static void *await_self_main(void *arg)
{
    struct checks *ck = arg;
    corio_task *t;
    void *v = NULL;

    await_self(ck);   /* the main task itself */
    CHECK_EQ(ck, corio_spawn(&t, await_self, ck), 0);
    CHECK_EQ(ck, corio_await(t, &v), 0);
    CHECK_PTR(ck, v, V(0x5e1f));
    corio_task_unref(t);
    return NULL;
}

static void future_task_awaiting_itself_einval(void **state)
{
    (void)state;
    run_checks(1, await_self_main);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(future_set_result_wakes_awaiters),
        cmocka_unit_test(future_set_exception_carries_code_and_message),
        cmocka_unit_test(future_set_twice_einval),
        cmocka_unit_test(future_set_exception_rejects_bad_codes),
        cmocka_unit_test(future_cancel_returns_1_then_0),
        cmocka_unit_test(future_await_cancelled_returns_ecanceled),
        cmocka_unit_test(future_cancelled_awaiter_cancels_future),
        cmocka_unit_test(future_result_pending_eagain),
        cmocka_unit_test(future_done_and_cancelled_snapshots),
        cmocka_unit_test(future_await_done_does_not_suspend),
        cmocka_unit_test(future_many_awaiters_all_woken),
        cmocka_unit_test(future_done_callbacks_scheduled_in_order),
        cmocka_unit_test(future_done_callback_added_after_completion),
        cmocka_unit_test(future_remove_done_callback_counts_and_prevents),
        cmocka_unit_test(future_cancel_schedules_done_callbacks),
        cmocka_unit_test(future_set_from_plain_thread_wakes_task),
        cmocka_unit_test(future_unretrieved_exception_reported),
        cmocka_unit_test(future_retrieved_exception_not_reported),
        cmocka_unit_test(future_null_arguments_einval),
        cmocka_unit_test(future_outside_runtime_eperm),
        cmocka_unit_test(future_task_awaiting_itself_einval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
