/* perf/tools/raw_epoll_http.c - a W8 reference: a single-threaded epoll
 * HTTP/1.1 keep-alive server answering every request with "Hello, World!".
 *
 * Usage: raw_epoll_http [serve] [--port P] [--workers 1]
 * (the serve contract of serve_common.h). Level-triggered epoll; one read per
 * readiness; every complete request in the buffer (pipelining) gets the fixed
 * response, all of them in one write; a short write parks the rest and waits
 * for EPOLLOUT before reading again.
 *
 * Build: cc -O2 -o raw_epoll_http raw_epoll_http.c
 */
#include "serve_common.h"

#include <sys/epoll.h>

#define IN_SIZE 8192

struct conn {
    int fd;
    size_t in_len;                       /* bytes of an incomplete request in in */
    char *out;                           /* responses to send */
    size_t out_cap, out_off, out_len;
    char in[IN_SIZE];
};

static int ep;

static void conn_close(struct conn *c)
{
    close(c->fd); /* also leaves the epoll set */
    free(c->out);
    free(c);
}

static void conn_want(struct conn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* 0 all sent, 1 blocked, -1 error. */
static int conn_flush(struct conn *c)
{
    while (c->out_len) {
        ssize_t k = send(c->fd, c->out + c->out_off, c->out_len, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 1 : -1;
        }
        c->out_off += (size_t)k;
        c->out_len -= (size_t)k;
    }
    c->out_off = 0;
    return 0;
}

static void on_readable(struct conn *c)
{
    if (c->in_len == IN_SIZE) { /* a request header over 8 KiB: not our client */
        conn_close(c);
        return;
    }
    ssize_t k = recv(c->fd, c->in + c->in_len, IN_SIZE - c->in_len, 0);
    if (k <= 0) {
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        conn_close(c);
        return;
    }
    c->in_len += (size_t)k;
    unsigned nreq;
    size_t used = http_requests(c->in, c->in_len, &nreq);
    if (!nreq)
        return;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    size_t need = (size_t)nreq * HTTP_RESPONSE_LEN;
    if (need > c->out_cap) {
        free(c->out);
        c->out_cap = need * 2;
        c->out = malloc(c->out_cap);
        if (!c->out)
            serve_die("out of memory");
    }
    for (unsigned i = 0; i < nreq; i++)
        memcpy(c->out + i * HTTP_RESPONSE_LEN, http_response, HTTP_RESPONSE_LEN);
    c->out_off = 0;
    c->out_len = need;
    int r = conn_flush(c);
    if (r < 0)
        conn_close(c);
    else if (r > 0)
        conn_want(c, EPOLLOUT);
}

static void on_writable(struct conn *c)
{
    int r = conn_flush(c);
    if (r < 0)
        conn_close(c);
    else if (r == 0)
        conn_want(c, EPOLLIN);
}

static void on_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "%s: accept: %s\n", serve_prog, strerror(errno));
            return;
        }
        serve_nodelay(fd);
        struct conn *c = malloc(sizeof *c);
        if (!c)
            serve_die("out of memory");
        c->fd = fd;
        c->in_len = 0;
        c->out_cap = 16 * HTTP_RESPONSE_LEN;
        c->out = malloc(c->out_cap);
        c->out_off = c->out_len = 0;
        if (!c->out)
            serve_die("out of memory");
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
            serve_die("epoll_ctl: %s", strerror(errno));
    }
}

int main(int argc, char **argv)
{
    int port = serve_parse_args(argc, argv);
    int sfd = serve_signalfd();
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        serve_die("epoll_create1: %s", strerror(errno));
    static char listener_tag, signal_tag;
    int lfd = serve_listen(port);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listener_tag };
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.ptr = &signal_tag;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            serve_die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &signal_tag)
                return 0;
            if (p == &listener_tag) {
                on_accept(lfd);
                continue;
            }
            struct conn *c = p;
            if (c->out_len)
                on_writable(c);
            else
                on_readable(c);
        }
    }
}
