/* examples/seeds/gather_results.c - gather returns results in argument order, not finishing order.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "使用gather同时注册多个任务,
 * 实现并发" (gather: register several tasks to run concurrently), which
 * begins `import asyncio` / `import time` / `async def hello1(a,b):`:
 *
 *     async def hello1(a,b):
 *         print("Hello world 01 begin")
 *         await asyncio.sleep(3)  # simulate a task that takes 3 seconds
 *         print("Hello again 01 end")
 *         return a+b
 *
 *     async def hello2(a,b):
 *         print("Hello world 02 begin")
 *         await asyncio.sleep(2)  # simulate a task that takes 2 seconds
 *         print("Hello again 02 end")
 *         return a-b
 *
 *     async def hello3(a,b):
 *         print("Hello world 03 begin")
 *         await asyncio.sleep(4)  # simulate a task that takes 4 seconds
 *         print("Hello again 03 end")
 *         return a*b
 *
 *     async def main():  # the entry function that wraps the tasks
 *         task1=asyncio.ensure_future(hello1(10,5))
 *         task2=asyncio.ensure_future(hello2(10,5))
 *         task3=asyncio.ensure_future(hello3(10,5))
 *         results=await asyncio.gather(task1,task2,task3)
 *         for result in results:  # each element is its task's return
 *             print(result)       # value, in the same order
 *
 *     loop = asyncio.get_event_loop()
 *     loop.run_until_complete(main())
 *     loop.close()
 *
 * Prints, like the Python version:
 *     Hello world 01 begin
 *     Hello world 02 begin
 *     Hello world 03 begin
 *     Hello again 02 end
 *     Hello again 01 end
 *     Hello again 03 end
 *     15
 *     5
 *     50
 *
 * corio_spawn() is ensure_future, corio_gather_tasks() is gather: results[i]
 * is task i's return value whatever the order the tasks finished in.
 *
 * Changed: asyncio.sleep(n) became n calls of corio_yield(), one per
 * simulated second. On one worker every yield lets each other ready task run
 * one step, so a task that yields fewer times finishes first, in the order
 * the timers give (02 after 2, 01 after 3, 03 after 4); the lines are the
 * same, and the run takes no time instead of 4 s.
 */
#include <corio/corio.h>

#include <stdint.h>
#include <stdio.h>

struct operands {
    int a, b;
};

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

/* asyncio.sleep(@seconds), as one scheduling step per second. */
static void pass_seconds(int seconds)
{
    for (int i = 0; i < seconds; i++)
        check(corio_yield(), "yield");
}

static void *hello1(void *arg)
{
    const struct operands *op = arg;

    printf("Hello world 01 begin\n");
    pass_seconds(3);
    printf("Hello again 01 end\n");
    return (void *)(intptr_t)(op->a + op->b);
}

static void *hello2(void *arg)
{
    const struct operands *op = arg;

    printf("Hello world 02 begin\n");
    pass_seconds(2);
    printf("Hello again 02 end\n");
    return (void *)(intptr_t)(op->a - op->b);
}

static void *hello3(void *arg)
{
    const struct operands *op = arg;

    printf("Hello world 03 begin\n");
    pass_seconds(4);
    printf("Hello again 03 end\n");
    return (void *)(intptr_t)(op->a * op->b);
}

static void *main_task(void *arg)
{
    static struct operands ten_five = {10, 5}; /* the (10,5) every hello gets */
    corio_task *tasks[3];
    void *results[3];
    int err;

    (void)arg;
    check(corio_spawn(&tasks[0], hello1, &ten_five), "spawn hello1");
    check(corio_spawn(&tasks[1], hello2, &ten_five), "spawn hello2");
    check(corio_spawn(&tasks[2], hello3, &ten_five), "spawn hello3");
    err = corio_gather_tasks(tasks, 3, 0, results, NULL);
    for (int i = 0; i < 3; i++)
        corio_task_unref(tasks[i]);
    check(err, "gather");
    for (int i = 0; i < 3; i++)
        printf("%d\n", (int)(intptr_t)results[i]);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_gather_results: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
