/* examples/seeds/await_others.c - awaiting a coroutine runs it inline.
 *
 * Ports seed 004_3419876ca0de8134.txt, section "await", 示例2 (example 2),
 * which begins `import asyncio` / `async def others():`:
 *
 *     async def others():
 *         print("start")
 *         await asyncio.sleep(2)
 *         print('end')
 *         return '返回值'
 *
 *     async def func():
 *         print("执行协程函数内部代码")
 *         # On an I/O operation the current coroutine (task) is suspended
 *         # and continues once the I/O is done; meanwhile the event loop
 *         # can run other coroutines (tasks).
 *         response = await others()
 *         print("IO请求结束，结果为：", response)
 *
 *     asyncio.run(func())
 *
 * Prints, like the Python version:
 *     执行协程函数内部代码
 *     start
 *     end
 *     IO请求结束，结果为： 返回值
 *
 * `await others()` awaits a coroutine object, which runs inside the awaiting
 * task (no new task is created). A corio task has its own stack, so the C
 * counterpart is a plain call: when others() suspends, func's task suspends
 * with it, and its return value comes back as from any function. Changed:
 * asyncio.sleep(2) became corio_yield(); there is only one task, so it
 * resumes at once and the lines are the same, two seconds sooner.
 */
#include <corio/corio.h>

#include <stdio.h>

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static const char *others(void)
{
    printf("start\n");
    check(corio_yield(), "yield");
    printf("end\n");
    return "返回值";
}

static void *func(void *arg)
{
    const char *response;

    (void)arg;
    printf("执行协程函数内部代码\n");
    response = others();
    printf("IO请求结束，结果为： %s\n", response);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(func, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_await_others: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
