/* perf/bench/echo.c - W9: the TCP echo server and corio's own load generator.
 *
 * serve: one task per connection receives into a buffer and sends every byte
 * back (corio_sock_recv / corio_sock_sendall, no stream layer) until the peer
 * closes.
 *
 * client: --conns connections (64 by default) are all opened before the clock
 * starts; then one task per connection plays ping-pong for --seconds: send a
 * MSG_SIZE-byte message, receive until all MSG_SIZE bytes came back, check
 * every byte, send the next. Messages differ from each other (a function of
 * the connection, the message number and the byte position), so an echo of
 * stale or misplaced bytes fails the run. The figure is messages (round
 * trips) per second of the whole run:
 *   RESULT workload=W9 peer=corio n=<messages> wall_s=<s> rate=<msgs/s> conns=<C> workers=<K>
 */
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "bench.h"

#define ECHO_BUF (16 * 1024)   /* the server's receive size per call */
#define MSG_SIZE 64            /* WORKLOADS.md: 64-byte messages */

static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[ECHO_BUF];
    for (;;) {
        ssize_t r = corio_sock_recv(fd, buf, sizeof buf, 0);
        if (r <= 0 || corio_sock_sendall(fd, buf, (size_t)r) < 0)
            break;
    }
    corio_close(fd);
    return NULL;
}

/* ---- client ----------------------------------------------------------- */

struct echo_client {
    int fd;
    unsigned id;
    uint64_t deadline;   /* corio_time_ns() at which to stop */
    uint64_t messages;   /* round trips completed */
};

static void fill_message(unsigned char *m, unsigned id, uint64_t seq)
{
    for (unsigned j = 0; j < MSG_SIZE; j++)
        m[j] = (unsigned char)(id * 131u + (unsigned)seq * 7u + (unsigned)(seq >> 8) + j * 13u);
}

static void *echo_client_task(void *arg)
{
    struct echo_client *c = arg;
    unsigned char msg[MSG_SIZE], back[MSG_SIZE];
    for (uint64_t seq = 0; corio_time_ns() < c->deadline; seq++) {
        fill_message(msg, c->id, seq);
        ssize_t n = corio_sock_sendall(c->fd, msg, sizeof msg);
        if (n < 0)
            bench_die("W9 client: connection %u: send: %s", c->id, corio_strerror((int)n));
        for (size_t got = 0; got < sizeof back; got += (size_t)n) {
            n = corio_sock_recv(c->fd, back + got, sizeof back - got, 0);
            if (n <= 0)
                bench_die("W9 client: connection %u: %s", c->id,
                          n == 0 ? "closed by the server" : corio_strerror((int)n));
        }
        if (memcmp(msg, back, sizeof msg) != 0)
            bench_die("W9 client: connection %u: message %" PRIu64 " came back wrong", c->id,
                      seq);
        c->messages++;
    }
    return NULL;
}

struct client_main_ctx {
    const struct bench_args *a;
    uint64_t messages, wall_ns;
};

static void connect_all(const struct bench_args *a, struct echo_client *cs)
{
    for (unsigned i = 0; i < a->conns; i++) {
        int fd = corio_tcp_connect("127.0.0.1", a->port);
        if (fd < 0)
            bench_die("W9 client: connect to 127.0.0.1:%u: %s", a->port, corio_strerror(fd));
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        cs[i] = (struct echo_client){ .fd = fd, .id = i };
    }
}

static void *client_main(void *arg)
{
    struct client_main_ctx *m = arg;
    const struct bench_args *a = m->a;
    struct echo_client *cs = calloc(a->conns, sizeof *cs);
    corio_task **ts = calloc(a->conns, sizeof *ts);
    if (!cs || !ts)
        bench_die("W9 client: no memory for %u connections", a->conns);
    connect_all(a, cs);

    uint64_t t0 = bench_now_ns();
    uint64_t deadline = corio_time_ns() + (uint64_t)(a->seconds * 1e9);
    for (unsigned i = 0; i < a->conns; i++) {
        cs[i].deadline = deadline;
        int rc = corio_spawn(&ts[i], echo_client_task, &cs[i]);
        if (rc < 0)
            bench_die("W9 client: spawn: %s", corio_strerror(rc));
    }
    for (unsigned i = 0; i < a->conns; i++) {
        int rc = corio_await(ts[i], NULL);
        if (rc < 0)
            bench_die("W9 client: connection %u: %s", i, corio_strerror(rc));
        corio_task_unref(ts[i]);
    }
    m->wall_ns = bench_now_ns() - t0;
    for (unsigned i = 0; i < a->conns; i++) {
        m->messages += cs[i].messages;
        corio_close(cs[i].fd);
    }
    free(ts);
    free(cs);
    return NULL;
}

static void echo_client(const struct bench_args *a)
{
    struct client_main_ctx m = { .a = a };
    bench_run_main(a, a->workers, client_main, &m);
    if (m.messages == 0)
        bench_die("W9 client: no message made the round trip");
    double wall_s = (double)m.wall_ns / 1e9;
    printf("RESULT workload=W9 peer=corio n=%" PRIu64 " wall_s=%.6f rate=%.0f conns=%u "
           "workers=%u\n", m.messages, wall_s, (double)m.messages / wall_s, a->conns,
           a->workers);
}

void bench_echo(const struct bench_args *a)
{
    if (strcmp(a->mode, "client") == 0)
        echo_client(a);
    else
        bench_serve(a, echo_conn);
}
