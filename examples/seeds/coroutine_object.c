/* examples/seeds/coroutine_object.c - a coroutine function runs only as a task.
 *
 * Ports seed 003_e06858303655a35c.txt, snippet "1、asyncio", which begins
 * `import asyncio` / `# coroutine function: async开头的函数`:
 *
 *     # coroutine function: a function defined with async
 *     async def main():
 *         print('hello')
 *         await asyncio.sleep(1)
 *         print('world')
 *
 *     coro = main()  # coroutine object
 *
 *     # Creating the coroutine object does not run the function body.
 *     # Running it takes two steps: enter async mode, and turn the
 *     # coroutine into a task.
 *
 *     asyncio.run(coro)  # creates an event loop to run the task
 *
 * Prints, like the Python version:
 *     hello
 *     world
 *
 * In C the coroutine object is the pair (main_task, NULL): nothing runs until
 * corio_run() turns it into the runtime's main task. Changed: asyncio.sleep(1)
 * became corio_yield(), which suspends the task the same way; it is the only
 * task, so it resumes at once and the lines are the same, a second sooner.
 */
#include <corio/corio.h>

#include <stdio.h>

static void *main_task(void *arg)
{
    int err;

    (void)arg;
    printf("hello\n");
    err = corio_yield();
    if (err < 0)
        corio_raise(err, "yield: %s", corio_strerror(err));
    printf("world\n");
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_coroutine_object: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
