/* examples/seeds/say_after_tasks.c - two tasks sleep at the same time.
 *
 * Ports seed 003_e06858303655a35c.txt, section "3、了解 asyncio.create_task"
 * (create_task):
 *
 *     import asyncio
 *     import time
 *
 *     async def say_after(delay, what):
 *         await asyncio.sleep(delay)
 *         print(what)
 *
 *     async def main():
 *         task1 = asyncio.create_task(say_after(1, 'hello'))
 *         task2 = asyncio.create_task(say_after(2, 'world'))
 *
 *         # create_task makes the tasks up front: both are in the event
 *         # loop already.
 *
 *         print(f"started at {time.strftime('%X')}")
 *         await task1
 *         await task2
 *         print(f"finished at {time.strftime('%X')}")
 *
 *     asyncio.run(main())
 *
 * Python prints (the clock times differ on every run):
 *     started at 20:10:29
 *     hello
 *     world
 *     finished at 20:10:31
 *
 * The seed's point (its closing comment): while task1 waits its 1 s, the
 * loop is idle and runs task2, so when task1 is done task2 has 1 s left:
 * 2 s in all instead of say_after_sequential.c's 3 s. corio_spawn() is
 * create_task() and corio_await() on the task is `await task`.
 */
#include <corio/corio.h>

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define SECOND INT64_C(1000000000)

struct say {
    int64_t delay_s;
    const char *what;
};

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

/* time.strftime('%X') in the C locale: the wall clock as HH:MM:SS. */
static const char *clock_now(char *buf, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;

    localtime_r(&t, &tm);
    strftime(buf, size, "%X", &tm);
    return buf;
}

static void *say_after(void *arg)
{
    const struct say *s = arg;

    check(corio_sleep(s->delay_s * SECOND), "sleep");
    printf("%s\n", s->what);
    return NULL;
}

static void *main_task(void *arg)
{
    static const struct say hello = {1, "hello"}, world = {2, "world"};
    corio_task *task1, *task2;
    char buf[32];

    (void)arg;
    check(corio_spawn(&task1, say_after, (void *)&hello), "spawn task1");
    check(corio_spawn(&task2, say_after, (void *)&world), "spawn task2");

    printf("started at %s\n", clock_now(buf, sizeof(buf)));
    check(corio_await(task1, NULL), "await task1");
    check(corio_await(task2, NULL), "await task2");
    printf("finished at %s\n", clock_now(buf, sizeof(buf)));

    corio_task_unref(task1);
    corio_task_unref(task2);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_say_after_tasks: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
