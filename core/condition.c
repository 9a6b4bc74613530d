/* core/condition.c - asyncio.Condition on a corio_lock (given, or its own).
 *
 * The condition's spinlock guards only its queue of waiters; the corio_lock
 * is the user's lock. wait() queues its node *before* it releases the lock,
 * so a notify made by the next holder of the lock always finds it (no
 * lost wake-up); it then parks (corio__wq_wait copes with a node that a
 * notifier already took), and finally takes the lock again through the
 * lock's own slow path, in FIFO order with the other acquirers. As in
 * asyncio, that re-acquire is not abandoned when the task is cancelled:
 * a cancellation that arrives there is remembered and the acquire retried,
 * so every return but -EINVAL/-EPERM is with the lock held.
 *
 * notify(n) takes up to n waiters off in queue order and wakes them after
 * unlocking. A waiter that was notified but leaves with -ECANCELED (the
 * cancellation arrived as it was woken, or while it took the lock again)
 * hands its notification to the next waiter once it holds the lock
 * (asyncio 3.13 re-notifies; 3.12 lost it).
 *
 * Lock order: the condition's spinlock is never held while the lock's own
 * spinlock is taken, nor across a wake.
 */
#include <limits.h>
#include <string.h>

#include "sync.h"


static struct corio__cond *cond_of(const corio_condition *c)
{
    struct corio__cond *cd = (struct corio__cond *)(void *)(uintptr_t)c;
    return cd && cd->magic == CORIO__COND_MAGIC ? cd : NULL;
}

int corio_condition_init(corio_condition *c, corio_lock *lock)
{
    if (!c || (lock && !corio__lock_valid(corio__lock_of(lock))))
        return -EINVAL;
    struct corio__cond *cd = (struct corio__cond *)(void *)c;
    memset(c, 0, sizeof *c);
    corio__spin_init(&cd->spin);
    corio__wq_init(&cd->wq);
    cd->own = lock == NULL;
    if (cd->own)
        corio_lock_init(&cd->own_lock);
    cd->lock = cd->own ? &cd->own_lock : lock;
    cd->magic = CORIO__COND_MAGIC;
    return 0;
}

int corio_condition_close(corio_condition *c)
{
    struct corio__cond *cd = cond_of(c);
    if (!cd)
        return -EINVAL;
    corio__spin_lock(&cd->spin);
    int rc = corio__wq_quiet(&cd->wq) ? 0 : -EBUSY;
    corio__spin_unlock(&cd->spin);
    if (rc == 0 && cd->own)
        rc = corio_lock_close(&cd->own_lock);
    if (rc == 0)
        cd->magic = 0;
    return rc;
}

corio_lock *corio_condition_lock(corio_condition *c)
{
    struct corio__cond *cd = cond_of(c);
    return cd ? cd->lock : NULL;
}

int corio_condition_acquire(corio_condition *c)
{
    struct corio__cond *cd = cond_of(c);
    return cd ? corio_lock_acquire(cd->lock) : -EINVAL;
}

int corio_condition_acquire_timeout(corio_condition *c, int64_t timeout_ns)
{
    struct corio__cond *cd = cond_of(c);
    return cd ? corio_lock_acquire_timeout(cd->lock, timeout_ns) : -EINVAL;
}

int corio_condition_release(corio_condition *c)
{
    struct corio__cond *cd = cond_of(c);
    return cd ? corio_lock_release(cd->lock) : -EINVAL;
}

bool corio_condition_locked(const corio_condition *c)
{
    struct corio__cond *cd = cond_of(c);
    return cd && corio_lock_locked(cd->lock);
}

/* Wake up to @n waiters; the number woken. */
static int notify(struct corio__cond *cd, unsigned n)
{
    struct corio__wq_batch b;
    int woken = 0;
    corio__wq_batch_init(&b);
    corio__spin_lock(&cd->spin);
    while ((unsigned)woken < n && woken < INT_MAX && corio__wq_pop_to(&cd->wq, &b))
        woken++;
    corio__spin_unlock(&cd->spin);
    corio__wq_wake_batch(&b);
    return woken;
}

/* Take the lock again whatever happens; true when a cancellation arrived
 * (consumed) meanwhile. */
static bool reacquire(struct corio__cond *cd)
{
    struct corio__lock *l = corio__lock_of(cd->lock);
    bool cancelled = false;
    for (;;) {
        int rc = corio__lock_acquire_keep(l);
        if (rc == 0)
            return cancelled;
        if (rc == CORIO__WQ_WOKEN_CANCELLED)
            return true;
        /* -ECANCELED: queued again, without the cancellation now. -EPERM
         * cannot happen (we are a task). */
        cancelled = true;
    }
}

static int cond_wait(struct corio__cond *cd)
{
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;
    if (!corio_lock_locked(cd->lock))
        return -EINVAL;   /* asyncio: RuntimeError('cannot wait on un-acquired lock') */
    struct corio__wq_node node;
    node.data = 0;
    corio__spin_lock(&cd->spin);
    corio__wq_push(&cd->wq, &node, t);
    corio__spin_unlock(&cd->spin);
    int rc = corio_lock_release(cd->lock);
    if (CORIO_NEVER(rc < 0)) {
        /* Released by somebody else meanwhile: take the node back. */
        corio__spin_lock(&cd->spin);
        if (atomic_load_explicit(&node.state, memory_order_relaxed) == WQ_WAITING) {
            corio__wq_take(&cd->wq, &node);
            corio__wq_leave(&cd->wq);
            corio__spin_unlock(&cd->spin);
            return -EINVAL;
        }
        /* Already notified: corio__wq_wait() below returns at once. */
        corio__spin_unlock(&cd->spin);
    }
    corio__spin_lock(&cd->spin);
    rc = corio__wq_wait(&cd->wq, &cd->spin, &node);
    bool notified = rc != -ECANCELED;
    bool cancelled = rc != 0;
    if (reacquire(cd))
        cancelled = true;
    /* Notified, but leaving with -ECANCELED: the notification goes to the
     * next waiter (asyncio 3.13 does this under the lock as well). */
    if (cancelled && notified)
        notify(cd, 1);
    corio__wq_leave(&cd->wq);
    return cancelled ? -ECANCELED : 0;
}

int corio_condition_wait(corio_condition *c)
{
    struct corio__cond *cd = cond_of(c);
    return cd ? cond_wait(cd) : -EINVAL;
}

static int wait_op(void *cd)
{
    return cond_wait(cd);
}

int corio_condition_wait_timeout(corio_condition *c, int64_t timeout_ns)
{
    struct corio__cond *cd = cond_of(c);
    if (!cd || timeout_ns < 0)
        return -EINVAL;
    if (!corio_current_task())
        return -EPERM;
    if (!corio_lock_locked(cd->lock))
        return -EINVAL;
    return corio__sync_timed(timeout_ns, wait_op, cd);
}

static int wait_for(struct corio__cond *cd, corio_predicate_fn pred, void *arg)
{
    if (!corio_current_task())
        return -EPERM;
    if (!corio_lock_locked(cd->lock))
        return -EINVAL;
    while (!pred(arg)) {
        int rc = cond_wait(cd);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int corio_condition_wait_for(corio_condition *c, corio_predicate_fn pred, void *arg)
{
    struct corio__cond *cd = cond_of(c);
    if (!cd || !pred)
        return -EINVAL;
    return wait_for(cd, pred, arg);
}

struct wait_for_args {
    struct corio__cond *cd;
    corio_predicate_fn pred;
    void *arg;
};

static int wait_for_op(void *p)
{
    struct wait_for_args *w = p;
    return wait_for(w->cd, w->pred, w->arg);
}

int corio_condition_wait_for_timeout(corio_condition *c, corio_predicate_fn pred, void *arg,
                                     int64_t timeout_ns)
{
    struct corio__cond *cd = cond_of(c);
    if (!cd || !pred || timeout_ns < 0)
        return -EINVAL;
    if (!corio_current_task())
        return -EPERM;
    if (!corio_lock_locked(cd->lock))
        return -EINVAL;
    if (pred(arg))
        return 0;   /* no wait: no scope */
    struct wait_for_args w = { cd, pred, arg };
    return corio__sync_timed(timeout_ns, wait_for_op, &w);
}

int corio_condition_notify(corio_condition *c, unsigned n)
{
    struct corio__cond *cd = cond_of(c);
    if (!cd || !corio_lock_locked(cd->lock))
        return -EINVAL;   /* asyncio: RuntimeError('cannot notify on un-acquired lock') */
    return notify(cd, n);
}

int corio_condition_notify_all(corio_condition *c)
{
    return corio_condition_notify(c, UINT_MAX);
}
