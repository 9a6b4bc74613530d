/* examples/hello.c - the README's example: tasks, gather and run. */
#include <corio/corio.h>
#include <stdint.h>
#include <stdio.h>

static void *square(void *arg)              /* a task: runs on any worker */
{
    uintptr_t x = (uintptr_t)arg;
    corio_yield();                          /* await asyncio.sleep(0) */
    return (void *)(x * x);
}

static void *main_task(void *arg)
{
    corio_task *ts[3];
    void *r[3];
    for (uintptr_t i = 0; i < 3; i++)       /* asyncio.create_task(square(i + 1)) */
        corio_spawn(&ts[i], square, (void *)(i + 1));
    int rc = corio_gather_tasks(ts, 3, 0, r, NULL);   /* await asyncio.gather(...) */
    for (int i = 0; i < 3; i++)
        corio_task_unref(ts[i]);
    printf("%s: %zu %zu %zu\n", (char *)arg, (size_t)r[0], (size_t)r[1], (size_t)r[2]);
    return rc == 0 ? r[2] : NULL;
}

int main(void)                              /* asyncio.run(main()) */
{
    void *last = NULL;
    int rc = corio_run(main_task, "squares", NULL, &last);
    return rc == 0 && (uintptr_t)last == 9 ? 0 : 1;
}
