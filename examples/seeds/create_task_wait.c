/* examples/seeds/create_task_wait.c - named tasks, and asyncio.wait's done and pending sets.
 *
 * Ports seed 004_3419876ca0de8134.txt, section "Task对象" (Task objects),
 * 示例2 (example 2), which begins `import asyncio` / `async def func():` (the
 * same snippet is in 002_61ca3165eff9bae7.txt under "Task 对象"):
 *
 *     async def func():
 *         print(1)
 *         await asyncio.sleep(2)
 *         print(2)
 *         return "返回值"
 *
 *     async def main():
 *         print("main开始")
 *
 *         # Wrap the coroutines in Tasks and add them to the event loop's
 *         # task list; they wait there to be run (ready by default).
 *         task_list = [
 *             asyncio.create_task(func(), name="n1"),
 *             asyncio.create_task(func(), name="n2")
 *         ]
 *
 *         print("main结束")
 *
 *         # When a coroutine hits an I/O operation the loop switches to
 *         # other tasks automatically. This await waits for every task and
 *         # puts the finished ones in done; with a timeout, it waits at most
 *         # that many seconds and the unfinished ones go to pending.
 *         done, pending = await asyncio.wait(task_list, timeout=None)
 *         print(done, pending)
 *
 *     asyncio.run(main())
 *
 * Python prints (CPython 3.11; the path is where the script lies):
 *     main开始
 *     main结束
 *     1
 *     1
 *     2
 *     2
 *     {<Task finished name='n1' coro=<func() done, defined at /tmp/x.py:4> result='返回值'>, <Task finished name='n2' coro=<func() done, defined at /tmp/x.py:4> result='返回值'>} set()
 *
 * corio_spawn_ex() with a name is create_task(..., name=...), corio_wait()
 * with CORIO_ALL_COMPLETED is asyncio.wait() without a timeout. Changed:
 * asyncio.sleep(2) became corio_yield(): both tasks slept equally long, so the
 * first to sleep woke first, and yielding hands over in the same order. The
 * last line prints each task as <Task finished name='..' result='..'>
 * without the "coro=<...>" part, which names a Python coroutine and source
 * line; and where Python prints a set, whose order is arbitrary, C prints the
 * done tasks in the order corio_wait() returns them: the order of the list.
 */
#include <corio/corio.h>

#include <stdio.h>

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static void *func(void *arg)
{
    (void)arg;
    printf("1\n");
    check(corio_yield(), "yield");
    printf("2\n");
    return "返回值";
}

/* Prints the finished tasks @done[0..n) as Python prints a set of them;
 * @tasks[0..2) are the tasks the futures belong to. */
static void print_done_set(corio_future *const *done, size_t n, corio_task *const *tasks)
{
    printf("{");
    for (size_t i = 0; i < n; i++) {
        corio_task *t = corio_task_future(tasks[0]) == done[i] ? tasks[0] : tasks[1];
        void *result = NULL;

        check(corio_task_result(t, &result), "result");
        printf("%s<Task finished name='%s' result='%s'>", i ? ", " : "", corio_task_name(t),
               (const char *)result);
    }
    printf("}");
}

static void *main_task(void *arg)
{
    static const corio_spawn_options n1 = {.name = "n1"}, n2 = {.name = "n2"};
    corio_task *task_list[2];
    corio_future *fs[2], *done[2], *pending[2];
    size_t ndone, npending;
    int err;

    (void)arg;
    printf("main开始\n");

    check(corio_spawn_ex(&task_list[0], func, NULL, &n1), "spawn n1");
    check(corio_spawn_ex(&task_list[1], func, NULL, &n2), "spawn n2");

    printf("main结束\n");

    fs[0] = corio_task_future(task_list[0]);
    fs[1] = corio_task_future(task_list[1]);
    err = corio_wait(fs, 2, CORIO_ALL_COMPLETED, done, &ndone, pending, &npending);
    check(err, "wait");
    /* Without a timeout, asyncio.wait() returns once nothing is pending. */
    if (npending != 0)
        corio_raise(-EINVAL, "wait returned %zu pending tasks", npending);
    print_done_set(done, ndone, task_list);
    printf(" set()\n");

    corio_task_unref(task_list[0]);
    corio_task_unref(task_list[1]);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_create_task_wait: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
