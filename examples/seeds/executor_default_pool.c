/* examples/seeds/executor_default_pool.c - a blocking function on the default executor.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "futures.Future对象", the
 * snippet that begins `def func1():` / `# 某个耗时操作`:
 *
 *     def func1():
 *         # 某个耗时操作 (some slow operation)
 *         time.sleep(2)
 *         return "defaulf pool"
 *
 *     async def main():
 *         loop = asyncio.get_running_loop()
 *         # 1. Run in the default loop's executor
 *         fut = loop.run_in_executor(None, func1)
 *         result = await fut
 *         print('default thread pool', result)
 *
 * Python prints "default thread pool defaulf pool" (sic) after 2 s.
 *
 * The task awaits while a pool thread sleeps: its worker stays free.
 */
#include <corio/corio.h>
#include <corio/executor.h>

#include <stdio.h>
#include <time.h>

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static void *func1(void *arg)
{
    struct timespec two = {2, 0};
    (void)arg;
    nanosleep(&two, NULL);   /* time.sleep(2) */
    return "defaulf pool";
}

static void *main_task(void *arg)
{
    void *result = NULL;
    (void)arg;
    /* 1. Run in the default loop's executor */
    check(corio_run_in_executor(NULL, func1, NULL, &result), "run_in_executor");
    printf("default thread pool %s\n", (const char *)result);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1};
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_executor_default_pool: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
