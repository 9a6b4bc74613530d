/* corio/sync.h - synchronization primitives for tasks (asyncio.Lock, Event,
 * Condition, Semaphore, BoundedSemaphore, Barrier), safe across workers.
 *
 * They behave as CPython 3.12's asyncio versions, with tasks running in
 * parallel on several workers:
 *   - Waiters are served in FIFO order. A lock (or a semaphore's permit)
 *     released while tasks wait is handed to the first waiter, so a task
 *     that arrives later never barges ahead of one that waits.
 *   - A call that can wait is a cancellation point only when it really
 *     waits: an uncontended acquire, or an Event.wait on a set event,
 *     returns 0 without suspending (as asyncio's coroutines return without
 *     yielding). A task cancelled while waiting is taken off the queue and
 *     gets -ECANCELED; one cancelled while being woken passes what it was
 *     given on (the lock or the permit goes to the next waiter, a
 *     notification to the next condition waiter), so nothing is lost, and
 *     gets -ECANCELED.
 *   - Each waiting call has a _timeout variant, built on a timeout scope
 *     (asyncio.timeout around the await): -ETIMEDOUT when @timeout_ns passed
 *     first, -EINVAL for a negative @timeout_ns; 0 gives no time unless the
 *     call succeeds without waiting.
 *
 * Objects are caller-owned structs, normally on a stack or inside another
 * object: `corio_lock l; corio_lock_init(&l); ... corio_lock_close(&l);`.
 * Their fields are private. The memory may be reused after a successful
 * close; closing one that tasks wait on is -EBUSY. A closed (or never
 * initialized, zeroed) object is refused with -EINVAL, not a crash; one
 * overwritten with garbage cannot be detected.
 *
 * Errors, everywhere in this header:
 *   -EINVAL     NULL object or argument, object not initialized or closed,
 *               negative timeout; misuse that asyncio reports with
 *               RuntimeError (releasing an unlocked lock, waiting on or
 *               notifying a condition whose lock is not held)
 *   -EPERM      a call that has to wait, made outside a task
 *   -ECANCELED  the waiting task was cancelled
 *   -ETIMEDOUT  the _timeout variant's time ran out (asyncio.TimeoutError)
 *   -EOVERFLOW  a bounded semaphore released more often than acquired
 *               (asyncio's ValueError), or a count that would overflow
 *   -EPIPE      the barrier is broken (asyncio.BrokenBarrierError)
 *   -EBUSY      close while tasks wait
 * Releasing, setting, notifying, resetting and aborting never wait: any
 * thread may call them (a condition's notify needs its lock held, by
 * anyone, as asyncio requires).
 *
 * `async with lock:` is a guard in C (GCC/Clang cleanup attribute):
 *
 *     int rc;
 *     CORIO_WITH_LOCK(&lock, rc) {
 *         ... the lock is held here; break, continue or return release it ...
 *     }
 *     if (rc < 0)   ... the body did not run: -ECANCELED, -EINVAL ...
 *
 * or the explicit pair: `if ((rc = corio_lock_acquire(&l)) == 0) { ...;
 * corio_lock_release(&l); }`. CORIO_WITH_SEMAPHORE() is the same for a
 * semaphore.
 */
#ifndef CORIO_SYNC_H
#define CORIO_SYNC_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The objects: sizes fixed by the ABI, fields private. */
typedef struct corio_lock {
    uint64_t private_[8];
} corio_lock;

typedef struct corio_event {
    uint64_t private_[8];
} corio_event;

typedef struct corio_condition {
    uint64_t private_[16];
} corio_condition;

typedef struct corio_semaphore {
    uint64_t private_[8];
} corio_semaphore;

typedef struct corio_barrier {
    uint64_t private_[8];
} corio_barrier;

/* A condition's predicate (Condition.wait_for): true when the wait is over.
 * Called with the condition's lock held, on the waiting task. */
typedef bool (*corio_predicate_fn)(void *arg);

/* ---- Lock ------------------------------------------------------------------ */

/* corio_lock_init - make @l an unlocked lock (asyncio.Lock()).
 * Returns 0, -EINVAL (@l NULL). Call from: anywhere. */
CORIO_API int corio_lock_init(corio_lock *l);

/* corio_lock_close - end @l's life; its memory may be reused after 0.
 * Returns 0, -EBUSY (locked, tasks wait on it, or are still leaving a
 * wait), -EINVAL (NULL, not initialized, closed). Call from: anywhere. */
CORIO_API int corio_lock_close(corio_lock *l);

/* corio_lock_acquire - take @l, waiting in FIFO order while it is held
 * (await lock.acquire()). Uncontended, it is one CAS (and a release one
 * more) and never suspends. Returns 0 (held), -ECANCELED (cancelled while waiting:
 * not held), -EPERM (it would have to wait, outside a task), -EINVAL (NULL,
 * closed). Call from: a task. */
CORIO_API int corio_lock_acquire(corio_lock *l);

/* corio_lock_acquire_timeout - corio_lock_acquire() giving up after
 * @timeout_ns (asyncio.timeout around lock.acquire()). Returns 0, -ETIMEDOUT
 * (not held), -EINVAL (@timeout_ns < 0), or corio_lock_acquire()'s errors.
 * Call from: a task. */
CORIO_API int corio_lock_acquire_timeout(corio_lock *l, int64_t timeout_ns);

/* corio_lock_release - release @l (lock.release()); the first waiter, if
 * any, gets it. Locks have no owner: any thread may release. Returns 0,
 * -EINVAL (not locked: asyncio's RuntimeError; NULL, closed).
 * Call from: anywhere. */
CORIO_API int corio_lock_release(corio_lock *l);

/* corio_lock_locked - whether @l is held (lock.locked()); a snapshot,
 * false for NULL or closed. Call from: anywhere. */
CORIO_API bool corio_lock_locked(const corio_lock *l);

/* ---- Event ----------------------------------------------------------------- */

/* corio_event_init - make @e a clear event (asyncio.Event()).
 * Returns 0, -EINVAL (@e NULL). Call from: anywhere. */
CORIO_API int corio_event_init(corio_event *e);

/* corio_event_close - end @e's life; its memory may be reused after 0.
 * Returns 0, -EBUSY (tasks wait on it, or are still leaving a wait),
 * -EINVAL (NULL, closed).
 * Call from: anywhere. */
CORIO_API int corio_event_close(corio_event *e);

/* corio_event_set - set @e and wake every waiter (event.set()); setting a
 * set event does nothing. Returns 0, -EINVAL (NULL, closed).
 * Call from: anywhere. */
CORIO_API int corio_event_set(corio_event *e);

/* corio_event_clear - clear @e (event.clear()); tasks already woken stay
 * woken. Returns 0, -EINVAL (NULL, closed). Call from: anywhere. */
CORIO_API int corio_event_clear(corio_event *e);

/* corio_event_is_set - whether @e is set (event.is_set()); false for NULL
 * or closed. Call from: anywhere. */
CORIO_API bool corio_event_is_set(const corio_event *e);

/* corio_event_wait - wait until @e is set (await event.wait()); returns at
 * once, without suspending, when it is set. Returns 0, -ECANCELED, -EPERM
 * (it would have to wait, outside a task), -EINVAL (NULL, closed).
 * Call from: a task. */
CORIO_API int corio_event_wait(corio_event *e);

/* corio_event_wait_timeout - corio_event_wait() giving up after
 * @timeout_ns. Returns 0, -ETIMEDOUT, -EINVAL (@timeout_ns < 0), or
 * corio_event_wait()'s errors. Call from: a task. */
CORIO_API int corio_event_wait_timeout(corio_event *e, int64_t timeout_ns);

/* ---- Condition ------------------------------------------------------------- */

/* corio_condition_init - make @c a condition on @lock (asyncio.Condition(lock));
 * @lock NULL: on a lock of its own. @lock must outlive @c. Returns 0,
 * -EINVAL (@c NULL, @lock not an initialized lock). Call from: anywhere. */
CORIO_API int corio_condition_init(corio_condition *c, corio_lock *lock);

/* corio_condition_close - end @c's life (and its own lock's); its memory may
 * be reused after 0. Returns 0, -EBUSY (tasks wait on it, or on its own
 * lock), -EINVAL (NULL, closed). Call from: anywhere. */
CORIO_API int corio_condition_close(corio_condition *c);

/* corio_condition_acquire / _acquire_timeout / _release / _locked -
 * corio_lock_acquire() ... corio_lock_locked() on @c's lock (async with
 * cond, cond.locked()). Errors as those. Call from: as those. */
CORIO_API int corio_condition_acquire(corio_condition *c);
CORIO_API int corio_condition_acquire_timeout(corio_condition *c, int64_t timeout_ns);
CORIO_API int corio_condition_release(corio_condition *c);
CORIO_API bool corio_condition_locked(const corio_condition *c);

/* corio_condition_lock - the lock @c uses (its own, or the one given to
 * init), for CORIO_WITH_LOCK(); NULL for NULL or closed. Call from: anywhere. */
CORIO_API corio_lock *corio_condition_lock(corio_condition *c);

/* corio_condition_wait - release @c's lock, wait until notified, take the
 * lock again (await cond.wait()). The lock is held again on every return
 * but -EINVAL/-EPERM: also when cancelled, as in asyncio, which re-acquires
 * before raising CancelledError. A waiter cancelled after being notified
 * passes the notification on to the next waiter (asyncio 3.13's fix).
 * Returns 0, -ECANCELED, -EINVAL (NULL, closed; the lock is not held:
 * asyncio's RuntimeError), -EPERM (outside a task). Call from: a task. */
CORIO_API int corio_condition_wait(corio_condition *c);

/* corio_condition_wait_timeout - corio_condition_wait() giving up after
 * @timeout_ns; the lock is held again when it returns -ETIMEDOUT. Returns
 * 0, -ETIMEDOUT, -EINVAL (@timeout_ns < 0), or corio_condition_wait()'s
 * errors. Call from: a task. */
CORIO_API int corio_condition_wait_timeout(corio_condition *c, int64_t timeout_ns);

/* corio_condition_wait_for - wait until @pred(@arg) is true (await
 * cond.wait_for(predicate)): checks it first, then after every wake-up,
 * always with the lock held. Returns 0 (@pred returned true; the lock is
 * held), corio_condition_wait()'s errors, -EINVAL (@pred NULL; the lock is
 * not held, checked even when @pred is already true). Call from: a task. */
CORIO_API int corio_condition_wait_for(corio_condition *c, corio_predicate_fn pred, void *arg);

/* corio_condition_wait_for_timeout - corio_condition_wait_for() giving up
 * after @timeout_ns in all (the lock is held again on -ETIMEDOUT). Returns
 * 0, -ETIMEDOUT, -EINVAL (@timeout_ns < 0), or corio_condition_wait_for()'s
 * errors. Call from: a task. */
CORIO_API int corio_condition_wait_for_timeout(corio_condition *c, corio_predicate_fn pred,
                                               void *arg, int64_t timeout_ns);

/* corio_condition_notify - wake up to @n waiters, first come first woken
 * (cond.notify(n)); each takes the lock again before it returns. Returns
 * the number woken (0 when none wait), -EINVAL (NULL, closed, the lock is
 * not held: asyncio's RuntimeError). Call from: anywhere. */
CORIO_API int corio_condition_notify(corio_condition *c, unsigned n);

/* corio_condition_notify_all - wake every waiter (cond.notify_all()).
 * Returns the number woken, errors as corio_condition_notify().
 * Call from: anywhere. */
CORIO_API int corio_condition_notify_all(corio_condition *c);

/* ---- Semaphore, BoundedSemaphore ------------------------------------------- */

/* corio_semaphore_init - make @s a semaphore with @value permits
 * (asyncio.Semaphore(value)). Returns 0, -EINVAL (@s NULL, @value < 0:
 * asyncio's ValueError). Call from: anywhere. */
CORIO_API int corio_semaphore_init(corio_semaphore *s, int64_t value);

/* corio_bounded_semaphore_init - a semaphore whose releases may never
 * bring it above @value (asyncio.BoundedSemaphore(value)): such a release
 * is -EOVERFLOW. Returns 0, -EINVAL (@s NULL, @value < 0).
 * Call from: anywhere. */
CORIO_API int corio_bounded_semaphore_init(corio_semaphore *s, int64_t value);

/* corio_semaphore_close - end @s's life; its memory may be reused after 0.
 * Returns 0, -EBUSY (tasks wait on it, or are still leaving a wait),
 * -EINVAL (NULL, closed).
 * Call from: anywhere. */
CORIO_API int corio_semaphore_close(corio_semaphore *s);

/* corio_semaphore_acquire - take a permit, waiting in FIFO order while
 * there is none, or while others wait for one (await sem.acquire()).
 * Returns 0, -ECANCELED (no permit taken), -EPERM (it would have to wait,
 * outside a task), -EINVAL (NULL, closed). Call from: a task. */
CORIO_API int corio_semaphore_acquire(corio_semaphore *s);

/* corio_semaphore_acquire_timeout - corio_semaphore_acquire() giving up
 * after @timeout_ns. Returns 0, -ETIMEDOUT (no permit taken), -EINVAL
 * (@timeout_ns < 0), or corio_semaphore_acquire()'s errors.
 * Call from: a task. */
CORIO_API int corio_semaphore_acquire_timeout(corio_semaphore *s, int64_t timeout_ns);

/* corio_semaphore_release - give a permit back (sem.release()): to the
 * first waiter if any. Returns 0, -EOVERFLOW (a bounded semaphore already
 * at its initial value: asyncio's ValueError; or the count would overflow),
 * -EINVAL (NULL, closed). Call from: anywhere. */
CORIO_API int corio_semaphore_release(corio_semaphore *s);

/* corio_semaphore_locked - whether an acquire would wait (sem.locked(): no
 * permit, or tasks waiting); false for NULL or closed. Call from: anywhere. */
CORIO_API bool corio_semaphore_locked(const corio_semaphore *s);

/* corio_semaphore_value - the free permits (asyncio's sem._value); a
 * snapshot, -EINVAL for NULL or closed. Call from: anywhere. */
CORIO_API int64_t corio_semaphore_value(const corio_semaphore *s);

/* ---- Barrier --------------------------------------------------------------- */

/* corio_barrier_init - make @b a barrier for @parties tasks
 * (asyncio.Barrier(parties)). Returns 0, -EINVAL (@b NULL, @parties 0 or
 * above INT_MAX). Call from: anywhere. */
CORIO_API int corio_barrier_init(corio_barrier *b, unsigned parties);

/* corio_barrier_close - end @b's life; its memory may be reused after 0.
 * Returns 0, -EBUSY (tasks wait on it, or are still leaving a wait),
 * -EINVAL (NULL, closed).
 * Call from: anywhere. */
CORIO_API int corio_barrier_close(corio_barrier *b);

/* corio_barrier_wait - wait until @parties tasks wait, then let all of
 * them go (await barrier.wait()); while the barrier drains or resets, new
 * arrivals wait for that first. Returns the arrival index, 0 ..
 * parties - 1 (as in asyncio, one that leaves early, cancelled or timed
 * out, gives its index up to the next arrival), -EPIPE (the barrier is broken, or was reset or aborted while
 * waiting: BrokenBarrierError), -ECANCELED (the task no longer counts as
 * arrived), -EPERM (outside a task), -EINVAL (NULL, closed).
 * Call from: a task. */
CORIO_API int corio_barrier_wait(corio_barrier *b);

/* corio_barrier_wait_timeout - corio_barrier_wait() giving up after
 * @timeout_ns (the task no longer counts as arrived). Returns the index,
 * -ETIMEDOUT, -EINVAL (@timeout_ns < 0), or corio_barrier_wait()'s errors.
 * Call from: a task. */
CORIO_API int corio_barrier_wait_timeout(corio_barrier *b, int64_t timeout_ns);

/* corio_barrier_reset - back to the empty state (barrier.reset()): tasks
 * waiting get -EPIPE, the barrier takes new arrivals once they left.
 * Returns 0, -EINVAL (NULL, closed). Call from: anywhere. */
CORIO_API int corio_barrier_reset(corio_barrier *b);

/* corio_barrier_abort - break @b (barrier.abort()): tasks waiting and every
 * later wait get -EPIPE until corio_barrier_reset(). Returns 0, -EINVAL
 * (NULL, closed). Call from: anywhere. */
CORIO_API int corio_barrier_abort(corio_barrier *b);

/* corio_barrier_parties - the parties given to init (barrier.parties); 0
 * for NULL or closed. corio_barrier_n_waiting - tasks waiting for the
 * barrier to fill (barrier.n_waiting; 0 while it drains). corio_barrier_broken
 * - whether it is broken (barrier.broken). Snapshots. Call from: anywhere. */
CORIO_API unsigned corio_barrier_parties(const corio_barrier *b);
CORIO_API unsigned corio_barrier_n_waiting(const corio_barrier *b);
CORIO_API bool corio_barrier_broken(const corio_barrier *b);

/* ---- async with: guards ------------------------------------------------------ */

/* What CORIO_WITH_LOCK / CORIO_WITH_SEMAPHORE keep: the object to release
 * when the statement is left (NULL: nothing was taken), and the one-pass
 * flag of the for statement. Used by the macros only. */
typedef struct corio_lock_guard {
    corio_lock *lock;
    int once;
} corio_lock_guard;

typedef struct corio_semaphore_guard {
    corio_semaphore *sem;
    int once;
} corio_semaphore_guard;

static inline corio_lock_guard corio__lock_guard_enter(corio_lock *l, int *rc)
{
    *rc = corio_lock_acquire(l);
    corio_lock_guard g = { *rc == 0 ? l : (corio_lock *)0, *rc == 0 };
    return g;
}

static inline void corio__lock_guard_exit(corio_lock_guard *g)
{
    if (g->lock)
        (void)corio_lock_release(g->lock);
}

static inline corio_semaphore_guard corio__semaphore_guard_enter(corio_semaphore *s, int *rc)
{
    *rc = corio_semaphore_acquire(s);
    corio_semaphore_guard g = { *rc == 0 ? s : (corio_semaphore *)0, *rc == 0 };
    return g;
}

static inline void corio__semaphore_guard_exit(corio_semaphore_guard *g)
{
    if (g->sem)
        (void)corio_semaphore_release(g->sem);
}

#define CORIO__CAT2(a, b) a##b
#define CORIO__CAT(a, b) CORIO__CAT2(a, b)

/* CORIO_WITH_LOCK - `async with lock:`: acquire @l, storing the outcome in
 * the int lvalue @rc; run the statement that follows once, only when @rc is
 * 0; release @l however the statement is left (end, break, continue,
 * return; not longjmp). Call from: a task. */
#define CORIO_WITH_LOCK(l, rc)                                                         \
    for (corio_lock_guard CORIO__CAT(corio__g, __LINE__)                               \
             __attribute__((cleanup(corio__lock_guard_exit))) =                        \
                 corio__lock_guard_enter((l), &(rc));                                  \
         CORIO__CAT(corio__g, __LINE__).once; CORIO__CAT(corio__g, __LINE__).once = 0)

/* CORIO_WITH_SEMAPHORE - `async with sem:`, as CORIO_WITH_LOCK().
 * Call from: a task. */
#define CORIO_WITH_SEMAPHORE(s, rc)                                                    \
    for (corio_semaphore_guard CORIO__CAT(corio__g, __LINE__)                          \
             __attribute__((cleanup(corio__semaphore_guard_exit))) =                   \
                 corio__semaphore_guard_enter((s), &(rc));                             \
         CORIO__CAT(corio__g, __LINE__).once; CORIO__CAT(corio__g, __LINE__).once = 0)

#ifdef __cplusplus
}
#endif

#endif
