/* core/queue.c - asyncio.Queue, LifoQueue and PriorityQueue for tasks on
 * many workers (corio/queue.h).
 *
 * One spinlock guards everything: the buffer, the counters and three wait
 * queues (core/waitq.h) of tasks blocked in get (getters), put (putters)
 * and join (joiners). A blocked task's node lives on its own stack inside a
 * struct qwait that carries the item and the outcome (rc) the waker chose.
 *
 * Hand-off, decided under the lock, so a woken task never re-checks and
 * nothing can overtake it:
 *   - put with a getter waiting gives the item to the oldest getter (the
 *     queue is then necessarily empty: getters wait only on an empty queue);
 *   - get from a full queue with a putter waiting moves the oldest putter's
 *     item in (the queue is then necessarily full: putters wait only on a
 *     full one; there is room since get just took one) and counts it put;
 *   - shutdown wakes every getter and putter with -ESHUTDOWN (rc).
 * Invariants: getters waiting => count == 0; putters waiting => count ==
 * maxsize > 0; so both never wait at once.
 *
 * Cancellation racing a hand-off (corio__wq_wait() returns
 * CORIO__WQ_WOKEN_CANCELLED): a granted getter keeps its item and a granted
 * putter its success, and the cancellation is re-armed for the task's next
 * suspension (a joiner woken by the last task_done too); a task woken
 * with an error (shutdown) returns -ECANCELED: it was given nothing. So an item is never lost or
 * duplicated, and a failed put never leaves its item in the queue.
 *
 * Lifetime: each of the three wait queues counts the tasks between pushing
 * their node and leaving corio__wq_wait() (which may still take the lock
 * after being woken, to settle a cancellation); close refuses (-EBUSY)
 * while one of them is not quiet, so the caller may free the memory once
 * close succeeded.
 *
 * The buffer is a power-of-two ring of void * (FIFO takes at the head, LIFO
 * at the tail) or a binary min-heap of (priority, seq, item) for the
 * priority kind; it is allocated, and grown by doubling, outside the lock
 * (malloc never runs under a spinlock), then swapped in under it.
 */
#include <stdlib.h>
#include <string.h>

#include "corio/queue.h"
#include "internal.h"
#include "waitq.h"

#define QUEUE_MAGIC 0x71756575u   /* "queu": catches use after close */
#define FIRST_CAP_UNBOUNDED 16
#define FIRST_CAP_MAX 1024        /* a huge maxsize is not allocated up front */

struct hentry {
    int64_t prio;
    uint64_t seq;                 /* put order: FIFO among equal priorities */
    void *item;
};

struct queue {
    _Atomic uint32_t magic;
    uint8_t kind;
    bool shut;
    struct corio__spin lock;
    int64_t maxsize;
    size_t count;
    size_t head;                  /* ring: the oldest item's slot */
    size_t cap;                   /* slots in buf (a power of two) */
    void *buf;                    /* void *[cap] or struct hentry[cap] */
    uint64_t seq;
    uint64_t unfinished;          /* put and not task_done'd */
    struct corio__waitq getters, putters, joiners;
};

_Static_assert(sizeof(struct queue) <= sizeof(corio_queue), "corio_queue is too small");
_Static_assert(_Alignof(struct queue) <= _Alignof(corio_queue), "corio_queue alignment");

/* A blocked task's record, on its stack. */
struct qwait {
    struct corio__wq_node node;   /* node.data: the item, either way */
    int64_t prio;
    int rc;                       /* set by the waker: 0 granted, or -ESHUTDOWN */
};

static struct queue *queue_of(corio_queue *q) { return (struct queue *)(void *)q; }

static bool is_open(struct queue *q)
{
    return atomic_load_explicit(&q->magic, memory_order_relaxed) == QUEUE_MAGIC;
}

/* Takes the lock of an open queue; false (lock not held) when @cq is NULL
 * or closed. The unlocked check first keeps a never-initialized object
 * from spinning on a garbage lock; the locked one catches a racing close. */
static struct queue *lock_open(corio_queue *cq)
{
    struct queue *q = cq ? queue_of(cq) : NULL;
    if (!q || !is_open(q))
        return NULL;
    corio__spin_lock(&q->lock);
    if (!is_open(q)) {
        corio__spin_unlock(&q->lock);
        return NULL;
    }
    return q;
}

static bool is_full(const struct queue *q)
{
    return q->maxsize > 0 && q->count >= (uint64_t)q->maxsize;
}

/* ---- the buffer (under the lock) ---- */

static bool heap_less(const struct hentry *a, const struct hentry *b)
{
    return a->prio < b->prio || (a->prio == b->prio && a->seq < b->seq);
}

static void heap_push(struct hentry *h, size_t n, struct hentry e)
{
    size_t i = n;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

/* Removes and returns the smallest of the @n entries (n > 0). */
static struct hentry heap_pop(struct hentry *h, size_t n)
{
    struct hentry top = h[0], last = h[--n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_less(&h[c + 1], &h[c]))
            c++;
        if (!heap_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (n)
        h[i] = last;
    return top;
}

/* Needs count < cap. */
static void store(struct queue *q, void *item, int64_t prio)
{
    if (q->kind == CORIO_QUEUE_PRIORITY) {
        struct hentry e = { prio, q->seq++, item };
        heap_push(q->buf, q->count, e);
    } else {
        ((void **)q->buf)[(q->head + q->count) & (q->cap - 1)] = item;
    }
    q->count++;
}

/* Needs count > 0. */
static void *take(struct queue *q, int64_t *prio)
{
    void **ring = q->buf;
    void *item;
    *prio = 0;
    if (q->kind == CORIO_QUEUE_PRIORITY) {
        struct hentry e = heap_pop(q->buf, q->count);
        *prio = e.prio;
        item = e.item;
    } else if (q->kind == CORIO_QUEUE_LIFO) {
        item = ring[(q->head + q->count - 1) & (q->cap - 1)];
    } else {
        item = ring[q->head];
        q->head = (q->head + 1) & (q->cap - 1);
    }
    q->count--;
    return item;
}

static size_t first_cap(const struct queue *q)
{
    if (q->maxsize == 0 || q->maxsize > FIRST_CAP_MAX)
        return q->maxsize == 0 ? FIRST_CAP_UNBOUNDED : FIRST_CAP_MAX;
    size_t c = 1;
    while (c < (size_t)q->maxsize)
        c <<= 1;
    return c;
}

/* Without the lock: replace a buffer of @seen slots by one twice as big
 * (unless somebody did already). 0 (retry the put) or -ENOMEM. */
static int grow(struct queue *q, size_t seen)
{
    size_t elem = q->kind == CORIO_QUEUE_PRIORITY ? sizeof(struct hentry) : sizeof(void *);
    size_t cap = seen ? seen * 2 : first_cap(q);
    if (cap < seen || cap > SIZE_MAX / elem)
        return -ENOMEM;
    void *nb = malloc(cap * elem), *old = NULL;
    if (!nb)
        return -ENOMEM;
    corio__spin_lock(&q->lock);
    if (q->cap == seen && is_open(q)) {
        /* O(count) under the lock, once per doubling. */
        if (q->kind == CORIO_QUEUE_PRIORITY) {
            if (q->count)
                memcpy(nb, q->buf, q->count * elem);
        } else {
            void **src = q->buf, **dst = nb;
            for (size_t i = 0; i < q->count; i++)
                dst[i] = src[(q->head + i) & (seen - 1)];
        }
        old = q->buf;
        q->buf = nb;
        q->cap = cap;
        q->head = 0;
        nb = NULL;
    }
    corio__spin_unlock(&q->lock);
    free(old);
    free(nb);
    return 0;
}

/* ---- waking ---- */

static void wake_one(struct corio__wq_node *n)
{
    struct corio__wq_batch b;
    corio__wq_batch_init(&b);
    corio__wq_batch_add(&b, n);
    corio__wq_wake_batch(&b);
}

static void pop_all(struct corio__waitq *wq, struct corio__wq_batch *b, int rc)
{
    struct corio__wq_node *n;
    while ((n = corio__wq_pop_to(wq, b)))
        corio__container_of(n, struct qwait, node)->rc = rc;
}

/* With the lock held and @w pushed on @wq: wait, and turn the outcome into
 * the call's result (the protocol in the essay above). */
static int wait_on(struct queue *q, struct corio__waitq *wq, struct qwait *w)
{
    int rc = corio__wq_wait(wq, &q->lock, &w->node);
    corio__wq_leave(wq);   /* the last touch of @q (corio_queue_close) */
    if (rc == 0)
        return w->rc;
    if (rc == CORIO__WQ_WOKEN_CANCELLED && w->rc == 0) {
        corio__wq_rearm_cancel();
        return 0;
    }
    return -ECANCELED;
}

/* ---- put and get ---- */

/* A suspending call that did not suspend still spends the task's budget
 * (as awaiting a done future does), so a producer into an unbounded queue
 * lets others run. */
static int done_fast(struct corio_task *self)
{
    if (self)
        corio__task_spend_budget(self);
    return 0;
}

/* @self: the current task, or NULL for a call that must not suspend. */
static int qput(corio_queue *cq, void *item, int64_t prio, struct corio_task *self)
{
    for (;;) {
        struct queue *q = lock_open(cq);
        if (!q)
            return -EINVAL;
        if (q->shut) {
            corio__spin_unlock(&q->lock);
            return -ESHUTDOWN;
        }
        struct corio__wq_node *n = corio__wq_pop(&q->getters);
        if (n) {
            struct qwait *g = corio__container_of(n, struct qwait, node);
            n->data = (uintptr_t)item;
            g->prio = q->kind == CORIO_QUEUE_PRIORITY ? prio : 0;
            g->rc = 0;
            q->unfinished++;
            corio__spin_unlock(&q->lock);
            wake_one(n);
            return done_fast(self);
        }
        if (!is_full(q)) {
            if (q->count < q->cap) {
                store(q, item, prio);
                q->unfinished++;
                corio__spin_unlock(&q->lock);
                return done_fast(self);
            }
            size_t seen = q->cap;
            corio__spin_unlock(&q->lock);
            int rc = grow(q, seen);
            if (rc < 0)
                return rc;
            continue;
        }
        if (!self) {
            corio__spin_unlock(&q->lock);
            return -EAGAIN;
        }
        struct qwait w = { .prio = prio, .rc = 0 };
        w.node.data = (uintptr_t)item;
        corio__wq_push(&q->putters, &w.node, self);
        return wait_on(q, &q->putters, &w);
    }
}

static int qget(corio_queue *cq, void **item, int64_t *prio, struct corio_task *self)
{
    struct queue *q = lock_open(cq);
    if (!q)
        return -EINVAL;
    if (q->count) {
        int64_t pr;
        void *it = take(q, &pr);
        struct corio__wq_node *n = corio__wq_pop(&q->putters);
        if (n) {
            struct qwait *p = corio__container_of(n, struct qwait, node);
            store(q, (void *)n->data, p->prio);   /* room: one was just taken */
            q->unfinished++;
            p->rc = 0;
        }
        corio__spin_unlock(&q->lock);
        if (n)
            wake_one(n);
        if (item)
            *item = it;
        if (prio)
            *prio = pr;
        return done_fast(self);
    }
    if (q->shut || !self) {
        int rc = q->shut ? -ESHUTDOWN : -EAGAIN;
        corio__spin_unlock(&q->lock);
        return rc;
    }
    struct qwait w = { .prio = 0, .rc = 0 };
    w.node.data = 0;
    corio__wq_push(&q->getters, &w.node, self);
    int rc = wait_on(q, &q->getters, &w);
    if (rc == 0) {
        if (item)
            *item = (void *)w.node.data;
        if (prio)
            *prio = w.prio;
    }
    return rc;
}

/* A suspending call's checks: -EINVAL before -EPERM. */
static int check_task(corio_queue *q, struct corio_task **self)
{
    if (!q || !is_open(queue_of(q)))
        return -EINVAL;
    *self = corio_current_task();
    return *self ? 0 : -EPERM;
}

static int qput_timeout(corio_queue *q, void *item, int64_t prio, int64_t timeout_ns)
{
    struct corio_task *self;
    int rc = check_task(q, &self);
    if (rc < 0)
        return rc;
    if (timeout_ns < 0)
        return -EINVAL;
    rc = qput(q, item, prio, NULL);
    if (rc != -EAGAIN)
        return rc;
    if (timeout_ns == 0)
        return -ETIMEDOUT;   /* asyncio.timeout(0) expires at the first wait */
    corio_timeout tm;
    rc = corio_timeout_enter(&tm, timeout_ns);
    if (rc < 0)
        return rc;
    return corio_timeout_exit(&tm, qput(q, item, prio, self));
}

static int qget_timeout(corio_queue *q, void **item, int64_t *prio, int64_t timeout_ns)
{
    struct corio_task *self;
    int rc = check_task(q, &self);
    if (rc < 0)
        return rc;
    if (timeout_ns < 0)
        return -EINVAL;
    rc = qget(q, item, prio, NULL);
    if (rc != -EAGAIN)
        return rc;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    corio_timeout tm;
    rc = corio_timeout_enter(&tm, timeout_ns);
    if (rc < 0)
        return rc;
    return corio_timeout_exit(&tm, qget(q, item, prio, self));
}

/* ---- the public functions ---- */

int corio_queue_init(corio_queue *cq, int kind, int64_t maxsize)
{
    if (!cq || maxsize < 0 ||
        (kind != CORIO_QUEUE_FIFO && kind != CORIO_QUEUE_LIFO && kind != CORIO_QUEUE_PRIORITY))
        return -EINVAL;
    struct queue *q = queue_of(cq);
    memset(q, 0, sizeof *q);
    q->kind = (uint8_t)kind;
    q->maxsize = maxsize;
    corio__spin_init(&q->lock);
    corio__wq_init(&q->getters);
    corio__wq_init(&q->putters);
    corio__wq_init(&q->joiners);
    atomic_init(&q->magic, QUEUE_MAGIC);
    return 0;
}

int corio_queue_close(corio_queue *cq)
{
    struct queue *q = lock_open(cq);
    if (!q)
        return -EINVAL;
    if (!corio__wq_quiet(&q->getters) || !corio__wq_quiet(&q->putters) ||
        !corio__wq_quiet(&q->joiners)) {
        corio__spin_unlock(&q->lock);
        return -EBUSY;
    }
    atomic_store_explicit(&q->magic, 0, memory_order_relaxed);
    void *buf = q->buf;
    q->buf = NULL;
    q->cap = q->count = 0;
    corio__spin_unlock(&q->lock);
    free(buf);
    return 0;
}

int corio_queue_put(corio_queue *q, void *item)
{
    struct corio_task *self;
    int rc = check_task(q, &self);
    return rc < 0 ? rc : qput(q, item, 0, self);
}

int corio_queue_put_nowait(corio_queue *q, void *item)
{
    return qput(q, item, 0, NULL);
}

int corio_queue_put_timeout(corio_queue *q, void *item, int64_t timeout_ns)
{
    return qput_timeout(q, item, 0, timeout_ns);
}

int corio_queue_put_prio(corio_queue *q, void *item, int64_t prio)
{
    struct corio_task *self;
    int rc = check_task(q, &self);
    return rc < 0 ? rc : qput(q, item, prio, self);
}

int corio_queue_put_prio_nowait(corio_queue *q, void *item, int64_t prio)
{
    return qput(q, item, prio, NULL);
}

int corio_queue_put_prio_timeout(corio_queue *q, void *item, int64_t prio, int64_t timeout_ns)
{
    return qput_timeout(q, item, prio, timeout_ns);
}

int corio_queue_get(corio_queue *q, void **item)
{
    struct corio_task *self;
    int rc = check_task(q, &self);
    return rc < 0 ? rc : qget(q, item, NULL, self);
}

int corio_queue_get_nowait(corio_queue *q, void **item)
{
    return qget(q, item, NULL, NULL);
}

int corio_queue_get_timeout(corio_queue *q, void **item, int64_t timeout_ns)
{
    return qget_timeout(q, item, NULL, timeout_ns);
}

int corio_queue_get_prio(corio_queue *q, void **item, int64_t *prio)
{
    struct corio_task *self;
    int rc = check_task(q, &self);
    return rc < 0 ? rc : qget(q, item, prio, self);
}

int corio_queue_get_prio_nowait(corio_queue *q, void **item, int64_t *prio)
{
    return qget(q, item, prio, NULL);
}

int corio_queue_get_prio_timeout(corio_queue *q, void **item, int64_t *prio,
                                 int64_t timeout_ns)
{
    return qget_timeout(q, item, prio, timeout_ns);
}

int64_t corio_queue_qsize(corio_queue *cq)
{
    struct queue *q = lock_open(cq);
    if (!q)
        return -EINVAL;
    int64_t n = (int64_t)q->count;
    corio__spin_unlock(&q->lock);
    return n;
}

int64_t corio_queue_maxsize(corio_queue *cq)
{
    struct queue *q = cq ? queue_of(cq) : NULL;
    /* Fixed at init: no lock needed. */
    return q && is_open(q) ? q->maxsize : -EINVAL;
}

bool corio_queue_empty(corio_queue *cq)
{
    struct queue *q = lock_open(cq);
    if (!q)
        return false;
    bool e = q->count == 0;
    corio__spin_unlock(&q->lock);
    return e;
}

bool corio_queue_full(corio_queue *cq)
{
    struct queue *q = lock_open(cq);
    if (!q)
        return false;
    bool f = is_full(q);
    corio__spin_unlock(&q->lock);
    return f;
}

int corio_queue_task_done(corio_queue *cq)
{
    struct queue *q = lock_open(cq);
    if (!q)
        return -EINVAL;
    if (q->unfinished == 0) {
        corio__spin_unlock(&q->lock);
        return -EINVAL;   /* asyncio: ValueError, task_done() called too many times */
    }
    struct corio__wq_batch b;
    corio__wq_batch_init(&b);
    if (--q->unfinished == 0)
        pop_all(&q->joiners, &b, 0);
    corio__spin_unlock(&q->lock);
    corio__wq_wake_batch(&b);
    return 0;
}

int corio_queue_join(corio_queue *cq)
{
    struct corio_task *self;
    int rc = check_task(cq, &self);
    if (rc < 0)
        return rc;
    struct queue *q = lock_open(cq);
    if (!q)
        return -EINVAL;
    if (q->unfinished == 0) {
        corio__spin_unlock(&q->lock);
        return done_fast(self);
    }
    struct qwait w = { .prio = 0, .rc = 0 };
    w.node.data = 0;
    corio__wq_push(&q->joiners, &w.node, self);
    return wait_on(q, &q->joiners, &w);
}

int corio_queue_shutdown(corio_queue *cq, bool immediate)
{
    struct queue *q = lock_open(cq);
    if (!q)
        return -EINVAL;
    struct corio__wq_batch b;
    corio__wq_batch_init(&b);
    q->shut = true;
    if (immediate) {
        /* asyncio 3.13: each item dropped counts as task_done'd. */
        uint64_t dropped = q->count < q->unfinished ? q->count : q->unfinished;
        q->unfinished -= dropped;
        q->count = 0;
        q->head = 0;
        if (q->unfinished == 0)
            pop_all(&q->joiners, &b, 0);
    }
    pop_all(&q->getters, &b, -ESHUTDOWN);
    pop_all(&q->putters, &b, -ESHUTDOWN);
    corio__spin_unlock(&q->lock);
    corio__wq_wake_batch(&b);
    return 0;
}
