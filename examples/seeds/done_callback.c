/* examples/seeds/done_callback.c - done callbacks, one with a bound argument.
 *
 * Ports seed 001_d0a016a11d57fc24.txt, section "注册回调和执行同步代码"
 * (registering callbacks), the snippet that begins `def callback(future):`:
 *
 *     def callback(future):
 *         print(f'Result: {future.result()}')
 *
 *     def callback2(future, n):
 *         print(f'Result: {future.result()}, N: {n}')
 *
 *     async def funa():
 *         await asyncio.sleep(1)
 *         return "funa"
 *
 *     async def main():
 *         task = asyncio.create_task(funa())
 *         task.add_done_callback(callback)
 *         await task
 *
 *         # This is how to pass an argument to the callback
 *         task = asyncio.create_task(funa())
 *         task.add_done_callback(functools.partial(callback2, n=1))
 *         await task
 *
 *     if __name__ == '__main__':
 *         asyncio.run(main())
 *
 * Prints, like the Python version:
 *     Result: funa
 *     Result: funa, N: 1
 *
 * A corio done callback takes the future and one argument, so the argument
 * that functools.partial binds (n=1) travels in that argument. The callback
 * reads the task's result through its future, as future.result() does.
 * Changed: asyncio.sleep(1) became corio_yield(); main waits on the task
 * meanwhile, so the task resumes at once and the lines are the same.
 */
#include <corio/corio.h>

#include <stdint.h>
#include <stdio.h>

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static void callback(corio_future *future, void *arg)
{
    void *result = NULL;

    (void)arg;
    if (corio_future_result(future, &result) < 0)
        result = "(no result)";
    printf("Result: %s\n", (const char *)result);
}

static void callback2(corio_future *future, void *n)
{
    void *result = NULL;

    if (corio_future_result(future, &result) < 0)
        result = "(no result)";
    printf("Result: %s, N: %d\n", (const char *)result, (int)(intptr_t)n);
}

static void *funa(void *arg)
{
    (void)arg;
    check(corio_yield(), "yield");
    return "funa";
}

/* create_task(funa()), add the done callback @fn(@arg), await the task. */
static void run_funa(corio_done_fn fn, void *arg)
{
    corio_task *task;
    int err;

    check(corio_spawn(&task, funa, NULL), "spawn funa");
    err = corio_future_add_done_callback(corio_task_future(task), fn, arg);
    if (err == 0)
        err = corio_await(task, NULL);
    corio_task_unref(task);
    check(err, "funa");
}

static void *main_task(void *arg)
{
    (void)arg;
    run_funa(callback, NULL);

    /* functools.partial(callback2, n=1) */
    run_funa(callback2, (void *)(intptr_t)1);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_done_callback: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
