/* core/lock.c - asyncio.Lock: a FIFO-fair lock for tasks, safe across workers.
 *
 * One state word (core/sync.h) carries LOCKED and WAITERS. Uncontended, an
 * acquire is CAS 0 -> LOCKED and a release CAS LOCKED -> 0: no spinlock, no
 * call into the scheduler. Every other path runs under the lock's spinlock:
 *
 *   acquire, slow: under the spinlock, take the lock if the word is 0, else
 *     set WAITERS (a CAS, racing only the holder's fast release), queue a
 *     node and park (corio__wq_wait).
 *   release, slow (the fast CAS failed: WAITERS is set): under the spinlock,
 *     pop the first waiter and hand the lock over: the word stays LOCKED
 *     (WAITERS cleared if the queue is now empty) and the waiter returns
 *     owning it. So nobody can take the lock between a release and the
 *     waiter's resumption: no barging, FIFO order (asyncio keeps the same
 *     order by letting a new acquirer queue whenever waiters exist).
 *     An empty queue (its waiters were cancelled) stores 0.
 *
 * While WAITERS is set, only spinlock holders change the word: the fast
 * acquire needs 0 and the fast release needs exactly LOCKED. A waiter that
 * is cancelled while queued unlinks itself (inside corio__wq_wait) and then
 * clears WAITERS if it left the queue empty; a releaser that gets there
 * first finds the queue empty and unlocks. A waiter cancelled while being
 * handed the lock (CORIO__WQ_WOKEN_CANCELLED) owns it, so it releases it,
 * handing it to the next waiter, and returns -ECANCELED: no hand-over is
 * lost.
 *
 * Memory order: the fast acquire's CAS (acquire) pairs with the fast
 * release's CAS or the slow release's store (release); a hand-over is
 * ordered by the spinlock and the node's WOKEN store (core/waitq.c).
 */
#include <string.h>

#include "sync.h"

#define LOCKED CORIO__LOCK_LOCKED
#define WAITERS CORIO__LOCK_WAITERS

int corio_lock_init(corio_lock *lk)
{
    if (!lk)
        return -EINVAL;
    struct corio__lock *l = corio__lock_of(lk);
    memset(lk, 0, sizeof *lk);
    atomic_init(&l->state, 0);
    corio__spin_init(&l->spin);
    corio__wq_init(&l->wq);
    l->magic = CORIO__LOCK_MAGIC;
    return 0;
}

int corio_lock_close(corio_lock *lk)
{
    struct corio__lock *l = corio__lock_of(lk);
    if (!corio__lock_valid(l))
        return -EINVAL;
    corio__spin_lock(&l->spin);
    int rc = corio__wq_quiet(&l->wq) &&
                     !(atomic_load_explicit(&l->state, memory_order_relaxed) & LOCKED)
                 ? 0 : -EBUSY;
    if (rc == 0)
        l->magic = 0;
    corio__spin_unlock(&l->spin);
    return rc;
}

bool corio_lock_locked(const corio_lock *lk)
{
    const struct corio__lock *l = corio__lock_of(lk);
    return corio__lock_valid(l) &&
           (atomic_load_explicit(&l->state, memory_order_relaxed) & LOCKED);
}

/* Under the spinlock: take the lock if free, else mark WAITERS.
 * Returns true when taken. */
static bool take_or_mark(struct corio__lock *l)
{
    uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    for (;;) {
        if (s == 0) {
            /* Pairs with the release CAS/store of the last release. */
            if (atomic_compare_exchange_weak_explicit(&l->state, &s, LOCKED,
                                                      memory_order_acquire,
                                                      memory_order_relaxed))
                return true;
        } else if (s & WAITERS) {
            return false;
        } else if (atomic_compare_exchange_weak_explicit(&l->state, &s, s | WAITERS,
                                                         memory_order_relaxed,
                                                         memory_order_relaxed)) {
            return false;
        }
    }
}

/* A cancelled waiter has left the queue: WAITERS goes if nobody is left. */
static void drop_waiters_mark(struct corio__lock *l)
{
    corio__spin_lock(&l->spin);
    if (corio__wq_empty(&l->wq))
        atomic_fetch_and_explicit(&l->state, ~WAITERS, memory_order_relaxed);
    corio__spin_unlock(&l->spin);
}

/* Wait for the lock: 0 (handed over), -ECANCELED (not held), -EPERM, or
 * CORIO__WQ_WOKEN_CANCELLED (held; a cancellation was consumed). */
static int acquire_slow(struct corio__lock *l)
{
    struct corio_task *t = corio_current_task();
    if (!t) {
        uint32_t z = 0;
        return atomic_compare_exchange_strong_explicit(&l->state, &z, LOCKED,
                                                       memory_order_acquire,
                                                       memory_order_relaxed) ? 0 : -EPERM;
    }
    corio__spin_lock(&l->spin);
    if (take_or_mark(l)) {
        corio__spin_unlock(&l->spin);
        return 0;
    }
    struct corio__wq_node node;
    node.data = 0;
    corio__wq_push(&l->wq, &node, t);
    int rc = corio__wq_wait(&l->wq, &l->spin, &node);
    if (rc == -ECANCELED)
        drop_waiters_mark(l);
    /* A grant kept (0, or WOKEN_CANCELLED passed on by the caller) keeps
     * the lock locked, which close refuses too. */
    corio__wq_leave(&l->wq);
    return rc;
}

int corio__lock_acquire_keep(struct corio__lock *l)
{
    uint32_t z = 0;
    if (atomic_compare_exchange_strong_explicit(&l->state, &z, LOCKED, memory_order_acquire,
                                                memory_order_relaxed))
        return 0;
    return acquire_slow(l);
}

/* Under nothing: the slow release (WAITERS was seen). */
static int release_slow(struct corio__lock *l)
{
    corio__spin_lock(&l->spin);
    uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    if (!(s & LOCKED)) {
        corio__spin_unlock(&l->spin);
        return -EINVAL;   /* a racing double release got here first */
    }
    struct corio__wq_node *n = corio__wq_pop(&l->wq);
    if (!n) {
        /* Pairs with the acquire CAS of the next acquirer. */
        atomic_store_explicit(&l->state, 0, memory_order_release);
        corio__spin_unlock(&l->spin);
        return 0;
    }
    if (corio__wq_empty(&l->wq))
        atomic_store_explicit(&l->state, LOCKED, memory_order_relaxed);
    corio__spin_unlock(&l->spin);
    struct corio__wq_batch b;
    corio__wq_batch_init(&b);
    corio__wq_batch_add(&b, n);
    corio__wq_wake_batch(&b);
    return 0;
}

static int release(struct corio__lock *l)
{
    uint32_t s = LOCKED;
    /* Pairs with the acquire CAS of the next fast acquire. */
    if (atomic_compare_exchange_strong_explicit(&l->state, &s, 0, memory_order_release,
                                                memory_order_relaxed))
        return 0;
    if (!(s & LOCKED))
        return -EINVAL;   /* asyncio: RuntimeError('Lock is not acquired.') */
    return release_slow(l);
}

int corio_lock_acquire(corio_lock *lk)
{
    struct corio__lock *l = corio__lock_of(lk);
    if (__builtin_expect(!corio__lock_valid(l), 0))
        return -EINVAL;
    int rc = corio__lock_acquire_keep(l);
    if (rc == CORIO__WQ_WOKEN_CANCELLED) {
        release(l);   /* pass it on to the next waiter */
        return -ECANCELED;
    }
    return rc;
}

int corio_lock_release(corio_lock *lk)
{
    struct corio__lock *l = corio__lock_of(lk);
    if (__builtin_expect(!corio__lock_valid(l), 0))
        return -EINVAL;
    return release(l);
}

static int acquire_op(void *l)
{
    return corio_lock_acquire(l);
}

int corio_lock_acquire_timeout(corio_lock *lk, int64_t timeout_ns)
{
    struct corio__lock *l = corio__lock_of(lk);
    if (!corio__lock_valid(l) || timeout_ns < 0)
        return -EINVAL;
    uint32_t z = 0;
    /* Free: no wait, so no scope (asyncio's timeout never fires either). */
    if (atomic_compare_exchange_strong_explicit(&l->state, &z, LOCKED, memory_order_acquire,
                                                memory_order_relaxed))
        return 0;
    if (!corio_current_task())
        return -EPERM;
    return corio__sync_timed(timeout_ns, acquire_op, lk);
}
