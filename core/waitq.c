/* core/waitq.c - waiting on a primitive: the protocol is in waitq.h. */
#include <sched.h>

#include "internal.h"
#include "waitq.h"

void corio__wq_push(struct corio__waitq *q, struct corio__wq_node *n, struct corio_task *task)
{
    n->task = task;
    q->entered++;   /* under the lock (waitq.h, Lifetime) */
    n->next = NULL;
    n->prev = q->tail;
    atomic_store_explicit(&n->state, WQ_WAITING, memory_order_relaxed);
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->n++;
}

static void unlink_node(struct corio__waitq *q, struct corio__wq_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        q->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        q->tail = n->prev;
    n->next = n->prev = NULL;
    q->n--;
}

void corio__wq_take(struct corio__waitq *q, struct corio__wq_node *n)
{
    unlink_node(q, n);
    atomic_store_explicit(&n->state, WQ_WAKING, memory_order_relaxed);
}

struct corio__wq_node *corio__wq_pop(struct corio__waitq *q)
{
    struct corio__wq_node *n = q->head;
    if (n)
        corio__wq_take(q, n);
    return n;
}

void corio__wq_batch_add(struct corio__wq_batch *b, struct corio__wq_node *n)
{
    n->next = NULL;
    if (b->tail)
        b->tail->next = n;
    else
        b->head = n;
    b->tail = n;
}

struct corio__wq_node *corio__wq_pop_to(struct corio__waitq *q, struct corio__wq_batch *b)
{
    struct corio__wq_node *n = corio__wq_pop(q);
    if (n)
        corio__wq_batch_add(b, n);
    return n;
}

void corio__wq_wake_batch(struct corio__wq_batch *b)
{
    struct corio__wq_node *n = b->head;
    b->head = b->tail = NULL;
    while (n) {
        /* Read before WOKEN: from that store on, the node may be gone. */
        struct corio__wq_node *next = n->next;
        corio__task_wake(n->task);
        /* Pairs with the acquire load in corio__wq_wait(): the waiter sees
         * what the waker decided under the lock (->data) and returns. */
        atomic_store_explicit(&n->state, WQ_WOKEN, memory_order_release);
        n = next;
    }
}

/* The waker is between its two stores (WAKING -> WOKEN): a few
 * instructions, unless its thread was preempted there. */
static void wait_woken(struct corio__wq_node *n)
{
    while (atomic_load_explicit(&n->state, memory_order_acquire) != WQ_WOKEN)
        sched_yield();
}

/* asyncio: a task cancelled after its future was set still raises
 * CancelledError at that await (the primitive then passes the grant on). */
static int woken(struct corio_task *t)
{
    return corio__task_take_cancel(t) ? CORIO__WQ_WOKEN_CANCELLED : 0;
}

int corio__wq_wait(struct corio__waitq *q, struct corio__spin *lk, struct corio__wq_node *n)
{
    struct corio_task *t = n->task;
    corio__spin_unlock(lk);
    for (;;) {
        uint32_t s = atomic_load_explicit(&n->state, memory_order_acquire);
        if (s == WQ_WOKEN)
            return woken(t);
        if (s == WQ_WAITING && corio__task_take_cancel(t)) {
            corio__spin_lock(lk);
            if (atomic_load_explicit(&n->state, memory_order_relaxed) == WQ_WAITING) {
                unlink_node(q, n);
                corio__spin_unlock(lk);
                return -ECANCELED;
            }
            corio__spin_unlock(lk);
            wait_woken(n);
            return CORIO__WQ_WOKEN_CANCELLED;
        }
        if (s == WQ_WAKING) {
            wait_woken(n);
            return woken(t);
        }
        /* A wake that arrives before the switch completes sets NOTIFIED and
         * this returns at once; the loop re-reads the state. */
        corio__task_park(t, PARK_SYNC);
    }
}

void corio__wq_rearm_cancel(void)
{
    struct corio_task *t = corio_current_task();
    if (t)
        /* Pairs with the exchange in corio__task_take_cancel(). */
        atomic_store_explicit(&t->must_cancel, true, memory_order_release);
}
