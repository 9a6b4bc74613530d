/* corio/context.h - task-local context (Python's contextvars).
 *
 * A context variable (contextvars.ContextVar) names a slot whose value
 * depends on the task that reads it. Every task has a context: the values
 * set in it, on top of each variable's default. corio_spawn() gives the new
 * task a copy of the spawning task's context as it stands at the spawn
 * (asyncio.create_task copies the current context), so a value set in the
 * child never shows in the parent, and one set in the parent after the
 * spawn never shows in the child. A task spawned from outside any task
 * (another thread, a callback) starts with an empty context. A task keeps
 * its context when it moves between workers.
 *
 * Values are void pointers owned by the user: corio stores and returns them,
 * never frees them, and runs no destructor (keep what they point at alive as
 * long as a task may read it).
 *
 * Cost: spawn shares the parent's context in O(1) (one reference); a set
 * copies the setting task's context (O(number of variables set in it), where
 * Python's HAMT is O(log n): contexts hold a handful of variables); a get is
 * a binary search. Outside a task, get sees an empty context (defaults only)
 * and set/reset return -EPERM.
 *
 * Thread safety: variables may be shared by every task of every runtime;
 * create and destroy them from one place while no task uses them (usually
 * once at start and end, as Python's module-level ContextVars). A token
 * belongs to the task that made it.
 */
#ifndef CORIO_CONTEXT_H
#define CORIO_CONTEXT_H

#include "common.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct corio_contextvar corio_contextvar;

/* A context object (contextvars.Context), as made by corio_copy_context(). */
typedef struct corio_context corio_context;

/* What corio_contextvar_set() returns to undo the set (contextvars.Token):
 * caller-owned, normally on the stack; its fields are private. */
typedef struct corio_contextvar_token {
    uint64_t private_[6];
} corio_contextvar_token;

/* corio_contextvar_create - a variable named @name (copied) without a
 * default (ContextVar(name)). Returns 0 and *@out, -EINVAL (@out or @name
 * NULL), -ENOMEM. Call from: anywhere. */
CORIO_API int corio_contextvar_create(corio_contextvar **out, const char *name);

/* corio_contextvar_create_default - a variable with the default @value
 * (ContextVar(name, default=value)). Returns as corio_contextvar_create(). */
CORIO_API int corio_contextvar_create_default(corio_contextvar **out, const char *name,
                                              void *value);

/* corio_contextvar_destroy - free @var (NULL ok). Values set in contexts
 * are forgotten with it; tokens of @var must not be used afterwards.
 * Call from: anywhere, once no task uses @var. */
CORIO_API void corio_contextvar_destroy(corio_contextvar *var);

/* corio_contextvar_name - @var's name (ContextVar.name); "" for NULL.
 * Call from: anywhere. */
CORIO_API const char *corio_contextvar_name(const corio_contextvar *var);

/* corio_contextvar_get - the value of @var in the current task's context
 * (ContextVar.get()). Returns 0 and *@value (the value set, else the
 * default), -ENOENT when neither exists (LookupError), -EINVAL (@var or
 * @value NULL). Call from: anywhere (outside a task: the default). */
CORIO_API int corio_contextvar_get(const corio_contextvar *var, void **value);

/* corio_contextvar_set - set @var to @value in the current task's context
 * (ContextVar.set()). *@token, when @token is not NULL, receives what
 * corio_contextvar_reset() needs to restore the previous value. Returns 0,
 * -EINVAL (@var NULL), -EPERM outside a task, -ENOMEM (then nothing
 * changed). Call from: a task. */
CORIO_API int corio_contextvar_set(corio_contextvar *var, void *value,
                                   corio_contextvar_token *token);

/* corio_contextvar_reset - restore @var to what it was before the set that
 * made @token (ContextVar.reset()): its old value, or no value at all.
 * Returns 0; -EINVAL for a NULL or never-filled token, a token already used
 * (RuntimeError), one made by another variable or in another context
 * (ValueError: another task, or inside/outside a corio_context_run());
 * -EPERM outside a task; -ENOMEM (then the token stays unused).
 * Call from: the task that made @token. */
CORIO_API int corio_contextvar_reset(corio_contextvar *var, corio_contextvar_token *token);

/* corio_contextvar_token_old_value - the value @var had before the set
 * (Token.old_value). Returns 0 and *@value, -ENOENT when it had none
 * (Token.MISSING), -EINVAL (NULL or never-filled token).
 * Call from: anywhere. */
CORIO_API int corio_contextvar_token_old_value(const corio_contextvar_token *token,
                                               void **value);

/* corio_copy_context - a new context object holding the current task's
 * values (contextvars.copy_context(); outside a task, an empty one).
 * Returns 0 and *@out (one reference), -EINVAL (@out NULL), -ENOMEM.
 * Call from: anywhere. */
CORIO_API int corio_copy_context(corio_context **out);

/* corio_context_ref / corio_context_unref - references; the last unref
 * frees @ctx. NULL is ignored. Call from: any thread. */
CORIO_API corio_context *corio_context_ref(corio_context *ctx);
CORIO_API void corio_context_unref(corio_context *ctx);

/* corio_context_get - the value of @var in @ctx (Context.get(var) /
 * ctx[var], with the variable's default as fallback). Returns 0 and
 * *@value, -ENOENT (no value, no default), -EINVAL (NULL argument).
 * Call from: any thread. */
CORIO_API int corio_context_get(corio_context *ctx, const corio_contextvar *var,
                                void **value);

/* corio_context_run - call @fn(@arg) in the current task with @ctx as its
 * context (Context.run()): what @fn sets stays in @ctx, and the task's own
 * context is back when it returns. *@result (may be NULL) receives @fn's
 * return value. @fn must return (not corio_raise()). Returns 0, -EINVAL
 * (NULL @ctx or @fn; @ctx entered already, by this or another task:
 * RuntimeError), -EPERM outside a task, -ENOMEM. Call from: a task. */
CORIO_API int corio_context_run(corio_context *ctx, corio_fn fn, void *arg, void **result);

#ifdef __cplusplus
}
#endif

#endif
