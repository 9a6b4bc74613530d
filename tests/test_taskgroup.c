/* tests/test_taskgroup.c - task groups (corio/taskgroup.h), asyncio.TaskGroup.
 *
 * Every case runs its own runtime (testutil.h), which must leave no task
 * alive and report nothing. Tasks record what they saw with CHECK*(); the
 * case asserts after the run. Children that must still run when something
 * cancels them sleep for 10 s (a cancellation ends that at once); children
 * that fail do so with corio_raise() after a few yields. Cases without an
 * order run on 1 worker, then repeated on 2 and 4 (on_each_worker_count).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <corio/corio.h>
#include <corio/taskgroup.h>

#include "testutil.h"

#define LONG_NS (10LL * 1000 * 1000 * 1000)

static unsigned stress_workers = 4;

/* ---- children ------------------------------------------------------------ */

static atomic_int finished;

static void *count_child(void *arg)
{
    yield_n(3);
    atomic_fetch_add(&finished, 1);
    return arg;
}

static atomic_int fail_started;

static void *fail_child(void *arg)
{
    atomic_fetch_add(&fail_started, 1);
    yield_n(2);
    corio_raise((int)(intptr_t)arg, "child failed with %d", (int)(intptr_t)arg);
    return NULL;
}

/* Fails once several_main opens the gate, which it does when all three of
 * its children run (none is cancelled before its first step), whatever the
 * await returns. */
static corio_future *fail_gate;

static void *fail_together_child(void *arg)
{
    atomic_fetch_add(&fail_started, 1);
    corio_await(fail_gate, NULL);
    corio_raise((int)(intptr_t)arg, "failed together");
    return NULL;
}

/* Sleeps until cancelled; returning with the request counted ends it cancelled. */
static void *sleeper_child(void *arg)
{
    (void)arg;
    return corio_sleep(LONG_NS) == -ECANCELED ? NULL : V(1);
}

/* ---- all children awaited, results --------------------------------------- */

static void *awaits_all_main(void *arg)
{
    struct checks *ck = arg;
    atomic_store(&finished, 0);
    corio_taskgroup tg;
    corio_task *ts[8];
    CHECK_EQ(ck, corio_taskgroup_enter(&tg), 0);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(ck, corio_taskgroup_spawn(&tg, &ts[i], count_child, V(i + 1), NULL), 0);
    CHECK_EQ(ck, corio_taskgroup_exit(&tg, 0), 0);
    CHECK_EQ(ck, atomic_load(&finished), 8);
    for (int i = 0; i < 8; i++) {
        void *v = NULL;
        CHECK(ck, corio_task_done(ts[i]));
        CHECK_EQ(ck, corio_task_result(ts[i], &v), 0);
        CHECK_PTR(ck, v, V(i + 1));
        corio_task_unref(ts[i]);
    }
    CHECK_EQ(ck, corio_taskgroup_error_count(&tg), 0);
    CHECK_EQ(ck, corio_taskgroup_close(&tg), 0);
    return NULL;
}

static void awaits_all_body(unsigned workers) { run_checks(workers, awaits_all_main); }

static void taskgroup_awaits_all_children(void **state)
{
    (void)state;
    on_each_worker_count(awaits_all_body);
}

/* exit passes the body's own non-negative outcome through. */
static void *body_rc_main(void *arg)
{
    struct checks *ck = arg;
    corio_taskgroup tg;
    CHECK_EQ(ck, corio_taskgroup_enter(&tg), 0);
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, count_child, NULL, NULL), 0);
    CHECK_EQ(ck, corio_taskgroup_exit(&tg, 7), 7);
    corio_taskgroup_close(&tg);
    return NULL;
}

static void taskgroup_results_and_body_rc(void **state)
{
    (void)state;
    run_checks(1, body_rc_main);
}

/* ---- first failure cancels siblings and the parent, once ----------------- */

static void *first_failure_main(void *arg)
{
    struct checks *ck = arg;
    corio_task *self = corio_current_task();
    int before = corio_task_cancelling(self);
    corio_taskgroup tg;
    corio_task *sib = NULL, *bad = NULL;
    CHECK_EQ(ck, corio_taskgroup_enter(&tg), 0);
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, &sib, sleeper_child, NULL, NULL), 0);
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, &bad, fail_child, V(-EIO), NULL), 0);
    /* The body's await is cancelled by the failure. */
    int rc = corio_sleep(LONG_NS);
    CHECK_EQ(ck, rc, -ECANCELED);
    /* Shutting down: no more children. */
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, count_child, NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_taskgroup_exit(&tg, rc), -EIO);
    CHECK_EQ(ck, corio_task_cancelling(self), before);
    CHECK(ck, corio_task_cancelled(sib));
    CHECK_EQ(ck, corio_taskgroup_error_count(&tg), 1);
    int code = 0;
    const char *msg = NULL;
    corio_task *who = NULL;
    CHECK_EQ(ck, corio_taskgroup_error(&tg, 0, &code, &msg, &who), 0);
    CHECK_EQ(ck, code, -EIO);
    CHECK(ck, msg && strstr(msg, "child failed"));
    CHECK_PTR(ck, who, bad);
    CHECK_EQ(ck, corio_taskgroup_error(&tg, 1, &code, NULL, NULL), -ENOENT);
    corio_task_unref(sib);
    corio_task_unref(bad);
    corio_taskgroup_close(&tg);
    /* The parent goes on: its next await is not cancelled. */
    CHECK_EQ(ck, corio_yield(), 0);
    return NULL;
}

static void first_failure_body(unsigned workers) { run_checks(workers, first_failure_main); }

static void taskgroup_first_failure_cancels_siblings_and_parent(void **state)
{
    (void)state;
    on_each_worker_count(first_failure_body);
}

/* A failure while the parent already waits in exit. */
static void *failure_in_exit_main(void *arg)
{
    struct checks *ck = arg;
    corio_taskgroup tg;
    CHECK_EQ(ck, corio_taskgroup_enter(&tg), 0);
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, sleeper_child, NULL, NULL), 0);
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, fail_child, V(-ENOSPC), NULL), 0);
    CHECK_EQ(ck, corio_taskgroup_exit(&tg, 0), -ENOSPC);
    CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
    corio_taskgroup_close(&tg);
    CHECK_EQ(ck, corio_yield(), 0);
    return NULL;
}

static void failure_in_exit_body(unsigned workers) { run_checks(workers, failure_in_exit_main); }

static void taskgroup_failure_during_exit(void **state)
{
    (void)state;
    on_each_worker_count(failure_in_exit_body);
}

/* ---- several failures, all reported -------------------------------------- */

static void *several_main(void *arg)
{
    struct checks *ck = arg;
    corio_taskgroup tg;
    atomic_store(&fail_started, 0);
    fail_gate = new_future();
    CHECK_EQ(ck, corio_taskgroup_enter(&tg), 0);
    /* fail_together_child fails even when cancelled (its yields' results are ignored). */
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, fail_together_child, V(-EIO), NULL), 0);
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, fail_together_child, V(-EPIPE), NULL), 0);
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, fail_together_child, V(-EBADF), NULL), 0);
    /* Once they run, the abort cannot stop them before their body. */
    for (int i = 0; i < 1000000 && atomic_load(&fail_started) < 3; i++)
        corio_yield();
    corio_future_set_result(fail_gate, NULL);
    int rc = corio_taskgroup_exit(&tg, -ENOTCONN);
    CHECK_EQ(ck, corio_taskgroup_error_count(&tg), 4);
    int seen = 0, code = 0;
    corio_task *who = NULL;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(ck, corio_taskgroup_error(&tg, i, &code, NULL, &who), 0);
        CHECK(ck, who != NULL);
        seen |= code == -EIO ? 1 : code == -EPIPE ? 2 : code == -EBADF ? 4 : 8;
        if (i == 0)
            CHECK_EQ(ck, rc, code);   /* the aggregate is the first failure */
    }
    CHECK_EQ(ck, seen, 7);
    /* The body's failure comes last, without a task. */
    CHECK_EQ(ck, corio_taskgroup_error(&tg, 3, &code, NULL, &who), 0);
    CHECK_EQ(ck, code, -ENOTCONN);
    CHECK_PTR(ck, who, NULL);
    corio_taskgroup_close(&tg);
    corio_future_unref(fail_gate);
    return NULL;
}

static void several_body(unsigned workers) { run_checks(workers, several_main); }

static void taskgroup_reports_every_failure(void **state)
{
    (void)state;
    on_each_worker_count(several_body);
}

/* ---- misuse ---------------------------------------------------------------- */

static void *wrong_task_exit(void *arg)
{
    return V(corio_taskgroup_exit(arg, 0) == -EINVAL);
}

static void *misuse_main(void *arg)
{
    struct checks *ck = arg;
    corio_taskgroup never = CORIO_TASKGROUP_INIT;
    CHECK_EQ(ck, corio_taskgroup_spawn(&never, NULL, count_child, NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_taskgroup_exit(&never, 0), -EINVAL);
    CHECK_EQ(ck, corio_taskgroup_close(&never), 0);
    CHECK_EQ(ck, corio_taskgroup_enter(NULL), -EINVAL);
    CHECK_EQ(ck, corio_taskgroup_spawn(NULL, NULL, count_child, NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_taskgroup_exit(NULL, 0), -EINVAL);
    CHECK_EQ(ck, corio_taskgroup_close(NULL), -EINVAL);
    CHECK_EQ(ck, corio_taskgroup_error_count(NULL), 0);

    corio_taskgroup tg;
    CHECK_EQ(ck, corio_taskgroup_enter(&tg), 0);
    CHECK_EQ(ck, corio_taskgroup_enter(&tg), -EINVAL);   /* already entered */
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_taskgroup_close(&tg), -EBUSY);
    corio_task *other = NULL;
    void *v = NULL;
    CHECK_EQ(ck, corio_spawn(&other, wrong_task_exit, &tg), 0);
    CHECK_EQ(ck, corio_await(other, &v), 0);
    CHECK_PTR(ck, v, V(1));
    corio_task_unref(other);
    CHECK_EQ(ck, corio_taskgroup_exit(&tg, 0), 0);
    CHECK_EQ(ck, corio_taskgroup_exit(&tg, 0), -EINVAL);   /* exited already */
    /* Finished: spawn is refused. */
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, count_child, NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_taskgroup_close(&tg), 0);
    return NULL;
}

static void taskgroup_spawn_into_finished_group_fails(void **state)
{
    (void)state;
    run_checks(1, misuse_main);
    corio_taskgroup tg;
    assert_int_equal(corio_taskgroup_enter(&tg), -EPERM);   /* not in a task */
    assert_int_equal(corio_taskgroup_close(&tg), 0);
}

/* ---- cancelled children are not failures ---------------------------------- */

static void *cancelled_child_main(void *arg)
{
    struct checks *ck = arg;
    corio_taskgroup tg;
    corio_task *a = NULL;
    CHECK_EQ(ck, corio_taskgroup_enter(&tg), 0);
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, &a, sleeper_child, NULL, NULL), 0);
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, count_child, NULL, NULL), 0);
    yield_n(2);
    CHECK_EQ(ck, corio_task_cancel(a, "stop"), 1);
    CHECK_EQ(ck, corio_taskgroup_exit(&tg, 0), 0);
    CHECK(ck, corio_task_cancelled(a));
    CHECK_EQ(ck, corio_taskgroup_error_count(&tg), 0);
    CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
    corio_task_unref(a);
    corio_taskgroup_close(&tg);
    return NULL;
}

static void cancelled_child_body(unsigned workers) { run_checks(workers, cancelled_child_main); }

static void taskgroup_cancelled_children(void **state)
{
    (void)state;
    on_each_worker_count(cancelled_child_body);
}

/* ---- the parent cancelled from outside ------------------------------------ */

struct outside {
    struct checks *ck;
    corio_future *inside;   /* set once the parent is in its body */
    corio_task *child;
    bool in_exit;           /* wait in exit rather than in the body */
};

static void *outside_parent(void *arg)
{
    struct outside *o = arg;
    corio_taskgroup tg;
    CHECK_EQ(o->ck, corio_taskgroup_enter(&tg), 0);
    CHECK_EQ(o->ck, corio_taskgroup_spawn(&tg, &o->child, sleeper_child, NULL, NULL), 0);
    corio_future_set_result(o->inside, NULL);
    int rc = o->in_exit ? 0 : corio_sleep(LONG_NS);
    CHECK_EQ(o->ck, corio_taskgroup_exit(&tg, rc), -ECANCELED);
    CHECK(o->ck, corio_task_cancelled(o->child));
    CHECK_EQ(o->ck, corio_task_cancelling(corio_current_task()), 1);
    corio_taskgroup_close(&tg);
    return NULL;   /* with the request counted: ends cancelled */
}

static void outside_case(struct checks *ck, bool in_exit)
{
    struct outside o = {.ck = ck, .inside = new_future(), .in_exit = in_exit};
    corio_task *p = NULL;
    CHECK_EQ(ck, corio_spawn(&p, outside_parent, &o), 0);
    CHECK_EQ(ck, corio_await(o.inside, NULL), 0);
    yield_n(3);
    CHECK_EQ(ck, corio_task_cancel(p, NULL), 1);
    CHECK_EQ(ck, corio_await(p, NULL), -ECANCELED);
    CHECK(ck, corio_task_cancelled(p));
    corio_task_unref(p);
    corio_task_unref(o.child);
    corio_future_unref(o.inside);
}

static void *outside_main(void *arg)
{
    outside_case(arg, false);
    outside_case(arg, true);
    return NULL;
}

static void outside_body(unsigned workers) { run_checks(workers, outside_main); }

static void taskgroup_parent_cancelled_from_outside(void **state)
{
    (void)state;
    on_each_worker_count(outside_body);
}

/* ---- a failing body cancels the children ---------------------------------- */

static void *body_failure_main(void *arg)
{
    struct checks *ck = arg;
    corio_taskgroup tg;
    corio_task *a = NULL;
    CHECK_EQ(ck, corio_taskgroup_enter(&tg), 0);
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, &a, sleeper_child, NULL, NULL), 0);
    CHECK_EQ(ck, corio_taskgroup_exit(&tg, -EIO), -EIO);
    CHECK(ck, corio_task_cancelled(a));
    CHECK_EQ(ck, corio_taskgroup_error_count(&tg), 1);
    CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
    corio_task_unref(a);
    corio_taskgroup_close(&tg);
    return NULL;
}

static void taskgroup_body_failure_cancels_children(void **state)
{
    (void)state;
    run_checks(1, body_failure_main);
    run_checks(2, body_failure_main);
}

/* ---- nested groups, and the guard macro ----------------------------------- */

static void *inner_parent(void *arg)
{
    struct checks *ck = arg;
    corio_taskgroup tg;
    int rc;
    CORIO_TASKGROUP(&tg, rc) {
        CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, sleeper_child, NULL, NULL), 0);
        CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, fail_child, V(-EPROTO), NULL), 0);
        rc = corio_sleep(LONG_NS);
        CHECK_EQ(ck, rc, -ECANCELED);
    }
    CHECK_EQ(ck, rc, -EPROTO);
    CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
    corio_taskgroup_close(&tg);
    corio_raise(rc, "inner group failed");
    return NULL;
}

static void *nested_main(void *arg)
{
    struct checks *ck = arg;
    corio_taskgroup outer;
    int rc;
    CORIO_TASKGROUP(&outer, rc) {
        CHECK_EQ(ck, corio_taskgroup_spawn(&outer, NULL, inner_parent, ck, NULL), 0);
        CHECK_EQ(ck, corio_taskgroup_spawn(&outer, NULL, sleeper_child, NULL, NULL), 0);
        rc = corio_sleep(LONG_NS);
    }
    CHECK_EQ(ck, rc, -EPROTO);
    CHECK_EQ(ck, corio_taskgroup_error_count(&outer), 1);
    CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
    corio_taskgroup_close(&outer);
    return NULL;
}

static void nested_body(unsigned workers) { run_checks(workers, nested_main); }

static void taskgroup_nested_groups(void **state)
{
    (void)state;
    on_each_worker_count(nested_body);
}

/* break out of the guard: the group still exits, with rc as it stood. */
static void *guard_break_main(void *arg)
{
    struct checks *ck = arg;
    atomic_store(&finished, 0);
    corio_taskgroup tg;
    int rc;
    CORIO_TASKGROUP(&tg, rc) {
        CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, count_child, NULL, NULL), 0);
        rc = 3;
        if (rc == 3)
            break;
        CHECK(ck, false);
    }
    CHECK_EQ(ck, rc, 3);
    CHECK_EQ(ck, atomic_load(&finished), 1);
    CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, count_child, NULL, NULL), -EINVAL);
    corio_taskgroup_close(&tg);
    return NULL;
}

static void taskgroup_guard_exits_on_break(void **state)
{
    (void)state;
    run_checks(1, guard_break_main);
}

/* ---- children spawning siblings; many children on many workers ------------ */

struct stress {
    struct checks *ck;
    corio_taskgroup *tg;
    atomic_int done;
};

static void *stress_leaf(void *arg)
{
    struct stress *s = arg;
    corio_yield();
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

static void *stress_spawner(void *arg)
{
    struct stress *s = arg;
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(s->ck, corio_taskgroup_spawn(s->tg, NULL, stress_leaf, s, NULL), 0);
        if (i % 5 == 0)
            corio_yield();
    }
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

static void *stress_main(void *arg)
{
    struct checks *ck = arg;
    for (int round = 0; round < 3; round++) {
        corio_taskgroup tg;
        struct stress s = {.ck = ck, .tg = &tg};
        CHECK_EQ(ck, corio_taskgroup_enter(&tg), 0);
        for (int i = 0; i < 50; i++)
            CHECK_EQ(ck, corio_taskgroup_spawn(&tg, NULL, stress_spawner, &s, NULL), 0);
        CHECK_EQ(ck, corio_taskgroup_exit(&tg, 0), 0);
        CHECK_EQ(ck, atomic_load(&s.done), 50 * 21);
        corio_taskgroup_close(&tg);
        /* And with failures among many children. */
        CHECK_EQ(ck, corio_taskgroup_enter(&tg), 0);
        for (int i = 0; i < 200; i++)
            corio_taskgroup_spawn(&tg, NULL, i % 50 == 49 ? fail_child : sleeper_child,
                                  V(-EIO), NULL);
        int rc = corio_taskgroup_exit(&tg, corio_sleep(LONG_NS));
        CHECK_EQ(ck, rc, -EIO);
        CHECK(ck, corio_taskgroup_error_count(&tg) >= 1);
        CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
        corio_taskgroup_close(&tg);
    }
    return NULL;
}

static void taskgroup_stress_many_children(void **state)
{
    (void)state;
    for (int i = 0; i < 5; i++) {
        run_checks(2, stress_main);
        run_checks(stress_workers, stress_main);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            char *end;
            unsigned long n = strtoul(argv[++i], &end, 10);
            if (*end || n == 0 || n > 1024) {
                fprintf(stderr, "%s: --workers takes a number from 1 to 1024\n", argv[0]);
                return 2;
            }
            stress_workers = (unsigned)n;
        } else {
            fprintf(stderr, "usage: %s [--workers N]\n", argv[0]);
            return 2;
        }
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(taskgroup_awaits_all_children),
        cmocka_unit_test(taskgroup_results_and_body_rc),
        cmocka_unit_test(taskgroup_first_failure_cancels_siblings_and_parent),
        cmocka_unit_test(taskgroup_failure_during_exit),
        cmocka_unit_test(taskgroup_reports_every_failure),
        cmocka_unit_test(taskgroup_spawn_into_finished_group_fails),
        cmocka_unit_test(taskgroup_cancelled_children),
        cmocka_unit_test(taskgroup_parent_cancelled_from_outside),
        cmocka_unit_test(taskgroup_body_failure_cancels_children),
        cmocka_unit_test(taskgroup_nested_groups),
        cmocka_unit_test(taskgroup_guard_exits_on_break),
        cmocka_unit_test(taskgroup_stress_many_children),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
