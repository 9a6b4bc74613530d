/* tests/test_seeds.c - the seed examples print what their Python originals print.
 *
 * One case per examples/seeds/<name>.c, named seeds_<name>. Each runs the
 * built program CORIO_EXAMPLES_DIR "/seed_<name>" in a child process
 * (posix_spawn; stdout on a pipe, stderr inherited so that anything the
 * runtime reports shows in the test log), gives it RUN_TIMEOUT_S seconds to
 * exit, and asserts exit status 0 and exactly the expected lines, in order.
 *
 * The expected lines are what CPython 3.11 prints for the seed snippet (each
 * example's opening comment quotes it), except where that comment says what
 * the port changed, such as a thread shown as "<worker 0>". A line that
 * Python fills with an elapsed time is written THEN_SECONDS("<prefix>") here:
 * it matches "<prefix>" followed by a non-negative decimal number and nothing
 * else; one that Python fills with time.strftime('%X') is THEN_CLOCK("<prefix>"):
 * "<prefix>" followed by HH:MM:SS. Seeds that really sleep are also timed
 * (EXPECT_TIMED): the run takes at least the time the Python original
 * sleeps, and less than that plus TIMED_SLACK_MS.
 *
 * A missing example binary fails its case with the path and how to build it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CORIO_EXAMPLES_DIR
#error "CORIO_EXAMPLES_DIR must name the folder of the built examples"
#endif

extern char **environ;

#define RUN_TIMEOUT_S 20  /* per example; all but the timed ones (5 s at most) take < 1 s */
#define SECONDS_MARK '\x01'              /* ends an expected line's fixed prefix */
#define THEN_SECONDS(prefix) (prefix "\x01") /* the prefix, then an elapsed time */
#define CLOCK_MARK '\x02'                /* ends the prefix of a wall-clock line */
#define THEN_CLOCK(prefix) (prefix "\x02")  /* the prefix, then HH:MM:SS */
#define MARKS "\x01\x02"
#define TIMED_SLACK_MS 1500 /* a loaded CI box; a timer itself is late by ~1 ms */

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct output {
    char *text;   /* the child's stdout, NUL-terminated */
    size_t len;
    int status;   /* as waitpid() reports it */
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Kills @pid (our own child) and reaps it. */
static void kill_child(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* Reads @fd until EOF or @deadline into out->text. Returns false on timeout. */
static bool read_all(int fd, struct output *out, int64_t deadline)
{
    size_t cap = 4096;

    out->text = malloc(cap);
    assert_non_null(out->text);
    out->len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int64_t left = deadline - now_ms();
        ssize_t n;

        out->text[out->len] = '\0';
        if (left <= 0)
            return false;
        n = poll(&p, 1, (int)left);
        if (n <= 0)
            continue; /* EINTR, or the deadline: checked above */
        if (cap - out->len < 1024) {
            cap *= 2;
            out->text = realloc(out->text, cap);
            assert_non_null(out->text);
        }
        n = read(fd, out->text + out->len, cap - out->len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return true; /* EOF (or a read error, reported as short output) */
        out->len += (size_t)n;
    }
}

/* Waits for @pid until @deadline. Returns false on timeout. */
static bool wait_child(pid_t pid, int *status, int64_t deadline)
{
    const struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};

    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);

        if (r == pid)
            return true;
        if (r < 0 && errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
        if (now_ms() >= deadline)
            return false;
        nanosleep(&ms, NULL);
    }
}

/* Runs seed_@name and returns what it wrote to stdout and how it ended. */
static void run_example(const char *name, struct output *out)
{
    char path[4096];
    char *argv[2] = {path, NULL};
    posix_spawn_file_actions_t actions;
    int64_t deadline;
    int fds[2], rc;
    pid_t pid;

    snprintf(path, sizeof(path), "%s/seed_%s", CORIO_EXAMPLES_DIR, name);
    if (access(path, X_OK) != 0)
        fail_msg("example binary %s is missing (%s): build examples/seeds/%s.c "
                 "(cmake --build on this build tree) before running this test",
                 path, strerror(errno), name);

    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    assert_int_equal(posix_spawn_file_actions_init(&actions), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO), 0);
    rc = posix_spawn(&pid, path, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        fail_msg("cannot run %s: %s", path, strerror(rc));
    }

    deadline = now_ms() + RUN_TIMEOUT_S * 1000;
    if (!read_all(fds[0], out, deadline) || !wait_child(pid, &out->status, deadline)) {
        close(fds[0]);
        kill_child(pid);
        print_error("seed_%s printed before it was killed:\n%s\n", name, out->text);
        free(out->text);
        fail_msg("seed_%s did not exit within %d s (killed)", name, RUN_TIMEOUT_S);
    }
    close(fds[0]);
}

/* Is @s exactly a time of day as strftime("%X") writes it in the C locale? */
static bool is_clock(const char *s)
{
    for (int i = 0; i < 8; i++)
        if (i % 3 == 2 ? s[i] != ':' : s[i] < '0' || s[i] > '9')
            return false;
    return s[8] == '\0';
}

/* Does @got match the expected line @want (see THEN_SECONDS, THEN_CLOCK)? */
static bool line_matches(const char *want, const char *got)
{
    const char *mark = strpbrk(want, MARKS);
    size_t prefix;
    char *end;
    double s;

    if (mark == NULL)
        return strcmp(want, got) == 0;
    prefix = (size_t)(mark - want);
    if (*mark == CLOCK_MARK)
        return strncmp(want, got, prefix) == 0 && is_clock(got + prefix);
    if (strncmp(want, got, prefix) != 0 || got[prefix] < '0' || got[prefix] > '9')
        return false;
    errno = 0;
    s = strtod(got + prefix, &end);
    return errno == 0 && *end == '\0' && isfinite(s) && s >= 0;
}

static void describe_status(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "wait status %#x", (unsigned)status);
}

/* Runs seed_@name and asserts exit status 0 and the lines @want[0..n). */
static void expect_lines(const char *name, const char *const *want, size_t n)
{
    struct output out;
    char **got;
    size_t ngot = 0, bad = SIZE_MAX;
    bool ok;
    char how[128];

    run_example(name, &out);

    /* Split the output into lines; every line Python prints ends in '\n'. */
    got = calloc(out.len + 1, sizeof(*got));
    assert_non_null(got);
    for (char *p = out.text; *p != '\0';) {
        char *nl = strchr(p, '\n');

        got[ngot++] = p;
        if (nl == NULL) {
            bad = ngot - 1; /* an unterminated last line */
            break;
        }
        *nl = '\0';
        p = nl + 1;
    }
    for (size_t i = 0; i < n && i < ngot && bad == SIZE_MAX; i++)
        if (!line_matches(want[i], got[i]))
            bad = i;
    if (bad == SIZE_MAX && ngot != n)
        bad = ngot < n ? ngot : n;

    ok = WIFEXITED(out.status) && WEXITSTATUS(out.status) == 0 && bad == SIZE_MAX;
    if (!ok) {
        describe_status(out.status, how, sizeof(how));
        print_error("seed_%s: %s; %zu lines expected, %zu printed\n", name, how, n, ngot);
        if (bad != SIZE_MAX)
            print_error("first difference at line %zu\n", bad + 1);
        print_error("--- expected\n");
        for (size_t i = 0; i < n; i++) {
            const char *mark = strpbrk(want[i], MARKS);

            print_error("%s%.*s%s\n", i == bad ? "> " : "  ",
                        mark ? (int)(mark - want[i]) : (int)strlen(want[i]), want[i],
                        !mark ? "" : *mark == CLOCK_MARK ? "<HH:MM:SS>" : "<seconds>");
        }
        print_error("--- printed\n");
        for (size_t i = 0; i < ngot; i++)
            print_error("%s%s\n", i == bad ? "> " : "  ", got[i]);
    }
    free(got);
    free(out.text);
    if (!ok)
        fail_msg("seed_%s did not print what the Python original prints, or did not exit 0",
                 name);
}

#define EXPECT(name, lines) expect_lines(name, lines, ARRAY_SIZE(lines))

/* expect_lines(), and the run took [@sleep_ms, @sleep_ms + @slack_ms). */
static void expect_timed_slack(const char *name, const char *const *want, size_t n,
                               int64_t sleep_ms, int slack_ms)
{
    int64_t start = now_ms(), took;

    expect_lines(name, want, n);
    took = now_ms() - start;
    if (took < sleep_ms || took >= sleep_ms + slack_ms)
        fail_msg("seed_%s took %lld ms; its sleeps take %lld ms (allowed: up to %d ms more)",
                 name, (long long)took, (long long)sleep_ms, slack_ms);
}

#define EXPECT_TIMED(name, lines, sleep_ms) \
    expect_timed_slack(name, lines, ARRAY_SIZE(lines), sleep_ms, TIMED_SLACK_MS)

/* Worker processes are fresh copies of the program: under TSan on a busy
 * 2-core machine five of them took about 1 s to start (CI, 3.56 s for this
 * seed's 2.1 s of sleeps). */
#define PROCESS_START_SLACK_MS 3000

/* ---- coroutines and tasks ---- */

static void seeds_nested(void **state)
{
    static const char *const lines[] = {"42"};

    (void)state;
    EXPECT("nested", lines);
}

static void seeds_coroutine_object(void **state)
{
    static const char *const lines[] = {"hello", "world"};

    (void)state;
    EXPECT("coroutine_object", lines);
}

static void seeds_create_task(void **state)
{
    static const char *const lines[] = {
        "main开始", "main结束", "1", "1", "2", "2", "返回值 返回值",
    };

    (void)state;
    EXPECT("create_task", lines);
}

static void seeds_create_task_wait(void **state)
{
    static const char *const lines[] = {
        "main开始", "main结束", "1", "1", "2", "2",
        ("{<Task finished name='n1' result='返回值'>, "
         "<Task finished name='n2' result='返回值'>} set()"),
    };

    (void)state;
    EXPECT("create_task_wait", lines);
}

static void seeds_task_result(void **state)
{
    static const char *const lines[] = {
        "Hello world 01 begin",
        "Hello again 01 end",
        "-------------------------------------",
        "15",
    };

    (void)state;
    EXPECT("task_result", lines);
}

/* ---- await chains ---- */

static void seeds_await_others(void **state)
{
    static const char *const lines[] = {
        "执行协程函数内部代码", "start", "end", "IO请求结束，结果为： 返回值",
    };

    (void)state;
    EXPECT("await_others", lines);
}

static void seeds_await_others_twice(void **state)
{
    static const char *const lines[] = {
        "执行协程函数内部代码",
        "start", "end", "IO请求结束，结果为： 返回值",
        "start", "end", "IO请求结束，结果为： 返回值",
    };

    (void)state;
    EXPECT("await_others_twice", lines);
}

static void seeds_await_result(void **state)
{
    static const char *const lines[] = {
        "异步函数开始执行", "异步函数执行结束", "30", "主函数执行",
    };

    (void)state;
    EXPECT("await_result", lines);
}

static void seeds_sequential_await(void **state)
{
    static const char *const lines[] = {
        "Hello world 03 begin,my thread is:<worker 0>",
        "Hello world 02 begin,my thread is:<worker 0>",
        "Hello again 02 end",
        "Hello world 01 begin,my thread is:<worker 0>",
        "Hello again 01 end",
        "Hello again 03 end",
        "---------------------------------------",
        THEN_SECONDS(""),
    };

    (void)state;
    EXPECT("sequential_await", lines);
}

static void seeds_async_iterator(void **state)
{
    static char numbers[99][12]; /* room for any int */
    const char *lines[99];

    (void)state;
    for (int i = 0; i < 99; i++) {
        snprintf(numbers[i], sizeof(numbers[i]), "%d", i + 1);
        lines[i] = numbers[i];
    }
    EXPECT("async_iterator", lines);
}

static void seeds_async_context(void **state)
{
    static const char *const lines[] = {"666"};

    (void)state;
    EXPECT("async_context", lines);
}

/* ---- futures and done callbacks ---- */

static void seeds_future_set_result(void **state)
{
    static const char *const lines[] = {"666"};

    (void)state;
    EXPECT("future_set_result", lines);
}

static void seeds_done_callback(void **state)
{
    static const char *const lines[] = {"Result: funa", "Result: funa, N: 1"};

    (void)state;
    EXPECT("done_callback", lines);
}

static void seeds_done_callback_partial(void **state)
{
    static const char *const lines[] = {
        "[corowork] Start coroutine",
        "[corowork] This is a coroutine",
        "[callback] Hello Shiyanlou",
        "[callback] coroutine state: FINISHED",
        THEN_SECONDS("运行耗时:"),
    };

    (void)state;
    EXPECT("done_callback_partial", lines);
}

/* ---- gather ---- */

static const char *const gather_lines[] = {
    "Hello world 01 begin",
    "Hello world 02 begin",
    "Hello world 03 begin",
    "Hello again 02 end",
    "Hello again 01 end",
    "Hello again 03 end",
    "15",
    "5",
    "50",
};

static void seeds_gather_results(void **state)
{
    (void)state;
    EXPECT("gather_results", gather_lines);
}

static void seeds_gather_return(void **state)
{
    (void)state;
    EXPECT("gather_return", gather_lines);
}

/* ---- interleaving ---- */

static void seeds_greenlet(void **state)
{
    static const char *const lines[] = {"1", "3", "2", "4"};

    (void)state;
    EXPECT("greenlet", lines);
}

static void seeds_ensure_future(void **state)
{
    static const char *const lines[] = {"1", "3", "2", "4"};

    (void)state;
    EXPECT("ensure_future", lines);
}

static void seeds_hello_thread(void **state)
{
    static const char *const lines[] = {
        "Hello world! (<worker 0>)",
        "Hello world! (<worker 0>)",
        "Hello again! (<worker 0>)",
        "Hello again! (<worker 0>)",
    };

    (void)state;
    EXPECT("hello_thread", lines);
}

/* ---- seeds that really sleep (a few seconds each) ---- */

static const char *const say_after_lines[] = {
    THEN_CLOCK("started at "),
    "hello",
    "world",
    THEN_CLOCK("finished at "),
};

static void seeds_say_after_sequential(void **state)
{
    (void)state;
    EXPECT_TIMED("say_after_sequential", say_after_lines, 3000); /* 1 s, then 2 s */
}

static void seeds_say_after_tasks(void **state)
{
    (void)state;
    EXPECT_TIMED("say_after_tasks", say_after_lines, 2000); /* 1 s and 2 s at once */
}

static void seeds_wait_timeout(void **state)
{
    static const char *const lines[] = {
        "Hello world 01 begin",
        "Hello world 02 begin",
        "Hello world 03 begin",
        "Hello again 02 end",
        "5",
        "1 2",
    };

    (void)state;
    EXPECT_TIMED("wait_timeout", lines, 2500); /* the timeout; the rest are cancelled */
}

static void seeds_hello_three(void **state)
{
    static const char *const lines[] = {
        "Hello world 01 begin,my thread is:<worker 0>",
        "Hello world 02 begin,my thread is:<worker 0>",
        "Hello world 03 begin,my thread is:<worker 0>",
        "Hello again 03 end",
        "Hello again 02 end",
        "Hello again 01 end",
        "---------------------------------------",
        THEN_SECONDS(""),
    };

    (void)state;
    EXPECT_TIMED("hello_three", lines, 3000); /* 3, 2 and 1 s at once */
}

static void seeds_sequential_sleep(void **state)
{
    static const char *const lines[] = {
        "Hello world 03 begin,my thread is:<worker 0>",
        "Hello world 02 begin,my thread is:<worker 0>",
        "Hello again 02 end",
        "Hello world 01 begin,my thread is:<worker 0>",
        "Hello again 01 end",
        "Hello again 03 end",
        "---------------------------------------",
        THEN_SECONDS(""),
    };

    (void)state;
    EXPECT_TIMED("sequential_sleep", lines, 5000); /* 2 s, then 3 s */
}

/* ---- executors and threads (examples/seeds/executor_*.c) ---- */

static void seeds_executor_gather(void **state)
{
    static const char *const lines[] = {THEN_SECONDS("main method Cost: ")};

    (void)state;
    EXPECT_TIMED("executor_gather", lines, 1000); /* the two 1 s sleeps overlap */
}

static void seeds_executor_default_pool(void **state)
{
    static const char *const lines[] = {"default thread pool defaulf pool"};

    (void)state;
    EXPECT_TIMED("executor_default_pool", lines, 2000);
}

static void seeds_executor_custom_pool(void **state)
{
    static const char *const lines[] = {"custom thread pool defaulf pool"};

    (void)state;
    EXPECT_TIMED("executor_custom_pool", lines, 2000);
}

static void seeds_executor_threadsafe(void **state)
{
    static const char *const lines[] = {"等待计算结果", "300"};

    (void)state;
    EXPECT_TIMED("executor_threadsafe", lines, 3000);
}

static void seeds_executor_submit_loop(void **state)
{
    static const char *const lines[] = {
        "<Future state=running>", "<Future state=running>", "<Future state=running>",
        "<Future state=running>", "<Future state=running>", "<Future state=pending>",
        "<Future state=pending>", "<Future state=pending>", "<Future state=pending>",
        "<Future state=pending>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
    };

    (void)state;
    EXPECT_TIMED("executor_submit_loop", lines, 2000); /* two batches of five */
}

static void seeds_process_pool_submit_loop(void **state)
{
    static const char *const lines[] = {
        "<Future state=running>", "<Future state=running>", "<Future state=running>",
        "<Future state=running>", "<Future state=running>", "<Future state=pending>",
        "<Future state=pending>", "<Future state=pending>", "<Future state=pending>",
        "<Future state=pending>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
    };

    (void)state;
    /* 100 ms of warm-up calls starting the five workers, two rounds of five */
    expect_timed_slack("process_pool_submit_loop", lines, ARRAY_SIZE(lines), 2100,
                       PROCESS_START_SLACK_MS);
}

static void seeds_process_pool_custom_pool(void **state)
{
    static const char *const lines[] = {"custom process pool defaulf pool"};

    (void)state;
    EXPECT_TIMED("process_pool_custom_pool", lines, 2000);
}

static void seeds_executor_download(void **state)
{
    static const char *const lines[] = {
        "开始下载: https://www3.autoimg.cn/newsdfs/g26/M02/35/A9/"
        "120x90_0_autohomecar__ChsEe12AXQ6AOOH_AAFocMs8nzU621.jpg",
        "开始下载: https://www2.autoimg.cn/newsdfs/g30/M01/3C/E2/"
        "120x90_0_autohomecar__ChcCSV2BBICAUntfAADjJFd6800429.jpg",
        "开始下载: https://www3.autoimg.cn/newsdfs/g26/M0B/3C/65/"
        "120x90_0_autohomecar__ChcCP12BFCmAIO83AAGq7vK0sGY193.jpg",
        "下载完成", "下载完成", "下载完成",
    };

    (void)state;
    EXPECT("executor_download", lines);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seeds_nested),
        cmocka_unit_test(seeds_coroutine_object),
        cmocka_unit_test(seeds_create_task),
        cmocka_unit_test(seeds_create_task_wait),
        cmocka_unit_test(seeds_task_result),
        cmocka_unit_test(seeds_await_others),
        cmocka_unit_test(seeds_await_others_twice),
        cmocka_unit_test(seeds_await_result),
        cmocka_unit_test(seeds_sequential_await),
        cmocka_unit_test(seeds_async_iterator),
        cmocka_unit_test(seeds_async_context),
        cmocka_unit_test(seeds_future_set_result),
        cmocka_unit_test(seeds_done_callback),
        cmocka_unit_test(seeds_done_callback_partial),
        cmocka_unit_test(seeds_gather_results),
        cmocka_unit_test(seeds_gather_return),
        cmocka_unit_test(seeds_greenlet),
        cmocka_unit_test(seeds_ensure_future),
        cmocka_unit_test(seeds_hello_thread),
        cmocka_unit_test(seeds_say_after_sequential),
        cmocka_unit_test(seeds_say_after_tasks),
        cmocka_unit_test(seeds_wait_timeout),
        cmocka_unit_test(seeds_hello_three),
        cmocka_unit_test(seeds_sequential_sleep),
        cmocka_unit_test(seeds_executor_gather),
        cmocka_unit_test(seeds_executor_default_pool),
        cmocka_unit_test(seeds_executor_custom_pool),
        cmocka_unit_test(seeds_executor_threadsafe),
        cmocka_unit_test(seeds_executor_submit_loop),
        cmocka_unit_test(seeds_executor_download),
        cmocka_unit_test(seeds_process_pool_submit_loop),
        cmocka_unit_test(seeds_process_pool_custom_pool),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
