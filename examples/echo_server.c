/* examples/echo_server.c - a TCP echo server (asyncio's loop.sock_* echo
 * server, with loop.add_signal_handler for a clean stop).
 *
 * Usage: echo_server [PORT [HOST]]   (default 8888 on 127.0.0.1; PORT 0
 * lets the kernel pick one)
 *
 * Prints "echo server listening on HOST:PORT" once it accepts connections,
 * then one task per client sends back every byte it receives. SIGINT or
 * SIGTERM stops it: the handler (a callback on a worker, not signal context)
 * cancels the main task, whose accept then returns -ECANCELED; main
 * withdraws that cancellation and returns, and corio_run()'s shutdown
 * cancels the client tasks still connected (their recv returns -ECANCELED;
 * each closes its socket on the way out). Exit status 0 after a signal, 1 on
 * an error, 2 on a bad command line.
 *
 * asyncio equivalent:
 *     async def handle(conn):
 *         while data := await loop.sock_recv(conn, 4096):
 *             await loop.sock_sendall(conn, data)
 *     while True:
 *         conn, _ = await loop.sock_accept(srv)
 *         loop.create_task(handle(conn))
 */
#include <corio/corio.h>
#include <corio/signal.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct server {
    const char *host;
    uint16_t port;
    corio_task *main;          /* cancelled by the signal handler */
    atomic_bool stopping;
};

static void *handle_client(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    while ((n = corio_sock_recv(fd, buf, sizeof buf, 0)) > 0)   /* 0: client closed */
        if (corio_sock_sendall(fd, buf, (size_t)n) < 0)
            break;
    corio_close(fd);
    return NULL;
}

static void on_stop_signal(void *arg)    /* runs on a worker, like call_soon */
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
            corio_task_uncancel(s->main);   /* the stop we asked for, not a failure */
            return 0;
        }
        if (fd == -EMFILE || fd == -ENFILE || fd == -ECONNABORTED) {
            corio_sleep(10 * CORIO_MSEC);   /* out of descriptors: let clients finish */
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
        fprintf(stderr, "echo_server: signal handlers: %s\n", corio_strerror(rc));
        return (void *)1;
    }
    uint16_t port;
    int lfd = corio_tcp_listen(s->host, s->port, 0, &port);
    if (lfd < 0) {
        fprintf(stderr, "echo_server: listen on %s:%u: %s\n", s->host, s->port,
                corio_strerror(lfd));
        return (void *)1;
    }
    printf("echo server listening on %s:%u\n", s->host, port);
    fflush(stdout);
    rc = serve(s, lfd);
    corio_close(lfd);
    if (rc < 0) {
        fprintf(stderr, "echo_server: accept: %s\n", corio_strerror(rc));
        return (void *)1;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct server s = { .host = "127.0.0.1", .port = 8888 };
    if (argc > 3) {
        fprintf(stderr, "usage: echo_server [PORT [HOST]]\n");
        return 2;
    }
    if (argc > 1) {
        char *end;
        unsigned long p = strtoul(argv[1], &end, 10);
        if (*argv[1] == '\0' || *end != '\0' || p > 65535 || argv[1][0] == '-') {
            fprintf(stderr, "echo_server: bad port '%s'\nusage: echo_server [PORT [HOST]]\n",
                    argv[1]);
            return 2;
        }
        s.port = (uint16_t)p;
    }
    if (argc > 2)
        s.host = argv[2];
    void *failed = NULL;
    int rc = corio_run(main_task, &s, NULL, &failed);   /* asyncio.run(main()) */
    if (rc < 0)
        fprintf(stderr, "echo_server: %s\n", corio_strerror(rc));
    return rc == 0 && !failed ? 0 : 1;
}
