/* core/registry.c - every task that has not ended (asyncio's all_tasks()),
 * and the runtime's reference that keeps each one alive until then.
 *
 * One shard per worker plus CORIO__EXT_SHARDS for other threads (each
 * sticks to one), each a doubly linked list
 * under a spinlock: a task joins the shard of the worker that spawned it.
 * When it ends on that same worker it is unlinked at once. When it ends on
 * another worker, that worker does not take the spawner's lock (in W1, one
 * task spawning for two workers, that lock bounced between cores on every
 * exit): it collects such tasks in a private batch per shard and pushes each
 * batch of RETIRE_BATCH on the shard's lock-free `retired` stack with one
 * CAS (and every batch when it parks or every few dozen ticks), still holding
 * the runtime's references; whoever reaps the shard next (its worker at
 * spawn and every few dozen ticks, or shutdown) unlinks and releases them. Snapshots skip tasks that are done, so a retired task
 * waiting to be reaped is never listed.
 */
#include <stdlib.h>

#include "internal.h"

#define NOT_REGISTERED CORIO__NOT_REGISTERED
#define RETIRE_BATCH 32   /* foreign exits published per CAS on a shard */

int corio__registry_init(struct corio_rt *rt)
{
    rt->shards = aligned_alloc(64, sizeof *rt->shards * corio__registry_nshards(rt));
    if (!rt->shards)
        return -ENOMEM;
    for (unsigned i = 0; i < corio__registry_nshards(rt); i++) {
        corio__spin_init(&rt->shards[i].lock);
        rt->shards[i].head = NULL;
        atomic_init(&rt->shards[i].retired, NULL);
    }
    return 0;
}

void corio__registry_fini(struct corio_rt *rt)
{
    free(rt->shards);
    rt->shards = NULL;
}

void corio__registry_add(struct corio_rt *rt, struct corio_task *t, unsigned shard)
{
    if (shard >= corio__registry_nshards(rt))
        shard = rt->nworkers;
    struct corio__registry_shard *s = &rt->shards[shard];
    t->reg_shard = shard;
    corio__spin_lock(&s->lock);
    t->reg_prev = NULL;
    t->reg_next = s->head;
    if (s->head)
        s->head->reg_prev = t;
    s->head = t;
    corio__spin_unlock(&s->lock);
}

static void unlink_task(struct corio_rt *rt, struct corio_task *t)
{
    struct corio__registry_shard *s = &rt->shards[t->reg_shard];
    corio__spin_lock(&s->lock);
    if (t->reg_prev)
        t->reg_prev->reg_next = t->reg_next;
    else
        s->head = t->reg_next;
    if (t->reg_next)
        t->reg_next->reg_prev = t->reg_prev;
    corio__spin_unlock(&s->lock);
    t->reg_shard = NOT_REGISTERED;
}

/* Publishes @w's batch for @shard on that shard's retired stack: one CAS for
 * up to RETIRE_BATCH tasks. */
static void publish(struct corio_rt *rt, struct corio__worker *w, unsigned shard)
{
    struct corio__retire_batch *b = &w->retire[shard];
    if (!b->first)
        return;
    struct corio__registry_shard *s = &rt->shards[shard];
    struct corio_task *head = atomic_load_explicit(&s->retired, memory_order_relaxed);
    do {
        b->last->node.q.next = head ? &head->node.q : NULL;
        /* Release: pairs with the acquire exchange in corio__registry_reap(). */
    } while (!atomic_compare_exchange_weak_explicit(&s->retired, &head, b->first,
                                                    memory_order_release,
                                                    memory_order_relaxed));
    b->first = b->last = NULL;
    b->n = 0;
}

/* Drops the runtime's reference of a task that no list can reach any more.
 * When it is the last one, nobody else can take a new one (a reference is
 * only ever taken through another), so the locked decrement is skipped. */
static void release(struct corio_task *t)
{
    if (atomic_load_explicit(&t->fut.refs, memory_order_acquire) == 1)
        corio__task_free(t);
    else
        corio_task_unref(t);
}

void corio__registry_retire(struct corio_rt *rt, struct corio_task *t, struct corio__worker *w)
{
    if (t->reg_shard == NOT_REGISTERED) {
        release(t);
        return;
    }
    if (t->reg_shard == w->id) {
        unlink_task(rt, t);
        release(t);
        return;
    }
    struct corio__retire_batch *b = &w->retire[t->reg_shard];
    t->node.q.next = b->first ? &b->first->node.q : NULL;
    b->first = t;
    if (!b->last)
        b->last = t;
    if (++b->n >= RETIRE_BATCH)
        publish(rt, w, t->reg_shard);
}

void corio__registry_publish_all(struct corio_rt *rt, struct corio__worker *w)
{
    for (unsigned i = 0; i < corio__registry_nshards(rt); i++)
        publish(rt, w, i);
}

void corio__registry_reap(struct corio_rt *rt, unsigned shard)
{
    struct corio__registry_shard *s = &rt->shards[shard];
    if (!atomic_load_explicit(&s->retired, memory_order_relaxed))
        return;
    struct corio_task *t = atomic_exchange_explicit(&s->retired, NULL, memory_order_acquire);
    while (t) {
        struct corio__qnode *next = t->node.q.next;
        unlink_task(rt, t);
        release(t);
        t = next ? corio__container_of(next, struct corio_task, node.q) : NULL;
    }
}

unsigned corio__registry_external_shard(const struct corio_rt *rt)
{
    static _Atomic unsigned next;
    static _Thread_local unsigned mine = UINT32_MAX;
    if (mine == UINT32_MAX)
        mine = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) % CORIO__EXT_SHARDS;
    return rt->nworkers + mine;
}

void corio__registry_reap_external(struct corio_rt *rt)
{
    for (unsigned i = rt->nworkers; i < corio__registry_nshards(rt); i++)
        corio__registry_reap(rt, i);
}

void corio__registry_reap_all(struct corio_rt *rt)
{
    for (unsigned i = 0; i < corio__registry_nshards(rt); i++)
        corio__registry_reap(rt, i);
}

void corio__registry_exclude(struct corio_task *t)
{
    t->reg_shard = NOT_REGISTERED;
}

/* Spawned minus ended, from per-worker counters (and the external spawns) (a task may end on another
 * worker than its spawner's, so one worker's difference can be negative). */
uint64_t corio__registry_count(struct corio_rt *rt)
{
    int64_t n = (int64_t)atomic_load_explicit(&rt->ext_spawned, memory_order_relaxed);
    for (unsigned i = 0; i < rt->nworkers; i++)
        n += (int64_t)(atomic_load_explicit(&rt->workers[i].m_spawned, memory_order_relaxed) -
                       atomic_load_explicit(&rt->workers[i].m_ended, memory_order_relaxed));
    return n > 0 ? (uint64_t)n : 0;
}

/* Tasks may be spawned while we copy: if the list overflows, drop it and
 * start over with more room. */
int corio__registry_snapshot(struct corio_rt *rt, struct corio_task ***out,
                             const struct corio_task *except)
{
    size_t cap = corio__registry_count(rt) + 16;
    for (;;) {
        struct corio_task **list = malloc(cap * sizeof *list);
        if (!list)
            return -ENOMEM;
        size_t n = 0;
        bool full = false;
        for (unsigned i = 0; i < corio__registry_nshards(rt) && !full; i++) {
            struct corio__registry_shard *s = &rt->shards[i];
            corio__spin_lock(&s->lock);
            for (struct corio_task *t = s->head; t; t = t->reg_next) {
                /* Ended, but not yet retired by its worker. */
                if (t == except || corio_future_done(&t->fut))
                    continue;
                if (n == cap) {
                    full = true;
                    break;
                }
                list[n++] = corio_task_ref(t);
            }
            corio__spin_unlock(&s->lock);
        }
        if (!full) {
            *out = list;
            return (int)n;
        }
        corio_task_list_free(list, (int)n);
        cap *= 2;
    }
}
