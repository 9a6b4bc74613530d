/* perf/tools/echoload.c - the W9 load generator.
 *
 * Usage: echoload --port P [--conns 64] [--seconds 10] [--size 64] [--host 127.0.0.1]
 *
 * Opens --conns TCP connections to host:P (all of them before the clock
 * starts), then, on one thread with epoll, plays ping-pong on each of them
 * for --seconds: send one --size byte message, wait for all of its bytes to
 * come back, check every byte, send the next. Messages differ from each
 * other (a function of the connection, the message number and the byte
 * position), so an echo of stale or misplaced bytes is caught.
 *
 * Prints one line: messages=<round trips completed in time> seconds=<s>.
 * Exit 1 on a wrong byte, a connection the server closed or reset, or a
 * connection that cannot be opened; 2 on a usage error.
 *
 * Build: cc -O2 -o echoload echoload.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    unsigned id;
    uint64_t seq;        /* number of the message in flight */
    size_t sent, got;    /* bytes of it sent, bytes of its echo received */
    int want_out;        /* registered for EPOLLOUT */
    unsigned char *msg;  /* the message in flight */
    unsigned char *echo; /* what came back of it */
};

static size_t size = 64;
static int ep;

static void usage(void)
{
    fprintf(stderr, "usage: echoload --port P [--conns 64] [--seconds 10] [--size 64] "
                    "[--host 127.0.0.1]\n");
    exit(2);
}

static void fail(const char *fmt, const char *detail, unsigned id)
{
    fprintf(stderr, "echoload: connection %u: ", id);
    fprintf(stderr, fmt, detail);
    fputc('\n', stderr);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fill(struct conn *c)
{
    uint64_t x = ((uint64_t)c->id << 40) ^ (c->seq * 0x9E3779B97F4A7C15u);
    for (size_t i = 0; i < size; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        c->msg[i] = (unsigned char)(x >> 56);
    }
    c->sent = c->got = 0;
}

static void want_out(struct conn *c, int on)
{
    if (c->want_out == on)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail("epoll_ctl: %s", strerror(errno), c->id);
    c->want_out = on;
}

static void push(struct conn *c)
{
    while (c->sent < size) {
        ssize_t k = send(c->fd, c->msg + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                want_out(c, 1);
                return;
            }
            fail("send: %s", strerror(errno), c->id);
        }
        c->sent += (size_t)k;
    }
    want_out(c, 0);
}

/* Reads what is there; returns 1 when the whole echo is in and correct. */
static int pull(struct conn *c)
{
    for (;;) {
        if (c->got == size)
            return 1;
        ssize_t k = recv(c->fd, c->echo + c->got, size - c->got, 0);
        if (k == 0)
            fail("%s", "the server closed the connection", c->id);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            fail("recv: %s", strerror(errno), c->id);
        }
        if ((size_t)k + c->got > c->sent)
            fail("%s", "more bytes came back than were sent", c->id);
        if (memcmp(c->echo + c->got, c->msg + c->got, (size_t)k) != 0)
            fail("%s", "a byte came back wrong", c->id);
        c->got += (size_t)k;
    }
}

static long parse_long(const char *s, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    long port = -1, nconns = 64;
    double seconds = 10;
    const char *host = "127.0.0.1";
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        const char *k = argv[i], *v = argv[++i];
        if (strcmp(k, "--port") == 0)
            port = parse_long(v, 1, 65535);
        else if (strcmp(k, "--conns") == 0)
            nconns = parse_long(v, 1, 100000);
        else if (strcmp(k, "--seconds") == 0) {
            char *end;
            seconds = strtod(v, &end);
            if (*v == '\0' || *end != '\0' || !(seconds > 0))
                usage();
        } else if (strcmp(k, "--size") == 0)
            size = (size_t)parse_long(v, 1, 1 << 24);
        else if (strcmp(k, "--host") == 0)
            host = v;
        else
            usage();
    }
    if (port < 0)
        usage();
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        usage();
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("echoload: epoll_create1");
        return 1;
    }
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    unsigned char *bufs = malloc((size_t)nconns * size * 2);
    if (!conns || !bufs) {
        fputs("echoload: out of memory\n", stderr);
        return 1;
    }
    for (long i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        c->id = (unsigned)i;
        c->msg = bufs + (size_t)i * size * 2;
        c->echo = c->msg + size;
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            fail("socket: %s", strerror(errno), c->id);
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            fail("connect: %s", strerror(errno), c->id);
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            fail("epoll_ctl: %s", strerror(errno), c->id);
    }

    uint64_t messages = 0;
    double t0 = now_s(), deadline = t0 + seconds, t = t0;
    for (long i = 0; i < nconns; i++) {
        fill(&conns[i]);
        push(&conns[i]);
    }
    struct epoll_event evs[256];
    while (t < deadline) {
        int ms = (int)((deadline - t) * 1e3) + 1;
        int n = epoll_wait(ep, evs, 256, ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("echoload: epoll_wait");
            return 1;
        }
        t = now_s();
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT)
                push(c);
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                if (!pull(c))
                    continue;
                if (t >= deadline)
                    break; /* came back too late to count */
                messages++;
                c->seq++;
                fill(c);
                push(c);
            }
        }
    }
    double wall = t - t0;
    printf("messages=%llu seconds=%.6f\n", (unsigned long long)messages, wall);
    return 0;
}
