/* io/multi.c - multishot requests: one submission, many results.
 *
 * A server's accept loop asks the kernel once (IORING_ACCEPT_MULTISHOT)
 * instead of once per connection. The owner worker's backend calls
 * corio__io_multi_push() for every completion: a result with CQE_F_MORE is
 * queued under m->lock and wakes the task if it waits; the last one (no
 * F_MORE: an error, a cancellation, or the kernel giving up) is queued too,
 * unless it is our own cancellation, and then ends the request through
 * op.done (0 -> 1 -> 2, as one operation ends: io/backend.h), the owner's
 * last touch of @m. The task takes results in order; when it finds the
 * queue empty and the request ended, it submits a new one on its current
 * worker (DESIGN.md: a multishot request that ends without F_MORE is
 * re-armed), so a one-off error such as EMFILE does not stop a server.
 *
 * Cancellation: the task moves to the owner, asks it to cancel the request,
 * and waits for the end; what was queued meanwhile is discarded (accepted
 * descriptors are closed), as one cancelled accept would not have taken
 * them. On a backend without multishot (epoll), or a kernel whose accept
 * refuses the multishot flag (before 5.19: the request's first and only
 * result is -EINVAL), each result is one operation, awaited as
 * corio__io_await() does. A cancellation is delivered before any queued
 * result, as at any await, so a flood of connections cannot hold it off.
 */
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "internal.h"

#define FIRST_CAP 16   /* results queued before the first growth; a burst doubles it */

static void close_fd(int res)
{
    if (res >= 0)
        close(res);
}

void corio__io_multi_init_accept(struct corio__io_multi *m, int fd)
{
    *m = (struct corio__io_multi){
        .op = {.code = CORIO__IO_ACCEPT, .fd = fd, .flags = SOCK_NONBLOCK | SOCK_CLOEXEC},
        .discard = close_fd,
    };
    corio__spin_init(&m->lock);
}

/* Owner, under the lock. false when the queue cannot grow. */
static bool queue_result(struct corio__io_multi *m, int res)
{
    if (m->count == m->cap) {
        uint32_t cap = m->cap ? m->cap * 2 : FIRST_CAP;
        int *r = malloc(cap * sizeof *r);
        if (!r)
            return false;
        for (uint32_t i = 0; i < m->count; i++)
            r[i] = m->results[(m->head + i) % m->cap];
        free(m->results);
        m->results = r;
        m->head = 0;
        m->cap = cap;
    }
    m->results[(m->head + m->count++) % m->cap] = res;
    return true;
}

void corio__io_multi_push(struct corio__io_op *op, int res, bool more)
{
    struct corio__io_multi *m = corio__container_of(op, struct corio__io_multi, op);
    bool ours = res == -ECANCELED && (op->state & CORIO__OP_CANCELING);
    corio__spin_lock(&m->lock);
    bool lost = !ours && !queue_result(m, res);
    bool wake = m->waiting;
    m->waiting = false;
    struct corio_task *t = op->task;
    if (!more)
        atomic_store_explicit(&op->done, 1, memory_order_release);
    corio__spin_unlock(&m->lock);
    if (lost)
        m->discard(res);   /* out of memory: as if that accept had failed */
    if (wake || !more)
        corio__task_wake(t);
    if (!more) {
        op->res = res;
        /* Pairs with the acquire loads in wait_end() and corio__io_multi_next(). */
        atomic_store_explicit(&op->done, 2, memory_order_release);
    }
}

/* Under the lock: the oldest queued result, false when there is none. */
static bool pop_result(struct corio__io_multi *m, int *res)
{
    if (!m->count)
        return false;
    *res = m->results[m->head];
    m->head = (m->head + 1) % m->cap;
    m->count--;
    return true;
}

static int arm(struct corio__io_multi *m, struct corio_task *t)
{
    struct corio__worker *w = corio__worker_current();
    m->op.task = t;
    m->op.owner = w;
    m->op.state = CORIO__OP_MULTISHOT;
    m->op.pooled = false;
    atomic_store_explicit(&m->op.done, 0, memory_order_relaxed);
    int rc = w->io_ops->submit(w, &m->op);
    if (rc < 0)
        return rc;
    corio__stat_add(w->m_io_submitted, 1);
    m->armed = true;
    m->fresh = true;
    return 0;
}

/* Wait until the owner's last touch of the ended request. */
static void wait_end(struct corio__io_multi *m, struct corio_task *t)
{
    uint32_t d;
    while ((d = atomic_load_explicit(&m->op.done, memory_order_acquire)) != 2) {
        if (d == 1) {
            sched_yield();   /* the owner is between its two stores */
            continue;
        }
        corio__spin_lock(&m->lock);
        bool live = atomic_load_explicit(&m->op.done, memory_order_relaxed) == 0;
        m->waiting = live;
        corio__spin_unlock(&m->lock);
        if (live)
            corio__task_park(t, PARK_IO_MULTISHOT_END);
    }
    m->armed = false;
}

static void stop(struct corio__io_multi *m, struct corio_task *t)
{
    if (m->armed) {
        corio__task_migrate(t, m->op.owner);
        if (atomic_load_explicit(&m->op.done, memory_order_acquire) == 0)
            m->op.owner->io_ops->cancel(m->op.owner, &m->op);
        wait_end(m, t);
    }
    int res;
    corio__spin_lock(&m->lock);
    while (pop_result(m, &res)) {
        corio__spin_unlock(&m->lock);
        m->discard(res);
        corio__spin_lock(&m->lock);
    }
    corio__spin_unlock(&m->lock);
}

/* One result per call on a backend that has no multishot requests. */
static int one_shot(struct corio__io_multi *m)
{
    struct corio__io_op op = {.code = m->op.code, .fd = m->op.fd, .flags = m->op.flags};
    return corio__io_await(&op);
}

int corio__io_multi_next(struct corio__io_multi *m)
{
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;
    if ((m->one_shot || !corio__worker_current()->io_ops->multishot) && !m->armed)
        return one_shot(m);
    for (;;) {
        if (corio__task_take_cancel(t)) {
            stop(m, t);
            return -ECANCELED;
        }
        int res;
        corio__spin_lock(&m->lock);
        if (pop_result(m, &res)) {
            corio__spin_unlock(&m->lock);
            bool first = m->fresh;
            m->fresh = false;
            if (first && res == -EINVAL &&
                atomic_load_explicit(&m->op.done, memory_order_acquire) != 0) {
                /* The kernel refused the flag, or @fd cannot accept at all:
                 * one plain accept tells which, and serves from now on. */
                wait_end(m, t);
                m->one_shot = true;
                return one_shot(m);
            }
            /* A result taken without suspending counts against the budget,
             * as a ready future does, so a burst cannot hog the worker. */
            corio__task_spend_budget(t);
            return res;
        }
        bool ended = atomic_load_explicit(&m->op.done, memory_order_acquire) != 0;
        bool park = m->armed && !ended;
        m->waiting = park;
        corio__spin_unlock(&m->lock);
        if (park) {
            corio__task_park(t, PARK_IO_MULTISHOT);
            continue;
        }
        if (m->armed)
            wait_end(m, t);   /* ended by the kernel: every result is queued */
        corio__spin_lock(&m->lock);
        bool queued = m->count != 0;
        corio__spin_unlock(&m->lock);
        if (queued)
            continue;
        int rc = arm(m, t);
        if (rc < 0)
            return rc;
    }
}

void corio__io_multi_close(struct corio__io_multi *m)
{
    struct corio_task *t = corio_current_task();
    if (t)
        stop(m, t);
    free(m->results);
    m->results = NULL;
    m->cap = m->count = m->head = 0;
}
