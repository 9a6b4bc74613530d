/* core/runq.c - a worker's local run queue (tokio's multi_thread/queue.rs).
 *
 * Indices. head packs two 32-bit positions, steal (high half) and real (low
 * half); tail is one 32-bit position. Positions count forever and wrap mod
 * 2^32; a slot is buf[pos & CORIO_RUNQ_MASK]. The queued items are the
 * positions [real, tail); [steal, real) is a range a thief has claimed and is
 * still copying out. Invariants, for every value of head and the tail current
 * with it:
 *   tail - steal <= CORIO_RUNQ_CAP        (the owner never overwrites a slot
 *                                          a thief may still read)
 *   steal == real, except during a steal  (so at most one thief at a time)
 *
 * Who writes what:
 *   tail      the owner only: push_owner, push_batch_owner, steal_into (as
 *             the owner of dst). Plain store with release.
 *   head      CAS by everyone: the owner's pop (real += 1, and steal too when
 *             no steal is in progress), the owner's overflow (both += CAP/2,
 *             only when steal == real), a thief's claim (real += n, steal left
 *             behind) and the same thief's end (steal = real).
 *   buf[]     written by the owner only, at positions in [tail, steal + CAP);
 *             read by the owner (pop, overflow) and by the thief that claimed
 *             the position. The slots are _Atomic and accessed relaxed only so
 *             that ThreadSanitizer sees no race; their ordering comes from head
 *             and tail as described at each access. (So TSan checks that the
 *             items are published through tail, but cannot see a slot reused
 *             too early: that rests on ordering 2 below.)
 * "The owner" is one thread for the queue's life, or a hand-off between
 * threads that is itself a happens-before edge (a thread join, a lock): the
 * owner's relaxed loads of tail and of its own slots rely on it.
 *
 * The two orderings everything rests on:
 *   1. tail's release store  ->  a thief's acquire load of tail: the slots and
 *      the items they point to are visible before the thief copies them.
 *   2. a thief's release CAS that sets steal = real  ->  the owner's acquire
 *      load of head before it writes a slot: the thief's reads of the slots it
 *      took happen before the owner reuses them.
 * And one that keeps a reader's arithmetic sane: every CAS that moves real
 * forward is a release, and every load of head by another thread is an
 * acquire, so the tail that reader loads next is never behind real.
 *
 * Overflow (push on a full ring). If steal == real, the owner claims the
 * oldest CORIO_RUNQ_CAP/2 positions with one CAS on head, copies their
 * pointers and the new item's into an array on its stack, and hands that to
 * the injection queue in one corio__inject_push_batch(). No node is touched,
 * so the cost does not depend on which core wrote the items last (one that
 * was stolen into this queue would be a cache miss each). If that CAS loses
 * to a thief, the thief is making room: retry. If a steal is already in
 * progress (steal != real) the ring will have room soon, so only the new item
 * goes to the injection queue; push_owner() returns 1 in both cases.
 */
#include "runq.h"

#include <assert.h>
#include <stddef.h>

#include "inject.h"

static inline uint32_t unpack_steal(uint64_t head)
{
    return (uint32_t)(head >> 32);
}

static inline uint32_t unpack_real(uint64_t head)
{
    return (uint32_t)head;
}

static inline uint64_t pack(uint32_t steal, uint32_t real)
{
    return (uint64_t)steal << 32 | real;
}

static inline struct corio__qnode *slot_get(const struct corio__runq *q, uint32_t pos)
{
    return atomic_load_explicit(&q->buf[pos & CORIO_RUNQ_MASK], memory_order_relaxed);
}

static inline void slot_set(struct corio__runq *q, uint32_t pos, struct corio__qnode *n)
{
    atomic_store_explicit(&q->buf[pos & CORIO_RUNQ_MASK], n, memory_order_relaxed);
}

/* The owner is the only writer of tail, so its own loads of it need no
 * ordering. */
static inline uint32_t tail_owner(const struct corio__runq *q)
{
    return atomic_load_explicit(&q->tail, memory_order_relaxed);
}

void corio__runq_init(struct corio__runq *q)
{
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    for (unsigned i = 0; i < CORIO_RUNQ_CAP; i++)
        atomic_init(&q->buf[i], NULL);
}

/* Moves the oldest CORIO_RUNQ_CAP/2 items of the full ring @q, plus @n, to
 * @overflow. @head is real == steal as just loaded; false when the claim lost
 * to a thief (the caller retries). */
static bool push_overflow(struct corio__runq *q, struct corio__qnode *n, uint32_t head,
                          uint32_t tail, struct corio__inject *overflow)
{
    const uint32_t take = CORIO_RUNQ_CAP / 2;
    uint64_t expect = pack(head, head);

    assert((uint32_t)(tail - head) == CORIO_RUNQ_CAP);
    (void)tail;
    /* Release: pairs with the acquire loads of head in steal_batch() and
     * corio__runq_len(), so a thread that sees real moved past these slots
     * also sees a tail at least that far. The slots themselves need nothing:
     * only this thread wrote them, and no thief can hold any of them because
     * steal == real. Relaxed on failure: the caller reloads head. */
    if (!atomic_compare_exchange_strong_explicit(&q->head, &expect,
                                                 pack(head + take, head + take),
                                                 memory_order_release, memory_order_relaxed))
        return false;

    /* 1032 bytes of stack: the caller may be a task, and the smallest task
     * stack is 16 KiB. */
    struct corio__qnode *batch[CORIO_RUNQ_CAP / 2 + 1];
    for (uint32_t i = 0; i < take; i++)
        batch[i] = slot_get(q, head + i);
    batch[take] = n;
    corio__inject_push_batch(overflow, batch, take + 1);
    return true;
}

int corio__runq_push_owner(struct corio__runq *q, struct corio__qnode *n,
                           struct corio__inject *overflow)
{
    uint32_t tail = tail_owner(q);

    for (;;) {
        /* Acquire: pairs with the release CAS that ends a steal in
         * steal_batch(); the thief's reads of the slots it took happen before
         * our store into one of them below. */
        uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t steal = unpack_steal(head), real = unpack_real(head);

        if ((uint32_t)(tail - steal) < CORIO_RUNQ_CAP)
            break;
        if (steal != real) {
            /* A thief is copying [steal, real) out and will free that room;
             * moving half the ring now would be wasted work. */
            corio__inject_push(overflow, n);
            return 1;
        }
        if (push_overflow(q, n, real, tail, overflow))
            return 1;
    }

    slot_set(q, tail, n);
    /* Release: pairs with the acquire load of tail in steal_batch(); a thief
     * that sees the new tail sees the slot and the item it points to. */
    atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
    return 0;
}

void corio__runq_push_batch_owner(struct corio__runq *q, struct corio__qnode *const *nodes,
                                  unsigned count)
{
    if (count == 0)
        return;

    uint32_t tail = tail_owner(q);
    /* Acquire: pairs with the release CAS that ends a steal in steal_batch(),
     * as in corio__runq_push_owner(). */
    uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);

    /* The caller sized the batch with corio__runq_free_owner(); steal only
     * moves forward, so the room it saw is still there. */
    assert(count <= CORIO_RUNQ_CAP - (uint32_t)(tail - unpack_steal(head)));
    (void)head;

    for (unsigned i = 0; i < count; i++)
        slot_set(q, tail + i, nodes[i]);
    /* Release: pairs with the acquire load of tail in steal_batch(). */
    atomic_store_explicit(&q->tail, tail + count, memory_order_release);
}

unsigned corio__runq_free_owner(struct corio__runq *q)
{
    /* Relaxed: a stale steal only under-reports the room, and the caller's
     * corio__runq_push_batch_owner() loads head again with acquire before it
     * writes a slot. */
    uint32_t steal = unpack_steal(atomic_load_explicit(&q->head, memory_order_relaxed));

    return CORIO_RUNQ_CAP - (uint32_t)(tail_owner(q) - steal);
}

struct corio__qnode *corio__runq_pop_owner(struct corio__runq *q)
{
    uint32_t tail = tail_owner(q);
    /* Relaxed: the slot we read was written by this thread, and the CAS below
     * checks the value. */
    uint64_t head = atomic_load_explicit(&q->head, memory_order_relaxed);

    for (;;) {
        uint32_t steal = unpack_steal(head), real = unpack_real(head);

        if (real == tail)
            return NULL;

        uint32_t next_real = real + 1;
        uint64_t next;
        if (steal == real) {
            next = pack(next_real, next_real);
        } else {
            /* A thief owns [steal, real); leave steal for it to move. */
            assert(steal != next_real);
            next = pack(steal, next_real);
        }
        /* Release: pairs with the acquire loads of head in steal_batch() and
         * corio__runq_len(), so a thread that sees real moved also sees a tail
         * at least that far. Relaxed on failure: we only recompute. */
        if (atomic_compare_exchange_weak_explicit(&q->head, &head, next, memory_order_release,
                                                  memory_order_relaxed))
            return slot_get(q, real);
    }
}

struct corio__qnode *corio__runq_pop_alone(struct corio__runq *q)
{
    uint32_t tail = tail_owner(q);
    uint64_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint32_t real = unpack_real(head);
    assert(unpack_steal(head) == real);   /* nobody steals from a lone worker */
    if (real == tail)
        return NULL;
    /* Release, as the CAS in corio__runq_pop_owner(), for corio__runq_len(). */
    atomic_store_explicit(&q->head, pack(real + 1, real + 1), memory_order_release);
    return slot_get(q, real);
}

/* Claims half of @src's items, copies them to @dst's slots from @dst_tail on
 * (not yet published) and ends the steal. Returns how many, 0 when @src was
 * empty or another thief is stealing from it. */
static uint32_t steal_batch(struct corio__runq *src, struct corio__runq *dst, uint32_t dst_tail)
{
    /* Acquire: pairs with the release CASes that move real (pop, overflow, a
     * claim below, and the end of a steal through its release sequence): the
     * tail loaded next is at least the real we see. */
    uint64_t head = atomic_load_explicit(&src->head, memory_order_acquire);
    uint32_t n;

    for (;;) {
        uint32_t steal = unpack_steal(head), real = unpack_real(head);

        if (steal != real)
            return 0;
        /* Acquire: pairs with the release store of tail in push_owner(),
         * push_batch_owner() and steal_into(); the slots up to tail and the
         * items they point to are visible. */
        uint32_t tail = atomic_load_explicit(&src->tail, memory_order_acquire);
        n = tail - real;
        n -= n / 2;
        if (n == 0)
            return 0;
        /* Moves real only: while steal lags, the owner keeps off [steal, real)
         * and other thieves back off. Release: pairs with the acquire load of
         * head in corio__runq_len() and in other thieves, so whoever sees this
         * real sees the tail we acquired above. Acquire (also on failure):
         * the same reason as the load above, for the next round. */
        if (atomic_compare_exchange_weak_explicit(&src->head, &head, pack(steal, real + n),
                                                  memory_order_acq_rel, memory_order_acquire))
            break;
    }

    /* head did not change between our load of tail and the claim, so
     * tail - real <= CORIO_RUNQ_CAP held then. */
    assert(n <= CORIO_RUNQ_CAP / 2);

    uint32_t first = unpack_real(head);
    for (uint32_t i = 0; i < n; i++)
        slot_set(dst, dst_tail + i, slot_get(src, first + i));

    uint64_t cur = pack(first, first + n);
    for (;;) {
        uint32_t real = unpack_real(cur);

        /* Release: pairs with the acquire load of head in push_owner() and
         * push_batch_owner() (and steal_into() when @src is the thief's own
         * dst): our reads of [first, first + n) happen before the owner
         * reuses those slots. Relaxed on failure: only the owner's pop can
         * have moved real meanwhile; we recompute. */
        if (atomic_compare_exchange_weak_explicit(&src->head, &cur, pack(real, real),
                                                  memory_order_release, memory_order_relaxed))
            return n;
        assert(unpack_steal(cur) == first);
    }
}

struct corio__qnode *corio__runq_steal_into(struct corio__runq *victim, struct corio__runq *dst)
{
    assert(victim != dst);

    uint32_t dst_tail = tail_owner(dst);
    /* Acquire: pairs with the release CAS that ends a steal from @dst, before
     * we write dst's slots in steal_batch(). A thief may still be copying out
     * of dst, so dst can look empty and still lack room. */
    uint32_t dst_steal = unpack_steal(atomic_load_explicit(&dst->head, memory_order_acquire));

    if ((uint32_t)(dst_tail - dst_steal) > CORIO_RUNQ_CAP / 2)
        return NULL;

    uint32_t n = steal_batch(victim, dst, dst_tail);
    if (n == 0)
        return NULL;

    /* The last item taken runs now; it was copied but never published, so
     * nobody else can see its slot. */
    n--;
    struct corio__qnode *ret = slot_get(dst, dst_tail + n);
    if (n > 0) {
        /* Release: pairs with the acquire load of tail in steal_batch() by
         * thieves of dst. The items were acquired from victim's tail, so they
         * are visible to whoever acquires ours. */
        atomic_store_explicit(&dst->tail, dst_tail + n, memory_order_release);
    }
    return ret;
}

unsigned corio__runq_len(const struct corio__runq *q)
{
    /* Acquire: pairs with the release CASes that move real (see steal_batch),
     * so the tail loaded next is not behind real. */
    uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    /* Relaxed: coherence already makes this load at least as new as the tail
     * the head acquire guarantees; it publishes nothing we dereference. */
    uint32_t n = atomic_load_explicit(&q->tail, memory_order_relaxed) - unpack_real(head);

    /* head and tail are two loads at two instants: the owner may have popped
     * and refilled in between, so clamp to what the ring can ever hold. */
    return n > CORIO_RUNQ_CAP ? CORIO_RUNQ_CAP : n;
}

bool corio__runq_is_empty(const struct corio__runq *q)
{
    return corio__runq_len(q) == 0;
}
