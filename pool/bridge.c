/* pool/bridge.c - tasks and plain threads handing each other work:
 * run_in_executor / to_thread (a task awaits a pool thread), the default
 * executor, run_coroutine_threadsafe / call_soon_threadsafe (a plain thread
 * feeds a runtime) and wrap_future (a task awaits a concurrent future).
 *
 * run_in_executor. The task awaits the work's concurrent future through an
 * internal waiter (pool.h), parked on a corio future, so its worker runs
 * other tasks. A cancellation of the task cancels the work if it has not
 * started; work already running may use memory on the task's stack (@arg),
 * so the task then waits for it to end - a task never unwinds while
 * something it handed out still runs - and returns -ECANCELED.
 *
 * The default executor is made on first use, installed with a
 * compare-and-set (the loser destroys its own, which has no thread yet),
 * and the runtime's shutdown hook shuts it down from the runner task once
 * every task is gone, waiting up to 300 s (asyncio's
 * shutdown_default_executor timeout); one made here is destroyed too, and
 * replaced by corio__closed_pool, so a task that runs later (a signal
 * callback's) gets -ESHUTDOWN instead of a pool nobody would shut down.
 *
 * run_coroutine_threadsafe. The task is spawned through the runtime's gate
 * (core/xthread.c) running a small entry that first registers a done
 * callback on its own task, so the outcome reaches the concurrent future
 * whatever way the task ends (return, corio_raise, cancellation). As in
 * asyncio, the concurrent future stays PENDING while the task runs, so
 * cancel() on it succeeds at once; its done callback then cancels the task.
 */
#include <stdlib.h>
#include <unistd.h>

#include "../core/internal.h"
#include "pool.h"

#define DEFAULT_MAX_THREADS 512                       /* DESIGN.md: elastic up to 512 */
#define DEFAULT_SHUTDOWN_NS (300 * 1000000000LL)      /* asyncio: 300 s */

/* ---- awaiting executor work ---- */

/* Await @cf in a task; on a cancellation, cancel @cf, or wait out work that
 * already runs. */
static int await_work(corio_cfuture *cf, void **value)
{
    int rc = corio__cfuture_await_done(cf, CORIO_WAIT_FOREVER);
    if (rc == -ECANCELED) {
        if (corio_cfuture_cancel(cf) != 1)
            while (!corio_cfuture_done(cf))
                corio__cfuture_await_done(cf, CORIO_WAIT_FOREVER);
        return -ECANCELED;
    }
    if (rc < 0)
        return rc;
    return corio__cfuture_outcome(cf, value, NULL);
}

/* ---- the default executor ---- */

static void default_shutdown_hook(struct corio_rt *rt, void *arg)
{
    (void)arg;
    corio_thread_pool *ex = corio__rt_default_executor(rt);
    if (!ex)
        return;
    int rc = corio__thread_pool_shutdown_timeout(ex, false, DEFAULT_SHUTDOWN_NS);
    if (rc == -ETIMEDOUT) {
        corio__report(rt, "The default executor did not finish joining its threads within 300 s",
                      NULL, NULL);
        return;   /* leaked rather than freed under running threads */
    }
    if (corio__thread_pool_rt_owned(ex)) {
        /* Pairs with the acquire load in corio__rt_default_executor(). */
        atomic_store_explicit(&rt->default_executor, &corio__closed_pool, memory_order_release);
        corio_thread_pool_destroy(ex);
    }
}

static corio_thread_pool *default_executor(struct corio_rt *rt, int *rc)
{
    corio_thread_pool *ex = corio__rt_default_executor(rt);
    if (ex)
        return ex;
    corio_thread_pool_options o = {
        .max_workers = DEFAULT_MAX_THREADS,
        .thread_name_prefix = "corio-blocking",
    };
    *rc = corio_thread_pool_create(&ex, &o);
    if (*rc < 0)
        return NULL;
    /* As many threads at once as there are CPUs; more when calls block
     * (thread_pool.c, "Growth past eager"). */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    corio__thread_pool_set_eager(ex, cpus > 0 ? (unsigned)cpus : 1);
    if (!corio__rt_install_default_executor(rt, ex)) {
        corio_thread_pool_destroy(ex);   /* another task installed one first */
        return corio__rt_default_executor(rt);
    }
    corio__thread_pool_set_rt_owned(ex);
    corio__rt_set_shutdown_hook(rt, default_shutdown_hook, NULL);
    return ex;
}

int corio_set_default_executor(corio_rt *rt, corio_thread_pool *ex)
{
    if (!rt)
        rt = corio_get_running_rt();
    if (!rt || !ex)
        return -EINVAL;
    if (!corio__rt_install_default_executor(rt, ex))
        return -EBUSY;
    corio__rt_set_shutdown_hook(rt, default_shutdown_hook, NULL);
    return 0;
}

int corio_run_in_executor(corio_thread_pool *ex, corio_fn fn, void *arg, void **value)
{
    if (!fn)
        return -EINVAL;
    if (!corio_current_task())
        return -EPERM;
    int rc = 0;
    if (!ex && !(ex = default_executor(corio_get_running_rt(), &rc)))
        return rc;
    corio_cfuture *cf;
    rc = corio_thread_pool_submit(ex, fn, arg, &cf);
    if (rc < 0)
        return rc;
    rc = await_work(cf, value);
    corio_cfuture_unref(cf);
    return rc;
}

int corio_to_thread(corio_fn fn, void *arg, void **value)
{
    return corio_run_in_executor(NULL, fn, arg, value);
}

/* ---- run_coroutine_threadsafe ---- */

struct xt {
    corio_cfuture *cf;   /* a reference, handed to the task's done callback */
    corio_fn fn;
    void *arg;
};

/* A done callback on the task (on a worker): its outcome to the future. */
static void xt_task_done(corio_future *tf, void *arg)
{
    corio_cfuture *cf = arg;
    void *v = NULL;
    const char *msg = NULL;
    int rc = corio_future_exception(tf, &msg);
    if (rc == -ECANCELED) {
        corio_cfuture_cancel(cf);
    } else if (corio_cfuture_set_running_or_notify_cancel(cf) == 1) {
        if (rc < 0) {
            corio_cfuture_set_exception(cf, rc, msg);
        } else {
            corio_future_result(tf, &v);
            corio_cfuture_set_result(cf, v);
        }
    }
    corio_cfuture_unref(cf);
}

/* A done callback on the future (any thread): a cancel reaches the task. */
static void xt_cf_done(corio_cfuture *cf, void *arg)
{
    corio_task *t = arg;
    if (corio_cfuture_cancelled(cf))
        corio_task_cancel(t, NULL);
    corio_task_unref(t);
}

static void *xt_entry(void *p)
{
    struct xt x = *(struct xt *)p;
    free(p);
    int rc = corio_future_add_done_callback(corio_task_future(corio_current_task()),
                                            xt_task_done, x.cf);
    if (rc < 0) {
        if (corio_cfuture_set_running_or_notify_cancel(x.cf) == 1)
            corio_cfuture_set_exception(x.cf, rc, "run_coroutine_threadsafe: out of memory");
        corio_cfuture_unref(x.cf);
        return NULL;
    }
    return x.fn(x.arg);
}

int corio_run_coroutine_threadsafe(corio_rt *rt, corio_fn fn, void *arg, corio_cfuture **out)
{
    if (!rt || !fn || !out)
        return -EINVAL;
    struct xt *x = malloc(sizeof *x);
    if (!x)
        return -ENOMEM;
    int rc = corio_cfuture_create(&x->cf);
    if (rc < 0) {
        free(x);
        return rc;
    }
    corio_cfuture *cf = corio_cfuture_ref(x->cf);   /* the caller's; x->cf is the task's */
    x->fn = fn;
    x->arg = arg;
    corio_task *t;
    rc = corio__rt_spawn_threadsafe(rt, &t, xt_entry, x, NULL);
    if (rc < 0) {
        corio_cfuture_unref(x->cf);
        corio_cfuture_unref(cf);
        free(x);
        return rc;
    }
    rc = corio_cfuture_add_done_callback(cf, xt_cf_done, t);   /* hands over t */
    if (rc < 0) {
        /* The future can no longer cancel the task; it still completes. */
        corio_task_unref(t);
    }
    *out = cf;
    return 0;
}

int corio_call_soon_threadsafe(corio_rt *rt, corio_handle **out, corio_callback_fn fn, void *arg)
{
    if (!rt || !fn)
        return -EINVAL;
    return corio__rt_call_soon_threadsafe(rt, out, fn, arg);
}

/* ---- wrap_future ---- */

/* @cf's done callback (any thread): its outcome to the corio future. */
static void wrap_cf_done(corio_cfuture *cf, void *arg)
{
    corio_future *f = arg;
    void *v = NULL;
    const char *msg = NULL;
    int rc = corio__cfuture_outcome(cf, &v, &msg);
    if (rc == 0)
        corio_future_set_result(f, v);
    else if (rc == -ECANCELED)
        corio_future_cancel(f, NULL);
    else
        corio_future_set_exception(f, rc, msg);
    corio_future_unref(f);
}

/* The corio future's done callback (a worker): a cancel reaches @cf. */
static void wrap_f_done(corio_future *f, void *arg)
{
    corio_cfuture *cf = arg;
    if (corio_future_cancelled(f))
        corio_cfuture_cancel(cf);
    corio_cfuture_unref(cf);
}

int corio_wrap_future(corio_cfuture *cf, corio_future **out)
{
    if (!cf || !out)
        return -EINVAL;
    corio_future *f;
    int rc = corio_future_create(&f);
    if (rc < 0)
        return rc;
    rc = corio_future_add_done_callback(f, wrap_f_done, corio_cfuture_ref(cf));
    if (rc < 0) {
        corio_cfuture_unref(cf);
        corio_future_unref(f);
        return rc;
    }
    rc = corio_cfuture_add_done_callback(cf, wrap_cf_done, corio_future_ref(f));
    if (rc < 0) {
        corio_future_unref(f);   /* the callback's reference */
        corio_future_cancel(f, NULL);
        corio_future_unref(f);
        return rc;
    }
    *out = f;
    return 0;
}
