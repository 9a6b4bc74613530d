/* core/event.c - asyncio.Event: a flag that tasks wait for.
 *
 * The flag is an atomic read without the spinlock by is_set() and by
 * wait()'s fast path; it changes only under the spinlock, together with the
 * queue: set() raises it and takes every waiter off in one go, so a task
 * that queued before the set is always woken by it and one that looks after
 * it never queues. Woken waiters return 0 even if the event was cleared
 * before they ran (asyncio: wait() returns True once set() resolved its
 * future). A waiter cancelled as it was being woken returns -ECANCELED, as
 * asyncio raises CancelledError there: a broadcast has nothing to pass on.
 */
#include <string.h>

#include "sync.h"


static struct corio__event *event_of(const corio_event *e)
{
    struct corio__event *ev = (struct corio__event *)(void *)(uintptr_t)e;
    return ev && ev->magic == CORIO__EVENT_MAGIC ? ev : NULL;
}

int corio_event_init(corio_event *e)
{
    if (!e)
        return -EINVAL;
    struct corio__event *ev = (struct corio__event *)(void *)e;
    memset(e, 0, sizeof *e);
    atomic_init(&ev->flag, false);
    corio__spin_init(&ev->spin);
    corio__wq_init(&ev->wq);
    ev->magic = CORIO__EVENT_MAGIC;
    return 0;
}

int corio_event_close(corio_event *e)
{
    struct corio__event *ev = event_of(e);
    if (!ev)
        return -EINVAL;
    corio__spin_lock(&ev->spin);
    int rc = corio__wq_quiet(&ev->wq) ? 0 : -EBUSY;
    if (rc == 0)
        ev->magic = 0;
    corio__spin_unlock(&ev->spin);
    return rc;
}

int corio_event_set(corio_event *e)
{
    struct corio__event *ev = event_of(e);
    if (!ev)
        return -EINVAL;
    struct corio__wq_batch b;
    corio__wq_batch_init(&b);
    corio__spin_lock(&ev->spin);
    if (!atomic_load_explicit(&ev->flag, memory_order_relaxed)) {
        /* Pairs with the acquire loads in is_set() and wait(). */
        atomic_store_explicit(&ev->flag, true, memory_order_release);
        while (corio__wq_pop_to(&ev->wq, &b))
            ;
    }
    corio__spin_unlock(&ev->spin);
    corio__wq_wake_batch(&b);
    return 0;
}

int corio_event_clear(corio_event *e)
{
    struct corio__event *ev = event_of(e);
    if (!ev)
        return -EINVAL;
    corio__spin_lock(&ev->spin);
    atomic_store_explicit(&ev->flag, false, memory_order_relaxed);
    corio__spin_unlock(&ev->spin);
    return 0;
}

bool corio_event_is_set(const corio_event *e)
{
    struct corio__event *ev = event_of(e);
    return ev && atomic_load_explicit(&ev->flag, memory_order_acquire);
}

int corio_event_wait(corio_event *e)
{
    struct corio__event *ev = event_of(e);
    if (!ev)
        return -EINVAL;
    if (atomic_load_explicit(&ev->flag, memory_order_acquire))
        return 0;
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;
    corio__spin_lock(&ev->spin);
    if (atomic_load_explicit(&ev->flag, memory_order_relaxed)) {
        corio__spin_unlock(&ev->spin);
        return 0;
    }
    struct corio__wq_node node;
    node.data = 0;
    corio__wq_push(&ev->wq, &node, t);
    int rc = corio__wq_wait(&ev->wq, &ev->spin, &node);
    corio__wq_leave(&ev->wq);
    return rc == 0 ? 0 : -ECANCELED;
}

static int wait_op(void *e)
{
    return corio_event_wait(e);
}

int corio_event_wait_timeout(corio_event *e, int64_t timeout_ns)
{
    struct corio__event *ev = event_of(e);
    if (!ev || timeout_ns < 0)
        return -EINVAL;
    if (atomic_load_explicit(&ev->flag, memory_order_acquire))
        return 0;
    if (!corio_current_task())
        return -EPERM;
    return corio__sync_timed(timeout_ns, wait_op, e);
}
