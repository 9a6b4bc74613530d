/* pool/process_slot.c - the pool's thread and its slot tasks: the socket
 * to a worker (buffered reads, whole writes), the slot task that feeds one
 * worker process and completes its futures, and the main task.
 *
 * Threads and tasks. The pool owns one thread, which runs a private corio
 * runtime of one worker ($CORIO_BACKEND chooses its backend as for any
 * runtime). Its main task spawns one "slot" task per allowed worker process
 * (max_workers) and awaits them. A slot task owns its process: it starts it
 * when it first has work (pool/process_spawn.c), writes requests and reads
 * the replies through the io backend (corio_sock_sendmsg /
 * corio_sock_recv), completes each task's concurrent future (its done
 * callbacks run on the pool's thread), and repeats. All slots run on the
 * pool's one runtime thread, so no thread waits per call: a call in flight
 * is a suspended task waiting on a socket. Only its slot task reads a
 * slot's socket; submitters write to an idle one (pool/process_pool.c,
 * "Handing work over", says how a slot idles and how it is woken).
 *
 * Batches: a slot that takes an item from the queue writes up to BATCH
 * small queued items behind it in one sendmsg (within BATCH_BYTES, so the
 * write never waits for the worker and the worker's replies never wait for
 * us), then reads the replies in order. It takes at most half its fair
 * share of the queue (queued / (2 max_workers)), none while a slot idles,
 * so long tasks still spread over the processes. Items of a batch are
 * marked running when written (Python marks its read-ahead call queue the
 * same way).
 *
 * A worker that dies under a slot (pool/process_spawn.c, "Dead workers")
 * fails the item it was running; the items of its batch behind the one it
 * ran go back to the front of the queue (still running) for the next
 * process; a PING'd item that never reached it runs anew.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "corio/executor.h"
#include "corio/net.h"
#include "corio/process_pool.h"
#include "corio/runtime.h"
#include "corio/task.h"
#include "corio/time.h"
#include "process_pool_int.h"
#include "process_wire.h"

/* ---- the socket: buffered reads, whole writes ---- */

static int send_all(int fd, struct iovec *iov, int n)
{
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    while (m.msg_iovlen) {
        ssize_t k = corio_sock_sendmsg(fd, &m, MSG_NOSIGNAL);
        if (k < 0)
            return (int)k;
        corio__pp_msg_advance(&m, (size_t)k);
    }
    return 0;
}

/* @len bytes into @dst; -EPIPE at end of stream, or the recv error. */
static int recv_full(struct pp_slot *s, void *dst, size_t len)
{
    unsigned char *d = dst;
    while (len) {
        if (s->rpos == s->rend) {
            bool direct = len >= PP_RBUF;
            ssize_t n = corio_sock_recv(s->fd, direct ? d : s->rbuf, direct ? len : PP_RBUF, 0);
            if (n <= 0)
                return n == 0 ? -EPIPE : (int)n;
            if (direct) {
                d += n;
                len -= (size_t)n;
                continue;
            }
            s->rpos = 0;
            s->rend = (size_t)n;
        }
        size_t k = s->rend - s->rpos < len ? s->rend - s->rpos : len;
        memcpy(d, s->rbuf + s->rpos, k);
        s->rpos += k;
        d += k;
        len -= k;
    }
    return 0;
}

/* The data after reply header @rh, as a NUL-terminated struct corio_bytes. */
static int read_body(struct pp_slot *s, const struct pp_hdr *rh, struct corio_bytes **body)
{
    int rc;
    struct corio_bytes *b = malloc(sizeof *b + rh->len + 1);
    if (!b)
        return -ENOMEM;
    b->len = (size_t)rh->len;
    rc = recv_full(s, b->data, b->len);
    if (rc < 0) {
        free(b);
        return rc;
    }
    b->data[b->len] = '\0';
    *body = b;
    return 0;
}

/* One request and its reply (process_pool_int.h); process_spawn.c sends
 * INIT with it. */
int corio__pp_exchange(struct pp_slot *s, uint32_t kind, const char *name, const void *data,
                       size_t len, struct pp_hdr *rh, struct corio_bytes **body)
{
    size_t nl = strlen(name);
    struct pp_hdr h = {PP_MAGIC, kind, 0, (uint32_t)nl, len};
    struct iovec iov[3] = {{&h, sizeof h}, {(void *)name, nl}, {(void *)data, len}};
    int rc = send_all(s->fd, iov, 3);
    if (rc < 0)
        return rc;
    rc = recv_full(s, rh, sizeof *rh);
    if (rc < 0)
        return rc;
    if (!pp_hdr_ok(rh) || (rh->kind != PP_OK && rh->kind != PP_ERR))
        return -EPROTO;
    return read_body(s, rh, body);
}

/* ---- the slot task ---- */

/* Marks @it running before it is sent; false (and @it freed) when it was
 * cancelled while queued. An item put back after its worker died is
 * running already. */
static bool claim(struct pp_item *it)
{
    if (it->claimed)
        return true;
    if (corio_cfuture_set_running_or_notify_cancel(it->fut) == 1)
        return it->claimed = true;
    corio__pp_item_free(it);
    return false;
}

static size_t request_size(const struct pp_item *it)
{
    return sizeof(struct pp_hdr) + strlen(it->fn->name) + it->len;
}

/* More small queued items to send with @b[0], while the whole batch stays
 * within BATCH_BYTES (so our writes never wait for the worker to read, and
 * its replies can never block on us: no deadlock) and within the tasks
 * this process may still run. */
static unsigned gather(struct pp_slot *s, struct pp_item **b)
{
    struct corio_process_pool *pp = s->pp;
    size_t bytes = request_size(b[0]);
    unsigned n = 1, cap = BATCH;
    if (pp->max_tasks && pp->max_tasks - s->tasks < cap)
        cap = pp->max_tasks - s->tasks;
    pthread_mutex_lock(&pp->lock);
    /* A batch runs in series, so long tasks must still spread: nothing
     * while another slot idles, and no more than half a fair share of the
     * queue, so that when it drains no slot holds much that another, idle
     * by then, could have run. */
    size_t share = 1 + pp->queued / (2 * (size_t)pp->nslots);
    if (pp->idle)
        cap = 1;
    else if (share < cap)
        cap = (unsigned)share;
    while (n < cap && pp->head && bytes + request_size(pp->head) <= BATCH_BYTES) {
        bytes += request_size(pp->head);
        b[n++] = corio__pp_queue_pop_locked(pp);
    }
    pthread_mutex_unlock(&pp->lock);
    unsigned k = 1;
    for (unsigned i = 1; i < n; i++)
        if (claim(b[i]))
            b[k++] = b[i];
    return k;
}

/* Items sent to a worker that died before it read or ran them go back to
 * the front of the queue, in order, still running (claimed). */
static void put_back(struct corio_process_pool *pp, struct pp_item **b, unsigned n)
{
    if (!n)
        return;
    for (unsigned i = 0; i + 1 < n; i++)
        b[i]->next = b[i + 1];
    pthread_mutex_lock(&pp->lock);
    b[n - 1]->next = pp->head;
    if (!pp->head)
        pp->tail = b[n - 1];
    pp->head = b[0];
    pp->queued += n;
    pthread_mutex_unlock(&pp->lock);
}

/* The reply to a CALL (@rc: 0 with @rh/@b, else a transport error). Returns
 * false when the worker was lost (and @it failed with the broken-pool
 * error). */
static bool complete_item(struct pp_slot *s, struct pp_item *it, int rc,
                          const struct pp_hdr *rh_, struct corio_bytes *b)
{
    char msg[320];
    const struct pp_hdr rh = rc == 0 ? *rh_ : (struct pp_hdr){0};
    if (rc == 0 && rh.kind != PP_OK && rh.kind != PP_ERR) {
        free(b);
        rc = -EPROTO;
    }
    if (rc < 0) {
        corio__pp_lost(s, rc, msg, sizeof msg);
        corio__pp_fail_item(it, -EPIPE, msg);
        return false;
    }
    if (rh.kind == PP_OK) {
        if (corio_cfuture_set_result_owned(it->fut, b, free) < 0)
            free(b);
        corio__pp_item_free(it);
    } else {
        corio__pp_fail_item(it, rh.code, (const char *)b->data);
        free(b);
    }
    if (s->pp->max_tasks && ++s->tasks >= s->pp->max_tasks)
        corio__pp_retire(s);
    return true;
}

/* Runs @first, with a batch of queued items behind it: all requests are
 * written at once, then the replies read in order (the worker runs them one
 * after another). A worker that dies fails the item it was running (the
 * first one unanswered) and the rest are put back. */
static void run_item(struct pp_slot *s, struct pp_item *first)
{
    char msg[320];
    if (!claim(first))
        return;
    int rc = corio__pp_ensure_worker(s, msg, sizeof msg);
    if (rc < 0) {
        corio__pp_fail_item(first, rc, msg);
        return;
    }
    struct pp_item *b[BATCH];
    b[0] = first;
    unsigned n = gather(s, b);
    struct pp_hdr h[BATCH];
    struct iovec iov[3 * BATCH];
    for (unsigned i = 0; i < n; i++) {
        size_t nl = strlen(b[i]->fn->name);
        h[i] = (struct pp_hdr){PP_MAGIC, PP_CALL, 0, (uint32_t)nl, b[i]->len};
        iov[3 * i] = (struct iovec){&h[i], sizeof h[i]};
        iov[3 * i + 1] = (struct iovec){(void *)b[i]->fn->name, nl};
        iov[3 * i + 2] = (struct iovec){b[i]->data, b[i]->len};
    }
    rc = send_all(s->fd, iov, (int)(3 * n));
    for (unsigned i = 0; i < n; i++) {
        struct pp_hdr rh;
        struct corio_bytes *body = NULL;
        if (rc == 0)
            rc = recv_full(s, &rh, sizeof rh);
        if (rc == 0)
            rc = pp_hdr_ok(&rh) ? read_body(s, &rh, &body) : -EPROTO;
        if (!complete_item(s, b[i], rc, &rh, body)) {
            put_back(s->pp, b + i + 1, n - i - 1);
            return;
        }
    }
}

/* Idle with a live worker: wait for what a submitter wrote to it (process
 * wire: the reply to a direct CALL, or PONG), or for its death. Returns the
 * item to run (*@replied: its reply header is in *@rh), or NULL to look
 * again. */
static struct pp_item *idle_in_recv(struct pp_slot *s, struct pp_hdr *rh, bool *replied)
{
    struct corio_process_pool *pp = s->pp;
    s->in_recv = true;
    corio__pp_idle_push_locked(pp, s);
    pthread_mutex_unlock(&pp->lock);
    int rc = recv_full(s, rh, sizeof *rh);
    pthread_mutex_lock(&pp->lock);
    if (s->on_idle)
        corio__pp_idle_unlink_locked(pp, s);   /* woken by its own worker's death */
    struct pp_item *it = s->item;
    bool direct = s->direct;
    s->item = NULL;
    s->in_recv = s->direct = false;
    pthread_mutex_unlock(&pp->lock);
    if (rc == 0 && !pp_hdr_ok(rh))
        rc = -EPROTO;
    if (rc == 0 && rh->kind == PP_PONG)
        return it;                    /* NULL: shutdown looks again */
    if (rc == 0 && it && direct) {
        *replied = true;
        return it;
    }
    /* Death, or a reply nobody asked for. */
    char msg[320];
    corio__pp_lost(s, rc < 0 ? rc : -EPROTO, msg, sizeof msg);
    if (it && direct)
        corio__pp_fail_item(it, -EPIPE, msg);   /* it was running there */
    else if (it)
        return it;                    /* never reached the worker: run it anew */
    return NULL;
}

/* The next item for @s, waiting for one; NULL when the pool shut down and
 * nothing is left. */
static struct pp_item *take_item(struct pp_slot *s, struct pp_hdr *rh, bool *replied)
{
    struct corio_process_pool *pp = s->pp;
    corio_future *k = NULL;
    *replied = false;
    for (;;) {
        pthread_mutex_lock(&pp->lock);
        struct pp_item *it = corio__pp_queue_pop_locked(pp);
        if (it || pp->state != PP_RUNNING) {
            pthread_mutex_unlock(&pp->lock);
            corio_future_unref(k);
            return it;
        }
        if (s->pid) {
            corio_future_unref(k);
            k = NULL;
            if ((it = idle_in_recv(s, rh, replied)))
                return it;
            continue;
        }
        if (!k) {
            pthread_mutex_unlock(&pp->lock);
            if (corio_future_create(&k) < 0) {
                k = NULL;
                corio_sleep(CORIO_MSEC);   /* out of memory: try again soon */
            }
            continue;
        }
        s->kick = k;
        s->item = NULL;
        corio__pp_idle_push_locked(pp, s);
        pthread_mutex_unlock(&pp->lock);
        corio_future_await(k, NULL);
        pthread_mutex_lock(&pp->lock);
        it = s->item;
        s->item = NULL;
        s->kick = NULL;
        pthread_mutex_unlock(&pp->lock);
        corio_future_unref(k);
        k = NULL;
        if (it)
            return it;
    }
}

static void *slot_main(void *arg)
{
    struct pp_slot *s = arg;
    struct pp_item *it;
    struct pp_hdr rh;
    bool replied;
    while ((it = take_item(s, &rh, &replied))) {
        if (!replied) {
            run_item(s, it);
            continue;
        }
        struct corio_bytes *b = NULL;
        int rc = read_body(s, &rh, &b);
        complete_item(s, it, rc, &rh, b);
    }
    corio__pp_retire(s);
    return NULL;
}

static void *pool_main(void *arg)
{
    struct corio_process_pool *pp = arg;
    corio_task **ts = calloc(pp->nslots, sizeof *ts);
    unsigned started = 0;
    for (unsigned i = 0; ts && i < pp->nslots; i++) {
        char name[32];
        snprintf(name, sizeof name, "corio-ppool-%u", i);
        corio_spawn_options o = {.name = name, .stack_size = PP_SLOT_STACK};
        if (corio_spawn_ex(&ts[i], slot_main, &pp->slots[i], &o) < 0)
            break;
        started++;
    }
    if (!started) {
        corio__pp_break_pool(pp, "process pool is broken: its tasks could not start");
        /* Slots never started: nothing else drains the queue or idles. */
    }
    for (unsigned i = 0; i < started; i++) {
        corio_await(ts[i], NULL);
        corio_task_unref(ts[i]);
    }
    free(ts);
    return NULL;
}

/* The pool's thread (process_pool_int.h). */
void *corio__pp_pool_thread(void *arg)
{
    struct corio_process_pool *pp = arg;
    corio_rt_run(pp->rt, pool_main, pp, NULL);
    corio_rt_destroy(pp->rt);
    pp->rt = NULL;
    return NULL;
}
