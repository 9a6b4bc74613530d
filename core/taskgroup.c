/* core/taskgroup.c - asyncio.TaskGroup (CPython 3.12's taskgroups.py).
 *
 * The group follows taskgroups.py step by step; what differs is that the
 * parent, the children and whoever spawns into the group may run on
 * different workers at once, so the group's state sits under one spinlock:
 * the live children (a list, so abort can cancel them), their count, the
 * flags (aborting, parent_cancel_requested, waiting), the state and the
 * failures.
 *
 * A child is accounted for by a done callback (corio_future_add_done_callback,
 * Python's task.add_done_callback(self._on_task_done)), not by a waiter
 * node: the callback runs as a handle, outside every future's lock, so it may
 * cancel the siblings and the parent. (A waiter's fire runs under the
 * child's own lock; cancelling a sibling from there would take a second
 * future lock while abort, under the group's lock, takes futures' locks in
 * another order.) Lock order: group lock -> a task's future lock.
 *
 * Exit waits until the count of live children is zero; the last callback
 * wakes the parent under the group's lock, and the parent checks the count
 * under the same lock before it returns, so no callback touches the group
 * after exit returned. A child whose callback could not be registered
 * (-ENOMEM) stays "untracked" and exit polls it with yields instead.
 *
 * Cancellation requests on the parent are counted as in asyncio: the
 * group's own request (parent_cancel_requested) is taken back at exit with
 * one uncancel, so corio_task_cancelling(parent) is back where it started;
 * a request from outside keeps counting and exit returns -ECANCELED.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "corio/taskgroup.h"

enum { TG_IDLE = 0, TG_ENTERED, TG_EXITING, TG_EXITED };

#define TG_MAGIC 0x74677270u   /* "tgrp": catches a group never entered */

struct tgroup;

struct tg_child {
    struct tg_child *next, *prev;  /* the live list; then (next) the failures */
    struct tgroup *g;
    struct corio_task *task;       /* the group's reference; NULL while spawning */
    int err;                       /* its failure */
    const char *msg;               /* the task's message (lives with the task) */
    bool untracked;                /* no done callback: polled by exit */
};

struct tgroup {
    uint32_t magic;
    uint8_t state;                 /* under lock once entered */
    bool aborting, parent_cancel_requested, waiting;
    struct corio__spin lock;
    struct corio_task *parent;
    struct tg_child *live;
    size_t nlive;                  /* live children + spawns in progress */
    size_t nuntracked;
    struct tg_child *err_head, *err_tail;
    int nerrors;                   /* children's failures */
    int body_err;                  /* the body's failure (recorded last), or 0 */
};

_Static_assert(sizeof(struct tgroup) <= sizeof(corio_taskgroup), "corio_taskgroup too small");
_Static_assert(_Alignof(struct tgroup) <= _Alignof(corio_taskgroup), "corio_taskgroup alignment");

static struct tgroup *group_of(corio_taskgroup *tg) { return (struct tgroup *)(void *)tg; }

static const struct tgroup *cgroup_of(const corio_taskgroup *tg)
{
    return (const struct tgroup *)(const void *)tg;
}

static void link_live(struct tgroup *g, struct tg_child *c)
{
    c->prev = NULL;
    c->next = g->live;
    if (g->live)
        g->live->prev = c;
    g->live = c;
    g->nlive++;
}

static void unlink_live(struct tgroup *g, struct tg_child *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        g->live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    g->nlive--;
}

/* _abort(): cancel every child not done. Under lock. */
static void abort_locked(struct tgroup *g)
{
    g->aborting = true;
    for (struct tg_child *c = g->live; c; c = c->next)
        if (c->task && !corio_task_done(c->task))
            corio_task_cancel(c->task, NULL);
}

/* _on_task_done(): the child @c has ended. */
static void child_finish(struct tg_child *c)
{
    struct tgroup *g = c->g;
    struct corio_task *t = c->task;
    const char *msg = NULL;
    /* A cancelled child is not a failure; exception() marks it retrieved. */
    int err = corio_task_cancelled(t) ? 0 : corio_task_exception(t, &msg);
    corio__spin_lock(&g->lock);
    unlink_live(g, c);
    if (c->untracked)
        g->nuntracked--;
    if (err < 0) {
        c->err = err;
        c->msg = msg;
        if (g->err_tail)
            g->err_tail->next = c;
        else
            g->err_head = c;
        g->err_tail = c;
        g->nerrors++;
        if (!g->aborting && !g->parent_cancel_requested) {
            abort_locked(g);
            g->parent_cancel_requested = true;
            corio_task_cancel(g->parent, NULL);
        }
    }
    if (g->nlive == 0 && g->waiting)
        corio__task_wake(g->parent);
    corio__spin_unlock(&g->lock);
    if (err >= 0) {
        corio_task_unref(t);
        free(c);
    }
}

static void child_done(corio_future *f, void *arg)
{
    (void)f;
    child_finish(arg);
}

int corio_taskgroup_enter(corio_taskgroup *tgp)
{
    if (!tgp)
        return -EINVAL;
    struct tgroup *g = group_of(tgp);
    if (g->magic == TG_MAGIC && (g->state == TG_ENTERED || g->state == TG_EXITING))
        return -EINVAL;   /* "TaskGroup ... has already been entered" */
    memset(g, 0, sizeof *g);
    corio__spin_init(&g->lock);
    g->magic = TG_MAGIC;
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;   /* "cannot determine the parent task" */
    g->parent = t;
    g->state = TG_ENTERED;
    return 0;
}

/* create_task()'s checks, under lock: not entered, finished, shutting down. */
static int spawn_allowed_locked(const struct tgroup *g)
{
    if (g->state == TG_ENTERED)
        return g->aborting ? -EINVAL : 0;
    if (g->state == TG_EXITING && g->nlive > 0)
        return g->aborting ? -EINVAL : 0;
    return -EINVAL;
}

/* The spawn failed: take back the reservation. */
static void spawn_undo(struct tgroup *g, struct tg_child *c)
{
    corio__spin_lock(&g->lock);
    unlink_live(g, c);
    if (g->nlive == 0 && g->waiting)
        corio__task_wake(g->parent);
    corio__spin_unlock(&g->lock);
    free(c);
}

int corio_taskgroup_spawn(corio_taskgroup *tgp, corio_task **out, corio_fn fn, void *arg,
                          const corio_spawn_options *opts)
{
    if (!tgp || !fn)
        return -EINVAL;
    struct tgroup *g = group_of(tgp);
    if (g->magic != TG_MAGIC)
        return -EINVAL;
    struct tg_child *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->g = g;
    /* Reserve a place first, so exit cannot finish while this spawn runs. */
    corio__spin_lock(&g->lock);
    int rc = spawn_allowed_locked(g);
    if (rc == 0)
        link_live(g, c);
    corio__spin_unlock(&g->lock);
    if (rc < 0) {
        free(c);
        return rc;
    }
    struct corio_task *t;
    rc = corio_spawn_ex(&t, fn, arg, opts);
    if (rc < 0) {
        spawn_undo(g, c);
        return rc;
    }
    if (out)
        *out = corio_task_ref(t);
    /* An abort that ran while c->task was NULL skipped it: cancel here. */
    corio__spin_lock(&g->lock);
    c->task = t;
    bool cancel = g->aborting;
    corio__spin_unlock(&g->lock);
    if (cancel)
        corio_task_cancel(t, NULL);
    if (corio_future_add_done_callback(&t->fut, child_done, c) < 0) {
        corio__spin_lock(&g->lock);
        c->untracked = true;
        g->nuntracked++;
        corio__spin_unlock(&g->lock);
    }
    return 0;
}

/* Children without a done callback that have ended: account for them. */
static void sweep_untracked(struct tgroup *g)
{
    for (;;) {
        struct tg_child *found = NULL;
        corio__spin_lock(&g->lock);
        for (struct tg_child *c = g->live; c && !found; c = c->next)
            if (c->untracked && c->task && corio_task_done(c->task))
                found = c;
        corio__spin_unlock(&g->lock);
        if (!found)
            return;
        child_finish(found);
    }
}

/* __aexit__'s `while self._tasks` loop. */
static void wait_children(struct tgroup *g, struct corio_task *t, bool *propagate)
{
    for (;;) {
        sweep_untracked(g);
        corio__spin_lock(&g->lock);
        if (g->nlive == 0) {
            g->waiting = false;
            corio__spin_unlock(&g->lock);
            return;
        }
        g->waiting = true;
        bool poll = g->nuntracked > 0;
        corio__spin_unlock(&g->lock);
        if (corio__task_take_cancel(t)) {
            /* The parent is cancelled from outside (or again): abort, unless
             * the group is aborting already, which swallows it. */
            corio__spin_lock(&g->lock);
            if (!g->aborting) {
                *propagate = true;
                abort_locked(g);
            }
            corio__spin_unlock(&g->lock);
            continue;
        }
        if (poll)
            corio__task_switch_out(t, SW_YIELD);
        else
            corio__task_park(t, PARK_TASK_GROUP);
    }
}

static int first_error(const struct tgroup *g)
{
    return g->err_head ? g->err_head->err : g->body_err;
}

int corio_taskgroup_exit(corio_taskgroup *tgp, int rc)
{
    if (!tgp)
        return -EINVAL;
    struct tgroup *g = group_of(tgp);
    struct corio_task *t = corio_current_task();
    if (g->magic != TG_MAGIC || !t || g->parent != t)
        return -EINVAL;
    corio__spin_lock(&g->lock);
    if (g->state != TG_ENTERED) {
        corio__spin_unlock(&g->lock);
        return -EINVAL;
    }
    g->state = TG_EXITING;
    bool propagate = rc == -ECANCELED;
    if (rc < 0 && !g->aborting)
        abort_locked(g);   /* the body failed or was cancelled */
    corio__spin_unlock(&g->lock);

    wait_children(g, t, &propagate);

    corio__spin_lock(&g->lock);
    g->state = TG_EXITED;
    corio__spin_unlock(&g->lock);
    /* Take back the group's own request; with none left, no CancelledError. */
    if (g->parent_cancel_requested && corio_task_uncancel(t) == 0)
        propagate = false;
    if (propagate && g->nerrors == 0)
        return -ECANCELED;
    if (rc < 0 && rc != -ECANCELED)
        g->body_err = rc;
    if (g->nerrors == 0 && !g->body_err)
        return rc;
    /* Failures take precedence over an outside cancellation: re-arm it so
     * the parent's next await still sees it, the count unchanged. */
    if (corio_task_cancelling(t) > 0) {
        corio_task_uncancel(t);
        corio_task_cancel(t, NULL);
    }
    return first_error(g);
}

int corio_taskgroup_error_count(const corio_taskgroup *tgp)
{
    const struct tgroup *g = tgp ? cgroup_of(tgp) : NULL;
    if (!g || g->magic != TG_MAGIC)
        return 0;
    return g->nerrors + (g->body_err ? 1 : 0);
}

int corio_taskgroup_error(const corio_taskgroup *tgp, int i, int *code, const char **msg,
                          corio_task **task)
{
    if (!tgp)
        return -EINVAL;
    const struct tgroup *g = cgroup_of(tgp);
    if (g->magic != TG_MAGIC || i < 0 || i >= corio_taskgroup_error_count(tgp))
        return -ENOENT;
    const struct tg_child *c = g->err_head;
    for (int k = 0; k < i && c; k++)
        c = c->next;
    if (code)
        *code = c ? c->err : g->body_err;
    if (msg)
        *msg = c ? c->msg : NULL;
    if (task)
        *task = c ? c->task : NULL;
    return 0;
}

int corio_taskgroup_close(corio_taskgroup *tgp)
{
    if (!tgp)
        return -EINVAL;
    struct tgroup *g = group_of(tgp);
    if (g->magic != TG_MAGIC)
        return 0;
    if (g->state == TG_ENTERED || g->state == TG_EXITING)
        return -EBUSY;
    struct tg_child *c = g->err_head;
    while (c) {
        struct tg_child *next = c->next;
        corio_task_unref(c->task);
        free(c);
        c = next;
    }
    g->err_head = g->err_tail = NULL;
    g->nerrors = 0;
    g->body_err = 0;
    g->magic = 0;
    return 0;
}

void corio__taskgroup_guard(struct corio__taskgroup_guard *guard)
{
    if (guard->tg)
        *guard->rc = corio_taskgroup_exit(guard->tg, *guard->rc);
}
