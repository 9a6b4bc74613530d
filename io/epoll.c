/* io/epoll.c - the fallback backend: epoll readiness plus non-blocking
 * system calls, for where io_uring is refused (seccomp, sysctl).
 *
 * The same operations as io/uring.c, with the same results: submit() tries
 * the system call at once (most socket operations complete there); one that
 * would block joins its descriptor's waiter list and the descriptor is armed
 * EPOLLONESHOT for the union of what its waiters need. When it fires, the
 * owner retries each waiter and re-arms for those still blocked. One-shot
 * arming costs an epoll_ctl per wait but never leaves a level-triggered
 * descriptor spinning with nobody waiting, and survives a descriptor number
 * being closed and reused (ENOENT/EEXIST switch between ADD and MOD).
 *
 * What epoll cannot wait for (regular files, block devices: always
 * "ready", and they block anyway) runs on the blocking pool (io/pool.c).
 * Descriptors given to corio are switched to O_NONBLOCK, as asyncio requires
 * of the sockets passed to its sock_* functions.
 *
 * A waiter with a deadline has a timer on its owner's wheel (op->dl.timer):
 * whichever comes first, readiness or the timer, unlinks the op, and
 * unlinking also removes the timer, all on the owner.
 *
 * Owner thread only, except the pool's completions (corio__io_complete()).
 */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "internal.h"

#define EVENTS_PER_WAIT 128   /* one epoll_wait drains this many; more come next round */

struct ep_fd {
    struct corio__io_op *head, *tail;   /* waiters, oldest first */
    bool registered;                    /* ADD done on this epoll set (a hint) */
};

struct ep {
    int epfd;
    struct ep_fd *fds;
    size_t nfds;
    size_t waiting;                     /* ops in waiter lists */
};

static struct ep *ep_of(struct corio__worker *w) { return w->io; }

static int ep_init(struct corio__worker *w)
{
    struct ep *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (e->epfd < 0) {
        int rc = -errno;
        free(e);
        return rc;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = -1};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, w->wake_fd, &ev) < 0) {
        int rc = -errno;
        close(e->epfd);
        free(e);
        return rc;
    }
    w->io = e;
    return 0;
}

static void ep_fini(struct corio__worker *w)
{
    struct ep *e = ep_of(w);
    close(e->epfd);
    free(e->fds);
    free(e);
    w->io = NULL;
}

static uint32_t wanted_events(const struct corio__io_op *op)
{
    switch (op->code) {
    case CORIO__IO_WRITE:
    case CORIO__IO_SEND:
    case CORIO__IO_SENDMSG:
    case CORIO__IO_CONNECT:
        return EPOLLOUT;
    case CORIO__IO_POLL: {
        uint32_t ev = 0;
        if (op->flags & POLLIN)
            ev |= EPOLLIN;
        if (op->flags & POLLOUT)
            ev |= EPOLLOUT;
        if (op->flags & POLLPRI)
            ev |= EPOLLPRI;
        if (op->flags & POLLRDHUP)
            ev |= EPOLLRDHUP;
        return ev;
    }
    default:
        return EPOLLIN;
    }
}

static struct ep_fd *fd_entry(struct ep *e, int fd)
{
    if ((size_t)fd >= e->nfds) {
        size_t n = e->nfds ? e->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct ep_fd *f = realloc(e->fds, n * sizeof *f);
        if (!f)
            return NULL;
        memset(f + e->nfds, 0, (n - e->nfds) * sizeof *f);
        e->fds = f;
        e->nfds = n;
    }
    return &e->fds[fd];
}

/* Arm @fd one-shot for what its waiters need. 0 or -errno. */
static int arm(struct ep *e, int fd, struct ep_fd *f)
{
    uint32_t mask = 0;
    for (struct corio__io_op *op = f->head; op; op = op->next)
        mask |= wanted_events(op);
    struct epoll_event ev = {.events = mask | EPOLLONESHOT, .data.fd = fd};
    int first = f->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(e->epfd, first, fd, &ev) == 0) {
        f->registered = true;
        return 0;
    }
    if (errno != ENOENT && errno != EEXIST)
        return -errno;
    int second = first == EPOLL_CTL_MOD ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(e->epfd, second, fd, &ev) < 0)
        return -errno;
    f->registered = true;
    return 0;
}

static void unlink_op(struct ep *e, struct ep_fd *f, struct corio__io_op *op)
{
    e->waiting--;
    if (op->prev)
        op->prev->next = op->next;
    else
        f->head = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        f->tail = op->prev;
    op->next = op->prev = NULL;
    op->state &= (uint8_t)~CORIO__OP_QUEUED;
    if (op->deadline)
        corio__wheel_remove(op->owner->wheel, &op->dl.timer);   /* on the owner */
}

/* The deadline came first (on the owner: the wheel is its alone). */
static void deadline_fire(struct corio__timer *tm)
{
    struct corio__io_op *op = corio__container_of(tm, struct corio__io_op, dl.timer);
    if (!(op->state & CORIO__OP_QUEUED))
        return;
    struct ep *e = ep_of(op->owner);
    unlink_op(e, &e->fds[op->fd], op);
    corio__io_complete(op, -ETIMEDOUT);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static int to_pool(struct corio__io_op *op)
{
    op->pooled = true;
    return corio__blocking_submit(op);
}

static int ep_submit(struct corio__worker *w, struct corio__io_op *op)
{
    struct ep *e = ep_of(w);
    switch (op->code) {
    case CORIO__IO_NOP:
        corio__io_complete_inline(op, 0);
        return 0;
    case CORIO__IO_OPENAT:
    case CORIO__IO_FSYNC:
    case CORIO__IO_STATX:
    case CORIO__IO_CALL:
        return to_pool(op);
    case CORIO__IO_CLOSE: {
        if (op->fd >= 0 && (size_t)op->fd < e->nfds && !e->fds[op->fd].head)
            e->fds[op->fd].registered = false;   /* close drops the registration */
        corio__io_complete_inline(op, corio__io_syscall(op, false));
        return 0;
    }
    case CORIO__IO_READ:
    case CORIO__IO_WRITE: {
        struct stat st;
        if (fstat(op->fd, &st) < 0)
            return -errno;
        if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode))
            return to_pool(op);
        /* pipes, sockets, ttys, eventfds wait for readiness */
        __attribute__((fallthrough));
    }
    case CORIO__IO_ACCEPT:
    case CORIO__IO_CONNECT: {
        int rc = set_nonblock(op->fd);
        if (rc < 0)
            return rc;
        break;
    }
    default:
        break;
    }
    int r = corio__io_syscall(op, true);
    if (r != -EAGAIN) {
        corio__io_complete_inline(op, r);
        return 0;
    }
    struct ep_fd *f = fd_entry(e, op->fd);
    if (!f)
        return -ENOMEM;
    op->next = NULL;
    op->prev = f->tail;
    if (f->tail)
        f->tail->next = op;
    else
        f->head = op;
    f->tail = op;
    op->state |= CORIO__OP_QUEUED;
    e->waiting++;
    if (op->deadline) {
        corio__timer_init(&op->dl.timer, deadline_fire);
        corio__wheel_insert(w->wheel, &op->dl.timer, op->deadline);
    }
    int rc = arm(e, op->fd, f);
    if (rc < 0) {
        unlink_op(e, f, op);
        if (rc == -EPERM)
            return to_pool(op);   /* a descriptor epoll cannot watch */
        return rc;
    }
    return 0;
}

static void ep_cancel(struct corio__worker *w, struct corio__io_op *op)
{
    if (!(op->state & CORIO__OP_QUEUED))
        return;
    struct ep *e = ep_of(w);
    struct ep_fd *f = &e->fds[op->fd];
    unlink_op(e, f, op);
    corio__io_complete(op, -ECANCELED);
}

static void ready(struct ep *e, int fd, uint32_t revents)
{
    if ((size_t)fd >= e->nfds)
        return;
    struct ep_fd *f = &e->fds[fd];
    struct corio__io_op *op = f->head;
    while (op) {
        struct corio__io_op *next = op->next;
        if ((revents & (wanted_events(op) | EPOLLERR | EPOLLHUP))) {
            int r = corio__io_syscall(op, true);
            if (r != -EAGAIN) {
                unlink_op(e, f, op);
                corio__io_complete(op, r);
            }
        }
        op = next;
    }
    if (f->head && arm(e, fd, f) < 0) {
        /* The descriptor went away under its waiters: fail them. */
        while ((op = f->head)) {
            unlink_op(e, f, op);
            corio__io_complete(op, -EBADF);
        }
    }
}

static void ep_poll(struct corio__worker *w, bool block, uint64_t timeout_ns)
{
    struct ep *e = ep_of(w);
    struct epoll_event evs[EVENTS_PER_WAIT];
    struct timespec ts = {0, 0}, *tsp = &ts;
    if (block) {
        if (timeout_ns == UINT64_MAX)
            tsp = NULL;
        else
            ts = (struct timespec){(time_t)(timeout_ns / 1000000000u),
                                   (long)(timeout_ns % 1000000000u)};
    }
    int n = epoll_pwait2(e->epfd, evs, EVENTS_PER_WAIT, tsp, NULL);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.fd == -1) {
            uint64_t v;
            ssize_t r = read(w->wake_fd, &v, sizeof v);
            (void)r;
            continue;
        }
        ready(e, evs[i].data.fd, evs[i].events);
        corio__stat_add(w->m_io_completed, 1);
    }
}

static bool ep_quiet(struct corio__worker *w)
{
    return ep_of(w)->waiting == 0;
}

const struct corio__backend_ops corio__epoll_ops = {
    .name = "epoll",
    .multishot = false,
    .init = ep_init,
    .fini = ep_fini,
    .submit = ep_submit,
    .cancel = ep_cancel,
    .poll = ep_poll,
    .quiet = ep_quiet,
};
