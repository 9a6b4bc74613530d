/* core/idle.c - which workers sleep, which search, and who wakes whom
 * (tokio's idle protocol).
 *
 * state packs (unparked << 16 | searching). Invariants:
 *   - at most half the workers search at once (corio__idle_try_search);
 *   - a producer that made work runnable calls corio__idle_notify(), which
 *     wakes one sleeper only when nobody is searching and somebody sleeps:
 *     a searcher will find the work, or it is the last searcher, which
 *     wakes another before it runs what it found (corio__idle_end_search);
 *   - a worker about to sleep first publishes itself in `sleepers` and
 *     decrements the counts (seq_cst), then checks every queue once more
 *     (core/sched.c). The producer pushed before its seq_cst load of state,
 *     so either the producer sees the sleeper and wakes it, or the sleeper
 *     sees the work: no wake-up is lost.
 * The sleepers list and wake_kind are guarded by `lock`; sleeping itself is
 * core/park.c's business.
 */
#include <stdlib.h>

#include "internal.h"

#define SEARCH_ONE 1u
#define UNPARK_ONE (1u << 16)

static unsigned searching_of(uint32_t s) { return s & 0xffffu; }
static unsigned unparked_of(uint32_t s) { return s >> 16; }

int corio__idle_init(struct corio__idle *idle, unsigned nworkers)
{
    idle->sleepers = calloc(nworkers, sizeof *idle->sleepers);
    idle->wake_kind = calloc(nworkers, sizeof *idle->wake_kind);
    if (!idle->sleepers || !idle->wake_kind) {
        free(idle->sleepers);
        free(idle->wake_kind);
        return -ENOMEM;
    }
    idle->nsleepers = 0;
    atomic_init(&idle->state, nworkers * UNPARK_ONE);
    pthread_mutex_init(&idle->lock, NULL);
    return 0;
}

void corio__idle_fini(struct corio__idle *idle)
{
    pthread_mutex_destroy(&idle->lock);
    free(idle->sleepers);
    free(idle->wake_kind);
}

void corio__idle_notify(struct corio_rt *rt)
{
    struct corio__idle *idle = &rt->idle;
    /* Pairs with the seq_cst update in corio__idle_to_parked(): the caller's
     * push happened before this fence, the sleeper rechecks queues after its
     * own. */
    atomic_thread_fence(memory_order_seq_cst);
    uint32_t s = atomic_load_explicit(&idle->state, memory_order_seq_cst);
    if (searching_of(s) != 0 || unparked_of(s) >= rt->nworkers)
        return;
    pthread_mutex_lock(&idle->lock);
    s = atomic_load_explicit(&idle->state, memory_order_seq_cst);
    if (searching_of(s) != 0 || idle->nsleepers == 0) {
        pthread_mutex_unlock(&idle->lock);
        return;
    }
    unsigned id = idle->sleepers[--idle->nsleepers];
    idle->wake_kind[id] = WAKE_SEARCH;
    /* The woken worker starts out searching, so no second notifier wakes
     * another worker for the same work. */
    atomic_fetch_add_explicit(&idle->state, UNPARK_ONE | SEARCH_ONE, memory_order_seq_cst);
    pthread_mutex_unlock(&idle->lock);
    corio__worker_unpark(&rt->workers[id]);
}

bool corio__idle_try_search(struct corio_rt *rt)
{
    uint32_t s = atomic_load_explicit(&rt->idle.state, memory_order_seq_cst);
    if (2 * searching_of(s) >= rt->nworkers)
        return false;
    atomic_fetch_add_explicit(&rt->idle.state, SEARCH_ONE, memory_order_seq_cst);
    return true;
}

bool corio__idle_end_search(struct corio_rt *rt)
{
    uint32_t prev = atomic_fetch_sub_explicit(&rt->idle.state, SEARCH_ONE, memory_order_seq_cst);
    return searching_of(prev) == 1;
}

void corio__idle_to_parked(struct corio_rt *rt, unsigned id, bool searching)
{
    struct corio__idle *idle = &rt->idle;
    pthread_mutex_lock(&idle->lock);
    uint32_t dec = UNPARK_ONE | (searching ? SEARCH_ONE : 0);
    atomic_fetch_sub_explicit(&idle->state, dec, memory_order_seq_cst);
    idle->sleepers[idle->nsleepers++] = id;
    idle->wake_kind[id] = WAKE_NONE;
    pthread_mutex_unlock(&idle->lock);
}

/* Returns true when the worker leaves its parked state: it was woken on
 * purpose (taken off the sleepers list and counted as unparked, and
 * searching when WAKE_SEARCH), or it has work of its own (@has_work: its
 * I/O or timers made tasks runnable, or tasks moved to it), in which case it
 * takes itself off the list, counted unparked and not searching. False: a
 * spurious wake-up; it is still listed and must sleep again. */
bool corio__idle_from_parked(struct corio_rt *rt, unsigned id, bool has_work)
{
    struct corio__idle *idle = &rt->idle;
    pthread_mutex_lock(&idle->lock);
    bool woken = idle->wake_kind[id] != WAKE_NONE;
    if (woken) {
        rt->workers[id].searching = idle->wake_kind[id] == WAKE_SEARCH;
    } else if (has_work) {
        for (unsigned i = 0; i < idle->nsleepers; i++) {
            if (idle->sleepers[i] == id) {
                idle->sleepers[i] = idle->sleepers[--idle->nsleepers];
                break;
            }
        }
        idle->wake_kind[id] = WAKE_SEARCH;   /* not WAKE_NONE: not listed any more */
        atomic_fetch_add_explicit(&idle->state, UNPARK_ONE, memory_order_seq_cst);
        rt->workers[id].searching = false;
        woken = true;
    }
    pthread_mutex_unlock(&idle->lock);
    return woken;
}

/* Shutdown: every sleeper wakes and is counted unparked (not searching). */
void corio__idle_unpark_all(struct corio_rt *rt)
{
    struct corio__idle *idle = &rt->idle;
    pthread_mutex_lock(&idle->lock);
    unsigned n = idle->nsleepers;
    for (unsigned i = 0; i < n; i++) {
        unsigned id = idle->sleepers[i];
        idle->wake_kind[id] = WAKE_STOP;
        atomic_fetch_add_explicit(&idle->state, UNPARK_ONE, memory_order_seq_cst);
    }
    idle->nsleepers = 0;
    pthread_mutex_unlock(&idle->lock);
    for (unsigned id = 0; id < rt->nworkers; id++)
        corio__worker_unpark(&rt->workers[id]);
}
