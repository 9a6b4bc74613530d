/* examples/seeds/hello_thread.c - two coroutines share one thread.
 *
 * Ports seed 001_d0a016a11d57fc24.txt, section "asyncio", the snippet that
 * begins `import threading` / `import asyncio` / `@asyncio.coroutine`:
 *
 *     @asyncio.coroutine
 *     def hello():
 *         print('Hello world! (%s)' % threading.currentThread())
 *         yield from asyncio.sleep(1)
 *         print('Hello again! (%s)' % threading.currentThread())
 *
 *     loop = asyncio.get_event_loop()
 *     tasks = [hello(), hello()]
 *     loop.run_until_complete(asyncio.wait(tasks))
 *     loop.close()
 *
 * Python prints (the number is the thread's id, new on every run):
 *     Hello world! (<_MainThread(MainThread, started 139714107468672)>)
 *     Hello world! (<_MainThread(MainThread, started 139714107468672)>)
 *     Hello again! (<_MainThread(MainThread, started 139714107468672)>)
 *     Hello again! (<_MainThread(MainThread, started 139714107468672)>)
 *
 * The seed's point: if asyncio.sleep() were real I/O, one thread would run
 * both coroutines concurrently. The main task plays
 * run_until_complete(asyncio.wait(tasks)): it spawns both and waits for them.
 *
 * Changed: the thread is shown as the corio worker running the task,
 * "<worker 0>", the same for both, as the thread is in Python; and
 * asyncio.sleep(1) became corio_yield(). Both tasks slept equally long, so
 * the first to sleep woke first; yielding hands over in the same order.
 */
#include <corio/corio.h>

#include <stdio.h>

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static void *hello(void *arg)
{
    (void)arg;
    printf("Hello world! (<worker %d>)\n", corio_worker_id());
    check(corio_yield(), "yield");
    printf("Hello again! (<worker %d>)\n", corio_worker_id());
    return NULL;
}

static void *main_task(void *arg)
{
    corio_task *tasks[2];
    corio_future *fs[2];
    int err;

    (void)arg;
    check(corio_spawn(&tasks[0], hello, NULL), "spawn hello");
    check(corio_spawn(&tasks[1], hello, NULL), "spawn hello");
    fs[0] = corio_task_future(tasks[0]);
    fs[1] = corio_task_future(tasks[1]);
    err = corio_wait(fs, 2, CORIO_ALL_COMPLETED, NULL, NULL, NULL, NULL);
    corio_task_unref(tasks[0]);
    corio_task_unref(tasks[1]);
    check(err, "wait");
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_hello_thread: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
