/* corio/time.h - timers: sleep, call_later/call_at, wait_for and timeout
 * scopes (asyncio.sleep, loop.call_later, asyncio.wait_for, asyncio.timeout).
 *
 * Every worker keeps its own timer wheel (1 ms resolution) and sleeps in its
 * I/O backend until the earliest deadline, so a timer costs no thread and a
 * sleeping task no CPU. Times are CLOCK_MONOTONIC nanoseconds, the clock of
 * corio_time_ns(). A timer never fires early; it fires late by at most the
 * time its worker spends in the step that is running when it is due.
 *
 * Negative delays and timeouts are refused with -EINVAL (a negative number
 * in C is usually an unsigned value gone wrong); 0 means "now".
 */
#ifndef CORIO_TIME_H
#define CORIO_TIME_H

#include "common.h"
#include "future.h"
#include "runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A deadline that never comes (asyncio's timeout(None)). */
#define CORIO_NO_DEADLINE UINT64_MAX

/* corio_sleep - suspend the current task for @delay_ns (asyncio.sleep).
 * 0 is corio_yield(). Returns 0, -ECANCELED (the task was cancelled while
 * sleeping: the timer is removed), -EINVAL (@delay_ns < 0), -EPERM outside
 * a task. Call from: a task. */
CORIO_API int corio_sleep(int64_t delay_ns);

/* corio_sleep_until - sleep until corio_time_ns() >= @when_ns (a deadline in
 * the past returns after one yield). Errors as corio_sleep(). */
CORIO_API int corio_sleep_until(uint64_t when_ns);

/* corio_call_later - run @fn(@arg) on this worker after @delay_ns
 * (loop.call_later); corio_call_at - at corio_time_ns() >= @when_ns
 * (loop.call_at). The callback runs on a worker's own stack, like
 * corio_call_soon(), and must not await. *@out (may be NULL) receives a
 * handle reference for corio_handle_cancel() / corio_handle_unref(); a
 * cancelled timer is dropped, by its worker, when it comes due.
 * Returns 0, -EINVAL (@fn NULL, @delay_ns < 0), -EPERM (not on a worker of
 * a running runtime), -ENOMEM. Call from: a task or a callback. */
CORIO_API int corio_call_later(corio_handle **out, int64_t delay_ns, corio_callback_fn fn,
                               void *arg);
CORIO_API int corio_call_at(corio_handle **out, uint64_t when_ns, corio_callback_fn fn,
                            void *arg);

/* corio_handle_when - a timer handle's deadline (TimerHandle.when()); 0 for
 * a call_soon handle or NULL. Call from: any thread. */
CORIO_API uint64_t corio_handle_when(const corio_handle *h);

/* A timeout scope (asyncio.timeout / asyncio.timeout_at), owned by the
 * caller, normally on its stack. Its fields are private. */
typedef struct corio_timeout {
    uint64_t private_[12];
} corio_timeout;

/* corio_timeout_enter - open a scope on the current task that expires
 * @delay_ns from now; corio_timeout_enter_at - at @when_ns (CORIO_NO_DEADLINE: no
 * deadline until rescheduled). When it expires, the task is cancelled
 * (counted, as in asyncio): the await running then returns -ECANCELED, and
 * corio_timeout_exit() turns that into -ETIMEDOUT. Returns 0, -EINVAL (NULL,
 * @delay_ns < 0), -EPERM outside a task. Every enter needs one exit, in the
 * same task, with nested scopes exited in reverse order.
 * Call from: a task. */
CORIO_API int corio_timeout_enter(corio_timeout *tm, int64_t delay_ns);
CORIO_API int corio_timeout_enter_at(corio_timeout *tm, uint64_t when_ns);

/* corio_timeout_reschedule - move the deadline to @when_ns (CORIO_NO_DEADLINE:
 * none). Returns 0, -EINVAL (NULL, or the scope is not entered or already
 * expired: asyncio's RuntimeError). Call from: the scope's task. */
CORIO_API int corio_timeout_reschedule(corio_timeout *tm, uint64_t when_ns);

/* corio_timeout_when - the deadline (CORIO_NO_DEADLINE when none; 0 for NULL).
 * corio_timeout_expired - whether the scope's deadline cancelled the task
 * (Timeout.expired()). Call from: any thread (snapshots). */
CORIO_API uint64_t corio_timeout_when(const corio_timeout *tm);
CORIO_API bool corio_timeout_expired(const corio_timeout *tm);

/* corio_timeout_exit - close the scope and translate @rc, the outcome of
 * the code inside it: when the scope expired and @rc is -ECANCELED (and no
 * other cancellation is pending on the task), returns -ETIMEDOUT and the
 * cancellation is withdrawn (uncancel); otherwise returns @rc unchanged.
 * -EINVAL for NULL or a scope that is not entered.
 * Call from: the scope's task. */
CORIO_API int corio_timeout_exit(corio_timeout *tm, int rc);

/* corio_wait_for - await @f for at most @timeout_ns (asyncio.wait_for, as
 * Python 3.12 builds it on a timeout scope). Returns @f's outcome as
 * corio_await() does, or -ETIMEDOUT: then @f was cancelled and awaited, so
 * it is done when this returns. A @timeout_ns of 0 gives @f no time unless
 * it is done already. -EINVAL (@f NULL, @timeout_ns < 0), -EPERM outside a
 * task. Call from: a task. Use corio_wait_for(), which also takes a task. */
CORIO_API int corio_future_wait_for(corio_future *f, int64_t timeout_ns, void **value);
#define corio_wait_for(x, timeout_ns, valuep)                                   \
    corio_future_wait_for(_Generic((x),                                         \
                              corio_task *: corio_task_future,                  \
                              corio_future *: corio__future_identity)(x),       \
                          (timeout_ns), (valuep))

#ifdef __cplusplus
}
#endif

#endif
