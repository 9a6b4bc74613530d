/* tests/test_signal.c - signal handlers (corio/signal.h) and asyncio.run's
 * SIGINT handling, checked against loop.add_signal_handler /
 * remove_signal_handler and asyncio.run (Python 3.11+).
 *
 * Handlers: a signal sent with kill() to the process or raise() from a
 * plain thread runs the callback on a worker; replacing, removing, bad
 * signals, bursts (signals coalesce: at least one run, no crash), the end
 * of a run removing what is left, and one signal per runtime (-EBUSY).
 * SIGUSR1 and SIGUSR2 get a harmless handler of the test's own before any
 * case runs (prev_handler), so a straggler that arrives after a removal
 * never kills the suite, and "the previous disposition is restored" can be
 * seen: the straggler then reaches prev_handler.
 *
 * SIGINT: the cases that deliver a SIGINT run corio_run() in a child made
 * by fork() from the test's main thread while no runtime thread exists
 * (those cases run first; every earlier runtime has been joined anyway);
 * the child reports through a pipe and its exit status. The parent never
 * waits for more than a few seconds: a child that hangs is killed and the
 * case fails.
 *
 * Every case also runs under TSan on both backends: TSan runs a signal's
 * handler only when the receiving thread runs instrumented code again, and
 * parked workers come back every 50 ms in TSan builds for that reason
 * (core/park.c), so a signal never waits on a worker blocked in the kernel.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "corio/corio.h"
#include "corio/signal.h"

#include "testutil.h"

#define WAIT_MS 3000   /* how long a task waits for a callback (each 1 ms sleep) */

static atomic_int prev_hits[NSIG];

static void prev_handler(int signo)
{
    atomic_fetch_add(&prev_hits[signo], 1);
}

static void set_prev_handler(int signo)
{
    struct sigaction sa = {.sa_handler = prev_handler};
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(signo, &sa, NULL), 0);
}

static bool disposition_is(int signo, void (*handler)(int))
{
    struct sigaction cur;
    return sigaction(signo, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
           cur.sa_handler == handler;
}

/* In a task: sleep 1 ms at a time until *@n >= @want (or WAIT_MS). */
static bool wait_for_count(atomic_int *n, int want)
{
    for (int i = 0; i < WAIT_MS && atomic_load(n) < want; i++)
        corio_sleep(CORIO_MSEC);
    return atomic_load(n) >= want;
}

/* What a handler's callback saw. */
struct hits {
    atomic_int n;
    atomic_int wrong_place;   /* ran outside a worker of its runtime */
    corio_rt *rt;
};

static void on_hit(void *arg)
{
    struct hits *h = arg;
    /* A worker of the runtime (not signal context): call_soon works here. */
    if (corio_get_running_rt() != h->rt || corio_worker_id() < 0 || corio_current_task())
        atomic_fetch_add(&h->wrong_place, 1);
    atomic_fetch_add(&h->n, 1);
}

/* ---- a handler runs ----------------------------------------------------- */

struct basic {
    struct checks ck;
    struct hits kill_hits, raise_hits;
    int listed, alive;
};

static void *raise_usr2(void *arg)
{
    (void)arg;
    raise(SIGUSR2);   /* lands on this plain thread */
    return NULL;
}

static void *basic_main(void *arg)
{
    struct basic *s = arg;
    corio_rt *rt = corio_get_running_rt();
    corio_task **list = NULL;

    s->kill_hits.rt = s->raise_hits.rt = rt;
    CHECK_EQ(&s->ck, corio_add_signal_handler(rt, SIGUSR1, on_hit, &s->kill_hits), 0);
    CHECK_EQ(&s->ck, corio_add_signal_handler(rt, SIGUSR2, on_hit, &s->raise_hits), 0);
    /* The reader is internal: neither listed nor counted as alive. */
    s->listed = corio_all_tasks(&list);
    if (s->listed >= 0)
        corio_task_list_free(list, s->listed);
    s->alive = (int)corio_rt_alive_tasks(rt);

    CHECK_EQ(&s->ck, kill(getpid(), SIGUSR1), 0);
    CHECK(&s->ck, wait_for_count(&s->kill_hits.n, 1));
    run_plain_thread(&s->ck, raise_usr2, NULL);
    CHECK(&s->ck, wait_for_count(&s->raise_hits.n, 1));
    CHECK_EQ(&s->ck, corio_remove_signal_handler(rt, SIGUSR1), 1);
    CHECK_EQ(&s->ck, corio_remove_signal_handler(rt, SIGUSR2), 1);
    return NULL;
}

static void basic_body(unsigned workers)
{
    struct basic s = {0};

    run_main_checked(workers, basic_main, &s, &s.ck);
    assert_int_equal(atomic_load(&s.kill_hits.n), 1);
    assert_int_equal(atomic_load(&s.raise_hits.n), 1);
    assert_int_equal(atomic_load(&s.kill_hits.wrong_place), 0);
    assert_int_equal(atomic_load(&s.raise_hits.wrong_place), 0);
    assert_int_equal(s.listed, 1);
    assert_int_equal(s.alive, 1);
    assert_true(disposition_is(SIGUSR1, prev_handler));
    assert_true(disposition_is(SIGUSR2, prev_handler));
}

static void signal_handler_runs_on_kill_and_raise(void **state)
{
    (void)state;
    on_worker_counts(basic_body, 1, 3);
}

/* ---- replace and remove --------------------------------------------------- */

struct replace {
    struct checks ck;
    struct hits a, b;
    int prev_before, prev_after;
    bool installed_while_added;
};

static void *replace_main(void *arg)
{
    struct replace *s = arg;
    corio_rt *rt = corio_get_running_rt();

    s->a.rt = s->b.rt = rt;
    CHECK_EQ(&s->ck, corio_add_signal_handler(rt, SIGUSR1, on_hit, &s->a), 0);
    CHECK_EQ(&s->ck, corio_add_signal_handler(rt, SIGUSR1, on_hit, &s->b), 0);
    s->installed_while_added = !disposition_is(SIGUSR1, prev_handler);
    kill(getpid(), SIGUSR1);
    CHECK(&s->ck, wait_for_count(&s->b.n, 1));

    CHECK_EQ(&s->ck, corio_remove_signal_handler(rt, SIGUSR1), 1);
    CHECK_EQ(&s->ck, corio_remove_signal_handler(rt, SIGUSR1), 0);
    CHECK_EQ(&s->ck, corio_remove_signal_handler(rt, SIGUSR2), 0);
    /* Removed: the previous disposition (prev_handler) is back. */
    s->prev_before = atomic_load(&prev_hits[SIGUSR1]);
    kill(getpid(), SIGUSR1);
    CHECK(&s->ck, wait_for_count(&prev_hits[SIGUSR1], s->prev_before + 1));
    s->prev_after = atomic_load(&prev_hits[SIGUSR1]);
    corio_sleep(5 * CORIO_MSEC);   /* a wrong delivery would show now */
    return NULL;
}

static void signal_replace_and_remove(void **state)
{
    struct replace s = {0};

    (void)state;
    run_main_checked(2, replace_main, &s, &s.ck);
    assert_true(s.installed_while_added);
    assert_int_equal(atomic_load(&s.a.n), 0);
    assert_int_equal(atomic_load(&s.b.n), 1);
    assert_int_equal(s.prev_after, s.prev_before + 1);
    assert_true(disposition_is(SIGUSR1, prev_handler));
}

/* ---- bad input ------------------------------------------------------------- */

struct bad {
    struct checks ck;
    struct hits h;
    corio_rt *other;   /* a runtime that is not running */
};

static void *bad_main(void *arg)
{
    struct bad *s = arg;
    corio_rt *rt = corio_get_running_rt();
    const int refused[] = {0, -1, NSIG, 1000, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE,
                           SIGRTMIN - 1};

    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        CHECK_EQ(&s->ck, corio_add_signal_handler(rt, refused[i], on_hit, &s->h), -EINVAL);
        CHECK_EQ(&s->ck, corio_remove_signal_handler(rt, refused[i]), -EINVAL);
    }
    CHECK_EQ(&s->ck, corio_add_signal_handler(rt, SIGUSR1, NULL, NULL), -EINVAL);
    CHECK_EQ(&s->ck, corio_add_signal_handler(NULL, SIGUSR1, on_hit, &s->h), -EINVAL);
    CHECK_EQ(&s->ck, corio_remove_signal_handler(NULL, SIGUSR1), -EINVAL);
    /* Another runtime than the caller's. */
    CHECK_EQ(&s->ck, corio_add_signal_handler(s->other, SIGUSR1, on_hit, &s->h), -EPERM);
    CHECK_EQ(&s->ck, corio_remove_signal_handler(s->other, SIGUSR1), 0);
    /* Real-time signals are fine. */
    CHECK_EQ(&s->ck, corio_add_signal_handler(rt, SIGRTMIN, on_hit, &s->h), 0);
    CHECK_EQ(&s->ck, corio_remove_signal_handler(rt, SIGRTMIN), 1);
    return NULL;
}

static void signal_bad_signo_errors(void **state)
{
    struct bad s = {0};
    struct sigaction before, after;

    (void)state;
    assert_int_equal(corio_rt_create(&s.other, &(corio_rt_options){.workers = 1}), 0);
    assert_int_equal(sigaction(SIGRTMIN, NULL, &before), 0);
    run_main_checked(1, bad_main, &s, &s.ck);
    assert_int_equal(sigaction(SIGRTMIN, NULL, &after), 0);
    assert_ptr_equal((void *)before.sa_handler, (void *)after.sa_handler);
    /* Outside any runtime. */
    assert_int_equal(corio_add_signal_handler(s.other, SIGUSR1, on_hit, &s.h), -EPERM);
    assert_int_equal(corio_add_signal_handler(s.other, SIGKILL, on_hit, &s.h), -EINVAL);
    assert_int_equal(corio_remove_signal_handler(s.other, SIGUSR1), 0);
    assert_int_equal(corio_rt_destroy(s.other), 0);
    assert_int_equal(atomic_load(&s.h.n), 0);
}

/* ---- bursts ------------------------------------------------------------------ */

#define BURST 2000

struct burst {
    struct checks ck;
    struct hits h;
    int after_burst;
};

static void *burst_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < BURST / 4; i++)
        raise(SIGUSR2);
    return NULL;
}

static void *burst_main(void *arg)
{
    struct burst *s = arg;
    corio_rt *rt = corio_get_running_rt();
    pthread_t th[2];
    int started = 0;

    s->h.rt = rt;
    CHECK_EQ(&s->ck, corio_add_signal_handler(rt, SIGUSR2, on_hit, &s->h), 0);
    for (int i = 0; i < 2; i++)
        started += pthread_create(&th[i], NULL, burst_thread, NULL) == 0;
    for (int i = 0; i < BURST / 2; i++)
        kill(getpid(), SIGUSR2);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(&s->ck, started, 2);
    CHECK(&s->ck, wait_for_count(&s->h.n, 1));
    corio_sleep(10 * CORIO_MSEC);   /* let the last deliveries run */
    s->after_burst = atomic_load(&s->h.n);
    /* After the burst, a new signal still gets through. */
    kill(getpid(), SIGUSR2);
    CHECK(&s->ck, wait_for_count(&s->h.n, s->after_burst + 1));
    CHECK_EQ(&s->ck, corio_remove_signal_handler(rt, SIGUSR2), 1);
    return NULL;
}

static void burst_body(unsigned workers)
{
    struct burst s = {0};

    run_main_checked(workers, burst_main, &s, &s.ck);
    assert_true(s.after_burst >= 1);
    assert_true(s.after_burst <= BURST);
    assert_int_equal(atomic_load(&s.h.wrong_place), 0);
}

static void signal_burst_coalesces(void **state)
{
    (void)state;
    on_worker_counts(burst_body, 1, 2);
}

/* ---- lifetime: the end of the run removes handlers ------------------------------- */

struct left {
    struct checks ck;
    struct hits h;
    bool usr1_taken;
};

static void *left_main(void *arg)
{
    struct left *s = arg;
    corio_rt *rt = corio_get_running_rt();

    s->h.rt = rt;
    CHECK_EQ(&s->ck, corio_add_signal_handler(rt, SIGUSR1, on_hit, &s->h), 0);
    s->usr1_taken = !disposition_is(SIGUSR1, prev_handler);
    return NULL;   /* left registered on purpose */
}

static void signal_handlers_removed_at_run_end(void **state)
{
    struct left s = {0};

    (void)state;
    run_main_checked(2, left_main, &s, &s.ck);
    assert_true(s.usr1_taken);
    assert_true(disposition_is(SIGUSR1, prev_handler));
}

/* ---- one runtime per signal ---------------------------------------------------------- */

struct busy {
    struct checks ck;
    struct hits h;
    corio_rt *first;
    int add_taken, add_free, remove_free, remove_taken, add_foreign;
    bool sigint_kept;
    int run_rc;
};

static void *second_main(void *arg)
{
    struct busy *s = arg;
    corio_rt *rt = corio_get_running_rt();

    s->add_taken = corio_add_signal_handler(rt, SIGUSR1, on_hit, &s->h);
    s->add_free = corio_add_signal_handler(rt, SIGUSR2, on_hit, &s->h);
    s->remove_free = corio_remove_signal_handler(rt, SIGUSR2);
    s->remove_taken = corio_remove_signal_handler(rt, SIGUSR1);
    s->add_foreign = corio_add_signal_handler(s->first, SIGUSR2, on_hit, &s->h);
    return NULL;
}

static void *second_thread(void *arg)
{
    struct busy *s = arg;
    s->run_rc = corio_run(second_main, s, &(corio_rt_options){.workers = 2}, NULL);
    return NULL;
}

static void *busy_main(void *arg)
{
    struct busy *s = arg;
    corio_rt *rt = corio_get_running_rt();

    s->first = rt;
    s->h.rt = rt;
    CHECK_EQ(&s->ck, corio_add_signal_handler(rt, SIGUSR1, on_hit, &s->h), 0);
    run_plain_thread(&s->ck, second_thread, s);
    /* The second run neither took nor gave back this run's SIGINT. */
    s->sigint_kept = !disposition_is(SIGINT, SIG_DFL);
    kill(getpid(), SIGUSR1);
    CHECK(&s->ck, wait_for_count(&s->h.n, 1));
    CHECK_EQ(&s->ck, corio_remove_signal_handler(rt, SIGUSR1), 1);
    return NULL;
}

static void signal_one_runtime_per_signal(void **state)
{
    struct busy s = {0};

    (void)state;
    run_main_checked(1, busy_main, &s, &s.ck);
    assert_int_equal(s.run_rc, 0);
    assert_int_equal(s.add_taken, -EBUSY);
    assert_int_equal(s.add_free, 0);
    assert_int_equal(s.remove_free, 1);
    assert_int_equal(s.remove_taken, 0);
    assert_int_equal(s.add_foreign, -EPERM);
    assert_true(s.sigint_kept);
    assert_int_equal(atomic_load(&s.h.n), 1);
    assert_true(disposition_is(SIGINT, SIG_DFL));
}

/* ---- SIGINT in this process (no SIGINT reaches the default disposition) --------------- */

struct sigint_local {
    struct checks ck;
    struct hits h;
    bool armed;
    int cancelled;
};

static void *sigint_armed_main(void *arg)
{
    struct sigint_local *s = arg;
    s->armed = !disposition_is(SIGINT, SIG_DFL);
    return NULL;
}

/* The run takes SIGINT only from the default disposition, and gives it back. */
static void signal_sigint_restored_after_run(void **state)
{
    struct sigint_local s = {0};

    (void)state;
    assert_true(disposition_is(SIGINT, SIG_DFL));
    run_main_checked(2, sigint_armed_main, &s, &s.ck);
    assert_true(s.armed);
    assert_true(disposition_is(SIGINT, SIG_DFL));
}

static void *sigint_custom_main(void *arg)
{
    struct sigint_local *s = arg;
    s->armed = !disposition_is(SIGINT, prev_handler);
    int before = atomic_load(&prev_hits[SIGINT]);
    kill(getpid(), SIGINT);
    CHECK(&s->ck, wait_for_count(&prev_hits[SIGINT], before + 1));
    s->cancelled = corio_sleep(5 * CORIO_MSEC) == -ECANCELED;
    return NULL;
}

/* A SIGINT handler of the program's own is left alone (asyncio.run too). */
static void signal_sigint_custom_disposition_left_alone(void **state)
{
    struct sigint_local s = {0};

    (void)state;
    set_prev_handler(SIGINT);
    run_main_checked(2, sigint_custom_main, &s, &s.ck);
    assert_false(s.armed);
    assert_false(s.cancelled);
    assert_true(disposition_is(SIGINT, prev_handler));
    signal(SIGINT, SIG_DFL);
}

static void *sigint_user_main(void *arg)
{
    struct sigint_local *s = arg;
    corio_rt *rt = corio_get_running_rt();

    s->h.rt = rt;
    CHECK_EQ(&s->ck, corio_add_signal_handler(rt, SIGINT, on_hit, &s->h), 0);
    if (atomic_load(&s->ck.failed))
        return NULL;   /* never send SIGINT without a handler in place */
    kill(getpid(), SIGINT);
    kill(getpid(), SIGINT);   /* a user handler: no second-SIGINT exit */
    CHECK(&s->ck, wait_for_count(&s->h.n, 1));
    s->cancelled = corio_sleep(5 * CORIO_MSEC) == -ECANCELED;
    CHECK_EQ(&s->ck, corio_remove_signal_handler(rt, SIGINT), 1);
    /* Back to run mode, not to the default disposition. */
    s->armed = !disposition_is(SIGINT, SIG_DFL);
    return NULL;
}

/* A handler added for SIGINT takes precedence over run's own. */
static void signal_sigint_user_handler_takes_precedence(void **state)
{
    struct sigint_local s = {0};

    (void)state;
    run_main_checked(2, sigint_user_main, &s, &s.ck);
    assert_false(s.cancelled);
    assert_true(s.armed);
    assert_true(atomic_load(&s.h.n) >= 1);
    assert_true(disposition_is(SIGINT, SIG_DFL));
}

/* ---- SIGINT in a child ---------------------------------------------------------------- */

enum { CHILD_CANCEL, CHILD_SECOND };

struct child {
    int fd;       /* the pipe to the parent */
    int mode;
    unsigned workers;
};

static void tell(int fd, char c)
{
    ssize_t n = write(fd, &c, 1);
    (void)n;
}

static void *child_main(void *arg)
{
    struct child *c = arg;

    tell(c->fd, 'r');
    int rc = corio_sleep(20 * CORIO_SEC);
    if (c->mode == CHILD_SECOND && rc == -ECANCELED) {
        corio_task_uncancel(corio_current_task());   /* catch it */
        tell(c->fd, 'c');
        corio_sleep(20 * CORIO_SEC);
    }
    return (void *)(intptr_t)rc;
}

/* The child's exit code: 0 when run returned -ECANCELED with SIGINT back to
 * the default disposition. */
static __attribute__((noreturn)) void child_run(struct child *c)
{
    int rc = corio_run(child_main, c, &(corio_rt_options){.workers = c->workers}, NULL);
    if (rc != -ECANCELED)
        _exit(10);
    _exit(disposition_is(SIGINT, SIG_DFL) ? 0 : 11);
}

/* Waits up to 10 s for the child's next byte; returns it, or 0. */
static char hear(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c = 0;

    if (poll(&p, 1, 10000) == 1 && read(fd, &c, 1) == 1)
        return c;
    return 0;
}

/* Waits up to 10 s for the child to end (then kills it); its status. */
static int reap(pid_t pid)
{
    int status = 0;

    for (int i = 0; i < 1000; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fail_msg("the child did not end");
    return status;
}

static pid_t start_child(int mode, unsigned workers, int *fd)
{
    int p[2];

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        struct child c = {.fd = p[1], .mode = mode, .workers = workers};
        child_run(&c);
    }
    close(p[1]);
    *fd = p[0];
    return pid;
}

static void sigint_cancel_body(unsigned workers)
{
    int fd;
    pid_t pid = start_child(CHILD_CANCEL, workers, &fd);

    assert_int_equal(hear(fd), 'r');
    assert_int_equal(kill(pid, SIGINT), 0);
    int status = reap(pid);
    close(fd);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void signal_sigint_cancels_main(void **state)
{
    (void)state;
    sigint_cancel_body(1);
    sigint_cancel_body(2);
    sigint_cancel_body(4);
}

static void sigint_second_body(unsigned workers)
{
    int fd;
    pid_t pid = start_child(CHILD_SECOND, workers, &fd);

    assert_int_equal(hear(fd), 'r');
    assert_int_equal(kill(pid, SIGINT), 0);
    assert_int_equal(hear(fd), 'c');
    assert_int_equal(kill(pid, SIGINT), 0);
    int status = reap(pid);
    close(fd);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGINT);
}

static void signal_second_sigint_kills(void **state)
{
    (void)state;
    sigint_second_body(1);
    sigint_second_body(2);
}

static int setup(void **state)
{
    (void)state;
    set_prev_handler(SIGUSR1);
    set_prev_handler(SIGUSR2);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* fork() first, before this process has run any runtime. */
        cmocka_unit_test(signal_sigint_cancels_main),
        cmocka_unit_test(signal_second_sigint_kills),
        cmocka_unit_test(signal_handler_runs_on_kill_and_raise),
        cmocka_unit_test(signal_replace_and_remove),
        cmocka_unit_test(signal_bad_signo_errors),
        cmocka_unit_test(signal_burst_coalesces),
        cmocka_unit_test(signal_handlers_removed_at_run_end),
        cmocka_unit_test(signal_one_runtime_per_signal),
        cmocka_unit_test(signal_sigint_restored_after_run),
        cmocka_unit_test(signal_sigint_custom_disposition_left_alone),
        cmocka_unit_test(signal_sigint_user_handler_takes_precedence),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
