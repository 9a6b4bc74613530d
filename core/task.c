/* core/task.c - creating, cancelling, naming and ending tasks.
 *
 * A task holds two kinds of references: the runtime's (taken at spawn,
 * dropped by the scheduler after the task ended and its stack went back to
 * the pool, so a task never vanishes while it runs or waits), and handles
 * (corio_spawn's @out, corio_all_tasks). The memory goes with the last one.
 *
 * Cancellation is a counter plus a "must_cancel" flag: the counter is
 * asyncio's cancelling(); the flag is a request not yet delivered, consumed
 * by the task itself at its next suspension (corio__task_take_cancel), which
 * keeps every decision about the awaited future on the task's own side.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define ID_BLOCK 1024   /* ids handed to a worker at once, so spawn shares no counter */
#define TASK_CACHE_MAX 1024   /* freed tasks a worker keeps: malloc+free were ~25% of W3 */

static _Atomic uint64_t next_id_block = 1;

static uint64_t new_id(struct corio__worker *w)
{
    if (!w)
        return atomic_fetch_add_explicit(&next_id_block, 1, memory_order_relaxed);
    if (w->next_id == w->last_id) {
        w->next_id = atomic_fetch_add_explicit(&next_id_block, ID_BLOCK, memory_order_relaxed);
        w->last_id = w->next_id + ID_BLOCK;
    }
    return w->next_id++;
}

/* Task memory is recycled per worker: the spawning worker takes from its
 * own cache, the freeing worker gives to its own (bounded), so the common
 * chain of spawn-run-free on one worker never reaches malloc. It is not
 * zeroed: task_init() sets every field that is read before it is written
 * (a 300-byte memset was a tenth of W3's time). */
static struct corio_task *task_alloc(struct corio__worker *w)
{
    struct corio__qnode *q = w->task_cache;
    if (!q)
        return malloc(sizeof(struct corio_task));
    w->task_cache = q->next;
    w->task_cache_n--;
    return corio__container_of(q, struct corio_task, node.q);
}

/* Fields left out are written before they are read: the fiber at the first
 * run (corio__fiber_init), the stack's other fields by corio__stack_alloc,
 * self_waiter by corio__future_add_waiter, the registry links by
 * corio__registry_add, node.q.next by whichever list takes the task. */
static void task_init(struct corio_task *t, struct corio_rt *rt, corio_fn fn, void *arg,
                      char *name, uint64_t id, size_t stack_size, size_t reserve,
                      uint32_t refs)
{
    corio__future_init(&t->fut, rt, KIND_TASK);
    atomic_init(&t->fut.refs, refs);
    t->node.kind = KIND_TASK;
    atomic_init(&t->sched, TS_SCHEDULED);
    atomic_init(&t->wakes, 0);
    atomic_init(&t->must_cancel, false);
    atomic_init(&t->cancel_requests, 0);
    t->cancel_msg = NULL;
    t->stack.lo = NULL;
    _Static_assert(CORIO_STACK_MAX_SIZE + 2 * 65536ull <= UINT32_MAX, "stack sizes fit 32 bits");
    t->stack_size = (uint32_t)stack_size;
    t->stack_reserved = (uint32_t)reserve;
    t->fn = fn;
    t->arg = arg;
    t->name = name;
    t->id = id;
    t->budget = 0;
    atomic_init(&t->awaiting, PARK_NONE);
    t->ctx = NULL;
}

static void task_release(struct corio__worker *w, struct corio_task *t)
{
    if (!t)
        return;
    if (!w || w->task_cache_n >= TASK_CACHE_MAX) {
        free(t);
        return;
    }
    t->node.q.next = w->task_cache;
    w->task_cache = &t->node.q;
    w->task_cache_n++;
}

void corio__task_cache_fini(struct corio__worker *w)
{
    while (w->task_cache) {
        struct corio__qnode *q = w->task_cache;
        w->task_cache = q->next;
        free(corio__container_of(q, struct corio_task, node.q));
    }
    w->task_cache_n = 0;
}

static size_t reserve_for(struct corio_rt *rt, size_t stack_size)
{
    size_t page = rt->arena.page;
    size_t usable = stack_size ? (stack_size + page - 1) / page * page : rt->arena.slot_size;
    return usable + page;
}

int corio_spawn_ex(corio_task **out, corio_fn fn, void *arg, const corio_spawn_options *opts)
{
    if (!fn)
        return -EINVAL;
    struct corio__worker *w = corio__worker_current();
    if (!w)
        return -EPERM;
    return corio__spawn_in(w->rt, w, out, fn, arg, opts);
}

/* @w NULL: from a thread that is not one of @rt's workers; the task then
 * comes from malloc, joins the registry's external shard and goes to the
 * global queue (corio__schedule sees no worker of @rt). */
int corio__spawn_in(struct corio_rt *rt, struct corio__worker *w, corio_task **out, corio_fn fn,
                    void *arg, const corio_spawn_options *opts)
{
    size_t stack_size = opts ? opts->stack_size : 0;
    if (stack_size && (stack_size < CORIO_STACK_MIN_SIZE || stack_size > CORIO_STACK_MAX_SIZE))
        return -EINVAL;
    /* A budget only when the user set one: the shared counter is a contended
     * cache line on every spawn and exit. Without one, spawn still refuses
     * while the kernel refuses stacks (stack_exhausted, set by the scheduler
     * when an allocation failed and cleared when a stack is given back). */
    if (atomic_load_explicit(&rt->stack_exhausted, memory_order_relaxed))
        return -ENOMEM;
    size_t reserve = rt->max_stack_memory ? reserve_for(rt, stack_size) : 0;
    if (reserve) {
        size_t before =
            atomic_fetch_add_explicit(&rt->stack_reserved, reserve, memory_order_relaxed);
        if (before + reserve > rt->max_stack_memory) {
            atomic_fetch_sub_explicit(&rt->stack_reserved, reserve, memory_order_relaxed);
            return -ENOMEM;
        }
    }
    struct corio_task *t = w ? task_alloc(w) : malloc(sizeof *t);
    char *name = opts && opts->name ? strdup(opts->name) : NULL;
    if (!t || (opts && opts->name && !name)) {
        task_release(w, t);
        free(name);
        if (reserve)
            atomic_fetch_sub_explicit(&rt->stack_reserved, reserve, memory_order_relaxed);
        return -ENOMEM;
    }
    task_init(t, rt, fn, arg, name, new_id(w), stack_size, reserve, out ? 2 : 1);
    /* contextvars: the child starts with the spawning task's values. */
    if (w && w->current && w->current->ctx)
        t->ctx = corio__context_ref(w->current->ctx);
    corio__object_created(rt);
    if (w) {
        /* Reap what other workers retired from this shard now and then (also
         * every 61 ticks and before parking): checking on every spawn was a
         * cache miss per spawn while another worker publishes. */
        if ((atomic_load_explicit(&w->m_spawned, memory_order_relaxed) & 63) == 0)
            corio__registry_reap(rt, w->id);
        corio__registry_add(rt, t, w->id);
        corio__stat_add(w->m_spawned, 1);
    } else {
        corio__registry_add(rt, t, corio__registry_external_shard(rt));
        atomic_fetch_add_explicit(&rt->ext_spawned, 1, memory_order_relaxed);
    }
    if (out)
        *out = t;
    corio__schedule(rt, &t->node, true);
    return 0;
}

int corio_spawn(corio_task **out, corio_fn fn, void *arg)
{
    return corio_spawn_ex(out, fn, arg, NULL);
}

void corio__task_free(struct corio_task *t)
{
    struct corio_rt *rt = t->fut.rt;
    corio__future_report_unretrieved(&t->fut);
    corio__future_fini(&t->fut);
    free(t->name);
    free(t->cancel_msg);
    corio__context_unref(t->ctx);
    struct corio__worker *w = corio__worker_current();
    task_release(w && w->rt == rt ? w : NULL, t);
    corio__object_freed(rt);
}

corio_task *corio_task_ref(corio_task *t)
{
    return t ? (corio_task *)corio_future_ref(&t->fut) : NULL;
}

void corio_task_unref(corio_task *t)
{
    if (t)
        corio_future_unref(&t->fut);
}

/* The first switch into a task lands here, on its own stack. */
void corio__task_run_entry(void *value)
{
    struct corio_task *t = value;
    corio__task_resumed();
    void *result = t->fn(t->arg);
    /* Returning with a cancellation still counted is letting CancelledError
     * propagate (corio/task.h's contract). */
    corio__future_complete(&t->fut, FUT_RETURNED, result, 0, NULL, false);
    corio__task_exit(t);
}

int corio_raise(int err, const char *fmt, ...)
{
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;
    if (err >= 0)
        err = -EINVAL;
    char *msg = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
            msg = NULL;
        va_end(ap);
    }
    uint8_t state = err == -ECANCELED ? FUT_CANCELLED : FUT_FAILED;
    corio__future_complete(&t->fut, state, NULL, state == FUT_FAILED ? err : 0, msg, false);
    corio__task_exit(t);
}

/* Under the future's lock, so it is ordered with the task's completion
 * (FUT_RETURNED in core/future.c): either the request counts and the task
 * ends cancelled, or the task had ended and the request returns 0. */
int corio__task_cancel_request(struct corio_task *t, const char *msg)
{
    if (corio_future_done(&t->fut))
        return 0;
    char *copy = msg ? strdup(msg) : NULL;
    if (msg && !copy)
        return -ENOMEM;
    corio__spin_lock(&t->fut.lock);
    if (atomic_load_explicit(&t->fut.state, memory_order_relaxed) != FUT_PENDING) {
        corio__spin_unlock(&t->fut.lock);
        free(copy);
        return 0;
    }
    if (copy) {
        free(t->cancel_msg);
        t->cancel_msg = copy;
    }
    atomic_fetch_add_explicit(&t->cancel_requests, 1, memory_order_relaxed);
    /* Pairs with the exchange in corio__task_take_cancel(). */
    atomic_store_explicit(&t->must_cancel, true, memory_order_release);
    corio__spin_unlock(&t->fut.lock);
    corio__task_wake(t);
    return 1;
}

bool corio__task_take_cancel(struct corio_task *t)
{
    if (!atomic_load_explicit(&t->must_cancel, memory_order_relaxed))
        return false;
    return atomic_exchange_explicit(&t->must_cancel, false, memory_order_acquire);
}

int corio_task_cancel(corio_task *t, const char *msg)
{
    return t ? corio__task_cancel_request(t, msg) : -EINVAL;
}

int corio_task_uncancel(corio_task *t)
{
    if (!t)
        return -EINVAL;
    int n = atomic_load_explicit(&t->cancel_requests, memory_order_relaxed);
    while (n > 0 && !atomic_compare_exchange_weak_explicit(&t->cancel_requests, &n, n - 1,
                                                           memory_order_acq_rel,
                                                           memory_order_relaxed))
        ;
    /* asyncio 3.11+: once the count is back to zero, a request that was
     * not delivered yet is withdrawn too. */
    if (n <= 1)
        atomic_store_explicit(&t->must_cancel, false, memory_order_relaxed);
    return n > 0 ? n - 1 : 0;
}

int corio_task_cancelling(const corio_task *t)
{
    return t ? atomic_load_explicit(&t->cancel_requests, memory_order_acquire) : 0;
}

bool corio_task_done(const corio_task *t) { return t && corio_future_done(&t->fut); }
bool corio_task_cancelled(const corio_task *t) { return t && corio_future_cancelled(&t->fut); }

int corio_task_result(corio_task *t, void **value)
{
    return t ? corio_future_result(&t->fut, value) : -EINVAL;
}

int corio_task_exception(corio_task *t, const char **msg)
{
    return t ? corio_future_exception(&t->fut, msg) : -EINVAL;
}

const char *corio_task_name(const corio_task *tc)
{
    if (!tc)
        return "";
    struct corio_task *t = (struct corio_task *)tc;
    char *name = __atomic_load_n(&t->name, __ATOMIC_ACQUIRE);
    if (name)
        return name;
    /* asyncio's default names, made on first use so spawn pays nothing. */
    char *made = NULL;
    if (asprintf(&made, "Task-%llu", (unsigned long long)t->id) < 0)
        return "";
    char *expect = NULL;
    if (!__atomic_compare_exchange_n(&t->name, &expect, made, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        free(made);
        return expect;
    }
    return made;
}

int corio_task_set_name(corio_task *t, const char *name)
{
    if (!t || !name)
        return -EINVAL;
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    /* corio/task.h: a name returned earlier is valid until the next rename.
     * The runtime's own readers on other threads (dump, reports, warnings)
     * copy it under the same lock: corio__task_name_copy(). */
    corio__spin_lock(&t->fut.lock);
    char *old = __atomic_exchange_n(&t->name, copy, __ATOMIC_ACQ_REL);
    corio__spin_unlock(&t->fut.lock);
    free(old);
    return 0;
}

const char *corio__task_name_copy(const struct corio_task *tc, char *buf, size_t len)
{
    struct corio_task *t = (struct corio_task *)tc;
    corio__spin_lock(&t->fut.lock);
    const char *name = __atomic_load_n(&t->name, __ATOMIC_ACQUIRE);
    if (name)
        snprintf(buf, len, "%s", name);
    else
        snprintf(buf, len, "Task-%llu", (unsigned long long)t->id);
    corio__spin_unlock(&t->fut.lock);
    return buf;
}

uint64_t corio_task_id(const corio_task *t)
{
    return t ? t->id : 0;
}

corio_task *corio_current_task(void)
{
    struct corio__worker *w = corio__worker_current();
    return w ? w->current : NULL;
}

int corio_yield(void)
{
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;
    corio__task_switch_out(t, SW_YIELD);
    return corio__task_take_cancel(t) ? -ECANCELED : 0;
}

int corio_all_tasks(corio_task ***out)
{
    if (!out)
        return -EINVAL;
    struct corio__worker *w = corio__worker_current();
    if (!w)
        return -EPERM;
    return corio__registry_snapshot(w->rt, out, NULL);
}

void corio_task_list_free(corio_task **list, int n)
{
    if (!list)
        return;
    for (int i = 0; i < n; i++)
        corio_task_unref(list[i]);
    free(list);
}

char *corio__task_cancel_msg(struct corio_task *t)
{
    corio__spin_lock(&t->fut.lock);
    char *msg = t->cancel_msg ? strdup(t->cancel_msg) : NULL;
    corio__spin_unlock(&t->fut.lock);
    return msg;
}
