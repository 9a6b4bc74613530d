/* core/sched.c - the worker loop: where runnable work is found, how a task
 * step runs, and what happens when it switches out.
 *
 * Order of taking work (DESIGN.md): LIFO slot (at most 3 in a row), the
 * yield slot (keep_budget_yielder), local queue, every 61st tick the global
 * queues first, then the global queues (a batch: the woken queue before the
 * global queue, see push_woken), then steal half of another worker's
 * queue, then another worker's LIFO or yield slot when that worker has not
 * moved on for a while (steal_lifo), then park.
 *
 * One worker = asyncio's order: no LIFO slot, no global-first tick, and the
 * invariant "everything in the local queue is older than everything in the
 * global queue" (a push goes to the global queue whenever that one is not
 * empty or the local one is full), so taking local-then-global is strict
 * FIFO.
 *
 * A task switches out to its worker's scheduler fiber with a reason; only
 * then, with its context saved, does the scheduler publish its new state
 * (see core/internal.h for the state machine). The scheduler fiber never
 * migrates: it is the worker thread's own stack.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "internal.h"

#define GLOBAL_QUEUE_INTERVAL 61   /* Go and tokio check the global queue every 61 ticks */
#define LIFO_MAX_STREAK 3          /* tokio: the LIFO slot may not starve the queue */
#define INJECT_BATCH_MAX 128       /* DESIGN.md: an idle worker takes min(len/n + 1, 128) */

static __thread struct corio__worker *tls_worker;

/* Not inlined and opaque to IPA: a task may resume on another thread after
 * any switch, so the TLS address must be computed afresh at every call. */
__attribute__((noinline, noipa)) struct corio__worker *corio__worker_current(void)
{
    return tls_worker;
}

static bool single(const struct corio_rt *rt) { return rt->nworkers == 1; }

static void push_local(struct corio__worker *w, struct corio__snode *n)
{
    struct corio_rt *rt = w->rt;
    if (single(rt)) {
        if (!corio__inject_is_empty(&rt->inject) || corio__runq_free_owner(&w->runq) == 0)
            corio__inject_push(&rt->inject, &n->q);
        else
            corio__runq_push_owner(&w->runq, &n->q, &rt->inject);
        return;
    }
    if (corio__runq_push_owner(&w->runq, &n->q, &rt->inject))
        corio__stat_add(w->m_overflows, 1);
}

/* A task made runnable again (woken, or re-queued after a step) or bumped
 * from the LIFO slot that finds the local queue full goes to the global
 * woken queue, which any worker takes from before the global queue. Not to
 * the global queue: an overflow would move it, with the oldest half of the
 * local queue, behind what may be a long backlog of tasks that never ran
 * (perf W4: 100k spawned sleepers; their wake-ups ran ~100 ms late). Nor to
 * a list private to this worker (W4 again: the worker that started most
 * sleepers fires most timers, and 12k woken tasks waited in its list while
 * the other worker had nothing to steal). A spawn that bumps a task from
 * the LIFO slot still goes through push_local(), whose overflow can move
 * woken tasks behind the backlog. Multi-worker only: one worker keeps
 * asyncio's strict order through push_local(). */
static void push_woken(struct corio__worker *w, struct corio__snode *n)
{
    if (corio__runq_free_owner(&w->runq) > 0)
        push_local(w, n);
    else
        corio__inject_push(&w->rt->woken, &n->q);
}

static void schedule_on(struct corio_rt *rt, struct corio__snode *n, bool lifo, bool woken)
{
    struct corio__worker *w = corio__worker_current();
    if (!w || w->rt != rt) {
        corio__inject_push(&rt->inject, &n->q);
        atomic_fetch_add_explicit(&rt->handed_in, 1, memory_order_relaxed);   /* spin_for_hand_in() */
        corio__idle_notify(rt);
        return;
    }
    if (single(rt)) {
        push_local(w, n);
        return;
    }
    if (lifo) {
        /* Only the owner fills the slot, so an empty slot stays empty until
         * this store: no locked exchange needed then (pairs with the acquire
         * exchange of the owner's pop or a thief's steal). */
        struct corio__snode *prev = atomic_load_explicit(&w->lifo, memory_order_relaxed);
        w->lifo_by_step = true;
        if (!prev) {
            atomic_store_explicit(&w->lifo, n, memory_order_release);
            return;   /* runs next on this worker: nobody else needs waking */
        }
        prev = atomic_exchange_explicit(&w->lifo, n, memory_order_acq_rel);
        if (!prev)
            return;   /* a thief took the previous one meanwhile */
        n = prev;
    }
    if (woken)
        push_woken(w, n);
    else
        push_local(w, n);
    corio__idle_notify(rt);
}

void corio__schedule(struct corio_rt *rt, struct corio__snode *n, bool lifo)
{
    schedule_on(rt, n, lifo, false);
}

void corio__task_wake(struct corio_task *t)
{
    /* The waker has stored what the task waits for (a result, a cancel
     * request). A parked task it schedules with a CAS, which reads the
     * latest state: nothing else can change a parked task's word. Any
     * other view may be stale: the task's worker may still hold in its
     * store buffer the SCHEDULED and RUNNING stores of a yield and of the
     * next step (plain stores), which then land after our CAS and erase a
     * NOTIFIED bit, while that step read the condition before our store was
     * visible and is about to park on the old value. So such a wake first
     * counts itself (a locked add, acq_rel) and then looks again and
     * notifies or leaves the task be; after_switch() adds 0 to the count
     * before it parks. The two adds are ordered: either the park's sees
     * our count (the task runs again), or ours reads from it (release
     * sequence) and our second look sees that step's RUNNING, so a NOTIFIED
     * we set fails the park CAS. Cost: one locked add per wake that finds
     * the task not parked, one per park, nothing for a step that does not
     * park (a seq_cst RUNNING store would cost every step one). Measured
     * against no count (8 interleaved runs each): W1, W3, yield, lock and
     * queue within noise, W2 -5%. */
    uint32_t s = atomic_load_explicit(&t->sched, memory_order_acquire);
    bool counted = false;
    for (;;) {
        uint32_t st = s & TS_STATE_MASK;
        uint32_t next;
        if (st == TS_PARKED) {
            next = TS_SCHEDULED;
        } else if (st == TS_RUNNING && !(s & TS_NOTIFIED) && counted) {
            next = s | TS_NOTIFIED;
        } else if (st == TS_DONE || counted) {
            return;
        } else {
            atomic_fetch_add_explicit(&t->wakes, 1, memory_order_acq_rel);
            counted = true;
            s = atomic_load_explicit(&t->sched, memory_order_acquire);
            continue;
        }
        /* acq_rel: pairs with the release CAS RUNNING->PARKED in
         * after_switch(), so the task's saved context is visible to whoever
         * resumes it. */
        if (atomic_compare_exchange_weak_explicit(&t->sched, &s, next, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            if (next == TS_SCHEDULED)
                schedule_on(t->fut.rt, &t->node, true, true);
            return;
        }
    }
}

/* The task has ended (its future is complete): give back its stack and
 * budget, drop it from the registry and drop the runtime's reference. */
static void task_retire(struct corio__worker *w, struct corio_task *t)
{
    struct corio_rt *rt = w->rt;
    atomic_store_explicit(&t->sched, TS_DONE, memory_order_release);
    if (t->stack.lo) {
        corio__fiber_destroy(&t->fiber);
        corio__stack_free(&w->stacks, &rt->arena, &t->stack);
        if (atomic_load_explicit(&rt->stack_exhausted, memory_order_relaxed))
            atomic_store_explicit(&rt->stack_exhausted, false, memory_order_relaxed);
        t->stack.lo = NULL;
    }
    if (t->stack_reserved)
        atomic_fetch_sub_explicit(&rt->stack_reserved, t->stack_reserved, memory_order_relaxed);
    /* Internal tasks were never counted as spawned (corio_rt_alive_tasks). */
    if (t->reg_shard != CORIO__NOT_REGISTERED)
        corio__stat_add(w->m_ended, 1);
    corio__registry_retire(rt, t, w);
    /* A worker parked after the runner stopped waits for the last late task
     * to end (worker_may_leave()); the idle lock orders our m_ended store
     * before its next look. */
    if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
        corio__idle_unpark_all(rt);
}

/* Give a task that never ran its stack and first context. Fails, changing
 * nothing, when it was cancelled before it ever ran (-ECANCELED) or no
 * stack can be had. */
static int task_try_start(struct corio__worker *w, struct corio_task *t)
{
    if (atomic_load_explicit(&t->must_cancel, memory_order_acquire))
        return -ECANCELED;
    int rc = corio__stack_alloc(&w->stacks, &w->rt->arena, t->stack_size, &t->stack);
    if (rc < 0)
        return rc;
    corio__fiber_init(&t->fiber, t->stack.lo, t->stack.size, corio__task_run_entry);
    return 0;
}

static bool task_start(struct corio__worker *w, struct corio_task *t)
{
    int rc = task_try_start(w, t);
    if (rc == 0)
        return true;
    if (rc == -ECANCELED) {
        /* asyncio throws CancelledError in before the first line, so the
         * body never runs. */
        corio__future_complete(&t->fut, FUT_CANCELLED, NULL, 0, corio__task_cancel_msg(t), false);
        return false;
    }
    if (rc == -ENOMEM)
        atomic_store_explicit(&w->rt->stack_exhausted, true, memory_order_relaxed);
    corio__future_complete(&t->fut, FUT_FAILED, NULL, rc, "cannot allocate a task stack", true);
    return false;
}

static struct corio__snode *snode_of(struct corio__qnode *q)
{
    return q ? corio__container_of(q, struct corio__snode, q) : NULL;
}

/* The task's context is saved: hand it to the worker it asked for. It is
 * SCHEDULED from here, so a concurrent waker leaves it alone. */
static void migrate_push(struct corio_task *t, struct corio__worker *to)
{
    atomic_store_explicit(&t->sched, TS_SCHEDULED, memory_order_relaxed);
    struct corio__qnode *head = atomic_load_explicit(&to->inbox, memory_order_relaxed);
    do
        t->node.q.next = head;
    /* release: pairs with the acquire exchange in take_pinned(). */
    while (!atomic_compare_exchange_weak_explicit(&to->inbox, &head, &t->node.q,
                                                  memory_order_release, memory_order_relaxed));
    corio__worker_unpark(to);
}

/* The switch value of SW_MIGRATE carries the target worker: workers are
 * 64-byte aligned (runtime.c), so the reason fits in the low bits and the
 * task needs no field for it. */
#define SW_REASON_MASK ((uintptr_t)63)
_Static_assert(_Alignof(struct corio__worker) >= 64, "SW_MIGRATE packs a worker pointer");

/* The next task that moved here. Migrated tasks must run on this worker
 * (that is why they moved), so they never enter the stealable queues: the
 * inbox is emptied into `pinned`, a list only this worker touches (others
 * only read whether it is empty), and they run before anything else. */
static struct corio__snode *take_pinned(struct corio__worker *w)
{
    struct corio__qnode *q = atomic_load_explicit(&w->pinned, memory_order_relaxed);
    if (!q) {
        q = atomic_exchange_explicit(&w->inbox, NULL, memory_order_acquire);
        struct corio__qnode *rev = NULL;
        while (q) {   /* oldest first */
            struct corio__qnode *next = q->next;
            q->next = rev;
            rev = q;
            q = next;
        }
        q = rev;
    }
    atomic_store_explicit(&w->pinned, q->next, memory_order_relaxed);
    return snode_of(q);
}

/* A task that used up its budget yields so that others may run. When its
 * step handed work to a task it woke into the LIFO slot and its worker's
 * run queue is empty, it waits in the worker's yield slot: it runs once
 * that task has run, and thieves treat it as they treat the LIFO slot.
 * Through the run queue, an idle worker stole it at almost every budget
 * (perf queue: the producer and the consumer split across workers, and met
 * on the queue's lock at every item). A yielder that woke nobody goes
 * through the run queue and wakes a sleeping worker: it is independent
 * work, and keeping it here beside a pair that hands work back and forth
 * through the LIFO slot would leave that worker asleep. */
static bool keep_budget_yielder(struct corio__worker *w, struct corio_task *t)
{
    /* The slot may hold an earlier yielder still: the task that just ran
     * may have come from the LIFO slot, which is taken first. */
    if (single(w->rt) || !w->lifo_by_step || !corio__runq_is_empty(&w->runq) ||
        atomic_load_explicit(&w->yielded, memory_order_relaxed))
        return false;
    atomic_store_explicit(&t->sched, TS_SCHEDULED, memory_order_relaxed);
    /* Only the owner fills the slot, and it was empty: a thief may only
     * have emptied it meanwhile. */
    atomic_store_explicit(&w->yielded, &t->node, memory_order_release);
    return true;
}

static void check_canary(struct corio__worker *w, struct corio_task *t)
{
    /* Only canary-mode stacks need the check (guard pages fault by themselves). */
    if (w->rt->arena.guard == CORIO_GUARD_CANARY &&
        CORIO_NEVER(!corio__stack_canary_ok(&w->rt->arena, &t->stack))) {
        char name[CORIO__NAME_MAX];
        fprintf(stderr, "corio: stack overflow in task '%s' (%zu-byte stack)\n",
                corio__task_name_copy(t, name, sizeof name), t->stack.size);
        abort();
    }
}

static void after_switch(struct corio__worker *w, struct corio_task *t, uintptr_t why)
{
    check_canary(w, t);
    if (why == SW_DONE) {
        task_retire(w, t);
        return;
    }
    if ((why & SW_REASON_MASK) == SW_MIGRATE) {
        migrate_push(t, (struct corio__worker *)(why & ~SW_REASON_MASK));
        return;
    }
    if (why == SW_PARK) {
        uint32_t expect = TS_RUNNING;
        /* A wake-up counted during the step may have read ->sched before
         * our RUNNING store was visible (see corio__task_wake()). Both
         * sides update ->wakes (a locked add of 0 here), so one of the two
         * comes second: either the waker's look at ->sched happens after
         * our RUNNING store, or we see its count here and the task runs
         * again instead of parking. Checked before the CAS: after it the
         * task may already run, end and be freed elsewhere. */
        if (atomic_fetch_add_explicit(&t->wakes, 0, memory_order_acq_rel) == t->wakes_seen &&
            atomic_compare_exchange_strong_explicit(&t->sched, &expect, TS_PARKED,
                                                    memory_order_release,
                                                    memory_order_relaxed))
            return;   /* pairs with the acq_rel CAS in corio__task_wake() */
        /* Woken while it was still switching out: run it again later. */
    }
    if (why == SW_BUDGET && keep_budget_yielder(w, t))
        return;
    atomic_store_explicit(&t->sched, TS_SCHEDULED, memory_order_relaxed);
    if (single(w->rt)) {
        push_local(w, &t->node);
        return;
    }
    push_woken(w, &t->node);
    corio__idle_notify(w->rt);
}

/* Publish the state of the task that switched out to the running context:
 * its context is saved now. */
static void finish_switch(struct corio__worker *w)
{
    struct corio_task *t = w->prev;
    if (!t)
        return;
    w->prev = NULL;
    after_switch(w, t, w->prev_why);
}

void corio__task_resumed(void)
{
    /* No task is current while the scheduler's share of the switch runs
     * (corio_current_task() is NULL there, as on the scheduler fiber). */
    struct corio__worker *w = corio__worker_current();
    struct corio_task *self = w->current;
    w->current = NULL;
    finish_switch(w);
    w->current = self;
}

/* Make @t the running task of @w, for a step about to start. False when it
 * ended instead (cancelled before it ever ran, or no stack for it). */
static bool begin_step(struct corio__worker *w, struct corio_task *t)
{
    /* Acquire: a wake counted before this load is one whose condition the
     * step sees (the release half of the waker's increment). */
    t->wakes_seen = atomic_load_explicit(&t->wakes, memory_order_acquire);
    atomic_store_explicit(&t->sched, TS_RUNNING, memory_order_relaxed);
    if (!t->stack.lo && !task_start(w, t)) {
        task_retire(w, t);
        return false;
    }
    w->current = t;
    w->lifo_by_step = false;
    return true;
}

static void run_task(struct corio__worker *w, struct corio_task *t)
{
    if (!begin_step(w, t))
        return;
    bool debug = atomic_load_explicit(&w->rt->debug, memory_order_relaxed);
    if (debug)
        corio__debug_step_begin(w, t);
    corio__fiber_switch(&w->sched_fiber, &t->fiber, t);
    /* Back from the last task of a run of direct switches (switch_away):
     * @t, or one it handed the worker to. Debug mode switches no task
     * directly, so there it is @t. */
    if (debug)
        corio__debug_step_end(w, w->prev);
    w->current = NULL;
    finish_switch(w);
}

static void run_node(struct corio__worker *w, struct corio__snode *n)
{
    corio__stat_add(w->m_polls, 1);
    if (n->kind == KIND_HANDLE)
        corio__handle_run(corio__container_of(n, struct corio_handle, node));
    else
        run_task(w, corio__container_of(n, struct corio_task, node));
}

/* Take a batch from global queue @q: run the first, queue the rest. */
static struct corio__snode *take_batch(struct corio__worker *w, struct corio__inject *q)
{
    struct corio_rt *rt = w->rt;
    size_t len = corio__inject_len(q);
    if (len == 0)
        return NULL;
    size_t want = len / rt->nworkers + 1;
    if (want > INJECT_BATCH_MAX)
        want = INJECT_BATCH_MAX;
    size_t room = corio__runq_free_owner(&w->runq) + 1;
    if (want > room)
        want = room;
    /* Pointers only: the tasks themselves are touched when they run. */
    struct corio__qnode *batch[INJECT_BATCH_MAX];
    size_t got = corio__inject_pop_batch(q, batch, want);
    if (!got)
        return NULL;
    corio__stat_add(w->m_remote, got);
    if (got > 1)
        corio__runq_push_batch_owner(&w->runq, batch + 1, (unsigned)(got - 1));
    return snode_of(batch[0]);
}

/* The woken queue first (see push_woken), then the global queue. */
static struct corio__snode *take_global(struct corio__worker *w)
{
    struct corio__snode *n = take_batch(w, &w->rt->woken);
    return n ? n : take_batch(w, &w->rt->inject);
}

/* One item of the two global queues, each first on every other such tick,
 * so that neither starves while the local queue never empties. */
static struct corio__snode *pop_global_fairly(struct corio__worker *w)
{
    struct corio_rt *rt = w->rt;
    bool woken_first = (atomic_load_explicit(&w->tick, memory_order_relaxed) /
                        GLOBAL_QUEUE_INTERVAL) & 1;
    struct corio__inject *a = woken_first ? &rt->woken : &rt->inject;
    struct corio__inject *b = woken_first ? &rt->inject : &rt->woken;
    struct corio__qnode *q = corio__inject_pop(a);
    return snode_of(q ? q : corio__inject_pop(b));
}

static struct corio__snode *next_local(struct corio__worker *w)
{
    struct corio_rt *rt = w->rt;
    corio__stat_add(w->tick, 1);
    if (atomic_load_explicit(&w->pinned, memory_order_relaxed) ||
        atomic_load_explicit(&w->inbox, memory_order_relaxed))
        return take_pinned(w);
    if (atomic_load_explicit(&w->tick, memory_order_relaxed) % GLOBAL_QUEUE_INTERVAL == 0) {
        /* DESIGN.md: a busy worker reaps its completions and timers every
         * 61 ticks too, without blocking. */
        corio__worker_io_tick(w);
        corio__registry_publish_all(rt, w);
        corio__registry_reap(rt, w->id);
        corio__registry_reap_external(rt);   /* tasks spawned from outside */
        struct corio__snode *n = single(rt) ? NULL : pop_global_fairly(w);
        if (n) {
            corio__stat_add(w->m_remote, 1);
            return n;
        }
    }
    if (atomic_load_explicit(&w->lifo, memory_order_relaxed)) {
        struct corio__snode *n = atomic_exchange_explicit(&w->lifo, NULL, memory_order_acquire);
        if (n && w->lifo_streak < LIFO_MAX_STREAK) {
            w->lifo_streak++;
            return n;
        }
        if (n)
            push_woken(w, n);
    }
    w->lifo_streak = 0;
    if (atomic_load_explicit(&w->yielded, memory_order_relaxed)) {
        struct corio__snode *n = atomic_exchange_explicit(&w->yielded, NULL, memory_order_acquire);
        if (n)
            return n;
    }
    struct corio__snode *n = snode_of(single(rt) ? corio__runq_pop_alone(&w->runq)
                                                 : corio__runq_pop_owner(&w->runq));
    return n ? n : take_global(w);
}

/* ---- direct switches ----
 *
 * A task that switches out hands its worker straight to the next local
 * task, from its own stack, instead of going through the scheduler fiber:
 * one context switch instead of two (each ~18 ns here, most of a yield's
 * 58 ns), and for a yield with nothing else to run, none. What the
 * scheduler would have done after the switch (after_switch: queue, park or
 * retire the task) waits in w->prev until the next context runs
 * (finish_switch), since only then is the task's context saved. Only the
 * plain cases go direct, taking work in next_local()'s order: the scheduler
 * fiber keeps the every-61st-tick round, migrated tasks, the global queues,
 * stealing, parking, budget yields (keep_budget_yielder judges the step
 * that just ended), migrations and debug mode (step timing). */
enum direct_pick { PICK_SCHED, PICK_NONE, PICK_TASK };

/* Take the next local task the scheduler fiber would take now, or say why
 * not: PICK_NONE when nothing is queued locally (a yielder continues),
 * PICK_SCHED when the scheduler fiber must decide. */
static enum direct_pick pick_direct(struct corio__worker *w, struct corio_task **out)
{
    if (atomic_load_explicit(&w->pinned, memory_order_relaxed) ||
        atomic_load_explicit(&w->inbox, memory_order_relaxed) ||
        (atomic_load_explicit(&w->tick, memory_order_relaxed) + 1) % GLOBAL_QUEUE_INTERVAL == 0)
        return PICK_SCHED;
    struct corio__snode *n = NULL;
    if (atomic_load_explicit(&w->lifo, memory_order_relaxed)) {
        if (w->lifo_streak >= LIFO_MAX_STREAK)
            return PICK_SCHED;   /* next_local() moves it to the queue */
        n = atomic_exchange_explicit(&w->lifo, NULL, memory_order_acquire);
    }
    if (n) {
        w->lifo_streak++;
    } else {
        w->lifo_streak = 0;
        if (atomic_load_explicit(&w->yielded, memory_order_relaxed))
            n = atomic_exchange_explicit(&w->yielded, NULL, memory_order_acquire);
        if (!n)
            n = snode_of(single(w->rt) ? corio__runq_pop_alone(&w->runq)
                                       : corio__runq_pop_owner(&w->runq));
        if (!n)
            return PICK_NONE;
    }
    corio__stat_add(w->tick, 1);
    struct corio_task *t = n->kind == KIND_TASK ? corio__container_of(n, struct corio_task, node)
                                                : NULL;
    /* The scheduler fiber runs callbacks, and ends a task that cannot
     * start, after the switching task is queued again: what such an end
     * schedules (done callbacks, waiters) comes after it, as in asyncio. */
    if (!t || (!t->stack.lo && task_try_start(w, t) < 0)) {
        w->handoff = n;
        return PICK_SCHED;
    }
    corio__stat_add(w->m_polls, 1);
    begin_step(w, t);   /* cannot fail: the task has its stack */
    *out = t;
    return PICK_TASK;
}

/* Whether @t's switch for @why may go straight to the next task. Not for
 * a task that failed: its end may report "Task exception was never
 * retrieved" through the user's exception handler, which must run on the
 * scheduler fiber (no task current, a stack of its own). Not once the
 * runtime is stopping: the rounds that cancel late tasks and let workers
 * leave (worker_may_leave, park) were built on every step starting from the
 * scheduler fiber, and with direct switches a shutdown with late tasks hung
 * about once in 5,000 runs (a woken task left in a parked worker's LIFO
 * slot; cause not pinned down, see the stop note of 2026-12-02). */
static bool direct_allowed(struct corio__worker *w, struct corio_task *t, uintptr_t why)
{
    if (atomic_load_explicit(&w->rt->debug, memory_order_relaxed) ||
        atomic_load_explicit(&w->rt->stopping, memory_order_relaxed))
        return false;
    if (why == SW_DONE)
        return atomic_load_explicit(&t->fut.state, memory_order_relaxed) != FUT_FAILED;
    return why == SW_YIELD || why == SW_PARK;
}

/* Whether a yielder with nothing else queued locally would be the
 * scheduler's next pick: with one worker the global queue comes next
 * (asyncio's order), with several the local queue would hold only it. */
static bool yielder_runs_next(struct corio__worker *w)
{
    return !single(w->rt) || corio__inject_is_empty(&w->rt->inject);
}

/* Switch the running task @t out for reason @why: to the next local task
 * directly where switch_away's essay allows, else to the scheduler fiber.
 * Returns when @t runs again (never for SW_DONE, @final), on whichever
 * worker that is. */
static void switch_away(struct corio__worker *w, struct corio_task *t, uintptr_t why, bool final)
{
    struct corio__fiber *to = &w->sched_fiber;
    struct corio_task *next = NULL;
    /* Set before the pick: once the pick has made the next task current,
     * the stack in use is still @t's (the overflow handler looks at both). */
    w->prev = t;
    w->prev_why = why;
    if (direct_allowed(w, t, why)) {
        switch (pick_direct(w, &next)) {
        case PICK_TASK:
            to = &next->fiber;
            break;
        case PICK_NONE:
            if (why == SW_YIELD && yielder_runs_next(w)) {
                /* The scheduler would queue @t and take it right back:
                 * a new step of @t, without leaving it. */
                w->prev = NULL;
                check_canary(w, t);
                corio__stat_add(w->tick, 1);
                corio__stat_add(w->m_polls, 1);
                begin_step(w, t);
                return;
            }
            break;
        case PICK_SCHED:
            break;
        }
    }
    if (final)
        corio__fiber_switch_final(&t->fiber, to, next);
    corio__fiber_switch(&t->fiber, to, next);
    corio__task_resumed();
}

void corio__task_switch_out(struct corio_task *t, enum corio__switch_reason why)
{
    t->budget = 0;
    switch_away(corio__worker_current(), t, (uintptr_t)why, false);
}

void corio__task_exit(struct corio_task *t)
{
    switch_away(corio__worker_current(), t, SW_DONE, true);
    __builtin_unreachable();
}

void corio__task_migrate(struct corio_task *t, struct corio__worker *to)
{
    struct corio__worker *w = corio__worker_current();
    if (w == to)
        return;
    switch_away(w, t, (uintptr_t)to | SW_MIGRATE, false);
}

static uint64_t next_rand(struct corio__worker *w)
{
    /* xorshift64: victims only need to be spread, not unpredictable. */
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return w->rng = x;
}

/* How long a thief watches a LIFO slot before it takes the task: Go's
 * runqgrab() sleeps 3 us for the same reason. The slot holds the task its
 * owner runs next, most often one its current step just woke or spawned;
 * that step usually ends within a microsecond or two, and the task then
 * runs where its data is warm. Only an owner that has not moved on to its
 * next step by then is robbed (a long step). Perf W1 (one task spawning
 * 1M): 1.75M -> 2.04M tasks/s against taking the slot at once (medians of
 * 6 interleaved runs); W3 and the queue within noise. */
#define LIFO_STEAL_GRACE_NS 5000

static bool has_slot_task(struct corio__worker *v)
{
    return atomic_load_explicit(&v->lifo, memory_order_relaxed) ||
           atomic_load_explicit(&v->yielded, memory_order_relaxed);
}

#define LIFO_STEAL_CANDIDATES 8   /* workers watched at once: one busy one hides no stuck one */

struct slot_candidate {
    struct corio__worker *v;
    uint64_t tick;
};

static bool still(const struct slot_candidate *c)
{
    return atomic_load_explicit(&c->v->tick, memory_order_relaxed) == c->tick;
}

/* Last round of a steal: the LIFO or yield slot of a worker that has not
 * moved on to its next step within the grace period (busy in a long step;
 * the monitor wakes a thief for such a worker, see core/monitor.c). A
 * worker that went on is alive and will get to its slots itself. */
static struct corio__snode *steal_lifo(struct corio__worker *w, unsigned start)
{
    struct corio_rt *rt = w->rt;
    unsigned n = rt->nworkers, k = 0;
    struct slot_candidate cand[LIFO_STEAL_CANDIDATES];
    for (unsigned i = 0; i < n && k < LIFO_STEAL_CANDIDATES; i++) {
        struct corio__worker *c = &rt->workers[(start + i) % n];
        if (c != w && has_slot_task(c))
            cand[k++] = (struct slot_candidate){c, atomic_load_explicit(&c->tick,
                                                                        memory_order_relaxed)};
    }
    if (!k)
        return NULL;
    uint64_t until = corio_time_ns() + LIFO_STEAL_GRACE_NS;
    for (;;) {
        unsigned stuck = 0;
        for (unsigned j = 0; j < k; j++)
            stuck += still(&cand[j]);
        if (!stuck)
            return NULL;
        if (corio_time_ns() >= until)
            break;
        corio__cpu_relax();
    }
    for (unsigned j = 0; j < k; j++) {
        if (!still(&cand[j]))
            continue;
        struct corio__snode *s = atomic_exchange_explicit(&cand[j].v->lifo, NULL,
                                                          memory_order_acquire);
        if (!s)
            s = atomic_exchange_explicit(&cand[j].v->yielded, NULL, memory_order_acquire);
        if (s)
            return s;
    }
    return NULL;
}

static struct corio__snode *steal(struct corio__worker *w)
{
    struct corio_rt *rt = w->rt;
    unsigned n = rt->nworkers;
    unsigned start = (unsigned)(next_rand(w) % n);
    for (unsigned i = 0; i < n; i++) {
        struct corio__worker *v = &rt->workers[(start + i) % n];
        if (v == w)
            continue;
        struct corio__qnode *q = corio__runq_steal_into(&v->runq, &w->runq);
        if (q) {
            corio__stat_add(w->m_steals, 1);
            corio__stat_add(w->m_stolen, corio__runq_len(&w->runq) + 1);
            return snode_of(q);
        }
    }
    return steal_lifo(w, start);
}

static struct corio__snode *search(struct corio__worker *w)
{
    struct corio_rt *rt = w->rt;
    if (single(rt))
        return NULL;
    if (!w->searching) {
        if (!corio__idle_try_search(rt))
            return NULL;
        w->searching = true;
    }
    struct corio__snode *n = steal(w);
    return n ? n : take_global(w);
}

/* Work anywhere (@all: also the owner-only lists of migrated tasks: the
 * runtime may not stop while there is some), or only work any
 * worker could take (waking or rescuing for the rest would burn CPU). */
static bool work_queued(struct corio_rt *rt, bool all)
{
    if (corio__global_queued(rt))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct corio__worker *v = &rt->workers[i];
        if (all ? corio__worker_has_queued(v) : corio__worker_has_stealable(v))
            return true;
    }
    return false;
}

/* A worker of a runtime that other threads hand work to
 * (rt->handed_in moved since this worker last went idle: tasks and
 * callbacks queued by plain threads, results of pool threads) spins a
 * little before it parks, yielding the CPU meanwhile: the same threads'
 * next hand-in then finds it awake, instead of paying a futex wake-up and a
 * reschedule, and while they block on our result they get the CPU. W6 (4
 * threads each blocking on one coroutine at a time, 2 CPUs): 190-200k
 * submits/s without, 390-450k with 5-50 us (3 interleaved runs each); with
 * only the searchers spinning (one of the two workers) 220-290k, so every
 * idle worker may. A worker spins only with no I/O of its own in the kernel
 * or queued for it (only its poll would send or collect it), and looks
 * only where it can take work from (not other workers' LIFO slots, which
 * are for their owners). Runtimes nobody hands work to from outside never
 * spin: an idle runtime, W1's overflowing spawner and W8/W9's server pay
 * nothing. */
#define SPIN_FOR_HAND_IN_NS 20000

static bool work_for_spinner(struct corio__worker *w)
{
    struct corio_rt *rt = w->rt;
    if (corio__worker_has_queued(w) || corio__global_queued(rt))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (&rt->workers[i] != w && !corio__runq_is_empty(&rt->workers[i].runq))
            return true;
    return false;
}

static bool spin_for_hand_in(struct corio__worker *w)
{
    struct corio_rt *rt = w->rt;
    uint64_t in = atomic_load_explicit(&rt->handed_in, memory_order_relaxed);
    if (in == w->handed_in_seen)
        return false;
    w->handed_in_seen = in;
    if (atomic_load_explicit(&rt->stopping, memory_order_relaxed) || !w->io_ops->quiet(w))
        return false;
    uint64_t until = corio_time_ns() + SPIN_FOR_HAND_IN_NS;
    do {
        sched_yield();
        if (work_for_spinner(w))
            return true;
    } while (corio_time_ns() < until);
    return false;
}

/* After the runner's last round (stopping set) a task can still appear: a
 * callback queued by a task the shutdown cancelled runs late and spawns one
 * (an add_reader in a done callback), or a call_later fires. Such a task
 * must not outlive the run (destroy would free its stack under its timer or
 * I/O), so idle workers cancel the tasks still alive and stay until they
 * have ended; a worker may leave only when no work is queued and no task is
 * alive. A snapshot is exact (the registry's count may lag); one worker at
 * a time takes it, and a task already being cancelled is not asked again. */
static bool worker_may_leave(struct corio_rt *rt)
{
    if (!atomic_load_explicit(&rt->stopping, memory_order_acquire) || work_queued(rt, true))
        return false;
    if (atomic_flag_test_and_set_explicit(&rt->late_cancel_busy, memory_order_acquire))
        return false;
    corio_task **list = NULL;
    int n = corio__registry_snapshot(rt, &list, NULL);
    for (int i = 0; i < n; i++)
        if (corio_task_cancelling(list[i]) == 0)
            corio_task_cancel(list[i], NULL);
    if (n > 0)
        corio_task_list_free(list, n);
    else
        free(list);
    atomic_flag_clear_explicit(&rt->late_cancel_busy, memory_order_release);
    return n == 0;
}

static void park(struct corio__worker *w)
{
    struct corio_rt *rt = w->rt;
    corio__registry_publish_all(rt, w);
    corio__registry_reap(rt, w->id);
    corio__registry_reap_external(rt);
    bool was_searching = w->searching;
    w->searching = false;
    corio__idle_to_parked(rt, w->id, was_searching);
    /* After the seq_cst transition: a producer that pushed before it either
     * saw us listed (and wakes us) or its work is visible here. */
    /* While stopping with late tasks alive, only work wakes us (else this
     * notify would pick us, the newest sleeper, and we would spin). */
    if (work_queued(rt, false) ||
        (atomic_load_explicit(&rt->stopping, memory_order_acquire) &&
         corio__registry_count(rt) == 0))
        corio__idle_notify(rt);
    corio__stat_add(w->m_parks, 1);
    for (;;) {
        /* Late tasks still alive: park for real, their I/O and timers need
         * this worker's poll (task_retire() wakes us when one ends). */
        if (atomic_load_explicit(&rt->stopping, memory_order_acquire) &&
            corio__registry_count(rt) == 0) {
            corio__idle_unpark_all(rt);
            corio__idle_from_parked(rt, w->id, false);
            return;
        }
        corio__worker_park(w);
        /* Its own I/O or timers may have made work: in its queues, or (one
         * worker, keeping asyncio's order) behind the global queue. */
        bool own = corio__worker_has_queued(w) || corio__global_queued(rt);
        if (corio__idle_from_parked(rt, w->id, own))
            return;
    }
}

void corio__worker_main(struct corio__worker *w)
{
    struct corio_rt *rt = w->rt;
    tls_worker = w;
    void *altstack = corio__overflow_thread_init();
    corio__fiber_init_thread(&w->sched_fiber);
    for (;;) {
        struct corio__snode *n = w->handoff;
        if (n)
            w->handoff = NULL;   /* counted as a tick by the switch that took it */
        else
            n = next_local(w);
        if (!n)
            n = search(w);
        if (!n) {
            if (spin_for_hand_in(w))
                continue;
            if (worker_may_leave(rt)) {
                /* A worker that parked while our last task was alive may
                 * have missed task_retire()'s wake-up: wake it to look. */
                corio__idle_unpark_all(rt);
                break;
            }
            /* Its cancel round wakes late tasks from the scheduler fiber,
             * into this worker's own LIFO slot, which wakes nobody: run
             * them rather than park beside them and count on a thief (a
             * hung shutdown left such a task in a parked worker's slot). */
            if (corio__worker_has_queued(w))
                continue;
            park(w);
            continue;
        }
        if (w->searching) {
            w->searching = false;
            /* The last searcher wakes another before it gets busy, so
             * stealable work never waits for a busy worker. */
            if (corio__idle_end_search(rt))
                corio__idle_notify(rt);
        }
        run_node(w, n);
    }
    if (w->searching) {
        w->searching = false;
        corio__idle_end_search(rt);
    }
    corio__registry_publish_all(rt, w);
    corio__worker_io_stop(w);
    corio__overflow_thread_fini(altstack);
    tls_worker = NULL;
}

void corio__rt_wake_all(struct corio_rt *rt)
{
    atomic_store_explicit(&rt->stopping, true, memory_order_seq_cst);
    corio__idle_unpark_all(rt);
}
