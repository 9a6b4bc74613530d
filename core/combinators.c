/* core/combinators.c - gather, wait, as_completed and shield.
 *
 * gather, wait and as_completed share one mechanism, struct multi: a waiter
 * node per future whose fire (under that future's lock) counts the
 * completion, appends the future's index to a completion-order array, and
 * wakes the waiting task if there is one. The waiting task pointer is
 * guarded by multi.lock (taken inside the future's lock), so as_completed
 * can stop waiting between calls without a late fire waking a task that has
 * moved on. Each combinator then loops: check its condition on the counters,
 * deliver a cancellation if one is pending, park.
 *
 * wait's timeout is a timer on the waiting task's stack, armed on the
 * worker the task is on when it starts waiting (the timer's owner: only that
 * worker's thread touches its wheel). Its fire wakes the task with sleep's
 * 0 -> 1 -> 2 protocol (core/timer.c). Before returning, the task goes back
 * to the owner (corio__task_migrate) and removes the timer there, where no
 * fire can be running at the same moment, so the frame can be unwound.
 *
 * Deliberate difference from asyncio: a cancelled gather cancels its
 * children and then waits for all of them before returning -ECANCELED (in
 * asyncio the first child that finishes cancelled ends the gather). In C the
 * children often use memory owned by the caller's frame, which must not be
 * unwound while they still run.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct multi;

struct multi_child {
    struct corio__waiter w;
    struct multi *m;
    size_t idx;
};

struct multi {
    struct corio__spin lock;
    struct corio_task *waiter;        /* under lock */
    _Atomic size_t ndone, nfailed, nbad, tail;
    _Atomic long first_bad;           /* index of the first failed or cancelled */
    _Atomic size_t *order;            /* completion order: index + 1, 0 = not yet */
    size_t n;
    struct corio_future **fs;
    struct multi_child *c;
};

static void multi_note(struct multi *m, size_t idx, struct corio_future *f)
{
    uint8_t st = atomic_load_explicit(&f->state, memory_order_acquire);
    if (st == FUT_FAILED)
        atomic_fetch_add_explicit(&m->nfailed, 1, memory_order_relaxed);
    if (st == FUT_FAILED || st == FUT_CANCELLED) {
        long none = -1;
        atomic_compare_exchange_strong(&m->first_bad, &none, (long)idx);
        atomic_fetch_add_explicit(&m->nbad, 1, memory_order_relaxed);
    }
    size_t pos = atomic_fetch_add_explicit(&m->tail, 1, memory_order_relaxed);
    /* Pairs with the acquire load in as_completed_next(). */
    atomic_store_explicit(&m->order[pos], idx + 1, memory_order_release);
    atomic_fetch_add_explicit(&m->ndone, 1, memory_order_release);
    corio__spin_lock(&m->lock);
    if (m->waiter)
        corio__task_wake(m->waiter);
    corio__spin_unlock(&m->lock);
}

static void multi_fire(struct corio__waiter *w, struct corio_future *f)
{
    struct multi_child *c = corio__container_of(w, struct multi_child, w);
    multi_note(c->m, c->idx, f);
}

static int multi_init(struct multi *m, corio_future *const *fs, size_t n, bool take_refs)
{
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return -EINVAL;
    corio__spin_init(&m->lock);
    atomic_init(&m->first_bad, -1);
    m->n = n;
    m->order = calloc(n, sizeof *m->order);
    m->c = calloc(n, sizeof *m->c);
    m->fs = malloc(n * sizeof *m->fs);
    if (!m->order || !m->c || !m->fs) {
        free(m->order);
        free(m->c);
        free(m->fs);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        m->fs[i] = take_refs ? corio_future_ref(fs[i]) : fs[i];
    return 0;
}

static void multi_set_waiter(struct multi *m, struct corio_task *t);
static void multi_register(struct multi *m);

/* gather and wait: the calling task waits on @fs from the start. */
static int multi_wait_start(struct multi *m, corio_future *const *fs, size_t n,
                            struct corio_task **self)
{
    *self = corio_current_task();
    if (!*self)
        return -EPERM;
    int rc = multi_init(m, fs, n, false);
    if (rc < 0)
        return rc;
    multi_set_waiter(m, *self);
    multi_register(m);
    return 0;
}

static void multi_set_waiter(struct multi *m, struct corio_task *t)
{
    corio__spin_lock(&m->lock);
    m->waiter = t;
    corio__spin_unlock(&m->lock);
}

static void multi_register(struct multi *m)
{
    for (size_t i = 0; i < m->n; i++) {
        m->c[i].m = m;
        m->c[i].idx = i;
        if (!corio__future_add_waiter(m->fs[i], &m->c[i].w, multi_fire))
            multi_note(m, i, m->fs[i]);
    }
}

/* After this no fire can touch @m: each removal waits on the future's lock. */
static void multi_unregister(struct multi *m)
{
    for (size_t i = 0; i < m->n; i++)
        corio__future_remove_waiter(m->fs[i], &m->c[i].w);
}

static void multi_fini(struct multi *m, bool drop_refs)
{
    if (drop_refs)
        for (size_t i = 0; i < m->n; i++)
            corio_future_unref(m->fs[i]);
    free(m->order);
    free(m->c);
    free(m->fs);
}

static size_t ndone(struct multi *m)
{
    return atomic_load_explicit(&m->ndone, memory_order_acquire);
}

/* ---- gather ---- */

static void cancel_pending(struct multi *m, struct corio_task *self)
{
    char *msg = corio__task_cancel_msg(self);
    for (size_t i = 0; i < m->n; i++)
        if (!corio_future_done(m->fs[i]))
            corio_future_cancel(m->fs[i], msg);
    free(msg);
}

static void gather_collect(struct multi *m, void **results, int *errors)
{
    for (size_t i = 0; i < m->n; i++) {
        void *v = NULL;
        int e = corio__future_outcome(m->fs[i], &v);
        if (results)
            results[i] = e == 0 ? v : NULL;
        if (errors)
            errors[i] = e;
    }
}

int corio_gather(corio_future *const *fs, size_t n, unsigned flags, void **results, int *errors)
{
    if (n == 0)
        return 0;
    if (!fs)
        return -EINVAL;
    struct corio_task *t;
    struct multi m;
    int rc = multi_wait_start(&m, fs, n, &t);
    if (rc < 0)
        return rc;
    bool return_exc = flags & CORIO_RETURN_EXCEPTIONS, cancelled = false;
    for (;;) {
        if (ndone(&m) == n)
            break;
        if (!cancelled && !return_exc && atomic_load(&m.nbad) > 0)
            break;
        if (corio__task_take_cancel(t)) {
            cancelled = true;
            cancel_pending(&m, t);
            continue;
        }
        corio__task_park(t, PARK_GATHER);
    }
    multi_unregister(&m);
    gather_collect(&m, results, errors);
    multi_fini(&m, false);
    if (cancelled)
        rc = -ECANCELED;
    else if (!return_exc && atomic_load(&m.nbad) > 0)
        rc = corio__future_outcome(fs[atomic_load(&m.first_bad)], NULL);
    return rc;
}

int corio_gather_tasks(corio_task *const *ts, size_t n, unsigned flags, void **results,
                       int *errors)
{
    if (n == 0)
        return 0;
    if (!ts)
        return -EINVAL;
    corio_future **fs = malloc(n * sizeof *fs);
    if (!fs)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        fs[i] = corio_task_future(ts[i]);
    int rc = corio_gather(fs, n, flags, results, errors);
    free(fs);
    return rc;
}

/* ---- wait ---- */

static bool wait_satisfied(struct multi *m, int return_when)
{
    size_t d = ndone(m);
    if (d == m->n)
        return true;
    if (return_when == CORIO_FIRST_COMPLETED)
        return d > 0;
    if (return_when == CORIO_FIRST_EXCEPTION)
        return atomic_load(&m->nfailed) > 0;
    return false;
}

/* wait's timeout: see the essay at the top. */
struct wait_timer {
    struct corio__timer timer;
    struct corio_task *task;
    struct corio__worker *owner;  /* whose wheel holds the timer */
    _Atomic uint32_t fired;       /* 0 armed, 1 firing, 2 fired */
};

static void wait_timer_fire(struct corio__timer *tm)
{
    struct wait_timer *wt = corio__container_of(tm, struct wait_timer, timer);
    atomic_store_explicit(&wt->fired, 1, memory_order_release);
    corio__task_wake(wt->task);
    /* Pairs with the acquire loads in wait_timed_out(). */
    atomic_store_explicit(&wt->fired, 2, memory_order_release);
}

static void wait_timer_arm(struct wait_timer *wt, struct corio_task *t, int64_t timeout_ns)
{
    wt->task = t;
    wt->owner = corio__worker_current();
    atomic_init(&wt->fired, 0);
    corio__timer_init(&wt->timer, wait_timer_fire);
    corio__wheel_insert(wt->owner->wheel, &wt->timer, corio_time_ns() + (uint64_t)timeout_ns);
}

/* Has the timer fired? Waits out a fire that is between its two stores (it
 * runs on the owner while this task runs elsewhere: a few instructions). */
static bool wait_timed_out(struct wait_timer *wt)
{
    uint32_t d;
    while ((d = atomic_load_explicit(&wt->fired, memory_order_acquire)) == 1)
        sched_yield();
    return d == 2;
}

/* After this no fire can touch @wt: on its owner, a fire and this task never
 * run at the same time, and remove() is a no-op for a timer that fired. */
static void wait_timer_disarm(struct wait_timer *wt)
{
    if (atomic_load_explicit(&wt->fired, memory_order_acquire) == 2)
        return;
    corio__task_migrate(wt->task, wt->owner);
    corio__wheel_remove(wt->owner->wheel, &wt->timer);
}

/* Fills the caller's done/pending arrays in the order of @fs. */
static void wait_split(corio_future *const *fs, size_t n, corio_future **done,
                       size_t *ndone_out, corio_future **pending, size_t *npending)
{
    size_t nd = 0, np = 0;
    for (size_t i = 0; i < n; i++) {
        if (corio_future_done(fs[i])) {
            if (done)
                done[nd] = fs[i];
            nd++;
        } else {
            if (pending)
                pending[np] = fs[i];
            np++;
        }
    }
    if (ndone_out)
        *ndone_out = nd;
    if (npending)
        *npending = np;
}

/* corio_wait() and corio_wait_timeout(); @timeout_ns < 0: none. */
static int wait_common(corio_future *const *fs, size_t n, int return_when, int64_t timeout_ns,
                       corio_future **done, size_t *ndone_out, corio_future **pending,
                       size_t *npending)
{
    if (n == 0 || !fs || return_when < CORIO_FIRST_COMPLETED ||
        return_when > CORIO_ALL_COMPLETED)
        return -EINVAL;
    struct corio_task *t;
    struct multi m;
    int rc = multi_wait_start(&m, fs, n, &t);
    if (rc < 0)
        return rc;
    struct wait_timer wt;
    bool timed = timeout_ns > 0 && !wait_satisfied(&m, return_when);
    if (timed)
        wait_timer_arm(&wt, t, timeout_ns);
    while (!wait_satisfied(&m, return_when)) {
        /* A timeout of 0 only looks: asyncio's wait(timeout=0). */
        if (timeout_ns == 0 || (timed && wait_timed_out(&wt)))
            break;
        if (corio__task_take_cancel(t)) {
            rc = -ECANCELED;
            break;
        }
        corio__task_park(t, PARK_WAIT);
    }
    if (timed)
        wait_timer_disarm(&wt);
    multi_unregister(&m);
    multi_fini(&m, false);
    wait_split(fs, n, done, ndone_out, pending, npending);
    return rc;
}

int corio_wait(corio_future *const *fs, size_t n, int return_when, corio_future **done,
               size_t *ndone_out, corio_future **pending, size_t *npending)
{
    return wait_common(fs, n, return_when, -1, done, ndone_out, pending, npending);
}

int corio_wait_timeout(corio_future *const *fs, size_t n, int return_when, int64_t timeout_ns,
                       corio_future **done, size_t *ndone_out, corio_future **pending,
                       size_t *npending)
{
    if (timeout_ns < 0)
        return -EINVAL;
    return wait_common(fs, n, return_when, timeout_ns, done, ndone_out, pending, npending);
}

/* ---- as_completed ---- */

struct corio_as_completed {
    struct multi m;
    size_t head;
};

int corio_as_completed_start(corio_as_completed **out, corio_future *const *fs, size_t n)
{
    if (!out || (n > 0 && !fs))
        return -EINVAL;
    struct corio_as_completed *it = calloc(1, sizeof *it);
    if (!it)
        return -ENOMEM;
    int rc = multi_init(&it->m, fs, n, true);
    if (rc < 0) {
        free(it);
        return rc;
    }
    multi_register(&it->m);
    *out = it;
    return 0;
}

int corio_as_completed_next(corio_as_completed *it, corio_future **f)
{
    if (!it || !f)
        return -EINVAL;
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;
    if (it->head == it->m.n)
        return -ENOENT;
    int rc = 0;
    for (;;) {
        size_t idx = atomic_load_explicit(&it->m.order[it->head], memory_order_acquire);
        if (idx) {
            *f = it->m.fs[idx - 1];
            it->head++;
            break;
        }
        if (corio__task_take_cancel(t)) {
            rc = -ECANCELED;
            break;
        }
        multi_set_waiter(&it->m, t);
        /* A completion noted before the waiter was set woke nobody. */
        if (!atomic_load_explicit(&it->m.order[it->head], memory_order_acquire))
            corio__task_park(t, PARK_AS_COMPLETED);
        multi_set_waiter(&it->m, NULL);
    }
    return rc;
}

void corio_as_completed_destroy(corio_as_completed *it)
{
    if (!it)
        return;
    multi_unregister(&it->m);
    multi_fini(&it->m, true);
    free(it);
}

/* ---- shield ---- */

struct shield_link {
    struct corio__waiter w;
    struct corio_future *inner, *outer;
};

static void shield_copy(struct corio_future *inner, struct corio_future *outer)
{
    uint8_t st = atomic_load_explicit(&inner->state, memory_order_acquire);
    if (st == FUT_FAILED)
        atomic_store_explicit(&inner->retrieved, true, memory_order_relaxed);
    corio__future_complete(outer, st, inner->value, inner->err, inner->msg, true);
}

/* Fired under inner's lock. The link's references keep both alive until
 * here; inner's completer holds its own, so the unref of inner never frees
 * it under its own lock. */
static void shield_fire(struct corio__waiter *w, struct corio_future *inner)
{
    struct shield_link *l = corio__container_of(w, struct shield_link, w);
    shield_copy(inner, l->outer);
    corio_future_unref(l->outer);
    atomic_fetch_sub_explicit(&inner->refs, 1, memory_order_relaxed);
    free(l);
}

int corio_shield(corio_future *inner, corio_future **out)
{
    if (!inner || !out)
        return -EINVAL;
    struct corio__worker *w = corio__worker_current();
    if (!w)
        return -EPERM;
    struct corio_future *outer;
    int rc = corio_future_create(&outer);
    if (rc < 0)
        return rc;
    struct shield_link *l = malloc(sizeof *l);
    if (!l) {
        corio_future_unref(outer);
        return -ENOMEM;
    }
    l->inner = corio_future_ref(inner);
    l->outer = corio_future_ref(outer);
    if (!corio__future_add_waiter(inner, &l->w, shield_fire)) {
        shield_copy(inner, outer);
        corio_future_unref(l->outer);
        corio_future_unref(l->inner);
        free(l);
    }
    *out = outer;
    return 0;
}
