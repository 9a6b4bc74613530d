/* tests/test_bridge.c - tasks and threads handing work to each other:
 * run_in_executor / to_thread (the worker keeps running; cancellation before
 * and during the work), concurrent futures awaited in tasks, wrap_future,
 * run_coroutine_threadsafe (values, errors, cancel, 8 threads x 10,000),
 * call_soon_threadsafe, the default executor (its growth when calls block)
 * and its shutdown at the end of the run, and bad input.
 */
#include "testutil.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <corio/executor.h>

#define MS 1000000LL

#if defined(__SANITIZE_THREAD__)
#define XT_THREADS 4
#define XT_CALLS 500
#else
#define XT_THREADS 8
#define XT_CALLS 10000
#endif

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void *add_one(void *arg)
{
    return V((uintptr_t)arg + 1);
}

static void *sleep_arg_ms(void *arg)
{
    sleep_ms((int)(uintptr_t)arg);
    return arg;
}

/* ---- run_in_executor ---- */

struct ticker {
    atomic_int ticks;
    atomic_bool stop;
};

static void *tick(void *arg)
{
    struct ticker *t = arg;
    while (!atomic_load(&t->stop)) {
        atomic_fetch_add(&t->ticks, 1);
        corio_sleep(1 * MS);
    }
    return NULL;
}

static void *run_in_executor_main(void *arg)
{
    struct checks *ck = arg;
    struct ticker tk = { 0 };
    corio_task *t;
    CHECK_EQ(ck, corio_spawn(&t, tick, &tk), 0);
    void *v = NULL;
    /* default executor: the one worker keeps ticking meanwhile */
    CHECK_EQ(ck, corio_run_in_executor(NULL, sleep_arg_ms, V(60), &v), 0);
    CHECK_PTR(ck, v, V(60));
    CHECK(ck, atomic_load(&tk.ticks) >= 10);
    CHECK_EQ(ck, corio_to_thread(add_one, V(4), &v), 0);
    CHECK_PTR(ck, v, V(5));
    /* a pool of our own */
    corio_thread_pool *p;
    CHECK_EQ(ck, corio_thread_pool_create(&p, NULL), 0);
    CHECK_EQ(ck, corio_run_in_executor(p, add_one, V(9), &v), 0);
    CHECK_PTR(ck, v, V(10));
    /* map from a task awaits each result */
    void *args[4] = { V(30), V(1), V(20), V(2) }, *res[4];
    int before = atomic_load(&tk.ticks);
    CHECK_EQ(ck, corio_thread_pool_map(p, sleep_arg_ms, args, 4, CORIO_WAIT_FOREVER, res), 0);
    for (int i = 0; i < 4; i++)
        CHECK_PTR(ck, res[i], args[i]);
    CHECK(ck, atomic_load(&tk.ticks) > before);
    CHECK_EQ(ck, corio_thread_pool_destroy(p), 0);   /* awaits its threads here */
    atomic_store(&tk.stop, true);
    CHECK_EQ(ck, corio_await(t, NULL), 0);
    corio_task_unref(t);
    return NULL;
}

static void bridge_run_in_executor_leaves_worker_free(void **state)
{
    (void)state;
    run_checks(1, run_in_executor_main);
}

static void *raise_eio(void *arg)
{
    corio_executor_raise(-EIO, (const char *)arg);
    return NULL;
}

static void *errors_main(void *arg)
{
    struct checks *ck = arg;
    CHECK_EQ(ck, corio_run_in_executor(NULL, raise_eio, "boom", NULL), -EIO);
    CHECK_EQ(ck, corio_run_in_executor(NULL, NULL, NULL, NULL), -EINVAL);
    corio_thread_pool *p;
    CHECK_EQ(ck, corio_thread_pool_create(&p, NULL), 0);
    CHECK_EQ(ck, corio_thread_pool_shutdown(p, true, false), 0);
    CHECK_EQ(ck, corio_run_in_executor(p, add_one, NULL, NULL), -ESHUTDOWN);
    CHECK_EQ(ck, corio_thread_pool_destroy(p), 0);
    return NULL;
}

static void bridge_run_in_executor_errors(void **state)
{
    (void)state;
    run_checks(2, errors_main);
    void *v;
    assert_int_equal(corio_run_in_executor(NULL, add_one, NULL, &v), -EPERM);
    assert_int_equal(corio_to_thread(add_one, NULL, &v), -EPERM);
}

struct gate {
    atomic_int started, ran;
    atomic_bool release;
};

static void *blocker(void *arg)
{
    struct gate *g = arg;
    atomic_fetch_add(&g->started, 1);
    while (!atomic_load(&g->release))
        sleep_ms(1);
    atomic_fetch_add(&g->ran, 1);
    return NULL;
}

struct cancel_case {
    struct checks ck;
    corio_thread_pool *p;
    struct gate g1, g2;
    int rc1, rc2;
    atomic_bool done2;
};

static void *await_blocker1(void *arg)
{
    struct cancel_case *c = arg;
    c->rc1 = corio_run_in_executor(c->p, blocker, &c->g1, NULL);
    return NULL;
}

static void *await_blocker2(void *arg)
{
    struct cancel_case *c = arg;
    c->rc2 = corio_run_in_executor(c->p, blocker, &c->g2, NULL);
    atomic_store(&c->done2, true);
    return NULL;
}

static void *cancel_main(void *arg)
{
    struct cancel_case *c = arg;
    struct checks *ck = &c->ck;
    corio_thread_pool_options o = { .max_workers = 1 };
    CHECK_EQ(ck, corio_thread_pool_create(&c->p, &o), 0);
    corio_task *t1, *t2;
    CHECK_EQ(ck, corio_spawn(&t1, await_blocker1, c), 0);
    while (!atomic_load(&c->g1.started))
        corio_sleep(1 * MS);
    CHECK_EQ(ck, corio_spawn(&t2, await_blocker2, c), 0);
    corio_sleep(5 * MS);   /* t2's work is queued behind t1's */
    /* not started: cancelled at once, it never runs */
    CHECK_EQ(ck, corio_task_cancel(t2, NULL), 1);
    CHECK_EQ(ck, corio_await(t2, NULL), -ECANCELED);
    CHECK_EQ(ck, c->rc2, -ECANCELED);
    /* running: the task waits for the work to end, then is cancelled */
    CHECK_EQ(ck, corio_task_cancel(t1, NULL), 1);
    corio_sleep(10 * MS);
    CHECK(ck, !corio_task_done(t1));
    atomic_store(&c->g1.release, true);
    CHECK_EQ(ck, corio_await(t1, NULL), -ECANCELED);
    CHECK_EQ(ck, c->rc1, -ECANCELED);
    CHECK_EQ(ck, atomic_load(&c->g1.ran), 1);
    CHECK_EQ(ck, corio_thread_pool_destroy(c->p), 0);
    CHECK_EQ(ck, atomic_load(&c->g2.started), 0);
    corio_task_unref(t1);
    corio_task_unref(t2);
    return NULL;
}

static void bridge_cancel_task_awaiting_run_in_executor(void **state)
{
    (void)state;
    struct cancel_case c = { 0 };
    run_main_checked(2, cancel_main, &c, &c.ck);
}

/* ---- concurrent futures in tasks ---- */

struct cf_case {
    struct checks ck;
    corio_cfuture *f;
};

static void *set_from_thread(void *arg)
{
    struct cf_case *c = arg;
    sleep_ms(20);
    corio_cfuture_set_result(c->f, V(3));
    return NULL;
}

static void *cfuture_in_task_main(void *arg)
{
    struct cf_case *c = arg;
    struct checks *ck = &c->ck;
    CHECK_EQ(ck, corio_cfuture_create(&c->f), 0);
    /* a timeout in a task: the future is left alone */
    CHECK_EQ(ck, corio_cfuture_result(c->f, 10 * MS, NULL), -ETIMEDOUT);
    CHECK(ck, !corio_cfuture_done(c->f));
    CHECK_EQ(ck, corio_cfuture_result(c->f, -1, NULL), -EINVAL);
    pthread_t t;
    CHECK_EQ(ck, pthread_create(&t, NULL, set_from_thread, c), 0);
    void *v = NULL;
    CHECK_EQ(ck, corio_cfuture_result(c->f, CORIO_WAIT_FOREVER, &v), 0);
    CHECK_PTR(ck, v, V(3));
    pthread_join(t, NULL);
    corio_cfuture_unref(c->f);
    return NULL;
}

static void bridge_cfuture_result_awaits_in_task(void **state)
{
    (void)state;
    struct cf_case c = { 0 };
    run_main_checked(1, cfuture_in_task_main, &c, &c.ck);
}

static void *wrap_main(void *arg)
{
    struct checks *ck = arg;
    corio_cfuture *cf;
    corio_future *f;
    CHECK_EQ(ck, corio_cfuture_create(&cf), 0);
    CHECK_EQ(ck, corio_wrap_future(cf, &f), 0);
    CHECK_EQ(ck, corio_cfuture_set_exception(cf, -EIO, "io"), 0);
    const char *msg = NULL;
    CHECK_EQ(ck, corio_await(f, NULL), -EIO);
    CHECK_EQ(ck, corio_future_exception(f, &msg), -EIO);
    CHECK_STR(ck, msg, "io");
    corio_future_unref(f);
    corio_cfuture_unref(cf);
    /* a value */
    CHECK_EQ(ck, corio_cfuture_create(&cf), 0);
    CHECK_EQ(ck, corio_wrap_future(cf, &f), 0);
    CHECK_EQ(ck, corio_cfuture_set_result(cf, V(5)), 0);
    void *v = NULL;
    CHECK_EQ(ck, corio_await(f, &v), 0);
    CHECK_PTR(ck, v, V(5));
    corio_future_unref(f);
    corio_cfuture_unref(cf);
    /* cancelling the wrapper cancels the concurrent future */
    CHECK_EQ(ck, corio_cfuture_create(&cf), 0);
    CHECK_EQ(ck, corio_wrap_future(cf, &f), 0);
    CHECK_EQ(ck, corio_wait_for(f, 5 * MS, NULL), -ETIMEDOUT);
    for (int i = 0; i < 100 && !corio_cfuture_done(cf); i++)
        corio_sleep(1 * MS);
    CHECK(ck, corio_cfuture_cancelled(cf));
    corio_future_unref(f);
    corio_cfuture_unref(cf);
    CHECK_EQ(ck, corio_wrap_future(NULL, &f), -EINVAL);
    return NULL;
}

static void bridge_wrap_future(void **state)
{
    (void)state;
    run_checks(2, wrap_main);
}

/* ---- run_coroutine_threadsafe ---- */

static void *coro_add_one(void *arg)
{
    corio_yield();
    return V((uintptr_t)arg + 1);
}

static void *coro_fail(void *arg)
{
    (void)arg;
    corio_raise(-EIO, "coro %d", 7);
    return NULL;   /* not reached */
}

static void *coro_forever(void *arg)
{
    atomic_bool *cancelled = arg;
    if (corio_sleep(100000 * MS) == -ECANCELED)
        atomic_store(cancelled, true);
    return NULL;
}

struct xt_case {
    struct checks ck;
    corio_rt *rt;
    atomic_bool cancelled;
    atomic_long ok;
    atomic_int called; /* written by the callback on a worker, polled by main */
};

static void *xt_basic_thread(void *arg)
{
    struct xt_case *c = arg;
    struct checks *ck = &c->ck;
    corio_cfuture *f;
    void *v = NULL;
    CHECK_EQ(ck, corio_run_coroutine_threadsafe(c->rt, coro_add_one, V(41), &f), 0);
    CHECK_EQ(ck, corio_cfuture_result(f, CORIO_WAIT_FOREVER, &v), 0);
    CHECK_PTR(ck, v, V(42));
    corio_cfuture_unref(f);
    CHECK_EQ(ck, corio_run_coroutine_threadsafe(c->rt, coro_fail, NULL, &f), 0);
    const char *msg = NULL;
    CHECK_EQ(ck, corio_cfuture_exception(f, CORIO_WAIT_FOREVER, &msg), -EIO);
    CHECK_STR(ck, msg, "coro 7");
    corio_cfuture_unref(f);
    /* cancelling the concurrent future cancels the task */
    CHECK_EQ(ck, corio_run_coroutine_threadsafe(c->rt, coro_forever, &c->cancelled, &f), 0);
    CHECK_EQ(ck, corio_cfuture_result(f, 20 * MS, NULL), -ETIMEDOUT);
    CHECK_EQ(ck, corio_cfuture_cancel(f), 1);
    CHECK_EQ(ck, corio_cfuture_result(f, 0, NULL), -ECANCELED);
    corio_cfuture_unref(f);
    for (int i = 0; i < 1000 && !atomic_load(&c->cancelled); i++)
        sleep_ms(1);
    CHECK(ck, atomic_load(&c->cancelled));
    /* bad input */
    CHECK_EQ(ck, corio_run_coroutine_threadsafe(NULL, coro_add_one, NULL, &f), -EINVAL);
    CHECK_EQ(ck, corio_run_coroutine_threadsafe(c->rt, NULL, NULL, &f), -EINVAL);
    CHECK_EQ(ck, corio_run_coroutine_threadsafe(c->rt, coro_add_one, NULL, NULL), -EINVAL);
    return NULL;
}

static void *join_thread(void *arg)
{
    pthread_join(*(pthread_t *)arg, NULL);
    return NULL;
}

/* Starts @n plain threads running @fn(@arg) and awaits their end through
 * to_thread, so the workers stay free for what the threads submit. */
static void run_threads_from_task(struct checks *ck, int n, void *(*fn)(void *), void *arg)
{
    pthread_t t[16];
    for (int i = 0; i < n; i++)
        CHECK_EQ(ck, pthread_create(&t[i], NULL, fn, arg), 0);
    for (int i = 0; i < n; i++)
        CHECK_EQ(ck, corio_to_thread(join_thread, &t[i], NULL), 0);
}

static void *xt_basic_main(void *arg)
{
    struct xt_case *c = arg;
    c->rt = corio_get_running_rt();
    run_threads_from_task(&c->ck, 1, xt_basic_thread, c);
    return NULL;
}

static void bridge_run_coroutine_threadsafe(void **state)
{
    (void)state;
    struct xt_case c = { 0 };
    run_main_checked(2, xt_basic_main, &c, &c.ck);
}

static void *xt_stress_thread(void *arg)
{
    struct xt_case *c = arg;
    long ok = 0;
    for (uintptr_t i = 0; i < XT_CALLS; i++) {
        corio_cfuture *f;
        void *v = NULL;
        if (corio_run_coroutine_threadsafe(c->rt, add_one, V(i), &f) < 0)
            break;
        if (corio_cfuture_result(f, CORIO_WAIT_FOREVER, &v) == 0 && v == V(i + 1))
            ok++;
        corio_cfuture_unref(f);
    }
    atomic_fetch_add(&c->ok, ok);
    return NULL;
}

static void *xt_stress_main(void *arg)
{
    struct xt_case *c = arg;
    c->rt = corio_get_running_rt();
    run_threads_from_task(&c->ck, XT_THREADS, xt_stress_thread, c);
    CHECK_EQ(&c->ck, atomic_load(&c->ok), XT_THREADS * XT_CALLS);
    return NULL;
}

static void bridge_threadsafe_stress_8_threads(void **state)
{
    (void)state;
    for (unsigned w = 1; w <= 4; w *= 2) {
        struct xt_case c = { 0 };
        run_main_checked(w, xt_stress_main, &c, &c.ck);
    }
}

static void soon_cb(void *arg)
{
    struct xt_case *c = arg;
    atomic_store(&c->called,
                 corio_current_task() == NULL && corio_worker_id() >= 0 ? 1 : -1);
}

static void *soon_thread(void *arg)
{
    struct xt_case *c = arg;
    CHECK_EQ(&c->ck, corio_call_soon_threadsafe(c->rt, NULL, soon_cb, c), 0);
    CHECK_EQ(&c->ck, corio_call_soon_threadsafe(c->rt, NULL, NULL, c), -EINVAL);
    CHECK_EQ(&c->ck, corio_call_soon_threadsafe(NULL, NULL, soon_cb, c), -EINVAL);
    return NULL;
}

static void *soon_main(void *arg)
{
    struct xt_case *c = arg;
    c->rt = corio_get_running_rt();
    run_threads_from_task(&c->ck, 1, soon_thread, c);
    for (int i = 0; i < 1000 && !atomic_load(&c->called); i++)
        corio_sleep(1 * MS);
    CHECK_EQ(&c->ck, atomic_load(&c->called), 1);
    return NULL;
}

static void bridge_call_soon_threadsafe(void **state)
{
    (void)state;
    struct xt_case c = { 0 };
    run_main_checked(2, soon_main, &c, &c.ck);
}

/* ---- the default executor and the end of the run ---- */

struct default_case {
    struct checks ck;
    corio_thread_pool *p;
    corio_rt *rt;
    corio_cfuture *late;
};

static void *default_main(void *arg)
{
    struct default_case *c = arg;
    struct checks *ck = &c->ck;
    c->rt = corio_get_running_rt();
    CHECK_EQ(ck, corio_set_default_executor(NULL, c->p), 0);
    CHECK_EQ(ck, corio_set_default_executor(NULL, c->p), -EBUSY);
    CHECK_EQ(ck, corio_set_default_executor(NULL, NULL), -EINVAL);
    void *v;
    CHECK_EQ(ck, corio_to_thread(add_one, V(1), &v), 0);
    CHECK_PTR(ck, v, V(2));
    CHECK_EQ(ck, corio_thread_pool_threads(c->p), 1);   /* ours, not a new one */
    /* work still running when main ends: the run waits for it */
    CHECK_EQ(ck, corio_thread_pool_submit(c->p, sleep_arg_ms, V(30), &c->late), 0);
    return NULL;
}

static void bridge_default_executor_shut_down_by_run(void **state)
{
    (void)state;
    struct default_case c = { 0 };
    assert_int_equal(corio_thread_pool_create(&c.p, NULL), 0);
    run_main_checked(2, default_main, &c, &c.ck);
    assert_true(corio_cfuture_done(c.late));
    assert_int_equal(corio_cfuture_result(c.late, 0, NULL), 0);
    corio_cfuture_unref(c.late);
    corio_cfuture *f;
    assert_int_equal(corio_thread_pool_submit(c.p, add_one, NULL, &f), -ESHUTDOWN);
    assert_int_equal(corio_thread_pool_destroy(c.p), 0);
}

static void *lazy_main(void *arg)
{
    struct default_case *c = arg;
    void *v;
    CHECK_EQ(&c->ck, corio_to_thread(sleep_arg_ms, V(1), &v), 0);
    CHECK_EQ(&c->ck, corio_set_default_executor(NULL, c->p), -EBUSY);
    return NULL;
}

static void bridge_default_executor_lazy_and_freed(void **state)
{
    (void)state;
    struct default_case c = { 0 };
    assert_int_equal(corio_thread_pool_create(&c.p, NULL), 0);
    run_main_checked(2, lazy_main, &c, &c.ck);   /* ASan: the lazy pool is freed */
    assert_int_equal(corio_thread_pool_destroy(c.p), 0);
}

/* The default executor starts as many threads at once as there are CPUs
 * and adds one when queued calls wait with every thread stuck: calls that
 * all have to run at the same time (each waits, up to 10 s, until all have
 * started) finish only if it grows past the CPUs; the shorter calls queued
 * behind them run too. */
#define TOGETHER_EXTRA 3   /* calls beyond 2 x CPUs */

struct together {
    pthread_mutex_t lock;
    pthread_cond_t all_in;
    int need, in;
};

static void *wait_for_all(void *arg)
{
    struct together *g = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&g->lock);
    if (++g->in == g->need)
        pthread_cond_broadcast(&g->all_in);
    int rc = 0;
    while (g->in < g->need && rc == 0)
        rc = pthread_cond_timedwait(&g->all_in, &g->lock, &until);
    bool ok = g->in >= g->need;
    pthread_mutex_unlock(&g->lock);
    return V(ok ? 1 : 0);
}

struct grow_case {
    struct checks ck;
    struct together g;
    atomic_int ok, short_done;
};

static void *together_task(void *arg)
{
    struct grow_case *c = arg;
    void *v = NULL;
    CHECK_EQ(&c->ck, corio_run_in_executor(NULL, wait_for_all, &c->g, &v), 0);
    if (v == V(1))
        atomic_fetch_add(&c->ok, 1);
    return NULL;
}

static void *short_task(void *arg)
{
    struct grow_case *c = arg;
    void *v = NULL;
    CHECK_EQ(&c->ck, corio_run_in_executor(NULL, add_one, V(41), &v), 0);
    if (v == V(42))
        atomic_fetch_add(&c->short_done, 1);
    return NULL;
}

static void *grow_main(void *arg)
{
    struct grow_case *c = arg;
    corio_task *t[2 * 32 + TOGETHER_EXTRA + 16];
    int n = 0;
    for (int i = 0; i < c->g.need; i++)
        CHECK_EQ(&c->ck, corio_spawn(&t[n++], together_task, c), 0);
    for (int i = 0; i < 16; i++)
        CHECK_EQ(&c->ck, corio_spawn(&t[n++], short_task, c), 0);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(&c->ck, corio_await(t[i], NULL), 0);
        corio_task_unref(t[i]);
    }
    return NULL;
}

static void bridge_default_executor_grows_when_calls_block(void **state)
{
    (void)state;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct grow_case c = { .g = { .need = (int)(2 * (cpus < 32 ? cpus : 32)) + TOGETHER_EXTRA } };
    pthread_mutex_init(&c.g.lock, NULL);
    pthread_cond_init(&c.g.all_in, NULL);
    run_main_checked(2, grow_main, &c, &c.ck);
    assert_int_equal(atomic_load(&c.ok), c.g.need);
    assert_int_equal(atomic_load(&c.short_done), 16);
    pthread_cond_destroy(&c.g.all_in);
    pthread_mutex_destroy(&c.g.lock);
}

static void noop_cb(void *arg)
{
    (void)arg;
}

static void *after_run_thread(void *arg)
{
    corio_rt *rt = arg;
    corio_cfuture *f;
    int rc = corio_run_coroutine_threadsafe(rt, add_one, NULL, &f);
    int rc2 = corio_call_soon_threadsafe(rt, NULL, noop_cb, NULL);
    return V((rc == -ESHUTDOWN) + (rc2 == -ESHUTDOWN));
}

static void *nothing_main(void *arg)
{
    (void)arg;
    return NULL;
}

static void bridge_threadsafe_after_run_is_shutdown(void **state)
{
    (void)state;
    corio_rt *rt;
    corio_rt_options o = { .workers = 1 };
    assert_int_equal(corio_rt_create(&rt, &o), 0);
    assert_int_equal(corio_rt_run(rt, nothing_main, NULL, NULL), 0);
    pthread_t t;
    void *v;
    assert_int_equal(pthread_create(&t, NULL, after_run_thread, rt), 0);
    pthread_join(t, &v);
    assert_ptr_equal(v, V(2));
    assert_int_equal(corio_rt_destroy(rt), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bridge_run_in_executor_leaves_worker_free),
        cmocka_unit_test(bridge_run_in_executor_errors),
        cmocka_unit_test(bridge_cancel_task_awaiting_run_in_executor),
        cmocka_unit_test(bridge_cfuture_result_awaits_in_task),
        cmocka_unit_test(bridge_wrap_future),
        cmocka_unit_test(bridge_run_coroutine_threadsafe),
        cmocka_unit_test(bridge_threadsafe_stress_8_threads),
        cmocka_unit_test(bridge_call_soon_threadsafe),
        cmocka_unit_test(bridge_default_executor_shut_down_by_run),
        cmocka_unit_test(bridge_default_executor_lazy_and_freed),
        cmocka_unit_test(bridge_default_executor_grows_when_calls_block),
        cmocka_unit_test(bridge_threadsafe_after_run_is_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
