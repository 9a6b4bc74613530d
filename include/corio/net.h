/* corio/net.h - sockets: TCP and UDP over IPv4 and IPv6, asyncio's
 * loop.sock_* functions, fd readiness, and name resolution.
 *
 * Every call here suspends the calling task, never its worker: the worker's
 * io_uring (or, on the epoll backend, a non-blocking call plus readiness)
 * carries the operation while other tasks run. Descriptors are plain ints
 * the caller owns; corio creates them non-blocking and close-on-exec, and
 * makes descriptors it is given non-blocking where the epoll backend needs
 * it (as asyncio requires sockets to be).
 *
 * Cancellation: cancelling a task suspended here stops the operation on the
 * worker that started it and the call returns -ECANCELED once the kernel has
 * let go of the buffers (an operation that finished first returns its result,
 * and the cancellation is delivered at the next await). Per-operation
 * timeouts: wrap the call in a timeout scope (corio/time.h):
 *     corio_timeout tm;
 *     corio_timeout_enter(&tm, 5 * CORIO_SEC);
 *     ssize_t n = corio_timeout_exit(&tm, corio_sock_recv(fd, buf, len, 0));
 *     // n == -ETIMEDOUT when 5 s passed first
 *
 * Errors are negative errnos from the kernel (-ECONNREFUSED, -ECONNRESET,
 * -EPIPE, -EBADF, -EMFILE ...), -ECANCELED, -EPERM outside a task, and
 * -EINVAL for NULL buffers with a non-zero length or other bad arguments.
 * Sending to a peer that closed returns -EPIPE; it never raises SIGPIPE.
 */
#ifndef CORIO_NET_H
#define CORIO_NET_H

#include <netdb.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CORIO_MSEC INT64_C(1000000)
#define CORIO_SEC INT64_C(1000000000)

/* corio_socket - socket(2), non-blocking and close-on-exec.
 * Returns the descriptor or -errno. Call from: anywhere. */
CORIO_API int corio_socket(int domain, int type, int protocol);

/* corio_tcp_listen - a listening TCP socket on @host (NULL or "" for every
 * address; "::" or "0.0.0.0" likewise per family; names are resolved) and
 * @port (0: the kernel picks one; *@bound_port, when not NULL, receives the
 * port). SO_REUSEADDR is set; @backlog <= 0 means SOMAXCONN.
 * Returns the descriptor or -errno (-EADDRINUSE ...), -ENOENT when @host
 * does not resolve. Call from: a task (resolution suspends). */
CORIO_API int corio_tcp_listen(const char *host, uint16_t port, int backlog,
                               uint16_t *bound_port);

/* corio_tcp_connect - connect to @host:@port, trying each resolved address
 * in turn (asyncio.open_connection's socket). Returns a connected descriptor
 * or the last address's -errno (-ECONNREFUSED, -ENETUNREACH ...), -ENOENT
 * when @host does not resolve, -ECANCELED. Call from: a task. */
CORIO_API int corio_tcp_connect(const char *host, uint16_t port);
/* corio_tcp_connect_timeout - corio_tcp_connect() giving up @timeout_ns
 * after the call (the deadline covers every address tried; name resolution
 * on a blocking thread is not stopped by it). Returns as corio_tcp_connect(),
 * or -ETIMEDOUT; -EINVAL when @timeout_ns < 0. Call from: a task. */
CORIO_API int corio_tcp_connect_timeout(const char *host, uint16_t port, int64_t timeout_ns);

/* corio_udp_bind - a UDP socket bound to @host:@port (as corio_tcp_listen).
 * Returns the descriptor or -errno. Call from: a task. */
CORIO_API int corio_udp_bind(const char *host, uint16_t port, uint16_t *bound_port);

/* corio_sock_accept - accept one connection (loop.sock_accept). @addr and
 * @addrlen may be NULL. Returns the new descriptor (non-blocking,
 * close-on-exec) or -errno (-EMFILE when out of descriptors: the listening
 * socket stays usable). Call from: a task. */
CORIO_API int corio_sock_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);

/* corio_sock_connect - connect @fd to @addr (loop.sock_connect). Returns 0
 * or -errno (-ECONNREFUSED, -ETIMEDOUT ...). Call from: a task. */
CORIO_API int corio_sock_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);

/* corio_sock_recv - receive up to @len bytes (loop.sock_recv /
 * sock_recv_into). Returns the count (0: the peer closed its side) or
 * -errno. Call from: a task. */
CORIO_API ssize_t corio_sock_recv(int fd, void *buf, size_t len, int flags);

/* corio_sock_send - send up to @len bytes once; returns the count sent or
 * -errno. corio_sock_sendall - send all @len bytes (loop.sock_sendall):
 * returns @len or -errno (bytes already sent are then unknown to the
 * caller, as with Python's sendall). Call from: a task. */
CORIO_API ssize_t corio_sock_send(int fd, const void *buf, size_t len, int flags);
CORIO_API ssize_t corio_sock_sendall(int fd, const void *buf, size_t len);

/* corio_sock_recvfrom / corio_sock_sendto - datagrams (loop.sock_recvfrom,
 * sock_sendto). @from/@fromlen may be NULL. Returns the count or -errno.
 * Call from: a task. */
CORIO_API ssize_t corio_sock_recvfrom(int fd, void *buf, size_t len, int flags,
                                      struct sockaddr *from, socklen_t *fromlen);
CORIO_API ssize_t corio_sock_sendto(int fd, const void *buf, size_t len, int flags,
                                    const struct sockaddr *to, socklen_t tolen);

/* corio_sock_recvmsg / corio_sock_sendmsg - recvmsg(2) / sendmsg(2).
 * Returns the count or -errno. Call from: a task. */
CORIO_API ssize_t corio_sock_recvmsg(int fd, struct msghdr *msg, int flags);
CORIO_API ssize_t corio_sock_sendmsg(int fd, const struct msghdr *msg, int flags);

/* corio_sock_shutdown - shutdown(2) (SHUT_RD, SHUT_WR, SHUT_RDWR).
 * Returns 0 or -errno. Call from: a task. */
CORIO_API int corio_sock_shutdown(int fd, int how);

/* corio_close - close @fd through the worker's backend. Returns 0 or
 * -errno (-EBADF). Outside a task it closes directly. Closing does not end
 * another task's operation in flight on @fd (the kernel keeps the socket
 * open for it): cancel that task, or corio_sock_shutdown() first, which
 * makes a pending recv return 0. Call from: anywhere. */
CORIO_API int corio_close(int fd);

/* corio_read / corio_write - read(2) / write(2) on any descriptor (pipes,
 * ttys, eventfds, sockets, files at their current offset). Returns the
 * count or -errno. Call from: a task. */
CORIO_API ssize_t corio_read(int fd, void *buf, size_t len);
CORIO_API ssize_t corio_write(int fd, const void *buf, size_t len);

/* corio_wait_fd - suspend until @fd is ready for @events (POLLIN,
 * POLLOUT, ...; asyncio's add_reader/add_writer as an await). Returns the
 * ready events (> 0, POLLERR/POLLHUP included) or -errno.
 * Call from: a task. */
CORIO_API int corio_wait_fd(int fd, int events);

/* Per-operation timeouts (Go's deadlines, asyncio's wait_for around one
 * sock_* call, without a task cancellation): corio_X_timeout() is
 * corio_X() that gives up @timeout_ns after the call and returns
 * -ETIMEDOUT. On io_uring the kernel stops the operation (a linked
 * timeout); on epoll a timer on the worker's wheel does. An operation that
 * can complete at once does, so a timeout of 0 means "only if ready now";
 * a timed-out operation has transferred nothing, except that
 * corio_sock_sendall_timeout() may have sent a part (as sendall on a
 * socket with a timeout in Python). Each returns what corio_X() returns,
 * -ETIMEDOUT, or -EINVAL when @timeout_ns < 0; a cancellation still ends
 * it with -ECANCELED. Call from: a task. */
CORIO_API int corio_sock_accept_timeout(int fd, struct sockaddr *addr, socklen_t *addrlen,
                                        int64_t timeout_ns);
CORIO_API int corio_sock_connect_timeout(int fd, const struct sockaddr *addr,
                                         socklen_t addrlen, int64_t timeout_ns);
CORIO_API ssize_t corio_sock_recv_timeout(int fd, void *buf, size_t len, int flags,
                                          int64_t timeout_ns);
CORIO_API ssize_t corio_sock_send_timeout(int fd, const void *buf, size_t len, int flags,
                                          int64_t timeout_ns);
CORIO_API ssize_t corio_sock_sendall_timeout(int fd, const void *buf, size_t len,
                                             int64_t timeout_ns);
CORIO_API int corio_wait_fd_timeout(int fd, int events, int64_t timeout_ns);

/* corio_getaddrinfo - getaddrinfo(3) on the runtime's blocking threads, so
 * the worker keeps running (loop.getaddrinfo). Returns 0 and *@res (free it
 * with freeaddrinfo()), -ENOENT (no such host), -EAGAIN (temporary failure),
 * -ENOMEM, -EINVAL (bad hints). Call from: a task. */
CORIO_API int corio_getaddrinfo(const char *host, const char *service,
                                const struct addrinfo *hints, struct addrinfo **res);

#ifdef __cplusplus
}
#endif

#endif
