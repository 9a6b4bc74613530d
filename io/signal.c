/* io/signal.c - signal handlers as callbacks (corio/signal.h) and
 * asyncio.run's SIGINT handling, the way asyncio does it: a real signal
 * handler that only records, a wake-up descriptor, and a reader that
 * dispatches to the runtimes.
 *
 * Signal context (on_signal, any thread, any time): saves errno, sets the
 * signal's `pending` flag, writes 1 to the process's eventfd (the reader
 * resets its counter, so the write never waits), restores errno.
 * It touches only lock-free atomics and async-signal-safe calls. For SIGINT
 * in run mode it also counts: the second SIGINT puts SIG_DFL back and
 * re-raises (blocked while the handler runs, it kills on return).
 *
 * Reader: one plain thread per process ("corio-signal"), started with the
 * first handler or run, blocked in read() of the eventfd with every signal
 * masked; then dispatch() exchanges every pending flag with 0 and delivers
 * it. Flag first, write second in the handler; read first, exchange second
 * in the reader: a signal is either seen by this exchange or leaves the
 * eventfd readable for the next, so none is lost; many coalesce into one
 * delivery. Each callback is scheduled on its owner runtime
 * (corio__schedule() from a foreign thread goes through the global queue).
 * A thread rather than a task: a task would keep a read in flight on one
 * worker for the whole run, and a worker with I/O in flight cannot sleep on
 * its cheaper futex (core/park.c).
 *
 * Everything else (slots, run mode, the fd and its reader) is under `lock`, taken
 * only outside signal context. Order of a removal: sigaction() back to the
 * old disposition, then forget the owner, so a late on_signal() on another
 * thread finds no owner and its delivery is dropped.
 *
 * Lifetime: corio__signal_rt_close(), called by the runner after main's
 * shutdown, removes the runtime's handlers and disarms SIGINT under the
 * lock dispatch() holds, so nothing is delivered to the runtime afterwards;
 * the runtime is marked closed, so no handler is added afterwards. A child
 * of fork() gets its own eventfd and its own reader thread.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "corio/net.h"
#include "corio/signal.h"
#include "internal.h"

#define NSIGNALS 65   /* glibc's _NSIG: signals 1..64 */

struct slot {
    bool installed;            /* on_signal is the disposition */
    struct sigaction prev;     /* what to restore when it stops being */
    struct corio_rt *owner;    /* the runtime of the user's handler */
    corio_callback_fn fn;      /* NULL: no user handler */
    void *arg;
};


/* Read in signal context. */
static atomic_int pending[NSIGNALS];
static atomic_int wake_fd = -1;
static atomic_int sigint_armed;  /* run mode without a user SIGINT handler */
static atomic_int sigint_count;  /* SIGINTs seen while armed */

/* Under lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[NSIGNALS];
static pid_t wake_pid;                 /* the process that made wake_fd and its reader */
static struct corio_rt *run_rt;        /* the runtime whose run armed SIGINT */
static struct corio_task *run_main;    /* its main task (a reference), once spawned */
static bool run_cancel_early;          /* SIGINT came before main existed */

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "on_signal needs lock-free atomics");

static void on_signal(int signo)
{
    int saved = errno;
    if (signo == SIGINT && atomic_load(&sigint_armed) && atomic_fetch_add(&sigint_count, 1) > 0) {
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigemptyset(&dfl.sa_mask);
        sigaction(SIGINT, &dfl, NULL);
        raise(SIGINT);   /* pending until this handler returns, then fatal */
    }
    if (signo > 0 && signo < NSIGNALS)
        atomic_store(&pending[signo], 1);
    uint64_t one = 1;
    ssize_t n = write(atomic_load(&wake_fd), &one, sizeof one);
    (void)n;
    errno = saved;
}

static bool refused(int signo)
{
    return signo <= 0 || signo >= NSIGNALS || signo == SIGKILL || signo == SIGSTOP ||
           signo == SIGSEGV || signo == SIGBUS || signo == SIGILL || signo == SIGFPE ||
           (signo > SIGSYS && signo < SIGRTMIN) || signo > SIGRTMAX;
}

static void dispatch(void);

static void *reader_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (;;) {
        uint64_t count;
        if (read(fd, &count, sizeof count) < 0 && errno != EINTR && errno != EAGAIN) {
            fprintf(stderr, "corio: signal reader stops: %s\n", corio_strerror(-errno));
            return NULL;
        }
        dispatch();
    }
}

/* The eventfd on_signal() writes and the thread that reads it, under lock.
 * A child of fork() makes its own pair: the parent's thread does not exist
 * there, and its wake-ups must not reach the parent. The eventfd blocks
 * for the reader; a writer could only block on a counter near 2^64. */
static int reader_ensure(void)
{
    pid_t self = getpid();
    if (atomic_load(&wake_fd) >= 0 && wake_pid == self)
        return 0;
    int fd = eventfd(0, EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* the reader inherits it */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t th;
    int rc = -pthread_create(&th, &attr, reader_main, (void *)(intptr_t)fd);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    pthread_setname_np(th, "corio-signal");
    /* The parent's descriptor, inherited by a child, is left open: its
     * number may be in use by the child's own files after exec-less forks. */
    atomic_store(&wake_fd, fd);
    wake_pid = self;
    return 0;
}

static int install(int signo)
{
    struct slot *s = &slots[signo];
    if (s->installed)
        return 0;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    /* SA_RESTART: asyncio's siginterrupt(sig, False), so blocking calls
     * elsewhere in the process are not cut short; SA_ONSTACK: a worker's
     * alternate stack is there for its overflow reports, use it if set. */
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    atomic_store(&pending[signo], 0);
    if (sigaction(signo, &sa, &s->prev) < 0)
        return -errno;
    s->installed = true;
    return 0;
}

static void uninstall(int signo)
{
    struct slot *s = &slots[signo];
    if (!s->installed)
        return;
    sigaction(signo, &s->prev, NULL);
    s->installed = false;
    atomic_store(&pending[signo], 0);
}

/* SIGINT kills on the second only in run mode, and only while no user
 * handler has taken SIGINT over. */
static void sigint_rearm(void)
{
    atomic_store(&sigint_armed, run_rt && !slots[SIGINT].fn);
}

/* ---- delivery (on the reader thread) ---- */

static void deliver(int signo)
{
    struct slot *s = &slots[signo];
    if (s->fn) {
        struct corio_handle *h = corio__handle_new(s->owner, 1);
        if (!h)
            return;   /* out of memory: this delivery is lost, later ones are not */
        h->fn = s->fn;
        h->arg = s->arg;
        corio__schedule(s->owner, &h->node, false);
    } else if (signo == SIGINT && run_rt) {
        if (run_main)
            corio_task_cancel(run_main, NULL);
        else
            run_cancel_early = true;
    }
}

static void dispatch(void)
{
    pthread_mutex_lock(&lock);
    for (int signo = 1; signo < NSIGNALS; signo++)
        if (atomic_load_explicit(&pending[signo], memory_order_relaxed) &&
            atomic_exchange(&pending[signo], 0))
            deliver(signo);
    pthread_mutex_unlock(&lock);
}

/* ---- public API ---- */

static struct corio_rt *owner_of(int signo)
{
    if (slots[signo].fn)
        return slots[signo].owner;
    return signo == SIGINT ? run_rt : NULL;
}

static int add_locked(struct corio_rt *rt, int signo, corio_callback_fn fn, void *arg)
{
    if (rt->sig_closed)
        return -EPERM;
    struct corio_rt *owner = owner_of(signo);
    if (owner && owner != rt)
        return -EBUSY;
    int rc = reader_ensure();
    if (rc == 0)
        rc = install(signo);
    if (rc < 0)
        return rc;
    slots[signo].owner = rt;
    slots[signo].fn = fn;
    slots[signo].arg = arg;
    sigint_rearm();
    return 0;
}

int corio_add_signal_handler(corio_rt *rt, int signo, corio_callback_fn fn, void *arg)
{
    if (!rt || !fn || refused(signo))
        return -EINVAL;
    if (corio_get_running_rt() != rt)
        return -EPERM;
    pthread_mutex_lock(&lock);
    int rc = add_locked(rt, signo, fn, arg);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* Under lock. SIGINT stays installed while run mode still wants it. */
static int remove_locked(struct corio_rt *rt, int signo)
{
    struct slot *s = &slots[signo];
    if (!s->fn || s->owner != rt)
        return 0;
    if (!(signo == SIGINT && run_rt))
        uninstall(signo);
    s->fn = NULL;
    s->arg = NULL;
    s->owner = NULL;
    sigint_rearm();
    return 1;
}

int corio_remove_signal_handler(corio_rt *rt, int signo)
{
    if (!rt || refused(signo))
        return -EINVAL;
    pthread_mutex_lock(&lock);
    int rc = remove_locked(rt, signo);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* ---- asyncio.run's SIGINT, and the end of a run (core/runtime.c) ---- */

void corio__signal_run_start(struct corio_rt *rt)
{
    pthread_mutex_lock(&lock);
    struct sigaction cur;
    bool dfl = !run_rt && !slots[SIGINT].installed && sigaction(SIGINT, NULL, &cur) == 0 &&
               !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL;
    /* Best effort, as in asyncio: without a reader, SIGINT stays default. */
    if (dfl && reader_ensure() == 0 && install(SIGINT) == 0) {
        run_rt = rt;
        run_main = NULL;
        run_cancel_early = false;
        atomic_store(&sigint_count, 0);
        sigint_rearm();
    }
    pthread_mutex_unlock(&lock);
}

void corio__signal_run_main(struct corio_rt *rt, struct corio_task *main)
{
    pthread_mutex_lock(&lock);
    if (run_rt == rt && main) {
        run_main = corio_task_ref(main);
        if (run_cancel_early)
            corio_task_cancel(main, NULL);
    }
    pthread_mutex_unlock(&lock);
}

/* Returns 1 when it gave something back (handlers, run mode), 0 when the
 * runtime had nothing (left): the runner cancels what the last callbacks
 * spawned, then calls again. */
int corio__signal_rt_close(struct corio_rt *rt)
{
    pthread_mutex_lock(&lock);
    int n = 0;
    rt->sig_closed = true;
    if (run_rt == rt) {
        corio_task_unref(run_main);
        run_main = NULL;
        run_rt = NULL;
        if (!slots[SIGINT].fn)
            uninstall(SIGINT);
        sigint_rearm();
        n = 1;
    }
    for (int signo = 1; signo < NSIGNALS; signo++)
        n |= remove_locked(rt, signo);
    pthread_mutex_unlock(&lock);
    return n;
}
