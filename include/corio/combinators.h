/* corio/combinators.h - waiting on several futures: gather, wait,
 * as_completed, shield (asyncio's functions of the same names).
 *
 * They take arrays of futures; for tasks, corio_task_future() gives each
 * one's future (or use corio_gather_tasks()). None of them takes a reference
 * on behalf of the caller: the caller keeps its futures alive until the call
 * returns. All must be called from a task.
 */
#ifndef CORIO_COMBINATORS_H
#define CORIO_COMBINATORS_H

#include "common.h"
#include "future.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Flags of corio_gather(). */
#define CORIO_RETURN_EXCEPTIONS 1u  /* collect errors in @errors instead of failing */

/* corio_gather - await every future of @fs[0..n) (asyncio.gather).
 * @results[i] receives fs[i]'s value in the order of @fs (NULL for a failed
 * one); @errors[i], if @errors is not NULL, receives 0 or fs[i]'s error
 * (-ECANCELED when cancelled). @results may be NULL.
 * Without CORIO_RETURN_EXCEPTIONS: returns 0 when all succeeded, else the
 * error of the first future to fail, as soon as it fails (the others keep
 * running, as in asyncio). With it: returns 0 once every future is done.
 * Cancelling the task that awaits the gather cancels every child that is
 * not done, waits for them all, and returns -ECANCELED.
 * Also: -EINVAL (@fs NULL with n > 0, a NULL entry), -EPERM outside a task,
 * -ENOMEM. n == 0 returns 0 at once. */
CORIO_API int corio_gather(corio_future *const *fs, size_t n, unsigned flags,
                           void **results, int *errors);

/* corio_gather_tasks - corio_gather() over tasks. Same returns. */
CORIO_API int corio_gather_tasks(corio_task *const *ts, size_t n, unsigned flags,
                                 void **results, int *errors);

/* return_when values of corio_wait(). */
enum corio_return_when {
    CORIO_FIRST_COMPLETED = 1,
    CORIO_FIRST_EXCEPTION = 2,   /* also returns when all completed */
    CORIO_ALL_COMPLETED = 3,
};

/* corio_wait - wait until @return_when holds for @fs[0..n) (asyncio.wait).
 * @done and @pending (each may be NULL; else room for @n entries) receive
 * the futures in their order in @fs, with *@ndone / *@npending counts.
 * Waiting does not cancel anything: a cancelled caller returns -ECANCELED
 * and the futures keep running. Returns 0, -ECANCELED, -EINVAL (n == 0 as in
 * asyncio, a NULL entry, bad @return_when), -EPERM outside a task, -ENOMEM. */
CORIO_API int corio_wait(corio_future *const *fs, size_t n, int return_when,
                         corio_future **done, size_t *ndone,
                         corio_future **pending, size_t *npending);

/* corio_wait_timeout - corio_wait() that gives up after @timeout_ns
 * (asyncio.wait(aws, timeout=...)). When the time is up it returns 0 with
 * the futures split as they stand: nothing is cancelled and nothing is
 * raised, so the caller tells a timeout by *@npending > 0 (with
 * CORIO_ALL_COMPLETED). A @timeout_ns of 0 only looks: it never suspends.
 * Returns as corio_wait(), and -EINVAL for @timeout_ns < 0 (no timeout is
 * corio_wait()). Call from: a task. See also: corio_wait_for(). */
CORIO_API int corio_wait_timeout(corio_future *const *fs, size_t n, int return_when,
                                 int64_t timeout_ns, corio_future **done, size_t *ndone,
                                 corio_future **pending, size_t *npending);

/* An iterator over futures in the order they complete (asyncio.as_completed). */
typedef struct corio_as_completed corio_as_completed;

/* corio_as_completed_start - begin iterating over @fs[0..n) (takes its own
 * references). Returns 0 and *@out, -EINVAL (NULL arguments, a NULL entry),
 * -ENOMEM. Call from: any thread; iterate from one task. */
CORIO_API int corio_as_completed_start(corio_as_completed **out, corio_future *const *fs,
                                       size_t n);

/* corio_as_completed_next - await the next future to complete and return it
 * in *@f (borrowed: valid until corio_as_completed_destroy()). Returns 0,
 * -ENOENT when all have been returned, -ECANCELED when the awaiting task was
 * cancelled (the futures keep running; iteration may continue), -EINVAL,
 * -EPERM outside a task. */
CORIO_API int corio_as_completed_next(corio_as_completed *it, corio_future **f);

/* corio_as_completed_destroy - drop the iterator and its references. NULL ok. */
CORIO_API void corio_as_completed_destroy(corio_as_completed *it);

/* corio_shield - a new future (*@out, one reference) that completes as
 * @inner completes, but whose cancellation does not cancel @inner
 * (asyncio.shield): a task cancelled while awaiting the shield gets
 * -ECANCELED at once and @inner keeps running. Returns 0, -EINVAL, -ENOMEM,
 * -EPERM (no running runtime). Call from: a task or a callback. */
CORIO_API int corio_shield(corio_future *inner, corio_future **out);

#ifdef __cplusplus
}
#endif

#endif
