/* examples/seeds/async_iterator.c - an asynchronous iterator, driven by a loop.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "异步迭代器" (asynchronous
 * iterators), which begins `import asyncio` / `class Reader(object):`:
 *
 *     class Reader(object):
 *         """ A custom asynchronous iterator (also an asynchronous iterable) """
 *         def __init__(self):
 *             self.count = 0
 *         async def readline(self):
 *             # await asyncio.sleep(1)
 *             self.count += 1
 *             if self.count == 100:
 *                 return None
 *             return self.count
 *         def __aiter__(self):
 *             return self
 *         async def __anext__(self):
 *             val = await self.readline()
 *             if val == None:
 *                 raise StopAsyncIteration
 *             return val
 *     async def func():
 *         # Create the asynchronous iterable
 *         async_iter = Reader()
 *         # async for must be inside an async def function, else it is a
 *         # syntax error.
 *         async for item in async_iter:
 *             print(item)
 *     asyncio.run(func())
 *
 * Prints, like the Python version, the numbers 1 to 99, one a line.
 *
 * `async for` calls __anext__ until it raises StopAsyncIteration; in C the
 * loop calls reader_anext() until it returns false, and each `await` of a
 * coroutine is a plain call (see await_others.c). readline() may suspend the
 * task, as the seed's commented-out asyncio.sleep(1) would; this one, like
 * the seed's, does not.
 */
#include <corio/corio.h>

#include <stdbool.h>
#include <stdio.h>

struct reader {
    int count;
};

/* Returns the next line number, or 0 where Python returns None. */
static int reader_readline(struct reader *self)
{
    self->count += 1;
    if (self->count == 100)
        return 0;
    return self->count;
}

/* __anext__: false where Python raises StopAsyncIteration. */
static bool reader_anext(struct reader *self, int *val)
{
    *val = reader_readline(self);
    return *val != 0;
}

static void *func(void *arg)
{
    struct reader async_iter = {.count = 0};
    int item;

    (void)arg;
    while (reader_anext(&async_iter, &item))
        printf("%d\n", item);
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(func, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_async_iterator: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
