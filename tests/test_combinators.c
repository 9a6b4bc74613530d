/* tests/test_combinators.c - gather, wait, as_completed and shield
 * (corio/combinators.h).
 *
 * Every case runs its own runtime (testutil.h), which must leave no task
 * alive and report nothing. Tasks never call cmocka's assertions (they
 * longjmp, which must not cross a fiber): they record what they saw with
 * CHECK*(), and the case asserts once the runtime has shut down. Tasks block
 * on plain futures ("gates") or on other tasks; "completes later" is made
 * with corio_yield() loops. Cases that check an order run on one worker,
 * where ready tasks run in asyncio's order; their order-free invariants also
 * run on 2 and 4 workers, repeated, where a task that must be inside a
 * combinator before it is cancelled first completes a "ready" future
 * (cancellation before the call is delivered at the call).
 *
 * The stress case takes its worker count from `--workers N` (default 4).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <corio/corio.h>

#include "testutil.h"

#define MULTI_RUNS 5   /* runs per worker count of an order-free invariant */

static unsigned stress_workers = 4;

/* A new pending future; a failure to make one is a failed check. */
static corio_future *checked_future(struct checks *ck)
{
    corio_future *f = NULL;
    CHECK_EQ(ck, corio_future_create(&f), 0);
    return f;
}

/* Waits until the task under test, @t, completed @ready on its way into a
 * combinator. On one worker (@exact) the order is known: @steps yields let
 * it park there, which is checked. Elsewhere it may not have parked yet,
 * which is fine: a cancellation before the call is delivered at the call. */
static void await_ready(struct checks *ck, corio_future *ready, corio_task *t, bool exact,
                        int steps)
{
    CHECK_EQ(ck, corio_await(ready, NULL), 0);
    if (exact) {
        yield_n(steps);
        CHECK(ck, !corio_task_done(t));
    }
}

/* Cancels @t, which must take the request and end cancelled. */
static void cancel_and_reap(struct checks *ck, corio_task *t, const char *msg)
{
    CHECK_EQ(ck, corio_task_cancel(t, msg), 1);
    CHECK_EQ(ck, corio_await(t, NULL), -ECANCELED);
    CHECK(ck, corio_task_cancelled(t));
}

/* Opens @gate and checks that @t, which waited behind it, ends normally
 * with @want. */
static void open_gate_and_reap(struct checks *ck, corio_future *gate, corio_task *t, void *want)
{
    void *v = NULL;
    CHECK_EQ(ck, corio_future_set_result(gate, NULL), 0);
    CHECK_EQ(ck, corio_await(t, &v), 0);
    CHECK_PTR(ck, v, want);
    CHECK(ck, !corio_task_cancelled(t));
}

/* ---- gather: results in the order given -------------------------------- */

#define NORDER 5

struct order_case {
    struct checks ck;
    bool exact;   /* one worker: the completion order is known */
    int finished[NORDER];
    atomic_int nfinished;
};

struct order_child {
    struct order_case *c;
    int i;
};

/* Child i yields 2 * (NORDER - i) times: on one worker the last ends first. */
static void *order_child_main(void *arg)
{
    struct order_child *oc = arg;
    yield_n(2 * (NORDER - oc->i));
    oc->c->finished[atomic_fetch_add(&oc->c->nfinished, 1)] = oc->i;
    return V(100 + oc->i);
}

static void *gather_order_main(void *arg)
{
    struct order_case *c = arg;
    struct order_child oc[NORDER];
    corio_task *ts[NORDER];
    void *results[NORDER];
    int errors[NORDER];

    for (int i = 0; i < NORDER; i++) {
        oc[i] = (struct order_child){c, i};
        CHECK_EQ(&c->ck, corio_spawn(&ts[i], order_child_main, &oc[i]), 0);
        results[i] = V(1);
        errors[i] = 1;
    }
    CHECK_EQ(&c->ck, corio_gather_tasks(ts, NORDER, 0, results, errors), 0);
    for (int i = 0; i < NORDER; i++) {
        CHECK(&c->ck, corio_task_done(ts[i]));
        CHECK_PTR(&c->ck, results[i], V(100 + i));
        CHECK_EQ(&c->ck, errors[i], 0);
        corio_task_unref(ts[i]);
    }
    CHECK_EQ(&c->ck, atomic_load(&c->nfinished), NORDER);
    if (c->exact)
        for (int i = 0; i < NORDER; i++)
            CHECK_EQ(&c->ck, c->finished[i], NORDER - 1 - i);
    return NULL;
}

static void gather_order_on(unsigned workers)
{
    struct order_case c = {.exact = workers == 1};
    run_main_checked(workers, gather_order_main, &c, &c.ck);
}

static void gather_results_in_given_order(void **state)
{
    (void)state;
    on_worker_counts(gather_order_on, 1, MULTI_RUNS);
}

/* Plain futures, completed in reverse order by another task. */
struct fut_order_case {
    struct checks ck;
    corio_future *fs[NORDER];
};

static void *complete_in_reverse(void *arg)
{
    struct fut_order_case *c = arg;
    for (int i = NORDER - 1; i >= 0; i--) {
        CHECK_EQ(&c->ck, corio_yield(), 0);
        CHECK_EQ(&c->ck, corio_future_set_result(c->fs[i], V(200 + i)), 0);
    }
    return NULL;
}

static void *gather_futures_main(void *arg)
{
    struct fut_order_case *c = arg;
    void *results[NORDER] = {0};
    corio_task *setter;

    for (int i = 0; i < NORDER; i++)
        c->fs[i] = checked_future(&c->ck);
    CHECK_EQ(&c->ck, corio_spawn(&setter, complete_in_reverse, c), 0);
    /* results and errors may be left out; here errors is. */
    CHECK_EQ(&c->ck, corio_gather(c->fs, NORDER, 0, results, NULL), 0);
    for (int i = 0; i < NORDER; i++) {
        CHECK_PTR(&c->ck, results[i], V(200 + i));
        corio_future_unref(c->fs[i]);
    }
    CHECK_EQ(&c->ck, corio_await(setter, NULL), 0);
    corio_task_unref(setter);

    /* The same future twice gives its value twice. */
    corio_future *twice[3];
    void *r3[3] = {0};
    twice[0] = twice[2] = checked_future(&c->ck);
    twice[1] = checked_future(&c->ck);
    CHECK_EQ(&c->ck, corio_future_set_result(twice[1], V(1)), 0);
    CHECK_EQ(&c->ck, corio_future_set_result(twice[0], V(2)), 0);
    CHECK_EQ(&c->ck, corio_gather(twice, 3, 0, r3, NULL), 0);
    CHECK_PTR(&c->ck, r3[0], V(2));
    CHECK_PTR(&c->ck, r3[1], V(1));
    CHECK_PTR(&c->ck, r3[2], V(2));
    corio_future_unref(twice[0]);
    corio_future_unref(twice[1]);
    return NULL;
}

static void gather_futures_results_in_given_order(void **state)
{
    (void)state;
    struct fut_order_case c = {0};
    run_main_checked(1, gather_futures_main, &c, &c.ck);
}

/* ---- gather: the first failure ends it, the others keep running ---------- */

static void *fail_after_two_yields(void *arg)
{
    (void)arg;
    yield_n(2);
    corio_raise(-EIO, "child %d failed", 1);
    return NULL;
}

static void *slow_value(void *arg)
{
    yield_n(10);
    return arg;
}

struct fail_case {
    struct checks ck;
    corio_future *f0, *f1;
};

static void *fail_pipe_later(void *arg)
{
    struct fail_case *c = arg;
    CHECK_EQ(&c->ck, corio_yield(), 0);
    CHECK_EQ(&c->ck, corio_future_set_exception(c->f1, -EPIPE, "pipe"), 0);
    return NULL;
}

static void *gather_failure_main(void *arg)
{
    struct fail_case *c = arg;
    corio_task *ts[3], *setter;
    void *results[3] = {V(1), V(1), V(1)};
    int errors[3] = {1, 1, 1};
    void *v = NULL;
    const char *m = NULL;

    CHECK_EQ(&c->ck, corio_spawn(&ts[0], slow_value, V(10)), 0);
    CHECK_EQ(&c->ck, corio_spawn(&ts[1], fail_after_two_yields, NULL), 0);
    CHECK_EQ(&c->ck, corio_spawn(&ts[2], slow_value, V(12)), 0);
    CHECK_EQ(&c->ck, corio_gather_tasks(ts, 3, 0, results, errors), -EIO);
    /* Returned as soon as ts[1] failed: the others still run. */
    CHECK(&c->ck, corio_task_done(ts[1]));
    CHECK(&c->ck, !corio_task_done(ts[0]));
    CHECK(&c->ck, !corio_task_done(ts[2]));
    CHECK_PTR(&c->ck, results[1], NULL);
    CHECK_EQ(&c->ck, errors[1], -EIO);
    CHECK_EQ(&c->ck, corio_task_exception(ts[1], &m), -EIO);
    CHECK_STR(&c->ck, m, "child 1 failed");
    /* ... and complete normally afterwards. */
    CHECK_EQ(&c->ck, corio_await(ts[0], &v), 0);
    CHECK_PTR(&c->ck, v, V(10));
    CHECK_EQ(&c->ck, corio_await(ts[2], &v), 0);
    CHECK_PTR(&c->ck, v, V(12));
    CHECK(&c->ck, !corio_task_cancelled(ts[0]) && !corio_task_cancelled(ts[2]));
    for (int i = 0; i < 3; i++)
        corio_task_unref(ts[i]);

    /* The same with plain futures. */
    corio_future *fs[2];
    fs[0] = c->f0 = checked_future(&c->ck);
    fs[1] = c->f1 = checked_future(&c->ck);
    CHECK_EQ(&c->ck, corio_spawn(&setter, fail_pipe_later, c), 0);
    CHECK_EQ(&c->ck, corio_gather(fs, 2, 0, NULL, NULL), -EPIPE);
    CHECK(&c->ck, !corio_future_done(c->f0));
    CHECK_EQ(&c->ck, corio_future_set_result(c->f0, V(3)), 0);
    CHECK_EQ(&c->ck, corio_await(setter, NULL), 0);
    corio_task_unref(setter);
    corio_future_unref(c->f0);
    corio_future_unref(c->f1);
    return NULL;
}

static void gather_failure_returns_first_error_at_once(void **state)
{
    (void)state;
    struct fail_case c = {0};
    run_main_checked(1, gather_failure_main, &c, &c.ck);
}

/* A child cancelled by someone else ends the gather with -ECANCELED, but
 * the gathering task itself is not cancelled. */
static void *gather_cancelled_child_main(void *arg)
{
    struct checks *ck = arg;
    corio_task *ts[2];

    CHECK_EQ(ck, corio_spawn(&ts[0], slow_value, V(1)), 0);
    CHECK_EQ(ck, corio_spawn(&ts[1], yield_until_cancelled, NULL), 0);
    CHECK_EQ(ck, corio_yield(), 0);
    CHECK_EQ(ck, corio_task_cancel(ts[1], NULL), 1);
    CHECK_EQ(ck, corio_gather_tasks(ts, 2, 0, NULL, NULL), -ECANCELED);
    CHECK(ck, corio_task_cancelled(ts[1]));
    CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
    CHECK_EQ(ck, corio_await(ts[0], NULL), 0);
    corio_task_unref(ts[0]);
    corio_task_unref(ts[1]);
    return NULL;
}

static void gather_cancelled_child_returns_ecanceled(void **state)
{
    (void)state;
    run_checks(1, gather_cancelled_child_main);
}

/* ---- gather with CORIO_RETURN_EXCEPTIONS ------------------------------- */

static void *return_1(void *arg)
{
    (void)arg;
    return V(1);
}

static void *raise_boom(void *arg)
{
    (void)arg;
    corio_raise(-EIO, "boom");
    return NULL;
}

static void *return_exceptions_main(void *arg)
{
    struct checks *ck = arg;
    corio_task *ts[4];
    void *results[4] = {V(9), V(9), V(9), V(9)};
    int errors[4] = {1, 1, 1, 1};
    const char *m = NULL;

    CHECK_EQ(ck, corio_spawn(&ts[0], return_1, NULL), 0);
    CHECK_EQ(ck, corio_spawn(&ts[1], raise_boom, NULL), 0);
    CHECK_EQ(ck, corio_spawn(&ts[2], yield_until_cancelled, NULL), 0);
    CHECK_EQ(ck, corio_spawn(&ts[3], slow_value, V(4)), 0);
    CHECK_EQ(ck, corio_yield(), 0);
    CHECK_EQ(ck, corio_task_cancel(ts[2], NULL), 1);
    CHECK_EQ(ck, corio_gather_tasks(ts, 4, CORIO_RETURN_EXCEPTIONS, results, errors), 0);
    for (int i = 0; i < 4; i++)
        CHECK(ck, corio_task_done(ts[i]));
    CHECK_EQ(ck, errors[0], 0);
    CHECK_EQ(ck, errors[1], -EIO);
    CHECK_EQ(ck, errors[2], -ECANCELED);
    CHECK_EQ(ck, errors[3], 0);
    CHECK_PTR(ck, results[0], V(1));
    CHECK_PTR(ck, results[1], NULL);
    CHECK_PTR(ck, results[2], NULL);
    CHECK_PTR(ck, results[3], V(4));
    CHECK_EQ(ck, corio_task_exception(ts[1], &m), -EIO);
    CHECK_STR(ck, m, "boom");
    for (int i = 0; i < 4; i++)
        corio_task_unref(ts[i]);
    return NULL;
}

static void gather_return_exceptions_collects_errors(void **state)
{
    (void)state;
    run_checks(1, return_exceptions_main);
}

/* ---- cancelling the task that awaits a gather ---------------------------- */

#define NCH 4
#define NOT_RETURNED 1   /* a child's await_rc before its await returned */

struct gcancel {
    struct checks ck;
    bool exact;
    unsigned flags;                   /* of the gather */
    corio_future *ready;
    corio_future *gate[NCH];          /* child i > 0 awaits gate[i] */
    corio_task *child[NCH];
    int await_rc[NCH];
    bool cleaned[NCH];
    int gather_rc;
    bool done_at_return[NCH], cleaned_at_return[NCH];
};

struct gchild {
    struct gcancel *g;
    int i;
};

static void *gcancel_child(void *arg)
{
    struct gchild *c = arg;
    struct gcancel *g = c->g;
    if (c->i == 0)
        return V(100);
    g->await_rc[c->i] = corio_await(g->gate[c->i], NULL);
    /* Clean-up that takes a few steps: the gather must wait for it. */
    yield_n(2 * c->i);
    g->cleaned[c->i] = true;
    return NULL;
}

static void *gcancel_gatherer(void *arg)
{
    struct gcancel *g = arg;
    CHECK_EQ(&g->ck, corio_future_set_result(g->ready, NULL), 0);
    g->gather_rc = corio_gather_tasks(g->child, NCH, g->flags, NULL, NULL);
    for (int i = 0; i < NCH; i++) {
        g->done_at_return[i] = corio_task_done(g->child[i]);
        g->cleaned_at_return[i] = g->cleaned[i];
    }
    return NULL;
}

static void *gcancel_main(void *arg)
{
    struct gcancel *g = arg;
    struct gchild gc[NCH];
    corio_task *gatherer;
    void *v = NULL;

    g->ready = checked_future(&g->ck);
    for (int i = 0; i < NCH; i++) {
        gc[i] = (struct gchild){g, i};
        g->gate[i] = checked_future(&g->ck);
        g->await_rc[i] = NOT_RETURNED;
        CHECK_EQ(&g->ck, corio_spawn(&g->child[i], gcancel_child, &gc[i]), 0);
    }
    g->gather_rc = NOT_RETURNED;
    CHECK_EQ(&g->ck, corio_spawn(&gatherer, gcancel_gatherer, g), 0);
    await_ready(&g->ck, g->ready, gatherer, g->exact, 3);
    if (g->exact) {
        /* Every child has run: child 0 returned, the others wait. */
        CHECK(&g->ck, corio_task_done(g->child[0]));
        for (int i = 1; i < NCH; i++)
            CHECK(&g->ck, !corio_task_done(g->child[i]));
    }
    /* The gatherer lets the cancellation through: it ends cancelled. */
    cancel_and_reap(&g->ck, gatherer, "stop");
    CHECK_EQ(&g->ck, g->gather_rc, -ECANCELED);
    for (int i = 0; i < NCH; i++) {
        /* It waited for every child, clean-up included. */
        CHECK(&g->ck, g->done_at_return[i]);
        if (g->await_rc[i] != NOT_RETURNED) {
            CHECK_EQ(&g->ck, g->await_rc[i], -ECANCELED);
            CHECK(&g->ck, g->cleaned_at_return[i]);
        }
        if (i > 0) {
            CHECK(&g->ck, corio_task_cancelled(g->child[i]));
            CHECK(&g->ck, !corio_future_done(g->gate[i]) || corio_future_cancelled(g->gate[i]));
        }
    }
    if (g->exact) {
        CHECK(&g->ck, !corio_task_cancelled(g->child[0]));
        CHECK_EQ(&g->ck, corio_task_result(g->child[0], &v), 0);
        CHECK_PTR(&g->ck, v, V(100));
        for (int i = 1; i < NCH; i++) {
            CHECK_EQ(&g->ck, g->await_rc[i], -ECANCELED);
            CHECK(&g->ck, corio_future_cancelled(g->gate[i]));
        }
    }
    for (int i = 0; i < NCH; i++) {
        corio_task_unref(g->child[i]);
        corio_future_unref(g->gate[i]);
    }
    corio_task_unref(gatherer);
    corio_future_unref(g->ready);
    return NULL;
}

static void gcancel_on(unsigned workers)
{
    struct gcancel g = {.exact = workers == 1};
    run_main_checked(workers, gcancel_main, &g, &g.ck);
}

static void gather_cancel_cancels_children(void **state)
{
    (void)state;
    /* Collecting errors or not, a cancelled gather ends -ECANCELED. */
    struct gcancel ge = {.exact = true, .flags = CORIO_RETURN_EXCEPTIONS};
    run_main_checked(1, gcancel_main, &ge, &ge.ck);
    on_worker_counts(gcancel_on, 1, MULTI_RUNS);
}

/* ---- gather: arguments ----------------------------------------------- */

struct gather_args_case {
    struct checks ck;
    corio_future *f;
    corio_task *task;   /* the main task, pending while the thread runs */
};

static void *gather_outside_thread(void *arg)
{
    struct gather_args_case *c = arg;
    CHECK_EQ(&c->ck, corio_gather(&c->f, 1, 0, NULL, NULL), -EPERM);
    CHECK_EQ(&c->ck, corio_gather_tasks(&c->task, 1, 0, NULL, NULL), -EPERM);
    return NULL;
}

static void *gather_args_main(void *arg)
{
    struct gather_args_case *c = arg;
    corio_future *fs[2];
    void *results[2] = {V(7), V(7)};

    c->f = checked_future(&c->ck);
    c->task = corio_current_task();
    /* n == 0: nothing to wait for, whatever the arrays. */
    CHECK_EQ(&c->ck, corio_gather(NULL, 0, 0, NULL, NULL), 0);
    CHECK_EQ(&c->ck, corio_gather(&c->f, 0, 0, results, NULL), 0);
    CHECK_EQ(&c->ck, corio_gather_tasks(NULL, 0, 0, NULL, NULL), 0);
    CHECK_PTR(&c->ck, results[0], V(7));
    /* A NULL array or entry. */
    CHECK_EQ(&c->ck, corio_gather(NULL, 2, 0, NULL, NULL), -EINVAL);
    CHECK_EQ(&c->ck, corio_gather_tasks(NULL, 2, 0, NULL, NULL), -EINVAL);
    fs[0] = c->f;
    fs[1] = NULL;
    CHECK_EQ(&c->ck, corio_gather(fs, 2, 0, results, NULL), -EINVAL);
    fs[0] = NULL;
    fs[1] = c->f;
    CHECK_EQ(&c->ck, corio_gather(fs, 2, CORIO_RETURN_EXCEPTIONS, NULL, NULL), -EINVAL);
    corio_task *ts[2] = {c->task, NULL};
    CHECK_EQ(&c->ck, corio_gather_tasks(ts, 2, 0, NULL, NULL), -EINVAL);
    CHECK(&c->ck, !corio_future_done(c->f));
    /* From a thread that is not a worker. */
    run_plain_thread(&c->ck, gather_outside_thread, c);
    CHECK(&c->ck, !corio_future_done(c->f));
    corio_future_unref(c->f);
    return NULL;
}

static void gather_empty_and_null_entries(void **state)
{
    (void)state;
    struct gather_args_case c = {0};
    run_main_checked(1, gather_args_main, &c, &c.ck);
}

/* ---- wait ------------------------------------------------------------ */

struct wait_case {
    struct checks ck;
    corio_future *fs[4];
};

/* Makes @n pending futures in c->fs and spawns @setter(@c), which completes
 * some of them while the case waits. Returns the setter. */
static corio_task *start_setter(struct wait_case *c, int n, corio_fn setter)
{
    corio_task *t = NULL;
    for (int i = 0; i < n; i++)
        c->fs[i] = checked_future(&c->ck);
    CHECK_EQ(&c->ck, corio_spawn(&t, setter, c), 0);
    return t;
}

/* Awaits @setter, then drops it and c->fs[0..@n): dropping the last
 * reference to a pending future cancels it. */
static void reap_setter(struct wait_case *c, int n, corio_task *setter)
{
    CHECK_EQ(&c->ck, corio_await(setter, NULL), 0);
    corio_task_unref(setter);
    for (int i = 0; i < n; i++)
        corio_future_unref(c->fs[i]);
}

static void *wait_fc_setter(void *arg)
{
    struct wait_case *c = arg;
    yield_n(2);
    CHECK_EQ(&c->ck, corio_future_set_result(c->fs[1], V(1)), 0);
    return NULL;
}

static void *wait_first_completed_main(void *arg)
{
    struct wait_case *c = arg;
    corio_future *done[3] = {0}, *pending[3] = {0};
    size_t nd = 99, np = 99;
    corio_task *setter = start_setter(c, 3, wait_fc_setter);

    CHECK_EQ(&c->ck, corio_wait(c->fs, 3, CORIO_FIRST_COMPLETED, done, &nd, pending, &np), 0);
    CHECK_EQ(&c->ck, nd, 1);
    CHECK_PTR(&c->ck, done[0], c->fs[1]);
    CHECK_EQ(&c->ck, np, 2);
    CHECK_PTR(&c->ck, pending[0], c->fs[0]);
    CHECK_PTR(&c->ck, pending[1], c->fs[2]);
    /* Satisfied already: returns at once; the sets may be left out. */
    nd = np = 99;
    CHECK_EQ(&c->ck, corio_wait(c->fs, 3, CORIO_FIRST_COMPLETED, NULL, &nd, NULL, &np), 0);
    CHECK_EQ(&c->ck, nd, 1);
    CHECK_EQ(&c->ck, np, 2);
    CHECK_EQ(&c->ck, corio_wait(c->fs, 3, CORIO_FIRST_COMPLETED, NULL, NULL, NULL, NULL), 0);
    /* Waiting cancelled nothing. */
    CHECK(&c->ck, !corio_future_done(c->fs[0]) && !corio_future_done(c->fs[2]));
    reap_setter(c, 3, setter);
    return NULL;
}

static void wait_first_completed(void **state)
{
    (void)state;
    struct wait_case c = {0};
    run_main_checked(1, wait_first_completed_main, &c, &c.ck);
}

/* fs[0] is cancelled first and fs[1] succeeds: neither is an exception, so
 * the wait goes on until fs[2] fails; fs[3] stays pending. */
static void *wait_fe_setter(void *arg)
{
    struct wait_case *c = arg;
    yield_n(2);
    CHECK_EQ(&c->ck, corio_future_cancel(c->fs[0], NULL), 1);
    yield_n(2);
    CHECK_EQ(&c->ck, corio_future_set_result(c->fs[1], V(1)), 0);
    yield_n(2);
    CHECK_EQ(&c->ck, corio_future_set_exception(c->fs[2], -EIO, "bad"), 0);
    return NULL;
}

static void *wait_fe_all_ok_setter(void *arg)
{
    struct wait_case *c = arg;
    yield_n(2);
    CHECK_EQ(&c->ck, corio_future_set_result(c->fs[1], V(1)), 0);
    yield_n(2);
    CHECK_EQ(&c->ck, corio_future_set_result(c->fs[0], V(0)), 0);
    return NULL;
}

static void *wait_first_exception_main(void *arg)
{
    struct wait_case *c = arg;
    corio_future *done[4] = {0}, *pending[4] = {0};
    size_t nd = 99, np = 99;
    const char *m = NULL;
    corio_task *setter = start_setter(c, 4, wait_fe_setter);

    CHECK_EQ(&c->ck, corio_wait(c->fs, 4, CORIO_FIRST_EXCEPTION, done, &nd, pending, &np), 0);
    CHECK_EQ(&c->ck, nd, 3);
    CHECK_PTR(&c->ck, done[0], c->fs[0]);
    CHECK_PTR(&c->ck, done[1], c->fs[1]);
    CHECK_PTR(&c->ck, done[2], c->fs[2]);
    CHECK_EQ(&c->ck, np, 1);
    CHECK_PTR(&c->ck, pending[0], c->fs[3]);
    CHECK_EQ(&c->ck, corio_future_exception(c->fs[2], &m), -EIO);
    CHECK_STR(&c->ck, m, "bad");
    reap_setter(c, 4, setter);

    /* No exception at all: returns when everything completed. */
    setter = start_setter(c, 2, wait_fe_all_ok_setter);
    nd = np = 99;
    CHECK_EQ(&c->ck, corio_wait(c->fs, 2, CORIO_FIRST_EXCEPTION, done, &nd, pending, &np), 0);
    CHECK_EQ(&c->ck, nd, 2);
    CHECK_EQ(&c->ck, np, 0);
    CHECK_PTR(&c->ck, done[0], c->fs[0]);
    CHECK_PTR(&c->ck, done[1], c->fs[1]);
    reap_setter(c, 2, setter);
    return NULL;
}

static void wait_first_exception(void **state)
{
    (void)state;
    struct wait_case c = {0};
    run_main_checked(1, wait_first_exception_main, &c, &c.ck);
}

static void *wait_ac_setter(void *arg)
{
    struct wait_case *c = arg;
    for (int i = 2; i >= 0; i--) {
        yield_n(2);
        if (i == 1)
            CHECK_EQ(&c->ck, corio_future_set_exception(c->fs[i], -EIO, "middle"), 0);
        else
            CHECK_EQ(&c->ck, corio_future_set_result(c->fs[i], V(i)), 0);
    }
    return NULL;
}

static void *wait_all_completed_main(void *arg)
{
    struct wait_case *c = arg;
    corio_future *done[3] = {0}, *pending[3] = {0};
    size_t nd = 99, np = 99;
    corio_task *setter = start_setter(c, 3, wait_ac_setter);

    CHECK_EQ(&c->ck, corio_wait(c->fs, 3, CORIO_ALL_COMPLETED, done, &nd, pending, &np), 0);
    /* In the order given, not the order completed; a failure does not stop it. */
    CHECK_EQ(&c->ck, nd, 3);
    CHECK_EQ(&c->ck, np, 0);
    for (int i = 0; i < 3; i++)
        CHECK_PTR(&c->ck, done[i], c->fs[i]);
    CHECK_EQ(&c->ck, corio_future_result(c->fs[1], NULL), -EIO);
    reap_setter(c, 3, setter);
    return NULL;
}

static void wait_all_completed(void **state)
{
    (void)state;
    struct wait_case c = {0};
    run_main_checked(1, wait_all_completed_main, &c, &c.ck);
}

/* ---- wait: a cancelled waiter cancels nothing ----------------------------- */

struct wcancel {
    struct checks ck;
    bool exact;
    corio_future *ready, *f0, *f1, *gate;
    corio_task *worker;
    int wait_rc;
    bool any_done, any_cancelled;
};

static void *await_gate(void *arg)
{
    struct wcancel *c = arg;
    CHECK_EQ(&c->ck, corio_await(c->gate, NULL), 0);
    return V(0x600d);
}

static void *wcancel_waiter(void *arg)
{
    struct wcancel *c = arg;
    corio_future *fs[3] = {c->f0, c->f1, corio_task_future(c->worker)};
    CHECK_EQ(&c->ck, corio_future_set_result(c->ready, NULL), 0);
    c->wait_rc = corio_wait(fs, 3, CORIO_ALL_COMPLETED, NULL, NULL, NULL, NULL);
    for (int i = 0; i < 3; i++) {
        c->any_done |= corio_future_done(fs[i]);
        c->any_cancelled |= corio_future_cancelled(fs[i]);
    }
    return NULL;
}

static void *wcancel_main(void *arg)
{
    struct wcancel *c = arg;
    corio_task *waiter;

    c->ready = checked_future(&c->ck);
    c->f0 = checked_future(&c->ck);
    c->f1 = checked_future(&c->ck);
    c->gate = checked_future(&c->ck);
    c->wait_rc = NOT_RETURNED;
    CHECK_EQ(&c->ck, corio_spawn(&c->worker, await_gate, c), 0);
    CHECK_EQ(&c->ck, corio_spawn(&waiter, wcancel_waiter, c), 0);
    await_ready(&c->ck, c->ready, waiter, c->exact, 2);   /* it parks in corio_wait() */
    cancel_and_reap(&c->ck, waiter, NULL);
    CHECK_EQ(&c->ck, c->wait_rc, -ECANCELED);
    CHECK(&c->ck, !c->any_done && !c->any_cancelled);
    /* Everything it waited on is still pending, and completes normally. */
    CHECK(&c->ck, !corio_future_done(c->f0) && !corio_future_done(c->f1));
    CHECK(&c->ck, !corio_task_done(c->worker));
    CHECK_EQ(&c->ck, corio_future_set_result(c->f0, V(0)), 0);
    CHECK_EQ(&c->ck, corio_future_set_result(c->f1, V(1)), 0);
    open_gate_and_reap(&c->ck, c->gate, c->worker, V(0x600d));
    corio_task_unref(waiter);
    corio_task_unref(c->worker);
    corio_future_unref(c->ready);
    corio_future_unref(c->f0);
    corio_future_unref(c->f1);
    corio_future_unref(c->gate);
    return NULL;
}

static void wcancel_on(unsigned workers)
{
    struct wcancel c = {.exact = workers == 1};
    run_main_checked(workers, wcancel_main, &c, &c.ck);
}

static void wait_cancelled_waiter_cancels_nothing(void **state)
{
    (void)state;
    on_worker_counts(wcancel_on, 1, MULTI_RUNS);
}

/* ---- wait: arguments --------------------------------------------------- */

static void *wait_outside_thread(void *arg)
{
    struct wait_case *c = arg;
    size_t nd = 0;
    CHECK_EQ(&c->ck, corio_wait(c->fs, 1, CORIO_ALL_COMPLETED, NULL, &nd, NULL, NULL), -EPERM);
    return NULL;
}

static void *wait_args_main(void *arg)
{
    struct wait_case *c = arg;
    corio_future *fs[2];

    c->fs[0] = checked_future(&c->ck);
    /* n == 0 is an error, as in asyncio. */
    CHECK_EQ(&c->ck, corio_wait(c->fs, 0, CORIO_FIRST_COMPLETED, NULL, NULL, NULL, NULL),
             -EINVAL);
    CHECK_EQ(&c->ck, corio_wait(NULL, 1, CORIO_FIRST_COMPLETED, NULL, NULL, NULL, NULL),
             -EINVAL);
    fs[0] = c->fs[0];
    fs[1] = NULL;
    CHECK_EQ(&c->ck, corio_wait(fs, 2, CORIO_FIRST_COMPLETED, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(&c->ck, corio_wait(c->fs, 1, 0, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(&c->ck, corio_wait(c->fs, 1, 4, NULL, NULL, NULL, NULL), -EINVAL);
    run_plain_thread(&c->ck, wait_outside_thread, c);
    CHECK(&c->ck, !corio_future_done(c->fs[0]));
    corio_future_unref(c->fs[0]);
    return NULL;
}

static void wait_invalid_arguments(void **state)
{
    (void)state;
    struct wait_case c = {0};
    run_main_checked(1, wait_args_main, &c, &c.ck);
}

/* ---- as_completed ------------------------------------------------------ */

#define NAC 4
#define NAC_MANY 16

struct ac_case {
    struct checks ck;
    corio_future *fs[NAC];
};

static const int ac_order[NAC] = {2, 0, 3, 1};

static void *ac_setter(void *arg)
{
    struct ac_case *c = arg;
    for (int k = 0; k < NAC; k++) {
        yield_n(2);
        CHECK_EQ(&c->ck, corio_future_set_result(c->fs[ac_order[k]], V(ac_order[k])), 0);
    }
    return NULL;
}

static void *ac_order_main(void *arg)
{
    struct ac_case *c = arg;
    corio_as_completed *it = NULL;
    corio_task *setter, *ts[NAC];
    struct order_case oc = {0};
    struct order_child och[NAC];
    corio_future *got = NULL;
    void *v = NULL;

    /* Plain futures completed in the order 2, 0, 3, 1. */
    for (int i = 0; i < NAC; i++)
        c->fs[i] = checked_future(&c->ck);
    CHECK_EQ(&c->ck, corio_as_completed_start(&it, c->fs, NAC), 0);
    CHECK_EQ(&c->ck, corio_spawn(&setter, ac_setter, c), 0);
    for (int k = 0; k < NAC; k++) {
        CHECK_EQ(&c->ck, corio_as_completed_next(it, &got), 0);
        CHECK_PTR(&c->ck, got, c->fs[ac_order[k]]);
        CHECK(&c->ck, corio_future_done(got));
        CHECK_EQ(&c->ck, corio_future_result(got, &v), 0);
        CHECK_PTR(&c->ck, v, V(ac_order[k]));
    }
    CHECK_EQ(&c->ck, corio_as_completed_next(it, &got), -ENOENT);
    CHECK_EQ(&c->ck, corio_as_completed_next(it, &got), -ENOENT);
    corio_as_completed_destroy(it);
    CHECK_EQ(&c->ck, corio_await(setter, NULL), 0);
    corio_task_unref(setter);
    /* The iterator took its own references: the caller's may go first. */
    for (int i = 0; i < NAC; i++)
        corio_future_unref(c->fs[i]);

    /* Tasks: order_child_main makes the last-spawned finish first; the
     * iterator's references keep the futures alive after our unrefs. */
    corio_future *tf[NAC];
    for (int i = 0; i < NAC; i++) {
        och[i] = (struct order_child){&oc, i};
        CHECK_EQ(&c->ck, corio_spawn(&ts[i], order_child_main, &och[i]), 0);
        tf[i] = corio_task_future(ts[i]);
    }
    CHECK_EQ(&c->ck, corio_as_completed_start(&it, tf, NAC), 0);
    for (int i = 0; i < NAC; i++)
        corio_task_unref(ts[i]);
    for (int k = 0; k < NAC; k++) {
        CHECK_EQ(&c->ck, corio_as_completed_next(it, &got), 0);
        CHECK_PTR(&c->ck, got, tf[NAC - 1 - k]);
        CHECK_EQ(&c->ck, corio_future_result(got, &v), 0);
        CHECK_PTR(&c->ck, v, V(100 + NAC - 1 - k));
    }
    CHECK_EQ(&c->ck, corio_as_completed_next(it, &got), -ENOENT);
    corio_as_completed_destroy(it);
    return NULL;
}

static void as_completed_yields_in_completion_order(void **state)
{
    (void)state;
    struct ac_case c = {0};
    run_main_checked(1, ac_order_main, &c, &c.ck);
}

/* Many workers: each future exactly once, done when returned, then -ENOENT. */
static void *ac_spin_child(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    yield_n((int)(i * 7 % 5));
    return V(i);
}

static void *ac_many_main(void *arg)
{
    struct checks *ck = arg;
    corio_task *ts[NAC_MANY];
    corio_future *fs[NAC_MANY], *got = NULL;
    corio_as_completed *it = NULL;
    int seen[NAC_MANY] = {0};

    for (uintptr_t i = 0; i < NAC_MANY; i++) {
        CHECK_EQ(ck, corio_spawn(&ts[i], ac_spin_child, V(i)), 0);
        fs[i] = corio_task_future(ts[i]);
    }
    CHECK_EQ(ck, corio_as_completed_start(&it, fs, NAC_MANY), 0);
    for (int k = 0; k < NAC_MANY; k++) {
        void *v = NULL;
        CHECK_EQ(ck, corio_as_completed_next(it, &got), 0);
        CHECK(ck, corio_future_done(got));
        CHECK_EQ(ck, corio_future_result(got, &v), 0);
        if ((uintptr_t)v < NAC_MANY) {
            CHECK_PTR(ck, got, fs[(uintptr_t)v]);
            seen[(uintptr_t)v]++;
        }
    }
    CHECK_EQ(ck, corio_as_completed_next(it, &got), -ENOENT);
    for (int i = 0; i < NAC_MANY; i++)
        CHECK_EQ(ck, seen[i], 1);
    corio_as_completed_destroy(it);
    for (int i = 0; i < NAC_MANY; i++)
        corio_task_unref(ts[i]);
    return NULL;
}

static void ac_many_on(unsigned workers)
{
    run_checks(workers, ac_many_main);
}

static void as_completed_each_future_once_on_many_workers(void **state)
{
    (void)state;
    on_worker_counts(ac_many_on, MULTI_RUNS, MULTI_RUNS);
}

/* ---- as_completed: cancellation while waiting ------------------------------ */

#define AC_LOG 8

struct ac_cancel {
    struct checks ck;
    corio_future *fs[3];
    int rcs[AC_LOG];
    int idx[AC_LOG];
    int n;
};

static void *ac_cancel_iterator(void *arg)
{
    struct ac_cancel *c = arg;
    corio_as_completed *it = NULL;
    CHECK_EQ(&c->ck, corio_as_completed_start(&it, c->fs, 3), 0);
    while (c->n < AC_LOG) {
        corio_future *got = NULL;
        int rc = corio_as_completed_next(it, &got);
        c->rcs[c->n] = rc;
        c->idx[c->n] = -1;
        for (int i = 0; i < 3; i++)
            if (rc == 0 && got == c->fs[i])
                c->idx[c->n] = i;
        c->n++;
        if (rc == -ECANCELED)   /* handled: go on iterating */
            CHECK_EQ(&c->ck, corio_task_uncancel(corio_current_task()), 0);
        else if (rc != 0)
            break;
    }
    corio_as_completed_destroy(it);
    return NULL;
}

static void *ac_cancel_main(void *arg)
{
    struct ac_cancel *c = arg;
    corio_task *t;

    for (int i = 0; i < 3; i++)
        c->fs[i] = checked_future(&c->ck);
    CHECK_EQ(&c->ck, corio_spawn(&t, ac_cancel_iterator, c), 0);
    CHECK_EQ(&c->ck, corio_yield(), 0);   /* t parks in next() */
    CHECK_EQ(&c->ck, corio_task_cancel(t, NULL), 1);
    CHECK_EQ(&c->ck, corio_yield(), 0);   /* t sees -ECANCELED, parks again */
    CHECK_EQ(&c->ck, c->n, 1);
    CHECK_EQ(&c->ck, corio_future_set_result(c->fs[1], V(1)), 0);
    CHECK_EQ(&c->ck, corio_yield(), 0);
    CHECK_EQ(&c->ck, corio_future_set_result(c->fs[0], V(0)), 0);
    CHECK_EQ(&c->ck, corio_future_set_result(c->fs[2], V(2)), 0);
    CHECK_EQ(&c->ck, corio_await(t, NULL), 0);
    CHECK(&c->ck, !corio_task_cancelled(t));
    for (int i = 0; i < 3; i++) {
        CHECK(&c->ck, !corio_future_cancelled(c->fs[i]));
        corio_future_unref(c->fs[i]);
    }
    corio_task_unref(t);
    return NULL;
}

static void as_completed_cancel_then_continue(void **state)
{
    (void)state;
    struct ac_cancel c = {0};
    run_main_checked(1, ac_cancel_main, &c, &c.ck);
    assert_int_equal(c.n, 5);
    assert_int_equal(c.rcs[0], -ECANCELED);
    assert_int_equal(c.rcs[1], 0);
    assert_int_equal(c.idx[1], 1);
    assert_int_equal(c.rcs[2], 0);
    assert_int_equal(c.idx[2], 0);
    assert_int_equal(c.rcs[3], 0);
    assert_int_equal(c.idx[3], 2);
    assert_int_equal(c.rcs[4], -ENOENT);
}

/* ---- as_completed: arguments -------------------------------------------- */

struct ac_args {
    struct checks ck;
    corio_future *f;
};

static void *ac_outside_thread(void *arg)
{
    struct ac_args *c = arg;
    corio_as_completed *it = NULL;
    corio_future *got = NULL;
    /* Starting is allowed from any thread; iterating is for a task. */
    CHECK_EQ(&c->ck, corio_as_completed_start(&it, &c->f, 1), 0);
    CHECK_EQ(&c->ck, corio_as_completed_next(it, &got), -EPERM);
    corio_as_completed_destroy(it);
    return NULL;
}

static void *ac_args_main(void *arg)
{
    struct ac_args *c = arg;
    corio_as_completed *it = NULL;
    corio_future *fs[2], *got = NULL;

    c->f = checked_future(&c->ck);
    CHECK_EQ(&c->ck, corio_as_completed_start(NULL, &c->f, 1), -EINVAL);
    CHECK_EQ(&c->ck, corio_as_completed_start(&it, NULL, 2), -EINVAL);
    fs[0] = c->f;
    fs[1] = NULL;
    CHECK_EQ(&c->ck, corio_as_completed_start(&it, fs, 2), -EINVAL);
    CHECK_EQ(&c->ck, corio_as_completed_next(NULL, &got), -EINVAL);
    /* Nothing to iterate over. */
    CHECK_EQ(&c->ck, corio_as_completed_start(&it, NULL, 0), 0);
    CHECK_EQ(&c->ck, corio_as_completed_next(it, &got), -ENOENT);
    corio_as_completed_destroy(it);
    it = NULL;
    CHECK_EQ(&c->ck, corio_as_completed_start(&it, &c->f, 1), 0);
    CHECK_EQ(&c->ck, corio_as_completed_next(it, NULL), -EINVAL);
    corio_as_completed_destroy(it);
    corio_as_completed_destroy(NULL);
    run_plain_thread(&c->ck, ac_outside_thread, c);
    CHECK(&c->ck, !corio_future_done(c->f));
    corio_future_unref(c->f);
    return NULL;
}

static void as_completed_invalid_arguments(void **state)
{
    (void)state;
    struct ac_args c = {0};
    run_main_checked(1, ac_args_main, &c, &c.ck);
}

/* ---- shield ------------------------------------------------------------ */

struct shield_case {
    struct checks ck;
    bool exact;
    corio_future *ready, *gate;
    corio_task *inner;
    int shield_rc;
    bool inner_done_at_return, outer_cancelled_at_return;
};

static void *shield_inner(void *arg)
{
    struct shield_case *c = arg;
    CHECK_EQ(&c->ck, corio_await(c->gate, NULL), 0);
    return V(42);
}

static void *shield_awaiter(void *arg)
{
    struct shield_case *c = arg;
    corio_future *outer = NULL;
    CHECK_EQ(&c->ck, corio_shield(corio_task_future(c->inner), &outer), 0);
    CHECK_EQ(&c->ck, corio_future_set_result(c->ready, NULL), 0);
    c->shield_rc = corio_await(outer, NULL);
    c->inner_done_at_return = corio_task_done(c->inner);
    c->outer_cancelled_at_return = corio_future_cancelled(outer);
    corio_future_unref(outer);
    return NULL;
}

static void *shield_cancel_main(void *arg)
{
    struct shield_case *c = arg;
    corio_task *s;

    c->ready = checked_future(&c->ck);
    c->gate = checked_future(&c->ck);
    c->shield_rc = NOT_RETURNED;
    CHECK_EQ(&c->ck, corio_spawn(&c->inner, shield_inner, c), 0);
    CHECK_EQ(&c->ck, corio_spawn(&s, shield_awaiter, c), 0);
    await_ready(&c->ck, c->ready, s, c->exact, 2);   /* s is parked on the shield */
    /* s gets -ECANCELED at once, while the inner task still waits. */
    cancel_and_reap(&c->ck, s, NULL);
    CHECK_EQ(&c->ck, c->shield_rc, -ECANCELED);
    CHECK(&c->ck, c->outer_cancelled_at_return);
    CHECK(&c->ck, !c->inner_done_at_return);
    CHECK(&c->ck, !corio_task_done(c->inner));
    CHECK_EQ(&c->ck, corio_task_cancelling(c->inner), 0);
    /* The inner task goes on and completes normally. */
    open_gate_and_reap(&c->ck, c->gate, c->inner, V(42));
    corio_task_unref(s);
    corio_task_unref(c->inner);
    corio_future_unref(c->ready);
    corio_future_unref(c->gate);
    return NULL;
}

static void shield_cancel_on(unsigned workers)
{
    struct shield_case c = {.exact = workers == 1};
    run_main_checked(workers, shield_cancel_main, &c, &c.ck);
}

static void shield_cancel_keeps_inner_running(void **state)
{
    (void)state;
    on_worker_counts(shield_cancel_on, 1, MULTI_RUNS);
}

static void *shield_done_main(void *arg)
{
    struct checks *ck = arg;
    corio_future *ok, *bad, *gone, *outer = NULL;
    void *v = NULL;
    const char *m = NULL;

    ok = checked_future(ck);
    bad = checked_future(ck);
    gone = checked_future(ck);
    CHECK_EQ(ck, corio_future_set_result(ok, V(7)), 0);
    CHECK_EQ(ck, corio_future_set_exception(bad, -EIO, "gone wrong"), 0);
    CHECK_EQ(ck, corio_future_cancel(gone, NULL), 1);

    CHECK_EQ(ck, corio_shield(ok, &outer), 0);
    CHECK(ck, corio_future_done(outer));
    CHECK_EQ(ck, corio_await(outer, &v), 0);
    CHECK_PTR(ck, v, V(7));
    corio_future_unref(outer);

    /* The inner error is copied, and counts as retrieved by the shield:
     * bad is dropped below without a report. */
    CHECK_EQ(ck, corio_shield(bad, &outer), 0);
    CHECK(ck, corio_future_done(outer));
    CHECK_EQ(ck, corio_await(outer, NULL), -EIO);
    CHECK_EQ(ck, corio_future_exception(outer, &m), -EIO);
    CHECK_STR(ck, m, "gone wrong");
    corio_future_unref(outer);

    CHECK_EQ(ck, corio_shield(gone, &outer), 0);
    CHECK(ck, corio_future_cancelled(outer));
    CHECK_EQ(ck, corio_await(outer, NULL), -ECANCELED);
    corio_future_unref(outer);

    corio_future_unref(ok);
    corio_future_unref(bad);
    corio_future_unref(gone);
    return NULL;
}

static void shield_of_done_future(void **state)
{
    (void)state;
    run_checks(1, shield_done_main);
}

static void *raise_inner_broke(void *arg)
{
    (void)arg;
    yield_n(2);
    corio_raise(-EIO, "inner broke");
    return NULL;
}

static void *shield_failure_main(void *arg)
{
    struct checks *ck = arg;
    corio_task *inner;
    corio_future *outer = NULL;
    const char *m = NULL;

    CHECK_EQ(ck, corio_spawn(&inner, raise_inner_broke, NULL), 0);
    CHECK_EQ(ck, corio_shield(corio_task_future(inner), &outer), 0);
    CHECK(ck, !corio_future_done(outer));
    CHECK_EQ(ck, corio_await(outer, NULL), -EIO);
    CHECK_EQ(ck, corio_future_exception(outer, &m), -EIO);
    CHECK_STR(ck, m, "inner broke");
    CHECK(ck, corio_task_done(inner));
    /* inner's error is not retrieved here: the shield did (no report). */
    corio_task_unref(inner);
    corio_future_unref(outer);
    return NULL;
}

static void shield_inner_failure_propagates(void **state)
{
    (void)state;
    run_checks(1, shield_failure_main);
}

struct shield_args {
    struct checks ck;
    corio_future *f;
};

static void *shield_outside_thread(void *arg)
{
    struct shield_args *c = arg;
    corio_future *outer = NULL;
    CHECK_EQ(&c->ck, corio_shield(c->f, &outer), -EPERM);
    CHECK_PTR(&c->ck, outer, NULL);
    return NULL;
}

static void *shield_args_main(void *arg)
{
    struct shield_args *c = arg;
    corio_future *outer = NULL;

    c->f = checked_future(&c->ck);
    CHECK_EQ(&c->ck, corio_shield(NULL, &outer), -EINVAL);
    CHECK_EQ(&c->ck, corio_shield(c->f, NULL), -EINVAL);
    CHECK_PTR(&c->ck, outer, NULL);
    run_plain_thread(&c->ck, shield_outside_thread, c);
    CHECK(&c->ck, !corio_future_done(c->f));
    corio_future_unref(c->f);
    return NULL;
}

static void shield_invalid_arguments(void **state)
{
    (void)state;
    struct shield_args c = {0};
    run_main_checked(1, shield_args_main, &c, &c.ck);
}

/* ---- stress: gather over many tasks, many times ------------------------ */

#define STRESS_ROUNDS 8
#define STRESS_TASKS 10000

static void *stress_child(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    yield_n((int)(i % 3));
    return V(i + 1);
}

static void *stress_main(void *arg)
{
    struct checks *ck = arg;
    corio_task **ts = calloc(STRESS_TASKS, sizeof *ts);
    void **results = calloc(STRESS_TASKS, sizeof *results);
    int *errors = calloc(STRESS_TASKS, sizeof *errors);
    CHECK(ck, ts && results && errors);
    if (!ts || !results || !errors)
        goto out;
    for (int round = 0; round < STRESS_ROUNDS; round++) {
        size_t spawned = 0, bad = 0;
        for (uintptr_t i = 0; i < STRESS_TASKS; i++) {
            int rc = corio_spawn(&ts[i], stress_child, V(i));
            CHECK_EQ(ck, rc, 0);
            if (rc < 0)
                break;
            spawned++;
        }
        CHECK_EQ(ck, corio_gather_tasks(ts, spawned, 0, results, errors), 0);
        for (size_t i = 0; i < spawned; i++) {
            bad += results[i] != V(i + 1) || errors[i] != 0 || !corio_task_done(ts[i]);
            corio_task_unref(ts[i]);
        }
        CHECK_EQ(ck, bad, 0);
    }
out:
    free(ts);
    free(results);
    free(errors);
    return NULL;
}

static void gather_stress_many_tasks(void **state)
{
    (void)state;
    run_checks(stress_workers, stress_main);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            char *end;
            unsigned long n = strtoul(argv[++i], &end, 10);
            if (*end || n == 0 || n > 1024) {
                fprintf(stderr, "%s: --workers takes a number from 1 to 1024\n", argv[0]);
                return 2;
            }
            stress_workers = (unsigned)n;
        } else {
            fprintf(stderr, "usage: %s [--workers N]\n", argv[0]);
            return 2;
        }
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gather_results_in_given_order),
        cmocka_unit_test(gather_futures_results_in_given_order),
        cmocka_unit_test(gather_failure_returns_first_error_at_once),
        cmocka_unit_test(gather_cancelled_child_returns_ecanceled),
        cmocka_unit_test(gather_return_exceptions_collects_errors),
        cmocka_unit_test(gather_cancel_cancels_children),
        cmocka_unit_test(gather_empty_and_null_entries),
        cmocka_unit_test(wait_first_completed),
        cmocka_unit_test(wait_first_exception),
        cmocka_unit_test(wait_all_completed),
        cmocka_unit_test(wait_cancelled_waiter_cancels_nothing),
        cmocka_unit_test(wait_invalid_arguments),
        cmocka_unit_test(as_completed_yields_in_completion_order),
        cmocka_unit_test(as_completed_each_future_once_on_many_workers),
        cmocka_unit_test(as_completed_cancel_then_continue),
        cmocka_unit_test(as_completed_invalid_arguments),
        cmocka_unit_test(shield_cancel_keeps_inner_running),
        cmocka_unit_test(shield_of_done_future),
        cmocka_unit_test(shield_inner_failure_propagates),
        cmocka_unit_test(shield_invalid_arguments),
        cmocka_unit_test(gather_stress_many_tasks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
