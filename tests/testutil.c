/* tests/testutil.c - the helpers declared in testutil.h, linked into every
 * test (the build makes a library of the tests/ files not named test_*). */
#include "testutil.h"

#include <stdlib.h>
#include <unistd.h>

/* ---- checks ---------------------------------------------------------------- */

void check_at(struct checks *c, bool ok, const char *what, int line, const char *fmt,
              long long got, long long want)
{
    /* Only the first failure writes ->first: later ones just count. */
    if (ok || atomic_fetch_add(&c->failed, 1) != 0)
        return;
    int n = snprintf(c->first, sizeof c->first, "line %d: %s", line, what);
    if (fmt && n > 0 && (size_t)n < sizeof c->first)
        snprintf(c->first + n, sizeof c->first - (size_t)n, fmt, got, want);
}

void assert_checks(struct checks *c)
{
    int n = atomic_load(&c->failed);
    if (n) {
        print_error("%d check(s) failed inside the runtime; the first: %s\n", n, c->first);
        fail();
    }
}

/* ---- reports --------------------------------------------------------------- */

void copy_str(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "(null)");
}

void reports_init(struct reports *reps)
{
    *reps = (struct reports){.lock = PTHREAD_MUTEX_INITIALIZER};
}

void record_report(corio_rt *rt, const corio_exception_context *ctx, void *arg)
{
    struct reports *reps = arg;

    (void)rt;
    pthread_mutex_lock(&reps->lock);
    if (reps->n < MAX_REPORTS) {
        struct report *r = &reps->r[reps->n];
        copy_str(r->message, sizeof r->message, ctx->message);
        r->error = ctx->error;
        copy_str(r->error_message, sizeof r->error_message, ctx->error_message);
        copy_str(r->task, sizeof r->task, ctx->task ? corio_task_name(ctx->task) : NULL);
        r->had_task = ctx->task != NULL;
        r->had_future = ctx->future != NULL;
    }
    reps->n++;
    pthread_mutex_unlock(&reps->lock);
}

int reports_count(struct reports *reps)
{
    pthread_mutex_lock(&reps->lock);
    int n = reps->n;
    pthread_mutex_unlock(&reps->lock);
    return n;
}

void expect_reports(const struct reports *reps, int n)
{
    if (reps->n != n)
        for (int i = 0; i < reps->n && i < MAX_REPORTS; i++)
            print_message("report %d: '%s' error %d '%s' task '%s'\n", i, reps->r[i].message,
                          reps->r[i].error, reps->r[i].error_message, reps->r[i].task);
    assert_int_equal(reps->n, n);
}

int find_report(const struct reports *reps, const char *task)
{
    for (int i = 0; i < reps->n && i < MAX_REPORTS; i++)
        if (strcmp(reps->r[i].task, task) == 0)
            return i;
    return -1;
}

/* ---- runs ------------------------------------------------------------------ */

/* A run that is still going after WATCHDOG_S seconds is most likely hung:
 * the watchdog writes the task dump to stderr once, so that the test's log
 * (ctest prints it on a timeout) says where every task is parked. */
#define WATCHDOG_S 100

struct watchdog {
    corio_rt *rt;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
};

static void *watchdog_main(void *arg)
{
    struct watchdog *wd = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WATCHDOG_S;
    pthread_mutex_lock(&wd->lock);
    int rc = 0;
    while (!wd->done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&wd->cond, &wd->lock, &until);
    if (!wd->done) {
        fprintf(stderr, "testutil: the runtime still runs after %d s; its tasks:\n", WATCHDOG_S);
        corio_rt_dump_tasks(wd->rt, stderr);
    }
    pthread_mutex_unlock(&wd->lock);
    return NULL;
}

int run_with(const corio_rt_options *o, struct reports *reps, corio_fn fn, void *arg,
             void **result)
{
    corio_rt *rt = NULL;
    corio_task *main_task = NULL;

    reports_init(reps);
    assert_int_equal(corio_rt_create(&rt, o), 0);
    assert_int_equal(corio_rt_set_exception_handler(rt, record_report, reps), 0);
    struct watchdog wd = {.rt = rt, .done = false};
    pthread_mutex_init(&wd.lock, NULL);
    pthread_cond_init(&wd.cond, NULL);
    pthread_t wd_thread;
    bool wd_started = pthread_create(&wd_thread, NULL, watchdog_main, &wd) == 0;
    int rc = corio_rt_run(rt, fn, arg, &main_task);
    pthread_mutex_lock(&wd.lock);
    wd.done = true;
    pthread_cond_signal(&wd.cond);
    pthread_mutex_unlock(&wd.lock);
    if (wd_started)
        pthread_join(wd_thread, NULL);
    pthread_cond_destroy(&wd.cond);
    pthread_mutex_destroy(&wd.lock);
    assert_non_null(main_task);
    assert_true(corio_task_done(main_task));
    if (rc == 0)
        assert_false(corio_task_cancelled(main_task));
    if (result) {
        *result = NULL;
        if (rc == 0)
            assert_int_equal(corio_task_result(main_task, result), 0);
    }
    assert_int_equal(corio_rt_alive_tasks(rt), 0);
    corio_task_unref(main_task);
    assert_int_equal(corio_rt_destroy(rt), 0);
    return rc;
}

int run_on(unsigned workers, corio_fn fn, void *arg, void **result)
{
    corio_rt_options o = {.workers = workers};
    struct reports reps;
    int rc = run_with(&o, &reps, fn, arg, result);

    expect_reports(&reps, 0);
    return rc;
}

void run_main(unsigned workers, corio_fn fn, void *arg)
{
    assert_int_equal(run_on(workers, fn, arg, NULL), 0);
}

void run_main_checked(unsigned workers, corio_fn fn, void *arg, struct checks *ck)
{
    run_main(workers, fn, arg);
    assert_checks(ck);
}

void run_checks(unsigned workers, corio_fn fn)
{
    struct checks ck = {0};

    run_main_checked(workers, fn, &ck, &ck);
}

void on_worker_counts(void (*body)(unsigned workers), int ones, int repeats)
{
    for (int i = 0; i < ones; i++)
        body(1);
    for (int i = 0; i < repeats; i++) {
        body(2);
        body(4);
    }
}

void on_each_worker_count(void (*body)(unsigned workers))
{
    on_worker_counts(body, 1, REPEATS);
}

/* ---- inside a task --------------------------------------------------------- */

corio_future *new_future(void)
{
    corio_future *f = NULL;

    return corio_future_create(&f) == 0 ? f : NULL;
}

void set_and_release(corio_future *f)
{
    corio_future_set_result(f, NULL);
    corio_future_unref(f);
}

void *return_arg(void *arg)
{
    return arg;
}

void *yield_until_cancelled(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        if (corio_yield() == -ECANCELED)
            return NULL;
    return V(1);
}

void yield_n(int n)
{
    for (int i = 0; i < n; i++)
        corio_yield();
}

void run_plain_thread(struct checks *ck, void *(*fn)(void *), void *arg)
{
    pthread_t th;
    int rc = pthread_create(&th, NULL, fn, arg);

    CHECK_EQ(ck, rc, 0);
    if (rc == 0)
        pthread_join(th, NULL);
}

/* ---- text ------------------------------------------------------------------ */

void log_word(struct order_log *l, const char *word)
{
    int n = snprintf(l->buf + l->len, sizeof l->buf - l->len, "%s%s", l->len ? " " : "", word);

    if (n > 0 && (size_t)n < sizeof l->buf - l->len)
        l->len += (size_t)n;
}

void capture_start(struct capture *c)
{
    fflush(stderr);
    c->file = tmpfile();
    assert_non_null(c->file);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->file), STDERR_FILENO) >= 0);
}

char *capture_end(struct capture *c)
{
    fflush(stderr);
    assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
    close(c->saved);
    int fd = fileno(c->file);
    off_t len = lseek(fd, 0, SEEK_END);
    assert_true(len >= 0);
    char *text = malloc((size_t)len + 1);
    assert_non_null(text);
    assert_int_equal(pread(fd, text, (size_t)len, 0), len);
    text[len] = '\0';
    fclose(c->file);
    fputs(text, stderr);
    return text;
}
