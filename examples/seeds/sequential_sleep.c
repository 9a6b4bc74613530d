/* examples/seeds/sequential_sleep.c - a coroutine that awaits two others in turn takes their sum.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "线程一定效率更高吗?" (are
 * threads always faster?), the snippet whose hello3 awaits hello2 and then
 * hello1, with its real sleeps (sequential_await.c ports the same snippet
 * with yields, for its order alone):
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
 *         await hello2()
 *         await hello1()
 *         print("Hello again 03 end")
 *
 *     loop = asyncio.get_event_loop()
 *     tasks = [hello3()]
 *     loop.run_until_complete(asyncio.wait(tasks))
 *     loop.close()
 *
 *     b=time.time()
 *     print('---------------------------------------')
 *     print(b-a)
 *
 * Python prints:
 *     Hello world 03 begin,my thread is:<_MainThread(MainThread, started 13308)>
 *     Hello world 02 begin,my thread is:<_MainThread(MainThread, started 13308)>
 *     Hello again 02 end
 *     Hello world 01 begin,my thread is:<_MainThread(MainThread, started 13308)>
 *     Hello again 01 end
 *     Hello again 03 end
 *     ---------------------------------------
 *     5.008373498916626
 *
 * The seed's point: hello3 calls the other two like ordinary functions, so
 * their sleeps follow each other (2 s + 3 s = 5 s) instead of overlapping as
 * hello_three.c's tasks do. In C `await hello2()` is a plain call.
 * Changed: the thread is shown as the corio worker running the task,
 * "<worker 0>" (a thread's repr holds its id, which differs on every run).
 */
#include <corio/corio.h>

#include <stdint.h>
#include <stdio.h>

#define SECOND INT64_C(1000000000)

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static void hello1(void)
{
    printf("Hello world 01 begin,my thread is:<worker %d>\n", corio_worker_id());
    check(corio_sleep(3 * SECOND), "sleep");
    printf("Hello again 01 end\n");
}

static void hello2(void)
{
    printf("Hello world 02 begin,my thread is:<worker %d>\n", corio_worker_id());
    check(corio_sleep(2 * SECOND), "sleep");
    printf("Hello again 02 end\n");
}

static void *hello3(void *arg)
{
    (void)arg;
    printf("Hello world 03 begin,my thread is:<worker %d>\n", corio_worker_id());
    hello2();
    hello1();
    printf("Hello again 03 end\n");
    return NULL;
}

/* run_until_complete(asyncio.wait([hello3()])): one task, awaited. */
static void *main_task(void *arg)
{
    corio_task *task;
    corio_future *fs[1];
    int err;

    (void)arg;
    check(corio_spawn(&task, hello3, NULL), "spawn");
    fs[0] = corio_task_future(task);
    err = corio_wait(fs, 1, CORIO_ALL_COMPLETED, NULL, NULL, NULL, NULL);
    corio_task_unref(task);
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
        fprintf(stderr, "seed_sequential_sleep: %s\n", corio_strerror(err));
        return 1;
    }
    printf("---------------------------------------\n");
    printf("%f\n", (double)(b - a) / 1e9);
    return 0;
}
