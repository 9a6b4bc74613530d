/* core/inject.h - the global injection queue.
 *
 * Unbounded MPMC FIFO of intrusive nodes under one lock (tokio's design): any
 * thread pushes (a single item, or a local queue's overflow batch of 129 in one
 * lock hold); workers pop one, or a batch when idle. A linked list under a
 * lock is used instead of ck_ring/ck_fifo because it is unbounded (a push can
 * never fail, so a wake-up can never be lost to a full ring), takes a batch in
 * O(1), and needs no allocation per item. len is readable without the lock so
 * idle workers can skip it cheaply.
 */
#ifndef CORIO_CORE_INJECT_H
#define CORIO_CORE_INJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "qnode.h"

struct corio__inject {
    pthread_mutex_t lock;
    struct corio__qnode *head, *tail;   /* under lock */
    _Atomic size_t len;                 /* written under lock, read anywhere */
};

int corio__inject_init(struct corio__inject *q);
void corio__inject_fini(struct corio__inject *q);

/* Any thread. */
void corio__inject_push(struct corio__inject *q, struct corio__qnode *n);
/* Any thread: a chain first..last of @count items linked by ->next. */
void corio__inject_push_batch(struct corio__inject *q, struct corio__qnode *first,
                              struct corio__qnode *last, size_t count);
/* Any thread: the oldest item, or NULL. */
struct corio__qnode *corio__inject_pop(struct corio__inject *q);
/* Any thread: up to @max oldest items as a chain (->next of the last is NULL);
 * *@count receives how many. NULL when empty. */
struct corio__qnode *corio__inject_pop_batch(struct corio__inject *q, size_t max, size_t *count);

static inline size_t corio__inject_len(struct corio__inject *q)
{
    return atomic_load_explicit(&q->len, memory_order_acquire);
}
static inline bool corio__inject_is_empty(struct corio__inject *q)
{
    return corio__inject_len(q) == 0;
}

#endif
