/* tests/test_context.c - task-local context (corio/context.h), contextvars.
 *
 * Every case runs its own runtime (testutil.h), which must leave no task
 * alive and report nothing; tasks record with CHECK*() and the case asserts
 * after the run. Variables are made per case and destroyed after the run.
 * Isolation and migration cases run on 1 worker, then repeated on 2 and 4.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <corio/corio.h>
#include <corio/context.h>

#include "testutil.h"

struct ctx_case {
    struct checks ck;
    corio_contextvar *a, *b, *nodef;
    corio_contextvar_token tok;   /* made by one task, tried by another */
    atomic_int ok;
};

static void case_init(struct ctx_case *c)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(corio_contextvar_create_default(&c->a, "a", V(100)), 0);
    assert_int_equal(corio_contextvar_create_default(&c->b, "b", NULL), 0);
    assert_int_equal(corio_contextvar_create(&c->nodef, "nodef"), 0);
}

static void case_fini(struct ctx_case *c)
{
    corio_contextvar_destroy(c->a);
    corio_contextvar_destroy(c->b);
    corio_contextvar_destroy(c->nodef);
}

static void *get_of(corio_contextvar *v)
{
    void *x = V(0xdead);
    return corio_contextvar_get(v, &x) == 0 ? x : V(0xdead);
}

static void run_case(unsigned workers, corio_fn fn)
{
    struct ctx_case c;
    case_init(&c);
    run_main_checked(workers, fn, &c, &c.ck);
    case_fini(&c);
}

/* ---- defaults, missing values, set/get/reset ----------------------------- */

static void *basics_main(void *arg)
{
    struct ctx_case *c = arg;
    struct checks *ck = &c->ck;
    void *v = NULL;
    CHECK_STR(ck, corio_contextvar_name(c->a), "a");
    CHECK_EQ(ck, corio_contextvar_get(c->a, &v), 0);
    CHECK_PTR(ck, v, V(100));
    CHECK_EQ(ck, corio_contextvar_get(c->nodef, &v), -ENOENT);   /* LookupError */
    corio_contextvar_token t1, t2, t3;
    CHECK_EQ(ck, corio_contextvar_set(c->nodef, V(1), &t1), 0);
    CHECK_EQ(ck, corio_contextvar_token_old_value(&t1, &v), -ENOENT);   /* Token.MISSING */
    CHECK_PTR(ck, get_of(c->nodef), V(1));
    CHECK_EQ(ck, corio_contextvar_set(c->nodef, V(2), &t2), 0);
    CHECK_EQ(ck, corio_contextvar_token_old_value(&t2, &v), 0);
    CHECK_PTR(ck, v, V(1));
    CHECK_EQ(ck, corio_contextvar_set(c->a, V(7), &t3), 0);
    CHECK_PTR(ck, get_of(c->a), V(7));
    CHECK_PTR(ck, get_of(c->nodef), V(2));
    CHECK_EQ(ck, corio_contextvar_reset(c->nodef, &t2), 0);
    CHECK_PTR(ck, get_of(c->nodef), V(1));
    CHECK_EQ(ck, corio_contextvar_reset(c->nodef, &t1), 0);
    CHECK_EQ(ck, corio_contextvar_get(c->nodef, &v), -ENOENT);
    CHECK_EQ(ck, corio_contextvar_reset(c->a, &t3), 0);
    CHECK_PTR(ck, get_of(c->a), V(100));
    /* set without a token, and NULL values are values. */
    CHECK_EQ(ck, corio_contextvar_set(c->nodef, NULL, NULL), 0);
    CHECK_EQ(ck, corio_contextvar_get(c->nodef, &v), 0);
    CHECK_PTR(ck, v, NULL);
    return NULL;
}

static void context_default_missing_and_reset(void **state)
{
    (void)state;
    run_case(1, basics_main);
}

/* ---- bad tokens and bad input --------------------------------------------- */

static void *other_task_reset(void *arg)
{
    struct ctx_case *c = arg;
    /* The parent's token, in another context (ValueError). */
    CHECK_EQ(&c->ck, corio_contextvar_reset(c->a, &c->tok), -EINVAL);
    return NULL;
}

static void *bad_tokens_main(void *arg)
{
    struct ctx_case *c = arg;
    struct checks *ck = &c->ck;
    corio_contextvar_token t, blank;
    memset(&blank, 0, sizeof blank);
    CHECK_EQ(ck, corio_contextvar_set(c->a, V(1), &t), 0);
    CHECK_EQ(ck, corio_contextvar_reset(c->b, &t), -EINVAL);   /* other variable */
    CHECK_EQ(ck, corio_contextvar_reset(c->a, &blank), -EINVAL);
    CHECK_EQ(ck, corio_contextvar_reset(c->a, NULL), -EINVAL);
    CHECK_EQ(ck, corio_contextvar_reset(c->a, &t), 0);
    CHECK_EQ(ck, corio_contextvar_reset(c->a, &t), -EINVAL);   /* used twice */
    CHECK_EQ(ck, corio_contextvar_set(c->a, V(2), &c->tok), 0);
    corio_task *k = NULL;
    CHECK_EQ(ck, corio_spawn(&k, other_task_reset, c), 0);
    CHECK_EQ(ck, corio_await(k, NULL), 0);
    corio_task_unref(k);
    CHECK_EQ(ck, corio_contextvar_reset(c->a, &c->tok), 0);   /* still good here */
    void *v;
    CHECK_EQ(ck, corio_contextvar_get(NULL, &v), -EINVAL);
    CHECK_EQ(ck, corio_contextvar_get(c->a, NULL), -EINVAL);
    CHECK_EQ(ck, corio_contextvar_set(NULL, V(1), NULL), -EINVAL);
    CHECK_EQ(ck, corio_contextvar_token_old_value(&blank, &v), -EINVAL);
    CHECK_EQ(ck, corio_contextvar_create(NULL, "x"), -EINVAL);
    corio_contextvar *x = NULL;
    CHECK_EQ(ck, corio_contextvar_create(&x, NULL), -EINVAL);
    return NULL;
}

static void context_bad_tokens(void **state)
{
    (void)state;
    run_case(1, bad_tokens_main);
    /* Outside a task: defaults only, and no set. */
    struct ctx_case c;
    case_init(&c);
    void *v = NULL;
    assert_int_equal(corio_contextvar_get(c.a, &v), 0);
    assert_ptr_equal(v, V(100));
    assert_int_equal(corio_contextvar_get(c.nodef, &v), -ENOENT);
    corio_contextvar_token t;
    assert_int_equal(corio_contextvar_set(c.a, V(1), &t), -EPERM);
    case_fini(&c);
}

/* ---- inheritance and isolation across spawn -------------------------------- */

struct iso {
    struct ctx_case *c;
    corio_future *parent_changed, *child_changed;
};

static void *iso_child(void *arg)
{
    struct iso *s = arg;
    struct checks *ck = &s->c->ck;
    CHECK_PTR(ck, get_of(s->c->a), V(1));      /* inherited */
    CHECK_PTR(ck, get_of(s->c->nodef), V(5));
    CHECK_EQ(ck, corio_contextvar_set(s->c->a, V(2), NULL), 0);
    corio_future_set_result(s->child_changed, NULL);
    CHECK_EQ(ck, corio_await(s->parent_changed, NULL), 0);
    yield_n(5);   /* may move between workers */
    CHECK_PTR(ck, get_of(s->c->a), V(2));      /* the parent's later set is not seen */
    CHECK_PTR(ck, get_of(s->c->nodef), V(5));
    return NULL;
}

static void *iso_main(void *arg)
{
    struct ctx_case *c = arg;
    struct checks *ck = &c->ck;
    struct iso s = {c, new_future(), new_future()};
    CHECK_EQ(ck, corio_contextvar_set(c->a, V(1), NULL), 0);
    CHECK_EQ(ck, corio_contextvar_set(c->nodef, V(5), NULL), 0);
    corio_task *k = NULL;
    CHECK_EQ(ck, corio_spawn(&k, iso_child, &s), 0);
    CHECK_EQ(ck, corio_await(s.child_changed, NULL), 0);
    CHECK_PTR(ck, get_of(c->a), V(1));         /* the child's set is not seen */
    CHECK_EQ(ck, corio_contextvar_set(c->a, V(3), NULL), 0);
    corio_future_set_result(s.parent_changed, NULL);
    CHECK_EQ(ck, corio_await(k, NULL), 0);
    CHECK_PTR(ck, get_of(c->a), V(3));
    corio_task_unref(k);
    corio_future_unref(s.parent_changed);
    corio_future_unref(s.child_changed);
    return NULL;
}

static void iso_body(unsigned workers) { run_case(workers, iso_main); }

static void context_child_inherits_a_copy(void **state)
{
    (void)state;
    on_each_worker_count(iso_body);
}

/* ---- many tasks, each with its own value, moving between workers ---------- */

#define NTASKS 200

static void *own_value_task(void *arg)
{
    struct ctx_case *c = *(struct ctx_case **)arg;
    void *mine = arg;
    if (corio_contextvar_set(c->b, mine, NULL) != 0)
        return NULL;
    for (int i = 0; i < 20; i++) {
        corio_yield();
        if (get_of(c->b) != mine || get_of(c->a) != V(9))
            return NULL;
    }
    atomic_fetch_add(&c->ok, 1);
    return NULL;
}

static void *many_main(void *arg)
{
    struct ctx_case *c = arg;
    struct checks *ck = &c->ck;
    struct ctx_case *slots[NTASKS];
    corio_task *ts[NTASKS];
    CHECK_EQ(ck, corio_contextvar_set(c->a, V(9), NULL), 0);
    for (int i = 0; i < NTASKS; i++) {
        slots[i] = c;
        CHECK_EQ(ck, corio_spawn(&ts[i], own_value_task, &slots[i]), 0);
    }
    CHECK_EQ(ck, corio_gather_tasks(ts, NTASKS, 0, NULL, NULL), 0);
    for (int i = 0; i < NTASKS; i++)
        corio_task_unref(ts[i]);
    CHECK_EQ(ck, atomic_load(&c->ok), NTASKS);
    CHECK_PTR(ck, get_of(c->b), NULL);   /* none of theirs leaked here */
    return NULL;
}

static void many_body(unsigned workers) { run_case(workers, many_main); }

static void context_many_tasks_across_workers(void **state)
{
    (void)state;
    on_worker_counts(many_body, 1, 5);
}

/* ---- copy_context and Context.run ----------------------------------------- */

struct run_arg {
    struct ctx_case *c;
    corio_context *ctx;
    corio_contextvar_token inner;
};

static void *in_run(void *arg)
{
    struct run_arg *r = arg;
    struct checks *ck = &r->c->ck;
    CHECK_PTR(ck, get_of(r->c->a), V(1));
    CHECK_EQ(ck, corio_contextvar_set(r->c->a, V(50), &r->inner), 0);
    CHECK_EQ(ck, corio_context_run(r->ctx, in_run, r, NULL), -EINVAL);   /* entered */
    corio_yield();
    return V(77);
}

static void *run_main_fn(void *arg)
{
    struct ctx_case *c = arg;
    struct checks *ck = &c->ck;
    CHECK_EQ(ck, corio_contextvar_set(c->a, V(1), NULL), 0);
    struct run_arg r = {.c = c};
    CHECK_EQ(ck, corio_copy_context(&r.ctx), 0);
    CHECK_EQ(ck, corio_contextvar_set(c->a, V(2), NULL), 0);
    void *v = NULL;
    CHECK_EQ(ck, corio_context_get(r.ctx, c->a, &v), 0);
    CHECK_PTR(ck, v, V(1));
    CHECK_EQ(ck, corio_context_get(r.ctx, c->nodef, &v), -ENOENT);
    CHECK_EQ(ck, corio_context_run(r.ctx, in_run, &r, &v), 0);
    CHECK_PTR(ck, v, V(77));
    CHECK_PTR(ck, get_of(c->a), V(2));          /* the task's own context is back */
    CHECK_EQ(ck, corio_context_get(r.ctx, c->a, &v), 0);
    CHECK_PTR(ck, v, V(50));                    /* the run's set stayed in ctx */
    CHECK_EQ(ck, corio_contextvar_reset(c->a, &r.inner), -EINVAL);   /* other context */
    CHECK_EQ(ck, corio_context_run(NULL, in_run, &r, NULL), -EINVAL);
    corio_context_unref(r.ctx);
    return NULL;
}

static void context_copy_and_run(void **state)
{
    (void)state;
    run_case(1, run_main_fn);
    run_case(2, run_main_fn);
}

/* ---- spawned from outside a task: an empty context ------------------------ */

struct from_cb {
    struct ctx_case *c;
    corio_task *task;
    corio_future *spawned;
};

static void *sees_defaults(void *arg)
{
    struct ctx_case *c = arg;
    CHECK_PTR(&c->ck, get_of(c->a), V(100));
    return NULL;
}

static void spawn_from_callback(void *arg)
{
    struct from_cb *f = arg;
    CHECK_EQ(&f->c->ck, corio_spawn(&f->task, sees_defaults, f->c), 0);
    corio_future_set_result(f->spawned, NULL);
}

static void *from_cb_main(void *arg)
{
    struct ctx_case *c = arg;
    struct from_cb f = {c, NULL, new_future()};
    CHECK_EQ(&c->ck, corio_contextvar_set(c->a, V(1), NULL), 0);
    CHECK_EQ(&c->ck, corio_call_soon(NULL, spawn_from_callback, &f), 0);
    CHECK_EQ(&c->ck, corio_await(f.spawned, NULL), 0);
    CHECK_EQ(&c->ck, corio_await(f.task, NULL), 0);
    corio_task_unref(f.task);
    corio_future_unref(f.spawned);
    return NULL;
}

static void context_spawn_from_callback_starts_empty(void **state)
{
    (void)state;
    run_case(1, from_cb_main);
    run_case(2, from_cb_main);
}

/* ---- a task spawned inside a run, and the context object's lifetime ------ */

struct spawned_in_run {
    struct ctx_case *c;
    corio_context *ctx;
    corio_task *child;
    corio_future *child_set, *go;   /* child -> run; main -> child */
    corio_contextvar_token run_tok; /* made inside the run */
    corio_contextvar_token child_tok;
    bool freed;                     /* the child sets only after the context is freed */
};

/* The child inherits a copy of the run's values; its sets are its own and
 * its tokens belong to it, not to the run. */
static void *sir_child(void *arg)
{
    struct spawned_in_run *s = arg;
    struct checks *ck = &s->c->ck;
    CHECK_PTR(ck, get_of(s->c->a), V(10));    /* the run's value, inherited */
    if (!s->freed) {
        CHECK_EQ(ck, corio_contextvar_reset(s->c->a, &s->run_tok), -EINVAL);   /* the run's */
        CHECK_EQ(ck, corio_contextvar_set(s->c->a, V(20), &s->child_tok), 0);
        CHECK_PTR(ck, get_of(s->c->a), V(20));
    }
    corio_future_set_result(s->child_set, NULL);
    CHECK_EQ(ck, corio_await(s->go, NULL), 0);
    if (s->freed) {
        /* The first set since the spawn: the map still names the run. */
        CHECK_PTR(ck, get_of(s->c->a), V(10));
        CHECK_EQ(ck, corio_contextvar_set(s->c->a, V(20), &s->child_tok), 0);
        CHECK_EQ(ck, corio_contextvar_reset(s->c->a, &s->run_tok), -EINVAL);
    }
    /* Still its own value, whatever became of the run and its context. */
    CHECK_PTR(ck, get_of(s->c->a), V(20));
    CHECK_EQ(ck, corio_contextvar_reset(s->c->a, &s->child_tok), 0);
    CHECK_PTR(ck, get_of(s->c->a), V(10));
    corio_contextvar_token t;
    CHECK_EQ(ck, corio_contextvar_set(s->c->nodef, V(3), &t), 0);
    CHECK_PTR(ck, get_of(s->c->nodef), V(3));
    CHECK_EQ(ck, corio_contextvar_reset(s->c->nodef, &t), 0);
    void *v;
    CHECK_EQ(ck, corio_contextvar_get(s->c->nodef, &v), -ENOENT);
    return NULL;
}

static void *sir_in_run(void *arg)
{
    struct spawned_in_run *s = arg;
    struct checks *ck = &s->c->ck;
    CHECK_EQ(ck, corio_contextvar_set(s->c->a, V(10), &s->run_tok), 0);
    CHECK_EQ(ck, corio_spawn(&s->child, sir_child, s), 0);
    CHECK_EQ(ck, corio_await(s->child_set, NULL), 0);
    /* The child's set did not reach the run's context. */
    CHECK_PTR(ck, get_of(s->c->a), V(10));
    /* Nor may its token be used here: it is the child's. */
    if (!s->freed)
        CHECK_EQ(ck, corio_contextvar_reset(s->c->a, &s->child_tok), -EINVAL);
    /* The run's own token still is the run's. */
    corio_contextvar_token t;
    CHECK_EQ(ck, corio_contextvar_set(s->c->b, V(4), &t), 0);
    CHECK_EQ(ck, corio_contextvar_reset(s->c->b, &t), 0);
    CHECK_PTR(ck, get_of(s->c->b), NULL);
    return NULL;
}

/* While the context object lives: the child's set stays out of it. */
static void *sir_alive_main(void *arg)
{
    struct ctx_case *c = arg;
    struct checks *ck = &c->ck;
    struct spawned_in_run s = {.c = c, .child_set = new_future(), .go = new_future()};
    CHECK_EQ(ck, corio_contextvar_set(c->a, V(1), NULL), 0);
    CHECK_EQ(ck, corio_copy_context(&s.ctx), 0);
    CHECK_EQ(ck, corio_context_run(s.ctx, sir_in_run, &s, NULL), 0);
    CHECK_PTR(ck, get_of(c->a), V(1));
    void *v = NULL;
    CHECK_EQ(ck, corio_context_get(s.ctx, c->a, &v), 0);
    CHECK_PTR(ck, v, V(10));                    /* the run's set, not the child's */
    /* The run is over: its token is not good out here. */
    CHECK_EQ(ck, corio_contextvar_reset(c->a, &s.run_tok), -EINVAL);
    corio_future_set_result(s.go, NULL);
    CHECK_EQ(ck, corio_await(s.child, NULL), 0);
    CHECK_EQ(ck, corio_context_get(s.ctx, c->a, &v), 0);
    CHECK_PTR(ck, v, V(10));
    CHECK_PTR(ck, get_of(c->a), V(1));
    corio_task_unref(s.child);
    corio_future_unref(s.child_set);
    corio_future_unref(s.go);
    corio_context_unref(s.ctx);
    return NULL;
}

/* The context object freed while the child still holds the run's values:
 * the child's set and reset must not touch it (ASan: heap-use-after-free). */
static void *sir_freed_main(void *arg)
{
    struct ctx_case *c = arg;
    struct checks *ck = &c->ck;
    struct spawned_in_run s = {.c = c, .child_set = new_future(), .go = new_future(),
                               .freed = true};
    CHECK_EQ(ck, corio_copy_context(&s.ctx), 0);
    CHECK_EQ(ck, corio_context_run(s.ctx, sir_in_run, &s, NULL), 0);
    corio_context_unref(s.ctx);                 /* the last reference */
    s.ctx = NULL;
    /* Reuse the memory, so a stale read sees another object's fields. */
    corio_context *junk[16];
    for (int i = 0; i < 16; i++)
        CHECK_EQ(ck, corio_copy_context(&junk[i]), 0);
    corio_future_set_result(s.go, NULL);
    CHECK_EQ(ck, corio_await(s.child, NULL), 0);
    for (int i = 0; i < 16; i++)
        corio_context_unref(junk[i]);
    CHECK_PTR(ck, get_of(c->a), V(100));
    corio_task_unref(s.child);
    corio_future_unref(s.child_set);
    corio_future_unref(s.go);
    return NULL;
}

static void sir_body(unsigned workers)
{
    run_case(workers, sir_alive_main);
    run_case(workers, sir_freed_main);
}

static void context_spawned_in_run_outlives_context(void **state)
{
    (void)state;
    on_each_worker_count(sir_body);
}

/* ---- a token's context is the object, not its address --------------------- */

struct tok_ctx {
    struct ctx_case *c;
    corio_contextvar_token tok;
    int reset_rc;
};

static void *tc_set(void *arg)
{
    struct tok_ctx *s = arg;
    CHECK_EQ(&s->c->ck, corio_contextvar_set(s->c->a, V(5), &s->tok), 0);
    return NULL;
}

static void *tc_reset(void *arg)
{
    struct tok_ctx *s = arg;
    s->reset_rc = corio_contextvar_reset(s->c->a, &s->tok);
    return NULL;
}

static void *tok_ctx_main(void *arg)
{
    struct ctx_case *c = arg;
    struct checks *ck = &c->ck;
    struct tok_ctx s = {.c = c};
    corio_context *x, *y;
    void *v = NULL;
    /* Another run of the same context: the token is good (Python: ctx.run(var.reset, tok)). */
    CHECK_EQ(ck, corio_copy_context(&x), 0);
    CHECK_EQ(ck, corio_context_run(x, tc_set, &s, NULL), 0);
    s.reset_rc = 1;
    CHECK_EQ(ck, corio_context_run(x, tc_reset, &s, NULL), 0);
    CHECK_EQ(ck, s.reset_rc, 0);
    CHECK_EQ(ck, corio_context_get(x, c->a, &v), 0);
    CHECK_PTR(ck, v, V(100));
    /* A new context, likely at the freed one's address: another context. */
    CHECK_EQ(ck, corio_context_run(x, tc_set, &s, NULL), 0);
    corio_context_unref(x);
    CHECK_EQ(ck, corio_copy_context(&y), 0);
    s.reset_rc = 1;
    CHECK_EQ(ck, corio_context_run(y, tc_reset, &s, NULL), 0);
    CHECK_EQ(ck, s.reset_rc, -EINVAL);
    CHECK_EQ(ck, corio_context_get(y, c->a, &v), 0);
    CHECK_PTR(ck, v, V(100));
    corio_context_unref(y);
    return NULL;
}

static void context_token_of_a_freed_context(void **state)
{
    (void)state;
    run_case(1, tok_ctx_main);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(context_default_missing_and_reset),
        cmocka_unit_test(context_bad_tokens),
        cmocka_unit_test(context_child_inherits_a_copy),
        cmocka_unit_test(context_many_tasks_across_workers),
        cmocka_unit_test(context_copy_and_run),
        cmocka_unit_test(context_spawn_from_callback_starts_empty),
        cmocka_unit_test(context_spawned_in_run_outlives_context),
        cmocka_unit_test(context_token_of_a_freed_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
