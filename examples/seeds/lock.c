/* examples/seeds/lock.c - a coroutine lock (asyncio.Lock) held across an await.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, the async_lock.py example (协程锁,
 * "coroutine lock"):
 *
 *     import asyncio
 *
 *     l = []
 *     lock = asyncio.Lock()   # coroutine lock
 *
 *     async def work(name):
 *         print('lalalalalalalala')     # shows how far the lock's control reaches
 *         # The first call takes the lock here; until the block ends nobody
 *         # else may run it: a task that calls this coroutine meanwhile
 *         # blocks on this line until the lock is released. `async with`
 *         # calls the lock's __aenter__ (acquire) and __aexit__ (release),
 *         # like `with` simplifies try ... finally.
 *         async with lock:
 *             print('{} start'.format(name))  # printed by the first caller
 *             if 'x' in l:                    # if so,
 *                 return name                 # return at once
 *             await asyncio.sleep(0); print('----------')  # switch coroutines
 *             l.append('x')
 *             print('{} end'.format(name))
 *             return name
 *
 *     async def one():
 *         name = await work('one')
 *         print('{} ok'.format(name))
 *
 *     async def two():
 *         name = await work('two')
 *         print('{} ok'.format(name))
 *
 *     def main():
 *         loop = asyncio.get_event_loop()
 *         tasks = asyncio.wait([one(), two()])
 *         loop.run_until_complete(tasks)
 *
 *     if __name__ == '__main__':
 *         main()
 *
 * Python prints:
 *     lalalalalalalala
 *     one start
 *     lalalalalalalala
 *     ----------
 *     one end
 *     one ok
 *     two start
 *     two ok
 *
 * corio_lock is asyncio.Lock, CORIO_WITH_LOCK() is `async with lock:` (a
 * return inside it releases the lock), corio_yield() is asyncio.sleep(0),
 * and corio_wait() on the two tasks is run_until_complete(asyncio.wait(...)).
 * `await work(name)` is a plain call: a coroutine awaited directly runs in
 * the caller's task. The list l becomes a flag.
 */
#include <corio/corio.h>
#include <corio/sync.h>

#include <stdbool.h>
#include <stdio.h>

static corio_lock lock;
static bool x_in_l;

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static const char *work(const char *name)
{
    int rc;

    printf("lalalalalalalala\n");
    CORIO_WITH_LOCK(&lock, rc) {
        printf("%s start\n", name);
        if (x_in_l)
            return name;
        check(corio_yield(), "sleep(0)");
        printf("----------\n");
        x_in_l = true;
        printf("%s end\n", name);
        return name;
    }
    check(rc, "lock");
    return NULL;
}

static void *one_or_two(void *arg)
{
    const char *name = work(arg);

    printf("%s ok\n", name);
    return NULL;
}

static void *main_task(void *arg)
{
    corio_task *t[2];
    corio_future *fs[2], *done[2], *pending[2];
    size_t ndone, npending;

    (void)arg;
    check(corio_spawn(&t[0], one_or_two, "one"), "spawn one");
    check(corio_spawn(&t[1], one_or_two, "two"), "spawn two");
    fs[0] = corio_task_future(t[0]);
    fs[1] = corio_task_future(t[1]);
    check(corio_wait(fs, 2, CORIO_ALL_COMPLETED, done, &ndone, pending, &npending), "wait");
    corio_task_unref(t[0]);
    corio_task_unref(t[1]);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_lock_init(&lock);

    if (err == 0)
        err = corio_run(main_task, NULL, &opts, NULL);
    if (err == 0)
        err = corio_lock_close(&lock);
    if (err < 0) {
        fprintf(stderr, "seed_lock: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
