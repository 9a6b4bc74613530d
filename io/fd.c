/* io/fd.c - asyncio's add_reader/add_writer (corio/fd.h) on corio_wait_fd().
 *
 * A registration is a struct watch in a process-wide table keyed by
 * (runtime, fd, direction) under one mutex. Each watch has one internal
 * task that loops:
 *
 *     corio_wait_fd(fd, POLLIN or POLLOUT)   (readiness, level-triggered)
 *     corio_call_soon(run_callback, watch)   (the user's callback, on a worker)
 *     await the callback's future            (so it never runs twice at once,
 *                                             and unread data makes it run
 *                                             again: level-triggered)
 *
 * remove_* unlinks the watch and cancels its task; the runtime's shutdown
 * cancels it as any other visible task (so we need no exclusion from
 * corio_all_tasks() and no shutdown hook: the simplest correct choice). The
 * task, when it ends for whatever reason, unlinks its watch if it is still
 * linked and drops its reference: in a done callback on the task
 * (watch_ended), because a task cancelled before its first step (a remove
 * right after the add, or the shutdown reaching it first) never runs its
 * body, so code at the end of watch_main would never run and the watch, its
 * task and with them the runtime's shell would leak (or stay linked with a
 * dead runtime's pointer). Done callbacks run for such a task too, and the
 * shutdown runs them: they are queued when the task ends, before the workers
 * stop. watch_main also unlinks as it ends, so a watch that stopped on its
 * own (a closed fd) is replaced by the next add at once, not only after its
 * done callback ran.
 *
 * Lifetime: a watch is referenced by its task (dropped by watch_ended) and
 * by a scheduled, not yet finished callback (refs, atomic); the last to drop
 * it frees it. A task that ends while its callback is scheduled cancels the
 * handle: when that wins (returns 1) the callback never runs and the task
 * drops the callback's reference too. The table does not hold a reference:
 * watch_ended unlinks under the mutex before dropping the task's, and add
 * spawns the task and registers watch_ended under the mutex, so the watch
 * cannot be freed before add stored it (watch_ended, even when it is
 * scheduled at once because the task already ended, waits for the mutex).
 * Only if registering watch_ended fails (no memory) does watch_main drop the
 * task's reference itself as it ends (own_end): then a cancellation before
 * the first step leaks the watch, as stream.c's spawn_with_end accepts, never
 * frees it twice.
 *
 * fn/arg are read and replaced (a second add) under the mutex.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "corio/fd.h"
#include "corio/future.h"
#include "corio/net.h"
#include "corio/task.h"

#define BUCKETS 64   /* a table per process; a few hundred watched fds at most in practice */

enum { READER, WRITER };

struct watch {
    corio_rt *rt;
    int fd, dir;
    corio_callback_fn fn;       /* under table_lock */
    void *arg;                  /* under table_lock */
    bool linked;                /* under table_lock */
    bool own_end;               /* no watch_ended: watch_main drops the task's ref */
    struct watch *next;         /* bucket chain, under table_lock */
    corio_task *task;           /* the spawn reference, dropped with the watch */
    corio_future *ran;          /* this round's "callback finished", task-owned */
    _Atomic int refs;
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct watch *table[BUCKETS];

static struct watch **slot_of(corio_rt *rt, int fd, int dir)
{
    struct watch **p = &table[(unsigned)fd % BUCKETS];
    while (*p && !((*p)->rt == rt && (*p)->fd == fd && (*p)->dir == dir))
        p = &(*p)->next;
    return p;
}

static void watch_unref(struct watch *w)
{
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) == 1) {
        corio_task_unref(w->task);
        free(w);
    }
}

/* Unlinks @w if nobody did yet. Caller holds table_lock. */
static void unlink_locked(struct watch *w)
{
    if (!w->linked)
        return;
    struct watch **p = slot_of(w->rt, w->fd, w->dir);
    if (*p == w)
        *p = w->next;
    w->linked = false;
}

/* The callback's round, on a worker: the task waits for set_result. w->ran
 * is this round's: the task replaces it only after set_result below. */
static void run_callback(void *arg)
{
    struct watch *w = arg;
    corio_future *ran = w->ran;
    pthread_mutex_lock(&table_lock);
    bool live = w->linked;
    corio_callback_fn fn = w->fn;
    void *fn_arg = w->arg;
    pthread_mutex_unlock(&table_lock);
    if (live)   /* removed meanwhile: remove_* promised it would not run */
        fn(fn_arg);
    corio_future_set_result(ran, NULL);
    corio_future_unref(ran);
    watch_unref(w);
}

/* One round: schedule the callback and wait for it. 0, or < 0 to stop. */
static int one_round(struct watch *w)
{
    if (corio_future_create(&w->ran) < 0)
        return -ENOMEM;
    /* Ours: w itself stays alive through the task's own reference. */
    corio_future *ran = w->ran;
    corio_handle *h = NULL;
    corio_future_ref(ran);
    atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
    int rc = corio_call_soon(&h, run_callback, w);
    if (rc < 0) {
        corio_future_unref(ran);
        atomic_fetch_sub_explicit(&w->refs, 1, memory_order_relaxed);
    } else {
        rc = corio_future_await(ran, NULL);
        /* Cancelled while the callback waits to run: keep it from running
         * and drop the references it would have dropped. */
        if (rc < 0 && corio_handle_cancel(h) == 1) {
            corio_future_unref(ran);
            watch_unref(w);
        }
        corio_handle_unref(h);
    }
    /* w->ran stays: a callback that started before a cancellation may not
     * have read it yet (it holds its own reference to the future). */
    corio_future_unref(ran);
    return rc;
}

static void *watch_main(void *arg)
{
    struct watch *w = arg;
    int events = w->dir == READER ? POLLIN : POLLOUT;
    for (;;) {
        int rc = corio_wait_fd(w->fd, events);
        /* -ECANCELED (removed, or shutdown), -EBADF, or a closed fd. */
        if (rc < 0 || (rc & POLLNVAL))
            break;
        if (one_round(w) < 0)
            break;
    }
    /* Unlinked now, so an add from here on makes a new watch; the task's
     * reference goes in watch_ended (which also runs when the body never
     * did). */
    pthread_mutex_lock(&table_lock);
    unlink_locked(w);
    bool own_end = w->own_end;
    pthread_mutex_unlock(&table_lock);
    if (own_end)
        watch_unref(w);
    return NULL;
}

/* The watch task's done callback: its end, whatever the reason, also a
 * cancellation before its first step. */
static void watch_ended(corio_future *f, void *arg)
{
    struct watch *w = arg;
    (void)f;
    pthread_mutex_lock(&table_lock);
    unlink_locked(w);
    pthread_mutex_unlock(&table_lock);
    watch_unref(w);
}

static int add(int fd, int dir, corio_callback_fn fn, void *arg)
{
    if (fd < 0 || !fn)
        return -EINVAL;
    corio_rt *rt = corio_get_running_rt();
    if (!rt)
        return -EPERM;
    pthread_mutex_lock(&table_lock);
    struct watch **p = slot_of(rt, fd, dir);
    if (*p) {   /* asyncio replaces the callback of an existing watcher */
        (*p)->fn = fn;
        (*p)->arg = arg;
        pthread_mutex_unlock(&table_lock);
        return 0;
    }
    int rc = -ENOMEM;
    struct watch *w = calloc(1, sizeof *w);
    if (w) {
        *w = (struct watch){.rt = rt, .fd = fd, .dir = dir, .fn = fn, .arg = arg,
                            .linked = true};
        atomic_init(&w->refs, 1);
        char name[40];
        snprintf(name, sizeof name, "corio-%s-%d", dir == READER ? "reader" : "writer", fd);
        corio_spawn_options o = {.name = name};
        /* Under the lock: watch_ended takes it, so it cannot free @w before
         * w->task is stored and @w linked. */
        rc = corio_spawn_ex(&w->task, watch_main, w, &o);
        if (rc == 0) {
            *p = w;
            /* -ENOMEM only: the task runs anyway (it may have started on
             * another worker, and waits for the mutex to end). */
            if (corio_future_add_done_callback(corio_task_future(w->task), watch_ended, w) < 0)
                w->own_end = true;
        } else {
            free(w);
        }
    }
    pthread_mutex_unlock(&table_lock);
    return rc;
}

static int remove_watch(int fd, int dir)
{
    if (fd < 0)
        return -EINVAL;
    corio_rt *rt = corio_get_running_rt();
    if (!rt)
        return -EPERM;
    pthread_mutex_lock(&table_lock);
    struct watch *w = *slot_of(rt, fd, dir);
    corio_task *t = NULL;
    if (w) {
        unlink_locked(w);
        t = corio_task_ref(w->task);   /* @w may be freed once we unlock */
    }
    pthread_mutex_unlock(&table_lock);
    if (!t)
        return 0;
    corio_task_cancel(t, NULL);
    corio_task_unref(t);
    return 1;
}

int corio_add_reader(int fd, corio_callback_fn fn, void *arg)
{
    return add(fd, READER, fn, arg);
}

int corio_add_writer(int fd, corio_callback_fn fn, void *arg)
{
    return add(fd, WRITER, fn, arg);
}

int corio_remove_reader(int fd)
{
    return remove_watch(fd, READER);
}

int corio_remove_writer(int fd)
{
    return remove_watch(fd, WRITER);
}
