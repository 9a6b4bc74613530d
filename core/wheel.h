/* core/wheel.h - a worker's hierarchical timer wheel (tokio's layout).
 *
 * 6 levels x 64 slots at 1 ms resolution: level L's slots each cover 64^L ms,
 * so the wheel spans 64^6 ms (about 2.2 years); farther deadlines sit in the
 * top level's farthest slot and are re-cascaded until due. Each level has one
 * 64-bit occupancy bitmap, so finding the next non-empty slot is a rotate and a
 * count-trailing-zeros, and a jump of hours costs a few cascades, not one step
 * per millisecond. Timers are intrusive: the wheel never allocates.
 *
 * A pure, single-threaded structure: every function must be called by the
 * thread that owns @wh (its worker), and there is no locking. The protocol, and
 * what a fire callback may do, is described at the top of core/wheel.c.
 */
#ifndef CORIO_CORE_WHEEL_H
#define CORIO_CORE_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct corio__timer;
typedef void (*corio__timer_fn)(struct corio__timer *t);

struct corio__timer {
    struct corio__timer *next, *prev;   /* intrusive: slot list, then the expired batch */
    uint64_t deadline;                  /* ns, CLOCK_MONOTONIC */
    uint64_t seq;                       /* insertion order, set by insert (tie-break) */
    corio__timer_fn fire;               /* set by the caller before insert */
    uint8_t level, slot;                /* where it is; level CORIO__WHEEL_EXPIRED: in the batch */
    bool armed;                         /* in the wheel (set by insert, cleared by remove/fire) */
};

#define CORIO__WHEEL_LEVELS 6
#define CORIO__WHEEL_SLOTS 64
#define CORIO__WHEEL_SLOT_BITS 6        /* log2(CORIO__WHEEL_SLOTS) */
/* 1 ms: the resolution DESIGN.md "Timers" fixes, as tokio's timer wheel does;
 * asyncio itself rounds nothing, hence the exact-deadline check in the
 * current millisecond (see core/wheel.c). */
#define CORIO__WHEEL_TICK_NS UINT64_C(1000000)
/* ->level of a timer taken out of the slots into advance()'s expired batch,
 * still armed (a callback may remove it before it fires). */
#define CORIO__WHEEL_EXPIRED 0xFF

struct corio__wheel {
    uint64_t now;           /* ns: the latest advance() (or init) */
    uint64_t elapsed;       /* ms tick: now / CORIO__WHEEL_TICK_NS */
    uint64_t seq;           /* next insertion number */
    size_t count;           /* armed timers, the expired batch included */
    uint64_t stat_slots;    /* slots advance() has fired or cascaded, ever (tests, metrics) */
    struct corio__timer *expired;   /* advance()'s sorted batch, while it fires */
    bool firing;            /* inside advance(): a nested advance() is refused */
    uint64_t occupied[CORIO__WHEEL_LEVELS];     /* bit s: slots[level][s] non-empty */
    struct corio__timer *slots[CORIO__WHEEL_LEVELS][CORIO__WHEEL_SLOTS];
    /* A lower bound on the earliest deadline in each slot (ns): exact after an
     * insert, possibly stale-low after a remove, recomputed whenever advance()
     * walks the slot. UINT64_MAX when empty. */
    uint64_t slot_min[CORIO__WHEEL_LEVELS][CORIO__WHEEL_SLOTS];
};

/* corio__wheel_init - an empty wheel whose clock reads @now_ns.
 * Call from: the owner thread. */
void corio__wheel_init(struct corio__wheel *wh, uint64_t now_ns);

/* corio__timer_init - zero @t's links, set @fire, armed = false. */
void corio__timer_init(struct corio__timer *t, corio__timer_fn fire);

/* corio__wheel_insert - arm @t for @deadline_ns (may be in the past: it fires at
 * the next advance). @t must not be armed. O(1). Sets ->deadline, ->seq.
 * Inserted from a fire callback, @t never fires in the same advance() call.
 * Call from: the owner thread (a fire callback included). */
void corio__wheel_insert(struct corio__wheel *wh, struct corio__timer *t, uint64_t deadline_ns);

/* corio__wheel_remove - disarm @t (also when it is due and waiting in the
 * batch advance() is firing). Returns true, or false (a no-op) when @t is not
 * armed. O(1). @t may be freed or reused as soon as it returns.
 * Call from: the owner thread (a fire callback included). */
bool corio__wheel_remove(struct corio__wheel *wh, struct corio__timer *t);

/* corio__wheel_next_deadline - when to call advance() next, in ns, or
 * UINT64_MAX when no timer is armed. Never later than the moment advance()
 * would fire the earliest timer (for a timer already due, at most @wh->now),
 * and never earlier than that timer's deadline by more than the granularity of
 * its slot (64^level ms). Bitmap scans only, O(levels).
 * Call from: the owner thread. */
uint64_t corio__wheel_next_deadline(const struct corio__wheel *wh);

/* corio__wheel_advance - set the clock to @now_ns and fire, in (deadline, seq)
 * order, every armed timer whose deadline <= @now_ns, calling t->fire(t) after
 * unlinking it (armed == false by then). Timers inserted by those callbacks fire
 * at the next advance at the earliest. Returns how many fired. @now_ns earlier
 * than @wh->now is a no-op (0). Not re-entrant: called from a fire callback it
 * does nothing and returns 0.
 * Call from: the owner thread. */
size_t corio__wheel_advance(struct corio__wheel *wh, uint64_t now_ns);

/* corio__wheel_count - armed timers (those due but not yet fired included). */
size_t corio__wheel_count(const struct corio__wheel *wh);

#endif /* CORIO_CORE_WHEEL_H */
