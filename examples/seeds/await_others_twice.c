/* examples/seeds/await_others_twice.c - one task awaits two coroutines in turn.
 *
 * Ports seed 004_3419876ca0de8134.txt, section "await", 示例3 (example 3),
 * which begins `import asyncio` / `async def others():` (the same snippet is
 * in 002_61ca3165eff9bae7.txt under "async/await 关键字"):
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
 *         response1 = await others()
 *         print("IO请求结束，结果为：", response1)
 *
 *         response2 = await others()
 *         print("IO请求结束，结果为：", response2)
 *
 *     asyncio.run(func())
 *
 * Prints, like the Python version:
 *     执行协程函数内部代码
 *     start
 *     end
 *     IO请求结束，结果为： 返回值
 *     start
 *     end
 *     IO请求结束，结果为： 返回值
 *
 * As the seed notes, the loop has a single task here, so there is nothing to
 * switch to while it waits. `await others()` is a plain call in C (see
 * await_others.c). Changed: asyncio.sleep(2) became corio_yield(); with one
 * task it resumes at once, so the lines are the same, four seconds sooner.
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
    const char *response1, *response2;

    (void)arg;
    printf("执行协程函数内部代码\n");

    response1 = others();
    printf("IO请求结束，结果为： %s\n", response1);

    response2 = others();
    printf("IO请求结束，结果为： %s\n", response2);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(func, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_await_others_twice: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
