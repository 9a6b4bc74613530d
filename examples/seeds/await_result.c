/* examples/seeds/await_result.c - a coroutine that needs another's result waits for it.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "异步方法假死(freezing)"
 * (an async function "freezing"), which begins `import asyncio` and defines
 * `async def hello1(a,b):`:
 *
 *     # an asynchronous operation
 *     async def hello1(a,b):
 *         print(f"异步函数开始执行")
 *         await asyncio.sleep(3)
 *         print("异步函数执行结束")
 *         return a+b
 *
 *     # one asynchronous operation calling another
 *     async def main():
 *         c=await hello1(10,20)
 *         print(c)
 *         print("主函数执行")
 *
 *     loop = asyncio.get_event_loop()
 *     tasks = [main()]
 *     loop.run_until_complete(asyncio.wait(tasks))
 *     loop.close()
 *
 * Prints, like the Python version:
 *     异步函数开始执行
 *     异步函数执行结束
 *     30
 *     主函数执行
 *
 * main needs hello1's result, so it cannot go on before hello1 ends: the one
 * task of this loop waits. `await hello1(10,20)` is a plain call in C (see
 * await_others.c); running asyncio.wait() over a one-task list is running that
 * task, so corio_run() runs main. Changed: asyncio.sleep(3) became
 * corio_yield(); with one task it resumes at once, so the lines are the same,
 * three seconds sooner.
 */
#include <corio/corio.h>

#include <stdio.h>

static int hello1(int a, int b)
{
    int err;

    printf("异步函数开始执行\n");
    err = corio_yield();
    if (err < 0)
        corio_raise(err, "yield: %s", corio_strerror(err));
    printf("异步函数执行结束\n");
    return a + b;
}

static void *main_task(void *arg)
{
    int c;

    (void)arg;
    c = hello1(10, 20);
    printf("%d\n", c);
    printf("主函数执行\n");
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_await_result: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
