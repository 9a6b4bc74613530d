/* tests/test_stream.c - streams (corio/stream.h): open_connection and
 * start_server end to end, the reader's calls against CPython 3.12's
 * StreamReader (partial reads, readuntil/readline with the limit, EOF),
 * the writer's flow control (water marks against a slow reader), a peer
 * that resets mid-write, the server's close/wait_closed/serve_forever, a
 * server that keeps serving after accept ran out of descriptors, 200
 * connections at once, cancellation inside readline and drain, and misuse.
 *
 * Every case runs on one worker and on two (run_checks()); tasks record with
 * CHECK*() and the case asserts after the run. Peers are either TCP
 * connections through a corio server or one end of a Unix socketpair driven
 * with corio_sock_send/recv, which makes byte arrival deterministic.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "corio/corio.h"
#include "corio/stream.h"

#include "testutil.h"

#define MS CORIO_MSEC

/* ---- helpers (inside a task) -------------------------------------------- */

/* A reader/writer over one end of a socketpair; *@peer is the other end. */
static int pair(struct checks *ck, corio_reader **r, corio_writer **w, int *peer,
                size_t limit)
{
    int sv[2];
    int rc = socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);
    CHECK_EQ(ck, rc, 0);
    if (rc)
        return -1;
    *peer = sv[1];
    rc = corio_open_connection_fd(sv[0], &(corio_stream_options){.limit = limit}, r, w);
    CHECK_EQ(ck, rc, 0);
    return rc;
}

static void release(corio_reader *r, corio_writer *w)
{
    corio_writer_close(w);
    corio_writer_wait_closed(w);
    corio_writer_unref(w);
    corio_reader_unref(r);
}

static void send_str(struct checks *ck, int fd, const char *s)
{
    CHECK_EQ(ck, corio_sock_sendall(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + i / 251); }

/* An echo handler: lines back until EOF. */
struct echo_stats {
    atomic_int started, finished;
    corio_future *two_started;   /* set when started reaches 2, if not NULL */
};

static void echo_handler(corio_reader *r, corio_writer *w, void *arg)
{
    struct echo_stats *st = arg;
    char line[256];
    if (st && atomic_fetch_add(&st->started, 1) == 1 && st->two_started)
        corio_future_set_result(st->two_started, NULL);
    for (;;) {
        ssize_t n = corio_reader_readline(r, line, sizeof line);
        if (n <= 0)
            break;
        if (corio_writer_write(w, line, (size_t)n) < 0 || corio_writer_drain(w) < 0)
            break;
    }
    if (st)
        atomic_fetch_add(&st->finished, 1);
}

/* ---- echo ---------------------------------------------------------------- */

static void *echo_main(void *arg)
{
    struct checks *ck = arg;
    corio_server *srv;
    CHECK_EQ(ck, corio_start_server(&srv, "127.0.0.1", 0, echo_handler, NULL, NULL), 0);
    CHECK(ck, corio_server_port(srv) != 0);
    CHECK(ck, corio_server_is_serving(srv));

    corio_reader *r;
    corio_writer *w;
    CHECK_EQ(ck, corio_open_connection("127.0.0.1", corio_server_port(srv), NULL, &r, &w), 0);
    struct iovec iov[2] = {{"hello\n", 6}, {"world\n", 6}};
    CHECK_EQ(ck, corio_writer_writelines(w, iov, 2), 0);
    CHECK_EQ(ck, corio_writer_drain(w), 0);
    char line[64];
    CHECK_EQ(ck, corio_reader_readline(r, line, sizeof line), 6);
    CHECK_STR(ck, line, "hello\n");
    CHECK_EQ(ck, corio_reader_readline(r, line, sizeof line), 6);
    CHECK_STR(ck, line, "world\n");

    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CHECK_EQ(ck, corio_writer_peername(w, (struct sockaddr *)&ss, &len), 0);
    CHECK_EQ(ck, ntohs(((struct sockaddr_in *)&ss)->sin_port), corio_server_port(srv));
    CHECK(ck, corio_writer_fd(w) >= 0);
    CHECK(ck, corio_writer_can_write_eof(w));

    /* Half-close: the server sees EOF, ends, and closes its side. */
    CHECK_EQ(ck, corio_writer_write_eof(w), 0);
    CHECK_EQ(ck, corio_reader_readline(r, line, sizeof line), 0);
    CHECK(ck, corio_reader_at_eof(r));
    CHECK_EQ(ck, corio_writer_write(w, "x", 1), -EPIPE);
    CHECK_EQ(ck, corio_writer_close(w), 0);
    CHECK(ck, corio_writer_is_closing(w));
    CHECK_EQ(ck, corio_writer_wait_closed(w), 0);
    CHECK_EQ(ck, corio_writer_fd(w), -EBADF);
    corio_writer_unref(w);
    corio_reader_unref(r);

    CHECK_EQ(ck, corio_server_close(srv), 0);
    CHECK_EQ(ck, corio_server_wait_closed(srv), 0);
    CHECK(ck, !corio_server_is_serving(srv));
    corio_server_unref(srv);
    return NULL;
}

static void stream_echo(void **state)
{
    (void)state;
    run_checks(1, echo_main);
    run_checks(2, echo_main);
}

/* ---- partial reads ---------------------------------------------------------- */

struct chunks {
    struct checks *ck;
    int fd;
    size_t total, step;
    int64_t pause_ns;
    bool close_after;
};

static void *send_chunks(void *arg)
{
    struct chunks *c = arg;
    unsigned char buf[4096];
    for (size_t off = 0; off < c->total; off += c->step) {
        size_t n = c->total - off < c->step ? c->total - off : c->step;
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern(off + i);
        CHECK_EQ(c->ck, corio_sock_sendall(c->fd, buf, n), (ssize_t)n);
        if (c->pause_ns)
            corio_sleep(c->pause_ns);
    }
    if (c->close_after)
        corio_close(c->fd);
    return NULL;
}

static void *partial_main(void *arg)
{
    struct checks *ck = arg;
    corio_reader *r;
    corio_writer *w;
    int peer;
    if (pair(ck, &r, &w, &peer, 0))
        return NULL;
    struct chunks c = {ck, peer, 100, 10, 1 * MS, false};
    corio_task *t;
    CHECK_EQ(ck, corio_spawn(&t, send_chunks, &c), 0);
    unsigned char buf[100];
    CHECK_EQ(ck, corio_reader_readexactly(r, buf, 100), 100);
    for (size_t i = 0; i < 100; i++)
        CHECK_EQ(ck, buf[i], pattern(i));
    corio_await(t, NULL);
    corio_task_unref(t);

    /* read(n) returns what is there, never more than n. */
    send_str(ck, peer, "abcdef");
    CHECK_EQ(ck, corio_reader_read(r, buf, 4), 4);
    CHECK(ck, !memcmp(buf, "abcd", 4));
    CHECK_EQ(ck, corio_reader_read(r, buf, 100), 2);
    CHECK(ck, !memcmp(buf, "ef", 2));
    CHECK_EQ(ck, corio_reader_read(r, buf, 0), 0);
    corio_close(peer);
    CHECK_EQ(ck, corio_reader_read(r, buf, 100), 0);
    CHECK(ck, corio_reader_at_eof(r));
    release(r, w);
    return NULL;
}

static void stream_partial_reads(void **state)
{
    (void)state;
    run_checks(1, partial_main);
    run_checks(2, partial_main);
}

/* ---- readuntil / readline ------------------------------------------------------ */

static void *readuntil_main(void *arg)
{
    struct checks *ck = arg;
    corio_reader *r;
    corio_writer *w;
    int peer;
    if (pair(ck, &r, &w, &peer, 0))
        return NULL;
    char buf[64];
    send_str(ck, peer, "abc--def--ghi\nxyz");
    CHECK_EQ(ck, corio_reader_readuntil(r, "--", 2, buf, sizeof buf), 5);
    CHECK_STR(ck, buf, "abc--");
    /* Too small a buffer: nothing is consumed. */
    CHECK_EQ(ck, corio_reader_readuntil(r, "--", 2, buf, 3), -ENOBUFS);
    CHECK_EQ(ck, corio_reader_readuntil(r, "--", 2, buf, sizeof buf), 5);
    CHECK_STR(ck, buf, "def--");
    CHECK_EQ(ck, corio_reader_readline(r, buf, sizeof buf), 4);
    CHECK_STR(ck, buf, "ghi\n");
    corio_close(peer);
    /* readuntil at EOF: IncompleteReadError, the partial stays buffered. */
    CHECK_EQ(ck, corio_reader_readuntil(r, "--", 2, buf, sizeof buf), -ENODATA);
    CHECK_EQ(ck, corio_reader_buffered(r), 3);
    /* readline at EOF: the partial line (CPython's e.partial), then "". */
    CHECK_EQ(ck, corio_reader_readline(r, buf, sizeof buf), 3);
    CHECK_STR(ck, buf, "xyz");
    CHECK_EQ(ck, corio_reader_readline(r, buf, sizeof buf), 0);
    CHECK(ck, corio_reader_at_eof(r));
    release(r, w);
    return NULL;
}

static void stream_readuntil(void **state)
{
    (void)state;
    run_checks(1, readuntil_main);
    run_checks(2, readuntil_main);
}

static void *limit_main(void *arg)
{
    struct checks *ck = arg;
    corio_reader *r;
    corio_writer *w;
    int peer;
    if (pair(ck, &r, &w, &peer, 8))
        return NULL;
    char buf[64];
    /* Found beyond the limit: LimitOverrunError, everything stays readable. */
    send_str(ck, peer, "0123456789ABCDEF--tail");
    CHECK_EQ(ck, corio_reader_readuntil(r, "--", 2, buf, sizeof buf), -EOVERFLOW);
    CHECK_EQ(ck, corio_reader_buffered(r), 22);
    CHECK_EQ(ck, corio_reader_readexactly(r, buf, 22), 22);
    CHECK(ck, !memcmp(buf, "0123456789ABCDEF--tail", 22));
    /* Not found within the limit: the same, nothing consumed. */
    send_str(ck, peer, "0123456789AB");
    CHECK_EQ(ck, corio_reader_readuntil(r, "\n", 1, buf, sizeof buf), -EOVERFLOW);
    CHECK_EQ(ck, corio_reader_buffered(r), 12);
    CHECK_EQ(ck, corio_reader_read(r, buf, sizeof buf), 12);
    /* readline, CPython 3.12: discard through the separator when found... */
    send_str(ck, peer, "0123456789ABCDEF\nxy\n");
    CHECK_EQ(ck, corio_reader_readline(r, buf, sizeof buf), -EOVERFLOW);
    CHECK_EQ(ck, corio_reader_readline(r, buf, sizeof buf), 3);
    CHECK_STR(ck, buf, "xy\n");
    /* ... else the whole buffer. */
    send_str(ck, peer, "0123456789AB");
    CHECK_EQ(ck, corio_reader_readline(r, buf, sizeof buf), -EOVERFLOW);
    CHECK_EQ(ck, corio_reader_buffered(r), 0);
    send_str(ck, peer, "ok\n");
    CHECK_EQ(ck, corio_reader_readline(r, buf, sizeof buf), 3);
    CHECK_STR(ck, buf, "ok\n");
    corio_close(peer);
    release(r, w);
    return NULL;
}

static void stream_readuntil_limit(void **state)
{
    (void)state;
    run_checks(1, limit_main);
    run_checks(2, limit_main);
}

/* ---- EOF ----------------------------------------------------------------------- */

static void *readexactly_eof_main(void *arg)
{
    struct checks *ck = arg;
    corio_reader *r;
    corio_writer *w;
    int peer;
    if (pair(ck, &r, &w, &peer, 0))
        return NULL;
    char buf[16];
    send_str(ck, peer, "abc");
    corio_close(peer);
    CHECK_EQ(ck, corio_reader_readexactly(r, buf, 5), -ENODATA);
    CHECK_EQ(ck, corio_reader_buffered(r), 3);
    CHECK(ck, !corio_reader_at_eof(r));
    CHECK_EQ(ck, corio_reader_read(r, buf, sizeof buf), 3);
    CHECK(ck, !memcmp(buf, "abc", 3));
    CHECK(ck, corio_reader_at_eof(r));
    CHECK_EQ(ck, corio_reader_readexactly(r, buf, 0), 0);
    CHECK_EQ(ck, corio_reader_readexactly(r, buf, 1), -ENODATA);
    release(r, w);
    return NULL;
}

static void stream_readexactly_eof(void **state)
{
    (void)state;
    run_checks(1, readexactly_eof_main);
    run_checks(2, readexactly_eof_main);
}

static void *read_all_main(void *arg)
{
    struct checks *ck = arg;
    corio_reader *r;
    corio_writer *w;
    int peer;
    if (pair(ck, &r, &w, &peer, 0))
        return NULL;
    struct chunks c = {ck, peer, 200 * 1024 + 7, 4096, 0, true};
    corio_task *t;
    CHECK_EQ(ck, corio_spawn(&t, send_chunks, &c), 0);
    char *all = NULL;
    ssize_t n = corio_reader_read_all(r, &all);
    CHECK_EQ(ck, n, (ssize_t)c.total);
    bool same = all != NULL;
    for (ssize_t i = 0; same && i < n; i++)
        same = (unsigned char)all[i] == pattern((size_t)i);
    CHECK(ck, same);
    free(all);
    CHECK(ck, corio_reader_at_eof(r));
    CHECK_EQ(ck, corio_reader_read_all(r, &all), 0);
    CHECK_STR(ck, all, "");
    free(all);
    corio_await(t, NULL);
    corio_task_unref(t);
    release(r, w);
    return NULL;
}

static void stream_read_all_to_eof(void **state)
{
    (void)state;
    run_checks(1, read_all_main);
    run_checks(2, read_all_main);
}

/* ---- flow control ---------------------------------------------------------------- */

#define BIG (1024 * 1024)

struct sink {
    struct checks *ck;
    int fd;
    size_t want;
    int64_t pause_ns;
    atomic_size_t got;
    bool same;
};

static void *slow_sink(void *arg)
{
    struct sink *k = arg;
    unsigned char *buf = malloc(16384);   /* tasks migrate: no thread-local buffers */
    k->same = buf != NULL;
    while (atomic_load(&k->got) < k->want) {
        ssize_t n = buf ? corio_sock_recv(k->fd, buf, 16384, 0) : -ENOMEM;
        CHECK(k->ck, n > 0);
        if (n <= 0)
            break;
        size_t at = atomic_load(&k->got);
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern(at + (size_t)i))
                k->same = false;
        atomic_fetch_add(&k->got, (size_t)n);
        if (k->pause_ns)
            corio_sleep(k->pause_ns);
    }
    free(buf);
    return NULL;
}

static void fill_pattern(unsigned char *p, size_t n, size_t from)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pattern(from + i);
}

static void *drain_main(void *arg)
{
    struct checks *ck = arg;
    corio_reader *r;
    corio_writer *w;
    int peer;
    if (pair(ck, &r, &w, &peer, 0))
        return NULL;
    unsigned char *data = malloc(BIG);
    fill_pattern(data, BIG, 0);
    struct sink k = {.ck = ck, .fd = peer, .want = BIG + BIG / 4, .pause_ns = 1 * MS};
    CHECK_EQ(ck, corio_writer_write(w, data, BIG), 0);
    /* The kernel takes a few hundred KiB at most: the rest waits, above 64 KiB. */
    CHECK(ck, corio_writer_get_write_buffer_size(w) > CORIO_STREAM_HIGH_WATER);
    corio_task *t;
    CHECK_EQ(ck, corio_spawn(&t, slow_sink, &k), 0);
    CHECK_EQ(ck, corio_writer_drain(w), 0);
    CHECK(ck, corio_writer_get_write_buffer_size(w) <= CORIO_STREAM_HIGH_WATER / 4);
    CHECK(ck, atomic_load(&k.got) > 0);

    /* high = low = 0: drain waits for an empty buffer. */
    CHECK_EQ(ck, corio_writer_set_write_buffer_limits(w, 0, 0), 0);
    fill_pattern(data, BIG / 4, BIG);
    CHECK_EQ(ck, corio_writer_write(w, data, BIG / 4), 0);
    CHECK_EQ(ck, corio_writer_drain(w), 0);
    CHECK_EQ(ck, corio_writer_get_write_buffer_size(w), 0);
    corio_await(t, NULL);
    corio_task_unref(t);
    CHECK_EQ(ck, atomic_load(&k.got), BIG + BIG / 4);
    CHECK(ck, k.same);
    free(data);
    release(r, w);
    corio_close(peer);
    return NULL;
}

static void stream_drain_water_marks(void **state)
{
    (void)state;
    run_checks(1, drain_main);
    run_checks(2, drain_main);
}

/* ---- peer reset ---------------------------------------------------------------- */

struct reset_ctx {
    struct checks *ck;
    corio_future *go;   /* the client read its first bytes */
};

static void reset_handler(corio_reader *r, corio_writer *w, void *arg)
{
    struct reset_ctx *c = arg;
    (void)r;
    CHECK_EQ(c->ck, corio_writer_write(w, "hello world\n", 12), 0);
    CHECK_EQ(c->ck, corio_writer_drain(w), 0);
    CHECK_EQ(c->ck, corio_await(c->go, NULL), 0);
    struct linger lg = {1, 0};   /* close sends RST */
    setsockopt(corio_writer_fd(w), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    corio_writer_close(w);
    corio_writer_wait_closed(w);
}

static void *reset_main(void *arg)
{
    struct checks *ck = arg;
    struct reset_ctx c = {ck, new_future()};
    corio_server *srv;
    CHECK_EQ(ck, corio_start_server(&srv, "127.0.0.1", 0, reset_handler, &c, NULL), 0);
    corio_reader *r;
    corio_writer *w;
    CHECK_EQ(ck, corio_open_connection("127.0.0.1", corio_server_port(srv), NULL, &r, &w), 0);
    char buf[64];
    CHECK_EQ(ck, corio_reader_readexactly(r, buf, 3), 3);
    CHECK_EQ(ck, corio_reader_buffered(r), 9);
    corio_future_set_result(c.go, NULL);
    static char chunk[65536];
    int rc = 0;
    for (int i = 0; i < 2000 && rc == 0; i++) {
        rc = corio_writer_write(w, chunk, sizeof chunk);
        if (rc == 0)
            rc = corio_writer_drain(w);
        if (rc == 0)
            corio_sleep(1 * MS);
    }
    CHECK(ck, rc == -EPIPE || rc == -ECONNRESET);
    CHECK_EQ(ck, corio_writer_write(w, "x", 1), rc);
    CHECK_EQ(ck, corio_writer_drain(w), rc);
    /* The bytes the reader had buffered are still there. */
    CHECK_EQ(ck, corio_reader_readexactly(r, buf, 9), 9);
    CHECK(ck, !memcmp(buf, "lo world\n", 9));
    ssize_t n = corio_reader_read(r, buf, sizeof buf);
    CHECK(ck, n == 0 || n == -ECONNRESET);
    corio_writer_close(w);
    rc = corio_writer_wait_closed(w);
    CHECK(ck, rc == 0 || rc == -EPIPE || rc == -ECONNRESET);
    corio_writer_unref(w);
    corio_reader_unref(r);
    corio_server_close(srv);
    CHECK_EQ(ck, corio_server_wait_closed(srv), 0);
    corio_server_unref(srv);
    corio_future_unref(c.go);
    return NULL;
}

static void stream_peer_reset_during_write(void **state)
{
    (void)state;
    run_checks(1, reset_main);
    run_checks(2, reset_main);
}

/* ---- server close ---------------------------------------------------------------- */

static void *wait_closed_task(void *arg) { return V(corio_server_wait_closed(arg)); }

static void *server_close_main(void *arg)
{
    struct checks *ck = arg;
    struct echo_stats st = {.two_started = new_future()};
    corio_server *srv;
    CHECK_EQ(ck, corio_start_server(&srv, "127.0.0.1", 0, echo_handler, &st, NULL), 0);
    uint16_t port = corio_server_port(srv);
    corio_reader *r[2];
    corio_writer *w[2];
    char line[16];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(ck, corio_open_connection("127.0.0.1", port, NULL, &r[i], &w[i]), 0);
    CHECK_EQ(ck, corio_await(st.two_started, NULL), 0);
    CHECK_EQ(ck, corio_server_active(srv), 2);

    CHECK_EQ(ck, corio_server_close(srv), 0);
    CHECK_EQ(ck, corio_server_close(srv), 0);
    CHECK(ck, !corio_server_is_serving(srv));
    corio_task *wt;
    CHECK_EQ(ck, corio_spawn(&wt, wait_closed_task, srv), 0);
    corio_sleep(10 * MS);
    corio_reader *r3;
    corio_writer *w3;
    CHECK_EQ(ck, corio_open_connection("127.0.0.1", port, NULL, &r3, &w3), -ECONNREFUSED);
    /* Connections keep running (3.12), and wait_closed waits for them. */
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(ck, corio_writer_write(w[i], "b\n", 2), 0);
        CHECK_EQ(ck, corio_reader_readline(r[i], line, sizeof line), 2);
    }
    CHECK(ck, !corio_task_done(wt));
    release(r[0], w[0]);
    corio_sleep(10 * MS);
    CHECK(ck, !corio_task_done(wt));
    release(r[1], w[1]);
    void *v = V(1);
    CHECK_EQ(ck, corio_await(wt, &v), 0);
    CHECK_PTR(ck, v, V(0));
    corio_task_unref(wt);
    CHECK_EQ(ck, atomic_load(&st.finished), 2);
    CHECK_EQ(ck, corio_server_active(srv), 0);
    CHECK_EQ(ck, corio_server_wait_closed(srv), 0);
    corio_server_unref(srv);
    corio_future_unref(st.two_started);
    return NULL;
}

static void stream_server_close_while_active(void **state)
{
    (void)state;
    run_checks(1, server_close_main);
    run_checks(2, server_close_main);
}

static void *forever_task(void *arg) { return V(-corio_server_serve_forever(arg)); }

static void *serve_forever_main(void *arg)
{
    struct checks *ck = arg;
    corio_server *srv;
    CHECK_EQ(ck, corio_start_server(&srv, NULL, 0, echo_handler, NULL, NULL), 0);
    corio_task *t;
    CHECK_EQ(ck, corio_spawn(&t, forever_task, srv), 0);
    corio_sleep(2 * MS);
    CHECK_EQ(ck, corio_server_serve_forever(srv), -EBUSY);
    corio_server_close(srv);
    void *v = V(1);
    CHECK_EQ(ck, corio_await(t, &v), 0);
    CHECK_PTR(ck, v, V(0));
    corio_task_unref(t);
    CHECK_EQ(ck, corio_server_serve_forever(srv), -EINVAL);
    CHECK_EQ(ck, corio_server_wait_closed(srv), 0);
    corio_server_unref(srv);

    /* Cancelled: closes the server, waits for it, and ends cancelled. */
    CHECK_EQ(ck, corio_start_server(&srv, NULL, 0, echo_handler, NULL, NULL), 0);
    CHECK_EQ(ck, corio_spawn(&t, forever_task, srv), 0);
    corio_sleep(2 * MS);
    corio_task_cancel(t, NULL);
    CHECK_EQ(ck, corio_await(t, NULL), -ECANCELED);
    corio_task_unref(t);
    CHECK(ck, !corio_server_is_serving(srv));
    CHECK_EQ(ck, corio_server_wait_closed(srv), 0);
    corio_server_unref(srv);
    return NULL;
}

static void stream_serve_forever(void **state)
{
    (void)state;
    run_checks(1, serve_forever_main);
    run_checks(2, serve_forever_main);
}

/* ---- out of descriptors ----------------------------------------------------------- */

static void hi_handler(corio_reader *r, corio_writer *w, void *arg)
{
    (void)r;
    (void)arg;
    corio_writer_write(w, "hi\n", 3);
}

struct emfile {
    struct checks ck;
    struct rlimit saved;
};

static void *readline_task(void *arg)
{
    char line[16];
    ssize_t n = corio_reader_readline(arg, line, sizeof line);
    return V(n == 3 && !strcmp(line, "hi\n"));
}

static void *emfile_main(void *arg)
{
    struct emfile *e = arg;
    struct checks *ck = &e->ck;
    /* The limit is lowered before the server starts: its multishot accept
     * (io_uring) reads RLIMIT_NOFILE when it is armed. */
    int top = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            top = fd;
    struct rlimit low = e->saved;
    low.rlim_cur = (rlim_t)top + 8;
    CHECK_EQ(ck, setrlimit(RLIMIT_NOFILE, &low), 0);
    corio_server *srv;
    corio_server_options o = {.accept_retry_delay_ns = 20 * MS};
    CHECK_EQ(ck, corio_start_server(&srv, "127.0.0.1", 0, hi_handler, NULL, &o), 0);

    /* Fill the descriptor table but one slot, which the client takes. */
    int *dups = malloc(sizeof(int) * (size_t)(top + 8)), nd = 0;
    while (dups && nd < top + 8 &&
           (dups[nd] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        nd++;
    CHECK(ck, dups && nd > 0 && nd < top + 8);
    if (nd > 0)
        close(dups[--nd]);   /* the client's slot */
    corio_reader *r;
    corio_writer *w;
    CHECK_EQ(ck, corio_open_connection("127.0.0.1", corio_server_port(srv), NULL, &r, &w), 0);
    corio_task *t;
    CHECK_EQ(ck, corio_spawn(&t, readline_task, r), 0);
    /* Accept fails now (the EMFILE report is asserted after the run) and is
     * retried every 20 ms. Whether a retry already got a descriptor freed
     * elsewhere in the process is not asserted: only that serving goes on. */
    corio_sleep(50 * MS);

    while (nd > 0)
        close(dups[--nd]);
    free(dups);
    CHECK_EQ(ck, setrlimit(RLIMIT_NOFILE, &e->saved), 0);
    void *ok = NULL;
    CHECK_EQ(ck, corio_await(t, &ok), 0);
    CHECK_PTR(ck, ok, V(1));
    corio_task_unref(t);
    release(r, w);
    corio_server_close(srv);
    CHECK_EQ(ck, corio_server_wait_closed(srv), 0);
    corio_server_unref(srv);
    return NULL;
}

static void emfile_on(unsigned workers)
{
    struct emfile e = {0};
    struct reports reps;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &e.saved), 0);
    corio_rt_options o = {.workers = workers};
    assert_int_equal(run_with(&o, &reps, emfile_main, &e, NULL), 0);
    struct rlimit now;
    getrlimit(RLIMIT_NOFILE, &now);
    if (now.rlim_cur != e.saved.rlim_cur)
        setrlimit(RLIMIT_NOFILE, &e.saved);
    assert_checks(&e.ck);
    assert_true(reports_count(&reps) >= 1);
    assert_string_equal(reps.r[0].message, "socket.accept() out of system resource");
    assert_int_equal(reps.r[0].error, -EMFILE);
}

static void stream_server_survives_emfile(void **state)
{
    (void)state;
    emfile_on(1);
    emfile_on(2);
}

/* ---- many connections ---------------------------------------------------------------- */

#define CONNS 220

struct many {
    struct checks *ck;
    uint16_t port;
    atomic_int connected;
    corio_future *all;
};

static void *many_client(void *arg)
{
    struct many *m = arg;
    corio_reader *r;
    corio_writer *w;
    int rc = corio_open_connection("127.0.0.1", m->port, NULL, &r, &w);
    CHECK_EQ(m->ck, rc, 0);
    if (atomic_fetch_add(&m->connected, 1) == CONNS - 1)
        corio_future_set_result(m->all, NULL);
    if (rc)
        return NULL;
    CHECK_EQ(m->ck, corio_await(m->all, NULL), 0);   /* all open at once */
    char out[32], in[32];
    int len = snprintf(out, sizeof out, "conn %p\n", (void *)&r);
    CHECK_EQ(m->ck, corio_writer_write(w, out, (size_t)len), 0);
    CHECK_EQ(m->ck, corio_reader_readline(r, in, sizeof in), len);
    CHECK(m->ck, !strcmp(in, out));
    release(r, w);
    return NULL;
}

static void *many_main(void *arg)
{
    struct checks *ck = arg;
    struct echo_stats st = {0};
    corio_server *srv;
    CHECK_EQ(ck, corio_start_server(&srv, "127.0.0.1", 0, echo_handler, &st, NULL), 0);
    struct many m = {ck, corio_server_port(srv), 0, new_future()};
    corio_task *t[CONNS];
    for (int i = 0; i < CONNS; i++)
        CHECK_EQ(ck, corio_spawn(&t[i], many_client, &m), 0);
    CHECK_EQ(ck, corio_gather_tasks(t, CONNS, 0, NULL, NULL), 0);
    for (int i = 0; i < CONNS; i++)
        corio_task_unref(t[i]);
    corio_server_close(srv);
    CHECK_EQ(ck, corio_server_wait_closed(srv), 0);
    CHECK_EQ(ck, atomic_load(&st.finished), CONNS);
    corio_server_unref(srv);
    corio_future_unref(m.all);
    return NULL;
}

static void stream_many_connections(void **state)
{
    (void)state;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 4 * CONNS) {
        rl.rlim_cur = rl.rlim_max < 4 * CONNS ? rl.rlim_max : 4 * CONNS;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    run_checks(1, many_main);
    run_checks(2, many_main);
}

/* ---- cancellation ------------------------------------------------------------------- */

struct cancel_read {
    corio_reader *r;
    ssize_t rc;
};

static void *cancel_readline_task(void *arg)
{
    struct cancel_read *c = arg;
    char line[64];
    c->rc = corio_reader_readline(c->r, line, sizeof line);
    return NULL;
}

static void *cancel_readline_main(void *arg)
{
    struct checks *ck = arg;
    corio_reader *r;
    corio_writer *w;
    int peer;
    if (pair(ck, &r, &w, &peer, 0))
        return NULL;
    send_str(ck, peer, "partial");
    struct cancel_read c = {r, 1};
    corio_task *t;
    CHECK_EQ(ck, corio_spawn(&t, cancel_readline_task, &c), 0);
    corio_sleep(10 * MS);
    CHECK(ck, !corio_task_done(t));
    CHECK_EQ(ck, corio_task_cancel(t, NULL), 1);
    CHECK_EQ(ck, corio_await(t, NULL), -ECANCELED);
    corio_task_unref(t);
    CHECK_EQ(ck, c.rc, -ECANCELED);
    CHECK_EQ(ck, corio_reader_buffered(r), 7);   /* nothing lost */
    send_str(ck, peer, " rest\n");
    char line[64];
    CHECK_EQ(ck, corio_reader_readline(r, line, sizeof line), 13);
    CHECK_STR(ck, line, "partial rest\n");
    corio_close(peer);
    release(r, w);
    return NULL;
}

static void stream_cancel_during_readline(void **state)
{
    (void)state;
    run_checks(1, cancel_readline_main);
    run_checks(2, cancel_readline_main);
}

static void *drain_task(void *arg) { return V(-corio_writer_drain(arg)); }

static void *cancel_drain_main(void *arg)
{
    struct checks *ck = arg;
    corio_reader *r;
    corio_writer *w;
    int peer;
    if (pair(ck, &r, &w, &peer, 0))
        return NULL;
    unsigned char *data = malloc(BIG);
    fill_pattern(data, BIG, 0);
    CHECK_EQ(ck, corio_writer_write(w, data, BIG), 0);
    corio_task *t;
    CHECK_EQ(ck, corio_spawn(&t, drain_task, w), 0);
    corio_sleep(10 * MS);
    CHECK(ck, !corio_task_done(t));
    corio_task_cancel(t, NULL);
    CHECK_EQ(ck, corio_await(t, NULL), -ECANCELED);
    corio_task_unref(t);
    size_t left = corio_writer_get_write_buffer_size(w);
    CHECK(ck, left > CORIO_STREAM_HIGH_WATER);
    /* The buffer is intact: the peer gets every byte, and drain works. */
    struct sink k = {.ck = ck, .fd = peer, .want = BIG};
    corio_task *s;
    CHECK_EQ(ck, corio_spawn(&s, slow_sink, &k), 0);
    CHECK_EQ(ck, corio_writer_drain(w), 0);
    corio_await(s, NULL);
    corio_task_unref(s);
    CHECK_EQ(ck, atomic_load(&k.got), BIG);
    CHECK(ck, k.same);
    free(data);
    release(r, w);
    corio_close(peer);
    return NULL;
}

static void stream_cancel_during_drain(void **state)
{
    (void)state;
    run_checks(1, cancel_drain_main);
    run_checks(2, cancel_drain_main);
}

/* ---- misuse ---------------------------------------------------------------------- */

static void nop_handler(corio_reader *r, corio_writer *w, void *arg)
{
    (void)r, (void)w, (void)arg;
}

static void *bad_input_main(void *arg)
{
    struct checks *ck = arg;
    char buf[8];
    corio_reader *r;
    corio_writer *w;
    corio_server *srv;
    CHECK_EQ(ck, corio_open_connection("127.0.0.1", 1, NULL, NULL, &w), -EINVAL);
    CHECK_EQ(ck, corio_open_connection_fd(-1, NULL, &r, &w), -EINVAL);
    CHECK_EQ(ck, corio_start_server(NULL, NULL, 0, nop_handler, NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_start_server(&srv, NULL, 0, NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_start_server(&srv, NULL, 0, nop_handler, NULL,
                                    &(corio_server_options){.backlog = -1}),
             -EINVAL);
    CHECK_EQ(ck, corio_reader_read(NULL, buf, 1), -EINVAL);
    CHECK_EQ(ck, corio_reader_read_all(NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_reader_readexactly(NULL, buf, 1), -EINVAL);
    CHECK_EQ(ck, corio_reader_readline(NULL, buf, 8), -EINVAL);
    CHECK_EQ(ck, corio_reader_readuntil(NULL, "x", 1, buf, 8), -EINVAL);
    CHECK(ck, !corio_reader_at_eof(NULL));
    CHECK_EQ(ck, corio_writer_write(NULL, "x", 1), -EINVAL);
    CHECK_EQ(ck, corio_writer_writelines(NULL, NULL, 0), -EINVAL);
    CHECK_EQ(ck, corio_writer_drain(NULL), -EINVAL);
    CHECK_EQ(ck, corio_writer_close(NULL), -EINVAL);
    CHECK_EQ(ck, corio_writer_wait_closed(NULL), -EINVAL);
    CHECK_EQ(ck, corio_writer_write_eof(NULL), -EINVAL);
    CHECK_EQ(ck, corio_writer_fd(NULL), -EINVAL);
    CHECK_EQ(ck, corio_writer_set_write_buffer_limits(NULL, -1, -1), -EINVAL);
    CHECK_EQ(ck, corio_server_close(NULL), -EINVAL);
    CHECK_EQ(ck, corio_server_wait_closed(NULL), -EINVAL);
    CHECK_EQ(ck, corio_server_serve_forever(NULL), -EINVAL);
    CHECK_EQ(ck, corio_server_port(NULL), 0);
    corio_reader_unref(NULL);
    corio_writer_unref(NULL);
    corio_server_unref(NULL);

    /* A closed port. */
    CHECK_EQ(ck, corio_start_server(&srv, "127.0.0.1", 0, nop_handler, NULL, NULL), 0);
    uint16_t port = corio_server_port(srv);
    corio_server_close(srv);
    CHECK_EQ(ck, corio_server_wait_closed(srv), 0);
    corio_server_unref(srv);
    CHECK_EQ(ck, corio_open_connection("127.0.0.1", port, NULL, &r, &w), -ECONNREFUSED);

    int peer;
    if (pair(ck, &r, &w, &peer, 0))
        return NULL;
    /* Negative and NULL sizes and buffers. */
    CHECK_EQ(ck, corio_reader_read(r, buf, -1), -EINVAL);
    CHECK_EQ(ck, corio_reader_read(r, NULL, 4), -EINVAL);
    CHECK_EQ(ck, corio_reader_readexactly(r, buf, -5), -EINVAL);
    CHECK_EQ(ck, corio_reader_readline(r, buf, -1), -EINVAL);
    CHECK_EQ(ck, corio_reader_readuntil(r, "", 0, buf, 8), -EINVAL);
    CHECK_EQ(ck, corio_reader_readuntil(r, NULL, 1, buf, 8), -EINVAL);
    CHECK_EQ(ck, corio_writer_write(w, NULL, 3), -EINVAL);
    CHECK_EQ(ck, corio_writer_writelines(w, NULL, 2), -EINVAL);
    CHECK_EQ(ck, corio_writer_writelines(w, NULL, -1), -EINVAL);
    CHECK_EQ(ck, corio_writer_set_write_buffer_limits(w, 10, 20), -EINVAL);
    CHECK_EQ(ck, corio_writer_set_write_buffer_limits(w, -2, -1), -EINVAL);
    CHECK_EQ(ck, corio_writer_set_write_buffer_limits(w, -1, 100), 0);
    CHECK_EQ(ck, corio_writer_write(w, buf, 0), 0);
    CHECK_EQ(ck, corio_writer_drain(w), 0);
    /* Use after close. */
    CHECK_EQ(ck, corio_writer_close(w), 0);
    CHECK_EQ(ck, corio_writer_write(w, "x", 1), -EPIPE);
    CHECK_EQ(ck, corio_writer_drain(w), -EPIPE);
    CHECK_EQ(ck, corio_writer_write_eof(w), 0);
    CHECK_EQ(ck, corio_writer_wait_closed(w), 0);
    CHECK_EQ(ck, corio_writer_fd(w), -EBADF);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CHECK_EQ(ck, corio_writer_peername(w, (struct sockaddr *)&ss, &len), -EBADF);
    CHECK_EQ(ck, corio_reader_read(r, buf, sizeof buf), 0);   /* EOF after close */
    CHECK_EQ(ck, corio_reader_readline(r, buf, sizeof buf), 0);
    corio_writer_unref(w);
    corio_reader_unref(r);
    corio_close(peer);
    return NULL;
}

/* ---- no task left for the background flush ------------------------------- */

/* The runtime's stack budget is spent, so the write that needs a flusher
 * cannot spawn one: it fails with -ENOMEM, later writes are refused, and
 * close and wait_closed still finish (the descriptor closes: the peer sees
 * what was sent, then EOF). */
static void *no_flusher_main(void *arg)
{
    struct checks *ck = arg;
    corio_reader *r;
    corio_writer *w;
    int peer;
    if (pair(ck, &r, &w, &peer, 0))
        return NULL;
    corio_task *hold[8];
    int nhold = 0;
    while (nhold < 8 && corio_spawn(&hold[nhold], yield_until_cancelled, NULL) == 0)
        nhold++;
    CHECK(ck, nhold < 8);   /* the budget ran out */
    static char big[1 << 20];
    memset(big, 'x', sizeof big);
    CHECK_EQ(ck, corio_writer_write(w, big, sizeof big), -ENOMEM);
    CHECK_EQ(ck, corio_writer_write(w, "y", 1), -ENOMEM);
    corio_writer_close(w);
    corio_writer_wait_closed(w);
    size_t got = 0;
    ssize_t n;
    static char buf[65536];   /* not on the 64 KiB task stack */
    while ((n = corio_sock_recv_timeout(peer, buf, sizeof buf, 0, 5 * CORIO_SEC)) > 0)
        got += (size_t)n;
    CHECK_EQ(ck, n, 0);   /* EOF: the stream closed its descriptor */
    CHECK(ck, got < sizeof big);
    for (int i = 0; i < nhold; i++) {
        corio_task_cancel(hold[i], NULL);
        corio_await(hold[i], NULL);
        corio_task_unref(hold[i]);
    }
    corio_writer_unref(w);
    corio_reader_unref(r);
    corio_close(peer);
    return NULL;
}

static void stream_write_without_flusher_task(void **state)
{
    (void)state;
    struct checks ck = {0};
    struct reports reps;
    /* Room for the main task and a few more 64 KiB stacks (+ guard). */
    corio_rt_options o = {.workers = 1, .max_stack_memory = 3 * (68 << 10)};
    assert_int_equal(run_with(&o, &reps, no_flusher_main, &ck, NULL), 0);
    assert_checks(&ck);
}

static void stream_bad_input(void **state)
{
    (void)state;
    corio_reader *r;
    corio_writer *w;
    corio_server *srv;
    assert_int_equal(corio_open_connection("127.0.0.1", 1, NULL, &r, &w), -EPERM);
    assert_int_equal(corio_start_server(&srv, NULL, 0, nop_handler, NULL, NULL), -EPERM);
    run_checks(1, bad_input_main);
    run_checks(2, bad_input_main);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stream_echo),
        cmocka_unit_test(stream_partial_reads),
        cmocka_unit_test(stream_readuntil),
        cmocka_unit_test(stream_readuntil_limit),
        cmocka_unit_test(stream_readexactly_eof),
        cmocka_unit_test(stream_read_all_to_eof),
        cmocka_unit_test(stream_drain_water_marks),
        cmocka_unit_test(stream_peer_reset_during_write),
        cmocka_unit_test(stream_server_close_while_active),
        cmocka_unit_test(stream_serve_forever),
        cmocka_unit_test(stream_server_survives_emfile),
        cmocka_unit_test(stream_many_connections),
        cmocka_unit_test(stream_cancel_during_readline),
        cmocka_unit_test(stream_cancel_during_drain),
        cmocka_unit_test(stream_write_without_flusher_task),
        cmocka_unit_test(stream_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
