/* core/registry.c - every task that has not ended (asyncio's all_tasks()).
 *
 * One shard per worker plus one for other threads, each a doubly linked list
 * under a spinlock: a task joins the shard of the worker that spawned it and
 * leaves it when it ends (on whichever worker), so spawn and exit touch a
 * lock that is usually uncontended. Snapshots (all_tasks, shutdown) take each
 * shard in turn and reference the tasks they list.
 */
#include <stdlib.h>

#include "internal.h"

#define NOT_REGISTERED UINT32_MAX

int corio__registry_init(struct corio_rt *rt)
{
    rt->shards = aligned_alloc(64, sizeof *rt->shards * (rt->nworkers + 1));
    if (!rt->shards)
        return -ENOMEM;
    for (unsigned i = 0; i <= rt->nworkers; i++) {
        corio__spin_init(&rt->shards[i].lock);
        rt->shards[i].head = NULL;
        atomic_init(&rt->shards[i].count, 0);
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
    if (shard > rt->nworkers)
        shard = rt->nworkers;
    struct corio__registry_shard *s = &rt->shards[shard];
    t->reg_shard = shard;
    corio__spin_lock(&s->lock);
    t->reg_prev = NULL;
    t->reg_next = s->head;
    if (s->head)
        s->head->reg_prev = t;
    s->head = t;
    atomic_store_explicit(&s->count, atomic_load_explicit(&s->count, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    corio__spin_unlock(&s->lock);
}

void corio__registry_remove(struct corio_rt *rt, struct corio_task *t)
{
    if (t->reg_shard == NOT_REGISTERED)
        return;
    struct corio__registry_shard *s = &rt->shards[t->reg_shard];
    corio__spin_lock(&s->lock);
    if (t->reg_prev)
        t->reg_prev->reg_next = t->reg_next;
    else
        s->head = t->reg_next;
    if (t->reg_next)
        t->reg_next->reg_prev = t->reg_prev;
    atomic_store_explicit(&s->count, atomic_load_explicit(&s->count, memory_order_relaxed) - 1,
                          memory_order_relaxed);
    corio__spin_unlock(&s->lock);
    t->reg_shard = NOT_REGISTERED;
}

void corio__registry_exclude(struct corio_task *t)
{
    t->reg_shard = NOT_REGISTERED;
}

uint64_t corio__registry_count(struct corio_rt *rt)
{
    uint64_t n = 0;
    for (unsigned i = 0; i <= rt->nworkers; i++)
        n += atomic_load_explicit(&rt->shards[i].count, memory_order_relaxed);
    return n;
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
        for (unsigned i = 0; i <= rt->nworkers && !full; i++) {
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
