/* io/backend.h - the seam between the scheduler and a worker's I/O backend.
 *
 * Every worker owns one backend instance (an io_uring in io/uring.c, or an
 * epoll set in io/epoll.c) created on its own thread; only that thread
 * submits to it, cancels on it or waits in it.
 *
 * An operation (struct corio__io_op) lives on the stack of the task that
 * awaits it. corio__io_await() (io/io.c) is the only way a task runs one:
 *
 *   task:     fill op, corio__io_await(op) -> ops->submit(w, op) on the
 *             current worker w, which becomes op->owner; park until done.
 *   owner:    the backend learns the result (a CQE, or a readiness event and
 *             a retried syscall) and calls corio__io_complete(op, res).
 *   cancel:   a task woken by a cancellation while its op is in flight moves
 *             itself to op->owner (core/sched.c, corio__task_migrate) and
 *             calls ops->cancel(w, op) there; then it keeps waiting for the
 *             op's own completion (DESIGN.md: never unwind while the kernel
 *             may still write into the task's memory).
 *
 * corio__io_complete() may be called from any thread (the epoll backend's
 * file pool completes from its own threads). op->done goes 0 -> 1 (result
 * stored) -> 2 (the waker is done touching the op and the task): the
 * awaiting task leaves only at 2, so the completer never touches freed
 * memory, and it waits only for the few instructions of one wake-up.
 *
 * Deadlines: an op with a non-zero ->deadline (CLOCK_MONOTONIC ns) that
 * is still waiting then completes with -ETIMEDOUT. The uring backend links
 * an IORING_OP_LINK_TIMEOUT (absolute) to every SQE the op issues, so the
 * kernel stops it; the epoll backend arms a timer on the owner's wheel in
 * ->dl.timer, removed on the owner when the op completes. An op that can
 * finish at once does, even past its deadline. Ops on a blocking thread
 * (->pooled) ignore their deadline: nothing can stop them.
 */
#ifndef CORIO_IO_BACKEND_H
#define CORIO_IO_BACKEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <linux/time_types.h>

#include "spin.h"
#include "wheel.h"

struct corio__worker;
struct corio_task;
struct statx;

enum corio__io_code {
    CORIO__IO_NOP = 0,
    CORIO__IO_READ,      /* fd, buf, len, off (-1: current position) */
    CORIO__IO_WRITE,     /* fd, buf, len, off (-1: current position) */
    CORIO__IO_RECV,      /* fd, buf, len, flags */
    CORIO__IO_SEND,      /* fd, buf, len, flags */
    CORIO__IO_RECVMSG,   /* fd, msg, flags */
    CORIO__IO_SENDMSG,   /* fd, msg, flags */
    CORIO__IO_ACCEPT,    /* fd, addr, addrlen, flags (SOCK_CLOEXEC ...) */
    CORIO__IO_CONNECT,   /* fd, addr, addrlen_value */
    CORIO__IO_POLL,      /* fd, flags = poll mask (POLLIN ...); res = revents */
    CORIO__IO_SHUTDOWN,  /* fd, flags = how */
    CORIO__IO_CLOSE,     /* fd */
    CORIO__IO_OPENAT,    /* fd = dirfd, path, flags, mode */
    CORIO__IO_FSYNC,     /* fd, flags (IORING_FSYNC_DATASYNC for fdatasync) */
    CORIO__IO_STATX,     /* fd = dirfd, path, flags, mask, stx */
    CORIO__IO_CALL,      /* call(call_arg) on a blocking thread (getaddrinfo ...) */
    CORIO__IO_CODES
};

/* op->state bits (owner-private, except where noted). */
#define CORIO__OP_QUEUED    0x1u   /* in a backend list (epoll: an fd's waiters) */
#define CORIO__OP_CANCELING 0x2u   /* a cancel was issued on the owner */
#define CORIO__OP_STARTED   0x8u   /* CONNECT: the first connect() is in progress */
#define CORIO__OP_POLLING   0x10u  /* uring: waiting for readiness before a retry */
#define CORIO__OP_MULTISHOT 0x20u  /* one request, many results (struct corio__io_multi) */

struct corio__io_op {
    uint8_t code;                  /* enum corio__io_code */
    uint8_t state;                 /* CORIO__OP_*: the owner's, while in flight */
    bool pooled;                   /* set by submit: on a blocking thread, cannot be
                                      cancelled (read by the task, so not in state) */
    int fd;
    int flags;
    void *buf;                     /* READ/WRITE/RECV/SEND */
    size_t len;
    uint64_t off;
    struct msghdr *msg;            /* RECVMSG/SENDMSG */
    struct sockaddr *addr;         /* ACCEPT (out), CONNECT (in) */
    socklen_t *addrlen;            /* ACCEPT (in/out) */
    socklen_t addrlen_value;       /* CONNECT */
    const char *path;              /* OPENAT/STATX */
    unsigned mode;                 /* OPENAT: mode; STATX: mask */
    struct statx *stx;             /* STATX */
    int (*call)(void *);           /* CALL: returns the result (>= 0 or -errno) */
    void *call_arg;
    uint64_t deadline;             /* 0, or when a waiting op gives up (-ETIMEDOUT) */
    union {                        /* the backend's, for the deadline */
        struct __kernel_timespec ts;   /* uring: read by the kernel at submission */
        struct corio__timer timer;     /* epoll: on the owner's wheel */
    } dl;
    /* completion */
    int res;
    _Atomic uint32_t done;         /* 0 pending, 1 result stored, 2 complete */
    struct corio_task *task;
    struct corio__worker *owner;
    struct corio__io_op *next, *prev;   /* backend-private links */
};

/* A multishot request (io/multi.c): one submission that yields a result
 * per event (an accepted descriptor per connection) until it ends. The
 * owner queues each result under ->lock and wakes the task; the task takes
 * them one by one and re-arms the request when it ended by itself. The
 * final result goes through op.done's 0 -> 1 -> 2 protocol, so the task
 * leaves only after the owner's last touch. Lives on the task's stack. */
struct corio__io_multi {
    struct corio__io_op op;        /* code and arguments as for one operation */
    struct corio__spin lock;       /* results, waiting */
    int *results;                  /* a ring, oldest at ->head; grown by the owner */
    uint32_t head, count, cap;
    bool waiting;                  /* the task parks for a result */
    bool armed;                    /* task's: a request was submitted, its end not seen */
    bool fresh;                    /* task's: nothing taken since the last arm */
    bool one_shot;                 /* task's: the kernel refused multishot (before 5.19) */
    void (*discard)(int res);      /* a result nobody will take (closes a descriptor) */
};

struct corio__backend_ops {
    const char *name;              /* "uring" or "epoll" */
    /* submit() takes CORIO__OP_MULTISHOT ops (ACCEPT only, for now); when
     * false, io/multi.c runs one operation per result instead. */
    bool multishot;
    /* On the worker's own thread, before it runs anything; 0 or -errno. */
    int (*init)(struct corio__worker *w);
    /* On the worker's own thread, after its last task; nothing is in flight. */
    void (*fini)(struct corio__worker *w);
    /* Owner only. Start @op; may complete it at once. 0, or -errno when the
     * op could not be started at all (it is then not complete). */
    int (*submit)(struct corio__worker *w, struct corio__io_op *op);
    /* Owner only. Ask the kernel to end @op early: it completes later with
     * -ECANCELED (or its own result, if that won the race). */
    void (*cancel)(struct corio__worker *w, struct corio__io_op *op);
    /* Owner only. Hand queued submissions to the kernel and reap every
     * completion ready now; with @block, first sleep until a completion,
     * @timeout_ns (UINT64_MAX: none), or w->wake_fd becoming readable: the
     * backend keeps a read of that eventfd armed (core/park.c writes it to
     * wake the worker from any thread) and drains it. */
    void (*poll)(struct corio__worker *w, bool block, uint64_t timeout_ns);
    /* Owner only. Nothing in flight and nothing queued: only another
     * thread can make work for this worker now, so it may sleep on a
     * futex, which is cheaper to enter and to wake than the backend. */
    bool (*quiet)(struct corio__worker *w);
};

extern const struct corio__backend_ops corio__uring_ops;
extern const struct corio__backend_ops corio__epoll_ops;

/* io/io.c */
/* The backend a new runtime uses: $CORIO_BACKEND (uring|epoll), else io_uring
 * when a probe ring can be set up, else epoll with a one-line reason on
 * stderr (once per process). */
const struct corio__backend_ops *corio__backend_choose(void);
/* Complete @op with @res (any thread). */
void corio__io_complete(struct corio__io_op *op, int res);
/* Complete @op inside submit(), while its task runs: nothing to wake. */
static inline void corio__io_complete_inline(struct corio__io_op *op, int res)
{
    op->res = res;
    atomic_store_explicit(&op->done, 2, memory_order_relaxed);
}
/* Run @op from the current task: 0 or a count (op's result), -errno,
 * -ECANCELED (the task was cancelled and the op was stopped), -EPERM
 * outside a task. A cancellation that arrives after the op already
 * produced its result is left pending for the next await, so no data is
 * lost. */
int corio__io_await(struct corio__io_op *op);
/* Perform @op once as a non-blocking system call (the epoll backend and the
 * blocking pool): its result, or -EAGAIN when it would block. */
int corio__io_syscall(struct corio__io_op *op, bool nonblock);

/* io/multi.c */
/* A multishot request for @fd's connections, one-shot on a backend without. */
void corio__io_multi_init_accept(struct corio__io_multi *m, int fd);
/* The next result (a descriptor, or -errno as one operation would give),
 * -ECANCELED (the task was cancelled: the request is stopped and what it
 * queued is discarded), -EPERM outside a task. Call from: the task that
 * owns @m, which must call corio__io_multi_close() before @m goes away. */
int corio__io_multi_next(struct corio__io_multi *m);
/* Stop @m's request (if armed), wait for its end, discard what is queued. */
void corio__io_multi_close(struct corio__io_multi *m);
/* Owner only (the backend): one result of @op; @more false for the last. */
void corio__io_multi_push(struct corio__io_op *op, int res, bool more);

/* io/pool.c: a few threads for what epoll cannot wait for (files): runs
 * corio__io_syscall(op, false) and completes @op there. 0 or -ENOMEM. */
int corio__blocking_submit(struct corio__io_op *op);

#endif
