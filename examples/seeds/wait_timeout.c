/* examples/seeds/wait_timeout.c - asyncio.wait() with a timeout: what is done, what is pending.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "使用wait可以同时注册多个任务,
 * 实现并发" (wait registers several tasks at once): the hello1/hello2/hello3
 * tasks of the gather example before it, awaited with asyncio.wait(), here
 * with the timeout that the seeds' wait examples describe ("如果设置了timeout
 * 值,则意味着此处最多等待的秒,完成的协程返回值写入到done中,未完成则写到
 * pending中": with a timeout it waits at most that long; finished tasks go to
 * done, the others to pending) and a last line counting both sets:
 *
 *     import asyncio
 *
 *     async def hello1(a,b):
 *         print("Hello world 01 begin")
 *         await asyncio.sleep(3)  # a 3 s job
 *         print("Hello again 01 end")
 *         return a+b
 *
 *     async def hello2(a,b):
 *         print("Hello world 02 begin")
 *         await asyncio.sleep(2)  # a 2 s job
 *         print("Hello again 02 end")
 *         return a-b
 *
 *     async def hello3(a,b):
 *         print("Hello world 03 begin")
 *         await asyncio.sleep(4)  # a 4 s job
 *         print("Hello again 03 end")
 *         return a*b
 *
 *     async def main():
 *         task1=asyncio.ensure_future(hello1(10,5))
 *         task2=asyncio.ensure_future(hello2(10,5))
 *         task3=asyncio.ensure_future(hello3(10,5))
 *         done,pending=await asyncio.wait([task1,task2,task3], timeout=2.5)
 *         for done_task in done:
 *             print(done_task.result())
 *         print(len(done), len(pending))
 *
 *     loop = asyncio.get_event_loop()
 *     loop.run_until_complete(main())
 *     loop.close()
 *
 * Python prints (CPython 3.11), after 2.5 s:
 *     Hello world 01 begin
 *     Hello world 02 begin
 *     Hello world 03 begin
 *     Hello again 02 end
 *     5
 *     1 2
 *
 * Only hello2 (2 s) finished within 2.5 s; wait() neither raised nor
 * cancelled anything, and hello1 and hello3 were still sleeping.
 * corio_wait_timeout() is asyncio.wait(..., timeout=...). Changed: Python
 * then warns "Task was destroyed but it is pending!" on stderr for task1 and
 * task3, which loop.close() drops; corio_run(), like asyncio.run(), cancels
 * the tasks still pending at the end and waits for them, so they end quietly
 * (their sleep returns -ECANCELED and they print nothing more). Where Python
 * iterates over the done set, whose order is arbitrary, C goes through the
 * done tasks in the order of the list.
 */
#include <corio/corio.h>

#include <stdint.h>
#include <stdio.h>

#define MS INT64_C(1000000)

struct hello {
    const char *n;      /* "01" .. "03" */
    int64_t sleep_ms;
    long (*op)(long a, long b);
};

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static long add(long a, long b) { return a + b; }
static long sub(long a, long b) { return a - b; }
static long mul(long a, long b) { return a * b; }

static void *hello(void *arg)
{
    const struct hello *h = arg;

    printf("Hello world %s begin\n", h->n);
    /* Cancelled at shutdown: it ends (cancelled) without its last line. */
    if (corio_sleep(h->sleep_ms * MS) == -ECANCELED)
        return NULL;
    printf("Hello again %s end\n", h->n);
    return (void *)(intptr_t)h->op(10, 5);
}

static void *main_task(void *arg)
{
    static const struct hello hellos[3] = {
        {"01", 3000, add}, {"02", 2000, sub}, {"03", 4000, mul},
    };
    corio_task *tasks[3];
    corio_future *fs[3], *done[3];
    size_t ndone, npending;
    int err;

    (void)arg;
    for (int i = 0; i < 3; i++) {
        check(corio_spawn(&tasks[i], hello, (void *)&hellos[i]), "spawn");
        fs[i] = corio_task_future(tasks[i]);
    }
    err = corio_wait_timeout(fs, 3, CORIO_ALL_COMPLETED, 2500 * MS, done, &ndone, NULL,
                             &npending);
    check(err, "wait");
    for (size_t i = 0; i < ndone; i++) {
        void *result = NULL;

        check(corio_future_result(done[i], &result), "result");
        printf("%ld\n", (long)(intptr_t)result);
    }
    printf("%zu %zu\n", ndone, npending);
    for (int i = 0; i < 3; i++)
        corio_task_unref(tasks[i]);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_wait_timeout: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
