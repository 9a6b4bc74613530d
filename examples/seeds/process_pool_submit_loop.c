/* examples/seeds/process_pool_submit_loop.c - the submit loop on a process pool.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "futures.Future对象", with
 * its commented-out alternative line taken:
 *
 *     def func(value):
 *         time.sleep(1)
 *         print(value)
 *
 *     pool = ThreadPoolExecutor(max_workers=5)
 *     # 或 pool = ProcessPoolExecutor(max_workers=5)
 *
 *     for i in range(10):
 *         fut = pool.submit(func, i)
 *         print(fut)
 *
 * With ProcessPoolExecutor, Python prints ten futures (the first ones
 * running, the rest pending), then 0-4 after about 1 s and 5-9 after about
 * 2 s, each printed by a worker process; at exit it waits for the pool.
 *
 * Changed: a future prints without its address ("<Future state=running>").
 * The function is registered by name (CORIO_PROCESS_FUNCTION): a worker is
 * a fresh copy of this program. The loop waits (at most 1 s) for each of
 * the first five to start running before printing it, as Python's process
 * start-up usually lets happen. Five processes that wake together print in
 * any order, so value v sleeps 1 s plus (v % 5) * 50 ms: they print in
 * order. That stagger holds only if the five workers start computing at
 * about the same time, and a fresh worker process may take far longer than
 * 50 ms to start on a loaded machine (or under a sanitizer); so the five
 * processes are started first, by five silent warm-up calls in flight at
 * once, and the loop then hands each value to a running worker. The end of
 * main is the interpreter's exit: the pool is shut down, waiting.
 */
#include <corio/corio.h>
#include <corio/executor.h>
#include <corio/process_pool.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs in a worker process: @in is the value as text. */
static int func(const void *in, size_t len, void **out, size_t *out_len)
{
    char text[16] = "";
    (void)out;
    (void)out_len;
    snprintf(text, sizeof text, "%.*s", (int)len, (const char *)in);
    int value = atoi(text);
    sleep_ms(1000 + (value % 5) * 50);   /* time.sleep(1) */
    printf("%d\n", value);
    fflush(stdout);
    return 0;
}
CORIO_PROCESS_FUNCTION("func", func);

/* Holds its worker long enough that five calls at once need five workers. */
static int warm_up(const void *in, size_t len, void **out, size_t *out_len)
{
    (void)in, (void)len, (void)out, (void)out_len;
    sleep_ms(100);
    return 0;
}
CORIO_PROCESS_FUNCTION("warm_up", warm_up);

/* Starts the pool's @n workers: @n calls in flight at once, awaited. */
static int start_workers(corio_process_pool *pool, int n)
{
    corio_cfuture *f[8];
    int err = 0, started = 0;
    for (; started < n && err == 0; started++)
        err = corio_process_pool_submit(pool, "warm_up", "", 0, &f[started]);
    if (err < 0)
        started--;
    for (int i = 0; i < started; i++) {
        int rc = corio_cfuture_result(f[i], CORIO_WAIT_FOREVER, NULL);
        if (rc < 0 && err == 0)
            err = rc;
        corio_cfuture_unref(f[i]);
    }
    return err;
}

static void print_future(corio_cfuture *f)
{
    const char *state = corio_cfuture_cancelled(f) ? "cancelled"
                        : corio_cfuture_done(f)    ? "finished"
                        : corio_cfuture_running(f) ? "running"
                                                   : "pending";
    printf("<Future state=%s>\n", state);
}

int main(void)
{
    corio_process_pool_options o = {.max_workers = 5};
    corio_process_pool *pool = NULL;
    int err = corio_process_pool_create(&pool, &o);
    if (err == 0)
        err = start_workers(pool, 5);

    for (int i = 0; i < 10 && err == 0; i++) {
        char value[16];
        int n = snprintf(value, sizeof value, "%d", i);
        corio_cfuture *fut;
        err = corio_process_pool_submit(pool, "func", value, (size_t)n, &fut);
        if (err < 0)
            break;
        for (int k = 0; i < 5 && k < 1000 && !corio_cfuture_running(fut); k++)
            sleep_ms(1);
        print_future(fut);
        fflush(stdout);
        corio_cfuture_unref(fut);
    }
    if (pool)
        corio_process_pool_destroy(pool);
    if (err < 0) {
        fprintf(stderr, "seed_process_pool_submit_loop: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
