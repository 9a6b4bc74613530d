/* examples/seeds/ensure_future.c - two tasks interleave where each one waits.
 *
 * Ports seed 004_3419876ca0de8134.txt, section "async&await", which begins
 * `import asyncio` / `async def func1():` (the same snippet is in
 * 002_61ca3165eff9bae7.txt under "async & awit 关键字"):
 *
 *     async def func1():
 *         print(1)
 *         await asyncio.sleep(2)
 *         print(2)
 *
 *     async def func2():
 *         print(3)
 *         await asyncio.sleep(2)
 *         print(4)
 *
 *     tasks = [
 *         asyncio.ensure_future(func1()),  # wraps the coroutine object
 *         asyncio.ensure_future(func2())   # in a Task object
 *     ]
 *
 *     loop = asyncio.get_event_loop()
 *     loop.run_until_complete(asyncio.wait(tasks))
 *
 * Prints, like the Python version:
 *     1
 *     3
 *     2
 *     4
 *
 * The seeds' section "asyncio" before it has the same program written with
 * @asyncio.coroutine and `yield from asyncio.sleep(2)` (gone since Python
 * 3.11); it prints the same, and so does this port.
 *
 * C cannot create tasks before a runtime runs, so the main task plays
 * run_until_complete(asyncio.wait(tasks)): it spawns the two tasks
 * (ensure_future) and waits for both (corio_wait() with
 * CORIO_ALL_COMPLETED). Changed: asyncio.sleep(2) became corio_yield(). Both
 * tasks slept equally long, so the first to sleep woke first; yielding hands
 * over in the same order, and the lines are the same, two seconds sooner.
 */
#include <corio/corio.h>

#include <stdio.h>

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static void *func1(void *arg)
{
    (void)arg;
    printf("1\n");
    check(corio_yield(), "yield");
    printf("2\n");
    return NULL;
}

static void *func2(void *arg)
{
    (void)arg;
    printf("3\n");
    check(corio_yield(), "yield");
    printf("4\n");
    return NULL;
}

static void *main_task(void *arg)
{
    corio_task *tasks[2];
    corio_future *fs[2];
    int err;

    (void)arg;
    check(corio_spawn(&tasks[0], func1, NULL), "ensure_future func1");
    check(corio_spawn(&tasks[1], func2, NULL), "ensure_future func2");
    fs[0] = corio_task_future(tasks[0]);
    fs[1] = corio_task_future(tasks[1]);
    err = corio_wait(fs, 2, CORIO_ALL_COMPLETED, NULL, NULL, NULL, NULL);
    corio_task_unref(tasks[0]);
    corio_task_unref(tasks[1]);
    check(err, "wait");
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_ensure_future: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
