/* tests/test_spawn_nomem.c - when the kernel refuses a task's stack, that
 * task fails with -ENOMEM ("cannot allocate a task stack"), spawn returns
 * -ENOMEM while stacks are refused, and the runtime keeps running: spawning
 * works again once a stack has been given back.
 *
 * The refusal is real: a child process caps its address space
 * (RLIMIT_AS) and asks for a stack far larger than the cap. Skipped under the
 * sanitizers, whose shadow memory does not fit under such a cap.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <corio/corio.h>

enum { OK = 0, BAD_FIRST = 10, BAD_MSG, BAD_SPAWN_REFUSED, BAD_RECOVER, BAD_RUN };

static void *nothing(void *arg)
{
    return arg;
}

static void *exhaust(void *arg)
{
    int *verdict = arg;
    /* 1 GiB of stack under a 512 MiB address-space cap: the mmap fails. */
    corio_spawn_options big = {.name = "too-big", .stack_size = 1024u * 1024 * 1024};
    corio_task *t;
    if (corio_spawn_ex(&t, nothing, NULL, &big) < 0)
        return (void *)(intptr_t)(*verdict = BAD_FIRST);
    const char *msg = NULL;
    int rc = corio_await(t, NULL);
    corio_task_exception(t, &msg);
    /* The message lives as long as the task: check it before the unref. */
    bool msg_ok = msg && strstr(msg, "stack");
    corio_task_unref(t);
    if (rc != -ENOMEM)
        return (void *)(intptr_t)(*verdict = BAD_FIRST);
    if (!msg_ok)
        return (void *)(intptr_t)(*verdict = BAD_MSG);
    /* No stack has come back since: spawning is refused. */
    if (corio_spawn(NULL, nothing, NULL) != -ENOMEM)
        return (void *)(intptr_t)(*verdict = BAD_SPAWN_REFUSED);
    return NULL;
}

static void *recover_main(void *arg)
{
    int *verdict = arg;
    corio_task *t;
    /* This task's own stack was allocated before the failure; when a task
     * that ran ends, its stack goes back and spawning works again. */
    corio_spawn_options small = {.name = "exhauster"};
    if (corio_spawn_ex(&t, exhaust, verdict, &small) < 0)
        return (void *)(intptr_t)(*verdict = BAD_FIRST);
    corio_await(t, NULL);
    corio_task_unref(t);
    if (*verdict != OK)
        return NULL;
    if (corio_spawn(&t, nothing, (void *)7) < 0)
        return (void *)(intptr_t)(*verdict = BAD_RECOVER);
    void *v = NULL;
    if (corio_await(t, &v) != 0 || v != (void *)7)
        *verdict = BAD_RECOVER;
    corio_task_unref(t);
    return NULL;
}

static void spawn_nomem_then_recovers(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit lim = {.rlim_cur = 512u << 20, .rlim_max = 512u << 20};
        setrlimit(RLIMIT_AS, &lim);
        int verdict = OK;
        corio_rt_options o = {.workers = 1};
        if (corio_run(recover_main, &verdict, &o, NULL) != 0 && verdict == OK)
            verdict = BAD_RUN;
        _exit(verdict);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), OK);
}

int main(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return 77;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spawn_nomem_then_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
