/* pool/pool.h - what the pool/ sources share: the concurrent future's
 * internal waiters (wait, as_completed and the task bridges register one)
 * and the default-executor plumbing of bridge.c.
 *
 * An internal waiter is an intrusive node on the future's list. Its fire()
 * runs once, with the future's mutex held, when the future becomes done
 * (finished or cancelled): it must be short, must not call back into the
 * future, and may take only locks that are never held while taking a
 * concurrent future's mutex (a condvar's mutex, a corio future's spinlock).
 * The owner unlinks it with corio__cfuture_remove_waiter() before the node's
 * memory goes, so a node may live on a stack.
 */
#ifndef CORIO_POOL_POOL_H
#define CORIO_POOL_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "corio/executor.h"

struct corio__cf_waiter {
    struct corio__cf_waiter *next, *prev;
    void (*fire)(struct corio__cf_waiter *w);
    bool linked;   /* under the future's mutex */
};

/* Link @w (false, nothing linked, when @f is done already). */
bool corio__cfuture_add_waiter(corio_cfuture *f, struct corio__cf_waiter *w,
                               void (*fire)(struct corio__cf_waiter *w));
/* Unlink @w if still linked; after it returns @w is never touched again. */
void corio__cfuture_remove_waiter(corio_cfuture *f, struct corio__cf_waiter *w);

/* The outcome of a done @f as corio_cfuture_result() returns it; -EAGAIN
 * when not done. *@msg (may be NULL) gets the error message. */
int corio__cfuture_outcome(corio_cfuture *f, void **value, const char **msg);

/* In a task: suspend until @f is done or @timeout_ns (CORIO_WAIT_FOREVER)
 * passed. Returns 0 when @f is done, -ETIMEDOUT, -ECANCELED (the task was
 * cancelled; @f is left alone), -ENOMEM, -EPERM. */
int corio__cfuture_await_done(corio_cfuture *f, int64_t timeout_ns);

/* Time helpers (CLOCK_MONOTONIC ns). deadline_of: UINT64_MAX for
 * CORIO_WAIT_FOREVER. cond_wait_until: waits once (spurious wake-ups
 * included), false when the deadline had passed already. cond_init_mono: a
 * condvar on CLOCK_MONOTONIC. */
uint64_t corio__mono_ns(void);
uint64_t corio__deadline_of(int64_t timeout_ns);
bool corio__cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *m, uint64_t deadline);
int corio__cond_init_mono(pthread_cond_t *cond);

/* thread_pool.c: shutdown(wait) bounded by @timeout_ns; -ETIMEDOUT when
 * threads were still busy then. */
int corio__thread_pool_shutdown_timeout(corio_thread_pool *ex, bool cancel_futures,
                                        int64_t timeout_ns);

/* thread_pool.c: start at most @eager threads at once; past them, a thread
 * is added only when queued work waited GROW_NS with every thread busy (a
 * runtime's default executor). Before the pool's first submit. */
void corio__thread_pool_set_eager(corio_thread_pool *ex, unsigned eager);

/* thread_pool.c: the default executor a runtime made itself (and frees).
 * Set before it is published; read by the runner's shutdown hook. */
void corio__thread_pool_set_rt_owned(corio_thread_pool *ex);
bool corio__thread_pool_rt_owned(const corio_thread_pool *ex);

/* thread_pool.c: what a runtime's default executor becomes at the end of
 * its run (a shut pool without threads: submit says -ESHUTDOWN). */
extern struct corio_thread_pool corio__closed_pool;

#endif
