/* pool/thread_pool.c - the thread-pool executor
 * (concurrent.futures.ThreadPoolExecutor), elastic: threads are started
 * only when no thread is idle, up to max_workers, and retire after being
 * idle for idle_timeout_ns.
 *
 * Protocol: one mutex guards the FIFO of work items, the idle list and the
 * counters. An idle thread is one on the idle list: each has a slot (its
 * `struct idler`, on its stack) and pushes it at the list's head before it
 * waits, so the list is LIFO and the most recently idle thread - the one
 * likely still spinning, with a warm cache - gets the next item, while the
 * coldest ones idle long enough to retire. submit, under the mutex, hands
 * the item straight to the head idler (item into its slot, state WOKEN, a
 * futex wake only when it went to sleep), else starts a thread with the
 * item as its first, else (at max) queues it; a thread that finished an
 * item takes the next queued one before it goes idle. So a thread never
 * wakes to find its work taken, and a woken thread does not touch the
 * mutex before it runs its item. A thread retires only when its idle wait
 * timed out while it was still listed and the queue is empty, both seen
 * under the mutex, so queued work always has a thread that will take it.
 * The slot's state is the hand-off's synchronisation (release by submit,
 * acquire by the idler), set under the mutex; the futex wake itself (a
 * syscall) comes after the mutex is dropped, so the idlers queueing on the
 * mutex are not held up by it. `wakers` (taken under the mutex) counts such
 * wakes in flight: a thread leaving the pool waits for it to drop to 0
 * before its slot goes, and a stale wake of a slot idle again is spurious.
 *
 * Growth past `eager` (a runtime's default executor: the online CPUs; else
 * max_workers, so a pool of your own grows at once, as Python's does): a
 * submit that finds no idle thread and `eager` threads started queues its
 * item and, when none is running, starts a grower thread. Every GROW_NS the
 * grower looks, under the mutex: while items are queued and no thread took
 * one since its last look (`takes` did not move: every thread is stuck in
 * a long call; counting costs the hot path no clock read), it turns into a
 * worker for the head item and starts the next grower; with the queue
 * moving it keeps watching, and it leaves once the queue is empty. So short
 * calls (W5: 1000 in flight of ~0.3 us each) run on as many threads as
 * there are CPUs instead of hundreds that take turns on them (perf W5:
 * 95 threads gave 190k calls/s, 2-6 threads 470-720k on 2 CPUs), and calls
 * that block still get a thread each, one more per GROW_NS. The grower
 * counts in nthreads, so shutdown waits for it too.
 *
 * Threads are detached. shutdown sets `shut` and wakes every idle thread
 * (an empty hand-off); each runs what is still queued (unless
 * cancel_futures cancelled it), then exits. The thread that brings nthreads
 * to 0 after shutdown completes `exited`, a concurrent future the pool and
 * that thread each hold a reference to: the thread touches no pool memory
 * after dropping the mutex, so shutdown(wait) - which waits on `exited`,
 * blocking a plain thread or awaiting in a task - may free the pool as soon
 * as it completes.
 */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
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
 * before it sleeps, so back-to-back submissions skip a futex sleep and
 * wake-up each (about 5 us apiece here: perf/tools/wake_bench). At most
 * MAX_SPINNERS threads spin at once; the rest sleep at once. */
#define SPIN_NS 50000
#define MAX_SPINNERS 1
/* How long queued work waits with every thread busy before a thread is
 * added past `eager`: Go's sysmon takes a processor from a blocked syscall
 * after 20 us to 10 ms; 1 ms adds up to 1000 threads a second for calls that
 * block, and never fires while short calls keep the queue moving. */
#define GROW_NS 1000000

struct corio_thread_pool;

struct work {
    struct work *next;
    corio_fn fn;
    void *arg;
    corio_cfuture *cf;
    struct corio_thread_pool *pool;   /* for a thread started with this item */
};

enum { IDLE_SPIN, IDLE_SLEEP, IDLE_WOKEN };

/* An idle thread's hand-off slot. next/prev/listed/item under the pool
 * mutex; item is set before state becomes WOKEN (NULL: look at the pool). */
struct idler {
    struct idler *next, *prev;
    struct idler *wake_next;   /* the caller's list of slots to wake */
    struct work *item;
    _Atomic uint32_t state;
    _Atomic unsigned wakers;   /* futex wakes of this slot in flight */
    bool listed;
};

struct corio_thread_pool {
    pthread_mutex_t lock;
    struct work *head, *tail;
    struct idler *idle;              /* LIFO of idle threads */
    unsigned max, nthreads, started;
    unsigned eager;                  /* threads started at once; more only by the grower */
    bool grower;                     /* a grower thread is watching the queue */
    uint64_t takes;                  /* items threads got: the grower's progress signal */
    _Atomic unsigned spinning;       /* idle threads spinning before they sleep */
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
    pthread_mutex_init(&p->lock, NULL);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    p->max = o.max_workers ? o.max_workers
                           : (unsigned)(cpus + 4 < DEFAULT_MAX_CAP ? cpus + 4 : DEFAULT_MAX_CAP);
    p->eager = p->max;
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

/* ---- idling and the hand-off ---- */

static void futex_wait(_Atomic uint32_t *addr, uint32_t val, uint64_t deadline)
{
    uint64_t now = corio__mono_ns();
    if (now >= deadline)
        return;
    uint64_t left = deadline - now;
    struct timespec ts = { .tv_sec = (time_t)(left / 1000000000u),
                           .tv_nsec = (long)(left % 1000000000u) };
    /* A relative timeout, on CLOCK_MONOTONIC. */
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* With p->lock held: take idler @me off the idle list. */
static void unlink_locked(struct corio_thread_pool *p, struct idler *me)
{
    if (me->prev)
        me->prev->next = me->next;
    else
        p->idle = me->next;
    if (me->next)
        me->next->prev = me->prev;
    me->next = me->prev = NULL;
    me->listed = false;
}

/* With p->lock held: hand @item (NULL: "look at the pool") to idler @me,
 * taking it off the list. When it sleeps, it is pushed on *@wake, for
 * wake_all() once the mutex is released. */
static void hand_off_locked(struct corio_thread_pool *p, struct idler *me, struct work *item,
                            struct idler **wake)
{
    unlink_locked(p, me);
    me->item = item;
    if (atomic_exchange_explicit(&me->state, IDLE_WOKEN, memory_order_acq_rel) == IDLE_SLEEP) {
        /* A wake of an earlier hand-off may still be in flight: that
         * waker's wake_all() reads wake_next after its unlock (the slot's
         * thread can wake by timeout, run the item and sleep again before
         * then). Rewriting wake_next would splice its list into ours (a
         * TSan report, and a second decrement of wakers that lets the slot
         * go while we wake it); wake this one here, under the lock. The
         * acquire pairs with wake_all()'s release decrement. */
        if (atomic_load_explicit(&me->wakers, memory_order_acquire)) {
            futex_wake(&me->state);
            return;
        }
        atomic_fetch_add_explicit(&me->wakers, 1, memory_order_relaxed);
        me->wake_next = *wake;
        *wake = me;
    }
}

/* Without the mutex: wake the slots hand_off_locked() listed. */
static void wake_all(struct idler *w)
{
    while (w) {
        struct idler *next = w->wake_next;
        futex_wake(&w->state);
        /* Release: the slot's owner may free it once it reads 0. */
        atomic_fetch_sub_explicit(&w->wakers, 1, memory_order_release);
        w = next;
    }
}

/* Before a thread's slot goes: wait out wakes of it still in flight. */
static void slot_quiesce(struct idler *me)
{
    while (atomic_load_explicit(&me->wakers, memory_order_acquire))
        sched_yield();
}

/* Without the mutex: wait until @me is handed something (true) or the idle
 * deadline passed (false). Spins first when few others do. */
static bool idle_wait(struct corio_thread_pool *p, struct idler *me)
{
    uint64_t now = corio__mono_ns(), deadline = now + (uint64_t)p->idle_ns;
    if (atomic_fetch_add_explicit(&p->spinning, 1, memory_order_relaxed) < MAX_SPINNERS) {
        uint64_t until = now + SPIN_NS;
        while (atomic_load_explicit(&me->state, memory_order_acquire) == IDLE_SPIN &&
               corio__mono_ns() < until)
            sched_yield();
    }
    atomic_fetch_sub_explicit(&p->spinning, 1, memory_order_relaxed);
    uint32_t spin = IDLE_SPIN;
    if (atomic_compare_exchange_strong_explicit(&me->state, &spin, IDLE_SLEEP,
                                                memory_order_acq_rel, memory_order_acquire)) {
        while (atomic_load_explicit(&me->state, memory_order_acquire) == IDLE_SLEEP &&
               corio__mono_ns() < deadline)
            futex_wait(&me->state, IDLE_SLEEP, deadline);
    }
    return atomic_load_explicit(&me->state, memory_order_acquire) == IDLE_WOKEN;
}

/* With p->lock held: the queue's head item, NULL when it is empty. */
static struct work *take_head_locked(struct corio_thread_pool *p)
{
    struct work *w = p->head;
    if (w) {
        p->head = w->next;
        if (!p->head)
            p->tail = NULL;
        p->takes++;
    }
    return w;
}

/* The next item for a thread that just finished one: queued work first,
 * else it idles on @me. NULL, with p->lock held, when the thread is to
 * leave (shut down with the queue empty, broken, or idle too long). */
static struct work *next_item(struct corio_thread_pool *p, struct idler *me)
{
    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct work *w = take_head_locked(p);
        if (w) {
            pthread_mutex_unlock(&p->lock);
            return w;
        }
        if (p->shut || p->broken)
            return NULL;
        me->item = NULL;
        atomic_store_explicit(&me->state, IDLE_SPIN, memory_order_relaxed);
        me->prev = NULL;
        me->next = p->idle;
        if (p->idle)
            p->idle->prev = me;
        p->idle = me;
        me->listed = true;
        pthread_mutex_unlock(&p->lock);
        if (idle_wait(p, me) && me->item)
            return me->item;   /* handed over: run it without the mutex */
        pthread_mutex_lock(&p->lock);
        if (!me->listed) {
            if (me->item) {    /* handed over as the wait timed out */
                pthread_mutex_unlock(&p->lock);
                return me->item;
            }
            continue;          /* shutdown's empty hand-off: look again */
        }
        unlink_locked(p, me);   /* timed out: off the list */
        if (!p->head)
            return NULL;       /* idle too long: retire */
    }
}

/* With p->lock held: the calling thread leaves the pool (and unlocks).
 * No pool memory is touched once it returns. */
static void leave_locked(struct corio_thread_pool *p)
{
    p->nthreads--;
    atomic_store_explicit(&p->alive, p->nthreads, memory_order_relaxed);
    corio_cfuture *ex = exit_locked(p);
    pthread_mutex_unlock(&p->lock);
    cur_pool = NULL;
    complete_exited(ex);
}

/* A pool thread's life from its first item @w on, until it leaves. */
static void work_then_leave(struct corio_thread_pool *p, struct work *w)
{
    if (p->initializer && p->initializer(p->initarg) < 0) {
        pthread_mutex_lock(&p->lock);
        p->broken = true;
        w->next = take_all_locked(p);
        pthread_mutex_unlock(&p->lock);
        fail_all(w, -EPIPE, "A thread initializer failed, the thread pool is not usable anymore");
        pthread_mutex_lock(&p->lock);
        goto leave;
    }
    struct idler me = { .listed = false };
    do
        run_item(w);
    while ((w = next_item(p, &me)));
    slot_quiesce(&me);
leave:
    leave_locked(p);
}

static void *pool_thread(void *arg)
{
    struct work *w = arg;   /* the item that started this thread */
    struct corio_thread_pool *p = w->pool;
    cur_pool = p;
    /* The starter names this thread under the mutex: wait for that, so
     * the first item (and the initializer) see the name. */
    pthread_mutex_lock(&p->lock);
    pthread_mutex_unlock(&p->lock);
    work_then_leave(p, w);
    return NULL;
}

static int start_grower_locked(struct corio_thread_pool *p);

/* The grower (see the top of the file): returns the item it is to run as a
 * worker, or NULL to leave; with p->lock held on return. */
static struct work *grow_watch(struct corio_thread_pool *p)
{
    pthread_mutex_lock(&p->lock);
    uint64_t seen = p->takes;
    for (;;) {
        pthread_mutex_unlock(&p->lock);
        struct timespec ts = { .tv_nsec = GROW_NS };
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&p->lock);
        /* After a shutdown too: shutdown(wait) runs what is queued. */
        if (p->broken || !p->head) {
            p->grower = false;
            return NULL;
        }
        if (p->takes == seen) {
            struct work *w = take_head_locked(p);
            p->grower = false;
            if (p->head && p->nthreads < p->max)
                start_grower_locked(p);
            return w;
        }
        seen = p->takes;
    }
}

static void *grow_thread(void *arg)
{
    struct corio_thread_pool *p = arg;
    cur_pool = p;
    struct work *w = grow_watch(p);
    if (!w) {
        /* Under the same hold that saw the queue empty: a submit after it
         * never counts this thread as one that will take its item. */
        leave_locked(p);
        return NULL;
    }
    pthread_mutex_unlock(&p->lock);
    work_then_leave(p, w);
    return NULL;
}

/* With p->lock held: start one more thread running @fn(@arg). */
static int start_locked(struct corio_thread_pool *p, void *(*fn)(void *), void *arg)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, THREAD_STACK);
    pthread_t t;
    int rc = pthread_create(&t, &a, fn, arg);
    pthread_attr_destroy(&a);
    if (rc)
        return -EAGAIN;
    p->nthreads++;
    atomic_store_explicit(&p->alive, p->nthreads, memory_order_relaxed);
    char name[16];
    snprintf(name, sizeof name, "%s_%u", p->prefix, (p->started++ % 1000) & 1023);
    pthread_setname_np(t, name);
    return 0;
}

/* With p->lock held: start one more thread, @w its first item. */
static int start_thread_locked(struct corio_thread_pool *p, struct work *w)
{
    int rc = start_locked(p, pool_thread, w);
    if (rc == 0)
        p->takes++;
    return rc;
}

/* With p->lock held: start the grower (it fails quietly: the busy threads
 * still take the queue, and the next submit tries again). */
static int start_grower_locked(struct corio_thread_pool *p)
{
    int rc = start_locked(p, grow_thread, p);
    if (rc == 0)
        p->grower = true;
    return rc;
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
    w->pool = p;
    corio_cfuture *cf = corio_cfuture_ref(w->cf);   /* the caller's; w->cf is the item's */
    pthread_mutex_lock(&p->lock);
    rc = p->shut ? -ESHUTDOWN : p->broken ? -EPIPE : 0;
    struct idler *wake = NULL;
    if (rc == 0 && p->idle) {
        hand_off_locked(p, p->idle, w, &wake);
        p->takes++;
    } else if (rc == 0 && (p->nthreads >= p->eager || start_thread_locked(p, w) < 0)) {
        if (p->nthreads) {   /* the busy threads will get to it */
            if (p->tail)
                p->tail->next = w;
            else
                p->head = w;
            p->tail = w;
            if (!p->grower && p->nthreads < p->max)
                start_grower_locked(p);
        } else {
            rc = -EAGAIN;
        }
    }
    pthread_mutex_unlock(&p->lock);
    wake_all(wake);
    if (rc < 0) {
        corio_cfuture_unref(cf);
        corio_cfuture_unref(w->cf);
        free(w);
        return rc;
    }
    *out = cf;
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
    struct idler *wake = NULL;
    while (p->idle)
        hand_off_locked(p, p->idle, NULL, &wake);
    corio_cfuture *ex = exit_locked(p);
    pthread_mutex_unlock(&p->lock);
    wake_all(wake);
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
        struct idler *wake = NULL;
        while (p->idle)
            hand_off_locked(p, p->idle, NULL, &wake);
        pthread_mutex_unlock(&p->lock);
        wake_all(wake);
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
    pthread_mutex_destroy(&p->lock);
    free(p);
    return 0;
}

unsigned corio_thread_pool_threads(const corio_thread_pool *p)
{
    return p ? atomic_load_explicit(&((struct corio_thread_pool *)p)->alive, memory_order_relaxed)
             : 0;
}

void corio__thread_pool_set_eager(corio_thread_pool *p, unsigned eager)
{
    p->eager = eager < 1 ? 1 : eager > p->max ? p->max : eager;
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
    .shut = true,
    .exited_set = true,
};
