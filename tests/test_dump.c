/* tests/test_dump.c - corio_rt_dump_tasks(): every live task listed with its
 * name, state and what it is parked on, with a trace, from a task and from
 * a plain thread, while the runtime runs; nothing is resumed; a rename on
 * another thread meanwhile is safe. */
#include "testutil.h"

#include <stdlib.h>

#include <corio/executor.h>

/* The dump of @rt as a string (free()), or NULL; *@n gets its return. */
static char *dump_to_string(corio_rt *rt, int *n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    *n = corio_rt_dump_tasks(rt, f);
    fclose(f);
    return buf;
}

static void *sleeper(void *arg)
{
    (void)arg;
    corio_sleep(60 * CORIO_SEC);   /* until cancelled */
    return NULL;
}

static void *waiter(void *arg)
{
    corio_await((corio_future *)arg, NULL);
    return NULL;
}

struct dump_ctx {
    struct checks ck;
    corio_rt *rt;
    char *from_task, *from_thread;
    int n_task, n_thread;
};

static void *dump_thread(void *arg)
{
    struct dump_ctx *c = arg;
    c->from_thread = dump_to_string(c->rt, &c->n_thread);
    return NULL;
}

static bool all_parked(const char *d)
{
    return d && strstr(d, "'dump-sleeper': parked on sleep") &&
           strstr(d, "'dump-second': parked on sleep") &&
           strstr(d, "'dump-waiter': parked on future");
}

static void *dump_main(void *arg)
{
    struct dump_ctx *c = arg;
    c->rt = corio_get_running_rt();
    corio_future *never = new_future();
    corio_task *t[3];
    CHECK_EQ(&c->ck, corio_spawn_ex(&t[0], sleeper, NULL, &(corio_spawn_options){.name = "dump-sleeper"}), 0);
    CHECK_EQ(&c->ck, corio_spawn_ex(&t[1], waiter, never, &(corio_spawn_options){.name = "dump-waiter"}), 0);
    CHECK_EQ(&c->ck, corio_spawn_ex(&t[2], sleeper, NULL, &(corio_spawn_options){.name = "dump-second"}), 0);
    /* All three park soon, but a loaded (TSan) machine may take longer than
     * any fixed sleep: dump again until they have, for up to 10 s. */
    for (int tries = 0; tries < 2000; tries++) {
        corio_sleep(5 * CORIO_MSEC);
        free(c->from_task);
        c->from_task = dump_to_string(c->rt, &c->n_task);
        if (all_parked(c->from_task))
            break;
    }
    run_plain_thread(&c->ck, dump_thread, c);
    for (int i = 0; i < 3; i++) {
        corio_task_cancel(t[i], NULL);
        CHECK_EQ(&c->ck, corio_await(t[i], NULL), -ECANCELED);
        corio_task_unref(t[i]);
    }
    corio_future_unref(never);
    return NULL;
}

static void check_dump(const char *d, int n)
{
    assert_non_null(d);
    /* main and the three (the runner is internal and not listed) */
    assert_int_equal(n, 4);
    assert_non_null(strstr(d, "corio: 4 task(s)"));
    assert_non_null(strstr(d, "'dump-sleeper': parked on sleep"));
    assert_non_null(strstr(d, "'dump-second': parked on sleep"));
    assert_non_null(strstr(d, "'dump-waiter': parked on future"));
    /* main runs the dump from a task, or sleeps while a thread dumps */
    assert_non_null(strstr(d, "'Task-"));
    /* A parked task's trace starts with the frame that switched out. */
    assert_non_null(strstr(d, "    #0 "));
}

static void dump_lists_parked_tasks_body(unsigned workers)
{
    struct dump_ctx c = {0};
    run_main_checked(workers, dump_main, &c, &c.ck);
    check_dump(c.from_task, c.n_task);
    check_dump(c.from_thread, c.n_thread);
    free(c.from_task);
    free(c.from_thread);
}

static void dump_lists_parked_tasks(void **state)
{
    (void)state;
    on_worker_counts(dump_lists_parked_tasks_body, 1, 2);
}

/* A plain thread dumps while a task renames itself over and over: the dump
 * copies each name under the task's lock, so it never reads a freed one
 * (ASan and TSan builds catch it when it does). */
#define RENAMES 3000

struct rename_ctx {
    struct checks ck;
    corio_rt *rt;
    atomic_bool done;
    int dumps;
};

static void *renamer(void *arg)
{
    struct rename_ctx *c = arg;
    char name[32];
    for (int i = 0; i < RENAMES; i++) {
        snprintf(name, sizeof name, "renamed-%d", i);
        CHECK_EQ(&c->ck, corio_task_set_name(corio_current_task(), name), 0);
        if (i % 16 == 0)
            corio_yield();
    }
    atomic_store(&c->done, true);
    return NULL;
}

static void *rename_dumper(void *arg)
{
    struct rename_ctx *c = arg;
    do {
        int n = -1;
        char *d = dump_to_string(c->rt, &n);
        CHECK(&c->ck, d != NULL && n >= 1);
        free(d);
        c->dumps++;
    } while (!atomic_load(&c->done));
    return NULL;
}

static void *rename_main(void *arg)
{
    struct rename_ctx *c = arg;
    c->rt = corio_get_running_rt();
    corio_task *t;
    CHECK_EQ(&c->ck, corio_spawn(&t, renamer, c), 0);
    void *v;
    CHECK_EQ(&c->ck, corio_to_thread(rename_dumper, c, &v), 0);
    CHECK_EQ(&c->ck, corio_await(t, NULL), 0);
    CHECK_STR(&c->ck, corio_task_name(t), "renamed-2999");
    corio_task_unref(t);
    return NULL;
}

static void dump_while_task_renames(void **state)
{
    (void)state;
    struct rename_ctx c = {0};
    run_main_checked(2, rename_main, &c, &c.ck);
    assert_true(c.dumps >= 1);
}

static void dump_bad_input(void **state)
{
    (void)state;
    corio_rt *rt;
    assert_int_equal(corio_rt_create(&rt, NULL), 0);
    assert_int_equal(corio_rt_dump_tasks(NULL, stderr), -EINVAL);
    assert_int_equal(corio_rt_dump_tasks(rt, NULL), -EINVAL);
    /* Not running: nothing to list. */
    int n = -1;
    char *d = dump_to_string(rt, &n);
    assert_int_equal(n, 0);
    assert_non_null(strstr(d, "corio: 0 task(s)"));
    free(d);
    assert_int_equal(corio_rt_destroy(rt), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dump_lists_parked_tasks),
        cmocka_unit_test(dump_while_task_renames),
        cmocka_unit_test(dump_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
