/* core/runtime.c - creating, running and shutting down a runtime
 * (asyncio.run and its loop's lifetime).
 *
 * corio_rt_run() starts workers 1..N-1 as threads and makes the calling
 * thread worker 0. The first thing they run is an internal "runner" task
 * (not listed by corio_all_tasks()) that spawns the main task, awaits it and
 * then shuts down in asyncio.run()'s order: cancel every task still alive,
 * wait for them (again, for tasks spawned meanwhile), report the errors that
 * surfaced, shut the default executor down (pool/'s shutdown hook), then
 * tell the workers to stop. Other threads' spawns and callbacks are refused
 * from the moment main has ended (core/xthread.c). Workers leave their loop once
 * stopping is set, no work is left and no task is alive (they cancel tasks
 * spawned after the last round: core/sched.c), and the caller joins them.
 *
 * After destroy, objects the user still references (a main task handle,
 * say) keep the runtime's shell alive until the last one is freed
 * (core/future.c, corio__object_freed). Destroy must not race with the
 * runtime's objects being freed on other threads while it computes that
 * count (corio/runtime.h says so).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "internal.h"

#define MAX_WORKERS 1024
#define DEFAULT_SLOW_NS 100000000ull                 /* asyncio: 100 ms */

static unsigned env_unsigned(const char *name, unsigned fallback)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return fallback;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    return *end || n == 0 || n > MAX_WORKERS ? fallback : (unsigned)n;
}

static unsigned default_workers(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return env_unsigned("CORIO_WORKERS", cpus > 0 ? (unsigned)cpus : 1);
}

static void workers_free(struct corio_rt *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        free(rt->workers[i].retire);
        corio__timers_fini(&rt->workers[i]);
        corio__worker_io_release(&rt->workers[i]);
    }
    free(rt->workers);
    rt->workers = NULL;
}

static int workers_init(struct corio_rt *rt)
{
    rt->workers = aligned_alloc(64, sizeof *rt->workers * rt->nworkers);
    if (!rt->workers)
        return -ENOMEM;
    memset(rt->workers, 0, sizeof *rt->workers * rt->nworkers);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct corio__worker *w = &rt->workers[i];
        w->rt = rt;
        w->id = i;
        w->rng = 0x9E3779B97F4A7C15ull * (i + 1);
        corio__runq_init(&w->runq);
        corio__stack_cache_init(&w->stacks);
        w->retire = calloc(corio__registry_nshards(rt), sizeof *w->retire);
        if (!w->retire || corio__timers_init(w) < 0) {
            workers_free(rt);
            return -ENOMEM;
        }
    }
    return 0;
}

/* DESIGN.md: fail at start, with a message, rather than at the 32,000th
 * task, when the kernel's mapping limit cannot hold the stacks this runtime
 * may need (the budget's worth, or PLANNED_STACKS without a budget). */
#define PLANNED_STACKS 100000

static int check_map_count(struct corio_rt *rt)
{
    size_t stride = rt->arena.slot_size + rt->arena.page;
    size_t stacks = rt->max_stack_memory ? rt->max_stack_memory / stride : PLANNED_STACKS;
    char msg[512];
    int rc = corio__stack_check_map_count(&rt->arena, stacks, msg, sizeof msg);
    if (rc < 0)
        fprintf(stderr, "%s\n", msg);
    return rc;
}

int corio_rt_create(corio_rt **out, const corio_rt_options *opts)
{
    if (!out)
        return -EINVAL;
    corio_rt_options o = opts ? *opts : (corio_rt_options){0};
    if (o.workers > MAX_WORKERS)
        return -EINVAL;
    if (o.stack_size && (o.stack_size < CORIO_STACK_MIN_SIZE || o.stack_size > CORIO_STACK_MAX_SIZE))
        return -EINVAL;
    struct corio_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    rt->nworkers = o.workers ? o.workers : default_workers();
    rt->io_ops = corio__backend_choose();
    rt->max_stack_memory = o.max_stack_memory;
    rt->slow_ns = o.slow_callback_ns ? o.slow_callback_ns : DEFAULT_SLOW_NS;
    const char *dbg = getenv("CORIO_DEBUG");
    atomic_init(&rt->debug, o.debug == 1 || (o.debug == 0 && dbg && *dbg && strcmp(dbg, "0")));
    pthread_mutex_init(&rt->handler_lock, NULL);
    pthread_mutex_init(&rt->start_lock, NULL);
    pthread_cond_init(&rt->start_cond, NULL);
    int rc = corio__stack_arena_init(&rt->arena, o.stack_size);
    if (rc < 0)
        goto fail_arena;
    if ((rc = check_map_count(rt)) < 0)
        goto fail_inject;
    if ((rc = corio__inject_init(&rt->inject)) < 0)
        goto fail_inject;
    if ((rc = corio__inject_init(&rt->woken)) < 0)
        goto fail_woken;
    if ((rc = corio__idle_init(&rt->idle, rt->nworkers)) < 0)
        goto fail_idle;
    if ((rc = workers_init(rt)) < 0)
        goto fail_workers;
    if ((rc = corio__registry_init(rt)) < 0)
        goto fail_registry;
    *out = rt;
    return 0;
fail_registry:
    workers_free(rt);
fail_workers:
    corio__idle_fini(&rt->idle);
fail_idle:
    corio__inject_fini(&rt->woken);
fail_woken:
    corio__inject_fini(&rt->inject);
fail_inject:
    corio__stack_arena_fini(&rt->arena);
fail_arena:
    pthread_mutex_destroy(&rt->handler_lock);
    free(rt);
    return rc;
}

struct runner {
    corio_fn fn;
    void *arg;
    corio_task *main;
    int spawn_rc;
};

/* One round: cancel every listed task and wait for all of them. Returns how
 * many there were. */
static int cancel_round(struct corio_rt *rt, corio_task *self)
{
    corio_task **list = NULL;
    int n = corio__registry_snapshot(rt, &list, self);
    if (n <= 0) {
        free(list);
        return n;
    }
    for (int i = 0; i < n; i++)
        corio_task_cancel(list[i], NULL);
    corio_gather_tasks(list, (size_t)n, CORIO_RETURN_EXCEPTIONS, NULL, NULL);
    for (int i = 0; i < n; i++) {
        if (corio_task_cancelled(list[i]))
            continue;
        struct corio_future *f = &list[i]->fut;
        if (atomic_load_explicit(&f->state, memory_order_acquire) == FUT_FAILED)
            corio__report(rt, "unhandled exception during corio_run() shutdown", list[i], f);
    }
    corio_task_list_free(list, n);
    return n;
}

static void *runner_main(void *arg)
{
    struct runner *r = arg;
    struct corio_rt *rt = corio_get_running_rt();
    /* asyncio.run: the first SIGINT cancels main (io/signal.c); armed before
     * main exists, so main never sees a SIGINT that still kills. */
    corio__signal_run_start(rt);
    r->spawn_rc = corio_spawn(&r->main, r->fn, r->arg);
    corio__signal_run_main(rt, r->main);
    if (r->spawn_rc == 0) {
        /* The runner is never cancelled, so this returns once main ended. */
        corio_await(r->main, NULL);
        struct corio_future *f = &r->main->fut;
        if (atomic_load_explicit(&f->state, memory_order_acquire) == FUT_FAILED)
            corio__report(rt, "main task failed", r->main, f);
    }
    /* From here other threads can hand in nothing more (core/xthread.c);
     * what they handed in before is registered or queued, so the rounds
     * below see it. */
    corio__rt_close_gate(rt);
    while (cancel_round(rt, corio_current_task()) > 0)
        ;
    /* asyncio.run: shutdown_default_executor() once the tasks are gone. */
    corio__rt_run_shutdown_hook(rt);
    /* Then loop.close(): signal handlers go (SIGINT is restored), and what
     * their last callbacks spawned is cancelled in turn. */
    do {
        while (cancel_round(rt, corio_current_task()) > 0)
            ;
    } while (corio__signal_rt_close(rt) > 0);
    corio__rt_wake_all(rt);
    return NULL;
}

/* Every worker sets up its I/O backend on its own thread (a ring belongs to
 * the thread that made it) and reports here; none runs anything until all
 * have, so a failure is returned by corio_rt_run() before user code ran. */
static void startup_report(struct corio_rt *rt, int rc)
{
    pthread_mutex_lock(&rt->start_lock);
    if (rc < 0 && rt->start_rc == 0)
        rt->start_rc = rc;
    rt->start_reported++;
    pthread_cond_broadcast(&rt->start_cond);
    pthread_mutex_unlock(&rt->start_lock);
}

/* Wait until @n workers reported (or, with @go, until worker 0 said go). */
static int startup_wait(struct corio_rt *rt, unsigned n, bool go)
{
    pthread_mutex_lock(&rt->start_lock);
    while (go ? !rt->start_go : rt->start_reported < n)
        pthread_cond_wait(&rt->start_cond, &rt->start_lock);
    int rc = rt->start_rc;
    pthread_mutex_unlock(&rt->start_lock);
    return rc;
}

static void startup_go(struct corio_rt *rt, int rc)
{
    pthread_mutex_lock(&rt->start_lock);
    if (rc < 0 && rt->start_rc == 0)
        rt->start_rc = rc;
    rt->start_go = true;
    pthread_cond_broadcast(&rt->start_cond);
    pthread_mutex_unlock(&rt->start_lock);
}

static void *worker_thread(void *arg)
{
    struct corio__worker *w = arg;
    startup_report(w->rt, corio__worker_io_start(w));
    if (startup_wait(w->rt, 0, true) == 0)
        corio__worker_main(w);
    else
        corio__worker_io_stop(w);
    return NULL;
}

static int spawn_runner(struct corio_rt *rt, struct runner *r)
{
    struct corio_task *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    corio__future_init(&t->fut, rt, KIND_TASK);
    t->node.kind = KIND_TASK;
    t->fn = runner_main;
    t->arg = r;
    t->name = strdup("corio-runner");
    corio__registry_exclude(t);
    corio__object_created(rt);
    atomic_init(&t->sched, TS_SCHEDULED);
    atomic_init(&t->wakes, 0);
    corio__inject_push(&rt->inject, &t->node.q);
    return 0;
}

static int start_threads(struct corio_rt *rt, unsigned *started)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    int rc = 0;
    for (*started = 1; *started < rt->nworkers; (*started)++) {
        rc = -pthread_create(&rt->workers[*started].thread, &attr, worker_thread,
                             &rt->workers[*started]);
        if (rc < 0)
            break;
    }
    pthread_attr_destroy(&attr);
    return rc;
}

int corio_rt_run(corio_rt *rt, corio_fn fn, void *arg, corio_task **main)
{
    if (!rt || !fn)
        return -EINVAL;
    int expect = RT_CREATED;
    if (corio__worker_current() ||
        !atomic_compare_exchange_strong(&rt->state, &expect, RT_RUNNING))
        return -EBUSY;
    /* Threads first: if one cannot be started, nothing has run yet. */
    unsigned started = 1;
    int rc = corio__worker_io_start(&rt->workers[0]);
    if (rc == 0)
        rc = start_threads(rt, &started);
    int io_rc = startup_wait(rt, started - 1, false);
    if (rc == 0)
        rc = io_rc;
    struct runner r = {.fn = fn, .arg = arg};
    if (rc == 0)
        rc = corio__monitor_start(rt);
    if (rc == 0)
        rc = spawn_runner(rt, &r);
    startup_go(rt, rc);
    if (rc == 0)
        corio__worker_main(&rt->workers[0]);
    else
        corio__worker_io_stop(&rt->workers[0]);
    corio__monitor_stop(rt);
    for (unsigned i = 1; i < started; i++)
        pthread_join(rt->workers[i].thread, NULL);
    atomic_store(&rt->state, RT_STOPPED);
    if (rc == 0)
        rc = r.spawn_rc;
    if (rc == 0)
        rc = corio_task_result(r.main, NULL);
    if (main)
        *main = r.main;
    else
        corio_task_unref(r.main);
    return rc;
}

int corio_run(corio_fn fn, void *arg, const corio_rt_options *opts, void **result)
{
    if (!fn)
        return -EINVAL;
    if (corio__worker_current())
        return -EBUSY;
    corio_rt *rt;
    int rc = corio_rt_create(&rt, opts);
    if (rc < 0)
        return rc;
    corio_task *main = NULL;
    rc = corio_rt_run(rt, fn, arg, &main);
    if (main && rc == 0 && result)
        corio_task_result(main, result);
    corio_task_unref(main);
    corio_rt_destroy(rt);
    return rc;
}

/* Objects not freed yet; closes ext_objects (see corio__object_freed). */
static uint64_t outstanding_objects(struct corio_rt *rt)
{
    uint64_t n = atomic_exchange_explicit(&rt->ext_objects, (uint64_t)CORIO__EXT_CLOSED,
                                          memory_order_acq_rel);
    for (unsigned i = 0; i < rt->nworkers; i++)
        n += atomic_load(&rt->workers[i].objects_created) -
             atomic_load(&rt->workers[i].objects_freed);
    return n;
}

/* Only handles can be left (every task ended before the workers stopped):
 * callbacks scheduled after the last task ended never ran. */
static void drop_node(struct corio__snode *n)
{
    if (n && !CORIO_NEVER(n->kind != KIND_HANDLE))
        corio__handle_drop(corio__container_of(n, struct corio_handle, node));
}

static void drop_queued(struct corio_rt *rt)
{
    struct corio__qnode *q;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        drop_node(atomic_exchange(&rt->workers[i].lifo, NULL));
        drop_node(atomic_exchange(&rt->workers[i].yielded, NULL));
        while ((q = corio__runq_pop_owner(&rt->workers[i].runq)))
            drop_node(corio__container_of(q, struct corio__snode, q));
    }
    while ((q = corio__inject_pop(&rt->woken)))
        drop_node(corio__container_of(q, struct corio__snode, q));
    while ((q = corio__inject_pop(&rt->inject)))
        drop_node(corio__container_of(q, struct corio__snode, q));
}

int corio_rt_destroy(corio_rt *rt)
{
    if (!rt)
        return -EINVAL;
    if (atomic_load(&rt->state) == RT_RUNNING)
        return -EBUSY;
    corio__registry_reap_all(rt);
    drop_queued(rt);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        corio__stack_cache_fini(&rt->workers[i].stacks, &rt->arena);
        corio__task_cache_fini(&rt->workers[i]);
    }
    corio__stack_arena_fini(&rt->arena);
    corio__registry_fini(rt);
    corio__idle_fini(&rt->idle);
    corio__inject_fini(&rt->woken);
    corio__inject_fini(&rt->inject);
    /* From the exchange in outstanding_objects() on, objects freed by other
     * threads count down zombie_objects; the ones freed before it are out of
     * the sum, so the count ends exact whatever the interleaving. */
    int64_t left = (int64_t)outstanding_objects(rt);
    workers_free(rt);
    int64_t prev = atomic_fetch_add_explicit(&rt->zombie_objects, left, memory_order_acq_rel);
    if (prev + left == 0) {
        pthread_mutex_destroy(&rt->handler_lock);
        free(rt);
    }
    return 0;
}

corio_rt *corio_get_running_rt(void)
{
    struct corio__worker *w = corio__worker_current();
    return w ? w->rt : NULL;
}

unsigned corio_rt_workers(const corio_rt *rt)
{
    return rt ? rt->nworkers : 0;
}

int corio_worker_id(void)
{
    struct corio__worker *w = corio__worker_current();
    return w ? (int)w->id : -1;
}
