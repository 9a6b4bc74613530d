/* examples/seeds/executor_custom_pool.c - a blocking function on a thread pool of its own.
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
 *         # 2. Run in a custom thread pool:
 *         with concurrent.futures.ThreadPoolExecutor() as pool:
 *             result = await loop.run_in_executor(pool, func1)
 *             print('custom thread pool', result)
 *
 * The seed has this variant commented out; uncommented, Python prints
 * "custom thread pool defaulf pool" (sic) after 2 s.
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
    /* 2. Run in a custom thread pool (the with-block: destroy joins it) */
    corio_thread_pool *pool;
    check(corio_thread_pool_create(&pool, NULL), "ThreadPoolExecutor");
    int err = corio_run_in_executor(pool, func1, NULL, &result);
    corio_thread_pool_destroy(pool);
    check(err, "run_in_executor");
    printf("custom thread pool %s\n", (const char *)result);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1};
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_executor_custom_pool: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
