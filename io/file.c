/* io/file.c - the file calls of corio/file.h, each one operation (OPENAT,
 * READ, WRITE, FSYNC, STATX) awaited through the worker's backend
 * (io/io.c), as io/sock.c does for sockets.
 *
 * This file only builds operations; where they run is the backend's
 * business: io_uring takes them all on the worker's ring, the epoll backend
 * sends regular files (and OPENAT/FSYNC/STATX) to the blocking pool and
 * waits for readiness on pipes and FIFOs. Nothing here blocks a worker.
 *
 * Lengths: io_uring's READ and WRITE take an unsigned 32-bit length, and an
 * operation's result travels as an int, so no single operation is ever
 * given more than corio__file_chunk bytes (1 GiB); the *_all loops cut
 * longer transfers into such chunks. Callers of the single-shot calls see a
 * short count instead.
 *
 * Every operation, its path and its buffer live in the calling task's frame
 * or the caller's memory, which stays valid because corio__io_await()
 * returns only once the backend has let go of the operation, even when the
 * task is cancelled.
 *
 * Cleanup closes with close(2), not corio_close(): a cancellation left
 * pending by an operation that won the race would make corio_close()'s
 * await return -ECANCELED at once, and the descriptor would leak.
 */
#include <limits.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "corio/file.h"
#include "internal.h"

/* Largest length handed to one operation: a power of two well under both
 * UINT_MAX (io_uring's sqe->len) and the kernel's MAX_RW_COUNT (INT_MAX
 * rounded down to a page). Not static and not const so white-box tests can
 * shrink it to exercise the chunking loops on small files. */
size_t corio__file_chunk = (size_t)1 << 30;

#define CUR_POS UINT64_MAX   /* READ/WRITE at (and moving) the file position */

static bool bad_buf(const void *buf, size_t len) { return !buf && len; }

static size_t chunk_of(size_t len)
{
    size_t c = corio__file_chunk;
    if (c == 0 || c > ((size_t)1 << 30))
        c = (size_t)1 << 30;   /* a test's bad value must not defeat the point */
    return len < c ? len : c;
}

/* One READ or WRITE of at most one chunk; @off is CUR_POS or >= 0. */
static ssize_t rw_once(uint8_t code, int fd, void *buf, size_t len, uint64_t off)
{
    struct corio__io_op op = {.code = code, .fd = fd, .buf = buf, .len = chunk_of(len),
                              .off = off};
    return corio__io_await(&op);
}

/* Loops rw_once() until @len bytes moved, or (reads) end of file. */
static ssize_t rw_all(uint8_t code, int fd, char *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        uint64_t at = off == CUR_POS ? CUR_POS : off + done;
        ssize_t n = rw_once(code, fd, buf + done, len - done, at);
        if (n < 0)
            return n;
        if (n == 0) {
            if (code == CORIO__IO_READ)
                break;      /* end of file */
            return -EIO;    /* a write that makes no progress would spin */
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* ---- open -------------------------------------------------------------- */

int corio_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    if (!path)
        return -EINVAL;
    struct corio__io_op op = {.code = CORIO__IO_OPENAT, .fd = dirfd, .path = path,
                              .flags = flags | O_CLOEXEC, .mode = mode};
    return corio__io_await(&op);
}

int corio_open(const char *path, int flags, mode_t mode)
{
    return corio_openat(AT_FDCWD, path, flags, mode);
}

/* ---- positioned reads and writes ------------------------------------------ */

/* The argument checks all four calls share; 0 when they pass. */
static int check_rw(const void *buf, size_t len, off_t off, bool all)
{
    if (bad_buf(buf, len) || off < 0 || (all && len > SSIZE_MAX))
        return -EINVAL;
    return 0;
}

ssize_t corio_pread(int fd, void *buf, size_t len, off_t off)
{
    int rc = check_rw(buf, len, off, false);
    return rc < 0 ? rc : rw_once(CORIO__IO_READ, fd, buf, len, (uint64_t)off);
}

ssize_t corio_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    int rc = check_rw(buf, len, off, false);
    return rc < 0 ? rc : rw_once(CORIO__IO_WRITE, fd, (void *)buf, len, (uint64_t)off);
}

ssize_t corio_pread_all(int fd, void *buf, size_t len, off_t off)
{
    int rc = check_rw(buf, len, off, true);
    return rc < 0 ? rc : rw_all(CORIO__IO_READ, fd, buf, len, (uint64_t)off);
}

ssize_t corio_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
    int rc = check_rw(buf, len, off, true);
    return rc < 0 ? rc : rw_all(CORIO__IO_WRITE, fd, (void *)buf, len, (uint64_t)off);
}

/* ---- sync and metadata ------------------------------------------------------ */

static int sync_op(int fd, int flags)
{
    struct corio__io_op op = {.code = CORIO__IO_FSYNC, .fd = fd, .flags = flags};
    return corio__io_await(&op);
}

int corio_fsync(int fd) { return sync_op(fd, 0); }

int corio_fdatasync(int fd) { return sync_op(fd, IORING_FSYNC_DATASYNC); }

int corio_statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *stx)
{
    if (!path || !stx)
        return -EINVAL;
    struct corio__io_op op = {.code = CORIO__IO_STATX, .fd = dirfd, .path = path,
                              .flags = flags, .mode = mask, .stx = stx};
    return corio__io_await(&op);
}

int64_t corio_file_size(int fd, const char *path)
{
    struct statx stx;
    int rc = path ? corio_statx(fd, path, 0, STATX_SIZE, &stx)
                  : corio_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx);
    if (rc < 0)
        return rc;
    if (!(stx.stx_mask & STATX_SIZE))
        return -EOPNOTSUPP;   /* a file system that keeps no size */
    return (int64_t)stx.stx_size;
}

/* ---- whole files -------------------------------------------------------------- */

/* A growing read buffer: @cap bytes of room plus one for the NUL. */
struct slurp {
    char *buf;
    size_t len, cap, max;
};

static int slurp_grow(struct slurp *s, size_t need)
{
    size_t cap = s->cap < 4096 ? 4096 : s->cap * 2;   /* cap <= max <= SSIZE_MAX: no overflow */
    if (cap < need)
        cap = need;
    if (cap > s->max)
        cap = s->max;
    char *b = realloc(s->buf, cap + 1);
    if (!b)
        return -ENOMEM;
    s->buf = b;
    s->cap = cap;
    return 0;
}

/* The buffer is full: is that the end of the file? 0 when it is, 1 when more
 * came (and was appended), or an error. The probe is small and on the stack
 * so an exactly sized buffer is never doubled just to see end of file. */
static int slurp_probe(struct slurp *s, int fd)
{
    char probe[256];
    ssize_t n = rw_once(CORIO__IO_READ, fd, probe, sizeof probe, CUR_POS);
    if (n <= 0)
        return (int)n;
    if ((size_t)n > s->max - s->len)
        return -EFBIG;
    int rc = slurp_grow(s, s->len + (size_t)n);
    if (rc < 0)
        return rc;
    memcpy(s->buf + s->len, probe, (size_t)n);
    s->len += (size_t)n;
    return 1;
}

/* Reads @fd to its end into @s, sized first by what statx says. */
static int slurp_fd(struct slurp *s, int fd)
{
    struct statx stx;
    int rc = corio_statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &stx);
    if (rc < 0)
        return rc;
    if (S_ISDIR(stx.stx_mode))
        return -EISDIR;
    uint64_t hint = S_ISREG(stx.stx_mode) && (stx.stx_mask & STATX_SIZE) ? stx.stx_size : 0;
    if (hint > s->max)
        return -EFBIG;
    if ((rc = slurp_grow(s, (size_t)hint)) < 0)
        return rc;
    for (;;) {
        if (s->len == s->cap) {
            if ((rc = slurp_probe(s, fd)) <= 0)
                return rc;
            continue;
        }
        ssize_t n = rw_once(CORIO__IO_READ, fd, s->buf + s->len, s->cap - s->len, CUR_POS);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return 0;
        s->len += (size_t)n;
    }
}

int corio_read_file(const char *path, char **buf, size_t *len, size_t max)
{
    if (!path || !buf || !len)
        return -EINVAL;
    *buf = NULL;
    *len = 0;
    struct slurp s = {.max = max == 0 || max > SSIZE_MAX ? SSIZE_MAX : max};
    int fd = corio_open(path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    int rc = slurp_fd(&s, fd);
    close(fd);   /* see the top of the file */
    if (rc < 0) {
        free(s.buf);
        return rc;
    }
    s.buf[s.len] = '\0';   /* slurp_grow() always keeps room for it */
    *buf = s.buf;
    *len = s.len;
    return 0;
}

int corio_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    if (!path || bad_buf(data, len) || len > SSIZE_MAX)
        return -EINVAL;
    int fd = corio_open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return fd;
    /* At the file position, not at offsets, so FIFOs and devices work too. */
    ssize_t n = rw_all(CORIO__IO_WRITE, fd, (char *)data, len, CUR_POS);
    int rc = close(fd) < 0 ? -errno : 0;   /* NFS reports write errors here */
    return n < 0 ? (int)n : rc;
}
