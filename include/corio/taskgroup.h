/* corio/taskgroup.h - task groups (asyncio.TaskGroup, Python 3.12 semantics).
 *
 * A task group is a scope in one task (the parent) whose children must all
 * end before the scope does:
 *
 *     corio_taskgroup tg;                    async with TaskGroup() as tg:
 *     int rc = corio_taskgroup_enter(&tg);
 *     if (rc == 0) {
 *         corio_taskgroup_spawn(&tg, NULL, child, arg, NULL);  tg.create_task(child())
 *         rc = corio_sleep(...);             (the body's outcome)
 *         rc = corio_taskgroup_exit(&tg, rc);
 *     }
 *     ... corio_taskgroup_error(&tg, i, ...) for each failure ...
 *     corio_taskgroup_close(&tg);
 *
 * or, with the guard macro, which also exits when the body is left by
 * break, return or goto:
 *
 *     corio_taskgroup tg;
 *     int rc;
 *     CORIO_TASKGROUP(&tg, rc) {
 *         corio_taskgroup_spawn(&tg, NULL, child, arg, NULL);
 *         rc = corio_sleep(...);
 *     }
 *     (rc is now what corio_taskgroup_exit() returned)
 *     corio_taskgroup_close(&tg);
 *
 * What happens, as in CPython 3.12:
 * - exit waits for every child, however the body ended.
 * - The first child to fail (end with an error; a cancelled child is not a
 *   failure) cancels every other child and the parent task, once: the
 *   parent's current (or next) await returns -ECANCELED, and exit takes that
 *   request back (uncancel), so after exit corio_task_cancelling(parent) is
 *   what it was at enter.
 * - A body that fails (@rc < 0, not -ECANCELED) cancels the children too.
 * - A parent cancelled from outside (a -ECANCELED body, or a cancellation
 *   delivered while exit waits) cancels the children, waits for them, and
 *   exit returns -ECANCELED, the request still counted (unless a failure
 *   takes precedence, below, in which case the request is re-armed so the
 *   next await sees it).
 * - exit's result is the aggregate (asyncio's ExceptionGroup): when anything
 *   failed, the first failure's error code; corio_taskgroup_error() reads
 *   every failure, children's in the order they ended, then the body's.
 *   Otherwise -ECANCELED as above, or @rc unchanged.
 *
 * Thread safety: children run on any worker; any task of the same runtime
 * may spawn into the group (a child may add siblings). enter/exit/close are
 * for the parent. The corio_taskgroup is caller-owned memory that must stay
 * in place from enter until exit returns; every successful enter needs one
 * exit before the parent task returns, and close before the memory is
 * reused (or entered again).
 */
#ifndef CORIO_TASKGROUP_H
#define CORIO_TASKGROUP_H

#include "common.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A task group, owned by the caller (normally on the parent's stack). Its
 * fields are private. */
typedef struct corio_taskgroup {
    uint64_t private_[16];
} corio_taskgroup;

/* corio_taskgroup_enter - open a group in the current task
 * (TaskGroup.__aenter__). Returns 0; -EINVAL (@tg NULL); -EPERM outside a
 * task ("cannot determine the parent task"). After any return but -EINVAL,
 * corio_taskgroup_close() is safe. Call from: the parent task. */
CORIO_API int corio_taskgroup_enter(corio_taskgroup *tg);

/* corio_taskgroup_spawn - corio_spawn_ex() into the group
 * (TaskGroup.create_task). *@out, when @out is not NULL, receives a
 * reference the caller drops; the group holds its own.
 * Returns 0, -EINVAL (@tg or @fn NULL, the group not entered, finished
 * (exit returned, or exit is running and no child is left), or shutting
 * down (a failure or a cancellation is cancelling the children): CPython's
 * RuntimeErrors), and corio_spawn_ex()'s errors.
 * Call from: any task of the parent's runtime. */
CORIO_API int corio_taskgroup_spawn(corio_taskgroup *tg, corio_task **out, corio_fn fn,
                                    void *arg, const corio_spawn_options *opts);

/* corio_taskgroup_exit - close the group given @rc, the body's outcome
 * (TaskGroup.__aexit__): waits for every child and returns the aggregate
 * described at the top (first failure's code, -ECANCELED, or @rc).
 * -EINVAL for NULL, a group not entered or exited already, or a call from
 * another task than the parent. Call from: the parent task. */
CORIO_API int corio_taskgroup_exit(corio_taskgroup *tg, int rc);

/* corio_taskgroup_error_count - how many failures exit reported (children's
 * and the body's); 0 for NULL. Call from: the parent task, after exit. */
CORIO_API int corio_taskgroup_error_count(const corio_taskgroup *tg);

/* corio_taskgroup_error - failure @i (0-based, in the order they were
 * recorded): *@code its error, *@msg its message or NULL (valid until
 * close), *@task the failed child, borrowed until close (NULL for the
 * body's failure). Each out pointer may be NULL. Returns 0, -ENOENT (@i out
 * of range), -EINVAL (@tg NULL). Call from: the parent task, after exit. */
CORIO_API int corio_taskgroup_error(const corio_taskgroup *tg, int i, int *code,
                                    const char **msg, corio_task **task);

/* corio_taskgroup_close - free what the group still holds (the failures and
 * their tasks). A group that enter was called on (whatever it returned),
 * one exited, or one set to CORIO_TASKGROUP_INIT may be closed, once;
 * closing one between enter and exit returns -EBUSY and frees nothing.
 * Returns 0, -EINVAL (NULL). Usable as a cleanup attribute function:
 * `corio_taskgroup tg __attribute__((cleanup(corio_taskgroup_close))) =
 *      CORIO_TASKGROUP_INIT;`.
 * Call from: the parent task (or anywhere once exited). */
CORIO_API int corio_taskgroup_close(corio_taskgroup *tg);

/* CORIO_TASKGROUP_INIT - a static initializer: a group so initialized may
 * be closed without ever being entered (corio_taskgroup_close() as a
 * cleanup attribute on a group whose enter may be skipped). */
#define CORIO_TASKGROUP_INIT {{0}}

/* CORIO_TASKGROUP(tgp, rc) { body } - `async with TaskGroup() as tg:` for
 * the group *@tgp and the caller's int variable @rc: rc = enter's result
 * (the body is skipped if it failed); the body stores its outcome in @rc;
 * then rc = corio_taskgroup_exit(@tgp, rc). A body left by `break` exits
 * the same way, with @rc as it stood. A body left by return or goto still
 * exits (so the children are awaited, like __aexit__ on a return) but the
 * result is lost. `continue` ends the body normally. @tgp and @rc are
 * evaluated more than once. Close the group afterwards, as without the
 * macro. Call from: the parent task. */
#define CORIO_TASKGROUP(tgp, rc)                                                        \
    for (struct corio__taskgroup_guard corio__tg_guard                                  \
             __attribute__((cleanup(corio__taskgroup_guard))) = {                       \
             ((rc) = corio_taskgroup_enter(tgp)) == 0 ? (tgp) : (corio_taskgroup *)0,   \
             &(rc)};                                                                    \
         corio__tg_guard.tg;                                                            \
         (rc) = corio_taskgroup_exit(corio__tg_guard.tg, (rc)), corio__tg_guard.tg = 0)

/* CORIO_TASKGROUP's state (not for direct use). */
struct corio__taskgroup_guard {
    corio_taskgroup *tg;   /* entered and not yet exited */
    int *rc;
};

/* corio__taskgroup_guard - CORIO_TASKGROUP's cleanup (not for direct use):
 * exits a group whose body was left early, storing the result in *rc. */
CORIO_API void corio__taskgroup_guard(struct corio__taskgroup_guard *guard);

#ifdef __cplusplus
}
#endif

#endif
