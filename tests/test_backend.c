/* tests/test_backend.c - choosing and running the I/O backend (io/io.c,
 * io/uring.c, io/epoll.c): CORIO_BACKEND, the fallback to epoll when
 * io_uring is refused (seccomp: EPERM as Docker's profile does, ENOSYS as an
 * old kernel), a busy worker that still reaps completions and timers, and an
 * idle runtime that sleeps in its backend without using CPU, and multishot
 * accept (io/multi.c: a burst, cancellation closing what was queued, errors).
 *
 * White-box: the backend a worker runs is read from the worker struct
 * (core/internal.h: rt->workers[i].io_ops->name).
 *
 * io/io.c chooses the backend once per process, so the choice cases run in
 * child processes, forked from the test's main thread before this binary
 * ran any runtime (they come first in main(), and nothing before them
 * starts threads). A child reports through its exit status (0 fine, 77
 * skipped, else failed, with the reason on stdout) and its stderr comes back
 * through a pipe, where the fallback must have written exactly one line.
 */
#include <dirent.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corio/corio.h"
#include "backend.h"
#include "internal.h"

#include "testutil.h"

#define MS CORIO_MSEC

/* ---- in a child: a runtime that must run on @want ----------------------- */

struct child_run {
    const char *want;    /* the backend every worker must run */
    char why[160];       /* the first failure */
};

static void child_fail(struct child_run *c, const char *what, long got)
{
    if (!c->why[0])
        snprintf(c->why, sizeof c->why, "%s (got %ld)", what, got);
}

static void *child_main(void *arg)
{
    struct child_run *c = arg;
    struct corio_rt *rt = corio_get_running_rt();
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (!rt->workers[i].io_ops || strcmp(rt->workers[i].io_ops->name, c->want))
            child_fail(c, "a worker runs the other backend", (long)i);
    /* A socket echo and a sleep, on that backend. */
    uint16_t port;
    int l = corio_tcp_listen("127.0.0.1", 0, 4, &port);
    int a = corio_tcp_connect("127.0.0.1", port);
    int b = corio_sock_accept(l, NULL, NULL);
    if (l < 0 || a < 0 || b < 0) {
        child_fail(c, "socket setup", a < 0 ? a : b);
        return NULL;
    }
    char buf[8];
    long n = corio_sock_send(a, "echo", 4, 0);
    if (n != 4)
        child_fail(c, "send", n);
    n = corio_sock_recv(b, buf, sizeof buf, 0);
    if (n != 4 || memcmp(buf, "echo", 4))
        child_fail(c, "recv", n);
    uint64_t t0 = corio_time_ns();
    n = corio_sleep(20 * MS);
    if (n != 0 || corio_time_ns() - t0 < 20 * MS)
        child_fail(c, "sleep", n);
    corio_close(a);
    corio_close(b);
    corio_close(l);
    return NULL;
}

/* Makes io_uring_setup fail with @err for this process and its threads.
 * false when seccomp cannot be used here. */
static bool refuse_io_uring(int err)
{
#if defined(__x86_64__)
    const unsigned arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
    const unsigned arch = AUDIT_ARCH_AARCH64;
#else
    return false;
#endif
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

/* Whether this process may set up an io_uring (raw, as the probe does). */
static bool uring_usable(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    long fd = syscall(__NR_io_uring_setup, 2, &p);
    if (fd < 0)
        return false;
    close((int)fd);
    return (p.features & IORING_FEAT_NODROP) != 0;
}

enum child_mode { FORCE_EPOLL, FORCE_URING, SECCOMP_EPERM, SECCOMP_ENOSYS };

static int child(enum child_mode mode)
{
    struct child_run c = {.want = "epoll"};
    switch (mode) {
    case FORCE_EPOLL:
        setenv("CORIO_BACKEND", "epoll", 1);
        break;
    case FORCE_URING:
        setenv("CORIO_BACKEND", "uring", 1);
        if (!uring_usable())
            return 77;
        c.want = "uring";
        break;
    case SECCOMP_EPERM:
    case SECCOMP_ENOSYS:
        unsetenv("CORIO_BACKEND");   /* choose by probe */
        if (!refuse_io_uring(mode == SECCOMP_EPERM ? EPERM : ENOSYS))
            return 77;
        break;
    }
    corio_rt_options o = {.workers = 2};
    int rc = corio_run(child_main, &c, &o, NULL);
    if (rc != 0)
        child_fail(&c, "corio_run", rc);
    if (c.why[0])
        printf("child: %s\n", c.why);
    return c.why[0] ? 1 : 0;
}

/* Runs child(@mode) in a forked process; returns its exit status and its
 * stderr in @err (NUL-terminated). */
static int run_child(enum child_mode mode, char *err, size_t errlen)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], STDERR_FILENO);
        close(p[1]);
        int rc = child(mode);
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(p[0], err + len, errlen - 1 - len)) > 0)
        len += (size_t)n;
    err[len] = '\0';
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    fputs(err, stderr);   /* echo: nothing is hidden */
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void backend_env_forces_epoll(void **state)
{
    (void)state;
    char err[4096];
    assert_int_equal(run_child(FORCE_EPOLL, err, sizeof err), 0);
    assert_string_equal(err, "");   /* a forced choice says nothing */
}

static void backend_env_uring_runs_uring(void **state)
{
    (void)state;
    char err[4096];
    int rc = run_child(FORCE_URING, err, sizeof err);
    if (rc == 77)
        skip();
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
}

static void expect_fallback(enum child_mode mode)
{
    char err[4096];
    int rc = run_child(mode, err, sizeof err);
    if (rc == 77)
        skip();
    assert_int_equal(rc, 0);
    assert_int_equal(count_lines(err), 1);
    assert_true(strstr(err, "seccomp") || strstr(err, "sysctl"));
    assert_non_null(strstr(err, "epoll"));
}

static void backend_seccomp_eperm_falls_back(void **state)
{
    (void)state;
    expect_fallback(SECCOMP_EPERM);
}

static void backend_seccomp_enosys_falls_back(void **state)
{
    (void)state;
    expect_fallback(SECCOMP_ENOSYS);
}

/* ---- in this process ------------------------------------------------------ */

/* The backend in use here agrees with $CORIO_BACKEND (tests/run sets it). */
static void *env_main(void *arg)
{
    struct checks *ck = arg;
    struct corio_rt *rt = corio_get_running_rt();
    const char *env = getenv("CORIO_BACKEND");
    for (unsigned i = 0; i < rt->nworkers; i++) {
        const char *name = rt->workers[i].io_ops->name;
        CHECK(ck, !strcmp(name, "uring") || !strcmp(name, "epoll"));
        if (env && !strcmp(env, "epoll"))
            CHECK_STR(ck, name, "epoll");
        CHECK(ck, !strcmp(name, rt->workers[0].io_ops->name));
    }
    return NULL;
}

static void backend_matches_env(void **state)
{
    (void)state;
    run_checks(2, env_main);
}

struct busy {
    struct checks ck;
    int fd;
    atomic_bool received;
    long spins;
    bool spin_timed_out;
    uint64_t recv_ns;
};

/* Never suspends except by yielding, so its worker never blocks in the
 * backend: completions must be reaped between steps. */
static void *spinner(void *arg)
{
    struct busy *b = arg;
    uint64_t t0 = corio_time_ns();
    while (!atomic_load(&b->received)) {
        corio_yield();
        b->spins++;
        if (corio_time_ns() - t0 > 3 * CORIO_SEC) {
            b->spin_timed_out = true;
            break;
        }
    }
    return NULL;
}

static void *receiver(void *arg)
{
    struct busy *b = arg;
    char buf[8];
    CHECK_EQ(&b->ck, corio_sock_recv(b->fd, buf, sizeof buf, 0), 3);
    b->recv_ns = corio_time_ns();
    atomic_store(&b->received, true);
    return NULL;
}

static void *busy_main(void *arg)
{
    struct busy *b = arg;
    uint16_t port;
    int l = corio_tcp_listen("127.0.0.1", 0, 4, &port);
    int a = corio_tcp_connect("127.0.0.1", port);
    b->fd = corio_sock_accept(l, NULL, NULL);
    CHECK(&b->ck, l >= 0 && a >= 0 && b->fd >= 0);
    corio_task *s, *r;
    CHECK_EQ(&b->ck, corio_spawn(&r, receiver, b), 0);
    CHECK_EQ(&b->ck, corio_spawn(&s, spinner, b), 0);
    /* This timer, too, must fire while the worker is busy. */
    uint64_t t0 = corio_time_ns();
    CHECK_EQ(&b->ck, corio_sleep(20 * MS), 0);
    CHECK((&b->ck), corio_time_ns() - t0 < 1000 * MS);
    uint64_t sent = corio_time_ns();
    CHECK_EQ(&b->ck, corio_sock_send(a, "abc", 3, 0), 3);
    corio_await(r, NULL);
    corio_await(s, NULL);
    CHECK(&b->ck, !b->spin_timed_out);
    CHECK(&b->ck, b->recv_ns - sent < 500 * MS);
    corio_task_unref(r);
    corio_task_unref(s);
    corio_close(a);
    corio_close(b->fd);
    corio_close(l);
    return NULL;
}

static void backend_busy_worker_reaps(void **state)
{
    (void)state;
    for (unsigned w = 1; w <= 2; w++) {
        struct busy b = {0};
        run_main_checked(w, busy_main, &b, &b.ck);
        assert_true(b.spins > 0);
    }
}

struct idle {
    struct checks ck;
    double cpu_ms;
};

static double cpu_ms_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static void *idle_main(void *arg)
{
    struct idle *d = arg;
    corio_sleep(10 * MS);   /* let the other workers settle into their park */
    double c0 = cpu_ms_now();
    CHECK_EQ(&d->ck, corio_sleep(200 * MS), 0);
    d->cpu_ms = cpu_ms_now() - c0;
    return NULL;
}

static void backend_idle_uses_no_cpu(void **state)
{
    (void)state;
    struct idle d = {0};
    run_main_checked(2, idle_main, &d, &d.ck);
    fprintf(stderr, "idle 200 ms on 2 workers: %.2f ms CPU\n", d.cpu_ms);
    assert_true(d.cpu_ms < 20.0);
}

/* ---- multishot accept (io/multi.c) ---------------------------------------- */

#define BURST 40

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static bool eof_seen(struct checks *ck, int fd)
{
    char c;
    ssize_t n = corio_sock_recv_timeout(fd, &c, 1, 0, CORIO_SEC);   /* closed already */
    CHECK(ck, n == 0 || n == -ECONNRESET);
    return n == 0 || n == -ECONNRESET;
}

/* A burst of connections made before the first take: one request (on
 * io_uring) yields them all, in order of arrival, each a distinct fd. */
static void *burst_main(void *arg)
{
    struct checks *ck = arg;
    int fds0 = open_fds();
    uint16_t port;
    int l = corio_tcp_listen("127.0.0.1", 0, 2 * BURST, &port);
    CHECK(ck, l >= 0);
    struct corio__io_multi m;
    corio__io_multi_init_accept(&m, l);
    int cli[BURST], srv[BURST];
    for (int i = 0; i < BURST; i++) {
        cli[i] = corio_tcp_connect("127.0.0.1", port);
        CHECK(ck, cli[i] >= 0);
    }
    for (int i = 0; i < BURST; i++) {
        srv[i] = corio__io_multi_next(&m);
        CHECK(ck, srv[i] >= 0);
        for (int j = 0; j < i; j++)
            CHECK(ck, srv[j] != srv[i]);
    }
    /* Each is a live connection: a byte goes through. */
    for (int i = 0; i < BURST; i++) {
        char c = (char)i, got = 0;
        CHECK_EQ(ck, corio_sock_send(cli[i], &c, 1, 0), 1);
        CHECK_EQ(ck, corio_sock_recv_timeout(srv[i], &got, 1, 0, 5 * CORIO_SEC), 1);
        CHECK_EQ(ck, got, c);
        corio_close(srv[i]);
        corio_close(cli[i]);
    }
    corio__io_multi_close(&m);
    corio_close(l);
    CHECK(ck, open_fds() <= fds0);   /* a leak adds; a helper thread's pipe may go */
    return NULL;
}

static void backend_multishot_accept_burst(void **state)
{
    (void)state;
    run_checks(1, burst_main);
    run_checks(2, burst_main);
}

/* A task cancelled while the request runs: at its next await (a sleep) or
 * parked in the take. What the request accepted meanwhile is closed, none
 * leaks, and the clients see their connection end. */
struct mcancel {
    struct checks ck;
    int l;
    bool in_take;        /* cancelled parked in the take, not in a sleep */
    atomic_int took;
    int rc;
};

static void *mcancel_acceptor(void *arg)
{
    struct mcancel *c = arg;
    struct corio__io_multi m;
    corio__io_multi_init_accept(&m, c->l);
    int fd = corio__io_multi_next(&m);
    CHECK(&c->ck, fd >= 0);
    corio_close(fd);
    atomic_store(&c->took, 1);
    c->rc = c->in_take ? corio__io_multi_next(&m) : corio_sleep(10 * CORIO_SEC);
    corio__io_multi_close(&m);
    return NULL;
}

static void *mcancel_main(void *arg)
{
    struct mcancel *c = arg;
    int fds0 = open_fds();
    uint16_t port;
    c->l = corio_tcp_listen("127.0.0.1", 0, 2 * BURST, &port);
    CHECK(&c->ck, c->l >= 0);
    corio_task *t;
    CHECK_EQ(&c->ck, corio_spawn(&t, mcancel_acceptor, c), 0);
    int first = corio_tcp_connect("127.0.0.1", port);
    while (!atomic_load(&c->took))
        corio_sleep(MS);
    int n = c->in_take ? 0 : BURST;   /* parked in the take: nothing may queue */
    int cli[BURST];
    for (int i = 0; i < n; i++)
        cli[i] = corio_tcp_connect("127.0.0.1", port);
    corio_sleep(20 * MS);   /* the request accepts them (io_uring) */
    CHECK_EQ(&c->ck, corio_task_cancel(t, NULL), true);
    corio_await(t, NULL);
    CHECK_EQ(&c->ck, c->rc, -ECANCELED);
    corio_task_unref(t);
    corio_close(c->l);   /* what is still in the backlog (epoll) goes too */
    for (int i = 0; i < n; i++) {
        CHECK(&c->ck, cli[i] >= 0);
        eof_seen(&c->ck, cli[i]);
        corio_close(cli[i]);
    }
    corio_close(first);
    CHECK(&c->ck, open_fds() <= fds0);
    return NULL;
}

static void backend_multishot_cancel_closes_queued(void **state)
{
    (void)state;
    for (unsigned w = 1; w <= 2; w++)
        for (int in_take = 0; in_take < 2; in_take++) {
            struct mcancel c = {.in_take = in_take};
            run_main_checked(w, mcancel_main, &c, &c.ck);
        }
}

/* Outside a task, and a descriptor that cannot accept: the error comes back
 * as a result, and the next take tries again (no spin on a dead request). */
static void *merr_main(void *arg)
{
    struct checks *ck = arg;
    int sv[2];
    CHECK_EQ(ck, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct corio__io_multi m;
    corio__io_multi_init_accept(&m, sv[0]);
    CHECK_EQ(ck, corio__io_multi_next(&m), -EINVAL);
    CHECK_EQ(ck, corio__io_multi_next(&m), -EINVAL);
    corio__io_multi_close(&m);
    corio__io_multi_init_accept(&m, -1);
    CHECK_EQ(ck, corio__io_multi_next(&m), -EBADF);
    corio__io_multi_close(&m);
    corio_close(sv[0]);
    corio_close(sv[1]);
    return NULL;
}

/* A cancellation comes before the results already queued: a flood of
 * connections cannot hold it off. */
static void *mfirst_main(void *arg)
{
    struct checks *ck = arg;
    uint16_t port;
    int l = corio_tcp_listen("127.0.0.1", 0, 16, &port);
    CHECK(ck, l >= 0);
    struct corio__io_multi m;
    corio__io_multi_init_accept(&m, l);
    int cli[4];
    cli[0] = corio_tcp_connect("127.0.0.1", port);
    int s = corio__io_multi_next(&m);
    CHECK(ck, s >= 0);
    for (int i = 1; i < 4; i++)
        cli[i] = corio_tcp_connect("127.0.0.1", port);
    corio_sleep(20 * MS);   /* io_uring: the request queues them */
    corio_task *self = corio_current_task();
    CHECK_EQ(ck, corio_task_cancel(self, NULL), true);
    CHECK_EQ(ck, corio__io_multi_next(&m), -ECANCELED);
    CHECK_EQ(ck, corio_task_uncancel(self), 0);
    corio__io_multi_close(&m);
    corio_close(l);
    corio_close(s);
    for (int i = 1; i < 4; i++) {
        CHECK(ck, cli[i] >= 0);
        eof_seen(ck, cli[i]);   /* queued or still in the backlog: closed */
    }
    for (int i = 0; i < 4; i++)
        corio_close(cli[i]);
    return NULL;
}

static void backend_multishot_cancel_before_queued(void **state)
{
    (void)state;
    run_checks(1, mfirst_main);
    run_checks(2, mfirst_main);
}

/* What a kernel before 5.19 gets (its accept refuses the multishot flag
 * with -EINVAL, which turns the request into one plain accept per take):
 * forced here, the takes still serve connections in order. */
static void *mfallback_main(void *arg)
{
    struct checks *ck = arg;
    uint16_t port;
    int l = corio_tcp_listen("127.0.0.1", 0, 8, &port);
    CHECK(ck, l >= 0);
    struct corio__io_multi m;
    corio__io_multi_init_accept(&m, l);
    m.one_shot = true;
    int cli[3];
    for (int i = 0; i < 3; i++) {
        cli[i] = corio_tcp_connect("127.0.0.1", port);
        int s = corio__io_multi_next(&m);
        CHECK(ck, cli[i] >= 0 && s >= 0);
        CHECK(ck, !m.armed);   /* no request stays in the kernel */
        char c = 'a';
        CHECK_EQ(ck, corio_sock_send(cli[i], &c, 1, 0), 1);
        CHECK_EQ(ck, corio_sock_recv_timeout(s, &c, 1, 0, 5 * CORIO_SEC), 1);
        corio_close(s);
    }
    for (int i = 0; i < 3; i++)
        corio_close(cli[i]);
    corio__io_multi_close(&m);
    corio_close(l);
    return NULL;
}

static void backend_multishot_falls_back_to_one_shot(void **state)
{
    (void)state;
    run_checks(1, mfallback_main);
    run_checks(2, mfallback_main);
}

static void backend_multishot_errors(void **state)
{
    (void)state;
    run_checks(1, merr_main);
    struct corio__io_multi m;
    corio__io_multi_init_accept(&m, 0);
    assert_int_equal(corio__io_multi_next(&m), -EPERM);
    corio__io_multi_close(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* Forking cases first: no runtime (no thread) exists yet. */
        cmocka_unit_test(backend_env_forces_epoll),
        cmocka_unit_test(backend_env_uring_runs_uring),
        cmocka_unit_test(backend_seccomp_eperm_falls_back),
        cmocka_unit_test(backend_seccomp_enosys_falls_back),
        cmocka_unit_test(backend_matches_env),
        cmocka_unit_test(backend_busy_worker_reaps),
        cmocka_unit_test(backend_idle_uses_no_cpu),
        cmocka_unit_test(backend_multishot_accept_burst),
        cmocka_unit_test(backend_multishot_cancel_closes_queued),
        cmocka_unit_test(backend_multishot_errors),
        cmocka_unit_test(backend_multishot_falls_back_to_one_shot),
        cmocka_unit_test(backend_multishot_cancel_before_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
