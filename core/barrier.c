/* core/barrier.c - asyncio.Barrier: @parties tasks wait until all arrived.
 *
 * The state machine is asyncio's (Lib/asyncio/locks.py, 3.11+), with its
 * Condition replaced by the spinlock and one queue: every change of state
 * wakes every waiter (notify_all), and each re-checks its own predicate
 * under the spinlock, queueing again when it still has to wait.
 *
 * States (BARRIER_ in core/sync.h):
 *   FILLING   arrivals get index = count++; the one that makes count reach
 *             parties switches to DRAINING and wakes everybody.
 *   DRAINING  the released tasks leave (count--); new arrivals wait for the
 *             last to leave, which switches back to FILLING.
 *   RESETTING reset() while tasks wait: they leave with -EPIPE; the last
 *             to leave switches to FILLING.
 *   BROKEN    abort(): waiters and every later wait get -EPIPE, until
 *             reset() (which, with nobody inside, goes straight to FILLING).
 *
 * Cancellation, as in asyncio: a task cancelled before it was counted
 * (waiting for a drain or a reset to end) just returns -ECANCELED; one
 * cancelled after it was counted leaves (count--, possibly ending a drain
 * or a reset) and returns -ECANCELED, also when it was being woken by the
 * release itself. A broadcast has nothing to pass on. As in asyncio, an
 * arrival that leaves gives its index up: the next arrival gets it again.
 */
#include <limits.h>
#include <string.h>

#include "sync.h"


static struct corio__barrier *barrier_of(const corio_barrier *b)
{
    struct corio__barrier *br = (struct corio__barrier *)(void *)(uintptr_t)b;
    return br && br->magic == CORIO__BARRIER_MAGIC ? br : NULL;
}

int corio_barrier_init(corio_barrier *b, unsigned parties)
{
    if (!b || parties == 0 || parties > INT_MAX)
        return -EINVAL;   /* asyncio: ValueError('parties must be > 0') */
    struct corio__barrier *br = (struct corio__barrier *)(void *)b;
    memset(b, 0, sizeof *b);
    corio__spin_init(&br->spin);
    corio__wq_init(&br->wq);
    br->parties = parties;
    br->state = BARRIER_FILLING;
    br->magic = CORIO__BARRIER_MAGIC;
    return 0;
}

int corio_barrier_close(corio_barrier *b)
{
    struct corio__barrier *br = barrier_of(b);
    if (!br)
        return -EINVAL;
    corio__spin_lock(&br->spin);
    int rc = corio__wq_quiet(&br->wq) && br->count == 0 ? 0 : -EBUSY;
    if (rc == 0)
        br->magic = 0;
    corio__spin_unlock(&br->spin);
    return rc;
}

/* Under the spinlock: every waiter into @wake (notify_all). */
static void wake_all_locked(struct corio__barrier *br, struct corio__wq_batch *wake)
{
    while (corio__wq_pop_to(&br->wq, wake))
        ;
}

/* Under the spinlock, which it drops while parked and holds again on
 * return: wait for the next change of state. 0, or -ECANCELED. */
static int park(struct corio__barrier *br, struct corio_task *t)
{
    struct corio__wq_node node;
    node.data = 0;
    corio__wq_push(&br->wq, &node, t);
    int rc = corio__wq_wait(&br->wq, &br->spin, &node);
    corio__spin_lock(&br->spin);
    /* The caller unlocks last: close waits for that under the spinlock. */
    corio__wq_leave(&br->wq);
    return rc == 0 ? 0 : -ECANCELED;
}

/* Under the spinlock: a counted arrival leaves (asyncio's _exit()). */
static void leave_locked(struct corio__barrier *br, struct corio__wq_batch *wake)
{
    br->count--;
    if (br->count == 0 && (br->state == BARRIER_RESETTING || br->state == BARRIER_DRAINING)) {
        br->state = BARRIER_FILLING;
        wake_all_locked(br, wake);
    }
}

static int barrier_wait(struct corio__barrier *br)
{
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;
    struct corio__wq_batch wake;
    corio__wq_batch_init(&wake);
    int rc;
    corio__spin_lock(&br->spin);
    /* _block(): wait while the barrier drains or resets. */
    while (br->state == BARRIER_DRAINING || br->state == BARRIER_RESETTING) {
        if (park(br, t) < 0) {
            corio__spin_unlock(&br->spin);
            return -ECANCELED;
        }
    }
    if (br->state == BARRIER_BROKEN) {
        corio__spin_unlock(&br->spin);
        return -EPIPE;   /* asyncio: BrokenBarrierError */
    }
    unsigned index = br->count++;
    if (index + 1 == br->parties) {
        br->state = BARRIER_DRAINING;   /* _release() */
        wake_all_locked(br, &wake);
        rc = (int)index;
    } else {
        /* _wait(): until released, reset or broken. */
        rc = 0;
        while (br->state == BARRIER_FILLING && rc == 0)
            rc = park(br, t);
        if (rc == 0)
            rc = br->state == BARRIER_DRAINING ? (int)index : -EPIPE;
    }
    leave_locked(br, &wake);
    corio__spin_unlock(&br->spin);
    corio__wq_wake_batch(&wake);
    return rc;
}

int corio_barrier_wait(corio_barrier *b)
{
    struct corio__barrier *br = barrier_of(b);
    return br ? barrier_wait(br) : -EINVAL;
}

static int wait_op(void *br)
{
    return barrier_wait(br);
}

int corio_barrier_wait_timeout(corio_barrier *b, int64_t timeout_ns)
{
    struct corio__barrier *br = barrier_of(b);
    if (!br || timeout_ns < 0)
        return -EINVAL;
    if (!corio_current_task())
        return -EPERM;
    return corio__sync_timed(timeout_ns, wait_op, br);
}

/* Set a new state (reset or abort) and wake everybody to look at it. */
static int change_state(corio_barrier *b, bool abort)
{
    struct corio__barrier *br = barrier_of(b);
    if (!br)
        return -EINVAL;
    struct corio__wq_batch wake;
    corio__wq_batch_init(&wake);
    corio__spin_lock(&br->spin);
    if (abort)
        br->state = BARRIER_BROKEN;
    else if (br->count > 0)
        br->state = BARRIER_RESETTING;
    else
        br->state = BARRIER_FILLING;
    wake_all_locked(br, &wake);
    corio__spin_unlock(&br->spin);
    corio__wq_wake_batch(&wake);
    return 0;
}

int corio_barrier_reset(corio_barrier *b)
{
    return change_state(b, false);
}

int corio_barrier_abort(corio_barrier *b)
{
    return change_state(b, true);
}

unsigned corio_barrier_parties(const corio_barrier *b)
{
    struct corio__barrier *br = barrier_of(b);
    return br ? br->parties : 0;
}

unsigned corio_barrier_n_waiting(const corio_barrier *b)
{
    struct corio__barrier *br = barrier_of(b);
    if (!br)
        return 0;
    corio__spin_lock(&br->spin);
    unsigned n = br->state == BARRIER_FILLING ? br->count : 0;
    corio__spin_unlock(&br->spin);
    return n;
}

bool corio_barrier_broken(const corio_barrier *b)
{
    struct corio__barrier *br = barrier_of(b);
    if (!br)
        return false;
    corio__spin_lock(&br->spin);
    bool broken = br->state == BARRIER_BROKEN;
    corio__spin_unlock(&br->spin);
    return broken;
}
