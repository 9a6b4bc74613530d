/* examples/seeds/gather_return.c - the main coroutine returns gather's results to its caller.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "主调方获取任务的运行结果"
 * (the caller gets the tasks' results), the first snippet, which begins
 * `async def main():  #封装多任务的入口函数` and reuses hello1, hello2 and
 * hello3 of the gather snippet before it (ported in gather_results.c and
 * repeated here):
 *
 *     async def main():  # the entry function that wraps the tasks
 *         task1=asyncio.ensure_future(hello1(10,5))
 *         task2=asyncio.ensure_future(hello2(10,5))
 *         task3=asyncio.ensure_future(hello3(10,5))
 *
 *         return await asyncio.gather(task1,task2,task3)  # return the
 *                                     # results instead of using them here
 *
 *     loop = asyncio.get_event_loop()
 *     results=loop.run_until_complete(main())  # take the return values here
 *     for result in results:                    # and iterate over them
 *         print(result)
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
 * loop.run_until_complete(main()) returns main's return value; so does
 * corio_run(), through its last argument. main returns the results array,
 * which the caller owns (it passes the array in), and the caller prints it
 * after the runtime has shut down.
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

/* @arg: room for the three results, owned by the caller. */
static void *main_task(void *arg)
{
    static struct operands ten_five = {10, 5}; /* the (10,5) every hello gets */
    void **results = arg;
    corio_task *tasks[3];
    int err;

    check(corio_spawn(&tasks[0], hello1, &ten_five), "spawn hello1");
    check(corio_spawn(&tasks[1], hello2, &ten_five), "spawn hello2");
    check(corio_spawn(&tasks[2], hello3, &ten_five), "spawn hello3");
    err = corio_gather_tasks(tasks, 3, 0, results, NULL);
    for (int i = 0; i < 3; i++)
        corio_task_unref(tasks[i]);
    check(err, "gather");
    return results;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    void *room[3], *ret;
    void **results;
    int err = corio_run(main_task, room, &opts, &ret);

    if (err < 0) {
        fprintf(stderr, "seed_gather_return: %s\n", corio_strerror(err));
        return 1;
    }
    results = ret;
    for (int i = 0; i < 3; i++)
        printf("%d\n", (int)(intptr_t)results[i]);
    return 0;
}
