/* tests/testutil.h - what the suites that run a runtime share (test_future,
 * test_combinators, test_task, test_loop): checks recorded inside a runtime,
 * the exception handler's reports, runs that leave nothing behind, and a few
 * small task and future helpers.
 *
 * cmocka's assertions longjmp, and a longjmp must never cross a task's stack,
 * a callback or a thread of the test's own. So code that runs inside a
 * runtime only records what it saw: in the case's own struct, or with
 * CHECK*() into a struct checks. The case asserts once corio_rt_run() has
 * returned. run_with() and the runs built on it assert that the runtime
 * shut down with no task alive and, unless the case takes the reports
 * itself (run_with()), that nothing reached the exception handler.
 *
 * Order-sensitive cases run on one worker, where ready tasks and callbacks
 * run strictly in the order they became ready; order-free cases run on one
 * worker and then, repeated, on 2 and on 4 (on_worker_counts()).
 *
 * What asserts (assert_checks(), expect_reports(), run_with() and the runs
 * built on it, on_worker_counts(), capture_*()) is for the test's own main
 * thread; the rest may be called from inside a runtime.
 */
#ifndef CORIO_TESTS_TESTUTIL_H
#define CORIO_TESTS_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <corio/corio.h>

/* An integer as a task's value or a future's result. */
#define V(n) ((void *)(uintptr_t)(n))

/* ---- checks made inside a runtime, asserted after the run --------------- */

/* Any thread may record into it. */
struct checks {
    atomic_int failed;
    char first[256];   /* written once, by the first failure */
};

void check_at(struct checks *c, bool ok, const char *what, int line, const char *fmt,
              long long got, long long want);

#define CHECK(c, cond) check_at((c), (cond), #cond, __LINE__, NULL, 0, 0)
#define CHECK_EQ(c, got, want)                                                   \
    do {                                                                         \
        long long got_ = (long long)(got), want_ = (long long)(want);            \
        check_at((c), got_ == want_, #got " == " #want, __LINE__,                \
                 " (got %lld, want %lld)", got_, want_);                         \
    } while (0)
#define CHECK_PTR(c, got, want)                                                  \
    do {                                                                         \
        const void *got_ = (got), *want_ = (want);                               \
        check_at((c), got_ == want_, #got " == " #want, __LINE__,                \
                 " (got %#llx, want %#llx)", (long long)(intptr_t)got_,          \
                 (long long)(intptr_t)want_);                                    \
    } while (0)
#define CHECK_STR(c, got, want)                                                  \
    do {                                                                         \
        const char *got_ = (got);                                                \
        check_at((c), got_ && strcmp(got_, (want)) == 0, #got " is \"" want "\"", \
                 __LINE__, NULL, 0, 0);                                          \
    } while (0)

/* Fails the case, naming the first failed check, if any check failed. */
void assert_checks(struct checks *c);

/* ---- the exception handler's reports ------------------------------------- */

#define MAX_REPORTS 8

/* What reached the exception handler, copied (the context lives only during
 * the call). Reports may come from any worker, hence the lock; the first
 * MAX_REPORTS are kept, all are counted. */
struct reports {
    pthread_mutex_t lock;
    int n;
    struct report {
        char message[96];
        int error;
        char error_message[96];
        char task[64];   /* the task's name, "(null)" without a task */
        bool had_task, had_future;
    } r[MAX_REPORTS];
};

void reports_init(struct reports *reps);

/* An exception handler (corio_exception_handler) whose argument is a
 * struct reports. */
void record_report(corio_rt *rt, const corio_exception_context *ctx, void *arg);

/* How many reports were made so far; any thread may ask. */
int reports_count(struct reports *reps);

/* Asserts that @n reports were made, listing them when not. */
void expect_reports(const struct reports *reps, int n);

/* The index of the report made for the task named @task, or -1. */
int find_report(const struct reports *reps, const char *task);

/* ---- runs ------------------------------------------------------------------ */

/* Runs @fn(@arg) as the main task of a fresh runtime made with @o, reports
 * going to @reps. Asserts that no task outlived the run, and that main was
 * not cancelled when it succeeded. Returns what corio_rt_run() returned;
 * *@result (if not NULL) gets main's value. */
int run_with(const corio_rt_options *o, struct reports *reps, corio_fn fn, void *arg,
             void **result);

/* run_with() on @workers workers, asserting that nothing was reported. */
int run_on(unsigned workers, corio_fn fn, void *arg, void **result);

/* run_on() whose main task must succeed. */
void run_main(unsigned workers, corio_fn fn, void *arg);

/* run_main(), then assert_checks(@ck), where @fn(@arg) recorded its checks
 * (usually a member of @arg). */
void run_main_checked(unsigned workers, corio_fn fn, void *arg, struct checks *ck);

/* run_main_checked() of a @fn whose argument is a struct checks alone. */
void run_checks(unsigned workers, corio_fn fn);

#define REPEATS 20   /* runs per multi-worker count of an order-free case */

/* Runs @body(1) @ones times, then @body(2) and @body(4) @repeats times
 * each. */
void on_worker_counts(void (*body)(unsigned workers), int ones, int repeats);

/* on_worker_counts() once on one worker, REPEATS times on 2 and on 4. */
void on_each_worker_count(void (*body)(unsigned workers));

/* ---- inside a task -------------------------------------------------------- */

/* A new pending future, or NULL. */
corio_future *new_future(void);

/* Completes @f and drops the caller's own reference to it. A task that
 * completes a future it does not own takes a reference for the call
 * (corio_future_ref() by the owner, before the task may run): the owner may
 * free the future as soon as it wakes. */
void set_and_release(corio_future *f);

/* A task body that returns its argument. */
void *return_arg(void *arg);

/* A task body that yields until a yield returns -ECANCELED (then returns
 * NULL), giving up after 1000 yields (then returns V(1)). */
void *yield_until_cancelled(void *arg);

/* Yields @n times, whatever each yield returns. */
void yield_n(int n);

/* Runs @fn(@arg) on a new thread, which is neither a worker nor a task, and
 * waits for it to end; failing to start it is a failed check in @ck. */
void run_plain_thread(struct checks *ck, void *(*fn)(void *), void *arg);

/* ---- text ------------------------------------------------------------------ */

/* snprintf() of @src, "(null)" for NULL. */
void copy_str(char *dst, size_t len, const char *src);

/* An order log for one-worker cases: words separated by spaces. */
struct order_log {
    char buf[256];
    size_t len;
};

void log_word(struct order_log *l, const char *word);

/* stderr (fd 2) redirected to a temporary file, for the main thread only:
 * capture_end() echoes what was captured, so nothing is hidden. */
struct capture {
    FILE *file;
    int saved;
};

void capture_start(struct capture *c);

/* Restores stderr, echoes the captured text there and returns it (free()). */
char *capture_end(struct capture *c);

#endif
