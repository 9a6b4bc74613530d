/* corio/executor.h - concurrent futures, the thread-pool executor, and the
 * bridges between tasks and plain threads (Python's concurrent.futures plus
 * asyncio's run_in_executor, to_thread, run_coroutine_threadsafe,
 * call_soon_threadsafe and wrap_future).
 *
 * A concurrent future (corio_cfuture, concurrent.futures.Future) is a result
 * cell that any thread may complete and any thread may wait on: a plain
 * thread blocks in corio_cfuture_result(); a task calling the same function
 * awaits instead, so its worker keeps running other tasks. States:
 *     PENDING ─set_running_or_notify_cancel→ RUNNING ─set_result/exception→ FINISHED
 *     PENDING ─cancel→ CANCELLED (cancel succeeds only before it runs)
 * Done callbacks run on the thread that completes (or cancels) the future,
 * outside its lock, in registration order; one added to a done future runs
 * at once, in the caller (concurrent.futures semantics, not asyncio's).
 *
 * Lifetime: corio_cfuture_create() returns one reference; ref/unref as for
 * corio_future. A value given with corio_cfuture_set_result_owned() is freed
 * with the future. Every call on a future needs a reference held by the
 * caller.
 *
 * Timeouts are relative, in nanoseconds: CORIO_WAIT_FOREVER waits without a
 * limit, 0 only looks, a negative value is -EINVAL.
 */
#ifndef CORIO_EXECUTOR_H
#define CORIO_EXECUTOR_H

#include "common.h"
#include "combinators.h"
#include "future.h"
#include "runtime.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* No timeout (a relative timeout_ns). */
#define CORIO_WAIT_FOREVER INT64_MAX

/* ======================================================================
 * Concurrent futures
 * ====================================================================== */

typedef struct corio_cfuture corio_cfuture;

/* A done callback: @f is the completed future (valid during the call). */
typedef void (*corio_cfuture_done_fn)(corio_cfuture *f, void *arg);

/* corio_cfuture_create - a new PENDING concurrent future, bound to no runtime.
 * Returns 0 and *@out (one reference), -EINVAL (@out NULL), -ENOMEM.
 * Call from: any thread. */
CORIO_API int corio_cfuture_create(corio_cfuture **out);

/* corio_cfuture_ref / corio_cfuture_unref - take / drop a reference; the last
 * unref frees the future (and an owned value). NULL is ignored.
 * Call from: any thread. */
CORIO_API corio_cfuture *corio_cfuture_ref(corio_cfuture *f);
CORIO_API void corio_cfuture_unref(corio_cfuture *f);

/* corio_cfuture_set_running_or_notify_cancel - an executor's claim before it
 * runs the work (Future.set_running_or_notify_cancel).
 * Returns 1: now RUNNING (cancel fails from here on); 0: it had been
 * cancelled (waiters were woken, callbacks ran at cancel); -EINVAL: NULL, or
 * already RUNNING/FINISHED. Call from: any thread. */
CORIO_API int corio_cfuture_set_running_or_notify_cancel(corio_cfuture *f);

/* corio_cfuture_set_result - finish @f with @value, wake its waiters and run
 * its callbacks. corio_cfuture_set_result_owned - the same, and @free_fn
 * (may be NULL) frees @value when the future is freed.
 * Returns 0, -EINVAL (NULL, or already FINISHED/CANCELLED: InvalidStateError;
 * the owned value is then NOT taken). Call from: any thread. */
CORIO_API int corio_cfuture_set_result(corio_cfuture *f, void *value);
CORIO_API int corio_cfuture_set_result_owned(corio_cfuture *f, void *value,
                                             void (*free_fn)(void *));

/* corio_cfuture_set_exception - fail @f with @err (< 0, not -ECANCELED) and
 * @msg (copied; may be NULL). Returns 0, -EINVAL (NULL, bad @err, already
 * done), -ENOMEM. Call from: any thread. */
CORIO_API int corio_cfuture_set_exception(corio_cfuture *f, int err, const char *msg);

/* corio_cfuture_cancel - cancel @f if it has not started (Future.cancel).
 * Returns 1 when @f is (now or already) cancelled, 0 when it is RUNNING or
 * FINISHED, -EINVAL for NULL. Callbacks run in the caller on success.
 * Call from: any thread. */
CORIO_API int corio_cfuture_cancel(corio_cfuture *f);

/* corio_cfuture_running / _done / _cancelled - state snapshots (done: FINISHED
 * or CANCELLED); false for NULL. Call from: any thread. */
CORIO_API bool corio_cfuture_running(const corio_cfuture *f);
CORIO_API bool corio_cfuture_done(const corio_cfuture *f);
CORIO_API bool corio_cfuture_cancelled(const corio_cfuture *f);

/* corio_cfuture_result - wait up to @timeout_ns for @f (Future.result).
 * Returns 0 and *@value (@value may be NULL), @f's error when it failed,
 * -ECANCELED when @f was cancelled, -ETIMEDOUT when the time ran out (@f is
 * left as it is), -EINVAL (NULL, @timeout_ns < 0). From a plain thread it
 * blocks (after yielding the CPU for up to 15 us); from a task it awaits (the worker runs other tasks), and a
 * cancellation of the task returns -ECANCELED leaving @f alone.
 * Call from: any thread or a task. */
CORIO_API int corio_cfuture_result(corio_cfuture *f, int64_t timeout_ns, void **value);

/* corio_cfuture_exception - wait as corio_cfuture_result() and return 0 when
 * @f succeeded, its error when it failed (and *@msg, if @msg is not NULL,
 * its message or NULL; valid as long as @f), -ECANCELED, -ETIMEDOUT, -EINVAL.
 * Call from: any thread or a task. */
CORIO_API int corio_cfuture_exception(corio_cfuture *f, int64_t timeout_ns, const char **msg);

/* corio_cfuture_add_done_callback - call @fn(@f, @arg) once @f is done: on
 * the thread that finishes or cancels it, or at once in the caller when @f
 * is done already (Future.add_done_callback). Returns 0, -EINVAL (NULL @f or
 * @fn), -ENOMEM. Call from: any thread. */
CORIO_API int corio_cfuture_add_done_callback(corio_cfuture *f, corio_cfuture_done_fn fn,
                                              void *arg);

/* corio_cfutures_wait - block until @return_when (CORIO_FIRST_COMPLETED,
 * CORIO_FIRST_EXCEPTION, CORIO_ALL_COMPLETED) holds for @fs[0..n) or
 * @timeout_ns passes (concurrent.futures.wait). @done / @pending (each may be
 * NULL; else room for @n) get the futures in @fs order, with *@ndone /
 * *@npending counts (may be NULL). A timeout is not an error: the caller sees
 * *@npending > 0. Duplicates in @fs are allowed. Returns 0, -EINVAL (NULL
 * @fs or entry, bad @return_when, @timeout_ns < 0). n == 0 returns 0 at once.
 * Call from: a plain thread (in a task it blocks the worker).
 * See also: corio_wait() for tasks. */
CORIO_API int corio_cfutures_wait(corio_cfuture *const *fs, size_t n, int64_t timeout_ns,
                                  int return_when, corio_cfuture **done, size_t *ndone,
                                  corio_cfuture **pending, size_t *npending);

/* An iterator over concurrent futures in completion order
 * (concurrent.futures.as_completed). */
typedef struct corio_cfutures_as_completed corio_cfutures_as_completed;

/* corio_cfutures_as_completed_start - begin iterating over @fs[0..n) (its
 * own references; duplicates are yielded once) with a deadline @timeout_ns
 * from now for the whole iteration. Returns 0 and *@out, -EINVAL (NULL
 * arguments or entries, @timeout_ns < 0), -ENOMEM. Call from: any thread. */
CORIO_API int corio_cfutures_as_completed_start(corio_cfutures_as_completed **out,
                                                corio_cfuture *const *fs, size_t n,
                                                int64_t timeout_ns);

/* corio_cfutures_as_completed_next - block until the next future is done and
 * return it in *@f (borrowed, valid until _destroy). Returns 0, -ENOENT when
 * all were returned, -ETIMEDOUT when the deadline passed first, -EINVAL.
 * Call from: one plain thread at a time. */
CORIO_API int corio_cfutures_as_completed_next(corio_cfutures_as_completed *it,
                                               corio_cfuture **f);

/* corio_cfutures_as_completed_destroy - drop the iterator. NULL is ignored.
 * Call from: the iterating thread. */
CORIO_API void corio_cfutures_as_completed_destroy(corio_cfutures_as_completed *it);

/* ======================================================================
 * Thread-pool executor (concurrent.futures.ThreadPoolExecutor)
 * ====================================================================== */

typedef struct corio_thread_pool corio_thread_pool;

/* Options; zero fields mean defaults, NULL means all defaults. */
typedef struct corio_thread_pool_options {
    unsigned max_workers;            /* 0: min(32, CPUs + 4), Python's default */
    const char *thread_name_prefix;  /* NULL: "corio-pool"; threads are "<prefix>_<i>" */
    /* Run once at the start of each pool thread. A negative return breaks the
     * pool: pending and later work fails with -EPIPE ("broken thread pool"). */
    int (*initializer)(void *arg);
    void *initarg;
    int64_t idle_timeout_ns;         /* 0: 10 s; a thread idle that long exits */
} corio_thread_pool_options;

/* corio_thread_pool_create - a pool with no threads yet: a thread starts on
 * submit only when none is idle, up to max_workers. Returns 0 and *@out,
 * -EINVAL (@out NULL, idle_timeout_ns < 0), -ENOMEM. Call from: any thread. */
CORIO_API int corio_thread_pool_create(corio_thread_pool **out,
                                       const corio_thread_pool_options *opts);

/* corio_thread_pool_submit - run @fn(@arg) on a pool thread (Executor.submit).
 * *@out (one reference) gets its value, or the error set by
 * corio_executor_raise() inside @fn. Returns 0, -EINVAL (NULL @ex, @fn or
 * @out), -ESHUTDOWN after shutdown, -EPIPE when the pool is broken, -ENOMEM,
 * -EAGAIN when no thread could be started and none exists.
 * Call from: any thread. */
CORIO_API int corio_thread_pool_submit(corio_thread_pool *ex, corio_fn fn, void *arg,
                                       corio_cfuture **out);

/* corio_thread_pool_map - @results[i] = @fn(@args[i]) for i < @n, computed
 * concurrently, collected in order (Executor.map), within @timeout_ns of the
 * call. On the first failure (in order) the not-yet-started calls are
 * cancelled and that error returned. Returns 0, the first error, -ETIMEDOUT,
 * the errors of submit. Call from: any thread or a task (awaits there). */
CORIO_API int corio_thread_pool_map(corio_thread_pool *ex, corio_fn fn, void *const *args,
                                    size_t n, int64_t timeout_ns, void **results);

/* corio_thread_pool_shutdown - refuse new work (Executor.shutdown); with
 * @cancel_futures, cancel the queued work that has not started; with @wait,
 * return once every pool thread has exited (a task awaits it). Queued work
 * that is not cancelled still runs. Returns 0, -EINVAL (NULL), -EDEADLK when
 * waiting from one of the pool's own threads. Idempotent.
 * Call from: any thread or a task. */
CORIO_API int corio_thread_pool_shutdown(corio_thread_pool *ex, bool wait, bool cancel_futures);

/* corio_thread_pool_destroy - shutdown(wait = true) and free @ex. The memory
 * may be reused after it returns. Returns 0, -EINVAL (NULL), -EDEADLK (from
 * a pool thread). Call from: any thread that is not a pool thread. */
CORIO_API int corio_thread_pool_destroy(corio_thread_pool *ex);

/* corio_thread_pool_threads - pool threads alive now (a snapshot; 0 for NULL).
 * Call from: any thread. */
CORIO_API unsigned corio_thread_pool_threads(const corio_thread_pool *ex);

/* corio_executor_raise - fail the work item running on this pool thread with
 * @err (< 0, not -ECANCELED) and @msg (copied) once its function returns
 * (the value returned is then ignored). Returns @err, -EINVAL (bad @err),
 * -EPERM when not called from inside executor work.
 * Call from: a function running on a pool thread. */
CORIO_API int corio_executor_raise(int err, const char *msg);

/* ======================================================================
 * Bridges between tasks and threads
 * ====================================================================== */

/* corio_run_in_executor - run @fn(@arg) on @ex (NULL: the runtime's default
 * executor, see corio_set_default_executor()) and await its value in *@value
 * (may be NULL) (loop.run_in_executor). The worker runs other tasks
 * meanwhile. Cancelling the awaiting task cancels the work if it has not
 * started (the task then returns -ECANCELED at once); work already running
 * is waited for, then -ECANCELED. Returns 0, @fn's error, -ECANCELED,
 * -EPERM outside a task, -EINVAL (NULL @fn), the errors of submit.
 * Call from: a task. */
CORIO_API int corio_run_in_executor(corio_thread_pool *ex, corio_fn fn, void *arg, void **value);

/* corio_to_thread - corio_run_in_executor(NULL, ...) (asyncio.to_thread);
 * returns as that. Call from: a task. */
CORIO_API int corio_to_thread(corio_fn fn, void *arg, void **value);

/* corio_set_default_executor - make @ex the executor that
 * corio_run_in_executor(NULL) uses in @rt (NULL: the running runtime)
 * (loop.set_default_executor). Without one, an elastic pool is made on
 * first use (up to 512 threads, idle ones retired after 10 s): it starts
 * as many threads at once as there are CPUs, and one more each millisecond
 * that queued calls wait with every thread busy in a call, so short calls
 * run on a thread per CPU and calls that block still get a thread each. The runtime
 * shuts its default executor down (waiting up to 300 s) when corio_run /
 * corio_rt_run ends; it destroys one it made, the caller destroys @ex (after
 * the run). Returns 0, -EINVAL (NULL @ex, no runtime), -EBUSY when a default
 * executor is already in place (also after first use).
 * Call from: any thread. */
CORIO_API int corio_set_default_executor(corio_rt *rt, corio_thread_pool *ex);

/* corio_run_coroutine_threadsafe - spawn @fn(@arg) as a task of @rt and get
 * a concurrent future of its outcome in *@out (one reference)
 * (asyncio.run_coroutine_threadsafe). The future stays PENDING while the
 * task runs, so corio_cfuture_cancel() on it succeeds (returns 1) and
 * requests the task's cancellation. A runtime created but not yet running
 * runs the task once it starts. Returns 0, -EINVAL (NULL @rt, @fn or @out),
 * -ENOMEM, -ESHUTDOWN once @rt's main task has ended.
 * Call from: any thread (typically a plain one). */
CORIO_API int corio_run_coroutine_threadsafe(corio_rt *rt, corio_fn fn, void *arg,
                                             corio_cfuture **out);

/* corio_call_soon_threadsafe - schedule @fn(@arg) on @rt's workers
 * (loop.call_soon_threadsafe); *@out (may be NULL) gets a handle (one
 * reference, corio_handle_unref()) that can cancel it. Returns 0, -EINVAL,
 * -ENOMEM, -ESHUTDOWN. Call from: any thread. */
CORIO_API int corio_call_soon_threadsafe(corio_rt *rt, corio_handle **out, corio_callback_fn fn,
                                         void *arg);

/* corio_wrap_future - a corio future (*@out, one reference) that completes
 * as @cf completes; cancelling it (or a task awaiting it) cancels @cf
 * (asyncio.wrap_future). Returns 0, -EINVAL, -EPERM (no running runtime on
 * this thread), -ENOMEM. Call from: a task or a callback. */
CORIO_API int corio_wrap_future(corio_cfuture *cf, corio_future **out);

#ifdef __cplusplus
}
#endif

#endif
