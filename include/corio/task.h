/* corio/task.h - tasks (asyncio.Task): functions that run as coroutines.
 *
 * A task runs fn(arg) on its own stack, on whichever worker picks it up; it
 * suspends at corio_await() and friends without blocking that worker, and may
 * resume on another worker after any suspension (never keep a pointer to
 * thread-local data, or errno, across an await). Its return value is the
 * task's result. A task fails by calling corio_raise(), which ends it with an
 * error code and message (asyncio's exception); the runtime keeps every task
 * alive until it ends, whether or not anybody holds a handle.
 *
 * Cancellation (asyncio semantics): corio_task_cancel() is a counted request
 * delivered at the task's next suspension, where the await returns
 * -ECANCELED (and what it awaited is cancelled too). Being C, a task does not
 * unwind automatically: it returns. A task that returns while a cancellation
 * request is still counted (corio_task_cancelling() > 0) ends cancelled, as a
 * Python task that lets CancelledError propagate; to suppress a cancellation,
 * call corio_task_uncancel() before returning, as asyncio's timeout() and
 * TaskGroup do.
 *
 * Handles: corio_spawn() with @out gives one reference, dropped with
 * corio_task_unref(); with @out NULL the task is fire-and-forget.
 */
#ifndef CORIO_TASK_H
#define CORIO_TASK_H

#include "common.h"
#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The function a task runs: its return value is the task's result. */
typedef void *(*corio_fn)(void *arg);

typedef struct corio_spawn_options {
    const char *name;      /* copied; NULL: "Task-<id>" as asyncio names them */
    size_t stack_size;     /* usable bytes; 0: the runtime's default (64 KiB) */
} corio_spawn_options;

/* corio_spawn - create a task running @fn(@arg) and schedule it (create_task).
 * *@out, when @out is not NULL, receives a reference the caller must drop.
 * Returns 0, -EINVAL (@fn NULL), -EPERM (no running runtime on this thread:
 * use corio_run() or corio_rt_spawn_threadsafe()), -ENOMEM (no memory for
 * the task, its stack would exceed the runtime's stack budget, or the kernel
 * refused the last task stack: the
 * runtime keeps running).
 * Call from: a task or a callback of a running runtime. */
CORIO_API int corio_spawn(corio_task **out, corio_fn fn, void *arg);

/* corio_spawn_ex - corio_spawn() with options (@opts may be NULL). Also
 * -EINVAL for a stack size outside [16 KiB, 1 GiB]. */
CORIO_API int corio_spawn_ex(corio_task **out, corio_fn fn, void *arg,
                             const corio_spawn_options *opts);

/* corio_task_ref / corio_task_unref - handle references; NULL is ignored.
 * The task's memory is freed after it ended and its last reference is gone.
 * Call from: any thread. */
CORIO_API corio_task *corio_task_ref(corio_task *t);
CORIO_API void corio_task_unref(corio_task *t);

/* corio_raise - end the current task with error @err (< 0; other values
 * become -EINVAL) and a printf-style message (may be NULL). Never returns.
 * corio_raise(-ECANCELED, ...) ends it cancelled. Outside a task it returns
 * -EPERM instead. Call from: a task. */
CORIO_API int corio_raise(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* corio_task_cancel - request cancellation with an optional message (copied).
 * Returns 1 when requested (the count rises even when already requested), 0
 * when the task has already ended, -EINVAL for NULL, -ENOMEM.
 * Call from: any thread. */
CORIO_API int corio_task_cancel(corio_task *t, const char *msg);

/* corio_task_uncancel - decrement the cancellation count; returns the new
 * count (>= 0), -EINVAL for NULL. Call from: any thread (normally the task). */
CORIO_API int corio_task_uncancel(corio_task *t);

/* corio_task_cancelling - the number of pending cancellation requests
 * (0 for NULL). Call from: any thread. */
CORIO_API int corio_task_cancelling(const corio_task *t);

/* corio_task_done / corio_task_cancelled - state snapshots (false for NULL). */
CORIO_API bool corio_task_done(const corio_task *t);
CORIO_API bool corio_task_cancelled(const corio_task *t);

/* corio_task_result / corio_task_exception - as corio_future_result() and
 * corio_future_exception() on the task's future. */
CORIO_API int corio_task_result(corio_task *t, void **value);
CORIO_API int corio_task_exception(corio_task *t, const char **msg);

/* corio_task_name - the task's name (valid until @t is renamed or freed;
 * "" for NULL).
 * corio_task_set_name - rename it: 0, -EINVAL (NULL), -ENOMEM.
 * corio_task_id - a process-unique id (0 for NULL): ids grow in the order a
 * worker spawns, but workers draw them in blocks, so they are not
 * consecutive across workers. */
CORIO_API const char *corio_task_name(const corio_task *t);
CORIO_API int corio_task_set_name(corio_task *t, const char *name);
CORIO_API uint64_t corio_task_id(const corio_task *t);

/* corio_current_task - the running task, NULL outside a task. No reference
 * is taken: it stays valid while the task runs. Call from: anywhere. */
CORIO_API corio_task *corio_current_task(void);

/* corio_all_tasks - a snapshot of every task of the running runtime that has
 * not ended, each with a reference; release with corio_task_list_free().
 * Returns the count (>= 0) and *@out, -EINVAL (@out NULL), -EPERM (no
 * running runtime), -ENOMEM. Call from: a task or a callback.
 * corio_task_list_free - drop the @n references and the list (NULL ok). */
CORIO_API int corio_all_tasks(corio_task ***out);
CORIO_API void corio_task_list_free(corio_task **list, int n);

/* corio_yield - let every other ready task run one step first
 * (asyncio.sleep(0)). With nothing else ready on its worker the task goes
 * on at once, without a context switch; the worker still polls its I/O and
 * timers every 61 steps, as it does between any steps. Returns 0,
 * -ECANCELED when a cancellation was delivered here, -EPERM outside a
 * task. Call from: a task. */
CORIO_API int corio_yield(void);

#ifdef __cplusplus
}
#endif

#endif
