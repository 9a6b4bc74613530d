/* io/uring.c - the io_uring backend: one ring per worker, made on the
 * worker's own thread.
 *
 * Setup (DESIGN.md): SQ 256, CQ 512, trying SINGLE_ISSUER|DEFER_TASKRUN
 * (completions are processed only when the owner asks: no interrupts of a
 * busy worker), then COOP_TASKRUN|TASKRUN_FLAG, then no flags; FEAT_NODROP
 * is required (a full CQ then never loses a completion) and every opcode
 * corio uses is probed. No SQPOLL. The ring is excluded from fork().
 *
 * user_data is the operation's address, or one of three tags below
 * address 4096: the read of the worker's wake eventfd (armed before the
 * worker blocks in the ring), cancel requests and linked timeouts (whose
 * own results do not matter: the operation they stop completes by itself,
 * with -ECANCELED, which an op with a deadline that nobody cancelled reports
 * as -ETIMEDOUT). SQEs are queued by submit()/cancel() and handed to the kernel by
 * poll(): before the worker parks (one io_uring_enter that submits and
 * waits), or every 61 ticks of a busy worker. A full SQ is flushed on the
 * spot; -EBUSY/-EAGAIN from the kernel means: reap completions, then retry.
 *
 * A socket or pipe that is O_NONBLOCK may complete a read with -EAGAIN
 * instead of waiting: the operation then waits for readiness with a
 * POLL_ADD (same user_data) and is issued again, so the caller never sees
 * -EAGAIN. Owner thread only.
 */
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "internal.h"

#define SQ_ENTRIES 256        /* DESIGN.md */
#define CQ_ENTRIES 512        /* DESIGN.md: twice the SQ, as liburing's default */
#define TAG_WAKE 1u
#define TAG_CANCEL 2u
#define TAG_LINK_TIMEOUT 3u

struct ur {
    struct io_uring ring;
    uint64_t wake_buf;
    bool wake_armed;          /* the read of w->wake_fd is in the kernel */
    unsigned inflight;        /* operations and the wake read the kernel holds */
    unsigned queued;          /* SQEs not yet submitted */
};

static struct ur *ur_of(struct corio__worker *w) { return w->io; }

static const uint8_t needed_ops[] = {
    IORING_OP_READ, IORING_OP_WRITE, IORING_OP_RECV, IORING_OP_SEND, IORING_OP_RECVMSG,
    IORING_OP_SENDMSG, IORING_OP_ACCEPT, IORING_OP_CONNECT, IORING_OP_POLL_ADD,
    IORING_OP_SHUTDOWN, IORING_OP_CLOSE, IORING_OP_OPENAT, IORING_OP_FSYNC, IORING_OP_STATX,
    IORING_OP_ASYNC_CANCEL, IORING_OP_NOP, IORING_OP_LINK_TIMEOUT,
};

static int probe(struct io_uring *ring)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    if (!p)
        return -EINVAL;
    int rc = 0;
    for (size_t i = 0; i < sizeof needed_ops; i++)
        if (!io_uring_opcode_supported(p, needed_ops[i]))
            rc = -EINVAL;
    io_uring_free_probe(p);
    return rc;
}

static int ring_setup(struct io_uring *ring)
{
    static const unsigned chain[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = chain[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = CQ_ENTRIES;
        rc = io_uring_queue_init_params(SQ_ENTRIES, ring, &p);
        if (rc == -EINVAL)
            continue;   /* flags this kernel does not know: try the next set */
        if (rc < 0)
            return rc;
        if (!(p.features & IORING_FEAT_NODROP)) {
            io_uring_queue_exit(ring);
            return -EINVAL;
        }
        return 0;
    }
    return rc;
}

static struct io_uring_sqe *get_sqe(struct corio__worker *w);

/* Armed only when the worker is about to block in the ring (core/park.c
 * sleeps on a futex when nothing else is in flight), so a futex-parked
 * worker has nothing to re-arm after its wake-up. */
static void arm_wake(struct corio__worker *w)
{
    struct ur *u = ur_of(w);
    if (u->wake_armed)
        return;
    u->wake_armed = true;
    struct io_uring_sqe *sqe = get_sqe(w);
    io_uring_prep_read(sqe, w->wake_fd, &u->wake_buf, sizeof u->wake_buf, 0);
    io_uring_sqe_set_data64(sqe, TAG_WAKE);
    u->inflight++;
}

static int ur_init(struct corio__worker *w)
{
    struct ur *u = calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    int rc = ring_setup(&u->ring);
    if (rc < 0) {
        free(u);
        return rc;
    }
    if ((rc = probe(&u->ring)) < 0) {
        io_uring_queue_exit(&u->ring);
        free(u);
        return rc;
    }
    io_uring_ring_dontfork(&u->ring);
    w->io = u;
    return 0;
}

static void ur_fini(struct corio__worker *w)
{
    struct ur *u = ur_of(w);
    io_uring_queue_exit(&u->ring);
    free(u);
    w->io = NULL;
}

static void handle_cqe(struct corio__worker *w, struct io_uring_cqe *cqe);

/* Reap every completion the CQ holds now. Each CQE is copied and consumed
 * before it is handled: handling may need an SQE, and a full SQ whose
 * submit answers -EBUSY reaps from inside (flush()), which must not see
 * the CQEs this loop has yet to consume a second time. */
static unsigned reap(struct corio__worker *w)
{
    struct ur *u = ur_of(w);
    unsigned n = 0;
    for (;;) {
        struct io_uring_cqe *cqe = NULL;
        unsigned head;
        io_uring_for_each_cqe(&u->ring, head, cqe)
            break;   /* the oldest one, or none */
        if (!cqe)
            return n;
        struct io_uring_cqe c = *cqe;
        io_uring_cq_advance(&u->ring, 1);
        handle_cqe(w, &c);
        n++;
    }
}

/* Hand queued SQEs to the kernel; on -EBUSY/-EAGAIN reap and retry. */
static void flush(struct corio__worker *w, bool get_events)
{
    struct ur *u = ur_of(w);
    for (;;) {
        int rc = get_events ? io_uring_submit_and_get_events(&u->ring)
                            : io_uring_submit(&u->ring);
        if (rc >= 0 || rc == -EINTR) {
            u->queued = 0;
            return;
        }
        if (rc != -EBUSY && rc != -EAGAIN) {
            fprintf(stderr, "corio: io_uring_submit: %s\n", corio_strerror(rc));
            return;
        }
        io_uring_get_events(&u->ring);
        reap(w);
    }
}

static struct io_uring_sqe *get_sqe(struct corio__worker *w)
{
    struct ur *u = ur_of(w);
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&u->ring)))
        flush(w, false);   /* SQ full: the kernel takes them, the slots free up */
    u->queued++;
    return sqe;
}

/* Room for @n SQEs at once: a linked pair must reach the kernel in one
 * submission, or the link would end at the batch's end. */
static void reserve(struct corio__worker *w, unsigned n)
{
    while (io_uring_sq_space_left(&ur_of(w)->ring) < n)
        flush(w, false);
}

/* After @sqe (the op's, already prepared): its deadline as a linked
 * timeout. Every SQE an op issues (the op, a readiness poll, the op again)
 * gets its own; the deadline is absolute, so it stays the same. */
static void link_deadline(struct corio__worker *w, struct io_uring_sqe *sqe,
                          struct corio__io_op *op)
{
    if (!op->deadline)
        return;
    sqe->flags |= IOSQE_IO_LINK;
    op->dl.ts.tv_sec = (long long)(op->deadline / 1000000000u);
    op->dl.ts.tv_nsec = (long long)(op->deadline % 1000000000u);
    struct io_uring_sqe *lt = get_sqe(w);
    io_uring_prep_link_timeout(lt, &op->dl.ts, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(lt, TAG_LINK_TIMEOUT);
}

static void prep(struct io_uring_sqe *sqe, struct corio__io_op *op)
{
    switch (op->code) {
    case CORIO__IO_NOP:
        io_uring_prep_nop(sqe);
        break;
    case CORIO__IO_READ:
        io_uring_prep_read(sqe, op->fd, op->buf, (unsigned)op->len, op->off);
        break;
    case CORIO__IO_WRITE:
        io_uring_prep_write(sqe, op->fd, op->buf, (unsigned)op->len, op->off);
        break;
    case CORIO__IO_RECV:
        io_uring_prep_recv(sqe, op->fd, op->buf, op->len, op->flags);
        break;
    case CORIO__IO_SEND:
        io_uring_prep_send(sqe, op->fd, op->buf, op->len, op->flags | MSG_NOSIGNAL);
        break;
    case CORIO__IO_RECVMSG:
        io_uring_prep_recvmsg(sqe, op->fd, op->msg, (unsigned)op->flags);
        break;
    case CORIO__IO_SENDMSG:
        io_uring_prep_sendmsg(sqe, op->fd, op->msg, (unsigned)op->flags | MSG_NOSIGNAL);
        break;
    case CORIO__IO_ACCEPT:
        if (op->state & CORIO__OP_MULTISHOT)
            io_uring_prep_multishot_accept(sqe, op->fd, op->addr, op->addrlen, op->flags);
        else
            io_uring_prep_accept(sqe, op->fd, op->addr, op->addrlen, op->flags);
        break;
    case CORIO__IO_CONNECT:
        io_uring_prep_connect(sqe, op->fd, op->addr, op->addrlen_value);
        break;
    case CORIO__IO_POLL:
        io_uring_prep_poll_add(sqe, op->fd, (unsigned)op->flags);
        break;
    case CORIO__IO_SHUTDOWN:
        io_uring_prep_shutdown(sqe, op->fd, op->flags);
        break;
    case CORIO__IO_CLOSE:
        io_uring_prep_close(sqe, op->fd);
        break;
    case CORIO__IO_OPENAT:
        io_uring_prep_openat(sqe, op->fd, op->path, op->flags, (mode_t)op->mode);
        break;
    case CORIO__IO_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, (unsigned)op->flags);
        break;
    case CORIO__IO_STATX:
        io_uring_prep_statx(sqe, op->fd, op->path, op->flags, op->mode, op->stx);
        break;
    default:   /* CORIO__IO_CALL never gets here */
        io_uring_prep_nop(sqe);
        break;
    }
    io_uring_sqe_set_data(sqe, op);
}

static int ur_submit(struct corio__worker *w, struct corio__io_op *op)
{
    if (op->code >= CORIO__IO_CODES)
        return -EINVAL;
    if (op->code == CORIO__IO_CALL) {
        op->pooled = true;
        return corio__blocking_submit(op);
    }
    reserve(w, op->deadline ? 2 : 1);
    struct io_uring_sqe *sqe = get_sqe(w);
    prep(sqe, op);
    link_deadline(w, sqe, op);
    ur_of(w)->inflight++;
    return 0;
}

static void ur_cancel(struct corio__worker *w, struct corio__io_op *op)
{
    if (op->state & CORIO__OP_CANCELING)
        return;
    op->state |= CORIO__OP_CANCELING;
    struct io_uring_sqe *sqe = get_sqe(w);
    io_uring_prep_cancel(sqe, op, 0);
    io_uring_sqe_set_data64(sqe, TAG_CANCEL);
}

/* Which readiness an operation that got -EAGAIN (or a connect that got
 * -EINPROGRESS) waits for before it is issued again; 0: none. */
static unsigned retry_mask(const struct corio__io_op *op)
{
    switch (op->code) {
    case CORIO__IO_READ:
    case CORIO__IO_RECV:
    case CORIO__IO_RECVMSG:
    case CORIO__IO_ACCEPT:
        return POLLIN;
    case CORIO__IO_WRITE:
    case CORIO__IO_SEND:
    case CORIO__IO_SENDMSG:
    case CORIO__IO_CONNECT:
        return POLLOUT;
    default:
        return 0;
    }
}

static void handle_cqe(struct corio__worker *w, struct io_uring_cqe *cqe)
{
    struct ur *u = ur_of(w);
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    /* liburing's own wait timeout (kernels without EXT_ARG) is not ours. */
    if (ud == TAG_CANCEL || ud == TAG_LINK_TIMEOUT || ud == LIBURING_UDATA_TIMEOUT)
        return;
    if (ud == TAG_WAKE) {
        u->inflight--;
        u->wake_armed = false;
        return;
    }
    struct corio__io_op *op = (struct corio__io_op *)(uintptr_t)ud;
    int res = cqe->res;
    if (cqe->flags & IORING_CQE_F_MORE) {
        corio__io_multi_push(op, res, true);   /* the request goes on */
        corio__stat_add(w->m_io_completed, 1);
        return;
    }
    u->inflight--;
    if (res == -ECANCELED && op->deadline && !(op->state & CORIO__OP_CANCELING))
        res = -ETIMEDOUT;   /* only its linked timeout stops an op nobody cancelled */
    if (op->state & CORIO__OP_POLLING) {
        /* Ready (or failed): issue the operation itself again. */
        op->state &= (uint8_t)~CORIO__OP_POLLING;
        if (res >= 0 && !(op->state & CORIO__OP_CANCELING)) {
            if (op->code == CORIO__IO_CONNECT && (op->state & CORIO__OP_STARTED)) {
                corio__io_complete(op, corio__io_syscall(op, true));
                corio__stat_add(w->m_io_completed, 1);
                return;
            }
            ur_submit(w, op);
            return;
        }
        if (res >= 0)
            res = -ECANCELED;
    } else if ((res == -EAGAIN || (res == -EINPROGRESS && op->code == CORIO__IO_CONNECT)) &&
               retry_mask(op) && !(op->state & CORIO__OP_CANCELING)) {
        if (res == -EINPROGRESS)
            op->state |= CORIO__OP_STARTED;
        op->state |= CORIO__OP_POLLING;
        reserve(w, op->deadline ? 2 : 1);
        struct io_uring_sqe *sqe = get_sqe(w);
        io_uring_prep_poll_add(sqe, op->fd, retry_mask(op));
        io_uring_sqe_set_data(sqe, op);
        link_deadline(w, sqe, op);
        u->inflight++;
        return;
    }
    if (res == -EAGAIN && (op->state & CORIO__OP_CANCELING))
        res = -ECANCELED;   /* stopped before it could wait for readiness */
    if (op->state & CORIO__OP_MULTISHOT)
        corio__io_multi_push(op, res, false);
    else
        corio__io_complete(op, res);
    corio__stat_add(w->m_io_completed, 1);
}

static void ur_poll(struct corio__worker *w, bool block, uint64_t timeout_ns)
{
    struct ur *u = ur_of(w);
    if (!block) {
        /* Nothing the kernel could have finished and nothing to hand over:
         * skip the system call (the wake read alone does not count). */
        if (u->queued || u->inflight > u->wake_armed || io_uring_cq_ready(&u->ring))
            flush(w, true);
        reap(w);
        return;
    }
    arm_wake(w);
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts, *tsp = NULL;
    if (timeout_ns != UINT64_MAX) {
        ts.tv_sec = (long long)(timeout_ns / 1000000000u);
        ts.tv_nsec = (long long)(timeout_ns % 1000000000u);
        tsp = &ts;
    }
    for (;;) {
        int rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, tsp, NULL);
        if (rc == -EBUSY || rc == -EAGAIN) {
            io_uring_get_events(&u->ring);
            if (reap(w))
                return;
            continue;
        }
        u->queued = 0;
        break;
    }
    reap(w);
}

static bool ur_quiet(struct corio__worker *w)
{
    struct ur *u = ur_of(w);
    return !u->queued && u->inflight == u->wake_armed && !io_uring_cq_ready(&u->ring);
}

const struct corio__backend_ops corio__uring_ops = {
    .name = "uring",
    .multishot = true,
    .init = ur_init,
    .fini = ur_fini,
    .submit = ur_submit,
    .cancel = ur_cancel,
    .poll = ur_poll,
    .quiet = ur_quiet,
};
