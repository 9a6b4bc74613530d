/* examples/seeds/greenlet.c - two coroutines switching to each other by hand.
 *
 * Ports seed 004_3419876ca0de8134.txt, section "greenlet", which begins
 * `from greenlet import greenlet` (the same snippet is in
 * 002_61ca3165eff9bae7.txt under "greenlet库"):
 *
 *     def func1():
 *         print(1)        # step 1: print 1
 *         gr2.switch()    # step 3: switch to func2
 *         print(2)        # step 6: print 2
 *         gr2.switch()    # step 7: switch to func2, which goes on from
 *                         #         where it last stopped
 *
 *     def func2():
 *         print(3)        # step 4: print 3
 *         gr1.switch()    # step 5: switch to func1, which goes on from
 *                         #         where it last stopped
 *         print(4)        # step 8: print 4
 *
 *     gr1 = greenlet(func1)
 *     gr2 = greenlet(func2)
 *     gr1.switch()  # step 1: run func1
 *
 * Prints, like the Python version:
 *     1
 *     3
 *     2
 *     4
 *
 * corio has no switch to a named coroutine; corio_yield() lets every other
 * ready task run one step first. The main task starts both tasks and waits
 * for them, so the two are the only ready tasks and each yield hands over to
 * the other: the same switches as gr2.switch() and gr1.switch(). (When func2
 * ends, greenlet returns to the main greenlet and func1 never finishes; here
 * func1 returns after its last yield, which prints nothing.)
 */
#include <corio/corio.h>

#include <stdio.h>

static void check(int err, const char *what)
{
    if (err < 0)
        corio_raise(err, "%s: %s", what, corio_strerror(err));
}

static void *func1(void *arg)
{
    (void)arg;
    printf("1\n");
    check(corio_yield(), "switch to func2");
    printf("2\n");
    check(corio_yield(), "switch to func2");
    return NULL;
}

static void *func2(void *arg)
{
    (void)arg;
    printf("3\n");
    check(corio_yield(), "switch to func1");
    printf("4\n");
    return NULL;
}

static void *main_task(void *arg)
{
    corio_task *gr[2];
    int err;

    (void)arg;
    check(corio_spawn(&gr[0], func1, NULL), "spawn func1");
    check(corio_spawn(&gr[1], func2, NULL), "spawn func2");
    err = corio_gather_tasks(gr, 2, 0, NULL, NULL);
    corio_task_unref(gr[0]);
    corio_task_unref(gr[1]);
    check(err, "gather");
    return NULL;
}

int main(void)
{
    corio_rt_options opts = {.workers = 1}; /* one worker runs tasks in asyncio's order */
    int err = corio_run(main_task, NULL, &opts, NULL);

    if (err < 0) {
        fprintf(stderr, "seed_greenlet: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
