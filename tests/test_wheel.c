/* tests/test_wheel.c - the per-worker hierarchical timer wheel (core/wheel.c).
 *
 * Single-threaded cases on the exact contract: fire order (deadline, then
 * insertion), never early (deadline - 1 ns fires nothing, the deadline fires),
 * removal before firing and from another timer's callback (also of a timer due
 * in the same batch), re-insertion from a callback (it waits for the next
 * advance), next_deadline()'s bounds on every level, far deadlines (hours,
 * days, beyond the wheel's 64^6 ms) reached by big jumps that visit few slots,
 * past deadlines, and the count.
 *
 * wheel_random_matches_sorted_model drives 20,000 random timers (plus
 * re-insertions from callbacks) with random removals and random steps (tiny,
 * to next_deadline(), big, backwards) against a sorted-array model and checks
 * the exact fired sequence, every return value, the count and next_deadline()'s
 * bounds after each step. CORIO_TEST_SEED picks the seed (printed).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wheel.h"

#define NS UINT64_C(1)
#define MS (UINT64_C(1000000) * NS)
#define SEC (UINT64_C(1000) * MS)
#define HOUR (UINT64_C(3600) * SEC)
#define DAY (UINT64_C(24) * HOUR)
#define YEAR (UINT64_C(365) * DAY)
/* The wheel's span, 64^6 ms (about 2.18 years). */
#define RANGE_NS ((UINT64_C(1) << 36) * MS)

/* Deliberately not aligned to a millisecond or to any level's span. */
#define T0 (UINT64_C(1234567890123) * NS + 456789)

struct tt {
    struct corio__timer t;
    int id;
};

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

/* What fired, in order. */
static int log_ids[4096];
static uint64_t log_now[4096];
static size_t log_n;
static struct corio__wheel *cur_wheel;

static void log_reset(struct corio__wheel *wh)
{
    log_n = 0;
    cur_wheel = wh;
}

static void record(struct corio__timer *t)
{
    assert_false(t->armed);
    assert_null(t->next);
    assert_null(t->prev);
    assert_true(log_n < 4096);
    log_now[log_n] = cur_wheel->now;
    log_ids[log_n++] = container_of(t, struct tt, t)->id;
}

static void mk(struct tt *x, int id, corio__timer_fn fn)
{
    memset(x, 0xA5, sizeof(*x));    /* timer_init must not depend on prior contents */
    corio__timer_init(&x->t, fn);
    x->id = id;
}

static void expect_log(const int *ids, size_t n)
{
    assert_int_equal(log_n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(log_ids[i], ids[i]);
}

static uint64_t span_ns(unsigned level)
{
    return (UINT64_C(1) << (6 * level)) * MS;
}

/* ---- order ---- */

static void wheel_fires_by_deadline_then_insertion(void **state)
{
    (void)state;
    struct corio__wheel wh;
    corio__wheel_init(&wh, T0);
    log_reset(&wh);
    /* Deadlines across levels, inserted out of order, with exact ties (same ns)
     * and near ties (same ms, different ns). */
    static const uint64_t off[] = {
        70 * MS, 5 * MS, 5 * MS + 1, 5 * MS, 5 * HOUR, 1, 70 * MS, 4100 * MS, 5 * MS - 1,
        0, 70 * MS, 2 * DAY, 4100 * MS, 1,
    };
    enum { N = sizeof(off) / sizeof(off[0]) };
    struct tt x[N];
    for (int i = 0; i < N; i++) {
        mk(&x[i], i, record);
        corio__wheel_insert(&wh, &x[i].t, T0 + off[i]);
        assert_int_equal(x[i].t.seq, (uint64_t)i);
    }
    /* Expected: stable sort of indices by offset. */
    int want[N];
    for (int i = 0; i < N; i++)
        want[i] = i;
    for (int i = 1; i < N; i++)
        for (int j = i; j > 0 && off[want[j - 1]] > off[want[j]]; j--) {
            int tmp = want[j];
            want[j] = want[j - 1];
            want[j - 1] = tmp;
        }
    /* One jump over everything: one batch, sorted across slots and levels. */
    assert_int_equal(corio__wheel_advance(&wh, T0 + 3 * DAY), N);
    expect_log(want, N);
    assert_int_equal(corio__wheel_count(&wh), 0);

    /* Again, stepping to each next_deadline() (small batches, cascades in
     * between): the same order. */
    log_reset(&wh);
    uint64_t base = wh.now;
    for (int i = 0; i < N; i++)
        corio__wheel_insert(&wh, &x[i].t, base + off[i]);
    for (unsigned steps = 0; corio__wheel_count(&wh) > 0; steps++) {
        assert_true(steps < 10 * N);
        corio__wheel_advance(&wh, corio__wheel_next_deadline(&wh));
    }
    expect_log(want, N);
}

/* ---- never early ---- */

static void wheel_never_fires_early(void **state)
{
    (void)state;
    static const uint64_t off[] = {
        1, MS / 2, MS - 1, MS, MS + 1, 63 * MS, 64 * MS, 64 * MS + 1, 65 * MS,
        4095 * MS, 4096 * MS, 4097 * MS + 3, 262144 * MS + 7, HOUR + 1, 3 * DAY + 5,
        40 * DAY, RANGE_NS - MS, RANGE_NS + 1, 3 * YEAR + 17,
    };
    for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
        for (int stepped = 0; stepped < 2; stepped++) {
            struct corio__wheel wh;
            struct tt a;
            corio__wheel_init(&wh, T0);
            log_reset(&wh);
            mk(&a, 1, record);
            uint64_t d = T0 + off[i];
            corio__wheel_insert(&wh, &a.t, d);
            if (stepped) {
                /* Cross some cascades first: halfway, then 1 ms before. */
                assert_int_equal(corio__wheel_advance(&wh, T0 + off[i] / 2), 0);
                if (off[i] > MS)
                    assert_int_equal(corio__wheel_advance(&wh, d - MS), 0);
            }
            assert_int_equal(corio__wheel_advance(&wh, d - 1), 0);
            assert_true(a.t.armed);
            assert_int_equal(log_n, 0);
            /* Advancing to the same instant again still fires nothing. */
            assert_int_equal(corio__wheel_advance(&wh, d - 1), 0);
            assert_int_equal(corio__wheel_advance(&wh, d), 1);
            assert_false(a.t.armed);
            assert_int_equal(log_n, 1);
            assert_int_equal(log_now[0], d);
        }
    }

    /* Two timers in one millisecond: the later one stays armed in between. */
    struct corio__wheel wh;
    struct tt a, b;
    uint64_t ms = (T0 / MS + 10) * MS;
    corio__wheel_init(&wh, T0);
    log_reset(&wh);
    mk(&a, 1, record);
    mk(&b, 2, record);
    corio__wheel_insert(&wh, &b.t, ms + 900000);
    corio__wheel_insert(&wh, &a.t, ms + 100000);
    assert_int_equal(corio__wheel_advance(&wh, ms + 500000), 1);
    assert_true(b.t.armed);
    assert_int_equal(corio__wheel_advance(&wh, ms + 899999), 0);
    assert_int_equal(corio__wheel_advance(&wh, ms + 900000), 1);
    expect_log((int[]){1, 2}, 2);
}

/* ---- remove ---- */

static void wheel_remove_before_fire(void **state)
{
    (void)state;
    struct corio__wheel wh;
    struct tt a, b, c, far, never;
    corio__wheel_init(&wh, T0);
    log_reset(&wh);
    mk(&a, 1, record);
    mk(&b, 2, record);
    mk(&c, 3, record);
    mk(&far, 4, record);
    mk(&never, 5, record);
    corio__wheel_insert(&wh, &a.t, T0 + 10 * MS);
    corio__wheel_insert(&wh, &b.t, T0 + 10 * MS);
    corio__wheel_insert(&wh, &c.t, T0 + 20 * MS);
    corio__wheel_insert(&wh, &far.t, T0 + 5 * SEC);
    assert_false(corio__wheel_remove(&wh, &never.t));     /* never armed */
    assert_true(corio__wheel_remove(&wh, &b.t));
    assert_false(b.t.armed);
    assert_false(corio__wheel_remove(&wh, &b.t));         /* twice: no-op */
    assert_int_equal(corio__wheel_count(&wh), 3);
    /* Remove the only timer of a slot, then one that has been cascaded down. */
    assert_true(corio__wheel_remove(&wh, &c.t));
    assert_int_equal(corio__wheel_advance(&wh, T0 + 5 * SEC - 3 * MS), 1);
    assert_true(far.t.armed);
    assert_true(corio__wheel_remove(&wh, &far.t));
    assert_int_equal(corio__wheel_next_deadline(&wh), UINT64_MAX);
    assert_int_equal(corio__wheel_advance(&wh, T0 + DAY), 0);
    expect_log((int[]){1}, 1);
    assert_int_equal(corio__wheel_count(&wh), 0);
    /* A removed timer can be inserted again. */
    corio__wheel_insert(&wh, &b.t, T0 + DAY + 1);
    assert_int_equal(corio__wheel_advance(&wh, T0 + DAY + 1), 1);
    expect_log((int[]){1, 2}, 2);
}

static struct tt *rm_targets[4];
static bool rm_results[4];

static void remove_others(struct corio__timer *t)
{
    record(t);
    for (int i = 0; i < 4; i++)
        if (rm_targets[i])
            rm_results[i] = corio__wheel_remove(cur_wheel, &rm_targets[i]->t);
}

static void wheel_remove_from_callback(void **state)
{
    (void)state;
    struct corio__wheel wh;
    struct tt a, b, c, d, e;
    corio__wheel_init(&wh, T0);
    log_reset(&wh);
    mk(&a, 1, remove_others);
    mk(&b, 2, record);
    mk(&c, 3, record);
    mk(&d, 4, record);
    mk(&e, 5, record);
    /* b and c are due in the same advance as a (b in another slot, c in a's
     * tick); d is not due yet; e is already fired before a's callback runs. */
    corio__wheel_insert(&wh, &e.t, T0 + 1 * MS);
    corio__wheel_insert(&wh, &a.t, T0 + 2 * MS);
    corio__wheel_insert(&wh, &c.t, T0 + 2 * MS + 1);
    corio__wheel_insert(&wh, &b.t, T0 + 30 * MS);
    corio__wheel_insert(&wh, &d.t, T0 + HOUR);
    rm_targets[0] = &b;
    rm_targets[1] = &d;
    rm_targets[2] = &e;
    rm_targets[3] = NULL;
    /* e, a, c fire; b was in the same batch, after a, and is dropped. */
    assert_int_equal(corio__wheel_advance(&wh, T0 + SEC), 3);
    expect_log((int[]){5, 1, 3}, 3);
    assert_true(rm_results[0]);
    assert_true(rm_results[1]);
    assert_false(rm_results[2]);
    assert_false(b.t.armed);
    assert_false(d.t.armed);
    assert_int_equal(corio__wheel_count(&wh), 0);
    assert_int_equal(corio__wheel_next_deadline(&wh), UINT64_MAX);
    assert_int_equal(corio__wheel_advance(&wh, T0 + DAY), 0);
    expect_log((int[]){5, 1, 3}, 3);
}

/* ---- re-insert from a callback ---- */

static int periodic_left;
static uint64_t periodic_every;

static void periodic(struct corio__timer *t)
{
    record(t);
    if (--periodic_left > 0)
        corio__wheel_insert(cur_wheel, t, t->deadline + periodic_every);
}

static struct tt *spawn_target;

static void spawn_past(struct corio__timer *t)
{
    record(t);
    /* A deadline before now: must wait for the next advance. */
    corio__wheel_insert(cur_wheel, &spawn_target->t, cur_wheel->now - SEC);
}

static void wheel_reinsert_from_callback(void **state)
{
    (void)state;
    struct corio__wheel wh;
    struct tt p;
    corio__wheel_init(&wh, T0);
    log_reset(&wh);

    /* Stepping 1 ms at a time, the timer fires at each of its deadlines. */
    mk(&p, 7, periodic);
    periodic_left = 5;
    periodic_every = 10 * MS + 3;
    corio__wheel_insert(&wh, &p.t, T0 + 10 * MS);
    for (uint64_t now = T0; now <= T0 + 100 * MS; now += MS / 4)
        corio__wheel_advance(&wh, now);
    assert_int_equal(log_n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_true(log_now[i] >= T0 + 10 * MS + i * periodic_every &&
                    log_now[i] < T0 + 10 * MS + i * periodic_every + MS / 4);
    assert_false(p.t.armed);

    /* One big step: the re-inserted timer is due already but waits for the
     * next advance (documented: no firing twice in one call). */
    log_reset(&wh);
    periodic_left = 3;
    uint64_t base = wh.now;
    corio__wheel_insert(&wh, &p.t, base + MS);
    assert_int_equal(corio__wheel_advance(&wh, base + SEC), 1);
    assert_true(p.t.armed);
    assert_true(corio__wheel_next_deadline(&wh) <= wh.now);
    assert_int_equal(corio__wheel_advance(&wh, base + SEC), 1);
    assert_int_equal(corio__wheel_advance(&wh, base + SEC), 1);
    assert_int_equal(corio__wheel_advance(&wh, base + SEC), 0);
    assert_int_equal(log_n, 3);

    /* A callback inserting another timer in the past. */
    log_reset(&wh);
    struct tt s, v;
    mk(&s, 1, spawn_past);
    mk(&v, 2, record);
    spawn_target = &v;
    corio__wheel_insert(&wh, &s.t, wh.now + 5 * MS);
    assert_int_equal(corio__wheel_advance(&wh, wh.now + HOUR), 1);
    assert_true(v.t.armed);
    assert_int_equal(corio__wheel_count(&wh), 1);
    assert_int_equal(corio__wheel_advance(&wh, wh.now), 1);
    expect_log((int[]){1, 2}, 2);
}

/* ---- next_deadline ---- */

static void wheel_next_deadline_bounds(void **state)
{
    (void)state;
    struct corio__wheel wh;
    corio__wheel_init(&wh, T0);
    log_reset(&wh);
    assert_int_equal(corio__wheel_next_deadline(&wh), UINT64_MAX);

    /* One timer, on every level: exact, and within its slot's span. */
    static const uint64_t off[] = {
        1, MS / 2, 3 * MS + 7, 63 * MS, 65 * MS + 9, 4000 * MS + 1, 5000 * MS + 77,
        300000 * MS + 5, 20 * HOUR + 3, 100 * DAY + 11, RANGE_NS - 1, RANGE_NS + SEC, 4 * YEAR,
    };
    struct tt one;
    mk(&one, 1, record);
    for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
        uint64_t d = T0 + off[i];
        corio__wheel_insert(&wh, &one.t, d);
        uint64_t nd = corio__wheel_next_deadline(&wh);
        assert_true(nd <= d);
        assert_true(nd > wh.now);
        if (off[i] < RANGE_NS - MS)
            assert_true(nd + span_ns(one.t.level) > d);
        assert_true(corio__wheel_remove(&wh, &one.t));
        assert_int_equal(corio__wheel_next_deadline(&wh), UINT64_MAX);
    }

    /* Many timers across levels: driven by next_deadline() alone, as the
     * worker's loop would, each fires at its deadline and the loop wakes up a
     * bounded number of times. */
    enum { N = 400 };
    static struct tt many[N];
    uint64_t dl[N];
    uint64_t seed = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < N; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        uint64_t scale[] = {MS, SEC, HOUR, DAY, 30 * DAY};
        dl[i] = T0 + 1 + seed % (scale[i % 5] * 3);
        mk(&many[i], i, record);
        corio__wheel_insert(&wh, &many[i].t, dl[i]);
    }
    unsigned wakeups = 0;
    while (corio__wheel_count(&wh) > 0) {
        uint64_t min = UINT64_MAX;
        int argmin = -1;
        for (int i = 0; i < N; i++)
            if (many[i].t.armed && dl[i] < min) {
                min = dl[i];
                argmin = i;
            }
        uint64_t nd = corio__wheel_next_deadline(&wh);
        assert_true(nd <= min);
        assert_true(nd + span_ns(many[argmin].t.level) > min);
        assert_true(nd > wh.now);
        size_t before = log_n;
        corio__wheel_advance(&wh, nd);
        for (size_t k = before; k < log_n; k++)
            assert_int_equal(log_now[k], dl[log_ids[k]]);     /* fired exactly at its deadline */
        wakeups++;
        assert_true(wakeups <= N * 7);
    }
    assert_int_equal(log_n, N);

    /* After a remove the bound may be stale but is never later than the
     * earliest, and one advance refreshes it. */
    struct tt a, b;
    mk(&a, 1, record);
    mk(&b, 2, record);
    uint64_t ms = (wh.now / MS + 2) * MS;
    corio__wheel_insert(&wh, &a.t, ms + 100);
    corio__wheel_insert(&wh, &b.t, ms + 800);
    assert_int_equal(corio__wheel_next_deadline(&wh), ms + 100);
    corio__wheel_remove(&wh, &a.t);
    uint64_t nd = corio__wheel_next_deadline(&wh);
    assert_true(nd <= ms + 800 && nd >= ms);
    assert_int_equal(corio__wheel_advance(&wh, nd), nd == ms + 800 ? 1 : 0);
    if (b.t.armed)
        assert_int_equal(corio__wheel_next_deadline(&wh), ms + 800);
}

/* ---- far deadlines, big jumps ---- */

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void wheel_far_deadlines_after_big_jumps(void **state)
{
    (void)state;
    struct corio__wheel wh;
    corio__wheel_init(&wh, T0);
    log_reset(&wh);
    double t_start = seconds();

    /* An empty wheel jumps a century without visiting a slot. */
    assert_int_equal(corio__wheel_advance(&wh, T0 + 100 * YEAR), 0);
    assert_int_equal(wh.stat_slots, 0);

    uint64_t base = wh.now;
    static const uint64_t off[] = {
        HOUR, HOUR + 1, 7 * HOUR, DAY, 3 * DAY + 1, 30 * DAY, 400 * DAY,
        RANGE_NS + 5, 3 * YEAR, 50 * YEAR, 200 * YEAR,
    };
    enum { N = sizeof(off) / sizeof(off[0]) };
    struct tt x[N + 1];
    for (int i = 0; i < N; i++) {
        mk(&x[i], i, record);
        corio__wheel_insert(&wh, &x[i].t, base + off[i]);
    }
    mk(&x[N], N, record);
    corio__wheel_insert(&wh, &x[N].t, UINT64_MAX);        /* "never" still works */

    for (int i = 0; i < N; i++) {
        uint64_t d = base + off[i];
        uint64_t slots = wh.stat_slots;
        assert_int_equal(corio__wheel_advance(&wh, d - 1), 0);
        assert_int_equal(corio__wheel_advance(&wh, d), 1);
        assert_int_equal(log_ids[log_n - 1], i);
        assert_int_equal(log_now[log_n - 1], d);
        /* A jump costs a few cascades per level (and one per top-level turn
         * for deadlines beyond the range), not one step per millisecond. */
        uint64_t turns = (off[i] - (i ? off[i - 1] : 0)) / (RANGE_NS / 2) + 1;
        assert_true(wh.stat_slots - slots <= 4 * CORIO__WHEEL_LEVELS + 2 * turns);
    }
    assert_int_equal(corio__wheel_advance(&wh, UINT64_MAX - 1), 0);
    assert_int_equal(corio__wheel_advance(&wh, UINT64_MAX), 1);
    assert_int_equal(log_n, N + 1);
    assert_int_equal(corio__wheel_count(&wh), 0);

    /* 3,000 timers over 30 days, one jump: all fire, sorted, and the jump
     * visits at most the slots that held them (plus cascades). */
    enum { M = 3000 };
    static struct tt y[M];
    uint64_t b2 = T0;
    corio__wheel_init(&wh, b2);
    log_reset(&wh);
    uint64_t seed = 12345;
    for (int i = 0; i < M; i++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        mk(&y[i], i, record);
        corio__wheel_insert(&wh, &y[i].t, b2 + (seed >> 20) % (30 * DAY));
    }
    assert_int_equal(corio__wheel_advance(&wh, b2 + 31 * DAY), M);
    for (size_t k = 1; k < log_n; k++) {
        const struct corio__timer *p = &y[log_ids[k - 1]].t, *q = &y[log_ids[k]].t;
        assert_true(p->deadline < q->deadline ||
                    (p->deadline == q->deadline && p->seq < q->seq));
    }
    assert_true(wh.stat_slots <= (uint64_t)M * CORIO__WHEEL_LEVELS);
    /* Generous: the whole case takes microseconds; a per-millisecond loop over
     * centuries would take hours. */
    assert_true(seconds() - t_start < 5.0);
}

/* ---- past deadlines ---- */

static void wheel_past_deadline_fires_at_next_advance(void **state)
{
    (void)state;
    struct corio__wheel wh;
    struct tt a, b, c;
    uint64_t now = T0 + 10 * SEC;
    corio__wheel_init(&wh, T0);
    log_reset(&wh);
    assert_int_equal(corio__wheel_advance(&wh, now), 0);
    mk(&a, 1, record);
    mk(&b, 2, record);
    mk(&c, 3, record);
    corio__wheel_insert(&wh, &a.t, now - 1);
    corio__wheel_insert(&wh, &b.t, 0);
    corio__wheel_insert(&wh, &c.t, now);
    assert_true(corio__wheel_next_deadline(&wh) <= now);
    /* Backwards: a no-op. */
    assert_int_equal(corio__wheel_advance(&wh, now - SEC), 0);
    assert_int_equal(wh.now, now);
    assert_int_equal(corio__wheel_count(&wh), 3);
    /* The same instant again fires them, in deadline order. */
    assert_int_equal(corio__wheel_advance(&wh, now), 3);
    expect_log((int[]){2, 1, 3}, 3);
    assert_int_equal(corio__wheel_next_deadline(&wh), UINT64_MAX);
}

/* ---- count ---- */

static size_t count_seen;

static void check_count(struct corio__timer *t)
{
    record(t);
    count_seen = corio__wheel_count(cur_wheel);
}

static void wheel_count_tracks_armed(void **state)
{
    (void)state;
    struct corio__wheel wh;
    struct tt x[10];
    corio__wheel_init(&wh, T0);
    log_reset(&wh);
    assert_int_equal(corio__wheel_count(&wh), 0);
    for (int i = 0; i < 10; i++) {
        mk(&x[i], i, i == 0 ? check_count : record);
        corio__wheel_insert(&wh, &x[i].t, T0 + (uint64_t)i * HOUR);
        assert_int_equal(corio__wheel_count(&wh), (size_t)i + 1);
    }
    corio__wheel_remove(&wh, &x[9].t);
    corio__wheel_remove(&wh, &x[9].t);
    assert_int_equal(corio__wheel_count(&wh), 9);
    /* x[0] fires first; its callback sees the rest of the batch counted. */
    assert_int_equal(corio__wheel_advance(&wh, T0 + 4 * HOUR), 5);
    assert_int_equal(count_seen, 8);
    assert_int_equal(corio__wheel_count(&wh), 4);
    assert_int_equal(corio__wheel_advance(&wh, T0 + DAY), 4);
    assert_int_equal(corio__wheel_count(&wh), 0);
}

/* ---- randomized, against a sorted-array model ---- */

enum { R_TIMERS = 20000, R_REINSERTS = 20000 };

struct ref {
    uint64_t deadline, seq;
    int id;
};

enum { M_NONE, M_WHEEL, M_BATCH };

static struct {
    struct corio__wheel wh;
    struct tt timers[R_TIMERS];
    int state[R_TIMERS];
    uint64_t deadline[R_TIMERS], mseq[R_TIMERS];
    struct ref sorted[R_TIMERS];   /* armed in the model, by (deadline, seq) */
    size_t n;
    int batch[R_TIMERS];           /* due in the current advance, in order; -1 removed */
    size_t batch_n, batch_next;
    uint64_t next_seq, rng;
    int unused;                    /* timers[unused..] never inserted yet */
    int reinserts;
    bool past_in_callback;
} R;

static uint64_t rnd(void)
{
    uint64_t x = R.rng;   /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    R.rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static bool ref_before(uint64_t d1, uint64_t s1, uint64_t d2, uint64_t s2)
{
    return d1 < d2 || (d1 == d2 && s1 < s2);
}

static size_t ref_lower(uint64_t d, uint64_t s)
{
    size_t lo = 0, hi = R.n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ref_before(R.sorted[mid].deadline, R.sorted[mid].seq, d, s))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void model_insert(int id, uint64_t d)
{
    uint64_t s = R.next_seq++;
    size_t at = ref_lower(d, s);
    memmove(&R.sorted[at + 1], &R.sorted[at], (R.n - at) * sizeof(R.sorted[0]));
    R.sorted[at] = (struct ref){d, s, id};
    R.n++;
    R.state[id] = M_WHEEL;
    R.deadline[id] = d;
    R.mseq[id] = s;
}

static void model_unlink(int id)
{
    size_t at = ref_lower(R.deadline[id], R.mseq[id]);
    assert_true(at < R.n && R.sorted[at].id == id);
    memmove(&R.sorted[at], &R.sorted[at + 1], (R.n - at - 1) * sizeof(R.sorted[0]));
    R.n--;
}

/* A random deadline around @now: ties, past, every level, out of range. */
static uint64_t rand_deadline(uint64_t now)
{
    switch (below(10)) {
    case 0: return now > SEC ? now - below(SEC) : 0;                   /* past */
    case 1: return R.n ? R.sorted[below(R.n)].deadline : now + MS;     /* exact tie */
    case 2:
    case 3: return sat_add(now, below(64 * MS));
    case 4: return sat_add(now, below(5 * SEC));
    case 5: return sat_add(now, below(2 * HOUR));
    case 6: return sat_add(now, below(30 * DAY));
    case 7: return sat_add(now, RANGE_NS - 2 * SEC + below(4 * SEC));  /* range edge */
    case 8: return sat_add(now, below(6 * YEAR));
    default: return sat_add(now, below(3 * MS));
    }
}

static void r_insert(int id, uint64_t d)
{
    corio__wheel_insert(&R.wh, &R.timers[id].t, d);
    model_insert(id, d);
}

static void r_remove(int id)
{
    bool was = R.state[id] != M_NONE;
    if (R.state[id] == M_WHEEL) {
        model_unlink(id);
    } else if (R.state[id] == M_BATCH) {
        for (size_t k = R.batch_next; k < R.batch_n; k++)
            if (R.batch[k] == id)
                R.batch[k] = -1;
    }
    R.state[id] = M_NONE;
    assert_int_equal(corio__wheel_remove(&R.wh, &R.timers[id].t), was);
}

static int random_used_id(void)
{
    return R.unused ? (int)below((uint64_t)R.unused) : -1;
}

static void r_fire(struct corio__timer *t)
{
    int id = container_of(t, struct tt, t)->id;
    while (R.batch_next < R.batch_n && R.batch[R.batch_next] < 0)
        R.batch_next++;
    assert_true(R.batch_next < R.batch_n);
    assert_int_equal(id, R.batch[R.batch_next]);
    R.batch_next++;
    assert_false(t->armed);
    R.state[id] = M_NONE;
    log_n++;

    uint64_t now = R.wh.now;
    unsigned act = (unsigned)below(20);
    if (act < 4 && R.reinserts < R_REINSERTS) {                /* re-arm itself */
        R.reinserts++;
        uint64_t d = rand_deadline(now);
        R.past_in_callback |= d <= now;
        r_insert(id, d);
    } else if (act < 6) {                                      /* remove another */
        int other = random_used_id();
        if (other >= 0)
            r_remove(other);
    } else if (act == 6 && R.unused < R_TIMERS) {              /* start a new one */
        uint64_t d = rand_deadline(now);
        R.past_in_callback |= d <= now;
        r_insert(R.unused++, d);
    }
}

static void r_advance(uint64_t now)
{
    size_t expect = 0;
    R.batch_n = R.batch_next = 0;
    if (now >= R.wh.now) {
        while (expect < R.n && R.sorted[expect].deadline <= now) {
            int id = R.sorted[expect].id;
            R.batch[R.batch_n++] = id;
            R.state[id] = M_BATCH;
            expect++;
        }
        memmove(&R.sorted[0], &R.sorted[expect], (R.n - expect) * sizeof(R.sorted[0]));
        R.n -= expect;
    }
    uint64_t before = R.wh.now;
    size_t log_before = log_n;
    R.past_in_callback = false;
    size_t fired = corio__wheel_advance(&R.wh, now);
    assert_int_equal(R.wh.now, now >= before ? now : before);
    while (R.batch_next < R.batch_n && R.batch[R.batch_next] < 0)
        R.batch_next++;
    assert_int_equal(R.batch_next, R.batch_n);        /* everything due fired */
    assert_int_equal(fired, log_n - log_before);
}

static void r_check(void)
{
    assert_int_equal(corio__wheel_count(&R.wh), R.n);
    uint64_t nd = corio__wheel_next_deadline(&R.wh);
    if (!R.n) {
        assert_int_equal(nd, UINT64_MAX);
        return;
    }
    uint64_t m = R.sorted[0].deadline, now = R.wh.now;
    const struct corio__timer *first = &R.timers[R.sorted[0].id].t;
    assert_true(first->armed);
    if (m <= now) {
        assert_true(nd <= now);
    } else {
        assert_true(nd <= m);
        if (m - now < RANGE_NS - 2 * span_ns(CORIO__WHEEL_LEVELS - 1))
            assert_true(nd + span_ns(first->level) > m);
    }
}

static void wheel_random_matches_sorted_model(void **state)
{
    (void)state;
    uint64_t seed = 0xC0FFEE1234ULL;
    const char *env = getenv("CORIO_TEST_SEED");
    if (env)
        seed = strtoull(env, NULL, 0);
    print_message("wheel_random_matches_sorted_model: CORIO_TEST_SEED=%" PRIu64 "\n", seed);
    memset(&R, 0, sizeof(R));
    R.rng = seed ? seed : 1;
    uint64_t now = T0 + below(DAY);
    corio__wheel_init(&R.wh, now);
    cur_wheel = &R.wh;
    log_n = 0;
    for (int i = 0; i < R_TIMERS; i++)
        mk(&R.timers[i], i, r_fire);

    unsigned steps = 0;
    while (R.unused < R_TIMERS || R.n > 0) {
        steps++;
        assert_true(steps < 2000000);
        /* Insert a few new timers. */
        for (unsigned k = (unsigned)below(40); k > 0 && R.unused < R_TIMERS; k--)
            r_insert(R.unused++, rand_deadline(R.wh.now));
        /* Remove a few (some armed, some not). */
        for (unsigned k = (unsigned)below(8); k > 0; k--) {
            int id = random_used_id();
            if (id >= 0)
                r_remove(id);
        }
        r_check();
        /* Step. */
        uint64_t at = R.wh.now, nd = corio__wheel_next_deadline(&R.wh);
        switch (below(20)) {
        case 0: at = at > SEC ? at - below(SEC) : at; break;              /* backwards */
        case 1: break;                                                    /* same instant */
        case 2: case 3: case 4: case 5:
            if (nd != UINT64_MAX && nd > at) at = nd;                      /* as the loop does */
            break;
        case 6: case 7: case 8: case 9: case 10: at += below(2 * MS); break;
        case 11: case 12: case 13: at += below(70 * MS); break;
        case 14: case 15: at += below(10 * SEC); break;
        case 16: at += below(3 * HOUR); break;
        case 17: at += below(20 * DAY); break;
        case 18: at += below(YEAR); break;
        default: at += below(MS / 10); break;
        }
        if (R.unused == R_TIMERS && R.n > 0 && steps % 64 == 0)
            at = sat_add(R.wh.now, 40 * DAY);      /* draining: move on */
        r_advance(at);
        r_check();
        if (!R.past_in_callback && R.n > 0 && R.sorted[0].deadline > R.wh.now)
            assert_true(corio__wheel_next_deadline(&R.wh) > R.wh.now);   /* no busy loop */
    }
    /* Whatever is left (nothing) fires at the end of time. */
    r_advance(UINT64_MAX);
    assert_int_equal(corio__wheel_count(&R.wh), 0);
    print_message("  %u steps, %zu fired, %d re-inserted\n", steps, log_n, R.reinserts);
    assert_true(log_n >= R_TIMERS / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wheel_fires_by_deadline_then_insertion),
        cmocka_unit_test(wheel_never_fires_early),
        cmocka_unit_test(wheel_remove_before_fire),
        cmocka_unit_test(wheel_remove_from_callback),
        cmocka_unit_test(wheel_reinsert_from_callback),
        cmocka_unit_test(wheel_next_deadline_bounds),
        cmocka_unit_test(wheel_far_deadlines_after_big_jumps),
        cmocka_unit_test(wheel_past_deadline_fires_at_next_advance),
        cmocka_unit_test(wheel_count_tracks_armed),
        cmocka_unit_test(wheel_random_matches_sorted_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
