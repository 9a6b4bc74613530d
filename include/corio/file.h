/* corio/file.h - files: open, positioned reads and writes, fsync, statx,
 * and whole-file helpers (what Python programs do with aiofiles or
 * loop.run_in_executor(None, open(...).read)).
 *
 * Every call here suspends the calling task, never its worker: on the
 * io_uring backend the worker's ring carries the operation (the kernel
 * punts what may block to its own threads); on the epoll backend regular
 * files, block devices and directories go to the runtime's blocking threads,
 * and pipes, FIFOs and ttys wait for readiness.
 *
 * Descriptors are plain ints the caller owns, always opened close-on-exec.
 * Close them with corio_close() of corio/net.h (also usable outside a task).
 *
 * Sizes: one operation moves at most 1 GiB (io_uring takes a 32-bit length
 * and the kernel caps one read at about 2 GiB), so results always fit in an
 * int inside the library; the *_all calls loop over chunks for any length.
 *
 * Cancellation: a task cancelled while an operation is in flight gets
 * -ECANCELED once the kernel has let go of its buffer (an operation that
 * finished first returns its result, and the cancellation is delivered at
 * the next await). Reads of pipes and FIFOs stop at once on both backends;
 * operations on regular files run to completion first (the kernel cannot
 * stop them halfway), so cancelling them only stops what comes after.
 *
 * FIFOs: io_uring opens a FIFO for reading without waiting for a writer
 * (as O_NONBLOCK would; a read then sees end of file until one comes), the
 * epoll backend's blocking open waits, and that wait cannot be cancelled.
 * Open FIFOs with O_NONBLOCK, or O_RDWR, to get the same behaviour on both.
 *
 * Errors are negative errnos from the kernel (-ENOENT, -EACCES, -EISDIR,
 * -EBADF, -ENOSPC ...), -ECANCELED, -EPERM outside a task, and -EINVAL for
 * NULL paths, NULL buffers with a non-zero length, negative offsets or
 * lengths over SSIZE_MAX.
 */
#ifndef CORIO_FILE_H
#define CORIO_FILE_H

#include <fcntl.h>
#include <linux/stat.h>   /* struct statx and STATX_* without _GNU_SOURCE */
#include <sys/stat.h>
#include <sys/types.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* corio_open - open(2) of @path with @flags (O_CLOEXEC is always added) and
 * @mode (used with O_CREAT / O_TMPFILE). corio_openat - relative to
 * @dirfd (AT_FDCWD: the current directory) as openat(2).
 * Returns the descriptor or -errno (-ENOENT, -EACCES, -EEXIST ...).
 * Call from: a task. See also: corio_close(). */
CORIO_API int corio_open(const char *path, int flags, mode_t mode);
CORIO_API int corio_openat(int dirfd, const char *path, int flags, mode_t mode);

/* corio_pread / corio_pwrite - one pread(2) / pwrite(2) of up to @len bytes
 * at offset @off (the file position is not used or moved). May be short:
 * at most 1 GiB per call, less near the end of the file, or as the kernel
 * decides. Returns the count (corio_pread: 0 at end of file) or -errno.
 * On a pipe, FIFO or socket the epoll backend returns -ESPIPE while
 * io_uring ignores @off (it checks no file type, and corio adds no system
 * call to do so): use corio_read/corio_write there. Call from: a task. */
CORIO_API ssize_t corio_pread(int fd, void *buf, size_t len, off_t off);
CORIO_API ssize_t corio_pwrite(int fd, const void *buf, size_t len, off_t off);

/* corio_pread_all - read @len bytes at @off, looping over short reads.
 * Returns @len, or fewer only when end of file came first.
 * corio_pwrite_all - write all @len bytes at @off; returns @len.
 * Partial results: on an error (-ECANCELED included) after some bytes were
 * moved, the error is returned and how many bytes made it is not: the
 * buffer (read) or file range (write) is then partly done. Positioned I/O
 * can simply be repeated. A write that makes no progress is -EIO.
 * Call from: a task. */
CORIO_API ssize_t corio_pread_all(int fd, void *buf, size_t len, off_t off);
CORIO_API ssize_t corio_pwrite_all(int fd, const void *buf, size_t len, off_t off);

/* corio_fsync - fsync(2): data and metadata reach the device.
 * corio_fdatasync - fdatasync(2): data, and only the metadata needed to
 * read it back. Returns 0 or -errno (-EBADF, -EINVAL for a pipe, -EIO).
 * Call from: a task. */
CORIO_API int corio_fsync(int fd);
CORIO_API int corio_fdatasync(int fd);

/* corio_statx - statx(2) of @path relative to @dirfd (AT_FDCWD; or @path ""
 * with AT_EMPTY_PATH in @flags for @dirfd itself), asking for @mask
 * (STATX_BASIC_STATS, STATX_SIZE ...), into *@stx. Returns 0 or -errno
 * (-ENOENT, -EBADF, -EINVAL for NULL @path or @stx). Check stx_mask for
 * what was filled. Call from: a task. */
CORIO_API int corio_statx(int dirfd, const char *path, int flags, unsigned mask,
                          struct statx *stx);

/* corio_file_size - the size in bytes of the open descriptor @fd when @path
 * is NULL, else of @path relative to @fd as a directory (AT_FDCWD: the
 * current directory; symbolic links are followed). Returns the size (>= 0)
 * or -errno (-EBADF, -ENOENT ...). Call from: a task. */
CORIO_API int64_t corio_file_size(int fd, const char *path);

/* corio_read_file - read all of @path into a new buffer: *@buf (free() it)
 * gets the contents followed by a NUL that *@len does not count (so text
 * can be used as a string). @max limits the size (0: no limit but memory).
 * Files that report no size (/proc) or grow while read are read to their
 * end. Returns 0, -EFBIG (more than @max bytes), -ENOENT, -EISDIR, -ENOMEM,
 * -ECANCELED ...; on error *@buf is NULL and *@len 0. -EINVAL for NULL
 * arguments. Call from: a task. */
CORIO_API int corio_read_file(const char *path, char **buf, size_t *len, size_t max);

/* corio_write_file - create or truncate @path (@mode for a new file, less
 * the umask), write all @len bytes of @data and close it. Not atomic and
 * not durable: on an error the file may hold part of @data, and the data may
 * still be in the page cache only (corio_fsync() an own descriptor, then
 * rename, for both). Returns 0 or -errno (errors of close(2) included),
 * -EINVAL for NULL @path or NULL @data with @len > 0. Call from: a task. */
CORIO_API int corio_write_file(const char *path, const void *data, size_t len, mode_t mode);

#ifdef __cplusplus
}
#endif

#endif
