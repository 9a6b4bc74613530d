/* core/context.c - task-local context (contextvars).
 *
 * A task's values live in a map (struct corio__context): an immutable,
 * reference-counted array of (variable id, value) pairs sorted by id. The
 * task points at its map through corio_task.ctx; NULL is the empty map.
 *   spawn: the child takes a reference to the spawner's map (core/task.c),
 *          so spawning is O(1) and a NULL map costs one pointer copy;
 *   set / reset: the task builds a new map (copy-on-write) and swaps its
 *          own pointer. Only the task itself ever reads or writes its
 *          .ctx, so the pointer needs no synchronisation; maps are shared
 *          between tasks on any worker, but never change after they are
 *          published, so only their reference counts are atomic (acq_rel on
 *          the last unref, so the freeing thread sees the builder's writes).
 * Keys are variable ids, never pointers: a destroyed variable's entries are
 * dead weight, and a new variable at the same address cannot see them.
 *
 * Which context a token belongs to (ContextVar.reset's "created in a
 * different Context"): Python's Context objects are mutable, ours are not,
 * so identity is (task id, the id of the corio_context being run, if any).
 * A map made by task T inside corio_context_run(R) is marked (R's id, T's
 * key); T is "inside R" when its own map carries its own key. That needs
 * neither R nor its entered_by: only T makes maps with T's key (run_map()
 * in T's run, set/reset while T is inside), inside R T's map always carries
 * R's mark (set/reset keep it, a nested run puts it back), and leaving R
 * puts back the map T had before. A child that inherited such a map holds
 * another task's key, so it is not inside R and its tokens are its own;
 * task ids are never reused. Ids, not pointers, because a map or a token
 * outlives the context object it was made in, and a new object may get the
 * freed one's address.
 *
 * corio_context objects (corio_copy_context) hold a map under a spinlock:
 * the map is swapped by the task running it at the end of
 * corio_context_run() and read by corio_context_get() from any thread.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "corio/context.h"

struct ctx_entry {
    uint64_t var;
    void *value;
};

/* Where a map was made: by task @task inside a run of the context whose id
 * is @run; {0, 0} outside any run. Compared, never followed. */
struct mark {
    uint64_t run;
    uint64_t task;
};

struct corio__context {
    _Atomic uint32_t refs;
    uint32_t n;
    struct mark mark;
    struct ctx_entry e[];
};

struct corio_contextvar {
    uint64_t id;
    char *name;
    void *dflt;
    bool has_default;
};

struct corio_context {
    _Atomic uint32_t refs;
    struct corio__spin lock;     /* guards map */
    struct corio__context *map;  /* owned; NULL: empty */
    _Atomic uint64_t entered_by; /* the key of the task inside corio_context_run, or 0 */
    uint64_t id;                 /* never 0, never reused: the identity of its runs */
};

/* The private fields of corio_contextvar_token. */
struct tok {
    const struct corio_contextvar *var;
    void *old;
    uint64_t run;                /* the id of the context run it was made in, or 0 */
    uint64_t task_id;
    uint32_t magic;
    uint32_t state;
};

enum { TOK_OLD = 1, TOK_MISSING, TOK_USED };
#define TOK_MAGIC 0x746f6b6eu   /* "tokn": catches a token never filled by set */

_Static_assert(sizeof(struct tok) <= sizeof(corio_contextvar_token), "token too small");
_Static_assert(_Alignof(struct tok) <= _Alignof(corio_contextvar_token), "token alignment");

static _Atomic uint64_t next_var_id = 1;
static _Atomic uint64_t next_ctx_id = 1;

static const struct mark no_mark = {0, 0};

/* ---- maps ---- */

struct corio__context *corio__context_ref(struct corio__context *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void corio__context_unref(struct corio__context *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        free(c);
}

static struct corio__context *map_new(uint32_t n, struct mark mark)
{
    struct corio__context *c = malloc(sizeof *c + (size_t)n * sizeof c->e[0]);
    if (!c)
        return NULL;
    atomic_init(&c->refs, 1);
    c->n = n;
    c->mark = mark;
    return c;
}

/* The index of @var in @c, or where it would go (*@found false). */
static uint32_t map_find(const struct corio__context *c, uint64_t var, bool *found)
{
    uint32_t lo = 0, hi = c ? c->n : 0;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (c->e[mid].var < var)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = c && lo < c->n && c->e[lo].var == var;
    return lo;
}

/* A copy of @c with @var = @value (NULL @c: empty). */
static struct corio__context *map_with(const struct corio__context *c, uint64_t var,
                                       void *value, struct mark mark)
{
    bool found;
    uint32_t i = map_find(c, var, &found);
    uint32_t n = c ? c->n : 0;
    struct corio__context *m = map_new(found ? n : n + 1, mark);
    if (!m)
        return NULL;
    if (i)
        memcpy(m->e, c->e, i * sizeof m->e[0]);
    m->e[i] = (struct ctx_entry){var, value};
    uint32_t rest = n - i - (found ? 1 : 0);
    if (rest)
        memcpy(m->e + i + 1, c->e + (n - rest), rest * sizeof m->e[0]);
    return m;
}

/* A copy of @c without @var; NULL with *@rc 0 when that is the empty map. */
static struct corio__context *map_without(const struct corio__context *c, uint64_t var,
                                          struct mark mark, int *rc)
{
    bool found;
    uint32_t i = map_find(c, var, &found);
    *rc = 0;
    if (!found)
        return c ? corio__context_ref((struct corio__context *)c) : NULL;
    if (c->n == 1 && !mark.run)
        return NULL;   /* inside a run the map stays, to carry the mark */
    struct corio__context *m = map_new(c->n - 1, mark);
    if (!m) {
        *rc = -ENOMEM;
        return NULL;
    }
    memcpy(m->e, c->e, i * sizeof m->e[0]);
    memcpy(m->e + i, c->e + i + 1, (c->n - i - 1) * sizeof m->e[0]);
    return m;
}

static int map_get(const struct corio__context *c, const struct corio_contextvar *var,
                   void **value)
{
    bool found;
    uint32_t i = map_find(c, var->id, &found);
    if (found) {
        *value = c->e[i].value;
        return 0;
    }
    if (!var->has_default)
        return -ENOENT;
    *value = var->dflt;
    return 0;
}

/* @t's key in entered_by and tokens: its id, never 0 (0 = not entered;
 * internal tasks such as the runner have id 0). */
static uint64_t task_key(const struct corio_task *t)
{
    return t->id ? t->id : UINT64_MAX;
}

/* The mark of the corio_context_run() that @t is inside (the innermost),
 * or no_mark. Reads only @t's own map: see the top of the file. */
static struct mark inside_run(const struct corio_task *t)
{
    const struct corio__context *m = t->ctx;
    if (m && m->mark.run && m->mark.task == task_key(t))
        return m->mark;
    return no_mark;
}

/* Replace @t's map with @m (owned). */
static void task_swap_map(struct corio_task *t, struct corio__context *m)
{
    struct corio__context *old = t->ctx;
    t->ctx = m;
    corio__context_unref(old);
}

/* ---- variables ---- */

static int var_create(corio_contextvar **out, const char *name, bool has_default, void *value)
{
    if (!out || !name)
        return -EINVAL;
    struct corio_contextvar *v = malloc(sizeof *v);
    char *copy = strdup(name);
    if (!v || !copy) {
        free(v);
        free(copy);
        return -ENOMEM;
    }
    v->id = atomic_fetch_add_explicit(&next_var_id, 1, memory_order_relaxed);
    v->name = copy;
    v->dflt = value;
    v->has_default = has_default;
    *out = v;
    return 0;
}

int corio_contextvar_create(corio_contextvar **out, const char *name)
{
    return var_create(out, name, false, NULL);
}

int corio_contextvar_create_default(corio_contextvar **out, const char *name, void *value)
{
    return var_create(out, name, true, value);
}

void corio_contextvar_destroy(corio_contextvar *var)
{
    if (!var)
        return;
    free(var->name);
    free(var);
}

const char *corio_contextvar_name(const corio_contextvar *var)
{
    return var ? var->name : "";
}

int corio_contextvar_get(const corio_contextvar *var, void **value)
{
    if (!var || !value)
        return -EINVAL;
    struct corio_task *t = corio_current_task();
    return map_get(t ? t->ctx : NULL, var, value);
}

int corio_contextvar_set(corio_contextvar *var, void *value, corio_contextvar_token *token)
{
    if (!var)
        return -EINVAL;
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;
    struct mark run = inside_run(t);
    struct corio__context *m = map_with(t->ctx, var->id, value, run);
    if (!m)
        return -ENOMEM;
    if (token) {
        struct tok *k = (struct tok *)(void *)token;
        void *old = NULL;
        bool found;
        uint32_t i = map_find(t->ctx, var->id, &found);
        if (found)
            old = t->ctx->e[i].value;
        *k = (struct tok){.var = var, .old = old, .run = run.run, .task_id = task_key(t),
                          .magic = TOK_MAGIC, .state = found ? TOK_OLD : TOK_MISSING};
    }
    task_swap_map(t, m);
    return 0;
}

int corio_contextvar_reset(corio_contextvar *var, corio_contextvar_token *token)
{
    if (!var || !token)
        return -EINVAL;
    struct tok *k = (struct tok *)(void *)token;
    if (k->magic != TOK_MAGIC)
        return -EINVAL;
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;
    /* Python's order: used (RuntimeError), other var, other context (ValueError). */
    struct mark run = inside_run(t);
    if (k->state == TOK_USED || k->var != var || k->task_id != task_key(t) ||
        k->run != run.run)
        return -EINVAL;
    struct corio__context *m;
    if (k->state == TOK_OLD) {
        m = map_with(t->ctx, var->id, k->old, run);
        if (!m)
            return -ENOMEM;
    } else {
        int rc;
        m = map_without(t->ctx, var->id, run, &rc);
        if (rc < 0)
            return rc;
    }
    task_swap_map(t, m);
    k->state = TOK_USED;
    return 0;
}

int corio_contextvar_token_old_value(const corio_contextvar_token *token, void **value)
{
    const struct tok *k = (const struct tok *)(const void *)token;
    if (!k || !value || k->magic != TOK_MAGIC)
        return -EINVAL;
    if (k->state == TOK_MISSING)
        return -ENOENT;
    *value = k->old;
    return 0;
}

/* ---- context objects ---- */

int corio_copy_context(corio_context **out)
{
    if (!out)
        return -EINVAL;
    struct corio_context *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    struct corio_task *t = corio_current_task();
    atomic_init(&c->refs, 1);
    corio__spin_init(&c->lock);
    c->map = t && t->ctx ? corio__context_ref(t->ctx) : NULL;
    atomic_init(&c->entered_by, 0);
    c->id = atomic_fetch_add_explicit(&next_ctx_id, 1, memory_order_relaxed);
    *out = c;
    return 0;
}

corio_context *corio_context_ref(corio_context *ctx)
{
    if (ctx)
        atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
    return ctx;
}

void corio_context_unref(corio_context *ctx)
{
    if (!ctx || atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1)
        return;
    corio__context_unref(ctx->map);
    free(ctx);
}

static struct corio__context *context_map(corio_context *ctx)
{
    corio__spin_lock(&ctx->lock);
    struct corio__context *m = ctx->map ? corio__context_ref(ctx->map) : NULL;
    corio__spin_unlock(&ctx->lock);
    return m;
}

int corio_context_get(corio_context *ctx, const corio_contextvar *var, void **value)
{
    if (!ctx || !var || !value)
        return -EINVAL;
    struct corio__context *m = context_map(ctx);
    int rc = map_get(m, var, value);
    corio__context_unref(m);
    return rc;
}

/* The map @t's run of @ctx starts with: @ctx's values, marked as made in
 * it by @t. Always a new map (never NULL but for -ENOMEM), whatever mark
 * @ctx's map carries from an earlier run. */
static struct corio__context *run_map(corio_context *ctx, const struct corio_task *t)
{
    struct corio__context *m = context_map(ctx);
    uint32_t n = m ? m->n : 0;
    struct corio__context *r = map_new(n, (struct mark){ctx->id, task_key(t)});
    if (r && n)
        memcpy(r->e, m->e, n * sizeof r->e[0]);
    corio__context_unref(m);
    return r;
}

int corio_context_run(corio_context *ctx, corio_fn fn, void *arg, void **result)
{
    if (!ctx || !fn)
        return -EINVAL;
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;
    uint64_t none = 0;
    if (!atomic_compare_exchange_strong_explicit(&ctx->entered_by, &none, task_key(t),
                                                 memory_order_acq_rel, memory_order_relaxed))
        return -EINVAL;   /* "cannot enter context: ... is already entered" */
    struct corio__context *m = run_map(ctx, t);
    if (!m) {
        atomic_store_explicit(&ctx->entered_by, 0, memory_order_release);
        return -ENOMEM;
    }
    struct corio__context *saved = t->ctx;
    t->ctx = m;
    void *v = fn(arg);
    /* fn may have migrated: t is the same task, and only it touches t->ctx. */
    corio__spin_lock(&ctx->lock);
    struct corio__context *old = ctx->map;
    ctx->map = t->ctx;
    corio__spin_unlock(&ctx->lock);
    t->ctx = saved;
    corio__context_unref(old);
    atomic_store_explicit(&ctx->entered_by, 0, memory_order_release);
    if (result)
        *result = v;
    return 0;
}
