/* corio/queue.h - queues between tasks (asyncio.Queue, LifoQueue,
 * PriorityQueue, Python 3.13, shutdown included), safe across workers.
 *
 * A queue holds void * items (and, in a priority queue, a 64-bit priority
 * per item). Producers and consumers may run in parallel on any workers; the
 * _nowait functions, qsize/empty/full/maxsize, task_done and shutdown may be
 * called from any thread, the suspending ones (put, get, join and their
 * _timeout forms) only from a task.
 *
 * Kinds: CORIO_QUEUE_FIFO (asyncio.Queue), CORIO_QUEUE_LIFO (LifoQueue),
 * CORIO_QUEUE_PRIORITY (PriorityQueue of (priority, count, item) tuples:
 * smallest priority first, first in first out among equal priorities).
 * maxsize 0 is unbounded; a negative maxsize is refused (-EINVAL).
 *
 * The object is the caller's (init/close), normally embedded in a struct or
 * on a stack that outlives every task using it; its fields are private.
 * close with tasks still waiting on it is -EBUSY; any call after close is
 * -EINVAL until the next init.
 *
 * Errors, as asyncio names them:
 *   -EAGAIN     QueueFull (put_nowait) / QueueEmpty (get_nowait)
 *   -ESHUTDOWN  QueueShutDown: put after shutdown(); get on an empty queue
 *               after shutdown() (items left by a non-immediate shutdown can
 *               still be got); tasks blocked in put/get when shutdown()
 *               happens return it
 *   -EINVAL     misuse: NULL or closed queue, bad kind, negative maxsize or
 *               timeout, task_done() called more times than items were put
 *               (ValueError)
 *   -ECANCELED  the task was cancelled while blocked; -ETIMEDOUT a _timeout
 *               form ran out of time; -EPERM a suspending call outside a
 *               task; -ENOMEM no memory to grow the queue's buffer
 *
 * Differences from asyncio, for speed with tasks on many workers: an item
 * put while a getter waits is handed to the oldest waiting getter at once
 * (so it never shows in qsize(), and a get_nowait() cannot overtake that
 * getter), and a putter blocked on a full queue has its item moved in by the
 * get that frees the slot. A blocked task that is cancelled after being
 * handed its item (or after its item was moved in, or after join was
 * released) keeps the success: get returns 0 with the item, put and join
 * return 0, and the cancellation is delivered at the task's next suspension
 * instead (asyncio would raise CancelledError and leave the item queued). So an item is never lost and never
 * delivered twice, and "put returned an error" always means "the item is
 * not in the queue".
 */
#ifndef CORIO_QUEUE_H
#define CORIO_QUEUE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum corio_queue_kind {
    CORIO_QUEUE_FIFO = 0,      /* asyncio.Queue */
    CORIO_QUEUE_LIFO = 1,      /* asyncio.LifoQueue */
    CORIO_QUEUE_PRIORITY = 2,  /* asyncio.PriorityQueue */
};

/* A queue, owned by the caller; its fields are private. */
typedef struct corio_queue {
    uint64_t private_[24];
} corio_queue;

/* corio_queue_init - make @q an empty queue of @kind (enum corio_queue_kind)
 * holding at most @maxsize items (0: unbounded) (asyncio.Queue(maxsize)).
 * Allocates nothing until the first item is stored.
 * Returns 0, -EINVAL (@q NULL, unknown @kind, @maxsize < 0).
 * Call from: any thread. */
CORIO_API int corio_queue_init(corio_queue *q, int kind, int64_t maxsize);

/* corio_queue_close - free @q's buffer; items still in it are dropped (they
 * are the caller's). @q's memory may be reused when this returns 0.
 * Returns 0, -EBUSY (a task waits in put, get or join, or is still leaving
 * such a wait: @q is left open), -EINVAL (NULL, not initialized, closed).
 * Call from: any thread. */
CORIO_API int corio_queue_close(corio_queue *q);

/* corio_queue_put - put @item, suspending while the queue is full
 * (await Queue.put(item)). In a priority queue @item gets priority 0.
 * Returns 0, -ESHUTDOWN (shut down before or while waiting: @item was not
 * put), -ECANCELED (cancelled while waiting: @item was not put), -ENOMEM,
 * -EINVAL, -EPERM (not in a task). Call from: a task. */
CORIO_API int corio_queue_put(corio_queue *q, void *item);

/* corio_queue_put_nowait - put @item without waiting (Queue.put_nowait).
 * Returns 0, -EAGAIN (full: QueueFull), -ESHUTDOWN, -ENOMEM, -EINVAL.
 * Call from: any thread. */
CORIO_API int corio_queue_put_nowait(corio_queue *q, void *item);

/* corio_queue_put_timeout - corio_queue_put() for at most @timeout_ns
 * (async with asyncio.timeout(t): await q.put(item)); a put that needs no
 * wait succeeds even with @timeout_ns 0. Returns corio_queue_put()'s codes,
 * -ETIMEDOUT (@item was not put), -EINVAL also for @timeout_ns < 0.
 * Call from: a task. */
CORIO_API int corio_queue_put_timeout(corio_queue *q, void *item, int64_t timeout_ns);

/* corio_queue_put_prio - corio_queue_put() of @item with priority @prio
 * (PriorityQueue.put((prio, item))): smaller is got first, equal priorities
 * in the order they were put. Other kinds ignore @prio. Returns and may be
 * called from as corio_queue_put(). */
CORIO_API int corio_queue_put_prio(corio_queue *q, void *item, int64_t prio);

/* corio_queue_put_prio_nowait - corio_queue_put_nowait() with priority
 * @prio. Returns as corio_queue_put_nowait(). Call from: any thread. */
CORIO_API int corio_queue_put_prio_nowait(corio_queue *q, void *item, int64_t prio);

/* corio_queue_put_prio_timeout - corio_queue_put_timeout() with priority
 * @prio. Returns as corio_queue_put_timeout(). Call from: a task. */
CORIO_API int corio_queue_put_prio_timeout(corio_queue *q, void *item, int64_t prio,
                                           int64_t timeout_ns);

/* corio_queue_get - take the next item into *@item (@item may be NULL to
 * drop it), suspending while the queue is empty (await Queue.get()).
 * Returns 0, -ESHUTDOWN (empty and shut down, before or while waiting),
 * -ECANCELED (cancelled while waiting: nothing was taken), -EINVAL,
 * -EPERM (not in a task). Call from: a task. */
CORIO_API int corio_queue_get(corio_queue *q, void **item);

/* corio_queue_get_nowait - take the next item without waiting
 * (Queue.get_nowait). Returns 0, -EAGAIN (empty: QueueEmpty), -ESHUTDOWN
 * (empty and shut down), -EINVAL. Call from: any thread. */
CORIO_API int corio_queue_get_nowait(corio_queue *q, void **item);

/* corio_queue_get_timeout - corio_queue_get() for at most @timeout_ns; a
 * get that needs no wait succeeds even with @timeout_ns 0. Returns
 * corio_queue_get()'s codes, -ETIMEDOUT (nothing was taken), -EINVAL also
 * for @timeout_ns < 0. Call from: a task. */
CORIO_API int corio_queue_get_timeout(corio_queue *q, void **item, int64_t timeout_ns);

/* corio_queue_get_prio - corio_queue_get() that also stores the item's
 * priority in *@prio (may be NULL; 0 for FIFO and LIFO queues).
 * Returns and may be called from as corio_queue_get(). */
CORIO_API int corio_queue_get_prio(corio_queue *q, void **item, int64_t *prio);

/* corio_queue_get_prio_nowait - corio_queue_get_nowait() with the
 * priority. Returns as corio_queue_get_nowait(). Call from: any thread. */
CORIO_API int corio_queue_get_prio_nowait(corio_queue *q, void **item, int64_t *prio);

/* corio_queue_get_prio_timeout - corio_queue_get_timeout() with the
 * priority. Returns as corio_queue_get_timeout(). Call from: a task. */
CORIO_API int corio_queue_get_prio_timeout(corio_queue *q, void **item, int64_t *prio,
                                           int64_t timeout_ns);

/* corio_queue_qsize - the number of items in the queue (Queue.qsize()):
 * items handed straight to waiting getters are not counted.
 * Returns the count (>= 0) or -EINVAL (NULL or closed). Call from: any
 * thread (a snapshot). */
CORIO_API int64_t corio_queue_qsize(corio_queue *q);

/* corio_queue_maxsize - the maxsize given to init, 0 for unbounded
 * (Queue.maxsize). Returns it or -EINVAL (NULL or closed).
 * Call from: any thread. */
CORIO_API int64_t corio_queue_maxsize(corio_queue *q);

/* corio_queue_empty - whether the queue holds no item (Queue.empty()).
 * corio_queue_full - whether it holds maxsize items (Queue.full(); never
 * for an unbounded queue). Return false for NULL or a closed queue.
 * Call from: any thread (snapshots). */
CORIO_API bool corio_queue_empty(corio_queue *q);
CORIO_API bool corio_queue_full(corio_queue *q);

/* corio_queue_task_done - say that one item got earlier is processed
 * (Queue.task_done()); when every item put is, join() returns.
 * Returns 0, -EINVAL (called more times than items were put: ValueError;
 * NULL or closed). Call from: any thread. */
CORIO_API int corio_queue_task_done(corio_queue *q);

/* corio_queue_join - suspend until every item put so far was task_done'd
 * or dropped by an immediate shutdown (await Queue.join()).
 * Returns 0, -ECANCELED, -EINVAL, -EPERM (not in a task).
 * Call from: a task. */
CORIO_API int corio_queue_join(corio_queue *q);

/* corio_queue_shutdown - shut the queue down (Queue.shutdown(immediate),
 * Python 3.13): from now on put is -ESHUTDOWN, and get is -ESHUTDOWN once
 * the queue is empty; every task blocked in put or get wakes with
 * -ESHUTDOWN. With @immediate the items left are dropped (each counts as
 * task_done'd, which may wake join). May be called again (e.g. immediate
 * after a normal shutdown). Returns 0, -EINVAL (NULL or closed).
 * Call from: any thread. */
CORIO_API int corio_queue_shutdown(corio_queue *q, bool immediate);

#ifdef __cplusplus
}
#endif

#endif
