/* examples/seeds/create_task.c - tasks start when their creator suspends, in creation order.
 *
 * Ports seed 004_3419876ca0de8134.txt, section "Task对象" (Task objects),
 * 示例1 (example 1), which begins `import asyncio` / `async def func():`:
 *
 *     async def func():
 *         print(1)
 *         await asyncio.sleep(2)
 *         print(2)
 *         return "返回值"
 *
 *     async def main():
 *         print("main开始")
 *
 *         # Wrap the coroutine in a Task and add it to the event loop's
 *         # task list at once; it waits there for the loop to run it
 *         # (ready by default).
 *         task1 = asyncio.create_task(func())
 *
 *         # The same for a second task.
 *         task2 = asyncio.create_task(func())
 *
 *         print("main结束")
 *
 *         # When a coroutine hits an I/O operation the loop switches to
 *         # other tasks automatically. These awaits wait for each task to
 *         # finish and take its result.
 *         ret1 = await task1
 *         ret2 = await task2
 *         print(ret1, ret2)
 *
 *     asyncio.run(main())
 *
 * Prints, like the Python version:
 *     main开始
 *     main结束
 *     1
 *     1
 *     2
 *     2
 *     返回值 返回值
 *
 * corio_spawn() is create_task: the task is ready at once but runs only when
 * main suspends, so "main结束" comes before any "1"; then the tasks run in the
 * order they were created. Changed: asyncio.sleep(2) became corio_yield().
 * Both tasks slept equally long, so the first to sleep woke first; yielding
 * hands over in that same order, and the lines are the same.
 */
#include <corio/corio.h>

#include <stdio.h>

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static void *func(void *arg)
{
    (void)arg;
    printf("1\n");
    check(corio_yield(), "yield");
    printf("2\n");
    return "返回值";
}

static void *main_task(void *arg)
{
    corio_task *task1, *task2;
    void *ret1, *ret2;
    int err1, err2;

    (void)arg;
    printf("main开始\n");

    check(corio_spawn(&task1, func, NULL), "spawn task1");
    check(corio_spawn(&task2, func, NULL), "spawn task2");

    printf("main结束\n");

    err1 = corio_await(task1, &ret1);
    err2 = corio_await(task2, &ret2);
    corio_task_unref(task1);
    corio_task_unref(task2);
    check(err1, "await task1");
    check(err2, "await task2");
    printf("%s %s\n", (const char *)ret1, (const char *)ret2);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_create_task: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
