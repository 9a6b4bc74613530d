/* io/io.c - running one I/O operation from a task, on either backend.
 *
 * corio__io_await() is the whole life of an operation as io/backend.h
 * describes it: submitted on the current worker (its owner), the task parks
 * until the owner's backend completes it. A cancellation that arrives while
 * it is in flight is carried to the owner (the task migrates there: only the
 * owner touches its ring or epoll set) and the task keeps waiting for the
 * operation's own completion, because the kernel may still be writing into
 * the task's buffers until then.
 *
 * Backend choice (once per runtime): $CORIO_BACKEND=uring|epoll forces one;
 * otherwise a probe ring tells whether io_uring is usable here, and when it
 * is not, the reason is printed once per process in one line.
 */
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "internal.h"

static const char *uring_refusal(int rc)
{
    switch (rc) {
    case -EPERM:
        return "io_uring is not permitted here (a seccomp profile such as Docker's default, "
               "or kernel.io_uring_disabled=2)";
    case -ENOSYS:
        return "the kernel has no io_uring (ENOSYS: too old, or blocked by seccomp)";
    case -ENOMEM:
        return "io_uring setup ran out of memory (RLIMIT_MEMLOCK?)";
    case -EINVAL:
        return "the kernel's io_uring lacks what corio needs (Linux 5.19 or later)";
    default:
        return corio_strerror(rc);
    }
}

static pthread_once_t choose_once = PTHREAD_ONCE_INIT;
static const struct corio__backend_ops *chosen;

static void choose(void)
{
    const char *env = getenv("CORIO_BACKEND");
    if (env && !strcmp(env, "epoll")) {
        chosen = &corio__epoll_ops;
        return;
    }
    if (env && *env && strcmp(env, "uring"))
        fprintf(stderr, "corio: CORIO_BACKEND=%s is not uring or epoll; choosing by probe\n", env);
    struct io_uring ring;
    int rc = io_uring_queue_init(2, &ring, 0);
    if (rc == 0) {
        bool nodrop = ring.features & IORING_FEAT_NODROP;
        io_uring_queue_exit(&ring);
        if (nodrop) {
            chosen = &corio__uring_ops;
            return;
        }
        rc = -EINVAL;
    }
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    int disabled = 0;
    if (f) {
        if (fscanf(f, "%d", &disabled) != 1)
            disabled = 0;
        fclose(f);
    }
    if (rc == -EPERM && disabled)
        fprintf(stderr, "corio: io_uring is disabled by sysctl kernel.io_uring_disabled=%d; "
                        "using epoll\n", disabled);
    else
        fprintf(stderr, "corio: %s; using epoll\n", uring_refusal(rc));
    chosen = &corio__epoll_ops;
}

const struct corio__backend_ops *corio__backend_choose(void)
{
    pthread_once(&choose_once, choose);
    return chosen;
}

void corio__io_complete(struct corio__io_op *op, int res)
{
    /* Read before publishing the result: once done != 0 the task may run
     * (a spurious wake-up), but it leaves only at 2, after this wake. */
    struct corio_task *t = op->task;
    op->res = res;
    atomic_store_explicit(&op->done, 1, memory_order_release);
    corio__task_wake(t);
    /* Pairs with the acquire load in corio__io_await(). */
    atomic_store_explicit(&op->done, 2, memory_order_release);
}

int corio__io_await(struct corio__io_op *op)
{
    struct corio_task *t = corio_current_task();
    if (!t)
        return -EPERM;
    if (corio__task_take_cancel(t))
        return -ECANCELED;   /* delivered at this await; nothing was started */
    struct corio__worker *w = corio__worker_current();
    op->task = t;
    op->owner = w;
    op->state = 0;
    op->pooled = false;
    atomic_store_explicit(&op->done, 0, memory_order_relaxed);
    int rc = w->io_ops->submit(w, op);
    if (rc < 0)
        return rc;
    corio__stat_add(w->m_io_submitted, 1);
    if (atomic_load_explicit(&op->done, memory_order_acquire) == 2) {
        /* Completed inside submit (epoll's first try): it did not suspend,
         * so it counts against the task's budget like a ready future. */
        corio__task_spend_budget(t);
        return op->res;
    }
    bool cancelled = false;
    uint32_t d;
    while ((d = atomic_load_explicit(&op->done, memory_order_acquire)) != 2) {
        if (d == 1) {
            sched_yield();   /* the completer is between its two stores */
            continue;
        }
        if (!cancelled && corio__task_take_cancel(t)) {
            cancelled = true;
            if (!op->pooled) {
                corio__task_migrate(t, op->owner);
                if (atomic_load_explicit(&op->done, memory_order_acquire) == 0)
                    op->owner->io_ops->cancel(op->owner, op);
            }
            continue;
        }
        corio__task_park(t, PARK_IO);
    }
    if (cancelled) {
        if (op->res == -ECANCELED)
            return -ECANCELED;
        /* The operation won the race: keep its result (no data is lost) and
         * deliver the cancellation at the next await. */
        atomic_store_explicit(&t->must_cancel, true, memory_order_release);
    }
    return op->res;
}

static int ret(long r)
{
    return r < 0 ? -errno : (int)r;
}

int corio__io_syscall(struct corio__io_op *op, bool nonblock)
{
    int dw = nonblock ? MSG_DONTWAIT : 0;
    int r;
    switch (op->code) {
    case CORIO__IO_NOP:
        return 0;
    case CORIO__IO_READ:
        r = op->off == UINT64_MAX ? ret(read(op->fd, op->buf, op->len))
                                  : ret(pread(op->fd, op->buf, op->len, (off_t)op->off));
        break;
    case CORIO__IO_WRITE:
        r = op->off == UINT64_MAX ? ret(write(op->fd, op->buf, op->len))
                                  : ret(pwrite(op->fd, op->buf, op->len, (off_t)op->off));
        break;
    case CORIO__IO_RECV:
        r = ret(recv(op->fd, op->buf, op->len, op->flags | dw));
        break;
    case CORIO__IO_SEND:
        r = ret(send(op->fd, op->buf, op->len, op->flags | dw | MSG_NOSIGNAL));
        break;
    case CORIO__IO_RECVMSG:
        r = ret(recvmsg(op->fd, op->msg, op->flags | dw));
        break;
    case CORIO__IO_SENDMSG:
        r = ret(sendmsg(op->fd, op->msg, op->flags | dw | MSG_NOSIGNAL));
        break;
    case CORIO__IO_ACCEPT:
        r = ret(accept4(op->fd, op->addr, op->addrlen, op->flags));
        break;
    case CORIO__IO_CONNECT: {
        /* The first call starts the connection; once the socket is
         * writable, SO_ERROR tells how it ended. */
        if (op->state & CORIO__OP_STARTED) {
            int err = 0;
            socklen_t l = sizeof err;
            if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
                return -errno;
            if (err == 0) {
                struct sockaddr_storage ss;
                socklen_t sl = sizeof ss;
                /* Still connecting (a spurious readiness): not writable yet. */
                if (getpeername(op->fd, (struct sockaddr *)&ss, &sl) < 0)
                    return errno == ENOTCONN ? -EAGAIN : -errno;
            }
            return -err;
        }
        r = ret(connect(op->fd, op->addr, op->addrlen_value));
        if (r == -EINPROGRESS || r == -EALREADY) {
            op->state |= CORIO__OP_STARTED;
            r = -EAGAIN;
        }
        return r;
    }
    case CORIO__IO_POLL: {
        struct pollfd p = {.fd = op->fd, .events = (short)op->flags};
        r = ret(poll(&p, 1, nonblock ? 0 : -1));
        if (r == 0)
            return -EAGAIN;
        if (r > 0)
            r = p.revents;
        break;
    }
    case CORIO__IO_SHUTDOWN:
        r = ret(shutdown(op->fd, op->flags));
        break;
    case CORIO__IO_CLOSE:
        r = ret(close(op->fd));
        break;
    case CORIO__IO_OPENAT:
        r = ret(openat(op->fd, op->path, op->flags, (mode_t)op->mode));
        break;
    case CORIO__IO_FSYNC:
        r = op->flags & IORING_FSYNC_DATASYNC ? ret(fdatasync(op->fd)) : ret(fsync(op->fd));
        break;
    case CORIO__IO_STATX:
        r = ret(statx(op->fd, op->path, op->flags, op->mode, op->stx));
        break;
    case CORIO__IO_CALL:
        return op->call(op->call_arg);
    default:
        return -EINVAL;
    }
    if (r == -EWOULDBLOCK)
        r = -EAGAIN;
    return r;
}
