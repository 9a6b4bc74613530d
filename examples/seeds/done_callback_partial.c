/* examples/seeds/done_callback_partial.c - a done callback bound to an argument with partial.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "回调绑定" (binding
 * callbacks), the snippet `In [64]: def three():`:
 *
 *     def three():
 *         start = time.time()
 *
 *         # @asyncio.coroutine
 *         async def corowork():      # 1
 *             print('[corowork] Start coroutine')
 *             time.sleep(0.1)
 *             print('[corowork] This is a coroutine')
 *
 *         def callback(name, task):  # 2
 *             print('[callback] Hello {}'.format(name))
 *             print('[callback] coroutine state: {}'.format(task._state))
 *
 *         loop = asyncio.get_event_loop()
 *         coroutine = corowork()
 *         task = loop.create_task(coroutine)
 *         task.add_done_callback(functools.partial(callback, 'Shiyanlou'))  # 3
 *         loop.run_until_complete(task)
 *
 *         end = time.time()
 *         print('运行耗时:{:.4f}'.format(end - start))
 *
 *     three()
 *
 * Python prints:
 *     [corowork] Start coroutine
 *     [corowork] This is a coroutine
 *     [callback] Hello Shiyanlou
 *     [callback] coroutine state: FINISHED
 *     运行耗时:0.1051
 *
 * The seed's notes: (1) async def makes corowork a coroutine function; (2)
 * the code to run after the coroutine ends goes in the callback, whose last
 * parameter is the task; (3) add_done_callback passes only the task, so the
 * other argument is bound with functools.partial. In C the callback gets the
 * task's future and one argument, which carries the bound name.
 *
 * time.sleep(0.1) blocks the whole thread, not just the coroutine, and so
 * does nanosleep() here. loop.create_task() + loop.run_until_complete(task)
 * become a main task that spawns corowork, adds the callback and awaits it;
 * task._state is "FINISHED" once the future is done, else "PENDING". The
 * elapsed time on the last line differs from run to run, as in Python.
 */
#include <corio/corio.h>

#include <stdint.h>
#include <stdio.h>
#include <time.h>

static void *corowork(void *arg)
{
    const struct timespec tenth = {.tv_sec = 0, .tv_nsec = 100000000};

    (void)arg;
    printf("[corowork] Start coroutine\n");
    nanosleep(&tenth, NULL);
    printf("[corowork] This is a coroutine\n");
    return NULL;
}

static void callback(corio_future *task, void *name)
{
    printf("[callback] Hello %s\n", (const char *)name);
    printf("[callback] coroutine state: %s\n", corio_future_done(task) ? "FINISHED" : "PENDING");
}

/* loop.run_until_complete(task) for the task made from corowork(). */
static void *run_until_complete(void *arg)
{
    corio_task *task;
    int err;

    (void)arg;
    err = corio_spawn(&task, corowork, NULL);
    if (err < 0)
        corio_raise(err, "spawn corowork: %s", corio_strerror(err));
    /* functools.partial(callback, 'Shiyanlou') */
    err = corio_future_add_done_callback(corio_task_future(task), callback, "Shiyanlou");
    if (err == 0)
        err = corio_await(task, NULL);
    corio_task_unref(task);
    if (err < 0)
        corio_raise(err, "corowork: %s", corio_strerror(err));
    return NULL;
}

static int three(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    uint64_t start = corio_time_ns(), end;
    int err = corio_run(run_until_complete, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_done_callback_partial: %s\n", corio_strerror(err));
        return 1;
    }
    end = corio_time_ns();
    printf("运行耗时:%.4f\n", (double)(end - start) / 1e9);
    return 0;
}

int main(void)
{
    return three();
}
