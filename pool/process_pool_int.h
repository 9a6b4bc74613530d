/* pool/process_pool_int.h - what the process pool's files share: its
 * objects, the queue and the idle stack, and the calls that cross files.
 *
 * The pool is four parts (the essay of each file says more):
 *   process_pool.c   the public face; submit hands work over (the queue,
 *                    the idle stack, direct sends); shutdown.
 *   process_slot.c   the socket (buffered reads, whole writes), the slot
 *                    task that owns one worker process, the pool's thread.
 *   process_spawn.c  processes: spawn, reap, retire, a lost worker, a
 *                    broken pool.
 *   process_child.c  the function table and the worker's side.
 *
 * Locking. pp->lock guards the queue, the idle stack, the state, each
 * slot's fd, pid, kick and item, and pp->alive. Everything else in a slot
 * belongs to its slot task, which runs on the pool's one runtime thread;
 * the pool's fields set at create are read-only afterwards. Functions named
 * _locked are called with pp->lock held.
 */
#ifndef CORIO_POOL_PROCESS_POOL_INT_H
#define CORIO_POOL_PROCESS_POOL_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "corio/executor.h"
#include "corio/process_pool.h"
#include "corio/runtime.h"
#include "corio/task.h"
#include "process_wire.h"

#define PP_MAX_WORKERS 1024
#define PP_RBUF (64 * 1024)       /* one recv() holds a small reply whole */
#define PP_SLOT_STACK (256 * 1024)/* posix_spawn and message formatting */
#define BATCH 32                  /* requests written at once to one worker */
#define BATCH_BYTES (64 * 1024)   /* their bound: a third of a socket buffer */
#define DIRECT_MAX (16 * 1024)    /* a request submit writes itself: far below
                                     an AF_UNIX socket's buffer (~200 KiB) */

enum { PP_RUNNING = 0, PP_SHUTDOWN };

struct pp_item {
    struct pp_item *next;
    bool claimed;                /* marked running (set_running_or_...) */
    corio_cfuture *fut;          /* the pool's reference */
    const corio_process_function *fn;
    size_t len;
    unsigned char data[];
};

struct pp_slot {
    struct corio_process_pool *pp;
    unsigned idx;
    int pid;                     /* 0: no process; written under pp->lock */
    int fd, pidfd;               /* the slot task's own */
    unsigned tasks;              /* tasks run by this process */
    corio_future *kick;          /* under pp->lock while on the idle stack */
    struct pp_item *item;        /* handed over with the kick, PING or CALL */
    bool on_idle;                /* on pp->idle (under pp->lock) */
    bool in_recv;                /* idle reading its socket, not on a kick */
    bool direct;                 /* item was sent as a CALL by submit */
    struct pp_slot *next_idle;
    size_t rpos, rend;
    unsigned char *rbuf;
};

struct corio_process_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int state;
    bool broken;
    char broken_msg[256];
    struct pp_item *head, *tail;
    size_t queued;               /* items in head..tail */
    struct pp_slot *idle;
    unsigned alive;              /* processes started and not yet reaped */
    unsigned nslots;
    struct pp_slot *slots;
    const char *init_name;       /* the registration's own string, or NULL */
    void *initarg;
    size_t initarg_len;
    unsigned max_tasks;
    corio_rt *rt;
    pthread_t thread;
    bool join_claimed, joined;
};

/* ---- items, the queue, the idle stack, a partial write (a few instructions each) ---- */

static inline void corio__pp_item_free(struct pp_item *it)
{
    corio_cfuture_unref(it->fut);
    free(it);
}

static inline void corio__pp_fail_item(struct pp_item *it, int code, const char *msg)
{
    if (code >= 0 || code == -ECANCELED)
        code = -EIO;   /* set_exception takes neither */
    corio_cfuture_set_exception(it->fut, code, msg);
    corio__pp_item_free(it);
}

static inline struct pp_item *corio__pp_queue_pop_locked(struct corio_process_pool *pp)
{
    struct pp_item *it = pp->head;
    if (it) {
        pp->head = it->next;
        if (!pp->head)
            pp->tail = NULL;
        pp->queued--;
    }
    return it;
}

static inline void corio__pp_idle_push_locked(struct corio_process_pool *pp, struct pp_slot *s)
{
    s->next_idle = pp->idle;
    pp->idle = s;
    s->on_idle = true;
}

static inline struct pp_slot *corio__pp_idle_pop_locked(struct corio_process_pool *pp)
{
    struct pp_slot *s = pp->idle;
    pp->idle = s->next_idle;
    s->on_idle = false;
    return s;
}

/* A slot whose worker died while it idled takes itself off the stack. */
static inline void corio__pp_idle_unlink_locked(struct corio_process_pool *pp, struct pp_slot *s)
{
    for (struct pp_slot **p = &pp->idle; *p; p = &(*p)->next_idle)
        if (*p == s) {
            *p = s->next_idle;
            break;
        }
    s->on_idle = false;
}

/* Steps @m past the @k bytes a sendmsg() of it took (@k <= what is left). */
static inline void corio__pp_msg_advance(struct msghdr *m, size_t k)
{
    while (m->msg_iovlen && k >= m->msg_iov->iov_len) {
        k -= m->msg_iov->iov_len;
        m->msg_iov++;
        m->msg_iovlen--;
    }
    if (m->msg_iovlen) {
        m->msg_iov->iov_base = (char *)m->msg_iov->iov_base + k;
        m->msg_iov->iov_len -= k;
    }
}

/* ---- process_slot.c (the slot task's side; call from a slot task) ---- */

/* One request and its reply: 0 with *@rh and *@body (NUL-terminated, free()
 * it), or a negative transport error (the worker is gone or broke the
 * protocol). */
int corio__pp_exchange(struct pp_slot *s, uint32_t kind, const char *name, const void *data,
                       size_t len, struct pp_hdr *rh, struct corio_bytes **body);

/* The pool's thread (pthread_create's start routine): runs the pool's
 * runtime until every slot ended, then destroys it. */
void *corio__pp_pool_thread(void *arg);

/* ---- process_spawn.c (call from a slot task, for its own slot) ---- */

/* A started, initialized worker for @s: 0, or an error with @msg (and a
 * failed initializer breaks the pool). */
int corio__pp_ensure_worker(struct pp_slot *s, char *msg, size_t cap);

/* The worker is done with: end of stream makes it exit; reaps it. */
void corio__pp_retire(struct pp_slot *s);

/* The worker failed us (@err from the socket): make sure it is gone, reap
 * it and describe how it ended in @msg. */
void corio__pp_lost(struct pp_slot *s, int err, char *msg, size_t cap);

/* Marks the pool broken with @msg (the first message stays) and fails the
 * queued items with -EPIPE. */
void corio__pp_break_pool(struct corio_process_pool *pp, const char *msg);

#endif
