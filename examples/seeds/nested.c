/* examples/seeds/nested.c - a coroutine runs only when something runs it.
 *
 * Ports seed 000_ed38e98afb45fe56.txt, the snippet from Python's asyncio
 * documentation that begins `import asyncio` / `async def nested():`:
 *
 *     async def nested():
 *         return 42
 *
 *     async def main():
 *         # Nothing happens if we just call "nested()".
 *         # A coroutine object is created but not awaited,
 *         # so it *won't run at all*.
 *         nested()
 *
 *         # Let's do it differently now and await it:
 *         print(await nested())  # will print "42".
 *
 *     asyncio.run(main())
 *
 * Prints, like the Python version:
 *     42
 *
 * C has no coroutine objects: the pair (function, argument) plays that part,
 * and nothing runs until it is either called or spawned. So:
 *   - `nested()` alone has no C counterpart (Python only warns on stderr that
 *     the coroutine was never awaited);
 *   - `await nested()` is ported as a task that main_task awaits, to show
 *     when a task runs: corio_spawn() creates and schedules it, but it
 *     starts only once main_task suspends in corio_await(), which the check
 *     below makes visible. (Awaiting a coroutine object creates no task in
 *     Python; its exact C counterpart is a plain call on the caller's stack,
 *     as in await_others.c. Both print 42.)
 */
#include <corio/corio.h>

#include <stdint.h>
#include <stdio.h>

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static void *nested(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)42;
}

static void *main_task(void *arg)
{
    corio_task *task;
    void *value;
    int err;

    (void)arg;
    check(corio_spawn(&task, nested, NULL), "spawn nested");
    /* One worker, and this task has not suspended yet: nested cannot have
     * started. */
    if (corio_task_done(task))
        corio_raise(-EINVAL, "nested ran before it was awaited");

    err = corio_await(task, &value);
    corio_task_unref(task);
    check(err, "await nested");
    printf("%d\n", (int)(intptr_t)value);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_nested: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
