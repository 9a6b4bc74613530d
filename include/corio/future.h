/* corio/future.h - futures (asyncio.Future) and awaiting them.
 *
 * A future is a result that is not there yet: pending, then exactly once
 * done with a value, failed with an error (a negative code and an optional
 * message: asyncio's exception), or cancelled. Any thread may complete a
 * future; tasks suspend on it with corio_await() without blocking their
 * worker. A task (corio/task.h) is a future too: corio_task_future() gives
 * the future view, and corio_await() accepts either type.
 *
 * Lifetime: corio_future_create() returns one reference; every
 * corio_future_ref() needs one corio_future_unref(); the memory is freed at
 * the last unref. Every call on a future must be made while the caller holds
 * a reference to it: in particular, whoever completes a future that another
 * task will unref as soon as it wakes takes its own reference around the
 * set_result/set_exception/cancel call. A failed future whose error nobody retrieved (by awaiting
 * it, corio_future_result() or corio_future_exception()) is reported by the
 * runtime's exception handler when freed ("Future exception was never
 * retrieved").
 *
 * Done callbacks are never run inline: completing a future schedules them
 * (in registration order) on the completing worker, or on the runtime the
 * future belongs to when completed from another thread, like call_soon().
 */
#ifndef CORIO_FUTURE_H
#define CORIO_FUTURE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct corio_future corio_future;
typedef struct corio_task corio_task;
typedef struct corio_rt corio_rt;

/* A done callback: @f is the completed future (valid during the call). */
typedef void (*corio_done_fn)(corio_future *f, void *arg);

/* corio_future_create - a new pending future bound to the running runtime.
 * Returns 0 and *@out (one reference), -EINVAL (@out NULL), -EPERM (no
 * running runtime on this thread) or -ENOMEM.
 * Call from: a task or a callback. */
CORIO_API int corio_future_create(corio_future **out);

/* corio_future_ref / corio_future_unref - take / drop a reference.
 * unref of the last reference frees the future (a pending one is cancelled
 * first, so nobody waits on freed memory). NULL is ignored.
 * Call from: any thread. */
CORIO_API corio_future *corio_future_ref(corio_future *f);
CORIO_API void corio_future_unref(corio_future *f);

/* corio_future_set_result - complete @f with @value; wakes its waiters.
 * Returns 0, -EINVAL (@f NULL, or already done: asyncio's InvalidStateError).
 * Call from: any thread. */
CORIO_API int corio_future_set_result(corio_future *f, void *value);

/* corio_future_set_exception - fail @f with @err (< 0) and @msg (copied; may
 * be NULL). Returns 0, -EINVAL (@f NULL, @err >= 0, or already done), -ENOMEM.
 * Call from: any thread. */
CORIO_API int corio_future_set_exception(corio_future *f, int err, const char *msg);

/* corio_future_cancel - cancel @f with an optional message (copied).
 * For a plain future: returns 1 and completes it as cancelled, or 0 when it
 * was already done. For a task's future it requests the task's cancellation
 * (see corio_task_cancel()). Returns -EINVAL for NULL.
 * Call from: any thread. */
CORIO_API int corio_future_cancel(corio_future *f, const char *msg);

/* corio_future_done / corio_future_cancelled - state snapshots; false for NULL.
 * Call from: any thread. */
CORIO_API bool corio_future_done(const corio_future *f);
CORIO_API bool corio_future_cancelled(const corio_future *f);

/* corio_future_result - the outcome of a done future, without waiting.
 * Returns 0 and *@value (may be NULL to ignore), -EAGAIN when still pending,
 * -ECANCELED when cancelled, the future's own error when it failed, -EINVAL
 * for NULL. Marks the error as retrieved. Call from: any thread. */
CORIO_API int corio_future_result(corio_future *f, void **value);

/* corio_future_exception - the error of a done future: 0 when it succeeded,
 * its negative code when it failed (and *@msg, if @msg is not NULL, its
 * message or NULL; the string lives as long as @f), -ECANCELED when
 * cancelled, -EAGAIN when pending, -EINVAL for NULL. Marks it retrieved.
 * Call from: any thread. */
CORIO_API int corio_future_exception(corio_future *f, const char **msg);

/* corio_future_add_done_callback - call @fn(@f, @arg) once @f is done,
 * scheduled like call_soon() (immediately scheduled if @f is done already).
 * Returns 0, -EINVAL (NULL @f or @fn), -ENOMEM. Call from: any thread. */
CORIO_API int corio_future_add_done_callback(corio_future *f, corio_done_fn fn, void *arg);

/* corio_future_remove_done_callback - unregister every (@fn, @arg) pair not
 * yet scheduled. Returns how many were removed (>= 0), -EINVAL for NULL.
 * Call from: any thread. */
CORIO_API int corio_future_remove_done_callback(corio_future *f, corio_done_fn fn, void *arg);

/* corio_future_await - suspend the current task until @f is done.
 * Returns 0 and *@value (@value may be NULL) on success; @f's error when it
 * failed (the error counts as retrieved); -ECANCELED when @f was cancelled or
 * when the awaiting task was cancelled while waiting (then, as in asyncio,
 * @f itself is cancelled too, and the call returns once @f is done: a task
 * never unwinds while something it awaited still runs); -EPERM outside a
 * task; -EINVAL for NULL. Awaiting a future that is already done does not
 * suspend (every 128 such in a row yield once, for fairness).
 * Call from: a task. Use corio_await(), which also takes a task. */
CORIO_API int corio_future_await(corio_future *f, void **value);

/* corio_task_future - the future view of a task (no new reference). */
CORIO_API corio_future *corio_task_future(corio_task *t);

/* corio_await - await a corio_future * or a corio_task *. */
#define corio_await(x, valuep)                                              \
    corio_future_await(_Generic((x),                                         \
                           corio_task *: corio_task_future,                  \
                           corio_future *: corio__future_identity)(x),       \
                       (valuep))

static inline corio_future *corio__future_identity(corio_future *f) { return f; }

#ifdef __cplusplus
}
#endif

#endif
