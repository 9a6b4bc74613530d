/* core/inject.c - the global injection queue: a ring of node pointers, and a
 * spill list for when the ring cannot grow, under one mutex.
 *
 * Protocol: every function may be called from any thread. Everything but len
 * belongs to the lock: slot, cap, head, used, the spill list, and the ->next
 * links of the nodes on it. len is written only under the lock and read
 * anywhere without it, as a hint: a reader that acts on it takes the lock and
 * looks again, so len publishes nothing and its stores are relaxed. A worker
 * that must not miss an item it was told about pairs its own fences around
 * the push and the check (the scheduler's parking protocol), not this word.
 * The items themselves are published by the lock: a pusher's writes to an
 * item happen before its unlock, which happens before the popper's lock.
 *
 * The ring. slot[] has cap entries (a power of two, at least
 * CORIO_INJECT_INIT_CAP); the queued items are slot[(head + i) & (cap - 1)]
 * for i in [0, used), oldest first. Push and pop copy pointers with at most
 * two memcpy()s each (one when the range does not wrap) and never touch a
 * node. A push that does not fit doubles cap (realloc, then the wrapped part
 * moves up so the items are contiguous from head again), under the lock.
 *
 * The spill list. Only when growing fails, the items that do not fit are
 * linked through ->next from spill_head to spill_tail. FIFO is kept by one
 * rule: every spilled item is newer than every ring item. So while the spill
 * list is non-empty, every push goes to its tail, even when the ring has room
 * again; pops take from the ring first and from the spill list once the ring
 * is empty. When pops have drained the spill list, pushes use the ring (and
 * try to grow it) again. Spill pushes and pops walk nodes; that is the
 * out-of-memory path only.
 *
 * Invariants under the lock: used <= cap; spill_head == NULL iff
 * spill_tail == NULL; spill_tail->next == NULL; len == used + the number of
 * spilled nodes; the spill list non-empty implies it was entered while the
 * ring was full (its items are newer than all ring items).
 */
#include "inject.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *(*corio__inject_realloc)(void *ptr, size_t size) = realloc;

_Static_assert((CORIO_INJECT_INIT_CAP & (CORIO_INJECT_INIT_CAP - 1)) == 0,
               "the ring indexes with & (cap - 1)");

int corio__inject_init(struct corio__inject *q)
{
    int err = pthread_mutex_init(&q->lock, NULL);

    if (err != 0)
        return -err;
    q->slot = corio__inject_realloc(NULL, CORIO_INJECT_INIT_CAP * sizeof(*q->slot));
    if (q->slot == NULL) {
        pthread_mutex_destroy(&q->lock);
        return -ENOMEM;
    }
    q->cap = CORIO_INJECT_INIT_CAP;
    q->head = 0;
    q->used = 0;
    q->spill_head = NULL;
    q->spill_tail = NULL;
    atomic_init(&q->len, 0);
    return 0;
}

void corio__inject_fini(struct corio__inject *q)
{
    free(q->slot);
    q->slot = NULL;
    pthread_mutex_destroy(&q->lock);
}

static inline size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
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

/* Under the lock: makes the ring hold at least @need more items by doubling
 * cap. False when the allocator refused or the size would overflow; the ring
 * is then unchanged (realloc leaves the old block alone when it fails). */
static bool ring_reserve(struct corio__inject *q, size_t need)
{
    size_t old_cap = q->cap, cap = old_cap;

    if (cap - q->used >= need)
        return true;
    while (cap - q->used < need) {
        if (cap > SIZE_MAX / 2 / sizeof(*q->slot))
            return false;
        cap *= 2;
    }

    struct corio__qnode **slot = corio__inject_realloc(q->slot, cap * sizeof(*slot));
    if (slot == NULL)
        return false;

    /* The items were [head, head + used) mod old_cap. Those past old_cap
     * wrapped to [0, end - old_cap); copy them to just after old_cap so the
     * range is contiguous mod the new cap: end < 2 * old_cap <= cap. */
    size_t end = q->head + q->used;
    if (end > old_cap)
        memcpy(slot + old_cap, slot, (end - old_cap) * sizeof(*slot));
    q->slot = slot;
    q->cap = cap;
    return true;
}

/* Under the lock: appends @nodes[0..@count) to the ring, which has room. */
static void ring_put(struct corio__inject *q, struct corio__qnode *const *nodes, size_t count)
{
    size_t mask = q->cap - 1, tail = (q->head + q->used) & mask;
    size_t first = min_size(count, q->cap - tail);

    assert(count <= q->cap - q->used);
    memcpy(q->slot + tail, nodes, first * sizeof(*nodes));
    memcpy(q->slot, nodes + first, (count - first) * sizeof(*nodes));
    q->used += count;
}

/* Under the lock: moves the @count <= used oldest ring items to @out. */
static void ring_take(struct corio__inject *q, struct corio__qnode **out, size_t count)
{
    size_t first = min_size(count, q->cap - q->head);

    assert(count <= q->used);
    memcpy(out, q->slot + q->head, first * sizeof(*out));
    memcpy(out + first, q->slot, (count - first) * sizeof(*out));
    q->head = (q->head + count) & (q->cap - 1);
    q->used -= count;
}

/* Under the lock: links @nodes[0..@count) onto the spill tail. The out-of-
 * memory path: it writes every node's ->next. */
static void spill_put(struct corio__inject *q, struct corio__qnode *const *nodes, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct corio__qnode *n = nodes[i];

        n->next = NULL;
        if (q->spill_tail != NULL)
            q->spill_tail->next = n;
        else
            q->spill_head = n;
        q->spill_tail = n;
    }
}

/* Under the lock: moves up to @max spilled items to @out; returns how many.
 * Walks the list, one node at a time. */
static size_t spill_take(struct corio__inject *q, struct corio__qnode **out, size_t max)
{
    size_t got = 0;

    while (got < max && q->spill_head != NULL) {
        out[got++] = q->spill_head;
        q->spill_head = q->spill_head->next;
    }
    if (q->spill_head == NULL)
        q->spill_tail = NULL;
    return got;
}

/* Under the lock: what push and push_batch share. */
static void push_locked(struct corio__inject *q, struct corio__qnode *const *nodes, size_t count)
{
    size_t in_ring = 0;

    /* Spilled items are newer than the ring's; while there are any, the
     * ring takes nothing new (see the essay). */
    if (q->spill_head == NULL) {
        /* On failure, fill what room there is and spill only the rest: the
         * ring's part is still older than the spill's. */
        ring_reserve(q, count);
        in_ring = min_size(count, q->cap - q->used);
        ring_put(q, nodes, in_ring);
    }
    spill_put(q, nodes + in_ring, count - in_ring);
    len_add(q, count);
}

void corio__inject_push(struct corio__inject *q, struct corio__qnode *n)
{
    pthread_mutex_lock(&q->lock);
    push_locked(q, &n, 1);
    pthread_mutex_unlock(&q->lock);
}

void corio__inject_push_batch(struct corio__inject *q, struct corio__qnode *const *nodes,
                              size_t count)
{
    if (count == 0)
        return;
    pthread_mutex_lock(&q->lock);
    push_locked(q, nodes, count);
    pthread_mutex_unlock(&q->lock);
}

size_t corio__inject_pop_batch(struct corio__inject *q, struct corio__qnode **out, size_t max)
{
    /* Skipping the lock when len reads 0 is the same as popping just before
     * a concurrent push. */
    if (max == 0 || corio__inject_is_empty(q))
        return 0;

    pthread_mutex_lock(&q->lock);
    size_t got = min_size(max, q->used);
    ring_take(q, out, got);
    /* Only once the ring is empty: spilled items are the newest. */
    if (got < max)
        got += spill_take(q, out + got, max - got);
    len_sub(q, got);
    pthread_mutex_unlock(&q->lock);
    return got;
}

struct corio__qnode *corio__inject_pop(struct corio__inject *q)
{
    struct corio__qnode *n;

    return corio__inject_pop_batch(q, &n, 1) == 1 ? n : NULL;
}
