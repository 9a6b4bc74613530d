/* pool/thread_pool.c - the thread-pool executor
 * (concurrent.futures.ThreadPoolExecutor), elastic: threads are started
 * only when no thread is idle, up to max_workers, and retire after being
 * idle for idle_timeout_ns.
 *
 * Protocol: one mutex guards the FIFO of work items and the counters.
 *   nthreads  threads alive (started, not yet past their last touch of the pool)
 *   waiting   threads blocked on `cond` for work
 *   wakes     signals sent to waiting threads and not yet consumed
 * submit queues the item, then wakes a waiting thread when one is not
 * already promised to earlier work (waiting > wakes), else starts a thread
 * when below max, else leaves it to a busy thread, which looks at the queue
 * before it waits. A thread retires only when its idle wait timed out and
 * the queue is empty, both seen under the mutex, so queued work always has a
 * thread that will take it.
 *
 * Threads are detached. shutdown sets `shut` and wakes every waiting
 * thread; each runs what is still queued (unless cancel_futures cancelled
 * it), then exits. The thread that brings nthreads to 0 after shutdown
 * completes `exited`, a concurrent future the pool and that thread each hold
 * a reference to: the thread touches no pool memory after dropping the
 * mutex, so shutdown(wait) - which waits on `exited`, blocking a plain
 * thread or awaiting in a task - may free the pool as soon as it completes.
 */
#include <stdatomic.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool.h"

#define DEFAULT_IDLE_NS (10 * 1000000000LL)   /* DESIGN.md: idle threads retire after 10 s */
#define DEFAULT_MAX_CAP 32                     /* Python: min(32, os.cpu_count() + 4) */
#define THREAD_STACK (256 * 1024)              /* blocking calls get more than a task's 64 KiB */
/* A thread that runs out of work first spins (yielding the CPU) this long
 * before it sleeps on the condvar, so back-to-back submissions skip a futex
 * sleep and wake-up each (about 5 us apiece here: perf/tools/wake_bench).
 * At most MAX_SPINNERS threads spin at once; the rest sleep at once. */
#define SPIN_NS 50000
#define MAX_SPINNERS 1

struct work {
    struct work *next;
    corio_fn fn;
    void *arg;
    corio_cfuture *cf;
};

struct corio_thread_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct work *head, *tail;
    unsigned max, nthreads, waiting, wakes, started;
    unsigned spinning, spin_claims;  /* threads spinning for work; items promised to them */
    _Atomic unsigned nqueued;        /* items queued, read lock-free by spinners */
    bool shut, broken, exited_set;
    bool rt_owned;                   /* a runtime's default executor (bridge.c) */
    _Atomic unsigned alive;          /* nthreads, for the lock-free snapshot */
    int64_t idle_ns;
    int (*initializer)(void *);
    void *initarg;
    char prefix[11];                 /* + "_<i>" fits a 15-byte thread name */
    corio_cfuture *exited;
};

/* The work item running on this thread (corio_executor_raise) and its pool. */
struct raise_slot {
    bool active, raised;
    int err;
    char *msg;
};
static __thread struct raise_slot *cur_raise;
static __thread struct corio_thread_pool *cur_pool;

int corio_thread_pool_create(corio_thread_pool **out, const corio_thread_pool_options *opts)
{
    corio_thread_pool_options o = opts ? *opts : (corio_thread_pool_options){ 0 };
    if (!out || o.idle_timeout_ns < 0)
        return -EINVAL;
    struct corio_thread_pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    if (corio_cfuture_create(&p->exited) < 0) {
        free(p);
        return -ENOMEM;
    }
    if (corio__cond_init_mono(&p->cond) < 0) {
        corio_cfuture_unref(p->exited);
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->lock, NULL);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    p->max = o.max_workers ? o.max_workers
                           : (unsigned)(cpus + 4 < DEFAULT_MAX_CAP ? cpus + 4 : DEFAULT_MAX_CAP);
    p->idle_ns = o.idle_timeout_ns ? o.idle_timeout_ns : DEFAULT_IDLE_NS;
    p->initializer = o.initializer;
    p->initarg = o.initarg;
    /* Linux thread names hold 15 bytes; "_<i>" needs room. */
    snprintf(p->prefix, sizeof p->prefix, "%s",
             o.thread_name_prefix ? o.thread_name_prefix : "corio-pool");
    *out = p;
    return 0;
}

/* ---- running work ---- */

static void run_item(struct work *w)
{
    if (corio_cfuture_set_running_or_notify_cancel(w->cf) == 1) {
        struct raise_slot slot = { .active = true };
        cur_raise = &slot;
        void *v = w->fn(w->arg);
        cur_raise = NULL;
        if (slot.raised) {
            corio_cfuture_set_exception(w->cf, slot.err, slot.msg);
            free(slot.msg);
        } else {
            corio_cfuture_set_result(w->cf, v);
        }
    }
    corio_cfuture_unref(w->cf);
    free(w);
}

int corio_executor_raise(int err, const char *msg)
{
    if (err >= 0 || err == -ECANCELED)
        return -EINVAL;
    struct raise_slot *s = cur_raise;
    if (!s || !s->active)
        return -EPERM;
    free(s->msg);
    s->raised = true;
    s->err = err;
    s->msg = msg ? strdup(msg) : NULL;
    return err;
}

/* With p->lock held: take every queued item (to fail or cancel outside it). */
static struct work *take_all_locked(struct corio_thread_pool *p)
{
    struct work *all = p->head;
    p->head = p->tail = NULL;
    atomic_store_explicit(&p->nqueued, 0, memory_order_relaxed);
    return all;
}

static void fail_all(struct work *w, int err, const char *msg)
{
    while (w) {
        struct work *next = w->next;
        if (err == -ECANCELED)
            corio_cfuture_cancel(w->cf);
        else if (corio_cfuture_set_running_or_notify_cancel(w->cf) == 1)
            corio_cfuture_set_exception(w->cf, err, msg);
        corio_cfuture_unref(w->cf);
        free(w);
        w = next;
    }
}

/* With p->lock held, by the thread leaving (or by shutdown when none is
 * left): hand `exited` to the caller, who completes it after unlocking. */
static corio_cfuture *exit_locked(struct corio_thread_pool *p)
{
    if (!p->shut || p->nthreads || p->exited_set)
        return NULL;
    p->exited_set = true;
    return corio_cfuture_ref(p->exited);
}

static void complete_exited(corio_cfuture *ex)
{
    if (ex) {
        corio_cfuture_set_result(ex, NULL);
        corio_cfuture_unref(ex);
    }
}

/* With p->lock held: a spinner (or a starting thread) looks at the queue
 * now; it takes one promise with it. */
static void end_spin_locked(struct corio_thread_pool *p)
{
    p->spinning--;
    if (p->spin_claims)
        p->spin_claims--;
    if (p->spin_claims > p->spinning)
        p->spin_claims = p->spinning;
}

/* With p->lock held (dropped meanwhile): spin up to SPIN_NS for work. A
 * spinner counts as idle, so submit promises it work (spin_claims) instead
 * of waking or starting a thread; it re-checks the queue under the lock
 * before it may sleep, so promised work is never stranded. */
static void spin_for_work(struct corio_thread_pool *p)
{
    p->spinning++;
    pthread_mutex_unlock(&p->lock);
    uint64_t until = corio__mono_ns() + SPIN_NS;
    do {
        sched_yield();
    } while (!atomic_load_explicit(&p->nqueued, memory_order_relaxed) &&
             corio__mono_ns() < until);
    pthread_mutex_lock(&p->lock);
    end_spin_locked(p);
}

static void *pool_thread(void *arg)
{
    struct corio_thread_pool *p = arg;
    cur_pool = p;
    if (p->initializer && p->initializer(p->initarg) < 0) {
        pthread_mutex_lock(&p->lock);
        end_spin_locked(p);
        p->broken = true;
        struct work *all = take_all_locked(p);
        pthread_mutex_unlock(&p->lock);
        fail_all(all, -EPIPE, "A thread initializer failed, the thread pool is not usable anymore");
        pthread_mutex_lock(&p->lock);
        goto leave;
    }
    pthread_mutex_lock(&p->lock);
    end_spin_locked(p);   /* started as a spinner (start_thread_locked) */
    for (;;) {
        if (!p->head && !p->shut && !p->broken && p->spinning < MAX_SPINNERS)
            spin_for_work(p);
        while (!p->head && !p->shut && !p->broken) {
            uint64_t deadline = corio__mono_ns() + (uint64_t)p->idle_ns;
            p->waiting++;
            bool in_time = corio__cond_wait_until(&p->cond, &p->lock, deadline);
            p->waiting--;
            if (p->wakes)
                p->wakes--;
            if ((!in_time || corio__mono_ns() >= deadline) && !p->head)
                goto leave;   /* idle too long: retire */
        }
        struct work *w = p->head;
        if (!w)
            break;   /* shut down (or broken) and nothing left */
        p->head = w->next;
        if (!p->head)
            p->tail = NULL;
        atomic_store_explicit(&p->nqueued, p->nqueued - 1, memory_order_relaxed);
        /* More queued than promised: hand the rest on (claims are hints). */
        if (p->head && p->waiting > p->wakes &&
            atomic_load_explicit(&p->nqueued, memory_order_relaxed) > p->spinning) {
            p->wakes++;
            pthread_cond_signal(&p->cond);
        }
        pthread_mutex_unlock(&p->lock);
        run_item(w);
        pthread_mutex_lock(&p->lock);
    }
leave:
    p->nthreads--;
    atomic_store_explicit(&p->alive, p->nthreads, memory_order_relaxed);
    corio_cfuture *ex = exit_locked(p);
    pthread_mutex_unlock(&p->lock);
    cur_pool = NULL;
    complete_exited(ex);   /* no pool memory is touched from here on */
    return NULL;
}

/* With p->lock held: start one more thread. */
static int start_thread_locked(struct corio_thread_pool *p)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, THREAD_STACK);
    pthread_t t;
    int rc = pthread_create(&t, &a, pool_thread, p);
    pthread_attr_destroy(&a);
    if (rc)
        return -EAGAIN;
    /* A starting thread is a spinner promised the item that started it: it
     * looks at the queue first thing. The next submission still starts
     * another thread (as Python's: a thread counts as idle only once it
     * waits), so a burst of blocking calls runs side by side. */
    p->spinning++;
    p->spin_claims++;
    p->nthreads++;
    atomic_store_explicit(&p->alive, p->nthreads, memory_order_relaxed);
    char name[16];
    snprintf(name, sizeof name, "%s_%u", p->prefix, (p->started++ % 1000) & 1023);
    pthread_setname_np(t, name);
    return 0;
}

int corio_thread_pool_submit(corio_thread_pool *p, corio_fn fn, void *arg, corio_cfuture **out)
{
    if (!p || !fn || !out)
        return -EINVAL;
    struct work *w = malloc(sizeof *w);
    if (!w)
        return -ENOMEM;
    int rc = corio_cfuture_create(&w->cf);
    if (rc < 0) {
        free(w);
        return rc;
    }
    w->fn = fn;
    w->arg = arg;
    w->next = NULL;
    pthread_mutex_lock(&p->lock);
    rc = p->shut ? -ESHUTDOWN : p->broken ? -EPIPE : 0;
    bool promised = rc == 0 && p->spinning > p->spin_claims;
    if (promised) {
        p->spin_claims++;
    } else if (rc == 0 && p->waiting <= p->wakes && p->nthreads < p->max) {
        rc = start_thread_locked(p);
        if (rc < 0 && p->nthreads)
            rc = 0;   /* the busy threads will get to it */
    }
    if (rc < 0) {
        pthread_mutex_unlock(&p->lock);
        corio_cfuture_unref(w->cf);
        free(w);
        return rc;
    }
    if (p->tail)
        p->tail->next = w;
    else
        p->head = w;
    p->tail = w;
    atomic_store_explicit(&p->nqueued, p->nqueued + 1, memory_order_relaxed);
    if (!promised && p->waiting > p->wakes) {
        p->wakes++;
        pthread_cond_signal(&p->cond);
    }
    *out = corio_cfuture_ref(w->cf);   /* one for the caller, one for the item */
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* ---- shutdown ---- */

static int begin_shutdown(struct corio_thread_pool *p, bool cancel_futures)
{
    if (cur_pool == p)
        return -EDEADLK;
    pthread_mutex_lock(&p->lock);
    p->shut = true;
    struct work *cancel = cancel_futures ? take_all_locked(p) : NULL;
    pthread_cond_broadcast(&p->cond);
    corio_cfuture *ex = exit_locked(p);
    pthread_mutex_unlock(&p->lock);
    fail_all(cancel, -ECANCELED, NULL);
    complete_exited(ex);
    return 0;
}

int corio_thread_pool_shutdown(corio_thread_pool *p, bool wait, bool cancel_futures)
{
    if (!p)
        return -EINVAL;
    if (!wait && cur_pool == p) {
        /* Without waiting, a pool thread may shut its own pool down. */
        pthread_mutex_lock(&p->lock);
        p->shut = true;
        struct work *cancel = cancel_futures ? take_all_locked(p) : NULL;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        fail_all(cancel, -ECANCELED, NULL);
        return 0;
    }
    /* Our own reference: a destroy by another thread may drop the pool's. */
    corio_cfuture *ex = wait ? corio_cfuture_ref(p->exited) : NULL;
    int rc = begin_shutdown(p, cancel_futures);
    if (rc == 0 && wait)
        rc = corio_cfuture_result(ex, CORIO_WAIT_FOREVER, NULL);
    corio_cfuture_unref(ex);
    return rc;
}

int corio__thread_pool_shutdown_timeout(corio_thread_pool *p, bool cancel_futures,
                                        int64_t timeout_ns)
{
    corio_cfuture *ex = corio_cfuture_ref(p->exited);
    int rc = begin_shutdown(p, cancel_futures);
    if (rc == 0)
        rc = corio_cfuture_result(ex, timeout_ns, NULL);
    corio_cfuture_unref(ex);
    return rc;
}

int corio_thread_pool_destroy(corio_thread_pool *p)
{
    if (!p)
        return -EINVAL;
    int rc = begin_shutdown(p, false);
    if (rc < 0)
        return rc;
    /* In a task this awaits: a cancellation must not free a pool still in
     * use, so it waits on (the task ends cancelled all the same). */
    while (!corio_cfuture_done(p->exited))
        corio_cfuture_result(p->exited, CORIO_WAIT_FOREVER, NULL);
    corio_cfuture_unref(p->exited);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
    return 0;
}

unsigned corio_thread_pool_threads(const corio_thread_pool *p)
{
    return p ? atomic_load_explicit(&((struct corio_thread_pool *)p)->alive, memory_order_relaxed)
             : 0;
}

void corio__thread_pool_set_rt_owned(corio_thread_pool *p)
{
    p->rt_owned = true;
}

bool corio__thread_pool_rt_owned(const corio_thread_pool *p)
{
    return p->rt_owned;
}

/* A runtime's default executor once its run ended: shut, never freed, so a
 * late run_in_executor() gets -ESHUTDOWN rather than a new pool nobody
 * would shut down. */
struct corio_thread_pool corio__closed_pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
    .shut = true,
    .exited_set = true,
};
