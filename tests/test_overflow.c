/* tests/test_overflow.c - a task that overflows its stack is named on stderr
 * and the process dies of SIGSEGV (it cannot be recovered); a fault that is
 * not a stack overflow is left to the program's own handler.
 *
 * Each case forks, so the crash happens in a child. Skipped under ASan,
 * whose own SIGSEGV reporting replaces ours.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <corio/corio.h>

static volatile int sink;

static int recurse(int depth)
{
    volatile char pad[512];
    pad[0] = (char)depth;
    sink = pad[0];
    return depth == 0 ? 0 : recurse(depth - 1) + pad[0];
}

static void *deep(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)recurse(1 << 20);
}

static void *spawn_deep(void *arg)
{
    (void)arg;
    corio_spawn_options o = {.name = "deep-diver"};
    corio_task *t;
    corio_spawn_ex(&t, deep, NULL, &o);
    corio_await(t, NULL);
    corio_task_unref(t);
    return NULL;
}

/* Runs @fn in a child with stderr captured; returns its wait status. */
static int run_child(void *(*fn)(void *), char *err, size_t errlen)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* cmocka's own SIGSEGV handler would turn the crash into a test
         * failure inside the child: the child crashes as a program would. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        corio_rt_options o = {.workers = 2};
        corio_run(fn, NULL, &o, NULL);
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < errlen && (r = read(p[0], err + n, errlen - 1 - n)) > 0)
        n += (size_t)r;
    err[n] = 0;
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    return status;
}

static void overflow_names_the_task(void **state)
{
    (void)state;
    char err[4096];
    int status = run_child(spawn_deep, err, sizeof err);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
    assert_non_null(strstr(err, "stack overflow in task 'deep-diver'"));
}

static void *null_write(void *arg)
{
    (void)arg;
    *(volatile int *)(uintptr_t)sink = 1;   /* sink == 0: a NULL write */
    return NULL;
}

static void overflow_other_faults_are_not_blamed_on_the_stack(void **state)
{
    (void)state;
    char err[4096];
    sink = 0;
    int status = run_child(null_write, err, sizeof err);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
    assert_null(strstr(err, "stack overflow"));
}

int main(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return 77;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(overflow_names_the_task),
        cmocka_unit_test(overflow_other_faults_are_not_blamed_on_the_stack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
