/* tests/test_file.c - files (corio/file.h): open, positioned reads and
 * writes, the *_all loops and their chunking, fsync, statx, the whole-file
 * helpers, misuse, many tasks at once, and cancellation of a task blocked
 * reading a FIFO (plus FIFOs and pipes through corio_read of corio/net.h).
 *
 * Every case runs its own runtime (testutil.h) and records what it saw with
 * CHECK*(); cmocka asserts only after the run. Files live in one temporary
 * directory made by the group setup and removed by its teardown. Run the
 * binary with CORIO_BACKEND=uring and =epoll: the epoll backend sends
 * regular files to its blocking threads and waits for FIFOs by readiness,
 * io_uring does both on the ring, and the cases must pass on both.
 *
 * The chunking loops are exercised without gigabyte files by shrinking the
 * library's per-operation limit (corio__file_chunk, white-box) before a
 * run, and the 32-bit length limit of io_uring by a read of 4 GiB into a
 * reserved, untouched mapping.
 */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corio/corio.h"
#include "corio/file.h"

#include "testutil.h"

/* io/file.c: the most one operation moves (white-box; 1 GiB). */
extern size_t corio__file_chunk;

static char dir[64];   /* the group's temporary directory */

static void path_of(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

#define MIB ((size_t)1 << 20)

/* A pattern with no short period, so a chunk written at the wrong offset
 * shows. */
static uint8_t pattern(size_t i)
{
    return (uint8_t)(((uint32_t)i * 2654435761u) >> 24);
}

/* The first offset where @buf differs from pattern(@start + i), or @len. */
static size_t first_mismatch(const uint8_t *buf, size_t len, size_t start)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i] != pattern(start + i))
            return i;
    return len;
}

/* ---- open, write, read back ------------------------------------------------ */

static void *open_write_read_main(void *arg)
{
    struct checks *ck = arg;
    char p[128], buf[16] = {0};
    path_of(p, sizeof p, "owr");

    int fd = corio_open(p, O_CREAT | O_EXCL | O_RDWR, 0600);
    CHECK(ck, fd >= 0);
    CHECK(ck, fcntl(fd, F_GETFD) & FD_CLOEXEC);
    CHECK_EQ(ck, corio_pwrite(fd, "hello", 5, 0), 5);
    CHECK_EQ(ck, corio_pread(fd, buf, sizeof buf, 0), 5);
    CHECK(ck, memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(ck, corio_close(fd), 0);
    CHECK_EQ(ck, corio_open(p, O_CREAT | O_EXCL | O_RDWR, 0600), -EEXIST);

    /* openat relative to a directory descriptor sees the same file */
    int dfd = corio_open(dir, O_RDONLY | O_DIRECTORY, 0);
    CHECK(ck, dfd >= 0);
    fd = corio_openat(dfd, "owr", O_RDONLY, 0);
    CHECK(ck, fd >= 0);
    memset(buf, 0, sizeof buf);
    CHECK_EQ(ck, corio_pread(fd, buf, sizeof buf, 1), 4);
    CHECK(ck, memcmp(buf, "ello", 4) == 0);
    CHECK_EQ(ck, corio_close(fd), 0);
    CHECK_EQ(ck, corio_openat(dfd, "missing", O_RDONLY, 0), -ENOENT);
    CHECK_EQ(ck, corio_close(dfd), 0);
    unlink(p);
    return NULL;
}

static void file_open_write_read_back(void **state)
{
    (void)state;
    run_checks(1, open_write_read_main);
    run_checks(2, open_write_read_main);
}

/* ---- offsets --------------------------------------------------------------- */

static void *offsets_main(void *arg)
{
    struct checks *ck = arg;
    char p[128], buf[64];
    path_of(p, sizeof p, "offsets");

    int fd = corio_open(p, O_CREAT | O_TRUNC | O_RDWR, 0600);
    CHECK(ck, fd >= 0);
    CHECK_EQ(ck, corio_pwrite(fd, "tail", 4, 10000), 4);
    CHECK_EQ(ck, corio_pwrite(fd, "head", 4, 0), 4);
    CHECK_EQ(ck, corio_pwrite(fd, "mid", 3, 4096), 3);
    /* the file position never moved */
    CHECK_EQ(ck, lseek(fd, 0, SEEK_CUR), 0);

    memset(buf, 'x', sizeof buf);
    CHECK_EQ(ck, corio_pread(fd, buf, 8, 4094), 8);
    CHECK(ck, memcmp(buf, "\0\0mid\0\0\0", 8) == 0);   /* holes read as zeros */
    CHECK_EQ(ck, corio_pread(fd, buf, sizeof buf, 10002), 2);   /* short near the end */
    CHECK(ck, memcmp(buf, "il", 2) == 0);
    CHECK_EQ(ck, corio_pread(fd, buf, sizeof buf, 10004), 0);   /* end of file */
    CHECK_EQ(ck, corio_pread(fd, buf, sizeof buf, 1 << 30), 0);
    CHECK_EQ(ck, corio_pread_all(fd, buf, sizeof buf, 9990), 14);   /* stops at EOF */
    CHECK(ck, memcmp(buf + 10, "tail", 4) == 0);
    CHECK_EQ(ck, corio_pread(fd, buf, 0, 0), 0);
    CHECK_EQ(ck, corio_pread(fd, buf, 4, -1), -EINVAL);
    CHECK_EQ(ck, corio_pwrite(fd, buf, 4, -4096), -EINVAL);
    CHECK_EQ(ck, corio_pwrite_all(fd, "all", 3, 20000), 3);
    CHECK_EQ(ck, corio_file_size(fd, NULL), 20003);
    CHECK_EQ(ck, lseek(fd, 0, SEEK_CUR), 0);
    CHECK_EQ(ck, corio_close(fd), 0);
    unlink(p);
    return NULL;
}

static void file_pread_pwrite_at_offsets(void **state)
{
    (void)state;
    run_checks(1, offsets_main);
}

/* ---- large files ------------------------------------------------------------ */

#define LARGE (64 * MIB)

struct large {
    struct checks ck;
    uint8_t *src, *dst;
};

static void *large_main(void *arg)
{
    struct large *l = arg;
    struct checks *ck = &l->ck;
    char p[128];
    path_of(p, sizeof p, "large");

    int fd = corio_open(p, O_CREAT | O_TRUNC | O_RDWR, 0600);
    CHECK(ck, fd >= 0);
    CHECK_EQ(ck, corio_pwrite_all(fd, l->src, LARGE, 0), LARGE);
    CHECK_EQ(ck, corio_file_size(fd, NULL), LARGE);
    memset(l->dst, 0, LARGE);
    CHECK_EQ(ck, corio_pread_all(fd, l->dst, LARGE, 0), LARGE);
    CHECK_EQ(ck, first_mismatch(l->dst, LARGE, 0), LARGE);

    /* at an odd offset: every chunk boundary falls mid-page */
    CHECK_EQ(ck, corio_pwrite_all(fd, l->src + 5, LARGE - 5, 13), LARGE - 5);
    CHECK_EQ(ck, corio_file_size(AT_FDCWD, p), LARGE + 8);
    memset(l->dst, 0, LARGE);
    CHECK_EQ(ck, corio_pread_all(fd, l->dst, LARGE, 13), LARGE - 5);   /* EOF first */
    CHECK_EQ(ck, first_mismatch(l->dst, LARGE - 5, 5), LARGE - 5);
    CHECK_EQ(ck, corio_close(fd), 0);

    char *all = NULL;
    size_t len = 0;
    CHECK_EQ(ck, corio_read_file(p, &all, &len, 0), 0);
    CHECK_EQ(ck, len, LARGE + 8);
    if (all && len == LARGE + 8) {
        CHECK_EQ(ck, first_mismatch((uint8_t *)all, 13, 0), 13);
        CHECK_EQ(ck, first_mismatch((uint8_t *)all + 13, LARGE - 5, 5), LARGE - 5);
        CHECK_EQ(ck, all[len], '\0');
    }
    free(all);
    CHECK_EQ(ck, corio_read_file(p, &all, &len, LARGE + 7), -EFBIG);
    CHECK_PTR(ck, all, NULL);
    unlink(p);
    return NULL;
}

static void large_run(size_t chunk)
{
    struct large l = {0};
    l.src = malloc(LARGE);
    l.dst = malloc(LARGE);
    assert_non_null(l.src);
    assert_non_null(l.dst);
    for (size_t i = 0; i < LARGE; i++)
        l.src[i] = pattern(i);
    size_t saved = corio__file_chunk;
    corio__file_chunk = chunk;
    run_main_checked(2, large_main, &l, &l.ck);
    corio__file_chunk = saved;
    free(l.src);
    free(l.dst);
}

static void file_large_pattern_round_trip(void **state)
{
    (void)state;
    large_run(corio__file_chunk);   /* one operation per call */
    large_run(MIB + 3);             /* ~64 chunks per call, odd boundaries */
}

/* io_uring's READ takes a 32-bit length: 4 GiB would become 0 and look
 * like end of file if it were passed through. The mapping is reserved, not
 * touched: only the file's few bytes are ever written. */
static void *huge_len_main(void *arg)
{
    struct checks *ck = arg;
    char p[128];
    path_of(p, sizeof p, "huge");
    size_t huge = ((size_t)4 << 30) + 4096;
    uint8_t *map = mmap(NULL, huge, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(ck, map != MAP_FAILED);
    if (map == MAP_FAILED)
        return NULL;
    CHECK_EQ(ck, corio_write_file(p, "0123456789", 10, 0600), 0);
    int fd = corio_open(p, O_RDONLY, 0);
    CHECK(ck, fd >= 0);
    CHECK_EQ(ck, corio_pread(fd, map, (size_t)4 << 30, 0), 10);
    CHECK(ck, memcmp(map, "0123456789", 10) == 0);
    CHECK_EQ(ck, corio_pread_all(fd, map, huge, 2), 8);
    CHECK(ck, memcmp(map, "23456789", 8) == 0);
    CHECK_EQ(ck, corio_pread_all(fd, map, (size_t)SSIZE_MAX + 1, 0), -EINVAL);
    CHECK_EQ(ck, corio_close(fd), 0);
    munmap(map, huge);
    unlink(p);
    return NULL;
}

static void file_huge_length_not_truncated(void **state)
{
    (void)state;
    run_checks(1, huge_len_main);
}

/* ---- whole files -------------------------------------------------------------- */

static void *whole_main(void *arg)
{
    struct checks *ck = arg;
    char p[128];
    char *buf = NULL;
    size_t len = 0;
    path_of(p, sizeof p, "whole");

    const char *text = "line one\nline two\n";
    CHECK_EQ(ck, corio_write_file(p, text, strlen(text), 0640), 0);
    CHECK_EQ(ck, corio_read_file(p, &buf, &len, 0), 0);
    CHECK_EQ(ck, len, strlen(text));
    CHECK(ck, buf && strcmp(buf, text) == 0);   /* NUL-terminated */
    free(buf);

    /* truncates a longer file; exactly @max bytes is fine */
    CHECK_EQ(ck, corio_write_file(p, "short", 5, 0600), 0);
    CHECK_EQ(ck, corio_read_file(p, &buf, &len, 5), 0);
    CHECK_EQ(ck, len, 5);
    CHECK_STR(ck, buf, "short");
    free(buf);
    CHECK_EQ(ck, corio_read_file(p, &buf, &len, 4), -EFBIG);
    CHECK_PTR(ck, buf, NULL);
    CHECK_EQ(ck, len, 0);

    /* the mode of a new file (the group sets umask 022) */
    struct statx stx;
    CHECK_EQ(ck, corio_statx(AT_FDCWD, p, 0, STATX_MODE, &stx), 0);
    CHECK_EQ(ck, stx.stx_mode & 07777, 0640);

    /* empty: a valid, empty string */
    CHECK_EQ(ck, corio_write_file(p, NULL, 0, 0600), 0);
    CHECK_EQ(ck, corio_read_file(p, &buf, &len, 1), 0);
    CHECK_EQ(ck, len, 0);
    CHECK_STR(ck, buf, "");
    free(buf);

    /* a file that reports no size is read to its end */
    CHECK_EQ(ck, corio_read_file("/proc/self/status", &buf, &len, 0), 0);
    CHECK(ck, len > 0 && buf && strstr(buf, "Name:") == buf);
    free(buf);
    /* ... and still limited */
    CHECK_EQ(ck, corio_read_file("/proc/self/status", &buf, &len, 8), -EFBIG);
    unlink(p);
    return NULL;
}

static void file_read_write_file_round_trip(void **state)
{
    (void)state;
    run_checks(1, whole_main);
}

static void *whole_errors_main(void *arg)
{
    struct checks *ck = arg;
    char p[128];
    char *buf = (char *)"untouched";
    size_t len = 99;
    path_of(p, sizeof p, "missing");

    CHECK_EQ(ck, corio_read_file(p, &buf, &len, 0), -ENOENT);
    CHECK_PTR(ck, buf, NULL);
    CHECK_EQ(ck, len, 0);
    CHECK_EQ(ck, corio_read_file(dir, &buf, &len, 0), -EISDIR);
    CHECK_PTR(ck, buf, NULL);
    CHECK_EQ(ck, corio_write_file(dir, "x", 1, 0600), -EISDIR);
    path_of(p, sizeof p, "no/such/dir");
    CHECK_EQ(ck, corio_write_file(p, "x", 1, 0600), -ENOENT);

    CHECK_EQ(ck, corio_read_file(NULL, &buf, &len, 0), -EINVAL);
    CHECK_EQ(ck, corio_read_file(dir, NULL, &len, 0), -EINVAL);
    CHECK_EQ(ck, corio_read_file(dir, &buf, NULL, 0), -EINVAL);
    CHECK_EQ(ck, corio_write_file(NULL, "x", 1, 0600), -EINVAL);
    CHECK_EQ(ck, corio_write_file(p, NULL, 1, 0600), -EINVAL);
    return NULL;
}

static void file_read_write_file_errors(void **state)
{
    (void)state;
    run_checks(1, whole_errors_main);
}

/* ---- fsync and statx --------------------------------------------------------- */

static void *fsync_main(void *arg)
{
    struct checks *ck = arg;
    char p[128];
    path_of(p, sizeof p, "fsync");
    int fd = corio_open(p, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    CHECK(ck, fd >= 0);
    CHECK_EQ(ck, corio_pwrite_all(fd, "durable", 7, 0), 7);
    CHECK_EQ(ck, corio_fsync(fd), 0);
    CHECK_EQ(ck, corio_pwrite_all(fd, "data", 4, 7), 4);
    CHECK_EQ(ck, corio_fdatasync(fd), 0);
    CHECK_EQ(ck, corio_close(fd), 0);
    CHECK_EQ(ck, corio_fsync(fd), -EBADF);   /* closed */
    CHECK_EQ(ck, corio_fdatasync(-1), -EBADF);

    int pfd[2];
    CHECK_EQ(ck, pipe2(pfd, O_CLOEXEC), 0);
    CHECK_EQ(ck, corio_fsync(pfd[0]), -EINVAL);   /* a pipe keeps nothing */
    close(pfd[0]);
    close(pfd[1]);
    unlink(p);
    return NULL;
}

static void file_fsync_and_fdatasync(void **state)
{
    (void)state;
    run_checks(1, fsync_main);
}

static void *statx_main(void *arg)
{
    struct checks *ck = arg;
    char p[128];
    path_of(p, sizeof p, "statx");
    char data[1000];
    memset(data, 's', sizeof data);
    CHECK_EQ(ck, corio_write_file(p, data, sizeof data, 0604), 0);

    struct statx stx;
    memset(&stx, 0, sizeof stx);
    CHECK_EQ(ck, corio_statx(AT_FDCWD, p, 0, STATX_BASIC_STATS, &stx), 0);
    CHECK(ck, stx.stx_mask & STATX_SIZE);
    CHECK_EQ(ck, stx.stx_size, sizeof data);
    CHECK(ck, S_ISREG(stx.stx_mode));
    CHECK_EQ(ck, stx.stx_mode & 07777, 0604);

    int fd = corio_open(p, O_RDONLY, 0);
    CHECK(ck, fd >= 0);
    memset(&stx, 0, sizeof stx);
    CHECK_EQ(ck, corio_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE | STATX_TYPE, &stx), 0);
    CHECK_EQ(ck, stx.stx_size, sizeof data);
    CHECK_EQ(ck, corio_file_size(fd, NULL), sizeof data);
    CHECK_EQ(ck, corio_file_size(AT_FDCWD, p), sizeof data);
    CHECK_EQ(ck, corio_close(fd), 0);

    int dfd = corio_open(dir, O_RDONLY | O_DIRECTORY, 0);
    CHECK_EQ(ck, corio_file_size(dfd, "statx"), sizeof data);
    CHECK_EQ(ck, corio_statx(dfd, "statx", 0, STATX_MODE, &stx), 0);
    CHECK(ck, S_ISREG(stx.stx_mode));
    CHECK_EQ(ck, corio_statx(AT_FDCWD, dir, 0, STATX_TYPE, &stx), 0);
    CHECK(ck, S_ISDIR(stx.stx_mode));
    CHECK_EQ(ck, corio_close(dfd), 0);

    CHECK_EQ(ck, corio_file_size(AT_FDCWD, "/nonexistent/corio"), -ENOENT);
    CHECK_EQ(ck, corio_statx(AT_FDCWD, "/nonexistent/corio", 0, STATX_SIZE, &stx), -ENOENT);
    CHECK_EQ(ck, corio_statx(AT_FDCWD, NULL, 0, STATX_SIZE, &stx), -EINVAL);
    CHECK_EQ(ck, corio_statx(AT_FDCWD, p, 0, STATX_SIZE, NULL), -EINVAL);
    unlink(p);
    return NULL;
}

static void file_statx_size_and_mode(void **state)
{
    (void)state;
    run_checks(1, statx_main);
}

/* ---- misuse -------------------------------------------------------------- */

static void *bad_args_main(void *arg)
{
    struct checks *ck = arg;
    char buf[8];
    char p[128];
    path_of(p, sizeof p, "badargs");

    CHECK_EQ(ck, corio_pread(-1, buf, sizeof buf, 0), -EBADF);
    CHECK_EQ(ck, corio_pwrite(-1, buf, sizeof buf, 0), -EBADF);
    CHECK_EQ(ck, corio_pread_all(-1, buf, sizeof buf, 0), -EBADF);
    CHECK_EQ(ck, corio_pwrite_all(-1, buf, sizeof buf, 0), -EBADF);
    CHECK_EQ(ck, corio_file_size(-1, NULL), -EBADF);
    CHECK_EQ(ck, corio_statx(-1, "relative", 0, STATX_SIZE, (struct statx[1]){0}), -EBADF);
    CHECK_EQ(ck, corio_openat(-1, "relative", O_RDONLY, 0), -EBADF);

    int fd = corio_open(p, O_CREAT | O_TRUNC | O_RDWR, 0600);
    CHECK(ck, fd >= 0);
    CHECK_EQ(ck, corio_pread(fd, NULL, 5, 0), -EINVAL);
    CHECK_EQ(ck, corio_pwrite(fd, NULL, 5, 0), -EINVAL);
    CHECK_EQ(ck, corio_pread_all(fd, NULL, 5, 0), -EINVAL);
    CHECK_EQ(ck, corio_pwrite_all(fd, NULL, 5, 0), -EINVAL);
    CHECK_EQ(ck, corio_pread(fd, NULL, 0, 0), 0);   /* nothing to move */
    CHECK_EQ(ck, corio_pwrite_all(fd, NULL, 0, 0), 0);
    CHECK_EQ(ck, corio_open(NULL, O_RDONLY, 0), -EINVAL);
    CHECK_EQ(ck, corio_close(fd), 0);
    /* a descriptor that was just closed */
    CHECK_EQ(ck, corio_pread(fd, buf, sizeof buf, 0), -EBADF);
    CHECK_EQ(ck, corio_pwrite_all(fd, "x", 1, 0), -EBADF);

    /* offsets on a pipe: -ESPIPE on epoll, ignored by io_uring (file.h) */
    int pfd[2];
    CHECK_EQ(ck, pipe2(pfd, O_CLOEXEC), 0);
    ssize_t n = corio_pwrite(pfd[1], "x", 1, 0);
    CHECK(ck, n == -ESPIPE || n == 1);
    CHECK_EQ(ck, corio_write(pfd[1], "y", 1), 1);
    n = corio_pread(pfd[0], buf, 1, 0);
    CHECK(ck, n == -ESPIPE || n == 1);
    close(pfd[0]);
    close(pfd[1]);
    unlink(p);
    return NULL;
}

static void file_bad_fd_and_null_buffers(void **state)
{
    char buf[8];
    char *all = NULL;
    size_t len = 0;

    (void)state;
    run_checks(1, bad_args_main);
    /* outside a task: nothing to suspend */
    assert_int_equal(corio_open("/dev/null", O_RDONLY, 0), -EPERM);
    assert_int_equal(corio_pread(0, buf, sizeof buf, 0), -EPERM);
    assert_int_equal(corio_fsync(0), -EPERM);
    assert_int_equal(corio_read_file("/dev/null", &all, &len, 0), -EPERM);
    assert_null(all);
}

/* ---- many tasks at once ------------------------------------------------------ */

#define MANY 24

struct many {
    struct checks ck;
    atomic_int finished;
};

struct many_one {
    struct many *m;
    int i;
};

static void *many_task(void *arg)
{
    struct many_one *o = arg;
    struct checks *ck = &o->m->ck;
    char p[128], name[32];
    snprintf(name, sizeof name, "many%d", o->i);
    path_of(p, sizeof p, name);
    size_t size = (size_t)(o->i + 1) * 4096 + (size_t)o->i;
    uint8_t *data = malloc(size);
    CHECK(ck, data != NULL);
    if (!data)
        return NULL;
    for (size_t k = 0; k < size; k++)
        data[k] = pattern(k + (size_t)o->i * 7919);

    CHECK_EQ(ck, corio_write_file(p, data, size, 0600), 0);
    CHECK_EQ(ck, corio_file_size(AT_FDCWD, p), size);
    char *back = NULL;
    size_t len = 0;
    CHECK_EQ(ck, corio_read_file(p, &back, &len, 0), 0);
    CHECK_EQ(ck, len, size);
    CHECK(ck, back && len == size && memcmp(back, data, size) == 0);
    free(back);

    int fd = corio_open(p, O_RDONLY, 0);
    CHECK(ck, fd >= 0);
    uint8_t piece[512];
    for (size_t off = 0; off + sizeof piece <= size; off += 1531) {
        CHECK_EQ(ck, corio_pread_all(fd, piece, sizeof piece, (off_t)off), sizeof piece);
        CHECK(ck, memcmp(piece, data + off, sizeof piece) == 0);
    }
    CHECK_EQ(ck, corio_close(fd), 0);
    free(data);
    unlink(p);
    atomic_fetch_add(&o->m->finished, 1);
    return NULL;
}

static void *many_main(void *arg)
{
    struct many *m = arg;
    struct many_one o[MANY];
    corio_task *t[MANY];
    for (int i = 0; i < MANY; i++) {
        o[i] = (struct many_one){m, i};
        CHECK_EQ(&m->ck, corio_spawn(&t[i], many_task, &o[i]), 0);
    }
    CHECK_EQ(&m->ck, corio_gather_tasks(t, MANY, 0, NULL, NULL), 0);
    for (int i = 0; i < MANY; i++)
        corio_task_unref(t[i]);
    return NULL;
}

static void file_many_tasks_two_workers(void **state)
{
    (void)state;
    for (int r = 0; r < 3; r++) {
        struct many m = {0};
        run_main_checked(2, many_main, &m, &m.ck);
        assert_int_equal(atomic_load(&m.finished), MANY);
    }
}

/* ---- FIFOs, pipes and cancellation ------------------------------------------ */

struct blocked {
    int fd;
    bool pread;   /* corio_pread at 0 instead of corio_read */
    atomic_int started;
    ssize_t rc;
};

/* Blocks in a read whose buffer is on this task's stack: if the kernel kept
 * the read after the task ended, it would write into a freed stack (and eat
 * the byte the case writes afterwards). */
static void *blocked_reader(void *arg)
{
    struct blocked *b = arg;
    char buf[64];
    atomic_store(&b->started, 1);
    b->rc = b->pread ? corio_pread(b->fd, buf, sizeof buf, 0)
                     : corio_read(b->fd, buf, sizeof buf);
    return NULL;
}

/* Cancels a task blocked reading @rfd, then checks that the read is gone:
 * a byte written to @wfd afterwards reaches this task. */
static void cancel_blocked_read(struct checks *ck, int rfd, int wfd)
{
    struct blocked b = {.fd = rfd, .rc = 1};
    corio_task *t = NULL;
    CHECK_EQ(ck, corio_spawn(&t, blocked_reader, &b), 0);
    for (int i = 0; i < 100 && !atomic_load(&b.started); i++)
        corio_sleep(CORIO_MSEC);
    corio_sleep(20 * CORIO_MSEC);   /* now in the read, or about to be */
    CHECK(ck, !corio_task_done(t));
    CHECK_EQ(ck, corio_task_cancel(t, "stop reading"), 1);
    CHECK_EQ(ck, corio_await(t, NULL), -ECANCELED);
    CHECK(ck, corio_task_cancelled(t));
    CHECK_EQ(ck, b.rc, -ECANCELED);
    corio_task_unref(t);

    char c = 0;
    CHECK_EQ(ck, write(wfd, "z", 1), 1);
    CHECK_EQ(ck, corio_read(rfd, &c, 1), 1);
    CHECK_EQ(ck, c, 'z');
}

static void *cancel_fifo_main(void *arg)
{
    struct checks *ck = arg;
    char p[128];
    path_of(p, sizeof p, "fifo-cancel");
    CHECK_EQ(ck, mkfifo(p, 0600), 0);

    /* O_RDWR: opens at once, and a read blocks (a writer exists: no EOF);
     * a blocking descriptor on io_uring goes through the ring's own wait */
    int fd = corio_open(p, O_RDWR, 0);
    CHECK(ck, fd >= 0);
    cancel_blocked_read(ck, fd, fd);
    CHECK_EQ(ck, corio_close(fd), 0);

    /* O_NONBLOCK: io_uring answers -EAGAIN and corio waits for readiness */
    int rfd = corio_open(p, O_RDONLY | O_NONBLOCK, 0);
    CHECK(ck, rfd >= 0);
    int wfd = corio_open(p, O_WRONLY | O_NONBLOCK, 0);
    CHECK(ck, wfd >= 0);
    cancel_blocked_read(ck, rfd, wfd);

    /* a timeout scope cancels the same way and reports -ETIMEDOUT */
    char c;
    corio_timeout tm;
    CHECK_EQ(ck, corio_timeout_enter(&tm, 20 * CORIO_MSEC), 0);
    CHECK_EQ(ck, corio_timeout_exit(&tm, (int)corio_read(rfd, &c, 1)), -ETIMEDOUT);
    CHECK_EQ(ck, corio_close(wfd), 0);
    CHECK_EQ(ck, corio_close(rfd), 0);
    unlink(p);
    return NULL;
}

static void file_cancel_blocked_fifo_read(void **state)
{
    (void)state;
    run_checks(1, cancel_fifo_main);
    run_checks(2, cancel_fifo_main);
}

struct chunked {
    int fd;
    void *buf;
    atomic_int started;
    ssize_t rc;
};

static void *chunked_reader(void *arg)
{
    struct chunked *c = arg;
    atomic_store(&c->started, 1);
    c->rc = corio_pread_all(c->fd, c->buf, LARGE / 4, 0);
    return NULL;
}

/* A regular-file read runs to its end in the kernel; the cancellation stops
 * the loop at the next chunk, or lands after the last one. */
static void *cancel_chunked_main(void *arg)
{
    struct checks *ck = arg;
    char p[128];
    path_of(p, sizeof p, "chunked");
    void *data = calloc(1, LARGE / 4);
    CHECK(ck, data != NULL);
    CHECK_EQ(ck, corio_write_file(p, data, LARGE / 4, 0600), 0);
    struct chunked c = {.buf = data, .rc = 1};
    c.fd = corio_open(p, O_RDONLY, 0);
    CHECK(ck, c.fd >= 0);
    corio_task *t = NULL;
    CHECK_EQ(ck, corio_spawn(&t, chunked_reader, &c), 0);
    /* a task cancelled before its first step never runs: wait for it */
    for (int i = 0; i < 100000 && !atomic_load(&c.started); i++)
        corio_yield();
    CHECK_EQ(ck, corio_task_cancel(t, NULL), 1);
    CHECK_EQ(ck, corio_await(t, NULL), -ECANCELED);
    CHECK(ck, corio_task_cancelled(t));
    CHECK(ck, c.rc == -ECANCELED || c.rc == LARGE / 4);
    corio_task_unref(t);
    CHECK_EQ(ck, corio_close(c.fd), 0);
    free(data);
    unlink(p);
    return NULL;
}

/* A cancellation already pending when a file call starts is delivered there
 * and nothing is started (a task cancelled before its first step never runs
 * at all, as in asyncio, so the task cancels itself). */
static void *self_cancelled_reader(void *arg)
{
    struct blocked *b = arg;
    char buf[8] = {0};
    corio_task_cancel(corio_current_task(), NULL);
    b->rc = corio_pread_all(b->fd, buf, sizeof buf, 0);
    atomic_store(&b->started, buf[0] == 0);   /* nothing was read */
    return NULL;
}

static void *cancel_early_main(void *arg)
{
    struct checks *ck = arg;
    struct blocked b = {.rc = 1};
    char p[128];
    path_of(p, sizeof p, "early");
    CHECK_EQ(ck, corio_write_file(p, "abc", 3, 0600), 0);
    b.fd = corio_open(p, O_RDONLY, 0);
    corio_task *t = NULL;
    CHECK_EQ(ck, corio_spawn(&t, self_cancelled_reader, &b), 0);
    CHECK_EQ(ck, corio_await(t, NULL), -ECANCELED);
    CHECK(ck, corio_task_cancelled(t));
    CHECK_EQ(ck, b.rc, -ECANCELED);
    CHECK_EQ(ck, atomic_load(&b.started), 1);
    corio_task_unref(t);
    CHECK_EQ(ck, corio_close(b.fd), 0);
    unlink(p);
    return NULL;
}

static void file_cancel_during_file_read(void **state)
{
    (void)state;
    size_t saved = corio__file_chunk;
    corio__file_chunk = 64 * 1024;
    run_checks(1, cancel_chunked_main);
    run_checks(2, cancel_chunked_main);
    corio__file_chunk = saved;
    run_checks(1, cancel_early_main);
}

struct feeder {
    int fd;
    struct checks *ck;
};

static void *feeder(void *arg)
{
    struct feeder *f = arg;
    static const char *parts[] = {"first ", "second ", "third"};
    for (int i = 0; i < 3; i++) {
        corio_sleep(5 * CORIO_MSEC);   /* the reader waits in between */
        CHECK_EQ(f->ck, corio_write(f->fd, parts[i], strlen(parts[i])),
                 (long long)strlen(parts[i]));
    }
    CHECK_EQ(f->ck, corio_close(f->fd), 0);   /* the reader sees EOF */
    return NULL;
}

/* Reads @fd to EOF while a task writes three parts to @wfd and closes it. */
static void read_to_eof(struct checks *ck, int rfd, int wfd)
{
    struct feeder f = {wfd, ck};
    corio_task *t = NULL;
    CHECK_EQ(ck, corio_spawn(&t, feeder, &f), 0);
    char got[64] = {0};
    size_t len = 0;
    for (;;) {
        ssize_t n = corio_read(rfd, got + len, sizeof got - 1 - len);
        CHECK(ck, n >= 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    CHECK_STR(ck, got, "first second third");
    CHECK_EQ(ck, corio_await(t, NULL), 0);
    corio_task_unref(t);
}

static void *fifo_read_main(void *arg)
{
    struct checks *ck = arg;
    char p[128];
    path_of(p, sizeof p, "fifo-read");
    CHECK_EQ(ck, mkfifo(p, 0600), 0);
    /* the reader first (a non-blocking open needs no writer), then the
     * writer (which needs a reader) */
    int rfd = corio_open(p, O_RDONLY | O_NONBLOCK, 0);
    CHECK(ck, rfd >= 0);
    int wfd = corio_open(p, O_WRONLY, 0);
    CHECK(ck, wfd >= 0);
    read_to_eof(ck, rfd, wfd);
    CHECK_EQ(ck, corio_close(rfd), 0);
    unlink(p);

    int pfd[2];
    CHECK_EQ(ck, pipe2(pfd, O_CLOEXEC), 0);
    read_to_eof(ck, pfd[0], pfd[1]);
    CHECK_EQ(ck, corio_close(pfd[0]), 0);
    return NULL;
}

static void file_fifo_and_pipe_through_corio_read(void **state)
{
    (void)state;
    run_checks(1, fifo_read_main);
    run_checks(2, fifo_read_main);
}

/* ---- main -------------------------------------------------------------- */

static int remove_entry(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    umask(022);
    snprintf(dir, sizeof dir, "/tmp/corio-file-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(file_open_write_read_back),
        cmocka_unit_test(file_pread_pwrite_at_offsets),
        cmocka_unit_test(file_large_pattern_round_trip),
        cmocka_unit_test(file_huge_length_not_truncated),
        cmocka_unit_test(file_read_write_file_round_trip),
        cmocka_unit_test(file_read_write_file_errors),
        cmocka_unit_test(file_fsync_and_fdatasync),
        cmocka_unit_test(file_statx_size_and_mode),
        cmocka_unit_test(file_bad_fd_and_null_buffers),
        cmocka_unit_test(file_many_tasks_two_workers),
        cmocka_unit_test(file_cancel_blocked_fifo_read),
        cmocka_unit_test(file_cancel_during_file_read),
        cmocka_unit_test(file_fifo_and_pipe_through_corio_read),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
