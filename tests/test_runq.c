/* tests/test_runq.c - the local run queue (core/runq.c) and the injection
 * queue (core/inject.c).
 *
 * Single-thread cases check the exact protocol: FIFO order, overflow moving
 * the oldest CORIO_RUNQ_CAP/2 plus the new item in order, steal taking
 * n - n/2 and returning the last of them, index wrap-around at 2^32, and the
 * in-progress-steal states (set up by writing head directly, as a thief that
 * stopped between its two CASes would leave it). For the injection queue:
 * FIFO across ring wrap-around and growth, and across the spill list it falls
 * back to when growing fails (reached by pointing corio__inject_realloc at an
 * allocator that fails; the fixture's teardown puts realloc back). Queue
 * operations other than the spill path must leave every node's ->next as it
 * was: the cases poison it and check.
 *
 * inject_mpmc_stress runs producers pushing (singly and in batches) against
 * consumers popping batches, with an allocator that fails now and then, and
 * checks each item comes out exactly once and each consumer sees each
 * producer's items in push order.
 *
 * runq_torture_owner_vs_thieves runs one owner pushing numbered items (and
 * popping some) against CORIO_TEST_THIEVES thieves (default 3) that steal
 * from the owner and from each other and drain the overflow queue; every item
 * must be seen exactly once. CORIO_TEST_ITEMS overrides the item count
 * (default 2,000,000, or 500,000 under ThreadSanitizer).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "inject.h"
#include "runq.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

struct item {
    struct corio__qnode node;
    unsigned id;
};

static struct item *item_of(struct corio__qnode *n)
{
    return corio__container_of(n, struct item, node);
}

/* A ->next no queue would write: queues that must not touch nodes leave it. */
static struct corio__qnode poison_node;
#define POISON (&poison_node)

static struct item *make_items(unsigned count)
{
    struct item *items = calloc(count, sizeof(*items));

    assert_non_null(items);
    for (unsigned i = 0; i < count; i++) {
        items[i].id = i;
        items[i].node.next = POISON;
    }
    return items;
}

/* Pointers to items[first..first + count) in @out. */
static void node_array(struct corio__qnode **out, struct item *items, unsigned first,
                       unsigned count)
{
    for (unsigned i = 0; i < count; i++)
        out[i] = &items[first + i].node;
}

/* Pops exactly @count items from @inj with pop_batch(@max) calls and checks
 * their ids run @first, @first + 1, ... */
static void expect_inject(struct corio__inject *inj, unsigned first, unsigned count, size_t max)
{
    struct corio__qnode *out[512];

    assert_true(max > 0 && max <= 512);
    while (count > 0) {
        size_t want = count < max ? count : max;
        size_t got = corio__inject_pop_batch(inj, out, want);
        assert_int_equal(got, want);
        for (size_t i = 0; i < got; i++)
            assert_int_equal(item_of(out[i])->id, first + i);
        first += (unsigned)got;
        count -= (unsigned)got;
    }
}

/* The allocator the injection queue grows with, switchable to failing. */
static atomic_bool alloc_fails;
static atomic_uint alloc_calls;

static void *switchable_realloc(void *ptr, size_t size)
{
    atomic_fetch_add(&alloc_calls, 1);
    return atomic_load(&alloc_fails) ? NULL : realloc(ptr, size);
}

static void use_test_allocator(bool fail)
{
    atomic_store(&alloc_fails, fail);
    atomic_store(&alloc_calls, 0);
    corio__inject_realloc = switchable_realloc;
}

static unsigned spilled(struct corio__inject *inj)
{
    unsigned n = 0;

    for (struct corio__qnode *p = inj->spill_head; p != NULL; p = p->next)
        n++;
    return n;
}

/* Pops everything from @q and checks the ids are @first, @first + 1, ...,
 * @first + @count - 1. */
static void expect_pops(struct corio__runq *q, unsigned first, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        struct corio__qnode *n = corio__runq_pop_owner(q);
        assert_non_null(n);
        assert_int_equal(item_of(n)->id, first + i);
    }
    assert_null(corio__runq_pop_owner(q));
}

static void fill(struct corio__runq *q, struct corio__inject *inj, struct item *items,
                 unsigned first, unsigned count)
{
    for (unsigned i = 0; i < count; i++)
        assert_int_equal(corio__runq_push_owner(q, &items[first + i].node, inj), 0);
}

/* Puts @q's indices at @pos, as if @pos items had been pushed and popped. */
static void set_position(struct corio__runq *q, uint32_t pos)
{
    atomic_store(&q->head, (uint64_t)pos << 32 | pos);
    atomic_store(&q->tail, pos);
}

static int setup_inject(void **state)
{
    struct corio__inject *inj = malloc(sizeof(*inj));

    if (inj == NULL || corio__inject_init(inj) != 0)
        return -1;
    *state = inj;
    return 0;
}

static int teardown_inject(void **state)
{
    struct corio__inject *inj = *state;

    corio__inject_realloc = realloc;
    corio__inject_fini(inj);
    free(inj);
    return 0;
}

static void runq_push_pop_fifo(void **state)
{
    struct corio__inject *inj = *state;
    struct corio__runq q;
    struct item *items = make_items(1000);

    corio__runq_init(&q);
    assert_null(corio__runq_pop_owner(&q));
    /* Interleave so the indices go round the ring several times. */
    unsigned pushed = 0, popped = 0;
    while (pushed < 1000) {
        fill(&q, inj, items, pushed, 100);
        pushed += 100;
        for (unsigned i = 0; i < 90; i++) {
            struct corio__qnode *n = corio__runq_pop_owner(&q);
            assert_non_null(n);
            assert_int_equal(item_of(n)->id, popped++);
        }
    }
    expect_pops(&q, popped, pushed - popped);
    assert_true(corio__inject_is_empty(inj));
    free(items);
}

static void runq_overflow_moves_oldest_half_plus_new(void **state)
{
    struct corio__inject *inj = *state;
    struct corio__runq q;
    struct item *items = make_items(CORIO_RUNQ_CAP + 1);

    corio__runq_init(&q);
    fill(&q, inj, items, 0, CORIO_RUNQ_CAP);
    assert_int_equal(corio__runq_len(&q), CORIO_RUNQ_CAP);
    assert_int_equal(corio__runq_free_owner(&q), 0);
    assert_true(corio__inject_is_empty(inj));

    assert_int_equal(corio__runq_push_owner(&q, &items[CORIO_RUNQ_CAP].node, inj), 1);
    assert_int_equal(corio__inject_len(inj), CORIO_RUNQ_CAP / 2 + 1);
    assert_int_equal(corio__runq_len(&q), CORIO_RUNQ_CAP / 2);

    for (unsigned i = 0; i < CORIO_RUNQ_CAP / 2; i++) {
        struct corio__qnode *n = corio__inject_pop(inj);
        assert_non_null(n);
        assert_int_equal(item_of(n)->id, i);
    }
    struct corio__qnode *n = corio__inject_pop(inj);
    assert_non_null(n);
    assert_int_equal(item_of(n)->id, CORIO_RUNQ_CAP);
    assert_null(corio__inject_pop(inj));

    expect_pops(&q, CORIO_RUNQ_CAP / 2, CORIO_RUNQ_CAP / 2);
    /* The overflow copied pointers: no node was linked. */
    for (unsigned i = 0; i <= CORIO_RUNQ_CAP; i++)
        assert_ptr_equal(items[i].node.next, POISON);
    free(items);
}

static void runq_overflow_across_index_wrap(void **state)
{
    struct corio__inject *inj = *state;
    struct corio__runq q;
    struct item *items = make_items(CORIO_RUNQ_CAP + 2);

    corio__runq_init(&q);
    set_position(&q, UINT32_MAX - 10);
    fill(&q, inj, items, 0, CORIO_RUNQ_CAP);
    assert_int_equal(corio__runq_len(&q), CORIO_RUNQ_CAP);
    assert_int_equal(corio__runq_push_owner(&q, &items[CORIO_RUNQ_CAP + 1].node, inj), 1);

    struct corio__qnode *out[CORIO_RUNQ_CAP];
    size_t count = corio__inject_pop_batch(inj, out, CORIO_RUNQ_CAP);
    assert_int_equal(count, CORIO_RUNQ_CAP / 2 + 1);
    for (unsigned i = 0; i < CORIO_RUNQ_CAP / 2; i++)
        assert_int_equal(item_of(out[i])->id, i);
    assert_int_equal(item_of(out[CORIO_RUNQ_CAP / 2])->id, CORIO_RUNQ_CAP + 1);

    /* Room again: the next push goes to the ring. */
    assert_int_equal(corio__runq_push_owner(&q, &items[CORIO_RUNQ_CAP].node, inj), 0);
    expect_pops(&q, CORIO_RUNQ_CAP / 2, CORIO_RUNQ_CAP / 2 + 1);
    free(items);
}

static void runq_overflow_during_steal_moves_only_new(void **state)
{
    struct corio__inject *inj = *state;
    struct corio__runq q;
    struct item *items = make_items(CORIO_RUNQ_CAP + 2);

    corio__runq_init(&q);
    fill(&q, inj, items, 0, CORIO_RUNQ_CAP);
    /* A thief has claimed [0, 64) and is still copying. */
    atomic_store(&q.head, (uint64_t)0 << 32 | 64);
    assert_int_equal(corio__runq_len(&q), CORIO_RUNQ_CAP - 64);

    assert_int_equal(corio__runq_push_owner(&q, &items[CORIO_RUNQ_CAP + 1].node, inj), 1);
    assert_int_equal(corio__inject_len(inj), 1);
    struct corio__qnode *n = corio__inject_pop(inj);
    assert_int_equal(item_of(n)->id, CORIO_RUNQ_CAP + 1);

    /* The owner may still pop past the claim; steal stays for the thief. */
    n = corio__runq_pop_owner(&q);
    assert_int_equal(item_of(n)->id, 64);
    assert_int_equal(atomic_load(&q.head), (uint64_t)0 << 32 | 65);

    /* The thief finishes: the room it held is usable again. */
    atomic_store(&q.head, (uint64_t)65 << 32 | 65);
    assert_int_equal(corio__runq_push_owner(&q, &items[CORIO_RUNQ_CAP].node, inj), 0);
    assert_true(corio__inject_is_empty(inj));
    expect_pops(&q, 65, CORIO_RUNQ_CAP + 1 - 65);
    free(items);
}

/* Steals from a queue of @n items and checks: the last of the n - n/2 oldest
 * is returned, the others are in dst in order, the rest stay in the victim. */
static void check_steal_half(struct corio__inject *inj, unsigned n, uint32_t pos)
{
    struct corio__runq victim, dst;
    struct item *items = make_items(n);
    unsigned k = n - n / 2;

    corio__runq_init(&victim);
    corio__runq_init(&dst);
    set_position(&victim, pos);
    set_position(&dst, pos * 3);
    fill(&victim, inj, items, 0, n);

    struct corio__qnode *got = corio__runq_steal_into(&victim, &dst);
    assert_non_null(got);
    assert_int_equal(item_of(got)->id, k - 1);
    assert_int_equal(corio__runq_len(&dst), k - 1);
    assert_int_equal(corio__runq_len(&victim), n - k);
    /* steal == real again: the steal finished. */
    uint64_t h = atomic_load(&victim.head);
    assert_int_equal((uint32_t)(h >> 32), (uint32_t)h);

    expect_pops(&dst, 0, k - 1);
    expect_pops(&victim, k, n - k);
    free(items);
}

static void runq_steal_takes_half(void **state)
{
    static const unsigned sizes[] = {1, 2, 3, 4, 7, 100, 255, CORIO_RUNQ_CAP};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        check_steal_half(*state, sizes[i], 0);
        check_steal_half(*state, sizes[i], UINT32_MAX - 5);
    }
}

static void runq_steal_from_empty_returns_null(void **state)
{
    (void)state;
    struct corio__runq victim, dst;

    corio__runq_init(&victim);
    corio__runq_init(&dst);
    assert_null(corio__runq_steal_into(&victim, &dst));
    assert_int_equal(atomic_load(&victim.head), 0);
    assert_true(corio__runq_is_empty(&dst));
}

static void runq_steal_backs_off_while_another_steals(void **state)
{
    struct corio__inject *inj = *state;
    struct corio__runq victim, dst;
    struct item *items = make_items(10);

    corio__runq_init(&victim);
    corio__runq_init(&dst);
    fill(&victim, inj, items, 0, 10);
    atomic_store(&victim.head, (uint64_t)0 << 32 | 5);
    assert_null(corio__runq_steal_into(&victim, &dst));
    assert_int_equal(atomic_load(&victim.head), (uint64_t)0 << 32 | 5);

    atomic_store(&victim.head, (uint64_t)5 << 32 | 5);
    struct corio__qnode *got = corio__runq_steal_into(&victim, &dst);
    assert_int_equal(item_of(got)->id, 7);
    expect_pops(&dst, 5, 2);
    expect_pops(&victim, 8, 2);
    free(items);
}

static void runq_steal_refused_when_dst_lacks_room(void **state)
{
    struct corio__inject *inj = *state;
    struct corio__runq victim, dst;
    struct item *items = make_items(200);

    corio__runq_init(&victim);
    corio__runq_init(&dst);
    fill(&victim, inj, items, 0, 10);
    fill(&dst, inj, items, 10, CORIO_RUNQ_CAP / 2 + 1);
    assert_null(corio__runq_steal_into(&victim, &dst));
    assert_int_equal(corio__runq_len(&victim), 10);

    /* Exactly half full is enough room for the largest possible steal. */
    assert_non_null(corio__runq_pop_owner(&dst));
    assert_non_null(corio__runq_steal_into(&victim, &dst));
    assert_int_equal(corio__runq_len(&victim), 5);
    assert_int_equal(corio__runq_len(&dst), CORIO_RUNQ_CAP / 2 + 4);
    free(items);
}

static void runq_push_batch(void **state)
{
    struct corio__inject *inj = *state;
    struct corio__runq q;
    struct item *items = make_items(CORIO_RUNQ_CAP);

    corio__runq_init(&q);
    set_position(&q, UINT32_MAX - 3);
    fill(&q, inj, items, 0, 6);
    assert_int_equal(corio__runq_free_owner(&q), CORIO_RUNQ_CAP - 6);

    unsigned count = CORIO_RUNQ_CAP - 6;
    struct corio__qnode *batch[CORIO_RUNQ_CAP];
    node_array(batch, items, 6, count);
    corio__runq_push_batch_owner(&q, batch, count);
    assert_int_equal(corio__runq_free_owner(&q), 0);
    assert_int_equal(corio__runq_len(&q), CORIO_RUNQ_CAP);

    corio__runq_push_batch_owner(&q, NULL, 0);
    assert_int_equal(corio__runq_len(&q), CORIO_RUNQ_CAP);
    expect_pops(&q, 0, CORIO_RUNQ_CAP);
    assert_int_equal(corio__runq_free_owner(&q), CORIO_RUNQ_CAP);
    for (unsigned i = 0; i < CORIO_RUNQ_CAP; i++)
        assert_ptr_equal(items[i].node.next, POISON);
    free(items);
}

static void runq_len_and_is_empty(void **state)
{
    struct corio__inject *inj = *state;
    struct corio__runq q;
    struct item *items = make_items(3);

    corio__runq_init(&q);
    assert_true(corio__runq_is_empty(&q));
    assert_int_equal(corio__runq_len(&q), 0);
    fill(&q, inj, items, 0, 3);
    assert_false(corio__runq_is_empty(&q));
    assert_int_equal(corio__runq_len(&q), 3);
    corio__runq_pop_owner(&q);
    assert_int_equal(corio__runq_len(&q), 2);
    corio__runq_pop_owner(&q);
    corio__runq_pop_owner(&q);
    assert_true(corio__runq_is_empty(&q));
    /* Items claimed by an unfinished steal are no longer counted. */
    fill(&q, inj, items, 0, 3);
    atomic_store(&q.head, (uint64_t)3 << 32 | 5);
    assert_int_equal(corio__runq_len(&q), 1);
    free(items);
}

static void inject_push_pop_fifo(void **state)
{
    struct corio__inject *inj = *state;
    struct item *items = make_items(5);

    assert_null(corio__inject_pop(inj));
    assert_true(corio__inject_is_empty(inj));
    for (unsigned i = 0; i < 5; i++) {
        corio__inject_push(inj, &items[i].node);
        assert_int_equal(corio__inject_len(inj), i + 1);
    }
    for (unsigned i = 0; i < 5; i++) {
        struct corio__qnode *n = corio__inject_pop(inj);
        assert_int_equal(item_of(n)->id, i);
        assert_ptr_equal(n->next, POISON);
        assert_int_equal(corio__inject_len(inj), 4 - i);
    }
    assert_null(corio__inject_pop(inj));
    /* Reusable after it emptied. */
    corio__inject_push(inj, &items[2].node);
    assert_int_equal(item_of(corio__inject_pop(inj))->id, 2);
    free(items);
}

static void inject_push_batch_appends_in_order(void **state)
{
    struct corio__inject *inj = *state;
    struct item *items = make_items(6);

    struct corio__qnode *batch[3];

    corio__inject_push(inj, &items[0].node);
    node_array(batch, items, 1, 3);
    corio__inject_push_batch(inj, batch, 3);
    /* The caller's array is only read: reusing it at once is fine. */
    batch[0] = &items[5].node;
    corio__inject_push_batch(inj, NULL, 0);
    corio__inject_push(inj, &items[4].node);
    assert_int_equal(corio__inject_len(inj), 5);
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(item_of(corio__inject_pop(inj))->id, i);
    assert_null(corio__inject_pop(inj));
    for (unsigned i = 0; i < 6; i++)
        assert_ptr_equal(items[i].node.next, POISON);
    free(items);
}

static void inject_pop_batch_order_and_len(void **state)
{
    struct corio__inject *inj = *state;
    struct item *items = make_items(10);
    struct corio__qnode *out[100];

    /* Empty: nothing written. */
    out[0] = POISON;
    assert_int_equal(corio__inject_pop_batch(inj, out, 4), 0);
    assert_ptr_equal(out[0], POISON);
    for (unsigned i = 0; i < 10; i++)
        corio__inject_push(inj, &items[i].node);

    assert_int_equal(corio__inject_pop_batch(inj, out, 0), 0);
    assert_int_equal(corio__inject_len(inj), 10);

    /* Fewer than there are: the 4 oldest, and nothing past them written. */
    out[4] = POISON;
    assert_int_equal(corio__inject_pop_batch(inj, out, 4), 4);
    assert_int_equal(corio__inject_len(inj), 6);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(item_of(out[i])->id, i);
    assert_ptr_equal(out[4], POISON);

    /* More than there are: takes all 6. */
    out[6] = POISON;
    assert_int_equal(corio__inject_pop_batch(inj, out, 100), 6);
    assert_true(corio__inject_is_empty(inj));
    for (unsigned i = 0; i < 6; i++)
        assert_int_equal(item_of(out[i])->id, 4 + i);
    assert_ptr_equal(out[6], POISON);

    /* Exactly as many as there are. */
    corio__inject_push(inj, &items[0].node);
    assert_int_equal(corio__inject_pop_batch(inj, out, 1), 1);
    assert_int_equal(item_of(out[0])->id, 0);
    assert_null(corio__inject_pop(inj));
    assert_int_equal(corio__inject_pop_batch(inj, out, 100), 0);
    free(items);
}

static void inject_init_reports_enomem(void **state)
{
    (void)state;
    struct corio__inject inj;

    use_test_allocator(true);
    assert_int_equal(corio__inject_init(&inj), -ENOMEM);
    corio__inject_realloc = realloc;
    assert_int_equal(corio__inject_init(&inj), 0);
    assert_int_equal(inj.cap, CORIO_INJECT_INIT_CAP);
    corio__inject_fini(&inj);
}

static void inject_ring_wraps_around(void **state)
{
    struct corio__inject *inj = *state;
    const unsigned cap = CORIO_INJECT_INIT_CAP, total = 24 * 130; /* 3 times round */
    struct item *items = make_items(total);
    struct corio__qnode *batch[129];
    unsigned pushed = 0, popped = 0;
    bool wrapped = false;

    /* Any growth would fail: the ring must go round in its own slots. */
    use_test_allocator(true);
    /* Kept between cap - 230 and cap full by a batch of 129 plus one single
     * push at a time, drained 100 at a time: both ends cross the end of
     * slot[] inside a batch, at varying offsets. */
    while (popped < total) {
        if (pushed < total && pushed - popped + 130 <= cap) {
            node_array(batch, items, pushed, 129);
            corio__inject_push_batch(inj, batch, 129);
            corio__inject_push(inj, &items[pushed + 129].node);
            pushed += 130;
        } else {
            unsigned n = pushed - popped < 100 ? pushed - popped : 100;
            expect_inject(inj, popped, n, 100);
            popped += n;
        }
        wrapped |= inj->head + inj->used > inj->cap;
        assert_int_equal(corio__inject_len(inj), pushed - popped);
    }
    assert_true(wrapped);
    assert_int_equal(inj->cap, cap);
    assert_null(inj->spill_head);
    assert_int_equal(atomic_load(&alloc_calls), 0);
    assert_true(corio__inject_is_empty(inj));
    for (unsigned i = 0; i < total; i++)
        assert_ptr_equal(items[i].node.next, POISON);
    free(items);
}

static void inject_ring_grows_keeping_fifo(void **state)
{
    struct corio__inject *inj = *state;
    const unsigned cap = CORIO_INJECT_INIT_CAP, total = 20 * cap;
    struct item *items = make_items(total);
    struct corio__qnode *batch[129];
    unsigned pushed = 0, popped = 0;

    /* Leave head mid-ring, then push until the ring wraps and is nearly
     * full: the growth that follows must move the wrapped part. */
    for (unsigned i = 0; i < 7; i++) {
        node_array(batch, items, pushed, 100);
        corio__inject_push_batch(inj, batch, 100);
        pushed += 100;
    }
    expect_inject(inj, 0, 500, 128);
    popped = 500;
    while (pushed - popped + 129 <= cap) {
        node_array(batch, items, pushed, 129);
        corio__inject_push_batch(inj, batch, 129);
        pushed += 129;
    }
    assert_int_equal(inj->cap, cap);
    assert_int_equal(inj->head, 500);
    assert_true(inj->head + inj->used > cap);

    node_array(batch, items, pushed, 129);
    corio__inject_push_batch(inj, batch, 129);
    pushed += 129;
    assert_int_equal(inj->cap, 2 * cap);
    assert_int_equal(inj->head, 500);
    expect_inject(inj, popped, 300, 128);
    popped += 300;

    /* Then many pushes, singles and batches, with pops falling behind: the
     * ring doubles several times from varying head positions. */
    unsigned round = 0;
    while (pushed < total) {
        unsigned n = total - pushed < 129 ? total - pushed : 129;
        if (round % 2 == 0) {
            node_array(batch, items, pushed, n);
            corio__inject_push_batch(inj, batch, n);
        } else {
            for (unsigned i = 0; i < n; i++)
                corio__inject_push(inj, &items[pushed + i].node);
        }
        pushed += n;
        if (++round % 3 == 0) {
            expect_inject(inj, popped, 100, 33);
            popped += 100;
        }
        assert_int_equal(corio__inject_len(inj), pushed - popped);
        assert_true(inj->used <= inj->cap);
    }
    assert_true(inj->cap >= 16 * cap);
    assert_int_equal(inj->cap & (inj->cap - 1), 0);
    assert_null(inj->spill_head);
    expect_inject(inj, popped, pushed - popped, 512);
    assert_true(corio__inject_is_empty(inj));
    for (unsigned i = 0; i < total; i++)
        assert_ptr_equal(items[i].node.next, POISON);
    free(items);
}

static void inject_spill_keeps_fifo_when_growth_fails(void **state)
{
    struct corio__inject *inj = *state;
    const unsigned cap = CORIO_INJECT_INIT_CAP;
    struct item *items = make_items(cap + 300);
    struct corio__qnode *batch[129];
    unsigned pushed = 0;

    use_test_allocator(true);
    for (; pushed < cap - 50; pushed++)
        corio__inject_push(inj, &items[pushed].node);

    /* 50 fit in the ring; the other 79 spill, behind them. */
    node_array(batch, items, pushed, 129);
    corio__inject_push_batch(inj, batch, 129);
    pushed += 129;
    assert_true(atomic_load(&alloc_calls) > 0);
    assert_int_equal(inj->cap, cap);
    assert_int_equal(inj->used, cap);
    assert_int_equal(spilled(inj), 79);
    corio__inject_push(inj, &items[pushed++].node);
    assert_int_equal(spilled(inj), 80);
    assert_int_equal(corio__inject_len(inj), pushed);

    /* Memory is back and the ring has room again, but the spill list holds
     * older items: new ones must queue behind them, not in the ring. */
    use_test_allocator(false);
    expect_inject(inj, 0, 10, 10);
    node_array(batch, items, pushed, 129);
    corio__inject_push_batch(inj, batch, 129);
    pushed += 129;
    corio__inject_push(inj, &items[pushed++].node);
    assert_int_equal(atomic_load(&alloc_calls), 0);
    assert_int_equal(inj->used, cap - 10);
    assert_int_equal(spilled(inj), 80 + 130);
    assert_int_equal(corio__inject_len(inj), pushed - 10);

    /* Batches of 100 from 10: the 11th takes the last 14 of the ring and
     * the first 86 of the spill list. */
    expect_inject(inj, 10, pushed - 10, 100);
    assert_true(corio__inject_is_empty(inj));
    assert_null(inj->spill_head);
    assert_null(inj->spill_tail);
    assert_int_equal(inj->used, 0);
    assert_null(corio__inject_pop(inj));
    free(items);
}

static void inject_recovers_after_spill_drains(void **state)
{
    struct corio__inject *inj = *state;
    const unsigned cap = CORIO_INJECT_INIT_CAP;
    struct item *items = make_items(3 * cap + 8);
    struct corio__qnode *out[8];
    unsigned pushed = 0;

    use_test_allocator(true);
    for (; pushed < cap + 5; pushed++)
        corio__inject_push(inj, &items[pushed].node);
    assert_int_equal(spilled(inj), 5);

    /* The ring drains first; with it empty, pushes still spill. */
    expect_inject(inj, 0, cap, 512);
    use_test_allocator(false);
    for (; pushed < cap + 8; pushed++)
        corio__inject_push(inj, &items[pushed].node);
    assert_int_equal(inj->used, 0);
    assert_int_equal(spilled(inj), 8);

    /* From the spill list: singly, then a batch larger than what is left. */
    assert_int_equal(item_of(corio__inject_pop(inj))->id, cap);
    assert_int_equal(item_of(corio__inject_pop(inj))->id, cap + 1);
    assert_int_equal(corio__inject_pop_batch(inj, out, 8), 6);
    for (unsigned i = 0; i < 6; i++)
        assert_int_equal(item_of(out[i])->id, cap + 2 + i);
    assert_null(inj->spill_head);
    assert_null(inj->spill_tail);
    assert_true(corio__inject_is_empty(inj));
    assert_int_equal(atomic_load(&alloc_calls), 0);

    /* The spill list is empty: the ring takes pushes and grows again. */
    for (; pushed < 3 * cap + 8; pushed++)
        corio__inject_push(inj, &items[pushed].node);
    assert_true(atomic_load(&alloc_calls) > 0);
    assert_int_equal(inj->cap, 2 * cap);
    assert_null(inj->spill_head);
    expect_inject(inj, cap + 8, 2 * cap, 128);
    assert_true(corio__inject_is_empty(inj));
    free(items);
}

/* ---- inject stress: many producers, many consumers ---- */

struct mpmc {
    struct corio__inject inj;
    struct item *items;
    _Atomic unsigned char *seen;
    unsigned per_producer, producers;
    atomic_uint taken;
    atomic_uint disorder, duplicates;
};

#define CONSUME_SPIN 256 /* ~100 ns per item: producers outrun consumers several-fold */
#define MPMC_BURST 10000 /* per producer: 3 bursts need 32 Ki slots, 5 doublings */

struct mpmc_thread {
    struct mpmc *m;
    unsigned index;
    pthread_t thread;
};

/* Fails every third growth, so the ring grows and the spill list fills and
 * drains while other threads push and pop. Called under the queue's lock. */
static void *flaky_realloc(void *ptr, size_t size)
{
    return atomic_fetch_add(&alloc_calls, 1) % 3 == 2 ? NULL : realloc(ptr, size);
}

static void *mpmc_producer(void *arg)
{
    struct mpmc_thread *me = arg;
    struct mpmc *m = me->m;
    unsigned first = me->index * m->per_producer, end = first + m->per_producer;
    struct corio__qnode *batch[129];
    uint32_t rng = 2463534242u + me->index;

    for (unsigned i = first; i < end;) {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        unsigned n = 1 + rng % 129;
        if (n > end - i)
            n = end - i;
        /* Write each item just before pushing it, so the sanitizer checks
         * that the queue publishes the item, not just the pointer. */
        for (unsigned k = 0; k < n; k++) {
            m->items[i + k].id = i + k;
            batch[k] = &m->items[i + k].node;
        }
        if (n < 8) {
            for (unsigned k = 0; k < n; k++)
                corio__inject_push(&m->inj, batch[k]);
        } else {
            corio__inject_push_batch(&m->inj, batch, n);
        }
        i += n;
        /* Bursts, then a pause until the consumers have emptied the queue:
         * each burst's backlog needs growth again (until the ring is big
         * enough for a burst from every producer), and the spill list a
         * failed growth started drains before the next burst. */
        if ((i - first) % MPMC_BURST < n) {
            while (!corio__inject_is_empty(&m->inj))
                sched_yield();
        }
    }
    return NULL;
}

static void *mpmc_consumer(void *arg)
{
    struct mpmc_thread *me = arg;
    struct mpmc *m = me->m;
    unsigned total = m->per_producer * m->producers;
    long last[16];
    struct corio__qnode *out[128];
    uint32_t rng = 88675123u + me->index;

    for (unsigned p = 0; p < m->producers; p++)
        last[p] = -1;
    while (atomic_load_explicit(&m->taken, memory_order_relaxed) < total) {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        size_t got = corio__inject_pop_batch(&m->inj, out, 1 + rng % 128);
        if (got == 0) {
            sched_yield();
            continue;
        }
        for (size_t i = 0; i < got; i++) {
            unsigned id = item_of(out[i])->id, p = id / m->per_producer;
            /* FIFO: one consumer sees each producer's items in push order. */
            if ((long)id <= last[p])
                atomic_fetch_add_explicit(&m->disorder, 1, memory_order_relaxed);
            last[p] = id;
            if (atomic_fetch_add_explicit(&m->seen[id], 1, memory_order_relaxed) != 0)
                atomic_fetch_add_explicit(&m->duplicates, 1, memory_order_relaxed);
            /* Slower than the producers, so a backlog builds: the ring has
             * to grow, and the growths that fail have to spill. */
            for (unsigned k = 0; k < CONSUME_SPIN; k++)
                __asm__ __volatile__("" ::: "memory");
        }
        atomic_fetch_add_explicit(&m->taken, (unsigned)got, memory_order_relaxed);
    }
    return NULL;
}

static void inject_mpmc_stress(void **state)
{
    (void)state;
#ifdef UNDER_TSAN
    const unsigned per_producer = 50000;
#else
    const unsigned per_producer = 300000;
#endif
    enum { PRODUCERS = 3, CONSUMERS = 3 };
    struct mpmc *m = calloc(1, sizeof(*m));
    struct mpmc_thread threads[PRODUCERS + CONSUMERS];

    assert_non_null(m);
    m->producers = PRODUCERS;
    m->per_producer = per_producer;
    m->items = calloc((size_t)PRODUCERS * per_producer, sizeof(*m->items));
    m->seen = calloc((size_t)PRODUCERS * per_producer, sizeof(*m->seen));
    assert_non_null(m->items);
    assert_non_null(m->seen);
    assert_int_equal(corio__inject_init(&m->inj), 0);
    /* Set while no thread uses a queue, as corio__inject_realloc asks. */
    atomic_store(&alloc_calls, 0);
    corio__inject_realloc = flaky_realloc;

    for (unsigned i = 0; i < PRODUCERS + CONSUMERS; i++) {
        threads[i].m = m;
        threads[i].index = i < PRODUCERS ? i : i - PRODUCERS;
        assert_int_equal(pthread_create(&threads[i].thread, NULL,
                                        i < PRODUCERS ? mpmc_producer : mpmc_consumer,
                                        &threads[i]), 0);
    }
    for (unsigned i = 0; i < PRODUCERS + CONSUMERS; i++)
        assert_int_equal(pthread_join(threads[i].thread, NULL), 0);
    corio__inject_realloc = realloc;

    unsigned total = PRODUCERS * per_producer, missing = 0;
    for (unsigned i = 0; i < total; i++)
        missing += atomic_load_explicit(&m->seen[i], memory_order_relaxed) != 1;
    unsigned calls = atomic_load(&alloc_calls);
    print_message("inject stress: %u items, ring grew to %zu slots, %u of %u growths failed\n",
                  total, m->inj.cap, (calls + 1) / 3, calls);
    assert_int_equal(missing, 0);
    assert_int_equal(atomic_load(&m->duplicates), 0);
    assert_int_equal(atomic_load(&m->disorder), 0);
    assert_int_equal(atomic_load(&m->taken), total);
    assert_true(corio__inject_is_empty(&m->inj));
    assert_null(m->inj.spill_head);

    corio__inject_fini(&m->inj);
    free(m->seen);
    free(m->items);
    free(m);
}

/* ---- torture: one owner, many thieves ---- */

struct torture {
    struct corio__runq owner_q;
    struct corio__inject inj;
    struct item *items;
    _Atomic unsigned char *seen;
    unsigned nitems, nthieves;
    struct thief *thieves;
    atomic_uint started;
    atomic_bool done;
    atomic_uint duplicates;
};

#define RUN_SPIN 64 /* ~20-40 ns per item: enough for thieves to catch up */

struct thief {
    struct corio__runq q;
    struct torture *t;
    unsigned index;
    pthread_t thread;
    unsigned long taken, steals;
};

/* Marks @n's item as run, after a little work so that the other threads get
 * to interleave with the queue operations instead of racing through them. */
static void record(struct torture *t, struct corio__qnode *n)
{
    unsigned id = item_of(n)->id;

    for (unsigned i = 0; i < RUN_SPIN; i++)
        __asm__ __volatile__("" ::: "memory");

    if (id >= t->nitems ||
        atomic_fetch_add_explicit(&t->seen[id], 1, memory_order_relaxed) != 0)
        atomic_fetch_add_explicit(&t->duplicates, 1, memory_order_relaxed);
}

static unsigned env_unsigned(const char *name, unsigned dflt)
{
    const char *s = getenv(name);
    char *end;

    if (s == NULL || *s == '\0')
        return dflt;
    unsigned long v = strtoul(s, &end, 10);
    return (*end == '\0' && v > 0 && v < UINT32_MAX) ? (unsigned)v : dflt;
}

/* A thief's victims: the owner first, then the other thieves round-robin. */
static struct corio__runq *victim_of(struct thief *me, unsigned round)
{
    struct torture *t = me->t;
    unsigned k = round % t->nthieves; /* 0: owner, else another thief */

    if (k == 0)
        return &t->owner_q;
    return &t->thieves[(me->index + k) % t->nthieves].q;
}

static void *thief_main(void *arg)
{
    struct thief *me = arg;
    struct torture *t = me->t;
    unsigned round = 0;

    atomic_fetch_add_explicit(&t->started, 1, memory_order_relaxed);
    for (;;) {
        struct corio__qnode *n = corio__runq_pop_owner(&me->q);
        if (n != NULL) {
            record(t, n);
            me->taken++;
            continue;
        }

        /* A worker's search order: steal first, then the overflow queue. */
        n = corio__runq_steal_into(victim_of(me, round++), &me->q);
        if (n != NULL) {
            record(t, n);
            me->taken++;
            me->steals++;
            continue;
        }

        /* Refill from the overflow queue through push_batch, as an idle
         * worker does; keep one to run now. */
        struct corio__qnode *batch[33];
        unsigned room = corio__runq_free_owner(&me->q) + 1;
        size_t count = corio__inject_pop_batch(&t->inj, batch, room < 33 ? room : 33);
        if (count > 0) {
            record(t, batch[0]);
            me->taken++;
            corio__runq_push_batch_owner(&me->q, batch + 1, (unsigned)count - 1);
            continue;
        }

        /* done is stored after the owner's last push and drain, so once it
         * reads true the overflow queue only shrinks and our own queue is
         * empty by now; items in other thieves' queues are theirs to drain. */
        if (atomic_load_explicit(&t->done, memory_order_acquire) &&
            corio__inject_is_empty(&t->inj) && corio__runq_is_empty(&me->q))
            break;
        sched_yield();
    }
    return NULL;
}

static void runq_torture_owner_vs_thieves(void **state)
{
    (void)state;
#ifdef UNDER_TSAN
    const unsigned dflt_items = 500000;
#else
    const unsigned dflt_items = 2000000;
#endif
    struct torture *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->nitems = env_unsigned("CORIO_TEST_ITEMS", dflt_items);
    t->nthieves = env_unsigned("CORIO_TEST_THIEVES", 3);
    t->items = calloc(t->nitems, sizeof(*t->items));
    t->seen = calloc(t->nitems, sizeof(*t->seen));
    t->thieves = calloc(t->nthieves, sizeof(*t->thieves));
    assert_non_null(t->items);
    assert_non_null(t->seen);
    assert_non_null(t->thieves);
    corio__runq_init(&t->owner_q);
    assert_int_equal(corio__inject_init(&t->inj), 0);
    atomic_init(&t->started, 0);
    atomic_init(&t->done, false);
    atomic_init(&t->duplicates, 0);

    for (unsigned i = 0; i < t->nthieves; i++) {
        t->thieves[i].t = t;
        t->thieves[i].index = i;
        corio__runq_init(&t->thieves[i].q);
    }
    for (unsigned i = 0; i < t->nthieves; i++)
        assert_int_equal(pthread_create(&t->thieves[i].thread, NULL, thief_main,
                                        &t->thieves[i]), 0);
    /* Start pushing only when every thief is looking, or on a small machine
     * the owner can be done before the last thief has been scheduled. */
    while (atomic_load_explicit(&t->started, memory_order_relaxed) < t->nthieves)
        sched_yield();

    /* The owner writes each item just before pushing it, so the sanitizer
     * checks that the queues publish the item, not just the pointer. Its own
     * pops must come out in increasing order: only it pushes to its queue. */
    /* Bursts of 1..64 pushes, then up to 31, 63 or 127 pops (a new bound
     * every 65536 items): the owner's queue fills (overflow, sometimes with a
     * steal in progress), random-walks, or stays near empty (owner and
     * thieves racing for the last items). */
    unsigned long overflows = 0, owner_taken = 0;
    long last_popped = -1;
    bool owner_order_ok = true;
    uint32_t rng = 2463534242u;
    for (unsigned i = 0; i < t->nitems;) {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        for (unsigned b = 1 + (rng & 63); b > 0 && i < t->nitems; b--, i++) {
            t->items[i].id = i;
            overflows += (unsigned)corio__runq_push_owner(&t->owner_q, &t->items[i].node,
                                                          &t->inj);
        }
        static const unsigned pop_mask[] = {31, 63, 127};
        for (unsigned p = (rng >> 8) & pop_mask[(i >> 16) % 3]; p > 0; p--) {
            struct corio__qnode *n = corio__runq_pop_owner(&t->owner_q);
            if (n == NULL)
                break;
            owner_order_ok &= (long)item_of(n)->id > last_popped;
            last_popped = item_of(n)->id;
            record(t, n);
            owner_taken++;
        }
    }
    for (struct corio__qnode *n; (n = corio__runq_pop_owner(&t->owner_q)) != NULL;) {
        owner_order_ok &= (long)item_of(n)->id > last_popped;
        last_popped = item_of(n)->id;
        record(t, n);
        owner_taken++;
    }
    /* Release: pairs with the acquire load of done in thief_main(). */
    atomic_store_explicit(&t->done, true, memory_order_release);

    unsigned long stolen = 0, steals = 0;
    for (unsigned i = 0; i < t->nthieves; i++) {
        assert_int_equal(pthread_join(t->thieves[i].thread, NULL), 0);
        stolen += t->thieves[i].taken;
        steals += t->thieves[i].steals;
    }

    unsigned missing = 0, multiple = 0;
    for (unsigned i = 0; i < t->nitems; i++) {
        unsigned c = atomic_load_explicit(&t->seen[i], memory_order_relaxed);
        missing += c == 0;
        multiple += c > 1;
    }
    print_message("torture: %u items, %u thieves: owner ran %lu, thieves ran %lu "
                  "(%lu steal ops), %lu overflows\n",
                  t->nitems, t->nthieves, owner_taken, stolen, steals, overflows);
    assert_int_equal(missing, 0);
    assert_int_equal(multiple, 0);
    assert_int_equal(atomic_load(&t->duplicates), 0);
    assert_true(owner_order_ok);
    assert_int_equal(owner_taken + stolen, t->nitems);
    assert_true(corio__inject_is_empty(&t->inj));
    assert_true(corio__runq_is_empty(&t->owner_q));
    for (unsigned i = 0; i < t->nthieves; i++)
        assert_true(corio__runq_is_empty(&t->thieves[i].q));

    corio__inject_fini(&t->inj);
    free(t->thieves);
    free(t->seen);
    free(t->items);
    free(t);
}

/* The lone worker's pop: the same FIFO across the ring's wrap, the same
 * length accounting, and it mixes with the owner's CAS pop. */
static void runq_pop_alone_fifo_across_wrap(void **state)
{
    struct corio__inject *inj = *state;
    struct corio__runq q;
    struct item *items = make_items(1000);

    corio__runq_init(&q);
    set_position(&q, UINT32_MAX - 50);   /* the indices wrap during the run */
    assert_null(corio__runq_pop_alone(&q));
    unsigned pushed = 0, popped = 0;
    while (pushed < 1000) {
        fill(&q, inj, items, pushed, 100);
        pushed += 100;
        assert_int_equal(corio__runq_len(&q), pushed - popped);
        for (unsigned i = 0; i < 90; i++) {
            struct corio__qnode *n =
                i % 3 ? corio__runq_pop_alone(&q) : corio__runq_pop_owner(&q);
            assert_non_null(n);
            assert_int_equal(item_of(n)->id, popped++);
        }
    }
    while (popped < pushed) {
        struct corio__qnode *n = corio__runq_pop_alone(&q);
        assert_non_null(n);
        assert_int_equal(item_of(n)->id, popped++);
    }
    assert_null(corio__runq_pop_alone(&q));
    assert_true(corio__runq_is_empty(&q));
    assert_true(corio__inject_is_empty(inj));
    free(items);
}

int main(void)
{
#define INJ_TEST(f) cmocka_unit_test_setup_teardown(f, setup_inject, teardown_inject)
    const struct CMUnitTest tests[] = {
        INJ_TEST(runq_push_pop_fifo),
        INJ_TEST(runq_pop_alone_fifo_across_wrap),
        INJ_TEST(runq_overflow_moves_oldest_half_plus_new),
        INJ_TEST(runq_overflow_across_index_wrap),
        INJ_TEST(runq_overflow_during_steal_moves_only_new),
        INJ_TEST(runq_steal_takes_half),
        INJ_TEST(runq_steal_from_empty_returns_null),
        INJ_TEST(runq_steal_backs_off_while_another_steals),
        INJ_TEST(runq_steal_refused_when_dst_lacks_room),
        INJ_TEST(runq_push_batch),
        INJ_TEST(runq_len_and_is_empty),
        INJ_TEST(inject_push_pop_fifo),
        INJ_TEST(inject_push_batch_appends_in_order),
        INJ_TEST(inject_pop_batch_order_and_len),
        INJ_TEST(inject_init_reports_enomem),
        INJ_TEST(inject_ring_wraps_around),
        INJ_TEST(inject_ring_grows_keeping_fifo),
        INJ_TEST(inject_spill_keeps_fifo_when_growth_fails),
        INJ_TEST(inject_recovers_after_spill_drains),
        INJ_TEST(inject_mpmc_stress),
        cmocka_unit_test(runq_torture_owner_vs_thieves),
    };
#undef INJ_TEST
    return cmocka_run_group_tests(tests, NULL, NULL);
}
