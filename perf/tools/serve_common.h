/* perf/tools/serve_common.h - what the reference servers of perf/tools share:
 * the `serve` command line, the listening socket and its LISTENING line, the
 * signalfd for SIGTERM/SIGINT, and the HTTP request framing.
 *
 * The contract (perf/README.md, the same as corio-bench's and the peers'):
 *   <server> [serve] [--port P] [--workers K]
 * listens on 127.0.0.1:P (P=0: the kernel picks a port), prints exactly
 * "LISTENING port=<P>" on stdout (flushed) once listening, serves until
 * SIGTERM or SIGINT, then exits 0. These servers are single-threaded: any
 * --workers other than 1 is refused.
 *
 * Plain C and the C library only (and liburing for raw_uring_http): these are
 * the floor under the runtimes, not users of corio.
 */
#ifndef PERF_TOOLS_SERVE_COMMON_H
#define PERF_TOOLS_SERVE_COMMON_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *serve_prog = "server";

static void serve_die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", serve_prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void serve_usage(void)
{
    fprintf(stderr, "usage: %s [serve] [--port P] [--workers 1]\n", serve_prog);
    exit(2);
}

/* Parses the command line; returns the port. */
static int serve_parse_args(int argc, char **argv)
{
    int port = 0;
    serve_prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "serve") == 0 || strcmp(argv[i], "W8") == 0 ||
            strcmp(argv[i], "W9") == 0)
            continue; /* accepted so that perf/run can call every server alike */
        if (i + 1 >= argc)
            serve_usage();
        long v = strtol(argv[i + 1], &end, 10);
        if (*argv[i + 1] == '\0' || *end != '\0')
            serve_usage();
        if (strcmp(argv[i], "--port") == 0 && v >= 0 && v <= 65535)
            port = (int)v;
        else if (strcmp(argv[i], "--workers") == 0 && v == 1)
            ;
        else
            serve_usage();
        i++;
    }
    return port;
}

/* A nonblocking listening socket on 127.0.0.1:port, announced on stdout. */
static int serve_listen(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        serve_die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        serve_die("bind 127.0.0.1:%d: %s", port, strerror(errno));
    if (listen(fd, 4096) < 0)
        serve_die("listen: %s", strerror(errno));
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        serve_die("getsockname: %s", strerror(errno));
    printf("LISTENING port=%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    return fd;
}

/* SIGTERM and SIGINT blocked and readable from the returned signalfd. */
static int serve_signalfd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        serve_die("sigprocmask: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        serve_die("signalfd: %s", strerror(errno));
    return fd;
}

static void serve_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* The one HTTP response of W8: keep-alive (HTTP/1.1's default), 13 bytes. */
static const char http_response[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
#define HTTP_RESPONSE_LEN (sizeof http_response - 1)

/* Counts the complete requests (header blocks ending in "\r\n\r\n"; W8's GETs
 * have no body) at the start of buf[0..len) and returns how many bytes they
 * take; *count gets their number. The rest is an incomplete request. */
static inline size_t http_requests(const char *buf, size_t len, unsigned *count)
{
    size_t used = 0;
    unsigned n = 0;
    for (;;) {
        const char *end = memmem(buf + used, len - used, "\r\n\r\n", 4);
        if (!end)
            break;
        used = (size_t)(end - buf) + 4;
        n++;
    }
    *count = n;
    return used;
}

#endif
