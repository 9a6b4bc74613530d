/* io/sock.c - the socket calls of corio/net.h, each one operation awaited
 * through the worker's backend (io/io.c), plus the helpers that build
 * listening and connected sockets from a host name.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "corio/net.h"
#include "internal.h"

static int await_op(struct corio__io_op *op)
{
    return corio__io_await(op);
}

static bool bad_buf(const void *buf, size_t len) { return !buf && len; }

int corio_socket(int domain, int type, int protocol)
{
    int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    return fd < 0 ? -errno : fd;
}

/* A relative timeout as an op's absolute deadline (never 0: 0 means none).
 * -EINVAL when negative. */
static int deadline_in(int64_t timeout_ns, uint64_t *deadline)
{
    if (timeout_ns < 0)
        return -EINVAL;
    uint64_t now = corio_time_ns();
    *deadline = (uint64_t)timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + (uint64_t)timeout_ns;
    if (!*deadline)
        *deadline = 1;
    return 0;
}

static int accept_until(int fd, struct sockaddr *addr, socklen_t *addrlen, uint64_t deadline)
{
    if (addr && !addrlen)
        return -EINVAL;
    struct corio__io_op op = {.code = CORIO__IO_ACCEPT, .fd = fd, .addr = addr,
                              .addrlen = addr ? addrlen : NULL,
                              .flags = SOCK_NONBLOCK | SOCK_CLOEXEC, .deadline = deadline};
    return await_op(&op);
}

static int connect_until(int fd, const struct sockaddr *addr, socklen_t addrlen,
                         uint64_t deadline)
{
    if (!addr)
        return -EINVAL;
    struct corio__io_op op = {.code = CORIO__IO_CONNECT, .fd = fd,
                              .addr = (struct sockaddr *)addr, .addrlen_value = addrlen,
                              .deadline = deadline};
    return await_op(&op);
}

static ssize_t recv_until(int fd, void *buf, size_t len, int flags, uint64_t deadline)
{
    if (bad_buf(buf, len))
        return -EINVAL;
    struct corio__io_op op = {.code = CORIO__IO_RECV, .fd = fd, .buf = buf, .len = len,
                              .flags = flags, .deadline = deadline};
    return await_op(&op);
}

static ssize_t send_until(int fd, const void *buf, size_t len, int flags, uint64_t deadline)
{
    if (bad_buf(buf, len))
        return -EINVAL;
    struct corio__io_op op = {.code = CORIO__IO_SEND, .fd = fd, .buf = (void *)buf, .len = len,
                              .flags = flags, .deadline = deadline};
    return await_op(&op);
}

static ssize_t sendall_until(int fd, const void *buf, size_t len, uint64_t deadline)
{
    if (bad_buf(buf, len))
        return -EINVAL;
    size_t done = 0;
    while (done < len) {
        ssize_t n = send_until(fd, (const char *)buf + done, len - done, 0, deadline);
        if (n < 0)
            return n;
        done += (size_t)n;
    }
    return (ssize_t)len;
}

static int wait_fd_until(int fd, int events, uint64_t deadline)
{
    if (!(events & (POLLIN | POLLOUT | POLLPRI | POLLRDHUP)))
        return -EINVAL;
    struct corio__io_op op = {.code = CORIO__IO_POLL, .fd = fd, .flags = events,
                              .deadline = deadline};
    return await_op(&op);
}

int corio_sock_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    return accept_until(fd, addr, addrlen, 0);
}

int corio_sock_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    return connect_until(fd, addr, addrlen, 0);
}

ssize_t corio_sock_recv(int fd, void *buf, size_t len, int flags)
{
    return recv_until(fd, buf, len, flags, 0);
}

ssize_t corio_sock_send(int fd, const void *buf, size_t len, int flags)
{
    return send_until(fd, buf, len, flags, 0);
}

ssize_t corio_sock_sendall(int fd, const void *buf, size_t len)
{
    return sendall_until(fd, buf, len, 0);
}

int corio_wait_fd(int fd, int events)
{
    return wait_fd_until(fd, events, 0);
}

/* ---- the same with a timeout (a deadline the backend enforces) ---- */

int corio_sock_accept_timeout(int fd, struct sockaddr *addr, socklen_t *addrlen,
                              int64_t timeout_ns)
{
    uint64_t d;
    int rc = deadline_in(timeout_ns, &d);
    return rc < 0 ? rc : accept_until(fd, addr, addrlen, d);
}

int corio_sock_connect_timeout(int fd, const struct sockaddr *addr, socklen_t addrlen,
                               int64_t timeout_ns)
{
    uint64_t d;
    int rc = deadline_in(timeout_ns, &d);
    return rc < 0 ? rc : connect_until(fd, addr, addrlen, d);
}

ssize_t corio_sock_recv_timeout(int fd, void *buf, size_t len, int flags, int64_t timeout_ns)
{
    uint64_t d;
    int rc = deadline_in(timeout_ns, &d);
    return rc < 0 ? rc : recv_until(fd, buf, len, flags, d);
}

ssize_t corio_sock_send_timeout(int fd, const void *buf, size_t len, int flags,
                                int64_t timeout_ns)
{
    uint64_t d;
    int rc = deadline_in(timeout_ns, &d);
    return rc < 0 ? rc : send_until(fd, buf, len, flags, d);
}

ssize_t corio_sock_sendall_timeout(int fd, const void *buf, size_t len, int64_t timeout_ns)
{
    uint64_t d;
    int rc = deadline_in(timeout_ns, &d);
    return rc < 0 ? rc : sendall_until(fd, buf, len, d);
}

int corio_wait_fd_timeout(int fd, int events, int64_t timeout_ns)
{
    uint64_t d;
    int rc = deadline_in(timeout_ns, &d);
    return rc < 0 ? rc : wait_fd_until(fd, events, d);
}

ssize_t corio_sock_recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (!msg)
        return -EINVAL;
    struct corio__io_op op = {.code = CORIO__IO_RECVMSG, .fd = fd, .msg = msg, .flags = flags};
    return await_op(&op);
}

ssize_t corio_sock_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (!msg)
        return -EINVAL;
    struct corio__io_op op = {.code = CORIO__IO_SENDMSG, .fd = fd, .msg = (struct msghdr *)msg,
                              .flags = flags};
    return await_op(&op);
}

ssize_t corio_sock_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
                            socklen_t *fromlen)
{
    if (bad_buf(buf, len) || (from && !fromlen))
        return -EINVAL;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg = {.msg_name = from, .msg_namelen = from ? *fromlen : 0,
                         .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = corio_sock_recvmsg(fd, &msg, flags);
    if (n >= 0 && from)
        *fromlen = msg.msg_namelen;
    return n;
}

ssize_t corio_sock_sendto(int fd, const void *buf, size_t len, int flags,
                          const struct sockaddr *to, socklen_t tolen)
{
    if (bad_buf(buf, len))
        return -EINVAL;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {.msg_name = (void *)to, .msg_namelen = to ? tolen : 0,
                         .msg_iov = &iov, .msg_iovlen = 1};
    return corio_sock_sendmsg(fd, &msg, flags);
}

int corio_sock_shutdown(int fd, int how)
{
    struct corio__io_op op = {.code = CORIO__IO_SHUTDOWN, .fd = fd, .flags = how};
    return await_op(&op);
}

int corio_close(int fd)
{
    if (!corio_current_task())
        return close(fd) < 0 ? -errno : 0;
    struct corio__io_op op = {.code = CORIO__IO_CLOSE, .fd = fd};
    return await_op(&op);
}

ssize_t corio_read(int fd, void *buf, size_t len)
{
    if (bad_buf(buf, len))
        return -EINVAL;
    struct corio__io_op op = {.code = CORIO__IO_READ, .fd = fd, .buf = buf, .len = len,
                              .off = UINT64_MAX};
    return await_op(&op);
}

ssize_t corio_write(int fd, const void *buf, size_t len)
{
    if (bad_buf(buf, len))
        return -EINVAL;
    struct corio__io_op op = {.code = CORIO__IO_WRITE, .fd = fd, .buf = (void *)buf, .len = len,
                              .off = UINT64_MAX};
    return await_op(&op);
}

/* ---- name resolution ---- */

struct gai_call {
    const char *host, *service;
    const struct addrinfo *hints;
    struct addrinfo **res;
};

static int gai_errno(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case EAI_NONAME:
    case EAI_NODATA:
    case EAI_ADDRFAMILY:
    case EAI_SERVICE:
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return -EIO;
    default:
        return -EINVAL;
    }
}

static int gai_run(void *arg)
{
    struct gai_call *c = arg;
    return gai_errno(getaddrinfo(c->host, c->service, c->hints, c->res));
}

int corio_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                      struct addrinfo **res)
{
    if (!res || (!host && !service))
        return -EINVAL;
    struct gai_call c = {host, service, hints, res};
    struct corio__io_op op = {.code = CORIO__IO_CALL, .call = gai_run, .call_arg = &c};
    return await_op(&op);
}

/* Numeric addresses (and the wildcard) need no resolver thread. */
static int resolve(const char *host, uint16_t port, int socktype, bool passive,
                   struct addrinfo **res)
{
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    struct addrinfo hints = {.ai_socktype = socktype, .ai_family = AF_UNSPEC,
                             .ai_flags = (passive ? AI_PASSIVE : 0) | AI_NUMERICSERV};
    if (host && !*host)
        host = NULL;
    struct in6_addr probe;
    if (!host || inet_pton(AF_INET, host, &probe) == 1 || inet_pton(AF_INET6, host, &probe) == 1) {
        hints.ai_flags |= AI_NUMERICHOST;
        return gai_errno(getaddrinfo(host, service, &hints, res));
    }
    return corio_getaddrinfo(host, service, &hints, res);
}

static uint16_t port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int bound_socket(const char *host, uint16_t port, int socktype, int backlog,
                        uint16_t *bound_port)
{
    struct addrinfo *ai;
    int rc = resolve(host, port, socktype, true, &ai);
    if (rc < 0)
        return rc;
    /* Passive lookups list IPv4 first on most systems; prefer IPv6 (dual
     * stack) for the wildcard so both families connect, as asyncio's
     * create_server binds every family. */
    struct addrinfo *pick = ai;
    if (!host || !*host)
        for (struct addrinfo *a = ai; a; a = a->ai_next)
            if (a->ai_family == AF_INET6) {
                pick = a;
                break;
            }
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *a = pick; a; a = a == pick && pick != ai ? ai : a->ai_next) {
        int fd = corio_socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) {
            rc = fd;
            continue;
        }
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (a->ai_family == AF_INET6 && (!host || !*host))
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 ||
            (socktype == SOCK_STREAM && listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0)) {
            rc = -errno;
            close(fd);
            if (a == pick && pick != ai)
                continue;
            continue;
        }
        if (bound_port)
            *bound_port = port_of(fd);
        freeaddrinfo(ai);
        return fd;
    }
    freeaddrinfo(ai);
    return rc;
}

int corio_tcp_listen(const char *host, uint16_t port, int backlog, uint16_t *bound_port)
{
    return bound_socket(host, port, SOCK_STREAM, backlog, bound_port);
}

int corio_udp_bind(const char *host, uint16_t port, uint16_t *bound_port)
{
    return bound_socket(host, port, SOCK_DGRAM, 0, bound_port);
}

static int tcp_connect_until(const char *host, uint16_t port, uint64_t deadline)
{
    if (!host || !*host)
        host = "localhost";
    struct addrinfo *ai;
    int rc = resolve(host, port, SOCK_STREAM, false, &ai);
    if (rc < 0)
        return rc;
    rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = corio_socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) {
            rc = fd;
            continue;
        }
        rc = connect_until(fd, a->ai_addr, a->ai_addrlen, deadline);
        if (rc == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            freeaddrinfo(ai);
            return fd;
        }
        close(fd);
        if (rc == -ECANCELED || (rc == -ETIMEDOUT && deadline))
            break;
    }
    freeaddrinfo(ai);
    return rc;
}

int corio_tcp_connect(const char *host, uint16_t port)
{
    return tcp_connect_until(host, port, 0);
}

int corio_tcp_connect_timeout(const char *host, uint16_t port, int64_t timeout_ns)
{
    uint64_t d;
    int rc = deadline_in(timeout_ns, &d);
    return rc < 0 ? rc : tcp_connect_until(host, port, d);
}
