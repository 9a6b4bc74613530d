/* pool/process_child.c - the function table, and the worker side of a
 * process pool.
 *
 * The table is a list of static registrations linked by constructors
 * before main() (CORIO_PROCESS_FUNCTION), read-only afterwards, so lookups
 * take no lock. Both the pool and its workers use it: they are the same
 * program.
 *
 * A worker is this program spawned with PP_ENV set and its socket on
 * PP_CHILD_FD. The first unprioritized constructor that
 * CORIO_PROCESS_FUNCTION emitted runs corio__process_child_maybe_serve():
 * every prioritized (101) registration of the executable and of the
 * libraries it links has run by then, and main() has not. It removes PP_ENV
 * (a process the function spawns is no worker), then serves: blocking reads
 * and writes on its only thread, one request at a time (process_wire.h),
 * until the pool closes its end; then _exit(0), without running main(),
 * atexit handlers or other destructors of the program. No corio runtime runs
 * in a worker. The worker ignores SIGPIPE only through MSG_NOSIGNAL: signal
 * dispositions stay the program's.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "process_wire.h"

static corio_process_function *table;   /* written by constructors only */
static bool hook_seen;

int corio_process_function_register(corio_process_function *f)
{
    if (!f || !f->fn || !f->name || !f->name[0] || strlen(f->name) > CORIO_PROCESS_MAX_NAME)
        return -EINVAL;
    if (corio__process_lookup(f->name))
        return -EEXIST;
    f->next = table;
    table = f;
    return 0;
}

const corio_process_function *corio__process_lookup(const char *name)
{
    for (const corio_process_function *f = table; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

bool corio__process_hook_seen(void)
{
    return hook_seen;
}

/* ---- the worker's loop ---- */

/* A read buffer, so that a small request costs one recv(). */
struct rbuf {
    int fd;
    size_t pos, end;
    unsigned char b[64 * 1024];
};

/* Fills @dst with @len bytes; false at end of stream or on an error. */
static bool read_full(struct rbuf *r, void *dst, size_t len)
{
    unsigned char *d = dst;
    while (len) {
        if (r->pos == r->end) {
            if (len >= sizeof r->b) {   /* large: straight into the target */
                ssize_t n = recv(r->fd, d, len, 0);
                if (n <= 0) {
                    if (n < 0 && errno == EINTR)
                        continue;
                    return false;
                }
                d += n;
                len -= (size_t)n;
                continue;
            }
            ssize_t n = recv(r->fd, r->b, sizeof r->b, 0);
            if (n <= 0) {
                if (n < 0 && errno == EINTR)
                    continue;
                return false;
            }
            r->pos = 0;
            r->end = (size_t)n;
        }
        size_t k = r->end - r->pos < len ? r->end - r->pos : len;
        memcpy(d, r->b + r->pos, k);
        r->pos += k;
        d += k;
        len -= k;
    }
    return true;
}

static bool send_reply(int fd, uint32_t kind, int32_t code, const void *data, size_t len)
{
    struct pp_hdr h = {PP_MAGIC, kind, code, 0, len};
    struct iovec iov[2] = {{&h, sizeof h}, {(void *)data, len}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    while (m.msg_iovlen) {
        ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        while (m.msg_iovlen && (size_t)n >= m.msg_iov->iov_len) {
            n -= (ssize_t)m.msg_iov->iov_len;
            m.msg_iov++;
            m.msg_iovlen--;
        }
        if (m.msg_iovlen) {
            m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + n;
            m.msg_iov->iov_len -= (size_t)n;
        }
    }
    return true;
}

static bool send_error(int fd, int code, const char *fmt, const char *arg)
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, fmt, arg);
    return send_reply(fd, PP_ERR, code, msg, n < 0 ? 0 : (size_t)n);
}

/* Runs one request; false when the connection must end. */
static bool serve_one(int fd, const struct pp_hdr *h, const char *name, void *in)
{
    if (h->kind == PP_INIT && !name[0])
        return send_reply(fd, PP_OK, 0, NULL, 0);
    const corio_process_function *f = corio__process_lookup(name);
    if (!f)
        return send_error(fd, -ENOENT, "no process function registered as '%s'", name);
    void *out = NULL;
    size_t out_len = 0;
    int rc = f->fn(in, (size_t)h->len, &out, &out_len);
    if (!out)
        out_len = 0;
    bool ok;
    if (rc < 0)
        ok = send_reply(fd, PP_ERR, rc, out, out_len > 4096 ? 4096 : out_len);
    else if (out_len > CORIO_PROCESS_MAX_PAYLOAD)
        ok = send_error(fd, -EMSGSIZE, "result of '%s' exceeds 64 MiB", name);
    else
        ok = send_reply(fd, PP_OK, 0, h->kind == PP_INIT ? NULL : out,
                        h->kind == PP_INIT ? 0 : out_len);
    free(out);
    return ok;
}

static void serve(int fd)
{
    static struct rbuf r;   /* 64 KiB: not on the constructor's stack */
    r.fd = fd;
    for (;;) {
        struct pp_hdr h;
        char name[CORIO_PROCESS_MAX_NAME + 1];
        if (!read_full(&r, &h, sizeof h) || !pp_hdr_ok(&h) ||
            (h.kind != PP_INIT && h.kind != PP_CALL && h.kind != PP_PING))
            return;
        if (h.kind == PP_PING) {
            if (h.name_len || h.len || !send_reply(fd, PP_PONG, 0, NULL, 0))
                return;
            continue;
        }
        if (!read_full(&r, name, h.name_len))
            return;
        name[h.name_len] = '\0';
        void *in = malloc(h.len ? h.len : 1);
        if (!in)
            _exit(12);   /* ENOMEM: the pool reports "exited with status 12" */
        bool ok = read_full(&r, in, (size_t)h.len) && serve_one(fd, &h, name, in);
        free(in);
        if (!ok)
            return;
    }
}

void corio__process_child_maybe_serve(void)
{
    if (hook_seen)
        return;
    hook_seen = true;
    if (!getenv(PP_ENV))
        return;
    unsetenv(PP_ENV);
    serve(PP_CHILD_FD);
    _exit(0);
}
