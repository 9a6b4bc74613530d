/* core/semaphore.c - asyncio.Semaphore and BoundedSemaphore.
 *
 * Everything is under the spinlock: a counter of free permits and the FIFO
 * of waiters. Invariant: value > 0 only while nobody waits. An acquire
 * takes a permit when value > 0 (so nobody waits either) and queues
 * otherwise; a release with waiters hands its permit straight to the first
 * (value stays 0), as 3.12's _wake_up_next() does by decrementing for the
 * waiter it wakes. So a late acquirer never takes a permit ahead of one
 * that waits, and no permit is granted twice.
 *
 * A waiter cancelled while queued leaves with nothing; one cancelled while
 * being handed a permit (CORIO__WQ_WOKEN_CANCELLED) gives it back, to the
 * next waiter or to the counter, without the bound check (the permit was
 * counted as taken), and returns -ECANCELED: asyncio's "undo the
 * bookkeeping and wake someone else".
 */
#include <string.h>

#include "sync.h"


static struct corio__sem *sem_of(const corio_semaphore *s)
{
    struct corio__sem *m = (struct corio__sem *)(void *)(uintptr_t)s;
    return m && m->magic == CORIO__SEM_MAGIC ? m : NULL;
}

static int init(corio_semaphore *s, int64_t value, bool bounded)
{
    if (!s || value < 0)
        return -EINVAL;
    struct corio__sem *m = (struct corio__sem *)(void *)s;
    memset(s, 0, sizeof *s);
    corio__spin_init(&m->spin);
    corio__wq_init(&m->wq);
    m->value = value;
    m->bound = value;
    m->bounded = bounded;
    m->magic = CORIO__SEM_MAGIC;
    return 0;
}

int corio_semaphore_init(corio_semaphore *s, int64_t value)
{
    return init(s, value, false);
}

int corio_bounded_semaphore_init(corio_semaphore *s, int64_t value)
{
    return init(s, value, true);
}

int corio_semaphore_close(corio_semaphore *s)
{
    struct corio__sem *m = sem_of(s);
    if (!m)
        return -EINVAL;
    corio__spin_lock(&m->spin);
    int rc = corio__wq_quiet(&m->wq) ? 0 : -EBUSY;
    if (rc == 0)
        m->magic = 0;
    corio__spin_unlock(&m->spin);
    return rc;
}

/* Under the spinlock: give one permit to the first waiter (into @b) or to
 * the counter. */
static int give_locked(struct corio__sem *m, struct corio__wq_batch *b, bool check_bound)
{
    /* Checked first, as asyncio does (a BoundedSemaphore(0) refuses every
     * release, waiters or not); with waiters value is 0. */
    if (check_bound && m->bounded && m->value >= m->bound)
        return -EOVERFLOW;   /* asyncio: ValueError('BoundedSemaphore released too many times') */
    if (corio__wq_pop_to(&m->wq, b))
        return 0;
    if (m->value == INT64_MAX)
        return -EOVERFLOW;
    m->value++;
    return 0;
}

static int give(struct corio__sem *m, bool check_bound)
{
    struct corio__wq_batch b;
    corio__wq_batch_init(&b);
    corio__spin_lock(&m->spin);
    int rc = give_locked(m, &b, check_bound);
    corio__spin_unlock(&m->spin);
    corio__wq_wake_batch(&b);
    return rc;
}

/* Takes a free permit without waiting: true when taken. Under the spinlock. */
static bool take_locked(struct corio__sem *m)
{
    if (m->value > 0) {
        m->value--;
        return true;
    }
    return false;
}

static int acquire(struct corio__sem *m)
{
    corio__spin_lock(&m->spin);
    if (take_locked(m)) {
        corio__spin_unlock(&m->spin);
        return 0;
    }
    struct corio_task *t = corio_current_task();
    if (!t) {
        corio__spin_unlock(&m->spin);
        return -EPERM;
    }
    struct corio__wq_node node;
    node.data = 0;
    corio__wq_push(&m->wq, &node, t);
    int rc = corio__wq_wait(&m->wq, &m->spin, &node);
    if (rc == CORIO__WQ_WOKEN_CANCELLED) {
        give(m, false);
        rc = -ECANCELED;
    }
    corio__wq_leave(&m->wq);
    return rc;
}

int corio_semaphore_acquire(corio_semaphore *s)
{
    struct corio__sem *m = sem_of(s);
    return m ? acquire(m) : -EINVAL;
}

static int acquire_op(void *m)
{
    return acquire(m);
}

int corio_semaphore_acquire_timeout(corio_semaphore *s, int64_t timeout_ns)
{
    struct corio__sem *m = sem_of(s);
    if (!m || timeout_ns < 0)
        return -EINVAL;
    corio__spin_lock(&m->spin);
    bool took = take_locked(m);
    corio__spin_unlock(&m->spin);
    if (took)
        return 0;
    if (!corio_current_task())
        return -EPERM;
    return corio__sync_timed(timeout_ns, acquire_op, m);
}

int corio_semaphore_release(corio_semaphore *s)
{
    struct corio__sem *m = sem_of(s);
    return m ? give(m, true) : -EINVAL;
}

bool corio_semaphore_locked(const corio_semaphore *s)
{
    struct corio__sem *m = sem_of(s);
    if (!m)
        return false;
    corio__spin_lock(&m->spin);
    bool locked = m->value == 0 || !corio__wq_empty(&m->wq);
    corio__spin_unlock(&m->spin);
    return locked;
}

int64_t corio_semaphore_value(const corio_semaphore *s)
{
    struct corio__sem *m = sem_of(s);
    if (!m)
        return -EINVAL;
    corio__spin_lock(&m->spin);
    int64_t v = m->value;
    corio__spin_unlock(&m->spin);
    return v;
}
