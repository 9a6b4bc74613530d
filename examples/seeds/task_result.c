/* examples/seeds/task_result.c - read a task's result after the loop has run it.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "通过result获取" (getting the
 * result with result()), which begins `import asyncio` /
 * `async def hello1(a, b):`:
 *
 *     async def hello1(a, b):
 *         print("Hello world 01 begin")
 *         await asyncio.sleep(3)  # simulate a task that takes 3 seconds
 *         print("Hello again 01 end")
 *         return a + b
 *
 *     coroutine = hello1(10, 5)
 *     loop = asyncio.get_event_loop()          # step 1: create the event loop
 *     task = asyncio.ensure_future(coroutine)  # step 2: wrap the coroutine in a task
 *     loop.run_until_complete(task)            # step 3: run it on the loop
 *     print('-------------------------------------')
 *     print(task.result())
 *     loop.close()
 *
 * Prints, like the Python version:
 *     Hello world 01 begin
 *     Hello again 01 end
 *     -------------------------------------
 *     15
 *
 * The same three steps: corio_rt_create() makes the runtime, corio_rt_run()
 * runs hello1(10, 5) as its main task until it ends and hands back a
 * reference to that task, whose result corio_task_result() reads afterwards,
 * as task.result() does; corio_rt_destroy() is loop.close(). Changed:
 * asyncio.sleep(3) became corio_yield(); with one task it resumes at once,
 * so the lines are the same, three seconds sooner.
 */
#include <corio/corio.h>

#include <stdint.h>
#include <stdio.h>

struct operands {
    int a, b;
};

static void *hello1(void *arg)
{
    const struct operands *op = arg;
    int err;

    printf("Hello world 01 begin\n");
    err = corio_yield();
    if (err < 0)
        corio_raise(err, "yield: %s", corio_strerror(err));
    printf("Hello again 01 end\n");
    return (void *)(intptr_t)(op->a + op->b);
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    struct operands coroutine = {10, 5};    /* hello1(10, 5) */
    corio_rt *loop;
    corio_task *task = NULL;
    void *result;
    int err;

    err = corio_rt_create(&loop, &opts);
    if (err < 0) {
        fprintf(stderr, "seed_task_result: create: %s\n", corio_strerror(err));
        return 1;
    }
    err = corio_rt_run(loop, hello1, &coroutine, &task);
    if (err == 0) {
        printf("-------------------------------------\n");
        err = corio_task_result(task, &result);
        if (err == 0)
            printf("%d\n", (int)(intptr_t)result);
    }
    corio_task_unref(task);
    corio_rt_destroy(loop);
    if (err < 0) {
        fprintf(stderr, "seed_task_result: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
