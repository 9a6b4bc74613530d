/* core/waitq.h - the FIFO of tasks waiting on a synchronization primitive
 * (Lock, Event, Condition, Semaphore, Barrier, Queue).
 *
 * A primitive owns one corio__spin lock that guards its own state and its
 * wait queues. A waiting task puts a node that lives on its own stack at the
 * tail, unlocks and parks; a waker, under the same lock, takes nodes off
 * the queue, and wakes them after unlocking. Every node goes
 *     WAITING ──(waker, under the lock: unlinked)──▶ WAKING ──(waker, after
 *     corio__task_wake())──▶ WOKEN
 * and the waiter returns only once it reads WOKEN: the waker's last touch of
 * the node (and of the task, which may end right after) is that store, so a
 * node on a stack and a task that finishes at once are both safe. WAKING
 * lasts a few instructions; a waiter that sees it yields until it ends.
 *
 * Being woken means whatever the primitive defines (the lock was handed
 * over, an item was put, the event was set): the waker decides under the
 * lock, so nothing can overtake a woken waiter. A waiter that is cancelled
 * races its waker under the lock: either it unlinks itself first
 * (corio__wq_wait() returns -ECANCELED, and nothing was given to it), or the
 * waker unlinked it first, or the cancellation arrived after the wake but
 * before the task ran again (corio__wq_wait() returns
 * CORIO__WQ_WOKEN_CANCELLED, as asyncio raises CancelledError at an await
 * whose future is already set): then the primitive passes what it was
 * given on to the next waiter, or keeps it and re-arms the cancellation for
 * the task's next await. So no wake-up is ever lost.
 *
 * Lifetime. A woken waiter may still take the primitive's lock (settling a
 * cancellation) and the primitive may still pass a grant on after the wait,
 * so the primitive's memory must outlive every waiting call, not only the
 * queue's nodes: corio__wq_push() counts the call in ->entered, the
 * primitive calls corio__wq_leave() as its last touch of itself (counted in
 * ->left), and its close refuses (-EBUSY) while corio__wq_quiet() is false.
 * Two counters rather than one that goes up and down: the push side holds
 * the lock, so its count is a plain increment, and only the leave (outside
 * the lock) pays a locked instruction.
 *
 * Only tasks wait (plain threads use the concurrent futures of pool/).
 */
#ifndef CORIO_CORE_WAITQ_H
#define CORIO_CORE_WAITQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spin.h"

struct corio_task;

enum corio__wq_state { WQ_WAITING = 0, WQ_WAKING, WQ_WOKEN };

/* corio__wq_wait(): woken, but a cancellation arrived too (it was consumed). */
#define CORIO__WQ_WOKEN_CANCELLED 1

struct corio__wq_node {
    struct corio__wq_node *next, *prev;
    struct corio_task *task;
    _Atomic uint32_t state;        /* enum corio__wq_state */
    uintptr_t data;                /* the primitive's: what was asked or given */
};

struct corio__waitq {
    struct corio__wq_node *head, *tail;
    size_t n;
    uint32_t entered;              /* waiting calls pushed, under the lock (see Lifetime) */
    _Atomic uint32_t left;         /* of those, the ones that left (any thread) */
};

/* Nodes taken off a queue, to wake after the lock is released (linked
 * through ->next, in queue order). */
struct corio__wq_batch {
    struct corio__wq_node *head, *tail;
};

static inline void corio__wq_init(struct corio__waitq *q)
{
    q->head = q->tail = NULL;
    q->n = 0;
    q->entered = 0;
    atomic_init(&q->left, 0);
}

/* The waiting call that pushed a node no longer touches the primitive
 * (its last touch; any thread, lock held or not). */
static inline void corio__wq_leave(struct corio__waitq *q)
{
    /* Pairs with the acquire load in corio__wq_quiet(). */
    atomic_fetch_add_explicit(&q->left, 1, memory_order_release);
}

/* Under the lock: no node queued and no waiting call inside, so the
 * primitive may be freed once the lock is released. */
static inline bool corio__wq_quiet(const struct corio__waitq *q)
{
    return !q->head && atomic_load_explicit(&q->left, memory_order_acquire) == q->entered;
}

static inline bool corio__wq_empty(const struct corio__waitq *q)
{
    return q->head == NULL;
}

static inline void corio__wq_batch_init(struct corio__wq_batch *b)
{
    b->head = b->tail = NULL;
}

/* Under the lock: append @n for @task (normally the current task); the
 * call counts as inside until corio__wq_leave(). */
void corio__wq_push(struct corio__waitq *q, struct corio__wq_node *n, struct corio_task *task);

/* Under the lock: take the first waiter off @q (NULL when empty) and mark
 * it WAKING; the caller decides what it was given (->data), adds it to a
 * batch and wakes the batch after unlocking. */
struct corio__wq_node *corio__wq_pop(struct corio__waitq *q);

/* Under the lock: take @n (linked on @q) off and mark it WAKING. */
void corio__wq_take(struct corio__waitq *q, struct corio__wq_node *n);

/* Under the lock: corio__wq_pop() + append to @b; returns the node or NULL. */
struct corio__wq_node *corio__wq_pop_to(struct corio__waitq *q, struct corio__wq_batch *b);

/* Under the lock: append a node already taken (WAKING) to @b. */
void corio__wq_batch_add(struct corio__wq_batch *b, struct corio__wq_node *n);

/* After unlocking: wake every node of @b. The nodes must not be touched
 * afterwards (their tasks may have returned). Any thread. */
void corio__wq_wake_batch(struct corio__wq_batch *b);

/* Called by the current task with @lk held and @n pushed on @q: unlocks,
 * parks until woken, and returns with @lk NOT held:
 *   0                         woken (what the primitive gave is in n->data)
 *   -ECANCELED                cancelled while waiting; @n was unlinked and
 *                             was given nothing
 *   CORIO__WQ_WOKEN_CANCELLED woken, and a cancellation arrived too: the
 *                             caller passes the grant on (then returns
 *                             -ECANCELED) or keeps it and calls
 *                             corio__wq_rearm_cancel().
 * Call from: a task. */
int corio__wq_wait(struct corio__waitq *q, struct corio__spin *lk, struct corio__wq_node *n);

/* Deliver the cancellation consumed by corio__wq_wait() at the current
 * task's next await instead. */
void corio__wq_rearm_cancel(void);

#endif
