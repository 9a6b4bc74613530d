/* examples/seeds/future_set_result.c - a task completes a future another task awaits.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "asyncio.Future对象", 示例2
 * (example 2), which begins `import asyncio` / `async def set_after(fut):`:
 *
 *     async def set_after(fut):
 *         await asyncio.sleep(2)
 *         fut.set_result("666")  # not how it is usually done; only a demo
 *
 *     async def main():
 *         # The running event loop
 *         loop = asyncio.get_running_loop()
 *
 *         # A future bound to no action: on its own it would never know
 *         # when it is done.
 *         fut = loop.create_future()
 *
 *         # A task running set_after, which gives fut its value after 2 s;
 *         # setting fut's result by hand is what lets fut finish.
 *         await loop.create_task(set_after(fut))
 *
 *         # Wait for the future's result; without one this waits forever.
 *         data = await fut
 *         print(data)
 *
 *     asyncio.run(main())
 *
 * Prints, like the Python version:
 *     666
 *
 * corio_future_create() is loop.create_future(), corio_future_set_result()
 * is fut.set_result(); corio_await() takes a future or a task. A task is a
 * future whose result is set when its function returns. Changed:
 * asyncio.sleep(2) became corio_yield(); main waits on the task meanwhile,
 * so the task resumes at once and the line is the same.
 */
#include <corio/corio.h>

#include <stdio.h>

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static void *set_after(void *fut)
{
    check(corio_yield(), "yield");
    check(corio_future_set_result(fut, "666"), "set_result");
    return NULL;
}

static void *main_task(void *arg)
{
    corio_future *fut;
    corio_task *task;
    void *data = NULL;
    int err;

    (void)arg;
    check(corio_future_create(&fut), "create_future");

    err = corio_spawn(&task, set_after, fut);
    if (err == 0) {
        err = corio_await(task, NULL);
        corio_task_unref(task);
    }
    if (err == 0)
        err = corio_await(fut, &data);
    corio_future_unref(fut);
    check(err, "set_after");
    printf("%s\n", (const char *)data);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_future_set_result: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
