/* perf/peers/libuv/main.c - the libuv peer of corio-bench: W4 timers, W5
 * offload, W6 xthread and the W8 http and W9 echo servers, as
 * shared/bench/WORKLOADS.md defines them.
 *
 * Usage: peer-libuv W4|W5|W6 [N] [--workers K]
 *        peer-libuv W8|W9 serve [--port P] [--workers 1]
 *
 * libuv is single-threaded: one uv_loop_t on the calling thread. The
 * servers refuse any --workers other than 1 (WORKLOADS.md: single-threaded
 * runtimes run as they are); W4-W6 accept --workers K and ignore it. libuv
 * has no tasks, so W1-W3, W7 (and yield) have no libuv equivalent; W4 is N
 * uv_timer_t, one per "task".
 *
 * W4: every timer is started from the loop's thread before uv_run; its
 * callback records its lateness (uv_hrtime after - uv_hrtime just before
 * uv_timer_start - delay). libuv's timers run on the loop's cached
 * millisecond clock, which can be up to 1 ms behind uv_hrtime: a timer that
 * fires before its full delay has passed is restarted for the rest (what a
 * program that needs "at least delay" must do), so that no timer wakes early.
 *
 * W5 (perf/bench/offload.c): N blocking calls through uv_queue_work, on
 * libuv's thread pool at its default size (UV_THREADPOOL_SIZE unset: 4
 * threads; the RESULT line says threadpool=<size>), 1000 in flight: 1000
 * uv_work_t are queued from the loop's thread before uv_run, and each one's
 * after_work callback (on the loop) adds its result to the sum and queues
 * the next call index until N are claimed. Call i is WORKLOADS.md's (x =
 * i+1, 200 rounds of xorshift). The time runs from the first submission to
 * uv_run's return; the sum is checked against a direct computation after.
 *
 * W6 (perf/bench/xthread.c): 4 plain pthreads each submit N/4 trivial jobs
 * ("return x+1") to the running loop and block on each result in turn, in
 * libuv's idiom: the request (on the thread's stack) goes on a
 * mutex-protected list, uv_async_send wakes the loop, the async callback
 * takes the whole list, computes x+1 and posts each request's semaphore
 * (one uv_sem_t per thread), which the submitter waits on. The threads are
 * started from the running loop (a 0 ms timer), and a joiner thread joins
 * them and then closes the loop's handles through a second uv_async_t, so
 * that uv_run returns. The time runs from the threads' common start (a
 * barrier) to the last one's end, as corio's; each thread checks every
 * result.
 *
 * W8/W9: the servers of perf/tools' contract (serve_common.h: the listening
 * socket, the LISTENING line, the HTTP framing and response): one loop, a
 * uv_tcp_t per connection with TCP_NODELAY, a read buffer per connection;
 * answers (echoes) go out with uv_try_write, and only what the socket does
 * not take goes to uv_write with a copy. SIGTERM/SIGINT (uv_signal_t) exit 0.
 *
 * Prints: RESULT workload=W4 peer=libuv n=<N> wall_s=<s> rate=<timers/s> max_late_ms=<ms>
 *         RESULT workload=W5 peer=libuv n=<N> wall_s=<s> rate=<calls/s> threadpool=<size>
 *         RESULT workload=W6 peer=libuv n=<N> wall_s=<s> rate=<submits/s> threads=4
 * and exits 1 on a wrong result.
 */
#define _GNU_SOURCE /* memmem, in serve_common.h */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
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
    fprintf(stderr, "usage: peer-libuv W4|W5|W6 [N] [--workers K]\n"
                    "       peer-libuv W8|W9 serve [--port P] [--workers 1]\n");
    exit(2);
}

/* The RESULT line; wall_ns 0 (below the clock's resolution) keeps the rate
 * finite. */
static void print_result(const char *w, uint64_t n, uint64_t wall_ns, const char *extra)
{
    double wall = wall_ns ? (double)wall_ns / 1e9 : 1e-9;
    printf("RESULT workload=%s peer=libuv n=%" PRIu64 " wall_s=%.6f rate=%.0f %s\n", w, n, wall,
           (double)n / wall, extra);
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
    char extra[48];
    snprintf(extra, sizeof extra, "max_late_ms=%.3f", (double)worst / 1e6);
    print_result("W4", n, wall_ns, extra);
    return 0;
}

/* --- W5 ------------------------------------------------------------------ */

#define W5_IN_FLIGHT 1000 /* WORKLOADS.md W5 */

static uint64_t blocking_call(uint64_t i)
{
    uint64_t x = i + 1;
    for (int k = 0; k < 200; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

struct w5_call {
    uv_work_t req;
    uint64_t i;      /* the call's index; written on the loop before queueing */
    uint64_t result; /* written on a pool thread, read in after_work */
};

static uint64_t w5_n, w5_next, w5_sum, w5_done; /* the loop's thread only */

static void w5_work(uv_work_t *req)
{
    struct w5_call *c = (struct w5_call *)req;
    c->result = blocking_call(c->i);
}

static void w5_after(uv_work_t *req, int status);

static void w5_submit(struct w5_call *c)
{
    c->i = w5_next++;
    int rc = uv_queue_work(uv_default_loop(), &c->req, w5_work, w5_after);
    if (rc < 0)
        die_uv("W5: uv_queue_work", rc);
}

static void w5_after(uv_work_t *req, int status)
{
    struct w5_call *c = (struct w5_call *)req;
    if (status < 0)
        die_uv("W5: a call failed", status);
    w5_sum += c->result;
    w5_done++;
    if (w5_next < w5_n)
        w5_submit(c);
}

/* libuv's pool size: UV_THREADPOOL_SIZE, else 4; at least 1, at most 1024
 * (src/threadpool.c of libuv 1.44). For the RESULT line only. */
static unsigned threadpool_size(void)
{
    const char *v = getenv("UV_THREADPOOL_SIZE");
    unsigned k = v ? (unsigned)atoi(v) : 4;
    if (k == 0)
        k = 1;
    if (k > 1024)
        k = 1024;
    return k;
}

static int w5_offload(uint64_t n)
{
    uv_loop_t *loop = uv_default_loop();
    size_t calls = n < W5_IN_FLIGHT ? (size_t)n : W5_IN_FLIGHT;
    struct w5_call *cs = calloc(calls, sizeof *cs);
    if (!cs) {
        fprintf(stderr, "peer-libuv: W5: out of memory\n");
        return 1;
    }
    w5_n = n;
    uint64_t t0 = uv_hrtime();
    for (size_t k = 0; k < calls; k++)
        w5_submit(&cs[k]);
    uv_run(loop, UV_RUN_DEFAULT);
    uint64_t wall_ns = uv_hrtime() - t0;
    free(cs);
    uint64_t want = 0;
    for (uint64_t i = 0; i < n; i++)
        want += blocking_call(i);
    if (w5_done != n || w5_sum != want) {
        fprintf(stderr,
                "peer-libuv: W5: wrong result: %" PRIu64 " calls done, sum %" PRIu64
                ", want %" PRIu64 " calls, sum %" PRIu64 "\n",
                w5_done, w5_sum, n, want);
        return 1;
    }
    char extra[32];
    snprintf(extra, sizeof extra, "threadpool=%u", threadpool_size());
    print_result("W5", n, wall_ns, extra);
    return 0;
}

/* --- W6 ------------------------------------------------------------------ */

#define W6_THREADS 4 /* WORKLOADS.md W6 */

struct w6_req {
    struct w6_req *next; /* on the pending list, under w6.lock */
    uint64_t x;
    uint64_t result;     /* written by the loop before posting done */
    uv_sem_t *done;      /* the submitting thread's semaphore */
};

static struct {
    uv_async_t wake;    /* submitters -> loop: the list has requests */
    uv_async_t finish;  /* joiner -> loop: all submitters joined */
    uv_timer_t start;   /* starts the threads once the loop runs */
    uv_mutex_t lock;
    struct w6_req *head, **tail; /* the pending list, FIFO, under lock */
    pthread_barrier_t go;
    pthread_t threads[W6_THREADS], joiner;
    uv_sem_t done[W6_THREADS]; /* one per submitter: its result is in */
    uint64_t per_thread;
    _Atomic uint64_t t0, t1;
    _Atomic int failed;
} w6;

static void w6_drain(uv_async_t *a)
{
    (void)a;
    uv_mutex_lock(&w6.lock);
    struct w6_req *r = w6.head;
    w6.head = NULL;
    w6.tail = &w6.head;
    uv_mutex_unlock(&w6.lock);
    while (r) {
        struct w6_req *next = r->next; /* r is the submitter's once posted */
        r->result = r->x + 1;
        uv_sem_post(r->done);
        r = next;
    }
}

static void *w6_submitter(void *arg)
{
    uv_sem_t *done = arg;
    struct w6_req req;
    pthread_barrier_wait(&w6.go);
    uint64_t t0 = uv_hrtime(), zero = 0;
    atomic_compare_exchange_strong(&w6.t0, &zero, t0);
    for (uint64_t x = 0; x < w6.per_thread; x++) {
        req.next = NULL;
        req.x = x;
        req.result = 0;
        req.done = done;
        uv_mutex_lock(&w6.lock);
        *w6.tail = &req;
        w6.tail = &req.next;
        uv_mutex_unlock(&w6.lock);
        int rc = uv_async_send(&w6.wake);
        if (rc < 0)
            die_uv("W6: uv_async_send", rc);
        uv_sem_wait(done);
        if (req.result != x + 1) {
            fprintf(stderr, "peer-libuv: W6: wrong result: %" PRIu64 " for %" PRIu64 "\n",
                    req.result, x);
            atomic_store(&w6.failed, 1);
            break;
        }
    }
    uint64_t t1 = uv_hrtime(), prev = atomic_load(&w6.t1);
    while (prev < t1 && !atomic_compare_exchange_weak(&w6.t1, &prev, t1)) {
    }
    return NULL;
}

static void *w6_join(void *arg)
{
    (void)arg;
    for (int i = 0; i < W6_THREADS; i++)
        pthread_join(w6.threads[i], NULL);
    int rc = uv_async_send(&w6.finish);
    if (rc < 0)
        die_uv("W6: uv_async_send", rc);
    return NULL;
}

static void w6_finish(uv_async_t *a)
{
    (void)a;
    uv_close((uv_handle_t *)&w6.wake, NULL);
    uv_close((uv_handle_t *)&w6.finish, NULL);
}

static void w6_start(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
    for (int i = 0; i < W6_THREADS; i++)
        if (pthread_create(&w6.threads[i], NULL, w6_submitter, &w6.done[i])) {
            fprintf(stderr, "peer-libuv: W6: pthread_create failed\n");
            exit(1);
        }
    if (pthread_create(&w6.joiner, NULL, w6_join, NULL)) {
        fprintf(stderr, "peer-libuv: W6: pthread_create failed\n");
        exit(1);
    }
}

static int w6_xthread(uint64_t n)
{
    uv_loop_t *loop = uv_default_loop();
    w6.per_thread = n / W6_THREADS;
    if (w6.per_thread == 0) {
        fprintf(stderr, "peer-libuv: W6: N must be at least %d\n", W6_THREADS);
        return 1;
    }
    w6.tail = &w6.head;
    int rc;
    if ((rc = uv_mutex_init(&w6.lock)) < 0)
        die_uv("W6: uv_mutex_init", rc);
    for (int i = 0; i < W6_THREADS; i++)
        if ((rc = uv_sem_init(&w6.done[i], 0)) < 0)
            die_uv("W6: uv_sem_init", rc);
    if (pthread_barrier_init(&w6.go, NULL, W6_THREADS)) {
        fprintf(stderr, "peer-libuv: W6: pthread_barrier_init failed\n");
        return 1;
    }
    if ((rc = uv_async_init(loop, &w6.wake, w6_drain)) < 0 ||
        (rc = uv_async_init(loop, &w6.finish, w6_finish)) < 0)
        die_uv("W6: uv_async_init", rc);
    uv_timer_init(loop, &w6.start);
    if ((rc = uv_timer_start(&w6.start, w6_start, 0, 0)) < 0)
        die_uv("W6: uv_timer_start", rc);
    uv_run(loop, UV_RUN_DEFAULT);
    pthread_join(w6.joiner, NULL);
    pthread_barrier_destroy(&w6.go);
    for (int i = 0; i < W6_THREADS; i++)
        uv_sem_destroy(&w6.done[i]);
    uv_mutex_destroy(&w6.lock);
    if (atomic_load(&w6.failed))
        return 1;
    /* n= is the N asked for; the threads made per_thread * 4 submits (N
     * rounded down to a multiple of 4), as corio's and tokio's do. */
    print_result("W6", n, atomic_load(&w6.t1) - atomic_load(&w6.t0), "threads=4");
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
    uint64_t n;
    if (strcmp(argv[1], "W4") == 0 || strcmp(argv[1], "W5") == 0)
        n = 100000;
    else if (strcmp(argv[1], "W6") == 0)
        n = 200000;
    else
        usage();
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
    if (argv[1][1] == '5')
        return w5_offload(n);
    if (argv[1][1] == '6')
        return w6_xthread(n);
    return w4_timers(n);
}
