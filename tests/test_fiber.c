/* tests/test_fiber.c - the context switch (core/fiber.c, core/fiber_<arch>.S).
 *
 * White-box: the fibers here run on stacks mapped by the test itself, and the
 * thread's own context is a fiber from corio__fiber_init_thread(). Each case
 * checks one promise of core/fiber.h: values pass both ways, callee-saved
 * and FP control state survive switches, a new fiber starts aligned with a
 * terminated call chain, switch_final never comes back, and a suspended fiber
 * may be resumed by another thread. Nothing depends on timing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fiber.h"

#define STACK_SIZE (256u * 1024)

static void *map_stack(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(p != MAP_FAILED);
    return p;
}

static void unmap_stack(void *p, size_t size)
{
    assert_int_equal(munmap(p, size), 0);
}

/* ---- ping-pong ------------------------------------------------------- */

#define PINGPONG_ROUNDS 1000000

static struct corio__fiber pp_main, pp_a, pp_b;

/* A and B each add one and pass on: main -> A -> B -> main. */
static void pp_entry_a(void *value)
{
    uintptr_t v = (uintptr_t)value;

    for (;;)
        v = (uintptr_t)corio__fiber_switch(&pp_a, &pp_b, (void *)(v + 1));
}

static void pp_entry_b(void *value)
{
    uintptr_t v = (uintptr_t)value;

    for (;;)
        v = (uintptr_t)corio__fiber_switch(&pp_b, &pp_main, (void *)(v + 1));
}

static void fiber_pingpong_passes_values(void **state)
{
    void *sa = map_stack(STACK_SIZE), *sb = map_stack(STACK_SIZE);
    uintptr_t v = 0;
    long bad = 0;

    (void)state;
    corio__fiber_init_thread(&pp_main);
    corio__fiber_init(&pp_a, sa, STACK_SIZE, pp_entry_a);
    corio__fiber_init(&pp_b, sb, STACK_SIZE, pp_entry_b);
    for (long i = 0; i < PINGPONG_ROUNDS; i++) {
        uintptr_t r = (uintptr_t)corio__fiber_switch(&pp_main, &pp_a, (void *)(v + 1));
        bad += r != v + 3;
        v = r;
    }
    assert_int_equal(bad, 0);
    assert_int_equal(v, 3 * (uintptr_t)PINGPONG_ROUNDS);
    /* A and B are parked inside a switch: nothing on their stacks needs
     * unwinding, so dropping them is just freeing the memory. */
    corio__fiber_destroy(&pp_a);
    corio__fiber_destroy(&pp_b);
    corio__fiber_destroy(&pp_main);
    unmap_stack(sa, STACK_SIZE);
    unmap_stack(sb, STACK_SIZE);
}

/* ---- first entry ----------------------------------------------------- */

static struct corio__fiber fe_main, fe_fiber;
static void *fe_value;
static uintptr_t fe_frame;
static int fe_depth;

static __attribute__((noinline)) void fe_entry(void *value)
{
    void *frames[64];

    fe_value = value;
    /* Forces a frame pointer here: at an "as if called" entry it is 16-byte
     * aligned on both x86_64 (rsp+8 after push rbp) and aarch64. */
    fe_frame = (uintptr_t)__builtin_frame_address(0);
    /* The unwinder must stop at the start code instead of reading above the
     * stack top. */
    fe_depth = backtrace(frames, 64);
    corio__fiber_switch_final(&fe_fiber, &fe_main, (void *)(uintptr_t)7);
}

static void fiber_first_entry_gets_value_aligned_and_terminated(void **state)
{
    /* One spare page above the largest stack, so the words just above each
     * stack top are ours to fill with garbage. */
    size_t map_len = STACK_SIZE + 4096;
    char *s = map_stack(map_len);
    /* Odd sizes: init must align the top itself. */
    size_t sizes[] = { STACK_SIZE, STACK_SIZE - 8, STACK_SIZE - 24, STACK_SIZE - 1 };

    (void)state;
    corio__fiber_init_thread(&fe_main);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        /* Plausible return addresses everywhere: an unwinder that does not
         * stop at the start code reads them and walks on into nonsense. */
        uintptr_t bait = (uintptr_t)fe_entry + 4;
        for (size_t off = 0; off + sizeof bait <= map_len; off += sizeof bait)
            memcpy(s + off, &bait, sizeof bait);
        fe_value = NULL;
        fe_frame = 1;
        fe_depth = -1;
        corio__fiber_init(&fe_fiber, s, sizes[i], fe_entry);
        void *r = corio__fiber_switch(&fe_main, &fe_fiber, (void *)(uintptr_t)(0x1000 + i));
        assert_ptr_equal(r, (void *)(uintptr_t)7);
        assert_ptr_equal(fe_value, (void *)(uintptr_t)(0x1000 + i));
        assert_int_equal(fe_frame & 15, 0);
        assert_true(fe_frame > (uintptr_t)s && fe_frame < (uintptr_t)s + sizes[i]);
        /* fe_entry, the start code, and in ASan builds the trampoline. */
        assert_true(fe_depth >= 1);
        assert_true(fe_depth <= 4);
        corio__fiber_destroy(&fe_fiber);
    }
    unmap_stack(s, map_len);
}

/* ---- callee-saved registers ------------------------------------------ */

#define NLIVE 16
#define REG_ROUNDS 1000

static struct corio__fiber rg_main, rg_f[2];
static int rg_errors;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= UINT64_C(0x7fb5d329728ea185);
    x ^= x >> 27;
    return x;
}

/* Keeps NLIVE integers and NLIVE doubles live across every switch so the
 * compiler parks them in callee-saved registers (rbx, rbp, r12-r15 / x19-x28,
 * d8-d15) and on the stack; the other fiber runs the same code with other
 * values, so any register the switch fails to restore shows up here. */
static __attribute__((noinline)) void rg_body(int me, uint64_t seed)
{
    uint64_t a[NLIVE];
    double d[NLIVE];

    for (int i = 0; i < NLIVE; i++) {
        a[i] = mix(seed + (uint64_t)i);
        d[i] = (double)(a[i] >> 11) * 0.5;
    }
    uint64_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5], a6 = a[6],
             a7 = a[7], a8 = a[8], a9 = a[9], a10 = a[10], a11 = a[11];
    double d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5], d6 = d[6],
           d7 = d[7], d8 = d[8], d9 = d[9];

    for (int r = 0; r < REG_ROUNDS; r++) {
        struct corio__fiber *next = me == 0 ? &rg_f[1] : &rg_main;
        corio__fiber_switch(&rg_f[me], next, NULL);
        uint64_t x = a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6 ^ a7 ^ a8 ^ a9 ^ a10 ^ a11;
        uint64_t y = a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6] ^ a[7] ^ a[8] ^ a[9] ^
                     a[10] ^ a[11];
        double dx = d0 + d1 + d2 + d3 + d4 + d5 + d6 + d7 + d8 + d9;
        double dy = d[0] + d[1] + d[2] + d[3] + d[4] + d[5] + d[6] + d[7] + d[8] + d[9];
        if (x != y || dx != dy)
            rg_errors++;
        /* Change them so values are live and different on every round. */
        a0 += 1; a[0] += 1; a5 ^= 3; a[5] ^= 3; a11 *= 3; a[11] *= 3;
        d0 += 1.0; d[0] += 1.0; d9 *= 0.5; d[9] *= 0.5;
        for (int i = 0; i < NLIVE; i++)
            __asm__ volatile("" : : "r"(&a[i]), "r"(&d[i]) : "memory");
    }
}

static void rg_entry(void *value)
{
    int me = (int)(uintptr_t)value;

    rg_body(me, me == 0 ? 0x1234 : 0xabcdef);
    corio__fiber_switch_final(&rg_f[me], &rg_main, NULL);
}

static void fiber_callee_saved_registers_survive(void **state)
{
    void *s0 = map_stack(STACK_SIZE), *s1 = map_stack(STACK_SIZE);

    (void)state;
    rg_errors = 0;
    corio__fiber_init_thread(&rg_main);
    corio__fiber_init(&rg_f[0], s0, STACK_SIZE, rg_entry);
    corio__fiber_init(&rg_f[1], s1, STACK_SIZE, rg_entry);
    /* Start f1 (it parks back here), then f0 (it hands over to f1, which
     * comes back here): from then on each switch to f0 runs one round of
     * main -> f0 -> f1 -> main. f1 ends one round before f0, which ends on
     * the last of them. */
    corio__fiber_switch(&rg_main, &rg_f[1], (void *)(uintptr_t)1);
    corio__fiber_switch(&rg_main, &rg_f[0], (void *)(uintptr_t)0);
    for (int r = 0; r < REG_ROUNDS; r++)
        corio__fiber_switch(&rg_main, &rg_f[0], NULL);
    assert_int_equal(rg_errors, 0);
    corio__fiber_destroy(&rg_f[0]);
    corio__fiber_destroy(&rg_f[1]);
    unmap_stack(s0, STACK_SIZE);
    unmap_stack(s1, STACK_SIZE);
}

/* ---- FP control words ------------------------------------------------ */

#if defined(__x86_64__)
static uint32_t fp_ctl_get(void)
{
    uint32_t mxcsr;
    uint16_t cw;

    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return (mxcsr & 0xffff) | (uint32_t)cw << 16;
}

static void fp_ctl_set(uint32_t v)
{
    uint32_t mxcsr;
    uint16_t cw = (uint16_t)(v >> 16);

    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    mxcsr = (mxcsr & ~UINT32_C(0xffff)) | (v & 0xffff);
    __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
    __asm__ volatile("fldcw %0" : : "m"(cw));
}

/* Round-up in both MXCSR (RC bits 13-14) and the x87 word (RC bits 10-11). */
static uint32_t fp_ctl_round_up(uint32_t v)
{
    uint32_t mx = (v & 0xffff & ~UINT32_C(0x6000)) | 0x4000;
    uint32_t cw = ((v >> 16) & ~UINT32_C(0x0c00)) | 0x0800;
    return mx | cw << 16;
}

static uint32_t fp_ctl_round_zero(uint32_t v)
{
    return v | 0x6000 | UINT32_C(0x0c00) << 16;
}
#elif defined(__aarch64__)
static uint32_t fp_ctl_get(void)
{
    uint64_t v;

    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return (uint32_t)v;
}

static void fp_ctl_set(uint32_t v)
{
    uint64_t w = v;

    __asm__ volatile("msr fpcr, %0" : : "r"(w));
}

/* FPCR.RMode is bits 22-23: 01 toward +inf, 11 toward zero. */
static uint32_t fp_ctl_round_up(uint32_t v)
{
    return (v & ~(UINT32_C(3) << 22)) | UINT32_C(1) << 22;
}

static uint32_t fp_ctl_round_zero(uint32_t v)
{
    return v | UINT32_C(3) << 22;
}
#else
#error "test_fiber.c: no FP control helpers for this architecture"
#endif

static struct corio__fiber fp_main, fp_fiber;
static uint32_t fp_seen[4];
static double fp_third_up;

static void fp_entry(void *value)
{
    volatile double one = 1.0, three = 3.0;

    fp_seen[0] = fp_ctl_get();      /* inherited from the creator */
    fp_ctl_set(fp_ctl_round_up((uint32_t)(uintptr_t)value));
    corio__fiber_switch(&fp_fiber, &fp_main, NULL);
    fp_seen[1] = fp_ctl_get();      /* main changed its own meanwhile */
    fp_third_up = one / three;
    corio__fiber_switch(&fp_fiber, &fp_main, NULL);
    fp_seen[2] = fp_ctl_get();
    corio__fiber_switch_final(&fp_fiber, &fp_main, NULL);
}

static void fiber_fp_control_is_per_fiber(void **state)
{
    void *s = map_stack(STACK_SIZE);
    uint32_t orig = fp_ctl_get();
    volatile double one = 1.0, three = 3.0;

    (void)state;
    corio__fiber_init_thread(&fp_main);
    corio__fiber_init(&fp_fiber, s, STACK_SIZE, fp_entry);
    corio__fiber_switch(&fp_main, &fp_fiber, (void *)(uintptr_t)orig);
    /* The fiber now rounds up; this context must still round as before. */
    assert_int_equal(fp_ctl_get(), orig);
    double third_near = one / three;
    fp_ctl_set(fp_ctl_round_zero(orig));
    corio__fiber_switch(&fp_main, &fp_fiber, NULL);
    assert_int_equal(fp_ctl_get(), fp_ctl_round_zero(orig));
    fp_ctl_set(orig);
    corio__fiber_switch(&fp_main, &fp_fiber, NULL);
    assert_int_equal(fp_ctl_get(), orig);

    assert_int_equal(fp_seen[0], orig);
    assert_int_equal(fp_seen[1], fp_ctl_round_up(orig));
    assert_int_equal(fp_seen[2], fp_ctl_round_up(orig));
    /* 1/3 is inexact: rounding up gives the next double above nearest. */
    assert_true(fp_third_up > third_near);
    corio__fiber_destroy(&fp_fiber);
    unmap_stack(s, STACK_SIZE);
}

#if defined(__x86_64__)
/* The switch compares MXCSR and the x87 word separately: a context that
 * differs only in the x87 word must get its own back too. */
static struct corio__fiber x87_fiber;
static uint32_t x87_seen;

static void x87_entry(void *value)
{
    uint32_t orig = (uint32_t)(uintptr_t)value;
    uint32_t mine = orig | UINT32_C(0x0c00) << 16;     /* x87 RC: toward zero */

    fp_ctl_set(mine);
    corio__fiber_switch(&x87_fiber, &fp_main, NULL);
    x87_seen = fp_ctl_get();
    corio__fiber_switch_final(&x87_fiber, &fp_main, NULL);
}

static void fiber_x87_control_word_is_per_fiber(void **state)
{
    void *s = map_stack(STACK_SIZE);
    uint32_t orig = fp_ctl_get();

    (void)state;
    corio__fiber_init_thread(&fp_main);
    corio__fiber_init(&x87_fiber, s, STACK_SIZE, x87_entry);
    corio__fiber_switch(&fp_main, &x87_fiber, (void *)(uintptr_t)orig);
    assert_int_equal(fp_ctl_get(), orig);
    corio__fiber_switch(&fp_main, &x87_fiber, NULL);
    assert_int_equal(x87_seen, orig | UINT32_C(0x0c00) << 16);
    assert_int_equal(fp_ctl_get(), orig);
    corio__fiber_destroy(&x87_fiber);
    unmap_stack(s, STACK_SIZE);
}
#endif

/* ---- deep recursion -------------------------------------------------- */

#define DEEP_STACK (16u * 1024 * 1024)
#define DEEP_DEPTH 20000

static struct corio__fiber dr_main, dr_fiber;
static uintptr_t dr_lowest;

static __attribute__((noinline)) uint64_t recurse(int n)
{
    volatile unsigned char buf[64];

    /* The frame address, not buf's: ASan's fake stacks
     * (detect_stack_use_after_return) put buf on the heap. */
    uintptr_t frame = (uintptr_t)__builtin_frame_address(0);

    buf[n % 64] = (unsigned char)n;
    if (frame < dr_lowest)
        dr_lowest = frame;
    if (n == 0)
        return buf[0];
    uint64_t r = recurse(n - 1);
    return r + buf[n % 64];
}

static void dr_entry(void *value)
{
    uint64_t r = recurse((int)(uintptr_t)value);

    corio__fiber_switch_final(&dr_fiber, &dr_main, (void *)(uintptr_t)r);
}

static void fiber_deep_recursion_fits_its_stack(void **state)
{
    void *s = map_stack(DEEP_STACK);
    uint64_t want = 0;

    (void)state;
    for (int n = 0; n <= DEEP_DEPTH; n++)
        want += (unsigned char)n;
    dr_lowest = UINTPTR_MAX;
    corio__fiber_init_thread(&dr_main);
    corio__fiber_init(&dr_fiber, s, DEEP_STACK, dr_entry);
    uintptr_t r = (uintptr_t)corio__fiber_switch(&dr_main, &dr_fiber,
                                                 (void *)(uintptr_t)DEEP_DEPTH);
    assert_int_equal(r, want);
    /* It really ran on the fiber's stack, and deep into it (> 512 KiB even
     * when ASan's fake stacks hold the locals). */
    assert_true(dr_lowest >= (uintptr_t)s);
    assert_true((uintptr_t)s + DEEP_STACK - dr_lowest > 512 * 1024);
    corio__fiber_destroy(&dr_fiber);
    unmap_stack(s, DEEP_STACK);
}

/* ---- switch_final ---------------------------------------------------- */

static struct corio__fiber sf_main, sf_fiber;
static int sf_after_final;

static void sf_entry(void *value)
{
    char local[512];

    memset(local, (int)(uintptr_t)value, sizeof local);
    __asm__ volatile("" : : "r"(local) : "memory");
    corio__fiber_switch_final(&sf_fiber, &sf_main, (void *)((uintptr_t)value * 2));
    sf_after_final = 1;     /* never reached */
}

static void fiber_switch_final_ends_the_fiber(void **state)
{
    void *s = map_stack(STACK_SIZE);

    (void)state;
    sf_after_final = 0;
    corio__fiber_init_thread(&sf_main);
    /* The same stack again and again, as the stack pool reuses it. */
    for (uintptr_t i = 1; i <= 100; i++) {
        corio__fiber_init(&sf_fiber, s, STACK_SIZE, sf_entry);
        void *r = corio__fiber_switch(&sf_main, &sf_fiber, (void *)i);
        assert_ptr_equal(r, (void *)(i * 2));
        corio__fiber_destroy(&sf_fiber);
    }
    assert_int_equal(sf_after_final, 0);
    unmap_stack(s, STACK_SIZE);
}

/* ---- many fibers ----------------------------------------------------- */

/* TSan keeps a thread state per fiber: at most 8128 may exist at once, and
 * each __tsan_create_fiber() costs a few hundred microseconds of mmap work,
 * so a TSan build runs this case with fewer fibers. */
#if defined(__SANITIZE_THREAD__)
#define MANY 2000
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MANY 2000
#endif
#endif
#ifndef MANY
#define MANY 10000
#endif
#define MANY_STACK (64u * 1024)

static struct corio__fiber mf_main, *mf_fibers;
static long mf_done;

static void mf_entry(void *value)
{
    uintptr_t i = (uintptr_t)value;
    uintptr_t mine = i * 3 + 1;     /* a local that must survive the park */

    uintptr_t again = (uintptr_t)corio__fiber_switch(&mf_fibers[i], &mf_main,
                                                      (void *)(i + 1));
    if (again == i + 2 && mine == i * 3 + 1)
        mf_done++;
    corio__fiber_switch_final(&mf_fibers[i], &mf_main, (void *)(mine));
}

static void fiber_many_run_to_completion(void **state)
{
    char *stacks = map_stack((size_t)MANY * MANY_STACK);
    long bad = 0;

    (void)state;
    mf_fibers = calloc(MANY, sizeof *mf_fibers);
    assert_non_null(mf_fibers);
    mf_done = 0;
    corio__fiber_init_thread(&mf_main);
    for (uintptr_t i = 0; i < MANY; i++)
        corio__fiber_init(&mf_fibers[i], stacks + i * MANY_STACK, MANY_STACK, mf_entry);
    /* Start all of them, so 10,000 are suspended at once ... */
    for (uintptr_t i = 0; i < MANY; i++)
        bad += corio__fiber_switch(&mf_main, &mf_fibers[i], (void *)i) != (void *)(i + 1);
    /* ... then finish them in reverse order. */
    for (uintptr_t i = MANY; i-- > 0;)
        bad += corio__fiber_switch(&mf_main, &mf_fibers[i], (void *)(i + 2)) !=
               (void *)(i * 3 + 1);
    assert_int_equal(bad, 0);
    assert_int_equal(mf_done, MANY);
    for (uintptr_t i = 0; i < MANY; i++)
        corio__fiber_destroy(&mf_fibers[i]);
    free(mf_fibers);
    unmap_stack(stacks, (size_t)MANY * MANY_STACK);
}

/* ---- migration between threads --------------------------------------- */

#define MIG_ROUNDS 2000

struct mig {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int turn;                       /* which thread (0 or 1) resumes next */
    bool finished;
    struct corio__fiber task;
    struct corio__fiber *current;   /* scheduler context that resumed the task */
    pthread_t threads[2];
    void *tls[2];
    int resumed[2];
    atomic_int errors;
};

static struct mig mig;
static __thread int mig_tls_anchor;

/* Read through non-inlined accessors after every switch: the task may be on
 * another thread now (DESIGN.md, migration hazards). glibc declares
 * pthread_self() __attribute__((const)), so a direct call in the loop below
 * is hoisted and keeps naming the first thread; the asm hides that. */
static __attribute__((noinline)) void *mig_tls(void)
{
    void *p = &mig_tls_anchor;

    __asm__ volatile("" : "+r"(p));
    return p;
}

static __attribute__((noinline)) pthread_t mig_self(void)
{
    pthread_t t = pthread_self();

    __asm__ volatile("" : "+r"(t));
    return t;
}

static void mig_entry(void *value)
{
    uint64_t live = 0x5eed;
    double dlive = 0.25;

    (void)value;
    for (int r = 0; r < MIG_ROUNDS; r++) {
        int side = r % 2;   /* thread 0 starts it, then they alternate */
        if (!pthread_equal(mig_self(), mig.threads[side]) || mig_tls() != mig.tls[side])
            atomic_fetch_add(&mig.errors, 1);
        if (live != 0x5eed + (uint64_t)r * 7 || dlive != 0.25 + r)
            atomic_fetch_add(&mig.errors, 1);
        live += 7;
        dlive += 1.0;
        corio__fiber_switch(&mig.task, mig.current, NULL);
    }
    corio__fiber_switch_final(&mig.task, mig.current, (void *)(uintptr_t)1);
}

static void *mig_thread(void *arg)
{
    int me = (int)(uintptr_t)arg;
    struct corio__fiber sched;

    corio__fiber_init_thread(&sched);
    pthread_mutex_lock(&mig.mu);
    mig.tls[me] = mig_tls();
    pthread_cond_broadcast(&mig.cv);
    for (;;) {
        while (mig.turn != me && !mig.finished)
            pthread_cond_wait(&mig.cv, &mig.mu);
        if (mig.finished)
            break;
        pthread_mutex_unlock(&mig.mu);

        mig.current = &sched;
        void *r = corio__fiber_switch(&sched, &mig.task, NULL);
        mig.resumed[me]++;

        pthread_mutex_lock(&mig.mu);
        if (r != NULL)
            mig.finished = true;
        mig.turn = 1 - me;
        pthread_cond_broadcast(&mig.cv);
    }
    pthread_mutex_unlock(&mig.mu);
    corio__fiber_destroy(&sched);
    return NULL;
}

static void fiber_migrates_between_threads(void **state)
{
    void *s = map_stack(STACK_SIZE);

    (void)state;
    memset(&mig, 0, sizeof mig);
    pthread_mutex_init(&mig.mu, NULL);
    pthread_cond_init(&mig.cv, NULL);
    corio__fiber_init(&mig.task, s, STACK_SIZE, mig_entry);

    /* Neither thread may run the task before both ids and TLS anchors are
     * known: turn stays -1 until then. */
    pthread_mutex_lock(&mig.mu);
    mig.turn = -1;
    assert_int_equal(pthread_create(&mig.threads[0], NULL, mig_thread, (void *)0), 0);
    assert_int_equal(pthread_create(&mig.threads[1], NULL, mig_thread, (void *)1), 0);
    while (!mig.tls[0] || !mig.tls[1])
        pthread_cond_wait(&mig.cv, &mig.mu);
    mig.turn = 0;
    pthread_cond_broadcast(&mig.cv);
    pthread_mutex_unlock(&mig.mu);
    pthread_join(mig.threads[0], NULL);
    pthread_join(mig.threads[1], NULL);

    assert_int_equal(atomic_load(&mig.errors), 0);
    assert_true(mig.finished);
    /* MIG_ROUNDS switches out plus the final one, alternating threads. */
    assert_int_equal(mig.resumed[0] + mig.resumed[1], MIG_ROUNDS + 1);
    assert_true(mig.resumed[0] >= MIG_ROUNDS / 2);
    assert_true(mig.resumed[1] >= MIG_ROUNDS / 2);
    corio__fiber_destroy(&mig.task);
    pthread_cond_destroy(&mig.cv);
    pthread_mutex_destroy(&mig.mu);
    unmap_stack(s, STACK_SIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fiber_pingpong_passes_values),
        cmocka_unit_test(fiber_first_entry_gets_value_aligned_and_terminated),
        cmocka_unit_test(fiber_callee_saved_registers_survive),
        cmocka_unit_test(fiber_fp_control_is_per_fiber),
#if defined(__x86_64__)
        cmocka_unit_test(fiber_x87_control_word_is_per_fiber),
#endif
        cmocka_unit_test(fiber_deep_recursion_fits_its_stack),
        cmocka_unit_test(fiber_switch_final_ends_the_fiber),
        cmocka_unit_test(fiber_many_run_to_completion),
        cmocka_unit_test(fiber_migrates_between_threads),
    };

    /* tests/cross-aarch64 skips what its emulator cannot run (threads). */
    const char *skip = getenv("CORIO_TEST_SKIP");
    if (skip && *skip)
        cmocka_set_skip_filter(skip);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
