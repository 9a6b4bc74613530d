/* io/signal.c - signal handlers as callbacks (corio/signal.h) and
 * asyncio.run's SIGINT handling, the way asyncio does it: a real signal
 * handler that only records, a wake-up descriptor, and a reader inside the
 * runtime that dispatches.
 *
 * Signal context (on_signal, any thread, any time): saves errno, sets the
 * signal's `pending` flag, writes 1 to the process's eventfd (non-blocking:
 * a saturated counter just fails, the reader wakes anyway), restores errno.
 * It touches only lock-free atomics and async-signal-safe calls. For SIGINT
 * in run mode it also counts: the second SIGINT puts SIG_DFL back and
 * re-raises (blocked while the handler runs, it kills on return).
 *
 * Reader: one internal task per runtime that has a handler (or runs with
 * SIGINT armed), named "corio-signal", excluded from corio_all_tasks() like
 * the runner. It loops on corio_read() of the eventfd, then dispatch()
 * exchanges every pending flag with 0 and delivers it. Flag first, write
 * second in the handler; read first, exchange second in the reader: a
 * signal is either seen by this exchange or leaves the eventfd readable
 * for the next, so none is lost; many coalesce into one delivery. Several
 * runtimes may read the same eventfd; whichever wakes delivers for all,
 * scheduling each callback on its owner's runtime (corio__schedule() from a
 * foreign thread goes through the global queue).
 *
 * Everything else (slots, run mode, readers, the fd) is under `lock`, taken
 * only outside signal context. Order of a removal: sigaction() back to the
 * old disposition, then forget the owner, so a late on_signal() on another
 * thread finds no owner and its delivery is dropped.
 *
 * Lifetime: corio__signal_rt_close(), called by the runner after main's
 * shutdown, removes the runtime's handlers, disarms SIGINT, cancels its
 * reader and awaits it, so the reader never outlives the run or blocks
 * the workers from stopping; the runtime is marked closed, so no handler is
 * added afterwards. The reader is counted as spawned only once it ended,
 * so corio_rt_alive_tasks() agrees with corio_all_tasks() during the run
 * and the counts balance after it.
 */
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

struct reader {
    struct corio_rt *rt;
    struct corio_task *task;   /* a reference of ours */
    struct reader *next;
};

/* Read in signal context. */
static atomic_int pending[NSIGNALS];
static atomic_int wake_fd = -1;
static atomic_int sigint_armed;  /* run mode without a user SIGINT handler */
static atomic_int sigint_count;  /* SIGINTs seen while armed */

/* Under lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[NSIGNALS];
static pid_t wake_pid;                 /* the process that made wake_fd */
static struct reader *readers;
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

/* The eventfd on_signal() writes. A child of fork() makes its own, so it
 * never wakes (or steals the wake-ups of) its parent's runtimes. */
static int fd_ensure(void)
{
    pid_t self = getpid();
    if (atomic_load(&wake_fd) >= 0 && wake_pid == self)
        return 0;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int old = atomic_exchange(&wake_fd, fd);
    wake_pid = self;
    if (old >= 0)
        close(old);
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

/* ---- the reader ---- */

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

static void *reader_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (;;) {
        uint64_t count;
        ssize_t n = corio_read(fd, &count, sizeof count);
        if (n == -ECANCELED)
            return NULL;
        if (n < 0 && n != -EAGAIN && n != -EINTR) {
            fprintf(stderr, "corio: signal reader stops: %s\n", corio_strerror((int)n));
            return NULL;
        }
        dispatch();
    }
}

static struct reader *reader_find(struct corio_rt *rt)
{
    for (struct reader *r = readers; r; r = r->next)
        if (r->rt == rt)
            return r;
    return NULL;
}

/* An internal task made by hand, as core/runtime.c makes the runner: not
 * in the registry, not counted as spawned (see the top of the file). */
static struct corio_task *reader_spawn(struct corio_rt *rt)
{
    struct corio_task *t = calloc(1, sizeof *t);
    char *name = strdup("corio-signal");
    if (!t || !name) {
        free(t);
        free(name);
        return NULL;
    }
    corio__future_init(&t->fut, rt, KIND_TASK);
    atomic_init(&t->fut.refs, 2);   /* the runtime's, and ours until close */
    t->node.kind = KIND_TASK;
    t->fn = reader_main;
    t->arg = (void *)(intptr_t)atomic_load(&wake_fd);
    t->name = name;
    corio__registry_exclude(t);
    corio__object_created(rt);
    atomic_init(&t->sched, TS_SCHEDULED);
    corio__schedule(rt, &t->node, false);
    return t;
}

/* Caller: a worker of @rt, under lock. */
static int reader_ensure(struct corio_rt *rt)
{
    int rc = fd_ensure();
    if (rc < 0 || reader_find(rt))
        return rc;
    struct reader *r = malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    r->task = reader_spawn(rt);
    if (!r->task) {
        free(r);
        return -ENOMEM;
    }
    r->rt = rt;
    r->next = readers;
    readers = r;
    return 0;
}

static struct reader *reader_take(struct corio_rt *rt)
{
    for (struct reader **p = &readers; *p; p = &(*p)->next) {
        if ((*p)->rt == rt) {
            struct reader *r = *p;
            *p = r->next;
            return r;
        }
    }
    return NULL;
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
    int rc = reader_ensure(rt);
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
    if (dfl && reader_ensure(rt) == 0 && install(SIGINT) == 0) {
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

/* Under lock: everything @rt holds, given back. */
static struct reader *close_locked(struct corio_rt *rt)
{
    rt->sig_closed = true;
    if (run_rt == rt) {
        corio_task_unref(run_main);
        run_main = NULL;
        run_rt = NULL;
        if (!slots[SIGINT].fn)
            uninstall(SIGINT);
        sigint_rearm();
    }
    for (int signo = 1; signo < NSIGNALS; signo++)
        remove_locked(rt, signo);
    return reader_take(rt);
}

int corio__signal_rt_close(struct corio_rt *rt)
{
    pthread_mutex_lock(&lock);
    struct reader *r = close_locked(rt);
    pthread_mutex_unlock(&lock);
    if (!r)
        return 0;
    corio_task_cancel(r->task, NULL);
    corio_await(r->task, NULL);
    /* Counted as spawned now, on the worker this runs on (its own
     * counter), to balance the end the scheduler counted. */
    struct corio__worker *w = corio__worker_current();
    corio__stat_add(w->m_spawned, 1);
    corio_task_unref(r->task);
    free(r);
    return 1;
}
