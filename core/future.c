/* core/future.c - the result cell every task, gather and bridge is built on.
 *
 * Protocol: `lock` guards the waiter list and the one transition out of
 * PENDING. The state is also stored with release so corio_future_done() and
 * friends can read it without the lock (acquire). Completion fires every
 * waiter while still holding the lock: a waiter node may live on the stack of
 * the task it wakes, and that task unlinks it with corio__future_remove_waiter()
 * under the same lock, so a node is never touched after its owner moved on.
 * Waiter callbacks therefore must be short and never take this future's lock;
 * user-visible done callbacks are only *scheduled* from there (core/callback.c).
 *
 * Any thread may complete a future; awaiting is for tasks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define BUDGET_OPS 128   /* DESIGN.md "Fairness": yield after 128 ready operations */

void corio__future_init(struct corio_future *f, struct corio_rt *rt, uint8_t kind)
{
    atomic_init(&f->refs, 1);
    atomic_init(&f->state, FUT_PENDING);
    atomic_init(&f->retrieved, false);
    f->kind = kind;
    corio__spin_init(&f->lock);
    f->whead = f->wtail = NULL;
    f->value = NULL;
    f->err = 0;
    f->msg = NULL;
    f->rt = rt;
}

void corio__future_fini(struct corio_future *f)
{
    free(f->msg);
    f->msg = NULL;
}

void corio__object_created(struct corio_rt *rt)
{
    struct corio__worker *w = corio__worker_current();
    if (w && w->rt == rt)
        corio__stat_add(w->objects_created, 1);
    else
        atomic_fetch_add_explicit(&rt->ext_objects, 1, memory_order_relaxed);
}

void corio__object_freed(struct corio_rt *rt)
{
    /* A worker of @rt is running, so @rt is not destroyed. */
    struct corio__worker *w = corio__worker_current();
    if (w && w->rt == rt) {
        corio__stat_add(w->objects_freed, 1);
        return;
    }
    /* One read-modify-write decides which side of corio_rt_destroy()'s
     * exchange this free falls on (acq_rel: ordered with it either way):
     * before, the destroyer counts it; after, it counts down the zombie
     * objects, and the last one frees the runtime's shell. (A load of a
     * "destroyed" flag followed by a separate decrement let destroy run in
     * between and free the runtime under the decrement; TSan caught it.) */
    int64_t before = (int64_t)atomic_fetch_sub_explicit(&rt->ext_objects, 1, memory_order_acq_rel);
    if (before < CORIO__EXT_CLOSED / 2)
        return;
    if (atomic_fetch_sub_explicit(&rt->zombie_objects, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&rt->handler_lock);
        free(rt);
    }
}

void corio__future_unlink_waiter_locked(struct corio_future *f, struct corio__waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        f->whead = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        f->wtail = w->prev;
    w->next = w->prev = NULL;
    w->linked = false;
}

int corio__future_complete(struct corio_future *f, uint8_t state, void *value, int err,
                           const char *msg, bool copy_msg)
{
    char *owned = msg && copy_msg ? strdup(msg) : (char *)msg;
    corio__spin_lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) != FUT_PENDING) {
        corio__spin_unlock(&f->lock);
        free(owned);   /* copied here, or handed over by the caller */
        return -EINVAL;
    }
    if (state == FUT_RETURNED) {
        struct corio_task *t = (struct corio_task *)f;
        state = FUT_DONE;
        if (atomic_load_explicit(&t->cancel_requests, memory_order_relaxed) > 0) {
            state = FUT_CANCELLED;
            value = NULL;
            owned = t->cancel_msg ? strdup(t->cancel_msg) : NULL;
        }
    }
    f->value = value;
    f->err = err;
    f->msg = owned;
    /* Pairs with the acquire loads in corio_future_done() and friends. */
    atomic_store_explicit(&f->state, state, memory_order_release);
    struct corio__waiter *w = f->whead;
    f->whead = f->wtail = NULL;
    while (w) {
        struct corio__waiter *next = w->next;
        w->next = w->prev = NULL;
        w->linked = false;
        w->fire(w, f);
        w = next;
    }
    corio__spin_unlock(&f->lock);
    return 0;
}

bool corio__future_add_waiter(struct corio_future *f, struct corio__waiter *w,
                              corio__waiter_fn fire)
{
    corio__spin_lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) != FUT_PENDING) {
        corio__spin_unlock(&f->lock);
        return false;
    }
    w->fire = fire;
    w->next = NULL;
    w->prev = f->wtail;
    if (f->wtail)
        f->wtail->next = w;
    else
        f->whead = w;
    f->wtail = w;
    w->linked = true;
    corio__spin_unlock(&f->lock);
    return true;
}

void corio__future_remove_waiter(struct corio_future *f, struct corio__waiter *w)
{
    corio__spin_lock(&f->lock);
    if (w->linked)
        corio__future_unlink_waiter_locked(f, w);
    corio__spin_unlock(&f->lock);
}

int corio__future_outcome(struct corio_future *f, void **value)
{
    switch (atomic_load_explicit(&f->state, memory_order_acquire)) {
    case FUT_DONE:
        if (value)
            *value = f->value;
        return 0;
    case FUT_FAILED:
        atomic_store_explicit(&f->retrieved, true, memory_order_relaxed);
        return f->err;
    case FUT_CANCELLED:
        return -ECANCELED;
    default:
        return -EAGAIN;
    }
}

void corio__future_report_unretrieved(struct corio_future *f)
{
    if (atomic_load_explicit(&f->state, memory_order_acquire) != FUT_FAILED ||
        atomic_load_explicit(&f->retrieved, memory_order_relaxed))
        return;
    struct corio_task *t = corio__task_of(f);
    corio__report(f->rt, t ? "Task exception was never retrieved"
                           : "Future exception was never retrieved",
                  t, f);
}

/* ---- public API ---- */

int corio_future_create(corio_future **out)
{
    if (!out)
        return -EINVAL;
    struct corio__worker *w = corio__worker_current();
    if (!w)
        return -EPERM;
    struct corio_future *f = malloc(sizeof *f);
    if (!f)
        return -ENOMEM;
    corio__future_init(f, w->rt, KIND_FUTURE);
    corio__object_created(w->rt);
    *out = f;
    return 0;
}

corio_future *corio_future_ref(corio_future *f)
{
    if (f)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void corio_future_unref(corio_future *f)
{
    if (!f)
        return;
    /* acq_rel: the freeing thread must see every other holder's writes. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (f->kind == KIND_TASK) {
        corio__task_free((struct corio_task *)f);
        return;
    }
    if (atomic_load_explicit(&f->state, memory_order_acquire) == FUT_PENDING) {
        /* Cancelling schedules the done callbacks, and each queued one takes
         * a reference (done_fire): hold one across the completion so they
         * can outlive this call; the last of them frees the future. */
        atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
        corio__future_complete(f, FUT_CANCELLED, NULL, 0, NULL, false);
        if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
            return;
    }
    corio__future_report_unretrieved(f);
    struct corio_rt *rt = f->rt;
    corio__future_fini(f);
    free(f);
    corio__object_freed(rt);
}

int corio_future_set_result(corio_future *f, void *value)
{
    if (!f || f->kind == KIND_TASK)
        return -EINVAL;
    return corio__future_complete(f, FUT_DONE, value, 0, NULL, false);
}

int corio_future_set_exception(corio_future *f, int err, const char *msg)
{
    if (!f || f->kind == KIND_TASK || err >= 0)
        return -EINVAL;
    if (err == -ECANCELED)   /* asyncio: set_exception(CancelledError) is a TypeError */
        return -EINVAL;
    return corio__future_complete(f, FUT_FAILED, NULL, err, msg, true);
}

int corio_future_cancel(corio_future *f, const char *msg)
{
    if (!f)
        return -EINVAL;
    struct corio_task *t = corio__task_of(f);
    if (t)
        return corio__task_cancel_request(t, msg);
    return corio__future_complete(f, FUT_CANCELLED, NULL, 0, msg, true) == 0 ? 1 : 0;
}

bool corio_future_done(const corio_future *f)
{
    return f && atomic_load_explicit(&f->state, memory_order_acquire) != FUT_PENDING;
}

bool corio_future_cancelled(const corio_future *f)
{
    return f && atomic_load_explicit(&f->state, memory_order_acquire) == FUT_CANCELLED;
}

int corio_future_result(corio_future *f, void **value)
{
    if (!f)
        return -EINVAL;
    return corio__future_outcome(f, value);
}

int corio_future_exception(corio_future *f, const char **msg)
{
    if (!f)
        return -EINVAL;
    int rc = corio__future_outcome(f, NULL);
    if (msg)
        *msg = rc < 0 && rc != -EAGAIN ? f->msg : NULL;
    return rc;
}

corio_future *corio_task_future(corio_task *t)
{
    return t ? &t->fut : NULL;
}

static void wake_awaiter(struct corio__waiter *w, struct corio_future *f)
{
    (void)f;
    corio__task_wake(corio__container_of(w, struct corio_task, self_waiter));
}

/* Ready operations count against the task's budget; past it, the task yields
 * once (without delivering a cancellation: the yield is not the user's). */
void corio__task_spend_budget(struct corio_task *t)
{
    if (++t->budget < BUDGET_OPS)
        return;
    struct corio__worker *w = corio__worker_current();
    corio__stat_add(w->m_budget_yields, 1);
    corio__task_switch_out(t, SW_BUDGET);
}

int corio_future_await(corio_future *f, void **value)
{
    if (!f)
        return -EINVAL;
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;
    if (f == &t->fut)
        return -EINVAL;   /* asyncio: "Task cannot await on itself" */
    if (corio_future_done(f)) {
        corio__task_spend_budget(t);
        return corio__future_outcome(f, value);
    }
    for (;;) {
        if (corio__task_take_cancel(t)) {
            /* asyncio: the awaited future is cancelled too, and the task
             * resumes when that completes (a child task may take a while). */
            char *msg = corio__task_cancel_msg(t);
            int c = corio_future_cancel(f, msg);
            free(msg);
            if (c != 1)
                return -ECANCELED;
        }
        if (corio_future_done(f))
            return corio__future_outcome(f, value);
        if (corio__future_add_waiter(f, &t->self_waiter, wake_awaiter)) {
            corio__task_park(t, PARK_FUTURE);
            corio__future_remove_waiter(f, &t->self_waiter);
        }
    }
}
