/* corio/stream.h - streams (asyncio.open_connection, asyncio.start_server,
 * StreamReader, StreamWriter, Server) on top of corio/net.h's sockets.
 *
 * A connection is one reader and one writer over a socket. The reader pulls:
 * when a read needs more bytes than its buffer holds, it receives from the
 * socket itself (up to 64 KiB at a time) into its buffer, the "feed" buffer
 * every read is served from. The writer never blocks: corio_writer_write()
 * tries one non-blocking send and buffers the rest, which a flusher task
 * sends in the background; corio_writer_drain() is the flow control
 * (asyncio's pause_writing/resume_writing), suspending while the buffered
 * bytes are above the high-water mark until they fall to the low-water mark.
 *
 * Threads and tasks: one task may use the reader while another uses the
 * writer, on any workers, at the same time. Two tasks reading one reader at
 * once, or writing one writer at once, is not supported (as asyncio, where
 * concurrent readers raise RuntimeError): their bytes would interleave
 * arbitrarily. corio_writer_close(), corio_writer_is_closing(),
 * corio_writer_wait_closed(), the accessors, ref/unref and every server call
 * may be made from any task.
 *
 * Cancellation: a task cancelled inside a read or drain gets -ECANCELED;
 * bytes received before remain buffered and are returned by the next read,
 * and the writer's buffer keeps flushing.
 *
 * Where C differs from asyncio (each is documented at its function):
 *  - IncompleteReadError (readexactly/readuntil at EOF) is -ENODATA and the
 *    partial bytes stay in the reader's buffer (corio_reader_buffered() says
 *    how many; corio_reader_read() returns them) instead of being carried by
 *    the exception. readline follows CPython exactly: at EOF it returns the
 *    partial line.
 *  - LimitOverrunError is -EOVERFLOW; readuntil leaves the data buffered;
 *    readline discards as CPython 3.12 does (through the separator if it was
 *    found, else the whole buffer) and returns -EOVERFLOW (Python's
 *    ValueError).
 *  - A read or write error (-ECONNRESET, -EPIPE) is returned after the bytes
 *    already buffered for the reader: no received byte is lost. A write error
 *    does not stop the reader (the peer's last bytes stay readable).
 *  - Memory: references. The reader and the writer of a connection are freed
 *    when both were unref'd (and the background flush, if any, has ended).
 *    Unref of the writer closes it when it was not closed.
 */
#ifndef CORIO_STREAM_H
#define CORIO_STREAM_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct corio_reader corio_reader;
typedef struct corio_writer corio_writer;
typedef struct corio_server corio_server;

/* Default reader limit (asyncio's _DEFAULT_LIMIT, 2 ** 16) and write-buffer
 * water marks (asyncio's FlowControlMixin: 64 KiB high, high / 4 low). */
#define CORIO_STREAM_LIMIT (64 * 1024)
#define CORIO_STREAM_HIGH_WATER (64 * 1024)

typedef struct corio_stream_options {
    size_t limit;   /* readuntil/readline limit; 0: CORIO_STREAM_LIMIT */
} corio_stream_options;

/* corio_open_connection - connect to @host:@port (asyncio.open_connection)
 * and wrap the socket in a reader and a writer (@opts may be NULL).
 * Returns 0 with *@reader and *@writer (one reference each: unref both),
 * -EINVAL (NULL @reader/@writer), -ENOENT (host does not resolve),
 * -ECONNREFUSED and the other errors of corio_tcp_connect(), -ECANCELED,
 * -ENOMEM, -EPERM outside a task. Call from: a task. */
CORIO_API int corio_open_connection(const char *host, uint16_t port,
                                    const corio_stream_options *opts,
                                    corio_reader **reader, corio_writer **writer);

/* corio_open_connection_fd - wrap connected stream socket @fd (TCP, or a
 * Unix socketpair) as corio_open_connection() does (open_connection(sock=)).
 * The stream owns @fd from then on, also when this fails (it is closed).
 * Returns 0, -EINVAL (@fd < 0, NULL outputs), -ENOMEM.
 * Call from: anywhere (the reader and writer are used from tasks). */
CORIO_API int corio_open_connection_fd(int fd, const corio_stream_options *opts,
                                       corio_reader **reader, corio_writer **writer);

/* ---- reader (asyncio.StreamReader) --------------------------------------- */

/* corio_reader_read - read up to @n bytes into @buf (read(n)): returns what
 * is buffered (at most @n) or, with nothing buffered, waits for data.
 * Returns the count (> 0), 0 at EOF or for @n == 0, -EINVAL (NULL @r, NULL
 * @buf with @n > 0, @n < 0: read until EOF is corio_reader_read_all()), the
 * connection's error once the buffer is empty (-ECONNRESET ...),
 * -ECANCELED. Call from: the reading task. */
CORIO_API ssize_t corio_reader_read(corio_reader *r, void *buf, ssize_t n);

/* corio_reader_read_all - read until EOF (read(-1)). Returns the length and
 * *@out, a malloc'd buffer the caller free()s (always non-NULL on success,
 * NUL-terminated for convenience); -EINVAL (NULL), -ENOMEM, the connection's
 * error, -ECANCELED: on an error everything received so far stays buffered.
 * Call from: the reading task. */
CORIO_API ssize_t corio_reader_read_all(corio_reader *r, char **out);

/* corio_reader_readexactly - read exactly @n bytes into @buf (readexactly).
 * Returns @n; -ENODATA when EOF came first (asyncio's IncompleteReadError:
 * the fewer than @n bytes received stay buffered, see
 * corio_reader_buffered()); -EINVAL (NULL, @n < 0); the connection's error;
 * -ECANCELED (bytes received stay buffered). Call from: the reading task. */
CORIO_API ssize_t corio_reader_readexactly(corio_reader *r, void *buf, ssize_t n);

/* corio_reader_readuntil - read through the first @sep (@seplen bytes) into
 * @buf of @cap bytes (readuntil). Returns the length including @sep (@buf
 * gets a NUL after it when there is room); -EOVERFLOW when no separator is
 * found within the reader's limit or it is found beyond it (asyncio's
 * LimitOverrunError: the data stays buffered); -ENOBUFS when the chunk fits
 * the limit but not @cap (the data stays buffered; retry with a larger
 * buffer); -ENODATA at EOF before a separator (IncompleteReadError: the
 * partial bytes stay buffered); -EINVAL (NULL, @seplen 0, @cap < 0); the
 * connection's error; -ECANCELED. Call from: the reading task. */
CORIO_API ssize_t corio_reader_readuntil(corio_reader *r, const void *sep, size_t seplen,
                                         void *buf, ssize_t cap);

/* corio_reader_readline - read one line, through "\n", into @buf of @cap
 * bytes (readline). Returns its length (with the "\n"; a NUL follows when
 * there is room); at EOF the partial line without "\n" (0: nothing left);
 * -EOVERFLOW when the line exceeds the limit: as CPython 3.12, the buffer is
 * discarded through the "\n" if one was found, else entirely (ValueError);
 * -ENOBUFS (the line fits the limit, not @cap: it stays buffered); -EINVAL
 * (NULL, @cap < 0); the connection's error; -ECANCELED (received bytes stay
 * buffered). Call from: the reading task. */
CORIO_API ssize_t corio_reader_readline(corio_reader *r, char *buf, ssize_t cap);

/* corio_reader_at_eof - whether EOF was seen and the buffer is empty
 * (at_eof()); false for NULL. corio_reader_buffered - bytes buffered now
 * (0 for NULL). Call from: the reading task. */
CORIO_API bool corio_reader_at_eof(const corio_reader *r);
CORIO_API size_t corio_reader_buffered(const corio_reader *r);

/* corio_reader_ref / corio_reader_unref - references (NULL ignored).
 * Call from: any task. */
CORIO_API corio_reader *corio_reader_ref(corio_reader *r);
CORIO_API void corio_reader_unref(corio_reader *r);

/* ---- writer (asyncio.StreamWriter) --------------------------------------- */

/* corio_writer_write - queue @len bytes (write()); never suspends: what the
 * socket does not take at once is copied to the write buffer and sent in the
 * background. Returns 0; -EINVAL (NULL @w, NULL @data with @len > 0);
 * -EPIPE after corio_writer_close() or corio_writer_write_eof(); the
 * connection's error once sending failed (-EPIPE, -ECONNRESET: no SIGPIPE
 * is raised); -ENOMEM. Call from: the writing task. */
CORIO_API int corio_writer_write(corio_writer *w, const void *data, size_t len);

/* corio_writer_writelines - corio_writer_write() of each of @n buffers in
 * order (writelines()). Returns as corio_writer_write(), -EINVAL for
 * @n < 0 or NULL @iov with @n > 0. Call from: the writing task. */
CORIO_API int corio_writer_writelines(corio_writer *w, const struct iovec *iov, int n);

/* corio_writer_drain - wait until the write buffer may be filled again
 * (drain()): returns at once unless writing paused (buffer above the
 * high-water mark); then suspends until it is at or below the low-water
 * mark. Returns 0, the connection's error (-EPIPE, -ECONNRESET), -EPIPE
 * after close, -ECANCELED (the buffer keeps flushing), -EINVAL (NULL),
 * -EPERM outside a task. Call from: the writing task. */
CORIO_API int corio_writer_drain(corio_writer *w);

/* corio_writer_set_write_buffer_limits - the water marks
 * (transport.set_write_buffer_limits(high, low)): -1 for "None": high
 * defaults to 64 KiB (4 * @low when @low is given), low to @high / 4.
 * Returns 0, -EINVAL (NULL, values below -1, @high < @low).
 * Call from: any task. */
CORIO_API int corio_writer_set_write_buffer_limits(corio_writer *w, ssize_t high,
                                                   ssize_t low);

/* corio_writer_get_write_buffer_size - bytes queued and not yet taken by the
 * kernel (transport.get_write_buffer_size()); 0 for NULL.
 * Call from: any task. */
CORIO_API size_t corio_writer_get_write_buffer_size(const corio_writer *w);

/* corio_writer_can_write_eof - true: stream sockets support half-close
 * (false for NULL). corio_writer_write_eof - shut down the sending side
 * (shutdown(SHUT_WR)) once the buffer is flushed (write_eof()); the reader
 * keeps working. Returns 0 (also when already done or closing), -EINVAL
 * (NULL). Call from: the writing task. */
CORIO_API bool corio_writer_can_write_eof(const corio_writer *w);
CORIO_API int corio_writer_write_eof(corio_writer *w);

/* corio_writer_close - close the connection (close()): the write buffer is
 * still flushed, then the socket closed; the reader sees EOF after its
 * buffered bytes. Idempotent. Returns 0, -EINVAL (NULL).
 * Call from: any task (or a thread that is not a worker). */
CORIO_API int corio_writer_close(corio_writer *w);

/* corio_writer_is_closing - whether close() was called (false for NULL).
 * Call from: anywhere. */
CORIO_API bool corio_writer_is_closing(const corio_writer *w);

/* corio_writer_wait_closed - wait until the socket is closed (wait_closed();
 * close() is what starts that). Returns 0, the error that made the final
 * flush fail (-EPIPE, -ECONNRESET), -ECANCELED, -EINVAL (NULL), -EPERM
 * outside a task. Call from: any task. */
CORIO_API int corio_writer_wait_closed(corio_writer *w);

/* corio_writer_fd - the socket (get_extra_info("socket")), -EBADF once
 * closed, -EINVAL for NULL. corio_writer_peername / corio_writer_sockname -
 * getpeername/getsockname (get_extra_info("peername"/"sockname")): 0,
 * -EINVAL (NULL), -EBADF (closed), or getpeername's -errno.
 * Call from: any task. */
CORIO_API int corio_writer_fd(const corio_writer *w);
CORIO_API int corio_writer_peername(const corio_writer *w, struct sockaddr *addr,
                                    socklen_t *len);
CORIO_API int corio_writer_sockname(const corio_writer *w, struct sockaddr *addr,
                                    socklen_t *len);

/* corio_writer_ref / corio_writer_unref - references (NULL ignored); the
 * last unref of a writer that was not closed closes it.
 * Call from: any task. */
CORIO_API corio_writer *corio_writer_ref(corio_writer *w);
CORIO_API void corio_writer_unref(corio_writer *w);

/* ---- server (asyncio.start_server, asyncio.Server) ----------------------- */

/* A connection handler (client_connected_cb): runs in its own task, one per
 * connection. @r and @w are borrowed: valid until it returns, then the
 * writer is closed (flushing what was written) and both are released; take
 * a reference to keep them longer. */
typedef void (*corio_stream_handler)(corio_reader *r, corio_writer *w, void *arg);

typedef struct corio_server_options {
    int backlog;                   /* listen backlog; 0: SOMAXCONN (asyncio: 100) */
    size_t limit;                  /* each reader's limit; 0: CORIO_STREAM_LIMIT */
    bool reuse_port;               /* SO_REUSEPORT (SO_REUSEADDR is always set) */
    int64_t accept_retry_delay_ns; /* pause after -EMFILE/-ENFILE/-ENOBUFS/-ENOMEM
                                      from accept; 0: 1 s (asyncio's
                                      ACCEPT_RETRY_DELAY) */
} corio_server_options;

/* corio_start_server - listen on @host:@port (asyncio.start_server; NULL or
 * "" host: every address, port 0: the kernel picks) and serve: each accepted
 * connection runs @handler(reader, writer, @arg) in a new task. Accept errors
 * never stop the server: out of descriptors or memory, it pauses
 * accept_retry_delay_ns and tries again. Returns 0 and *@out (one
 * reference: corio_server_unref()), -EINVAL (NULL @out/@handler, negative
 * backlog or delay), the errors of corio_tcp_listen() (-EADDRINUSE, -ENOENT),
 * -ENOMEM, -EPERM outside a task. Call from: a task. */
CORIO_API int corio_start_server(corio_server **out, const char *host, uint16_t port,
                                 corio_stream_handler handler, void *arg,
                                 const corio_server_options *opts);

/* corio_server_port - the bound port (sockets[0].getsockname()[1]); 0 for
 * NULL. Call from: anywhere. */
CORIO_API uint16_t corio_server_port(const corio_server *s);

/* corio_server_is_serving - accepting connections (is_serving()); false for
 * NULL. Call from: anywhere. */
CORIO_API bool corio_server_is_serving(const corio_server *s);

/* corio_server_active - connection handlers running now; 0 for NULL.
 * Call from: anywhere. */
CORIO_API int corio_server_active(const corio_server *s);

/* corio_server_close - stop accepting (close()): the listening socket is
 * closed by the accept task as it ends; connections already accepted keep
 * running (Python 3.12). Idempotent. Returns 0, -EINVAL (NULL).
 * Call from: any task or thread. */
CORIO_API int corio_server_close(corio_server *s);

/* corio_server_wait_closed - wait until the server is closed, its accept
 * task has ended and every connection handler has returned (3.12's
 * wait_closed()). Returns 0, -ECANCELED, -EINVAL (NULL), -EPERM outside a
 * task. Call from: a task. */
CORIO_API int corio_server_wait_closed(corio_server *s);

/* corio_server_serve_forever - wait until the server is closed
 * (serve_forever()). Returns 0 when corio_server_close() ended it (asyncio
 * raises CancelledError there); -ECANCELED when the calling task was
 * cancelled: then, as asyncio, the server is closed and waited for first;
 * -EINVAL (NULL, or already closed), -EBUSY (another task serves forever),
 * -EPERM outside a task. Call from: a task. */
CORIO_API int corio_server_serve_forever(corio_server *s);

/* corio_server_unref - drop the caller's reference, closing the server first
 * if it is not closed (connections keep running; the memory goes when the
 * accept task and the last connection have ended). NULL is ignored.
 * Call from: any task. */
CORIO_API void corio_server_unref(corio_server *s);

#ifdef __cplusplus
}
#endif

#endif
