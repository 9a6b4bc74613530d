/* examples/seeds/executor_gather.c - a blocking call and a coroutine at once.
 *
 * Ports seed 001_d0a016a11d57fc24.txt, section "执行同步代码" (running
 * synchronous code):
 *
 *     def a1():
 *         time.sleep(1)
 *         return "A"
 *
 *     async def b1():
 *         await asyncio.sleep(1)
 *         return "B"
 *
 *     async def main():
 *         loop = asyncio.get_running_loop()
 *         await asyncio.gather(loop.run_in_executor(None, a1), b1())
 *
 *     if __name__ == '__main__':
 *         start = time.perf_counter()
 *         asyncio.run(main())
 *         print(f'main method Cost: {time.perf_counter() - start}')
 *
 * Python prints "main method Cost: 1.0050589740000002": the blocking sleep
 * runs on a thread of the default executor while the event loop sleeps
 * asynchronously, so the two seconds overlap.
 *
 * run_in_executor returns an awaitable in Python; in C the call awaits, so
 * it runs in a task of its own (a1_task) and the gather is over two tasks.
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

static void *a1(void *arg)
{
    (void)arg;
    struct timespec one = {1, 0};
    nanosleep(&one, NULL);   /* time.sleep(1): blocks its pool thread */
    return "A";
}

static void *a1_task(void *arg)
{
    void *v = NULL;
    (void)arg;
    check(corio_run_in_executor(NULL, a1, NULL, &v), "run_in_executor");
    return v;
}

static void *b1(void *arg)
{
    (void)arg;
    check(corio_sleep(1000000000), "sleep");
    return "B";
}

static void *main_task(void *arg)
{
    corio_task *ts[2];
    (void)arg;
    check(corio_spawn(&ts[0], a1_task, NULL), "spawn");
    check(corio_spawn(&ts[1], b1, NULL), "spawn");
    int err = corio_gather_tasks(ts, 2, 0, NULL, NULL);
    corio_task_unref(ts[0]);
    corio_task_unref(ts[1]);
    check(err, "gather");
    return NULL;
}

static double perf_counter(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1};
    double start = perf_counter();
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_executor_gather: %s\n", corio_strerror(err));
        return 1;
    }
    printf("main method Cost: %.16g\n", perf_counter() - start);
    return 0;
}
