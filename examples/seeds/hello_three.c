/* examples/seeds/hello_three.c - three coroutines sleep at once on one thread.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "很多个协程一起运行有创建新的
 * 线程吗?" (do many coroutines running together create new threads?):
 *
 *     a=time.time()
 *
 *     async def hello1():
 *         print(f"Hello world 01 begin,my thread is:{threading.currentThread()}")
 *         await asyncio.sleep(3)
 *         print("Hello again 01 end")
 *
 *     async def hello2():
 *         print(f"Hello world 02 begin,my thread is:{threading.currentThread()}")
 *         await asyncio.sleep(2)
 *         print("Hello again 02 end")
 *
 *     async def hello3():
 *         print(f"Hello world 03 begin,my thread is:{threading.currentThread()}")
 *         await asyncio.sleep(1)
 *         print("Hello again 03 end")
 *
 *     loop = asyncio.get_event_loop()
 *     tasks = [hello1(), hello2(),hello3()]
 *     loop.run_until_complete(asyncio.wait(tasks))
 *     loop.close()
 *
 *     b=time.time()
 *     print('---------------------------------------')
 *     print(b-a)
 *
 * The seed's run printed the three "begin" lines as 03, 02, 01: the
 * asyncio.wait() of its day made a set of the coroutines, whose order is
 * arbitrary. CPython 3.11 refuses coroutines in wait(), so with the list
 * made of tasks, [loop.create_task(c) for c in [hello1(), hello2(), hello3()]],
 * it prints:
 *     Hello world 01 begin,my thread is:<_MainThread(MainThread, started 139671426919296)>
 *     Hello world 02 begin,my thread is:<_MainThread(MainThread, started 139671426919296)>
 *     Hello world 03 begin,my thread is:<_MainThread(MainThread, started 139671426919296)>
 *     Hello again 03 end
 *     Hello again 02 end
 *     Hello again 01 end
 *     ---------------------------------------
 *     3.0081303119659424
 *
 * The seed's point: all three run on the one thread, and their sleeps
 * overlap, so the run takes as long as the longest (3 s), not 6 s. The ends
 * come in order of their sleeps (1 s, 2 s, 3 s) whatever the start order.
 * Changed: the thread is shown as the corio worker running the task,
 * "<worker 0>", the same for all three (a thread's repr holds its id, which
 * differs on every run).
 */
#include <corio/corio.h>

#include <stdint.h>
#include <stdio.h>

#define SECOND INT64_C(1000000000)

struct hello {
    const char *n;     /* "01" .. "03" */
    int64_t sleep_s;
};

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static void *hello(void *arg)
{
    const struct hello *h = arg;

    printf("Hello world %s begin,my thread is:<worker %d>\n", h->n, corio_worker_id());
    check(corio_sleep(h->sleep_s * SECOND), "sleep");
    printf("Hello again %s end\n", h->n);
    return NULL;
}

/* run_until_complete(asyncio.wait(tasks)). */
static void *main_task(void *arg)
{
    static const struct hello hellos[3] = {{"01", 3}, {"02", 2}, {"03", 1}};
    corio_task *tasks[3];
    corio_future *fs[3];
    int err;

    (void)arg;
    for (int i = 0; i < 3; i++) {
        check(corio_spawn(&tasks[i], hello, (void *)&hellos[i]), "spawn");
        fs[i] = corio_task_future(tasks[i]);
    }
    err = corio_wait(fs, 3, CORIO_ALL_COMPLETED, NULL, NULL, NULL, NULL);
    for (int i = 0; i < 3; i++)
        corio_task_unref(tasks[i]);
    check(err, "wait");
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    uint64_t a = corio_time_ns();
    int err = corio_run(main_task, NULL, &opts, NULL);
    uint64_t b = corio_time_ns();

    if (err < 0) {
        fprintf(stderr, "seed_hello_three: %s\n", corio_strerror(err));
        return 1;
    }
    printf("---------------------------------------\n");
    printf("%f\n", (double)(b - a) / 1e9);
    return 0;
}
