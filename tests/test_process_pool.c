/* tests/test_process_pool.c - the process-pool executor
 * (corio/process_pool.h), checked against concurrent.futures'
 * ProcessPoolExecutor: round trips, fan-out over workers, initializer,
 * max_tasks_per_child, workers that die mid-task (SIGKILL, SIGABRT, SIGSEGV,
 * exit), shutdown with and without cancel_futures, bad input, and that
 * nothing is left behind (no child process, no descriptor).
 *
 * This binary is also the worker image: the pool spawns it, and the
 * functions registered below with CORIO_PROCESS_FUNCTION serve requests
 * before main() would run. main() checks that it never runs in a worker.
 *
 * Cases wait on futures from the test's main thread (a plain thread:
 * corio_cfuture_result blocks), except the cases that submit from tasks,
 * which record checks and assert after the run (testutil.h).
 */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "corio/corio.h"
#include "corio/process_pool.h"

#include "testutil.h"

#define WAIT (30 * CORIO_SEC)   /* a bound, so a bug fails instead of hanging */

/* ---- the functions the workers run --------------------------------------- */

static int out_bytes(void **out, size_t *out_len, const void *p, size_t n)
{
    *out = malloc(n ? n : 1);
    if (!*out)
        return -ENOMEM;
    memcpy(*out, p, n);
    *out_len = n;
    return 0;
}

static int fn_echo(const void *in, size_t n, void **out, size_t *out_len)
{
    return out_bytes(out, out_len, in, n);
}
CORIO_PROCESS_FUNCTION("echo", fn_echo);

static int fn_square(const void *in, size_t n, void **out, size_t *out_len)
{
    uint64_t v;
    if (n != sizeof v)
        return -EINVAL;
    memcpy(&v, in, sizeof v);
    v *= v;
    return out_bytes(out, out_len, &v, sizeof v);
}
CORIO_PROCESS_FUNCTION("square", fn_square);

/* Sleeps the milliseconds given as text, returns "<pid>". */
static int fn_sleep_pid(const void *in, size_t n, void **out, size_t *out_len)
{
    char ms[16] = "0";
    memcpy(ms, in, n < 15 ? n : 15);
    struct timespec ts = {0, atol(ms) * 1000000L};
    while (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    nanosleep(&ts, NULL);
    char pid[16];
    int k = snprintf(pid, sizeof pid, "%d", (int)getpid());
    return out_bytes(out, out_len, pid, (size_t)k);
}
CORIO_PROCESS_FUNCTION("sleep_pid", fn_sleep_pid);

static int fn_fail(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in;
    (void)n;
    out_bytes(out, out_len, "bad input", 9);
    return -EDOM;
}
CORIO_PROCESS_FUNCTION("fail", fn_fail);

static int fn_die(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)out;
    (void)out_len;
    char how = n ? *(const char *)in : 'k';
    if (how == 'k')
        raise(SIGKILL);
    if (how == 'a') {
        signal(SIGABRT, SIG_DFL);   /* no sanitizer's report: a plain abort */
        abort();
    }
    if (how == 's') {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    }
    _exit(3);
}
CORIO_PROCESS_FUNCTION("die", fn_die);

/* A result one byte over the limit (never touched: only its size counts). */
static int fn_too_big(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in;
    (void)n;
    *out = malloc(CORIO_PROCESS_MAX_PAYLOAD + 1);
    *out_len = CORIO_PROCESS_MAX_PAYLOAD + 1;
    return *out ? 0 : -ENOMEM;
}
CORIO_PROCESS_FUNCTION("too_big", fn_too_big);

static char init_value[64];

static int fn_init(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)out;
    (void)out_len;
    snprintf(init_value, sizeof init_value, "%.*s", (int)n, (const char *)in);
    return 0;
}
CORIO_PROCESS_FUNCTION("init", fn_init);

/* "<init_value>:<pid>" after a short sleep (so tasks spread over workers). */
static int fn_get_init(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in;
    (void)n;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    char s[96];
    int k = snprintf(s, sizeof s, "%s:%d", init_value, (int)getpid());
    return out_bytes(out, out_len, s, (size_t)k);
}
CORIO_PROCESS_FUNCTION("get_init", fn_get_init);

static int fn_init_fail(const void *in, size_t n, void **out, size_t *out_len)
{
    (void)in;
    (void)n;
    out_bytes(out, out_len, "no licence", 10);
    return -EACCES;
}
CORIO_PROCESS_FUNCTION("init_fail", fn_init_fail);

/* ---- helpers --------------------------------------------------------------- */

static corio_process_pool *new_pool(unsigned workers, const char *init, const char *arg,
                                    unsigned max_tasks)
{
    corio_process_pool_options o = {.max_workers = workers,
                                    .initializer = init,
                                    .initarg = arg,
                                    .initarg_len = arg ? strlen(arg) : 0,
                                    .max_tasks_per_child = max_tasks};
    corio_process_pool *pp = NULL;
    assert_int_equal(corio_process_pool_create(&pp, &o), 0);
    return pp;
}

static corio_cfuture *submit_str(corio_process_pool *pp, const char *name, const char *s)
{
    corio_cfuture *f = NULL;
    assert_int_equal(corio_process_pool_submit(pp, name, s, s ? strlen(s) : 0, &f), 0);
    return f;
}

/* Waits for @f; returns its code, *@b its result (or NULL). */
static int wait_bytes(corio_cfuture *f, struct corio_bytes **b)
{
    void *v = NULL;
    int rc = corio_cfuture_result(f, WAIT, &v);
    assert_int_not_equal(rc, -ETIMEDOUT);
    *b = rc == 0 ? v : NULL;
    return rc;
}

static void expect_str(corio_cfuture *f, const char *want)
{
    struct corio_bytes *b;
    assert_int_equal(wait_bytes(f, &b), 0);
    assert_non_null(b);
    assert_int_equal(b->len, strlen(want));
    assert_string_equal((const char *)b->data, want);
    corio_cfuture_unref(f);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;   /* the directory's own descriptor */
}

static void expect_no_children(void)
{
    int st;
    assert_int_equal(waitpid(-1, &st, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* ---- cases ------------------------------------------------------------------ */

static void process_pool_round_trip(void **state)
{
    (void)state;
    corio_process_pool *pp = new_pool(2, NULL, NULL, 0);
    expect_str(submit_str(pp, "echo", "hello"), "hello");
    expect_str(submit_str(pp, "echo", NULL), "");   /* empty in, empty out */
    assert_int_equal(corio_process_pool_destroy(pp), 0);
    expect_no_children();
}

static void process_pool_many_tasks_across_workers(void **state)
{
    (void)state;
    enum { N = 300 };
    corio_process_pool *pp = new_pool(3, NULL, NULL, 0);
    corio_cfuture *fs[N];
    for (uint64_t i = 0; i < N; i++)
        assert_int_equal(corio_process_pool_submit(pp, "square", &i, sizeof i, &fs[i]), 0);
    for (uint64_t i = 0; i < N; i++) {
        struct corio_bytes *b;
        assert_int_equal(wait_bytes(fs[i], &b), 0);
        uint64_t v;
        assert_int_equal(b->len, sizeof v);
        memcpy(&v, b->data, sizeof v);
        assert_int_equal(v, i * i);
        corio_cfuture_unref(fs[i]);
    }
    assert_in_range(corio_process_pool_workers(pp), 1, 3);
    assert_int_equal(corio_process_pool_destroy(pp), 0);
    expect_no_children();
}

static void process_pool_initializer_runs_in_each_worker(void **state)
{
    (void)state;
    enum { N = 8 };
    corio_process_pool *pp = new_pool(2, "init", "forty-two", 0);
    corio_cfuture *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_str(pp, "get_init", NULL);
    int pids[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        struct corio_bytes *b;
        assert_int_equal(wait_bytes(fs[i], &b), 0);
        assert_memory_equal(b->data, "forty-two:", 10);
        int pid = atoi((const char *)b->data + 10);
        if (!pids[0] || pids[0] == pid)
            pids[0] = pid;
        else
            pids[1] = pid;
        corio_cfuture_unref(fs[i]);
    }
    assert_int_not_equal(pids[1], 0);   /* both workers ran, both initialized */
    assert_int_equal(corio_process_pool_destroy(pp), 0);
}

static void process_pool_max_tasks_per_child_replaces_workers(void **state)
{
    (void)state;
    corio_process_pool *pp = new_pool(1, NULL, NULL, 2);
    int pid[6];
    for (int i = 0; i < 6; i++) {
        struct corio_bytes *b;
        corio_cfuture *f = submit_str(pp, "sleep_pid", "0");
        assert_int_equal(wait_bytes(f, &b), 0);
        pid[i] = atoi((const char *)b->data);
        corio_cfuture_unref(f);
    }
    for (int i = 0; i < 6; i += 2) {
        assert_int_equal(pid[i], pid[i + 1]);
        if (i)
            assert_int_not_equal(pid[i], pid[i - 1]);
    }
    assert_int_equal(corio_process_pool_destroy(pp), 0);
    expect_no_children();
}

/* A worker dying by @how fails its own future only; @sig in the message. */
static void die_one(const char *how, const char *want)
{
    enum { N = 10 };
    corio_process_pool *pp = new_pool(2, NULL, NULL, 0);
    corio_cfuture *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_str(pp, "sleep_pid", "5");
    corio_cfuture *d = submit_str(pp, "die", how);
    for (int i = 0; i < N; i++)
        corio_cfuture_unref(submit_str(pp, "echo", "x"));
    const char *msg = NULL;
    assert_int_equal(corio_cfuture_exception(d, WAIT, &msg), -EPIPE);
    assert_non_null(msg);
    if (!strstr(msg, want) || !strstr(msg, "process pool worker"))
        fail_msg("message '%s' lacks '%s'", msg, want);
    corio_cfuture_unref(d);
    for (int i = 0; i < N; i++) {
        struct corio_bytes *b;
        assert_int_equal(wait_bytes(fs[i], &b), 0);
        corio_cfuture_unref(fs[i]);
    }
    /* The pool goes on, with a new process in the dead one's place. */
    for (int i = 0; i < 4; i++)
        expect_str(submit_str(pp, "echo", "after"), "after");
    assert_in_range(corio_process_pool_workers(pp), 1, 2);
    assert_int_equal(corio_process_pool_destroy(pp), 0);
    expect_no_children();
}

static void process_pool_worker_killed_fails_only_its_future(void **state)
{
    (void)state;
    die_one("k", "died: Killed (SIGKILL)");
}

static void process_pool_worker_abort_and_segv(void **state)
{
    (void)state;
    die_one("a", "(SIGABRT)");
    die_one("s", "(SIGSEGV)");
    die_one("x", "exited with status 3");
}

static void process_pool_shutdown_wait_runs_pending(void **state)
{
    (void)state;
    enum { N = 5 };
    corio_process_pool *pp = new_pool(1, NULL, NULL, 0);
    corio_cfuture *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = submit_str(pp, "sleep_pid", "20");
    assert_int_equal(corio_process_pool_shutdown(pp, true, false), 0);
    for (int i = 0; i < N; i++) {
        assert_true(corio_cfuture_done(fs[i]));
        struct corio_bytes *b;
        assert_int_equal(wait_bytes(fs[i], &b), 0);
        corio_cfuture_unref(fs[i]);
    }
    assert_int_equal(corio_process_pool_workers(pp), 0);
    expect_no_children();
    assert_int_equal(corio_process_pool_shutdown(pp, true, false), 0);   /* idempotent */
    assert_int_equal(corio_process_pool_destroy(pp), 0);
}

static void process_pool_shutdown_cancel_futures(void **state)
{
    (void)state;
    enum { N = 6 };
    corio_process_pool *pp = new_pool(1, NULL, NULL, 0);
    corio_cfuture *fs[N];
    fs[0] = submit_str(pp, "sleep_pid", "200");
    for (int i = 0; i < 500 && !corio_cfuture_running(fs[0]); i++)
        usleep(10000);
    assert_true(corio_cfuture_running(fs[0]));
    for (int i = 1; i < N; i++)
        fs[i] = submit_str(pp, "sleep_pid", "0");
    assert_int_equal(corio_process_pool_shutdown(pp, false, true), 0);
    for (int i = 1; i < N; i++) {
        assert_true(corio_cfuture_cancelled(fs[i]));
        corio_cfuture_unref(fs[i]);
    }
    struct corio_bytes *b;
    assert_int_equal(wait_bytes(fs[0], &b), 0);   /* the running one finishes */
    corio_cfuture_unref(fs[0]);
    assert_int_equal(corio_process_pool_destroy(pp), 0);
    expect_no_children();
}

static void process_pool_submit_after_shutdown(void **state)
{
    (void)state;
    corio_process_pool *pp = new_pool(1, NULL, NULL, 0);
    assert_int_equal(corio_process_pool_shutdown(pp, false, false), 0);
    corio_cfuture *f = NULL;
    assert_int_equal(corio_process_pool_submit(pp, "echo", "a", 1, &f), -ESHUTDOWN);
    assert_null(f);
    assert_int_equal(corio_process_pool_destroy(pp), 0);
}

static void process_pool_bad_input(void **state)
{
    (void)state;
    corio_process_pool *pp = NULL;
    corio_process_pool_options big = {.max_workers = 2000};
    assert_int_equal(corio_process_pool_create(NULL, NULL), -EINVAL);
    assert_int_equal(corio_process_pool_create(&pp, &big), -EINVAL);
    corio_process_pool_options noarg = {.initarg_len = 3};
    assert_int_equal(corio_process_pool_create(&pp, &noarg), -EINVAL);
    corio_process_pool_options noinit = {.initializer = "nope"};
    assert_int_equal(corio_process_pool_create(&pp, &noinit), -ENOENT);
    assert_null(pp);

    pp = new_pool(1, NULL, NULL, 0);
    corio_cfuture *f = NULL;
    char c = 0;
    assert_int_equal(corio_process_pool_submit(NULL, "echo", &c, 1, &f), -EINVAL);
    assert_int_equal(corio_process_pool_submit(pp, NULL, &c, 1, &f), -EINVAL);
    assert_int_equal(corio_process_pool_submit(pp, "echo", &c, 1, NULL), -EINVAL);
    assert_int_equal(corio_process_pool_submit(pp, "echo", NULL, 1, &f), -EINVAL);
    assert_int_equal(corio_process_pool_submit(pp, "no_such_fn", &c, 1, &f), -ENOENT);
    assert_int_equal(
        corio_process_pool_submit(pp, "echo", &c, CORIO_PROCESS_MAX_PAYLOAD + 1, &f), -EMSGSIZE);
    assert_null(f);
    assert_int_equal(corio_process_pool_shutdown(NULL, true, false), -EINVAL);
    assert_int_equal(corio_process_pool_destroy(NULL), -EINVAL);
    assert_int_equal(corio_process_pool_workers(NULL), 0);

    /* The function's own error and message. */
    f = submit_str(pp, "fail", NULL);
    const char *msg = NULL;
    assert_int_equal(corio_cfuture_exception(f, WAIT, &msg), -EDOM);
    assert_string_equal(msg, "bad input");
    void *v;
    assert_int_equal(corio_cfuture_result(f, -1, &v), -EINVAL);   /* negative timeout */
    corio_cfuture_unref(f);
    /* A result over the limit. */
    f = submit_str(pp, "too_big", NULL);
    assert_int_equal(corio_cfuture_exception(f, WAIT, &msg), -EMSGSIZE);
    corio_cfuture_unref(f);
    /* A large payload crosses intact (several socket buffers). */
    size_t n = 3 << 20;
    unsigned char *in = malloc(n);
    for (size_t i = 0; i < n; i++)
        in[i] = (unsigned char)(i * 7 + (i >> 13));
    assert_int_equal(corio_process_pool_submit(pp, "echo", in, n, &f), 0);
    struct corio_bytes *b;
    assert_int_equal(wait_bytes(f, &b), 0);
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, in, n);
    corio_cfuture_unref(f);
    free(in);
    assert_int_equal(corio_process_pool_destroy(pp), 0);
}

static void process_pool_initializer_failure_breaks_pool(void **state)
{
    (void)state;
    corio_process_pool *pp = new_pool(2, "init_fail", NULL, 0);
    corio_cfuture *f = submit_str(pp, "echo", "a");
    const char *msg = NULL;
    assert_int_equal(corio_cfuture_exception(f, WAIT, &msg), -EPIPE);
    if (!strstr(msg, "initializer 'init_fail' failed") || !strstr(msg, "no licence"))
        fail_msg("message '%s'", msg);
    corio_cfuture_unref(f);
    f = NULL;
    assert_int_equal(corio_process_pool_submit(pp, "echo", "a", 1, &f), -EPIPE);
    assert_int_equal(corio_process_pool_destroy(pp), 0);
    expect_no_children();
}

static void process_pool_cancel_queued_future(void **state)
{
    (void)state;
    corio_process_pool *pp = new_pool(1, NULL, NULL, 0);
    corio_cfuture *busy = submit_str(pp, "sleep_pid", "100");
    corio_cfuture *q = submit_str(pp, "echo", "never");
    assert_int_equal(corio_cfuture_cancel(q), 1);
    struct corio_bytes *b;
    assert_int_equal(wait_bytes(q, &b), -ECANCELED);
    assert_int_equal(wait_bytes(busy, &b), 0);
    corio_cfuture_unref(q);
    corio_cfuture_unref(busy);
    expect_str(submit_str(pp, "echo", "next"), "next");
    assert_int_equal(corio_process_pool_destroy(pp), 0);
}

static void process_pool_idle_worker_death_is_replaced(void **state)
{
    (void)state;
    corio_process_pool *pp = new_pool(1, NULL, NULL, 0);
    expect_str(submit_str(pp, "echo", "one"), "one");
    int pid = 0;
    assert_int_equal(corio_process_pool_pids(pp, &pid, 1), 1);
    assert_int_equal(kill(pid, SIGKILL), 0);
    /* The idle slot sees its worker die and reaps it at once. */
    for (int i = 0; i < 500 && corio_process_pool_workers(pp); i++)
        usleep(10000);
    assert_int_equal(corio_process_pool_workers(pp), 0);
    expect_str(submit_str(pp, "echo", "two"), "two");
    int pid2 = 0;
    assert_int_equal(corio_process_pool_pids(pp, &pid2, 1), 1);
    assert_int_not_equal(pid2, pid);
    assert_int_equal(corio_process_pool_destroy(pp), 0);
    expect_no_children();
}

/* Queued tasks go to a worker in batches: one that dies mid-batch fails
 * only the task it ran; the ones sent behind it run on its successor. */
static void process_pool_death_mid_batch_puts_the_rest_back(void **state)
{
    (void)state;
    enum { N = 10 };
    corio_process_pool *pp = new_pool(1, NULL, NULL, 0);
    corio_cfuture *busy = submit_str(pp, "sleep_pid", "50");   /* the queue fills */
    corio_cfuture *before[N], *after[N];
    for (int i = 0; i < N; i++)
        before[i] = submit_str(pp, "echo", "b");
    corio_cfuture *d = submit_str(pp, "die", "k");
    for (int i = 0; i < N; i++)
        after[i] = submit_str(pp, "echo", "a");
    struct corio_bytes *b;
    assert_int_equal(wait_bytes(busy, &b), 0);
    corio_cfuture_unref(busy);
    for (int i = 0; i < N; i++)
        expect_str(before[i], "b");
    assert_int_equal(wait_bytes(d, &b), -EPIPE);
    corio_cfuture_unref(d);
    for (int i = 0; i < N; i++)
        expect_str(after[i], "a");
    assert_int_equal(corio_process_pool_destroy(pp), 0);
    expect_no_children();
}

/* ---- from tasks ------------------------------------------------------------ */

struct from_tasks {
    struct checks ck;
    corio_process_pool *pp;
};

static void *submit_and_await(void *arg)
{
    struct from_tasks *ft = arg;
    for (uint64_t i = 0; i < 20; i++) {
        corio_cfuture *f = NULL;
        int rc = corio_process_pool_submit(ft->pp, "square", &i, sizeof i, &f);
        CHECK_EQ(&ft->ck, rc, 0);
        if (rc)
            return NULL;
        void *v = NULL;
        CHECK_EQ(&ft->ck, corio_cfuture_result(f, WAIT, &v), 0);   /* awaits */
        struct corio_bytes *b = v;
        uint64_t sq = 0;
        if (b && b->len == sizeof sq)
            memcpy(&sq, b->data, sizeof sq);
        CHECK_EQ(&ft->ck, sq, i * i);
        corio_cfuture_unref(f);
    }
    return NULL;
}

static void *many_submitters(void *arg)
{
    corio_task *ts[8];
    for (int i = 0; i < 8; i++)
        corio_spawn(&ts[i], submit_and_await, arg);
    for (int i = 0; i < 8; i++) {
        corio_await(ts[i], NULL);
        corio_task_unref(ts[i]);
    }
    return NULL;
}

static void process_pool_submit_from_tasks(void **state)
{
    (void)state;
    struct from_tasks ft = {.pp = new_pool(2, NULL, NULL, 0)};
    run_main_checked(1, many_submitters, &ft, &ft.ck);
    run_main_checked(2, many_submitters, &ft, &ft.ck);
    assert_int_equal(corio_process_pool_destroy(ft.pp), 0);
}

/* Last: everything the earlier cases made is gone, and so is this one's. */
static void process_pool_no_zombie_no_fd_leak(void **state)
{
    (void)state;
    expect_no_children();
    int before = count_fds();
    corio_process_pool *pp = new_pool(3, "init", "z", 2);
    for (int round = 0; round < 3; round++) {
        corio_cfuture *d = submit_str(pp, "die", "k");
        for (int i = 0; i < 6; i++)
            expect_str(submit_str(pp, "echo", "y"), "y");
        struct corio_bytes *b;
        assert_int_equal(wait_bytes(d, &b), -EPIPE);
        corio_cfuture_unref(d);
    }
    assert_true(count_fds() > before);   /* sockets, pidfds, the pool's ring */
    assert_int_equal(corio_process_pool_destroy(pp), 0);
    assert_int_equal(count_fds(), before);
    expect_no_children();
}

int main(void)
{
    /* The worker hook must have served and exited before main in workers. */
    if (getenv("CORIO_PROCESS_POOL_WORKER")) {
        fprintf(stderr, "test_process_pool: a worker reached main()\n");
        return 99;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(process_pool_round_trip),
        cmocka_unit_test(process_pool_many_tasks_across_workers),
        cmocka_unit_test(process_pool_initializer_runs_in_each_worker),
        cmocka_unit_test(process_pool_max_tasks_per_child_replaces_workers),
        cmocka_unit_test(process_pool_worker_killed_fails_only_its_future),
        cmocka_unit_test(process_pool_worker_abort_and_segv),
        cmocka_unit_test(process_pool_shutdown_wait_runs_pending),
        cmocka_unit_test(process_pool_shutdown_cancel_futures),
        cmocka_unit_test(process_pool_submit_after_shutdown),
        cmocka_unit_test(process_pool_bad_input),
        cmocka_unit_test(process_pool_initializer_failure_breaks_pool),
        cmocka_unit_test(process_pool_cancel_queued_future),
        cmocka_unit_test(process_pool_idle_worker_death_is_replaced),
        cmocka_unit_test(process_pool_death_mid_batch_puts_the_rest_back),
        cmocka_unit_test(process_pool_submit_from_tasks),
        cmocka_unit_test(process_pool_no_zombie_no_fd_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
