/* perf/tools/raw_uring_http.c - the io_uring references: a single-threaded
 * liburing HTTP/1.1 keep-alive server answering every request with
 * "Hello, World!" (W8), the same loop as a TCP echo server (W9: `echo`
 * instead of `serve`: every received byte is sent back before the next
 * recv), and a NOP loop (`nop`).
 *
 * Usage: raw_uring_http [serve|echo] [--port P] [--workers 1]
 * (the serve contract of serve_common.h), or raw_uring_http nop [N]: the
 * physical limit of the ring itself, N IORING_OP_NOPs in batches of 64
 * (submit and wait for the batch), printing a RESULT line (workload=nop
 * peer=raw_uring), so perf/run can set corio's per-I/O cost against it. One ring; one accept in flight
 * (re-armed on each completion); per connection one operation at a time:
 * a recv, then, when the buffer holds complete requests (pipelining: all of
 * them), one send of their responses (re-sent from where a short send
 * stopped), then the next recv. SIGTERM/SIGINT arrive as a poll of a
 * signalfd on the same ring. The ring asks for SINGLE_ISSUER|DEFER_TASKRUN
 * (kernel 6.1), else COOP_TASKRUN (5.19), else nothing.
 *
 * Build: cc -O2 -o raw_uring_http raw_uring_http.c -luring
 */
#include "serve_common.h"

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>

#define IN_SIZE 8192
#define RING_ENTRIES 4096

enum kind { K_ACCEPT, K_SIGNAL, K_RECV, K_SEND };

struct op {         /* what a completion belongs to: the first member of each owner */
    enum kind kind;
};

struct conn {
    struct op op;   /* K_RECV or K_SEND: the one operation in flight */
    int fd;
    size_t in_len;
    char *out;
    size_t out_cap, out_off, out_len;
    char in[IN_SIZE];
};

static struct io_uring ring;

static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&ring)))
        io_uring_submit(&ring);
    return sqe;
}

static void arm_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe();
    c->op.kind = K_RECV;
    io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, IN_SIZE - c->in_len, 0);
    io_uring_sqe_set_data(sqe, c);
}

static void arm_send(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe();
    c->op.kind = K_SEND;
    io_uring_prep_send(sqe, c->fd, c->out + c->out_off, c->out_len, MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, c);
}

static void conn_close(struct conn *c)
{
    close(c->fd);
    free(c->out);
    free(c);
}

static bool echo_mode;   /* W9: send back what came in */

/* Output room for @need bytes (the buffer is empty when this is called). */
static void out_reserve(struct conn *c, size_t need)
{
    if (need <= c->out_cap)
        return;
    free(c->out);
    c->out_cap = need * 2;
    c->out = malloc(c->out_cap);
    if (!c->out)
        serve_die("out of memory");
}

static void on_recv(struct conn *c, int res)
{
    if (res <= 0) {
        conn_close(c); /* EOF or an error (ECONNRESET...) */
        return;
    }
    c->in_len += (size_t)res;
    if (echo_mode) {
        out_reserve(c, c->in_len);
        memcpy(c->out, c->in, c->in_len);
        c->out_off = 0;
        c->out_len = c->in_len;
        c->in_len = 0;
        arm_send(c);
        return;
    }
    unsigned nreq;
    size_t used = http_requests(c->in, c->in_len, &nreq);
    if (!nreq) {
        if (c->in_len == IN_SIZE)
            conn_close(c); /* a request header over 8 KiB: not our client */
        else
            arm_recv(c);
        return;
    }
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    size_t need = (size_t)nreq * HTTP_RESPONSE_LEN;
    out_reserve(c, need);
    for (unsigned i = 0; i < nreq; i++)
        memcpy(c->out + i * HTTP_RESPONSE_LEN, http_response, HTTP_RESPONSE_LEN);
    c->out_off = 0;
    c->out_len = need;
    arm_send(c);
}

static void on_send(struct conn *c, int res)
{
    if (res < 0) {
        conn_close(c);
        return;
    }
    c->out_off += (size_t)res;
    c->out_len -= (size_t)res;
    if (c->out_len)
        arm_send(c);
    else
        arm_recv(c);
}

static struct op accept_op = { K_ACCEPT }, signal_op = { K_SIGNAL };

static void arm_accept(int lfd)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, &accept_op);
}

static void on_accept(int lfd, int res)
{
    arm_accept(lfd);
    if (res < 0) {
        if (res != -EINTR && res != -ECONNABORTED && res != -EAGAIN)
            fprintf(stderr, "%s: accept: %s\n", serve_prog, strerror(-res));
        return;
    }
    serve_nodelay(res);
    struct conn *c = malloc(sizeof *c);
    if (!c)
        serve_die("out of memory");
    c->fd = res;
    c->in_len = 0;
    c->out_cap = 16 * HTTP_RESPONSE_LEN;
    c->out = malloc(c->out_cap);
    c->out_off = c->out_len = 0;
    if (!c->out)
        serve_die("out of memory");
    arm_recv(c);
}

static void ring_init(void)
{
    static const unsigned flags[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        struct io_uring_params p = { .flags = flags[i] };
        rc = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
        if (rc != -EINVAL)
            break;
    }
    if (rc < 0)
        serve_die("io_uring_queue_init: %s", strerror(-rc));
}

#define NOP_BATCH 64   /* well under RING_ENTRIES; deep enough to amortize the enter */

static int nop_bench(int argc, char **argv)
{
    unsigned long long n = argc > 2 ? strtoull(argv[2], NULL, 10) : 10000000ull;
    if (n == 0)
        serve_die("nop: N must be a positive count");
    ring_init();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long long done = 0;
    while (done < n) {
        unsigned batch = n - done < NOP_BATCH ? (unsigned)(n - done) : NOP_BATCH;
        for (unsigned i = 0; i < batch; i++)
            io_uring_prep_nop(get_sqe());
        int rc = io_uring_submit_and_wait(&ring, batch);
        if (rc < 0 && rc != -EINTR)
            serve_die("nop: io_uring_submit_and_wait: %s", strerror(-rc));
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            if (cqe->res < 0)
                serve_die("nop: completion %d", cqe->res);
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
        done += seen;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("RESULT workload=nop peer=raw_uring n=%llu wall_s=%.6f rate=%.0f ns_per_op=%.2f\n",
           n, wall, (double)n / wall, wall * 1e9 / (double)n);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "nop") == 0)
        return nop_bench(argc, argv);
    if (argc > 1 && strcmp(argv[1], "echo") == 0) {
        echo_mode = true;
        argv[1] = "serve";
    }
    int port = serve_parse_args(argc, argv);
    int sfd = serve_signalfd();
    ring_init();
    int lfd = serve_listen(port);
    /* io_uring's accept on a nonblocking socket completes at once with
     * -EAGAIN instead of waiting: make it blocking (io_uring polls it). */
    int fl = fcntl(lfd, F_GETFL);
    fcntl(lfd, F_SETFL, fl & ~O_NONBLOCK);
    arm_accept(lfd);
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_poll_add(sqe, sfd, POLLIN);
    io_uring_sqe_set_data(sqe, &signal_op);

    for (;;) {
        int rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            serve_die("io_uring_submit_and_wait: %s", strerror(-rc));
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            struct op *op = io_uring_cqe_get_data(cqe);
            int res = cqe->res;
            seen++;
            switch (op->kind) {
            case K_SIGNAL: /* SIGTERM or SIGINT is pending */
                return 0;
            case K_ACCEPT:
                on_accept(lfd, res);
                break;
            case K_RECV:
                on_recv((struct conn *)op, res);
                break;
            case K_SEND:
                on_send((struct conn *)op, res);
                break;
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
}
