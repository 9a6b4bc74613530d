/* io/stream.c - asyncio streams (corio/stream.h) on corio/net.h's sockets.
 *
 * One struct stream per connection holds both halves; corio_reader and
 * corio_writer are its two embedded handles, each with its own count of
 * references, and the stream itself is freed when both halves are released
 * and no flusher task runs.
 *
 * Reader (the reading task only, so no lock): a buffer [rstart, rend) of
 * rbuf. A read that needs more bytes receives into the buffer's free space
 * (RECV_CHUNK at a time) or, when the buffer is empty and the caller asked
 * for at most n bytes, straight into the caller's memory. Bytes are consumed
 * only once a call succeeds, so a cancelled or failed call leaves every
 * received byte buffered. EOF and the first connection error are sticky and
 * reported after the buffered bytes.
 *
 * Writer (under ->lock, a mutex: critical sections copy the caller's bytes):
 * wbuf collects what write() could not send at once; the flusher task swaps
 * it for sbuf, sends sbuf with the lock released (only the flusher touches
 * sbuf's bytes), and swaps again until both are empty. write() sends
 * directly only when nothing is queued and no flusher runs, so bytes leave
 * in order. ->paused is asyncio's pause_writing/resume_writing: set when the
 * buffered size passes ->high, cleared by the flusher at ->low (or on an
 * error), when drain waiters are woken.
 *
 * The descriptor: every system call on it (recv, send, shutdown) counts in
 * ->users under the lock. close() marks ->closing, shuts the read side (a
 * recv in flight returns 0: EOF) and the descriptor itself is closed by
 * whoever sees closing && !flushing && users == 0 first (take_close()), so
 * no call can ever run on a reused descriptor number.
 *
 * Waiting (drain, wait_closed, the server's waits) uses struct waitq: each
 * waiter parks on its own future, linked in a list under the owner's lock;
 * a waker unlinks one waiter at a time under the lock and completes its
 * future outside it, holding its own reference (the waiter may be cancelled
 * and gone meanwhile: its future is then already done and the set is a
 * no-op). A cancelled waiter unlinks itself.
 */

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corio/future.h"
#include "corio/net.h"
#include "corio/runtime.h"
#include "corio/stream.h"
#include "corio/task.h"
#include "corio/time.h"

#include "backend.h"   /* the server's multishot accept */

/* asyncio's selector transport reads up to 256 KiB per recv; 64 KiB keeps a
 * connection's buffer at the limit's size for line protocols. */
#define RECV_CHUNK (64 * 1024)

/* ---- wait queues ---------------------------------------------------------- */

struct waiter {
    struct waiter *next, *prev;
    corio_future *f;
    bool linked;
};

struct waitq {
    struct waiter *head, *tail;
};

static void waitq_link(struct waitq *q, struct waiter *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    w->linked = true;
}

static void waitq_unlink(struct waitq *q, struct waiter *w)
{
    if (!w->linked)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->linked = false;
}

/* Wake every waiter of @q (guarded by @lock, not held by the caller). */
static void waitq_wake_all(pthread_mutex_t *lock, struct waitq *q)
{
    for (;;) {
        pthread_mutex_lock(lock);
        struct waiter *w = q->head;
        corio_future *f = NULL;
        if (w) {
            waitq_unlink(q, w);
            f = corio_future_ref(w->f);
        }
        pthread_mutex_unlock(lock);
        if (!f)
            return;
        corio_future_set_result(f, NULL);
        corio_future_unref(f);
    }
}

/* Called with @lock held and a condition that is false: parks until woken,
 * returns with @lock held again. 0, -ECANCELED, -ENOMEM, -EPERM. */
static int waitq_wait(pthread_mutex_t *lock, struct waitq *q)
{
    struct waiter w = {0};
    /* Allocated with @lock still held: the caller checked its condition
     * under it, and a waker running between an unlock here and the link
     * below would find no waiter, so its wake-up would be lost (seen as a
     * rare hang of wait_closed in stream_many_connections). */
    int rc = corio_future_create(&w.f);
    if (rc < 0)
        return rc;
    waitq_link(q, &w);
    pthread_mutex_unlock(lock);
    rc = corio_await(w.f, NULL);
    pthread_mutex_lock(lock);
    waitq_unlink(q, &w);
    pthread_mutex_unlock(lock);
    corio_future_unref(w.f);
    pthread_mutex_lock(lock);
    return rc;
}

/* ---- the stream ------------------------------------------------------------ */

struct corio_reader {
    struct stream *s;
    atomic_int refs;
};

struct corio_writer {
    struct stream *s;
    atomic_int refs;
};

struct stream {
    atomic_int refs;   /* one per live half, one for a running flusher */
    int fd;
    size_t limit;
    corio_reader reader;
    corio_writer writer;

    /* reader: the reading task only */
    char *rbuf;
    size_t rstart, rend, rcap;
    bool r_eof;
    int r_err;

    /* writer and descriptor state: under lock */
    pthread_mutex_t lock;
    char *wbuf, *sbuf;
    size_t wlen, wcap, slen, soff, scap;
    size_t high, low;
    int w_err;
    int users;
    bool flushing, paused, closing, eof_req, eof_done, fd_closed;
    struct waitq drainq, closeq;
};

static void stream_unref(struct stream *s)
{
    /* Pairs with itself: the last decrement sees every other's writes. */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (!s->fd_closed)
        close(s->fd);   /* not reachable through the API; a safety net */
    pthread_mutex_destroy(&s->lock);
    free(s->rbuf);
    free(s->wbuf);
    free(s->sbuf);
    free(s);
}

static void stream_lock(const struct stream *s) { pthread_mutex_lock((pthread_mutex_t *)&s->lock); }
static void stream_unlock(const struct stream *s) { pthread_mutex_unlock((pthread_mutex_t *)&s->lock); }

/* Under the lock: the descriptor to close now, or -1. */
static int take_close(struct stream *s)
{
    if (!s->closing || s->flushing || s->users || s->fd_closed)
        return -1;
    s->fd_closed = true;
    return s->fd;
}

static void finish_close(struct stream *s, int fd)
{
    if (fd < 0)
        return;
    close(fd);   /* plain close: no operation of ours is in flight on it */
    waitq_wake_all(&s->lock, &s->closeq);
    waitq_wake_all(&s->lock, &s->drainq);
}

/* Ends a user's system call; closes the descriptor if it was the last. */
static void user_done(struct stream *s)
{
    stream_lock(s);
    s->users--;
    int fd = take_close(s);
    stream_unlock(s);
    finish_close(s, fd);
}

/* Starts a system call on the descriptor; false once it is closing. */
static bool user_begin(struct stream *s, bool even_closing)
{
    stream_lock(s);
    bool ok = !s->fd_closed && (even_closing || !s->closing);
    if (ok)
        s->users++;
    stream_unlock(s);
    return ok;
}

int corio_open_connection_fd(int fd, const corio_stream_options *opts, corio_reader **reader,
                             corio_writer **writer)
{
    if (fd < 0)
        return -EINVAL;
    if (!reader || !writer) {
        close(fd);
        return -EINVAL;
    }
    struct stream *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        return -ENOMEM;
    }
    atomic_init(&s->refs, 2);
    s->fd = fd;
    s->limit = opts && opts->limit ? opts->limit : CORIO_STREAM_LIMIT;
    s->reader.s = s;
    s->writer.s = s;
    atomic_init(&s->reader.refs, 1);
    atomic_init(&s->writer.refs, 1);
    s->high = CORIO_STREAM_HIGH_WATER;
    s->low = CORIO_STREAM_HIGH_WATER / 4;
    pthread_mutex_init(&s->lock, NULL);
    *reader = &s->reader;
    *writer = &s->writer;
    return 0;
}

int corio_open_connection(const char *host, uint16_t port, const corio_stream_options *opts,
                          corio_reader **reader, corio_writer **writer)
{
    if (!reader || !writer)
        return -EINVAL;
    if (!corio_current_task())
        return -EPERM;
    int fd = corio_tcp_connect(host, port);
    if (fd < 0)
        return fd;
    return corio_open_connection_fd(fd, opts, reader, writer);
}

/* ---- reader ---------------------------------------------------------------- */

static size_t buffered(const struct stream *s) { return s->rend - s->rstart; }

static void consume(struct stream *s, size_t n)
{
    s->rstart += n;
    if (s->rstart == s->rend)
        s->rstart = s->rend = 0;
}

/* Room for @need more bytes after rend: compact, then grow. */
static int reserve(struct stream *s, size_t need)
{
    if (s->rcap - s->rend >= need)
        return 0;
    size_t used = buffered(s);
    if (s->rstart) {
        memmove(s->rbuf, s->rbuf + s->rstart, used);
        s->rstart = 0;
        s->rend = used;
        if (s->rcap - used >= need)
            return 0;
    }
    size_t cap = s->rcap ? s->rcap : RECV_CHUNK;
    while (cap - used < need)
        cap *= 2;
    char *p = realloc(s->rbuf, cap);
    if (!p)
        return -ENOMEM;
    s->rbuf = p;
    s->rcap = cap;
    return 0;
}

/* Errors that say something about the connection, not about this call. */
static bool sticky(ssize_t n)
{
    return n < 0 && n != -ECANCELED && n != -EPERM && n != -ENOMEM && n != -EAGAIN &&
           n != -EINTR && n != -EINVAL;
}

/* One recv into @dst; records EOF and connection errors. */
static ssize_t recv_some(struct stream *s, void *dst, size_t cap)
{
    ssize_t n = 0;
    if (user_begin(s, false)) {
        n = corio_sock_recv(s->fd, dst, cap, 0);
        user_done(s);
    }
    if (n == 0)
        s->r_eof = true;
    else if (sticky(n))
        s->r_err = (int)n;
    return n;
}

/* More bytes into the buffer: > 0 added, 0 EOF, < 0 error. */
static ssize_t fill(struct stream *s)
{
    if (s->r_err)
        return s->r_err;
    if (s->r_eof)
        return 0;
    int rc = reserve(s, RECV_CHUNK);
    if (rc < 0)
        return rc;
    ssize_t n = recv_some(s, s->rbuf + s->rend, s->rcap - s->rend);
    if (n > 0)
        s->rend += (size_t)n;
    return n;
}

static void take(struct stream *s, void *buf, size_t n)
{
    if (!n)
        return;   /* rbuf may still be NULL */
    memcpy(buf, s->rbuf + s->rstart, n);
    consume(s, n);
}

ssize_t corio_reader_read(corio_reader *r, void *buf, ssize_t n)
{
    if (!r || n < 0 || (!buf && n))
        return -EINVAL;
    struct stream *s = r->s;
    if (n == 0)
        return 0;
    if (buffered(s)) {
        size_t k = buffered(s) < (size_t)n ? buffered(s) : (size_t)n;
        take(s, buf, k);
        return (ssize_t)k;
    }
    if (s->r_err)
        return s->r_err;
    if (s->r_eof)
        return 0;
    if (!corio_current_task())
        return -EPERM;
    /* Nothing buffered: the kernel may write into the caller's memory, and a
     * cancelled recv leaves nothing behind. */
    return recv_some(s, buf, (size_t)n);
}

ssize_t corio_reader_read_all(corio_reader *r, char **out)
{
    if (!r || !out)
        return -EINVAL;
    struct stream *s = r->s;
    while (!s->r_eof) {
        ssize_t n = fill(s);
        if (n < 0)
            return n;
    }
    int rc = reserve(s, 1);
    if (rc < 0)
        return rc;
    size_t len = buffered(s);
    memmove(s->rbuf, s->rbuf + s->rstart, len);
    s->rbuf[len] = '\0';
    *out = s->rbuf;
    s->rbuf = NULL;
    s->rstart = s->rend = s->rcap = 0;
    return (ssize_t)len;
}

ssize_t corio_reader_readexactly(corio_reader *r, void *buf, ssize_t n)
{
    if (!r || n < 0 || (!buf && n))
        return -EINVAL;
    struct stream *s = r->s;
    while (buffered(s) < (size_t)n) {
        if (s->r_err)
            return s->r_err;
        if (s->r_eof)
            return -ENODATA;
        ssize_t k = fill(s);
        if (k < 0)
            return k;
    }
    take(s, buf, (size_t)n);
    return n;
}

/* CPython 3.12's readuntil search. Returns the chunk's length (through the
 * separator); -EOVERFLOW with *@consumed (LimitOverrunError.consumed);
 * -ENODATA at EOF; or a read error. */
static ssize_t find_sep(struct stream *s, const void *sep, size_t seplen, size_t *consumed)
{
    size_t offset = 0, isep;
    for (;;) {
        size_t buflen = buffered(s);
        if (buflen - offset >= seplen) {
            const char *base = s->rbuf + s->rstart;
            const char *p = memmem(base + offset, buflen - offset, sep, seplen);
            if (p) {
                isep = (size_t)(p - base);
                break;
            }
            offset = buflen + 1 - seplen;
            if (offset > s->limit) {
                *consumed = offset;
                return -EOVERFLOW;
            }
        }
        if (s->r_err)
            return s->r_err;
        if (s->r_eof)
            return -ENODATA;
        ssize_t n = fill(s);
        if (n < 0)
            return n;
    }
    if (isep > s->limit) {
        *consumed = isep;
        return -EOVERFLOW;
    }
    return (ssize_t)(isep + seplen);
}

static ssize_t give(struct stream *s, void *buf, ssize_t cap, size_t n)
{
    if (n > (size_t)cap)
        return -ENOBUFS;
    take(s, buf, n);
    if (n < (size_t)cap)
        ((char *)buf)[n] = '\0';
    return (ssize_t)n;
}

ssize_t corio_reader_readuntil(corio_reader *r, const void *sep, size_t seplen, void *buf,
                               ssize_t cap)
{
    if (!r || !sep || !seplen || cap < 0 || (!buf && cap))
        return -EINVAL;
    size_t consumed;
    ssize_t n = find_sep(r->s, sep, seplen, &consumed);
    return n < 0 ? n : give(r->s, buf, cap, (size_t)n);
}

ssize_t corio_reader_readline(corio_reader *r, char *buf, ssize_t cap)
{
    if (!r || cap < 0 || (!buf && cap))
        return -EINVAL;
    struct stream *s = r->s;
    size_t consumed = 0;
    ssize_t n = find_sep(s, "\n", 1, &consumed);
    if (n == -ENODATA)
        return give(s, buf, cap, buffered(s));   /* e.partial */
    if (n == -EOVERFLOW) {
        /* CPython 3.12: del buffer[:consumed + seplen] if the separator is
         * at consumed, else clear the buffer; then ValueError. */
        if (consumed < buffered(s) && s->rbuf[s->rstart + consumed] == '\n')
            consume(s, consumed + 1);
        else
            consume(s, buffered(s));
        return -EOVERFLOW;
    }
    return n < 0 ? n : give(s, buf, cap, (size_t)n);
}

bool corio_reader_at_eof(const corio_reader *r)
{
    return r && r->s->r_eof && !buffered(r->s);
}

size_t corio_reader_buffered(const corio_reader *r)
{
    return r ? buffered(r->s) : 0;
}

corio_reader *corio_reader_ref(corio_reader *r)
{
    if (r)
        atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void corio_reader_unref(corio_reader *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        stream_unref(r->s);
}

/* ---- writer ---------------------------------------------------------------- */

static size_t wsize(const struct stream *s) { return s->wlen + (s->slen - s->soff); }

/* Under the lock (asyncio's _maybe_pause_protocol / _maybe_resume_protocol). */
static void maybe_pause(struct stream *s)
{
    if (!s->paused && wsize(s) > s->high)
        s->paused = true;
}

static bool maybe_resume(struct stream *s)
{
    if (s->paused && (wsize(s) <= s->low || s->w_err)) {
        s->paused = false;
        return true;
    }
    return false;
}

static int append(struct stream *s, const char *p, size_t n)
{
    if (s->wcap - s->wlen < n) {
        size_t cap = s->wcap ? s->wcap : 4096;
        while (cap - s->wlen < n)
            cap *= 2;
        char *b = realloc(s->wbuf, cap);
        if (!b)
            return -ENOMEM;
        s->wbuf = b;
        s->wcap = cap;
    }
    memcpy(s->wbuf + s->wlen, p, n);
    s->wlen += n;
    return 0;
}

/* Under the lock, at the end of a flush: half-close if write_eof() asked. */
static bool eof_due(struct stream *s)
{
    if (!s->eof_req || s->eof_done || s->fd_closed || s->w_err)
        return false;
    s->eof_done = true;
    s->users++;
    return true;
}

/* Under the lock: the flusher's next bytes, or false when it is done. */
static bool next_chunk(struct stream *s)
{
    if (s->w_err)
        return false;
    if (s->soff == s->slen) {
        s->soff = s->slen = 0;
        if (!s->wlen)
            return false;
        char *b = s->sbuf;
        size_t cap = s->scap;
        s->sbuf = s->wbuf;
        s->scap = s->wcap;
        s->slen = s->wlen;
        s->wbuf = b;
        s->wcap = cap;
        s->wlen = 0;
    }
    return true;
}

/* One flusher task's run; ->done once its body finished the flush. */
struct flush_run {
    struct stream *s;
    bool done;
};

/* Under the lock, which it releases: the end of a flush (also after an
 * error: asyncio drops the buffer then). */
static void flush_end_unlock(struct stream *s)
{
    if (s->w_err)
        s->wlen = s->soff = s->slen = 0;
    s->flushing = false;
    maybe_resume(s);
    bool shut = eof_due(s);
    stream_unlock(s);
    if (shut) {
        shutdown(s->fd, SHUT_WR);
        user_done(s);
    }
    stream_lock(s);
    int fd = take_close(s);
    stream_unlock(s);
    finish_close(s, fd);
    waitq_wake_all(&s->lock, &s->drainq);
}

static void *flusher_main(void *arg)
{
    struct flush_run *run = arg;
    struct stream *s = run->s;
    stream_lock(s);
    while (next_chunk(s)) {
        const char *p = s->sbuf + s->soff;
        size_t n = s->slen - s->soff;
        s->users++;
        stream_unlock(s);
        ssize_t k = corio_sock_send(s->fd, p, n, 0);
        stream_lock(s);
        s->users--;
        if (k > 0)
            s->soff += (size_t)k;
        else
            s->w_err = k < 0 ? (int)k : -EPIPE;
        if (maybe_resume(s)) {
            stream_unlock(s);
            waitq_wake_all(&s->lock, &s->drainq);
            stream_lock(s);
        }
    }
    /* Ending under the same lock that found nothing to send, so a write
     * that comes next starts a new flusher. */
    run->done = true;
    flush_end_unlock(s);
    return NULL;
}

/* A done callback: a flusher cancelled before its first step (runtime
 * shutdown) never ran its body, so its end is done here. */
static void flusher_ended(corio_future *f, void *arg)
{
    struct flush_run *run = arg;
    struct stream *s = run->s;
    (void)f;
    if (!run->done) {
        stream_lock(s);
        if (!s->w_err)
            s->w_err = -ECANCELED;
        flush_end_unlock(s);
    }
    free(run);
    stream_unref(s);
}

static int spawn_with_end(corio_fn task_fn, void *arg, corio_done_fn ended, const char *name,
                          corio_task **keep);

static int start_flusher(struct stream *s)
{
    struct flush_run *run = malloc(sizeof *run);
    int rc = -ENOMEM;
    if (run) {
        *run = (struct flush_run){s, false};
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
        rc = spawn_with_end(flusher_main, run, flusher_ended, "corio-stream-flush", NULL);
        if (rc == 0)
            return 0;
        free(run);
        stream_unref(s);
    }
    /* As a flusher's end: a close or a drain that came while ->flushing
     * was set waits for this (a bare flushing = false left them waiting
     * forever, and the descriptor open). */
    stream_lock(s);
    s->w_err = rc;
    flush_end_unlock(s);
    return rc;
}

/* Under the lock: why a write may not proceed. */
static int write_refused(const struct stream *s)
{
    if (s->closing || s->eof_req)
        return -EPIPE;
    return s->w_err;
}

/* One non-blocking send while nothing is queued: how much the kernel took,
 * or a connection error. */
static ssize_t send_now(struct stream *s, const void *data, size_t len)
{
    ssize_t n = send(s->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0)
        return n;
    int e = errno;
    return e == EAGAIN || e == EWOULDBLOCK || e == EINTR ? 0 : -e;
}

int corio_writer_write(corio_writer *w, const void *data, size_t len)
{
    if (!w || (!data && len))
        return -EINVAL;
    struct stream *s = w->s;
    stream_lock(s);
    int rc = write_refused(s);
    if (rc || !len) {
        stream_unlock(s);
        return rc;
    }
    bool direct = !s->flushing && !wsize(s);
    if (direct) {
        s->users++;
        stream_unlock(s);
        ssize_t n = send_now(s, data, len);
        stream_lock(s);
        s->users--;
        if (n < 0)
            s->w_err = rc = (int)n;
        else
            data = (const char *)data + n, len -= (size_t)n;
    }
    if (!rc && len)
        rc = append(s, data, len);
    bool spawn = !rc && s->wlen && !s->flushing;
    if (spawn)
        s->flushing = true;
    maybe_pause(s);
    int fd = take_close(s);
    stream_unlock(s);
    finish_close(s, fd);
    return spawn ? start_flusher(s) : rc;
}

int corio_writer_writelines(corio_writer *w, const struct iovec *iov, int n)
{
    if (!w || n < 0 || (!iov && n))
        return -EINVAL;
    for (int i = 0; i < n; i++) {
        int rc = corio_writer_write(w, iov[i].iov_base, iov[i].iov_len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int corio_writer_drain(corio_writer *w)
{
    if (!w)
        return -EINVAL;
    if (!corio_current_task())
        return -EPERM;
    struct stream *s = w->s;
    int rc = 0;
    stream_lock(s);
    for (;;) {
        if (s->w_err) {
            rc = s->w_err;
            break;
        }
        if (s->fd_closed || (s->closing && !s->paused)) {
            rc = -EPIPE;
            break;
        }
        if (!s->paused)
            break;
        rc = waitq_wait(&s->lock, &s->drainq);
        if (rc < 0)
            break;
    }
    stream_unlock(s);
    return rc;
}

int corio_writer_set_write_buffer_limits(corio_writer *w, ssize_t high, ssize_t low)
{
    if (!w || high < -1 || low < -1)
        return -EINVAL;
    if (high == -1)
        high = low == -1 ? CORIO_STREAM_HIGH_WATER : 4 * low;
    if (low == -1)
        low = high / 4;
    if (high < low)
        return -EINVAL;
    struct stream *s = w->s;
    stream_lock(s);
    s->high = (size_t)high;
    s->low = (size_t)low;
    maybe_pause(s);
    stream_unlock(s);
    return 0;
}

size_t corio_writer_get_write_buffer_size(const corio_writer *w)
{
    if (!w)
        return 0;
    stream_lock(w->s);
    size_t n = wsize(w->s);
    stream_unlock(w->s);
    return n;
}

bool corio_writer_can_write_eof(const corio_writer *w) { return w != NULL; }

int corio_writer_write_eof(corio_writer *w)
{
    if (!w)
        return -EINVAL;
    struct stream *s = w->s;
    stream_lock(s);
    if (s->closing || s->eof_req) {
        stream_unlock(s);
        return 0;
    }
    s->eof_req = true;
    bool shut = !s->flushing && eof_due(s);
    stream_unlock(s);
    if (shut) {
        shutdown(s->fd, SHUT_WR);
        user_done(s);
    }
    return 0;
}

int corio_writer_close(corio_writer *w)
{
    if (!w)
        return -EINVAL;
    struct stream *s = w->s;
    stream_lock(s);
    if (s->closing) {
        stream_unlock(s);
        return 0;
    }
    s->closing = true;
    bool shut = !s->fd_closed;
    if (shut)
        s->users++;
    stream_unlock(s);
    if (shut) {
        /* Wakes a recv in flight with EOF (asyncio stops reading at close);
         * sending continues until the buffer is flushed. */
        shutdown(s->fd, SHUT_RD);
        user_done(s);
    }
    return 0;
}

bool corio_writer_is_closing(const corio_writer *w)
{
    if (!w)
        return false;
    stream_lock(w->s);
    bool c = w->s->closing;
    stream_unlock(w->s);
    return c;
}

int corio_writer_wait_closed(corio_writer *w)
{
    if (!w)
        return -EINVAL;
    if (!corio_current_task())
        return -EPERM;
    struct stream *s = w->s;
    int rc = 0;
    stream_lock(s);
    while (!s->fd_closed && rc == 0)
        rc = waitq_wait(&s->lock, &s->closeq);
    if (rc == 0 && s->w_err && s->w_err != -ECANCELED)
        rc = s->w_err;
    stream_unlock(s);
    return rc;
}

static int peer_of(int fd, struct sockaddr *a, socklen_t *l) { return getpeername(fd, a, l); }
static int name_of(int fd, struct sockaddr *a, socklen_t *l) { return getsockname(fd, a, l); }

/* Runs @fn on the descriptor while it cannot be closed under it. */
static int with_fd(const corio_writer *w, int (*fn)(int, struct sockaddr *, socklen_t *),
                   struct sockaddr *addr, socklen_t *len)
{
    if (!w || !addr || !len)
        return -EINVAL;
    struct stream *s = w->s;
    if (!user_begin(s, true))
        return -EBADF;
    int rc = fn(s->fd, addr, len) < 0 ? -errno : 0;
    user_done(s);
    return rc;
}

int corio_writer_fd(const corio_writer *w)
{
    if (!w)
        return -EINVAL;
    stream_lock(w->s);
    int fd = w->s->fd_closed ? -EBADF : w->s->fd;
    stream_unlock(w->s);
    return fd;
}

int corio_writer_peername(const corio_writer *w, struct sockaddr *addr, socklen_t *len)
{
    return with_fd(w, peer_of, addr, len);
}

int corio_writer_sockname(const corio_writer *w, struct sockaddr *addr, socklen_t *len)
{
    return with_fd(w, name_of, addr, len);
}

corio_writer *corio_writer_ref(corio_writer *w)
{
    if (w)
        atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
    return w;
}

void corio_writer_unref(corio_writer *w)
{
    if (!w || atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1)
        return;
    corio_writer_close(w);
    stream_unref(w->s);
}

/* ---- server ---------------------------------------------------------------- */

/*
 * A server is one listening socket and one accept task. References: the
 * caller's, the accept task's, one per running connection task. The accept
 * task is the only user of the listening descriptor and closes it as it
 * ends; close() cancels it. ->q wakes serve_forever (closed) and
 * wait_closed (closed, accept task ended, no connection left) alike: each
 * waiter re-checks its own condition.
 */
struct corio_server {
    atomic_int refs;
    pthread_mutex_t lock;
    int lfd;
    uint16_t port;
    corio_rt *rt;
    corio_stream_handler handler;
    void *arg;
    size_t limit;
    int64_t retry_ns;
    corio_task *accept_task;
    int active;
    bool closed, accept_done, forever;
    struct waitq q;
};

struct conn {
    corio_server *srv;
    int fd;
};

static void server_unref_internal(corio_server *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    corio_task_unref(s->accept_task);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static bool server_done(const corio_server *s)
{
    return s->closed && s->accept_done && s->active == 0;
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    corio_server *s = c->srv;
    corio_reader *r;
    corio_writer *w;
    int fd = c->fd;
    c->fd = -1;   /* the stream owns it now */
    if (corio_open_connection_fd(fd, &(corio_stream_options){.limit = s->limit}, &r, &w) == 0) {
        s->handler(r, w, s->arg);
        corio_writer_unref(w);   /* closes, flushing what the handler wrote */
        corio_reader_unref(r);
    }
    return NULL;
}

/* A connection task's end, as a done callback: it also runs for a task that
 * was cancelled before it started (runtime shutdown). */
static void conn_ended(corio_future *f, void *arg)
{
    struct conn *c = arg;
    corio_server *s = c->srv;
    (void)f;
    if (c->fd >= 0)
        close(c->fd);
    free(c);
    pthread_mutex_lock(&s->lock);
    bool wake = --s->active == 0 && s->closed;
    pthread_mutex_unlock(&s->lock);
    if (wake)
        waitq_wake_all(&s->lock, &s->q);
    server_unref_internal(s);
}

/* Spawns @task_fn(@arg) and registers @ended(@arg) for its end. 0, or the
 * spawn's error (then nothing runs and @ended is not called). */
static int spawn_with_end(corio_fn task_fn, void *arg, corio_done_fn ended, const char *name,
                          corio_task **keep)
{
    corio_task *t;
    int rc = corio_spawn_ex(&t, task_fn, arg, &(corio_spawn_options){.name = name});
    if (rc < 0)
        return rc;
    /* Fails only with -ENOMEM; the task runs anyway (it may have started),
     * and its end-of-life work is then lost: a leak, never a double free. */
    (void)corio_future_add_done_callback(corio_task_future(t), ended, arg);
    if (keep)
        *keep = t;
    else
        corio_task_unref(t);
    return 0;
}

static void start_conn(corio_server *s, int fd)
{
    struct conn *c = malloc(sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    *c = (struct conn){s, fd};
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    pthread_mutex_lock(&s->lock);
    s->active++;
    pthread_mutex_unlock(&s->lock);
    if (spawn_with_end(conn_main, c, conn_ended, "corio-stream-conn", NULL) == 0)
        return;
    conn_ended(NULL, c);
}

static bool out_of_resources(int rc)
{
    return rc == -EMFILE || rc == -ENFILE || rc == -ENOBUFS || rc == -ENOMEM;
}

/* asyncio's _accept_connection error policy: resource exhaustion is
 * reported and retried after a pause; aborted handshakes are ignored; a
 * listening socket that went away ends the loop. Returns false to stop. */
static bool accept_failed(corio_server *s, int rc)
{
    if (rc == -ECANCELED || rc == -EBADF || rc == -EINVAL || rc == -ENOTSOCK)
        return false;
    if (out_of_resources(rc)) {
        corio_exception_context ctx = {.message = "socket.accept() out of system resource",
                                       .error = rc};
        corio_rt_call_exception_handler(s->rt, &ctx);
        return corio_sleep(s->retry_ns) != -ECANCELED;
    }
    return corio_yield() != -ECANCELED;   /* ECONNABORTED, EPROTO ...: next one */
}

/* One multishot accept serves every connection (io/multi.c); the loop
 * takes them one at a time. */
static void *accept_main(void *arg)
{
    corio_server *s = arg;
    struct corio__io_multi m;
    corio__io_multi_init_accept(&m, s->lfd);
    for (;;) {
        int fd = corio__io_multi_next(&m);
        pthread_mutex_lock(&s->lock);
        bool closed = s->closed;
        pthread_mutex_unlock(&s->lock);
        if (fd >= 0 && closed)
            close(fd);
        if (closed)
            break;
        if (fd >= 0)
            start_conn(s, fd);
        else if (!accept_failed(s, fd))
            break;
    }
    corio__io_multi_close(&m);
    return NULL;
}

/* The accept task's end (a done callback, so that a task cancelled before
 * its first step is covered too): nothing uses the listening socket now. */
static void accept_ended(corio_future *f, void *arg)
{
    corio_server *s = arg;
    (void)f;
    close(s->lfd);
    pthread_mutex_lock(&s->lock);
    s->closed = true;
    s->accept_done = true;
    pthread_mutex_unlock(&s->lock);
    waitq_wake_all(&s->lock, &s->q);
    server_unref_internal(s);
}

/* SO_REUSEPORT must be set before bind, so that case binds here. */
static int listen_reuse_port(const char *host, uint16_t port, int backlog, uint16_t *bound)
{
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai;
    int rc = corio_getaddrinfo(host && *host ? host : NULL, service, &hints, &ai);
    if (rc < 0)
        return rc;
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = corio_socket(a->ai_family, a->ai_socktype, a->ai_protocol), one = 1;
        if (fd < 0) {
            rc = fd;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 ||
            listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
            rc = -errno;
            close(fd);
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &len);
        *bound = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                               : ((struct sockaddr_in6 *)&ss)->sin6_port);
        rc = fd;
        break;
    }
    freeaddrinfo(ai);
    return rc;
}

int corio_start_server(corio_server **out, const char *host, uint16_t port,
                       corio_stream_handler handler, void *arg, const corio_server_options *opts)
{
    corio_server_options o = opts ? *opts : (corio_server_options){0};
    if (!out || !handler || o.backlog < 0 || o.accept_retry_delay_ns < 0)
        return -EINVAL;
    if (!corio_current_task())
        return -EPERM;
    corio_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int fd = o.reuse_port ? listen_reuse_port(host, port, o.backlog, &s->port)
                          : corio_tcp_listen(host, port, o.backlog, &s->port);
    if (fd < 0) {
        free(s);
        return fd;
    }
    atomic_init(&s->refs, 2);   /* the caller's and the accept task's */
    pthread_mutex_init(&s->lock, NULL);
    s->lfd = fd;
    s->rt = corio_get_running_rt();
    s->handler = handler;
    s->arg = arg;
    s->limit = o.limit;
    s->retry_ns = o.accept_retry_delay_ns ? o.accept_retry_delay_ns : CORIO_SEC;
    int rc = spawn_with_end(accept_main, s, accept_ended, "corio-server-accept",
                            &s->accept_task);
    if (rc < 0) {
        close(fd);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

uint16_t corio_server_port(const corio_server *s) { return s ? s->port : 0; }

bool corio_server_is_serving(const corio_server *s)
{
    if (!s)
        return false;
    pthread_mutex_lock((pthread_mutex_t *)&s->lock);
    bool serving = !s->closed;
    pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
    return serving;
}

int corio_server_active(const corio_server *s)
{
    if (!s)
        return 0;
    pthread_mutex_lock((pthread_mutex_t *)&s->lock);
    int n = s->active;
    pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
    return n;
}

int corio_server_close(corio_server *s)
{
    if (!s)
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    bool was = s->closed;
    s->closed = true;
    pthread_mutex_unlock(&s->lock);
    if (was)
        return 0;
    corio_task_cancel(s->accept_task, "server closed");
    waitq_wake_all(&s->lock, &s->q);   /* serve_forever */
    return 0;
}

int corio_server_wait_closed(corio_server *s)
{
    if (!s)
        return -EINVAL;
    if (!corio_current_task())
        return -EPERM;
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    while (!server_done(s) && rc == 0)
        rc = waitq_wait(&s->lock, &s->q);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int corio_server_serve_forever(corio_server *s)
{
    if (!s)
        return -EINVAL;
    if (!corio_current_task())
        return -EPERM;
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    if (s->closed || s->forever) {
        rc = s->closed ? -EINVAL : -EBUSY;
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    s->forever = true;
    while (!s->closed && rc == 0)
        rc = waitq_wait(&s->lock, &s->q);
    s->forever = false;
    pthread_mutex_unlock(&s->lock);
    if (rc == -ECANCELED) {
        corio_server_close(s);
        corio_server_wait_closed(s);
    }
    return rc;
}

void corio_server_unref(corio_server *s)
{
    if (!s)
        return;
    corio_server_close(s);
    server_unref_internal(s);
}
