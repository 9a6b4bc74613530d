/* perf/peers/libuv/main.c - the libuv peer of corio-bench: W4 timers and the
 * W8 http and W9 echo servers, as shared/bench/WORKLOADS.md defines them.
 *
 * Usage: peer-libuv W4 [N]
 *        peer-libuv W8|W9 serve [--port P] [--workers 1]
 *
 * libuv is single-threaded: one uv_loop_t on the calling thread, and any
 * --workers other than 1 is refused (WORKLOADS.md: single-threaded runtimes
 * run as they are). libuv has no tasks, so W1-W3, W7 (and yield) have no
 * libuv equivalent; W4 is N uv_timer_t, one per "task".
 *
 * W4: every timer is started from the loop's thread before uv_run; its
 * callback records its lateness (uv_hrtime after - uv_hrtime just before
 * uv_timer_start - delay). libuv's timers run on the loop's cached
 * millisecond clock, which can be up to 1 ms behind uv_hrtime: a timer that
 * fires before its full delay has passed is restarted for the rest (what a
 * program that needs "at least delay" must do), so that no timer wakes early.
 *
 * W8/W9: the servers of perf/tools' contract (serve_common.h: the listening
 * socket, the LISTENING line, the HTTP framing and response): one loop, a
 * uv_tcp_t per connection with TCP_NODELAY, a read buffer per connection;
 * answers (echoes) go out with uv_try_write, and only what the socket does
 * not take goes to uv_write with a copy. SIGTERM/SIGINT (uv_signal_t) exit 0.
 *
 * Prints: RESULT workload=W4 peer=libuv n=<N> wall_s=<s> rate=<timers/s> max_late_ms=<ms>
 */
#define _GNU_SOURCE /* memmem, in serve_common.h */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "../../tools/serve_common.h"

static void die_uv(const char *what, int rc)
{
    fprintf(stderr, "peer-libuv: %s: %s\n", what, uv_strerror(rc));
    exit(1);
}

static void usage(void)
{
    fprintf(stderr, "usage: peer-libuv W4 [N]\n"
                    "       peer-libuv W8|W9 serve [--port P] [--workers 1]\n");
    exit(2);
}

/* --- W4 ------------------------------------------------------------------ */

struct w4_timer {
    uv_timer_t t;
    uint64_t before_ns;
    uint64_t delay_ms;
    uint64_t late_ns;
    int fired;
};

static void w4_fire(uv_timer_t *t)
{
    struct w4_timer *w = (struct w4_timer *)t;
    uint64_t elapsed = uv_hrtime() - w->before_ns;
    uint64_t want = w->delay_ms * 1000000u;
    if (elapsed < want) { /* the loop's ms clock ran behind: wait for the rest */
        uint64_t rest_ms = (want - elapsed + 999999u) / 1000000u;
        uv_timer_start(t, w4_fire, rest_ms, 0);
        return;
    }
    w->late_ns = elapsed - want;
    w->fired = 1;
    uv_close((uv_handle_t *)t, NULL);
}

static int w4_timers(uint64_t n)
{
    uv_loop_t *loop = uv_default_loop();
    struct w4_timer *ts = calloc(n, sizeof *ts);
    if (!ts) {
        fprintf(stderr, "peer-libuv: W4: no memory for %" PRIu64 " timers\n", n);
        return 1;
    }
    uint64_t s = 42;
    for (uint64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        ts[i].delay_ms = (s >> 33) % 100;
    }
    uv_update_time(loop);
    uint64_t t0 = uv_hrtime();
    for (uint64_t i = 0; i < n; i++) {
        uv_timer_init(loop, &ts[i].t);
        ts[i].before_ns = uv_hrtime();
        int rc = uv_timer_start(&ts[i].t, w4_fire, ts[i].delay_ms, 0);
        if (rc < 0)
            die_uv("uv_timer_start", rc);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uint64_t wall_ns = uv_hrtime() - t0;
    uint64_t worst = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (!ts[i].fired) {
            fprintf(stderr, "peer-libuv: W4: wrong result: timer %" PRIu64 " never fired\n", i);
            return 1;
        }
        if (ts[i].late_ns > worst)
            worst = ts[i].late_ns;
    }
    free(ts);
    double wall = wall_ns ? (double)wall_ns / 1e9 : 1e-9;
    printf("RESULT workload=W4 peer=libuv n=%" PRIu64 " wall_s=%.6f rate=%.0f max_late_ms=%.3f\n",
           n, wall, (double)n / wall, (double)worst / 1e6);
    return 0;
}

/* --- W8/W9 --------------------------------------------------------------- */

#define IN_SIZE 16384

struct conn {
    uv_tcp_t tcp;
    size_t in_len;
    char in[IN_SIZE];
};

static int http_mode; /* 1: W8, 0: W9 */
static char *http_batch; /* responses for one read's requests */
static size_t http_batch_cap;

struct pending_write {
    uv_write_t req;
    char data[];
};

static void conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void conn_close(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void write_done(uv_write_t *req, int status)
{
    struct pending_write *p = (struct pending_write *)req;
    if (status < 0)
        conn_close(req->handle->data);
    free(p);
}

/* Sends buf[0..len): uv_try_write, then uv_write of a copy of the rest. */
static void conn_send(struct conn *c, const char *buf, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int k = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (k == UV_EAGAIN)
        k = 0;
    if (k < 0) {
        conn_close(c);
        return;
    }
    if ((size_t)k == len)
        return;
    size_t rest = len - (size_t)k;
    struct pending_write *p = malloc(sizeof *p + rest);
    if (!p)
        serve_die("out of memory");
    memcpy(p->data, buf + k, rest);
    b = uv_buf_init(p->data, (unsigned)rest);
    int rc = uv_write(&p->req, (uv_stream_t *)&c->tcp, &b, 1, write_done);
    if (rc < 0) {
        free(p);
        conn_close(c);
    }
}

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)hint;
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(IN_SIZE - c->in_len));
}

static void http_answer(struct conn *c)
{
    unsigned nreq;
    size_t used = http_requests(c->in, c->in_len, &nreq);
    if (!nreq) {
        if (c->in_len == IN_SIZE) /* a header over 16 KiB: not our client */
            conn_close(c);
        return;
    }
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    size_t need = (size_t)nreq * HTTP_RESPONSE_LEN;
    if (need > http_batch_cap) {
        free(http_batch);
        http_batch_cap = need * 2;
        if (!(http_batch = malloc(http_batch_cap)))
            serve_die("out of memory");
    }
    for (unsigned i = 0; i < nreq; i++)
        memcpy(http_batch + i * HTTP_RESPONSE_LEN, http_response, HTTP_RESPONSE_LEN);
    conn_send(c, http_batch, need);
}

static void conn_read(uv_stream_t *s, ssize_t k, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (k < 0) {
        conn_close(c);
        return;
    }
    if (k == 0)
        return;
    if (http_mode) {
        c->in_len += (size_t)k;
        http_answer(c);
    } else {
        conn_send(c, c->in, (size_t)k); /* c->in_len stays 0 */
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    struct conn *c = malloc(sizeof *c);
    if (!c)
        serve_die("out of memory");
    c->in_len = 0;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
    if (rc < 0)
        conn_close(c);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    fflush(NULL);
    exit(0);
}

static int serve(int argc, char **argv, int http)
{
    int port = serve_parse_args(argc, argv); /* "W8 serve --port P --workers 1" */
    uv_loop_t *loop = uv_default_loop();
    signal(SIGPIPE, SIG_IGN);
    http_mode = http;
    uv_signal_t sig_term, sig_int;
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    int fd = serve_listen(port); /* prints LISTENING port=<P> */
    int rc = uv_tcp_open(&server, fd);
    if (rc < 0)
        die_uv("uv_tcp_open", rc);
    if ((rc = uv_listen((uv_stream_t *)&server, 4096, on_connection)) < 0)
        die_uv("uv_listen", rc);
    uv_run(loop, UV_RUN_DEFAULT);
    fprintf(stderr, "peer-libuv: the loop stopped\n");
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    if (strcmp(argv[1], "W8") == 0 || strcmp(argv[1], "W9") == 0) {
        if (argc < 3 || strcmp(argv[2], "serve") != 0)
            usage();
        return serve(argc, argv, argv[1][1] == '8');
    }
    if (strcmp(argv[1], "W4") != 0)
        usage();
    uint64_t n = 100000;
    for (int i = 2; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--workers") == 0) { /* accepted, ignored: one loop */
            if (++i == argc)
                usage();
            continue;
        }
        if (argv[i][0] == '-' || argv[i][0] == '\0')
            usage();
        unsigned long long v = strtoull(argv[i], &end, 10);
        if (*end != '\0' || v == 0)
            usage();
        n = v;
    }
    return w4_timers(n);
}
