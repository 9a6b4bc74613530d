/* tests/test_time.c - timers (corio/time.h, core/timer.c): sleep,
 * call_later/call_at, wait_for, timeout scopes, and corio_wait_timeout()
 * (corio/combinators.h), checked against asyncio's sleep, loop.call_later,
 * wait_for, timeout() and wait(timeout=).
 *
 * Time bounds are loose on the late side (SLACK_MS, for a loaded 2-core CI
 * box) and exact on the early side: a timer never fires early. A wait that
 * should end "promptly" (a 10 s sleep cancelled, a wait_for that times out)
 * must end within PROMPT_MS, far below the 10 s it would otherwise take.
 *
 * Order-sensitive cases run on one worker (ready tasks and callbacks run in
 * the order they became ready); order-free ones also on 2 workers, repeated
 * TIME_REPEATS times (fewer than testutil's REPEATS: every run sleeps).
 * Cases that cancel a sleeper from another worker or from a plain thread
 * exercise the path where the woken task moves back to its timer's worker
 * (corio__task_migrate) before it removes the timer: white-box, they look at
 * the wheel through core/internal.h to see that the timer is gone.
 *
 * As in every suite, code inside a runtime only records (CHECK*), and the
 * case asserts after corio_rt_run() returned (testutil.h).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corio/corio.h"

#include "internal.h"   /* white-box: the current worker's wheel */
#include "testutil.h"

#define MS INT64_C(1000000)
#define SLACK_MS 200        /* late-side tolerance of a timing check */
#define PROMPT_MS 1000      /* "promptly": well below a 10 s sleep */
#define LONG_NS (10000 * MS) /* a sleep that must never run to its end */
#define TIME_REPEATS 5      /* multi-worker runs of an order-free timing case */

static uint64_t now_ns(void)
{
    return corio_time_ns();
}

static int64_t elapsed_ms(uint64_t since)
{
    return (int64_t)((now_ns() - since) / (uint64_t)MS);
}

/* Timers armed on the calling worker's wheel (white-box). */
static size_t wheel_count_here(void)
{
    struct corio__worker *w = corio__worker_current();
    return w && w->wheel ? corio__wheel_count(w->wheel) : 0;
}

/* ---- sleep ---------------------------------------------------------------- */

struct sleep_word {
    struct order_log *log;
    const char *word;
    int64_t ms;
    int rc;
    uint64_t deadline;   /* when the sleep was asked to end (about) */
};

static void *sleep_then_log(void *arg)
{
    struct sleep_word *s = arg;

    s->deadline = now_ns() + (uint64_t)s->ms * MS;
    s->rc = corio_sleep(s->ms * MS);
    log_word(s->log, s->word);
    return NULL;
}

struct order_case {
    struct checks ck;
    struct order_log log;
    char expected[32];   /* the words in the order of their deadlines */
};

static void *sleep_order_main(void *arg)
{
    struct order_case *c = arg;
    struct sleep_word w[3] = {{&c->log, "30", 30, 1, 0}, {&c->log, "10", 10, 1, 0},
                              {&c->log, "20", 20, 1, 0}};
    corio_task *t[3];

    for (int i = 0; i < 3; i++)
        CHECK_EQ(&c->ck, corio_spawn(&t[i], sleep_then_log, &w[i]), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(&c->ck, corio_await(t[i], NULL), 0);
        CHECK_EQ(&c->ck, w[i].rc, 0);
        corio_task_unref(t[i]);
    }
    /* Usually "10 20 30"; but each sleep counts from its own task's start,
     * and a loaded machine (TSan in CI) can start "20" more than 10 ms after
     * "30": the order owed is that of the deadlines the tasks asked for. */
    int by_deadline[3] = {0, 1, 2};
    for (int i = 1; i < 3; i++)
        for (int j = i; j > 0 && w[by_deadline[j]].deadline < w[by_deadline[j - 1]].deadline; j--) {
            int tmp = by_deadline[j];
            by_deadline[j] = by_deadline[j - 1];
            by_deadline[j - 1] = tmp;
        }
    snprintf(c->expected, sizeof c->expected, "%s %s %s", w[by_deadline[0]].word,
             w[by_deadline[1]].word, w[by_deadline[2]].word);
    return NULL;
}

static void time_sleep_wakes_in_deadline_order(void **state)
{
    struct order_case c = {0};

    (void)state;
    run_main_checked(1, sleep_order_main, &c, &c.ck);
    assert_string_equal(c.log.buf, c.expected);
}

static void *sleep_accuracy_main(void *arg)
{
    struct checks *ck = arg;
    uint64_t t0 = now_ns();

    CHECK_EQ(ck, corio_sleep(50 * MS), 0);
    uint64_t took = now_ns() - t0;
    CHECK(ck, took >= (uint64_t)(50 * MS));
    CHECK(ck, took < (uint64_t)((50 + SLACK_MS) * MS));
    return NULL;
}

static void sleep_accuracy_on(unsigned workers)
{
    run_checks(workers, sleep_accuracy_main);
}

static void time_sleep_is_accurate(void **state)
{
    (void)state;
    on_worker_counts(sleep_accuracy_on, 1, 1);
}

/* Sleeps of 1..12 ms and deadlines a little ahead: each one returns at or
 * after the time asked for, never before. */
static void *never_early_task(void *arg)
{
    struct checks *ck = arg;

    for (int ms = 1; ms <= 12; ms++) {
        uint64_t t0 = now_ns();
        CHECK_EQ(ck, corio_sleep(ms * MS + 123456), 0);
        CHECK(ck, now_ns() - t0 >= (uint64_t)(ms * MS + 123456));
        uint64_t when = now_ns() + (uint64_t)ms * 700000;   /* not on a tick */
        CHECK_EQ(ck, corio_sleep_until(when), 0);
        CHECK(ck, now_ns() >= when);
    }
    return NULL;
}

static void *never_early_main(void *arg)
{
    struct checks *ck = arg;
    corio_task *t[4];

    for (int i = 0; i < 4; i++)
        CHECK_EQ(ck, corio_spawn(&t[i], never_early_task, ck), 0);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(ck, corio_await(t[i], NULL), 0);
        corio_task_unref(t[i]);
    }
    return NULL;
}

static void never_early_on(unsigned workers)
{
    run_checks(workers, never_early_main);
}

static void time_sleep_never_early(void **state)
{
    (void)state;
    on_worker_counts(never_early_on, 1, 2);
}

static void *log_b(void *arg)
{
    log_word(arg, "b");
    return NULL;
}

/* sleep(0) and a deadline in the past each let every ready task run one
 * step first, as asyncio.sleep(0) does. */
static void *sleep_zero_main(void *arg)
{
    struct order_case *c = arg;
    corio_task *t;

    CHECK_EQ(&c->ck, corio_spawn(&t, log_b, &c->log), 0);
    log_word(&c->log, "m1");
    CHECK_EQ(&c->ck, corio_sleep(0), 0);
    log_word(&c->log, "m2");
    corio_task_unref(t);
    CHECK_EQ(&c->ck, corio_spawn(&t, log_b, &c->log), 0);
    CHECK_EQ(&c->ck, corio_sleep_until(1), 0);   /* long past */
    log_word(&c->log, "m3");
    corio_task_unref(t);
    CHECK_EQ(&c->ck, wheel_count_here(), 0);
    return NULL;
}

static void time_sleep_zero_yields(void **state)
{
    struct order_case c = {0};

    (void)state;
    run_main_checked(1, sleep_zero_main, &c, &c.ck);
    assert_string_equal(c.log.buf, "m1 b m2 b m3");
}

static void noop_callback(void *arg)
{
    (void)arg;
}

static void *negative_main(void *arg)
{
    struct checks *ck = arg;
    corio_handle *h = (corio_handle *)ck;   /* must stay untouched */
    corio_timeout tm;
    corio_future *f = new_future();
    size_t nd = 7;

    CHECK_EQ(ck, corio_sleep(-1), -EINVAL);
    CHECK_EQ(ck, corio_sleep(INT64_MIN), -EINVAL);
    CHECK_EQ(ck, corio_call_later(&h, -1, noop_callback, NULL), -EINVAL);
    CHECK_PTR(ck, h, ck);
    CHECK_EQ(ck, corio_call_later(&h, 1, NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_call_at(&h, 1, NULL, NULL), -EINVAL);
    CHECK_PTR(ck, h, ck);
    CHECK_EQ(ck, corio_timeout_enter(&tm, -1), -EINVAL);
    CHECK_EQ(ck, corio_wait_for(f, -1, NULL), -EINVAL);
    CHECK_EQ(ck, corio_wait_for((corio_future *)NULL, 1, NULL), -EINVAL);
    CHECK_EQ(ck, corio_wait_timeout(&f, 1, CORIO_ALL_COMPLETED, -1, NULL, &nd, NULL, NULL),
             -EINVAL);
    CHECK_EQ(ck, nd, 7);
    CHECK_EQ(ck, corio_wait_timeout(&f, 0, CORIO_ALL_COMPLETED, 5, NULL, NULL, NULL, NULL),
             -EINVAL);
    CHECK_EQ(ck, corio_wait_timeout(NULL, 1, CORIO_ALL_COMPLETED, 5, NULL, NULL, NULL, NULL),
             -EINVAL);
    CHECK_EQ(ck, corio_wait_timeout(&f, 1, 0, 5, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK(ck, !corio_future_done(f));   /* nothing waited, nothing cancelled */
    CHECK_EQ(ck, wheel_count_here(), 0);
    corio_future_unref(f);
    return NULL;
}

static void *off_worker_calls(void *arg)
{
    struct checks *ck = arg;
    corio_timeout tm;

    CHECK_EQ(ck, corio_sleep(1), -EPERM);
    CHECK_EQ(ck, corio_sleep_until(1), -EPERM);
    CHECK_EQ(ck, corio_call_later(NULL, 1, noop_callback, NULL), -EPERM);
    CHECK_EQ(ck, corio_call_at(NULL, 1, noop_callback, NULL), -EPERM);
    CHECK_EQ(ck, corio_timeout_enter(&tm, 1), -EPERM);
    return NULL;
}

static void *off_worker_main(void *arg)
{
    struct checks *ck = arg;

    run_plain_thread(ck, off_worker_calls, ck);
    return NULL;
}

static void time_negative_delays_are_einval(void **state)
{
    struct checks ck = {0};

    (void)state;
    run_checks(1, negative_main);
    off_worker_calls(&ck);          /* no runtime at all */
    run_main_checked(1, off_worker_main, &ck, &ck);   /* a thread beside one */
}

/* ---- cancelling a sleep ---------------------------------------------------- */

struct sleeper {
    struct checks *ck;
    atomic_int armed_on;    /* worker that armed the timer, + 1; 0: not yet */
    atomic_int woke_on;     /* worker it returned on, + 1 */
    int rc;
    size_t wheel_after;     /* timers left on that worker's wheel */
};

static void *long_sleeper(void *arg)
{
    struct sleeper *s = arg;

    atomic_store(&s->armed_on, corio_worker_id() + 1);
    s->rc = corio_sleep(LONG_NS);
    atomic_store(&s->woke_on, corio_worker_id() + 1);
    s->wheel_after = wheel_count_here();
    return NULL;
}

/* Spawns a long sleeper and yields until it is asleep (its timer armed). */
static corio_task *start_sleeper(struct sleeper *s)
{
    corio_task *t = NULL;

    CHECK_EQ(s->ck, corio_spawn(&t, long_sleeper, s), 0);
    while (!atomic_load(&s->armed_on))
        corio_sleep(MS);
    corio_sleep(2 * MS);   /* now it has certainly parked in its sleep */
    return t;
}

/* The sleeper was cancelled and ended promptly, with its timer removed. */
static void check_cancelled_sleeper(struct sleeper *s, corio_task *t, uint64_t t0)
{
    CHECK_EQ(s->ck, corio_await(t, NULL), -ECANCELED);
    CHECK(s->ck, corio_task_cancelled(t));
    CHECK_EQ(s->ck, s->rc, -ECANCELED);
    CHECK(s->ck, elapsed_ms(t0) < PROMPT_MS);
    /* The timer was removed where it lived: it returned on that worker. */
    CHECK_EQ(s->ck, atomic_load(&s->woke_on), atomic_load(&s->armed_on));
    CHECK_EQ(s->ck, s->wheel_after, 0);
    corio_task_unref(t);
}

static void *cancel_sleep_main(void *arg)
{
    struct checks *ck = arg;
    struct sleeper s = {.ck = ck};
    uint64_t t0 = now_ns();
    corio_task *t = start_sleeper(&s);

    CHECK_EQ(ck, corio_task_cancel(t, NULL), 1);
    check_cancelled_sleeper(&s, t, t0);
    CHECK_EQ(ck, wheel_count_here(), 0);
    return NULL;
}

static void time_cancel_during_sleep_is_prompt(void **state)
{
    uint64_t t0 = now_ns();

    (void)state;
    run_checks(1, cancel_sleep_main);
    /* Nothing kept the runtime waiting for the 10 s timer either. */
    assert_true(elapsed_ms(t0) < PROMPT_MS);
}

/* The canceller yields until it runs on another worker than the sleeper's
 * timer (stealing moves it; bounded: if it never moves, it cancels anyway
 * and the run is not counted as cross-worker). */
struct remote_cancel {
    struct sleeper s;
    corio_task *sleeper;
    bool crossed;
};

static void *remote_canceller(void *arg)
{
    struct remote_cancel *r = arg;
    uint64_t t0 = now_ns();

    while (corio_worker_id() + 1 == atomic_load(&r->s.armed_on) && elapsed_ms(t0) < 500)
        corio_yield();
    r->crossed = corio_worker_id() + 1 != atomic_load(&r->s.armed_on);
    CHECK_EQ(r->s.ck, corio_task_cancel(r->sleeper, NULL), 1);
    return NULL;
}

static void *remote_cancel_main(void *arg)
{
    struct remote_cancel *r = arg;
    uint64_t t0 = now_ns();
    corio_task *c;

    r->sleeper = start_sleeper(&r->s);
    CHECK_EQ(r->s.ck, corio_spawn(&c, remote_canceller, r), 0);
    CHECK_EQ(r->s.ck, corio_await(c, NULL), 0);
    corio_task_unref(c);
    check_cancelled_sleeper(&r->s, r->sleeper, t0);
    return NULL;
}

static void time_cancel_sleeper_from_other_worker(void **state)
{
    int crossed = 0;

    (void)state;
    for (int i = 0; i < 10; i++) {
        struct checks ck = {0};
        struct remote_cancel r = {.s = {.ck = &ck}};

        run_main_checked(2, remote_cancel_main, &r, &ck);
        crossed += r.crossed;
    }
    /* Stealing put the canceller on the other worker at least once. */
    assert_true(crossed > 0);
}

static void *plain_canceller(void *arg)
{
    struct remote_cancel *r = arg;

    CHECK_EQ(r->s.ck, corio_task_cancel(r->sleeper, "from a thread"), 1);
    return NULL;
}

static void *thread_cancel_main(void *arg)
{
    struct remote_cancel *r = arg;
    uint64_t t0 = now_ns();

    r->sleeper = start_sleeper(&r->s);
    run_plain_thread(r->s.ck, plain_canceller, r);
    check_cancelled_sleeper(&r->s, r->sleeper, t0);
    return NULL;
}

static void thread_cancel_on(unsigned workers)
{
    struct checks ck = {0};
    struct remote_cancel r = {.s = {.ck = &ck}};

    run_main_checked(workers, thread_cancel_main, &r, &ck);
}

static void time_cancel_sleeper_from_plain_thread(void **state)
{
    (void)state;
    on_worker_counts(thread_cancel_on, 1, TIME_REPEATS);
}

/* ---- call_later / call_at ------------------------------------------------------ */

struct later_word {
    struct order_log *log;
    const char *word;
    atomic_int ran;
};

static void later_callback(void *arg)
{
    struct later_word *w = arg;

    atomic_fetch_add(&w->ran, 1);
    log_word(w->log, w->word);
}

static void *call_later_main(void *arg)
{
    struct order_case *c = arg;
    struct later_word w[6] = {{&c->log, "30", 0}, {&c->log, "10", 0}, {&c->log, "20", 0},
                              {&c->log, "at5", 0}, {&c->log, "tie1", 0}, {&c->log, "tie2", 0}};
    static const int64_t ms[3] = {30, 10, 20};
    corio_handle *h[6] = {0}, *soon = NULL;

    for (int i = 0; i < 3; i++) {
        uint64_t before = now_ns();
        CHECK_EQ(&c->ck, corio_call_later(&h[i], ms[i] * MS, later_callback, &w[i]), 0);
        uint64_t when = corio_handle_when(h[i]);
        CHECK(&c->ck, when >= before + (uint64_t)(ms[i] * MS));
        CHECK(&c->ck, when <= now_ns() + (uint64_t)(ms[i] * MS));
    }
    uint64_t at = now_ns() + 5 * MS, tie = now_ns() + 40 * MS;
    CHECK_EQ(&c->ck, corio_call_at(&h[3], at, later_callback, &w[3]), 0);
    CHECK_EQ(&c->ck, corio_handle_when(h[3]), at);
    /* Equal deadlines fire in the order they were set. */
    CHECK_EQ(&c->ck, corio_call_at(&h[4], tie, later_callback, &w[4]), 0);
    CHECK_EQ(&c->ck, corio_call_at(&h[5], tie, later_callback, &w[5]), 0);
    CHECK_EQ(&c->ck, corio_call_soon(&soon, noop_callback, NULL), 0);
    CHECK_EQ(&c->ck, corio_handle_when(soon), 0);
    CHECK_EQ(&c->ck, corio_handle_when(NULL), 0);
    corio_handle_unref(soon);

    CHECK_EQ(&c->ck, corio_sleep(60 * MS), 0);
    CHECK(&c->ck, now_ns() >= tie);
    for (int i = 0; i < 6; i++) {
        CHECK_EQ(&c->ck, atomic_load(&w[i].ran), 1);
        CHECK_EQ(&c->ck, corio_handle_cancel(h[i]), 0);   /* it ran already */
        corio_handle_unref(h[i]);
    }
    return NULL;
}

static void time_call_later_order_and_when(void **state)
{
    struct order_case c = {0};

    (void)state;
    run_main_checked(1, call_later_main, &c, &c.ck);
    assert_string_equal(c.log.buf, "at5 10 20 30 tie1 tie2");
}

static void *call_later_cancel_main(void *arg)
{
    struct order_case *c = arg;
    struct later_word soon = {&c->log, "soon", 0}, late = {&c->log, "late", 0},
                      kept = {&c->log, "kept", 0};
    corio_handle *h = NULL, *hl = NULL;

    CHECK_EQ(&c->ck, corio_call_later(&h, 20 * MS, later_callback, &soon), 0);
    CHECK_EQ(&c->ck, corio_call_later(NULL, 25 * MS, later_callback, &kept), 0);
    /* A cancelled 10 s timer must not keep the runtime from ending. */
    CHECK_EQ(&c->ck, corio_call_later(&hl, LONG_NS, later_callback, &late), 0);
    CHECK_EQ(&c->ck, corio_handle_cancel(h), 1);
    CHECK(&c->ck, corio_handle_cancelled(h));
    CHECK_EQ(&c->ck, corio_handle_cancel(h), 0);
    corio_handle_unref(h);
    CHECK_EQ(&c->ck, corio_handle_cancel(hl), 1);
    corio_handle_unref(hl);
    CHECK_EQ(&c->ck, corio_sleep(50 * MS), 0);
    CHECK_EQ(&c->ck, atomic_load(&soon.ran), 0);
    CHECK_EQ(&c->ck, atomic_load(&kept.ran), 1);
    return NULL;
}

static void time_call_later_cancelled_never_runs(void **state)
{
    struct order_case c = {0};
    uint64_t t0 = now_ns();

    (void)state;
    /* run_with() asserts nothing is alive and the runtime is destroyed
     * cleanly: the dropped handles were freed (ASan checks the memory). */
    run_main_checked(1, call_later_cancel_main, &c, &c.ck);
    assert_string_equal(c.log.buf, "kept");
    assert_true(elapsed_ms(t0) < PROMPT_MS);
}

/* ---- wait_for ------------------------------------------------------------------ */

static void *sleep_10ms_return_7(void *arg)
{
    (void)arg;
    return corio_sleep(10 * MS) == 0 ? V(7) : V(0);
}

static void *sleep_long(void *arg)
{
    int *rc = arg;

    *rc = corio_sleep(LONG_NS);
    return NULL;
}

static void *wait_for_main(void *arg)
{
    struct checks *ck = arg;
    corio_task *t;
    void *v = NULL;
    int inner_rc = 1;

    /* The result comes before the timeout. */
    CHECK_EQ(ck, corio_spawn(&t, sleep_10ms_return_7, NULL), 0);
    CHECK_EQ(ck, corio_wait_for(t, 1000 * MS, &v), 0);
    CHECK_PTR(ck, v, V(7));
    corio_task_unref(t);

    /* The timeout comes first: the inner task is cancelled and done. */
    uint64_t t0 = now_ns();
    CHECK_EQ(ck, corio_spawn(&t, sleep_long, &inner_rc), 0);
    CHECK_EQ(ck, corio_wait_for(t, 20 * MS, &v), -ETIMEDOUT);
    CHECK(ck, elapsed_ms(t0) >= 20 && elapsed_ms(t0) < PROMPT_MS);
    CHECK(ck, corio_task_done(t) && corio_task_cancelled(t));
    CHECK_EQ(ck, inner_rc, -ECANCELED);
    CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
    corio_task_unref(t);
    CHECK_EQ(ck, corio_yield(), 0);   /* no cancellation left behind */
    CHECK_EQ(ck, wheel_count_here(), 0);
    return NULL;
}

static void wait_for_on(unsigned workers)
{
    run_checks(workers, wait_for_main);
}

static void time_wait_for_result_and_timeout(void **state)
{
    (void)state;
    on_worker_counts(wait_for_on, 1, TIME_REPEATS);
}

static void *wait_for_zero_main(void *arg)
{
    struct checks *ck = arg;
    corio_future *f = new_future();
    corio_task *t;
    void *v = NULL;
    int inner_rc = 1;

    /* Done already: its result, even with no time at all. */
    CHECK_EQ(ck, corio_future_set_result(f, V(3)), 0);
    CHECK_EQ(ck, corio_wait_for(f, 0, &v), 0);
    CHECK_PTR(ck, v, V(3));
    corio_future_unref(f);

    /* Pending: cancelled, and the wait times out at once. */
    f = new_future();
    CHECK_EQ(ck, corio_wait_for(f, 0, NULL), -ETIMEDOUT);
    CHECK(ck, corio_future_cancelled(f));
    corio_future_unref(f);

    /* A pending task: cancelled and awaited, so done on return. */
    CHECK_EQ(ck, corio_spawn(&t, sleep_long, &inner_rc), 0);
    CHECK_EQ(ck, corio_wait_for(t, 0, NULL), -ETIMEDOUT);
    CHECK(ck, corio_task_done(t) && corio_task_cancelled(t));
    corio_task_unref(t);
    return NULL;
}

static void time_wait_for_zero_timeout(void **state)
{
    (void)state;
    run_checks(1, wait_for_zero_main);
}

/* asyncio: an inner task that swallows its cancellation and returns a value
 * makes wait_for() return that value, not TimeoutError. */
static void *swallow_cancel(void *arg)
{
    atomic_int *got = arg;

    if (corio_sleep(LONG_NS) == -ECANCELED) {
        atomic_store(got, 1);
        corio_task_uncancel(corio_current_task());
        corio_sleep(5 * MS);   /* cleanup that takes a while */
    }
    return V(5);
}

static void *wait_for_swallow_main(void *arg)
{
    struct checks *ck = arg;
    atomic_int got = 0;
    corio_task *t;
    void *v = NULL;
    uint64_t t0 = now_ns();

    CHECK_EQ(ck, corio_spawn(&t, swallow_cancel, &got), 0);
    CHECK_EQ(ck, corio_wait_for(t, 20 * MS, &v), 0);
    CHECK_PTR(ck, v, V(5));
    CHECK_EQ(ck, atomic_load(&got), 1);
    CHECK(ck, corio_task_done(t) && !corio_task_cancelled(t));
    CHECK(ck, elapsed_ms(t0) >= 25 && elapsed_ms(t0) < PROMPT_MS);
    CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
    CHECK_EQ(ck, corio_yield(), 0);
    corio_task_unref(t);
    return NULL;
}

static void wait_for_swallow_on(unsigned workers)
{
    run_checks(workers, wait_for_swallow_main);
}

static void time_wait_for_inner_swallows_cancel(void **state)
{
    (void)state;
    on_worker_counts(wait_for_swallow_on, 1, TIME_REPEATS);
}

/* ---- timeout scopes ------------------------------------------------------------ */

static void *scope_expire_main(void *arg)
{
    struct checks *ck = arg;
    corio_timeout tm;
    uint64_t t0 = now_ns();

    CHECK_EQ(ck, corio_timeout_enter(&tm, 20 * MS), 0);
    CHECK(ck, !corio_timeout_expired(&tm));
    int rc = corio_sleep(LONG_NS);
    CHECK_EQ(ck, rc, -ECANCELED);
    CHECK(ck, corio_timeout_expired(&tm));
    CHECK_EQ(ck, corio_timeout_exit(&tm, rc), -ETIMEDOUT);
    CHECK(ck, corio_timeout_expired(&tm));   /* still true after exit */
    CHECK(ck, elapsed_ms(t0) >= 20 && elapsed_ms(t0) < PROMPT_MS);
    CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
    CHECK_EQ(ck, corio_yield(), 0);

    /* Not expired: the rc passes through, whatever it is. */
    CHECK_EQ(ck, corio_timeout_enter(&tm, 1000 * MS), 0);
    CHECK_EQ(ck, corio_sleep(5 * MS), 0);
    CHECK(ck, !corio_timeout_expired(&tm));
    CHECK_EQ(ck, corio_timeout_exit(&tm, -EIO), -EIO);
    CHECK_EQ(ck, corio_timeout_enter(&tm, 1000 * MS), 0);
    CHECK_EQ(ck, corio_timeout_exit(&tm, 0), 0);
    CHECK_EQ(ck, corio_timeout_enter(&tm, 1000 * MS), 0);
    CHECK_EQ(ck, corio_timeout_exit(&tm, -ECANCELED), -ECANCELED);
    CHECK(ck, !corio_timeout_expired(&tm));
    CHECK_EQ(ck, wheel_count_here(), 0);
    return NULL;
}

static void scope_expire_on(unsigned workers)
{
    run_checks(workers, scope_expire_main);
}

static void time_timeout_expires_or_passes_rc(void **state)
{
    (void)state;
    on_worker_counts(scope_expire_on, 1, TIME_REPEATS);
}

static void *scope_reschedule_main(void *arg)
{
    struct checks *ck = arg;
    corio_timeout tm;

    /* Later: a 20 ms scope moved to 200 ms survives a 60 ms sleep. */
    CHECK_EQ(ck, corio_timeout_enter(&tm, 20 * MS), 0);
    uint64_t later = now_ns() + 200 * MS;
    CHECK_EQ(ck, corio_timeout_reschedule(&tm, later), 0);
    CHECK_EQ(ck, corio_timeout_when(&tm), later);
    CHECK_EQ(ck, corio_sleep(60 * MS), 0);
    CHECK(ck, !corio_timeout_expired(&tm));
    CHECK_EQ(ck, corio_timeout_exit(&tm, 0), 0);

    /* Earlier: a 10 s scope moved to 20 ms cuts a 10 s sleep short. */
    uint64_t t0 = now_ns();
    CHECK_EQ(ck, corio_timeout_enter(&tm, LONG_NS), 0);
    CHECK_EQ(ck, corio_timeout_reschedule(&tm, now_ns() + 20 * MS), 0);
    CHECK_EQ(ck, corio_timeout_exit(&tm, corio_sleep(LONG_NS)), -ETIMEDOUT);
    CHECK(ck, elapsed_ms(t0) >= 20 && elapsed_ms(t0) < PROMPT_MS);

    /* No deadline: nothing expires until one is set. */
    CHECK_EQ(ck, corio_timeout_enter_at(&tm, CORIO_NO_DEADLINE), 0);
    CHECK_EQ(ck, corio_timeout_when(&tm), CORIO_NO_DEADLINE);
    CHECK_EQ(ck, corio_sleep(30 * MS), 0);
    CHECK(ck, !corio_timeout_expired(&tm));
    t0 = now_ns();
    CHECK_EQ(ck, corio_timeout_reschedule(&tm, now_ns() + 10 * MS), 0);
    CHECK_EQ(ck, corio_timeout_exit(&tm, corio_sleep(LONG_NS)), -ETIMEDOUT);
    CHECK(ck, elapsed_ms(t0) >= 10 && elapsed_ms(t0) < PROMPT_MS);

    /* And a deadline taken away. */
    CHECK_EQ(ck, corio_timeout_enter(&tm, 20 * MS), 0);
    CHECK_EQ(ck, corio_timeout_reschedule(&tm, CORIO_NO_DEADLINE), 0);
    CHECK_EQ(ck, corio_sleep(40 * MS), 0);
    CHECK_EQ(ck, corio_timeout_exit(&tm, 0), 0);
    CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
    CHECK_EQ(ck, wheel_count_here(), 0);
    return NULL;
}

static void scope_reschedule_on(unsigned workers)
{
    run_checks(workers, scope_reschedule_main);
}

static void time_timeout_reschedule(void **state)
{
    (void)state;
    on_worker_counts(scope_reschedule_on, 1, 2);
}

static void *scope_nested_main(void *arg)
{
    struct checks *ck = arg;
    corio_timeout outer, inner;

    /* The inner scope expires; the outer one does not. */
    CHECK_EQ(ck, corio_timeout_enter(&outer, 1000 * MS), 0);
    CHECK_EQ(ck, corio_timeout_enter(&inner, 20 * MS), 0);
    int rc = corio_timeout_exit(&inner, corio_sleep(LONG_NS));
    CHECK_EQ(ck, rc, -ETIMEDOUT);
    CHECK(ck, corio_timeout_expired(&inner) && !corio_timeout_expired(&outer));
    CHECK_EQ(ck, corio_sleep(5 * MS), 0);   /* the outer still lets it run */
    CHECK_EQ(ck, corio_timeout_exit(&outer, 0), 0);

    /* The outer scope expires inside the inner one: the inner passes the
     * cancellation on, the outer turns it into a timeout. */
    CHECK_EQ(ck, corio_timeout_enter(&outer, 20 * MS), 0);
    CHECK_EQ(ck, corio_timeout_enter(&inner, LONG_NS), 0);
    rc = corio_timeout_exit(&inner, corio_sleep(LONG_NS));
    CHECK_EQ(ck, rc, -ECANCELED);
    CHECK(ck, !corio_timeout_expired(&inner) && corio_timeout_expired(&outer));
    CHECK_EQ(ck, corio_timeout_exit(&outer, rc), -ETIMEDOUT);
    CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
    CHECK_EQ(ck, corio_yield(), 0);
    CHECK_EQ(ck, wheel_count_here(), 0);
    return NULL;
}

static void scope_nested_on(unsigned workers)
{
    run_checks(workers, scope_nested_main);
}

static void time_timeout_nested(void **state)
{
    (void)state;
    on_worker_counts(scope_nested_on, 1, 2);
}

struct outside_cancel {
    struct checks ck;
    atomic_bool in_scope;
    int scope_rc, later_rc;
    bool expired;
};

static void *scoped_sleeper(void *arg)
{
    struct outside_cancel *o = arg;
    corio_timeout tm;

    CHECK_EQ(&o->ck, corio_timeout_enter(&tm, LONG_NS), 0);
    atomic_store(&o->in_scope, true);
    o->scope_rc = corio_timeout_exit(&tm, corio_sleep(LONG_NS));
    o->expired = corio_timeout_expired(&tm);
    return NULL;   /* still cancelling(): ends cancelled */
}

/* The scope expired, but another cancellation arrived as well: it is not
 * the scope's to swallow (asyncio: uncancel() > the count at enter). */
static void *scope_and_cancel(void *arg)
{
    struct outside_cancel *o = arg;
    corio_timeout tm;

    CHECK_EQ(&o->ck, corio_timeout_enter(&tm, 10 * MS), 0);
    int rc = corio_sleep(LONG_NS);
    CHECK_EQ(&o->ck, rc, -ECANCELED);
    CHECK(&o->ck, corio_timeout_expired(&tm));
    CHECK_EQ(&o->ck, corio_task_cancel(corio_current_task(), NULL), 1);
    o->scope_rc = corio_timeout_exit(&tm, rc);
    CHECK_EQ(&o->ck, corio_task_cancelling(corio_current_task()), 1);
    o->later_rc = corio_yield();   /* the outside request is delivered */
    return NULL;
}

static void *outside_cancel_main(void *arg)
{
    struct outside_cancel *o = arg;
    uint64_t t0 = now_ns();
    corio_task *t;

    CHECK_EQ(&o->ck, corio_spawn(&t, scoped_sleeper, o), 0);
    while (!atomic_load(&o->in_scope))
        corio_sleep(MS);
    corio_sleep(2 * MS);
    CHECK_EQ(&o->ck, corio_task_cancel(t, NULL), 1);
    CHECK_EQ(&o->ck, corio_await(t, NULL), -ECANCELED);
    CHECK_EQ(&o->ck, o->scope_rc, -ECANCELED);
    CHECK(&o->ck, !o->expired);
    CHECK(&o->ck, corio_task_cancelled(t));
    CHECK(&o->ck, elapsed_ms(t0) < PROMPT_MS);
    corio_task_unref(t);

    o->scope_rc = o->later_rc = 1;
    CHECK_EQ(&o->ck, corio_spawn(&t, scope_and_cancel, o), 0);
    CHECK_EQ(&o->ck, corio_await(t, NULL), -ECANCELED);
    CHECK_EQ(&o->ck, o->scope_rc, -ECANCELED);
    CHECK_EQ(&o->ck, o->later_rc, -ECANCELED);
    corio_task_unref(t);
    return NULL;
}

static void outside_cancel_on(unsigned workers)
{
    struct outside_cancel o = {0};

    run_main_checked(workers, outside_cancel_main, &o, &o.ck);
}

static void time_timeout_outside_cancel_stays_ecanceled(void **state)
{
    (void)state;
    on_worker_counts(outside_cancel_on, 1, 2);
}

static void *scope_misuse_main(void *arg)
{
    struct checks *ck = arg;
    corio_timeout tm, never;

    memset(&never, 0, sizeof never);
    CHECK_EQ(ck, corio_timeout_enter(NULL, 1), -EINVAL);
    CHECK_EQ(ck, corio_timeout_enter_at(NULL, 1), -EINVAL);
    CHECK_EQ(ck, corio_timeout_enter(&tm, -5), -EINVAL);
    CHECK_EQ(ck, corio_timeout_exit(NULL, 0), -EINVAL);
    CHECK_EQ(ck, corio_timeout_reschedule(NULL, 1), -EINVAL);
    CHECK_EQ(ck, corio_timeout_exit(&never, 0), -EINVAL);
    CHECK_EQ(ck, corio_timeout_reschedule(&never, 1), -EINVAL);
    CHECK_EQ(ck, corio_timeout_when(NULL), 0);
    CHECK(ck, !corio_timeout_expired(NULL));

    /* Exited twice; rescheduled after exit. */
    CHECK_EQ(ck, corio_timeout_enter(&tm, 1000 * MS), 0);
    CHECK_EQ(ck, corio_timeout_exit(&tm, 0), 0);
    CHECK_EQ(ck, corio_timeout_exit(&tm, 0), -EINVAL);
    CHECK_EQ(ck, corio_timeout_reschedule(&tm, now_ns() + MS), -EINVAL);

    /* Rescheduling a scope that has expired (asyncio's RuntimeError); it
     * still needs its exit. */
    CHECK_EQ(ck, corio_timeout_enter(&tm, MS), 0);
    int rc = corio_sleep(LONG_NS);
    CHECK_EQ(ck, rc, -ECANCELED);
    CHECK_EQ(ck, corio_timeout_reschedule(&tm, now_ns() + LONG_NS), -EINVAL);
    CHECK_EQ(ck, corio_timeout_exit(&tm, rc), -ETIMEDOUT);
    CHECK_EQ(ck, corio_yield(), 0);
    CHECK_EQ(ck, wheel_count_here(), 0);
    return NULL;
}

static void time_timeout_misuse_is_einval(void **state)
{
    (void)state;
    run_checks(1, scope_misuse_main);
}

/* ---- corio_wait_timeout --------------------------------------------------------- */

static void *wait_timeout_main(void *arg)
{
    struct checks *ck = arg;
    int rcs[3] = {1, 1, 1};
    corio_task *t[3];
    corio_future *fs[3], *done[3] = {0}, *pending[3] = {0};
    size_t nd = 99, np = 99;

    CHECK_EQ(ck, corio_spawn(&t[0], sleep_long, &rcs[0]), 0);
    CHECK_EQ(ck, corio_spawn(&t[1], sleep_10ms_return_7, NULL), 0);
    CHECK_EQ(ck, corio_spawn(&t[2], sleep_long, &rcs[2]), 0);
    for (int i = 0; i < 3; i++)
        fs[i] = corio_task_future(t[i]);

    /* The timeout passes: done and pending as they stand, no error, and
     * nothing cancelled. */
    uint64_t t0 = now_ns();
    CHECK_EQ(ck, corio_wait_timeout(fs, 3, CORIO_ALL_COMPLETED, 50 * MS, done, &nd, pending,
                                    &np), 0);
    CHECK(ck, elapsed_ms(t0) >= 50 && elapsed_ms(t0) < 50 + SLACK_MS);
    CHECK_EQ(ck, nd, 1);
    CHECK_PTR(ck, done[0], fs[1]);
    CHECK_EQ(ck, np, 2);
    CHECK_PTR(ck, pending[0], fs[0]);
    CHECK_PTR(ck, pending[1], fs[2]);
    CHECK(ck, !corio_task_done(t[0]) && !corio_task_done(t[2]));
    CHECK_EQ(ck, corio_task_cancelling(t[0]), 0);

    /* Satisfied before the timeout: returns then, not at the timeout. */
    t0 = now_ns();
    CHECK_EQ(ck, corio_wait_timeout(fs, 3, CORIO_FIRST_COMPLETED, LONG_NS, NULL, &nd, NULL, &np),
             0);
    CHECK(ck, elapsed_ms(t0) < PROMPT_MS);
    CHECK_EQ(ck, nd, 1);

    /* 0 only looks. */
    CHECK_EQ(ck, corio_wait_timeout(fs, 3, CORIO_ALL_COMPLETED, 0, NULL, &nd, NULL, &np), 0);
    CHECK_EQ(ck, nd, 1);
    CHECK_EQ(ck, np, 2);

    /* Everything done within the timeout. */
    CHECK_EQ(ck, corio_task_cancel(t[0], NULL), 1);
    CHECK_EQ(ck, corio_task_cancel(t[2], NULL), 1);
    t0 = now_ns();
    CHECK_EQ(ck, corio_wait_timeout(fs, 3, CORIO_ALL_COMPLETED, LONG_NS, done, &nd, pending,
                                    &np), 0);
    CHECK(ck, elapsed_ms(t0) < PROMPT_MS);
    CHECK_EQ(ck, nd, 3);
    CHECK_EQ(ck, np, 0);
    CHECK_EQ(ck, rcs[0], -ECANCELED);
    CHECK_EQ(ck, rcs[2], -ECANCELED);
    for (int i = 0; i < 3; i++)
        corio_task_unref(t[i]);
    CHECK_EQ(ck, wheel_count_here(), 0);
    return NULL;
}

static void wait_timeout_on(unsigned workers)
{
    run_checks(workers, wait_timeout_main);
}

static void time_wait_timeout_returns_done_and_pending(void **state)
{
    (void)state;
    on_worker_counts(wait_timeout_on, 1, TIME_REPEATS);
}

/* A task cancelled while it waits with a timeout returns -ECANCELED at
 * once; its timer is removed (from another worker or a plain thread, it
 * goes back to the timer's worker first). */
struct wait_cancel {
    struct checks *ck;
    corio_future *f;
    atomic_int armed_on;
    int rc;
    size_t wheel_after;
    corio_task *waiter;
};

static void *timed_waiter(void *arg)
{
    struct wait_cancel *w = arg;
    size_t np = 0;

    atomic_store(&w->armed_on, corio_worker_id() + 1);
    w->rc = corio_wait_timeout(&w->f, 1, CORIO_ALL_COMPLETED, LONG_NS, NULL, NULL, NULL, &np);
    CHECK_EQ(w->ck, np, 1);
    CHECK_EQ(w->ck, corio_worker_id() + 1, atomic_load(&w->armed_on));
    w->wheel_after = wheel_count_here();
    return NULL;
}

static void *cancel_waiter_thread(void *arg)
{
    struct wait_cancel *w = arg;

    CHECK_EQ(w->ck, corio_task_cancel(w->waiter, NULL), 1);
    return NULL;
}

static void *wait_cancel_main(void *arg)
{
    struct checks *ck = arg;
    uint64_t t0 = now_ns();

    for (int from_thread = 0; from_thread < 2; from_thread++) {
        struct wait_cancel w = {.ck = ck, .f = new_future()};

        CHECK_EQ(ck, corio_spawn(&w.waiter, timed_waiter, &w), 0);
        while (!atomic_load(&w.armed_on))
            corio_sleep(MS);
        corio_sleep(2 * MS);
        if (from_thread)
            run_plain_thread(ck, cancel_waiter_thread, &w);
        else
            CHECK_EQ(ck, corio_task_cancel(w.waiter, NULL), 1);
        CHECK_EQ(ck, corio_await(w.waiter, NULL), -ECANCELED);
        CHECK_EQ(ck, w.rc, -ECANCELED);
        CHECK_EQ(ck, w.wheel_after, 0);
        CHECK(ck, !corio_future_done(w.f));   /* waiting cancels nothing */
        corio_task_unref(w.waiter);
        corio_future_unref(w.f);
    }
    CHECK(ck, elapsed_ms(t0) < PROMPT_MS);
    return NULL;
}

static void wait_cancel_on(unsigned workers)
{
    run_checks(workers, wait_cancel_main);
}

static void time_wait_timeout_cancelled_waiter(void **state)
{
    (void)state;
    on_worker_counts(wait_cancel_on, 1, TIME_REPEATS);
}

/* ---- many timers, busy workers -------------------------------------------------- */

#define STRESS_TASKS 10000

struct stress {
    struct checks ck;
    atomic_int woke, early;
    uint64_t seed;
};

struct stress_one {
    struct stress *s;
    int64_t delay_ns;
};

static void *stress_sleeper(void *arg)
{
    struct stress_one *o = arg;
    uint64_t t0 = now_ns();

    if (corio_sleep(o->delay_ns) != 0)
        return NULL;
    if (now_ns() - t0 < (uint64_t)o->delay_ns)
        atomic_fetch_add(&o->s->early, 1);
    atomic_fetch_add(&o->s->woke, 1);
    return NULL;
}

static void *stress_main(void *arg)
{
    struct stress *s = arg;
    struct stress_one *ones = calloc(STRESS_TASKS, sizeof *ones);
    corio_task **ts = calloc(STRESS_TASKS, sizeof *ts);
    uint64_t x = s->seed;

    CHECK(&s->ck, ones && ts);
    if (!ones || !ts) {
        free(ones);
        free(ts);
        return NULL;
    }
    for (int i = 0; i < STRESS_TASKS; i++) {
        x ^= x << 13;   /* xorshift64 */
        x ^= x >> 7;
        x ^= x << 17;
        ones[i].s = s;
        ones[i].delay_ns = (int64_t)(x % (uint64_t)(50 * MS + 1));   /* 0..50 ms */
        CHECK_EQ(&s->ck, corio_spawn(&ts[i], stress_sleeper, &ones[i]), 0);
    }
    CHECK_EQ(&s->ck, corio_gather_tasks(ts, STRESS_TASKS, 0, NULL, NULL), 0);
    for (int i = 0; i < STRESS_TASKS; i++)
        corio_task_unref(ts[i]);
    free(ts);
    free(ones);
    return NULL;
}

static void time_stress_many_sleepers_wake_on_time(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 2; seed++) {
        struct stress s = {.seed = seed * 0x9e3779b97f4a7c15u};
        uint64_t t0 = now_ns();

        run_main_checked(2, stress_main, &s, &s.ck);
        assert_int_equal(atomic_load(&s.woke), STRESS_TASKS);
        assert_int_equal(atomic_load(&s.early), 0);
        /* Only a hang fails this: spawning 10,000 tasks under TSan takes
         * seconds. */
        assert_true(elapsed_ms(t0) < 60000);
    }
}

/* Every worker stays busy with tasks that only yield (so none ever parks in
 * its backend): the sleeper's timer is fired by the poll a busy worker makes
 * every 61 ticks, close to its deadline. */
struct busy {
    struct checks ck;
    atomic_bool stop;
    int64_t late_ms;
};

static void *busy_yielder(void *arg)
{
    struct busy *b = arg;
    uint64_t t0 = now_ns();

    while (!atomic_load(&b->stop) && elapsed_ms(t0) < 5000)
        corio_yield();
    return NULL;
}

static void *busy_sleeper(void *arg)
{
    struct busy *b = arg;
    uint64_t t0 = now_ns();

    CHECK_EQ(&b->ck, corio_sleep(20 * MS), 0);
    b->late_ms = elapsed_ms(t0) - 20;
    atomic_store(&b->stop, true);
    return NULL;
}

static void *busy_main(void *arg)
{
    struct busy *b = arg;
    unsigned n = corio_rt_workers(corio_get_running_rt()) + 1;
    corio_task *ts[8], *s;

    for (unsigned i = 0; i < n; i++)
        CHECK_EQ(&b->ck, corio_spawn(&ts[i], busy_yielder, b), 0);
    CHECK_EQ(&b->ck, corio_spawn(&s, busy_sleeper, b), 0);
    CHECK_EQ(&b->ck, corio_await(s, NULL), 0);
    for (unsigned i = 0; i < n; i++) {
        CHECK_EQ(&b->ck, corio_await(ts[i], NULL), 0);
        corio_task_unref(ts[i]);
    }
    corio_task_unref(s);
    return NULL;
}

static void busy_on(unsigned workers)
{
    struct busy b = {0};

    run_main_checked(workers, busy_main, &b, &b.ck);
    assert_true(b.late_ms >= 0);
    assert_true(b.late_ms < SLACK_MS);
}

static void time_timers_fire_while_workers_busy(void **state)
{
    (void)state;
    on_worker_counts(busy_on, 1, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(time_sleep_wakes_in_deadline_order),
        cmocka_unit_test(time_sleep_is_accurate),
        cmocka_unit_test(time_sleep_never_early),
        cmocka_unit_test(time_sleep_zero_yields),
        cmocka_unit_test(time_negative_delays_are_einval),
        cmocka_unit_test(time_cancel_during_sleep_is_prompt),
        cmocka_unit_test(time_cancel_sleeper_from_other_worker),
        cmocka_unit_test(time_cancel_sleeper_from_plain_thread),
        cmocka_unit_test(time_call_later_order_and_when),
        cmocka_unit_test(time_call_later_cancelled_never_runs),
        cmocka_unit_test(time_wait_for_result_and_timeout),
        cmocka_unit_test(time_wait_for_zero_timeout),
        cmocka_unit_test(time_wait_for_inner_swallows_cancel),
        cmocka_unit_test(time_timeout_expires_or_passes_rc),
        cmocka_unit_test(time_timeout_reschedule),
        cmocka_unit_test(time_timeout_nested),
        cmocka_unit_test(time_timeout_outside_cancel_stays_ecanceled),
        cmocka_unit_test(time_timeout_misuse_is_einval),
        cmocka_unit_test(time_wait_timeout_returns_done_and_pending),
        cmocka_unit_test(time_wait_timeout_cancelled_waiter),
        cmocka_unit_test(time_stress_many_sleepers_wake_on_time),
        cmocka_unit_test(time_timers_fire_while_workers_busy),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
