/* examples/seeds/executor_submit_loop.c - ThreadPoolExecutor's submit loop.
 *
 * Ports seed 002_61ca3165eff9bae7.txt, section "futures.Future对象":
 *
 *     def func(value):
 *         time.sleep(1)
 *         print(value)
 *
 *     pool = ThreadPoolExecutor(max_workers=5)
 *     for i in range(10):
 *         fut = pool.submit(func, i)
 *         print(fut)
 *
 * Python prints ten futures, the first five running on the five threads
 * and the rest pending:
 *     <Future at 0x7f0c2a1b2d30 state=running>   (x5)
 *     <Future at 0x7f0c2a1b3f10 state=pending>   (x5)
 * then 0-4 after 1 s and 5-9 after 2 s; at exit the interpreter waits for
 * the pool's threads.
 *
 * Changed: a future prints without its address ("<Future state=running>"),
 * which differs on every run. Python's thread start-up makes the first five
 * almost always "running" when printed; here submit returns before the new
 * thread claims its work, so the loop waits (at most 1 s) for each of the
 * first five to start running before it prints it. The five threads of a
 * batch wake together, and Python prints them in whatever order the GIL
 * lets them run; the port prints each batch in submit order (each call
 * waits for its turn after its sleep). The end of main is the interpreter's
 * exit: the pool is shut down, waiting.
 */
#include <corio/corio.h>
#include <corio/executor.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cond = PTHREAD_COND_INITIALIZER;
static int turn;   /* the next value to print */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *func(void *arg)
{
    int value = (int)(intptr_t)arg;
    sleep_ms(1000);   /* time.sleep(1) */
    pthread_mutex_lock(&turn_lock);
    while (turn != value)
        pthread_cond_wait(&turn_cond, &turn_lock);
    printf("%d\n", value);
    fflush(stdout);
    turn++;
    pthread_cond_broadcast(&turn_cond);
    pthread_mutex_unlock(&turn_lock);
    return NULL;
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
    corio_thread_pool_options o = {.max_workers = 5};
    corio_thread_pool *pool = NULL;
    int err = corio_thread_pool_create(&pool, &o);

    for (int i = 0; i < 10 && err == 0; i++) {
        corio_cfuture *fut;
        err = corio_thread_pool_submit(pool, func, (void *)(intptr_t)i, &fut);
        if (err < 0)
            break;
        for (int k = 0; i < 5 && k < 1000 && !corio_cfuture_running(fut); k++)
            sleep_ms(1);
        print_future(fut);
        fflush(stdout);
        corio_cfuture_unref(fut);
    }
    if (pool)
        corio_thread_pool_destroy(pool);
    if (err < 0) {
        fprintf(stderr, "seed_executor_submit_loop: %s\n", corio_strerror(err));
        return 1;
    }
    return 0;
}
