/* tests/test_executor.c - concurrent futures and the thread-pool executor,
 * used from plain threads only (no runtime): states, results, errors,
 * callbacks, wait/as_completed, cancellation racing completion, submit, map,
 * initializer, shutdown(wait, cancel_futures), idle retirement, bad input.
 * The task side (awaiting, bridges) is tests/test_bridge.c.
 */
#include "testutil.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <corio/executor.h>

#define MS 1000000LL

#if defined(__SANITIZE_THREAD__)
#define RACE_ROUNDS 300
#else
#define RACE_ROUNDS 3000
#endif

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- concurrent futures ---- */

static void executor_cfuture_result_and_states(void **state)
{
    (void)state;
    corio_cfuture *f;
    assert_int_equal(corio_cfuture_create(&f), 0);
    assert_false(corio_cfuture_running(f));
    assert_false(corio_cfuture_done(f));
    assert_int_equal(corio_cfuture_result(f, 0, NULL), -ETIMEDOUT);
    assert_int_equal(corio_cfuture_set_running_or_notify_cancel(f), 1);
    assert_true(corio_cfuture_running(f));
    assert_int_equal(corio_cfuture_cancel(f), 0);   /* running: too late */
    assert_int_equal(corio_cfuture_set_running_or_notify_cancel(f), -EINVAL);
    assert_int_equal(corio_cfuture_set_result(f, V(42)), 0);
    assert_true(corio_cfuture_done(f));
    assert_false(corio_cfuture_running(f));
    assert_false(corio_cfuture_cancelled(f));
    assert_int_equal(corio_cfuture_set_result(f, V(1)), -EINVAL);
    assert_int_equal(corio_cfuture_set_exception(f, -EIO, NULL), -EINVAL);
    assert_int_equal(corio_cfuture_cancel(f), 0);
    void *v = NULL;
    assert_int_equal(corio_cfuture_result(f, CORIO_WAIT_FOREVER, &v), 0);
    assert_ptr_equal(v, V(42));
    const char *msg = "x";
    assert_int_equal(corio_cfuture_exception(f, 0, &msg), 0);
    assert_null(msg);
    corio_cfuture_unref(f);
}

static void executor_cfuture_exception(void **state)
{
    (void)state;
    corio_cfuture *f;
    assert_int_equal(corio_cfuture_create(&f), 0);
    assert_int_equal(corio_cfuture_set_exception(f, 5, "bad"), -EINVAL);
    assert_int_equal(corio_cfuture_set_exception(f, -ECANCELED, "bad"), -EINVAL);
    assert_int_equal(corio_cfuture_set_exception(f, -EIO, "disk on fire"), 0);
    const char *msg = NULL;
    assert_int_equal(corio_cfuture_exception(f, 0, &msg), -EIO);
    assert_string_equal(msg, "disk on fire");
    void *v = V(7);
    assert_int_equal(corio_cfuture_result(f, 0, &v), -EIO);
    assert_ptr_equal(v, V(7));
    corio_cfuture_unref(f);
}

static void executor_cfuture_cancel(void **state)
{
    (void)state;
    corio_cfuture *f;
    assert_int_equal(corio_cfuture_create(&f), 0);
    assert_int_equal(corio_cfuture_cancel(f), 1);
    assert_int_equal(corio_cfuture_cancel(f), 1);   /* still cancelled */
    assert_true(corio_cfuture_cancelled(f));
    assert_true(corio_cfuture_done(f));
    assert_int_equal(corio_cfuture_set_running_or_notify_cancel(f), 0);
    assert_int_equal(corio_cfuture_result(f, CORIO_WAIT_FOREVER, NULL), -ECANCELED);
    assert_int_equal(corio_cfuture_exception(f, 0, NULL), -ECANCELED);
    assert_int_equal(corio_cfuture_set_result(f, NULL), -EINVAL);
    corio_cfuture_unref(f);
}

static void executor_cfuture_bad_input(void **state)
{
    (void)state;
    corio_cfuture *f;
    assert_int_equal(corio_cfuture_create(NULL), -EINVAL);
    assert_int_equal(corio_cfuture_set_result(NULL, NULL), -EINVAL);
    assert_int_equal(corio_cfuture_set_result_owned(NULL, NULL, free), -EINVAL);
    assert_int_equal(corio_cfuture_set_exception(NULL, -EIO, NULL), -EINVAL);
    assert_int_equal(corio_cfuture_cancel(NULL), -EINVAL);
    assert_int_equal(corio_cfuture_set_running_or_notify_cancel(NULL), -EINVAL);
    assert_int_equal(corio_cfuture_result(NULL, 0, NULL), -EINVAL);
    assert_int_equal(corio_cfuture_exception(NULL, 0, NULL), -EINVAL);
    assert_int_equal(corio_cfuture_add_done_callback(NULL, NULL, NULL), -EINVAL);
    assert_false(corio_cfuture_done(NULL));
    assert_false(corio_cfuture_running(NULL));
    assert_false(corio_cfuture_cancelled(NULL));
    corio_cfuture_unref(NULL);
    assert_null(corio_cfuture_ref(NULL));
    assert_int_equal(corio_cfuture_create(&f), 0);
    assert_int_equal(corio_cfuture_result(f, -1, NULL), -EINVAL);
    assert_int_equal(corio_cfuture_exception(f, -5, NULL), -EINVAL);
    assert_int_equal(corio_cfuture_add_done_callback(f, NULL, NULL), -EINVAL);
    corio_cfuture *fs[1] = { f };
    assert_int_equal(corio_cfutures_wait(fs, 1, -1, CORIO_ALL_COMPLETED, NULL, NULL, NULL, NULL),
                     -EINVAL);
    assert_int_equal(corio_cfutures_wait(fs, 1, 0, 99, NULL, NULL, NULL, NULL), -EINVAL);
    corio_cfuture *nul[1] = { NULL };
    assert_int_equal(corio_cfutures_wait(nul, 1, 0, CORIO_ALL_COMPLETED, NULL, NULL, NULL, NULL),
                     -EINVAL);
    corio_cfutures_as_completed *it;
    assert_int_equal(corio_cfutures_as_completed_start(&it, fs, 1, -1), -EINVAL);
    assert_int_equal(corio_cfutures_as_completed_start(NULL, fs, 1, 0), -EINVAL);
    assert_int_equal(corio_cfutures_as_completed_next(NULL, &f), -EINVAL);
    corio_cfutures_as_completed_destroy(NULL);
    corio_cfuture_unref(f);
}

struct setter {
    corio_cfuture *f;
    int delay_ms;
    void *value;
};

static void *set_later(void *arg)
{
    struct setter *s = arg;
    sleep_ms(s->delay_ms);
    corio_cfuture_set_result(s->f, s->value);
    return NULL;
}

static void executor_cfuture_result_blocks_then_times_out(void **state)
{
    (void)state;
    corio_cfuture *f;
    assert_int_equal(corio_cfuture_create(&f), 0);
    uint64_t t0 = now_ns();
    assert_int_equal(corio_cfuture_result(f, 50 * MS, NULL), -ETIMEDOUT);
    assert_true(now_ns() - t0 >= 50 * MS);
    assert_false(corio_cfuture_done(f));   /* a timeout leaves it alone */
    struct setter s = { f, 30, V(9) };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, set_later, &s), 0);
    void *v = NULL;
    assert_int_equal(corio_cfuture_result(f, 10000 * MS, &v), 0);
    assert_ptr_equal(v, V(9));
    pthread_join(t, NULL);
    corio_cfuture_unref(f);
}

struct cb_log {
    pthread_mutex_t lock;
    int n;
    int order[8];
    pthread_t thread[8];
};

static void log_cb(corio_cfuture *f, void *arg)
{
    (void)f;
    struct cb_log *l = *(struct cb_log **)arg;
    int id = (int)(((intptr_t *)arg)[1]);
    pthread_mutex_lock(&l->lock);
    l->thread[l->n] = pthread_self();
    l->order[l->n++] = id;
    pthread_mutex_unlock(&l->lock);
}

static void executor_cfuture_callbacks(void **state)
{
    (void)state;
    struct cb_log l = { .lock = PTHREAD_MUTEX_INITIALIZER };
    intptr_t args[3][2];
    corio_cfuture *f;
    assert_int_equal(corio_cfuture_create(&f), 0);
    for (int i = 0; i < 2; i++) {
        args[i][0] = (intptr_t)&l;
        args[i][1] = i;
        assert_int_equal(corio_cfuture_add_done_callback(f, log_cb, args[i]), 0);
    }
    assert_int_equal(l.n, 0);
    struct setter s = { f, 0, NULL };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, set_later, &s), 0);
    pthread_join(t, NULL);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.order[0], 0);
    assert_int_equal(l.order[1], 1);
    assert_true(pthread_equal(l.thread[0], t));   /* on the completing thread */
    args[2][0] = (intptr_t)&l;
    args[2][1] = 2;
    assert_int_equal(corio_cfuture_add_done_callback(f, log_cb, args[2]), 0);
    assert_int_equal(l.n, 3);   /* done already: ran at once, here */
    assert_true(pthread_equal(l.thread[2], pthread_self()));
    corio_cfuture_unref(f);

    /* cancel runs them too */
    assert_int_equal(corio_cfuture_create(&f), 0);
    assert_int_equal(corio_cfuture_add_done_callback(f, log_cb, args[0]), 0);
    assert_int_equal(corio_cfuture_cancel(f), 1);
    assert_int_equal(l.n, 4);
    corio_cfuture_unref(f);
}

static int freed;
static void count_free(void *p)
{
    free(p);
    freed++;
}

static void executor_cfuture_owned_value(void **state)
{
    (void)state;
    corio_cfuture *f;
    freed = 0;
    assert_int_equal(corio_cfuture_create(&f), 0);
    char *buf = strdup("payload");
    assert_int_equal(corio_cfuture_set_result_owned(f, buf, count_free), 0);
    corio_cfuture_ref(f);
    corio_cfuture_unref(f);
    assert_int_equal(freed, 0);
    void *v;
    assert_int_equal(corio_cfuture_result(f, 0, &v), 0);
    assert_string_equal(v, "payload");
    corio_cfuture_unref(f);
    assert_int_equal(freed, 1);
}

struct race {
    corio_cfuture *f;
    int rc;
    pthread_barrier_t *go;
};

static void *race_set(void *arg)
{
    struct race *r = arg;
    pthread_barrier_wait(r->go);
    r->rc = corio_cfuture_set_running_or_notify_cancel(r->f);
    if (r->rc == 1)
        corio_cfuture_set_result(r->f, V(1));
    return NULL;
}

static void cnt_cb(corio_cfuture *f, void *arg)
{
    (void)f;
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void executor_cfuture_cancel_races_completion(void **state)
{
    (void)state;
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    int cancelled = 0, finished = 0;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        struct race r = { .go = &go };
        atomic_int calls = 0;
        assert_int_equal(corio_cfuture_create(&r.f), 0);
        assert_int_equal(corio_cfuture_add_done_callback(r.f, cnt_cb, &calls), 0);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, race_set, &r), 0);
        pthread_barrier_wait(&go);
        int c = corio_cfuture_cancel(r.f);
        pthread_join(t, NULL);
        /* exactly one of them won, and the callback ran once */
        assert_int_equal(c, r.rc == 0);
        assert_int_equal(atomic_load(&calls), 1);
        void *v = NULL;
        int rc = corio_cfuture_result(r.f, 0, &v);
        if (c) {
            assert_int_equal(rc, -ECANCELED);
            cancelled++;
        } else {
            assert_int_equal(rc, 0);
            assert_ptr_equal(v, V(1));
            finished++;
        }
        corio_cfuture_unref(r.f);
    }
    pthread_barrier_destroy(&go);
    assert_int_equal(cancelled + finished, RACE_ROUNDS);
}

static void executor_cfutures_wait(void **state)
{
    (void)state;
    corio_cfuture *fs[3], *done[3], *pending[3];
    size_t nd, np;
    for (int i = 0; i < 3; i++)
        assert_int_equal(corio_cfuture_create(&fs[i]), 0);
    /* timeout: nothing done, nothing raised */
    assert_int_equal(corio_cfutures_wait(fs, 3, 20 * MS, CORIO_ALL_COMPLETED, done, &nd, pending,
                                         &np),
                     0);
    assert_int_equal(nd, 0);
    assert_int_equal(np, 3);
    /* first completed, from another thread */
    struct setter s = { fs[1], 20, V(1) };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, set_later, &s), 0);
    assert_int_equal(corio_cfutures_wait(fs, 3, CORIO_WAIT_FOREVER, CORIO_FIRST_COMPLETED, done,
                                         &nd, pending, &np),
                     0);
    pthread_join(t, NULL);
    assert_int_equal(nd, 1);
    assert_ptr_equal(done[0], fs[1]);
    assert_int_equal(np, 2);
    assert_ptr_equal(pending[0], fs[0]);
    assert_ptr_equal(pending[1], fs[2]);
    /* first exception: a cancel does not count, an error does */
    assert_int_equal(corio_cfuture_cancel(fs[0]), 1);
    assert_int_equal(corio_cfutures_wait(fs, 3, 20 * MS, CORIO_FIRST_EXCEPTION, NULL, &nd, NULL,
                                         &np),
                     0);
    assert_int_equal(np, 1);
    assert_int_equal(corio_cfuture_set_exception(fs[2], -EIO, NULL), 0);
    assert_int_equal(corio_cfutures_wait(fs, 3, CORIO_WAIT_FOREVER, CORIO_FIRST_EXCEPTION, NULL,
                                         &nd, NULL, &np),
                     0);
    assert_int_equal(nd, 3);
    assert_int_equal(corio_cfutures_wait(fs, 0, 0, CORIO_ALL_COMPLETED, NULL, &nd, NULL, &np), 0);
    assert_int_equal(nd, 0);
    for (int i = 0; i < 3; i++)
        corio_cfuture_unref(fs[i]);
}

static void executor_cfutures_as_completed(void **state)
{
    (void)state;
    corio_cfuture *fs[4];
    for (int i = 0; i < 3; i++)
        assert_int_equal(corio_cfuture_create(&fs[i]), 0);
    fs[3] = fs[0];   /* a duplicate is yielded once */
    corio_cfutures_as_completed *it;
    assert_int_equal(corio_cfutures_as_completed_start(&it, fs, 4, 5000 * MS), 0);
    struct setter s[2] = { { fs[2], 10, NULL }, { fs[0], 40, NULL } };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, set_later, &s[i]), 0);
    corio_cfuture *f;
    assert_int_equal(corio_cfutures_as_completed_next(it, &f), 0);
    assert_ptr_equal(f, fs[2]);
    assert_int_equal(corio_cfutures_as_completed_next(it, &f), 0);
    assert_ptr_equal(f, fs[0]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    corio_cfutures_as_completed_destroy(it);

    /* a deadline for the whole iteration */
    assert_int_equal(corio_cfutures_as_completed_start(&it, fs, 3, 30 * MS), 0);
    int got = 0, rc;
    while ((rc = corio_cfutures_as_completed_next(it, &f)) == 0)
        got++;
    assert_int_equal(got, 2);
    assert_int_equal(rc, -ETIMEDOUT);   /* fs[1] never completes */
    corio_cfutures_as_completed_destroy(it);
    assert_int_equal(corio_cfuture_set_result(fs[1], NULL), 0);
    assert_int_equal(corio_cfutures_as_completed_start(&it, fs, 3, 0), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(corio_cfutures_as_completed_next(it, &f), 0);
    assert_int_equal(corio_cfutures_as_completed_next(it, &f), -ENOENT);
    corio_cfutures_as_completed_destroy(it);
    for (int i = 0; i < 3; i++)
        corio_cfuture_unref(fs[i]);
}

/* ---- the thread pool ---- */

static void *add_one(void *arg)
{
    return V((uintptr_t)arg + 1);
}

static void *sleep_arg_ms(void *arg)
{
    sleep_ms((int)(uintptr_t)arg);
    return arg;
}

static void executor_pool_submit_and_result(void **state)
{
    (void)state;
    corio_thread_pool *p;
    assert_int_equal(corio_thread_pool_create(&p, NULL), 0);
    assert_int_equal(corio_thread_pool_threads(p), 0);   /* none until work comes */
    corio_cfuture *f[16];
    for (int i = 0; i < 16; i++)
        assert_int_equal(corio_thread_pool_submit(p, add_one, V(i), &f[i]), 0);
    for (int i = 0; i < 16; i++) {
        void *v;
        assert_int_equal(corio_cfuture_result(f[i], CORIO_WAIT_FOREVER, &v), 0);
        assert_ptr_equal(v, V(i + 1));
        corio_cfuture_unref(f[i]);
    }
    assert_int_equal(corio_thread_pool_destroy(p), 0);
}

static void executor_pool_bad_input(void **state)
{
    (void)state;
    corio_thread_pool *p;
    corio_cfuture *f;
    assert_int_equal(corio_thread_pool_create(NULL, NULL), -EINVAL);
    corio_thread_pool_options o = { .idle_timeout_ns = -1 };
    assert_int_equal(corio_thread_pool_create(&p, &o), -EINVAL);
    assert_int_equal(corio_thread_pool_submit(NULL, add_one, NULL, &f), -EINVAL);
    assert_int_equal(corio_thread_pool_shutdown(NULL, true, false), -EINVAL);
    assert_int_equal(corio_thread_pool_destroy(NULL), -EINVAL);
    assert_int_equal(corio_thread_pool_map(NULL, add_one, NULL, 0, 0, NULL), -EINVAL);
    assert_int_equal(corio_thread_pool_threads(NULL), 0);
    assert_int_equal(corio_executor_raise(-EIO, "x"), -EPERM);   /* not pool work */
    assert_int_equal(corio_thread_pool_create(&p, NULL), 0);
    assert_int_equal(corio_thread_pool_submit(p, NULL, NULL, &f), -EINVAL);
    assert_int_equal(corio_thread_pool_submit(p, add_one, NULL, NULL), -EINVAL);
    void *args[1] = { NULL }, *res[1];
    assert_int_equal(corio_thread_pool_map(p, add_one, args, 1, -1, res), -EINVAL);
    assert_int_equal(corio_thread_pool_destroy(p), 0);
}

static void executor_pool_map_in_order(void **state)
{
    (void)state;
    corio_thread_pool_options o = { .max_workers = 4 };
    corio_thread_pool *p;
    assert_int_equal(corio_thread_pool_create(&p, &o), 0);
    /* later items finish first: the results still come in order */
    void *args[8], *res[8];
    for (int i = 0; i < 8; i++)
        args[i] = V((8 - i) * 3);
    assert_int_equal(corio_thread_pool_map(p, sleep_arg_ms, args, 8, CORIO_WAIT_FOREVER, res), 0);
    for (int i = 0; i < 8; i++)
        assert_ptr_equal(res[i], args[i]);
    assert_int_equal(corio_thread_pool_map(p, add_one, args, 0, 0, res), 0);
    /* a timeout for the whole map */
    args[0] = V(300);
    assert_int_equal(corio_thread_pool_map(p, sleep_arg_ms, args, 1, 20 * MS, res), -ETIMEDOUT);
    assert_int_equal(corio_thread_pool_destroy(p), 0);
}

static void *raise_eio(void *arg)
{
    corio_executor_raise(-EIO, (const char *)arg);
    return V(1);
}

static void executor_pool_raise_fails_future(void **state)
{
    (void)state;
    corio_thread_pool *p;
    corio_cfuture *f;
    assert_int_equal(corio_thread_pool_create(&p, NULL), 0);
    assert_int_equal(corio_thread_pool_submit(p, raise_eio, "no disk", &f), 0);
    const char *msg;
    assert_int_equal(corio_cfuture_exception(f, CORIO_WAIT_FOREVER, &msg), -EIO);
    assert_string_equal(msg, "no disk");
    corio_cfuture_unref(f);
    void *args[3] = { NULL, "x", NULL }, *res[3];
    assert_int_equal(corio_thread_pool_map(p, raise_eio, args, 3, CORIO_WAIT_FOREVER, res),
                     -EIO);
    assert_int_equal(corio_thread_pool_destroy(p), 0);
}

static __thread int init_mark;
static atomic_int init_calls;

static int init_ok(void *arg)
{
    init_mark = (int)(uintptr_t)arg;
    atomic_fetch_add(&init_calls, 1);
    return 0;
}

static void *read_mark(void *arg)
{
    (void)arg;
    char name[16] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    return V(init_mark + (strncmp(name, "tpx_", 4) == 0 ? 1000 : 0));
}

static int init_fail(void *arg)
{
    (void)arg;
    return -1;
}

static void executor_pool_initializer_and_names(void **state)
{
    (void)state;
    atomic_store(&init_calls, 0);
    corio_thread_pool_options o = { .max_workers = 2, .thread_name_prefix = "tpx",
                                    .initializer = init_ok, .initarg = V(7) };
    corio_thread_pool *p;
    assert_int_equal(corio_thread_pool_create(&p, &o), 0);
    corio_cfuture *f;
    assert_int_equal(corio_thread_pool_submit(p, read_mark, NULL, &f), 0);
    void *v;
    assert_int_equal(corio_cfuture_result(f, CORIO_WAIT_FOREVER, &v), 0);
    assert_ptr_equal(v, V(1007));
    corio_cfuture_unref(f);
    assert_int_equal(corio_thread_pool_destroy(p), 0);
    assert_int_equal(atomic_load(&init_calls), 1);

    /* a failing initializer breaks the pool */
    o.initializer = init_fail;
    assert_int_equal(corio_thread_pool_create(&p, &o), 0);
    assert_int_equal(corio_thread_pool_submit(p, add_one, NULL, &f), 0);
    assert_int_equal(corio_cfuture_result(f, CORIO_WAIT_FOREVER, NULL), -EPIPE);
    corio_cfuture_unref(f);
    int rc;
    for (int i = 0; i < 1000 && (rc = corio_thread_pool_submit(p, add_one, NULL, &f)) == 0; i++) {
        corio_cfuture_result(f, CORIO_WAIT_FOREVER, NULL);
        corio_cfuture_unref(f);
    }
    assert_int_equal(rc, -EPIPE);
    assert_int_equal(corio_thread_pool_destroy(p), 0);
}

static void executor_pool_submit_after_shutdown(void **state)
{
    (void)state;
    corio_thread_pool *p;
    corio_cfuture *f;
    assert_int_equal(corio_thread_pool_create(&p, NULL), 0);
    assert_int_equal(corio_thread_pool_shutdown(p, true, false), 0);
    assert_int_equal(corio_thread_pool_submit(p, add_one, NULL, &f), -ESHUTDOWN);
    assert_int_equal(corio_thread_pool_shutdown(p, true, true), 0);   /* idempotent */
    assert_string_equal(corio_strerror(-ESHUTDOWN),
                        "shut down: the runtime or executor accepts no more work");
    assert_int_equal(corio_thread_pool_destroy(p), 0);
}

static void executor_pool_shutdown_wait_runs_pending(void **state)
{
    (void)state;
    corio_thread_pool_options o = { .max_workers = 1 };
    corio_thread_pool *p;
    assert_int_equal(corio_thread_pool_create(&p, &o), 0);
    corio_cfuture *f[5];
    for (int i = 0; i < 5; i++)
        assert_int_equal(corio_thread_pool_submit(p, sleep_arg_ms, V(10), &f[i]), 0);
    assert_int_equal(corio_thread_pool_shutdown(p, true, false), 0);
    assert_int_equal(corio_thread_pool_threads(p), 0);
    for (int i = 0; i < 5; i++) {
        assert_true(corio_cfuture_done(f[i]));
        assert_int_equal(corio_cfuture_result(f[i], 0, NULL), 0);
        corio_cfuture_unref(f[i]);
    }
    assert_int_equal(corio_thread_pool_destroy(p), 0);
}

static void executor_pool_shutdown_cancel_futures(void **state)
{
    (void)state;
    corio_thread_pool_options o = { .max_workers = 1 };
    corio_thread_pool *p;
    assert_int_equal(corio_thread_pool_create(&p, &o), 0);
    corio_cfuture *f[5];
    for (int i = 0; i < 5; i++)
        assert_int_equal(corio_thread_pool_submit(p, sleep_arg_ms, V(30), &f[i]), 0);
    while (!corio_cfuture_running(f[0]))
        sleep_ms(1);
    assert_int_equal(corio_thread_pool_shutdown(p, false, true), 0);
    for (int i = 1; i < 5; i++)
        assert_true(corio_cfuture_cancelled(f[i]));
    assert_int_equal(corio_cfuture_result(f[0], CORIO_WAIT_FOREVER, NULL), 0);   /* ran on */
    assert_int_equal(corio_thread_pool_destroy(p), 0);
    for (int i = 0; i < 5; i++)
        corio_cfuture_unref(f[i]);
}

static void executor_pool_threads_only_when_none_idle(void **state)
{
    (void)state;
    corio_thread_pool_options o = { .max_workers = 3 };
    corio_thread_pool *p;
    assert_int_equal(corio_thread_pool_create(&p, &o), 0);
    /* one at a time: the idle thread takes each */
    for (int i = 0; i < 20; i++) {
        corio_cfuture *f;
        assert_int_equal(corio_thread_pool_submit(p, add_one, NULL, &f), 0);
        assert_int_equal(corio_cfuture_result(f, CORIO_WAIT_FOREVER, NULL), 0);
        corio_cfuture_unref(f);
        sleep_ms(1);   /* let it get back to waiting */
    }
    assert_int_equal(corio_thread_pool_threads(p), 1);
    /* many at once: grows to max_workers, no further */
    corio_cfuture *f[10];
    for (int i = 0; i < 10; i++)
        assert_int_equal(corio_thread_pool_submit(p, sleep_arg_ms, V(10), &f[i]), 0);
    assert_int_equal(corio_thread_pool_threads(p), 3);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(corio_cfuture_result(f[i], CORIO_WAIT_FOREVER, NULL), 0);
        corio_cfuture_unref(f[i]);
    }
    assert_int_equal(corio_thread_pool_destroy(p), 0);
}

static void executor_pool_idle_threads_retire(void **state)
{
    (void)state;
    corio_thread_pool_options o = { .max_workers = 4, .idle_timeout_ns = 50 * MS };
    corio_thread_pool *p;
    assert_int_equal(corio_thread_pool_create(&p, &o), 0);
    corio_cfuture *f[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(corio_thread_pool_submit(p, sleep_arg_ms, V(20), &f[i]), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(corio_cfuture_result(f[i], CORIO_WAIT_FOREVER, NULL), 0);
        corio_cfuture_unref(f[i]);
    }
    assert_int_equal(corio_thread_pool_threads(p), 4);
    for (int i = 0; i < 200 && corio_thread_pool_threads(p); i++)
        sleep_ms(10);
    assert_int_equal(corio_thread_pool_threads(p), 0);
    /* and it starts again when work comes */
    assert_int_equal(corio_thread_pool_submit(p, add_one, V(1), &f[0]), 0);
    void *v;
    assert_int_equal(corio_cfuture_result(f[0], CORIO_WAIT_FOREVER, &v), 0);
    assert_ptr_equal(v, V(2));
    corio_cfuture_unref(f[0]);
    assert_int_equal(corio_thread_pool_destroy(p), 0);
}

static corio_thread_pool *self_pool;

static void *shutdown_self(void *arg)
{
    (void)arg;
    int a = corio_thread_pool_shutdown(self_pool, true, false);
    int b = corio_thread_pool_destroy(self_pool);
    int c = corio_thread_pool_shutdown(self_pool, false, false);
    return V((a == -EDEADLK) + (b == -EDEADLK) + (c == 0));
}

static void executor_pool_shutdown_from_own_thread(void **state)
{
    (void)state;
    assert_int_equal(corio_thread_pool_create(&self_pool, NULL), 0);
    corio_cfuture *f;
    assert_int_equal(corio_thread_pool_submit(self_pool, shutdown_self, NULL, &f), 0);
    void *v;
    assert_int_equal(corio_cfuture_result(f, CORIO_WAIT_FOREVER, &v), 0);
    assert_ptr_equal(v, V(3));
    corio_cfuture_unref(f);
    assert_int_equal(corio_thread_pool_destroy(self_pool), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(executor_cfuture_result_and_states),
        cmocka_unit_test(executor_cfuture_exception),
        cmocka_unit_test(executor_cfuture_cancel),
        cmocka_unit_test(executor_cfuture_bad_input),
        cmocka_unit_test(executor_cfuture_result_blocks_then_times_out),
        cmocka_unit_test(executor_cfuture_callbacks),
        cmocka_unit_test(executor_cfuture_owned_value),
        cmocka_unit_test(executor_cfuture_cancel_races_completion),
        cmocka_unit_test(executor_cfutures_wait),
        cmocka_unit_test(executor_cfutures_as_completed),
        cmocka_unit_test(executor_pool_submit_and_result),
        cmocka_unit_test(executor_pool_bad_input),
        cmocka_unit_test(executor_pool_map_in_order),
        cmocka_unit_test(executor_pool_raise_fails_future),
        cmocka_unit_test(executor_pool_initializer_and_names),
        cmocka_unit_test(executor_pool_submit_after_shutdown),
        cmocka_unit_test(executor_pool_shutdown_wait_runs_pending),
        cmocka_unit_test(executor_pool_shutdown_cancel_futures),
        cmocka_unit_test(executor_pool_threads_only_when_none_idle),
        cmocka_unit_test(executor_pool_idle_threads_retire),
        cmocka_unit_test(executor_pool_shutdown_from_own_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
