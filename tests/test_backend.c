/* tests/test_backend.c - choosing and running the I/O backend (io/io.c,
 * io/uring.c, io/epoll.c): CORIO_BACKEND, the fallback to epoll when
 * io_uring is refused (seccomp: EPERM as Docker's profile does, ENOSYS as an
 * old kernel), a busy worker that still reaps completions and timers, and an
 * idle runtime that sleeps in its backend without using CPU.
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
