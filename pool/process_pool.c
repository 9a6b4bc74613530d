/* pool/process_pool.c - the process-pool executor: the pool's side.
 *
 * Threads and tasks. The pool owns one thread, which runs a private corio
 * runtime of one worker ($CORIO_BACKEND chooses its backend as for any
 * runtime). Its main task spawns one "slot" task per allowed worker process
 * (max_workers) and awaits them. A slot task owns its process: it starts it
 * when it first has work (posix_spawn of /proc/self/exe: the glibc version
 * is clone(CLONE_VM|CLONE_VFORK)+exec, safe in a process that has threads,
 * and copies no memory, so neither the rings, marked dontfork, nor other
 * threads' locks reach the child), writes requests and reads the replies
 * through the io backend (corio_sock_sendmsg / corio_sock_recv), completes
 * each task's concurrent future (its done callbacks run on the pool's
 * thread), and repeats. All slots run on the pool's one runtime thread, so
 * no thread waits per call: a call in flight is a suspended task waiting
 * on a socket.
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
 * Batches: a slot that takes an item from the queue writes up to BATCH
 * small queued items behind it in one sendmsg (within BATCH_BYTES, so the
 * write never waits for the worker and the worker's replies never wait for
 * us), then reads the replies in order. It takes at most half its fair
 * share of the queue (queued / (2 max_workers)), none while a slot idles,
 * so long tasks still spread over the processes. Items of a batch are
 * marked running when written (Python marks its read-ahead call queue the
 * same way).
 *
 * Dead workers. The worker closes its socket only by exiting, so end of
 * stream (or ECONNRESET/EPIPE) while a task is in flight means the process
 * died: the slot closes its socket, waits for its pidfd to be readable (the
 * child is a zombie by then; without pidfds, Linux < 5.3, waitpid blocks for
 * the moment the exit takes), reaps it with waitpid (no zombie), fails the
 * future with -EPIPE and "process pool worker <pid> died: Killed (SIGKILL)",
 * and starts a new process for its next task. The items of its batch behind
 * the one it ran go back to the front of the queue (still running) for the
 * next process; a PING'd item that never reached it runs anew. A failing initializer (an ERR reply to INIT, or death during INIT) breaks
 * the pool as Python's BrokenProcessPool: queued tasks fail with -EPIPE and
 * later submits are refused.
 *
 * Shutdown sets the state, optionally cancels the queued futures, and
 * wakes every idle slot; a slot that has no more work closes its socket (the
 * worker sees end of stream and _exit()s), reaps its process and ends. The
 * main task then returns, the runtime shuts down and the thread ends;
 * shutdown(wait) joins it (once, whoever comes first; others wait on
 * pp->cond).
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corio/executor.h"
#include "corio/net.h"
#include "corio/process_pool.h"
#include "corio/runtime.h"
#include "corio/task.h"
#include "corio/time.h"
#include "process_wire.h"

extern char **environ;

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

/* ---- small helpers ---- */

static void item_free(struct pp_item *it)
{
    corio_cfuture_unref(it->fut);
    free(it);
}

static void fail_item(struct pp_item *it, int code, const char *msg)
{
    if (code >= 0 || code == -ECANCELED)
        code = -EIO;   /* set_exception takes neither */
    corio_cfuture_set_exception(it->fut, code, msg);
    item_free(it);
}

static struct pp_item *pop_queue_locked(struct corio_process_pool *pp)
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

static void push_idle_locked(struct corio_process_pool *pp, struct pp_slot *s)
{
    s->next_idle = pp->idle;
    pp->idle = s;
    s->on_idle = true;
}

static struct pp_slot *pop_idle_locked(struct corio_process_pool *pp)
{
    struct pp_slot *s = pp->idle;
    pp->idle = s->next_idle;
    s->on_idle = false;
    return s;
}

/* A slot whose worker died while it idled takes itself off the stack. */
static void unlink_idle_locked(struct corio_process_pool *pp, struct pp_slot *s)
{
    for (struct pp_slot **p = &pp->idle; *p; p = &(*p)->next_idle)
        if (*p == s) {
            *p = s->next_idle;
            break;
        }
    s->on_idle = false;
}

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
        while (m.msg_iovlen && (size_t)k >= m.msg_iov->iov_len) {
            k -= (ssize_t)m.msg_iov->iov_len;
            m.msg_iov++;
            m.msg_iovlen--;
        }
        if (m.msg_iovlen) {
            m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + k;
            m.msg_iov->iov_len -= (size_t)k;
        }
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

static void set_pid(struct pp_slot *s, int pid)
{
    pthread_mutex_lock(&s->pp->lock);
    if (pid && !s->pid)
        s->pp->alive++;
    else if (!pid && s->pid)
        s->pp->alive--;
    s->pid = pid;
    pthread_mutex_unlock(&s->pp->lock);
}

/* ---- the socket: buffered reads, whole writes ---- */

static int send_all(int fd, struct iovec *iov, int n)
{
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    while (m.msg_iovlen) {
        ssize_t k = corio_sock_sendmsg(fd, &m, MSG_NOSIGNAL);
        if (k < 0)
            return (int)k;
        while (m.msg_iovlen && (size_t)k >= m.msg_iov->iov_len) {
            k -= (ssize_t)m.msg_iov->iov_len;
            m.msg_iov++;
            m.msg_iovlen--;
        }
        if (m.msg_iovlen) {
            m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + k;
            m.msg_iov->iov_len -= (size_t)k;
        }
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

static int read_body(struct pp_slot *s, const struct pp_hdr *rh, struct corio_bytes **body);

/* One request and its reply: 0 with *@rh and *@body (NUL-terminated, free()
 * it), or a negative transport error (the worker is gone or broke the
 * protocol). */
static int exchange(struct pp_slot *s, uint32_t kind, const char *name, const void *data,
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

/* ---- processes ---- */

/* Waits for the process of @s to end and reaps it; *@status gets its wait
 * status. Its socket must be closed first (that is what makes it exit). */
static void reap(struct pp_slot *s, int *status)
{
    if (s->pidfd >= 0) {
        corio_wait_fd(s->pidfd, POLLIN);
        close(s->pidfd);
        s->pidfd = -1;
    }
    int st = 0;
    while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (status)
        *status = st;
    set_pid(s, 0);
}

/* Under pp->lock: submitters write to s->fd under it. No operation of ours
 * is in flight on it (the slot task, its only reader, is here). */
static void close_socket(struct pp_slot *s)
{
    pthread_mutex_lock(&s->pp->lock);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    pthread_mutex_unlock(&s->pp->lock);
    s->rpos = s->rend = 0;
    s->tasks = 0;
}

/* The worker is done with: end of stream makes it exit. */
static void retire(struct pp_slot *s)
{
    if (!s->pid)
        return;
    close_socket(s);
    reap(s, NULL);
}

/* The worker failed us (@err from the socket): make sure it is gone, reap
 * it and describe how it ended in @msg. The SIGKILL is for a worker that is
 * alive but unusable (a torn stream, our own allocation failure, user code
 * that closed the socket and went on); one that is exiting already keeps
 * its own status (the kernel ignores signals to an exiting task). */
static void lost(struct pp_slot *s, int err, char *msg, size_t cap)
{
    int pid = s->pid;
    kill(pid, SIGKILL);
    close_socket(s);
    int st;
    reap(s, &st);
    if (err == -EPROTO || err == -ENOMEM) {
        snprintf(msg, cap, "process pool worker %d was stopped: %s", pid, corio_strerror(err));
    } else if (WIFSIGNALED(st)) {
        const char *abbrev = sigabbrev_np(WTERMSIG(st));
        snprintf(msg, cap, "process pool worker %d died: %s (SIG%s)", pid,
                 strsignal(WTERMSIG(st)), abbrev ? abbrev : "?");
    } else {
        snprintf(msg, cap, "process pool worker %d died: exited with status %d", pid,
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
}

/* The environment of a worker: ours, less any PP_ENV, plus PP_ENV. */
static char **worker_env(char *mine)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = malloc((n + 2) * sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0, el = strlen(PP_ENV);
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], PP_ENV, el) != 0 || environ[i][el] != '=')
            env[k++] = environ[i];
    env[k++] = mine;
    env[k] = NULL;
    return env;
}

static int spawn_worker(struct pp_slot *s)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    if (sv[1] == PP_CHILD_FD) {
        /* dup2(fd, fd) would keep close-on-exec: move it first. */
        int moved = fcntl(sv[1], F_DUPFD_CLOEXEC, PP_CHILD_FD + 1);
        close(sv[1]);
        sv[1] = moved;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    char mine[64];
    snprintf(mine, sizeof mine, "%s=%d", PP_ENV, (int)getpid());
    char **env = worker_env(mine);
    char *argv[] = {program_invocation_name, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none;
    sigemptyset(&none);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], PP_CHILD_FD);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
    /* The program's descriptors without close-on-exec stay out of workers. */
    posix_spawn_file_actions_addclosefrom_np(&fa, PP_CHILD_FD + 1);
#endif
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigmask(&at, &none);   /* the pool thread blocks all */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = 0;
    int rc = env && sv[1] >= 0 ? posix_spawn(&pid, "/proc/self/exe", &fa, &at, argv, env)
                               : ENOMEM;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(env);
    if (sv[1] >= 0)
        close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        return -rc;
    }
    s->fd = sv[0];
    s->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (s->pidfd >= 0)
        fcntl(s->pidfd, F_SETFD, FD_CLOEXEC);
    s->tasks = 0;
    set_pid(s, (int)pid);
    return 0;
}

static void break_pool(struct corio_process_pool *pp, const char *msg)
{
    pthread_mutex_lock(&pp->lock);
    if (!pp->broken) {
        pp->broken = true;
        snprintf(pp->broken_msg, sizeof pp->broken_msg, "%s", msg);
    }
    struct pp_item *list = pp->head;
    pp->head = pp->tail = NULL;
    pp->queued = 0;
    pthread_mutex_unlock(&pp->lock);
    while (list) {
        struct pp_item *next = list->next;
        if (list->claimed || corio_cfuture_set_running_or_notify_cancel(list->fut) == 1)
            fail_item(list, -EPIPE, msg);
        else
            item_free(list);
        list = next;
    }
}

/* A started, initialized worker for @s: 0, or an error with @msg (and a
 * failed initializer breaks the pool). */
static int ensure_worker(struct pp_slot *s, char *msg, size_t cap)
{
    struct corio_process_pool *pp = s->pp;
    if (s->pid)
        return 0;
    int rc = spawn_worker(s);
    if (rc < 0) {
        snprintf(msg, cap, "process pool could not start a worker: %s", corio_strerror(rc));
        return rc;
    }
    struct pp_hdr rh;
    struct corio_bytes *b = NULL;
    const char *init = pp->init_name ? pp->init_name : "";
    rc = exchange(s, PP_INIT, init, pp->initarg, pp->initarg_len, &rh, &b);
    if (rc == 0 && rh.kind == PP_OK) {
        free(b);
        return 0;
    }
    char why[200];
    if (rc < 0)
        lost(s, rc, why, sizeof why);
    else {
        snprintf(why, sizeof why, "%s (%s)", (const char *)b->data, corio_strerror(rh.code));
        retire(s);
    }
    free(b);
    snprintf(msg, cap, "process pool is broken: initializer '%s' failed: %s", init, why);
    break_pool(pp, msg);
    return -EPIPE;
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
    item_free(it);
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
        b[n++] = pop_queue_locked(pp);
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
        lost(s, rc, msg, sizeof msg);
        fail_item(it, -EPIPE, msg);
        return false;
    }
    if (rh.kind == PP_OK) {
        if (corio_cfuture_set_result_owned(it->fut, b, free) < 0)
            free(b);
        item_free(it);
    } else {
        fail_item(it, rh.code, (const char *)b->data);
        free(b);
    }
    if (s->pp->max_tasks && ++s->tasks >= s->pp->max_tasks)
        retire(s);
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
    int rc = ensure_worker(s, msg, sizeof msg);
    if (rc < 0) {
        fail_item(first, rc, msg);
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
    push_idle_locked(pp, s);
    pthread_mutex_unlock(&pp->lock);
    int rc = recv_full(s, rh, sizeof *rh);
    pthread_mutex_lock(&pp->lock);
    if (s->on_idle)
        unlink_idle_locked(pp, s);   /* woken by its own worker's death */
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
    lost(s, rc < 0 ? rc : -EPROTO, msg, sizeof msg);
    if (it && direct)
        fail_item(it, -EPIPE, msg);   /* it was running there */
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
        struct pp_item *it = pop_queue_locked(pp);
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
        push_idle_locked(pp, s);
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
    retire(s);
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
        break_pool(pp, "process pool is broken: its tasks could not start");
        /* Slots never started: nothing else drains the queue or idles. */
    }
    for (unsigned i = 0; i < started; i++) {
        corio_await(ts[i], NULL);
        corio_task_unref(ts[i]);
    }
    free(ts);
    return NULL;
}

static void *pool_thread(void *arg)
{
    struct corio_process_pool *pp = arg;
    corio_rt_run(pp->rt, pool_main, pp, NULL);
    corio_rt_destroy(pp->rt);
    pp->rt = NULL;
    return NULL;
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
    int rc = pthread_create(&pp->thread, NULL, pool_thread, pp);
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
            struct pp_slot *s = pop_idle_locked(pp);
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
        item_free(it);
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
            corio_future *k = wake_idle_locked(pop_idle_locked(pp), NULL, false);
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
        item_free(cancelled);
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
