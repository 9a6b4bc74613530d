/* core/park.c - a worker's I/O backend as its place to sleep.
 *
 * A parked worker sleeps inside its backend's blocking poll (io/backend.h),
 * so its own I/O completions and its earliest timer wake it as well as
 * another thread does. Waking from another thread is a Dekker pair:
 *   unpark: store unpark_word = 1 (seq_cst), then load in_wait; if the
 *           worker is (about to be) blocked, write its eventfd;
 *   park:   store in_wait = 1 (seq_cst), then load unpark_word; block only
 *           when it is 0.
 * One of the two sees the other's store, so no wake-up is lost; extra
 * eventfd writes are harmless (the backend drains the counter). A worker
 * with nothing in flight and no timer sleeps on a futex on unpark_word
 * instead (in_wait says which), the cheaper round trip.
 *
 * The eventfd lives from the worker's start to corio_rt_destroy(), so a
 * late waker never writes to a closed (or reused) descriptor. Between parks
 * a busy worker polls without blocking every 61 ticks (core/sched.c):
 * completions, expired timers.
 */
#include <linux/futex.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend.h"
#include "internal.h"

int corio__worker_io_start(struct corio__worker *w)
{
    if (w->wake_fd <= 0) {
        w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->wake_fd < 0)
            return -errno;
    }
    const struct corio__backend_ops *ops = w->rt->io_ops;
    int rc = ops->init(w);
    if (rc < 0 && ops == &corio__uring_ops) {
        /* The probe ring worked, this one did not (locked-memory limit,
         * say): this worker alone falls back. */
        fprintf(stderr, "corio: worker %u: io_uring setup failed (%s); using epoll\n", w->id,
                corio_strerror(rc));
        ops = &corio__epoll_ops;
        rc = ops->init(w);
    }
    if (rc < 0)
        return rc;
    __atomic_store_n(&w->io_ops, ops, __ATOMIC_RELEASE);   /* metrics read it */
    w->last_trim_ns = corio_time_ns();
    return 0;
}

void corio__worker_io_stop(struct corio__worker *w)
{
    if (!w->io_ops)
        return;
    /* Nothing is in flight: every task has ended. Reap what is left (the
     * eventfd read, cancel results) before the backend goes. */
    w->io_ops->poll(w, false, 0);
    w->io_ops->fini(w);
    __atomic_store_n(&w->io_ops, NULL, __ATOMIC_RELEASE);
}

void corio__worker_io_release(struct corio__worker *w)
{
    if (w->wake_fd > 0)
        close(w->wake_fd);
    w->wake_fd = 0;
}

enum { WAIT_NONE = 0, WAIT_BACKEND, WAIT_FUTEX };

/* ThreadSanitizer runs an asynchronous signal's handler only once the
 * thread it landed on executes instrumented code again: a worker blocked in
 * the kernel with no timeout would hold a SIGINT forever. Under TSan,
 * parked workers come back every 50 ms (and sleep again). */
#if defined(__SANITIZE_THREAD__)
#define PARK_MAX_NS 50000000ull
#else
#define PARK_MAX_NS UINT64_MAX
#endif

/* A worker with nothing in flight and no timer can only be given work by
 * another thread: it sleeps on a futex (its wake-up costs a third of the
 * eventfd + ring round trip; perf W1 parks ~40k times a run). */
static void park_futex(struct corio__worker *w)
{
    atomic_store_explicit(&w->in_wait, WAIT_FUTEX, memory_order_seq_cst);
    /* Pairs with the seq_cst store in corio__worker_unpark(). The kernel
     * compares the word atomically: a wake between the load and the wait
     * makes the wait return at once. */
    if (!atomic_load_explicit(&w->unpark_word, memory_order_seq_cst) &&
        !atomic_load_explicit(&w->inbox, memory_order_seq_cst))
        syscall(SYS_futex, (uint32_t *)&w->unpark_word, FUTEX_WAIT_PRIVATE, 0,
                PARK_MAX_NS == UINT64_MAX ? NULL
                                          : &(struct timespec){0, (long)(PARK_MAX_NS % 1000000000u)},
                NULL, 0);
    atomic_store_explicit(&w->in_wait, WAIT_NONE, memory_order_relaxed);
    atomic_exchange_explicit(&w->unpark_word, 0, memory_order_acquire);
}

/* Stacks a busy worker kept go back when it parks: a batch when it has
 * nothing left to wait for (at most every 10 ms: a trim looks at the
 * arena under its lock), a smaller one at most once a second while it keeps
 * parking between timers and I/O. Each give-back is a TLB shootdown, so
 * never on every short park and never so many that a due timer waits. */
#define TRIM_QUIET_INTERVAL_NS 10000000ull
#define TRIM_BUSY_INTERVAL_NS 1000000000ull
#define TRIM_QUIET 1024
#define TRIM_BUSY 256

static void trim_stacks(struct corio__worker *w, bool quiet)
{
    uint64_t now = corio_time_ns();
    if (now - w->last_trim_ns < (quiet ? TRIM_QUIET_INTERVAL_NS : TRIM_BUSY_INTERVAL_NS))
        return;
    w->last_trim_ns = now;
    corio__stack_cache_trim(&w->stacks, &w->rt->arena, quiet ? TRIM_QUIET : TRIM_BUSY);
}

void corio__worker_park(struct corio__worker *w)
{
    uint64_t deadline = corio__timers_next(w);
    bool quiet = deadline == UINT64_MAX && w->io_ops->quiet(w);
    trim_stacks(w, quiet);
    if (quiet) {
        park_futex(w);
        return;
    }
    atomic_store_explicit(&w->in_wait, WAIT_BACKEND, memory_order_seq_cst);
    /* Pairs with the seq_cst store in corio__worker_unpark(). */
    bool notified = atomic_load_explicit(&w->unpark_word, memory_order_seq_cst) ||
                    atomic_load_explicit(&w->inbox, memory_order_seq_cst);
    uint64_t timeout = PARK_MAX_NS;
    if (deadline != UINT64_MAX) {
        uint64_t now = corio_time_ns();
        timeout = deadline > now ? deadline - now : 0;
        if (timeout > PARK_MAX_NS)
            timeout = PARK_MAX_NS;
    }
    w->io_ops->poll(w, !notified, notified ? 0 : timeout);
    atomic_store_explicit(&w->in_wait, WAIT_NONE, memory_order_relaxed);
    atomic_exchange_explicit(&w->unpark_word, 0, memory_order_acquire);
    corio__timers_run(w);
}

void corio__worker_unpark(struct corio__worker *w)
{
    atomic_store_explicit(&w->unpark_word, 1, memory_order_seq_cst);
    uint32_t mode = atomic_load_explicit(&w->in_wait, memory_order_seq_cst);
    if (mode == WAIT_BACKEND) {
        uint64_t one = 1;
        ssize_t n = write(w->wake_fd, &one, sizeof one);
        (void)n;   /* EAGAIN: the counter is saturated, the worker wakes anyway */
    } else if (mode == WAIT_FUTEX) {
        syscall(SYS_futex, (uint32_t *)&w->unpark_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}

void corio__worker_io_tick(struct corio__worker *w)
{
    w->io_ops->poll(w, false, 0);
    corio__timers_run(w);
}
