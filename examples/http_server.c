/* examples/http_server.c - an HTTP/1.1 keep-alive "Hello, World!" server,
 * requests parsed by Joyent's http_parser (Debian: libhttp-parser-dev).
 *
 * Usage: http_server [PORT [HOST]]   (default 8080 on 127.0.0.1; PORT 0
 * lets the kernel pick one)
 *
 * Prints "http server listening on HOST:PORT", then one task per connection
 * feeds what it receives to the parser. Every complete request is answered
 * with 200 and the 13-byte body "Hello, World!" (none for HEAD), in order,
 * pipelined requests included. Connections stay open (HTTP/1.1's default)
 * unless the request says otherwise (http_should_keep_alive(): "Connection:
 * close", or HTTP/1.0 without keep-alive), in which case the answer says
 * "Connection: close" and the server closes after it. A request that does
 * not parse gets 400 and the connection is closed.
 *
 * Because tasks are stackful, the parser's callbacks may await: when the
 * answers to a long pipeline fill the output buffer, on_message_complete
 * sends them right there, in the middle of http_parser_execute(). A
 * stackless runtime would have to pause the parser instead.
 *
 * SIGINT or SIGTERM stops the server as in examples/echo_server.c: exit
 * status 0 (1 on an error, 2 on a bad command line).
 */
#include <corio/corio.h>
#include <corio/signal.h>
#include <errno.h>
#include <http_parser.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUT_BUF 8192

static const char hello_keep_alive[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
static const char hello_close[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
    "Connection: close\r\n\r\nHello, World!";
static const char bad_request[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
#define BODY_LEN 13

/* One connection: the parser's data pointer. */
struct conn {
    int fd;
    http_parser parser;
    bool close_after;     /* a request asked for the connection to end */
    int error;            /* a failed send, for the receive loop */
    size_t out_len;
    char out[OUT_BUF];
};

static int flush(struct conn *c)
{
    if (c->out_len && c->error == 0) {
        ssize_t n = corio_sock_sendall(c->fd, c->out, c->out_len);
        if (n < 0)
            c->error = (int)n;
    }
    c->out_len = 0;
    return c->error;
}

static int queue(struct conn *c, const char *data, size_t len)
{
    if (c->out_len + len > sizeof c->out && flush(c) < 0)   /* awaits, inside the parser */
        return -1;
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    bool keep = http_should_keep_alive(p);
    const char *r = keep ? hello_keep_alive : hello_close;
    size_t len = keep ? sizeof hello_keep_alive - 1 : sizeof hello_close - 1;
    if (p->method == HTTP_HEAD)
        len -= BODY_LEN;
    if (queue(c, r, len) < 0)
        return -1;   /* stops the parser: HPE_CB_message_complete */
    if (!keep) {
        c->close_after = true;
        http_parser_pause(p, 1);   /* ignore whatever follows */
    }
    return 0;
}

static const http_parser_settings settings = {
    .on_message_complete = on_message_complete,
};

static void serve_conn(struct conn *c)
{
    char in[4096];
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    for (;;) {
        ssize_t n = corio_sock_recv(c->fd, in, sizeof in, 0);
        if (n <= 0)
            return;   /* closed by the client, reset, or cancelled at shutdown */
        size_t used = http_parser_execute(&c->parser, &settings, in, (size_t)n);
        enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
        if (c->error)
            return;
        if (c->close_after) {
            flush(c);
            return;
        }
        if (err != HPE_OK || used != (size_t)n) {
            queue(c, bad_request, sizeof bad_request - 1);
            flush(c);
            return;
        }
        if (flush(c) < 0)
            return;
    }
}

static void *handle_client(void *arg)
{
    struct conn *c = calloc(1, sizeof *c);
    int fd = (int)(intptr_t)arg;
    if (c) {
        c->fd = fd;
        serve_conn(c);
        free(c);
    }
    corio_close(fd);
    return NULL;
}

/* ---- the listening side: as in examples/echo_server.c ------------------ */

struct server {
    const char *host;
    uint16_t port;
    corio_task *main;
    atomic_bool stopping;
};

static void on_stop_signal(void *arg)
{
    struct server *s = arg;
    atomic_store(&s->stopping, true);
    corio_task_cancel(s->main, "stop signal");
}

static int serve(struct server *s, int lfd)
{
    for (;;) {
        int fd = corio_sock_accept(lfd, NULL, NULL);
        if (fd == -ECANCELED && atomic_load(&s->stopping)) {
            corio_task_uncancel(s->main);
            return 0;
        }
        if (fd == -EMFILE || fd == -ENFILE || fd == -ECONNABORTED) {
            corio_sleep(10 * CORIO_MSEC);
            continue;
        }
        if (fd < 0)
            return fd;
        if (corio_spawn(NULL, handle_client, (void *)(intptr_t)fd) < 0)
            corio_close(fd);
    }
}

static void *main_task(void *arg)
{
    struct server *s = arg;
    s->main = corio_current_task();
    corio_rt *rt = corio_get_running_rt();
    int rc = corio_add_signal_handler(rt, SIGINT, on_stop_signal, s);
    if (rc == 0)
        rc = corio_add_signal_handler(rt, SIGTERM, on_stop_signal, s);
    if (rc < 0) {
        fprintf(stderr, "http_server: signal handlers: %s\n", corio_strerror(rc));
        return (void *)1;
    }
    uint16_t port;
    int lfd = corio_tcp_listen(s->host, s->port, 0, &port);
    if (lfd < 0) {
        fprintf(stderr, "http_server: listen on %s:%u: %s\n", s->host, s->port,
                corio_strerror(lfd));
        return (void *)1;
    }
    printf("http server listening on %s:%u\n", s->host, port);
    fflush(stdout);
    rc = serve(s, lfd);
    corio_close(lfd);
    if (rc < 0) {
        fprintf(stderr, "http_server: accept: %s\n", corio_strerror(rc));
        return (void *)1;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct server s = { .host = "127.0.0.1", .port = 8080 };
    if (argc > 3) {
        fprintf(stderr, "usage: http_server [PORT [HOST]]\n");
        return 2;
    }
    if (argc > 1) {
        char *end;
        unsigned long p = strtoul(argv[1], &end, 10);
        if (*argv[1] == '\0' || argv[1][0] == '-' || *end != '\0' || p > 65535) {
            fprintf(stderr, "http_server: bad port '%s'\nusage: http_server [PORT [HOST]]\n",
                    argv[1]);
            return 2;
        }
        s.port = (uint16_t)p;
    }
    if (argc > 2)
        s.host = argv[2];
    void *failed = NULL;
    int rc = corio_run(main_task, &s, NULL, &failed);
    if (rc < 0)
        fprintf(stderr, "http_server: %s\n", corio_strerror(rc));
    return rc == 0 && !failed ? 0 : 1;
}
