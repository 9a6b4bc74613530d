/* tests/test_task.c - tasks and their cancellation (corio/task.h), checked
 * against asyncio.Task's behaviour.
 *
 * Every case runs its own runtime (testutil.h). Tasks record what they saw
 * in a struct and the case asserts after corio_rt_run() returned: cmocka's
 * asserts longjmp, which must never cross a task's stack. Order-sensitive
 * cases run on one worker, where ready tasks run strictly in the order they
 * became ready; order-free cases run once on one worker, then REPEATS times
 * on 2 and on 4 workers.
 *
 * A task that has to be waiting when it is cancelled first completes a
 * "ready" future that the canceller awaits. The request is then delivered at
 * the task's next await whether or not it has parked there yet, so no case
 * depends on timing. Futures are released only after every task that touches
 * them has ended. Every run asserts that no task outlived it and, unless the
 * case expects a report, that nothing reached the exception handler.
 *
 * The stress cases take --workers N (default 4): cancel_stress_random_points
 * runs on N workers, cancel_racing_return_is_consistent on max(N, 2).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corio/corio.h"

#include "testutil.h"

static unsigned stress_workers = 4;   /* --workers N */

/* ---- cancelling a task from outside ------------------------------------ */

/* How a task that was cancelled from outside ended. */
struct cancel_outcome {
    int cancel_rc;    /* corio_task_cancel()'s */
    int rc;           /* corio_await()'s on the task */
    bool cancelled;   /* corio_task_cancelled() once it ended */
};

/* Spawns @fn(@arg), which completes @ready on its way into the await under
 * test, and waits for that. Then cancels the task, which takes the request
 * at that await whether or not it has parked there yet (see the top of the
 * file), and awaits its end: into @out, and its value into *@value when not
 * NULL. Returns the task, for the caller to unref. */
static corio_task *cancel_when_ready(corio_fn fn, void *arg, corio_future *ready,
                                     struct cancel_outcome *out, void **value)
{
    corio_task *t = NULL;

    corio_spawn(&t, fn, arg);
    corio_await(ready, NULL);
    out->cancel_rc = corio_task_cancel(t, NULL);
    out->rc = corio_await(t, value);
    out->cancelled = corio_task_cancelled(t);
    return t;
}

/* Asserts that the request was taken and the task ended cancelled. */
static void expect_cancelled(const struct cancel_outcome *out)
{
    assert_int_equal(out->cancel_rc, 1);
    assert_int_equal(out->rc, -ECANCELED);
    assert_true(out->cancelled);
}

/* ---- spawn and await --------------------------------------------------- */

#define SPAWN_CHILDREN 64

static void *add_one(void *arg)
{
    return (void *)((uintptr_t)arg + 1);
}

struct spawn_await {
    int spawn_rc[SPAWN_CHILDREN], await_rc[SPAWN_CHILDREN], result_rc[SPAWN_CHILDREN];
    void *value[SPAWN_CHILDREN], *result[SPAWN_CHILDREN];
    bool done[SPAWN_CHILDREN];
};

static void *spawn_await_main(void *arg)
{
    struct spawn_await *s = arg;
    corio_task *t[SPAWN_CHILDREN] = {0};

    for (uintptr_t i = 0; i < SPAWN_CHILDREN; i++)
        s->spawn_rc[i] = corio_spawn(&t[i], add_one, (void *)(i * 10));
    for (int i = 0; i < SPAWN_CHILDREN; i++) {
        if (!t[i])
            continue;
        s->await_rc[i] = corio_await(t[i], &s->value[i]);
        s->done[i] = corio_task_done(t[i]);
        s->result_rc[i] = corio_task_result(t[i], &s->result[i]);
        corio_task_unref(t[i]);
    }
    return (void *)0x5eed;
}

static void spawn_await_on(unsigned workers)
{
    struct spawn_await s;
    void *result = NULL;

    memset(&s, 0xff, sizeof s);
    assert_int_equal(run_on(workers, spawn_await_main, &s, &result), 0);
    assert_ptr_equal(result, (void *)0x5eed);
    for (uintptr_t i = 0; i < SPAWN_CHILDREN; i++) {
        assert_int_equal(s.spawn_rc[i], 0);
        assert_int_equal(s.await_rc[i], 0);
        assert_ptr_equal(s.value[i], (void *)(i * 10 + 1));
        assert_true(s.done[i]);
        assert_int_equal(s.result_rc[i], 0);
        assert_ptr_equal(s.result[i], (void *)(i * 10 + 1));
    }
}

static void task_spawn_and_await_result(void **state)
{
    (void)state;
    on_each_worker_count(spawn_await_on);
}

/* ---- creation order on one worker -------------------------------------- */

struct order_step {
    struct order_log *log;
    const char *word;
    struct order_step *spawn;   /* spawned fire-and-forget by this step */
};

static void *log_step(void *arg)
{
    struct order_step *st = arg;

    log_word(st->log, st->word);
    if (st->spawn)
        corio_spawn(NULL, log_step, st->spawn);
    return NULL;
}

struct spawn_order {
    struct order_log by_yield, by_await, nested;
};

static void *spawn_order_main(void *arg)
{
    struct spawn_order *s = arg;
    struct order_step y[3] = {{&s->by_yield, "a", NULL}, {&s->by_yield, "b", NULL},
                              {&s->by_yield, "c", NULL}};
    struct order_step w[3] = {{&s->by_await, "a", NULL}, {&s->by_await, "b", NULL},
                              {&s->by_await, "c", NULL}};
    struct order_step a1 = {&s->nested, "a1", NULL};
    struct order_step n[2] = {{&s->nested, "a", &a1}, {&s->nested, "b", NULL}};
    corio_task *t[3] = {0};

    /* create_task x3; await asyncio.sleep(0) */
    for (int i = 0; i < 3; i++)
        corio_spawn(&t[i], log_step, &y[i]);
    corio_yield();
    log_word(&s->by_yield, "main");
    for (int i = 0; i < 3; i++) {
        corio_await(t[i], NULL);
        corio_task_unref(t[i]);
    }

    /* create_task x3; await the last one */
    for (int i = 0; i < 3; i++)
        corio_spawn(&t[i], log_step, &w[i]);
    corio_await(t[2], NULL);
    log_word(&s->by_await, "main");
    for (int i = 0; i < 3; i++) {
        corio_await(t[i], NULL);
        corio_task_unref(t[i]);
    }

    /* a task spawned by a running task queues behind those already ready */
    corio_spawn(&t[0], log_step, &n[0]);
    corio_spawn(&t[1], log_step, &n[1]);
    corio_await(t[1], NULL);
    log_word(&s->nested, "main");
    corio_await(t[0], NULL);
    corio_task_unref(t[0]);
    corio_task_unref(t[1]);
    return NULL;
}

static void task_spawn_order_one_worker(void **state)
{
    struct spawn_order s = {0};

    (void)state;
    assert_int_equal(run_on(1, spawn_order_main, &s, NULL), 0);
    assert_string_equal(s.by_yield.buf, "a b c main");
    assert_string_equal(s.by_await.buf, "a b c main");
    assert_string_equal(s.nested.buf, "a b a1 main");
}

/* ---- corio_raise ------------------------------------------------------- */

struct raise_case {
    int after_raise;           /* set if corio_raise() ever returned in a task */
    int io_await, io_exc, io_result;
    char io_msg[64];
    bool io_cancelled, io_done;
    int pos_await, pos_exc;
    bool pos_msg_null;
    int canc_await, canc_exc;
    bool canc_cancelled;
};

static void *raise_io(void *arg)
{
    struct raise_case *s = arg;

    corio_raise(-EIO, "disk %d failed", 3);
    s->after_raise = 1;
    return NULL;
}

static void *raise_positive(void *arg)
{
    struct raise_case *s = arg;

    corio_raise(5, NULL);
    s->after_raise = 1;
    return NULL;
}

static void *raise_cancelled(void *arg)
{
    struct raise_case *s = arg;

    corio_raise(-ECANCELED, "bye");
    s->after_raise = 1;
    return NULL;
}

static void *raise_main(void *arg)
{
    struct raise_case *s = arg;
    corio_task *t = NULL;
    const char *msg = NULL;

    corio_spawn(&t, raise_io, s);
    s->io_await = corio_await(t, NULL);
    s->io_exc = corio_task_exception(t, &msg);
    copy_str(s->io_msg, sizeof s->io_msg, msg);
    s->io_result = corio_task_result(t, NULL);
    s->io_cancelled = corio_task_cancelled(t);
    s->io_done = corio_task_done(t);
    corio_task_unref(t);

    corio_spawn(&t, raise_positive, s);
    s->pos_await = corio_await(t, NULL);
    msg = "unset";
    s->pos_exc = corio_task_exception(t, &msg);
    s->pos_msg_null = msg == NULL;
    corio_task_unref(t);

    corio_spawn(&t, raise_cancelled, s);
    s->canc_await = corio_await(t, NULL);
    s->canc_exc = corio_task_exception(t, NULL);
    s->canc_cancelled = corio_task_cancelled(t);
    corio_task_unref(t);
    return NULL;
}

static void raise_on(unsigned workers)
{
    struct raise_case s = {0};

    assert_int_equal(run_on(workers, raise_main, &s, NULL), 0);
    assert_int_equal(s.after_raise, 0);
    assert_int_equal(s.io_await, -EIO);
    assert_int_equal(s.io_exc, -EIO);
    assert_string_equal(s.io_msg, "disk 3 failed");
    assert_int_equal(s.io_result, -EIO);
    assert_false(s.io_cancelled);
    assert_true(s.io_done);
    assert_int_equal(s.pos_await, -EINVAL);
    assert_int_equal(s.pos_exc, -EINVAL);
    assert_true(s.pos_msg_null);
    assert_int_equal(s.canc_await, -ECANCELED);
    assert_int_equal(s.canc_exc, -ECANCELED);
    assert_true(s.canc_cancelled);
}

static void task_raise_gives_code_and_message(void **state)
{
    (void)state;
    on_each_worker_count(raise_on);
}

/* ---- names and ids ----------------------------------------------------- */

struct names {
    uint64_t id;
    char dflt[64], expect_dflt[64];
    char opt[64], self[64], renamed[64], after_rename[64];
    int set_rc, set_null_rc, set_on_null_rc;
};

static void *copy_own_name(void *arg)
{
    struct names *s = arg;

    copy_str(s->self, sizeof s->self, corio_task_name(corio_current_task()));
    return NULL;
}

static void *names_main(void *arg)
{
    struct names *s = arg;
    corio_task *t = NULL;
    char name[16] = "worker-a";
    corio_spawn_options o = {.name = name};

    corio_spawn(&t, return_arg, NULL);
    s->id = corio_task_id(t);
    snprintf(s->expect_dflt, sizeof s->expect_dflt, "Task-%llu", (unsigned long long)s->id);
    copy_str(s->dflt, sizeof s->dflt, corio_task_name(t));
    corio_await(t, NULL);
    corio_task_unref(t);

    corio_spawn_ex(&t, copy_own_name, s, &o);
    strcpy(name, "clobbered");   /* the option's string was copied */
    copy_str(s->opt, sizeof s->opt, corio_task_name(t));
    corio_await(t, NULL);
    s->set_rc = corio_task_set_name(t, "worker-b");
    copy_str(s->renamed, sizeof s->renamed, corio_task_name(t));
    s->set_null_rc = corio_task_set_name(t, NULL);
    copy_str(s->after_rename, sizeof s->after_rename, corio_task_name(t));
    s->set_on_null_rc = corio_task_set_name(NULL, "x");
    corio_task_unref(t);
    return NULL;
}

static void task_names_default_option_and_rename(void **state)
{
    struct names s = {0};

    (void)state;
    assert_int_equal(run_on(1, names_main, &s, NULL), 0);
    assert_true(s.id > 0);
    assert_string_equal(s.dflt, s.expect_dflt);
    assert_string_equal(s.opt, "worker-a");
    assert_string_equal(s.self, "worker-a");
    assert_int_equal(s.set_rc, 0);
    assert_string_equal(s.renamed, "worker-b");
    assert_int_equal(s.set_null_rc, -EINVAL);
    assert_string_equal(s.after_rename, "worker-b");
    assert_int_equal(s.set_on_null_rc, -EINVAL);
    assert_string_equal(corio_task_name(NULL), "");
    assert_int_equal(corio_task_id(NULL), 0);
}

#define ID_SPAWNERS 8
#define ID_CHILDREN 128

struct ids {
    uint64_t main_id;
    uint64_t spawner[ID_SPAWNERS];
    uint64_t child[ID_SPAWNERS][ID_CHILDREN];
};

struct id_spawner {
    struct ids *ids;
    int idx;
};

static void *id_spawner(void *arg)
{
    struct id_spawner *sp = arg;
    corio_task *t[ID_CHILDREN] = {0};

    sp->ids->spawner[sp->idx] = corio_task_id(corio_current_task());
    for (int i = 0; i < ID_CHILDREN; i++) {
        corio_spawn(&t[i], return_arg, NULL);
        sp->ids->child[sp->idx][i] = corio_task_id(t[i]);
    }
    for (int i = 0; i < ID_CHILDREN; i++) {
        corio_await(t[i], NULL);
        corio_task_unref(t[i]);
    }
    return NULL;
}

static void *ids_main(void *arg)
{
    struct ids *ids = arg;
    struct id_spawner sp[ID_SPAWNERS];
    corio_task *t[ID_SPAWNERS] = {0};

    ids->main_id = corio_task_id(corio_current_task());
    for (int i = 0; i < ID_SPAWNERS; i++) {
        sp[i] = (struct id_spawner){ids, i};
        corio_spawn(&t[i], id_spawner, &sp[i]);
    }
    for (int i = 0; i < ID_SPAWNERS; i++) {
        corio_await(t[i], NULL);
        corio_task_unref(t[i]);
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static uint64_t last_main_id;   /* ids are process-unique: across runs too */

static void ids_on(unsigned workers)
{
    enum { N = 1 + ID_SPAWNERS + ID_SPAWNERS * ID_CHILDREN };
    struct ids *ids = calloc(1, sizeof *ids);
    uint64_t *all = malloc(N * sizeof *all);
    size_t n = 0;

    assert_non_null(ids);
    assert_non_null(all);
    assert_int_equal(run_on(workers, ids_main, ids, NULL), 0);
    assert_true(ids->main_id != last_main_id);
    last_main_id = ids->main_id;
    all[n++] = ids->main_id;
    for (int i = 0; i < ID_SPAWNERS; i++) {
        all[n++] = ids->spawner[i];
        for (int j = 0; j < ID_CHILDREN; j++)
            all[n++] = ids->child[i][j];
    }
    qsort(all, n, sizeof *all, cmp_u64);
    assert_true(all[0] > 0);
    for (size_t i = 1; i < n; i++)
        assert_true(all[i] != all[i - 1]);
    free(all);
    free(ids);
}

static void task_ids_unique(void **state)
{
    (void)state;
    on_worker_counts(ids_on, 1, 3);   /* a thousand tasks a run: few runs suffice */
}

/* ---- current task ------------------------------------------------------ */

struct current {
    corio_task *main_self, *child_self, *child_handle;
    corio_task *in_callback;
    corio_rt *rt_in_callback;
    atomic_int callback_ran;
};

static void *record_current(void *arg)
{
    struct current *s = arg;

    s->child_self = corio_current_task();
    return NULL;
}

static void current_callback(void *arg)
{
    struct current *s = arg;

    s->in_callback = corio_current_task();
    s->rt_in_callback = corio_get_running_rt();
    atomic_store(&s->callback_ran, 1);
}

static void *current_main(void *arg)
{
    struct current *s = arg;
    corio_task *t = NULL;

    s->main_self = corio_current_task();
    corio_spawn(&t, record_current, s);
    s->child_handle = t;
    corio_await(t, NULL);
    corio_task_unref(t);
    corio_call_soon(NULL, current_callback, s);
    for (int i = 0; i < 100000 && !atomic_load(&s->callback_ran); i++)
        corio_yield();
    return NULL;
}

static void current_on(unsigned workers)
{
    struct current s = {.in_callback = (corio_task *)&s};
    corio_rt_options o = {.workers = workers};
    corio_rt *rt = NULL;
    corio_task *main_task = NULL;

    assert_null(corio_current_task());
    assert_int_equal(corio_rt_create(&rt, &o), 0);
    assert_int_equal(corio_rt_run(rt, current_main, &s, &main_task), 0);
    assert_null(corio_current_task());
    assert_ptr_equal(s.main_self, main_task);
    assert_non_null(s.child_self);
    assert_ptr_equal(s.child_self, s.child_handle);
    assert_int_equal(atomic_load(&s.callback_ran), 1);
    assert_null(s.in_callback);
    assert_ptr_equal(s.rt_in_callback, rt);
    corio_task_unref(main_task);
    assert_int_equal(corio_rt_alive_tasks(rt), 0);
    assert_int_equal(corio_rt_destroy(rt), 0);
}

static void task_current_task_inside_and_outside(void **state)
{
    (void)state;
    on_each_worker_count(current_on);
}

/* ---- all_tasks --------------------------------------------------------- */

#define LISTED_CHILDREN 3

struct all_tasks {
    corio_future *gate;
    corio_task *child[LISTED_CHILDREN];
    int n_waiting, n_after, n_callback, null_rc;
    uint64_t alive_waiting;
    int unknown, runner_listed, done_listed, main_listed, children_listed;
};

static void *await_gate(void *arg)
{
    corio_future *gate = arg;

    return (void *)(intptr_t)corio_await(gate, NULL);
}

static void all_tasks_callback(void *arg)
{
    struct all_tasks *s = arg;
    corio_task **list = NULL;

    s->n_callback = corio_all_tasks(&list);
    if (s->n_callback >= 0)
        corio_task_list_free(list, s->n_callback);
}

static void *all_tasks_main(void *arg)
{
    struct all_tasks *s = arg;
    corio_task *self = corio_current_task(), **list = NULL;

    s->gate = new_future();
    for (int i = 0; i < LISTED_CHILDREN; i++)
        corio_spawn(&s->child[i], await_gate, s->gate);
    corio_yield();   /* the children run to their await */
    s->alive_waiting = corio_rt_alive_tasks(corio_get_running_rt());
    s->n_waiting = corio_all_tasks(&list);
    for (int i = 0; i < s->n_waiting; i++) {
        bool known = list[i] == self;
        s->main_listed += list[i] == self;
        for (int j = 0; j < LISTED_CHILDREN; j++) {
            known |= list[i] == s->child[j];
            s->children_listed += list[i] == s->child[j];
        }
        s->unknown += !known;
        s->runner_listed += strcmp(corio_task_name(list[i]), "corio-runner") == 0;
        s->done_listed += corio_task_done(list[i]);
    }
    if (s->n_waiting >= 0)
        corio_task_list_free(list, s->n_waiting);
    corio_call_soon(NULL, all_tasks_callback, s);
    corio_yield();   /* the callback runs */

    corio_future_set_result(s->gate, NULL);
    for (int i = 0; i < LISTED_CHILDREN; i++) {
        corio_await(s->child[i], NULL);
        corio_task_unref(s->child[i]);
    }
    s->n_after = corio_all_tasks(&list);
    if (s->n_after >= 0)
        corio_task_list_free(list, s->n_after);
    s->null_rc = corio_all_tasks(NULL);
    corio_future_unref(s->gate);
    return NULL;
}

static void task_all_tasks_lists_alive_tasks(void **state)
{
    struct all_tasks s = {0};

    (void)state;
    assert_int_equal(run_on(1, all_tasks_main, &s, NULL), 0);
    assert_int_equal(s.n_waiting, 1 + LISTED_CHILDREN);
    assert_int_equal(s.alive_waiting, 1 + LISTED_CHILDREN);
    assert_int_equal(s.main_listed, 1);
    assert_int_equal(s.children_listed, LISTED_CHILDREN);
    assert_int_equal(s.unknown, 0);
    assert_int_equal(s.runner_listed, 0);
    assert_int_equal(s.done_listed, 0);
    assert_int_equal(s.n_callback, 1 + LISTED_CHILDREN);
    assert_int_equal(s.n_after, 1);
    assert_int_equal(s.null_rc, -EINVAL);
    corio_task_list_free(NULL, 0);   /* ignored */
}

/* ---- yield ------------------------------------------------------------- */

struct yielder {
    struct order_log *log;
    const char *words[3];
    int rc[2];
};

static void *yield_between_words(void *arg)
{
    struct yielder *y = arg;

    log_word(y->log, y->words[0]);
    y->rc[0] = corio_yield();
    log_word(y->log, y->words[1]);
    y->rc[1] = corio_yield();
    log_word(y->log, y->words[2]);
    return NULL;
}

struct interleave {
    struct order_log log;
    struct yielder a, b;
};

static void *interleave_main(void *arg)
{
    struct interleave *s = arg;
    corio_task *ta = NULL, *tb = NULL;

    s->a = (struct yielder){&s->log, {"1", "3", "5"}, {-1, -1}};
    s->b = (struct yielder){&s->log, {"2", "4", "6"}, {-1, -1}};
    corio_spawn(&ta, yield_between_words, &s->a);
    corio_spawn(&tb, yield_between_words, &s->b);
    corio_await(ta, NULL);
    corio_await(tb, NULL);
    corio_task_unref(ta);
    corio_task_unref(tb);
    return NULL;
}

static void task_yield_interleaves_one_worker(void **state)
{
    struct interleave s = {0};

    (void)state;
    assert_int_equal(run_on(1, interleave_main, &s, NULL), 0);
    assert_string_equal(s.log.buf, "1 2 3 4 5 6");
    assert_int_equal(s.a.rc[0], 0);
    assert_int_equal(s.a.rc[1], 0);
    assert_int_equal(s.b.rc[0], 0);
    assert_int_equal(s.b.rc[1], 0);
}

/* ---- stacks ------------------------------------------------------------ */

#define DEEP_BYTES (200u * 1024)

/* Touches every page of a 200 KiB frame. */
static void *deep_stack(void *arg)
{
    volatile unsigned char buf[DEEP_BYTES];
    uintptr_t sum = 0;

    (void)arg;
    for (size_t i = 0; i < sizeof buf; i += 64)
        buf[i] = (unsigned char)i;
    for (size_t i = 0; i < sizeof buf; i += 64)
        sum += buf[i];
    return (void *)sum;
}

static uintptr_t deep_stack_expected(void)
{
    uintptr_t sum = 0;

    for (size_t i = 0; i < DEEP_BYTES; i += 64)
        sum += (unsigned char)i;
    return sum;
}

struct stack_sizes {
    int big_spawn, big_await;
    void *big_value;
    int min_spawn, min_await;
    int too_small, too_big, zero_spawn;
};

static void *stack_sizes_main(void *arg)
{
    struct stack_sizes *s = arg;
    corio_task *t = NULL;
    corio_spawn_options o = {.stack_size = 1u << 20};

    s->big_spawn = corio_spawn_ex(&t, deep_stack, NULL, &o);
    s->big_await = s->big_spawn ? s->big_spawn : corio_await(t, &s->big_value);
    corio_task_unref(t);

    t = NULL;
    o.stack_size = 16u * 1024;
    s->min_spawn = corio_spawn_ex(&t, return_arg, NULL, &o);
    s->min_await = s->min_spawn ? s->min_spawn : corio_await(t, NULL);
    corio_task_unref(t);

    t = NULL;
    o.stack_size = 1024;
    s->too_small = corio_spawn_ex(&t, return_arg, NULL, &o);
    corio_task_unref(t);
    t = NULL;
    o.stack_size = (size_t)2 << 30;
    s->too_big = corio_spawn_ex(&t, return_arg, NULL, &o);
    corio_task_unref(t);
    t = NULL;
    o.stack_size = 0;   /* the runtime's default */
    s->zero_spawn = corio_spawn_ex(&t, return_arg, NULL, &o);
    if (t)
        corio_await(t, NULL);
    corio_task_unref(t);
    return NULL;
}

/* The runtime's stack_size option: a default big enough for deep_stack. */
static void *default_deep_main(void *arg)
{
    corio_task *t = NULL;
    void *v = NULL;

    (void)arg;
    if (corio_spawn(&t, deep_stack, NULL) < 0)
        return NULL;
    int rc = corio_await(t, &v);
    corio_task_unref(t);
    return rc == 0 ? v : NULL;
}

static void task_stack_size_option_honoured(void **state)
{
    struct stack_sizes s = {0};
    corio_rt_options o = {.workers = 1, .stack_size = 1u << 20};
    struct reports reps;
    void *v = NULL;
    corio_rt *rt = NULL;

    (void)state;
    assert_int_equal(run_on(1, stack_sizes_main, &s, NULL), 0);
    assert_int_equal(s.big_spawn, 0);
    assert_int_equal(s.big_await, 0);
    assert_int_equal((uintptr_t)s.big_value, deep_stack_expected());
    assert_int_equal(s.min_spawn, 0);
    assert_int_equal(s.min_await, 0);
    assert_int_equal(s.too_small, -EINVAL);
    assert_int_equal(s.too_big, -EINVAL);
    assert_int_equal(s.zero_spawn, 0);

    assert_int_equal(run_with(&o, &reps, default_deep_main, NULL, &v), 0);
    expect_reports(&reps, 0);
    assert_int_equal((uintptr_t)v, deep_stack_expected());

    o.stack_size = 1024;
    assert_int_equal(corio_rt_create(&rt, &o), -EINVAL);
}

#define BUDGET_MAX_TASKS 64

struct budget {
    int oversized;             /* a stack larger than the whole budget */
    int first_fail;            /* spawn index that failed */
    int fail_rc;
    int await_bad;
    int again_spawn, again_await;
    void *again_value;
};

static void *budget_main(void *arg)
{
    struct budget *s = arg;
    corio_future *gate = new_future();
    corio_task *t[BUDGET_MAX_TASKS] = {0}, *again = NULL, *big = NULL;
    corio_spawn_options o = {.stack_size = 2u << 20};

    s->oversized = corio_spawn_ex(&big, return_arg, NULL, &o);
    corio_task_unref(big);
    s->first_fail = -1;
    for (int i = 0; i < BUDGET_MAX_TASKS; i++) {
        int rc = corio_spawn(&t[i], await_gate, gate);
        if (rc < 0) {
            t[i] = NULL;
            s->first_fail = i;
            s->fail_rc = rc;
            break;
        }
    }
    corio_yield();   /* the runtime keeps running */
    corio_future_set_result(gate, NULL);
    for (int i = 0; i < BUDGET_MAX_TASKS && t[i]; i++) {
        void *v = (void *)1;
        s->await_bad += corio_await(t[i], &v) != 0 || v != NULL;
        corio_task_unref(t[i]);
    }
    /* Every child ended, so their stacks are back in the budget. */
    s->again_spawn = corio_spawn(&again, add_one, (void *)1);
    if (again)
        s->again_await = corio_await(again, &s->again_value);
    corio_task_unref(again);
    corio_future_unref(gate);
    return NULL;
}

static void task_stack_budget_enomem_then_recovers(void **state)
{
    struct budget s = {0};
    corio_rt_options o = {.workers = 1, .max_stack_memory = 1u << 20};
    struct reports reps;

    (void)state;
    assert_int_equal(run_with(&o, &reps, budget_main, &s, NULL), 0);
    expect_reports(&reps, 0);
    assert_int_equal(s.oversized, -ENOMEM);
    /* 1 MiB holds at most 16 default (64 KiB) stacks, and at least one
     * besides main's. */
    assert_true(s.first_fail >= 1);
    assert_true(s.first_fail <= 16);
    assert_int_equal(s.fail_rc, -ENOMEM);
    assert_int_equal(s.await_bad, 0);
    assert_int_equal(s.again_spawn, 0);
    assert_int_equal(s.again_await, 0);
    assert_ptr_equal(s.again_value, (void *)2);
}

/* ---- cancellation at each kind of await -------------------------------- */

/* Cancelled while awaiting a plain future. */
struct cancel_future {
    corio_future *ready, *target;
    const char *msg;           /* the cancel message, or NULL */
    bool via_future_api;       /* cancel through corio_future_cancel() */
    int ran, await_rc, cancel_rc, child_rc, child_exc, fut_exc, target_exc;
    bool child_cancelled, target_cancelled;
    char child_msg[64], fut_msg[64], target_msg[64];
};

static void *await_target(void *arg)
{
    struct cancel_future *s = arg;

    s->ran = 1;
    corio_future_set_result(s->ready, NULL);
    s->await_rc = corio_await(s->target, NULL);
    return (void *)1;
}

static void *cancel_future_main(void *arg)
{
    struct cancel_future *s = arg;
    corio_task *t = NULL;
    const char *m = NULL;

    s->ready = new_future();
    s->target = new_future();
    corio_spawn(&t, await_target, s);
    corio_await(s->ready, NULL);
    s->cancel_rc = s->via_future_api ? corio_future_cancel(corio_task_future(t), s->msg)
                                     : corio_task_cancel(t, s->msg);
    s->child_rc = corio_await(t, NULL);
    s->child_cancelled = corio_task_cancelled(t);
    s->target_cancelled = corio_future_cancelled(s->target);
    s->child_exc = corio_task_exception(t, &m);
    copy_str(s->child_msg, sizeof s->child_msg, m);
    m = NULL;
    s->fut_exc = corio_future_exception(corio_task_future(t), &m);
    copy_str(s->fut_msg, sizeof s->fut_msg, m);
    m = NULL;
    s->target_exc = corio_future_exception(s->target, &m);
    copy_str(s->target_msg, sizeof s->target_msg, m);
    corio_task_unref(t);
    corio_future_unref(s->ready);
    corio_future_unref(s->target);
    return NULL;
}

static void check_cancel_future(const struct cancel_future *s)
{
    assert_int_equal(s->ran, 1);
    assert_int_equal(s->cancel_rc, 1);
    assert_int_equal(s->await_rc, -ECANCELED);
    assert_true(s->target_cancelled);      /* what it awaited is cancelled too */
    assert_int_equal(s->child_rc, -ECANCELED);
    assert_true(s->child_cancelled);
    assert_int_equal(s->child_exc, -ECANCELED);
    assert_int_equal(s->fut_exc, -ECANCELED);
    assert_int_equal(s->target_exc, -ECANCELED);
}

static void cancel_future_on(unsigned workers)
{
    struct cancel_future s = {0};

    assert_int_equal(run_on(workers, cancel_future_main, &s, NULL), 0);
    check_cancel_future(&s);
}

static void cancel_at_await_future_cancels_future(void **state)
{
    (void)state;
    on_each_worker_count(cancel_future_on);
}

static void cancel_message_on(unsigned workers)
{
    for (int api = 0; api < 2; api++) {
        struct cancel_future s = {.msg = api ? "via future" : "stop now",
                                  .via_future_api = api};

        assert_int_equal(run_on(workers, cancel_future_main, &s, NULL), 0);
        check_cancel_future(&s);
        assert_string_equal(s.child_msg, s.msg);
        assert_string_equal(s.fut_msg, s.msg);
        assert_string_equal(s.target_msg, s.msg);
    }
}

static void cancel_message_delivered(void **state)
{
    (void)state;
    on_each_worker_count(cancel_message_on);
}

/* Cancelled while awaiting another task: the child is cancelled, and the
 * parent resumes only after the child ended (cleanup awaits included). */
struct cancel_task {
    corio_future *ready, *gate;
    corio_task *child;
    int child_await_rc, cleanup_rc[2];
    atomic_int child_cleaned;
    int parent_await_rc;
    struct cancel_outcome parent;
    bool child_done_at_resume, child_cleaned_at_resume, child_cancelled;
};

static void *cleanup_child(void *arg)
{
    struct cancel_task *s = arg;

    corio_future_set_result(s->ready, NULL);
    s->child_await_rc = corio_await(s->gate, NULL);
    s->cleanup_rc[0] = corio_yield();
    s->cleanup_rc[1] = corio_yield();
    atomic_store(&s->child_cleaned, 1);
    return NULL;
}

static void *awaiting_parent(void *arg)
{
    struct cancel_task *s = arg;

    if (corio_spawn(&s->child, cleanup_child, s) < 0)
        return NULL;
    s->parent_await_rc = corio_await(s->child, NULL);
    s->child_done_at_resume = corio_task_done(s->child);
    s->child_cleaned_at_resume = atomic_load(&s->child_cleaned);
    return NULL;
}

static void *cancel_task_main(void *arg)
{
    struct cancel_task *s = arg;
    corio_task *parent = NULL;

    s->ready = new_future();
    s->gate = new_future();
    parent = cancel_when_ready(awaiting_parent, s, s->ready, &s->parent, NULL);
    s->child_cancelled = corio_task_cancelled(s->child);
    corio_task_unref(parent);
    corio_task_unref(s->child);
    corio_future_unref(s->ready);
    corio_future_unref(s->gate);
    return NULL;
}

static void cancel_task_on(unsigned workers)
{
    struct cancel_task s = {0};

    assert_int_equal(run_on(workers, cancel_task_main, &s, NULL), 0);
    expect_cancelled(&s.parent);
    assert_int_equal(s.child_await_rc, -ECANCELED);
    assert_int_equal(s.cleanup_rc[0], 0);
    assert_int_equal(s.cleanup_rc[1], 0);
    assert_int_equal(s.parent_await_rc, -ECANCELED);
    assert_true(s.child_done_at_resume);
    assert_true(s.child_cleaned_at_resume);
    assert_true(s.child_cancelled);
}

static void cancel_at_await_task_cancels_child(void **state)
{
    (void)state;
    on_each_worker_count(cancel_task_on);
}

/* Cancelled at corio_yield(). */
struct cancel_yield {
    corio_future *ready;
    long yields;
    int yield_rc;
    struct cancel_outcome child;
};

#define YIELD_LIMIT 1000000   /* a bound, so a lost cancellation fails instead of hanging */

static void *yield_forever(void *arg)
{
    struct cancel_yield *s = arg;
    int rc = 0;

    corio_future_set_result(s->ready, NULL);
    for (s->yields = 0; s->yields < YIELD_LIMIT; s->yields++)
        if ((rc = corio_yield()) != 0)
            break;
    s->yield_rc = rc;
    return NULL;
}

static void *cancel_yield_main(void *arg)
{
    struct cancel_yield *s = arg;
    corio_task *t = NULL;

    s->ready = new_future();
    t = cancel_when_ready(yield_forever, s, s->ready, &s->child, NULL);
    corio_task_unref(t);
    corio_future_unref(s->ready);
    return NULL;
}

static void cancel_yield_on(unsigned workers)
{
    struct cancel_yield s = {0};

    assert_int_equal(run_on(workers, cancel_yield_main, &s, NULL), 0);
    expect_cancelled(&s.child);
    assert_int_equal(s.yield_rc, -ECANCELED);
    assert_true(s.yields < YIELD_LIMIT);
}

static void cancel_at_yield(void **state)
{
    (void)state;
    on_each_worker_count(cancel_yield_on);
}

/* Cancelled in corio_gather(): every child not done is cancelled and waited
 * for. */
struct cancel_gather {
    corio_future *ready, *gate;
    int gather_rc, errors[2];
    bool kids_done[2], kids_cancelled[2];
    struct cancel_outcome child;
};

static void *gathering_child(void *arg)
{
    struct cancel_gather *s = arg;
    corio_task *kids[2] = {0};

    corio_spawn(&kids[0], await_gate, s->gate);
    corio_spawn(&kids[1], await_gate, s->gate);
    corio_future_set_result(s->ready, NULL);
    s->errors[0] = s->errors[1] = 1;
    s->gather_rc = corio_gather_tasks(kids, 2, 0, NULL, s->errors);
    for (int i = 0; i < 2; i++) {
        s->kids_done[i] = corio_task_done(kids[i]);
        s->kids_cancelled[i] = corio_task_cancelled(kids[i]);
        corio_task_unref(kids[i]);
    }
    return NULL;
}

static void *cancel_gather_main(void *arg)
{
    struct cancel_gather *s = arg;
    corio_task *t = NULL;

    s->ready = new_future();
    s->gate = new_future();
    t = cancel_when_ready(gathering_child, s, s->ready, &s->child, NULL);
    corio_task_unref(t);
    corio_future_unref(s->ready);
    corio_future_unref(s->gate);
    return NULL;
}

static void cancel_gather_on(unsigned workers)
{
    struct cancel_gather s = {0};

    assert_int_equal(run_on(workers, cancel_gather_main, &s, NULL), 0);
    expect_cancelled(&s.child);
    assert_int_equal(s.gather_rc, -ECANCELED);
    for (int i = 0; i < 2; i++) {
        assert_true(s.kids_done[i]);
        assert_true(s.kids_cancelled[i]);
        assert_int_equal(s.errors[i], -ECANCELED);
    }
}

static void cancel_at_gather_cancels_children(void **state)
{
    (void)state;
    on_each_worker_count(cancel_gather_on);
}

/* Cancelled in corio_wait(): the waited-for futures keep running. */
struct cancel_wait {
    corio_future *ready, *gate, *plain;
    corio_task *kid;
    int wait_rc, kid_rc, kid_cancelling;
    bool plain_done_in_child, kid_done_in_child, plain_done_after, kid_done_after;
    bool kid_cancelled;
    struct cancel_outcome child;
};

static void *waiting_child(void *arg)
{
    struct cancel_wait *s = arg;
    corio_future *fs[2] = {s->plain, corio_task_future(s->kid)};

    corio_future_set_result(s->ready, NULL);
    s->wait_rc = corio_wait(fs, 2, CORIO_FIRST_COMPLETED, NULL, NULL, NULL, NULL);
    s->plain_done_in_child = corio_future_done(s->plain);
    s->kid_done_in_child = corio_task_done(s->kid);
    return NULL;
}

static void *cancel_wait_main(void *arg)
{
    struct cancel_wait *s = arg;
    corio_task *t = NULL;

    s->ready = new_future();
    s->gate = new_future();
    s->plain = new_future();
    corio_spawn(&s->kid, await_gate, s->gate);
    t = cancel_when_ready(waiting_child, s, s->ready, &s->child, NULL);
    s->plain_done_after = corio_future_done(s->plain);
    s->kid_done_after = corio_task_done(s->kid);
    s->kid_cancelling = corio_task_cancelling(s->kid);
    corio_future_set_result(s->gate, NULL);
    s->kid_rc = corio_await(s->kid, NULL);
    s->kid_cancelled = corio_task_cancelled(s->kid);
    corio_task_unref(t);
    corio_task_unref(s->kid);
    corio_future_unref(s->ready);
    corio_future_unref(s->gate);
    corio_future_unref(s->plain);
    return NULL;
}

static void cancel_wait_on(unsigned workers)
{
    struct cancel_wait s = {0};

    assert_int_equal(run_on(workers, cancel_wait_main, &s, NULL), 0);
    expect_cancelled(&s.child);
    assert_int_equal(s.wait_rc, -ECANCELED);
    assert_false(s.plain_done_in_child);
    assert_false(s.kid_done_in_child);
    assert_false(s.plain_done_after);
    assert_false(s.kid_done_after);
    assert_int_equal(s.kid_cancelling, 0);
    assert_int_equal(s.kid_rc, 0);
    assert_false(s.kid_cancelled);
}

static void cancel_at_wait_leaves_futures_running(void **state)
{
    (void)state;
    on_each_worker_count(cancel_wait_on);
}

/* Cancelled in corio_as_completed_next(): the futures keep running and the
 * iteration may continue once the task suppressed the cancellation. */
struct cancel_as_completed {
    corio_future *ready, *resumed, *gate, *plain;
    corio_task *kid;
    int start_rc, next1_rc, uncancel_rc, next2_rc, next3_rc, next4_rc;
    corio_future *second, *third;
    bool plain_done_at_cancel, kid_done_at_cancel;
    int cancel_rc, child_rc, kid_rc;
    void *child_value;
    bool child_cancelled, kid_cancelled;
};

static void *as_completed_child(void *arg)
{
    struct cancel_as_completed *s = arg;
    corio_future *fs[2] = {s->plain, corio_task_future(s->kid)}, *f = NULL;
    corio_as_completed *it = NULL;

    s->start_rc = corio_as_completed_start(&it, fs, 2);
    if (s->start_rc < 0) {
        corio_future_set_result(s->ready, NULL);
        return NULL;
    }
    corio_future_set_result(s->ready, NULL);
    s->next1_rc = corio_as_completed_next(it, &f);
    s->plain_done_at_cancel = corio_future_done(s->plain);
    s->kid_done_at_cancel = corio_task_done(s->kid);
    s->uncancel_rc = corio_task_uncancel(corio_current_task());
    corio_future_set_result(s->resumed, NULL);
    s->next2_rc = corio_as_completed_next(it, &s->second);
    s->next3_rc = corio_as_completed_next(it, &s->third);
    s->next4_rc = corio_as_completed_next(it, &f);
    corio_as_completed_destroy(it);
    return (void *)42;
}

static void *cancel_as_completed_main(void *arg)
{
    struct cancel_as_completed *s = arg;
    corio_task *t = NULL;

    s->ready = new_future();
    s->resumed = new_future();
    s->gate = new_future();
    s->plain = new_future();
    corio_spawn(&s->kid, await_gate, s->gate);
    corio_spawn(&t, as_completed_child, s);
    corio_await(s->ready, NULL);
    s->cancel_rc = corio_task_cancel(t, NULL);
    corio_await(s->resumed, NULL);
    corio_future_set_result(s->plain, NULL);   /* completes first */
    corio_await(s->plain, NULL);
    corio_future_set_result(s->gate, NULL);
    s->kid_rc = corio_await(s->kid, NULL);
    s->kid_cancelled = corio_task_cancelled(s->kid);
    s->child_rc = corio_await(t, &s->child_value);
    s->child_cancelled = corio_task_cancelled(t);
    corio_task_unref(t);
    corio_task_unref(s->kid);
    corio_future_unref(s->ready);
    corio_future_unref(s->resumed);
    corio_future_unref(s->gate);
    corio_future_unref(s->plain);
    return NULL;
}

static void cancel_as_completed_on(unsigned workers)
{
    struct cancel_as_completed s = {0};

    assert_int_equal(run_on(workers, cancel_as_completed_main, &s, NULL), 0);
    assert_int_equal(s.start_rc, 0);
    assert_int_equal(s.cancel_rc, 1);
    assert_int_equal(s.next1_rc, -ECANCELED);
    assert_false(s.plain_done_at_cancel);
    assert_false(s.kid_done_at_cancel);
    assert_int_equal(s.uncancel_rc, 0);
    assert_int_equal(s.next2_rc, 0);
    assert_ptr_equal(s.second, s.plain);
    assert_int_equal(s.next3_rc, 0);
    assert_ptr_equal(s.third, corio_task_future(s.kid));
    assert_int_equal(s.next4_rc, -ENOENT);
    assert_int_equal(s.kid_rc, 0);
    assert_false(s.kid_cancelled);
    assert_int_equal(s.child_rc, 0);
    assert_ptr_equal(s.child_value, (void *)42);
    assert_false(s.child_cancelled);
}

static void cancel_at_as_completed_next(void **state)
{
    (void)state;
    on_each_worker_count(cancel_as_completed_on);
}

/* Cancelled while awaiting a shield: -ECANCELED at once, the inner task
 * keeps running and ends normally. */
struct cancel_shield {
    corio_future *ready, *gate;
    corio_task *inner;
    int shield_rc, await_rc, inner_cancelling_in_child, inner_rc;
    bool inner_done_in_child, outer_cancelled, inner_done_after, inner_cancelled;
    struct cancel_outcome child;
    void *inner_value;
};

static void *gate_then_seven(void *arg)
{
    corio_future *gate = arg;

    return corio_await(gate, NULL) == 0 ? (void *)7 : NULL;
}

static void *shielding_child(void *arg)
{
    struct cancel_shield *s = arg;
    corio_future *outer = NULL;

    s->shield_rc = corio_shield(corio_task_future(s->inner), &outer);
    corio_future_set_result(s->ready, NULL);
    if (s->shield_rc < 0)
        return NULL;
    s->await_rc = corio_await(outer, NULL);
    s->inner_done_in_child = corio_task_done(s->inner);
    s->inner_cancelling_in_child = corio_task_cancelling(s->inner);
    s->outer_cancelled = corio_future_cancelled(outer);
    corio_future_unref(outer);
    return NULL;
}

static void *cancel_shield_main(void *arg)
{
    struct cancel_shield *s = arg;
    corio_task *t = NULL;

    s->ready = new_future();
    s->gate = new_future();
    corio_spawn(&s->inner, gate_then_seven, s->gate);
    t = cancel_when_ready(shielding_child, s, s->ready, &s->child, NULL);
    s->inner_done_after = corio_task_done(s->inner);
    corio_future_set_result(s->gate, NULL);
    s->inner_rc = corio_await(s->inner, &s->inner_value);
    s->inner_cancelled = corio_task_cancelled(s->inner);
    corio_task_unref(t);
    corio_task_unref(s->inner);
    corio_future_unref(s->ready);
    corio_future_unref(s->gate);
    return NULL;
}

static void cancel_shield_on(unsigned workers)
{
    struct cancel_shield s = {0};

    assert_int_equal(run_on(workers, cancel_shield_main, &s, NULL), 0);
    assert_int_equal(s.shield_rc, 0);
    expect_cancelled(&s.child);
    assert_int_equal(s.await_rc, -ECANCELED);
    assert_false(s.inner_done_in_child);
    assert_int_equal(s.inner_cancelling_in_child, 0);
    assert_true(s.outer_cancelled);
    assert_false(s.inner_done_after);
    assert_int_equal(s.inner_rc, 0);
    assert_ptr_equal(s.inner_value, (void *)7);
    assert_false(s.inner_cancelled);
}

static void cancel_at_shield_leaves_inner_running(void **state)
{
    (void)state;
    on_each_worker_count(cancel_shield_on);
}

/* ---- cancellation: requests and outcomes ------------------------------- */

struct never_ran {
    int ran, cancel_rc, await_rc, exc;
    bool cancelled;
    char msg[64];
};

static void *mark_ran(void *arg)
{
    struct never_ran *s = arg;

    s->ran = 1;
    return NULL;
}

static void *never_ran_main(void *arg)
{
    struct never_ran *s = arg;
    corio_task *t = NULL;
    const char *m = NULL;

    corio_spawn(&t, mark_ran, s);
    s->cancel_rc = corio_task_cancel(t, "early");
    s->await_rc = corio_await(t, NULL);
    s->cancelled = corio_task_cancelled(t);
    s->exc = corio_task_exception(t, &m);
    copy_str(s->msg, sizeof s->msg, m);
    corio_task_unref(t);
    return NULL;
}

static void cancel_before_first_run_skips_body(void **state)
{
    struct never_ran s = {0};

    (void)state;
    assert_int_equal(run_on(1, never_ran_main, &s, NULL), 0);
    assert_int_equal(s.cancel_rc, 1);
    assert_int_equal(s.ran, 0);
    assert_int_equal(s.await_rc, -ECANCELED);
    assert_true(s.cancelled);
    assert_int_equal(s.exc, -ECANCELED);
    assert_string_equal(s.msg, "early");
}

/* cancelling() counts requests; uncancel() takes one back. One worker: the
 * requests must all be made before the task runs again. */
struct counting {
    corio_future *target;
    int c[3], n_after_cancels, u[2], n_after_uncancels;
    int await_rc, seen_by_child, child_rc, late_uncancel[2];
    bool child_cancelled;
    int null_cancel, null_uncancel, null_cancelling;
};

static void *count_child(void *arg)
{
    struct counting *s = arg;

    s->await_rc = corio_await(s->target, NULL);
    s->seen_by_child = corio_task_cancelling(corio_current_task());
    return NULL;
}

static void *counting_main(void *arg)
{
    struct counting *s = arg;
    corio_task *t = NULL;

    s->target = new_future();
    corio_spawn(&t, count_child, s);
    corio_yield();   /* the child parks on target */
    for (int i = 0; i < 3; i++)
        s->c[i] = corio_task_cancel(t, NULL);
    s->n_after_cancels = corio_task_cancelling(t);
    s->u[0] = corio_task_uncancel(t);
    s->u[1] = corio_task_uncancel(t);
    s->n_after_uncancels = corio_task_cancelling(t);
    s->child_rc = corio_await(t, NULL);
    s->child_cancelled = corio_task_cancelled(t);
    s->late_uncancel[0] = corio_task_uncancel(t);
    s->late_uncancel[1] = corio_task_uncancel(t);   /* never below zero */
    s->null_cancel = corio_task_cancel(NULL, NULL);
    s->null_uncancel = corio_task_uncancel(NULL);
    s->null_cancelling = corio_task_cancelling(NULL);
    corio_task_unref(t);
    corio_future_unref(s->target);
    return NULL;
}

static void cancel_cancelling_counts_and_uncancel_decrements(void **state)
{
    struct counting s = {0};

    (void)state;
    assert_int_equal(run_on(1, counting_main, &s, NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s.c[i], 1);
    assert_int_equal(s.n_after_cancels, 3);
    assert_int_equal(s.u[0], 2);
    assert_int_equal(s.u[1], 1);
    assert_int_equal(s.n_after_uncancels, 1);
    assert_int_equal(s.await_rc, -ECANCELED);
    assert_int_equal(s.seen_by_child, 1);
    assert_int_equal(s.child_rc, -ECANCELED);
    assert_true(s.child_cancelled);
    assert_int_equal(s.late_uncancel[0], 0);
    assert_int_equal(s.late_uncancel[1], 0);
    assert_int_equal(s.null_cancel, -EINVAL);
    assert_int_equal(s.null_uncancel, -EINVAL);
    assert_int_equal(s.null_cancelling, 0);
}

/* asyncio 3.11+: uncancel() back to zero withdraws a request that was not
 * delivered yet. */
struct withdrawn {
    corio_future *target;
    int cancel_rc, uncancel_rc, await_rc, child_rc;
    bool done_after_yield, child_cancelled;
    void *value;
};

static void *withdrawn_child(void *arg)
{
    struct withdrawn *s = arg;
    void *v = NULL;

    s->await_rc = corio_await(s->target, &v);
    return v;
}

static void *withdrawn_main(void *arg)
{
    struct withdrawn *s = arg;
    corio_task *t = NULL;

    s->target = new_future();
    corio_spawn(&t, withdrawn_child, s);
    corio_yield();   /* the child parks on target */
    s->cancel_rc = corio_task_cancel(t, NULL);
    s->uncancel_rc = corio_task_uncancel(t);
    corio_yield();
    corio_yield();
    s->done_after_yield = corio_task_done(t);
    corio_future_set_result(s->target, (void *)5);
    s->child_rc = corio_await(t, &s->value);
    s->child_cancelled = corio_task_cancelled(t);
    corio_task_unref(t);
    corio_future_unref(s->target);
    return NULL;
}

static void cancel_uncancel_to_zero_withdraws_request(void **state)
{
    struct withdrawn s = {0};

    (void)state;
    assert_int_equal(run_on(1, withdrawn_main, &s, NULL), 0);
    assert_int_equal(s.cancel_rc, 1);
    assert_int_equal(s.uncancel_rc, 0);
    assert_false(s.done_after_yield);
    assert_int_equal(s.await_rc, 0);
    assert_int_equal(s.child_rc, 0);
    assert_ptr_equal(s.value, (void *)5);
    assert_false(s.child_cancelled);
}

/* A task that uncancels back to zero after -ECANCELED and returns a value
 * ends normally with it (asyncio: the coroutine caught CancelledError). */
struct suppress {
    corio_future *ready, *target;
    int await_rc, uncancel_rc, cancelling_after;
    struct cancel_outcome child;
    void *value;
};

static void *suppressing_child(void *arg)
{
    struct suppress *s = arg;

    corio_future_set_result(s->ready, NULL);
    s->await_rc = corio_await(s->target, NULL);
    if (s->await_rc == -ECANCELED)
        s->uncancel_rc = corio_task_uncancel(corio_current_task());
    return (void *)99;
}

static void *suppress_main(void *arg)
{
    struct suppress *s = arg;
    corio_task *t = NULL;

    s->ready = new_future();
    s->target = new_future();
    t = cancel_when_ready(suppressing_child, s, s->ready, &s->child, &s->value);
    s->cancelling_after = corio_task_cancelling(t);
    corio_task_unref(t);
    corio_future_unref(s->ready);
    corio_future_unref(s->target);
    return NULL;
}

static void suppress_on(unsigned workers)
{
    struct suppress s = {.uncancel_rc = -1};

    assert_int_equal(run_on(workers, suppress_main, &s, NULL), 0);
    assert_int_equal(s.child.cancel_rc, 1);
    assert_int_equal(s.await_rc, -ECANCELED);
    assert_int_equal(s.uncancel_rc, 0);
    assert_int_equal(s.child.rc, 0);
    assert_ptr_equal(s.value, (void *)99);
    assert_false(s.child.cancelled);
    assert_int_equal(s.cancelling_after, 0);
}

static void cancel_uncancel_then_return_ends_normally(void **state)
{
    (void)state;
    on_each_worker_count(suppress_on);
}

/* Returning while cancelling() > 0 ends the task cancelled, whether the
 * request was delivered at an await or never reached one. */
struct returns_cancelled {
    corio_future *ready, *target;
    int await_rc, self_cancel_rc, self_rc;
    struct cancel_outcome delivered;
    bool self_cancelled;
};

static void *return_after_cancel(void *arg)
{
    struct returns_cancelled *s = arg;

    corio_future_set_result(s->ready, NULL);
    s->await_rc = corio_await(s->target, NULL);
    return (void *)5;
}

static void *cancel_self_and_return(void *arg)
{
    struct returns_cancelled *s = arg;

    s->self_cancel_rc = corio_task_cancel(corio_current_task(), NULL);
    return (void *)6;
}

static void *returns_cancelled_main(void *arg)
{
    struct returns_cancelled *s = arg;
    corio_task *t = NULL;

    s->ready = new_future();
    s->target = new_future();
    t = cancel_when_ready(return_after_cancel, s, s->ready, &s->delivered, NULL);
    corio_task_unref(t);

    corio_spawn(&t, cancel_self_and_return, s);
    s->self_rc = corio_await(t, NULL);
    s->self_cancelled = corio_task_cancelled(t);
    corio_task_unref(t);
    corio_future_unref(s->ready);
    corio_future_unref(s->target);
    return NULL;
}

static void returns_cancelled_on(unsigned workers)
{
    struct returns_cancelled s = {0};

    assert_int_equal(run_on(workers, returns_cancelled_main, &s, NULL), 0);
    expect_cancelled(&s.delivered);
    assert_int_equal(s.await_rc, -ECANCELED);
    assert_int_equal(s.self_cancel_rc, 1);
    assert_int_equal(s.self_rc, -ECANCELED);
    assert_true(s.self_cancelled);
}

static void cancel_return_while_cancelling_ends_cancelled(void **state)
{
    (void)state;
    on_each_worker_count(returns_cancelled_on);
}

struct cancel_done {
    int await_rc, cancel_rc, fut_cancel_rc, cancelling, result_rc;
    bool cancelled;
    void *value;
};

static void *cancel_done_main(void *arg)
{
    struct cancel_done *s = arg;
    corio_task *t = NULL;

    corio_spawn(&t, return_arg, (void *)3);
    s->await_rc = corio_await(t, NULL);
    s->cancel_rc = corio_task_cancel(t, "too late");
    s->fut_cancel_rc = corio_future_cancel(corio_task_future(t), NULL);
    s->cancelling = corio_task_cancelling(t);
    s->cancelled = corio_task_cancelled(t);
    s->result_rc = corio_task_result(t, &s->value);
    corio_task_unref(t);
    return NULL;
}

static void cancel_done_on(unsigned workers)
{
    struct cancel_done s = {0};

    assert_int_equal(run_on(workers, cancel_done_main, &s, NULL), 0);
    assert_int_equal(s.await_rc, 0);
    assert_int_equal(s.cancel_rc, 0);
    assert_int_equal(s.fut_cancel_rc, 0);
    assert_int_equal(s.cancelling, 0);
    assert_false(s.cancelled);
    assert_int_equal(s.result_rc, 0);
    assert_ptr_equal(s.value, (void *)3);
}

static void cancel_done_task_returns_zero(void **state)
{
    (void)state;
    on_each_worker_count(cancel_done_on);
}

/* ---- stress ------------------------------------------------------------ */

/* 10,000 tasks each await their own future (some yield first); cancellers
 * spawned in between act on each task once, in a random order with random
 * yields, so requests land before the first run, at the yield, at the
 * await, and racing with the future's completion. */
#define STRESS_TASKS 10000
#define STRESS_CANCELLERS 16
#define STRESS_ROUNDS 3

enum stress_action {
    ACT_CANCEL_TASK,            /* the task must end cancelled */
    ACT_SET_RESULT,             /* the task must end with its value */
    ACT_SET_THEN_CANCEL,        /* cancelled, or done first (cancel gives 0) */
    ACT_CANCEL_THEN_SET,        /* the task must end cancelled */
    ACT_CANCEL_FUTURE,          /* the await fails; the task ends normally */
    ACT_COUNT
};

struct stress {
    corio_future *f[STRESS_TASKS];
    corio_task *t[STRESS_TASKS];
    int ran[STRESS_TASKS], yield_rc[STRESS_TASKS], await_rc[STRESS_TASKS];
    uint8_t action[STRESS_TASKS];
    int cancel_rc[STRESS_TASKS];
    int spawn_bad, gather_rc;
};

struct stress_canceller {
    struct stress *s;
    int lo, hi;
    uint64_t rng;
};

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

struct stress_slot {
    struct stress *s;
    int i;
};

static void *stress_waiter(void *arg)
{
    struct stress_slot *slot = arg;
    struct stress *s = slot->s;
    int i = slot->i;
    void *v = NULL;

    s->ran[i] = 1;
    if (i % 3 == 0 && (s->yield_rc[i] = corio_yield()) != 0)
        return NULL;
    s->await_rc[i] = corio_await(s->f[i], &v);
    return s->await_rc[i] == 0 ? v : NULL;
}

static void *stress_cancel(void *arg)
{
    struct stress_canceller *c = arg;
    struct stress *s = c->s;
    int n = c->hi - c->lo, *order = malloc((size_t)n * sizeof *order);

    if (!order)
        return (void *)1;
    for (int k = 0; k < n; k++)
        order[k] = c->lo + k;
    for (int k = n - 1; k > 0; k--) {
        int j = (int)(xorshift(&c->rng) % (uint64_t)(k + 1)), tmp = order[k];
        order[k] = order[j];
        order[j] = tmp;
    }
    for (int k = 0; k < n; k++) {
        int i = order[k];
        uint8_t act = (uint8_t)(xorshift(&c->rng) % ACT_COUNT);
        s->action[i] = act;
        switch (act) {
        case ACT_CANCEL_TASK:
            s->cancel_rc[i] = corio_task_cancel(s->t[i], NULL);
            break;
        case ACT_SET_RESULT:
            corio_future_set_result(s->f[i], (void *)(uintptr_t)(i + 1));
            break;
        case ACT_SET_THEN_CANCEL:
            corio_future_set_result(s->f[i], (void *)(uintptr_t)(i + 1));
            s->cancel_rc[i] = corio_task_cancel(s->t[i], NULL);
            break;
        case ACT_CANCEL_THEN_SET:
            s->cancel_rc[i] = corio_task_cancel(s->t[i], NULL);
            corio_future_set_result(s->f[i], (void *)(uintptr_t)(i + 1));
            break;
        default:
            corio_future_cancel(s->f[i], NULL);
            break;
        }
        if (xorshift(&c->rng) % 4 == 0)
            corio_yield();
    }
    free(order);
    return NULL;
}

static void *stress_main(void *arg)
{
    struct stress *s = arg;
    struct stress_slot *slots = calloc(STRESS_TASKS, sizeof *slots);
    struct stress_canceller c[STRESS_CANCELLERS];
    corio_task *ct[STRESS_CANCELLERS] = {0};
    const int per = STRESS_TASKS / STRESS_CANCELLERS;

    if (!slots)
        return NULL;
    for (int i = 0; i < STRESS_TASKS; i++)
        s->f[i] = new_future();
    /* Each canceller is spawned right behind its batch, so some of its
     * tasks have not started yet when it acts. */
    for (int b = 0; b < STRESS_CANCELLERS; b++) {
        int lo = b * per, hi = b == STRESS_CANCELLERS - 1 ? STRESS_TASKS : lo + per;
        for (int i = lo; i < hi; i++) {
            slots[i] = (struct stress_slot){s, i};
            if (corio_spawn(&s->t[i], stress_waiter, &slots[i]) < 0)
                s->spawn_bad++;
        }
        c[b] = (struct stress_canceller){s, lo, hi, 0x9E3779B97F4A7C15ull * (uint64_t)(b + 1)};
        if (corio_spawn(&ct[b], stress_cancel, &c[b]) < 0)
            s->spawn_bad++;
    }
    for (int b = 0; b < STRESS_CANCELLERS; b++) {
        void *v = NULL;
        if (corio_await(ct[b], &v) != 0 || v)
            s->spawn_bad++;
        corio_task_unref(ct[b]);
    }
    s->gather_rc = corio_gather_tasks(s->t, STRESS_TASKS, CORIO_RETURN_EXCEPTIONS, NULL, NULL);
    for (int i = 0; i < STRESS_TASKS; i++)
        corio_future_unref(s->f[i]);
    free(slots);
    return NULL;
}

static void stress_check(struct stress *s)
{
    int bad = 0;

    for (int i = 0; i < STRESS_TASKS && bad < 10; i++) {
        corio_task *t = s->t[i];
        void *v = NULL;
        int rc = corio_task_result(t, &v);
        bool cancelled = corio_task_cancelled(t), ok;

        switch (s->action[i]) {
        case ACT_CANCEL_TASK:
            ok = s->cancel_rc[i] == 1 && cancelled && rc == -ECANCELED &&
                 (!s->ran[i] || s->yield_rc[i] == -ECANCELED || s->await_rc[i] == -ECANCELED);
            break;
        case ACT_CANCEL_THEN_SET:
            /* A task running between its await's checks may find the
             * future done without suspending: the request is then still
             * counted when it returns, and it ends cancelled all the same. */
            ok = s->cancel_rc[i] == 1 && cancelled && rc == -ECANCELED;
            break;
        case ACT_SET_RESULT:
            ok = !cancelled && rc == 0 && v == (void *)(uintptr_t)(i + 1) && s->ran[i] &&
                 s->yield_rc[i] == 0 && s->await_rc[i] == 0;
            break;
        case ACT_SET_THEN_CANCEL:
            ok = s->cancel_rc[i] == 0
                     ? !cancelled && rc == 0 && v == (void *)(uintptr_t)(i + 1)
                     : s->cancel_rc[i] == 1 && cancelled && rc == -ECANCELED;
            break;
        default:   /* ACT_CANCEL_FUTURE */
            ok = !cancelled && rc == 0 && v == NULL && s->ran[i] && s->yield_rc[i] == 0 &&
                 s->await_rc[i] == -ECANCELED;
            break;
        }
        if (!ok) {
            print_message("task %d: action %d cancel_rc %d ran %d yield_rc %d await_rc %d "
                          "-> cancelled %d rc %d value %p\n",
                          i, s->action[i], s->cancel_rc[i], s->ran[i], s->yield_rc[i],
                          s->await_rc[i], cancelled, rc, v);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void cancel_stress_random_points(void **state)
{
    (void)state;
    for (int round = 0; round < STRESS_ROUNDS; round++) {
        struct stress *s = calloc(1, sizeof *s);

        assert_non_null(s);
        assert_int_equal(run_on(stress_workers, stress_main, s, NULL), 0);
        assert_int_equal(s->spawn_bad, 0);
        assert_int_equal(s->gather_rc, 0);
        for (int i = 0; i < STRESS_TASKS; i++)
            assert_true(corio_task_done(s->t[i]));
        stress_check(s);
        for (int i = 0; i < STRESS_TASKS; i++)
            corio_task_unref(s->t[i]);
        free(s);
    }
}

/* A task returning on one worker while another cancels it: corio_task_cancel()
 * returns 1 only if the request was counted before the task ended, and then
 * the task ends cancelled; 0 means it had ended, with its value. Each round
 * the returning task polls until the canceller says go; the canceller then
 * waits a delay that sweeps 0..RACE_DELAYS-1 steps over the rounds, so on
 * two workers some rounds make the cancel meet the return within nanoseconds
 * whatever the machine's timing. Both sides yield while they wait, so a round
 * where they share a worker still ends at once. */
#define RACE_ROUNDS 4000
#define RACE_DELAYS 200
#define RACE_POLLS 1000   /* polls between yields */

struct race {
    atomic_int go, polling;
    corio_task *victim;
    int delay, cancel_rc;
};

static void *return_on_go(void *arg)
{
    struct race *r = arg;

    atomic_store(&r->polling, 1);
    for (long i = 1; !atomic_load_explicit(&r->go, memory_order_acquire); i++)
        if (i % RACE_POLLS == 0)
            corio_yield();
    return (void *)0x600d;
}

static void *cancel_on_go(void *arg)
{
    struct race *r = arg;

    while (!atomic_load(&r->polling))
        corio_yield();
    atomic_store_explicit(&r->go, 1, memory_order_release);
    for (volatile int i = 0; i < r->delay; i++)
        ;
    r->cancel_rc = corio_task_cancel(r->victim, NULL);
    return NULL;
}

struct race_totals {
    int requested, too_late, inconsistent, first_bad_rc;
    bool first_bad_cancelled;
};

static void *race_main(void *arg)
{
    struct race_totals *tot = arg;

    for (int round = 0; round < RACE_ROUNDS; round++) {
        struct race r = {.delay = round % RACE_DELAYS, .cancel_rc = -1};
        corio_task *c = NULL;
        void *v = NULL;

        if (corio_spawn(&r.victim, return_on_go, &r) < 0)
            return NULL;
        if (corio_spawn(&c, cancel_on_go, &r) == 0) {
            corio_await(c, NULL);
            corio_task_unref(c);
        }
        int rc = corio_await(r.victim, &v);
        bool cancelled = corio_task_cancelled(r.victim);
        bool ok = r.cancel_rc == 1 ? cancelled && rc == -ECANCELED
                                   : r.cancel_rc == 0 && !cancelled && v == (void *)0x600d;
        tot->requested += r.cancel_rc == 1;
        tot->too_late += r.cancel_rc == 0;
        if (!ok && tot->inconsistent++ == 0) {
            tot->first_bad_rc = r.cancel_rc;
            tot->first_bad_cancelled = cancelled;
        }
        corio_task_unref(r.victim);
    }
    return NULL;
}

static void cancel_racing_return_is_consistent(void **state)
{
    struct race_totals tot = {0};
    unsigned workers = stress_workers < 2 ? 2 : stress_workers;

    (void)state;
    assert_int_equal(run_on(workers, race_main, &tot, NULL), 0);
    print_message("cancel vs return: %d requested, %d too late, %d inconsistent\n",
                  tot.requested, tot.too_late, tot.inconsistent);
    if (tot.inconsistent)
        print_message("first inconsistent round: cancel returned %d, task %s\n",
                      tot.first_bad_rc, tot.first_bad_cancelled ? "cancelled" : "not cancelled");
    assert_int_equal(tot.requested + tot.too_late, RACE_ROUNDS);
    assert_int_equal(tot.inconsistent, 0);
}

/* ---- misuse ------------------------------------------------------------ */

/* A finished main task of a runtime that ran: a future to misuse from
 * outside any runtime. */
static corio_task *finished_task(corio_rt **rt)
{
    corio_rt_options o = {.workers = 1};
    corio_task *t = NULL;

    assert_int_equal(corio_rt_create(rt, &o), 0);
    assert_int_equal(corio_rt_run(*rt, return_arg, (void *)9, &t), 0);
    return t;
}

static void misuse_spawn_outside_runtime(void **state)
{
    corio_task *t = (corio_task *)&t;
    corio_spawn_options o = {.name = "x"};

    (void)state;
    assert_int_equal(corio_spawn(&t, return_arg, NULL), -EPERM);
    assert_int_equal(corio_spawn(NULL, return_arg, NULL), -EPERM);
    assert_int_equal(corio_spawn_ex(NULL, return_arg, NULL, &o), -EPERM);
}

static void misuse_yield_outside_task(void **state)
{
    (void)state;
    assert_int_equal(corio_yield(), -EPERM);
}

static void misuse_await_outside_task(void **state)
{
    corio_rt *rt = NULL;
    corio_task *t = finished_task(&rt);
    corio_future *f = NULL;
    void *v = NULL;

    (void)state;
    assert_int_equal(corio_await(t, &v), -EPERM);
    assert_int_equal(corio_await(corio_task_future(t), NULL), -EPERM);
    assert_int_equal(corio_future_create(&f), -EPERM);
    assert_int_equal(corio_task_result(t, &v), 0);
    assert_ptr_equal(v, (void *)9);
    corio_task_unref(t);
    assert_int_equal(corio_rt_destroy(rt), 0);
}

static void misuse_raise_outside_task(void **state)
{
    (void)state;
    assert_int_equal(corio_raise(-EIO, "outside %d", 1), -EPERM);
    assert_int_equal(corio_raise(-ECANCELED, NULL), -EPERM);
}

struct null_fn {
    int spawn_rc, spawn_ex_rc, await_null_rc, await_self_rc;
};

static void *null_fn_main(void *arg)
{
    struct null_fn *s = arg;
    corio_task *t = (corio_task *)s;
    corio_spawn_options o = {.name = "x"};

    s->spawn_rc = corio_spawn(&t, NULL, NULL);
    s->spawn_ex_rc = corio_spawn_ex(NULL, NULL, NULL, &o);
    s->await_null_rc = corio_future_await(NULL, NULL);
    s->await_self_rc = corio_await(corio_current_task(), NULL);
    return NULL;
}

static void misuse_null_fn_and_self_await(void **state)
{
    struct null_fn s = {0};

    (void)state;
    assert_int_equal(run_on(1, null_fn_main, &s, NULL), 0);
    assert_int_equal(s.spawn_rc, -EINVAL);
    assert_int_equal(s.spawn_ex_rc, -EINVAL);
    assert_int_equal(s.await_null_rc, -EINVAL);
    assert_int_equal(s.await_self_rc, -EINVAL);   /* "Task cannot await on itself" */
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--workers") == 0) {
            long n = strtol(argv[i + 1], NULL, 10);
            if (n < 1 || n > 1024) {
                fprintf(stderr, "test_task: --workers takes 1..1024\n");
                return 2;
            }
            stress_workers = (unsigned)n;
        }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(task_spawn_and_await_result),
        cmocka_unit_test(task_spawn_order_one_worker),
        cmocka_unit_test(task_raise_gives_code_and_message),
        cmocka_unit_test(task_names_default_option_and_rename),
        cmocka_unit_test(task_ids_unique),
        cmocka_unit_test(task_current_task_inside_and_outside),
        cmocka_unit_test(task_all_tasks_lists_alive_tasks),
        cmocka_unit_test(task_yield_interleaves_one_worker),
        cmocka_unit_test(task_stack_size_option_honoured),
        cmocka_unit_test(task_stack_budget_enomem_then_recovers),
        cmocka_unit_test(cancel_at_await_future_cancels_future),
        cmocka_unit_test(cancel_at_await_task_cancels_child),
        cmocka_unit_test(cancel_at_yield),
        cmocka_unit_test(cancel_at_gather_cancels_children),
        cmocka_unit_test(cancel_at_wait_leaves_futures_running),
        cmocka_unit_test(cancel_at_as_completed_next),
        cmocka_unit_test(cancel_at_shield_leaves_inner_running),
        cmocka_unit_test(cancel_before_first_run_skips_body),
        cmocka_unit_test(cancel_message_delivered),
        cmocka_unit_test(cancel_cancelling_counts_and_uncancel_decrements),
        cmocka_unit_test(cancel_uncancel_to_zero_withdraws_request),
        cmocka_unit_test(cancel_uncancel_then_return_ends_normally),
        cmocka_unit_test(cancel_return_while_cancelling_ends_cancelled),
        cmocka_unit_test(cancel_done_task_returns_zero),
        cmocka_unit_test(cancel_stress_random_points),
        cmocka_unit_test(cancel_racing_return_is_consistent),
        cmocka_unit_test(misuse_spawn_outside_runtime),
        cmocka_unit_test(misuse_yield_outside_task),
        cmocka_unit_test(misuse_await_outside_task),
        cmocka_unit_test(misuse_raise_outside_task),
        cmocka_unit_test(misuse_null_fn_and_self_await),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
