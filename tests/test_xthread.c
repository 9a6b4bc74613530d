/* tests/test_xthread.c - core/xthread.c: tasks and callbacks handed to a
 * runtime by threads that are not its workers, the shutdown gate, and the
 * shutdown hook (white-box: pool/ builds the public bridges on these). */
#include "testutil.h"

#include "internal.h"

/* ---- spawning from plain threads while the runtime runs ------------------ */

#define XT_THREADS 4
#define XT_PER_THREAD 2000

static void *add_one(void *arg)
{
    return V((uintptr_t)arg + 1);
}

struct spawner {
    struct checks *ck;
    corio_rt *rt;
    atomic_uint *ok;
};

/* A plain thread: spawns, then blocks until each task is done by polling
 * (the blocking concurrent futures live in pool/, not here). */
static void *spawner_main(void *arg)
{
    struct spawner *s = arg;
    for (uintptr_t i = 0; i < XT_PER_THREAD; i++) {
        corio_task *t;
        int rc = corio__rt_spawn_threadsafe(s->rt, &t, add_one, V(i), NULL);
        CHECK_EQ(s->ck, rc, 0);
        if (rc < 0)
            return NULL;
        while (!corio_task_done(t))
            sched_yield();
        void *v = NULL;
        CHECK_EQ(s->ck, corio_task_result(t, &v), 0);
        CHECK_EQ(s->ck, (uintptr_t)v, i + 1);
        corio_task_unref(t);
        atomic_fetch_add(s->ok, 1);
    }
    return NULL;
}

struct many_ctx {
    struct checks ck;
    atomic_uint ok;
};

static void *start_spawner(void *arg)
{
    struct spawner *s = arg;
    return spawner_main(s);
}

static void *many_main(void *arg)
{
    struct many_ctx *c = arg;
    pthread_t th[XT_THREADS];
    struct spawner s = {.ck = &c->ck, .rt = corio_get_running_rt(), .ok = &c->ok};
    /* The threads block; this task must not, so it yields while they run. */
    int started = 0;
    for (int i = 0; i < XT_THREADS; i++)
        if (pthread_create(&th[i], NULL, start_spawner, &s) == 0)
            started++;
    CHECK_EQ(&c->ck, started, XT_THREADS);
    while (atomic_load(&c->ok) < (unsigned)(started * XT_PER_THREAD) &&
           !atomic_load(&c->ck.failed))
        corio_sleep(1000000);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    return NULL;
}

static void xthread_spawn_from_plain_threads_body(unsigned workers)
{
    struct many_ctx c = {0};
    run_main_checked(workers, many_main, &c, &c.ck);
    assert_int_equal(atomic_load(&c.ok), XT_THREADS * XT_PER_THREAD);
}

static void xthread_spawn_from_plain_threads(void **state)
{
    (void)state;
    on_worker_counts(xthread_spawn_from_plain_threads_body, 1, 3);
}

/* ---- before the run, after the run ----------------------------------------- */

static void *read_flag(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
    return NULL;
}

static void set_flag(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
}

static void *noop_main(void *arg)
{
    (void)arg;
    return NULL;
}

static void xthread_before_run_is_queued_after_run_refused(void **state)
{
    (void)state;
    corio_rt *rt;
    assert_int_equal(corio_rt_create(&rt, &(corio_rt_options){.workers = 2}), 0);
    atomic_int ran = 0, cb_ran = 0;
    corio_task *t;
    /* Queued on the global queue until the workers start. */
    assert_int_equal(corio__rt_spawn_threadsafe(rt, &t, read_flag, &ran, NULL), 0);
    assert_int_equal(corio__rt_call_soon_threadsafe(rt, NULL, set_flag,
                                                    &cb_ran), 0);
    assert_int_equal(corio_rt_run(rt, noop_main, NULL, NULL), 0);
    assert_true(corio_task_done(t));
    assert_int_equal(atomic_load(&ran), 1);
    assert_int_equal(atomic_load(&cb_ran), 1);
    corio_task_unref(t);
    /* The gate stays shut after the run. */
    corio_task *late = NULL;
    assert_int_equal(corio__rt_spawn_threadsafe(rt, &late, read_flag, &ran, NULL), -ESHUTDOWN);
    assert_null(late);
    assert_int_equal(corio__rt_call_soon_threadsafe(rt, NULL, set_flag,
                                                    &cb_ran), -ESHUTDOWN);
    assert_int_equal(corio_rt_destroy(rt), 0);
}

static void xthread_bad_input(void **state)
{
    (void)state;
    corio_rt *rt;
    assert_int_equal(corio_rt_create(&rt, NULL), 0);
    assert_int_equal(corio__rt_spawn_threadsafe(NULL, NULL, add_one, NULL, NULL), -EINVAL);
    assert_int_equal(corio__rt_spawn_threadsafe(rt, NULL, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(corio__rt_call_soon_threadsafe(NULL, NULL, set_flag,
                                                    NULL), -EINVAL);
    assert_int_equal(corio__rt_call_soon_threadsafe(rt, NULL, NULL, NULL), -EINVAL);
    corio_spawn_options bad = {.stack_size = 1};
    assert_int_equal(corio__rt_spawn_threadsafe(rt, NULL, add_one, NULL, &bad), -EINVAL);
    assert_int_equal(corio_rt_destroy(rt), 0);
}

/* ---- racing the end of main ---------------------------------------------- */

/* A plain thread spawns as fast as it can while main ends: every spawn
 * either succeeded (and its task ran or was cancelled by shutdown, but
 * ended) or was refused with -ESHUTDOWN; none is lost. */
struct race_ctx {
    corio_rt *rt;
    atomic_bool go;
    atomic_int accepted, refused, other;
    corio_task *tasks[4096];
};

static void *race_spawner(void *arg)
{
    struct race_ctx *c = arg;
    while (!atomic_load(&c->go))
        sched_yield();
    for (int i = 0; i < 4096; i++) {
        int rc = corio__rt_spawn_threadsafe(c->rt, &c->tasks[i], yield_until_cancelled, NULL,
                                            NULL);
        if (rc == 0) {
            atomic_fetch_add(&c->accepted, 1);
        } else {
            c->tasks[i] = NULL;
            atomic_fetch_add(rc == -ESHUTDOWN ? &c->refused : &c->other, 1);
            if (rc == -ESHUTDOWN)
                break;
        }
    }
    return NULL;
}

static void *race_main(void *arg)
{
    struct race_ctx *c = arg;
    atomic_store(&c->go, true);
    yield_n(50);
    return NULL;
}

static void xthread_gate_races_main_ending_body(unsigned workers)
{
    static struct race_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(corio_rt_create(&c.rt, &(corio_rt_options){.workers = workers}), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, race_spawner, &c), 0);
    assert_int_equal(corio_rt_run(c.rt, race_main, &c, NULL), 0);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&c.other), 0);
    for (int i = 0; i < 4096; i++) {
        if (!c.tasks[i])
            continue;
        assert_true(corio_task_done(c.tasks[i]));
        corio_task_unref(c.tasks[i]);
    }
    assert_int_equal(corio_rt_alive_tasks(c.rt), 0);
    assert_int_equal(corio_rt_destroy(c.rt), 0);
}

static void xthread_gate_races_main_ending(void **state)
{
    (void)state;
    on_worker_counts(xthread_gate_races_main_ending_body, 3, 5);
}

/* ---- the shutdown hook -------------------------------------------------- */

struct hook_ctx {
    struct checks ck;
    atomic_int calls;
    uint64_t alive_at_hook;
    corio_task *child;
};

static void hook(struct corio_rt *rt, void *arg)
{
    struct hook_ctx *c = arg;
    atomic_fetch_add(&c->calls, 1);
    c->alive_at_hook = corio_rt_alive_tasks(rt);
    /* The hook runs in a task and may await. */
    CHECK_EQ(&c->ck, corio_sleep(1000000), 0);
    /* A task it leaves behind is cancelled after it. */
    CHECK_EQ(&c->ck, corio_spawn(&c->child, yield_until_cancelled, NULL), 0);
}

static void *hook_main(void *arg)
{
    struct hook_ctx *c = arg;
    corio__rt_set_shutdown_hook(corio_get_running_rt(), hook, c);
    /* Left running: cancelled before the hook. */
    CHECK_EQ(&c->ck, corio_spawn(NULL, yield_until_cancelled, NULL), 0);
    return NULL;
}

static void xthread_shutdown_hook_runs_after_tasks(void **state)
{
    (void)state;
    struct hook_ctx c = {0};
    run_main_checked(2, hook_main, &c, &c.ck);
    assert_int_equal(atomic_load(&c.calls), 1);
    assert_int_equal(c.alive_at_hook, 0);
    assert_non_null(c.child);
    assert_true(corio_task_cancelled(c.child));
    corio_task_unref(c.child);
}

static void xthread_default_executor_installs_once(void **state)
{
    (void)state;
    corio_rt *rt;
    assert_int_equal(corio_rt_create(&rt, NULL), 0);
    int a, b;
    assert_null(corio__rt_default_executor(rt));
    assert_true(corio__rt_install_default_executor(rt, &a));
    assert_false(corio__rt_install_default_executor(rt, &b));
    assert_ptr_equal(corio__rt_default_executor(rt), &a);
    assert_int_equal(corio_rt_destroy(rt), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(xthread_spawn_from_plain_threads),
        cmocka_unit_test(xthread_before_run_is_queued_after_run_refused),
        cmocka_unit_test(xthread_bad_input),
        cmocka_unit_test(xthread_gate_races_main_ending),
        cmocka_unit_test(xthread_shutdown_hook_runs_after_tasks),
        cmocka_unit_test(xthread_default_executor_installs_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
