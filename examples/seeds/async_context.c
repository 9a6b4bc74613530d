/* examples/seeds/async_context.c - an asynchronous context manager.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "异步上下文管理器"
 * (asynchronous context managers), which begins `import asyncio` /
 * `class AsyncContextManager:`:
 *
 *     class AsyncContextManager:
 *         def __init__(self):
 *             self.conn = None
 *         async def do_something(self):
 *             # work with the database asynchronously
 *             return 666
 *         async def __aenter__(self):
 *             # connect to the database asynchronously
 *             self.conn = await asyncio.sleep(1)
 *             return self
 *         async def __aexit__(self, exc_type, exc, tb):
 *             # close the database connection asynchronously
 *             await asyncio.sleep(1)
 *     async def func():
 *         async with AsyncContextManager() as f:
 *             result = await f.do_something()
 *             print(result)
 *     asyncio.run(func())
 *
 * Prints, like the Python version:
 *     666
 *
 * `async with` awaits __aenter__ before the block and __aexit__ after it; in
 * C the block is bracketed by the two calls, each of which may suspend the
 * task (each `await` of a coroutine is a plain call, see await_others.c).
 * Changed: asyncio.sleep(1) became corio_yield(); with one task it resumes
 * at once, so the line is the same, two seconds sooner. The connection
 * stays empty, as sleep's None leaves it in Python.
 */
#include <corio/corio.h>

#include <stdio.h>

struct async_context_manager {
    void *conn;
};

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static int do_something(struct async_context_manager *self)
{
    (void)self;
    /* work with the database asynchronously */
    return 666;
}

static struct async_context_manager *aenter(struct async_context_manager *self)
{
    /* connect to the database asynchronously */
    check(corio_yield(), "yield");
    self->conn = NULL;
    return self;
}

static void aexit(struct async_context_manager *self)
{
    (void)self;
    /* close the database connection asynchronously */
    check(corio_yield(), "yield");
}

static void *func(void *arg)
{
    struct async_context_manager manager = {.conn = NULL};
    struct async_context_manager *f;
    int result;

    (void)arg;
    f = aenter(&manager);
    result = do_something(f);
    printf("%d\n", result);
    aexit(&manager);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(func, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_async_context: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
