/* pool/cfwait.c - waiting on several concurrent futures from a plain thread
 * (concurrent.futures.wait and as_completed).
 *
 * Both register one internal waiter per future on a shared "sink": a mutex,
 * a condvar and an event count. A waiter's fire() runs under its future's
 * mutex and takes only the sink's mutex (never the other way round), bumps
 * the count and signals. The waiting thread re-reads the futures' states
 * after each wake-up, so a missed count never loses a completion: the count
 * only decides whether to sleep. Every node is unlinked before the nodes'
 * memory goes.
 */
#include <pthread.h>
#include <stdlib.h>

#include "pool.h"

struct sink {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t events;
};

struct node {
    struct corio__cf_waiter w;
    struct sink *sink;
    corio_cfuture *f;
    bool yielded;   /* as_completed */
};

static void fire_node(struct corio__cf_waiter *w)
{
    struct sink *s = ((struct node *)w)->sink;
    pthread_mutex_lock(&s->lock);
    s->events++;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static int sink_init(struct sink *s)
{
    pthread_mutex_init(&s->lock, NULL);
    s->events = 0;
    int rc = corio__cond_init_mono(&s->cond);
    if (rc < 0)
        pthread_mutex_destroy(&s->lock);
    return rc;
}

static void sink_fini(struct sink *s)
{
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
}

/* Sleeps until an event after @seen or the deadline: false once past it. */
static bool sink_wait(struct sink *s, uint64_t *seen, uint64_t deadline)
{
    pthread_mutex_lock(&s->lock);
    bool ok = true;
    while (s->events == *seen && ok)
        ok = corio__cond_wait_until(&s->cond, &s->lock, deadline);
    *seen = s->events;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static void nodes_link(struct node *nodes, corio_cfuture *const *fs, size_t n, struct sink *s)
{
    for (size_t i = 0; i < n; i++) {
        nodes[i].sink = s;
        nodes[i].f = fs[i];
        nodes[i].yielded = false;
        nodes[i].w.linked = false;
        corio__cfuture_add_waiter(fs[i], &nodes[i].w, fire_node);
    }
}

static void nodes_unlink(struct node *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        corio__cfuture_remove_waiter(nodes[i].f, &nodes[i].w);
}

/* Whether @return_when holds for @fs now. */
static bool condition_met(corio_cfuture *const *fs, size_t n, int return_when)
{
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        if (!corio_cfuture_done(fs[i]))
            continue;
        done++;
        if (return_when == CORIO_FIRST_COMPLETED)
            return true;
        if (return_when == CORIO_FIRST_EXCEPTION && !corio_cfuture_cancelled(fs[i]) &&
            corio__cfuture_outcome(fs[i], NULL, NULL) < 0)
            return true;
    }
    return done == n;
}

static void split(corio_cfuture *const *fs, size_t n, corio_cfuture **done, size_t *ndone,
                  corio_cfuture **pending, size_t *npending)
{
    size_t d = 0, p = 0;
    for (size_t i = 0; i < n; i++) {
        if (corio_cfuture_done(fs[i])) {
            if (done)
                done[d] = fs[i];
            d++;
        } else {
            if (pending)
                pending[p] = fs[i];
            p++;
        }
    }
    if (ndone)
        *ndone = d;
    if (npending)
        *npending = p;
}

int corio_cfutures_wait(corio_cfuture *const *fs, size_t n, int64_t timeout_ns,
                        int return_when, corio_cfuture **done, size_t *ndone,
                        corio_cfuture **pending, size_t *npending)
{
    if ((!fs && n) || timeout_ns < 0 || return_when < CORIO_FIRST_COMPLETED ||
        return_when > CORIO_ALL_COMPLETED)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return -EINVAL;
    if (n == 0 || condition_met(fs, n, return_when) || timeout_ns == 0) {
        split(fs, n, done, ndone, pending, npending);
        return 0;
    }
    struct node *nodes = malloc(n * sizeof *nodes);
    struct sink s;
    if (!nodes)
        return -ENOMEM;
    int rc = sink_init(&s);
    if (rc < 0) {
        free(nodes);
        return rc;
    }
    uint64_t deadline = corio__deadline_of(timeout_ns), seen = 0;
    nodes_link(nodes, fs, n, &s);
    while (!condition_met(fs, n, return_when) && sink_wait(&s, &seen, deadline)) {
    }
    nodes_unlink(nodes, n);
    sink_fini(&s);
    free(nodes);
    split(fs, n, done, ndone, pending, npending);
    return 0;
}

/* ---- as_completed ---- */

struct corio_cfutures_as_completed {
    struct sink sink;
    uint64_t seen, deadline;
    size_t n, left;
    struct node nodes[];
};

int corio_cfutures_as_completed_start(corio_cfutures_as_completed **out,
                                      corio_cfuture *const *fs, size_t n, int64_t timeout_ns)
{
    if (!out || (!fs && n) || timeout_ns < 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return -EINVAL;
    struct corio_cfutures_as_completed *it = malloc(sizeof *it + n * sizeof it->nodes[0]);
    if (!it)
        return -ENOMEM;
    int rc = sink_init(&it->sink);
    if (rc < 0) {
        free(it);
        return rc;
    }
    it->seen = 0;
    it->deadline = corio__deadline_of(timeout_ns);
    it->n = it->left = n;
    for (size_t i = 0; i < n; i++)
        corio_cfuture_ref(fs[i]);
    nodes_link(it->nodes, fs, n, &it->sink);
    /* concurrent.futures yields each distinct future once. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (fs[j] == fs[i]) {
                it->nodes[i].yielded = true;
                it->left--;
                break;
            }
    *out = it;
    return 0;
}

int corio_cfutures_as_completed_next(corio_cfutures_as_completed *it, corio_cfuture **f)
{
    if (!it || !f)
        return -EINVAL;
    if (it->left == 0)
        return -ENOENT;
    for (;;) {
        for (size_t i = 0; i < it->n; i++) {
            struct node *nd = &it->nodes[i];
            if (!nd->yielded && corio_cfuture_done(nd->f)) {
                nd->yielded = true;
                it->left--;
                *f = nd->f;
                return 0;
            }
        }
        if (!sink_wait(&it->sink, &it->seen, it->deadline))
            return -ETIMEDOUT;
    }
}

void corio_cfutures_as_completed_destroy(corio_cfutures_as_completed *it)
{
    if (!it)
        return;
    nodes_unlink(it->nodes, it->n);
    for (size_t i = 0; i < it->n; i++)
        corio_cfuture_unref(it->nodes[i].f);
    sink_fini(&it->sink);
    free(it);
}
