/* perf/tools/raw_epoll_echo.c - the W9 reference: a single-threaded epoll
 * TCP echo server, as plain as it gets.
 *
 * Usage: raw_epoll_echo [serve] [--port P] [--workers 1]
 * (the serve contract of serve_common.h). Level-triggered epoll; one read per
 * readiness, written straight back; a short write parks the rest and waits
 * for EPOLLOUT before reading again.
 *
 * Build: cc -O2 -o raw_epoll_echo raw_epoll_echo.c
 */
#include "serve_common.h"

#include <sys/epoll.h>

#define BUF_SIZE 16384

struct conn {
    int fd;
    size_t pending_off, pending_len; /* unsent part of buf */
    char buf[BUF_SIZE];
};

static int ep;

static void conn_close(struct conn *c)
{
    close(c->fd); /* also leaves the epoll set */
    free(c);
}

static void conn_want(struct conn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends buf[pending_off..+pending_len); 0 done, 1 blocked, -1 error. */
static int conn_flush(struct conn *c)
{
    while (c->pending_len) {
        ssize_t k = send(c->fd, c->buf + c->pending_off, c->pending_len, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 1 : -1;
        }
        c->pending_off += (size_t)k;
        c->pending_len -= (size_t)k;
    }
    return 0;
}

static void on_readable(struct conn *c)
{
    ssize_t k = recv(c->fd, c->buf, sizeof c->buf, 0);
    if (k <= 0) {
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        conn_close(c);
        return;
    }
    c->pending_off = 0;
    c->pending_len = (size_t)k;
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
        c->pending_off = c->pending_len = 0;
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
    /* The listener and the signalfd are told apart by their (fake) pointers. */
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
            if (c->pending_len)
                on_writable(c);
            else
                on_readable(c);
        }
    }
}
