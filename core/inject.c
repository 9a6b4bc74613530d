/* core/inject.c - the global injection queue: an intrusive FIFO under a mutex.
 *
 * Protocol: every function may be called from any thread. head, tail and the
 * nodes' ->next links of queued items belong to the lock; a node's ->next is
 * the queue's from the push until the pop hands the node back (pop clears it,
 * pop_batch NULL-terminates the chain it returns). len is written only under
 * the lock and read anywhere without it, as a hint: a reader that acts on it
 * takes the lock and looks again, so len publishes nothing and its stores are
 * relaxed. A worker that must not miss an item it was told about pairs its
 * own fences around the push and the check (the scheduler's parking protocol),
 * not this word.
 *
 * Invariants under the lock: head == NULL iff tail == NULL iff len == 0;
 * following ->next from head reaches tail after len - 1 steps, and
 * tail->next == NULL.
 */
#include "inject.h"

#include <assert.h>

int corio__inject_init(struct corio__inject *q)
{
    int err = pthread_mutex_init(&q->lock, NULL);

    if (err != 0)
        return -err;
    q->head = NULL;
    q->tail = NULL;
    atomic_init(&q->len, 0);
    return 0;
}

void corio__inject_fini(struct corio__inject *q)
{
    pthread_mutex_destroy(&q->lock);
}

/* Under the lock. Relaxed: the lock orders the writers, and readers treat
 * len as a hint (see the essay). */
static void len_add(struct corio__inject *q, size_t delta)
{
    size_t len = atomic_load_explicit(&q->len, memory_order_relaxed);

    atomic_store_explicit(&q->len, len + delta, memory_order_relaxed);
}

static void len_sub(struct corio__inject *q, size_t delta)
{
    size_t len = atomic_load_explicit(&q->len, memory_order_relaxed);

    assert(len >= delta);
    atomic_store_explicit(&q->len, len - delta, memory_order_relaxed);
}

/* Under the lock: appends the chain first..last (last->next == NULL). */
static void append(struct corio__inject *q, struct corio__qnode *first, struct corio__qnode *last)
{
    if (q->tail != NULL)
        q->tail->next = first;
    else
        q->head = first;
    q->tail = last;
}

void corio__inject_push(struct corio__inject *q, struct corio__qnode *n)
{
    n->next = NULL;
    pthread_mutex_lock(&q->lock);
    append(q, n, n);
    len_add(q, 1);
    pthread_mutex_unlock(&q->lock);
}

void corio__inject_push_batch(struct corio__inject *q, struct corio__qnode *first,
                              struct corio__qnode *last, size_t count)
{
    if (count == 0)
        return;
    last->next = NULL;
    pthread_mutex_lock(&q->lock);
    append(q, first, last);
    len_add(q, count);
    pthread_mutex_unlock(&q->lock);
}

struct corio__qnode *corio__inject_pop(struct corio__inject *q)
{
    /* Skipping the lock when len reads 0 is the same as popping just before
     * a concurrent push. */
    if (corio__inject_is_empty(q))
        return NULL;

    pthread_mutex_lock(&q->lock);
    struct corio__qnode *n = q->head;
    if (n != NULL) {
        q->head = n->next;
        if (q->head == NULL)
            q->tail = NULL;
        len_sub(q, 1);
    }
    pthread_mutex_unlock(&q->lock);

    if (n != NULL)
        n->next = NULL;
    return n;
}

struct corio__qnode *corio__inject_pop_batch(struct corio__inject *q, size_t max, size_t *count)
{
    *count = 0;
    if (max == 0 || corio__inject_is_empty(q))
        return NULL;

    pthread_mutex_lock(&q->lock);
    size_t len = atomic_load_explicit(&q->len, memory_order_relaxed);
    size_t take = len < max ? len : max;
    struct corio__qnode *first = q->head, *last;

    if (take == 0) {
        pthread_mutex_unlock(&q->lock);
        return NULL;
    }
    if (take == len) {
        /* The whole list: O(1), no walk under the lock. */
        last = q->tail;
        q->head = NULL;
        q->tail = NULL;
    } else {
        last = first;
        for (size_t i = 1; i < take; i++)
            last = last->next;
        q->head = last->next;
    }
    len_sub(q, take);
    pthread_mutex_unlock(&q->lock);

    last->next = NULL;
    *count = take;
    return first;
}
