/* perf/bench/http.c - W8: the HTTP/1.1 keep-alive hello-world server.
 *
 * One task per connection, on the socket calls themselves (corio_sock_recv,
 * corio_sock_sendall; no stream layer: this is the speed path). A request is
 * a header block ending in "\r\n\r\n" (W8's GETs have no body); the task
 * counts the complete ones in what it has received, pipelined ones included,
 * answers each with the same 200 response carrying the 13-byte body
 * "Hello, World!", and keeps the incomplete rest for the next receive. A
 * connection ends when the peer closes it, on an error, or when one request
 * head does not fit in the receive buffer (no W8 client sends one).
 *
 * The answers to a batch of pipelined requests go out in one send from a
 * table of RESP_BATCH ready-made responses, built once before the runtime
 * starts and read-only afterwards.
 */
#include <string.h>
#include <sys/types.h>

#include "bench.h"

static const char http_response[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
#define RESP_LEN (sizeof http_response - 1)
#define RESP_BATCH 64   /* responses per send: ~5 KiB, above any wrk pipeline depth */
#define IN_BUF 4096     /* one request head must fit; wrk's is ~40 bytes */

static char responses[RESP_BATCH * RESP_LEN];

/* Counts the complete request heads at the start of buf[0..len); returns the
 * bytes they take and their number in *count. */
static size_t http_requests(const char *buf, size_t len, unsigned *count)
{
    size_t used = 0;
    unsigned n = 0;
    const char *end;
    while ((end = memmem(buf + used, len - used, "\r\n\r\n", 4))) {
        used = (size_t)(end - buf) + 4;
        n++;
    }
    *count = n;
    return used;
}

static int answer(int fd, unsigned count)
{
    while (count) {
        unsigned k = count < RESP_BATCH ? count : RESP_BATCH;
        ssize_t n = corio_sock_sendall(fd, responses, k * RESP_LEN);
        if (n < 0)
            return (int)n;
        count -= k;
    }
    return 0;
}

static void *http_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char in[IN_BUF];
    size_t have = 0;
    while (have < sizeof in) {
        ssize_t r = corio_sock_recv(fd, in + have, sizeof in - have, 0);
        if (r <= 0)
            break;   /* closed by the peer, reset, or cancelled */
        have += (size_t)r;
        unsigned count;
        size_t used = http_requests(in, have, &count);
        if (count && answer(fd, count) < 0)
            break;
        memmove(in, in + used, have - used);
        have -= used;
    }
    corio_close(fd);
    return NULL;
}

void bench_http(const struct bench_args *a)
{
    for (size_t i = 0; i < RESP_BATCH; i++)
        memcpy(responses + i * RESP_LEN, http_response, RESP_LEN);
    bench_serve(a, http_conn);
}
