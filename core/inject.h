/* core/inject.h - the global injection queue.
 *
 * Unbounded MPMC FIFO of node pointers under one lock (tokio's design, with an
 * array instead of tokio's linked list): any thread pushes (a single item, or
 * a local queue's overflow batch of 129 in one lock hold); workers pop one, or
 * a batch when idle. The items sit in a growable ring of pointers, so a batch
 * moves by copying pointers and the queue never reads a node: the nodes were
 * just written by the pushing core, and walking ->next links under the lock
 * cost one serialized cross-core miss per item (27% of the W1 spawn benchmark
 * with the list this replaced).
 *
 * A push never fails, so a wake-up is never lost to a full queue: when the
 * ring is full and cannot grow (the allocator returned NULL), items go to a
 * "spill" list linked through qnode->next, behind everything in the ring,
 * until pops have drained it. len is readable without the lock so idle
 * workers can skip the queue cheaply.
 *
 * The queue owns a node's ->next only while the node is on the spill list;
 * the ring path neither reads nor writes it, and a popped node's ->next holds
 * whatever it held last (pop does not clear it: that would be a write to a
 * node another core owns).
 */
#ifndef CORIO_CORE_INJECT_H
#define CORIO_CORE_INJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "qnode.h"

/* 8 KiB: room for 7 overflow batches of 129 before the first growth, which
 * covers a consumer a few batches behind; a deeper backlog doubles it (log2
 * times per queue life, never shrunk: 8 bytes per item at the peak backlog,
 * against the item's own task and stack). */
#define CORIO_INJECT_INIT_CAP 1024

struct corio__inject {
    pthread_mutex_t lock;
    struct corio__qnode **slot;         /* under lock: the ring, cap entries */
    size_t cap;                         /* under lock: a power of two */
    size_t head;                        /* under lock: index of the oldest ring item */
    size_t used;                        /* under lock: items in the ring */
    struct corio__qnode *spill_head;    /* under lock: overflow of a ring that */
    struct corio__qnode *spill_tail;    /*   could not grow, newer than the ring */
    _Atomic size_t len;                 /* ring + spill; written under lock, read anywhere */
};

/* The allocator the ring grows with (realloc semantics; what it returns is
 * released with free()). Tests point it at one that fails, to reach the spill
 * path; set it only while no other thread is using any injection queue. */
extern void *(*corio__inject_realloc)(void *ptr, size_t size);

/* corio__inject_init - an empty queue with a ring of CORIO_INJECT_INIT_CAP.
 * Returns 0, -ENOMEM, or pthread_mutex_init()'s error negated. */
int corio__inject_init(struct corio__inject *q);
/* corio__inject_fini - releases the ring. Items still queued are the
 * caller's; the queue never owned them. */
void corio__inject_fini(struct corio__inject *q);

/* corio__inject_push - append @n. Never fails.
 * Call from: any thread. */
void corio__inject_push(struct corio__inject *q, struct corio__qnode *n);

/* corio__inject_push_batch - append @nodes[0..@count), oldest first, in one
 * lock hold. Never fails; @nodes is only read.
 * Call from: any thread. */
void corio__inject_push_batch(struct corio__inject *q, struct corio__qnode *const *nodes,
                              size_t count);

/* corio__inject_pop - the oldest item, or NULL when empty.
 * Call from: any thread. */
struct corio__qnode *corio__inject_pop(struct corio__inject *q);

/* corio__inject_pop_batch - move up to @max oldest items to @out, oldest
 * first, in one lock hold. Returns how many (0 when empty or @max is 0).
 * Call from: any thread. */
size_t corio__inject_pop_batch(struct corio__inject *q, struct corio__qnode **out, size_t max);

/* corio__inject_len - items queued, a hint: it may be stale by the time the
 * caller acts, and it orders nothing (see core/inject.c).
 * Call from: any thread. */
static inline size_t corio__inject_len(struct corio__inject *q)
{
    /* Relaxed: len is stored relaxed under the lock and publishes nothing;
     * a caller that acts on it takes the lock, which orders the items. */
    return atomic_load_explicit(&q->len, memory_order_relaxed);
}
static inline bool corio__inject_is_empty(struct corio__inject *q)
{
    return corio__inject_len(q) == 0;
}

#endif
