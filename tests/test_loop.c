/* tests/test_loop.c - the runtime's loop services (corio/runtime.h):
 * call_soon and handles, the clock, the exception handler, debug mode,
 * metrics, error strings, and corio_run()/corio_rt_run() themselves
 * (results, shutdown, misuse), checked against asyncio's loop and run().
 *
 * Every case runs its own runtime (testutil.h). Tasks and callbacks record
 * what they saw in a struct and the case asserts after the run returned:
 * cmocka's asserts longjmp, which must never cross a task's stack.
 * Order-sensitive cases run on one worker, where ready tasks and callbacks
 * run strictly in the order they became ready; order-free cases run once on
 * one worker, then REPEATS times on 2 and on 4 workers.
 *
 * A task that completes a future it does not own holds its own reference
 * for the call (set_and_release(): the owner may free the future as soon as
 * it wakes). Cases that check what goes to stderr redirect fd 2 to a
 * temporary file around the run and echo the captured text afterwards, so
 * nothing is hidden.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "corio/corio.h"

#include "testutil.h"

/* ---- call_soon --------------------------------------------------------- */

struct soon_word {
    struct order_log *log;
    const char *word;
    struct soon_word *then;   /* scheduled by this callback */
};

static void log_callback(void *arg)
{
    struct soon_word *w = arg;

    log_word(w->log, w->word);
    if (w->then)
        corio_call_soon(NULL, log_callback, w->then);
}

struct task_words {
    struct order_log *log;
    const char *first, *second;   /* second NULL: one step only */
};

static void *log_task(void *arg)
{
    struct task_words *w = arg;

    log_word(w->log, w->first);
    if (w->second) {
        corio_yield();
        log_word(w->log, w->second);
    }
    return NULL;
}

struct soon_order {
    struct order_log plain, mixed;
    int rc[8];
};

static void *soon_order_main(void *arg)
{
    struct soon_order *s = arg;
    struct soon_word four = {&s->plain, "4", NULL};
    struct soon_word w[3] = {{&s->plain, "1", &four}, {&s->plain, "2", NULL},
                             {&s->plain, "3", NULL}};
    struct soon_word a = {&s->mixed, "a", NULL}, b = {&s->mixed, "b", NULL};
    struct task_words tw = {&s->mixed, "t1", "t2"}, uw = {&s->mixed, "u1", NULL};
    corio_task *t = NULL, *u = NULL;

    /* Callbacks in order; one scheduled by a callback runs after those
     * already ready, main included. */
    for (int i = 0; i < 3; i++)
        s->rc[i] = corio_call_soon(NULL, log_callback, &w[i]);
    corio_yield();
    log_word(&s->plain, "main");
    corio_yield();

    /* Callbacks and task steps share one FIFO. */
    s->rc[3] = corio_spawn(&t, log_task, &tw);
    s->rc[4] = corio_call_soon(NULL, log_callback, &a);
    s->rc[5] = corio_spawn(&u, log_task, &uw);
    s->rc[6] = corio_call_soon(NULL, log_callback, &b);
    corio_yield();
    log_word(&s->mixed, "m1");
    corio_await(t, NULL);
    corio_await(u, NULL);
    corio_task_unref(t);
    corio_task_unref(u);
    return NULL;
}

static void loop_call_soon_runs_in_order(void **state)
{
    struct soon_order s = {0};

    (void)state;
    assert_int_equal(run_on(1, soon_order_main, &s, NULL), 0);
    for (int i = 0; i < 7; i++)
        assert_int_equal(s.rc[i], 0);
    assert_string_equal(s.plain.buf, "1 2 3 main 4");
    assert_string_equal(s.mixed.buf, "t1 a u1 b m1 t2");
}

#define SOON_CALLBACKS 1000

struct soon_count {
    atomic_int outer, inner, bad_rc;
};

static void count_inner(void *arg)
{
    struct soon_count *s = arg;

    atomic_fetch_add(&s->inner, 1);
}

static void count_outer(void *arg)
{
    struct soon_count *s = arg;

    atomic_fetch_add(&s->outer, 1);
    if (corio_call_soon(NULL, count_inner, s) != 0)
        atomic_fetch_add(&s->bad_rc, 1);
}

static void *soon_count_main(void *arg)
{
    struct soon_count *s = arg;

    for (int i = 0; i < SOON_CALLBACKS; i++)
        if (corio_call_soon(NULL, count_outer, s) != 0)
            atomic_fetch_add(&s->bad_rc, 1);
    for (long i = 0; i < 10000000 && atomic_load(&s->inner) < SOON_CALLBACKS; i++)
        corio_yield();
    return NULL;
}

static void soon_count_on(unsigned workers)
{
    struct soon_count s = {0};

    assert_int_equal(run_on(workers, soon_count_main, &s, NULL), 0);
    assert_int_equal(atomic_load(&s.bad_rc), 0);
    assert_int_equal(atomic_load(&s.outer), SOON_CALLBACKS);
    assert_int_equal(atomic_load(&s.inner), SOON_CALLBACKS);
}

static void loop_call_soon_runs_each_once(void **state)
{
    (void)state;
    on_each_worker_count(soon_count_on);
}

/* ---- handles ----------------------------------------------------------- */

struct handles {
    int ran_cancelled, ran_kept;
    int cancel_first, cancel_again, cancel_after_run, cancel_null;
    bool cancelled_flag, kept_flag, null_flag;
};

static void mark_int(void *arg)
{
    (*(int *)arg)++;
}

static void *handles_main(void *arg)
{
    struct handles *s = arg;
    corio_handle *h = NULL, *k = NULL;

    corio_call_soon(&h, mark_int, &s->ran_cancelled);
    corio_call_soon(&k, mark_int, &s->ran_kept);
    s->cancel_first = corio_handle_cancel(h);
    s->cancel_again = corio_handle_cancel(h);
    s->cancelled_flag = corio_handle_cancelled(h);
    corio_yield();   /* both callbacks are due before main runs again */
    s->cancel_after_run = corio_handle_cancel(k);
    s->kept_flag = corio_handle_cancelled(k);
    s->cancel_null = corio_handle_cancel(NULL);
    s->null_flag = corio_handle_cancelled(NULL);
    corio_handle_unref(h);
    corio_handle_unref(k);
    corio_handle_unref(NULL);
    return NULL;
}

static void loop_handle_cancel_prevents_run(void **state)
{
    struct handles s = {0};

    (void)state;
    assert_int_equal(run_on(1, handles_main, &s, NULL), 0);
    assert_int_equal(s.cancel_first, 1);
    assert_int_equal(s.cancel_again, 0);
    assert_true(s.cancelled_flag);
    assert_int_equal(s.ran_cancelled, 0);
    assert_int_equal(s.ran_kept, 1);
    assert_int_equal(s.cancel_after_run, 0);
    assert_false(s.kept_flag);
    assert_int_equal(s.cancel_null, -EINVAL);
    assert_false(s.null_flag);
}

/* ---- clock ------------------------------------------------------------- */

static uint64_t monotonic_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define TIME_SAMPLES 1000

struct clock_samples {
    int backwards;
    uint64_t first, last;
};

static void *clock_main(void *arg)
{
    struct clock_samples *s = arg;
    uint64_t prev = corio_time_ns();

    s->first = prev;
    for (int i = 0; i < TIME_SAMPLES; i++) {
        if (i % 10 == 0)
            corio_yield();   /* may resume on another worker */
        uint64_t now = corio_time_ns();
        s->backwards += now < prev;
        prev = now;
    }
    s->last = prev;
    return NULL;
}

static void clock_on(unsigned workers)
{
    struct clock_samples s = {0};
    uint64_t before = corio_time_ns();

    assert_int_equal(run_on(workers, clock_main, &s, NULL), 0);
    assert_int_equal(s.backwards, 0);
    assert_true(s.first >= before);
    assert_true(s.last >= s.first);
    assert_true(corio_time_ns() >= s.last);
}

static void loop_time_monotonic(void **state)
{
    struct timespec two_ms = {0, 2000000};

    (void)state;
    /* CLOCK_MONOTONIC in nanoseconds, readable from anywhere. */
    uint64_t a = monotonic_ns(), t = corio_time_ns(), b = monotonic_ns();
    assert_true(a <= t && t <= b);
    nanosleep(&two_ms, NULL);
    assert_true(corio_time_ns() - t >= 2000000u);
    on_each_worker_count(clock_on);
}

/* ---- exception handler ------------------------------------------------- */

static void reentering_handler(corio_rt *rt, const corio_exception_context *ctx, void *arg)
{
    corio_exception_context nested = {.message = "nested report"};

    record_report(rt, ctx, arg);
    corio_rt_call_exception_handler(rt, &nested);   /* goes to the default */
}

static void loop_exception_handler_set_get_default(void **state)
{
    corio_rt_options o = {.workers = 1};
    corio_rt *rt = NULL;
    struct reports reps;
    struct capture cap;
    void *arg = NULL;
    corio_exception_context ctx = {.message = "custom", .error = -EIO,
                                   .error_message = "detail"};

    (void)state;
    reports_init(&reps);
    assert_int_equal(corio_rt_create(&rt, &o), 0);
    assert_null(corio_rt_get_exception_handler(rt, &arg));   /* the default */

    assert_int_equal(corio_rt_set_exception_handler(rt, record_report, &reps), 0);
    assert_ptr_equal(corio_rt_get_exception_handler(rt, &arg), record_report);
    assert_ptr_equal(arg, &reps);
    assert_ptr_equal(corio_rt_get_exception_handler(rt, NULL), record_report);
    corio_rt_call_exception_handler(rt, &ctx);
    assert_int_equal(reps.n, 1);
    assert_string_equal(reps.r[0].message, "custom");
    assert_int_equal(reps.r[0].error, -EIO);
    assert_string_equal(reps.r[0].error_message, "detail");
    assert_string_equal(reps.r[0].task, "(null)");

    /* A handler that reports from inside itself gets the default. */
    assert_int_equal(corio_rt_set_exception_handler(rt, reentering_handler, &reps), 0);
    capture_start(&cap);
    corio_rt_call_exception_handler(rt, &ctx);
    char *text = capture_end(&cap);
    assert_int_equal(reps.n, 2);
    assert_non_null(strstr(text, "corio: nested report"));
    free(text);

    /* NULL puts the default back. */
    assert_int_equal(corio_rt_set_exception_handler(rt, NULL, NULL), 0);
    assert_null(corio_rt_get_exception_handler(rt, &arg));
    capture_start(&cap);
    ctx.message = "to the default";
    corio_rt_call_exception_handler(rt, &ctx);
    text = capture_end(&cap);
    assert_int_equal(reps.n, 2);
    assert_non_null(strstr(text, "corio: to the default"));
    assert_non_null(strstr(text, "detail"));
    free(text);

    assert_int_equal(corio_rt_set_exception_handler(NULL, record_report, &reps), -EINVAL);
    assert_null(corio_rt_get_exception_handler(NULL, &arg));
    corio_rt_call_exception_handler(NULL, &ctx);   /* ignored */
    corio_rt_call_exception_handler(rt, NULL);     /* ignored */
    assert_int_equal(corio_rt_destroy(rt), 0);
}

static void *default_format_main(void *arg)
{
    (void)arg;
    corio_task_set_name(corio_current_task(), "fmt-main");
    corio_exception_context ctx = {.message = "boom", .error = -EIO,
                                   .error_message = "disk gone",
                                   .task = corio_current_task()};
    corio_default_exception_handler(corio_get_running_rt(), &ctx, NULL);
    return NULL;
}

static void loop_default_handler_format(void **state)
{
    struct capture cap;
    char expect[256];
    corio_rt_options o = {.workers = 1};

    (void)state;
    snprintf(expect, sizeof expect, "corio: boom: task 'fmt-main' error %d (%s): disk gone\n",
             -EIO, corio_strerror(-EIO));
    capture_start(&cap);
    int rc = corio_run(default_format_main, NULL, &o, NULL);
    char *text = capture_end(&cap);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(text, expect));
    free(text);
}

/* ---- unretrieved errors ------------------------------------------------ */

static void *raise_lost(void *arg)
{
    corio_raise(-EIO, "%s", (const char *)arg);
    return NULL;
}

static void *unretrieved_main(void *arg)
{
    corio_spawn_options doomed = {.name = "doomed"}, kept = {.name = "kept"};
    corio_task *t = NULL;

    (void)arg;
    corio_spawn_ex(NULL, raise_lost, "lost one", &doomed);   /* fire and forget */
    corio_spawn_ex(&t, raise_lost, "lost two", &kept);
    corio_yield();   /* both ran and failed */
    corio_task_unref(t);   /* nobody looked at its error */
    return NULL;
}

static void check_unretrieved(const struct reports *reps, const char *task, const char *msg)
{
    int i = find_report(reps, task);

    assert_true(i >= 0);
    assert_string_equal(reps->r[i].message, "Task exception was never retrieved");
    assert_int_equal(reps->r[i].error, -EIO);
    assert_string_equal(reps->r[i].error_message, msg);
}

static void loop_unretrieved_exception_reported(void **state)
{
    corio_rt_options o = {.workers = 1};
    struct reports reps;
    struct capture cap;

    (void)state;
    assert_int_equal(run_with(&o, &reps, unretrieved_main, NULL, NULL), 0);
    expect_reports(&reps, 2);
    check_unretrieved(&reps, "doomed", "lost one");
    check_unretrieved(&reps, "kept", "lost two");

    /* The default handler writes it to stderr. */
    capture_start(&cap);
    int rc = corio_run(unretrieved_main, NULL, &o, NULL);
    char *text = capture_end(&cap);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(text, "Task exception was never retrieved"));
    assert_non_null(strstr(text, "doomed"));
    assert_non_null(strstr(text, "lost one"));
    free(text);
}

struct retrieved {
    int await_rc, wait_rc, exc_rc;
    char msg[64];
};

static void *retrieved_main(void *arg)
{
    struct retrieved *s = arg;
    corio_task *t = NULL;
    const char *m = NULL;

    corio_spawn(&t, raise_lost, "awaited");
    s->await_rc = corio_await(t, NULL);
    corio_task_unref(t);

    /* Waited for without retrieving, then read with corio_task_exception(). */
    corio_spawn(&t, raise_lost, "inspected");
    corio_future *f = corio_task_future(t);
    s->wait_rc = corio_wait(&f, 1, CORIO_ALL_COMPLETED, NULL, NULL, NULL, NULL);
    s->exc_rc = corio_task_exception(t, &m);
    copy_str(s->msg, sizeof s->msg, m);
    corio_task_unref(t);
    return NULL;
}

static void retrieved_on(unsigned workers)
{
    struct retrieved s = {0};

    assert_int_equal(run_on(workers, retrieved_main, &s, NULL), 0);   /* no report */
    assert_int_equal(s.await_rc, -EIO);
    assert_int_equal(s.wait_rc, 0);
    assert_int_equal(s.exc_rc, -EIO);
    assert_string_equal(s.msg, "inspected");
}

static void loop_retrieved_exception_not_reported(void **state)
{
    (void)state;
    on_each_worker_count(retrieved_on);
}

/* ---- debug mode -------------------------------------------------------- */

static void *busy_5ms(void *arg)
{
    uint64_t t0 = corio_time_ns();

    (void)arg;
    while (corio_time_ns() - t0 < 5000000u)
        ;
    return NULL;
}

static void *slowpoke_main(void *arg)
{
    corio_spawn_options o = {.name = "slowpoke"};
    corio_task *t = NULL;

    (void)arg;
    if (corio_spawn_ex(&t, busy_5ms, NULL, &o) == 0)
        corio_await(t, NULL);
    corio_task_unref(t);
    return NULL;
}

/* Runs slowpoke_main with debug mode forced @on; returns captured stderr. */
static char *run_slowpoke(bool on)
{
    corio_rt_options o = {.workers = 1, .debug = 1, .slow_callback_ns = 1000000};
    corio_rt *rt = NULL;
    corio_task *main_task = NULL;
    struct capture cap;

    assert_int_equal(corio_rt_create(&rt, &o), 0);
    assert_true(corio_rt_get_debug(rt));
    assert_int_equal(corio_rt_set_debug(rt, on), 0);
    assert_int_equal(corio_rt_get_debug(rt), on);
    capture_start(&cap);
    int rc = corio_rt_run(rt, slowpoke_main, NULL, &main_task);
    char *text = capture_end(&cap);
    assert_int_equal(rc, 0);
    corio_task_unref(main_task);
    assert_int_equal(corio_rt_alive_tasks(rt), 0);
    assert_int_equal(corio_rt_destroy(rt), 0);
    return text;
}

static void loop_debug_reports_slow_step(void **state)
{
    (void)state;
    char *text = run_slowpoke(true);
    assert_non_null(strstr(text, "Executing <Task name='slowpoke'"));
    free(text);

    text = run_slowpoke(false);
    assert_null(strstr(text, "slowpoke"));
    free(text);

    assert_int_equal(corio_rt_set_debug(NULL, true), -EINVAL);
    assert_false(corio_rt_get_debug(NULL));
}

/* ---- metrics ----------------------------------------------------------- */

#define METRIC_TASKS 100
#define DONE_AWAITS 300   /* > 2 * 128: at least two budget-forced yields */

static void *yield_three_times(void *arg)
{
    (void)arg;
    yield_n(3);
    return NULL;
}

static void *await_done_futures(void *arg)
{
    corio_future *f = new_future();
    int bad = 0;

    (void)arg;
    corio_future_set_result(f, NULL);
    for (int i = 0; i < DONE_AWAITS; i++)
        bad += corio_await(f, NULL) != 0;
    corio_future_unref(f);
    return (void *)(intptr_t)bad;
}

static void *metrics_main(void *arg)
{
    corio_task *t[METRIC_TASKS] = {0}, *d = NULL;
    void *bad = NULL;

    (void)arg;
    for (int i = 0; i < METRIC_TASKS; i++)
        corio_spawn(&t[i], yield_three_times, NULL);
    corio_spawn(&d, await_done_futures, NULL);
    for (int i = 0; i < METRIC_TASKS; i++) {
        corio_await(t[i], NULL);
        corio_task_unref(t[i]);
    }
    corio_await(d, &bad);
    corio_task_unref(d);
    return bad;
}

static void loop_metrics_after_run(void **state)
{
    corio_rt_options o = {.workers = 2};
    corio_rt *rt = NULL;
    corio_task *main_task = NULL;
    corio_worker_metrics m;
    uint64_t polls = 0, budget_yields = 0;
    void *bad = (void *)1;

    (void)state;
    assert_int_equal(corio_rt_create(&rt, &o), 0);
    assert_int_equal(corio_rt_workers(rt), 2);
    assert_int_equal(corio_rt_run(rt, metrics_main, NULL, &main_task), 0);
    assert_int_equal(corio_task_result(main_task, &bad), 0);
    assert_null(bad);
    for (unsigned i = 0; i < 2; i++) {
        memset(&m, 0xff, sizeof m);
        assert_int_equal(corio_rt_worker_metrics(rt, i, &m), 0);
        polls += m.polls;
        budget_yields += m.budget_yields;
    }
    /* Each yielding task took four steps. */
    assert_true(polls >= METRIC_TASKS * 4);
    assert_true(budget_yields >= DONE_AWAITS / 128);
    assert_int_equal(corio_rt_worker_metrics(rt, 2, &m), -EINVAL);
    assert_int_equal(corio_rt_worker_metrics(rt, 0, NULL), -EINVAL);
    assert_int_equal(corio_rt_worker_metrics(NULL, 0, &m), -EINVAL);
    assert_int_equal(corio_rt_alive_tasks(rt), 0);
    assert_int_equal(corio_rt_alive_tasks(NULL), 0);
    corio_task_unref(main_task);
    assert_int_equal(corio_rt_destroy(rt), 0);
}

/* ---- running runtime and worker ids ------------------------------------ */

#define WHERE_TASKS 16

struct where {
    corio_rt *rt_in_main;
    unsigned workers_in_main;
    int ids[WHERE_TASKS + 1];
};

static void *record_worker_id(void *arg)
{
    *(int *)arg = corio_worker_id();
    return NULL;
}

static void *where_main(void *arg)
{
    struct where *s = arg;
    corio_task *t[WHERE_TASKS] = {0};

    s->rt_in_main = corio_get_running_rt();
    s->workers_in_main = corio_rt_workers(s->rt_in_main);
    s->ids[WHERE_TASKS] = corio_worker_id();
    for (int i = 0; i < WHERE_TASKS; i++)
        corio_spawn(&t[i], record_worker_id, &s->ids[i]);
    for (int i = 0; i < WHERE_TASKS; i++) {
        corio_await(t[i], NULL);
        corio_task_unref(t[i]);
    }
    return NULL;
}

static void where_on(unsigned workers)
{
    corio_rt_options o = {.workers = workers};
    corio_rt *rt = NULL;
    struct where s;

    memset(&s, 0xff, sizeof s);
    assert_int_equal(corio_rt_create(&rt, &o), 0);
    assert_int_equal(corio_rt_run(rt, where_main, &s, NULL), 0);
    assert_ptr_equal(s.rt_in_main, rt);
    assert_int_equal(s.workers_in_main, workers);
    for (int i = 0; i <= WHERE_TASKS; i++)
        assert_true(s.ids[i] >= 0 && s.ids[i] < (int)workers);
    assert_int_equal(corio_rt_destroy(rt), 0);
}

static void loop_running_rt_and_worker_id(void **state)
{
    corio_rt *rt = NULL;

    (void)state;
    assert_null(corio_get_running_rt());
    assert_int_equal(corio_worker_id(), -1);
    assert_int_equal(corio_rt_workers(NULL), 0);
    on_each_worker_count(where_on);
    /* workers = 0: $CORIO_WORKERS or the online CPUs, at least one. */
    assert_int_equal(corio_rt_create(&rt, NULL), 0);
    assert_true(corio_rt_workers(rt) >= 1);
    assert_int_equal(corio_rt_destroy(rt), 0);
}

/* ---- error strings ----------------------------------------------------- */

static void loop_strerror_texts(void **state)
{
    static const int codes[] = {-EINVAL, -EPERM, -ENOMEM, -ECANCELED, -EAGAIN, -ETIMEDOUT,
                                -EBUSY, -ENOENT};
    const size_t n = sizeof codes / sizeof codes[0];

    (void)state;
    for (size_t i = 0; i < n; i++) {
        const char *s = corio_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, corio_strerror(codes[j]));
    }
    assert_non_null(strstr(corio_strerror(-ECANCELED), "cancel"));
    assert_non_null(strstr(corio_strerror(-ETIMEDOUT), "time"));
    assert_non_null(corio_strerror(0));
    assert_non_null(corio_strerror(-EIO));
    assert_true(strlen(corio_strerror(-EIO)) > 0);
    assert_non_null(corio_strerror(-99999));   /* unknown: a generic text */
    assert_true(strlen(corio_strerror(-99999)) > 0);
}

/* ---- corio_run / corio_rt_run results ---------------------------------- */

static void run_result_on(unsigned workers)
{
    corio_rt_options o = {.workers = workers};
    void *result = NULL;

    assert_int_equal(corio_run(return_arg, (void *)0x1234, &o, &result), 0);
    assert_ptr_equal(result, (void *)0x1234);
    assert_int_equal(corio_run(return_arg, (void *)0x1234, &o, NULL), 0);
}

static void run_returns_main_result(void **state)
{
    (void)state;
    on_each_worker_count(run_result_on);
}

static void *failing_main(void *arg)
{
    struct reports *reps = arg;

    if (reps)
        corio_rt_set_exception_handler(corio_get_running_rt(), record_report, reps);
    corio_raise(-ENOSPC, "disk %s", "full");
    return NULL;
}

static void run_returns_main_error(void **state)
{
    corio_rt_options o = {.workers = 1};
    struct reports reps;
    struct capture cap;
    corio_rt *rt = NULL;
    corio_task *main_task = NULL;
    const char *msg = NULL;
    void *result = (void *)1;

    (void)state;
    /* Its error is corio_run()'s; its message goes to the handler. */
    reports_init(&reps);
    assert_int_equal(corio_run(failing_main, &reps, &o, &result), -ENOSPC);
    expect_reports(&reps, 1);
    assert_int_equal(reps.r[0].error, -ENOSPC);
    assert_string_equal(reps.r[0].error_message, "disk full");

    /* ... which is stderr by default. */
    capture_start(&cap);
    int rc = corio_run(failing_main, NULL, &o, NULL);
    char *text = capture_end(&cap);
    assert_int_equal(rc, -ENOSPC);
    assert_non_null(strstr(text, "disk full"));
    free(text);

    /* The main handle gives the message. */
    capture_start(&cap);
    assert_int_equal(corio_rt_create(&rt, &o), 0);
    rc = corio_rt_run(rt, failing_main, NULL, &main_task);
    text = capture_end(&cap);
    free(text);
    assert_int_equal(rc, -ENOSPC);
    assert_int_equal(corio_task_exception(main_task, &msg), -ENOSPC);
    assert_string_equal(msg, "disk full");
    corio_task_unref(main_task);
    assert_int_equal(corio_rt_destroy(rt), 0);
}

/* Main cancelled three ways: by another task while it awaits, by raising
 * -ECANCELED, by cancelling itself and returning. */
static void *cancel_main_task(void *arg)
{
    corio_task_cancel(arg, NULL);
    return NULL;
}

static void *main_cancelled_by_other(void *arg)
{
    corio_future *f = new_future();

    (void)arg;
    corio_spawn(NULL, cancel_main_task, corio_current_task());
    corio_await(f, NULL);   /* -ECANCELED */
    corio_future_unref(f);
    return (void *)1;
}

static void *main_raises_cancelled(void *arg)
{
    (void)arg;
    corio_raise(-ECANCELED, NULL);
    return (void *)1;
}

static void *main_cancels_itself(void *arg)
{
    (void)arg;
    corio_task_cancel(corio_current_task(), NULL);
    return (void *)1;
}

static void main_cancelled_on(unsigned workers)
{
    corio_rt_options o = {.workers = workers};
    corio_fn mains[] = {main_cancelled_by_other, main_raises_cancelled, main_cancels_itself};
    struct reports reps;
    void *result = (void *)2;

    for (size_t i = 0; i < sizeof mains / sizeof mains[0]; i++) {
        assert_int_equal(run_with(&o, &reps, mains[i], NULL, &result), -ECANCELED);
        expect_reports(&reps, 0);
        assert_int_equal(corio_run(mains[i], NULL, &o, &result), -ECANCELED);
    }
}

static void run_returns_ecanceled_when_main_cancelled(void **state)
{
    (void)state;
    on_each_worker_count(main_cancelled_on);
}

static void *record_self(void *arg)
{
    *(corio_task **)arg = corio_current_task();
    return (void *)0x77;
}

static void run_rt_run_gives_main_handle(void **state)
{
    corio_rt_options o = {.workers = 2};
    corio_rt *rt = NULL;
    corio_task *main_task = NULL, *self = NULL;
    char expect[64];
    void *v = NULL;

    (void)state;
    assert_int_equal(corio_rt_create(&rt, &o), 0);
    assert_int_equal(corio_rt_run(rt, record_self, &self, &main_task), 0);
    assert_non_null(main_task);
    assert_ptr_equal(main_task, self);
    assert_true(corio_task_done(main_task));
    assert_false(corio_task_cancelled(main_task));
    assert_int_equal(corio_task_result(main_task, &v), 0);
    assert_ptr_equal(v, (void *)0x77);
    snprintf(expect, sizeof expect, "Task-%llu",
             (unsigned long long)corio_task_id(main_task));
    assert_string_equal(corio_task_name(main_task), expect);
    corio_task_unref(main_task);
    assert_int_equal(corio_rt_destroy(rt), 0);
}

/* corio_rt_destroy(): tasks and futures still referenced stay valid. */
struct outlive {
    corio_future *f;
};

static void *keep_a_future(void *arg)
{
    struct outlive *s = arg;

    s->f = new_future();
    corio_future_set_exception(s->f, -EIO, "kept past destroy");
    return (void *)0x99;
}

static void run_main_handle_outlives_destroy(void **state)
{
    corio_rt_options o = {.workers = 2};
    corio_rt *rt = NULL;
    corio_task *main_task = NULL;
    struct outlive s = {0};
    const char *msg = NULL;
    void *v = NULL;

    (void)state;
    assert_int_equal(corio_rt_create(&rt, &o), 0);
    assert_int_equal(corio_rt_run(rt, keep_a_future, &s, &main_task), 0);
    assert_non_null(s.f);
    assert_int_equal(corio_rt_destroy(rt), 0);
    assert_true(corio_task_done(main_task));
    assert_int_equal(corio_task_result(main_task, &v), 0);
    assert_ptr_equal(v, (void *)0x99);
    assert_true(strncmp(corio_task_name(main_task), "Task-", 5) == 0);
    assert_int_equal(corio_future_exception(s.f, &msg), -EIO);   /* retrieved */
    assert_string_equal(msg, "kept past destroy");
    corio_future_unref(s.f);
    corio_task_unref(main_task);   /* the runtime's last bytes go here */
}

/* ---- shutdown ---------------------------------------------------------- */

#define LINGERERS 4

struct shutdown {
    corio_future *ready[LINGERERS + 1];
    struct lingerer {
        struct shutdown *s;
        int i;
        int await_rc, cleanup_rc[3], cleaned;
    } l[LINGERERS];
    corio_future *late_ready;
    int spawner_await_rc, late_spawn_rc, late_ready_rc, late_ran, late_await_rc;
    int main_gather_rc;
};

/* Awaits forever; when cancelled, cleans up with awaits of its own. */
static void *lingerer(void *arg)
{
    struct lingerer *l = arg;
    corio_future *f = new_future();

    set_and_release(l->s->ready[l->i]);
    l->await_rc = corio_await(f, NULL);
    for (int k = 0; k < 3; k++)
        l->cleanup_rc[k] = corio_yield();
    l->cleaned = 1;
    corio_future_unref(f);
    return NULL;
}

static void *late_task(void *arg)
{
    struct shutdown *s = arg;
    corio_future *f = new_future();

    s->late_ran = 1;
    set_and_release(s->late_ready);
    s->late_await_rc = corio_await(f, NULL);
    corio_future_unref(f);
    return NULL;
}

/* When cancelled, spawns another task that shutdown must cancel too. */
static void *late_spawner(void *arg)
{
    struct shutdown *s = arg;
    corio_future *f = new_future();

    set_and_release(s->ready[LINGERERS]);
    s->spawner_await_rc = corio_await(f, NULL);
    corio_future_unref(f);
    s->late_ready = new_future();
    corio_future_ref(s->late_ready);   /* late_task's own reference */
    s->late_spawn_rc = corio_spawn(NULL, late_task, s);
    if (s->late_spawn_rc == 0)
        s->late_ready_rc = corio_await(s->late_ready, NULL);
    else
        corio_future_unref(s->late_ready);
    corio_future_unref(s->late_ready);
    return NULL;
}

static void *shutdown_main(void *arg)
{
    struct shutdown *s = arg;

    for (int i = 0; i <= LINGERERS; i++) {
        s->ready[i] = new_future();
        corio_future_ref(s->ready[i]);   /* the task's own reference */
    }
    for (int i = 0; i < LINGERERS; i++) {
        s->l[i] = (struct lingerer){.s = s, .i = i, .await_rc = 1};
        corio_spawn(NULL, lingerer, &s->l[i]);
    }
    corio_spawn(NULL, late_spawner, s);
    s->main_gather_rc = corio_gather(s->ready, LINGERERS + 1, 0, NULL, NULL);
    for (int i = 0; i <= LINGERERS; i++)
        corio_future_unref(s->ready[i]);
    return (void *)0xd0e;   /* the others are still waiting */
}

static void shutdown_on(unsigned workers)
{
    struct shutdown s = {.spawner_await_rc = 1, .late_await_rc = 1};
    void *result = NULL;

    assert_int_equal(run_on(workers, shutdown_main, &s, &result), 0);
    assert_ptr_equal(result, (void *)0xd0e);
    assert_int_equal(s.main_gather_rc, 0);
    for (int i = 0; i < LINGERERS; i++) {
        assert_int_equal(s.l[i].await_rc, -ECANCELED);
        for (int k = 0; k < 3; k++)
            assert_int_equal(s.l[i].cleanup_rc[k], 0);
        assert_int_equal(s.l[i].cleaned, 1);
    }
    assert_int_equal(s.spawner_await_rc, -ECANCELED);
    assert_int_equal(s.late_spawn_rc, 0);
    assert_int_equal(s.late_ready_rc, 0);
    assert_int_equal(s.late_ran, 1);
    assert_int_equal(s.late_await_rc, -ECANCELED);
}

static void run_shutdown_cancels_remaining_tasks(void **state)
{
    (void)state;
    on_each_worker_count(shutdown_on);
}

static void *fails_when_cancelled(void *arg)
{
    corio_future *f = new_future();

    set_and_release(arg);
    int rc = corio_await(f, NULL);
    corio_future_unref(f);
    corio_raise(-EIO, "cleanup failed (%d)", rc);
    return NULL;
}

static void *failing_cleanup_main(void *arg)
{
    corio_future *ready = new_future();
    corio_spawn_options o = {.name = "failing-cleanup"};

    (void)arg;
    corio_future_ref(ready);   /* the task's own reference */
    corio_spawn_ex(NULL, fails_when_cancelled, ready, &o);
    corio_await(ready, NULL);
    corio_future_unref(ready);
    return NULL;
}

static void shutdown_failure_on(unsigned workers)
{
    corio_rt_options o = {.workers = workers};
    struct reports reps;
    char expect[64];

    assert_int_equal(run_with(&o, &reps, failing_cleanup_main, NULL, NULL), 0);
    expect_reports(&reps, 1);
    assert_string_equal(reps.r[0].message, "unhandled exception during corio_run() shutdown");
    assert_int_equal(reps.r[0].error, -EIO);
    snprintf(expect, sizeof expect, "cleanup failed (%d)", -ECANCELED);
    assert_string_equal(reps.r[0].error_message, expect);
    assert_string_equal(reps.r[0].task, "failing-cleanup");
}

static void run_shutdown_reports_failure_while_cancelled(void **state)
{
    (void)state;
    on_each_worker_count(shutdown_failure_on);
}

/* Tasks that appear after the shutdown's last cancel round: done callbacks
 * of the tasks it cancels run late and spawn a task, or add a reader (whose
 * watch is a task) on a pipe that never becomes readable. The workers must
 * cancel them before they leave: run_with() asserts that none is alive,
 * and a sleeping one left behind would have its timer freed under it. */
#define LATE_SPAWNERS 8

struct late {
    int pipe[2];
    atomic_int spawned, started, sleep_cancelled, readers_added, callbacks_run;
};

static void *late_sleeper(void *arg)
{
    struct late *s = arg;

    atomic_fetch_add(&s->started, 1);   /* a task cancelled before its first step never starts */
    if (corio_sleep(60 * 1000000000ull) == -ECANCELED)
        atomic_fetch_add(&s->sleep_cancelled, 1);
    return NULL;
}

static void never_readable(void *arg)
{
    (void)arg;
}

static void spawn_when_done(corio_future *f, void *arg)
{
    struct late *s = arg;

    (void)f;
    atomic_fetch_add(&s->callbacks_run, 1);
    if (corio_spawn(NULL, late_sleeper, s) == 0)
        atomic_fetch_add(&s->spawned, 1);
    if (corio_add_reader(s->pipe[0], never_readable, NULL) == 0)
        atomic_fetch_add(&s->readers_added, 1);
}

static void *late_callbacks_main(void *arg)
{
    struct late *s = arg;

    for (int i = 0; i < LATE_SPAWNERS; i++) {
        corio_task *t;
        if (corio_spawn(&t, late_sleeper, s) < 0)
            return NULL;
        corio_future_add_done_callback(corio_task_future(t), spawn_when_done, s);
        corio_task_unref(t);
    }
    corio_yield();   /* they start sleeping; main ends and the shutdown cancels them */
    return NULL;
}

static void late_callbacks_on(unsigned workers)
{
    struct late s = {0};

    assert_int_equal(pipe(s.pipe), 0);
    assert_int_equal(run_on(workers, late_callbacks_main, &s, NULL), 0);
    assert_int_equal(atomic_load(&s.callbacks_run), LATE_SPAWNERS);
    assert_int_equal(atomic_load(&s.spawned), LATE_SPAWNERS);
    assert_int_equal(atomic_load(&s.sleep_cancelled), atomic_load(&s.started));
    assert_true(atomic_load(&s.readers_added) >= 1);   /* later adds replace the first */
    close(s.pipe[0]);
    close(s.pipe[1]);
}

static void run_shutdown_cancels_tasks_of_late_callbacks(void **state)
{
    (void)state;
    on_each_worker_count(late_callbacks_on);
}

/* ---- misuse ------------------------------------------------------------ */

static void noop_callback(void *arg)
{
    (void)arg;
}

static void misuse_call_soon_outside_runtime(void **state)
{
    corio_handle *h = NULL;

    (void)state;
    assert_int_equal(corio_call_soon(NULL, noop_callback, NULL), -EPERM);
    assert_int_equal(corio_call_soon(&h, noop_callback, NULL), -EPERM);
    assert_null(h);
}

static void misuse_all_tasks_outside_runtime(void **state)
{
    corio_task **list = NULL;

    (void)state;
    assert_int_equal(corio_all_tasks(&list), -EPERM);
}

struct null_fn {
    int soon_rc, soon_handle_rc;
};

static void *null_fn_main(void *arg)
{
    struct null_fn *s = arg;
    corio_handle *h = NULL;

    s->soon_rc = corio_call_soon(NULL, NULL, NULL);
    s->soon_handle_rc = corio_call_soon(&h, NULL, NULL);
    return NULL;
}

static void misuse_null_fn_einval(void **state)
{
    struct null_fn s = {0};
    corio_rt_options o = {.workers = 1};
    corio_rt *rt = NULL;

    (void)state;
    assert_int_equal(run_on(1, null_fn_main, &s, NULL), 0);
    assert_int_equal(s.soon_rc, -EINVAL);
    assert_int_equal(s.soon_handle_rc, -EINVAL);
    assert_int_equal(corio_run(NULL, NULL, &o, NULL), -EINVAL);
    assert_int_equal(corio_rt_create(&rt, &o), 0);
    assert_int_equal(corio_rt_run(rt, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(corio_rt_run(NULL, return_arg, NULL, NULL), -EINVAL);
    assert_int_equal(corio_rt_run(rt, return_arg, NULL, NULL), 0);   /* still unused */
    assert_int_equal(corio_rt_destroy(rt), 0);
    assert_int_equal(corio_rt_destroy(NULL), -EINVAL);
}

struct nested_run {
    corio_rt *other;
    int run_rc, rt_run_rc, destroy_own_rc;
};

static void *nested_run_main(void *arg)
{
    struct nested_run *s = arg;
    corio_rt_options o = {.workers = 1};

    s->run_rc = corio_run(return_arg, NULL, &o, NULL);
    s->rt_run_rc = corio_rt_run(s->other, return_arg, NULL, NULL);
    s->destroy_own_rc = corio_rt_destroy(corio_get_running_rt());
    return NULL;
}

static void misuse_run_inside_task_ebusy(void **state)
{
    corio_rt_options o = {.workers = 1};
    struct nested_run s = {0};
    void *v = NULL;

    (void)state;
    assert_int_equal(corio_rt_create(&s.other, &o), 0);
    assert_int_equal(run_on(2, nested_run_main, &s, NULL), 0);
    assert_int_equal(s.run_rc, -EBUSY);
    assert_int_equal(s.rt_run_rc, -EBUSY);
    assert_int_equal(s.destroy_own_rc, -EBUSY);
    /* The refused call did not use up the other runtime. */
    corio_task *t = NULL;
    assert_int_equal(corio_rt_run(s.other, return_arg, (void *)3, &t), 0);
    assert_int_equal(corio_task_result(t, &v), 0);
    assert_ptr_equal(v, (void *)3);
    corio_task_unref(t);
    assert_int_equal(corio_rt_destroy(s.other), 0);
}

static void misuse_rt_run_twice_ebusy(void **state)
{
    corio_rt_options o = {.workers = 2};
    corio_rt *rt = NULL;
    corio_task *t = (corio_task *)&t;

    (void)state;
    assert_int_equal(corio_rt_create(&rt, &o), 0);
    assert_int_equal(corio_rt_run(rt, return_arg, NULL, NULL), 0);
    assert_int_equal(corio_rt_run(rt, return_arg, NULL, NULL), -EBUSY);
    assert_int_equal(corio_rt_run(rt, return_arg, NULL, &t), -EBUSY);
    assert_int_equal(corio_rt_destroy(rt), 0);
}

static void misuse_rt_create_bad_options(void **state)
{
    corio_rt_options o = {.workers = 1025};
    corio_rt *rt = NULL;

    (void)state;
    assert_int_equal(corio_rt_create(&rt, &o), -EINVAL);
    assert_int_equal(corio_run(return_arg, NULL, &o, NULL), -EINVAL);
    o.workers = 1024;
    assert_int_equal(corio_rt_create(&rt, &o), 0);
    assert_int_equal(corio_rt_workers(rt), 1024);
    assert_int_equal(corio_rt_destroy(rt), 0);
    o = (corio_rt_options){.workers = 1, .stack_size = 1000};
    assert_int_equal(corio_rt_create(&rt, &o), -EINVAL);
    o.stack_size = (size_t)2 << 30;
    assert_int_equal(corio_rt_create(&rt, &o), -EINVAL);
    assert_int_equal(corio_run(return_arg, NULL, &o, NULL), -EINVAL);
    o.stack_size = 0;
    assert_int_equal(corio_rt_create(NULL, &o), -EINVAL);
}

/* Callbacks run on a worker's own stack: no awaiting there. */
struct in_callback {
    corio_future *f;
    int yield_rc, await_rc, raise_rc, spawn_rc, soon_rc, create_rc;
    atomic_int ran;
};

static void misusing_callback(void *arg)
{
    struct in_callback *s = arg;
    corio_future *g = NULL;

    s->yield_rc = corio_yield();
    s->await_rc = corio_await(s->f, NULL);
    s->raise_rc = corio_raise(-EIO, "from a callback");
    s->spawn_rc = corio_spawn(NULL, return_arg, NULL);   /* allowed */
    s->soon_rc = corio_call_soon(NULL, noop_callback, NULL);   /* allowed */
    s->create_rc = corio_future_create(&g);   /* allowed */
    corio_future_unref(g);
    atomic_store(&s->ran, 1);
}

static void *in_callback_main(void *arg)
{
    struct in_callback *s = arg;

    s->f = new_future();
    corio_call_soon(NULL, misusing_callback, s);
    for (long i = 0; i < 10000000 && !atomic_load(&s->ran); i++)
        corio_yield();
    corio_future_unref(s->f);
    return NULL;
}

static void misuse_callback_cannot_await(void **state)
{
    struct in_callback s = {0};

    (void)state;
    assert_int_equal(run_on(1, in_callback_main, &s, NULL), 0);
    assert_int_equal(atomic_load(&s.ran), 1);
    assert_int_equal(s.yield_rc, -EPERM);
    assert_int_equal(s.await_rc, -EPERM);
    assert_int_equal(s.raise_rc, -EPERM);
    assert_int_equal(s.spawn_rc, 0);
    assert_int_equal(s.soon_rc, 0);
    assert_int_equal(s.create_rc, 0);
}

/* ---- main -------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loop_call_soon_runs_in_order),
        cmocka_unit_test(loop_call_soon_runs_each_once),
        cmocka_unit_test(loop_handle_cancel_prevents_run),
        cmocka_unit_test(loop_time_monotonic),
        cmocka_unit_test(loop_exception_handler_set_get_default),
        cmocka_unit_test(loop_default_handler_format),
        cmocka_unit_test(loop_unretrieved_exception_reported),
        cmocka_unit_test(loop_retrieved_exception_not_reported),
        cmocka_unit_test(loop_debug_reports_slow_step),
        cmocka_unit_test(loop_metrics_after_run),
        cmocka_unit_test(loop_running_rt_and_worker_id),
        cmocka_unit_test(loop_strerror_texts),
        cmocka_unit_test(run_returns_main_result),
        cmocka_unit_test(run_returns_main_error),
        cmocka_unit_test(run_returns_ecanceled_when_main_cancelled),
        cmocka_unit_test(run_rt_run_gives_main_handle),
        cmocka_unit_test(run_main_handle_outlives_destroy),
        cmocka_unit_test(run_shutdown_cancels_remaining_tasks),
        cmocka_unit_test(run_shutdown_reports_failure_while_cancelled),
        cmocka_unit_test(run_shutdown_cancels_tasks_of_late_callbacks),
        cmocka_unit_test(misuse_call_soon_outside_runtime),
        cmocka_unit_test(misuse_all_tasks_outside_runtime),
        cmocka_unit_test(misuse_null_fn_einval),
        cmocka_unit_test(misuse_run_inside_task_ebusy),
        cmocka_unit_test(misuse_rt_run_twice_ebusy),
        cmocka_unit_test(misuse_rt_create_bad_options),
        cmocka_unit_test(misuse_callback_cannot_await),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
