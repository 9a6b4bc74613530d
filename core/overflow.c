/* core/overflow.c - naming the task whose stack overflowed.
 *
 * A task that runs off the bottom of its stack touches the guard page below
 * it and gets SIGSEGV. The handler runs on a per-worker alternate signal
 * stack (the task's own stack is exhausted), checks whether the fault
 * address lies in the running task's guard page, and if so writes one line
 * naming the task before letting the default action kill the process (the
 * task's state is unrecoverable). Any other fault goes to whatever handler
 * was installed before ours, so corio does not hide the program's own
 * crashes. Only async-signal-safe calls are made here: write(2), no stdio,
 * no allocation.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define ALTSTACK_SIZE (64 * 1024)

static struct sigaction previous_segv, previous_bus;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static size_t append(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap)
        buf[at++] = *s++;
    return at;
}

static size_t append_u64(char *buf, size_t at, size_t cap, uint64_t v)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && at + 1 < cap)
        buf[at++] = digits[--n];
    return at;
}

static void report_overflow(const struct corio_task *t)
{
    char line[256];
    size_t n = append(line, 0, sizeof line, "corio: stack overflow in task '");
    if (t->name) {
        n = append(line, n, sizeof line, t->name);
    } else {
        n = append(line, n, sizeof line, "Task-");
        n = append_u64(line, n, sizeof line, t->id);
    }
    n = append(line, n, sizeof line, "' (");
    n = append_u64(line, n, sizeof line, t->stack.size);
    n = append(line, n, sizeof line, "-byte stack; raise it with corio_spawn_options.stack_size)\n");
    ssize_t ignored = write(STDERR_FILENO, line, n);
    (void)ignored;
}

static void chain(int sig, siginfo_t *info, void *uctx)
{
    struct sigaction *prev = sig == SIGBUS ? &previous_bus : &previous_segv;
    if (prev->sa_flags & SA_SIGINFO) {
        prev->sa_sigaction(sig, info, uctx);
        return;
    }
    if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
        prev->sa_handler(sig);
        return;
    }
    /* Default action: reinstate it; returning re-executes the faulting
     * instruction, which now kills the process with the right signal. */
    signal(sig, SIG_DFL);
}

static void on_fault(int sig, siginfo_t *info, void *uctx)
{
    struct corio__worker *w = corio__worker_current();
    /* Mid-switch the stack in use may still be the previous task's
     * (core/sched.c switch_away: it sets w->prev before it picks). */
    struct corio_task *cand[2] = {w ? w->current : NULL, w ? w->prev : NULL};
    for (int i = 0; i < 2; i++) {
        struct corio_task *t = cand[i];
        if (t && t->stack.lo &&
            corio__stack_in_guard(&t->stack, info->si_addr, w->rt->arena.page)) {
            report_overflow(t);
            break;
        }
    }
    chain(sig, info, uctx);
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
    sigaction(SIGBUS, &sa, &previous_bus);
}

void *corio__overflow_thread_init(void)
{
    pthread_once(&install_once, install);
    stack_t ss;
    if (sigaltstack(NULL, &ss) == 0 && !(ss.ss_flags & SS_DISABLE))
        return NULL;   /* the application gave this thread one already */
    ss.ss_sp = malloc(ALTSTACK_SIZE);
    if (!ss.ss_sp)
        return NULL;
    ss.ss_size = ALTSTACK_SIZE;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) < 0) {
        free(ss.ss_sp);
        return NULL;
    }
    return ss.ss_sp;
}

void corio__overflow_thread_fini(void *altstack)
{
    if (!altstack)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(altstack);
}
