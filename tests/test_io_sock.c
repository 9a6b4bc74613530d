/* tests/test_io_sock.c - sockets through the public API (corio/net.h,
 * corio/time.h, corio/fd.h): TCP echo with partial reads and writes, resets,
 * refused connections, many connections, EMFILE, cancellation of every
 * blocking call (from a task and from a plain thread) and its race with a
 * completion, UDP over both families, readiness, name resolution, bad input,
 * per-operation timeouts, and add_reader/add_writer.
 *
 * Each case runs its own runtime (testutil.h): tasks record what they saw
 * with CHECK*() and the case asserts after the run, which also asserts that
 * no task outlived it. Cases where the worker count matters run on 1 and on
 * 2 workers. The binary runs once per backend (CORIO_BACKEND=uring, epoll).
 * Sockets are loopback only; a case that needs something this machine lacks
 * (::1, a connect that hangs, enough descriptors) is skipped, never passed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "corio/corio.h"
#include "corio/fd.h"

#include "testutil.h"

#define MS CORIO_MSEC

/* ---- helpers (inside a task) -------------------------------------------- */

/* A connected loopback TCP pair: *@a the connecting side, *@b the accepted
 * one. Connect completes from the backlog, so one task does all three. */
static int tcp_pair(int *a, int *b)
{
    uint16_t port = 0;
    int l = corio_tcp_listen("127.0.0.1", 0, 16, &port);
    if (l < 0)
        return l;
    *a = corio_tcp_connect("127.0.0.1", port);
    *b = *a >= 0 ? corio_sock_accept(l, NULL, NULL) : -1;
    corio_close(l);
    if (*a < 0 || *b < 0) {
        if (*a >= 0)
            corio_close(*a);
        if (*b >= 0)
            corio_close(*b);
        return -EIO;
    }
    return 0;
}

static int pair_or_check(struct checks *ck, int *a, int *b)
{
    int rc = tcp_pair(a, b);
    CHECK_EQ(ck, rc, 0);
    return rc;
}

static uint64_t ms_since(uint64_t t0)
{
    return (corio_time_ns() - t0) / 1000000u;
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 7 % 251);
}

/* ---- echo with partial reads and writes ---------------------------------- */

struct echo {
    struct checks *ck;
    int fd;
    size_t total;
    int slow;   /* reader: sleep 1 ms every this many KiB (0: never) */
};

/* Echoes until EOF; returns the bytes echoed. */
static void *echo_server(void *arg)
{
    struct echo *e = arg;
    char buf[4096];
    size_t n = 0;
    for (;;) {
        ssize_t r = corio_sock_recv(e->fd, buf, sizeof buf, 0);
        if (r <= 0) {
            CHECK_EQ(e->ck, r, 0);
            break;
        }
        CHECK_EQ(e->ck, corio_sock_sendall(e->fd, buf, (size_t)r), r);
        n += (size_t)r;
    }
    corio_sock_shutdown(e->fd, SHUT_WR);
    return V(n);
}

static void *one_byte_writer(void *arg)
{
    struct echo *e = arg;
    for (size_t i = 0; i < e->total; i++) {
        unsigned char c = pattern(i);
        CHECK_EQ(e->ck, corio_sock_send(e->fd, &c, 1, 0), 1);
        if (i % 16 == 0)
            corio_yield();
    }
    CHECK_EQ(e->ck, corio_sock_shutdown(e->fd, SHUT_WR), 0);
    return NULL;
}

static void *echo_one_byte_main(void *arg)
{
    struct echo *e = arg;
    int a, b;
    if (pair_or_check(e->ck, &a, &b) < 0)
        return NULL;
    struct echo srv = {.ck = e->ck, .fd = b}, cli = {.ck = e->ck, .fd = a, .total = 2000};
    corio_task *ts, *tw;
    CHECK_EQ(e->ck, corio_spawn(&ts, echo_server, &srv), 0);
    CHECK_EQ(e->ck, corio_spawn(&tw, one_byte_writer, &cli), 0);
    size_t got = 0;
    unsigned char buf[64];
    ssize_t r;
    while ((r = corio_sock_recv(a, buf, sizeof buf, 0)) > 0) {
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != pattern(got + (size_t)i))
                CHECK(e->ck, !"echoed byte differs");
        got += (size_t)r;
    }
    CHECK_EQ(e->ck, r, 0);
    CHECK_EQ(e->ck, got, cli.total);
    void *v;
    CHECK_EQ(e->ck, corio_await(ts, &v), 0);
    CHECK_EQ(e->ck, (size_t)(uintptr_t)v, cli.total);
    corio_await(tw, NULL);
    corio_task_unref(ts);
    corio_task_unref(tw);
    corio_close(a);
    corio_close(b);
    return NULL;
}

static void io_sock_echo_one_byte_writes(void **state)
{
    (void)state;
    for (unsigned w = 1; w <= 2; w++) {
        struct checks ck = {0};
        struct echo e = {.ck = &ck};
        run_main_checked(w, echo_one_byte_main, &e, &ck);
    }
}

#define BIG (8u << 20)

struct big {
    struct checks ck;
    int fd;
    unsigned char *data;
    size_t partial, sends;
};

/* Sends BIG bytes with corio_sock_send in 1 MiB requests, counting the
 * partial ones (the slow reader keeps the socket buffer full). */
static void *big_sender(void *arg)
{
    struct big *s = arg;
    size_t done = 0;
    while (done < BIG) {
        size_t want = BIG - done < (1u << 20) ? BIG - done : (1u << 20);
        ssize_t n = corio_sock_send(s->fd, s->data + done, want, 0);
        if (n <= 0) {
            CHECK(&s->ck, n > 0);
            break;
        }
        s->sends++;
        if ((size_t)n < want)
            s->partial++;
        done += (size_t)n;
    }
    CHECK_EQ(&s->ck, done, BIG);
    corio_sock_shutdown(s->fd, SHUT_WR);
    return NULL;
}

static void *big_main(void *arg)
{
    struct big *s = arg;
    int a, b;
    if (pair_or_check(&s->ck, &a, &b) < 0)
        return NULL;
    int small = 64 << 10;
    setsockopt(b, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    s->fd = a;
    corio_task *t;
    CHECK_EQ(&s->ck, corio_spawn(&t, big_sender, s), 0);
    unsigned char *buf = malloc(64 << 10);
    size_t got = 0, bad = 0, next_nap = 0;
    ssize_t r;
    while ((r = corio_sock_recv(b, buf, 64 << 10, 0)) > 0) {
        if (memcmp(buf, s->data + got, (size_t)r) != 0)
            bad++;
        got += (size_t)r;
        if (got >= next_nap) {   /* slow for the first MiB, then drain */
            corio_sleep(got < (1u << 20) ? 1 * MS : 0);
            next_nap = got + (128u << 10);
        }
    }
    CHECK_EQ(&s->ck, r, 0);
    CHECK_EQ(&s->ck, got, BIG);
    CHECK_EQ(&s->ck, bad, 0);
    corio_await(t, NULL);
    corio_task_unref(t);
    free(buf);
    corio_close(a);
    corio_close(b);
    return NULL;
}

static void io_sock_large_transfer_partial_sends(void **state)
{
    (void)state;
    unsigned char *data = malloc(BIG);
    assert_non_null(data);
    for (size_t i = 0; i < BIG; i++)
        data[i] = pattern(i);
    for (unsigned w = 1; w <= 2; w++) {
        struct big s = {.data = data};
        run_main_checked(w, big_main, &s, &s.ck);
        assert_true(s.partial > 0);   /* 1 MiB never fits a 64 KiB receiver at once */
        assert_true(s.sends > 8);
    }
    free(data);
}

/* ---- resets and refusals --------------------------------------------------- */

static void *reset_main(void *arg)
{
    struct checks *ck = arg;
    int a, b;
    if (pair_or_check(ck, &a, &b) < 0)
        return NULL;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK_EQ(ck, setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    CHECK_EQ(ck, corio_close(b), 0);
    char c;
    CHECK_EQ(ck, corio_sock_recv(a, &c, 1, 0), -ECONNRESET);
    corio_close(a);

    /* A send after the reset arrived: -ECONNRESET first (then -EPIPE). */
    if (pair_or_check(ck, &a, &b) < 0)
        return NULL;
    CHECK_EQ(ck, setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    CHECK_EQ(ck, corio_close(b), 0);
    CHECK(ck, corio_wait_fd(a, POLLIN) > 0);
    ssize_t n = corio_sock_send(a, "x", 1, 0);
    CHECK(ck, n == -ECONNRESET || n == -EPIPE);
    corio_close(a);
    return NULL;
}

static void io_sock_peer_reset(void **state)
{
    (void)state;
    run_checks(1, reset_main);
    run_checks(2, reset_main);
}

static void *refused_main(void *arg)
{
    struct checks *ck = arg;
    /* A bound socket that never listens: its port refuses, and nobody else
     * can take it while we hold it. */
    int held = corio_socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    CHECK_EQ(ck, bind(held, (struct sockaddr *)&sa, sizeof sa), 0);
    CHECK_EQ(ck, getsockname(held, (struct sockaddr *)&sa, &len), 0);
    int fd = corio_socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(ck, corio_sock_connect(fd, (struct sockaddr *)&sa, sizeof sa), -ECONNREFUSED);
    corio_close(fd);
    CHECK_EQ(ck, corio_tcp_connect("127.0.0.1", ntohs(sa.sin_port)), -ECONNREFUSED);
    corio_close(held);
    return NULL;
}

static void io_sock_connection_refused(void **state)
{
    (void)state;
    run_checks(1, refused_main);
}

/* ---- 1,000 concurrent connections ----------------------------------------- */

#define CONNS 1000

struct many {
    struct checks ck;
    uint16_t port;
    int listener;
    atomic_int echoed, clients_ok;
};

static void *many_handler(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16];
    ssize_t n = corio_sock_recv(fd, buf, sizeof buf, 0);
    if (n > 0)
        corio_sock_sendall(fd, buf, (size_t)n);
    corio_close(fd);
    return V(n);
}

static void *many_acceptor(void *arg)
{
    struct many *m = arg;
    corio_task *h[CONNS];
    int n = 0;
    for (; n < CONNS; n++) {
        int fd = corio_sock_accept(m->listener, NULL, NULL);
        if (fd < 0) {
            CHECK_EQ(&m->ck, fd, 0);
            break;
        }
        if (corio_spawn(&h[n], many_handler, V(fd)) < 0) {
            CHECK(&m->ck, !"spawn handler");
            corio_close(fd);
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        void *v;
        if (corio_await(h[i], &v) == 0 && (intptr_t)v == 8)
            atomic_fetch_add(&m->echoed, 1);
        corio_task_unref(h[i]);
    }
    return NULL;
}

static void *many_client(void *arg)
{
    struct many *m = arg;
    int fd = corio_tcp_connect("127.0.0.1", m->port);
    if (fd < 0) {
        CHECK_EQ(&m->ck, fd, 0);
        return NULL;
    }
    char buf[8];
    if (corio_sock_sendall(fd, "12345678", 8) == 8 && corio_sock_recv(fd, buf, 8, MSG_WAITALL) == 8 &&
        memcmp(buf, "12345678", 8) == 0)
        atomic_fetch_add(&m->clients_ok, 1);
    corio_close(fd);
    return NULL;
}

static void *many_main(void *arg)
{
    struct many *m = arg;
    m->listener = corio_tcp_listen("127.0.0.1", 0, 4096, &m->port);
    CHECK(&m->ck, m->listener >= 0);
    if (m->listener < 0)
        return NULL;
    corio_task *acc, **cl = calloc(CONNS, sizeof *cl);
    CHECK_EQ(&m->ck, corio_spawn(&acc, many_acceptor, m), 0);
    for (int i = 0; i < CONNS; i++)
        CHECK_EQ(&m->ck, corio_spawn(&cl[i], many_client, m), 0);
    for (int i = 0; i < CONNS; i++) {
        corio_await(cl[i], NULL);
        corio_task_unref(cl[i]);
    }
    corio_await(acc, NULL);
    corio_task_unref(acc);
    free(cl);
    corio_close(m->listener);
    return NULL;
}

static void io_sock_thousand_connections(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rlim_t need = 2 * CONNS + 200;
    if (rl.rlim_cur < need) {
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
            fprintf(stderr, "RLIMIT_NOFILE hard limit %llu < %llu: skipped\n",
                    (unsigned long long)rl.rlim_max, (unsigned long long)need);
            skip();
        }
        struct rlimit up = {.rlim_cur = need, .rlim_max = rl.rlim_max};
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &up), 0);
    }
    for (unsigned w = 1; w <= 2; w++) {
        struct many m = {0};
        run_main_checked(w, many_main, &m, &m.ck);
        assert_int_equal(atomic_load(&m.clients_ok), CONNS);
        assert_int_equal(atomic_load(&m.echoed), CONNS);
    }
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* ---- EMFILE on accept ----------------------------------------------------- */

#define FILLERS 512

static void *emfile_main(void *arg)
{
    struct checks *ck = arg;
    uint16_t port;
    int l = corio_tcp_listen("127.0.0.1", 0, 16, &port);
    int c = corio_tcp_connect("127.0.0.1", port);
    CHECK(ck, l >= 0 && c >= 0);
    struct rlimit saved, low;
    getrlimit(RLIMIT_NOFILE, &saved);
    int top = open("/dev/null", O_RDONLY | O_CLOEXEC);   /* about how many are open */
    close(top);
    low = (struct rlimit){.rlim_cur = (rlim_t)top + 8, .rlim_max = saved.rlim_max};
    CHECK_EQ(ck, setrlimit(RLIMIT_NOFILE, &low), 0);
    int fill[FILLERS], nfill = 0;
    while (nfill < FILLERS && (fill[nfill] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        nfill++;
    CHECK(ck, nfill < FILLERS);   /* the table is full now */
    CHECK_EQ(ck, corio_sock_accept(l, NULL, NULL), -EMFILE);
    CHECK_EQ(ck, corio_sock_accept(l, NULL, NULL), -EMFILE);
    for (int i = 0; i < 4 && nfill > 0; i++)
        close(fill[--nfill]);
    int s = corio_sock_accept(l, NULL, NULL);
    CHECK(ck, s >= 0);
    CHECK_EQ(ck, setrlimit(RLIMIT_NOFILE, &saved), 0);
    while (nfill > 0)
        close(fill[--nfill]);
    if (s >= 0) {
        char b[4];
        CHECK_EQ(ck, corio_sock_send(c, "ping", 4, 0), 4);
        CHECK_EQ(ck, corio_sock_recv(s, b, 4, MSG_WAITALL), 4);
        corio_close(s);
    }
    /* And the listener still takes new connections. */
    int c2 = corio_tcp_connect("127.0.0.1", port);
    int s2 = corio_sock_accept(l, NULL, NULL);
    CHECK(ck, c2 >= 0 && s2 >= 0);
    corio_close(c2);
    corio_close(s2);
    corio_close(c);
    corio_close(l);
    return NULL;
}

static void io_sock_accept_emfile(void **state)
{
    (void)state;
    run_checks(1, emfile_main);
}

/* ---- cancellation of blocking calls ---------------------------------------- */

enum blocker { B_ACCEPT, B_RECV, B_CONNECT, B_SLEEP };

struct cancel {
    struct checks ck;
    enum blocker what;
    int fd;
    struct sockaddr_in to;
    atomic_int started;
    int rc;
    uint64_t ended_ns;
    corio_task *victim;
    bool from_thread;
    atomic_int victim_worker;
    int cross_worker;   /* cancels issued from another worker than the victim's */
};

static void *blocked(void *arg)
{
    struct cancel *c = arg;
    char buf[16];
    atomic_store(&c->victim_worker, corio_worker_id());
    atomic_store(&c->started, 1);
    switch (c->what) {
    case B_ACCEPT:
        c->rc = corio_sock_accept(c->fd, NULL, NULL);
        break;
    case B_RECV:
        c->rc = (int)corio_sock_recv(c->fd, buf, sizeof buf, 0);
        break;
    case B_CONNECT:
        c->rc = corio_sock_connect(c->fd, (struct sockaddr *)&c->to, sizeof c->to);
        break;
    case B_SLEEP:
        c->rc = corio_sleep(10 * CORIO_SEC);
        break;
    }
    c->ended_ns = corio_time_ns();
    return NULL;
}

static void *cancel_from_thread(void *arg)
{
    struct cancel *c = arg;
    CHECK_EQ(&c->ck, corio_task_cancel(c->victim, NULL), 1);
    return NULL;
}

/* Starts blocked() and cancels it 20 ms later; checks it returned
 * -ECANCELED within 1 s of the cancel. false when it ended by itself. */
static bool cancel_blocked(struct cancel *c)
{
    atomic_store(&c->victim_worker, -1);
    CHECK_EQ(&c->ck, corio_spawn(&c->victim, blocked, c), 0);
    /* With 2 workers, keep this worker busy (briefly) so the other one
     * takes the victim: then the cancel comes from another worker than the
     * operation's owner, and the victim must move there (io/io.c). */
    if (corio_rt_workers(corio_get_running_rt()) > 1 && !c->from_thread) {
        uint64_t t0 = corio_time_ns();
        while (atomic_load(&c->victim_worker) < 0 && corio_time_ns() - t0 < 100 * MS)
            ;
    }
    corio_sleep(20 * MS);
    if (corio_task_done(c->victim)) {
        corio_await(c->victim, NULL);
        corio_task_unref(c->victim);
        return false;
    }
    CHECK(&c->ck, atomic_load(&c->started));
    if (!c->from_thread && corio_worker_id() != atomic_load(&c->victim_worker))
        c->cross_worker++;
    uint64_t t0 = corio_time_ns();
    if (c->from_thread)
        run_plain_thread(&c->ck, cancel_from_thread, c);
    else
        CHECK_EQ(&c->ck, corio_task_cancel(c->victim, NULL), 1);
    corio_await(c->victim, NULL);
    CHECK(&c->ck, corio_task_done(c->victim));
    CHECK_EQ(&c->ck, c->rc, -ECANCELED);
    CHECK(&c->ck, c->ended_ns - t0 < 1000 * MS);
    corio_task_unref(c->victim);
    return true;
}

static void *cancel_accept_recv_main(void *arg)
{
    struct cancel *c = arg;
    uint16_t port;
    int l = corio_tcp_listen("127.0.0.1", 0, 16, &port);
    c->what = B_ACCEPT;
    c->fd = l;
    CHECK(&c->ck, cancel_blocked(c));
    /* The listener still works. */
    int a = corio_tcp_connect("127.0.0.1", port);
    int b = corio_sock_accept(l, NULL, NULL);
    CHECK(&c->ck, a >= 0 && b >= 0);

    c->what = B_RECV;
    c->fd = b;
    CHECK(&c->ck, cancel_blocked(c));
    char buf[8];
    CHECK_EQ(&c->ck, corio_sock_send(a, "abc", 3, 0), 3);
    CHECK_EQ(&c->ck, corio_sock_recv(b, buf, sizeof buf, 0), 3);

    c->what = B_SLEEP;
    CHECK(&c->ck, cancel_blocked(c));
    CHECK_EQ(&c->ck, corio_close(a), 0);
    CHECK_EQ(&c->ck, corio_close(b), 0);
    CHECK_EQ(&c->ck, corio_close(l), 0);
    return NULL;
}

static void io_sock_cancel_accept_recv_sleep(void **state)
{
    (void)state;
    for (unsigned w = 1; w <= 2; w++)
        for (int th = 0; th < 2; th++) {
            struct cancel c = {.from_thread = th};
            run_main_checked(w, cancel_accept_recv_main, &c, &c.ck);
            if (w == 2 && !th)
                fprintf(stderr, "cancels from the other worker: %d of 3\n", c.cross_worker);
        }
}

/* A connect that hangs: the accept queue of a backlog-0 listener holds one
 * connection; further SYNs are dropped, so the next connect waits. */
static void *cancel_connect_main(void *arg)
{
    struct cancel *c = arg;
    uint16_t port;
    int l = corio_tcp_listen("127.0.0.1", 0, 0, &port);
    /* listen(0) on Linux still queues 1; corio maps <= 0 to SOMAXCONN, so
     * use listen(2) directly. */
    listen(l, 0);
    int fill[8], nfill = 0;
    bool hung = false;
    c->to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    c->what = B_CONNECT;
    while (nfill < 8 && !hung) {
        c->fd = corio_socket(AF_INET, SOCK_STREAM, 0);
        if (cancel_blocked(c)) {
            hung = true;
            CHECK_EQ(&c->ck, corio_close(c->fd), 0);   /* still closable */
        } else {
            fill[nfill++] = c->fd;
        }
    }
    while (nfill > 0)
        corio_close(fill[--nfill]);
    corio_close(l);
    c->rc = hung ? 0 : 77;
    return NULL;
}

static void io_sock_cancel_connect(void **state)
{
    (void)state;
    for (unsigned w = 1; w <= 2; w++) {
        struct cancel c = {0};
        run_main_checked(w, cancel_connect_main, &c, &c.ck);
        if (c.rc == 77)
            skip();
    }
}

/* ---- cancellation racing a completion -------------------------------------- */

#define RACES 300

struct race {
    struct checks ck;
    int fd;
    atomic_int started;
    ssize_t got;
    int after;   /* what the next await returned */
    int outcomes[2];   /* [0] cancelled first, [1] data first */
};

static void *race_victim(void *arg)
{
    struct race *r = arg;
    char c;
    atomic_store(&r->started, 1);
    r->got = corio_sock_recv(r->fd, &c, 1, 0);
    r->after = r->got > 0 ? corio_sleep(10 * CORIO_SEC) : 0;
    return NULL;
}

/* Each round: the victim blocks in a 1-byte recv, then the byte is sent and
 * the victim cancelled, in an order that varies (cancel first, send first,
 * send and let the completion be reaped first). Whatever wins, the byte is
 * either returned by the recv (and the cancellation comes at the next
 * await) or still in the socket. */
static void *race_main(void *arg)
{
    struct race *r = arg;
    int a, b;
    if (pair_or_check(&r->ck, &a, &b) < 0)
        return NULL;
    for (int i = 0; i < RACES && !r->ck.failed; i++) {
        corio_task *t;
        r->fd = b;
        r->got = r->after = 0;
        atomic_store(&r->started, 0);
        CHECK_EQ(&r->ck, corio_spawn(&t, race_victim, r), 0);
        /* It may have been stolen by a worker the OS has not run yet. */
        for (int y = 0; y < 20000 && !atomic_load(&r->started); y++)
            y % 100 == 99 ? corio_sleep(1 * MS) : corio_yield();
        CHECK(&r->ck, atomic_load(&r->started));
        corio_yield();   /* into the recv (most of the time) */
        switch (i % 3) {
        case 0:
            corio_task_cancel(t, NULL);
            CHECK_EQ(&r->ck, corio_sock_send(a, "x", 1, 0), 1);
            break;
        case 1:
            CHECK_EQ(&r->ck, corio_sock_send(a, "x", 1, 0), 1);
            corio_task_cancel(t, NULL);
            break;
        default:
            CHECK_EQ(&r->ck, corio_sock_send(a, "x", 1, 0), 1);
            corio_yield();
            corio_task_cancel(t, NULL);
            break;
        }
        corio_await(t, NULL);
        corio_task_unref(t);
        char c;
        ssize_t left = recv(b, &c, 1, MSG_DONTWAIT);
        if (r->got == 1) {
            r->outcomes[1]++;
            CHECK_EQ(&r->ck, r->after, -ECANCELED);   /* delivered at the next await */
            CHECK_EQ(&r->ck, left, -1);
        } else {
            r->outcomes[0]++;
            CHECK_EQ(&r->ck, r->got, -ECANCELED);
            CHECK_EQ(&r->ck, left, 1);   /* the byte is still there: nothing lost */
        }
    }
    corio_close(a);
    corio_close(b);
    return NULL;
}

static void io_sock_cancel_race_keeps_data(void **state)
{
    (void)state;
    for (unsigned w = 1; w <= 2; w++) {
        struct race r = {0};
        run_main_checked(w, race_main, &r, &r.ck);
        fprintf(stderr, "%u worker(s): %d rounds cancelled first, %d with data first\n", w,
                r.outcomes[0], r.outcomes[1]);
    }
}

/* ---- UDP -------------------------------------------------------------------- */

struct udp {
    struct checks ck;
    const char *host;
    int family;
    bool unavailable;
};

static void *udp_main(void *arg)
{
    struct udp *u = arg;
    uint16_t pa, pb;
    int a = corio_udp_bind(u->host, 0, &pa);
    if (a < 0) {
        u->unavailable = true;
        return NULL;
    }
    int b = corio_udp_bind(u->host, 0, &pb);
    CHECK(&u->ck, b >= 0);
    struct sockaddr_storage to;
    socklen_t tolen = sizeof to;
    CHECK_EQ(&u->ck, getsockname(b, (struct sockaddr *)&to, &tolen), 0);
    CHECK_EQ(&u->ck, corio_sock_sendto(a, "hello", 5, 0, (struct sockaddr *)&to, tolen), 5);
    char buf[16];
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof from;
    CHECK_EQ(&u->ck, corio_sock_recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from,
                                         &fromlen), 5);
    CHECK(&u->ck, memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(&u->ck, from.ss_family, u->family);
    uint16_t port = u->family == AF_INET ? ntohs(((struct sockaddr_in *)&from)->sin_port)
                                         : ntohs(((struct sockaddr_in6 *)&from)->sin6_port);
    CHECK_EQ(&u->ck, port, pa);
    /* Reply to the address we got; NULL address arguments are fine. */
    CHECK_EQ(&u->ck, corio_sock_sendto(b, "ok", 2, 0, (struct sockaddr *)&from, fromlen), 2);
    CHECK_EQ(&u->ck, corio_sock_recvfrom(a, buf, sizeof buf, 0, NULL, NULL), 2);
    CHECK_EQ(&u->ck, corio_sock_recvfrom(a, buf, sizeof buf, 0, (struct sockaddr *)&from, NULL),
             -EINVAL);
    corio_close(a);
    corio_close(b);
    return NULL;
}

static void io_sock_udp_ipv4(void **state)
{
    (void)state;
    struct udp u = {.host = "127.0.0.1", .family = AF_INET};
    run_main_checked(1, udp_main, &u, &u.ck);
    assert_false(u.unavailable);
}

static void io_sock_udp_ipv6(void **state)
{
    (void)state;
    struct udp u = {.host = "::1", .family = AF_INET6};
    run_main_checked(2, udp_main, &u, &u.ck);
    if (u.unavailable) {
        fprintf(stderr, "::1 is not available here: skipped\n");
        skip();
    }
}

/* ---- readiness, names, bad input, timeouts --------------------------------- */

struct late_write {
    int fd;
};

static void *write_later(void *arg)
{
    struct late_write *lw = arg;
    corio_sleep(10 * MS);
    corio_sock_send(lw->fd, "r", 1, 0);
    return NULL;
}

static void *wait_fd_main(void *arg)
{
    struct checks *ck = arg;
    int a, b;
    if (pair_or_check(ck, &a, &b) < 0)
        return NULL;
    CHECK(ck, corio_wait_fd(a, POLLOUT) & POLLOUT);
    struct late_write lw = {b};
    corio_task *t;
    uint64_t t0 = corio_time_ns();
    CHECK_EQ(ck, corio_spawn(&t, write_later, &lw), 0);
    int ev = corio_wait_fd(a, POLLIN);
    CHECK(ck, ev > 0 && (ev & POLLIN));
    CHECK(ck, ms_since(t0) >= 9);
    corio_await(t, NULL);
    corio_task_unref(t);
    CHECK_EQ(ck, corio_wait_fd(a, 0), -EINVAL);
    corio_close(b);
    ev = corio_wait_fd(a, POLLIN);   /* EOF is readable */
    CHECK(ck, ev > 0 && (ev & (POLLIN | POLLHUP)));
    corio_close(a);
    return NULL;
}

static void io_sock_wait_fd_readiness(void **state)
{
    (void)state;
    run_checks(1, wait_fd_main);
    run_checks(2, wait_fd_main);
}

static void *gai_main(void *arg)
{
    struct checks *ck = arg;
    struct addrinfo *res = NULL, hints = {.ai_socktype = SOCK_STREAM};
    CHECK_EQ(ck, corio_getaddrinfo("localhost", "80", &hints, &res), 0);
    CHECK(ck, res != NULL);
    if (res)
        freeaddrinfo(res);
    res = NULL;
    CHECK_EQ(ck, corio_getaddrinfo("no-such-host.invalid", NULL, &hints, &res), -ENOENT);
    CHECK_EQ(ck, corio_getaddrinfo(NULL, NULL, &hints, &res), -EINVAL);
    CHECK_EQ(ck, corio_getaddrinfo("localhost", "80", NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_tcp_connect("no-such-host.invalid", 80), -ENOENT);
    return NULL;
}

static void io_sock_getaddrinfo(void **state)
{
    (void)state;
    run_checks(1, gai_main);
}

static void *bad_input_main(void *arg)
{
    struct checks *ck = arg;
    int fd = corio_socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(ck, corio_close(fd), 0);
    char buf[4];
    /* fd is closed now (and this test opens nothing else meanwhile). */
    CHECK_EQ(ck, corio_sock_recv(fd, buf, sizeof buf, 0), -EBADF);
    CHECK_EQ(ck, corio_sock_send(fd, buf, sizeof buf, 0), -EBADF);
    CHECK_EQ(ck, corio_sock_accept(fd, NULL, NULL), -EBADF);
    CHECK_EQ(ck, corio_read(fd, buf, sizeof buf), -EBADF);
    CHECK_EQ(ck, corio_close(fd), -EBADF);
    CHECK_EQ(ck, corio_sock_recv(-1, buf, sizeof buf, 0), -EBADF);
    int a, b;
    if (pair_or_check(ck, &a, &b) < 0)
        return NULL;
    CHECK_EQ(ck, corio_sock_recv(a, NULL, 4, 0), -EINVAL);
    CHECK_EQ(ck, corio_sock_send(a, NULL, 4, 0), -EINVAL);
    CHECK_EQ(ck, corio_sock_sendall(a, NULL, 4), -EINVAL);
    CHECK_EQ(ck, corio_sock_recvfrom(a, NULL, 4, 0, NULL, NULL), -EINVAL);
    CHECK_EQ(ck, corio_sock_sendto(a, NULL, 4, 0, NULL, 0), -EINVAL);
    CHECK_EQ(ck, corio_read(a, NULL, 4), -EINVAL);
    CHECK_EQ(ck, corio_write(a, NULL, 4), -EINVAL);
    CHECK_EQ(ck, corio_sock_recvmsg(a, NULL, 0), -EINVAL);
    CHECK_EQ(ck, corio_sock_connect(a, NULL, 0), -EINVAL);
    CHECK_EQ(ck, corio_sock_send(a, NULL, 0, 0), 0);   /* zero length is fine */
    corio_close(a);
    corio_close(b);
    return NULL;
}

static void io_sock_bad_input(void **state)
{
    (void)state;
    run_checks(1, bad_input_main);
    /* Outside a task. */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    char buf[4];
    struct addrinfo *res;
    assert_int_equal(corio_sock_recv(sv[0], buf, sizeof buf, 0), -EPERM);
    assert_int_equal(corio_sock_send(sv[0], "x", 1, 0), -EPERM);
    assert_int_equal(corio_sock_accept(sv[0], NULL, NULL), -EPERM);
    assert_int_equal(corio_wait_fd(sv[0], POLLIN), -EPERM);
    assert_int_equal(corio_getaddrinfo("localhost", NULL, NULL, &res), -EPERM);
    assert_int_equal(corio_tcp_connect("127.0.0.1", 1), -EPERM);
    assert_int_equal(corio_close(sv[0]), 0);   /* closes directly */
    assert_int_equal(corio_close(sv[1]), 0);
}

static void *timeout_main(void *arg)
{
    struct checks *ck = arg;
    int a, b;
    if (pair_or_check(ck, &a, &b) < 0)
        return NULL;
    char buf[8];
    corio_timeout tm;
    uint64_t t0 = corio_time_ns();
    CHECK_EQ(ck, corio_timeout_enter(&tm, 30 * MS), 0);
    ssize_t n = corio_timeout_exit(&tm, (int)corio_sock_recv(b, buf, sizeof buf, 0));
    CHECK_EQ(ck, n, -ETIMEDOUT);
    CHECK(ck, ms_since(t0) >= 29 && ms_since(t0) < 1000);
    CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
    /* The descriptor is still usable, and a scope that does not expire
     * changes nothing. */
    CHECK_EQ(ck, corio_sock_send(a, "hi", 2, 0), 2);
    CHECK_EQ(ck, corio_timeout_enter(&tm, 5 * CORIO_SEC), 0);
    n = corio_timeout_exit(&tm, (int)corio_sock_recv(b, buf, sizeof buf, 0));
    CHECK_EQ(ck, n, 2);
    corio_close(a);
    corio_close(b);
    return NULL;
}

static void io_sock_recv_timeout_scope(void **state)
{
    (void)state;
    run_checks(1, timeout_main);
    run_checks(2, timeout_main);
}

/* ---- per-operation timeouts (linked timeouts; a wheel timer on epoll) -------- */

static void *op_timeout_main(void *arg)
{
    struct checks *ck = arg;
    int a, b;
    if (pair_or_check(ck, &a, &b) < 0)
        return NULL;
    char buf[8];
    uint64_t t0 = corio_time_ns();
    CHECK_EQ(ck, corio_sock_recv_timeout(b, buf, sizeof buf, 0, 30 * MS), -ETIMEDOUT);
    CHECK(ck, ms_since(t0) >= 29 && ms_since(t0) < 1000);
    /* Not a cancellation: nothing is pending for the next await. */
    CHECK_EQ(ck, corio_task_cancelling(corio_current_task()), 0);
    CHECK_EQ(ck, corio_sleep(0), 0);
    /* 0: only what is ready now. */
    CHECK_EQ(ck, corio_sock_recv_timeout(b, buf, sizeof buf, 0, 0), -ETIMEDOUT);
    CHECK_EQ(ck, corio_wait_fd_timeout(b, POLLIN, 0), -ETIMEDOUT);
    CHECK_EQ(ck, corio_sock_send(a, "hi", 2, 0), 2);
    CHECK(ck, corio_wait_fd_timeout(b, POLLIN, 5 * CORIO_SEC) & POLLIN);
    CHECK_EQ(ck, corio_sock_recv_timeout(b, buf, sizeof buf, 0, 0), 2);
    /* Data that arrives before the deadline ends the wait; the deadline
     * passing afterwards changes nothing (no stray completion, no timer left
     * on a stack frame that is gone: ASan watches). */
    CHECK_EQ(ck, corio_sock_send_timeout(a, "abc", 3, 0, 5 * MS), 3);
    CHECK_EQ(ck, corio_sock_recv_timeout(b, buf, sizeof buf, 0, 20 * MS), 3);
    CHECK_EQ(ck, corio_sleep(30 * MS), 0);
    t0 = corio_time_ns();
    CHECK_EQ(ck, corio_wait_fd_timeout(b, POLLIN, 20 * MS), -ETIMEDOUT);
    CHECK(ck, ms_since(t0) >= 19);
    /* A send that cannot progress: the peer never reads, the buffers fill. */
    static char big[1 << 16];
    ssize_t n;
    while ((n = corio_sock_send_timeout(a, big, sizeof big, 0, 20 * MS)) > 0) {
    }
    CHECK_EQ(ck, n, -ETIMEDOUT);
    /* The kernel may still grow the buffers (TCP autotuning), so a later
     * sendall can fit once or twice before one times out. */
    int tries = 0;
    while ((n = corio_sock_sendall_timeout(a, big, sizeof big, 20 * MS)) == (ssize_t)sizeof big &&
           ++tries < 64) {
    }
    CHECK_EQ(ck, n, -ETIMEDOUT);
    corio_close(a);
    corio_close(b);
    /* accept with nobody connecting */
    uint16_t port;
    int l = corio_tcp_listen("127.0.0.1", 0, 4, &port);
    CHECK(ck, l >= 0);
    t0 = corio_time_ns();
    CHECK_EQ(ck, corio_sock_accept_timeout(l, NULL, NULL, 25 * MS), -ETIMEDOUT);
    CHECK(ck, ms_since(t0) >= 24);
    int c = corio_tcp_connect_timeout("127.0.0.1", port, 5 * CORIO_SEC);
    CHECK(ck, c >= 0);
    int s = corio_sock_accept_timeout(l, NULL, NULL, 5 * CORIO_SEC);
    CHECK(ck, s >= 0);
    corio_close(c);
    corio_close(s);
    corio_close(l);
    return NULL;
}

static void io_sock_op_timeouts(void **state)
{
    (void)state;
    run_checks(1, op_timeout_main);
    run_checks(2, op_timeout_main);
}

/* A connect that hangs (see cancel_connect_main) ends at its deadline. */
static void *connect_timeout_main(void *arg)
{
    struct cancel *c = arg;
    uint16_t port;
    int l = corio_tcp_listen("127.0.0.1", 0, 0, &port);
    listen(l, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fill[8], nfill = 0;
    c->rc = 77;
    while (nfill < 8 && c->rc == 77) {
        int fd = corio_socket(AF_INET, SOCK_STREAM, 0);
        uint64_t t0 = corio_time_ns();
        int rc = corio_sock_connect_timeout(fd, (struct sockaddr *)&to, sizeof to, 50 * MS);
        if (rc == -ETIMEDOUT) {
            CHECK(&c->ck, ms_since(t0) >= 49 && ms_since(t0) < 2000);
            CHECK_EQ(&c->ck, corio_close(fd), 0);
            c->rc = 0;
        } else {
            CHECK_EQ(&c->ck, rc, 0);
            fill[nfill++] = fd;
        }
    }
    while (nfill > 0)
        corio_close(fill[--nfill]);
    corio_close(l);
    return NULL;
}

static void io_sock_connect_timeout(void **state)
{
    (void)state;
    for (unsigned w = 1; w <= 2; w++) {
        struct cancel c = {0};
        run_main_checked(w, connect_timeout_main, &c, &c.ck);
        if (c.rc == 77)
            skip();
    }
}

/* Many waiters with deadlines on one worker's ring or wheel at once; half
 * get their data first. Every one ends with its own outcome, none early. */
#define TIMED 200

struct timed {
    struct checks *ck;
    int fd;
    int64_t timeout;
    bool fed;
    atomic_int started;
};

static void *timed_waiter(void *arg)
{
    struct timed *t = arg;
    char buf[4];
    atomic_store(&t->started, 1);
    uint64_t t0 = corio_time_ns();
    ssize_t n = corio_sock_recv_timeout(t->fd, buf, sizeof buf, 0, t->timeout);
    if (t->fed) {
        CHECK_EQ(t->ck, n, 1);
    } else {
        CHECK_EQ(t->ck, n, -ETIMEDOUT);
        CHECK(t->ck, corio_time_ns() - t0 >= (uint64_t)t->timeout);
    }
    return NULL;
}

static void *timed_many_main(void *arg)
{
    struct checks *ck = arg;
    static struct timed ts[TIMED];
    int peers[TIMED];
    corio_task *tasks[TIMED];
    for (int i = 0; i < TIMED; i++) {
        int sv[2];
        CHECK_EQ(ck, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        bool fed = i % 2 == 0;   /* fed ones have time to spare: the feeding takes a while */
        ts[i] = (struct timed){.ck = ck, .fd = sv[0], .fed = fed,
                               .timeout = fed ? 2 * CORIO_SEC + i * MS : (1 + i % 20) * MS};
        peers[i] = sv[1];
        CHECK_EQ(ck, corio_spawn(&tasks[i], timed_waiter, &ts[i]), 0);
    }
    for (int i = 0; i < TIMED; i++)
        while (!atomic_load(&ts[i].started))
            corio_sleep(0);
    for (int i = 0; i < TIMED; i += 2)
        CHECK_EQ(ck, corio_sock_send(peers[i], "x", 1, 0), 1);
    for (int i = 0; i < TIMED; i++) {
        CHECK_EQ(ck, corio_await(tasks[i], NULL), 0);
        corio_task_unref(tasks[i]);
        corio_close(ts[i].fd);
        corio_close(peers[i]);
    }
    return NULL;
}

static void io_sock_many_op_timeouts(void **state)
{
    (void)state;
    run_checks(1, timed_many_main);
    run_checks(2, timed_many_main);
}

static void *cancel_timed_waiter(void *arg)
{
    struct timed *t = arg;
    char buf[4];
    atomic_store(&t->started, 1);
    CHECK_EQ(t->ck, corio_sock_recv_timeout(t->fd, buf, sizeof buf, 0, t->timeout), -ECANCELED);
    return NULL;
}

/* A cancellation wins over the deadline: -ECANCELED, never -ETIMEDOUT. */
static void *cancel_timed_main(void *arg)
{
    struct checks *ck = arg;
    int sv[2];
    CHECK_EQ(ck, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    struct timed t = {.ck = ck, .fd = sv[0], .timeout = 10 * CORIO_SEC};
    corio_task *task;
    CHECK_EQ(ck, corio_spawn(&task, cancel_timed_waiter, &t), 0);
    while (!atomic_load(&t.started))
        corio_sleep(0);
    corio_sleep(5 * MS);
    CHECK_EQ(ck, corio_task_cancel(task, NULL), true);
    CHECK_EQ(ck, corio_await(task, NULL), -ECANCELED);
    corio_task_unref(task);
    /* Bad input. */
    char buf[1];
    CHECK_EQ(ck, corio_sock_recv_timeout(sv[0], buf, 1, 0, -1), -EINVAL);
    CHECK_EQ(ck, corio_sock_send_timeout(sv[0], buf, 1, 0, -1), -EINVAL);
    CHECK_EQ(ck, corio_sock_sendall_timeout(sv[0], NULL, 1, MS), -EINVAL);
    CHECK_EQ(ck, corio_sock_accept_timeout(sv[0], NULL, NULL, -5), -EINVAL);
    CHECK_EQ(ck, corio_sock_connect_timeout(sv[0], NULL, 0, MS), -EINVAL);
    CHECK_EQ(ck, corio_wait_fd_timeout(sv[0], 0, MS), -EINVAL);
    CHECK_EQ(ck, corio_tcp_connect_timeout("127.0.0.1", 1, -1), -EINVAL);
    CHECK_EQ(ck, corio_sock_recv_timeout(-1, buf, 1, 0, MS), -EBADF);
    corio_close(sv[0]);
    corio_close(sv[1]);
    return NULL;
}

static void io_sock_op_timeout_cancel_and_errors(void **state)
{
    (void)state;
    run_checks(1, cancel_timed_main);
    run_checks(2, cancel_timed_main);
}

/* ---- add_reader / add_writer ---------------------------------------------- */

struct watcher {
    struct checks *ck;
    int fd;
    atomic_int calls;
    atomic_int bytes;
    int consume_after;   /* leave data unread for this many calls */
    int stop_after;      /* remove itself at this call (0: never) */
    atomic_int in_task;
    atomic_int remove_rc;
};

static void on_readable(void *arg)
{
    struct watcher *w = arg;
    if (corio_current_task())
        atomic_fetch_add(&w->in_task, 1);
    int c = atomic_fetch_add(&w->calls, 1) + 1;
    if (c <= w->consume_after)
        return;
    char buf[256];
    ssize_t n;
    while ((n = recv(w->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        atomic_fetch_add(&w->bytes, (int)n);
    if (n == 0)   /* EOF: asyncio callbacks remove themselves */
        atomic_store(&w->remove_rc, corio_remove_reader(w->fd));
}

static void on_writable(void *arg)
{
    struct watcher *w = arg;
    if (corio_current_task())
        atomic_fetch_add(&w->in_task, 1);
    int c = atomic_fetch_add(&w->calls, 1) + 1;
    if (c == w->stop_after)
        atomic_store(&w->remove_rc, corio_remove_writer(w->fd));
}

static void wait_calls(struct watcher *w, int n)
{
    for (int i = 0; i < 500 && atomic_load(&w->calls) < n; i++)
        corio_sleep(1 * MS);
}

static void wait_bytes(struct watcher *w, int n)
{
    for (int i = 0; i < 500 && atomic_load(&w->bytes) < n; i++)
        corio_sleep(1 * MS);
}

static void *reader_main(void *arg)
{
    struct checks *ck = arg;
    int a, b;
    if (pair_or_check(ck, &a, &b) < 0)
        return NULL;
    struct watcher w = {.ck = ck, .fd = b, .consume_after = 2};
    CHECK_EQ(ck, corio_add_reader(b, on_readable, &w), 0);
    corio_sleep(10 * MS);
    CHECK_EQ(ck, atomic_load(&w.calls), 0);   /* nothing to read yet */
    CHECK_EQ(ck, corio_sock_send(a, "abc", 3, 0), 3);
    wait_bytes(&w, 3);
    /* Level-triggered: the first two calls left the data unread. */
    CHECK_EQ(ck, atomic_load(&w.calls), 3);
    CHECK_EQ(ck, atomic_load(&w.bytes), 3);
    CHECK_EQ(ck, corio_sock_send(a, "defg", 4, 0), 4);
    wait_bytes(&w, 7);
    CHECK_EQ(ck, atomic_load(&w.bytes), 7);
    CHECK_EQ(ck, corio_remove_reader(b), 1);
    CHECK_EQ(ck, corio_remove_reader(b), 0);
    int calls = atomic_load(&w.calls);
    CHECK_EQ(ck, corio_sock_send(a, "h", 1, 0), 1);
    corio_sleep(20 * MS);
    CHECK_EQ(ck, atomic_load(&w.calls), calls);   /* removed: never again */

    /* Again, until EOF, where the callback removes itself. */
    struct watcher w2 = {.ck = ck, .fd = b};
    CHECK_EQ(ck, corio_add_reader(b, on_readable, &w2), 0);
    wait_bytes(&w2, 1);
    CHECK_EQ(ck, corio_sock_shutdown(a, SHUT_WR), 0);
    for (int i = 0; i < 500 && atomic_load(&w2.remove_rc) == 0; i++)
        corio_sleep(1 * MS);
    CHECK_EQ(ck, atomic_load(&w2.remove_rc), 1);
    CHECK_EQ(ck, atomic_load(&w2.in_task) + atomic_load(&w.in_task), 0);
    CHECK_EQ(ck, corio_remove_reader(b), 0);
    corio_close(a);
    corio_close(b);
    return NULL;
}

static void io_sock_add_reader(void **state)
{
    (void)state;
    run_checks(1, reader_main);
    run_checks(2, reader_main);
}

static void count_other(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void *writer_main(void *arg)
{
    struct checks *ck = arg;
    int a, b;
    if (pair_or_check(ck, &a, &b) < 0)
        return NULL;
    struct watcher w = {.ck = ck, .fd = a, .stop_after = 5};
    CHECK_EQ(ck, corio_add_writer(a, on_writable, &w), 0);
    wait_calls(&w, 5);
    corio_sleep(20 * MS);
    CHECK_EQ(ck, atomic_load(&w.calls), 5);
    CHECK_EQ(ck, atomic_load(&w.remove_rc), 1);
    CHECK_EQ(ck, corio_remove_writer(a), 0);
    CHECK_EQ(ck, atomic_load(&w.in_task), 0);

    /* Adding again replaces the callback; a reader and a writer coexist. */
    atomic_int other = 0;
    struct watcher w2 = {.ck = ck, .fd = a};
    CHECK_EQ(ck, corio_add_writer(a, on_writable, &w2), 0);
    CHECK_EQ(ck, corio_add_writer(a, count_other, &other), 0);
    struct watcher r = {.ck = ck, .fd = a};
    CHECK_EQ(ck, corio_add_reader(a, on_readable, &r), 0);
    for (int i = 0; i < 500 && atomic_load(&other) < 3; i++)
        corio_sleep(1 * MS);
    CHECK(ck, atomic_load(&other) >= 3);
    CHECK(ck, atomic_load(&w2.calls) <= 1);   /* at most a round already scheduled */
    CHECK_EQ(ck, corio_sock_send(b, "z", 1, 0), 1);
    wait_bytes(&r, 1);
    CHECK_EQ(ck, atomic_load(&r.bytes), 1);
    CHECK_EQ(ck, corio_remove_writer(a), 1);
    CHECK_EQ(ck, corio_remove_reader(a), 1);
    corio_close(a);
    corio_close(b);
    return NULL;
}

static void io_sock_add_writer(void **state)
{
    (void)state;
    run_checks(1, writer_main);
    run_checks(2, writer_main);
}

static void add_from_callback(void *arg)
{
    struct watcher *w = arg;
    CHECK_EQ(w->ck, corio_add_reader(w->fd, on_readable, w), 0);
}

/* The runtime ends with watchers registered (the shutdown cancels their
 * tasks; run_with() asserts none is left, ASan that nothing leaked). */
struct leftover {
    struct checks ck;
    int a, b;
    struct watcher w, wr;
};

static void *left_registered_main(void *arg)
{
    struct leftover *l = arg;
    struct checks *ck = &l->ck;
    if (pair_or_check(ck, &l->a, &l->b) < 0)
        return NULL;
    l->w = (struct watcher){.ck = ck, .fd = l->a};
    l->wr = (struct watcher){.ck = ck, .fd = l->b, .consume_after = 1000000};
    CHECK_EQ(ck, corio_add_writer(l->a, on_writable, &l->w), 0);
    CHECK_EQ(ck, corio_call_soon(NULL, add_from_callback, &l->wr), 0);
    CHECK_EQ(ck, corio_sock_send(l->a, "q", 1, 0), 1);   /* the reader spins: level-triggered */
    wait_calls(&l->wr, 3);
    CHECK(ck, atomic_load(&l->wr.calls) >= 3);
    /* They are tasks of the runtime, named after what they watch. */
    corio_task **list;
    int n = corio_all_tasks(&list);
    int found = 0;
    for (int i = 0; i < n; i++)
        if (!strncmp(corio_task_name(list[i]), "corio-reader-", 13) ||
            !strncmp(corio_task_name(list[i]), "corio-writer-", 13))
            found++;
    corio_task_list_free(list, n);
    CHECK_EQ(ck, found, 2);
    return NULL;   /* the descriptors are closed after the run */
}

static void io_sock_watchers_at_shutdown(void **state)
{
    (void)state;
    for (unsigned wk = 1; wk <= 2; wk++) {
        struct leftover l = {.a = -1, .b = -1};
        run_main_checked(wk, left_registered_main, &l, &l.ck);
        assert_int_equal(close(l.a), 0);
        assert_int_equal(close(l.b), 0);
    }
}

/* add_* then remove_* before the watch's task ran its first step: the task,
 * cancelled that early, never runs its body, and the watch, its task and the
 * runtime must still go (ASan's leak check; a leaked watch also keeps the
 * runtime's shell, so each run would leak one). The same with the runtime
 * ending before that first step (the shutdown cancels it). On one worker
 * nothing runs between an add and its remove. */
static void *removed_before_step_main(void *arg)
{
    struct checks *ck = arg;
    int a, b;
    if (pair_or_check(ck, &a, &b) < 0)
        return NULL;
    bool one = corio_rt_workers(corio_get_running_rt()) == 1;
    atomic_int n = 0;
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(ck, corio_add_reader(b, count_other, &n), 0);
        CHECK_EQ(ck, corio_add_writer(a, count_other, &n), 0);
        CHECK_EQ(ck, corio_remove_reader(b), 1);
        CHECK_EQ(ck, corio_remove_writer(a), 1);
        CHECK_EQ(ck, corio_remove_reader(b), 0);
        CHECK_EQ(ck, corio_remove_writer(a), 0);
    }
    /* Both at once on one descriptor, removed in the other order. */
    CHECK_EQ(ck, corio_add_writer(a, count_other, &n), 0);
    CHECK_EQ(ck, corio_add_reader(a, count_other, &n), 0);
    CHECK_EQ(ck, corio_remove_writer(a), 1);
    CHECK_EQ(ck, corio_remove_reader(a), 1);
    corio_sleep(5 * MS);
    if (one)
        CHECK_EQ(ck, atomic_load(&n), 0);   /* removed before any round */

    /* A fresh add on the same descriptors works as a first one. */
    CHECK_EQ(ck, corio_sock_send(a, "xy", 2, 0), 2);
    struct watcher r = {.ck = ck, .fd = b};
    CHECK_EQ(ck, corio_add_reader(b, on_readable, &r), 0);
    wait_bytes(&r, 2);
    CHECK_EQ(ck, atomic_load(&r.bytes), 2);
    CHECK(ck, atomic_load(&r.calls) >= 1);
    CHECK_EQ(ck, corio_remove_reader(b), 1);
    struct watcher w = {.ck = ck, .fd = a, .stop_after = 3};
    CHECK_EQ(ck, corio_add_writer(a, on_writable, &w), 0);
    wait_calls(&w, 3);
    corio_sleep(10 * MS);
    CHECK_EQ(ck, atomic_load(&w.calls), 3);
    CHECK_EQ(ck, atomic_load(&w.remove_rc), 1);
    CHECK_EQ(ck, corio_remove_writer(a), 0);
    if (one)
        CHECK_EQ(ck, atomic_load(&n), 0);
    corio_close(a);
    corio_close(b);
    return NULL;
}

struct unstarted {
    struct checks ck;
    int a, b;
    atomic_int n;
};

static void add_three(struct unstarted *u)
{
    CHECK_EQ(&u->ck, corio_add_reader(u->b, count_other, &u->n), 0);
    CHECK_EQ(&u->ck, corio_add_writer(u->a, count_other, &u->n), 0);
    CHECK_EQ(&u->ck, corio_add_reader(u->a, count_other, &u->n), 0);
}

/* Registered, then main returns at once: the shutdown cancels the watches
 * (before their first step when the runner gets there first). */
static void *left_unstarted_main(void *arg)
{
    struct unstarted *u = arg;
    if (pair_or_check(&u->ck, &u->a, &u->b) < 0)
        return NULL;
    add_three(u);
    return NULL;   /* the descriptors are closed after the run */
}

static void io_sock_watch_removed_before_first_step(void **state)
{
    (void)state;
    for (unsigned wk = 1; wk <= 2; wk++) {
        for (int i = 0; i < 3; i++)
            run_checks(wk, removed_before_step_main);
        for (int i = 0; i < 3; i++) {
            struct unstarted u = {.a = -1, .b = -1};
            run_main_checked(wk, left_unstarted_main, &u, &u.ck);
            assert_int_equal(close(u.a), 0);
            assert_int_equal(close(u.b), 0);
        }
    }
}

static void *fd_errors_main(void *arg)
{
    struct checks *ck = arg;
    atomic_int n = 0;
    CHECK_EQ(ck, corio_add_reader(-1, count_other, &n), -EINVAL);
    CHECK_EQ(ck, corio_add_writer(-1, count_other, &n), -EINVAL);
    CHECK_EQ(ck, corio_add_reader(0, NULL, &n), -EINVAL);
    CHECK_EQ(ck, corio_add_writer(0, NULL, &n), -EINVAL);
    CHECK_EQ(ck, corio_remove_reader(-1), -EINVAL);
    CHECK_EQ(ck, corio_remove_writer(-1), -EINVAL);
    CHECK_EQ(ck, corio_remove_reader(0), 0);
    CHECK_EQ(ck, corio_remove_writer(0), 0);
    return NULL;
}

static void io_sock_fd_watch_errors(void **state)
{
    (void)state;
    run_checks(1, fd_errors_main);
    atomic_int n = 0;
    assert_int_equal(corio_add_reader(0, count_other, &n), -EPERM);
    assert_int_equal(corio_add_writer(0, count_other, &n), -EPERM);
    assert_int_equal(corio_remove_reader(0), -EPERM);
    assert_int_equal(corio_remove_writer(0), -EPERM);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(io_sock_echo_one_byte_writes),
        cmocka_unit_test(io_sock_large_transfer_partial_sends),
        cmocka_unit_test(io_sock_peer_reset),
        cmocka_unit_test(io_sock_connection_refused),
        cmocka_unit_test(io_sock_thousand_connections),
        cmocka_unit_test(io_sock_accept_emfile),
        cmocka_unit_test(io_sock_cancel_accept_recv_sleep),
        cmocka_unit_test(io_sock_cancel_connect),
        cmocka_unit_test(io_sock_cancel_race_keeps_data),
        cmocka_unit_test(io_sock_udp_ipv4),
        cmocka_unit_test(io_sock_udp_ipv6),
        cmocka_unit_test(io_sock_wait_fd_readiness),
        cmocka_unit_test(io_sock_getaddrinfo),
        cmocka_unit_test(io_sock_bad_input),
        cmocka_unit_test(io_sock_recv_timeout_scope),
        cmocka_unit_test(io_sock_op_timeouts),
        cmocka_unit_test(io_sock_connect_timeout),
        cmocka_unit_test(io_sock_many_op_timeouts),
        cmocka_unit_test(io_sock_op_timeout_cancel_and_errors),
        cmocka_unit_test(io_sock_add_reader),
        cmocka_unit_test(io_sock_add_writer),
        cmocka_unit_test(io_sock_watchers_at_shutdown),
        cmocka_unit_test(io_sock_watch_removed_before_first_step),
        cmocka_unit_test(io_sock_fd_watch_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
