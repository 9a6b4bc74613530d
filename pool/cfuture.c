/* pool/cfuture.c - concurrent futures (concurrent.futures.Future).
 *
 * Protocol: one mutex guards everything that changes (state, outcome, the
 * callback list, the internal waiter list); `state` is also stored with
 * release so the snapshots (done, running, cancelled) read it lock-free.
 * The transitions are PENDING→RUNNING→FINISHED and PENDING→CANCELLED, each
 * made once, under the mutex. The thread that makes a future done, under the
 * mutex: publishes the state, broadcasts the condvar (blocked result()
 * callers) when anybody is blocked on it, fires the internal waiters (wait,
 * as_completed, task bridges: short, see pool.h) and takes the callback
 * list; then, outside the mutex, runs the user callbacks in registration
 * order. A callback added once the future is done runs at once in the
 * adding thread, so every callback runs exactly once.
 *
 * Unlike concurrent.futures, a cancelled future is done (and its waiters are
 * woken) at cancel() time, not when the executor later notices: nobody
 * waits for a pool thread to skip work that will never run.
 *
 * Waiting: a plain thread blocks on the condvar (CLOCK_MONOTONIC deadlines);
 * a task parks on a corio future that an internal waiter completes
 * (corio__cfuture_await_done()), so its worker keeps running.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corio/time.h"
#include "pool.h"

enum { CF_PENDING = 0, CF_RUNNING, CF_CANCELLED, CF_FINISHED };

/* How long a plain thread yields before it sleeps in result(): 5-20 us
 * doubled W6 here (2 cores; a futex sleep plus wake-up costs ~5 us each,
 * perf/tools/wake_bench), 50 us was worse again. */
#define BLOCK_SPIN_NS 15000

struct cf_cb {
    struct cf_cb *next;
    corio_cfuture_done_fn fn;
    void *arg;
};

struct corio_cfuture {
    _Atomic uint32_t refs;
    _Atomic int state;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned blocked;                 /* threads in pthread_cond_*wait on cond */
    void *value;
    void (*free_fn)(void *);
    int err;                          /* < 0 when FINISHED with an error */
    char *msg;
    struct cf_cb *cb_head, *cb_tail;
    struct corio__cf_waiter *whead;
};

/* ---- life ---- */

int corio_cfuture_create(corio_cfuture **out)
{
    if (!out)
        return -EINVAL;
    struct corio_cfuture *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    atomic_init(&f->refs, 1);
    atomic_init(&f->state, CF_PENDING);
    pthread_mutex_init(&f->lock, NULL);
    if (corio__cond_init_mono(&f->cond) < 0) {
        pthread_mutex_destroy(&f->lock);
        free(f);
        return -ENOMEM;
    }
    *out = f;
    return 0;
}

corio_cfuture *corio_cfuture_ref(corio_cfuture *f)
{
    if (f)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void corio_cfuture_unref(corio_cfuture *f)
{
    if (!f)
        return;
    /* acq_rel: the freeing thread sees every other holder's writes. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* Nobody holds it, so nobody can run its callbacks: drop them unrun. */
    struct cf_cb *cb = f->cb_head;
    while (cb) {
        struct cf_cb *next = cb->next;
        free(cb);
        cb = next;
    }
    if (f->free_fn)
        f->free_fn(f->value);
    free(f->msg);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* ---- completion ---- */

/* With f->lock held: publish @state and wake everybody; returns the
 * callback list, to run once the lock is released. */
static struct cf_cb *become_done_locked(struct corio_cfuture *f, int state)
{
    /* Pairs with the acquire loads of the snapshots. */
    atomic_store_explicit(&f->state, state, memory_order_release);
    if (f->blocked)
        pthread_cond_broadcast(&f->cond);
    struct corio__cf_waiter *w = f->whead;
    f->whead = NULL;
    while (w) {
        struct corio__cf_waiter *next = w->next;
        w->next = w->prev = NULL;
        w->linked = false;
        w->fire(w);
        w = next;
    }
    struct cf_cb *cbs = f->cb_head;
    f->cb_head = f->cb_tail = NULL;
    return cbs;
}

static void run_callbacks(struct corio_cfuture *f, struct cf_cb *cb)
{
    while (cb) {
        struct cf_cb *next = cb->next;
        cb->fn(f, cb->arg);
        free(cb);
        cb = next;
    }
}

int corio_cfuture_set_running_or_notify_cancel(corio_cfuture *f)
{
    if (!f)
        return -EINVAL;
    pthread_mutex_lock(&f->lock);
    int s = atomic_load_explicit(&f->state, memory_order_relaxed);
    int rc = -EINVAL;
    if (s == CF_PENDING) {
        atomic_store_explicit(&f->state, CF_RUNNING, memory_order_release);
        rc = 1;
    } else if (s == CF_CANCELLED) {
        rc = 0;
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static int finish(struct corio_cfuture *f, void *value, void (*free_fn)(void *), int err,
                  char *msg)
{
    pthread_mutex_lock(&f->lock);
    int s = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (s != CF_PENDING && s != CF_RUNNING) {
        pthread_mutex_unlock(&f->lock);
        free(msg);
        return -EINVAL;
    }
    f->value = value;
    f->free_fn = free_fn;
    f->err = err;
    f->msg = msg;
    struct cf_cb *cbs = become_done_locked(f, CF_FINISHED);
    pthread_mutex_unlock(&f->lock);
    run_callbacks(f, cbs);
    return 0;
}

int corio_cfuture_set_result(corio_cfuture *f, void *value)
{
    if (!f)
        return -EINVAL;
    return finish(f, value, NULL, 0, NULL);
}

int corio_cfuture_set_result_owned(corio_cfuture *f, void *value, void (*free_fn)(void *))
{
    if (!f)
        return -EINVAL;
    return finish(f, value, free_fn, 0, NULL);
}

int corio_cfuture_set_exception(corio_cfuture *f, int err, const char *msg)
{
    if (!f || err >= 0 || err == -ECANCELED)
        return -EINVAL;
    char *copy = NULL;
    if (msg && !(copy = strdup(msg)))
        return -ENOMEM;
    return finish(f, NULL, NULL, err, copy);
}

int corio_cfuture_cancel(corio_cfuture *f)
{
    if (!f)
        return -EINVAL;
    pthread_mutex_lock(&f->lock);
    int s = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (s != CF_PENDING) {
        pthread_mutex_unlock(&f->lock);
        return s == CF_CANCELLED;
    }
    struct cf_cb *cbs = become_done_locked(f, CF_CANCELLED);
    pthread_mutex_unlock(&f->lock);
    run_callbacks(f, cbs);
    return 1;
}

/* ---- snapshots and outcome ---- */

static int state_of(const corio_cfuture *f)
{
    return atomic_load_explicit(&((struct corio_cfuture *)f)->state, memory_order_acquire);
}

bool corio_cfuture_running(const corio_cfuture *f)
{
    return f && state_of(f) == CF_RUNNING;
}

bool corio_cfuture_done(const corio_cfuture *f)
{
    return f && state_of(f) >= CF_CANCELLED;
}

bool corio_cfuture_cancelled(const corio_cfuture *f)
{
    return f && state_of(f) == CF_CANCELLED;
}

int corio__cfuture_outcome(corio_cfuture *f, void **value, const char **msg)
{
    if (msg)
        *msg = NULL;
    switch (state_of(f)) {
    case CF_CANCELLED:
        return -ECANCELED;
    case CF_FINISHED:
        if (f->err < 0) {
            if (msg)
                *msg = f->msg;
            return f->err;
        }
        if (value)
            *value = f->value;
        return 0;
    default:
        return -EAGAIN;
    }
}

/* ---- internal waiters ---- */

bool corio__cfuture_add_waiter(corio_cfuture *f, struct corio__cf_waiter *w,
                               void (*fire)(struct corio__cf_waiter *w))
{
    pthread_mutex_lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) >= CF_CANCELLED) {
        pthread_mutex_unlock(&f->lock);
        return false;
    }
    w->fire = fire;
    w->prev = NULL;
    w->next = f->whead;
    if (f->whead)
        f->whead->prev = w;
    f->whead = w;
    w->linked = true;
    pthread_mutex_unlock(&f->lock);
    return true;
}

void corio__cfuture_remove_waiter(corio_cfuture *f, struct corio__cf_waiter *w)
{
    pthread_mutex_lock(&f->lock);
    if (w->linked) {
        if (w->prev)
            w->prev->next = w->next;
        else
            f->whead = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->next = w->prev = NULL;
        w->linked = false;
    }
    pthread_mutex_unlock(&f->lock);
}

/* ---- waiting ---- */

struct task_waiter {
    struct corio__cf_waiter w;
    corio_future *signal;
};

static void fire_task(struct corio__cf_waiter *w)
{
    /* The waiting task holds its reference on ->signal until it has
     * unlinked this node, which needs the mutex held around this call. */
    corio_future_set_result(((struct task_waiter *)w)->signal, NULL);
}

int corio__cfuture_await_done(corio_cfuture *f, int64_t timeout_ns)
{
    if (corio_cfuture_done(f))
        return 0;
    struct task_waiter tw;
    int rc = corio_future_create(&tw.signal);
    if (rc < 0)
        return rc;
    if (corio__cfuture_add_waiter(f, &tw.w, fire_task)) {
        rc = timeout_ns == CORIO_WAIT_FOREVER ? corio_future_await(tw.signal, NULL)
                                              : corio_future_wait_for(tw.signal, timeout_ns, NULL);
        corio__cfuture_remove_waiter(f, &tw.w);
    }
    corio_future_unref(tw.signal);
    if (rc == -ECANCELED)   /* the task's cancellation was delivered here */
        return rc;
    if (corio_cfuture_done(f))
        return 0;
    return rc < 0 ? rc : -ETIMEDOUT;
}

/* Blocks a plain thread until @f is done or the deadline passes. */
static int block_until_done(struct corio_cfuture *f, int64_t timeout_ns)
{
    if (corio_cfuture_done(f))
        return 0;
    if (corio_current_task())
        return corio__cfuture_await_done(f, timeout_ns);
    uint64_t deadline = corio__deadline_of(timeout_ns);
    /* A result that is microseconds away (a trivial coroutine, W6) is
     * cheaper to wait for by yielding than by a futex sleep and wake-up. */
    uint64_t until = corio__mono_ns() + BLOCK_SPIN_NS;
    if (until > deadline)
        until = deadline;
    while (!corio_cfuture_done(f) && corio__mono_ns() < until)
        sched_yield();
    if (corio_cfuture_done(f))
        return 0;
    pthread_mutex_lock(&f->lock);
    int rc = 0;
    f->blocked++;
    while (atomic_load_explicit(&f->state, memory_order_relaxed) < CF_CANCELLED) {
        if (!corio__cond_wait_until(&f->cond, &f->lock, deadline)) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    f->blocked--;
    pthread_mutex_unlock(&f->lock);
    return rc;
}

int corio_cfuture_result(corio_cfuture *f, int64_t timeout_ns, void **value)
{
    if (!f || timeout_ns < 0)
        return -EINVAL;
    int rc = block_until_done(f, timeout_ns);
    if (rc < 0)
        return rc;
    return corio__cfuture_outcome(f, value, NULL);
}

int corio_cfuture_exception(corio_cfuture *f, int64_t timeout_ns, const char **msg)
{
    if (msg)
        *msg = NULL;
    if (!f || timeout_ns < 0)
        return -EINVAL;
    int rc = block_until_done(f, timeout_ns);
    if (rc < 0)
        return rc;
    return corio__cfuture_outcome(f, NULL, msg);
}

int corio_cfuture_add_done_callback(corio_cfuture *f, corio_cfuture_done_fn fn, void *arg)
{
    if (!f || !fn)
        return -EINVAL;
    struct cf_cb *cb = malloc(sizeof *cb);
    if (!cb)
        return -ENOMEM;
    cb->next = NULL;
    cb->fn = fn;
    cb->arg = arg;
    pthread_mutex_lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) < CF_CANCELLED) {
        if (f->cb_tail)
            f->cb_tail->next = cb;
        else
            f->cb_head = cb;
        f->cb_tail = cb;
        pthread_mutex_unlock(&f->lock);
        return 0;
    }
    pthread_mutex_unlock(&f->lock);
    run_callbacks(f, cb);
    return 0;
}
