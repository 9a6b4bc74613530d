/* io/pool.c - the runtime's own blocking threads: what the epoll backend
 * cannot wait for (regular files: always "ready", and they block anyway)
 * and name resolution.
 *
 * A process-wide FIFO of operations under one mutex, served by up to
 * POOL_MAX threads started on demand (a thread is started when no thread is
 * idle) and kept for later. Its limit is its own, so user work handed to
 * the executors (the executor issue) can never starve it. An operation here
 * cannot be cancelled: the awaiting task waits for it (io/io.c), so its
 * buffers stay valid.
 */
#include <pthread.h>
#include <stdlib.h>

#include "backend.h"
#include "internal.h"

#define POOL_MAX 4   /* libuv's default; the runtime's own work is short file calls */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct corio__io_op *head, *tail;
    unsigned threads, idle;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0};

static void *pool_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.head) {
            pool.idle++;
            pthread_cond_wait(&pool.cond, &pool.lock);
            pool.idle--;
        }
        struct corio__io_op *op = pool.head;
        pool.head = op->next;
        if (!pool.head)
            pool.tail = NULL;
        pthread_mutex_unlock(&pool.lock);
        corio__io_complete(op, corio__io_syscall(op, false));
        pthread_mutex_lock(&pool.lock);
    }
    return NULL;
}

int corio__blocking_submit(struct corio__io_op *op)
{
    op->next = NULL;
    pthread_mutex_lock(&pool.lock);
    if (!pool.idle && pool.threads < POOL_MAX) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&th, &attr, pool_thread, NULL) == 0)
            pool.threads++;
        pthread_attr_destroy(&attr);
        if (!pool.threads) {
            pthread_mutex_unlock(&pool.lock);
            return -EAGAIN;
        }
    }
    if (pool.tail)
        pool.tail->next = op;
    else
        pool.head = op;
    pool.tail = op;
    pthread_cond_signal(&pool.cond);
    pthread_mutex_unlock(&pool.lock);
    return 0;
}
