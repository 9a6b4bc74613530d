/* examples/seeds/process_pool_custom_pool.c - a blocking function on a process pool.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "futures.Future对象", the
 * snippet that begins `def func1():` / `# 某个耗时操作`, variant 3:
 *
 *     def func1():
 *         # 某个耗时操作 (some slow operation)
 *         time.sleep(2)
 *         return "defaulf pool"
 *
 *     async def main():
 *         loop = asyncio.get_running_loop()
 *         # 3. Run in a custom process pool:
 *         with concurrent.futures.ProcessPoolExecutor() as pool:
 *             result = await loop.run_in_executor(pool, func1)
 *             print('custom process pool', result)
 *
 * The seed has this variant commented out; uncommented, Python prints
 * "custom process pool defaulf pool" (sic) after 2 s.
 *
 * Changed: func1 is registered by name (CORIO_PROCESS_FUNCTION) and
 * returns bytes; run_in_executor(pool, func1) is submit plus awaiting the
 * concurrent future (corio_cfuture_result() awaits inside a task, so the
 * worker stays free while the process sleeps).
 */
#include <corio/corio.h>
#include <corio/executor.h>
#include <corio/process_pool.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Runs in a worker process. */
static int func1(const void *in, size_t len, void **out, size_t *out_len)
{
    static const char result[] = "defaulf pool";
    struct timespec two = {2, 0};
    (void)in;
    (void)len;
    nanosleep(&two, NULL);   /* time.sleep(2) */
    *out = malloc(sizeof result - 1);
    if (!*out)
        return -ENOMEM;
    memcpy(*out, result, sizeof result - 1);
    *out_len = sizeof result - 1;
    return 0;
}
CORIO_PROCESS_FUNCTION("func1", func1);

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static void *main_task(void *arg)
{
    (void)arg;
    /* 3. Run in a custom process pool (the with-block: destroy waits for it) */
    corio_process_pool *pool;
    check(corio_process_pool_create(&pool, NULL), "ProcessPoolExecutor");
    corio_cfuture *fut = NULL;
    void *value = NULL;
    int err = corio_process_pool_submit(pool, "func1", NULL, 0, &fut);
    if (err == 0)
        err = corio_cfuture_result(fut, CORIO_WAIT_FOREVER, &value);   /* awaits */
    if (err == 0)
        printf("custom process pool %s\n", (const char *)((struct corio_bytes *)value)->data);
    corio_cfuture_unref(fut);
    corio_process_pool_destroy(pool);
    check(err, "run_in_executor");
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1};
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_process_pool_custom_pool: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
