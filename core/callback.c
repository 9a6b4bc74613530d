/* core/callback.c - callbacks that run on a worker's own stack: call_soon
 * and futures' done callbacks (asyncio.Handle).
 *
 * A handle is queued exactly like a task (same run queues, same order), so
 * on one worker callbacks and task steps interleave in the order they became
 * ready, as on asyncio's loop. The queue holds one reference until the
 * handle ran or was skipped; `state` decides the race between running and
 * corio_handle_cancel() with one CAS.
 */
#include <stdlib.h>

#include "internal.h"

struct corio_handle *corio__handle_new(struct corio_rt *rt, uint32_t refs)
{
    struct corio_handle *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->node.kind = KIND_HANDLE;
    atomic_init(&h->refs, refs);
    atomic_init(&h->state, HANDLE_PENDING);
    h->rt = rt;
    return h;
}

int corio__callback_new(struct corio_handle **h, corio_handle **out, corio_callback_fn fn,
                        void *arg)
{
    if (!fn)
        return -EINVAL;
    struct corio__worker *w = corio__worker_current();
    if (!w)
        return -EPERM;
    return corio__callback_new_on(w->rt, h, out, fn, arg);
}

int corio__callback_new_on(struct corio_rt *rt, struct corio_handle **h, corio_handle **out,
                           corio_callback_fn fn, void *arg)
{
    /* One reference for the queue (or timer), one for the caller's @out. */
    *h = corio__handle_new(rt, out ? 2 : 1);
    if (!*h)
        return -ENOMEM;
    (*h)->fn = fn;
    (*h)->arg = arg;
    if (out)
        *out = *h;
    return 0;
}

int corio_call_soon(corio_handle **out, corio_callback_fn fn, void *arg)
{
    struct corio_handle *h;
    int rc = corio__callback_new(&h, out, fn, arg);
    if (rc == 0)
        corio__schedule(h->rt, &h->node, false);
    return rc;
}

void corio__handle_drop(struct corio_handle *h)
{
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1)
        return;
    corio_future_unref(h->fut);
    free(h);
}

void corio__handle_run(struct corio_handle *h)
{
    int expect = HANDLE_PENDING;
    if (atomic_compare_exchange_strong_explicit(&h->state, &expect, HANDLE_RUNNING,
                                                memory_order_acq_rel, memory_order_acquire)) {
        if (h->done_fn)
            h->done_fn(h->fut, h->arg);
        else
            h->fn(h->arg);
        atomic_store_explicit(&h->state, HANDLE_DONE, memory_order_release);
    }
    corio__handle_drop(h);
}

int corio_handle_cancel(corio_handle *h)
{
    if (!h)
        return -EINVAL;
    int expect = HANDLE_PENDING;
    return atomic_compare_exchange_strong_explicit(&h->state, &expect, HANDLE_CANCELLED,
                                                   memory_order_acq_rel,
                                                   memory_order_acquire) ? 1 : 0;
}

bool corio_handle_cancelled(const corio_handle *h)
{
    return h && atomic_load_explicit(&h->state, memory_order_acquire) == HANDLE_CANCELLED;
}

void corio_handle_unref(corio_handle *h)
{
    if (h)
        corio__handle_drop(h);
}

/* ---- done callbacks ---- */

/* Fired under the future's lock: only queue the handle. */
static void done_fire(struct corio__waiter *w, struct corio_future *f)
{
    struct corio_handle *h = corio__container_of(w, struct corio_handle, w);
    h->fut = corio_future_ref(f);
    corio__schedule(f->rt, &h->node, false);
}

int corio_future_add_done_callback(corio_future *f, corio_done_fn fn, void *arg)
{
    if (!f || !fn)
        return -EINVAL;
    struct corio_handle *h = corio__handle_new(f->rt, 1);
    if (!h)
        return -ENOMEM;
    h->done_fn = fn;
    h->arg = arg;
    if (!corio__future_add_waiter(f, &h->w, done_fire)) {
        h->fut = corio_future_ref(f);
        corio__schedule(f->rt, &h->node, false);
    }
    return 0;
}

int corio_future_remove_done_callback(corio_future *f, corio_done_fn fn, void *arg)
{
    if (!f || !fn)
        return -EINVAL;
    struct corio_handle *found = NULL;
    int n = 0;
    corio__spin_lock(&f->lock);
    struct corio__waiter *w = f->whead;
    while (w) {
        struct corio__waiter *next = w->next;
        struct corio_handle *h = corio__container_of(w, struct corio_handle, w);
        if (w->fire == done_fire && h->done_fn == fn && h->arg == arg) {
            corio__future_unlink_waiter_locked(f, w);
            /* Chain through the queue link: the handle is on no queue. */
            h->node.q.next = found ? &found->node.q : NULL;
            found = h;
            n++;
        }
        w = next;
    }
    corio__spin_unlock(&f->lock);
    while (found) {
        struct corio__qnode *next = found->node.q.next;
        free(found);
        found = next ? corio__container_of(next, struct corio_handle, node.q) : NULL;
    }
    return n;
}
