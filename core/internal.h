/* core/internal.h - the objects the core is made of, shared across the core/ sources.
 *
 * future ── the result cell: state, value/error, a FIFO list of waiters; one
 *           spinlock guards the list and the transition out of PENDING.
 * task ──── a future plus a fiber, a lazily allocated stack and scheduling
 *           state. sched_state is the only word two workers race on:
 *             SCHEDULED ─pop→ RUNNING ─switch out→ (scheduler) PARKED | SCHEDULED | DONE
 *             PARKED ─wake→ SCHEDULED (the waker pushes it)
 *           A waker that finds RUNNING sets NOTIFIED instead; the scheduler,
 *           which moves RUNNING→PARKED only after the task's context is fully
 *           saved, sees NOTIFIED and requeues. So no task is ever resumed
 *           half-saved, and no wake-up is lost.
 * handle ── a callback (call_soon, or a future's done callback) that runs on
 *           a worker's own stack, queued like a task.
 * worker ── one thread: LIFO slot, local run queue, stack cache, scheduler
 *           fiber, counters. rt ── the workers, the global queue, the idle
 *           protocol (core/idle.c), the task registry, loop services.
 */
#ifndef CORIO_CORE_INTERNAL_H
#define CORIO_CORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "corio/corio.h"
struct corio__backend_ops;
#include "fiber.h"
#include "inject.h"
#include "qnode.h"
#include "runq.h"
#include "spin.h"
#include "stack.h"
#include "wheel.h"

/* CORIO_NEVER(cond): believed impossible; checked and recovered from. */
#define CORIO_NEVER(cond) __builtin_expect(!!(cond), 0)

/* ---- futures ---- */

enum corio__fut_state { FUT_PENDING = 0, FUT_DONE, FUT_FAILED, FUT_CANCELLED };
/* For corio__future_complete() on a task that returned: DONE, or CANCELLED
 * when a cancellation is counted, decided under the lock that
 * corio_task_cancel() takes, so "cancel returned 1" and "the task ended
 * cancelled" always agree. */
#define FUT_RETURNED 0x10
enum corio__kind { KIND_FUTURE = 0, KIND_TASK, KIND_HANDLE };

struct corio__waiter;
/* Called with the future's lock held, once, when the future completes: must
 * be short, must not take that future's lock, must not switch. */
typedef void (*corio__waiter_fn)(struct corio__waiter *w, struct corio_future *f);

struct corio__waiter {
    struct corio__waiter *next, *prev;
    corio__waiter_fn fire;
    bool linked;               /* under the future's lock */
};

struct corio_future {
    _Atomic uint32_t refs;
    _Atomic uint8_t state;     /* enum corio__fut_state; written under lock */
    uint8_t kind;              /* enum corio__kind */
    atomic_bool retrieved;     /* the error was seen by somebody */
    struct corio__spin lock;
    struct corio__waiter *whead, *wtail;
    void *value;
    int err;
    char *msg;                 /* error or cancel message, owned */
    struct corio_rt *rt;
};

/* ---- the queued unit (task or handle) ---- */

struct corio__snode {
    struct corio__qnode q;
    uint8_t kind;              /* KIND_TASK or KIND_HANDLE */
};

/* ---- callbacks ---- */

enum { HANDLE_PENDING = 0, HANDLE_RUNNING, HANDLE_DONE, HANDLE_CANCELLED };

struct corio_handle {
    struct corio__snode node;
    _Atomic uint32_t refs;
    _Atomic int state;
    corio_callback_fn fn;
    void *arg;
    corio_done_fn done_fn;     /* a done callback: done_fn(fut, arg) */
    struct corio_future *fut;  /* referenced while queued */
    struct corio__waiter w;    /* a done callback's registration on fut */
    struct corio_rt *rt;
    struct corio__timer timer; /* call_later/call_at (core/timer.c) */
    uint64_t when;             /* their deadline; 0: not a timer handle */
};

/* ---- tasks ---- */

enum corio__sched {
    TS_IDLE = 0,
    TS_SCHEDULED = 1,
    TS_RUNNING = 2,
    TS_PARKED = 3,
    TS_DONE = 4,
    TS_STATE_MASK = 7,
    TS_NOTIFIED = 8,
};

/* What a task tells its scheduler when it switches out. */
enum corio__switch_reason { SW_YIELD = 1, SW_PARK, SW_DONE, SW_MIGRATE, SW_BUDGET };

struct corio_task {
    struct corio_future fut;          /* first: a task is a future */
    struct corio__snode node;
    _Atomic uint32_t sched;           /* enum corio__sched */
    _Atomic uint32_t wakes;           /* wake-ups that saw it queued (core/sched.c) */
    atomic_bool must_cancel;          /* a cancel request not yet delivered */
    _Atomic uint8_t awaiting;         /* enum corio__park_on while parked (the task dump) */
    _Atomic int cancel_requests;      /* cancelling() */
    char *cancel_msg;                 /* under fut.lock */
    struct corio__fiber fiber;
    struct corio__stack stack;        /* lo == NULL until the first run */
    /* 32 bits: a stack is at most CORIO_STACK_MAX_SIZE (1 GiB) */
    uint32_t stack_size;              /* 0: default */
    uint32_t stack_reserved;          /* bytes counted in the rt budget */
    corio_fn fn;
    void *arg;
    char *name;
    uint64_t id;
    unsigned budget;                  /* operations since the last suspension */
    uint32_t wakes_seen;              /* ->wakes when its step began (its worker's) */
    struct corio__waiter self_waiter; /* used by corio_future_await() */
    /* contextvars (core/context.c): an immutable shared map, NULL = empty;
     * read and replaced only by the task itself (and copied at its spawns) */
    struct corio__context *ctx;
    /* registry (core/registry.c): alive tasks, under the shard's lock */
    struct corio_task *reg_prev, *reg_next;
    unsigned reg_shard;
};

/* ---- workers and the runtime ---- */

struct corio__retire_batch {
    struct corio_task *first, *last;
    unsigned n;
};

struct corio__worker {
    struct corio_rt *rt;
    unsigned id;
    pthread_t thread;
    struct corio__fiber sched_fiber;  /* the worker's own context */
    struct corio_task *current;       /* task running now, or NULL */
    /* The task that switched out to the context running now, whose new
     * state is published once that context runs (core/sched.c
     * finish_switch), with its reason (enum corio__switch_reason, or a
     * worker | SW_MIGRATE); NULL when there is none. */
    struct corio_task *prev;
    uintptr_t prev_why;
    /* A callback a task's switch took from the queues for the scheduler
     * fiber to run (core/sched.c switch_away): callbacks never run on a
     * task's stack. */
    struct corio__snode *handoff;
    /* run-next slot (multi-worker only): exchanged by the owner, taken by a
     * thief only in its last round when the owner is stuck. */
    _Atomic(struct corio__snode *) lifo;
    unsigned lifo_streak;
    bool lifo_by_step;   /* the running step filled the LIFO slot (sched.c keep_budget_yielder) */
    /* A task that used up its budget in a step that woke a task into the
     * LIFO slot, with the run queue empty (core/sched.c keep_budget_yielder):
     * it runs after the LIFO slot; a thief takes it as it takes that slot. */
    _Atomic(struct corio__snode *) yielded;
    struct corio__runq runq;
    struct corio__stack_cache stacks;
    _Atomic uint64_t tick;            /* steps taken; written by the owner, read by the monitor */
    uint64_t rng;
    bool searching;
    _Atomic uint32_t unpark_word;     /* core/park.c: 1 = notified */
    uint64_t next_id, last_id;        /* block of task ids owned by this worker */
    struct corio__qnode *task_cache;  /* freed task memory kept for spawn (core/task.c) */
    struct corio__retire_batch *retire; /* per registry shard (core/registry.c) */
    unsigned task_cache_n;
    /* I/O and timers (core/park.c, io/io.c, core/timer.c) */
    const struct corio__backend_ops *io_ops;  /* NULL until the worker thread started it */
    void *io;                         /* the backend's per-worker state */
    int wake_fd;                      /* eventfd that wakes a blocked poll; closed at destroy */
    _Atomic uint32_t in_wait;         /* 1 while (about to be) blocked in io_ops->poll */
    struct corio__wheel *wheel;       /* this worker's timers (owner only) */
    uint64_t last_trim_ns;            /* core/park.c: stack cache trims */
    /* tasks moved here by corio__task_migrate() (a Treiber stack, any thread pushes) */
    _Atomic(struct corio__qnode *) inbox;
    _Atomic(struct corio__qnode *) pinned;   /* taken from the inbox; owner-only list */
    /* metrics: written by the owner, read racily */
    _Atomic uint64_t m_polls, m_steals, m_stolen, m_overflows, m_parks,
        m_remote, m_budget_yields, m_spawned, m_ended, m_io_submitted, m_io_completed,
        m_timers_fired;
    _Atomic uint64_t objects_created, objects_freed;
    uint64_t handed_in_seen;   /* rt->handed_in when last idle (sched.c spin_for_hand_in) */
    uint64_t step_start_ns;    /* debug mode: when the running task's step began (loop.c) */
} __attribute__((aligned(64)));

struct corio__registry_shard {
    struct corio__spin lock;
    struct corio_task *head;
    _Atomic(struct corio_task *) retired;   /* ended elsewhere, to unlink */
} __attribute__((aligned(64)));

struct corio__idle {
    _Atomic uint32_t state;           /* (unparked << 16) | searching */
    pthread_mutex_t lock;
    unsigned *sleepers;               /* worker ids, under lock */
    unsigned nsleepers;
    uint8_t *wake_kind;               /* per worker, under lock: enum corio__wake */
};

enum corio__wake { WAKE_NONE = 0, WAKE_SEARCH, WAKE_STOP };

enum corio__rt_state { RT_CREATED = 0, RT_RUNNING, RT_STOPPED };

struct corio_rt {
    unsigned nworkers;
    struct corio__worker *workers;
    struct corio__inject inject;
    /* Tasks woken on a worker whose local queue was full (multi-worker only,
     * core/sched.c push_woken): taken before `inject`, which may hold a long
     * backlog of tasks that never ran. */
    struct corio__inject woken;
    struct corio__idle idle;
    struct corio__stack_arena arena;
    struct corio__registry_shard *shards;   /* nworkers + 1 (external) */
    _Atomic size_t stack_reserved;          /* counted only when max_stack_memory */
    size_t max_stack_memory;                /* 0: no budget */
    atomic_bool stack_exhausted;            /* the kernel refused a stack lately */
    _Atomic int state;
    atomic_bool stopping;                   /* workers leave when idle */
    atomic_flag late_cancel_busy;           /* one worker cancels late tasks (sched.c) */
    /* objects made off-worker, net (may go below 0 as int64); from
     * corio_rt_destroy() on, CORIO__EXT_CLOSED minus the frees since */
    _Atomic uint64_t ext_objects;
    _Atomic int64_t zombie_objects;         /* after destroy: left to free */
    /* core/monitor.c */
    pthread_t mon_thread;
    pthread_mutex_t mon_lock;
    pthread_cond_t mon_cond;
    bool mon_stop, mon_running;
    /* loop services */
    pthread_mutex_t handler_lock;
    corio_exception_handler handler;
    void *handler_arg;
    atomic_bool debug;
    uint64_t slow_ns;
    const struct corio__backend_ops *io_ops;  /* chosen at create (io/io.c) */
    /* core/runtime.c: the start-up barrier of corio_rt_run() */
    pthread_mutex_t start_lock;
    pthread_cond_t start_cond;
    unsigned start_reported;
    int start_rc;
    bool start_go;
    /* io/signal.c: its handlers are gone; none may be added (under its lock) */
    bool sig_closed;
    /* core/xthread.c: other threads' spawns and callbacks, the shutdown hook */
    atomic_bool closing;                    /* main ended: no more from outside */
    _Atomic uint32_t ext_entering;          /* outside callers past the gate */
    _Atomic uint64_t ext_spawned;           /* tasks spawned off this rt's workers */
    _Atomic uint64_t handed_in;             /* tasks and callbacks other threads queued */
    void (*shutdown_hook)(struct corio_rt *rt, void *arg);
    void *shutdown_hook_arg;
    _Atomic(void *) default_executor;       /* pool/: created lazily */
};

/* corio_rt_destroy() closes rt->ext_objects by exchanging it for this:
 * far above any real count (core/future.c corio__object_freed). */
#define CORIO__EXT_CLOSED ((int64_t)1 << 62)

/* ---- cross-file internal API ---- */

/* core/sched.c */
struct corio__worker *corio__worker_current(void);
void corio__schedule(struct corio_rt *rt, struct corio__snode *n, bool lifo);
void corio__task_wake(struct corio_task *t);
void corio__task_switch_out(struct corio_task *t, enum corio__switch_reason why);
__attribute__((noreturn)) void corio__task_exit(struct corio_task *t);
void corio__worker_main(struct corio__worker *w);
void corio__rt_wake_all(struct corio_rt *rt);
/* Continue the current task on @to (its scheduler pushes it to @to's inbox,
 * and @to runs it itself: migrated tasks are never stolen); returns on @to.
 * No-op when already there. Not a cancellation point. */
void corio__task_migrate(struct corio_task *t, struct corio__worker *to);
/* First thing a task does on its stack, after every switch into it
 * (at its start and when a switch out returns): publish the state of the
 * task that switched to it. */
void corio__task_resumed(void);

/* core/idle.c */
int corio__idle_init(struct corio__idle *idle, unsigned nworkers);
void corio__idle_fini(struct corio__idle *idle);
void corio__idle_notify(struct corio_rt *rt);
bool corio__idle_try_search(struct corio_rt *rt);
bool corio__idle_end_search(struct corio_rt *rt);
void corio__idle_to_parked(struct corio_rt *rt, unsigned id, bool searching);
bool corio__idle_from_parked(struct corio_rt *rt, unsigned id, bool has_work);
void corio__idle_unpark_all(struct corio_rt *rt);

/* core/park.c: sleeping in the I/O backend, and waking from it */
int corio__worker_io_start(struct corio__worker *w);
void corio__worker_io_stop(struct corio__worker *w);
void corio__worker_io_release(struct corio__worker *w);
void corio__worker_park(struct corio__worker *w);
void corio__worker_unpark(struct corio__worker *w);
void corio__worker_io_tick(struct corio__worker *w);

/* core/timer.c */
int corio__timers_init(struct corio__worker *w);
void corio__timers_fini(struct corio__worker *w);
uint64_t corio__timers_next(struct corio__worker *w);
void corio__timers_run(struct corio__worker *w);

/* core/overflow.c: per worker thread; returns what _fini frees */
void *corio__overflow_thread_init(void);
void corio__overflow_thread_fini(void *altstack);

/* core/monitor.c */
int corio__monitor_start(struct corio_rt *rt);
void corio__monitor_stop(struct corio_rt *rt);

/* core/future.c */
void corio__future_init(struct corio_future *f, struct corio_rt *rt, uint8_t kind);
void corio__future_fini(struct corio_future *f);
int corio__future_complete(struct corio_future *f, uint8_t state, void *value, int err,
                           const char *msg, bool copy_msg);
bool corio__future_add_waiter(struct corio_future *f, struct corio__waiter *w,
                              corio__waiter_fn fire);
void corio__future_remove_waiter(struct corio_future *f, struct corio__waiter *w);
void corio__future_unlink_waiter_locked(struct corio_future *f, struct corio__waiter *w);
int corio__future_outcome(struct corio_future *f, void **value);
void corio__task_spend_budget(struct corio_task *t);
void corio__future_report_unretrieved(struct corio_future *f);
void corio__object_created(struct corio_rt *rt);
void corio__object_freed(struct corio_rt *rt);

/* core/task.c */
/* corio_spawn_ex() on @rt from @w, its worker, or from any thread (@w NULL). */
int corio__spawn_in(struct corio_rt *rt, struct corio__worker *w, corio_task **out, corio_fn fn,
                    void *arg, const corio_spawn_options *opts);
void corio__task_cache_fini(struct corio__worker *w);
void corio__task_free(struct corio_task *t);
/* task.c: @t's name copied into @buf (returned), safe against a rename on
 * another thread; for the runtime's messages about a task it does not run. */
#define CORIO__NAME_MAX 128
const char *corio__task_name_copy(const struct corio_task *t, char *buf, size_t len);
void corio__task_run_entry(void *value);
int corio__task_cancel_request(struct corio_task *t, const char *msg);
bool corio__task_take_cancel(struct corio_task *t);
char *corio__task_cancel_msg(struct corio_task *t);

/* core/context.c: task-local context maps. ref takes a non-NULL map;
 * unref ignores NULL; both from any thread. */
struct corio__context;
struct corio__context *corio__context_ref(struct corio__context *c);
void corio__context_unref(struct corio__context *c);

/* core/registry.c */
#define CORIO__NOT_REGISTERED UINT32_MAX   /* reg_shard of internal tasks (the runner) */
/* Shards for tasks spawned by threads that are not workers (run_coroutine_
 * threadsafe): each such thread sticks to one, so 4 submitting threads (W6)
 * do not all contend on one spinlock. */
#define CORIO__EXT_SHARDS 8
static inline unsigned corio__registry_nshards(const struct corio_rt *rt)
{
    return rt->nworkers + CORIO__EXT_SHARDS;
}
/* The external shard of the calling thread. */
unsigned corio__registry_external_shard(const struct corio_rt *rt);
/* Reap every external shard (workers do it with their own). */
void corio__registry_reap_external(struct corio_rt *rt);
int corio__registry_init(struct corio_rt *rt);
void corio__registry_fini(struct corio_rt *rt);
void corio__registry_add(struct corio_rt *rt, struct corio_task *t, unsigned shard);
void corio__registry_retire(struct corio_rt *rt, struct corio_task *t, struct corio__worker *w);
void corio__registry_publish_all(struct corio_rt *rt, struct corio__worker *w);
void corio__registry_reap(struct corio_rt *rt, unsigned shard);
void corio__registry_reap_all(struct corio_rt *rt);
void corio__registry_exclude(struct corio_task *t);
uint64_t corio__registry_count(struct corio_rt *rt);
int corio__registry_snapshot(struct corio_rt *rt, struct corio_task ***out,
                             const struct corio_task *except);

/* core/xthread.c: what other threads may hand to a runtime (pool/ builds
 * run_coroutine_threadsafe, call_soon_threadsafe and run's executor shutdown
 * on these). Until @rt's main task has ended (also before corio_rt_run()),
 * spawn_threadsafe and call_soon_threadsafe queue their work on @rt's global
 * queue from any thread; from then on they return -ESHUTDOWN, so nothing
 * arrives that shutdown would miss. Errors also -EINVAL (NULL), -ENOMEM. */
int corio__rt_spawn_threadsafe(struct corio_rt *rt, corio_task **out, corio_fn fn, void *arg,
                               const corio_spawn_options *opts);
int corio__rt_call_soon_threadsafe(struct corio_rt *rt, corio_handle **out,
                                   corio_callback_fn fn, void *arg);
/* The runner calls @fn(@rt, @arg) from its task once every task has ended
 * after main (it may await; tasks it spawns are cancelled after it). One
 * hook per runtime: a later call replaces it. */
void corio__rt_set_shutdown_hook(struct corio_rt *rt, void (*fn)(struct corio_rt *rt, void *arg),
                                 void *arg);
void *corio__rt_default_executor(struct corio_rt *rt);
/* Install @ex when none is installed: true when installed. */
bool corio__rt_install_default_executor(struct corio_rt *rt, void *ex);
/* The runner: shut the gate (and wait for callers already past it). */
void corio__rt_close_gate(struct corio_rt *rt);
void corio__rt_run_shutdown_hook(struct corio_rt *rt);

/* core/callback.c */
struct corio_handle *corio__handle_new(struct corio_rt *rt, uint32_t refs);
/* A call_soon/call_at handle for @fn(@arg) on the current worker, not yet
 * queued: 0 and *@h (and *@out, when given), -EINVAL, -EPERM, -ENOMEM. */
int corio__callback_new(struct corio_handle **h, corio_handle **out, corio_callback_fn fn,
                        void *arg);
/* The same for @rt from any thread (@fn already checked): 0 or -ENOMEM. */
int corio__callback_new_on(struct corio_rt *rt, struct corio_handle **h, corio_handle **out,
                           corio_callback_fn fn, void *arg);
void corio__handle_run(struct corio_handle *h);
void corio__handle_drop(struct corio_handle *h);

/* io/signal.c: asyncio.run's SIGINT and the end of a run, from the runner.
 * run_start arms SIGINT (if it has the default disposition) before main is
 * spawned, run_main names main (NULL: spawn failed); rt_close removes @rt's
 * handlers, restores SIGINT and ends @rt's signal reader: 1 when it ended
 * one (its last callbacks may have spawned tasks), else 0. */
void corio__signal_run_start(struct corio_rt *rt);
void corio__signal_run_main(struct corio_rt *rt, struct corio_task *main);
int corio__signal_rt_close(struct corio_rt *rt);

/* core/loop.c */
void corio__report(struct corio_rt *rt, const char *message, struct corio_task *task,
                   struct corio_future *f);
void corio__debug_step_begin(struct corio__worker *w, struct corio_task *t);
void corio__debug_step_end(struct corio__worker *w, struct corio_task *t);

/* A counter only its owning worker writes: a plain load and store (no
 * locked instruction on the hot path); readers on other threads get a
 * racy but untorn snapshot. */
#define corio__stat_add(counter, n)                                               \
    atomic_store_explicit(&(counter),                                           \
                          atomic_load_explicit(&(counter), memory_order_relaxed) + (n), \
                          memory_order_relaxed)

/* Runnable work another worker can take from @w: its LIFO slot, yield slot
 * or run queue (any thread; a snapshot). */
static inline bool corio__worker_has_stealable(struct corio__worker *w)
{
    return atomic_load_explicit(&w->lifo, memory_order_relaxed) ||
           atomic_load_explicit(&w->yielded, memory_order_relaxed) ||
           !corio__runq_is_empty(&w->runq);
}

/* Runnable work of any kind waits for @w: also what only @w may run (tasks
 * that migrated to it). Any thread; a snapshot. */
static inline bool corio__worker_has_queued(struct corio__worker *w)
{
    return corio__worker_has_stealable(w) ||
           atomic_load_explicit(&w->inbox, memory_order_relaxed) ||
           atomic_load_explicit(&w->pinned, memory_order_relaxed);
}

/* Something waits in one of the global queues (any thread; a snapshot). */
static inline bool corio__global_queued(struct corio_rt *rt)
{
    return !corio__inject_is_empty(&rt->woken) || !corio__inject_is_empty(&rt->inject);
}

/* What a parked task waits on, for the task dump (core/dump.c names them):
 * a byte in the task rather than a string pointer (W1 and W7 pay for each
 * byte of a task). */
enum corio__park_on {
    PARK_NONE, PARK_SYNC, PARK_SLEEP, PARK_GATHER, PARK_WAIT, PARK_AS_COMPLETED,
    PARK_FUTURE, PARK_TASK_GROUP, PARK_IO, PARK_IO_MULTISHOT, PARK_IO_MULTISHOT_END,
};

/* Park the current task @t on @what until a waker makes it runnable. */
static inline void corio__task_park(struct corio_task *t, enum corio__park_on what)
{
    atomic_store_explicit(&t->awaiting, (uint8_t)what, memory_order_relaxed);
    corio__task_switch_out(t, SW_PARK);
    atomic_store_explicit(&t->awaiting, PARK_NONE, memory_order_relaxed);
}

static inline struct corio_task *corio__task_of(struct corio_future *f)
{
    return f && f->kind == KIND_TASK ? (struct corio_task *)f : NULL;
}

#endif
