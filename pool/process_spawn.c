/* pool/process_spawn.c - a slot's worker process: starting it, ending it,
 * and what a worker that fails us, or a failing initializer, does to the
 * pool. Called by the slot task that owns the process, on the pool's thread
 * (pool/process_slot.c); pid and fd change under pp->lock, since submitters
 * read them.
 *
 * Starting. A slot task starts its process when it first has work:
 * posix_spawn of /proc/self/exe (the glibc version is
 * clone(CLONE_VM|CLONE_VFORK)+exec, safe in a process that has threads,
 * and copies no memory, so neither the rings, marked dontfork, nor other
 * threads' locks reach the child), with its end of a socketpair on
 * PP_CHILD_FD and PP_ENV set (process_wire.h), then sends it INIT.
 *
 * Dead workers. The worker closes its socket only by exiting, so end of
 * stream (or ECONNRESET/EPIPE) while a task is in flight means the process
 * died: the slot closes its socket, waits for its pidfd to be readable (the
 * child is a zombie by then; without pidfds, Linux < 5.3, waitpid blocks for
 * the moment the exit takes), reaps it with waitpid (no zombie), fails the
 * future with -EPIPE and "process pool worker <pid> died: Killed (SIGKILL)",
 * and starts a new process for its next task. The items of its batch behind
 * the one it ran go back to the front of the queue (still running) for the
 * next process; a PING'd item that never reached it runs anew. A failing
 * initializer (an ERR reply to INIT, or death during INIT) breaks the pool
 * as Python's BrokenProcessPool: queued tasks fail with -EPIPE and later
 * submits are refused.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corio/net.h"
#include "corio/process_pool.h"
#include "process_pool_int.h"
#include "process_wire.h"

extern char **environ;

/* Under pp->lock: submitters, workers() and pids() read it. */
static void set_pid(struct pp_slot *s, int pid)
{
    pthread_mutex_lock(&s->pp->lock);
    if (pid && !s->pid)
        s->pp->alive++;
    else if (!pid && s->pid)
        s->pp->alive--;
    s->pid = pid;
    pthread_mutex_unlock(&s->pp->lock);
}

/* Waits for the process of @s to end and reaps it; *@status gets its wait
 * status. Its socket must be closed first (that is what makes it exit). */
static void reap(struct pp_slot *s, int *status)
{
    if (s->pidfd >= 0) {
        corio_wait_fd(s->pidfd, POLLIN);
        close(s->pidfd);
        s->pidfd = -1;
    }
    int st = 0;
    while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (status)
        *status = st;
    set_pid(s, 0);
}

/* Under pp->lock: submitters write to s->fd under it. No operation of ours
 * is in flight on it (the slot task, its only reader, is here). */
static void close_socket(struct pp_slot *s)
{
    pthread_mutex_lock(&s->pp->lock);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    pthread_mutex_unlock(&s->pp->lock);
    s->rpos = s->rend = 0;
    s->tasks = 0;
}

/* The worker is done with: end of stream makes it exit. */
void corio__pp_retire(struct pp_slot *s)
{
    if (!s->pid)
        return;
    close_socket(s);
    reap(s, NULL);
}

/* The worker failed us (@err from the socket): make sure it is gone, reap
 * it and describe how it ended in @msg. The SIGKILL is for a worker that is
 * alive but unusable (a torn stream, our own allocation failure, user code
 * that closed the socket and went on); one that is exiting already keeps
 * its own status (the kernel ignores signals to an exiting task). */
void corio__pp_lost(struct pp_slot *s, int err, char *msg, size_t cap)
{
    int pid = s->pid;
    kill(pid, SIGKILL);
    close_socket(s);
    int st;
    reap(s, &st);
    if (err == -EPROTO || err == -ENOMEM) {
        snprintf(msg, cap, "process pool worker %d was stopped: %s", pid, corio_strerror(err));
    } else if (WIFSIGNALED(st)) {
        const char *abbrev = sigabbrev_np(WTERMSIG(st));
        snprintf(msg, cap, "process pool worker %d died: %s (SIG%s)", pid,
                 strsignal(WTERMSIG(st)), abbrev ? abbrev : "?");
    } else {
        snprintf(msg, cap, "process pool worker %d died: exited with status %d", pid,
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
}

/* The environment of a worker: ours, less any PP_ENV, plus PP_ENV. */
static char **worker_env(char *mine)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = malloc((n + 2) * sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0, el = strlen(PP_ENV);
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], PP_ENV, el) != 0 || environ[i][el] != '=')
            env[k++] = environ[i];
    env[k++] = mine;
    env[k] = NULL;
    return env;
}

static int spawn_worker(struct pp_slot *s)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    if (sv[1] == PP_CHILD_FD) {
        /* dup2(fd, fd) would keep close-on-exec: move it first. */
        int moved = fcntl(sv[1], F_DUPFD_CLOEXEC, PP_CHILD_FD + 1);
        close(sv[1]);
        sv[1] = moved;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    char mine[64];
    snprintf(mine, sizeof mine, "%s=%d", PP_ENV, (int)getpid());
    char **env = worker_env(mine);
    char *argv[] = {program_invocation_name, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none;
    sigemptyset(&none);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], PP_CHILD_FD);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
    /* The program's descriptors without close-on-exec stay out of workers. */
    posix_spawn_file_actions_addclosefrom_np(&fa, PP_CHILD_FD + 1);
#endif
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigmask(&at, &none);   /* the pool thread blocks all */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = 0;
    int rc = env && sv[1] >= 0 ? posix_spawn(&pid, "/proc/self/exe", &fa, &at, argv, env)
                               : ENOMEM;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(env);
    if (sv[1] >= 0)
        close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        return -rc;
    }
    s->fd = sv[0];
    s->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (s->pidfd >= 0)
        fcntl(s->pidfd, F_SETFD, FD_CLOEXEC);
    s->tasks = 0;
    set_pid(s, (int)pid);
    return 0;
}

/* The pool is broken (process_pool_int.h): items a slot put back are running
 * already; the cancelled ones are only freed. */
void corio__pp_break_pool(struct corio_process_pool *pp, const char *msg)
{
    pthread_mutex_lock(&pp->lock);
    if (!pp->broken) {
        pp->broken = true;
        snprintf(pp->broken_msg, sizeof pp->broken_msg, "%s", msg);
    }
    struct pp_item *list = pp->head;
    pp->head = pp->tail = NULL;
    pp->queued = 0;
    pthread_mutex_unlock(&pp->lock);
    while (list) {
        struct pp_item *next = list->next;
        if (list->claimed || corio_cfuture_set_running_or_notify_cancel(list->fut) == 1)
            corio__pp_fail_item(list, -EPIPE, msg);
        else
            corio__pp_item_free(list);
        list = next;
    }
}

/* A started, initialized worker for @s: 0, or an error with @msg (and a
 * failed initializer breaks the pool). */
int corio__pp_ensure_worker(struct pp_slot *s, char *msg, size_t cap)
{
    struct corio_process_pool *pp = s->pp;
    if (s->pid)
        return 0;
    int rc = spawn_worker(s);
    if (rc < 0) {
        snprintf(msg, cap, "process pool could not start a worker: %s", corio_strerror(rc));
        return rc;
    }
    struct pp_hdr rh;
    struct corio_bytes *b = NULL;
    const char *init = pp->init_name ? pp->init_name : "";
    rc = corio__pp_exchange(s, PP_INIT, init, pp->initarg, pp->initarg_len, &rh, &b);
    if (rc == 0 && rh.kind == PP_OK) {
        free(b);
        return 0;
    }
    char why[200];
    if (rc < 0)
        corio__pp_lost(s, rc, why, sizeof why);
    else {
        snprintf(why, sizeof why, "%s (%s)", (const char *)b->data, corio_strerror(rh.code));
        corio__pp_retire(s);
    }
    free(b);
    snprintf(msg, cap, "process pool is broken: initializer '%s' failed: %s", init, why);
    corio__pp_break_pool(pp, msg);
    return -EPIPE;
}
