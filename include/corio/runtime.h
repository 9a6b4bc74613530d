/* corio/runtime.h - the runtime (asyncio's event loop, one per core) and its
 * loop services: run, call_soon, time, exception handler, debug mode.
 *
 * A runtime owns N worker threads (the thread that calls corio_run() or
 * corio_rt_run() is worker 0). Each worker runs ready tasks and callbacks;
 * idle workers steal from busy ones and park without using CPU.
 *
 * With one worker, ready tasks and callbacks run strictly in the order they
 * became ready, one step each, exactly like asyncio's loop, so a ported
 * asyncio program prints the same lines in the same order. With more
 * workers, they run in parallel.
 *
 * Lifetime: corio_rt_create() / corio_rt_destroy(); corio_run() does both
 * around one corio_rt_run().
 */
#ifndef CORIO_RUNTIME_H
#define CORIO_RUNTIME_H

#include <stdio.h>

#include "common.h"
#include "future.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct corio_rt_options {
    unsigned workers;          /* 0: $CORIO_WORKERS, else the online CPUs */
    size_t stack_size;         /* default usable stack per task; 0: 64 KiB */
    size_t max_stack_memory;   /* budget of virtual stack bytes for tasks that
                                  exist at once (a stack plus its guard page
                                  each); past it, spawn returns -ENOMEM.
                                  0: no budget; spawn then returns -ENOMEM
                                  only while the kernel refuses new stacks. */
    int debug;                 /* 1: debug mode, 0: $CORIO_DEBUG decides */
    uint64_t slow_callback_ns; /* debug: warn when one step runs longer;
                                  0: 100 ms (asyncio's slow_callback_duration) */
} corio_rt_options;

/* corio_run - asyncio.run(): create a runtime, run @fn(@arg) as its main
 * task until it ends, then shut down: cancel the tasks still alive, wait for
 * them, report their unretrieved errors through the exception handler, close.
 * Tasks spawned meanwhile (by a cancelled task's cleanup or done callback,
 * say) are cancelled in turn, up to the last moment: no task outlives it.
 * Returns 0 and *@result (@result may be NULL) when the main task returned;
 * its error when it failed (its message goes to the exception handler, and
 * stderr by default); -ECANCELED when it was cancelled; -EINVAL (@fn NULL,
 * bad options); -EBUSY when called from inside a runtime's worker; -ENOMEM;
 * or a negative errno from creating the worker threads.
 * Call from: a thread that is not a worker of any runtime. */
CORIO_API int corio_run(corio_fn fn, void *arg, const corio_rt_options *opts, void **result);

/* corio_rt_create - a runtime that is not running yet (@opts may be NULL).
 * Returns 0 and *@out, -EINVAL (@out NULL, workers > 1024, bad stack size),
 * -ENOMEM (out of memory, or vm.max_map_count cannot hold the guarded
 * stacks the runtime may need: a line on stderr says what to raise).
 * Call from: any thread. */
CORIO_API int corio_rt_create(corio_rt **out, const corio_rt_options *opts);

/* corio_rt_run - run @fn(@arg) as the main task of @rt on the calling thread
 * and N-1 started workers, then shut down as corio_run() does. *@main, when
 * @main is not NULL, receives a reference to the main task (to read its
 * result, error and message after the run). Returns as corio_run(); -EBUSY
 * when @rt has run already or the caller is a worker. Call from: any thread
 * that is not a worker. */
CORIO_API int corio_rt_run(corio_rt *rt, corio_fn fn, void *arg, corio_task **main);

/* corio_rt_destroy - free a runtime that is not running. Tasks and futures
 * of @rt that are still referenced (a main task handle, say) stay valid; the
 * runtime's last bytes go with the last of them. Do not unref them on other
 * threads while destroy runs. Returns 0, -EINVAL (NULL), -EBUSY (running).
 * Call from: any thread that is not its worker. */
CORIO_API int corio_rt_destroy(corio_rt *rt);

/* corio_get_running_rt - the runtime of the calling worker, NULL elsewhere
 * (asyncio.get_running_loop()). */
CORIO_API corio_rt *corio_get_running_rt(void);

/* corio_rt_workers - the number of workers of @rt (0 for NULL). */
CORIO_API unsigned corio_rt_workers(const corio_rt *rt);

/* corio_worker_id - the index of the calling worker, -1 outside a worker.
 * A task may move between workers after any suspension. */
CORIO_API int corio_worker_id(void);

/* corio_time_ns - the runtime's clock (loop.time()): CLOCK_MONOTONIC in
 * nanoseconds. Call from: anywhere. */
CORIO_API uint64_t corio_time_ns(void);

/* ---- callbacks (asyncio.Handle) ---- */

typedef struct corio_handle corio_handle;
typedef void (*corio_callback_fn)(void *arg);

/* corio_call_soon - schedule @fn(@arg) to run on this runtime after the
 * callbacks and tasks already ready (loop.call_soon). *@out, when @out is not
 * NULL, receives a handle reference for corio_handle_cancel() /
 * corio_handle_unref(). Returns 0, -EINVAL (@fn NULL), -EPERM (no running
 * runtime on this thread), -ENOMEM. Callbacks run on a worker's own stack:
 * they must not await. Call from: a task or a callback. */
CORIO_API int corio_call_soon(corio_handle **out, corio_callback_fn fn, void *arg);

/* corio_handle_cancel - the callback will not run if it has not started.
 * Returns 1 when it was prevented, 0 when it already ran or was cancelled,
 * -EINVAL for NULL. corio_handle_cancelled - true once cancelled (false for
 * NULL). corio_handle_unref - drop the reference from corio_call_soon()
 * (NULL is ignored). Call from: any thread. */
CORIO_API int corio_handle_cancel(corio_handle *h);
CORIO_API bool corio_handle_cancelled(const corio_handle *h);
CORIO_API void corio_handle_unref(corio_handle *h);

/* ---- exception handler (loop.set_exception_handler) ---- */

typedef struct corio_exception_context {
    const char *message;      /* what happened, e.g. "Task exception was never retrieved" */
    int error;                /* the negative code involved, or 0 */
    const char *error_message;/* the failed task's or future's message, or NULL */
    corio_task *task;         /* the task concerned, or NULL (valid during the call) */
    corio_future *future;     /* the future concerned, or NULL */
} corio_exception_context;

typedef void (*corio_exception_handler)(corio_rt *rt, const corio_exception_context *ctx,
                                        void *arg);

/* corio_rt_set_exception_handler - install @fn (NULL: back to the default).
 * Returns 0, -EINVAL for a NULL @rt. Call from: any thread. */
CORIO_API int corio_rt_set_exception_handler(corio_rt *rt, corio_exception_handler fn,
                                             void *arg);
/* corio_rt_get_exception_handler - the installed handler (NULL: default, or
 * @rt NULL); *@arg, when @arg is not NULL, receives its argument. */
CORIO_API corio_exception_handler corio_rt_get_exception_handler(const corio_rt *rt,
                                                                 void **arg);
/* corio_default_exception_handler - writes one line per report to stderr:
 * "corio: <message>: task '<name>' error <code> (<strerror>): <error_message>". */
CORIO_API void corio_default_exception_handler(corio_rt *rt,
                                               const corio_exception_context *ctx,
                                               void *arg);
/* corio_rt_call_exception_handler - report @ctx through @rt's handler
 * (loop.call_exception_handler). A handler that is running when called
 * again from it gets the default handler instead. NULL @rt or @ctx: nothing
 * happens. Call from: any thread. */
CORIO_API void corio_rt_call_exception_handler(corio_rt *rt, const corio_exception_context *ctx);

/* ---- debug mode ---- */

/* corio_rt_set_debug / corio_rt_get_debug - debug mode (also CORIO_DEBUG=1):
 * a step of a task or callback that runs longer than slow_callback_ns is
 * reported on stderr naming the task ("corio: Executing <Task name='x'> took
 * 0.153 seconds"). set returns 0, -EINVAL for NULL; get is false for NULL.
 * Call from: any thread. */
CORIO_API int corio_rt_set_debug(corio_rt *rt, bool on);
CORIO_API bool corio_rt_get_debug(const corio_rt *rt);

/* ---- metrics (tokio's RuntimeMetrics) ---- */

typedef struct corio_worker_metrics {
    uint64_t polls;           /* task steps and callbacks run */
    uint64_t steals;          /* steal operations that found work */
    uint64_t stolen;          /* tasks moved by those steals */
    uint64_t overflows;       /* local queue overflows to the global queue */
    uint64_t parks;           /* times the worker went to sleep */
    uint64_t remote_schedules;/* tasks this worker took from the global queue */
    uint64_t budget_yields;   /* forced yields after 128 operations */
    uint64_t local_queue_depth;
    uint64_t io_submitted;    /* I/O operations started on this worker */
    uint64_t io_completed;    /* completions (and readiness events) it reaped */
    uint64_t timers_fired;    /* timers that came due on its wheel */
    const char *backend;      /* "uring" or "epoll" (NULL before the worker started) */
} corio_worker_metrics;

/* corio_rt_backend - the I/O backend this runtime's workers use, "uring" or
 * "epoll" (chosen at corio_rt_create(): $CORIO_BACKEND, else io_uring when
 * the kernel allows it). NULL for NULL. Call from: any thread. */
CORIO_API const char *corio_rt_backend(const corio_rt *rt);

/* corio_rt_worker_metrics - counters of worker @i (racy snapshot).
 * Returns 0, -EINVAL (NULL, @i out of range). Call from: any thread. */
CORIO_API int corio_rt_worker_metrics(corio_rt *rt, unsigned i, corio_worker_metrics *out);
/* corio_rt_alive_tasks - tasks created and not yet ended (0 for NULL). */
CORIO_API uint64_t corio_rt_alive_tasks(corio_rt *rt);

/* corio_rt_dump_tasks - write every task of @rt that has not ended to @out,
 * one line each ("task 12 'name': parked on sleep, cancelling 0"), and for
 * a parked task the return addresses unwound from its saved context,
 * symbolized where the dynamic symbol table knows them (build with
 * -fno-omit-frame-pointer, and link with -rdynamic, for deep and named
 * frames). No task is resumed or stopped: the dump is a racy snapshot, safe
 * while the runtime runs (a task that moves meanwhile may show a stale
 * state or a short trace). Returns the number of tasks listed, -EINVAL
 * (NULL), -ENOMEM. Call from: any thread (a debugger, a signal-driven
 * watchdog thread, a test that timed out). */
CORIO_API int corio_rt_dump_tasks(corio_rt *rt, FILE *out);

#ifdef __cplusplus
}
#endif

#endif
