/* core/loop.c - loop services: the clock, the exception handler, debug-mode
 * slow-step warnings and metrics.
 *
 * The handler may be replaced from any thread while reports are made on
 * workers, so it is read as a (fn, arg) pair under handler_lock and called
 * outside it. A handler that reports again from inside itself gets the
 * default handler (asyncio falls back the same way when its handler raises).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "internal.h"

uint64_t corio_time_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int corio_rt_set_exception_handler(corio_rt *rt, corio_exception_handler fn, void *arg)
{
    if (!rt)
        return -EINVAL;
    pthread_mutex_lock(&rt->handler_lock);
    rt->handler = fn;
    rt->handler_arg = arg;
    pthread_mutex_unlock(&rt->handler_lock);
    return 0;
}

corio_exception_handler corio_rt_get_exception_handler(const corio_rt *rt, void **arg)
{
    if (!rt)
        return NULL;
    corio_rt *m = (corio_rt *)rt;
    pthread_mutex_lock(&m->handler_lock);
    corio_exception_handler fn = m->handler;
    if (arg)
        *arg = m->handler_arg;
    pthread_mutex_unlock(&m->handler_lock);
    return fn;
}

void corio_default_exception_handler(corio_rt *rt, const corio_exception_context *ctx, void *arg)
{
    (void)rt;
    (void)arg;
    if (!ctx)
        return;
    char line[1024];
    int n = snprintf(line, sizeof line, "corio: %s", ctx->message ? ctx->message : "error");
    char name[CORIO__NAME_MAX];
    if (ctx->task && n < (int)sizeof line)
        n += snprintf(line + n, sizeof line - n, ": task '%s'",
                      corio__task_name_copy(ctx->task, name, sizeof name));
    if (ctx->error && n < (int)sizeof line)
        n += snprintf(line + n, sizeof line - n, " error %d (%s)", ctx->error,
                      corio_strerror(ctx->error));
    if (ctx->error_message && n < (int)sizeof line)
        snprintf(line + n, sizeof line - n, ": %s", ctx->error_message);
    fprintf(stderr, "%s\n", line);
}

static __thread bool in_handler;

void corio_rt_call_exception_handler(corio_rt *rt, const corio_exception_context *ctx)
{
    if (!rt || !ctx)
        return;
    void *arg = NULL;
    corio_exception_handler fn = corio_rt_get_exception_handler(rt, &arg);
    if (!fn || in_handler) {
        corio_default_exception_handler(rt, ctx, NULL);
        return;
    }
    in_handler = true;
    fn(rt, ctx, arg);
    in_handler = false;
}

void corio__report(struct corio_rt *rt, const char *message, struct corio_task *task,
                   struct corio_future *f)
{
    corio_exception_context ctx = {
        .message = message,
        .error = f ? f->err : 0,
        .error_message = f ? f->msg : NULL,
        .task = task,
        .future = f,
    };
    corio_rt_call_exception_handler(rt, &ctx);
}

/* ---- debug mode ---- */

int corio_rt_set_debug(corio_rt *rt, bool on)
{
    if (!rt)
        return -EINVAL;
    atomic_store_explicit(&rt->debug, on, memory_order_relaxed);
    return 0;
}

bool corio_rt_get_debug(const corio_rt *rt)
{
    return rt && atomic_load_explicit(&rt->debug, memory_order_relaxed);
}

/* Called around a step only in debug mode (core/sched.c run_task). */
void corio__debug_step_begin(struct corio__worker *w, struct corio_task *t)
{
    (void)t;
    w->step_start_ns = corio_time_ns();
}

void corio__debug_step_end(struct corio__worker *w, struct corio_task *t)
{
    if (!w->step_start_ns)
        return;
    uint64_t took = corio_time_ns() - w->step_start_ns;
    w->step_start_ns = 0;
    char name[CORIO__NAME_MAX];
    if (took >= w->rt->slow_ns)
        fprintf(stderr, "corio: Executing <Task name='%s' id=%llu> took %.3f seconds\n",
                corio__task_name_copy(t, name, sizeof name), (unsigned long long)t->id,
                (double)took / 1e9);
}

/* ---- metrics ---- */

int corio_rt_worker_metrics(corio_rt *rt, unsigned i, corio_worker_metrics *out)
{
    if (!rt || !out || i >= rt->nworkers)
        return -EINVAL;
    struct corio__worker *w = &rt->workers[i];
#define LOAD(x) atomic_load_explicit(&w->x, memory_order_relaxed)
    *out = (corio_worker_metrics){
        .polls = LOAD(m_polls),
        .steals = LOAD(m_steals),
        .stolen = LOAD(m_stolen),
        .overflows = LOAD(m_overflows),
        .parks = LOAD(m_parks),
        .remote_schedules = LOAD(m_remote),
        .budget_yields = LOAD(m_budget_yields),
        .local_queue_depth = corio__runq_len(&w->runq),
        .io_submitted = LOAD(m_io_submitted),
        .io_completed = LOAD(m_io_completed),
        .timers_fired = LOAD(m_timers_fired),
    };
    /* Set once by the worker's own thread as it starts (core/park.c). */
    const struct corio__backend_ops *ops = __atomic_load_n(&w->io_ops, __ATOMIC_ACQUIRE);
    out->backend = ops ? ops->name : NULL;
#undef LOAD
    return 0;
}

const char *corio_rt_backend(const corio_rt *rt)
{
    return rt ? rt->io_ops->name : NULL;
}

uint64_t corio_rt_alive_tasks(corio_rt *rt)
{
    return rt ? corio__registry_count(rt) : 0;
}
