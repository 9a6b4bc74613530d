/* examples/seeds/say_after_sequential.c - awaiting coroutines one after another adds their sleeps.
 *
 * Ports seed 003_e06858303655a35c.txt, section "2、了解 await 作用" (what
 * await does):
 *
 *     import asyncio
 *     import time
 *
 *     async def say_after(delay, what):
 *         await asyncio.sleep(delay)
 *         print(what)
 *
 *     async def main():
 *         print(f"started at {time.strftime('%X')}")
 *         await say_after(1, 'hello')  # await hands control back to the loop
 *         await say_after(2, 'world')
 *         print(f"finished at {time.strftime('%X')}")  # 3 seconds in all
 *
 *     coro = main()
 *     asyncio.run(coro)
 *
 * Python prints (the clock times differ on every run):
 *     started at 20:10:25
 *     hello
 *     world
 *     finished at 20:10:28
 *
 * The seed's point: `await say_after(...)` runs the coroutine to its end
 * before the next line, so the two sleeps follow each other: 1 s + 2 s = 3 s.
 * In C the awaited coroutine is a plain call (see await_others.c) and
 * asyncio.sleep() is corio_sleep(), which suspends the task, not the thread.
 * say_after_tasks.c is the same program with two tasks, which takes 2 s.
 */
#include <corio/corio.h>

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define SECOND INT64_C(1000000000)

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

static void say_after(int64_t delay_s, const char *what)
{
    check(corio_sleep(delay_s * SECOND), "sleep");
    printf("%s\n", what);
}

static void *main_task(void *arg)
{
    char buf[32];

    (void)arg;
    printf("started at %s\n", clock_now(buf, sizeof(buf)));
    say_after(1, "hello");
    say_after(2, "world");
    printf("finished at %s\n", clock_now(buf, sizeof(buf)));
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_say_after_sequential: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
