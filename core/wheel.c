/* core/wheel.c - the per-worker hierarchical timer wheel.
 *
 * Protocol. A wheel belongs to one worker and every call on it is made by that
 * worker's thread: there is no lock and no atomic. A timer cancelled from
 * another thread is not removed here; the runtime marks it and its owner calls
 * corio__wheel_remove() later (DESIGN.md "Timers"). The wheel never allocates,
 * so no call fails.
 *
 * Layout (tokio's). Time is counted in 1 ms ticks. Level L has 64 slots of
 * 64^L ticks each. A timer is placed by comparing its tick with the wheel's
 * current tick `elapsed`: its level is the highest 6-bit digit in which the two
 * differ, its slot that digit of its own tick. So a level-0 timer is due within
 * the current 64 ms, a level-1 timer within the current 4096 ms but beyond the
 * current 64, and so on; the levels are strictly ordered in time, and within a
 * level the next slot due is the first occupied bit at or after the current
 * digit (a rotate and a ctz on the level's bitmap). Deadlines more than 64^6 - 1
 * ticks ahead are placed at elapsed + 64^6 - 1, the top level's farthest slot,
 * which may be "behind" the current digit: that slot belongs to the next turn
 * of the top level. Each timer keeps its exact deadline; only its placement is
 * coarse.
 *
 * Advancing. advance() repeatedly takes the earliest occupied slot whose start
 * is <= the new tick and moves `elapsed` to that start, never past an occupied
 * slot, which keeps every placement valid. A higher-level slot is cascaded: its
 * timers are re-placed by their exact deadlines relative to the new `elapsed`,
 * landing in lower levels (or, still out of range, in the top level again). A
 * level-0 slot before the new tick is entirely due. The level-0 slot of the new
 * tick itself is shared by timers due within that millisecond, so only those
 * with deadline <= now are taken and the rest stay armed; that slot's cached
 * minimum deadline lets repeated advances within one millisecond skip the walk
 * when nothing there is due. Empty wheels and empty stretches cost nothing: a
 * jump of days is a handful of cascades. The due timers are collected into one
 * batch, merge-sorted by (deadline, seq) (asyncio fires due timers in deadline
 * order, ties in scheduling order), then fired one by one.
 *
 * Callbacks. A timer is unlinked, disarmed and uncounted before t->fire(t) runs,
 * so the callback may free @t, reuse it, or re-insert it. It may insert and
 * remove any other timer, including one that is due and still waiting in the
 * batch (removing it means it will not fire). A timer inserted from a callback
 * never fires in the same advance() call, even with a deadline <= now: it waits
 * for the next advance(). That keeps a self-re-arming timer from looping forever
 * inside one call, as asyncio's call_at() from a callback runs on the next loop
 * iteration. A callback must not call advance() (it returns 0 there).
 *
 * next_deadline(). The earliest occupied slot holds the earliest timer (the
 * levels are ordered), except in the top level, where a slot holding an
 * out-of-range timer may come before slots with earlier deadlines: there the
 * occupied top-level slots are compared. Each slot caches a lower bound of its
 * deadlines: exact after inserts, possibly too low after a remove (exact again
 * whenever advance() walks the slot); the answer is that bound raised to the
 * slot's start, so it is never later than the earliest real deadline and never
 * earlier than it by more than the slot's span. A stale bound costs the caller
 * at most one early advance() per removal, which fires nothing and refreshes
 * the bound.
 */
#include "wheel.h"

#include <assert.h>

/* The same as core/internal.h's; repeated so that the wheel stays a pure data
 * structure that includes nothing of the runtime. */
#ifndef CORIO_NEVER
#define CORIO_NEVER(cond) __builtin_expect(!!(cond), 0)
#endif

#define LEVELS CORIO__WHEEL_LEVELS
#define SLOTS CORIO__WHEEL_SLOTS
#define BITS CORIO__WHEEL_SLOT_BITS
#define SLOT_MASK ((unsigned)SLOTS - 1)
/* Farthest placement ahead of `elapsed`, in ticks: the wheel spans 64^6. */
#define MAX_AHEAD ((UINT64_C(1) << (BITS * LEVELS)) - 1)

_Static_assert(SLOTS == 1u << BITS, "slot bits and slot count disagree");
_Static_assert(SLOTS == 64, "one uint64_t occupancy bitmap per level");
_Static_assert(LEVELS < CORIO__WHEEL_EXPIRED, "level sentinel collides with a level");

static inline uint64_t span(unsigned level)
{
    return UINT64_C(1) << (BITS * level);
}

/* The level for a timer placed at tick @when, seen from tick @elapsed. Above
 * the top level (placement crossing a top-level turn), the top level. */
static unsigned level_for(uint64_t elapsed, uint64_t when)
{
    uint64_t masked = (elapsed ^ when) | SLOT_MASK;
    unsigned level = (63u - (unsigned)__builtin_clzll(masked)) / BITS;
    return level < LEVELS ? level : LEVELS - 1;
}

/* Links @t into the slot for its deadline relative to wh->elapsed. */
static void place(struct corio__wheel *wh, struct corio__timer *t)
{
    uint64_t e = wh->elapsed;
    uint64_t when = t->deadline / CORIO__WHEEL_TICK_NS;
    if (when < e)
        when = e;                   /* past: the current slot, due at the next advance */
    else if (when - e > MAX_AHEAD)
        when = e + MAX_AHEAD;       /* out of range: re-cascaded until due */
    unsigned level = level_for(e, when);
    unsigned slot = (unsigned)(when >> (BITS * level)) & SLOT_MASK;

    struct corio__timer **head = &wh->slots[level][slot];
    t->level = (uint8_t)level;
    t->slot = (uint8_t)slot;
    t->prev = NULL;
    t->next = *head;
    if (*head)
        (*head)->prev = t;
    *head = t;
    wh->occupied[level] |= UINT64_C(1) << slot;
    if (t->deadline < wh->slot_min[level][slot])
        wh->slot_min[level][slot] = t->deadline;
}

/* Marks @level/@slot empty (its list already detached or emptied). */
static void slot_clear(struct corio__wheel *wh, unsigned level, unsigned slot)
{
    wh->slots[level][slot] = NULL;
    wh->occupied[level] &= ~(UINT64_C(1) << slot);
    wh->slot_min[level][slot] = UINT64_MAX;
}

/* The start tick of the earliest occupied slot, and which slot it is, or
 * UINT64_MAX when the wheel's slots are empty. Level 0 searches from the
 * current digit included (timers of the current tick); higher levels from the
 * digit after it, wrapping round to the current digit last: a top-level slot at
 * or behind the current digit belongs to the next turn. */
static uint64_t earliest(const struct corio__wheel *wh, unsigned *level_out, unsigned *slot_out)
{
    uint64_t e = wh->elapsed, best = UINT64_MAX;
    for (unsigned level = 0; level < LEVELS; level++) {
        uint64_t occ = wh->occupied[level];
        if (!occ)
            continue;
        unsigned shift = BITS * level;
        unsigned cur = (unsigned)(e >> shift) & SLOT_MASK;
        unsigned from = level == 0 ? cur : (cur + 1) & SLOT_MASK;
        uint64_t rot = from ? (occ >> from) | (occ << (64 - from)) : occ;
        unsigned skip = (unsigned)__builtin_ctzll(rot);
        unsigned dist = skip + (level == 0 ? 0 : 1);    /* slots ahead of the current one */
        uint64_t start = (e & ~(span(level) - 1)) + ((uint64_t)dist << shift);
        if (start < best) {
            best = start;
            *level_out = level;
            *slot_out = (from + skip) & SLOT_MASK;
        }
        /* The levels are ordered in time, so the first occupied one wins; the
         * loop still compares starts rather than trust that blindly. */
    }
    return best;
}

void corio__wheel_init(struct corio__wheel *wh, uint64_t now_ns)
{
    wh->now = now_ns;
    wh->elapsed = now_ns / CORIO__WHEEL_TICK_NS;
    wh->seq = 0;
    wh->count = 0;
    wh->stat_slots = 0;
    wh->expired = NULL;
    wh->firing = false;
    for (unsigned l = 0; l < LEVELS; l++) {
        wh->occupied[l] = 0;
        for (unsigned s = 0; s < SLOTS; s++) {
            wh->slots[l][s] = NULL;
            wh->slot_min[l][s] = UINT64_MAX;
        }
    }
}

void corio__timer_init(struct corio__timer *t, corio__timer_fn fire)
{
    t->next = t->prev = NULL;
    t->deadline = 0;
    t->seq = 0;
    t->fire = fire;
    t->level = t->slot = 0;
    t->armed = false;
}

void corio__wheel_insert(struct corio__wheel *wh, struct corio__timer *t, uint64_t deadline_ns)
{
    /* Misuse: re-arming an armed timer would corrupt its list; move it instead. */
    if (CORIO_NEVER(t->armed))
        corio__wheel_remove(wh, t);
    t->deadline = deadline_ns;
    t->seq = wh->seq++;
    t->armed = true;
    wh->count++;
    place(wh, t);
}

bool corio__wheel_remove(struct corio__wheel *wh, struct corio__timer *t)
{
    if (!t->armed)
        return false;
    bool in_batch = t->level == CORIO__WHEEL_EXPIRED;
    struct corio__timer **head = in_batch ? &wh->expired : &wh->slots[t->level][t->slot];
    if (t->prev)
        t->prev->next = t->next;
    else
        *head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    /* slot_min is left as it is when the slot keeps timers: a lower bound. */
    if (!in_batch && !*head)
        slot_clear(wh, t->level, t->slot);
    t->next = t->prev = NULL;
    t->armed = false;
    assert(wh->count > 0);
    wh->count--;
    return true;
}

/* The earliest deadline in a slot starting at tick @start, bounded below: the
 * cached minimum (a lower bound of the slot's deadlines) raised to the start.
 * No overflow: a slot's start is at most the tick of a deadline in it. */
static uint64_t slot_bound(const struct corio__wheel *wh, unsigned level, unsigned slot,
                           uint64_t start)
{
    uint64_t start_ns = start * CORIO__WHEEL_TICK_NS;
    uint64_t min = wh->slot_min[level][slot];
    return min > start_ns ? min : start_ns;
}

uint64_t corio__wheel_next_deadline(const struct corio__wheel *wh)
{
    if (wh->expired)
        return wh->now;             /* asked from a callback: the rest of the batch is due */
    unsigned level = 0, slot = 0;
    uint64_t start = earliest(wh, &level, &slot);
    if (start == UINT64_MAX)
        return UINT64_MAX;
    if (level < LEVELS - 1)
        return slot_bound(wh, level, slot, start);
    /* Top level: a slot holding an out-of-range timer starts before, yet may
     * hold only deadlines after, the slots that follow it; take the least
     * bound over the occupied top-level slots, in order, until one starts
     * after the best bound so far. At most 64, bitmap-driven. */
    uint64_t best = UINT64_MAX, occ = wh->occupied[level];
    uint64_t e = wh->elapsed, top = span(level);
    unsigned cur = (unsigned)(e >> (BITS * level)) & SLOT_MASK;
    for (unsigned dist = 1; dist <= SLOTS; dist++) {
        unsigned s = (cur + dist) & SLOT_MASK;
        if (!(occ >> s & 1))
            continue;
        uint64_t st = (e & ~(top - 1)) + dist * top;
        if (st * CORIO__WHEEL_TICK_NS >= best)
            break;
        uint64_t b = slot_bound(wh, level, s, st);
        if (b < best)
            best = b;
    }
    return best;
}

static bool before(const struct corio__timer *a, const struct corio__timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static struct corio__timer *merge(struct corio__timer *a, struct corio__timer *b)
{
    struct corio__timer *out = NULL, **tail = &out;
    while (a && b) {
        struct corio__timer **take = before(b, a) ? &b : &a;
        *tail = *take;
        tail = &(*take)->next;
        *take = (*take)->next;
    }
    *tail = a ? a : b;
    return out;
}

/* Bottom-up merge sort of a singly linked list (through ->next): bins[i] holds
 * a sorted run of 2^i timers, as in the Linux kernel's list_sort(); no
 * recursion, no allocation, O(n log n). 64 bins cover any count. */
static struct corio__timer *sort_batch(struct corio__timer *list)
{
    struct corio__timer *bins[64] = {0};
    unsigned top = 0;
    while (list) {
        struct corio__timer *run = list;
        list = list->next;
        run->next = NULL;
        unsigned i = 0;
        for (; bins[i]; i++) {
            run = merge(bins[i], run);
            bins[i] = NULL;
        }
        bins[i] = run;
        if (i > top)
            top = i;
    }
    struct corio__timer *out = NULL;
    for (unsigned i = 0; i <= top; i++)
        if (bins[i])
            out = merge(bins[i], out);
    return out;
}

/* Moves the due timers of level-0 slot @slot (deadline <= @now) onto @batch;
 * all of them when @all. Recomputes the slot's exact minimum. */
static struct corio__timer *take_due(struct corio__wheel *wh, unsigned slot, uint64_t now,
                                     bool all, struct corio__timer *batch)
{
    struct corio__timer *t = wh->slots[0][slot], *keep = NULL;
    uint64_t min = UINT64_MAX;
    while (t) {
        struct corio__timer *next = t->next;
        if (all || t->deadline <= now) {
            t->level = CORIO__WHEEL_EXPIRED;
            t->next = batch;
            batch = t;
        } else {
            t->next = keep;
            if (keep)
                keep->prev = t;
            t->prev = NULL;
            keep = t;
            if (t->deadline < min)
                min = t->deadline;
        }
        t = next;
    }
    if (!keep) {
        slot_clear(wh, 0, slot);
    } else {
        wh->slots[0][slot] = keep;
        wh->slot_min[0][slot] = min;
    }
    return batch;
}

size_t corio__wheel_advance(struct corio__wheel *wh, uint64_t now_ns)
{
    if (CORIO_NEVER(wh->firing) || now_ns < wh->now)
        return 0;
    uint64_t target = now_ns / CORIO__WHEEL_TICK_NS;
    struct corio__timer *batch = NULL;

    for (;;) {
        unsigned level = 0, slot = 0;
        uint64_t start = earliest(wh, &level, &slot);
        if (start > target)
            break;
        assert(start >= wh->elapsed);
        wh->elapsed = start;
        if (level == 0) {
            if (start < target) {
                wh->stat_slots++;
                batch = take_due(wh, slot, now_ns, true, batch);
                continue;
            }
            /* The current millisecond: only what is due; then nothing else can
             * be, since every other occupied slot starts later. */
            if (wh->slot_min[0][slot] <= now_ns) {
                wh->stat_slots++;
                batch = take_due(wh, slot, now_ns, false, batch);
            }
            break;
        }
        wh->stat_slots++;
        struct corio__timer *t = wh->slots[level][slot];
        slot_clear(wh, level, slot);
        while (t) {
            struct corio__timer *next = t->next;
            place(wh, t);           /* strictly lower, unless still out of range */
            t = next;
        }
    }
    if (target > wh->elapsed)
        wh->elapsed = target;       /* no occupied slot starts in between */
    wh->now = now_ns;
    if (!batch)
        return 0;

    batch = sort_batch(batch);
    for (struct corio__timer *t = batch, *prev = NULL; t; prev = t, t = t->next)
        t->prev = prev;
    wh->expired = batch;
    wh->firing = true;
    size_t fired = 0;
    struct corio__timer *t;
    while ((t = wh->expired) != NULL) {
        wh->expired = t->next;
        if (t->next)
            t->next->prev = NULL;
        t->next = t->prev = NULL;
        t->armed = false;
        wh->count--;
        fired++;
        t->fire(t);                 /* may free @t: not touched after this */
    }
    wh->firing = false;
    return fired;
}

size_t corio__wheel_count(const struct corio__wheel *wh)
{
    return wh->count;
}
