/* perf/bench/serve.c - what the W8 and W9 servers share: the signals, the
 * listening socket and its LISTENING line, the accept loop.
 *
 * Stopping. perf/run stops a server with SIGTERM (a person with ^C: SIGINT)
 * and wants exit status 0. Both signals are blocked in the main thread before
 * corio_run() starts any worker, so every worker inherits the mask and no
 * task is ever interrupted by them; one plain thread waits for them in
 * sigwait() and ends the process with _exit(0) after flushing stdout. Nothing
 * a server holds needs an orderly shutdown (its sockets die with it), and
 * leaving without running the runtime's shutdown means no connection task
 * has to be cancelled in the middle of a send.
 *
 * Accepting. The main task accepts on one listening socket and spawns one
 * fire-and-forget task per connection; with several workers the connection
 * tasks spread by work stealing. A full descriptor table (-EMFILE, -ENFILE)
 * or an aborted connection does not end the server: it waits 1 ms (the
 * timer wheel's resolution) and accepts again.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "bench.h"

static sigset_t stop_signals;

static void *signal_waiter(void *arg)
{
    (void)arg;
    int sig;
    while (sigwait(&stop_signals, &sig) != 0)
        ;
    fflush(stdout);
    _exit(0);
}

/* Blocks SIGTERM/SIGINT in the calling (main) thread and starts their waiter. */
static void serve_signals(void)
{
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    int rc = pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    if (rc != 0)
        bench_die("pthread_sigmask: error %d", rc);
    /* corio's sends never raise SIGPIPE (net.h); this is belt and braces. */
    signal(SIGPIPE, SIG_IGN);
    pthread_t th;
    rc = pthread_create(&th, NULL, signal_waiter, NULL);
    if (rc != 0)
        bench_die("signal thread: error %d", rc);
    pthread_detach(th);
}

struct serve_ctx {
    const struct bench_args *a;
    corio_fn conn;
};

static bool accept_error_is_transient(int rc)
{
    return rc == -EMFILE || rc == -ENFILE || rc == -ECONNABORTED || rc == -EINTR ||
           rc == -ENOBUFS || rc == -ENOMEM;
}

static void *serve_main(void *arg)
{
    struct serve_ctx *s = arg;
    uint16_t port;
    /* 4096: as the reference servers of perf/tools, so that a burst of 64
     * connects never meets a full backlog. */
    int lfd = corio_tcp_listen("127.0.0.1", s->a->port, 4096, &port);
    if (lfd < 0)
        bench_die("%s: listen on 127.0.0.1:%u: %s", s->a->workload, s->a->port,
                  corio_strerror(lfd));
    printf("LISTENING port=%u\n", port);
    fflush(stdout);
    for (;;) {
        int fd = corio_sock_accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (!accept_error_is_transient(fd))
                bench_die("%s: accept: %s", s->a->workload, corio_strerror(fd));
            corio_sleep(CORIO_MSEC);
            continue;
        }
        /* Replies are whole messages written at once: never hold one back. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int rc = corio_spawn(NULL, s->conn, (void *)(intptr_t)fd);
        if (rc < 0) {
            fprintf(stderr, "corio-bench: %s: spawn: %s\n", s->a->workload,
                    corio_strerror(rc));
            corio_close(fd);
        }
    }
}

void bench_serve(const struct bench_args *a, corio_fn conn)
{
    serve_signals();
    struct serve_ctx s = { .a = a, .conn = conn };
    bench_run_main(a, a->workers, serve_main, &s);
    bench_die("%s: the server's main task ended", a->workload);
}
