/* core/sync.h - what the synchronization primitives (core/lock.c, event.c,
 * condition.c, semaphore.c, barrier.c) share: their private layouts behind
 * the public opaque structs, the magic words that catch use after close, and
 * the timeout wrapper.
 *
 * Every primitive keeps one corio__spin that guards its state and its wait
 * queue (core/waitq.h has the wait/wake protocol). The lock alone also has
 * a state word that an uncontended acquire and release change with one CAS
 * each, without the spinlock.
 *
 * A magic word is written at init and cleared at close; every call checks it
 * first, so a closed or zeroed object is -EINVAL. It is a plain field: init
 * and close must happen-before other calls (as the struct's memory itself).
 */
#ifndef CORIO_CORE_SYNC_H
#define CORIO_CORE_SYNC_H

#include "corio/sync.h"
#include "corio/time.h"
#include "internal.h"
#include "waitq.h"

#define CORIO__LOCK_MAGIC 0x6c6f636bu   /* "lock" */
#define CORIO__EVENT_MAGIC 0x6576656eu  /* "even" */
#define CORIO__COND_MAGIC 0x636f6e64u   /* "cond" */
#define CORIO__SEM_MAGIC 0x73656d61u    /* "sema" */
#define CORIO__BARRIER_MAGIC 0x62617272u /* "barr" */

/* Lock state word: LOCKED is the lock itself; WAITERS says the wait queue
 * may be non-empty, which sends both acquire (no barging) and release (hand
 * over) to the slow path. WAITERS is only ever set with LOCKED. */
#define CORIO__LOCK_LOCKED 1u
#define CORIO__LOCK_WAITERS 2u

struct corio__lock {
    _Atomic uint32_t state;
    uint32_t magic;
    struct corio__spin spin;   /* guards wq, and WAITERS changes */
    struct corio__waitq wq;
};
_Static_assert(sizeof(struct corio__lock) <= sizeof(corio_lock), "corio_lock is too small");
_Static_assert(_Alignof(struct corio__lock) <= _Alignof(corio_lock), "corio_lock alignment");

static inline struct corio__lock *corio__lock_of(const corio_lock *l)
{
    return (struct corio__lock *)(void *)(uintptr_t)l;
}

static inline bool corio__lock_valid(const struct corio__lock *l)
{
    return l && l->magic == CORIO__LOCK_MAGIC;
}

/* The other primitives: all under their spinlock. */
struct corio__event {
    uint32_t magic;
    atomic_bool flag;
    struct corio__spin spin;
    struct corio__waitq wq;
};
_Static_assert(sizeof(struct corio__event) <= sizeof(corio_event), "corio_event is too small");
_Static_assert(_Alignof(struct corio__event) <= _Alignof(corio_event), "corio_event alignment");

struct corio__sem {
    uint32_t magic;
    bool bounded;
    struct corio__spin spin;
    int64_t value;    /* free permits, under spin */
    int64_t bound;    /* bounded: the initial value */
    struct corio__waitq wq;
};
_Static_assert(sizeof(struct corio__sem) <= sizeof(corio_semaphore), "corio_semaphore is too small");
_Static_assert(_Alignof(struct corio__sem) <= _Alignof(corio_semaphore), "corio_semaphore alignment");

struct corio__cond {
    uint32_t magic;
    bool own;                  /* lock == &own_lock */
    struct corio__spin spin;   /* guards wq */
    struct corio__waitq wq;
    corio_lock *lock;
    corio_lock own_lock;
};
_Static_assert(sizeof(struct corio__cond) <= sizeof(corio_condition), "corio_condition is too small");
_Static_assert(_Alignof(struct corio__cond) <= _Alignof(corio_condition), "corio_condition alignment");

struct corio__barrier {
    uint32_t magic;
    int state;                 /* under spin */
    unsigned parties;
    unsigned count;            /* counted arrivals still inside wait(), under spin */
    struct corio__spin spin;
    struct corio__waitq wq;
};
_Static_assert(sizeof(struct corio__barrier) <= sizeof(corio_barrier), "corio_barrier is too small");
_Static_assert(_Alignof(struct corio__barrier) <= _Alignof(corio_barrier), "corio_barrier alignment");

/* Barrier states (asyncio's _BarrierState). */
enum { BARRIER_FILLING = 0, BARRIER_DRAINING, BARRIER_RESETTING, BARRIER_BROKEN };

/* core/lock.c: the slow acquire for corio_condition_wait()'s re-acquire:
 * a woken-and-cancelled waiter keeps the lock and gets
 * CORIO__WQ_WOKEN_CANCELLED instead of passing it on. */
int corio__lock_acquire_keep(struct corio__lock *l);

/* Runs @op(@arg) inside a timeout scope of @timeout_ns on the current task:
 * @op's -ECANCELED caused by the deadline becomes -ETIMEDOUT. */
static inline int corio__sync_timed(int64_t timeout_ns, int (*op)(void *), void *arg)
{
    corio_timeout tm;
    int rc = corio_timeout_enter(&tm, timeout_ns);
    if (rc < 0)
        return rc;
    return corio_timeout_exit(&tm, op(arg));
}

#endif
