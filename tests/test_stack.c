/* tests/test_stack.c - task stacks (core/stack.c).
 *
 * White-box: the cases read the arena's and the caches' counters directly.
 * The guard mode is whatever the kernel gives (MADV_GUARD_INSTALL on 6.13+,
 * the canary before); the canary logic is also exercised on a kernel with
 * guards by switching a fresh arena to canary mode before its first carve.
 * Faults are provoked in forked children, so a working guard kills only the
 * child. Nothing depends on timing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stack.h"

struct env {
    struct corio__stack_arena arena;
    struct corio__stack_cache cache;
};

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);

    if (!e || corio__stack_arena_init(&e->arena, 0) != 0) {
        free(e);
        return -1;
    }
    corio__stack_cache_init(&e->cache);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;

    corio__stack_cache_fini(&e->cache, &e->arena);
    corio__stack_arena_fini(&e->arena);
    free(e);
    return 0;
}

static size_t count_maps(void)
{
    char buf[8192];
    size_t lines = 0;
    ssize_t n;
    int fd = open("/proc/self/maps", O_RDONLY);

    assert_true(fd >= 0);
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    close(fd);
    return lines;
}

static bool resident(const void *p, size_t page)
{
    unsigned char vec = 0;

    assert_int_equal(mincore((void *)((uintptr_t)p & ~(page - 1)), page, &vec), 0);
    return vec & 1;
}

static bool mapped(const void *p, size_t page)
{
    unsigned char vec;

    return mincore((void *)((uintptr_t)p & ~(page - 1)), page, &vec) == 0 || errno != ENOMEM;
}

/* Runs fn(arg) in a child; returns the signal that killed it, or 0 when it
 * exited normally (with status 0). */
static int in_child(void (*fn)(void *), void *arg)
{
    int status;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        /* Sanitizers install their own SIGSEGV handler, which would turn the
         * fault into an exit(1) with a report. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        fn(arg);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        return WTERMSIG(status);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    return 0;
}

static void stack_alloc_free_default_size(void **state)
{
    struct env *e = *state;
    struct corio__stack s;

    assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, 0, &s), 0);
    assert_non_null(s.lo);
    assert_int_equal(s.size, CORIO_STACK_DEFAULT_SIZE);
    assert_null(s.map);
    assert_int_equal((uintptr_t)s.lo % e->arena.page, 0);
    assert_true(corio__stack_canary_ok(&e->arena, &s));
    /* Only the first carve maps a region: one for 512 stacks. */
    assert_int_equal(e->arena.nregions, 1);
    corio__stack_free(&e->cache, &e->arena, &s);

    /* Asking for the default size explicitly, or for something that rounds
     * up to it, is the same pooled stack. */
    assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, CORIO_STACK_DEFAULT_SIZE - 100, &s),
                     0);
    assert_null(s.map);
    assert_int_equal(s.size, CORIO_STACK_DEFAULT_SIZE);
    corio__stack_free(&e->cache, &e->arena, &s);
}

static void stack_reuses_the_last_freed(void **state)
{
    struct env *e = *state;
    struct corio__stack a, b, c;

    assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, 0, &a), 0);
    assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, 0, &b), 0);
    assert_ptr_not_equal(a.lo, b.lo);
    size_t regions = e->arena.nregions;
    corio__stack_free(&e->cache, &e->arena, &a);
    corio__stack_free(&e->cache, &e->arena, &b);
    /* LIFO: the warmest stack comes back first, and nothing new is mapped. */
    assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, 0, &c), 0);
    assert_ptr_equal(c.lo, b.lo);
    corio__stack_free(&e->cache, &e->arena, &c);
    assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, 0, &c), 0);
    assert_ptr_equal(c.lo, b.lo);
    assert_int_equal(e->arena.nregions, regions);
    corio__stack_free(&e->cache, &e->arena, &c);
}

static void stack_custom_size_gets_own_mapping(void **state)
{
    struct env *e = *state;
    struct corio__stack s;
    size_t page = e->arena.page;

    assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, 100000, &s), 0);
    assert_int_equal(s.size, (100000 + page - 1) / page * page);
    assert_non_null(s.map);
    assert_int_equal(s.map_len, s.size + page);
    assert_ptr_equal(s.lo, (char *)s.map + page);
    memset(s.lo, 0xa5, s.size);
    assert_true(corio__stack_canary_ok(&e->arena, &s) ||
                e->arena.guard == CORIO_GUARD_CANARY);
    void *lo = s.lo;
    corio__stack_free(&e->cache, &e->arena, &s);
    /* Unmapped on free, not cached. */
    assert_false(mapped(lo, page));
    assert_int_equal(e->cache.n, 0);

    /* The largest allowed size only reserves address space. */
    assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, CORIO_STACK_MAX_SIZE, &s), 0);
    assert_int_equal(s.size, CORIO_STACK_MAX_SIZE);
    corio__stack_free(&e->cache, &e->arena, &s);
}

static void stack_invalid_sizes_are_einval(void **state)
{
    struct env *e = *state;
    struct corio__stack s;
    struct corio__stack_arena bad;
    size_t sizes[] = { 1, CORIO_STACK_MIN_SIZE - 1, (size_t)CORIO_STACK_MAX_SIZE + 1, SIZE_MAX };

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, sizes[i], &s), -EINVAL);
    assert_int_equal(corio__stack_arena_init(&bad, 4096), -EINVAL);
    assert_int_equal(corio__stack_arena_init(&bad, SIZE_MAX), -EINVAL);
    /* The bounds themselves are fine. */
    assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, CORIO_STACK_MIN_SIZE, &s), 0);
    assert_int_equal(s.size, CORIO_STACK_MIN_SIZE);
    corio__stack_free(&e->cache, &e->arena, &s);
}

static void stack_whole_usable_range_is_writable(void **state)
{
    struct env *e = *state;
    struct corio__stack s[3];

    /* Several neighbours from one region: each write stays in its slot. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, 0, &s[i]), 0);
        memset(s[i].lo, 0x10 + i, s[i].size);
    }
    for (int i = 0; i < 3; i++) {
        const unsigned char *p = s[i].lo;
        assert_int_equal(p[0], 0x10 + i);
        assert_int_equal(p[s[i].size - 1], 0x10 + i);
        corio__stack_free(&e->cache, &e->arena, &s[i]);
    }
}

static void write_below(void *arg)
{
    volatile char *lo = arg;

    lo[-1] = 1;
}

static void write_guard_bottom(void *arg)
{
    volatile char *guard = arg;

    guard[0] = 1;
}

static void stack_guard_page_faults(void **state)
{
    struct env *e = *state;
    struct corio__stack s, own;
    size_t page = e->arena.page;

    assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, 0, &s), 0);
    assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, 3 * CORIO_STACK_MIN_SIZE, &own), 0);
    char *lo = s.lo;
    assert_true(corio__stack_in_guard(&s, lo - 1, page));
    assert_true(corio__stack_in_guard(&s, lo - page, page));
    assert_false(corio__stack_in_guard(&s, lo, page));
    assert_false(corio__stack_in_guard(&s, lo - page - 1, page));
    /* Touch the stack (above any canary) so the mapping has anonymous memory
     * before fork. */
    memset(lo + 64, 0, 64);

    if (e->arena.guard == CORIO_GUARD_CANARY) {
        assert_true(corio__stack_canary_ok(&e->arena, &s));
        memset(lo, 0, 8);
        assert_false(corio__stack_canary_ok(&e->arena, &s));
    } else {
        assert_int_equal(in_child(write_below, s.lo), SIGSEGV);
        assert_int_equal(in_child(write_guard_bottom, lo - page), SIGSEGV);
        assert_int_equal(in_child(write_below, own.lo), SIGSEGV);
        /* The stack itself is fine in a child too. */
        assert_int_equal(in_child(write_guard_bottom, lo), 0);
    }
    corio__stack_free(&e->cache, &e->arena, &own);
    corio__stack_free(&e->cache, &e->arena, &s);
}

/* Canary mode on any kernel: a fresh arena switched before its first carve
 * installs no guards and writes canaries. */
static void stack_canary_detects_overwrite(void **state)
{
    struct corio__stack_arena a;
    struct corio__stack_cache c;
    struct corio__stack s, own;

    (void)state;
    assert_int_equal(corio__stack_arena_init(&a, 0), 0);
    a.guard = CORIO_GUARD_CANARY;
    corio__stack_cache_init(&c);
    assert_int_equal(corio__stack_alloc(&c, &a, 0, &s), 0);
    assert_int_equal(corio__stack_alloc(&c, &a, 2 * CORIO_STACK_MIN_SIZE, &own), 0);
    assert_true(corio__stack_canary_ok(&a, &s));
    assert_true(corio__stack_canary_ok(&a, &own));
    memset(s.lo, 0, s.size);
    ((char *)own.lo)[3] = 0;
    assert_false(corio__stack_canary_ok(&a, &s));
    assert_false(corio__stack_canary_ok(&a, &own));
    /* Reuse writes it again. */
    corio__stack_free(&c, &a, &s);
    assert_int_equal(corio__stack_alloc(&c, &a, 0, &s), 0);
    assert_true(corio__stack_canary_ok(&a, &s));
    corio__stack_free(&c, &a, &own);
    corio__stack_free(&c, &a, &s);
    corio__stack_cache_fini(&c, &a);
    corio__stack_arena_fini(&a);
}

#define MANY 100000

/* /proc/self/maps lines a region may add: one (adjacent regions even merge),
 * but TSan's mmap interceptor maps shadow and meta-shadow beside each. */
#if defined(__SANITIZE_THREAD__)
#define MAPS_PER_REGION 3
#else
#define MAPS_PER_REGION 1
#endif

static void stack_many_at_once_stay_few_mappings(void **state)
{
    struct env *e = *state;
    struct corio__stack *s = calloc(MANY, sizeof *s);
    char msg[256];

    assert_non_null(s);
    if (corio__stack_check_map_count(&e->arena, MANY, msg, sizeof msg) != 0) {
        /* mprotect guards (a debug build) cannot hold this many: the check
         * says so, which is all that mode promises. */
        assert_int_equal(e->arena.guard, CORIO_GUARD_MPROTECT);
        free(s);
        skip();
    }
    size_t before = count_maps();
    for (size_t i = 0; i < MANY; i++)
        assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, 0, &s[i]), 0);
    size_t after = count_maps();
    /* One VMA per 512 stacks at most. */
    assert_true(after <= before + MAPS_PER_REGION * (MANY / CORIO_STACK_REGION_SLOTS + 1) + 8);
    assert_int_equal(e->arena.nregions,
                     (MANY + CORIO_STACK_REGION_SLOTS - 1) / CORIO_STACK_REGION_SLOTS);
    /* Each is usable; touching one page of each 100th costs only those pages. */
    for (size_t i = 0; i < MANY; i += 100) {
        char *top = (char *)s[i].lo + s[i].size - 1;
        *top = (char)i;
    }
    for (size_t i = 0; i < MANY; i += 100)
        assert_int_equal(((char *)s[i].lo)[s[i].size - 1], (char)i);
    for (size_t i = 0; i < MANY; i++)
        corio__stack_free(&e->cache, &e->arena, &s[i]);
    assert_true(e->cache.n <= CORIO_STACK_CACHE_MAX);
    corio__stack_cache_trim(&e->cache, &e->arena, MANY);   /* as a worker does when it parks */
    assert_true(e->cache.n <= CORIO_STACK_CACHE_HIGH);
    assert_int_equal(e->cache.n + e->arena.nfree, MANY);
    free(s);
}

static void stack_cache_high_water_returns_to_arena(void **state)
{
    struct env *e = *state;
    enum { N = CORIO_STACK_CACHE_HIGH + 1 };
    struct corio__stack *s = calloc(N, sizeof *s);
    size_t page = e->arena.page;
    struct corio__stack_cache other;

    assert_non_null(s);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, 0, &s[i]), 0);
        memset((char *)s[i].lo + s[i].size - page, 0x77, page);
    }
    assert_int_equal(e->arena.nfree, 0);
    /* Refills come in batches: some fresh stacks may still sit in the cache. */
    size_t total = e->cache.n + N;
    for (size_t i = 0; i < N; i++)
        corio__stack_free(&e->cache, &e->arena, &s[i]);
    /* A busy worker keeps them; the trim at park gives back what is past the
     * mark, coldest first. */
    assert_int_equal(e->arena.nfree, 0);
    corio__stack_cache_trim(&e->cache, &e->arena, N);
    assert_true(e->arena.nfree >= 1);
    assert_true(e->cache.n <= CORIO_STACK_CACHE_HIGH);
    assert_int_equal(e->cache.n + e->arena.nfree, total);
    /* ... without their memory, while the guard stays. */
    for (size_t i = 0; i < e->arena.nfree; i++) {
        struct corio__stack *f = &e->arena.free[i];
        const char *top_page = (const char *)f->lo + f->size - page;
        assert_false(resident(top_page, page));
        assert_int_equal(top_page[0], 0);
        if (e->arena.guard != CORIO_GUARD_CANARY)
            assert_int_equal(in_child(write_below, f->lo), SIGSEGV);
    }
    /* Another worker's dry cache takes a batch from the arena, and may free
     * into its own cache what came from ours. */
    corio__stack_cache_init(&other);
    size_t nfree = e->arena.nfree;
    struct corio__stack t;
    assert_int_equal(corio__stack_alloc(&other, &e->arena, 0, &t), 0);
    assert_true(e->arena.nfree < nfree);
    assert_true(corio__stack_canary_ok(&e->arena, &t));
    struct corio__stack mine;
    assert_int_equal(corio__stack_alloc(&e->cache, &e->arena, 0, &mine), 0);
    corio__stack_free(&other, &e->arena, &mine);
    corio__stack_free(&other, &e->arena, &t);
    corio__stack_cache_fini(&other, &e->arena);
    assert_int_equal(other.n, 0);
    free(s);
}

static void stack_check_map_count_refuses_absurd_counts(void **state)
{
    struct env *e = *state;
    char msg[512];

    assert_int_equal(corio__stack_check_map_count(&e->arena, 1000, msg, sizeof msg), 0);
    assert_string_equal(msg, "");
    assert_int_equal(corio__stack_check_map_count(&e->arena, SIZE_MAX, msg, sizeof msg), -ENOMEM);
    assert_non_null(strstr(msg, "vm.max_map_count"));
    size_t absurd = (size_t)1 << 40;
    assert_int_equal(corio__stack_check_map_count(&e->arena, absurd, msg, sizeof msg), -ENOMEM);
    assert_non_null(strstr(msg, "corio: vm.max_map_count="));
    assert_non_null(strstr(msg, "cannot hold 1099511627776 guarded stacks"));
    /* Many, but within what the sysctl can be raised to: the message says how. */
    size_t lots = (size_t)CORIO_STACK_REGION_SLOTS * 100000;
    if (e->arena.guard != CORIO_GUARD_MPROTECT) {
        assert_int_equal(corio__stack_check_map_count(&e->arena, lots, msg, sizeof msg), -ENOMEM);
        assert_non_null(strstr(msg, "sysctl -w vm.max_map_count="));
    }
    /* No buffer: the answer alone. */
    assert_int_equal(corio__stack_check_map_count(&e->arena, absurd, NULL, 0), -ENOMEM);
    /* mprotect guards need two mappings a stack: 40,000 is too many for the
     * default limit of 65530, while pooled regions hold them easily. */
    struct corio__stack_arena mp = e->arena;
    mp.guard = CORIO_GUARD_MPROTECT;
    if (e->arena.guard != CORIO_GUARD_MPROTECT)
        assert_int_equal(corio__stack_check_map_count(&e->arena, 40000, msg, sizeof msg), 0);
    char small[8];
    int rc = corio__stack_check_map_count(&mp, 40000, small, sizeof small);
    if (rc != 0) {
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(strlen(small), sizeof small - 1);   /* truncated, terminated */
    }
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define NOT_ENFORCED 2

static void alloc_under_small_address_limit(void *arg)
{
    struct env *e = arg;
    struct corio__stack s;
    struct rlimit rl;
    int rc;

    /* Room for nothing big: the current size plus 64 MiB. */
    long long vm = 0;
    char buf[4096];
    int fd = open("/proc/self/statm", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        _exit(3);
    buf[n] = '\0';
    vm = strtoll(buf, NULL, 10) * e->arena.page;
    rl.rlim_cur = rl.rlim_max = (rlim_t)vm + 64u * 1024 * 1024;
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        _exit(4);
    /* Emulators (qemu-user) do not apply the limit to the guest's mappings. */
    void *probe = mmap(NULL, 512u * 1024 * 1024, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (probe != MAP_FAILED)
        _exit(NOT_ENFORCED);
    rc = corio__stack_alloc(&e->cache, &e->arena, 512u * 1024 * 1024, &s);
    if (rc != -ENOMEM)
        _exit(5);
    /* A fresh region (34 MiB) still fits; the next ones do not. */
    for (int i = 0; i < 4 * CORIO_STACK_REGION_SLOTS; i++) {
        rc = corio__stack_alloc(&e->cache, &e->arena, 0, &s);
        if (rc == -ENOMEM)
            _exit(0);
        if (rc != 0)
            _exit(6);
    }
    _exit(7);
}
#endif

static void stack_mmap_failure_is_enomem(void **state)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* Sanitizer runtimes reserve terabytes of shadow: an address-space limit
     * is meaningless under them. */
    (void)state;
    skip();
#else
    int status;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0)
        alloc_under_small_address_limit(*state);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == NOT_ENFORCED)
        skip();
    assert_int_equal(WEXITSTATUS(status), 0);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(stack_alloc_free_default_size, setup, teardown),
        cmocka_unit_test_setup_teardown(stack_reuses_the_last_freed, setup, teardown),
        cmocka_unit_test_setup_teardown(stack_custom_size_gets_own_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(stack_invalid_sizes_are_einval, setup, teardown),
        cmocka_unit_test_setup_teardown(stack_whole_usable_range_is_writable, setup, teardown),
        cmocka_unit_test_setup_teardown(stack_guard_page_faults, setup, teardown),
        cmocka_unit_test(stack_canary_detects_overwrite),
        cmocka_unit_test_setup_teardown(stack_many_at_once_stay_few_mappings, setup, teardown),
        cmocka_unit_test_setup_teardown(stack_cache_high_water_returns_to_arena, setup, teardown),
        cmocka_unit_test_setup_teardown(stack_check_map_count_refuses_absurd_counts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stack_mmap_failure_is_enomem, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
