/* pool/process_pool.c - the process-pool executor: the pool's side, its
 * public face (create, submit, shutdown, destroy, workers, pids).
 *
 * Threads and tasks. The pool owns one thread, which runs a private corio
 * runtime of one worker; its main task spawns one "slot" task per allowed
 * worker process (max_workers), and a slot task owns its process
 * (pool/process_slot.c says how the slots and the thread run,
 * pool/process_spawn.c how a process starts and ends, and
 * pool/process_pool_int.h holds what the files share). This file is what
 * the program's threads call, from any thread.
 *
 * Handing work over (pp->lock guards the queue, the idle stack, the state,
 * each slot's fd, pid, kick and item). submit() gives an item to an idle
 * slot if there is one (the idle stack is LIFO, so one-at-a-time use keeps
 * one warm process), else appends it to the FIFO queue, which slots drain
 * before they idle. A slot idles in one of two ways:
 *   - with no process (first use, after a death, after max_tasks_per_child):
 *     it creates a corio future (its "kick") and awaits it; submit completes
 *     it from the submitting thread (any thread may complete a corio future:
 *     the slot is queued on the pool's runtime and its worker woken),
 *     taking a reference for the call.
 *   - with a live process: it reads its socket. Direct sends: submit writes
 *     a small request (<= DIRECT_MAX) to that socket itself, under pp->lock
 *     (non-blocking; the idle socket's buffer takes it whole), and marks the
 *     future running; the worker's reply wakes the slot through the io
 *     backend, with no wake-up of the pool's thread by the submitter. A
 *     larger request, or shutdown, sends PING instead: the PONG wakes the
 *     slot, which then sends the item itself. A worker that dies while its
 *     slot idles is seen (end of stream) and reaped at once.
 *
 * Shutdown sets the state, optionally cancels the queued futures, and
 * wakes every idle slot; a slot that has no more work closes its socket (the
 * worker sees end of stream and _exit()s), reaps its process and ends. The
 * main task then returns, the runtime shuts down and the thread ends;
 * shutdown(wait) joins it (once, whoever comes first; others wait on
 * pp->cond).
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "corio/executor.h"
#include "corio/process_pool.h"
#include "corio/runtime.h"
#include "process_pool_int.h"
#include "process_wire.h"

/* ---- handing work over to an idle slot ---- */

/* Writes a whole small request to the idle worker of @s, from the submitting
 * (or shutting down) thread, under pp->lock (which keeps s->fd open). The
 * socket is empty, its buffer far larger than DIRECT_MAX, so the first send
 * takes it all; the loop is for the unexpected. An error means the worker is
 * dead, which the slot's own read sees. A request that cannot be finished
 * within 1 s would leave a torn stream: the worker is killed instead. */
static void send_direct_locked(struct pp_slot *s, uint32_t kind, const char *name,
                               const void *data, size_t len)
{
    size_t nl = name ? strlen(name) : 0;
    struct pp_hdr h = {PP_MAGIC, kind, 0, (uint32_t)nl, len};
    struct iovec iov[3] = {{&h, sizeof h}, {(void *)name, nl}, {(void *)data, len}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3};
    for (int tries = 0; m.msg_iovlen; tries++) {
        ssize_t k = sendmsg(s->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno != EAGAIN)
            return;
        if (k < 0 || tries >= 100) {
            struct pollfd pfd = {s->fd, POLLOUT, 0};
            if (tries >= 100 || poll(&pfd, 1, 10) < 0) {
                kill(s->pid, SIGKILL);
                return;
            }
            continue;
        }
        corio__pp_msg_advance(&m, (size_t)k);
    }
}

/* Wakes the slot @s just popped from the idle stack, giving it @it (NULL:
 * leave, at shutdown). A slot reading its socket gets a CALL for a small
 * item (*@direct: the caller marked it running) or a PING; one waiting on
 * its kick gets the kick's reference back, for the caller to complete
 * outside the lock. */
static corio_future *wake_idle_locked(struct pp_slot *s, struct pp_item *it, bool direct)
{
    s->item = it;
    s->direct = false;
    if (!s->in_recv)
        return corio_future_ref(s->kick);
    if (it && direct) {
        s->direct = true;
        send_direct_locked(s, PP_CALL, it->fn->name, it->data, it->len);
    } else {
        send_direct_locked(s, PP_PING, NULL, NULL, 0);
    }
    return NULL;
}

static void kick(corio_future *k)
{
    corio_future_set_result(k, NULL);
    corio_future_unref(k);
}

/* ---- the public face ---- */

static void pool_free(struct corio_process_pool *pp)
{
    if (pp->slots)
        for (unsigned i = 0; i < pp->nslots; i++)
            free(pp->slots[i].rbuf);
    free(pp->slots);
    free(pp->initarg);
    pthread_mutex_destroy(&pp->lock);
    pthread_cond_destroy(&pp->cond);
    free(pp);
}

static int pool_init(struct corio_process_pool *pp, const corio_process_pool_options *o)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    pp->nslots = o->max_workers ? o->max_workers : (cpus > 0 ? (unsigned)cpus : 1);
    pp->max_tasks = o->max_tasks_per_child;
    if (o->initializer) {
        const corio_process_function *f = corio__process_lookup(o->initializer);
        if (!f)
            return -ENOENT;
        pp->init_name = f->name;
    }
    pp->initarg_len = o->initarg_len;
    pp->initarg = malloc(o->initarg_len ? o->initarg_len : 1);
    pp->slots = calloc(pp->nslots, sizeof *pp->slots);
    if (!pp->initarg || !pp->slots)
        return -ENOMEM;
    if (o->initarg_len)
        memcpy(pp->initarg, o->initarg, o->initarg_len);
    for (unsigned i = 0; i < pp->nslots; i++) {
        struct pp_slot *s = &pp->slots[i];
        s->pp = pp;
        s->idx = i;
        s->fd = s->pidfd = -1;
        s->rbuf = malloc(PP_RBUF);
        if (!s->rbuf)
            return -ENOMEM;
    }
    corio_rt_options ro = {.workers = 1};
    return corio_rt_create(&pp->rt, &ro);
}

static int start_thread(struct corio_process_pool *pp)
{
    /* The pool thread blocks every signal, so that signals meant for the
     * program are never delivered to it; workers get an empty mask back. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&pp->thread, NULL, corio__pp_pool_thread, pp);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -rc;
}

int corio_process_pool_create(corio_process_pool **out, const corio_process_pool_options *opts)
{
    static const corio_process_pool_options defaults;
    const corio_process_pool_options *o = opts ? opts : &defaults;
    if (!out || o->max_workers > PP_MAX_WORKERS || (!o->initarg && o->initarg_len) ||
        o->initarg_len > CORIO_PROCESS_MAX_PAYLOAD)
        return -EINVAL;
    if (!corio__process_hook_seen())
        return -ENOEXEC;
    struct corio_process_pool *pp = calloc(1, sizeof *pp);
    if (!pp)
        return -ENOMEM;
    pthread_mutex_init(&pp->lock, NULL);
    pthread_cond_init(&pp->cond, NULL);
    int rc = pool_init(pp, o);
    if (rc == 0)
        rc = start_thread(pp);
    if (rc < 0) {
        if (pp->rt)
            corio_rt_destroy(pp->rt);
        pool_free(pp);
        return rc;
    }
    *out = pp;
    return 0;
}

int corio_process_pool_submit(corio_process_pool *pp, const char *name, const void *in,
                              size_t in_len, corio_cfuture **out)
{
    if (!pp || !name || !out || (!in && in_len))
        return -EINVAL;
    if (in_len > CORIO_PROCESS_MAX_PAYLOAD)
        return -EMSGSIZE;
    const corio_process_function *fn = corio__process_lookup(name);
    if (!fn)
        return -ENOENT;
    struct pp_item *it = malloc(sizeof *it + in_len);
    if (!it)
        return -ENOMEM;
    corio_cfuture *f;
    if (corio_cfuture_create(&f) < 0) {
        free(it);
        return -ENOMEM;
    }
    it->next = NULL;
    it->claimed = false;
    it->fut = corio_cfuture_ref(f);
    it->fn = fn;
    it->len = in_len;
    if (in_len)
        memcpy(it->data, in, in_len);
    corio_future *k = NULL;
    bool direct = in_len + strlen(fn->name) <= DIRECT_MAX;
    pthread_mutex_lock(&pp->lock);
    int rc = pp->state != PP_RUNNING ? -ESHUTDOWN : pp->broken ? -EPIPE : 0;
    if (rc == 0) {
        if (pp->idle) {
            struct pp_slot *s = corio__pp_idle_pop_locked(pp);
            /* Sent now, it runs now: nobody else has the future yet. */
            if (s->in_recv && direct)
                it->claimed = corio_cfuture_set_running_or_notify_cancel(f) == 1;
            k = wake_idle_locked(s, it, direct);
        } else {
            if (pp->tail)
                pp->tail = pp->tail->next = it;
            else
                pp->head = pp->tail = it;
            pp->queued++;
        }
    }
    pthread_mutex_unlock(&pp->lock);
    if (rc < 0) {
        corio__pp_item_free(it);
        corio_cfuture_unref(f);
        return rc;
    }
    if (k)
        kick(k);
    *out = f;
    return 0;
}

static void join_pool_thread(struct corio_process_pool *pp)
{
    pthread_mutex_lock(&pp->lock);
    if (!pp->join_claimed) {
        pp->join_claimed = true;
        pthread_mutex_unlock(&pp->lock);
        pthread_join(pp->thread, NULL);
        pthread_mutex_lock(&pp->lock);
        pp->joined = true;
        pthread_cond_broadcast(&pp->cond);
    }
    while (!pp->joined)
        pthread_cond_wait(&pp->cond, &pp->lock);
    pthread_mutex_unlock(&pp->lock);
}

int corio_process_pool_shutdown(corio_process_pool *pp, bool wait, bool cancel_futures)
{
    if (!pp)
        return -EINVAL;
    if (wait && pthread_equal(pthread_self(), pp->thread))
        return -EDEADLK;
    struct pp_item *cancelled = NULL;
    corio_future *kicks[64];
    pthread_mutex_lock(&pp->lock);
    pp->state = PP_SHUTDOWN;
    if (cancel_futures) {
        /* Items a slot put back (claimed) are running: they stay. */
        struct pp_item *q = pp->head, **ct = &cancelled;
        pp->head = pp->tail = NULL;
        pp->queued = 0;
        while (q) {
            struct pp_item *next = q->next;
            q->next = NULL;
            if (q->claimed) {
                pp->queued++;
                if (pp->tail)
                    pp->tail = pp->tail->next = q;
                else
                    pp->head = pp->tail = q;
            } else {
                *ct = q;
                ct = &q->next;
            }
            q = next;
        }
    }
    /* Idle slots leave; the lock is dropped to complete each batch of kicks. */
    while (pp->idle) {
        unsigned n = 0;
        while (pp->idle && n < 64) {
            corio_future *k = wake_idle_locked(corio__pp_idle_pop_locked(pp), NULL, false);
            if (k)
                kicks[n++] = k;
        }
        pthread_mutex_unlock(&pp->lock);
        for (unsigned i = 0; i < n; i++)
            kick(kicks[i]);
        pthread_mutex_lock(&pp->lock);
    }
    pthread_mutex_unlock(&pp->lock);
    while (cancelled) {
        struct pp_item *next = cancelled->next;
        corio_cfuture_cancel(cancelled->fut);
        corio__pp_item_free(cancelled);
        cancelled = next;
    }
    if (wait)
        join_pool_thread(pp);
    return 0;
}

int corio_process_pool_destroy(corio_process_pool *pp)
{
    if (!pp)
        return -EINVAL;
    int rc = corio_process_pool_shutdown(pp, true, false);
    if (rc < 0)
        return rc;
    pool_free(pp);
    return 0;
}

unsigned corio_process_pool_workers(corio_process_pool *pp)
{
    if (!pp)
        return 0;
    pthread_mutex_lock(&pp->lock);
    unsigned n = pp->alive;
    pthread_mutex_unlock(&pp->lock);
    return n;
}

unsigned corio_process_pool_pids(corio_process_pool *pp, int *pids, unsigned n)
{
    if (!pp || !pids)
        return 0;
    unsigned k = 0;
    pthread_mutex_lock(&pp->lock);
    for (unsigned i = 0; i < pp->nslots && k < n; i++)
        if (pp->slots[i].pid)
            pids[k++] = pp->slots[i].pid;
    pthread_mutex_unlock(&pp->lock);
    return k;
}
